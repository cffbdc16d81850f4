//! Small ptrace operations: why a stopped process is stopped.
//!
//! `/proc` shows that a process is stopped (state `T`) but not by which signal,
//! which is the difference between "Stopped" (SIGTSTP, ^Z), "Stopped (signal)"
//! (SIGSTOP) and "Stopped (tty input/output)" (SIGTTIN/SIGTTOU). `PTRACE_SEIZE`,
//! `PTRACE_INTERRUPT`, then `waitpid` reports the group-stop with its signal, and
//! `PTRACE_DETACH` leaves the process stopped exactly as it was (verified in
//! shared/research/jobcontrol.md §3.3). Any failure (no permission, Yama, already
//! traced) just means "unknown".

use nix::sys::ptrace;
use nix::sys::signal::Signal;
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

/// The signal that stopped `pid`, if it is in a job-control stop and may be traced.
#[must_use]
pub fn stop_signal(pid: Pid) -> Option<Signal> {
    ptrace::seize(pid, ptrace::Options::empty()).ok()?;
    let result = ptrace::interrupt(pid)
        .ok()
        .and_then(|()| waitpid(pid, Some(WaitPidFlag::__WALL)).ok())
        .and_then(|status| match status {
            WaitStatus::PtraceEvent(_, sig, _) | WaitStatus::Stopped(_, sig) => Some(sig),
            _ => None,
        });
    let _ = ptrace::detach(pid, None);
    result.filter(|s| {
        matches!(
            s,
            Signal::SIGTSTP | Signal::SIGSTOP | Signal::SIGTTIN | Signal::SIGTTOU
        )
    })
}
