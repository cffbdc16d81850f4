//! Locks, pidfiles and identity: single instance, safe files, PID reuse, zombies.

use std::os::unix::fs::MetadataExt;
use std::process::Command;
use std::time::Duration;

use hupkit_common::identity::Identity;
use nix::unistd::Pid;

use super::{
    Daemon, as_nobody, detach, detach_cmd, open_tempdir, result, root_tempdir, shared_dir,
};
use crate::util::{self, ChildGuard};

/// 50 concurrent starts on one lock leave exactly one daemon.
#[test]
fn concurrent_starts_leave_one_daemon() {
    let dir = open_tempdir();
    let children: Vec<_> = (0..50)
        .map(|i| {
            detach_cmd(
                dir.path(),
                &["-l", "the.lock", "-p", &format!("p{i}.pid"), "sleep", "60"],
            )
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
        })
        .collect();
    let outs: Vec<_> = children
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
        .collect();
    let started: Vec<usize> = (0..50)
        .filter(|i| outs[*i].status.code() == Some(0))
        .collect();
    assert_eq!(started.len(), 1, "exactly one start succeeds");
    let d = Daemon::from_pidfile(&dir.path().join(format!("p{}.pid", started[0])));
    let expected = format!(
        "detach: already running (PID {}, lock '{}')\n",
        d.pid(),
        dir.path().join("the.lock").display()
    );
    for (i, out) in outs.iter().enumerate() {
        if i != started[0] {
            assert_eq!(result(out), (1, expected.clone()));
            assert!(!dir.path().join(format!("p{i}.pid")).exists());
        }
    }
    assert_eq!(
        std::fs::metadata(dir.path().join("the.lock"))
            .unwrap()
            .mode()
            & 0o777,
        0o644
    );
}

/// The lock dies with the daemon, even with SIGKILL; its orphaned children never hold it.
#[test]
fn lock_is_free_when_the_daemon_is_gone() {
    let dir = open_tempdir();
    let out = detach(
        dir.path(),
        &[
            "-l",
            "l",
            "-p",
            "a.pid",
            "sh",
            "-c",
            "sleep 60 & echo $! > $0; exec sleep 60",
            &dir.path().join("gc.pid").to_string_lossy(),
        ],
    );
    assert_eq!(result(&out), (0, String::new()));
    let a = Daemon::from_pidfile(&dir.path().join("a.pid"));
    assert!(util::poll_until(util::DEADLINE, || {
        std::fs::read_to_string(dir.path().join("gc.pid")).is_ok_and(|t| t.ends_with('\n'))
    }));
    let gc_pid: i32 = std::fs::read_to_string(dir.path().join("gc.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let grandchild = Daemon {
        id: Identity::of(Pid::from_raw(gc_pid)).unwrap(),
    };

    let out = detach(dir.path(), &["-l", "l", "-p", "b.pid", "sleep", "60"]);
    assert_eq!(
        result(&out),
        (
            1,
            format!(
                "detach: already running (PID {}, lock '{}')\n",
                a.pid(),
                dir.path().join("l").display()
            )
        )
    );

    a.signal(nix::sys::signal::Signal::SIGKILL);
    assert!(a.wait_gone(util::DEADLINE));
    assert!(grandchild.alive(), "the daemon's child outlives it");
    let out = detach(dir.path(), &["-l", "l", "-p", "b.pid", "sleep", "60"]);
    assert_eq!(
        result(&out),
        (0, String::new()),
        "a dead daemon never blocks the next start"
    );
    let _b = Daemon::from_pidfile(&dir.path().join("b.pid"));
}

/// A live daemon named by the pidfile blocks a second start, even without -l.
#[test]
fn live_pidfile_blocks_a_second_start() {
    let dir = open_tempdir();
    assert_eq!(
        result(&detach(dir.path(), &["-p", "d.pid", "sleep", "60"])),
        (0, String::new())
    );
    let d = Daemon::from_pidfile(&dir.path().join("d.pid"));
    let out = detach(dir.path(), &["-p", "d.pid", "touch", "ran"]);
    assert_eq!(
        result(&out),
        (
            1,
            format!(
                "detach: already running (PID {}, pidfile '{}')\n",
                d.pid(),
                dir.path().join("d.pid").display()
            )
        )
    );
    assert!(!dir.path().join("ran").exists());
}

/// A symlink planted by nobody in a sticky, world-writable directory is refused,
/// and its target is untouched; so is a file nobody owns there.
#[test]
fn planted_symlink_and_foreign_file_are_refused() {
    let Some(dir) = root_tempdir("needs root to plant as nobody") else {
        return;
    };
    let shared = shared_dir(dir.path());
    let target = dir.path().join("precious");
    std::fs::write(&target, "root's data\n").unwrap();
    let plant = format!(
        "ln -s {} {}/evil.pid && touch {}/theirs.pid {}/theirs.lock",
        target.display(),
        shared.display(),
        shared.display(),
        shared.display()
    );
    let out = as_nobody(dir.path(), std::path::Path::new("/bin/sh"), &["-c", &plant]);
    assert!(out.status.success(), "{out:?}");

    let evil = shared.join("evil.pid");
    let out = detach(dir.path(), &["-p", &evil.to_string_lossy(), "touch", "ran"]);
    assert_eq!(
        result(&out),
        (
            125,
            format!(
                "detach: refusing pidfile '{}': it is a symbolic link\n",
                evil.display()
            )
        )
    );
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "root's data\n");
    assert!(!dir.path().join("ran").exists());

    let theirs = shared.join("theirs.pid");
    let out = detach(
        dir.path(),
        &["-p", &theirs.to_string_lossy(), "touch", "ran"],
    );
    assert_eq!(
        result(&out),
        (
            125,
            format!(
                "detach: refusing pidfile '{}': it belongs to another user, in a directory others can write to\n",
                theirs.display()
            )
        )
    );
    let lock = shared.join("theirs.lock");
    let out = detach(dir.path(), &["-l", &lock.to_string_lossy(), "touch", "ran"]);
    assert_eq!(
        result(&out),
        (
            125,
            format!(
                "detach: refusing lock file '{}': it belongs to another user, in a directory others can write to\n",
                lock.display()
            )
        )
    );
    assert!(!dir.path().join("ran").exists());
}

/// --status: running, not running, dead, unverified, unusable.
#[test]
fn status_codes() {
    let dir = open_tempdir();
    let status = |p: &str| {
        result(
            &detach_cmd(dir.path(), &["--status", "-p", p])
                .output()
                .unwrap(),
        )
        .0
    };
    assert_eq!(status("none.pid"), 3);
    assert_eq!(
        result(&detach(dir.path(), &["-p", "d.pid", "sleep", "60"])).0,
        0
    );
    let d = Daemon::from_pidfile(&dir.path().join("d.pid"));
    let out = detach_cmd(dir.path(), &["--status", "-p", "d.pid"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("detach: running (PID {})\n", d.pid())
    );
    d.signal(nix::sys::signal::Signal::SIGKILL);
    assert!(d.wait_gone(util::DEADLINE));
    assert_eq!(
        status("d.pid"),
        1,
        "dead (or a zombie not yet reaped by init), pidfile left"
    );
    std::fs::write(dir.path().join("bad.pid"), "hello\n").unwrap();
    assert_eq!(status("bad.pid"), 4);
    // No identity record: alive but unverified (0), and --stop refuses (4).
    let mut other = ChildGuard::new(Command::new("sleep").arg("60").spawn().unwrap());
    std::fs::write(dir.path().join("raw.pid"), format!("{}\n", other.pid())).unwrap();
    assert_eq!(status("raw.pid"), 0);
    let out = detach_cmd(dir.path(), &["--stop", "-p", "raw.pid"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4));
    assert!(
        other.0.as_mut().unwrap().try_wait().unwrap().is_none(),
        "an unverified process is never signalled"
    );
}

/// A pidfile whose PID now belongs to another process: not running, never signalled.
#[test]
fn reused_pid_is_not_the_daemon() {
    let dir = open_tempdir();
    let mut other = ChildGuard::new(Command::new("sleep").arg("60").spawn().unwrap());
    let real = Identity::of(other.pid()).unwrap();
    let stale = Identity {
        starttime: real.starttime - 1,
        ..real
    };
    std::fs::write(dir.path().join("d.pid"), format!("{}\n", stale.pid)).unwrap();
    std::fs::write(dir.path().join("d.pid.id"), format!("{stale}\n")).unwrap();
    let out = detach_cmd(dir.path(), &["--status", "-p", "d.pid"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let out = detach_cmd(dir.path(), &["--stop", "-p", "d.pid"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("detach: not running (PID {} is gone)\n", stale.pid)
    );
    assert!(
        other.0.as_mut().unwrap().try_wait().unwrap().is_none(),
        "the process that reused the PID lives"
    );
    assert!(
        !dir.path().join("d.pid").exists(),
        "the stale pidfile is removed"
    );
    // A start is not blocked by it either.
    std::fs::write(dir.path().join("d.pid"), format!("{}\n", stale.pid)).unwrap();
    std::fs::write(dir.path().join("d.pid.id"), format!("{stale}\n")).unwrap();
    assert_eq!(
        result(&detach(dir.path(), &["-p", "d.pid", "sleep", "60"])),
        (0, String::new())
    );
    let _d = Daemon::from_pidfile(&dir.path().join("d.pid"));
}

/// A zombie is not a running daemon.
#[test]
fn zombie_is_not_running() {
    let dir = open_tempdir();
    let mut z = ChildGuard::new(Command::new("true").spawn().unwrap());
    let pid = z.pid();
    assert!(util::poll_until(util::DEADLINE, || {
        hupkit_common::proc::Stat::read(pid)
            .is_ok_and(|s| s.state == hupkit_common::proc::ProcState::Zombie)
    }));
    let id = Identity::of(pid).unwrap();
    std::fs::write(dir.path().join("z.pid"), format!("{pid}\n")).unwrap();
    std::fs::write(dir.path().join("z.pid.id"), format!("{id}\n")).unwrap();
    assert_eq!(
        detach_cmd(dir.path(), &["--status", "-p", "z.pid"])
            .output()
            .unwrap()
            .status
            .code(),
        Some(1)
    );
    assert_eq!(
        detach_cmd(dir.path(), &["--stop", "-p", "z.pid"])
            .output()
            .unwrap()
            .status
            .code(),
        Some(1)
    );
    assert!(z.wait(Duration::from_secs(5)).is_some());
}

/// --stop: the schedule, "refused to die", and the pidfile removed after a stop.
#[test]
fn stop_with_schedule() {
    let dir = open_tempdir();
    let script = "trap '' TERM; echo ready > ready; while :; do sleep 1; done";
    assert_eq!(
        result(&detach(
            dir.path(),
            &["-p", "d.pid", "-c", ".", "sh", "-c", script]
        )),
        (0, String::new())
    );
    let d = Daemon::from_pidfile(&dir.path().join("d.pid"));
    assert!(util::poll_until(util::DEADLINE, || dir
        .path()
        .join("ready")
        .exists()));
    let out = detach_cmd(dir.path(), &["--stop", "-p", "d.pid", "--retry", "TERM/1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("detach: PID {} refused to die\n", d.pid())
    );
    assert!(d.alive() && dir.path().join("d.pid").exists());
    let out = detach_cmd(
        dir.path(),
        &["--stop", "-p", "d.pid", "--retry", "TERM/1/KILL/10"],
    )
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("detach: stopped PID {}\n", d.pid())
    );
    assert!(!d.alive());
    assert!(!dir.path().join("d.pid").exists() && !dir.path().join("d.pid.id").exists());
    let out = detach_cmd(dir.path(), &["--stop", "-p", "d.pid"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
}

/// Under `ulimit -f 0` detach still starts the daemon and succeeds: its job
/// record, which cannot be written, is skipped (no SIGXFSZ death, no temporary
/// file left in the store).
#[test]
fn file_size_limit_skips_the_job_record() {
    use std::os::unix::process::CommandExt;
    let dir = open_tempdir();
    let here = dir.path().to_str().unwrap();
    let mut cmd = detach_cmd(dir.path(), &["--chdir", here, "--", "mkdir", "ran"]);
    // SAFETY: setrlimit is async-signal-safe and touches no memory of ours.
    unsafe {
        cmd.pre_exec(|| {
            let zero = nix::libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            if nix::libc::setrlimit(nix::libc::RLIMIT_FSIZE, &raw const zero) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = cmd.output().unwrap();
    assert_eq!(result(&out), (0, String::new()));
    assert!(util::poll_until(util::DEADLINE, || dir
        .path()
        .join("ran")
        .is_dir()));
    let store = dir.path().join(".local/state/hupkit/jobs");
    let left: Vec<_> = std::fs::read_dir(&store)
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "{left:?}");
}
