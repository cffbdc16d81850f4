//! detach's command line: the one source of `--help`, the man page and the
//! completions. The short letters are daemonize(1)'s, so scripts can switch.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{ArgGroup, CommandFactory, Parser, ValueHint};

/// The exit statuses, as `--help` and the man page list them.
pub const EXIT_STATUS: &[(&str, &str)] = &[
    (
        "0",
        "started (and ready, with --notify); --status: running; --stop: stopped; \
         --reload, --pause, --resume: signalled; --restart: stopped and started again",
    ),
    (
        "1",
        "already running (the lock, or the pidfile, names a live daemon); \
         --status: dead, but the pidfile (or job record) exists; --stop, --reload, --pause, \
         --resume: was not running; --restart: no pidfile, or no job record to restart from",
    ),
    (
        "2",
        "--stop, --restart: the daemon outlived the whole --retry schedule",
    ),
    (
        "3",
        "--status: not running (no pidfile, or no such job record)",
    ),
    (
        "4",
        "--status and the other controls: the pidfile or job record is unreadable, unsafe \
         or unverifiable (--restart: or not the caller's, or holds no command line)",
    ),
    (
        "125",
        "detach itself failed, or the daemon failed before exec (bad usage, \
         directory, user, output file, pidfile, lock, --scope, --linger), or was not ready",
    ),
    ("126", "COMMAND was found but could not be run"),
    ("127", "COMMAND was not found"),
];

const THE_DAEMON: &str = "\
The daemon: forked twice (never a session leader, so it can never acquire a
terminal) in a new session, working directory / (or --chdir), umask kept (or
--umask), standard input /dev/null, standard output and error /dev/null (or the
--stdout and --stderr files, opened by detach before it forks), every other file
descriptor closed, signal mask empty, every signal at its default action, the
caller's environment plus --env.";

const THE_CALLER: &str = "\
detach returns only once COMMAND has been executed (with --notify: once it has
said READY=1) and the pidfile is written; a failure at any step is reported,
with the step and its exit status. Without --notify the pidfile is written
while the daemon sets itself up, and removed again if that fails, before detach
returns. Relative paths are relative to the caller's directory.";

const THE_PIDFILE: &str = "\
Pidfile: one line, the daemon's PID. Beside it, FILE.id holds the daemon's
identity, 'PID STARTTIME BOOT_ID' (start time in clock ticks after boot, from
/proc/PID/stat): --status and --stop act only on that very process, never on a
process that reused the PID, and count a zombie as dead. Both files are mode
0644, written atomically, never through a symbolic link. The lock file holds the
same identity line; the lock is free as soon as that process is gone.

What is trusted: every path (pidfile, FILE.id, lock, --stdout, --stderr) is
walked one component at a time (openat, O_NOFOLLOW) and used relative to the
directory reached. A symbolic link, at any component, is followed only if it
belongs to root or to the caller (/var/run -> /run works); a directory must
belong to root or the caller, and one that other users can write to must be
sticky, the entry taken in it being root's or the caller's. The pidfile,
FILE.id and the lock file must be regular files of root or the caller that no
other user can write (never a symbolic link). A file that breaks a rule is
refused, read or written: --status and --stop name it and say why, signal
nothing and exit 4; a start exits 125.";

const THE_CONTROLS: &str = "\
Controls: --status, --stop, --reload (SIGHUP, or --signal SIG), --pause
(SIGSTOP to the daemon's process group: the daemon and its children) and
--resume (SIGCONT to it) act on the daemon of -p FILE or --job ID only after
checking its identity, through a pidfd: a process that reused the PID is never
signalled. --restart stops the daemon as --stop does (--retry applies), then
starts it again with the command line and options of its job record: the same
COMMAND, -o/-e files, --env values and other options, relative paths resolved
in the directory of the first start. The record must pass the pidfile's rules,
record the caller as its user and the daemon's identity; otherwise, or without
a record (HUPKIT_NO_RECORD=1 at start), --restart refuses and stops nothing.
The record never holds the caller's environment: the restarted daemon gets the
environment of the caller of --restart, plus the stored --env.

  detach -p /run/web.pid -o /var/log/web.log -E PORT=8080 -- web --serve
  detach --reload -p /run/web.pid                  # SIGHUP
  detach --reload --signal USR1 -p /run/web.pid    # reopen logs
  detach --pause -p /run/web.pid; detach --resume -p /run/web.pid
  detach --restart -p /run/web.pid                 # same command, options, --env";

const THE_RECORD: &str = "\
Job record: each daemon started is also recorded in
$XDG_STATE_HOME/hupkit/jobs/ (default ~/.local/state/hupkit/jobs/), one file
per job, PID-STARTTIME.job, mode 0600 in a 0700 directory: its identity, when
it started, its user, its command line, directory, output and pidfile, and
detach's own arguments and directory (for --restart). rjobs --records
lists them. A daemon started without --pidfile is controlled through its
record: --status --job ID and --stop --job ID, ID being PID@STARTTIME as rjobs
--records shows it. The record is read under the pidfile's rules (never a
symbolic link; a regular file of root or the caller that no other user can
write; otherwise status 4, nothing signalled), and its identity must be the
one ID names. A record that cannot be written is skipped (with -v, a
warning). HUPKIT_NO_RECORD=1 in the environment turns records off.";

const THE_PRINT: &str = "--print=sysv --name NAME prints, instead of starting COMMAND, an /etc/init.d script with \
     LSB headers (for update-rc.d and service) whose start, stop, restart, reload, \
     force-reload and status call this detach, by its absolute path, with the same options: \
     paths made absolute, -p /run/NAME.pid unless -p is given, COMMAND by the absolute path a \
     start would find; reload is detach --reload (SIGHUP), \
     force-reload restarts. Every argument is single-quoted, so the daemon gets exactly the \
     argv given.\n\
     --print=systemd --name NAME prints the equivalent unit: ExecStart= (argv[0] kept, $ and \
     % escaped), ExecReload= (SIGHUP), User=, Group=, WorkingDirectory=, UMask= (without -m, the caller's), \
     Environment= for the --env pairs only (the caller's environment is never carried over), \
     StandardOutput= and StandardError= as truncate:FILE, append:FILE with -a, or journal, \
     Type=notify with --notify (else Type=exec), and no PIDFile= (systemd tracks the main \
     process). --journal=TAG and --syslog=TAG: StandardOutput=journal and \
     SyslogIdentifier=TAG (--syslog: facility daemon, no level prefixes, and a comment on \
     how the lines reach syslog). What has no equivalent (-p, -l) is said in a comment. NAME: letters, digits \
     and _.@- only.\n\
     detach --print=sysv --name myd -o /var/log/myd.log -- myd --serve >/etc/init.d/myd\n\
     detach --print=systemd --name myd -u myd -- myd --serve >/etc/systemd/system/myd.service";

/// Run COMMAND as a daemon, detached from the terminal and the caller.
#[derive(Debug, Parser)]
#[command(
    name = "detach",
    version,
    about = "Run COMMAND as a daemon, detached from the terminal and the caller.",
    override_usage = "detach [OPTIONS] [--] COMMAND [ARG]...\n       detach --status (-p FILE | --job ID)\n       detach --stop (-p FILE | --job ID) [--retry SCHEDULE]\n       detach --reload (-p FILE | --job ID) [--signal SIG]\n       detach (--pause | --resume) (-p FILE | --job ID)\n       detach --restart (-p FILE | --job ID) [--retry SCHEDULE]\n       detach --print=(sysv|systemd) --name NAME [OPTIONS] [--] COMMAND [ARG]...",
    disable_help_flag = true,
    disable_version_flag = true,
    group = ArgGroup::new("target").args(["pidfile", "job"]),
    group = ArgGroup::new("control").args(["status", "stop", "reload", "pause", "resume", "restart"]),
    group = ArgGroup::new("stopping").args(["stop", "restart"])
)]
// The doc comments are the help text users read: no Markdown backticks there.
#[allow(clippy::struct_excessive_bools, clippy::doc_markdown)]
pub struct Cli {
    /// Append to the --stdout/--stderr files instead of truncating them
    #[arg(short = 'a', long)]
    pub append: bool,

    /// Working directory of the daemon [default: /]
    #[arg(short = 'c', long, value_name = "DIR", value_hint = ValueHint::DirPath)]
    pub chdir: Option<PathBuf>,

    /// Standard error of the daemon [default: /dev/null]
    #[arg(short = 'e', long, value_name = "FILE", value_hint = ValueHint::FilePath)]
    pub stderr: Option<PathBuf>,

    /// Standard output of the daemon [default: /dev/null]; the same FILE as --stderr shares one open file
    #[arg(short = 'o', long, value_name = "FILE", value_hint = ValueHint::FilePath)]
    pub stdout: Option<PathBuf>,

    /// Set NAME to VALUE in the daemon's environment (repeatable)
    #[arg(short = 'E', long = "env", value_name = "NAME=VALUE")]
    pub env: Vec<OsString>,

    /// Single instance: refuse to start while the daemon recorded in FILE lives
    #[arg(short = 'l', long, value_name = "FILE", value_hint = ValueHint::FilePath)]
    pub lock: Option<PathBuf>,

    /// Write the daemon's PID to FILE (and its identity to FILE.id) before returning
    #[arg(short = 'p', long, value_name = "FILE", value_hint = ValueHint::FilePath)]
    pub pidfile: Option<PathBuf>,

    /// Run as USER, with its groups, or as USER:GROUP (root only)
    #[arg(short = 'u', long, value_name = "USER[:GROUP]", value_hint = ValueHint::Username)]
    pub user: Option<String>,

    /// The daemon's umask, in octal [default: the caller's]
    #[arg(short = 'm', long, value_name = "MODE")]
    pub umask: Option<String>,

    /// Say what was done, on standard error
    #[arg(short = 'v', long)]
    pub verbose: bool,

    /// Give the daemon a NOTIFY_SOCKET (sd_notify protocol) and return when it sends READY=1; fail if it exits first, sends ERRNO=, or is not ready in SECONDS [default: 60]
    #[arg(
        long,
        value_name = "SECONDS",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "60"
    )]
    pub notify: Option<u64>,

    /// Start the daemon in a new transient scope of the caller's service manager (the user manager; for root, the system manager), before it runs COMMAND: logind's kill of the session at logout (KillUserProcesses=yes) does not reach it
    #[arg(long, conflicts_with_all = ["status", "stop"])]
    pub scope: bool,

    /// Enable lingering for the daemon's user (logind's SetUserLinger), so that its service manager, and a --scope daemon with it, outlives the user's last logout
    #[arg(long, conflicts_with_all = ["status", "stop"])]
    pub linger: bool,

    /// Tell whether the daemon of the --pidfile (or --job) runs (LSB status codes)
    #[arg(long, conflicts_with_all = ["stop", "command"], requires = "target")]
    pub status: bool,

    /// Stop the daemon of the --pidfile (or --job), wait for it to end, remove the pidfile (a paused daemon is continued after each signal, so that it can act on it)
    #[arg(long, conflicts_with = "command", requires = "target")]
    pub stop: bool,

    /// With --status, --stop or another control: the daemon of the job record ID (PID@STARTTIME, as rjobs --records shows it), for a daemon started without --pidfile
    #[arg(long, value_name = "ID", conflicts_with_all = ["pidfile", "command"], requires = "control")]
    pub job: Option<String>,

    /// With --stop or --restart: signals and waits, e.g. TERM/5/KILL/2, or N for TERM/N/KILL/N [default: TERM/10]
    #[arg(long, value_name = "SCHEDULE", requires = "stopping")]
    pub retry: Option<String>,

    #[command(flatten)]
    help: hupkit_common::cli::Help,

    #[command(flatten)]
    version: hupkit_common::cli::Version,

    /// Ask the daemon of the --pidfile (or --job) to reread its configuration: send it SIGHUP (or --signal)
    #[arg(long, conflicts_with = "command", requires = "target")]
    pub reload: bool,

    /// With --reload: the signal to send instead of SIGHUP (USR1, SIGUSR1, -10)
    #[arg(long, value_name = "SIG", requires = "reload")]
    pub signal: Option<String>,

    /// Stop (SIGSTOP) the process group of the daemon of the --pidfile (or --job): the daemon and its children
    #[arg(long, conflicts_with = "command", requires = "target")]
    pub pause: bool,

    /// Continue (SIGCONT) the process group of a paused daemon of the --pidfile (or --job)
    #[arg(long, conflicts_with = "command", requires = "target")]
    pub resume: bool,

    /// Stop the daemon of the --pidfile (or --job), then start it again with the command line and options read back from its job record
    #[arg(long, conflicts_with = "command", requires = "target")]
    pub restart: bool,

    /// The command to run, and its arguments
    #[arg(
        value_name = "COMMAND",
        trailing_var_arg = true,
        required_unless_present_any = ["status", "stop", "reload", "pause", "resume", "restart"],
        value_hint = ValueHint::CommandWithArguments
    )]
    pub command: Vec<OsString>,

    /// Print an /etc/init.d script (sysv) or a systemd unit (systemd) that runs COMMAND with these options, instead of running it
    #[arg(
        long,
        value_name = "FORMAT",
        value_enum,
        require_equals = true,
        requires = "name",
        conflicts_with_all = ["control", "job", "retry", "signal"]
    )]
    pub print: Option<crate::print::Format>,

    /// With --print: the service's name (letters, digits and _.@-); the script's pidfile is /run/NAME.pid unless -p is given
    #[arg(long, value_name = "NAME", requires = "print")]
    pub name: Option<String>,

    /// Send each line the daemon writes to syslog through /dev/log, tagged TAG[PID] [default TAG: COMMAND's name], facility daemon, standard output at priority info, standard error at err (see LOGGING; not with --scope, whose logout the relay would not survive: use --journal there)
    #[arg(
        long,
        value_name = "TAG",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "",
        conflicts_with_all = ["stdout", "stderr", "journal", "control", "scope"]
    )]
    pub syslog: Option<OsString>,

    /// Connect the daemon's standard output (priority 6) and error (3) straight to journald, identifier TAG [default: COMMAND's name] (see LOGGING)
    #[arg(
        long,
        value_name = "TAG",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "",
        conflicts_with_all = ["stdout", "stderr", "control"]
    )]
    pub journal: Option<OsString>,
}

const THE_LOGGING: &str = "\
A daemon has no terminal: --syslog and --journal send what it writes to the
system's log instead (not with -o or -e).

--syslog[=TAG] starts, with the daemon, a small relay in the daemon's session
and process group, as the daemon's user: it reads the daemon's standard output
and error, and sends each line to /dev/log as glibc's syslog(3) and logger(1)
do, '<PRI>Mmm dd hh:mm:ss TAG[PID]: LINE', PID being the daemon's, facility
daemon, priority info for standard output and err for standard error. A line
longer than 1024 bytes is sent in pieces of 1024 bytes, as logger does. Sends
wait while the syslog daemon is behind: no line is dropped or merged. The relay
ends when the daemon's output is closed (the daemon and its children are gone):
there is no second daemon to track or stop. Without /dev/log at start, detach
exits 125; if /dev/log goes away later, the relay reconnects at each line and,
once it can send again, logs how many lines were lost.

--journal[=TAG] connects the daemon's standard output and error, one stream
each, to journald (/run/systemd/journal/stdout) before it runs COMMAND, with no
relay: journald records the daemon's own PID and user (_PID, _UID), identifier
TAG (SYSLOG_IDENTIFIER), priority 6 (info) for standard output and 3 (err) for
standard error; as in a systemd service, a line starting with <N> gets priority
N. Without journald, detach exits 125.

  detach --syslog -p /run/web.pid -- web --serve    # tail -f /var/log/syslog
  detach --journal=web -- web --serve               # journalctl -t web";

const THE_SCOPE: &str = "\
The scope level: with KillUserProcesses=yes in logind.conf, logind kills every
process of the session's cgroup at logout (session-N.scope), whatever its
session, group or signal dispositions: a daemon included. With --scope the
daemon is moved, before it runs COMMAND, into a new transient scope of the
caller's service manager, hupkit-NAME-PID-START.scope (NAME is COMMAND's name),
so that what it starts is never in the session's cgroup either. A user's
scope belongs to the user's manager, which stops at the last logout unless the
user lingers: detach then says so, in one line, at start. --linger enables
lingering (for root, or as polkit allows). The manager is reached through the
user bus (for root, the system bus), else through its private socket
($XDG_RUNTIME_DIR/systemd/private; for root, /run/systemd/private); without
either, detach says so, naming both. No systemd, no manager, a cgroup v1
layout without name=systemd, or a refusal: detach says which and exits 125,
nothing started. The scope's name is in the job record.";

/// Further man page sections: (title, text).
pub const MAN_SECTIONS: &[(&str, &str)] = &[
    ("THE DAEMON", THE_DAEMON),
    ("WHAT THE CALLER GETS", THE_CALLER),
    ("PIDFILE AND LOCK", THE_PIDFILE),
    ("CONTROLS", THE_CONTROLS),
    ("JOB RECORD", THE_RECORD),
    ("INIT SCRIPTS AND UNITS", THE_PRINT),
    ("THE SCOPE LEVEL", THE_SCOPE),
    ("LOGGING", THE_LOGGING),
    (
        "ENVIRONMENT",
        "The daemon gets detach's environment, plus HOME, USER and LOGNAME of the --user, \
         plus --env, plus NOTIFY_SOCKET with --notify. PATH is searched for COMMAND before \
         the daemon changes directory, with the daemon's PATH. After --restart: the \
         environment of the caller of --restart (never the first caller's), plus the \
         --env values stored in the job record.",
    ),
    (
        "NOTES",
        "--user: names and IDs are looked up with getent(1) (/usr/bin/getent, from the \
         C library's package), so users and groups of every name service (LDAP, SSSD, \
         extrausers) work in detach, which is linked statically. Supplementary groups are \
         set (the user's, from the group database), then the group, then the user, and \
         the result is verified. The output files are opened \
         by detach before the fork, as that user (so the daemon never gets a file its user \
         could not have opened, and new ones are the user's); the pidfile and the lock are \
         written as the caller.\n\
         --notify: messages are accepted only from processes of the daemon's user (or \
         root), through a socket in a private directory; EXTEND_TIMEOUT_USEC=, STATUS= \
         and MAINPID= are understood. MAINPID=P is believed only if P runs as the daemon's \
         user and is the daemon or one of its descendants (parent links, each parent \
         started before its child; detach is a child subreaper while it waits); otherwise \
         detach warns, ignores it, and records the daemon it started. If the daemon fails \
         to become ready, detach stops it (TERM, then KILL after 5 seconds).\n\
         --retry: slash-separated items, start-stop-daemon's syntax: a signal (TERM, \
         SIGTERM, -15), a number of seconds to wait, or 'forever' (repeat what follows).",
    ),
    (
        "SEE ALSO",
        "daemon(7), start-stop-daemon(8), setsid(1), rnohup(1), sd_notify(3)",
    ),
];

/// The command-line definition, with the exit statuses after the help text.
#[must_use]
pub fn command() -> clap::Command {
    let text = format!(
        "{THE_DAEMON}

{THE_CALLER}

{THE_PIDFILE}

{THE_CONTROLS}

{THE_RECORD}

{THE_SCOPE}"
    );
    Cli::command().after_help(hupkit_common::cli::after_help(Some(&text), EXIT_STATUS))
}

#[cfg(test)]
mod tests {
    #[test]
    fn definition_is_consistent() {
        super::command().debug_assert();
    }
}
