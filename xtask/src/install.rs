//! `cargo xtask install` and `cargo xtask uninstall`: the suite where the
//! system looks for it, in one step, with `PREFIX` and `DESTDIR` as `make
//! install` has them (cargo install cannot install man pages or completions).
//!
//! The decisions:
//!
//! - **One list of files** ([`plan`]), used by `install`, `uninstall` and the
//!   Debian package (`deb.rs`), so the three agree: the binaries to
//!   `PREFIX/bin` (0755), the helpers the tools run to
//!   `PREFIX/libexec/hupkit` (0755: the tools find them there, relative to
//!   their own executable, see `hupkit_common::dbus`), man pages to `share/man/man1`, completions where each
//!   shell looks (zsh's directory depends on the prefix: Debian's zsh reads
//!   `share/zsh/vendor-completions` under `/usr`, every zsh reads
//!   `share/zsh/site-functions` under `/usr/local`), the README, docs and
//!   licence to `share/doc/hupkit` (all 0644; directories 0755), whatever the
//!   umask.
//! - **Build as the invoking user**: `cargo build --release` runs as the
//!   process's user, or, under `sudo` as root, as the user who ran sudo
//!   (`SUDO_UID`, `SUDO_GID`, that user's home), so `target/` stays theirs and
//!   only the copy runs as root. `--no-build --bin-dir DIR` takes binaries
//!   already built (the tests use the suite's own).
//! - **Check first, then copy, never half-done**: every directory a file goes
//!   to is probed before anything is written (a file created and removed in it,
//!   or in its deepest existing ancestor); then every file is written beside
//!   its destination under a temporary name with its mode set explicitly; only
//!   when all are written are they renamed into place. A failure before the
//!   renames removes the temporary files and the directories made for them, so
//!   a previous install stays as it was.
//! - **A manifest** (`PREFIX/share/hupkit/install-manifest`, paths without
//!   `DESTDIR`) names each file installed and each directory install made;
//!   `uninstall` removes exactly those files, then those directories if they are
//!   empty (never a directory install did not make), then the manifest.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::fs;
use std::io::{self, Write as _};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::process::Command;

use nix::errno::Errno;

/// The installed binaries (the root package's `[[bin]]` targets).
pub const BINARIES: &[&str] = &[
    "rnohup", "detach", "rjobs", "rbg", "rfg", "disown", "rdisown", "huplab",
];

/// The helper executables (also `[[bin]]` targets), installed to
/// `PREFIX/libexec/hupkit` ([`LIBEXEC`]), not in `PATH`: not meant to be run
/// by people. `hupkit-dbus` is detach's and rdisown's D-Bus helper;
/// `hupkit-rnohup` is rnohup's full implementation, which rnohup's libc-free
/// front runs for everything but the plain case.
pub const HELPERS: &[&str] = &["hupkit-dbus", "hupkit-rnohup"];

/// Where the helpers go, relative to the prefix.
pub const LIBEXEC: &str = "libexec/hupkit";

/// Where the manifest goes, relative to the prefix.
pub const MANIFEST: &str = "share/hupkit/install-manifest";

/// The text of an I/O error as `strerror` gives it, without Rust's
/// ` (os error N)`.
#[must_use]
pub fn why(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(n) => hupkit_common::diag::strerror(Errno::from_raw(n)),
        None => e.to_string(),
    }
}

/// What a file of the plan is made from.
#[derive(Clone, Debug)]
pub enum Source {
    /// A file's contents, copied as they are.
    File(PathBuf),
    /// Contents made here (the Debian package's copyright file, compressed
    /// man pages).
    Bytes(Vec<u8>),
}

/// One file to install.
#[derive(Clone, Debug)]
pub struct Item {
    /// Its path relative to the prefix, e.g. `bin/rnohup`.
    pub dest: PathBuf,
    /// What it is made from.
    pub src: Source,
    /// Its mode.
    pub mode: u32,
}

/// The zsh completion directory for `prefix`, relative to it: Debian's zsh
/// reads `vendor-completions` under `/usr`; `site-functions` is in every zsh's
/// default `fpath` for its own prefix (`/usr/local` and others).
#[must_use]
pub fn zsh_dir(prefix: &Path) -> &'static str {
    if prefix == Path::new("/usr") {
        "share/zsh/vendor-completions"
    } else {
        "share/zsh/site-functions"
    }
}

/// The documentation files of the source tree, relative to the workspace root
/// and to `share/doc/hupkit`: the README and `docs/*.md`, sorted.
pub fn doc_files() -> Result<Vec<PathBuf>, String> {
    let root = crate::workspace_root();
    let mut files = vec![PathBuf::from("README.md")];
    let docs = root.join("docs");
    let entries = fs::read_dir(&docs)
        .map_err(|e| format!("cannot read '{}': {}", docs.display(), why(&e)))?;
    let mut more = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| format!("cannot read '{}': {}", docs.display(), why(&e)))?;
        let name = PathBuf::from(entry.file_name());
        if name.extension().is_some_and(|x| x == "md") {
            more.push(PathBuf::from("docs").join(name));
        }
    }
    more.sort();
    files.extend(more);
    Ok(files)
}

/// Every file installed under `prefix`, the binaries taken from `bin_dir`
/// (the manifest is not in it; `install` adds it).
pub fn plan(prefix: &Path, bin_dir: &Path) -> Result<Vec<Item>, String> {
    let root = crate::workspace_root();
    let mut items = Vec::new();
    for b in BINARIES {
        items.push(Item {
            dest: PathBuf::from("bin").join(b),
            src: Source::File(bin_dir.join(b)),
            mode: 0o755,
        });
    }
    for h in HELPERS {
        items.push(Item {
            dest: Path::new(LIBEXEC).join(h),
            src: Source::File(bin_dir.join(h)),
            mode: 0o755,
        });
    }
    let zsh = zsh_dir(prefix);
    for tool in crate::tools() {
        let n = tool.name;
        for (src, dest) in [
            (format!("man/{n}.1"), format!("share/man/man1/{n}.1")),
            (
                format!("completions/{n}.bash"),
                format!("share/bash-completion/completions/{n}"),
            ),
            (format!("completions/_{n}"), format!("{zsh}/_{n}")),
            (
                format!("completions/{n}.fish"),
                format!("share/fish/vendor_completions.d/{n}.fish"),
            ),
        ] {
            items.push(Item {
                dest: PathBuf::from(dest),
                src: Source::File(root.join(src)),
                mode: 0o644,
            });
        }
    }
    for doc in doc_files()?.into_iter().chain([PathBuf::from("LICENSE")]) {
        items.push(Item {
            dest: Path::new("share/doc/hupkit").join(&doc),
            src: Source::File(root.join(&doc)),
            mode: 0o644,
        });
    }
    Ok(items)
}

/// The options of `install`, `uninstall` and `deb`.
#[derive(Clone, Debug)]
pub struct Options {
    /// `--prefix` (default `/usr/local`).
    pub prefix: PathBuf,
    /// `--destdir`: a staging root, prepended to every path written.
    pub destdir: Option<PathBuf>,
    /// `--no-build`: use binaries already built.
    pub no_build: bool,
    /// `--bin-dir`: where the binaries are (default: the release directory
    /// of the target directory).
    pub bin_dir: Option<PathBuf>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            prefix: PathBuf::from("/usr/local"),
            destdir: None,
            no_build: false,
            bin_dir: None,
        }
    }
}

/// The target directory: `$CARGO_TARGET_DIR`, else `target/`.
#[must_use]
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| crate::workspace_root().join("target"), PathBuf::from)
}

/// Builds the release binaries unless told not to, as the invoking user (see
/// the module's doc); returns the directory they are in.
pub fn build(opts: &Options) -> Result<PathBuf, String> {
    let bin_dir = opts
        .bin_dir
        .clone()
        .unwrap_or_else(|| target_dir().join("release"));
    if opts.no_build {
        return Ok(bin_dir);
    }
    if opts.bin_dir.is_some() {
        return Err("--bin-dir needs --no-build".into());
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args([
        "build",
        "--release",
        "--locked",
        "--package",
        "hupkit",
        "--bins",
    ])
    .current_dir(crate::workspace_root());
    if nix::unistd::geteuid().is_root() {
        let id = |var: &str| std::env::var(var).ok().and_then(|v| v.parse::<u32>().ok());
        if let (Some(uid), Some(gid)) = (id("SUDO_UID"), id("SUDO_GID")) {
            if uid != 0 {
                let user = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
                    .ok()
                    .flatten()
                    .ok_or_else(|| format!("no user with uid {uid} (SUDO_UID)"))?;
                eprintln!("xtask: building as {} (SUDO_UID)", user.name);
                std::os::unix::process::CommandExt::uid(&mut cmd, uid);
                std::os::unix::process::CommandExt::gid(&mut cmd, gid);
                cmd.env("HOME", &user.dir).env("USER", &user.name);
            }
        }
    }
    eprintln!("xtask: cargo build --release --locked --package hupkit --bins");
    let status = cmd
        .status()
        .map_err(|e| format!("cannot run cargo: {}", why(&e)))?;
    if !status.success() {
        return Err(format!("cargo build failed ({status})"));
    }
    Ok(bin_dir)
}

/// Checks the prefix: absolute, plain (no `..`), no newline (the manifest is
/// one path a line).
fn check_prefix(prefix: &Path) -> Result<(), String> {
    if !prefix.is_absolute()
        || prefix
            .components()
            .any(|c| matches!(c, Component::ParentDir | Component::CurDir))
        || prefix.as_os_str().as_bytes().contains(&b'\n')
    {
        return Err(format!(
            "the prefix must be an absolute path without '..' or newlines: '{}'",
            prefix.display()
        ));
    }
    Ok(())
}

/// The directory under which `prefix`'s files are written: `DESTDIR/PREFIX`.
fn staged(destdir: Option<&Path>, path: &Path) -> PathBuf {
    match destdir {
        Some(d) => d.join(path.strip_prefix("/").unwrap_or(path)),
        None => path.to_path_buf(),
    }
}

/// Proves that entries can be made in directory `dir`: creates and removes a
/// file there (root may write where the mode says no, and a read-only mount
/// refuses even root: only trying tells).
fn probe(dir: &Path) -> io::Result<()> {
    let path = dir.join(format!(".hupkit-probe.{}", std::process::id()));
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(nix::fcntl::OFlag::O_NOFOLLOW.bits())
        .open(&path)?;
    fs::remove_file(&path)
}

/// The deepest existing ancestor of `dir` (itself if it exists), and the
/// missing directories below it, outermost first.
fn existing_ancestor(dir: &Path) -> (PathBuf, Vec<PathBuf>) {
    let mut missing = Vec::new();
    let mut at = dir.to_path_buf();
    while fs::symlink_metadata(&at).is_err() {
        missing.push(at.clone());
        match at.parent() {
            Some(p) => at = p.to_path_buf(),
            None => break,
        }
    }
    missing.reverse();
    (at, missing)
}

/// Probes every directory in `dirs` (or its deepest existing ancestor); the
/// first refusal as an error.
fn probe_all(dirs: &BTreeSet<PathBuf>) -> Result<(), String> {
    let mut probed = BTreeSet::new();
    for dir in dirs {
        let (at, _) = existing_ancestor(dir);
        if !probed.insert(at.clone()) {
            continue;
        }
        if !at.is_dir() {
            return Err(format!("not a directory: '{}'", at.display()));
        }
        probe(&at).map_err(|e| format!("cannot write to '{}': {}", at.display(), why(&e)))?;
    }
    Ok(())
}

/// What a manifest lists: files and the directories install made (paths
/// with the prefix, without `DESTDIR`).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Manifest {
    /// The files installed.
    pub files: Vec<PathBuf>,
    /// The directories install made.
    pub dirs: BTreeSet<PathBuf>,
}

impl Manifest {
    fn render(&self) -> Vec<u8> {
        let mut out = b"# written by cargo xtask install; read by cargo xtask uninstall\n".to_vec();
        for f in &self.files {
            out.extend_from_slice(b"file ");
            out.extend_from_slice(f.as_os_str().as_bytes());
            out.push(b'\n');
        }
        for d in &self.dirs {
            out.extend_from_slice(b"dir ");
            out.extend_from_slice(d.as_os_str().as_bytes());
            out.push(b'\n');
        }
        out
    }

    fn parse(text: &[u8], prefix: &Path) -> Result<Manifest, String> {
        let mut m = Manifest::default();
        for line in text.split(|&b| b == b'\n') {
            if line.is_empty() || line.starts_with(b"#") {
                continue;
            }
            let (kind, path) = if let Some(p) = line.strip_prefix(b"file ") {
                ("file", p)
            } else if let Some(p) = line.strip_prefix(b"dir ") {
                ("dir", p)
            } else {
                return Err(format!(
                    "unreadable manifest line '{}'",
                    String::from_utf8_lossy(line)
                ));
            };
            let path = PathBuf::from(std::ffi::OsStr::from_bytes(path));
            // A manifest names only paths under its own prefix, plainly.
            if !path.starts_with(prefix)
                || path
                    .components()
                    .any(|c| matches!(c, Component::ParentDir | Component::CurDir))
            {
                return Err(format!(
                    "manifest names a path outside '{}': '{}'",
                    prefix.display(),
                    path.display()
                ));
            }
            if kind == "file" {
                m.files.push(path);
            } else {
                m.dirs.insert(path);
            }
        }
        Ok(m)
    }
}

/// A file written under a temporary name beside its destination.
struct Pending {
    tmp: PathBuf,
    dest: PathBuf,
}

/// Writes `contents` (or the file `src`) to `tmp` with `mode`, exactly.
fn write_tmp(tmp: &Path, src: &Source, mode: u32) -> io::Result<()> {
    let mut out = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(nix::fcntl::OFlag::O_NOFOLLOW.bits())
        .open(tmp)?;
    match src {
        Source::File(p) => {
            let mut input = fs::File::open(p)?;
            io::copy(&mut input, &mut out)?;
        }
        Source::Bytes(b) => out.write_all(b)?,
    }
    // Explicitly, whatever the umask.
    out.set_permissions(fs::Permissions::from_mode(mode))?;
    out.sync_all()
}

/// Installs `items` under `DESTDIR/PREFIX` (see the module's doc): checks,
/// writes, renames; prints one line per file. With `manifest`, writes the
/// manifest too (merging the directories an earlier install made). Returns
/// the manifest.
pub fn install_items(
    prefix: &Path,
    destdir: Option<&Path>,
    mut items: Vec<Item>,
    manifest: bool,
) -> Result<Manifest, String> {
    check_prefix(prefix)?;
    let root = staged(destdir, prefix);
    let manifest_path = root.join(MANIFEST);
    // The sources first: a missing binary is found before anything is written.
    for item in &items {
        if let Source::File(p) = &item.src {
            fs::File::open(p).map_err(|e| format!("cannot read '{}': {}", p.display(), why(&e)))?;
        }
    }
    let mut m = Manifest::default();
    if manifest {
        if let Ok(old) = fs::read(&manifest_path) {
            if let Ok(old) = Manifest::parse(&old, prefix) {
                // Directories an earlier install made are still ours to remove.
                m.dirs = old.dirs;
            }
        }
    }
    let dirs: BTreeSet<PathBuf> = items
        .iter()
        .map(|i| root.join(&i.dest))
        .chain(manifest.then(|| manifest_path.clone()))
        .filter_map(|p| p.parent().map(Path::to_path_buf))
        .collect();
    probe_all(&dirs).map_err(|e| format!("{e}; nothing was installed"))?;

    let mut made: Vec<PathBuf> = Vec::new();
    let mut pending: Vec<Pending> = Vec::new();
    let undo = |made: &[PathBuf], pending: &[Pending]| {
        for p in pending.iter().rev() {
            let _ = fs::remove_file(&p.tmp);
        }
        for d in made.iter().rev() {
            let _ = fs::remove_dir(d);
        }
    };
    for dir in &dirs {
        let (_, missing) = existing_ancestor(dir);
        for d in missing {
            if let Err(e) = fs::DirBuilder::new().mode(0o755).create(&d) {
                undo(&made, &pending);
                return Err(format!(
                    "cannot create directory '{}': {}; nothing was installed",
                    d.display(),
                    why(&e)
                ));
            }
            // Explicitly, whatever the umask.
            let _ = fs::set_permissions(&d, fs::Permissions::from_mode(0o755));
            let rel = d
                .strip_prefix(destdir.unwrap_or(Path::new("/")))
                .unwrap_or(&d);
            m.dirs.insert(Path::new("/").join(rel));
            made.push(d);
        }
    }
    if manifest {
        m.files = items.iter().map(|i| prefix.join(&i.dest)).collect();
        items.push(Item {
            dest: PathBuf::from(MANIFEST),
            src: Source::Bytes(m.render()),
            mode: 0o644,
        });
    }
    for item in &items {
        let dest = root.join(&item.dest);
        let mut name = OsString::from(".");
        name.push(dest.file_name().unwrap_or_default());
        name.push(format!(".hupkit-new.{}", std::process::id()));
        let tmp = dest.with_file_name(name);
        let res = write_tmp(&tmp, &item.src, item.mode);
        pending.push(Pending { tmp, dest });
        if let Err(e) = res {
            let p = pending.last().map(|p| p.dest.display().to_string());
            undo(&made, &pending);
            return Err(format!(
                "cannot write '{}': {}; nothing was installed",
                p.unwrap_or_default(),
                why(&e)
            ));
        }
    }
    for (i, p) in pending.iter().enumerate() {
        if let Err(e) = fs::rename(&p.tmp, &p.dest) {
            // Renames within a directory that took a new file do not fail in
            // practice; if one does, say what is in place.
            undo(&[], &pending[i..]);
            return Err(format!(
                "cannot rename to '{}': {}; {i} of {} files installed",
                p.dest.display(),
                why(&e),
                pending.len()
            ));
        }
        println!("{}", p.dest.display());
    }
    Ok(m)
}

/// `cargo xtask install`.
pub fn install(opts: &Options) -> Result<(), String> {
    check_prefix(&opts.prefix)?;
    let bin_dir = build(opts)?;
    let items = plan(&opts.prefix, &bin_dir)?;
    let n = items.len();
    install_items(&opts.prefix, opts.destdir.as_deref(), items, true)?;
    let root = staged(opts.destdir.as_deref(), &opts.prefix);
    eprintln!(
        "xtask install: {n} files under '{}'; the list is in '{}' (cargo xtask uninstall removes them)",
        root.display(),
        root.join(MANIFEST).display()
    );
    Ok(())
}

/// `cargo xtask uninstall`: removes what the manifest lists (see the module's
/// doc), after checking that it may.
pub fn uninstall(opts: &Options) -> Result<(), String> {
    check_prefix(&opts.prefix)?;
    let destdir = opts.destdir.as_deref();
    let root = staged(destdir, &opts.prefix);
    let manifest_path = root.join(MANIFEST);
    let text = fs::read(&manifest_path).map_err(|e| {
        format!(
            "cannot read the manifest '{}': {} (nothing installed there by cargo xtask install?)",
            manifest_path.display(),
            why(&e)
        )
    })?;
    let m = Manifest::parse(&text, &opts.prefix)
        .map_err(|e| format!("'{}': {e}", manifest_path.display()))?;
    let files: Vec<PathBuf> = m.files.iter().map(|f| staged(destdir, f)).collect();
    let dirs: BTreeSet<PathBuf> = files
        .iter()
        .chain([&manifest_path])
        .filter(|f| f.symlink_metadata().is_ok())
        .filter_map(|f| f.parent().map(Path::to_path_buf))
        .collect();
    probe_all(&dirs).map_err(|e| format!("{e}; nothing was removed"))?;
    let mut removed = 0;
    for f in &files {
        match fs::remove_file(f) {
            Ok(()) => {
                removed += 1;
                println!("{}", f.display());
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("cannot remove '{}': {}", f.display(), why(&e))),
        }
    }
    fs::remove_file(&manifest_path)
        .map_err(|e| format!("cannot remove '{}': {}", manifest_path.display(), why(&e)))?;
    // Deepest first; a directory that holds something else stays.
    let mut dirs: Vec<PathBuf> = m.dirs.iter().map(|d| staged(destdir, d)).collect();
    dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
    for d in dirs {
        match fs::remove_dir(&d) {
            Ok(()) => println!("{}/", d.display()),
            Err(e) if matches!(e.raw_os_error(), Some(n) if n == Errno::ENOTEMPTY as i32 || n == Errno::EEXIST as i32 || n == Errno::ENOENT as i32) =>
                {}
            Err(e) => return Err(format!("cannot remove '{}': {}", d.display(), why(&e))),
        }
    }
    eprintln!(
        "xtask uninstall: {removed} files removed from '{}'",
        root.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_round_trips_and_refuses_paths_outside_the_prefix() {
        let mut m = Manifest::default();
        m.files.push(PathBuf::from("/usr/local/bin/rnohup"));
        m.dirs.insert(PathBuf::from("/usr/local/share/hupkit"));
        let text = m.render();
        assert_eq!(Manifest::parse(&text, Path::new("/usr/local")), Ok(m));
        assert!(Manifest::parse(b"file /etc/passwd\n", Path::new("/usr/local")).is_err());
        assert!(
            Manifest::parse(
                b"file /usr/local/../../etc/passwd\n",
                Path::new("/usr/local")
            )
            .is_err()
        );
    }

    #[test]
    fn zsh_reads_vendor_completions_under_usr_only() {
        assert_eq!(zsh_dir(Path::new("/usr")), "share/zsh/vendor-completions");
        assert_eq!(zsh_dir(Path::new("/usr/local")), "share/zsh/site-functions");
    }
}
