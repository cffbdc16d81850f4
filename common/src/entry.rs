//! One entry for every tool: a C `main`, and the start-up each tool asks for.
//!
//! Every binary is `#![no_main]` plus one [`entry!`](crate::entry!) line: the C
//! runtime calls the `main` it defines, which copies argv ([`crate::cargs`]),
//! does the [`Startup`] the tool asked for, and returns the status of the
//! tool's `main(args) -> Status`.
//!
//! Why not Rust's own `main`: its start-up costs about 150 µs (it reads
//! `/proc/self/maps` to place the main thread's stack guard, and sets up the
//! stack-overflow handler), and it does two things behind a tool's back: it opens
//! `/dev/null` on closed fds 0-2, and it sets SIGPIPE to ignored. Here each of
//! those two is a choice a tool writes down in its `main.rs`. (Nothing else of
//! that start-up is missed: the tools write through [`crate::stdio`], never
//! through std's buffered `stdout`, which Rust's runtime would flush at exit.)

use nix::sys::signal::Signal;

/// What a tool's start-up does before its `main` runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Startup {
    /// Opens `/dev/null` on each of fds 0-2 that is closed, so that no file the
    /// tool opens later becomes its standard input, output or error by accident.
    pub open_closed_std_fds: bool,
    /// Sets SIGPIPE to ignored, so that a closed pipe is an `EPIPE` the tool
    /// handles (a quiet exit) rather than a death by signal.
    pub ignore_sigpipe: bool,
}

impl Startup {
    /// Nothing: the tool sees its streams and dispositions exactly as inherited.
    pub const AS_INHERITED: Self = Self {
        open_closed_std_fds: false,
        ignore_sigpipe: false,
    };

    /// Both of the things Rust's runtime would do.
    pub const LIKE_RUST: Self = Self {
        open_closed_std_fds: true,
        ignore_sigpipe: true,
    };

    /// Does what `self` asks. Failures are left as they are (a closed fd stays
    /// closed; SIGPIPE keeps its disposition): the tool then meets them as errors.
    pub fn apply(self) {
        if self.open_closed_std_fds {
            crate::stdio::open_closed_std_fds();
        }
        if self.ignore_sigpipe {
            let _ = crate::signal::ignore(Signal::SIGPIPE);
        }
    }
}

/// Defines the C `main` of a tool's binary: `entry!(hupkit_x::main, Startup::X)`
/// in a `main.rs` that starts with `#![no_main]`. `main` is the tool's
/// `fn(Vec<OsString>) -> Status`, called with argv (argv\[0\] first) after the
/// [`Startup`].
#[macro_export]
macro_rules! entry {
    ($main:path, $startup:expr) => {
        /// The process entry point, called by the C runtime.
        #[unsafe(no_mangle)]
        extern "C" fn main(
            argc: ::std::ffi::c_int,
            argv: *const *const ::std::ffi::c_char,
        ) -> ::std::ffi::c_int {
            // SAFETY: argc and argv come straight from the C runtime, as `collect` requires.
            let args = unsafe { $crate::cargs::collect(argc, argv) };
            $crate::entry::Startup::apply($startup);
            $main(args).code()
        }
    };
}
