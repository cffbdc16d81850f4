//! `rnohup`: run a command immune to hangups. All logic is in `hupkit_rnohup`.
//!
//! A C `main` (`#![no_main]`), because Rust's start-up would reopen closed fds 0-2
//! on `/dev/null` and ignore SIGPIPE before a Rust `main` runs, and `rnohup` must
//! see the standard streams and signal dispositions exactly as inherited.
#![no_main]

use std::ffi::{c_char, c_int};

/// The process entry point, called by the C runtime.
#[unsafe(no_mangle)]
extern "C" fn main(argc: c_int, argv: *const *const c_char) -> c_int {
    // SAFETY: argc and argv come straight from the C runtime, as `collect` requires.
    let args = unsafe { hupkit_common::cargs::collect(argc, argv) };
    hupkit_rnohup::main(&args).code()
}
