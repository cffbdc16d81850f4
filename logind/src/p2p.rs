//! A minimal D-Bus peer-to-peer client for one socket: the service manager's
//! private socket (`$XDG_RUNTIME_DIR/systemd/private` for a user's manager,
//! `/run/systemd/private` for PID 1), used when there is no bus.
//!
//! Why not zbus: systemd marks its messages on that socket with the sender
//! `org.freedesktop.systemd1`, a well-known name where zbus 5.19's header
//! parser wants a unique one, and zbus's connection thread panics on the
//! first such message. This client speaks exactly the few calls the scope
//! level needs (`Subscribe`, `StartTransientUnit`, `AttachProcessesToUnit`)
//! and reads exactly the replies and the one signal (`JobRemoved`) it waits
//! for, skipping every other message by its lengths.
//!
//! The decisions:
//! - **The peer is checked before a byte is sent**: the socket's directory
//!   and the socket belong to the user (root for PID 1's) and nobody else may
//!   write the directory, and `SO_PEERCRED` says the peer runs as that user
//!   (and is PID 1 for the system manager). A root tool never talks to a
//!   forged socket.
//! - **Protocol**: SASL `AUTH EXTERNAL` with the effective UID in hex and
//!   `BEGIN` in one write, the first call only after the server's `OK`; no
//!   `Hello` (there is no bus). Little-endian marshalling, aligned
//!   as the D-Bus specification says (8 for structs and dict entries, 4 for
//!   array lengths, the element's alignment before the first element).
//! - **Never hang, never panic**: every read and write has the caller's
//!   deadline, a message longer than [`MAX_MESSAGE`] is refused, and the
//!   parser returns `None` for any byte sequence it does not understand
//!   (unit-tested with garbage).

use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};

/// The longest message accepted (the specification allows 128 MiB; systemd's
/// replies to these calls are a few hundred bytes).
pub const MAX_MESSAGE: usize = 1 << 20;

/// How long connecting and each call may take.
const CALL_DEADLINE: Duration = Duration::from_secs(20);

/// Message types.
const METHOD_CALL: u8 = 1;
const METHOD_RETURN: u8 = 2;
const ERROR: u8 = 3;
const SIGNAL: u8 = 4;

/// Header field codes.
const F_PATH: u8 = 1;
const F_INTERFACE: u8 = 2;
const F_MEMBER: u8 = 3;
const F_ERROR_NAME: u8 = 4;
const F_REPLY_SERIAL: u8 = 5;
const F_SIGNATURE: u8 = 8;

const MANAGER_PATH: &str = "/org/freedesktop/systemd1";
const MANAGER_IFACE: &str = "org.freedesktop.systemd1.Manager";

/// A value of a `StartTransientUnit` property.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Prop {
    /// `s`
    Str(String),
    /// `b`
    Bool(bool),
    /// `au`
    U32s(Vec<u32>),
}

/// A little-endian D-Bus marshaller; offsets count from the buffer's start,
/// which is the message's or the body's (the body starts 8-aligned).
#[derive(Default)]
struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    fn align(&mut self, n: usize) {
        while !self.buf.len().is_multiple_of(n) {
            self.buf.push(0);
        }
    }

    fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }

    fn u32(&mut self, v: u32) {
        self.align(4);
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    /// A string or object path: length, bytes, NUL.
    fn string(&mut self, s: &str) {
        self.u32(u32::try_from(s.len()).unwrap_or(u32::MAX));
        self.buf.extend_from_slice(s.as_bytes());
        self.buf.push(0);
    }

    /// A signature: one byte of length, bytes, NUL.
    fn signature(&mut self, s: &str) {
        self.buf.push(u8::try_from(s.len()).unwrap_or(u8::MAX));
        self.buf.extend_from_slice(s.as_bytes());
        self.buf.push(0);
    }

    /// An array whose elements align to `elem_align`, written by `body`.
    fn array(&mut self, elem_align: usize, body: impl FnOnce(&mut Writer)) {
        self.align(4);
        let at = self.buf.len();
        self.buf.extend_from_slice(&[0; 4]);
        self.align(elem_align);
        let start = self.buf.len();
        body(self);
        let len = u32::try_from(self.buf.len() - start).unwrap_or(u32::MAX);
        self.buf[at..at + 4].copy_from_slice(&len.to_le_bytes());
    }

    fn prop(&mut self, name: &str, value: &Prop) {
        self.align(8);
        self.string(name);
        match value {
            Prop::Str(s) => {
                self.signature("s");
                self.string(s);
            }
            Prop::Bool(b) => {
                self.signature("b");
                self.u32(u32::from(*b));
            }
            Prop::U32s(v) => {
                self.signature("au");
                self.array(4, |w| v.iter().for_each(|&x| w.u32(x)));
            }
        }
    }
}

/// The body of `StartTransientUnit(name, mode, properties, [])`, signature
/// `ssa(sv)a(sa(sv))`.
#[must_use]
pub fn start_transient_unit_body(name: &str, mode: &str, props: &[(&str, Prop)]) -> Vec<u8> {
    let mut w = Writer::default();
    w.string(name);
    w.string(mode);
    w.array(8, |w| props.iter().for_each(|(n, v)| w.prop(n, v)));
    w.array(8, |_| {});
    w.buf
}

/// The body of `AttachProcessesToUnit(name, "", pids)`, signature `ssau`.
#[must_use]
pub fn attach_body(name: &str, pids: &[u32]) -> Vec<u8> {
    let mut w = Writer::default();
    w.string(name);
    w.string("");
    w.array(4, |w| pids.iter().for_each(|&p| w.u32(p)));
    w.buf
}

/// A whole method call to the manager object: header, padding, body.
#[must_use]
pub fn method_call(serial: u32, member: &str, signature: &str, body: &[u8]) -> Vec<u8> {
    let mut w = Writer::default();
    w.u8(b'l');
    w.u8(METHOD_CALL);
    w.u8(0);
    w.u8(1);
    w.u32(u32::try_from(body.len()).unwrap_or(u32::MAX));
    w.u32(serial);
    w.array(8, |w| {
        let mut field = |code: u8, sig: &str, value: &str| {
            w.align(8);
            w.u8(code);
            w.signature(sig);
            if sig == "g" {
                w.signature(value);
            } else {
                w.string(value);
            }
        };
        field(F_PATH, "o", MANAGER_PATH);
        field(F_INTERFACE, "s", MANAGER_IFACE);
        field(F_MEMBER, "s", member);
        if !signature.is_empty() {
            field(F_SIGNATURE, "g", signature);
        }
    });
    w.align(8);
    w.buf.extend_from_slice(body);
    w.buf
}

/// A reader over one message's bytes, in its byte order; every step `None`
/// past the end or on a malformed value.
struct Reader<'a> {
    buf: &'a [u8],
    at: usize,
    big: bool,
}

impl Reader<'_> {
    fn align(&mut self, n: usize) -> Option<()> {
        let to = self.at.checked_add(n - 1)? / n * n;
        if to > self.buf.len() {
            return None;
        }
        self.at = to;
        Some(())
    }

    fn bytes(&mut self, n: usize) -> Option<&[u8]> {
        let end = self.at.checked_add(n)?;
        let b = self.buf.get(self.at..end)?;
        self.at = end;
        Some(b)
    }

    fn u8(&mut self) -> Option<u8> {
        Some(self.bytes(1)?[0])
    }

    fn u32(&mut self) -> Option<u32> {
        self.align(4)?;
        let b: [u8; 4] = self.bytes(4)?.try_into().ok()?;
        Some(if self.big {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        })
    }

    fn string(&mut self) -> Option<String> {
        let n = usize::try_from(self.u32()?).ok()?;
        let s = self.bytes(n)?.to_vec();
        (self.u8()? == 0).then_some(())?;
        String::from_utf8(s).ok()
    }

    fn signature(&mut self) -> Option<String> {
        let n = usize::from(self.u8()?);
        let s = self.bytes(n)?.to_vec();
        (self.u8()? == 0).then_some(())?;
        String::from_utf8(s).ok()
    }

    /// Skips one complete type at the head of `sig`; returns the rest.
    fn skip<'s>(&mut self, sig: &'s [u8], depth: u32) -> Option<&'s [u8]> {
        if depth > 32 {
            return None;
        }
        let (&c, rest) = sig.split_first()?;
        match c {
            b'y' => {
                self.bytes(1)?;
            }
            b'n' | b'q' => {
                self.align(2)?;
                self.bytes(2)?;
            }
            b'b' | b'i' | b'u' | b'h' => {
                self.u32()?;
            }
            b'x' | b't' | b'd' => {
                self.align(8)?;
                self.bytes(8)?;
            }
            b's' | b'o' => {
                self.string()?;
            }
            b'g' => {
                self.signature()?;
            }
            b'v' => {
                let inner = self.signature()?;
                let left = self.skip(inner.as_bytes(), depth + 1)?;
                left.is_empty().then_some(())?;
            }
            b'a' => {
                let n = usize::try_from(self.u32()?).ok()?;
                if n > MAX_MESSAGE {
                    return None;
                }
                self.align(alignment(*rest.first()?))?;
                let end = self.at.checked_add(n)?;
                if end > self.buf.len() {
                    return None;
                }
                let after = type_end(rest, depth + 1)?;
                let elem = &rest[..rest.len() - after.len()];
                while self.at < end {
                    let left = self.skip(elem, depth + 1)?;
                    left.is_empty().then_some(())?;
                }
                (self.at == end).then_some(())?;
                return Some(after);
            }
            b'(' | b'{' => {
                self.align(8)?;
                let close = if c == b'(' { b')' } else { b'}' };
                let mut left = rest;
                while *left.first()? != close {
                    left = self.skip(left, depth + 1)?;
                }
                return Some(&left[1..]);
            }
            _ => return None,
        }
        Some(rest)
    }
}

/// The rest of `sig` after its first complete type, reading nothing.
fn type_end(sig: &[u8], depth: u32) -> Option<&[u8]> {
    if depth > 32 {
        return None;
    }
    let (&c, rest) = sig.split_first()?;
    match c {
        b'a' => type_end(rest, depth + 1),
        b'(' | b'{' => {
            let close = if c == b'(' { b')' } else { b'}' };
            let mut left = rest;
            while *left.first()? != close {
                left = type_end(left, depth + 1)?;
            }
            Some(&left[1..])
        }
        b'y' | b'n' | b'q' | b'b' | b'i' | b'u' | b'h' | b'x' | b't' | b'd' | b's' | b'o'
        | b'g' | b'v' => Some(rest),
        _ => None,
    }
}

/// The alignment of a type starting with `c`.
fn alignment(c: u8) -> usize {
    match c {
        b'n' | b'q' => 2,
        b'b' | b'i' | b'u' | b'h' | b's' | b'o' | b'a' => 4,
        b'x' | b't' | b'd' | b'(' | b'{' => 8,
        _ => 1,
    }
}

/// What a received message is, as far as this client cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming {
    /// A method return for call `serial`; its body's first object path, if
    /// it has one.
    Return { serial: u32, path: Option<String> },
    /// An error reply to call `serial`: its name and message.
    Error {
        serial: u32,
        name: String,
        message: String,
    },
    /// The manager's `JobRemoved(id, job, unit, result)`.
    JobRemoved { job: String, result: String },
    /// Anything else (other signals, calls to us).
    Other,
}

/// The total length of a message whose first 16 bytes are `head`, if they
/// are a D-Bus header this client accepts.
#[must_use]
pub fn message_len(head: &[u8]) -> Option<usize> {
    let big = match head.first()? {
        b'l' => false,
        b'B' => true,
        _ => return None,
    };
    (*head.get(3)? == 1).then_some(())?;
    let mut r = Reader {
        buf: head.get(..16)?,
        at: 4,
        big,
    };
    let body = usize::try_from(r.u32()?).ok()?;
    r.u32()?;
    let fields = usize::try_from(r.u32()?).ok()?;
    let header = 16usize.checked_add(fields)?.checked_add(7)? / 8 * 8;
    let total = header.checked_add(body)?;
    (total <= MAX_MESSAGE).then_some(total)
}

/// Parses one whole message ([`message_len`] bytes).
#[must_use]
pub fn parse(msg: &[u8]) -> Option<Incoming> {
    let total = message_len(msg)?;
    let msg = msg.get(..total)?;
    let big = msg[0] == b'B';
    let kind = msg[1];
    let mut r = Reader {
        buf: msg,
        at: 12,
        big,
    };
    let fields_len = usize::try_from(r.u32()?).ok()?;
    let fields_end = 16usize.checked_add(fields_len)?;
    let (mut member, mut iface, mut error, mut reply, mut sig) = (None, None, None, None, None);
    {
        let mut f = Reader {
            buf: msg.get(..fields_end)?,
            at: 16,
            big,
        };
        while f.at < fields_end {
            f.align(8)?;
            let code = f.u8()?;
            let vsig = f.signature()?;
            match (code, vsig.as_str()) {
                (F_INTERFACE, "s") => iface = Some(f.string()?),
                (F_MEMBER, "s") => member = Some(f.string()?),
                (F_ERROR_NAME, "s") => error = Some(f.string()?),
                (F_REPLY_SERIAL, "u") => reply = Some(f.u32()?),
                (F_SIGNATURE, "g") => sig = Some(f.signature()?),
                _ => {
                    let left = f.skip(vsig.as_bytes(), 0)?;
                    left.is_empty().then_some(())?;
                }
            }
        }
    }
    r.at = fields_end;
    r.align(8)?;
    let sig = sig.unwrap_or_default();
    match kind {
        METHOD_RETURN => Some(Incoming::Return {
            serial: reply?,
            path: if sig.starts_with('o') {
                r.string()
            } else {
                None
            },
        }),
        ERROR => Some(Incoming::Error {
            serial: reply?,
            name: error?,
            message: if sig.starts_with('s') {
                r.string().unwrap_or_default()
            } else {
                String::new()
            },
        }),
        SIGNAL
            if iface.as_deref() == Some(MANAGER_IFACE)
                && member.as_deref() == Some("JobRemoved")
                && sig == "uoss" =>
        {
            r.u32()?;
            let job = r.string()?;
            r.string()?;
            let result = r.string()?;
            Some(Incoming::JobRemoved { job, result })
        }
        METHOD_CALL | SIGNAL => Some(Incoming::Other),
        _ => None,
    }
}

/// A connection to a service manager's private socket.
pub struct Peer {
    stream: UnixStream,
    serial: u32,
    /// Bytes read past the last whole message.
    pending: Vec<u8>,
    /// `JobRemoved` signals read while waiting for a reply: (job, result).
    removed: Vec<(String, String)>,
}

fn io_text(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => {
            "the manager did not answer in time".into()
        }
        std::io::ErrorKind::UnexpectedEof => "the manager closed the connection".into(),
        _ => e.raw_os_error().map_or_else(
            || e.to_string(),
            |n| hupkit_common::diag::strerror(Errno::from_raw(n)),
        ),
    }
}

/// Whether `dir` is a directory of `uid`'s that nobody else may write to.
fn own_dir(dir: &Path, uid: u32) -> Result<(), String> {
    let meta = std::fs::symlink_metadata(dir).map_err(|e| {
        format!(
            "{}: {}",
            hupkit_common::quote::quote(dir.as_os_str()),
            io_text(&e)
        )
    })?;
    if !meta.is_dir() || meta.uid() != uid || meta.permissions().mode() & 0o022 != 0 {
        return Err(format!(
            "{} is not a directory of the user's that only the user may write to",
            hupkit_common::quote::quote(dir.as_os_str())
        ));
    }
    Ok(())
}

impl Peer {
    /// Connects to the manager of `uid` (PID 1 for 0) at `socket`, checking
    /// the socket's directory and the peer first; authenticates.
    pub fn connect(socket: &Path, uid: u32) -> Result<Peer, String> {
        let q = || hupkit_common::quote::quote(socket.as_os_str());
        let dir = socket.parent().unwrap_or(Path::new("/"));
        // The socket's directory and the one above it (the runtime
        // directory, or /run).
        let meta =
            std::fs::symlink_metadata(socket).map_err(|e| format!("{}: {}", q(), io_text(&e)))?;
        own_dir(dir, uid)?;
        if uid != 0 {
            own_dir(dir.parent().unwrap_or(Path::new("/")), uid)?;
        }
        if meta.uid() != uid {
            return Err(format!("{}: not the user's socket", q()));
        }
        let stream =
            UnixStream::connect(socket).map_err(|e| format!("{}: {}", q(), io_text(&e)))?;
        let cred = getsockopt(&stream, PeerCredentials)
            .map_err(|e| format!("{}: {}", q(), hupkit_common::diag::strerror(e)))?;
        if cred.uid() != uid || (uid == 0 && cred.pid() != 1) {
            return Err(format!(
                "{}: its peer (PID {}, UID {}) is not the manager",
                q(),
                cred.pid(),
                cred.uid()
            ));
        }
        let mut peer = Peer {
            stream,
            serial: 0,
            pending: Vec::new(),
            removed: Vec::new(),
        };
        peer.auth(Instant::now() + CALL_DEADLINE)
            .map_err(|e| format!("{}: {e}", q()))?;
        Ok(peer)
    }

    fn auth(&mut self, end: Instant) -> Result<(), String> {
        let me = nix::unistd::geteuid().as_raw().to_string();
        // The UID's decimal digits in hex: each digit d is the byte 0x3d.
        let hex: String = me.chars().flat_map(|d| ['3', d]).collect();
        // AUTH and BEGIN in one write, as sd-bus's own clients (systemctl)
        // send them, and the first call only after the server's OK: systemd's
        // server, which reads both lines before it answers, has then left
        // the authentication state. A call sent in the wake of a separate
        // BEGIN can reach it in the same read as BEGIN and then wait unread
        // (seen in the container: no answer within 20 s, now and then).
        self.send(
            format!("\0AUTH EXTERNAL {hex}\r\nBEGIN\r\n").as_bytes(),
            end,
        )?;
        let line = self.line(end)?;
        if !line.starts_with("OK ") {
            return Err(format!(
                "the manager refused authentication ('{}')",
                line.chars().take(80).collect::<String>()
            ));
        }
        Ok(())
    }

    fn send(&mut self, bytes: &[u8], end: Instant) -> Result<(), String> {
        let left = end.saturating_duration_since(Instant::now());
        self.stream
            .set_write_timeout(Some(left.max(Duration::from_millis(1))))
            .map_err(|e| io_text(&e))?;
        self.stream.write_all(bytes).map_err(|e| io_text(&e))
    }

    /// Reads more bytes into `pending`, by the deadline.
    fn fill(&mut self, end: Instant) -> Result<(), String> {
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err("the manager did not answer in time".into());
        }
        self.stream
            .set_read_timeout(Some(left))
            .map_err(|e| io_text(&e))?;
        let mut chunk = [0u8; 4096];
        match self.stream.read(&mut chunk) {
            Ok(0) => Err("the manager closed the connection".into()),
            Ok(n) => {
                self.pending.extend_from_slice(&chunk[..n]);
                Ok(())
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => Ok(()),
            Err(e) => Err(io_text(&e)),
        }
    }

    /// One SASL line, without its CR LF.
    fn line(&mut self, end: Instant) -> Result<String, String> {
        loop {
            if let Some(at) = self.pending.windows(2).position(|w| w == b"\r\n") {
                let line = String::from_utf8_lossy(&self.pending[..at]).into_owned();
                self.pending.drain(..at + 2);
                return Ok(line);
            }
            if self.pending.len() > 512 {
                return Err("the manager's authentication line is too long".into());
            }
            self.fill(end)?;
        }
    }

    /// The next message, by the deadline.
    fn next(&mut self, end: Instant) -> Result<Incoming, String> {
        while self.pending.len() < 16 {
            self.fill(end)?;
        }
        let total = message_len(&self.pending)
            .ok_or_else(|| "the manager sent a message this client cannot read".to_owned())?;
        while self.pending.len() < total {
            self.fill(end)?;
        }
        let msg: Vec<u8> = self.pending.drain(..total).collect();
        parse(&msg).ok_or_else(|| "the manager sent a malformed message".to_owned())
    }

    /// Calls `member` on the manager object; the reply's object path, if any.
    fn call(
        &mut self,
        member: &str,
        signature: &str,
        body: &[u8],
    ) -> Result<Option<String>, String> {
        let end = Instant::now() + CALL_DEADLINE;
        self.serial = self.serial.wrapping_add(1).max(1);
        let serial = self.serial;
        self.send(&method_call(serial, member, signature, body), end)?;
        loop {
            match self.next(end)? {
                Incoming::Return { serial: s, path } if s == serial => return Ok(path),
                Incoming::Error {
                    serial: s,
                    name,
                    message,
                } if s == serial => {
                    return Err(if message.is_empty() {
                        name
                    } else {
                        format!("{message} ({name})")
                    });
                }
                Incoming::JobRemoved { job, result } => self.removed.push((job, result)),
                _ => {}
            }
        }
    }

    /// Starts transient scope `name` with `props` after subscribing to the
    /// manager's signals, and waits (until `deadline`) for its job's
    /// `JobRemoved`; the error is one phrase, the result not `done` included.
    pub fn start_scope(
        &mut self,
        name: &str,
        props: &[(&str, Prop)],
        deadline: Duration,
    ) -> Result<(), String> {
        match self.call("Subscribe", "", &[]) {
            Err(e) if e.ends_with("(org.freedesktop.systemd1.AlreadySubscribed)") => {}
            other => {
                other?;
            }
        }
        let job = self
            .call(
                "StartTransientUnit",
                "ssa(sv)a(sa(sv))",
                &start_transient_unit_body(name, "fail", props),
            )?
            .ok_or_else(|| "the manager's reply named no job".to_owned())?;
        let end = Instant::now() + deadline;
        loop {
            if let Some(at) = self.removed.iter().position(|(j, _)| *j == job) {
                let (_, result) = self.removed.swap_remove(at);
                if result != "done" {
                    return Err(format!("the manager's job ended '{result}'"));
                }
                return Ok(());
            }
            match self.next(end) {
                Ok(Incoming::JobRemoved { job, result }) => self.removed.push((job, result)),
                Ok(_) => {}
                Err(_) if Instant::now() >= end => {
                    return Err(format!(
                        "the manager did not finish the job within {} s",
                        deadline.as_secs()
                    ));
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// `AttachProcessesToUnit(name, "", pids)`.
    pub fn attach(&mut self, name: &str, pids: &[u32]) -> Result<(), String> {
        self.call("AttachProcessesToUnit", "ssau", &attach_body(name, pids))
            .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attach_body_is_marshalled_as_the_specification_says() {
        // "a.scope": length 7, bytes, NUL (12 bytes); "": length 0, NUL,
        // padding to 4 (20); au: length 8, then 2 and 3.
        let mut want = Vec::new();
        want.extend_from_slice(&7u32.to_le_bytes());
        want.extend_from_slice(b"a.scope\0");
        want.extend_from_slice(&0u32.to_le_bytes());
        want.extend_from_slice(&[0, 0, 0, 0]);
        want.extend_from_slice(&8u32.to_le_bytes());
        want.extend_from_slice(&2u32.to_le_bytes());
        want.extend_from_slice(&3u32.to_le_bytes());
        assert_eq!(attach_body("a.scope", &[2, 3]), want);
    }

    #[test]
    fn start_transient_unit_body_aligns_structs_and_variants() {
        let body = start_transient_unit_body(
            "x.scope",
            "fail",
            &[
                ("PIDs", Prop::U32s(vec![5])),
                ("Delegate", Prop::Bool(true)),
            ],
        );
        let mut want = Vec::new();
        want.extend_from_slice(&7u32.to_le_bytes()); // 0
        want.extend_from_slice(b"x.scope\0"); // 4..12
        want.extend_from_slice(&4u32.to_le_bytes()); // 12
        want.extend_from_slice(b"fail\0"); // 16..21
        want.extend_from_slice(&[0, 0, 0]); // pad to 24
        want.extend_from_slice(&44u32.to_le_bytes()); // 24: a(sv) length, from 32 to 76
        want.extend_from_slice(&[0, 0, 0, 0]); // pad to 32 for the struct
        // ("PIDs", <au [5]>) at 32
        want.extend_from_slice(&4u32.to_le_bytes()); // 32
        want.extend_from_slice(b"PIDs\0"); // 36..41
        want.extend_from_slice(b"\x02au\0"); // 41..45
        want.extend_from_slice(&[0, 0, 0]); // pad to 48
        want.extend_from_slice(&4u32.to_le_bytes()); // 48 array length
        want.extend_from_slice(&5u32.to_le_bytes()); // 52
        // ("Delegate", <b true>) at 56
        want.extend_from_slice(&8u32.to_le_bytes()); // 56
        want.extend_from_slice(b"Delegate\0"); // 60..69
        want.extend_from_slice(b"\x01b\0"); // 69..72
        want.extend_from_slice(&1u32.to_le_bytes()); // 72..76
        // a(sa(sv)), empty: length 0 at 76; its elements would start at 80,
        // already 8-aligned, so no padding.
        want.extend_from_slice(&0u32.to_le_bytes());
        assert_eq!(body, want);
    }

    #[test]
    fn method_calls_have_the_header_the_specification_gives() {
        let msg = method_call(7, "Subscribe", "", &[]);
        assert_eq!(&msg[..12], b"l\x01\x00\x01\x00\x00\x00\x00\x07\x00\x00\x00");
        assert_eq!(msg.len() % 8, 0);
        assert_eq!(message_len(&msg), Some(msg.len()));
        // PATH field: code 1, signature "o", then the path aligned to 4.
        assert_eq!(&msg[16..20], b"\x01\x01o\x00");
        assert_eq!(&msg[20..24], &25u32.to_le_bytes());
        assert_eq!(&msg[24..50], b"/org/freedesktop/systemd1\0");
        let body = attach_body("a.scope", &[1]);
        let msg = method_call(8, "AttachProcessesToUnit", "ssau", &body);
        assert!(msg.ends_with(&body));
        assert_eq!((msg.len() - body.len()) % 8, 0);
        assert_eq!(
            parse(&msg),
            Some(Incoming::Other),
            "our own call parses as a call"
        );
    }

    /// A message from the manager, as systemd writes one: `kind`, fields
    /// (code, signature, value writer), body.
    fn from_manager(kind: u8, fields: &[(u8, &str, &str)], body: &[u8]) -> Vec<u8> {
        let mut w = Writer::default();
        w.u8(b'l');
        w.u8(kind);
        w.u8(1);
        w.u8(1);
        w.u32(u32::try_from(body.len()).unwrap_or_default());
        w.u32(99);
        w.array(8, |w| {
            for &(code, sig, value) in fields {
                w.align(8);
                w.u8(code);
                w.signature(sig);
                match sig {
                    "u" => w.u32(value.parse().unwrap_or_default()),
                    "g" => w.signature(value),
                    _ => w.string(value),
                }
            }
        });
        w.align(8);
        w.buf.extend_from_slice(body);
        w.buf
    }

    fn job_removed(job: &str, result: &str) -> Vec<u8> {
        let mut b = Writer::default();
        b.u32(12);
        b.string(job);
        b.string("x.scope");
        b.string(result);
        from_manager(
            SIGNAL,
            &[
                (F_PATH, "o", MANAGER_PATH),
                (F_INTERFACE, "s", MANAGER_IFACE),
                (F_MEMBER, "s", "JobRemoved"),
                (7, "s", "org.freedesktop.systemd1"),
                (F_SIGNATURE, "g", "uoss"),
            ],
            &b.buf,
        )
    }

    #[test]
    fn replies_errors_and_job_removed_are_read() {
        let mut b = Writer::default();
        b.string("/org/freedesktop/systemd1/job/12");
        let ret = from_manager(
            METHOD_RETURN,
            &[
                (F_REPLY_SERIAL, "u", "3"),
                (7, "s", "org.freedesktop.systemd1"),
                (F_SIGNATURE, "g", "o"),
            ],
            &b.buf,
        );
        assert_eq!(
            parse(&ret),
            Some(Incoming::Return {
                serial: 3,
                path: Some("/org/freedesktop/systemd1/job/12".into())
            })
        );
        let mut b = Writer::default();
        b.string("Unit x.scope already exists.");
        let err = from_manager(
            ERROR,
            &[
                (F_ERROR_NAME, "s", "org.freedesktop.systemd1.UnitExists"),
                (F_REPLY_SERIAL, "u", "4"),
                (F_SIGNATURE, "g", "s"),
            ],
            &b.buf,
        );
        assert_eq!(
            parse(&err),
            Some(Incoming::Error {
                serial: 4,
                name: "org.freedesktop.systemd1.UnitExists".into(),
                message: "Unit x.scope already exists.".into()
            })
        );
        assert_eq!(
            parse(&job_removed("/org/freedesktop/systemd1/job/12", "done")),
            Some(Incoming::JobRemoved {
                job: "/org/freedesktop/systemd1/job/12".into(),
                result: "done".into()
            })
        );
        // Another signal, with an unknown header field of a container type.
        let mut other = from_manager(
            SIGNAL,
            &[
                (F_PATH, "o", "/org/freedesktop/systemd1/unit/x"),
                (F_INTERFACE, "s", "org.freedesktop.DBus.Properties"),
                (F_MEMBER, "s", "PropertiesChanged"),
            ],
            &[],
        );
        assert_eq!(parse(&other), Some(Incoming::Other));
        other[1] = 9;
        assert_eq!(parse(&other), None, "an unknown message type");
    }

    #[test]
    fn unknown_header_fields_of_any_type_are_skipped() {
        let mut w = Writer::default();
        w.u8(b'l');
        w.u8(SIGNAL);
        w.u8(0);
        w.u8(1);
        w.u32(0);
        w.u32(5);
        w.array(8, |w| {
            w.align(8);
            w.u8(200);
            w.signature("a{sv}");
            w.array(8, |w| {
                w.align(8);
                w.string("k");
                w.signature("(yt)");
                w.align(8);
                w.u8(1);
                w.align(8);
                w.buf.extend_from_slice(&7u64.to_le_bytes());
            });
            w.align(8);
            w.u8(F_MEMBER);
            w.signature("s");
            w.string("Other");
        });
        w.align(8);
        assert_eq!(parse(&w.buf), Some(Incoming::Other));
    }

    #[test]
    fn garbage_and_truncated_messages_never_panic() {
        let good = job_removed("/org/freedesktop/systemd1/job/1", "done");
        for n in 0..good.len() {
            assert_eq!(parse(&good[..n]), None, "truncated at {n}");
        }
        // Every single byte changed to every value: no panic, whatever the answer.
        for i in 0..good.len() {
            for v in [0u8, 1, 0x7f, 0x80, 0xff, b'a', b'(', b'v', b'{'] {
                let mut bad = good.clone();
                bad[i] = v;
                let _ = parse(&bad);
                let _ = message_len(&bad);
            }
        }
        // Pseudo-random bytes (xorshift, fixed seed), with a valid start.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for round in 0..20_000 {
            let len = (round % 200) + 16;
            let mut bytes: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x.to_le_bytes()[0]
                })
                .collect();
            if round % 2 == 0 {
                bytes[0] = b'l';
                bytes[3] = 1;
            }
            let _ = parse(&bytes);
        }
        // Deep nesting is refused, not recursed into without end.
        let mut w = Writer::default();
        w.u8(b'l');
        w.u8(SIGNAL);
        w.u8(0);
        w.u8(1);
        w.u32(0);
        w.u32(5);
        let deep = "a".repeat(60) + "y";
        w.array(8, |w| {
            w.u8(200);
            w.signature(&deep);
            w.u32(0);
        });
        w.align(8);
        assert_eq!(parse(&w.buf), None);
        // A message longer than the cap is refused from its header.
        let mut huge = good.clone();
        huge[4..8].copy_from_slice(&0x0020_0000u32.to_le_bytes());
        assert_eq!(message_len(&huge), None);
    }
}
