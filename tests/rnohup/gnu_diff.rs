//! rnohup against GNU coreutils nohup, scenario by scenario.
//!
//! Where `/usr/bin/nohup` is GNU coreutils 9.x, every scenario runs twice in the
//! same directory, once with GNU nohup and once with rnohup, both invoked as
//! `nohup` (argv\[0\]), so that messages compare byte for byte, and the two
//! [`Outcome`]s must be equal. The full 6×6×6 fd matrix runs with the research's
//! reference command; the named scenarios cover every row of the decision matrix
//! in `shared/research/nohup.md` and its corner cases.

use std::ffi::{OsStr, OsString};
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;

use super::{
    GNU, Kind, Layout, NOBODY, S, Scenario, gnu_available, make_writable, run_one, write_file,
};
use crate::util;

/// Runs a scenario with both programs; returns a report of the differences, if any.
fn compare(sc: &Scenario) -> Option<String> {
    let base = util::open_tempdir();
    let mut gnu = run_one(sc, Path::new(GNU), "nohup", base.path());
    let mut ours = run_one(sc, &util::bin("rnohup"), "nohup", base.path());
    make_writable(&base.path().join("run"));
    if !sc.compare_stdout {
        for o in [&mut gnu, &mut ours] {
            o.pipes.remove(&1);
            o.files.remove("out.txt");
            if sc.fds[1] == Kind::Tty {
                o.tty.clear();
            }
        }
    }
    if std::env::var_os("HUPKIT_TEST_SHOW").is_some() {
        eprintln!("{}: {:?}\n  {gnu:?}", sc.name, sc.args);
    }
    if gnu == ours {
        None
    } else {
        Some(format!(
            "scenario {}: {:?}\n  GNU:    {gnu:?}\n  rnohup: {ours:?}",
            sc.name, sc.args
        ))
    }
}

fn check_all(scenarios: &[Scenario]) {
    if !gnu_available() {
        eprintln!("skipped: {GNU} is not GNU coreutils 9.x");
        return;
    }
    util::check_each(scenarios, compare, "scenarios differ from GNU nohup");
}

/// Every combination of terminal, file, /dev/null, closed, /dev/full and pipe on
/// fds 0, 1 and 2 (216 scenarios), with the reference command.
#[test]
fn fd_matrix_matches_gnu() {
    let mut scenarios = Vec::new();
    for a in Kind::ALL {
        for b in Kind::ALL {
            for c in Kind::ALL {
                let fds: String = [a, b, c].iter().map(|k| k.letter()).collect();
                scenarios.push(Scenario::new("matrix", &fds, S));
            }
        }
    }
    check_all(&scenarios);
}

/// The named scenarios: the research's table (§7), the GNU test suite's cases
/// (§1.11) and the corner cases around them.
#[allow(clippy::too_many_lines)]
fn named() -> Vec<Scenario> {
    let nohup_out_dir = |l: &Layout| fs::create_dir(l.cwd.join("nohup.out")).unwrap();
    let both_dirs = |l: &Layout| {
        fs::create_dir(l.cwd.join("nohup.out")).unwrap();
        fs::create_dir(l.home.join("nohup.out")).unwrap();
    };
    let unwritable_cwd = |l: &Layout| {
        fs::set_permissions(&l.cwd, fs::Permissions::from_mode(0o555)).unwrap();
        nix::unistd::chown(&l.home, Some(NOBODY.into()), Some(NOBODY.into())).ok();
    };
    let both_unwritable = |l: &Layout| {
        fs::set_permissions(&l.cwd, fs::Permissions::from_mode(0o555)).unwrap();
        fs::set_permissions(&l.home, fs::Permissions::from_mode(0o555)).unwrap();
    };
    let mut v = vec![
        // The decision matrix rows, with the reference command.
        Scenario::new("row 1", "TTT", S),
        Scenario::new("row 2", "TTF", S),
        Scenario::new("row 3", "TFT", S),
        Scenario::new("row 4", "TFF", S),
        Scenario::new("row 5", "TCT", S),
        Scenario::new("row 6", "TCF", S),
        Scenario::new("row 7", "NTT", S),
        Scenario::new("row 8", "NTF", S),
        Scenario::new("row 9", "NFT", S),
        Scenario::new("row 10", "NFF", S),
        Scenario::new("row 11", "NCT", S),
        Scenario::new("row 12", "NCF", S),
        Scenario::new("stdin closed, others tty", "CTT", S),
        Scenario::new("all closed but stderr tty", "CCT", S),
        // stdin is unreadable, not empty.
        Scenario::new(
            "read from replaced stdin",
            "TTT",
            &["sh", "-c", "cat; echo $?"],
        ),
        Scenario::new(
            "stdin fd flags",
            "TTT",
            &["sh", "-c", "grep flags /proc/self/fdinfo/0"],
        ),
        // Signals: only SIGHUP is added; inherited ignores pass through.
        Scenario::new(
            "SigIgn",
            "TTT",
            &["sh", "-c", "grep -E 'SigIgn|SigBlk' /proc/self/status"],
        ),
        Scenario::new(
            "SigIgn with SIGPIPE inherited ignored",
            "NFF",
            &["sh", "-c", "grep SigIgn /proc/self/status"],
        )
        .sigpipe_ignored(),
        Scenario::new("fds seen by the command", "TTT", &["ls", "/proc/self/fd"]),
        // nohup.out mode and umask.
        Scenario::new("umask 0777", "TTT", &["sh", "-c", "umask"]).umask(0o777),
        Scenario::new("umask 0600", "TTT", &["sh", "-c", "umask"]).umask(0o600),
        Scenario::new("umask 0", "NTT", &["sh", "-c", "umask"]).umask(0),
        Scenario::new("existing nohup.out is appended", "TTT", &["echo", "new"])
            .setup(|l| write_file(&l.cwd.join("nohup.out"), "old\n", 0o644)),
        Scenario::new("nohup.out is a symlink", "TTT", &["echo", "x"])
            .setup(|l| symlink("target", l.cwd.join("nohup.out")).unwrap()),
        Scenario::new(
            "nohup.out is a dangling symlink to a missing dir",
            "TTT",
            &["echo", "x"],
        )
        .setup(|l| symlink("missing/target", l.cwd.join("nohup.out")).unwrap()),
        // $HOME fallback.
        Scenario::new("home fallback (EISDIR)", "TTT", S).setup(nohup_out_dir),
        Scenario::new("home fallback, stdin not a tty", "NTT", S).setup(nohup_out_dir),
        Scenario::new("home fallback with stdout closed", "TCT", S).setup(nohup_out_dir),
        Scenario::new("both fail (EISDIR)", "TTT", S).setup(both_dirs),
        Scenario::new("both fail, POSIXLY_CORRECT", "TTT", S)
            .setup(both_dirs)
            .env("POSIXLY_CORRECT", "1"),
        Scenario::new("both fail, HOME unset", "TTT", S)
            .setup(nohup_out_dir)
            .unset("HOME"),
        Scenario::new("both fail, HOME empty", "TTT", S)
            .setup(nohup_out_dir)
            .env("HOME", ""),
        Scenario::new("HOME with trailing slashes", "TTT", S)
            .setup(|l| {
                fs::create_dir(l.cwd.join("nohup.out")).unwrap();
                fs::create_dir(l.run.join("h 3")).unwrap();
            })
            .env_os("HOME", OsString::from("../h 3//")),
        Scenario::new("HOME with a quote", "TTT", S)
            .setup(|l| {
                fs::create_dir(l.cwd.join("nohup.out")).unwrap();
                fs::create_dir(l.run.join("it's")).unwrap();
            })
            .env("HOME", "../it's"),
        Scenario::new("unwritable cwd as nobody", "TTT", S)
            .setup(unwritable_cwd)
            .nobody(),
        Scenario::new("unwritable cwd and HOME as nobody", "TTT", S)
            .setup(both_unwritable)
            .nobody(),
        Scenario::new(
            "unwritable everywhere, POSIXLY_CORRECT, as nobody",
            "NTF",
            S,
        )
        .setup(both_unwritable)
        .env("POSIXLY_CORRECT", "")
        .nobody(),
        // Exec failures: on the original stderr, never in nohup.out.
        Scenario::new("command not found", "TTT", &["no-such-command"]),
        Scenario::new("command not found, files", "NFF", &["no-such-command"]),
        Scenario::new(
            "command not found, POSIXLY_CORRECT",
            "NFF",
            &["no-such-command"],
        )
        .env("POSIXLY_CORRECT", "1"),
        Scenario::new("mode 000 file", "TTT", &["./k"])
            .setup(|l| write_file(&l.cwd.join("k"), "", 0o000)),
        Scenario::new("a directory", "TTT", &["/"]),
        Scenario::new("script without x bit", "NFF", &["./script.sh"])
            .setup(|l| write_file(&l.cwd.join("script.sh"), "echo hi\n", 0o644)),
        Scenario::new("not a directory", "NFF", &["/etc/passwd/x"]),
        Scenario::new("executable without #!", "NFF", &["./noshebang"])
            .setup(|l| write_file(&l.cwd.join("noshebang"), "echo via sh\nexit 4\n", 0o755)),
        Scenario::new("missing interpreter", "NFF", &["./bad"])
            .setup(|l| write_file(&l.cwd.join("bad"), "#!/nonexistent/sh\n", 0o755)),
        Scenario::new("PATH entry not executable", "NFF", &["k"])
            .setup(|l| {
                fs::create_dir(l.run.join("p")).unwrap();
                write_file(&l.run.join("p/k"), "", 0o644);
            })
            .env("PATH", "../p"),
        Scenario::new("empty PATH", "NFF", &["true"]).env("PATH", ""),
        Scenario::new("PATH unset", "NFF", &["true"]).unset("PATH"),
        Scenario::new(
            "exec error with stderr /dev/full",
            "NFX",
            &["no-such-command"],
        ),
        Scenario::new(
            "exec error with stderr /dev/full, POSIXLY_CORRECT",
            "NFX",
            &["no-such-command"],
        )
        .env("POSIXLY_CORRECT", "1"),
        Scenario::new(
            "exec error, tty, stderr /dev/full",
            "TTX",
            &["no-such-command"],
        ),
        Scenario::new("command name with a TAB", "NFF", &["a\tb"]),
        Scenario::new("command name with a quote", "NFF", &["bad'name"]),
        Scenario::os(
            "command name not UTF-8",
            "NFF",
            vec![OsStr::from_bytes(b"\xffcmd").to_os_string()],
        ),
        // The command's own status and signal death pass through.
        Scenario::new("exit status", "NFF", &["sh", "-c", "exit 3"]),
        Scenario::new("signal death", "NFF", &["sh", "-c", "kill -TERM $$"]),
        Scenario::new(
            "printf escapes pass through",
            "NFF",
            &["printf", "a\\tb\\n"],
        ),
        // Advisory message cannot be written: the command must not run.
        Scenario::new("advisory to /dev/full", "TTX", &["touch", "ran"]),
        Scenario::new(
            "advisory to /dev/full, file stdout",
            "TFX",
            &["touch", "ran"],
        ),
        Scenario::new("no advisory needed, /dev/full", "NFX", &["touch", "ran"]),
        Scenario::new("advisory to closed stderr", "TCC", &["touch", "ran"]),
        Scenario::new("stderr closed, stdout tty", "TTC", &["touch", "ran"]),
        Scenario::new(
            "advisory to /dev/full, POSIXLY_CORRECT",
            "TTX",
            &["touch", "ran"],
        )
        .env("POSIXLY_CORRECT", "1"),
        Scenario::new("nothing to say, stdio closed", "NCC", &["touch", "ran"]),
        // Usage.
        Scenario::new("missing operand", "NFF", &[]),
        Scenario::new("missing operand, tty: nothing created", "TTT", &[]),
        Scenario::new("missing operand, POSIXLY_CORRECT empty", "NFF", &[])
            .env("POSIXLY_CORRECT", ""),
        Scenario::new("-- alone", "NFF", &["--"]),
        Scenario::new("-x", "NFF", &["-x"]),
        Scenario::new("-h", "NFF", &["-h"]),
        Scenario::new("-V", "NFF", &["-V"]),
        Scenario::new("-/", "NFF", &["-/"]),
        Scenario::new("-x, POSIXLY_CORRECT", "NFF", &["-x"]).env("POSIXLY_CORRECT", "1"),
        Scenario::new("--foo", "NFF", &["--foo"]),
        Scenario::new("--foo=bar", "NFF", &["--foo=bar"]),
        Scenario::new("--help=x", "NFF", &["--help=x"]),
        Scenario::new("--bogus --help", "NFF", &["--bogus", "--help"]),
        Scenario::new("--help", "NFF", &["--help"]).loose_stdout(),
        Scenario::new("--he", "NFF", &["--he"]).loose_stdout(),
        Scenario::new("--help then more", "NFF", &["--help", "echo", "hi"]).loose_stdout(),
        Scenario::new("--version", "NFF", &["--version"]).loose_stdout(),
        Scenario::new("--v", "NPF", &["--v"]).loose_stdout(),
        Scenario::new("--version to /dev/full", "NXF", &["--version"]),
        Scenario::new("--version to closed stdout", "NCF", &["--version"]),
        Scenario::new("--help to /dev/full, POSIXLY_CORRECT", "NXF", &["--help"])
            .env("POSIXLY_CORRECT", "1"),
        // Prefixes of rnohup's own --output are no abbreviation: outside the
        // full spelling, GNU's answer ("unrecognized option", 125).
        Scenario::new("--o", "NFF", &["--o", "log", "true"]),
        Scenario::new("--ou", "NFF", &["--ou", "log", "true"]),
        Scenario::new("--out", "TTT", &["--out", "log", "true"]),
        Scenario::new("--outpu", "NFF", &["--outpu", "log", "true"]),
        Scenario::new("--o=x", "NFF", &["--o=x", "true"]),
        Scenario::new("--outp=x", "NFF", &["--outp=x", "true"]),
        Scenario::new("--outputs", "NFF", &["--outputs", "log", "true"]),
        Scenario::new("--output-x=y", "NFF", &["--output-x=y", "true"]),
        Scenario::new("--o alone", "NFF", &["--o"]),
        Scenario::new("--=x", "NFF", &["--=x"]),
        Scenario::new("-- =", "NFF", &["--="]),
        Scenario::new("--o then --help", "NFF", &["--o", "--help"]),
        Scenario::new("--h", "NFF", &["--h"]).loose_stdout(),
        Scenario::new("--hel", "NFF", &["--hel"]).loose_stdout(),
        Scenario::new("--vers", "NFF", &["--vers"]).loose_stdout(),
        Scenario::new("--versio", "NFF", &["--versio"]).loose_stdout(),
        Scenario::new("--h=x", "NFF", &["--h=x"]),
        Scenario::new("--v=", "NFF", &["--v="]),
        Scenario::new("options stop at the command", "NFF", &["echo", "--help"]),
        Scenario::new("-- then command", "NFF", &["--", "echo", "hi"]),
        Scenario::new("-- then --help", "NFF", &["--", "--help"]),
        Scenario::new("- as command", "NFF", &["-"]),
        Scenario::new("empty command", "NFF", &[""]),
        Scenario::new("empty command, tty", "TTT", &[""]),
    ];
    // A command whose argument is not UTF-8 either.
    v.push(Scenario::os(
        "argument not UTF-8",
        "NFF",
        vec![
            "printf".into(),
            "%s\\n".into(),
            OsStr::from_bytes(b"a\xffb").into(),
        ],
    ));
    v
}

#[test]
fn named_scenarios_match_gnu() {
    let scenarios = named();
    assert!(scenarios.len() >= 30);
    check_all(&scenarios);
}

/// The named scenarios again in the C.UTF-8 locale (the runs above are in the C
/// locale): GNU nohup calls `setlocale` and then quotes for a UTF-8 character
/// set; rnohup, a static binary that reads no locale files, must still quote
/// and word its messages and strerror texts the same way.
#[test]
fn named_scenarios_match_gnu_in_c_utf8() {
    let scenarios: Vec<Scenario> = named()
        .into_iter()
        .map(|sc| sc.env("LC_ALL", "C.UTF-8"))
        .collect();
    check_all(&scenarios);
}
