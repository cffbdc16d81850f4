//! detach's end-to-end tests: real daemons, read back from /proc.
//!
//! Every daemon a test starts is named by the pidfile detach wrote and killed
//! through a pidfd after an identity check ([`Daemon`]'s drop), never by name.
//! Daemons are reparented to PID 1, which reaps lazily here: liveness is always
//! judged by identity (start time) and state, never by the PID alone.

mod control;
mod errors;
mod hostile;
mod job;
mod notify;
mod nss;
mod print;
mod records;
mod state;
mod syslog;

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use hupkit_common::identity::{Identity, Liveness};
use hupkit_common::pidfd::PidFd;
use hupkit_common::proc::Stat;
use nix::sys::signal::Signal;
use nix::unistd::Pid;

use crate::util;
pub use crate::util::{open_tempdir, root_tempdir};

/// Runs detach in `dir` with `args`, a clean environment, stdio captured.
pub fn detach(dir: &Path, args: &[&str]) -> Output {
    detach_cmd(dir, args).output().expect("run detach")
}

/// The detach command, ready to run in `dir`.
pub fn detach_cmd(dir: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(util::bin("detach"));
    cmd.args(args)
        .current_dir(dir)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("LC_ALL", "C")
        .env("HOME", dir)
        .stdin(Stdio::null());
    cmd
}

/// Exit code and stderr, for exact assertions.
pub fn result(out: &Output) -> (i32, String) {
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A daemon started by a test, killed (if still the same process) when dropped.
pub struct Daemon {
    pub id: Identity,
}

impl Daemon {
    /// The daemon named by `pidfile` (and its identity record).
    pub fn from_pidfile(pidfile: &Path) -> Daemon {
        let text = std::fs::read_to_string(pidfile).expect("pidfile");
        let pid: i32 = text.trim().parse().expect("pid in pidfile");
        let mut id_path = pidfile.as_os_str().to_os_string();
        id_path.push(".id");
        let id = Identity::parse(
            &std::fs::read_to_string(PathBuf::from(id_path)).expect("identity record"),
        )
        .expect("identity");
        assert_eq!(id.pid.as_raw(), pid);
        Daemon { id }
    }

    pub fn pid(&self) -> Pid {
        self.id.pid
    }

    pub fn alive(&self) -> bool {
        self.id.liveness() == Liveness::Alive
    }

    /// Waits until the daemon is gone (or a zombie); false at the deadline.
    pub fn wait_gone(&self, deadline: Duration) -> bool {
        util::poll_until(deadline, || !self.alive())
    }

    /// Sends `sig` through a pidfd, after checking identity.
    pub fn signal(&self, sig: Signal) {
        if let Ok(fd) = PidFd::open(self.id.pid) {
            if self.alive() {
                let _ = fd.signal(sig);
            }
        }
    }

    /// `/proc/PID/status` field.
    pub fn status_field(&self, key: &str) -> String {
        let text = std::fs::read_to_string(format!("/proc/{}/status", self.id.pid)).unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{key}:")))
            .unwrap_or("")
            .trim()
            .to_string()
    }

    pub fn stat(&self) -> Stat {
        Stat::read(self.id.pid).unwrap()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.signal(Signal::SIGKILL);
        self.wait_gone(util::DEADLINE);
    }
}

/// Waits, to the deadline, until the file at `path` holds exactly `text` (a
/// daemon writes it after detach has returned); whether it did.
pub fn file_becomes(path: &Path, text: &str) -> bool {
    util::poll_until(util::DEADLINE, || {
        std::fs::read_to_string(path).is_ok_and(|t| t == text)
    })
}

/// `dir/shared`, sticky and world-writable as /tmp is: where another user
/// could have planted files.
pub fn shared_dir(dir: &Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let shared = dir.join("shared");
    std::fs::create_dir(&shared).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o1777)).unwrap();
    shared
}

/// Runs `program args` as user nobody, in `dir`.
pub fn as_nobody(dir: &Path, program: &Path, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .current_dir(dir)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("LC_ALL", "C")
        .uid(65534)
        .gid(65534)
        .stdin(Stdio::null())
        .output()
        .expect("run as nobody")
}

/// A copy of the detach binary that nobody can run.
pub fn detach_for_nobody(dir: &Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let copy = dir.join("detach");
    if std::fs::hard_link(util::bin("detach"), &copy).is_err() {
        std::fs::copy(util::bin("detach"), &copy).unwrap();
    }
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755)).unwrap();
    copy
}

pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}
