//! `rfg`: bash's `fg`, from outside the shell.
//!
//! rfg must itself be the foreground job of its controlling terminal, and the
//! job must be in the same session. Then (shared/research/jobcontrol.md §3.2),
//! in [`run`]'s named steps:
//!
//! 1. resolve the job ([`resolve_job`]) and the member whose status is the
//!    job's ([`watch_last`]);
//! 2. block SIGTTOU and SIGTTIN (rfg is about to be a background process that
//!    still calls `tcsetpgrp`); catch every signal of [`GUARDED`] into a flag
//!    ([`guard_signals`]);
//! 3. print the job's command line, as `fg` does (rfg cannot see the text the
//!    user typed: the argv of the job's first members, quoted for a shell,
//!    joined by ` | `); save the terminal's modes and `tcsetpgrp` it to the
//!    job's group ([`TtyHandoff`], which gives the terminal back to the group
//!    that had it when dropped: on every path, errors and signals included),
//!    then SIGCONT the group;
//! 4. wait: the job has ended when no member is alive, stopped when every live
//!    member is stopped ([`wait_job`], through a [`GroupWatch`]: pidfds and
//!    the members' own `/proc` entries, so the wait costs the same beside 20
//!    processes or 2000);
//! 5. give the terminal back; restore the saved modes if the job stopped or was
//!    killed by a signal, as bash does; end the line after a job killed by ^C
//!    and print `[N]+  Stopped  COMMAND` after one stopped, as bash does; exit
//!    like bash's `fg`: the job's status, 128+N for a signal, 128+stop signal
//!    when it stopped (148 for ^Z) ([`report`]).
//!
//! The job is not rfg's child, so its exit status comes from its pidfd
//! (`PIDFD_GET_INFO`, Linux 6.15+), which the kernel fills in once the real
//! parent (usually the shell) has reaped it; rfg waits [`REAP_GRACE`] for that.
//! Without it the status is unknown and rfg exits [`STATUS_UNKNOWN`]. SIGKILL of
//! rfg is the one case no guard can cover; an interactive bash reclaims the
//! terminal itself when rfg dies, other parents may not (rfg(1), BUGS).

pub mod cli;

use std::fs::File;
use std::os::fd::AsFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hupkit_common::diag::Diag;
use hupkit_common::exit::{self, Status, Wait};
use hupkit_common::jobs::{Job, JobSpec, JobState, SessionJobs, Snapshot, Target};
use hupkit_common::pidfd::{PidFd, signal_group};
use hupkit_common::proc::{ProcState, Stat};
use hupkit_common::stdio::{STDERR, STDOUT, write_all};
use hupkit_common::watch::GroupWatch;
use hupkit_common::{Context, Error, Result, tty};
use nix::sys::signal::{SigSet, SigmaskHow, Signal, sigprocmask};
use nix::sys::termios::{SetArg, Termios, tcgetattr, tcsetattr};
use nix::unistd::{Pid, tcgetpgrp, tcsetpgrp};

pub use crate::cli::{Cli, EXIT_STATUS, MAN_SECTIONS, command};

/// The job brought back when none is named: bash's current job.
const DEFAULT_JOB: &str = "%+";

/// How often the job's known members are read while it has the terminal:
/// short enough that ^Z is followed at once (an ending wakes the wait sooner,
/// through the members' pidfds), and each tick reads only the members' own
/// `/proc` entries.
const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// How long rfg waits, after the job's last member has exited, for its parent
/// to reap it, so that the pidfd knows the exit status (rfg(1)): a shell reaps
/// at once; one that has not after this will not soon.
pub const REAP_GRACE: Duration = Duration::from_secs(2);

/// How often the pidfd is asked for the exit status during [`REAP_GRACE`].
const REAP_POLL: Duration = Duration::from_millis(10);

/// The status when the job ended but its exit status could not be learned (rfg(1)).
pub const STATUS_UNKNOWN: Status = Status::new(255);

/// The whole program, for the binary's entry (see its `main.rs` for the
/// start-up): parses `args` (argv\[0\] first), runs, returns the exit status.
#[must_use]
pub fn main(args: Vec<std::ffi::OsString>) -> Status {
    hupkit_common::cli::status::<Cli>(command(), args, exit::CANCELED, run)
}

/// Every signal whose default action would end rfg while the job has the
/// terminal, and that can be caught (signal-hook refuses only SIGKILL, SIGSTOP
/// and the synchronous faults SIGILL, SIGFPE, SIGSEGV): caught into a flag, so
/// that the terminal is given back, then re-raised. (SIGPIPE is not here: Rust's
/// runtime ignores it, so it never ends rfg.)
pub const GUARDED: [Signal; 16] = [
    Signal::SIGHUP,
    Signal::SIGINT,
    Signal::SIGQUIT,
    Signal::SIGTERM,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGALRM,
    Signal::SIGVTALRM,
    Signal::SIGPROF,
    Signal::SIGXCPU,
    Signal::SIGXFSZ,
    Signal::SIGIO,
    Signal::SIGPWR,
    Signal::SIGSYS,
    Signal::SIGTRAP,
    Signal::SIGABRT,
];

/// rfg's own failures and refusals: GNU's 125, as for a command wrapper.
fn refused(msg: impl Into<String>) -> Error {
    Error::failed(msg, exit::CANCELED)
}

/// Brings the job named in `cli` to the foreground, waits until it ends or
/// stops, and exits as bash's `fg` would.
pub fn run(cli: &Cli, _diag: &mut Diag) -> Result<Status> {
    let tty = controlling_terminal()?;
    let me = nix::unistd::getpgrp();
    match tcgetpgrp(tty.as_fd()) {
        Ok(fg) if fg == me => {}
        _ => {
            return Err(refused(
                "not the foreground job of this terminal: run rfg without '&'",
            ));
        }
    }
    let view = SessionJobs::of_caller().context(exit::CANCELED, || "cannot read /proc")?;
    let spec = JobSpec::parse(cli.job.as_deref().unwrap_or(DEFAULT_JOB))
        .map_err(|e| refused(e.to_string()))?;
    let label = spec.to_string();
    let job = resolve_job(&view, &spec, &label)?;
    let members: Vec<&Stat> = view.snap.members(job).collect();
    let watch = watch_last(&view.snap, job.pgid, &members);
    let shown = Shown {
        label: &label,
        pgid: job.pgid,
        number: job.number,
        command: view.snap.command_text(job),
    };

    // The modes before anything else touches the terminal, as bash saves them.
    let modes = tcgetattr(tty.as_fd()).ok();
    let got = guard_signals()?;
    // As `fg` does: the command, before the job can write anything.
    let _ = write_all(STDOUT, format!("{}\n", shown.command).as_bytes());
    let handoff = TtyHandoff::give(&tty, modes, job.pgid, me).context(exit::CANCELED, || {
        format!("{label}: cannot give the job the terminal")
    })?;
    signal_group(job.pgid, view.snap.get(job.pgid), &members, Signal::SIGCONT)
        .map_err(|why| refused(format!("{label}: cannot continue the job: {why}")))?;
    let end = wait_job(GroupWatch::new(job.pgid, &members), &got);
    let modes = handoff.give_back();
    report(end, &Restore { tty: &tty, modes }, &members, watch, &shown)
}

/// The job as rfg shows it: the spec it was named by, its group, its number
/// when rfg started, its command line quoted for a shell.
struct Shown<'a> {
    label: &'a str,
    pgid: Pid,
    number: usize,
    command: String,
}

impl Shown<'_> {
    /// bash's notice of a stopped job, `[N]+  Stopped  COMMAND`, on a line of
    /// its own (after the `^Z` the terminal echoed): the number and mark as
    /// rjobs(1) gives them now, the state with the signal that stopped it.
    fn stopped_line(&self, stop: Signal) -> String {
        let now = SessionJobs::of_caller().ok();
        let job = now
            .as_ref()
            .and_then(|v| v.jobs.iter().find(|j| j.pgid == self.pgid));
        let (number, mark) = job.map_or((self.number, '+'), |j| (j.number, j.mark));
        let state = JobState::Stopped(Some(stop)).to_string();
        format!("\n[{number}]{mark}  {state:<24}{}\n", self.command)
    }
}

/// `/dev/tty`, the caller's controlling terminal.
fn controlling_terminal() -> Result<File> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
        .map_err(|_| refused("no controlling terminal: run rfg from the job's terminal"))
}

/// The job `spec` names among the caller's session's, or why it cannot be
/// brought to this terminal.
fn resolve_job<'v>(view: &'v SessionJobs, spec: &JobSpec, label: &str) -> Result<&'v Job> {
    let job = match view.resolve(spec) {
        Ok(Target::Job(job)) => job,
        Ok(Target::Process(p)) if p.session != view.session => {
            let out = std::fs::read_link(format!("/proc/{}/fd/1", p.pid)).map_or_else(
                |_| "(unknown)".into(),
                |p| {
                    hupkit_common::quote::word(std::os::unix::ffi::OsStrExt::as_bytes(
                        p.as_os_str(),
                    ))
                },
            );
            return Err(refused(format!(
                "{label}: PID {} is on another terminal ({}) and cannot be brought here; its output goes to {out}",
                p.pid,
                tty::name(p.tty_nr)
            )));
        }
        Ok(Target::Process(p)) => {
            return Err(refused(format!(
                "{label}: PID {} belongs to the shell's own group",
                p.pid
            )));
        }
        Err(e) => return Err(refused(e.to_string())),
    };
    if job.state == JobState::Done {
        return Err(refused(format!("{label}: job has terminated")));
    }
    Ok(job)
}

/// A pidfd on the member whose status is the job's, as bash's: the newest
/// member whose parent is outside the group (the pipeline's last command),
/// opened only if it is still the process the scan saw.
fn watch_last(snap: &Snapshot, pgid: Pid, members: &[&Stat]) -> Option<PidFd> {
    let last = members
        .iter()
        .rev()
        .find(|p| snap.get(p.ppid).is_none_or(|parent| parent.pgrp != pgid))?;
    let fd = PidFd::open(last.pid).ok()?;
    Stat::read(last.pid)
        .ok()
        .filter(|now| now.starttime == last.starttime)
        .map(|_| fd)
}

/// Blocks SIGTTOU and SIGTTIN, and catches every signal of [`GUARDED`] into
/// the flag returned (the signal's number, 0 while none came).
fn guard_signals() -> Result<Arc<AtomicUsize>> {
    let mut block = SigSet::empty();
    block.add(Signal::SIGTTOU);
    block.add(Signal::SIGTTIN);
    sigprocmask(SigmaskHow::SIG_BLOCK, Some(&block), None)
        .context(exit::CANCELED, || "cannot block SIGTTOU")?;
    let got = Arc::new(AtomicUsize::new(0));
    for sig in GUARDED {
        if signal_hook::flag::register_usize(sig as i32, Arc::clone(&got), sig as usize).is_err() {
            return Err(refused("cannot install signal handlers"));
        }
    }
    Ok(got)
}

/// The terminal handed to a job: given back to the group that had it when
/// dropped, on every path (as fish-shell's `TtyHandoff`), with the modes saved
/// before the hand-off kept for [`Restore`].
struct TtyHandoff<'t> {
    tty: &'t File,
    back_to: Pid,
    modes: Option<Termios>,
}

impl<'t> TtyHandoff<'t> {
    /// Makes `to` the terminal's foreground group, keeping the `modes` saved
    /// before; `back_to` gets the terminal back when the hand-off is dropped.
    fn give(
        tty: &'t File,
        modes: Option<Termios>,
        to: Pid,
        back_to: Pid,
    ) -> nix::Result<TtyHandoff<'t>> {
        let handoff = TtyHandoff {
            tty,
            back_to,
            modes,
        };
        tcsetpgrp(tty.as_fd(), to)?;
        Ok(handoff)
    }

    /// Gives the terminal back now; returns the modes saved before the hand-off.
    fn give_back(mut self) -> Option<Termios> {
        self.modes.take()
        // `self` is dropped here: the terminal goes back.
    }
}

impl Drop for TtyHandoff<'_> {
    fn drop(&mut self) {
        // SIGTTOU is blocked: a background tcsetpgrp does not stop us.
        let _ = tcsetpgrp(self.tty.as_fd(), self.back_to);
    }
}

/// The terminal modes saved before the hand-off, restored when the job's
/// ending calls for it.
struct Restore<'t> {
    tty: &'t File,
    modes: Option<Termios>,
}

impl Restore<'_> {
    fn restore(&self) {
        if let Some(t) = &self.modes {
            let _ = tcsetattr(self.tty.as_fd(), SetArg::TCSADRAIN, t);
        }
    }
}

/// How the job ended its time in the foreground.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    Exited,
    Stopped,
    Interrupted(Signal),
}

/// Waits until the group `group` follows has ended or stopped, or rfg got a
/// guarded signal.
fn wait_job(mut group: GroupWatch, got: &AtomicUsize) -> End {
    loop {
        let sig = got.load(Ordering::SeqCst);
        if sig != 0 {
            let sig = i32::try_from(sig)
                .ok()
                .and_then(|n| Signal::try_from(n).ok())
                .unwrap_or(Signal::SIGTERM);
            return End::Interrupted(sig);
        }
        match group.wait(POLL_INTERVAL) {
            JobState::Done => return End::Exited,
            JobState::Stopped(_) => return End::Stopped,
            JobState::Running => {}
        }
    }
}

/// The exit status, as bash's `fg` gives it, for how the job ended; the
/// terminal is already back with rfg's group.
fn report(
    end: End,
    modes: &Restore<'_>,
    members: &[&Stat],
    watch: Option<PidFd>,
    shown: &Shown<'_>,
) -> Result<Status> {
    let label = shown.label;
    match end {
        End::Interrupted(sig) => {
            // Re-raise with the default action, so our caller sees how we died.
            let _ = hupkit_common::signal::set_default(sig);
            let _ = sigprocmask(SigmaskHow::SIG_UNBLOCK, Some(&SigSet::all()), None);
            let _ = nix::sys::signal::raise(sig);
            Ok(Status::from_signal(sig as i32))
        }
        End::Stopped => {
            modes.restore();
            let stop = members
                .iter()
                .find(|p| Stat::read(p.pid).is_ok_and(|s| s.state == ProcState::Stopped))
                .and_then(|p| hupkit_common::ptrace::stop_signal(p.pid))
                .unwrap_or(Signal::SIGTSTP);
            let _ = write_all(STDERR, shown.stopped_line(stop).as_bytes());
            Ok(Status::from_signal(stop as i32))
        }
        End::Exited => {
            let Some(fd) = watch else {
                return Err(Error::failed(
                    format!("{label}: the job ended; its exit status is unknown"),
                    STATUS_UNKNOWN,
                ));
            };
            let Some(wait) = reaped_status(&fd) else {
                return Err(Error::failed(
                    format!(
                        "{label}: the job ended; its exit status is unknown (its parent has not reaped it, or the kernel is older than 6.15)"
                    ),
                    STATUS_UNKNOWN,
                ));
            };
            if let Wait::Signaled { signo, .. } = wait {
                modes.restore();
                if signo == Signal::SIGINT as i32 {
                    // As bash does: the prompt starts on a line of its own.
                    let _ = write_all(STDOUT, b"\n");
                }
            }
            Ok(wait.shell_status().unwrap_or(STATUS_UNKNOWN))
        }
    }
}

/// The exit status of the watched member once its parent has reaped it,
/// waiting up to [`REAP_GRACE`]; `None` if it cannot be learned.
fn reaped_status(fd: &PidFd) -> Option<Wait> {
    let deadline = Instant::now() + REAP_GRACE;
    loop {
        match fd.exit_status() {
            Ok(Some(raw)) => return Some(Wait::from_raw(raw)),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(REAP_POLL),
            _ => return None,
        }
    }
}
