//! `rbg`: bash's `bg`, from outside the shell.
//!
//! Each job named (default `%+`) gets SIGCONT as a whole group, through a pidfd
//! on its leader with `PIDFD_SIGNAL_PROCESS_GROUP` (Linux 6.9+), after checking
//! that the leader is still the process the scan saw; when the leader has
//! exited, through `killpg` after re-checking that a member still belongs to the
//! group. The shell that started the job sees it continue (it waits with
//! `WCONTINUED`) and lists it as Running.
//!
//! Only the caller's session is reached: a PID of another session is refused
//! before anything is signalled (rbg(1), DESCRIPTION OF JOBS).

use std::ffi::OsStr;

use clap::{ArgAction, CommandFactory, Parser};
use hupkit_common::diag::Diag;
use hupkit_common::identity::{Identity, Liveness};
use hupkit_common::jobs::{GROUP_OUTSIDE_NAMESPACE, Job, JobSpec, JobState, Snapshot, Target};
use hupkit_common::pidfd::PidFd;
use hupkit_common::proc::{Stat, Status};
use nix::sys::signal::Signal;
use nix::unistd::Pid;

/// The exit statuses.
pub const EXIT_STATUS: &[(&str, &str)] = &[
    ("0", "every job was continued (or was already running)"),
    (
        "1",
        "a job could not be continued, or was refused (each one is explained)",
    ),
    ("2", "bad usage"),
];

/// Continue stopped jobs in the background, like bash's bg, from any shell.
#[derive(Debug, Parser)]
#[command(
    name = "rbg",
    version,
    about = "Continue stopped jobs in the background, like bash's bg, from any shell.",
    disable_help_flag = true,
    disable_version_flag = true
)]
pub struct Cli {
    /// Jobs: %N, %+, %%, %-, %name, %?text, PID (its process group), PID@STARTTIME [default: %+]
    #[arg(value_name = "JOB")]
    pub jobs: Vec<String>,

    /// Print help
    #[arg(short = 'h', long, action = ArgAction::Help)]
    pub help: Option<bool>,

    /// Print version
    #[arg(short = 'V', long, action = ArgAction::Version)]
    pub version: Option<bool>,
}

/// Man page sections.
pub const MAN_SECTIONS: &[(&str, &str)] = &[
    (
        "DESCRIPTION OF JOBS",
        "Jobs are the process groups of the caller's session, numbered as rjobs(1) \
         shows them. A PID names the process group it belongs to, and must be in the \
         caller's session: a process of another session (a setsid'd program, a job of \
         another terminal or of another login) is refused (status 1) and left as it \
         is, whoever owns it. A job that is the \
         terminal's foreground group is refused: continuing it would leave a foreground \
         job nobody waits for (use rfg). So are init (PID 1) and its group, and a \
         process whose group lies outside this PID namespace (/proc shows it as group \
         0: it cannot be named from here). A traced member is reported: it runs only \
         when its tracer lets it.",
    ),
    ("SEE ALSO", "rjobs(1), rfg(1), bash(1) (bg), kill(1)"),
];

/// The command-line definition, with the exit statuses after the help.
#[must_use]
pub fn command() -> clap::Command {
    Cli::command().after_help(hupkit_common::cli::after_help(None, EXIT_STATUS))
}

/// The whole program, for the binary's entry (see its `main.rs` for the
/// start-up): parses `args` (argv\[0\] first), runs, returns the exit status.
#[must_use]
pub fn main(args: Vec<std::ffi::OsString>) -> hupkit_common::exit::Status {
    hupkit_common::cli::status::<Cli>(command(), args, hupkit_common::exit::USAGE, |cli, _| {
        Ok(hupkit_common::exit::Status::new(run(cli)))
    })
}

/// Sends `sig` to the whole group `pgid`, whose leader the scan saw as `leader`:
/// through a pidfd when the leader lives, else with `killpg` after re-checking
/// that `members` still belong to the group.
pub fn signal_group(
    pgid: Pid,
    leader: Option<&Stat>,
    members: &[&Stat],
    sig: Signal,
) -> Result<(), String> {
    if let Some(leader) = leader {
        let id = Identity {
            pid: leader.pid,
            starttime: leader.starttime,
            boot_id: hupkit_common::identity::boot_id().unwrap_or_default(),
        };
        if let Ok(fd) = PidFd::open(pgid) {
            if id.liveness() == Liveness::Alive {
                match fd.signal_group(sig) {
                    Ok(()) => return Ok(()),
                    Err(nix::errno::Errno::EINVAL) => {} // kernel before 6.9: fall back
                    Err(e) => return Err(hupkit_common::diag::strerror(e)),
                }
            }
        }
    }
    let still = members.iter().any(|m| {
        Stat::read(m.pid).is_ok_and(|now| now.starttime == m.starttime && now.pgrp == pgid)
    });
    if !still {
        return Err("its processes are gone".into());
    }
    nix::sys::signal::killpg(pgid, sig).map_err(hupkit_common::diag::strerror)
}

fn continue_job(snap: &Snapshot, job: &Job, diag: &mut Diag, label: &str, command: &str) -> bool {
    if job.foreground {
        diag.error(&format!(
            "{label}: job is in the foreground of its terminal; use rfg"
        ));
        return false;
    }
    let members: Vec<&Stat> = job.members.iter().map(|&i| &snap.procs[i]).collect();
    if job.state == JobState::Running {
        diag.error(&format!("{label}: job already in background"));
        return true;
    }
    if job.state == JobState::Done {
        diag.error(&format!("{label}: job has terminated"));
        return false;
    }
    for m in &members {
        if let Ok(st) = Status::read(m.pid) {
            if st.tracer_pid != 0 {
                diag.error(&format!(
                    "warning: {label}: PID {} is traced by PID {}; it runs only when its tracer lets it",
                    m.pid, st.tracer_pid
                ));
            }
        }
    }
    let leader = snap.get(job.pgid);
    match signal_group(job.pgid, leader, &members, Signal::SIGCONT) {
        Ok(()) => {
            let line = format!("[{}]{} {command} &\n", job.number, job.mark);
            let _ = hupkit_common::stdio::write_all(hupkit_common::stdio::STDOUT, line.as_bytes());
            true
        }
        Err(why) => {
            diag.error(&format!("{label}: cannot continue the job: {why}"));
            false
        }
    }
}

/// Continues each job named in `cli`; returns the exit status.
#[must_use]
pub fn run(cli: &Cli) -> i32 {
    let mut diag = Diag::new(OsStr::new("rbg"));
    let snap = match Snapshot::take() {
        Ok(s) => s,
        Err(e) => {
            diag.error(&format!("cannot read /proc: {e}"));
            return 1;
        }
    };
    let session = nix::unistd::getsid(None).unwrap_or_else(|_| nix::unistd::getpid());
    let jobs = snap.jobs(session, &[nix::unistd::getpgrp()], false);
    let specs: Vec<String> = if cli.jobs.is_empty() {
        vec!["%+".into()]
    } else {
        cli.jobs.clone()
    };
    let mut ok = true;
    for text in &specs {
        let spec = match JobSpec::parse(text) {
            Ok(s) => s,
            Err(msg) => {
                diag.error(&msg);
                return 2;
            }
        };
        let label = spec.to_string();
        match snap.resolve(&spec, &jobs) {
            Ok(Target::Job(job)) => {
                let command = snap.command_text(job);
                ok &= continue_job(&snap, job, &mut diag, &label, &command);
            }
            Ok(Target::Process(p)) if p.pid.as_raw() == 1 || p.pgrp.as_raw() == 1 => {
                diag.error(&format!("{label}: is init (or in its group); refusing"));
                ok = false;
            }
            Ok(Target::Process(p)) if p.pgrp.as_raw() == 0 => {
                diag.error(&format!(
                    "{label}: {GROUP_OUTSIDE_NAMESPACE}; it cannot be signalled from here"
                ));
                ok = false;
            }
            Ok(Target::Process(p)) if p.session != session => {
                // Jobs are the caller's session's: another session's stopped
                // process (a setsid'd daemon, another terminal's job) is left alone.
                diag.error(&format!(
                    "{label}: PID {} is in another session: not a job of this one",
                    p.pid
                ));
                ok = false;
            }
            Ok(Target::Process(p)) => {
                // A group of this session outside its job list: the session
                // leader's or rbg's caller's own.
                let other = snap.jobs(p.session, &[], true);
                if let Some(job) = other.iter().find(|j| j.pgid == p.pgrp) {
                    let command = snap.command_text(job);
                    ok &= continue_job(&snap, job, &mut diag, &label, &command);
                } else {
                    diag.error(&format!("{label}: no such job"));
                    ok = false;
                }
            }
            Err(msg) => {
                diag.error(&msg);
                ok = false;
            }
        }
    }
    i32::from(!ok)
}

#[cfg(test)]
mod tests {
    #[test]
    fn definition_is_consistent() {
        super::command().debug_assert();
    }
}
