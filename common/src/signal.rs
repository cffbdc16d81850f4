//! Signal dispositions and the signal mask.
//!
//! The tools change dispositions only to `SIG_IGN` or `SIG_DFL`; real handlers, where a
//! tool needs them, go through `signal-hook`. Reading a disposition uses
//! `sigaction(sig, NULL, &old)`, which nix does not offer.
//!
//! What the Rust runtime does behind our back matters here: a normal Rust `main`
//! starts with SIGPIPE ignored, and `std::process::Command` resets SIGPIPE in the
//! child but keeps the signal mask. Tools that start programs call
//! [`reset_for_exec`] with what they mean to pass on.

use nix::errno::Errno;
use nix::libc;
use nix::sys::signal::{SigHandler, SigSet, SigmaskHow, Signal, sigprocmask};

/// What a process does when a signal arrives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// `SIG_DFL`: the kernel's default action.
    Default,
    /// `SIG_IGN`: discarded.
    Ignore,
    /// A handler function of the process's own.
    Caught,
}

/// Reads the current disposition of `sig` without changing it.
pub fn disposition(sig: Signal) -> Result<Disposition, Errno> {
    // SAFETY: an all-zero sigaction is a valid value for the kernel to overwrite.
    let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: a null `act` only queries; `old` is a valid, writable sigaction.
    let r = unsafe { libc::sigaction(sig as libc::c_int, std::ptr::null(), &raw mut old) };
    if r != 0 {
        return Err(Errno::last());
    }
    Ok(match old.sa_sigaction {
        libc::SIG_DFL => Disposition::Default,
        libc::SIG_IGN => Disposition::Ignore,
        _ => Disposition::Caught,
    })
}

/// Sets `sig` to `SIG_IGN`.
pub fn ignore(sig: Signal) -> Result<(), Errno> {
    // SAFETY: SIG_IGN installs no handler code, so no handler can run unsafely.
    unsafe { nix::sys::signal::signal(sig, SigHandler::SigIgn) }.map(drop)
}

/// Sets `sig` to `SIG_DFL`.
pub fn set_default(sig: Signal) -> Result<(), Errno> {
    // SAFETY: SIG_DFL installs no handler code, so no handler can run unsafely.
    unsafe { nix::sys::signal::signal(sig, SigHandler::SigDfl) }.map(drop)
}

/// Every signal that can be caught or ignored (all but SIGKILL and SIGSTOP).
pub fn catchable() -> impl Iterator<Item = Signal> {
    Signal::iterator().filter(|s| !matches!(s, Signal::SIGKILL | Signal::SIGSTOP))
}

/// Prepares the signal state a started program inherits: every catchable signal at
/// `SIG_DFL` except those in `keep_ignored`, and an empty signal mask.
pub fn reset_for_exec(keep_ignored: &[Signal]) -> Result<(), Errno> {
    for sig in catchable() {
        if keep_ignored.contains(&sig) {
            ignore(sig)?;
        } else {
            set_default(sig)?;
        }
    }
    sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None)
}

/// The kernel's `struct sigaction` for `rt_sigaction(2)` (`x86_64` and `aarch64` layout).
#[repr(C)]
struct KernelSigaction {
    handler: libc::sighandler_t,
    flags: libc::c_ulong,
    restorer: usize,
    mask: u64,
}

/// Every signal from 1 to 64 but SIGKILL and SIGSTOP: bit N-1 for signal N.
pub const ALL_RAW: u64 = !((1 << (libc::SIGKILL - 1)) | (1 << (libc::SIGSTOP - 1)));

/// Sets every signal from 1 to 64 (but SIGKILL and SIGSTOP) to `SIG_DFL` and
/// empties the signal mask, with raw system calls: async-signal-safe, for the
/// child side of a fork.
///
/// glibc's `signal` and `sigaction` refuse its internal signals 32 and 33
/// (`EINVAL`), so a caller that ignores them would pass that on through
/// `execve`; the raw `rt_sigaction` reaches them too.
pub fn reset_all_raw() -> Result<(), Errno> {
    reset_raw(ALL_RAW)
}

/// [`reset_all_raw`] for what `execve` would pass on: only the signals this
/// process ignores or catches ([`changed_raw`]; all of them if that cannot be
/// read) are set to `SIG_DFL`, and the mask is emptied. The others are at
/// their default already, and `execve` itself resets caught ones, so the
/// program starts as after [`reset_all_raw`], for one read of
/// `/proc/self/status` instead of 62 system calls. Async-signal-safe.
pub fn reset_for_exec_raw() -> Result<(), Errno> {
    reset_raw(changed_raw().unwrap_or(ALL_RAW))
}

/// Sets the signals of `set` (bit N-1 for signal N; SIGKILL and SIGSTOP are
/// skipped) to `SIG_DFL` and empties the signal mask, with raw system calls;
/// async-signal-safe.
pub fn reset_raw(set: u64) -> Result<(), Errno> {
    let act = KernelSigaction {
        handler: libc::SIG_DFL,
        flags: 0,
        restorer: 0,
        mask: 0,
    };
    for sig in 1..=64 {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP || set & (1 << (sig - 1)) == 0 {
            continue;
        }
        // SAFETY: `act` is a valid kernel sigaction; a null old-action pointer is allowed.
        let r = unsafe {
            libc::syscall(
                libc::SYS_rt_sigaction,
                sig,
                &raw const act,
                std::ptr::null_mut::<KernelSigaction>(),
                8usize,
            )
        };
        if r < 0 {
            return Err(Errno::last());
        }
    }
    let empty: u64 = 0;
    // SAFETY: an 8-byte empty set; a null old-set pointer is allowed.
    let r = unsafe {
        libc::syscall(
            libc::SYS_rt_sigprocmask,
            libc::SIG_SETMASK,
            &raw const empty,
            std::ptr::null_mut::<u64>(),
            8usize,
        )
    };
    if r < 0 { Err(Errno::last()) } else { Ok(()) }
}

/// The signals this process ignores or catches (bit N-1 for signal N): the
/// `SigIgn` and `SigCgt` lines of `/proc/self/status`, read with raw system
/// calls into a stack buffer, without allocating: async-signal-safe. `None`
/// if the file cannot be read or parsed (no /proc). (`/proc/self/stat` is
/// shorter, but its signal fields hold only signals 1 to 31.)
#[must_use]
pub fn changed_raw() -> Option<u64> {
    let mut buf = [0u8; 4096];
    // SAFETY: a NUL-terminated path literal; open touches no memory of ours.
    let fd = unsafe {
        libc::open(
            c"/proc/self/status".as_ptr(),
            libc::O_RDONLY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return None;
    }
    let mut len = 0;
    while len < buf.len() {
        let tail = &mut buf[len..];
        // SAFETY: reads at most tail.len() bytes into `tail`, which lives here.
        let n = unsafe { libc::read(fd, tail.as_mut_ptr().cast(), tail.len()) };
        match usize::try_from(n) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(_) if Errno::last() == Errno::EINTR => {}
            Err(_) => return None,
        }
    }
    // SAFETY: closes the descriptor opened above, ours alone.
    unsafe { libc::close(fd) };
    status_signal_sets(&buf[..len])
}

/// `SigIgn | SigCgt` from the text of `/proc/PID/status`; no allocation.
fn status_signal_sets(text: &[u8]) -> Option<u64> {
    let field = |key: &[u8]| {
        text.split(|&b| b == b'\n')
            .find_map(|line| line.strip_prefix(key))
            .and_then(hex)
    };
    Some(field(b"SigIgn:\t")? | field(b"SigCgt:\t")?)
}

/// A hexadecimal `u64` of 1 to 16 digits, nothing else.
fn hex(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || digits.len() > 16 {
        return None;
    }
    digits.iter().try_fold(0u64, |n, &d| {
        let v = match d {
            b'0'..=b'9' => d - b'0',
            b'a'..=b'f' => d - b'a' + 10,
            b'A'..=b'F' => d - b'A' + 10,
            _ => return None,
        };
        Some((n << 4) | u64::from(v))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether `/proc/self/status` shows no ignored and no blocked signal. Raw
    /// system calls into a stack buffer, no allocation: this runs in a child
    /// forked from the multithreaded test harness, where another thread may have
    /// held the allocator's lock at the fork.
    fn nothing_ignored_or_blocked() -> bool {
        let mut buf = [0u8; 8192];
        // SAFETY: a NUL-terminated path literal; open touches no memory of ours.
        let fd = unsafe { libc::open(c"/proc/self/status".as_ptr(), libc::O_RDONLY) };
        if fd < 0 {
            return false;
        }
        let mut len = 0;
        while len < buf.len() {
            let tail = &mut buf[len..];
            // SAFETY: reads at most tail.len() bytes into `tail`, which lives here.
            let n = unsafe { libc::read(fd, tail.as_mut_ptr().cast(), tail.len()) };
            match usize::try_from(n) {
                Ok(0) | Err(_) => break,
                Ok(n) => len += n,
            }
        }
        // SAFETY: closes the descriptor opened above, ours alone.
        unsafe { libc::close(fd) };
        let text = &buf[..len];
        let has = |line: &[u8]| text.windows(line.len()).any(|w| w == line);
        has(b"SigIgn:\t0000000000000000") && has(b"SigBlk:\t0000000000000000")
    }

    /// Ignores `sig` with a raw system call (glibc refuses its own 32 and 33).
    fn raw_ignore(sig: i32) {
        let ign = KernelSigaction {
            handler: libc::SIG_IGN,
            flags: 0,
            restorer: 0,
            mask: 0,
        };
        // SAFETY: as in reset_all_raw.
        unsafe {
            libc::syscall(
                libc::SYS_rt_sigaction,
                sig,
                &raw const ign,
                std::ptr::null_mut::<KernelSigaction>(),
                8usize,
            );
        }
    }

    #[test]
    fn raw_reset_reaches_glibc_internal_signals() {
        // In a child, so that this test process keeps its own dispositions.
        // SAFETY: the child only makes raw system calls (into stack buffers, no
        // allocation) and _exits.
        match unsafe { nix::unistd::fork() }.unwrap() {
            nix::unistd::ForkResult::Child => {
                raw_ignore(32);
                let ok = reset_all_raw().is_ok() && nothing_ignored_or_blocked();
                // SAFETY: ends the child at once.
                unsafe { libc::_exit(i32::from(!ok)) }
            }
            nix::unistd::ForkResult::Parent { child } => {
                let status = nix::sys::wait::waitpid(child, None).unwrap();
                assert_eq!(status, nix::sys::wait::WaitStatus::Exited(child, 0));
            }
        }
    }

    #[test]
    fn reset_for_exec_resets_what_is_ignored_or_caught() {
        // In a child, so that this test process keeps its own dispositions.
        // SAFETY: the child only makes raw system calls (into stack buffers, no
        // allocation) and _exits.
        match unsafe { nix::unistd::fork() }.unwrap() {
            nix::unistd::ForkResult::Child => {
                for sig in [libc::SIGHUP, libc::SIGUSR2, 32, 64] {
                    raw_ignore(sig);
                }
                let want = (1u64 << (libc::SIGHUP - 1))
                    | (1 << (libc::SIGUSR2 - 1))
                    | (1 << 31)
                    | (1 << 63);
                let code = if changed_raw().is_none_or(|set| set & want != want) {
                    1
                } else if reset_for_exec_raw().is_err() {
                    2
                } else if !nothing_ignored_or_blocked() {
                    3
                } else {
                    0
                };
                // SAFETY: ends the child at once.
                unsafe { libc::_exit(code) }
            }
            nix::unistd::ForkResult::Parent { child } => {
                let status = nix::sys::wait::waitpid(child, None).unwrap();
                assert_eq!(status, nix::sys::wait::WaitStatus::Exited(child, 0));
            }
        }
    }

    #[test]
    fn status_text_gives_the_signal_sets() {
        let text = b"Name:\tx\nSigQ:\t0/1\nSigPnd:\t0000000000000000\nSigBlk:\t0000000000000001\nSigIgn:\t8000000080001000\nSigCgt:\t0000000000000400\nCapInh:\t0\n";
        assert_eq!(status_signal_sets(text), Some(0x8000_0000_8000_1400));
        assert_eq!(status_signal_sets(b"SigIgn:\t0000000000000001\n"), None);
        assert_eq!(hex(b"ffffffffffffffff"), Some(u64::MAX));
        assert_eq!(hex(b"10000000000000000"), None);
        assert_eq!(hex(b"1x"), None);
        assert_eq!(hex(b""), None);
    }

    #[test]
    fn catchable_excludes_kill_and_stop() {
        assert!(catchable().all(|s| s != Signal::SIGKILL && s != Signal::SIGSTOP));
        assert!(catchable().any(|s| s == Signal::SIGHUP));
    }

    #[test]
    fn disposition_reads_without_changing() {
        // SIGWINCH is not touched by the test harness.
        assert_eq!(disposition(Signal::SIGWINCH), Ok(Disposition::Default));
        assert_eq!(disposition(Signal::SIGWINCH), Ok(Disposition::Default));
    }
}
