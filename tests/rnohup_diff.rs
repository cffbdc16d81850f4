//! rnohup against GNU coreutils nohup, scenario by scenario.
//!
//! Where `/usr/bin/nohup` is GNU coreutils 9.x, every scenario is run twice in the
//! same directory, once with GNU nohup and once with rnohup, both invoked as
//! `nohup` (argv\[0\]), so that messages compare byte for byte. What is compared:
//! how the process ended, everything written on the terminal, the pipes, and every
//! file left in the scenario's directory (name, type, mode, content).
//!
//! Each of fds 0-2 can be: `T` a pseudo-terminal, `F` a regular file, `N`
//! `/dev/null`, `C` closed, `X` `/dev/full`, `P` a pipe. The full 6×6×6 matrix runs
//! with the research's reference command; the named scenarios cover every row of
//! the decision matrix in `shared/research/nohup.md` and its corner cases.

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::fs;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::util::{self, Pty};

const GNU: &str = "/usr/bin/nohup";
/// The research's reference command: one line on each output stream.
const S: &[&str] = &["sh", "-c", "echo out; echo err >&2"];
const NOBODY: u32 = 65534;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Tty,
    File,
    Null,
    Closed,
    Full,
    Pipe,
}

impl Kind {
    fn from_letter(c: char) -> Kind {
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
    const ALL: [Kind; 6] = [
        Kind::Tty,
        Kind::File,
        Kind::Null,
        Kind::Closed,
        Kind::Full,
        Kind::Pipe,
    ];
    fn letter(self) -> char {
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

type Setup = Box<dyn Fn(&Layout)>;

struct Scenario {
    name: String,
    fds: [Kind; 3],
    args: Vec<OsString>,
    env: Vec<(OsString, Option<OsString>)>,
    setup: Option<Setup>,
    umask: Option<u32>,
    nobody: bool,
    ignore_sigpipe: bool,
    compare_stdout: bool,
}

impl Scenario {
    fn new(name: &str, fds: &str, args: &[&str]) -> Scenario {
        Scenario::os(name, fds, args.iter().map(OsString::from).collect())
    }
    fn os(name: &str, fds: &str, args: Vec<OsString>) -> Scenario {
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
    fn env(mut self, k: &str, v: &str) -> Self {
        self.env.push((k.into(), Some(v.into())));
        self
    }
    fn env_os(mut self, k: &str, v: OsString) -> Self {
        self.env.push((k.into(), Some(v)));
        self
    }
    fn unset(mut self, k: &str) -> Self {
        self.env.push((k.into(), None));
        self
    }
    fn setup(mut self, f: impl Fn(&Layout) + 'static) -> Self {
        self.setup = Some(Box::new(f));
        self
    }
    fn umask(mut self, m: u32) -> Self {
        self.umask = Some(m);
        self
    }
    fn nobody(mut self) -> Self {
        self.nobody = true;
        self
    }
    fn sigpipe_ignored(mut self) -> Self {
        self.ignore_sigpipe = true;
        self
    }
    fn loose_stdout(mut self) -> Self {
        self.compare_stdout = false;
        self
    }
}

/// What one run left behind.
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    status: String,
    tty: String,
    pipes: BTreeMap<u8, String>,
    files: BTreeMap<String, String>,
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

fn gnu_available() -> bool {
    Command::new(GNU)
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("(GNU coreutils) 9."))
        .unwrap_or(false)
}

fn make_writable(p: &Path) {
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
            out.insert(
                rel,
                format!("file {mode:04o} \"{}\"", content.escape_ascii()),
            );
        }
    }
}

/// Runs `program` (as argv\[0\] `nohup`) in a fresh layout under `base`.
fn run_one(sc: &Scenario, program: &Path, base: &Path) -> Outcome {
    let layout = fresh_layout(base);
    if let Some(setup) = &sc.setup {
        setup(&layout);
    }
    let pty = Pty::open();
    let program = if sc.nobody && is_root() {
        // The binary must be reachable by nobody: copy it beside the scenario.
        let dir = base.join("bin");
        fs::create_dir_all(&dir).unwrap();
        let copy = dir.join(program.file_name().unwrap());
        if !copy.exists() {
            fs::copy(program, &copy).unwrap();
        }
        for p in [base, dir.as_path(), copy.as_path()] {
            fs::set_permissions(p, fs::Permissions::from_mode(0o755)).unwrap();
        }
        copy
    } else {
        program.to_path_buf()
    };
    let mut cmd = Command::new(&program);
    cmd.arg0("nohup")
        .args(&sc.args)
        .current_dir(&layout.cwd)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("LC_ALL", "C")
        .env("HOME", &layout.home);
    for (k, v) in &sc.env {
        match v {
            Some(v) => cmd.env(k, v),
            None => cmd.env_remove(k),
        };
    }
    let mut close = [false; 3];
    for (fd, kind) in sc.fds.iter().enumerate() {
        let stdio = match kind {
            Kind::Tty => Stdio::from(pty.slave.try_clone().unwrap()),
            Kind::File => {
                let f = if fd == 0 {
                    fs::File::open(layout.run.join("in.txt")).unwrap()
                } else {
                    let name = if fd == 1 { "out.txt" } else { "err.txt" };
                    fs::OpenOptions::new()
                        .append(true)
                        .open(layout.run.join(name))
                        .unwrap()
                };
                Stdio::from(f)
            }
            Kind::Null => Stdio::null(),
            Kind::Closed => {
                close[fd] = true;
                Stdio::null()
            }
            Kind::Full => Stdio::from(
                fs::OpenOptions::new()
                    .write(true)
                    .open("/dev/full")
                    .unwrap(),
            ),
            Kind::Pipe => Stdio::piped(),
        };
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
    let mut child = cmd.spawn().expect("spawn");
    // Close the parent's copies of the terminal and files: only the child holds them now.
    drop(cmd);
    let Pty { master, slave } = pty;
    drop(slave);
    drop(child.stdin.take());
    let readers: Vec<(u8, std::thread::JoinHandle<Vec<u8>>)> = [
        (
            1u8,
            child
                .stdout
                .take()
                .map(|p| Box::new(p) as Box<dyn Read + Send>),
        ),
        (
            2u8,
            child
                .stderr
                .take()
                .map(|p| Box::new(p) as Box<dyn Read + Send>),
        ),
    ]
    .into_iter()
    .filter_map(|(fd, pipe)| {
        pipe.map(|mut p| {
            (
                fd,
                std::thread::spawn(move || {
                    let mut buf = Vec::new();
                    let _ = p.read_to_end(&mut buf);
                    buf
                }),
            )
        })
    })
    .collect();
    let mut guard = util::ChildGuard::new(child);
    let status = guard.wait(util::DEADLINE);
    let pipes: BTreeMap<u8, String> = readers
        .into_iter()
        .map(|(fd, h)| (fd, h.join().unwrap().escape_ascii().to_string()))
        .collect();
    let tty = Pty {
        master,
        slave: fs::File::open("/dev/null").unwrap().into(),
    }
    .drain(Duration::from_millis(100));
    let mut files = BTreeMap::new();
    snapshot(&layout.run, &layout.run, &mut files);
    Outcome {
        status: util::describe(status),
        tty: tty.escape_ascii().to_string(),
        pipes,
        files,
    }
}

/// Runs a scenario with both programs; returns a report of the differences, if any.
fn compare(sc: &Scenario) -> Option<String> {
    let base = tempfile::tempdir().unwrap();
    fs::set_permissions(base.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let mut gnu = run_one(sc, Path::new(GNU), base.path());
    let mut ours = run_one(sc, &util::bin("rnohup"), base.path());
    make_writable(&base.path().join("run"));
    if !sc.compare_stdout {
        for o in [&mut gnu, &mut ours] {
            o.pipes.remove(&1);
            o.files.remove("out.txt");
            if sc.fds[1] == Kind::Tty {
                o.tty.clear();
            }
        }
    }
    if std::env::var_os("HUPKIT_TEST_SHOW").is_some() {
        eprintln!("{}: {:?}\n  {gnu:?}", sc.name, sc.args);
    }
    if gnu == ours {
        None
    } else {
        Some(format!(
            "scenario {}: {:?}\n  GNU:    {gnu:?}\n  rnohup: {ours:?}",
            sc.name, sc.args
        ))
    }
}

fn check_all(scenarios: &[Scenario]) {
    if !gnu_available() {
        eprintln!("skipped: {GNU} is not GNU coreutils 9.x");
        return;
    }
    let failures: Vec<String> = scenarios.iter().filter_map(compare).collect();
    assert!(
        failures.is_empty(),
        "{} of {} scenarios differ from GNU nohup:\n{}",
        failures.len(),
        scenarios.len(),
        failures.join("\n")
    );
}

/// Every combination of terminal, file, /dev/null, closed, /dev/full and pipe on
/// fds 0, 1 and 2 (216 scenarios), with the reference command.
#[test]
fn fd_matrix_matches_gnu() {
    let mut scenarios = Vec::new();
    for a in Kind::ALL {
        for b in Kind::ALL {
            for c in Kind::ALL {
                let fds: String = [a, b, c].iter().map(|k| k.letter()).collect();
                scenarios.push(Scenario::new("matrix", &fds, S));
            }
        }
    }
    check_all(&scenarios);
}

fn write_file(p: &Path, content: &str, mode: u32) {
    fs::write(p, content).unwrap();
    fs::set_permissions(p, fs::Permissions::from_mode(mode)).unwrap();
}

/// The named scenarios: the research's table (§7), the GNU test suite's cases
/// (§1.11) and the corner cases around them.
#[allow(clippy::too_many_lines)]
fn named() -> Vec<Scenario> {
    let nohup_out_dir = |l: &Layout| fs::create_dir(l.cwd.join("nohup.out")).unwrap();
    let both_dirs = |l: &Layout| {
        fs::create_dir(l.cwd.join("nohup.out")).unwrap();
        fs::create_dir(l.home.join("nohup.out")).unwrap();
    };
    let unwritable_cwd = |l: &Layout| {
        fs::set_permissions(&l.cwd, fs::Permissions::from_mode(0o555)).unwrap();
        nix::unistd::chown(&l.home, Some(NOBODY.into()), Some(NOBODY.into())).ok();
    };
    let both_unwritable = |l: &Layout| {
        fs::set_permissions(&l.cwd, fs::Permissions::from_mode(0o555)).unwrap();
        fs::set_permissions(&l.home, fs::Permissions::from_mode(0o555)).unwrap();
    };
    let mut v = vec![
        // The decision matrix rows, with the reference command.
        Scenario::new("row 1", "TTT", S),
        Scenario::new("row 2", "TTF", S),
        Scenario::new("row 3", "TFT", S),
        Scenario::new("row 4", "TFF", S),
        Scenario::new("row 5", "TCT", S),
        Scenario::new("row 6", "TCF", S),
        Scenario::new("row 7", "NTT", S),
        Scenario::new("row 8", "NTF", S),
        Scenario::new("row 9", "NFT", S),
        Scenario::new("row 10", "NFF", S),
        Scenario::new("row 11", "NCT", S),
        Scenario::new("row 12", "NCF", S),
        Scenario::new("stdin closed, others tty", "CTT", S),
        Scenario::new("all closed but stderr tty", "CCT", S),
        // stdin is unreadable, not empty.
        Scenario::new(
            "read from replaced stdin",
            "TTT",
            &["sh", "-c", "cat; echo $?"],
        ),
        Scenario::new(
            "stdin fd flags",
            "TTT",
            &["sh", "-c", "grep flags /proc/self/fdinfo/0"],
        ),
        // Signals: only SIGHUP is added; inherited ignores pass through.
        Scenario::new(
            "SigIgn",
            "TTT",
            &["sh", "-c", "grep -E 'SigIgn|SigBlk' /proc/self/status"],
        ),
        Scenario::new(
            "SigIgn with SIGPIPE inherited ignored",
            "NFF",
            &["sh", "-c", "grep SigIgn /proc/self/status"],
        )
        .sigpipe_ignored(),
        Scenario::new("fds seen by the command", "TTT", &["ls", "/proc/self/fd"]),
        // nohup.out mode and umask.
        Scenario::new("umask 0777", "TTT", &["sh", "-c", "umask"]).umask(0o777),
        Scenario::new("umask 0600", "TTT", &["sh", "-c", "umask"]).umask(0o600),
        Scenario::new("umask 0", "NTT", &["sh", "-c", "umask"]).umask(0),
        Scenario::new("existing nohup.out is appended", "TTT", &["echo", "new"])
            .setup(|l| write_file(&l.cwd.join("nohup.out"), "old\n", 0o644)),
        Scenario::new("nohup.out is a symlink", "TTT", &["echo", "x"])
            .setup(|l| symlink("target", l.cwd.join("nohup.out")).unwrap()),
        Scenario::new(
            "nohup.out is a dangling symlink to a missing dir",
            "TTT",
            &["echo", "x"],
        )
        .setup(|l| symlink("missing/target", l.cwd.join("nohup.out")).unwrap()),
        // $HOME fallback.
        Scenario::new("home fallback (EISDIR)", "TTT", S).setup(nohup_out_dir),
        Scenario::new("home fallback, stdin not a tty", "NTT", S).setup(nohup_out_dir),
        Scenario::new("home fallback with stdout closed", "TCT", S).setup(nohup_out_dir),
        Scenario::new("both fail (EISDIR)", "TTT", S).setup(both_dirs),
        Scenario::new("both fail, POSIXLY_CORRECT", "TTT", S)
            .setup(both_dirs)
            .env("POSIXLY_CORRECT", "1"),
        Scenario::new("both fail, HOME unset", "TTT", S)
            .setup(nohup_out_dir)
            .unset("HOME"),
        Scenario::new("both fail, HOME empty", "TTT", S)
            .setup(nohup_out_dir)
            .env("HOME", ""),
        Scenario::new("HOME with trailing slashes", "TTT", S)
            .setup(|l| {
                fs::create_dir(l.cwd.join("nohup.out")).unwrap();
                fs::create_dir(l.run.join("h 3")).unwrap();
            })
            .env_os("HOME", OsString::from("../h 3//")),
        Scenario::new("HOME with a quote", "TTT", S)
            .setup(|l| {
                fs::create_dir(l.cwd.join("nohup.out")).unwrap();
                fs::create_dir(l.run.join("it's")).unwrap();
            })
            .env("HOME", "../it's"),
        Scenario::new("unwritable cwd as nobody", "TTT", S)
            .setup(unwritable_cwd)
            .nobody(),
        Scenario::new("unwritable cwd and HOME as nobody", "TTT", S)
            .setup(both_unwritable)
            .nobody(),
        Scenario::new(
            "unwritable everywhere, POSIXLY_CORRECT, as nobody",
            "NTF",
            S,
        )
        .setup(both_unwritable)
        .env("POSIXLY_CORRECT", "")
        .nobody(),
        // Exec failures: on the original stderr, never in nohup.out.
        Scenario::new("command not found", "TTT", &["no-such-command"]),
        Scenario::new("command not found, files", "NFF", &["no-such-command"]),
        Scenario::new(
            "command not found, POSIXLY_CORRECT",
            "NFF",
            &["no-such-command"],
        )
        .env("POSIXLY_CORRECT", "1"),
        Scenario::new("mode 000 file", "TTT", &["./k"])
            .setup(|l| write_file(&l.cwd.join("k"), "", 0o000)),
        Scenario::new("a directory", "TTT", &["/"]),
        Scenario::new("script without x bit", "NFF", &["./script.sh"])
            .setup(|l| write_file(&l.cwd.join("script.sh"), "echo hi\n", 0o644)),
        Scenario::new("not a directory", "NFF", &["/etc/passwd/x"]),
        Scenario::new("executable without #!", "NFF", &["./noshebang"])
            .setup(|l| write_file(&l.cwd.join("noshebang"), "echo via sh\nexit 4\n", 0o755)),
        Scenario::new("missing interpreter", "NFF", &["./bad"])
            .setup(|l| write_file(&l.cwd.join("bad"), "#!/nonexistent/sh\n", 0o755)),
        Scenario::new("PATH entry not executable", "NFF", &["k"])
            .setup(|l| {
                fs::create_dir(l.run.join("p")).unwrap();
                write_file(&l.run.join("p/k"), "", 0o644);
            })
            .env("PATH", "../p"),
        Scenario::new("empty PATH", "NFF", &["true"]).env("PATH", ""),
        Scenario::new("PATH unset", "NFF", &["true"]).unset("PATH"),
        Scenario::new(
            "exec error with stderr /dev/full",
            "NFX",
            &["no-such-command"],
        ),
        Scenario::new(
            "exec error with stderr /dev/full, POSIXLY_CORRECT",
            "NFX",
            &["no-such-command"],
        )
        .env("POSIXLY_CORRECT", "1"),
        Scenario::new(
            "exec error, tty, stderr /dev/full",
            "TTX",
            &["no-such-command"],
        ),
        Scenario::new("command name with a TAB", "NFF", &["a\tb"]),
        Scenario::new("command name with a quote", "NFF", &["bad'name"]),
        Scenario::os(
            "command name not UTF-8",
            "NFF",
            vec![OsStr::from_bytes(b"\xffcmd").to_os_string()],
        ),
        // The command's own status and signal death pass through.
        Scenario::new("exit status", "NFF", &["sh", "-c", "exit 3"]),
        Scenario::new("signal death", "NFF", &["sh", "-c", "kill -TERM $$"]),
        Scenario::new(
            "printf escapes pass through",
            "NFF",
            &["printf", "a\\tb\\n"],
        ),
        // Advisory message cannot be written: the command must not run.
        Scenario::new("advisory to /dev/full", "TTX", &["touch", "ran"]),
        Scenario::new(
            "advisory to /dev/full, file stdout",
            "TFX",
            &["touch", "ran"],
        ),
        Scenario::new("no advisory needed, /dev/full", "NFX", &["touch", "ran"]),
        Scenario::new("advisory to closed stderr", "TCC", &["touch", "ran"]),
        Scenario::new("stderr closed, stdout tty", "TTC", &["touch", "ran"]),
        Scenario::new(
            "advisory to /dev/full, POSIXLY_CORRECT",
            "TTX",
            &["touch", "ran"],
        )
        .env("POSIXLY_CORRECT", "1"),
        Scenario::new("nothing to say, stdio closed", "NCC", &["touch", "ran"]),
        // Usage.
        Scenario::new("missing operand", "NFF", &[]),
        Scenario::new("missing operand, tty: nothing created", "TTT", &[]),
        Scenario::new("missing operand, POSIXLY_CORRECT empty", "NFF", &[])
            .env("POSIXLY_CORRECT", ""),
        Scenario::new("-- alone", "NFF", &["--"]),
        Scenario::new("-x", "NFF", &["-x"]),
        Scenario::new("-h", "NFF", &["-h"]),
        Scenario::new("-V", "NFF", &["-V"]),
        Scenario::new("-/", "NFF", &["-/"]),
        Scenario::new("-x, POSIXLY_CORRECT", "NFF", &["-x"]).env("POSIXLY_CORRECT", "1"),
        Scenario::new("--foo", "NFF", &["--foo"]),
        Scenario::new("--foo=bar", "NFF", &["--foo=bar"]),
        Scenario::new("--help=x", "NFF", &["--help=x"]),
        Scenario::new("--bogus --help", "NFF", &["--bogus", "--help"]),
        Scenario::new("--help", "NFF", &["--help"]).loose_stdout(),
        Scenario::new("--he", "NFF", &["--he"]).loose_stdout(),
        Scenario::new("--help then more", "NFF", &["--help", "echo", "hi"]).loose_stdout(),
        Scenario::new("--version", "NFF", &["--version"]).loose_stdout(),
        Scenario::new("--v", "NPF", &["--v"]).loose_stdout(),
        Scenario::new("--version to /dev/full", "NXF", &["--version"]),
        Scenario::new("--version to closed stdout", "NCF", &["--version"]),
        Scenario::new("--help to /dev/full, POSIXLY_CORRECT", "NXF", &["--help"])
            .env("POSIXLY_CORRECT", "1"),
        Scenario::new("options stop at the command", "NFF", &["echo", "--help"]),
        Scenario::new("-- then command", "NFF", &["--", "echo", "hi"]),
        Scenario::new("-- then --help", "NFF", &["--", "--help"]),
        Scenario::new("- as command", "NFF", &["-"]),
        Scenario::new("empty command", "NFF", &[""]),
        Scenario::new("empty command, tty", "TTT", &[""]),
    ];
    // A command whose argument is not UTF-8 either.
    v.push(Scenario::os(
        "argument not UTF-8",
        "NFF",
        vec![
            "printf".into(),
            "%s\\n".into(),
            OsStr::from_bytes(b"a\xffb").into(),
        ],
    ));
    v
}

#[test]
fn named_scenarios_match_gnu() {
    let scenarios = named();
    assert!(scenarios.len() >= 30);
    check_all(&scenarios);
}
