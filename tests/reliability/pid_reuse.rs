//! PID reuse, simulated (a stale `PID@STARTTIME`) and real (forced through
//! `/proc/sys/kernel/ns_last_pid`): no tool ever acts on the process that now
//! holds the PID.

use std::process::{Command, Output};

use crate::util;

/// A PID whose process is no longer the one named (simulated PID reuse:
/// PID@STARTTIME with a wrong start time): no tool acts on the live process.
#[test]
fn reused_pids_are_never_acted_on() {
    let mut victim = util::ChildGuard::new(Command::new("sleep").arg("60").spawn().unwrap());
    let pid = victim.pid();
    let id = hupkit_common::identity::Identity::of(pid).unwrap();
    let stale = format!("{pid}@{}", id.starttime + 1);
    for (tool, out) in act_on(&stale) {
        assert_eq!(out.status.code(), Some(1), "{tool}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("reused"),
            "{tool}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert_untouched(&mut victim, "the victim");
}

/// rbg, disown and rjobs --explain, each given `stale` (a `PID@STARTTIME`
/// that no longer names the process holding the PID): their outputs.
fn act_on(stale: &str) -> Vec<(&'static str, Output)> {
    [
        ("rbg", None),
        ("disown", Some("--null")),
        ("rjobs", Some("--explain")),
    ]
    .into_iter()
    .map(|(tool, opt)| {
        let args: Vec<&str> = opt.into_iter().chain([stale]).collect();
        (tool, util::run_tool(tool, &args))
    })
    .collect()
}

/// Asserts that `who` (the process `p` guards) was not acted on: it lives,
/// does not ignore SIGHUP and is not traced.
fn assert_untouched(p: &mut util::ChildGuard, who: &str) {
    let st = hupkit_common::proc::Status::read(p.pid()).unwrap();
    assert!(
        !st.sig_ign.contains(nix::sys::signal::Signal::SIGHUP) && st.tracer_pid == 0,
        "{who} untouched"
    );
    assert!(
        p.0.as_mut().unwrap().try_wait().unwrap().is_none(),
        "{who} lives"
    );
}

/// Clock ticks since boot, as /proc/PID/stat's start times count them (`USER_HZ` 100).
fn now_ticks() -> u64 {
    let up = std::fs::read_to_string("/proc/uptime").unwrap();
    let secs: f64 = up.split_ascii_whitespace().next().unwrap().parse().unwrap();
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let ticks = (secs * 100.0) as u64;
    ticks
}

/// A real PID reuse, forced through `/proc/sys/kernel/ns_last_pid`: a process
/// that now holds a PID once named by another is never acted on.
#[test]
fn real_pid_reuse_is_never_acted_on() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: needs root to set ns_last_pid");
        return;
    }
    for _ in 0..50 {
        let mut old = Command::new("sleep").arg("60").spawn().unwrap();
        let pid = i32::try_from(old.id()).unwrap();
        let old_id =
            hupkit_common::identity::Identity::of(nix::unistd::Pid::from_raw(pid)).unwrap();
        old.kill().unwrap();
        old.wait().unwrap();
        // Let the clock move on, so the new process's start time differs.
        assert!(util::poll_until(util::DEADLINE, || now_ticks() > old_id.starttime + 2));
        if std::fs::write("/proc/sys/kernel/ns_last_pid", (pid - 1).to_string()).is_err() {
            eprintln!("skipped: ns_last_pid is not writable here");
            return;
        }
        let mut new = util::ChildGuard::new(Command::new("sleep").arg("60").spawn().unwrap());
        if new.pid().as_raw() != pid {
            continue; // another process took the PID first: try again
        }
        let stale = format!("{pid}@{}", old_id.starttime);
        for (tool, out) in act_on(&stale) {
            assert_eq!(
                out.status.code(),
                Some(1),
                "{tool}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        // detach --stop with the old daemon's pidfile and identity: not running.
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("d.pid"), format!("{pid}\n")).unwrap();
        std::fs::write(dir.path().join("d.pid.id"), format!("{old_id}\n")).unwrap();
        let out = Command::new(util::bin("detach"))
            .args(["--stop", "-p", "d.pid"])
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1));
        assert_untouched(&mut new, "the new process");
        return;
    }
    panic!("could not make a PID be reused in 50 attempts");
}
