//! Link the suite's binaries without `libgcc_s.so.1`.
//!
//! On `*-linux-gnu`, Rust's standard library links the unwinder as `-lgcc_s`, a
//! shared library that every binary then loads at start-up. Our release binaries
//! abort on panic and never unwind, and start-up time is what `rnohup` is measured
//! on (against GNU nohup, which needs only libc): loading `libgcc_s` costs about
//! 7% of `rnohup true` (docs/benchmarks.md). So this script puts a one-line linker
//! script named `libgcc_s.so` first on the search path, which makes `-lgcc_s`
//! resolve to the static `libgcc_eh.a` that gcc ships: the same unwinder, linked
//! in, exactly what Rust itself uses for `crt-static` builds. Test binaries
//! (which do unwind) work the same way with it.
//!
//! It applies only to this package's own links (the binaries and `tests/`), and
//! only when building for a GNU/Linux target whose C compiler (the linker Rust
//! calls: `$RUSTC_LINKER`, else `cc`) ships `libgcc_eh.a`: without that archive the
//! redirection would make every link fail, so the script then does nothing and
//! the binaries load `libgcc_s` as usual.
//!
//! `hupkit-rnohup` (rnohup's full implementation; the `rnohup` front needs
//! no libc at all, below) and `detach` are linked static-pie: no dynamic
//! loader at all (no `PT_INTERP`), which is most of what GNU nohup's start-up
//! costs beyond its own work (ratio 1.03 to about 0.9 in the C locale,
//! docs/benchmarks.md), and about 180 µs of each detach start. Neither
//! resolves a name through NSS (users, groups, hosts) in its own process:
//! rnohup needs none, and detach asks `getent`, a dynamically linked program,
//! for `--user` (`hupkit_common::nss`), since static glibc cannot load NSS
//! modules reliably (tests/detach/nss.rs fails if detach looks a user up
//! itself; the release link has no NSS code and no "Using 'getpwnam' in
//! statically linked applications" warning). The other tools stay dynamic. rustc links the C libraries of
//! `std` with `-Wl,-Bdynamic -lc ...` whatever the output kind, so a
//! per-binary `-static-pie` alone would pull `libc.so` into a static
//! executable; the script therefore also writes one-line linker scripts
//! `libc.so`, `libm.so`, ... (`INPUT(-l:libc.a)`) in a directory that only
//! these binaries' links search first (`-L` applies to every `-l` of a GNU ld
//! link, wherever it stands). This needs the static archives and `rcrt1.o`
//! (glibc's static-pie start files, in libc6-dev); where the C compiler cannot
//! find them, both are linked dynamically like the others.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Whether the linker's compiler driver can find the file `name` (a library or
/// start file): `-print-file-name` answers its full path when it has one, the
/// bare name otherwise.
fn cc_has(name: &str) -> bool {
    let cc = std::env::var_os("RUSTC_LINKER").unwrap_or_else(|| "cc".into());
    let Ok(out) = Command::new(cc)
        .arg(format!("-print-file-name={name}"))
        .output()
    else {
        return false;
    };
    let path = String::from_utf8_lossy(&out.stdout);
    let path = Path::new(path.trim());
    out.status.success() && path.is_absolute() && path.is_file()
}

fn has_libgcc_eh() -> bool {
    cc_has("libgcc_eh.a")
}

/// The C libraries rustc links `std` with on GNU/Linux, each redirected to its
/// static archive for the static-pie links.
const STD_C_LIBS: [&str; 6] = ["c", "m", "dl", "pthread", "rt", "util"];

/// The binaries linked static-pie (see the crate docs).
const STATIC_PIE: [&str; 2] = ["hupkit-rnohup", "detach"];

/// Links [`STATIC_PIE`] static-pie (see the crate docs), where the static
/// archives and `rcrt1.o` are there; answers whether it did.
fn link_static_pie(out: &Path) -> bool {
    if !cc_has("rcrt1.o") || !STD_C_LIBS.iter().all(|l| cc_has(&format!("lib{l}.a"))) {
        return false;
    }
    let dir = out.join("static-pie");
    if std::fs::create_dir_all(&dir).is_err() {
        return false;
    }
    for l in STD_C_LIBS {
        if std::fs::write(
            dir.join(format!("lib{l}.so")),
            format!("INPUT(-l:lib{l}.a)\n"),
        )
        .is_err()
        {
            return false;
        }
    }
    for bin in STATIC_PIE {
        println!("cargo::rustc-link-arg-bin={bin}=-static-pie");
        println!("cargo::rustc-link-arg-bin={bin}=-L{}", dir.display());
    }
    true
}

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-env-changed=RUSTC_LINKER");
    // rnohup's front (bins/rnohup/front): no C start files, no libc, no
    // dynamic loader; it relocates itself.
    for arg in ["-nostartfiles", "-nostdlib", "-static-pie"] {
        println!("cargo::rustc-link-arg-bin=rnohup={arg}");
    }
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let env = std::env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    if os != "linux" || env != "gnu" || !has_libgcc_eh() {
        return;
    }
    let Some(out) = std::env::var_os("OUT_DIR").map(PathBuf::from) else {
        return;
    };
    if std::fs::write(out.join("libgcc_s.so"), "INPUT(-lgcc_eh)\n").is_ok() {
        println!("cargo::rustc-link-search=native={}", out.display());
        link_static_pie(&out);
    }
}
