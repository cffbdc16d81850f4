//! `rnohup`: its entry without the C library (see `hupkit_rnohup_front`).
//!
//! `_start` applies the executable's relocations and hands the initial
//! stack to [`entry`], which runs the front; the full implementation is
//! `hupkit-rnohup` (`bins/rnohup/main.rs`). Linked by `build.rs` with
//! `-nostartfiles -nostdlib -static-pie`: no C start files, no libc, no
//! dynamic loader.
// Without std only in the real build: `cargo clippy --all-targets` also
// checks this file as a test target, with std (and nothing to test).
#![cfg_attr(not(test), no_std)]
#![cfg_attr(not(test), no_main)]

#[cfg(not(test))]
mod bare {

    use hupkit_rnohup_front::{Process, run, sys};

    #[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
    compile_error!("rnohup's front is written for Linux on x86_64");

    // The ABI's entry: rsp points at argc. First the executable's own
    // relocations (it is static-pie and there is no dynamic loader to do them):
    // each R_X86_64_RELATIVE entry of DT_RELA gets the load address
    // (__ehdr_start) added; any other kind, or DT_REL, DT_RELR or DT_TEXTREL,
    // means the link went wrong, and the process says so and exits 125 before
    // anything reads relocated data. (RELRO is not made read-only: there is
    // no loader to do it, and the process only reads before it execs.) This is assembly
    // because until it has run, compiled code may not work: calls into the other
    // crates of the front go through the (not yet relocated) GOT.
    core::arch::global_asm!(
        ".globl _start",
        ".type _start,@function",
        "_start:",
        "xor ebp, ebp",
        "mov r12, rsp",
        "lea rbx, [rip + __ehdr_start]",
        "lea rcx, [rip + _DYNAMIC]",
        "xor r8d, r8d",
        "xor r9d, r9d",
        "2:",
        "mov rax, [rcx]",
        "test rax, rax",
        "jz 4f",
        "cmp rax, 17", // DT_REL
        "je 8f",
        "cmp rax, 22", // DT_TEXTREL
        "je 8f",
        "cmp rax, 36", // DT_RELR
        "je 8f",
        "cmp rax, 7", // DT_RELA
        "jne 3f",
        "mov r8, [rcx + 8]",
        "3:",
        "cmp rax, 8", // DT_RELASZ
        "jne 5f",
        "mov r9, [rcx + 8]",
        "5:",
        "add rcx, 16",
        "jmp 2b",
        "4:",
        "add r8, rbx",
        "add r9, r8",
        "6:",
        "cmp r8, r9",
        "jae 7f",
        "cmp dword ptr [r8 + 8], 8", // R_X86_64_RELATIVE
        "jne 8f",
        "mov rax, [r8 + 16]",
        "add rax, rbx",
        "mov rdx, [r8]",
        "mov [rbx + rdx], rax",
        "add r8, 24",
        "jmp 6b",
        "8:",
        "mov edi, 2",
        "lea rsi, [rip + 9f]",
        "mov edx, 59", // the message's length
        "mov eax, 1", // write
        "syscall",
        "mov edi, 125",
        "mov eax, 231", // exit_group
        "syscall",
        "7:",
        "mov rdi, r12",
        "and rsp, -16",
        "call {entry}",
        "ud2",
        ".pushsection .rodata",
        "9:",
        ".ascii \"rnohup: linked wrongly: relocations its start cannot apply\\n\"",
        ".popsection",
        entry = sym entry,
    );

    /// Runs the front.
    ///
    /// # Safety
    /// Called once, from `_start`, with the kernel's initial stack pointer,
    /// after the relocations.
    unsafe extern "C" fn entry(sp: *const usize) -> ! {
        // SAFETY: sp is the kernel's initial stack pointer.
        let process = unsafe { Process::from_stack(sp) };
        run(&process)
    }

    #[panic_handler]
    fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
        let _ = sys::write_all(2, b"rnohup: internal error\n");
        sys::exit(125)
    }

    /// Named by the precompiled `core`; never called (`panic = "abort"`: nothing
    /// unwinds).
    #[unsafe(no_mangle)]
    pub extern "C" fn rust_eh_personality() {}

    // The memory functions the compiler calls (libc provides them elsewhere;
    // `compiler_builtins` does not on this target). String instructions, so
    // that the compiler cannot turn the body back into a call to itself.

    /// `memcpy`.
    ///
    /// # Safety
    /// As C's: `n` bytes readable at `src`, writable at `dst`, not overlapping.
    #[unsafe(no_mangle)]
    pub unsafe extern "C" fn memcpy(dst: *mut u8, src: *const u8, n: usize) -> *mut u8 {
        // SAFETY: the caller's promise; rep movsb copies exactly n bytes forward
        // (the ABI keeps the direction flag clear).
        unsafe {
            core::arch::asm!("rep movsb", inout("rcx") n => _, inout("rdi") dst => _,
                             inout("rsi") src => _, options(nostack, preserves_flags));
        }
        dst
    }

    /// `memmove`.
    ///
    /// # Safety
    /// As C's: `n` bytes readable at `src`, writable at `dst`.
    #[unsafe(no_mangle)]
    pub unsafe extern "C" fn memmove(dst: *mut u8, src: *const u8, n: usize) -> *mut u8 {
        if (dst as usize).wrapping_sub(src as usize) >= n {
            // SAFETY: dst does not start inside [src, src + n): a forward copy
            // reads every byte before it is overwritten.
            return unsafe { memcpy(dst, src, n) };
        }
        // SAFETY: copied backwards (std), from the last byte; the flag is
        // cleared again (cld) as the ABI requires.
        unsafe {
            core::arch::asm!("std", "rep movsb", "cld", inout("rcx") n => _,
                             inout("rdi") dst.wrapping_add(n).wrapping_sub(1) => _,
                             inout("rsi") src.wrapping_add(n).wrapping_sub(1) => _,
                             options(nostack));
        }
        dst
    }

    /// `memset`.
    ///
    /// # Safety
    /// As C's: `n` bytes writable at `dst`.
    #[unsafe(no_mangle)]
    pub unsafe extern "C" fn memset(dst: *mut u8, c: i32, n: usize) -> *mut u8 {
        // SAFETY: the caller's promise; rep stosb writes exactly n bytes.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        unsafe {
            core::arch::asm!("rep stosb", inout("rcx") n => _, inout("rdi") dst => _,
                             in("al") c as u8, options(nostack, preserves_flags));
        }
        dst
    }

    /// `memcmp`.
    ///
    /// # Safety
    /// As C's: `n` bytes readable at `a` and at `b`.
    #[unsafe(no_mangle)]
    pub unsafe extern "C" fn memcmp(left: *const u8, right: *const u8, n: usize) -> i32 {
        for i in 0..n {
            // SAFETY: i < n; volatile keeps this a loop, not a call to memcmp.
            let (l, r) = unsafe { (left.add(i).read_volatile(), right.add(i).read_volatile()) };
            if l != r {
                return i32::from(l) - i32::from(r);
            }
        }
        0
    }

    /// `strlen` (the compiler turns a loop that looks for a NUL into a call).
    ///
    /// # Safety
    /// As C's: a NUL-terminated string at `s`.
    #[unsafe(no_mangle)]
    pub unsafe extern "C" fn strlen(s: *const u8) -> usize {
        let mut n = 0;
        // SAFETY: the caller's promise: every byte up to the NUL is readable;
        // volatile keeps this a loop, not a call to strlen.
        while unsafe { s.add(n).read_volatile() } != 0 {
            n += 1;
        }
        n
    }

    /// `bcmp`: [`memcmp`].
    ///
    /// # Safety
    /// As [`memcmp`].
    #[unsafe(no_mangle)]
    pub unsafe extern "C" fn bcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
        // SAFETY: the same promise.
        unsafe { memcmp(a, b, n) }
    }
}
