//! The hostile-input battery: every tool, at least 15 bad or mistaken inputs
//! each. Each must end within the deadline, with its documented status, a short
//! message (one line, plus GNU's "Try ... --help" line for usage errors), no
//! panic text anywhere, and nothing left behind in its directory. Then hostile
//! surroundings: an unreadable `/proc`, other users' processes, and processes
//! in session 0.

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

/// Where a case runs.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Place {
    /// The test's own surroundings.
    Here,
    /// As nobody, in a mount namespace whose `/proc` is an empty tmpfs of mode
    /// 000: every read of `/proc` fails with `EACCES`.
    NoProc,
}

/// Mounts the unreadable `/proc`, then runs `"$@"` as nobody (uid and gid 65534).
const NO_PROC: &str = "mount -t tmpfs -o mode=000 none /proc && \
    exec setpriv --reuid=65534 --regid=65534 --clear-groups \"$@\"";

struct Case {
    tool: &'static str,
    args: Vec<OsString>,
    io: Io,
    place: Place,
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
        place: Place::Here,
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
        place: Place::Here,
        status,
        says,
    }
}

fn with_io(mut c: Case, io: Io) -> Case {
    c.io = io;
    c
}

fn without_proc(mut c: Case) -> Case {
    c.place = Place::NoProc;
    c
}

fn non_utf8() -> OsString {
    OsString::from_vec(b"bad\xff\xfename".to_vec())
}

fn huge() -> String {
    "x".repeat(100_000)
}

/// What one case did.
struct Ran {
    code: i32,
    out: String,
    err: String,
    /// Files the tool left in its directory.
    extra: Vec<OsString>,
}

/// A fresh directory with a file, a directory, a FIFO and a symbolic link to
/// misuse, and the names in it.
fn fixture() -> (tempfile::TempDir, Vec<OsString>) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("file"), "x").unwrap();
    std::fs::create_dir(dir.path().join("adir")).unwrap();
    nix::unistd::mkfifo(
        &dir.path().join("fifo"),
        nix::sys::stat::Mode::from_bits_truncate(0o600),
    )
    .unwrap();
    std::os::unix::fs::symlink("/etc/passwd", dir.path().join("link")).unwrap();
    let names = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    (dir, names)
}

/// Runs one case in a fresh directory; `Err` says it hung.
fn execute(c: &Case) -> Result<Ran, String> {
    let (dir, before) = fixture();
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
    let mut cmd = match c.place {
        Place::Here => Command::new(util::bin(c.tool)),
        Place::NoProc => {
            let mut cmd = Command::new("/usr/bin/unshare");
            cmd.args([
                "--mount",
                "--propagation",
                "private",
                "sh",
                "-c",
                NO_PROC,
                "sh",
            ])
            .arg(util::bin(c.tool));
            cmd
        }
    };
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
        return Err(format!(
            "{} {:?}: hung (killed after 15 s)",
            c.tool,
            c.args.first()
        ));
    };
    let _ = sleeper.wait(Duration::ZERO);
    let after: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .filter(|n| n != ".stderr" && n != ".stdout")
        .collect();
    Ok(Ran {
        code: status.code().unwrap_or(-1),
        out: std::fs::read_to_string(&out_path).unwrap_or_default(),
        err: std::fs::read_to_string(&err_path).unwrap_or_default(),
        extra: after.into_iter().filter(|n| !before.contains(n)).collect(),
    })
}

/// A long argument or message, cut for a failure report.
fn short(s: &str) -> String {
    if s.len() > 120 {
        format!("{}...({} bytes)", &s[..60], s.len())
    } else {
        s.to_string()
    }
}

/// Runs one case; returns a description of what is wrong.
fn run(c: &Case) -> Option<String> {
    let Ran {
        code,
        out,
        err,
        extra,
    } = match execute(c) {
        Ok(ran) => ran,
        Err(hung) => return Some(hung),
    };
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
    // A failure leaves nothing; a success may leave what it was asked to make.
    if !extra.is_empty() && code != 0 {
        problems.push(format!("left behind {extra:?}"));
    }
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
    cases.extend(no_proc_cases());
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

/// The tools that read `/proc`, where it cannot be read: one line saying why,
/// status 1. None where a mount namespace cannot be made (not root, no
/// util-linux `unshare` and `setpriv`).
fn no_proc_cases() -> Vec<Case> {
    let can = nix::unistd::geteuid().is_root()
        && std::path::Path::new("/usr/bin/setpriv").exists()
        && Command::new("/usr/bin/unshare")
            .args(["--mount", "--propagation", "private", "true"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
    if !can {
        return Vec::new();
    }
    [
        case("rbg", &[], &[1], "Permission denied"),
        case("rbg", &["1"], &[1], "Permission denied"),
        case("rjobs", &[], &[1], "Permission denied"),
        case("rjobs", &["-A"], &[1], "Permission denied"),
        case("rjobs", &["--explain", "1"], &[1], "Permission denied"),
        case("disown", &["1"], &[1], "Permission denied"),
        case("disown", &["%1"], &[1], "Permission denied"),
        case("huplab", &[], &[1], "Permission denied"),
    ]
    .into_iter()
    .map(without_proc)
    .collect()
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
    util::check_each(&cases, run, "cases failed");
}

/// Whether a diagnostic line shows Rust's or nix's formatting of an errno
/// instead of strerror's text: std's `... (os error 13)`, or nix's `Errno`
/// Display, `: EACCES: Permission denied` (`: E[A-Z0-9]{2,}: `).
fn shows_rust_or_nix_errno(line: &str) -> bool {
    let nix = line.match_indices(": E").any(|(at, _)| {
        let rest = &line.as_bytes()[at + 3..];
        let name = rest
            .iter()
            .take_while(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
            .count();
        name >= 2 && rest[name..].starts_with(b": ")
    });
    nix || line.contains("(os error")
}

#[test]
fn errno_format_check_tells_strerror_from_rust_and_nix() {
    for bad in [
        "rbg: cannot read /proc: Permission denied (os error 13)",
        "disown: cannot attach to 12: EPERM: Operation not permitted",
        "huplab: E2BIG: Argument list too long",
        "x: cannot open: EACCES: Permission denied",
    ] {
        assert!(shows_rust_or_nix_errno(bad), "{bad}");
    }
    for good in [
        "detach: failed to run command 'x': No such file or directory",
        "rjobs: no such job: %E2",
        "rnohup: ignoring input: Eek: not an errno name",
        "rfg: Error: ENOENT",
    ] {
        assert!(!shows_rust_or_nix_errno(good), "{good}");
    }
}

/// No line any tool prints on the whole battery shows an errno formatted by
/// Rust (`(os error N)`) or by nix (`EACCES: ...`): every message goes through
/// `Context`/`strerror`, as GNU's do.
#[test]
fn no_tool_prints_rust_or_nix_errno_text() {
    let offending: Vec<String> = battery()
        .iter()
        .filter_map(|c| {
            let ran = execute(c).ok()?;
            let lines: Vec<&str> = ran
                .err
                .lines()
                .filter(|l| shows_rust_or_nix_errno(l))
                .collect();
            let args: Vec<String> = c.args.iter().map(|a| short(&a.to_string_lossy())).collect();
            (!lines.is_empty()).then(|| format!("{} {args:?}: {lines:?}", c.tool))
        })
        .collect();
    assert!(
        offending.is_empty(),
        "{} cases print Rust's or nix's errno text:\n{}",
        offending.len(),
        offending.join("\n")
    );
}

/// Other users' processes: rbg refuses them (another session; within one
/// session the kernel would allow SIGCONT to anyone's process); rjobs
/// explains what it may read and marks the rest unknown.
#[test]
fn other_users_processes() {
    let Some(dir) = util::root_tempdir("needs root to drop to nobody") else {
        return;
    };
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
    // One open file description for stdout and stderr, in append mode: two
    // separate opens would each keep an offset of their own, and bash's
    // "Killed" lines would overwrite rjobs' output.
    let out_file = std::fs::OpenOptions::new()
        .append(true)
        .open(log.path())
        .unwrap();
    let err_file = out_file.try_clone().unwrap();
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
    .stdout(Stdio::from(out_file))
    .stderr(Stdio::from(err_file))
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
