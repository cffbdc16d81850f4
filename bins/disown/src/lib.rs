//! `disown`: cut a running job loose from its terminal, after the fact.
//!
//! The flow: [`main`] → [`run`]: job specs resolved on one `/proc` scan
//! ([`hupkit_common::jobs`]), each target checked ([`refusal`]), then
//! [`cut_loose`] makes the process itself ignore SIGHUP, re-point its
//! terminal descriptors and drop its controlling terminal, with system calls
//! injected through ptrace ([`hupkit_common::inject`]); stopped targets are
//! continued and a job record is written.

pub mod cli;

use std::ffi::OsStr;
use std::fmt::Write as _;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

use hupkit_common::diag::Diag;
use hupkit_common::inject::{InjectError, Tracee, errno_of};
use hupkit_common::jobs::{JobSpec, Snapshot, Target};
use hupkit_common::proc::{Stat, Status};
use hupkit_common::quote::quote;
use hupkit_common::records;
use hupkit_common::safefile::FileError;
use hupkit_common::safepath::{self, Purpose};
use hupkit_common::signal::Disposition;
use hupkit_common::tty;
use nix::fcntl::OFlag;
use nix::libc;
use nix::sys::signal::Signal;
use nix::unistd::Pid;

use crate::cli::Cli;

/// The whole program, for the binary's entry (see its `main.rs` for the
/// start-up): parses `args` (argv\[0\] first), runs, returns the exit status.
#[must_use]
pub fn main(args: Vec<std::ffi::OsString>) -> hupkit_common::exit::Status {
    hupkit_common::cli::status::<Cli>(
        cli::command(),
        args,
        hupkit_common::exit::USAGE,
        |cli, _| Ok(hupkit_common::exit::Status::new(run(cli))),
    )
}

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
    let cwd = std::env::current_dir().unwrap_or_default();
    // disown may run as root for another user's process: the file is reached
    // under the same rules as detach's -o (no link, directory or shared-directory
    // entry of another user), so a planted link never makes root create or open
    // a file of another user's choosing. The target then opens the same path
    // itself.
    let try_open = |p: &Path| {
        safepath::locate(p, Purpose::Output)
            .and_then(|l| {
                // A FIFO without a reader fails at once (ENXIO) instead of hanging.
                l.open_write(OFlag::O_APPEND | OFlag::O_CLOEXEC | OFlag::O_NONBLOCK)
            })
            .map(drop)
    };
    let old = hupkit_common::stdio::umask(0o177);
    let result = (|| {
        let first = cwd.join(cli.output.as_deref().unwrap_or(Path::new("nohup.out")));
        let e1 = match try_open(&first) {
            Ok(()) => return Some(first),
            Err(e) => e,
        };
        let shown = cli
            .output
            .clone()
            .unwrap_or_else(|| PathBuf::from("nohup.out"));
        diag.error(&format!(
            "failed to open {}: {}",
            quote(shown.as_os_str()),
            strerror_io(&e1)
        ));
        if cli.output.is_some() {
            return None;
        }
        let home = std::env::var_os("HOME").filter(|h| !h.is_empty())?;
        let second = Path::new(&home).join("nohup.out");
        match try_open(&second) {
            Ok(()) => Some(second),
            Err(e) => {
                diag.error(&format!(
                    "failed to open {}: {}",
                    quote(second.as_os_str()),
                    strerror_io(&e)
                ));
                None
            }
        }
    })();
    let _ = hupkit_common::stdio::umask(old);
    result.map(Output::File)
}

fn strerror_io(e: &FileError) -> String {
    e.to_string()
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

/// The descriptors of `p` that are its controlling terminal (or /dev/tty).
fn tty_fds(p: &Stat) -> Vec<TtyFd> {
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir(format!("/proc/{}/fd", p.pid)) else {
        return out;
    };
    for e in dir.flatten() {
        let Some(fd) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let link = std::fs::read_link(e.path()).unwrap_or_default();
        let on_tty = link == Path::new("/dev/tty")
            || std::fs::metadata(e.path()).is_ok_and(|m| {
                m.file_type().is_char_device()
                    && p.tty_nr != 0
                    && tty::number(&e.path()).ok() == Some(p.tty_nr)
            });
        if !on_tty {
            continue;
        }
        let flags = std::fs::read_to_string(format!("/proc/{}/fdinfo/{fd}", p.pid))
            .ok()
            .and_then(|t| {
                t.lines()
                    .find_map(|l| l.strip_prefix("flags:"))
                    .and_then(|v| u32::from_str_radix(v.trim(), 8).ok())
            })
            .unwrap_or(2);
        out.push(TtyFd {
            fd,
            // O_ACCMODE == O_RDONLY: only read.
            reader: fd == 0
                || flags & libc::O_ACCMODE.cast_unsigned() == libc::O_RDONLY.cast_unsigned(),
        });
    }
    out.sort_by_key(|t| t.fd);
    out
}

/// A live thread of `pid` to attach to: the main thread, unless it has exited.
fn thread_of(pid: Pid) -> Pid {
    if Stat::read(pid).is_ok_and(|s| s.state != hupkit_common::proc::ProcState::Zombie) {
        return pid;
    }
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .ok()
        .and_then(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()))
                .map(Pid::from_raw)
                .find(|t| {
                    std::fs::read_to_string(format!("/proc/{pid}/task/{t}/stat"))
                        .is_ok_and(|s| !s.contains(") Z "))
                })
        })
        .unwrap_or(pid)
}

/// `AT_FDCWD` as a system-call argument (its bit pattern, sign-extended).
const AT_FDCWD: u64 = (libc::AT_FDCWD as i64).cast_unsigned();

fn check(ret: i64, what: &str) -> Result<i64, InjectError> {
    match errno_of(ret) {
        Some(e) => Err(InjectError::Failed(format!(
            "{what} failed in the process: {}",
            hupkit_common::diag::strerror(e)
        ))),
        None => Ok(ret),
    }
}

/// What was done to one process, for its report line.
struct Done {
    sighup: &'static str,
    redirected: Vec<String>,
    tty_dropped: bool,
    /// From attach to detach: how long the process was held.
    held: std::time::Duration,
}

/// Cuts one process loose; the injected calls, in order.
#[allow(clippy::too_many_lines)] // one sequence of injected calls, read top to bottom
fn cut_loose(p: &Stat, output: &Output) -> Result<Done, InjectError> {
    let handler =
        Status::read(p.pid).map_or(Disposition::Default, |s| s.disposition(Signal::SIGHUP));
    let fds = tty_fds(p);
    let started = std::time::Instant::now();
    let mut t = Tracee::attach(thread_of(p.pid))?;
    let prot = (libc::PROT_READ | libc::PROT_WRITE) as u64;
    let flags = (libc::MAP_PRIVATE | libc::MAP_ANONYMOUS) as u64;
    let page = check(
        t.syscall(libc::SYS_mmap, [0, 4096, prot, flags, u64::MAX, 0])?,
        "mmap",
    )?
    .cast_unsigned();
    let result = (|| {
        // (A process with its own handler gets here only with -a.)
        let sighup = if handler == Disposition::Ignore {
            "SIGHUP already ignored"
        } else {
            let mut act = [0u8; 32];
            act[..8].copy_from_slice(&1u64.to_ne_bytes()); // SIG_IGN
            t.write_mem(page, &act)?;
            check(
                t.syscall(
                    libc::SYS_rt_sigaction,
                    [libc::SIGHUP as u64, page, 0, 8, 0, 0],
                )?,
                "rt_sigaction",
            )?;
            "SIGHUP ignored"
        };
        let mut done = Done {
            sighup,
            redirected: Vec::new(),
            tty_dropped: false,
            held: std::time::Duration::ZERO,
        };
        let target = match output {
            Output::Untouched => return Ok(done),
            Output::File(path) => path.clone(),
            Output::Null => PathBuf::from("/dev/null"),
        };
        // Drop the controlling terminal first, while a descriptor still points at it.
        if p.pid != p.session && p.tty_nr != 0 {
            t.write_mem(page + 2048, b"/dev/tty\0")?;
            let fd = match fds.first() {
                Some(f) => i64::from(f.fd),
                None => check(
                    t.syscall(
                        libc::SYS_openat,
                        [
                            AT_FDCWD,
                            page + 2048,
                            (libc::O_RDONLY | libc::O_NOCTTY | libc::O_CLOEXEC) as u64,
                            0,
                            0,
                            0,
                        ],
                    )?,
                    "openat /dev/tty",
                )?,
            };
            let r = t.syscall(
                libc::SYS_ioctl,
                [fd.cast_unsigned(), libc::TIOCNOTTY, 0, 0, 0, 0],
            )?;
            if fds.is_empty() {
                t.syscall(libc::SYS_close, [fd.cast_unsigned(), 0, 0, 0, 0, 0])?;
            }
            done.tty_dropped = errno_of(r).is_none();
        }
        if fds.is_empty() {
            return Ok(done);
        }
        let mut path = target.as_os_str().as_bytes().to_vec();
        path.push(0);
        if path.len() > 2000 {
            return Err(InjectError::Failed("the output path is too long".into()));
        }
        t.write_mem(page + 64, &path)?;
        t.write_mem(page + 2048, b"/dev/null\0")?;
        let nul = check(
            t.syscall(
                libc::SYS_openat,
                [
                    AT_FDCWD,
                    page + 2048,
                    (libc::O_RDONLY | libc::O_CLOEXEC) as u64,
                    0,
                    0,
                    0,
                ],
            )?,
            "openat /dev/null",
        )?;
        let out = check(
            t.syscall(
                libc::SYS_openat,
                [
                    AT_FDCWD,
                    page + 64,
                    // O_NONBLOCK so that the process never hangs on a FIFO without a
                    // reader; cleared just below.
                    (libc::O_WRONLY
                        | libc::O_APPEND
                        | libc::O_CREAT
                        | libc::O_CLOEXEC
                        | libc::O_NONBLOCK) as u64,
                    0o600,
                    0,
                    0,
                ],
            )?,
            &format!("opening {}", quote(target.as_os_str())),
        );
        let out = match out {
            Ok(fd) => fd,
            Err(e) => {
                t.syscall(libc::SYS_close, [nul.cast_unsigned(), 0, 0, 0, 0, 0])?;
                return Err(e);
            }
        };
        let blocking = (libc::O_WRONLY | libc::O_APPEND) as u64;
        t.syscall(
            libc::SYS_fcntl,
            [out.cast_unsigned(), libc::F_SETFL as u64, blocking, 0, 0, 0],
        )?;
        for f in &fds {
            let from = if f.reader { nul } else { out };
            check(
                t.syscall(
                    libc::SYS_dup3,
                    [
                        from.cast_unsigned(),
                        u64::from(f.fd.cast_unsigned()),
                        0,
                        0,
                        0,
                        0,
                    ],
                )?,
                "dup3",
            )?;
            done.redirected.push(format!(
                "{}->{}",
                f.fd,
                if f.reader {
                    "/dev/null".to_string()
                } else {
                    target.display().to_string()
                }
            ));
        }
        t.syscall(libc::SYS_close, [nul.cast_unsigned(), 0, 0, 0, 0, 0])?;
        t.syscall(libc::SYS_close, [out.cast_unsigned(), 0, 0, 0, 0, 0])?;
        Ok(done)
    })();
    let unmapped = t.syscall(libc::SYS_munmap, [page, 4096, 0, 0, 0, 0]);
    t.detach()?;
    let mut done = result?;
    unmapped?;
    done.held = started.elapsed();
    Ok(done)
}

/// The processes the specs name.
fn targets(cli: &Cli, snap: &Snapshot, diag: &mut Diag) -> (Vec<Stat>, bool) {
    let session = nix::unistd::getsid(None).unwrap_or_else(|_| nix::unistd::getpid());
    let jobs = snap.jobs(session, &[nix::unistd::getpgrp()], false);
    let mut ok = true;
    let mut pids: Vec<Pid> = Vec::new();
    for text in &cli.jobs {
        let spec = match JobSpec::parse(text) {
            Ok(s) => s,
            Err(msg) => {
                diag.error(&msg.to_string());
                ok = false;
                continue;
            }
        };
        if let JobSpec::Pid(pid, _) = spec {
            // Kernel threads are not in the snapshot: name them rather than "no such process".
            if let Ok(st) = Stat::read(pid) {
                if st.is_kernel_thread() {
                    diag.error(&format!(
                        "PID {pid} ({}) is a kernel thread; left alone",
                        st.name()
                    ));
                    ok = false;
                    continue;
                }
            }
        }
        let group_wanted = cli.group || !matches!(spec, JobSpec::Pid(..));
        match snap.resolve(&spec, &jobs) {
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
                let JobSpec::Pid(pid, _) = spec else { continue };
                let p = snap.get(pid).cloned();
                match p {
                    Some(p) if cli.group && p.pgrp.as_raw() == 0 => {
                        diag.error(&format!(
                            "{spec}: {}; name its processes by PID",
                            hupkit_common::jobs::GROUP_OUTSIDE_NAMESPACE
                        ));
                        ok = false;
                    }
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
            Err(msg) => {
                diag.error(&msg.to_string());
                ok = false;
            }
        }
    }
    if cli.tree {
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
    let mut seen = Vec::new();
    let procs = pids
        .into_iter()
        .filter(|p| {
            let new = !seen.contains(p);
            seen.push(*p);
            new
        })
        .filter_map(|p| snap.get(p).cloned().or_else(|| Stat::read(p).ok()))
        .collect();
    (procs, ok)
}

/// Cuts loose every process the command line names; returns the exit status.
#[must_use]
pub fn run(cli: &Cli) -> i32 {
    let mut diag = Diag::new(OsStr::new("disown"));
    let snap = match Snapshot::take() {
        Ok(s) => s,
        Err(e) => {
            diag.error(&format!("cannot read /proc: {e}"));
            return 1;
        }
    };
    let (procs, mut ok) = targets(cli, &snap, &mut diag);
    // Refusals first: nothing is created (not even nohup.out) for a refused target.
    let procs: Vec<Stat> = procs
        .into_iter()
        .filter(
            |p| match refusal(&snap, p).or_else(|| handler_refusal(p, cli.all)) {
                Some(why) => {
                    let forces = if why.starts_with("has its own SIGHUP") {
                        " (-a forces)"
                    } else {
                        ""
                    };
                    diag.error(&format!(
                        "PID {} ({}) {why}; left alone{forces}",
                        p.pid,
                        p.name()
                    ));
                    ok = false;
                    false
                }
                None => true,
            },
        )
        .collect();
    if procs.is_empty() {
        return 1;
    }
    let Some(output) = output_file(cli, &mut diag) else {
        return 1;
    };
    let mut stopped: Vec<Stat> = Vec::new();
    let mut done_procs: Vec<Stat> = Vec::new();
    for p in &procs {
        let label = format!("PID {} ({})", p.pid, p.name());
        let was_stopped = p.state.is_stopped();
        // Each process is traced from a thread of its own: one that cannot be
        // stopped in time is released, untouched, when that thread ends.
        let outcome = std::thread::scope(|s| s.spawn(|| cut_loose(p, &output)).join())
            .unwrap_or_else(|_| Err(InjectError::Failed("internal error".into())));
        match outcome {
            Ok(done) => {
                let mut line = format!("disown: {label}: {}", done.sighup);
                if !done.redirected.is_empty() {
                    let _ = write!(line, "; fds {}", done.redirected.join(", "));
                }
                if done.tty_dropped {
                    line.push_str("; terminal dropped");
                }
                if was_stopped {
                    stopped.push(p.clone());
                    line.push_str("; continued");
                }
                if cli.verbose {
                    let _ = write!(line, "; held {} µs", done.held.as_micros());
                }
                line.push('\n');
                let _ =
                    hupkit_common::stdio::write_all(hupkit_common::stdio::STDOUT, line.as_bytes());
                done_procs.push(p.clone());
            }
            Err(InjectError::Attach(nix::errno::Errno::EPERM)) => {
                diag.error(&format!(
                    "{label}: cannot trace it: {}; left alone",
                    permission_hint(p)
                ));
                ok = false;
            }
            Err(e @ InjectError::CallStuck) => {
                diag.error(&format!("{label}: {e}"));
                ok = false;
            }
            Err(e) => {
                diag.error(&format!("{label}: {e}; left as it was"));
                ok = false;
            }
        }
    }
    // A stopped process would be killed with its orphaned group at logout: continue it.
    for p in &stopped {
        let _ = nix::sys::signal::kill(p.pid, Signal::SIGCONT);
    }
    for p in job_heads(&done_procs) {
        record(p, &output);
    }
    i32::from(!ok)
}

/// The process that stands for each job (process group) among `done`, in
/// order: the group's leader if it was cut loose, else the first process of
/// the group that was. One record per job: the short-lived children of a
/// loop would otherwise pile up as records of processes long gone.
fn job_heads(done: &[Stat]) -> Vec<&Stat> {
    let mut heads: Vec<&Stat> = Vec::new();
    for p in done {
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
