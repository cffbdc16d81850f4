//! rfg's command line: the one source of `--help`, the man page and the completions.

use clap::{CommandFactory, Parser};
use hupkit_common::cli::{Help, Version};

/// The exit statuses.
pub const EXIT_STATUS: &[(&str, &str)] = &[
    ("N", "the job's own exit status"),
    ("128+N", "the job was killed by signal N (130 for ^C)"),
    (
        "128+S",
        "the job stopped on signal S (148 for ^Z): it stays a stopped job",
    ),
    (
        "125",
        "rfg failed or refused (not the foreground job, no terminal, another session, no such job)",
    ),
    (
        "255",
        "the job ended but its status is unknown (kernel before 6.15, or its parent never reaped it)",
    ),
];

/// Bring a job to the foreground of this terminal, like bash's fg, from any shell.
#[derive(Debug, Parser)]
#[command(
    name = "rfg",
    version,
    about = "Bring a job to the foreground of this terminal, like bash's fg, from any shell.",
    disable_help_flag = true,
    disable_version_flag = true
)]
pub struct Cli {
    /// The job: %N, %+, %%, %-, %name, %?text, PID (its process group), PID@STARTTIME [default: %+]
    #[arg(value_name = "JOB")]
    pub job: Option<String>,

    #[command(flatten)]
    help: Help,

    #[command(flatten)]
    version: Version,
}

/// Man page sections.
pub const MAN_SECTIONS: &[(&str, &str)] = &[
    (
        "HOW IT WORKS",
        "rfg must be the foreground job of its controlling terminal, and the job must \
         be in the same session: run it as a plain command, not with '&'. It works for \
         jobs the shell has disowned. Like fg, it first prints the job's command line on \
         standard output; rfg cannot see the text that was typed, so this is the argv of \
         the job's first processes, each word quoted for a shell where needed, the commands \
         of a pipeline joined by ' | '. It hands the terminal to the job (with SIGTTOU and \
         SIGTTIN blocked), continues it, waits until it ends or stops, and gives the \
         terminal back to the group that had it, on every path: when the job exits, \
         stops or is killed, when rfg gets any signal that would end it and can be \
         caught (HUP, INT, QUIT, TERM, USR1, USR2, ALRM, VTALRM, PROF, XCPU, \
         XFSZ, IO, PWR, SYS, TRAP, ABRT), and on errors. The terminal's modes are saved first and restored when the job stops \
         or is killed by a signal, as bash does. As bash does too, a job killed by ^C \
         (SIGINT) is followed by a newline, so that the next prompt starts on a line of its \
         own, and a job that stops is reported on standard error as '[N]+  Stopped  \
         COMMAND', with the number and mark rjobs(1) gives it then.",
    ),
    (
        "WAITING",
        "The job is not rfg's child, so rfg cannot wait(2) for it. It follows the job's \
         processes only: a pidfd for each (all polled together, so an ending is seen at \
         once), and each one's /proc/PID/stat every 20 ms (the only way to see a stop, \
         such as ^Z, of a process that is not one's child). When every process it knows \
         has exited or stopped, one scan of /proc confirms it for the whole process group \
         and adopts the processes the job started meanwhile. The cost does not grow with \
         the number of processes on the machine: well under 1% of a core beside 2000 \
         others (cargo xtask bench rfg).",
    ),
    (
        "EXIT STATUS OF A JOB THAT IS NOT RFG'S CHILD",
        "Read from the job's pidfd (PIDFD_GET_INFO with PIDFD_INFO_EXIT, Linux 6.15 and \
         later) once its parent has reaped it; rfg waits up to 2 seconds for that. \
         Otherwise rfg says the status is unknown and exits 255.",
    ),
    (
        "BUGS",
        "SIGKILL cannot be caught. An interactive bash takes the terminal back itself \
         when its foreground job (rfg) dies, SIGKILL included; a parent that does not \
         (a script, a program) leaves the terminal with the job. Recover by stopping \
         the job (^Z), or with rfg or fg from that terminal. When the job is still in \
         bash's own job table (not disowned), bash also reports its stop, numbered as bash \
         numbers it, which can differ from rjobs' number once a job has ended or been \
         disowned.",
    ),
    ("SEE ALSO", "rjobs(1), rbg(1), bash(1) (fg), tcsetpgrp(3)"),
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
