//! The scope level (`detach --scope`) and lingering (`detach --linger`)
//! against the real thing: alice logs in over ssh, starts daemons with and
//! without `--scope`, logs out, and root looks 15 s later, when
//! `user@1000.service` would have stopped without linger.

use std::time::Duration;

use crate::util::container::{self, Container, Procs, poll_slowly};

/// How long after the logout the survivors are watched: past logind's
/// `UserStopDelaySec=` (10 s), as the research note measured.
const AFTER_LOGOUT: Duration = Duration::from_secs(15);

/// alice runs `detach ARGS sleep SECS` with a pidfile in the login; returns
/// the daemon (guarded) and what detach printed on its standard error.
fn start(
    ct: &Container,
    login: &mut container::Login<'_>,
    bin: &str,
    args: &str,
    secs: u32,
    guard: &mut Procs<'_>,
) -> (container::Proc, String) {
    let tag = format!("D{secs}");
    login.send(&format!(
        "d=$(mktemp -d); {bin}/detach {args} -p \"$d/p\" sleep {secs} 2>\"$d/e\"; \
         echo {tag}\"\"PID $? $(cat \"$d/p\") ERR $(cat \"$d/e\"); rm -rf \"$d\""
    ));
    let answer = login.answer(&format!("{tag}PID"));
    let (head, err) = answer.split_once("ERR").unwrap_or((&answer, ""));
    let mut words = head.split_whitespace();
    assert_eq!(
        words.next(),
        Some("0"),
        "detach {args} sleep {secs} failed: {answer}"
    );
    let pid: u32 = words
        .next()
        .and_then(|w| w.parse().ok())
        .unwrap_or_else(|| panic!("no pidfile from detach {args}: {answer}"));
    let p = ct
        .process(pid)
        .unwrap_or_else(|| panic!("daemon {pid} is not running"));
    guard.list.push(p);
    (p, err.trim().to_owned())
}

#[test]
fn scope_daemon_lives_after_a_killing_logout_with_linger_and_plain_one_dies() {
    let name =
        "logout::scope::scope_daemon_lives_after_a_killing_logout_with_linger_and_plain_one_dies";
    let Some(ct) = container::get(name) else {
        return;
    };
    let bin = ct.install(&["detach"]);
    let _settings = ct.lock_settings();
    ct.set_kill_user_processes(true);
    ct.set_linger(true);
    let mut guard = Procs::new(&ct);
    let mut login = ct.login("alice");
    let (scoped, err) = start(&ct, &mut login, &bin, "--scope", 1000, &mut guard);
    assert_eq!(err, "", "with linger, detach --scope says nothing");
    let (plain, _) = start(&ct, &mut login, &bin, "", 1001, &mut guard);
    let cg = ct.cgroup(scoped);
    assert!(
        cg.ends_with(&format!(
            "/hupkit-sleep-{}-{}.scope",
            scoped.pid, scoped.start
        )) && cg.contains("/user@1000.service/"),
        "the --scope daemon is in '{cg}'"
    );
    assert!(
        ct.cgroup(plain).ends_with(&format!("/{}", login.session)),
        "the plain daemon is in the session"
    );
    let record = ct.root(&format!(
        "cat /home/alice/.local/state/hupkit/jobs/{}-{}.job",
        scoped.pid, scoped.start
    ));
    assert!(
        record.lines().any(
            |l| cg.ends_with(&format!("/{}", l.trim_start_matches("scope=")))
                && l.starts_with("scope=hupkit-sleep-")
        ),
        "the job record names the scope: {record}"
    );
    login.logout();
    let plain_died = poll_slowly(crate::util::DEADLINE, || !ct.alive(plain));
    let mut scoped_died = false;
    poll_slowly(AFTER_LOGOUT, || {
        scoped_died = !ct.alive(scoped);
        scoped_died
    });
    ct.set_linger(false);
    assert!(
        plain_died,
        "detach without --scope survived a KillUserProcesses=yes logout"
    );
    assert!(
        !scoped_died,
        "detach --scope died within {AFTER_LOGOUT:?} of the logout, with linger"
    );
}

#[test]
fn scope_without_linger_says_it_will_die_at_the_last_logout() {
    let name = "logout::scope::scope_without_linger_says_it_will_die_at_the_last_logout";
    let Some(ct) = container::get(name) else {
        return;
    };
    let bin = ct.install(&["detach"]);
    let _settings = ct.lock_settings();
    ct.set_linger(false);
    let mut guard = Procs::new(&ct);
    let mut login = ct.login("alice");
    let (_, err) = start(&ct, &mut login, &bin, "--scope", 1002, &mut guard);
    assert_eq!(
        err,
        "detach: warning: the daemon will still die at the last logout of alice, who does not \
         linger: its scope ends with the user's service manager (detach --linger, or loginctl \
         enable-linger)"
    );
    login.logout();
}

#[test]
fn linger_is_refused_for_alice_without_polkit_and_works_for_root() {
    let name = "logout::scope::linger_is_refused_for_alice_without_polkit_and_works_for_root";
    let Some(ct) = container::get(name) else {
        return;
    };
    let bin = ct.install(&["detach"]);
    let _settings = ct.lock_settings();
    ct.set_linger(false);
    let mut login = ct.login("alice");
    login.send(&format!(
        "{bin}/detach --linger true 2>&1; echo L\"\"INGER $?"
    ));
    assert_eq!(login.answer("LINGER"), "125");
    login.send("echo S\"\"EEN");
    login.answer("SEEN");
    login.logout();
    let out = ct.root(&format!(
        "su alice -c '{bin}/detach --linger true' 2>&1; echo $?; \
         test -e /var/lib/systemd/linger/alice && echo lingers || echo no"
    ));
    assert_eq!(
        out,
        "detach: cannot enable lingering for user 'alice': Permission denied \
         (org.freedesktop.DBus.Error.AccessDenied)\n125\nno\n"
    );
    let out = ct.root(&format!(
        "{bin}/detach --linger --user alice true 2>&1; echo $?; \
         test -e /var/lib/systemd/linger/alice && echo lingers || echo no"
    ));
    ct.set_linger(false);
    assert_eq!(out, "0\nlingers\n");
}
