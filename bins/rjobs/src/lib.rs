//! `rjobs`: the jobs of a terminal session, as the kernel keeps them, and how far
//! each one is separated from its terminal.
//!
//! One `/proc` scan ([`hupkit_common::jobs::Snapshot`]) per invocation; the
//! views pick a session (the caller's, another terminal's, or all of them),
//! build rows, and print them as a table or as JSON. `--records` lists the
//! job-record store instead ([`hupkit_common::records`]).

pub mod cli;
pub mod explain;
pub mod json;

use std::ffi::OsStr;
use std::fmt::Write as _;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use hupkit_common::diag::Diag;
use hupkit_common::identity::Liveness;
use hupkit_common::jobs::{Job, JobState, Snapshot};
use hupkit_common::proc::{Stat, Status};
use hupkit_common::quote::quote;
use hupkit_common::records;
use hupkit_common::signal::Disposition;
use hupkit_common::{stdio, tty};
use nix::sys::signal::Signal;
use nix::unistd::Pid;

use crate::cli::Cli;
use crate::json::Value;

/// Exit statuses.
pub mod code {
    /// Listed.
    pub const OK: i32 = 0;
    /// No such session, or a record could not be removed.
    pub const FAILED: i32 = 1;
    /// Bad usage.
    pub const USAGE: i32 = 2;
}

/// The whole program, for the binary's entry (see its `main.rs` for the
/// start-up): parses `args` (argv\[0\] first), runs, returns the exit status.
#[must_use]
pub fn main(args: Vec<std::ffi::OsString>) -> hupkit_common::exit::Status {
    hupkit_common::cli::status::<Cli>(
        cli::command(),
        args,
        hupkit_common::exit::USAGE,
        |cli, _| Ok(hupkit_common::exit::Status::new(run(cli))),
    )
}

/// One member process, with its separation.
struct Member {
    pid: Pid,
    state: char,
    sighup: &'static str,
    tty_fds: String,
    ctty: String,
    traced: i32,
    /// Exact (lossy UTF-8), for JSON.
    command: String,
    /// Quoted for a shell, for text.
    command_text: String,
}

/// One job, ready to print.
struct Row {
    number: usize,
    mark: char,
    pgid: Pid,
    state: JobState,
    foreground: bool,
    orphaned: bool,
    /// Exact (lossy UTF-8), for JSON.
    command: String,
    /// Quoted for a shell, for text.
    command_text: String,
    members: Vec<Member>,
}

/// One session, ready to print.
struct Session {
    sid: Pid,
    tty: String,
    /// The leader's name, for JSON.
    leader: String,
    /// The leader's name quoted for a shell, for text.
    leader_text: String,
    jobs: Vec<Row>,
}

fn member(p: &Stat, session_tty: u64) -> Member {
    let status = Status::read(p.pid).ok();
    let sighup = match status.as_ref().map(|s| s.disposition(Signal::SIGHUP)) {
        Some(Disposition::Default) => "default",
        Some(Disposition::Ignore) => "ignored",
        Some(Disposition::Caught) => "caught",
        None => "?",
    };
    let mut fds = Vec::new();
    let mut unknown = false;
    for fd in 0..3 {
        match tty::number(Path::new(&format!("/proc/{}/fd/{fd}", p.pid))) {
            Ok(n) if n == session_tty && session_tty != 0 => fds.push(fd.to_string()),
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => unknown = true,
            _ => {}
        }
    }
    let tty_fds = if unknown {
        "?".to_string()
    } else if fds.is_empty() {
        "-".to_string()
    } else {
        fds.join(",")
    };
    Member {
        pid: p.pid,
        state: p.state,
        sighup,
        tty_fds,
        ctty: tty::name(p.tty_nr),
        traced: status.map_or(0, |s| s.tracer_pid),
        command: Snapshot::cmdline(p),
        command_text: Snapshot::cmdline_text(p),
    }
}

/// The rows of one session's jobs; `probe`: learn why each stopped job is
/// stopped (a brief ptrace attach to one member of each).
fn rows(
    snap: &Snapshot,
    session: Pid,
    exclude: &[Pid],
    with_leader: bool,
    long: bool,
    probe: bool,
) -> Vec<Row> {
    let session_tty = snap.get(session).map_or_else(
        || {
            snap.procs
                .iter()
                .find(|p| p.session == session && p.tty_nr != 0)
                .map_or(0, |p| p.tty_nr)
        },
        |l| l.tty_nr,
    );
    let mut jobs: Vec<Job> = snap.jobs(session, exclude, with_leader);
    if probe {
        for job in &mut jobs {
            snap.probe_stop(job);
        }
    }
    jobs.iter()
        .map(|job| Row {
            number: job.number,
            mark: job.mark,
            pgid: job.pgid,
            state: job.state,
            foreground: job.foreground,
            orphaned: snap.orphaned(session, job.pgid),
            command: snap.command(job),
            command_text: snap.command_text(job),
            members: if long {
                job.members
                    .iter()
                    .map(|&i| member(&snap.procs[i], session_tty))
                    .collect()
            } else {
                Vec::new()
            },
        })
        .collect()
}

fn session_of(
    snap: &Snapshot,
    sid: Pid,
    exclude: &[Pid],
    with_leader: bool,
    long: bool,
    probe: bool,
) -> Session {
    let leader = snap.get(sid);
    Session {
        sid,
        tty: leader.map_or_else(|| "?".into(), |l| tty::name(l.tty_nr)),
        leader: match leader {
            Some(l) => l.comm.clone(),
            // /proc shows session 0 when the leader is outside our PID namespace.
            None if sid.as_raw() == 0 => "(outside this PID namespace)".into(),
            None => "(gone)".into(),
        },
        leader_text: match leader {
            Some(l) => l.name(),
            None if sid.as_raw() == 0 => "(outside this PID namespace)".into(),
            None => "(gone)".into(),
        },
        jobs: rows(snap, sid, exclude, with_leader, long, probe),
    }
}

fn text_jobs(out: &mut String, jobs: &[Row], long: bool) {
    for j in jobs {
        let amp = if j.foreground || j.state != JobState::Running {
            ""
        } else {
            " &"
        };
        let fg = if j.foreground { "  (foreground)" } else { "" };
        let _ = writeln!(
            out,
            "[{}]{}  {:<7} {:<22}  {}{amp}{fg}",
            j.number,
            j.mark,
            j.pgid,
            j.state.to_string(),
            j.command_text
        );
        if long {
            let _ = writeln!(
                out,
                "      {:<7} {:<2} {:<8} {:<8} {:<8} {:<8} {:<7} COMMAND",
                "PID", "ST", "SIGHUP", "TTY-FDS", "CTTY", "ORPHANED", "TRACED"
            );
            for m in &j.members {
                let traced = if m.traced == 0 {
                    "-".to_string()
                } else {
                    m.traced.to_string()
                };
                let _ = writeln!(
                    out,
                    "      {:<7} {:<2} {:<8} {:<8} {:<8} {:<8} {:<7} {}",
                    m.pid,
                    m.state,
                    m.sighup,
                    m.tty_fds,
                    m.ctty,
                    if j.orphaned { "yes" } else { "no" },
                    traced,
                    m.command_text
                );
            }
        }
    }
}

fn json_jobs(jobs: &[Row], long: bool) -> Value {
    Value::Array(
        jobs.iter()
            .map(|j| {
                let mut fields = vec![
                    ("number", Value::Int(i64::try_from(j.number).unwrap_or(0))),
                    (
                        "current",
                        Value::Str(match j.mark {
                            '+' => "+".into(),
                            '-' => "-".into(),
                            _ => String::new(),
                        }),
                    ),
                    ("pgid", Value::Int(j.pgid.as_raw().into())),
                    ("state", Value::Str(j.state.to_string())),
                    ("foreground", Value::Bool(j.foreground)),
                    ("orphaned", Value::Bool(j.orphaned)),
                    ("command", Value::Str(j.command.clone())),
                ];
                if long {
                    fields.push((
                        "members",
                        Value::Array(
                            j.members
                                .iter()
                                .map(|m| {
                                    Value::Object(vec![
                                        ("pid", Value::Int(m.pid.as_raw().into())),
                                        ("state", Value::Str(m.state.to_string())),
                                        ("sighup", Value::Str(m.sighup.into())),
                                        ("tty_fds", Value::Str(m.tty_fds.clone())),
                                        ("ctty", Value::Str(m.ctty.clone())),
                                        (
                                            "tracer",
                                            if m.traced == 0 {
                                                Value::Null
                                            } else {
                                                Value::Int(m.traced.into())
                                            },
                                        ),
                                        ("command", Value::Str(m.command.clone())),
                                    ])
                                })
                                .collect(),
                        ),
                    ));
                }
                Value::Object(fields)
            })
            .collect(),
    )
}

fn print(out: &str) -> i32 {
    match stdio::write_all(stdio::STDOUT, out.as_bytes()) {
        Ok(()) | Err(nix::errno::Errno::EPIPE) => code::OK,
        Err(e) => {
            Diag::new(OsStr::new("rjobs")).error_errno("write error", e);
            code::FAILED
        }
    }
}

/// The session whose controlling terminal is `path` (`pts/3` means `/dev/pts/3`).
fn session_of_tty(snap: &Snapshot, path: &Path) -> Result<Pid, String> {
    let path = if path.is_absolute() {
        path.to_path_buf()
    } else {
        PathBuf::from("/dev").join(path)
    };
    let n = tty::number(&path).map_err(|e| {
        format!(
            "{}: {}",
            quote(path.as_os_str()),
            hupkit_common::diag::strerror(nix::errno::Errno::from_raw(
                e.raw_os_error().unwrap_or(5)
            ))
        )
    })?;
    snap.procs
        .iter()
        .find(|p| p.tty_nr == n && p.pid == p.session)
        .or_else(|| snap.procs.iter().find(|p| p.tty_nr == n))
        .map(|p| p.session)
        .ok_or_else(|| {
            format!(
                "no session has {} as its controlling terminal",
                quote(path.as_os_str())
            )
        })
}

/// Runs the view `cli` asks for.
#[must_use]
pub fn run(cli: &Cli) -> i32 {
    let mut diag = Diag::new(OsStr::new("rjobs"));
    if cli.records {
        return run_records(cli, &mut diag);
    }
    if let Some(target) = &cli.explain {
        return run_explain(target, &mut diag);
    }
    let snap = match Snapshot::take() {
        Ok(s) => s,
        Err(e) => {
            diag.error(&format!("cannot read /proc: {e}"));
            return code::FAILED;
        }
    };
    // -A does not attach to every stopped process of the machine to learn why it
    // is stopped: its stopped jobs show as plain Stopped.
    let sessions: Vec<Session> = if cli.all_sessions {
        snap.sessions()
            .into_iter()
            .map(|sid| session_of(&snap, sid, &[], true, cli.long, false))
            .collect()
    } else {
        let sid = match &cli.tty {
            Some(t) => match session_of_tty(&snap, t) {
                Ok(sid) => sid,
                Err(msg) => {
                    diag.error(&msg);
                    return code::FAILED;
                }
            },
            None => nix::unistd::getsid(None).unwrap_or_else(|_| nix::unistd::getpid()),
        };
        vec![session_of(
            &snap,
            sid,
            &[nix::unistd::getpgrp()],
            false,
            cli.long,
            true,
        )]
    };
    let mut out = String::new();
    if cli.json {
        let v = if cli.all_sessions {
            Value::Array(
                sessions
                    .iter()
                    .map(|s| {
                        Value::Object(vec![
                            ("session", Value::Int(s.sid.as_raw().into())),
                            ("tty", Value::Str(s.tty.clone())),
                            ("leader", Value::Str(s.leader.clone())),
                            ("jobs", json_jobs(&s.jobs, cli.long)),
                        ])
                    })
                    .collect(),
            )
        } else {
            json_jobs(&sessions[0].jobs, cli.long)
        };
        v.write(&mut out);
        out.push('\n');
    } else if cli.all_sessions {
        for s in &sessions {
            let _ = writeln!(
                out,
                "session {} ({}, leader {})",
                s.sid, s.tty, s.leader_text
            );
            text_jobs(&mut out, &s.jobs, cli.long);
        }
    } else {
        text_jobs(&mut out, &sessions[0].jobs, cli.long);
    }
    print(&out)
}

/// `--explain TARGET`.
fn run_explain(target: &str, diag: &mut Diag) -> i32 {
    let spec = match hupkit_common::jobs::JobSpec::parse(target) {
        Ok(s) => s,
        Err(msg) => {
            diag.error(&msg);
            return code::USAGE;
        }
    };
    let snap = match Snapshot::take() {
        Ok(s) => s,
        Err(e) => {
            diag.error(&format!("cannot read /proc: {e}"));
            return code::FAILED;
        }
    };
    let session = nix::unistd::getsid(None).unwrap_or_else(|_| nix::unistd::getpid());
    let jobs = snap.jobs(session, &[nix::unistd::getpgrp()], false);
    let p = match snap.resolve(&spec, &jobs) {
        Ok(hupkit_common::jobs::Target::Job(job)) => match spec {
            hupkit_common::jobs::JobSpec::Pid(pid, _) => snap.get(pid).cloned(),
            _ => job.members.first().map(|&i| snap.procs[i].clone()),
        },
        Ok(hupkit_common::jobs::Target::Process(p)) => Some(p),
        Err(msg) => match spec {
            // Not in the snapshot (a session-less init, a kernel thread): read it directly.
            hupkit_common::jobs::JobSpec::Pid(pid, None) if Stat::read(pid).is_ok() => {
                Stat::read(pid).ok()
            }
            _ => {
                diag.error(&msg);
                return code::FAILED;
            }
        },
    };
    if let Some(p) = p {
        print(&explain::explain(&snap, &p))
    } else {
        diag.error(&format!("{target}: no such process"));
        code::FAILED
    }
}

/// `[[dd-]hh:]mm:ss`, like `ps -o etime`.
fn elapsed(secs: i64) -> String {
    let secs = secs.max(0);
    let (d, h, m, s) = (secs / 86400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    if d > 0 {
        format!("{d}-{h:02}:{m:02}:{s:02}")
    } else if h > 0 {
        format!("{h:02}:{m:02}:{s:02}")
    } else {
        format!("{m:02}:{s:02}")
    }
}

/// The PIDs that exist now: one listing of /proc, so that records of gone
/// processes cost no further system call.
fn live_pids() -> std::collections::HashSet<i32> {
    std::fs::read_dir("/proc")
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse().ok()))
                .collect()
        })
        .unwrap_or_default()
}

fn record_state(r: &records::Record, live: &std::collections::HashSet<i32>) -> &'static str {
    if !live.contains(&r.id.pid.as_raw()) {
        return "gone";
    }
    match r.id.liveness() {
        Liveness::Gone => "gone",
        Liveness::Alive => match Stat::read(r.id.pid) {
            Ok(st) if matches!(st.state, 'T' | 't') => "stopped",
            _ => "running",
        },
    }
}

fn run_records(cli: &Cli, diag: &mut Diag) -> i32 {
    let Some(dir) = records::dir() else {
        return print(if cli.json { "[]\n" } else { "" });
    };
    let mut status = code::OK;
    let mut rows = Vec::new();
    let live = live_pids();
    for entry in records::list(&dir) {
        match entry {
            records::Entry::Corrupt(path, why) => {
                diag.error(&format!("skipping {}: {why}", quote(path.as_os_str())));
            }
            records::Entry::Record(path, r) => {
                let state = record_state(&r, &live);
                if cli.prune && state == "gone" {
                    if let Err(e) = std::fs::remove_file(&path) {
                        diag.error(&format!("cannot remove {}: {e}", quote(path.as_os_str())));
                        status = code::FAILED;
                    }
                    continue;
                }
                rows.push((r, state));
            }
        }
    }
    let out = if cli.json {
        records_json(&rows)
    } else {
        records_text(&rows)
    };
    let printed = print(&out);
    if printed == code::OK { status } else { printed }
}

fn records_json(rows: &[(records::Record, &'static str)]) -> String {
    let v = Value::Array(
        rows.iter()
            .map(|(r, state)| {
                let argv: Vec<Value> = r
                    .argv
                    .iter()
                    .map(|a| Value::Str(a.to_string_lossy().into_owned()))
                    .collect();
                Value::Object(vec![
                    ("pid", Value::Int(r.id.pid.as_raw().into())),
                    (
                        "starttime",
                        Value::Int(i64::try_from(r.id.starttime).unwrap_or(-1)),
                    ),
                    ("state", Value::Str((*state).into())),
                    ("when", Value::Str(r.when.clone())),
                    ("started", Value::Str(r.started().to_string())),
                    ("level", Value::Str(r.level.as_str().into())),
                    ("host", Value::Str(r.host.clone())),
                    ("cwd", Value::Str(r.cwd.to_string_lossy().into_owned())),
                    ("tty", Value::Str(r.tty.to_string_lossy().into_owned())),
                    (
                        "output",
                        Value::Str(r.output.to_string_lossy().into_owned()),
                    ),
                    (
                        "pidfile",
                        Value::Str(r.pidfile.to_string_lossy().into_owned()),
                    ),
                    ("argv", Value::Array(argv)),
                ])
            })
            .collect(),
    );
    let mut out = String::new();
    v.write(&mut out);
    out.push('\n');
    out
}

/// The `--records` table. STARTED and ELAPSED are the job's (its process's
/// start time); the ID and OUTPUT columns are as wide as their longest entry,
/// so a long output path never shifts the columns after it.
fn records_text(rows: &[(records::Record, &'static str)]) -> String {
    use chrono::{Datelike, Timelike};
    let now = chrono::Local::now().fixed_offset();
    let mut out = String::with_capacity(rows.len() * 120);
    if rows.is_empty() {
        return out;
    }
    let ids: Vec<String> = rows
        .iter()
        .map(|(r, _)| format!("{}@{}", r.id.pid, r.id.starttime))
        .collect();
    let outputs: Vec<String> = rows
        .iter()
        .map(|(r, _)| {
            if r.output.is_empty() {
                "-".into()
            } else {
                hupkit_common::quote::word(r.output.as_bytes())
            }
        })
        .collect();
    let width = |col: &[String], min: usize| {
        col.iter()
            .map(|c| c.chars().count())
            .max()
            .unwrap_or(0)
            .max(min)
    };
    let (id_w, out_w) = (width(&ids, 20), width(&outputs, 24));
    let _ = writeln!(
        out,
        "{:<id_w$} {:<8} {:<19} {:>11} {:<6} {:<out_w$} COMMAND",
        "ID", "STATE", "STARTED", "ELAPSED", "LEVEL", "OUTPUT"
    );
    let mut started = String::with_capacity(20);
    for (((r, state), id), output) in rows.iter().zip(&ids).zip(&outputs) {
        started.clear();
        let when = chrono::DateTime::parse_from_rfc3339(r.started()).ok();
        let age = if let Some(w) = when {
            let l = w.with_timezone(&chrono::Local);
            let _ = write!(
                started,
                "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
                l.year(),
                l.month(),
                l.day(),
                l.hour(),
                l.minute(),
                l.second()
            );
            elapsed((now - w).num_seconds())
        } else {
            started.push_str(r.started());
            "?".to_string()
        };
        // (Padding counts characters, as the widths do.)
        let _ = write!(
            out,
            "{id:<id_w$} {state:<8} {started:<19} {age:>11} {:<6} {output:<out_w$} ",
            r.level.as_str()
        );
        out.push_str(&hupkit_common::quote::command_line(
            r.argv.iter().map(|a| a.as_bytes()),
        ));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::elapsed;

    #[test]
    fn etime_format() {
        assert_eq!(elapsed(5), "00:05");
        assert_eq!(elapsed(3661), "01:01:01");
        assert_eq!(elapsed(90061), "1-01:01:01");
        assert_eq!(elapsed(-3), "00:00");
    }
}
