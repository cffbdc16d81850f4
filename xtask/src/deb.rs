//! `cargo xtask deb`: a Debian package of the suite, and `cargo xtask
//! deb-check`: that package installed and removed in a throwaway chroot.
//!
//! The decisions:
//!
//! - **Our own, on dpkg's tools**, rather than cargo-deb: the file list is
//!   `install.rs`'s [`plan`](crate::install::plan) (so the package and `cargo
//!   xtask install --prefix /usr` put the same files in the same places), and
//!   what cargo-deb would add is a few lines here: `dpkg-shlibdeps` computes
//!   `Depends:`, `gzip -9n` compresses the man pages and the changelog,
//!   `strip` as `dh_strip` does, `dpkg-deb --root-owner-group` builds. Nothing
//!   to install from crates.io (cargo-deb is minutes of build); `dpkg-dev`
//!   (`dpkg-shlibdeps`) and `binutils` (`strip`) are Debian packages.
//! - **Debian policy**: `/usr/bin`, man pages compressed in
//!   `/usr/share/man/man1`, completions in bash-completion's, Debian zsh's
//!   (`vendor-completions`) and fish's vendor directories, the machine-readable
//!   `copyright` and a `changelog.gz` (a native package: the version has no
//!   Debian revision) in `/usr/share/doc/hupkit`, `DEBIAN/md5sums`, a control
//!   file with `Installed-Size`, `Section: utils`, `Priority: optional` and a
//!   long description. The changelog's date is the last commit's, so two
//!   builds of one commit are the same (`SOURCE_DATE_EPOCH` for dpkg-deb too).
//! - **The check** ([`check_in_chroot`]) never touches the host's packages: it
//!   mounts an overlay over the cached root filesystem of `cargo xtask
//!   container` (the rootfs itself stays unchanged, and may be in use by the
//!   booted container), inside a private mount namespace (`unshare --mount`),
//!   so every mount goes away with the namespace's last process, whatever
//!   happens; then `dpkg -i`, `man -w rnohup`, each tool's bash completion,
//!   zsh's, `rnohup true`, `dpkg -r`, and no file of the package left.

use std::fmt::Write as _;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::install::{self, Item, Options, Source, why};

/// The package's name.
pub const PACKAGE: &str = "hupkit";

/// The maintainer named in the control file and the changelog.
const MAINTAINER: &str = "the hupkit developers <hupkit@example.invalid>";

/// The suite's version, as `rnohup --version` prints it.
#[must_use]
pub fn version() -> String {
    crate::tools()
        .first()
        .and_then(|t| t.command.get_version().map(ToString::to_string))
        .unwrap_or_else(|| "0".into())
}

/// Runs `cmd`, returning its standard output; an error with its standard
/// error otherwise.
fn output(what: &str, cmd: &mut Command) -> Result<Vec<u8>, String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {what}: {}", why(&e)))?;
    if !out.status.success() {
        return Err(format!(
            "{what} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(out.stdout)
}

/// `dpkg --print-architecture`.
pub fn architecture() -> Result<String, String> {
    let out = output(
        "dpkg --print-architecture",
        Command::new("dpkg").arg("--print-architecture"),
    )?;
    Ok(String::from_utf8_lossy(&out).trim().to_string())
}

/// `gzip -9n` of `data` (no name, no date: reproducible, as Debian asks).
fn gzip(data: &[u8]) -> Result<Vec<u8>, String> {
    let mut child = Command::new("gzip")
        .arg("-9n")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run gzip: {}", why(&e)))?;
    let mut stdin = child.stdin.take();
    let data = data.to_vec();
    let writer = std::thread::spawn(move || {
        if let Some(s) = stdin.as_mut() {
            let _ = std::io::Write::write_all(s, &data);
        }
    });
    let out = child
        .wait_with_output()
        .map_err(|e| format!("cannot run gzip: {}", why(&e)))?;
    let _ = writer.join();
    if !out.status.success() {
        return Err(format!("gzip -9n failed ({})", out.status));
    }
    Ok(out.stdout)
}

/// The last commit's time (seconds since the epoch) and date (RFC 2822), or
/// `SOURCE_DATE_EPOCH`'s.
fn source_date() -> (String, String) {
    let epoch = std::env::var("SOURCE_DATE_EPOCH").ok().or_else(|| {
        let out = Command::new("git")
            .args(["log", "-1", "--format=%ct"])
            .current_dir(crate::workspace_root())
            .stderr(Stdio::null())
            .output()
            .ok()?;
        let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
        (out.status.success() && !text.is_empty()).then_some(text)
    });
    let epoch = epoch.unwrap_or_else(|| "0".into());
    let date = Command::new("date")
        .args(["-u", "-R", "-d"])
        .arg(format!("@{epoch}"))
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|d| !d.is_empty())
        .unwrap_or_else(|| "Thu, 01 Jan 1970 00:00:00 +0000".into());
    (epoch, date)
}

/// `/usr/share/doc/hupkit/copyright`, in the machine-readable format, with
/// the licence text of `LICENSE`.
pub fn copyright() -> Result<String, String> {
    let path = crate::workspace_root().join("LICENSE");
    let licence = fs::read_to_string(&path)
        .map_err(|e| format!("cannot read '{}': {}", path.display(), why(&e)))?;
    let holder = licence
        .lines()
        .find_map(|l| l.strip_prefix("Copyright (c) "))
        .unwrap_or("the hupkit developers");
    let mut text = String::from(
        "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\
         Upstream-Name: hupkit\n",
    );
    let _ = writeln!(
        text,
        "Source: {}\n\nFiles: *\nCopyright: {holder}\nLicense: MIT",
        env!("CARGO_PKG_REPOSITORY")
    );
    // The licence text after its title and copyright line, each line
    // indented, blank lines as " .".
    for line in licence.lines().skip_while(|l| !l.starts_with("Permission")) {
        if line.trim().is_empty() {
            text.push_str(" .\n");
        } else {
            let _ = writeln!(text, " {line}");
        }
    }
    Ok(text)
}

/// The files of the package: [`install::plan`] under `/usr`, with the man
/// pages compressed, the licence as `copyright`, and a `changelog.gz`.
pub fn plan(bin_dir: &Path, date: &str) -> Result<Vec<Item>, String> {
    let mut items = Vec::new();
    for mut item in install::plan(Path::new("/usr"), bin_dir)? {
        if item.dest.starts_with("share/man") {
            let Source::File(src) = &item.src else {
                continue;
            };
            let data = fs::read(src)
                .map_err(|e| format!("cannot read '{}': {}", src.display(), why(&e)))?;
            item.src = Source::Bytes(gzip(&data)?);
            item.dest.as_mut_os_string().push(".gz");
        } else if item.dest == Path::new("share/doc/hupkit/LICENSE") {
            item.dest = PathBuf::from("share/doc/hupkit/copyright");
            item.src = Source::Bytes(copyright()?.into_bytes());
        }
        items.push(item);
    }
    let changelog = format!(
        "{PACKAGE} ({}) unstable; urgency=medium\n\n  \
         * Built from the hupkit sources by cargo xtask deb.\n\n \
         -- {MAINTAINER}  {date}\n",
        version()
    );
    items.push(Item {
        dest: PathBuf::from("share/doc/hupkit/changelog.gz"),
        src: Source::Bytes(gzip(changelog.as_bytes())?),
        mode: 0o644,
    });
    Ok(items)
}

/// `Depends:` from `dpkg-shlibdeps` for the binaries `bins`.
fn shlibdeps(work: &Path, bins: &[PathBuf]) -> Result<String, String> {
    let debian = work.join("debian");
    fs::create_dir_all(&debian)
        .map_err(|e| format!("cannot create '{}': {}", debian.display(), why(&e)))?;
    fs::write(
        debian.join("control"),
        format!("Source: {PACKAGE}\n\nPackage: {PACKAGE}\nArchitecture: any\n"),
    )
    .map_err(|e| format!("cannot write '{}': {}", debian.display(), why(&e)))?;
    let mut cmd = Command::new("dpkg-shlibdeps");
    cmd.arg("-O").current_dir(work);
    for b in bins {
        cmd.arg(format!("-e{}", b.display()));
    }
    let out = output("dpkg-shlibdeps (Debian package dpkg-dev)", &mut cmd)?;
    let text = String::from_utf8_lossy(&out);
    let depends = text
        .lines()
        .find_map(|l| l.strip_prefix("shlibs:Depends="))
        .unwrap_or("")
        .trim()
        .to_string();
    if depends.is_empty() {
        return Err(format!(
            "dpkg-shlibdeps found no dependencies: '{}'",
            text.trim()
        ));
    }
    Ok(depends)
}

/// The size of the tree at `path` in KiB, as `Installed-Size` counts: each
/// file rounded up to a KiB, and a KiB per directory.
fn installed_size(path: &Path) -> u64 {
    let Ok(meta) = fs::symlink_metadata(path) else {
        return 0;
    };
    if !meta.is_dir() {
        return meta.len().div_ceil(1024);
    }
    let mut total = 1;
    if let Ok(entries) = fs::read_dir(path) {
        for e in entries.flatten() {
            total += installed_size(&e.path());
        }
    }
    total
}

/// Builds the package into `out_dir` (default `target/debian`); returns its
/// path.
pub fn build(opts: &Options, out_dir: Option<&Path>) -> Result<PathBuf, String> {
    let bin_dir = install::build(opts)?;
    let version = version();
    let arch = architecture()?;
    let out_dir = out_dir.map_or_else(|| install::target_dir().join("debian"), Path::to_path_buf);
    let name = format!("{PACKAGE}_{version}_{arch}");
    let stage = out_dir.join(&name);
    let work = out_dir.join(format!("{name}.shlibs"));
    for d in [&stage, &work] {
        match fs::remove_dir_all(d) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(format!("cannot remove '{}': {}", d.display(), why(&e)));
            }
            _ => {}
        }
    }
    fs::create_dir_all(&stage)
        .map_err(|e| format!("cannot create '{}': {}", stage.display(), why(&e)))?;
    let (epoch, date) = source_date();
    let items = plan(&bin_dir, &date)?;
    install::install_items(Path::new("/usr"), Some(&stage), items.clone(), false)?;
    let result = (|| -> Result<PathBuf, String> {
        let bins: Vec<PathBuf> = install::BINARIES
            .iter()
            .map(|b| stage.join("usr/bin").join(b))
            .chain(
                install::HELPERS
                    .iter()
                    .map(|h| stage.join("usr").join(install::LIBEXEC).join(h)),
            )
            .collect();
        for b in &bins {
            // What dh_strip does.
            output(
                "strip",
                Command::new("strip")
                    .args([
                        "--strip-unneeded",
                        "--remove-section=.comment",
                        "--remove-section=.note",
                    ])
                    .arg(b),
            )?;
            fs::set_permissions(b, fs::Permissions::from_mode(0o755))
                .map_err(|e| format!("cannot chmod '{}': {}", b.display(), why(&e)))?;
        }
        let depends = shlibdeps(&work, &bins)?;
        let mut sums = Command::new("md5sum");
        sums.current_dir(&stage);
        for item in &items {
            sums.arg(Path::new("usr").join(&item.dest));
        }
        let sums = output("md5sum", &mut sums)?;
        let size = installed_size(&stage.join("usr"));
        let control = format!(
            "Package: {PACKAGE}\n\
             Version: {version}\n\
             Architecture: {arch}\n\
             Maintainer: {MAINTAINER}\n\
             Installed-Size: {size}\n\
             Depends: {depends}\n\
             Section: utils\n\
             Priority: optional\n\
             Homepage: {}\n\
             Description: tools that separate programs from their terminal\n \
             Small Unix tools that separate programs from their terminal, level by\n \
             level, so that long jobs survive logouts and ssh disconnects:\n \
             rnohup (GNU nohup, byte for byte), detach (a full daemon: double fork,\n \
             new session, pidfile, lock), rjobs, rbg and rfg (job control from\n \
             outside the shell), disown and rdisown (cut an already-running job's\n \
             ties to its terminal), and huplab, a lab that hangs up a private\n \
             terminal and shows which level survived.\n",
            env!("CARGO_PKG_REPOSITORY")
        );
        let debian = stage.join("DEBIAN");
        fs::create_dir(&debian)
            .map_err(|e| format!("cannot create '{}': {}", debian.display(), why(&e)))?;
        fs::set_permissions(&debian, fs::Permissions::from_mode(0o755))
            .map_err(|e| format!("cannot chmod '{}': {}", debian.display(), why(&e)))?;
        for (file, data) in [("control", control.as_bytes()), ("md5sums", &sums)] {
            let p = debian.join(file);
            fs::write(&p, data)
                .map_err(|e| format!("cannot write '{}': {}", p.display(), why(&e)))?;
            fs::set_permissions(&p, fs::Permissions::from_mode(0o644))
                .map_err(|e| format!("cannot chmod '{}': {}", p.display(), why(&e)))?;
        }
        let deb = out_dir.join(format!("{name}.deb"));
        output(
            "dpkg-deb --build",
            Command::new("dpkg-deb")
                .args(["--root-owner-group", "-Zxz", "--build"])
                .arg(&stage)
                .arg(&deb)
                .env("SOURCE_DATE_EPOCH", &epoch),
        )?;
        Ok(deb)
    })();
    let _ = fs::remove_dir_all(&stage);
    let _ = fs::remove_dir_all(&work);
    let deb = result?;
    eprintln!("xtask deb: {}", deb.display());
    Ok(deb)
}

/// A directory removed when dropped, whatever happened.
struct TempTree(PathBuf);

impl Drop for TempTree {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// What runs in the chroot: install, check, remove, check.
fn chroot_script() -> String {
    let tools = install::BINARIES.join(" ");
    format!(
        r#"set -e
export PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C HOME=/root DEBIAN_FRONTEND=noninteractive
echo "== dpkg -i"
dpkg -i /tmp/hupkit.deb
dpkg -L hupkit > /tmp/hupkit.list
echo "== man -w rnohup"
page=$(man -w rnohup)
echo "$page"
test "$page" = /usr/share/man/man1/rnohup.1.gz
echo "== bash completion"
for t in {tools}; do
  line=$(bash -c '. /usr/share/bash-completion/bash_completion; _completion_loader "$1"; complete -p "$1"' bash "$t")
  echo "$line"
  case "$line" in *" -F _$t $t") ;; *) echo "no completion of our own for $t"; exit 1;; esac
done
echo "== zsh completion"
for t in {tools}; do
  zsh -fc 'autoload -Uz compinit; compinit -u -D; [[ $_comps[$1] == _$1 ]] && print -r -- "$1: $_comps[$1]"' zsh "$t"
done
echo "== rnohup"
rnohup true
rnohup --version | head -n 1
echo "== the D-Bus helper, where detach finds it"
/usr/libexec/hupkit/hupkit-dbus --help
said=$(detach --scope true 2>&1 || true)
echo "$said"
case "$said" in *"is missing"*) exit 1;; esac
echo "== dpkg -r"
dpkg -r hupkit
left=0
while IFS= read -r f; do
  if [ -e "$f" ] && [ ! -d "$f" ]; then echo "left behind: $f"; left=1; fi
done < /tmp/hupkit.list
if [ -e /usr/share/doc/hupkit ]; then echo "left behind: /usr/share/doc/hupkit"; left=1; fi
hash -r
if command -v rnohup; then left=1; fi
test "$left" = 0
echo "== nothing left"
"#
    )
}

/// Installs `deb` in a throwaway chroot over `rootfs` (see the module's doc),
/// checks it, removes it and checks that nothing is left. `work` is a
/// directory for the overlay's upper layer (removed after). Returns the
/// transcript.
pub fn check_in_chroot(deb: &Path, rootfs: &Path, work: &Path) -> Result<String, String> {
    if !rootfs.join("usr/bin/dpkg").exists() {
        return Err(format!("no root filesystem at '{}'", rootfs.display()));
    }
    let tree = TempTree(work.join(format!("chroot.{}", std::process::id())));
    let _ = fs::remove_dir_all(&tree.0);
    for d in ["upper", "work", "root"] {
        let p = tree.0.join(d);
        fs::create_dir_all(&p)
            .map_err(|e| format!("cannot create '{}': {}", p.display(), why(&e)))?;
    }
    // The mounts live in a namespace of their own: they end with it.
    let outer = r#"set -e
lower=$1 tree=$2 deb=$3 script=$4
m=$tree/root
mount -t overlay overlay -o "lowerdir=$lower,upperdir=$tree/upper,workdir=$tree/work" "$m"
mount -t proc proc "$m/proc"
mount --rbind /dev "$m/dev"
cp "$deb" "$m/tmp/hupkit.deb"
exec chroot "$m" /bin/sh -c "$script"
"#;
    let out = Command::new("timeout")
        .args(["--kill-after=10", "600"])
        .args(["unshare", "--mount", "--propagation", "private", "--fork"])
        .args(["sh", "-c", outer, "sh"])
        .arg(rootfs)
        .arg(&tree.0)
        .arg(deb)
        .arg(chroot_script())
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run unshare: {}", why(&e)))?;
    let transcript = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() {
        Ok(transcript)
    } else {
        Err(format!(
            "the check in the chroot failed ({}):\n{transcript}",
            out.status
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copyright_is_machine_readable_mit() {
        let text = copyright().unwrap();
        assert!(text.starts_with(
            "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n"
        ));
        assert!(text.contains(
            "\nFiles: *\nCopyright: 2026 the hupkit developers\nLicense: MIT\n Permission"
        ));
        assert!(text.contains("\n .\n"));
        assert!(!text.lines().any(|l| l.trim().is_empty() && !l.is_empty()));
    }
}
