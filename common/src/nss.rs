//! Users and groups, looked up by `getent` in a dynamically linked process.
//!
//! detach is linked static-pie (see `build.rs`): no dynamic loader, which is
//! most of what its start-up cost beyond its own work. Static glibc reaches
//! the name service switch (`getpwnam`, `getgrnam`, `getgrouplist`) only by
//! `dlopen`ing each module with a second copy of the shared libc, which works
//! only when that libc is the very build the binary was linked with (the link
//! warns: "Using 'getpwnam' in statically linked applications requires at
//! runtime the shared libraries from the glibc version used for linking"). A
//! user who exists only through an NSS module (LDAP, SSSD, extrausers) would
//! then be unknown, or worse, after an upgrade of libc. So a tool that is
//! linked static asks glibc's own `getent` (a dynamically linked program of
//! the C library's package, at an absolute path, never through `PATH`), with
//! an empty environment, and parses its answer strictly: one entry, every
//! field where `passwd(5)` and `group(5)` put it. Only the paths that name a
//! user or group pay for it (one `getent` each).
//!
//! `getent` takes a key that `strtoul` reads whole (`"0"`, `" 0"`, `"-1"`,
//! `"4294967296"`) as a number: a name lookup for such a key would find user 0
//! (`strtoul` wraps) where no user of that name exists. [`passwd_by_name`] and
//! [`group_by_name`] therefore refuse them ([`LookupError::NotAName`]); numbers
//! go through [`passwd_by_uid`], which checks the entry's ID.
//!
//! `getent`'s exit statuses: 0 found, 2 not found (a missing key is
//! `Ok(None)` here), anything else a failure.

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::process::{Command, Stdio};

use nix::errno::Errno;

/// Where `getent` is looked for, in this order (libc-bin on Debian; `/bin`
/// for systems whose `/usr` is not merged).
pub const GETENT: [&str; 2] = ["/usr/bin/getent", "/bin/getent"];

/// The most of `getent`'s output read (a user in very many groups fits).
const READ_LIMIT: u64 = 1 << 20;

/// A user's entry in the user database (`passwd(5)`), the fields the tools use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Passwd {
    /// Login name.
    pub name: String,
    /// User ID.
    pub uid: u32,
    /// Primary group ID.
    pub gid: u32,
    /// Home directory.
    pub dir: OsString,
}

/// Why a look-up gave no answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LookupError {
    /// `getent` is not installed at any of [`GETENT`].
    Missing,
    /// `getent` could not be started, or its output read.
    Run(Errno),
    /// `getent` exited with this status (other than 0 and 2), or was killed
    /// by this signal (`128 + N`).
    Status(i32),
    /// `getent` answered something that is not one entry of the database.
    Garbled,
    /// The key is not a name: `getent` would read it as a number.
    NotAName,
}

impl fmt::Display for LookupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LookupError::Missing => {
                write!(f, "getent not found (looked for {})", GETENT.join(", "))
            }
            LookupError::Run(errno) => {
                write!(f, "cannot run getent: {}", crate::diag::strerror(*errno))
            }
            LookupError::Status(n) => write!(f, "getent failed with status {n}"),
            LookupError::Garbled => f.write_str("getent's answer is not a database entry"),
            LookupError::NotAName => f.write_str("not a valid name"),
        }
    }
}

/// Whether `getent` would take `key` for a number (`strtoul` reads it whole).
fn getent_reads_number(key: &str) -> bool {
    let rest = key.trim_start_matches(|c: char| c.is_ascii_whitespace());
    let rest = rest.strip_prefix(['+', '-']).unwrap_or(rest);
    !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit())
}

/// Runs `getent DATABASE -- KEY`: its output, `None` if the key is not found.
fn getent(database: &str, key: &OsStr) -> Result<Option<Vec<u8>>, LookupError> {
    let program = GETENT
        .iter()
        .map(Path::new)
        .find(|p| p.is_file())
        .ok_or(LookupError::Missing)?;
    let mut child = Command::new(program)
        .arg(database)
        .arg("--")
        .arg(key)
        .env_clear()
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| LookupError::Run(errno_of(&e)))?;
    let mut out = Vec::new();
    let read = match child.stdout.take() {
        Some(stdout) => stdout.take(READ_LIMIT).read_to_end(&mut out).map(drop),
        None => Ok(()),
    };
    let status = child.wait().map_err(|e| LookupError::Run(errno_of(&e)))?;
    read.map_err(|e| LookupError::Run(errno_of(&e)))?;
    match status.code() {
        Some(0) => Ok(Some(out)),
        Some(2) => Ok(None),
        Some(n) => Err(LookupError::Status(n)),
        None => Err(LookupError::Status(
            128 + std::os::unix::process::ExitStatusExt::signal(&status).unwrap_or(0),
        )),
    }
}

fn errno_of(e: &std::io::Error) -> Errno {
    e.raw_os_error().map_or(Errno::EIO, Errno::from_raw)
}

/// The single line of `out` (a final newline removed); `None` if there are
/// more, or none.
fn one_line(out: &[u8]) -> Option<&[u8]> {
    let line = out.strip_suffix(b"\n")?;
    (!line.is_empty() && !line.contains(&b'\n')).then_some(line)
}

/// A decimal ID: digits only, within `u32`.
fn id(field: &[u8]) -> Option<u32> {
    if field.is_empty() || !field.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(field).ok()?.parse().ok()
}

/// Parses `getent passwd`'s answer: one line of seven fields.
#[must_use]
pub fn parse_passwd(out: &[u8]) -> Option<Passwd> {
    let fields: Vec<&[u8]> = one_line(out)?.split(|&b| b == b':').collect();
    let [name, _, uid, gid, _, dir, _] = fields.as_slice() else {
        return None;
    };
    if name.is_empty() {
        return None;
    }
    Some(Passwd {
        name: String::from_utf8(name.to_vec()).ok()?,
        uid: id(uid)?,
        gid: id(gid)?,
        dir: OsStr::from_bytes(dir).to_os_string(),
    })
}

/// Parses `getent group`'s answer: one line of four fields; the group's ID.
#[must_use]
pub fn parse_group(out: &[u8]) -> Option<u32> {
    let fields: Vec<&[u8]> = one_line(out)?.split(|&b| b == b':').collect();
    let [name, _, gid, _] = fields.as_slice() else {
        return None;
    };
    if name.is_empty() {
        return None;
    }
    id(gid)
}

/// Parses `getent initgroups`'s answer: the name, then the group IDs,
/// separated by blanks.
#[must_use]
pub fn parse_initgroups(out: &[u8], name: &str) -> Option<Vec<u32>> {
    let mut words = one_line(out)?
        .split(|&b| b == b' ' || b == b'\t')
        .filter(|w| !w.is_empty());
    if words.next()? != name.as_bytes() {
        return None;
    }
    words.map(id).collect()
}

/// The user named `name`; `Ok(None)` if there is none.
pub fn passwd_by_name(name: &str) -> Result<Option<Passwd>, LookupError> {
    if name.is_empty() || getent_reads_number(name) {
        return Err(LookupError::NotAName);
    }
    match getent("passwd", OsStr::new(name))? {
        Some(out) => parse_passwd(&out).map(Some).ok_or(LookupError::Garbled),
        None => Ok(None),
    }
}

/// The user with ID `uid`; `Ok(None)` if there is none.
pub fn passwd_by_uid(uid: u32) -> Result<Option<Passwd>, LookupError> {
    match getent("passwd", OsStr::new(&uid.to_string()))? {
        Some(out) => match parse_passwd(&out) {
            Some(p) if p.uid == uid => Ok(Some(p)),
            _ => Err(LookupError::Garbled),
        },
        None => Ok(None),
    }
}

/// The ID of the group named `name`; `Ok(None)` if there is none.
pub fn group_by_name(name: &str) -> Result<Option<u32>, LookupError> {
    if name.is_empty() || getent_reads_number(name) {
        return Err(LookupError::NotAName);
    }
    match getent("group", OsStr::new(name))? {
        Some(out) => parse_group(&out).map(Some).ok_or(LookupError::Garbled),
        None => Ok(None),
    }
}

/// The groups the group database lists user `name` in (what `initgroups`
/// adds to the user's primary group), in the database's order.
pub fn initgroups(name: &str) -> Result<Vec<u32>, LookupError> {
    match getent("initgroups", OsStr::new(name))? {
        Some(out) => parse_initgroups(&out, name).ok_or(LookupError::Garbled),
        // A user that is in no group's member list: glibc's getent still
        // answers with the name alone; another getent may not.
        None => Ok(Vec::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwd_lines_parse_strictly() {
        let root = parse_passwd(b"root:x:0:0:root:/root:/bin/bash\n").unwrap();
        assert_eq!(root.name, "root");
        assert_eq!((root.uid, root.gid), (0, 0));
        assert_eq!(root.dir, "/root");
        for bad in [
            &b"root:x:0:0:root:/root:/bin/bash"[..],
            b"root:x:0:0:root:/root\n",
            b"root:x:0:0:root:/root:/bin/bash:extra\n",
            b":x:0:0:root:/root:/bin/bash\n",
            b"root:x::0:root:/root:/bin/bash\n",
            b"root:x:-1:0:root:/root:/bin/bash\n",
            b"root:x:+1:0:root:/root:/bin/bash\n",
            b"root:x:4294967296:0:root:/root:/bin/bash\n",
            b"root:x:0:0:root:/root:/bin/bash\nroot:x:0:0:root:/root:/bin/bash\n",
            b"\n",
            b"",
        ] {
            assert_eq!(parse_passwd(bad), None, "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn group_and_initgroups_lines() {
        assert_eq!(parse_group(b"nogroup:x:65534:\n"), Some(65534));
        assert_eq!(parse_group(b"adm:x:4:syslog,me\n"), Some(4));
        assert_eq!(parse_group(b"adm:x:4\n"), None);
        assert_eq!(parse_group(b"adm:x:four:\n"), None);
        assert_eq!(
            parse_initgroups(b"me                    4 24 27\n", "me"),
            Some(vec![4, 24, 27])
        );
        assert_eq!(
            parse_initgroups(b"me                   \n", "me"),
            Some(vec![])
        );
        assert_eq!(parse_initgroups(b"you 4\n", "me"), None);
        assert_eq!(parse_initgroups(b"me 4 x\n", "me"), None);
    }

    #[test]
    fn keys_getent_would_read_as_numbers_are_not_names() {
        for key in ["0", " 0", "-1", "+5", "4294967296", "007"] {
            assert!(getent_reads_number(key), "{key}");
            assert_eq!(passwd_by_name(key), Err(LookupError::NotAName), "{key}");
            assert_eq!(group_by_name(key), Err(LookupError::NotAName), "{key}");
        }
        for key in ["root", "1abc", "a1", "-", "+"] {
            assert!(!getent_reads_number(key), "{key}");
        }
    }

    #[test]
    fn the_real_databases() {
        let root = passwd_by_name("root").unwrap().unwrap();
        assert_eq!((root.uid, root.gid), (0, 0));
        assert_eq!(passwd_by_uid(0).unwrap().unwrap().name, "root");
        assert_eq!(passwd_by_name("no-such-user-hupkit").unwrap(), None);
        assert_eq!(passwd_by_uid(54321).unwrap(), None);
        assert_eq!(group_by_name("nogroup").unwrap(), Some(65534));
        assert_eq!(group_by_name("no-such-group-hupkit").unwrap(), None);
        assert!(initgroups("nobody").is_ok());
    }
}
