//! The probe: a long-lived job that reports on itself.
//!
//! `huplab --probe NAME DIR` writes its PID to `DIR/NAME.pid`, then every 100 ms
//! writes a line to its standard output and rewrites `DIR/NAME.state` with how
//! many lines it tried, how many writes failed (EIO once the terminal is hung
//! up), and how many SIGCONTs it received. It leaves SIGHUP exactly as it
//! inherited it: whether it dies of SIGHUP is what the lab observes.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use hupkit_common::{safefile, stdio};

/// Runs the probe for ever (until a signal ends it). Returns only on a setup failure.
#[must_use]
pub fn run(name: &str, dir: &Path) -> i32 {
    let conts = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&conts);
    // SAFETY: the handler only increments an atomic, which is async-signal-safe.
    let hooked = unsafe {
        signal_hook::low_level::register(nix::libc::SIGCONT, move || {
            counter.fetch_add(1, Ordering::SeqCst);
        })
    };
    if hooked.is_err() {
        return 1;
    }
    let pid = std::process::id();
    if safefile::write_atomic(
        &dir.join(format!("{name}.pid")),
        format!("{pid}\n").as_bytes(),
        0o644,
    )
    .is_err()
    {
        return 1;
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
        std::thread::sleep(Duration::from_millis(100));
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
