//! Following one process group until it ends or stops, at a cost that does not
//! grow with the machine's process count.
//!
//! rfg hands its terminal to a job that is not its child, so it cannot
//! `waitpid` for it. Scanning all of `/proc` on every tick (as rfg first did)
//! cost a third to a half of a core on a machine with 2000 processes, for as
//! long as the job ran. A [`GroupWatch`] looks only at the members it knows:
//!
//! - a pidfd per member, all polled together: readable when the member exits,
//!   so an ending wakes the watch at once;
//! - each member's own `/proc/PID/stat` once per tick, checked against its
//!   start time: the only way to see a stop (^Z) of a process one did not
//!   start;
//! - one scan of `/proc` only when every known member has exited or stopped,
//!   to confirm it for the whole group: that scan also adopts the members
//!   forked since (a loop's children, a member reparented after its parent
//!   exited), so no member the watch has not seen can make it wrong. Members
//!   forked while known ones still run need not be known before then: the
//!   group is running either way.
//!
//! The cost per tick is a `poll` plus one small read per known member.

use std::time::Duration;

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::unistd::Pid;

use crate::jobs::{JobState, Snapshot};
use crate::pidfd::PidFd;
use crate::proc::Stat;

/// One member the watch knows: its identity, and a pidfd when one could be opened.
#[derive(Debug)]
struct Member {
    pid: Pid,
    starttime: u64,
    fd: Option<PidFd>,
}

impl Member {
    /// The member `seen` by a scan, with a pidfd opened only if it is still
    /// that process.
    fn of(seen: &Stat) -> Member {
        let fd = PidFd::open(seen.pid)
            .ok()
            .filter(|_| Stat::read(seen.pid).is_ok_and(|now| now.starttime == seen.starttime));
        Member {
            pid: seen.pid,
            starttime: seen.starttime,
            fd,
        }
    }
}

/// The known live members of a process group, followed by pidfd and their own
/// `/proc` entries.
#[derive(Debug)]
pub struct GroupWatch {
    pgid: Pid,
    members: Vec<Member>,
}

impl GroupWatch {
    /// Follows group `pgid`, whose members a scan saw as `members`.
    #[must_use]
    pub fn new(pgid: Pid, members: &[&Stat]) -> GroupWatch {
        GroupWatch {
            pgid,
            members: members
                .iter()
                .filter(|m| !m.state.has_exited())
                .map(|m| Member::of(m))
                .collect(),
        }
    }

    /// Waits up to `tick` for a known member to exit (or for a signal to
    /// interrupt the wait), then says what the group is doing: `Running`,
    /// `Stopped(None)` (every live member stopped; the signal is not probed) or
    /// `Done` (no member left).
    pub fn wait(&mut self, tick: Duration) -> JobState {
        let ms = u16::try_from(tick.as_millis()).unwrap_or(u16::MAX);
        let mut fds: Vec<PollFd<'_>> = self
            .members
            .iter()
            .filter_map(|m| m.fd.as_ref())
            .map(|fd| PollFd::new(fd.as_fd(), PollFlags::POLLIN))
            .collect();
        // A signal ends the wait early (EINTR): the caller looks at its flags.
        match poll(&mut fds, PollTimeout::from(ms)) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(_) => std::thread::sleep(tick),
        }
        drop(fds);
        self.state()
    }

    /// What the group is doing now: the known members read one by one, and
    /// the whole group scanned only when none of them is running.
    fn state(&mut self) -> JobState {
        let mut running = false;
        self.members.retain(|m| match Stat::read(m.pid) {
            Ok(now) if now.starttime == m.starttime && !now.state.has_exited() => {
                running |= !now.state.is_stopped();
                true
            }
            // Gone, a zombie, or its PID already reused: it has exited.
            _ => false,
        });
        if running {
            return JobState::Running;
        }
        self.confirm()
    }

    /// Scans `/proc` for every member of the group: what it is doing, and the
    /// live members the watch did not know, adopted. A failed scan finds no
    /// member: the group has ended.
    fn confirm(&mut self) -> JobState {
        let Ok(snap) = Snapshot::take() else {
            return JobState::Done;
        };
        let group: Vec<&Stat> = snap.procs.iter().filter(|p| p.pgrp == self.pgid).collect();
        for p in &group {
            let known = self
                .members
                .iter()
                .any(|m| m.pid == p.pid && m.starttime == p.starttime);
            if !known && !p.state.has_exited() {
                self.members.push(Member::of(p));
            }
        }
        JobState::of(group)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::CommandExt;

    fn pid_of(child: &std::process::Child) -> Pid {
        Pid::from_raw(i32::try_from(child.id()).unwrap())
    }

    #[test]
    fn follows_a_group_through_stop_and_end() {
        // A group of its own: a shell that starts a second member later.
        let mut child = std::process::Command::new("sh")
            .args(["-c", "sleep 30 & wait"])
            .process_group(0)
            .spawn()
            .unwrap();
        let pgid = pid_of(&child);
        let children = format!("/proc/{pgid}/task/{pgid}/children");
        let end = std::time::Instant::now() + Duration::from_secs(10);
        while std::fs::read_to_string(&children).is_ok_and(|c| c.is_empty())
            && std::time::Instant::now() < end
        {
            std::thread::sleep(Duration::from_millis(2));
        }
        let first = Stat::read(pgid).unwrap();
        let mut watch = GroupWatch::new(pgid, &[&first]);
        assert_eq!(watch.wait(Duration::from_millis(1)), JobState::Running);
        nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGSTOP).unwrap();
        let end = std::time::Instant::now() + Duration::from_secs(10);
        let mut state = JobState::Running;
        while state == JobState::Running && std::time::Instant::now() < end {
            state = watch.wait(Duration::from_millis(10));
        }
        assert_eq!(state, JobState::Stopped(None));
        // The scan that confirmed the stop adopted the sleep.
        assert_eq!(watch.members.len(), 2);
        nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGKILL).unwrap();
        child.wait().unwrap();
        let end = std::time::Instant::now() + Duration::from_secs(10);
        while state != JobState::Done && std::time::Instant::now() < end {
            state = watch.wait(Duration::from_millis(10));
        }
        assert_eq!(state, JobState::Done);
    }
}
