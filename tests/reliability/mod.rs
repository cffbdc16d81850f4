//! The hostile-input battery: every tool, at least 15 bad or mistaken inputs
//! each. Each must end within the deadline, with its documented status, a short
//! message (one line, plus GNU's "Try ... --help" line for usage errors), no
//! panic text anywhere, and nothing left behind in its directory.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::util;

/// How the standard streams are set up.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Io {
    Normal,
    FullOut,
    FullErr,
    Closed,
}

struct Case {
    tool: &'static str,
    args: Vec<OsString>,
    io: Io,
    /// Accepted exit statuses.
    status: &'static [i32],
    /// Text the message must contain (empty: any).
    says: &'static str,
}

fn case(tool: &'static str, args: &[&str], status: &'static [i32], says: &'static str) -> Case {
    Case {
        tool,
        args: args.iter().map(OsString::from).collect(),
        io: Io::Normal,
        status,
        says,
    }
}

fn os_case(
    tool: &'static str,
    args: Vec<OsString>,
    status: &'static [i32],
    says: &'static str,
) -> Case {
    Case {
        tool,
        args,
        io: Io::Normal,
        status,
        says,
    }
}

fn with_io(mut c: Case, io: Io) -> Case {
    c.io = io;
    c
}

fn non_utf8() -> OsString {
    OsString::from_vec(b"bad\xff\xfename".to_vec())
}

fn huge() -> String {
    "x".repeat(100_000)
}

/// Runs one case in a fresh directory; returns a description of what is wrong.
#[allow(clippy::too_many_lines)] // set-up, run, then each check in turn
fn run(c: &Case) -> Option<String> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("file"), "x").unwrap();
    std::fs::create_dir(dir.path().join("adir")).unwrap();
    nix::unistd::mkfifo(
        &dir.path().join("fifo"),
        nix::sys::stat::Mode::from_bits_truncate(0o600),
    )
    .unwrap();
    std::os::unix::fs::symlink("/etc/passwd", dir.path().join("link")).unwrap();
    let before: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    // `{sleep}` stands for a process of the test's own, to act on safely.
    let mut sleeper = util::ChildGuard::new(Command::new("sleep").arg("60").spawn().unwrap());
    let sleep_pid = sleeper.pid().to_string();
    let args: Vec<OsString> = c
        .args
        .iter()
        .map(|a| {
            if a == "{sleep}" {
                OsString::from(&sleep_pid)
            } else {
                a.clone()
            }
        })
        .collect();
    let mut cmd = Command::new(util::bin(c.tool));
    cmd.args(&args)
        .current_dir(dir.path())
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", dir.path())
        .env("HUPKIT_NO_RECORD", "1")
        .env("LC_ALL", "C")
        .stdin(Stdio::null());
    let full = || {
        std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap()
    };
    let err_path = dir.path().join(".stderr");
    let out_path = dir.path().join(".stdout");
    cmd.stdout(match c.io {
        Io::FullOut => Stdio::from(full()),
        _ => Stdio::from(std::fs::File::create(&out_path).unwrap()),
    });
    cmd.stderr(match c.io {
        Io::FullErr => Stdio::from(full()),
        _ => Stdio::from(std::fs::File::create(&err_path).unwrap()),
    });
    // A session of its own, with no terminal: the same on a developer's terminal
    // as on CI, and no job of a parallel test can be named by `%+` and acted on.
    let closed = c.io == Io::Closed;
    // SAFETY: setsid and close are async-signal-safe and touch no memory of ours.
    unsafe {
        cmd.pre_exec(move || {
            nix::libc::setsid();
            if closed {
                nix::libc::close(0);
                nix::libc::close(1);
            }
            Ok(())
        });
    }
    let child = util::spawn(&mut cmd);
    let mut guard = util::ChildGuard::new(child);
    let Some(status) = guard.wait(Duration::from_secs(15)) else {
        return Some(format!(
            "{} {:?}: hung (killed after 15 s)",
            c.tool,
            c.args.first()
        ));
    };
    let _ = sleeper.wait(Duration::ZERO);
    let err = std::fs::read_to_string(&err_path).unwrap_or_default();
    let out = std::fs::read_to_string(&out_path).unwrap_or_default();
    let code = status.code().unwrap_or(-1);
    let mut problems = Vec::new();
    if !c.status.contains(&code) {
        problems.push(format!("status {code}, expected one of {:?}", c.status));
    }
    if err.contains("panicked") || out.contains("panicked") || err.contains("RUST_BACKTRACE") {
        problems.push("panic text".into());
    }
    let lines: Vec<&str> = err.lines().filter(|l| !l.starts_with("Try '")).collect();
    if lines.len() > 1 && c.tool != "disown" {
        problems.push(format!("{} lines of message", lines.len()));
    }
    if !c.says.is_empty() && !err.contains(c.says) {
        problems.push(format!("message does not say {:?}", c.says));
    }
    let after: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .filter(|n| n != ".stderr" && n != ".stdout")
        .collect();
    let extra: Vec<_> = after.iter().filter(|n| !before.contains(n)).collect();
    // A failure leaves nothing; a success may leave what it was asked to make.
    if !extra.is_empty() && code != 0 {
        problems.push(format!("left behind {extra:?}"));
    }
    let short = |s: &str| {
        if s.len() > 120 {
            format!("{}...({} bytes)", &s[..60], s.len())
        } else {
            s.to_string()
        }
    };
    let args: Vec<String> = c.args.iter().map(|a| short(&a.to_string_lossy())).collect();
    (!problems.is_empty()).then(|| {
        format!(
            "{} {args:?}: {} (stderr: {:?})",
            c.tool,
            problems.join("; "),
            short(&err)
        )
    })
}

#[allow(clippy::too_many_lines)] // the table of cases
fn battery() -> Vec<Case> {
    let h = huge();
    let u = |s: &str| OsString::from(s);
    let mut cases = kernel_thread_cases();
    cases.extend(vec![
        // rnohup (GNU's statuses: 125 its own failure, 126 not runnable, 127 not found).
        case("rnohup", &[], &[125], "missing operand"),
        case("rnohup", &["--output"], &[125], "requires an argument"),
        case("rnohup", &["--bogus"], &[125], "unrecognized option"),
        case("rnohup", &["-z"], &[125], "invalid option"),
        case("rnohup", &[""], &[127], "failed to run command"),
        case("rnohup", &[&h], &[126], "File name too long"),
        os_case("rnohup", vec![non_utf8()], &[127], "failed to run command"),
        case(
            "rnohup",
            &["--output", "adir", "true"],
            &[125],
            "Is a directory",
        ),
        case(
            "rnohup",
            &["--output", "fifo", "true"],
            &[125],
            "No such device or address",
        ),
        case(
            "rnohup",
            &["--output", "missing/x", "true"],
            &[125],
            "No such file or directory",
        ),
        case(
            "rnohup",
            &["--output", "file/x", "true"],
            &[125],
            "Not a directory",
        ),
        case(
            "rnohup",
            &["--output", "", "true"],
            &[125],
            "No such file or directory",
        ),
        os_case(
            "rnohup",
            vec![u("--output"), non_utf8(), u("true")],
            &[0],
            "",
        ),
        case("rnohup", &["./adir"], &[126], "Permission denied"),
        with_io(case("rnohup", &["--version"], &[125], ""), Io::FullOut),
        with_io(case("rnohup", &["--help"], &[125], ""), Io::Closed),
        // detach.
        case("detach", &[], &[125], "required arguments"),
        case(
            "detach",
            &["--bogus", "true"],
            &[125],
            "unexpected argument",
        ),
        case("detach", &["-m", "8", "true"], &[125], "invalid umask"),
        case("detach", &["-u", "", "true"], &[125], "invalid user"),
        case(
            "detach",
            &["-u", "no-such-user-h", "true"],
            &[125],
            "unknown user",
        ),
        case("detach", &["-c", "file", "true"], &[125], "Not a directory"),
        case("detach", &["-o", "adir", "true"], &[125], "Is a directory"),
        case(
            "detach",
            &["-o", "fifo", "true"],
            &[125],
            "No such device or address",
        ),
        case(
            "detach",
            &["-p", "adir", "true"],
            &[125],
            "not a regular file",
        ),
        case("detach", &["-p", "link", "true"], &[125], "symbolic link"),
        case(
            "detach",
            &["-l", "fifo", "true"],
            &[125],
            "not a regular file",
        ),
        case(
            "detach",
            &["-p", "missing/p", "true"],
            &[125],
            "No such file or directory",
        ),
        case("detach", &[&h], &[126], "File name too long"),
        os_case("detach", vec![non_utf8()], &[127], "failed to run command"),
        case("detach", &["--status", "-p", "file"], &[4], ""),
        case("detach", &["--stop", "-p", "missing"], &[1], ""),
        case(
            "detach",
            &["--stop", "-p", "file", "--retry", "x"],
            &[125],
            "invalid --retry",
        ),
        case("detach", &["--notify=x", "true"], &[125], "invalid value"),
        with_io(case("detach", &["--help"], &[125], ""), Io::FullOut),
        // rjobs.
        case("rjobs", &["--bogus"], &[2], "unexpected argument"),
        case("rjobs", &["extra"], &[2], "unexpected argument"),
        case("rjobs", &["-t"], &[2], "a value is required"),
        case("rjobs", &["-t", ""], &[2], "a value is required"),
        case("rjobs", &["-t", "/dev/null"], &[1], "no session"),
        case("rjobs", &["-t", "adir"], &[1], ""),
        case("rjobs", &["-t", &h], &[1], ""),
        case("rjobs", &["-A", "-t", "pts/0"], &[2], "cannot be used with"),
        case("rjobs", &["--prune"], &[2], "required arguments"),
        case("rjobs", &["--explain", "0"], &[2], "not a process ID"),
        case("rjobs", &["--explain", "-1"], &[2], "unexpected argument"),
        case("rjobs", &["--explain", "99999999"], &[1], "no such process"),
        case(
            "rjobs",
            &["--explain", "%?no-such-job"],
            &[1],
            "no such job",
        ),
        case("rjobs", &["--explain", "1@1"], &[1], "reused"),
        with_io(case("rjobs", &["-A"], &[1], ""), Io::FullOut),
        with_io(case("rjobs", &[], &[0, 1], ""), Io::Closed),
        // rbg.
        case("rbg", &["--bogus"], &[2], "unexpected argument"),
        case("rbg", &["x"], &[2], "not a job spec"),
        case("rbg", &[""], &[2], "not a job spec"),
        case("rbg", &["0"], &[2], "not a process ID"),
        case("rbg", &["%0"], &[2], "not a job spec"),
        case("rbg", &["99999999"], &[1], "no such process"),
        case("rbg", &["1"], &[1], "is init"),
        case("rbg", &["%?nothing-matches"], &[1], "no such job"),
        case("rbg", &["%9"], &[1], "no such job"),
        case("rbg", &["1@1"], &[1], "reused"),
        case("rbg", &[&h], &[2], "not a job spec"),
        os_case("rbg", vec![non_utf8()], &[2], "invalid UTF-8"),
        // Each case runs in a session of its own, which has no jobs.
        case("rbg", &["%-"], &[1], "no such job"),
        case("rbg", &["%"], &[1], "no such job"),
        case("rbg", &[], &[1], "no such job"),
        // rfg (no terminal here: every case is a refusal, 125).
        case("rfg", &[], &[125], "no controlling terminal"),
        case("rfg", &["%1"], &[125], ""),
        case("rfg", &["x"], &[125], ""),
        case("rfg", &["a", "b"], &[125], "unexpected argument"),
        case("rfg", &["--bogus"], &[125], "unexpected argument"),
        case("rfg", &["0"], &[125], ""),
        case("rfg", &["99999999"], &[125], ""),
        case("rfg", &["1"], &[125], ""),
        case("rfg", &[""], &[125], ""),
        case("rfg", &[&h], &[125], ""),
        os_case("rfg", vec![non_utf8()], &[125], ""),
        case("rfg", &["%?x"], &[125], ""),
        case("rfg", &["1@2"], &[125], ""),
        with_io(case("rfg", &["--version"], &[125], ""), Io::FullOut),
        with_io(case("rfg", &[], &[125], ""), Io::FullErr),
        // disown.
        case("disown", &[], &[2], "required arguments"),
        case("disown", &["--bogus", "1"], &[2], "unexpected argument"),
        case(
            "disown",
            &["--null", "-o", "x", "1"],
            &[2],
            "cannot be used with",
        ),
        case("disown", &["x"], &[1], "not a job spec"),
        case("disown", &["0"], &[1], "not a process ID"),
        case("disown", &["99999999"], &[1], "no such process"),
        case("disown", &["1"], &[1], "is init"),
        case("disown", &["%9"], &[1], "no such job"),
        case("disown", &["1@1"], &[1], ""),
        case("disown", &[&h], &[1], "not a job spec"),
        os_case("disown", vec![non_utf8()], &[2], "invalid UTF-8"),
        case("disown", &["-o", "adir", "{sleep}"], &[1], "Is a directory"),
        case(
            "disown",
            &["-o", "fifo", "{sleep}"],
            &[1],
            "No such device or address",
        ),
        case(
            "disown",
            &["-o", "missing/x", "{sleep}"],
            &[1],
            "No such file or directory",
        ),
        // huplab (no lab is run: usage only, or write errors).
        case("huplab", &["--event", "nope"], &[2], "invalid value"),
        case("huplab", &["--shell", "fish"], &[2], "invalid value"),
        case("huplab", &["--bogus"], &[2], "unexpected argument"),
        case("huplab", &["extra"], &[2], "unexpected argument"),
        case("huplab", &["--event"], &[2], "a value is required"),
        case("huplab", &["--event", ""], &[2], "a value is required"),
        case("huplab", &["--shell", ""], &[2], "a value is required"),
        case("huplab", &["--event", &h], &[2], "invalid value"),
        os_case(
            "huplab",
            vec![u("--event"), non_utf8()],
            &[2],
            "invalid value",
        ),
        case("huplab", &["--probe"], &[2], ""),
        case("huplab", &["--probe", "x"], &[2], ""),
        case(
            "huplab",
            &["--json", "--json"],
            &[2],
            "cannot be used multiple times",
        ),
        case("huplab", &["-j"], &[2], "unexpected argument"),
        with_io(case("huplab", &["--help"], &[2], ""), Io::FullOut),
        // Rust's runtime reopens a closed stdout on /dev/null: a quiet success.
        with_io(case("huplab", &["--version"], &[0], ""), Io::Closed),
        // Usage errors with stderr on /dev/full: the documented status all the same.
        with_io(case("rnohup", &["--bogus"], &[125], ""), Io::FullErr),
        with_io(
            case("detach", &["--bogus", "true"], &[125], ""),
            Io::FullErr,
        ),
        with_io(case("rjobs", &["--bogus"], &[2], ""), Io::FullErr),
        with_io(case("rbg", &["x"], &[2], ""), Io::FullErr),
        with_io(case("disown", &["x"], &[1], ""), Io::FullErr),
        with_io(case("huplab", &["--bogus"], &[2], ""), Io::FullErr),
    ]);
    cases
}

/// A kernel thread named by PID: no such process to rbg (kernel threads are no
/// jobs), refused by name by disown. None where no kernel thread is visible.
fn kernel_thread_cases() -> Vec<Case> {
    let Some((pid, _)) = util::kernel_thread() else {
        return Vec::new();
    };
    vec![
        case("rbg", &[&pid], &[1], "no such process"),
        case("disown", &[&pid], &[1], "kernel thread"),
    ]
}

#[test]
fn every_tool_handles_hostile_input() {
    let cases = battery();
    for tool in [
        "rnohup", "detach", "rjobs", "rbg", "rfg", "disown", "huplab",
    ] {
        let n = cases.iter().filter(|c| c.tool == tool).count();
        assert!(n >= 15, "{tool}: only {n} cases");
    }
    let failures: Vec<String> = cases.iter().filter_map(run).collect();
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

/// 100 concurrent rnohup writers to one output file: no line is lost.
#[test]
fn concurrent_rnohup_writers_lose_no_line() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let children: Vec<_> = (0..100)
        .map(|i| {
            Command::new(util::bin("rnohup"))
                .args([
                    "--output",
                    "shared.log",
                    "sh",
                    "-c",
                    &format!("for n in 1 2 3 4 5 6 7 8 9 10; do echo w{i}-$n; done"),
                ])
                .current_dir(dir.path())
                .env_clear()
                .env("PATH", "/usr/bin:/bin")
                .env("XDG_STATE_HOME", &state)
                .stdin(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
    let text = std::fs::read_to_string(dir.path().join("shared.log")).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1000, "every line, whole");
    lines.sort_unstable();
    lines.dedup();
    assert_eq!(lines.len(), 1000, "no line torn or doubled");
    // ...and 100 concurrent record writers: 100 records.
    let records = std::fs::read_dir(state.join("hupkit/jobs"))
        .unwrap()
        .count();
    assert_eq!(records, 100, "one record per rnohup, none lost");
}

/// 100 concurrent detach starts on one lock: exactly one daemon.
#[test]
fn hundred_concurrent_detach_starts_leave_one_daemon() {
    let dir = tempfile::tempdir().unwrap();
    let children: Vec<_> = (0..100)
        .map(|i| {
            Command::new(util::bin("detach"))
                .args(["-l", "one.lock", "-p", &format!("p{i}.pid"), "sleep", "60"])
                .current_dir(dir.path())
                .env_clear()
                .env("PATH", "/usr/bin:/bin")
                .env("HUPKIT_NO_RECORD", "1")
                .stdin(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    let codes: Vec<i32> = children
        .into_iter()
        .map(|c| c.wait_with_output().unwrap().status.code().unwrap_or(-1))
        .collect();
    assert_eq!(codes.iter().filter(|c| **c == 0).count(), 1, "{codes:?}");
    assert_eq!(codes.iter().filter(|c| **c == 1).count(), 99, "{codes:?}");
    let winner = (0..100)
        .find(|i| dir.path().join(format!("p{i}.pid")).exists())
        .unwrap();
    let pid: i32 = std::fs::read_to_string(dir.path().join(format!("p{winner}.pid")))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let fd = hupkit_common::pidfd::PidFd::open(nix::unistd::Pid::from_raw(pid)).unwrap();
    fd.signal(nix::sys::signal::Signal::SIGKILL).unwrap();
    assert!(fd.wait_exit(util::DEADLINE).unwrap());
}

/// A PID whose process is no longer the one named (simulated PID reuse:
/// PID@STARTTIME with a wrong start time): no tool acts on the live process.
#[test]
fn reused_pids_are_never_acted_on() {
    let mut victim = util::ChildGuard::new(Command::new("sleep").arg("60").spawn().unwrap());
    let pid = victim.pid();
    let id = hupkit_common::identity::Identity::of(pid).unwrap();
    let stale = format!("{pid}@{}", id.starttime + 1);
    for (tool, args) in [
        ("rbg", vec![stale.clone()]),
        ("disown", vec!["--null".into(), stale.clone()]),
        ("rjobs", vec!["--explain".into(), stale.clone()]),
    ] {
        let out = Command::new(util::bin(tool))
            .args(&args)
            .env("HUPKIT_NO_RECORD", "1")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{tool}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("reused"),
            "{tool}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let st = hupkit_common::proc::Status::read(pid).unwrap();
    assert!(
        !st.sig_ign.contains(nix::sys::signal::Signal::SIGHUP) && st.tracer_pid == 0,
        "untouched"
    );
    assert!(
        victim.0.as_mut().unwrap().try_wait().unwrap().is_none(),
        "alive"
    );
}

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

/// Rounds for the soak tests: `HUPKIT_SOAK_ROUNDS` (cargo xtask soak sets the
/// full counts), else a CI-sized default.
fn rounds(var: &str, default: usize) -> usize {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// disown injected again and again into live processes of every kind: none is
/// ever harmed (alive, not stopped, still doing its work).
#[test]
fn soak_disown_injections_harm_nothing() {
    use std::io::Write as _;
    let per_kind = rounds("HUPKIT_SOAK_ROUNDS", 10);
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("writer.log");
    let writer = "import threading,time,sys\nf=open(sys.argv[1],'a')\ndef w(n):\n    while True:\n        f.write(f'{n}\\n'); f.flush(); time.sleep(0.01)\nfor n in range(4): threading.Thread(target=w,args=(n,),daemon=True).start()\nwhile True: time.sleep(1)\n";
    std::fs::write(dir.path().join("w.py"), writer).unwrap();
    let spawn = |args: &[&str], stdin: Stdio| {
        util::ChildGuard::new(
            Command::new(args[0])
                .args(&args[1..])
                .stdin(stdin)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        )
    };
    let mut targets = vec![
        ("sleeping", spawn(&["sleep", "600"], Stdio::null())),
        (
            "busy",
            spawn(&["sh", "-c", "while :; do :; done"], Stdio::null()),
        ),
        (
            "multithreaded",
            spawn(
                &[
                    "python3",
                    &dir.path().join("w.py").to_string_lossy(),
                    &log.to_string_lossy(),
                ],
                Stdio::null(),
            ),
        ),
        (
            "blocked in read",
            spawn(&["sh", "-c", "read x; echo got"], Stdio::piped()),
        ),
    ];
    // Each target in its state: the writer writing, the sleeper and the reader asleep.
    assert!(util::poll_until(util::DEADLINE, || {
        std::fs::metadata(&log).is_ok_and(|m| m.len() > 0)
            && [0, 3].iter().all(|&i| {
                hupkit_common::proc::Stat::read(targets[i].1.pid())
                    .is_ok_and(|s| s.state == hupkit_common::proc::ProcState::Sleeping)
            })
    }));
    let mut injected = 0;
    for round in 0..per_kind {
        for (kind, guard) in &mut targets {
            let pid = guard.pid().to_string();
            let out = Command::new(util::bin("disown"))
                .args(["--null", &pid])
                .env("HUPKIT_NO_RECORD", "1")
                .output()
                .unwrap();
            assert_eq!(
                out.status.code(),
                Some(0),
                "{kind}, round {round}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            injected += 1;
            let child = guard.0.as_mut().unwrap();
            assert!(
                child.try_wait().unwrap().is_none(),
                "{kind} died at round {round}"
            );
            let st = hupkit_common::proc::Stat::read(guard.pid()).unwrap();
            assert!(
                !(st.state.is_stopped() || st.state == hupkit_common::proc::ProcState::Zombie),
                "{kind} left in state {} at round {round}",
                st.state
            );
        }
    }
    // Still doing their work: the writer writes, the reader still reads its pipe.
    let size = std::fs::metadata(&log).unwrap().len();
    assert!(
        util::poll_until(util::DEADLINE, || std::fs::metadata(&log).unwrap().len()
            > size),
        "the writer still writes"
    );
    let reader = targets
        .iter_mut()
        .find(|(k, _)| *k == "blocked in read")
        .unwrap();
    let child = reader.1.0.as_mut().unwrap();
    child.stdin.take().unwrap().write_all(b"line\n").unwrap();
    assert!(
        util::poll_until(util::DEADLINE, || child
            .try_wait()
            .unwrap()
            .is_some_and(|s| s.success())),
        "the reader got its line"
    );
    eprintln!("soak: {injected} injections, no target harmed");
}

/// Clock ticks since boot, as /proc/PID/stat's start times count them (`USER_HZ` 100).
fn now_ticks() -> u64 {
    let up = std::fs::read_to_string("/proc/uptime").unwrap();
    let secs: f64 = up.split_ascii_whitespace().next().unwrap().parse().unwrap();
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let ticks = (secs * 100.0) as u64;
    ticks
}

/// A real PID reuse, forced through `/proc/sys/kernel/ns_last_pid`: a process
/// that now holds a PID once named by another is never acted on.
#[test]
fn real_pid_reuse_is_never_acted_on() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: needs root to set ns_last_pid");
        return;
    }
    for _ in 0..50 {
        let mut old = Command::new("sleep").arg("60").spawn().unwrap();
        let pid = i32::try_from(old.id()).unwrap();
        let old_id =
            hupkit_common::identity::Identity::of(nix::unistd::Pid::from_raw(pid)).unwrap();
        old.kill().unwrap();
        old.wait().unwrap();
        // Let the clock move on, so the new process's start time differs.
        assert!(util::poll_until(util::DEADLINE, || now_ticks() > old_id.starttime + 2));
        if std::fs::write("/proc/sys/kernel/ns_last_pid", (pid - 1).to_string()).is_err() {
            eprintln!("skipped: ns_last_pid is not writable here");
            return;
        }
        let mut new = util::ChildGuard::new(Command::new("sleep").arg("60").spawn().unwrap());
        if new.pid().as_raw() != pid {
            continue; // another process took the PID first: try again
        }
        let stale = format!("{pid}@{}", old_id.starttime);
        for (tool, args) in [
            ("rbg", vec![stale.clone()]),
            ("disown", vec!["--null".to_string(), stale.clone()]),
            ("rjobs", vec!["--explain".to_string(), stale.clone()]),
        ] {
            let out = Command::new(util::bin(tool))
                .args(&args)
                .env("HUPKIT_NO_RECORD", "1")
                .output()
                .unwrap();
            assert_eq!(
                out.status.code(),
                Some(1),
                "{tool}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        // detach --stop with the old daemon's pidfile and identity: not running.
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("d.pid"), format!("{pid}\n")).unwrap();
        std::fs::write(dir.path().join("d.pid.id"), format!("{old_id}\n")).unwrap();
        let out = Command::new(util::bin("detach"))
            .args(["--stop", "-p", "d.pid"])
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1));
        let st = hupkit_common::proc::Status::read(new.pid()).unwrap();
        assert!(
            !st.sig_ign.contains(nix::sys::signal::Signal::SIGHUP) && st.tracer_pid == 0,
            "untouched"
        );
        assert!(
            new.0.as_mut().unwrap().try_wait().unwrap().is_none(),
            "the new process lives"
        );
        return;
    }
    panic!("could not make a PID be reused in 50 attempts");
}

/// Targets that exit while the tools work on them: a clean answer, never a
/// hang, a panic or a wrong target.
#[test]
fn targets_that_exit_mid_operation() {
    for round in 0..30 {
        let mut short = util::ChildGuard::new(
            Command::new("sleep")
                .arg(format!("0.0{}", round % 9 + 1))
                .spawn()
                .unwrap(),
        );
        let pid = short.pid().to_string();
        for (tool, args) in [
            ("disown", vec!["--null", pid.as_str()]),
            ("rbg", vec![pid.as_str()]),
            ("rjobs", vec!["--explain", pid.as_str()]),
        ] {
            let mut cmd = Command::new(util::bin(tool));
            cmd.args(&args)
                .env("HUPKIT_NO_RECORD", "1")
                .stdout(Stdio::null())
                .stderr(Stdio::piped());
            let mut child = util::ChildGuard::new(cmd.spawn().unwrap());
            let status = child
                .wait(Duration::from_secs(15))
                .unwrap_or_else(|| panic!("{tool} hung"));
            assert!(
                matches!(status.code(), Some(0 | 1)),
                "{tool} round {round}: {status:?}"
            );
        }
        let _ = short.wait(util::DEADLINE);
    }
}

/// Other users' processes: rbg refuses them (another session; within one
/// session the kernel would allow SIGCONT to anyone's process); rjobs
/// explains what it may read and marks the rest unknown.
#[test]
fn other_users_processes() {
    use std::os::unix::fs::PermissionsExt;
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: needs root to drop to nobody");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    // Its own process group: rbg acts on the whole group of a PID.
    let mut victim = util::ChildGuard::new(
        Command::new("sleep")
            .arg("60")
            .stdin(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap(),
    );
    let pid = victim.pid().to_string();
    nix::sys::signal::kill(victim.pid(), nix::sys::signal::Signal::SIGSTOP).unwrap();
    assert!(util::poll_until(util::DEADLINE, || {
        hupkit_common::proc::Stat::read(victim.pid())
            .is_ok_and(|s| s.state == hupkit_common::proc::ProcState::Stopped)
    }));
    let as_nobody = |tool: &str, args: &[&str]| {
        let bin = dir.path().join(tool);
        if !bin.exists() && std::fs::hard_link(util::bin(tool), &bin).is_err() {
            std::fs::copy(util::bin(tool), &bin).unwrap();
        }
        let mut cmd = Command::new(&bin);
        cmd.args(args)
            .current_dir(dir.path())
            .env_clear()
            .uid(65534)
            .gid(65534);
        // A session of its own: within one session the kernel allows SIGCONT to anyone's process.
        // SAFETY: setsid is async-signal-safe.
        unsafe {
            cmd.pre_exec(|| {
                nix::libc::setsid();
                Ok(())
            });
        }
        cmd.output().unwrap()
    };
    let out = as_nobody("rbg", &[&pid]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&format!(
            "PID {pid} is in another session: not a job of this one"
        )),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        hupkit_common::proc::Stat::read(victim.pid()).unwrap().state,
        hupkit_common::proc::ProcState::Stopped,
        "still stopped"
    );
    let out = as_nobody("rjobs", &["--explain", &pid]);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("fd 0: ?"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let _ = victim.0.as_mut().map(std::process::Child::kill);
    let _ = victim.wait(util::DEADLINE);
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

/// What CI sees: the test runner's session leader, and init's group, outside
/// the PID namespace, so /proc shows session 0 and group 0. A live process in
/// session 0 is a process like any (rbg continues it, rjobs explains it); a
/// process in group 0 cannot be named from inside and is refused, never taken
/// for "group 0" (which the kernel reads as the caller's own group).
#[test]
fn processes_in_session_zero() {
    let can_unshare = nix::unistd::geteuid().is_root()
        && Command::new("/usr/bin/unshare")
            .args(["--pid", "--fork", "--mount-proc", "true"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
    if !can_unshare {
        eprintln!("skipped: needs root and util-linux unshare with PID and mount namespaces");
        return;
    }
    let script = r#"
        state() { cut -d' ' -f3 "/proc/$1/stat"; }
        set -m
        sleep 60 & p=$!
        kill -STOP "$p"
        for i in $(seq 2000); do [ "$(state "$p")" = T ] && break; sleep 0.005; done
        echo "stopped=$(state "$p")"
        "$RBG" "$p"; echo "rbg=$?"
        for i in $(seq 2000); do [ "$(state "$p")" != T ] && break; sleep 0.005; done
        echo "after=$(state "$p")"
        "$RJOBS" --explain "$p" | head -2
        set +m
        sleep 60 & q=$!
        "$RBG" "$q" 2>&1; echo "rbg0=$?"
        "$RBG" 1 2>&1; echo "rbg1=$?"
        "$DISOWN" --null -g "$q" 2>&1; echo "disown-g=$?"
        kill -KILL "$p" "$q"
    "#;
    let log = tempfile::NamedTempFile::new().unwrap();
    let mut cmd = Command::new("/usr/bin/unshare");
    cmd.args([
        "--pid",
        "--fork",
        "--mount-proc",
        "--kill-child",
        "bash",
        "-c",
        script,
    ])
    .env("RBG", util::bin("rbg"))
    .env("RJOBS", util::bin("rjobs"))
    .env("DISOWN", util::bin("disown"))
    .env("HUPKIT_NO_RECORD", "1")
    .stdin(Stdio::null())
    .stdout(Stdio::from(log.reopen().unwrap()))
    .stderr(Stdio::from(log.reopen().unwrap()))
    .process_group(0);
    let mut child = util::ChildGuard::new(util::spawn(&mut cmd));
    let status = child.wait(util::DEADLINE).expect("unshare hung");
    let out = std::fs::read_to_string(log.path()).unwrap();
    assert!(status.success(), "{status:?}\n{out}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines.contains(&"stopped=T"), "{out}");
    assert!(lines.contains(&"rbg=0"), "{out}");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("after=") && *l != "after=T"),
        "{out}"
    );
    assert!(
        out.contains("session 0 (leader outside this PID namespace)"),
        "{out}"
    );
    assert!(
        out.contains("its process group is outside this PID namespace")
            && lines.contains(&"rbg0=1"),
        "{out}"
    );
    assert!(
        out.contains("rbg: 1: is init") && lines.contains(&"rbg1=1"),
        "{out}"
    );
    // disown -g would otherwise take every process of "group 0": refused, nothing done.
    assert!(
        out.contains("is outside this PID namespace; name its processes by PID")
            && lines.contains(&"disown-g=1"),
        "{out}"
    );
}
