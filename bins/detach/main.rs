//! `detach`: run a command as a daemon. All logic is in `hupkit_detach`.
//!
//! A C `main` (`#![no_main]`): Rust's start-up before a Rust `main` reads
//! `/proc/self/maps` to place the main thread's stack guard, about 150 µs of CPU
//! in a start that is measured against start-stop-daemon (docs/benchmarks.md).
//! `hupkit_detach::main` does the two things of that start-up detach relies on.
#![no_main]

use std::ffi::{c_char, c_int};

/// The process entry point, called by the C runtime.
#[unsafe(no_mangle)]
extern "C" fn main(argc: c_int, argv: *const *const c_char) -> c_int {
    // SAFETY: argc and argv come straight from the C runtime, as `collect` requires.
    let args = unsafe { hupkit_common::cargs::collect(argc, argv) };
    hupkit_detach::main(args).code()
}
