//! `--syslog[=TAG]` and `--journal[=TAG]`: a daemon's output without a terminal.
//!
//! `--journal` needs no process of its own: the daemon connects its standard
//! output and error, one stream connection each, to journald's stream socket
//! (`/run/systemd/journal/stdout`) before it execs, and writes the stream header
//! (identifier, unit, priority 6 or 3, level prefix, no forwarding of its own)
//! that journald reads first; journald then takes the daemon's PID and user
//! from the connection. The headers and the address are prepared here, before
//! the fork, so the daemon only calls `socket`, `connect`, `write` and `dup2`.
//!
//! `--syslog` needs a relay, since `/dev/log` takes one datagram per message:
//! the relay is a second process started with the daemon (by the intermediate,
//! after the daemon, in the daemon's session and process group, as the
//! daemon's user), which execs detach again as `detach --syslog-relay TAG PID`
//! with the daemon's standard output on its fd 0 and standard error on its
//! fd 1. It splits lines, sends each as `<PRI>Mmm dd hh:mm:ss TAG[PID]: LINE`,
//! the form glibc's syslog(3) and logger(1) use on `/dev/log` (facility daemon;
//! info for standard output, err for standard error), lines longer than
//! [`MAX_LINE`] bytes in pieces of that size, as logger does, and ends when
//! both pipes are closed: when the daemon and whatever inherited its output are
//! gone. It is no daemon to track. Sends block: a slow syslog daemon slows the
//! relay, and then the daemon's writes, rather than losing lines. If `/dev/log`
//! goes away, the relay reconnects at each line, counts the lines it could not
//! send, and once it can send again says how many were lost.

use std::ffi::{CString, OsStr, OsString};
use std::io::ErrorKind;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::UnixDatagram;
use std::path::Path;

use hupkit_common::exit::{self, Status};
use hupkit_common::quote::quote;
use hupkit_common::{Error, Result};
use nix::fcntl::OFlag;
use nix::libc;
use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sys::socket::UnixAddr;

use crate::cli::Cli;

/// The syslog socket.
pub const DEV_LOG: &str = "/dev/log";
/// journald's stream socket.
pub const JOURNAL_STDOUT: &str = "/run/systemd/journal/stdout";
/// The longest piece of a line sent as one message (logger's default size).
pub const MAX_LINE: usize = 1024;
/// The relay's hidden first argument.
pub const RELAY_ARG: &str = "--syslog-relay";

const FACILITY_DAEMON: u8 = 3 << 3;
const LOG_ERR: u8 = 3;
const LOG_WARNING: u8 = 4;
const LOG_INFO: u8 = 6;

/// `--journal`: what the daemon needs to connect its output to journald.
#[derive(Debug)]
pub struct Journal {
    /// journald's stream socket.
    pub addr: UnixAddr,
    /// The stream header for standard output (priority 6).
    pub stdout_header: Vec<u8>,
    /// The stream header for standard error (priority 3).
    pub stderr_header: Vec<u8>,
}

/// `--syslog`: the relay the intermediate starts beside the daemon.
#[derive(Debug)]
pub struct Relay {
    /// detach's own executable, which the relay runs.
    pub exe: CString,
    /// Its argv\[0\], the hidden argument and the tag; the PID is added in the child.
    pub tag: CString,
    /// The read end of the daemon's standard output.
    pub stdout: OwnedFd,
    /// The read end of the daemon's standard error.
    pub stderr: OwnedFd,
    /// `/dev/null`, for the relay's own standard error.
    pub null: OwnedFd,
}

/// How the daemon's output is logged, if it is.
#[derive(Debug)]
pub enum Logging {
    /// Straight to journald.
    Journal(Journal),
    /// Through the syslog relay.
    Syslog(Relay),
}

/// The tag: `--syslog=TAG` or `--journal=TAG`, else the command's name.
pub fn tag(given: &OsStr, command: &[OsString]) -> Result<CString> {
    let tag = if given.is_empty() {
        command
            .first()
            .and_then(|c| Path::new(c).file_name())
            .unwrap_or(OsStr::new("detach"))
    } else {
        given
    };
    if tag.as_bytes().iter().any(|&b| b == b'\n' || b == 0) {
        return Err(Error::usage(
            format!("invalid tag {}", quote(tag)),
            exit::CANCELED,
        ));
    }
    CString::new(tag.as_bytes())
        .map_err(|_| Error::usage("the tag contains a NUL byte", exit::CANCELED))
}

/// journald's stream header: identifier, unit ID, priority, level prefix,
/// forward to syslog, kmsg, console (journald's own settings decide those).
fn journal_header(tag: &CString, priority: u8) -> Vec<u8> {
    let mut h = tag.as_bytes().to_vec();
    h.extend_from_slice(format!("\n\n{priority}\n1\n0\n0\n0\n").as_bytes());
    h
}

impl Logging {
    /// Prepares `--journal` or `--syslog` as `cli` asks; with `--syslog`,
    /// `stdout` and `stderr` become the write ends of the relay's pipes.
    pub fn new(cli: &Cli, stdout: &mut OwnedFd, stderr: &mut OwnedFd) -> Result<Option<Logging>> {
        if let Some(given) = &cli.journal {
            let tag = tag(given, &cli.command)?;
            return Ok(Some(Logging::Journal(Journal {
                addr: UnixAddr::new(JOURNAL_STDOUT)
                    .map_err(|e| Error::sys("cannot address journald", e, exit::CANCELED))?,
                stdout_header: journal_header(&tag, LOG_INFO),
                stderr_header: journal_header(&tag, LOG_ERR),
            })));
        }
        let Some(given) = &cli.syslog else {
            return Ok(None);
        };
        let tag = tag(given, &cli.command)?;
        // Missing at start is an error (125); later, the relay reconnects.
        UnixDatagram::unbound()
            .and_then(|s| s.connect(DEV_LOG))
            .map_err(|e| {
                Error::sys(
                    format!("cannot connect to {}", quote(OsStr::new(DEV_LOG))),
                    crate::errno_of(&e),
                    exit::CANCELED,
                )
            })?;
        let pipe = || {
            nix::unistd::pipe2(OFlag::O_CLOEXEC)
                .map_err(|e| Error::sys("cannot create the syslog relay's pipe", e, exit::CANCELED))
        };
        let (out_rd, out_wr) = pipe()?;
        let (err_rd, err_wr) = pipe()?;
        *stdout = out_wr;
        *stderr = err_wr;
        let exe = std::fs::read_link("/proc/self/exe").map_err(|e| {
            Error::sys(
                "cannot find detach's own executable",
                crate::errno_of(&e),
                exit::CANCELED,
            )
        })?;
        let exe = CString::new(exe.as_os_str().as_bytes())
            .map_err(|_| Error::failed("detach's path contains a NUL byte", exit::CANCELED))?;
        let null = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/null")
            .map_err(|e| {
                Error::sys(
                    "cannot open '/dev/null'",
                    crate::errno_of(&e),
                    exit::CANCELED,
                )
            })?;
        Ok(Some(Logging::Syslog(Relay {
            exe,
            tag,
            stdout: out_rd,
            stderr: err_rd,
            null: null.into(),
        })))
    }
}

/// The local time as syslog(3) writes it: `Mmm dd hh:mm:ss`.
fn timestamp() -> String {
    let mut buf = [0u8; 32];
    // SAFETY: time, localtime_r and strftime write only to the locals given,
    // within the length given; the format is a valid C string.
    let n = unsafe {
        let now = libc::time(std::ptr::null_mut());
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::localtime_r(&raw const now, &raw mut tm).is_null() {
            return String::from("Jan  1 00:00:00");
        }
        libc::strftime(
            buf.as_mut_ptr().cast(),
            buf.len(),
            c"%b %e %T".as_ptr(),
            &raw const tm,
        )
    };
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

/// The relay's connection to `/dev/log`, and what it could not send.
struct Sender {
    socket: Option<UnixDatagram>,
    tag: Vec<u8>,
    pid: String,
    lost: u64,
}

impl Sender {
    fn connect() -> Option<UnixDatagram> {
        let s = UnixDatagram::unbound().ok()?;
        s.connect(DEV_LOG).ok()?;
        Some(s)
    }

    fn message(&self, priority: u8, text: &[u8]) -> Vec<u8> {
        let mut m = format!("<{}>{} ", FACILITY_DAEMON | priority, timestamp()).into_bytes();
        m.extend_from_slice(&self.tag);
        m.extend_from_slice(format!("[{}]: ", self.pid).as_bytes());
        m.extend_from_slice(text);
        m
    }

    /// Sends one message, reconnecting once if the socket went away; blocks
    /// while syslog's queue is full.
    fn try_send(&mut self, message: &[u8]) -> bool {
        for _ in 0..2 {
            if self.socket.is_none() {
                self.socket = Sender::connect();
            }
            let Some(socket) = &self.socket else {
                return false;
            };
            loop {
                match socket.send(message) {
                    Ok(_) => return true,
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                        std::thread::sleep(std::time::Duration::from_millis(1));
                    }
                    Err(_) => break,
                }
            }
            self.socket = None;
        }
        false
    }

    /// Sends `line` (without its newline) in pieces of at most [`MAX_LINE`] bytes.
    fn line(&mut self, priority: u8, line: &[u8]) {
        let pieces: Vec<&[u8]> = if line.is_empty() {
            vec![line]
        } else {
            line.chunks(MAX_LINE).collect()
        };
        for piece in pieces {
            let message = self.message(priority, piece);
            if !self.try_send(&message) {
                self.lost += 1;
                continue;
            }
            if self.lost > 0 {
                let note = format!(
                    "detach: {} line(s) lost while {DEV_LOG} was unavailable",
                    self.lost
                );
                let note = self.message(LOG_WARNING, note.as_bytes());
                if self.try_send(&note) {
                    self.lost = 0;
                }
            }
        }
    }
}

/// One of the daemon's streams, with the start of a line not yet complete.
struct Stream<'a> {
    fd: BorrowedFd<'a>,
    priority: u8,
    pending: Vec<u8>,
    open: bool,
}

impl Stream<'_> {
    /// Reads what is there and sends each complete line (and, at the end,
    /// the incomplete one); a line reaching [`MAX_LINE`] is sent in pieces.
    fn pump(&mut self, sender: &mut Sender) {
        let mut buf = vec![0u8; 65536];
        let n = loop {
            match nix::unistd::read(self.fd, &mut buf) {
                Err(nix::errno::Errno::EINTR) => {}
                Ok(n) => break n,
                Err(_) => break 0,
            }
        };
        if n == 0 {
            self.open = false;
            if !self.pending.is_empty() {
                sender.line(self.priority, &std::mem::take(&mut self.pending));
            }
            return;
        }
        self.pending.extend_from_slice(&buf[..n]);
        let mut start = 0;
        while let Some(nl) = self.pending[start..].iter().position(|&b| b == b'\n') {
            sender.line(self.priority, &self.pending[start..start + nl]);
            start += nl + 1;
        }
        while self.pending.len() - start >= MAX_LINE {
            sender.line(self.priority, &self.pending[start..start + MAX_LINE]);
            start += MAX_LINE;
        }
        self.pending.drain(..start);
    }
}

/// The relay: `detach --syslog-relay TAG PID`, the daemon's standard output
/// on fd 0 and standard error on fd 1. Runs until both are closed.
#[must_use]
pub fn relay(args: &[OsString]) -> Status {
    let (Some(tag), Some(pid)) = (args.get(2), args.get(3)) else {
        return exit::CANCELED;
    };
    let mut sender = Sender {
        socket: Sender::connect(),
        tag: tag.as_bytes().to_vec(),
        pid: pid.to_string_lossy().into_owned(),
        lost: 0,
    };
    // SAFETY: fds 0 and 1 are the pipes the intermediate placed there; they
    // stay open for the whole function.
    let (out, err) = unsafe { (BorrowedFd::borrow_raw(0), BorrowedFd::borrow_raw(1)) };
    let mut streams = [
        Stream {
            fd: out,
            priority: LOG_INFO,
            pending: Vec::new(),
            open: true,
        },
        Stream {
            fd: err,
            priority: LOG_ERR,
            pending: Vec::new(),
            open: true,
        },
    ];
    while streams.iter().any(|s| s.open) {
        let mut fds: Vec<PollFd> = streams
            .iter()
            .filter(|s| s.open)
            .map(|s| PollFd::new(s.fd, PollFlags::POLLIN))
            .collect();
        match nix::poll::poll(&mut fds, PollTimeout::NONE) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(_) => return exit::CANCELED,
        }
        let ready: Vec<bool> = fds
            .iter()
            .map(|f| f.revents().is_some_and(|r| !r.is_empty()))
            .collect();
        let mut ready = ready.into_iter();
        for stream in streams.iter_mut().filter(|s| s.open) {
            if ready.next().unwrap_or(false) {
                stream.pump(&mut sender);
            }
        }
    }
    exit::SUCCESS
}
