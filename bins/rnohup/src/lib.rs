//! `rnohup`: run a command immune to hangups, exactly like GNU coreutils nohup 9.1.
//!
//! The first level of separation from a terminal: the command ignores SIGHUP, its
//! standard input no longer reads the terminal, and what it would print on the
//! terminal goes to `nohup.out`. It stays in the caller's session and process
//! group; `detach` is the tool for a full daemon.
//!
//! The flow, from the command line to the syscalls:
//! [`main`] → [`parse::parse`] (GNU `getopt_long` rules) → [`run::run`] (nohup.c's
//! algorithm: three `isatty` checks, fd rearrangement, `SIGHUP` ignored, `execvp`).
//!
//! Decisions:
//! - No fork: the command keeps rnohup's PID, and its status and signal death are
//!   the caller's to see.
//! - The option parser is hand-written rather than clap's, because GNU's messages
//!   (`invalid option -- 'x'`, abbreviations, `option '--=x' is ambiguous`) are part
//!   of the contract. Its option table is read from the clap definition in [`cli`],
//!   which also renders `--help`, the man page and the completions, so the three
//!   cannot disagree.
//! - Beyond GNU, only opt-in: `--output FILE`.

pub mod cli;
pub mod parse;
pub mod run;

use std::ffi::OsString;

use hupkit_common::diag::Diag;
use hupkit_common::exit::{self, Status};
use hupkit_common::stdio;
use hupkit_common::{Context, Result};

/// The status for rnohup's own failures: 125, or 127 when `POSIXLY_CORRECT` is set
/// (to anything, even the empty string), as in GNU.
#[must_use]
pub fn internal_failure_status() -> Status {
    if std::env::var_os("POSIXLY_CORRECT").is_some() {
        exit::ENOENT
    } else {
        exit::CANCELED
    }
}

/// Runs rnohup with `args` (argv\[0\] first) and returns the exit status, unless
/// the command is exec'd, in which case this never returns.
#[must_use]
pub fn main(mut args: Vec<OsString>) -> Status {
    // GNU names itself by argv[0] exactly as given.
    let prog = if args.is_empty() {
        OsString::from("rnohup")
    } else {
        args.remove(0)
    };
    let mut diag = Diag::new(&prog);
    let fail = internal_failure_status();
    let result = match parse::parse(&args) {
        Err(e) => Err(e.into_error(fail)),
        Ok(parse::Action::Help) => {
            print_stdout(cli::help_text(&prog.to_string_lossy()).as_bytes(), fail)
        }
        Ok(parse::Action::Version) => print_stdout(cli::version_text().as_bytes(), fail),
        Ok(parse::Action::Run { output, command }) => {
            Ok(run::run(&mut diag, output.as_deref(), &command, fail))
        }
    };
    hupkit_common::cli::finish(&mut diag, result)
}

/// Writes `--help` or `--version` text; a write error is `write error: ...`, as
/// coreutils' `close_stdout` reports it.
fn print_stdout(text: &[u8], fail: Status) -> Result<Status> {
    stdio::write_all(stdio::STDOUT, text).context(fail, || "write error")?;
    Ok(exit::SUCCESS)
}
