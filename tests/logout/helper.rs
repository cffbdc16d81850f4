//! The D-Bus helper, `hupkit-dbus`, from the tools' side, on any machine
//! (no systemd needed): detach and rdisown do not link zbus; a missing helper,
//! or one that dies or answers nonsense, is one line and nothing started or
//! changed.
//!
//! Each test runs a copy of the tool from a directory of its own, beside a
//! helper of the test's choosing (or none), since the tools find the helper
//! only relative to their own executable.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use hupkit_common::quote::quote;

use crate::util::{self, ChildGuard};

/// A copy of `tool` in `dir/bin`, with `helper` (a shell script) as
/// `dir/bin/hupkit-dbus`, or no helper at all.
fn tool_copy(dir: &Path, tool: &str, helper: Option<&str>) -> PathBuf {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let exe = bin.join(tool);
    std::fs::copy(util::bin(tool), &exe).unwrap();
    if let Some(script) = helper {
        let path = bin.join("hupkit-dbus");
        std::fs::write(&path, format!("#!/bin/sh\n{script}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    exe
}

fn run(exe: &Path, dir: &Path, args: &[&str]) -> Output {
    Command::new(exe)
        .args(args)
        .current_dir(dir)
        .env("HUPKIT_NO_RECORD", "1")
        .env("HOME", dir)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// `detach --scope` with `helper`: its status and standard error; the
/// command it was given would have made `ran`, and a pidfile was asked for.
fn detach_scope(dir: &Path, helper: Option<&str>) -> (i32, String) {
    let exe = tool_copy(dir, "detach", helper);
    let ran = dir.join("ran");
    let pidfile = dir.join("pid");
    let out = run(
        &exe,
        dir,
        &[
            "--scope",
            "-p",
            pidfile.to_str().unwrap(),
            "touch",
            ran.to_str().unwrap(),
        ],
    );
    assert!(!pidfile.exists(), "a pidfile was written");
    assert!(!ran.exists(), "the command ran");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn detach_and_rdisown_do_not_link_zbus() {
    for tool in ["detach", "rdisown", "disown"] {
        let bytes = std::fs::read(util::bin(tool)).unwrap();
        let found = bytes.windows(4).filter(|w| w == b"zbus").count();
        assert_eq!(found, 0, "{tool} contains 'zbus' {found} times");
    }
    let helper = std::fs::read(util::bin("hupkit-dbus")).unwrap();
    assert!(helper.windows(4).any(|w| w == b"zbus"), "the helper has it");
}

#[test]
fn detach_scope_without_its_helper_says_which_and_starts_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (rc, err) = detach_scope(dir.path(), None);
    let missing = dir.path().join("libexec/hupkit/hupkit-dbus");
    assert_eq!(
        (rc, err),
        (
            125,
            format!(
                "detach: cannot use --scope: helper {} is missing (reinstall hupkit)\n",
                quote(missing.as_os_str())
            )
        )
    );
}

#[test]
fn detach_scope_with_a_helper_that_dies_or_lies_is_one_line_and_starts_nothing() {
    let cases = [
        ("exit 0", "exited without answering"),
        (
            "echo garbage",
            "answered something that is not a reply: 'garbage'",
        ),
        ("printf 'ok user'", "exited in the middle of a reply"),
        (
            "read l; echo ok sideways",
            "named no service manager: 'sideways'",
        ),
    ];
    for (script, said) in cases {
        let dir = tempfile::tempdir().unwrap();
        let helper = dir.path().join("bin/hupkit-dbus");
        let (rc, err) = detach_scope(dir.path(), Some(script));
        assert_eq!(
            (rc, err),
            (
                125,
                format!(
                    "detach: cannot use --scope: helper {} {said}\n",
                    quote(helper.as_os_str())
                )
            ),
            "helper: {script}"
        );
    }
}

#[test]
fn detach_scope_with_a_helper_that_never_answers_gives_up_at_the_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let helper = dir.path().join("bin/hupkit-dbus");
    let start = std::time::Instant::now();
    let (rc, err) = detach_scope(dir.path(), Some("exec sleep 300"));
    let took = start.elapsed();
    assert_eq!(
        (rc, err),
        (
            125,
            format!(
                "detach: cannot use --scope: helper {} did not answer within {} s\n",
                quote(helper.as_os_str()),
                hupkit_common::dbus::REPLY_DEADLINE.as_secs()
            )
        )
    );
    // The deadline, plus the second detach gives the helper to exit before
    // it kills it: no hang.
    assert!(
        took < hupkit_common::dbus::REPLY_DEADLINE + std::time::Duration::from_secs(10),
        "{took:?}"
    );
}

#[test]
fn detach_scope_whose_helper_fails_the_move_never_runs_the_command() {
    // The connection is fine; the move's answer is not a reply: the daemon,
    // waiting at its gate, never gets to run the command.
    let dir = tempfile::tempdir().unwrap();
    let helper = dir.path().join("bin/hupkit-dbus");
    let (rc, err) = detach_scope(
        dir.path(),
        Some("read l; echo ok user; read l; echo 'ok not a scope'"),
    );
    assert_eq!(rc, 125, "{err}");
    let head = "detach: warning: the daemon will still die at the last logout of ";
    let lines: Vec<&str> = err.lines().filter(|l| !l.starts_with(head)).collect();
    assert_eq!(
        lines,
        [format!(
            "detach: helper {} answered something that is not a reply: 'ok not a scope'",
            quote(helper.as_os_str())
        )],
        "{err}"
    );
}

#[test]
fn rdisown_scope_without_its_helper_fails_and_leaves_the_job_alone() {
    let dir = tempfile::tempdir().unwrap();
    let exe = tool_copy(dir.path(), "rdisown", None);
    let job = ChildGuard::new(
        Command::new("sleep")
            .arg("300")
            .stdin(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let pid = job.pid().as_raw();
    let ignored = || {
        std::fs::read_to_string(format!("/proc/{pid}/status"))
            .unwrap()
            .lines()
            .find_map(|l| l.strip_prefix("SigIgn:").map(|m| m.trim().to_owned()))
            .unwrap()
    };
    let before = ignored();
    let out = run(&exe, dir.path(), &["--scope", &pid.to_string()]);
    let missing = dir.path().join("libexec/hupkit/hupkit-dbus");
    assert_eq!(
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned()
        ),
        (
            Some(1),
            format!(
                "rdisown: cannot use --scope: helper {} is missing (reinstall hupkit)\n",
                quote(missing.as_os_str())
            )
        )
    );
    assert_eq!(ignored(), before, "SIGHUP's disposition was changed");
    assert!(
        hupkit_common::scope::cgroup_of(u32::try_from(pid).unwrap()).is_some(),
        "the job lives"
    );
}
