//! The logout level, against a real systemd + logind + sshd
//! (`cargo xtask container up`): alice logs in over real ssh, starts jobs,
//! types `exit`, and root looks at who lived.
//!
//! The baseline here is the control experiment the scope level is measured
//! against: with `KillUserProcesses=yes` (and no linger) logind kills the whole
//! session scope, so a plain `&` job and a `setsid` one die alike; with `=no`
//! both live (bash gives background jobs their own process group and does not
//! hang them up on `exit`).

mod forecast;
mod helper;
mod lab;
mod private;
mod rdisown;

use std::time::Duration;

mod scope;
mod unit;

use crate::util::container::{self, Container, Procs, poll_slowly};

/// How long survivors are watched after logind has processed the logout.
const WATCH: Duration = Duration::from_secs(3);

/// alice starts `sleep 1000 &` and `setsid sleep 1001 &` in an ssh login, both
/// in the login's session scope, and logs out; returns the session and the two
/// processes (guarded: killed at the end of the test).
fn start_two_jobs_and_log_out(ct: &Container) -> (String, Procs<'_>) {
    let mut login = ct.login("alice");
    // The setsid'd job tells its own PID through a file: setsid forks when the
    // shell made it a process-group leader, so `$!` is not the sleep.
    login.send(
        "sleep 1000 & a=$!; d=$(mktemp -d); \
         setsid sh -c 'echo $$ > '\"$d\"'/b; exec sleep 1001' & \
         n=0; while [ ! -s \"$d/b\" ] && [ $n -lt 400 ]; do sleep 0.05; n=$((n+1)); done; \
         b=$(cat \"$d/b\"); rm -rf \"$d\"; echo J\"\"OBS $a $b",
    );
    let jobs = login.answer("JOBS");
    let mut guard = Procs::new(ct);
    for word in jobs.split_whitespace() {
        let pid: u32 = word
            .parse()
            .unwrap_or_else(|_| panic!("bad JOBS line: '{jobs}'"));
        let p = ct
            .process(pid)
            .unwrap_or_else(|| panic!("job {pid} is not running before the logout"));
        guard.list.push(p);
    }
    assert_eq!(guard.list.len(), 2, "JOBS line: '{jobs}'");
    for p in &guard.list {
        let cg = ct.cgroup(*p);
        assert!(
            cg.ends_with(&format!("/{}", login.session)),
            "job {} is in '{cg}', not in the login's {}",
            p.pid,
            login.session
        );
    }
    let session = login.session_id();
    login.logout();
    (session, guard)
}

/// In the container (the test is skipped without it), with
/// `KillUserProcesses=` yes or no as `kill` says and no linger: alice starts
/// two jobs and logs out, and `check` is given the session and the jobs.
fn after_logout(test: &str, kill: bool, check: impl FnOnce(&Container, &str, &Procs)) {
    let Some(ct) = container::get(test) else {
        return;
    };
    let _settings = ct.lock_settings();
    ct.set_kill_user_processes(kill);
    ct.set_linger(false);
    let (session, jobs) = start_two_jobs_and_log_out(&ct);
    check(&ct, &session, &jobs);
}

#[test]
fn kill_user_processes_yes_kills_plain_and_setsid_jobs_at_logout() {
    after_logout(
        "logout::kill_user_processes_yes_kills_plain_and_setsid_jobs_at_logout",
        true,
        |ct, session, jobs| {
            let died = poll_slowly(crate::util::DEADLINE, || {
                jobs.list.iter().all(|p| !ct.alive(*p))
            });
            let alive: Vec<u32> = jobs
                .list
                .iter()
                .filter(|p| ct.alive(**p))
                .map(|p| p.pid)
                .collect();
            assert!(
                died,
                "with KillUserProcesses=yes, jobs {alive:?} of session {session} still live {:?} after the logout",
                crate::util::DEADLINE
            );
        },
    );
}

#[test]
fn kill_user_processes_no_spares_plain_and_setsid_jobs_at_logout() {
    after_logout(
        "logout::kill_user_processes_no_spares_plain_and_setsid_jobs_at_logout",
        false,
        |ct, session, jobs| {
            // logind has seen the logout when the session is "closing" (survivors
            // keep it from going away) or gone (none survived).
            let seen = poll_slowly(crate::util::DEADLINE, || {
                let state = ct.root(&format!(
                    "loginctl show-session {session} -p State --value 2>/dev/null || true"
                ));
                matches!(state.trim(), "closing" | "")
            });
            assert!(seen, "session {session} never became 'closing'");
            let mut dead = Vec::new();
            poll_slowly(WATCH, || {
                dead = jobs
                    .list
                    .iter()
                    .filter(|p| !ct.alive(**p))
                    .map(|p| p.pid)
                    .collect();
                !dead.is_empty()
            });
            assert!(
                dead.is_empty(),
                "with KillUserProcesses=no, jobs {dead:?} of session {session} died at the logout"
            );
        },
    );
}
