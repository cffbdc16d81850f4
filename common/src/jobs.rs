//! Jobs as the kernel sees them: process groups of a session, from one `/proc` scan.
//!
//! A shell's job table lives in the shell; what the kernel keeps is the process
//! groups of each session and the terminal's foreground group. hupkit's job-control
//! tools work from that, so they see every job of a session, including jobs the
//! shell has forgotten (`disown`), from any shell.
//!
//! - [`Snapshot::take`] reads `/proc/*/stat` once.
//! - [`Snapshot::jobs`] groups a session's processes by process group, except
//!   the session leader's group (the shell) and the caller's own, numbered by
//!   start order: `%1` is the oldest.
//! - [`JobSpec`] parses `%N`, `%+`, `%%`, `%`, `%-`, `%name`, `%?text`, `PID`,
//!   `PID@STARTTIME`, and [`Snapshot::resolve`] finds what one names.
//!
//! Differences with a shell's own numbering are documented in rjobs(1): the
//! shell numbers jobs as it starts them and forgets finished ones; here the
//! numbers are the order of the live groups, and the current job (`%+`) is the
//! most recently started stopped job (the kernel does not record when a job
//! stopped), else the most recently started one.

use std::fmt;

use nix::sys::signal::Signal;
use nix::unistd::Pid;

use crate::error::Error;
use crate::exit;
use crate::proc::{ProcDir, ProcState, Stat};

/// Every process, as read once from `/proc`.
#[derive(Debug)]
pub struct Snapshot {
    /// One `stat` per process (kernel threads excluded), oldest first.
    pub procs: Vec<Stat>,
    /// PID to index into `procs`.
    index: std::collections::HashMap<i32, usize>,
    /// The open `/proc` the scan read through, kept for the command lines
    /// that views read after it ([`Snapshot::command`]).
    dir: std::cell::RefCell<ProcDir>,
}

/// What a job is doing, as `jobs` says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobState {
    /// At least one member is not stopped.
    Running,
    /// Every live member is stopped; the signal, when it could be learned.
    Stopped(Option<Signal>),
    /// Every member has exited (zombies not yet reaped).
    Done,
}

impl JobState {
    /// The state of a group from its members': `Done` when none is alive,
    /// `Stopped` (signal not probed) when every live one is stopped, else `Running`.
    pub fn of<'s>(members: impl IntoIterator<Item = &'s Stat>) -> JobState {
        let mut live = false;
        for p in members {
            if p.state.has_exited() {
                continue;
            }
            if !p.state.is_stopped() {
                return JobState::Running;
            }
            live = true;
        }
        if live {
            JobState::Stopped(None)
        } else {
            JobState::Done
        }
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            JobState::Running => "Running",
            JobState::Stopped(Some(Signal::SIGSTOP)) => "Stopped (signal)",
            JobState::Stopped(Some(Signal::SIGTTIN)) => "Stopped (tty input)",
            JobState::Stopped(Some(Signal::SIGTTOU)) => "Stopped (tty output)",
            JobState::Stopped(_) => "Stopped",
            JobState::Done => "Done",
        })
    }
}

/// One job: a process group of a session.
#[derive(Debug, Clone)]
pub struct Job {
    /// `%N`: 1 for the oldest job of the view.
    pub number: usize,
    /// The process group ID.
    pub pgid: Pid,
    /// The session ID.
    pub session: Pid,
    /// Members, oldest first (indices into [`Snapshot::procs`]).
    pub members: Vec<usize>,
    /// Aggregate state (stop signal not yet probed: see [`Snapshot::probe_stop`]).
    pub state: JobState,
    /// Whether it is its terminal's foreground group.
    pub foreground: bool,
    /// `+` (current), `-` (previous) or ` `.
    pub mark: char,
}

impl Snapshot {
    /// Reads `/proc/*/stat` for every process; processes that vanish meanwhile
    /// and kernel threads are skipped. Session 0 is kept: it is what a process
    /// shows when its session's leader is outside our PID namespace (a
    /// container, a CI runner), and those processes are as real as any.
    ///
    /// Each `stat` is read relative to one open `/proc` into one reused buffer
    /// ([`ProcDir`]): an `openat`, a `read` and a `close` per process, and no
    /// allocation but the [`Stat`] itself.
    pub fn take() -> std::io::Result<Snapshot> {
        use std::os::unix::ffi::OsStrExt;
        let mut dir = ProcDir::open()?;
        let mut procs = Vec::new();
        for entry in std::fs::read_dir("/proc")? {
            let Ok(entry) = entry else { continue };
            let name = entry.file_name();
            let name = name.as_bytes();
            if name.is_empty() || !name.iter().all(u8::is_ascii_digit) {
                continue;
            }
            let Some(pid) = std::str::from_utf8(name).ok().and_then(|s| s.parse().ok()) else {
                continue;
            };
            let Ok(raw) = dir.read(Pid::from_raw(pid), "stat") else {
                continue;
            };
            if let Ok(st) = Stat::parse(raw) {
                if !st.is_kernel_thread() {
                    procs.push(st);
                }
            }
        }
        procs.sort_unstable_by_key(|p| (p.starttime, p.pid.as_raw()));
        let mut index = std::collections::HashMap::with_capacity(procs.len());
        index.extend(procs.iter().enumerate().map(|(i, p)| (p.pid.as_raw(), i)));
        Ok(Snapshot {
            procs,
            index,
            dir: std::cell::RefCell::new(dir),
        })
    }

    /// The process `pid`, if present.
    #[must_use]
    pub fn get(&self, pid: Pid) -> Option<&Stat> {
        self.index.get(&pid.as_raw()).map(|&i| &self.procs[i])
    }

    /// The sessions present, oldest leader first.
    #[must_use]
    pub fn sessions(&self) -> Vec<Pid> {
        let mut known = std::collections::HashSet::new();
        self.procs
            .iter()
            .filter(|p| known.insert(p.session))
            .map(|p| p.session)
            .collect()
    }

    /// Every session's jobs ([`Snapshot::jobs`] of each, leaders' groups and
    /// `exclude` left out), sessions oldest leader first: one pass over the
    /// processes for all sessions, not one per session.
    #[must_use]
    pub fn all_jobs(&self, exclude: &[Pid]) -> Vec<(Pid, Vec<Job>)> {
        let mut slot: std::collections::HashMap<Pid, usize> = std::collections::HashMap::new();
        let mut members: Vec<(Pid, Vec<usize>)> = Vec::new();
        for (i, p) in self.procs.iter().enumerate() {
            let s = *slot.entry(p.session).or_insert_with(|| {
                members.push((p.session, Vec::new()));
                members.len() - 1
            });
            members[s].1.push(i);
        }
        members
            .into_iter()
            .map(|(sid, m)| (sid, self.jobs_among(sid, m.into_iter(), exclude, false)))
            .collect()
    }

    /// The jobs of `session`, leaving out the groups in `exclude` and, unless
    /// `with_leader`, the session leader's group; numbered by start order, with
    /// `+`/`-` marks.
    #[must_use]
    pub fn jobs(&self, session: Pid, exclude: &[Pid], with_leader: bool) -> Vec<Job> {
        let members = (0..self.procs.len()).filter(|&i| self.procs[i].session == session);
        self.jobs_among(session, members, exclude, with_leader)
    }

    /// [`Snapshot::jobs`] of `session`, whose processes are `members`
    /// (indices into `procs`, in order).
    fn jobs_among(
        &self,
        session: Pid,
        members: impl Iterator<Item = usize>,
        exclude: &[Pid],
        with_leader: bool,
    ) -> Vec<Job> {
        let mut jobs: Vec<Job> = Vec::new();
        let mut by_pgid: std::collections::HashMap<i32, usize> = std::collections::HashMap::new();
        for i in members {
            let p = &self.procs[i];
            // Group 0: its leader is outside our PID namespace, so the group
            // cannot be named (or signalled) from here; it is no job of ours.
            if p.session != session
                || p.pgrp.as_raw() == 0
                || (p.pgrp == session && !with_leader)
                || exclude.contains(&p.pgrp)
            {
                continue;
            }
            if let Some(&j) = by_pgid.get(&p.pgrp.as_raw()) {
                jobs[j].members.push(i);
                continue;
            }
            by_pgid.insert(p.pgrp.as_raw(), jobs.len());
            jobs.push(Job {
                number: 0,
                pgid: p.pgrp,
                session,
                members: vec![i],
                state: JobState::Running,
                foreground: false,
                mark: ' ',
            });
        }
        for (n, job) in jobs.iter_mut().enumerate() {
            job.number = n + 1;
            job.state = JobState::of(job.members.iter().map(|&i| &self.procs[i]));
            job.foreground = job
                .members
                .iter()
                .any(|&i| self.procs[i].tpgid == job.pgid.as_raw());
        }
        // Current: the newest stopped job, else the newest job; previous: the
        // one before, in that order (stopped jobs newest first, then the others
        // newest first). Only the first two of the order are needed.
        let stopped = |j: &Job| matches!(j.state, JobState::Stopped(_));
        let order = (0..jobs.len())
            .rev()
            .filter(|&i| stopped(&jobs[i]))
            .chain((0..jobs.len()).rev().filter(|&i| !stopped(&jobs[i])));
        let first_two: Vec<usize> = order.take(2).collect();
        if let Some(&cur) = first_two.first() {
            jobs[cur].mark = '+';
        }
        if let Some(&prev) = first_two.get(1) {
            jobs[prev].mark = '-';
        }
        jobs
    }

    /// The state of process group `pgid` as this snapshot saw it ([`JobState::of`]
    /// its members; `Done` when it has none).
    #[must_use]
    pub fn group_state(&self, pgid: Pid) -> JobState {
        JobState::of(self.procs.iter().filter(|p| p.pgrp == pgid))
    }

    /// Learns why a stopped job is stopped (ptrace, see [`crate::ptrace`]).
    pub fn probe_stop(&self, job: &mut Job) {
        if let JobState::Stopped(None) = job.state {
            let sig = job
                .members
                .iter()
                .map(|&i| &self.procs[i])
                .find(|p| p.state == ProcState::Stopped)
                .and_then(|p| crate::ptrace::stop_signal(p.pid));
            job.state = JobState::Stopped(sig);
        }
    }

    /// The command line of a member, as `ps` shows it (`[comm]` if it has none).
    #[must_use]
    pub fn cmdline(p: &Stat) -> String {
        match crate::proc::read_small(std::path::Path::new(&format!("/proc/{}/cmdline", p.pid))) {
            Ok(raw) if !raw.is_empty() => {
                let raw = raw.strip_suffix(b"\0").unwrap_or(&raw);
                String::from_utf8_lossy(raw).replace('\0', " ")
            }
            _ => format!("[{}]", p.comm),
        }
    }

    /// The argument vector of a member, as the kernel shows it (trailing NULs,
    /// the padding a retitled process leaves, dropped); `None` when it has none
    /// (a zombie, a kernel thread).
    #[must_use]
    pub fn argv(p: &Stat) -> Option<Vec<Vec<u8>>> {
        let raw =
            crate::proc::read_small(std::path::Path::new(&format!("/proc/{}/cmdline", p.pid)))
                .ok()?;
        let end = raw.iter().rposition(|&b| b != 0)? + 1;
        Some(raw[..end].split(|&b| b == 0).map(<[u8]>::to_vec).collect())
    }

    /// The command line of a member for text output: each word quoted for a
    /// shell where needed ([`crate::quote::command_line`]), so that nothing in
    /// it can drive the terminal; `[comm]` if it has none. [`Snapshot::cmdline`]
    /// is the unquoted form, for JSON.
    #[must_use]
    pub fn cmdline_text(p: &Stat) -> String {
        match Self::argv(p) {
            Some(argv) => crate::quote::command_line(&argv),
            None => format!("[{}]", p.name()),
        }
    }

    /// The members a job started with (those whose parent is outside the group).
    fn heads<'s>(&'s self, job: &'s Job) -> impl Iterator<Item = &'s Stat> {
        job.members.iter().map(|&i| &self.procs[i]).filter(|p| {
            self.get(p.ppid)
                .is_none_or(|parent| parent.pgrp != job.pgid)
        })
    }

    /// A job's command, like bash prints it: the members the job started with
    /// (those whose parent is outside the group), joined by ` | `.
    #[must_use]
    pub fn command(&self, job: &Job) -> String {
        self.join_heads(job, |out, raw, p| {
            if let Some(raw) = raw {
                let raw = raw.strip_suffix(b"\0").unwrap_or(raw);
                out.push_str(&String::from_utf8_lossy(raw).replace('\0', " "));
            } else {
                out.push('[');
                out.push_str(&p.comm);
                out.push(']');
            }
        })
    }

    /// [`Snapshot::command`] for text output: each command line quoted
    /// ([`Snapshot::cmdline_text`]).
    #[must_use]
    pub fn command_text(&self, job: &Job) -> String {
        self.join_heads(job, |out, raw, p| {
            // As Snapshot::argv: trailing NULs dropped; none left is no argv.
            let args = raw.and_then(|raw| raw.iter().rposition(|&b| b != 0).map(|e| &raw[..=e]));
            if let Some(args) = args {
                out.push_str(&crate::quote::command_line(args.split(|&b| b == 0)));
            } else {
                out.push('[');
                out.push_str(&p.name());
                out.push(']');
            }
        })
    }

    /// The heads of `job` joined by ` | `, each written by `write` from its
    /// `cmdline` (`None`: unreadable or empty), read through the snapshot's
    /// open `/proc` into its one buffer.
    fn join_heads(
        &self,
        job: &Job,
        mut write: impl FnMut(&mut String, Option<&[u8]>, &Stat),
    ) -> String {
        let mut out = String::new();
        let mut dir = self.dir.borrow_mut();
        for (i, p) in self.heads(job).enumerate() {
            if i > 0 {
                out.push_str(" | ");
            }
            let raw = dir.read(p.pid, "cmdline").ok().filter(|r| !r.is_empty());
            write(&mut out, raw, p);
        }
        out
    }

    /// Whether a process group is orphaned: no member has a parent in the same
    /// session but another group (POSIX; such groups get SIGHUP+SIGCONT when stopped).
    #[must_use]
    pub fn orphaned(&self, session: Pid, pgid: Pid) -> bool {
        self.orphaned_without(session, pgid, None)
    }

    /// The process groups that are not orphaned (a member has a parent in the
    /// same session but another group), from one pass over the processes: what
    /// a view of many jobs asks instead of [`Snapshot::orphaned`] per job, which
    /// passes over every process each time.
    #[must_use]
    pub fn anchored_groups(&self) -> std::collections::HashSet<Pid> {
        self.procs
            .iter()
            .filter(|p| {
                self.get(p.ppid)
                    .is_some_and(|parent| parent.session == p.session && parent.pgrp != p.pgrp)
            })
            .map(|p| p.pgrp)
            .collect()
    }

    /// Whether a process group would be orphaned once process `leaving` is gone
    /// (the shell, at its exit): no member would keep a parent in the same
    /// session but another group. When a stopped group becomes orphaned so, the
    /// kernel sends it SIGHUP and SIGCONT.
    #[must_use]
    pub fn orphaned_without(&self, session: Pid, pgid: Pid, leaving: Option<Pid>) -> bool {
        !self.procs.iter().filter(|p| p.pgrp == pgid).any(|p| {
            Some(p.ppid) != leaving
                && self
                    .get(p.ppid)
                    .is_some_and(|parent| parent.session == session && parent.pgrp != pgid)
        })
    }

    /// Resolves a job spec among `jobs`.
    pub fn resolve<'j>(&self, spec: &JobSpec, jobs: &'j [Job]) -> Result<Target<'j>, ResolveError> {
        let one = |found: Vec<&'j Job>| match found.as_slice() {
            [job] => Ok(Target::Job(job)),
            [] => Err(ResolveError::NoSuchJob(spec.clone())),
            _ => Err(ResolveError::Ambiguous(spec.clone())),
        };
        match spec {
            JobSpec::Number(n) => one(jobs.iter().filter(|j| j.number == *n).collect()),
            JobSpec::Current => one(jobs.iter().filter(|j| j.mark == '+').collect()),
            JobSpec::Previous => one(jobs.iter().filter(|j| j.mark == '-').collect()),
            JobSpec::Prefix(text) => one(jobs
                .iter()
                .filter(|j| self.command(j).starts_with(text.as_str()))
                .collect()),
            JobSpec::Contains(text) => one(jobs
                .iter()
                .filter(|j| self.command(j).contains(text.as_str()))
                .collect()),
            JobSpec::Pid(pid, starttime) => {
                let Some(p) = self
                    .get(*pid)
                    .filter(|p| starttime.is_none_or(|t| t == p.starttime))
                else {
                    return Err(match starttime {
                        Some(_) => ResolveError::Reused(spec.clone()),
                        None => ResolveError::NoSuchProcess(spec.clone()),
                    });
                };
                Ok(match jobs.iter().find(|j| j.pgid == p.pgrp) {
                    Some(job) => Target::Job(job),
                    None => Target::Process(p.clone()),
                })
            }
        }
    }
}

/// The caller's session and its jobs, from one scan: what rbg, rfg, disown and
/// `rjobs --explain` resolve job specs among. The session leader's group (the
/// shell) and the caller's own group are not jobs.
#[derive(Debug)]
pub struct SessionJobs {
    /// The scan.
    pub snap: Snapshot,
    /// The caller's session.
    pub session: Pid,
    /// Its jobs, numbered as rjobs(1) shows them.
    pub jobs: Vec<Job>,
}

impl SessionJobs {
    /// Scans `/proc` and lists the jobs of the caller's session.
    pub fn of_caller() -> std::io::Result<SessionJobs> {
        let snap = Snapshot::take()?;
        let session = nix::unistd::getsid(None).unwrap_or_else(|_| nix::unistd::getpid());
        let jobs = snap.jobs(session, &[nix::unistd::getpgrp()], false);
        Ok(SessionJobs {
            snap,
            session,
            jobs,
        })
    }

    /// Resolves a job spec among the session's jobs ([`Snapshot::resolve`]).
    pub fn resolve(&self, spec: &JobSpec) -> Result<Target<'_>, ResolveError> {
        self.snap.resolve(spec, &self.jobs)
    }
}

/// Why a job spec names nothing usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    /// No job matches.
    #[error("{0}: no such job")]
    NoSuchJob(JobSpec),
    /// More than one job matches a `%name` or `%?text`.
    #[error("{0}: ambiguous job spec")]
    Ambiguous(JobSpec),
    /// No process has this PID.
    #[error("{0}: no such process")]
    NoSuchProcess(JobSpec),
    /// No process has this PID and start time.
    #[error("{0}: no such process (or its PID was reused)")]
    Reused(JobSpec),
}

impl From<ResolveError> for Error {
    /// A job that cannot be found is a failure ([`exit::FAILURE`]); tools whose
    /// failures exit otherwise (rfg: 125) map it themselves.
    fn from(e: ResolveError) -> Error {
        Error::failed(e.to_string(), exit::FAILURE)
    }
}

/// Why a process in group 0 is refused where its group is wanted: `/proc` shows
/// group 0 when the group's leader is outside our PID namespace, so the group
/// cannot be named (and "group 0" means the caller's own group to the kernel).
pub const GROUP_OUTSIDE_NAMESPACE: &str = "its process group is outside this PID namespace";

/// What a job spec names.
#[derive(Debug)]
pub enum Target<'j> {
    /// A job of the view.
    Job(&'j Job),
    /// A process outside the view's jobs (another session, or the shell's group).
    Process(Stat),
}

/// A job spec, as bash's and `rjobs`' output name jobs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobSpec {
    /// `%N`.
    Number(usize),
    /// `%+`, `%%`, `%`.
    Current,
    /// `%-`.
    Previous,
    /// `%name`: the command starts with it.
    Prefix(String),
    /// `%?text`: the command contains it.
    Contains(String),
    /// `PID`, or `PID@STARTTIME` (exact identity).
    Pid(Pid, Option<u64>),
}

impl JobSpec {
    /// Parses a job spec.
    pub fn parse(text: &str) -> Result<JobSpec, JobSpecError> {
        let bad = || JobSpecError::NotAJobSpec(text.to_string());
        if let Some(rest) = text.strip_prefix('%') {
            return Ok(match rest {
                "" | "+" | "%" => JobSpec::Current,
                "-" => JobSpec::Previous,
                _ => {
                    if let Some(t) = rest.strip_prefix('?') {
                        if t.is_empty() {
                            return Err(bad());
                        }
                        JobSpec::Contains(t.to_string())
                    } else if let Ok(n) = rest.parse::<usize>() {
                        if n == 0 {
                            return Err(bad());
                        }
                        JobSpec::Number(n)
                    } else {
                        JobSpec::Prefix(rest.to_string())
                    }
                }
            });
        }
        let (pid, start) = match text.split_once('@') {
            Some((p, s)) => (p, Some(s.parse::<u64>().map_err(|_| bad())?)),
            None => (text, None),
        };
        let pid: i32 = pid.parse().map_err(|_| bad())?;
        if pid <= 0 {
            return Err(JobSpecError::NotAPid(text.to_string()));
        }
        Ok(JobSpec::Pid(Pid::from_raw(pid), start))
    }
}

/// Why a job spec could not be parsed; the text is shown as given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JobSpecError {
    /// Not of any job-spec form.
    #[error("'{0}': not a job spec (%N, %+, %-, %name, %?text, PID or PID@STARTTIME)")]
    NotAJobSpec(String),
    /// A number, but not a process ID (zero or negative).
    #[error("'{0}': not a process ID")]
    NotAPid(String),
}

impl From<JobSpecError> for Error {
    /// A bad job spec is bad usage ([`exit::USAGE`]), reported on one line
    /// without the `Try --help` line; tools whose usage status differs (rfg:
    /// 125) map it themselves.
    fn from(e: JobSpecError) -> Error {
        Error::failed(e.to_string(), exit::USAGE)
    }
}

impl fmt::Display for JobSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JobSpec::Number(n) => write!(f, "%{n}"),
            JobSpec::Current => f.write_str("%+"),
            JobSpec::Previous => f.write_str("%-"),
            JobSpec::Prefix(t) => write!(f, "%{t}"),
            JobSpec::Contains(t) => write!(f, "%?{t}"),
            JobSpec::Pid(p, None) => write!(f, "{p}"),
            JobSpec::Pid(p, Some(t)) => write!(f, "{p}@{t}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs() {
        assert_eq!(JobSpec::parse("%1"), Ok(JobSpec::Number(1)));
        for cur in ["%", "%+", "%%"] {
            assert_eq!(JobSpec::parse(cur), Ok(JobSpec::Current));
        }
        assert_eq!(JobSpec::parse("%-"), Ok(JobSpec::Previous));
        assert_eq!(JobSpec::parse("%vi"), Ok(JobSpec::Prefix("vi".into())));
        assert_eq!(JobSpec::parse("%?foo"), Ok(JobSpec::Contains("foo".into())));
        assert_eq!(
            JobSpec::parse("123"),
            Ok(JobSpec::Pid(Pid::from_raw(123), None))
        );
        assert_eq!(
            JobSpec::parse("123@456"),
            Ok(JobSpec::Pid(Pid::from_raw(123), Some(456)))
        );
        for bad in ["", "x", "%0", "%?", "1@x", "1@", "@1"] {
            assert_eq!(
                JobSpec::parse(bad),
                Err(JobSpecError::NotAJobSpec(bad.into())),
                "{bad}"
            );
        }
        for bad in ["0", "-1"] {
            assert_eq!(JobSpec::parse(bad), Err(JobSpecError::NotAPid(bad.into())));
        }
        let e = Error::from(JobSpec::parse("x").unwrap_err());
        assert_eq!(
            e.to_string(),
            "'x': not a job spec (%N, %+, %-, %name, %?text, PID or PID@STARTTIME)"
        );
        assert_eq!(e.status(), exit::USAGE);
        assert!(!e.is_usage(), "no Try line after a bad job spec");
        assert_eq!(JobSpec::parse("%?foo").unwrap().to_string(), "%?foo");
    }

    #[test]
    fn resolve_errors_name_the_spec() {
        let snap = Snapshot::take().unwrap();
        let none = JobSpec::parse("%9999").unwrap();
        let e = snap.resolve(&none, &[]).unwrap_err();
        assert_eq!(e.to_string(), "%9999: no such job");
        assert_eq!(Error::from(e).status(), exit::FAILURE);
        let reused = JobSpec::Pid(nix::unistd::getpid(), Some(u64::MAX));
        assert_eq!(
            snap.resolve(&reused, &[]).unwrap_err().to_string(),
            format!(
                "{}@{}: no such process (or its PID was reused)",
                nix::unistd::getpid(),
                u64::MAX
            )
        );
    }

    #[test]
    fn group_state_aggregates_members() {
        let me = nix::unistd::getpgrp();
        let snap = Snapshot::take().unwrap();
        assert_eq!(snap.group_state(me), JobState::Running);
        // No process has group PID_MAX_LIMIT + 1.
        assert_eq!(snap.group_state(Pid::from_raw(4_194_305)), JobState::Done);
    }

    /// The one-pass views agree with the per-session and per-group ones.
    #[test]
    fn one_pass_views_agree() {
        let snap = Snapshot::take().unwrap();
        let own = [nix::unistd::getpgrp()];
        let all = snap.all_jobs(&own);
        assert_eq!(
            all.iter().map(|(sid, _)| *sid).collect::<Vec<_>>(),
            snap.sessions()
        );
        let anchored = snap.anchored_groups();
        for (sid, jobs) in &all {
            let each = snap.jobs(*sid, &own, false);
            assert_eq!(format!("{jobs:?}"), format!("{each:?}"), "session {sid}");
            for job in jobs {
                assert_eq!(
                    !anchored.contains(&job.pgid),
                    snap.orphaned(*sid, job.pgid),
                    "group {}",
                    job.pgid
                );
            }
        }
    }

    #[test]
    fn snapshot_sees_this_process() {
        let snap = Snapshot::take().unwrap();
        let me = nix::unistd::getpid();
        assert!(snap.get(me).is_some());
        assert!(
            snap.sessions()
                .contains(&nix::unistd::getsid(None).unwrap())
        );
    }
}
