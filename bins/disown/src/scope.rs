//! `--scope` and `--linger`: a running job taken out of the session's cgroup.
//!
//! logind kills every process of a session's cgroup at logout when
//! `KillUserProcesses=yes`, whatever was done to its SIGHUP or terminal. With
//! `--scope` each job (process group) among the targets is moved into a new
//! transient scope of the caller's service manager (through the D-Bus helper,
//! [`hupkit_common::dbus`]: the user manager for a user, the system manager
//! for root), before it is cut loose, so that it survives both the hangup and
//! the logout.
//!
//! The decisions:
//! - **Nothing half-done**: the manager is connected (and lingering enabled,
//!   `--linger`) before any process is touched; a job whose move fails is not
//!   cut loose either.
//! - **Every process of it**: a job forks while it is moved, and a child
//!   forked before its parent's move stays behind. So after the first move the
//!   job is listed again and what is still outside the scope is moved into it,
//!   until a pass finds nothing new, or [`MAX_PASSES`] passes have not been
//!   enough (a failure, said so). A job's members are its group, when all of
//!   it was named (`%N`, `-g`), and the descendants of what was moved.
//!   The scope is delegated (`Delegate=yes`), since systemd attaches
//!   processes to a running unit only if it is.
//! - **Done means done**: the manager's job is awaited and every process's
//!   cgroup checked ([`hupkit_logind::Manager::move_job_to_new_scope`]).

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;

use hupkit_common::dbus::{self, Bus, Helper};
use hupkit_common::diag::Diag;
use hupkit_common::jobs::Snapshot;
use hupkit_common::proc::{Stat, Status};
use hupkit_common::scope;
use nix::unistd::Pid;

use crate::cli::Cli;

/// How many times a job is listed again for processes it forked meanwhile.
pub const MAX_PASSES: usize = 20;

/// `--linger`, then `--scope`'s manager (`None` without `--scope`), before
/// anything is changed; `Err` once the failure is reported (status 1). Without
/// lingering, a user's scope still dies at the last logout: one line says so,
/// with the remedy.
pub fn prepare(cli: &Cli, diag: &mut Diag, procs: &[Stat]) -> Result<Option<Helper>, ()> {
    if !cli.linger && !cli.scope {
        return Ok(None);
    }
    let uid = owner(procs);
    let what = if cli.scope { "--scope" } else { "--linger" };
    let mut cannot = |e: dbus::Error| diag.error(&format!("cannot use {what}: {e}"));
    let mut helper = Helper::start().map_err(&mut cannot)?;
    if cli.linger {
        match helper.enable_linger(uid) {
            Ok(()) => {}
            Err(dbus::Error::Refused(why)) => {
                diag.error(&why);
                return Err(());
            }
            Err(e) => {
                diag.error(&format!("cannot use {what}: {e}"));
                return Err(());
            }
        }
    }
    if !cli.scope {
        return Ok(None);
    }
    let bus = helper
        .connect()
        .map_err(|e| diag.error(&format!("cannot use {what}: {e}")))?;
    if bus == Bus::User && !scope::lingers(uid).unwrap_or(false) {
        let prog = diag.prog().to_string_lossy().into_owned();
        diag.warning(&format!(
            "the job will still die at the last logout of {}, who does not linger: its scope ends with the user's service manager ({prog} --linger, or loginctl enable-linger)",
            scope::user_name(uid)
        ));
    }
    Ok(Some(helper))
}

/// Whose jobs these are: the caller, or for root the owner of the first.
fn owner(procs: &[Stat]) -> u32 {
    let me = nix::unistd::geteuid().as_raw();
    if me != 0 {
        return me;
    }
    procs
        .first()
        .and_then(|p| Status::read(p.pid).ok())
        .map_or(me, |s| s.uid[0])
}

/// A job moved: the processes named of it and its scope.
pub struct Moved {
    /// The processes of the job among the targets.
    pub pids: Vec<Pid>,
    /// The scope's unit name.
    pub scope: String,
}

/// Moves each job among `procs` (one scope per process group) and returns
/// the processes of the jobs that were moved and the scopes; each failure
/// is reported (status 1), and its job left out.
pub fn move_jobs(
    manager: &mut Helper,
    snap: &Snapshot,
    procs: Vec<Stat>,
    label: impl Fn(&Stat) -> String,
    diag: &mut Diag,
) -> (Vec<Stat>, Vec<Moved>) {
    let mut groups: Vec<Vec<Stat>> = Vec::new();
    for p in procs {
        match groups
            .iter_mut()
            .find(|g| g[0].pgrp == p.pgrp && p.pgrp.as_raw() != 0)
        {
            Some(g) => g.push(p),
            None => groups.push(vec![p]),
        }
    }
    let mut kept = Vec::new();
    let mut moved = Vec::new();
    for group in groups {
        let head = group.iter().find(|p| p.pid == p.pgrp).unwrap_or(&group[0]);
        let what = label(head);
        match move_job(manager, snap, &group) {
            Ok((scope, count)) => {
                let n = if count == 1 {
                    "1 process".to_owned()
                } else {
                    format!("{count} processes")
                };
                crate::say(diag, &format!("{what}: moved to {scope} ({n})"));
                moved.push(Moved {
                    pids: group.iter().map(|p| p.pid).collect(),
                    scope,
                });
                kept.extend(group);
            }
            Err(why) => diag.error(&format!("{what}: {why}; not cut loose")),
        }
    }
    (kept, moved)
}

/// Moves one job, `group` (processes of one group), into a new scope, then
/// what it forked meanwhile; its scope and how many processes were moved.
/// A pass that fails because a process exited meanwhile (a loop's
/// short-lived child) is tried again with those still alive.
fn move_job(
    manager: &mut Helper,
    snap: &Snapshot,
    group: &[Stat],
) -> Result<(String, usize), String> {
    let pgrp = group[0].pgrp;
    // The whole group was named: all of it is the job.
    let whole = pgrp.as_raw() != 0
        && snap
            .procs
            .iter()
            .filter(|q| q.pgrp == pgrp && !q.state.has_exited())
            .all(|q| group.iter().any(|p| p.pid == q.pid));
    let head = group.iter().find(|p| p.pid == p.pgrp).unwrap_or(&group[0]);
    // The head first: the scope is named after it.
    let mut done: Vec<Pid> = vec![head.pid];
    done.extend(group.iter().map(|p| p.pid).filter(|&p| p != head.pid));
    let mut scope: Option<String> = None;
    for _ in 0..MAX_PASSES {
        match &scope {
            None => {
                done.retain(|&p| alive(p));
                if done.is_empty() {
                    return Err("it exited before it could be moved".into());
                }
                match manager.move_job_to_new_scope(&raw(&done), &hint(head)) {
                    Ok(name) => scope = Some(name),
                    Err(e) if done.iter().all(|&p| alive(p)) => return Err(e.to_string()),
                    Err(_) => {}
                }
            }
            Some(name) => {
                let now = Snapshot::take().map_err(|e| format!("cannot read /proc: {e}"))?;
                let new = stragglers(&now, &done, whole.then_some(pgrp), name);
                if new.is_empty() {
                    return Ok((name.clone(), done.len()));
                }
                match manager.attach_to_scope(name, &raw(&new)) {
                    Ok(()) => done.extend(new),
                    Err(e) if new.iter().all(|&p| alive(p)) => {
                        return Err(format!("{e} ({} moved already)", moved_count(&done)));
                    }
                    Err(_) => {}
                }
            }
        }
    }
    Err(match scope {
        Some(name) => format!(
            "it kept forking new processes while it was moved: some may still be outside {name} after {MAX_PASSES} passes ({} moved already)",
            moved_count(&done)
        ),
        None => format!(
            "its processes kept exiting while it was moved: no scope after {MAX_PASSES} tries"
        ),
    })
}

/// "PID N" or "N processes", of those in `done`.
fn moved_count(done: &[Pid]) -> String {
    match done {
        [one] => format!("PID {one}"),
        many => format!("{} processes", many.len()),
    }
}

/// Whether `pid` lives (a zombie does not).
fn alive(pid: Pid) -> bool {
    Stat::read(pid).is_ok_and(|s| !s.state.has_exited())
}

/// The live processes of the job that are not in scope `name`: the group's (when
/// `pgrp`) and the descendants of `done`.
fn stragglers(snap: &Snapshot, done: &[Pid], pgrp: Option<Pid>, name: &str) -> Vec<Pid> {
    let mut family: Vec<Pid> = done.to_vec();
    if let Some(g) = pgrp {
        family.extend(snap.procs.iter().filter(|q| q.pgrp == g).map(|q| q.pid));
    }
    let mut i = 0;
    while i < family.len() {
        let parent = family[i];
        for q in snap.procs.iter().filter(|q| q.ppid == parent) {
            if !family.contains(&q.pid) {
                family.push(q.pid);
            }
        }
        i += 1;
    }
    family
        .into_iter()
        .filter(|&pid| {
            let live = snap.get(pid).is_some_and(|q| !q.state.has_exited());
            let cg = u32::try_from(pid.as_raw()).ok().and_then(scope::cgroup_of);
            live && cg.is_some_and(|cg| !scope::in_unit(&cg, name))
        })
        .collect()
}

fn raw(pids: &[Pid]) -> Vec<u32> {
    pids.iter()
        .filter_map(|p| u32::try_from(p.as_raw()).ok())
        .collect()
}

/// The name the scope is called after: the command's (argv\[0\]), else comm.
fn hint(p: &Stat) -> OsString {
    std::fs::read(format!("/proc/{}/cmdline", p.pid))
        .ok()
        .and_then(|raw| {
            raw.split(|&b| b == 0)
                .next()
                .filter(|a| !a.is_empty())
                .map(|a| OsStr::from_bytes(a).to_os_string())
        })
        .unwrap_or_else(|| OsStr::from_bytes(p.comm.as_bytes()).to_os_string())
}

/// The scope job `p` was moved to, if any.
pub fn of<'m>(moved: &'m [Moved], p: &Stat) -> Option<&'m str> {
    moved
        .iter()
        .find(|m| m.pids.contains(&p.pid))
        .map(|m| m.scope.as_str())
}
