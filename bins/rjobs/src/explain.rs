//! `rjobs --explain TARGET`: one process's place in its session, and a verdict in
//! plain words on what hangup, shell exit and `kill -HUP` of the shell would do
//! to it, with the hupkit command that would change that.
//!
//! The verdicts follow the rules huplab demonstrates (docs/levels.md): the kernel
//! signals the session leader and the foreground group at hangup, and stopped
//! orphaned groups when they become orphaned; bash forwards SIGHUP to the jobs in
//! its table on SIGHUP (and at exit only as a login shell with `huponexit`), and
//! sends SIGTERM+SIGCONT to stopped jobs when it exits. Whether a job is still
//! in the shell's table cannot be seen from outside: the verdict says so.

use std::fmt::Write as _;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use hupkit_common::jobs::Snapshot;
use hupkit_common::proc::{Stat, Status};
use hupkit_common::signal::Disposition;
use hupkit_common::tty;
use nix::sys::signal::Signal;

/// What the verdicts are drawn from: the facts printed first (yes-or-no questions,
/// hence the bools).
#[allow(clippy::struct_excessive_bools)]
struct Facts {
    hup: Disposition,
    is_leader: bool,
    foreground: bool,
    stopped: bool,
    orphaned: bool,
    /// No terminal (or its session's leader has none): no hangup, no job table.
    detached: bool,
    /// Which of fds 0-2 are the terminal.
    on_tty: Vec<i32>,
}

/// The three verdicts: terminal hangup, shell exit, `kill -HUP` of the shell.
struct Verdicts {
    hangup: String,
    exit: String,
    hupsh: String,
}

/// The explanation of `p`, several lines: the facts, then the verdicts.
#[must_use]
pub fn explain(snap: &Snapshot, p: &Stat) -> String {
    let mut out = String::new();
    let facts = facts(&mut out, snap, p);
    let lost = if facts.on_tty.iter().any(|fd| *fd > 0) {
        ", but its output to the terminal will be lost (writes fail with EIO)"
    } else {
        ""
    };
    let v = verdicts(&facts, lost);
    let _ = writeln!(out, "verdict:");
    let _ = writeln!(out, "  terminal hangup:      {}", v.hangup);
    let _ = writeln!(out, "  shell exit:           {}", v.exit);
    let _ = writeln!(out, "  kill -HUP the shell:  {}", v.hupsh);
    if facts.orphaned && facts.stopped {
        let _ = writeln!(
            out,
            "  now: it is a stopped job in an orphaned group; the kernel sends such groups SIGHUP and SIGCONT"
        );
    }
    let _ = writeln!(out, "  {}", fix(&v, &facts, lost, p));
    out
}

/// Prints the facts about `p` (session, group, SIGHUP, fds 0-2, orphaned
/// group) and returns them.
fn facts(out: &mut String, snap: &Snapshot, p: &Stat) -> Facts {
    let leader = snap.get(p.session);
    let hup = Status::read(p.pid)
        .ok()
        .map_or(Disposition::Default, |s| s.disposition(Signal::SIGHUP));
    let cmd = Snapshot::cmdline_text(p);
    let _ = writeln!(out, "PID {} ({cmd})", p.pid);
    let leader_name = match leader {
        Some(l) => l.name(),
        None if p.session.as_raw() == 0 => "outside this PID namespace".to_string(),
        None => "gone".to_string(),
    };
    let _ = writeln!(
        out,
        "  session {} (leader {leader_name}), controlling terminal {}",
        p.session,
        if p.tty_nr == 0 {
            "none".to_string()
        } else {
            tty::name(p.tty_nr)
        }
    );
    let is_leader = p.pid == p.session;
    let foreground = p.tpgid == p.pgrp.as_raw() && p.tty_nr != 0;
    let stopped = p.state.is_stopped();
    let _ = writeln!(
        out,
        "  process group {}: {}{}",
        p.pgrp,
        if is_leader {
            "the session leader's"
        } else if foreground {
            "the terminal's foreground job"
        } else if p.tty_nr != 0 {
            "a background job"
        } else {
            "no terminal"
        },
        if stopped { ", stopped" } else { "" }
    );
    let hup_text = match hup {
        Disposition::Default => "default (the process dies of it)",
        Disposition::Ignore => "ignored",
        Disposition::Caught => "caught by its own handler (the program decides)",
    };
    let _ = writeln!(out, "  SIGHUP: {hup_text}");
    let on_tty = std_fds(out, p);
    let orphaned = snap.orphaned(p.session, p.pgrp);
    let _ = writeln!(
        out,
        "  group orphaned: {}",
        if orphaned { "yes" } else { "no" }
    );
    Facts {
        hup,
        is_leader,
        foreground,
        stopped,
        orphaned,
        detached: p.tty_nr == 0 || leader.is_some_and(|l| l.tty_nr == 0),
        on_tty,
    }
}

/// Prints where fds 0-2 of `p` lead; returns those that are its terminal.
fn std_fds(out: &mut String, p: &Stat) -> Vec<i32> {
    let mut on_tty = Vec::new();
    for fd in 0..3 {
        let path = format!("/proc/{}/fd/{fd}", p.pid);
        let target = match std::fs::read_link(&path) {
            Ok(t) => hupkit_common::quote::word(t.as_os_str().as_bytes()),
            // Another user's process: /proc does not show its descriptors.
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => "?".to_string(),
            Err(_) => "closed".to_string(),
        };
        let is_tty = p.tty_nr != 0 && tty::number(Path::new(&path)).ok() == Some(p.tty_nr);
        if is_tty {
            on_tty.push(fd);
        }
        let _ = writeln!(
            out,
            "  fd {fd}: {target}{}",
            if is_tty { " (the terminal)" } else { "" }
        );
    }
    on_tty
}

/// What hangup, shell exit and `kill -HUP` of the shell would do; `lost` is
/// the rider for output to a terminal that hangs up.
fn verdicts(f: &Facts, lost: &str) -> Verdicts {
    let (hangup, exit, hupsh) = if f.detached {
        let v = "lives: it has no terminal, and no shell's job table reaches it".to_string();
        (v.clone(), v.clone(), v)
    } else {
        match f.hup {
            Disposition::Ignore => (
                format!("lives{lost}"),
                "lives".to_string(),
                "lives".to_string(),
            ),
            Disposition::Caught => (
                format!("gets SIGHUP; its own handler decides{lost}"),
                if f.stopped {
                    "gets SIGTERM and SIGCONT from bash: dies, unless it handles SIGTERM".into()
                } else {
                    "lives".to_string()
                },
                "gets SIGHUP; its own handler decides".to_string(),
            ),
            Disposition::Default if f.is_leader => (
                "dies: the kernel sends SIGHUP to the session leader".to_string(),
                "(it is the shell)".to_string(),
                "dies".to_string(),
            ),
            Disposition::Default => default_verdicts(f, lost),
        }
    };
    Verdicts {
        hangup,
        exit,
        hupsh,
    }
}

/// The verdicts for a job member that dies of SIGHUP.
fn default_verdicts(f: &Facts, lost: &str) -> (String, String, String) {
    let hang = if f.foreground {
        "dies: the kernel sends SIGHUP to the terminal's foreground group".to_string()
    } else {
        format!(
            "dies, if it is still in bash's job table (bash forwards SIGHUP); lives if the shell disowned it{lost}"
        )
    };
    let ex = if f.stopped {
        "dies: bash sends SIGTERM and SIGCONT to its stopped jobs when it exits".to_string()
    } else {
        "lives: bash sends nothing to running jobs at exit (a login shell with huponexit would send SIGHUP)"
            .to_string()
    };
    let hs = "dies, if it is still in bash's job table (bash forwards SIGHUP)".to_string();
    (hang, ex, hs)
}

/// The hupkit command that would change the verdicts, if any.
fn fix(v: &Verdicts, f: &Facts, lost: &str, p: &Stat) -> String {
    if v.hangup.starts_with("dies") || v.hupsh.starts_with("dies") || v.exit.starts_with("dies") {
        format!(
            "to change that: rdisown {} (ignores SIGHUP, output to nohup.out, continues it); start such commands with rnohup or detach",
            p.pid
        )
    } else if !lost.is_empty() && f.hup == Disposition::Ignore {
        format!(
            "to keep its output: rdisown {} (points its terminal descriptors at nohup.out)",
            p.pid
        )
    } else {
        "nothing to change".to_string()
    }
}
