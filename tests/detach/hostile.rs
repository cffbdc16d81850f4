//! Another local user against root's detach: files planted in shared or foreign
//! directories naming a live process of the test with its real identity, a
//! directory symlink of another user, a lying `MAINPID=`, output links.
//!
//! Everything is planted by root and handed to nobody (65534) with `chown`,
//! which is what nobody could have made itself there. The victims are `sleep`s
//! the test started and reaps ([`ChildGuard`]); "it lives" is checked with
//! `try_wait`, never by name.

use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::Command;

use hupkit_common::identity::Identity;

use super::notify::start_notifier;
use super::{
    Daemon, detach, detach_cmd, file_becomes, open_tempdir, result, root_tempdir, shared_dir,
};
use crate::util::{self, ChildGuard};

const NOBODY: u32 = 65534;

fn chmod(p: &Path, mode: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn give_to_nobody(p: &Path) {
    std::os::unix::fs::lchown(p, Some(NOBODY), Some(NOBODY)).unwrap();
}

/// `dir/precious`: root's data, that only root may read or write.
fn precious(dir: &Path) -> PathBuf {
    let precious = dir.join("precious");
    std::fs::write(&precious, "root's data\n").unwrap();
    chmod(&precious, 0o600);
    precious
}

fn victim() -> ChildGuard {
    ChildGuard::new(util::spawn(Command::new("sleep").arg("60")))
}

fn alive(v: &mut ChildGuard) -> bool {
    v.0.as_mut().unwrap().try_wait().unwrap().is_none()
}

/// `FILE` and `FILE.id` naming `v` exactly as detach would have written them.
fn plant_pidfile(pidfile: &Path, v: &ChildGuard) {
    let id = Identity::of(v.pid()).unwrap();
    std::fs::write(pidfile, format!("{}\n", id.pid)).unwrap();
    let mut id_path = pidfile.as_os_str().to_os_string();
    id_path.push(".id");
    std::fs::write(&id_path, format!("{id}\n")).unwrap();
    chmod(pidfile, 0o644);
    chmod(Path::new(&id_path), 0o644);
}

/// Runs detach with `args` in `dir`: (status, stdout + stderr).
fn run(dir: &Path, args: &[&str]) -> (i32, String) {
    let out = detach_cmd(dir, args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// Pidfiles another user could have written, naming a live process with its
/// real identity: --stop and --status refuse (4) and signal nothing, a start
/// refuses (125) and runs nothing, whatever the place and the way.
#[test]
fn planted_pidfiles_are_never_trusted() {
    let Some(dir) = root_tempdir("needs root to plant as nobody") else {
        return;
    };
    let mut v = victim();
    // 1. In a sticky world-writable directory, owned by nobody.
    let shared = shared_dir(dir.path());
    let sticky = shared.join("v.pid");
    plant_pidfile(&sticky, &v);
    give_to_nobody(&sticky);
    give_to_nobody(&shared.join("v.pid.id"));
    // 2. Root's files, in a directory nobody owns (nobody could replace them).
    let theirs = dir.path().join("theirs");
    std::fs::create_dir(&theirs).unwrap();
    let in_theirs = theirs.join("v.pid");
    plant_pidfile(&in_theirs, &v);
    give_to_nobody(&theirs);
    // 3. Root's pidfile and record in root's directory, but writable by anyone.
    let open = dir.path().join("open.pid");
    plant_pidfile(&open, &v);
    chmod(&open, 0o666);
    // 4. Root's pidfile, but the identity record is nobody's.
    let id_theirs = dir.path().join("idt.pid");
    plant_pidfile(&id_theirs, &v);
    give_to_nobody(&dir.path().join("idt.pid.id"));

    let cases = [
        (
            &sticky,
            "refusing pidfile '{}': it belongs to another user, in a directory others can write to"
                .replace("{}", &sticky.to_string_lossy()),
        ),
        (
            &in_theirs,
            format!(
                "refusing pidfile '{}': directory '{}' belongs to another user",
                in_theirs.display(),
                theirs.display()
            ),
        ),
        (
            &open,
            format!(
                "refusing pidfile '{}': other users can write to it",
                open.display()
            ),
        ),
        (
            &id_theirs,
            format!(
                "refusing identity record '{}.id': it belongs to another user",
                id_theirs.display()
            ),
        ),
    ];
    for (pidfile, why) in &cases {
        let p = pidfile.to_string_lossy();
        for mode in ["--stop", "--status"] {
            assert_eq!(
                run(dir.path(), &[mode, "-p", &p]),
                (4, format!("detach: {why}\n")),
                "{mode} {p}"
            );
            assert!(alive(&mut v), "{mode} -p {p} signalled the victim");
        }
        assert_eq!(
            run(dir.path(), &["-p", &p, "touch", "ran"]),
            (125, format!("detach: {why}\n")),
            "start -p {p}"
        );
        assert!(!dir.path().join("ran").exists());
    }
    // The lock: root's file in nobody's directory, naming the victim.
    let lock = theirs.join("v.lock");
    std::fs::write(&lock, format!("{}\n", Identity::of(v.pid()).unwrap())).unwrap();
    assert_eq!(
        run(dir.path(), &["-l", &lock.to_string_lossy(), "touch", "ran"]),
        (
            125,
            format!(
                "detach: refusing lock file '{}': directory '{}' belongs to another user\n",
                lock.display(),
                theirs.display()
            )
        )
    );
    assert!(!dir.path().join("ran").exists());
    assert!(alive(&mut v));
}

/// A directory symlink planted by nobody in a sticky directory, pointing at a
/// directory of root's: -p and -l through it are refused and root's files are
/// untouched; the same link owned by root is followed.
#[test]
fn directory_symlink_of_another_user_is_not_followed() {
    let Some(dir) = root_tempdir("needs root to plant as nobody") else {
        return;
    };
    let shared = shared_dir(dir.path());
    let private = dir.path().join("private");
    std::fs::create_dir(&private).unwrap();
    chmod(&private, 0o700);
    std::fs::write(private.join("x.pid"), "root's data\n").unwrap();
    std::fs::write(private.join("x.lock"), "root's lock\n").unwrap();
    let link = shared.join("d");
    symlink(&private, &link).unwrap();
    give_to_nobody(&link);

    let why = format!("'{}' is a symbolic link of another user", link.display());
    for (opt, what, name) in [("-p", "pidfile", "x.pid"), ("-l", "lock file", "x.lock")] {
        let through = link.join(name);
        let out = detach(
            dir.path(),
            &[opt, &through.to_string_lossy(), "touch", "ran"],
        );
        assert_eq!(
            result(&out),
            (
                125,
                format!("detach: refusing {what} '{}': {why}\n", through.display())
            )
        );
    }
    assert!(!dir.path().join("ran").exists());
    assert_eq!(
        std::fs::read_to_string(private.join("x.pid")).unwrap(),
        "root's data\n"
    );
    assert_eq!(
        std::fs::read_to_string(private.join("x.lock")).unwrap(),
        "root's lock\n"
    );
    assert!(!private.join("x.pid.id").exists());

    // Root's own link (as /var/run -> /run) is followed.
    let mine = shared.join("r");
    symlink(&private, &mine).unwrap();
    let out = detach(
        dir.path(),
        &[
            "-p",
            &mine.join("y.pid").to_string_lossy(),
            "-l",
            &mine.join("y.lock").to_string_lossy(),
            "sleep",
            "60",
        ],
    );
    assert_eq!(result(&out), (0, String::new()));
    let d = Daemon::from_pidfile(&private.join("y.pid"));
    assert!(d.alive());
    let out = detach_cmd(
        dir.path(),
        &["--stop", "-p", &mine.join("y.pid").to_string_lossy()],
    )
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(d.wait_gone(util::DEADLINE));
}

/// `MAINPID=` naming a process that is not the daemon's (the test's own
/// sleep, PID 1) is ignored with a warning: the pidfile names the daemon. A
/// child of the daemon is accepted.
#[test]
fn foreign_mainpid_is_not_recorded() {
    let dir = open_tempdir();
    let v = victim();
    for foreign in [v.pid().to_string(), "1".to_string()] {
        let out = start_notifier(dir.path(), &format!("MAINPID={foreign}\nREADY=1"));
        let d = Daemon::from_pidfile(&dir.path().join("d.pid"));
        let (code, err) = result(&out);
        assert_eq!(code, 0, "{err}");
        assert_ne!(d.pid().to_string(), foreign, "MAINPID={foreign} recorded");
        assert_eq!(d.stat().comm, "python3");
        assert!(
            err.starts_with(&format!("detach: warning: ignoring MAINPID={foreign}: "))
                && err.ends_with(&format!("; recording PID {}\n", d.pid())),
            "{err}"
        );
        drop(d);
    }
    // A descendant of the daemon is its main process.
    let script = "import os,socket,subprocess,time\np=subprocess.Popen(['sleep','60'])\ns=socket.socket(socket.AF_UNIX,socket.SOCK_DGRAM)\ns.sendto(('MAINPID=%d\\nREADY=1' % p.pid).encode(),os.environ['NOTIFY_SOCKET'])\ntime.sleep(60)\n";
    let out = detach(
        dir.path(),
        &["--notify=20", "-p", "m.pid", "python3", "-c", script],
    );
    let main = Daemon::from_pidfile(&dir.path().join("m.pid"));
    // Kills the daemon itself when the test ends (`main` kills its sleep).
    let _parent = Daemon {
        id: Identity::of(main.stat().ppid).unwrap(),
    };
    assert_eq!(result(&out), (0, String::new()));
    assert_eq!(main.stat().comm, "sleep");
}

/// -o/-e: a symbolic link of another user is never followed (root's file keeps
/// its contents).
#[test]
fn output_link_of_another_user_is_not_followed() {
    let Some(dir) = root_tempdir("needs root to plant as nobody") else {
        return;
    };
    let shared = shared_dir(dir.path());
    let precious = precious(dir.path());
    let link = shared.join("log");
    symlink(&precious, &link).unwrap();
    give_to_nobody(&link);
    for opt in ["-o", "-e"] {
        let out = detach(dir.path(), &[opt, &link.to_string_lossy(), "touch", "ran"]);
        assert_eq!(
            result(&out),
            (
                125,
                format!(
                    "detach: refusing output file '{}': '{}' is a symbolic link of another user\n",
                    link.display(),
                    link.display()
                )
            )
        );
    }
    assert_eq!(std::fs::read_to_string(&precious).unwrap(), "root's data\n");
}

/// With -u, the output files are opened as the user: a root-only file is not
/// handed over (nor truncated); what the user may write, it gets, as its own.
#[test]
fn user_gets_only_output_files_it_could_open() {
    let Some(dir) = root_tempdir("needs root to switch to nobody") else {
        return;
    };
    let shared = shared_dir(dir.path());
    let precious = precious(dir.path());

    // -u nobody -o a root-only file: opened as nobody, so refused by the kernel.
    let out = detach(
        dir.path(),
        &[
            "-u",
            "nobody",
            "-o",
            &precious.to_string_lossy(),
            "touch",
            "ran",
        ],
    );
    assert_eq!(
        result(&out),
        (
            125,
            format!(
                "detach: cannot open '{}': Permission denied\n",
                precious.display()
            )
        )
    );
    assert_eq!(std::fs::read_to_string(&precious).unwrap(), "root's data\n");
    assert!(!dir.path().join("ran").exists());

    // What nobody may write, it gets, created as its own.
    let out = detach(
        dir.path(),
        &[
            "-u",
            "nobody",
            "-o",
            &shared.join("mine.log").to_string_lossy(),
            "-p",
            "n.pid",
            "sh",
            "-c",
            "echo hi; exec sleep 60",
        ],
    );
    assert_eq!(result(&out), (0, String::new()));
    let d = Daemon::from_pidfile(&dir.path().join("n.pid"));
    assert!(file_becomes(&shared.join("mine.log"), "hi\n"));
    assert_eq!(
        std::fs::metadata(shared.join("mine.log")).unwrap().uid(),
        NOBODY
    );
    drop(d);
}
