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

use std::path::{Path, PathBuf};
use std::process::Command;

/// Whether the linker's compiler driver can find `libgcc_eh.a`: `-print-file-name`
/// answers the archive's full path when it has one, the bare name otherwise.
fn has_libgcc_eh() -> bool {
    let cc = std::env::var_os("RUSTC_LINKER").unwrap_or_else(|| "cc".into());
    let Ok(out) = Command::new(cc)
        .arg("-print-file-name=libgcc_eh.a")
        .output()
    else {
        return false;
    };
    let path = String::from_utf8_lossy(&out.stdout);
    let path = Path::new(path.trim());
    out.status.success() && path.is_absolute() && path.is_file()
}

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-env-changed=RUSTC_LINKER");
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
    }
}
