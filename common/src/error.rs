//! The error type of the suite: every error knows the exit status it maps to.
//!
//! Errors are built where a syscall fails, with the errno kept as a value (no
//! `(os error N)` text ever reaches the user), and get their context where they
//! are caught, through [`Context`]. `Display` gives the diagnostic without the
//! program prefix; [`crate::diag::Diag`] adds the prefix when it prints.

use nix::errno::Errno;

use crate::exit::Status;

use crate::diag::strerror;

/// What went wrong, and which exit status that means.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The command line is wrong; the tool should also print its `Try ... --help` line.
    #[error("{msg}")]
    Usage {
        /// The message, e.g. `missing operand`.
        msg: String,
        /// The exit status (2 for most tools, 125 for the command wrappers).
        status: Status,
    },
    /// A system call failed: `context: Strerror`.
    #[error("{context}: {}", strerror(*errno))]
    Sys {
        /// What was being done, with operands quoted, e.g. `failed to open 'x'`.
        context: String,
        /// The errno of the failed call.
        errno: Errno,
        /// The exit status.
        status: Status,
    },
    /// Any other failure, already worded for the user.
    #[error("{msg}")]
    Failed {
        /// The message.
        msg: String,
        /// The exit status.
        status: Status,
    },
}

impl Error {
    /// A usage error with the given status.
    pub fn usage(msg: impl Into<String>, status: Status) -> Self {
        Error::Usage {
            msg: msg.into(),
            status,
        }
    }

    /// A failure that is not a system call's.
    pub fn failed(msg: impl Into<String>, status: Status) -> Self {
        Error::Failed {
            msg: msg.into(),
            status,
        }
    }

    /// A failed system call, with what was being done.
    pub fn sys(context: impl Into<String>, errno: Errno, status: Status) -> Self {
        Error::Sys {
            context: context.into(),
            errno,
            status,
        }
    }

    /// The exit status this error maps to.
    #[must_use]
    pub fn status(&self) -> Status {
        match self {
            Error::Usage { status, .. }
            | Error::Sys { status, .. }
            | Error::Failed { status, .. } => *status,
        }
    }

    /// Whether the caller should follow the message with a `Try ... --help` line.
    #[must_use]
    pub fn is_usage(&self) -> bool {
        matches!(self, Error::Usage { .. })
    }
}

/// A result whose error is the suite's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

/// Adds what was being done (and the exit status it means) to a failed syscall.
pub trait Context<T> {
    /// Turns an `Errno` into an [`Error::Sys`] with a lazily built context.
    fn context<F, S>(self, status: Status, f: F) -> Result<T>
    where
        F: FnOnce() -> S,
        S: Into<String>;
}

impl<T> Context<T> for std::result::Result<T, Errno> {
    fn context<F, S>(self, status: Status, f: F) -> Result<T>
    where
        F: FnOnce() -> S,
        S: Into<String>,
    {
        self.map_err(|errno| Error::sys(f(), errno, status))
    }
}

impl<T> Context<T> for std::io::Result<T> {
    fn context<F, S>(self, status: Status, f: F) -> Result<T>
    where
        F: FnOnce() -> S,
        S: Into<String>,
    {
        self.map_err(|e| {
            let errno = e.raw_os_error().map_or(Errno::EIO, Errno::from_raw);
            Error::sys(f(), errno, status)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sys_error_has_no_os_error_suffix() {
        let e: Result<()> =
            Err(Errno::ENOENT).context(crate::exit::CANCELED, || "failed to open 'x'");
        let e = e.unwrap_err();
        assert_eq!(
            e.to_string(),
            "failed to open 'x': No such file or directory"
        );
        assert_eq!(e.status().code(), 125);
        assert!(!e.is_usage());
    }

    #[test]
    fn usage_error_keeps_status() {
        let e = Error::usage("missing operand", crate::exit::USAGE);
        assert_eq!(e.to_string(), "missing operand");
        assert_eq!(e.status().code(), 2);
        assert!(e.is_usage());
    }
}
