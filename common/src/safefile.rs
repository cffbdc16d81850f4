//! Files that others rely on (pidfiles, identity records, locks), written safely.
//!
//! A privileged tool that writes a file at a path a user chose, or in a directory
//! others can write to, must not be tricked into writing somewhere else:
//!
//! - the path must not be a symbolic link, and must be a regular file if it exists;
//! - in a world-writable directory it must not belong to another user, and a
//!   world-writable directory without the sticky bit is refused outright (anyone
//!   could swap the file later);
//! - new contents are written to a temporary file in the same directory
//!   (`O_CREAT|O_EXCL|O_NOFOLLOW|O_CLOEXEC`), given their mode with `fchmod`
//!   (whatever the umask), then `rename`d into place, so readers see the old file
//!   or the new one, never a half-written one, and a symlink planted at the path
//!   is replaced, never followed.

use std::ffi::OsString;
use std::fmt;
use std::fs::File;
use std::io::Write;
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::libc;
use nix::sys::stat::{Mode, fchmod};

/// Why a file operation was refused or failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileError {
    /// The path is unsafe to write; the text says why.
    Refused(&'static str),
    /// The path is unsafe, for a reason that names a component of it.
    Unsafe(String),
    /// A system call failed.
    Sys(Errno),
}

impl fmt::Display for FileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FileError::Refused(why) => f.write_str(why),
            FileError::Unsafe(why) => f.write_str(why),
            FileError::Sys(errno) => f.write_str(&crate::diag::strerror(*errno)),
        }
    }
}

pub(crate) fn sys(e: &std::io::Error) -> FileError {
    FileError::Sys(e.raw_os_error().map_or(Errno::EIO, Errno::from_raw))
}

fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Checks that `path` may be (over)written: see the module documentation.
pub fn check_target(path: &Path) -> Result<(), FileError> {
    let dir = std::fs::metadata(parent(path)).map_err(|e| sys(&e))?;
    let world_writable = dir.mode() & 0o002 != 0;
    if world_writable && dir.mode() & 0o1000 == 0 {
        return Err(FileError::Refused(
            "its directory is world-writable without the sticky bit",
        ));
    }
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_symlink() => {
            Err(FileError::Refused("it is a symbolic link"))
        }
        Ok(meta) if !meta.is_file() => Err(FileError::Refused("it is not a regular file")),
        Ok(meta) if world_writable && meta.uid() != nix::unistd::geteuid().as_raw() => Err(
            FileError::Refused("it belongs to another user in a world-writable directory"),
        ),
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(sys(&e)),
    }
}

fn temp_name(path: &Path, attempt: u32) -> PathBuf {
    let base = path.file_name().map_or(&b"file"[..], |n| n.as_bytes());
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let mut name = OsString::from(".");
    name.push(std::ffi::OsStr::from_bytes(base));
    name.push(format!(".{}.{nanos:x}{attempt}", std::process::id()));
    parent(path).join(name)
}

/// Replaces `path` with `contents`, mode `mode`, atomically (write, then rename).
pub fn write_atomic(path: &Path, contents: &[u8], mode: u32) -> Result<(), FileError> {
    write_atomic_with(path, mode, |file| file.write_all(contents))
}

/// Replaces `path` with what `fill` writes into the temporary file, mode
/// `mode`, atomically; if `fill` fails, the temporary file is removed.
pub fn write_atomic_with(
    path: &Path,
    mode: u32,
    fill: impl FnOnce(&mut File) -> std::io::Result<()>,
) -> Result<(), FileError> {
    check_target(path)?;
    let mut attempt = 0;
    let (tmp, mut file) = loop {
        let tmp = temp_name(path, attempt);
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&tmp)
        {
            Ok(f) => break (tmp, f),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && attempt < 100 => {
                attempt += 1;
            }
            Err(e) => return Err(sys(&e)),
        }
    };
    let written = fill(&mut file)
        .map_err(|e| sys(&e))
        .and_then(|()| fchmod(file.as_fd(), Mode::from_bits_truncate(mode)).map_err(FileError::Sys))
        .and_then(|()| std::fs::rename(&tmp, path).map_err(|e| sys(&e)));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

/// Opens (creating, mode `mode`) a file to lock, after [`check_target`]; never
/// follows a symlink. The file is close-on-exec.
pub fn open_lock(path: &Path, mode: u32) -> Result<File, FileError> {
    check_target(path)?;
    let existed = path.exists();
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| sys(&e))?;
    if !existed {
        fchmod(file.as_fd(), Mode::from_bits_truncate(mode)).map_err(FileError::Sys)?;
    }
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{PermissionsExt, symlink};

    #[test]
    fn atomic_write_sets_mode_and_replaces_symlink_never_follows() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.pid");
        write_atomic(&p, b"1\n", 0o644).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"1\n");
        assert_eq!(std::fs::metadata(&p).unwrap().mode() & 0o777, 0o644);
        write_atomic(&p, b"2\n", 0o644).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"2\n");

        let target = dir.path().join("target");
        std::fs::write(&target, "keep").unwrap();
        let link = dir.path().join("link.pid");
        symlink(&target, &link).unwrap();
        assert_eq!(
            write_atomic(&link, b"3\n", 0o644),
            Err(FileError::Refused("it is a symbolic link"))
        );
        assert_eq!(std::fs::read(&target).unwrap(), b"keep");
        assert!(open_lock(&link, 0o644).is_err());
        // No temporary files are left behind.
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().flatten().collect();
        assert_eq!(names.len(), 3);
    }

    #[test]
    fn world_writable_directory_rules() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        assert!(matches!(
            write_atomic(&dir.path().join("a"), b"", 0o644),
            Err(FileError::Refused(_))
        ));
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o1777)).unwrap();
        write_atomic(&dir.path().join("a"), b"", 0o644).unwrap();
        assert!(check_target(&dir.path().join("dir-missing/x")).is_err());
    }
}
