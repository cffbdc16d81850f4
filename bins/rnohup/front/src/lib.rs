//! rnohup's front: the common case of rnohup without the C library.
//!
//! Issue 15 asks rnohup to start faster than GNU nohup. A wrapper's own cost
//! is its `execve` and its start-up, and on this kind of machine most of the
//! start-up is the C library's, not the wrapper's: glibc's start-up runs
//! `cpuid` 68 times (a trap to the hypervisor in a VM) and faults in its
//! pages, static or dynamic. A wrapper without libc starts in a fifth of the
//! time (docs/benchmarks.md, "Floors"). So the `rnohup` executable is this
//! crate: no standard library, no libc, raw system calls ([`sys`]), about
//! 20 KB. It does the whole job itself in the case that needs no message and
//! no file of GNU's:
//!
//! - the first argument is the command (it does not start with `-`), and
//! - none of fds 0, 1 and 2 is a terminal: then GNU's nohup changes no
//!   descriptor and prints nothing; it ignores SIGHUP and runs the command.
//!
//! It also writes the job record ([`record`]) when the record's directory is
//! plain, and runs the command with [`exec::execvp`]. Everything else (options,
//! a terminal, `nohup.out`, every message, a record directory that needs
//! `hupkit_common::safepath`'s judgement, a command that cannot be run) is
//! the work of rnohup's full implementation, `hupkit-rnohup` (the
//! `hupkit_rnohup` crate, with glibc), which this front runs with the same
//! arguments and environment before it has changed anything but SIGHUP's
//! disposition (which the full one sets the same way). It is found from this
//! executable's own path, never through `PATH` or the environment, as the D-Bus
//! helper is: `../libexec/hupkit/hupkit-rnohup` (installed), else
//! `hupkit-rnohup` beside it (cargo's target directory, `cargo install`).

#![cfg_attr(not(test), no_std)]

pub mod exec;
pub mod record;
pub mod sys;
pub mod text;

/// The name of rnohup's full implementation.
pub const FULL: &[u8] = b"hupkit-rnohup";

/// The bytes of the NUL-terminated string at `p`.
///
/// # Safety
/// `p` points at a NUL-terminated string that lives as long as the process
/// and that nothing writes to: the kernel's copies of argv, envp and
/// `AT_EXECFN` on the initial stack.
unsafe fn c_string(p: *const u8) -> &'static [u8] {
    let mut len = 0;
    // SAFETY: the caller vouches for the string up to and including its NUL.
    unsafe {
        while *p.add(len) != 0 {
            len += 1;
        }
        core::slice::from_raw_parts(p, len)
    }
}

/// NUL-terminated strings the kernel placed on the initial stack (argv,
/// envp), as byte slices.
#[derive(Debug, Clone, Copy)]
pub struct Strings<'a>(&'a [*const u8]);

impl<'a> Strings<'a> {
    /// The `i`th string.
    #[must_use]
    pub fn get(&self, i: usize) -> Option<&'a [u8]> {
        let p = *self.0.get(i)?;
        // SAFETY: every pointer of a `Strings` is one the kernel placed on the
        // initial stack (argv, envp).
        Some(unsafe { c_string(p) })
    }

    /// The strings, in order.
    pub fn iter(&self) -> impl Iterator<Item = &'a [u8]> + '_ {
        (0..self.0.len()).filter_map(|i| self.get(i))
    }

    /// The value of the environment variable `name` (`NAME=value`).
    #[must_use]
    pub fn var(&self, name: &[u8]) -> Option<&'a [u8]> {
        self.iter()
            .find_map(|e| e.strip_prefix(name)?.strip_prefix(b"="))
    }
}

/// What the kernel passed to the process.
#[derive(Debug, Clone, Copy)]
pub struct Process<'a> {
    argv: Strings<'a>,
    argv_ptr: *const *const u8,
    env: Strings<'a>,
    envp: *const *const u8,
    /// `AT_CLKTCK`: clock ticks per second.
    clktck: u64,
    /// `AT_EXECFN`: the path this executable was run as.
    execfn: Option<&'a [u8]>,
}

impl Process<'_> {
    /// Reads argc, argv, envp and the auxiliary vector from the initial stack.
    ///
    /// # Safety
    /// `sp` is the stack pointer at the process's entry, as the kernel set it
    /// (the `x86_64` System V ABI's initial process stack).
    #[must_use]
    pub unsafe fn from_stack(sp: *const usize) -> Process<'static> {
        const AT_NULL: usize = 0;
        const AT_CLKTCK: usize = 17;
        const AT_EXECFN: usize = 31;
        // SAFETY: the ABI's layout: argc, argc pointers, NULL, the environment
        // pointers, NULL, then (type, value) pairs ending in AT_NULL.
        unsafe {
            let argc = *sp;
            let argv_ptr = sp.add(1).cast::<*const u8>();
            let envp = argv_ptr.add(argc + 1);
            let mut envc = 0;
            while !(*envp.add(envc)).is_null() {
                envc += 1;
            }
            let mut aux = envp.add(envc + 1).cast::<usize>();
            let mut clktck = 0;
            let mut execfn: Option<&'static [u8]> = None;
            while *aux != AT_NULL {
                match *aux {
                    AT_CLKTCK => clktck = *aux.add(1) as u64,
                    AT_EXECFN => execfn = Some(c_string(*aux.add(1) as *const u8)),
                    _ => {}
                }
                aux = aux.add(2);
            }
            Process {
                argv: Strings(core::slice::from_raw_parts(argv_ptr, argc)),
                argv_ptr,
                env: Strings(core::slice::from_raw_parts(envp, envc)),
                envp,
                // glibc's sysconf(_SC_CLK_TCK) without AT_CLKTCK.
                clktck: if clktck == 0 { 100 } else { clktck },
                execfn,
            }
        }
    }
}

/// Runs rnohup: the plain case here, anything else by the full implementation.
pub fn run(p: &Process<'_>) -> ! {
    let Some(command) = p.argv.get(1).filter(|c| c.first() != Some(&b'-')) else {
        full(p, None)
    };
    // The plain case keeps path buffers of PATH_MAX on the stack (it ran at
    // 12 KiB in a release build, a debug build needs more); under a stack
    // limit below MIN_STACK the full implementation does it all.
    if (0..3).any(sys::isatty) || sys::soft_limit(sys::RLIMIT_STACK).is_some_and(|l| l < MIN_STACK)
    {
        full(p, None)
    }
    sys::ignore_signal(sys::SIGHUP);
    // SAFETY: argv_ptr.add(1) is the kernel's argv from the command on,
    // NULL-terminated; envp is the kernel's environment.
    let exec = || unsafe { exec::execvp(command, p.env.var(b"PATH"), p.argv_ptr.add(1), p.envp) };
    if record_is_plain(p) {
        exec();
        full(p, None)
    }
    // The full implementation writes the record, unless an address-space
    // limit leaves it too little room: it copies the arguments and
    // aborts when an allocation fails, and a record never stops the command,
    // which then runs unrecorded. So it does where the full one cannot be run.
    if sys::soft_limit(sys::RLIMIT_AS).is_none_or(|limit| limit < full_needs(p)) {
        exec();
        full(p, None)
    }
    full(p, Some(&exec))
}

/// The smallest stack limit under which the front does the plain case.
pub const MIN_STACK: u64 = 256 * 1024;

/// The address space the full implementation is given room for: 32 MiB (it
/// needs under 8 with a few arguments) plus four times the bytes of the
/// arguments and environment (the kernel's copy, its copy, the record).
fn full_needs(p: &Process<'_>) -> u64 {
    let bytes: usize = p.argv.iter().chain(p.env.iter()).map(|s| s.len() + 1).sum();
    (32 << 20) + 4 * bytes as u64
}

/// Writes the job record unless records are off; false when the full
/// implementation must decide.
fn record_is_plain(p: &Process<'_>) -> bool {
    if p.env.var(b"HUPKIT_NO_RECORD") == Some(b"1") {
        return true;
    }
    let place = record::Place {
        xdg_state_home: p.env.var(b"XDG_STATE_HOME"),
        home: p.env.var(b"HOME"),
    };
    let wanted = place
        .xdg_state_home
        .is_some_and(|x| x.first() == Some(&b'/'))
        || place.home.is_some_and(|h| !h.is_empty());
    if !wanted {
        return true;
    }
    let command = Strings(&p.argv.0[1..]);
    record::write(place, command, p.clktck).is_ok()
}

/// Whether the file open at `fd` may be run as rnohup's full implementation:
/// a regular file of root or of the owner of this executable (`own`), that
/// nobody else can write, and not this executable itself (a copy of the
/// front there would run itself for ever).
fn trusted_full(fd: i32, own: Option<&sys::Stat>) -> bool {
    let Ok(st) = sys::fstat(fd) else {
        return false;
    };
    let owner_ok = st.st_uid == 0 || own.is_some_and(|o| o.st_uid == st.st_uid);
    let itself = own.is_some_and(|o| o.st_dev == st.st_dev && o.st_ino == st.st_ino);
    st.st_mode & sys::S_IFMT == sys::S_IFREG && st.st_mode & 0o022 == 0 && owner_ok && !itself
}

/// Writes `bytes` to stderr with the bytes that would garble a one-line
/// message (control characters) as `?`.
fn put_shown(bytes: &[u8]) {
    let mut chunk = [0u8; 256];
    for piece in bytes.chunks(chunk.len()) {
        for (dst, &b) in chunk.iter_mut().zip(piece) {
            *dst = if b < 0x20 || b == 0x7f { b'?' } else { b };
        }
        let _ = sys::write_all(2, &chunk[..piece.len()]);
    }
}

/// Runs the full implementation with this process's arguments and
/// environment. If it cannot be run: `unrecorded` (the command, run without
/// its record) where that is all that was left to do, else one line and exit
/// 125 (127 under `POSIXLY_CORRECT`, as rnohup's other failures).
///
/// The candidates (`DIR/../libexec/hupkit/hupkit-rnohup`, then
/// `DIR/hupkit-rnohup`, DIR being this executable's directory) are opened,
/// checked ([`trusted_full`]) and run through that descriptor (`execveat`),
/// so that the file checked is the file run.
#[inline(never)]
pub fn full(p: &Process<'_>, unrecorded: Option<&dyn Fn()>) -> ! {
    const SUFFIXES: [&[u8]; 2] = [b"/../libexec/hupkit/hupkit-rnohup\0", b"/hupkit-rnohup\0"];
    let mut buf = [0u8; 4096 + 40];
    let dir_len = match sys::readlink(b"/proc/self/exe\0", &mut buf[..4096]) {
        Ok(n) if n < 4096 => buf[..n].iter().rposition(|&b| b == b'/'),
        _ => p.execfn.and_then(|e| {
            let i = e.iter().rposition(|&b| b == b'/')?;
            buf.get_mut(..i)?.copy_from_slice(&e[..i]);
            Some(i)
        }),
    };
    let dir_len = dir_len.unwrap_or_else(|| {
        buf[0] = b'.';
        1
    });
    let own = sys::stat(b"/proc/self/exe\0").ok();
    let mut error = sys::Errno::ENOENT;
    for suffix in SUFFIXES {
        buf[dir_len..dir_len + suffix.len()].copy_from_slice(suffix);
        let path = &buf[..dir_len + suffix.len()];
        let fd = match sys::openat(sys::AT_FDCWD, path, sys::O_PATH | sys::O_CLOEXEC, 0) {
            Ok(fd) => fd,
            Err(e) => {
                error = e;
                continue;
            }
        };
        error = if trusted_full(fd, own.as_ref()) {
            // SAFETY: argv and envp are the kernel's, NULL-terminated.
            unsafe { sys::execveat_fd(fd, p.argv_ptr, p.envp) }
        } else {
            sys::Errno::EPERM
        };
        sys::close(fd);
        if error != sys::Errno::ENOENT {
            break;
        }
    }
    if let Some(run_command) = unrecorded {
        run_command();
    }
    let why: &[u8] = match error {
        sys::Errno::ENOENT => b"it is not installed",
        sys::Errno::EPERM => {
            b"it is not a file of root's or of rnohup's owner that only its owner can write"
        }
        sys::Errno::E2BIG => b"Argument list too long",
        sys::Errno::ENOMEM => b"Cannot allocate memory",
        sys::Errno::EACCES => b"Permission denied",
        _ => b"it cannot be run",
    };
    put_shown(p.argv.get(0).unwrap_or(b"rnohup"));
    let _ = sys::write_all(
        2,
        b": cannot run hupkit-rnohup (rnohup's full implementation) from '",
    );
    put_shown(&buf[..dir_len]);
    let _ = sys::write_all(2, b"': ");
    let _ = sys::write_all(2, why);
    let _ = sys::write_all(2, b"\n");
    sys::exit(if p.env.var(b"POSIXLY_CORRECT").is_some() {
        127
    } else {
        125
    })
}
