//! The pidfile, its identity record, and the lock.
//!
//! - `FILE`: the daemon's PID and a newline, what every pidfile reader expects
//!   (`kill $(cat FILE)`, systemd's `PIDFile=`, `start-stop-daemon`).
//! - `FILE.id`: `PID STARTTIME BOOT_ID`, the identity that `--status` and
//!   `--stop` check, written first so that a reader who sees a new pidfile sees
//!   its identity too.
//! - The lock file: the same identity line, read and rewritten under an exclusive
//!   `flock` held only while starting. The lock is "held" as long as that process
//!   lives: a daemon killed by SIGKILL never blocks the next start, and the daemon's own
//!   children never hold it (no descriptor of it reaches the daemon).
//! - A job record (`hupkit_common::records`), for `--job ID`: read under the
//!   same rules as a pidfile, and trusted only for the identity it holds, which
//!   must be the one its ID names.

use std::ffi::OsString;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use hupkit_common::identity::Identity;
use hupkit_common::safefile::FileError;
use hupkit_common::safepath::{self, Located, Purpose};
use nix::fcntl::{Flock, FlockArg};
use nix::unistd::Pid;

/// The longest pidfile or identity record read (a PID, or `PID STARTTIME BOOT_ID`).
const READ_LIMIT: u64 = 4096;

/// The identity record beside a pidfile.
#[must_use]
pub fn id_path(pidfile: &Path) -> PathBuf {
    let mut s = OsString::from(pidfile.as_os_str());
    s.push(".id");
    PathBuf::from(s)
}

/// The pidfile and its identity record, located under [`safepath`]'s rules:
/// the same directory descriptor for both. A start walks the path once, for
/// the check of a running daemon and for both writes ([`Pidfile::read`],
/// [`Pidfile::write`]).
#[derive(Debug)]
pub struct Pidfile {
    file: Located,
    id: Located,
    /// The pidfile was missing when read ([`read_located`]): the writes try
    /// the free names first.
    free: bool,
}

impl Pidfile {
    /// Walks to the pidfile `path` (see [`safepath::locate`]).
    pub fn locate(path: &Path) -> Result<Pidfile, FileError> {
        let file = safepath::locate(path, Purpose::Record)?;
        let mut id_name = file.name().to_os_string();
        id_name.push(".id");
        let id = file.sibling(&id_name)?;
        Ok(Pidfile {
            file,
            id,
            free: false,
        })
    }

    /// What the pidfile at `path` (the path this was located from, for
    /// messages) says, both files read under [`safepath`]'s rules.
    #[must_use]
    pub fn read(&self, path: &Path) -> PidfileState {
        let bytes = match self.file.read(READ_LIMIT) {
            Ok(Some(b)) => b,
            Ok(None) => return PidfileState::Missing,
            Err(e) => return refusal(path, e),
        };
        let text = String::from_utf8_lossy(&bytes);
        let Some(pid) = text
            .strip_suffix('\n')
            .unwrap_or(&text)
            .parse::<i32>()
            .ok()
            .filter(|p| *p > 0)
        else {
            return PidfileState::Invalid("it does not hold a PID".into());
        };
        let identity = match self.id.read(READ_LIMIT) {
            Ok(Some(b)) => Identity::parse(&String::from_utf8_lossy(&b)),
            Ok(None) | Err(FileError::Sys(_)) => None,
            Err(e) => return refusal(&id_path(path), e),
        };
        let identity = identity.filter(|id| id.pid.as_raw() == pid);
        PidfileState::Pid(Pid::from_raw(pid), identity)
    }

    /// Writes the identity record, then the pidfile.
    ///
    /// Each is a new file renamed into a free name (readers see it appear
    /// whole), which costs ext4 no forced write-back (renaming over an
    /// existing file triggers its `auto_da_alloc` flush: 1.5 ms each,
    /// measured). An old pidfile is stale by now (a live one refuses the
    /// start): unless it was missing when read, both files are checked, then
    /// removed, before either is written. Where a name is taken all the same
    /// (an identity record without its pidfile, a race), that file is
    /// checked, removed and written.
    pub fn write(&self, id: &Identity) -> Result<(), FileError> {
        if !self.free {
            self.file.check_existing()?;
            self.id.check_existing()?;
            self.file.remove()?;
            self.id.remove()?;
        }
        write_free(&self.id, format!("{id}\n").as_bytes())?;
        if let Err(e) = write_free(&self.file, format!("{}\n", id.pid).as_bytes()) {
            // Nothing half-done: the new identity record goes too.
            let _ = self.id.remove();
            return Err(e);
        }
        Ok(())
    }

    /// Removes both files.
    fn remove(&self) {
        let _ = self.file.remove();
        let _ = self.id.remove();
    }
}

/// Writes `text` to `at` (mode 0644) into the free name; if the name is
/// taken, checks and removes what is there first.
fn write_free(at: &Located, text: &[u8]) -> Result<(), FileError> {
    if at.write_new(text, 0o644)? {
        return Ok(());
    }
    at.check_existing()?;
    at.remove()?;
    at.write_atomic(text, 0o644)
}

/// What a pidfile or identity record that could not be read says.
fn refusal(file: &Path, e: FileError) -> PidfileState {
    match e {
        FileError::Sys(errno) => PidfileState::Invalid(hupkit_common::diag::strerror(errno)),
        other => PidfileState::Refused(file.to_path_buf(), other.to_string()),
    }
}

/// What a pidfile says.
#[derive(Debug, PartialEq, Eq)]
pub enum PidfileState {
    /// No pidfile.
    Missing,
    /// A PID, with the recorded identity if there is a matching one.
    Pid(Pid, Option<Identity>),
    /// Not a PID, or unreadable: the text says what is wrong.
    Invalid(String),
    /// The pidfile or its identity record is unsafe to trust (see
    /// [`safepath`]): the file and the reason.
    Refused(PathBuf, String),
}

/// Reads a pidfile and its identity record, both under [`safepath`]'s rules:
/// a file another user could have planted or written is refused, never read.
#[must_use]
pub fn read_pidfile(path: &Path) -> PidfileState {
    read_located(path).0
}

/// [`read_pidfile`], and the located files for the writes that follow (`None`
/// if the path could not be walked).
#[must_use]
pub fn read_located(path: &Path) -> (PidfileState, Option<Pidfile>) {
    match Pidfile::locate(path) {
        Ok(mut at) => {
            let state = at.read(path);
            at.free = state == PidfileState::Missing;
            (state, Some(at))
        }
        Err(e) => (refusal(path, e), None),
    }
}

/// A job record's ID, as `rjobs --records` shows it: `PID@STARTTIME`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobId {
    /// The process ID.
    pub pid: Pid,
    /// Its start time, in clock ticks after boot.
    pub starttime: u64,
}

impl JobId {
    /// Parses `PID@STARTTIME`.
    #[must_use]
    pub fn parse(text: &str) -> Option<JobId> {
        let (pid, start) = text.split_once('@')?;
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if !digits(pid) || !digits(start) {
            return None;
        }
        Some(JobId {
            pid: Pid::from_raw(pid.parse().ok().filter(|p| *p > 0)?),
            starttime: start.parse().ok()?,
        })
    }

    /// The record's path in the store, `None` without a store (no `$HOME`).
    #[must_use]
    pub fn path(&self) -> Option<PathBuf> {
        Some(hupkit_common::records::dir()?.join(format!("{}-{}.job", self.pid, self.starttime)))
    }
}

impl std::fmt::Display for JobId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@{}", self.pid, self.starttime)
    }
}

/// The longest job record read (a record's argv can be long; only its
/// identity and pidfile are used).
pub const RECORD_READ_LIMIT: u64 = 1 << 20;

/// Reads the job record at `path` under [`safepath`]'s rules, as a pidfile
/// is read: what it says, as a pidfile would say it (the identity must be the
/// one `id` names, whatever the file's name), and the pidfile it names.
#[must_use]
pub fn read_job(path: &Path, id: JobId) -> (PidfileState, Option<PathBuf>) {
    let refuse = |e: FileError| match e {
        FileError::Sys(errno) => PidfileState::Invalid(hupkit_common::diag::strerror(errno)),
        other => PidfileState::Refused(path.to_path_buf(), other.to_string()),
    };
    let bytes =
        match safepath::locate(path, Purpose::Record).and_then(|f| f.read(RECORD_READ_LIMIT)) {
            Ok(Some(b)) => b,
            Ok(None) | Err(FileError::Sys(nix::errno::Errno::ENOENT)) => {
                return (PidfileState::Missing, None);
            }
            Err(e) => return (refuse(e), None),
        };
    let Some(rec) = std::str::from_utf8(&bytes)
        .ok()
        .and_then(hupkit_common::records::Record::parse)
    else {
        return (PidfileState::Invalid("not a valid job record".into()), None);
    };
    if rec.id.pid != id.pid || rec.id.starttime != id.starttime {
        return (
            PidfileState::Invalid(format!(
                "it records PID {}@{}",
                rec.id.pid, rec.id.starttime
            )),
            None,
        );
    }
    let pidfile = (!rec.pidfile.is_empty()).then(|| PathBuf::from(rec.pidfile));
    (PidfileState::Pid(rec.id.pid, Some(rec.id)), pidfile)
}

/// Writes the identity record, then the pidfile ([`Pidfile::write`]).
pub fn write_pidfile(path: &Path, id: &Identity) -> Result<(), FileError> {
    Pidfile::locate(path)?.write(id)
}

/// Removes the pidfile and its record if they still name `id`.
pub fn remove_pidfile(path: &Path, id: &Identity) {
    if let Ok(at) = Pidfile::locate(path) {
        if at.read(path) == PidfileState::Pid(id.pid, Some(id.clone())) {
            at.remove();
        }
    }
}

/// The start lock, held while this detach starts its daemon.
pub struct StartLock {
    file: Flock<File>,
}

impl StartLock {
    /// Takes the lock (waiting for another detach that is starting), and returns
    /// it with the identity recorded in it, if any. The lock file is reached and
    /// checked under [`safepath`]'s rules.
    pub fn acquire(path: &Path) -> Result<(StartLock, Option<Identity>), FileError> {
        let file = safepath::locate(path, Purpose::Record)?.open_lock(0o644)?;
        let mut file =
            Flock::lock(file, FlockArg::LockExclusive).map_err(|(_, e)| FileError::Sys(e))?;
        let mut text = String::new();
        let recorded = match (&mut *file).take(READ_LIMIT).read_to_string(&mut text) {
            Ok(_) => Identity::parse(&text),
            Err(_) => None,
        };
        Ok((StartLock { file }, recorded))
    }
    /// Records the new daemon's identity (the lock is released when dropped).
    pub fn record(&mut self, id: &Identity) -> Result<(), FileError> {
        let io = |e: std::io::Error| {
            FileError::Sys(nix::errno::Errno::from_raw(e.raw_os_error().unwrap_or(5)))
        };
        self.file.set_len(0).map_err(io)?;
        self.file.seek(SeekFrom::Start(0)).map_err(io)?;
        self.file
            .write_all(format!("{id}\n").as_bytes())
            .map_err(io)
    }
}
