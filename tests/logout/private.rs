//! The scope level without a bus: `detach --scope` and `rdisown --scope`
//! reach the user's manager through its private socket
//! (`$XDG_RUNTIME_DIR/systemd/private`) when the user bus is unreachable,
//! and the job survives a `KillUserProcesses=yes` logout (with linger) as it
//! does through the bus; with neither, one line names both and nothing is
//! started or changed.

use std::time::Duration;

use crate::util::container::{self, Procs, poll_slowly};

/// How long after the logout the survivors are watched: past logind's
/// `UserStopDelaySec=` (10 s), as the research note measured.
const AFTER_LOGOUT: Duration = Duration::from_secs(15);

/// The user bus, made unreachable for one command.
const NO_BUS: &str = "DBUS_SESSION_BUS_ADDRESS=unix:path=/nonexistent/bus";

#[test]
fn scope_through_the_private_socket_lives_after_a_killing_logout_with_linger() {
    let name = "logout::private::scope_through_the_private_socket_lives_after_a_killing_logout_with_linger";
    let Some(ct) = container::get(name) else {
        return;
    };
    let bin = ct.install(&["detach", "rdisown"]);
    let _settings = ct.lock_settings();
    ct.set_kill_user_processes(true);
    ct.set_linger(true);
    let mut guard = Procs::new(&ct);
    let mut login = ct.login("alice");
    // detach --scope, the bus out of reach.
    login.send(&format!(
        "p=$(mktemp); {NO_BUS} {bin}/detach --scope -p \"$p\" sleep 1010 2>&1; \
         echo D\"\"ET $? $(cat \"$p\"); rm -f \"$p\""
    ));
    let answer = login.answer("DET");
    let mut words = answer.split_whitespace();
    assert_eq!(
        words.next(),
        Some("0"),
        "detach --scope without a bus: {answer}"
    );
    let pid: u32 = words
        .next()
        .and_then(|w| w.parse().ok())
        .unwrap_or_else(|| panic!("detach --scope without a bus wrote no pidfile: {answer}"));
    let daemon = ct
        .process(pid)
        .unwrap_or_else(|| panic!("daemon {pid} is not running"));
    guard.list.push(daemon);
    // rdisown --scope of a plain job, the bus out of reach.
    login.send("sleep 1011 & echo J\"\"OB $!");
    let job: u32 = login
        .answer("JOB")
        .trim()
        .parse()
        .unwrap_or_else(|e| panic!("bad JOB line: {e}"));
    let job = ct
        .process(job)
        .unwrap_or_else(|| panic!("job {job} is not running"));
    guard.list.push(job);
    let (status, out, err) = login.run("Q9", &format!("{NO_BUS} {bin}/rdisown --scope %1"));
    assert_eq!(
        (status.as_str(), err.as_str()),
        ("0", ""),
        "rdisown --scope without a bus: {out}"
    );
    for (p, stem) in [(daemon, "sleep"), (job, "sleep")] {
        let cg = ct.cgroup(p);
        assert!(
            cg.ends_with(&format!("/hupkit-{stem}-{}-{}.scope", p.pid, p.start))
                && cg.contains("/user@1000.service/"),
            "PID {} is in '{cg}', not in a scope of alice's manager",
            p.pid
        );
    }
    login.logout();
    let mut died = false;
    poll_slowly(AFTER_LOGOUT, || {
        died = !ct.alive(daemon) || !ct.alive(job);
        died
    });
    ct.set_linger(false);
    assert!(
        !died,
        "a job moved through the private socket died within {AFTER_LOGOUT:?} of the logout, with linger"
    );
}

#[test]
fn without_bus_and_private_socket_one_line_names_both_and_nothing_starts() {
    let name =
        "logout::private::without_bus_and_private_socket_one_line_names_both_and_nothing_starts";
    let Some(ct) = container::get(name) else {
        return;
    };
    let bin = ct.install(&["detach", "rdisown"]);
    let mut guard = Procs::new(&ct);
    let mut login = ct.login("alice");
    login.send("x=$(mktemp -d); echo X\"\"DIR $x");
    let empty = login.answer("XDIR").trim().to_owned();
    let env = format!("{NO_BUS} XDG_RUNTIME_DIR={empty}");
    let (status, out, err) = login.run(
        "Q7",
        &format!("{env} {bin}/detach --scope -p {empty}/p sleep 1012"),
    );
    let why = format!(
        "no user bus ($DBUS_SESSION_BUS_ADDRESS: Failed to connect to address \
         `unix:path=/nonexistent/bus`: No such file or directory) and no private socket of \
         the user's manager ('{empty}/systemd/private': No such file or directory)"
    );
    assert_eq!(
        (status.as_str(), out.as_str(), err.as_str()),
        (
            "125",
            "",
            format!("detach: cannot use --scope: {why}").as_str()
        )
    );
    let started = ct.root(&format!("test -e {empty}/p && echo started || echo no"));
    assert_eq!(started.trim(), "no", "detach started a daemon");
    login.send("sleep 1013 & echo J\"\"OB $!");
    let job: u32 = login
        .answer("JOB")
        .trim()
        .parse()
        .unwrap_or_else(|e| panic!("bad JOB line: {e}"));
    let job = ct
        .process(job)
        .unwrap_or_else(|| panic!("job {job} is not running"));
    guard.list.push(job);
    let before = ct.cgroup(job);
    let (status, out, err) = login.run("Q8", &format!("{env} {bin}/rdisown --scope %1"));
    assert_eq!(
        (status.as_str(), out.as_str(), err.as_str()),
        (
            "1",
            "",
            format!("rdisown: cannot use --scope: {why}").as_str()
        )
    );
    assert_eq!(ct.cgroup(job), before, "rdisown moved the job");
    let ignored = ct.root(&format!("grep SigIgn /proc/{}/status", job.pid));
    let mask = u64::from_str_radix(ignored.trim().trim_start_matches("SigIgn:").trim(), 16)
        .unwrap_or_default();
    assert_eq!(mask & 1, 0, "rdisown cut the job loose: {ignored}");
    login.send(&format!("rm -rf {empty}; echo G\"\"ONE"));
    login.answer("GONE");
    login.logout();
}
