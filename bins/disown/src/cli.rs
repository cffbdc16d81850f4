//! disown's command line: the one source of `--help`, the man page and the completions.

use std::path::PathBuf;

use clap::{CommandFactory, Parser, ValueHint};
use hupkit_common::cli::{LongHelp, Version};

/// The exit statuses.
pub const EXIT_STATUS: &[(&str, &str)] = &[
    (
        "0",
        "every process was cut loose (one that exited meanwhile needs nothing)",
    ),
    (
        "1",
        "a process could not be cut loose or moved (each one is explained; the others were done), or --scope or --linger could not be used (nothing was done)",
    ),
    ("2", "bad usage"),
];

const AFTER_HELP: &str = "\
For each process: SIGHUP is set to ignored (a process with its own SIGHUP
handler is left alone, and counted as not cut loose, unless
--override-handler); every descriptor on its controlling terminal (and
/dev/tty) or on a terminal that has hung up (after a dropped connection: its
output is lost) is re-pointed, readers (and fd 0) to /dev/null, writers to the
output file; so is one on a live pseudo-terminal its session lost (its shell
has exited), and, with --any-tty, on any other live terminal; never a pty
master (tmux, ssh, expect drive terminals of their own). The terminal stops
being its controlling terminal (TIOCNOTTY, except for a session leader); a
stopped process is continued, or the kernel would kill it when its group is
orphaned at logout. Each line says what was done to which job: [N] (rjobs'
number), PID and command line, quoted for a shell.

It is done from inside the process, with ptrace: disown makes the process run
a few system calls (rt_sigprocmask, mmap, rt_sigaction, openat, fcntl, dup3,
ioctl, close, munmap) and then resume where it was; a program blocked reading the
terminal then reads end-of-file. Signals that arrive meanwhile are held back
(blocked, or taken and queued again) and delivered after, none lost or doubled.
A process that does not stop within 2 s (in vfork, or in another
uninterruptible sleep) is left exactly as it was. Like a stop by ^Z, being held
makes a few blocking calls fail once with EINTR instead of resuming: epoll_wait
and the others signal(7) lists for stop signals (semop, sigtimedwait, ...);
most programs retry them. The output file is opened by the process itself, so
it must be able to reach it. x86_64 processes only: a 32-bit program, or one
inside a 32-bit (int 0x80) system call, is refused, untouched.

bash, zsh and ksh have a builtin named disown that hides this program: call it
rdisown, or run command disown. The shell still lists the job (its own disown
removes it); the job no longer cares about the shell's SIGHUP. -h, -a and -r
mean what they mean to bash's disown; %N is rjobs' numbering, which can differ
from the shell's (see BASH'S DISOWN in disown(1)): rdisown $(jobs -p %N)
or rdisown PID name exactly the job the shell means.

The scope level: with KillUserProcesses=yes in logind.conf, logind kills every
process of the login session's cgroup (session-N.scope) at logout, whatever
its SIGHUP disposition or terminal. With --scope each job is first moved (all
of its process group for %N or -g, else the processes named, and in both
cases what they fork meanwhile, listed again until nothing new turns up) into
a new transient scope of the caller's service manager,
hupkit-NAME-PID-START.scope, then cut loose as above: rdisown --scope %1
survives both the hangup and the logout (-h keeps the terminal, as ever). A
user's scope belongs to the user's manager, which stops at the last logout
unless the user lingers: rdisown then says so, in one line, before it starts.
--linger enables lingering (for root, or as polkit allows). The manager is
reached through the user bus (for root, the system bus), else through its
private socket ($XDG_RUNTIME_DIR/systemd/private; for root,
/run/systemd/private). No systemd, neither bus nor private socket, or cgroup v1
without name=systemd: one line says which, nothing is changed,
status 1. A job whose move fails is not cut loose. The scope's name is in the
job record.";

/// Cut running jobs loose from their terminal, so they survive its hangup.
#[derive(Debug, Parser)]
#[command(
    name = "disown",
    version,
    about = "Cut running jobs loose from their terminal, so they survive its hangup (also installed as rdisown).",
    disable_help_flag = true,
    disable_version_flag = true
)]
#[allow(clippy::struct_excessive_bools)]
pub struct Cli {
    /// Every job of this session (bash's disown -a), stopped ones too
    #[arg(short = 'a', long = "all", conflicts_with = "jobs")]
    pub all_jobs: bool,

    /// Every running job of this session (bash's disown -r)
    #[arg(short = 'r', long = "running", conflicts_with_all = ["jobs", "all_jobs"])]
    pub running: bool,

    /// Only make SIGHUP ignored (bash's disown -h): descriptors and terminal untouched
    #[arg(short = 'h', long, conflicts_with_all = ["output", "null", "any_tty"])]
    pub keep_tty: bool,

    /// A PID means its whole process group
    #[arg(short = 'g', long)]
    pub group: bool,

    /// Add every descendant of the processes named (was -r)
    #[arg(long, visible_alias = "descendants")]
    pub tree: bool,

    /// Ignore SIGHUP even in a process that installed its own handler (was -a)
    #[arg(long)]
    pub override_handler: bool,

    /// Append output to FILE [default: nohup.out, else $HOME/nohup.out]
    #[arg(short = 'o', long, value_name = "FILE", value_hint = ValueHint::FilePath, conflicts_with = "null")]
    pub output: Option<PathBuf>,

    /// Discard output (/dev/null)
    #[arg(long)]
    pub null: bool,

    /// Also re-point descriptors on other live terminals (never a pty master)
    #[arg(long)]
    pub any_tty: bool,

    /// Also move each job (every process of it) out of the login session's cgroup into a new transient scope of the caller's service manager (the user manager; for root, the system manager): logind's kill of the session at logout (KillUserProcesses=yes) does not reach it
    #[arg(long)]
    pub scope: bool,

    /// Enable lingering for the jobs' user (as loginctl enable-linger does), so that its service manager, and a --scope job with it, outlives the user's last logout
    #[arg(long)]
    pub linger: bool,

    /// Also say how long each process was held stopped while it was changed
    #[arg(short = 'v', long)]
    pub verbose: bool,

    /// `--help` alone: `-h` is bash's.
    #[command(flatten)]
    pub help: LongHelp,

    /// `-V`, `--version`.
    #[command(flatten)]
    pub version: Version,

    /// Jobs: %N (rjobs' numbering), %+, %-, %name, %?text (their whole group), PID, PID@STARTTIME
    #[arg(value_name = "JOB", required_unless_present_any = ["all_jobs", "running"])]
    pub jobs: Vec<String>,
}

/// Further man page sections.
pub const MAN_SECTIONS: &[(&str, &str)] = &[
    ("WHAT IT DOES", AFTER_HELP),
    (
        "REFUSALS",
        "Nothing is changed in: a process that does not exist, a zombie, PID 1, a kernel \
         thread, disown itself and its ancestors, a process already traced by another \
         (a debugger), a process it may not trace (another user's, without root; where \
         Yama is installed, /proc/sys/kernel/yama/ptrace_scope may forbid more), a process \
         with its own SIGHUP handler (unless --override-handler), 32-bit code (a 32-bit program, or a 64-bit \
         one inside an int 0x80 call), and a process that does not stop within 2 s (in \
         vfork, or in another uninterruptible sleep). Each is explained on standard error \
         and makes the status 1.",
    ),
    (
        "BASH'S DISOWN",
        "The short options are bash's: -h only makes SIGHUP ignored (bash's disown -h \
         marks the job so that bash will not send it SIGHUP; here the process itself \
         ignores it, whoever sends it), -a takes every job of the session, -r every \
         running one. Formerly, -a meant --override-handler and -r meant --tree, \
         and -h printed help: help is --help only. What still differs: with no operand, \
         bash's disown takes the current job; this program needs a job, -a or -r (its \
         current job, %+, is a guess: the kernel does not record when a job stopped). \
         bash's disown -a and -r ignore operands; here they refuse them. bash removes \
         the job from its table; here the shell still lists it (run the shell's own \
         disown too, for that), and the job also gets its terminal descriptors \
         re-pointed and loses its controlling terminal, unless -h. \
         \n\nJob numbers: %N is rjobs' numbering, the live process groups of the session \
         in start order; bash numbers jobs as it starts them. After bash's own disown \
         (or a finished job), the two can differ: bash no longer lists a job that rjobs \
         still sees, and its %2 may be rjobs' %3. The exact forms are rdisown \
         $(jobs -p %N), with bash's number, and rdisown PID; each report line shows \
         the job number, PID and command line it acted on, so a mistake is visible.",
    ),
    (
        "JOB RECORD",
        "One job record per job cut loose (per process group; it names the group's \
         leader when that was among the processes, with its command line) is written to \
         $XDG_STATE_HOME/hupkit/jobs/ (default ~/.local/state/hupkit/jobs/), one file per \
         job, PID-STARTTIME.job, mode 0600 in a 0700 directory: the job's identity, when \
         it started (the process's start time, not when disown ran), its command line, \
         directory, terminal and output, and with --scope its scope. rjobs --records lists them. A record that cannot \
         be written is skipped silently. HUPKIT_NO_RECORD=1 in the environment turns \
         records off.",
    ),
    (
        "SEE ALSO",
        "rnohup(1), detach(1), rjobs(1), bash(1) (disown), reptyr(1), ptrace(2), \
         logind.conf(5), loginctl(1)",
    ),
];

/// The command-line definition, with the explanation and exit statuses after the help.
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
