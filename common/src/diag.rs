//! GNU-style diagnostics on standard error.
//!
//! Format: `PROG: message` or `PROG: message: Strerror`, one line, where `PROG` is
//! argv\[0\] as invoked (like GNU's `set_program_name`). Each line goes out with
//! `write(2)` on fd 2 directly, not through Rust's `Stderr`, because the tools must
//! know when a message could not be written (GNU nohup refuses to run the command
//! then) and because fd 2 may be closed or may be re-pointed by the tool itself.
//! A failed write is remembered, as `ferror(stderr)` is in C.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

use nix::errno::Errno;

use crate::error::Error;
use crate::stdio;

/// The text of an errno, as glibc's `strerror` gives it in the C locale, with none
/// of Rust's ` (os error N)` suffix.
#[must_use]
pub fn strerror(errno: Errno) -> String {
    let text = std::io::Error::from_raw_os_error(errno as i32).to_string();
    match text.rfind(" (os error ") {
        Some(at) => text[..at].to_string(),
        None => text,
    }
}

/// A writer of diagnostics for one program name.
#[derive(Debug)]
pub struct Diag {
    prog: Vec<u8>,
    failed: bool,
    errored: bool,
}

impl Diag {
    /// Diagnostics prefixed with `prog` (argv\[0\] as invoked).
    #[must_use]
    pub fn new(prog: &OsStr) -> Self {
        Diag {
            prog: prog.as_bytes().to_vec(),
            failed: false,
            errored: false,
        }
    }

    /// The program name, as given.
    #[must_use]
    pub fn prog(&self) -> &OsStr {
        OsStr::from_bytes(&self.prog)
    }

    /// Whether any message failed to reach standard error (C's `ferror(stderr)`).
    #[must_use]
    pub fn failed(&self) -> bool {
        self.failed
    }

    /// Whether an error has been reported (ripgrep's `ERRORED` flag): a tool that
    /// goes on after a failure (the next job, the next file) ends with
    /// [`Diag::status`] instead of threading an `ok` flag of its own.
    #[must_use]
    pub fn errored(&self) -> bool {
        self.errored
    }

    /// [`crate::exit::FAILURE`] if an error was reported, else `SUCCESS`.
    #[must_use]
    pub fn status(&self) -> crate::exit::Status {
        if self.errored {
            crate::exit::FAILURE
        } else {
            crate::exit::SUCCESS
        }
    }

    /// Writes raw bytes to fd 2, remembering a failure.
    pub fn raw(&mut self, bytes: &[u8]) {
        if stdio::write_all(stdio::STDERR, bytes).is_err() {
            self.failed = true;
        }
    }

    /// `PROG: msg`, remembered as an error.
    pub fn error(&mut self, msg: &str) {
        self.errored = true;
        self.line(msg);
    }

    /// `PROG: warning: msg`: not an error, it changes no status.
    pub fn warning(&mut self, msg: &str) {
        self.line(&format!("warning: {msg}"));
    }

    /// `PROG: msg`, a plain line (an advisory such as nohup's `ignoring input`),
    /// not remembered as an error.
    pub fn line(&mut self, msg: &str) {
        let mut line = Vec::with_capacity(self.prog.len() + msg.len() + 3);
        line.extend_from_slice(&self.prog);
        line.extend_from_slice(b": ");
        line.extend_from_slice(msg.as_bytes());
        line.push(b'\n');
        self.raw(&line);
    }

    /// `PROG: msg: Strerror`.
    pub fn error_errno(&mut self, msg: &str, errno: Errno) {
        self.error(&format!("{msg}: {}", strerror(errno)));
    }

    /// `Try 'PROG --help' for more information.`
    pub fn try_help(&mut self) {
        let mut line = b"Try '".to_vec();
        line.extend_from_slice(&self.prog);
        line.extend_from_slice(b" --help' for more information.\n");
        self.raw(&line);
    }

    /// Prints an [`Error`], followed by the `Try` line for usage errors.
    pub fn report(&mut self, err: &Error) {
        self.error(&err.to_string());
        if err.is_usage() {
            self.try_help();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strerror_is_glibc_text() {
        assert_eq!(strerror(Errno::ENOENT), "No such file or directory");
        assert_eq!(strerror(Errno::EACCES), "Permission denied");
        assert_eq!(strerror(Errno::ENOSPC), "No space left on device");
    }
}
