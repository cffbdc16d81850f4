//! Races: many tool instances at once on one file or lock, and targets that
//! exit while the tools work on them.

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::util;

/// 100 concurrent rnohup writers to one output file: no line is lost.
#[test]
fn concurrent_rnohup_writers_lose_no_line() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let children: Vec<_> = (0..100)
        .map(|i| {
            Command::new(util::bin("rnohup"))
                .args([
                    "--output",
                    "shared.log",
                    "sh",
                    "-c",
                    &format!("for n in 1 2 3 4 5 6 7 8 9 10; do echo w{i}-$n; done"),
                ])
                .current_dir(dir.path())
                .env_clear()
                .env("PATH", "/usr/bin:/bin")
                .env("XDG_STATE_HOME", &state)
                .stdin(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
    let text = std::fs::read_to_string(dir.path().join("shared.log")).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1000, "every line, whole");
    lines.sort_unstable();
    lines.dedup();
    assert_eq!(lines.len(), 1000, "no line torn or doubled");
    // ...and 100 concurrent record writers: 100 records.
    let records = std::fs::read_dir(state.join("hupkit/jobs"))
        .unwrap()
        .count();
    assert_eq!(records, 100, "one record per rnohup, none lost");
}

/// 100 concurrent detach starts on one lock: exactly one daemon.
#[test]
fn hundred_concurrent_detach_starts_leave_one_daemon() {
    let dir = tempfile::tempdir().unwrap();
    let children: Vec<_> = (0..100)
        .map(|i| {
            Command::new(util::bin("detach"))
                .args(["-l", "one.lock", "-p", &format!("p{i}.pid"), "sleep", "60"])
                .current_dir(dir.path())
                .env_clear()
                .env("PATH", "/usr/bin:/bin")
                .env("HUPKIT_NO_RECORD", "1")
                .stdin(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    let codes: Vec<i32> = children
        .into_iter()
        .map(|c| c.wait_with_output().unwrap().status.code().unwrap_or(-1))
        .collect();
    assert_eq!(codes.iter().filter(|c| **c == 0).count(), 1, "{codes:?}");
    assert_eq!(codes.iter().filter(|c| **c == 1).count(), 99, "{codes:?}");
    let winner = (0..100)
        .find(|i| dir.path().join(format!("p{i}.pid")).exists())
        .unwrap();
    let pid: i32 = std::fs::read_to_string(dir.path().join(format!("p{winner}.pid")))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let fd = hupkit_common::pidfd::PidFd::open(nix::unistd::Pid::from_raw(pid)).unwrap();
    fd.signal(nix::sys::signal::Signal::SIGKILL).unwrap();
    assert!(fd.wait_exit(util::DEADLINE).unwrap());
}

/// Targets that exit while the tools work on them: a clean answer, never a
/// hang, a panic or a wrong target.
#[test]
fn targets_that_exit_mid_operation() {
    for round in 0..30 {
        let mut short = util::ChildGuard::new(
            Command::new("sleep")
                .arg(format!("0.0{}", round % 9 + 1))
                .spawn()
                .unwrap(),
        );
        let pid = short.pid().to_string();
        for (tool, args) in [
            ("disown", vec!["--null", pid.as_str()]),
            ("rbg", vec![pid.as_str()]),
            ("rjobs", vec!["--explain", pid.as_str()]),
        ] {
            let mut cmd = Command::new(util::bin(tool));
            cmd.args(&args)
                .env("HUPKIT_NO_RECORD", "1")
                .stdout(Stdio::null())
                .stderr(Stdio::piped());
            let mut child = util::ChildGuard::new(cmd.spawn().unwrap());
            let status = child
                .wait(Duration::from_secs(15))
                .unwrap_or_else(|| panic!("{tool} hung"));
            assert!(
                matches!(status.code(), Some(0 | 1)),
                "{tool} round {round}: {status:?}"
            );
        }
        let _ = short.wait(util::DEADLINE);
    }
}
