//! Pseudo-terminal pairs, both ends close-on-exec from the start, and the
//! [`Transcript`] of what a master side shows.
//!
//! `openpty(3)` returns descriptors without close-on-exec, so a program that
//! starts other processes meanwhile (on another thread) would leak them, and a
//! leaked master keeps a terminal from ever hanging up. For the same reason the
//! transcript's reader thread shares the one master (no `dup`), and a hang-up
//! stops that thread before it closes the master.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
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

/// How long the reader thread sleeps in `poll` before it looks at its stop
/// flag again: the longest a hang-up waits for the reader to let go of its
/// share of the master.
const READER_POLL_MS: u8 = 50;

/// How often a wait looks at the transcript again. Short, because the shell on
/// the other side answers within milliseconds; the deadline bounds the total.
const WAIT_POLL: Duration = Duration::from_millis(10);

/// One `read` of the master: a terminal line discipline hands out at most 4 KiB
/// at a time anyway.
const READ_CHUNK: usize = 4096;

/// What a [`Transcript`] keeps of the carriage returns on the master side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Carriage {
    /// Every byte as the terminal delivered it (byte-for-byte comparisons).
    Keep,
    /// Carriage returns dropped: a terminal's output processing turns `\n` into
    /// `\r\n`, and readline moves its cursor with `\r`; without them a shell's
    /// output reads as plain lines.
    Drop,
}

/// What the reader thread and its owner share.
struct Shared {
    /// Everything the master side has shown so far.
    text: Mutex<Vec<u8>>,
    /// The reader saw the end: every slave is closed (`EIO`), or a read failed.
    ended: AtomicBool,
    /// Set by [`Transcript::hang_up`]: the reader stops and drops its share.
    stop: AtomicBool,
}

impl Shared {
    fn text(&self) -> MutexGuard<'_, Vec<u8>> {
        // The reader holds the lock only to append, and cannot panic there.
        self.text.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The master side of a pseudo-terminal, as a terminal emulator holds it: a
/// reader thread accumulates everything the programs on the slave side show,
/// and the owner types on it, waits (with a deadline) for text to appear, and
/// hangs it up. The one pty reader of the suite: huplab and the tests use it.
///
/// Text is consumed as it is waited for: [`Transcript::wait_for`] finds the
/// next occurrence after what earlier waits consumed, so a prompt that was
/// already matched is not matched again.
pub struct Transcript {
    master: Option<Arc<OwnedFd>>,
    shared: Arc<Shared>,
    seen: usize,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Transcript {
    /// Starts reading `master` on a thread of its own.
    pub fn start(master: OwnedFd, carriage: Carriage) -> std::io::Result<Transcript> {
        let master = Arc::new(master);
        let shared = Arc::new(Shared {
            text: Mutex::new(Vec::new()),
            ended: AtomicBool::new(false),
            stop: AtomicBool::new(false),
        });
        let (fd, sink) = (Arc::clone(&master), Arc::clone(&shared));
        let reader = std::thread::Builder::new()
            .name("pty reader".into())
            .spawn(move || read_until_end(&fd, &sink, carriage))?;
        Ok(Transcript {
            master: Some(master),
            shared,
            seen: 0,
            reader: Some(reader),
        })
    }

    /// The master side, until [`Transcript::hang_up`].
    #[must_use]
    pub fn master(&self) -> Option<BorrowedFd<'_>> {
        self.master.as_deref().map(AsFd::as_fd)
    }

    /// Types `bytes` on the terminal; `EBADF` once it is hung up.
    pub fn type_bytes(&self, bytes: &[u8]) -> Result<(), Errno> {
        let fd = self.master.as_deref().ok_or(Errno::EBADF)?;
        crate::stdio::write_all(fd.as_raw_fd(), bytes)
    }

    /// Types `line` and a newline.
    pub fn type_line(&self, line: &str) -> Result<(), Errno> {
        self.type_bytes(format!("{line}\n").as_bytes())
    }

    /// Consumes the text not yet consumed up to the end of the first occurrence
    /// of any of `needles` (the earliest one), and returns that text; `None`
    /// (nothing consumed) if none occurs yet. Matched as bytes: the output may
    /// hold invalid UTF-8.
    pub fn take(&mut self, needles: &[&str]) -> Option<String> {
        let text = self.shared.text();
        let hay = &text[self.seen..];
        let end = needles
            .iter()
            .filter(|n| !n.is_empty())
            .filter_map(|n| find(hay, n.as_bytes()).map(|at| (at, at + n.len())))
            .min()
            .map(|(_, end)| end)?;
        let taken = String::from_utf8_lossy(&hay[..end]).into_owned();
        self.seen += end;
        Some(taken)
    }

    /// Waits until `needle` appears in the text not yet consumed, or until
    /// `deadline`; see [`Transcript::take`]. `None` at the deadline.
    pub fn wait_for(&mut self, needle: &str, deadline: Instant) -> Option<String> {
        self.wait_for_any(&[needle], deadline, || true)
    }

    /// [`Transcript::wait_for`] for the first of several needles, also giving up
    /// (with `None`) as soon as `go_on` returns false (an interruption).
    pub fn wait_for_any(
        &mut self,
        needles: &[&str],
        deadline: Instant,
        mut go_on: impl FnMut() -> bool,
    ) -> Option<String> {
        loop {
            if let Some(taken) = self.take(needles) {
                return Some(taken);
            }
            if Instant::now() >= deadline || !go_on() {
                return None;
            }
            std::thread::sleep(WAIT_POLL);
        }
    }

    /// Everything shown so far, consumed or not.
    #[must_use]
    pub fn bytes(&self) -> Vec<u8> {
        self.shared.text().clone()
    }

    /// [`Transcript::bytes`] as text (invalid UTF-8 replaced).
    #[must_use]
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.shared.text()).into_owned()
    }

    /// Waits until the reader has seen the end (every slave closed), or nothing
    /// new has arrived for `quiet`, or `deadline` passes; then returns
    /// everything shown.
    #[must_use]
    pub fn settle(&self, quiet: Duration, deadline: Instant) -> Vec<u8> {
        let (mut len, mut since) = (self.shared.text().len(), Instant::now());
        while !self.shared.ended.load(Ordering::SeqCst) && Instant::now() < deadline {
            let now_len = self.shared.text().len();
            if now_len != len {
                (len, since) = (now_len, Instant::now());
            } else if since.elapsed() >= quiet {
                break;
            }
            std::thread::sleep(WAIT_POLL);
        }
        self.bytes()
    }

    /// Hangs the terminal up: stops the reader and closes every copy of the
    /// master, which is what makes the kernel hang the terminal up (SIGHUP to
    /// the session leader, EIO to every reader and writer of the slave).
    pub fn hang_up(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
        self.master = None;
    }
}

impl Drop for Transcript {
    fn drop(&mut self) {
        self.hang_up();
    }
}

/// The reader thread: appends what the master shows until every slave is
/// closed, a read fails, or the owner hangs up.
fn read_until_end(fd: &OwnedFd, shared: &Shared, carriage: Carriage) {
    let mut buf = [0u8; READ_CHUNK];
    while !shared.stop.load(Ordering::SeqCst) {
        let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::from(READER_POLL_MS)) {
            Ok(0) | Err(Errno::EINTR) => continue,
            Ok(_) => {}
            Err(_) => break,
        }
        match nix::unistd::read(fd, &mut buf) {
            Ok(n) if n > 0 => {
                let mut text = shared.text();
                match carriage {
                    Carriage::Keep => text.extend_from_slice(&buf[..n]),
                    Carriage::Drop => text.extend(buf[..n].iter().filter(|&&b| b != b'\r')),
                }
            }
            Err(Errno::EINTR | Errno::EAGAIN) => {}
            // End of file, EIO (no slave open any more), or another failure.
            _ => break,
        }
    }
    shared.ended.store(true, Ordering::SeqCst);
}

/// The offset of the first occurrence of `needle` in `hay`.
fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh pair with its master read by a transcript.
    fn pair(carriage: Carriage) -> (Transcript, OwnedFd) {
        let pty = open().unwrap();
        (Transcript::start(pty.master, carriage).unwrap(), pty.slave)
    }

    fn soon() -> Instant {
        Instant::now() + Duration::from_secs(10)
    }

    #[test]
    fn waits_consume_in_order_past_invalid_utf8() {
        let (mut t, slave) = pair(Carriage::Drop);
        crate::stdio::write_all(slave.as_raw_fd(), b"\xff\xfe$ one\r\n$ two\n").unwrap();
        assert_eq!(
            t.wait_for("$ ", soon()).as_deref(),
            Some("\u{fffd}\u{fffd}$ ")
        );
        assert_eq!(t.wait_for("$ ", soon()).as_deref(), Some("one\n$ "));
        assert_eq!(t.take(&["two", "$ "]).as_deref(), Some("two"));
        assert_eq!(t.wait_for("$ ", Instant::now()), None);
        assert_eq!(t.bytes(), b"\xff\xfe$ one\n$ two\n");
    }

    #[test]
    fn the_earliest_needle_wins_and_go_on_stops_a_wait() {
        let (mut t, slave) = pair(Carriage::Keep);
        crate::stdio::write_all(slave.as_raw_fd(), b"a# b$ ").unwrap();
        assert_eq!(
            t.wait_for_any(&["$ ", "# "], soon(), || true).as_deref(),
            Some("a# ")
        );
        assert_eq!(t.wait_for_any(&["never"], soon(), || false), None);
    }

    #[test]
    fn settle_ends_when_every_slave_is_closed() {
        let (t, slave) = pair(Carriage::Keep);
        // The slave's output processing (ONLCR) makes the newline `\r\n`: kept.
        crate::stdio::write_all(slave.as_raw_fd(), b"last words\n").unwrap();
        drop(slave);
        let start = Instant::now();
        let all = t.settle(Duration::from_secs(30), soon());
        assert!(start.elapsed() < Duration::from_secs(5));
        assert_eq!(all, b"last words\r\n");
    }

    #[test]
    fn hang_up_closes_the_master() {
        let (mut t, slave) = pair(Carriage::Keep);
        t.hang_up();
        assert_eq!(t.type_line("x"), Err(Errno::EBADF));
        // The kernel has hung the terminal up: the slave reads end of file or EIO.
        let mut buf = [0u8; 8];
        assert!(matches!(
            nix::unistd::read(&slave, &mut buf),
            Ok(0) | Err(Errno::EIO)
        ));
    }
}
