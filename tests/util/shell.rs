//! A real interactive bash on a pseudo-terminal, for job-control tests.
//!
//! bash runs as a session leader with the terminal as its controlling terminal,
//! so job control is on, exactly as in a terminal emulator. The test types lines
//! and control characters on the master side and waits, with a deadline, for
//! text to appear. Everything in the shell's session is killed when the `Shell`
//! is dropped: the session was created by this test, so its ID names only the
//! test's own processes.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use hupkit_common::pty::{Carriage, Transcript};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::{ChildGuard, DEADLINE, bin, spawn};

/// An interactive bash.
pub struct Shell {
    /// What the terminal shows, carriage returns dropped (readline moves its
    /// cursor with them); typing goes through it too.
    tty_out: Transcript,
    child: ChildGuard,
    /// The shell's PID, which is also its session and process group ID.
    pub pid: Pid,
    /// The terminal's slave path (e.g. /dev/pts/4).
    pub tty: PathBuf,
}

impl Shell {
    /// Starts `bash --norc --noprofile -i` in `dir`, with the suite's binaries
    /// first on PATH and `HOME=dir`.
    pub fn start(dir: &Path) -> Shell {
        let pty = super::pty();
        let bins = bin("rjobs").parent().unwrap().to_path_buf();
        let mut cmd = Command::new("bash");
        cmd.args(["--norc", "--noprofile", "-i"])
            .current_dir(dir)
            .env_clear()
            .env("PATH", format!("{}:/usr/bin:/bin", bins.display()))
            .env("HOME", dir)
            .env("TERM", "dumb")
            .env("LC_ALL", "C")
            .env("PS1", "$ ")
            .env("HISTFILE", "/dev/null")
            .stdin(Stdio::from(pty.slave.try_clone().unwrap()))
            .stdout(Stdio::from(pty.slave.try_clone().unwrap()))
            .stderr(Stdio::from(pty.slave.try_clone().unwrap()));
        hupkit_common::pty::session_leader_on_exec(&mut cmd);
        let child = ChildGuard::new(spawn(&mut cmd));
        drop(cmd);
        let super::Pty {
            master,
            slave,
            path: tty,
        } = pty;
        drop(slave);
        let pid = child.pid();
        let mut shell = Shell {
            tty_out: Transcript::start(master, Carriage::Drop).unwrap(),
            child,
            pid,
            tty,
        };
        shell.expect("$ ");
        shell
    }

    /// Types `bytes` on the terminal.
    pub fn type_raw(&self, bytes: &[u8]) {
        self.tty_out
            .type_bytes(bytes)
            .unwrap_or_else(|e| panic!("type on the terminal: {e}"));
    }

    /// Types a line.
    pub fn line(&self, text: &str) {
        self.type_raw(format!("{text}\n").as_bytes());
    }

    /// Waits until `needle` appears in new output; returns the output up to its end.
    pub fn expect(&mut self, needle: &str) -> String {
        self.tty_out
            .wait_for(needle, Instant::now() + DEADLINE)
            .unwrap_or_else(|| {
                panic!(
                    "timed out waiting for {needle:?}; output so far:\n{}",
                    self.tty_out.text()
                )
            })
    }

    /// Runs a command line and returns its output and `$?`.
    pub fn run(&mut self, cmd: &str) -> (String, i32) {
        // The marker is split in the typed text, so the echo of the line never matches.
        let sep = if cmd.trim_end().ends_with('&') {
            " "
        } else {
            "; "
        };
        self.line(&format!("{cmd}{sep}echo \"__rc\"\"=$?__\""));
        let out = self.expect("__rc=");
        let rest = self.expect("__\n");
        let rc: i32 = rest.trim_end_matches("__\n").parse().unwrap_or(-1);
        let body = out.strip_suffix("__rc=").unwrap_or(&out);
        // Drop the echoed command line (up to the first newline).
        let body = body.split_once('\n').map_or("", |(_, b)| b).to_string();
        self.expect("$ ");
        (body, rc)
    }

    /// Runs a command line and returns the last line of its output (bash's job
    /// notices, such as `[1] 1234`, come first).
    pub fn last_line(&mut self, cmd: &str) -> String {
        let (out, _) = self.run(cmd);
        out.lines().last().unwrap_or("").to_string()
    }

    /// The terminal's foreground process group, as the kernel has it.
    pub fn foreground(&self) -> i32 {
        hupkit_common::proc::Stat::read(self.pid).map_or(-1, |s| s.tpgid)
    }

    /// Waits until the terminal's foreground group is led by a process named
    /// `comm`: a job typed in the foreground has exec'd its program (until then
    /// it is a copy of bash, and a ^Z would stop bash, not the program).
    pub fn wait_foreground(&self, comm: &str) {
        let found = crate::util::poll_until(DEADLINE, || {
            let fg = self.foreground();
            fg > 0
                && fg != self.pid.as_raw()
                && hupkit_common::proc::Stat::read(Pid::from_raw(fg)).is_ok_and(|s| s.comm == comm)
        });
        assert!(found, "no foreground job named {comm}");
    }

    /// Types `cmd`, waits until `comm` has the terminal, stops it with ^Z and
    /// waits for bash's notice and prompt.
    pub fn suspend(&mut self, cmd: &str, comm: &str) {
        self.line(cmd);
        self.wait_foreground(comm);
        self.type_raw(b"\x1a");
        self.expect("Stopped");
        self.expect("$ ");
    }

    /// Hangs up the terminal: closes every copy of the master side.
    pub fn hang_up(&mut self) {
        self.tty_out.hang_up();
    }

    /// Waits for bash to end; its status.
    pub fn wait(&mut self) -> Option<std::process::ExitStatus> {
        self.child.wait(DEADLINE)
    }
}

impl Drop for Shell {
    fn drop(&mut self) {
        // Everything in the session this test created, then the shell itself.
        if let Ok(snap) = hupkit_common::jobs::Snapshot::take() {
            for p in snap.procs.iter().filter(|p| p.session == self.pid) {
                let _ = kill(p.pid, Signal::SIGKILL);
            }
        }
        self.hang_up();
    }
}
