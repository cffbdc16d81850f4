//! Process identity that survives PID reuse: PID + start time + boot.
//!
//! A PID alone names whichever process holds that number now. hupkit never acts
//! on a PID from a file or a previous invocation without checking that the
//! process there is the one that was recorded: same start time (`/proc/PID/stat`
//! field 22, clock ticks after boot) and same boot (`/proc/sys/kernel/random/boot_id`).
//! A zombie (state `Z` or `X`) counts as gone: it runs no code and will never
//! handle a signal.
//!
//! The text form is one line, `PID STARTTIME BOOT_ID`, the format of detach's
//! identity records; `PID@STARTTIME` is the form job specs use.

use std::fmt;
use std::io;

use nix::unistd::Pid;

use crate::proc::Stat;

/// The boot ID of the running kernel, without the newline (read once per process).
pub fn boot_id() -> io::Result<String> {
    static BOOT: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    BOOT.get_or_init(|| {
        crate::proc::read_small(std::path::Path::new("/proc/sys/kernel/random/boot_id"))
            .ok()
            .map(|s| String::from_utf8_lossy(&s).trim().to_string())
    })
    .clone()
    .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no boot_id"))
}

/// Who a process is, independently of what its PID holds later.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The process ID at the time of recording.
    pub pid: Pid,
    /// Its start time, in clock ticks after boot.
    pub starttime: u64,
    /// The boot it ran in.
    pub boot_id: String,
}

/// What a recorded identity stands for now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Liveness {
    /// The recorded process is running (or stopped): not a zombie, same start time, same boot.
    Alive,
    /// It has exited, is a zombie, or its PID now belongs to another process.
    Gone,
}

impl Identity {
    /// Records the identity of the process now at `pid` (which may be a zombie).
    pub fn of(pid: Pid) -> io::Result<Identity> {
        let stat = Stat::read(pid)?;
        Ok(Identity {
            pid,
            starttime: stat.starttime,
            boot_id: boot_id()?,
        })
    }

    /// Whether the recorded process is still the one at its PID, and alive.
    #[must_use]
    pub fn liveness(&self) -> Liveness {
        match (Stat::read(self.pid), boot_id()) {
            (Ok(stat), Ok(boot))
                if stat.starttime == self.starttime
                    && boot == self.boot_id
                    && !stat.state.has_exited() =>
            {
                Liveness::Alive
            }
            _ => Liveness::Gone,
        }
    }

    /// Parses `PID STARTTIME BOOT_ID` (surrounding white space allowed).
    #[must_use]
    pub fn parse(text: &str) -> Option<Identity> {
        let mut words = text.split_ascii_whitespace();
        let pid: i32 = words.next()?.parse().ok().filter(|p| *p > 0)?;
        let starttime = words.next()?.parse().ok()?;
        let boot_id = words.next()?.to_string();
        if words.next().is_some() {
            return None;
        }
        Some(Identity {
            pid: Pid::from_raw(pid),
            starttime,
            boot_id,
        })
    }
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.pid, self.starttime, self.boot_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_self_is_alive() {
        let me = Identity::of(nix::unistd::getpid()).unwrap();
        let text = me.to_string();
        assert_eq!(Identity::parse(&format!("{text}\n")), Some(me.clone()));
        assert_eq!(me.liveness(), Liveness::Alive);
        let older = Identity {
            starttime: me.starttime.wrapping_sub(1),
            ..me.clone()
        };
        assert_eq!(older.liveness(), Liveness::Gone);
        let other_boot = Identity {
            boot_id: "x".into(),
            ..me
        };
        assert_eq!(other_boot.liveness(), Liveness::Gone);
    }

    #[test]
    fn rejects_garbage() {
        for bad in [
            "",
            "12",
            "12 x b",
            "0 1 b",
            "-3 1 b",
            "1 2 b extra",
            "x 1 b",
        ] {
            assert_eq!(Identity::parse(bad), None, "{bad:?}");
        }
    }
}
