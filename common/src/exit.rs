//! Exit statuses: a contract, written down in every man page.
//!
//! The values follow GNU coreutils (`env`, `nohup`, `timeout`): 125 when the tool
//! itself fails, 126 when the command was found but could not be run, 127 when it
//! was not found, and 128+N for a child killed by signal N; LSB's codes where a
//! `--status` mode exists. Every tool's `run` returns a [`Status`] (or an
//! [`crate::Error`], which knows its own), and [`crate::cli::status`] turns it into
//! the process's exit status in one place.

use nix::errno::Errno;

/// A process exit status, 0 to 255.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Status(u8);

impl Status {
    /// A status by number; numbers outside 0-255 become 255, as `exit(2)` could
    /// not report them anyway.
    #[must_use]
    pub const fn new(code: i32) -> Status {
        if code >= 0 && code <= 255 {
            // Checked just above: the cast cannot truncate.
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            Status(code as u8)
        } else {
            Status(255)
        }
    }

    /// The number.
    #[must_use]
    pub const fn code(self) -> i32 {
        self.0 as i32
    }

    /// Whether this is [`SUCCESS`].
    #[must_use]
    pub const fn is_success(self) -> bool {
        self.0 == 0
    }

    /// The shell's convention for a process killed by signal number `signo`
    /// (real-time signals included): 128 + `signo`.
    #[must_use]
    pub const fn from_signal(signo: i32) -> Status {
        Status::new(128 + signo)
    }

    /// The status for a failed `exec`, as GNU and POSIX shells give it: 127 when
    /// the command does not exist (`ENOENT`), 126 for any other reason.
    #[must_use]
    pub fn for_exec_error(errno: Errno) -> Status {
        if errno == Errno::ENOENT {
            ENOENT
        } else {
            CANNOT_INVOKE
        }
    }
}

impl From<Status> for std::process::ExitCode {
    fn from(status: Status) -> Self {
        std::process::ExitCode::from(status.0)
    }
}

/// Everything went as asked.
pub const SUCCESS: Status = Status(0);
/// A generic failure of a tool that does not wrap a command (e.g. one job of several failed).
pub const FAILURE: Status = Status(1);
/// Bad usage, for tools that do not wrap a command.
pub const USAGE: Status = Status(2);
/// The tool itself failed before running the command (GNU `EXIT_CANCELED`).
pub const CANCELED: Status = Status(125);
/// The command was found but could not be invoked (GNU `EXIT_CANNOT_INVOKE`).
pub const CANNOT_INVOKE: Status = Status(126);
/// The command could not be found (GNU `EXIT_ENOENT`).
pub const ENOENT: Status = Status(127);

/// LSB init-script status codes, for `--status` (and detach's `--stop`).
pub mod lsb {
    use super::Status;

    /// Running (`--status`); stopped as asked (`--stop`).
    pub const OK: Status = Status(0);
    /// Dead, but the pidfile exists (`--status`); was not running (`--stop`).
    pub const DEAD: Status = Status(1);
    /// The daemon outlived the stop schedule.
    pub const REFUSED: Status = Status(2);
    /// Not running.
    pub const NOT_RUNNING: Status = Status(3);
    /// Unknown: the pidfile or record is unusable or untrusted.
    pub const UNKNOWN: Status = Status(4);
}

/// How a waited-for process ended or changed state, decoded once from the raw
/// `wait` status. Signal numbers stay numbers: nix's `Signal` cannot hold the
/// real-time signals (32-64), which a process can die of or stop with too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// `exit(code)`.
    Exited(i32),
    /// Killed by signal `signo`; `core` if it dumped core.
    Signaled {
        /// The signal number.
        signo: i32,
        /// Whether a core was dumped.
        core: bool,
    },
    /// Stopped by signal `signo`; `event` is the ptrace event (status >> 16), 0 if none.
    Stopped {
        /// The signal number (with `0x80` set for a `PTRACE_O_TRACESYSGOOD` syscall stop).
        signo: i32,
        /// The ptrace event, 0 if none.
        event: i32,
    },
    /// Continued by SIGCONT (`WCONTINUED`).
    Continued,
}

impl Wait {
    /// Decodes a raw status as `waitpid(2)` stores it.
    #[must_use]
    pub fn from_raw(raw: i32) -> Wait {
        if libc_wifexited(raw) {
            Wait::Exited((raw >> 8) & 0xff)
        } else if raw == 0xffff {
            Wait::Continued
        } else if raw & 0xff == 0x7f {
            Wait::Stopped {
                signo: (raw >> 8) & 0xff,
                event: (raw >> 16) & 0xff,
            }
        } else {
            Wait::Signaled {
                signo: raw & 0x7f,
                core: raw & 0x80 != 0,
            }
        }
    }

    /// The status a shell gives this ending: the exit code, or 128 + the signal
    /// number; `None` for a stop or a continue (not an ending).
    #[must_use]
    pub fn shell_status(self) -> Option<Status> {
        match self {
            Wait::Exited(code) => Some(Status::new(code)),
            Wait::Signaled { signo, .. } => Some(Status::from_signal(signo)),
            Wait::Stopped { .. } | Wait::Continued => None,
        }
    }
}

/// `WIFEXITED`: the low seven bits are zero.
fn libc_wifexited(raw: i32) -> bool {
    raw.trailing_zeros() >= 7
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_numbers() {
        assert_eq!(Status::new(300), Status::new(255));
        assert_eq!(Status::new(-1).code(), 255);
        assert_eq!(Status::from_signal(15).code(), 143);
        assert_eq!(Status::from_signal(34).code(), 162);
        assert_eq!(Status::for_exec_error(Errno::ENOENT), ENOENT);
        assert_eq!(Status::for_exec_error(Errno::EACCES), CANNOT_INVOKE);
    }

    #[test]
    fn wait_statuses_decode_as_the_libc_macros() {
        for raw in [
            0,
            0x0100,
            0x7f00,
            0x000f,
            0x008b,
            0x0022,
            0x137f,
            0x227f,
            0x0003_057f,
            0xffff,
        ] {
            let w = Wait::from_raw(raw);
            match w {
                Wait::Exited(c) => {
                    assert!(nix::libc::WIFEXITED(raw));
                    assert_eq!(c, nix::libc::WEXITSTATUS(raw));
                }
                Wait::Signaled { signo, core } => {
                    assert!(nix::libc::WIFSIGNALED(raw));
                    assert_eq!(signo, nix::libc::WTERMSIG(raw));
                    assert_eq!(core, nix::libc::WCOREDUMP(raw));
                }
                Wait::Stopped { signo, event } => {
                    assert!(nix::libc::WIFSTOPPED(raw));
                    assert_eq!(signo, nix::libc::WSTOPSIG(raw));
                    assert_eq!(event, raw >> 16);
                }
                Wait::Continued => assert!(nix::libc::WIFCONTINUED(raw)),
            }
        }
        assert_eq!(
            Wait::from_raw(0x0022).shell_status(),
            Some(Status::new(162))
        );
        assert_eq!(Wait::from_raw(0x0300).shell_status(), Some(Status::new(3)));
        assert_eq!(Wait::from_raw(0x137f).shell_status(), None);
    }
}
