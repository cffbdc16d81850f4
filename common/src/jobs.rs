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
//!   start order: `%1` is the oldest. [`Snapshot::all_jobs`] yields them one
//!   at a time, so that a view of every session can print as it goes.
//!
//! Memory stays flat in the number of processes (rjobs -A must not grow to
//! tens of MiB on a machine with 20,000 processes): a snapshot holds one
//! [`Stat`] per process (its name inline, [`crate::proc::Comm`]) and two
//! arrays of 4-byte indices, one by PID (for [`Snapshot::get`]) and one with
//! each session's and each group's processes side by side, so that a job's
//! members are a range of it, not a list of its own.
//! - [`JobSpec`] parses `%N`, `%+`, `%%`, `%`, `%-`, `%name`, `%?text`, `PID`,
//!   `PID@STARTTIME`, and [`Snapshot::resolve`] finds what one names.
//!
//! Differences with a shell's own numbering are documented in rjobs(1): the
//! shell numbers jobs as it starts them and forgets finished ones; here the
//! numbers are the order of the live groups, and the current job (`%+`) is the
//! most recently started stopped job (the kernel does not record when a job
//! stopped), else the most recently started one.

use std::fmt;
use std::ops::Range;

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
    /// Indices into `procs`, by PID: [`Snapshot::get`] searches it.
    by_pid: Vec<u32>,
    /// Indices into `procs`, grouped: each session's processes side by side,
    /// sessions in the order of their oldest process; within a session each
    /// process group's side by side, groups in the order of their oldest
    /// member; members oldest first. A [`Job`]'s members are a range of it.
    grouped: Vec<u32>,
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

impl JobState {
    /// The state as `jobs` says it (what `Display` writes).
    #[must_use]
    pub fn label(self) -> &'static str {
        match self {
            JobState::Running => "Running",
            JobState::Stopped(Some(Signal::SIGSTOP)) => "Stopped (signal)",
            JobState::Stopped(Some(Signal::SIGTTIN)) => "Stopped (tty input)",
            JobState::Stopped(Some(Signal::SIGTTOU)) => "Stopped (tty output)",
            JobState::Stopped(_) => "Stopped",
            JobState::Done => "Done",
        }
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
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
    /// Its members, oldest first: a range of the snapshot's grouped order
    /// ([`Snapshot::members`]).
    members: Range<usize>,
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
        let mut dir = ProcDir::open()?;
        let mut procs = Vec::new();
        for pid in dir.pids()? {
            let Ok(raw) = dir.read(pid, "stat") else {
                continue;
            };
            if let Ok(st) = Stat::parse(raw) {
                if !st.is_kernel_thread() {
                    procs.push(st);
                }
            }
        }
        Snapshot::of(procs, dir)
    }

    /// The snapshot of `procs` (in any order), read through `dir`.
    ///
    /// `/proc` lists processes by PID, which is start order until PIDs wrap
    /// (at 32768 by default). So the start order is found by sorting 4-byte
    /// indices, and each 64-byte record is then moved once
    /// ([`permute`]); where the records came in PID order, as a scan reads
    /// them, the index by PID is that order's inverse, with no sort of its own.
    fn of(mut procs: Vec<Stat>, dir: ProcDir) -> std::io::Result<Snapshot> {
        let count = u32::try_from(procs.len())
            .map_err(|_| std::io::Error::other("more processes than a u32 counts"))?;
        let mut order: Vec<u32> = (0..count).collect();
        order.sort_unstable_by_key(|&i| {
            let p = &procs[i as usize];
            (p.starttime, p.pid.as_raw())
        });
        let by_pid = procs.is_sorted_by_key(|p| p.pid.as_raw()).then(|| {
            let mut inverse = vec![0u32; order.len()];
            for (at, &i) in (0..count).zip(&order) {
                inverse[i as usize] = at;
            }
            inverse
        });
        permute(&mut procs, &mut order);
        drop(order);
        let grouped = grouped_order(&procs, count);
        let by_pid = by_pid.unwrap_or_else(|| {
            let mut by_pid: Vec<u32> = (0..count).collect();
            by_pid.sort_unstable_by_key(|&i| procs[i as usize].pid.as_raw());
            by_pid
        });
        Ok(Snapshot {
            procs,
            by_pid,
            grouped,
            dir: std::cell::RefCell::new(dir),
        })
    }

    /// The process `pid`, if present.
    #[must_use]
    pub fn get(&self, pid: Pid) -> Option<&Stat> {
        let at = self
            .by_pid
            .binary_search_by_key(&pid.as_raw(), |&i| self.procs[i as usize].pid.as_raw())
            .ok()?;
        Some(&self.procs[self.by_pid[at] as usize])
    }

    /// The sessions present, oldest leader first.
    #[must_use]
    pub fn sessions(&self) -> Vec<Pid> {
        self.session_ranges().map(|(sid, _)| sid).collect()
    }

    /// Each session and the range of `grouped` that holds its processes,
    /// in the order of their oldest process.
    fn session_ranges(&self) -> impl Iterator<Item = (Pid, Range<usize>)> + '_ {
        runs(&self.grouped, 0..self.grouped.len(), |i| {
            self.procs[i as usize].session
        })
    }

    /// Every session's jobs ([`Snapshot::jobs`] of each, leaders' groups and
    /// `exclude` left out), sessions oldest leader first: one pass over the
    /// processes for all sessions, not one per session, and one job at a time.
    pub fn all_jobs<'s>(&'s self, exclude: &'s [Pid]) -> impl Iterator<Item = (Pid, Jobs<'s>)> {
        self.session_ranges()
            .map(move |(sid, range)| (sid, Jobs::new(self, sid, range, exclude, false)))
    }

    /// The jobs of `session`, leaving out the groups in `exclude` and, unless
    /// `with_leader`, the session leader's group; numbered by start order, with
    /// `+`/`-` marks.
    #[must_use]
    pub fn jobs(&self, session: Pid, exclude: &[Pid], with_leader: bool) -> Vec<Job> {
        let range = self
            .session_ranges()
            .find(|(sid, _)| *sid == session)
            .map_or(0..0, |(_, range)| range);
        Jobs::new(self, session, range, exclude, with_leader).collect()
    }

    /// The members of `job`, oldest first.
    pub fn members<'s>(&'s self, job: &Job) -> impl Iterator<Item = &'s Stat> + Clone + 's {
        self.grouped[job.members.clone()]
            .iter()
            .map(|&i| &self.procs[i as usize])
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
            let sig = self
                .members(job)
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
        self.members(job).filter(|p| self.is_head(job, p))
    }

    /// Whether `p`, a member of `job`, is one the job started with: its
    /// parent is outside the group.
    #[must_use]
    pub fn is_head(&self, job: &Job, p: &Stat) -> bool {
        self.get(p.ppid)
            .is_none_or(|parent| parent.pgrp != job.pgid)
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
                out.push_str(&p.comm.to_str_lossy());
                out.push(']');
            }
        })
    }

    /// [`Snapshot::command`] for text output: each command line quoted
    /// ([`Snapshot::cmdline_text`]).
    #[must_use]
    pub fn command_text(&self, job: &Job) -> String {
        let mut out = String::new();
        self.push_command_text(job, &mut out);
        out
    }

    /// [`Snapshot::command_text`], appended to `out` (a view of many jobs
    /// writes them all into one buffer).
    pub fn push_command_text(&self, job: &Job, out: &mut String) {
        let utf8 = crate::quote::locale_is_utf8();
        self.write_heads(job, out, |out, raw, p| {
            // As Snapshot::argv: trailing NULs dropped; none left is no argv.
            let args = raw.and_then(|raw| raw.iter().rposition(|&b| b != 0).map(|e| &raw[..=e]));
            if let Some(args) = args {
                crate::quote::push_command_line(out, args.split(|&b| b == 0), utf8);
            } else {
                out.push('[');
                out.push_str(&p.name());
                out.push(']');
            }
        });
    }

    /// The heads of `job` joined by ` | `, each written by `write` from its
    /// `cmdline` (`None`: unreadable or empty), read through the snapshot's
    /// open `/proc` into its one buffer.
    fn join_heads(
        &self,
        job: &Job,
        write: impl FnMut(&mut String, Option<&[u8]>, &Stat),
    ) -> String {
        let mut out = String::new();
        self.write_heads(job, &mut out, write);
        out
    }

    /// [`Snapshot::join_heads`], appended to `out`.
    fn write_heads(
        &self,
        job: &Job,
        out: &mut String,
        mut write: impl FnMut(&mut String, Option<&[u8]>, &Stat),
    ) {
        let mut dir = self.dir.borrow_mut();
        for (i, p) in self.heads(job).enumerate() {
            if i > 0 {
                out.push_str(" | ");
            }
            let raw = dir.read(p.pid, "cmdline").ok().filter(|r| !r.is_empty());
            write(out, raw, p);
        }
    }

    /// Whether a process group is orphaned: no member has a parent in the same
    /// session but another group (POSIX; such groups get SIGHUP+SIGCONT when stopped).
    #[must_use]
    pub fn orphaned(&self, session: Pid, pgid: Pid) -> bool {
        self.orphaned_without(session, pgid, None)
    }

    /// [`Snapshot::orphaned`] of a job, from its members alone: what a view
    /// of many jobs asks, as `orphaned` passes over every process each time.
    #[must_use]
    pub fn job_orphaned(&self, job: &Job) -> bool {
        !self.members(job).any(|p| {
            self.get(p.ppid)
                .is_some_and(|parent| parent.session == job.session && parent.pgrp != job.pgid)
        })
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

/// Puts `items` in `order` (`order[k]`: the index, before, of the item that
/// goes to `k`), moving each item once along the cycles of the permutation;
/// `order` is left as the identity.
fn permute<T>(items: &mut [T], order: &mut [u32]) {
    for start in 0..order.len() {
        let mut at = start;
        loop {
            let from = order[at] as usize;
            order[at] = u32::try_from(at).unwrap_or(u32::MAX);
            if from == start || from == at {
                break;
            }
            items.swap(at, from);
            at = from;
        }
    }
}

/// The consecutive runs of equal `key` in `order[range]`: each key and its range.
fn runs<K: PartialEq + Copy>(
    order: &[u32],
    range: Range<usize>,
    key: impl Fn(u32) -> K,
) -> impl Iterator<Item = (K, Range<usize>)> {
    let mut at = range.start;
    std::iter::from_fn(move || {
        let start = at;
        let k = key(*order.get(start).filter(|_| start < range.end)?);
        while at < range.end && key(order[at]) == k {
            at += 1;
        }
        Some((k, start..at))
    })
}

/// [`Snapshot::grouped`] of `procs` (oldest first, `count` of them).
///
/// Each process gets one 64-bit key, sorted as a plain integer (no key
/// function reaching into `procs` at every comparison: the sorts of the
/// first version were a tenth of `rjobs -A`'s instructions). First
/// (session, group, index), which brings each group's members side by side,
/// oldest first; from that order, each process's key becomes (its session's
/// oldest process, its group's oldest member, its index), and a second sort
/// gives the grouped order. Beside the result, this costs 8 bytes per
/// process while it runs. A PID is below 2^22 (the kernel's
/// `PID_MAX_LIMIT`); where there are 2^20 processes or more, which the
/// packing cannot index, [`grouped_order_wide`] does it.
fn grouped_order(procs: &[Stat], count: u32) -> Vec<u32> {
    const PID_BITS: u32 = 22;
    const INDEX_BITS: u32 = 20;
    let index_mask = (1u64 << INDEX_BITS) - 1;
    let small = |pid: Pid| {
        u64::try_from(pid.as_raw())
            .ok()
            .filter(|&p| p < 1 << PID_BITS)
    };
    let mut keys = Vec::with_capacity(procs.len());
    for (p, i) in procs.iter().zip(0u64..) {
        match (small(p.session), small(p.pgrp)) {
            (Some(sid), Some(pgrp)) if count < 1 << INDEX_BITS => {
                keys.push(sid << (PID_BITS + INDEX_BITS) | pgrp << INDEX_BITS | i);
            }
            _ => return grouped_order_wide(procs, count),
        }
    }
    keys.sort_unstable();
    let session_of = |k: u64| k >> (PID_BITS + INDEX_BITS);
    let group_of = |k: u64| k >> INDEX_BITS;
    let mut session = 0;
    while session < keys.len() {
        let sid = session_of(keys[session]);
        let end = session + keys[session..].partition_point(|&k| session_of(k) == sid);
        let oldest = keys[session..end]
            .iter()
            .map(|&k| k & index_mask)
            .min()
            .unwrap_or(0);
        let mut group = session;
        while group < end {
            let g = group_of(keys[group]);
            let first = keys[group] & index_mask;
            for k in &mut keys[group..end] {
                if group_of(*k) != g {
                    break;
                }
                *k = oldest << (2 * INDEX_BITS) | first << INDEX_BITS | (*k & index_mask);
                group += 1;
            }
        }
        session = end;
    }
    keys.sort_unstable();
    keys.iter()
        .map(|&k| u32::try_from(k & index_mask).unwrap_or(u32::MAX))
        .collect()
}

/// [`grouped_order`] for any number of processes, with key functions:
/// sorted by session and group to bring them together, then by the oldest
/// member of each group and of each session, so that both come in start
/// order.
fn grouped_order_wide(procs: &[Stat], count: u32) -> Vec<u32> {
    let at = |i: u32| &procs[i as usize];
    let mut order: Vec<u32> = (0..count).collect();
    order.sort_unstable_by_key(|&i| (at(i).session.as_raw(), at(i).pgrp.as_raw(), i));
    // The oldest member of each process's group: the first of its run.
    let mut oldest = vec![0u32; procs.len()];
    for (_, run) in runs(&order, 0..order.len(), |i| (at(i).session, at(i).pgrp)) {
        for &i in &order[run.clone()] {
            oldest[i as usize] = order[run.start];
        }
    }
    order.sort_unstable_by_key(|&i| (at(i).session.as_raw(), oldest[i as usize], i));
    // Now each session's oldest process is the first of its run: sessions in
    // that order, each kept as it is (a stable sort).
    for (_, run) in runs(&order, 0..order.len(), |i| at(i).session) {
        for &i in &order[run.clone()] {
            oldest[i as usize] = order[run.start];
        }
    }
    order.sort_by_key(|&i| oldest[i as usize]);
    order
}

/// A session's jobs, one at a time, in start order ([`Snapshot::all_jobs`],
/// [`Snapshot::jobs`]). The `+`/`-` marks are found when it is made, from a
/// first pass over the session's groups.
#[derive(Debug, Clone)]
pub struct Jobs<'s> {
    snap: &'s Snapshot,
    session: Pid,
    /// What is left of the session's range of `grouped`.
    left: Range<usize>,
    exclude: &'s [Pid],
    with_leader: bool,
    /// The number of the last job yielded.
    number: usize,
    /// The groups of the current (`+`) and previous (`-`) jobs.
    current: Option<Pid>,
    previous: Option<Pid>,
}

impl<'s> Jobs<'s> {
    fn new(
        snap: &'s Snapshot,
        session: Pid,
        range: Range<usize>,
        exclude: &'s [Pid],
        with_leader: bool,
    ) -> Jobs<'s> {
        let mut jobs = Jobs {
            snap,
            session,
            left: range,
            exclude,
            with_leader,
            number: 0,
            current: None,
            previous: None,
        };
        // Current: the newest stopped job, else the newest job; previous: the
        // one before, in that order (stopped jobs newest first, then the others
        // newest first). Only the first two of the order are needed: the two
        // newest stopped ones and the two newest others.
        let (mut stopped, mut others) = ([None; 2], [None; 2]);
        for job in jobs.clone() {
            let newest = if matches!(job.state, JobState::Stopped(_)) {
                &mut stopped
            } else {
                &mut others
            };
            *newest = [Some(job.pgid), newest[0]];
        }
        let mut order = stopped.into_iter().chain(others).flatten();
        jobs.current = order.next();
        jobs.previous = order.next();
        jobs
    }
}

impl Iterator for Jobs<'_> {
    type Item = Job;

    fn next(&mut self) -> Option<Job> {
        let snap = self.snap;
        loop {
            let at = |i: u32| &snap.procs[i as usize];
            let (pgid, members) = runs(&snap.grouped, self.left.clone(), |i| at(i).pgrp).next()?;
            self.left.start = members.end;
            // Group 0: its leader is outside our PID namespace, so the group
            // cannot be named (or signalled) from here; it is no job of ours.
            if pgid.as_raw() == 0
                || (pgid == self.session && !self.with_leader)
                || self.exclude.contains(&pgid)
            {
                continue;
            }
            self.number += 1;
            let mut job = Job {
                number: self.number,
                pgid,
                session: self.session,
                members,
                state: JobState::Running,
                foreground: false,
                mark: ' ',
            };
            job.state = JobState::of(snap.members(&job));
            job.foreground = snap.members(&job).any(|p| p.tpgid == pgid.as_raw());
            if self.current == Some(pgid) {
                job.mark = '+';
            } else if self.previous == Some(pgid) {
                job.mark = '-';
            }
            return Some(job);
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
        let all: Vec<(Pid, Vec<Job>)> = snap
            .all_jobs(&own)
            .map(|(sid, jobs)| (sid, jobs.collect()))
            .collect();
        assert_eq!(
            all.iter().map(|(sid, _)| *sid).collect::<Vec<_>>(),
            snap.sessions()
        );
        for (sid, jobs) in &all {
            let each = snap.jobs(*sid, &own, false);
            assert_eq!(format!("{jobs:?}"), format!("{each:?}"), "session {sid}");
            for job in jobs {
                assert_eq!(
                    snap.job_orphaned(job),
                    snap.orphaned(*sid, job.pgid),
                    "group {}",
                    job.pgid
                );
            }
        }
    }

    /// A process for a made-up snapshot: `(pid, ppid, pgrp, session, state, starttime)`.
    fn fake(pid: i32, ppid: i32, pgrp: i32, sid: i32, state: char, start: u64) -> Stat {
        let line = format!(
            "{pid} (p{pid}) {state} {ppid} {pgrp} {sid} 34816 {pgrp} 0 0 0 0 0 0 0 0 0 20 0 1 0 {start} 0 0\n"
        );
        Stat::parse(line.as_bytes()).unwrap()
    }

    /// The jobs of `session` as the first version grouped them (a list per
    /// job, built in one pass over the processes in start order), as text:
    /// the reference that the grouped order must reproduce.
    fn reference(procs: &[Stat], session: Pid) -> Vec<String> {
        let mut procs: Vec<&Stat> = procs.iter().collect();
        procs.sort_by_key(|p| (p.starttime, p.pid.as_raw()));
        let mut jobs: Vec<(Pid, Vec<&Stat>)> = Vec::new();
        for p in procs.into_iter().filter(|p| p.session == session) {
            if p.pgrp == session || p.pgrp.as_raw() == 0 {
                continue;
            }
            match jobs.iter_mut().find(|(g, _)| *g == p.pgrp) {
                Some((_, m)) => m.push(p),
                None => jobs.push((p.pgrp, vec![p])),
            }
        }
        let stopped: Vec<bool> = jobs
            .iter()
            .map(|(_, m)| matches!(JobState::of(m.iter().copied()), JobState::Stopped(_)))
            .collect();
        let order: Vec<usize> = (0..jobs.len())
            .rev()
            .filter(|&i| stopped[i])
            .chain((0..jobs.len()).rev().filter(|&i| !stopped[i]))
            .collect();
        jobs.iter()
            .enumerate()
            .map(|(n, (g, m))| {
                let mark = match order.iter().position(|&i| i == n) {
                    Some(0) => '+',
                    Some(1) => '-',
                    _ => ' ',
                };
                let pids: Vec<i32> = m.iter().map(|p| p.pid.as_raw()).collect();
                format!(
                    "[{}]{mark} {g} {pids:?} {}",
                    n + 1,
                    JobState::of(m.iter().copied())
                )
            })
            .collect()
    }

    /// Sessions interleaved in start order, a group whose members are neither
    /// side by side in start order nor in PID order, a session whose leader
    /// is gone, stopped jobs among running ones, group 0: the jobs, their
    /// members, numbers and marks, and the order of the sessions are those of
    /// the reference, in every view.
    #[test]
    fn grouped_order_keeps_start_order() {
        let procs = vec![
            fake(20, 1, 20, 20, 'S', 2),
            fake(10, 1, 10, 10, 'S', 1),
            fake(11, 10, 11, 10, 'S', 3),
            fake(21, 20, 21, 20, 'T', 4),
            fake(30, 11, 11, 10, 'S', 5),
            fake(12, 10, 12, 10, 'T', 6),
            fake(5, 11, 11, 10, 'S', 7),
            fake(41, 1, 41, 40, 'S', 8),
            fake(13, 10, 13, 10, 'T', 9),
            fake(22, 21, 21, 20, 'T', 10),
            fake(9, 1, 0, 0, 'S', 11),
            fake(42, 41, 3, 40, 'S', 12),
            fake(43, 41, 3, 40, 'Z', 0),
            fake(7, 10, 7, 10, 'S', 13),
        ];
        let snap = Snapshot::of(procs.clone(), ProcDir::open().unwrap()).unwrap();
        let sids = [10, 20, 0, 40].map(Pid::from_raw);
        assert_eq!(snap.sessions(), [40, 10, 20, 0].map(Pid::from_raw));
        let text = |jobs: &[Job]| -> Vec<String> {
            jobs.iter()
                .map(|j| {
                    let pids: Vec<i32> = snap.members(j).map(|p| p.pid.as_raw()).collect();
                    format!("[{}]{} {} {pids:?} {}", j.number, j.mark, j.pgid, j.state)
                })
                .collect()
        };
        for sid in sids {
            assert_eq!(
                text(&snap.jobs(sid, &[], false)),
                reference(&procs, sid),
                "{sid}"
            );
        }
        let all: Vec<(Pid, Vec<String>)> = snap
            .all_jobs(&[])
            .map(|(sid, jobs)| (sid, text(&jobs.collect::<Vec<_>>())))
            .collect();
        let want: Vec<(Pid, Vec<String>)> = [40, 10, 20, 0]
            .map(Pid::from_raw)
            .into_iter()
            .map(|sid| (sid, reference(&procs, sid)))
            .collect();
        assert_eq!(all, want);
        assert_eq!(
            reference(&procs, Pid::from_raw(10)),
            [
                "[1]  11 [11, 30, 5] Running",
                "[2]- 12 [12] Stopped",
                "[3]+ 13 [13] Stopped",
                "[4]  7 [7] Running"
            ]
        );
        for (pid, st) in procs.iter().map(|p| (p.pid, p)) {
            assert_eq!(snap.get(pid), Some(st));
        }
        assert_eq!(snap.get(Pid::from_raw(6)), None);
    }

    /// The packed keys give the order the key functions give, on made-up
    /// processes in many sessions and groups (session and group 0 among
    /// them), and on this machine's; a PID beyond the packing's 22 bits
    /// takes the wide way.
    #[test]
    fn packed_grouped_order_agrees_with_the_wide_one() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            i32::try_from(seed % n).unwrap()
        };
        for size in [0, 1, 2, 10, 300, 3000] {
            let mut procs: Vec<Stat> = (0..size)
                .map(|pid| {
                    let sid = next(12) * 1000;
                    let pgrp = if sid == 0 { 0 } else { sid + next(9) };
                    fake(pid + 1, 1, pgrp, sid, 'S', u64::try_from(pid).unwrap())
                })
                .collect();
            procs.sort_by_key(|p| (p.starttime, p.pid.as_raw()));
            let count = u32::try_from(procs.len()).unwrap();
            assert_eq!(
                grouped_order(&procs, count),
                grouped_order_wide(&procs, count),
                "{size}"
            );
        }
        let snap = Snapshot::take().unwrap();
        let count = u32::try_from(snap.procs.len()).unwrap();
        assert_eq!(snap.grouped, grouped_order_wide(&snap.procs, count));
        let mut wide = vec![fake(5, 1, 5, 5, 'S', 1), fake(9, 1, 4_194_304, 5, 'S', 2)];
        wide.push(fake(7, 1, 5, 5, 'S', 3));
        assert_eq!(grouped_order(&wide, 3), [0, 2, 1]);
    }

    /// Records read in PID order after PIDs wrapped (the newest have the
    /// lowest PIDs), and in no order: either way the snapshot holds them in
    /// start order and finds each by PID. `permute` on permutations of
    /// every shape (identity, one cycle, many) gives what indexing gives.
    #[test]
    fn start_order_and_pid_index_after_pids_wrap() {
        let wrapped = vec![
            fake(1, 0, 1, 1, 'S', 0),
            fake(2, 1, 2, 2, 'S', 900),
            fake(3, 1, 3, 3, 'S', 950),
            fake(300, 1, 300, 300, 'S', 10),
            fake(301, 300, 301, 300, 'S', 10),
            fake(500, 1, 500, 500, 'S', 5),
        ];
        let mut shuffled = wrapped.clone();
        shuffled.swap(0, 4);
        shuffled.swap(1, 5);
        for procs in [wrapped.clone(), shuffled] {
            let snap = Snapshot::of(procs, ProcDir::open().unwrap()).unwrap();
            let pids: Vec<i32> = snap.procs.iter().map(|p| p.pid.as_raw()).collect();
            assert_eq!(pids, [1, 500, 300, 301, 2, 3]);
            for p in &wrapped {
                assert_eq!(snap.get(p.pid), Some(p));
            }
            assert_eq!(snap.get(Pid::from_raw(4)), None);
        }
        for order in [
            vec![],
            vec![0, 1, 2, 3],
            vec![1, 2, 3, 0],
            vec![3, 0, 1, 2],
            vec![1, 0, 3, 2, 4],
            vec![4, 3, 2, 1, 0, 5, 7, 6],
        ] {
            let items: Vec<u32> = (0..u32::try_from(order.len()).unwrap())
                .map(|i| i * 10)
                .collect();
            let want: Vec<u32> = order.iter().map(|&i| items[i as usize]).collect();
            let (mut got, mut scratch) = (items.clone(), order.clone());
            permute(&mut got, &mut scratch);
            assert_eq!(got, want, "{order:?}");
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
