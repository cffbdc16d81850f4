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
    let rdev = std::fs::metadata(path)?.rdev();
    let major = nix::sys::stat::major(rdev);
    let minor = nix::sys::stat::minor(rdev);
    Ok(((minor & 0xfff00) << 12) | ((major & 0xfff) << 8) | (minor & 0xff))
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
}
