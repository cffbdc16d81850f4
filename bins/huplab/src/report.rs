//! What the lab found, one [`Row`] per level, and how it is shown: the table,
//! the JSON, and the rules behind them ([`explain`]).
//!
//! A row holds what was observed, typed; the words of the table (`shell's`,
//! `HUP (died)`, `lost (EIO: terminal gone)`) are produced here and nowhere
//! else, so the table and the JSON always agree.

use std::fmt::{self, Write as _};
use std::path::PathBuf;

use hupkit_common::signal::Disposition;
use nix::sys::signal::Signal;

use crate::lab::{Event, Level, ShellKind};

/// One row of the result: a level, and what happened to its probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// The level of separation.
    pub level: Level,
    /// What was seen, or why the level does not apply.
    pub seen: Result<Seen, Na>,
}

/// Why a row does not apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Na {
    /// This shell has no such builtin (dash has no `disown`, zsh's `disown`
    /// has no `-h`).
    NoBuiltin,
    /// The logout lab cannot make its cgroups here: why, in words.
    NoCgroups(String),
}

/// What was seen of one probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    /// Whose session it is in.
    pub session: Whose,
    /// Whose process group it is in.
    pub group: Group,
    /// Whether a terminal (the lab's) is its controlling terminal.
    pub on_lab_tty: bool,
    /// Its SIGHUP disposition before the event.
    pub sighup: Disposition,
    /// Whether it reported a SIGCONT after the event began.
    pub continued: bool,
    /// Whether it lived on, and where its output went, or what it died of.
    pub fate: Fate,
}

/// Whose session a probe is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Whose {
    /// The lab shell's.
    Shell,
    /// One of its own (setsid, detach).
    Own,
}

/// Whose process group a probe is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Group {
    /// The shell's (a shell without job control).
    Shell,
    /// Its own (a job of a job-control shell, or a session leader).
    Own,
    /// Some other process's.
    Another,
}

/// How a probe came out of the event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fate {
    /// It kept ticking; its output went there.
    Survived(Output),
    /// It ended.
    Died(Death),
}

/// How a probe ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Death {
    /// Killed by this signal (a number: real-time signals too).
    Signal(i32),
    /// A stopped bash job: bash sent it SIGHUP and SIGCONT, then SIGTERM and
    /// SIGCONT (`terminate_stopped_jobs`), and it died of whichever the kernel
    /// applied first (`fatal`, from its wait status), which depends on
    /// scheduling. Both were sent to it.
    HupOrTerm {
        /// The signal it died of: SIGHUP or SIGTERM.
        fatal: i32,
    },
    /// It exited with this status.
    Exited(i32),
    /// It ended, but its status could not be learned.
    Unknown,
}

/// Where a surviving probe's output went after the event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// To the terminal, which is gone: its writes fail with EIO.
    Lost,
    /// To a file in the lab's directory (the path relative to it).
    InLab(PathBuf),
    /// To the lab's terminal, still there.
    LabTerminal,
    /// Elsewhere.
    Elsewhere(PathBuf),
    /// Unknown (its fd 1 could not be read).
    Unknown,
}

impl Row {
    /// Whether it applies and did not survive.
    fn died(&self) -> bool {
        matches!(&self.seen, Ok(s) if matches!(s.fate, Fate::Died(_)))
    }

    /// Whether it applies and survived.
    fn survived(&self) -> bool {
        matches!(&self.seen, Ok(s) if matches!(s.fate, Fate::Survived(_)))
    }

    /// Whether it died of `sig`.
    fn died_of(&self, sig: Signal) -> bool {
        let Ok(Seen {
            fate: Fate::Died(death),
            ..
        }) = &self.seen
        else {
            return false;
        };
        match *death {
            Death::Signal(n) => n == sig as i32,
            Death::HupOrTerm { .. } => matches!(sig, Signal::SIGHUP | Signal::SIGTERM),
            Death::Exited(_) | Death::Unknown => false,
        }
    }

    /// The row's cells, as words.
    fn cells(&self, shell: ShellKind) -> Cells {
        let seen = match &self.seen {
            Ok(seen) => seen,
            Err(na) => {
                return Cells {
                    session: "-",
                    group: "-",
                    tty: "-",
                    sighup: "-",
                    signals: "-".into(),
                    survived: None,
                    output: match na {
                        Na::NoBuiltin => format!("n/a: {} has no such builtin", shell.name()),
                        Na::NoCgroups(why) => format!("n/a: {why}"),
                    },
                };
            }
        };
        let mut signals = Vec::new();
        if let Fate::Died(death) = seen.fate {
            signals.push(death.to_string());
        }
        if seen.continued {
            signals.push("CONT".into());
        }
        Cells {
            session: match seen.session {
                Whose::Shell => "shell's",
                Whose::Own => "own",
            },
            group: match seen.group {
                Group::Shell => "shell's",
                Group::Own => "own",
                Group::Another => "another",
            },
            tty: if seen.on_lab_tty { "lab tty" } else { "none" },
            sighup: match seen.sighup {
                Disposition::Ignore => "ignored",
                Disposition::Caught => "caught",
                Disposition::Default => "default",
            },
            signals: if signals.is_empty() {
                "-".into()
            } else {
                signals.join(", ")
            },
            survived: Some(matches!(seen.fate, Fate::Survived(_))),
            output: match &seen.fate {
                Fate::Survived(output) => output.to_string(),
                Fate::Died(_) => "-".into(),
            },
        }
    }
}

impl fmt::Display for Death {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Death::Signal(signo) => write!(f, "{} (died)", signal_name(signo)),
            Death::HupOrTerm { fatal } => write!(f, "HUP, TERM ({} fatal)", signal_name(fatal)),
            Death::Exited(code) => write!(f, "exit {code}"),
            Death::Unknown => f.write_str("died"),
        }
    }
}

/// A signal's short name (`HUP`), or `signal N` for one without a name.
fn signal_name(signo: i32) -> String {
    match Signal::try_from(signo) {
        Ok(sig) => sig.as_str().trim_start_matches("SIG").to_string(),
        Err(_) => format!("signal {signo}"),
    }
}

impl fmt::Display for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Output::Lost => f.write_str("lost (EIO: terminal gone)"),
            Output::InLab(path) | Output::Elsewhere(path) => write!(f, "{}", path.display()),
            Output::LabTerminal => f.write_str("the lab's terminal"),
            Output::Unknown => f.write_str("?"),
        }
    }
}

/// A row in words, for the table and the JSON alike.
struct Cells {
    session: &'static str,
    group: &'static str,
    tty: &'static str,
    sighup: &'static str,
    signals: String,
    /// `None`: the level does not apply.
    survived: Option<bool>,
    output: String,
}

/// The rules behind what the table shows, for one event.
#[must_use]
pub fn explain(shell: ShellKind, event: Event, rows: &[Row]) -> Vec<&'static str> {
    let mut out = Vec::new();
    let died_of = |sig| rows.iter().any(|r| r.died_of(sig));
    if event == Event::Logout && rows.iter().any(|r| r.seen.is_ok()) {
        out.push(
            "logout: logind's rule, applied by the lab: with KillUserProcesses=yes, logind stops \
             the session's scope at logout, and systemd sends SIGTERM and SIGCONT to every \
             process in its cgroup, then SIGHUP (SendSIGHUP=yes), then SIGKILL to what is left \
             when the stop times out (90 s; here 2 s). The lab's shell and all it started run \
             in a cgroup of the lab's ($SESSION in huplab --commands), and the lab did that to it: session, process \
             group, SIGHUP disposition and terminal do not matter, only the cgroup. SIGNALS \
             says which signal ended each row (a stopped job got SIGTERM and SIGHUP while \
             stopped, and dies of the one the kernel applies first once continued, the one \
             SIGNALS calls fatal). The lab stops the cgroup with the shell still in it, as \
             loginctl terminate-session does; at a real logout the shell has ended first (bash, \
             as it exits, sends its stopped jobs SIGTERM itself), which changes who sent the \
             stopped job its fatal signal, not who survives.",
        );
    }
    if event == Event::Logout && rows.iter().any(Row::survived) {
        out.push(
            "detach --scope starts the daemon in a scope of the service manager, outside the \
             session's cgroup (rdisown --scope moves a running job there): the session's stop \
             does not reach it. The lab stands in for that scope with a cgroup of its own \
             ($SCOPE in huplab --commands). Without linger, the user's manager stops about 10 s after the user's last \
             session ends, and the scope with it (loginctl enable-linger, or --linger).",
        );
    }
    if event == Event::Logout {
        // The shell's own rules (bash's SIGHUP to its jobs as it dies of the
        // lab's SIGHUP) come after the cgroup's signals and decide nothing.
        out.extend(explain_columns(event, rows));
        return out;
    }
    if event == Event::Hangup {
        out.push(
            "hangup: the kernel sends SIGHUP and SIGCONT to the session leader (the shell) and to \
             the terminal's foreground group; it does not signal the rest of the session.",
        );
    }
    let plain = |r: &&Row| r.level == Level::Plain;
    let plain_died = rows.iter().filter(plain).any(Row::died);
    if shell == ShellKind::Dash && died_of(Signal::SIGHUP) {
        out.push(
            "dash does not forward SIGHUP to its jobs; when it dies, a stopped job's group is \
             left orphaned, and the kernel sends a stopped orphaned group SIGHUP and SIGCONT.",
        );
    } else if shell == ShellKind::Zsh
        && plain_died
        && matches!(event, Event::Exit | Event::LoginExit)
    {
        out.push(
            "zsh sends SIGHUP to its jobs when it exits (its HUP option, on by default), and on \
             SIGHUP; jobs it has disowned are spared.",
        );
    } else if shell == ShellKind::Zsh && died_of(Signal::SIGHUP) {
        out.push(
            "zsh sends SIGHUP (and SIGCONT to stopped ones) to its jobs when it gets SIGHUP and when \
             it exits (its HUP option, on by default); jobs it has disowned are spared.",
        );
    } else if died_of(Signal::SIGHUP) {
        out.push(match event {
            Event::LoginExit => {
                "a login bash with huponexit sends SIGHUP (and SIGCONT to stopped ones) to every job \
                 still in its table when it exits; a job that leaves SIGHUP at its default action dies of it."
            }
            _ => {
                "bash, when it gets SIGHUP, sends SIGHUP (and SIGCONT to stopped ones) to every job \
                 still in its table, except those marked with disown -h; a job that leaves SIGHUP at \
                 its default action dies of it."
            }
        });
    }
    if shell == ShellKind::Bash && died_of(Signal::SIGTERM) {
        out.push(
            "bash sends SIGTERM and SIGCONT to its stopped jobs when it exits (after the SIGHUP, if \
             any: a stopped job then dies of whichever signal the kernel applies first, the one \
             SIGNALS calls fatal).",
        );
    }
    if shell == ShellKind::Zsh && event == Event::Hangup && !plain_died {
        out.push(
            "zsh spared a running job this time: it did not send it SIGHUP at the hangup. zsh \
             5.9 usually does, but not always: when the hangup finds it blocked reading the \
             terminal it leaves through its read-error path, not its SIGHUP handler, and then a \
             job can go unsignalled (a race inside zsh, about one run in 300 here). Run the lab \
             again to see the usual outcome.",
        );
    }
    if shell == ShellKind::Dash && !plain_died {
        out.push("dash forwards no SIGHUP to its jobs: its running jobs are not signalled at all.");
    }
    if shell == ShellKind::Bash
        && event == Event::Exit
        && rows.iter().filter(plain).any(Row::survived)
    {
        out.push(
            "a bash that is not a login shell with huponexit sends nothing to its running jobs \
             when it exits: they live on.",
        );
    }
    out.extend(explain_columns(event, rows));
    out
}

/// The notes on the rows' cells (rather than on the shell's rules).
fn explain_columns(event: Event, rows: &[Row]) -> Vec<&'static str> {
    let mut out = Vec::new();
    if rows.iter().any(|r| r.seen == Err(Na::NoBuiltin)) {
        out.push(
            "n/a: this shell has no such builtin (dash has no disown; zsh's disown has no -h).",
        );
    }
    if rows.iter().any(|r| matches!(r.seen, Err(Na::NoCgroups(_)))) {
        out.push(
            "n/a (logout): the lab stands in for logind with cgroups of its own, which it can \
             make only as root, with a writable cgroup2 hierarchy (/sys/fs/cgroup on pure \
             cgroup2, /sys/fs/cgroup/unified on the hybrid layout).",
        );
    }
    let fate_is = |f: fn(&Seen) -> bool| rows.iter().any(|r| r.seen.as_ref().is_ok_and(f));
    if fate_is(|s| s.fate == Fate::Survived(Output::Lost)) {
        out.push(
            "lost output: the job still writes to the terminal, which is gone: every write fails \
             with EIO (reads return end-of-file). rnohup and rdisown send output to nohup.out, \
             detach to /dev/null (each to FILE with -o FILE).",
        );
    }
    if event != Event::Logout
        && fate_is(|s| s.session == Whose::Own && matches!(s.fate, Fate::Survived(_)))
    {
        out.push(
            "setsid and detach start the command in a session of its own, without the terminal: \
             neither the terminal nor the shell can signal it.",
        );
    }
    if fate_is(|s| s.group == Group::Another) {
        out.push(
            "GROUP another: detach's daemon is in the process group of the session its first \
             child made with setsid; that child then exited, so the daemon is no session leader \
             (it can never get a controlling terminal) and its group is no job of any shell.",
        );
    }
    out.push("the lines the lab typed: huplab --commands");
    out
}

/// The table for one event, with the rules after it.
#[must_use]
pub fn table(shell: ShellKind, event: Event, rows: &[Row]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "event: {} ({})", event.name(), shell.name());
    // SIGNALS fits `HUP, TERM (TERM fatal)`, and any longer cell.
    let wide = rows
        .iter()
        .map(|r| r.cells(shell).signals.len())
        .fold(22, usize::max);
    let _ = writeln!(
        out,
        "{:<18} {:<8} {:<9} {:<7} {:<8} {:<wide$} {:<8} OUTPUT AFTER",
        "LEVEL", "SESSION", "GROUP", "TTY", "SIGHUP", "SIGNALS", "SURVIVED"
    );
    for r in rows {
        let c = r.cells(shell);
        let _ = writeln!(
            out,
            "{:<18} {:<8} {:<9} {:<7} {:<8} {:<wide$} {:<8} {}",
            r.level.label(),
            c.session,
            c.group,
            c.tty,
            c.sighup,
            c.signals,
            match c.survived {
                None => "-",
                Some(true) => "yes",
                Some(false) => "no",
            },
            c.output
        );
    }
    for line in explain(shell, event, rows) {
        let _ = writeln!(out, "  * {line}");
    }
    out
}

/// What the lab types for `event` in `shell`, row by row (`huplab
/// --commands`): the same lines [`crate::lab`] types, for a student to replay.
#[must_use]
pub fn commands(shell: ShellKind, event: Event) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "event: {} ({})", event.name(), shell.name());
    let _ = writeln!(
        out,
        "shell: {}, on a private terminal, in the lab's directory $LAB; $HUPLAB is huplab \
         itself, whose probe writes a line every 100 ms (any long command can stand in for it)",
        shell.invocation(event.login())
    );
    if event == Event::Logout {
        let _ = writeln!(
            out,
            "cgroups: the shell runs in $SESSION, a cgroup of the lab's standing in for the \
             session's scope, from before its first instruction; $SCOPE, its sibling, stands \
             in for the scope detach --scope makes (root and a writable cgroup2 needed)"
        );
    }
    let _ = writeln!(out, "{:<18} TYPED", "LEVEL");
    let mut row = |label: &str, lines: &[String]| {
        for (i, line) in lines.iter().enumerate() {
            let _ = writeln!(out, "{:<18} {line}", if i == 0 { label } else { "" });
        }
    };
    let first: Vec<String> = event
        .typed_first(shell)
        .iter()
        .map(|l| (*l).to_string())
        .collect();
    row("first", &first);
    for &level in Level::of(event) {
        let lines = level
            .typed(shell)
            .unwrap_or_else(|| vec![format!("n/a: {} has no such builtin", shell.name())]);
        row(level.label(), &lines);
    }
    let how: Vec<String> = event.how().iter().map(|l| (*l).to_string()).collect();
    row(event.name(), &how);
    out
}

/// A JSON string.
fn json_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The JSON object for one event.
#[must_use]
pub fn json(shell: ShellKind, event: Event, rows: &[Row]) -> String {
    let items: Vec<String> = rows
        .iter()
        .map(|r| {
            let c = r.cells(shell);
            format!(
                "{{\"level\":{},\"name\":{},\"session\":{},\"group\":{},\"tty\":{},\"sighup\":{},\"signals\":{},\"survived\":{},\"output\":{}}}",
                json_escape(r.level.label()),
                json_escape(r.level.name()),
                json_escape(c.session),
                json_escape(c.group),
                json_escape(c.tty),
                json_escape(c.sighup),
                json_escape(&c.signals),
                c.survived.map_or_else(|| "null".to_string(), |s| s.to_string()),
                json_escape(&c.output)
            )
        })
        .collect();
    let why: Vec<String> = explain(shell, event, rows)
        .iter()
        .map(|l| json_escape(l))
        .collect();
    format!(
        "{{\"event\":{},\"shell\":{},\"rows\":[{}],\"why\":[{}]}}",
        json_escape(event.name()),
        json_escape(shell.name()),
        items.join(","),
        why.join(",")
    )
}
