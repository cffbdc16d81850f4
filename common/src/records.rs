//! Job records: what rnohup, detach and disown started, kept after logout.
//!
//! One file per job under `$XDG_STATE_HOME/hupkit/jobs/` (default
//! `~/.local/state/hupkit/jobs/`), named `PID-STARTTIME.job`, mode 0600 in a
//! 0700 directory, written atomically (temporary file, then rename) so that
//! concurrent writers never lose a record and readers never see half of one.
//!
//! The format is line-oriented text, `key=value`, one `arg=` line per argument;
//! values escape `\` as `\\`, newline as `\n` and bytes that are not UTF-8 as
//! `\xNN`, so any argv round-trips. Unknown keys are ignored, so the format can
//! grow; a record that cannot be parsed is reported and skipped, never fatal.
//!
//! `started` is when the job's process started (its `/proc/PID/stat` start
//! time, placed on the wall clock), not when the record was written: disown
//! records a job long after it started. `HUPKIT_NO_RECORD=1` turns recording
//! off for every tool ([`write_dir`]).
//!
//! A record never changes what the recorded command does: [`write`] skips a
//! record larger than `RLIMIT_FSIZE` (writing it would raise SIGXFSZ, whose
//! default action kills the writer) rather than touching SIGXFSZ's disposition,
//! which the command inherits; the text is streamed to the file, never built
//! whole; and a caller short of memory (`RLIMIT_AS`: Rust aborts on a failed
//! allocation) asks [`enough_memory`] first and skips the record.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use nix::unistd::Pid;

use crate::identity::Identity;
use crate::safefile::FileError;
use crate::safepath::{self, Purpose};

/// How far a job was separated from its terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Started by rnohup.
    Nohup,
    /// Started by detach.
    Detach,
    /// Cut loose by disown.
    Disown,
}

impl Level {
    /// The word used in records and output.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Nohup => "nohup",
            Level::Detach => "detach",
            Level::Disown => "disown",
        }
    }

    fn parse(s: &str) -> Option<Level> {
        match s {
            "nohup" => Some(Level::Nohup),
            "detach" => Some(Level::Detach),
            "disown" => Some(Level::Disown),
            _ => None,
        }
    }
}

/// One job record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Who: PID, start time, boot.
    pub id: Identity,
    /// When it was recorded, RFC 3339 in UTC.
    pub when: String,
    /// When the process started, RFC 3339 in UTC (empty in records written
    /// before this field existed: [`Record::started`] falls back to `when`).
    pub started: String,
    /// Which tool.
    pub level: Level,
    /// The command and its arguments.
    pub argv: Vec<OsString>,
    /// Its working directory.
    pub cwd: OsString,
    /// The host name.
    pub host: String,
    /// The terminal it came from (empty if none).
    pub tty: OsString,
    /// Where its output goes.
    pub output: OsString,
    /// Its pidfile, if any (empty if none).
    pub pidfile: OsString,
    /// The effective user who started it (`None` in records written before
    /// this field existed).
    pub uid: Option<u32>,
    /// The directory the starting tool ran in (empty if not recorded): where
    /// its relative paths were resolved.
    pub caller_cwd: OsString,
    /// The starting tool's own arguments, argv\[0\] excepted (detach: its
    /// options, `--env` values included, and the command), for `detach
    /// --restart`; empty if not recorded. Never the caller's environment.
    pub tool_args: Vec<OsString>,
    /// The transient scope of the service manager it was moved to
    /// (`detach --scope`), e.g. `hupkit-sleep-1234-5678.scope`; empty if none.
    pub scope: String,
}

/// Writes `bytes` escaped (`\\` as `\\\\`, newline as `\\n`, bytes that are not
/// UTF-8 as `\\xNN`) to `w`, piece by piece.
fn escape_to(bytes: &[u8], w: &mut impl std::io::Write) -> std::io::Result<()> {
    for chunk in bytes.utf8_chunks() {
        let valid = chunk.valid().as_bytes();
        let mut start = 0;
        for (i, &b) in valid.iter().enumerate() {
            let esc: &[u8] = match b {
                b'\\' => b"\\\\",
                b'\n' => b"\\n",
                _ => continue,
            };
            w.write_all(&valid[start..i])?;
            w.write_all(esc)?;
            start = i + 1;
        }
        w.write_all(&valid[start..])?;
        for b in chunk.invalid() {
            write!(w, "\\x{b:02x}")?;
        }
    }
    Ok(())
}

/// A writer that only counts.
struct Counter(u64);

impl std::io::Write for Counter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn unescape(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len());
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'\\' {
            out.push(bytes[i]);
            i += 1;
            continue;
        }
        match bytes.get(i + 1)? {
            b'\\' => out.push(b'\\'),
            b'n' => out.push(b'\n'),
            b'x' => {
                let hex = std::str::from_utf8(bytes.get(i + 2..i + 4)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            _ => return None,
        }
        i += 2;
    }
    Some(out)
}

/// The wall-clock time at which a process with start time `starttime` (clock
/// ticks after boot, `/proc/PID/stat` field 22) started, RFC 3339 in UTC.
///
/// The kernel counts start times on the boot-time clock (`CLOCK_BOOTTIME`,
/// suspend included); the wall clock now minus the boot-time clock now is the
/// boot's wall-clock time, to the nanosecond (`/proc/stat`'s `btime` has only
/// whole seconds).
#[must_use]
pub fn start_time(starttime: u64) -> Option<String> {
    let now = |clock| {
        let mut ts = nix::libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: clock_gettime only writes the struct it is given, which lives here.
        let r = unsafe { nix::libc::clock_gettime(clock, &raw mut ts) };
        (r == 0).then(|| i128::from(ts.tv_sec) * 1_000_000_000 + i128::from(ts.tv_nsec))
    };
    let real = now(nix::libc::CLOCK_REALTIME)?;
    let boot = now(nix::libc::CLOCK_BOOTTIME)?;
    // SAFETY: sysconf reads a constant of the system and touches no memory.
    let hz = i128::from(unsafe { nix::libc::sysconf(nix::libc::_SC_CLK_TCK) });
    if hz <= 0 {
        return None;
    }
    let since_boot = i128::from(starttime) * 1_000_000_000 / hz;
    let at = real - boot + since_boot;
    let secs = i64::try_from(at.div_euclid(1_000_000_000)).ok()?;
    let nanos = u32::try_from(at.rem_euclid(1_000_000_000)).ok()?;
    let t = chrono::DateTime::from_timestamp(secs, nanos)?;
    Some(t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
}

impl Record {
    /// A record for the process `pid` (which must be alive), now; `started`
    /// is that process's start time.
    pub fn new(pid: Pid, level: Level, argv: Vec<OsString>) -> std::io::Result<Record> {
        let id = Identity::of(pid)?;
        let started = start_time(id.starttime).unwrap_or_default();
        let tty = std::fs::read_link(format!("/proc/{pid}/fd/0"))
            .ok()
            .filter(|p| p.starts_with("/dev/pts") || p.starts_with("/dev/tty"))
            .map(PathBuf::into_os_string)
            .unwrap_or_default();
        Ok(Record {
            id,
            // UTC: no time zone file to read on every record (rjobs shows local time).
            when: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            started,
            level,
            argv,
            cwd: std::env::current_dir()
                .map(PathBuf::into_os_string)
                .unwrap_or_default(),
            host: nix::unistd::gethostname()
                .map(|h| h.to_string_lossy().into_owned())
                .unwrap_or_default(),
            tty,
            output: OsString::new(),
            pidfile: OsString::new(),
            uid: Some(nix::unistd::geteuid().as_raw()),
            caller_cwd: OsString::new(),
            tool_args: Vec::new(),
            scope: String::new(),
        })
    }

    /// When the job started: `started`, or `when` for an older record.
    #[must_use]
    pub fn started(&self) -> &str {
        if self.started.is_empty() {
            &self.when
        } else {
            &self.started
        }
    }

    /// The file name of this record.
    #[must_use]
    pub fn file_name(&self) -> String {
        format!("{}-{}.job", self.id.pid, self.id.starttime)
    }

    /// The text form.
    #[must_use]
    pub fn to_text(&self) -> String {
        let mut t = Vec::new();
        let _ = self.write_to(&mut t);
        String::from_utf8(t).unwrap_or_default()
    }

    /// Writes the text form to `w`, one escaped value at a time: no copy of the
    /// whole record (or of one argument) is ever made.
    pub fn write_to(&self, w: &mut impl std::io::Write) -> std::io::Result<()> {
        let head = format!(
            "hupkit-job 1\npid={}\nstarttime={}\nboot_id={}\nwhen={}\nlevel={}\n",
            self.id.pid,
            self.id.starttime,
            self.id.boot_id,
            self.when,
            self.level.as_str()
        );
        w.write_all(head.as_bytes())?;
        if !self.started.is_empty() {
            w.write_all(b"started=")?;
            w.write_all(self.started.as_bytes())?;
            w.write_all(b"\n")?;
        }
        if let Some(uid) = self.uid {
            writeln!(w, "uid={uid}")?;
        }
        if !self.scope.is_empty() {
            w.write_all(b"scope=")?;
            escape_to(self.scope.as_bytes(), w)?;
            w.write_all(b"\n")?;
        }
        let fields: [(&str, &[u8]); 5] = [
            ("host", self.host.as_bytes()),
            ("cwd", self.cwd.as_bytes()),
            ("tty", self.tty.as_bytes()),
            ("output", self.output.as_bytes()),
            ("pidfile", self.pidfile.as_bytes()),
        ];
        let caller =
            (!self.caller_cwd.is_empty()).then(|| ("caller_cwd", self.caller_cwd.as_bytes()));
        let args = self.argv.iter().map(|a| ("arg", a.as_bytes()));
        let tool = self.tool_args.iter().map(|a| ("tool_arg", a.as_bytes()));
        for (key, value) in fields.into_iter().chain(caller).chain(args).chain(tool) {
            w.write_all(key.as_bytes())?;
            w.write_all(b"=")?;
            escape_to(value, w)?;
            w.write_all(b"\n")?;
        }
        Ok(())
    }

    /// The length of the text form, in bytes, computed without building it.
    #[must_use]
    pub fn text_len(&self) -> u64 {
        let mut count = Counter(0);
        let _ = self.write_to(&mut count);
        count.0
    }

    /// Parses the text form; `None` if it is not a valid record.
    #[must_use]
    pub fn parse(text: &str) -> Option<Record> {
        // Byte splitting: `str::lines` and `split_once` searched char by char and
        // were the largest cost of listing ten thousand records.
        let mut lines = text
            .as_bytes()
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| std::str::from_utf8(l).unwrap_or(""));
        if lines.next()? != "hupkit-job 1" {
            return None;
        }
        let (mut pid, mut start, mut boot, mut when, mut level) = (None, None, None, None, None);
        let mut r = Record {
            id: Identity {
                pid: Pid::from_raw(1),
                starttime: 0,
                boot_id: String::new(),
            },
            when: String::new(),
            started: String::new(),
            level: Level::Nohup,
            argv: Vec::new(),
            cwd: OsString::new(),
            host: String::new(),
            tty: OsString::new(),
            output: OsString::new(),
            pidfile: OsString::new(),
            uid: None,
            caller_cwd: OsString::new(),
            tool_args: Vec::new(),
            scope: String::new(),
        };
        for line in lines {
            let eq = line.bytes().position(|b| b == b'=')?;
            let (k, v) = (&line[..eq], &line[eq + 1..]);
            let os = || unescape(v).map(OsString::from_vec);
            match k {
                "pid" => pid = v.parse::<i32>().ok().filter(|p| *p > 0),
                "starttime" => start = v.parse::<u64>().ok(),
                "boot_id" => boot = Some(v.to_string()),
                "when" => when = Some(v.to_string()),
                "started" => r.started = v.to_string(),
                "level" => level = Level::parse(v),
                "host" => r.host = String::from_utf8_lossy(&unescape(v)?).into_owned(),
                "cwd" => r.cwd = os()?,
                "tty" => r.tty = os()?,
                "output" => r.output = os()?,
                "pidfile" => r.pidfile = os()?,
                "scope" => r.scope = String::from_utf8_lossy(&unescape(v)?).into_owned(),
                "arg" => r.argv.push(os()?),
                "uid" => r.uid = Some(v.parse().ok()?),
                "caller_cwd" => r.caller_cwd = os()?,
                "tool_arg" => r.tool_args.push(os()?),
                _ => {}
            }
        }
        r.id = Identity {
            pid: Pid::from_raw(pid?),
            starttime: start?,
            boot_id: boot?,
        };
        r.when = when?;
        r.level = level?;
        Some(r)
    }
}

/// The store's directory: `$XDG_STATE_HOME/hupkit/jobs`, else
/// `$HOME/.local/state/hupkit/jobs`; `None` without either.
#[must_use]
pub fn dir() -> Option<PathBuf> {
    let base = match std::env::var_os("XDG_STATE_HOME").filter(|v| Path::new(v).is_absolute()) {
        Some(x) => PathBuf::from(x),
        None => {
            PathBuf::from(std::env::var_os("HOME").filter(|h| !h.is_empty())?).join(".local/state")
        }
    };
    Some(base.join("hupkit/jobs"))
}

/// The directory a tool writes its records to: [`dir`], unless
/// `HUPKIT_NO_RECORD=1` turns records off. Every record writer asks this.
#[must_use]
pub fn write_dir() -> Option<PathBuf> {
    if std::env::var_os("HUPKIT_NO_RECORD").is_some_and(|v| v == "1") {
        return None;
    }
    dir()
}

/// The memory a record step may need beyond its arguments (paths, host name,
/// /proc reads, the write buffer).
pub const RECORD_HEADROOM: usize = 256 * 1024;

/// Whether `bytes` more (plus [`RECORD_HEADROOM`]) can be allocated now: the
/// check a tool makes before building a record, so that a tight `RLIMIT_AS`
/// skips the record instead of aborting the tool (Rust aborts on a failed
/// allocation). The memory is given back at once.
#[must_use]
pub fn enough_memory(bytes: usize) -> bool {
    let mut probe: Vec<u8> = Vec::new();
    probe
        .try_reserve_exact(bytes.saturating_add(RECORD_HEADROOM))
        .is_ok()
}

/// The soft `RLIMIT_FSIZE`, if any: the largest file this process may write.
fn file_size_limit() -> Option<u64> {
    let mut lim = nix::libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct it is given, which lives here.
    let r = unsafe { nix::libc::getrlimit(nix::libc::RLIMIT_FSIZE, &raw mut lim) };
    (r == 0 && lim.rlim_cur != nix::libc::RLIM_INFINITY).then_some(lim.rlim_cur)
}

/// Writes `record` into `dir` (created 0700 if missing), atomically, mode 0600.
///
/// A record larger than `RLIMIT_FSIZE` is refused before anything is created
/// (writing it would raise SIGXFSZ); a failed write leaves no temporary file.
pub fn write(dir: &Path, record: &Record) -> Result<PathBuf, FileError> {
    if file_size_limit().is_some_and(|max| record.text_len() > max) {
        return Err(FileError::Refused(
            "the record is larger than the file size limit (RLIMIT_FSIZE)",
        ));
    }
    // Created under the same rules as the record itself (never through
    // another user's link or in another user's directory).
    safepath::create_dirs(dir, 0o700)?;
    let path = dir.join(record.file_name());
    // Reached through the same walk as detach's pidfiles: a tool run as root
    // with another user's HOME (su without -) never writes through that user's
    // links or directories.
    safepath::locate(&path, Purpose::Record)?.write_atomic_with(0o600, |file| {
        let mut w = std::io::BufWriter::with_capacity(8192, file);
        record.write_to(&mut w)?;
        std::io::Write::flush(&mut w)
    })?;
    Ok(path)
}

/// One entry of the store: a record, or why a file could not be read.
#[derive(Debug)]
// Nearly every entry is a record: boxing it would add an allocation per record
// to save space only in the rare corrupt one.
#[allow(clippy::large_enum_variant)]
pub enum Entry {
    /// A valid record, with its file.
    Record(PathBuf, Record),
    /// A file that is not a valid record (the text says why).
    Corrupt(PathBuf, String),
}

impl Entry {
    /// The file this entry was read from.
    #[must_use]
    pub fn path(&self) -> &Path {
        match self {
            Entry::Record(p, _) | Entry::Corrupt(p, _) => p,
        }
    }
}

/// Reads and parses the record files `names` of the directory `dirfd`.
fn read_records(
    dir: &Path,
    dirfd: &std::os::fd::OwnedFd,
    names: &[OsString],
) -> Vec<(String, Entry)> {
    use nix::fcntl::{OFlag, openat};
    use nix::sys::stat::Mode;
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        let path = dir.join(name);
        // A plain read loop: std's read_to_end would add a statx and an lseek per file.
        let flags = OFlag::O_RDONLY | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW;
        let read = openat(dirfd, name.as_os_str(), flags, Mode::empty())
            .and_then(|fd| {
                buf.clear();
                loop {
                    match nix::unistd::read(&fd, &mut chunk) {
                        Ok(0) => return Ok(()),
                        // A short read of a regular file is its end; records are
                        // only ever renamed into place whole, never grow.
                        Ok(n) if n < chunk.len() => {
                            buf.extend_from_slice(&chunk[..n]);
                            return Ok(());
                        }
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        Err(nix::errno::Errno::EINTR) => {}
                        Err(e) => return Err(e),
                    }
                }
            })
            .map_err(std::io::Error::from);
        out.push(match read {
            Ok(()) => match std::str::from_utf8(&buf).ok().and_then(Record::parse) {
                Some(r) => (r.started().to_string(), Entry::Record(path, r)),
                None => (
                    String::new(),
                    Entry::Corrupt(path, "not a valid job record".into()),
                ),
            },
            Err(e) => (String::new(), Entry::Corrupt(path, e.to_string())),
        });
    }
    out
}

/// Every record in `dir`, oldest job first; a missing directory is an empty store.
///
/// Files are opened relative to the directory's descriptor, read into reused
/// buffers, on up to four threads: `rjobs --records` reads ten thousand of
/// them in under 100 ms on two cores (docs/benchmarks.md).
#[must_use]
pub fn list(dir: &Path) -> Vec<Entry> {
    use nix::fcntl::OFlag;
    use nix::sys::stat::Mode;
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let Ok(dirfd) = nix::fcntl::open(
        dir,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    ) else {
        return Vec::new();
    };
    let names: Vec<OsString> = entries
        .flatten()
        .map(|e| e.file_name())
        .filter(|n| Path::new(n).extension() == Some(OsStr::new("job")))
        .collect();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(4));
    let per = names.len().div_ceil(threads).max(256);
    let mut out: Vec<(String, Entry)> = std::thread::scope(|s| {
        let parts: Vec<_> = names
            .chunks(per)
            .map(|part| s.spawn(|| read_records(dir, &dirfd, part)))
            .collect();
        parts
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .collect()
    });
    // Byte order of the names breaks ties: comparing as paths (component by
    // component) cost a quarter of the run over ten thousand records.
    // File names are unique, so the order is total: an unstable sort is exact.
    out.sort_unstable_by(|(wa, a), (wb, b)| {
        wa.cmp(wb)
            .then_with(|| a.path().as_os_str().cmp(b.path().as_os_str()))
    });
    out.into_iter().map(|(_, e)| e).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_any_argv() {
        let mut r = Record::new(
            nix::unistd::getpid(),
            Level::Nohup,
            vec![
                OsString::from("sh"),
                OsString::from("-c"),
                OsString::from("echo 'a\\b'\nnext"),
                OsString::from_vec(b"\xff\x00x".to_vec()),
            ],
        )
        .unwrap();
        r.output = OsString::from("/tmp/nohup.out");
        r.caller_cwd = OsString::from("/home/u/a\nb");
        r.tool_args = vec![OsString::from("-E"), OsString::from("K=v\\w")];
        let text = r.to_text();
        assert_eq!(Record::parse(&text), Some(r));
    }

    #[test]
    fn old_records_have_no_user_or_tool_args() {
        let old = "hupkit-job 1\npid=12\nstarttime=34\nboot_id=b\nwhen=w\nlevel=detach\narg=x\n";
        let r = Record::parse(old).unwrap();
        assert_eq!((r.uid, r.tool_args.len()), (None, 0));
        assert!(r.caller_cwd.is_empty());
        assert!(Record::parse(&old.replace("level", "uid=me\nlevel")).is_none());
    }

    #[test]
    fn scope_round_trips_and_is_absent_when_empty() {
        let mut r = Record::new(nix::unistd::getpid(), Level::Detach, vec!["x".into()]).unwrap();
        assert!(!r.to_text().contains("scope="));
        r.scope = "hupkit-my\\x20job-12-34.scope".into();
        let text = r.to_text();
        assert!(
            text.contains("\nscope=hupkit-my\\\\x20job-12-34.scope\n"),
            "{text}"
        );
        assert_eq!(Record::parse(&text), Some(r));
    }

    #[test]
    fn corrupt_and_concurrent() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let jobs = dir.path().join("hupkit/jobs");
        let r = Record::new(nix::unistd::getpid(), Level::Detach, vec!["x".into()]).unwrap();
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| write(&jobs, &r).unwrap());
            }
        });
        std::fs::write(jobs.join("junk.job"), "garbage").unwrap();
        let entries = list(&jobs);
        assert_eq!(entries.len(), 2);
        assert!(entries.iter().any(|e| matches!(e, Entry::Corrupt(..))));
        let mode = std::fs::metadata(jobs.join(r.file_name()))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(Record::parse("hupkit-job 1\npid=x\n").is_none());
    }
}
