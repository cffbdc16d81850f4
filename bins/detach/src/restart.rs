//! `--restart`: stop the daemon, then start it again with the command line it
//! was started with, read back from the job record detach wrote at start.
//!
//! The record is the only source of that command line, so it is trusted only
//! when everything about it holds, checked before anything is stopped:
//! - it is read under `hupkit_common::safepath`'s rules for the caller (never
//!   through a symbolic link; a regular file of root or the caller, writable
//!   by no one else, in directories no other user controls);
//! - its identity (PID, start time, boot) is the daemon's, as the pidfile's
//!   identity record (or the `--job` ID) names it;
//! - its stored user is the caller (the effective UID), and it holds detach's
//!   own arguments (a record written before they were recorded, or by another
//!   tool, or with `HUPKIT_NO_RECORD=1` at start, cannot be restarted);
//! - those arguments parse as a start of a daemon.
//!
//! The record holds detach's options (the `--env` values among them) and the
//! command, never the caller's environment: the new daemon gets the
//! restarting caller's environment plus the stored `--env`, as a start would.
//! Relative paths are resolved in the directory the first start ran in, as
//! they were then.

use std::ffi::{OsStr, OsString};
use std::path::PathBuf;

use clap::FromArgMatches;
use hupkit_common::diag::Diag;
use hupkit_common::exit::{self, Status, lsb as code};
use hupkit_common::identity::{Identity, Liveness};
use hupkit_common::quote::quote;
use hupkit_common::records::{Level, Record};
use hupkit_common::safefile::FileError;
use hupkit_common::safepath::{self, Purpose};
use hupkit_common::{Error, Result};

use crate::cli::Cli;
use crate::control::{self, Item, Target};
use crate::records::{self, JobId, PidfileState};

/// Why a restart was refused before anything was stopped: the code and line.
type Refusal = (Status, String);

/// The identity of the target's daemon (alive or not), as its pidfile's
/// identity record or its job ID names it.
fn identity(target: &Target) -> std::result::Result<Identity, Refusal> {
    let (state, what) = match target {
        Target::Pidfile(p) => (
            records::read_pidfile(p),
            format!("pidfile {}", quote(p.as_os_str())),
        ),
        Target::Job(id) => {
            let Some(path) = id.path() else {
                return Err((code::DEAD, format!("cannot restart: no record of job {id}")));
            };
            let what = format!("job record {}", quote(path.as_os_str()));
            (records::read_job(&path, *id).0, what)
        }
    };
    match state {
        PidfileState::Pid(_, Some(id)) => Ok(id),
        PidfileState::Missing => Err((code::DEAD, format!("cannot restart: no {what}"))),
        PidfileState::Invalid(why) => Err((code::UNKNOWN, format!("cannot use {what}: {why}"))),
        PidfileState::Refused(file, why) => Err((code::UNKNOWN, crate::refusal_text(&file, &why))),
        PidfileState::Pid(pid, None) => Err((
            code::UNKNOWN,
            format!("cannot restart PID {pid}: no identity record to verify it"),
        )),
    }
}

/// Reads and checks the job record of `id` (see the module's rules).
fn trusted_record(id: &Identity) -> std::result::Result<Record, Refusal> {
    let job = JobId {
        pid: id.pid,
        starttime: id.starttime,
    };
    let Some(path) = job.path() else {
        return Err((
            code::DEAD,
            format!(
                "cannot restart PID {}: no job record store (no HOME)",
                id.pid
            ),
        ));
    };
    let q = quote(path.as_os_str());
    let bytes = match safepath::locate(&path, Purpose::Record)
        .and_then(|f| f.read(records::RECORD_READ_LIMIT))
    {
        Ok(Some(b)) => b,
        Ok(None) | Err(FileError::Sys(nix::errno::Errno::ENOENT)) => {
            return Err((
                code::DEAD,
                format!(
                    "cannot restart PID {}: no job record {q} to restart it from \
                     (started with HUPKIT_NO_RECORD=1?)",
                    id.pid
                ),
            ));
        }
        Err(FileError::Sys(e)) => {
            return Err((
                code::UNKNOWN,
                format!(
                    "cannot read job record {q}: {}",
                    hupkit_common::diag::strerror(e)
                ),
            ));
        }
        Err(e) => return Err((code::UNKNOWN, crate::refusal_text(&path, &e.to_string()))),
    };
    let bad = |why: &str| {
        Err((
            code::UNKNOWN,
            format!("not restarting from job record {q}: {why}"),
        ))
    };
    let Some(rec) = std::str::from_utf8(&bytes).ok().and_then(Record::parse) else {
        return bad("not a valid job record");
    };
    if rec.id != *id {
        return bad(&format!(
            "it records PID {}@{}",
            rec.id.pid, rec.id.starttime
        ));
    }
    if rec.level != Level::Detach {
        return bad(&format!(
            "it records a job of {}, not of detach",
            rec.level.as_str()
        ));
    }
    let me = nix::unistd::geteuid().as_raw();
    match rec.uid {
        Some(uid) if uid == me => {}
        Some(uid) => return bad(&format!("it was written by user {uid}, not by the caller")),
        None => return bad("it records no user (written by an older detach)"),
    }
    if rec.tool_args.is_empty() {
        return bad("it holds no command line to restart (written by an older detach)");
    }
    Ok(rec)
}

/// The stored arguments, parsed as a start.
fn stored_cli(rec: &Record, path_q: &str) -> std::result::Result<Cli, Refusal> {
    let args = std::iter::once(OsString::from("detach")).chain(rec.tool_args.iter().cloned());
    let parsed = crate::cli::command()
        .try_get_matches_from(args)
        .and_then(|m| Cli::from_arg_matches(&m));
    match parsed {
        Ok(cli) if !cli.command.is_empty() && !crate::is_control(&cli) => Ok(cli),
        _ => Err((
            code::UNKNOWN,
            format!("not restarting from job record {path_q}: its command line is not a start"),
        )),
    }
}

/// `--restart`: the code and the line to print once the new daemon runs
/// (`Err`: the new start failed, after the old daemon was stopped).
pub fn restart(target: &Target, schedule: &[Item], diag: &mut Diag) -> Result<(Status, String)> {
    let checked = identity(target).and_then(|id| {
        let rec = trusted_record(&id)?;
        let path = JobId {
            pid: id.pid,
            starttime: id.starttime,
        }
        .path()
        .unwrap_or_default();
        let cli = stored_cli(&rec, &quote(path.as_os_str()))?;
        Ok((id, rec, cli))
    });
    let (id, rec, cli) = match checked {
        Ok(all) => all,
        Err(refusal) => return Ok(refusal),
    };
    let old = if id.liveness() == Liveness::Alive {
        let (stopped, line) = control::stop(target, schedule);
        if stopped != code::OK && stopped != code::DEAD {
            return Ok((stopped, line));
        }
        format!("stopped PID {}", id.pid)
    } else {
        format!("PID {} was not running", id.pid)
    };
    let origin = PathBuf::from(&rec.caller_cwd);
    if !rec.caller_cwd.is_empty() {
        std::env::set_current_dir(&origin).map_err(|e| {
            Error::sys(
                format!("cannot restart in directory {}", quote(origin.as_os_str())),
                crate::errno_of(&e),
                exit::CANCELED,
            )
        })?;
    }
    let new = crate::start_with(&cli, &rec.tool_args, diag)?;
    Ok((
        code::OK,
        format!(
            "restarted: {old}, started PID {} ({})",
            new.pid,
            command_of(&rec)
        ),
    ))
}

/// The recorded command, quoted for a shell.
fn command_of(rec: &Record) -> String {
    hupkit_common::quote::command_line(
        rec.argv
            .iter()
            .map(|a| std::os::unix::ffi::OsStrExt::as_bytes(OsStr::new(a))),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_pidfile_is_nothing_to_restart() {
        let dir = tempfile::tempdir().unwrap();
        let target = Target::Pidfile(dir.path().join("none.pid"));
        let (code, line) = identity(&target).unwrap_err();
        assert_eq!(code, code::DEAD);
        assert!(line.starts_with("cannot restart: no pidfile "), "{line}");
    }
}
