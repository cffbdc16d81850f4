//! `rbg`: bash's `bg`, from outside the shell.
//!
//! Each job named (default `%+`) gets SIGCONT as a whole group, through a pidfd
//! on its leader with `PIDFD_SIGNAL_PROCESS_GROUP` (Linux 6.9+), after checking
//! that the leader is still the process the scan saw; when the leader has
//! exited, through `killpg` after re-checking that a member still belongs to the
//! group ([`hupkit_common::pidfd::signal_group`]). The shell that started the
//! job sees it continue (it waits with `WCONTINUED`) and lists it as Running.
//!
//! Only the caller's session is reached: a PID of another session is refused
//! before anything is signalled (rbg(1), DESCRIPTION OF JOBS). Each job is
//! handled on its own: a refusal is reported and the next job is tried; the
//! exit status says whether any was refused ([`Diag::status`]).

pub mod cli;

use hupkit_common::diag::Diag;
use hupkit_common::exit::{self, Status};
use hupkit_common::jobs::{GROUP_OUTSIDE_NAMESPACE, Job, JobSpec, JobState, SessionJobs, Target};
use hupkit_common::pidfd::signal_group;
use hupkit_common::proc::{self, Stat};
use hupkit_common::{Context, Result};
use nix::sys::signal::Signal;

pub use crate::cli::{Cli, EXIT_STATUS, MAN_SECTIONS, command};

/// The job continued when none is named: bash's current job.
const DEFAULT_JOB: &str = "%+";

/// The whole program, for the binary's entry (see its `main.rs` for the
/// start-up): parses `args` (argv\[0\] first), runs, returns the exit status.
#[must_use]
pub fn main(args: Vec<std::ffi::OsString>) -> Status {
    hupkit_common::cli::status::<Cli>(command(), args, exit::USAGE, run)
}

/// Continues each job named in `cli`. A refused job is reported and the next
/// one tried; a bad job spec stops at once (bad usage).
pub fn run(cli: &Cli, diag: &mut Diag) -> Result<Status> {
    let view = SessionJobs::of_caller().context(exit::FAILURE, || "cannot read /proc")?;
    let default = [DEFAULT_JOB.to_string()];
    let specs = if cli.jobs.is_empty() {
        &default[..]
    } else {
        &cli.jobs[..]
    };
    for text in specs {
        let spec = JobSpec::parse(text)?;
        continue_spec(&view, &spec, diag);
    }
    Ok(diag.status())
}

/// Continues what `spec` names, or says why not.
fn continue_spec(view: &SessionJobs, spec: &JobSpec, diag: &mut Diag) {
    let label = spec.to_string();
    match view.resolve(spec) {
        Ok(Target::Job(job)) => continue_job(view, job, diag, &label),
        Ok(Target::Process(p)) if p.pid.as_raw() == 1 || p.pgrp.as_raw() == 1 => {
            diag.error(&format!("{label}: is init (or in its group); refusing"));
        }
        Ok(Target::Process(p)) if p.pgrp.as_raw() == 0 => {
            diag.error(&format!(
                "{label}: {GROUP_OUTSIDE_NAMESPACE}; it cannot be signalled from here"
            ));
        }
        Ok(Target::Process(p)) if p.session != view.session => {
            // Jobs are the caller's session's: another session's stopped
            // process (a setsid'd daemon, another terminal's job) is left alone.
            diag.error(&format!(
                "{label}: PID {} is in another session: not a job of this one",
                p.pid
            ));
        }
        Ok(Target::Process(p)) => {
            // A group of this session outside its job list: the session
            // leader's or rbg's caller's own.
            let other = view.snap.jobs(p.session, &[], true);
            match other.iter().find(|j| j.pgid == p.pgrp) {
                Some(job) => continue_job(view, job, diag, &label),
                None => diag.error(&format!("{label}: no such job")),
            }
        }
        Err(e) => diag.error(&e.to_string()),
    }
}

/// Continues one job, printing it as bash's `bg` does; a job already running
/// is said so, and is no failure.
fn continue_job(view: &SessionJobs, job: &Job, diag: &mut Diag, label: &str) {
    if job.foreground {
        diag.error(&format!(
            "{label}: job is in the foreground of its terminal; use rfg"
        ));
        return;
    }
    match job.state {
        JobState::Running => {
            diag.line(&format!("{label}: job already in background"));
            return;
        }
        JobState::Done => {
            diag.error(&format!("{label}: job has terminated"));
            return;
        }
        JobState::Stopped(_) => {}
    }
    let members: Vec<&Stat> = view.snap.members(job).collect();
    warn_traced(&members, diag, label);
    match signal_group(job.pgid, view.snap.get(job.pgid), &members, Signal::SIGCONT) {
        Ok(()) => {
            let command = view.snap.command_text(job);
            let line = format!("[{}]{} {command} &\n", job.number, job.mark);
            let _ = hupkit_common::stdio::write_all(hupkit_common::stdio::STDOUT, line.as_bytes());
        }
        Err(why) => diag.error(&format!("{label}: cannot continue the job: {why}")),
    }
}

/// Warns of each traced member: SIGCONT does not make it run while its tracer
/// holds it.
fn warn_traced(members: &[&Stat], diag: &mut Diag, label: &str) {
    for m in members {
        if let Ok(st) = proc::Status::read(m.pid) {
            if st.tracer_pid != 0 {
                diag.warning(&format!(
                    "{label}: PID {} is traced by PID {}; it runs only when its tracer lets it",
                    m.pid, st.tracer_pid
                ));
            }
        }
    }
}
