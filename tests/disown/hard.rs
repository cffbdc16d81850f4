//! Hard targets: disown never harms them and never hangs. Real-time signals
//! that arrive while a process is held are all delivered, once; a process that
//! cannot stop (in `vfork`) is let go at a deadline; 32-bit code is refused
//! before anything is injected.
//!
//! The targets are tiny C programs compiled with `cc` into the test's temp dir
//! (gcc is on every machine that builds hupkit); where `cc` is missing, or
//! cannot build 32-bit code, the test says so and skips that part.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use hupkit_common::proc::{Stat, Status};
use nix::libc;
use nix::sys::signal::Signal;
use nix::unistd::Pid;

use crate::util;

/// Compiles `src` (a file named `file`) into `dir/name` with `cc ARGS`; `None`
/// (and a note) where the compiler is missing or refuses the flags.
fn cc(dir: &Path, name: &str, file: &str, src: &str, args: &[&str]) -> Option<PathBuf> {
    let source = dir.join(file);
    std::fs::write(&source, src).unwrap();
    let bin = dir.join(name);
    let out = Command::new("cc")
        .args(args)
        .arg("-o")
        .arg(&bin)
        .arg(&source)
        .output();
    match out {
        Ok(o) if o.status.success() => Some(bin),
        Ok(o) => {
            eprintln!(
                "skipped: cc {args:?} {file} failed: {}",
                String::from_utf8_lossy(&o.stderr)
            );
            None
        }
        Err(e) => {
            eprintln!("skipped: no C compiler (cc): {e}");
            None
        }
    }
}

/// Runs disown with `args`, killed at `deadline`: (status or None if it hung, stdout, stderr).
fn disown_within(args: &[&str], deadline: Duration) -> (Option<i32>, String, String) {
    let mut child = util::spawn(
        Command::new(util::bin("disown"))
            .args(args)
            .env("HUPKIT_NO_RECORD", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
    );
    let status = util::wait_deadline(&mut child, deadline);
    let read = |r: Option<&mut dyn std::io::Read>| {
        let mut s = String::new();
        if let Some(r) = r {
            let _ = r.read_to_string(&mut s);
        }
        s
    };
    let out = read(child.stdout.as_mut().map(|r| r as &mut dyn std::io::Read));
    let err = read(child.stderr.as_mut().map(|r| r as &mut dyn std::io::Read));
    (status.and_then(|s| s.code()), out, err)
}

fn untraced(pid: Pid) -> bool {
    util::poll_until(util::DEADLINE, || {
        Status::read(pid).is_ok_and(|s| s.tracer_pid == 0)
    })
}

/// Counts each real-time signal (32 to 64, glibc's own 32 and 33 included,
/// installed with the raw system call since glibc refuses them) and writes the
/// counts to the file named by argv[1] every 20 ms and after each signal.
const SIGCOUNT: &str = r#"
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
static volatile sig_atomic_t counts[65];
extern void restore_rt(void);
__asm__(".text\n.globl restore_rt\nrestore_rt:\n mov $15, %eax\n syscall\n");
struct ksa { void (*h)(int, siginfo_t *, void *); unsigned long flags; void (*r)(void); unsigned long mask; };
static void on(int s, siginfo_t *i, void *c) { (void)i; (void)c; counts[s]++; }
int main(int argc, char **argv) {
    if (argc != 2) return 2;
    for (int s = 32; s <= 64; s++) {
        struct ksa a = { on, SA_SIGINFO | 0x04000000 | SA_RESTART, restore_rt, 0 };
        if (syscall(SYS_rt_sigaction, s, &a, 0, 8) != 0) return 3;
    }
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", argv[1]);
    for (;;) {
        char buf[1024];
        int n = 0;
        for (int s = 32; s <= 64; s++) n += snprintf(buf + n, sizeof buf - n, "%d ", (int)counts[s]);
        int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd >= 0) { write(fd, buf, n); close(fd); rename(tmp, argv[1]); }
        struct timespec t = { 0, 20000000 };
        nanosleep(&t, 0);
    }
}
"#;

/// How many signals the sender may have sent that the target has not yet
/// counted (100 rounds). Unpaced, a target starved of CPU on a loaded
/// machine let tens of thousands queue up, and the kernel drains such a
/// queue in quadratic time (each real-time signal is looked for from the
/// head of one list, and nested handlers take the highest first, whose
/// entries are furthest in): counting them all outlasted the test's 20 s with
/// the old injector as with the new one.
const AHEAD: u64 = 3300;

#[test]
fn real_time_signals_are_delivered_once() {
    let dir = tempfile::tempdir().unwrap();
    let Some(bin) = cc(dir.path(), "sigcount", "sigcount.c", SIGCOUNT, &["-O1"]) else {
        return;
    };
    let counts = dir.path().join("counts");
    let mut guard = util::ChildGuard::new(util::spawn(Command::new(&bin).arg(&counts)));
    let pid = guard.pid();
    assert!(util::poll_until(util::DEADLINE, || counts.exists()));

    // A stream of every real-time signal while disown holds the process,
    // again and again, paced ([`AHEAD`]).
    let stop = Arc::new(AtomicBool::new(false));
    let sender = {
        let stop = Arc::clone(&stop);
        let counts = counts.clone();
        std::thread::spawn(move || {
            let mut sent = [0u32; 65];
            while !stop.load(Ordering::Relaxed) {
                let delivered: u64 = std::fs::read_to_string(&counts)
                    .unwrap_or_default()
                    .split_ascii_whitespace()
                    .map(|n| n.parse::<u64>().unwrap_or(0))
                    .sum();
                let total: u64 = sent.iter().map(|&n| u64::from(n)).sum();
                if total.saturating_sub(delivered) > AHEAD {
                    std::thread::sleep(Duration::from_micros(300));
                    continue;
                }
                for s in 32..=64 {
                    // SAFETY: kill(2) with a PID this test started and still owns (not reaped).
                    if unsafe { libc::kill(pid.as_raw(), s) } == 0 {
                        sent[usize::try_from(s).unwrap()] += 1;
                    }
                }
                std::thread::sleep(Duration::from_micros(300));
            }
            sent
        })
    };
    let mut outcomes = Vec::new();
    for _ in 0..8 {
        outcomes.push(disown_within(
            &["--keep-tty", &pid.to_string()],
            Duration::from_secs(15),
        ));
    }
    stop.store(true, Ordering::Relaxed);
    let sent = sender.join().unwrap();
    for (rc, out, err) in &outcomes {
        assert_eq!(rc, &Some(0), "stdout: {out}\nstderr: {err}");
        assert!(
            out.starts_with(&format!(
                "disown: PID {pid} ({} {}): SIGHUP ",
                bin.display(),
                counts.display()
            )),
            "{out}"
        );
    }
    let expected: Vec<String> = (32..=64).map(|s| sent[s].to_string()).collect();
    let mut seen = String::new();
    let all_there = util::poll_until(util::DEADLINE, || {
        seen = std::fs::read_to_string(&counts).unwrap_or_default();
        seen.split_ascii_whitespace()
            .eq(expected.iter().map(String::as_str))
    });
    assert!(
        all_there,
        "signals 32..=64: sent {expected:?}, delivered {seen}"
    );
    assert!(Status::read(pid).unwrap().sig_ign.contains(Signal::SIGHUP));
    assert_eq!(Status::read(pid).unwrap().tracer_pid, 0);
    drop(guard.0.take().map(|mut c| {
        let _ = c.kill();
        c.wait()
    }));
}

/// A process the test started indirectly, killed by PID when dropped.
struct KillOnDrop(Pid);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(self.0, Signal::SIGKILL);
    }
}

/// Stays in `vfork` (state D) until its child is killed, then exits 0.
const VFORKER: &str = r"
#include <sys/wait.h>
#include <unistd.h>
int main(void) {
    pid_t p = vfork();
    if (p == 0) { pause(); _exit(0); }
    int st;
    waitpid(p, &st, 0);
    return WIFSIGNALED(st) ? 0 : 1;
}
";

#[test]
fn a_process_that_cannot_stop_is_let_go_at_a_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let Some(bin) = cc(dir.path(), "vforker", "vforker.c", VFORKER, &[]) else {
        return;
    };
    let mut guard = util::ChildGuard::new(util::spawn(Command::new(&bin).stdout(Stdio::piped())));
    let pid = guard.pid();
    let mut child_pid = None;
    assert!(util::poll_until(util::DEADLINE, || {
        child_pid = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
            .ok()
            .and_then(|c| c.split_ascii_whitespace().next()?.parse::<i32>().ok())
            .map(Pid::from_raw);
        child_pid.is_some()
            && Stat::read(pid).is_ok_and(|s| s.state == hupkit_common::proc::ProcState::DiskSleep)
    }));
    let child_pid = child_pid.unwrap();
    // Its vfork child is ours too: killed by PID whatever happens.
    let vfork_child = KillOnDrop(child_pid);

    let started = Instant::now();
    let (rc, out, err) = disown_within(&["--keep-tty", &pid.to_string()], Duration::from_secs(12));
    let took = started.elapsed();
    assert_eq!(
        (rc, out.as_str(), err.as_str()),
        (
            Some(1),
            "",
            format!(
                "disown: PID {pid} ({}): it did not stop within 2 s (it is in uninterruptible sleep: in vfork, or waiting for a device); left as it was\n",
                bin.display()
            )
            .as_str()
        ),
        "after {took:?}"
    );
    assert!(took < Duration::from_secs(6), "{took:?}");
    assert!(untraced(pid), "released");
    assert!(!Status::read(pid).unwrap().sig_ign.contains(Signal::SIGHUP));
    // It carries on as if nothing happened once its child goes.
    drop(vfork_child);
    let status = guard.wait(util::DEADLINE);
    assert_eq!(util::describe(status), "exit 0");
}

/// A 64-bit program that sleeps in the i386 `pause` (29) through `int 0x80`.
const INT80: &str = r#"
int main(void) {
    for (;;) {
        long r;
        __asm__ volatile ("int $0x80" : "=a"(r) : "a"(29L) : "memory");
    }
}
"#;

/// A 32-bit program, without libc: the i386 `pause` in a loop.
const I386: &str = ".globl _start\n_start:\n mov $29, %eax\n int $0x80\n jmp _start\n";

fn refused_untouched(bin: &Path) {
    let mut guard = util::ChildGuard::new(util::spawn(&mut Command::new(bin)));
    let pid = guard.pid();
    assert!(util::poll_until(util::DEADLINE, || {
        Stat::read(pid).is_ok_and(|s| s.state == hupkit_common::proc::ProcState::Sleeping)
    }));
    let (rc, out, err) = disown_within(&["--keep-tty", &pid.to_string()], Duration::from_secs(12));
    assert_eq!(
        (rc, out.as_str(), err.as_str()),
        (
            Some(1),
            "",
            format!("disown: PID {pid} ({}): it is not running x86_64 code (a 32-bit program, or a 32-bit system call): x86_64 processes only; left as it was\n", bin.display()).as_str()
        )
    );
    assert!(untraced(pid), "released");
    let st = Status::read(pid).unwrap();
    assert!(!st.sig_ign.contains(Signal::SIGHUP), "untouched");
    assert!(util::poll_until(util::DEADLINE, || {
        Stat::read(pid).is_ok_and(|s| s.state == hupkit_common::proc::ProcState::Sleeping)
    }));
    // Still in its call: SIGHUP (default action) ends it as it would have.
    nix::sys::signal::kill(pid, Signal::SIGHUP).unwrap();
    let status = guard.wait(util::DEADLINE);
    assert_eq!(util::describe(status), "signal 1");
}

#[test]
fn thirty_two_bit_code_is_refused_untouched() {
    let dir = tempfile::tempdir().unwrap();
    if let Some(bin) = cc(dir.path(), "int80", "int80.c", INT80, &[]) {
        refused_untouched(&bin);
    }
    if let Some(bin) = cc(
        dir.path(),
        "i386",
        "i386.S",
        I386,
        &["-m32", "-nostdlib", "-static"],
    ) {
        refused_untouched(&bin);
    }
}

const HANDLER: &str = "import signal,sys,time; signal.signal(signal.SIGHUP, lambda *a: None); print(flush=True); time.sleep(300)";

#[test]
fn a_process_with_its_own_handler_is_left_alone_and_counted() {
    let mut guard = util::ChildGuard::new(util::spawn(
        Command::new("python3")
            .args(["-c", HANDLER])
            .stdin(Stdio::null())
            .stdout(Stdio::piped()),
    ));
    let pid = guard.pid();
    assert!(util::poll_until(util::DEADLINE, || {
        Status::read(pid).is_ok_and(|s| s.sig_cgt.contains(Signal::SIGHUP))
    }));
    let (rc, out, err) = disown_within(&["--keep-tty", &pid.to_string()], util::DEADLINE);
    assert_eq!(
        (rc, out.as_str(), err.as_str()),
        (
            Some(1),
            "",
            format!(
                "disown: PID {pid} (python3) has its own SIGHUP handler; left alone (--override-handler forces)\n"
            )
            .as_str()
        )
    );
    assert!(Status::read(pid).unwrap().sig_cgt.contains(Signal::SIGHUP));
    let (rc, out, err) = disown_within(
        &["--override-handler", "-h", &pid.to_string()],
        util::DEADLINE,
    );
    // (Its argv[0] is whatever python3 was found as: a full path under pyenv.)
    assert_eq!((rc, err.as_str()), (Some(0), ""), "{out}");
    assert!(
        out.starts_with(&format!("disown: PID {pid} ("))
            && out.ends_with(&format!(
                "python3 -c {}): SIGHUP ignored\n",
                hupkit_common::quote::word(HANDLER.as_bytes())
            )),
        "{out}"
    );
    assert!(Status::read(pid).unwrap().sig_ign.contains(Signal::SIGHUP));
    drop(guard.0.take().map(|mut c| {
        let _ = c.kill();
        c.wait()
    }));
}
