//! `detach`: run a command as a true daemon, and tell the caller the truth.
//!
//! The last level of separation: the command runs in its own session, with no
//! controlling terminal, no inherited descriptors, signals or mask, reparented to
//! init, so no hangup, logout or shell can reach it. Unlike daemonize, setsid and
//! start-stop-daemon, detach reports every failure after the fork (exec included)
//! to the caller, returns only once the pidfile is written, and never writes
//! through a planted symbolic link.
//!
//! The flow: [`main`] → [`cli::Cli`] → [`start`] ([`plan::Plan`] prepared before
//! any fork → [`spawn::spawn`] → [`notify`] → [`records`]) or
//! [`control::status`] / [`control::stop`] / [`control::reload`] /
//! [`control::signal_group`] / [`restart::restart`], or [`print::print`].

pub mod cli;
pub mod control;
pub mod logging;
pub mod notify;
pub mod plan;
pub mod print;
pub mod records;
pub mod restart;
pub mod spawn;

use std::ffi::{OsStr, OsString};
use std::time::Duration;

use hupkit_common::dbus::{self, Bus, Helper};
use hupkit_common::diag::Diag;
use hupkit_common::exit::{self, Status};
use hupkit_common::identity::{Identity, Liveness};
use hupkit_common::nss;
use hupkit_common::pidfd::PidFd;
use hupkit_common::quote::quote;
use hupkit_common::scope;
use hupkit_common::{Error, Result};
use nix::sys::signal::Signal;
use nix::unistd::Pid;

use crate::cli::Cli;
use crate::spawn::{Failure, Step};

/// The whole program, for the binary's entry (which has already done the
/// start-up detach asks for: see its `main.rs`): parses the command line
/// (`args`, argv\[0\] first), runs, and returns the exit status.
#[must_use]
pub fn main(args: Vec<std::ffi::OsString>) -> Status {
    if args.get(1).is_some_and(|a| a == logging::RELAY_ARG) {
        return logging::relay(&args);
    }
    // detach's own arguments, kept in the job record for --restart.
    let raw: Vec<OsString> = args.iter().skip(1).cloned().collect();
    hupkit_common::cli::status::<Cli>(cli::command(), args, exit::CANCELED, |cli, diag| {
        run_with(cli, &raw, diag)
    })
}

/// Runs the mode `cli` asks for (a start records no arguments to restart with).
pub fn run(cli: &Cli, diag: &mut Diag) -> Result<Status> {
    run_with(cli, &[], diag)
}

/// Runs the mode `cli` asks for; `raw` is the command line `cli` was parsed
/// from (argv\[0\] excepted), which a start keeps in its job record.
pub fn run_with(cli: &Cli, raw: &[OsString], diag: &mut Diag) -> Result<Status> {
    if let Some(format) = cli.print {
        return print::print(cli, format);
    }
    if let Some(target) = control_target(cli)? {
        let (code, line) = control(cli, &target, diag)?;
        let out = format!("detach: {line}\n");
        let _ = hupkit_common::stdio::write_all(hupkit_common::stdio::STDOUT, out.as_bytes());
        return Ok(code);
    }
    start_with(cli, raw, diag).map(|_| exit::SUCCESS)
}

/// Whether `cli` asks for a control of a running daemon rather than a start.
fn is_control(cli: &Cli) -> bool {
    cli.status || cli.stop || cli.reload || cli.pause || cli.resume || cli.restart
}

/// Runs the control `cli` asks for on `target`: the exit code and the line to print.
fn control(cli: &Cli, target: &control::Target, diag: &mut Diag) -> Result<(Status, String)> {
    if cli.status {
        return Ok(control::status(target));
    }
    if cli.reload {
        let sig = match cli.signal.as_deref() {
            None => Signal::SIGHUP,
            Some(text) => control::parse_signal(text).ok_or_else(|| {
                Error::usage(
                    format!("invalid signal {}", quote(OsStr::new(text))),
                    exit::CANCELED,
                )
            })?,
        };
        return Ok(control::reload(target, sig));
    }
    if cli.pause || cli.resume {
        let sig = if cli.pause {
            Signal::SIGSTOP
        } else {
            Signal::SIGCONT
        };
        return Ok(control::signal_group(target, sig));
    }
    let schedule = cli
        .retry
        .as_deref()
        .map(control::parse_schedule)
        .transpose()?
        .unwrap_or_else(control::default_schedule);
    if cli.restart {
        return restart::restart(target, &schedule, diag);
    }
    Ok(control::stop(target, &schedule))
}

/// The daemon a control acts on (`None` for a start): `-p FILE` (made
/// absolute) or `--job ID`.
fn control_target(cli: &Cli) -> Result<Option<control::Target>> {
    if !is_control(cli) {
        return Ok(None);
    }
    if let Some(text) = &cli.job {
        return records::JobId::parse(text)
            .map(|id| Some(control::Target::Job(id)))
            .ok_or_else(|| {
                Error::usage(
                    format!(
                        "invalid job ID {}: expected PID@STARTTIME, as rjobs --records shows it",
                        quote(OsStr::new(text))
                    ),
                    exit::CANCELED,
                )
            });
    }
    let cwd = std::env::current_dir().unwrap_or_default();
    Ok(cli
        .pidfile
        .as_deref()
        .map(|p| control::Target::Pidfile(plan::absolute(&cwd, p))))
}

/// Status 1, the holder named.
fn already_running(id: &Identity, what: &str) -> Error {
    Error::failed(
        format!("already running (PID {}, {what})", id.pid),
        exit::FAILURE,
    )
}

fn failure_error(f: Failure, plan: &plan::Plan) -> Error {
    let status = exit::CANCELED;
    let name = plan.command.first().map_or_else(String::new, |c| quote(c));
    let chdir = quote(OsStr::new(&*String::from_utf8_lossy(plan.chdir.to_bytes())));
    let user = plan
        .creds
        .as_ref()
        .map_or_else(String::new, |c| quote(OsStr::new(&c.name)));
    match f.step {
        Step::Exec => Error::sys(
            format!("failed to run command {name}"),
            f.errno,
            Status::for_exec_error(f.errno),
        ),
        Step::Chdir => Error::sys(
            format!("cannot change directory to {chdir}"),
            f.errno,
            status,
        ),
        Step::Credentials => Error::sys(format!("cannot switch to user {user}"), f.errno, status),
        Step::Verify => Error::failed(format!("switching to user {user} did not hold"), status),
        Step::Stdio => Error::sys("cannot set up standard streams", f.errno, status),
        Step::Signals => Error::sys("cannot reset the signal mask", f.errno, status),
        Step::Fds => Error::sys("cannot close inherited descriptors", f.errno, status),
        Step::Setsid => Error::sys("cannot create a session", f.errno, status),
        Step::Fork => Error::sys("cannot fork", f.errno, status),
        Step::Scope => Error::failed("the daemon was not released into its scope", status),
        Step::Journal => Error::sys(
            format!(
                "cannot connect to {}",
                quote(OsStr::new(logging::JOURNAL_STDOUT))
            ),
            f.errno,
            status,
        ),
        Step::Relay => Error::sys("cannot start the syslog relay", f.errno, status),
    }
}

/// Stops a daemon that failed to become ready: TERM, then KILL after 5 seconds.
fn stop_unready(pidfd: &PidFd, pid: Pid) {
    let _ = pidfd.signal(Signal::SIGTERM);
    if !pidfd.wait_exit(Duration::from_secs(5)).unwrap_or(false) {
        let _ = pidfd.signal(Signal::SIGKILL);
        let _ = pidfd.wait_exit(Duration::from_secs(5));
    }
    let _ = nix::sys::wait::waitpid(pid, Some(nix::sys::wait::WaitPidFlag::WNOHANG));
}

fn errno_of(e: &std::io::Error) -> nix::errno::Errno {
    e.raw_os_error()
        .map_or(nix::errno::Errno::EIO, nix::errno::Errno::from_raw)
}

fn refused(path: &std::path::Path, what: &str, e: &hupkit_common::safefile::FileError) -> Error {
    Error::failed(
        format!("refusing {what} {}: {e}", quote(path.as_os_str())),
        exit::CANCELED,
    )
}

/// The refusal of a pidfile, or of the identity record (`FILE.id`) beside it.
fn refusal_text(file: &std::path::Path, why: &str) -> String {
    let name = file.as_os_str().as_encoded_bytes();
    let what = if name.ends_with(b".id") {
        "identity record"
    } else if name.ends_with(b".job") {
        "job record"
    } else {
        "pidfile"
    };
    format!("refusing {what} {}: {why}", quote(file.as_os_str()))
}

/// What a start holds from its claim: the start lock (if asked) and its path,
/// and the pidfile (if asked), its directory walked once for the check and
/// the writes.
struct Claim {
    lock: Option<(records::StartLock, std::path::PathBuf)>,
    pidfile: Option<records::Pidfile>,
}

/// Takes the start lock (if asked) and refuses when the lock or the pidfile names
/// a live daemon; the lock stays held until the new daemon is recorded.
fn claim(cli: &Cli, cwd: &std::path::Path) -> Result<Claim> {
    let lock_path = cli.lock.as_deref().map(|p| plan::absolute(cwd, p));
    let pidfile = cli.pidfile.as_deref().map(|p| plan::absolute(cwd, p));
    if lock_path.is_some() && lock_path == pidfile {
        return Err(Error::usage(
            "--pidfile and --lock must be different files",
            exit::CANCELED,
        ));
    }
    // The lock first: a second start waits here, then sees the first daemon.
    let lock = match lock_path {
        Some(path) => {
            let (lock, recorded) =
                records::StartLock::acquire(&path).map_err(|e| refused(&path, "lock file", &e))?;
            if let Some(id) = recorded.filter(|id| id.liveness() == Liveness::Alive) {
                return Err(already_running(
                    &id,
                    &format!("lock {}", quote(path.as_os_str())),
                ));
            }
            Some((lock, path))
        }
        None => None,
    };
    let mut located = None;
    if let Some(pidfile) = pidfile {
        let (state, at) = records::read_located(&pidfile);
        located = at;
        match state {
            records::PidfileState::Refused(file, why) => {
                return Err(Error::failed(refusal_text(&file, &why), exit::CANCELED));
            }
            records::PidfileState::Pid(_, Some(id)) if id.liveness() == Liveness::Alive => {
                return Err(already_running(
                    &id,
                    &format!("pidfile {}", quote(pidfile.as_os_str())),
                ));
            }
            _ => {}
        }
    }
    Ok(Claim {
        lock,
        pidfile: located,
    })
}

/// `--notify`: waits for READY=1; returns the daemon's main PID, and its start
/// time when it is a `MAINPID=` that [`notify::vouch`] accepted.
fn await_ready(
    diag: &mut Diag,
    listener: &notify::Listener,
    pid: Pid,
    uid: nix::unistd::Uid,
    secs: u64,
    verbose: bool,
) -> Result<(Pid, Option<u64>)> {
    let pidfd =
        PidFd::open(pid).map_err(|e| Error::sys("cannot watch the daemon", e, exit::CANCELED))?;
    let mut on_status = |s: &str| {
        if verbose {
            diag.line(&format!("daemon status: {s}"));
        }
    };
    match listener.wait(&pidfd, uid, Duration::from_secs(secs), &mut on_status) {
        notify::Outcome::Ready(Some(main)) if main != pid => {
            let start = Identity::of(pid).map_or(0, |id| id.starttime);
            match notify::vouch(main, pid, start, uid) {
                Ok(main_start) => Ok((main, Some(main_start))),
                Err(why) => {
                    diag.warning(&format!(
                        "ignoring MAINPID={main}: {why}; recording PID {pid}"
                    ));
                    Ok((pid, None))
                }
            }
        }
        notify::Outcome::Ready(_) => Ok((pid, None)),
        notify::Outcome::Errno(n) => {
            stop_unready(&pidfd, pid);
            Err(Error::sys(
                format!("daemon PID {pid} reported failure (ERRNO={n}); stopped it"),
                nix::errno::Errno::from_raw(n),
                exit::CANCELED,
            ))
        }
        notify::Outcome::Exited => {
            let how = match nix::sys::wait::waitpid(pid, None) {
                Ok(nix::sys::wait::WaitStatus::Exited(_, c)) => format!("exited with status {c}"),
                Ok(nix::sys::wait::WaitStatus::Signaled(_, s, _)) => {
                    format!("was killed by {}", s.as_str())
                }
                _ => "exited".to_string(),
            };
            Err(Error::failed(
                format!("daemon PID {pid} {how} before it was ready"),
                exit::CANCELED,
            ))
        }
        notify::Outcome::Timeout => {
            stop_unready(&pidfd, pid);
            Err(Error::failed(
                format!("daemon PID {pid} was not ready after {secs} seconds; stopped it"),
                exit::CANCELED,
            ))
        }
    }
}

/// What a start was asked with, kept in the job record for `--restart`: the
/// directory detach ran in and its arguments (argv\[0\] excepted).
struct Origin<'a> {
    cwd: &'a std::path::Path,
    raw: &'a [OsString],
}

/// Writes the job record of the daemon (unless `HUPKIT_NO_RECORD=1`); a
/// failure is a warning with -v only.
fn record(
    plan: &plan::Plan,
    id: &Identity,
    scope: Option<&str>,
    cli: &Cli,
    origin: &Origin,
    diag: &mut Diag,
) {
    use hupkit_common::records;
    let Some(dir) = records::write_dir() else {
        return;
    };
    // A record never costs detach its run: skipped when memory is short.
    let argv_bytes: usize = plan
        .command
        .iter()
        .chain(origin.raw)
        .map(|a| a.len() + 32)
        .sum();
    if !records::enough_memory(argv_bytes) {
        return;
    }
    let Ok(mut rec) = records::Record::new(id.pid, records::Level::Detach, plan.command.clone())
    else {
        return;
    };
    rec.id = id.clone();
    scope.unwrap_or_default().clone_into(&mut rec.scope);
    rec.cwd = String::from_utf8_lossy(plan.chdir.to_bytes())
        .into_owned()
        .into();
    rec.output = std::fs::read_link(format!(
        "/proc/self/fd/{}",
        std::os::fd::AsRawFd::as_raw_fd(&plan.stdout)
    ))
    .map(std::path::PathBuf::into_os_string)
    .unwrap_or_default();
    rec.tty = std::fs::read_link("/proc/self/fd/0")
        .ok()
        .filter(|p| p.starts_with("/dev/pts") || p.starts_with("/dev/tty"))
        .map(std::path::PathBuf::into_os_string)
        .unwrap_or_default();
    rec.pidfile = plan
        .pidfile
        .clone()
        .map(std::path::PathBuf::into_os_string)
        .unwrap_or_default();
    rec.caller_cwd = origin.cwd.as_os_str().to_os_string();
    rec.tool_args = origin.raw.to_vec();
    if let Err(e) = records::write(&dir, &rec) {
        if cli.verbose {
            diag.warning(&format!("cannot write the job record: {e}"));
        }
    }
}

/// `--linger` and `--scope`, before anything is started: lingering enabled
/// for the daemon's user `uid`, and the caller's service manager connected
/// through the D-Bus helper (`None` without `--scope`). Without lingering, a
/// user's scope still dies at the last logout: one line says so, with the
/// remedy.
fn prepare_scope(cli: &Cli, diag: &mut Diag, uid: u32) -> Result<Option<Helper>> {
    if !cli.linger && !cli.scope {
        return Ok(None);
    }
    let what = if cli.scope { "--scope" } else { "--linger" };
    let cannot = |e: dbus::Error| Error::failed(format!("cannot use {what}: {e}"), exit::CANCELED);
    let mut helper = Helper::start().map_err(cannot)?;
    if cli.linger {
        helper.enable_linger(uid).map_err(|e| match e {
            dbus::Error::Refused(why) => Error::failed(why, exit::CANCELED),
            other => cannot(other),
        })?;
    }
    if !cli.scope {
        return Ok(None);
    }
    let bus = helper.connect().map_err(cannot)?;
    // The user's name through getent (detach is linked static: see plan::parse_user).
    let name = || nss::passwd_by_uid(uid).ok().flatten().map(|p| p.name);
    if bus == Bus::User {
        let name = name();
        if !name.as_deref().is_some_and(scope::name_lingers) {
            diag.warning(&format!(
                "the daemon will still die at the last logout of {}, who does not linger: its scope ends with the user's service manager (detach --linger, or loginctl enable-linger)",
                name.unwrap_or_else(|| uid.to_string())
            ));
        }
    }
    Ok(Some(helper))
}

/// `--scope`: the gate the daemon waits at until it is moved; its write end
/// for [`spawn::spawn`] (`None` without a manager).
fn scope_gate(
    plan: &mut plan::Plan,
    manager: Option<&Helper>,
) -> Result<Option<std::os::fd::OwnedFd>> {
    if manager.is_none() {
        return Ok(None);
    }
    let (rd, wr) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| Error::sys("cannot create the scope gate", e, exit::CANCELED))?;
    plan.gate = Some((rd, std::os::fd::AsRawFd::as_raw_fd(&wr)));
    Ok(Some(wr))
}

/// `--scope`: moves the daemon at `pid`, waiting at its gate, to a new scope
/// named after the command.
fn move_daemon(manager: &mut Helper, plan: &plan::Plan, pid: Pid) -> dbus::Result<String> {
    let hint = plan
        .command
        .first()
        .map_or(OsStr::new(""), |c| c.as_os_str());
    let pid = u32::try_from(pid.as_raw()).unwrap_or_default();
    manager.move_to_new_scope(&[pid], hint)
}

/// Reads the identity of the daemon at `pid` and writes the pidfile, if
/// asked, through `at` (the claim's walk) where there is one.
fn identify(plan: &plan::Plan, pid: Pid, at: Option<&records::Pidfile>) -> Result<Identity> {
    let id = Identity::of(pid).map_err(|e| {
        Error::sys(
            format!("cannot read the identity of PID {pid}"),
            errno_of(&e),
            exit::CANCELED,
        )
    })?;
    if let Some(pidfile) = &plan.pidfile {
        match at {
            Some(at) => at.write(&id),
            None => records::write_pidfile(pidfile, &id),
        }
        .map_err(|e| {
            Error::failed(
                format!(
                    "cannot write pidfile {} (daemon PID {} is running): {e}",
                    quote(pidfile.as_os_str()),
                    id.pid
                ),
                exit::CANCELED,
            )
        })?;
    }
    Ok(id)
}

/// Writes the new daemon's identity into the start lock.
fn record_in_lock(
    lock: &mut records::StartLock,
    path: &std::path::Path,
    id: &Identity,
) -> Result<()> {
    lock.record(id).map_err(|e| {
        Error::failed(
            format!(
                "cannot record the daemon in lock {}: {e}",
                quote(path.as_os_str())
            ),
            exit::CANCELED,
        )
    })
}

/// `-v`: what was started, its pidfile and scope (advisory lines).
fn say_started(diag: &mut Diag, plan: &plan::Plan, id: &Identity, scope: Option<&str>) {
    let cmd = hupkit_common::quote::command_line(
        plan.command
            .iter()
            .map(|c| std::os::unix::ffi::OsStrExt::as_bytes(c.as_os_str())),
    );
    diag.line(&format!("started PID {}: {cmd}", id.pid));
    if let Some(p) = &plan.pidfile {
        diag.line(&format!("pidfile {}", quote(p.as_os_str())));
    }
    if let Some(s) = scope {
        diag.line(&format!("scope {s}"));
    }
}

/// Starts the daemon: claim, plan, spawn, readiness, records.
pub fn start(cli: &Cli, diag: &mut Diag) -> Result<()> {
    start_with(cli, &[], diag).map(drop)
}

/// [`start`], keeping `raw` (the command line `cli` was parsed from, argv\[0\]
/// excepted) in the job record for `--restart`; the daemon's identity.
pub fn start_with(cli: &Cli, raw: &[OsString], diag: &mut Diag) -> Result<Identity> {
    let cwd = std::env::current_dir().map_err(|e| {
        Error::sys(
            "cannot get the current directory",
            errno_of(&e),
            exit::CANCELED,
        )
    })?;
    let Claim {
        mut lock,
        pidfile: located,
    } = claim(cli, &cwd)?;
    let creds = cli.user.as_deref().map(plan::parse_user).transpose()?;
    let owner = creds.as_ref().map(|c| (c.uid, c.gid));
    let listener = match cli.notify {
        Some(_) => Some(notify::Listener::new(owner).map_err(|e| {
            Error::sys(
                "cannot create the notification socket",
                errno_of(&e),
                exit::CANCELED,
            )
        })?),
        None => None,
    };
    let mut plan = plan::Plan::new(
        cli,
        &cwd,
        creds,
        listener.as_ref().map(notify::Listener::path),
    )?;
    let daemon_uid = owner.map_or_else(|| nix::unistd::geteuid().as_raw(), |(u, _)| u.as_raw());
    let mut manager = prepare_scope(cli, diag, daemon_uid)?;
    let gate = scope_gate(&mut plan, manager.as_ref())?;

    // Without --notify the daemon is the process the intermediate reports: its
    // identity is read and its pidfile written while it sets itself up and
    // execs (on the other core), not after. If it then fails, the pidfile goes.
    // With --scope it waits at its gate until it has been moved.
    let mut early: Option<Result<Identity>> = None;
    let mut moved: Option<dbus::Result<String>> = None;
    let spawned = spawn::spawn(&plan, gate, |pid| {
        if let Some(manager) = &mut manager {
            moved = Some(move_daemon(manager, &plan, pid));
            if moved.as_ref().is_some_and(std::result::Result::is_err) {
                return false;
            }
        }
        if cli.notify.is_none() {
            early = Some(identify(&plan, pid, located.as_ref()));
        }
        true
    });
    let pid = match spawned {
        Ok(pid) => pid,
        Err((f, daemon)) => {
            if let (Step::Relay, Some(pid)) = (f.step, daemon) {
                // The daemon runs, but its output has no reader: it goes. It
                // is detach's child (subreaper), so the PID is still its own.
                let _ = nix::sys::signal::kill(pid, Signal::SIGKILL);
                let _ = nix::sys::wait::waitpid(pid, None);
            }
            if let (Some(pidfile), Some(Ok(id))) = (&plan.pidfile, &early) {
                records::remove_pidfile(pidfile, id);
            }
            if let Some(Err(e)) = moved {
                return Err(Error::failed(e.to_string(), exit::CANCELED));
            }
            return Err(failure_error(f, &plan));
        }
    };
    // The helper has done its part: it exits and is reaped now, not after
    // the readiness wait.
    drop(manager);
    let scope = moved.and_then(std::result::Result::ok);
    let id = match (early, &listener, cli.notify) {
        (Some(done), _, _) => done?,
        (None, Some(listener), Some(secs)) => {
            let uid = owner.map_or_else(nix::unistd::geteuid, |(u, _)| u);
            let (main, start) = await_ready(diag, listener, pid, uid, secs, cli.verbose)?;
            if let Some(start) = start {
                // The vouched-for process must still be the one at that PID.
                if Identity::of(main).map(|id| id.starttime).ok() != Some(start) {
                    return Err(Error::failed(
                        format!("the daemon's main PID {main} exited before it was recorded"),
                        exit::CANCELED,
                    ));
                }
            }
            identify(&plan, main, located.as_ref())?
        }
        (None, _, _) => identify(&plan, pid, located.as_ref())?,
    };
    if let Some((lock, path)) = &mut lock {
        record_in_lock(lock, path, &id)?;
    }
    record(
        &plan,
        &id,
        scope.as_deref(),
        cli,
        &Origin { cwd: &cwd, raw },
        diag,
    );
    if cli.verbose {
        say_started(diag, &plan, &id, scope.as_deref());
    }
    Ok(id)
}
