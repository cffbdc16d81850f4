//! Job records across the tools that write them (rnohup, detach, disown): what
//! a record says (the job's own start time, one record per job), how
//! `rjobs --records` shows it, and `HUPKIT_NO_RECORD=1`.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use hupkit_common::identity::Identity;
use hupkit_common::records::{self, Entry, Level, Record};
use nix::unistd::Pid;

use crate::util::{self, ChildGuard, shell::Shell};

/// Clock ticks per second, the unit of start times.
fn clock_ticks() -> u64 {
    // SAFETY: sysconf reads a constant of the system and touches no memory.
    u64::try_from(unsafe { nix::libc::sysconf(nix::libc::_SC_CLK_TCK) }).unwrap()
}

/// How long ago the process of `id` started, from its start time and the
/// boot-time clock (`/proc/uptime`, `SECONDS.CC`).
fn age(id: &Identity) -> Duration {
    let uptime = std::fs::read_to_string("/proc/uptime").unwrap();
    let (secs, cents) = uptime
        .split_ascii_whitespace()
        .next()
        .unwrap()
        .split_once('.')
        .unwrap();
    let now_ms = secs.parse::<u64>().unwrap() * 1000 + cents.parse::<u64>().unwrap() * 10;
    Duration::from_millis(now_ms.saturating_sub(id.starttime * 1000 / clock_ticks()))
}

/// The valid records of the store in `dir`.
fn records_in(dir: &Path) -> Vec<Record> {
    records::list(dir)
        .into_iter()
        .map(|e| match e {
            Entry::Record(_, r) => r,
            Entry::Corrupt(p, why) => panic!("corrupt record {}: {why}", p.display()),
        })
        .collect()
}

/// `MM:SS`, `HH:MM:SS` or `D-HH:MM:SS` in seconds.
fn seconds(etime: &str) -> u64 {
    let (days, rest) = etime.split_once('-').unwrap_or(("0", etime));
    let parts: Vec<u64> = rest.split(':').map(|p| p.parse().unwrap()).collect();
    days.parse::<u64>().unwrap() * 86400 + parts.iter().fold(0, |acc, p| acc * 60 + p)
}

/// A job whose loop keeps starting short-lived children, disowned well after it
/// started: one record, for the job (its group leader and command line), and its
/// STARTED and ELAPSED are the job's, not the moment disown ran.
#[test]
fn disown_records_one_job_with_its_own_start_time() {
    let dir = tempfile::tempdir().unwrap();
    let mut sh = Shell::start(dir.path());
    let pid = sh.last_line("sh -c 'while :; do sleep 0.05; done' & echo $!");
    let leader = Identity::of(Pid::from_raw(pid.parse().unwrap())).unwrap();
    // The job must be visibly older than the disown, and have a child at that moment.
    assert!(util::poll_until(util::DEADLINE, || age(&leader)
        >= Duration::from_millis(2500)));
    let (out, rc) = sh.run("rdisown --null %1");
    assert_eq!(rc, 0, "{out}");

    let store = dir.path().join(".local/state/hupkit/jobs");
    let recs = records_in(&store);
    assert_eq!(recs.len(), 1, "one record for the job: {recs:#?}");
    let rec = &recs[0];
    assert_eq!(rec.level, Level::Disown);
    assert_eq!(rec.id, leader, "the record names the group leader");
    let argv: Vec<String> = rec
        .argv
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    assert_eq!(argv, ["sh", "-c", "while :; do sleep 0.05; done"]);
    // RFC 3339 in UTC, second precision: the text order is the time order.
    let hz = clock_ticks();
    let low = records::start_time(leader.starttime.saturating_sub(hz)).unwrap();
    let high = records::start_time(leader.starttime + hz).unwrap();
    assert!(
        low <= rec.started && rec.started <= high && rec.started < rec.when,
        "started {} should be the job's start ({low} .. {high}), before the record ({})",
        rec.started,
        rec.when
    );

    let (table, rc) = sh.run("rjobs --records");
    assert_eq!(rc, 0, "{table}");
    let row = table
        .lines()
        .find(|l| l.starts_with(&format!("{}@{} ", leader.pid, leader.starttime)))
        .unwrap_or_else(|| panic!("no row for the job:\n{table}"));
    let cols: Vec<&str> = row.split_ascii_whitespace().collect();
    // ID STATE DATE TIME ELAPSED LEVEL OUTPUT COMMAND...
    assert_eq!(
        (cols[1], cols[5], cols[6]),
        ("running", "disown", "/dev/null")
    );
    assert!(seconds(cols[4]) >= 2, "ELAPSED is the job's age:\n{table}");
    assert!(
        row.ends_with("sh -c 'while :; do sleep 0.05; done'"),
        "{table}"
    );
}

/// The columns of `rjobs --records` stay aligned when an OUTPUT path is long.
#[test]
fn records_columns_stay_aligned_with_long_output_paths() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("hupkit/jobs");
    let mut long = Record::new(
        nix::unistd::getpid(),
        Level::Nohup,
        vec!["sleep".into(), "1".into()],
    )
    .unwrap();
    long.output = format!("/{}", "x".repeat(200)).into();
    let mut short = long.clone();
    short.id.pid = Pid::from_raw(i32::MAX);
    short.id.starttime = 1;
    short.output = "/tmp/o".into();
    records::write(&store, &long).unwrap();
    records::write(&store, &short).unwrap();
    let out = Command::new(util::bin("rjobs"))
        .arg("--records")
        .env_clear()
        .env("XDG_STATE_HOME", dir.path())
        .env("LC_ALL", "C")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    let header = lines[0];
    let command_at = header.find("COMMAND").unwrap();
    let level_at = header.find("LEVEL").unwrap();
    for row in &lines[1..] {
        assert_eq!(
            row.find(" sleep 1").map(|i| i + 1),
            Some(command_at),
            "{text}"
        );
        assert_eq!(row.find(" nohup ").map(|i| i + 1), Some(level_at), "{text}");
    }
}

/// `HUPKIT_NO_RECORD=1` turns records off in every tool that writes them;
/// without it, the same store gets them.
#[test]
fn no_record_turns_off_every_writer() {
    let dir = crate::detach::open_tempdir();
    let state = dir.path().join("state");
    let store = state.join("hupkit/jobs");
    let env = |cmd: &mut Command, off: bool| {
        cmd.current_dir(dir.path())
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("HOME", dir.path())
            .env("XDG_STATE_HOME", &state)
            .stdin(Stdio::null());
        if off {
            cmd.env("HUPKIT_NO_RECORD", "1");
        }
    };
    let run = |prog: &str, args: &[&str], off: bool| {
        let mut cmd = Command::new(util::bin(prog));
        cmd.args(args);
        env(&mut cmd, off);
        let out = cmd.output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{prog} {args:?}: {out:?}");
    };
    let count = || std::fs::read_dir(&store).map_or(0, Iterator::count);
    // rnohup, detach (daemon pidfile `pidfile`) and disown, each one time;
    // what they started lives as long as what this returns.
    let every_writer = |off: bool, pidfile: &str| {
        run("rnohup", &["true"], off);
        run("detach", &["-p", pidfile, "sleep", "300"], off);
        let daemon = crate::detach::Daemon::from_pidfile(&dir.path().join(pidfile));
        let mut job = Command::new("sleep");
        job.arg("300").process_group(0);
        let job = ChildGuard::new(util::spawn(&mut job));
        run("disown", &["--null", &job.pid().to_string()], off);
        (daemon, job)
    };

    let _off = every_writer(true, "off.pid");
    assert_eq!(count(), 0, "no record with HUPKIT_NO_RECORD=1");
    let _on = every_writer(false, "on.pid");
    assert_eq!(count(), 3, "one record per tool without it");
}

/// Root with another user's HOME (`su` without `-`): the records directory is
/// a link of that user's to a directory of root's. No record is written
/// there (the walk refuses the link), and the command runs as ever.
#[test]
fn records_never_go_through_another_users_links() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: needs root to plant as nobody");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let home = dir.path().join("home");
    let state = home.join(".local/state/hupkit");
    std::fs::create_dir_all(&state).unwrap();
    let rootdir = dir.path().join("rootdir");
    std::fs::create_dir(&rootdir).unwrap();
    std::fs::set_permissions(&rootdir, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::os::unix::fs::symlink(&rootdir, state.join("jobs")).unwrap();
    for p in [
        home.clone(),
        home.join(".local"),
        home.join(".local/state"),
        state.clone(),
        state.join("jobs"),
    ] {
        std::os::unix::fs::lchown(&p, Some(65534), Some(65534)).unwrap();
    }
    let status = Command::new(util::bin("rnohup"))
        .args(["true"])
        .env_clear()
        .env("HOME", &home)
        .env("PATH", "/usr/bin:/bin")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let written: Vec<_> = std::fs::read_dir(&rootdir).unwrap().flatten().collect();
    assert!(
        written.is_empty(),
        "root wrote {written:?} through nobody's link"
    );
}
