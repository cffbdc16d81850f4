//! `--syslog` and `--journal`.
//!
//! syslog: each test binds its own datagram socket in its temporary directory
//! and runs detach under `unshare --mount`, where a private tmpfs on /dev holds
//! /dev/null and, as /dev/log, a symbolic link to that socket: the relay talks
//! to the test's receiver exactly as it would to a syslog daemon, and a test
//! can take "/dev/log" away and bring it back by removing and rebinding its
//! socket. journal: the systemd container of the logout tests, if it is up.

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use hupkit_common::proc::Stat;
use nix::unistd::Pid;

use super::{Daemon, result};
use crate::util;
use crate::util::container::{self, poll_slowly};

/// Runs `detach ARGS` in a private mount namespace whose /dev/log is `dir/log.sock`
/// (or, with `log` false, missing).
fn detach_ns(dir: &Path, log: bool, args: &[&str]) -> Output {
    let script = r#"
        set -e
        d=$1; log=$2; shift 2
        mkdir -p "$d/olddev"
        mount --bind /dev "$d/olddev"
        mount -t tmpfs -o mode=0755 hupkit /dev
        touch /dev/null
        mount --bind "$d/olddev/null" /dev/null
        umount -l "$d/olddev"
        if [ "$log" = yes ]; then ln -s "$d/log.sock" /dev/log; fi
        exec "$@"
    "#;
    let mut cmd = Command::new("unshare");
    cmd.args([
        "--mount",
        "--propagation",
        "private",
        "sh",
        "-c",
        script,
        "sh",
    ])
    .arg(dir)
    .arg(if log { "yes" } else { "no" })
    .arg(util::bin("detach"))
    .args(args)
    .current_dir(dir)
    .env_clear()
    .env("PATH", "/usr/bin:/bin")
    .env("LC_ALL", "C")
    .env("TZ", "UTC")
    .env("HUPKIT_NO_RECORD", "1")
    .stdin(Stdio::null());
    cmd.output().expect("run unshare")
}

/// One syslog message: priority, tag, PID, text.
#[derive(Debug, PartialEq, Eq)]
struct Message {
    pri: u32,
    tag: String,
    pid: i32,
    text: String,
}

/// Parses `<PRI>Mmm dd hh:mm:ss TAG[PID]: TEXT`, syslog(3)'s form on /dev/log.
fn parse(datagram: &[u8]) -> Message {
    let s = String::from_utf8_lossy(datagram).into_owned();
    let (pri, rest) = s[1..].split_once('>').expect("<PRI>");
    let stamp = &rest[..15];
    let b = stamp.as_bytes();
    assert!(
        b[3] == b' '
            && b[6] == b' '
            && b[9] == b':'
            && b[12] == b':'
            && rest.as_bytes()[15] == b' ',
        "timestamp in {s:?}"
    );
    let (head, text) = rest[16..].split_once("]: ").expect("TAG[PID]: ");
    let (tag, pid) = head.rsplit_once('[').expect("[PID]");
    Message {
        pri: pri.parse().expect("PRI"),
        tag: tag.to_string(),
        pid: pid.parse().expect("PID"),
        text: text.to_string(),
    }
}

/// The test's /dev/log: `dir/log.sock`.
fn bind(dir: &Path) -> UnixDatagram {
    let sock = UnixDatagram::bind(dir.join("log.sock")).expect("bind log.sock");
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    sock
}

/// Receives messages until `done` says so or the deadline passes.
fn receive(
    sock: &UnixDatagram,
    deadline: Duration,
    mut done: impl FnMut(&[Message]) -> bool,
) -> Vec<Message> {
    let end = Instant::now() + deadline;
    let mut got = Vec::new();
    let mut buf = vec![0u8; 8192];
    while !done(&got) && Instant::now() < end {
        if let Ok(n) = sock.recv(&mut buf) {
            got.push(parse(&buf[..n]));
        }
    }
    got
}

/// Whether any process is left in `session` (the relay, once the daemon is gone).
fn session_empty(session: Pid) -> bool {
    std::fs::read_dir("/proc").unwrap().flatten().all(|e| {
        e.file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
            .and_then(|pid| Stat::read(Pid::from_raw(pid)).ok())
            .is_none_or(|st| st.session != session || st.state.has_exited())
    })
}

#[test]
fn syslog_lines_priorities_tag_and_the_daemons_pid() {
    let dir = util::open_tempdir();
    let sock = bind(dir.path());
    let out = detach_ns(
        dir.path(),
        true,
        &[
            "--syslog",
            "-p",
            "pid",
            "--",
            "sh",
            "-c",
            "echo out line; echo err line >&2; echo; printf tail; sleep 1",
        ],
    );
    assert_eq!(result(&out), (0, String::new()));
    let daemon = Daemon::from_pidfile(&dir.path().join("pid"));
    let session = daemon.stat().session;
    let mut got = receive(&sock, util::DEADLINE, |m| m.len() >= 4);
    got.sort_by(|a, b| a.text.cmp(&b.text));
    let pid = daemon.pid().as_raw();
    let m = |pri, text: &str| Message {
        pri,
        tag: "sh".into(),
        pid,
        text: text.into(),
    };
    assert_eq!(
        got,
        vec![
            m(30, ""),
            m(27, "err line"),
            m(30, "out line"),
            m(30, "tail")
        ]
    );
    // The relay ends with the daemon's output: nothing is left in its session.
    assert!(daemon.wait_gone(util::DEADLINE));
    assert!(
        util::poll_until(util::DEADLINE, || session_empty(session)),
        "the relay outlived the daemon"
    );
}

#[test]
fn syslog_tag_given() {
    let dir = util::open_tempdir();
    let sock = bind(dir.path());
    let out = detach_ns(
        dir.path(),
        true,
        &["--syslog=my-daemon", "-p", "pid", "echo", "hi"],
    );
    assert_eq!(result(&out), (0, String::new()));
    let pid: i32 = std::fs::read_to_string(dir.path().join("pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let got = receive(&sock, util::DEADLINE, |m| !m.is_empty());
    assert_eq!(
        got,
        vec![Message {
            pri: 30,
            tag: "my-daemon".into(),
            pid,
            text: "hi".into()
        }]
    );
}

#[test]
fn syslog_burst_of_100000_lines_all_in_order() {
    let dir = util::open_tempdir();
    let sock = bind(dir.path());
    let out = detach_ns(dir.path(), true, &["--syslog", "--", "seq", "1", "100000"]);
    assert_eq!(result(&out), (0, String::new()));
    let got = receive(&sock, Duration::from_secs(120), |m| m.len() >= 100_000);
    let texts: Vec<String> = got.iter().map(|m| m.text.clone()).collect();
    let want: Vec<String> = (1..=100_000).map(|i| i.to_string()).collect();
    assert_eq!(texts.len(), want.len(), "lines lost");
    assert!(texts == want, "lines out of order or merged");
}

#[test]
fn syslog_long_lines_are_split_not_dropped() {
    let dir = util::open_tempdir();
    let sock = bind(dir.path());
    let line: String = (0..3000u32)
        .map(|i| char::from_digit(i % 10, 10).unwrap())
        .collect();
    let script = format!("printf '%s\\n' {line}; echo short");
    let out = detach_ns(
        dir.path(),
        true,
        &["--syslog=long", "--", "sh", "-c", &script],
    );
    assert_eq!(result(&out), (0, String::new()));
    let got = receive(&sock, util::DEADLINE, |m| m.len() >= 4);
    let texts: Vec<&str> = got.iter().map(|m| m.text.as_str()).collect();
    assert_eq!(
        texts,
        [&line[..1024], &line[1024..2048], &line[2048..], "short"]
    );
}

#[test]
fn syslog_without_dev_log_is_status_125_and_nothing_runs() {
    let dir = util::open_tempdir();
    let out = detach_ns(
        dir.path(),
        false,
        &["--syslog", "-p", "pid", "--", "touch", "ran"],
    );
    assert_eq!(
        result(&out),
        (
            125,
            "detach: cannot connect to '/dev/log': No such file or directory\n".into()
        )
    );
    assert!(!dir.path().join("pid").exists());
    assert!(!dir.path().join("ran").exists());
}

#[test]
fn syslog_reconnects_and_counts_what_it_dropped() {
    let dir = util::open_tempdir();
    let sock = bind(dir.path());
    let script = "echo first; until [ -e gate1 ]; do sleep 0.05; done; echo lost1; echo lost2; \
                  until [ -e gate2 ]; do sleep 0.05; done; echo after";
    let out = detach_ns(
        dir.path(),
        true,
        &["--syslog=rc", "-c", ".", "--", "sh", "-c", script],
    );
    assert_eq!(result(&out), (0, String::new()));
    let first = receive(&sock, util::DEADLINE, |m| !m.is_empty());
    assert_eq!(first.len(), 1);
    // /dev/log goes away; the daemon writes; it comes back.
    drop(sock);
    std::fs::remove_file(dir.path().join("log.sock")).unwrap();
    std::fs::write(dir.path().join("gate1"), "").unwrap();
    let sock = bind(dir.path());
    std::fs::write(dir.path().join("gate2"), "").unwrap();
    let got = receive(&sock, util::DEADLINE, |m| {
        m.iter().any(|m| m.text == "after")
    });
    let texts: Vec<&str> = got.iter().map(|m| m.text.as_str()).collect();
    assert_eq!(texts.last(), Some(&"after"), "{texts:?}");
    let received = texts.iter().filter(|t| t.starts_with("lost")).count();
    let counted: usize = texts
        .iter()
        .find_map(|t| {
            t.strip_prefix("detach: ")?
                .split_once(" line(s) lost")?
                .0
                .parse()
                .ok()
        })
        .unwrap_or(0);
    assert_eq!(
        received + counted,
        2,
        "every line is received or counted: {texts:?}"
    );
}

#[test]
fn syslog_or_journal_with_output_files_is_a_usage_error() {
    let dir = util::open_tempdir();
    for args in [
        ["--syslog", "-o", "out", "true"],
        ["--journal", "-e", "err", "true"],
        ["--syslog", "--journal", "--", "true"],
        ["--syslog", "--scope", "--", "true"],
    ] {
        let out = super::detach(dir.path(), &args);
        let (code, err) = result(&out);
        assert_eq!(code, 125, "{args:?}");
        assert!(err.contains("cannot be used with"), "{args:?}: {err}");
    }
}

#[test]
fn print_translates_syslog_and_journal() {
    let dir = util::open_tempdir();
    let unit = |args: &[&str]| {
        let out = super::detach(dir.path(), args);
        assert_eq!(result(&out), (0, String::new()), "{args:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    let journal = unit(&[
        "--print=systemd",
        "--name",
        "web",
        "--journal=we%b",
        "--",
        "true",
    ]);
    assert!(
        journal.contains("StandardOutput=journal\nStandardError=journal\nSyslogIdentifier=we%%b\n"),
        "{journal}"
    );
    let syslog = unit(&["--print=systemd", "--name", "web", "--syslog", "--", "true"]);
    assert!(
        syslog.contains(
            "StandardOutput=journal\nStandardError=journal\nSyslogIdentifier=true\n\
             SyslogFacility=daemon\nSyslogLevelPrefix=no\n"
        ),
        "{syslog}"
    );
    assert!(syslog.contains("# --syslog: "), "{syslog}");
    let script = unit(&[
        "--print=sysv",
        "--name",
        "web",
        "--syslog=it's",
        "--",
        "true",
    ]);
    assert!(script.contains(r"--syslog='it'\''s'"), "{script}");
    let plain = unit(&["--print=sysv", "--name", "web", "--journal", "--", "true"]);
    assert!(plain.contains("\t\t--journal \\\n"), "{plain}");
}

#[test]
fn journal_lines_priorities_and_the_daemons_pid() {
    let name = "detach::syslog::journal_lines_priorities_and_the_daemons_pid";
    let Some(ct) = container::get(name) else {
        return;
    };
    let bin = ct.install(&["detach"]);
    let tag = format!("hupkit-journal-{}", std::process::id());
    let pid = ct.root(&format!(
        "HUPKIT_NO_RECORD=1 {bin}/detach --journal={tag} -p /run/{tag}.pid -- \
         sh -c 'echo out line; echo err line >&2; echo \"<4>warning line\"' \
         && cat /run/{tag}.pid && rm -f /run/{tag}.pid /run/{tag}.pid.id"
    ));
    let pid = pid.trim();
    let query = format!("journalctl -t {tag} -o json --output-fields=MESSAGE,PRIORITY,_PID");
    let mut entries = String::new();
    let complete = poll_slowly(util::DEADLINE, || {
        entries = ct.root(&query);
        entries.lines().count() >= 3
    });
    assert!(complete, "journal of {tag}: {entries}");
    for (message, priority) in [("out line", "6"), ("err line", "3"), ("warning line", "4")] {
        assert!(
            entries.lines().any(|l| {
                l.contains(&format!("\"MESSAGE\":\"{message}\""))
                    && l.contains(&format!("\"PRIORITY\":\"{priority}\""))
                    && l.contains(&format!("\"_PID\":\"{pid}\""))
            }),
            "{message} at {priority} from PID {pid}: {entries}"
        );
    }
}
