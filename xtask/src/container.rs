//! `cargo xtask container`: a real systemd + logind + sshd, booted in a
//! container, for the tests of the logout level (and of installing and daemon
//! conventions, which need a real service manager too).
//!
//! The facts behind each step are in the research note on logind
//! (`../shared/research/logind.md`); the decisions:
//!
//! - **The root filesystem** is a `debootstrap --variant=minbase` of Debian
//!   bookworm, cached under the target directory (`target/container/rootfs`) and
//!   reused when complete: a marker file, written last, names the suite and
//!   package list it was made with, so a changed list builds a new one. The
//!   mirror is read from apt's own sources at run time, never written here. The
//!   download is retried (with the packages already fetched kept in a cache), and
//!   every step has a time limit.
//! - **Configuration** is written into the root filesystem from the host before
//!   each boot, idempotently: the user `alice` (uid 1000), an ssh key that this
//!   task generates in the cache directory, an sshd drop-in (port 2223 on
//!   127.0.0.1 only, `UsePAM yes` so that `pam_systemd` gives every login a real
//!   logind session; root may log in with the key), a `known_hosts` file made
//!   from the container's own host key (no "accept any host key"), and a logind
//!   drop-in with `KillUserProcesses`.
//! - **Boot**: `systemd-nspawn -b --register=no --keep-unit`, since this
//!   machine's PID 1 is not systemd and cannot give nspawn a scope. nspawn is
//!   started in a session of its own and, before it execs, moves itself into
//!   cgroups that this task creates (`hupkit-container` under each cgroup
//!   hierarchy the container's systemd uses), so the container does not sit in
//!   a cgroup root. Its PID and start time go to a state file. `down` asks
//!   for a poweroff over ssh; if nspawn has not exited 20 s later, it kills
//!   what is in those cgroups (`cgroup.kill`): killing nspawn alone would leave
//!   the container's init running, reparented. Never a process picked by name.
//! - **Layouts**: `--unified` sets `SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1`;
//!   `--hybrid` leaves it unset, so that nspawn picks the hybrid layout of a
//!   hybrid host (`=0` gives the legacy, v1-only layout: "System is tainted:
//!   cgroupsv1", and its poweroff was seen to hang on stopping the user
//!   managers). `up` checks the layout the container got.
//! - **Ready** means: sshd answers as root and `systemctl is-system-running`
//!   says `running` or `degraded`, within a deadline.
//! - **Settings** are changed on the running container over ssh as root:
//!   `KillUserProcesses` by rewriting the drop-in and restarting logind, then
//!   reading the property back from login1 until it agrees; linger with
//!   `loginctl enable-linger/disable-linger alice`.
//!
//! The same functions serve the test suite (`tests/util/container.rs`), so the
//! tests and this task agree on every path and ssh option.

use std::ffi::CString;
use std::fmt::Write as _;
use std::fs;
use std::io::Write as _;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{PermissionsExt, chown};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use nix::fcntl::OFlag;
use nix::sys::signal::{Signal, kill};
use nix::sys::stat::Mode;
use nix::unistd::Pid;

/// The Debian suite of the root filesystem.
pub const SUITE: &str = "bookworm";

/// The packages of the root filesystem, beyond debootstrap's minbase.
///
/// The research note's set (systemd as init, dbus with the user bus, logind's
/// PAM module, sshd, ps, sudo, python3 for small helpers, `ip`), plus what later
/// tests will want and costs little: man-db (`man -w` on installed pages),
/// bash-completion and zsh (installed completions).
pub const PACKAGES: &[&str] = &[
    "systemd",
    "systemd-sysv",
    "dbus",
    "dbus-user-session",
    "libpam-systemd",
    "openssh-server",
    "procps",
    "bash",
    "sudo",
    "python3",
    "iproute2",
    "man-db",
    "bash-completion",
    "zsh",
];

/// The ssh port of the container's sshd, on 127.0.0.1 only (the container
/// shares the host's network).
pub const PORT: u16 = 2223;

/// The unprivileged user of the container.
pub const USER: &str = "alice";

/// `alice`'s uid (and gid).
pub const UID: u32 = 1000;

/// The name of the cgroups this task makes for the container.
const CGROUP_NAME: &str = "hupkit-container";

/// The machine name (and host name) of the container.
const MACHINE: &str = "hupkit";

/// How many times the root filesystem's download is tried.
const DEBOOTSTRAP_TRIES: u32 = 3;

/// The time limit of one debootstrap run, in seconds.
const DEBOOTSTRAP_SECS: u32 = 1200;

/// How long the container may take to boot until it is ready.
const BOOT_DEADLINE: Duration = Duration::from_secs(180);

/// The time limit of one ssh call made by this task, in seconds.
pub const SSH_SECS: u32 = 60;

/// The cgroup layout inside the container.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// Pure cgroup2 (`SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1`), as on modern
    /// distributions.
    Unified,
    /// cgroup v1 with the `name=systemd` hierarchy and a cgroup2 beside it.
    Hybrid,
}

impl Layout {
    /// The word used on the command line and in the state file.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Layout::Unified => "unified",
            Layout::Hybrid => "hybrid",
        }
    }

    fn parse(word: &str) -> Option<Layout> {
        match word {
            "unified" => Some(Layout::Unified),
            "hybrid" => Some(Layout::Hybrid),
            _ => None,
        }
    }
}

/// The cache directory: `$HUPKIT_CONTAINER_DIR`, else `container/` in the
/// target directory.
#[must_use]
pub fn dir() -> PathBuf {
    if let Some(d) = std::env::var_os("HUPKIT_CONTAINER_DIR") {
        return PathBuf::from(d);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| crate::workspace_root().join("target"), PathBuf::from);
    target.join("container")
}

/// The root filesystem.
#[must_use]
pub fn rootfs() -> PathBuf {
    dir().join("rootfs")
}

/// Whether the cached root filesystem is complete (its marker names this
/// suite and package list): what `cargo xtask deb-check` mounts.
#[must_use]
pub fn rootfs_ready() -> bool {
    fs::read_to_string(marker()).ok().as_deref() == Some(marker_text().as_str())
        && rootfs().join("usr/lib/os-release").exists()
}

fn marker() -> PathBuf {
    dir().join("rootfs.complete")
}

fn marker_text() -> String {
    format!("{SUITE} {}\n", PACKAGES.join(","))
}

/// The private ssh key that logs in as root and as `alice`.
#[must_use]
pub fn key() -> PathBuf {
    dir().join("id_ed25519")
}

fn known_hosts() -> PathBuf {
    dir().join("known_hosts")
}

fn state_file() -> PathBuf {
    dir().join("state")
}

/// The file the container's console is written to.
#[must_use]
pub fn console_log() -> PathBuf {
    dir().join("console.log")
}

/// The lock file that serialises the tests that change or depend on logind's
/// settings (taken with `flock`).
#[must_use]
pub fn settings_lock() -> PathBuf {
    dir().join("settings.lock")
}

/// What `up` recorded about the running container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct State {
    /// The PID of systemd-nspawn.
    pub pid: i32,
    /// Its start time (field 22 of /proc/PID/stat), to recognise it.
    pub start: u64,
    /// The cgroup layout inside.
    pub layout: Layout,
    /// The cgroups made for it.
    pub cgroups: Vec<PathBuf>,
}

fn read_state() -> Option<State> {
    let text = fs::read_to_string(state_file()).ok()?;
    let mut pid = None;
    let mut start = None;
    let mut layout = None;
    let mut cgroups = Vec::new();
    for line in text.lines() {
        match line.split_once('=') {
            Some(("pid", v)) => pid = v.parse().ok(),
            Some(("start", v)) => start = v.parse().ok(),
            Some(("layout", v)) => layout = Layout::parse(v),
            Some(("cgroup", v)) => cgroups.push(PathBuf::from(v)),
            _ => {}
        }
    }
    Some(State {
        pid: pid?,
        start: start?,
        layout: layout?,
        cgroups,
    })
}

fn write_state(state: &State) -> Result<(), String> {
    let mut text = format!(
        "pid={}\nstart={}\nlayout={}\n",
        state.pid,
        state.start,
        state.layout.name()
    );
    for c in &state.cgroups {
        let _ = writeln!(text, "cgroup={}", c.display());
    }
    let tmp = dir().join("state.tmp");
    fs::write(&tmp, text).map_err(|e| format!("cannot write '{}': {e}", tmp.display()))?;
    fs::rename(&tmp, state_file())
        .map_err(|e| format!("cannot write '{}': {e}", state_file().display()))
}

/// The start time of process `pid` (field 22 of /proc/PID/stat), or `None` if
/// there is no such process or it is a zombie.
fn start_time(pid: i32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    if fields.first() == Some(&"Z") {
        return None;
    }
    // Field 22 of the whole line is field 20 after "pid (comm) ".
    fields.get(19)?.parse().ok()
}

/// The recorded container, if its nspawn process is still the one recorded.
#[must_use]
pub fn running() -> Option<State> {
    let state = read_state()?;
    (start_time(state.pid) == Some(state.start)).then_some(state)
}

/// An ssh command line to the container as `user`, limited to `secs` seconds
/// (by coreutils' `timeout`, which kills ssh if the connection hangs; 0: no
/// limit, a person's login), with `-tt` when `tty` (a terminal on the far
/// side, as a person's login has). Every option is explicit: no user
/// configuration, no password prompt, the container's own host key only.
///
/// Without a limit, `timeout` runs with `--foreground`: otherwise it puts ssh
/// in a process group of its own, in the background of the person's
/// terminal, where ssh's first read of that terminal stops it (SIGTTIN) and
/// the login hangs before its first prompt.
#[must_use]
pub fn ssh(user: &str, secs: u32, tty: bool) -> Command {
    let mut cmd = Command::new("timeout");
    if secs == 0 {
        cmd.arg("--foreground");
    }
    cmd.arg("--kill-after=5").arg(secs.to_string()).arg("ssh");
    if tty {
        cmd.arg("-tt");
    } else {
        cmd.arg("-T");
    }
    cmd.arg("-F")
        .arg("/dev/null")
        .arg("-i")
        .arg(key())
        .args(["-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes"])
        .arg("-o")
        .arg(format!("UserKnownHostsFile={}", known_hosts().display()))
        .args([
            "-o",
            "GlobalKnownHostsFile=/dev/null",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "ConnectTimeout=5",
            "-o",
            "LogLevel=ERROR",
            "-p",
        ])
        .arg(PORT.to_string())
        .arg(format!("{user}@127.0.0.1"));
    cmd
}

/// Runs `script` as root in the container (ssh, no terminal, time-limited).
pub fn root_run(script: &str) -> Result<Output, String> {
    ssh("root", SSH_SECS, false)
        .arg(script)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run ssh: {e}"))
}

/// Runs `script` as root in the container; its standard output, or an error
/// that quotes its standard error, if it failed.
pub fn root_ok(script: &str) -> Result<String, String> {
    let out = root_run(script)?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        let err = String::from_utf8_lossy(&out.stderr);
        Err(format!(
            "'{script}' in the container failed ({}): {}",
            out.status,
            err.trim()
        ))
    }
}

/// Whether the container's sshd lets root in now.
#[must_use]
pub fn answers() -> bool {
    key().exists()
        && ssh("root", 15, false)
            .arg("true")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
}

/// The drop-in that sets `KillUserProcesses`.
const KILL_DROPIN: &str = "etc/systemd/logind.conf.d/10-hupkit-kill.conf";

fn kill_dropin_text(kill: bool) -> String {
    format!(
        "# Written by cargo xtask container.\n[Login]\nKillUserProcesses={}\n",
        if kill { "yes" } else { "no" }
    )
}

/// Sets logind's `KillUserProcesses` in the running container, and returns once
/// login1 reports the new value.
pub fn set_kill_user_processes(kill: bool) -> Result<(), String> {
    let word = if kill { "yes" } else { "no" };
    let want = if kill { "b true" } else { "b false" };
    let get = "busctl get-property org.freedesktop.login1 /org/freedesktop/login1 \
               org.freedesktop.login1.Manager KillUserProcesses";
    // The drop-in too: without it, logind's compiled-in default may agree
    // ([`unset_kill_user_processes`]), and a file must say it.
    if root_ok(get)?.trim() == want && rootfs().join(KILL_DROPIN).exists() {
        return Ok(());
    }
    let script = format!(
        "mkdir -p /etc/systemd/logind.conf.d && printf '%s' '{}' > /{KILL_DROPIN} && \
         systemctl restart systemd-logind",
        kill_dropin_text(kill)
    );
    root_ok(&script)?;
    let end = Instant::now() + Duration::from_secs(30);
    loop {
        if root_ok(get).is_ok_and(|v| v.trim() == want) {
            return Ok(());
        }
        if Instant::now() > end {
            return Err(format!(
                "logind did not take KillUserProcesses={word} within 30 s"
            ));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Removes the drop-in that sets `KillUserProcesses`, so that no file sets it,
/// restarts logind, and returns the value login1 then reports: the
/// compiled-in default. [`set_kill_user_processes`] puts the drop-in back.
pub fn unset_kill_user_processes() -> Result<bool, String> {
    root_ok(&format!(
        "rm -f /{KILL_DROPIN} && systemctl restart systemd-logind"
    ))?;
    // `systemctl restart` waits for logind's bus name (Type=dbus): it
    // answers now; polled anyway, with a deadline.
    let end = Instant::now() + Duration::from_secs(30);
    loop {
        match kill_user_processes() {
            Ok(v) => return Ok(v),
            Err(e) if Instant::now() > end => {
                return Err(format!("logind did not answer within 30 s: {e}"));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

/// Turns lingering of `alice` on or off in the running container, and checks
/// that login1 agrees.
pub fn set_linger(on: bool) -> Result<(), String> {
    let verb = if on {
        "enable-linger"
    } else {
        "disable-linger"
    };
    root_ok(&format!("loginctl {verb} {USER}"))?;
    if lingers()? == on {
        Ok(())
    } else {
        Err(format!("loginctl {verb} {USER} had no effect"))
    }
}

/// Whether `alice` lingers (the file logind keeps for it).
pub fn lingers() -> Result<bool, String> {
    let out = root_ok(&format!(
        "test -e /var/lib/systemd/linger/{USER} && echo yes || echo no"
    ))?;
    Ok(out.trim() == "yes")
}

/// `KillUserProcesses` as login1 reports it.
pub fn kill_user_processes() -> Result<bool, String> {
    let out = root_ok(
        "busctl get-property org.freedesktop.login1 /org/freedesktop/login1 \
         org.freedesktop.login1.Manager KillUserProcesses",
    )?;
    Ok(out.trim() == "b true")
}

/// Runs `cmd` with a limit of `secs` seconds (coreutils' `timeout`), its output
/// going to ours; an error naming `what` if it fails.
fn run_limited(what: &str, secs: u32, cmd: &mut Command) -> Result<(), String> {
    let program = cmd.get_program().to_owned();
    let args: Vec<_> = cmd.get_args().map(ToOwned::to_owned).collect();
    let mut limited = Command::new("timeout");
    limited
        .arg("--kill-after=10")
        .arg(secs.to_string())
        .arg(program)
        .args(args);
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => limited.env(k, v),
            None => limited.env_remove(k),
        };
    }
    let status = limited
        .status()
        .map_err(|e| format!("cannot run {what}: {e}"))?;
    match status.code() {
        Some(0) => Ok(()),
        Some(124) => Err(format!("{what} did not finish within {secs} s")),
        _ => Err(format!("{what} failed ({status})")),
    }
}

/// The Debian mirror of this machine's apt sources: the first URI that serves
/// the suite (deb822 `.sources` files first, then the one-line format).
fn mirror() -> Result<String, String> {
    let mut uris = Vec::new();
    if let Ok(entries) = fs::read_dir("/etc/apt/sources.list.d") {
        let mut paths: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
        paths.sort();
        for p in paths {
            let Ok(text) = fs::read_to_string(&p) else {
                continue;
            };
            if p.extension().is_some_and(|e| e == "sources") {
                for stanza in text.split("\n\n") {
                    let field = |name: &str| {
                        stanza.lines().find_map(|l| {
                            l.strip_prefix(name)
                                .and_then(|r| r.strip_prefix(':'))
                                .map(str::trim)
                        })
                    };
                    let suites = field("Suites").unwrap_or("");
                    let types = field("Types").unwrap_or("");
                    if !types.split_whitespace().any(|t| t == "deb")
                        || !suites.split_whitespace().any(|s| s == SUITE)
                    {
                        continue;
                    }
                    if let Some(u) = field("URIs") {
                        uris.extend(u.split_whitespace().map(str::to_owned));
                    }
                }
            } else if p.extension().is_some_and(|e| e == "list") {
                uris.extend(one_line_uris(&text));
            }
        }
    }
    if let Ok(text) = fs::read_to_string("/etc/apt/sources.list") {
        uris.extend(one_line_uris(&text));
    }
    uris.into_iter()
        .find(|u| u.starts_with("http://") || u.starts_with("https://"))
        .ok_or_else(|| format!("no Debian mirror for {SUITE} in /etc/apt/sources.list*"))
}

fn one_line_uris(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| {
            let mut words = l
                .split_whitespace()
                .filter(|w| !w.starts_with('[') && !w.ends_with(']'));
            (words.next()? == "deb").then_some(())?;
            let uri = words.next()?;
            (words.next()? == SUITE).then(|| uri.to_owned())
        })
        .collect()
}

/// Makes the root filesystem unless a complete one is cached.
fn ensure_rootfs() -> Result<(), String> {
    if rootfs_ready() {
        return Ok(());
    }
    let mirror = mirror()?;
    let partial = dir().join("rootfs.partial");
    let debs = dir().join("debs");
    fs::create_dir_all(&debs).map_err(|e| format!("cannot create '{}': {e}", debs.display()))?;
    let _ = fs::remove_file(marker());
    let mut last = String::new();
    for attempt in 1..=DEBOOTSTRAP_TRIES {
        if attempt > 1 {
            // A mirror's hiccup: wait a little longer each time.
            std::thread::sleep(Duration::from_secs(10 * u64::from(attempt - 1)));
        }
        remove_tree(&partial)?;
        eprintln!(
            "xtask container: debootstrap {SUITE} from {mirror} (attempt {attempt} of {DEBOOTSTRAP_TRIES}, about a minute)"
        );
        let mut cmd = Command::new("debootstrap");
        cmd.arg("--variant=minbase")
            .arg(format!("--include={}", PACKAGES.join(",")))
            .arg(format!("--cache-dir={}", debs.display()))
            .arg(SUITE)
            .arg(&partial)
            .arg(&mirror);
        match run_limited("debootstrap", DEBOOTSTRAP_SECS, &mut cmd) {
            Ok(()) => {
                last.clear();
                break;
            }
            Err(e) => last = e,
        }
    }
    if !last.is_empty() {
        // Kept for its debootstrap/debootstrap.log; the next `up` removes it.
        return Err(format!(
            "{last}, {DEBOOTSTRAP_TRIES} times (log: '{}')",
            partial.join("debootstrap/debootstrap.log").display()
        ));
    }
    remove_tree(&rootfs())?;
    fs::rename(&partial, rootfs())
        .map_err(|e| format!("cannot rename '{}': {e}", partial.display()))?;
    fs::write(marker(), marker_text())
        .map_err(|e| format!("cannot write '{}': {e}", marker().display()))
}

/// Removes a directory tree that this task made, if it is there. A mount left
/// inside (a crashed nspawn) is refused, not followed: `remove_dir_all` does
/// not cross into other file systems' contents by symlink, and an error is
/// reported as it is.
fn remove_tree(path: &Path) -> Result<(), String> {
    match fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(format!("cannot remove '{}': {e}", path.display())),
    }
}

fn write_file(path: &Path, text: &str, mode: u32) -> Result<(), String> {
    if let Some(d) = path.parent() {
        fs::create_dir_all(d).map_err(|e| format!("cannot create '{}': {e}", d.display()))?;
    }
    fs::write(path, text).map_err(|e| format!("cannot write '{}': {e}", path.display()))?;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .map_err(|e| format!("cannot chmod '{}': {e}", path.display()))
}

/// Writes the configuration into the root filesystem (idempotent).
fn configure(kill: bool) -> Result<(), String> {
    let root = rootfs();
    // The ssh key, made once per cache.
    if !key().exists() {
        run_limited(
            "ssh-keygen",
            60,
            Command::new("ssh-keygen")
                .args([
                    "-q",
                    "-t",
                    "ed25519",
                    "-N",
                    "",
                    "-C",
                    "hupkit-container",
                    "-f",
                ])
                .arg(key()),
        )?;
    }
    let public = fs::read_to_string(key().with_extension("pub"))
        .map_err(|e| format!("cannot read the public key: {e}"))?;
    // alice, with a password no one can type ("*"): the key is the way in.
    let passwd = fs::read_to_string(root.join("etc/passwd")).unwrap_or_default();
    if !passwd.lines().any(|l| l.starts_with(&format!("{USER}:"))) {
        run_limited(
            "useradd",
            60,
            Command::new("chroot").arg(&root).args([
                "useradd",
                "--create-home",
                "--uid",
                &UID.to_string(),
                "--user-group",
                "--shell",
                "/bin/bash",
                "--password",
                "*",
                USER,
            ]),
        )?;
    }
    let home = root.join("home").join(USER);
    for (dir, owner) in [(root.join("root/.ssh"), 0), (home.join(".ssh"), UID)] {
        write_file(&dir.join("authorized_keys"), &public, 0o600)?;
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o700))
            .map_err(|e| format!("cannot chmod '{}': {e}", dir.display()))?;
        for p in [dir.join("authorized_keys"), dir.clone()] {
            chown(&p, Some(owner), Some(owner))
                .map_err(|e| format!("cannot chown '{}': {e}", p.display()))?;
        }
    }
    write_file(
        &root.join("etc/ssh/sshd_config.d/hupkit.conf"),
        &format!(
            "# Written by cargo xtask container: the tests' way in, on loopback only.\n\
             Port {PORT}\nListenAddress 127.0.0.1\nUsePAM yes\n\
             PermitRootLogin prohibit-password\nPasswordAuthentication no\n\
             KbdInteractiveAuthentication no\n"
        ),
        0o644,
    )?;
    write_file(&root.join(KILL_DROPIN), &kill_dropin_text(kill), 0o644)?;
    // The container's own host key is the only one ssh will accept.
    let host_key = fs::read_to_string(root.join("etc/ssh/ssh_host_ed25519_key.pub"))
        .map_err(|e| format!("cannot read the container's host key: {e}"))?;
    let mut words = host_key.split_whitespace();
    let (Some(kind), Some(body)) = (words.next(), words.next()) else {
        return Err("the container's host key is malformed".into());
    };
    write_file(
        &known_hosts(),
        &format!("[127.0.0.1]:{PORT} {kind} {body}\n"),
        0o644,
    )
}

/// The cgroup hierarchies on this host that the container's systemd uses: the
/// cgroup2 and the `name=systemd` one of a hybrid host, or the one cgroup2 of a
/// unified host.
fn cgroup_parents() -> Vec<PathBuf> {
    let base = Path::new("/sys/fs/cgroup");
    if base.join("cgroup.procs").exists() {
        return vec![base.to_path_buf()];
    }
    ["unified", "systemd"]
        .iter()
        .map(|h| base.join(h))
        .filter(|p| p.join("cgroup.procs").exists())
        .collect()
}

/// Removes a cgroup and the ones the container made below it, deepest first.
fn remove_cgroup(path: &Path) -> Result<(), String> {
    let Ok(entries) = fs::read_dir(path) else {
        return Ok(());
    };
    for e in entries.flatten() {
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            remove_cgroup(&e.path())?;
        }
    }
    match fs::remove_dir(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(format!("cannot remove cgroup '{}': {e}", path.display())),
    }
}

/// Starts systemd-nspawn in the background, in a session and cgroups of its
/// own; returns its PID.
fn spawn_nspawn(layout: Layout, cgroups: &[PathBuf]) -> Result<i32, String> {
    let procs: Vec<CString> = cgroups
        .iter()
        .map(|c| CString::new(c.join("cgroup.procs").as_os_str().as_bytes()))
        .collect::<Result<_, _>>()
        .map_err(|_| "a cgroup path holds a NUL byte".to_owned())?;
    let log = fs::File::create(console_log())
        .map_err(|e| format!("cannot create '{}': {e}", console_log().display()))?;
    let log2 = log
        .try_clone()
        .map_err(|e| format!("cannot duplicate the console log: {e}"))?;
    let mut cmd = Command::new("systemd-nspawn");
    cmd.args(["--boot", "--directory"])
        .arg(rootfs())
        .args([
            "--machine",
            MACHINE,
            "--register=no",
            "--keep-unit",
            "--console=read-only",
        ])
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log2);
    // "1" asks for pure cgroup2. "0" would ask for the legacy layout (v1 only,
    // no cgroup2 at all inside), not the hybrid one: nspawn chooses hybrid by
    // itself on a hybrid host when the variable is not set. `up` checks which
    // layout the container got.
    match layout {
        Layout::Unified => cmd.env("SYSTEMD_NSPAWN_UNIFIED_HIERARCHY", "1"),
        Layout::Hybrid => cmd.env_remove("SYSTEMD_NSPAWN_UNIFIED_HIERARCHY"),
    };
    // SAFETY: between fork and exec the closure makes only async-signal-safe
    // system calls (setsid, open, write, close) on memory prepared before the
    // fork (the C strings above); it allocates nothing and takes no lock.
    unsafe {
        cmd.pre_exec(move || {
            nix::unistd::setsid()?;
            for p in &procs {
                // "0" moves the writing process, in cgroup v1 and v2 alike.
                let fd = nix::fcntl::open(
                    p.as_c_str(),
                    OFlag::O_WRONLY | OFlag::O_CLOEXEC,
                    Mode::empty(),
                )?;
                nix::unistd::write(&fd, b"0")?;
            }
            Ok(())
        });
    }
    let child = cmd
        .spawn()
        .map_err(|e| format!("cannot start systemd-nspawn: {e}"))?;
    i32::try_from(child.id()).map_err(|_| "PID out of range".to_owned())
}

/// Waits until the container booted by nspawn `pid` is ready and checks the
/// layout it got; takes it down and says why if it is not. Returns what
/// `systemctl is-system-running` said.
fn wait_ready(pid: i32, start: u64, layout: Layout) -> Result<String, String> {
    let end = Instant::now() + BOOT_DEADLINE;
    let mut said = String::new();
    loop {
        if start_time(pid) != Some(start) {
            let _ = down();
            return Err(format!(
                "systemd-nspawn exited while booting: {}",
                last_line(&console_log())
            ));
        }
        if let Ok(out) = root_run("systemctl is-system-running") {
            String::from_utf8_lossy(&out.stdout)
                .trim()
                .clone_into(&mut said);
            if said == "running" || said == "degraded" {
                break;
            }
        }
        if Instant::now() > end {
            let _ = down();
            return Err(format!(
                "the container was not ready within {} s (systemctl is-system-running: '{said}')",
                BOOT_DEADLINE.as_secs()
            ));
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    // The layout the container got, from its own /sys/fs/cgroup.
    let check = match layout {
        Layout::Unified => "test -e /sys/fs/cgroup/cgroup.controllers",
        Layout::Hybrid => {
            "test -d /sys/fs/cgroup/systemd && test -e /sys/fs/cgroup/unified/cgroup.controllers"
        }
    };
    if root_ok(check).is_err() {
        let _ = down();
        return Err(format!(
            "the container did not get the {} layout (this host's cgroups do not offer it)",
            layout.name()
        ));
    }
    Ok(said)
}

/// Brings the container up (see the module documentation), with `layout`
/// (unified when `None`). When it is up already with that layout (or any, when
/// `None`), only `KillUserProcesses` is set.
pub fn up(layout: Option<Layout>, kill: bool) -> Result<(), String> {
    if !nix::unistd::geteuid().is_root() {
        return Err("container up needs root (debootstrap, cgroups, systemd-nspawn)".into());
    }
    for tool in [
        "debootstrap",
        "systemd-nspawn",
        "ssh",
        "ssh-keygen",
        "chroot",
    ] {
        if !on_path(tool) {
            return Err(format!(
                "'{tool}' not found: install debootstrap, systemd-container and openssh-client"
            ));
        }
    }
    fs::create_dir_all(dir()).map_err(|e| format!("cannot create '{}': {e}", dir().display()))?;
    if let Some(state) = running() {
        if layout.is_some_and(|l| l != state.layout) {
            return Err(format!(
                "the container is up with the {} layout: cargo xtask container down first",
                state.layout.name()
            ));
        }
        set_kill_user_processes(kill)?;
        eprintln!(
            "xtask container: already up (nspawn PID {}, {})",
            state.pid,
            state.layout.name()
        );
        return Ok(());
    }
    let layout = layout.unwrap_or(Layout::Unified);
    if std::net::TcpStream::connect(("127.0.0.1", PORT)).is_ok() {
        return Err(format!(
            "127.0.0.1:{PORT} is in use by a process this task did not start"
        ));
    }
    let t0 = Instant::now();
    ensure_rootfs()?;
    configure(kill)?;
    let t_rootfs = t0.elapsed();
    let mut cgroups = Vec::new();
    for parent in cgroup_parents() {
        let c = parent.join(CGROUP_NAME);
        remove_cgroup(&c)?;
        fs::create_dir(&c).map_err(|e| format!("cannot create cgroup '{}': {e}", c.display()))?;
        cgroups.push(c);
    }
    let pid = spawn_nspawn(layout, &cgroups)?;
    let start = start_time(pid).ok_or("systemd-nspawn exited at once")?;
    write_state(&State {
        pid,
        start,
        layout,
        cgroups,
    })?;
    let said = wait_ready(pid, start, layout)?;
    eprintln!(
        "xtask container: up in {:.1} s (root filesystem {:.1} s, boot {:.1} s): nspawn PID {pid}, {} layout, system {said}, KillUserProcesses={}, ssh -p {PORT} {USER}@127.0.0.1",
        t0.elapsed().as_secs_f64(),
        t_rootfs.as_secs_f64(),
        t0.elapsed().saturating_sub(t_rootfs).as_secs_f64(),
        layout.name(),
        if kill { "yes" } else { "no" },
    );
    Ok(())
}

fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|d| d.join(tool).is_file()))
}

fn last_line(path: &Path) -> String {
    fs::read_to_string(path)
        .ok()
        .and_then(|t| {
            t.lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .map(str::to_owned)
        })
        .unwrap_or_else(|| format!("(nothing in '{}')", path.display()))
}

/// Waits until the recorded process is gone, up to `limit`.
fn gone_within(state: &State, limit: Duration) -> bool {
    let end = Instant::now() + limit;
    loop {
        if start_time(state.pid) != Some(state.start) {
            return true;
        }
        if Instant::now() > end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The PIDs in cgroup `c` and below it.
fn cgroup_procs(c: &Path) -> Vec<i32> {
    let mut pids: Vec<i32> = fs::read_to_string(c.join("cgroup.procs"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    if let Ok(entries) = fs::read_dir(c) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                pids.extend(cgroup_procs(&e.path()));
            }
        }
    }
    pids
}

/// SIGKILL to every process in the cgroups made for the container (nspawn
/// and, if nspawn went first, the container's own processes, which outlive it):
/// `cgroup.kill` on cgroup2, else each PID listed. Returns how many were there.
fn kill_cgroups(cgroups: &[PathBuf]) -> usize {
    let mut found = 0;
    for c in cgroups {
        let pids = cgroup_procs(c);
        found += pids.len();
        if pids.is_empty() {
            continue;
        }
        if fs::write(c.join("cgroup.kill"), "1").is_err() {
            for p in pids {
                let _ = kill(Pid::from_raw(p), Signal::SIGKILL);
            }
        }
    }
    found
}

/// Stops the container: `systemctl poweroff` over ssh; if that does not end it
/// within 20 s, SIGKILL to everything in the cgroups made for it (only those:
/// never a process picked by name); then removes those cgroups.
pub fn down() -> Result<(), String> {
    let Some(state) = read_state() else {
        eprintln!("xtask container: not up");
        return Ok(());
    };
    if start_time(state.pid) == Some(state.start) {
        // The connection may drop as the container stops: the answer is not
        // what tells; nspawn going away is.
        let _ = ssh("root", 20, false)
            .arg("systemctl --no-block poweroff")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if !gone_within(&state, Duration::from_secs(20)) {
            eprintln!(
                "xtask container: poweroff did not finish in 20 s: SIGKILL to the container's cgroups"
            );
        }
    }
    let end = Instant::now() + Duration::from_secs(20);
    loop {
        if kill_cgroups(&state.cgroups) == 0 {
            break;
        }
        if Instant::now() > end {
            return Err(format!(
                "processes of the container remain in {} after SIGKILL",
                state
                    .cgroups
                    .first()
                    .map_or(Path::new("?"), PathBuf::as_path)
                    .display()
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    // The cgroups empty a moment after the last process exits.
    let end = Instant::now() + Duration::from_secs(10);
    for c in &state.cgroups {
        loop {
            match remove_cgroup(c) {
                Ok(()) => break,
                Err(e) if Instant::now() > end => return Err(e),
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }
    let _ = fs::remove_file(state_file());
    eprintln!("xtask container: down");
    Ok(())
}

/// Prints what is running; `Ok(false)` when the container is not up.
pub fn status() -> Result<bool, String> {
    let Some(state) = running() else {
        println!("down");
        return Ok(false);
    };
    let mut out = std::io::stdout().lock();
    let kill = kill_user_processes().map_or_else(
        |e| format!("unknown ({e})"),
        |k| if k { "yes" } else { "no" }.into(),
    );
    let linger = lingers().map_or_else(
        |e| format!("unknown ({e})"),
        |l| if l { "yes" } else { "no" }.into(),
    );
    let system = root_run("systemctl is-system-running").map_or_else(
        |e| e,
        |o| String::from_utf8_lossy(&o.stdout).trim().to_owned(),
    );
    let _ = writeln!(
        out,
        "up: nspawn PID {}, {} layout, system {system}, KillUserProcesses={kill}, linger {USER}: {linger}, ssh -p {PORT} {USER}@127.0.0.1, cache {}",
        state.pid,
        state.layout.name(),
        dir().display()
    );
    Ok(true)
}
