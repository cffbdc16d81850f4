//! `rjobs`: the jobs of a terminal session, as the kernel keeps them, and how far
//! each one is separated from its terminal.
//!
//! One `/proc` scan ([`hupkit_common::jobs::Snapshot`]) per invocation; the
//! views pick a session (the caller's, another terminal's, or all of them),
//! build rows, and print them as a table or as JSON. Every session's table
//! or JSON (`-A`) is written a row at a time through a fixed buffer (`Out`),
//! so that its memory does not grow with the number of jobs; `-l` holds one
//! session's rows (its OUTPUT column is as wide as the session's widest).
//! `--records` lists the job-record store instead ([`hupkit_common::records`]). Every view returns
//! its exit status or an error to [`hupkit_common::cli::main`], which reports it.

pub mod cli;
pub mod explain;
pub mod json;

use std::fmt::Write as _;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use hupkit_common::diag::Diag;
use hupkit_common::exit::{self, Status};
use hupkit_common::identity::Liveness;
use hupkit_common::jobs::{Job, JobSpec, JobState, SessionJobs, Snapshot, Target};
use hupkit_common::logout;
use hupkit_common::output::{self, Sink};
use hupkit_common::proc::{self, ProcState, Stat};
use hupkit_common::quote::quote;
use hupkit_common::records;
use hupkit_common::signal::Disposition;
use hupkit_common::{Context, Error, Result, stdio, text, tty};
use nix::sys::signal::Signal;
use nix::unistd::Pid;

use crate::cli::Cli;
use crate::json::Value;

/// The whole program, for the binary's entry (see its `main.rs` for the
/// start-up): parses `args` (argv\[0\] first), runs, returns the exit status.
#[must_use]
pub fn main(args: Vec<std::ffi::OsString>) -> Status {
    hupkit_common::cli::status::<Cli>(cli::command(), args, exit::USAGE, run)
}

/// One member process, with its separation.
struct Member {
    pid: Pid,
    state: ProcState,
    sighup: &'static str,
    tty_fds: String,
    ctty: String,
    traced: i32,
    /// Where fds 1 and 2 lead.
    stdout: Sink,
    stderr: Sink,
    /// Its cgroup's path (`None`: unreadable).
    cgroup: Option<String>,
    /// What the logout does to it ([`logout::Forecast`]).
    logout: logout::Forecast,
    /// Its command line in the view's form ([`View::json`]): exact (lossy
    /// UTF-8) for JSON, quoted for a shell for text. Read once: a job's
    /// command is made of its members'.
    command: String,
}

/// One job, ready to print.
struct Row {
    /// Its number, mark, group, state and whether it is in the foreground.
    job: Job,
    /// Whether its session has a terminal (a job of a terminal-less session
    /// is no background job: no `&`).
    on_terminal: bool,
    orphaned: bool,
    /// Its command in the view's form, as [`Member::command`].
    command: String,
    members: Vec<Member>,
}

fn member(p: &Stat, session_tty: u64, host: &logout::Host, json: bool) -> Member {
    let status = proc::Status::read(p.pid).ok();
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
    let (cgroup, logout) = match host.forecast_pid(p.pid) {
        Some((cg, f)) => (Some(cg.path), f),
        None => (
            None,
            logout::Forecast {
                fate: logout::Fate::NotReached,
                text: "unknown: its cgroup cannot be read".into(),
            },
        ),
    };
    Member {
        pid: p.pid,
        cgroup,
        logout,
        state: p.state,
        sighup,
        tty_fds,
        ctty: tty::name(p.tty_nr),
        traced: status.map_or(0, |s| s.tracer_pid),
        stdout: output::of(p.pid, 1, p.tty_nr),
        stderr: output::of(p.pid, 2, p.tty_nr),
        command: if json {
            Snapshot::cmdline(p)
        } else {
            Snapshot::cmdline_text(p)
        },
    }
}

/// What a view prints, and so what its rows need.
#[derive(Clone, Copy)]
struct View {
    /// `-l`: the members too.
    long: bool,
    /// `--json`: the exact command (else the quoted one, for text).
    json: bool,
    /// Learn why each stopped job is stopped (a brief ptrace attach to one
    /// member of each).
    probe: bool,
}

/// The controlling terminal of `session`'s jobs: its leader's, else the
/// first of its processes that has one (0: none).
fn session_tty(snap: &Snapshot, session: Pid) -> u64 {
    snap.get(session).map_or_else(
        || {
            snap.procs
                .iter()
                .find(|p| p.session == session && p.tty_nr != 0)
                .map_or(0, |p| p.tty_nr)
        },
        |l| l.tty_nr,
    )
}

/// The row of one job. `host`: logind's settings, read once, and only for
/// `-l` (whose rows have their members).
fn row(
    snap: &Snapshot,
    mut job: Job,
    session_tty: u64,
    host: Option<&logout::Host>,
    view: View,
) -> Row {
    if view.probe {
        snap.probe_stop(&mut job);
    }
    let members: Vec<Member> = host.map_or_else(Vec::new, |host| {
        snap.members(&job)
            .map(|p| member(p, session_tty, host, view.json))
            .collect()
    });
    // Each command line is read from /proc once, in the form printed: with
    // members, the job's command is its heads' (Snapshot::command's rule).
    let command = if host.is_some() {
        let mut command = String::new();
        let heads = snap
            .members(&job)
            .zip(&members)
            .filter(|(p, _)| snap.is_head(&job, p));
        for (i, (_, m)) in heads.enumerate() {
            if i > 0 {
                command.push_str(" | ");
            }
            command.push_str(&m.command);
        }
        command
    } else if view.json {
        snap.command(&job)
    } else {
        snap.command_text(&job)
    };
    Row {
        on_terminal: session_tty != 0,
        orphaned: snap.job_orphaned(&job),
        job,
        command,
        members,
    }
}

/// A session's heading: its terminal and its leader's name.
fn session_head(snap: &Snapshot, sid: Pid) -> (String, String, String) {
    let leader = snap.get(sid);
    let tty = leader.map_or_else(|| "?".into(), |l| tty::name(l.tty_nr));
    let (name, text) = match leader {
        Some(l) => (l.comm.to_string(), l.name()),
        // /proc shows session 0 when the leader is outside our PID namespace.
        None if sid.as_raw() == 0 => (
            "(outside this PID namespace)".into(),
            "(outside this PID namespace)".into(),
        ),
        None => ("(gone)".into(), "(gone)".into()),
    };
    (tty, name, text)
}

/// How wide the OUTPUT column of `-l` is for `jobs`: as wide as its longest
/// entry, so a long path shifts nothing.
fn output_width(jobs: &[Row]) -> usize {
    jobs.iter()
        .flat_map(|j| &j.members)
        .map(|m| output::label(&m.stdout, &m.stderr).chars().count())
        .max()
        .unwrap_or(0)
        .max(6)
}

/// A job's line of the table, `[N]+  PGID    STATE  COMMAND &`, its command
/// written by `command`: straight into `out`, without `core::fmt` (`-A`
/// writes thousands of these; [`text`]).
fn job_line(out: &mut String, job: &Job, on_terminal: bool, command: impl FnOnce(&mut String)) {
    out.push('[');
    text::push_uint(out, job.number as u64);
    out.push(']');
    out.push(job.mark);
    out.push_str("  ");
    text::push_int_left(out, job.pgid.as_raw().into(), 7);
    out.push(' ');
    text::push_left(out, job.state.label(), 22);
    out.push_str("  ");
    command(out);
    if on_terminal && !job.foreground && job.state == JobState::Running {
        out.push_str(" &");
    }
    if job.foreground {
        out.push_str("  (foreground)");
    }
    out.push('\n');
}

/// The table's lines for one job (with `-l`, its members under it).
fn text_job(out: &mut String, j: &Row, long: bool, output_w: usize) {
    job_line(out, &j.job, j.on_terminal, |out| out.push_str(&j.command));
    if long {
        let _ = writeln!(
            out,
            "      {:<7} {:<2} {:<8} {:<8} {:<8} {:<8} {:<7} {:<11} {:<output_w$} COMMAND",
            "PID", "ST", "SIGHUP", "TTY-FDS", "CTTY", "ORPHANED", "TRACED", "LOGOUT", "OUTPUT"
        );
        for m in &j.members {
            let traced = if m.traced == 0 {
                "-".to_string()
            } else {
                m.traced.to_string()
            };
            let _ = writeln!(
                out,
                "      {:<7} {:<2} {:<8} {:<8} {:<8} {:<8} {:<7} {:<11} {:<output_w$} {}",
                m.pid,
                m.state,
                m.sighup,
                m.tty_fds,
                m.ctty,
                if j.orphaned { "yes" } else { "no" },
                traced,
                m.logout.fate.label(),
                output::label(&m.stdout, &m.stderr),
                m.command
            );
        }
    }
}

/// The table of one session's `jobs`, written to `out` as the rows are made
/// (with `-l`, once the session's rows are all made: see [`output_width`]).
fn text_jobs(
    out: &mut Out,
    snap: &Snapshot,
    sid: Pid,
    jobs: impl Iterator<Item = Job>,
    host: Option<&logout::Host>,
    view: View,
) -> Result<()> {
    let session_tty = session_tty(snap, sid);
    if view.long {
        let rows: Vec<Row> = jobs
            .map(|job| row(snap, job, session_tty, host, view))
            .collect();
        let output_w = output_width(&rows);
        for j in &rows {
            text_job(&mut out.buf, j, true, output_w);
            out.spill(false)?;
        }
        return Ok(());
    }
    // Without -l a row needs no more than the job and its command: each
    // line is written straight into the buffer.
    for mut job in jobs {
        if out.closed {
            break;
        }
        if view.probe {
            snap.probe_stop(&mut job);
        }
        job_line(&mut out.buf, &job, session_tty != 0, |out| {
            snap.push_command_text(&job, out);
        });
        out.spill(false)?;
    }
    Ok(())
}

/// Standard output through a fixed buffer, written out whenever it holds
/// [`Out::BUFFER`] bytes or more. A closed pipe (EPIPE) ends the output
/// quietly, as [`print`] does: what follows is dropped.
struct Out {
    buf: String,
    /// The reader has gone.
    closed: bool,
}

impl Out {
    /// How much text is held before it is written.
    const BUFFER: usize = 8192;

    fn new() -> Out {
        Out {
            buf: String::with_capacity(2 * Out::BUFFER),
            closed: false,
        }
    }

    /// Writes out what is held, once it is [`Out::BUFFER`] bytes or more
    /// (whatever it is with `all`).
    fn spill(&mut self, all: bool) -> Result<()> {
        if self.buf.len() < Out::BUFFER && !all {
            return Ok(());
        }
        if !self.closed {
            match stdio::write_all(stdio::STDOUT, self.buf.as_bytes()) {
                Ok(()) => {}
                Err(nix::errno::Errno::EPIPE) => self.closed = true,
                Err(e) => return Err(Error::sys("write error", e, exit::FAILURE)),
            }
        }
        self.buf.clear();
        Ok(())
    }
}

/// A descriptor's sink as JSON: `{"kind":..., "path":..., "lost":...}`.
fn sink_json(sink: &Sink) -> Value {
    Value::Object(vec![
        ("kind", Value::Str(sink.kind().into())),
        ("path", sink.path().map_or(Value::Null, Value::Str)),
        ("lost", Value::Bool(sink.is_lost())),
    ])
}

fn json_jobs(jobs: &[Row], long: bool) -> Value {
    Value::Array(jobs.iter().map(|j| json_job(j, long)).collect())
}

/// One job as JSON (with `-l`, its members).
fn json_job(j: &Row, long: bool) -> Value {
    let mut fields = vec![
        (
            "number",
            Value::Int(i64::try_from(j.job.number).unwrap_or(0)),
        ),
        (
            "current",
            Value::Str(match j.job.mark {
                '+' => "+".into(),
                '-' => "-".into(),
                _ => String::new(),
            }),
        ),
        ("pgid", Value::Int(j.job.pgid.as_raw().into())),
        ("state", Value::Str(j.job.state.to_string())),
        ("foreground", Value::Bool(j.job.foreground)),
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
                            ("stdout", sink_json(&m.stdout)),
                            ("stderr", sink_json(&m.stderr)),
                            (
                                "logout",
                                Value::Object(vec![
                                    ("fate", Value::Str(m.logout.fate.label().into())),
                                    ("cgroup", m.cgroup.clone().map_or(Value::Null, Value::Str)),
                                    ("verdict", Value::Str(m.logout.text.clone())),
                                ]),
                            ),
                            ("command", Value::Str(m.command.clone())),
                        ])
                    })
                    .collect(),
            ),
        ));
    }
    Value::Object(fields)
}

/// Writes `out` to standard output; a closed pipe is a quiet success.
fn print(out: &str) -> Result<Status> {
    match stdio::write_all(stdio::STDOUT, out.as_bytes()) {
        Ok(()) | Err(nix::errno::Errno::EPIPE) => Ok(exit::SUCCESS),
        Err(e) => Err(Error::sys("write error", e, exit::FAILURE)),
    }
}

/// The session whose controlling terminal is `path` (`pts/3` means `/dev/pts/3`).
///
/// A device number names one terminal per devpts instance: a container's
/// `pts/0` has the number of ours. So each session with that number is checked
/// through its members' descriptors ([`tty::instance_held`]): one that holds
/// the terminal of `path`'s instance is the one; one that holds another
/// instance's is not; one whose descriptors do not tell is taken only when it
/// is the only candidate and no other instance is in sight, else the name is
/// ambiguous.
fn session_of_tty(snap: &Snapshot, path: &Path) -> Result<Pid> {
    use std::os::unix::fs::MetadataExt;
    let path = if path.is_absolute() {
        path.to_path_buf()
    } else {
        PathBuf::from("/dev").join(path)
    };
    let quoted = || quote(path.as_os_str());
    let n = tty::number(&path).context(exit::FAILURE, quoted)?;
    let want = std::fs::metadata(&path)
        .context(exit::FAILURE, quoted)?
        .dev();
    // Sessions in start order of their first process on the terminal, leaders first.
    let mut sessions: Vec<Pid> = Vec::new();
    for p in snap.procs.iter().filter(|p| p.tty_nr == n) {
        if !sessions.contains(&p.session) {
            sessions.push(p.session);
        }
    }
    let (mut same, mut unknown, mut other) = (Vec::new(), Vec::new(), false);
    for sid in sessions {
        let mut seen = None;
        let members = snap
            .procs
            .iter()
            .filter(|p| p.session == sid && p.tty_nr == n);
        for p in members {
            // Unreadable (another user's), or not held open: it does not tell.
            if let Ok(Some(dev)) = tty::instance_held(p.pid, n) {
                seen = Some(dev == want);
                if dev == want {
                    break;
                }
            }
        }
        match seen {
            Some(true) => same.push(sid),
            Some(false) => other = true,
            None => unknown.push(sid),
        }
    }
    match (same.as_slice(), unknown.as_slice(), other) {
        ([sid, ..], _, _) | ([], [sid], false) => Ok(*sid),
        ([], [], _) => Err(Error::failed(
            format!("no session has {} as its controlling terminal", quoted()),
            exit::FAILURE,
        )),
        ([], _, _) => Err(Error::failed(
            format!(
                "{}: ambiguous terminal name: sessions of other terminals (another devpts instance) have its number",
                quoted()
            ),
            exit::FAILURE,
        )),
    }
}

/// Runs the view `cli` asks for.
pub fn run(cli: &Cli, diag: &mut Diag) -> Result<Status> {
    if cli.records {
        return run_records(cli, diag);
    }
    if let Some(target) = &cli.explain {
        return run_explain(target);
    }
    let snap = Snapshot::take().context(exit::FAILURE, || "cannot read /proc")?;
    // rjobs' own group is no job, in any view; nor is a session leader's.
    let own = [nix::unistd::getpgrp()];
    // -A does not attach to every stopped process of the machine to learn why it
    // is stopped: its stopped jobs show as plain Stopped.
    let view = View {
        long: cli.long,
        json: cli.json,
        probe: !cli.all_sessions,
    };
    // logind's settings are read once, and only for -l.
    let host = cli.long.then(logout::Host::this);
    let host = host.as_ref();
    if cli.all_sessions && !cli.json {
        let mut out = Out::new();
        for (sid, jobs) in snap.all_jobs(&own) {
            let (tty, _, leader) = session_head(&snap, sid);
            let _ = writeln!(out.buf, "session {sid} ({tty}, leader {leader})");
            text_jobs(&mut out, &snap, sid, jobs, host, view)?;
            if out.closed {
                break;
            }
        }
        out.spill(true)?;
        return Ok(exit::SUCCESS);
    }
    if cli.all_sessions {
        return json_all(&snap, &own, host, view);
    }
    let sid = match &cli.tty {
        Some(t) => session_of_tty(&snap, t)?,
        None => nix::unistd::getsid(None).unwrap_or_else(|_| nix::unistd::getpid()),
    };
    let jobs = snap.jobs(sid, &own, false);
    if cli.json {
        let session_tty = session_tty(&snap, sid);
        let rows: Vec<Row> = jobs
            .into_iter()
            .map(|job| row(&snap, job, session_tty, host, view))
            .collect();
        let mut out = String::new();
        json_jobs(&rows, cli.long).write(&mut out);
        out.push('\n');
        return print(&out);
    }
    if jobs.is_empty() {
        return print(&match &cli.tty {
            None => empty_note("no jobs in this session"),
            Some(_) => empty_note(&format!(
                "no jobs in the session of {}",
                session_head(&snap, sid).0
            )),
        });
    }
    let mut out = Out::new();
    text_jobs(&mut out, &snap, sid, jobs.into_iter(), host, view)?;
    out.spill(true)?;
    Ok(exit::SUCCESS)
}

/// What an empty listing prints: one line saying so on a terminal, where a
/// person reads it; nothing in a pipe, where a script counts lines.
fn empty_note(what: &str) -> String {
    if stdio::kind(stdio::STDOUT) == stdio::StreamKind::Tty {
        format!("rjobs: {what}\n")
    } else {
        String::new()
    }
}

/// `-A --json`: the array of every session, each with its array of jobs,
/// written through [`Out`] a job at a time, as the table is: the text is
/// the same as the whole would be, written in one piece.
fn json_all(
    snap: &Snapshot,
    own: &[Pid],
    host: Option<&logout::Host>,
    view: View,
) -> Result<Status> {
    let mut out = Out::new();
    out.buf.push('[');
    for (n, (sid, jobs)) in snap.all_jobs(own).enumerate() {
        if n > 0 {
            out.buf.push(',');
        }
        let (tty, leader, _) = session_head(snap, sid);
        // The session's object with an empty job list, left open before `]}`.
        let head = Value::Object(vec![
            ("session", Value::Int(sid.as_raw().into())),
            ("tty", Value::Str(tty)),
            ("leader", Value::Str(leader)),
            ("jobs", Value::Array(Vec::new())),
        ]);
        head.write(&mut out.buf);
        out.buf.truncate(out.buf.len() - "]}".len());
        let session_tty = session_tty(snap, sid);
        for (i, job) in jobs.enumerate() {
            if out.closed {
                return Ok(exit::SUCCESS);
            }
            if i > 0 {
                out.buf.push(',');
            }
            json_job(&row(snap, job, session_tty, host, view), view.long).write(&mut out.buf);
            out.spill(false)?;
        }
        out.buf.push_str("]}");
    }
    out.buf.push_str("]\n");
    out.spill(true)?;
    Ok(exit::SUCCESS)
}

/// `--explain TARGET`.
fn run_explain(target: &str) -> Result<Status> {
    let spec = JobSpec::parse(target)?;
    let view = SessionJobs::of_caller().context(exit::FAILURE, || "cannot read /proc")?;
    let p = match view.resolve(&spec) {
        Ok(Target::Job(job)) => match spec {
            JobSpec::Pid(pid, _) => view.snap.get(pid).cloned(),
            _ => view.snap.members(job).next().cloned(),
        },
        Ok(Target::Process(p)) => Some(p),
        Err(e) => match spec {
            // Not in the snapshot (a session-less init, a kernel thread): read it directly.
            JobSpec::Pid(pid, None) if Stat::read(pid).is_ok() => Stat::read(pid).ok(),
            _ => return Err(e.into()),
        },
    };
    match p {
        Some(p) => print(&explain::explain(&view.snap, &p)),
        None => Err(Error::failed(
            format!("{target}: no such process"),
            exit::FAILURE,
        )),
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
            Ok(st) if st.state.is_stopped() => "stopped",
            _ => "running",
        },
    }
}

/// `--records` (and `--prune`): the job-record store. A corrupt record is
/// skipped with a word; a record that cannot be pruned is an error.
fn run_records(cli: &Cli, diag: &mut Diag) -> Result<Status> {
    let Some(dir) = records::dir() else {
        return print(&if cli.json {
            "[]\n".to_string()
        } else {
            empty_note("no job records")
        });
    };
    let mut rows = Vec::new();
    let mut pruned = 0usize;
    let live = live_pids();
    for entry in records::list(&dir) {
        match entry {
            records::Entry::Corrupt(path, why) => {
                diag.line(&format!("skipping {}: {why}", quote(path.as_os_str())));
            }
            records::Entry::Record(path, r) => {
                let state = record_state(&r, &live);
                if cli.prune && state == "gone" {
                    if let Err(e) = std::fs::remove_file(&path).context(exit::FAILURE, || {
                        format!("cannot remove {}", quote(path.as_os_str()))
                    }) {
                        diag.report(&e);
                    } else {
                        pruned += 1;
                    }
                    continue;
                }
                rows.push((r, state));
            }
        }
    }
    let out = if cli.json {
        records_json(&rows)
    } else if rows.is_empty() && pruned > 0 {
        empty_note(&format!("no job records left ({pruned} pruned)"))
    } else if rows.is_empty() {
        empty_note("no job records")
    } else {
        records_text(&rows)
    };
    print(&out)?;
    Ok(diag.status())
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
