//! disown's command line: the one source of `--help`, the man page and the completions.

use std::path::PathBuf;

use clap::{ArgAction, CommandFactory, Parser, ValueHint};

/// The exit statuses.
pub const EXIT_STATUS: &[(&str, &str)] = &[
    ("0", "every process was cut loose"),
    (
        "1",
        "a process could not be (each one is explained; the others were done)",
    ),
    ("2", "bad usage"),
];

const AFTER_HELP: &str = "\
For each process: SIGHUP is set to ignored (a process with its own SIGHUP
handler is left alone, and counted as not cut loose, unless --all); every
descriptor on its
controlling terminal (and /dev/tty) is re-pointed, readers (and fd 0) to
/dev/null, writers to the output file; the terminal stops being its controlling
terminal (TIOCNOTTY, except for a session leader); a stopped process is
continued, or the kernel would kill it when its group is orphaned at logout.

It is done from inside the process, with ptrace: disown makes the process run
a few system calls (rt_sigprocmask, mmap, rt_sigaction, openat, dup3, ioctl,
close, munmap) and then resume where it was; a program blocked reading the
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
removes it); the job no longer cares about the shell's SIGHUP.";

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
    /// A PID means its whole process group
    #[arg(short = 'g', long)]
    pub group: bool,

    /// Add every descendant of the processes named
    #[arg(short = 'r', long)]
    pub tree: bool,

    /// Ignore SIGHUP even in a process that installed its own handler
    #[arg(short = 'a', long)]
    pub all: bool,

    /// Append output to FILE [default: nohup.out, else $HOME/nohup.out]
    #[arg(short = 'o', long, value_name = "FILE", value_hint = ValueHint::FilePath, conflicts_with = "null")]
    pub output: Option<PathBuf>,

    /// Discard output (/dev/null)
    #[arg(long)]
    pub null: bool,

    /// Only make SIGHUP ignored (bash's disown -h): descriptors and terminal untouched
    #[arg(long, conflicts_with_all = ["output", "null"])]
    pub keep_tty: bool,

    /// Also say how long each process was held stopped while it was changed
    #[arg(short = 'v', long)]
    pub verbose: bool,

    /// Print help
    #[arg(short = 'h', long, action = ArgAction::Help)]
    pub help: Option<bool>,

    /// Print version
    #[arg(short = 'V', long, action = ArgAction::Version)]
    pub version: Option<bool>,

    /// Jobs: %N, %+, %-, %name, %?text (their whole group), PID, PID@STARTTIME
    #[arg(value_name = "JOB", required = true)]
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
         with its own SIGHUP handler (unless -a), 32-bit code (a 32-bit program, or a 64-bit \
         one inside an int 0x80 call), and a process that does not stop within 2 s (in \
         vfork, or in another uninterruptible sleep). Each is explained on standard error \
         and makes the status 1.",
    ),
    (
        "JOB RECORD",
        "One job record per job cut loose (per process group; it names the group's \
         leader when that was among the processes, with its command line) is written to \
         $XDG_STATE_HOME/hupkit/jobs/ (default ~/.local/state/hupkit/jobs/), one file per \
         job, PID-STARTTIME.job, mode 0600 in a 0700 directory: the job's identity, when \
         it started (the process's start time, not when disown ran), its command line, \
         directory, terminal and output. rjobs --records lists them. A record that cannot \
         be written is skipped silently. HUPKIT_NO_RECORD=1 in the environment turns \
         records off.",
    ),
    (
        "SEE ALSO",
        "rnohup(1), detach(1), rjobs(1), bash(1) (disown), reptyr(1), ptrace(2)",
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
