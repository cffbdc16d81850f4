//! Readers for `/proc/PID/stat` and `/proc/PID/status`, and the scans of a
//! process's descriptors and threads that the tools need
//! ([`fds`], [`live_thread`]).
//!
//! The job-control tools read these once per process per invocation, so the
//! parsers are small and allocation-light, and they read exactly the fields the
//! suite uses. `stat` gives identity and job-control state (process group,
//! session, controlling terminal, the terminal's foreground group, start time);
//! `status` gives signal masks and the tracer.
//!
//! `comm` may contain spaces and parentheses, so `stat` is split at the *last*
//! `)`, as procps does. A process is identified across time by PID plus
//! [`Stat::starttime`], never by name.

use std::fs;
use std::io;
use std::path::PathBuf;

use nix::sys::signal::Signal;
use nix::unistd::Pid;

/// The fields of `/proc/PID/stat` that the suite uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stat {
    /// Process ID.
    pub pid: Pid,
    /// Command name (`comm`), as the kernel holds it (any bytes but NUL),
    /// inline: see [`Comm`].
    pub comm: Comm,
    /// What the process is doing (the state letter of proc(5)).
    pub state: ProcState,
    /// Parent process ID.
    pub ppid: Pid,
    /// Process group ID.
    pub pgrp: Pid,
    /// Session ID.
    pub session: Pid,
    /// Controlling terminal as a device number (0: none).
    pub tty_nr: u64,
    /// Foreground process group of the controlling terminal (-1: none).
    pub tpgid: i32,
    /// Kernel flags (`PF_*`, an `unsigned int` in the kernel); [`PF_KTHREAD`]
    /// marks kernel threads.
    pub flags: u32,
    /// Number of threads (bounded by `threads-max`, far below `i32::MAX`).
    pub num_threads: i32,
    /// Start time in clock ticks after boot: with the PID, the process's identity.
    pub starttime: u64,
}

/// A command name (`comm`), held without a heap copy where it fits: the
/// kernel keeps at most 15 bytes for a process (`TASK_COMM_LEN` 16, with its
/// NUL), so a snapshot of every process allocates nothing per name. `stat`
/// shows longer names only for kernel threads (a workqueue worker's
/// `kworker/u8:2-events_unbound`): those go to the heap, behind one pointer,
/// so that the whole is 16 bytes either way (the non-zero length leaves 0 free
/// for the enum's tag; a unit test checks the size).
#[derive(Clone, PartialEq, Eq)]
pub struct Comm(CommRepr);

#[derive(Clone, PartialEq, Eq)]
enum CommRepr {
    /// `len1` is the length plus one; the bytes after the name are zero.
    Inline {
        len1: std::num::NonZeroU8,
        bytes: [u8; Comm::INLINE],
    },
    Long(Box<Box<[u8]>>),
}

impl Comm {
    /// The longest name held inline.
    const INLINE: usize = 15;

    /// The name `bytes`.
    #[must_use]
    pub fn new(name: &[u8]) -> Comm {
        match u8::try_from(name.len() + 1)
            .ok()
            .and_then(std::num::NonZeroU8::new)
        {
            Some(len1) if name.len() <= Comm::INLINE => {
                let mut bytes = [0u8; Comm::INLINE];
                bytes[..name.len()].copy_from_slice(name);
                Comm(CommRepr::Inline { len1, bytes })
            }
            _ => Comm(CommRepr::Long(Box::new(name.into()))),
        }
    }

    /// The name as the kernel holds it.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8] {
        match &self.0 {
            CommRepr::Inline { len1, bytes } => &bytes[..usize::from(len1.get()) - 1],
            CommRepr::Long(b) => b,
        }
    }

    /// The name, lossily decoded as UTF-8.
    #[must_use]
    pub fn to_str_lossy(&self) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(self.as_bytes())
    }
}

impl std::fmt::Display for Comm {
    /// The lossily decoded name (for text meant for a terminal, see [`Stat::name`]).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_str_lossy())
    }
}

impl std::fmt::Debug for Comm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&*self.to_str_lossy(), f)
    }
}

impl PartialEq<str> for Comm {
    fn eq(&self, other: &str) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl PartialEq<&str> for Comm {
    fn eq(&self, other: &&str) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

/// A process's state, the third field of `/proc/PID/stat` (proc(5)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProcState {
    /// `R`: running or runnable.
    Running,
    /// `S`: interruptible sleep.
    Sleeping,
    /// `D`: uninterruptible (disk) sleep.
    DiskSleep,
    /// `T`: stopped by a signal (job control).
    Stopped,
    /// `t`: stopped by its tracer.
    TracingStop,
    /// `Z`: exited, not yet reaped.
    Zombie,
    /// `X`: dead, being reaped (rarely seen).
    Dead,
    /// `I`: an idle kernel thread.
    Idle,
    /// `P`: parked (a kernel thread).
    Parked,
    /// `W`, `K`, `x` and anything a later kernel adds: kept as its letter.
    Other(char),
}

impl ProcState {
    /// The state of a proc(5) letter.
    #[must_use]
    pub fn from_letter(letter: char) -> ProcState {
        match letter {
            'R' => ProcState::Running,
            'S' => ProcState::Sleeping,
            'D' => ProcState::DiskSleep,
            'T' => ProcState::Stopped,
            't' => ProcState::TracingStop,
            'Z' => ProcState::Zombie,
            'X' => ProcState::Dead,
            'I' => ProcState::Idle,
            'P' => ProcState::Parked,
            other => ProcState::Other(other),
        }
    }

    /// The proc(5) letter, as `ps` shows it.
    #[must_use]
    pub fn letter(self) -> char {
        match self {
            ProcState::Running => 'R',
            ProcState::Sleeping => 'S',
            ProcState::DiskSleep => 'D',
            ProcState::Stopped => 'T',
            ProcState::TracingStop => 't',
            ProcState::Zombie => 'Z',
            ProcState::Dead => 'X',
            ProcState::Idle => 'I',
            ProcState::Parked => 'P',
            ProcState::Other(c) => c,
        }
    }

    /// Whether the process has exited (a zombie, or dead): it runs no more
    /// and can no longer be signalled to any effect.
    #[must_use]
    pub fn has_exited(self) -> bool {
        matches!(self, ProcState::Zombie | ProcState::Dead)
    }

    /// Whether the process is stopped, by a signal or by its tracer.
    #[must_use]
    pub fn is_stopped(self) -> bool {
        matches!(self, ProcState::Stopped | ProcState::TracingStop)
    }
}

impl std::fmt::Display for ProcState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // `pad`, so that a width (`{:<2}`) applies, as it does to a `char`.
        f.pad(self.letter().encode_utf8(&mut [0u8; 4]))
    }
}

/// The kernel-thread flag in [`Stat::flags`].
pub const PF_KTHREAD: u32 = 0x0020_0000;

/// A set of signals as `/proc/PID/status` prints it (bit N-1 for signal N).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SignalMask(pub u64);

impl SignalMask {
    /// Whether `sig` is in the set.
    #[must_use]
    pub fn contains(self, sig: Signal) -> bool {
        let n = sig as i32;
        (1..=64).contains(&n) && self.0 & (1u64 << (n - 1)) != 0
    }
}

/// The fields of `/proc/PID/status` that the suite uses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Status {
    /// `Name`.
    pub name: String,
    /// `Tgid`: the thread-group (process) ID.
    pub tgid: i32,
    /// `PPid`.
    pub ppid: i32,
    /// `TracerPid`: 0 when not traced.
    pub tracer_pid: i32,
    /// Real, effective, saved and filesystem user IDs.
    pub uid: [u32; 4],
    /// Real, effective, saved and filesystem group IDs.
    pub gid: [u32; 4],
    /// `SigPnd`: pending for the thread.
    pub sig_pnd: SignalMask,
    /// `ShdPnd`: pending for the process.
    pub shd_pnd: SignalMask,
    /// `SigBlk`: blocked.
    pub sig_blk: SignalMask,
    /// `SigIgn`: ignored.
    pub sig_ign: SignalMask,
    /// `SigCgt`: caught by a handler.
    pub sig_cgt: SignalMask,
}

/// The first buffer of [`read_small`]: one page, which holds any `stat` line
/// (about 300 bytes at most) and a `status` file (about 1.5 KiB) in one read.
const SMALL_FILE_BUFFER: usize = 4096;

/// Reads a small /proc file with one buffer (std's `fs::read` starts at 32 bytes
/// for these size-less files and grows, costing a system call per doubling).
/// The files read so (`stat`, `cgroup`: `seq_file`s; `cmdline`) fill the buffer
/// while there is more, so a short read is their end: one `read` for a file
/// that fits, not a second that returns 0.
pub fn read_small(path: &std::path::Path) -> io::Result<Vec<u8>> {
    use std::io::Read;
    let mut f = fs::File::open(path)?;
    let mut buf = vec![0u8; SMALL_FILE_BUFFER];
    let mut len = 0;
    loop {
        if len == buf.len() {
            buf.resize(len * 2, 0);
        }
        match f.read(&mut buf[len..]) {
            Ok(0) => break,
            Ok(n) => {
                len += n;
                if len < buf.len() {
                    break;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf.truncate(len);
    Ok(buf)
}

/// `/proc`, open, with one buffer for every file read through it: how a scan
/// of every process reads its files. Each file costs an `openat` relative to
/// the directory (no walk from `/`), one `read` into the reused buffer and a
/// `close`; nothing is allocated per file.
#[derive(Debug)]
pub struct ProcDir {
    dir: std::os::fd::OwnedFd,
    buf: Vec<u8>,
}

impl ProcDir {
    /// Opens `/proc`.
    pub fn open() -> io::Result<ProcDir> {
        Ok(ProcDir {
            dir: fs::File::open("/proc")?.into(),
            buf: vec![0u8; SMALL_FILE_BUFFER],
        })
    }

    /// The processes present: the numeric entries of `/proc`, in the order
    /// the kernel lists them (ascending PIDs). It reads the directory through
    /// its own descriptor (`openat` of `.`), entry by entry with `readdir`,
    /// allocating nothing per entry (std's `read_dir` allocates each name).
    pub fn pids(&self) -> io::Result<impl Iterator<Item = Pid> + use<>> {
        use nix::fcntl::OFlag;
        let dir = nix::dir::Dir::openat(
            &self.dir,
            c".",
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )?;
        Ok(dir.into_iter().filter_map(|entry| {
            let entry = entry.ok()?;
            let name = entry.file_name().to_bytes();
            if !name.first().is_some_and(u8::is_ascii_digit) {
                return None;
            }
            unsigned(name)
                .and_then(|n| i32::try_from(n).ok())
                .map(Pid::from_raw)
        }))
    }

    /// The contents of `/proc/PID/FILE`, valid until the next read.
    ///
    /// For the files of `/proc/PID` that are read so (`stat`, a `seq_file`, and
    /// `cmdline`), a read returns all the buffer can hold while there is more:
    /// a short read is their end, so a file that fits costs one `read`, not a
    /// second that returns 0.
    pub fn read(&mut self, pid: Pid, file: &str) -> io::Result<&[u8]> {
        use nix::fcntl::{OFlag, openat};
        // `PID/FILE` and its NUL, written without core::fmt: this runs twice
        // per process of a scan.
        let mut path = [0u8; 64];
        let mut digits = [0u8; 20];
        let pid = u64::try_from(pid.as_raw()).map_err(|_| invalid("negative PID"))?;
        let pid = crate::text::decimal(&mut digits, pid);
        let len = pid.len() + 1 + file.len() + 1;
        if len > path.len() {
            return Err(invalid("/proc path too long"));
        }
        let mut at = 0;
        for &b in pid.iter().chain(b"/") {
            path[at] = b;
            at += 1;
        }
        for &b in file.as_bytes() {
            path[at] = b;
            at += 1;
        }
        let path = std::ffi::CStr::from_bytes_with_nul(&path[..len])
            .map_err(|_| invalid("NUL in a /proc file name"))?;
        let fd = openat(
            &self.dir,
            path,
            OFlag::O_RDONLY | OFlag::O_CLOEXEC | OFlag::O_NOCTTY,
            nix::sys::stat::Mode::empty(),
        )?;
        let mut len = 0;
        loop {
            if len == self.buf.len() {
                self.buf.resize(len * 2, 0);
            }
            match nix::unistd::read(&fd, &mut self.buf[len..]) {
                Ok(0) => break,
                Ok(n) => {
                    len += n;
                    if len < self.buf.len() {
                        break;
                    }
                }
                Err(nix::errno::Errno::EINTR) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(&self.buf[..len])
    }
}

fn proc_path(pid: Pid, file: &str) -> PathBuf {
    PathBuf::from(format!("/proc/{pid}/{file}"))
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_string())
}

/// The last `)` of a `stat` line (that ends `comm`), given where its `(` is.
///
/// The first `)` after `(` is the last one unless `comm` holds one itself:
/// that is checked with `contains`, which the standard library runs a word
/// at a time (a backward scan byte by byte over the 250 bytes of numbers
/// after `comm` was the parser's largest cost).
fn last_close(raw: &[u8], open: usize) -> Option<usize> {
    let first = open + raw.get(open..)?.iter().position(|&b| b == b')')?;
    if raw[first + 1..].contains(&b')') {
        raw.iter().rposition(|&b| b == b')')
    } else {
        Some(first)
    }
}

/// The fields of a `stat` line after `comm`, split at runs of ASCII white
/// space (as `split_ascii_whitespace`), read one at a time by a cursor:
/// a number is parsed in the same pass that finds its end.
struct Fields<'a> {
    line: &'a [u8],
    at: usize,
}

impl<'a> Fields<'a> {
    /// Moves to the start of the next field; false at the end of the line.
    fn start(&mut self) -> bool {
        while let Some(b) = self.line.get(self.at) {
            if !b.is_ascii_whitespace() {
                return true;
            }
            self.at += 1;
        }
        false
    }

    /// The next field.
    fn next(&mut self) -> Option<&'a [u8]> {
        if !self.start() {
            return None;
        }
        let start = self.at;
        while self
            .line
            .get(self.at)
            .is_some_and(|b| !b.is_ascii_whitespace())
        {
            self.at += 1;
        }
        Some(&self.line[start..self.at])
    }

    fn skip(&mut self, n: usize) -> io::Result<()> {
        for _ in 0..n {
            self.next().ok_or_else(|| invalid("stat: short"))?;
        }
        Ok(())
    }

    /// The next field as a decimal number, as `str::parse` reads one: an
    /// optional `+` (or `-`, where `negative` may be), then one digit or
    /// more, up to the white space that ends the field. The sign (true:
    /// negative) and the magnitude.
    fn number(&mut self, negative: bool) -> io::Result<(bool, u64)> {
        let bad = || invalid("stat: bad number");
        if !self.start() {
            return Err(invalid("stat: short"));
        }
        let minus = negative && self.line[self.at] == b'-';
        if minus || self.line[self.at] == b'+' {
            self.at += 1;
        }
        let digits = self.at;
        let mut n = 0u64;
        while let Some(&b) = self.line.get(self.at) {
            if b.is_ascii_digit() {
                n = n
                    .checked_mul(10)
                    .and_then(|n| n.checked_add(u64::from(b - b'0')))
                    .ok_or_else(bad)?;
            } else if b.is_ascii_whitespace() {
                break;
            } else {
                return Err(bad());
            }
            self.at += 1;
        }
        if self.at == digits {
            return Err(bad());
        }
        Ok((minus, n))
    }

    fn unsigned(&mut self) -> io::Result<u64> {
        Ok(self.number(false)?.1)
    }

    fn signed(&mut self) -> io::Result<i64> {
        let (minus, n) = self.number(true)?;
        if minus {
            0i64.checked_sub_unsigned(n)
        } else {
            i64::try_from(n).ok()
        }
        .ok_or_else(|| invalid("stat: bad number"))
    }

    fn pid(&mut self) -> io::Result<Pid> {
        i32::try_from(self.signed()?)
            .map(Pid::from_raw)
            .map_err(|_| invalid("stat: bad pid"))
    }
}

/// A decimal number as `str::parse::<u64>` reads it: an optional `+`, then
/// one digit or more; `None` on anything else or on overflow.
fn unsigned(text: &[u8]) -> Option<u64> {
    let digits = text.strip_prefix(b"+").unwrap_or(text);
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0u64, |n, &b| {
        if b.is_ascii_digit() {
            n.checked_mul(10)?.checked_add(u64::from(b - b'0'))
        } else {
            None
        }
    })
}

/// A decimal number as `str::parse::<i64>` reads it: an optional `+` or
/// `-`, then one digit or more; `None` on anything else or on overflow.
fn signed(text: &[u8]) -> Option<i64> {
    match text.strip_prefix(b"-") {
        Some(digits) if !digits.starts_with(b"+") => 0i64.checked_sub_unsigned(unsigned(digits)?),
        Some(_) => None,
        None => i64::try_from(unsigned(text)?).ok(),
    }
}

impl Stat {
    /// Reads `/proc/PID/stat`.
    pub fn read(pid: Pid) -> io::Result<Stat> {
        Stat::parse(&read_small(&proc_path(pid, "stat"))?)
    }

    /// Parses the contents of a `stat` file.
    ///
    /// It reads the bytes once, left to right after the last `)`, and stops
    /// at field 22 (`starttime`): the fields after it (about thirty numbers)
    /// are never looked at, and no number is parsed that is not kept. This
    /// runs once per process of a scan, so it neither allocates nor goes
    /// through `str` (the kernel writes ASCII there; a byte that is not a
    /// digit where a number is expected is an error, as it was).
    pub fn parse(raw: &[u8]) -> io::Result<Stat> {
        let open = raw
            .iter()
            .position(|&b| b == b'(')
            .ok_or_else(|| invalid("stat: no '('"))?;
        let close = last_close(raw, open).ok_or_else(|| invalid("stat: no ')'"))?;
        if close < open {
            return Err(invalid("stat: bad comm"));
        }
        let pid = signed(raw[..open].trim_ascii())
            .and_then(|n| i32::try_from(n).ok())
            .ok_or_else(|| invalid("stat: bad pid"))?;
        let comm = Comm::new(&raw[open + 1..close]);
        // Fields after comm, numbered from 3 (state) as in proc(5).
        let mut fields = Fields {
            line: &raw[close + 1..],
            at: 0,
        };
        let state = fields.next().ok_or_else(|| invalid("stat: short"))?;
        let state = match state {
            [b, ..] if b.is_ascii() => char::from(*b),
            _ => std::str::from_utf8(state)
                .ok()
                .and_then(|s| s.chars().next())
                .ok_or_else(|| invalid("stat: not text"))?,
        };
        let ppid = fields.pid()?;
        let pgrp = fields.pid()?;
        let session = fields.pid()?;
        let tty_nr = fields.unsigned()?;
        let tpgid = i32::try_from(fields.signed()?).map_err(|_| invalid("stat: bad tpgid"))?;
        let flags = u32::try_from(fields.unsigned()?).map_err(|_| invalid("stat: bad flags"))?;
        fields.skip(10)?; // 10 to 19: faults and times
        let num_threads =
            i32::try_from(fields.signed()?).map_err(|_| invalid("stat: bad thread count"))?;
        fields.skip(1)?; // 21: itrealvalue
        let starttime = fields.unsigned()?;
        Ok(Stat {
            pid: Pid::from_raw(pid),
            comm,
            state: ProcState::from_letter(state),
            ppid,
            pgrp,
            session,
            tty_nr,
            tpgid,
            flags,
            num_threads,
            starttime,
        })
    }

    /// The command name for text output, quoted for a shell where needed
    /// ([`crate::quote::word`]): another user's process may be named with escape
    /// sequences.
    #[must_use]
    pub fn name(&self) -> String {
        crate::quote::word(self.comm.as_bytes())
    }

    /// Whether this is a kernel thread (no user space to act on).
    #[must_use]
    pub fn is_kernel_thread(&self) -> bool {
        self.flags & PF_KTHREAD != 0
    }
}

impl Status {
    /// Reads `/proc/PID/status`.
    pub fn read(pid: Pid) -> io::Result<Status> {
        Ok(Status::parse(&fs::read_to_string(proc_path(
            pid, "status",
        ))?))
    }

    /// Parses the contents of a `status` file; unknown or malformed lines are skipped.
    #[must_use]
    pub fn parse(text: &str) -> Status {
        let mut st = Status::default();
        for line in text.lines() {
            let Some((key, value)) = line.split_once(':') else {
                continue;
            };
            let value = value.trim();
            let mask = || SignalMask(u64::from_str_radix(value, 16).unwrap_or(0));
            let ids = || {
                let mut out = [0u32; 4];
                for (slot, v) in out.iter_mut().zip(value.split_ascii_whitespace()) {
                    *slot = v.parse().unwrap_or(0);
                }
                out
            };
            match key {
                "Name" => st.name = value.to_string(),
                "Tgid" => st.tgid = value.parse().unwrap_or(0),
                "PPid" => st.ppid = value.parse().unwrap_or(0),
                "TracerPid" => st.tracer_pid = value.parse().unwrap_or(0),
                "Uid" => st.uid = ids(),
                "Gid" => st.gid = ids(),
                "SigPnd" => st.sig_pnd = mask(),
                "ShdPnd" => st.shd_pnd = mask(),
                "SigBlk" => st.sig_blk = mask(),
                "SigIgn" => st.sig_ign = mask(),
                "SigCgt" => st.sig_cgt = mask(),
                _ => {}
            }
        }
        st
    }

    /// How this process disposes of `sig`, from its `SigIgn` and `SigCgt` masks.
    #[must_use]
    pub fn disposition(&self, sig: Signal) -> crate::signal::Disposition {
        use crate::signal::Disposition;
        if self.sig_ign.contains(sig) {
            Disposition::Ignore
        } else if self.sig_cgt.contains(sig) {
            Disposition::Caught
        } else {
            Disposition::Default
        }
    }
}

/// The open descriptors of `pid`, in numeric order; none if they cannot be
/// read (another user's process, or it has exited).
#[must_use]
pub fn fds(pid: Pid) -> Vec<i32> {
    let Ok(dir) = fs::read_dir(proc_path(pid, "fd")) else {
        return Vec::new();
    };
    let mut out: Vec<i32> = dir
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse().ok()))
        .collect();
    out.sort_unstable();
    out
}

/// The `O_*` flags of descriptor `fd` of `pid` (the octal `flags:` line of
/// `/proc/PID/fdinfo/FD`).
#[must_use]
pub fn fd_flags(pid: Pid, fd: i32) -> Option<i32> {
    let text = fs::read_to_string(proc_path(pid, &format!("fdinfo/{fd}"))).ok()?;
    let value = text.lines().find_map(|l| l.strip_prefix("flags:"))?;
    i32::from_str_radix(value.trim(), 8).ok()
}

/// A live thread of `pid` (to trace, say): the main thread, unless it has
/// exited while others run on, then the first live one in
/// `/proc/PID/task`; `pid` itself if none can be found.
#[must_use]
pub fn live_thread(pid: Pid) -> Pid {
    let live = |s: &Stat| s.state != ProcState::Zombie;
    if Stat::read(pid).is_ok_and(|s| live(&s)) {
        return pid;
    }
    let Ok(tasks) = fs::read_dir(proc_path(pid, "task")) else {
        return pid;
    };
    tasks
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()))
        .map(Pid::from_raw)
        .find(|t| {
            read_small(&proc_path(pid, &format!("task/{t}/stat")))
                .and_then(|raw| Stat::parse(&raw))
                .is_ok_and(|s| live(&s))
        })
        .unwrap_or(pid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_comm_with_spaces_and_parens() {
        let raw = b"42 (a (b) c) S 1 42 42 34816 42 4194560 0 0 0 0 1 2 0 0 20 0 3 0 12345 0 0\n";
        let st = Stat::parse(raw).unwrap();
        assert_eq!(st.pid, Pid::from_raw(42));
        assert_eq!(st.comm, "a (b) c");
        assert_eq!(st.state, ProcState::Sleeping);
        assert_eq!(st.ppid, Pid::from_raw(1));
        assert_eq!(st.pgrp, Pid::from_raw(42));
        assert_eq!(st.session, Pid::from_raw(42));
        assert_eq!(st.tty_nr, 34816);
        assert_eq!(st.tpgid, 42);
        assert_eq!(st.num_threads, 3);
        assert_eq!(st.starttime, 12345);
        assert!(!st.is_kernel_thread());
    }

    /// A name is held inline up to 15 bytes, on the heap beyond (a kernel
    /// thread's), and costs 16 bytes in a `Stat` either way.
    #[test]
    fn comm_inline_and_long() {
        assert_eq!(std::mem::size_of::<Comm>(), 16);
        // What a snapshot holds per process (beside two u32 indices).
        assert_eq!(std::mem::size_of::<Stat>(), 64);
        for name in [
            &b""[..],
            b"sleep",
            b"fifteen-bytes!!",
            b"kworker/u8:2-events_unbound",
        ] {
            let c = Comm::new(name);
            assert_eq!(c.as_bytes(), name);
            assert_eq!(c, Comm::new(name));
        }
        assert!(matches!(
            Comm::new(b"fifteen-bytes!!").0,
            CommRepr::Inline { .. }
        ));
        assert!(matches!(
            Comm::new(b"sixteen-bytes!!!").0,
            CommRepr::Long(_)
        ));
        let odd = Comm::new(b"a\xffb");
        assert_eq!(odd.to_string(), "a\u{fffd}b");
        assert_eq!(format!("{odd:?}"), "\"a\u{fffd}b\"");
        assert!(Comm::new(b"sleep") == "sleep");
    }

    #[test]
    fn state_letters_round_trip() {
        for c in ['R', 'S', 'D', 'T', 't', 'Z', 'X', 'I', 'P', 'W', 'x'] {
            assert_eq!(ProcState::from_letter(c).letter(), c);
            assert_eq!(ProcState::from_letter(c).to_string(), c.to_string());
            assert_eq!(
                format!("{:<2}|", ProcState::from_letter(c)),
                format!("{c:<2}|")
            );
        }
        assert!(ProcState::Zombie.has_exited() && ProcState::Dead.has_exited());
        assert!(!ProcState::Stopped.has_exited());
        assert!(ProcState::Stopped.is_stopped() && ProcState::TracingStop.is_stopped());
        assert!(!ProcState::Sleeping.is_stopped());
    }

    /// The first parser: every field after `comm` through `str` and
    /// `split_ascii_whitespace`, each number with `str::parse`. The parser of
    /// bytes must give what it gave, for any line.
    fn reference(raw: &[u8]) -> Option<Stat> {
        let open = raw.iter().position(|&b| b == b'(')?;
        let close = raw.iter().rposition(|&b| b == b')')?;
        if close < open {
            return None;
        }
        let pid = std::str::from_utf8(&raw[..open])
            .ok()?
            .trim()
            .parse::<i32>()
            .ok()?;
        let rest = std::str::from_utf8(&raw[close + 1..]).ok()?;
        let f: Vec<&str> = rest.split_ascii_whitespace().take(20).collect();
        if f.len() < 20 {
            return None;
        }
        let pid_at = |n: usize| f[n - 3].parse::<i32>().ok().map(Pid::from_raw);
        Some(Stat {
            pid: Pid::from_raw(pid),
            comm: Comm::new(&raw[open + 1..close]),
            state: ProcState::from_letter(f[0].chars().next()?),
            ppid: pid_at(4)?,
            pgrp: pid_at(5)?,
            session: pid_at(6)?,
            tty_nr: f[4].parse().ok()?,
            tpgid: f[5].parse().ok()?,
            flags: f[6].parse().ok()?,
            num_threads: f[17].parse().ok()?,
            starttime: f[19].parse().ok()?,
        })
    }

    /// Lines the kernel writes and lines it does not: the parser agrees
    /// with [`reference`] on each (the same `Stat`, or both refuse it), and
    /// the edge cases read as they should.
    #[test]
    fn parser_edge_cases() {
        let tail = "S 1 42 42 34816 42 4194560 0 0 0 0 1 2 0 0 20 0 3 0 12345 0 0\n";
        let line = |comm: &[u8], tail: &str| {
            let mut l = b"42 (".to_vec();
            l.extend_from_slice(comm);
            l.extend_from_slice(b") ");
            l.extend_from_slice(tail.as_bytes());
            l
        };
        let mut cases: Vec<Vec<u8>> = vec![
            line(b"a (b) c", tail),
            line(b"x) S 1 2 3 (", tail),
            line(b")", tail),
            line(b"", tail),
            line(b"new\nline", tail),
            line(b"\xff\xfeodd", tail),
            line(b"kworker/u8:2-events_unbound", tail),
            // Zombie, kernel thread (PF_KTHREAD), no terminal, negative tpgid.
            line(
                b"sh",
                "Z 1 7 7 0 -1 4194380 0 0 0 0 0 0 0 0 20 0 1 0 99 0 0\n",
            ),
            line(
                b"kthreadd",
                "S 0 0 0 0 -1 2129984 0 0 0 0 0 0 0 0 20 0 1 0 2 0 0\n",
            ),
            // Huge numbers: the largest a field holds, and one past it.
            line(
                b"big",
                "S 2147483647 1 1 18446744073709551615 -2147483648 4294967295 0 0 0 0 0 0 0 0 20 0 2147483647 0 18446744073709551615 0\n",
            ),
            line(
                b"big",
                "S 2147483648 1 1 0 0 0 0 0 0 0 0 0 0 0 20 0 1 0 1 0\n",
            ),
            line(
                b"big",
                "S 1 1 1 0 0 0 0 0 0 0 0 0 0 0 20 0 1 0 18446744073709551616 0\n",
            ),
            line(
                b"big",
                "S 1 1 1 0 0 4294967296 0 0 0 0 0 0 0 0 20 0 1 0 1 0\n",
            ),
            // Signs, tabs, runs of spaces, a line that stops at field 22.
            line(b"s", "S +1 -0 1 0 +5 0 0 0 0 0 0 0 0 0 20 0 1 0 +7"),
            line(b"s", "S\t1  1 1 0 0 0 0 0 0 0 0 0 0 0 20 0 1 0\t7\n"),
            line(b"s", "S - 1 1 0 0 0 0 0 0 0 0 0 0 0 20 0 1 0 7"),
            line(b"s", "S 1 1 1 0 0 0 0 0 0 0 0 0 0 0 20 0 1 0 -7"),
            line(b"s", "S 1 1 1 0 0 0 0 0 0 0 0 0 0 0 20 0 1 0"),
            line(b"s", "S 1 1 1 0 0 0 0 0 0 0 0 0 0 0 20 0 1 0 7x"),
            line(b"s", "S 1 1 1 0 0 0 0 0 0 0 0 0 0 0 20 0 1 0 --7"),
            line(b"s", "S 1 1 1 0 0 0 0 0 0 0 0 0 0 0 20 0 1 0 -+7"),
            line(b"s", ""),
            b" 42 (s) R 1 1 1 0 0 0 0 0 0 0 0 0 0 0 20 0 1 0 7".to_vec(),
            b"42 s) R 1 1 1 0 0 0 0 0 0 0 0 0 0 0 20 0 1 0 7".to_vec(),
            b"42 (s R 1 1 1 0 0 0 0 0 0 0 0 0 0 0 20 0 1 0 7".to_vec(),
            b"42 )s( R 1 1 1 0 0 0 0 0 0 0 0 0 0 0 20 0 1 0 7".to_vec(),
            b"x42 (s) R 1 1 1 0 0 0 0 0 0 0 0 0 0 0 20 0 1 0 7".to_vec(),
        ];
        // Every process of this machine, as the kernel writes them.
        let mut dir = ProcDir::open().unwrap();
        for pid in dir.pids().unwrap() {
            if let Ok(raw) = dir.read(pid, "stat") {
                cases.push(raw.to_vec());
            }
        }
        for raw in &cases {
            let text = String::from_utf8_lossy(raw);
            assert_eq!(Stat::parse(raw).ok(), reference(raw), "{text:?}");
        }
        let st = |l: &[u8]| Stat::parse(l).unwrap();
        assert_eq!(st(&cases[1]).comm, "x) S 1 2 3 (");
        assert_eq!(st(&cases[2]).comm, ")");
        assert_eq!(st(&cases[3]).comm, "");
        assert_eq!(st(&cases[4]).comm, "new\nline");
        assert_eq!(st(&cases[5]).comm.as_bytes(), b"\xff\xfeodd");
        assert_eq!(st(&cases[6]).comm, "kworker/u8:2-events_unbound");
        let zombie = st(&cases[7]);
        assert!(zombie.state.has_exited() && zombie.tpgid == -1 && zombie.tty_nr == 0);
        assert!(st(&cases[8]).is_kernel_thread());
        let big = st(&cases[9]);
        assert_eq!(
            (big.ppid.as_raw(), big.tpgid, big.flags, big.num_threads),
            (i32::MAX, i32::MIN, u32::MAX, i32::MAX)
        );
        assert_eq!((big.tty_nr, big.starttime), (u64::MAX, u64::MAX));
        for refused in &cases[10..13] {
            assert!(Stat::parse(refused).is_err());
        }
        assert_eq!(st(&cases[13]).starttime, 7);
        assert_eq!(st(&cases[14]).starttime, 7);
    }

    #[test]
    fn rejects_garbage() {
        assert!(Stat::parse(b"").is_err());
        assert!(Stat::parse(b"1 (x) S").is_err());
        assert!(Stat::parse(b"x (y) S 1 1 1 0 0 0").is_err());
    }

    #[test]
    fn reads_self() {
        let me = nix::unistd::getpid();
        let st = Stat::read(me).unwrap();
        assert_eq!(st.pid, me);
        assert_eq!(st.ppid, nix::unistd::getppid());
        assert_eq!(st.pgrp, nix::unistd::getpgrp());
        let status = Status::read(me).unwrap();
        assert_eq!(status.tgid, me.as_raw());
        assert_eq!(status.uid[0], nix::unistd::getuid().as_raw());
    }

    #[test]
    fn status_masks() {
        let st = Status::parse(
            "Name:\tsleep\nTracerPid:\t7\nSigIgn:\t0000000000000001\nSigCgt:\t0000000000004000\n",
        );
        assert_eq!(st.name, "sleep");
        assert_eq!(st.tracer_pid, 7);
        assert!(st.sig_ign.contains(Signal::SIGHUP));
        assert!(!st.sig_ign.contains(Signal::SIGINT));
        assert_eq!(
            st.disposition(Signal::SIGHUP),
            crate::signal::Disposition::Ignore
        );
        assert_eq!(
            st.disposition(Signal::SIGTERM),
            crate::signal::Disposition::Caught
        );
        assert_eq!(
            st.disposition(Signal::SIGINT),
            crate::signal::Disposition::Default
        );
    }

    #[test]
    fn fd_flags_and_live_thread_of_self() {
        use std::os::fd::AsRawFd;
        let me = nix::unistd::getpid();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let w = fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(&path)
            .unwrap();
        let r = fs::File::open(&path).unwrap();
        let acc = |f: &fs::File| fd_flags(me, f.as_raw_fd()).map(|x| x & nix::libc::O_ACCMODE);
        assert_eq!(acc(&r), Some(nix::libc::O_RDONLY));
        assert_eq!(acc(&w), Some(nix::libc::O_WRONLY));
        let append = fd_flags(me, w.as_raw_fd()).unwrap() & nix::libc::O_APPEND;
        assert_ne!(append, 0);
        assert_eq!(fd_flags(me, -1), None);
        assert_eq!(live_thread(me), me);
    }
}
