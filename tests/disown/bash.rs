//! rdisown as a bash user types it: bash's short letters (`-h`, `-a`, `-r`),
//! report lines that name the job it acted on, and the rescue of a job's
//! output after its terminal has hung up.

use std::process::{Command, Stdio};

use hupkit_common::proc::{ProcState, Stat};
use nix::sys::signal::Signal;

use super::Victim;
use crate::util::{self, shell::Shell};

/// Waits until `v` runs the program `comm` (a job is a copy of bash until it execs).
fn wait_exec(v: &Victim, comm: &str) {
    assert!(
        util::poll_until(util::DEADLINE, || Stat::read(v.0.pid)
            .is_ok_and(|s| s.comm == comm)),
        "PID {} runs {comm}",
        v.0.pid
    );
}

fn ignores_sighup(v: &Victim) -> bool {
    v.status().sig_ign.contains(Signal::SIGHUP)
}

/// `-h` is bash's `disown -h` (only SIGHUP), `-r` every running job, `-a`
/// every job; each line names the job by rjobs' number, PID and quoted
/// command line.
#[test]
fn short_letters_mean_what_bash_means() {
    let dir = tempfile::tempdir().unwrap();
    let mut sh = Shell::start(dir.path());
    let tty = sh.tty.display().to_string();
    let one = Victim::of(&sh.last_line("sleep 300 & echo $!"));
    let two = Victim::of(&sh.last_line("sh -c 'while :; do sleep 1; done' & echo $!"));
    sh.suspend("sleep 302", "sleep");
    let three = Victim::of(&sh.last_line("jobs -p %%"));
    wait_exec(&one, "sleep");
    wait_exec(&two, "sh");

    let (out, rc) = sh.run("rdisown -h %1");
    assert_eq!(
        (out.as_str(), rc),
        (
            format!(
                "rdisown: [1] PID {} (sleep 300): SIGHUP ignored\n",
                one.0.pid
            )
            .as_str(),
            0
        ),
        "-h is bash's disown -h, not help"
    );
    assert!(ignores_sighup(&one));
    assert!(one.fds().iter().all(|f| *f == tty), "descriptors untouched");

    // -r: the running jobs (the loop's short-lived sleep may come and go).
    let (out, rc) = sh.run("rdisown -r --null");
    assert_eq!(rc, 0, "{out}");
    let want_two = format!(
        "rdisown: [2] PID {} (sh -c 'while :; do sleep 1; done'): SIGHUP ignored; fds 0->/dev/null, 1->/dev/null, 2->/dev/null; terminal dropped",
        two.0.pid
    );
    assert!(out.lines().any(|l| l == want_two), "{out}");
    assert!(
        out.lines().any(|l| l.starts_with(&format!(
            "rdisown: [1] PID {} (sleep 300): SIGHUP already ignored; fds ",
            one.0.pid
        ))),
        "{out}"
    );
    assert!(!out.contains(&format!("PID {} ", three.0.pid)), "{out}");
    assert!(!ignores_sighup(&three), "-r leaves the stopped job alone");
    assert_eq!(Stat::read(three.0.pid).unwrap().state, ProcState::Stopped);

    // -a: every job, the stopped one too (and it is continued).
    let (out, rc) = sh.run("rdisown -a --null");
    assert_eq!(rc, 0, "{out}");
    assert!(
        out.lines().any(|l| l
            == format!(
                "rdisown: [3] PID {} (sleep 302): SIGHUP ignored; fds 0->/dev/null, 1->/dev/null, 2->/dev/null; terminal dropped; continued",
                three.0.pid
            )),
        "{out}"
    );
    assert!(ignores_sighup(&three));

    // -a and -r take no operand; help is --help only; no operand is an error.
    let (out, rc) = sh.run(&format!("rdisown -a {}", one.0.pid));
    assert_eq!(rc, 2, "{out}");
    assert!(
        out.ends_with("Try 'rdisown --help' for more information.\n"),
        "{out}"
    );
    let (out, rc) = sh.run("rdisown");
    assert_eq!(rc, 2, "{out}");
    let (out, rc) = sh.run("rdisown --help");
    assert_eq!(rc, 0);
    assert!(out.contains("-h, --keep-tty"), "{out}");
    assert!(out.contains("--override-handler"), "{out}");
    assert!(out.contains("--tree"), "{out}");
}

/// A directory's file of numbers written by the job.
fn read_numbers(path: &std::path::Path) -> Option<Vec<i32>> {
    let text = std::fs::read_to_string(path).ok()?;
    let v: Vec<i32> = text
        .split_ascii_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    (v.len() == 2).then_some(v)
}

fn link(v: &Victim, fd: i32) -> String {
    std::fs::read_link(format!("/proc/{}/fd/{fd}", v.0.pid))
        .map_or_else(|_| "closed".into(), |p| p.display().to_string())
}

const PTY_HOLDER: &str = "import os, pty, time
m, s = pty.openpty()
with open('fds.tmp', 'w') as f:
    f.write(f'{m} {s}')
os.rename('fds.tmp', 'fds')
while True:
    try:
        print('tick', flush=True)
    except OSError:
        pass
    time.sleep(0.2)
";

/// "I reconnected, my job lives, its output is lost: send it to a file." A
/// job protected by bash's `disown -h` writes to a terminal that has hung up;
/// `rdisown -o FILE PID`, from outside any terminal, re-points it, and the
/// file grows. A pty master (and, without --any-tty, a live terminal) the job
/// holds is left alone.
#[test]
fn rescue_output_after_the_hangup() {
    let dir = tempfile::tempdir().unwrap();
    let mut sh = Shell::start(dir.path());
    let writer =
        Victim::of(&sh.last_line("sh -c 'while :; do date; sleep 0.2; done' & disown -h; echo $!"));
    std::fs::write(dir.path().join("holder.py"), PTY_HOLDER).unwrap();
    let holder = Victim::of(&sh.last_line("python3 holder.py & disown -h; echo $!"));
    let fds_file = dir.path().join("fds");
    assert!(util::poll_until(util::DEADLINE, || read_numbers(&fds_file).is_some()));
    let nums = read_numbers(&fds_file).unwrap();
    let (master, slave) = (nums[0], nums[1]);
    let (master_link, slave_link) = (link(&holder, master), link(&holder, slave));

    sh.hang_up();
    assert!(sh.wait().is_some(), "bash ends with its terminal");
    for v in [&writer, &holder] {
        assert!(
            util::poll_until(util::DEADLINE, || link(v, 1).ends_with(" (deleted)")),
            "PID {} writes to the hung-up terminal: {}",
            v.0.pid,
            link(v, 1)
        );
        assert!(v.alive(), "PID {} survived", v.0.pid);
    }

    let log = dir.path().join("rescued.log");
    let rdisown = |args: &[&str]| {
        let out = Command::new(util::bin("rdisown"))
            .args(args)
            .current_dir(dir.path())
            .env("HUPKIT_NO_RECORD", "1")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let log_text = log.display().to_string();
    let (rc, out, err) = rdisown(&["-o", &log_text, &writer.0.pid.to_string()]);
    assert_eq!(rc, 0, "{out}{err}");
    assert!(
        out.contains(&format!("fds 0->/dev/null, 1->{log_text}, 2->{log_text}")),
        "{out}"
    );
    let size = || std::fs::metadata(&log).map_or(0, |m| m.len());
    assert!(
        util::poll_until(util::DEADLINE, || size() > 100),
        "the rescued job writes to the file"
    );
    assert!(std::fs::read_to_string(&log).unwrap().lines().count() >= 2);

    let (rc, out, err) = rdisown(&["-o", &log_text, &holder.0.pid.to_string()]);
    assert_eq!(rc, 0, "{out}{err}");
    assert_eq!(link(&holder, 1), log_text);
    assert_eq!(
        link(&holder, master),
        master_link,
        "the pty master is untouched"
    );
    assert_eq!(
        link(&holder, slave),
        slave_link,
        "a live terminal is untouched"
    );
    assert!(out.contains("left alone (--any-tty re-points it)"), "{out}");
    let (rc, out, err) = rdisown(&["--any-tty", "-o", &log_text, &holder.0.pid.to_string()]);
    assert_eq!(rc, 0, "{out}{err}");
    assert_eq!(
        link(&holder, slave),
        log_text,
        "--any-tty: the live terminal too"
    );
    assert_eq!(link(&holder, master), master_link, "never a pty master");
}
