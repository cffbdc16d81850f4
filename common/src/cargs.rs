//! argv from a C `main`.
//!
//! Every tool's binary has a C `main` (`#![no_main]`, defined by
//! [`crate::entry!`]): Rust's own start-up would reopen closed fds 0-2 on
//! `/dev/null` and set SIGPIPE to ignored before `main` runs, which `rnohup`
//! must not have done, and the others ask for explicitly ([`crate::entry`]). This
//! module turns that `main`'s arguments into `OsString`s.

use std::ffi::{CStr, OsString, c_char, c_int};
use std::os::unix::ffi::OsStringExt;

/// Copies `argv[0..argc]` into owned `OsString`s. A null `argv` or entry ends the list.
///
/// # Safety
/// `argv` must be null or point to `argc` pointers, each null or pointing to a
/// NUL-terminated string, valid for the duration of the call: exactly what the C
/// runtime passes to `main`.
#[must_use]
pub unsafe fn collect(argc: c_int, argv: *const *const c_char) -> Vec<OsString> {
    let mut args = Vec::new();
    if argv.is_null() {
        return args;
    }
    for i in 0..usize::try_from(argc).unwrap_or(0) {
        // SAFETY: the caller guarantees argv has argc entries.
        let p = unsafe { *argv.add(i) };
        if p.is_null() {
            break;
        }
        // SAFETY: the caller guarantees each entry is a NUL-terminated string.
        let s = unsafe { CStr::from_ptr(p) };
        args.push(OsString::from_vec(s.to_bytes().to_vec()));
    }
    args
}
