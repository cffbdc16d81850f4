//! The real systemd + logind + sshd container (`cargo xtask container up`), as
//! the tests see it: logins over real ssh that are real logind sessions, root's
//! commands, processes inside named by PID and start time, and a lock that
//! serialises the tests that change or depend on logind's settings.
//!
//! Paths, ssh options and the settings themselves come from
//! `xtask::container`, so the tests and `cargo xtask container` agree.
//!
//! Without the container a test prints one line, `skipped: TEST: no systemd
//! container (cargo xtask container up)`, straight to the standard error (the
//! test harness would hide it in its captured output) and returns. With
//! `HUPKIT_CONTAINER_REQUIRED=1` (as `.ci/run` sets) a missing container fails
//! the test instead: in CI these tests run for real, never skip.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::process::{ChildStdin, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use nix::fcntl::{Flock, FlockArg};
use xtask::container as ct;

use super::{ChildGuard, DEADLINE, poll_until, spawn};

/// The time limit of one ssh call from a test, in seconds.
const SSH_SECS: u32 = 60;

/// Why the container is not usable, found once per test run.
fn absent() -> Option<&'static str> {
    static PROBE: OnceLock<Option<String>> = OnceLock::new();
    PROBE
        .get_or_init(|| {
            if ct::running().is_none() {
                Some("no systemd container".into())
            } else if !ct::answers() {
                Some("no systemd container (its sshd does not answer)".into())
            } else {
                None
            }
        })
        .as_deref()
}

/// The running container.
pub struct Container {
    /// The cgroup layout inside it.
    pub layout: ct::Layout,
}

/// The container, or `None` after printing the skip line for `test` (a panic
/// instead when `HUPKIT_CONTAINER_REQUIRED=1`).
pub fn get(test: &str) -> Option<Container> {
    match absent() {
        None => Some(Container {
            layout: ct::running()
                .expect("the container stopped during the tests")
                .layout,
        }),
        Some(why) => {
            assert!(
                std::env::var_os("HUPKIT_CONTAINER_REQUIRED").is_none_or(|v| v != "1"),
                "{test}: {why}, and HUPKIT_CONTAINER_REQUIRED=1 (cargo xtask container up)"
            );
            let _ = writeln!(
                std::io::stderr(),
                "skipped: {test}: {why} (cargo xtask container up)"
            );
            None
        }
    }
}

/// A process in the container: PID and start time (field 22 of its stat).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Proc {
    /// Its PID in the container's PID namespace.
    pub pid: u32,
    /// Its start time, in clock ticks after boot.
    pub start: u64,
}

/// A shell snippet that prints `STATE START` of PID `$p` (nothing if it is gone).
const STAT_OF_P: &str = "sed 's/.*) //' /proc/$p/stat 2>/dev/null | cut -d' ' -f1,20";

// The methods take `&self` though most do not read it: a `Container` is the
// proof that the container is up, so only a test that got one can call them.
#[allow(clippy::unused_self)]
impl Container {
    /// Runs `script` as root (ssh, no terminal) and returns its standard output;
    /// panics with its standard error if it fails.
    pub fn root(&self, script: &str) -> String {
        ct::root_ok(script).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Copies this build's `names` (tools of the suite) into the container's
    /// root filesystem, once per test run, and returns the directory inside
    /// the container that holds them: `/opt/hupkit-tests/KEY/bin`, KEY
    /// naming this build's target directory, so that work trees sharing the
    /// container never run each other's binaries. Each file is written beside
    /// its place and renamed over it (a running copy keeps its own file).
    /// The helpers, `hupkit-dbus` (D-Bus) and `hupkit-rnohup` (rnohup's full
    /// implementation), always go with them, into the same directory, where
    /// the tools find them.
    pub fn install(&self, names: &[&str]) -> String {
        static DONE: Mutex<Vec<String>> = Mutex::new(Vec::new());
        let host = super::bin(names.first().copied().unwrap_or("detach"));
        let key: String = host
            .parent()
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        let inside = format!("/opt/hupkit-tests/{key}/bin");
        let mut done = DONE.lock().expect("install lock");
        let dir = ct::rootfs().join(inside.trim_start_matches('/'));
        std::fs::create_dir_all(&dir).expect("create the install directory");
        // The helpers the tools find beside themselves: the D-Bus helper and
        // rnohup's full implementation.
        for name in names.iter().chain(&["hupkit-dbus", "hupkit-rnohup"]) {
            if done.iter().any(|d| d == name) {
                continue;
            }
            let tmp = dir.join(format!(".{name}.{}", std::process::id()));
            std::fs::copy(super::bin(name), &tmp).expect("copy a binary into the container");
            std::fs::rename(&tmp, dir.join(name)).expect("install a binary into the container");
            done.push((*name).to_owned());
        }
        inside
    }

    /// Takes the lock that serialises the tests that change or depend on
    /// logind's settings; held until the guard is dropped.
    pub fn lock_settings(&self) -> Flock<File> {
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(ct::settings_lock())
            .expect("open the settings lock");
        Flock::lock(file, FlockArg::LockExclusive)
            .map_err(|(_, e)| e)
            .expect("flock the settings lock")
    }

    /// Sets `KillUserProcesses` and waits until login1 reports it. Hold
    /// [`Container::lock_settings`].
    pub fn set_kill_user_processes(&self, kill: bool) {
        ct::set_kill_user_processes(kill).unwrap_or_else(|e| panic!("{e}"));
    }

    /// Removes the drop-in that sets `KillUserProcesses` and restarts logind:
    /// no file sets it. Returns the compiled-in default, as login1 reports
    /// it. Hold [`Container::lock_settings`], and put the drop-in back with
    /// [`Container::set_kill_user_processes`].
    pub fn unset_kill_user_processes(&self) -> bool {
        ct::unset_kill_user_processes().unwrap_or_else(|e| panic!("{e}"))
    }

    /// `KillUserProcesses` as login1 reports it now.
    pub fn kill_user_processes(&self) -> bool {
        ct::kill_user_processes().unwrap_or_else(|e| panic!("{e}"))
    }

    /// Turns lingering of alice on or off. Hold [`Container::lock_settings`].
    pub fn set_linger(&self, on: bool) {
        ct::set_linger(on).unwrap_or_else(|e| panic!("{e}"));
    }

    /// The process `pid` now, if it lives (a zombie does not).
    pub fn process(&self, pid: u32) -> Option<Proc> {
        let out = self.root(&format!("p={pid}; {STAT_OF_P}"));
        let mut words = out.split_whitespace();
        let state = words.next()?;
        let start = words.next()?.parse().ok()?;
        (state != "Z").then_some(Proc { pid, start })
    }

    /// Whether `p` is still the same, live process.
    pub fn alive(&self, p: Proc) -> bool {
        self.process(p.pid) == Some(p)
    }

    /// `p`'s cgroup path (the `0::` line of /proc/PID/cgroup on cgroup2, the
    /// `name=systemd` line's path on the hybrid layout).
    pub fn cgroup(&self, p: Proc) -> String {
        let out = self.root(&format!("cat /proc/{}/cgroup", p.pid));
        let line = |prefix: &str| {
            out.lines()
                .find_map(|l| l.strip_prefix(prefix))
                .map(str::to_owned)
        };
        match self.layout {
            ct::Layout::Unified => line("0::"),
            ct::Layout::Hybrid => out
                .lines()
                .find_map(|l| l.split_once(":name=systemd:").map(|(_, p)| p.to_owned()))
                .or_else(|| line("0::")),
        }
        .unwrap_or_else(|| panic!("no cgroup for PID {}: {out}", p.pid))
    }

    /// SIGKILL to `p` if it is still the same process (start time checked in
    /// the same root shell, just before the kill).
    pub fn kill(&self, p: Proc) {
        let _ = ct::root_run(&format!(
            "p={}; [ \"$({STAT_OF_P} | cut -d' ' -f2)\" = {} ] && kill -KILL $p",
            p.pid, p.start
        ));
    }

    /// Copies this build's binary `name` into the container's root filesystem
    /// (nspawn's /tmp is a tmpfs the host does not see), in a directory of this
    /// test process's own, so that tests of other builds running at the same
    /// time do not replace it; returns its path inside the container. The
    /// directory is removed when the guard is dropped.
    pub fn install_one(&self, name: &str) -> Installed {
        let inside = format!("/usr/local/lib/hupkit-tests/{}", std::process::id());
        let dir = ct::rootfs().join(inside.trim_start_matches('/'));
        std::fs::create_dir_all(&dir).expect("make the install directory in the container");
        let tmp = dir.join(format!(".{name}.tmp"));
        std::fs::copy(super::bin(name), &tmp).expect("copy the binary into the container");
        std::fs::rename(&tmp, dir.join(name)).expect("rename the binary in the container");
        Installed {
            dir,
            path: format!("{inside}/{name}"),
        }
    }

    /// Logs in as `user` over real ssh with a terminal on the far side
    /// (`ssh -tt`, PAM), as a person does; checks that the login shell is in a
    /// logind session scope.
    pub fn login(&self, user: &str) -> Login<'_> {
        let mut cmd = ct::ssh(user, SSH_SECS * 5, true);
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        let mut child = spawn(&mut cmd);
        let stdin = child.stdin.take().expect("ssh stdin");
        let stdout = child.stdout.take().expect("ssh stdout");
        let seen = Arc::new(Mutex::new(String::new()));
        let sink = Arc::clone(&seen);
        std::thread::spawn(move || {
            let mut r = BufReader::new(stdout);
            let mut line = Vec::new();
            while r.read_until(b'\n', &mut line).is_ok_and(|n| n > 0) {
                sink.lock()
                    .expect("output lock")
                    .push_str(&String::from_utf8_lossy(&line));
                line.clear();
            }
        });
        let mut login = Login {
            container: self,
            ssh: ChildGuard::new(child),
            stdin: Some(stdin),
            seen,
            session: String::new(),
        };
        // The marker is split in the typed line ("S""ESSION"), so that the
        // terminal's echo of the line is not taken for the answer.
        login.send(
            "echo S\"\"ESSION=$(grep -o 'session-[0-9]*\\.scope' /proc/self/cgroup | head -n1)",
        );
        let session = login.answer("SESSION=");
        assert!(
            session
                .strip_prefix("session-")
                .and_then(|s| s.strip_suffix(".scope"))
                .is_some_and(|n| !n.is_empty()),
            "the ssh login of {user} is not in a logind session scope: '{session}'"
        );
        login.session = session;
        login
    }
}

/// A login over ssh: a login shell on a terminal inside the container.
pub struct Login<'a> {
    container: &'a Container,
    ssh: ChildGuard,
    stdin: Option<ChildStdin>,
    seen: Arc<Mutex<String>>,
    /// The logind session's scope, e.g. `session-6.scope`.
    pub session: String,
}

impl Login<'_> {
    /// Types `line` and Enter.
    pub fn send(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("logged out");
        stdin
            .write_all(format!("{line}\n").as_bytes())
            .and_then(|()| stdin.flush())
            .expect("type into ssh");
    }

    /// Types `line` with its output and standard error caught, `tag` marking
    /// the answer; returns the status, the standard output (lines joined by
    /// `|`) and the standard error, trimmed.
    pub fn run(&mut self, tag: &str, line: &str) -> (String, String, String) {
        self.send(&format!(
            "d=$(mktemp -d); {line} >\"$d/o\" 2>\"$d/e\"; \
             echo {tag}\"\"RES $? OUT $(tr '\\n' '|' <\"$d/o\") ERR $(cat \"$d/e\"); rm -rf \"$d\""
        ));
        let answer = self.answer(&format!("{tag}RES"));
        let (status, rest) = answer.split_once(" OUT").unwrap_or((&answer, ""));
        let (out, err) = rest.split_once("ERR").unwrap_or((rest, ""));
        (status.trim().into(), out.trim().into(), err.trim().into())
    }

    /// Waits (deadline) for an output line containing `marker` and returns what
    /// follows the marker on that line, trimmed.
    pub fn answer(&self, marker: &str) -> String {
        let mut found = None;
        let ok = poll_until(DEADLINE, || {
            let seen = self.seen.lock().expect("output lock");
            found = seen
                .lines()
                .find_map(|l| l.split_once(marker).map(|(_, rest)| rest.trim().to_owned()));
            found.is_some()
        });
        assert!(
            ok,
            "no '{marker}' from the ssh login within {DEADLINE:?}; it printed:\n{}",
            self.seen.lock().expect("output lock")
        );
        found.expect("found")
    }

    /// The logind session's id (`6` for `session-6.scope`).
    pub fn session_id(&self) -> String {
        self.session
            .trim_start_matches("session-")
            .trim_end_matches(".scope")
            .to_owned()
    }

    /// Types `exit` and waits (deadline) for ssh to end: the logout.
    pub fn logout(mut self) {
        self.send("exit");
        drop(self.stdin.take());
        let status = self.ssh.wait(DEADLINE);
        assert!(
            status.is_some(),
            "ssh did not end within {DEADLINE:?} after exit"
        );
    }

    /// The container this login is in.
    pub fn container(&self) -> &Container {
        self.container
    }
}

/// A binary installed in the container ([`Container::install`]).
pub struct Installed {
    dir: std::path::PathBuf,
    /// Its path inside the container.
    pub path: String,
}

impl Drop for Installed {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Drop for Login<'_> {
    /// A login that a failing test leaves open: SIGTERM to `timeout`, which
    /// passes it on to ssh, and a wait. The guard's SIGKILL alone would end
    /// `timeout` only, leaving ssh, and alice's session in the container
    /// (which keeps her "last logout" from happening for the next tests).
    fn drop(&mut self) {
        drop(self.stdin.take());
        if let Some(child) = self.ssh.0.as_mut() {
            if let Ok(pid) = i32::try_from(child.id()) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGTERM,
                );
            }
            // No panic here (a panic while unwinding would abort the suite).
            poll_until(DEADLINE, || child.try_wait().ok().flatten().is_some());
        }
    }
}

/// Kills (SIGKILL, identity checked) the container's processes a test started,
/// when dropped.
pub struct Procs<'a> {
    container: &'a Container,
    /// The processes.
    pub list: Vec<Proc>,
}

impl<'a> Procs<'a> {
    /// Guards no process yet.
    pub fn new(container: &'a Container) -> Self {
        Procs {
            container,
            list: Vec::new(),
        }
    }
}

impl Drop for Procs<'_> {
    fn drop(&mut self) {
        for p in &self.list {
            self.container.kill(*p);
        }
    }
}

/// Waits up to `limit` for `cond`, polling at a pace fit for ssh round trips.
pub fn poll_slowly(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = std::time::Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if std::time::Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
