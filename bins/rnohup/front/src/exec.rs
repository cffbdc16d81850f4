//! The command's `execvp`, as glibc's: the same file is run, or none.
//!
//! Only success needs to match glibc exactly: on any failure rnohup's full
//! implementation runs (it repeats the search with glibc's own `execvp`, runs
//! `/bin/sh` for a script without `#!`, and reports the error in GNU's words).
//! So this search stops where glibc would stop (an error other than the ones
//! glibc passes over) and hands every script (`ENOEXEC`) to the full one.

use crate::sys::{self, Errno};

/// glibc's search path when `PATH` is unset (`_CS_PATH`).
const DEFAULT_PATH: &[u8] = b"/bin:/usr/bin";

/// Runs `argv[0]` as `execvp` would; returns only if it was not run.
///
/// # Safety
/// `argv` and `envp` are the NULL-terminated arrays the kernel gave the
/// process (or parts of them ending at their NULL).
#[inline(never)]
pub unsafe fn execvp(
    file: &[u8],
    path: Option<&[u8]>,
    argv: *const *const u8,
    envp: *const *const u8,
) {
    let mut buf = [0u8; 4096 + 256 + 2];
    if file.is_empty() {
        return;
    }
    if file.contains(&b'/') {
        let Some(len) = join(&mut buf, b"", file, false) else {
            return;
        };
        // SAFETY: the caller vouches for argv and envp; buf[..len] ends in a NUL.
        let _ = unsafe { sys::execve(&buf[..len], argv, envp) };
        return;
    }
    if file.len() > 255 {
        return;
    }
    for dir in path.unwrap_or(DEFAULT_PATH).split(|&b| b == b':') {
        // An empty element is the current directory: the bare name.
        let Some(len) = join(&mut buf, dir, file, !dir.is_empty()) else {
            return;
        };
        // SAFETY: as above.
        match unsafe { sys::execve(&buf[..len], argv, envp) } {
            Errno::EACCES
            | Errno::ENOENT
            | Errno::ESTALE
            | Errno::ENOTDIR
            | Errno::ENODEV
            | Errno::ETIMEDOUT => {}
            _ => return,
        }
    }
}

/// `dir/file` (or `file`) and a NUL into `buf`; the length with the NUL.
fn join(buf: &mut [u8], dir: &[u8], file: &[u8], slash: bool) -> Option<usize> {
    let len = dir.len() + usize::from(slash) + file.len();
    let out = buf.get_mut(..=len)?;
    out[..dir.len()].copy_from_slice(dir);
    if slash {
        out[dir.len()] = b'/';
    }
    out[len - file.len()..len].copy_from_slice(file);
    out[len] = 0;
    (!out[..len].contains(&0)).then_some(len + 1)
}
