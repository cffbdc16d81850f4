//! rjobs, rbg and rfg on a real `bash -i` in a pseudo-terminal; job records
//! after a hangup.

use hupkit_common::identity::Identity;
use nix::unistd::Pid;

use crate::util::{self, shell::Shell};

// rfg as a user sees it: the command line, ^C and ^Z, the cost of waiting.
mod rfg;

fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

/// The line of `rjobs` output that mentions `needle`.
fn line_with<'a>(out: &'a str, needle: &str) -> &'a str {
    out.lines()
        .find(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no line with {needle:?} in:\n{out}"))
}

/// Why each job is stopped, which bash's `jobs` does not say: ^Z, SIGSTOP,
/// reading the terminal in the background, writing to it with `tostop` set.
#[test]
fn rjobs_says_why_a_job_is_stopped() {
    let dir = tempdir();
    let mut sh = Shell::start(dir.path());
    sh.suspend("sleep 310", "sleep");
    // SIGSTOP only once the child is sleep (before its exec it is still bash).
    sh.run(
        "sleep 311 & p=$!; until [ \"$(cat /proc/$p/comm)\" = sleep ]; do :; done; kill -STOP $p",
    );
    sh.run("cat &");
    sh.run("stty tostop; /bin/echo out-of-turn &");
    let mut out = String::new();
    let all_stopped = util::poll_until(util::DEADLINE, || {
        out = sh.run("rjobs").0;
        ["sleep 310", "sleep 311", "cat", "echo out-of-turn"]
            .iter()
            .all(|cmd| {
                out.lines()
                    .any(|l| l.contains(cmd) && l.contains("Stopped"))
            })
    });
    assert!(all_stopped, "{out}");
    let state = |cmd: &str| {
        let line = line_with(&out, cmd);
        assert!(line.contains("Stopped"), "{line}");
        line.split("Stopped")
            .nth(1)
            .unwrap()
            .trim_start()
            .to_string()
    };
    assert!(
        state("sleep 310").starts_with("sleep 310"),
        "^Z: plain Stopped\n{out}"
    );
    assert!(state("sleep 311").starts_with("(signal)"), "{out}");
    assert!(state("cat").starts_with("(tty input)"), "{out}");
    assert!(
        state("echo out-of-turn").starts_with("(tty output)"),
        "{out}"
    );
    // -A does not attach to every stopped process of the machine: plain Stopped.
    let (all, _) = sh.run("rjobs -A");
    let sigstopped = line_with(&all, "sleep 311");
    assert!(
        sigstopped.contains("Stopped") && !sigstopped.contains("(signal)"),
        "{all}"
    );
    // bash's jobs agrees that all four are stopped (it does not say why).
    let (jobs, _) = sh.run("jobs");
    assert_eq!(jobs.matches("Stopped").count(), 4, "{jobs}");
    sh.run("stty -tostop; kill -KILL %1 %2 %3 %4");
}

#[test]
fn rjobs_lists_running_stopped_pipeline_and_disowned_jobs() {
    let dir = tempdir();
    let mut sh = Shell::start(dir.path());
    sh.run("sleep 300 &");
    sh.run("sleep 301 | cat &");
    sh.suspend("sleep 302", "sleep");
    sh.run("sleep 303 & disown $!");
    sh.run("rnohup sleep 304 >/dev/null 2>&1 &");
    let (out, rc) = sh.run("rjobs");
    assert_eq!(rc, 0, "{out}");
    assert!(line_with(&out, "sleep 300").starts_with("[1] "), "{out}");
    assert!(
        line_with(&out, "sleep 300").contains("Running")
            && line_with(&out, "sleep 300").ends_with("sleep 300 &")
    );
    assert!(
        line_with(&out, "sleep 301").ends_with("sleep 301 | cat &"),
        "{out}"
    );
    assert!(line_with(&out, "sleep 302").contains("Stopped"), "{out}");
    assert!(line_with(&out, "sleep 302").starts_with("[3]"), "{out}");
    assert!(
        line_with(&out, "sleep 303").contains("Running"),
        "the disowned job is still listed:\n{out}"
    );
    let (jobs, _) = sh.run("jobs");
    assert!(
        !jobs.contains("sleep 303"),
        "bash itself forgot it:\n{jobs}"
    );

    let (long, rc) = sh.run("rjobs -l");
    assert_eq!(rc, 0);
    assert!(
        long.contains("SIGHUP") && long.contains("TTY-FDS"),
        "{long}"
    );
    let nohup_row = long
        .lines()
        .find(|l| l.contains("sleep 304") && l.contains(" S "))
        .unwrap_or_else(|| panic!("{long}"));
    assert!(
        nohup_row.contains("ignored"),
        "rnohup's job ignores SIGHUP: {nohup_row}"
    );
    let plain_row = long
        .lines()
        .find(|l| l.trim_end().ends_with("sleep 300") && !l.starts_with('['))
        .unwrap();
    assert!(
        plain_row.contains("default") && plain_row.contains("0,1,2"),
        "{plain_row}"
    );

    let (json, rc) = sh.run("rjobs --json");
    assert_eq!(rc, 0);
    assert!(
        json.trim_start().starts_with('[') && json.contains("\"command\":\"sleep 301 | cat\""),
        "{json}"
    );
}

#[test]
fn rjobs_views_and_errors() {
    let dir = tempdir();
    let mut sh = Shell::start(dir.path());
    sh.run("sleep 300 &");
    // -t: another terminal's session, from outside it. The job's child may not
    // have exec'd `sleep` yet (it would show as `bash`): poll until it has.
    let rjobs_t = || {
        std::process::Command::new(util::bin("rjobs"))
            .args(["-t", &sh.tty.to_string_lossy()])
            .output()
            .unwrap()
    };
    assert!(
        util::poll_until(util::DEADLINE, || {
            let out = rjobs_t();
            out.status.code() == Some(0)
                && String::from_utf8_lossy(&out.stdout).contains("sleep 300 &")
        }),
        "rjobs -t: {:?}",
        rjobs_t()
    );
    let all = std::process::Command::new(util::bin("rjobs"))
        .args(["-A", "--json"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&all.stdout).contains(&format!("\"session\":{}", sh.pid)));
    let out = std::process::Command::new(util::bin("rjobs"))
        .args(["-t", "/dev/null"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "rjobs: no session has '/dev/null' as its controlling terminal\n"
    );
    let out = std::process::Command::new(util::bin("rjobs"))
        .args(["--bogus"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "rjobs: unexpected argument '--bogus' found\nTry 'rjobs --help' for more information.\n"
    );
}

#[test]
fn rbg_continues_stopped_jobs() {
    let dir = tempdir();
    let mut sh = Shell::start(dir.path());
    for n in ["300", "301"] {
        sh.suspend(&format!("sleep {n}"), "sleep");
    }
    let (out, rc) = sh.run("rbg");
    assert_eq!((out.as_str(), rc), ("[2]+ sleep 301 &\n", 0));
    let (jobs, _) = sh.run("jobs");
    assert!(
        line_with(&jobs, "sleep 301").contains("Running"),
        "bash sees it running:\n{jobs}"
    );
    let pid = sh.last_line("jobs -p %1");
    let (out, rc) = sh.run(&format!("rbg {pid}"));
    assert_eq!((out.as_str(), rc), ("[1]+ sleep 300 &\n", 0));
    let (out, rc) = sh.run("rbg %1");
    assert_eq!(
        (out.as_str(), rc),
        ("rbg: %1: job already in background\n", 0)
    );
    let (out, rc) = sh.run("rbg %9");
    assert_eq!((out.as_str(), rc), ("rbg: %9: no such job\n", 1));
    let (out, rc) = sh.run("rbg x");
    assert_eq!(rc, 2, "{out}");
    // A spec that matches several jobs is refused, not guessed.
    let (out, rc) = sh.run("rbg %?sleep");
    assert_eq!(
        (out.as_str(), rc),
        ("rbg: %?sleep: ambiguous job spec\n", 1)
    );
    let (out, rc) = sh.run("rjobs --explain %sleep");
    assert_eq!(
        (out.as_str(), rc),
        ("rjobs: %sleep: ambiguous job spec\n", 1)
    );
}

/// A stopped process of another session (setsid, no terminal) is no job of
/// the caller's: rbg refuses it, by PID or PID@STARTTIME, and it stays stopped.
#[test]
fn rbg_refuses_another_session() {
    let dir = tempdir();
    let mut sh = Shell::start(dir.path());
    let pidfile = dir.path().join("other.pid");
    sh.run("setsid sh -c 'echo $$ > other.pid.tmp; mv other.pid.tmp other.pid; exec sleep 300' </dev/null >/dev/null 2>&1 &");
    assert!(util::poll_until(util::DEADLINE, || pidfile.exists()));
    let other: Pid = Pid::from_raw(
        std::fs::read_to_string(&pidfile)
            .unwrap()
            .trim()
            .parse()
            .unwrap(),
    );
    let _guard = KillGroup(other);
    // setsid's own process (the shell's job) has ended: collect its "Done" now.
    sh.run("wait");
    let stat = || hupkit_common::proc::Stat::read(other).unwrap();
    assert!(util::poll_until(util::DEADLINE, || stat().comm == "sleep"));
    assert_eq!(stat().session, other, "a session of its own");
    nix::sys::signal::kill(other, nix::sys::signal::Signal::SIGSTOP).unwrap();
    assert!(util::poll_until(util::DEADLINE, || stat().state
        == hupkit_common::proc::ProcState::Stopped));
    let start = stat().starttime;
    for spec in [other.to_string(), format!("{other}@{start}")] {
        let (out, rc) = sh.run(&format!("rbg {spec}"));
        assert_eq!(
            (out.as_str(), rc),
            (
                format!("rbg: {spec}: PID {other} is in another session: not a job of this one\n")
                    .as_str(),
                1
            )
        );
    }
    assert_eq!(
        stat().state,
        hupkit_common::proc::ProcState::Stopped,
        "still stopped"
    );
}

#[test]
fn rfg_interrupt_stop_and_status() {
    let dir = tempdir();
    let mut sh = Shell::start(dir.path());
    // ^C: 130, and the shell has the terminal back.
    sh.run("sleep 300 &");
    sh.line("rfg %1");
    sh.wait_foreground("sleep");
    sh.type_raw(b"\x03");
    let (_, rc) = sh.run("true");
    assert_eq!(rc, 0);
    let (out, _) = sh.run("echo $((1+1))");
    assert_eq!(out, "2\n");
    assert_eq!(sh.foreground(), sh.pid.as_raw());

    // ^Z: 148, and bash lists the job as Stopped.
    sh.run("sleep 301 &");
    sh.line("rfg; echo st=$?");
    sh.wait_foreground("sleep");
    sh.type_raw(b"\x1a");
    sh.expect("st=148");
    sh.expect("$ ");
    let (jobs, _) = sh.run("jobs");
    assert!(line_with(&jobs, "sleep 301").contains("Stopped"), "{jobs}");
    sh.run("kill %1");

    // The job's own status passes through.
    let (_, rc) = sh.run("(sleep 0.3; exit 3) & rfg $!");
    assert_eq!(rc, 3);
    let (_, rc) = sh.run("sh -c 'sleep 0.3; kill -TERM $$' & rfg $!");
    assert_eq!(rc, 143);
}

#[test]
fn rfg_job_reads_the_terminal() {
    let dir = tempdir();
    let mut sh = Shell::start(dir.path());
    sh.run("cat > got.txt &");
    sh.line("rfg; echo st=$?");
    sh.wait_foreground("cat");
    sh.line("typed line one");
    sh.line("typed line two");
    let got = dir.path().join("got.txt");
    assert!(util::poll_until(util::DEADLINE, || {
        std::fs::read_to_string(&got).is_ok_and(|t| t.ends_with("two\n"))
    }));
    sh.type_raw(b"\x04");
    sh.expect("st=0");
    sh.expect("$ ");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("got.txt")).unwrap(),
        "typed line one\ntyped line two\n"
    );
}

#[test]
fn rfg_refusals() {
    let dir = tempdir();
    let mut sh = Shell::start(dir.path());
    sh.run("sleep 300 &");
    sh.line("rfg %1 & wait $!; echo st=$?");
    let out = sh.expect("st=125");
    assert!(
        out.contains("rfg: not the foreground job of this terminal: run rfg without '&'"),
        "{out}"
    );
    sh.expect("$ ");
    // A job on another terminal.
    let mut other = Shell::start(dir.path());
    let pid = other.last_line("sleep 302 & echo $!");
    let (out, rc) = sh.run(&format!("rfg {pid}"));
    assert_eq!(rc, 125);
    let tty = other
        .tty
        .strip_prefix("/dev")
        .unwrap()
        .display()
        .to_string();
    assert_eq!(
        out,
        format!(
            "rfg: {pid}: PID {pid} is on another terminal ({tty}) and cannot be brought here; its output goes to {}\n",
            other.tty.display()
        )
    );
    let (out, rc) = sh.run("rfg %7");
    assert_eq!((out.as_str(), rc), ("rfg: %7: no such job\n", 125));
    // A PID whose start time does not match (a reused PID): refused, untouched.
    let live = sh.last_line("sleep 303 & echo $!");
    let (out, rc) = sh.run(&format!("rfg {live}@1"));
    assert_eq!(
        (out.as_str(), rc),
        (
            format!("rfg: {live}@1: no such process (or its PID was reused)\n").as_str(),
            125
        )
    );
}

#[test]
fn rfg_brings_back_a_disowned_job() {
    let dir = tempdir();
    let mut sh = Shell::start(dir.path());
    let pid = sh.last_line("sleep 300 & disown; echo $!");
    sh.line(&format!("rfg {pid}; echo st=$?"));
    sh.wait_foreground("sleep");
    sh.type_raw(b"\x03");
    sh.expect("st=130");
    sh.expect("$ ");
}

#[test]
fn rfg_terminated_mid_wait_gives_the_terminal_back() {
    let dir = tempdir();
    let mut sh = Shell::start(dir.path());
    sh.run("sleep 300 &");
    sh.line("sh -c 'echo $$ > rfg.pid; exec rfg %1'; echo st=$?");
    let pidfile = dir.path().join("rfg.pid");
    assert!(util::poll_until(util::DEADLINE, || {
        std::fs::read_to_string(&pidfile).is_ok_and(|t| t.ends_with('\n'))
    }));
    let rfg = Pid::from_raw(
        std::fs::read_to_string(&pidfile)
            .unwrap()
            .trim()
            .parse()
            .unwrap(),
    );
    let job_has_tty = || sh_fg_is_not_shell(sh.pid);
    assert!(
        util::poll_until(util::DEADLINE, job_has_tty),
        "the job got the terminal"
    );
    let id = Identity::of(rfg).unwrap();
    let fd = hupkit_common::pidfd::PidFd::open(rfg).unwrap();
    assert_eq!(id.liveness(), hupkit_common::identity::Liveness::Alive);
    fd.signal(nix::sys::signal::Signal::SIGTERM).unwrap();
    sh.expect("st=143");
    sh.expect("$ ");
    assert_eq!(
        sh.foreground(),
        sh.pid.as_raw(),
        "the shell has the terminal back"
    );
    let (out, rc) = sh.run("echo alive");
    assert_eq!((out.as_str(), rc), ("alive\n", 0));
    let (jobs, _) = sh.run("jobs");
    assert!(
        jobs.contains("sleep 300"),
        "the job lives on in the background:\n{jobs}"
    );
}

fn sh_fg_is_not_shell(shell: Pid) -> bool {
    hupkit_common::proc::Stat::read(shell).is_ok_and(|s| s.tpgid != shell.as_raw())
}

/// rnohup records its job; after the terminal is hung up, rjobs --records lists it.
#[test]
fn records_survive_the_hangup() {
    let dir = tempdir();
    let mut sh = Shell::start(dir.path());
    let pid: i32 = sh
        .last_line("rnohup sleep 300 2>/dev/null & echo $!")
        .parse()
        .unwrap();
    let job = Identity::of(Pid::from_raw(pid)).unwrap();
    let records = dir.path().join(".local/state/hupkit/jobs");
    assert!(util::poll_until(util::DEADLINE, || std::fs::read_dir(
        &records
    )
    .is_ok_and(|mut d| d.next().is_some())));
    sh.hang_up();
    assert!(sh.wait().is_some(), "bash ends with its terminal");
    let out = std::process::Command::new(util::bin("rjobs"))
        .arg("--records")
        .env("HOME", dir.path())
        .env_remove("XDG_STATE_HOME")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let row = line_with(&text, &format!("{}@{}", job.pid, job.starttime));
    assert!(
        row.contains("running") && row.contains("nohup") && row.ends_with("sleep 300"),
        "{row}"
    );
    assert!(
        row.contains(&dir.path().join("nohup.out").display().to_string()),
        "{row}"
    );
    // Clean up the survivor, by identity.
    let fd = hupkit_common::pidfd::PidFd::open(job.pid).unwrap();
    if job.liveness() == hupkit_common::identity::Liveness::Alive {
        fd.signal(nix::sys::signal::Signal::SIGKILL).unwrap();
    }
    assert!(fd.wait_exit(util::DEADLINE).unwrap());
    // --prune forgets it once it is gone (a zombie counts as gone).
    let out = std::process::Command::new(util::bin("rjobs"))
        .args(["--records", "--prune"])
        .env("HOME", dir.path())
        .env_remove("XDG_STATE_HOME")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(std::fs::read_dir(&records).unwrap().next().is_none());
}

#[test]
fn corrupt_record_is_skipped_with_a_warning() {
    let dir = tempdir();
    let records = dir.path().join("state/hupkit/jobs");
    std::fs::create_dir_all(&records).unwrap();
    std::fs::write(records.join("bad.job"), "not a record").unwrap();
    let out = std::process::Command::new(util::bin("rjobs"))
        .args(["--records", "--json"])
        .env("XDG_STATE_HOME", dir.path().join("state"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "[]\n");
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!(
            "rjobs: skipping '{}': not a valid job record\n",
            records.join("bad.job").display()
        )
    );
}

/// A job that changes the terminal's modes and is killed: rfg restores them, as bash does.
#[test]
fn rfg_restores_terminal_modes_after_a_killed_job() {
    let dir = tempdir();
    let mut sh = Shell::start(dir.path());
    let (before, _) = sh.run("stty -a | grep -o -- ' -\\?echo ' | head -1");
    assert_eq!(before, " echo \n");
    // `exec`: once the foreground job is named sleep, stty is done and ^C
    // reaches a process that dies of it (a ^C between sh's `touch` and its fork
    // of sleep went to sh alone, which waits for its child before acting on it).
    sh.run("sh -c 'stty -echo; exec sleep 300' &");
    sh.line("rfg; echo st=$?");
    sh.wait_foreground("sleep");
    sh.type_raw(b"\x03");
    sh.expect("st=130");
    sh.expect("$ ");
    let (after, _) = sh.run("stty -a | grep -o -- ' -\\?echo ' | head -1");
    assert_eq!(after, " echo \n", "echo is back on");
}

/// rbg refuses a job that is the foreground of its terminal: here the
/// foreground job of rbg's own terminal, which rbg is part of (a job of
/// another terminal is another session's, refused as such, see
/// `rbg_refuses_another_session`).
#[test]
fn rbg_refuses_a_foreground_job() {
    let dir = tempdir();
    let mut sh = Shell::start(dir.path());
    let (out, rc) = sh.run("sh -c 'sleep 300 & p=$!; rbg $p; echo \"rc=$? $p\"; kill $p'");
    assert_eq!(rc, 0, "{out}");
    let pid = out
        .lines()
        .find_map(|l| l.strip_prefix("rc=1 "))
        .unwrap_or_else(|| panic!("{out}"));
    assert_eq!(
        out,
        format!("rbg: {pid}: job is in the foreground of its terminal; use rfg\nrc=1 {pid}\n")
    );
}

/// rnohup's record is silent: a failure to write it changes nothing, and
/// `HUPKIT_NO_RECORD=1` turns it off.
#[test]
fn rnohup_records_are_silent_and_optional() {
    let dir = tempdir();
    let run = |env: &[(&str, &str)]| {
        let mut cmd = std::process::Command::new(util::bin("rnohup"));
        cmd.args(["sh", "-c", "echo ran"])
            .current_dir(dir.path())
            .env_clear()
            .env("PATH", "/usr/bin:/bin");
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    };
    let state = dir.path().join("state");
    let out = run(&[("XDG_STATE_HOME", &state.to_string_lossy())]);
    assert_eq!(
        (
            out.status.code(),
            out.stdout.as_slice(),
            out.stderr.as_slice()
        ),
        (Some(0), &b"ran\n"[..], &b""[..])
    );
    assert_eq!(
        std::fs::read_dir(state.join("hupkit/jobs"))
            .unwrap()
            .count(),
        1
    );
    let out = run(&[
        ("XDG_STATE_HOME", "/proc/no-such-dir"),
        ("HOME", "/proc/nope"),
    ]);
    assert_eq!(
        (
            out.status.code(),
            out.stdout.as_slice(),
            out.stderr.as_slice()
        ),
        (Some(0), &b"ran\n"[..], &b""[..])
    );
    let off = dir.path().join("off");
    let out = run(&[
        ("XDG_STATE_HOME", &off.to_string_lossy()),
        ("HUPKIT_NO_RECORD", "1"),
    ]);
    assert_eq!(out.status.code(), Some(0));
    assert!(!off.exists());
}

#[test]
fn rjobs_explain_gives_verdicts() {
    let dir = tempdir();
    let mut sh = Shell::start(dir.path());
    let plain = sh.last_line("sleep 300 & echo $!");
    let (out, rc) = sh.run(&format!("rjobs --explain {plain}"));
    assert_eq!(rc, 0, "{out}");
    assert!(
        out.contains("a background job") && out.contains("SIGHUP: default"),
        "{out}"
    );
    assert!(
        out.contains("terminal hangup:      dies, if it is still in bash's job table"),
        "{out}"
    );
    assert!(out.contains("shell exit:           lives"), "{out}");
    assert!(
        out.contains(&format!("to change that: rdisown {plain}")),
        "{out}"
    );
    let nohup = sh.last_line("rnohup sleep 301 2>/dev/null & echo $!");
    assert!(util::poll_until(util::DEADLINE, || {
        hupkit_common::proc::Status::read(Pid::from_raw(nohup.parse().unwrap()))
            .is_ok_and(|s| s.sig_ign.contains(nix::sys::signal::Signal::SIGHUP))
    }));
    let (out, _) = sh.run(&format!("rjobs --explain {nohup}"));
    assert!(
        out.contains("SIGHUP: ignored") && out.contains("terminal hangup:      lives\n"),
        "{out}"
    );
    assert!(out.contains("nothing to change"), "{out}");
    let (out, rc) = sh.run("rjobs --explain %9");
    assert_eq!((out.as_str(), rc), ("rjobs: %9: no such job\n", 1));
}

/// Kills (SIGKILL) a process group the test created when dropped.
struct KillGroup(Pid);

impl Drop for KillGroup {
    fn drop(&mut self) {
        util::kill_group(self.0);
    }
}

/// The session leader of [`rfg_gives_the_terminal_back_on_every_guarded_signal`]:
/// one rfg per signal, each started when the test says so (`go.N`); the
/// leader writes its PID and waits for it; it exits (giving up the terminal)
/// only at `go.COUNT`. No core files (SIGQUIT, SIGABRT and
/// others dump core by default).
const RFG_LEADER: &str = r#"ulimit -c 0
    set -m; sleep 300 & j=$!; set +m
    echo "$j" > job.pid
    n=0
    while [ "$n" -lt "$COUNT" ]; do
        until [ -e "go.$n" ]; do sleep 0.01; done
        "$RFG" "$j" 2>>rfg.err & echo "$!" > "rfg.$n.tmp"; mv "rfg.$n.tmp" "rfg.$n.pid"
        wait "$!"; echo "$n $?" >> rfg.status
        n=$((n + 1))
    done
    until [ -e "go.$n" ]; do sleep 0.01; done
"#;

/// Every signal of rfg's `GUARDED` list gives the terminal back, checked under a
/// parent that never reclaims it: a plain `sh` session leader without job
/// control (bash -i takes the terminal back itself when its foreground job dies,
/// which hid missing handlers). The job is put in its own group with `set -m`,
/// then job control is turned off again, so the leader runs each rfg in its own
/// (foreground) group and does nothing with the terminal when rfg dies.
#[test]
fn rfg_gives_the_terminal_back_on_every_guarded_signal() {
    use std::fmt::Write as _;
    use std::os::fd::AsFd;
    use std::process::{Command, Stdio};
    use std::time::Duration;
    let dir = tempdir();
    let pty = util::pty();
    let signals = hupkit_rfg::GUARDED;
    let mut cmd = Command::new("/bin/sh");
    cmd.args(["-c", RFG_LEADER])
        .current_dir(dir.path())
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("RFG", util::bin("rfg"))
        .env("COUNT", signals.len().to_string())
        .stdin(Stdio::from(pty.slave.try_clone().unwrap()))
        .stdout(Stdio::null())
        .stderr(Stdio::from(
            std::fs::File::create(dir.path().join("sh.err")).unwrap(),
        ));
    hupkit_common::pty::session_leader_on_exec(&mut cmd);
    let mut leader = util::ChildGuard::new(util::spawn(&mut cmd));
    let lead = leader.pid();
    let read_pid = |name: &str| -> Option<Pid> {
        let text = std::fs::read_to_string(dir.path().join(name)).ok()?;
        text.trim().parse().ok().map(Pid::from_raw)
    };
    let mut job = None;
    assert!(util::poll_until(util::DEADLINE, || {
        job = read_pid("job.pid");
        job.is_some()
    }));
    let job = job.unwrap();
    let _job_guard = KillGroup(job);
    let foreground = || nix::unistd::tcgetpgrp(pty.master.as_fd()).map_or(-1, Pid::as_raw);
    let log = |what: &str| {
        let read = |n: &str| std::fs::read_to_string(dir.path().join(n)).unwrap_or_default();
        format!(
            "{what}; rfg.err: {:?}; rfg.status: {:?}; sh.err: {:?}",
            read("rfg.err"),
            read("rfg.status"),
            read("sh.err")
        )
    };
    for (n, sig) in signals.iter().enumerate() {
        std::fs::write(dir.path().join(format!("go.{n}")), "").unwrap();
        let mut rfg = None;
        assert!(
            util::poll_until(util::DEADLINE, || {
                rfg = read_pid(&format!("rfg.{n}.pid"));
                rfg.is_some()
            }),
            "{}",
            log(&format!("rfg #{n} never started"))
        );
        let rfg = rfg.unwrap();
        assert!(
            util::poll_until(util::DEADLINE, || foreground() == job.as_raw()),
            "{}",
            log(&format!("rfg #{n} never gave the job the terminal"))
        );
        // By identity: rfg is the leader's child, alive until it is signalled.
        let fd = hupkit_common::pidfd::PidFd::open(rfg).unwrap();
        fd.signal(*sig).unwrap();
        assert!(fd.wait_exit(util::DEADLINE).unwrap());
        assert!(
            util::poll_until(Duration::from_secs(5), || foreground() == lead.as_raw()),
            "{}",
            log(&format!(
                "{sig}: the terminal stayed with group {} instead of the leader's {lead}",
                foreground()
            ))
        );
    }
    // The leader holds the terminal until the last check is done.
    std::fs::write(dir.path().join(format!("go.{}", signals.len())), "").unwrap();
    let status = leader.wait(util::DEADLINE);
    assert_eq!(util::describe(status), "exit 0", "{}", log("leader"));
    let statuses = std::fs::read_to_string(dir.path().join("rfg.status")).unwrap();
    let mut want = String::new();
    for (n, sig) in signals.iter().enumerate() {
        let _ = writeln!(want, "{n} {}", 128 + *sig as i32);
    }
    assert_eq!(statuses, want, "each rfg died of its signal");
}

/// A job whose arguments and name hold an escape sequence, a carriage return, a
/// newline and an invalid byte: every text view of it (rjobs, -l, -A, -A -l,
/// --explain, rbg's line, disown's message, rjobs --records) shows it quoted for
/// a shell, with no control byte, on one line; --json keeps it exact.
#[test]
fn hostile_command_lines_are_quoted() {
    let dir = tempdir();
    let mut sh = Shell::start(dir.path());
    sh.run(
        r#"sh -c 'printf "\033[31mX\r\n" > /proc/self/comm; sleep 300; :' $'\e[31mred\r\n' $'\xff' &"#,
    );
    let pid: i32 = sh.last_line("echo $!").trim().parse().unwrap();
    assert!(util::poll_until(util::DEADLINE, || {
        std::fs::read(format!("/proc/{pid}/comm")).is_ok_and(|c| c.starts_with(b"\x1b[31mX"))
    }));
    let argv = r#"sh -c 'printf "\033[31mX\r\n" > /proc/self/comm; sleep 300; :' $'\033''[31mred'$'\r\n' $'\377'"#;
    // Each view to a file, so that the terminal's own output processing hides nothing.
    let view = |sh: &mut Shell, cmd: &str| -> String {
        let (_, rc) = sh.run(&format!("{cmd} >view.txt 2>&1"));
        let raw = std::fs::read(dir.path().join("view.txt")).unwrap();
        assert!(
            !raw.iter().any(|&b| (b < 0x20 && b != b'\n') || b >= 0x7f),
            "{cmd} (status {rc}): raw bytes in {raw:?}"
        );
        String::from_utf8(raw).unwrap()
    };
    for cmd in ["rjobs", "rjobs -l", "rjobs -A", "rjobs -A -l"] {
        let out = view(&mut sh, cmd);
        assert!(
            line_with(&out, &pid.to_string()).ends_with(&format!("{argv} &")),
            "{cmd}:\n{out}"
        );
    }
    let out = view(&mut sh, &format!("rjobs --explain {pid}"));
    assert!(
        out.starts_with(&format!("PID {pid} ({argv})\n")),
        "--explain:\n{out}"
    );
    // JSON is exact (as before): the control characters escaped the JSON way.
    let (_, rc) = sh.run("rjobs --json >view.json");
    assert_eq!(rc, 0);
    let json = std::fs::read_to_string(dir.path().join("view.json")).unwrap();
    assert!(
        json.contains(r#"sleep 300; : \u001b[31mred\r\n �""#),
        "{json}"
    );
    // rbg prints the job's command as it continues it.
    sh.run(&format!("kill -STOP -- -{pid}"));
    assert!(util::poll_until(util::DEADLINE, || {
        hupkit_common::proc::Stat::read(Pid::from_raw(pid))
            .is_ok_and(|s| s.state == hupkit_common::proc::ProcState::Stopped)
    }));
    let out = view(&mut sh, "rbg %1");
    assert_eq!(out, format!("[1]+ {argv} &\n"), "rbg");
    // disown names the job by its number and quoted command line.
    let out = view(&mut sh, &format!("rdisown {pid}"));
    assert!(
        out.starts_with(&format!("rdisown: [1] PID {pid} ({argv}): SIGHUP ignored")),
        "rdisown:\n{out}"
    );
    // Its job record, listed.
    let out = view(&mut sh, "rjobs --records");
    assert!(
        line_with(&out, &pid.to_string()).ends_with(argv),
        "--records:\n{out}"
    );
}

/// `--prune` that cannot remove a record says why as GNU tools do (no Rust
/// `(os error N)` suffix), goes on, and exits 1.
#[test]
fn rjobs_prune_failure_is_one_gnu_line() {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: needs root to drop to nobody");
        return;
    }
    let dir = tempdir();
    let store = dir.path().join("state/hupkit/jobs");
    // A record of a process that is gone, in a store nobody may read but not change.
    let gone = util::ChildGuard::new(
        std::process::Command::new("sleep")
            .arg("60")
            .stdin(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let record = hupkit_common::records::Record::new(
        gone.pid(),
        hupkit_common::records::Level::Nohup,
        vec!["sleep".into(), "60".into()],
    )
    .unwrap();
    let path = hupkit_common::records::write(&store, &record).unwrap();
    // Killed and reaped: the record's process is gone.
    drop(gone);
    for (p, mode) in [
        (dir.path().to_path_buf(), 0o755),
        (dir.path().join("state"), 0o755),
        (dir.path().join("state/hupkit"), 0o755),
        (store.clone(), 0o755),
        (path.clone(), 0o644),
    ] {
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    // A copy nobody can run whatever the checkout's own permissions (a clone
    // under a 0700 directory, say).
    let rjobs = dir.path().join("rjobs");
    std::fs::copy(util::bin("rjobs"), &rjobs).unwrap();
    let out = util::spawn(
        std::process::Command::new(&rjobs)
            .args(["--records", "--prune"])
            .env_clear()
            .env("XDG_STATE_HOME", dir.path().join("state"))
            .current_dir(dir.path())
            .uid(65534)
            .gid(65534)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped()),
    )
    .wait_with_output()
    .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!(
            "rjobs: cannot remove '{}': Permission denied\n",
            path.display()
        )
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "");
    assert!(path.exists(), "the record is still there");
}
