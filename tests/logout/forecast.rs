//! rjobs' logout forecast against the real thing: in an ssh login of a user
//! of its own (`fcast`),
//! `sleep 1000 &` (in the session's scope) and `systemd-run --user --scope
//! sleep 1001` (a unit of her manager), `rjobs --explain` on each, logout, and
//! who lived 15 s later, with `KillUserProcesses=yes` and `=no`, with and
//! without linger. Each test checks the verdicts it expects for its settings,
//! and each verdict against what happened.

use std::time::Duration;

use crate::util::container::{self, Procs, poll_slowly};

/// How long after the logout the survivors are counted: past `UserStopDelaySec` (10 s), when the user's
/// manager has stopped.
const AFTER: Duration = Duration::from_secs(15);

/// What `rjobs --explain` predicted for the two jobs and whether each lived
/// [`AFTER`] the logout.
struct Outcome {
    /// (verdict, lived) for `sleep 1000 &`.
    plain: (String, bool),
    /// (verdict, lived) for the `systemd-run --user --scope` one.
    scope: (String, bool),
}

/// The user of these tests: not alice, whose logins other tests keep open
/// at the same time (a login still open elsewhere means a logout is not the
/// last one, and the user's manager keeps running).
const USER: &str = "fcast";

/// Its uid.
const UID: u32 = 1010;

/// Makes [`USER`] (once; same ssh key as alice) and sets its linger.
fn prepare_user(ct: &container::Container, linger: bool) {
    ct.root(&format!(
        "id {USER} >/dev/null 2>&1 || useradd -m -u {UID} -s /bin/bash {USER}; \
         install -d -o {USER} -g {USER} -m 700 /home/{USER}/.ssh && \
         install -o {USER} -g {USER} -m 600 /home/alice/.ssh/authorized_keys /home/{USER}/.ssh/authorized_keys && \
         loginctl {} {USER}",
        if linger { "enable-linger" } else { "disable-linger" }
    ));
}

fn run(test: &str, kill: bool, linger: bool) -> Option<Outcome> {
    let ct = container::get(test)?;
    let _settings = ct.lock_settings();
    ct.set_kill_user_processes(kill);
    prepare_user(&ct, linger);
    let rjobs = ct.install_one("rjobs");
    let mut login = ct.login(USER);
    // The markers are split in the typed line (V""A), so that the terminal's
    // echo of the line is not taken for the answer.
    login.send(&format!(
        "sleep 1000 & a=$!; systemd-run --user --scope --quiet sleep 1001 & b=$!; \
         n=0; until grep -q 'run-.*\\.scope' /proc/$b/cgroup 2>/dev/null || [ $n -ge 400 ]; do sleep 0.05; n=$((n+1)); done; \
         echo P\"\"IDS $a $b; \
         echo V\"\"A $({r} --explain $a | grep '^  logout:'); \
         echo V\"\"B $({r} --explain $b | grep '^  logout:')",
        r = rjobs.path
    ));
    let pids = login.answer("PIDS");
    let mut guard = Procs::new(&ct);
    for word in pids.split_whitespace() {
        let pid: u32 = word
            .parse()
            .unwrap_or_else(|_| panic!("bad PIDS line: '{pids}'"));
        let p = ct
            .process(pid)
            .unwrap_or_else(|| panic!("job {pid} is not running before the logout"));
        guard.list.push(p);
    }
    assert_eq!(guard.list.len(), 2, "PIDS line: '{pids}'");
    let cg = ct.cgroup(guard.list[1]);
    assert!(
        cg.contains(&format!("/user@{UID}.service/")) && cg.contains("/run-"),
        "the systemd-run job is in '{cg}'"
    );
    let verdict = |marker: &str| {
        login
            .answer(marker)
            .trim_start_matches("logout:")
            .trim()
            .to_string()
    };
    let (va, vb) = (verdict("VA"), verdict("VB"));
    let start = std::time::Instant::now();
    login.logout();
    // Watch until AFTER: stop early only if a job the verdict says lives dies.
    let (a, b) = (guard.list[0], guard.list[1]);
    let lives = |v: &str| v.starts_with("lives");
    poll_slowly(AFTER, || {
        (lives(&va) && !ct.alive(a)) || (lives(&vb) && !ct.alive(b))
    });
    // Dying takes up to the user manager's stop delay: wait for it too.
    poll_slowly(AFTER.saturating_sub(start.elapsed()), || {
        (lives(&va) || !ct.alive(a)) && (lives(&vb) || !ct.alive(b))
    });
    let outcome = Outcome {
        plain: (va, ct.alive(a)),
        scope: (vb, ct.alive(b)),
    };
    // Leave no user manager of this user running for ever.
    ct.root(&format!("loginctl disable-linger {USER}"));
    Some(outcome)
}

/// Checks one job's verdict: it starts with `expected`, and it came true.
fn check(what: &str, (verdict, lived): &(String, bool), expected: &str) {
    assert!(
        verdict.starts_with(expected),
        "{what}: rjobs --explain said '{verdict}', expected '{expected}...'"
    );
    let said_lives = verdict.starts_with("lives");
    assert_eq!(
        said_lives,
        *lived,
        "{what}: rjobs --explain said '{verdict}', but it {} {AFTER:?} after the logout",
        if *lived { "lived" } else { "was dead" }
    );
}

#[test]
fn forecast_kill_yes_no_linger() {
    let Some(o) = run("logout::forecast::forecast_kill_yes_no_linger", true, false) else {
        return;
    };
    check("sleep &", &o.plain, "dies at logout: logind kills session-");
    check(
        "systemd-run --user --scope",
        &o.scope,
        "dies about 10 s after the last logout: in user@1010.service",
    );
}

#[test]
fn forecast_kill_yes_linger() {
    let Some(o) = run("logout::forecast::forecast_kill_yes_linger", true, true) else {
        return;
    };
    check("sleep &", &o.plain, "dies at logout: logind kills session-");
    check(
        "systemd-run --user --scope",
        &o.scope,
        "lives at logout: in user@1010.service",
    );
}

#[test]
fn forecast_kill_no_no_linger() {
    let Some(o) = run("logout::forecast::forecast_kill_no_no_linger", false, false) else {
        return;
    };
    check(
        "sleep &",
        &o.plain,
        "lives at logout: logind leaves session-",
    );
    // The session keeps a process (the sleep above), so the user's manager
    // keeps running: the conditional verdict holds.
    check(
        "systemd-run --user --scope",
        &o.scope,
        "lives at logout while a session of fcast keeps a process",
    );
}

#[test]
fn forecast_kill_no_linger() {
    let Some(o) = run("logout::forecast::forecast_kill_no_linger", false, true) else {
        return;
    };
    check(
        "sleep &",
        &o.plain,
        "lives at logout: logind leaves session-",
    );
    check(
        "systemd-run --user --scope",
        &o.scope,
        "lives at logout: in user@1010.service",
    );
}

/// Puts the `KillUserProcesses` drop-in back as it was, when dropped (also
/// when a test fails: the other tests expect a file to set it).
struct Restore(bool);

impl Drop for Restore {
    fn drop(&mut self) {
        // No panic here (a panic while unwinding would abort the suite).
        if let Err(e) = xtask::container::set_kill_user_processes(self.0) {
            eprintln!("could not put KillUserProcesses back: {e}");
        }
    }
}

/// In an ssh login of [`USER`]: `sleep 1000 &`, and `rjobs --explain` of it,
/// run from `dir`; returns its `logind:` and `logout:` lines.
fn explain_session_job(ct: &container::Container, dir: &str) -> (String, String) {
    prepare_user(ct, false);
    let mut login = ct.login(USER);
    login.send(&format!(
        "sleep 1000 & a=$!; echo P\"\"ID $a; \
         echo L\"\"D $({dir}/rjobs --explain $a | grep '^  logind:'); \
         echo V\"\"A $({dir}/rjobs --explain $a | grep '^  logout:')"
    ));
    let pid = login.answer("PID");
    let mut guard = Procs::new(ct);
    let pid: u32 = pid
        .parse()
        .unwrap_or_else(|_| panic!("bad PID line: '{pid}'"));
    guard
        .list
        .push(ct.process(pid).expect("the job runs before rjobs"));
    let settings = login.answer("LD");
    let verdict = login.answer("VA");
    (settings, verdict)
}

/// With no file setting `KillUserProcesses`, rjobs reads the value in force
/// from login1's D-Bus property (through the helper) and says so: the
/// compiled-in default is no longer "not knowable".
#[test]
fn forecast_reads_logind_when_no_file_sets_it() {
    let Some(ct) = container::get("logout::forecast::forecast_reads_logind_when_no_file_sets_it")
    else {
        return;
    };
    let _settings = ct.lock_settings();
    let _restore = Restore(ct.kill_user_processes());
    let default = ct.unset_kill_user_processes();
    // The helper, hupkit-dbus, is installed beside rjobs.
    let dir = ct.install(&["rjobs"]);
    let (settings, verdict) = explain_session_job(&ct, &dir);
    let word = if default { "yes" } else { "no" };
    assert!(
        settings.starts_with(&format!("logind: KillUserProcesses={word} (logind)")),
        "rjobs --explain said '{settings}', expected KillUserProcesses={word} from logind"
    );
    let expected = if default {
        "dies at logout: logind kills session-"
    } else {
        "lives at logout: logind leaves session-"
    };
    assert!(
        verdict.starts_with(&format!("logout: {expected}"))
            && verdict.ends_with(&format!("(KillUserProcesses={word})")),
        "rjobs --explain said '{verdict}', expected '{expected}... (KillUserProcesses={word})'"
    );
}

/// Without the helper (a copy of rjobs alone in a directory), the forecast
/// still works, from logind's files, and says which file.
#[test]
fn forecast_without_helper_reads_the_files() {
    let Some(ct) = container::get("logout::forecast::forecast_without_helper_reads_the_files")
    else {
        return;
    };
    let _settings = ct.lock_settings();
    ct.set_kill_user_processes(true);
    let rjobs = ct.install_one("rjobs");
    let dir = rjobs.path.trim_end_matches("/rjobs").to_owned();
    let (settings, verdict) = explain_session_job(&ct, &dir);
    assert!(
        settings.starts_with(
            "logind: KillUserProcesses=yes (/etc/systemd/logind.conf.d/10-hupkit-kill.conf)"
        ),
        "rjobs --explain said '{settings}', expected KillUserProcesses=yes from the drop-in"
    );
    assert!(
        verdict.starts_with("logout: dies at logout: logind kills session-")
            && verdict.ends_with("(KillUserProcesses=yes)"),
        "rjobs --explain said '{verdict}'"
    );
}
