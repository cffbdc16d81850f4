//! Every failure: its one-line message and its exit status, and nothing started.

use std::os::unix::fs::PermissionsExt;

use super::{as_nobody, detach, detach_for_nobody, open_tempdir, result, root_tempdir};

fn check(args: &[&str], code: i32, stderr: &str) {
    let dir = open_tempdir();
    std::fs::write(dir.path().join("plain"), "echo hi\n").unwrap();
    std::fs::write(dir.path().join("badshebang"), "#!/nonexistent/sh\n").unwrap();
    std::fs::set_permissions(
        dir.path().join("badshebang"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    let out = detach(dir.path(), args);
    assert_eq!(result(&out), (code, stderr.to_string()), "detach {args:?}");
    // detach writes the pidfile while the daemon sets itself up: a failure
    // found then removes it, and its identity file, before detach returns.
    assert!(
        !dir.path().join("p.pid").exists() && !dir.path().join("p.pid.id").exists(),
        "no pidfile after a failure: {args:?}"
    );
    assert!(!dir.path().join("ran").exists(), "nothing ran: {args:?}");
}

const TRY: &str = "Try 'detach --help' for more information.\n";

#[test]
fn command_not_found_or_not_runnable() {
    check(
        &["-p", "p.pid", "no-such-command"],
        127,
        "detach: failed to run command 'no-such-command': No such file or directory\n",
    );
    check(
        &["-p", "p.pid", "./missing"],
        127,
        "detach: failed to run command './missing': No such file or directory\n",
    );
    check(
        &["-p", "p.pid", ""],
        127,
        "detach: failed to run command '': No such file or directory\n",
    );
    // Found by name but not executable: decided in the daemon, reported through the pipe.
    check(
        &["-p", "p.pid", "./plain"],
        126,
        "detach: failed to run command './plain': Permission denied\n",
    );
    check(
        &["-p", "p.pid", "/etc"],
        126,
        "detach: failed to run command '/etc': Permission denied\n",
    );
    check(
        &["-p", "p.pid", "./badshebang"],
        127,
        "detach: failed to run command './badshebang': No such file or directory\n",
    );
}

#[test]
fn setup_failures_name_the_step() {
    check(
        &["-p", "p.pid", "-c", "/nonexistent", "touch", "ran"],
        125,
        "detach: cannot change directory to '/nonexistent': No such file or directory\n",
    );
    check(
        &["-p", "p.pid", "-c", "/etc/passwd", "touch", "ran"],
        125,
        "detach: cannot change directory to '/etc/passwd': Not a directory\n",
    );
    check(
        &["-p", "p.pid", "-o", "/nonexistent/log", "touch", "ran"],
        125,
        "detach: cannot open '/nonexistent/log': No such file or directory\n",
    );
    check(
        &["-p", "p.pid", "-e", "/", "touch", "ran"],
        125,
        "detach: cannot open '/': Is a directory\n",
    );
    check(
        &["-p", "p.pid", "-u", "no-such-user-x", "touch", "ran"],
        125,
        "detach: unknown user 'no-such-user-x'\n",
    );
    check(
        &["-p", "p.pid", "-u", "root:no-such-group-x", "touch", "ran"],
        125,
        "detach: unknown group 'no-such-group-x'\n",
    );
    // getent would read these keys as user 0 (strtoul wraps, skips blanks):
    // as names they name nobody.
    check(
        &["-p", "p.pid", "-u", "4294967296", "touch", "ran"],
        125,
        "detach: unknown user '4294967296'\n",
    );
    check(
        &["-p", "p.pid", "-u", " 0", "touch", "ran"],
        125,
        "detach: unknown user ' 0'\n",
    );
    check(
        &["-p", "p.pid", "-u", "root: 0", "touch", "ran"],
        125,
        "detach: unknown group ' 0'\n",
    );
    check(
        &["-p", "p.pid", "-u", "", "touch", "ran"],
        125,
        "detach: invalid user ''\n",
    );
    check(
        &["-p", "p.pid", "-l", "p.pid", "touch", "ran"],
        125,
        &format!("detach: --pidfile and --lock must be different files\n{TRY}"),
    );
}

#[test]
fn usage_errors() {
    check(
        &[],
        125,
        &format!("detach: the following required arguments were not provided: <COMMAND>...\n{TRY}"),
    );
    check(
        &["--bogus", "touch", "ran"],
        125,
        &format!("detach: unexpected argument '--bogus' found\n{TRY}"),
    );
    check(
        &["-m", "999", "touch", "ran"],
        125,
        &format!("detach: invalid umask '999'\n{TRY}"),
    );
    check(
        &["-m", "", "touch", "ran"],
        125,
        &format!("detach: invalid umask ''\n{TRY}"),
    );
    check(
        &["-E", "NOEQUALS", "touch", "ran"],
        125,
        &format!("detach: invalid --env 'NOEQUALS': expected NAME=VALUE\n{TRY}"),
    );
    check(
        &["-E", "=x", "touch", "ran"],
        125,
        &format!("detach: invalid --env '=x': expected NAME=VALUE\n{TRY}"),
    );
    check(
        &["--status"],
        125,
        &format!(
            "detach: the following required arguments were not provided: <--pidfile <FILE>|--job <ID>>\n{TRY}"
        ),
    );
    check(
        &["--retry", "5", "touch", "ran"],
        125,
        &format!(
            "detach: the following required arguments were not provided: <--stop|--restart>\n{TRY}"
        ),
    );
    check(
        &["--status", "-p", "p.pid", "touch", "ran"],
        125,
        &format!("detach: the argument '--status' cannot be used with '[COMMAND]...'\n{TRY}"),
    );
    check(
        &["--stop", "-p", "x.pid", "--retry", "FOO/1"],
        125,
        &format!(
            "detach: invalid --retry schedule 'FOO/1': 'FOO' is not a signal, a number of seconds or 'forever'\n{TRY}"
        ),
    );
    check(
        &["--notify=abc", "touch", "ran"],
        125,
        &format!(
            "detach: invalid value 'abc' for '--notify[=<SECONDS>]': invalid digit found in string\n{TRY}"
        ),
    );
}

#[test]
fn user_needs_root() {
    let Some(dir) = root_tempdir("needs root") else {
        return;
    };
    let bin = detach_for_nobody(dir.path());
    let out = as_nobody(
        dir.path(),
        &bin,
        &[
            "-u",
            "root",
            "-p",
            "/tmp/never.pid",
            "touch",
            "/tmp/never-ran",
        ],
    );
    assert_eq!(
        result(&out),
        (125, "detach: --user needs root privileges\n".to_string())
    );
}

#[test]
fn help_and_version() {
    let dir = open_tempdir();
    let out = detach(dir.path(), &["--help"]);
    assert_eq!(out.status.code(), Some(0));
    let help = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "--append",
        "--chdir",
        "--notify",
        "--retry",
        "Exit status:",
        "127",
        "FILE.id",
    ] {
        assert!(help.contains(needle), "{needle} missing from --help");
    }
    let out = detach(dir.path(), &["--version"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("detach {}\n", env!("CARGO_PKG_VERSION"))
    );
}

/// Outside systemd (this machine's PID 1 is not systemd), `--scope` and
/// `--linger` fail at once, in one line that says so, and start nothing.
#[test]
fn scope_and_linger_without_systemd_say_so() {
    if std::path::Path::new("/run/systemd/system").exists() {
        let _ = std::io::Write::write_all(
            &mut std::io::stderr(),
            b"skipped: detach::errors::scope_and_linger_without_systemd_say_so: systemd runs here\n",
        );
        return;
    }
    let why = "no systemd: it is not the service manager here (/run/systemd/system does not exist)";
    check(
        &["--scope", "-c", ".", "-p", "p.pid", "sh", "-c", "touch ran"],
        125,
        &format!("detach: cannot use --scope: {why}\n"),
    );
    let user = nix::unistd::User::from_uid(nix::unistd::geteuid())
        .ok()
        .flatten()
        .map_or_else(|| nix::unistd::geteuid().to_string(), |u| u.name);
    check(
        &[
            "--linger",
            "-c",
            ".",
            "-p",
            "p.pid",
            "sh",
            "-c",
            "touch ran",
        ],
        125,
        &format!("detach: cannot enable lingering for user '{user}': {why}\n"),
    );
}
