//! `rjobs --explain TARGET`: one process's place in its session, and a verdict in
//! plain words on what hangup, shell exit and `kill -HUP` of the shell would do
//! to it, with the hupkit command that would change that.
//!
//! The verdicts follow the rules huplab demonstrates (docs/levels.md): the kernel
//! signals the session leader and the foreground group at hangup, and stopped
//! orphaned groups when they become orphaned; bash forwards SIGHUP to the jobs in
//! its table on SIGHUP (and at exit only as a login shell with `huponexit`), and
//! sends SIGTERM+SIGCONT to stopped jobs when it exits. Whether a job is still
//! in the shell's table cannot be seen from outside: the verdict says so. A
//! stopped job the shell has disowned is not safe either: when the shell exits
//! (at hangup too) its group becomes orphaned, and the kernel sends a stopped
//! orphaned group SIGHUP and SIGCONT.
//!
//! The fourth event, the logout, is [`hupkit_common::logout`]'s forecast: what
//! systemd-logind does to the process's cgroup when its user logs out.

use std::fmt::Write as _;
use std::os::unix::ffi::OsStrExt;

use hupkit_common::jobs::Snapshot;
use hupkit_common::logout::{self, Fate, Place};
use hupkit_common::output::{self, Sink};
use hupkit_common::proc::{Stat, Status};
use hupkit_common::signal::Disposition;
use hupkit_common::tty;
use nix::sys::signal::Signal;
use nix::unistd::Pid;

/// What the verdicts are drawn from: the facts printed first (yes-or-no questions,
/// hence the bools).
#[allow(clippy::struct_excessive_bools)]
struct Facts {
    hup: Disposition,
    is_leader: bool,
    foreground: bool,
    stopped: bool,
    orphaned: bool,
    /// Whether the group becomes orphaned when the session leader (the shell)
    /// exits: its only link to the session is the shell.
    orphaned_at_exit: bool,
    /// No terminal (or its session's leader has none): no hangup, no job table.
    detached: bool,
    /// Which of fds 0-2 are the terminal.
    on_tty: Vec<i32>,
    /// Whether fd 1 or 2 leads to a terminal that has hung up.
    lost_now: bool,
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
    let (away, owner) = logout_facts(&mut out, p);
    let _ = writeln!(out, "verdict:");
    let _ = writeln!(out, "  terminal hangup:      {}", v.hangup);
    let _ = writeln!(out, "  shell exit:           {}", v.exit);
    let _ = writeln!(out, "  kill -HUP the shell:  {}", v.hupsh);
    let _ = writeln!(out, "  logout:               {}", away.text);
    if facts.lost_now {
        let _ = writeln!(
            out,
            "  now: its output goes to a terminal that has hung up: it is lost (rdisown -o FILE {} sends it to a file)",
            p.pid
        );
    }
    if facts.orphaned && facts.stopped {
        let _ = writeln!(
            out,
            "  now: it is a stopped job in an orphaned group; the kernel sends such groups SIGHUP and SIGCONT"
        );
    }
    let _ = writeln!(out, "  {}", fix(&v, &facts, lost, p));
    if let Some(hint) = survive_logout(away.fate, p.pid, owner.as_ref()) {
        let _ = writeln!(out, "  to survive the logout: {hint}");
    }
    out
}

/// What it takes for a process that the logout would end to survive it, by
/// its fate: out of the session's scope (`Dies`) and a lingering user, or
/// only the lingering when it is in a unit of the user's manager already
/// (`DiesLater`, `LivesWhile`). `owner` is the user and whether they linger.
fn survive_logout(fate: Fate, pid: Pid, owner: Option<&(String, bool)>) -> Option<String> {
    let linger = match owner {
        Some((_, true)) => None,
        Some((name, false)) => Some(format!("let {name} linger (loginctl enable-linger {name})")),
        None => Some("let the user linger (loginctl enable-linger)".to_string()),
    };
    match (fate, linger) {
        (Fate::Dies, None) => Some(format!(
            "move it out of the session into a scope of its own (rdisown --scope {pid})"
        )),
        (Fate::Dies, Some(linger)) => Some(format!(
            "move it out of the session into a scope of its own (rdisown --scope {pid}), and {linger}"
        )),
        (Fate::DiesLater | Fate::LivesWhile, Some(linger)) => Some(format!(
            "{linger}: it is out of the session already, in a unit of the user's manager, which stops after the last logout"
        )),
        _ => None,
    }
}

/// Prints where `p` is for logind (its cgroup, logind's settings, linger) and
/// returns the logout's forecast, with the user whose session or manager it
/// is in and whether they linger.
fn logout_facts(out: &mut String, p: &Stat) -> (logout::Forecast, Option<(String, bool)>) {
    let host = logout::Host::this();
    let Some((cg, forecast)) = host.forecast_pid(p.pid) else {
        let unknown = logout::Forecast {
            fate: Fate::NotReached,
            text: "unknown: its cgroup cannot be read".into(),
        };
        return (unknown, None);
    };
    if !host.systemd {
        return (forecast, None);
    }
    let what = match &cg.place {
        Place::Session { scope, .. } => format!(" (a logind session: {scope})"),
        Place::UserManager { uid, .. } => format!(" (a unit of user@{uid}.service)"),
        Place::Unit(u) => format!(" ({u})"),
        Place::NoUnit => String::new(),
    };
    let _ = writeln!(out, "  cgroup: {}{what}", cg.path);
    // logind's settings decide only in a user's slice: read (and shown)
    // there alone.
    let owner = match &cg.place {
        Place::Session { uid, .. } | Place::UserManager { uid, .. } => {
            let name = logout::Host::user(*uid);
            let lingers = host.lingers(&name);
            Some((name, lingers))
        }
        _ => None,
    };
    if let Some((name, lingers)) = &owner {
        let _ = writeln!(
            out,
            "  logind: {}; {name} lingers: {}",
            host.settings().summary(),
            if *lingers { "yes" } else { "no" }
        );
    }
    (forecast, owner)
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
    let (on_tty, lost_now) = std_fds(out, p);
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
        orphaned_at_exit: !orphaned && snap.orphaned_without(p.session, p.pgrp, Some(p.session)),
        detached: p.tty_nr == 0 || leader.is_some_and(|l| l.tty_nr == 0),
        on_tty,
        lost_now,
    }
}

/// Prints where fds 0-2 of `p` lead; returns those that are its terminal, and
/// whether its output (fd 1 or 2) goes to a terminal that has hung up.
fn std_fds(out: &mut String, p: &Stat) -> (Vec<i32>, bool) {
    let mut on_tty = Vec::new();
    let mut lost = false;
    for fd in 0..3 {
        let path = format!("/proc/{}/fd/{fd}", p.pid);
        let target = match std::fs::read_link(&path) {
            Ok(t) => hupkit_common::quote::word(t.as_os_str().as_bytes()),
            // Another user's process: /proc does not show its descriptors.
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => "?".to_string(),
            Err(_) => "closed".to_string(),
        };
        let sink = output::of(p.pid, fd, p.tty_nr);
        let note = match &sink {
            Sink::Terminal => " (the terminal)".to_string(),
            Sink::HungUp(_) if fd > 0 => {
                lost = true;
                " (a terminal that has hung up: output LOST, writes fail with EIO)".to_string()
            }
            Sink::HungUp(_) => " (a terminal that has hung up: reads return end-of-file)".into(),
            Sink::OtherTerminal(_) => " (a terminal, not its controlling one)".to_string(),
            Sink::PtyMaster => " (a pseudo-terminal master: it drives a terminal)".to_string(),
            Sink::Pipe => " (a pipe)".to_string(),
            Sink::Socket => " (a socket)".to_string(),
            Sink::File { .. } => " (a file)".to_string(),
            _ => String::new(),
        };
        if sink == Sink::Terminal {
            on_tty.push(fd);
        }
        let _ = writeln!(out, "  fd {fd}: {target}{note}");
    }
    (on_tty, lost)
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
                if f.stopped {
                    "dies, if it is still in bash's job table (bash sends SIGTERM and SIGCONT to its stopped jobs when it exits), unless it handles SIGTERM; lives if the shell disowned it".to_string()
                } else {
                    "lives".to_string()
                },
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

/// The verdicts for a job member that dies of SIGHUP. A stopped one dies at
/// hangup and at shell exit even when the shell has disowned it, if the
/// shell's exit orphans its group (the kernel's SIGHUP and SIGCONT).
fn default_verdicts(f: &Facts, lost: &str) -> (String, String, String) {
    const ORPHAN: &str = "if the shell disowned it, the kernel does the same when the shell's exit orphans its group";
    const KEPT: &str =
        "if the shell disowned it, it stays stopped (its group keeps a parent in the session)";
    let hang = if f.foreground {
        "dies: the kernel sends SIGHUP to the terminal's foreground group".to_string()
    } else if f.stopped && f.orphaned_at_exit {
        format!("dies: bash sends SIGHUP and SIGCONT to its stopped jobs; {ORPHAN}")
    } else if f.stopped {
        format!("dies, if it is still in bash's job table (bash sends SIGHUP and SIGCONT); {KEPT}")
    } else {
        format!(
            "dies, if it is still in bash's job table (bash forwards SIGHUP); lives if the shell disowned it{lost}"
        )
    };
    let ex = if f.stopped && f.orphaned_at_exit {
        format!(
            "dies: bash sends SIGTERM and SIGCONT to its stopped jobs when it exits; {ORPHAN} (SIGHUP and SIGCONT)"
        )
    } else if f.stopped {
        format!(
            "dies, if it is still in bash's job table (bash sends SIGTERM and SIGCONT to its stopped jobs when it exits); {KEPT}"
        )
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

#[cfg(test)]
mod tests {
    use hupkit_common::logout::Fate;
    use nix::unistd::Pid;

    use super::survive_logout;

    #[test]
    fn the_remedy_for_the_logout_asks_only_for_what_is_missing() {
        let pid = Pid::from_raw(42);
        let alice = |lingers| Some(("alice".to_string(), lingers));
        let hint = |fate, owner: Option<(String, bool)>| survive_logout(fate, pid, owner.as_ref());
        assert_eq!(
            hint(Fate::Dies, alice(false)).as_deref(),
            Some(
                "move it out of the session into a scope of its own (rdisown --scope 42), and \
                 let alice linger (loginctl enable-linger alice)"
            )
        );
        assert_eq!(
            hint(Fate::Dies, alice(true)).as_deref(),
            Some("move it out of the session into a scope of its own (rdisown --scope 42)")
        );
        for fate in [Fate::DiesLater, Fate::LivesWhile] {
            assert_eq!(
                hint(fate, alice(false)).as_deref(),
                Some(
                    "let alice linger (loginctl enable-linger alice): it is out of the session \
                     already, in a unit of the user's manager, which stops after the last logout"
                )
            );
        }
        for fate in [Fate::Lives, Fate::NotReached, Fate::NoSystemd] {
            assert_eq!(hint(fate, alice(false)), None);
        }
    }
}
