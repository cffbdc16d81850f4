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
//! `--scope` and `--linger` use. Only the helper executable `hupkit-dbus`
//! ([`serve`], `main.rs` here) links this crate; detach and rdisown start it as
//! a coprocess when they need it (`hupkit_common::dbus`), so every other start
//! pays nothing for it, not even in binary size. The D-Bus-free part (unit
//! names, cgroups, linger files) is in `hupkit_common::scope`, re-exported
//! here.
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

use hupkit_common::dbus::LogindSettings;
use hupkit_common::diag::strerror;
use nix::errno::Errno;
use zbus::DBusError as _;
use zbus::blocking::{Connection, Proxy, connection};
use zbus::zvariant::{OwnedObjectPath, Value};

pub mod serve;

// The D-Bus-free part of the scope level lives in common, where the tools use
// it without this crate; re-exported so that the code here reads as before.
use hupkit_common::scope::start_time;
pub use hupkit_common::scope::{
    Error, Result, cgroup_of, check_systemd, in_unit, lingers, scope_name, user_name,
};

/// How long the manager may take to finish starting a scope.
const JOB_DEADLINE: Duration = Duration::from_secs(20);

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

/// A connection to the system bus: `$DBUS_SYSTEM_BUS_ADDRESS`, else
/// `/run/dbus/system_bus_socket`.
fn system_bus() -> std::result::Result<Connection, String> {
    match std::env::var_os("DBUS_SYSTEM_BUS_ADDRESS").filter(|a| !a.is_empty()) {
        Some(addr) => connection::Builder::address(&*addr.to_string_lossy())
            .and_then(connection::Builder::build)
            .map_err(|e| text(&e)),
        None => connect_socket(Path::new("/run/dbus/system_bus_socket")),
    }
}

/// A proxy of login1's `org.freedesktop.login1.Manager`, its properties
/// never cached (every read asks logind).
fn login1(conn: &Connection) -> zbus::Result<Proxy<'_>> {
    zbus::blocking::proxy::Builder::new(conn)
        .destination("org.freedesktop.login1")
        .and_then(|b| b.path("/org/freedesktop/login1"))
        .and_then(|b| b.interface("org.freedesktop.login1.Manager"))
        .map(|b| b.cache_properties(zbus::proxy::CacheProperties::No))
        .and_then(zbus::blocking::proxy::Builder::build)
}

/// logind's settings that decide the logout, as login1's properties on the
/// system bus say (the values in force, which any user may read):
/// `KillUserProcesses` (b), `KillOnlyUsers` (as), `KillExcludeUsers` (as),
/// `UserStopDelayUSec` (t), as systemd 252 names and types them. Its own
/// connection, not the caller's service manager's.
pub fn logind_settings() -> Result<LogindSettings> {
    let fail = |why: String| Error(format!("cannot read logind's settings: {why}"));
    let conn = system_bus().map_err(|why| fail(format!("no system bus: {why}")))?;
    let proxy = login1(&conn).map_err(|e| fail(text(&e)))?;
    let get = |e: zbus::Error| fail(text(&e));
    Ok(LogindSettings {
        kill_user_processes: proxy.get_property("KillUserProcesses").map_err(get)?,
        kill_only_users: proxy.get_property("KillOnlyUsers").map_err(get)?,
        kill_exclude_users: proxy.get_property("KillExcludeUsers").map_err(get)?,
        user_stop_delay_usec: proxy.get_property("UserStopDelayUSec").map_err(get)?,
    })
}

/// Turns lingering on for user `uid`: login1's `SetUserLinger(uid, true,
/// interactive=false)` on the system bus (root, or what polkit allows), then
/// checks logind's file. The error says what was refused, in logind's words.
pub fn enable_linger(uid: u32) -> Result<()> {
    let who = user_name(uid);
    let fail = |why: String| Error(format!("cannot enable lingering for user '{who}': {why}"));
    check_systemd().map_err(|e| fail(e.0))?;
    let conn = system_bus().map_err(|why| fail(format!("no system bus: {why}")))?;
    let proxy = login1(&conn).map_err(|e| fail(text(&e)))?;
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
    fn os_error_suffixes_are_dropped() {
        assert_eq!(
            without_os_error("Failed to connect: No such file or directory (os error 2)"),
            "Failed to connect: No such file or directory"
        );
        assert_eq!(without_os_error("a (os error 13) b"), "a b");
        assert_eq!(without_os_error("plain"), "plain");
    }
}
