//! argv from a C `main`.
//!
//! Tools whose behaviour depends on the standard streams exactly as inherited
//! (`rnohup` must see a closed stdout as closed) define a C `main` with
//! `#![no_main]`, because Rust's own start-up reopens closed fds 0-2 on
//! `/dev/null` and sets SIGPIPE to ignored before `main` runs. This module turns
//! that `main`'s arguments into `OsString`s.

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
