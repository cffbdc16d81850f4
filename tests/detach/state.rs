//! What the daemon is: session, group, terminal, directory, umask, descriptors,
//! signals, environment, user; and what the caller gets back.

use std::io::Read;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::process::Stdio;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use super::{Daemon, detach, detach_cmd, file_becomes, open_tempdir, result, root_tempdir};
use crate::util;

/// A caller that blocks TERM and USR1, ignores HUP, QUIT, PIPE, XFSZ and the
/// real-time signals 32 (glibc's own) and 64, and leaks fd 7: the daemon must
/// inherit none of it.
#[test]
fn daemon_state_is_clean_whatever_the_caller() {
    let dir = open_tempdir();
    let leak = std::fs::File::open("/dev/null").unwrap();
    let leak_fd = leak.as_raw_fd();
    let mut cmd = detach_cmd(
        dir.path(),
        &[
            "-p",
            "d.pid",
            "-m",
            "027",
            "-c",
            "/tmp",
            "-E",
            "FOO=bar baz",
            "sleep",
            "60",
        ],
    );
    // SAFETY: only async-signal-safe calls (sigprocmask, signal, dup2) in the child.
    unsafe {
        cmd.pre_exec(move || {
            use nix::libc;
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&raw mut set);
            libc::sigaddset(&raw mut set, libc::SIGTERM);
            libc::sigaddset(&raw mut set, libc::SIGUSR1);
            libc::sigprocmask(libc::SIG_BLOCK, &raw const set, std::ptr::null_mut());
            for s in [libc::SIGHUP, libc::SIGQUIT, libc::SIGPIPE, libc::SIGXFSZ] {
                libc::signal(s, libc::SIG_IGN);
            }
            // The kernel's struct sigaction: handler, flags, restorer, mask.
            // Raw, since glibc refuses its internal signal 32.
            let ignore: [usize; 4] = [1, 0, 0, 0];
            for s in [32, 64] {
                libc::syscall(
                    libc::SYS_rt_sigaction,
                    s,
                    ignore.as_ptr(),
                    std::ptr::null_mut::<usize>(),
                    8usize,
                );
            }
            libc::dup2(leak_fd, 7);
            Ok(())
        });
    }
    let out = cmd.output().unwrap();
    assert_eq!(result(&out), (0, String::new()));
    let d = Daemon::from_pidfile(&dir.path().join("d.pid"));
    let st = d.stat();
    assert_ne!(
        st.session,
        d.pid(),
        "the daemon must not be a session leader"
    );
    assert_eq!(st.pgrp, st.session, "its group is the session's first");
    assert_eq!(st.tty_nr, 0, "no controlling terminal");
    assert_eq!(st.ppid.as_raw(), 1, "reparented to init");
    assert_eq!(
        std::fs::read_link(format!("/proc/{}/cwd", d.pid()))
            .unwrap()
            .to_str(),
        Some("/tmp")
    );
    assert_eq!(d.status_field("Umask"), "0027");
    assert_eq!(d.status_field("SigBlk"), "0000000000000000");
    assert_eq!(d.status_field("SigIgn"), "0000000000000000");
    // detach returns once the daemon has exec'd `sleep`, which may still be
    // starting up (glibc's setlocale opens locale files for a moment): poll.
    let fds = || {
        let mut fds: Vec<String> = std::fs::read_dir(format!("/proc/{}/fd", d.pid()))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        fds.sort();
        fds
    };
    assert!(
        util::poll_until(util::DEADLINE, || fds() == ["0", "1", "2"]),
        "the daemon's descriptors: {:?}",
        fds()
    );
    for fd in 0..3 {
        assert_eq!(
            std::fs::read_link(format!("/proc/{}/fd/{fd}", d.pid()))
                .unwrap()
                .to_str(),
            Some("/dev/null")
        );
    }
    let info = std::fs::read_to_string(format!("/proc/{}/fdinfo/0", d.pid())).unwrap();
    let flags = info
        .lines()
        .find_map(|l| l.strip_prefix("flags:"))
        .and_then(|v| u32::from_str_radix(v.trim(), 8).ok())
        .unwrap();
    assert_eq!(flags & 3, 0, "stdin is read-only");
    let environ = std::fs::read(format!("/proc/{}/environ", d.pid())).unwrap();
    assert!(environ.split(|&b| b == 0).any(|v| v == b"FOO=bar baz"));
    // TERM works, since nothing is blocked or ignored.
    d.signal(Signal::SIGTERM);
    assert!(d.wait_gone(util::DEADLINE), "SIGTERM must stop the daemon");
    drop(leak);
}

/// `x=$(detach cmd)`: nothing of the daemon holds the caller's stdout or stderr.
#[test]
fn command_substitution_returns_at_once() {
    let dir = open_tempdir();
    let mut child = detach_cmd(dir.path(), &["-p", "d.pid", "sleep", "60"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let mut out = Vec::new();
    child.stdout.take().unwrap().read_to_end(&mut out).unwrap();
    let mut err = Vec::new();
    child.stderr.take().unwrap().read_to_end(&mut err).unwrap();
    assert!(child.wait().unwrap().success());
    let d = Daemon::from_pidfile(&dir.path().join("d.pid"));
    assert!(d.alive(), "the pipes reached EOF while the daemon runs");
    assert!(start.elapsed() < Duration::from_secs(10));
    assert!(out.is_empty() && err.is_empty());
}

/// The pidfile is written before detach returns, every time.
#[test]
fn pidfile_is_complete_at_return() {
    let dir = open_tempdir();
    for i in 0..20 {
        let name = format!("p{i}.pid");
        let out = detach(dir.path(), &["-p", &name, "sleep", "60"]);
        assert_eq!(result(&out), (0, String::new()));
        let d = Daemon::from_pidfile(&dir.path().join(&name));
        assert!(d.alive());
    }
}

/// Relative paths are the caller's, not the daemon's directory.
#[test]
fn relative_paths_are_the_callers() {
    let dir = open_tempdir();
    let out = detach(
        dir.path(),
        &[
            "-c", "/", "-p", "rel.pid", "-o", "out.log", "sh", "-c", "pwd",
        ],
    );
    assert_eq!(result(&out), (0, String::new()));
    assert!(dir.path().join("rel.pid").exists());
    assert!(file_becomes(&dir.path().join("out.log"), "/\n"));
}

/// -o and -e: one shared file when they name the same path; truncated unless -a.
#[test]
fn output_files() {
    let dir = open_tempdir();
    std::fs::write(dir.path().join("log"), "old\n").unwrap();
    let script = "echo out; echo err >&2; echo out2";
    let out = detach(
        dir.path(),
        &["-o", "log", "-e", "log", "-p", "a.pid", "sh", "-c", script],
    );
    assert_eq!(result(&out), (0, String::new()));
    let log = dir.path().join("log");
    assert!(file_becomes(&log, "out\nerr\nout2\n"));
    let out = detach(
        dir.path(),
        &["-a", "-o", "log", "-p", "b.pid", "echo", "more"],
    );
    assert_eq!(result(&out), (0, String::new()));
    assert!(file_becomes(&log, "out\nerr\nout2\nmore\n"));
    let out = detach(
        dir.path(),
        &["-e", "err", "-p", "c.pid", "sh", "-c", "echo e >&2; echo o"],
    );
    assert_eq!(result(&out), (0, String::new()));
    assert!(file_becomes(&dir.path().join("err"), "e\n"));
}

/// A caller whose standard streams are all closed still gets a working daemon.
#[test]
fn caller_with_closed_stdio() {
    let dir = open_tempdir();
    let mut cmd = detach_cmd(
        dir.path(),
        &["-o", "log", "-p", "d.pid", "sh", "-c", "echo hi"],
    );
    // SAFETY: close is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            for fd in 0..3 {
                nix::libc::close(fd);
            }
            Ok(())
        });
    }
    let status = cmd.status().unwrap();
    assert_eq!(status.code(), Some(0));
    assert!(file_becomes(&dir.path().join("log"), "hi\n"));
}

/// A caller whose stderr is a pipe nobody reads: detach ignores SIGPIPE (as
/// Rust's runtime would have, before its C main), so `-v` cannot kill it
/// halfway; the daemon runs, the pidfile is written, the status is 0.
#[test]
fn stderr_pipe_without_reader() {
    let dir = open_tempdir();
    let (rd, wr) = nix::unistd::pipe().unwrap();
    drop(rd);
    let mut cmd = detach_cmd(dir.path(), &["-v", "-p", "d.pid", "sleep", "60"]);
    cmd.stdout(Stdio::null()).stderr(Stdio::from(wr));
    let status = cmd.status().unwrap();
    assert_eq!(status.code(), Some(0), "{status:?}");
    let d = Daemon::from_pidfile(&dir.path().join("d.pid"));
    assert!(d.alive());
}

/// --user: the user's uid, gid and groups only, and its HOME/USER/LOGNAME.
#[test]
fn user_switch() {
    let Some(dir) = root_tempdir("needs root") else {
        return;
    };
    let out = detach(
        dir.path(),
        &["-u", "nobody:nogroup", "-p", "d.pid", "sleep", "60"],
    );
    assert_eq!(result(&out), (0, String::new()));
    let d = Daemon::from_pidfile(&dir.path().join("d.pid"));
    assert_eq!(d.status_field("Uid"), "65534\t65534\t65534\t65534");
    assert_eq!(d.status_field("Gid"), "65534\t65534\t65534\t65534");
    assert_eq!(d.status_field("Groups"), "65534");
    let environ = std::fs::read(format!("/proc/{}/environ", d.pid())).unwrap();
    let vars: Vec<&[u8]> = environ.split(|&b| b == 0).collect();
    assert!(vars.contains(&&b"USER=nobody"[..]));
    assert!(vars.contains(&&b"LOGNAME=nobody"[..]));
    // The pidfile belongs to the caller (root), not to the daemon's user.
    assert_eq!(
        std::fs::metadata(dir.path().join("d.pid")).unwrap().uid(),
        0
    );
    assert_eq!(
        std::fs::metadata(dir.path().join("d.pid")).unwrap().mode() & 0o777,
        0o644
    );

    let out = detach(dir.path(), &["-u", "root", "-p", "r.pid", "sleep", "60"]);
    assert_eq!(result(&out), (0, String::new()));
    let r = Daemon::from_pidfile(&dir.path().join("r.pid"));
    assert_eq!(r.status_field("Gid"), "0\t0\t0\t0");
}

/// Not a session leader: opening a terminal without `O_NOCTTY` cannot make it
/// the daemon's controlling terminal.
#[test]
fn daemon_cannot_acquire_a_terminal() {
    let dir = open_tempdir();
    let pty = util::pty();
    let slave = std::fs::read_link(format!("/proc/self/fd/{}", pty.slave.as_raw_fd())).unwrap();
    let script = format!(
        "exec 3<>{}; cut -d' ' -f7 /proc/self/stat > tty_nr",
        slave.display()
    );
    let out = detach(dir.path(), &["-c", ".", "-p", "d.pid", "sh", "-c", &script]);
    assert_eq!(result(&out), (0, String::new()));
    let f = dir.path().join("tty_nr");
    assert!(util::poll_until(util::DEADLINE, || {
        std::fs::read_to_string(&f).is_ok_and(|t| t.ends_with('\n'))
    }));
    assert_eq!(std::fs::read_to_string(&f).unwrap(), "0\n");
}

/// Started from a shell's terminal, the daemon survives that terminal's hangup.
#[test]
fn daemon_survives_the_hangup_of_the_callers_terminal() {
    let dir = open_tempdir();
    let pty = util::pty();
    let mut cmd = detach_cmd(dir.path(), &["-p", "d.pid", "sleep", "60"]);
    cmd.stdin(Stdio::from(pty.slave.try_clone().unwrap()))
        .stdout(Stdio::from(pty.slave.try_clone().unwrap()))
        .stderr(Stdio::from(pty.slave.try_clone().unwrap()));
    hupkit_common::pty::session_leader_on_exec(&mut cmd);
    let status = util::spawn(&mut cmd).wait().unwrap();
    assert!(status.success());
    let d = Daemon::from_pidfile(&dir.path().join("d.pid"));
    let util::Pty { master, slave, .. } = pty;
    drop(slave);
    drop(master);
    assert!(
        !util::poll_until(Duration::from_millis(300), || !d.alive()),
        "the hangup must not reach the daemon"
    );
    assert_eq!(d.stat().tty_nr, 0);
}

/// -v says what was done, on standard error.
#[test]
fn verbose_says_what_was_done() {
    let dir = open_tempdir();
    let out = detach(dir.path(), &["-v", "-p", "v.pid", "sleep", "60"]);
    let d = Daemon::from_pidfile(&dir.path().join("v.pid"));
    assert_eq!(
        result(&out),
        (
            0,
            format!(
                "detach: started PID {}: sleep 60\ndetach: pidfile '{}'\n",
                d.pid(),
                dir.path().join("v.pid").display()
            )
        )
    );
}
