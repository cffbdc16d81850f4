//! `cargo xtask`: hupkit's developer tasks.
//!
//! - `cargo xtask gen`: write completions and man pages from the clap definitions.
//! - `cargo xtask gen --check`: fail if a committed file is stale.
//! - `cargo xtask bench [--pairs N]`: the benchmarks against the anchors.
//! - `cargo xtask bench rfg`: only rfg's cost of waiting.
//! - `cargo xtask bench rjobs`: only rjobs against ps, and its scaling table.
//! - `cargo xtask bench disown`: only disown's time held, sleeping and CPU-bound targets.
//! - `cargo xtask bench detach [--pairs N]`: only detach against start-stop-daemon and setsid.
//! - `cargo xtask soak`: the soak tests at full counts (huplab's hangup matrix
//!   200 times, disown injected 1000 times).
//! - `cargo xtask install|uninstall [--prefix DIR] [--destdir DIR] [--no-build
//!   [--bin-dir DIR]]`: the suite, its man pages, completions and docs where the
//!   system looks for them, and back out (see `install.rs`).
//! - `cargo xtask deb [--no-build [--bin-dir DIR]] [--out-dir DIR]`: the Debian
//!   package `target/debian/hupkit_VERSION_ARCH.deb` (see `deb.rs`).
//! - `cargo xtask deb-check [DEB]`: that package installed, checked and removed
//!   in a throwaway chroot over the container's cached root filesystem.
//! - `cargo xtask container up|down|status|set|ssh`: the real systemd + logind +
//!   sshd container that the logout tests log in to (see `container.rs`).

use std::process::ExitCode;

fn usage() -> ExitCode {
    eprintln!(
        "usage: cargo xtask gen [--check] | cargo xtask bench [--pairs N] | cargo xtask bench rfg|rjobs|disown | cargo xtask bench detach [--pairs N] | cargo xtask soak\n       \
         cargo xtask install|uninstall [--prefix DIR] [--destdir DIR] [--no-build [--bin-dir DIR]]\n       \
         cargo xtask deb [--no-build [--bin-dir DIR]] [--out-dir DIR] | cargo xtask deb-check [DEB]\n       \
         cargo xtask container up [--kill-user-processes yes|no] [--unified|--hybrid]\n       \
         cargo xtask container down | status\n       \
         cargo xtask container set kill-user-processes yes|no | set linger on|off\n       \
         cargo xtask container ssh USER [-- CMD...]"
    );
    ExitCode::from(2)
}

/// Reports a failed benchmark in one line.
fn bench_result(r: Result<(), String>) -> ExitCode {
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask bench: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Reports a failed container step in one line.
fn container_result(r: Result<(), String>) -> ExitCode {
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask container: {e}");
            ExitCode::FAILURE
        }
    }
}

fn yes_no(word: &str) -> Option<bool> {
    match word {
        "yes" | "on" => Some(true),
        "no" | "off" => Some(false),
        _ => None,
    }
}

fn container(args: &[&str]) -> ExitCode {
    use xtask::container::{self as ct, Layout};
    match args {
        ["up", opts @ ..] => {
            let mut layout = None;
            let mut kill = true;
            let mut rest = opts;
            loop {
                match rest {
                    [] => break,
                    ["--unified", more @ ..] => (layout, rest) = (Some(Layout::Unified), more),
                    ["--hybrid", more @ ..] => (layout, rest) = (Some(Layout::Hybrid), more),
                    ["--kill-user-processes", w, more @ ..] => match yes_no(w) {
                        Some(k) => (kill, rest) = (k, more),
                        None => return usage(),
                    },
                    _ => return usage(),
                }
            }
            container_result(ct::up(layout, kill))
        }
        ["down"] => container_result(ct::down()),
        ["status"] => match ct::status() {
            Ok(true) => ExitCode::SUCCESS,
            // LSB: 3, not running.
            Ok(false) => ExitCode::from(3),
            Err(e) => {
                eprintln!("xtask container: {e}");
                ExitCode::FAILURE
            }
        },
        ["set", "kill-user-processes", w] => match yes_no(w) {
            Some(k) => container_result(ct::set_kill_user_processes(k)),
            None => usage(),
        },
        ["set", "linger", w] => match yes_no(w) {
            Some(on) => container_result(ct::set_linger(on)),
            None => usage(),
        },
        ["ssh", user, rest @ ..] => {
            let cmd: &[&str] = match rest {
                [] => &[],
                ["--", cmd @ ..] => cmd,
                _ => return usage(),
            };
            if ct::running().is_none() {
                eprintln!("xtask container: not up (cargo xtask container up)");
                return ExitCode::FAILURE;
            }
            // A login without a command is a person's: no time limit then.
            let secs = if cmd.is_empty() { 0 } else { 600 };
            let tty = std::io::IsTerminal::is_terminal(&std::io::stdin());
            let status = ct::ssh(user, secs, tty).args(cmd).status();
            match status {
                Ok(s) => ExitCode::from(u8::try_from(s.code().unwrap_or(255)).unwrap_or(255)),
                Err(e) => {
                    eprintln!("xtask container: cannot run ssh: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        _ => usage(),
    }
}

/// The options of `install`, `uninstall` and `deb` (`--out-dir` for `deb`
/// only); `None` for a usage error.
fn install_options(
    mut args: &[&str],
    deb: bool,
) -> Option<(xtask::install::Options, Option<std::path::PathBuf>)> {
    let mut opts = xtask::install::Options::default();
    let mut out_dir = None;
    loop {
        match args {
            [] => break,
            ["--prefix", p, rest @ ..] if !deb => (opts.prefix, args) = (p.into(), rest),
            ["--destdir", d, rest @ ..] if !deb => (opts.destdir, args) = (Some(d.into()), rest),
            ["--out-dir", d, rest @ ..] if deb => (out_dir, args) = (Some(d.into()), rest),
            ["--no-build", rest @ ..] => (opts.no_build, args) = (true, rest),
            ["--bin-dir", d, rest @ ..] => (opts.bin_dir, args) = (Some(d.into()), rest),
            _ => return None,
        }
    }
    Some((opts, out_dir))
}

/// Reports a failed step of `what` in one line.
fn task_result(what: &str, r: Result<(), String>) -> ExitCode {
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask {what}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `cargo xtask deb-check [DEB]`: the package (default: the one `cargo xtask
/// deb` builds) in a chroot over the container's cached root filesystem.
fn deb_check(deb: Option<&str>) -> Result<(), String> {
    use xtask::{container, deb, install};
    let deb = match deb {
        Some(d) => std::path::PathBuf::from(d),
        None => install::target_dir().join("debian").join(format!(
            "{}_{}_{}.deb",
            deb::PACKAGE,
            deb::version(),
            deb::architecture()?
        )),
    };
    if !container::rootfs_ready() {
        return Err(format!(
            "no root filesystem at '{}' (cargo xtask container up makes it)",
            container::rootfs().display()
        ));
    }
    let deb = std::fs::canonicalize(&deb)
        .map_err(|e| format!("'{}': {}", deb.display(), install::why(&e)))?;
    let work = install::target_dir().join("debian");
    std::fs::create_dir_all(&work)
        .map_err(|e| format!("cannot create '{}': {}", work.display(), install::why(&e)))?;
    let transcript = deb::check_in_chroot(&deb, &container::rootfs(), &work)?;
    print!("{transcript}");
    eprintln!(
        "xtask deb-check: {} installs, works and removes cleanly",
        deb.display()
    );
    Ok(())
}

fn gen_files(check: bool) -> Result<bool, String> {
    let root = xtask::workspace_root();
    let mut stale = false;
    for (rel, contents) in xtask::generated().map_err(|e| e.to_string())? {
        let path = root.join(&rel);
        let current = std::fs::read(&path).ok();
        if current.as_deref() == Some(contents.as_slice()) {
            continue;
        }
        stale = true;
        if check {
            eprintln!("stale: {}", rel.display());
        } else {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            }
            std::fs::write(&path, contents).map_err(|e| format!("{}: {e}", path.display()))?;
            eprintln!("wrote {}", rel.display());
        }
    }
    Ok(stale)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args.as_slice() {
        ["gen"] => match gen_files(false) {
            Ok(_) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("xtask gen: {e}");
                ExitCode::FAILURE
            }
        },
        ["gen", "--check"] => match gen_files(true) {
            Ok(false) => ExitCode::SUCCESS,
            Ok(true) => {
                eprintln!("run `cargo xtask gen` and commit the result");
                ExitCode::FAILURE
            }
            Err(e) => {
                eprintln!("xtask gen: {e}");
                ExitCode::FAILURE
            }
        },
        ["container", rest @ ..] => container(rest),
        ["install", rest @ ..] => match install_options(rest, false) {
            Some((opts, _)) => task_result("install", xtask::install::install(&opts)),
            None => usage(),
        },
        ["uninstall", rest @ ..] => match install_options(rest, false) {
            Some((opts, _)) if !opts.no_build && opts.bin_dir.is_none() => {
                task_result("uninstall", xtask::install::uninstall(&opts))
            }
            _ => usage(),
        },
        ["deb", rest @ ..] => match install_options(rest, true) {
            Some((opts, out)) => {
                task_result("deb", xtask::deb::build(&opts, out.as_deref()).map(|_| ()))
            }
            None => usage(),
        },
        ["deb-check"] => task_result("deb-check", deb_check(None)),
        ["deb-check", deb] => task_result("deb-check", deb_check(Some(deb))),
        ["soak"] => {
            let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
            let status = std::process::Command::new(cargo)
                .args([
                    "test",
                    "--locked",
                    "--test",
                    "suite",
                    "--",
                    "--test-threads",
                    "1",
                    "soak_",
                    "hangup_table_is_the_same",
                ])
                .current_dir(xtask::workspace_root())
                .env("HUPKIT_SOAK_ROUNDS", "250")
                .env("HUPKIT_HUPLAB_ROUNDS", "200")
                .status();
            match status {
                Ok(s) if s.success() => ExitCode::SUCCESS,
                _ => ExitCode::FAILURE,
            }
        }
        ["bench", "rjobs"] => bench_result(xtask::bench::run_rjobs(200)),
        ["bench", "disown"] => bench_result(xtask::bench::run_disown()),
        ["bench", "rfg"] => bench_result(xtask::bench::run_rfg()),
        ["bench", "detach"] => bench_result(xtask::bench::run_detach(500)),
        ["bench", "detach", "--pairs", n] => match n.parse() {
            Ok(n) if n > 0 => bench_result(xtask::bench::run_detach(n)),
            _ => usage(),
        },
        ["bench", rest @ ..] => {
            let pairs = match rest {
                [] => 2000,
                ["--pairs", n] => match n.parse() {
                    Ok(n) if n > 0 => n,
                    _ => return usage(),
                },
                _ => return usage(),
            };
            bench_result(xtask::bench::run(pairs))
        }
        _ => usage(),
    }
}
