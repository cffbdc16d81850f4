//! `disown`: cut a running job loose from its terminal, after the fact.
//!
//! The flow: [`main`] → [`run`]: job specs resolved on one `/proc` scan
//! ([`hupkit_common::jobs`]), each target checked ([`refusal`]), then
//! `cut_loose`, from a thread of its own per process: attach
//! ([`hupkit_common::inject::Tracee`]), and make the process itself ignore
//! SIGHUP, drop its controlling terminal and re-point its terminal
//! descriptors (chosen by `fd_plan` from [`hupkit_common::output::of`]: its
//! terminal, hung-up terminals, never a pty master), all the calls run in a
//! row as one [`hupkit_common::inject::Batch`] (`Changes`: the process is
//! held for one stop, not two per call); stopped targets are continued and a
//! job record is written. A batch that fails half-way ends at that call: what
//! it opened is closed again, and the message says what was done before it.
//! Errors about one process are reported and the next one is done; the
//! status is then 1 ([`Diag::status`]).

pub mod cli;
mod scope;

use std::ffi::OsStr;
use std::fmt::Write as _;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hupkit_common::Context;
use hupkit_common::diag::Diag;
use hupkit_common::exit::{self, Status as ExitStatus};
use hupkit_common::inject::{Arg, Batch, InjectError, Results, Tracee, errno_of};
use hupkit_common::jobs::{Job, JobSpec, JobState, Snapshot, Target};
use hupkit_common::output::{self, Sink};
use hupkit_common::proc::{self, Stat, Status};
use hupkit_common::quote::quote;
use hupkit_common::records;
use hupkit_common::safefile::FileError;
use hupkit_common::safepath::{self, Purpose};
use hupkit_common::signal::Disposition;
use hupkit_common::tty;
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::libc;
use nix::sys::signal::Signal;
use nix::unistd::Pid;

use crate::cli::Cli;

/// Parses, runs, maps to an exit status.
#[must_use]
pub fn main(args: Vec<std::ffi::OsString>) -> ExitStatus {
    hupkit_common::cli::status::<Cli>(cli::command(), args, exit::USAGE, run)
}

/// The permissions of an output file disown or the target creates: 0600
/// whatever the umask, as rnohup's `nohup.out` (it may hold what a user
/// typed or saw).
const OUTPUT_MODE: u32 = 0o600;
/// The umask that makes disown's own check create it so.
const OUTPUT_UMASK: u32 = 0o777 & !OUTPUT_MODE;

/// Where the output of the processes goes.
enum Output {
    File(PathBuf),
    Null,
    Untouched,
}

/// Opens the output file as rnohup would (append, created 0600 whatever the
/// umask): `-o FILE`, else `nohup.out`, else `$HOME/nohup.out`; absolute.
fn output_file(cli: &Cli, diag: &mut Diag) -> Option<Output> {
    if cli.keep_tty {
        return Some(Output::Untouched);
    }
    if cli.null {
        return Some(Output::Null);
    }
    let old = hupkit_common::stdio::umask(OUTPUT_UMASK);
    let found = find_output(cli, diag);
    let _ = hupkit_common::stdio::umask(old);
    found.map(Output::File)
}

/// Whether disown can open `path` for appending, under safepath's rules.
///
/// disown may run as root for another user's process: the file is reached
/// under the same rules as detach's -o (no link, directory or shared-directory
/// entry of another user), so a planted link never makes root create or open
/// a file of another user's choosing. The target then opens the same path
/// itself.
fn try_open(path: &Path) -> Result<(), FileError> {
    let located = safepath::locate(path, Purpose::Output)?;
    // A FIFO without a reader fails at once (ENXIO) instead of hanging.
    located
        .open_write(OFlag::O_APPEND | OFlag::O_CLOEXEC | OFlag::O_NONBLOCK)
        .map(drop)
}

/// The first output file that opens, each failure reported.
fn find_output(cli: &Cli, diag: &mut Diag) -> Option<PathBuf> {
    let cwd = std::env::current_dir().unwrap_or_default();
    let shown = cli.output.as_deref().unwrap_or(Path::new("nohup.out"));
    let first = cwd.join(shown);
    match try_open(&first) {
        Ok(()) => return Some(first),
        Err(e) => diag.error(&format!("failed to open {}: {e}", quote(shown.as_os_str()))),
    }
    if cli.output.is_some() {
        return None;
    }
    let home = std::env::var_os("HOME").filter(|h| !h.is_empty())?;
    let second = Path::new(&home).join("nohup.out");
    match try_open(&second) {
        Ok(()) => Some(second),
        Err(e) => {
            diag.error(&format!(
                "failed to open {}: {e}",
                quote(second.as_os_str())
            ));
            None
        }
    }
}

/// Why a process must be left alone, if it must.
#[must_use]
pub fn refusal(snap: &Snapshot, p: &Stat) -> Option<String> {
    if p.state.has_exited() {
        return Some("is a zombie (it has exited)".into());
    }
    if p.pid.as_raw() == 1 {
        return Some("is init (PID 1)".into());
    }
    if p.is_kernel_thread() {
        return Some("is a kernel thread".into());
    }
    let mut cur = Some(nix::unistd::getpid());
    while let Some(c) = cur.filter(|c| c.as_raw() > 1) {
        if c == p.pid {
            return Some("is disown itself or one of its ancestors".into());
        }
        cur = snap
            .get(c)
            .map(|s| s.ppid)
            .or_else(|| Stat::read(c).ok().map(|s| s.ppid));
    }
    match Status::read(p.pid) {
        Ok(st) if st.tracer_pid != 0 => Some(format!("is already traced by PID {}", st.tracer_pid)),
        _ => None,
    }
}

/// A process with its own SIGHUP handler is left alone, unless forced
/// (`--override-handler`):
/// it has said what a hangup means to it.
fn handler_refusal(p: &Stat, force: bool) -> Option<String> {
    let handler =
        Status::read(p.pid).map_or(Disposition::Default, |s| s.disposition(Signal::SIGHUP));
    (handler == Disposition::Caught && !force).then(|| "has its own SIGHUP handler".to_string())
}

fn permission_hint(p: &Stat) -> String {
    let owner = Status::read(p.pid).map_or(0, |s| s.uid[0]);
    let yama = std::fs::read_to_string("/proc/sys/kernel/yama/ptrace_scope")
        .ok()
        .map(|s| s.trim().to_string());
    let mut hint = if owner == nix::unistd::getuid().as_raw() {
        "permission denied".to_string()
    } else {
        format!(
            "permission denied: it belongs to uid {owner}; tracing another user's process needs root (CAP_SYS_PTRACE)"
        )
    };
    match yama.as_deref() {
        Some("0") | None => {}
        Some(level) => {
            let _ = write!(
                hint,
                "; Yama's ptrace_scope is {level} (/proc/sys/kernel/yama/ptrace_scope): 1 allows only descendants, 2 only root, 3 nobody"
            );
        }
    }
    hint
}

/// A descriptor of the process to re-point: whether it is only read, and
/// whether it is the controlling terminal itself.
struct TtyFd {
    fd: i32,
    reader: bool,
    ctty: bool,
}

/// What disown will do to a process's descriptors: the ones it re-points, and
/// those on other live terminals it leaves alone (`fd 4 on pts/7`).
struct FdPlan {
    fds: Vec<TtyFd>,
    left: Vec<String>,
}

/// The descriptors of `p` to re-point: every one on its controlling terminal
/// (or `/dev/tty`) and on any terminal that has hung up (its output is lost);
/// one on another live pseudo-terminal when that is the terminal its session
/// lost ([`lost_by_session`]), or with `--any-tty`; never a pty master (a job
/// running tmux, ssh or expect drives a terminal of its own). Readers (fd 0,
/// and any opened read-only) go to /dev/null, the others to the output file;
/// flags that cannot be read count as read-write.
fn fd_plan(snap: &Snapshot, p: &Stat, any_tty: bool) -> FdPlan {
    let read_only = |flags: i32| flags & libc::O_ACCMODE == libc::O_RDONLY;
    let all = proc::fds(p.pid);
    let sinks: Vec<(i32, Sink)> = all
        .iter()
        .map(|&fd| (fd, output::of(p.pid, fd, p.tty_nr)))
        .collect();
    let drives_a_terminal = sinks.iter().any(|(_, s)| *s == Sink::PtyMaster);
    let mut plan = FdPlan {
        fds: Vec::new(),
        left: Vec::new(),
    };
    for (fd, sink) in sinks {
        let take = match &sink {
            Sink::Terminal | Sink::HungUp(_) => true,
            Sink::OtherTerminal(name) => {
                let taken = any_tty
                    || is_dev_tty(p.pid, fd)
                    || (!drives_a_terminal && lost_by_session(snap, p, fd));
                if !taken {
                    plan.left.push(format!("fd {fd} on {name}"));
                }
                taken
            }
            _ => false,
        };
        if take {
            plan.fds.push(TtyFd {
                fd,
                reader: fd == 0 || proc::fd_flags(p.pid, fd).is_some_and(read_only),
                ctty: sink == Sink::Terminal,
            });
        }
    }
    plan
}

/// Whether descriptor `fd` of `pid` was opened as `/dev/tty`: the terminal the
/// process had when it opened it.
fn is_dev_tty(pid: Pid, fd: i32) -> bool {
    std::fs::read_link(format!("/proc/{pid}/fd/{fd}")).is_ok_and(|l| l == Path::new("/dev/tty"))
}

/// Whether descriptor `fd` of `p` is a live pseudo-terminal that its session
/// lost: `p` has no controlling terminal, and the terminal is either still
/// the controlling terminal of another process of `p`'s session, or of no
/// process at all (the session's leader has exited and left it behind).
fn lost_by_session(snap: &Snapshot, p: &Stat, fd: i32) -> bool {
    if p.tty_nr != 0 {
        return false;
    }
    let Ok(number) = tty::number(Path::new(&format!("/proc/{}/fd/{fd}", p.pid))) else {
        return false;
    };
    // Pseudo-terminal slaves only: a serial line nobody has as controlling
    // terminal is a device a daemon may talk to on purpose.
    if !(136..=143).contains(&tty::split(number).0) {
        return false;
    }
    let holders: Vec<&Stat> = snap.procs.iter().filter(|q| q.tty_nr == number).collect();
    holders.is_empty() || holders.iter().any(|q| q.session == p.session)
}

/// What was done to one process, for its report line.
struct Done {
    sighup: &'static str,
    redirected: Vec<String>,
    tty_dropped: bool,
    /// From attach to detach: how long the process was held.
    held: Duration,
}

/// Why a process was not cut loose: the error, and what had been done to it
/// before (empty: it was left as it was).
struct Failure {
    error: InjectError,
    done: Vec<String>,
}

impl From<InjectError> for Failure {
    fn from(error: InjectError) -> Failure {
        Failure {
            error,
            done: Vec::new(),
        }
    }
}

/// Cuts one process loose: attach, run the changes as one batch
/// ([`Changes`]), undo what a failure half-way leaves behind, detach.
fn cut_loose(p: &Stat, fds: &[TtyFd], output: &Output) -> Result<Done, Failure> {
    let handler =
        Status::read(p.pid).map_or(Disposition::Default, |s| s.disposition(Signal::SIGHUP));
    // Built before the process is touched: a path too long is refused first.
    let changes = Changes::plan(p, handler, fds, output)?;
    let started = Instant::now();
    let mut t = Tracee::attach(proc::live_thread(p.pid))?;
    let result = changes
        .batch
        .run(&mut t)
        .map_err(Failure::from)
        .and_then(|results| changes.outcome(&mut t, &results));
    t.detach()?;
    let mut done = result?;
    done.held = started.elapsed();
    Ok(done)
}

const DEV_NULL: &str = "/dev/null";

/// The calls that cut a process loose, as one [`Batch`], in order:
/// `/dev/null` and the output file opened (everything that can fail for want
/// of a resource, before anything is changed), SIGHUP ignored, the terminal
/// dropped, the descriptors re-pointed, the two closed. Each entry is the
/// index of its call in the batch.
struct Changes {
    batch: Batch,
    /// What each call is, for a message (`opening '/dev/null'`).
    what: Vec<String>,
    sighup: Option<usize>,
    /// Whether SIGHUP was ignored already.
    ignored: bool,
    /// `TIOCNOTTY`.
    tty: Option<usize>,
    /// The `dup3` of each descriptor, and its `FD->PATH` for the report.
    dups: Vec<(usize, String)>,
    /// The descriptors opened in the process, each with the call that closes it.
    opened: Vec<(usize, usize)>,
}

impl Changes {
    fn plan(
        p: &Stat,
        handler: Disposition,
        fds: &[TtyFd],
        output: &Output,
    ) -> Result<Changes, InjectError> {
        let mut c = Changes {
            batch: Batch::new(),
            what: Vec::new(),
            sighup: None,
            ignored: handler == Disposition::Ignore,
            tty: None,
            dups: Vec::new(),
            opened: Vec::new(),
        };
        let target = match output {
            Output::Untouched => None,
            Output::File(path) => Some(path.as_path()),
            Output::Null => Some(Path::new(DEV_NULL)),
        };
        let mut opens = None;
        if let Some(target) = target.filter(|_| !fds.is_empty()) {
            let null = c.open(Path::new(DEV_NULL), OFlag::O_RDONLY | OFlag::O_CLOEXEC, 0)?;
            // O_NONBLOCK so that the process never hangs on a FIFO without a
            // reader; cleared just below.
            let append = OFlag::O_WRONLY | OFlag::O_APPEND;
            let creating = append | OFlag::O_CREAT | OFlag::O_CLOEXEC | OFlag::O_NONBLOCK;
            let out = c.open(target, creating, OUTPUT_MODE)?;
            let setfl = c.batch.fcntl_setfl(out, append);
            c.named(setfl, "fcntl F_SETFL");
            opens = Some((null, out));
        }
        // (A process with its own handler gets here only with --override-handler.)
        if !c.ignored {
            let call = c.batch.ignore_sighup();
            c.sighup = Some(c.named(call, "rt_sigaction"));
        }
        let Some(target) = target else {
            return Ok(c);
        };
        // Drop the controlling terminal first, while a descriptor still points
        // at it (a session leader's would hang up its whole session: left
        // alone): on one of its terminal descriptors, else on /dev/tty, opened
        // for it and closed after.
        if p.pid != p.session && p.tty_nr != 0 {
            let fd = if let Some(f) = fds.iter().find(|f| f.ctty) {
                Arg::Val(u64::from(f.fd.cast_unsigned()))
            } else {
                let flags = OFlag::O_RDONLY | OFlag::O_NOCTTY | OFlag::O_CLOEXEC;
                c.open(Path::new("/dev/tty"), flags, 0)?
            };
            let call = c.batch.drop_ctty(fd);
            c.tty = Some(c.named(call, "ioctl TIOCNOTTY"));
            if matches!(fd, Arg::Ret(_)) {
                c.close(fd);
            }
        }
        if let Some((null, out)) = opens {
            for f in fds {
                let (from, to) = if f.reader {
                    (null, DEV_NULL.to_string())
                } else {
                    (out, target.display().to_string())
                };
                let call = c.batch.dup3(from, f.fd);
                let i = c.named(call, &format!("dup3 onto fd {}", f.fd));
                c.dups.push((i, format!("{}->{to}", f.fd)));
            }
            c.close(null);
            c.close(out);
        }
        Ok(c)
    }

    /// Names the call whose result is `call`; its index.
    fn named(&mut self, call: Arg, what: &str) -> usize {
        self.what.push(what.to_string());
        match call {
            Arg::Ret(i) => i,
            _ => self.what.len() - 1,
        }
    }

    /// An `openat` that ends the batch if it fails; its descriptor.
    fn open(&mut self, path: &Path, flags: OFlag, mode: u32) -> Result<Arg, InjectError> {
        let fd = self.batch.open_at(path, flags, mode, true)?;
        self.named(fd, &format!("opening {}", quote(path.as_os_str())));
        Ok(fd)
    }

    /// The `close` of a descriptor the batch opened.
    fn close(&mut self, fd: Arg) {
        let call = self.batch.close(fd);
        let i = self.named(call, "close");
        if let Arg::Ret(open) = fd {
            self.opened.push((open, i));
        }
    }

    /// What the batch did, from its results: the report of a process cut
    /// loose, or the first failure with what was done before it. Descriptors
    /// it opened and did not close (the batch ended before) are closed here.
    fn outcome(&self, t: &mut Tracee, results: &Results) -> Result<Done, Failure> {
        let ok = |i: usize| {
            results
                .get(i)
                .copied()
                .flatten()
                .filter(|&r| errno_of(r).is_none())
        };
        let mut done = Done {
            sighup: if self.ignored {
                "SIGHUP already ignored"
            } else {
                "SIGHUP ignored"
            },
            redirected: Vec::new(),
            tty_dropped: self.tty.and_then(ok).is_some(),
            held: Duration::ZERO,
        };
        for (i, text) in &self.dups {
            if ok(*i).is_some() {
                done.redirected.push(text.clone());
            }
        }
        let failed = results.iter().enumerate().find_map(|(i, r)| {
            let errno = r.and_then(errno_of)?;
            self.batch.stops(i).then_some((i, errno))
        });
        let Some((i, errno)) = failed else {
            return Ok(done);
        };
        for &(open, close) in &self.opened {
            if let (Some(fd), None) = (ok(open), results.get(close).copied().flatten()) {
                let fd = i32::try_from(fd).unwrap_or(-1);
                if let Err(e @ (InjectError::Gone | InjectError::CallStuck)) = t.close(fd) {
                    return Err(e.into());
                }
            }
        }
        let mut changed = Vec::new();
        if self.sighup.and_then(ok).is_some() {
            changed.push(done.sighup.to_string());
        }
        if done.tty_dropped {
            changed.push("terminal dropped".to_string());
        }
        if !done.redirected.is_empty() {
            changed.push(format!("fds {}", done.redirected.join(", ")));
        }
        Err(Failure {
            error: InjectError::InProcess {
                what: self.what.get(i).cloned().unwrap_or_default(),
                errno,
            },
            done: changed,
        })
    }
}

/// The jobs of the caller's session, as rjobs numbers them (`%N`): the
/// shell's group and disown's own left out.
fn session_jobs(snap: &Snapshot) -> Vec<Job> {
    let session = nix::unistd::getsid(None).unwrap_or_else(|_| nix::unistd::getpid());
    snap.jobs(session, &[nix::unistd::getpgrp()], false)
}

/// The processes the command line names: every job's (`-a`), every running
/// job's (`-r`), or each spec's, then (`--tree`) their descendants, each once.
fn targets(cli: &Cli, snap: &Snapshot, jobs: &[Job], diag: &mut Diag) -> Vec<Stat> {
    let mut pids: Vec<Pid> = Vec::new();
    if cli.all_jobs || cli.running {
        let chosen = jobs
            .iter()
            .filter(|j| cli.all_jobs || j.state == JobState::Running);
        for job in chosen {
            let live = snap.members(job);
            pids.extend(live.filter(|p| !p.state.has_exited()).map(|p| p.pid));
        }
    }
    for text in &cli.jobs {
        spec_pids(cli, snap, jobs, text, diag, &mut pids);
    }
    if cli.tree {
        add_descendants(snap, &mut pids);
    }
    let mut seen = Vec::new();
    pids.into_iter()
        .filter(|p| {
            let new = !seen.contains(p);
            seen.push(*p);
            new
        })
        .filter_map(|p| snap.get(p).cloned().or_else(|| Stat::read(p).ok()))
        .collect()
}

/// Adds to `pids` the processes job spec `text` names; a spec that names
/// none is reported.
fn spec_pids(
    cli: &Cli,
    snap: &Snapshot,
    jobs: &[Job],
    text: &str,
    diag: &mut Diag,
    pids: &mut Vec<Pid>,
) {
    let spec = match JobSpec::parse(text) {
        Ok(s) => s,
        Err(e) => return bad_spec(diag, &e),
    };
    if let JobSpec::Pid(pid, _) = spec {
        // Kernel threads are not in the snapshot: name them rather than "no such process".
        if let Ok(st) = Stat::read(pid) {
            if st.is_kernel_thread() {
                return diag.error(&format!(
                    "PID {pid} ({}) is a kernel thread; left alone",
                    st.name()
                ));
            }
        }
    }
    let group_wanted = cli.group || !matches!(spec, JobSpec::Pid(..));
    match snap.resolve(&spec, jobs) {
        Ok(Target::Job(job)) if group_wanted => {
            // A member that has exited (a loop's short-lived child not yet
            // reaped) needs nothing: it is no refusal.
            let members = snap.members(job);
            pids.extend(members.filter(|p| !p.state.has_exited()).map(|p| p.pid));
        }
        Err(_) if matches!(spec, JobSpec::Pid(pid, None) if Stat::read(pid).is_ok()) => {
            // Not in the snapshot (a kernel thread): take it as it is,
            // and let the refusals speak.
            if let JobSpec::Pid(pid, _) = spec {
                pids.push(pid);
            }
        }
        Ok(Target::Job(_) | Target::Process(_)) => {
            let JobSpec::Pid(pid, _) = spec else { return };
            match snap.get(pid) {
                Some(p) if cli.group && p.pgrp.as_raw() == 0 => diag.error(&format!(
                    "{spec}: {}; name its processes by PID",
                    hupkit_common::jobs::GROUP_OUTSIDE_NAMESPACE
                )),
                Some(p) if cli.group => pids.extend(
                    snap.procs
                        .iter()
                        .filter(|q| q.pgrp == p.pgrp && !q.state.has_exited())
                        .map(|q| q.pid),
                ),
                Some(p) => pids.push(p.pid),
                None => {}
            }
        }
        Err(e) => bad_spec(diag, &e),
    }
}

/// Reports a job spec that names nothing; its error says why.
fn bad_spec(diag: &mut Diag, e: &impl std::fmt::Display) {
    diag.error(&e.to_string());
}

/// Adds every descendant of `pids` (`-r`), breadth first.
fn add_descendants(snap: &Snapshot, pids: &mut Vec<Pid>) {
    let mut i = 0;
    while i < pids.len() {
        let parent = pids[i];
        for q in snap.procs.iter().filter(|q| q.ppid == parent) {
            if !pids.contains(&q.pid) {
                pids.push(q.pid);
            }
        }
        i += 1;
    }
}

/// The processes that may be cut loose; each refusal is reported.
/// Refusals come first: nothing is created (not even nohup.out) for a
/// refused target.
fn admitted(cli: &Cli, snap: &Snapshot, procs: Vec<Stat>, diag: &mut Diag) -> Vec<Stat> {
    procs
        .into_iter()
        .filter(|p| {
            // A handler is the one refusal that --override-handler overrides:
            // the message says so.
            let refused = refusal(snap, p).map(|why| (why, "")).or_else(|| {
                handler_refusal(p, cli.override_handler)
                    .map(|why| (why, " (--override-handler forces)"))
            });
            let Some((why, forces)) = refused else {
                return true;
            };
            diag.error(&format!(
                "PID {} ({}) {why}; left alone{forces}",
                p.pid,
                p.name()
            ));
            false
        })
        .collect()
}

/// Cuts loose every process the command line names. Each process that
/// cannot be is explained on standard error, and the status is then 1
/// ([`Diag::status`]); the others are done.
///
/// # Errors
/// `/proc` cannot be read.
pub fn run(cli: &Cli, diag: &mut Diag) -> hupkit_common::Result<ExitStatus> {
    let snap = Snapshot::take().context(exit::FAILURE, || "cannot read /proc")?;
    let jobs = session_jobs(&snap);
    let procs = targets(cli, &snap, &jobs, diag);
    let procs = admitted(cli, &snap, procs, diag);
    if procs.is_empty() {
        if cli.jobs.is_empty() && !diag.errored() {
            let which = if cli.running { "running jobs" } else { "jobs" };
            say(diag, &format!("no {which} in this session; nothing to do"));
            return Ok(exit::SUCCESS);
        }
        return Ok(exit::FAILURE);
    }
    // --linger and --scope fail before anything is changed.
    let Ok(mut manager) = scope::prepare(cli, diag, &procs) else {
        return Ok(exit::FAILURE);
    };
    let Some(output) = output_file(cli, diag) else {
        return Ok(exit::FAILURE);
    };
    let (procs, moved) = match &mut manager {
        Some(m) => scope::move_jobs(m, &snap, procs, |p| label(&jobs, p), diag),
        None => (procs, Vec::new()),
    };
    // The helper has done its part: it exits and is reaped now.
    drop(manager);
    let mut stopped: Vec<&Stat> = Vec::new();
    let mut done: Vec<&Stat> = Vec::new();
    for p in &procs {
        let plan = fd_plan(&snap, p, cli.any_tty);
        // Named before it is touched: a process may exit meanwhile.
        let label = label(&jobs, p);
        // Each process is traced from a thread of its own: one that cannot be
        // stopped in time is released, untouched, when that thread ends.
        let outcome = std::thread::scope(|s| s.spawn(|| cut_loose(p, &plan.fds, &output)).join())
            .unwrap_or_else(|_| Err(InjectError::Failed("internal error".into()).into()));
        let was_stopped = p.state.is_stopped();
        let reported = Reported {
            label: &label,
            was_stopped,
            left: &plan.left,
            output: &output,
        };
        if report(cli, &reported, p, outcome, diag) {
            done.push(p);
            if was_stopped {
                stopped.push(p);
            }
        }
    }
    // A stopped process would be killed with its orphaned group at logout: continue it.
    for p in stopped {
        let _ = nix::sys::signal::kill(p.pid, Signal::SIGCONT);
    }
    for p in job_heads(&done) {
        record(p, scope::of(&moved, p));
    }
    Ok(diag.status())
}

/// The process that stands for each job (process group) among `done`, in
/// order: the group's leader if it was cut loose, else the first process of
/// the group that was. One record per job: the short-lived children of a
/// loop would otherwise pile up as records of processes long gone.
fn job_heads<'a>(done: &[&'a Stat]) -> Vec<&'a Stat> {
    let mut heads: Vec<&Stat> = Vec::new();
    for &p in done {
        match heads
            .iter_mut()
            .find(|h| h.pgrp == p.pgrp && p.pgrp.as_raw() != 0)
        {
            Some(h) if p.pid == p.pgrp => *h = p,
            Some(_) => {}
            None => heads.push(p),
        }
    }
    heads
}

/// A process as the report names it: `[N] PID 1234 (sleep 300)`, its job's
/// number as rjobs shows it (when it belongs to a job of this session) and
/// its command line, quoted for a shell.
fn label(jobs: &[Job], p: &Stat) -> String {
    let number = jobs
        .iter()
        .find(|j| j.pgid == p.pgrp)
        .map(|j| format!("[{}] ", j.number))
        .unwrap_or_default();
    format!("{number}PID {} ({})", p.pid, Snapshot::cmdline_text(p))
}

/// One line on standard output, named as invoked (disown or rdisown).
fn say(diag: &Diag, text: &str) {
    let line = format!("{}: {text}\n", diag.prog().to_string_lossy());
    let _ = hupkit_common::stdio::write_all(hupkit_common::stdio::STDOUT, line.as_bytes());
}

/// What the report of one process needs besides the outcome.
struct Reported<'a> {
    label: &'a str,
    was_stopped: bool,
    /// Descriptors on other live terminals, left alone.
    left: &'a [String],
    output: &'a Output,
}

/// The report line of a process cut loose: what was done, and what was not.
fn done_line(cli: &Cli, r: &Reported<'_>, done: &Done) -> String {
    let mut line = format!("{}: {}", r.label, done.sighup);
    if !done.redirected.is_empty() {
        let _ = write!(line, "; fds {}", done.redirected.join(", "));
    } else if !matches!(r.output, Output::Untouched) {
        line.push_str("; no descriptor on a terminal");
    }
    if !matches!(r.output, Output::Untouched) && !r.left.is_empty() {
        let them = if r.left.len() == 1 { "it" } else { "them" };
        let _ = write!(
            line,
            "; {} left alone (--any-tty re-points {them})",
            r.left.join(", ")
        );
    }
    if done.tty_dropped {
        line.push_str("; terminal dropped");
    }
    if r.was_stopped {
        line.push_str("; continued");
    }
    if cli.verbose {
        let _ = write!(line, "; held {} µs", done.held.as_micros());
    }
    line
}

/// Says what was done to `p` (on standard output) or why it was not (on
/// standard error); whether it was cut loose.
fn report(
    cli: &Cli,
    r: &Reported<'_>,
    p: &Stat,
    outcome: Result<Done, Failure>,
    diag: &mut Diag,
) -> bool {
    let label = r.label;
    let (outcome, done) = match outcome {
        Ok(done) => (Ok(done), Vec::new()),
        Err(f) => (Err(f.error), f.done),
    };
    match outcome {
        Ok(done) => {
            say(diag, &done_line(cli, r, &done));
            true
        }
        Err(InjectError::Attach(Errno::EPERM)) => {
            diag.error(&format!(
                "{label}: cannot trace it: {}; left alone",
                permission_hint(p)
            ));
            false
        }
        Err(InjectError::Gone) => {
            // It ended while disown worked on it (a loop's short-lived child,
            // say): there is nothing left to cut loose, and nothing failed.
            say(
                diag,
                &format!("{label}: it exited meanwhile; nothing to do"),
            );
            false
        }
        Err(e @ InjectError::CallStuck) => {
            diag.error(&format!("{label}: {e}"));
            false
        }
        Err(e) if done.is_empty() => {
            diag.error(&format!("{label}: {e}; left as it was"));
            false
        }
        Err(e) => {
            diag.error(&format!(
                "{label}: {e}; done before it: {}",
                done.join("; ")
            ));
            false
        }
    }
}

/// Writes the job record of a job that was cut loose (silently), unless
/// `HUPKIT_NO_RECORD=1`: `p` is the process that stands for it, `scope` the
/// scope it was moved to (`--scope`).
fn record(p: &Stat, scope: Option<&str>) {
    let Some(dir) = records::write_dir() else {
        return;
    };
    let argv = std::fs::read(format!("/proc/{}/cmdline", p.pid))
        .map(|raw| {
            raw.split(|&b| b == 0)
                .filter(|a| !a.is_empty())
                .map(|a| OsStr::from_bytes(a).to_os_string())
                .collect()
        })
        .unwrap_or_default();
    let Ok(mut rec) = records::Record::new(p.pid, records::Level::Disown, argv) else {
        return;
    };
    rec.cwd = std::fs::read_link(format!("/proc/{}/cwd", p.pid))
        .map(PathBuf::into_os_string)
        .unwrap_or_default();
    rec.tty = tty::path(p.tty_nr)
        .map(PathBuf::into_os_string)
        .unwrap_or_default();
    // Where its output goes now, as the kernel says: the file only if it was
    // re-pointed there.
    rec.output = std::fs::read_link(format!("/proc/{}/fd/1", p.pid))
        .map(PathBuf::into_os_string)
        .unwrap_or_default();
    scope.unwrap_or_default().clone_into(&mut rec.scope);
    let _ = records::write(&dir, &rec);
}
