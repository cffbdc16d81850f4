//! `huplab`: the separation lab.
//!
//! It opens a private pseudo-terminal, starts a real interactive bash in it, starts
//! one probe job per level of separation (`cmd &`, a stopped job, `nohup`,
//! `rnohup`, bash's `disown` and `disown -h`, hupkit's `disown`, `setsid`,
//! `detach`, and at logout `detach --scope`), applies one event (the terminal
//! hangs up, the user types `exit`, the shell gets SIGHUP, a login shell with
//! `huponexit` exits, logind kills the session at logout: see [`cgroup`]), and prints what
//! happened to each level, and why. Everything it started is killed before it
//! returns, also when it is interrupted.
//!
//! The flow: [`main`] → [`cli::Cli`] → [`run`] → [`lab::run`] for each event
//! (its phases, one function each) → [`report`] (the table or JSON). The same
//! program is the probe ([`probe::run`], `--probe NAME DIR`, hidden).

pub mod cgroup;
pub mod cli;
pub mod lab;
pub mod probe;
pub mod report;

use std::ffi::OsString;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

use hupkit_common::diag::Diag;
use hupkit_common::exit::{self, Status};
use hupkit_common::{Context, Error, Result};

pub use crate::cli::{Cli, EXIT_STATUS, MAN_SECTIONS, command};
use crate::cli::{EventArg, ShellArg};
use crate::lab::{Event, ShellKind};

/// The whole program, for the binary's entry (see its `main.rs` for the
/// start-up): parses `args` (argv\[0\] first), runs, returns the exit status.
#[must_use]
pub fn main(args: Vec<OsString>) -> Status {
    hupkit_common::cli::status::<Cli>(command(), args, exit::USAGE, run)
}

impl EventArg {
    /// The events to run, in order.
    fn events(self) -> &'static [Event] {
        match self {
            EventArg::Hangup => &[Event::Hangup],
            EventArg::Exit => &[Event::Exit],
            EventArg::Sighup => &[Event::Sighup],
            EventArg::LoginExit => &[Event::LoginExit],
            EventArg::Logout => &[Event::Logout],
            EventArg::All => &[
                Event::Hangup,
                Event::Exit,
                Event::Sighup,
                Event::LoginExit,
                Event::Logout,
            ],
        }
    }
}

impl From<ShellArg> for ShellKind {
    fn from(arg: ShellArg) -> Self {
        match arg {
            ShellArg::Bash => ShellKind::Bash,
            ShellArg::Zsh => ShellKind::Zsh,
            ShellArg::Dash => ShellKind::Dash,
        }
    }
}

/// Runs the lab for each event asked for (or, with `--probe`, is a probe), and
/// prints the tables or the JSON.
pub fn run(cli: &Cli, _diag: &mut Diag) -> Result<Status> {
    if let Some([name, dir]) = cli.probe.as_deref() {
        return Ok(probe::run(name, Path::new(dir)));
    }
    let shell = ShellKind::from(cli.shell);
    if cli.commands {
        let text: Vec<String> = cli
            .event
            .events()
            .iter()
            .map(|&event| report::commands(shell, event))
            .collect();
        return print(&text.join("\n"));
    }
    let exe = std::env::current_exe().context(exit::FAILURE, || "cannot find my own program")?;
    // Each of these signals only raises the flag: the lab sees it between two
    // steps, stops everything it started, and returns `Interrupted`.
    let interrupted = Arc::new(AtomicUsize::new(0));
    for sig in [nix::libc::SIGINT, nix::libc::SIGTERM, nix::libc::SIGHUP] {
        let _ = signal_hook::flag::register_usize(sig, Arc::clone(&interrupted), 1);
    }
    let mut tables = Vec::new();
    for &event in cli.event.events() {
        let rows = lab::run(shell, event, &exe, &interrupted).map_err(|e| e.during(event))?;
        tables.push(if cli.json {
            report::json(shell, event, &rows)
        } else {
            report::table(shell, event, &rows)
        });
    }
    let mut out = match (cli.json, tables.len()) {
        (true, 1) => tables.concat(),
        (true, _) => format!("[{}]", tables.join(",")),
        (false, _) => tables.join("\n"),
    };
    if cli.json {
        out.push('\n');
    }
    print(&out)
}

/// Writes `out` to standard output; a closed pipe is a quiet success.
fn print(out: &str) -> Result<Status> {
    match hupkit_common::stdio::write_all(hupkit_common::stdio::STDOUT, out.as_bytes()) {
        Ok(()) | Err(nix::errno::Errno::EPIPE) => Ok(exit::SUCCESS),
        Err(errno) => Err(Error::sys("write error", errno, exit::FAILURE)),
    }
}
