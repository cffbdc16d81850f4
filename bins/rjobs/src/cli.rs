//! rjobs' command line: the one source of `--help`, the man page and the completions.

use std::path::PathBuf;

use clap::{CommandFactory, Parser, ValueHint};
use hupkit_common::cli::{Help, Version};

/// The exit statuses.
pub const EXIT_STATUS: &[(&str, &str)] = &[
    ("0", "listed (possibly nothing)"),
    (
        "1",
        "the terminal given to -t has no session, or its name is ambiguous; or --prune could not remove a record",
    ),
    ("2", "bad usage"),
];

const AFTER_HELP: &str = "\
A job is a process group of the session, as the kernel keeps it: rjobs sees
every job of the session, from any shell, including jobs the shell has
forgotten (disown). The session leader's group (the shell) and rjobs' own are
left out, in every view (-A too). A running job of a session that has a
terminal, not in its foreground, is shown with `&`; a job of a session without
a terminal (a daemon's) is no background job and has none. An empty listing
says so in one line when standard output is a terminal (`rjobs: no jobs in
this session`, `rjobs: no job records`), and prints nothing into a pipe. Jobs are numbered in start order, renumbered when one ends (bash
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
and writes fail); OUTPUT is where fds 1 and 2 lead, one label when both lead
to the same place, else `1:LABEL 2:LABEL`: `tty` (its controlling terminal),
`tty:pts/5` (another live terminal), `lost (pts/3 hung up)` (a terminal that
has hung up: writes fail with EIO and the output is lost; `rdisown -o FILE PID`
sends it to a file), `file:PATH` (nohup.out shows as its path), `/dev/null`,
`pipe`, `socket`, `pty-master` (it drives a terminal of its own: tmux, ssh),
`closed`, `?` (another user's process); --json gives each as `stdout` and
`stderr`, with `kind`, `path` and `lost`. LOGOUT is what systemd-logind does
to the process when its user logs out, from its cgroup: `dies` (logind kills
its session scope: KillUserProcesses=yes, or KillOnlyUsers lists the user),
`dies-later` (in a unit of the user's manager, which stops UserStopDelaySec,
10 s, after the last session ends: no linger), `lives`, `lives-while` (a unit
of the user's manager, no linger, KillUserProcesses=no: it lives while a
session of the user keeps a process), `unreached` (in no logind session: a
system service), `-` (no systemd); --json gives `logout` with `fate`, `cgroup`
and `verdict`. ORPHANED means no member's parent is in the session outside
the group (a stopped orphaned group gets SIGHUP+SIGCONT from the kernel);
TRACED names the tracer's PID.

-t TTY: a device number names one terminal per devpts instance (a container
numbers its own pts/0, pts/1...), so rjobs picks the session that holds TTY
itself open (compared through the descriptors of its processes); when none
can be told apart, the name is ambiguous and rjobs says so.

--explain predicts death at hangup for a stopped job the shell has disowned:
when the shell exits (at hangup too), the job's group is orphaned, and the
kernel sends a stopped orphaned group SIGHUP and SIGCONT.

The logout (--explain and -l): logind kills every process of a session's
cgroup (user-UID.slice/session-N.scope) at logout when the user is not in
KillExcludeUsers (root is, while that is unset) and is in KillOnlyUsers, or,
when that is empty, KillUserProcesses=yes: session, process group, parent and
SIGHUP disposition do not matter. A unit of the user's manager
(systemd-run --user, user@UID.service) lives on, until the manager stops, 10 s
after the user's last session ends, unless the user lingers
(/var/lib/systemd/linger/USER, loginctl enable-linger). The cgroup is read from
/proc/PID/cgroup (cgroup2, hybrid and legacy layouts); logind's settings, for
a process in a user's slice, from login1's D-Bus properties on the system bus
(the values in force, shown as \"(logind)\"), read once per run by the helper
hupkit-dbus; without the bus or the helper, or after 2 s without an answer,
from /etc/systemd/logind.conf and the logind.conf.d drop-ins (/etc, /run,
/usr/local/lib, /usr/lib; by file name, /etc first for the same name), as
logind reads them, each shown with its file; when no file sets
KillUserProcesses, the compiled-in default applies (no in Debian's and most
distributions' builds, yes in upstream's), and the verdict says so.";

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
    /// Show each member process, with its SIGHUP disposition, terminal fds, controlling terminal, orphaned group, tracer, what logout does to it and where its output goes (lost when its terminal has hung up)
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

    /// Explain one process (PID, PID@STARTTIME or a job spec): its session, group, terminal, SIGHUP, where fds 0-2 lead, and what hangup, shell exit, kill -HUP of the shell and logout (logind) would do to it
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
         records, one file per job, mode 0600. /etc/systemd/logind.conf, \
         {/etc,/run,/usr/local/lib,/usr/lib}/systemd/logind.conf.d/*.conf: logind's \
         settings; /var/lib/systemd/linger/USER: the users who linger.",
    ),
    (
        "SEE ALSO",
        "rbg(1), rfg(1), disown(1), rnohup(1), detach(1), ps(1), credentials(7), logind.conf(5), loginctl(1)",
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
