//! hupkit's D-Bus seam: the scope level and logind's linger.
//!
//! systemd-logind kills every process of a session's cgroup
//! (`session-N.scope`) at logout when `KillUserProcesses=yes`, whatever its
//! session, group or SIGHUP disposition; only the cgroup counts. The one way
//! out is a cgroup of another unit: a new transient scope of the caller's
//! service manager ([`Manager::move_to_new_scope`]), and, so that the user's
//! manager outlives the last logout, lingering ([`enable_linger`]). The facts
//! behind every step are in the research note on logind.
//!
//! Why a crate of its own: D-Bus needs zbus, a heavy dependency that only
//! `--scope`, `--linger` and the logout forecast use. The tools reach it only
//! on those paths, so every other start pays nothing for it (no connection,
//! no thread: zbus starts its executor thread only when a connection is made).
//!
//! The decisions:
//! - **Which manager**: the caller's own. A user talks to the user manager,
//!   through the user bus (`$DBUS_SESSION_BUS_ADDRESS`, else
//!   `$XDG_RUNTIME_DIR/bus`); root talks to the system manager through the
//!   system bus (`$DBUS_SYSTEM_BUS_ADDRESS`, else
//!   `/run/dbus/system_bus_socket`). Where the bus is absent or refuses the
//!   connection (no dbus-user-session), through the manager's private socket
//!   (`$XDG_RUNTIME_DIR/systemd/private`, else `/run/user/UID/systemd/private`;
//!   root: `/run/systemd/private`), as `systemd-run` does, with a minimal
//!   client of our own (`p2p`), not zbus: systemd marks its messages there
//!   with the sender `org.freedesktop.systemd1`, a well-known name where D-Bus
//!   wants a unique one, and zbus 5.19's connection thread panics on the first
//!   such message (seen in the container; the caller then waits forever). The
//!   socket's owner and peer are checked first. Without either, one sentence
//!   names both. Lingering ([`enable_linger`]) is login1's, on the system bus
//!   only: the private socket is the service manager's.
//! - **Honest failure first** ([`Manager::connect`]): no systemd, a cgroup v1
//!   layout without the `name=systemd` hierarchy, no bus and no private socket
//!   are each one sentence, found before anything is started.
//! - **Done means done**: `StartTransientUnit` returns before the move is
//!   done, so the manager's `JobRemoved` for that job is awaited (subscribed to
//!   before the call), with a deadline, and its result must be `done`; then
//!   each process's `/proc/PID/cgroup` must name the new scope.
//! - **Names**: `hupkit-NAME-PID-START.scope`, NAME escaped to the unit-name
//!   character set, START the process's start time, so that a reused PID never
//!   collides with a scope that still lives ([`scope_name`]).
//! - **Messages** never carry Rust's or zbus's formatting (`(os error N)`):
//!   an errno is its strerror text, a D-Bus error its message.

mod p2p;

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, mpsc};
use std::time::{Duration, Instant};

use hupkit_common::diag::strerror;
use nix::errno::Errno;
use zbus::DBusError as _;
use zbus::blocking::{Connection, Proxy, connection};
use zbus::zvariant::{OwnedObjectPath, Value};

/// How long the manager may take to finish starting a scope.
const JOB_DEADLINE: Duration = Duration::from_secs(20);

/// The longest unit name systemd accepts (`UNIT_NAME_MAX`).
const UNIT_NAME_MAX: usize = 255;

/// A failure, as one sentence (no program name, no trailing period).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error(pub String);

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

/// The result of this crate's calls.
pub type Result<T> = std::result::Result<T, Error>;

/// The text of a zbus error: a D-Bus error's message, an I/O error's
/// strerror, never a Rust `Debug` or `(os error N)`.
fn text(e: &zbus::Error) -> String {
    match e {
        zbus::Error::MethodError(name, Some(msg), _) => format!("{msg} ({})", name.as_str()),
        zbus::Error::MethodError(name, None, _) => name.as_str().to_owned(),
        zbus::Error::FDO(fdo) => match &**fdo {
            zbus::fdo::Error::ZBus(inner) => text(inner),
            other => {
                let name = other.name();
                let msg = other.description().unwrap_or_default();
                format!("{msg} ({name})")
            }
        },
        zbus::Error::InputOutput(io) => io_text(io),
        other => without_os_error(&other.to_string()),
    }
}

/// `text` without Rust's ` (os error N)` (zbus puts it inside its own texts).
fn without_os_error(text: &str) -> String {
    match text.find(" (os error ") {
        Some(at) => {
            let rest = &text[at + 1..];
            let end = rest.find(')').map_or(text.len(), |e| at + 1 + e + 1);
            format!("{}{}", &text[..at], &text[end..])
        }
        None => text.to_owned(),
    }
}

fn io_text(e: &std::io::Error) -> String {
    e.raw_os_error()
        .map_or_else(|| e.to_string(), |n| strerror(Errno::from_raw(n)))
}

/// The service manager a caller acts through.
pub enum Manager {
    /// The system manager (PID 1), for root.
    System(Connection),
    /// The calling user's manager (`user@UID.service`).
    User(Connection),
    /// The caller's manager through its private socket, when there is no
    /// bus: the user's manager (`user`), else PID 1.
    Private {
        /// The connection, one call at a time.
        peer: Mutex<p2p::Peer>,
        /// Whether the manager is the user's (else PID 1).
        user: bool,
    },
}

/// Whether systemd is the service manager here and the cgroup layout is one it
/// runs on; the sentence saying why not otherwise.
pub fn check_systemd() -> Result<()> {
    if !Path::new("/run/systemd/system").is_dir() {
        return Err(Error(
            "no systemd: it is not the service manager here (/run/systemd/system does not exist)"
                .into(),
        ));
    }
    if Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        return Ok(());
    }
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    if own.lines().any(|l| l.contains(":name=systemd:")) {
        return Ok(());
    }
    Err(Error(
        "cgroup v1 without the name=systemd hierarchy: systemd cannot place processes here".into(),
    ))
}

/// The user's runtime directory: `$XDG_RUNTIME_DIR`, else `/run/user/UID`.
fn runtime_dir(uid: u32) -> PathBuf {
    std::env::var_os("XDG_RUNTIME_DIR")
        .filter(|d| !d.is_empty())
        .map_or_else(|| PathBuf::from(format!("/run/user/{uid}")), PathBuf::from)
}

/// A connection to the bus daemon at `path`.
fn connect_socket(path: &Path) -> std::result::Result<Connection, String> {
    let stream = UnixStream::connect(path).map_err(|e| io_text(&e))?;
    // Deprecated only because it would not build with zbus's `tokio` feature,
    // which this workspace never turns on.
    #[allow(deprecated)]
    let builder = connection::Builder::unix_stream(stream);
    builder.build().map_err(|e| text(&e))
}

fn quoted(p: &Path) -> String {
    hupkit_common::quote::quote(p.as_os_str())
}

impl Manager {
    /// Connects to the caller's service manager (see the module
    /// documentation), after [`check_systemd`].
    pub fn connect() -> Result<Manager> {
        check_systemd()?;
        let uid = nix::unistd::geteuid().as_raw();
        let (var, path, which) = if uid == 0 {
            (
                "DBUS_SYSTEM_BUS_ADDRESS",
                PathBuf::from("/run/dbus/system_bus_socket"),
                "system",
            )
        } else {
            (
                "DBUS_SESSION_BUS_ADDRESS",
                runtime_dir(uid).join("bus"),
                "user",
            )
        };
        let tried = match std::env::var_os(var).filter(|a| !a.is_empty()) {
            Some(addr) => connection::Builder::address(&*addr.to_string_lossy())
                .and_then(connection::Builder::build)
                .map_err(|e| format!("${var}: {}", text(&e))),
            None => connect_socket(&path).map_err(|e| format!("{}: {e}", quoted(&path))),
        };
        let why = match tried {
            Ok(c) if uid == 0 => return Ok(Manager::System(c)),
            Ok(c) => return Ok(Manager::User(c)),
            Err(why) => why,
        };
        let private = if uid == 0 {
            PathBuf::from("/run/systemd/private")
        } else {
            runtime_dir(uid).join("systemd/private")
        };
        match p2p::Peer::connect(&private, uid) {
            Ok(peer) => Ok(Manager::Private {
                peer: Mutex::new(peer),
                user: uid != 0,
            }),
            Err(why_private) => Err(Error(format!(
                "no {which} bus ({why}) and no private socket of the {owner} \
                 ({why_private})",
                owner = if uid == 0 {
                    "system manager"
                } else {
                    "user's manager"
                }
            ))),
        }
    }

    /// Whether this is the user's manager (whose units die with it at the
    /// last logout unless the user lingers).
    #[must_use]
    pub fn is_user(&self) -> bool {
        matches!(self, Manager::User(_) | Manager::Private { user: true, .. })
    }

    fn conn(&self) -> zbus::Result<&Connection> {
        match self {
            Manager::System(c) | Manager::User(c) => Ok(c),
            Manager::Private { .. } => Err(zbus::Error::Unsupported),
        }
    }

    /// The private connection, if this is one (locked; a poisoned lock is
    /// still a usable connection: nothing panics while holding it).
    fn peer(&self) -> Option<std::sync::MutexGuard<'_, p2p::Peer>> {
        match self {
            Manager::Private { peer, .. } => Some(
                peer.lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner),
            ),
            _ => None,
        }
    }

    /// A proxy of the manager's `org.freedesktop.systemd1.Manager` object,
    /// its properties never cached (every call asks the manager).
    fn manager_proxy(&self) -> zbus::Result<Proxy<'static>> {
        zbus::blocking::proxy::Builder::new(self.conn()?)
            .destination("org.freedesktop.systemd1")
            .and_then(|b| b.path("/org/freedesktop/systemd1"))
            .and_then(|b| b.interface("org.freedesktop.systemd1.Manager"))
            .map(|b| b.cache_properties(zbus::proxy::CacheProperties::No))
            .and_then(zbus::blocking::proxy::Builder::build)
    }

    /// Moves `pids` into a new transient scope named after `hint` and the
    /// first PID ([`scope_name`]); returns the scope's name once the manager
    /// has finished the job and every PID's cgroup is the scope's.
    pub fn move_to_new_scope(&self, pids: &[u32], hint: &OsStr) -> Result<String> {
        self.start_scope(pids, hint, false)
    }

    /// As [`Manager::move_to_new_scope`], with `Delegate=yes`: the manager
    /// accepts [`Manager::attach_to_scope`] only for a delegated unit ("Process
    /// migration not available on non-delegated units"), and a running job
    /// may fork while it is moved.
    pub fn move_job_to_new_scope(&self, pids: &[u32], hint: &OsStr) -> Result<String> {
        self.start_scope(pids, hint, true)
    }

    fn start_scope(&self, pids: &[u32], hint: &OsStr, delegate: bool) -> Result<String> {
        let first = *pids
            .first()
            .ok_or_else(|| Error("no process to move".into()))?;
        let start = start_time(first)
            .ok_or_else(|| Error(format!("PID {first} exited before it could be moved")))?;
        let name = scope_name(hint, first, start);
        let fail = |why: String| Error(format!("cannot start scope '{name}': {why}"));
        let description = format!("hupkit: {}", String::from_utf8_lossy(hint.as_bytes()));
        if let Some(mut peer) = self.peer() {
            let mut props = vec![
                ("PIDs", p2p::Prop::U32s(pids.to_vec())),
                ("Description", p2p::Prop::Str(description)),
                ("CollectMode", p2p::Prop::Str("inactive-or-failed".into())),
            ];
            if delegate {
                props.push(("Delegate", p2p::Prop::Bool(true)));
            }
            peer.start_scope(&name, &props, JOB_DEADLINE)
                .map_err(fail)?;
            drop(peer);
            return check_moved(&name, pids)
                .map(|()| name.clone())
                .map_err(fail);
        }
        let proxy: Proxy<'static> = self.manager_proxy().map_err(|e| fail(text(&e)))?;
        // Subscribe first: the job may end before the call's reply is read.
        let signals = proxy
            .receive_signal("JobRemoved")
            .map_err(|e| fail(text(&e)))?;
        // The manager emits job signals to bus clients only once asked to.
        // A second scope on this connection (a retry) is already subscribed.
        match proxy.call::<_, _, ()>("Subscribe", &()) {
            Err(zbus::Error::MethodError(name, _, _))
                if name.as_str() == "org.freedesktop.systemd1.AlreadySubscribed" => {}
            other => other.map_err(|e| fail(text(&e)))?,
        }
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for msg in signals {
                if let Ok((_, job, _, result)) = msg
                    .body()
                    .deserialize::<(u32, OwnedObjectPath, String, String)>()
                {
                    if tx.send((job, result)).is_err() {
                        break;
                    }
                }
            }
        });
        let mut props: Vec<(&str, Value<'_>)> = vec![
            ("PIDs", Value::from(pids.to_vec())),
            ("Description", Value::from(description)),
            ("CollectMode", Value::from("inactive-or-failed")),
        ];
        if delegate {
            props.push(("Delegate", Value::from(true)));
        }
        let aux: Vec<(&str, Vec<(&str, Value<'_>)>)> = Vec::new();
        let job: OwnedObjectPath = proxy
            .call("StartTransientUnit", &(name.as_str(), "fail", props, aux))
            .map_err(|e| fail(text(&e)))?;
        let end = Instant::now() + JOB_DEADLINE;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok((j, result)) if j == job => {
                    if result != "done" {
                        return Err(fail(format!("the manager's job ended '{result}'")));
                    }
                    break;
                }
                Ok(_) => {}
                Err(_) => {
                    return Err(fail(format!(
                        "the manager did not finish the job within {} s",
                        JOB_DEADLINE.as_secs()
                    )));
                }
            }
        }
        check_moved(&name, pids).map_err(fail)?;
        Ok(name)
    }
}

/// Whether each of `pids` is in unit `name`'s cgroup now; the phrase saying
/// which is not otherwise.
fn check_moved(name: &str, pids: &[u32]) -> std::result::Result<(), String> {
    for &pid in pids {
        match cgroup_of(pid) {
            Some(cg) if in_unit(&cg, name) => {}
            Some(cg) => {
                return Err(format!(
                    "PID {pid} is still in '{}'",
                    cg.first().map_or("?", String::as_str)
                ));
            }
            None => return Err(format!("PID {pid} exited while it was moved")),
        }
    }
    Ok(())
}

impl Manager {
    /// Moves `pids` into scope `name`, which this manager already runs and
    /// which was started delegated ([`Manager::move_job_to_new_scope`])
    /// (`AttachProcessesToUnit`, synchronous: done when it returns), then
    /// checks each PID's cgroup. For the processes a job forks while it is
    /// being moved ([`Manager::move_to_new_scope`] takes a list that may be
    /// stale by the time the manager acts on it).
    pub fn attach_to_scope(&self, name: &str, pids: &[u32]) -> Result<()> {
        let fail = |why: String| Error(format!("cannot move processes into '{name}': {why}"));
        if let Some(mut peer) = self.peer() {
            peer.attach(name, pids).map_err(fail)?;
        } else {
            let proxy: Proxy<'_> = self.manager_proxy().map_err(|e| fail(text(&e)))?;
            let _: () = proxy
                .call("AttachProcessesToUnit", &(name, "", pids.to_vec()))
                .map_err(|e| fail(text(&e)))?;
        }
        for &pid in pids {
            match cgroup_of(pid) {
                Some(cg) if in_unit(&cg, name) => {}
                Some(cg) => {
                    return Err(fail(format!(
                        "PID {pid} is still in '{}'",
                        cg.first().map_or("?", String::as_str)
                    )));
                }
                // It exited meanwhile: nothing of it is left behind.
                None => {}
            }
        }
        Ok(())
    }
}

/// Whether cgroup paths `cg` ([`cgroup_of`]) are unit `name`'s.
#[must_use]
pub fn in_unit(cg: &[String], name: &str) -> bool {
    cg.iter().any(|p| p.ends_with(&format!("/{name}")))
}

/// The start time of `pid` (field 22 of /proc/PID/stat), if it lives.
fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split(' ').nth(19)?.parse().ok()
}

/// The cgroup paths of `pid` that systemd places processes by: the
/// `name=systemd` line's (cgroup v1 hybrid) and the `0::` line's (cgroup2),
/// in that order; `None` if it is gone.
#[must_use]
pub fn cgroup_of(pid: u32) -> Option<Vec<String>> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    let mut paths: Vec<String> = text
        .lines()
        .filter_map(|l| l.split_once(":name=systemd:").map(|(_, p)| p.to_owned()))
        .collect();
    paths.extend(
        text.lines()
            .filter_map(|l| l.strip_prefix("0::").map(str::to_owned)),
    );
    Some(paths)
}

/// `hupkit-NAME-PID-START.scope`: NAME (the last component of `hint`) with
/// every byte outside systemd's unit-name set (`A-Za-z0-9:_.-`) as `\xNN`,
/// cut so that the whole name fits systemd's 255 bytes.
#[must_use]
pub fn scope_name(hint: &OsStr, pid: u32, start: u64) -> String {
    let base = hint
        .as_bytes()
        .rsplit(|&b| b == b'/')
        .find(|c| !c.is_empty())
        .unwrap_or(b"job");
    let tail = format!("-{pid}-{start}.scope");
    let room = UNIT_NAME_MAX - "hupkit-".len() - tail.len();
    let mut name = String::new();
    for &b in base {
        let piece = if b.is_ascii_alphanumeric() || b":_.-".contains(&b) {
            char::from(b).to_string()
        } else {
            format!("\\x{b:02x}")
        };
        if name.len() + piece.len() > room {
            break;
        }
        name.push_str(&piece);
    }
    if name.is_empty() {
        name.push_str("job");
    }
    format!("hupkit-{name}{tail}")
}

/// The file logind keeps for a lingering user.
fn linger_file(uid: u32) -> Result<PathBuf> {
    let user = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
        .ok()
        .flatten()
        .ok_or_else(|| Error(format!("no user with ID {uid} in the user database")))?;
    Ok(Path::new("/var/lib/systemd/linger").join(user.name))
}

/// Whether user `uid` lingers (its manager outlives its last logout).
pub fn lingers(uid: u32) -> Result<bool> {
    Ok(linger_file(uid)?.exists())
}

/// The name of user `uid`, for messages (the number if it has none).
#[must_use]
pub fn user_name(uid: u32) -> String {
    nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
        .ok()
        .flatten()
        .map_or_else(|| uid.to_string(), |u| u.name)
}

/// Turns lingering on for user `uid`: login1's `SetUserLinger(uid, true,
/// interactive=false)` on the system bus (root, or what polkit allows), then
/// checks logind's file. The error says what was refused, in logind's words.
pub fn enable_linger(uid: u32) -> Result<()> {
    let who = user_name(uid);
    let fail = |why: String| Error(format!("cannot enable lingering for user '{who}': {why}"));
    check_systemd().map_err(|e| fail(e.0))?;
    let conn = match std::env::var_os("DBUS_SYSTEM_BUS_ADDRESS") {
        Some(addr) => connection::Builder::address(&*addr.to_string_lossy())
            .and_then(connection::Builder::build)
            .map_err(|e| text(&e)),
        None => connect_socket(Path::new("/run/dbus/system_bus_socket")),
    }
    .map_err(|why| fail(format!("no system bus: {why}")))?;
    let proxy: Proxy<'_> = zbus::blocking::proxy::Builder::new(&conn)
        .destination("org.freedesktop.login1")
        .and_then(|b| b.path("/org/freedesktop/login1"))
        .and_then(|b| b.interface("org.freedesktop.login1.Manager"))
        .map(|b| b.cache_properties(zbus::proxy::CacheProperties::No))
        .and_then(zbus::blocking::proxy::Builder::build)
        .map_err(|e| fail(text(&e)))?;
    let _: () = proxy
        .call("SetUserLinger", &(uid, true, false))
        .map_err(|e| fail(text(&e)))?;
    if lingers(uid)? {
        Ok(())
    } else {
        Err(fail(
            "logind accepted, but its linger file is missing".into(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_names_are_unit_names() {
        assert_eq!(
            scope_name(OsStr::new("/usr/bin/sleep"), 42, 7),
            "hupkit-sleep-42-7.scope"
        );
        assert_eq!(
            scope_name(OsStr::new("my job@x"), 1, 2),
            "hupkit-my\\x20job\\x40x-1-2.scope"
        );
        assert_eq!(scope_name(OsStr::new(""), 1, 2), "hupkit-job-1-2.scope");
        let long = "a".repeat(400);
        let name = scope_name(OsStr::new(&long), 4_194_304, u64::MAX);
        assert!(name.len() <= UNIT_NAME_MAX, "{}", name.len());
        assert!(name.ends_with(&format!("-4194304-{}.scope", u64::MAX)));
        // An escape is never cut in half.
        let odd = "é".repeat(100);
        let name = scope_name(OsStr::new(&odd), 1, 1);
        assert!(name.len() <= UNIT_NAME_MAX);
        let stem = name.trim_end_matches("-1-1.scope");
        assert_eq!(
            stem.as_bytes()[stem.len() - 4..stem.len() - 2],
            *b"\\x",
            "{name}"
        );
    }

    #[test]
    fn os_error_suffixes_are_dropped() {
        assert_eq!(
            without_os_error("Failed to connect: No such file or directory (os error 2)"),
            "Failed to connect: No such file or directory"
        );
        assert_eq!(without_os_error("a (os error 13) b"), "a b");
        assert_eq!(without_os_error("plain"), "plain");
    }

    #[test]
    fn no_systemd_here_is_one_sentence() {
        if Path::new("/run/systemd/system").is_dir() {
            return;
        }
        let e = check_systemd().expect_err("no systemd");
        assert!(e.0.starts_with("no systemd: "), "{e}");
        assert!(!e.0.contains('\n'));
    }
}
