//! `rdisown --scope`: a job started plainly (`&`) in an ssh login, moved out
//! of the session's scope after the fact, lives after a
//! `KillUserProcesses=yes` logout, while a job only cut loose dies; and on a
//! machine without systemd it says so and changes nothing.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use hupkit_common::proc::Status;
use hupkit_common::signal::Disposition;
use nix::sys::signal::Signal;
use nix::unistd::Pid;

use crate::util::container::{self, Container, Login, Procs, poll_slowly};
use crate::util::{self, ChildGuard};

/// How long after the logout the survivors are watched: past logind's
/// `UserStopDelaySec=` (10 s), as the research note measured.
const AFTER_LOGOUT: Duration = Duration::from_secs(15);

/// alice starts `sh -c 'sleep 1000; :' &` (a job of two processes: sh and
/// its child) and `sleep 1001 &`; returns the three processes (guarded).
fn start_jobs<'c>(ct: &'c Container, login: &mut Login<'_>) -> (Procs<'c>, [container::Proc; 3]) {
    login.send("sh -c 'sleep 1000; :' & a=$!; sleep 1001 & b=$!; echo J\"\"OBS $a $b");
    let jobs = login.answer("JOBS");
    let mut guard = Procs::new(ct);
    let pids: Vec<u32> = jobs
        .split_whitespace()
        .map(|w| {
            w.parse()
                .unwrap_or_else(|_| panic!("bad JOBS line: '{jobs}'"))
        })
        .collect();
    assert_eq!(pids.len(), 2, "JOBS line: '{jobs}'");
    let mut child = None;
    let found = poll_slowly(util::DEADLINE, || {
        child = ct
            .root(&format!("cat /proc/{0}/task/{0}/children", pids[0]))
            .split_whitespace()
            .next()
            .and_then(|w| w.parse().ok());
        child.is_some()
    });
    assert!(found, "sh -c 'sleep 1000; :' never forked its sleep");
    let procs = [pids[0], child.unwrap_or_default(), pids[1]].map(|pid| {
        ct.process(pid)
            .unwrap_or_else(|| panic!("job process {pid} is not running"))
    });
    guard.list.extend(procs);
    (guard, procs)
}

#[test]
fn rdisown_scope_job_lives_after_a_killing_logout_with_linger_and_a_cut_loose_one_dies() {
    let name = "logout::rdisown::rdisown_scope_job_lives_after_a_killing_logout_with_linger_and_a_cut_loose_one_dies";
    let Some(ct) = container::get(name) else {
        return;
    };
    let bin = ct.install(&["rdisown"]);
    let _settings = ct.lock_settings();
    ct.set_kill_user_processes(true);
    ct.set_linger(true);
    let mut login = ct.login("alice");
    let (_guard, [sh, child, plain]) = start_jobs(&ct, &mut login);
    let (status, out, err) = login.run("S", &format!("{bin}/rdisown --scope %1"));
    assert_eq!(
        (status.as_str(), err.as_str()),
        ("0", ""),
        "rdisown --scope %1 (with linger): {out}"
    );
    let scope = format!("hupkit-sh-{}-{}.scope", sh.pid, sh.start);
    assert!(
        out.starts_with(&format!(
            "rdisown: [1] PID {} (sh -c 'sleep 1000; :'): moved to {scope} (2 processes)|",
            sh.pid
        )),
        "rdisown --scope %1 said: {out}"
    );
    for p in [sh, child] {
        let cg = ct.cgroup(p);
        assert!(
            cg.ends_with(&format!("/{scope}")) && cg.contains("/user@1000.service/"),
            "PID {} of the moved job is in '{cg}'",
            p.pid
        );
        let ignored = ct.root(&format!("grep SigIgn /proc/{}/status", p.pid));
        let mask = u64::from_str_radix(ignored.trim().trim_start_matches("SigIgn:").trim(), 16)
            .unwrap_or_default();
        assert!(
            mask & 1 == 1,
            "PID {} was not also cut loose: {ignored}",
            p.pid
        );
    }
    let record = ct.root(&format!(
        "cat /home/alice/.local/state/hupkit/jobs/{}-{}.job",
        sh.pid, sh.start
    ));
    assert!(
        record.lines().any(|l| l == format!("scope={scope}")),
        "the job record names the scope: {record}"
    );
    let (status, _, err) = login.run("P", &format!("{bin}/rdisown %2"));
    assert_eq!((status.as_str(), err.as_str()), ("0", ""), "rdisown %2");
    assert!(
        ct.cgroup(plain).ends_with(&format!("/{}", login.session)),
        "the job only cut loose is in the session"
    );
    login.logout();
    let plain_died = poll_slowly(util::DEADLINE, || !ct.alive(plain));
    let mut moved_died = false;
    poll_slowly(AFTER_LOGOUT, || {
        moved_died = !ct.alive(sh) || !ct.alive(child);
        moved_died
    });
    ct.set_linger(false);
    assert!(
        plain_died,
        "a job cut loose by rdisown without --scope survived a KillUserProcesses=yes logout"
    );
    assert!(
        !moved_died,
        "the job moved by rdisown --scope died within {AFTER_LOGOUT:?} of the logout, with linger"
    );
}

#[test]
fn rdisown_scope_without_linger_says_the_job_will_die_at_the_last_logout() {
    let name =
        "logout::rdisown::rdisown_scope_without_linger_says_the_job_will_die_at_the_last_logout";
    let Some(ct) = container::get(name) else {
        return;
    };
    let bin = ct.install(&["rdisown"]);
    let _settings = ct.lock_settings();
    ct.set_linger(false);
    let mut login = ct.login("alice");
    let (_guard, [sh, _, _]) = start_jobs(&ct, &mut login);
    let (status, out, err) = login.run("W", &format!("{bin}/rdisown --scope %1"));
    assert_eq!(status, "0", "rdisown --scope %1: {out} {err}");
    assert_eq!(
        err,
        "rdisown: warning: the job will still die at the last logout of alice, who does not \
         linger: its scope ends with the user's service manager (rdisown --linger, or loginctl \
         enable-linger)"
    );
    assert!(
        ct.cgroup(sh).contains("/hupkit-sh-"),
        "moved all the same: {}",
        ct.cgroup(sh)
    );
    login.logout();
}

/// On a machine without systemd (this one, unless it runs systemd): one
/// line, status 1, and the process exactly as it was: SIGHUP not ignored,
/// descriptors, cgroup, no record, no nohup.out.
#[test]
fn rdisown_scope_without_systemd_says_so_and_changes_nothing() {
    if Path::new("/run/systemd/system").is_dir() {
        eprintln!(
            "skipped: logout::rdisown::rdisown_scope_without_systemd_says_so_and_changes_nothing: systemd runs here"
        );
        return;
    }
    let dir = util::open_tempdir();
    let victim = ChildGuard::new(util::spawn(
        Command::new("sleep")
            .arg("300")
            .stdin(std::process::Stdio::null()),
    ));
    let pid = victim.pid();
    let fds = |pid: Pid| -> Vec<String> {
        (0..3)
            .map(|fd| {
                std::fs::read_link(format!("/proc/{pid}/fd/{fd}"))
                    .map_or_else(|_| "closed".into(), |p| p.display().to_string())
            })
            .collect()
    };
    let cgroup = |pid: Pid| std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok();
    let before = (fds(pid), cgroup(pid));
    let out = Command::new(util::bin("rdisown"))
        .args(["--scope", &pid.to_string()])
        .current_dir(dir.path())
        .env("XDG_STATE_HOME", dir.path().join("state"))
        .output()
        .expect("run rdisown");
    assert_eq!(
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned()
        ),
        (
            Some(1),
            String::new(),
            "rdisown: cannot use --scope: no systemd: it is not the service manager here \
             (/run/systemd/system does not exist)\n"
                .to_owned()
        )
    );
    let status = Status::read(pid).expect("the process lives");
    assert_eq!(status.tracer_pid, 0);
    assert_ne!(
        status.disposition(Signal::SIGHUP),
        Disposition::Ignore,
        "SIGHUP was made ignored"
    );
    assert_eq!((fds(pid), cgroup(pid)), before, "the process was changed");
    assert!(
        std::fs::read_dir(dir.path())
            .expect("read the temp dir")
            .next()
            .is_none(),
        "rdisown left files (nohup.out, a record) in {}",
        dir.path().display()
    );
    drop(victim);
}

/// A job that forks all the time (a loop of short-lived children): the
/// children that exit while it is moved do not make the move fail, and the
/// loop ends up in the scope. Three times, each a new job.
#[test]
fn rdisown_scope_moves_a_job_that_keeps_forking() {
    let name = "logout::rdisown::rdisown_scope_moves_a_job_that_keeps_forking";
    let Some(ct) = container::get(name) else {
        return;
    };
    let bin = ct.install(&["rdisown"]);
    let mut login = ct.login("alice");
    let mut guard = Procs::new(&ct);
    for round in 1..=3 {
        login.send(&format!(
            "sh -c 'while :; do sleep 0.001; done' & echo L{round}\"\"OOP $!"
        ));
        let pid: u32 = login
            .answer(&format!("L{round}OOP"))
            .parse()
            .expect("the loop's PID");
        let lp = ct.process(pid).expect("the loop runs");
        guard.list.push(lp);
        let (status, out, err) = login.run(
            &format!("F{round}"),
            &format!("{bin}/rdisown --scope --null %{round}"),
        );
        assert_eq!(status, "0", "round {round}: {out} {err}");
        let cg = ct.cgroup(lp);
        assert!(
            cg.ends_with(&format!("/hupkit-sh-{}-{}.scope", lp.pid, lp.start)),
            "round {round}: the loop is in '{cg}': {out} {err}"
        );
    }
    drop(guard);
    login.logout();
}
