//! One experiment: a shell on a private terminal, one probe per level, one event.

use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hupkit_common::identity::{Identity, Liveness};
use hupkit_common::jobs::Snapshot;
use hupkit_common::pidfd::PidFd;
use hupkit_common::proc::{Stat, Status};
use hupkit_common::signal::Disposition;
use nix::sys::signal::Signal;
use nix::unistd::Pid;

use crate::probe;

/// What happens to the terminal session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// The master side closes: a dropped ssh link.
    Hangup,
    /// The user types `exit` (twice, past "There are stopped jobs.").
    Exit,
    /// `kill -HUP` to the shell.
    Sighup,
    /// A login shell with `huponexit` exits.
    LoginExit,
}

impl Event {
    /// The name used on the command line and in output.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Event::Hangup => "hangup",
            Event::Exit => "exit",
            Event::Sighup => "sighup",
            Event::LoginExit => "login-exit",
        }
    }
}

/// The interactive shell the lab runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShellKind {
    /// bash: `disown`, `disown -h`, `huponexit`.
    Bash,
    /// zsh: `disown %job` (no `-h`); sends SIGHUP to its jobs at exit (the HUP option).
    Zsh,
    /// dash: no `disown`; does not forward SIGHUP.
    Dash,
}

impl ShellKind {
    /// The program's name.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            ShellKind::Bash => "bash",
            ShellKind::Zsh => "zsh",
            ShellKind::Dash => "dash",
        }
    }

    fn args(self, login: bool) -> Vec<&'static str> {
        let mut a = match self {
            ShellKind::Bash => vec!["--noprofile", "--norc"],
            ShellKind::Zsh => vec!["-f"],
            ShellKind::Dash => vec![],
        };
        if login {
            a.push(if self == ShellKind::Bash {
                "--login"
            } else {
                "-l"
            });
        }
        a.push("-i");
        a
    }
}

/// A level of separation and how its probe is started from the shell.
pub struct Level {
    /// Short name (also the probe's name).
    pub name: &'static str,
    /// What the row shows.
    pub label: &'static str,
}

/// The levels, in order of separation.
pub const LEVELS: &[Level] = &[
    Level {
        name: "plain",
        label: "cmd &",
    },
    Level {
        name: "stopped",
        label: "stopped job (^Z)",
    },
    Level {
        name: "nohup",
        label: "nohup cmd &",
    },
    Level {
        name: "rnohup",
        label: "rnohup cmd &",
    },
    Level {
        name: "bash-disown",
        label: "cmd & disown",
    },
    Level {
        name: "bash-disown-h",
        label: "cmd & disown -h",
    },
    Level {
        name: "disown",
        label: "cmd & rdisown PID",
    },
    Level {
        name: "setsid",
        label: "setsid cmd &",
    },
    Level {
        name: "detach",
        label: "detach cmd",
    },
];

/// One row of the result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// The level's label.
    pub label: &'static str,
    /// The level's name.
    pub name: &'static str,
    /// `shell's` or `own`.
    pub session: &'static str,
    /// `own job`, `shell's`.
    pub group: &'static str,
    /// `lab tty` or `none`.
    pub tty: &'static str,
    /// SIGHUP disposition before the event.
    pub sighup: &'static str,
    /// Signals it received: the one it died of, and SIGCONTs it reported.
    pub signals: String,
    /// Whether it was alive after the event.
    pub survived: bool,
    /// Whether this shell has this level at all (dash has no `disown`).
    pub applies: bool,
    /// Where its output went after the event.
    pub output: String,
}

/// Why the lab stopped early.
#[derive(Debug)]
pub enum LabError {
    /// Interrupted by a signal.
    Interrupted,
    /// Something failed; the text says what.
    Failed(String),
}

fn failed(what: impl Into<String>) -> LabError {
    LabError::Failed(what.into())
}

/// Everything the lab started; all of it is killed when this is dropped.
struct Lab {
    dir: PathBuf,
    shell: Option<Child>,
    shell_pid: Pid,
    master: Option<OwnedFd>,
    reader: Option<std::thread::JoinHandle<()>>,
    stop_reader: Arc<AtomicBool>,
    output: Arc<Mutex<Vec<u8>>>,
    seen: usize,
    probes: Vec<(&'static str, Identity, PidFd)>,
    interrupted: Arc<AtomicUsize>,
}

impl Lab {
    fn check(&self) -> Result<(), LabError> {
        if self.interrupted.load(Ordering::SeqCst) != 0 {
            Err(LabError::Interrupted)
        } else {
            Ok(())
        }
    }

    fn type_line(&self, line: &str) -> Result<(), LabError> {
        let fd = self
            .master
            .as_ref()
            .ok_or_else(|| failed("the terminal is closed"))?;
        hupkit_common::stdio::write_all(
            std::os::fd::AsRawFd::as_raw_fd(fd),
            format!("{line}\n").as_bytes(),
        )
        .map_err(|e| failed(format!("cannot type on the terminal: {e}")))
    }

    fn wait_output(&mut self, needle: &str) -> Result<(), LabError> {
        let end = Instant::now() + Duration::from_secs(10);
        loop {
            self.check()?;
            {
                let out = self.output.lock().map_err(|_| failed("reader poisoned"))?;
                let text = String::from_utf8_lossy(&out[self.seen..]).into_owned();
                if let Some(at) = text.find(needle) {
                    self.seen += at + needle.len();
                    return Ok(());
                }
            }
            if Instant::now() > end {
                return Err(failed(format!("the shell did not print {needle:?}")));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn wait_prompt(&mut self) -> Result<(), LabError> {
        let end = Instant::now() + Duration::from_secs(10);
        loop {
            self.check()?;
            {
                let out = self.output.lock().map_err(|_| failed("reader poisoned"))?;
                let text = String::from_utf8_lossy(&out[self.seen..]).into_owned();
                if let Some(at) = text.find("$ ").or_else(|| text.find("# ")) {
                    self.seen += at + 2;
                    return Ok(());
                }
            }
            if Instant::now() > end {
                return Err(failed("the shell printed no prompt"));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn wait_for(&self, what: &str, mut cond: impl FnMut() -> bool) -> Result<(), LabError> {
        let end = Instant::now() + Duration::from_secs(10);
        while !cond() {
            self.check()?;
            if Instant::now() > end {
                let out = self
                    .output
                    .lock()
                    .map(|o| String::from_utf8_lossy(&o).into_owned())
                    .unwrap_or_default();
                let tail: String = out
                    .chars()
                    .filter(|c| *c != '\r')
                    .collect::<String>()
                    .lines()
                    .filter(|l| !l.contains(" tick "))
                    .collect::<Vec<_>>()
                    .join("\n");
                return Err(failed(format!(
                    "timed out waiting for {what}; the terminal showed: {tail:?}"
                )));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(())
    }

    fn probe_pid(&self, name: &str) -> Option<Pid> {
        std::fs::read_to_string(self.dir.join(format!("{name}.pid")))
            .ok()
            .and_then(|t| t.trim().parse().ok())
            .map(Pid::from_raw)
    }

    fn hang_up(&mut self) {
        self.stop_reader.store(true, Ordering::SeqCst);
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        self.master = None;
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for (_, id, fd) in &self.probes {
            if id.liveness() == Liveness::Alive {
                let _ = fd.signal(Signal::SIGKILL);
            }
        }
        if let Ok(snap) = Snapshot::take() {
            for p in snap.procs.iter().filter(|p| p.session == self.shell_pid) {
                let _ = nix::sys::signal::kill(p.pid, Signal::SIGKILL);
            }
        }
        self.hang_up();
        if let Some(mut shell) = self.shell.take() {
            let _ = shell.kill();
            let _ = shell.wait();
        }
        for (_, _, fd) in &self.probes {
            let _ = fd.wait_exit(Duration::from_secs(2));
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `PID STARTTIME` of this process, for the probes to watch (see [`probe`]).
fn lab_identity() -> String {
    let me = nix::unistd::getpid();
    Stat::read(me).map_or_else(|_| String::new(), |st| format!("{me} {}", st.starttime))
}

/// Removes the directories that labs of this user left in `tmp` when they were
/// killed before any probe could remove them: `huplab.PID.EVENT`, a real
/// directory owned by this user, whose PID runs no process now. A live PID (the
/// lab itself, or whatever reuses its number) keeps its directory.
fn remove_stale(tmp: &Path) {
    use std::os::unix::fs::MetadataExt;
    let Ok(entries) = std::fs::read_dir(tmp) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix("huplab."))
            .and_then(|rest| rest.split_once('.'))
            .and_then(|(pid, _)| pid.parse::<i32>().ok())
        else {
            continue;
        };
        let ours = entry
            .metadata()
            .is_ok_and(|m| m.is_dir() && m.uid() == nix::unistd::geteuid().as_raw());
        if ours && pid > 0 && Stat::read(Pid::from_raw(pid)).is_err() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

fn start_shell(
    shell: ShellKind,
    dir: &Path,
    exe: &Path,
    login: bool,
    interrupted: Arc<AtomicUsize>,
) -> Result<Lab, LabError> {
    let pty = hupkit_common::pty::open()
        .map_err(|e| failed(format!("cannot open a pseudo-terminal: {e}")))?;
    let bins = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    let path = format!("{}:/usr/bin:/bin:/usr/sbin:/sbin", bins.display());
    let mut cmd = Command::new(shell.name());
    cmd.args(shell.args(login))
        .current_dir(dir)
        .env_clear()
        .env("PATH", &path)
        // A login shell's /etc/profile may reset PATH: the lab sets it back from this.
        .env("HUPLAB_PATH", &path)
        .env("HOME", dir)
        .env("XDG_STATE_HOME", dir.join("state"))
        .env("TERM", "dumb")
        .env("LC_ALL", "C")
        .env("PS1", "$ ")
        .env("HISTFILE", "/dev/null")
        .env("HUPLAB", exe)
        .env(probe::LAB_ENV, lab_identity())
        .env("LAB", dir);
    let tty = || {
        pty.slave
            .try_clone()
            .map(Stdio::from)
            .map_err(|e| failed(e.to_string()))
    };
    cmd.stdin(tty()?).stdout(tty()?).stderr(tty()?);
    hupkit_common::pty::session_leader_on_exec(&mut cmd);
    let shell = cmd
        .spawn()
        .map_err(|e| failed(format!("cannot start bash: {e}")))?;
    drop(cmd);
    let shell_pid = Pid::from_raw(i32::try_from(shell.id()).unwrap_or(0));
    let hupkit_common::pty::Pty { master, slave, .. } = pty;
    drop(slave);
    let output = Arc::new(Mutex::new(Vec::new()));
    let stop_reader = Arc::new(AtomicBool::new(false));
    let reader_fd = master.try_clone().map_err(|e| failed(e.to_string()))?;
    let (sink, stop) = (Arc::clone(&output), Arc::clone(&stop_reader));
    let reader = std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while !stop.load(Ordering::SeqCst) {
            let mut fds = [nix::poll::PollFd::new(
                reader_fd.as_fd(),
                nix::poll::PollFlags::POLLIN,
            )];
            match nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(50u8)) {
                Ok(0) | Err(nix::errno::Errno::EINTR) => continue,
                Ok(_) => {}
                Err(_) => break,
            }
            match nix::unistd::read(&reader_fd, &mut buf) {
                Ok(0) | Err(nix::errno::Errno::EIO) => break,
                Ok(n) => {
                    if let Ok(mut out) = sink.lock() {
                        out.extend_from_slice(&buf[..n]);
                    }
                }
                Err(_) => {}
            }
        }
    });
    let mut lab = Lab {
        dir: dir.to_path_buf(),
        shell: Some(shell),
        shell_pid,
        master: Some(master),
        reader: Some(reader),
        stop_reader,
        output,
        seen: 0,
        probes: Vec::new(),
        interrupted,
    };
    // A login shell may have read /etc/profile, which gives root "# ": wait for
    // either, then set the lab's own prompt (typed so that its echo never
    // contains the prompt itself).
    lab.wait_prompt()?;
    lab.type_line("PATH=$HUPLAB_PATH; PS1='$'' '")?;
    lab.wait_output("$ ")?;
    Ok(lab)
}

fn name_of(sig: i32) -> String {
    Signal::try_from(sig).map_or_else(
        |_| format!("signal {sig}"),
        |s| s.as_str().trim_start_matches("SIG").to_string(),
    )
}

/// Runs the experiment for `event`; `exe` is huplab itself (the probe program).
#[allow(clippy::too_many_lines)]
pub fn run(
    shell: ShellKind,
    event: Event,
    exe: &Path,
    interrupted: &Arc<AtomicUsize>,
) -> Result<Vec<Row>, LabError> {
    let tmp = std::env::temp_dir();
    remove_stale(&tmp);
    let dir = tmp.join(format!("huplab.{}.{}", std::process::id(), event.name()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir(&dir)
        .map_err(|e| failed(format!("cannot create {}: {e}", dir.display())))?;
    let mut lab = start_shell(
        shell,
        &dir,
        exe,
        event == Event::LoginExit,
        Arc::clone(interrupted),
    )?;
    if event == Event::LoginExit && shell == ShellKind::Bash {
        lab.type_line("shopt -s huponexit")?;
        lab.wait_output("$ ")?;
    }
    let probe = |name: &str| format!("\"$HUPLAB\" --probe {name} \"$LAB\"");
    let mut missing = Vec::new();
    for level in LEVELS {
        let line = match (level.name, shell) {
            ("bash-disown" | "bash-disown-h", ShellKind::Dash)
            | ("bash-disown-h", ShellKind::Zsh) => {
                missing.push(level.name);
                continue;
            }
            ("nohup", _) => format!("nohup {} &", probe(level.name)),
            ("rnohup", _) => format!("rnohup {} &", probe(level.name)),
            ("bash-disown", ShellKind::Zsh) => {
                format!("{} & disown %?{}", probe(level.name), level.name)
            }
            ("bash-disown", _) => format!("{} & disown $!", probe(level.name)),
            ("bash-disown-h", _) => format!("{} & disown -h $!", probe(level.name)),
            ("setsid", _) => format!("setsid {} &", probe(level.name)),
            ("detach", _) => format!("detach -o \"$LAB/detach.out\" {}", probe(level.name)),
            _ => format!("{} &", probe(level.name)),
        };
        lab.type_line(&line)?;
        lab.wait_output("$ ")?;
        let name = level.name;
        lab.wait_for(&format!("probe {name}"), || lab.probe_pid(name).is_some())?;
        let pid = lab
            .probe_pid(name)
            .ok_or_else(|| failed("probe vanished"))?;
        match name {
            "stopped" => {
                lab.type_line(&format!("kill -TSTP {pid}"))?;
                lab.wait_output("$ ")?;
                lab.wait_for("the probe to stop", || {
                    Stat::read(pid)
                        .is_ok_and(|s| s.state == hupkit_common::proc::ProcState::Stopped)
                })?;
            }
            "disown" => {
                lab.type_line(&format!("rdisown -o \"$LAB/disown.out\" {pid} >/dev/null"))?;
                lab.wait_output("$ ")?;
            }
            _ => {}
        }
        let id = Identity::of(pid).map_err(|e| failed(format!("probe {name}: {e}")))?;
        let fd = PidFd::open(pid).map_err(|e| failed(format!("probe {name}: {e}")))?;
        lab.probes.push((name, id, fd));
    }

    // Before the event: where each probe stands.
    let shell_pid = lab.shell_pid;
    let mut before = Vec::new();
    for (name, id, _) in &lab.probes {
        let st = Stat::read(id.pid).map_err(|e| failed(format!("probe {name}: {e}")))?;
        let sighup = match Status::read(id.pid).map(|s| s.disposition(Signal::SIGHUP)) {
            Ok(Disposition::Ignore) => "ignored",
            Ok(Disposition::Caught) => "caught",
            _ => "default",
        };
        before.push((st, sighup, probe::read(&lab.dir, name)));
    }

    match event {
        Event::Hangup => lab.hang_up(),
        Event::Sighup => {
            let _ = nix::sys::signal::kill(shell_pid, Signal::SIGHUP);
        }
        Event::Exit | Event::LoginExit => {
            // Shells warn about stopped jobs at the first exit (bash, dash; zsh
            // not when the last command was `jobs`): a second exit, if needed.
            lab.type_line("exit")?;
            let end = Instant::now() + Duration::from_millis(1500);
            let mut exited = false;
            while Instant::now() < end {
                if let Some(sh) = lab.shell.as_mut() {
                    if sh.try_wait().map_err(|e| failed(e.to_string()))?.is_some() {
                        exited = true;
                        break;
                    }
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            if !exited {
                lab.type_line("exit")?;
            }
        }
    }
    // The shell ends in every case; then each probe either dies or keeps ticking.
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        lab.check()?;
        if let Some(shell) = lab.shell.as_mut() {
            if shell
                .try_wait()
                .map_err(|e| failed(e.to_string()))?
                .is_some()
            {
                break;
            }
        }
        if Instant::now() > end {
            return Err(failed("the shell did not end"));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let at_event: Vec<probe::Report> = lab
        .probes
        .iter()
        .map(|(n, _, _)| probe::read(&lab.dir, n))
        .collect();
    let mut fate: Vec<Option<bool>> = vec![None; lab.probes.len()];
    let end = Instant::now() + Duration::from_secs(10);
    while fate.iter().any(Option::is_none) {
        lab.check()?;
        for (i, (name, _, fd)) in lab.probes.iter().enumerate() {
            if fate[i].is_some() {
                continue;
            }
            if fd.wait_exit(Duration::ZERO).unwrap_or(false) {
                fate[i] = Some(false);
            } else if probe::read(&lab.dir, name).ticks >= at_event[i].ticks + 3 {
                fate[i] = Some(true);
            }
        }
        if Instant::now() > end {
            return Err(failed("probes neither died nor ran"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }

    let mut rows = Vec::new();
    for (i, (name, id, fd)) in lab.probes.iter().enumerate() {
        let level = LEVELS
            .iter()
            .find(|l| l.name == *name)
            .map_or("?", |l| l.label);
        let (st, sighup, _) = &before[i];
        let survived = fate[i] == Some(true);
        let report = probe::read(&lab.dir, name);
        let mut signals = Vec::new();
        if !survived {
            // Its status, once its parent (the shell, or init) has reaped it.
            let deadline = Instant::now() + Duration::from_secs(3);
            let raw = loop {
                match fd.exit_status() {
                    Ok(Some(raw)) => break Some(raw),
                    Ok(None) if Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(20));
                    }
                    _ => break None,
                }
            };
            let sig = raw.map(|r| r & 0x7f);
            let hup_or_term =
                sig == Some(Signal::SIGHUP as i32) || sig == Some(Signal::SIGTERM as i32);
            match raw {
                // bash sends a stopped job SIGHUP+SIGCONT, then SIGTERM+SIGCONT
                // (terminate_stopped_jobs): it dies of whichever the kernel applies
                // first, which depends on scheduling. Both were sent to it.
                Some(_)
                    if shell == ShellKind::Bash
                        && *name == "stopped"
                        && event != Event::Exit
                        && hup_or_term =>
                {
                    signals.push("HUP, TERM (died)".into());
                }
                Some(raw) if raw & 0x7f != 0 => {
                    signals.push(format!("{} (died)", name_of(raw & 0x7f)));
                }
                Some(raw) => signals.push(format!("exit {}", (raw >> 8) & 0xff)),
                None => signals.push("died".into()),
            }
        }
        if report.conts > before[i].2.conts {
            signals.push("CONT".into());
        }
        let output = if !survived {
            "-".to_string()
        } else if report.errors > at_event[i].errors {
            "lost (EIO: terminal gone)".to_string()
        } else {
            match std::fs::read_link(format!("/proc/{}/fd/1", id.pid)) {
                Ok(p) if p.starts_with(&lab.dir) => p
                    .strip_prefix(&lab.dir)
                    .map_or_else(|_| p.display().to_string(), |r| r.display().to_string()),
                Ok(p) if p.starts_with("/dev/pts") => "the lab's terminal".to_string(),
                Ok(p) => p.display().to_string(),
                Err(_) => "?".to_string(),
            }
        };
        rows.push(Row {
            applies: true,
            label: level,
            name,
            session: if st.session == shell_pid {
                "shell's"
            } else {
                "own"
            },
            group: if st.pgrp == shell_pid {
                "shell's"
            } else if st.pgrp == st.pid {
                "own"
            } else {
                "another"
            },
            tty: if st.tty_nr == 0 { "none" } else { "lab tty" },
            sighup,
            signals: if signals.is_empty() {
                "-".into()
            } else {
                signals.join(", ")
            },
            survived,
            output,
        });
    }
    // Levels this shell does not have, in their place.
    for name in missing {
        let label = LEVELS
            .iter()
            .find(|l| l.name == name)
            .map_or("?", |l| l.label);
        let at = LEVELS
            .iter()
            .position(|l| l.name == name)
            .unwrap_or(rows.len())
            .min(rows.len());
        rows.insert(
            at,
            Row {
                applies: false,
                label,
                name,
                session: "-",
                group: "-",
                tty: "-",
                sighup: "-",
                signals: "-".into(),
                survived: false,
                output: format!("n/a: {} has no such builtin", shell.name()),
            },
        );
    }
    Ok(rows)
}
