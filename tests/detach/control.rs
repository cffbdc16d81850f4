//! `--reload`, `--pause`, `--resume` and `--restart`: the daemon (or its group)
//! really gets the signal, a process that reused the PID never does, and
//! `--restart` re-runs only a record it can trust.
//!
//! The test daemon is a shell that writes to its standard output (the `-o`
//! file) every signal it receives, and keeps a child (`sleep`) in its group.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;

use hupkit_common::identity::Identity;
use hupkit_common::proc::{ProcState, Stat};
use nix::unistd::Pid;

use super::{Daemon, detach, detach_cmd, is_root, open_tempdir};
use crate::util;

/// Logs its start (PID, child, environment) and every HUP, USR1 and TERM.
const SCRIPT: &str = r#"trap 'echo HUP' HUP
trap 'echo USR1' USR1
trap 'echo TERM; kill $c; exit 0' TERM
sleep 300 & c=$!
echo "start $$ child $c stored=${STORED-} early=${EARLY-} late=${LATE-} args=$0,$1"
while :; do sleep 0.05; done"#;

/// The daemon and its child, killed (identity checked) when dropped.
struct Logged {
    daemon: Daemon,
    child: Daemon,
}

/// `-p daemon.pid -o out.log` plus `extra`, then `sh -c SCRIPT zero 'a b'`,
/// with `env` added to detach's environment; returns when the start line is there.
fn start(dir: &Path, extra: &[&str], env: &[(&str, &str)]) -> Logged {
    let mut args = vec!["-p", "daemon.pid", "-o", "out.log"];
    args.extend_from_slice(extra);
    // bash, not dash: dash runs `sleep` through vfork, and a group stopped
    // while the child has not exec'd yet leaves the shell in uninterruptible
    // sleep (D) instead of stopped.
    args.extend_from_slice(&["bash", "-c", SCRIPT, "zero", "a b"]);
    let out = detach_cmd(dir, &args)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    assert_eq!(super::result(&out), (0, String::new()));
    let daemon = Daemon::from_pidfile(&dir.join("daemon.pid"));
    started(dir, daemon)
}

/// Waits for the start line of `daemon`; the daemon and its child.
fn started(dir: &Path, daemon: Daemon) -> Logged {
    let prefix = format!("start {} child ", daemon.pid());
    let mut child = None;
    assert!(
        util::poll_until(util::DEADLINE, || {
            child = log(dir).lines().find_map(|l| {
                l.strip_prefix(&prefix)?
                    .split(' ')
                    .next()?
                    .parse::<i32>()
                    .ok()
            });
            child.is_some()
        }),
        "no start line: {}",
        log(dir)
    );
    let child = Identity::of(Pid::from_raw(child.unwrap())).unwrap();
    Logged {
        daemon,
        child: Daemon { id: child },
    }
}

fn log(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("out.log")).unwrap_or_default()
}

/// Exit code and standard output; standard error must be empty.
fn control(dir: &Path, args: &[&str]) -> (i32, String) {
    let out = detach(dir, args);
    assert_eq!(String::from_utf8_lossy(&out.stderr), "", "{args:?}");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

fn state(pid: Pid) -> ProcState {
    Stat::read(pid).unwrap().state
}

#[test]
fn reload_sends_hup_or_the_signal_asked() {
    let dir = open_tempdir();
    let l = start(dir.path(), &[], &[]);
    let pid = l.daemon.pid();
    assert_eq!(
        control(dir.path(), &["--reload", "-p", "daemon.pid"]),
        (0, format!("detach: sent SIGHUP to PID {pid}\n"))
    );
    assert!(util::poll_until(util::DEADLINE, || log(dir.path()).contains("\nHUP\n")));
    let job = format!("{pid}@{}", l.daemon.id.starttime);
    assert_eq!(
        control(dir.path(), &["--reload", "--signal", "USR1", "--job", &job]),
        (0, format!("detach: sent SIGUSR1 to PID {pid}\n"))
    );
    assert!(util::poll_until(util::DEADLINE, || log(dir.path()).contains("\nUSR1\n")));
    assert!(l.daemon.alive());

    let out = detach(
        dir.path(),
        &["--reload", "--signal", "NOPE", "-p", "daemon.pid"],
    );
    assert_eq!(out.status.code(), Some(125));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).lines().next(),
        Some("detach: invalid signal 'NOPE'")
    );
    assert_eq!(
        control(dir.path(), &["--stop", "-p", "daemon.pid"]),
        (0, format!("detach: stopped PID {pid}\n"))
    );
    assert_eq!(
        control(dir.path(), &["--reload", "-p", "daemon.pid"]),
        (
            1,
            format!(
                "detach: not running (no pidfile '{}')\n",
                dir.path().join("daemon.pid").display()
            )
        )
    );
}

#[test]
fn pause_and_resume_the_whole_group() {
    let dir = open_tempdir();
    let l = start(dir.path(), &[], &[]);
    let (pid, child) = (l.daemon.pid(), l.child.pid());
    let pgid = l.daemon.stat().pgrp;
    assert_eq!(Stat::read(child).unwrap().pgrp, pgid);
    assert_eq!(
        control(dir.path(), &["--pause", "-p", "daemon.pid"]),
        (
            0,
            format!("detach: sent SIGSTOP to process group {pgid} (PID {pid})\n")
        )
    );
    // (A tracing stop, from a parallel test's probe, is a stop too.)
    let stopped = |p| matches!(state(p), ProcState::Stopped | ProcState::TracingStop);
    assert!(
        util::poll_until(util::DEADLINE, || stopped(pid) && stopped(child)),
        "daemon {pid}: {:?}, child {child}: {:?}, group {pgid}",
        Stat::read(pid).map(|s| (s.state, s.pgrp)),
        Stat::read(child).map(|s| (s.state, s.pgrp)),
    );
    assert_eq!(
        control(dir.path(), &["--resume", "-p", "daemon.pid"]),
        (
            0,
            format!("detach: sent SIGCONT to process group {pgid} (PID {pid})\n")
        )
    );
    assert!(util::poll_until(util::DEADLINE, || !stopped(pid) && !stopped(child)));
}

/// A paused daemon is stopped by the default schedule (TERM, then wait): the
/// TERM would stay pending while it is stopped, so --stop continues it.
#[test]
fn a_paused_daemon_is_stopped_by_term() {
    let dir = open_tempdir();
    let l = start(dir.path(), &[], &[]);
    let pid = l.daemon.pid();
    assert_eq!(control(dir.path(), &["--pause", "-p", "daemon.pid"]).0, 0);
    assert!(util::poll_until(util::DEADLINE, || {
        state(pid) == ProcState::Stopped
    }));
    assert_eq!(
        control(
            dir.path(),
            &["--stop", "--retry", "TERM/5", "-p", "daemon.pid"]
        ),
        (0, format!("detach: stopped PID {pid}\n"))
    );
}

/// `--restart`: a new daemon, the same argv, -o file and --env value; the
/// restarting caller's environment, not the first caller's.
#[test]
fn restart_runs_the_recorded_command_again() {
    let dir = open_tempdir();
    let first = start(
        dir.path(),
        &["-E", "STORED=kept $x 'q'"],
        &[("EARLY", "first caller only")],
    );
    let old = first.daemon.pid();
    let argv = |p: Pid| std::fs::read(format!("/proc/{p}/cmdline")).unwrap();
    let old_argv = argv(old);
    let out = detach_cmd(dir.path(), &["--restart", "-p", "daemon.pid"])
        .env("LATE", "restarter")
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
    assert_eq!(out.status.code(), Some(0));
    assert!(first.daemon.wait_gone(util::DEADLINE));
    let second = started(
        dir.path(),
        Daemon::from_pidfile(&dir.path().join("daemon.pid")),
    );
    let new = second.daemon.pid();
    assert_ne!(
        (new, second.daemon.id.starttime),
        (old, first.daemon.id.starttime)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!(
            "detach: restarted: stopped PID {old}, started PID {new} (bash -c {} zero 'a b')\n",
            hupkit_common::quote::word(SCRIPT.as_bytes())
        )
    );
    assert_eq!(argv(new), old_argv);
    // The same -o file (truncated, as at the first start), the stored --env,
    // the restarting caller's environment.
    assert_eq!(
        log(dir.path()).lines().next().unwrap(),
        format!(
            "start {new} child {} stored=kept $x 'q' early= late=restarter args=zero,a b",
            second.child.pid()
        )
    );
    // And again, from the record the restart wrote.
    let out = detach_cmd(dir.path(), &["--restart", "-p", "daemon.pid"])
        .output()
        .unwrap();
    assert_eq!(super::result(&out), (0, String::new()));
    assert!(second.daemon.wait_gone(util::DEADLINE));
    let third = Daemon::from_pidfile(&dir.path().join("daemon.pid"));
    let third = started(dir.path(), third);
    assert!(log(dir.path()).contains("stored=kept $x 'q' early= late= args=zero,a b"));
    drop(third);
}

/// A pidfile naming a live process of someone else (a wrong identity): every
/// control refuses, and the process gets nothing.
#[test]
fn a_reused_pid_is_never_signalled() {
    let dir = open_tempdir();
    let foreign =
        util::ChildGuard::new(util::spawn(std::process::Command::new("sleep").arg("300")));
    let pid = foreign.pid();
    let id = Identity::of(pid).unwrap();
    std::fs::write(dir.path().join("daemon.pid"), format!("{pid}\n")).unwrap();
    let wrong = Identity {
        starttime: id.starttime + 1,
        ..id.clone()
    };
    std::fs::write(dir.path().join("daemon.pid.id"), format!("{wrong}\n")).unwrap();
    for mode in ["--reload", "--pause", "--resume", "--restart"] {
        let (code, line) = control(dir.path(), &[mode, "-p", "daemon.pid"]);
        assert_eq!(code, 1, "{mode}: {line}");
        assert!(line.contains(&format!("PID {pid}")), "{mode}: {line}");
        assert_eq!(Identity::of(pid).ok(), Some(id.clone()), "{mode}");
        assert_ne!(state(pid), ProcState::Stopped, "{mode}");
    }
}

/// The record of the daemon started in `dir`.
fn record_path(dir: &Path, d: &Daemon) -> PathBuf {
    dir.join(format!(
        ".local/state/hupkit/jobs/{}-{}.job",
        d.pid(),
        d.id.starttime
    ))
}

fn restart(dir: &Path) -> Output {
    detach(dir, &["--restart", "-p", "daemon.pid"])
}

/// `--restart` refuses a record it cannot trust, with status 4 (1 without
/// one), saying why, and leaves the daemon alone.
#[test]
fn restart_refuses_a_missing_forged_or_foreign_record() {
    let dir = open_tempdir();
    let l = start(dir.path(), &[], &[]);
    let path = record_path(dir.path(), &l.daemon);
    let q = format!("'{}'", path.display());
    let refused = |code: i32, line: String| {
        let out = restart(dir.path());
        assert_eq!(
            (
                out.status.code(),
                String::from_utf8_lossy(&out.stdout).into_owned()
            ),
            (Some(code), format!("detach: {line}\n"))
        );
        assert!(l.daemon.alive());
        assert_ne!(state(l.daemon.pid()), ProcState::Stopped);
    };

    let real = path.with_extension("real");
    std::fs::rename(&path, &real).unwrap();
    refused(
        1,
        format!(
            "cannot restart PID {}: no job record {q} to restart it from \
             (started with HUPKIT_NO_RECORD=1?)",
            l.daemon.pid()
        ),
    );
    std::os::unix::fs::symlink(&real, &path).unwrap();
    refused(4, format!("refusing job record {q}: it is a symbolic link"));
    std::fs::remove_file(&path).unwrap();
    std::fs::rename(&real, &path).unwrap();

    let text = std::fs::read_to_string(&path).unwrap();
    let me = nix::unistd::geteuid().as_raw();
    let other = if me == 65534 { 0 } else { 65534 };
    assert!(text.contains(&format!("\nuid={me}\n")), "{text}");
    std::fs::write(
        &path,
        text.replace(&format!("\nuid={me}\n"), &format!("\nuid={other}\n")),
    )
    .unwrap();
    refused(
        4,
        format!(
            "not restarting from job record {q}: it was written by user {other}, not by the caller"
        ),
    );
    std::fs::write(&path, text.replace(&format!("\nuid={me}\n"), "\n")).unwrap();
    refused(
        4,
        format!(
            "not restarting from job record {q}: it records no user (written by an older detach)"
        ),
    );
    std::fs::write(&path, &text).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    if is_root() {
        std::os::unix::fs::chown(&path, Some(65534), Some(65534)).unwrap();
        refused(
            4,
            format!("refusing job record {q}: it belongs to another user"),
        );
        std::os::unix::fs::chown(&path, Some(0), Some(0)).unwrap();
    }
}

/// A daemon started with `HUPKIT_NO_RECORD=1` has no record: `--restart`
/// says so and leaves it running.
#[test]
fn restart_without_a_record_refuses() {
    let dir = open_tempdir();
    let l = start(dir.path(), &[], &[("HUPKIT_NO_RECORD", "1")]);
    let path = record_path(dir.path(), &l.daemon);
    assert!(!path.exists());
    let out = restart(dir.path());
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!(
            "detach: cannot restart PID {}: no job record '{}' to restart it from \
             (started with HUPKIT_NO_RECORD=1?)\n",
            l.daemon.pid(),
            path.display()
        )
    );
    assert!(l.daemon.alive());
}
