//! The logout lab's cgroups: a stand-in for a logind session scope, and one for
//! the scope a service manager makes for `detach --scope`.
//!
//! At logout with `KillUserProcesses=yes`, logind stops the session's scope
//! (`session-N.scope`), and systemd stops a scope by its cgroup: SIGTERM and
//! SIGCONT to every process in it, SIGHUP too (logind's scopes have
//! `SendSIGHUP=yes`), then, when the stop times out (90 s by default), SIGKILL
//! to what is left. Session, process group, parent and SIGHUP disposition do
//! not matter: only the cgroup does. The lab does the same to a cgroup of its
//! own, `huplab.PID/session` at the root of the cgroup2 hierarchy
//! (`/sys/fs/cgroup/unified` on the hybrid layout, `/sys/fs/cgroup` on pure
//! cgroup2), in which its shell runs from its first instruction; the scope
//! level's probe is moved into the sibling `huplab.PID/scope`, as
//! `detach --scope` moves its daemon into a scope of the service manager.
//!
//! Making cgroups needs root (or a delegated hierarchy) and a writable cgroup2:
//! where the lab cannot, [`Cgroups::make`] says why and the rows say n/a.
//! Every cgroup the lab made is emptied and removed when its [`Cgroups`] is
//! dropped; those of a lab killed with SIGKILL are removed by the next run
//! ([`remove_stale`]): only `huplab.PID` of a PID that runs no process, and
//! only once empty (the kernel refuses to remove a cgroup with processes).

use std::fs::File;
use std::io::Write as _;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use hupkit_common::proc::Stat;
use hupkit_common::quote::quote;
use nix::sys::signal::Signal;
use nix::unistd::Pid;

/// How long the lab waits after SIGTERM, SIGCONT and SIGHUP before it kills
/// what is left with SIGKILL: systemd waits `TimeoutStopSec` (90 s by default).
pub const STOP_DELAY: Duration = Duration::from_secs(2);

/// How often the lab looks again whether a cgroup is empty.
const POLL: Duration = Duration::from_millis(10);

/// How long the clean-up waits for a killed cgroup to empty before removing it.
const EMPTY_TIMEOUT: Duration = Duration::from_secs(3);

/// At most this many passes of list-and-signal (systemd's `cg_kill` loops the
/// same way until a pass finds nobody new: a process may fork meanwhile).
const PASSES: usize = 20;

/// The two cgroups of one lab, under `huplab.PID`.
#[derive(Debug)]
pub struct Cgroups {
    top: PathBuf,
}

impl Cgroups {
    /// Makes `huplab.PID/session` and `huplab.PID/scope` at the root of the
    /// cgroup2 hierarchy, after removing the stale ones of killed labs; `Err`
    /// says, in words for the table, why the lab cannot.
    pub fn make() -> Result<Cgroups, String> {
        let Some(root) = hierarchy() else {
            return Err("no cgroup2 hierarchy is mounted".into());
        };
        remove_stale(&root);
        let top = root.join(format!("huplab.{}", std::process::id()));
        let made = std::fs::create_dir(&top).map(|()| Cgroups { top });
        let cgroups = made.map_err(|e| cannot(&root, &e))?;
        for sub in ["session", "scope"] {
            let path = cgroups.top.join(sub);
            std::fs::create_dir(&path).map_err(|e| cannot(&path, &e))?;
        }
        Ok(cgroups)
    }

    /// The lab's session scope.
    #[must_use]
    pub fn session(&self) -> PathBuf {
        self.top.join("session")
    }

    /// The lab's stand-in for the scope `detach --scope` makes.
    #[must_use]
    pub fn scope(&self) -> PathBuf {
        self.top.join("scope")
    }

    /// Makes `cmd`'s process enter the session cgroup before it execs, so
    /// that nothing it starts runs elsewhere.
    pub fn enter_on_exec(&self, cmd: &mut Command) -> std::io::Result<()> {
        let procs: OwnedFd = std::fs::OpenOptions::new()
            .write(true)
            .open(self.session().join("cgroup.procs"))?
            .into();
        // SAFETY: the closure only calls write(2), async-signal-safe, on a
        // descriptor opened (close-on-exec) before the fork, with a static
        // buffer: no allocation, no lock.
        unsafe {
            cmd.pre_exec(move || {
                // "0" moves the writing process itself.
                if nix::libc::write(procs.as_raw_fd(), b"0".as_ptr().cast(), 1) == 1 {
                    Ok(())
                } else {
                    Err(std::io::Error::last_os_error())
                }
            });
        }
        Ok(())
    }

    /// What stopping the session's scope does: SIGTERM and SIGCONT to every
    /// process in it, then SIGHUP, then after [`STOP_DELAY`] SIGKILL to what
    /// is left. Returns when the cgroup is empty, or `keep_going` says stop.
    pub fn stop_session(&self, mut keep_going: impl FnMut() -> bool) {
        let session = self.session();
        signal_all(&session, &[Signal::SIGTERM, Signal::SIGCONT]);
        signal_all(&session, &[Signal::SIGHUP]);
        let end = Instant::now() + STOP_DELAY;
        while populated(&session) && Instant::now() < end && keep_going() {
            std::thread::sleep(POLL);
        }
        if populated(&session) {
            kill_all(&session);
        }
    }
}

impl Drop for Cgroups {
    fn drop(&mut self) {
        let subs = [self.session(), self.scope()];
        for sub in &subs {
            kill_all(sub);
        }
        let end = Instant::now() + EMPTY_TIMEOUT;
        for sub in &subs {
            while populated(sub) && Instant::now() < end {
                std::thread::sleep(POLL);
            }
            let _ = std::fs::remove_dir(sub);
        }
        let _ = std::fs::remove_dir(&self.top);
    }
}

/// The table's words for a cgroup that cannot be made.
fn cannot(path: &Path, e: &std::io::Error) -> String {
    let errno = nix::errno::Errno::from_raw(e.raw_os_error().unwrap_or(0));
    let text = hupkit_common::diag::strerror(errno);
    format!(
        "cannot make a cgroup in {}: {text}",
        quote(path.as_os_str())
    )
}

/// Where the cgroup2 hierarchy is mounted, from `/proc/self/mountinfo`.
fn hierarchy() -> Option<PathBuf> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    text.lines().find_map(|line| {
        let (mount, fs) = line.split_once(" - ")?;
        if fs.split(' ').next() != Some("cgroup2") {
            return None;
        }
        // Field 5 is the mount point, with spaces and the like as \ooo.
        mount.split(' ').nth(4).map(|p| PathBuf::from(unescape(p)))
    })
}

/// Undoes mountinfo's octal escapes (`\040` for a space).
fn unescape(field: &str) -> String {
    let mut out = String::with_capacity(field.len());
    let mut rest = field;
    while let Some(i) = rest.find('\\') {
        out.push_str(&rest[..i]);
        let code = rest
            .get(i + 1..i + 4)
            .and_then(|o| u8::from_str_radix(o, 8).ok());
        if let Some(byte) = code {
            out.push(char::from(byte));
            rest = &rest[i + 4..];
        } else {
            out.push('\\');
            rest = &rest[i + 1..];
        }
    }
    out.push_str(rest);
    out
}

/// The processes in a cgroup now.
fn procs(cgroup: &Path) -> Vec<Pid> {
    std::fs::read_to_string(cgroup.join("cgroup.procs"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .map(Pid::from_raw)
        .collect()
}

/// Whether any process is in the cgroup (or below it).
fn populated(cgroup: &Path) -> bool {
    std::fs::read_to_string(cgroup.join("cgroup.events")).map_or(!procs(cgroup).is_empty(), |t| {
        t.lines().any(|l| l.trim() == "populated 1")
    })
}

/// Sends `signals`, in order, to each process in the cgroup, passes after pass
/// until one finds nobody new. A process cannot leave the cgroup but by ending
/// (nobody else moves it), so a PID read from it names a member or, at worst,
/// a process that ended in between.
fn signal_all(cgroup: &Path, signals: &[Signal]) {
    let mut done = Vec::new();
    for _ in 0..PASSES {
        let fresh: Vec<Pid> = procs(cgroup)
            .into_iter()
            .filter(|p| !done.contains(p))
            .collect();
        if fresh.is_empty() {
            return;
        }
        for &pid in &fresh {
            for &sig in signals {
                let _ = nix::sys::signal::kill(pid, sig);
            }
        }
        done.extend(fresh);
    }
}

/// SIGKILL to every process in the cgroup: `cgroup.kill` (Linux 5.14), which
/// leaves no window for a fork; else process by process.
fn kill_all(cgroup: &Path) {
    let killed = File::options()
        .write(true)
        .open(cgroup.join("cgroup.kill"))
        .and_then(|mut f| f.write_all(b"1"));
    if killed.is_err() {
        signal_all(cgroup, &[Signal::SIGKILL]);
    }
}

/// Removes the cgroups that labs killed with SIGKILL left under `root`:
/// `huplab.PID` whose PID runs no process, each of its children and then
/// itself, each only if empty (`rmdir` of a cgroup with processes fails).
pub fn remove_stale(root: &Path) {
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix("huplab."))
            .and_then(|pid| pid.parse::<i32>().ok())
        else {
            continue;
        };
        let dir = entry.file_type().is_ok_and(|t| t.is_dir());
        if !dir || pid <= 0 || Stat::read(Pid::from_raw(pid)).is_ok() {
            continue;
        }
        for sub in ["session", "scope"] {
            let _ = std::fs::remove_dir(entry.path().join(sub));
        }
        let _ = std::fs::remove_dir(entry.path());
    }
}

/// Removes the stale cgroups of killed labs, wherever cgroup2 is mounted
/// (every run does, whatever its event).
pub fn remove_stale_anywhere() {
    if let Some(root) = hierarchy() {
        remove_stale(&root);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn mountinfo_escapes_are_undone() {
        assert_eq!(super::unescape(r"/sys/fs/a\040b"), "/sys/fs/a b");
        assert_eq!(super::unescape(r"/x\\y"), r"/x\\y");
    }
}
