//! The hangup test: a terminal whose master side is closed (a dropped ssh link).
//!
//! The program under test is a session leader with the pseudo-terminal as its
//! controlling terminal, so the kernel sends it SIGHUP when the master closes. A
//! plain command dies of it; under rnohup (and GNU nohup) it lives on, and what it
//! prints after the hangup lands in nohup.out.

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};

use super::{GNU, gnu_available};
use crate::util::{self, ChildGuard, Pty};

/// Waits for `ready`, then for `go`, then prints: the test hangs up in between.
const PROBE: &str = "echo ready > ready; while [ ! -e go ]; do sleep 0.01; done; echo out";

/// Runs `wrapper... sh -c PROBE` as a session leader on a fresh terminal, hangs
/// the terminal up once the probe is ready, and returns how it ended and what
/// nohup.out holds.
fn hangup(wrapper: &[&Path]) -> (String, Option<String>) {
    let dir = tempfile::tempdir().unwrap();
    let pty = util::pty();
    let (program, rest) = match wrapper.split_first() {
        Some((first, rest)) => (first.to_path_buf(), rest.to_vec()),
        None => (Path::new("/bin/sh").to_path_buf(), Vec::new()),
    };
    let mut cmd = Command::new(&program);
    cmd.args(rest);
    if !wrapper.is_empty() {
        cmd.arg("sh");
    }
    cmd.args(["-c", PROBE])
        .current_dir(dir.path())
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("LC_ALL", "C")
        .env("HOME", dir.path())
        .stdin(Stdio::from(pty.slave.try_clone().unwrap()))
        .stdout(Stdio::from(pty.slave.try_clone().unwrap()))
        .stderr(Stdio::from(pty.slave.try_clone().unwrap()));
    hupkit_common::pty::session_leader_on_exec(&mut cmd);
    let child = util::spawn(&mut cmd);
    drop(cmd);
    let Pty { master, slave, .. } = pty;
    drop(slave);
    let mut guard = ChildGuard::new(child);
    let pgid = guard.pid();
    assert!(
        util::poll_until(util::DEADLINE, || dir.path().join("ready").exists()),
        "probe never got ready"
    );
    // The hangup: the kernel signals the session leader from inside close().
    drop(master);
    fs::write(dir.path().join("go"), "").unwrap();
    let status = util::describe(guard.wait(util::DEADLINE));
    util::kill_group(pgid);
    let out = fs::read_to_string(dir.path().join("nohup.out")).ok();
    (status, out)
}

#[test]
fn plain_command_dies_of_sighup() {
    let (status, out) = hangup(&[]);
    assert_eq!(status, "signal 1");
    assert_eq!(out, None);
}

#[test]
fn rnohup_command_survives_hangup() {
    let rnohup = util::bin("rnohup");
    let (status, out) = hangup(&[&rnohup]);
    assert_eq!(status, "exit 0");
    assert_eq!(out.as_deref(), Some("out\n"));
}

#[test]
fn gnu_nohup_survives_hangup_too() {
    if !gnu_available() {
        eprintln!("skipped: {GNU} is not GNU coreutils 9.x");
        return;
    }
    let (status, out) = hangup(&[Path::new(GNU)]);
    assert_eq!(status, "exit 0");
    assert_eq!(out.as_deref(), Some("out\n"));
}
