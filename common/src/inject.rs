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
//! A thread that was interrupted in user code (a CPU loop: `orig_rax` is -1
//! at the interrupt's stop) will not reach a syscall stop soon: at once (and
//! after [`SYSCALL_WAIT`] for one in a system call that does not come back),
//! each call runs a `syscall` instruction found in an executable mapping (the
//! `vDSO`, else the program's text) by single-stepping it, with
//! `orig_rax = -1` so that the kernel's restart logic leaves the registers
//! alone; at the end the full saved register set is written back (gdb's
//! method for inferior calls).
//!
//! Many calls in a row are a [`Batch`]: code that makes them, written with its
//! data into pages the target maps for it, run with one `PTRACE_CONT` and
//! stopped with one `PTRACE_INTERRUPT` once it says it is done
//! ([`Tracee::run_code`]).
//!
//! Hard targets, and what is done about them:
//! - Signals. Until the thread is under control, a signal that stops it is
//!   delivered at once (passed on with the resuming request). The first call
//!   injected then blocks every signal in the thread, so that none is taken
//!   from it while it runs our calls; the few that are taken anyway (SIGSTOP,
//!   or one that came before that first call) are kept with their `siginfo`
//!   and queued again by the thread itself (`rt_tgsigqueueinfo`, allowed to a
//!   thread signalling itself) before its mask is restored. The kernel keeps
//!   the signals that arrive meanwhile pending: none is lost, none doubled.
//!   Wait statuses are decoded raw ([`crate::ptrace`]): real-time ones too.
//! - Deadlines. No wait is unbounded: a thread that does not stop within
//!   [`STOP_WAIT`] (in `vfork`, or in another uninterruptible sleep) is
//!   reported as [`InjectError::Stuck`], untouched; a call of ours that does not
//!   return within [`CALL_WAIT`] as [`InjectError::CallStuck`]. The caller must
//!   trace each target from a thread of its own and end that thread then: the
//!   kernel releases a tracee when its tracing thread exits.
//! - Code. Only 64-bit code is run: the stop's code segment must be the 64-bit
//!   user one and, at a syscall stop, `PTRACE_GET_SYSCALL_INFO` must say
//!   `AUDIT_ARCH_X86_64` (a 64-bit program inside an `int 0x80` call would
//!   read our numbers as i386 ones: mmap, 9, is i386 `link`). Anything else
//!   is [`InjectError::NotX86_64`], checked before any injection.
//!
//! Only general-purpose registers are touched; memory is written only in a
//! scratch page the target maps for us ([`Scratch`], with one typed function
//! per call that needs memory; [`Tracee::dup3`] and the other calls need
//! none), and 16 bytes (the signal masks) and a `siginfo` below its stack's
//! red zone, where the kernel itself would put a signal frame. Whatever
//! fails, the registers are restored and the thread detached (also on drop). `x86_64` only: on other architectures
//! [`Tracee::attach`] refuses with [`InjectError::Unsupported`].

use std::fmt;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::libc;
use nix::unistd::Pid;

pub use crate::ptrace::STOP_WAIT;

/// How long to wait for a thread to reach a system call before using a gadget.
pub const SYSCALL_WAIT: Duration = Duration::from_millis(500);

/// How long one injected system call may take.
pub const CALL_WAIT: Duration = Duration::from_secs(10);

/// The size of the kernel's signal set (`_NSIG / 8`: 64 signals, one bit
/// each), the last argument of `rt_sigaction` and `rt_sigprocmask`; glibc's
/// `sigset_t` is 128 bytes and the kernel refuses that size.
pub const SIGSET_SIZE: u64 = std::mem::size_of::<u64>() as u64;

/// Why an injection could not be done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InjectError {
    /// This architecture is not supported.
    Unsupported,
    /// The thread is not running `x86_64` code (a 32-bit program, or in a 32-bit call).
    NotX86_64,
    /// `ptrace` refused (no permission, Yama, already traced).
    Attach(Errno),
    /// The process exited meanwhile.
    Gone,
    /// It did not stop within [`STOP_WAIT`]: nothing was done.
    Stuck,
    /// A call injected in it did not return within [`CALL_WAIT`]: it is let go in that call.
    CallStuck,
    /// A system call made in the process failed there (`what failed in the process: Strerror`).
    InProcess {
        /// The call, with its operand: `rt_sigaction`, `opening 'FILE'`.
        what: String,
        /// The errno it returned.
        errno: Errno,
    },
    /// Something else failed; the text says what.
    Failed(String),
}

impl InjectError {
    /// The exit status this error means (as uutils' `UError::code`): every
    /// failure to act on one process is a plain failure, 1.
    #[must_use]
    pub fn status(&self) -> crate::exit::Status {
        crate::exit::FAILURE
    }
}

impl From<InjectError> for crate::Error {
    fn from(e: InjectError) -> Self {
        let status = e.status();
        match e {
            InjectError::Attach(errno) => crate::Error::sys("cannot trace it", errno, status),
            InjectError::InProcess { what, errno } => {
                crate::Error::sys(format!("{what} failed in the process"), errno, status)
            }
            e => crate::Error::failed(e.to_string(), status),
        }
    }
}

impl fmt::Display for InjectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InjectError::Unsupported => {
                f.write_str("this architecture is not supported (x86_64 only)")
            }
            InjectError::NotX86_64 => f.write_str(
                "it is not running x86_64 code (a 32-bit program, or a 32-bit system call): x86_64 processes only",
            ),
            InjectError::Attach(e) => write!(f, "cannot trace it: {}", crate::diag::strerror(*e)),
            InjectError::Gone => f.write_str("it exited"),
            InjectError::Stuck => write!(
                f,
                "it did not stop within {} s (it is in uninterruptible sleep: in vfork, or waiting for a device)",
                STOP_WAIT.as_secs()
            ),
            InjectError::CallStuck => write!(
                f,
                "a system call made in it did not return within {} s; it was let go inside that call",
                CALL_WAIT.as_secs()
            ),
            InjectError::InProcess { what, errno } => write!(
                f,
                "{what} failed in the process: {}",
                crate::diag::strerror(*errno)
            ),
            InjectError::Failed(why) => f.write_str(why),
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod imp {
    use std::os::unix::fs::FileExt;

    use nix::libc::{self, user_regs_struct};
    use nix::sys::ptrace;
    use nix::sys::signal::Signal;

    use super::{
        CALL_WAIT, Duration, Errno, InjectError, Instant, Pid, SIGSET_SIZE, STOP_WAIT, SYSCALL_WAIT,
    };
    use crate::ptrace::{Stop, resume, wait_stop};

    /// The code segment of 64-bit user code on `x86_64` Linux (`__USER_CS`).
    const USER64_CS: u64 = 0x33;
    /// `AUDIT_ARCH_X86_64`, as `PTRACE_GET_SYSCALL_INFO` reports it.
    const AUDIT_ARCH_X86_64: u32 = 0xC000_003E;
    /// What an interrupted call returns to a tracer (`-ERESTARTSYS` and its kin):
    /// the call is simply run again.
    const RESTART: [i64; 4] = [-512, -513, -514, -516];
    /// Where the signal masks go, below the stack pointer (past the 128-byte red zone).
    const MASKS_BELOW: u64 = 512;
    /// Where a `siginfo` to queue again goes, below the stack pointer.
    const SIGINFO_BELOW: u64 = 1024;
    /// Room for `struct ptrace_syscall_info` (88 bytes in Linux 6.x; the
    /// kernel writes at most the size given, and says how much it had).
    const SYSCALL_INFO_WORDS: usize = 12;
    /// How much of one executable mapping is searched for a `syscall`
    /// instruction (4 MiB): the vDSO has one in its first page, a program's
    /// text within its first functions; a bound keeps a huge mapping from
    /// costing a huge read.
    const GADGET_SCAN_BYTES: u64 = 1 << 22;
    /// The signals a fault in injected code raises.
    const FAULTS: [i32; 5] = [
        libc::SIGSEGV,
        libc::SIGBUS,
        libc::SIGILL,
        libc::SIGFPE,
        libc::SIGTRAP,
    ];
    /// How the polls of [`Tracee::run_code`] back off, as
    /// [`crate::ptrace::wait_stop`]'s.
    const POLL_STEP: Duration = Duration::from_micros(20);
    const POLL_MAX: Duration = Duration::from_millis(1);
    /// How many times an injected call interrupted by a signal is run again:
    /// every signal is blocked after the first call, so one retry is the
    /// rule; the bound only keeps a misbehaving kernel from looping us.
    const MAX_RESTARTS: u32 = 8;

    /// How calls are executed.
    enum Mode {
        /// At syscall stops, reusing the thread's own instruction.
        SyscallStop { at_exit: bool },
        /// By single-stepping a `syscall` instruction at this address.
        Gadget(u64),
    }

    /// Where the thread's own signal mask was kept while every signal is
    /// blocked.
    #[derive(Clone, Copy)]
    enum Mask {
        /// Here (`PTRACE_GETSIGMASK`), to be set again by `PTRACE_SETSIGMASK`.
        Ptrace(u64),
        /// In its memory at this address, by the injected `rt_sigprocmask`.
        InTarget(u64),
    }

    /// `PTRACE_GETSIGMASK`: the thread's blocked signals.
    fn get_sigmask(tid: Pid) -> Result<u64, Errno> {
        let mut mask = 0u64;
        // SAFETY: the kernel writes `addr` bytes (8, its sigset size) at
        // `data`, which points to `mask`, a u64.
        let r = unsafe {
            libc::ptrace(
                libc::PTRACE_GETSIGMASK,
                tid.as_raw(),
                std::mem::size_of::<u64>() as *mut libc::c_void,
                (&raw mut mask).cast::<libc::c_void>(),
            )
        };
        Errno::result(r).map(|_| mask)
    }

    /// `PTRACE_SETSIGMASK`: sets the thread's blocked signals (SIGKILL and
    /// SIGSTOP never are).
    fn set_sigmask(tid: Pid, mask: u64) -> Result<(), Errno> {
        // SAFETY: the kernel reads `addr` bytes (8) at `data`, which points
        // to `mask`, a u64.
        let r = unsafe {
            libc::ptrace(
                libc::PTRACE_SETSIGMASK,
                tid.as_raw(),
                std::mem::size_of::<u64>() as *mut libc::c_void,
                (&raw const mask).cast::<libc::c_void>(),
            )
        };
        Errno::result(r).map(drop)
    }

    /// A thread under our control.
    pub struct Tracee {
        tid: Pid,
        /// Its process, for `rt_tgsigqueueinfo`.
        tgid: Pid,
        /// Registers to restore (syscall-stop mode: ip rewound, rax = original call).
        saved: user_regs_struct,
        mode: Mode,
        /// The signal that had stopped it, if it was in a job-control stop.
        pub stop_signal: Option<Signal>,
        /// Signals taken from it while it was held: queued again before it goes.
        taken: Vec<libc::siginfo_t>,
        /// A SIGSTOP taken while it was held: sent again once it is let go.
        stop_taken: bool,
        /// Where its own signal mask was saved, once all signals were blocked.
        mask: Option<Mask>,
        detached: bool,
    }

    /// `what: Strerror` of an I/O error (never Rust's `(os error N)` text).
    fn io_failed(what: &str, e: &std::io::Error) -> InjectError {
        fail(what, e.raw_os_error().map_or(Errno::EIO, Errno::from_raw))
    }

    fn fail(what: &str, e: Errno) -> InjectError {
        if e == Errno::ESRCH {
            InjectError::Gone
        } else {
            InjectError::Failed(format!("{what}: {}", crate::diag::strerror(e)))
        }
    }

    /// The next stop of `tid`, within `limit` (else `late`).
    fn wait(tid: Pid, limit: Duration, late: InjectError) -> Result<Stop, InjectError> {
        match wait_stop(tid, Instant::now() + limit) {
            Ok(Some(Stop::Gone)) => Err(InjectError::Gone),
            Ok(Some(s)) => Ok(s),
            Ok(None) => Err(late),
            Err(e) => Err(InjectError::Failed(format!(
                "waitpid: {}",
                crate::diag::strerror(e)
            ))),
        }
    }

    fn go(request: libc::c_uint, tid: Pid, sig: i32) -> Result<(), InjectError> {
        resume(request, tid, sig).map_err(|e| {
            fail(
                match request {
                    libc::PTRACE_CONT => "PTRACE_CONT",
                    libc::PTRACE_SYSCALL => "PTRACE_SYSCALL",
                    libc::PTRACE_SINGLESTEP => "PTRACE_SINGLESTEP",
                    _ => "PTRACE_DETACH",
                },
                e,
            )
        })
    }

    /// Refuses anything but 64-bit code: the code segment, and at a syscall
    /// stop the architecture of the call itself.
    fn check_abi(tid: Pid, regs: &user_regs_struct, at_syscall: bool) -> Result<(), InjectError> {
        if regs.cs != USER64_CS {
            return Err(InjectError::NotX86_64);
        }
        if at_syscall {
            let mut info = [0u64; SYSCALL_INFO_WORDS];
            // SAFETY: PTRACE_GET_SYSCALL_INFO writes at most `addr` bytes (the
            // size of `info`) at `data`, which points to `info`.
            let n = unsafe {
                libc::ptrace(
                    libc::PTRACE_GET_SYSCALL_INFO,
                    tid.as_raw(),
                    std::mem::size_of_val(&info) as *mut libc::c_void,
                    info.as_mut_ptr().cast::<libc::c_void>(),
                )
            };
            // Bytes 4-7: arch. Kernels before 5.3 lack the request (EIO): the
            // code segment alone decides there.
            if n >= 8 && u32::try_from(info[0] >> 32).ok() != Some(AUDIT_ARCH_X86_64) {
                return Err(InjectError::NotX86_64);
            }
        }
        Ok(())
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
            let len = usize::try_from((b - a).min(GADGET_SCAN_BYTES)).ok()?;
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

    fn job_stop(sig: i32) -> Option<Signal> {
        Signal::try_from(sig).ok().filter(|s| {
            matches!(
                s,
                Signal::SIGSTOP | Signal::SIGTSTP | Signal::SIGTTIN | Signal::SIGTTOU
            )
        })
    }

    impl Tracee {
        /// Seizes thread `tid` and brings it under control. The calling thread
        /// is its tracer: use it alone for this tracee, and end it if this
        /// fails with [`InjectError::Stuck`] or [`InjectError::CallStuck`].
        pub fn attach(tid: Pid) -> Result<Tracee, InjectError> {
            let status = crate::proc::Status::read(tid).ok();
            let tgid = status.as_ref().map_or(tid, |s| Pid::from_raw(s.tgid));
            // A single step is a forced SIGTRAP, which resets a blocked
            // SIGTRAP's handler (force_sig_info_to_task): a process with its
            // own keeps the old way, a gadget only after [`SYSCALL_WAIT`].
            let trap_is_default = status.is_some_and(|s| {
                s.disposition(Signal::SIGTRAP) == crate::signal::Disposition::Default
            });
            ptrace::seize(tid, ptrace::Options::PTRACE_O_TRACESYSGOOD).map_err(|e| match e {
                Errno::ESRCH => InjectError::Gone,
                e => InjectError::Attach(e),
            })?;
            // From here on, every error path detaches (the Drop of a half-built
            // Tracee cannot, so do it by hand). A thread that is not stopped
            // cannot be detached: the end of the tracing thread releases it.
            let bail = |e: InjectError| {
                let _ = resume(libc::PTRACE_DETACH, tid, 0);
                e
            };
            ptrace::interrupt(tid).map_err(|e| bail(fail("PTRACE_INTERRUPT", e)))?;
            // The interrupt's stop; a signal on its way in first is delivered.
            let stop_signal = loop {
                match wait(tid, STOP_WAIT, InjectError::Stuck).map_err(bail)? {
                    Stop::Event(_, sig) => break job_stop(sig),
                    Stop::Signal(s) => go(libc::PTRACE_CONT, tid, s).map_err(bail)?,
                    Stop::Syscall | Stop::Gone => go(libc::PTRACE_CONT, tid, 0).map_err(bail)?,
                }
            };
            // Stopped in user code (a CPU loop: the kernel marks every entry
            // that is not a system call with `orig_rax = -1`): no system call
            // will come, so use a gadget at once rather than wait for one.
            let regs = ptrace::getregs(tid).map_err(|e| bail(fail("GETREGS", e)))?;
            if regs.orig_rax.cast_signed() < 0 && trap_is_default {
                return Tracee::with_gadget(tid, tgid, regs, stop_signal).map_err(bail);
            }
            // In a system call: it restarts at once, and its entry stop is
            // where we take over. Run to it, passing on any signal that arrives.
            let deadline = Instant::now() + SYSCALL_WAIT;
            let mut sig = 0;
            loop {
                go(libc::PTRACE_SYSCALL, tid, sig).map_err(bail)?;
                sig = 0;
                match wait_stop(tid, deadline) {
                    Ok(Some(Stop::Syscall)) => {
                        let regs = ptrace::getregs(tid).map_err(|e| bail(fail("GETREGS", e)))?;
                        check_abi(tid, &regs, true).map_err(bail)?;
                        let mut saved = regs;
                        saved.rip -= 2;
                        saved.rax = saved.orig_rax;
                        return Tracee::new(
                            tid,
                            tgid,
                            saved,
                            Mode::SyscallStop { at_exit: false },
                            stop_signal,
                            true,
                        );
                    }
                    Ok(Some(Stop::Event(..))) => {}
                    Ok(Some(Stop::Signal(s))) => sig = s,
                    Ok(Some(Stop::Gone)) => return Err(InjectError::Gone),
                    Ok(None) => break,
                    Err(e) => return Err(bail(fail("waitpid", e))),
                }
            }
            // No system call in time: a CPU loop. Interrupt it, use a gadget.
            ptrace::interrupt(tid).map_err(|e| bail(fail("PTRACE_INTERRUPT", e)))?;
            loop {
                match wait(tid, STOP_WAIT, InjectError::Stuck).map_err(bail)? {
                    Stop::Event(..) => break,
                    Stop::Signal(s) => {
                        // A signal arrived first: let it through, then interrupt again.
                        go(libc::PTRACE_CONT, tid, s).map_err(bail)?;
                        ptrace::interrupt(tid).map_err(|e| bail(fail("PTRACE_INTERRUPT", e)))?;
                    }
                    Stop::Syscall | Stop::Gone => {
                        go(libc::PTRACE_CONT, tid, 0).map_err(bail)?;
                        ptrace::interrupt(tid).map_err(|e| bail(fail("PTRACE_INTERRUPT", e)))?;
                    }
                }
            }
            let saved = ptrace::getregs(tid).map_err(|e| bail(fail("GETREGS", e)))?;
            Tracee::with_gadget(tid, tgid, saved, stop_signal).map_err(bail)
        }

        /// The tracee in gadget mode, stopped outside any system call with
        /// registers `saved`. On error the caller detaches it.
        fn with_gadget(
            tid: Pid,
            tgid: Pid,
            saved: user_regs_struct,
            stop_signal: Option<Signal>,
        ) -> Result<Tracee, InjectError> {
            check_abi(tid, &saved, false)?;
            let gadget = find_gadget(tid).ok_or_else(|| {
                InjectError::Failed("no system call instruction found in its code".into())
            })?;
            // Outside a system call (`orig_rax` -1), no temporary mask of
            // ppoll's or sigsuspend's is waiting to be restored.
            let by_ptrace = saved.orig_rax.cast_signed() < 0;
            Tracee::new(
                tid,
                tgid,
                saved,
                Mode::Gadget(gadget),
                stop_signal,
                by_ptrace,
            )
        }

        /// The tracee, with every signal blocked in it (its own mask saved).
        ///
        /// With `by_ptrace` (at a syscall-entry stop, or outside any system
        /// call) the mask is swapped by ptrace itself, before the thread runs
        /// anything: a stream of signals cannot keep a first injected call
        /// from running (each would stop it before a single step), and it
        /// costs no stop. Otherwise (a thread that may be inside ppoll or
        /// sigsuspend, whose mask to restore `PTRACE_SETSIGMASK` would
        /// forget) the first injected call blocks them.
        fn new(
            tid: Pid,
            tgid: Pid,
            saved: user_regs_struct,
            mode: Mode,
            stop_signal: Option<Signal>,
            by_ptrace: bool,
        ) -> Result<Tracee, InjectError> {
            let mut t = Tracee {
                tid,
                tgid,
                saved,
                mode,
                stop_signal,
                taken: Vec::new(),
                stop_taken: false,
                mask: None,
                detached: false,
            };
            if by_ptrace {
                let old = get_sigmask(tid).map_err(|e| fail("PTRACE_GETSIGMASK", e))?;
                set_sigmask(tid, u64::MAX).map_err(|e| fail("PTRACE_SETSIGMASK", e))?;
                t.mask = Some(Mask::Ptrace(old));
                return Ok(t);
            }
            // On error, the drop restores and detaches.
            let at = (t.saved.rsp.wrapping_sub(MASKS_BELOW)) & !15;
            t.write_mem(at, &u64::MAX.to_ne_bytes())?;
            let r = t.syscall(
                libc::SYS_rt_sigprocmask,
                [
                    libc::SIG_SETMASK as u64,
                    at,
                    at + SIGSET_SIZE,
                    SIGSET_SIZE,
                    0,
                    0,
                ],
            )?;
            if let Some(e) = super::errno_of(r) {
                return Err(fail("rt_sigprocmask failed in the process", e));
            }
            t.mask = Some(Mask::InTarget(at + SIGSET_SIZE));
            Ok(t)
        }

        /// Keeps signal `sig`, taken from the thread at a signal-delivery-stop.
        fn take(&mut self, sig: i32) {
            if sig == libc::SIGSTOP {
                self.stop_taken = true;
            } else if let Ok(info) = ptrace::getsiginfo(self.tid) {
                self.taken.push(info);
            }
        }

        /// Resumes with `request` until a stop that is not a signal on its way
        /// in (those are taken, to be queued again).
        fn run_to(&mut self, request: libc::c_uint) -> Result<Stop, InjectError> {
            go(request, self.tid, 0)?;
            loop {
                match wait(self.tid, CALL_WAIT, InjectError::CallStuck)? {
                    Stop::Signal(s)
                        if request != libc::PTRACE_SINGLESTEP || self.stepped_back() =>
                    {
                        self.take(s);
                        go(request, self.tid, 0)?;
                    }
                    Stop::Event(..) => go(request, self.tid, 0)?,
                    stop => return Ok(stop),
                }
            }
        }

        /// In gadget mode: whether the thread is still before the instruction
        /// (a signal stopped it before the step).
        fn stepped_back(&self) -> bool {
            match self.mode {
                Mode::Gadget(at) => ptrace::getregs(self.tid).is_ok_and(|r| r.rip == at),
                Mode::SyscallStop { .. } => false,
            }
        }

        /// Runs system call `nr` with `args` in the thread; the raw return value
        /// (`-4095..=-1` is `-errno`).
        pub fn syscall(&mut self, nr: i64, args: [u64; 6]) -> Result<i64, InjectError> {
            let mut tries = 0;
            loop {
                let r = self.syscall_once(nr, args)?;
                tries += 1;
                // Interrupted by a signal (taken or blocked by now): run it again.
                if !RESTART.contains(&r) || tries == MAX_RESTARTS {
                    return Ok(r);
                }
            }
        }

        fn syscall_once(&mut self, nr: i64, args: [u64; 6]) -> Result<i64, InjectError> {
            let tid = self.tid;
            match self.mode {
                Mode::SyscallStop { at_exit } => {
                    if at_exit {
                        // Back to the syscall instruction, to a new entry stop.
                        ptrace::setregs(tid, self.saved).map_err(|e| fail("SETREGS", e))?;
                        match self.run_to(libc::PTRACE_SYSCALL)? {
                            Stop::Syscall => {}
                            other => {
                                return Err(InjectError::Failed(format!(
                                    "expected a syscall entry, got {other}"
                                )));
                            }
                        }
                    }
                    let mut regs = ptrace::getregs(tid).map_err(|e| fail("GETREGS", e))?;
                    regs.orig_rax = nr.cast_unsigned();
                    regs.rax = nr.cast_unsigned();
                    [regs.rdi, regs.rsi, regs.rdx, regs.r10, regs.r8, regs.r9] = args;
                    ptrace::setregs(tid, regs).map_err(|e| fail("SETREGS", e))?;
                    self.mode = Mode::SyscallStop { at_exit: true };
                    match self.run_to(libc::PTRACE_SYSCALL)? {
                        Stop::Syscall => {}
                        other => {
                            return Err(InjectError::Failed(format!(
                                "expected a syscall exit, got {other}"
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
                    match self.run_to(libc::PTRACE_SINGLESTEP)? {
                        Stop::Signal(libc::SIGTRAP) => {}
                        other => {
                            return Err(InjectError::Failed(format!(
                                "expected a single-step trap, got {other}"
                            )));
                        }
                    }
                }
            }
            let regs = ptrace::getregs(tid).map_err(|e| fail("GETREGS", e))?;
            Ok(regs.rax.cast_signed())
        }

        /// Runs the code at `entry` in the thread until the word at `done` is
        /// not zero; `code` is the range it lives in (a fault there is ours).
        ///
        /// The code ends by setting `done` and sleeping in `pause` (every
        /// signal is blocked): the thread is then interrupted
        /// (`PTRACE_INTERRUPT`), which leaves no trace in it, where a trap
        /// (`int3`) would be a forced SIGTRAP that resets a blocked SIGTRAP's
        /// handler. Signals taken meanwhile are kept, as in [`Self::syscall`].
        pub fn run_code(
            &mut self,
            entry: u64,
            done: u64,
            code: std::ops::Range<u64>,
        ) -> Result<(), InjectError> {
            let tid = self.tid;
            let mut regs = self.saved;
            regs.rip = entry;
            regs.orig_rax = u64::MAX; // -1: no system call to restart
            ptrace::setregs(tid, regs).map_err(|e| fail("SETREGS", e))?;
            if let Mode::SyscallStop { .. } = self.mode {
                // The next call goes back to the thread's own instruction.
                self.mode = Mode::SyscallStop { at_exit: true };
            }
            let mem = std::fs::File::open(format!("/proc/{tid}/mem"))
                .map_err(|e| io_failed("cannot open its memory", &e))?;
            let finished = || {
                let mut word = [0u8; 8];
                mem.read_exact_at(&mut word, done)
                    .map(|()| word != [0; 8])
                    .map_err(|e| io_failed("cannot read its memory", &e))
            };
            go(libc::PTRACE_CONT, tid, 0)?;
            let deadline = Instant::now() + CALL_WAIT;
            let mut pause = Duration::ZERO;
            loop {
                match wait_stop(tid, Instant::now()) {
                    Ok(None) => {}
                    Ok(Some(Stop::Gone)) => return Err(InjectError::Gone),
                    Ok(Some(Stop::Signal(s))) => {
                        let at = ptrace::getregs(tid).map_or(0, |r| r.rip);
                        if FAULTS.contains(&s) && code.contains(&at) {
                            return Err(InjectError::Failed(format!(
                                "the injected code failed with signal {s}"
                            )));
                        }
                        self.take(s);
                        go(libc::PTRACE_CONT, tid, 0)?;
                    }
                    Ok(Some(_)) => go(libc::PTRACE_CONT, tid, 0)?,
                    Err(e) => return Err(fail("waitpid", e)),
                }
                if finished()? {
                    break;
                }
                if Instant::now() >= deadline {
                    return Err(InjectError::CallStuck);
                }
                if pause.is_zero() {
                    std::thread::yield_now();
                } else {
                    std::thread::sleep(pause);
                }
                pause = (pause + POLL_STEP).min(POLL_MAX);
            }
            ptrace::interrupt(tid).map_err(|e| fail("PTRACE_INTERRUPT", e))?;
            loop {
                match wait(tid, STOP_WAIT, InjectError::Stuck)? {
                    Stop::Event(..) => return Ok(()),
                    Stop::Signal(s) => {
                        self.take(s);
                        go(libc::PTRACE_CONT, tid, 0)?;
                    }
                    _ => go(libc::PTRACE_CONT, tid, 0)?,
                }
            }
        }

        /// Reads `buf.len()` bytes at `addr` in the target (through /proc/PID/mem).
        pub fn read_mem(&self, addr: u64, buf: &mut [u8]) -> Result<(), InjectError> {
            let mem = std::fs::File::open(format!("/proc/{}/mem", self.tid))
                .map_err(|e| io_failed("cannot open its memory", &e))?;
            mem.read_exact_at(buf, addr)
                .map_err(|e| io_failed("cannot read its memory", &e))
        }

        /// Writes `bytes` at `addr` in the target (through /proc/PID/mem).
        pub fn write_mem(&self, addr: u64, bytes: &[u8]) -> Result<(), InjectError> {
            let mem = std::fs::OpenOptions::new()
                .write(true)
                .open(format!("/proc/{}/mem", self.tid))
                .map_err(|e| io_failed("cannot open its memory", &e))?;
            mem.write_all_at(bytes, addr)
                .map_err(|e| io_failed("cannot write its memory", &e))
        }

        /// Restores the registers and lets the thread go.
        pub fn detach(mut self) -> Result<(), InjectError> {
            self.release()
        }

        /// Queues again, by the thread itself, the signals taken from it.
        fn requeue(&mut self) -> Result<(), InjectError> {
            let at = (self.saved.rsp.wrapping_sub(SIGINFO_BELOW)) & !15;
            for info in std::mem::take(&mut self.taken) {
                // SAFETY: siginfo_t is plain old data; its bytes are read, as they are.
                let bytes = unsafe {
                    std::slice::from_raw_parts(
                        (&raw const info).cast::<u8>(),
                        std::mem::size_of::<libc::siginfo_t>(),
                    )
                };
                self.write_mem(at, bytes)?;
                let (tgid, tid) = (self.tgid.as_raw(), self.tid.as_raw());
                let r = self.syscall(
                    libc::SYS_rt_tgsigqueueinfo,
                    [
                        u64::from(tgid.cast_unsigned()),
                        u64::from(tid.cast_unsigned()),
                        u64::from(info.si_signo.cast_unsigned()),
                        at,
                        0,
                        0,
                    ],
                )?;
                if let Some(e) = super::errno_of(r) {
                    return Err(fail("rt_tgsigqueueinfo failed in the process", e));
                }
            }
            Ok(())
        }

        fn release(&mut self) -> Result<(), InjectError> {
            if self.detached {
                return Ok(());
            }
            self.detached = true;
            // The signals taken are queued while all are still blocked (else the
            // thread would take them at once, and we again), then its mask restored
            // by the last call: what is pending is delivered after we are gone.
            let mut ends = Ok(());
            if let Some(mask) = self.mask {
                ends = self.requeue();
                let restored = match mask {
                    Mask::Ptrace(old) => {
                        set_sigmask(self.tid, old).map_err(|e| fail("PTRACE_SETSIGMASK", e))
                    }
                    Mask::InTarget(at) => self
                        .syscall(
                            libc::SYS_rt_sigprocmask,
                            [libc::SIG_SETMASK as u64, at, 0, SIGSET_SIZE, 0, 0],
                        )
                        .and_then(|r| match super::errno_of(r) {
                            Some(e) => Err(fail("rt_sigprocmask failed in the process", e)),
                            None => Ok(()),
                        }),
                };
                ends = ends.and(restored);
            }
            let restore = match self.mode {
                Mode::SyscallStop { at_exit: false } => {
                    // Nothing injected: the entry stop's registers are still intact.
                    Ok(())
                }
                _ => ptrace::setregs(self.tid, self.saved).map_err(|e| fail("SETREGS", e)),
            };
            let detach = go(libc::PTRACE_DETACH, self.tid, 0);
            if self.stop_taken {
                // SAFETY: tgkill(2) with plain integers: the thread we held, SIGSTOP.
                unsafe {
                    libc::syscall(
                        libc::SYS_tgkill,
                        self.tgid.as_raw(),
                        self.tid.as_raw(),
                        libc::SIGSTOP,
                    );
                }
            }
            ends.and(restore).and(detach)
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
        pub fn run_code(
            &mut self,
            _entry: u64,
            _done: u64,
            _code: std::ops::Range<u64>,
        ) -> Result<(), InjectError> {
            Err(InjectError::Unsupported)
        }
        /// Unreachable.
        pub fn read_mem(&self, _addr: u64, _buf: &mut [u8]) -> Result<(), InjectError> {
            Err(InjectError::Unsupported)
        }
        /// Unreachable.
        pub fn detach(self) -> Result<(), InjectError> {
            Ok(())
        }
    }
}

pub use imp::Tracee;

/// The kernel's `struct sigaction`, as `rt_sigaction(2)` reads it on
/// `x86_64` (`struct kernel_sigaction`). glibc's `libc::sigaction` is not
/// it: its 128-byte `sa_mask` comes second, and `sigaction(3)` translates.
/// The target gets exactly the kernel's shape, field by field.
/// On `x86_64` each field is 64 bits wide.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
struct KernelSigaction {
    /// `SIG_IGN`, `SIG_DFL` or a handler's address.
    handler: u64,
    /// `SA_*`.
    flags: u64,
    /// With `SA_RESTORER` only.
    restorer: u64,
    /// The signals blocked while the handler runs.
    mask: u64,
}

impl KernelSigaction {
    /// Its bytes, as the target's memory is to hold them.
    fn to_bytes(self) -> [u8; std::mem::size_of::<KernelSigaction>()] {
        let mut out = [0u8; std::mem::size_of::<KernelSigaction>()];
        let fields = [self.handler, self.flags, self.restorer, self.mask];
        for (chunk, field) in out.chunks_exact_mut(size_of::<u64>()).zip(fields) {
            chunk.copy_from_slice(&field.to_ne_bytes());
        }
        out
    }
}

/// `AT_FDCWD` as a system-call argument (its bit pattern, sign-extended).
const AT_FDCWD: u64 = (libc::AT_FDCWD as i64).cast_unsigned();

/// What the scratch page holds: one slot per kind of argument our calls
/// pass by address. Calls run one at a time, so one slot of each is enough.
#[derive(Debug, Clone, Copy)]
enum Slot {
    /// A [`KernelSigaction`], for `rt_sigaction`.
    Sigaction,
    /// A NUL-terminated path, for `openat`: the rest of the page.
    Path,
}

impl Slot {
    /// Its offset in the page: the sigaction first, the path after it
    /// (16-byte aligned, as the kernel's copies like).
    const fn offset(self) -> u64 {
        match self {
            Slot::Sigaction => 0,
            Slot::Path => (std::mem::size_of::<KernelSigaction>() as u64).next_multiple_of(16),
        }
    }
}

/// The page size of this system (`sysconf(_SC_PAGESIZE)`), which the
/// target shares; 4096 if it cannot be had.
fn page_size() -> u64 {
    // SAFETY: sysconf(3) with a valid name reads a constant; no memory is touched.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(n).ok().filter(|&n| n > 0).unwrap_or(4096)
}

/// A page of memory mapped in the target for the arguments of our calls
/// (reptyr's scratch page): mapped at the real page size, written only
/// through its typed slots, unmapped by [`Scratch::release`] or on drop.
/// It holds the tracee for as long as it lives; the tracee's own calls
/// are reached through it.
pub struct Scratch<'t> {
    tracee: &'t mut Tracee,
    addr: u64,
    len: u64,
    mapped: bool,
}

impl<'t> Scratch<'t> {
    /// Maps a private anonymous page in the target.
    ///
    /// # Errors
    /// The tracing failure, or `mmap`'s errno in the process.
    pub fn map(tracee: &'t mut Tracee) -> Result<Scratch<'t>, InjectError> {
        let len = page_size();
        let prot = u64::from((libc::PROT_READ | libc::PROT_WRITE).cast_unsigned());
        let flags = u64::from((libc::MAP_PRIVATE | libc::MAP_ANONYMOUS).cast_unsigned());
        // fd -1 (all bits set), offset 0: anonymous memory.
        let addr = tracee.call("mmap", libc::SYS_mmap, [0, len, prot, flags, u64::MAX, 0])?;
        Ok(Scratch {
            tracee,
            addr: addr.cast_unsigned(),
            len,
            mapped: true,
        })
    }

    /// The tracee, for the calls that take no memory.
    pub fn tracee(&mut self) -> &mut Tracee {
        self.tracee
    }

    /// Whether `len` bytes fit in `slot`.
    fn fits(&self, slot: Slot, len: usize) -> bool {
        u64::try_from(len).is_ok_and(|len| slot.offset() + len <= self.len)
    }

    /// Writes `bytes` into `slot`; its address in the target.
    fn put(&mut self, slot: Slot, bytes: &[u8]) -> Result<u64, InjectError> {
        if !self.fits(slot, bytes.len()) {
            return Err(InjectError::Failed(format!(
                "an argument does not fit in the scratch page ({} bytes)",
                self.len
            )));
        }
        let at = slot.offset();
        self.tracee.write_mem(self.addr + at, bytes)?;
        Ok(self.addr + at)
    }

    /// `rt_sigaction(SIGHUP, {SIG_IGN}, NULL)`: the process ignores SIGHUP.
    ///
    /// # Errors
    /// The tracing failure, or `rt_sigaction`'s errno in the process.
    pub fn ignore_sighup(&mut self) -> Result<(), InjectError> {
        let act = KernelSigaction {
            handler: libc::SIG_IGN as u64,
            flags: 0,
            restorer: 0,
            mask: 0,
        };
        let at = self.put(Slot::Sigaction, &act.to_bytes())?;
        let signo = u64::from(libc::SIGHUP.cast_unsigned());
        self.tracee.call(
            "rt_sigaction",
            libc::SYS_rt_sigaction,
            [signo, at, 0, SIGSET_SIZE, 0, 0],
        )?;
        Ok(())
    }

    /// `openat(AT_FDCWD, path, flags, mode)` in the process: its new descriptor.
    ///
    /// # Errors
    /// The tracing failure, or `openat`'s errno in the process (as `opening
    /// 'PATH'`; `ENAMETOOLONG` for a path longer than the page).
    pub fn open_at(&mut self, path: &Path, flags: OFlag, mode: u32) -> Result<i32, InjectError> {
        let what = format!("opening {}", crate::quote::quote(path.as_os_str()));
        let mut bytes = path.as_os_str().as_bytes().to_vec();
        bytes.push(0);
        if !self.fits(Slot::Path, bytes.len()) {
            // What the kernel would say of a path this long (a page is PATH_MAX).
            return Err(InjectError::InProcess {
                what,
                errno: Errno::ENAMETOOLONG,
            });
        }
        let at = self.put(Slot::Path, &bytes)?;
        let flags = u64::from(flags.bits().cast_unsigned());
        let fd = self.tracee.call(
            &what,
            libc::SYS_openat,
            [AT_FDCWD, at, flags, u64::from(mode), 0, 0],
        )?;
        i32::try_from(fd).map_err(|_| InjectError::Failed(format!("{what}: bad descriptor {fd}")))
    }

    /// Unmaps the page.
    ///
    /// # Errors
    /// The tracing failure, or `munmap`'s errno in the process.
    pub fn release(mut self) -> Result<(), InjectError> {
        self.unmap()
    }

    fn unmap(&mut self) -> Result<(), InjectError> {
        if !self.mapped {
            return Ok(());
        }
        self.mapped = false;
        self.tracee
            .call(
                "munmap",
                libc::SYS_munmap,
                [self.addr, self.len, 0, 0, 0, 0],
            )
            .map(drop)
    }
}

impl Drop for Scratch<'_> {
    fn drop(&mut self) {
        let _ = self.unmap();
    }
}

/// An argument of a call in a [`Batch`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arg {
    /// A value, as it is.
    Val(u64),
    /// The address, in the target, of a datum of the batch ([`Batch::data`]).
    Data(usize),
    /// The result of an earlier call of the batch ([`Batch::call`]): a
    /// descriptor it opened, say.
    Ret(usize),
}

/// One system call of a [`Batch`].
#[derive(Debug, Clone)]
struct Call {
    nr: i64,
    args: [Arg; 6],
    /// A failure ends the batch there (else the next call runs).
    stops: bool,
}

/// System calls run in the target in a row, at one stop: code written with
/// their data into pages mapped for it (executable, unlike [`Scratch`]),
/// each result stored beside the data, the batch ending at the first failure
/// of a call marked so ([`Batch::call`]). One write puts everything in place
/// and one read takes the results, where running the calls one by one costs
/// two ptrace stops, four register transfers and a memory write each. A
/// target whose policy refuses executable anonymous memory (`EACCES`,
/// `EPERM`: `SELinux`'s `execmem`, `PaX`) gets the calls one by one, with the
/// same results.
#[derive(Debug, Clone, Default)]
pub struct Batch {
    calls: Vec<Call>,
    data: Vec<Vec<u8>>,
}

/// The results of a [`Batch`], call by call: the raw return value
/// (`-4095..=-1` is `-errno`), or `None` for a call not run (after a failure
/// that ended the batch).
pub type Results = Vec<Option<i64>>;

/// The longest path the kernel takes, its NUL included (`PATH_MAX`).
const PATH_MAX: usize = 4096;

/// The value of a result slot for a call not run: no system call returns it.
const NOT_RUN: i64 = i64::MIN;

/// x86-64 encodings used by [`Batch`]: `movabs REG, imm64` per argument
/// register, and `mov REG, rax`; in the order of the system-call ABI (rdi,
/// rsi, rdx, r10, r8, r9).
const MOVABS: [[u8; 2]; 6] = [
    [0x48, 0xbf],
    [0x48, 0xbe],
    [0x48, 0xba],
    [0x49, 0xba],
    [0x49, 0xb8],
    [0x49, 0xb9],
];
const MOV_FROM_RAX: [[u8; 3]; 6] = [
    [0x48, 0x89, 0xc7],
    [0x48, 0x89, 0xc6],
    [0x48, 0x89, 0xc2],
    [0x49, 0x89, 0xc2],
    [0x49, 0x89, 0xc0],
    [0x49, 0x89, 0xc1],
];

impl Batch {
    /// An empty batch.
    #[must_use]
    pub fn new() -> Batch {
        Batch::default()
    }

    /// Adds `bytes` to the data written with the batch; the argument that
    /// passes their address.
    pub fn data(&mut self, bytes: &[u8]) -> Arg {
        self.data.push(bytes.to_vec());
        Arg::Data(self.data.len() - 1)
    }

    /// Adds system call `nr`; the argument that passes its result to a later
    /// call. If `stops`, its failure ends the batch.
    pub fn call(&mut self, nr: i64, args: [Arg; 6], stops: bool) -> Arg {
        self.calls.push(Call { nr, args, stops });
        Arg::Ret(self.calls.len() - 1)
    }

    /// `rt_sigaction(SIGHUP, {SIG_IGN}, NULL)`, ending the batch if it fails.
    pub fn ignore_sighup(&mut self) -> Arg {
        let act = KernelSigaction {
            handler: libc::SIG_IGN as u64,
            flags: 0,
            restorer: 0,
            mask: 0,
        };
        let at = self.data(&act.to_bytes());
        let signo = u64::from(libc::SIGHUP.cast_unsigned());
        let v = Arg::Val;
        self.call(
            libc::SYS_rt_sigaction,
            [v(signo), at, v(0), v(SIGSET_SIZE), v(0), v(0)],
            true,
        )
    }

    /// `openat(AT_FDCWD, path, flags, mode)`: the descriptor, as an argument.
    ///
    /// # Errors
    /// `ENAMETOOLONG` (as `opening 'PATH'`, as the kernel would say) for a
    /// path longer than `PATH_MAX`.
    pub fn open_at(
        &mut self,
        path: &Path,
        flags: OFlag,
        mode: u32,
        stops: bool,
    ) -> Result<Arg, InjectError> {
        let mut bytes = path.as_os_str().as_bytes().to_vec();
        bytes.push(0);
        if bytes.len() > PATH_MAX {
            return Err(InjectError::InProcess {
                what: format!("opening {}", crate::quote::quote(path.as_os_str())),
                errno: Errno::ENAMETOOLONG,
            });
        }
        let at = self.data(&bytes);
        let flags = u64::from(flags.bits().cast_unsigned());
        let v = Arg::Val;
        Ok(self.call(
            libc::SYS_openat,
            [v(AT_FDCWD), at, v(flags), v(u64::from(mode)), v(0), v(0)],
            stops,
        ))
    }

    /// `dup3(from, to, 0)`, ending the batch if it fails.
    pub fn dup3(&mut self, from: Arg, to: i32) -> Arg {
        let v = Arg::Val;
        self.call(
            libc::SYS_dup3,
            [from, v(fd_arg(to)), v(0), v(0), v(0), v(0)],
            true,
        )
    }

    /// `close(fd)`; a failure changes nothing and does not end the batch.
    pub fn close(&mut self, fd: Arg) -> Arg {
        let v = Arg::Val;
        self.call(libc::SYS_close, [fd, v(0), v(0), v(0), v(0), v(0)], false)
    }

    /// `ioctl(fd, TIOCNOTTY)`; a failure (`ENOTTY`: not its controlling
    /// terminal) does not end the batch.
    pub fn drop_ctty(&mut self, fd: Arg) -> Arg {
        let v = Arg::Val;
        self.call(
            libc::SYS_ioctl,
            [fd, v(libc::TIOCNOTTY), v(0), v(0), v(0), v(0)],
            false,
        )
    }

    /// `fcntl(fd, F_SETFL, flags)`; a failure does not end the batch.
    pub fn fcntl_setfl(&mut self, fd: Arg, flags: OFlag) -> Arg {
        let setfl = u64::from(libc::F_SETFL.cast_unsigned());
        let flags = u64::from(flags.bits().cast_unsigned());
        let v = Arg::Val;
        self.call(
            libc::SYS_fcntl,
            [fd, v(setfl), v(flags), v(0), v(0), v(0)],
            false,
        )
    }

    /// Whether a failure of call `i` ends the batch.
    #[must_use]
    pub fn stops(&self, i: usize) -> bool {
        self.calls.get(i).is_some_and(|c| c.stops)
    }

    /// Whether it has no call.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.calls.is_empty()
    }

    /// The length of the code of one call.
    fn call_len(call: &Call) -> usize {
        let args: usize = call
            .args
            .iter()
            .map(|a| if matches!(a, Arg::Ret(_)) { 13 } else { 10 })
            .sum();
        // mov eax, nr; syscall; mov [slot], rax; (cmp rax, -4095; jae end)
        args + 5 + 2 + 10 + if call.stops { 12 } else { 0 }
    }

    /// The end of the code: `done` set, then `pause` for ever.
    const TAIL_LEN: usize = 10 + 10 + 5 + 2 + 2;

    /// Offsets in the pages: the result slots (the `done` word after them),
    /// each datum, and the total length.
    fn layout(&self) -> (u64, Vec<u64>, u64) {
        let code: usize = self.calls.iter().map(Batch::call_len).sum::<usize>() + Batch::TAIL_LEN;
        let slots = code.next_multiple_of(16);
        let mut at = slots + 8 * (self.calls.len() + 1);
        let mut data = Vec::with_capacity(self.data.len());
        for d in &self.data {
            at = at.next_multiple_of(16);
            data.push(at as u64);
            at += d.len();
        }
        (slots as u64, data, at as u64)
    }

    /// The value of argument `a` when the pages are at `base`.
    fn value(base: u64, data: &[u64], a: Arg) -> u64 {
        match a {
            Arg::Val(v) => v,
            Arg::Data(i) => base + data[i],
            // Unused: results are loaded from their slot.
            Arg::Ret(_) => 0,
        }
    }

    /// The bytes of the pages at `base`: code, result slots (each "not run"),
    /// `done` (0), data.
    fn image(&self, base: u64, slots: u64, data: &[u64], len: u64) -> Vec<u8> {
        let mut out = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
        let slot = |i: usize| base + slots + 8 * i as u64;
        let done = slot(self.calls.len());
        let code_len: usize = self.calls.iter().map(Batch::call_len).sum();
        let end = base + code_len as u64;
        for (i, c) in self.calls.iter().enumerate() {
            for (r, a) in c.args.iter().enumerate() {
                if let Arg::Ret(k) = *a {
                    out.extend_from_slice(&[0x48, 0xa1]); // mov rax, [moffs64]
                    out.extend_from_slice(&slot(k).to_le_bytes());
                    out.extend_from_slice(&MOV_FROM_RAX[r]);
                } else {
                    out.extend_from_slice(&MOVABS[r]);
                    out.extend_from_slice(&Batch::value(base, data, *a).to_le_bytes());
                }
            }
            out.push(0xb8); // mov eax, imm32
            out.extend_from_slice(&u32::try_from(c.nr).unwrap_or(u32::MAX).to_le_bytes());
            out.extend_from_slice(&[0x0f, 0x05]); // syscall
            out.extend_from_slice(&[0x48, 0xa3]); // mov [moffs64], rax
            out.extend_from_slice(&slot(i).to_le_bytes());
            if c.stops {
                out.extend_from_slice(&[0x48, 0x3d]); // cmp rax, -4095
                out.extend_from_slice(&(-4095i32).to_le_bytes());
                out.extend_from_slice(&[0x0f, 0x83]); // jae end
                let next = base + out.len() as u64 + 4;
                let rel = i32::try_from(end.wrapping_sub(next).cast_signed()).unwrap_or(0);
                out.extend_from_slice(&rel.to_le_bytes());
            }
        }
        out.extend_from_slice(&[0x48, 0xb8]); // movabs rax, 1
        out.extend_from_slice(&1u64.to_le_bytes());
        out.extend_from_slice(&[0x48, 0xa3]); // mov [done], rax
        out.extend_from_slice(&done.to_le_bytes());
        out.push(0xb8); // again: mov eax, 34 (x86-64's pause)
        out.extend_from_slice(&34u32.to_le_bytes());
        out.extend_from_slice(&[0x0f, 0x05, 0xeb, 0xf7]); // syscall; jmp again
        out.resize(usize::try_from(slots).unwrap_or(0), 0xcc);
        for _ in 0..self.calls.len() {
            out.extend_from_slice(&NOT_RUN.to_le_bytes());
        }
        out.extend_from_slice(&0u64.to_le_bytes());
        for (d, &at) in self.data.iter().zip(data) {
            out.resize(usize::try_from(at).unwrap_or(0), 0);
            out.extend_from_slice(d);
        }
        out
    }

    /// Runs the batch in `tracee` (every signal blocked, as
    /// [`Tracee::attach`] leaves it); the result of each call. The pages are
    /// unmapped again, whatever happens.
    ///
    /// # Errors
    /// The tracing failure, or `mmap`'s errno in the process.
    pub fn run(&self, tracee: &mut Tracee) -> Result<Results, InjectError> {
        if self.calls.is_empty() {
            return Ok(Vec::new());
        }
        let (slots, data, len) = self.layout();
        let len = len.next_multiple_of(page_size());
        let prot = libc::PROT_READ | libc::PROT_WRITE;
        let flags = u64::from((libc::MAP_PRIVATE | libc::MAP_ANONYMOUS).cast_unsigned());
        let mmap = |t: &mut Tracee, prot: i32| {
            let prot = u64::from(prot.cast_unsigned());
            t.call("mmap", libc::SYS_mmap, [0, len, prot, flags, u64::MAX, 0])
        };
        let (base, exec) = match mmap(tracee, prot | libc::PROT_EXEC) {
            Ok(base) => (base.cast_unsigned(), true),
            Err(InjectError::InProcess {
                errno: Errno::EACCES | Errno::EPERM,
                ..
            }) => (mmap(tracee, prot)?.cast_unsigned(), false),
            Err(e) => return Err(e),
        };
        let ran = self.run_at(tracee, base, exec, slots, &data, len);
        let unmapped = tracee.call("munmap", libc::SYS_munmap, [base, len, 0, 0, 0, 0]);
        let results = ran?;
        unmapped?;
        Ok(results)
    }

    fn run_at(
        &self,
        tracee: &mut Tracee,
        base: u64,
        exec: bool,
        slots: u64,
        data: &[u64],
        len: u64,
    ) -> Result<Results, InjectError> {
        let image = self.image(base, slots, data, len);
        tracee.write_mem(base, &image)?;
        if !exec {
            return self.one_by_one(tracee, base, data);
        }
        let n = self.calls.len();
        tracee.run_code(base, base + slots + 8 * n as u64, base..base + slots)?;
        let mut raw = vec![0u8; 8 * n];
        tracee.read_mem(base + slots, &mut raw)?;
        Ok(raw
            .chunks_exact(8)
            .map(|w| {
                let mut b = [0u8; 8];
                b.copy_from_slice(w);
                Some(i64::from_le_bytes(b)).filter(|&r| r != NOT_RUN)
            })
            .collect())
    }

    /// The calls one at a time, with the same results as the code.
    fn one_by_one(
        &self,
        tracee: &mut Tracee,
        base: u64,
        data: &[u64],
    ) -> Result<Results, InjectError> {
        let mut results: Results = vec![None; self.calls.len()];
        for (i, c) in self.calls.iter().enumerate() {
            let args = c.args.map(|a| match a {
                Arg::Ret(k) => results[k].unwrap_or(NOT_RUN).cast_unsigned(),
                a => Batch::value(base, data, a),
            });
            let r = tracee.syscall(c.nr, args)?;
            results[i] = Some(r);
            if c.stops && errno_of(r).is_some() {
                break;
            }
        }
        Ok(results)
    }
}

/// A descriptor number as a system-call argument.
fn fd_arg(fd: i32) -> u64 {
    u64::from(fd.cast_unsigned())
}

/// The typed calls that take no memory, one function per call.
impl Tracee {
    /// Runs system call `nr`; its result, or [`InjectError::InProcess`] named
    /// `what` if it failed in the process.
    ///
    /// # Errors
    /// The tracing failure, or the call's errno.
    pub fn call(&mut self, what: &str, nr: i64, args: [u64; 6]) -> Result<i64, InjectError> {
        let ret = self.syscall(nr, args)?;
        match errno_of(ret) {
            Some(errno) => Err(InjectError::InProcess {
                what: what.to_string(),
                errno,
            }),
            None => Ok(ret),
        }
    }

    /// `dup3(from, to, 0)`: `to` now points where `from` does.
    ///
    /// # Errors
    /// The tracing failure, or `dup3`'s errno in the process.
    pub fn dup3(&mut self, from: i32, to: i32) -> Result<(), InjectError> {
        self.call(
            "dup3",
            libc::SYS_dup3,
            [fd_arg(from), fd_arg(to), 0, 0, 0, 0],
        )
        .map(drop)
    }

    /// `close(fd)`.
    ///
    /// # Errors
    /// The tracing failure, or `close`'s errno in the process.
    pub fn close(&mut self, fd: i32) -> Result<(), InjectError> {
        self.call("close", libc::SYS_close, [fd_arg(fd), 0, 0, 0, 0, 0])
            .map(drop)
    }

    /// `ioctl(fd, TIOCNOTTY)`: the terminal `fd` is on stops being the
    /// process's controlling terminal.
    ///
    /// # Errors
    /// The tracing failure, or `ioctl`'s errno in the process (`ENOTTY`: it
    /// is not its controlling terminal).
    pub fn drop_ctty(&mut self, fd: i32) -> Result<(), InjectError> {
        self.call(
            "ioctl TIOCNOTTY",
            libc::SYS_ioctl,
            [fd_arg(fd), libc::TIOCNOTTY, 0, 0, 0, 0],
        )
        .map(drop)
    }

    /// `fcntl(fd, F_SETFL, flags)`: sets the status flags of `fd` (the
    /// access mode and creation flags in `flags` are ignored by the kernel).
    ///
    /// # Errors
    /// The tracing failure, or `fcntl`'s errno in the process.
    pub fn fcntl_setfl(&mut self, fd: i32, flags: OFlag) -> Result<(), InjectError> {
        let setfl = u64::from(libc::F_SETFL.cast_unsigned());
        let flags = u64::from(flags.bits().cast_unsigned());
        self.call(
            "fcntl F_SETFL",
            libc::SYS_fcntl,
            [fd_arg(fd), setfl, flags, 0, 0, 0],
        )
        .map(drop)
    }
}

/// The `-errno` of a raw system-call return value, if it is one.
#[must_use]
pub fn errno_of(ret: i64) -> Option<Errno> {
    // The kernel's MAX_ERRNO: a return value in -4095..=-1 is `-errno`.
    const MAX_ERRNO: i64 = 4095;
    (-MAX_ERRNO..=-1)
        .contains(&ret)
        .then(|| Errno::from_raw(i32::try_from(-ret).unwrap_or(Errno::EIO as i32)))
}

#[cfg(test)]
#[cfg(target_arch = "x86_64")]
mod tests {
    use super::*;
    use crate::proc::Status;
    use nix::sys::signal::Signal;

    /// Makes `pid` ignore SIGHUP through a scratch page, like disown does.
    fn ignore_sighup(pid: Pid) -> Result<(), InjectError> {
        let mut t = Tracee::attach(pid)?;
        let mut page = Scratch::map(&mut t)?;
        page.ignore_sighup()?;
        page.release()?;
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

    /// A path longer than the page is refused as the kernel would refuse it,
    /// and nothing is written past the page (into whatever the target has
    /// mapped next to it).
    #[test]
    fn a_path_longer_than_the_page_writes_nothing() {
        use std::os::unix::fs::FileExt;
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let pid = Pid::from_raw(i32::try_from(child.id()).unwrap());
        let mut t = Tracee::attach(pid).unwrap();
        let mut page = Scratch::map(&mut t).unwrap();
        let (addr, len) = (page.addr, page.len);
        let mem = std::fs::File::open(format!("/proc/{pid}/mem")).unwrap();
        let around = || {
            let mut buf = vec![0u8; 2 * usize::try_from(len).unwrap()];
            let n = mem.read_at(&mut buf, addr).unwrap_or(0);
            buf.truncate(n);
            buf
        };
        let before = around();
        let long = "a/".repeat(usize::try_from(len).unwrap());
        match page.open_at(Path::new(&long), OFlag::O_RDONLY, 0) {
            Err(InjectError::InProcess { errno, .. }) => assert_eq!(errno, Errno::ENAMETOOLONG),
            other => panic!("{other:?}"),
        }
        assert_eq!(around(), before, "nothing written");
        page.release().unwrap();
        t.detach().unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
    }

    /// Runs a batch in `pid`: /dev/null opened, dup'ed onto fd 100, a
    /// missing file opened (the batch ends there), a close not run; then what
    /// it opened is closed by hand. The target's mappings are as before.
    fn batch_in(pid: Pid) {
        let maps = || std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap();
        let before = maps();
        let mut t = Tracee::attach(pid).unwrap();
        let mut b = Batch::new();
        let null = b
            .open_at(Path::new("/dev/null"), OFlag::O_RDONLY, 0, true)
            .unwrap();
        b.dup3(null, 100);
        b.open_at(Path::new("/nonexistent/x"), OFlag::O_RDONLY, 0, true)
            .unwrap();
        b.close(null);
        let r = b.run(&mut t).unwrap();
        assert_eq!(r.len(), 4);
        let fd = r[0].unwrap();
        assert!(fd >= 0, "{r:?}");
        assert_eq!(r[1], Some(100));
        assert_eq!(r[2], Some(-i64::from(Errno::ENOENT as i32)));
        assert_eq!(r[3], None, "not run after the failure");
        t.close(i32::try_from(fd).unwrap()).unwrap();
        t.close(100).unwrap();
        t.detach().unwrap();
        assert_eq!(maps(), before, "the pages are unmapped");
        assert!(std::fs::read_link(format!("/proc/{pid}/fd/100")).is_err());
        assert_eq!(Status::read(pid).unwrap().tracer_pid, 0);
    }

    #[test]
    fn a_batch_ends_at_its_first_failure() {
        for args in [&["-c", "sleep 30"][..], &["-c", "while :; do :; done"][..]] {
            let mut child = std::process::Command::new("sh").args(args).spawn().unwrap();
            let pid = Pid::from_raw(i32::try_from(child.id()).unwrap());
            std::thread::sleep(Duration::from_millis(100));
            batch_in(pid);
            assert!(child.try_wait().unwrap().is_none(), "it lives on");
            child.kill().unwrap();
            child.wait().unwrap();
        }
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
