//! `rfg`: bash's `fg`, from outside the shell.
//!
//! rfg must itself be the foreground job of its controlling terminal, and the
//! job must be in the same session. Then (shared/research/jobcontrol.md §3.2):
//!
//! 1. save the terminal's modes; block SIGTTOU and SIGTTIN (rfg is about to be a
//!    background process that still calls `tcsetpgrp`); catch every signal of
//!    [`GUARDED`] into a flag;
//! 2. `tcsetpgrp` the terminal to the job's group, then SIGCONT the group;
//! 3. poll: the job has ended when no member is alive, stopped when every live
//!    member is stopped;
//! 4. give the terminal back to the group that had it (a guard does this on every
//!    path, errors and signals included); restore the saved modes if the job
//!    stopped or was killed by a signal, as bash does;
//! 5. exit like bash's `fg`: the job's status, 128+N for a signal, 128+stop
//!    signal when it stopped (148 for ^Z).
//!
//! The job is not rfg's child, so its exit status comes from its pidfd
//! (`PIDFD_GET_INFO`, Linux 6.15+), which the kernel fills in once the real
//! parent (usually the shell) has reaped it; rfg waits up to 2 seconds for that.
//! Without it the status is unknown and rfg exits 255. SIGKILL of rfg is the one
//! case no guard can cover; an interactive bash reclaims the terminal itself when
//! rfg dies, other parents may not (rfg(1), BUGS).

use std::ffi::OsStr;
use std::fs::File;
use std::os::fd::AsFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use clap::{ArgAction, CommandFactory, Parser};
use hupkit_common::diag::Diag;
use hupkit_common::jobs::{Job, JobSpec, JobState, Snapshot, Target};
use hupkit_common::pidfd::PidFd;
use hupkit_common::proc::Stat;
use hupkit_common::{exit, tty};
use nix::sys::signal::{SigSet, SigmaskHow, Signal, sigprocmask};
use nix::sys::termios::{SetArg, Termios, tcgetattr, tcsetattr};
use nix::unistd::{Pid, tcgetpgrp, tcsetpgrp};

/// The exit statuses.
pub const EXIT_STATUS: &[(&str, &str)] = &[
    ("N", "the job's own exit status"),
    ("128+N", "the job was killed by signal N (130 for ^C)"),
    (
        "128+S",
        "the job stopped on signal S (148 for ^Z): it stays a stopped job",
    ),
    (
        "125",
        "rfg failed or refused (not the foreground job, no terminal, another session, no such job)",
    ),
    (
        "255",
        "the job ended but its status is unknown (kernel before 6.15, or its parent never reaped it)",
    ),
];

/// Bring a job to the foreground of this terminal, like bash's fg, from any shell.
#[derive(Debug, Parser)]
#[command(
    name = "rfg",
    version,
    about = "Bring a job to the foreground of this terminal, like bash's fg, from any shell.",
    disable_help_flag = true,
    disable_version_flag = true
)]
pub struct Cli {
    /// The job: %N, %+, %%, %-, %name, %?text, PID (its process group), PID@STARTTIME [default: %+]
    #[arg(value_name = "JOB")]
    pub job: Option<String>,

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
        "HOW IT WORKS",
        "rfg must be the foreground job of its controlling terminal, and the job must \
         be in the same session: run it as a plain command, not with '&'. It works for \
         jobs the shell has disowned. It hands the terminal to the job (with SIGTTOU and \
         SIGTTIN blocked), continues it, waits until it ends or stops, and gives the \
         terminal back to the group that had it, on every path: when the job exits, \
         stops or is killed, when rfg gets any signal that would end it and can be \
         caught (HUP, INT, QUIT, TERM, USR1, USR2, ALRM, VTALRM, PROF, XCPU, \
         XFSZ, IO, PWR, SYS, TRAP, ABRT), and on errors. The terminal's modes are saved first and restored when the job stops \
         or is killed by a signal, as bash does.",
    ),
    (
        "EXIT STATUS OF A JOB THAT IS NOT RFG'S CHILD",
        "Read from the job's pidfd (PIDFD_GET_INFO with PIDFD_INFO_EXIT, Linux 6.15 and \
         later) once its parent has reaped it; rfg waits up to 2 seconds for that. \
         Otherwise rfg says the status is unknown and exits 255.",
    ),
    (
        "BUGS",
        "SIGKILL cannot be caught. An interactive bash takes the terminal back itself \
         when its foreground job (rfg) dies, SIGKILL included; a parent that does not \
         (a script, a program) leaves the terminal with the job. Recover by stopping \
         the job (^Z), or with rfg or fg from that terminal.",
    ),
    ("SEE ALSO", "rjobs(1), rbg(1), bash(1) (fg), tcsetpgrp(3)"),
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
    hupkit_common::cli::status::<Cli>(command(), args, exit::CANCELED, |cli, _| {
        Ok(exit::Status::new(run(cli)))
    })
}

/// Every signal whose default action would end rfg while the job has the
/// terminal, and that can be caught (signal-hook refuses only SIGKILL, SIGSTOP
/// and the synchronous faults SIGILL, SIGFPE, SIGSEGV): caught into a flag, so
/// that the terminal is given back, then re-raised. (SIGPIPE is not here: rfg's
/// entry ignores it, so it never ends rfg.)
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

/// Gives the terminal back to `group` when dropped.
struct Handback<'t> {
    tty: &'t File,
    group: Pid,
}

impl Drop for Handback<'_> {
    fn drop(&mut self) {
        // SIGTTOU is blocked: a background tcsetpgrp does not stop us.
        let _ = tcsetpgrp(self.tty.as_fd(), self.group);
    }
}

/// How the job ended its time in the foreground.
enum End {
    Exited,
    Stopped,
    Interrupted(i32),
}

fn wait_job(pgid: Pid, got: &AtomicUsize, watch: Option<&PidFd>) -> End {
    loop {
        let sig = got.load(Ordering::SeqCst);
        if sig != 0 {
            return End::Interrupted(i32::try_from(sig).unwrap_or(15));
        }
        let members: Vec<Stat> = Snapshot::take()
            .map(|s| s.procs.into_iter().filter(|p| p.pgrp == pgid).collect())
            .unwrap_or_default();
        let live: Vec<&Stat> = members
            .iter()
            .filter(|p| !matches!(p.state, 'Z' | 'X'))
            .collect();
        if live.is_empty() {
            return End::Exited;
        }
        if live.iter().all(|p| matches!(p.state, 'T' | 't')) {
            return End::Stopped;
        }
        match watch {
            Some(fd) => {
                let _ = fd.wait_exit(Duration::from_millis(20));
            }
            None => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// The status like bash's `fg` gives it, from a raw wait status.
fn status_of(raw: i32) -> i32 {
    let sig = raw & 0x7f;
    if sig == 0 {
        (raw >> 8) & 0xff
    } else {
        128 + sig
    }
}

fn fail(diag: &mut Diag, msg: &str) -> i32 {
    diag.error(msg);
    exit::CANCELED.code()
}

/// Brings the job named in `cli` to the foreground; returns the exit status.
#[allow(clippy::too_many_lines)]
#[must_use]
pub fn run(cli: &Cli) -> i32 {
    let mut diag = Diag::new(OsStr::new("rfg"));
    let Ok(tty) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
    else {
        return fail(
            &mut diag,
            "no controlling terminal: run rfg from the job's terminal",
        );
    };
    let me = nix::unistd::getpgrp();
    match tcgetpgrp(tty.as_fd()) {
        Ok(fg) if fg == me => {}
        _ => {
            return fail(
                &mut diag,
                "not the foreground job of this terminal: run rfg without '&'",
            );
        }
    }
    let snap = match Snapshot::take() {
        Ok(s) => s,
        Err(e) => return fail(&mut diag, &format!("cannot read /proc: {e}")),
    };
    let session = nix::unistd::getsid(None).unwrap_or(me);
    let jobs = snap.jobs(session, &[me], false);
    let text = cli.job.clone().unwrap_or_else(|| "%+".into());
    let spec = match JobSpec::parse(&text) {
        Ok(s) => s,
        Err(msg) => return fail(&mut diag, &msg),
    };
    let label = spec.to_string();
    let job: &Job = match snap.resolve(&spec, &jobs) {
        Ok(Target::Job(job)) => job,
        Ok(Target::Process(p)) if p.session != session => {
            let out = std::fs::read_link(format!("/proc/{}/fd/1", p.pid)).map_or_else(
                |_| "(unknown)".into(),
                |p| {
                    hupkit_common::quote::word(std::os::unix::ffi::OsStrExt::as_bytes(
                        p.as_os_str(),
                    ))
                },
            );
            return fail(
                &mut diag,
                &format!(
                    "{label}: PID {} is on another terminal ({}) and cannot be brought here; its output goes to {out}",
                    p.pid,
                    tty::name(p.tty_nr)
                ),
            );
        }
        Ok(Target::Process(p)) => {
            return fail(
                &mut diag,
                &format!("{label}: PID {} belongs to the shell's own group", p.pid),
            );
        }
        Err(msg) => return fail(&mut diag, &msg),
    };
    if job.state == JobState::Done {
        return fail(&mut diag, &format!("{label}: job has terminated"));
    }
    let pgid = job.pgid;
    let members: Vec<&Stat> = job.members.iter().map(|&i| &snap.procs[i]).collect();
    // The status to report is the last command's, as bash's: the newest member
    // whose parent is outside the group.
    let last = members
        .iter()
        .rev()
        .find(|p| snap.get(p.ppid).is_none_or(|parent| parent.pgrp != pgid))
        .copied();
    let watch = last.and_then(|p| {
        let fd = PidFd::open(p.pid).ok()?;
        Stat::read(p.pid)
            .ok()
            .filter(|now| now.starttime == p.starttime)
            .map(|_| fd)
    });

    let saved: Option<Termios> = tcgetattr(tty.as_fd()).ok();
    let mut block = SigSet::empty();
    block.add(Signal::SIGTTOU);
    block.add(Signal::SIGTTIN);
    if let Err(e) = sigprocmask(SigmaskHow::SIG_BLOCK, Some(&block), None) {
        return fail(
            &mut diag,
            &format!("cannot block SIGTTOU: {}", hupkit_common::diag::strerror(e)),
        );
    }
    let got = Arc::new(AtomicUsize::new(0));
    for sig in GUARDED {
        if signal_hook::flag::register_usize(sig as i32, Arc::clone(&got), sig as usize).is_err() {
            return fail(&mut diag, "cannot install signal handlers");
        }
    }

    let end = {
        let _back = Handback {
            tty: &tty,
            group: me,
        };
        if let Err(e) = tcsetpgrp(tty.as_fd(), pgid) {
            return fail(
                &mut diag,
                &format!(
                    "{label}: cannot give the job the terminal: {}",
                    hupkit_common::diag::strerror(e)
                ),
            );
        }
        if let Err(why) = hupkit_rbg::signal_group(pgid, snap.get(pgid), &members, Signal::SIGCONT)
        {
            return fail(
                &mut diag,
                &format!("{label}: cannot continue the job: {why}"),
            );
        }
        wait_job(pgid, &got, watch.as_ref())
        // `_back` gives the terminal back here, on every path.
    };

    let restore = |saved: &Option<Termios>| {
        if let Some(t) = saved {
            let _ = tcsetattr(tty.as_fd(), SetArg::TCSADRAIN, t);
        }
    };
    match end {
        End::Interrupted(sig) => {
            // Re-raise with the default action, so our caller sees how we died.
            let _ = hupkit_common::signal::set_default(
                Signal::try_from(sig).unwrap_or(Signal::SIGTERM),
            );
            let _ = sigprocmask(SigmaskHow::SIG_UNBLOCK, Some(&SigSet::all()), None);
            let _ = nix::sys::signal::raise(Signal::try_from(sig).unwrap_or(Signal::SIGTERM));
            128 + sig
        }
        End::Stopped => {
            restore(&saved);
            let stop = members
                .iter()
                .find(|p| Stat::read(p.pid).is_ok_and(|s| s.state == 'T'))
                .and_then(|p| hupkit_common::ptrace::stop_signal(p.pid))
                .unwrap_or(Signal::SIGTSTP);
            128 + stop as i32
        }
        End::Exited => {
            let Some(fd) = watch else {
                diag.error(&format!(
                    "{label}: the job ended; its exit status is unknown"
                ));
                return 255;
            };
            let deadline = Instant::now() + Duration::from_secs(2);
            loop {
                match fd.exit_status() {
                    Ok(Some(raw)) => {
                        if raw & 0x7f != 0 {
                            restore(&saved);
                        }
                        return status_of(raw);
                    }
                    Ok(None) if Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(10));
                    }
                    _ => {
                        diag.error(&format!(
                            "{label}: the job ended; its exit status is unknown (its parent has not reaped it, or the kernel is older than 6.15)"
                        ));
                        return 255;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::status_of;

    #[test]
    fn statuses_like_bash() {
        assert_eq!(status_of(0x0300), 3);
        assert_eq!(status_of(2), 130);
        assert_eq!(status_of(15), 143);
    }

    #[test]
    fn definition_is_consistent() {
        super::command().debug_assert();
    }
}
