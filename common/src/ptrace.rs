//! Small ptrace operations: waiting for a ptrace stop (decoded raw, with a
//! deadline), resuming with any signal, and why a stopped process is stopped.
//!
//! Wait statuses are decoded here by hand: nix's `Signal` cannot hold the
//! real-time signals (32 to 64, glibc's own 32 and 33 included), and nix's
//! `waitpid` fails with `EINVAL` after the kernel has already consumed such a
//! stop, so the signal would be lost. No wait blocks: a thread that cannot stop
//! (in `vfork`, waiting in state D) must not hang its tracer, so every wait has a
//! deadline. Past it the caller gives up and lets the thread that traces end: the
//! kernel releases a seized tracee, untouched, when its tracing thread exits.
//!
//! `/proc` shows that a process is stopped (state `T`) but not by which signal,
//! which is the difference between "Stopped" (SIGTSTP, ^Z), "Stopped (signal)"
//! (SIGSTOP) and "Stopped (tty input/output)" (SIGTTIN/SIGTTOU). `PTRACE_SEIZE`,
//! `PTRACE_INTERRUPT`, then `waitpid` reports the group-stop with its signal, and
//! `PTRACE_DETACH` leaves the process stopped exactly as it was (verified in
//! shared/research/jobcontrol.md §3.3). Any failure (no permission, Yama, already
//! traced) just means "unknown".

use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::libc;
use nix::sys::ptrace;
use nix::sys::signal::Signal;
use nix::unistd::Pid;

/// How long a thread may take to reach a ptrace stop we asked for.
pub const STOP_WAIT: Duration = Duration::from_secs(2);

/// How much longer each poll of [`wait_stop`] sleeps than the one before,
/// and the most it sleeps: a stop is usually a matter of microseconds, so
/// the first polls are cheap, and a slow one costs at most a millisecond of
/// lateness without spinning a core.
const POLL_STEP: Duration = Duration::from_micros(20);
const POLL_MAX: Duration = Duration::from_millis(1);

/// A ptrace stop (or the end of the tracee), from a raw wait status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// It exited or was killed.
    Gone,
    /// A syscall-entry or syscall-exit stop (`SIGTRAP | 0x80`, with `PTRACE_O_TRACESYSGOOD`).
    Syscall,
    /// A `PTRACE_EVENT_*` stop: the event and the signal (for `PTRACE_EVENT_STOP`,
    /// the signal of a group-stop, or SIGTRAP after `PTRACE_INTERRUPT`).
    Event(i32, i32),
    /// A signal-delivery-stop (or the trap of a single step): the signal number, 1 to 64.
    Signal(i32),
}

/// In words, for a diagnostic (`expected a syscall exit, got signal 11`).
impl std::fmt::Display for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Stop::Gone => f.write_str("its end"),
            Stop::Syscall => f.write_str("a system-call stop"),
            Stop::Event(event, sig) => write!(f, "ptrace event {event} (signal {sig})"),
            Stop::Signal(sig) => write!(f, "signal {sig}"),
        }
    }
}

/// Decodes a raw wait status.
#[must_use]
pub fn decode(status: i32) -> Stop {
    if !libc::WIFSTOPPED(status) {
        return Stop::Gone;
    }
    let sig = libc::WSTOPSIG(status);
    match status >> 16 {
        0 if sig == libc::SIGTRAP | 0x80 => Stop::Syscall,
        0 => Stop::Signal(sig),
        event => Stop::Event(event, sig),
    }
}

/// Waits for thread `tid` (a tracee of the calling thread) to stop, until
/// `deadline`; `Ok(None)` if it has not by then.
///
/// # Errors
/// The `waitpid` error other than `EINTR` (`ECHILD` is reported as [`Stop::Gone`]).
pub fn wait_stop(tid: Pid, deadline: Instant) -> Result<Option<Stop>, Errno> {
    let mut pause = Duration::ZERO;
    loop {
        let mut status = 0;
        // SAFETY: waitpid(2) with a valid pointer to a local int.
        let r =
            unsafe { libc::waitpid(tid.as_raw(), &raw mut status, libc::__WALL | libc::WNOHANG) };
        match r {
            0 => {
                if Instant::now() >= deadline {
                    return Ok(None);
                }
                // Spin first (a stop is usually a matter of microseconds), then back off.
                if pause.is_zero() {
                    std::thread::yield_now();
                } else {
                    std::thread::sleep(pause);
                }
                pause = (pause + POLL_STEP).min(POLL_MAX);
            }
            -1 => match Errno::last() {
                Errno::EINTR => {}
                Errno::ECHILD => return Ok(Some(Stop::Gone)),
                e => return Err(e),
            },
            _ => return Ok(Some(decode(status))),
        }
    }
}

/// Resumes a stopped tracee with ptrace `request` (`PTRACE_CONT`,
/// `PTRACE_SYSCALL`, `PTRACE_SINGLESTEP`, `PTRACE_DETACH`), delivering signal
/// `sig` (0: none; any number, real-time ones included).
///
/// # Errors
/// The ptrace error.
pub fn resume(request: libc::c_uint, tid: Pid, sig: i32) -> Result<(), Errno> {
    let data = usize::try_from(sig).unwrap_or(0);
    // SAFETY: a resuming ptrace request: addr is ignored, data is a signal number
    // passed by value (the kernel never dereferences it).
    let r = unsafe {
        libc::ptrace(
            request,
            tid.as_raw(),
            std::ptr::null_mut::<libc::c_void>(),
            data as *mut libc::c_void,
        )
    };
    Errno::result(r).map(drop)
}

/// The signal that stopped `pid`, if it is in a job-control stop and may be traced.
///
/// It is traced from a thread of its own, so that a process that does not
/// stop in time is released (by that thread's exit) however it is stuck; a
/// signal that arrives meanwhile is delivered, not swallowed.
#[must_use]
pub fn stop_signal(pid: Pid) -> Option<Signal> {
    let sig = std::thread::scope(|s| s.spawn(|| stop_signal_here(pid)).join().ok().flatten())?;
    Signal::try_from(sig).ok().filter(|s| {
        matches!(
            s,
            Signal::SIGTSTP | Signal::SIGSTOP | Signal::SIGTTIN | Signal::SIGTTOU
        )
    })
}

fn stop_signal_here(pid: Pid) -> Option<i32> {
    ptrace::seize(pid, ptrace::Options::empty()).ok()?;
    if ptrace::interrupt(pid).is_err() {
        return None;
    }
    let deadline = Instant::now() + STOP_WAIT;
    loop {
        match wait_stop(pid, deadline) {
            Ok(Some(Stop::Event(_, sig))) => {
                let _ = resume(libc::PTRACE_DETACH, pid, 0);
                return Some(sig);
            }
            Ok(Some(Stop::Signal(sig))) => {
                // A signal on its way in: deliver it, then take the interrupt's stop.
                if resume(libc::PTRACE_CONT, pid, sig).is_err() {
                    return None;
                }
            }
            Ok(Some(Stop::Syscall)) => {
                if resume(libc::PTRACE_CONT, pid, 0).is_err() {
                    return None;
                }
            }
            // Gone, or stuck past the deadline: returning ends the tracing
            // thread, which releases it.
            Ok(Some(Stop::Gone) | None) | Err(_) => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_time_stops_decode() {
        // A stop by signal 34: (34 << 8) | 0x7f.
        assert_eq!(decode((34 << 8) | 0x7f), Stop::Signal(34));
        assert_eq!(decode((32 << 8) | 0x7f), Stop::Signal(32));
        assert_eq!(decode(((5 | 0x80) << 8) | 0x7f), Stop::Syscall);
        assert_eq!(
            decode((libc::PTRACE_EVENT_STOP << 16) | (19 << 8) | 0x7f),
            Stop::Event(libc::PTRACE_EVENT_STOP, 19)
        );
        assert_eq!(decode(0), Stop::Gone);
        assert_eq!(decode(9), Stop::Gone);
    }
}
