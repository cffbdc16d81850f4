//! rjobs as a user meets it after a dropped connection, on a real `bash -i` on
//! a pty: where each process's output goes (and that it is lost once the
//! terminal has hung up), what `--explain` predicts for a bash-disowned stopped
//! job (checked against the real hangup), what `-A` leaves out, what an empty
//! listing says, and `-t` with a second devpts instance in sight.

use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

use hupkit_common::jobs::Snapshot;
use hupkit_common::proc::Stat;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::util::{self, shell::Shell};

/// The line of `out` that mentions `needle`.
fn line_with<'a>(out: &'a str, needle: &str) -> &'a str {
    out.lines()
        .find(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no line with {needle:?} in:\n{out}"))
}

/// Kills (SIGKILL), when dropped, every process of a session this test created.
struct KillSession(Pid);

impl Drop for KillSession {
    fn drop(&mut self) {
        if let Ok(snap) = Snapshot::take() {
            for p in snap.procs.iter().filter(|p| p.session == self.0) {
                let _ = kill(p.pid, Signal::SIGKILL);
            }
        }
    }
}

/// Whether `pid` has ended (gone, or a zombie not yet reaped by its new parent).
fn ended(pid: Pid) -> bool {
    Stat::read(pid).map_or(true, |s| s.state.has_exited())
}

/// rjobs run by the test, outside the shell's session; its standard output.
fn rjobs(args: &[&str]) -> String {
    let out = Command::new(util::bin("rjobs"))
        .args(args)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "rjobs {args:?}: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

/// `rjobs -l` shows where fds 1 and 2 of each process lead: a job redirected
/// to a file shows the file, a plain background job the terminal; once the
/// terminal has hung up, a bash-disowned writer's output is shown as lost, in
/// `-l`, in `--json` and in `--explain`.
#[test]
fn rjobs_long_shows_where_output_goes_and_what_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let mut sh = Shell::start(dir.path());
    let session = KillSession(sh.pid);
    sh.run("sleep 100 > out.txt &");
    sh.run("sleep 101 &");
    let writer: i32 = sh
        .last_line(r#"sh -c 'trap "" HUP; while sleep 0.2; do [ -e go ] && echo tick; done' & disown $!; echo $!"#)
        .parse()
        .unwrap();
    let mut long = String::new();
    assert!(
        util::poll_until(util::DEADLINE, || {
            long = sh.run("rjobs -l").0;
            long.lines().any(|l| l.ends_with(" sleep 100"))
                && long.lines().any(|l| l.ends_with(" sleep 101"))
        }),
        "{long}"
    );
    assert!(long.contains(" OUTPUT "), "{long}");
    let file = dir.path().join("out.txt");
    let row = |needle: &str| {
        long.lines()
            .find(|l| l.ends_with(needle) && !l.starts_with('['))
            .unwrap_or_else(|| panic!("{needle}:\n{long}"))
            .to_string()
    };
    // stdout is the file, stderr the terminal.
    assert!(
        row(" sleep 100").contains(&format!(" 1:file:{} 2:tty ", file.display())),
        "{long}"
    );
    assert!(row(" sleep 101").contains(" tty "), "{long}");
    let (json, _) = sh.run("rjobs -l --json");
    assert!(
        json.contains(&format!(
            r#""stdout":{{"kind":"file","path":"{}","lost":false}},"stderr":{{"kind":"tty","path":null,"lost":false}}"#,
            file.display()
        )),
        "{json}"
    );
    let pts = sh.tty.strip_prefix("/dev").unwrap().display().to_string();
    sh.hang_up();
    assert!(sh.wait().is_some(), "bash ends at hangup");
    std::fs::write(dir.path().join("go"), "").unwrap();
    let writer_pid = Pid::from_raw(writer);
    assert!(!ended(writer_pid), "the disowned writer ignores SIGHUP");
    let all = rjobs(&["-A", "-l"]);
    let lost = format!("lost ({pts} hung up)");
    let row = all
        .lines()
        .find(|l| l.trim_start().starts_with(&format!("{writer} ")))
        .unwrap_or_else(|| panic!("no row for {writer}:\n{all}"));
    assert!(row.contains(&lost), "{row}");
    let json = rjobs(&["-A", "-l", "--json"]);
    assert!(
        json.contains(&format!(
            r#""stdout":{{"kind":"lost","path":"{pts}","lost":true}}"#
        )),
        "{json}"
    );
    let explain = rjobs(&["--explain", &writer.to_string()]);
    assert!(
        explain.contains("fd 1: '")
            && explain.contains("(a terminal that has hung up: output LOST, writes fail with EIO)"),
        "{explain}"
    );
    assert!(
        explain.contains(&format!(
            "now: its output goes to a terminal that has hung up: it is lost (rdisown -o FILE {writer} sends it to a file)"
        )),
        "{explain}"
    );
    drop(session);
}

/// A stopped job that bash has disowned is not safe: `--explain` says it dies at
/// hangup (the shell's exit orphans its group, and the kernel sends a stopped
/// orphaned group SIGHUP and SIGCONT), and the real hangup agrees; a running
/// disowned job, which `--explain` says lives, lives.
#[test]
fn rjobs_explain_predicts_death_of_a_disowned_stopped_job() {
    let dir = tempfile::tempdir().unwrap();
    let mut sh = Shell::start(dir.path());
    let session = KillSession(sh.pid);
    sh.suspend("sleep 302", "sleep");
    let stopped: i32 = sh.last_line("jobs -p %1").trim().parse().unwrap();
    sh.run("disown %1");
    let running: i32 = sh
        .last_line("sleep 303 & disown $!; echo $!")
        .parse()
        .unwrap();
    assert!(util::poll_until(util::DEADLINE, || {
        Stat::read(Pid::from_raw(running)).is_ok_and(|s| s.comm == "sleep")
    }));
    let (out, rc) = sh.run(&format!("rjobs --explain {stopped}"));
    assert_eq!(rc, 0, "{out}");
    assert!(
        out.contains(
            "terminal hangup:      dies: bash sends SIGHUP and SIGCONT to its stopped jobs; \
             if the shell disowned it, the kernel does the same when the shell's exit orphans its group\n"
        ),
        "{out}"
    );
    assert!(
        out.contains("shell exit:           dies: bash sends SIGTERM and SIGCONT"),
        "{out}"
    );
    let (out, _) = sh.run(&format!("rjobs --explain {running}"));
    assert!(out.contains("lives if the shell disowned it"), "{out}");
    sh.hang_up();
    assert!(sh.wait().is_some(), "bash ends at hangup");
    assert!(
        util::poll_until(util::DEADLINE, || ended(Pid::from_raw(stopped))),
        "the disowned stopped job died at hangup, as predicted"
    );
    assert!(!ended(Pid::from_raw(running)), "the running one lives");
    drop(session);
}

/// `rjobs -A` leaves out each session's leader group and rjobs' own, as
/// rjobs(1) says, and shows no `&` after a job of a session without a terminal
/// (a daemon's job is no background job of a terminal).
#[test]
fn rjobs_all_sessions_leaves_out_leaders_and_itself() {
    let dir = tempfile::tempdir().unwrap();
    let mut sh = Shell::start(dir.path());
    sh.run("sleep 304 &");
    // A terminal-less session (a daemon) with a second process group.
    let mut cmd = Command::new("perl");
    cmd.args([
        "-e",
        r#"my $p = fork; if ($p == 0) { setpgrp(0, 0); exec "sleep", "305" } waitpid($p, 0)"#,
    ])
    .stdin(Stdio::null())
    .stdout(Stdio::null())
    .stderr(Stdio::null());
    // SAFETY: setsid is async-signal-safe and touches no memory of ours.
    unsafe {
        cmd.pre_exec(|| {
            if nix::libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let daemon = util::ChildGuard::new(util::spawn(&mut cmd));
    let sid = daemon.pid();
    let _daemon_session = KillSession(sid);
    let job = || {
        Snapshot::take().ok().and_then(|snap| {
            snap.procs
                .iter()
                .find(|p| p.session == sid && p.pgrp != sid && p.comm == "sleep")
                .map(|p| p.pid)
        })
    };
    assert!(util::poll_until(util::DEADLINE, || job().is_some()));
    let (out, rc) = sh.run("rjobs -A");
    assert_eq!(rc, 0, "{out}");
    let block = |sid: Pid| -> String {
        let head = format!("session {sid} (");
        out.split_inclusive('\n')
            .skip_while(|l| !l.starts_with(&head))
            .enumerate()
            .take_while(|(i, l)| *i == 0 || !l.starts_with("session "))
            .map(|(_, l)| l)
            .collect()
    };
    let shell = block(sh.pid);
    assert!(shell.contains("sleep 304 &"), "{out}");
    assert_eq!(
        shell.lines().count(),
        2,
        "the heading and sleep 304 only: not bash, not rjobs -A:\n{shell}"
    );
    let daemon_block = block(sid);
    let line = line_with(&daemon_block, "sleep 305");
    assert!(
        line.ends_with("sleep 305"),
        "no & in a terminal-less session: {line}"
    );
    assert!(
        !daemon_block
            .lines()
            .any(|l| l.starts_with('[') && l.contains("perl")),
        "the leader's group is left out:\n{daemon_block}"
    );
    drop(daemon);
}

/// An empty listing says so in one line on a terminal, and nothing into a pipe.
#[test]
fn rjobs_empty_results_say_so_on_a_terminal_only() {
    let dir = tempfile::tempdir().unwrap();
    let mut sh = Shell::start(dir.path());
    assert_eq!(
        sh.run("rjobs"),
        ("rjobs: no jobs in this session\n".into(), 0)
    );
    assert_eq!(sh.run("rjobs | cat"), (String::new(), 0));
    assert_eq!(
        sh.run("rjobs --records --prune"),
        ("rjobs: no job records\n".into(), 0)
    );
    // A record of a job that is gone, then pruned.
    sh.run("rnohup true 2>/dev/null");
    assert_eq!(
        sh.run("rjobs --records --prune"),
        ("rjobs: no job records left (1 pruned)\n".into(), 0)
    );
    sh.run("rnohup true 2>/dev/null");
    assert_eq!(sh.run("rjobs --records --prune | cat"), (String::new(), 0));
    assert_eq!(sh.run("rjobs --records | cat"), (String::new(), 0));
}

/// `rjobs -t /dev/pts/N` picks the session of *this* devpts instance's pts/N,
/// not that of a container's pts/N (same device number, another instance),
/// even when the container's session is the older one.
#[test]
fn rjobs_tty_tells_devpts_instances_apart() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: needs root to mount a devpts instance");
        return;
    }
    let pty = util::pty();
    let n: usize = pty
        .path
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    // In a mount namespace of its own, a new devpts instance on /dev/pts; n
    // masters held open take pts/0..n-1, so script's terminal is pts/n there.
    let container = format!(
        "mount -t devpts -o newinstance,ptmxmode=0666 devpts /dev/pts || exit 1
         i=0; while [ $i -lt {n} ]; do exec {{fd}}<>/dev/ptmx; i=$((i + 1)); done
         exec script -q -c 'set -m; sleep 306 & wait' /dev/null"
    );
    let mut cmd = Command::new("unshare");
    cmd.args([
        "--mount",
        "--propagation",
        "private",
        "bash",
        "-c",
        &container,
    ])
    .stdin(Stdio::null())
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .env("SHELL", "/bin/bash");
    let script = util::ChildGuard::new(util::spawn(&mut cmd));
    let tty_nr = hupkit_common::tty::number(&pty.path).unwrap();
    // The container's session: the one script started, on its own pts/n.
    let mut inner = None;
    assert!(
        util::poll_until(util::DEADLINE, || {
            inner = Snapshot::take().ok().and_then(|snap| {
                snap.procs
                    .iter()
                    .find(|p| p.ppid == script.pid() && p.tty_nr == tty_nr)
                    .map(|p| p.session)
            });
            inner.is_some()
        }),
        "the container's session on pts/{n}"
    );
    let _inner = KillSession(inner.unwrap());
    // Ours, younger: a job-control bash with one job on this instance's pts/n.
    let mut cmd = Command::new("bash");
    cmd.args(["-c", "set -m; sleep 307 & wait"])
        .stdin(Stdio::from(pty.slave.try_clone().unwrap()))
        .stdout(Stdio::from(pty.slave.try_clone().unwrap()))
        .stderr(Stdio::from(pty.slave.try_clone().unwrap()));
    hupkit_common::pty::session_leader_on_exec(&mut cmd);
    let ours = util::ChildGuard::new(util::spawn(&mut cmd));
    let _ours = KillSession(ours.pid());
    let mut out = String::new();
    let listed = util::poll_until(util::DEADLINE, || {
        out = rjobs(&["-t", &pty.path.to_string_lossy()]);
        out.contains("sleep 307")
    });
    assert!(
        listed,
        "rjobs -t {} picked another session:\n{out}",
        pty.path.display()
    );
    assert!(!out.contains("sleep 306"), "{out}");
    drop((ours, script));
}

/// On a machine without systemd (this one: PID 1 is not systemd), the logout
/// kills nothing, and `--explain` and `-l` say so rather than guess; with
/// systemd, they give a verdict (the container tests in `logout::forecast`
/// check those against a real logout).
#[test]
fn rjobs_logout_forecast_without_systemd_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let sh = Shell::start(dir.path());
    let _session = KillSession(sh.pid);
    sh.line("sleep 1000 &");
    let mut job = None;
    assert!(
        util::poll_until(util::DEADLINE, || {
            job = Snapshot::take().ok().and_then(|s| {
                s.procs
                    .iter()
                    .find(|p| p.session == sh.pid && p.pid != sh.pid && p.comm == "sleep")
                    .map(|p| p.pid)
            });
            job.is_some()
        }),
        "the job did not start"
    );
    let pid = job.unwrap().to_string();
    let explain = rjobs(&["--explain", &pid]);
    let logout = line_with(&explain, "  logout: ");
    let tty = sh.tty.to_str().unwrap().to_string();
    let long = rjobs(&["-l", "-t", &tty]);
    let json = rjobs(&["-l", "--json", "-t", &tty]);
    if std::path::Path::new("/run/systemd/system").exists() {
        assert!(
            ["dies", "lives", "not in a logind session"]
                .iter()
                .any(|w| logout
                    .trim_start()
                    .trim_start_matches("logout:")
                    .trim_start()
                    .starts_with(w)),
            "{explain}"
        );
        return;
    }
    assert!(
        logout.ends_with(
            "no systemd: logout kills nothing here (no logind session scope; only the terminal's hangup applies)"
        ),
        "{explain}"
    );
    assert!(
        line_with(&long, "LOGOUT").contains("TRACED  LOGOUT "),
        "{long}"
    );
    let row = line_with(&long, &format!("      {pid} "));
    // PID ST SIGHUP TTY-FDS CTTY ORPHANED TRACED LOGOUT ...
    assert_eq!(row.split_whitespace().nth(7), Some("-"), "{long}");
    assert!(
        json.contains(
            r#""logout":{"fate":"-","cgroup":"/","verdict":"no systemd: logout kills nothing here"#
        ),
        "{json}"
    );
}

/// `rjobs -A` reads what it prints once: each job's command line one time (it
/// printed the quoted form but read the file a second time for the JSON form),
/// each process's `stat` one time. Counted with strace (skipped without it).
#[test]
fn rjobs_all_sessions_reads_each_file_once() {
    let strace = std::path::Path::new("/usr/bin/strace");
    if !strace.exists() {
        eprintln!("skipped: no /usr/bin/strace");
        return;
    }
    let jobs: Vec<util::ChildGuard> = (0..3)
        .map(|_| {
            util::ChildGuard::new(util::spawn(
                Command::new("sleep")
                    .arg("306")
                    .process_group(0)
                    .stdin(Stdio::null())
                    .stdout(Stdio::null()),
            ))
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("trace");
    let out = Command::new(strace)
        .args(["-f", "-qq", "-e", "trace=open,openat", "-o"])
        .arg(&trace)
        .arg(util::bin("rjobs"))
        .arg("-A")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    let trace = std::fs::read_to_string(&trace).unwrap();
    let opened = |pid: u32, file: &str| {
        let a = format!("\"{pid}/{file}\"");
        let b = format!("\"/proc/{pid}/{file}\"");
        trace
            .lines()
            .filter(|l| l.contains(&a) || l.contains(&b))
            .count()
    };
    for job in &jobs {
        let pid = u32::try_from(job.pid().as_raw()).unwrap();
        assert!(text.contains(&format!("{pid}")), "{text}");
        assert_eq!(opened(pid, "cmdline"), 1, "cmdline of {pid}:\n{trace}");
        assert_eq!(opened(pid, "stat"), 1, "stat of {pid}:\n{trace}");
    }
    drop(jobs);
}

/// `rjobs -l` reads each member's command line once, in text and in JSON:
/// it read it for the job's command, then again for the member's exact form
/// and again for its quoted form. Counted with strace (skipped without it).
#[test]
fn rjobs_long_reads_each_cmdline_once() {
    let strace = std::path::Path::new("/usr/bin/strace");
    if !strace.exists() {
        eprintln!("skipped: no /usr/bin/strace");
        return;
    }
    let jobs: Vec<util::ChildGuard> = (0..2)
        .map(|_| {
            util::ChildGuard::new(util::spawn(
                Command::new("sleep")
                    .arg("307")
                    .process_group(0)
                    .stdin(Stdio::null())
                    .stdout(Stdio::null()),
            ))
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    for args in [&["-l"][..], &["-l", "--json"]] {
        let trace = dir.path().join("trace");
        let out = Command::new(strace)
            .args(["-f", "-qq", "-e", "trace=open,openat", "-o"])
            .arg(&trace)
            .arg(util::bin("rjobs"))
            .args(args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{args:?}: {out:?}");
        let text = String::from_utf8(out.stdout).unwrap();
        let trace = std::fs::read_to_string(&trace).unwrap();
        for job in &jobs {
            let pid = job.pid().as_raw();
            assert!(text.contains(&format!("{pid}")), "{args:?}: {text}");
            let (a, b) = (
                format!("\"{pid}/cmdline\""),
                format!("\"/proc/{pid}/cmdline\""),
            );
            let opened = trace
                .lines()
                .filter(|l| l.contains(&a) || l.contains(&b))
                .count();
            assert_eq!(opened, 1, "{args:?}: cmdline of {pid}:\n{trace}");
        }
        assert!(text.contains("sleep 307"), "{args:?}: {text}");
    }
    drop(jobs);
}

/// Whether `text` is one JSON value (and nothing else): a syntax check, so
/// that a streamed document is seen whole (commas, brackets, truncation).
fn is_json(text: &str) -> bool {
    fn value(b: &[u8], i: &mut usize) -> bool {
        let lit = |i: &mut usize, w: &str| {
            let ok = b[*i..].starts_with(w.as_bytes());
            *i += w.len();
            ok
        };
        match b.get(*i) {
            Some(b'{' | b'[') => {
                let close = if b[*i] == b'{' { b'}' } else { b']' };
                *i += 1;
                if b.get(*i) == Some(&close) {
                    *i += 1;
                    return true;
                }
                loop {
                    if close == b'}' && !(value(b, i) && lit(i, ":")) {
                        return false;
                    }
                    if !value(b, i) {
                        return false;
                    }
                    match b.get(*i) {
                        Some(b',') => *i += 1,
                        Some(c) if *c == close => {
                            *i += 1;
                            return true;
                        }
                        _ => return false,
                    }
                }
            }
            Some(b'"') => {
                *i += 1;
                while let Some(&c) = b.get(*i) {
                    *i += if c == b'\\' { 2 } else { 1 };
                    if c == b'"' {
                        return true;
                    }
                }
                false
            }
            Some(b't') => lit(i, "true"),
            Some(b'f') => lit(i, "false"),
            Some(b'n') => lit(i, "null"),
            Some(c) if *c == b'-' || c.is_ascii_digit() => {
                *i += 1;
                while b.get(*i).is_some_and(u8::is_ascii_digit) {
                    *i += 1;
                }
                true
            }
            _ => false,
        }
    }
    let mut i = 0;
    let text = text.strip_suffix('\n').unwrap_or(text);
    value(text.as_bytes(), &mut i) && i == text.len()
}

/// `rjobs -A --json`, written a job at a time, is one JSON document, and a
/// session's jobs in it are those of the table, in its order, each once.
#[test]
fn rjobs_all_sessions_json_is_whole() {
    assert!(is_json(r#"[{"a":[1,-2,true,null,"x\"y"]},[]]"#));
    assert!(!is_json(r#"[{"a":[1]}{"b":2}]"#) && !is_json(r#"[{"a":[1]}"#));
    let jobs: Vec<util::ChildGuard> = (0..3)
        .map(|_| {
            util::ChildGuard::new(util::spawn(
                Command::new("sleep")
                    .arg("309")
                    .process_group(0)
                    .stdin(Stdio::null())
                    .stdout(Stdio::null()),
            ))
        })
        .collect();
    let json = rjobs(&["-A", "--json"]);
    assert!(is_json(&json), "{json}");
    let sid = nix::unistd::getsid(None).unwrap();
    let head = format!(r#"{{"session":{sid},"#);
    let session = &json[json.find(&head).unwrap_or_else(|| panic!("{json}"))..];
    let end = session[1..]
        .find(r#"{"session":"#)
        .map_or(session.len(), |e| e + 1);
    let session = &session[..end];
    let mut at = 0;
    for job in &jobs {
        let pgid = format!(r#""pgid":{},"#, job.pid());
        assert_eq!(session.matches(&pgid).count(), 1, "{session}");
        let here = session.find(&pgid).unwrap();
        assert!(here > at, "jobs in start order: {session}");
        at = here;
    }
    drop(jobs);
}
