//! rbg's command line: the one source of `--help`, the man page and the completions.

use clap::{CommandFactory, Parser};
use hupkit_common::cli::{Help, Version};

/// The exit statuses.
pub const EXIT_STATUS: &[(&str, &str)] = &[
    ("0", "every job was continued (or was already running)"),
    (
        "1",
        "a job could not be continued, or was refused (each one is explained)",
    ),
    ("2", "bad usage"),
];

/// Continue stopped jobs in the background, like bash's bg, from any shell.
#[derive(Debug, Parser)]
#[command(
    name = "rbg",
    version,
    about = "Continue stopped jobs in the background, like bash's bg, from any shell.",
    disable_help_flag = true,
    disable_version_flag = true
)]
pub struct Cli {
    /// Jobs: %N, %+, %%, %-, %name, %?text, PID (its process group), PID@STARTTIME [default: %+]
    #[arg(value_name = "JOB")]
    pub jobs: Vec<String>,

    #[command(flatten)]
    help: Help,

    #[command(flatten)]
    version: Version,
}

/// Man page sections.
pub const MAN_SECTIONS: &[(&str, &str)] = &[
    (
        "DESCRIPTION OF JOBS",
        "Jobs are the process groups of the caller's session, numbered as rjobs(1) \
         shows them. A PID names the process group it belongs to, and must be in the \
         caller's session: a process of another session (a setsid'd program, a job of \
         another terminal or of another login) is refused (status 1) and left as it \
         is, whoever owns it. A job that is the \
         terminal's foreground group is refused: continuing it would leave a foreground \
         job nobody waits for (use rfg). So are init (PID 1) and its group, and a \
         process whose group lies outside this PID namespace (/proc shows it as group \
         0: it cannot be named from here). A traced member is reported: it runs only \
         when its tracer lets it.",
    ),
    ("SEE ALSO", "rjobs(1), rfg(1), bash(1) (bg), kill(1)"),
];

/// The command-line definition, with the exit statuses after the help.
#[must_use]
pub fn command() -> clap::Command {
    Cli::command().after_help(hupkit_common::cli::after_help(None, EXIT_STATUS))
}

#[cfg(test)]
mod tests {
    #[test]
    fn definition_is_consistent() {
        super::command().debug_assert();
    }
}
