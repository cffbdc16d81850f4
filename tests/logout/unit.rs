//! `detach --print=systemd` against the real service manager: the unit it
//! prints is loaded, started and stopped by systemd in the container, and the
//! service runs exactly the argv and environment that were given.

use std::process::Command;

use crate::util::{self, container};

/// The unit's name in the container (a runtime unit, gone at the next boot).
const NAME: &str = "hupkit-print-test";

/// The command line, with characters each quoting layer must carry.
const ARGV: [&str; 5] = [
    "/bin/sh",
    "-c",
    "printf '%s\\n' \"$0\" \"$1\" \"$X\" > /run/hupkit-print-test.out; exec sleep 300",
    "a 'b' \"c\" $d %e `f`",
    "tab\there",
];

/// Runs its script as root in the container when dropped, a panic included.
struct Cleanup<'a>(&'a container::Container, String);

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.0.root(&self.1)));
    }
}

#[test]
fn printed_unit_starts_and_stops_under_systemd() {
    let Some(ct) = container::get("logout::unit::printed_unit_starts_and_stops_under_systemd")
    else {
        return;
    };
    let dir = util::open_tempdir();
    let out = Command::new(util::bin("detach"))
        .current_dir(dir.path())
        .args([
            "--print=systemd",
            "--name",
            NAME,
            "-c",
            "/",
            "-E",
            "X=$HOME %h 'q'",
            "--",
        ])
        .args(ARGV)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let unit = String::from_utf8(out.stdout).unwrap();
    assert!(!unit.contains("HUPKITEOF"));
    let path = format!("/run/systemd/system/{NAME}.service");
    let cleanup = format!(
        "systemctl stop {NAME} 2>/dev/null; rm -f {path} /run/hupkit-print-test.out; systemctl daemon-reload"
    );
    // Removed whatever happens (a leftover unit would run for five minutes).
    let _cleanup = Cleanup(&ct, cleanup);
    ct.root(&format!(
        "cat > {path} <<'HUPKITEOF'\n{unit}HUPKITEOF\nsystemctl daemon-reload && systemctl start {NAME}"
    ));
    assert_eq!(
        ct.root(&format!("systemctl is-active {NAME}")).trim(),
        "active"
    );
    // The service's own record of what it was given.
    let mut written = String::new();
    assert!(
        container::poll_slowly(util::DEADLINE, || {
            written = ct.root("cat /run/hupkit-print-test.out 2>/dev/null || true");
            written.lines().count() == 3
        }),
        "the service wrote: {written:?}"
    );
    assert_eq!(written, format!("{}\n{}\n$HOME %h 'q'\n", ARGV[3], ARGV[4]));
    ct.root(&format!("systemctl stop {NAME}"));
    let state = ct.root(&format!("systemctl is-active {NAME} || true"));
    assert_eq!(state.trim(), "inactive");
}
