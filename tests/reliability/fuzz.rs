//! Argument fuzzing: random argument vectors through every parser in process,
//! and through rjobs' run path out of process. Deterministic (a fixed-seed
//! xorshift), so a failure reproduces.

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::util;

/// A tiny xorshift generator: deterministic argument fuzzing without a new crate.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn pick<'a>(&mut self, items: &'a [&'a str]) -> &'a str {
        items[usize::try_from(self.next() % items.len() as u64).unwrap()]
    }
}

/// Thousands of random argument vectors through every tool's parser, in
/// process: no panic, ever.
#[test]
#[allow(clippy::too_many_lines)] // the token alphabet is most of it
fn fuzzed_arguments_never_panic_a_parser() {
    const TOKENS: &[&str] = &[
        "",
        "-",
        "--",
        "-p",
        "-l",
        "-o",
        "-e",
        "-u",
        "-m",
        "-c",
        "-E",
        "-a",
        "-v",
        "-g",
        "-r",
        "-t",
        "-A",
        "-l",
        "-h",
        "-V",
        "--help",
        "--version",
        "--output",
        "--output=",
        "--notify",
        "--notify=",
        "--notify=5",
        "--status",
        "--stop",
        "--retry",
        "--records",
        "--prune",
        "--json",
        "--explain",
        "--event",
        "--shell",
        "--null",
        "--keep-tty",
        "--probe",
        "--=x",
        "--he",
        "%",
        "%%",
        "%+",
        "%-",
        "%1",
        "%?",
        "%?x",
        "%0",
        "0",
        "1",
        "-1",
        "99999999999999999999",
        "1@2",
        "@",
        "x@1",
        "TERM/1",
        "forever",
        "nobody:nogroup",
        ":",
        "777",
        "8",
        "NAME=VALUE",
        "=",
        "a\tb",
        "'",
        "\"",
        "/",
        "/dev/null",
        "pts/0",
        "é",
        "hangup",
        "all",
        "bash",
        "zsh",
        "sleep",
        "true",
    ];
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let commands: Vec<(&str, clap::Command)> = vec![
        ("detach", hupkit_detach::cli::command()),
        ("rjobs", hupkit_rjobs::cli::command()),
        ("rbg", hupkit_rbg::command()),
        ("rfg", hupkit_rfg::command()),
        ("disown", hupkit_disown::cli::command()),
        ("huplab", hupkit_huplab::command()),
    ];
    let mut tried = 0;
    for _ in 0..3000 {
        let n = usize::try_from(rng.next() % 7).unwrap();
        let args: Vec<String> = (0..n).map(|_| rng.pick(TOKENS).to_string()).collect();
        let os: Vec<std::ffi::OsString> = args.iter().map(OsString::from).collect();
        // rnohup's GNU-style parser, then every clap definition.
        let _ = hupkit_rnohup::parse::parse(&os);
        for (name, cmd) in &commands {
            let mut argv = vec![name.to_string()];
            argv.extend(args.iter().cloned());
            let _ = cmd.clone().try_get_matches_from(argv);
            tried += 1;
        }
        // The job-spec, schedule, umask and user parsers on the same tokens.
        for a in &args {
            let _ = hupkit_common::jobs::JobSpec::parse(a);
            let _ = hupkit_detach::control::parse_schedule(a);
            let _ = hupkit_detach::plan::parse_umask(a);
            let _ = hupkit_common::identity::Identity::parse(a);
            let _ = hupkit_common::records::Record::parse(a);
            let _ = hupkit_common::quote::quote_bytes(a.as_bytes(), true);
        }
    }
    assert!(tried >= 18_000);
}

/// The run path, fuzzed out of process for the one tool that only reads (the
/// others start, signal or trace processes: random arguments could act on other
/// tests' processes). 300 random vectors: never a panic or a hang, always a
/// documented status.
#[test]
fn fuzzed_arguments_through_rjobs_run_path() {
    const TOKENS: &[&str] = &[
        "-l",
        "-A",
        "-t",
        "TTY",
        "pts/4194303",
        "/dev/null",
        "--records",
        "--prune",
        "--json",
        "--explain",
        "1",
        "0",
        "%",
        "%+",
        "%1",
        "%?s",
        "1@1",
        "",
        "x",
        "--",
        "-",
        "é",
        "--bogus",
    ];
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let dir = tempfile::tempdir().unwrap();
    // A terminal of the test's own, with no session on it: `-t TTY` is a real
    // terminal that names no other test's jobs.
    let pty = hupkit_common::pty::open().unwrap();
    let tty = pty.path.to_string_lossy().into_owned();
    for _ in 0..300 {
        let n = usize::try_from(rng.next() % 5).unwrap();
        let args: Vec<&str> = (0..n)
            .map(|_| match rng.pick(TOKENS) {
                "TTY" => tty.as_str(),
                t => t,
            })
            .collect();
        let mut cmd = Command::new(util::bin("rjobs"));
        cmd.args(&args)
            .env("XDG_STATE_HOME", dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // A session of its own: its default view holds no job of a parallel
        // test (rjobs attaches briefly to stopped jobs to learn why they stopped).
        // SAFETY: setsid is async-signal-safe.
        unsafe {
            cmd.pre_exec(|| {
                nix::libc::setsid();
                Ok(())
            });
        }
        let mut child = util::ChildGuard::new(cmd.spawn().unwrap());
        let status = child
            .wait(Duration::from_secs(15))
            .unwrap_or_else(|| panic!("rjobs {args:?} hung"));
        assert!(
            matches!(status.code(), Some(0..=2)),
            "rjobs {args:?}: {status:?}"
        );
    }
}
