//! Pseudo-terminal pairs, both ends close-on-exec from the start.
//!
//! `openpty(3)` returns descriptors without close-on-exec, so a program that
//! starts other processes meanwhile (on another thread) would leak them, and a
//! leaked master keeps a terminal from ever hanging up.

use std::os::fd::OwnedFd;
use std::path::PathBuf;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;

/// A pseudo-terminal: the master, the slave, and the slave's path.
pub struct Pty {
    /// The master side (the "terminal emulator" end).
    pub master: OwnedFd,
    /// The slave side (the program's terminal).
    pub slave: OwnedFd,
    /// The slave's path, e.g. `/dev/pts/4`.
    pub path: PathBuf,
}

/// Opens a new pair.
pub fn open() -> Result<Pty, Errno> {
    let flags = OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC;
    let master = nix::pty::posix_openpt(flags)?;
    nix::pty::grantpt(&master)?;
    nix::pty::unlockpt(&master)?;
    let name = nix::pty::ptsname_r(&master)?;
    let slave = nix::fcntl::open(name.as_str(), flags, Mode::empty())?;
    Ok(Pty {
        master: master.into(),
        slave,
        path: PathBuf::from(name),
    })
}

/// Makes the child `cmd` starts a session leader whose controlling terminal is
/// its standard input (which must be a terminal): `setsid` then `TIOCSCTTY`, in
/// the child, just before exec. This is how a terminal emulator starts a shell.
pub fn session_leader_on_exec(cmd: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: setsid and ioctl are async-signal-safe and touch no memory of ours.
    unsafe {
        cmd.pre_exec(|| {
            if nix::libc::setsid() < 0 || nix::libc::ioctl(0, nix::libc::TIOCSCTTY, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}
