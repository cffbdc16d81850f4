//! `--status` and `--stop` with `--job ID`: a daemon started without `-p`,
//! found through its job record, under the pidfile's rules.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use hupkit_common::records::{self, Entry};

use super::{Daemon, detach, is_root, open_tempdir, result};
use crate::util;

/// Starts `sleep 300` without a pidfile; the daemon and its record's path.
fn start(dir: &Path) -> (Daemon, PathBuf) {
    let out = detach(dir, &["sleep", "300"]);
    assert_eq!(result(&out), (0, String::new()));
    let store = dir.join(".local/state/hupkit/jobs");
    let mut entries = records::list(&store);
    assert_eq!(entries.len(), 1, "{entries:?}");
    match entries.remove(0) {
        Entry::Record(path, r) => (Daemon { id: r.id }, path),
        Entry::Corrupt(path, why) => panic!("{}: {why}", path.display()),
    }
}

/// Exit code and standard output.
fn control(dir: &Path, args: &[&str]) -> (i32, String) {
    let out = detach(dir, args);
    assert_eq!(String::from_utf8_lossy(&out.stderr), "", "{args:?}");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn status_and_stop_by_job_id() {
    let dir = open_tempdir();
    let (d, path) = start(dir.path());
    let job = format!("{}@{}", d.pid(), d.id.starttime);
    let pid = d.pid();
    assert_eq!(
        control(dir.path(), &["--status", "--job", &job]),
        (0, format!("detach: running (PID {pid})\n"))
    );

    // The same PID with another start time: not that job; the daemon untouched.
    let wrong = format!("{}@{}", d.pid(), d.id.starttime + 1);
    let none = format!("detach: not running (no record of job {wrong})\n");
    assert_eq!(
        control(dir.path(), &["--status", "--job", &wrong]),
        (3, none.clone())
    );
    assert_eq!(control(dir.path(), &["--stop", "--job", &wrong]), (1, none));
    assert!(d.alive());
    // A record whose content names another process than its ID is not trusted.
    let other = path.with_file_name(format!("{}-{}.job", d.pid(), d.id.starttime + 1));
    std::fs::copy(&path, &other).unwrap();
    let (code, line) = control(dir.path(), &["--stop", "--job", &wrong]);
    assert_eq!(code, 4, "{line}");
    assert!(line.starts_with("detach: cannot use job record "), "{line}");
    assert!(d.alive());
    std::fs::remove_file(&other).unwrap();

    let out = detach(dir.path(), &["--status", "--job", "12x"]);
    assert_eq!(out.status.code(), Some(125));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).lines().next(),
        Some("detach: invalid job ID '12x': expected PID@STARTTIME, as rjobs --records shows it")
    );
    assert!(d.alive());

    assert_eq!(
        control(dir.path(), &["--stop", "--job", &job]),
        (0, format!("detach: stopped PID {pid}\n"))
    );
    assert!(d.wait_gone(util::DEADLINE));
    assert_eq!(
        control(dir.path(), &["--status", "--job", &job]),
        (
            1,
            format!(
                "detach: not running, but job record '{}' names PID {pid}\n",
                path.display()
            )
        )
    );
}

/// A record that is a symbolic link, another user's, or writable by others is
/// refused with status 4, and nothing is signalled.
#[test]
fn forged_job_records_are_refused() {
    let dir = open_tempdir();
    let (d, path) = start(dir.path());
    let job = format!("{}@{}", d.pid(), d.id.starttime);
    let refused = |why: &str| {
        for mode in ["--status", "--stop"] {
            assert_eq!(
                control(dir.path(), &[mode, "--job", &job]),
                (
                    4,
                    format!("detach: refusing job record '{}': {why}\n", path.display())
                ),
                "{mode}"
            );
            assert!(d.alive(), "{mode}: nothing signalled");
        }
    };
    let real = path.with_extension("real");
    std::fs::rename(&path, &real).unwrap();
    std::os::unix::fs::symlink(&real, &path).unwrap();
    refused("it is a symbolic link");
    std::fs::remove_file(&path).unwrap();
    std::fs::rename(&real, &path).unwrap();

    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o622)).unwrap();
    refused("other users can write to it");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();

    if is_root() {
        std::os::unix::fs::chown(&path, Some(65534), Some(65534)).unwrap();
        refused("it belongs to another user");
        std::os::unix::fs::chown(&path, Some(0), Some(0)).unwrap();
    }
    assert_eq!(
        control(dir.path(), &["--status", "--job", &job]),
        (0, format!("detach: running (PID {})\n", d.pid()))
    );
}
