//! huplab's command line: the one source of `--help`, the man page and the
//! completions.

use clap::{CommandFactory, Parser, ValueEnum};
use hupkit_common::cli::{Help, Version};

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
    /// The user logs out and logind kills the session's cgroup
    /// (KillUserProcesses=yes), applied by the lab to its shell's cgroup (root)
    Logout,
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

    /// Print the lines the lab types for each level and for the event (to replay
    /// them by hand), and run nothing
    #[arg(long, conflicts_with = "json")]
    pub commands: bool,

    /// Run as a probe (internal)
    #[arg(long, num_args = 2, value_names = ["NAME", "DIR"], hide = true)]
    pub probe: Option<Vec<String>>,

    #[command(flatten)]
    help: Help,

    #[command(flatten)]
    version: Version,
}

/// Man page sections.
pub const MAN_SECTIONS: &[(&str, &str)] = &[
    (
        "THE LEVELS",
        "cmd & (a background job); a stopped job; nohup cmd &; rnohup cmd &; cmd & disown \
         (bash forgets the job); cmd & disown -h (bash keeps it but will not SIGHUP it); \
         cmd & rdisown PID (hupkit's disown); setsid cmd & (a new session); detach cmd (a \
         daemon); at logout only, detach --scope cmd (a daemon in a scope of the service \
         manager, out of the session's cgroup; the lab stands in for the scope with a \
         cgroup of its own, $SCOPE, and moves the daemon there). Each probe writes a line every 100 ms and reports its write errors and \
         the SIGCONTs it receives; it leaves SIGHUP as it inherited it. A probe never \
         outlives the lab: it watches the lab through a pidfd and, should the lab be \
         killed (even with SIGKILL), ends within a tenth of a second and removes the \
         lab's temporary directory (one left by a lab killed before any probe ran is \
         removed by the next run).",
    ),
    (
        "LOGOUT",
        "logind's rule, applied by the lab: with KillUserProcesses=yes, logind stops the \
         session's scope at logout, and systemd sends SIGTERM and SIGCONT to every process \
         in its cgroup, then SIGHUP (SendSIGHUP=yes), then SIGKILL to what is left when the \
         stop times out (90 s; the lab waits 2 s). The lab's shell runs in a cgroup of its \
         own, huplab.PID/session at the root of the cgroup2 hierarchy, and the logout event \
         does just that to it. This needs root and a writable cgroup2 (elsewhere the rows say \
         n/a, and why). The lab removes its cgroups when it ends; those of a lab killed with \
         SIGKILL are removed, once empty, by the next run.",
    ),
    (
        "COLUMNS",
        "SESSION: the shell's or its own. GROUP: its own process group, the shell's, or \
         another (detach's daemon: the group of the session its first child made, no job of \
         any shell). TTY: whether the lab's terminal is its controlling terminal. SIGHUP: \
         its disposition before the event. SIGNALS: the signal it died of, and CONT when it \
         was continued; where several were sent (bash's stopped job: HUP, then TERM), the \
         one it died of is marked fatal. SURVIVED: alive after the event. OUTPUT AFTER: \
         where its lines go after the event (nohup.out for nohup, rnohup and rdisown, \
         /dev/null for detach: their defaults); lost when writes fail (the terminal is \
         gone). --commands shows the lines the lab types for each row.",
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

#[cfg(test)]
mod tests {
    #[test]
    fn definition_is_consistent() {
        super::command().debug_assert();
    }
}
