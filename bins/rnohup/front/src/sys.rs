//! Raw Linux `x86_64` system calls: the only way this crate talks to the kernel
//! (there is no C library under it).
//!
//! Each wrapper returns the kernel's answer as `Result<usize, Errno>`: the
//! kernel reports an error as a value in `-4095..=-1`.

// The constants are the kernel's own names (errno.h, fcntl.h, ...).
#![allow(missing_docs)]

use core::arch::asm;

/// A kernel error number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Errno(pub i32);

impl Errno {
    pub const ENOENT: Errno = Errno(2);
    pub const EPERM: Errno = Errno(1);
    pub const EINTR: Errno = Errno(4);
    pub const E2BIG: Errno = Errno(7);
    pub const ENOEXEC: Errno = Errno(8);
    pub const EBADF: Errno = Errno(9);
    pub const ENOMEM: Errno = Errno(12);
    pub const EACCES: Errno = Errno(13);
    pub const EEXIST: Errno = Errno(17);
    pub const ENODEV: Errno = Errno(19);
    pub const ENOTDIR: Errno = Errno(20);
    pub const ETIMEDOUT: Errno = Errno(110);
    pub const ESTALE: Errno = Errno(116);
}

/// The result of a system call.
pub type SysResult = Result<usize, Errno>;

fn check(r: isize) -> SysResult {
    if (-4095..0).contains(&r) {
        // The range check makes the negation fit an i32.
        #[allow(clippy::cast_possible_truncation)]
        Err(Errno(-r as i32))
    } else {
        #[allow(clippy::cast_sign_loss)]
        Ok(r as usize)
    }
}

/// `syscall(nr, a, b, c, d)`: four arguments are enough for every call here.
///
/// # Safety
/// The arguments must be valid for system call `nr` (pointers to memory of
/// the sizes the call reads or writes, live for the call).
#[allow(clippy::many_single_char_names)] // the registers' argument slots
unsafe fn syscall4(nr: usize, a: usize, b: usize, c: usize, d: usize) -> SysResult {
    let r: isize;
    // SAFETY: the caller vouches for the arguments; the syscall instruction
    // clobbers only rcx and r11 (declared) and rax (the result).
    unsafe {
        asm!("syscall", inlateout("rax") nr.cast_signed() => r, in("rdi") a, in("rsi") b,
             in("rdx") c, in("r10") d, lateout("rcx") _, lateout("r11") _,
             options(nostack));
    }
    check(r)
}

const SYS_READ: usize = 0;
const SYS_WRITE: usize = 1;
const SYS_CLOSE: usize = 3;
const SYS_FSTAT: usize = 5;
const SYS_RT_SIGACTION: usize = 13;
const SYS_IOCTL: usize = 16;
const SYS_GETPID: usize = 39;
const SYS_EXECVE: usize = 59;
const SYS_EXIT_GROUP: usize = 231;
const SYS_UNAME: usize = 63;
const SYS_FCHMOD: usize = 91;
const SYS_GETCWD: usize = 79;
const SYS_GETEUID: usize = 107;
const SYS_GETEGID: usize = 108;
const SYS_CLOCK_GETTIME: usize = 228;
const SYS_OPENAT: usize = 257;
const SYS_MKDIRAT: usize = 258;
const SYS_NEWFSTATAT: usize = 262;
const SYS_UNLINKAT: usize = 263;
const SYS_RENAMEAT: usize = 264;
const SYS_READLINKAT: usize = 267;
const SYS_PRLIMIT64: usize = 302;
const SYS_EXECVEAT: usize = 322;

pub const AT_FDCWD: i32 = -100;
pub const AT_SYMLINK_NOFOLLOW: usize = 0x100;
pub const O_RDONLY: usize = 0;
pub const O_WRONLY: usize = 1;
pub const O_CREAT: usize = 0o100;
pub const O_EXCL: usize = 0o200;
pub const O_NOFOLLOW: usize = 0o400_000;
pub const O_DIRECTORY: usize = 0o200_000;
pub const O_CLOEXEC: usize = 0o2_000_000;
pub const O_PATH: usize = 0o10_000_000;
pub const S_IFMT: u32 = 0o170_000;
pub const S_IFDIR: u32 = 0o040_000;
pub const S_IFREG: u32 = 0o100_000;
pub const AT_EMPTY_PATH: usize = 0x1000;
pub const CLOCK_REALTIME: usize = 0;
pub const CLOCK_BOOTTIME: usize = 7;
pub const RLIMIT_FSIZE: usize = 1;
pub const RLIMIT_STACK: usize = 3;
pub const RLIMIT_AS: usize = 9;
pub const RLIM_INFINITY: u64 = u64::MAX;
pub const SIGHUP: usize = 1;
const TCGETS: usize = 0x5401;

/// `struct stat` of `x86_64`, the fields used here.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Stat {
    pub st_dev: u64,
    pub st_ino: u64,
    pub st_nlink: u64,
    pub st_mode: u32,
    pub st_uid: u32,
    pub st_gid: u32,
    pad0: u32,
    pub st_rdev: u64,
    pub st_size: i64,
    pub st_blksize: i64,
    pub st_blocks: i64,
    times: [u64; 6],
    reserved: [i64; 3],
}

impl Stat {
    const fn zeroed() -> Stat {
        Stat {
            st_dev: 0,
            st_ino: 0,
            st_nlink: 0,
            st_mode: 0,
            st_uid: 0,
            st_gid: 0,
            pad0: 0,
            st_rdev: 0,
            st_size: 0,
            st_blksize: 0,
            st_blocks: 0,
            times: [0; 6],
            reserved: [0; 3],
        }
    }
}

/// `read(fd, buf)`.
pub fn read(fd: i32, buf: &mut [u8]) -> SysResult {
    // SAFETY: the kernel writes at most buf.len() bytes into buf.
    #[allow(clippy::cast_sign_loss)]
    unsafe {
        syscall4(
            SYS_READ,
            fd as usize,
            buf.as_mut_ptr() as usize,
            buf.len(),
            0,
        )
    }
}

/// `write(fd, buf)`.
pub fn write(fd: i32, buf: &[u8]) -> SysResult {
    // SAFETY: the kernel reads at most buf.len() bytes from buf.
    #[allow(clippy::cast_sign_loss)]
    unsafe {
        syscall4(SYS_WRITE, fd as usize, buf.as_ptr() as usize, buf.len(), 0)
    }
}

/// Writes all of `buf`, retrying short writes and `EINTR`.
pub fn write_all(fd: i32, mut buf: &[u8]) -> Result<(), Errno> {
    while !buf.is_empty() {
        match write(fd, buf) {
            Ok(0) => return Err(Errno(5)),
            Ok(n) => buf = &buf[n.min(buf.len())..],
            Err(Errno::EINTR) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// `close(fd)`; the result is of no use to the callers here.
pub fn close(fd: i32) {
    // SAFETY: closing a number has no memory effects.
    #[allow(clippy::cast_sign_loss)]
    let _ = unsafe { syscall4(SYS_CLOSE, fd as usize, 0, 0, 0) };
}

/// `openat(dir, path, flags, mode)`; `path` ends in a NUL.
pub fn openat(dir: i32, path: &[u8], flags: usize, mode: usize) -> Result<i32, Errno> {
    debug_assert_eq!(path.last(), Some(&0));
    // SAFETY: path is NUL-terminated (asserted by every caller's construction).
    #[allow(clippy::cast_sign_loss)]
    let fd = unsafe {
        syscall4(
            SYS_OPENAT,
            dir as usize,
            path.as_ptr() as usize,
            flags,
            mode,
        )
    }?;
    // A descriptor is a small non-negative int.
    #[allow(clippy::cast_possible_truncation, clippy::cast_possible_wrap)]
    Ok(fd as i32)
}

/// `fstat(fd)`.
pub fn fstat(fd: i32) -> Result<Stat, Errno> {
    let mut st = Stat::zeroed();
    // SAFETY: the kernel writes one struct stat, the size of `st`.
    #[allow(clippy::cast_sign_loss)]
    unsafe {
        syscall4(SYS_FSTAT, fd as usize, (&raw mut st) as usize, 0, 0)?;
    }
    Ok(st)
}

/// `stat(path)` (links followed); `path` ends in a NUL.
pub fn stat(path: &[u8]) -> Result<Stat, Errno> {
    debug_assert_eq!(path.last(), Some(&0));
    let mut st = Stat::zeroed();
    // SAFETY: path is NUL-terminated; the kernel writes one struct stat.
    #[allow(clippy::cast_sign_loss)]
    unsafe {
        syscall4(
            SYS_NEWFSTATAT,
            AT_FDCWD as usize,
            path.as_ptr() as usize,
            (&raw mut st) as usize,
            0,
        )?;
    }
    Ok(st)
}

/// `fstatat(dir, name, AT_SYMLINK_NOFOLLOW)`; `name` ends in a NUL.
pub fn lstatat(dir: i32, name: &[u8]) -> Result<Stat, Errno> {
    debug_assert_eq!(name.last(), Some(&0));
    let mut st = Stat::zeroed();
    // SAFETY: name is NUL-terminated; the kernel writes one struct stat.
    #[allow(clippy::cast_sign_loss)]
    unsafe {
        syscall4(
            SYS_NEWFSTATAT,
            dir as usize,
            name.as_ptr() as usize,
            (&raw mut st) as usize,
            AT_SYMLINK_NOFOLLOW,
        )?;
    }
    Ok(st)
}

/// `readlinkat(AT_FDCWD, path, buf)`: the length of the target; `path` ends in a NUL.
pub fn readlink(path: &[u8], buf: &mut [u8]) -> SysResult {
    debug_assert_eq!(path.last(), Some(&0));
    // SAFETY: path is NUL-terminated; the kernel writes at most buf.len() bytes.
    #[allow(clippy::cast_sign_loss)]
    unsafe {
        syscall4(
            SYS_READLINKAT,
            AT_FDCWD as usize,
            path.as_ptr() as usize,
            buf.as_mut_ptr() as usize,
            buf.len(),
        )
    }
}

/// `mkdirat(dir, name, mode)`; `name` ends in a NUL.
pub fn mkdirat(dir: i32, name: &[u8], mode: usize) -> SysResult {
    debug_assert_eq!(name.last(), Some(&0));
    // SAFETY: name is NUL-terminated.
    #[allow(clippy::cast_sign_loss)]
    unsafe {
        syscall4(SYS_MKDIRAT, dir as usize, name.as_ptr() as usize, mode, 0)
    }
}

/// `fchmod(fd, mode)`.
pub fn fchmod(fd: i32, mode: usize) -> SysResult {
    // SAFETY: no memory is passed.
    #[allow(clippy::cast_sign_loss)]
    unsafe {
        syscall4(SYS_FCHMOD, fd as usize, mode, 0, 0)
    }
}

/// `renameat(dir, from, dir, to)`; both names end in a NUL.
pub fn renameat(dir: i32, from: &[u8], to: &[u8]) -> SysResult {
    // SAFETY: both names are NUL-terminated.
    #[allow(clippy::cast_sign_loss)]
    unsafe {
        syscall4(
            SYS_RENAMEAT,
            dir as usize,
            from.as_ptr() as usize,
            dir as usize,
            to.as_ptr() as usize,
        )
    }
}

/// `unlinkat(dir, name, 0)`; `name` ends in a NUL.
pub fn unlinkat(dir: i32, name: &[u8]) {
    // SAFETY: name is NUL-terminated.
    #[allow(clippy::cast_sign_loss)]
    let _ = unsafe { syscall4(SYS_UNLINKAT, dir as usize, name.as_ptr() as usize, 0, 0) };
}

/// Whether `fd` is a terminal (`TCGETS` succeeds), as glibc's `isatty`.
#[must_use]
pub fn isatty(fd: i32) -> bool {
    let mut termios = [0u8; 64];
    // SAFETY: TCGETS writes one struct termios (60 bytes) into the 64 given.
    #[allow(clippy::cast_sign_loss)]
    unsafe {
        syscall4(
            SYS_IOCTL,
            fd as usize,
            TCGETS,
            termios.as_mut_ptr() as usize,
            0,
        )
    }
    .is_ok()
}

/// Sets `sig` to `SIG_IGN`.
pub fn ignore_signal(sig: usize) {
    // struct kernel_sigaction: handler, flags, restorer, mask (8 bytes).
    let act: [usize; 4] = [1, 0, 0, 0];
    // SAFETY: the kernel reads one kernel_sigaction of 32 bytes; SIG_IGN (1)
    // installs no code.
    let _ = unsafe { syscall4(SYS_RT_SIGACTION, sig, act.as_ptr() as usize, 0, 8) };
}

/// `getpid()`.
#[must_use]
pub fn getpid() -> u32 {
    // SAFETY: no arguments.
    #[allow(clippy::cast_possible_truncation)]
    unsafe { syscall4(SYS_GETPID, 0, 0, 0, 0) }.map_or(0, |p| p as u32)
}

/// `geteuid()` and `getegid()`.
#[must_use]
pub fn effective_ids() -> (u32, u32) {
    // SAFETY: no arguments.
    #[allow(clippy::cast_possible_truncation)]
    let ids = unsafe {
        (
            syscall4(SYS_GETEUID, 0, 0, 0, 0).map_or(u32::MAX, |u| u as u32),
            syscall4(SYS_GETEGID, 0, 0, 0, 0).map_or(u32::MAX, |g| g as u32),
        )
    };
    ids
}

/// `clock_gettime(clock)` in nanoseconds.
#[must_use]
pub fn clock_ns(clock: usize) -> Option<i128> {
    let mut ts = [0i64; 2];
    // SAFETY: the kernel writes one struct timespec (16 bytes).
    unsafe { syscall4(SYS_CLOCK_GETTIME, clock, ts.as_mut_ptr() as usize, 0, 0) }.ok()?;
    Some(i128::from(ts[0]) * 1_000_000_000 + i128::from(ts[1]))
}

/// The soft limit of `resource`.
#[must_use]
pub fn soft_limit(resource: usize) -> Option<u64> {
    let mut old = [0u64; 2];
    // SAFETY: with a null new limit the kernel only writes the old one (16 bytes).
    unsafe { syscall4(SYS_PRLIMIT64, 0, resource, 0, old.as_mut_ptr() as usize) }.ok()?;
    Some(old[0])
}

/// `uname()`'s node name (the host name) into `buf`; its length.
pub fn nodename(buf: &mut [u8; 65]) -> Option<usize> {
    let mut uts = [0u8; 6 * 65];
    // SAFETY: the kernel writes one struct utsname (6 fields of 65 bytes).
    unsafe { syscall4(SYS_UNAME, uts.as_mut_ptr() as usize, 0, 0, 0) }.ok()?;
    buf.copy_from_slice(&uts[65..130]);
    buf.iter().position(|&b| b == 0)
}

/// `getcwd(buf)`: the length of the path (without its NUL).
pub fn getcwd(buf: &mut [u8]) -> SysResult {
    // SAFETY: the kernel writes at most buf.len() bytes.
    let n = unsafe { syscall4(SYS_GETCWD, buf.as_mut_ptr() as usize, buf.len(), 0, 0) }?;
    Ok(n.saturating_sub(1))
}

/// `execve(path, argv, envp)`: returns only on failure; `path` ends in a NUL.
///
/// # Safety
/// `argv` and `envp` must be NULL-terminated arrays of NUL-terminated strings.
#[must_use]
pub unsafe fn execve(path: &[u8], argv: *const *const u8, envp: *const *const u8) -> Errno {
    debug_assert_eq!(path.last(), Some(&0));
    // SAFETY: path is NUL-terminated; the caller vouches for argv and envp.
    match unsafe {
        syscall4(
            SYS_EXECVE,
            path.as_ptr() as usize,
            argv as usize,
            envp as usize,
            0,
        )
    } {
        Err(e) => e,
        Ok(_) => Errno(0),
    }
}

/// `execveat(fd, "", argv, envp, AT_EMPTY_PATH)`: runs the file open at `fd`;
/// returns only on failure.
///
/// # Safety
/// As [`execve`].
#[must_use]
pub unsafe fn execveat_fd(fd: i32, argv: *const *const u8, envp: *const *const u8) -> Errno {
    let r: isize;
    // SAFETY: the empty path is a static NUL; the caller vouches for argv
    // and envp; syscall clobbers rcx and r11 (declared).
    #[allow(clippy::cast_sign_loss)]
    unsafe {
        asm!("syscall", inlateout("rax") SYS_EXECVEAT.cast_signed() => r, in("rdi") fd as usize,
             in("rsi") c"".as_ptr() as usize, in("rdx") argv as usize, in("r10") envp as usize,
             in("r8") AT_EMPTY_PATH, lateout("rcx") _, lateout("r11") _, options(nostack));
    }
    match check(r) {
        Err(e) => e,
        Ok(_) => Errno(0),
    }
}

/// `exit_group(status)`.
pub fn exit(status: i32) -> ! {
    loop {
        // SAFETY: exit_group does not return.
        #[allow(clippy::cast_sign_loss)]
        let _ = unsafe { syscall4(SYS_EXIT_GROUP, status as usize, 0, 0, 0) };
    }
}
