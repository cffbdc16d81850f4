//! Where a process's output goes: what one of its descriptors leads to, as
//! `/proc/PID/fd` shows it, in the words a user needs after a dropped
//! connection (a file, its terminal, a terminal that has hung up, a pipe...).
//!
//! Two looks per descriptor: `readlink` names the open file (`pipe:[N]`,
//! `socket:[N]`, a path, with ` (deleted)` once its name is gone), and `stat`
//! through the link (which follows into the open file itself, whatever mount
//! namespace it lives in) gives its type and device number. A pseudo-terminal
//! slave whose name is gone has lost its master: the terminal has hung up, and
//! writes to it fail with `EIO`, so that output is lost. A pty master (`/dev/ptmx`
//! and its devpts twins) is a program driving a terminal of its own (tmux, ssh,
//! expect), never a place where output is lost.

use std::fmt;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::PathBuf;

use nix::unistd::Pid;

/// What a descriptor leads to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sink {
    /// The process's controlling terminal, live.
    Terminal,
    /// Another live terminal (not its controlling terminal), by name (`pts/5`).
    OtherTerminal(String),
    /// A terminal that has hung up (`pts/3`): writes fail, the output is lost.
    HungUp(String),
    /// A pseudo-terminal master: the process drives a terminal of its own.
    PtyMaster,
    /// `/dev/null`.
    Null,
    /// A regular file; `deleted` when its name has been removed since.
    File {
        /// The path as `/proc` shows it (without the ` (deleted)` suffix).
        path: PathBuf,
        /// Whether the file's name is gone.
        deleted: bool,
    },
    /// A pipe (or FIFO).
    Pipe,
    /// A socket.
    Socket,
    /// Anything else, as `/proc` names it.
    Other(PathBuf),
    /// The descriptor is not open.
    Closed,
    /// It cannot be seen (another user's process).
    Unknown,
}

/// `readlink`'s mark of an open file whose name has been removed.
const DELETED: &[u8] = b" (deleted)";

/// Whether a character device `(major, minor)` is a terminal: the pty slaves
/// (136-143), the virtual consoles and serial lines (4), `/dev/tty` (5:0), the
/// console (5:1), and whatever sysfs files under the `tty` class.
fn is_terminal(major: u64, minor: u64) -> bool {
    (136..=143).contains(&major)
        || major == 4
        || (major == 5 && minor <= 1)
        || std::fs::read_link(format!("/sys/dev/char/{major}:{minor}/subsystem"))
            .is_ok_and(|p| p.ends_with("tty"))
}

/// Whether a character device is a pseudo-terminal master: the multiplexer
/// (5:2, every devpts instance's `ptmx`) or the masters' majors (128-135).
fn is_pty_master(major: u64, minor: u64) -> bool {
    (major == 5 && minor == 2) || (128..=135).contains(&major)
}

/// Where descriptor `fd` of `pid` leads; `ctty` is the process's controlling
/// terminal (`tty_nr`, 0 for none).
#[must_use]
pub fn of(pid: Pid, fd: i32, ctty: u64) -> Sink {
    let link = format!("/proc/{pid}/fd/{fd}");
    let target = match std::fs::read_link(&link) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Sink::Closed,
        Err(_) => return Sink::Unknown,
    };
    let bytes = target.as_os_str().as_bytes();
    if bytes.starts_with(b"pipe:") {
        return Sink::Pipe;
    }
    if bytes.starts_with(b"socket:") {
        return Sink::Socket;
    }
    let deleted = bytes.ends_with(DELETED);
    let name = if deleted {
        PathBuf::from(std::ffi::OsStr::from_bytes(
            &bytes[..bytes.len() - DELETED.len()],
        ))
    } else {
        target.clone()
    };
    let Ok(meta) = std::fs::metadata(&link) else {
        return Sink::Other(target);
    };
    let ft = meta.file_type();
    if ft.is_file() {
        return Sink::File {
            path: name,
            deleted,
        };
    }
    if ft.is_fifo() {
        return Sink::Pipe;
    }
    if ft.is_socket() {
        return Sink::Socket;
    }
    if !ft.is_char_device() {
        return Sink::Other(target);
    }
    let (major, minor) = (
        nix::sys::stat::major(meta.rdev()),
        nix::sys::stat::minor(meta.rdev()),
    );
    if (major, minor) == (1, 3) {
        return Sink::Null;
    }
    if is_pty_master(major, minor) {
        return Sink::PtyMaster;
    }
    if !is_terminal(major, minor) {
        return Sink::Other(target);
    }
    let short = |p: &std::path::Path| {
        p.strip_prefix("/dev")
            .map_or_else(|_| p.display().to_string(), |r| r.display().to_string())
    };
    if deleted {
        return Sink::HungUp(short(&name));
    }
    let number = crate::tty::from_rdev(meta.rdev());
    if ctty != 0 && (number == ctty || (major, minor) == (5, 0)) {
        Sink::Terminal
    } else {
        Sink::OtherTerminal(short(&name))
    }
}

impl Sink {
    /// Whether what is written there is lost (a terminal that has hung up).
    #[must_use]
    pub fn is_lost(&self) -> bool {
        matches!(self, Sink::HungUp(_))
    }

    /// One word for JSON: `tty`, `other-tty`, `lost`, `pty-master`, `null`,
    /// `file`, `pipe`, `socket`, `other`, `closed` or `unknown`.
    #[must_use]
    pub fn kind(&self) -> &'static str {
        match self {
            Sink::Terminal => "tty",
            Sink::OtherTerminal(_) => "other-tty",
            Sink::HungUp(_) => "lost",
            Sink::PtyMaster => "pty-master",
            Sink::Null => "null",
            Sink::File { .. } => "file",
            Sink::Pipe => "pipe",
            Sink::Socket => "socket",
            Sink::Other(_) => "other",
            Sink::Closed => "closed",
            Sink::Unknown => "unknown",
        }
    }

    /// The path or terminal name, for JSON (exact, unquoted).
    #[must_use]
    pub fn path(&self) -> Option<String> {
        match self {
            Sink::OtherTerminal(n) | Sink::HungUp(n) => Some(n.clone()),
            Sink::File { path, .. } | Sink::Other(path) => {
                Some(path.to_string_lossy().into_owned())
            }
            _ => None,
        }
    }
}

impl fmt::Display for Sink {
    /// The short label of text views: `tty`, `tty:pts/5`, `lost (pts/3 hung up)`,
    /// `file:PATH` (quoted for a shell), `pipe`, `/dev/null`...
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let quoted = |p: &PathBuf| crate::quote::word(p.as_os_str().as_bytes());
        match self {
            Sink::Terminal => f.write_str("tty"),
            Sink::OtherTerminal(n) => write!(f, "tty:{n}"),
            Sink::HungUp(n) => write!(f, "lost ({n} hung up)"),
            Sink::PtyMaster => f.write_str("pty-master"),
            Sink::Null => f.write_str("/dev/null"),
            Sink::File { path, deleted } => write!(
                f,
                "file:{}{}",
                quoted(path),
                if *deleted { " (deleted)" } else { "" }
            ),
            Sink::Pipe => f.write_str("pipe"),
            Sink::Socket => f.write_str("socket"),
            Sink::Other(p) => f.write_str(&quoted(p)),
            Sink::Closed => f.write_str("closed"),
            Sink::Unknown => f.write_str("?"),
        }
    }
}

/// Where the output of `pid` goes (fds 1 and 2), in one label: the sink's own
/// when both lead to the same, else `1:LABEL 2:LABEL`.
#[must_use]
pub fn label(out: &Sink, err: &Sink) -> String {
    if out == err {
        out.to_string()
    } else {
        format!("1:{out} 2:{err}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_descriptors() {
        let me = nix::unistd::getpid();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out file");
        let file = std::fs::File::create(&path).unwrap();
        let (r, w) = nix::unistd::pipe().unwrap();
        let null = std::fs::File::open("/dev/null").unwrap();
        let fd = |f: &dyn std::os::fd::AsRawFd| f.as_raw_fd();
        assert_eq!(
            of(me, fd(&file), 0),
            Sink::File {
                path: path.clone(),
                deleted: false
            }
        );
        assert_eq!(
            of(me, fd(&file), 0).to_string(),
            format!("file:'{}'", path.display())
        );
        std::fs::remove_file(&path).unwrap();
        assert!(of(me, fd(&file), 0).to_string().ends_with("' (deleted)"));
        assert_eq!(of(me, fd(&r), 0), Sink::Pipe);
        assert_eq!(of(me, fd(&w), 0).kind(), "pipe");
        assert_eq!(of(me, fd(&null), 0), Sink::Null);
        assert_eq!(of(me, 999_999, 0), Sink::Closed);
        let pty = crate::pty::open().unwrap();
        let n = crate::tty::number(&pty.path).unwrap();
        assert_eq!(of(me, fd(&pty.slave), n), Sink::Terminal);
        let other = of(me, fd(&pty.slave), 0);
        assert_eq!(other.kind(), "other-tty");
        assert_eq!(of(me, fd(&pty.master), n), Sink::PtyMaster);
        drop(pty.master);
        let lost = of(me, fd(&pty.slave), n);
        assert!(lost.is_lost(), "{lost:?}");
        assert_eq!(label(&lost, &Sink::Pipe), format!("1:{lost} 2:pipe"));
        assert_eq!(label(&Sink::Null, &Sink::Null), "/dev/null");
    }
}
