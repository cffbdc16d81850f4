//! The standard streams at the fd level.
//!
//! Tools that run a command must see fds 0, 1 and 2 as the caller left them:
//! open or closed, terminal or not. These helpers work on raw fd numbers on
//! purpose: a closed fd 1 cannot be represented by `BorrowedFd`, and "closed" is
//! one of the states the tools decide on. Every call here is a thin,
//! async-signal-safe wrapper around one system call.

use std::ffi::CStr;
use std::os::fd::RawFd;

use nix::errno::Errno;
use nix::libc;

/// Standard input.
pub const STDIN: RawFd = 0;
/// Standard output.
pub const STDOUT: RawFd = 1;
/// Standard error.
pub const STDERR: RawFd = 2;

/// What a standard stream is, as `isatty(3)` tells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamKind {
    /// A terminal.
    Tty,
    /// Open, but not a terminal (file, pipe, socket, `/dev/null`...).
    Other,
    /// Not open (`EBADF`).
    Closed,
}

/// Classifies `fd` with one `isatty` call, as GNU nohup does.
#[must_use]
pub fn kind(fd: RawFd) -> StreamKind {
    // SAFETY: isatty only inspects the descriptor number; any value is allowed.
    if unsafe { libc::isatty(fd) } == 1 {
        StreamKind::Tty
    } else if Errno::last() == Errno::EBADF {
        StreamKind::Closed
    } else {
        StreamKind::Other
    }
}

/// Whether `fd` is open (`fcntl(F_GETFD)` succeeds).
#[must_use]
pub fn is_open(fd: RawFd) -> bool {
    // SAFETY: F_GETFD reads the descriptor flags and changes nothing.
    unsafe { libc::fcntl(fd, libc::F_GETFD) != -1 }
}

/// What Rust's start-up does before a Rust `main`, for a C `main` that wants it:
/// each of fds 0-2 that is closed is opened on `/dev/null`, so that no file the
/// program opens later takes a standard stream's number.
pub fn open_closed_std_fds() {
    for fd in 0..=2 {
        if !is_open(fd) {
            // The lowest free descriptor: `fd` itself. Failure leaves it closed.
            let _ = open(c"/dev/null", libc::O_RDWR, 0);
        }
    }
}

/// Opens `path` and returns the new descriptor (the lowest free one, as `open(2)`).
pub fn open(path: &CStr, flags: libc::c_int, mode: libc::mode_t) -> Result<RawFd, Errno> {
    loop {
        // SAFETY: `path` is a valid NUL-terminated string for the duration of the call.
        let fd = unsafe { libc::open(path.as_ptr(), flags, libc::c_uint::from(mode)) };
        if fd >= 0 {
            return Ok(fd);
        }
        if Errno::last() != Errno::EINTR {
            return Err(Errno::last());
        }
    }
}

/// Clears `O_NONBLOCK` on `fd` (after an open that used it).
pub fn set_blocking(fd: RawFd) -> Result<(), Errno> {
    // SAFETY: F_GETFL/F_SETFL read and change descriptor flags; no memory involved.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        if flags < 0 || libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK) < 0 {
            return Err(Errno::last());
        }
    }
    Ok(())
}

/// Opens an output file without ever blocking: a FIFO with no reader fails at
/// once with `ENXIO` instead of hanging in `open(2)`; the descriptor is then made
/// blocking again, as any output file.
pub fn open_output_nonblocking(
    path: &CStr,
    flags: libc::c_int,
    mode: libc::mode_t,
) -> Result<RawFd, Errno> {
    let fd = open(path, flags | libc::O_NONBLOCK, mode)?;
    if let Err(e) = set_blocking(fd) {
        // SAFETY: `fd` was opened just above and is owned by nobody else.
        unsafe { close(fd) };
        return Err(e);
    }
    Ok(fd)
}

/// Opens `path` onto descriptor `fd` (gnulib's `fd_reopen`): if `open` does not
/// return `fd` itself, the result is moved there with `dup2` and closed.
///
/// # Safety
/// Whatever `fd` was is closed and replaced: no live `OwnedFd`, `File` or other
/// owner in this process may hold `fd` (the standard streams, which a tool
/// re-points on purpose, are the intended use).
pub unsafe fn reopen(
    fd: RawFd,
    path: &CStr,
    flags: libc::c_int,
    mode: libc::mode_t,
) -> Result<RawFd, Errno> {
    let new = open(path, flags, mode)?;
    if new == fd {
        return Ok(fd);
    }
    // SAFETY: the caller vouches for `fd`; `new` was opened just above and is
    // owned by nobody else.
    unsafe {
        let moved = dup2(new, fd);
        close(new);
        moved
    }
}

/// `dup2(from, to)`, retried on `EINTR`.
///
/// # Safety
/// Whatever `to` was is closed and replaced: no live `OwnedFd`, `File` or other
/// owner in this process may hold `to`, or it would go on using (and later
/// close) a descriptor that now means something else.
pub unsafe fn dup2(from: RawFd, to: RawFd) -> Result<RawFd, Errno> {
    loop {
        // SAFETY: dup2 on descriptor numbers; an invalid `from` gives EBADF.
        let r = unsafe { libc::dup2(from, to) };
        if r >= 0 {
            return Ok(r);
        }
        if Errno::last() != Errno::EINTR {
            return Err(Errno::last());
        }
    }
}

/// A close-on-exec copy of `fd` at the lowest free number at or above `min`.
pub fn dup_cloexec(fd: RawFd, min: RawFd) -> Result<RawFd, Errno> {
    // SAFETY: F_DUPFD_CLOEXEC duplicates a descriptor number; no memory is involved.
    let r = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, min) };
    if r >= 0 { Ok(r) } else { Err(Errno::last()) }
}

/// Closes `fd`, ignoring errors (there is nothing useful to do about them here).
///
/// # Safety
/// The caller owns `fd`: no `OwnedFd`, `File` or other owner in this process
/// holds it, and nothing uses the number after this call.
pub unsafe fn close(fd: RawFd) {
    // SAFETY: the caller owns `fd` and drops it here.
    unsafe {
        libc::close(fd);
    }
}

/// Writes all of `buf` to `fd`, retrying short writes and `EINTR`.
pub fn write_all(fd: RawFd, mut buf: &[u8]) -> Result<(), Errno> {
    while !buf.is_empty() {
        // SAFETY: `buf` is a valid slice for the length given.
        let n = unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) };
        if n < 0 {
            if Errno::last() == Errno::EINTR {
                continue;
            }
            return Err(Errno::last());
        }
        if n == 0 {
            return Err(Errno::EIO);
        }
        buf = &buf[n.unsigned_abs()..];
    }
    Ok(())
}

/// Sets the process umask and returns the previous one.
#[must_use]
pub fn umask(mask: libc::mode_t) -> libc::mode_t {
    // SAFETY: umask cannot fail and touches no memory.
    unsafe { libc::umask(mask) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closed_and_open_descriptors() {
        assert_eq!(kind(-1), StreamKind::Closed);
        assert!(!is_open(-1));
        let fd = open(c"/dev/null", libc::O_RDONLY | libc::O_CLOEXEC, 0).unwrap();
        assert!(is_open(fd));
        assert_eq!(kind(fd), StreamKind::Other);
        let copy = dup_cloexec(fd, 100).unwrap();
        assert!(copy >= 100);
        // SAFETY: both were opened above by this test and are owned by nothing else.
        unsafe {
            close(copy);
            close(fd);
        }
        assert!(!is_open(copy));
    }

    #[test]
    fn write_to_dev_full_fails_with_enospc() {
        let fd = open(c"/dev/full", libc::O_WRONLY | libc::O_CLOEXEC, 0).unwrap();
        assert_eq!(write_all(fd, b"x"), Err(Errno::ENOSPC));
        // SAFETY: opened above by this test and owned by nothing else.
        unsafe { close(fd) };
    }
}
