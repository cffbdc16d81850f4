//! `detach`: run a command as a daemon. All logic is in `hupkit_detach`.
//!
//! A C `main` (`#![no_main]`): Rust's start-up before a Rust `main` reads
//! `/proc/self/maps` to place the main thread's stack guard, about 150 µs of CPU
//! in a start that is measured against start-stop-daemon (docs/benchmarks.md).
//! `hupkit_detach::status` does the two things of that start-up detach relies on.
#![no_main]

use std::ffi::{c_char, c_int};

/// The process entry point, called by the C runtime.
#[unsafe(no_mangle)]
extern "C" fn main(_argc: c_int, _argv: *const *const c_char) -> c_int {
    // The arguments are read by clap from std's own copy (std::env::args_os,
    // which glibc hands to std before main).
    hupkit_detach::status()
}
