//! A job record never changes what the command does: under `RLIMIT_FSIZE` too
//! small for the record, or an `RLIMIT_AS` that leaves no room for it, rnohup
//! skips the record, leaves no file behind, and runs the command with the signal
//! dispositions it would have had.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use crate::util;

/// The files under `home`'s record store, temporary ones included.
fn record_files(home: &Path) -> Vec<String> {
    std::fs::read_dir(home.join(".local/state/hupkit/jobs"))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Runs `program args` in `home` with `RLIMIT_FSIZE` or `RLIMIT_AS` set to
/// `limit`, and SIGXFSZ ignored if `ignore_xfsz`.
fn run_limited(
    program: &Path,
    args: &[&std::ffi::OsStr],
    home: &Path,
    resource: nix::libc::__rlimit_resource_t,
    limit: u64,
    ignore_xfsz: bool,
    record: bool,
) -> Output {
    let mut cmd = Command::new(program);
    cmd.args(args)
        .current_dir(home)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", home)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if !record {
        cmd.env("HUPKIT_NO_RECORD", "1");
    }
    // SAFETY: setrlimit and signal are async-signal-safe and touch no memory of ours.
    unsafe {
        cmd.pre_exec(move || {
            let lim = nix::libc::rlimit {
                rlim_cur: limit,
                rlim_max: limit,
            };
            if nix::libc::setrlimit(resource, &raw const lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            if ignore_xfsz {
                nix::libc::signal(nix::libc::SIGXFSZ, nix::libc::SIG_IGN);
            }
            Ok(())
        });
    }
    let child = util::spawn(&mut cmd);
    let mut guard = util::ChildGuard::new(child);
    let out = guard.0.take().unwrap().wait_with_output().unwrap();
    drop(guard);
    out
}

/// The `SigIgn` mask a command prints.
fn sig_ign(out: &Output) -> u64 {
    let text = String::from_utf8_lossy(&out.stdout);
    let hex = text
        .lines()
        .find_map(|l| l.strip_prefix("SigIgn:"))
        .unwrap_or_else(|| panic!("no SigIgn in {text:?}"));
    u64::from_str_radix(hex.trim(), 16).unwrap()
}

/// `ulimit -f 0` (and a limit below the record's size): the command runs, its
/// status is rnohup's, SIGXFSZ is as inherited (default or ignored), SIGHUP is
/// ignored, and the record store holds nothing, not even a temporary file.
#[test]
fn file_size_limit_skips_the_record() {
    let show = ["sh", "-c", "grep SigIgn /proc/self/status; exit 7"];
    let args: Vec<&std::ffi::OsStr> = show.iter().map(std::ffi::OsStr::new).collect();
    for limit in [0, 100] {
        for ignore_xfsz in [false, true] {
            let home = tempfile::tempdir().unwrap();
            let run = |program: &Path, args: &[&std::ffi::OsStr]| {
                let fsize = nix::libc::RLIMIT_FSIZE;
                run_limited(program, args, home.path(), fsize, limit, ignore_xfsz, true)
            };
            // What the command sees without rnohup, under the same conditions.
            let base = run(Path::new("/bin/sh"), &args[1..]);
            let out = run(&util::bin("rnohup"), &args);
            let what = format!("limit {limit}, SIGXFSZ ignored: {ignore_xfsz}: {out:?}");
            assert_eq!(out.status.code(), Some(7), "{what}");
            assert_eq!(out.stderr, b"", "{what}");
            assert_eq!(sig_ign(&out), sig_ign(&base) | 1, "{what}");
            assert_eq!(
                sig_ign(&out) & (1 << (nix::libc::SIGXFSZ - 1)) != 0,
                ignore_xfsz,
                "{what}"
            );
            assert!(
                record_files(home.path()).is_empty(),
                "{what}: {:?}",
                record_files(home.path())
            );
        }
    }
}

/// A tight `RLIMIT_AS`: at the smallest limit under which rnohup runs the
/// command without a record (400 KB of arguments make the record's share
/// large), rnohup with records on runs it too, as GNU nohup does. For the
/// front (`rnohup`, whose record needs no memory of its own but which runs
/// the full implementation to create a missing record directory) and for the
/// full implementation (`hupkit-rnohup`) alone.
#[test]
fn tight_address_space_skips_the_record() {
    for program in [util::bin("rnohup"), util::bin("hupkit-rnohup")] {
        tight_address_space(&program);
    }
}

fn tight_address_space(program: &Path) {
    // Four arguments of 100 KB (one may not exceed 128 KB).
    let big = std::ffi::OsString::from("a".repeat(100_000));
    let args: [&std::ffi::OsStr; 5] = ["true".as_ref(), &big, &big, &big, &big];
    let home = tempfile::tempdir().unwrap();
    let run = |program: &Path, limit: u64, record: bool| {
        let space = nix::libc::RLIMIT_AS;
        run_limited(program, &args, home.path(), space, limit, false, record)
    };
    let runs = |limit: u64, record: bool| run(program, limit, record).status.code() == Some(0);
    // The smallest limit (to 16 KB) under which rnohup runs `true` unrecorded.
    let (mut low, mut high) = (1u64 << 20, 1u64 << 30);
    assert!(runs(high, false), "{} runs under 1 GB", program.display());
    while high - low > 16 * 1024 {
        let mid = low + (high - low) / 2;
        if runs(mid, false) {
            high = mid;
        } else {
            low = mid;
        }
    }
    // A margin for address-space layout randomisation, far below the record's
    // old share (several copies of the argument).
    let limit = high + 64 * 1024;
    assert!(
        runs(limit, false),
        "{} unrecorded at {limit}",
        program.display()
    );
    let out = run(program, limit, true);
    assert_eq!(
        util::describe(Some(out.status)),
        "exit 0",
        "{} with a record at {limit} bytes: {}",
        program.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        record_files(home.path())
            .iter()
            .all(|n| std::path::Path::new(n)
                .extension()
                .is_some_and(|e| e == "job")
                && !n.starts_with('.')),
        "{:?}",
        record_files(home.path())
    );
    if super::gnu_available() {
        let out = run(Path::new(super::GNU), limit, true);
        assert_eq!(out.status.code(), Some(0), "GNU nohup at {limit}");
    }
}
