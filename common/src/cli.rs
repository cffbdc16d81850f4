//! Command-line parsing shared by the clap-based tools: help and version on
//! stdout (a closed pipe is a quiet success), and usage errors as one GNU-style
//! line plus `Try 'PROG --help' for more information.`, with the tool's status.

use std::ffi::OsStr;

use clap::FromArgMatches;

use crate::diag::Diag;
use crate::error::Error;
use crate::stdio;

/// Parses the process's arguments with `command` into `T`. `Err` is the exit
/// status to return at once (help and version already printed, or the usage
/// error reported).
pub fn parse<T: FromArgMatches>(command: clap::Command, usage_status: i32) -> Result<T, i32> {
    let name = command.get_name().to_string();
    let mut diag = Diag::new(OsStr::new(&name));
    let err = match command
        .try_get_matches()
        .and_then(|m| T::from_arg_matches(&m))
    {
        Ok(t) => return Ok(t),
        Err(e) => e,
    };
    if matches!(
        err.kind(),
        clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion
    ) {
        let text = err.render().to_string();
        return Err(match stdio::write_all(stdio::STDOUT, text.as_bytes()) {
            Ok(()) | Err(nix::errno::Errno::EPIPE) => crate::exit::SUCCESS,
            Err(errno) => {
                diag.error_errno("write error", errno);
                usage_status
            }
        });
    }
    // clap's message (its first paragraph), on one line.
    let text = err.render().to_string();
    let para: Vec<&str> = text
        .lines()
        .take_while(|l| !l.trim().is_empty())
        .map(str::trim)
        .collect();
    let msg = para.join(" ");
    let msg = msg.strip_prefix("error: ").unwrap_or(&msg);
    diag.report(&Error::usage(msg, usage_status));
    Err(usage_status)
}

/// The after-help text: `text` (if any), then the exit statuses as a table.
#[must_use]
pub fn after_help(text: Option<&str>, statuses: &[(&str, &str)]) -> String {
    let width = statuses
        .iter()
        .map(|(c, _)| c.len())
        .max()
        .unwrap_or(0)
        .max(3)
        + 1;
    let rows: Vec<String> = statuses
        .iter()
        .map(|(code, what)| format!("  {code:<width$} {what}"))
        .collect();
    match text {
        Some(t) => format!("{t}\n\nExit status:\n{}", rows.join("\n")),
        None => format!("Exit status:\n{}", rows.join("\n")),
    }
}

/// A tool's whole `main`: parse with `command` (usage errors exit
/// `usage_status`), run, and turn the status into an `ExitCode`.
pub fn main<T: FromArgMatches>(
    command: clap::Command,
    usage_status: i32,
    run: impl FnOnce(&T) -> i32,
) -> std::process::ExitCode {
    let code = status::<T>(command, usage_status, run);
    std::process::ExitCode::from(u8::try_from(code).unwrap_or(u8::MAX))
}

/// [`main`] for a C `main` (`#![no_main]`): the same, returning the status.
pub fn status<T: FromArgMatches>(
    command: clap::Command,
    usage_status: i32,
    run: impl FnOnce(&T) -> i32,
) -> i32 {
    match parse::<T>(command, usage_status) {
        Ok(cli) => run(&cli),
        Err(code) => code,
    }
}
