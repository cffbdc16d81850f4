//! One experiment: a shell on a private terminal, one probe per level, one event.
//!
//! [`run`] goes through the phases in order, one function each:
//! [`start_shell`] (the lab's terminal and its interactive shell),
//! [`start_probes`] (one job per [`Level`], typed as a user would),
//! [`observe`] (where each probe stands before the event), [`apply`] (the
//! event), [`await_shell_end`] and [`await_fates`] (the shell ends; each probe
//! dies or keeps ticking), and [`rows`] (what the table shows). Everything the
//! lab started is killed when its [`Lab`] is dropped, on every path out.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hupkit_common::exit::{self, Status};
use hupkit_common::identity::{Identity, Liveness};
use hupkit_common::jobs::Snapshot;
use hupkit_common::pidfd::PidFd;
use hupkit_common::proc::{self, ProcState, Stat};
use hupkit_common::pty::{Carriage, Transcript};
use hupkit_common::quote::quote;
use hupkit_common::signal::Disposition;
use hupkit_common::{Context, Error};
use nix::sys::signal::Signal;
use nix::unistd::Pid;

use crate::cgroup::{self, Cgroups};
use crate::probe;
use crate::report::{Death, Fate, Group, Na, Output, Row, Seen, Whose};

/// How long the shell may take to print a prompt, to start a probe, to stop a
/// job or to end: far beyond what a working shell needs, even on a loaded
/// machine (the tests run labs in parallel); only a broken lab waits this long.
const SHELL_TIMEOUT: Duration = Duration::from_secs(10);

/// How long `exit` has to end the shell before a second `exit` is typed: shells
/// warn about stopped jobs at the first one (bash, dash; zsh not when the last
/// command was `jobs`), and end at once otherwise.
const EXIT_GRACE: Duration = Duration::from_millis(1500);

/// How long the probes have, once the shell has ended, to die or tick on.
const FATE_TIMEOUT: Duration = Duration::from_secs(10);

/// Ticks a probe must write once the shell has ended to count as a survivor:
/// three (300 ms), so that a signal the shell sent on its way out has landed.
const SURVIVAL_TICKS: u64 = 3;

/// How long a dead probe's parent (the shell, or init) may take to reap it,
/// which is when its exit status becomes readable through its pidfd.
const REAP_TIMEOUT: Duration = Duration::from_secs(3);

/// How long the clean-up waits for each killed probe to be gone before it
/// removes the lab's directory (a probe in its last tick may still write there).
const KILL_TIMEOUT: Duration = Duration::from_secs(2);

/// How often the lab looks again at what it waits for (the shell's end, the
/// probes' files): the probes tick every 100 ms.
const POLL: Duration = Duration::from_millis(10);

/// The exit status of an interrupted lab: 128 + SIGINT, as for a shell's
/// interrupted command (SIGTERM and SIGHUP interrupt it the same way).
pub const INTERRUPTED: Status = Status::from_signal(nix::libc::SIGINT);

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
    /// The user logs out and logind kills the session's scope
    /// (`KillUserProcesses=yes`): the lab does the same to its shell's cgroup.
    Logout,
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
            Event::Logout => "logout",
        }
    }

    /// Whether the lab's shell is a login shell for this event.
    #[must_use]
    pub fn login(self) -> bool {
        self == Event::LoginExit
    }

    /// The lines typed in the shell before the probes start.
    #[must_use]
    pub fn typed_first(self, shell: ShellKind) -> &'static [&'static str] {
        if self.login() && shell == ShellKind::Bash {
            &["shopt -s huponexit"]
        } else {
            &[]
        }
    }

    /// How the event is applied, in the words `huplab --commands` shows: the
    /// lines typed, or what happens without typing, in parentheses.
    #[must_use]
    pub fn how(self) -> &'static [&'static str] {
        match self {
            Event::Hangup => &[
                "(nothing typed: the lab closes the terminal's master side, as a dropped ssh link does)",
            ],
            Event::Sighup => &["(nothing typed: kill -HUP of the shell, from outside)"],
            Event::Logout => &[
                "(nothing typed: the lab stops the shell's cgroup $SESSION as systemd stops a \
                 session's scope when logind kills it at logout: SIGTERM and SIGCONT, SIGHUP, \
                 SIGKILL 2 s later to what is left)",
            ],
            Event::Exit | Event::LoginExit => &[
                "exit",
                "exit (again, if the shell says there are stopped jobs)",
            ],
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

    /// The command line the lab starts it with (`login` for a login shell).
    #[must_use]
    pub fn invocation(self, login: bool) -> String {
        std::iter::once(self.name())
            .chain(self.args(login))
            .collect::<Vec<_>>()
            .join(" ")
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

/// A level of separation, in order: the table's rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// `cmd &`: a background job.
    Plain,
    /// A background job stopped with SIGTSTP, as ^Z would.
    Stopped,
    /// `nohup cmd &`.
    Nohup,
    /// `rnohup cmd &`.
    Rnohup,
    /// `cmd & disown`: the shell forgets the job.
    BashDisown,
    /// `cmd & disown -h`: bash keeps the job but will not SIGHUP it.
    BashDisownH,
    /// `cmd & rdisown PID`: hupkit's disown.
    Disown,
    /// `setsid cmd &`: a new session.
    Setsid,
    /// `detach cmd`: a daemon.
    Detach,
    /// `detach --scope cmd`: a daemon in a scope of the service manager, out
    /// of the session's cgroup (the logout lab only; its stand-in for the
    /// scope is a cgroup of its own, `$SCOPE`).
    Scope,
}

impl Level {
    /// Every level, in order of separation; the scope level last.
    pub const ALL: [Level; 10] = [
        Level::Plain,
        Level::Stopped,
        Level::Nohup,
        Level::Rnohup,
        Level::BashDisown,
        Level::BashDisownH,
        Level::Disown,
        Level::Setsid,
        Level::Detach,
        Level::Scope,
    ];

    /// The levels the lab shows for `event`: the scope level only at logout,
    /// the one event that a cgroup decides.
    #[must_use]
    pub fn of(event: Event) -> &'static [Level] {
        if event == Event::Logout {
            &Level::ALL
        } else {
            &Level::ALL[..Level::ALL.len() - 1]
        }
    }

    /// Its short name: the probe's name (its files are `NAME.pid` and
    /// `NAME.state`) and the JSON's `name`.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Level::Plain => "plain",
            Level::Stopped => "stopped",
            Level::Nohup => "nohup",
            Level::Rnohup => "rnohup",
            Level::BashDisown => "bash-disown",
            Level::BashDisownH => "bash-disown-h",
            Level::Disown => "disown",
            Level::Setsid => "setsid",
            Level::Detach => "detach",
            Level::Scope => "scope",
        }
    }

    /// What its row shows.
    #[must_use]
    pub fn label(self) -> &'static str {
        match self {
            Level::Plain => "cmd &",
            Level::Stopped => "stopped job (^Z)",
            Level::Nohup => "nohup cmd &",
            Level::Rnohup => "rnohup cmd &",
            Level::BashDisown => "cmd & disown",
            Level::BashDisownH => "cmd & disown -h",
            Level::Disown => "cmd & rdisown PID",
            Level::Setsid => "setsid cmd &",
            Level::Detach => "detach cmd",
            Level::Scope => "detach --scope cmd",
        }
    }

    /// The lines typed in `shell` for its probe, in order; `None` where the
    /// shell has no such builtin. The first starts the probe; the lab waits for
    /// the probe's PID file before it types the others (which act on it as
    /// `$!`: the stopped job is stopped, hupkit's disown run). `huplab
    /// --commands` shows these very lines.
    #[must_use]
    pub fn typed(self, shell: ShellKind) -> Option<Vec<String>> {
        let name = self.name();
        let probe = format!("\"$HUPLAB\" --probe {name} \"$LAB\"");
        Some(match (self, shell) {
            (Level::BashDisown | Level::BashDisownH, ShellKind::Dash)
            | (Level::BashDisownH, ShellKind::Zsh) => return None,
            (Level::Plain, _) => vec![format!("{probe} &")],
            (Level::Stopped, _) => vec![format!("{probe} &"), "kill -TSTP $!".into()],
            (Level::Disown, _) => vec![format!("{probe} &"), "rdisown $!".into()],
            (Level::Nohup, _) => vec![format!("nohup {probe} &")],
            (Level::Rnohup, _) => vec![format!("rnohup {probe} &")],
            (Level::BashDisown, ShellKind::Zsh) => vec![format!("{probe} & disown %?{name}")],
            (Level::BashDisown, _) => vec![format!("{probe} & disown $!")],
            (Level::BashDisownH, _) => vec![format!("{probe} & disown -h $!")],
            (Level::Setsid, _) => vec![format!("setsid {probe} &")],
            (Level::Detach, _) => vec![format!("detach {probe}")],
            // The lab's stand-in for --scope, which needs a service manager:
            // the daemon moved into a cgroup outside the session's.
            (Level::Scope, _) => vec![
                format!("detach {probe}"),
                format!("echo \"$(cat \"$LAB/{name}.pid\")\" > \"$SCOPE/cgroup.procs\""),
            ],
        })
    }
}

/// Why the lab stopped early.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// Interrupted by a signal (SIGINT, SIGTERM, SIGHUP).
    #[error("interrupted; everything the lab started was stopped")]
    Interrupted,
    /// A step failed.
    #[error(transparent)]
    Failed(#[from] Error),
}

impl LabError {
    /// The exit status it means: [`INTERRUPTED`], else 1.
    #[must_use]
    pub fn status(&self) -> Status {
        match self {
            LabError::Interrupted => INTERRUPTED,
            LabError::Failed(e) => e.status(),
        }
    }

    /// The error as huplab reports it: a failure names the event being run.
    #[must_use]
    pub fn during(self, event: Event) -> Error {
        match self {
            LabError::Failed(e) => Error::failed(format!("{}: {e}", event.name()), e.status()),
            interrupted @ LabError::Interrupted => interrupted.into(),
        }
    }
}

impl From<LabError> for Error {
    fn from(e: LabError) -> Self {
        match e {
            LabError::Failed(e) => e,
            LabError::Interrupted => Error::failed(LabError::Interrupted.to_string(), INTERRUPTED),
        }
    }
}

/// A failure of the lab, worded for the user; status 1.
fn failed(what: impl Into<String>) -> LabError {
    LabError::Failed(Error::failed(what, exit::FAILURE))
}

/// A probe the lab started, pinned by its identity and a pidfd.
struct Probe {
    level: Level,
    id: Identity,
    fd: PidFd,
}

/// Everything the lab started; all of it is killed when this is dropped.
struct Lab {
    dir: PathBuf,
    shell: Option<Child>,
    shell_pid: Pid,
    tty: Transcript,
    probes: Vec<Probe>,
    interrupted: Arc<AtomicUsize>,
    /// The logout lab's cgroups: dropped (emptied and removed) after the rest.
    cgroups: Option<Cgroups>,
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
        self.tty
            .type_line(line)
            .context(exit::FAILURE, || "cannot type on the terminal")?;
        Ok(())
    }

    /// Waits for the shell's next prompt: the lab's own `$ `, or (before the
    /// lab has set its own) root's `# ` too.
    fn wait_prompt(&mut self, prompts: &[&str]) -> Result<(), LabError> {
        let interrupted = Arc::clone(&self.interrupted);
        let found = self
            .tty
            .wait_for_any(prompts, Instant::now() + SHELL_TIMEOUT, || {
                interrupted.load(Ordering::SeqCst) == 0
            });
        self.check()?;
        found
            .map(drop)
            .ok_or_else(|| failed("the shell printed no prompt"))
    }

    /// Types a line and waits for the prompt after it.
    fn command(&mut self, line: &str) -> Result<(), LabError> {
        self.type_line(line)?;
        self.wait_prompt(&["$ "])
    }

    /// Polls `cond` until it holds; a timeout says what the terminal showed.
    fn wait_for(&self, what: &str, mut cond: impl FnMut() -> bool) -> Result<(), LabError> {
        let end = Instant::now() + SHELL_TIMEOUT;
        while !cond() {
            self.check()?;
            if Instant::now() > end {
                let shown = self.tty.text();
                let tail = shown
                    .lines()
                    .filter(|l| !l.contains(" tick "))
                    .collect::<Vec<_>>()
                    .join("\n");
                return Err(failed(format!(
                    "timed out waiting for {what}; the terminal showed: {tail:?}"
                )));
            }
            std::thread::sleep(POLL);
        }
        Ok(())
    }

    fn probe_pid(&self, level: Level) -> Option<Pid> {
        std::fs::read_to_string(self.dir.join(format!("{}.pid", level.name())))
            .ok()
            .and_then(|t| t.trim().parse().ok())
            .map(Pid::from_raw)
    }

    /// What a probe last reported.
    fn report(&self, level: Level) -> probe::Report {
        probe::read(&self.dir, level.name())
    }

    /// Whether the shell has ended (it is reaped then).
    fn shell_ended(&mut self) -> Result<bool, LabError> {
        match self.shell.as_mut() {
            Some(shell) => Ok(shell
                .try_wait()
                .context(exit::FAILURE, || "cannot wait for the shell")?
                .is_some()),
            None => Ok(true),
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for p in &self.probes {
            if p.id.liveness() == Liveness::Alive {
                let _ = p.fd.signal(Signal::SIGKILL);
            }
        }
        if let Ok(snap) = Snapshot::take() {
            for p in snap.procs.iter().filter(|p| p.session == self.shell_pid) {
                let _ = nix::sys::signal::kill(p.pid, Signal::SIGKILL);
            }
        }
        self.tty.hang_up();
        if let Some(mut shell) = self.shell.take() {
            let _ = shell.kill();
            let _ = shell.wait();
        }
        for p in &self.probes {
            let _ = p.fd.wait_exit(KILL_TIMEOUT);
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

/// The lab's private directory, `$TMPDIR/huplab.PID.EVENT`, fresh, after the
/// stale ones of killed labs are removed.
fn make_dir(event: Event) -> Result<PathBuf, LabError> {
    let tmp = std::env::temp_dir();
    remove_stale(&tmp);
    cgroup::remove_stale_anywhere();
    let dir = tmp.join(format!("huplab.{}.{}", std::process::id(), event.name()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir(&dir).context(exit::FAILURE, || {
        format!("cannot create directory {}", quote(dir.as_os_str()))
    })?;
    Ok(dir)
}

/// Phase 1: the lab's terminal, with `shell` on it as an interactive session
/// leader (a login shell for `login`), at the lab's own `$ ` prompt.
fn start_shell(
    shell: ShellKind,
    dir: &Path,
    exe: &Path,
    login: bool,
    interrupted: Arc<AtomicUsize>,
    cgroups: Option<Cgroups>,
) -> Result<Lab, LabError> {
    let pty =
        hupkit_common::pty::open().context(exit::FAILURE, || "cannot open a pseudo-terminal")?;
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
            .context(exit::FAILURE, || "cannot share the terminal")
    };
    cmd.stdin(tty()?).stdout(tty()?).stderr(tty()?);
    hupkit_common::pty::session_leader_on_exec(&mut cmd);
    if let Some(cg) = &cgroups {
        cmd.env("SESSION", cg.session()).env("SCOPE", cg.scope());
        cg.enter_on_exec(&mut cmd).context(exit::FAILURE, || {
            format!("cannot open {}", quote(cg.session().as_os_str()))
        })?;
    }
    let child = cmd
        .spawn()
        .context(exit::FAILURE, || format!("cannot start {}", shell.name()))?;
    drop(cmd);
    let shell_pid = Pid::from_raw(i32::try_from(child.id()).unwrap_or(0));
    let hupkit_common::pty::Pty { master, slave, .. } = pty;
    drop(slave);
    let mut lab = Lab {
        dir: dir.to_path_buf(),
        shell: Some(child),
        shell_pid,
        tty: Transcript::start(master, Carriage::Drop)
            .context(exit::FAILURE, || "cannot read the terminal")?,
        probes: Vec::new(),
        interrupted,
        cgroups,
    };
    // A login shell may have read /etc/profile, which gives root "# ": wait for
    // either, then set the lab's own prompt (typed so that its echo never
    // contains the prompt itself).
    lab.wait_prompt(&["$ ", "# "])?;
    lab.command("PATH=$HUPLAB_PATH; PS1='$'' '")?;
    Ok(lab)
}

/// Phase 2: one probe per level this shell has, started from the shell as a
/// user would.
fn start_probes(lab: &mut Lab, shell: ShellKind, event: Event) -> Result<(), LabError> {
    for &level in Level::of(event) {
        let Some(lines) = level.typed(shell) else {
            continue;
        };
        let name = level.name();
        let mut lines = lines.iter();
        if let Some(start) = lines.next() {
            lab.command(start)?;
        }
        lab.wait_for(&format!("probe {name}"), || lab.probe_pid(level).is_some())?;
        let pid = lab
            .probe_pid(level)
            .ok_or_else(|| failed("probe vanished"))?;
        for line in lines {
            lab.command(line)?;
        }
        if level == Level::Stopped {
            lab.wait_for("the probe to stop", || {
                Stat::read(pid).is_ok_and(|s| s.state == ProcState::Stopped)
            })?;
        }
        let id = Identity::of(pid).context(exit::FAILURE, || format!("probe {name}"))?;
        let fd = PidFd::open(pid).context(exit::FAILURE, || format!("probe {name}"))?;
        lab.probes.push(Probe { level, id, fd });
    }
    Ok(())
}

/// Where a probe stood just before the event.
struct Before {
    stat: Stat,
    sighup: Disposition,
    report: probe::Report,
}

/// Phase 3: where each probe stands before the event.
fn observe(lab: &Lab) -> Result<Vec<Before>, LabError> {
    lab.probes
        .iter()
        .map(|p| {
            let stat = Stat::read(p.id.pid)
                .context(exit::FAILURE, || format!("probe {}", p.level.name()))?;
            let sighup = proc::Status::read(p.id.pid)
                .map_or(Disposition::Default, |s| s.disposition(Signal::SIGHUP));
            Ok(Before {
                stat,
                sighup,
                report: lab.report(p.level),
            })
        })
        .collect()
}

/// Phase 4: the event.
fn apply(lab: &mut Lab, event: Event) -> Result<(), LabError> {
    match event {
        Event::Hangup => lab.tty.hang_up(),
        Event::Sighup => {
            let _ = nix::sys::signal::kill(lab.shell_pid, Signal::SIGHUP);
        }
        Event::Exit | Event::LoginExit => {
            lab.type_line("exit")?;
            let end = Instant::now() + EXIT_GRACE;
            while !lab.shell_ended()? {
                if Instant::now() >= end {
                    lab.type_line("exit")?;
                    break;
                }
                std::thread::sleep(POLL);
            }
        }
        Event::Logout => {
            let interrupted = Arc::clone(&lab.interrupted);
            if let Some(cg) = &lab.cgroups {
                cg.stop_session(|| interrupted.load(Ordering::SeqCst) == 0);
            }
            lab.check()?;
        }
    }
    Ok(())
}

/// Phase 5: the shell ends, whatever the event; returns what each probe had
/// reported by then.
fn await_shell_end(lab: &mut Lab) -> Result<Vec<probe::Report>, LabError> {
    let end = Instant::now() + SHELL_TIMEOUT;
    while !lab.shell_ended()? {
        lab.check()?;
        if Instant::now() > end {
            return Err(failed("the shell did not end"));
        }
        std::thread::sleep(POLL);
    }
    Ok(lab.probes.iter().map(|p| lab.report(p.level)).collect())
}

/// Phase 6: each probe either dies or ticks on; true for a survivor.
fn await_fates(lab: &Lab, at_end: &[probe::Report]) -> Result<Vec<bool>, LabError> {
    let mut fates: Vec<Option<bool>> = vec![None; lab.probes.len()];
    let end = Instant::now() + FATE_TIMEOUT;
    while fates.iter().any(Option::is_none) {
        lab.check()?;
        for ((p, fate), then) in lab.probes.iter().zip(&mut fates).zip(at_end) {
            if fate.is_some() {
                continue;
            }
            if p.fd.wait_exit(Duration::ZERO).unwrap_or(false) {
                *fate = Some(false);
            } else if lab.report(p.level).ticks >= then.ticks + SURVIVAL_TICKS {
                *fate = Some(true);
            }
        }
        if Instant::now() > end {
            return Err(failed("probes neither died nor ran"));
        }
        std::thread::sleep(POLL);
    }
    Ok(fates.into_iter().map(|f| f == Some(true)).collect())
}

/// How a dead probe ended, once its parent (the shell, or init) has reaped it.
fn death(p: &Probe, shell: ShellKind, event: Event) -> Death {
    let deadline = Instant::now() + REAP_TIMEOUT;
    let raw = loop {
        match p.fd.exit_status() {
            Ok(Some(raw)) => break raw,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(POLL),
            _ => return Death::Unknown,
        }
    };
    let hup_or_term = |signo| signo == Signal::SIGHUP as i32 || signo == Signal::SIGTERM as i32;
    match exit::Wait::from_raw(raw) {
        // bash sends a stopped job SIGHUP+SIGCONT, then SIGTERM+SIGCONT
        // (terminate_stopped_jobs), except at a plain exit (SIGTERM only); at
        // logout the lab sends both to it too.
        exit::Wait::Signaled { signo, .. }
            if shell == ShellKind::Bash
                && p.level == Level::Stopped
                && event != Event::Exit
                && hup_or_term(signo) =>
        {
            Death::HupOrTerm { fatal: signo }
        }
        exit::Wait::Signaled { signo, .. } => Death::Signal(signo),
        exit::Wait::Exited(code) => Death::Exited(code),
        exit::Wait::Stopped { .. } | exit::Wait::Continued => Death::Unknown,
    }
}

/// Where a surviving probe's standard output points now.
fn output(lab: &Lab, p: &Probe, report: probe::Report, then: probe::Report) -> Output {
    if report.errors > then.errors {
        return Output::Lost;
    }
    match std::fs::read_link(format!("/proc/{}/fd/1", p.id.pid)) {
        Ok(path) => match path.strip_prefix(&lab.dir) {
            Ok(rel) => Output::InLab(rel.to_path_buf()),
            Err(_) if path.starts_with("/dev/pts") => Output::LabTerminal,
            Err(_) => Output::Elsewhere(path),
        },
        Err(_) => Output::Unknown,
    }
}

/// Phase 7: the rows, the levels this shell lacks in their place.
fn rows(
    lab: &Lab,
    shell: ShellKind,
    event: Event,
    before: &[Before],
    at_end: &[probe::Report],
    survived: &[bool],
) -> Vec<Row> {
    let shell_pid = lab.shell_pid;
    let mut rows: Vec<Row> = Level::of(event)
        .iter()
        .map(|&level| Row {
            level,
            seen: Err(Na::NoBuiltin),
        })
        .collect();
    for (((p, b), then), survived) in lab.probes.iter().zip(before).zip(at_end).zip(survived) {
        let report = lab.report(p.level);
        let fate = if *survived {
            Fate::Survived(output(lab, p, report, *then))
        } else {
            Fate::Died(death(p, shell, event))
        };
        let st = &b.stat;
        let seen = Seen {
            session: if st.session == shell_pid {
                Whose::Shell
            } else {
                Whose::Own
            },
            group: if st.pgrp == shell_pid {
                Group::Shell
            } else if st.pgrp == st.pid {
                Group::Own
            } else {
                Group::Another
            },
            on_lab_tty: st.tty_nr != 0,
            sighup: b.sighup,
            continued: report.conts > b.report.conts,
            fate,
        };
        if let Some(row) = rows.iter_mut().find(|r| r.level == p.level) {
            row.seen = Ok(seen);
        }
    }
    rows
}

/// Runs the experiment for `event`; `exe` is huplab itself (the probe program).
pub fn run(
    shell: ShellKind,
    event: Event,
    exe: &Path,
    interrupted: &Arc<AtomicUsize>,
) -> Result<Vec<Row>, LabError> {
    let dir = make_dir(event)?;
    let cgroups = if event == Event::Logout {
        match Cgroups::make() {
            Ok(cg) => Some(cg),
            Err(why) => {
                let _ = std::fs::remove_dir(&dir);
                return Ok(Level::of(event)
                    .iter()
                    .map(|&level| Row {
                        level,
                        seen: Err(Na::NoCgroups(why.clone())),
                    })
                    .collect());
            }
        }
    } else {
        None
    };
    let mut lab = start_shell(
        shell,
        &dir,
        exe,
        event.login(),
        Arc::clone(interrupted),
        cgroups,
    )?;
    for line in event.typed_first(shell) {
        lab.command(line)?;
    }
    start_probes(&mut lab, shell, event)?;
    let before = observe(&lab)?;
    apply(&mut lab, event)?;
    let at_end = await_shell_end(&mut lab)?;
    let survived = await_fates(&lab, &at_end)?;
    Ok(rows(&lab, shell, event, &before, &at_end, &survived))
}
