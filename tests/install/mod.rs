//! `cargo xtask install`, `uninstall` and `deb`, run for real: the xtask
//! binary (built once by cargo for these tests) installs the suite's own
//! binaries (`--no-build --bin-dir`, the ones cargo built for the tests) into a
//! temporary `DESTDIR`; the listing is checked file by file with its mode, and
//! uninstall must leave the directory as it was. The Debian package is built
//! the same way and installed in a throwaway chroot over the systemd
//! container's cached root filesystem (`cargo xtask deb-check`'s code), never
//! on this machine.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write as _;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use crate::util::bin;

/// The xtask binary, built once for this test run.
fn xtask() -> &'static Path {
    static XTASK: OnceLock<PathBuf> = OnceLock::new();
    XTASK.get_or_init(|| {
        let out = Command::new(env!("CARGO"))
            .args([
                "build",
                "--locked",
                "--quiet",
                "--package",
                "xtask",
                "--bin",
                "xtask",
                "--message-format=json",
            ])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(out.status.success(), "cargo build -p xtask: {out:?}");
        let text = String::from_utf8(out.stdout).unwrap();
        let exe = text
            .lines()
            .filter(|l| l.contains("\"reason\":\"compiler-artifact\""))
            .find_map(|l| {
                let at = l.find("\"executable\":\"")? + "\"executable\":\"".len();
                let end = l[at..].find('"')?;
                Some(PathBuf::from(&l[at..at + end]))
            })
            .expect("cargo names the xtask executable");
        assert!(exe.ends_with("xtask"), "{}", exe.display());
        exe
    })
}

/// The directory of the suite's binaries, as cargo built them for the tests.
fn bin_dir() -> PathBuf {
    bin("rnohup").parent().unwrap().to_path_buf()
}

/// Runs `xtask ARGS` (as `user`, if given, through setpriv), with a time
/// limit.
fn run_xtask(user: Option<&str>, args: &[&str]) -> Output {
    let mut cmd = Command::new("timeout");
    cmd.args(["--kill-after=5", "300"]);
    if let Some(u) = user {
        cmd.args([
            "setpriv",
            &format!("--reuid={u}"),
            &format!("--regid={u}"),
            "--clear-groups",
        ]);
    }
    cmd.arg(xtask())
        .args(args)
        .env_remove("CARGO_TARGET_DIR")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// A temporary DESTDIR that others may enter (the tests drop to nobody).
fn destdir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

/// Every entry under `root`: relative path → `d 755` or `f 644`.
fn listing(root: &Path) -> BTreeMap<String, String> {
    fn walk(root: &Path, at: &Path, out: &mut BTreeMap<String, String>) {
        for e in fs::read_dir(at).unwrap() {
            let p = e.unwrap().path();
            let meta = fs::symlink_metadata(&p).unwrap();
            let kind = if meta.is_dir() {
                "d"
            } else if meta.is_file() {
                "f"
            } else {
                "?"
            };
            let rel = p.strip_prefix(root).unwrap().display().to_string();
            out.insert(rel, format!("{kind} {:o}", meta.mode() & 0o7777));
            if meta.is_dir() {
                walk(root, &p, out);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

/// What install must put under `prefix` (relative to DESTDIR), with modes,
/// directories included, written out here rather than taken from xtask's plan.
fn expected(prefix: &str, zsh: &str) -> BTreeMap<String, String> {
    const TOOLS: [&str; 8] = [
        "rnohup", "detach", "rjobs", "rbg", "rfg", "disown", "rdisown", "huplab",
    ];
    let p = prefix.trim_start_matches('/');
    let mut files = Vec::new();
    for t in TOOLS {
        files.push((format!("{p}/bin/{t}"), "f 755"));
        files.push((format!("{p}/share/man/man1/{t}.1"), "f 644"));
        files.push((
            format!("{p}/share/bash-completion/completions/{t}"),
            "f 644",
        ));
        files.push((format!("{p}/{zsh}/_{t}"), "f 644"));
        files.push((
            format!("{p}/share/fish/vendor_completions.d/{t}.fish"),
            "f 644",
        ));
    }
    // The helpers, out of PATH: the D-Bus helper of detach and rdisown, and
    // rnohup's full implementation.
    files.push((format!("{p}/libexec/hupkit/hupkit-dbus"), "f 755"));
    files.push((format!("{p}/libexec/hupkit/hupkit-rnohup"), "f 755"));
    files.push((format!("{p}/share/doc/hupkit/README.md"), "f 644"));
    files.push((format!("{p}/share/doc/hupkit/LICENSE"), "f 644"));
    let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs");
    for e in fs::read_dir(docs).unwrap() {
        let name = e.unwrap().file_name().into_string().unwrap();
        if Path::new(&name).extension().is_some_and(|x| x == "md") {
            files.push((format!("{p}/share/doc/hupkit/docs/{name}"), "f 644"));
        }
    }
    files.push((format!("{p}/share/hupkit/install-manifest"), "f 644"));
    let mut out = BTreeMap::new();
    for (f, mode) in files {
        let mut dir = Path::new(&f).parent();
        while let Some(d) = dir.filter(|d| !d.as_os_str().is_empty()) {
            out.insert(d.display().to_string(), "d 755".to_string());
            dir = d.parent();
        }
        out.insert(f, mode.to_string());
    }
    out
}

/// Installs into a fresh DESTDIR with `prefix`, checks the listing and the
/// contents, uninstalls and checks that DESTDIR is as it was (with `foreign`
/// files placed there before, which must stay).
fn install_and_uninstall(prefix: &str, zsh: &str, foreign: &[&str]) {
    let dest = destdir();
    for f in foreign {
        let p = dest.path().join(f);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, "not hupkit's\n").unwrap();
    }
    let before = listing(dest.path());
    let d = dest.path().to_str().unwrap();
    let bins = bin_dir();
    let out = run_xtask(
        None,
        &[
            "install",
            "--no-build",
            "--bin-dir",
            bins.to_str().unwrap(),
            "--destdir",
            d,
            "--prefix",
            prefix,
        ],
    );
    assert!(out.status.success(), "install: {out:?}");
    let mut want = expected(prefix, zsh);
    want.extend(before.clone());
    assert_eq!(listing(dest.path()), want, "install --prefix {prefix}");
    // One line per file, with its path.
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        stdout.lines().count(),
        want.values().filter(|m| m.starts_with('f')).count() - foreign.len()
    );
    // The same bytes as the sources.
    let root = dest.path().join(prefix.trim_start_matches('/'));
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    assert_eq!(
        fs::read(root.join("bin/rnohup")).unwrap(),
        fs::read(bin("rnohup")).unwrap()
    );
    assert_eq!(
        fs::read(root.join("share/man/man1/rfg.1")).unwrap(),
        fs::read(repo.join("man/rfg.1")).unwrap()
    );
    assert_eq!(
        fs::read(root.join(zsh).join("_rjobs")).unwrap(),
        fs::read(repo.join("completions/_rjobs")).unwrap()
    );
    // The installed binary runs (--version is the full implementation's,
    // which the front finds in PREFIX/libexec/hupkit).
    let v = Command::new(root.join("bin/rnohup"))
        .arg("--version")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&v.stdout).starts_with("rnohup (hupkit) "));
    // The installed detach finds its helper in PREFIX/libexec/hupkit (it
    // then fails for want of systemd, or starts `true` in a scope).
    assert_eq!(
        fs::read(root.join("libexec/hupkit/hupkit-dbus")).unwrap(),
        fs::read(bin("hupkit-dbus")).unwrap()
    );
    let s = Command::new(root.join("bin/detach"))
        .args(["--scope", "true"])
        .env("HUPKIT_NO_RECORD", "1")
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&s.stderr);
    assert!(!said.contains("is missing"), "{said}");

    let out = run_xtask(None, &["uninstall", "--destdir", d, "--prefix", prefix]);
    assert!(out.status.success(), "uninstall: {out:?}");
    assert_eq!(listing(dest.path()), before, "uninstall --prefix {prefix}");
    // A second uninstall has no manifest to go by: it says so and fails.
    let out = run_xtask(None, &["uninstall", "--destdir", d, "--prefix", prefix]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.starts_with("xtask uninstall: cannot read the manifest '")
            && err.contains("': No such file or directory (nothing installed there")
            && err.lines().count() == 1,
        "{err}"
    );
}

#[test]
fn install_usr_puts_every_file_with_its_mode_and_uninstall_restores() {
    install_and_uninstall("/usr", "share/zsh/vendor-completions", &[]);
}

#[test]
fn install_usr_local_uses_site_functions_and_uninstall_keeps_others_files() {
    install_and_uninstall(
        "/usr/local",
        "share/zsh/site-functions",
        &["usr/local/share/man/man1/other.1", "usr/local/bin/other"],
    );
}

#[test]
fn install_into_an_unwritable_prefix_fails_first_and_writes_nothing() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: needs root for a private mount namespace");
        return;
    }
    // usr/ is a read-only bind mount in a mount namespace of the install's
    // own: even root cannot write there, and the check must find that before
    // copying a single file. (Not by dropping to nobody: nobody may not be
    // able to read the checkout, e.g. a clone under a 0700 directory.)
    let dest = destdir();
    let usr = dest.path().join("usr");
    fs::create_dir_all(usr.join("bin")).unwrap();
    let before = listing(dest.path());
    let bins = bin_dir();
    let out = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "--", "sh", "-c"])
        .arg(r#"mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" "$0" && exec "$@""#)
        .arg(&usr)
        .arg(xtask())
        .args([
            "install",
            "--no-build",
            "--bin-dir",
            bins.to_str().unwrap(),
            "--destdir",
            dest.path().to_str().unwrap(),
            "--prefix",
            "/usr",
        ])
        .env_remove("CARGO_TARGET_DIR")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.starts_with(&format!(
            "xtask install: cannot write to '{}",
            usr.display()
        )) && err.ends_with(": Read-only file system; nothing was installed\n")
            && err.lines().count() == 1,
        "{err}"
    );
    assert!(out.stdout.is_empty());
    assert_eq!(listing(dest.path()), before);
}

#[test]
fn deb_holds_the_files_debian_expects_and_installs_cleanly_in_a_chroot() {
    let out_dir = tempfile::tempdir().unwrap();
    let bins = bin_dir();
    let out = run_xtask(
        None,
        &[
            "deb",
            "--no-build",
            "--bin-dir",
            bins.to_str().unwrap(),
            "--out-dir",
            out_dir.path().to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "deb: {out:?}");
    let arch = String::from_utf8(
        Command::new("dpkg")
            .arg("--print-architecture")
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let deb = out_dir.path().join(format!(
        "hupkit_{}_{}.deb",
        env!("CARGO_PKG_VERSION"),
        arch.trim()
    ));
    assert!(deb.is_file(), "{}", deb.display());
    // Only the package is left in the output directory.
    assert_eq!(fs::read_dir(out_dir.path()).unwrap().count(), 1);

    let field = |name: &str| {
        let o = Command::new("dpkg-deb")
            .arg("--field")
            .arg(&deb)
            .arg(name)
            .output()
            .unwrap();
        String::from_utf8(o.stdout).unwrap().trim().to_string()
    };
    assert_eq!(field("Package"), "hupkit");
    assert_eq!(field("Section"), "utils");
    assert_eq!(field("Priority"), "optional");
    assert!(
        field("Depends").starts_with("libc6 (>= "),
        "{}",
        field("Depends")
    );
    assert!(field("Installed-Size").parse::<u64>().unwrap() > 0);
    assert!(field("Description").lines().count() > 2);

    let contents = Command::new("dpkg-deb")
        .arg("--contents")
        .arg(&deb)
        .output()
        .unwrap();
    let contents = String::from_utf8(contents.stdout).unwrap();
    let entry = |path: &str| {
        contents
            .lines()
            .find(|l| l.ends_with(&format!(" ./{path}")))
            .map(|l| l.split_whitespace().take(2).collect::<Vec<_>>().join(" "))
    };
    for t in [
        "rnohup", "detach", "rjobs", "rbg", "rfg", "disown", "rdisown", "huplab",
    ] {
        assert_eq!(
            entry(&format!("usr/bin/{t}")).as_deref(),
            Some("-rwxr-xr-x root/root")
        );
        for f in [
            format!("usr/share/man/man1/{t}.1.gz"),
            format!("usr/share/bash-completion/completions/{t}"),
            format!("usr/share/zsh/vendor-completions/_{t}"),
            format!("usr/share/fish/vendor_completions.d/{t}.fish"),
        ] {
            assert_eq!(entry(&f).as_deref(), Some("-rw-r--r-- root/root"), "{f}");
        }
    }
    for helper in ["hupkit-dbus", "hupkit-rnohup"] {
        let f = format!("usr/libexec/hupkit/{helper}");
        assert_eq!(entry(&f).as_deref(), Some("-rwxr-xr-x root/root"), "{f}");
    }
    for f in ["copyright", "changelog.gz", "README.md"] {
        assert_eq!(
            entry(&format!("usr/share/doc/hupkit/{f}")).as_deref(),
            Some("-rw-r--r-- root/root"),
            "{f}"
        );
    }
    assert!(
        !contents.contains("man1/rnohup.1\n"),
        "uncompressed man page"
    );
    assert!(
        !contents.contains("install-manifest"),
        "a manifest in the package"
    );

    in_a_chroot(&deb);
}

/// Installs `deb` in a chroot over the container's cached root filesystem,
/// never on this machine: checks, removes, and nothing is left.
fn in_a_chroot(deb: &Path) {
    // In a chroot, never on this machine.
    if !xtask::container::rootfs_ready() {
        assert!(
            std::env::var_os("HUPKIT_CONTAINER_REQUIRED").is_none_or(|v| v != "1"),
            "no container root filesystem, and HUPKIT_CONTAINER_REQUIRED=1"
        );
        // Straight to the standard error: the harness hides eprintln!'s.
        let _ = writeln!(
            std::io::stderr(),
            "skipped: deb in a chroot: no root filesystem at {} (cargo xtask container up)",
            xtask::container::rootfs().display()
        );
        return;
    }
    let work = tempfile::tempdir().unwrap();
    match xtask::deb::check_in_chroot(deb, &xtask::container::rootfs(), work.path()) {
        Ok(transcript) => {
            for step in [
                "Setting up hupkit",
                "/usr/share/man/man1/rnohup.1.gz",
                "-F _rjobs rjobs",
                "rnohup: _rnohup",
                "rnohup (hupkit) ",
                "Removing hupkit",
                "== nothing left",
            ] {
                assert!(transcript.contains(step), "{step} missing:\n{transcript}");
            }
        }
        Err(e) => panic!("{e}"),
    }
    assert_eq!(
        fs::read_dir(work.path()).unwrap().count(),
        0,
        "chroot left behind"
    );
}
