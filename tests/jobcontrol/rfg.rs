//! rfg as a user sees it on a real `bash -i`: the command line it brings back,
//! the line ended after ^C, bash's stopped-job line after ^Z, and a wait whose
//! cost does not grow with the machine's process count.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::unistd::Pid;

use crate::util::{self, shell::Shell};

/// Waits until process `pid` runs `comm` (until its exec it is a copy of
/// bash, and its command line bash's).
fn exec_done(pid: &str, comm: &str) {
    let path = format!("/proc/{pid}/comm");
    assert!(
        util::poll_until(util::DEADLINE, || {
            std::fs::read_to_string(&path).is_ok_and(|c| c.trim_end() == comm)
        }),
        "{pid} never ran {comm}"
    );
}

/// As `fg` does, rfg shows the command it brings back (quoted for a shell,
/// the pipeline's commands joined by ` | `), and after ^C the prompt starts on
/// a line of its own.
#[test]
fn rfg_shows_the_command_and_ends_the_line_after_interrupt() {
    let dir = super::tempdir();
    let mut sh = Shell::start(dir.path());
    let last = sh.last_line("sh -c 'sleep 300; :' | cat & echo $!");
    let first = sh.last_line("jobs -p %1");
    exec_done(&first, "sh");
    exec_done(&last, "cat");
    sh.line("rfg %1");
    let out = sh.expect("| cat\n");
    assert!(
        out.ends_with("rfg %1\nsh -c 'sleep 300; :' | cat\n"),
        "the command line, quoted, on its own line: {out:?}"
    );
    sh.wait_foreground("sh");
    sh.type_raw(b"\x03");
    let out = sh.expect("$ ");
    assert!(
        out.starts_with("^C\n"),
        "the line is ended after ^C: {out:?}"
    );
    let (out, rc) = sh.run("echo back");
    assert_eq!((out.as_str(), rc), ("back\n", 0));
}

/// After ^Z, rfg prints the stopped job as bash does, with its number: here a
/// job bash has disowned, of which bash itself says nothing.
#[test]
fn rfg_prints_the_stopped_job_after_suspend() {
    let dir = super::tempdir();
    let mut sh = Shell::start(dir.path());
    let pid = sh.last_line("sleep 301 & disown; echo $!");
    exec_done(&pid, "sleep");
    sh.line("rfg; echo st=$?");
    let out = sh.expect("sleep 301\n");
    assert!(out.ends_with("rfg; echo st=$?\nsleep 301\n"), "{out:?}");
    sh.wait_foreground("sleep");
    sh.type_raw(b"\x1a");
    let out = sh.expect("st=148");
    assert!(
        out.starts_with("^Z\n[1]+  Stopped                 sleep 301\n"),
        "bash's stopped line: {out:?}"
    );
    sh.expect("$ ");
    sh.run("kill %1");
}

/// The processes of one group of this test's own, killed (by their group) and
/// reaped when dropped.
struct Crowd(Vec<std::process::Child>);

impl Crowd {
    fn start(n: usize) -> Crowd {
        use std::os::unix::process::CommandExt;
        let mut crowd = Crowd(Vec::with_capacity(n));
        let mut group = 0;
        for _ in 0..n {
            let child = util::spawn(
                Command::new("sleep")
                    .arg("300")
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .process_group(group),
            );
            if group == 0 {
                group = i32::try_from(child.id()).unwrap();
            }
            crowd.0.push(child);
        }
        crowd
    }
}

impl Drop for Crowd {
    fn drop(&mut self) {
        if let Some(first) = self.0.first() {
            util::kill_group(Pid::from_raw(i32::try_from(first.id()).unwrap()));
        }
        for child in &mut self.0 {
            let _ = child.wait();
        }
    }
}

/// `read` system calls made by `pid` so far (`syscr` of /proc/PID/io).
fn reads(pid: Pid) -> u64 {
    let io = std::fs::read_to_string(format!("/proc/{pid}/io")).unwrap();
    io.lines()
        .find_map(|l| l.strip_prefix("syscr: "))
        .unwrap()
        .parse()
        .unwrap()
}

/// While the job runs, rfg reads about its own members only, not all of /proc:
/// with 300 extra processes on the machine it makes fewer `read` calls per
/// second than there are processes (a scan of /proc reads every process's
/// `stat`, 50 times a second before).
#[test]
fn rfg_waits_without_scanning_proc() {
    let crowd = Crowd::start(300);
    let dir = super::tempdir();
    let mut sh = Shell::start(dir.path());
    sh.run("sleep 300 &");
    sh.line("sh -c 'echo $$ > rfg.pid; exec rfg %1'; echo st=$?");
    let pidfile = dir.path().join("rfg.pid");
    assert!(util::poll_until(util::DEADLINE, || {
        std::fs::read_to_string(&pidfile).is_ok_and(|t| t.ends_with('\n'))
    }));
    let rfg: Pid = Pid::from_raw(
        std::fs::read_to_string(&pidfile)
            .unwrap()
            .trim()
            .parse()
            .unwrap(),
    );
    sh.wait_foreground("sleep");
    let processes = std::fs::read_dir("/proc")
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.file_name().to_string_lossy().parse::<u32>().is_ok())
        })
        .count();
    let before = reads(rfg);
    let start = Instant::now();
    // A measuring window, not a synchronisation: rfg is waiting throughout.
    std::thread::sleep(Duration::from_secs(1));
    let per_second = u128::from(reads(rfg) - before) * 1000 / start.elapsed().as_millis().max(1);
    sh.type_raw(b"\x03");
    sh.expect("st=130");
    sh.expect("$ ");
    drop(crowd);
    assert!(
        per_second < processes as u128,
        "rfg made {per_second} reads a second with {processes} processes on the machine"
    );
}
