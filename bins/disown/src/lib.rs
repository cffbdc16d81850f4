//! `disown`: cut a running job loose from its terminal, after the fact.
//!
//! The flow: [`main`] → [`run`]: job specs resolved on one `/proc` scan
//! ([`hupkit_common::jobs`]), each target checked ([`refusal`]), then
//! `cut_loose`, from a thread of its own per process: attach
//! ([`hupkit_common::inject::Tracee`]), map a scratch page in it
//! ([`hupkit_common::inject::Scratch`]), and make the process itself ignore
//! SIGHUP, drop its controlling terminal and re-point its terminal
//! descriptors (found by [`hupkit_common::proc::terminal_fds`]), one typed
//! injected call each; stopped targets are continued and a job record is
//! written. Errors about one process are reported and the next one is done;
//! the status is then 1 ([`Diag::status`]).

pub mod cli;

use std::ffi::OsStr;
use std::fmt::Write as _;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hupkit_common::Context;
use hupkit_common::diag::Diag;
use hupkit_common::exit::{self, Status as ExitStatus};
use hupkit_common::inject::{InjectError, Scratch, Tracee};
use hupkit_common::jobs::{Job, JobSpec, Snapshot, Target};
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

/// A process with its own SIGHUP handler is left alone, unless forced (`-a`):
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

/// A descriptor of the process on its terminal, and whether it is only read.
struct TtyFd {
    fd: i32,
    reader: bool,
}

/// The descriptors of `p` that are its controlling terminal (or /dev/tty):
/// readers (fd 0, and any opened read-only) go to /dev/null, the others to
/// the output file. Flags that cannot be read count as read-write.
fn tty_fds(p: &Stat) -> Vec<TtyFd> {
    let read_only = |flags: i32| flags & libc::O_ACCMODE == libc::O_RDONLY;
    proc::terminal_fds(p)
        .into_iter()
        .map(|t| TtyFd {
            fd: t.fd,
            reader: t.fd == 0 || t.flags.is_some_and(read_only),
        })
        .collect()
}

/// What was done to one process, for its report line.
struct Done {
    sighup: &'static str,
    redirected: Vec<String>,
    tty_dropped: bool,
    /// From attach to detach: how long the process was held.
    held: Duration,
}

/// `Ok(true)` if an injected call succeeded in the process, `Ok(false)` if
/// it failed there (a failure that changes nothing, such as a `close`);
/// a tracing failure stays an error.
fn succeeded(call: Result<(), InjectError>) -> Result<bool, InjectError> {
    match call {
        Ok(()) => Ok(true),
        Err(InjectError::InProcess { .. }) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Cuts one process loose: attach, map a scratch page, make the changes,
/// unmap, detach.
fn cut_loose(p: &Stat, output: &Output) -> Result<Done, InjectError> {
    let handler =
        Status::read(p.pid).map_or(Disposition::Default, |s| s.disposition(Signal::SIGHUP));
    let fds = tty_fds(p);
    let started = Instant::now();
    let mut t = Tracee::attach(proc::live_thread(p.pid))?;
    let mut page = Scratch::map(&mut t)?;
    let result = changes(&mut page, p, handler, &fds, output);
    let unmapped = page.release();
    t.detach()?;
    let mut done = result?;
    unmapped?;
    done.held = started.elapsed();
    Ok(done)
}

/// The injected calls, in order: SIGHUP ignored, the terminal dropped, the
/// descriptors re-pointed.
fn changes(
    page: &mut Scratch<'_>,
    p: &Stat,
    handler: Disposition,
    fds: &[TtyFd],
    output: &Output,
) -> Result<Done, InjectError> {
    // (A process with its own handler gets here only with -a.)
    let sighup = if handler == Disposition::Ignore {
        "SIGHUP already ignored"
    } else {
        page.ignore_sighup()?;
        "SIGHUP ignored"
    };
    let mut done = Done {
        sighup,
        redirected: Vec::new(),
        tty_dropped: false,
        held: Duration::ZERO,
    };
    let target = match output {
        Output::Untouched => return Ok(done),
        Output::File(path) => path.as_path(),
        Output::Null => Path::new(DEV_NULL),
    };
    // Drop the controlling terminal first, while a descriptor still points at
    // it (a session leader's would hang up its whole session: left alone).
    if p.pid != p.session && p.tty_nr != 0 {
        done.tty_dropped = drop_terminal(page, fds)?;
    }
    if !fds.is_empty() {
        done.redirected = redirect(page, fds, target)?;
    }
    Ok(done)
}

const DEV_NULL: &str = "/dev/null";

/// `TIOCNOTTY` on one of its terminal descriptors (else on /dev/tty, opened
/// for it and closed after); whether the terminal was dropped.
fn drop_terminal(page: &mut Scratch<'_>, fds: &[TtyFd]) -> Result<bool, InjectError> {
    let (fd, opened) = if let Some(f) = fds.first() {
        (f.fd, false)
    } else {
        let flags = OFlag::O_RDONLY | OFlag::O_NOCTTY | OFlag::O_CLOEXEC;
        (page.open_at(Path::new("/dev/tty"), flags, 0)?, true)
    };
    let t = page.tracee();
    let dropped = succeeded(t.drop_ctty(fd))?;
    if opened {
        succeeded(t.close(fd))?;
    }
    Ok(dropped)
}

/// Re-points each terminal descriptor, readers to /dev/null, writers to
/// `target`; the `FD->PATH` of each, for the report.
fn redirect(
    page: &mut Scratch<'_>,
    fds: &[TtyFd],
    target: &Path,
) -> Result<Vec<String>, InjectError> {
    let null = page.open_at(Path::new(DEV_NULL), OFlag::O_RDONLY | OFlag::O_CLOEXEC, 0)?;
    // O_NONBLOCK so that the process never hangs on a FIFO without a reader;
    // cleared just below.
    let append = OFlag::O_WRONLY | OFlag::O_APPEND;
    let creating = append | OFlag::O_CREAT | OFlag::O_CLOEXEC | OFlag::O_NONBLOCK;
    let out = match page.open_at(target, creating, OUTPUT_MODE) {
        Ok(fd) => fd,
        Err(e) => {
            succeeded(page.tracee().close(null))?;
            return Err(e);
        }
    };
    let t = page.tracee();
    succeeded(t.fcntl_setfl(out, append))?;
    let mut redirected = Vec::new();
    for f in fds {
        let (from, to) = if f.reader {
            (null, DEV_NULL.to_string())
        } else {
            (out, target.display().to_string())
        };
        t.dup3(from, f.fd)?;
        redirected.push(format!("{}->{to}", f.fd));
    }
    succeeded(t.close(null))?;
    succeeded(t.close(out))?;
    Ok(redirected)
}

/// The processes the specs name: each spec's, then (`-r`) their
/// descendants, each once.
fn targets(cli: &Cli, snap: &Snapshot, diag: &mut Diag) -> Vec<Stat> {
    let session = nix::unistd::getsid(None).unwrap_or_else(|_| nix::unistd::getpid());
    let jobs = snap.jobs(session, &[nix::unistd::getpgrp()], false);
    let mut pids: Vec<Pid> = Vec::new();
    for text in &cli.jobs {
        spec_pids(cli, snap, &jobs, text, diag, &mut pids);
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
            pids.extend(job.members.iter().map(|&i| snap.procs[i].pid));
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
                        .filter(|q| q.pgrp == p.pgrp)
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
            // A handler is the one refusal that -a overrides: the message says so.
            let refused = refusal(snap, p)
                .map(|why| (why, ""))
                .or_else(|| handler_refusal(p, cli.all).map(|why| (why, " (-a forces)")));
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
    let procs = targets(cli, &snap, diag);
    let procs = admitted(cli, &snap, procs, diag);
    if procs.is_empty() {
        return Ok(exit::FAILURE);
    }
    let Some(output) = output_file(cli, diag) else {
        return Ok(exit::FAILURE);
    };
    let mut stopped: Vec<&Stat> = Vec::new();
    let mut done: Vec<&Stat> = Vec::new();
    for p in &procs {
        // Each process is traced from a thread of its own: one that cannot be
        // stopped in time is released, untouched, when that thread ends.
        let outcome = std::thread::scope(|s| s.spawn(|| cut_loose(p, &output)).join())
            .unwrap_or_else(|_| Err(InjectError::Failed("internal error".into())));
        let was_stopped = p.state.is_stopped();
        if report(cli, p, was_stopped, outcome, diag) {
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
        record(p, &output);
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

/// Says what was done to `p` (on standard output) or why it was not (on
/// standard error); whether it was cut loose.
fn report(
    cli: &Cli,
    p: &Stat,
    was_stopped: bool,
    outcome: Result<Done, InjectError>,
    diag: &mut Diag,
) -> bool {
    let label = format!("PID {} ({})", p.pid, p.name());
    match outcome {
        Ok(done) => {
            // The report names the program as invoked: disown or rdisown.
            let mut line = format!(
                "{}: {label}: {}",
                diag.prog().to_string_lossy(),
                done.sighup
            );
            if !done.redirected.is_empty() {
                let _ = write!(line, "; fds {}", done.redirected.join(", "));
            }
            if done.tty_dropped {
                line.push_str("; terminal dropped");
            }
            if was_stopped {
                line.push_str("; continued");
            }
            if cli.verbose {
                let _ = write!(line, "; held {} µs", done.held.as_micros());
            }
            line.push('\n');
            let _ = hupkit_common::stdio::write_all(hupkit_common::stdio::STDOUT, line.as_bytes());
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
            let line = format!(
                "{}: {label}: it exited meanwhile; nothing to do\n",
                diag.prog().to_string_lossy()
            );
            let _ = hupkit_common::stdio::write_all(hupkit_common::stdio::STDOUT, line.as_bytes());
            false
        }
        Err(e @ InjectError::CallStuck) => {
            diag.error(&format!("{label}: {e}"));
            false
        }
        Err(e) => {
            diag.error(&format!("{label}: {e}; left as it was"));
            false
        }
    }
}

/// Writes the job record of a job that was cut loose (silently), unless
/// `HUPKIT_NO_RECORD=1`: `p` is the process that stands for it.
fn record(p: &Stat, output: &Output) {
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
    rec.output = match output {
        Output::File(f) => f.clone().into_os_string(),
        Output::Null => "/dev/null".into(),
        Output::Untouched => std::fs::read_link(format!("/proc/{}/fd/1", p.pid))
            .map(PathBuf::into_os_string)
            .unwrap_or_default(),
    };
    let _ = records::write(&dir, &rec);
}
