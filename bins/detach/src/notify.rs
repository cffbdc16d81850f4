//! `--notify`: the receiving end of the `sd_notify` protocol.
//!
//! A datagram socket in a private directory (mode 0700, owned by the daemon's
//! user) is given to the daemon as `NOTIFY_SOCKET`. Each datagram holds
//! newline-separated `KEY=VALUE` assignments; `SO_PASSCRED` makes the kernel attach
//! the sender's credentials, and only processes of the daemon's user (or root)
//! are listened to. Understood: `READY=1`, `ERRNO=`, `STATUS=`,
//! `EXTEND_TIMEOUT_USEC=`, `MAINPID=`; anything else is ignored, as systemd does.
//! While waiting, the daemon's pidfd is polled too, so a daemon that dies before
//! it is ready fails the start at once instead of at the timeout.
//!
//! `MAINPID=P` is believed only if P runs as the daemon's user (real and
//! effective) and is the daemon or one of its descendants ([`vouch`]): the
//! daemon could otherwise name any process, which detach, as root, would write
//! into the pidfile for a later `--stop` to kill. Descent is checked through
//! parent links, each parent started no later than its child (a PID reused by a
//! younger process breaks the chain); detach is a child subreaper while it
//! waits, so a descendant whose parent exited is reparented to detach, not to
//! init, and its chain still ends at detach. A `MAINPID=` that fails is ignored
//! with a warning, and the daemon detach started is recorded.

use std::os::fd::AsFd;
use std::os::unix::fs::DirBuilderExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hupkit_common::pidfd::PidFd;
use hupkit_common::proc::{Stat, Status};
use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg, setsockopt, sockopt};
use nix::unistd::{Pid, Uid};

/// The socket and its private directory, removed when dropped.
pub struct Listener {
    dir: PathBuf,
    path: PathBuf,
    sock: UnixDatagram,
}

/// How the wait ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// `READY=1`; the daemon's main PID (from `MAINPID=`, if sent).
    Ready(Option<Pid>),
    /// `ERRNO=n`.
    Errno(i32),
    /// The daemon exited first.
    Exited,
    /// No `READY=1` in time.
    Timeout,
}

impl Listener {
    /// Creates the socket, owned by `owner` (the daemon's user) if given.
    pub fn new(owner: Option<(Uid, nix::unistd::Gid)>) -> std::io::Result<Listener> {
        let base = std::env::temp_dir();
        let mut attempt = 0u32;
        let dir = loop {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos());
            let dir = base.join(format!(
                "detach-notify.{}.{nanos:x}{attempt}",
                std::process::id()
            ));
            match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
                Ok(()) => break dir,
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && attempt < 100 => {
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        };
        let path = dir.join("notify");
        let made = (|| {
            let sock = UnixDatagram::bind(&path)?;
            setsockopt(&sock, sockopt::PassCred, &true).map_err(std::io::Error::from)?;
            if let Some((uid, gid)) = owner {
                nix::unistd::chown(&dir, Some(uid), Some(gid)).map_err(std::io::Error::from)?;
                nix::unistd::chown(&path, Some(uid), Some(gid)).map_err(std::io::Error::from)?;
            }
            Ok(sock)
        })();
        match made {
            Ok(sock) => Ok(Listener { dir, path, sock }),
            Err(e) => {
                let _ = std::fs::remove_dir_all(&dir);
                Err(e)
            }
        }
    }

    /// The socket's path, for `NOTIFY_SOCKET`.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Waits for the daemon behind `pidfd` (running as `uid`) to be ready, for at
    /// most `timeout` (extended by `EXTEND_TIMEOUT_USEC=`). `status` receives
    /// each `STATUS=` line.
    pub fn wait(
        &self,
        pidfd: &PidFd,
        uid: Uid,
        timeout: Duration,
        status: &mut dyn FnMut(&str),
    ) -> Outcome {
        let mut deadline = Instant::now() + timeout;
        let mut main_pid = None;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Outcome::Timeout;
            }
            let ms = u16::try_from(left.as_millis().min(10_000)).unwrap_or(10_000);
            let mut fds = [
                PollFd::new(self.sock.as_fd(), PollFlags::POLLIN),
                PollFd::new(pidfd.as_fd(), PollFlags::POLLIN),
            ];
            match poll(&mut fds, PollTimeout::from(ms)) {
                Ok(0) | Err(Errno::EINTR) => continue,
                Ok(_) => {}
                Err(_) => return Outcome::Timeout,
            }
            let sock_ready = fds[0]
                .revents()
                .is_some_and(|r| r.contains(PollFlags::POLLIN));
            let died = fds[1].revents().is_some_and(|r| !r.is_empty());
            if sock_ready {
                if let Some(msg) = self.receive(uid) {
                    for line in msg.lines() {
                        let (key, value) = line.split_once('=').unwrap_or((line, ""));
                        match key {
                            "READY" if value == "1" => return Outcome::Ready(main_pid),
                            "ERRNO" => return Outcome::Errno(value.trim().parse().unwrap_or(0)),
                            "STATUS" => status(value),
                            "MAINPID" => {
                                main_pid = value.parse().ok().filter(|p| *p > 0).map(Pid::from_raw);
                            }
                            "EXTEND_TIMEOUT_USEC" => {
                                if let Ok(us) = value.parse::<u64>() {
                                    deadline = Instant::now() + Duration::from_micros(us);
                                }
                            }
                            _ => {}
                        }
                    }
                }
                continue;
            }
            if died {
                return Outcome::Exited;
            }
        }
    }

    /// One datagram, if it comes from a process of `uid` or of root.
    fn receive(&self, uid: Uid) -> Option<String> {
        let mut buf = [0u8; 4096];
        let mut iov = [std::io::IoSliceMut::new(&mut buf)];
        let mut cmsg = nix::cmsg_space!(nix::sys::socket::UnixCredentials);
        let msg = recvmsg::<()>(
            std::os::fd::AsRawFd::as_raw_fd(&self.sock),
            &mut iov,
            Some(&mut cmsg),
            MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_CMSG_CLOEXEC,
        )
        .ok()?;
        let trusted = msg.cmsgs().ok()?.any(|c| match c {
            ControlMessageOwned::ScmCredentials(cred) => {
                cred.uid() == uid.as_raw() || cred.uid() == 0
            }
            _ => false,
        });
        let len = msg.bytes;
        if !trusted {
            return None;
        }
        Some(String::from_utf8_lossy(&buf[..len]).into_owned())
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// Why a `MAINPID=` is not taken for the daemon (the PID it named).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// No such process, or a zombie.
    #[error("PID {0} does not exist")]
    Gone(Pid),
    /// It runs as another user than the daemon (real or effective).
    #[error("PID {0} does not run as the daemon's user")]
    OtherUser(Pid),
    /// Neither the daemon nor one of its descendants.
    #[error("PID {0} is neither the daemon nor one of its descendants")]
    Foreign(Pid),
}

/// Checks that `main` (from `MAINPID=`) may stand for the daemon `daemon`
/// (started at `daemon_start`, running as `uid`): see the module documentation.
/// Returns `main`'s start time, or why it is refused.
pub fn vouch(main: Pid, daemon: Pid, daemon_start: u64, uid: Uid) -> Result<u64, Refusal> {
    let gone = |_| Refusal::Gone(main);
    let st = Stat::read(main).map_err(gone)?;
    if st.state.has_exited() {
        return Err(Refusal::Gone(main));
    }
    let ids = Status::read(main).map_err(gone)?.uid;
    if ids[0] != uid.as_raw() || ids[1] != uid.as_raw() {
        return Err(Refusal::OtherUser(main));
    }
    let me = nix::unistd::getpid();
    let foreign = || Refusal::Foreign(main);
    let start = st.starttime;
    let mut cur = st;
    // A chain longer than the PID space is a loop.
    for _ in 0..4_194_304 {
        if cur.pid == daemon {
            return if cur.starttime == daemon_start {
                Ok(start)
            } else {
                Err(foreign())
            };
        }
        if cur.ppid == me {
            // Reparented to detach, the subreaper: its parent in the daemon's
            // tree exited (detach's only other child, the intermediate, is reaped).
            return Ok(start);
        }
        if cur.ppid.as_raw() <= 1 {
            return Err(foreign());
        }
        let parent = Stat::read(cur.ppid).map_err(|_| foreign())?;
        if parent.starttime > cur.starttime {
            return Err(foreign());
        }
        cur = parent;
    }
    Err(foreign())
}
