//! Exit statuses: a contract, written down in every man page.
//!
//! The values follow GNU coreutils (`env`, `nohup`, `timeout`): 125 when the tool
//! itself fails, 126 when the command was found but could not be run, 127 when it
//! was not found, and 128+N for a child killed by signal N.

/// Everything went as asked.
pub const SUCCESS: i32 = 0;
/// A generic failure of a tool that does not wrap a command (e.g. one job of several failed).
pub const FAILURE: i32 = 1;
/// Bad usage, for tools that do not wrap a command.
pub const USAGE: i32 = 2;
/// The tool itself failed before running the command (GNU `EXIT_CANCELED`).
pub const CANCELED: i32 = 125;
/// The command was found but could not be invoked (GNU `EXIT_CANNOT_INVOKE`).
pub const CANNOT_INVOKE: i32 = 126;
/// The command could not be found (GNU `EXIT_ENOENT`).
pub const ENOENT: i32 = 127;

/// The shell's convention for a process killed by `signal`: 128 + its number.
#[must_use]
pub fn from_signal(signal: i32) -> i32 {
    128 + signal
}

/// The status for a failed `exec`, as GNU and POSIX shells give it: 127 when the
/// command does not exist (`ENOENT`), 126 for any other reason.
#[must_use]
pub fn for_exec_error(errno: nix::errno::Errno) -> i32 {
    if errno == nix::errno::Errno::ENOENT {
        ENOENT
    } else {
        CANNOT_INVOKE
    }
}
