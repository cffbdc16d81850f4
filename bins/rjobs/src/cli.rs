//! rjobs' command line: the one source of `--help`, the man page and the completions.

use std::path::PathBuf;

use clap::{CommandFactory, Parser, ValueHint};
use hupkit_common::cli::{Help, Version};

/// The exit statuses.
pub const EXIT_STATUS: &[(&str, &str)] = &[
    ("0", "listed (possibly nothing)"),
    (
        "1",
        "the terminal given to -t has no session; or --prune could not remove a record",
    ),
    ("2", "bad usage"),
];

const AFTER_HELP: &str = "\
A job is a process group of the session, as the kernel keeps it: rjobs sees
every job of the session, from any shell, including jobs the shell has
forgotten (disown). The session leader's group (the shell) and rjobs' own are
left out. Jobs are numbered in start order, renumbered when one ends (bash
keeps its numbers: check rjobs before using %N); %+ is the most recently
started stopped job, else the most recently started one (the kernel does not
record when a job stopped), %- the one before. Job specs for rbg, rfg and disown:
%N, %+, %%, %-, %name, %?text, PID, PID@STARTTIME.

STATE is Running, Stopped, Stopped (signal), Stopped (tty input), Stopped (tty
output) or Done (every member has exited, not yet reaped). The stop signal is
learned by attaching briefly with ptrace (the job stays stopped); without
permission, and in the -A view (which does not attach to every stopped process
of the machine), it shows as plain Stopped.

-l columns: SIGHUP is each process's disposition (default: dies at hangup;
ignored: survives it; caught: its handler decides); TTY-FDS lists which of fds
0-2 are the session's terminal (after a hangup, reads there return end-of-file
and writes fail); ORPHANED means no member's parent is in the session outside
the group (a stopped orphaned group gets SIGHUP+SIGCONT from the kernel);
TRACED names the tracer's PID.";

/// List the jobs (process groups) of a terminal session, and how separated each one is.
#[derive(Debug, Parser)]
#[command(
    name = "rjobs",
    version,
    about = "List the jobs (process groups) of a terminal session, and how separated each one is.",
    disable_help_flag = true,
    disable_version_flag = true
)]
#[allow(clippy::struct_excessive_bools)]
pub struct Cli {
    /// Show each member process, with its SIGHUP disposition, terminal fds, controlling terminal, orphaned group and tracer
    #[arg(short = 'l', long)]
    pub long: bool,

    /// The session of another terminal (read-only view), e.g. /dev/pts/3 or pts/3
    #[arg(short = 't', long, value_name = "TTY", value_hint = ValueHint::FilePath, conflicts_with = "all_sessions")]
    pub tty: Option<PathBuf>,

    /// Every session, grouped by session, then by job
    #[arg(short = 'A', long)]
    pub all_sessions: bool,

    /// The jobs started by rnohup, detach and disown, across sessions and logouts
    #[arg(long, conflicts_with_all = ["tty", "all_sessions", "long"])]
    pub records: bool,

    /// With --records: forget the records of jobs that are gone
    #[arg(long, requires = "records")]
    pub prune: bool,

    /// Print JSON instead of a table
    #[arg(long, conflicts_with = "explain")]
    pub json: bool,

    /// Explain one process (PID, PID@STARTTIME or a job spec): its session, group, terminal, SIGHUP, fds, and what hangup, shell exit and kill -HUP of the shell would do to it
    #[arg(long, value_name = "TARGET", conflicts_with_all = ["records", "all_sessions", "long", "tty"])]
    pub explain: Option<String>,

    #[command(flatten)]
    help: Help,

    #[command(flatten)]
    version: Version,
}

/// Further man page sections.
pub const MAN_SECTIONS: &[(&str, &str)] = &[
    ("JOBS AND STATES", AFTER_HELP),
    (
        "COMMAND LINES",
        "In text output, command lines and process names (other users' too) are quoted \
         for a POSIX shell, word by word: plain words bare, others in single quotes, \
         control characters and invalid UTF-8 as $'...' escapes. Nothing in them can \
         drive the terminal, and a line can be pasted back into a shell. --json gives \
         them unquoted.",
    ),
    (
        "FILES",
        "$XDG_STATE_HOME/hupkit/jobs/ (default ~/.local/state/hupkit/jobs/): the job \
         records, one file per job, mode 0600.",
    ),
    (
        "SEE ALSO",
        "rbg(1), rfg(1), disown(1), rnohup(1), detach(1), ps(1), credentials(7)",
    ),
];

/// The command-line definition, with the explanations and exit statuses after the help.
#[must_use]
pub fn command() -> clap::Command {
    Cli::command().after_help(hupkit_common::cli::after_help(
        Some(AFTER_HELP),
        EXIT_STATUS,
    ))
}

#[cfg(test)]
mod tests {
    #[test]
    fn definition_is_consistent() {
        super::command().debug_assert();
    }
}
