//! `--status` and `--stop`: acting on the daemon a pidfile (or a job record)
//! names, and only on it.
//!
//! The daemon is named by a [`Target`]: `-p FILE`, or `--job ID` for a daemon
//! started without a pidfile, whose job record (`hupkit_common::records`)
//! then plays the part of the pidfile and its identity record together.
//!
//! `--reload`, `--pause` and `--resume` signal the same verified daemon (its
//! group, for the last two); `--restart` (`crate::restart`) stops it as
//! `--stop` does and starts it again from its job record.
//!
//! Both files are read only if they pass the rules of
//! `hupkit_common::safepath` (reached without another user's symbolic link or
//! writable directory, regular, owned by the caller or root, writable by no
//! one else): another user could otherwise plant them naming any process with
//! its public identity. A refused file is status 4, and nothing is signalled.
//!
//! The PID in the pidfile is trusted only together with the identity record
//! beside it (`FILE.id`): the process at that PID must have the recorded start
//! time and boot, and must not be a zombie. `--stop` then opens a pidfd, checks
//! the identity once more (so the pidfd is known to be the daemon), and sends
//! every signal through it, so a PID reused meanwhile is never signalled; it
//! waits by polling the pidfd, which becomes readable when the process ends
//! (zombies count as ended, whoever reaps them).

use std::path::{Path, PathBuf};
use std::time::Duration;

use hupkit_common::diag::strerror;
use hupkit_common::exit::{self, Status, lsb as code};
use hupkit_common::identity::{Identity, Liveness};
use hupkit_common::pidfd::{self, GroupSignalError, PidFd};
use hupkit_common::proc::Stat;
use hupkit_common::quote::quote;
use hupkit_common::{Error, Result};
use nix::errno::Errno;
use nix::sys::signal::Signal;
use nix::unistd::Pid;

use crate::records::{self, JobId, PidfileState};

/// The daemon a control acts on: the one selector every control of detach takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `-p FILE`: the pidfile (absolute) and its identity record.
    Pidfile(PathBuf),
    /// `--job ID`: the job record of that ID.
    Job(JobId),
}

/// One item of a `--retry` schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Item {
    /// Send this signal.
    Signal(Signal),
    /// Wait this long for the daemon to end.
    Wait(Duration),
    /// Repeat the rest of the schedule for ever.
    Forever,
}

/// Parses a signal: `HUP`, `SIGHUP`, or `-1`.
#[must_use]
pub fn parse_signal(text: &str) -> Option<Signal> {
    let name = text.strip_prefix('-').unwrap_or(text);
    if let Ok(n) = name.parse::<i32>() {
        return if text.starts_with('-') {
            Signal::try_from(n).ok()
        } else {
            None
        };
    }
    let upper = name.to_ascii_uppercase();
    let full = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    full.parse().ok()
}

/// Parses start-stop-daemon's schedule syntax: `N` (`TERM/N/KILL/N`) or items
/// joined by `/` (signal names or `-NUMBER`, seconds, `forever`).
pub fn parse_schedule(text: &str) -> Result<Vec<Item>> {
    let bad = |why: &str| {
        Error::usage(
            format!(
                "invalid --retry schedule {}: {why}",
                quote(std::ffi::OsStr::new(text))
            ),
            exit::CANCELED,
        )
    };
    if let Ok(secs) = text.parse::<u64>() {
        let d = Duration::from_secs(secs);
        return Ok(vec![
            Item::Signal(Signal::SIGTERM),
            Item::Wait(d),
            Item::Signal(Signal::SIGKILL),
            Item::Wait(d),
        ]);
    }
    let mut items = Vec::new();
    for word in text.split('/') {
        let item = if word == "forever" {
            Item::Forever
        } else if let Ok(secs) = word.parse::<u64>() {
            Item::Wait(Duration::from_secs(secs))
        } else if let Some(sig) = parse_signal(word) {
            Item::Signal(sig)
        } else {
            return Err(bad(&format!(
                "{} is not a signal, a number of seconds or 'forever'",
                quote(std::ffi::OsStr::new(word))
            )));
        };
        items.push(item);
    }
    if items.len() < 2 {
        return Err(bad("it needs at least two items"));
    }
    if items.iter().filter(|i| **i == Item::Forever).count() > 1
        || items.last() == Some(&Item::Forever)
    {
        return Err(bad("'forever' may appear once, not last"));
    }
    if !items.iter().any(|i| matches!(i, Item::Signal(_))) {
        return Err(bad("it sends no signal"));
    }
    Ok(items)
}

/// The default schedule: TERM, then wait up to 10 seconds.
#[must_use]
pub fn default_schedule() -> Vec<Item> {
    vec![
        Item::Signal(Signal::SIGTERM),
        Item::Wait(Duration::from_secs(10)),
    ]
}

/// What the target's daemon is now.
enum Found {
    NoPidfile,
    Invalid(String),
    /// The pidfile or its record is unsafe to trust: the file, why.
    Refused(std::path::PathBuf, String),
    /// Verified alive.
    Running(Identity),
    /// Identity record missing: the PID is alive but cannot be verified.
    Unverified(Pid),
    /// Recorded, but gone (or a zombie, or the PID reused).
    Dead(Pid, Option<Identity>),
}

impl From<PidfileState> for Found {
    fn from(state: PidfileState) -> Found {
        match state {
            PidfileState::Missing => Found::NoPidfile,
            PidfileState::Invalid(why) => Found::Invalid(why),
            PidfileState::Refused(file, why) => Found::Refused(file, why),
            PidfileState::Pid(pid, Some(id)) => match id.liveness() {
                Liveness::Alive => Found::Running(id),
                Liveness::Gone => Found::Dead(pid, Some(id)),
            },
            PidfileState::Pid(pid, None) => match Stat::read(pid) {
                Ok(st) if !st.state.has_exited() => Found::Unverified(pid),
                _ => Found::Dead(pid, None),
            },
        }
    }
}

/// A target as read now: what it says, how to name it in messages, and the
/// pidfile to remove once its daemon is gone.
struct Read {
    found: Found,
    /// `pidfile '/run/x.pid'`, `job record '/home/u/.../1234-5678.job'`.
    what: String,
    /// The line when there is nothing to read.
    missing: String,
    pidfile: Option<PathBuf>,
}

fn read(target: &Target) -> Read {
    match target {
        Target::Pidfile(pidfile) => {
            let q = quote(pidfile.as_os_str());
            Read {
                found: records::read_pidfile(pidfile).into(),
                what: format!("pidfile {q}"),
                missing: format!("no pidfile {q}"),
                pidfile: Some(pidfile.clone()),
            }
        }
        Target::Job(id) => {
            let missing = format!("no record of job {id}");
            let Some(path) = id.path() else {
                return Read {
                    found: Found::NoPidfile,
                    what: format!("job {id}"),
                    missing,
                    pidfile: None,
                };
            };
            let (state, pidfile) = records::read_job(&path, *id);
            Read {
                found: state.into(),
                what: format!("job record {}", quote(path.as_os_str())),
                missing,
                pidfile,
            }
        }
    }
}

/// The line for a pidfile (or record) refused under `safepath`'s rules.
fn refusal(file: &Path, why: &str) -> String {
    crate::refusal_text(file, why)
}

/// Removes the pidfile, if any, when it still names `id`.
fn forget(pidfile: Option<&Path>, id: &Identity) {
    if let Some(p) = pidfile {
        records::remove_pidfile(p, id);
    }
}

/// `--status`: the LSB code and the line to print.
#[must_use]
pub fn status(target: &Target) -> (Status, String) {
    let r = read(target);
    match r.found {
        Found::NoPidfile => (code::NOT_RUNNING, format!("not running ({})", r.missing)),
        Found::Invalid(why) => (code::UNKNOWN, format!("cannot use {}: {why}", r.what)),
        Found::Refused(file, why) => (code::UNKNOWN, refusal(&file, &why)),
        Found::Running(id) => (code::OK, format!("running (PID {})", id.pid)),
        Found::Unverified(pid) => (
            code::OK,
            format!(
                "PID {pid} is alive, but unverified (no identity record {})",
                r.pidfile
                    .as_deref()
                    .map_or_else(String::new, |p| quote(records::id_path(p).as_os_str()))
            ),
        ),
        Found::Dead(pid, _) => (
            code::DEAD,
            format!("not running, but {} names PID {pid}", r.what),
        ),
    }
}

/// `--stop`: the exit code and the line to print.
#[must_use]
pub fn stop(target: &Target, schedule: &[Item]) -> (Status, String) {
    let r = read(target);
    let pidfile = r.pidfile.as_deref();
    let id = match r.found {
        Found::NoPidfile => return (code::DEAD, format!("not running ({})", r.missing)),
        Found::Invalid(why) => return (code::UNKNOWN, format!("cannot use {}: {why}", r.what)),
        Found::Refused(file, why) => return (code::UNKNOWN, refusal(&file, &why)),
        Found::Unverified(pid) => {
            return (
                code::UNKNOWN,
                format!(
                    "not signalling PID {pid}: no identity record {} to verify it",
                    pidfile.map_or_else(String::new, |p| quote(records::id_path(p).as_os_str()))
                ),
            );
        }
        Found::Dead(pid, id) => {
            if let Some(id) = id {
                forget(pidfile, &id);
            }
            return (code::DEAD, format!("not running (PID {pid} is gone)"));
        }
        Found::Running(id) => id,
    };
    let pidfd = match PidFd::open(id.pid) {
        Ok(fd) if id.liveness() == Liveness::Alive => fd,
        _ => {
            forget(pidfile, &id);
            return (code::DEAD, format!("not running (PID {} is gone)", id.pid));
        }
    };
    if run_schedule(&pidfd, schedule) {
        forget(pidfile, &id);
        (code::OK, format!("stopped PID {}", id.pid))
    } else {
        (code::REFUSED, format!("PID {} refused to die", id.pid))
    }
}

/// The target's daemon, verified alive and held by a pidfd whose identity was
/// checked after opening; else the code and line for why not (nothing is
/// signalled then). `Err` with [`code::DEAD`] when it is not running.
fn verified(target: &Target) -> std::result::Result<(Identity, PidFd), (Status, String)> {
    let r = read(target);
    let pidfile = r.pidfile.as_deref();
    let id = match r.found {
        Found::NoPidfile => return Err((code::DEAD, format!("not running ({})", r.missing))),
        Found::Invalid(why) => {
            return Err((code::UNKNOWN, format!("cannot use {}: {why}", r.what)));
        }
        Found::Refused(file, why) => return Err((code::UNKNOWN, refusal(&file, &why))),
        Found::Unverified(pid) => {
            return Err((
                code::UNKNOWN,
                format!(
                    "not signalling PID {pid}: no identity record {} to verify it",
                    pidfile.map_or_else(String::new, |p| quote(records::id_path(p).as_os_str()))
                ),
            ));
        }
        Found::Dead(pid, _) => {
            return Err((code::DEAD, format!("not running (PID {pid} is gone)")));
        }
        Found::Running(id) => id,
    };
    match PidFd::open(id.pid) {
        Ok(fd) if id.liveness() == Liveness::Alive => Ok((id, fd)),
        _ => Err((code::DEAD, format!("not running (PID {} is gone)", id.pid))),
    }
}

/// `--reload`: sends `sig` (SIGHUP unless `--signal`) to the daemon itself,
/// through a pidfd opened on the verified daemon.
#[must_use]
pub fn reload(target: &Target, sig: Signal) -> (Status, String) {
    let (id, pidfd) = match verified(target) {
        Ok(v) => v,
        Err(e) => return e,
    };
    match pidfd.signal(sig) {
        Ok(()) => (code::OK, format!("sent {} to PID {}", sig.as_str(), id.pid)),
        Err(Errno::ESRCH) => (code::DEAD, format!("not running (PID {} is gone)", id.pid)),
        Err(e) => (
            code::UNKNOWN,
            format!("cannot signal PID {}: {}", id.pid, strerror(e)),
        ),
    }
}

/// `--pause` (SIGSTOP) and `--resume` (SIGCONT): signals the daemon's whole
/// process group (the daemon and the children it did not move elsewhere),
/// through the group leader's pidfd when the leader lives, else with `killpg`
/// after re-checking that the verified daemon is still in the group
/// (`hupkit_common::pidfd::signal_group`): a reused group ID is never signalled.
#[must_use]
pub fn signal_group(target: &Target, sig: Signal) -> (Status, String) {
    let (id, _pidfd) = match verified(target) {
        Ok(v) => v,
        Err(e) => return e,
    };
    let gone = || (code::DEAD, format!("not running (PID {} is gone)", id.pid));
    let Ok(daemon) = Stat::read(id.pid) else {
        return gone();
    };
    if daemon.starttime != id.starttime {
        return gone();
    }
    let pgid = daemon.pgrp;
    let leader = Stat::read(pgid)
        .ok()
        .filter(|l| l.pgrp == pgid && !l.state.has_exited());
    match pidfd::signal_group(pgid, leader.as_ref(), &[&daemon], sig) {
        Ok(()) => (
            code::OK,
            format!(
                "sent {} to process group {pgid} (PID {})",
                sig.as_str(),
                id.pid
            ),
        ),
        Err(GroupSignalError::Gone) => gone(),
        Err(GroupSignalError::Sys(e)) => (
            code::UNKNOWN,
            format!("cannot signal process group {pgid}: {}", strerror(e)),
        ),
    }
}

/// Runs the schedule; true once the process has ended.
fn run_schedule(pidfd: &PidFd, schedule: &[Item]) -> bool {
    let ended = |d| pidfd.wait_exit(d).unwrap_or(false);
    let forever_at = schedule.iter().position(|i| *i == Item::Forever);
    let mut i = 0;
    loop {
        let Some(item) = schedule.get(i) else {
            return ended(Duration::ZERO);
        };
        match item {
            Item::Signal(sig) => {
                if pidfd.signal(*sig).is_err() {
                    return ended(Duration::from_millis(100));
                }
            }
            Item::Wait(d) => {
                if ended(*d) {
                    return true;
                }
            }
            Item::Forever => {}
        }
        i += 1;
        if i == schedule.len() {
            if let Some(f) = forever_at {
                i = f + 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules() {
        let s = |t| parse_schedule(t).unwrap();
        assert_eq!(
            s("TERM/5/KILL/2"),
            vec![
                Item::Signal(Signal::SIGTERM),
                Item::Wait(Duration::from_secs(5)),
                Item::Signal(Signal::SIGKILL),
                Item::Wait(Duration::from_secs(2))
            ]
        );
        assert_eq!(s("3").len(), 4);
        assert_eq!(s("SIGINT/1")[0], Item::Signal(Signal::SIGINT));
        assert_eq!(s("-9/1")[0], Item::Signal(Signal::SIGKILL));
        assert_eq!(s("hup/1/forever/TERM/1")[2], Item::Forever);
        for bad in [
            "",
            "TERM",
            "FOO/1",
            "1/2",
            "TERM/forever",
            "forever/TERM/forever/1",
            "9/x",
        ] {
            assert!(parse_schedule(bad).is_err(), "{bad}");
        }
    }
}
