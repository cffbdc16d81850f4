//! rnohup's end-to-end tests, and the scenario harness they share.
//!
//! A [`Scenario`] gives each of fds 0-2 one of: `T` a pseudo-terminal, `F` a
//! regular file, `N` `/dev/null`, `C` closed, `X` `/dev/full`, `P` a pipe; plus
//! the arguments, environment, umask, user and files to prepare. [`run_one`] runs
//! a program in a fresh directory and records an [`Outcome`]: how the process
//! ended, everything written on the terminal and the pipes, and every file left in
//! the directory (name, type, mode, content).

mod front;
mod gnu_diff;
mod hangup;
mod limits;
mod own;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt::Write as _;
use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hupkit_common::pty::{Carriage, Transcript};

use crate::util::{self, Pty};

pub const GNU: &str = "/usr/bin/nohup";
/// How long the terminal must stay quiet, once the program has ended, for its
/// transcript to be complete: what the program wrote is already there; this
/// only bounds the wait for a background process that still holds the slave.
const TTY_QUIET: Duration = Duration::from_millis(100);
/// The research's reference command: one line on each output stream.
pub const S: &[&str] = &["sh", "-c", "echo out; echo err >&2"];
pub const NOBODY: u32 = 65534;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Tty,
    File,
    Null,
    Closed,
    Full,
    Pipe,
}

impl Kind {
    pub fn from_letter(c: char) -> Kind {
        match c {
            'T' => Kind::Tty,
            'F' => Kind::File,
            'N' => Kind::Null,
            'C' => Kind::Closed,
            'X' => Kind::Full,
            'P' => Kind::Pipe,
            other => panic!("unknown fd kind {other}"),
        }
    }
    pub const ALL: [Kind; 6] = [
        Kind::Tty,
        Kind::File,
        Kind::Null,
        Kind::Closed,
        Kind::Full,
        Kind::Pipe,
    ];
    pub fn letter(self) -> char {
        match self {
            Kind::Tty => 'T',
            Kind::File => 'F',
            Kind::Null => 'N',
            Kind::Closed => 'C',
            Kind::Full => 'X',
            Kind::Pipe => 'P',
        }
    }
}

/// The directories of one run: `run/` is wiped and rebuilt before each run.
pub struct Layout {
    pub run: PathBuf,
    pub cwd: PathBuf,
    pub home: PathBuf,
}

pub type Setup = Box<dyn Fn(&Layout)>;

pub struct Scenario {
    pub name: String,
    pub fds: [Kind; 3],
    pub args: Vec<OsString>,
    pub env: Vec<(OsString, Option<OsString>)>,
    pub setup: Option<Setup>,
    pub umask: Option<u32>,
    pub nobody: bool,
    pub ignore_sigpipe: bool,
    pub compare_stdout: bool,
}

impl Scenario {
    pub fn new(name: &str, fds: &str, args: &[&str]) -> Scenario {
        Scenario::os(name, fds, args.iter().map(OsString::from).collect())
    }
    pub fn os(name: &str, fds: &str, args: Vec<OsString>) -> Scenario {
        let k: Vec<Kind> = fds.chars().map(Kind::from_letter).collect();
        Scenario {
            name: format!("{name} [{fds}]"),
            fds: [k[0], k[1], k[2]],
            args,
            env: Vec::new(),
            setup: None,
            umask: None,
            nobody: false,
            ignore_sigpipe: false,
            compare_stdout: true,
        }
    }
    pub fn env(mut self, k: &str, v: &str) -> Self {
        self.env.push((k.into(), Some(v.into())));
        self
    }
    pub fn env_os(mut self, k: &str, v: OsString) -> Self {
        self.env.push((k.into(), Some(v)));
        self
    }
    pub fn unset(mut self, k: &str) -> Self {
        self.env.push((k.into(), None));
        self
    }
    pub fn setup(mut self, f: impl Fn(&Layout) + 'static) -> Self {
        self.setup = Some(Box::new(f));
        self
    }
    pub fn umask(mut self, m: u32) -> Self {
        self.umask = Some(m);
        self
    }
    pub fn nobody(mut self) -> Self {
        self.nobody = true;
        self
    }
    pub fn sigpipe_ignored(mut self) -> Self {
        self.ignore_sigpipe = true;
        self
    }
    pub fn loose_stdout(mut self) -> Self {
        self.compare_stdout = false;
        self
    }
}

/// What one run left behind.
#[derive(Debug, PartialEq, Eq)]
pub struct Outcome {
    pub status: String,
    pub tty: String,
    pub pipes: BTreeMap<u8, String>,
    pub files: BTreeMap<String, String>,
}

pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

pub fn gnu_available() -> bool {
    Command::new(GNU)
        .arg("--version")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("(GNU coreutils) 9."))
}

pub fn make_writable(p: &Path) {
    if let Ok(meta) = fs::symlink_metadata(p) {
        if meta.is_dir() {
            let _ = fs::set_permissions(p, fs::Permissions::from_mode(0o755));
            if let Ok(entries) = fs::read_dir(p) {
                for e in entries.flatten() {
                    make_writable(&e.path());
                }
            }
        }
    }
}

fn fresh_layout(base: &Path) -> Layout {
    let run = base.join("run");
    make_writable(&run);
    let _ = fs::remove_dir_all(&run);
    let layout = Layout {
        cwd: run.join("cwd"),
        home: run.join("home"),
        run,
    };
    fs::create_dir_all(&layout.cwd).unwrap();
    fs::create_dir_all(&layout.home).unwrap();
    for d in [&layout.run, &layout.cwd, &layout.home] {
        fs::set_permissions(d, fs::Permissions::from_mode(0o755)).unwrap();
    }
    fs::write(layout.run.join("in.txt"), "input\n").unwrap();
    fs::write(layout.run.join("out.txt"), "").unwrap();
    fs::write(layout.run.join("err.txt"), "").unwrap();
    layout
}

fn snapshot(dir: &Path, root: &Path, out: &mut BTreeMap<String, String>) {
    let mut entries: Vec<_> = fs::read_dir(dir).unwrap().flatten().collect();
    entries.sort_by_key(fs::DirEntry::file_name);
    for e in entries {
        let path = e.path();
        let rel = path
            .strip_prefix(root)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let meta = fs::symlink_metadata(&path).unwrap();
        let mode = meta.permissions().mode() & 0o7777;
        if meta.file_type().is_symlink() {
            let target = fs::read_link(&path).unwrap();
            out.insert(rel, format!("link -> {}", target.display()));
        } else if meta.is_dir() {
            out.insert(rel, format!("dir {mode:04o}"));
            snapshot(&path, root, out);
        } else {
            let content = fs::read(&path).unwrap();
            out.insert(rel, format!("file {mode:04o} \"{}\"", show(&content)));
        }
    }
}

/// A copy of `program` that user nobody can run, beside the scenario; for
/// rnohup's front, with its full implementation beside it (where the front
/// finds it).
fn reachable_by_nobody(program: &Path, base: &Path) -> PathBuf {
    let dir = base.join("bin");
    fs::create_dir_all(&dir).unwrap();
    fs::set_permissions(base, fs::Permissions::from_mode(0o755)).unwrap();
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
    let copy_into = |program: &Path| {
        let copy = dir.join(program.file_name().unwrap());
        // A hard link involves no open-for-write descriptor; a copy does, and a
        // child forked meanwhile by another test can hold it until it execs
        // (ETXTBSY, which util::spawn retries).
        if !copy.exists() && fs::hard_link(program, &copy).is_err() {
            fs::copy(program, &copy).unwrap();
        }
        fs::set_permissions(&copy, fs::Permissions::from_mode(0o755)).unwrap();
        copy
    };
    if program == util::bin("rnohup") {
        copy_into(&util::bin("hupkit-rnohup"));
    }
    copy_into(program)
}

type Reader = (u8, std::thread::JoinHandle<Vec<u8>>);

/// Threads that read the child's stdout and stderr pipes to the end, so that a
/// full pipe never blocks it.
fn pipe_readers(child: &mut std::process::Child) -> Vec<Reader> {
    let pipes: [(u8, Option<Box<dyn Read + Send>>); 2] = [
        (
            1,
            child
                .stdout
                .take()
                .map(|p| Box::new(p) as Box<dyn Read + Send>),
        ),
        (
            2,
            child
                .stderr
                .take()
                .map(|p| Box::new(p) as Box<dyn Read + Send>),
        ),
    ];
    pipes
        .into_iter()
        .filter_map(|(fd, pipe)| {
            pipe.map(|mut p| {
                let reader = std::thread::spawn(move || {
                    let mut buf = Vec::new();
                    let _ = p.read_to_end(&mut buf);
                    buf
                });
                (fd, reader)
            })
        })
        .collect()
}

/// What the child gets as fd `fd` for `kind` (a closed fd is closed later, in
/// the child, after `Command` has set up its standard streams).
fn stdio_for(kind: Kind, fd: usize, layout: &Layout, pty: &Pty) -> Stdio {
    match kind {
        Kind::Tty => Stdio::from(pty.slave.try_clone().unwrap()),
        Kind::File if fd == 0 => Stdio::from(fs::File::open(layout.run.join("in.txt")).unwrap()),
        Kind::File => {
            let name = if fd == 1 { "out.txt" } else { "err.txt" };
            let f = fs::OpenOptions::new()
                .append(true)
                .open(layout.run.join(name))
                .unwrap();
            Stdio::from(f)
        }
        Kind::Null | Kind::Closed => Stdio::null(),
        Kind::Full => Stdio::from(
            fs::OpenOptions::new()
                .write(true)
                .open("/dev/full")
                .unwrap(),
        ),
        Kind::Pipe => Stdio::piped(),
    }
}

/// Runs `program` (as `argv0`) in a fresh layout under `base`.
pub fn run_one(sc: &Scenario, program: &Path, argv0: &str, base: &Path) -> Outcome {
    let layout = fresh_layout(base);
    if let Some(setup) = &sc.setup {
        setup(&layout);
    }
    let pty = util::pty();
    let program = if sc.nobody && is_root() {
        reachable_by_nobody(program, base)
    } else {
        program.to_path_buf()
    };
    let mut cmd = Command::new(&program);
    cmd.arg0(argv0)
        .args(&sc.args)
        .current_dir(&layout.cwd)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("LC_ALL", "C")
        .env("HOME", &layout.home)
        // Job records are rnohup's own addition: kept out of the GNU comparison
        // (tests/jobcontrol covers them).
        .env("HUPKIT_NO_RECORD", "1");
    for (k, v) in &sc.env {
        match v {
            Some(v) => cmd.env(k, v),
            None => cmd.env_remove(k),
        };
    }
    let mut close = [false; 3];
    for (fd, kind) in sc.fds.iter().enumerate() {
        close[fd] = *kind == Kind::Closed;
        let stdio = stdio_for(*kind, fd, &layout, &pty);
        match fd {
            0 => cmd.stdin(stdio),
            1 => cmd.stdout(stdio),
            _ => cmd.stderr(stdio),
        };
    }
    let umask = sc.umask;
    let ignore_sigpipe = sc.ignore_sigpipe;
    // SAFETY: the closure only makes async-signal-safe calls (close, umask, signal).
    unsafe {
        cmd.pre_exec(move || {
            for (fd, c) in close.iter().enumerate() {
                if *c {
                    nix::libc::close(i32::try_from(fd).unwrap_or(0));
                }
            }
            if let Some(m) = umask {
                nix::libc::umask(m);
            }
            if ignore_sigpipe {
                nix::libc::signal(nix::libc::SIGPIPE, nix::libc::SIG_IGN);
            }
            Ok(())
        });
    }
    if sc.nobody && is_root() {
        cmd.uid(NOBODY).gid(NOBODY);
    }
    let mut child = util::spawn(&mut cmd);
    // Close the parent's copies of the terminal and files: only the child holds them now.
    drop(cmd);
    let Pty { master, slave, .. } = pty;
    drop(slave);
    // Read from the start: a program that fills the terminal's buffer is not
    // blocked waiting for the test to read.
    let tty = Transcript::start(master, Carriage::Keep).unwrap();
    drop(child.stdin.take());
    let readers = pipe_readers(&mut child);
    let mut guard = util::ChildGuard::new(child);
    let status = guard.wait(util::DEADLINE);
    let pipes: BTreeMap<u8, String> = readers
        .into_iter()
        .map(|(fd, h)| (fd, show(&h.join().unwrap())))
        .collect();
    // Until every copy of the slave is closed, or the terminal is quiet for a
    // while (a leftover background process may still hold it).
    let tty = tty.settle(TTY_QUIET, Instant::now() + util::DEADLINE);
    let mut files = BTreeMap::new();
    snapshot(&layout.run, &layout.run, &mut files);
    Outcome {
        status: util::describe(status),
        tty: show(&tty),
        pipes,
        files,
    }
}

/// Runs `sc` with rnohup alone (as argv\[0\] `rnohup`) in a fresh temporary directory.
pub fn run_rnohup(sc: &Scenario) -> Outcome {
    let base = util::open_tempdir();
    let out = run_one(sc, &util::bin("rnohup"), "rnohup", base.path());
    make_writable(&base.path().join("run"));
    out
}

/// Writes a file with an exact mode.
pub fn write_file(p: &Path, content: &str, mode: u32) {
    fs::write(p, content).unwrap();
    fs::set_permissions(p, fs::Permissions::from_mode(mode)).unwrap();
}

/// Bytes as readable text: printable ASCII as is, `\\`, `\n`, `\t`, else `\xNN`.
pub fn show(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        match b {
            b'\\' => out.push_str("\\\\"),
            b'\n' => out.push_str("\\n"),
            b'\t' => out.push_str("\\t"),
            0x20..=0x7e => out.push(char::from(b)),
            _ => {
                let _ = write!(out, "\\x{b:02x}");
            }
        }
    }
    out
}
