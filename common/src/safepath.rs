//! Reaching a file through a path that other users may have tampered with.
//!
//! A privileged tool that reads or writes a file at a path it was given (a
//! pidfile, a lock, a log) must end up at the file the path names for *it*,
//! not at one another user arranged. [`locate`] walks the path one component at
//! a time with `openat(O_PATH | O_NOFOLLOW)`, checks each step on the opened
//! descriptor itself, and hands back the last directory as an open descriptor
//! plus the final name: every later read, write, rename, unlink or lock happens
//! relative to that descriptor, so nothing can be swapped between the check and
//! the use. The rules, at every component:
//!
//! - a symbolic link is followed only if it belongs to root or to the caller
//!   (the kernel's `protected_symlinks` rule, made unconditional), so that
//!   `/var/run -> /run` keeps working while `/tmp/d -> /root/dir`, planted by
//!   another user, is refused; at most 40 links, as the kernel allows;
//! - a directory must belong to root or to the caller (its owner could change
//!   its mode at any time);
//! - a directory that another user can write to (write permission for others,
//!   or for a group other than root's and the caller's) is refused unless it is
//!   sticky; through a sticky one, the entry taken must belong to root or to the
//!   caller (another user can neither rename nor replace it there);
//! - for a [`Purpose::Record`] (pidfile, identity record, lock), the final file
//!   is never a symbolic link, and when it exists it is a regular file owned by
//!   root or the caller that no other user can write: what start-stop-daemon
//!   asks of a pidfile when it runs as root, for every caller; and it has no
//!   other hard link;
//! - in a shared directory, a regular file with other hard links is refused
//!   whatever it is for (another user can link a file of root's there where
//!   `protected_hardlinks` is off), and an output file is truncated only
//!   after it passed the checks;
//! - for a [`Purpose::Output`] (a daemon's log) a final symbolic link is
//!   followed under the rule above, and the file may be anything (`/dev/null`,
//!   a terminal).
//!
//! "The caller" is the effective user and group of the calling thread: a
//! thread that switched credentials (raw `setresuid`, which changes only that
//! thread) walks and opens as that user, with the kernel's own permission
//! checks.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, openat, readlinkat, renameat};
use nix::sys::stat::{FileStat, Mode, SFlag, fchmod, fstat, fstatat};
use nix::unistd::{UnlinkatFlags, unlinkat};

use crate::quote::quote;
use crate::safefile::FileError;

/// The most symbolic links one walk follows (the kernel's limit).
const MAX_LINKS: u32 = 40;

/// What the file at the end of the path is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// A pidfile, identity record or lock: never a symbolic link; a regular
    /// file of root or the caller that nobody else can write.
    Record,
    /// An output file: a trusted final symbolic link is followed, any type.
    Output,
}

/// Who the walk trusts: root and the calling thread's effective user.
#[derive(Debug, Clone, Copy)]
struct Caller {
    uid: u32,
    gid: u32,
}

impl Caller {
    fn now() -> Caller {
        Caller {
            uid: nix::unistd::geteuid().as_raw(),
            gid: nix::unistd::getegid().as_raw(),
        }
    }

    fn trusts(self, uid: u32) -> bool {
        uid == 0 || uid == self.uid
    }

    /// Whether a user other than root and the caller may write to `st`
    /// through its mode bits.
    fn others_can_write(self, st: &FileStat) -> bool {
        let mode = st.st_mode;
        mode & 0o002 != 0 || (mode & 0o020 != 0 && st.st_gid != 0 && st.st_gid != self.gid)
    }
}

fn is(st: &FileStat, kind: SFlag) -> bool {
    st.st_mode & SFlag::S_IFMT.bits() == kind.bits()
}

fn refused(why: String) -> FileError {
    FileError::Unsafe(why)
}

/// A located file: its directory, checked and open, and its name there.
#[derive(Debug)]
pub struct Located {
    dir: OwnedFd,
    name: OsString,
    /// The directory is writable by other users (and sticky): the entry must
    /// belong to root or the caller.
    shared: bool,
    purpose: Purpose,
}

/// Walks `path` under the rules of the module documentation. A relative path
/// is taken from the current directory, whose own path is walked too. The final file need not exist.
pub fn locate(path: &Path, purpose: Purpose) -> Result<Located, FileError> {
    let me = Caller::now();
    // The directories walked so far, each with its path (for messages) and
    // whether it is shared; `..` goes back one.
    let mut stack: Vec<(OwnedFd, PathBuf, bool)> = vec![(open_dir()?, PathBuf::from("/"), false)];
    let mut rest: Vec<OsString> = Vec::new();
    if path.is_relative() {
        let cwd = std::env::current_dir().map_err(|e| crate::safefile::sys(&e))?;
        push_components(&mut rest, &cwd.join(path));
    } else {
        push_components(&mut rest, path);
    }
    let mut links = 0;
    while let Some(name) = rest.pop() {
        if name == ".." {
            if stack.len() > 1 {
                stack.pop();
            }
            continue;
        }
        let last = rest.is_empty();
        let Some((dir, at, shared)) = stack.last() else {
            return Err(FileError::Sys(Errno::EINVAL));
        };
        let shown = at.join(&name);
        let fd = match openat(
            dir,
            name.as_os_str(),
            OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        ) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) if last => return Located::new(dir, name, *shared, purpose),
            Err(e) => return Err(FileError::Sys(e)),
        };
        let st = fstat(&fd).map_err(FileError::Sys)?;
        let link = is(&st, SFlag::S_IFLNK);
        if last && link && purpose == Purpose::Record {
            return Err(FileError::Refused("it is a symbolic link"));
        }
        if last && !link {
            // The final file: checked by the operation, on what it opens.
            return Located::new(dir, name, *shared, purpose);
        }
        if link && !me.trusts(st.st_uid) {
            return Err(refused(format!(
                "{} is a symbolic link of another user",
                quote(shown.as_os_str())
            )));
        }
        if *shared && !me.trusts(st.st_uid) {
            return Err(refused(format!(
                "{} belongs to another user, in a directory others can write to",
                quote(shown.as_os_str())
            )));
        }
        if link {
            links += 1;
            if links > MAX_LINKS {
                return Err(FileError::Sys(Errno::ELOOP));
            }
            let target = readlinkat(&fd, "").map_err(FileError::Sys)?;
            let target = Path::new(&target);
            if target.is_absolute() {
                stack.clear();
                stack.push((open_dir()?, PathBuf::from("/"), false));
            }
            push_components(&mut rest, target);
            continue;
        }
        if !is(&st, SFlag::S_IFDIR) {
            return Err(FileError::Sys(Errno::ENOTDIR));
        }
        if !me.trusts(st.st_uid) {
            return Err(refused(format!(
                "directory {} belongs to another user",
                quote(shown.as_os_str())
            )));
        }
        let shared = me.others_can_write(&st);
        if shared && st.st_mode & 0o1000 == 0 {
            return Err(refused(format!(
                "directory {} is writable by other users and not sticky",
                quote(shown.as_os_str())
            )));
        }
        stack.push((fd, shown, shared));
    }
    // The path names a directory ("/", "x/.."): its "." is the final file.
    let Some((dir, _, shared)) = stack.pop() else {
        return Err(FileError::Sys(Errno::EINVAL));
    };
    Ok(Located {
        dir,
        name: OsString::from("."),
        shared,
        purpose,
    })
}

/// The root directory.
fn open_dir() -> Result<OwnedFd, FileError> {
    openat(
        nix::fcntl::AT_FDCWD,
        "/",
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(FileError::Sys)
}

/// Pushes `path`'s components in reverse order (the next one is popped first).
fn push_components(rest: &mut Vec<OsString>, path: &Path) {
    let start = rest.len();
    for c in path.components() {
        match c {
            Component::Normal(n) => rest.push(n.to_os_string()),
            Component::ParentDir => rest.push(OsString::from("..")),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    rest[start..].reverse();
}

/// Creates the directory `path` and its missing parents (`mode`, under the
/// umask), each with `mkdirat` in a parent already reached by [`locate`]:
/// never through another user's link, in another user's directory or in a
/// shared one that is not sticky (`create_dir_all` would follow any link).
/// An existing directory (or a trusted link to one) is fine.
pub fn create_dirs(path: &Path, mode: u32) -> Result<(), FileError> {
    let mkdir = |located: Located| match nix::sys::stat::mkdirat(
        &located.dir,
        located.name.as_os_str(),
        Mode::from_bits_truncate(mode),
    ) {
        Ok(()) | Err(Errno::EEXIST) => Ok(()),
        Err(e) => Err(FileError::Sys(e)),
    };
    match locate(path, Purpose::Output) {
        Ok(located) => mkdir(located),
        Err(FileError::Sys(Errno::ENOENT)) => {
            let parent = path
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .ok_or(FileError::Sys(Errno::ENOENT))?;
            create_dirs(parent, mode)?;
            mkdir(locate(path, Purpose::Output)?)
        }
        Err(e) => Err(e),
    }
}

impl Located {
    fn new(
        dir: &OwnedFd,
        name: OsString,
        shared: bool,
        purpose: Purpose,
    ) -> Result<Located, FileError> {
        Ok(Located {
            dir: dir.try_clone().map_err(|e| crate::safefile::sys(&e))?,
            name,
            shared,
            purpose,
        })
    }

    /// The same directory, another name in it (e.g. `FILE.id` beside `FILE`).
    pub fn sibling(&self, name: &OsStr) -> Result<Located, FileError> {
        Ok(Located {
            dir: self.dir.try_clone().map_err(|e| crate::safefile::sys(&e))?,
            name: name.to_os_string(),
            shared: self.shared,
            purpose: self.purpose,
        })
    }

    /// The final name.
    #[must_use]
    pub fn name(&self) -> &OsStr {
        &self.name
    }

    /// Checks an opened (or existing) final file against the rules.
    fn check(&self, st: &FileStat) -> Result<(), FileError> {
        let me = Caller::now();
        if self.shared && !me.trusts(st.st_uid) {
            return Err(FileError::Refused(
                "it belongs to another user, in a directory others can write to",
            ));
        }
        // A hard link names a file that lives elsewhere too: in a shared
        // directory another user can plant one to a file of root's (the
        // kernel stops them only where `protected_hardlinks` is on), and it
        // passes every owner check. A record is never hard-linked anywhere.
        if is(st, SFlag::S_IFREG)
            && st.st_nlink > 1
            && (self.shared || self.purpose == Purpose::Record)
        {
            return Err(FileError::Refused("it has other hard links"));
        }
        if self.purpose == Purpose::Record {
            if is(st, SFlag::S_IFLNK) {
                return Err(FileError::Refused("it is a symbolic link"));
            }
            if !is(st, SFlag::S_IFREG) {
                return Err(FileError::Refused("it is not a regular file"));
            }
            if !me.trusts(st.st_uid) {
                return Err(FileError::Refused("it belongs to another user"));
            }
            if me.others_can_write(st) {
                return Err(FileError::Refused("other users can write to it"));
            }
        }
        Ok(())
    }

    /// Checks the entry as it is now, if it exists (not followed); true if it does.
    pub fn check_existing(&self) -> Result<bool, FileError> {
        match fstatat(
            &self.dir,
            self.name.as_os_str(),
            AtFlags::AT_SYMLINK_NOFOLLOW,
        ) {
            Ok(st) => self.check(&st).map(|()| true),
            Err(Errno::ENOENT) => Ok(false),
            Err(e) => Err(FileError::Sys(e)),
        }
    }

    fn open(&self, flags: OFlag, mode: u32) -> Result<OwnedFd, FileError> {
        match openat(
            &self.dir,
            self.name.as_os_str(),
            flags | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | OFlag::O_NOCTTY,
            Mode::from_bits_truncate(mode),
        ) {
            Ok(fd) => Ok(fd),
            // O_NOFOLLOW met a symbolic link planted since the walk.
            Err(Errno::ELOOP) => Err(FileError::Refused("it is a symbolic link")),
            Err(e) => Err(FileError::Sys(e)),
        }
    }

    /// Reads the file (at most `limit` bytes); `None` if it does not exist.
    pub fn read(&self, limit: u64) -> Result<Option<Vec<u8>>, FileError> {
        let fd = match self.open(OFlag::O_RDONLY | OFlag::O_NONBLOCK, 0) {
            Ok(fd) => fd,
            Err(FileError::Sys(Errno::ENOENT)) => return Ok(None),
            Err(e) => return Err(e),
        };
        self.check(&fstat(&fd).map_err(FileError::Sys)?)?;
        let mut bytes = Vec::new();
        File::from(fd)
            .take(limit)
            .read_to_end(&mut bytes)
            .map_err(|e| crate::safefile::sys(&e))?;
        Ok(Some(bytes))
    }

    /// Replaces the file with `contents`, mode `mode`, atomically: a new file
    /// (`O_EXCL`) in the same directory, renamed over the name.
    pub fn write_atomic(&self, contents: &[u8], mode: u32) -> Result<(), FileError> {
        self.write_atomic_with(mode, |file| file.write_all(contents))
    }

    /// [`Located::write_atomic`], with the contents written by `fill` into the
    /// temporary file (a large record is streamed, never built whole).
    pub fn write_atomic_with(
        &self,
        mode: u32,
        fill: impl FnOnce(&mut File) -> std::io::Result<()>,
    ) -> Result<(), FileError> {
        self.check_existing()?;
        let tmp = self.temporary(mode, fill)?;
        renameat(&self.dir, tmp.as_os_str(), &self.dir, self.name.as_os_str()).map_err(|e| {
            self.discard(&tmp);
            FileError::Sys(e)
        })
    }

    /// Writes `contents` to a new file of mode `mode` and gives it the name
    /// only if the name is free (`renameat2` with `RENAME_NOREPLACE`): readers
    /// see it appear whole, nothing is replaced, and nothing had to be checked
    /// or removed first. `Ok(false)`, with nothing left behind, if the name is
    /// taken (or the file system cannot rename without replacing): then it is
    /// the caller's to check and replace.
    pub fn write_new(&self, contents: &[u8], mode: u32) -> Result<bool, FileError> {
        let tmp = self.temporary(mode, |file| file.write_all(contents))?;
        match nix::fcntl::renameat2(
            &self.dir,
            tmp.as_os_str(),
            &self.dir,
            self.name.as_os_str(),
            nix::fcntl::RenameFlags::RENAME_NOREPLACE,
        ) {
            Ok(()) => Ok(true),
            Err(e) => {
                self.discard(&tmp);
                match e {
                    Errno::EEXIST | Errno::EINVAL | Errno::ENOSYS => Ok(false),
                    e => Err(FileError::Sys(e)),
                }
            }
        }
    }

    /// A new temporary file (`O_EXCL`) beside the name, filled by `fill` and
    /// given `mode`; its name. On failure nothing is left behind.
    fn temporary(
        &self,
        mode: u32,
        fill: impl FnOnce(&mut File) -> std::io::Result<()>,
    ) -> Result<OsString, FileError> {
        let base = self.name.as_bytes();
        let mut attempt = 0u32;
        let (tmp, fd) = loop {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos());
            let mut tmp = OsString::from(".");
            tmp.push(OsStr::from_bytes(base));
            tmp.push(format!(".{}.{nanos:x}{attempt}", std::process::id()));
            match openat(
                &self.dir,
                tmp.as_os_str(),
                OFlag::O_WRONLY
                    | OFlag::O_CREAT
                    | OFlag::O_EXCL
                    | OFlag::O_NOFOLLOW
                    | OFlag::O_CLOEXEC,
                Mode::from_bits_truncate(0o600),
            ) {
                Ok(fd) => break (tmp, fd),
                Err(Errno::EEXIST) if attempt < 100 => attempt += 1,
                Err(e) => return Err(FileError::Sys(e)),
            }
        };
        let mut file = File::from(fd);
        let written = fill(&mut file)
            .map_err(|e| crate::safefile::sys(&e))
            .and_then(|()| {
                fchmod(file.as_fd(), Mode::from_bits_truncate(mode)).map_err(FileError::Sys)
            });
        match written {
            Ok(()) => Ok(tmp),
            Err(e) => {
                self.discard(&tmp);
                Err(e)
            }
        }
    }

    /// Removes the temporary file `tmp` (best effort: the failure being
    /// reported is the caller's).
    fn discard(&self, tmp: &OsStr) {
        let _ = unlinkat(&self.dir, tmp, UnlinkatFlags::NoRemoveDir);
    }

    /// Removes the file (a missing one is not an error).
    pub fn remove(&self) -> Result<(), FileError> {
        match unlinkat(&self.dir, self.name.as_os_str(), UnlinkatFlags::NoRemoveDir) {
            Ok(()) | Err(Errno::ENOENT) => Ok(()),
            Err(e) => Err(FileError::Sys(e)),
        }
    }

    /// Opens the file to read and write (created with `mode` if missing, an
    /// existing one checked on its descriptor), for a lock.
    pub fn open_lock(&self, mode: u32) -> Result<File, FileError> {
        let created = self.open(OFlag::O_RDWR | OFlag::O_CREAT | OFlag::O_EXCL, 0o600);
        let fd = match created {
            Ok(fd) => {
                fchmod(&fd, Mode::from_bits_truncate(mode)).map_err(FileError::Sys)?;
                return Ok(File::from(fd));
            }
            Err(FileError::Sys(Errno::EEXIST)) => {
                self.open(OFlag::O_RDWR | OFlag::O_NONBLOCK, 0)?
            }
            Err(e) => return Err(e),
        };
        self.check(&fstat(&fd).map_err(FileError::Sys)?)?;
        Ok(File::from(fd))
    }

    /// Opens the file for writing with `flags` (`O_CREAT` with mode 0666 is
    /// added), then checks what was opened. `O_TRUNC` is applied only after
    /// the check (with `ftruncate`, to a regular file), so a refused file is
    /// left as it was.
    pub fn open_write(&self, flags: OFlag) -> Result<OwnedFd, FileError> {
        let truncate = flags.contains(OFlag::O_TRUNC);
        let fd = self.open(
            OFlag::O_WRONLY | OFlag::O_CREAT | (flags - OFlag::O_TRUNC),
            0o666,
        )?;
        let st = fstat(&fd).map_err(FileError::Sys)?;
        self.check(&st)?;
        if truncate && is(&st, SFlag::S_IFREG) {
            nix::unistd::ftruncate(&fd, 0).map_err(FileError::Sys)?;
        }
        Ok(fd)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{PermissionsExt, symlink};

    fn chmod(p: &Path, mode: u32) {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn write_new_takes_only_a_free_name() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        chmod(dir.path(), 0o755);
        let p = dir.path().join("x.pid");
        let l = locate(&p, Purpose::Record).unwrap();
        assert_eq!(l.write_new(b"1\n", 0o644), Ok(true));
        assert_eq!(std::fs::read(&p).unwrap(), b"1\n");
        assert_eq!(std::fs::metadata(&p).unwrap().mode() & 0o777, 0o644);
        assert_eq!(l.write_new(b"2\n", 0o644), Ok(false));
        assert_eq!(std::fs::read(&p).unwrap(), b"1\n");
        // No temporary file is left behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn walks_trusted_links_and_dots() {
        let dir = tempfile::tempdir().unwrap();
        chmod(dir.path(), 0o755);
        let real = dir.path().join("real");
        std::fs::create_dir(&real).unwrap();
        symlink(&real, dir.path().join("link")).unwrap();
        symlink("real", dir.path().join("rel")).unwrap();
        for via in ["link/x.pid", "rel/x.pid", "real/../real/./x.pid"] {
            let p = dir.path().join(via);
            let l = locate(&p, Purpose::Record).unwrap();
            l.write_atomic(b"1\n", 0o644).unwrap();
            assert_eq!(l.read(100).unwrap(), Some(b"1\n".to_vec()), "{via}");
            assert_eq!(std::fs::read(real.join("x.pid")).unwrap(), b"1\n");
            l.remove().unwrap();
            assert!(!real.join("x.pid").exists());
        }
        // A final link: refused for a record, followed for an output.
        std::fs::write(real.join("log"), "").unwrap();
        symlink(real.join("log"), dir.path().join("log")).unwrap();
        assert_eq!(
            locate(&dir.path().join("log"), Purpose::Record)
                .err()
                .unwrap(),
            FileError::Refused("it is a symbolic link")
        );
        let out = locate(&dir.path().join("log"), Purpose::Output).unwrap();
        assert_eq!(out.name(), "log");
        // "/" itself.
        let root = locate(Path::new("/"), Purpose::Output).unwrap();
        assert_eq!(
            root.open_write(OFlag::empty()).err(),
            Some(FileError::Sys(Errno::EISDIR))
        );
    }

    /// A hard link in a shared directory to a file of root's (or the
    /// caller's) elsewhere: another user can plant one wherever
    /// `protected_hardlinks` is off (the kernel's default), and it passes the
    /// owner checks. Nothing is read, locked, truncated or written through it.
    #[test]
    fn hard_links_in_shared_directories_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        chmod(dir.path(), 0o755);
        let private = dir.path().join("private");
        std::fs::create_dir(&private).unwrap();
        chmod(&private, 0o700);
        let secret = private.join("secret");
        std::fs::write(&secret, "secret\n").unwrap();
        chmod(&secret, 0o600);
        let shared = dir.path().join("shared");
        std::fs::create_dir(&shared).unwrap();
        chmod(&shared, 0o1777);
        for name in ["x.lock", "x.pid", "x.log"] {
            std::fs::hard_link(&secret, shared.join(name)).unwrap();
        }
        let refused = Some(FileError::Refused("it has other hard links"));
        let lock = locate(&shared.join("x.lock"), Purpose::Record).unwrap();
        assert_eq!(lock.open_lock(0o644).err(), refused);
        let pid = locate(&shared.join("x.pid"), Purpose::Record).unwrap();
        assert_eq!(pid.read(100).err(), refused);
        let log = locate(&shared.join("x.log"), Purpose::Output).unwrap();
        assert_eq!(
            log.open_write(OFlag::O_APPEND | OFlag::O_TRUNC).err(),
            refused
        );
        assert_eq!(std::fs::read(&secret).unwrap(), b"secret\n");
        // A record is never hard-linked, wherever it is; an output file may be,
        // outside a shared directory.
        std::fs::hard_link(&secret, dir.path().join("y.pid")).unwrap();
        let pid = locate(&dir.path().join("y.pid"), Purpose::Record).unwrap();
        assert_eq!(pid.read(100).err(), refused);
        let log = locate(&dir.path().join("y.pid"), Purpose::Output).unwrap();
        assert!(log.open_write(OFlag::O_APPEND).is_ok());
        assert_eq!(std::fs::read(&secret).unwrap(), b"secret\n");
    }

    #[test]
    fn shared_directories() {
        let dir = tempfile::tempdir().unwrap();
        chmod(dir.path(), 0o777);
        assert!(matches!(
            locate(&dir.path().join("a"), Purpose::Record),
            Err(FileError::Unsafe(_))
        ));
        chmod(dir.path(), 0o1777);
        let l = locate(&dir.path().join("a"), Purpose::Record).unwrap();
        l.write_atomic(b"x", 0o644).unwrap();
        chmod(&dir.path().join("a"), 0o666);
        assert_eq!(
            l.read(10).err(),
            Some(FileError::Refused("other users can write to it"))
        );
        chmod(dir.path(), 0o700);
    }
}
