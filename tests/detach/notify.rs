//! --notify: ready, dead first, ERRNO=, timeout.

use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use super::{Daemon, detach, open_tempdir, result};

/// `detach --notify=20 -p d.pid` in `dir`, of a daemon that sends `payload`
/// to the notify socket, then sleeps.
pub fn start_notifier(dir: &Path, payload: &str) -> Output {
    let script = format!(
        "import os,socket,time\ns=socket.socket(socket.AF_UNIX,socket.SOCK_DGRAM)\ns.sendto({payload:?}.encode(),os.environ['NOTIFY_SOCKET'])\ntime.sleep(60)\n"
    );
    detach(
        dir,
        &["--notify=20", "-p", "d.pid", "python3", "-c", &script],
    )
}

#[test]
fn ready_daemon() {
    let dir = open_tempdir();
    let out = start_notifier(dir.path(), "STATUS=warming up\nREADY=1");
    assert_eq!(result(&out), (0, String::new()));
    let d = Daemon::from_pidfile(&dir.path().join("d.pid"));
    assert!(d.alive());
}

#[test]
fn daemon_that_dies_first_fails_at_once() {
    let dir = open_tempdir();
    let start = Instant::now();
    let out = detach(
        dir.path(),
        &["--notify=30", "-p", "d.pid", "sh", "-c", "exit 3"],
    );
    let (code, err) = result(&out);
    assert_eq!(code, 125);
    assert!(
        err.starts_with("detach: daemon PID ")
            && err.ends_with(" exited with status 3 before it was ready\n"),
        "{err}"
    );
    assert!(
        start.elapsed() < Duration::from_secs(20),
        "did not wait for the timeout"
    );
    assert!(!dir.path().join("d.pid").exists());
}

#[test]
fn errno_fails_and_stops_the_daemon() {
    let dir = open_tempdir();
    let out = start_notifier(dir.path(), "ERRNO=13");
    let (code, err) = result(&out);
    assert_eq!(code, 125);
    assert!(
        err.contains("reported failure (ERRNO=13); stopped it: Permission denied"),
        "{err}"
    );
    assert!(!dir.path().join("d.pid").exists());
}

#[test]
fn timeout_fails_and_stops_the_daemon() {
    let dir = open_tempdir();
    let out = detach(
        dir.path(),
        &[
            "--notify=1",
            "-p",
            "d.pid",
            "-o",
            "out",
            "sh",
            "-c",
            "echo $$; exec sleep 60",
        ],
    );
    let (code, err) = result(&out);
    assert_eq!(code, 125);
    assert!(
        err.ends_with(" was not ready after 1 seconds; stopped it\n"),
        "{err}"
    );
    let pid: i32 = std::fs::read_to_string(dir.path().join("out"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(
        crate::util::poll_until(crate::util::DEADLINE, || hupkit_common::proc::Stat::read(
            nix::unistd::Pid::from_raw(pid)
        )
        .map_or(true, |s| s.state == hupkit_common::proc::ProcState::Zombie)),
        "the unready daemon was stopped"
    );
    assert!(!dir.path().join("d.pid").exists());
}
