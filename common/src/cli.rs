//! Command-line parsing shared by the clap-based tools: help and version on
//! stdout (a closed pipe is a quiet success), and usage errors as one GNU-style
//! line plus `Try 'PROG --help' for more information.`, with the tool's status.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;

use clap::FromArgMatches;

use crate::diag::Diag;
use crate::error::{Error, Result};
use crate::exit::Status;
use crate::stdio;

/// Parses the process's arguments with `command` into `T`. `Err` is the exit
/// status to return at once (help and version already printed, or the usage
/// error reported).
pub fn parse<T: FromArgMatches>(
    command: clap::Command,
    args: Vec<OsString>,
    usage_status: Status,
) -> std::result::Result<T, Status> {
    let name = program_name(&command, &args);
    let mut diag = Diag::new(&name);
    // The name as invoked, in usage lines and `--version` too.
    let shown = name.to_string_lossy().into_owned();
    let err = match command
        .display_name(shown.clone())
        .bin_name(shown)
        .try_get_matches_from(args)
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

/// The name a tool calls itself by in its messages: the last component of
/// argv\[0\] as invoked (`rdisown` and `disown` are one program), else the clap
/// command's name.
#[must_use]
pub fn program_name(command: &clap::Command, args: &[OsString]) -> OsString {
    match args.first().map(|a| a.as_bytes()) {
        Some(arg0) if !arg0.is_empty() => {
            let base = arg0.rsplit(|b| *b == b'/').next().unwrap_or(arg0);
            if base.is_empty() {
                OsString::from(command.get_name())
            } else {
                OsStr::from_bytes(base).to_os_string()
            }
        }
        _ => OsString::from(command.get_name()),
    }
}

/// A tool's whole `main`, called from its entry ([`crate::entry!`]) with argv:
/// parse `args` with `command` (usage errors exit `usage_status`), run, and
/// return the exit status. This is the one place where a tool's result becomes
/// its exit status: an [`Error`] is reported (with its `Try` line for a usage
/// error) and exits with its own status.
pub fn status<T: FromArgMatches>(
    command: clap::Command,
    args: Vec<OsString>,
    usage_status: Status,
    run: impl FnOnce(&T, &mut Diag) -> Result<Status>,
) -> Status {
    let name = program_name(&command, &args);
    match parse::<T>(command, args, usage_status) {
        Ok(cli) => {
            let mut diag = Diag::new(&name);
            let result = run(&cli, &mut diag);
            finish(&mut diag, result)
        }
        Err(code) => code,
    }
}

/// Maps a tool's result to its exit status, reporting the error if any.
pub fn finish(diag: &mut Diag, result: Result<Status>) -> Status {
    match result {
        Ok(status) => status,
        Err(e) => {
            diag.report(&e);
            e.status()
        }
    }
}

/// `-h`, `--help`: flattened into a tool's `Cli` (`#[command(flatten)]`), with
/// clap's own flags disabled, so that help is printed by [`parse`] on standard
/// output with its write error checked. A tool whose `-h` means something else
/// (disown's bash `-h`) takes [`LongHelp`] instead.
#[derive(Debug, Clone, clap::Args)]
pub struct Help {
    /// Print help
    #[arg(short = 'h', long = "help", action = clap::ArgAction::Help)]
    help: Option<bool>,
}

/// `--help` alone, for tools whose `-h` is an option of their own.
#[derive(Debug, Clone, clap::Args)]
pub struct LongHelp {
    /// Print help
    #[arg(long = "help", action = clap::ArgAction::Help)]
    help: Option<bool>,
}

/// `-V`, `--version`: flattened into a tool's `Cli` beside [`Help`] or [`LongHelp`].
#[derive(Debug, Clone, clap::Args)]
pub struct Version {
    /// Print version
    #[arg(short = 'V', long = "version", action = clap::ArgAction::Version)]
    version: Option<bool>,
}
