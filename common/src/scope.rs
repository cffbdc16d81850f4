//! The scope level's D-Bus-free part: unit names, cgroups, linger, and
//! whether systemd runs here.
//!
//! detach and rdisown use these directly, and `hupkit-dbus` (the helper that
//! talks D-Bus for them, see [`crate::dbus`]) uses them too, through
//! `hupkit_logind`'s re-exports. None of it needs a bus, so the tools call them
//! without starting the helper: the warning that a scope will still die at the
//! last logout ([`lingers`]), the check that a process was moved
//! ([`cgroup_of`], [`in_unit`]).
//!
//! - **Names**: `hupkit-NAME-PID-START.scope`, NAME escaped to the unit-name
//!   character set, START the process's start time, so that a reused PID never
//!   collides with a scope that still lives ([`scope_name`]).
//! - **Errors** are one sentence each ([`Error`]): no program name, no trailing
//!   period, no Rust or zbus formatting.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// The longest unit name systemd accepts (`UNIT_NAME_MAX`).
pub const UNIT_NAME_MAX: usize = 255;

/// A failure, as one sentence (no program name, no trailing period).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error(pub String);

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

/// The result of the scope level's calls.
pub type Result<T> = std::result::Result<T, Error>;

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

/// Whether cgroup paths `cg` ([`cgroup_of`]) are unit `name`'s.
#[must_use]
pub fn in_unit(cg: &[String], name: &str) -> bool {
    cg.iter().any(|p| p.ends_with(&format!("/{name}")))
}

/// The start time of `pid` (field 22 of /proc/PID/stat), if it lives.
#[must_use]
pub fn start_time(pid: u32) -> Option<u64> {
    let pid = nix::unistd::Pid::from_raw(i32::try_from(pid).ok()?);
    crate::proc::Stat::read(pid).ok().map(|s| s.starttime)
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

/// Whether `name` could be a unit name: the unit-name character set plus the
/// `\` of its escapes, at most [`UNIT_NAME_MAX`] bytes (what the helper's
/// replies are checked against before a tool believes them).
#[must_use]
pub fn is_unit_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= UNIT_NAME_MAX
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b":_.-\\@".contains(&b))
}

/// Where logind keeps a file for each lingering user, named after the user.
const LINGER_DIR: &str = "/var/lib/systemd/linger";

/// The file logind keeps for a lingering user.
fn linger_file(uid: u32) -> Result<PathBuf> {
    let user = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
        .ok()
        .flatten()
        .ok_or_else(|| Error(format!("no user with ID {uid} in the user database")))?;
    Ok(Path::new(LINGER_DIR).join(user.name))
}

/// Whether user `uid` lingers (its manager outlives its last logout).
pub fn lingers(uid: u32) -> Result<bool> {
    Ok(linger_file(uid)?.exists())
}

/// Whether the user named `name` lingers, for a tool that has the name
/// already (detach, which looks names up through [`crate::nss`]).
#[must_use]
pub fn name_lingers(name: &str) -> bool {
    !matches!(name, "" | "." | "..")
        && !name.contains('/')
        && Path::new(LINGER_DIR).join(name).exists()
}

/// The name of user `uid`, for messages (the number if it has none).
#[must_use]
pub fn user_name(uid: u32) -> String {
    nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
        .ok()
        .flatten()
        .map_or_else(|| uid.to_string(), |u| u.name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linger_names_stay_in_the_linger_directory() {
        for name in ["", ".", "..", "../x", "a/b"] {
            assert!(!name_lingers(name), "{name:?}");
        }
    }

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
        assert!(is_unit_name(&name));
        // An escape is never cut in half.
        let odd = "é".repeat(100);
        let name = scope_name(OsStr::new(&odd), 1, 1);
        assert!(name.len() <= UNIT_NAME_MAX);
        assert!(is_unit_name(&name));
        let stem = name.trim_end_matches("-1-1.scope");
        assert_eq!(
            stem.as_bytes()[stem.len() - 4..stem.len() - 2],
            *b"\\x",
            "{name}"
        );
        assert!(!is_unit_name("a b.scope"));
        assert!(!is_unit_name(""));
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
