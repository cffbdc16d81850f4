//! rnohup's job record, written without the C library, in the plain case only.
//!
//! The record is the one `hupkit_common::records::write` writes for rnohup
//! (same fields, same text, same file name, same atomic write, mode 0600).
//! This writer takes the plain case alone and answers [`NotPlain`] for
//! anything else, before it has changed anything, so that rnohup's full
//! implementation (which creates missing directories and applies every rule
//! of `hupkit_common::safepath`) decides. Plain means a strict subset of what
//! the full walk accepts:
//! - the directory (`$XDG_STATE_HOME/hupkit/jobs` for an absolute
//!   `XDG_STATE_HOME`, else `$HOME/.local/state/hupkit/jobs`) is an absolute
//!   path without `..` whose every component is a real directory (no
//!   symbolic link at all) of root or the caller, and that no other user can
//!   write to unless it is sticky (`/tmp`: there another user can neither
//!   rename nor replace the next entry, which is root's or the caller's as
//!   every one is); `safepath` would also cross trusted links: not plain. A
//!   missing directory is created (0700 under the umask, as the full writer
//!   creates it) in its checked parent, then checked in turn;
//! - the record's file does not exist yet;
//! - the host name and `boot_id` are UTF-8, the working directory and the
//!   output's path fit their buffers, the dates are in the years 0-9999.
//!
//! As in the full writer, everything else is silent: a record that cannot be
//! read together (no `/proc`) or written (a full disk, a file larger than
//! `RLIMIT_FSIZE`) is skipped and the command runs all the same.

use crate::Strings;
use crate::sys::{self, Errno};
use crate::text::{self, Count, Sink};

/// The case is not plain: the full implementation must decide.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotPlain;

/// Where the record goes, from the environment.
#[derive(Debug, Clone, Copy)]
pub struct Place<'a> {
    /// `$XDG_STATE_HOME`, if set.
    pub xdg_state_home: Option<&'a [u8]>,
    /// `$HOME`, if set.
    pub home: Option<&'a [u8]>,
}

/// A small fixed buffer.
struct Small<const N: usize> {
    buf: [u8; N],
    len: usize,
    overflow: bool,
}

impl<const N: usize> Small<N> {
    const fn new() -> Self {
        Small {
            buf: [0; N],
            len: 0,
            overflow: false,
        }
    }
    fn bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl<const N: usize> Sink for Small<N> {
    fn put(&mut self, bytes: &[u8]) {
        match self.buf.get_mut(self.len..self.len + bytes.len()) {
            Some(dst) => {
                dst.copy_from_slice(bytes);
                self.len += bytes.len();
            }
            None => self.overflow = true,
        }
    }
}

/// A file written through a buffer; remembers the first error.
struct FileSink {
    fd: i32,
    buf: [u8; 2048],
    len: usize,
    failed: bool,
}

impl FileSink {
    fn flush(&mut self) {
        if !self.failed && sys::write_all(self.fd, &self.buf[..self.len]).is_err() {
            self.failed = true;
        }
        self.len = 0;
    }
}

impl Sink for FileSink {
    fn put(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            if self.len == self.buf.len() {
                self.flush();
            }
            let n = bytes.len().min(self.buf.len() - self.len);
            self.buf[self.len..self.len + n].copy_from_slice(&bytes[..n]);
            self.len += n;
            bytes = &bytes[n..];
        }
    }
}

/// What a record says, gathered.
struct Record<'a> {
    pid: u32,
    starttime: u64,
    boot_id: &'a [u8],
    when: &'a [u8],
    started: &'a [u8],
    uid: u32,
    host: &'a [u8],
    cwd: &'a [u8],
    tty: &'a [u8],
    output: &'a [u8],
    argv: Strings<'a>,
}

impl Record<'_> {
    /// The text, as `hupkit_common::records::Record::write_to` writes it.
    fn write_to(&self, w: &mut impl Sink) {
        w.put(b"hupkit-job 1\npid=");
        text::decimal(w, u64::from(self.pid));
        w.put(b"\nstarttime=");
        text::decimal(w, self.starttime);
        w.put(b"\nboot_id=");
        w.put(self.boot_id);
        w.put(b"\nwhen=");
        w.put(self.when);
        w.put(b"\nlevel=nohup\n");
        if !self.started.is_empty() {
            w.put(b"started=");
            w.put(self.started);
            w.put(b"\n");
        }
        w.put(b"uid=");
        text::decimal(w, u64::from(self.uid));
        w.put(b"\n");
        let fields: [(&[u8], &[u8]); 5] = [
            (b"host", self.host),
            (b"cwd", self.cwd),
            (b"tty", self.tty),
            (b"output", self.output),
            (b"pidfile", b""),
        ];
        let args = self.argv.iter().map(|a| (&b"arg"[..], a));
        for (key, value) in fields.into_iter().chain(args) {
            w.put(key);
            w.put(b"=");
            text::escape(w, value);
            w.put(b"\n");
        }
    }
}

/// Reads a small file whole into `buf`; its length.
fn read_file(path: &[u8], buf: &mut [u8]) -> Option<usize> {
    let fd = sys::openat(sys::AT_FDCWD, path, sys::O_RDONLY | sys::O_CLOEXEC, 0).ok()?;
    let mut len = 0;
    let ok = loop {
        match sys::read(fd, &mut buf[len..]) {
            Ok(0) => break true,
            Ok(n) => {
                len += n;
                if len == buf.len() {
                    break false;
                }
            }
            Err(Errno::EINTR) => {}
            Err(_) => break false,
        }
    };
    sys::close(fd);
    ok.then_some(len)
}

/// Field 22 of `/proc/self/stat` (the start time in clock ticks after boot).
fn starttime() -> Option<u64> {
    let mut buf = [0u8; 1024];
    let len = read_file(b"/proc/self/stat\0", &mut buf)?;
    let close = buf[..len].iter().rposition(|&b| b == b')')?;
    // After ") ": field 3 (state) is the first, field 22 the twentieth.
    let field = buf[close + 1..len]
        .split(|&b| b == b' ')
        .filter(|f| !f.is_empty())
        .nth(19)?;
    let mut n: u64 = 0;
    for &b in field {
        if !b.is_ascii_digit() {
            return None;
        }
        n = n.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
    }
    Some(n)
}

/// A symbolic link's target into `buf` (`None` when unreadable or cut).
fn readlink<'b>(path: &[u8], buf: &'b mut [u8]) -> Result<&'b [u8], Option<()>> {
    match sys::readlink(path, buf) {
        Ok(n) if n < buf.len() => Ok(&buf[..n]),
        Ok(_) => Err(Some(())),
        Err(_) => Err(None),
    }
}

/// Whether `path` is `prefix` or below it, component by component.
fn under(path: &[u8], prefix: &[u8]) -> bool {
    path.strip_prefix(prefix)
        .is_some_and(|rest| rest.is_empty() || rest[0] == b'/')
}

/// Opens the record directory under the plain-case rules (module docs).
fn open_dir(place: Place<'_>, me: (u32, u32)) -> Result<i32, NotPlain> {
    let (base, below): (&[u8], &[&[u8]]) = match (place.xdg_state_home, place.home) {
        (Some(x), _) if x.first() == Some(&b'/') => (x, &[b"hupkit", b"jobs"]),
        (_, Some(h)) if !h.is_empty() => (h, &[b".local", b"state", b"hupkit", b"jobs"]),
        _ => return Err(NotPlain),
    };
    if base.first() != Some(&b'/') {
        return Err(NotPlain);
    }
    let mut fd = sys::openat(
        sys::AT_FDCWD,
        b"/\0",
        sys::O_PATH | sys::O_DIRECTORY | sys::O_CLOEXEC,
        0,
    )
    .map_err(|_| NotPlain)?;
    for comp in base.split(|&b| b == b'/').chain(below.iter().copied()) {
        if comp.is_empty() || comp == b"." {
            continue;
        }
        let mut name = Small::<256>::new();
        name.put(comp);
        name.put(b"\0");
        let open = |fd| {
            sys::openat(
                fd,
                name.bytes(),
                sys::O_PATH | sys::O_NOFOLLOW | sys::O_CLOEXEC,
                0,
            )
        };
        let next = if comp == b".." || name.overflow {
            Err(Errno::ENOENT)
        } else {
            open(fd)
        };
        let next = match next {
            // Created as the full writer creates it (0700, under the umask),
            // in the directory just checked, then checked in turn.
            Err(Errno::ENOENT) => match sys::mkdirat(fd, name.bytes(), 0o700) {
                Ok(_) | Err(Errno::EEXIST) => open(fd),
                Err(e) => Err(e),
            },
            other => other,
        };
        sys::close(fd);
        fd = next.map_err(|_| NotPlain)?;
        let plain = sys::fstat(fd).is_ok_and(|st| {
            let trusted = st.st_uid == 0 || st.st_uid == me.0;
            let others_write = st.st_mode & 0o002 != 0
                || (st.st_mode & 0o020 != 0 && st.st_gid != 0 && st.st_gid != me.1);
            let sticky = st.st_mode & 0o1000 != 0;
            st.st_mode & sys::S_IFMT == sys::S_IFDIR && trusted && (sticky || !others_write)
        });
        if !plain {
            sys::close(fd);
            return Err(NotPlain);
        }
    }
    Ok(fd)
}

/// Writes `rec` into the directory `dir` as `name`, atomically.
fn write_atomic(dir: i32, name: &[u8], rec: &Record<'_>) -> Result<(), NotPlain> {
    let mut file_name = Small::<64>::new();
    file_name.put(name);
    file_name.put(b"\0");
    match sys::lstatat(dir, file_name.bytes()) {
        Err(Errno::ENOENT) => {}
        _ => return Err(NotPlain),
    }
    let mut attempt = 0u64;
    let (tmp, fd) = loop {
        let nanos = sys::clock_ns(sys::CLOCK_REALTIME).map_or(0, |t| t.rem_euclid(1_000_000_000));
        let mut tmp = Small::<128>::new();
        tmp.put(b".");
        tmp.put(name);
        tmp.put(b".");
        text::decimal(&mut tmp, u64::from(rec.pid));
        tmp.put(b".");
        // 0 <= nanos < 10^9.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        text::hex(&mut tmp, nanos as u64);
        text::decimal(&mut tmp, attempt);
        tmp.put(b"\0");
        let flags = sys::O_WRONLY | sys::O_CREAT | sys::O_EXCL | sys::O_NOFOLLOW | sys::O_CLOEXEC;
        match sys::openat(dir, tmp.bytes(), flags, 0o600) {
            Ok(fd) => break (tmp, fd),
            Err(Errno::EEXIST) if attempt < 100 => attempt += 1,
            Err(_) => return Ok(()),
        }
    };
    let mut sink = FileSink {
        fd,
        buf: [0; 2048],
        len: 0,
        failed: false,
    };
    rec.write_to(&mut sink);
    sink.flush();
    let done = !sink.failed
        && sys::fchmod(fd, 0o600).is_ok()
        && sys::renameat(dir, tmp.bytes(), file_name.bytes()).is_ok();
    if !done {
        sys::unlinkat(dir, tmp.bytes());
    }
    sys::close(fd);
    Ok(())
}

/// Formats a time in nanoseconds after the epoch as the record writes it.
fn date(ns: i128, out: &mut Small<32>) -> Result<(), NotPlain> {
    let secs = i64::try_from(ns.div_euclid(1_000_000_000)).map_err(|_| NotPlain)?;
    if text::rfc3339(out, secs) {
        Ok(())
    } else {
        Err(NotPlain)
    }
}

/// Writes this process's record for the command `argv`, with `clktck` clock
/// ticks per second; `Ok` also when the record is silently skipped.
///
/// Everything is read before the directory is opened: with fd 0 or 1 closed,
/// the directory's descriptor could take that number, and the record would
/// show it as the job's terminal or output.
#[inline(never)]
pub fn write(place: Place<'_>, argv: Strings<'_>, clktck: u64) -> Result<(), NotPlain> {
    let (uid, gid) = sys::effective_ids();
    let pid = sys::getpid();
    // In a PID namespace whose /proc is not its own, /proc/self is another
    // process's number and its files say nothing of this one: no record.
    let mut me = Small::<24>::new();
    text::decimal(&mut me, u64::from(pid));
    let mut link = [0u8; 24];
    if readlink(b"/proc/self\0", &mut link).ok() != Some(me.bytes()) {
        return Ok(());
    }
    let Some(starttime) = starttime() else {
        return Ok(());
    };
    let mut boot = [0u8; 128];
    let Some(n) = read_file(b"/proc/sys/kernel/random/boot_id\0", &mut boot) else {
        return Ok(());
    };
    let boot_id = boot[..n].trim_ascii();
    let (Some(real), Some(since_boot_clock)) = (
        sys::clock_ns(sys::CLOCK_REALTIME),
        sys::clock_ns(sys::CLOCK_BOOTTIME),
    ) else {
        return Err(NotPlain);
    };
    let mut when = Small::<32>::new();
    date(real, &mut when)?;
    let mut started = Small::<32>::new();
    if clktck > 0 {
        let since_boot = i128::from(starttime) * 1_000_000_000 / i128::from(clktck);
        date(real - since_boot_clock + since_boot, &mut started)?;
    }
    let mut host = [0u8; 65];
    let host_len = sys::nodename(&mut host).ok_or(NotPlain)?;
    let mut cwd = [0u8; 4096];
    // As glibc's getcwd (which std's current_dir calls): a removed or
    // unreachable directory is an error, and the record says "".
    let cwd: &[u8] = match sys::getcwd(&mut cwd) {
        Ok(len) if cwd[0] == b'/' => &cwd[..len],
        Ok(_) | Err(Errno::ENOENT) => b"",
        Err(_) => return Err(NotPlain),
    };
    let mut tty_buf = [0u8; 4096];
    let tty = match readlink(b"/proc/self/fd/0\0", &mut tty_buf) {
        Ok(t) if under(t, b"/dev/pts") || under(t, b"/dev/tty") => t,
        Ok(_) | Err(None) => b"",
        Err(Some(())) => return Err(NotPlain),
    };
    let mut out_buf = [0u8; 4096];
    let output = match readlink(b"/proc/self/fd/1\0", &mut out_buf) {
        Ok(t) => t,
        Err(None) => b"",
        Err(Some(())) => return Err(NotPlain),
    };
    // The full writer takes both through lossy UTF-8 (and trims the boot id
    // as Unicode): only forms where that changes nothing are plain.
    if !text::is_utf8(&host[..host_len]) || !boot_id.iter().all(u8::is_ascii_graphic) {
        return Err(NotPlain);
    }
    let rec = Record {
        pid,
        starttime,
        boot_id,
        when: when.bytes(),
        started: started.bytes(),
        uid,
        host: &host[..host_len],
        cwd,
        tty,
        output,
        argv,
    };
    let mut count = Count::default();
    rec.write_to(&mut count);
    if sys::soft_limit(sys::RLIMIT_FSIZE)
        .is_some_and(|max| max != sys::RLIM_INFINITY && count.0 > max)
    {
        return Ok(());
    }
    let mut name = Small::<48>::new();
    text::decimal(&mut name, u64::from(pid));
    name.put(b"-");
    text::decimal(&mut name, starttime);
    name.put(b".job");
    let dir = open_dir(place, (uid, gid))?;
    let result = write_atomic(dir, name.bytes(), &rec);
    sys::close(dir);
    result
}
