//! The logout: what systemd-logind does to a process when its user logs out,
//! forecast from the process's cgroup, logind's settings and the user's linger
//! file (rjobs' `--explain` and `-l`).
//!
//! The rules, as measured in a real systemd 252 (`../shared/research/logind.md`)
//! and as logind's `manager_shall_kill` decides them:
//!
//! - Only the cgroup matters: a process in `user-UID.slice/session-N.scope`
//!   dies with the scope at logout when logind kills the user's sessions
//!   (SIGTERM, SIGCONT and SIGHUP, SIGKILL after the stop timeout), whatever
//!   its session, group, parent or SIGHUP disposition. logind kills them when
//!   the user is not in `KillExcludeUsers` (root is, while that list is unset),
//!   and is in `KillOnlyUsers` when that list is not empty, else when
//!   `KillUserProcesses=yes`.
//! - A unit of the user's manager (`user@UID.service/...`) outlives the
//!   session, but without linger (`/var/lib/systemd/linger/USER`) the manager
//!   stops `UserStopDelaySec` (10 s) after the user's last session ends, and
//!   its units with it. With `KillUserProcesses=no` a session ends only when its
//!   last process does, so the verdict is conditional there.
//! - Anything else (a system service, the root cgroup) is not reached.
//!
//! **Reading `/proc/PID/cgroup`**: on pure cgroup2 there is one `0::PATH` line;
//! on the hybrid layout the `N:name=systemd:PATH` line is systemd's and the
//! `0::` line repeats it; on the legacy layout there is no `0::` line. Inside a
//! cgroup2 container on a hybrid host, the host's `name=systemd` line shows `/`
//! and only `0::` has the real path. So the line that names a user slice wins,
//! then one that names any unit, then `name=systemd`.
//!
//! **logind's settings** are plain data ([`Settings`]), with where each one
//! came from ([`Origin`]). [`Settings::from_files`] reads them as logind does
//! (`logind.conf`, then the drop-ins of `logind.conf.d` in the configuration
//! directories, by file name, a name in `/etc` hiding the same name in `/run`
//! and `/usr/lib`); login1's D-Bus properties ([`Settings::from_bus`],
//! [`Origin::Bus`], shown `(logind)`) are the values logind runs with, and
//! come first ([`settings`]): read once per process by the helper
//! `hupkit-dbus` (zbus stays out of rjobs), only when a forecast is about a
//! process in a user's slice (where they decide; `rjobs` without `-l` never
//! asks), within [`BUS_DEADLINE`]; any failure (no bus, no helper, no answer)
//! falls back to the files. A file cannot tell the compiled-in
//! `KillUserProcesses` default (no on Debian's and most distributions' builds,
//! yes upstream): then the verdict says so.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io;
use std::path::{Path, PathBuf};

use nix::unistd::Pid;

/// Where a process is, as far as the logout is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    /// In a logind session's scope: `user-UID.slice/session-N.scope`.
    Session {
        /// The user's uid (from the slice's name).
        uid: u32,
        /// The scope, `session-N.scope`.
        scope: String,
    },
    /// In a unit of the user's service manager, `user@UID.service`.
    UserManager {
        /// The user's uid.
        uid: u32,
        /// The innermost unit the process is in (`run-r1.scope`), or
        /// `user@UID.service` itself.
        unit: String,
    },
    /// In another unit (a system service, or a unit of the user slice outside
    /// its manager): logout does not reach it.
    Unit(String),
    /// In no unit at all (the root cgroup, or a cgroup systemd did not make).
    NoUnit,
}

/// A process's cgroup: the path systemd tracks it by, and what that means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cgroup {
    /// The path, e.g. `/user.slice/user-1000.slice/session-6.scope`.
    pub path: String,
    /// What the path means for the logout.
    pub place: Place,
}

/// Whether a cgroup path component is a systemd unit's.
fn is_unit(component: &str) -> bool {
    [".slice", ".scope", ".service"]
        .iter()
        .any(|s| component.len() > s.len() && component.ends_with(s))
}

/// The uid in `user-UID.slice`.
fn user_slice(component: &str) -> Option<u32> {
    component
        .strip_prefix("user-")?
        .strip_suffix(".slice")?
        .parse()
        .ok()
}

/// The path systemd tracks a process by, from the text of `/proc/PID/cgroup`
/// (see the module's notes for the choice between lines).
#[must_use]
pub fn cgroup_path(text: &str) -> Option<String> {
    let rank = |path: &str| {
        if path.split('/').any(|c| user_slice(c).is_some()) {
            2
        } else {
            u8::from(path.split('/').any(is_unit))
        }
    };
    let mut best: Option<(u8, u8, &str)> = None;
    for line in text.lines() {
        let mut f = line.splitn(3, ':');
        let (Some(id), Some(controllers), Some(path)) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        // name=systemd before 0:: at the same rank: it is systemd's own
        // hierarchy on the hybrid and legacy layouts.
        let order = match (id, controllers) {
            (_, "name=systemd") => 1,
            ("0", "") => 0,
            _ => continue,
        };
        let key = (rank(path), order, path);
        if best.is_none_or(|b| (key.0, key.1) > (b.0, b.1)) {
            best = Some(key);
        }
    }
    best.map(|(_, _, p)| p.to_string())
}

/// What a cgroup path means for the logout.
#[must_use]
pub fn place(path: &str) -> Place {
    let parts: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
    if let Some(i) = parts.iter().position(|c| user_slice(c).is_some()) {
        let uid = user_slice(parts[i]).unwrap_or(0);
        match parts.get(i + 1) {
            Some(s) if s.starts_with("session-") && s.strip_suffix(".scope").is_some() => {
                return Place::Session {
                    uid,
                    scope: (*s).to_string(),
                };
            }
            Some(s) if *s == format!("user@{uid}.service") => {
                let unit = parts[i + 1..]
                    .iter()
                    .rev()
                    .find(|c| is_unit(c) && c.strip_suffix(".slice").is_none())
                    .map_or_else(|| (*s).to_string(), |c| (*c).to_string());
                return Place::UserManager { uid, unit };
            }
            _ => {}
        }
    }
    match parts.iter().rev().find(|c| is_unit(c)) {
        Some(u) => Place::Unit((*u).to_string()),
        None => Place::NoUnit,
    }
}

impl Cgroup {
    /// The cgroup of process `pid`.
    pub fn read(pid: Pid) -> io::Result<Cgroup> {
        let raw = crate::proc::read_small(Path::new(&format!("/proc/{pid}/cgroup")))?;
        let path = cgroup_path(&String::from_utf8_lossy(&raw))
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no systemd cgroup line"))?;
        Ok(Cgroup {
            place: place(&path),
            path,
        })
    }
}

/// Where a setting's value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// Set nowhere: logind's compiled-in default.
    Default,
    /// The last file that set it.
    File(PathBuf),
    /// login1's D-Bus property (the effective value).
    Bus,
}

/// One setting and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting<T> {
    /// The value; `None` for "the compiled-in default", where that is not known.
    pub value: T,
    /// Where it came from.
    pub origin: Origin,
}

impl<T> Setting<T> {
    fn default(value: T) -> Setting<T> {
        Setting {
            value,
            origin: Origin::Default,
        }
    }
}

/// `UserStopDelaySec`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Delay {
    /// A time span, in seconds.
    Secs(f64),
    /// `infinity`: the user's manager is never stopped.
    Infinity,
}

impl Delay {
    /// `about 10 s`, `infinity`.
    #[must_use]
    pub fn text(self) -> String {
        match self {
            Delay::Infinity => "infinity".into(),
            Delay::Secs(s) if s.fract() == 0.0 => format!("{s:.0} s"),
            Delay::Secs(s) => format!("{s} s"),
        }
    }
}

/// logind's settings that decide the logout.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// `KillUserProcesses`; `None`: set nowhere, the compiled-in default (not
    /// knowable from files).
    pub kill_user_processes: Setting<Option<bool>>,
    /// `KillOnlyUsers` (empty: everyone).
    pub kill_only_users: Setting<Vec<String>>,
    /// `KillExcludeUsers`; `None`: unset (then root is excluded).
    pub kill_exclude_users: Setting<Option<Vec<String>>>,
    /// `UserStopDelaySec` (10 s by default).
    pub user_stop_delay: Setting<Delay>,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            kill_user_processes: Setting::default(None),
            kill_only_users: Setting::default(Vec::new()),
            kill_exclude_users: Setting::default(None),
            user_stop_delay: Setting::default(Delay::Secs(10.0)),
        }
    }
}

/// systemd's booleans.
fn parse_bool(v: &str) -> Option<bool> {
    match v.to_ascii_lowercase().as_str() {
        "1" | "yes" | "y" | "true" | "t" | "on" => Some(true),
        "0" | "no" | "n" | "false" | "f" | "off" => Some(false),
        _ => None,
    }
}

/// A systemd time span (`10s`, `1min 30s`, `500ms`, a bare number of seconds,
/// `infinity`).
#[must_use]
pub fn parse_timespan(v: &str) -> Option<Delay> {
    let v = v.trim();
    if v == "infinity" {
        return Some(Delay::Infinity);
    }
    let mut total = 0.0;
    let mut rest = v;
    let mut any = false;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_len == 0 {
            return None;
        }
        let n: f64 = rest[..num_len].parse().ok()?;
        rest = rest[num_len..].trim_start();
        let unit_len = rest
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(rest.len());
        let factor = match &rest[..unit_len] {
            "" | "s" | "sec" | "second" | "seconds" => 1.0,
            "us" | "usec" | "µs" => 1e-6,
            "ms" | "msec" => 1e-3,
            "m" | "min" | "minute" | "minutes" => 60.0,
            "h" | "hr" | "hour" | "hours" => 3600.0,
            "d" | "day" | "days" => 86400.0,
            "w" | "week" | "weeks" => 604_800.0,
            _ => return None,
        };
        total += n * factor;
        any = true;
        rest = rest[unit_len..].trim_start();
    }
    any.then_some(Delay::Secs(total))
}

/// The directories of `logind.conf.d`, most important first (systemd's
/// `CONF_PATHS`), under `root`.
const DROPIN_DIRS: &[&str] = &[
    "etc/systemd/logind.conf.d",
    "run/systemd/logind.conf.d",
    "usr/local/lib/systemd/logind.conf.d",
    "usr/lib/systemd/logind.conf.d",
];

/// The files logind reads, in the order it reads them: `logind.conf`, then the
/// `*.conf` drop-ins sorted by file name across the directories, a name in a
/// more important directory hiding the same name in the others (a drop-in
/// linked to /dev/null, read as empty, masks it).
#[must_use]
pub fn config_files(root: &Path) -> Vec<PathBuf> {
    let mut files = vec![root.join("etc/systemd/logind.conf")];
    let mut dropins: BTreeMap<Vec<u8>, PathBuf> = BTreeMap::new();
    for dir in DROPIN_DIRS {
        let Ok(entries) = std::fs::read_dir(root.join(dir)) else {
            continue;
        };
        for e in entries.flatten() {
            use std::os::unix::ffi::OsStrExt;
            let name = e.file_name();
            if name.as_bytes().ends_with(b".conf") {
                dropins
                    .entry(name.as_bytes().to_vec())
                    .or_insert_with(|| e.path());
            }
        }
    }
    files.extend(dropins.into_values());
    files
}

impl Settings {
    /// The settings as logind reads them from its files under `root` (`/`
    /// normally): each file's `[Login]` section, later files overriding
    /// earlier ones; a list setting appends, and an empty assignment resets it.
    #[must_use]
    pub fn from_files(root: &Path) -> Settings {
        let mut s = Settings::default();
        for file in config_files(root) {
            if let Ok(text) = std::fs::read(&file) {
                s.apply(&String::from_utf8_lossy(&text), &file);
            }
        }
        s
    }

    /// Applies one file's text (`file` is where it came from).
    pub fn apply(&mut self, text: &str, file: &Path) {
        let origin = || Origin::File(file.to_path_buf());
        let mut in_login = false;
        let mut joined = String::new();
        for raw in text.lines() {
            // A trailing backslash continues the line.
            if let Some(head) = raw.strip_suffix('\\') {
                joined.push_str(head);
                joined.push(' ');
                continue;
            }
            joined.push_str(raw);
            let line = std::mem::take(&mut joined);
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
                continue;
            }
            if line.starts_with('[') {
                in_login = line == "[Login]";
                continue;
            }
            let Some((key, value)) = line.split_once('=') else {
                continue;
            };
            if !in_login {
                continue;
            }
            let value = value.trim();
            match key.trim() {
                "KillUserProcesses" => {
                    // An invalid value is ignored, as logind does.
                    if let Some(b) = parse_bool(value) {
                        self.kill_user_processes = Setting {
                            value: Some(b),
                            origin: origin(),
                        };
                    }
                }
                "KillOnlyUsers" => {
                    let list = &mut self.kill_only_users;
                    if value.is_empty() {
                        list.value.clear();
                    } else {
                        list.value
                            .extend(value.split_whitespace().map(str::to_string));
                    }
                    list.origin = origin();
                }
                "KillExcludeUsers" => {
                    let list = &mut self.kill_exclude_users;
                    if value.is_empty() {
                        list.value = None;
                    } else {
                        list.value
                            .get_or_insert_with(Vec::new)
                            .extend(value.split_whitespace().map(str::to_string));
                    }
                    list.origin = origin();
                }
                "UserStopDelaySec" => {
                    if let Some(d) = parse_timespan(value) {
                        self.user_stop_delay = Setting {
                            value: d,
                            origin: origin(),
                        };
                    }
                }
                _ => {}
            }
        }
    }

    /// Whether logind kills `user`'s session scopes at logout, and why, in
    /// words (systemd's `manager_shall_kill`); `None` for the kill when
    /// `KillUserProcesses` decides and is set nowhere.
    #[must_use]
    pub fn shall_kill(&self, user: &str) -> (Option<bool>, String) {
        match &self.kill_exclude_users.value {
            None if user == "root" => {
                return (
                    Some(false),
                    "root is never killed while KillExcludeUsers is unset".into(),
                );
            }
            Some(list) if list.iter().any(|u| u == user) => {
                return (Some(false), format!("KillExcludeUsers lists {user}"));
            }
            _ => {}
        }
        let only = &self.kill_only_users.value;
        if !only.is_empty() {
            return if only.iter().any(|u| u == user) {
                (Some(true), format!("KillOnlyUsers lists {user}"))
            } else {
                (Some(false), format!("KillOnlyUsers does not list {user}"))
            };
        }
        match self.kill_user_processes.value {
            Some(true) => (Some(true), "KillUserProcesses=yes".into()),
            Some(false) => (Some(false), "KillUserProcesses=no".into()),
            None => (
                None,
                "KillUserProcesses is set in no logind.conf file: the compiled-in default applies, \
                 no in Debian's and most distributions' builds, yes in upstream's"
                    .into(),
            ),
        }
    }

    /// One line of the settings, for `--explain`.
    #[must_use]
    pub fn summary(&self) -> String {
        let from = |o: &Origin| match o {
            Origin::Default => " (default)".to_string(),
            Origin::File(p) => format!(" ({})", p.display()),
            Origin::Bus => " (logind)".to_string(),
        };
        let mut out = String::new();
        let _ = write!(
            out,
            "KillUserProcesses={}{}",
            match self.kill_user_processes.value {
                Some(true) => "yes",
                Some(false) => "no",
                None => "compiled-in default",
            },
            from(&self.kill_user_processes.origin)
        );
        if !self.kill_only_users.value.is_empty() {
            let _ = write!(
                out,
                ", KillOnlyUsers={}{}",
                self.kill_only_users.value.join(" "),
                from(&self.kill_only_users.origin)
            );
        }
        if let Some(list) = &self.kill_exclude_users.value {
            let _ = write!(
                out,
                ", KillExcludeUsers={}{}",
                list.join(" "),
                from(&self.kill_exclude_users.origin)
            );
        }
        let _ = write!(
            out,
            ", UserStopDelaySec={}{}",
            self.user_stop_delay.value.text(),
            from(&self.user_stop_delay.origin)
        );
        out
    }
}

impl Settings {
    /// The settings login1's D-Bus properties give: the values in force, each
    /// with [`Origin::Bus`]. An empty `KillExcludeUsers` is logind's unset
    /// list (a configuration cannot make it set and empty), so root is
    /// excluded then.
    #[must_use]
    pub fn from_bus(b: &crate::dbus::LogindSettings) -> Settings {
        let bus = |value| Setting {
            value,
            origin: Origin::Bus,
        };
        Settings {
            kill_user_processes: bus(Some(b.kill_user_processes)),
            kill_only_users: Setting {
                value: b.kill_only_users.clone(),
                origin: Origin::Bus,
            },
            kill_exclude_users: Setting {
                value: (!b.kill_exclude_users.is_empty()).then(|| b.kill_exclude_users.clone()),
                origin: Origin::Bus,
            },
            user_stop_delay: Setting {
                value: if b.user_stop_delay_usec == u64::MAX {
                    Delay::Infinity
                } else {
                    // Microseconds to seconds: exact enough for any delay
                    // that is said in words.
                    #[allow(clippy::cast_precision_loss)]
                    let secs = b.user_stop_delay_usec as f64 / 1e6;
                    Delay::Secs(secs)
                },
                origin: Origin::Bus,
            },
        }
    }
}

/// How long rjobs waits for login1's properties before it falls back to the
/// files: the forecast must never make it hang.
pub const BUS_DEADLINE: std::time::Duration = std::time::Duration::from_secs(2);

/// Whether the system bus is there to ask: `$DBUS_SYSTEM_BUS_ADDRESS`, else
/// its usual socket.
fn system_bus_there() -> bool {
    std::env::var_os("DBUS_SYSTEM_BUS_ADDRESS").is_some_and(|a| !a.is_empty())
        || Path::new("/run/dbus/system_bus_socket").exists()
}

/// login1's properties through the helper `hupkit-dbus` (one run, within
/// [`BUS_DEADLINE`]); `None` on any failure: no helper, no bus, no logind,
/// no answer in time, an answer that is not one.
fn settings_from_bus() -> Option<Settings> {
    if !system_bus_there() {
        return None;
    }
    let mut helper = crate::dbus::Helper::start().ok()?;
    helper.set_deadline(BUS_DEADLINE);
    if let Ok(b) = helper.logind_settings() {
        Some(Settings::from_bus(&b))
    } else {
        helper.kill();
        None
    }
}

/// The settings in force: login1's D-Bus properties where the system bus and
/// the helper are there, else logind's files as logind reads them. Asked
/// once per process: every later call returns the first answer.
#[must_use]
pub fn settings() -> &'static Settings {
    static SETTINGS: std::sync::OnceLock<Settings> = std::sync::OnceLock::new();
    SETTINGS
        .get_or_init(|| settings_from_bus().unwrap_or_else(|| Settings::from_files(Path::new("/"))))
}

/// What the logout does to a process, in one word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// logind kills its session scope at logout.
    Dies,
    /// It dies when the user's manager stops, `UserStopDelaySec` after the
    /// user's last session ends.
    DiesLater,
    /// It lives on after the logout.
    Lives,
    /// It lives while a session of the user keeps a process, and dies when
    /// the user's manager stops after that.
    LivesWhile,
    /// It is in no logind session: logout does not reach it.
    NotReached,
    /// No systemd: there is no logind to kill anything at logout.
    NoSystemd,
}

impl Fate {
    /// The word for `rjobs -l`'s LOGOUT column and `--json`.
    #[must_use]
    pub fn label(self) -> &'static str {
        match self {
            Fate::Dies => "dies",
            Fate::DiesLater => "dies-later",
            Fate::Lives => "lives",
            Fate::LivesWhile => "lives-while",
            Fate::NotReached => "unreached",
            Fate::NoSystemd => "-",
        }
    }
}

/// The forecast for one process: the word and the verdict in plain words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forecast {
    /// The fate.
    pub fate: Fate,
    /// The verdict, e.g. `dies at logout: logind kills session-6.scope
    /// (KillUserProcesses=yes)`.
    pub text: String,
}

/// What the forecasts are drawn from, besides the process's cgroup.
pub struct Host {
    /// Whether systemd is the init system (`/run/systemd/system` exists).
    pub systemd: bool,
    /// logind's settings, read when a forecast first needs them (a process in
    /// a user's slice): [`settings`] on this machine.
    settings: std::cell::OnceCell<&'static Settings>,
    /// The root of the file system the linger files are read in.
    pub root: PathBuf,
}

impl Host {
    /// This machine. Nothing of logind's is read yet: only a forecast for a
    /// process in a user's slice reads its settings, once per process
    /// ([`settings`]), so that listings without one never ask the bus.
    #[must_use]
    pub fn this() -> Host {
        Host {
            systemd: Path::new("/run/systemd/system").is_dir(),
            settings: std::cell::OnceCell::new(),
            root: PathBuf::from("/"),
        }
    }

    /// logind's settings (read now if not yet).
    #[must_use]
    pub fn settings(&self) -> &Settings {
        self.settings.get_or_init(settings)
    }

    /// The name of user `uid`, or the number if it has none.
    #[must_use]
    pub fn user(uid: u32) -> String {
        nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
            .ok()
            .flatten()
            .map_or_else(|| uid.to_string(), |u| u.name)
    }

    /// Whether `user` lingers: logind's file for it exists.
    #[must_use]
    pub fn lingers(&self, user: &str) -> bool {
        self.root.join("var/lib/systemd/linger").join(user).exists()
    }

    /// The forecast for a process in `cg`. logind's settings are read only
    /// for a process in a user's slice, the only place they decide.
    #[must_use]
    pub fn forecast(&self, cg: &Cgroup) -> Forecast {
        let user = |uid| Host::user(uid);
        let unread;
        let s = if self.systemd
            && matches!(cg.place, Place::Session { .. } | Place::UserManager { .. })
        {
            self.settings()
        } else {
            unread = Settings::default();
            &unread
        };
        forecast(self.systemd, s, cg, &user, &|u: &str| self.lingers(u))
    }

    /// The forecast for process `pid` (`None` if its cgroup cannot be read).
    #[must_use]
    pub fn forecast_pid(&self, pid: Pid) -> Option<(Cgroup, Forecast)> {
        if !self.systemd {
            let cg = Cgroup::read(pid).unwrap_or(Cgroup {
                path: "?".into(),
                place: Place::NoUnit,
            });
            let f = self.forecast(&cg);
            return Some((cg, f));
        }
        let cg = Cgroup::read(pid).ok()?;
        let f = self.forecast(&cg);
        Some((cg, f))
    }
}

/// The forecast for a process in `cg`, given whether systemd runs, logind's
/// settings, user names by uid, and who lingers.
#[must_use]
pub fn forecast(
    systemd: bool,
    s: &Settings,
    cg: &Cgroup,
    user: &dyn Fn(u32) -> String,
    lingers: &dyn Fn(&str) -> bool,
) -> Forecast {
    if !systemd {
        return Forecast {
            fate: Fate::NoSystemd,
            text: "no systemd: logout kills nothing here (no logind session scope; only the terminal's hangup applies)".to_string(),
        };
    }
    let (fate, text) = {
        match &cg.place {
            Place::Session { uid, scope } => {
                let name = user(*uid);
                match s.shall_kill(&name) {
                    (Some(true), why) => (
                        Fate::Dies,
                        format!("dies at logout: logind kills {scope} ({why})"),
                    ),
                    (Some(false), why) => (
                        Fate::Lives,
                        format!("lives at logout: logind leaves {scope} to its processes ({why})"),
                    ),
                    (None, why) => (
                        Fate::Lives,
                        format!(
                            "lives at logout if this systemd was built with KillUserProcesses=no, dies if with yes: logind kills {scope} then ({why}; login1's D-Bus property tells)"
                        ),
                    ),
                }
            }
            Place::UserManager { uid, unit } => {
                let name = user(*uid);
                let manager = format!("user@{uid}.service");
                let within = if *unit == manager {
                    manager.clone()
                } else {
                    format!("{manager} ({unit}, a unit of the user's manager)")
                };
                let delay = s.user_stop_delay.value;
                if lingers(&name) {
                    (
                        Fate::Lives,
                        format!("lives at logout: in {within}, and {name} lingers"),
                    )
                } else if delay == Delay::Infinity {
                    (
                        Fate::Lives,
                        format!(
                            "lives at logout: in {within}, which UserStopDelaySec=infinity keeps running"
                        ),
                    )
                } else {
                    let later = format!(
                        "{manager} stops about {} after {name}'s last session ends (no linger: loginctl enable-linger {name})",
                        delay.text()
                    );
                    match s.shall_kill(&name) {
                        (Some(true), why) => (
                            Fate::DiesLater,
                            format!(
                                "dies about {} after the last logout: in {within}; logind ends {name}'s sessions at logout ({why}), and {later}",
                                delay.text()
                            ),
                        ),
                        (_, why) => (
                            Fate::LivesWhile,
                            format!(
                                "lives at logout while a session of {name} keeps a process ({why}: a session ends when its last process does), then dies: in {within}; {later}"
                            ),
                        ),
                    }
                }
            }
            Place::Unit(unit) => (
                Fate::NotReached,
                format!(
                    "not in a logind session: logout does not reach it (in {unit}, {})",
                    cg.path
                ),
            ),
            Place::NoUnit => (
                Fate::NotReached,
                format!(
                    "not in a logind session: logout does not reach it (cgroup {})",
                    cg.path
                ),
            ),
        }
    };
    Forecast { fate, text }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID_SESSION: &str = "\
9:name=systemd:/user.slice/user-1000.slice/session-6.scope
8:pids:/
7:blkio:/
1:cpu:/
0::/user.slice/user-1000.slice/session-6.scope
";

    #[test]
    fn cgroup_lines_of_every_layout() {
        assert_eq!(
            cgroup_path(HYBRID_SESSION).as_deref(),
            Some("/user.slice/user-1000.slice/session-6.scope")
        );
        // Pure cgroup2.
        assert_eq!(
            cgroup_path("0::/user.slice/user-1000.slice/session-30.scope\n").as_deref(),
            Some("/user.slice/user-1000.slice/session-30.scope")
        );
        // A cgroup2 container on a hybrid host: the host's name=systemd line is `/`.
        let unified_in_hybrid = "9:name=systemd:/\n4:memory:/x/y\n0::/user.slice/user-1000.slice/user@1000.service/app.slice/run-r3f.scope\n";
        assert_eq!(
            cgroup_path(unified_in_hybrid).as_deref(),
            Some("/user.slice/user-1000.slice/user@1000.service/app.slice/run-r3f.scope")
        );
        // Legacy v1: no 0:: line.
        assert_eq!(
            cgroup_path("2:cpu:/\n1:name=systemd:/system.slice/cron.service\n").as_deref(),
            Some("/system.slice/cron.service")
        );
        // Hybrid: name=systemd wins a tie (a unified line that disagrees).
        assert_eq!(
            cgroup_path("1:name=systemd:/system.slice/a.service\n0::/system.slice/b.service\n")
                .as_deref(),
            Some("/system.slice/a.service")
        );
        // This host: no systemd.
        assert_eq!(
            cgroup_path("9:name=systemd:/\n0::/\n").as_deref(),
            Some("/")
        );
        assert_eq!(cgroup_path("4:memory:/x\n"), None);
    }

    #[test]
    fn places() {
        assert_eq!(
            place("/user.slice/user-1000.slice/session-6.scope"),
            Place::Session {
                uid: 1000,
                scope: "session-6.scope".into()
            }
        );
        assert_eq!(
            place("/user.slice/user-1000.slice/user@1000.service/app.slice/run-r3f.scope"),
            Place::UserManager {
                uid: 1000,
                unit: "run-r3f.scope".into()
            }
        );
        assert_eq!(
            place("/user.slice/user-1000.slice/user@1000.service/init.scope"),
            Place::UserManager {
                uid: 1000,
                unit: "init.scope".into()
            }
        );
        assert_eq!(
            place("/user.slice/user-1000.slice/user@1000.service"),
            Place::UserManager {
                uid: 1000,
                unit: "user@1000.service".into()
            }
        );
        assert_eq!(
            place("/user.slice/user-1000.slice/user-runtime-dir@1000.service"),
            Place::Unit("user-runtime-dir@1000.service".into())
        );
        assert_eq!(
            place("/system.slice/ssh.service"),
            Place::Unit("ssh.service".into())
        );
        assert_eq!(place("/"), Place::NoUnit);
    }

    fn write(root: &Path, rel: &str, text: &str) {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, text).expect("write");
    }

    #[test]
    fn logind_conf_and_dropins_in_systemds_order() {
        let d = tempfile::tempdir().expect("tempdir");
        let root = d.path();
        // Nothing: the defaults.
        let s = Settings::from_files(root);
        assert_eq!(s, Settings::default());
        assert_eq!(s.shall_kill("alice").0, None);
        assert_eq!(s.shall_kill("root").0, Some(false));

        write(
            root,
            "etc/systemd/logind.conf",
            "[Login]\n#KillUserProcesses=yes\nKillUserProcesses=no\nUserStopDelaySec=1min 30s\n",
        );
        // Sorted by file name across directories: 10 (usr/lib) < 20 (run) < 30 (usr/lib).
        write(
            root,
            "usr/lib/systemd/logind.conf.d/10-a.conf",
            "[Login]\nKillUserProcesses=yes\nKillExcludeUsers=bob\n",
        );
        write(
            root,
            "run/systemd/logind.conf.d/20-b.conf",
            "[Login]\nKillUserProcesses=off\n",
        );
        write(
            root,
            "usr/lib/systemd/logind.conf.d/30-c.conf",
            "[Login]\nKillUserProcesses=on\n[Other]\nKillUserProcesses=no\n",
        );
        // Same name: /etc hides /usr/lib (its file sets nothing).
        write(root, "etc/systemd/logind.conf.d/30-c.conf", "# masked\n");
        write(
            root,
            "etc/systemd/logind.conf.d/40-d.txt",
            "[Login]\nKillUserProcesses=yes\n",
        );
        let files = config_files(root);
        let rel: Vec<String> = files
            .iter()
            .map(|f| {
                f.strip_prefix(root)
                    .expect("under root")
                    .display()
                    .to_string()
            })
            .collect();
        assert_eq!(
            rel,
            [
                "etc/systemd/logind.conf",
                "usr/lib/systemd/logind.conf.d/10-a.conf",
                "run/systemd/logind.conf.d/20-b.conf",
                "etc/systemd/logind.conf.d/30-c.conf",
            ]
        );
        let s = Settings::from_files(root);
        assert_eq!(s.kill_user_processes.value, Some(false));
        assert_eq!(
            s.kill_user_processes.origin,
            Origin::File(root.join("run/systemd/logind.conf.d/20-b.conf"))
        );
        assert_eq!(s.user_stop_delay.value, Delay::Secs(90.0));
        // KillExcludeUsers set: root is no longer excluded by default.
        assert_eq!(s.kill_exclude_users.value, Some(vec!["bob".to_string()]));
        assert_eq!(s.shall_kill("bob").0, Some(false));

        // Unmask 30-c: KillUserProcesses=on wins, [Other] is ignored.
        std::fs::remove_file(root.join("etc/systemd/logind.conf.d/30-c.conf")).expect("rm");
        let s = Settings::from_files(root);
        assert_eq!(s.kill_user_processes.value, Some(true));
        assert_eq!(
            s.shall_kill("alice"),
            (Some(true), "KillUserProcesses=yes".into())
        );
        assert_eq!(s.shall_kill("root").0, Some(true));
    }

    #[test]
    fn settings_from_logind_are_the_values_in_force() {
        let mut b = crate::dbus::LogindSettings {
            kill_user_processes: false,
            kill_only_users: Vec::new(),
            kill_exclude_users: Vec::new(),
            user_stop_delay_usec: 10_000_000,
        };
        let s = Settings::from_bus(&b);
        assert_eq!(s.kill_user_processes.value, Some(false));
        assert_eq!(s.kill_user_processes.origin, Origin::Bus);
        // An empty list over the bus is logind's unset one: root excluded.
        assert_eq!(s.kill_exclude_users.value, None);
        assert_eq!(s.shall_kill("root").0, Some(false));
        assert_eq!(
            s.shall_kill("alice"),
            (Some(false), "KillUserProcesses=no".into())
        );
        assert_eq!(
            s.summary(),
            "KillUserProcesses=no (logind), UserStopDelaySec=10 s (logind)"
        );
        b.kill_user_processes = true;
        b.kill_exclude_users = vec!["bob".into()];
        b.user_stop_delay_usec = u64::MAX;
        let s = Settings::from_bus(&b);
        assert_eq!(s.shall_kill("root").0, Some(true));
        assert_eq!(s.shall_kill("bob").0, Some(false));
        assert_eq!(s.user_stop_delay.value, Delay::Infinity);
        b.user_stop_delay_usec = 1_500_000;
        assert_eq!(
            Settings::from_bus(&b).user_stop_delay.value,
            Delay::Secs(1.5)
        );
    }

    #[test]
    fn lists_append_and_reset() {
        let mut s = Settings::default();
        let f = Path::new("/x.conf");
        s.apply(
            "[Login]\nKillOnlyUsers=alice\nKillOnlyUsers=carol dave\nKillUserProcesses=no\n",
            f,
        );
        assert_eq!(s.kill_only_users.value, ["alice", "carol", "dave"]);
        // KillOnlyUsers decides, whatever KillUserProcesses says.
        assert_eq!(s.shall_kill("carol").0, Some(true));
        assert_eq!(s.shall_kill("bob").0, Some(false));
        s.apply(
            "[Login]\nKillOnlyUsers=\nKillExcludeUsers=\nKillUserProcesses=bogus\n",
            f,
        );
        assert!(s.kill_only_users.value.is_empty());
        assert_eq!(s.kill_exclude_users.value, None);
        assert_eq!(s.kill_user_processes.value, Some(false));
    }

    #[test]
    fn timespans() {
        assert_eq!(parse_timespan("10s"), Some(Delay::Secs(10.0)));
        assert_eq!(parse_timespan("10"), Some(Delay::Secs(10.0)));
        assert_eq!(parse_timespan("2min 5s"), Some(Delay::Secs(125.0)));
        assert_eq!(parse_timespan("500ms"), Some(Delay::Secs(0.5)));
        assert_eq!(parse_timespan("infinity"), Some(Delay::Infinity));
        assert_eq!(parse_timespan("soon"), None);
        assert_eq!(parse_timespan(""), None);
    }

    fn cg(path: &str) -> Cgroup {
        Cgroup {
            path: path.into(),
            place: place(path),
        }
    }

    #[test]
    fn verdicts() {
        let name = |uid: u32| {
            if uid == 1000 {
                "alice".into()
            } else {
                uid.to_string()
            }
        };
        let no = |_: &str| false;
        let yes = |_: &str| true;
        let mut s = Settings::default();
        s.apply("[Login]\nKillUserProcesses=yes\n", Path::new("/k.conf"));
        let session = cg("/user.slice/user-1000.slice/session-6.scope");
        let unit = cg("/user.slice/user-1000.slice/user@1000.service/app.slice/run-r1.scope");
        let f = forecast(true, &s, &session, &name, &no);
        assert_eq!(f.fate, Fate::Dies);
        assert_eq!(
            f.text,
            "dies at logout: logind kills session-6.scope (KillUserProcesses=yes)"
        );
        assert_eq!(forecast(true, &s, &unit, &name, &no).fate, Fate::DiesLater);
        let f = forecast(true, &s, &unit, &name, &yes);
        assert_eq!(f.fate, Fate::Lives);
        assert!(f.text.ends_with("and alice lingers"), "{}", f.text);
        s.apply("[Login]\nKillUserProcesses=no\n", Path::new("/k.conf"));
        assert_eq!(forecast(true, &s, &session, &name, &no).fate, Fate::Lives);
        assert_eq!(forecast(true, &s, &unit, &name, &no).fate, Fate::LivesWhile);
        let f = forecast(true, &s, &cg("/system.slice/cron.service"), &name, &no);
        assert_eq!(f.fate, Fate::NotReached);
        assert!(f.text.starts_with("not in a logind session"));
        let f = forecast(false, &s, &cg("/"), &name, &no);
        assert_eq!(f.fate, Fate::NoSystemd);
        assert!(f.text.starts_with("no systemd: logout kills nothing here"));
    }
}
