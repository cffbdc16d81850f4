//! What rnohup does beyond GNU, and what is its own: `--output FILE`, its help and
//! version texts, argv\[0\] in messages, and the parsing of `--output`.

use super::{Outcome, S, Scenario, run_one, run_rnohup, write_file};
use crate::util;

/// `extra` options, then the reference command.
fn args(extra: &[&'static str]) -> Vec<&'static str> {
    extra.iter().chain(S).copied().collect()
}

fn file(o: &Outcome, name: &str) -> String {
    o.files
        .get(name)
        .cloned()
        .unwrap_or_else(|| "absent".into())
}

#[test]
fn output_replaces_nohup_out_on_a_terminal() {
    let o = run_rnohup(&Scenario::new("o", "TTT", &args(&["--output", "log"])).umask(0o777));
    assert_eq!(o.status, "exit 0");
    assert_eq!(
        o.tty,
        "rnohup: ignoring input and appending output to 'log'\\n"
    );
    assert_eq!(file(&o, "cwd/log"), "file 0600 \"out\\nerr\\n\"");
    assert_eq!(file(&o, "cwd/nohup.out"), "absent");
}

#[test]
fn output_redirects_stdout_that_is_not_a_terminal() {
    let o = run_rnohup(&Scenario::new("o", "NFF", &args(&["--output=log"])));
    assert_eq!(o.status, "exit 0");
    assert_eq!(file(&o, "cwd/log"), "file 0600 \"out\\n\"");
    assert_eq!(file(&o, "out.txt"), "file 0644 \"\"");
    assert_eq!(
        file(&o, "err.txt"),
        "file 0644 \"rnohup: appending output to 'log'\\nerr\\n\""
    );
}

#[test]
fn output_opens_a_closed_stdout() {
    let o = run_rnohup(&Scenario::new("o", "TCT", &args(&["--output", "log"])));
    assert_eq!(o.status, "exit 0");
    assert_eq!(
        o.tty,
        "rnohup: ignoring input and appending output to 'log'\\n"
    );
    assert_eq!(file(&o, "cwd/log"), "file 0600 \"out\\nerr\\n\"");
}

#[test]
fn output_appends_and_keeps_mode() {
    let sc = Scenario::new("o", "NFF", &["--output", "log", "echo", "new"])
        .setup(|l| write_file(&l.cwd.join("log"), "old\n", 0o644));
    let o = run_rnohup(&sc);
    assert_eq!(o.status, "exit 0");
    assert_eq!(file(&o, "cwd/log"), "file 0644 \"old\\nnew\\n\"");
}

#[test]
fn output_failure_has_no_home_fallback_and_runs_nothing() {
    let o = run_rnohup(&Scenario::new(
        "o",
        "TTF",
        &["--output", "missing/log", "touch", "ran"],
    ));
    assert_eq!(o.status, "exit 125");
    assert_eq!(
        file(&o, "err.txt"),
        "file 0644 \"rnohup: failed to open 'missing/log': No such file or directory\\n\""
    );
    assert_eq!(file(&o, "cwd/ran"), "absent");
    assert_eq!(file(&o, "home/nohup.out"), "absent");
    assert_eq!(file(&o, "cwd/nohup.out"), "absent");

    let sc =
        Scenario::new("o", "NFF", &["--output", "/", "touch", "ran"]).env("POSIXLY_CORRECT", "1");
    let o = run_rnohup(&sc);
    assert_eq!(o.status, "exit 127");
    assert_eq!(
        file(&o, "err.txt"),
        "file 0644 \"rnohup: failed to open '/': Is a directory\\n\""
    );
}

#[test]
fn output_option_errors() {
    let o = run_rnohup(&Scenario::new("o", "NFF", &["--output"]));
    assert_eq!(o.status, "exit 125");
    assert_eq!(
        file(&o, "err.txt"),
        "file 0644 \"rnohup: option '--output' requires an argument\\nTry 'rnohup --help' for more information.\\n\""
    );
    let o = run_rnohup(&Scenario::new("o", "NFF", &["--output", "log"]));
    assert_eq!(o.status, "exit 125");
    assert_eq!(
        file(&o, "err.txt"),
        "file 0644 \"rnohup: missing operand\\nTry 'rnohup --help' for more information.\\n\""
    );
    assert_eq!(file(&o, "cwd/log"), "absent");
}

#[test]
fn help_and_version_texts() {
    let o = run_rnohup(&Scenario::new("h", "NPF", &["--help"]));
    assert_eq!(o.status, "exit 0");
    let help = &o.pipes[&1];
    assert!(help.starts_with("Usage: rnohup COMMAND [ARG]...\\n  or:  rnohup --output FILE COMMAND [ARG]...\\n  or:  rnohup OPTION\\nRun COMMAND, ignoring hangup signals.\\n"), "{help}");
    for needle in [
        "--output",
        "--help",
        "--version",
        "Exit status:",
        "125",
        "126",
        "127",
    ] {
        assert!(help.contains(needle), "{needle} missing from help");
    }
    let o = run_rnohup(&Scenario::new("v", "NPF", &["--version"]));
    assert_eq!(o.status, "exit 0");
    assert_eq!(
        o.pipes[&1],
        format!(
            "rnohup (hupkit) {}\\nLicense: MIT.\\n",
            env!("CARGO_PKG_VERSION")
        )
    );
}

#[test]
fn messages_are_prefixed_with_argv0_as_invoked() {
    let base = tempfile::tempdir().unwrap();
    let o = run_one(
        &Scenario::new("argv0", "NFF", &[]),
        &util::bin("rnohup"),
        "./mynohup",
        base.path(),
    );
    assert_eq!(o.status, "exit 125");
    assert_eq!(
        file(&o, "err.txt"),
        "file 0644 \"./mynohup: missing operand\\nTry './mynohup --help' for more information.\\n\""
    );
}

/// `--output` is recognised only spelt in full: a prefix is GNU's unrecognized
/// option, and nothing is opened or run (`gnu_diff` compares the
/// same vectors with GNU nohup).
#[test]
fn output_is_never_abbreviated() {
    let o = run_rnohup(&Scenario::new("o", "TTT", &args(&["--o", "log"])));
    assert_eq!(o.status, "exit 125");
    assert_eq!(
        o.tty,
        "rnohup: unrecognized option '--o'\\nTry 'rnohup --help' for more information.\\n"
    );
    assert_eq!(file(&o, "cwd/log"), "absent");
    let o = run_rnohup(&Scenario::new("amb", "NFF", &["--=x"]));
    assert_eq!(o.status, "exit 125");
    assert_eq!(
        file(&o, "err.txt"),
        "file 0644 \"rnohup: option '--=x' is ambiguous; possibilities: '--help' '--version'\\nTry 'rnohup --help' for more information.\\n\""
    );
}

/// Nothing left in the directory but what the scenario made, after a usage error
/// on a terminal (no nohup.out is created before the operand check).
#[test]
fn usage_errors_create_nothing() {
    let o = run_rnohup(&Scenario::new("u", "TTT", &["--output", "log"]));
    assert_eq!(o.status, "exit 125");
    let cwd: Vec<&String> = o.files.keys().filter(|k| k.starts_with("cwd/")).collect();
    assert!(cwd.is_empty(), "{cwd:?}");
}

/// The first bytes of `path`'s program headers: whether it asks for an ELF
/// interpreter (a `PT_INTERP` header, the dynamic loader). 64-bit little-endian.
fn has_interpreter(path: &std::path::Path) -> bool {
    let elf = std::fs::read(path).unwrap();
    assert_eq!(
        &elf[..6],
        b"\x7fELF\x02\x01",
        "not a 64-bit little-endian ELF"
    );
    let u16_at = |o: usize| usize::from(u16::from_le_bytes([elf[o], elf[o + 1]]));
    let phoff = usize::try_from(u64::from_le_bytes(elf[0x20..0x28].try_into().unwrap())).unwrap();
    let (phentsize, phnum) = (u16_at(0x36), u16_at(0x38));
    (0..phnum).any(|i| {
        let at = phoff + i * phentsize;
        u32::from_le_bytes(elf[at..at + 4].try_into().unwrap()) == 3
    })
}

/// rnohup's front has no loader and no library at all (static-pie, no
/// `DT_NEEDED`); its full implementation, hupkit-rnohup, and detach are
/// linked static-pie where the C compiler has glibc's static archives and
/// `rcrt1.o` (build.rs): no dynamic loader runs before them (detach looks
/// `--user` up through `getent`: tests/detach/nss.rs). The other tools stay
/// dynamic.
#[test]
fn rnohup_and_detach_are_static_without_a_loader() {
    let front = std::fs::read(util::bin("rnohup")).unwrap();
    assert!(
        !has_interpreter(&util::bin("rnohup")),
        "rnohup has a PT_INTERP"
    );
    let dynamic = std::process::Command::new("readelf")
        .args(["-d", "-r", "-W"])
        .arg(util::bin("rnohup"))
        .output()
        .unwrap();
    let dynamic = String::from_utf8_lossy(&dynamic.stdout);
    assert!(
        !dynamic.contains("(NEEDED)"),
        "rnohup needs a library:\n{dynamic}"
    );
    // Its _start applies only R_X86_64_RELATIVE relocations.
    let kinds: std::collections::BTreeSet<&str> = dynamic
        .lines()
        .filter_map(|l| l.split_whitespace().nth(2).filter(|k| k.starts_with("R_")))
        .collect();
    assert!(kinds.iter().all(|k| *k == "R_X86_64_RELATIVE"), "{kinds:?}");
    assert!(front.len() < 4 << 20, "{} bytes", front.len());
    let has = |name: &str| {
        std::process::Command::new("cc")
            .arg(format!("-print-file-name={name}"))
            .output()
            .is_ok_and(|o| {
                std::path::Path::new(String::from_utf8_lossy(&o.stdout).trim()).is_absolute()
            })
    };
    if !cfg!(all(
        target_os = "linux",
        target_env = "gnu",
        target_pointer_width = "64",
        target_endian = "little"
    )) || !has("rcrt1.o")
        || !has("libc.a")
        || !has("libgcc_eh.a")
    {
        eprintln!("skipped: no static-pie toolchain, hupkit-rnohup and detach are dynamic here");
        return;
    }
    assert!(
        !has_interpreter(&util::bin("hupkit-rnohup")),
        "hupkit-rnohup has a PT_INTERP"
    );
    assert!(
        !has_interpreter(&util::bin("detach")),
        "detach has a PT_INTERP"
    );
    assert!(
        has_interpreter(&util::bin("rjobs")),
        "rjobs has no PT_INTERP"
    );
}

/// The locale that [`messages_ignore_a_translated_locale`] runs in, generated by
/// .ci/run (`localedef`); GNU coreutils has German messages for nohup.
const TRANSLATED: &str = "de_DE.UTF-8";

/// rnohup's messages and strerror texts are its own (English, GNU's C-locale
/// wording) in every locale: in a translated locale they do not change, static
/// glibc or not (GNU nohup would speak German there).
#[test]
fn messages_ignore_a_translated_locale() {
    let listed = std::process::Command::new("locale")
        .arg("-a")
        .output()
        .unwrap();
    if !String::from_utf8_lossy(&listed.stdout)
        .lines()
        .any(|l| l.eq_ignore_ascii_case("de_DE.utf8"))
    {
        eprintln!("skipped: the locale {TRANSLATED} is not generated here");
        return;
    }
    let cases: [(&str, &[&str]); 4] = [
        ("TTT", S),
        ("NFF", &["/nonexistent/cmd"]),
        ("NFF", &["/dev/null"]),
        ("NFF", &["--bogus"]),
    ];
    for (fds, args) in cases {
        let c = run_rnohup(&Scenario::new("c", fds, args));
        let translated = Scenario::new("c", fds, args)
            .unset("LC_ALL")
            .env("LANG", TRANSLATED)
            .env("LANGUAGE", "de");
        assert_eq!(c, run_rnohup(&translated), "{args:?}");
    }
}
