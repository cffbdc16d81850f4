//! Terminal devices: names from device numbers, as `ps` shows them.
//!
//! `/proc/PID/stat` gives the controlling terminal as a device number (`tty_nr`):
//! major in bits 15-8, minor in bits 7-0 and 31-20. Unix98 pseudo-terminal
//! slaves have majors 136-143, `/dev/pts/N` with N = (major - 136) * 256 + minor;
//! other terminals are named by sysfs (`/sys/dev/char/MAJ:MIN/uevent`, `DEVNAME=`).

use std::path::{Path, PathBuf};

/// Splits a `tty_nr` into (major, minor).
#[must_use]
pub fn split(tty_nr: u64) -> (u64, u64) {
    (
        (tty_nr >> 8) & 0xfff,
        (tty_nr & 0xff) | ((tty_nr >> 12) & 0xfff00),
    )
}

/// The device path of a terminal number, if it can be named.
#[must_use]
pub fn path(tty_nr: u64) -> Option<PathBuf> {
    if tty_nr == 0 {
        return None;
    }
    let (major, minor) = split(tty_nr);
    if (136..=143).contains(&major) {
        return Some(PathBuf::from(format!(
            "/dev/pts/{}",
            (major - 136) * 256 + minor
        )));
    }
    let uevent = std::fs::read_to_string(format!("/sys/dev/char/{major}:{minor}/uevent")).ok()?;
    uevent
        .lines()
        .find_map(|l| l.strip_prefix("DEVNAME="))
        .map(|n| Path::new("/dev").join(n))
}

/// The short name `ps` shows: `pts/3`, `tty1`, or `?` when there is none.
#[must_use]
pub fn name(tty_nr: u64) -> String {
    match path(tty_nr) {
        Some(p) => p
            .strip_prefix("/dev")
            .map_or_else(|_| p.display().to_string(), |r| r.display().to_string()),
        None if tty_nr == 0 => "?".to_string(),
        None => {
            let (major, minor) = split(tty_nr);
            format!("{major}:{minor}")
        }
    }
}

/// The device number of a terminal path (its `st_rdev`, in `tty_nr` form).
pub fn number(path: &Path) -> std::io::Result<u64> {
    use std::os::unix::fs::MetadataExt;
    Ok(from_rdev(std::fs::metadata(path)?.rdev()))
}

/// A device number (`st_rdev`) in `tty_nr` form.
#[must_use]
pub fn from_rdev(rdev: u64) -> u64 {
    let major = nix::sys::stat::major(rdev);
    let minor = nix::sys::stat::minor(rdev);
    ((minor & 0xfff00) << 12) | ((major & 0xfff) << 8) | (minor & 0xff)
}

/// The devpts instance (the `st_dev` of the device node) through which `pid`
/// holds terminal `tty_nr` open, from its descriptors: `Ok(None)` when none of
/// them is that terminal, an error when they cannot be read (another user's
/// process). Device numbers alone are ambiguous: every devpts instance (a
/// container's) numbers its terminals from 0 again; `stat` through
/// `/proc/PID/fd/N` reaches the open terminal itself, in its own instance.
pub fn instance_held(pid: nix::unistd::Pid, tty_nr: u64) -> std::io::Result<Option<u64>> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let dir = PathBuf::from(format!("/proc/{pid}/fd"));
    for entry in std::fs::read_dir(&dir)? {
        let Ok(meta) = entry.and_then(|e| std::fs::metadata(e.path())) else {
            continue;
        };
        if meta.file_type().is_char_device() && from_rdev(meta.rdev()) == tty_nr {
            return Ok(Some(meta.dev()));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pts_numbers() {
        assert_eq!(name(34816), "pts/0");
        assert_eq!(name(34817), "pts/1");
        assert_eq!(
            path(34816 + 256 * 256 / 256),
            Some(PathBuf::from("/dev/pts/256"))
        );
        assert_eq!(name(0), "?");
        assert_eq!(number(Path::new("/dev/null")).map(split).unwrap(), (1, 3));
    }

    #[test]
    fn instance_of_an_open_terminal() {
        use std::os::unix::fs::MetadataExt;
        let pty = crate::pty::open().unwrap();
        let n = number(&pty.path).unwrap();
        let me = nix::unistd::getpid();
        let dev = std::fs::metadata(&pty.path).unwrap().dev();
        // (Tests run in threads of one process: another may hold a terminal
        // too, so only the found instance is checked.)
        assert_eq!(instance_held(me, n).unwrap(), Some(dev));
    }
}
