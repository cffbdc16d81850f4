//! Process file descriptors: signal and wait on a process without PID races.
//!
//! A pidfd refers to one process for its whole life: once opened (and the
//! process's identity checked, see [`crate::identity`]), a signal sent through it
//! can never reach a process that later reuses the PID. It becomes readable when
//! the process exits, which also works for processes that are not our children.
//! nix has no wrapper yet; these are the raw system calls (Linux 5.3+).
//!
//! [`signal_group`] signals a whole job the same way: through its leader's
//! pidfd when the leader lives, else with `killpg` after re-checking a member.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

use nix::errno::Errno;
use nix::libc;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::Signal;
use nix::unistd::Pid;

use crate::diag::strerror;
use crate::identity::{Identity, Liveness};
use crate::proc::Stat;

/// A process file descriptor.
#[derive(Debug)]
pub struct PidFd(OwnedFd);

impl PidFd {
    /// `pidfd_open(pid, 0)`, close-on-exec.
    pub fn open(pid: Pid) -> Result<PidFd, Errno> {
        // SAFETY: pidfd_open takes two integers and returns a new descriptor or -1.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid.as_raw(), 0) };
        if fd < 0 {
            return Err(Errno::last());
        }
        let fd = i32::try_from(fd).map_err(|_| Errno::EBADF)?;
        // SAFETY: the kernel just returned this descriptor to us; nothing else owns it.
        Ok(PidFd(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    /// `pidfd_send_signal(fd, sig, NULL, 0)`.
    pub fn signal(&self, sig: Signal) -> Result<(), Errno> {
        self.send_signal(sig, 0)
    }

    /// `pidfd_send_signal(fd, sig, NULL, PIDFD_SIGNAL_PROCESS_GROUP)` (Linux 6.9+):
    /// signals the process group whose ID is this process's PID (it must be the
    /// group's leader). The pidfd pins the group ID, so it cannot have been reused.
    pub fn signal_group(&self, sig: Signal) -> Result<(), Errno> {
        const PIDFD_SIGNAL_PROCESS_GROUP: libc::c_uint = 1 << 2;
        self.send_signal(sig, PIDFD_SIGNAL_PROCESS_GROUP)
    }

    /// `pidfd_send_signal(fd, sig, NULL, flags)`.
    fn send_signal(&self, sig: Signal, flags: libc::c_uint) -> Result<(), Errno> {
        // SAFETY: a null siginfo asks the kernel to fill it in as kill(2)
        // would; the kernel checks the flags.
        let r = unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                self.0.as_raw_fd(),
                sig as libc::c_int,
                std::ptr::null::<libc::siginfo_t>(),
                flags,
            )
        };
        if r < 0 { Err(Errno::last()) } else { Ok(()) }
    }

    /// The raw wait status of the exited process, from `PIDFD_GET_INFO` with
    /// `PIDFD_INFO_EXIT` (Linux 6.15+). `Ok(None)`: not known yet (the process
    /// has not exited, or its parent has not reaped it); `Err(ENOTTY/EINVAL)`:
    /// the kernel cannot tell.
    pub fn exit_status(&self) -> Result<Option<i32>, Errno> {
        /// `struct pidfd_info`, version 0 (64 bytes).
        #[repr(C)]
        #[derive(Default)]
        struct PidfdInfo {
            mask: u64,
            cgroupid: u64,
            ids: [u32; 11],
            exit_code: i32,
        }
        const PIDFD_INFO_EXIT: u64 = 1 << 3;
        /// `_IOWR(0xFF, 11, struct pidfd_info)`.
        const PIDFD_GET_INFO: libc::c_ulong = 0xC040_FF0B;
        let mut info = PidfdInfo {
            mask: PIDFD_INFO_EXIT,
            ..PidfdInfo::default()
        };
        // SAFETY: `info` is a valid, writable 64-byte pidfd_info, as the request encodes.
        let r = unsafe { libc::ioctl(self.0.as_raw_fd(), PIDFD_GET_INFO, &raw mut info) };
        if r < 0 {
            return match Errno::last() {
                Errno::ESRCH => Ok(None),
                e => Err(e),
            };
        }
        Ok((info.mask & PIDFD_INFO_EXIT != 0).then_some(info.exit_code))
    }

    /// Waits up to `timeout` for the process to exit; true if it has.
    pub fn wait_exit(&self, timeout: Duration) -> Result<bool, Errno> {
        let ms = u16::try_from(timeout.as_millis()).unwrap_or(u16::MAX);
        let mut fds = [PollFd::new(
            std::os::fd::AsFd::as_fd(&self.0),
            PollFlags::POLLIN,
        )];
        match poll(&mut fds, PollTimeout::from(ms)) {
            Ok(n) => Ok(n > 0),
            Err(Errno::EINTR) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// The descriptor, for polling together with others.
    #[must_use]
    pub fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        std::os::fd::AsFd::as_fd(&self.0)
    }
}

/// Why a group could not be signalled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum GroupSignalError {
    /// No member seen by the scan is still in the group.
    #[error("its processes are gone")]
    Gone,
    /// The signal was refused.
    #[error("{}", strerror(*.0))]
    Sys(Errno),
}

/// Sends `sig` to the whole group `pgid`, whose leader the scan saw as `leader`:
/// through the leader's pidfd (`PIDFD_SIGNAL_PROCESS_GROUP`, Linux 6.9+) after
/// checking that it is still that process, else with `killpg` after re-checking
/// that one of `members` still belongs to the group. Either way, a group whose
/// ID was reused by another process is never signalled.
pub fn signal_group(
    pgid: Pid,
    leader: Option<&Stat>,
    members: &[&Stat],
    sig: Signal,
) -> Result<(), GroupSignalError> {
    if let Some(leader) = leader {
        let id = Identity {
            pid: leader.pid,
            starttime: leader.starttime,
            boot_id: crate::identity::boot_id().unwrap_or_default(),
        };
        if let Ok(fd) = PidFd::open(pgid) {
            if id.liveness() == Liveness::Alive {
                match fd.signal_group(sig) {
                    Ok(()) => return Ok(()),
                    Err(Errno::EINVAL) => {} // kernel before 6.9: fall back
                    Err(e) => return Err(GroupSignalError::Sys(e)),
                }
            }
        }
    }
    let still = members.iter().any(|m| {
        Stat::read(m.pid).is_ok_and(|now| now.starttime == m.starttime && now.pgrp == pgid)
    });
    if !still {
        return Err(GroupSignalError::Gone);
    }
    nix::sys::signal::killpg(pgid, sig).map_err(GroupSignalError::Sys)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_and_signal_a_child() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let pid = Pid::from_raw(i32::try_from(child.id()).unwrap());
        let fd = PidFd::open(pid).unwrap();
        assert!(!fd.wait_exit(Duration::from_millis(10)).unwrap());
        fd.signal(Signal::SIGKILL).unwrap();
        assert!(fd.wait_exit(Duration::from_secs(10)).unwrap());
        child.wait().unwrap();
        // Reaped: the kernel now knows the status (9 = killed by SIGKILL).
        assert_eq!(fd.exit_status(), Ok(Some(9)));
    }

    #[test]
    fn a_gone_group_is_not_signalled() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = Pid::from_raw(i32::try_from(child.id()).unwrap());
        let seen = Stat::read(pid);
        child.wait().unwrap();
        // Seen (or not) before it was reaped; either way it is gone now.
        let members: Vec<&Stat> = seen.as_ref().into_iter().collect();
        assert_eq!(
            signal_group(pid, None, &members, Signal::SIGCONT),
            Err(GroupSignalError::Gone)
        );
        assert_eq!(GroupSignalError::Gone.to_string(), "its processes are gone");
        assert_eq!(
            GroupSignalError::Sys(Errno::EPERM).to_string(),
            "Operation not permitted"
        );
    }
}
