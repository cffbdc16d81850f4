//! rnohup's libc-free front (`bins/rnohup/front`): the plain case is its own,
//! everything else is the full implementation's (`hupkit-rnohup`).
//!
//! A front copied alone into a directory (no `hupkit-rnohup` beside it) shows
//! which side did the work: what it still does right, it did itself.

use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use crate::util;

/// A copy of the front alone in `dir/alone/`.
fn front_alone(dir: &Path) -> PathBuf {
    let bin = dir.join("alone");
    fs::create_dir_all(&bin).unwrap();
    let copy = bin.join("rnohup");
    fs::copy(util::bin("rnohup"), &copy).unwrap();
    copy
}

/// Runs `program args` in `cwd` with a clean environment (`PATH`, `HOME`
/// and `extra`), stdin on /dev/null, stdout into `cwd/out`, stderr piped.
fn run(program: &Path, args: &[&[u8]], cwd: &Path, home: &Path, extra: &[(&str, &str)]) -> Output {
    use std::os::unix::ffi::OsStrExt;
    let out = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(cwd.join("out"))
        .unwrap();
    let mut cmd = Command::new(program);
    cmd.args(args.iter().map(|a| std::ffi::OsStr::from_bytes(a)))
        .current_dir(cwd)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", home)
        .envs(extra.iter().copied())
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(Stdio::piped());
    let child = util::spawn(&mut cmd);
    let mut guard = util::ChildGuard::new(child);
    let out = guard.0.take().unwrap().wait_with_output().unwrap();
    drop(guard);
    out
}

fn records(home: &Path) -> Vec<PathBuf> {
    fs::read_dir(home.join(".local/state/hupkit/jobs"))
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default()
}

fn status(o: &Output) -> String {
    format!(
        "{} {}",
        util::describe(Some(o.status)),
        String::from_utf8_lossy(&o.stderr).trim()
    )
}

/// The plain case (a command first, no terminal) needs nothing but the front:
/// it ignores SIGHUP, leaves every other disposition and the mask as they
/// came, writes the record and runs the command. Anything else is the full
/// implementation's, and the lone front says it cannot run it.
#[test]
fn the_front_alone_does_the_plain_case() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    fs::create_dir(&home).unwrap();
    let front = front_alone(dir.path());
    let masks = |program: &Path| {
        let mut cmd = Command::new(program);
        cmd.args(["grep", "-E", "^Sig(Ign|Blk)", "/proc/self/status"])
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("HOME", &home)
            .stdin(Stdio::null())
            .stderr(Stdio::piped())
            .stdout(Stdio::piped());
        // SAFETY: signal and sigprocmask are async-signal-safe.
        unsafe {
            cmd.pre_exec(|| {
                nix::libc::signal(nix::libc::SIGINT, nix::libc::SIG_IGN);
                let mut set: nix::libc::sigset_t = std::mem::zeroed();
                nix::libc::sigemptyset(&raw mut set);
                nix::libc::sigaddset(&raw mut set, nix::libc::SIGUSR1);
                nix::libc::sigprocmask(nix::libc::SIG_BLOCK, &raw const set, std::ptr::null_mut());
                Ok(())
            });
        }
        let out = util::spawn(&mut cmd).wait_with_output().unwrap();
        assert_eq!(status(&out), "exit 0 ", "{program:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let ours = masks(&front);
    let hex = |key: &str| {
        let line = ours.lines().find_map(|l| l.strip_prefix(key)).unwrap();
        u64::from_str_radix(line.trim(), 16).unwrap()
    };
    assert_eq!(
        hex("SigIgn:") & 0b11,
        0b11,
        "SIGHUP and SIGINT ignored: {ours}"
    );
    assert_eq!(hex("SigBlk:") & (1 << 9), 1 << 9, "SIGUSR1 blocked: {ours}");
    if super::gnu_available() {
        assert_eq!(ours, masks(Path::new(super::GNU)), "as GNU nohup");
    }
    assert_eq!(records(&home).len(), 1, "one record, by the front");

    for args in [&["--version"][..], &["--", "true"], &["-x", "true"]] {
        let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        let out = run(&front, &args, dir.path(), &home, &[]);
        let dir_shown = front.parent().unwrap().display();
        assert_eq!(
            status(&out),
            format!(
                "exit 125 {}: cannot run hupkit-rnohup (rnohup's full implementation) from '{dir_shown}': it is not installed",
                front.display()
            )
        );
    }
    // A terminal on stdout is the full implementation's (nohup.out).
    let pty = util::pty();
    let mut cmd = Command::new(&front);
    cmd.arg("true")
        .env_clear()
        .env("HOME", &home)
        .env("POSIXLY_CORRECT", "1");
    cmd.stdin(Stdio::null())
        .stdout(Stdio::from(pty.slave.try_clone().unwrap()))
        .stderr(Stdio::piped());
    let out = util::spawn(&mut cmd).wait_with_output().unwrap();
    assert!(status(&out).starts_with("exit 127 "), "{}", status(&out));
    assert!(!dir.path().join("nohup.out").exists());
}

/// The front's record is the full writer's, byte for byte but for the
/// process's own identity and times: arguments that need escaping, a working
/// directory with a newline, the output's path.
#[test]
fn the_front_writes_the_record_the_full_implementation_writes() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    fs::create_dir(&home).unwrap();
    let front = front_alone(dir.path());
    let cwd = dir.path().join("we\\ird\nname é");
    fs::create_dir(&cwd).unwrap();
    let args: &[&[u8]] = &[
        b"true",
        b"a\\b",
        b"two\nlines",
        b"\xff\xfe bytes",
        "é€😀".as_bytes(),
        b"",
    ];
    let texts: Vec<String> = [front.as_path(), &util::bin("hupkit-rnohup")]
        .iter()
        .map(|program| {
            let before = records(&home);
            let out = run(program, args, &cwd, &home, &[]);
            assert_eq!(status(&out), "exit 0 ", "{program:?}");
            let new: Vec<_> = records(&home)
                .into_iter()
                .filter(|r| !before.contains(r))
                .collect();
            assert_eq!(new.len(), 1, "{program:?}: {new:?}");
            let text = fs::read_to_string(&new[0]).unwrap();
            let mode = fs::metadata(&new[0]).unwrap().permissions().mode();
            assert_eq!(mode & 0o7777, 0o600, "{program:?}");
            let name = new[0].file_name().unwrap().to_string_lossy().into_owned();
            let job = new[0].extension().is_some_and(|e| e == "job");
            assert!(job && !name.starts_with('.'), "{name}");
            text.lines()
                .filter(|l| {
                    !["pid=", "starttime=", "when=", "started="]
                        .iter()
                        .any(|k| l.starts_with(k))
                })
                .flat_map(|l| [l, "\n"])
                .collect()
        })
        .collect();
    assert_eq!(texts[0], texts[1]);
    assert!(texts[0].contains("arg=\\xff\\xfe bytes\n"), "{}", texts[0]);
    assert!(texts[0].contains("cwd="), "{}", texts[0]);
}

/// Where `hupkit_common::safepath` has a judgement to make (a link in the
/// path, a directory others can write to, one of another user), the front
/// writes nothing: alone, it runs the command unrecorded; with the full
/// implementation beside it, that one decides (follows the trusted link,
/// refuses the rest).
#[test]
fn the_front_leaves_every_unplain_record_directory_to_the_full_one() {
    type Setup = fn(&Path);
    let cases: [(&str, Setup, bool); 4] = [
        (
            "a link of the caller's in the path",
            |home| {
                fs::create_dir_all(home.join("real")).unwrap();
                symlink(home.join("real"), home.join(".local")).unwrap();
            },
            true,
        ),
        (
            "a directory others can write to, not sticky",
            |home| {
                fs::create_dir_all(home.join(".local/state")).unwrap();
                fs::set_permissions(home.join(".local/state"), fs::Permissions::from_mode(0o777))
                    .unwrap();
            },
            false,
        ),
        (
            "a sticky directory others can write to, the entry of another user",
            |home| {
                fs::create_dir_all(home.join(".local/state/hupkit")).unwrap();
                fs::set_permissions(
                    home.join(".local/state"),
                    fs::Permissions::from_mode(0o1777),
                )
                .unwrap();
                std::os::unix::fs::lchown(
                    home.join(".local/state/hupkit"),
                    Some(super::NOBODY),
                    None,
                )
                .unwrap();
            },
            false,
        ),
        (
            "a directory of another user",
            |home| {
                fs::create_dir_all(home.join(".local")).unwrap();
                std::os::unix::fs::lchown(home.join(".local"), Some(super::NOBODY), None).unwrap();
            },
            false,
        ),
    ];
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: needs root (chown to nobody)");
        return;
    }
    for (what, setup, full_writes) in cases {
        for alone in [true, false] {
            let dir = tempfile::tempdir().unwrap();
            let home = dir.path().join("home");
            fs::create_dir(&home).unwrap();
            setup(&home);
            let program = if alone {
                front_alone(dir.path())
            } else {
                util::bin("rnohup")
            };
            let out = run(
                &program,
                &[b"sh", b"-c", b"echo ran"],
                dir.path(),
                &home,
                &[],
            );
            assert_eq!(status(&out), "exit 0 ", "{what}, alone: {alone}");
            assert_eq!(
                fs::read_to_string(dir.path().join("out")).unwrap(),
                "ran\n",
                "{what}"
            );
            let written = records(&home).len();
            assert_eq!(
                written,
                usize::from(full_writes && !alone),
                "{what}, alone: {alone}"
            );
        }
    }
}

/// The command is the one glibc's `execvp` would run: a file that is not
/// executable is passed over (EACCES); an error glibc stops at (ELOOP) stops
/// the search, and a script without `#!` (ENOEXEC) runs under /bin/sh (both
/// by the full implementation, with GNU's answers).
#[test]
fn the_command_is_the_one_execvp_runs() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    fs::create_dir(&a).unwrap();
    fs::create_dir(&b).unwrap();
    let exe = |p: PathBuf, text: &str, mode: u32| {
        fs::write(&p, text).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
    };
    exe(a.join("cmd"), "#!/bin/sh\necho a\n", 0o644);
    exe(b.join("cmd"), "#!/bin/sh\necho b\n", 0o755);
    symlink("loop", a.join("looping")).unwrap();
    symlink("looping", a.join("loop")).unwrap();
    exe(b.join("loop"), "#!/bin/sh\necho b\n", 0o755);
    exe(a.join("script"), "echo script\n", 0o755);
    let path = format!("{}:{}", a.display(), b.display());
    let home = dir.path().join("home");
    let front = front_alone(dir.path());
    let cases: [(&[u8], bool); 3] = [(b"cmd", true), (b"loop", false), (b"script", false)];
    for (cmd, front_alone_runs_it) in cases {
        let mut outcomes = Vec::new();
        for program in [
            front.clone(),
            util::bin("rnohup"),
            PathBuf::from(super::GNU),
        ] {
            let _ = fs::remove_file(dir.path().join("out"));
            let out = run(
                &program,
                &[cmd],
                dir.path(),
                &home,
                &[("PATH", &path), ("HUPKIT_NO_RECORD", "1")],
            );
            let printed = fs::read_to_string(dir.path().join("out")).unwrap_or_default();
            let err = String::from_utf8_lossy(&out.stderr)
                .replace(&program.display().to_string(), "nohup");
            outcomes.push(format!(
                "{} {printed:?} {err:?}",
                util::describe(Some(out.status))
            ));
        }
        let cmd = String::from_utf8_lossy(cmd);
        assert_eq!(
            outcomes[0].starts_with("exit 0 "),
            front_alone_runs_it,
            "{cmd}: {outcomes:?}"
        );
        if super::gnu_available() {
            assert_eq!(outcomes[1], outcomes[2], "{cmd}: rnohup and GNU nohup");
        }
    }
}

/// With fds 0 and 1 closed, the record says no terminal and no output, as
/// the full writer's does (the front's own descriptors, which may take those
/// numbers, are opened only after it has read them).
#[test]
fn closed_standard_streams_are_recorded_as_the_full_writer_records_them() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    fs::create_dir(&home).unwrap();
    let front = front_alone(dir.path());
    for program in [front, util::bin("hupkit-rnohup")] {
        let before = records(&home);
        let mut cmd = Command::new(&program);
        cmd.arg("true")
            .current_dir(dir.path())
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("HOME", &home)
            .stderr(Stdio::null());
        // SAFETY: close is async-signal-safe.
        unsafe {
            cmd.pre_exec(|| {
                nix::libc::close(0);
                nix::libc::close(1);
                Ok(())
            });
        }
        let status = util::spawn(&mut cmd).wait().unwrap();
        assert!(status.success(), "{}", program.display());
        let new: Vec<_> = records(&home)
            .into_iter()
            .filter(|r| !before.contains(r))
            .collect();
        assert_eq!(new.len(), 1, "{}", program.display());
        let text = fs::read_to_string(&new[0]).unwrap();
        assert!(
            text.contains("\ntty=\noutput=\n"),
            "{}: {text}",
            program.display()
        );
    }
}

/// Neither writer creates a directory through another user's link: root
/// with a HOME of nobody's, whose `.local` nobody pointed at a directory of
/// root's (`create_dir_all` followed it and made `state/hupkit/jobs` there).
#[test]
fn no_directory_is_created_through_another_users_link() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: needs root (a home of nobody's)");
        return;
    }
    for program in [util::bin("rnohup"), util::bin("hupkit-rnohup")] {
        let dir = tempfile::tempdir().unwrap();
        let (home, target) = (dir.path().join("home"), dir.path().join("roots"));
        fs::create_dir(&home).unwrap();
        fs::create_dir(&target).unwrap();
        symlink(&target, home.join(".local")).unwrap();
        std::os::unix::fs::lchown(home.join(".local"), Some(super::NOBODY), None).unwrap();
        std::os::unix::fs::lchown(&home, Some(super::NOBODY), None).unwrap();
        let out = run(&program, &[b"true"], dir.path(), &home, &[]);
        assert_eq!(status(&out), "exit 0 ", "{}", program.display());
        let made: Vec<_> = fs::read_dir(&target)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .collect();
        assert!(made.is_empty(), "{}: {made:?}", program.display());
    }
}

/// In a new PID namespace that still sees the old /proc, `/proc/self` and
/// `/proc/PID` are other processes: neither writer records anything (the
/// full one recorded PID 1 of the machine, the front its /proc number).
#[test]
fn no_record_where_proc_is_another_pid_namespaces() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: needs root (unshare --pid)");
        return;
    }
    for program in [util::bin("rnohup"), util::bin("hupkit-rnohup")] {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("home");
        fs::create_dir(&home).unwrap();
        let unshare = Path::new("/usr/bin/unshare");
        let args: Vec<&[u8]> = vec![
            b"--pid",
            b"--fork",
            program.as_os_str().as_encoded_bytes(),
            b"sh",
            b"-c",
            b"echo $$",
        ];
        let out = run(unshare, &args, dir.path(), &home, &[]);
        assert_eq!(status(&out), "exit 0 ", "{}", program.display());
        assert_eq!(fs::read_to_string(dir.path().join("out")).unwrap(), "1\n");
        assert_eq!(
            records(&home),
            Vec::<PathBuf>::new(),
            "{}",
            program.display()
        );
    }
}

/// `program true` with stdin on /dev/null, stdout and stderr piped, HOME
/// `home`, and the soft and hard limit of `resource` set to `limit`.
fn run_limited(
    program: &Path,
    home: &Path,
    resource: nix::libc::__rlimit_resource_t,
    limit: u64,
) -> Output {
    let mut cmd = Command::new(program);
    cmd.arg("true")
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", home)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: setrlimit is async-signal-safe and touches no memory of ours.
    unsafe {
        cmd.pre_exec(move || {
            let lim = nix::libc::rlimit {
                rlim_cur: limit,
                rlim_max: limit,
            };
            if nix::libc::setrlimit(resource, &raw const lim) == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        });
    }
    util::spawn(&mut cmd).wait_with_output().unwrap()
}

/// Under a small stack limit (below the front's 256 KiB) the front does not
/// run the plain case itself: alone, it says it cannot run the full
/// implementation; with it, the command runs.
#[test]
fn a_small_stack_limit_is_left_to_the_full_implementation() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    fs::create_dir(&home).unwrap();
    let limit = 128 * 1024;
    let alone = run_limited(
        &front_alone(dir.path()),
        &home,
        nix::libc::RLIMIT_STACK,
        limit,
    );
    assert!(
        status(&alone).starts_with("exit 125 "),
        "{}",
        status(&alone)
    );
    let both = run_limited(&util::bin("rnohup"), &home, nix::libc::RLIMIT_STACK, limit);
    assert_eq!(status(&both), "exit 0 ");
}

/// A generous address-space limit does not cost the record where the full
/// implementation writes it (a link of the caller's in the path): only a
/// limit that leaves it too little room does.
#[test]
fn a_generous_address_space_limit_keeps_the_record() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    fs::create_dir_all(dir.path().join("real")).unwrap();
    fs::create_dir(&home).unwrap();
    symlink(dir.path().join("real"), home.join(".local")).unwrap();
    let out = run_limited(&util::bin("rnohup"), &home, nix::libc::RLIMIT_AS, 4 << 30);
    assert_eq!(status(&out), "exit 0 ");
    assert_eq!(records(&home).len(), 1, "recorded under a 4 GiB limit");
}

/// The full implementation is run only if it is a file of root's (or of the
/// front's owner) that nobody else can write, and not the front itself: a
/// group-writable one and a copy of the front are refused with one line.
#[test]
fn an_untrusted_full_implementation_is_not_run() {
    let make = |setup: &dyn Fn(&Path)| {
        let dir = tempfile::tempdir().unwrap();
        let front = front_alone(dir.path());
        setup(front.parent().unwrap());
        let out = run(&front, &[b"--version"], dir.path(), dir.path(), &[]);
        (dir, status(&out))
    };
    let writable = |bin: &Path| {
        let full = bin.join("hupkit-rnohup");
        fs::copy(util::bin("hupkit-rnohup"), &full).unwrap();
        fs::set_permissions(&full, fs::Permissions::from_mode(0o775)).unwrap();
    };
    let itself = |bin: &Path| {
        fs::hard_link(bin.join("rnohup"), bin.join("hupkit-rnohup")).unwrap();
    };
    for (what, setup) in [
        ("group-writable", &writable as &dyn Fn(&Path)),
        ("the front itself", &itself),
    ] {
        let (_dir, said) = make(setup);
        assert!(
            said.starts_with("exit 125 ")
                && said.ends_with(
                    "it is not a file of root's or of rnohup's owner that only its owner can write"
                ),
            "{what}: {said}"
        );
    }
    // A hard link, not a copy: a copy just written can be busy (ETXTBSY)
    // while another test's child still holds it open across a fork.
    let (_dir, said) = make(&|bin: &Path| {
        fs::hard_link(util::bin("hupkit-rnohup"), bin.join("hupkit-rnohup")).unwrap();
    });
    assert!(said.starts_with("exit 0 "), "a trusted copy: {said}");
}
