//! rnohup's algorithm: coreutils' `nohup.c`, step for step.
//!
//! 1. `isatty` on fds 0, 1 and 2, once; everything is decided from these.
//! 2. stdin a terminal: reopen it on `/dev/null` *write-only*, so reads fail
//!    (`EBADF`) instead of quietly reading end-of-file.
//! 3. stdout a terminal (or `--output`), or stderr a terminal with stdout closed:
//!    open `nohup.out` (else `$HOME/nohup.out`) for appending, mode 0600 under a
//!    cleared umask; the command still gets the caller's umask.
//! 4. stderr a terminal: keep a close-on-exec copy of it for the exec error, then
//!    point it at the output; with stdout closed, stdout stays closed.
//! 5. Advisory messages go to the *original* stderr; if one could not be written,
//!    the command is not run.
//! 6. SIGHUP to `SIG_IGN`, then `execvp` (PATH search, `/bin/sh` for scripts
//!    without `#!`). Every other disposition and the signal mask pass through.

use std::ffi::{CString, OsStr, OsString};
use std::os::fd::RawFd;
use std::os::unix::ffi::{OsStrExt, OsStringExt};

use hupkit_common::diag::Diag;
use hupkit_common::exit::Status;
use hupkit_common::quote::quote;
use hupkit_common::signal;
use hupkit_common::stdio::{self, StreamKind};
use nix::errno::Errno;
use nix::libc;
use nix::sys::signal::Signal;

/// The default output file.
pub const NOHUP_OUT: &str = "nohup.out";

/// Joins `dir` and `base` as gnulib's `file_name_concat` does: trailing slashes of
/// `dir` are folded into one separator, and an empty `dir` gives `base` alone.
#[must_use]
pub fn file_name_concat(dir: &[u8], base: &[u8]) -> Vec<u8> {
    // The last component of dir starts after its last run of slashes (leading
    // slashes are skipped first); its length excludes trailing slashes.
    let mut start = dir.iter().take_while(|&&b| b == b'/').count();
    let mut last_was_slash = false;
    for (i, &b) in dir.iter().enumerate().skip(start) {
        if b == b'/' {
            last_was_slash = true;
        } else if last_was_slash {
            start = i;
            last_was_slash = false;
        }
    }
    let mut base_len = dir.len() - start;
    while base_len > 1 && dir[start + base_len - 1] == b'/' {
        base_len -= 1;
    }
    let dir_len = start + base_len;
    let mut out = dir[..dir_len].to_vec();
    if base_len > 0 && dir[dir_len - 1] != b'/' {
        out.push(b'/');
    }
    out.extend_from_slice(base);
    out
}

fn cstring(s: &OsStr) -> CString {
    // argv strings and environment values cannot contain NUL; an interior NUL can
    // only come from a caller bug, and then the name is cut there, as C would.
    let bytes = s.as_bytes();
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    CString::new(&bytes[..end]).unwrap_or_default()
}

/// Opens an output file for appending, mode 0600, onto fd 1 when stdout is being
/// redirected, else at the lowest free descriptor. `explicit` (`--output`) never
/// blocks on a FIFO without a reader; `nohup.out` opens as GNU's does.
fn open_output(path: &OsStr, onto_stdout: bool, explicit: bool) -> Result<RawFd, Errno> {
    let flags = libc::O_CREAT | libc::O_WRONLY | libc::O_APPEND;
    let path = cstring(path);
    if explicit {
        let fd = stdio::open_output_nonblocking(&path, flags, 0o600)?;
        if !onto_stdout || fd == stdio::STDOUT {
            return Ok(fd);
        }
        // SAFETY: fd 1 is re-pointed on purpose (nothing in rnohup holds it as
        // an owned descriptor), and `fd` was opened just above, owned by nobody.
        return unsafe {
            let moved = stdio::dup2(fd, stdio::STDOUT);
            stdio::close(fd);
            moved
        };
    }
    if onto_stdout {
        // SAFETY: fd 1 is re-pointed on purpose; nothing in rnohup owns it.
        unsafe { stdio::reopen(stdio::STDOUT, &path, flags, 0o600) }
    } else {
        stdio::open(&path, flags, 0o600)
    }
}

/// Runs the algorithm and execs `command`; returns only on failure, with the status.
pub fn run(diag: &mut Diag, output: Option<&OsStr>, command: &[OsString], fail: Status) -> Status {
    let ignoring_input = stdio::kind(stdio::STDIN) == StreamKind::Tty;
    let stdout_kind = stdio::kind(stdio::STDOUT);
    let redirecting_stdout = stdout_kind == StreamKind::Tty || output.is_some();
    let stdout_is_closed = !redirecting_stdout && stdout_kind == StreamKind::Closed;
    let redirecting_stderr = stdio::kind(stdio::STDERR) == StreamKind::Tty;

    if ignoring_input {
        // SAFETY: fd 0 is re-pointed on purpose; nothing in rnohup owns it.
        let reopened = unsafe { stdio::reopen(stdio::STDIN, c"/dev/null", libc::O_WRONLY, 0) };
        if let Err(errno) = reopened {
            diag.error_errno("failed to render standard input unusable", errno);
            return fail;
        }
        if !redirecting_stdout && !redirecting_stderr {
            diag.line("ignoring input");
        }
    }

    let mut out_fd = stdio::STDOUT;
    if redirecting_stdout || (redirecting_stderr && stdout_is_closed) {
        // 0600 whatever the caller's umask; restored before exec.
        let saved_umask = stdio::umask(0o177);
        let first = output.unwrap_or(OsStr::new(NOHUP_OUT));
        let shown: OsString = match open_output(first, redirecting_stdout, output.is_some()) {
            Ok(fd) => {
                out_fd = fd;
                first.to_os_string()
            }
            Err(first_errno) if output.is_some() => {
                diag.error_errno(&format!("failed to open {}", quote(first)), first_errno);
                return fail;
            }
            Err(first_errno) => {
                let in_home = std::env::var_os("HOME").map(|home| {
                    OsString::from_vec(file_name_concat(home.as_bytes(), NOHUP_OUT.as_bytes()))
                });
                let second = in_home
                    .as_ref()
                    .map(|p| (p, open_output(p, redirecting_stdout, false)));
                match second {
                    Some((path, Ok(fd))) => {
                        out_fd = fd;
                        path.clone()
                    }
                    second => {
                        diag.error_errno(&format!("failed to open {}", quote(first)), first_errno);
                        if let Some((path, Err(errno))) = second {
                            diag.error_errno(&format!("failed to open {}", quote(path)), errno);
                        }
                        return fail;
                    }
                }
            }
        };
        let _ = stdio::umask(saved_umask);
        if ignoring_input {
            diag.line(&format!(
                "ignoring input and appending output to {}",
                quote(&shown)
            ));
        } else {
            diag.line(&format!("appending output to {}", quote(&shown)));
        }
    }

    let mut saved_stderr = stdio::STDERR;
    if redirecting_stderr {
        // A failed copy only costs the exec-failure message, as in GNU.
        saved_stderr = stdio::dup_cloexec(stdio::STDERR, stdio::STDERR + 1).unwrap_or(-1);
        if !redirecting_stdout {
            diag.line(if ignoring_input {
                "ignoring input and redirecting stderr to stdout"
            } else {
                "redirecting stderr to stdout"
            });
        }
        // SAFETY: fd 2 is re-pointed on purpose (Diag writes to the number, it
        // does not own it); nothing in rnohup owns fd 2.
        if let Err(errno) = unsafe { stdio::dup2(out_fd, stdio::STDERR) } {
            diag.error_errno("failed to redirect standard error", errno);
            return fail;
        }
        if stdout_is_closed {
            // SAFETY: `out_fd` was opened by open_output and is owned by nobody
            // else; fd 2 now holds the copy the command will use.
            unsafe { stdio::close(out_fd) };
        }
    }

    if diag.failed() {
        return fail;
    }

    // Failing to ignore SIGHUP is not possible for a valid signal; GNU ignores the result too.
    let _ = signal::ignore(Signal::SIGHUP);

    // The command's own argv first: under a tight RLIMIT_AS the record gets
    // only what is left, and is skipped if that is not enough.
    let argv: Vec<CString> = command.iter().map(|a| cstring(a)).collect();
    record(command, redirecting_stdout.then_some(out_fd));

    let Some(file) = argv.first() else {
        return fail;
    };
    let Err(errno) = nix::unistd::execvp(file, &argv);
    let status = Status::for_exec_error(errno);
    // Report on the original stderr only, never into nohup.out.
    // SAFETY: fd 2 is re-pointed on purpose, back to the caller's stderr.
    if unsafe { stdio::dup2(saved_stderr, stdio::STDERR) } == Ok(stdio::STDERR) {
        diag.error_errno(
            &format!("failed to run command {}", quote(&command[0])),
            errno,
        );
    }
    // GNU's close_stdout turns an unwritable stderr into rnohup's own failure.
    if diag.failed() { fail } else { status }
}

/// Writes a job record for this process (which keeps its PID through exec).
/// Silent whatever happens: a record never stops the command nor changes what
/// rnohup prints or the command inherits. Skipped when memory is short (a
/// failed allocation would abort rnohup) and when it would exceed
/// `RLIMIT_FSIZE` (SIGXFSZ); `HUPKIT_NO_RECORD=1` turns it off.
fn record(command: &[OsString], output_fd: Option<RawFd>) {
    let Some(dir) = hupkit_common::records::write_dir() else {
        return;
    };
    // In a PID namespace whose /proc is not its own, /proc/self is another
    // process's number and /proc/PID another process: no record.
    let me = nix::unistd::getpid().to_string();
    if std::fs::read_link("/proc/self").ok().as_deref() != Some(std::path::Path::new(&me)) {
        return;
    }
    let argv_bytes: usize = command.iter().map(|a| a.len() + 32).sum();
    if !hupkit_common::records::enough_memory(argv_bytes) {
        return;
    }
    let Ok(mut rec) = hupkit_common::records::Record::new(
        nix::unistd::getpid(),
        hupkit_common::records::Level::Nohup,
        command.to_vec(),
    ) else {
        return;
    };
    let fd = output_fd.unwrap_or(stdio::STDOUT);
    rec.output = std::fs::read_link(format!("/proc/self/fd/{fd}"))
        .map(std::path::PathBuf::into_os_string)
        .unwrap_or_default();
    let _ = hupkit_common::records::write(&dir, &rec);
}

#[cfg(test)]
mod tests {
    use super::file_name_concat;

    fn cat(dir: &str) -> String {
        String::from_utf8(file_name_concat(dir.as_bytes(), b"nohup.out")).unwrap()
    }

    #[test]
    fn concat_like_gnulib() {
        assert_eq!(cat("/home/u"), "/home/u/nohup.out");
        assert_eq!(cat("/x/"), "/x/nohup.out");
        assert_eq!(cat("/x//"), "/x/nohup.out");
        assert_eq!(cat("/"), "/nohup.out");
        assert_eq!(cat("//"), "//nohup.out");
        assert_eq!(cat(""), "nohup.out");
        assert_eq!(cat("rel"), "rel/nohup.out");
        assert_eq!(cat("/a//b/"), "/a//b/nohup.out");
    }
}
