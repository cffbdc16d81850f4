//! The double fork, the daemon's set-up, and the report back to the caller.
//!
//! ```text
//! detach (P0, child subreaper) ── fork ──> P1: setsid ── fork ──> P2: set-up, execve
//!    ^ reads the report pipe to EOF          writes 'P' + P2's PID,   writes 'E' + step +
//!                                            then _exit               errno on failure
//! ```
//!
//! The report pipe is close-on-exec: P2's end closes when `execve` succeeds, so
//! end-of-file with no error record means the command is running. P0 is a child
//! subreaper (`PR_SET_CHILD_SUBREAPER`), so when P1 exits, P2 becomes P0's child
//! for as long as P0 lives: P0 can read its start time even if it already
//! exited, and wait for it (`--notify` detects a daemon that dies early). When P0
//! exits, P2 goes to init, as any daemon.
//!
//! With `--scope`, P2 waits before `execve` at a gate (a pipe, [`Plan::gate`])
//! until P0, which learnt its PID from P1, has had the service manager move it
//! into its new scope: P0 does the D-Bus work, P2 only a `read`. One byte
//! releases it; end-of-file (the move failed) ends it at [`Step::Scope`], so
//! the command never runs, let alone forks, in the session's cgroup.
//!
//! In P1 and P2 only async-signal-safe system calls are made, on data prepared in
//! [`crate::plan`]; nothing allocates, nothing returns: every path ends in
//! `execve` or `_exit`.

use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use nix::errno::Errno;
use nix::libc;
use nix::unistd::{ForkResult, Pid};

use nix::sys::socket::SockaddrLike;

use crate::logging::{Journal, Logging, Relay};
use crate::plan::Plan;

/// The step of the daemon's set-up that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Step {
    /// P0 could not fork, or the pipe could not be made.
    Fork = 1,
    /// P1 could not create the session.
    Setsid = 2,
    /// Standard streams could not be set.
    Stdio = 3,
    /// `chdir` to the working directory.
    Chdir = 4,
    /// Setting the supplementary groups, group or user.
    Credentials = 5,
    /// The switch to the user did not hold (verification).
    Verify = 6,
    /// Signal dispositions or mask.
    Signals = 7,
    /// Marking inherited descriptors close-on-exec.
    Fds = 8,
    /// `execve` itself.
    Exec = 9,
    /// `--scope`: the caller did not release the daemon from its gate.
    Scope = 10,
    /// `--journal`: connecting standard output or error to journald.
    Journal = 11,
    /// `--syslog`: starting the relay.
    Relay = 12,
}

impl Step {
    fn from_u8(b: u8) -> Step {
        match b {
            2 => Step::Setsid,
            3 => Step::Stdio,
            4 => Step::Chdir,
            5 => Step::Credentials,
            6 => Step::Verify,
            7 => Step::Signals,
            8 => Step::Fds,
            9 => Step::Exec,
            10 => Step::Scope,
            11 => Step::Journal,
            12 => Step::Relay,
            _ => Step::Fork,
        }
    }
}

/// A failure before the command ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Failure {
    /// Which step.
    pub step: Step,
    /// Why.
    pub errno: Errno,
}

/// Writes a record to the report pipe; async-signal-safe.
fn report(fd: RawFd, record: &[u8]) {
    // SAFETY: `record` is a valid buffer; write(2) is async-signal-safe. A failed
    // report cannot be reported, and the caller then sees a bare end-of-file.
    unsafe {
        libc::write(fd, record.as_ptr().cast(), record.len());
    }
}

fn fail(fd: RawFd, step: Step, errno: Errno) -> ! {
    let e = (errno as i32).to_ne_bytes();
    report(fd, &[b'E', step as u8, e[0], e[1], e[2], e[3]]);
    // SAFETY: _exit ends the forked child without running parent state's destructors.
    unsafe { libc::_exit(125) }
}

fn check(fd: RawFd, step: Step, r: libc::c_int) {
    if r < 0 {
        fail(fd, step, Errno::last());
    }
}

/// Fails the `Verify` step unless the real, effective and saved IDs that
/// `getres` (`getresuid` or `getresgid`) reads are all `want`; async-signal-safe.
fn verify_ids(
    fd: RawFd,
    getres: unsafe extern "C" fn(
        *mut libc::uid_t,
        *mut libc::uid_t,
        *mut libc::uid_t,
    ) -> libc::c_int,
    want: libc::uid_t,
) {
    let (mut r, mut e, mut s) = (0, 0, 0);
    // SAFETY: three valid out-pointers to locals; getresuid and getresgid are
    // async-signal-safe.
    check(fd, Step::Verify, unsafe {
        getres(&raw mut r, &raw mut e, &raw mut s)
    });
    if [r, e, s] != [want; 3] {
        fail(fd, Step::Verify, Errno::EPERM);
    }
}

/// Switches to the `--user`, if any, and checks that it held; async-signal-safe.
fn switch_user(plan: &Plan, wr: RawFd) {
    let Some(c) = &plan.creds else {
        return;
    };
    // SAFETY: setgroups reads `groups.len()` gids from a live vector; the rest
    // take integers; all are async-signal-safe.
    unsafe {
        check(
            wr,
            Step::Credentials,
            libc::setgroups(c.groups.len(), c.groups.as_ptr()),
        );
        check(wr, Step::Credentials, libc::setgid(c.gid.as_raw()));
        check(wr, Step::Credentials, libc::setuid(c.uid.as_raw()));
        verify_ids(wr, libc::getresuid, c.uid.as_raw());
        verify_ids(wr, libc::getresgid, c.gid.as_raw());
        if c.uid.as_raw() != 0 && libc::setuid(0) == 0 {
            fail(wr, Step::Verify, Errno::EPERM);
        }
    }
}

/// `--journal`: standard output, then standard error, each on a stream
/// connection of its own to journald, its header written; async-signal-safe.
fn connect_journal(wr: RawFd, j: &Journal) {
    for (target, header) in [(1, &j.stdout_header), (2, &j.stderr_header)] {
        // SAFETY: socket, connect, shutdown, write, dup2 and close are
        // async-signal-safe; the address and the header were prepared before
        // the fork and are only read.
        unsafe {
            let s = libc::socket(libc::AF_UNIX, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
            check(wr, Step::Journal, s);
            check(
                wr,
                Step::Journal,
                libc::connect(s, j.addr.as_ptr().cast(), j.addr.len()),
            );
            libc::shutdown(s, libc::SHUT_RD);
            let mut rest: &[u8] = header;
            while !rest.is_empty() {
                let n = libc::write(s, rest.as_ptr().cast(), rest.len());
                if n < 0 && Errno::last() == Errno::EINTR {
                    continue;
                }
                if n <= 0 {
                    fail(wr, Step::Journal, Errno::last());
                }
                rest = &rest[n.unsigned_abs()..];
            }
            check(wr, Step::Journal, libc::dup2(s, target));
            libc::close(s);
        }
    }
}

/// P3 (`--syslog`): the relay, `detach --syslog-relay TAG PID`, with the
/// daemon's standard output on fd 0 and error on fd 1, as the daemon's user,
/// signals reset. Never returns.
fn relay(plan: &Plan, r: &Relay, wr: RawFd, daemon: libc::pid_t) -> ! {
    // The PID in decimal, without allocating.
    let mut digits = [0u8; 12];
    let mut at = digits.len() - 1;
    let mut n = daemon.unsigned_abs();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    let argv = [
        c"detach".as_ptr(),
        c"--syslog-relay".as_ptr(),
        r.tag.as_ptr(),
        digits[at..].as_ptr().cast::<libc::c_char>(),
        std::ptr::null(),
    ];
    // SAFETY: only async-signal-safe system calls, on descriptors and strings
    // prepared before the fork (the digits are NUL-terminated: the array's
    // last byte is never written); every failure ends in `_exit`. Fds 0-2 are
    // detach's own standard streams, so the pipes and /dev/null are above 2
    // and no dup2 below overwrites another's source.
    unsafe {
        check(wr, Step::Relay, libc::dup2(r.stdout.as_raw_fd(), 0));
        check(wr, Step::Relay, libc::dup2(r.stderr.as_raw_fd(), 1));
        check(wr, Step::Relay, libc::dup2(r.null.as_raw_fd(), 2));
        switch_user(plan, wr);
        if let Err(errno) = hupkit_common::signal::reset_for_exec_raw() {
            fail(wr, Step::Relay, errno);
        }
        cloexec_above_2();
        libc::execve(r.exe.as_ptr(), argv.as_ptr(), plan.envp.as_ptr());
        fail(wr, Step::Relay, Errno::last())
    }
}

/// Marks every descriptor above 2 close-on-exec; async-signal-safe.
fn cloexec_above_2() {
    // SAFETY: close_range, getrlimit and fcntl are async-signal-safe and touch
    // only the local `lim`.
    unsafe {
        if libc::syscall(
            libc::SYS_close_range,
            3u32,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        ) < 0
        {
            let mut lim: libc::rlimit = std::mem::zeroed();
            let max = if libc::getrlimit(libc::RLIMIT_NOFILE, &raw mut lim) == 0 {
                libc::c_int::try_from(lim.rlim_cur.min(1 << 20)).unwrap_or(1 << 20)
            } else {
                1024
            };
            for fd in 3..max {
                libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
            }
        }
    }
}

/// P2: the daemon's set-up, then `execve`. Never returns.
fn daemon(plan: &Plan, wr: RawFd) -> ! {
    // SAFETY: only async-signal-safe system calls, on descriptors and strings
    // prepared before the fork; every failure ends in `_exit`.
    unsafe {
        check(wr, Step::Stdio, libc::dup2(plan.stdin.as_raw_fd(), 0));
        check(wr, Step::Stdio, libc::dup2(plan.stdout.as_raw_fd(), 1));
        check(wr, Step::Stdio, libc::dup2(plan.stderr.as_raw_fd(), 2));
        check(wr, Step::Chdir, libc::chdir(plan.chdir.as_ptr()));
        if let Some(mask) = plan.umask {
            libc::umask(mask);
        }
        switch_user(plan, wr);
        // After the switch, so that journald records the daemon's user.
        if let Some(Logging::Journal(j)) = &plan.logging {
            connect_journal(wr, j);
        }
        // Every signal at its default action, none blocked: execve keeps ignored
        // signals and the mask, and a daemon that ignores or blocks SIGTERM cannot
        // be stopped. Raw system calls, so glibc's internal 32 and 33 are reset too;
        // only the signals not at their default already (one read of
        // /proc/self/status instead of 62 system calls).
        if let Err(errno) = hupkit_common::signal::reset_for_exec_raw() {
            fail(wr, Step::Signals, errno);
        }
        // --scope: wait until the caller has moved this process to its scope
        // (one byte), so that the command and everything it forks start there;
        // end of file means the move failed, and the command never runs.
        if let Some((rd, gate_wr)) = &plan.gate {
            libc::close(*gate_wr);
            let mut byte = 0u8;
            loop {
                match libc::read(rd.as_raw_fd(), (&raw mut byte).cast(), 1) {
                    1 => break,
                    0 => fail(wr, Step::Scope, Errno::ECANCELED),
                    _ if Errno::last() == Errno::EINTR => {}
                    _ => fail(wr, Step::Scope, Errno::last()),
                }
            }
        }
        // Everything above fd 2 closes at exec; the report pipe stays usable until then.
        cloexec_above_2();
        libc::execve(
            plan.program.as_ptr(),
            plan.argv.as_ptr(),
            plan.envp.as_ptr(),
        );
        if Errno::last() == Errno::ENOEXEC {
            // glibc's execvp runs a script without #! with /bin/sh; so do we.
            libc::execve(
                c"/bin/sh".as_ptr(),
                plan.sh_argv.as_ptr(),
                plan.envp.as_ptr(),
            );
        }
        fail(wr, Step::Exec, Errno::last())
    }
}

/// P1: a new session, the second fork, the daemon's PID to the caller. Never returns.
fn intermediate(plan: &Plan, wr: RawFd) -> ! {
    // SAFETY: setsid, fork, write and _exit are async-signal-safe.
    unsafe {
        check(wr, Step::Setsid, libc::setsid());
        match libc::fork() {
            0 => daemon(plan, wr),
            -1 => fail(wr, Step::Fork, Errno::last()),
            pid => {
                let p = pid.to_ne_bytes();
                report(wr, &[b'P', p[0], p[1], p[2], p[3]]);
                if let Some(Logging::Syslog(r)) = &plan.logging {
                    match libc::fork() {
                        0 => relay(plan, r, wr, pid),
                        -1 => fail(wr, Step::Relay, Errno::last()),
                        _ => {}
                    }
                }
                libc::_exit(0)
            }
        }
    }
}

/// The records read so far from the report pipe: the daemon's PID, the failure.
fn parse_report(buf: &[u8]) -> (Option<Pid>, Option<Failure>) {
    let mut pid = None;
    let mut failure = None;
    let mut rest = buf;
    while let Some((&tag, tail)) = rest.split_first() {
        match (tag, tail) {
            (b'P', [a, b, c, d, more @ ..]) => {
                pid = Some(Pid::from_raw(i32::from_ne_bytes([*a, *b, *c, *d])));
                rest = more;
            }
            (b'E', [step, a, b, c, d, more @ ..]) => {
                failure = Some(Failure {
                    step: Step::from_u8(*step),
                    errno: Errno::from_raw(i32::from_ne_bytes([*a, *b, *c, *d])),
                });
                rest = more;
            }
            _ => break,
        }
    }
    (pid, failure)
}

/// Starts the daemon described by `plan`. `Ok(pid)`: it has exec'd (it may have
/// exited since); `Err`: the step that failed, with `pid` if it got that far.
///
/// `on_pid` is called once, as soon as the daemon's PID is known and no failure
/// has been reported yet, while the daemon is still setting itself up: work
/// that needs only the PID (the pidfile) overlaps the daemon's `execve` instead
/// of following it. A later failure is still returned as `Err`, and the caller
/// undoes that work.
///
/// `gate` (with `--scope`) is the write end of [`Plan::gate`]: the daemon waits
/// before `execve` until `on_pid` returns `true` (one byte is written); on
/// `false` the gate is closed and the daemon fails at [`Step::Scope`].
pub fn spawn(
    plan: &Plan,
    gate: Option<OwnedFd>,
    mut on_pid: impl FnMut(Pid) -> bool,
) -> Result<Pid, (Failure, Option<Pid>)> {
    let mut gate = gate;
    let early = |errno| {
        (
            Failure {
                step: Step::Fork,
                errno,
            },
            None,
        )
    };
    let (rd, wr): (OwnedFd, OwnedFd) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(early)?;
    // SAFETY: prctl with PR_SET_CHILD_SUBREAPER takes an integer and touches no memory.
    if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } != 0 {
        return Err(early(Errno::last()));
    }
    // SAFETY: detach is single-threaded, and the child calls only async-signal-safe
    // functions (see `intermediate` and `daemon`) before execve or _exit.
    let p1 = match unsafe { nix::unistd::fork() }.map_err(early)? {
        ForkResult::Child => intermediate(plan, wr.as_raw_fd()),
        ForkResult::Parent { child } => child,
    };
    drop(wr);
    let mut pipe = std::fs::File::from(rd);
    let mut buf = Vec::new();
    let mut chunk = [0u8; 64];
    let mut told = false;
    // Read to end-of-file: P1's end closes when it exits, the daemon's at execve.
    let read = loop {
        match pipe.read(&mut chunk) {
            Ok(0) => break Ok(()),
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                if let (Some(pid), None) = parse_report(&buf) {
                    if !told {
                        told = true;
                        let release = on_pid(pid);
                        if let Some(fd) = gate.take() {
                            if release {
                                let _ = nix::unistd::write(&fd, b"g");
                            }
                        }
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => break Err(e),
        }
    };
    drop(gate);
    let _ = nix::sys::wait::waitpid(p1, None);
    let (pid, failure) = parse_report(&buf);
    match (failure, pid, read) {
        (Some(f), pid, _) => Err((f, pid)),
        (None, Some(pid), Ok(())) => Ok(pid),
        (None, _, Err(e)) => Err((
            Failure {
                step: Step::Fork,
                errno: e.raw_os_error().map_or(Errno::EIO, Errno::from_raw),
            },
            pid,
        )),
        (None, None, Ok(())) => Err(early(Errno::ECHILD)),
    }
}
