//! System-call injection with ptrace: make another process run a few system calls
//! of our choosing, then resume exactly where it was (reptyr's technique).
//!
//! [`Tracee::attach`] seizes one thread (`PTRACE_SEIZE`, no SIGSTOP side
//! effects), interrupts it, and brings it to a syscall-entry stop by resuming it
//! with `PTRACE_SYSCALL`: a thread blocked in a system call restarts it, and the
//! restarted call's entry stop is where we take over. Each [`Tracee::syscall`]
//! then rewinds the instruction pointer to the target's own `syscall`
//! instruction, swaps in our call number and arguments, and runs to the exit
//! stop. [`Tracee::detach`] restores the saved registers at a syscall stop, so
//! the thread re-issues its original call from scratch, and detaches.
//!
//! A thread that makes no system call (a CPU loop) never reaches a syscall stop.
//! After [`SYSCALL_WAIT`] the thread is interrupted again and each call runs a
//! `syscall` instruction found in an executable mapping (the `vDSO`, else the
//! program's text) by single-stepping it, with `orig_rax = -1` so that the
//! kernel's restart logic leaves the registers alone; at the end the full saved
//! register set is written back (gdb's method for inferior calls).
//!
//! Only general-purpose registers are touched; memory is written only in a
//! scratch page the target maps for us. Whatever fails, the registers are
//! restored and the thread detached (also on drop). `x86_64` only: on other
//! architectures [`Tracee::attach`] refuses with [`InjectError::Unsupported`].

use std::fmt;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::unistd::Pid;

/// How long to wait for a thread to reach a system call before using a gadget.
pub const SYSCALL_WAIT: Duration = Duration::from_millis(500);

/// Why an injection could not be done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InjectError {
    /// This architecture is not supported.
    Unsupported,
    /// `ptrace` refused (no permission, Yama, already traced).
    Attach(Errno),
    /// The process exited meanwhile.
    Gone,
    /// Something else failed; the text says what.
    Failed(String),
}

impl fmt::Display for InjectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InjectError::Unsupported => {
                f.write_str("this architecture is not supported (x86_64 only)")
            }
            InjectError::Attach(e) => write!(f, "cannot trace it: {}", crate::diag::strerror(*e)),
            InjectError::Gone => f.write_str("it exited"),
            InjectError::Failed(why) => f.write_str(why),
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod imp {
    use std::os::unix::fs::FileExt;

    use nix::libc::user_regs_struct;
    use nix::sys::ptrace;
    use nix::sys::signal::Signal;
    use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};

    use super::{Duration, Errno, InjectError, Instant, Pid, SYSCALL_WAIT};

    /// How calls are executed.
    enum Mode {
        /// At syscall stops, reusing the thread's own instruction.
        SyscallStop { at_exit: bool },
        /// By single-stepping a `syscall` instruction at this address.
        Gadget(u64),
    }

    /// A thread under our control.
    pub struct Tracee {
        tid: Pid,
        /// Registers to restore (syscall-stop mode: ip rewound, rax = original call).
        saved: user_regs_struct,
        mode: Mode,
        /// The signal that had stopped it, if it was in a job-control stop.
        pub stop_signal: Option<Signal>,
        detached: bool,
    }

    fn wait(tid: Pid) -> Result<WaitStatus, InjectError> {
        loop {
            match waitpid(tid, Some(WaitPidFlag::__WALL)) {
                Ok(WaitStatus::Exited(..) | WaitStatus::Signaled(..)) => {
                    return Err(InjectError::Gone);
                }
                Ok(s) => return Ok(s),
                Err(Errno::EINTR) => {}
                Err(Errno::ECHILD) => return Err(InjectError::Gone),
                Err(e) => {
                    return Err(InjectError::Failed(format!(
                        "waitpid: {}",
                        crate::diag::strerror(e)
                    )));
                }
            }
        }
    }

    fn wait_until(tid: Pid, deadline: Instant) -> Result<Option<WaitStatus>, InjectError> {
        loop {
            match waitpid(tid, Some(WaitPidFlag::__WALL | WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) => {
                    if Instant::now() >= deadline {
                        return Ok(None);
                    }
                    std::thread::sleep(Duration::from_micros(200));
                }
                Ok(WaitStatus::Exited(..) | WaitStatus::Signaled(..)) => {
                    return Err(InjectError::Gone);
                }
                Ok(s) => return Ok(Some(s)),
                Err(Errno::EINTR) => {}
                Err(e) => {
                    return Err(InjectError::Failed(format!(
                        "waitpid: {}",
                        crate::diag::strerror(e)
                    )));
                }
            }
        }
    }

    fn fail(what: &str, e: Errno) -> InjectError {
        if e == Errno::ESRCH {
            InjectError::Gone
        } else {
            InjectError::Failed(format!("{what}: {}", crate::diag::strerror(e)))
        }
    }

    /// The address of a `syscall` instruction (0f 05) in an executable mapping.
    fn find_gadget(pid: Pid) -> Option<u64> {
        let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).ok()?;
        let mem = std::fs::File::open(format!("/proc/{pid}/mem")).ok()?;
        let mut candidates: Vec<(u64, u64)> = Vec::new();
        for line in maps.lines() {
            let mut f = line.split_ascii_whitespace();
            let (Some(range), Some(perms)) = (f.next(), f.next()) else {
                continue;
            };
            if !perms.contains('x') {
                continue;
            }
            let Some((a, b)) = range.split_once('-') else {
                continue;
            };
            let (Ok(a), Ok(b)) = (u64::from_str_radix(a, 16), u64::from_str_radix(b, 16)) else {
                continue;
            };
            // The vDSO first: small, always there, and full of syscall fallbacks.
            if line.ends_with("[vdso]") {
                candidates.insert(0, (a, b));
            } else {
                candidates.push((a, b));
            }
        }
        for (a, b) in candidates {
            let len = usize::try_from((b - a).min(1 << 22)).ok()?;
            let mut buf = vec![0u8; len];
            let Ok(n) = mem.read_at(&mut buf, a) else {
                continue;
            };
            if let Some(i) = buf[..n].windows(2).position(|w| w == [0x0f, 0x05]) {
                return Some(a + u64::try_from(i).ok()?);
            }
        }
        None
    }

    impl Tracee {
        /// Seizes thread `tid` and brings it under control.
        pub fn attach(tid: Pid) -> Result<Tracee, InjectError> {
            ptrace::seize(tid, ptrace::Options::PTRACE_O_TRACESYSGOOD).map_err(|e| match e {
                Errno::ESRCH => InjectError::Gone,
                e => InjectError::Attach(e),
            })?;
            // From here on, every error path detaches (the Drop of a half-built
            // Tracee cannot, so do it by hand).
            let bail = |e: InjectError| {
                let _ = ptrace::detach(tid, None);
                e
            };
            ptrace::interrupt(tid).map_err(|e| bail(fail("PTRACE_INTERRUPT", e)))?;
            let mut stop_signal = None;
            match wait(tid).map_err(bail)? {
                WaitStatus::PtraceEvent(_, sig, _) => {
                    if matches!(
                        sig,
                        Signal::SIGSTOP | Signal::SIGTSTP | Signal::SIGTTIN | Signal::SIGTTOU
                    ) {
                        stop_signal = Some(sig);
                    }
                }
                other => {
                    return Err(bail(InjectError::Failed(format!(
                        "unexpected stop {other:?}"
                    ))));
                }
            }
            // Run to a syscall-entry stop, passing on any signal that arrives.
            let deadline = Instant::now() + SYSCALL_WAIT;
            let mut sig: Option<Signal> = None;
            loop {
                ptrace::syscall(tid, sig).map_err(|e| bail(fail("PTRACE_SYSCALL", e)))?;
                match wait_until(tid, deadline).map_err(bail)? {
                    Some(WaitStatus::PtraceSyscall(_)) => {
                        let regs = ptrace::getregs(tid).map_err(|e| bail(fail("GETREGS", e)))?;
                        let mut saved = regs;
                        saved.rip -= 2;
                        saved.rax = saved.orig_rax;
                        return Ok(Tracee {
                            tid,
                            saved,
                            mode: Mode::SyscallStop { at_exit: false },
                            stop_signal,
                            detached: false,
                        });
                    }
                    Some(WaitStatus::PtraceEvent(..)) => sig = None,
                    Some(WaitStatus::Stopped(_, s)) => sig = Some(s),
                    Some(other) => {
                        return Err(bail(InjectError::Failed(format!(
                            "unexpected stop {other:?}"
                        ))));
                    }
                    None => break,
                }
            }
            // No system call in time: a CPU loop. Interrupt it, use a gadget.
            ptrace::interrupt(tid).map_err(|e| bail(fail("PTRACE_INTERRUPT", e)))?;
            loop {
                match wait(tid).map_err(bail)? {
                    WaitStatus::PtraceEvent(..) => break,
                    WaitStatus::Stopped(_, s) => {
                        // A signal arrived first: let it through, then interrupt again.
                        ptrace::cont(tid, s).map_err(|e| bail(fail("PTRACE_CONT", e)))?;
                        ptrace::interrupt(tid).map_err(|e| bail(fail("PTRACE_INTERRUPT", e)))?;
                    }
                    WaitStatus::PtraceSyscall(_) => {
                        ptrace::cont(tid, None).map_err(|e| bail(fail("PTRACE_CONT", e)))?;
                        ptrace::interrupt(tid).map_err(|e| bail(fail("PTRACE_INTERRUPT", e)))?;
                    }
                    other => {
                        return Err(bail(InjectError::Failed(format!(
                            "unexpected stop {other:?}"
                        ))));
                    }
                }
            }
            let saved = ptrace::getregs(tid).map_err(|e| bail(fail("GETREGS", e)))?;
            let gadget = find_gadget(tid).ok_or_else(|| {
                bail(InjectError::Failed(
                    "no system call instruction found in its code".into(),
                ))
            })?;
            Ok(Tracee {
                tid,
                saved,
                mode: Mode::Gadget(gadget),
                stop_signal,
                detached: false,
            })
        }

        /// Runs system call `nr` with `args` in the thread; the raw return value
        /// (`-4095..=-1` is `-errno`).
        pub fn syscall(&mut self, nr: i64, args: [u64; 6]) -> Result<i64, InjectError> {
            let tid = self.tid;
            match self.mode {
                Mode::SyscallStop { at_exit } => {
                    if at_exit {
                        // Back to the syscall instruction, to a new entry stop.
                        ptrace::setregs(tid, self.saved).map_err(|e| fail("SETREGS", e))?;
                        ptrace::syscall(tid, None).map_err(|e| fail("PTRACE_SYSCALL", e))?;
                        match wait(tid)? {
                            WaitStatus::PtraceSyscall(_) => {}
                            other => {
                                return Err(InjectError::Failed(format!(
                                    "expected a syscall entry, got {other:?}"
                                )));
                            }
                        }
                    }
                    let mut regs = ptrace::getregs(tid).map_err(|e| fail("GETREGS", e))?;
                    regs.orig_rax = nr.cast_unsigned();
                    regs.rax = nr.cast_unsigned();
                    [regs.rdi, regs.rsi, regs.rdx, regs.r10, regs.r8, regs.r9] = args;
                    ptrace::setregs(tid, regs).map_err(|e| fail("SETREGS", e))?;
                    ptrace::syscall(tid, None).map_err(|e| fail("PTRACE_SYSCALL", e))?;
                    self.mode = Mode::SyscallStop { at_exit: true };
                    match wait(tid)? {
                        WaitStatus::PtraceSyscall(_) => {}
                        other => {
                            return Err(InjectError::Failed(format!(
                                "expected a syscall exit, got {other:?}"
                            )));
                        }
                    }
                }
                Mode::Gadget(at) => {
                    let mut regs = self.saved;
                    regs.rip = at;
                    regs.rax = nr.cast_unsigned();
                    regs.orig_rax = u64::MAX; // -1: no syscall to restart
                    [regs.rdi, regs.rsi, regs.rdx, regs.r10, regs.r8, regs.r9] = args;
                    ptrace::setregs(tid, regs).map_err(|e| fail("SETREGS", e))?;
                    ptrace::step(tid, None).map_err(|e| fail("PTRACE_SINGLESTEP", e))?;
                    match wait(tid)? {
                        WaitStatus::Stopped(_, Signal::SIGTRAP) => {}
                        other => {
                            return Err(InjectError::Failed(format!(
                                "expected a single-step trap, got {other:?}"
                            )));
                        }
                    }
                }
            }
            let regs = ptrace::getregs(tid).map_err(|e| fail("GETREGS", e))?;
            Ok(regs.rax.cast_signed())
        }

        /// Writes `bytes` at `addr` in the target (through /proc/PID/mem).
        pub fn write_mem(&self, addr: u64, bytes: &[u8]) -> Result<(), InjectError> {
            let mem = std::fs::OpenOptions::new()
                .write(true)
                .open(format!("/proc/{}/mem", self.tid))
                .map_err(|e| InjectError::Failed(format!("cannot open its memory: {e}")))?;
            mem.write_all_at(bytes, addr)
                .map_err(|e| InjectError::Failed(format!("cannot write its memory: {e}")))
        }

        /// Restores the registers and lets the thread go.
        pub fn detach(mut self) -> Result<(), InjectError> {
            self.release()
        }

        fn release(&mut self) -> Result<(), InjectError> {
            if self.detached {
                return Ok(());
            }
            self.detached = true;
            let restore = match self.mode {
                Mode::SyscallStop { at_exit: false } => {
                    // Nothing injected: the entry stop's registers are still intact.
                    Ok(())
                }
                _ => ptrace::setregs(self.tid, self.saved).map_err(|e| fail("SETREGS", e)),
            };
            let detach = ptrace::detach(self.tid, None).map_err(|e| fail("PTRACE_DETACH", e));
            restore.and(detach)
        }
    }

    impl Drop for Tracee {
        fn drop(&mut self) {
            let _ = self.release();
        }
    }
}

#[cfg(not(target_arch = "x86_64"))]
mod imp {
    use super::{InjectError, Pid};

    /// Not available on this architecture.
    pub struct Tracee {
        /// Never set.
        pub stop_signal: Option<nix::sys::signal::Signal>,
    }

    impl Tracee {
        /// Always refuses: only x86_64 is implemented and tested.
        pub fn attach(_tid: Pid) -> Result<Tracee, InjectError> {
            Err(InjectError::Unsupported)
        }
        /// Unreachable.
        pub fn syscall(&mut self, _nr: i64, _args: [u64; 6]) -> Result<i64, InjectError> {
            Err(InjectError::Unsupported)
        }
        /// Unreachable.
        pub fn write_mem(&self, _addr: u64, _bytes: &[u8]) -> Result<(), InjectError> {
            Err(InjectError::Unsupported)
        }
        /// Unreachable.
        pub fn detach(self) -> Result<(), InjectError> {
            Ok(())
        }
    }
}

pub use imp::Tracee;

/// The `-errno` of a raw system-call return value, if it is one.
#[must_use]
pub fn errno_of(ret: i64) -> Option<Errno> {
    (-4095..=-1)
        .contains(&ret)
        .then(|| Errno::from_raw(i32::try_from(-ret).unwrap_or(5)))
}

#[cfg(test)]
#[cfg(target_arch = "x86_64")]
mod tests {
    use super::*;
    use crate::proc::Status;
    use nix::libc;
    use nix::sys::signal::Signal;

    /// Makes `pid` ignore SIGHUP through a scratch page, like disown does.
    fn ignore_sighup(pid: Pid) -> Result<(), InjectError> {
        let mut t = Tracee::attach(pid)?;
        let prot = u64::from((libc::PROT_READ | libc::PROT_WRITE).cast_unsigned());
        let flags = u64::from((libc::MAP_PRIVATE | libc::MAP_ANONYMOUS).cast_unsigned());
        let page = t.syscall(libc::SYS_mmap, [0, 4096, prot, flags, u64::MAX, 0])?;
        assert!(errno_of(page).is_none(), "mmap: {page}");
        let page = page.cast_unsigned();
        let mut act = [0u8; 32];
        act[..8].copy_from_slice(&1u64.to_ne_bytes()); // SIG_IGN
        t.write_mem(page, &act)?;
        let r = t.syscall(libc::SYS_rt_sigaction, [1, page, 0, 8, 0, 0])?;
        assert_eq!(r, 0);
        assert_eq!(t.syscall(libc::SYS_munmap, [page, 4096, 0, 0, 0, 0])?, 0);
        t.detach()
    }

    fn check(mut child: std::process::Child) {
        let pid = Pid::from_raw(i32::try_from(child.id()).unwrap());
        // Let it start its loop or its sleep.
        std::thread::sleep(Duration::from_millis(100));
        ignore_sighup(pid).unwrap();
        let st = Status::read(pid).unwrap();
        assert!(st.sig_ign.contains(Signal::SIGHUP));
        assert_eq!(st.tracer_pid, 0, "detached");
        nix::sys::signal::kill(pid, Signal::SIGHUP).unwrap();
        std::thread::sleep(Duration::from_millis(100));
        assert!(
            child.try_wait().unwrap().is_none(),
            "SIGHUP is ignored, it lives on"
        );
        child.kill().unwrap();
        child.wait().unwrap();
    }

    #[test]
    fn sleeping_target() {
        check(
            std::process::Command::new("sleep")
                .arg("30")
                .spawn()
                .unwrap(),
        );
    }

    #[test]
    fn cpu_loop_target_uses_a_gadget() {
        check(
            std::process::Command::new("sh")
                .args(["-c", "while :; do :; done"])
                .spawn()
                .unwrap(),
        );
    }
}
