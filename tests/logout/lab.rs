//! huplab's logout table against the real thing: the lab's stand-in for
//! logind (its shell in a cgroup of its own, stopped as systemd stops a
//! session scope) must say, row by row, what a real
//! `KillUserProcesses=yes` logout with linger does to the same levels.
//!
//! huplab runs on this machine (root, a writable cgroup2: its logout event
//! needs both); the real logout happens in the container, where alice logs in
//! over ssh and types, at each level, the very lines the lab types
//! ([`Level::typed`]), with the same probe (`huplab --probe`), except at the
//! scope level, where the lab's stand-in (moving the daemon into `$SCOPE`)
//! gives way to the real `detach --scope`. 15 s after her logout (past
//! `UserStopDelaySec=`, 10 s), root looks at who lived.

use std::fmt::Write as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hupkit_huplab::lab::{Event, Level, ShellKind};

use crate::util::container::{self, Container, Login, Proc, Procs, poll_slowly};
use crate::util::{self, DEADLINE};

/// When root looks at the survivors, after the logout.
const AFTER_LOGOUT: Duration = Duration::from_secs(15);

/// One row of huplab's JSON: its level's name, whether it survived (`None`:
/// n/a), its SIGNALS cell and its OUTPUT AFTER cell (the why of an n/a).
struct LabRow {
    name: String,
    survived: Option<bool>,
    signals: String,
    output: String,
}

/// The value of `"key":` in one JSON object of huplab's rows: a string's
/// contents (huplab escapes only `"`, `\` and control characters, none of
/// which its level names and signals contain), or a bare word.
fn field(object: &str, key: &str) -> String {
    let pat = format!("\"{key}\":");
    let Some(at) = object.find(&pat) else {
        return String::new();
    };
    let rest = &object[at + pat.len()..];
    if let Some(s) = rest.strip_prefix('"') {
        s.split('"').next().unwrap_or_default().to_owned()
    } else {
        rest.split([',', '}']).next().unwrap_or_default().to_owned()
    }
}

/// Runs `huplab --event logout --json` here and returns its rows.
fn lab_rows(tmp: &std::path::Path) -> Vec<LabRow> {
    let out = Command::new(util::bin("huplab"))
        .args(["--event", "logout", "--json"])
        .env("TMPDIR", tmp)
        .stdin(Stdio::null())
        .output()
        .expect("run huplab");
    let json = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "huplab --event logout: {}{json}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows = json
        .split_once("\"rows\":[")
        .and_then(|(_, rest)| rest.split_once("],\"why\""))
        .map_or("", |(rows, _)| rows);
    rows.split("},{")
        .map(|object| LabRow {
            name: field(object, "name"),
            survived: match field(object, "survived").as_str() {
                "true" => Some(true),
                "false" => Some(false),
                _ => None,
            },
            signals: field(object, "signals"),
            output: field(object, "output"),
        })
        .collect()
}

/// The lines alice types for `level` in the container: the lab's own,
/// but the real `detach --scope` at the scope level.
fn typed_for_real(level: Level) -> Vec<String> {
    if level == Level::Scope {
        vec![format!(
            "detach --scope \"$HUPLAB\" --probe {} \"$LAB\"",
            level.name()
        )]
    } else {
        level
            .typed(ShellKind::Bash)
            .expect("bash has every builtin the lab uses")
    }
}

/// The state letter of `p` (`T` when stopped), empty once it is gone.
fn state(ct: &Container, p: Proc) -> String {
    ct.root(&format!(
        "sed 's/.*) //' /proc/{}/stat 2>/dev/null | cut -d' ' -f1",
        p.pid
    ))
    .trim()
    .to_owned()
}

/// alice starts one probe per level in `login`, as the lab does: the first
/// line, then (once the probe has written its PID) the others; returns each
/// level's probe.
fn start_levels(
    ct: &Container,
    login: &mut Login<'_>,
    guard: &mut Procs<'_>,
) -> Vec<(Level, Proc)> {
    let mut started = Vec::new();
    for &level in Level::of(Event::Logout) {
        let name = level.name();
        let lines = typed_for_real(level);
        let mut lines = lines.iter();
        if let Some(first) = lines.next() {
            login.send(first);
        }
        // The marker is split in the typed line, so that the terminal's echo
        // of it is not taken for the answer.
        let tag = name.replace('-', "_");
        login.send(&format!(
            "n=0; while [ ! -s \"$LAB/{name}.pid\" ] && [ $n -lt 400 ]; do sleep 0.05; \
             n=$((n+1)); done; echo P\"\"ID_{tag}= $(cat \"$LAB/{name}.pid\")"
        ));
        let answer = login.answer(&format!("PID_{tag}="));
        let pid: u32 = answer
            .parse()
            .unwrap_or_else(|_| panic!("no PID from the {name} probe: '{answer}'"));
        let p = ct
            .process(pid)
            .unwrap_or_else(|| panic!("the {name} probe {pid} is not running"));
        guard.list.push(p);
        for line in lines {
            login.send(line);
        }
        if level == Level::Stopped {
            let stopped = poll_slowly(DEADLINE, || state(ct, p) == "T");
            assert!(stopped, "the stopped job never stopped");
        }
        started.push((level, p));
    }
    started
}

/// Both tables side by side, for a failure's message.
fn tables(lab: &[LabRow], real: &[(Level, bool)]) -> String {
    let mut out = format!(
        "{:<18} {:<26} {:<10} CONTAINER, {AFTER_LOGOUT:?} AFTER THE LOGOUT\n",
        "LEVEL", "HUPLAB SIGNALS", "SURVIVED"
    );
    for (level, lived) in real {
        let row = lab.iter().find(|r| r.name == level.name());
        let _ = writeln!(
            out,
            "{:<18} {:<26} {:<10} {}",
            level.label(),
            row.map_or("(no row)", |r| r.signals.as_str()),
            match row.and_then(|r| r.survived) {
                Some(true) => "yes",
                Some(false) => "no",
                None => "-",
            },
            if *lived { "lived" } else { "died" }
        );
    }
    out
}

#[test]
fn huplab_logout_table_matches_a_real_killing_logout_with_linger() {
    let name = "logout::lab::huplab_logout_table_matches_a_real_killing_logout_with_linger";
    let Some(ct) = container::get(name) else {
        return;
    };
    let Some(tmp) = util::root_tempdir(&format!(
        "{name}: huplab's logout lab makes cgroups, which needs root"
    )) else {
        return;
    };
    let lab = lab_rows(tmp.path());
    if let Some(na) = lab.iter().find(|r| r.survived.is_none()) {
        eprintln!(
            "skipped: {name}: huplab cannot run its logout lab here: {}",
            na.output
        );
        return;
    }
    let bin = ct.install(&["huplab", "detach", "rnohup", "rdisown"]);
    let _settings = ct.lock_settings();
    ct.set_kill_user_processes(true);
    ct.set_linger(true);
    let mut guard = Procs::new(&ct);
    let mut login = ct.login("alice");
    login.send(&format!(
        "LAB=$(mktemp -d); cd \"$LAB\"; HUPLAB={bin}/huplab; PATH={bin}:$PATH"
    ));
    let started = start_levels(&ct, &mut login, &mut guard);
    for &(level, p) in &started {
        let cg = ct.cgroup(p);
        let in_session = cg.ends_with(&format!("/{}", login.session));
        assert_eq!(
            in_session,
            level != Level::Scope,
            "the {} probe is in '{cg}'",
            level.name()
        );
    }
    // bash will not exit at the first `exit` while it has a stopped job.
    login.send("exit");
    login.answer("There are stopped jobs");
    login.logout();
    let end = Instant::now() + AFTER_LOGOUT;
    let expected_dead: Vec<Proc> = started
        .iter()
        .filter(|(level, _)| {
            lab.iter()
                .any(|r| r.name == level.name() && r.survived == Some(false))
        })
        .map(|&(_, p)| p)
        .collect();
    poll_slowly(AFTER_LOGOUT, || expected_dead.iter().all(|p| !ct.alive(*p)));
    // The survivors are looked at 15 s after the logout (earlier only if one
    // the lab says lives has died already: the verdict is then known).
    poll_slowly(end.saturating_duration_since(Instant::now()), || {
        started.iter().any(|(level, p)| {
            lab.iter()
                .any(|r| r.name == level.name() && r.survived == Some(true))
                && !ct.alive(*p)
        })
    });
    let real: Vec<(Level, bool)> = started
        .iter()
        .map(|&(level, p)| (level, ct.alive(p)))
        .collect();
    ct.set_linger(false);
    let agree = real.iter().all(|(level, lived)| {
        lab.iter()
            .any(|r| r.name == level.name() && r.survived == Some(*lived))
    });
    assert!(
        agree && lab.len() == real.len(),
        "huplab's logout table and a real KillUserProcesses=yes logout with linger disagree:\n{}",
        tables(&lab, &real)
    );
}
