//! Helpers shared by the end-to-end tests: the binaries under test, pseudo-terminals
//! (common's, read through `hupkit_common::pty::Transcript`), waiting with a
//! deadline, and guards that reap what a test started.
//!
//! Rules every test follows: synchronise by polling with a deadline, never a bare
//! sleep; reap every child; kill only what the test started, by PID or by its own
//! process group.

#![allow(dead_code)]

pub mod container;
pub mod shell;

use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

pub use hupkit_common::pty::Pty;
use nix::errno::Errno;
use nix::sys::signal::{Signal, kill};
use nix::sys::termios::{OutputFlags, SetArg, tcgetattr, tcsetattr};
use nix::unistd::Pid;

/// How long any single wait in a test may take before the test fails.
pub const DEADLINE: Duration = Duration::from_secs(20);

/// How often a wait looks again: the processes under test answer within
/// milliseconds, and the deadline bounds the total.
const POLL: Duration = Duration::from_millis(5);

/// How often [`wait_deadline`] looks for the child's exit: shorter, as nearly
/// every test waits for a child this way, so its latency adds up over the suite.
const REAP_POLL: Duration = Duration::from_millis(2);

/// The path of a binary of this package, built by cargo for these tests.
pub fn bin(name: &str) -> PathBuf {
    match name {
        "rnohup" => PathBuf::from(env!("CARGO_BIN_EXE_rnohup")),
        "detach" => PathBuf::from(env!("CARGO_BIN_EXE_detach")),
        "rjobs" => PathBuf::from(env!("CARGO_BIN_EXE_rjobs")),
        "rbg" => PathBuf::from(env!("CARGO_BIN_EXE_rbg")),
        "rfg" => PathBuf::from(env!("CARGO_BIN_EXE_rfg")),
        "disown" => PathBuf::from(env!("CARGO_BIN_EXE_disown")),
        "rdisown" => PathBuf::from(env!("CARGO_BIN_EXE_rdisown")),
        "huplab" => PathBuf::from(env!("CARGO_BIN_EXE_huplab")),
        "hupkit-dbus" => PathBuf::from(env!("CARGO_BIN_EXE_hupkit-dbus")),
        "hupkit-rnohup" => PathBuf::from(env!("CARGO_BIN_EXE_hupkit-rnohup")),
        other => panic!("no such binary in the suite: {other}"),
    }
}

/// A pseudo-terminal pair (common's: both ends close-on-exec from the start,
/// as tests run in parallel and a terminal end leaked into another test's child
/// would keep that terminal alive and show up in its fd table), with output
/// post-processing off on the slave, so what a program writes arrives on the
/// master byte for byte (no `\n` → `\r\n`).
pub fn pty() -> Pty {
    let pty = hupkit_common::pty::open().expect("open a pseudo-terminal");
    let mut t = tcgetattr(&pty.slave).expect("tcgetattr");
    t.output_flags.remove(OutputFlags::OPOST);
    tcsetattr(&pty.slave, SetArg::TCSANOW, &t).expect("tcsetattr");
    pty
}

/// A temporary directory readable by everyone (for runs as nobody).
pub fn open_tempdir() -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
        .expect("chmod 755 the tempdir");
    dir
}

/// For a test that needs root: a temporary directory as [`open_tempdir`]
/// makes it; when not root, `None` and a `skipped: {why}` line.
pub fn root_tempdir(why: &str) -> Option<tempfile::TempDir> {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: {why}");
        return None;
    }
    Some(open_tempdir())
}

/// Spawns `cmd`, retrying while the program is "text file busy" (`ETXTBSY`): a
/// binary just written by this test process can be held open for writing, for a
/// moment, by a child that another test forked and that has not exec'd yet.
pub fn spawn(cmd: &mut Command) -> Child {
    let end = Instant::now() + DEADLINE;
    loop {
        match cmd.spawn() {
            Ok(child) => return child,
            Err(e) if e.raw_os_error() == Some(Errno::ETXTBSY as i32) && Instant::now() < end => {
                std::thread::sleep(POLL);
            }
            Err(e) => panic!("spawn {}: {e}", cmd.get_program().display()),
        }
    }
}

/// Waits for `child` until `deadline` from now; kills and reaps it and returns
/// `None` if it is still running then.
pub fn wait_deadline(child: &mut Child, deadline: Duration) -> Option<ExitStatus> {
    let end = Instant::now() + deadline;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return Some(status);
        }
        if Instant::now() >= end {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(REAP_POLL);
    }
}

/// Polls `cond` until it holds or the deadline passes; returns whether it held.
pub fn poll_until(deadline: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + deadline;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(POLL);
    }
}

/// Runs the suite's `tool` with `args`, writing no job record, and captures
/// its output.
pub fn run_tool<S: AsRef<std::ffi::OsStr>>(tool: &str, args: &[S]) -> std::process::Output {
    Command::new(bin(tool))
        .args(args)
        .env("HUPKIT_NO_RECORD", "1")
        .output()
        .unwrap_or_else(|e| panic!("run {tool}: {e}"))
}

/// Checks every case (`check` gives `None` when it passes, else what went
/// wrong) and fails once, naming every failure, so that one run shows them
/// all: `N of M {failed}:` and a line each.
pub fn check_each<T>(cases: &[T], check: impl FnMut(&T) -> Option<String>, failed: &str) {
    let failures: Vec<String> = cases.iter().filter_map(check).collect();
    assert!(
        failures.is_empty(),
        "{} of {} {failed}:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

/// Kills (SIGKILL) and reaps a child when dropped, unless it was already reaped.
pub struct ChildGuard(pub Option<Child>);

impl ChildGuard {
    /// Guards `child`.
    pub fn new(child: Child) -> Self {
        ChildGuard(Some(child))
    }

    /// The child's PID.
    pub fn pid(&self) -> Pid {
        Pid::from_raw(i32::try_from(self.0.as_ref().expect("child").id()).expect("pid"))
    }

    /// Waits with the deadline, then hands back the status (None: it had to be killed).
    pub fn wait(&mut self, deadline: Duration) -> Option<ExitStatus> {
        let mut child = self.0.take().expect("child");
        wait_deadline(&mut child, deadline)
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Sends SIGKILL to a process group the test created, ignoring "no such process".
pub fn kill_group(pgid: Pid) {
    let _ = kill(Pid::from_raw(-pgid.as_raw()), Signal::SIGKILL);
}

/// `exit N` or `signal N`, for comparing how processes ended.
pub fn describe(status: Option<ExitStatus>) -> String {
    use std::os::unix::process::ExitStatusExt;
    match status {
        None => "hung (killed at the deadline)".to_string(),
        Some(s) => match (s.code(), s.signal()) {
            (Some(code), _) => format!("exit {code}"),
            (None, Some(sig)) => format!("signal {sig}"),
            (None, None) => format!("{s:?}"),
        },
    }
}

/// A kernel thread's PID and name (kthreadd, PID 2, on a plain machine); `None`
/// where none is visible (a PID namespace with its own /proc shows none).
pub fn kernel_thread() -> Option<(String, String)> {
    let mut pids: Vec<i32> = std::fs::read_dir("/proc")
        .ok()?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    pids.sort_unstable();
    pids.into_iter().find_map(|pid| {
        let st = hupkit_common::proc::Stat::read(Pid::from_raw(pid)).ok()?;
        st.is_kernel_thread()
            .then(|| (pid.to_string(), st.comm.to_string()))
    })
}
