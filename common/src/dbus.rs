//! The tools' side of `hupkit-dbus`, the helper that talks D-Bus for them.
//!
//! Only `--scope`, `--linger` and rjobs' logout forecast (logind's settings,
//! [`Helper::logind_settings`]) need D-Bus, and the crate that speaks it
//! (zbus, in `hupkit_logind`) more than doubled detach's size and slowed every
//! start. So it lives in a helper executable of its own, and a tool that needs
//! it starts it as a coprocess ([`Helper::start`]): every other path of the
//! tools costs nothing for it.
//!
//! The decisions:
//! - **Where**: relative to the tool's own executable, never through `PATH` or
//!   an environment variable (root runs these tools):
//!   `dirname(/proc/self/exe)/../libexec/hupkit/hupkit-dbus` (installed), else
//!   `dirname(/proc/self/exe)/hupkit-dbus` (cargo's target directory). A
//!   missing helper is one sentence naming the installed path.
//! - **A coprocess**, not one run per call: the connection is made by the
//!   first request ([`Helper::connect`]), before anything is started, so that a
//!   missing bus is found first, and rdisown's list-and-move passes share one
//!   connection. The helper inherits the caller's credentials and environment
//!   (`DBUS_SESSION_BUS_ADDRESS`, `XDG_RUNTIME_DIR`); its standard input and
//!   output are one end of a socket pair (so a write to a dead helper is an
//!   `EPIPE`, never a SIGPIPE: `MSG_NOSIGNAL`), its standard error
//!   `/dev/null`. It exits at end-of-file on its input ([`Helper`]'s drop).
//! - **The protocol** ([`Request`]): one request line, one reply line, `ok`
//!   with an optional word (`user`, `system`, a scope's name) or
//!   `error SENTENCE`. A hint (a command's name: any bytes) travels in hex.
//!   The one reply of several words is `logind-settings`'s, `ok kill=yes
//!   only=HEX,HEX exclude=HEX delay=USEC` ([`LogindSettings`]), user names in
//!   hex; anything else there is no reply ([`LogindSettings::parse`]).
//! - **Never a hang, never a panic**: every read has a deadline
//!   ([`REPLY_DEADLINE`], longer than the helper's own for the manager's job;
//!   shorter where the caller can do without, [`Helper::set_deadline`]);
//!   a helper that dies or answers something else is one sentence
//!   ([`Error::Broken`]).

use std::ffi::{OsStr, OsString};
use std::fmt::Write as _;
use std::os::fd::{AsFd as _, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use crate::diag::strerror;
use crate::quote::quote;

/// The helper's file name.
pub const HELPER: &str = "hupkit-dbus";

/// How long the helper may take to answer one request: more than its own
/// deadline for the manager's job (20 s) and a bus connection.
pub const REPLY_DEADLINE: Duration = Duration::from_secs(30);

/// The longest reply line read from the helper.
const MAX_REPLY: usize = 4096;

/// What went wrong with the helper or its request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The helper is not installed where the tool looks for it.
    Missing(PathBuf),
    /// The helper could not be started.
    Start(PathBuf, Errno),
    /// The helper died, timed out or answered something that is not a reply.
    Broken(PathBuf, String),
    /// The helper did the request and it failed: its sentence.
    Refused(String),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Missing(p) => write!(
                f,
                "helper {} is missing (reinstall hupkit)",
                quote(p.as_os_str())
            ),
            Error::Start(p, e) => {
                write!(
                    f,
                    "cannot start helper {}: {}",
                    quote(p.as_os_str()),
                    strerror(*e)
                )
            }
            Error::Broken(p, why) => write!(f, "helper {} {why}", quote(p.as_os_str())),
            Error::Refused(why) => f.write_str(why),
        }
    }
}

impl std::error::Error for Error {}

/// The result of a request.
pub type Result<T> = std::result::Result<T, Error>;

/// Which service manager the helper is connected to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bus {
    /// The calling user's manager (`user@UID.service`), whose units die with
    /// it at the last logout unless the user lingers.
    User,
    /// The system manager (PID 1), for root.
    System,
}

/// A request to the helper, one line each (see the module documentation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// `connect`: to the caller's service manager; replies `ok user|system`.
    Connect,
    /// `linger UID`: login1's `SetUserLinger(UID, true, false)`; replies `ok`.
    Linger(u32),
    /// `new-scope HEX PID...` (or `new-delegated-scope`, with `Delegate=yes`):
    /// the PIDs into a new transient scope named after the hint; replies
    /// `ok SCOPE`.
    NewScope {
        /// The bytes the scope is named after (a command), any bytes.
        hint: OsString,
        /// The processes to move, the one the scope is named after first.
        pids: Vec<u32>,
        /// Whether the scope is delegated (so that [`Request::Attach`] works).
        delegate: bool,
    },
    /// `attach SCOPE PID...`: the PIDs into the delegated scope; replies `ok`.
    Attach {
        /// The scope's unit name.
        scope: String,
        /// The processes to move.
        pids: Vec<u32>,
    },
    /// `logind-settings`: login1's properties on the system bus, its own
    /// connection (no `connect` first); replies `ok` and
    /// [`LogindSettings::words`].
    LogindSettings,
}

/// The logind settings that decide the logout, as login1's D-Bus properties
/// give them (the effective values, whatever the files say).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogindSettings {
    /// `KillUserProcesses` (b).
    pub kill_user_processes: bool,
    /// `KillOnlyUsers` (as).
    pub kill_only_users: Vec<String>,
    /// `KillExcludeUsers` (as); empty where logind's list is unset.
    pub kill_exclude_users: Vec<String>,
    /// `UserStopDelayUSec` (t), in microseconds; `u64::MAX` is infinity.
    pub user_stop_delay_usec: u64,
}

/// A list of names as one word: each in [`hex`], joined by commas; empty for
/// none.
fn hex_list(names: &[String]) -> String {
    names
        .iter()
        .map(|n| hex(n.as_bytes()))
        .collect::<Vec<_>>()
        .join(",")
}

/// The names of a [`hex_list`] word; `None` unless each is hex of UTF-8 text.
fn unhex_list(word: &str) -> Option<Vec<String>> {
    if word.is_empty() {
        return Some(Vec::new());
    }
    word.split(',')
        .map(|w| String::from_utf8(unhex(w)?).ok().filter(|n| !n.is_empty()))
        .collect()
}

impl LogindSettings {
    /// The words of the reply after `ok`:
    /// `kill=yes only=HEX,HEX exclude=HEX delay=USEC` (a list may be empty).
    #[must_use]
    pub fn words(&self) -> String {
        format!(
            "kill={} only={} exclude={} delay={}",
            if self.kill_user_processes {
                "yes"
            } else {
                "no"
            },
            hex_list(&self.kill_only_users),
            hex_list(&self.kill_exclude_users),
            self.user_stop_delay_usec
        )
    }

    /// The settings in the words of a reply ([`LogindSettings::words`]);
    /// `None` for anything else.
    #[must_use]
    pub fn parse(words: &str) -> Option<LogindSettings> {
        let mut it = words.split(' ');
        let mut field = |key: &str| it.next()?.strip_prefix(key)?.strip_prefix('=');
        let kill = match field("kill")? {
            "yes" => true,
            "no" => false,
            _ => return None,
        };
        let only = unhex_list(field("only")?)?;
        let exclude = unhex_list(field("exclude")?)?;
        let delay = field("delay")?;
        if delay.is_empty() || !delay.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let delay = delay.parse().ok()?;
        if it.next().is_some() {
            return None;
        }
        Some(LogindSettings {
            kill_user_processes: kill,
            kill_only_users: only,
            kill_exclude_users: exclude,
            user_stop_delay_usec: delay,
        })
    }
}

/// `bytes` as lower-case hex (`-` for none, so that the word is never empty).
#[must_use]
pub fn hex(bytes: &[u8]) -> String {
    if bytes.is_empty() {
        return "-".into();
    }
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// The bytes of a [`hex`] word.
#[must_use]
pub fn unhex(word: &str) -> Option<Vec<u8>> {
    if word == "-" {
        return Some(Vec::new());
    }
    if !word.len().is_multiple_of(2) {
        return None;
    }
    (0..word.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(word.get(i..i + 2)?, 16).ok())
        .collect()
}

fn pids_of<'a>(words: impl Iterator<Item = &'a str>) -> std::result::Result<Vec<u32>, String> {
    let pids = words
        .map(|w| w.parse::<u32>().map_err(|_| format!("not a PID: '{w}'")))
        .collect::<std::result::Result<Vec<u32>, String>>()?;
    if pids.is_empty() {
        return Err("no PID given".into());
    }
    Ok(pids)
}

fn pid_words(pids: &[u32]) -> String {
    let mut out = String::new();
    for p in pids {
        let _ = write!(out, " {p}");
    }
    out
}

impl Request {
    /// The request as a line, without its newline.
    #[must_use]
    pub fn line(&self) -> String {
        match self {
            Request::Connect => "connect".into(),
            Request::Linger(uid) => format!("linger {uid}"),
            Request::NewScope {
                hint,
                pids,
                delegate,
            } => format!(
                "{} {}{}",
                if *delegate {
                    "new-delegated-scope"
                } else {
                    "new-scope"
                },
                hex(hint.as_bytes()),
                pid_words(pids)
            ),
            Request::Attach { scope, pids } => format!("attach {scope}{}", pid_words(pids)),
            Request::LogindSettings => "logind-settings".into(),
        }
    }

    /// A request line (without its newline); the sentence saying what is
    /// wrong with it otherwise.
    pub fn parse(line: &str) -> std::result::Result<Request, String> {
        let mut words = line.split(' ');
        let verb = words.next().unwrap_or_default();
        match verb {
            "connect" if words.next().is_none() => Ok(Request::Connect),
            "logind-settings" if words.next().is_none() => Ok(Request::LogindSettings),
            "linger" => match (words.next().map(str::parse::<u32>), words.next()) {
                (Some(Ok(uid)), None) => Ok(Request::Linger(uid)),
                _ => Err("linger takes one UID".into()),
            },
            "new-scope" | "new-delegated-scope" => {
                let hint = words
                    .next()
                    .and_then(unhex)
                    .ok_or_else(|| format!("{verb} takes a hint in hex"))?;
                Ok(Request::NewScope {
                    hint: OsString::from_vec(hint),
                    pids: pids_of(words)?,
                    delegate: verb == "new-delegated-scope",
                })
            }
            "attach" => {
                let scope = words
                    .next()
                    .filter(|s| crate::scope::is_unit_name(s))
                    .ok_or("attach takes a scope's unit name")?;
                Ok(Request::Attach {
                    scope: scope.to_owned(),
                    pids: pids_of(words)?,
                })
            }
            _ => Err(format!("unknown request '{}'", line.escape_default())),
        }
    }
}

/// Where the helper is for the executable at `exe`: `../libexec/hupkit/` from
/// its directory if it is there, else its own directory if it is there;
/// `Err` with the installed path when neither is.
pub fn locate_from(exe: &Path) -> std::result::Result<PathBuf, PathBuf> {
    let dir = exe.parent().unwrap_or(Path::new("/"));
    let installed = dir.join("../libexec/hupkit").join(HELPER);
    if installed.exists() {
        return Ok(installed);
    }
    let beside = dir.join(HELPER);
    if beside.exists() {
        return Ok(beside);
    }
    // The path as people read it: without the `..`.
    let shown = dir.parent().map_or_else(
        || installed.clone(),
        |up| up.join("libexec/hupkit").join(HELPER),
    );
    Err(shown)
}

/// The helper, found from this process's own executable ([`locate_from`]).
pub fn locate() -> Result<PathBuf> {
    let exe = std::fs::read_link("/proc/self/exe").map_err(|e| {
        Error::Start(
            PathBuf::from("/proc/self/exe"),
            Errno::from_raw(e.raw_os_error().unwrap_or(0)),
        )
    })?;
    locate_from(&exe).map_err(Error::Missing)
}

/// A running helper, connected to this process by a socket pair. Dropping it
/// closes the socket (the helper exits) and reaps the helper.
#[derive(Debug)]
pub struct Helper {
    path: PathBuf,
    child: Child,
    sock: UnixStream,
    buf: Vec<u8>,
    deadline: Duration,
}

impl Helper {
    /// Finds ([`locate`]) and starts the helper. Nothing has been asked of it
    /// yet: [`Helper::connect`] or [`Helper::enable_linger`] come next.
    pub fn start() -> Result<Helper> {
        Self::start_at(&locate()?)
    }

    /// Starts the helper at `path`.
    pub fn start_at(path: &Path) -> Result<Helper> {
        let errno = |e: &std::io::Error| Errno::from_raw(e.raw_os_error().unwrap_or(0));
        let start = |e: std::io::Error| Error::Start(path.to_path_buf(), errno(&e));
        // Both ends close-on-exec; the helper's end becomes its fds 0 and 1.
        let (sock, theirs) = UnixStream::pair().map_err(start)?;
        let theirs = OwnedFd::from(theirs);
        let out = theirs.try_clone().map_err(start)?;
        let child = Command::new(path)
            .stdin(Stdio::from(theirs))
            .stdout(Stdio::from(out))
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| {
                if e.kind() == std::io::ErrorKind::NotFound {
                    Error::Missing(path.to_path_buf())
                } else {
                    start(e)
                }
            })?;
        Ok(Helper {
            path: path.to_path_buf(),
            child,
            sock,
            buf: Vec::new(),
            deadline: REPLY_DEADLINE,
        })
    }

    /// Sets how long each reply may take from now on ([`REPLY_DEADLINE`]
    /// unless set).
    pub fn set_deadline(&mut self, deadline: Duration) {
        self.deadline = deadline;
    }

    fn broken(&self, why: impl Into<String>) -> Error {
        Error::Broken(self.path.clone(), why.into())
    }

    /// Sends `req` and returns the word after `ok` (empty for a bare `ok`).
    pub fn request(&mut self, req: &Request) -> Result<String> {
        let rest = self.request_line(req)?;
        if rest.contains(' ') {
            return Err(self.broken(format!(
                "answered something that is not a reply: {}",
                crate::quote::quote_bytes(format!("ok {rest}").as_bytes(), false)
            )));
        }
        Ok(rest)
    }

    /// Sends `req` and returns what follows `ok ` on the reply line (empty
    /// for a bare `ok`), any number of words.
    fn request_line(&mut self, req: &Request) -> Result<String> {
        let mut line = req.line();
        line.push('\n');
        let sent = nix::sys::socket::send(
            std::os::fd::AsRawFd::as_raw_fd(&self.sock),
            line.as_bytes(),
            nix::sys::socket::MsgFlags::MSG_NOSIGNAL,
        );
        match sent {
            Ok(n) if n == line.len() => {}
            Ok(_) => return Err(self.broken("took only part of a request")),
            // It is gone: what it said before it went is read below.
            Err(Errno::EPIPE | Errno::ECONNRESET) => {}
            Err(e) => return Err(self.broken(format!("cannot be written to: {}", strerror(e)))),
        }
        let reply = self.read_line()?;
        if let Some(word) = reply.strip_prefix("ok") {
            if word.is_empty() {
                return Ok(String::new());
            }
            if let Some(words) = word.strip_prefix(' ') {
                if !words.is_empty() && !words.starts_with(' ') && !words.ends_with(' ') {
                    return Ok(words.to_owned());
                }
            }
        } else if let Some(why) = reply.strip_prefix("error ") {
            if !why.is_empty() {
                return Err(Error::Refused(why.to_owned()));
            }
        }
        Err(self.broken(format!(
            "answered something that is not a reply: {}",
            crate::quote::quote_bytes(reply.as_bytes(), false)
        )))
    }

    /// One reply line, within the deadline ([`Helper::set_deadline`]).
    fn read_line(&mut self) -> Result<String> {
        let end = Instant::now() + self.deadline;
        loop {
            if let Some(at) = self.buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=at).collect();
                return String::from_utf8(line[..at].to_vec())
                    .map_err(|_| self.broken("answered something that is not text"));
            }
            if self.buf.len() > MAX_REPLY {
                return Err(self.broken("answered a line too long to be a reply"));
            }
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(self.broken(format!(
                    "did not answer within {} s",
                    self.deadline.as_secs_f64()
                )));
            }
            let ms = u16::try_from(left.as_millis()).unwrap_or(u16::MAX);
            let mut fds = [PollFd::new(self.sock.as_fd(), PollFlags::POLLIN)];
            match poll(&mut fds, PollTimeout::from(ms)) {
                Ok(0) | Err(Errno::EINTR) => continue,
                Ok(_) => {}
                Err(e) => return Err(self.broken(format!("cannot be read: {}", strerror(e)))),
            }
            let mut chunk = [0u8; 512];
            match nix::unistd::read(&self.sock, &mut chunk) {
                // ECONNRESET: it exited without reading all it was sent.
                Ok(0) | Err(Errno::ECONNRESET) => {
                    return Err(self.broken(if self.buf.is_empty() {
                        "exited without answering".to_owned()
                    } else {
                        "exited in the middle of a reply".to_owned()
                    }));
                }
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(Errno::EINTR | Errno::EAGAIN) => {}
                Err(e) => return Err(self.broken(format!("cannot be read: {}", strerror(e)))),
            }
        }
    }

    /// Connects the helper to the caller's service manager.
    pub fn connect(&mut self) -> Result<Bus> {
        match self.request(&Request::Connect)?.as_str() {
            "user" => Ok(Bus::User),
            "system" => Ok(Bus::System),
            other => Err(self.broken(format!(
                "named no service manager: {}",
                crate::quote::quote_bytes(other.as_bytes(), false)
            ))),
        }
    }

    /// logind's settings, from login1's properties on the system bus.
    pub fn logind_settings(&mut self) -> Result<LogindSettings> {
        let words = self.request_line(&Request::LogindSettings)?;
        LogindSettings::parse(&words).ok_or_else(|| {
            self.broken(format!(
                "answered no logind settings: {}",
                crate::quote::quote_bytes(words.as_bytes(), false)
            ))
        })
    }

    /// Kills and reaps the helper now, rather than waiting for it to see
    /// end-of-file (for one that did not answer in time: it may be stuck).
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Turns lingering on for user `uid` (login1's `SetUserLinger`).
    pub fn enable_linger(&mut self, uid: u32) -> Result<()> {
        self.request(&Request::Linger(uid)).map(drop)
    }

    /// Moves `pids` into a new transient scope named after `hint`; its name
    /// once the manager has finished and every PID's cgroup is the scope's.
    pub fn move_to_new_scope(&mut self, pids: &[u32], hint: &OsStr) -> Result<String> {
        self.new_scope(pids, hint, false)
    }

    /// As [`Helper::move_to_new_scope`], delegated, so that
    /// [`Helper::attach_to_scope`] can move more into it.
    pub fn move_job_to_new_scope(&mut self, pids: &[u32], hint: &OsStr) -> Result<String> {
        self.new_scope(pids, hint, true)
    }

    fn new_scope(&mut self, pids: &[u32], hint: &OsStr, delegate: bool) -> Result<String> {
        let scope = self.request(&Request::NewScope {
            hint: hint.to_os_string(),
            pids: pids.to_vec(),
            delegate,
        })?;
        if crate::scope::is_unit_name(&scope)
            && scope.strip_suffix(".scope").is_some_and(|s| !s.is_empty())
        {
            Ok(scope)
        } else {
            Err(self.broken(format!(
                "named no scope: {}",
                crate::quote::quote_bytes(scope.as_bytes(), false)
            )))
        }
    }

    /// Moves `pids` into the delegated scope `name`.
    pub fn attach_to_scope(&mut self, name: &str, pids: &[u32]) -> Result<()> {
        self.request(&Request::Attach {
            scope: name.to_owned(),
            pids: pids.to_vec(),
        })
        .map(drop)
    }
}

impl Drop for Helper {
    /// End-of-file on the helper's input: it exits. It is reaped, and killed
    /// if it has not exited within a second (stuck in a call). Its exit
    /// closes its end of the socket: that is waited for with `poll`, not by
    /// polling `waitpid` at intervals (which cost rjobs' forecast a few
    /// milliseconds each run).
    fn drop(&mut self) {
        let _ = self.sock.shutdown(std::net::Shutdown::Write);
        let end = Instant::now() + Duration::from_secs(1);
        let mut chunk = [0u8; 512];
        loop {
            if !matches!(self.child.try_wait(), Ok(None)) {
                return;
            }
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            let ms = u16::try_from(left.as_millis()).unwrap_or(u16::MAX);
            let mut fds = [PollFd::new(self.sock.as_fd(), PollFlags::POLLIN)];
            match poll(&mut fds, PollTimeout::from(ms)) {
                // Its end is closed (end-of-file): it has exited, or is about
                // to; a little longer for the kernel to make it a zombie.
                Ok(n)
                    if n > 0
                        && matches!(
                            nix::unistd::read(&self.sock, &mut chunk),
                            Ok(0) | Err(Errno::ECONNRESET)
                        ) =>
                {
                    std::thread::sleep(Duration::from_micros(200));
                }
                // Something it still wrote, or a signal: read on.
                Ok(_) | Err(Errno::EINTR) => {}
                Err(_) => std::thread::sleep(Duration::from_millis(5)),
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The helper's standard output: a reply line, for [`crate::dbus`]'s server
/// side. A sentence's newlines become spaces, so that it stays one line.
#[must_use]
pub fn reply_line(reply: std::result::Result<String, String>) -> String {
    match reply {
        Ok(word) if word.is_empty() => "ok\n".into(),
        Ok(word) => format!("ok {word}\n"),
        Err(why) => format!("error {}\n", why.replace(['\n', '\r'], " ")),
    }
}

/// Writes `line` to `out`, for the server side; false if it could not be.
pub fn send_line(out: &mut impl std::io::Write, line: &str) -> bool {
    out.write_all(line.as_bytes())
        .and_then(|()| out.flush())
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip() {
        let reqs = [
            Request::Connect,
            Request::Linger(1000),
            Request::NewScope {
                hint: OsString::from_vec(b"my job\n\xff".to_vec()),
                pids: vec![1, 2],
                delegate: false,
            },
            Request::NewScope {
                hint: OsString::new(),
                pids: vec![7],
                delegate: true,
            },
            Request::Attach {
                scope: "hupkit-a\\x20b-1-2.scope".into(),
                pids: vec![3],
            },
            Request::LogindSettings,
        ];
        for r in reqs {
            let line = r.line();
            assert!(!line.contains('\n'), "{line}");
            assert_eq!(Request::parse(&line), Ok(r));
        }
        for bad in [
            "",
            "connect now",
            "linger",
            "linger x",
            "new-scope zz 1",
            "new-scope 61",
            "attach a/b 1",
            "attach x.scope 1 y",
            "logind-settings now",
        ] {
            assert!(Request::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_helper_is_found_beside_or_in_libexec() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        let libexec = dir.path().join("libexec/hupkit");
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::create_dir_all(&libexec).unwrap();
        let exe = bin.join("detach");
        assert_eq!(
            locate_from(&exe),
            Err(dir.path().join("libexec/hupkit/hupkit-dbus"))
        );
        std::fs::write(bin.join(HELPER), "").unwrap();
        assert_eq!(locate_from(&exe), Ok(bin.join(HELPER)));
        std::fs::write(libexec.join(HELPER), "").unwrap();
        assert_eq!(
            locate_from(&exe),
            Ok(bin.join("../libexec/hupkit").join(HELPER))
        );
    }

    #[test]
    fn replies_are_one_line() {
        assert_eq!(reply_line(Ok(String::new())), "ok\n");
        assert_eq!(reply_line(Ok("user".into())), "ok user\n");
        assert_eq!(reply_line(Err("a\nb".into())), "error a b\n");
    }

    #[test]
    fn logind_settings_round_trip_and_garbage_is_none() {
        let all = LogindSettings {
            kill_user_processes: true,
            kill_only_users: vec!["alice".into(), "b,c d".into()],
            kill_exclude_users: vec!["root".into()],
            user_stop_delay_usec: u64::MAX,
        };
        let none = LogindSettings {
            kill_user_processes: false,
            kill_only_users: Vec::new(),
            kill_exclude_users: Vec::new(),
            user_stop_delay_usec: 10_000_000,
        };
        assert_eq!(
            none.words(),
            "kill=no only= exclude= delay=10000000",
            "the reply's words"
        );
        for s in [all, none] {
            let words = s.words();
            assert_eq!(words.lines().count(), 1);
            assert_eq!(LogindSettings::parse(&words), Some(s));
        }
        for bad in [
            "",
            " ",
            "ok",
            "kill=yes",
            "kill=maybe only= exclude= delay=1",
            "kill=yes only= exclude= delay=",
            "kill=yes only= exclude= delay=-1",
            "kill=yes only= exclude= delay=+1",
            "kill=yes only= exclude= delay=1.5",
            "kill=yes only= exclude= delay=18446744073709551616",
            "kill=yes only= exclude= delay=1 more",
            "kill=yes only= exclude= delay=1 ",
            "kill=yes only=zz exclude= delay=1",
            "kill=yes only=616 exclude= delay=1",
            "kill=yes only=61, exclude= delay=1",
            "kill=yes only=- exclude= delay=1",
            "kill=yes only=ff exclude= delay=1",
            "kill=yes exclude= only= delay=1",
            "kill=yes  only= exclude= delay=1",
            "kill=yes only=\u{e9} exclude= delay=1",
            "only= kill=yes exclude= delay=1",
        ] {
            assert_eq!(LogindSettings::parse(bad), None, "{bad:?}");
        }
    }

    /// A helper that never answers costs the deadline, not a hang; one that
    /// answers garbage is an error, not a panic.
    #[test]
    fn logind_settings_from_a_silent_or_garbled_helper() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let script = |name: &str, body: &str| {
            let p = dir.path().join(name);
            std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
            p
        };
        let silent = script("silent", "exec sleep 30");
        let mut h = Helper::start_at(&silent).unwrap();
        h.set_deadline(Duration::from_millis(200));
        let t = Instant::now();
        assert!(matches!(h.logind_settings(), Err(Error::Broken(..))));
        h.kill();
        assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
        for reply in [
            "ok kill=perhaps",
            "ok",
            "ok user",
            "error no bus",
            "nonsense",
        ] {
            let p = script("garbled", &format!("read l; echo '{reply}'; read l"));
            let mut h = Helper::start_at(&p).unwrap();
            h.set_deadline(Duration::from_secs(10));
            assert!(h.logind_settings().is_err(), "{reply}");
        }
    }
}
