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

/// Sets every signal from 1 to 64 (but SIGKILL and SIGSTOP) to `SIG_DFL` and
/// empties the signal mask, with raw system calls: async-signal-safe, for the
/// child side of a fork.
///
/// glibc's `signal` and `sigaction` refuse its internal signals 32 and 33
/// (`EINVAL`), so a caller that ignores them would pass that on through
/// `execve`; the raw `rt_sigaction` reaches them too.
pub fn reset_all_raw() -> Result<(), Errno> {
    let act = KernelSigaction {
        handler: libc::SIG_DFL,
        flags: 0,
        restorer: 0,
        mask: 0,
    };
    for sig in 1..=64 {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
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

    #[test]
    fn raw_reset_reaches_glibc_internal_signals() {
        // In a child, so that this test process keeps its own dispositions.
        // SAFETY: the child only makes raw system calls (into stack buffers, no
        // allocation) and _exits.
        match unsafe { nix::unistd::fork() }.unwrap() {
            nix::unistd::ForkResult::Child => {
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
                        32,
                        &raw const ign,
                        std::ptr::null_mut::<KernelSigaction>(),
                        8usize,
                    );
                }
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
