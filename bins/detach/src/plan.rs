//! Everything the daemon needs, computed before the first fork.
//!
//! Between `fork` and `exec` only async-signal-safe system calls are allowed, so
//! every allocation, every lookup (user and group databases, PATH search) and
//! every file the daemon inherits is prepared here, in the caller: the forked
//! children only move descriptors, change attributes and call `execve` with the
//! pointer arrays built here. It also means most mistakes (a missing command, an
//! unknown user, an unwritable log) are reported before anything is started.

use std::ffi::{CString, OsStr, OsString};
use std::fs::OpenOptions;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use hupkit_common::exit;
use hupkit_common::nss::{self, LookupError};
use hupkit_common::quote::quote;
use hupkit_common::safefile::FileError;
use hupkit_common::safepath::{self, Purpose};
use hupkit_common::{Context, Error, Result};
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::libc;
use nix::unistd::{Gid, Uid};

use crate::cli::Cli;

/// The identity the daemon runs as.
#[derive(Debug)]
pub struct Creds {
    /// The name shown in messages.
    pub name: String,
    /// User ID.
    pub uid: Uid,
    /// Group ID.
    pub gid: Gid,
    /// Supplementary groups, in `setgroups` form.
    pub groups: Vec<libc::gid_t>,
    /// The home directory of the user's entry, if it has one (`HOME`).
    pub home: Option<OsString>,
}

/// A null-terminated array of C strings for `execve`, with its storage.
#[derive(Debug)]
pub struct CArray {
    strings: Vec<CString>,
    ptrs: Vec<*const libc::c_char>,
}

impl CArray {
    fn new(strings: Vec<CString>) -> CArray {
        let mut ptrs: Vec<*const libc::c_char> = strings.iter().map(|s| s.as_ptr()).collect();
        ptrs.push(std::ptr::null());
        CArray { strings, ptrs }
    }

    /// The `char *const[]` for `execve`, valid while `self` lives.
    #[must_use]
    pub fn as_ptr(&self) -> *const *const libc::c_char {
        self.ptrs.as_ptr()
    }

    /// The strings.
    #[must_use]
    pub fn strings(&self) -> &[CString] {
        &self.strings
    }
}

/// The prepared daemon.
#[derive(Debug)]
pub struct Plan {
    /// The program to `execve`, resolved (absolute, or relative to `/` never).
    pub program: CString,
    /// Its argv.
    pub argv: CArray,
    /// argv for `/bin/sh` if the program turns out to be a script without `#!`.
    pub sh_argv: CArray,
    /// The environment.
    pub envp: CArray,
    /// The daemon's working directory (absolute).
    pub chdir: CString,
    /// The daemon's umask, if asked.
    pub umask: Option<libc::mode_t>,
    /// Whom to run as, if asked.
    pub creds: Option<Creds>,
    /// Standard input: `/dev/null`, read-only.
    pub stdin: OwnedFd,
    /// Standard output.
    pub stdout: OwnedFd,
    /// Standard error (possibly a duplicate of `stdout`'s open file).
    pub stderr: OwnedFd,
    /// The pidfile, absolute.
    pub pidfile: Option<PathBuf>,
    /// The lock file, absolute.
    pub lock: Option<PathBuf>,
    /// The command as the user gave it, for messages.
    pub command: Vec<OsString>,
    /// `--scope`: the gate the daemon waits at before it execs, until the
    /// caller has moved it: the pipe's read end, and the number of its write
    /// end (which the daemon closes, so that the caller's close is an EOF).
    pub gate: Option<(OwnedFd, std::os::fd::RawFd)>,
    /// `--journal` or `--syslog`.
    pub logging: Option<crate::logging::Logging>,
}

fn cstring(bytes: &[u8], what: &str) -> Result<CString> {
    CString::new(bytes)
        .map_err(|_| Error::usage(format!("{what} contains a NUL byte"), exit::CANCELED))
}

/// `path` made absolute against `cwd`, without touching the file system.
#[must_use]
pub fn absolute(cwd: &Path, path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        cwd.join(path)
    }
}

/// Parses `--umask` (octal, at most 0777).
pub fn parse_umask(text: &str) -> Result<libc::mode_t> {
    libc::mode_t::from_str_radix(text, 8)
        .ok()
        .filter(|m| *m <= 0o777 && !text.is_empty())
        .ok_or_else(|| {
            Error::usage(
                format!("invalid umask {}", quote(OsStr::new(text))),
                exit::CANCELED,
            )
        })
}

/// Resolves `USER[:GROUP]` (names or numeric IDs) and the user's groups.
///
/// Through `getent` ([`hupkit_common::nss`]), never this process's own libc:
/// detach is linked static, and static glibc cannot load the name service
/// modules (LDAP, SSSD, extrausers) reliably.
pub fn parse_user(spec: &str) -> Result<Creds> {
    let (user, group) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let fail = |what: String| Error::failed(what, exit::CANCELED);
    let cannot = |what: &str, name: &str, e: &LookupError| {
        fail(format!(
            "cannot look up {what} {}: {e}",
            quote(OsStr::new(name))
        ))
    };
    if user.is_empty() {
        return Err(fail(format!("invalid user {}", quote(OsStr::new(spec)))));
    }
    let entry = match user.parse::<u32>() {
        Ok(id) => nss::passwd_by_uid(id),
        Err(_) => nss::passwd_by_name(user),
    };
    let entry = match entry {
        Ok(entry) => entry,
        // A key getent would read as a number ("4294967296", "-1") names no user.
        Err(LookupError::NotAName) => None,
        Err(e) => return Err(cannot("user", user, &e)),
    };
    let uid = match (&entry, user.parse::<u32>()) {
        (Some(e), _) => e.uid,
        (None, Ok(id)) => id,
        (None, Err(_)) => return Err(fail(format!("unknown user {}", quote(OsStr::new(user))))),
    };
    let gid = match group {
        Some("") => {
            return Err(fail(format!(
                "invalid group in {}",
                quote(OsStr::new(spec))
            )));
        }
        Some(g) => match g.parse::<u32>() {
            Ok(id) => id,
            Err(_) => match nss::group_by_name(g) {
                Ok(Some(id)) => id,
                Ok(None) | Err(LookupError::NotAName) => {
                    return Err(fail(format!("unknown group {}", quote(OsStr::new(g)))));
                }
                Err(e) => return Err(cannot("group", g, &e)),
            },
        },
        None => match &entry {
            Some(e) => e.gid,
            None => {
                return Err(fail(format!(
                    "user {} has no entry in the user database: give a group, as {}",
                    quote(OsStr::new(user)),
                    quote(OsStr::new(&format!("{user}:GROUP")))
                )));
            }
        },
    };
    // The user's supplementary groups, plus the chosen group (initgroups semantics).
    let mut groups: Vec<libc::gid_t> = match &entry {
        Some(e) => nss::initgroups(&e.name).map_err(|err| {
            fail(format!(
                "cannot list the groups of {}: {err}",
                quote(OsStr::new(&e.name))
            ))
        })?,
        None => Vec::new(),
    };
    groups.push(gid);
    groups.sort_unstable();
    groups.dedup();
    Ok(Creds {
        name: entry
            .as_ref()
            .map_or_else(|| user.to_string(), |e| e.name.clone()),
        uid: Uid::from_raw(uid),
        gid: Gid::from_raw(gid),
        groups,
        home: entry.map(|e| e.dir),
    })
}

/// Finds `name` the way `execvp` would, in `path` (`None`: glibc's default),
/// before the daemon changes directory: relative names and PATH entries are taken
/// against the caller's `cwd`. Returns the program path, or the errno `execvp`
/// would have failed with.
pub fn search(
    name: &OsStr,
    path: Option<&OsStr>,
    cwd: &Path,
) -> std::result::Result<PathBuf, Errno> {
    if name.is_empty() {
        return Err(Errno::ENOENT);
    }
    if name.as_bytes().contains(&b'/') {
        return Ok(absolute(cwd, Path::new(name)));
    }
    let path = path.map_or(&b"/bin:/usr/bin"[..], OsStrExt::as_bytes);
    let mut seen = None;
    for dir in path.split(|&b| b == b':') {
        let dir = if dir.is_empty() {
            cwd.to_path_buf()
        } else {
            absolute(cwd, Path::new(OsStr::from_bytes(dir)))
        };
        let candidate = dir.join(name);
        match std::fs::metadata(&candidate) {
            Ok(m) if m.is_file() && m.permissions().mode() & 0o111 != 0 => return Ok(candidate),
            Ok(_) => seen = Some(Errno::EACCES),
            // execvp reports the last error other than "not found" (too long, not a directory...).
            Err(e) => match e.raw_os_error().map(Errno::from_raw) {
                Some(Errno::ENOENT) | None => {}
                Some(other) => seen = seen.or(Some(other)),
            },
        }
    }
    Err(seen.unwrap_or(Errno::ENOENT))
}

/// Opens an output file under `safepath`'s rules: a symbolic link is followed
/// only if it belongs to root or to the opener, and in a directory that others
/// can write to the file must be the opener's (or root's).
fn open_output(path: &Path, append: bool) -> Result<OwnedFd> {
    // Always O_APPEND, so that several writers (stdout and stderr, the daemon's
    // children) never overwrite each other; without --append, O_TRUNC as well,
    // so it starts empty.
    let mut flags = OFlag::O_APPEND | OFlag::O_NONBLOCK;
    if !append {
        flags |= OFlag::O_TRUNC;
    }
    safepath::locate(path, Purpose::Output)
        .and_then(|file| file.open_write(flags))
        .map_err(|e| match e {
            FileError::Sys(errno) => Error::sys(
                format!("cannot open {}", quote(path.as_os_str())),
                errno,
                exit::CANCELED,
            ),
            refused => Error::failed(
                format!(
                    "refusing output file {}: {refused}",
                    quote(path.as_os_str())
                ),
                exit::CANCELED,
            ),
        })
}

/// Runs `f` in a thread of its own that has switched to `creds` with raw
/// system calls, which change the credentials of the calling thread only
/// (glibc's wrappers would change every thread's): files `f` opens are opened
/// as that user, with the kernel's own permission checks. The thread is joined
/// before this returns, so detach is single-threaded again when it forks.
fn as_user<T: Send>(creds: &Creds, f: impl FnOnce() -> Result<T> + Send) -> Result<T> {
    let switch = || -> std::result::Result<(), Errno> {
        // SAFETY: setgroups reads `groups.len()` gids from a live vector; setresgid
        // and setresuid take integers. Raw syscalls: this thread only.
        unsafe {
            if libc::syscall(
                libc::SYS_setgroups,
                creds.groups.len(),
                creds.groups.as_ptr(),
            ) < 0
            {
                return Err(Errno::last());
            }
            let g = creds.gid.as_raw();
            if libc::syscall(libc::SYS_setresgid, g, g, g) < 0 {
                return Err(Errno::last());
            }
            let u = creds.uid.as_raw();
            if libc::syscall(libc::SYS_setresuid, u, u, u) < 0 {
                return Err(Errno::last());
            }
        }
        Ok(())
    };
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                switch().map_err(|errno| {
                    Error::sys(
                        format!("cannot switch to user {}", quote(OsStr::new(&creds.name))),
                        errno,
                        exit::CANCELED,
                    )
                })?;
                f()
            })
            .join()
            .unwrap_or_else(|_| {
                Err(Error::failed(
                    "cannot open the output files as the user",
                    exit::CANCELED,
                ))
            })
    })
}

/// `/dev/null`, opened for reading (standard input) or writing (an output not
/// asked for), as `access` says.
fn dev_null(access: &mut OpenOptions) -> Result<OwnedFd> {
    let f = access
        .custom_flags(libc::O_CLOEXEC | libc::O_NOCTTY)
        .open("/dev/null")
        .context(exit::CANCELED, || "cannot open '/dev/null'")?;
    Ok(f.into())
}

/// The daemon's environment: the caller's, the user's identity, `--env`,
/// `NOTIFY_SOCKET` (the caller's own is never passed on).
fn environment(
    cli: &Cli,
    creds: Option<&Creds>,
    notify_socket: Option<&Path>,
) -> Result<Vec<(OsString, OsString)>> {
    let mut env: Vec<(OsString, OsString)> = std::env::vars_os()
        .filter(|(k, _)| k != "NOTIFY_SOCKET")
        .collect();
    let mut set = |k: &str, v: OsString| {
        env.retain(|(name, _)| name != k);
        env.push((k.into(), v));
    };
    if let Some(c) = creds {
        if let Some(home) = &c.home {
            set("HOME", home.clone());
        }
        set("USER", c.name.clone().into());
        set("LOGNAME", c.name.clone().into());
    }
    if let Some(sock) = notify_socket {
        set("NOTIFY_SOCKET", sock.as_os_str().to_os_string());
    }
    for item in &cli.env {
        let bytes = item.as_bytes();
        match bytes.iter().position(|&b| b == b'=') {
            Some(eq) if eq > 0 => {
                let name = String::from_utf8_lossy(&bytes[..eq]).into_owned();
                set(&name, OsStr::from_bytes(&bytes[eq + 1..]).to_os_string());
            }
            _ => {
                return Err(Error::usage(
                    format!("invalid --env {}: expected NAME=VALUE", quote(item)),
                    exit::CANCELED,
                ));
            }
        }
    }
    Ok(env)
}

/// Standard output and error: the files asked for (one shared open file when
/// they are the same path), else `/dev/null`.
fn outputs(cli: &Cli, cwd: &Path) -> Result<(OwnedFd, OwnedFd)> {
    let stdout_path = cli.stdout.as_deref().map(|p| absolute(cwd, p));
    let stderr_path = cli.stderr.as_deref().map(|p| absolute(cwd, p));
    let stdout = match &stdout_path {
        Some(p) => open_output(p, cli.append)?,
        None => dev_null(OpenOptions::new().write(true))?,
    };
    let stderr = match (&stderr_path, &stdout_path) {
        (Some(e), Some(o)) if e == o => stdout
            .try_clone()
            .context(exit::CANCELED, || "cannot duplicate the output descriptor")?,
        (Some(e), _) => open_output(e, cli.append)?,
        (None, _) => dev_null(OpenOptions::new().write(true))?,
    };
    Ok((stdout, stderr))
}

impl Plan {
    /// Prepares the daemon described by `cli`, from the caller's directory
    /// `cwd`, to run as `creds` (`--user`, resolved by [`parse_user`]).
    pub fn new(
        cli: &Cli,
        cwd: &Path,
        creds: Option<Creds>,
        notify_socket: Option<&Path>,
    ) -> Result<Plan> {
        if creds.is_some() && !nix::unistd::geteuid().is_root() {
            return Err(Error::failed(
                "--user needs root privileges",
                exit::CANCELED,
            ));
        }
        let umask = cli.umask.as_deref().map(parse_umask).transpose()?;

        let env = environment(cli, creds.as_ref(), notify_socket)?;
        let path_var = env
            .iter()
            .find(|(k, _)| k == "PATH")
            .map(|(_, v)| v.clone());

        let name = cli.command.first().cloned().unwrap_or_default();
        let program = search(&name, path_var.as_deref(), cwd).map_err(|errno| {
            Error::sys(
                format!("failed to run command {}", quote(&name)),
                errno,
                exit::Status::for_exec_error(errno),
            )
        })?;
        let program = cstring(program.as_os_str().as_bytes(), "the command")?;
        let argv: Vec<CString> = cli
            .command
            .iter()
            .map(|a| cstring(a.as_bytes(), "an argument"))
            .collect::<Result<_>>()?;
        let mut sh_argv = vec![CString::from(c"/bin/sh"), program.clone()];
        sh_argv.extend(argv.iter().skip(1).cloned());
        let envp: Vec<CString> = env
            .iter()
            .map(|(k, v)| {
                let mut kv = k.clone().into_vec();
                kv.push(b'=');
                kv.extend_from_slice(v.as_bytes());
                cstring(&kv, "the environment")
            })
            .collect::<Result<_>>()?;

        let chdir = absolute(cwd, cli.chdir.as_deref().unwrap_or(Path::new("/")));
        let chdir = cstring(chdir.as_os_str().as_bytes(), "the directory")?;

        // With --user, the output files are opened as that user: the daemon is
        // never handed a file its user could not have opened itself.
        let (mut stdout, mut stderr) = match &creds {
            Some(c) => as_user(c, || outputs(cli, cwd))?,
            None => outputs(cli, cwd)?,
        };
        let logging = crate::logging::Logging::new(cli, &mut stdout, &mut stderr)?;

        let pidfile = cli.pidfile.as_deref().map(|p| absolute(cwd, p));
        let lock = cli.lock.as_deref().map(|p| absolute(cwd, p));

        Ok(Plan {
            program,
            argv: CArray::new(argv),
            sh_argv: CArray::new(sh_argv),
            envp: CArray::new(envp),
            chdir,
            umask,
            creds,
            stdin: dev_null(OpenOptions::new().read(true))?,
            stdout,
            stderr,
            pidfile,
            lock,
            command: cli.command.clone(),
            gate: None,
            logging,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn umask_parsing() {
        assert_eq!(parse_umask("022").unwrap(), 0o22);
        assert_eq!(parse_umask("0").unwrap(), 0);
        assert_eq!(parse_umask("777").unwrap(), 0o777);
        for bad in ["", "8", "1000", "-1", "abc", "0x12"] {
            assert!(parse_umask(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn search_like_execvp() {
        let cwd = Path::new("/tmp");
        assert_eq!(
            search(OsStr::new("sh"), Some(OsStr::new("/nonexistent:/bin")), cwd),
            Ok(PathBuf::from("/bin/sh"))
        );
        assert_eq!(
            search(OsStr::new("./x"), None, cwd),
            Ok(PathBuf::from("/tmp/./x"))
        );
        assert_eq!(
            search(OsStr::new("no-such-cmd-hupkit"), None, cwd),
            Err(Errno::ENOENT)
        );
        assert_eq!(search(OsStr::new(""), None, cwd), Err(Errno::ENOENT));
        assert_eq!(
            search(OsStr::new("passwd"), Some(OsStr::new("/etc")), cwd),
            Err(Errno::EACCES)
        );
    }

    #[test]
    fn user_specs() {
        let root = parse_user("root").unwrap();
        assert_eq!(root.uid.as_raw(), 0);
        assert_eq!(root.gid.as_raw(), 0);
        let n = parse_user("nobody:nogroup").unwrap();
        assert_eq!(n.uid.as_raw(), 65534);
        assert_eq!(n.groups, vec![65534]);
        assert_eq!(parse_user("0:0").unwrap().uid.as_raw(), 0);
        assert!(parse_user("no-such-user-hupkit").is_err());
        assert!(parse_user("root:no-such-group-hupkit").is_err());
        assert!(parse_user("").is_err());
        assert!(parse_user("root:").is_err());
        assert!(parse_user("54321").is_err());
        assert_eq!(parse_user("54321:54321").unwrap().groups, vec![54321]);
    }
}
