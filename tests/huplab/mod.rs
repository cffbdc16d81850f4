//! huplab: the same table for the same event, every run; nothing left behind,
//! even when interrupted.

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::util;

/// Expected (level name, survived, died of) per event.
fn expected(event: &str) -> Vec<(&'static str, bool, &'static str)> {
    let hup = |alive_plain: bool, stopped_dies_of: &'static str| {
        vec![
            ("plain", alive_plain, if alive_plain { "" } else { "HUP" }),
            ("stopped", false, stopped_dies_of),
            ("nohup", true, ""),
            ("rnohup", true, ""),
            ("bash-disown", true, ""),
            ("bash-disown-h", true, ""),
            ("disown", true, ""),
            ("setsid", true, ""),
            ("detach", true, ""),
        ]
    };
    match event {
        "exit" => hup(true, "TERM"),
        _ => hup(false, "HUP, TERM"),
    }
}

/// Runs huplab --json for `event` with its lab under `tmp`; checks every row.
fn check(event: &str, tmp: &std::path::Path) {
    let out = Command::new(util::bin("huplab"))
        .args(["--event", event, "--json"])
        .env("TMPDIR", tmp)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json = String::from_utf8_lossy(&out.stdout);
    for (name, survived, died_of) in expected(event) {
        let row_start = json
            .find(&format!("\"name\":\"{name}\""))
            .unwrap_or_else(|| panic!("{name} in {json}"));
        let row = &json[row_start
            ..json[row_start..]
                .find('}')
                .map_or(json.len(), |e| row_start + e)];
        assert!(
            row.contains(&format!("\"survived\":{survived}")),
            "{event}: {name}: {row}"
        );
        if died_of == "HUP, TERM" {
            // Both were sent; the row names the one the kernel applied first.
            assert!(
                row.contains("\"signals\":\"HUP, TERM (HUP fatal)")
                    || row.contains("\"signals\":\"HUP, TERM (TERM fatal)"),
                "{event}: {name}: {row}"
            );
        } else if !died_of.is_empty() {
            assert!(
                row.contains(&format!("\"signals\":\"{died_of} (died)")),
                "{event}: {name}: {row}"
            );
        }
    }
    // Where output goes after a hangup.
    if event == "hangup" {
        assert!(json.contains("\"name\":\"rnohup\",\"session\":\"shell's\",\"group\":\"own\",\"tty\":\"lab tty\",\"sighup\":\"ignored\",\"signals\":\"-\",\"survived\":true,\"output\":\"nohup.out\""), "{json}");
        assert!(json.contains("\"name\":\"bash-disown\",\"session\":\"shell's\",\"group\":\"own\",\"tty\":\"lab tty\",\"sighup\":\"default\",\"signals\":\"-\",\"survived\":true,\"output\":\"lost (EIO: terminal gone)\""), "{json}");
    }
}

/// No process still names the test's private directory.
fn leftovers(tmp: &std::path::Path) -> Vec<String> {
    let needle = tmp.display().to_string();
    hupkit_common::jobs::Snapshot::take()
        .unwrap()
        .procs
        .iter()
        .map(hupkit_common::jobs::Snapshot::cmdline)
        .filter(|c| c.contains(&needle))
        .collect()
}

#[test]
fn hangup_table_is_the_same_twenty_times() {
    let tmp = tempfile::tempdir().unwrap();
    // `cargo xtask soak` sets 200 rounds.
    let rounds = std::env::var("HUPKIT_HUPLAB_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    for _ in 0..rounds {
        check("hangup", tmp.path());
    }
    assert!(
        leftovers(tmp.path()).is_empty(),
        "{:?}",
        leftovers(tmp.path())
    );
    assert_eq!(
        std::fs::read_dir(tmp.path()).unwrap().count(),
        0,
        "lab directories removed"
    );
}

#[test]
fn other_events_are_stable() {
    let tmp = tempfile::tempdir().unwrap();
    for event in ["exit", "sighup", "login-exit"] {
        for _ in 0..5 {
            check(event, tmp.path());
        }
    }
    assert!(
        leftovers(tmp.path()).is_empty(),
        "{:?}",
        leftovers(tmp.path())
    );
}

#[test]
fn interrupted_run_leaves_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let mut child = util::ChildGuard::new(
        Command::new(util::bin("huplab"))
            .env("TMPDIR", tmp.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let pid = child.pid();
    // Interrupt once a few probes run.
    assert!(util::poll_until(util::DEADLINE, || {
        std::fs::read_dir(tmp.path())
            .ok()
            .and_then(|mut d| d.next())
            .and_then(Result::ok)
            .is_some_and(|lab| {
                std::fs::read_dir(lab.path()).is_ok_and(|d| {
                    d.flatten()
                        .filter(|e| e.file_name().to_string_lossy().ends_with(".pid"))
                        .count()
                        >= 3
                })
            })
    }));
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).unwrap();
    let status = child.wait(util::DEADLINE).expect("huplab ends");
    assert_eq!(status.code(), Some(130));
    assert!(
        util::poll_until(Duration::from_secs(5), || leftovers(tmp.path()).is_empty()),
        "{:?}",
        leftovers(tmp.path())
    );
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
}

/// Runs huplab for another shell (skipped where it is not installed) and
/// checks the rows against the shell's own rules.
fn check_shell(shell: &str, event: &str, expect: &[(&str, Option<bool>, &str)]) -> String {
    let tmp = tempfile::tempdir().unwrap();
    let out = Command::new(util::bin("huplab"))
        .args(["--shell", shell, "--event", event, "--json"])
        .env("TMPDIR", tmp.path())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json = String::from_utf8_lossy(&out.stdout);
    for (name, survived, died_of) in expect {
        let at = json
            .find(&format!("\"name\":\"{name}\""))
            .unwrap_or_else(|| panic!("{name} in {json}"));
        let row = &json[at..at + json[at..].find('}').unwrap()];
        let want = survived.map_or("null".to_string(), |b| b.to_string());
        assert!(
            row.contains(&format!("\"survived\":{want}")),
            "{shell} {event}: {row}"
        );
        if !died_of.is_empty() {
            assert!(
                row.contains(&format!("\"signals\":\"{died_of} (died)")),
                "{shell} {event}: {row}"
            );
        }
    }
    assert!(leftovers(tmp.path()).is_empty());
    json.into_owned()
}

fn installed(shell: &str) -> bool {
    ["/usr/bin", "/bin"]
        .iter()
        .any(|d| std::path::Path::new(d).join(shell).exists())
}

#[test]
fn zsh_hangs_up_its_jobs_even_at_exit() {
    if !installed("zsh") {
        eprintln!("skipped: zsh is not installed");
        return;
    }
    for event in ["hangup", "exit"] {
        for _ in 0..3 {
            // At hangup, zsh itself races (see huplab's explanation): the plain
            // job dies of HUP, or lives and the table says why.
            let plain = if event == "hangup" {
                vec![]
            } else {
                vec![("plain", Some(false), "HUP")]
            };
            let json = check_shell(
                "zsh",
                event,
                &[
                    plain.as_slice(),
                    &[
                        ("stopped", Some(false), "HUP"),
                        ("rnohup", Some(true), ""),
                        ("bash-disown", Some(true), ""),
                        ("bash-disown-h", None, ""),
                        ("disown", Some(true), ""),
                        ("detach", Some(true), ""),
                    ],
                ]
                .concat(),
            );
            if event == "hangup" {
                let at = json.find("\"name\":\"plain\"").unwrap();
                let row = &json[at..at + json[at..].find('}').unwrap()];
                assert!(
                    row.contains("\"signals\":\"HUP (died)\"")
                        || (row.contains("\"survived\":true")
                            && json.contains("zsh spared a running job this time")),
                    "zsh hangup: {row}"
                );
            }
        }
    }
}

#[test]
fn dash_leaves_jobs_to_the_kernel() {
    if !installed("dash") {
        eprintln!("skipped: dash is not installed");
        return;
    }
    for _ in 0..3 {
        check_shell(
            "dash",
            "hangup",
            &[
                ("plain", Some(true), ""),
                ("stopped", Some(false), "HUP"),
                ("rnohup", Some(true), ""),
                ("bash-disown", None, ""),
                ("disown", Some(true), ""),
                ("detach", Some(true), ""),
            ],
        );
    }
}

/// The probes' PIDs (from the lab's `NAME.pid` files) and the lab's shell, each
/// with a pidfd; every one of them is killed through its pidfd when dropped.
struct Started(Vec<(String, hupkit_common::pidfd::PidFd)>);

impl Drop for Started {
    fn drop(&mut self) {
        for (_, fd) in &self.0 {
            let _ = fd.signal(nix::sys::signal::Signal::SIGKILL);
        }
    }
}

/// huplab killed with SIGKILL (no chance to clean up): its probes (in the lab
/// shell's session, in sessions of their own, daemonized by detach) end within
/// seconds, and nothing is left in the lab's temporary directory.
#[test]
fn killed_lab_leaves_nothing() {
    use hupkit_common::pidfd::PidFd;
    use nix::unistd::Pid;
    use std::os::unix::process::CommandExt;

    let tmp = tempfile::tempdir().unwrap();
    let mut child = util::ChildGuard::new(util::spawn(
        Command::new(util::bin("huplab"))
            .env("TMPDIR", tmp.path())
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    ));
    let pid = child.pid();
    let lab = tmp.path().join(format!("huplab.{pid}.hangup"));
    // detach's probe is the last one the lab starts.
    assert!(
        util::poll_until(util::DEADLINE, || lab.join("detach.pid").exists()),
        "the lab started its probes"
    );
    let mut started = Started(Vec::new());
    for entry in std::fs::read_dir(&lab).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(probe) = name.strip_suffix(".pid") else {
            continue;
        };
        let text = std::fs::read_to_string(entry.path()).unwrap();
        let probe_pid = Pid::from_raw(text.trim().parse().unwrap());
        let fd = PidFd::open(probe_pid).unwrap_or_else(|e| panic!("{probe}: {e}"));
        started.0.push((probe.to_string(), fd));
        if probe == "plain" {
            // The lab's shell: the session leader of its plain job.
            let shell = hupkit_common::proc::Stat::read(probe_pid).unwrap().session;
            started
                .0
                .push(("shell".into(), PidFd::open(shell).unwrap()));
        }
    }
    assert!(started.0.len() >= 9, "probes found: {}", started.0.len());
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL).unwrap();
    child.wait(util::DEADLINE).expect("huplab reaped");
    let alive = || {
        started
            .0
            .iter()
            .filter(|(_, fd)| !fd.wait_exit(Duration::ZERO).unwrap_or(true))
            .map(|(n, _)| n.clone())
            .collect::<Vec<_>>()
    };
    assert!(
        util::poll_until(Duration::from_secs(5), || alive().is_empty()),
        "still running 5 s after huplab was killed: {:?}",
        alive()
    );
    assert!(
        util::poll_until(Duration::from_secs(5), || std::fs::read_dir(tmp.path())
            .unwrap()
            .next()
            .is_none()),
        "left behind: {:?}",
        std::fs::read_dir(tmp.path())
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .collect::<Vec<_>>()
    );
    assert!(
        leftovers(tmp.path()).is_empty(),
        "{:?}",
        leftovers(tmp.path())
    );
}

/// A directory left by a lab killed before any probe ran (its PID gone) is
/// removed by the next run; one whose PID still runs is kept.
#[test]
fn next_run_removes_a_stale_lab_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let mut dead = util::spawn(&mut Command::new("true"));
    let dead_pid = dead.id();
    dead.wait().unwrap();
    let stale = tmp.path().join(format!("huplab.{dead_pid}.hangup"));
    std::fs::create_dir(&stale).unwrap();
    std::fs::write(stale.join("plain.pid"), "1\n").unwrap();
    // This test's own PID runs: its directory is not stale.
    let live = tmp
        .path()
        .join(format!("huplab.{}.hangup", std::process::id()));
    std::fs::create_dir(&live).unwrap();
    check("hangup", tmp.path());
    assert!(!stale.exists(), "stale lab directory removed");
    assert!(live.exists(), "a live PID's directory is kept");
}

/// A lab that cannot run says why in one GNU-style line (no Rust error
/// formatting) and exits 1: here its directory cannot be created.
#[test]
fn a_lab_that_cannot_start_says_why_in_one_line() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("missing");
    let child = util::spawn(
        Command::new(util::bin("huplab"))
            .env("TMPDIR", &missing)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
    );
    let lab = missing.join(format!("huplab.{}.hangup", child.id()));
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned()
        ),
        (
            Some(1),
            format!(
                "huplab: hangup: cannot create directory '{}': No such file or directory\n",
                lab.display()
            )
        )
    );
    assert!(out.stdout.is_empty());
}

/// The row of `table` for `label` (its first line).
fn table_row<'a>(table: &'a str, label: &str) -> &'a str {
    table
        .lines()
        .find(|l| l.starts_with(label) && l[label.len()..].starts_with("  "))
        .unwrap_or_else(|| panic!("{label} in {table}"))
}

/// The table says what a student would find: rdisown's output in nohup.out
/// and detach's in /dev/null (their defaults, as the lab now types them), the
/// fatal one of the stopped job's two signals, what GROUP "another" means, and
/// where to read the lines typed.
#[test]
fn table_shows_default_outputs_the_fatal_signal_and_explains_another() {
    let tmp = tempfile::tempdir().unwrap();
    let out = Command::new(util::bin("huplab"))
        .args(["--event", "hangup"])
        .env("TMPDIR", tmp.path())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{table}");
    assert!(
        table_row(&table, "cmd & rdisown PID").ends_with(" yes      nohup.out"),
        "{table}"
    );
    assert!(
        table_row(&table, "detach cmd").ends_with(" yes      /dev/null"),
        "{table}"
    );
    let stopped = table_row(&table, "stopped job (^Z)");
    assert!(
        stopped.contains(" HUP, TERM (HUP fatal) ") || stopped.contains(" HUP, TERM (TERM fatal) "),
        "{table}"
    );
    assert!(
        table.contains(
            "\n  * GROUP another: detach's daemon is in the process group of the session its \
             first child made with setsid; that child then exited, so the daemon is no \
             session leader (it can never get a controlling terminal) and its group is no \
             job of any shell.\n"
        ),
        "{table}"
    );
    assert!(
        table.contains("\n  * the lines the lab typed: huplab --commands\n"),
        "{table}"
    );
    assert!(leftovers(tmp.path()).is_empty());
}

/// `--commands` prints, without running anything, the exact lines the lab
/// types for each row and the event, for a student to replay.
#[test]
fn commands_show_the_lines_the_lab_types() {
    let run = |args: &[&str]| {
        let out = Command::new(util::bin("huplab"))
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert_eq!(
            (
                out.status.code(),
                String::from_utf8_lossy(&out.stderr).into_owned()
            ),
            (Some(0), String::new())
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let head = "shell: bash --noprofile --norc -i, on a private terminal, in the lab's \
                directory $LAB; $HUPLAB is huplab itself, whose probe writes a line every \
                100 ms (any long command can stand in for it)\n\
                LEVEL              TYPED\n";
    let probes = "cmd &              \"$HUPLAB\" --probe plain \"$LAB\" &\n\
                  stopped job (^Z)   \"$HUPLAB\" --probe stopped \"$LAB\" &\n\
                  \x20                  kill -TSTP $!\n\
                  nohup cmd &        nohup \"$HUPLAB\" --probe nohup \"$LAB\" &\n\
                  rnohup cmd &       rnohup \"$HUPLAB\" --probe rnohup \"$LAB\" &\n\
                  cmd & disown       \"$HUPLAB\" --probe bash-disown \"$LAB\" & disown $!\n\
                  cmd & disown -h    \"$HUPLAB\" --probe bash-disown-h \"$LAB\" & disown -h $!\n\
                  cmd & rdisown PID  \"$HUPLAB\" --probe disown \"$LAB\" &\n\
                  \x20                  rdisown $!\n\
                  setsid cmd &       setsid \"$HUPLAB\" --probe setsid \"$LAB\" &\n\
                  detach cmd         detach \"$HUPLAB\" --probe detach \"$LAB\"\n";
    assert_eq!(
        run(&["--commands"]),
        format!(
            "event: hangup (bash)\n{head}{probes}\
             hangup             (nothing typed: the lab closes the terminal's master side, \
             as a dropped ssh link does)\n"
        )
    );
    let login = run(&["--commands", "--event", "login-exit"]);
    assert!(
        login.starts_with(
            "event: login-exit (bash)\nshell: bash --noprofile --norc --login -i, on a private"
        ),
        "{login}"
    );
    assert!(
        login.contains("LEVEL              TYPED\nfirst              shopt -s huponexit\n"),
        "{login}"
    );
    assert!(
        login.ends_with(&format!(
            "{probes}login-exit         exit\n\
             \x20                  exit (again, if the shell says there are stopped jobs)\n"
        )),
        "{login}"
    );
    let dash = run(&["--commands", "--shell", "dash", "--event", "sighup"]);
    assert!(
        dash.contains("\ncmd & disown       n/a: dash has no such builtin\n"),
        "{dash}"
    );
    assert!(
        dash.ends_with(
            "sighup             (nothing typed: kill -HUP of the shell, from outside)\n"
        ),
        "{dash}"
    );
    assert_eq!(
        run(&["--commands", "--event", "all"])
            .matches("event: ")
            .count(),
        5
    );
    let logout = run(&["--commands", "--event", "logout"]);
    assert!(
        logout.contains(
            "\ndetach cmd         detach \"$HUPLAB\" --probe detach \"$LAB\"\n\
             detach --scope cmd detach \"$HUPLAB\" --probe scope \"$LAB\"\n\
             \x20                  echo \"$(cat \"$LAB/scope.pid\")\" > \"$SCOPE/cgroup.procs\"\n\
             logout             (nothing typed: the lab stops the shell's cgroup $SESSION"
        ),
        "{logout}"
    );
}

/// docs/levels.md shows what huplab types (its `--commands` output, verbatim)
/// and the real defaults, never the files the lab once named itself.
#[test]
fn levels_md_shows_the_commands_and_the_real_outputs() {
    let out = Command::new(util::bin("huplab"))
        .arg("--commands")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let commands = String::from_utf8(out.stdout).unwrap();
    let doc = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/levels.md"),
    )
    .unwrap();
    assert!(
        doc.contains(&format!("```\n{commands}```\n")),
        "docs/levels.md lacks huplab --commands' output:\n{commands}"
    );
    for stale in ["disown.out", "detach.out"] {
        assert!(!doc.contains(stale), "docs/levels.md still says {stale}");
    }
    // The tables' rows of survivors (TTY none), not the typed lines nor the
    // logout table's dead rows.
    let rows = |label: &'static str| {
        doc.lines()
            .filter(move |l| l.starts_with(label) && l.contains(" none ") && l.contains(" yes "))
    };
    assert!(rows("cmd & rdisown PID ").count() >= 6);
    for line in rows("cmd & rdisown PID ") {
        assert!(line.ends_with(" nohup.out"), "{line}");
    }
    for line in rows("detach cmd ") {
        assert!(line.ends_with(" /dev/null"), "{line}");
    }
}

/// The cgroups a lab run by huplab `pid` would make, in either layout (hybrid:
/// the cgroup2 hierarchy at /sys/fs/cgroup/unified; pure cgroup2: /sys/fs/cgroup).
fn lab_cgroups(pid: u32) -> Vec<std::path::PathBuf> {
    ["/sys/fs/cgroup/unified", "/sys/fs/cgroup"]
        .iter()
        .map(|root| std::path::Path::new(root).join(format!("huplab.{pid}")))
        .filter(|p| p.exists())
        .collect()
}

/// `huplab --event logout` as root: logind's rule, applied by the lab to the
/// cgroup its shell runs in, kills every level in that cgroup, whatever its
/// session, group or SIGHUP disposition, of SIGTERM (or SIGKILL after the
/// stated delay); the scope level (a cgroup outside the session's) lives; the
/// lab's cgroups and processes are gone afterwards.
#[test]
fn logout_kills_every_level_in_the_session_cgroup_but_the_scope() {
    let tmp = tempfile::tempdir().unwrap();
    let child = util::spawn(
        Command::new(util::bin("huplab"))
            .args(["--event", "logout", "--json"])
            .env("TMPDIR", tmp.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
    );
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    let json = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{json}",
        String::from_utf8_lossy(&out.stderr)
    );
    let row = |name: &str| {
        let start = json
            .find(&format!("\"name\":\"{name}\""))
            .unwrap_or_else(|| panic!("{name} in {json}"));
        let end = json[start..].find('}').map_or(json.len(), |e| start + e);
        json[start..end].to_string()
    };
    for name in [
        "plain",
        "stopped",
        "nohup",
        "rnohup",
        "bash-disown",
        "bash-disown-h",
        "disown",
        "setsid",
        "detach",
    ] {
        let r = row(name);
        assert!(r.contains("\"survived\":false"), "{name}: {r}");
        assert!(
            r.contains("\"signals\":\"TERM (died)")
                || r.contains("\"signals\":\"KILL (died)")
                || r.contains("\"signals\":\"HUP, TERM (TERM fatal)")
                || r.contains("\"signals\":\"HUP, TERM (HUP fatal)"),
            "{name}: {r}"
        );
    }
    let scope = row("scope");
    assert!(scope.contains("\"survived\":true"), "{scope}");
    assert!(
        json.contains("\"level\":\"detach --scope cmd\",\"name\":\"scope\""),
        "{json}"
    );
    assert!(json.contains("logind's rule, applied by the lab"), "{json}");
    assert!(lab_cgroups(pid).is_empty(), "{:?}", lab_cgroups(pid));
    assert!(
        util::poll_until(Duration::from_secs(5), || leftovers(tmp.path()).is_empty()),
        "{:?}",
        leftovers(tmp.path())
    );
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
}

/// huplab killed with SIGKILL during a logout lab: every probe ends (also the
/// one in the lab's stand-in for a scope), and the cgroups it made, once empty,
/// are removed by the next run, which keeps the cgroups of a lab still running.
#[test]
fn killed_logout_lab_leaves_nothing_after_the_next_run() {
    use hupkit_common::pidfd::PidFd;
    use nix::unistd::Pid;
    use std::os::unix::process::CommandExt;

    let tmp = tempfile::tempdir().unwrap();
    let mut child = util::ChildGuard::new(util::spawn(
        Command::new(util::bin("huplab"))
            .args(["--event", "logout"])
            .env("TMPDIR", tmp.path())
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    ));
    let pid = child.pid();
    let raw = u32::try_from(pid.as_raw()).unwrap();
    let lab = tmp.path().join(format!("huplab.{pid}.logout"));
    // The scope probe is the last one; it counts once it is in the lab's scope.
    let in_scope = || {
        std::fs::read_to_string(lab.join("scope.pid"))
            .ok()
            .and_then(|t| std::fs::read_to_string(format!("/proc/{}/cgroup", t.trim())).ok())
            .is_some_and(|cg| cg.contains(&format!("/huplab.{pid}/scope")))
    };
    assert!(
        util::poll_until(util::DEADLINE, in_scope),
        "scope probe moved"
    );
    assert!(!lab_cgroups(raw).is_empty(), "the lab made its cgroups");
    let mut started = Started(Vec::new());
    let mut found = 0;
    for entry in std::fs::read_dir(&lab).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(probe) = name.strip_suffix(".pid") {
            let text = std::fs::read_to_string(entry.path()).unwrap();
            // A probe that has already ended (ESRCH) has nothing left to outlive the lab.
            if let Ok(fd) = PidFd::open(Pid::from_raw(text.trim().parse().unwrap())) {
                started.0.push((probe.to_string(), fd));
            }
            found += 1;
        }
    }
    assert!(found >= 10, "probes found: {found}");
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL).unwrap();
    child.wait(util::DEADLINE).expect("huplab reaped");
    let alive = || {
        started
            .0
            .iter()
            .filter(|(_, fd)| !fd.wait_exit(Duration::ZERO).unwrap_or(true))
            .map(|(n, _)| n.clone())
            .collect::<Vec<_>>()
    };
    assert!(
        util::poll_until(Duration::from_secs(5), || alive().is_empty()),
        "still running 5 s after huplab was killed: {:?}",
        alive()
    );
    assert!(
        util::poll_until(Duration::from_secs(5), || leftovers(tmp.path()).is_empty()),
        "{:?}",
        leftovers(tmp.path())
    );
    // The next run removes the stale cgroups (their PID runs no more).
    let next = Command::new(util::bin("huplab"))
        .args(["--event", "logout", "--json"])
        .env("TMPDIR", tmp.path())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(next.status.code(), Some(0));
    assert!(lab_cgroups(raw).is_empty(), "{:?}", lab_cgroups(raw));
    assert!(
        util::poll_until(Duration::from_secs(5), || leftovers(tmp.path()).is_empty()),
        "{:?}",
        leftovers(tmp.path())
    );
}

/// Where the lab cannot make cgroups (here: as `nobody`), every logout row
/// says n/a and why, the table says what the lab needs, and it exits 0
/// having started nothing.
#[test]
fn logout_rows_say_na_and_why_without_cgroups() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(util::bin("huplab"))
        .args(["--event", "logout"])
        .env("TMPDIR", tmp.path())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        (out.status.code(), String::from_utf8_lossy(&out.stderr)),
        (Some(0), "".into()),
        "{table}"
    );
    for label in [
        "cmd &  ",
        "nohup cmd &  ",
        "detach cmd  ",
        "detach --scope cmd ",
    ] {
        let row = table
            .lines()
            .find(|l| l.starts_with(label))
            .unwrap_or_else(|| panic!("{label} in {table}"));
        assert!(
            row.ends_with(
                " -        n/a: cannot make a cgroup in '/sys/fs/cgroup/unified': Permission denied"
            ) || row.ends_with(
                " -        n/a: cannot make a cgroup in '/sys/fs/cgroup': Permission denied"
            ),
            "{table}"
        );
    }
    assert!(
        table.contains("\n  * n/a (logout): the lab stands in for logind with cgroups of its own, which it can make only as root, with a writable cgroup2 hierarchy"),
        "{table}"
    );
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
}
