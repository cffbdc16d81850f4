//! `--user` with a user and groups that exist only through a name service
//! module (Debian's libnss-extrausers), never in /etc/passwd or /etc/group.
//!
//! detach is linked static-pie, and static glibc reaches an NSS module only by
//! loading a second copy of the shared libc, and with it the dynamic loader
//! file, which must be the very build the binary was linked with: after an
//! upgrade of libc, or on another machine, the in-process look-up finds no
//! such user. detach therefore asks `getent` (`hupkit_common::nss`). The test
//! recreates that failure where it cannot be mistaken: detach runs under
//! `unshare --mount`, where a test-made nsswitch.conf (`passwd: files
//! extrausers`) and a test-made /var/lib/extrausers are bind-mounted, and where
//! the loader file that static glibc would load for the module
//! (/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2) is an empty file, while
//! dynamically linked programs still start through a copy of it at their
//! `PT_INTERP` path (/lib64/...: a running loader never opens its own file
//! again). A detach that called `getpwnam` itself fails here with "unknown
//! user" (seen, with a static build that did); one that asks `getent` gets the
//! user, its groups and its home. Nothing of the machine's /etc changes for
//! anyone else (tests run in parallel).

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use super::{Daemon, result};
use crate::util;

/// The NSS-only user: name, ID, primary group, home.
const USER: &str = "hupkit-nss-user";
const UID: u32 = 43_210;
const GROUP_EXTRA: &str = "hupkit-nss-extra";

/// The program that the test's look-ups go through, and its loader.
const GETENT: &str = "/usr/bin/getent";

/// The ELF interpreter (`PT_INTERP`) of `path`, 64-bit little-endian.
fn interpreter(path: &Path) -> Option<PathBuf> {
    let elf = std::fs::read(path).ok()?;
    if elf.get(..6)? != b"\x7fELF\x02\x01" {
        return None;
    }
    let u64_at = |at: usize| -> Option<usize> {
        usize::try_from(u64::from_le_bytes(elf.get(at..at + 8)?.try_into().ok()?)).ok()
    };
    let u16_at = |at: usize| -> Option<usize> {
        Some(usize::from(u16::from_le_bytes(
            elf.get(at..at + 2)?.try_into().ok()?,
        )))
    };
    let (phoff, phentsize, phnum) = (u64_at(0x20)?, u16_at(0x36)?, u16_at(0x38)?);
    (0..phnum).find_map(|i| {
        let at = phoff + i * phentsize;
        if u32::from_le_bytes(elf.get(at..at + 4)?.try_into().ok()?) != 3 {
            return None;
        }
        let (offset, size) = (u64_at(at + 8)?, u64_at(at + 32)?);
        let name = elf.get(offset..offset + size)?;
        let name = name.strip_suffix(b"\0").unwrap_or(name);
        Some(PathBuf::from(String::from_utf8(name.to_vec()).ok()?))
    })
}

/// Whether libnss-extrausers' module is installed (`.ci/run` installs it).
fn has_extrausers() -> bool {
    [
        "/usr/lib/libnss_extrausers.so.2",
        "/usr/lib/x86_64-linux-gnu/libnss_extrausers.so.2",
        "/lib/x86_64-linux-gnu/libnss_extrausers.so.2",
    ]
    .iter()
    .any(|p| Path::new(p).is_file())
        && Path::new("/var/lib/extrausers").is_dir()
}

/// The namespace's files in `dir`, and the loader's two paths: where programs
/// ask for it (`PT_INTERP`), and the file it is (hidden in the namespace).
/// `None` (the test skips) where the layout does not allow the split.
fn prepare(dir: &Path) -> Option<(PathBuf, PathBuf)> {
    let interp = interpreter(Path::new(GETENT))?;
    let real = std::fs::canonicalize(&interp).ok()?;
    let interp_dir = interp.parent()?;
    if std::fs::canonicalize(interp_dir).ok()? == real.parent()? {
        return None;
    }
    let copies = dir.join("interp");
    std::fs::create_dir(&copies).unwrap();
    std::fs::copy(&real, copies.join(interp.file_name()?)).unwrap();
    std::fs::write(dir.join("empty"), "").unwrap();
    std::fs::write(
        dir.join("nsswitch.conf"),
        "passwd: files extrausers\ngroup: files extrausers\nshadow: files\n",
    )
    .unwrap();
    let extra = dir.join("extrausers");
    std::fs::create_dir(&extra).unwrap();
    std::fs::write(
        extra.join("passwd"),
        format!("{USER}:x:{UID}:{UID}:NSS only:/home/{USER}:/bin/sh\n"),
    )
    .unwrap();
    std::fs::write(
        extra.join("group"),
        format!(
            "hupkit-nss-group:x:{UID}:\n{GROUP_EXTRA}:x:{}:{USER}\n",
            UID + 1
        ),
    )
    .unwrap();
    Some((interp, real))
}

/// Runs `detach ARGS` in `dir`, in the private mount namespace of the module
/// documentation.
fn detach_ns(dir: &Path, (interp, real): &(PathBuf, PathBuf), args: &[&str]) -> Output {
    let script = r#"
        set -e
        d=$1; interp_dir=$2; real=$3; shift 3
        mount --bind "$d/nsswitch.conf" /etc/nsswitch.conf
        mount --bind "$d/extrausers" /var/lib/extrausers
        mount --bind "$d/interp" "$interp_dir"
        mount --bind "$d/empty" "$real"
        exec "$@"
    "#;
    Command::new("unshare")
        .args([
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            script,
            "sh",
        ])
        .arg(dir)
        .arg(interp.parent().unwrap_or(Path::new("/")))
        .arg(real)
        .arg(util::bin("detach"))
        .args(args)
        .current_dir(dir)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("LC_ALL", "C")
        .env("HUPKIT_NO_RECORD", "1")
        .stdin(Stdio::null())
        .output()
        .expect("run unshare")
}

/// The daemon's environment variable `name`.
fn env_of(d: &Daemon, name: &str) -> Option<String> {
    let environ = std::fs::read(format!("/proc/{}/environ", d.pid())).unwrap();
    environ.split(|&b| b == 0).find_map(|v| {
        v.strip_prefix(name.as_bytes())
            .and_then(|v| v.strip_prefix(b"="))
            .map(|v| String::from_utf8_lossy(v).into_owned())
    })
}

/// A user, its primary and supplementary groups and its home, all only in
/// the extrausers files; by name, by number, with a group; and one unknown.
#[test]
fn user_that_exists_only_through_nss() {
    let Some(dir) = util::root_tempdir("--user needs root, the namespace too") else {
        return;
    };
    if !has_extrausers() {
        eprintln!("skipped: libnss-extrausers is not installed");
        return;
    }
    let Some(layout) = prepare(dir.path()) else {
        eprintln!("skipped: the loader's PT_INTERP path and its file are in one directory");
        return;
    };
    let out = detach_ns(
        dir.path(),
        &layout,
        &["-u", USER, "-p", "a.pid", "sleep", "60"],
    );
    assert_eq!(result(&out), (0, String::new()));
    let a = Daemon::from_pidfile(&dir.path().join("a.pid"));
    assert_eq!(a.status_field("Uid"), format!("{UID}\t{UID}\t{UID}\t{UID}"));
    assert_eq!(a.status_field("Gid"), format!("{UID}\t{UID}\t{UID}\t{UID}"));
    assert_eq!(a.status_field("Groups"), format!("{UID} {}", UID + 1));
    assert_eq!(env_of(&a, "USER").as_deref(), Some(USER));
    assert_eq!(env_of(&a, "LOGNAME").as_deref(), Some(USER));
    assert_eq!(env_of(&a, "HOME"), Some(format!("/home/{USER}")));

    let by_number = UID.to_string();
    let with_group = format!("{USER}:{GROUP_EXTRA}");
    let out = detach_ns(
        dir.path(),
        &layout,
        &["-u", &by_number, "-p", "b.pid", "sleep", "60"],
    );
    assert_eq!(result(&out), (0, String::new()));
    let b = Daemon::from_pidfile(&dir.path().join("b.pid"));
    assert_eq!(env_of(&b, "USER").as_deref(), Some(USER));
    assert_eq!(b.status_field("Groups"), format!("{UID} {}", UID + 1));

    let out = detach_ns(
        dir.path(),
        &layout,
        &["-u", &with_group, "-p", "c.pid", "sleep", "60"],
    );
    assert_eq!(result(&out), (0, String::new()));
    let c = Daemon::from_pidfile(&dir.path().join("c.pid"));
    let extra = UID + 1;
    assert_eq!(
        c.status_field("Gid"),
        format!("{extra}\t{extra}\t{extra}\t{extra}")
    );
    assert_eq!(c.status_field("Groups"), extra.to_string());

    let out = detach_ns(
        dir.path(),
        &layout,
        &["-u", "hupkit-nss-nobody", "-p", "d.pid", "sleep", "60"],
    );
    assert_eq!(
        result(&out),
        (125, "detach: unknown user 'hupkit-nss-nobody'\n".into())
    );
    assert!(!dir.path().join("d.pid").exists());
}
