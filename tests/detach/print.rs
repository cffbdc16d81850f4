//! `--print=sysv` and `--print=systemd`: the script is run for real (start,
//! status, reload, stop, restart) from `/`, as init would; the unit is checked by
//! `systemd-analyze verify` and its `ExecStart=` read back by systemd's rules.
//! Both must give the daemon exactly the argv detach was given, whatever bytes
//! it holds. (Starting the unit, and `update-rc.d`, need the systemd container
//! of the logout tests.)

use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use super::{Daemon, detach, detach_cmd, file_becomes, open_tempdir, result};
use crate::util;

/// The daemon: `/bin/sh -c DAEMON NAME ARGS...`. It writes its own argv (from
/// /proc, NUL-separated) to `$LOGDIR/argv`, logs the signals it receives to
/// `$LOGDIR/signals`, and says `start` on its standard output.
const DAEMON: &str = r#"cd "$LOGDIR" || exit 1
cat /proc/$$/cmdline > argv.tmp && mv argv.tmp argv
trap 'echo HUP >> signals' HUP
trap 'echo TERM >> signals; kill $! 2>/dev/null; exit 0' TERM
echo start >> signals
echo start
while :; do sleep 1 & wait $!; done
"#;

/// Arguments no quoting may change.
fn hostile() -> Vec<OsString> {
    let mut args: Vec<OsString> = [
        "it's",
        "say \"hi\"",
        "$HOME ${PATH} $$",
        "100% %n %%",
        "`id` $(id)",
        " two  spaces ",
        "line1\nline2\n",
        "tab\there",
        "back\\slash \\n",
        ";",
        "\\;",
        "-p",
        "",
        "é",
        "#hash",
    ]
    .iter()
    .map(OsString::from)
    .collect();
    args.push(OsString::from_vec(b"raw\xff\x01byte".to_vec()));
    args
}

/// The daemon's command line: `/bin/sh -c DAEMON hk-daemon ARGS...`.
fn daemon_command() -> Vec<OsString> {
    let mut argv: Vec<OsString> = vec!["/bin/sh".into(), "-c".into(), DAEMON.into()];
    argv.push("hk-daemon".into());
    argv.extend(hostile());
    argv
}

/// `detach ARGS -- COMMAND` in `dir`, stdout captured.
fn print(dir: &Path, args: &[&str], command: &[OsString]) -> Output {
    detach_cmd(dir, args)
        .arg("--")
        .args(command)
        .output()
        .expect("run detach --print")
}

/// Runs the init script with `action`, from `/`, with the environment
/// service(8) gives it.
fn init(script: &Path, action: &str) -> (i32, String) {
    let out = Command::new(script)
        .arg(action)
        .current_dir("/")
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("LANG", "C")
        .stdin(Stdio::null())
        .output()
        .expect("run the init script");
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// NUL-terminated words, as /proc/PID/cmdline holds them.
fn nul_joined(words: &[OsString]) -> Vec<u8> {
    let mut bytes = Vec::new();
    for w in words {
        bytes.extend_from_slice(w.as_bytes());
        bytes.push(0);
    }
    bytes
}

fn argv_becomes(path: &Path, want: &[u8]) -> bool {
    util::poll_until(util::DEADLINE, || {
        std::fs::read(path).is_ok_and(|b| b == want)
    })
}

#[test]
fn sysv_script_runs_every_action() {
    let dir = open_tempdir();
    let d = dir.path();
    let logdir = format!("LOGDIR={}", d.display());
    let out = print(
        d,
        &[
            "--print=sysv",
            "--name",
            "hk-print.test",
            "-p",
            "d.pid",
            "-o",
            "out.log",
            "-E",
            &logdir,
        ],
        &daemon_command(),
    );
    let (code, stderr) = result(&out);
    assert_eq!((code, stderr.as_str()), (0, ""), "detach --print=sysv");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    for header in [
        "### BEGIN INIT INFO\n",
        "# Provides:          hk-print.test\n",
        "# Required-Start:    $remote_fs $syslog\n",
        "# Required-Stop:     $remote_fs $syslog\n",
        "# Default-Start:     2 3 4 5\n",
        "# Default-Stop:      0 1 6\n",
        "# Short-Description: ",
        "# Description:       ",
        "### END INIT INFO\n",
    ] {
        assert!(text.contains(header), "{header:?} in:\n{text}");
    }
    let detach_path = std::fs::canonicalize(util::bin("detach")).unwrap();
    assert!(
        text.contains(&format!("DETACH='{}'\n", detach_path.display())),
        "detach by its absolute path:\n{text}"
    );
    let script = d.join("hk-print.test");
    std::fs::write(&script, &out.stdout).unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    for shell in ["sh", "bash"] {
        let ok = Command::new(shell).arg("-n").arg(&script).status().unwrap();
        assert!(ok.success(), "{shell} -n accepts the script:\n{text}");
    }
    every_action(d, &script);
}

/// Runs the init script `script` (made for `-p d.pid -o out.log` in `d`)
/// through every LSB action, checking status codes and the daemon's signals.
fn every_action(d: &Path, script: &Path) {
    let pidfile = d.join("d.pid");
    let argv = nul_joined(&daemon_command());
    assert_eq!(init(script, "start").0, 0, "start");
    let first = Daemon::from_pidfile(&pidfile);
    assert!(argv_becomes(&d.join("argv"), &argv), "exact argv");
    assert!(
        file_becomes(&d.join("out.log"), "start\n"),
        "-o made absolute"
    );
    assert_eq!(init(script, "status").0, 0, "status of a running daemon");
    assert_eq!(
        init(script, "start").0,
        0,
        "start when running is success (LSB)"
    );
    assert_eq!(init(script, "reload").0, 0, "reload");
    assert!(
        file_becomes(&d.join("signals"), "start\nHUP\n"),
        "the daemon got SIGHUP"
    );
    assert_eq!(init(script, "stop").0, 0, "stop");
    assert!(first.wait_gone(util::DEADLINE));
    assert_eq!(init(script, "status").0, 3, "status once stopped");
    assert_eq!(
        init(script, "stop").0,
        0,
        "stop when stopped is success (LSB)"
    );
    assert_eq!(
        init(script, "reload").0,
        7,
        "reload when stopped: not running"
    );

    std::fs::remove_file(d.join("argv")).unwrap();
    assert_eq!(init(script, "start").0, 0, "start again");
    let second = Daemon::from_pidfile(&pidfile);
    assert!(argv_becomes(&d.join("argv"), &argv));
    // The daemon writes argv before it sets its traps: wait for its "start"
    // (written after them), or a loaded machine's restart may TERM it first.
    assert!(
        file_becomes(&d.join("signals"), "start\nHUP\nTERM\nstart\n"),
        "the second daemon started"
    );
    assert_eq!(init(script, "restart").0, 0, "restart");
    assert!(
        second.wait_gone(util::DEADLINE),
        "restart stopped the daemon"
    );
    let third = Daemon::from_pidfile(&pidfile);
    assert!(third.alive(), "restart started it again");
    assert!(
        file_becomes(&d.join("signals"), "start\nHUP\nTERM\nstart\nTERM\nstart\n"),
        "restart: TERM, then a new start"
    );
    assert_eq!(init(script, "force-reload").0, 0, "force-reload");
    assert!(third.wait_gone(util::DEADLINE), "force-reload restarts");
    let fourth = Daemon::from_pidfile(&pidfile);
    assert_eq!(init(script, "stop").0, 0);
    assert!(fourth.wait_gone(util::DEADLINE));
    assert_eq!(init(script, "bogus").0, 2, "unknown action");
}

/// The words of a systemd command line, by systemd's rules (systemd.service(5)
/// "Command lines", systemd.unit(5) "Specifiers"): `%%` is `%` (any other
/// specifier is not expected here), words split on unquoted whitespace, double
/// or single quotes, C escapes, then `$$` is `$` (`exec`: true; no other
/// variable is expected).
fn systemd_words(line: &str, exec: bool) -> Vec<Vec<u8>> {
    assert!(
        !line.replace("%%", "").contains('%'),
        "unexpected specifier in {line:?}"
    );
    let text = line.replace("%%", "%");
    let bytes = text.as_bytes();
    let mut words = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b' ' || bytes[i] == b'\t' {
            i += 1;
            continue;
        }
        let mut word = Vec::new();
        let mut quote = None;
        while i < bytes.len() {
            let b = bytes[i];
            i += 1;
            match (b, quote) {
                (b' ' | b'\t', None) => break,
                (b'"' | b'\'', None) => quote = Some(b),
                (q, Some(open)) if q == open => quote = None,
                (b'\\', _) => {
                    let e = bytes[i];
                    i += 1;
                    word.push(match e {
                        b'n' => b'\n',
                        b't' => b'\t',
                        b'\\' | b'"' | b'\'' => e,
                        b'x' => {
                            let hex = std::str::from_utf8(&bytes[i..i + 2]).unwrap();
                            i += 2;
                            u8::from_str_radix(hex, 16).unwrap()
                        }
                        _ => panic!("unexpected escape \\{} in {line:?}", e as char),
                    });
                }
                (b'$', _) if exec => {
                    assert_eq!(bytes[i], b'$', "a lone $ in {line:?}");
                    i += 1;
                    word.push(b'$');
                }
                _ => word.push(b),
            }
        }
        assert!(quote.is_none(), "unbalanced quotes in {line:?}");
        words.push(word);
    }
    words
}

/// The value of `key=` in the unit (the one line), if any.
fn setting<'a>(unit: &'a str, key: &str) -> Option<&'a str> {
    unit.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
}

#[test]
fn systemd_unit_keeps_argv_and_settings() {
    let dir = open_tempdir();
    let d = dir.path();
    let out = print(
        d,
        &[
            "--print=systemd",
            "--name",
            "hk-print@x",
            "-u",
            "nobody:nogroup",
            "-c",
            ".",
            "-m",
            "027",
            "-E",
            "GREETING=it's \"100%\" $HOME\nnext",
            "-E",
            "PLAIN=x",
            "-o",
            "out 1.log",
            "-e",
            "err.log",
            "-a",
            "--notify=30",
            "-l",
            "lock",
            "-p",
            "d.pid",
        ],
        &daemon_command(),
    );
    let (code, stderr) = result(&out);
    assert_eq!((code, stderr.as_str()), (0, ""), "detach --print=systemd");
    let unit = String::from_utf8(out.stdout).expect("the unit is UTF-8");
    let dir_text = d.display().to_string();
    for (key, want) in [
        ("Type", "notify".to_string()),
        ("TimeoutStartSec", "30".to_string()),
        ("User", "nobody".to_string()),
        ("Group", "nogroup".to_string()),
        ("WorkingDirectory", dir_text.clone()),
        ("UMask", "0027".to_string()),
        ("StandardOutput", format!("append:{dir_text}/out 1.log")),
        ("StandardError", format!("append:{dir_text}/err.log")),
    ] {
        assert_eq!(
            setting(&unit, key),
            Some(want.as_str()),
            "{key} in:\n{unit}"
        );
    }
    assert!(setting(&unit, "PIDFile").is_none(), "no PIDFile=:\n{unit}");
    assert_eq!(
        setting(&unit, "ExecReload"),
        Some("/bin/kill -HUP $MAINPID"),
        "reload as detach --reload does:\n{unit}"
    );
    assert!(
        unit.contains("# No PIDFile=: systemd tracks the main process"),
        "{unit}"
    );
    assert!(unit.contains("environment is not carried over"), "{unit}");
    assert!(unit.contains("--lock"), "-l said to be left out:\n{unit}");
    let env: Vec<Vec<u8>> = unit
        .lines()
        .filter_map(|l| l.strip_prefix("Environment="))
        .flat_map(|l| systemd_words(l, false))
        .collect();
    assert_eq!(
        env,
        vec![
            b"GREETING=it's \"100%\" $HOME\nnext".to_vec(),
            b"PLAIN=x".to_vec()
        ],
        "{unit}"
    );

    let exec = setting(&unit, "ExecStart").expect("ExecStart=");
    let words = systemd_words(exec, true);
    let mut want = vec![b"@/bin/sh".to_vec()];
    want.extend(daemon_command().iter().map(|a| a.as_bytes().to_vec()));
    assert_eq!(words, want, "ExecStart={exec}");

    verify(&d.join("hk-print@x.service"), &unit);
}

/// `systemd-analyze verify` accepts `unit`, written at `path`, without a
/// word (when systemd-analyze is installed: it needs no running systemd).
fn verify(path: &Path, unit: &str) {
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        std::fs::write(path, unit).unwrap();
        let out = Command::new("systemd-analyze")
            .args(["verify", "--man=no"])
            .arg(path)
            .env("SYSTEMD_LOG_LEVEL", "warning")
            .output()
            .unwrap();
        assert!(
            out.status.success() && out.stderr.is_empty(),
            "systemd-analyze verify: {}\n{unit}",
            String::from_utf8_lossy(&out.stderr)
        );
    } else {
        eprintln!("skipped: systemd-analyze verify (not installed)");
    }
}

#[test]
fn systemd_unit_defaults() {
    let dir = open_tempdir();
    let out = print(
        dir.path(),
        &[
            "--print=systemd",
            "--name",
            "hk",
            "-o",
            "both",
            "-e",
            "both",
        ],
        &["sleep".into(), "5".into()],
    );
    assert_eq!(result(&out), (0, String::new()));
    let unit = String::from_utf8(out.stdout).unwrap();
    let sleep = ["/usr/bin/sleep", "/bin/sleep"]
        .iter()
        .map(Path::new)
        .find(|p| p.exists())
        .unwrap();
    let dir_text = dir.path().display().to_string();
    for (key, want) in [
        ("Type", "exec".to_string()),
        ("WorkingDirectory", "/".to_string()),
        ("StandardOutput", format!("truncate:{dir_text}/both")),
        ("StandardError", format!("truncate:{dir_text}/both")),
        (
            "ExecStart",
            format!("@\"{}\" \"sleep\" \"5\"", sleep.display()),
        ),
    ] {
        assert_eq!(
            setting(&unit, key),
            Some(want.as_str()),
            "{key} in:\n{unit}"
        );
    }
    assert!(setting(&unit, "User").is_none(), "{unit}");
    verify(&dir.path().join("hk.service"), &unit);
    let out = print(
        dir.path(),
        &["--print=systemd", "--name", "hk"],
        &["sleep".into()],
    );
    let unit = String::from_utf8(out.stdout).unwrap();
    assert_eq!(setting(&unit, "StandardOutput"), Some("journal"), "{unit}");
    assert_eq!(setting(&unit, "StandardError"), Some("journal"), "{unit}");
}

#[test]
fn refusals() {
    const TRY: &str = "Try 'detach --help' for more information.\n";
    let dir = open_tempdir();
    for name in ["a b", "a/b", "", "x$", "é"] {
        let out = detach(dir.path(), &["--print=sysv", "--name", name, "sleep"]);
        assert_eq!(
            result(&out),
            (
                125,
                format!(
                    "detach: invalid service name {}: use letters, digits and '_.@-' only\n{TRY}",
                    hupkit_common::quote::quote_bytes(name.as_bytes(), false)
                )
            ),
            "--name {name:?}"
        );
        assert!(out.stdout.is_empty());
    }
    for args in [
        &["--print=sysv", "sleep"][..],
        &["--name", "x", "sleep"],
        &["--print=sysv", "--name", "x", "--status", "-p", "p"],
        &["--print=systemd", "--name", "x", "--stop", "-p", "p"],
        &["--print=sysv", "--name", "x", "--reload", "-p", "p"],
        &["--print=sysv", "--name", "x", "--restart", "-p", "p"],
        &["--print=upstart", "--name", "x", "sleep"],
    ] {
        let out = detach(dir.path(), args);
        let (code, stderr) = result(&out);
        assert_eq!(code, 125, "{args:?}: {stderr}");
        assert!(stderr.ends_with(TRY), "a usage error: {args:?}: {stderr}");
    }
    let out = detach(
        dir.path(),
        &["--print=systemd", "--name", "x", "no-such-command-hk"],
    );
    assert_eq!(
        result(&out),
        (
            127,
            "detach: failed to run command 'no-such-command-hk': No such file or directory\n"
                .to_string()
        )
    );
}

/// In a private mount namespace, an overlay of the container's Debian root
/// (`cargo xtask container`'s cache; its files are not changed and the
/// container need not run): `update-rc.d NAME defaults` accepts the script
/// and makes its links, and `service NAME status` runs it (3: not running).
#[test]
fn sysv_script_passes_update_rc_d() {
    let rootfs = xtask::container::rootfs();
    if !super::is_root() || !rootfs.join("usr/sbin/update-rc.d").exists() {
        eprintln!(
            "skipped: update-rc.d: needs root and the container's root filesystem (cargo xtask container up, once)"
        );
        return;
    }
    let dir = open_tempdir();
    let d = dir.path();
    let out = print(
        d,
        &[
            "--print=sysv",
            "--name",
            "hk-urc",
            "-p",
            "/run/hk-urc-test.pid",
        ],
        &["sleep".into(), "100".into()],
    );
    assert_eq!(result(&out), (0, String::new()));
    std::fs::write(d.join("hk-urc"), &out.stdout).unwrap();
    for sub in ["upper", "work", "merged"] {
        std::fs::create_dir(d.join(sub)).unwrap();
    }
    let detach_path = std::fs::canonicalize(util::bin("detach")).unwrap();
    let script = r#"set -e
d=$1 root=$2 detach=$3
mount -t overlay overlay -o "lowerdir=$root,upperdir=$d/upper,workdir=$d/work" "$d/merged"
m=$d/merged
install -m 755 "$d/hk-urc" "$m/etc/init.d/hk-urc"
chroot "$m" update-rc.d hk-urc defaults
ls "$m/etc/rc2.d" "$m/etc/rc0.d" | grep -x '[SK][0-9][0-9]hk-urc'
mkdir -p "$m${detach%/*}"
cp "$detach" "$m$detach"
mount -t proc proc "$m/proc"
set +e
chroot "$m" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin service hk-urc status
echo "status=$?"
"#;
    let out = Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", script, "sh"])
        .arg(d)
        .arg(&rootfs)
        .arg(&detach_path)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "update-rc.d in the overlay: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        stdout,
        "K01hk-urc\nS01hk-urc\ndetach: not running (no pidfile '/run/hk-urc-test.pid')\nstatus=3\n"
    );
}
