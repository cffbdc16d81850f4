//! hupkit's end-to-end tests: one test binary, one module per tool, real
//! processes on real pseudo-terminals, plus the freshness check of the generated
//! files.

// A failed step in a test helper is a failed test: panicking there is the point.
#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]
// detach: real daemons, pidfiles, records, readiness, hostile paths.
mod detach;
// disown on a real `bash -i`, then a hangup: every kind of job survives.
mod disown;
// The committed completions and man pages match the clap definitions.
mod generated;
// cargo xtask install/uninstall into a DESTDIR, listed with modes; the .deb in a chroot.
mod install;
// huplab: the same table for the same event, nothing left behind.
mod huplab;
// rjobs, rbg and rfg on a real `bash -i` in a pseudo-terminal.
mod jobcontrol;
// The logout level against a real systemd + logind over real ssh (cargo xtask container up).
mod logout;
// Job records: one per job, its own start time, aligned columns, HUPKIT_NO_RECORD.
mod records;
// Every tool under hostile input, races, PID reuse, fuzzing and soak.
mod reliability;
// rjobs after the drop: where output goes, -A, empty views, devpts instances.
mod rjobs;
// rnohup against GNU nohup, stream by stream, and its own options.
mod rnohup;
// Shared helpers: the binaries, pseudo-terminals, deadlines, reaping guards.
mod util;

use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};

/// Under `nohup cargo test` this binary starts with SIGHUP ignored, and every
/// process a test starts would inherit that (an ignored signal survives
/// `execve`): every test of what a hangup does would see "already ignored"
/// and fail. A handler that does nothing keeps this process alive through a
/// hangup, as nohup meant, while the processes it starts begin with the
/// default (`execve` resets a caught signal). Runs before `main`, from
/// `.init_array`, so before any test thread exists; a SIGHUP at its default
/// is left alone.
extern "C" fn hangups_reach_children() {
    extern "C" fn survive(_: nix::libc::c_int) {}
    let keep = SigAction::new(
        SigHandler::Handler(survive),
        SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    // SAFETY: only this thread exists (before main); `survive` does nothing,
    // so it is async-signal-safe. The old action is put back unless it was
    // SIG_IGN.
    unsafe {
        if let Ok(old) = sigaction(Signal::SIGHUP, &keep) {
            if !matches!(old.handler(), SigHandler::SigIgn) {
                let _ = sigaction(Signal::SIGHUP, &old);
            }
        }
    }
}

#[used]
#[unsafe(link_section = ".init_array")]
static HANGUPS_REACH_CHILDREN: extern "C" fn() = hangups_reach_children;
