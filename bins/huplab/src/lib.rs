//! `huplab`: the separation lab.
//!
//! It opens a private pseudo-terminal, starts a real interactive bash in it, starts
//! one probe job per level of separation (`cmd &`, a stopped job, `nohup`,
//! `rnohup`, bash's `disown` and `disown -h`, hupkit's `disown`, `setsid`,
//! `detach`), applies one event (the terminal hangs up, the user types `exit`,
//! the shell gets SIGHUP, a login shell with `huponexit` exits), and prints what
//! happened to each level, and why. Everything it started is killed before it
//! returns, also when it is interrupted.

pub mod lab;
pub mod probe;

use std::ffi::OsStr;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

use clap::{ArgAction, CommandFactory, Parser, ValueEnum};
use hupkit_common::diag::Diag;

use crate::lab::{Event, LabError, Row, ShellKind};

/// The exit statuses.
pub const EXIT_STATUS: &[(&str, &str)] = &[
    ("0", "the experiment ran and its table was printed"),
    (
        "1",
        "the experiment could not run (no bash, no pseudo-terminal, a timeout)",
    ),
    ("2", "bad usage"),
    (
        "130",
        "interrupted (everything it started was stopped and removed)",
    ),
];

/// Which event to apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EventArg {
    /// The terminal hangs up (a dropped ssh link)
    Hangup,
    /// The user types exit
    Exit,
    /// kill -HUP to the shell
    Sighup,
    /// A login shell with huponexit exits
    LoginExit,
    /// Each of them, in turn
    All,
}

/// Which shell to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ShellArg {
    /// GNU bash
    Bash,
    /// zsh
    Zsh,
    /// dash
    Dash,
}

/// Hang up a private terminal and show which level of separation survived.
#[derive(Debug, Parser)]
#[command(
    name = "huplab",
    version,
    about = "Hang up a private terminal and show which level of separation survived.",
    disable_help_flag = true,
    disable_version_flag = true
)]
pub struct Cli {
    /// What happens to the terminal session
    #[arg(long, value_enum, default_value = "hangup")]
    pub event: EventArg,

    /// The interactive shell to run in the lab (where installed)
    #[arg(long, value_enum, default_value = "bash")]
    pub shell: ShellArg,

    /// Print JSON instead of a table
    #[arg(long)]
    pub json: bool,

    /// Run as a probe (internal)
    #[arg(long, num_args = 2, value_names = ["NAME", "DIR"], hide = true)]
    pub probe: Option<Vec<String>>,

    /// Print help
    #[arg(short = 'h', long, action = ArgAction::Help)]
    pub help: Option<bool>,

    /// Print version
    #[arg(short = 'V', long, action = ArgAction::Version)]
    pub version: Option<bool>,
}

/// Man page sections.
pub const MAN_SECTIONS: &[(&str, &str)] = &[
    (
        "THE LEVELS",
        "cmd & (a background job); a stopped job; nohup cmd &; rnohup cmd &; cmd & disown \
         (bash forgets the job); cmd & disown -h (bash keeps it but will not SIGHUP it); \
         cmd & rdisown PID (hupkit's disown); setsid cmd & (a new session); detach cmd (a \
         daemon). Each probe writes a line every 100 ms and reports its write errors and \
         the SIGCONTs it receives; it leaves SIGHUP as it inherited it. A probe never \
         outlives the lab: it watches the lab through a pidfd and, should the lab be \
         killed (even with SIGKILL), ends within a tenth of a second and removes the \
         lab's temporary directory (one left by a lab killed before any probe ran is \
         removed by the next run).",
    ),
    (
        "COLUMNS",
        "SESSION: the shell's or its own. GROUP: its own process group, or the shell's. \
         TTY: whether the lab's terminal is its controlling terminal. SIGHUP: its \
         disposition before the event. SIGNALS: the signal it died of, and CONT when it \
         was continued. SURVIVED: alive after the event. OUTPUT AFTER: where its lines \
         go after the event; lost when writes fail (the terminal is gone).",
    ),
    (
        "SEE ALSO",
        "rjobs(1) (--explain), rnohup(1), disown(1), detach(1), bash(1) (SIGNALS), credentials(7)",
    ),
];

/// The command-line definition, with the exit statuses after the help.
#[must_use]
pub fn command() -> clap::Command {
    Cli::command().after_help(hupkit_common::cli::after_help(None, EXIT_STATUS))
}

/// The whole program, for the binary's entry (see its `main.rs` for the
/// start-up): parses `args` (argv\[0\] first), runs, returns the exit status.
#[must_use]
pub fn main(args: Vec<std::ffi::OsString>) -> hupkit_common::exit::Status {
    hupkit_common::cli::status::<Cli>(command(), args, hupkit_common::exit::USAGE, |cli, _| {
        Ok(hupkit_common::exit::Status::new(run(cli)))
    })
}

/// The rules behind what the table shows, for one event.
fn explain(shell: ShellKind, event: Event, rows: &[Row]) -> Vec<&'static str> {
    let mut out = Vec::new();
    let died_of = |sig: &str| {
        rows.iter()
            .any(|r| r.applies && !r.survived && r.signals.contains(sig))
    };
    if event == Event::Hangup {
        out.push(
            "hangup: the kernel sends SIGHUP and SIGCONT to the session leader (the shell) and to \
             the terminal's foreground group; it does not signal the rest of the session.",
        );
    }
    let plain_died = rows
        .iter()
        .any(|r| r.name == "plain" && r.applies && !r.survived);
    if shell == ShellKind::Dash && died_of("HUP") {
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
    } else if shell == ShellKind::Zsh && died_of("HUP") {
        out.push(
            "zsh sends SIGHUP (and SIGCONT to stopped ones) to its jobs when it gets SIGHUP and when \
             it exits (its HUP option, on by default); jobs it has disowned are spared.",
        );
    } else if died_of("HUP") {
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
    if shell == ShellKind::Bash && died_of("TERM") {
        out.push(
            "bash sends SIGTERM and SIGCONT to its stopped jobs when it exits (after the SIGHUP, if \
             any: a stopped job then dies of whichever signal the kernel applies first).",
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
        && matches!(event, Event::Exit)
        && rows.iter().any(|r| r.name == "plain" && r.survived)
    {
        out.push(
            "a bash that is not a login shell with huponexit sends nothing to its running jobs \
             when it exits: they live on.",
        );
    }
    if rows.iter().any(|r| r.output.starts_with("n/a")) {
        out.push(
            "n/a: this shell has no such builtin (dash has no disown; zsh's disown has no -h).",
        );
    }
    if rows.iter().any(|r| r.output.starts_with("lost")) {
        out.push(
            "lost output: the job still writes to the terminal, which is gone: every write fails \
             with EIO (reads return end-of-file). rnohup, disown and detach point output at a file.",
        );
    }
    if rows.iter().any(|r| r.session == "own" && r.survived) {
        out.push(
            "setsid and detach start the command in a session of its own, without the terminal: \
             neither the terminal nor the shell can signal it.",
        );
    }
    out
}

fn table(shell: ShellKind, event: Event, rows: &[Row]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "event: {} ({})", event.name(), shell.name());
    let _ = writeln!(
        out,
        "{:<18} {:<8} {:<9} {:<7} {:<8} {:<16} {:<8} OUTPUT AFTER",
        "LEVEL", "SESSION", "GROUP", "TTY", "SIGHUP", "SIGNALS", "SURVIVED"
    );
    for r in rows {
        let _ = writeln!(
            out,
            "{:<18} {:<8} {:<9} {:<7} {:<8} {:<16} {:<8} {}",
            r.label,
            r.session,
            r.group,
            r.tty,
            r.sighup,
            r.signals,
            if !r.applies {
                "-"
            } else if r.survived {
                "yes"
            } else {
                "no"
            },
            r.output
        );
    }
    for line in explain(shell, event, rows) {
        let _ = writeln!(out, "  * {line}");
    }
    out
}

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

fn json(shell: ShellKind, event: Event, rows: &[Row]) -> String {
    let items: Vec<String> = rows
        .iter()
        .map(|r| {
            format!(
                "{{\"level\":{},\"name\":{},\"session\":{},\"group\":{},\"tty\":{},\"sighup\":{},\"signals\":{},\"survived\":{},\"output\":{}}}",
                json_escape(r.label),
                json_escape(r.name),
                json_escape(r.session),
                json_escape(r.group),
                json_escape(r.tty),
                json_escape(r.sighup),
                json_escape(&r.signals),
                if r.applies { r.survived.to_string() } else { "null".to_string() },
                json_escape(&r.output)
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

/// Runs the lab (or a probe); returns the exit status.
#[must_use]
pub fn run(cli: &Cli) -> i32 {
    let mut diag = Diag::new(OsStr::new("huplab"));
    if let Some(args) = &cli.probe {
        return probe::run(&args[0], &PathBuf::from(&args[1]));
    }
    let shell = match cli.shell {
        ShellArg::Bash => ShellKind::Bash,
        ShellArg::Zsh => ShellKind::Zsh,
        ShellArg::Dash => ShellKind::Dash,
    };
    let exe = match std::env::current_exe() {
        Ok(p) => p,
        Err(e) => {
            diag.error(&format!("cannot find my own program: {e}"));
            return 1;
        }
    };
    let interrupted = Arc::new(AtomicUsize::new(0));
    for sig in [nix::libc::SIGINT, nix::libc::SIGTERM, nix::libc::SIGHUP] {
        let _ = signal_hook::flag::register_usize(sig, Arc::clone(&interrupted), 1);
    }
    let events = match cli.event {
        EventArg::Hangup => vec![Event::Hangup],
        EventArg::Exit => vec![Event::Exit],
        EventArg::Sighup => vec![Event::Sighup],
        EventArg::LoginExit => vec![Event::LoginExit],
        EventArg::All => vec![Event::Hangup, Event::Exit, Event::Sighup, Event::LoginExit],
    };
    let mut out = String::new();
    let mut json_items = Vec::new();
    for (i, event) in events.iter().enumerate() {
        match lab::run(shell, *event, &exe, &interrupted) {
            Ok(rows) => {
                if cli.json {
                    json_items.push(json(shell, *event, &rows));
                } else {
                    if i > 0 {
                        out.push('\n');
                    }
                    out.push_str(&table(shell, *event, &rows));
                }
            }
            Err(LabError::Interrupted) => {
                diag.error("interrupted; everything the lab started was stopped");
                return 130;
            }
            Err(LabError::Failed(why)) => {
                diag.error(&format!("{}: {why}", event.name()));
                return 1;
            }
        }
    }
    if cli.json {
        out = if json_items.len() == 1 {
            json_items.remove(0)
        } else {
            format!("[{}]", json_items.join(","))
        };
        out.push('\n');
    }
    match hupkit_common::stdio::write_all(hupkit_common::stdio::STDOUT, out.as_bytes()) {
        Ok(()) | Err(nix::errno::Errno::EPIPE) => 0,
        Err(e) => {
            diag.error_errno("write error", e);
            1
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn definition_is_consistent() {
        super::command().debug_assert();
    }
}
