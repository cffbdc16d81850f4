//! The probe: a long-lived job that reports on itself.
//!
//! `huplab --probe NAME DIR` writes its PID to `DIR/NAME.pid`, then every 100 ms
//! writes a line to its standard output and rewrites `DIR/NAME.state` with how
//! many lines it tried, how many writes failed (EIO once the terminal is hung
//! up), and how many SIGCONTs it received. It leaves SIGHUP exactly as it
//! inherited it: whether it dies of SIGHUP is what the lab observes.
//!
//! A probe never outlives its lab. The lab is not its parent (the probes are
//! the lab shell's jobs, or daemons of their own), so `PR_SET_PDEATHSIG` cannot
//! help: the lab names itself in `HUPLAB_LAB` (`PID STARTTIME`), each probe opens
//! a pidfd of it (checking the start time, so a reused PID is never watched),
//! and waits on that pidfd between ticks. When the lab ends without stopping its
//! probes (killed with SIGKILL), every probe stops writing, removes the lab's
//! directory and exits: nothing of a killed lab lasts more than about 100 ms
//! (and a lab killed before any probe ran has its directory removed by the next
//! run, see [`crate::lab`]).

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use hupkit_common::exit::{self, Status};
use hupkit_common::pidfd::PidFd;
use hupkit_common::proc::Stat;
use hupkit_common::{safefile, stdio};
use nix::unistd::Pid;

/// The environment variable through which the lab names itself to its probes.
pub const LAB_ENV: &str = "HUPLAB_LAB";

/// A probe writes a line (and its report) every tick: often enough that the lab
/// sees a survivor within a few tenths of a second, and that a probe of a killed
/// lab ends within one.
const TICK: Duration = Duration::from_millis(100);

/// How long a probe of a killed lab keeps trying to remove the lab's directory:
/// the other probes write in it until their next tick, which a second covers.
const REMOVE_FOR: Duration = Duration::from_secs(1);

/// The pause between two tries.
const REMOVE_RETRY: Duration = Duration::from_millis(50);

/// The lab a probe belongs to.
enum Lab {
    /// Running: its pidfd becomes readable when it ends.
    Watched(PidFd),
    /// Already gone (or its PID now belongs to another process).
    Gone,
    /// None named (a probe started by hand): nothing to watch.
    Unnamed,
}

/// Opens a pidfd of the lab that `HUPLAB_LAB` names, checking that the process
/// at that PID is still the lab (same start time) once the pidfd pins it.
fn watch_lab() -> Lab {
    let Some(text) = std::env::var_os(LAB_ENV) else {
        return Lab::Unnamed;
    };
    let text = text.to_string_lossy();
    let parsed = text.split_once(' ').and_then(|(pid, start)| {
        Some((pid.parse::<i32>().ok()?, start.trim().parse::<u64>().ok()?))
    });
    let Some((pid, start)) = parsed else {
        return Lab::Unnamed;
    };
    let pid = Pid::from_raw(pid);
    let Ok(fd) = PidFd::open(pid) else {
        return Lab::Gone;
    };
    match Stat::read(pid) {
        Ok(st) if st.starttime == start && !st.state.has_exited() => Lab::Watched(fd),
        _ => Lab::Gone,
    }
}

/// Removes the directory of a lab that ended without cleaning up: only a real
/// directory (not a symbolic link) owned by this user, and only once no other
/// probe writes to it any more (each stops within a tick), so the removal is
/// retried for a second.
fn remove_lab_dir(dir: &Path) {
    use std::os::unix::fs::MetadataExt;
    let deadline = std::time::Instant::now() + REMOVE_FOR;
    loop {
        match std::fs::symlink_metadata(dir) {
            Ok(m) if m.is_dir() && m.uid() == nix::unistd::geteuid().as_raw() => {}
            _ => return,
        }
        if std::fs::remove_dir_all(dir).is_ok() || std::time::Instant::now() > deadline {
            return;
        }
        std::thread::sleep(REMOVE_RETRY);
    }
}

/// Runs the probe for ever (until a signal ends it). Returns only on a setup
/// failure (1, silently: its standard error is the lab's terminal) or when the
/// lab is gone (0).
#[must_use]
pub fn run(name: &str, dir: &Path) -> Status {
    let conts = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&conts);
    // SAFETY: the handler only increments an atomic, which is async-signal-safe.
    let hooked = unsafe {
        signal_hook::low_level::register(nix::libc::SIGCONT, move || {
            counter.fetch_add(1, Ordering::SeqCst);
        })
    };
    if hooked.is_err() {
        return exit::FAILURE;
    }
    let lab = watch_lab();
    if matches!(lab, Lab::Gone) {
        remove_lab_dir(dir);
        return exit::SUCCESS;
    }
    let pid = std::process::id();
    if safefile::write_atomic(
        &dir.join(format!("{name}.pid")),
        format!("{pid}\n").as_bytes(),
        0o644,
    )
    .is_err()
    {
        return exit::FAILURE;
    }
    let state = dir.join(format!("{name}.state"));
    let (mut ticks, mut errors) = (0u64, 0u64);
    loop {
        ticks += 1;
        let line = format!("{name} tick {ticks}\n");
        if stdio::write_all(stdio::STDOUT, line.as_bytes()).is_err() {
            errors += 1;
        }
        let report = format!(
            "ticks={ticks} errors={errors} conts={}\n",
            conts.load(Ordering::SeqCst)
        );
        let _ = safefile::write_atomic(&state, report.as_bytes(), 0o644);
        match &lab {
            // A signal (SIGCONT) cuts the wait short: that only makes a tick early.
            Lab::Watched(fd) => {
                if fd.wait_exit(TICK).unwrap_or(false) {
                    remove_lab_dir(dir);
                    return exit::SUCCESS;
                }
            }
            Lab::Gone | Lab::Unnamed => std::thread::sleep(TICK),
        }
    }
}

/// What a probe last reported.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Report {
    /// Lines it tried to write.
    pub ticks: u64,
    /// Writes that failed.
    pub errors: u64,
    /// SIGCONTs received.
    pub conts: u64,
}

/// Reads `DIR/NAME.state`.
#[must_use]
pub fn read(dir: &Path, name: &str) -> Report {
    let text = std::fs::read_to_string(dir.join(format!("{name}.state"))).unwrap_or_default();
    let mut r = Report::default();
    for word in text.split_ascii_whitespace() {
        if let Some((k, v)) = word.split_once('=') {
            let v = v.parse().unwrap_or(0);
            match k {
                "ticks" => r.ticks = v,
                "errors" => r.errors = v,
                "conts" => r.conts = v,
                _ => {}
            }
        }
    }
    r
}
