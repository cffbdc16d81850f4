//! `--print=sysv` and `--print=systemd`: the command line that would start a
//! daemon, turned into an /etc/init.d script or a systemd unit, printed
//! instead of run.
//!
//! The decisions:
//! - The script calls detach itself, by the canonical path of the running
//!   binary (/proc/self/exe), with the same options; every path is made
//!   absolute from the caller's directory (init runs scripts from `/`), and
//!   the pidfile defaults to `/run/NAME.pid` so that stop and status work.
//!   Arguments are shell single-quoted (`'\''` for a quote), which keeps every
//!   byte, newlines included, in any POSIX shell.
//! - The unit hands the same settings to systemd: `ExecStart=@PATH ARGV0 ...`
//!   keeps argv\[0\] as given; each word is double-quoted with C escapes
//!   (`\xNN` for any byte that is not printable ASCII, so the file is ASCII),
//!   `$` written `$$` and `%` written `%%`. Nothing is dropped silently: what
//!   has no unit equivalent (`-p`, `-l`, `-v`) is said in a comment.
//! - COMMAND is found now, as a start would find it (the caller's PATH, or the
//!   `--env` PATH), and written by its absolute path: neither init nor systemd
//!   has the caller's PATH or directory.
//! - Only the `--env` pairs are carried over, never the caller's environment
//!   (it may hold secrets); both outputs say so.

use std::ffi::{OsStr, OsString};
use std::fmt::Write as _;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use hupkit_common::exit::{self, Status};
use hupkit_common::quote::{command_line_bytes, quote};
use hupkit_common::{Error, Result};

use crate::cli::Cli;
use crate::logging;
use crate::plan;

/// What `--print` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// An /etc/init.d script with LSB headers, calling detach
    Sysv,
    /// A systemd service unit with the same settings
    Systemd,
}

/// The command line, made independent of the caller's directory and PATH.
struct Resolved {
    name: String,
    /// COMMAND's absolute path.
    program: PathBuf,
    /// `--env` pairs, split.
    env: Vec<(OsString, OsString)>,
    cwd: PathBuf,
}

/// `--print`: writes the script or unit for `cli` on standard output.
pub fn print(cli: &Cli, format: Format) -> Result<Status> {
    let name = cli.name.clone().unwrap_or_default();
    check_name(&name)?;
    let cwd = std::env::current_dir().map_err(|e| {
        Error::sys(
            "cannot get the current directory",
            crate::errno_of(&e),
            exit::CANCELED,
        )
    })?;
    let env = env_pairs(&cli.env)?;
    if let Some(umask) = &cli.umask {
        plan::parse_umask(umask)?;
    }
    if let Some(user) = &cli.user {
        plan::parse_user(user)?;
    }
    if let Some(tag) = cli.journal.as_ref().or(cli.syslog.as_ref()) {
        logging::tag(tag, &cli.command)?;
    }
    let path_var = env
        .iter()
        .rev()
        .find(|(k, _)| k == "PATH")
        .map(|(_, v)| v.clone())
        .or_else(|| std::env::var_os("PATH"));
    let command = cli.command.first().cloned().unwrap_or_default();
    let program = plan::search(&command, path_var.as_deref(), &cwd).map_err(|errno| {
        Error::sys(
            format!("failed to run command {}", quote(&command)),
            errno,
            Status::for_exec_error(errno),
        )
    })?;
    let r = Resolved {
        name,
        program,
        env,
        cwd,
    };
    let text = match format {
        Format::Sysv => sysv(cli, &r)?,
        Format::Systemd => systemd(cli, &r).into_bytes(),
    };
    // A closed pipe is a quiet end, as for every tool here.
    let _ = hupkit_common::stdio::write_all(hupkit_common::stdio::STDOUT, &text);
    Ok(exit::SUCCESS)
}

/// NAME must be `[A-Za-z0-9_.@-]+`: it names a file in /etc/init.d, a unit
/// and the default pidfile.
fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.@-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(Error::usage(
            format!(
                "invalid service name {}: use letters, digits and '_.@-' only",
                quote(OsStr::new(name))
            ),
            exit::CANCELED,
        ))
    }
}

/// The `--env` items as pairs; `NAME=VALUE` is required, as for a start.
fn env_pairs(items: &[OsString]) -> Result<Vec<(OsString, OsString)>> {
    items
        .iter()
        .map(|item| {
            let bytes = item.as_bytes();
            match bytes.iter().position(|&b| b == b'=') {
                Some(eq) if eq > 0 => Ok((
                    OsStr::from_bytes(&bytes[..eq]).to_os_string(),
                    OsStr::from_bytes(&bytes[eq + 1..]).to_os_string(),
                )),
                _ => Err(Error::usage(
                    format!("invalid --env {}: expected NAME=VALUE", quote(item)),
                    exit::CANCELED,
                )),
            }
        })
        .collect()
}

/// `path` made absolute from `cwd`, without `.` components.
fn absolute(cwd: &Path, path: &Path) -> PathBuf {
    plan::absolute(cwd, path).components().collect()
}

/// `word` in shell single quotes: every byte kept, `'` as `'\''`.
fn sh_quote(word: &[u8]) -> Vec<u8> {
    let mut out = vec![b'\''];
    for &b in word {
        if b == b'\'' {
            out.extend_from_slice(b"'\\''");
        } else {
            out.push(b);
        }
    }
    out.push(b'\'');
    out
}

/// One line of text for a comment or header: quoted as a shell would read
/// it, ASCII only, never a newline.
fn comment_text<'a>(argv: impl IntoIterator<Item = &'a [u8]>) -> String {
    command_line_bytes(argv, false)
}

fn words(argv: &[OsString]) -> impl Iterator<Item = &[u8]> {
    argv.iter().map(|a| a.as_bytes())
}

/// The path of the running detach, canonical.
fn detach_path() -> Result<PathBuf> {
    std::fs::canonicalize("/proc/self/exe").map_err(|e| {
        Error::sys(
            "cannot find the path of detach itself",
            crate::errno_of(&e),
            exit::CANCELED,
        )
    })
}

/// detach's start options for the script, paths absolute (`-p` is `$PIDFILE`).
fn start_options(cli: &Cli, r: &Resolved) -> Vec<Vec<u8>> {
    let abs = |p: &Path| absolute(&r.cwd, p).into_os_string().into_vec();
    let mut opts: Vec<Vec<u8>> = Vec::new();
    let mut pair = |flag: &str, value: Vec<u8>| {
        let mut line = flag.as_bytes().to_vec();
        line.push(b' ');
        line.extend(sh_quote(&value));
        opts.push(line);
    };
    if let Some(dir) = &cli.chdir {
        pair("-c", abs(dir));
    }
    if let Some(file) = &cli.stdout {
        pair("-o", abs(file));
    }
    if let Some(file) = &cli.stderr {
        pair("-e", abs(file));
    }
    for item in &cli.env {
        pair("-E", item.as_bytes().to_vec());
    }
    if let Some(file) = &cli.lock {
        pair("-l", abs(file));
    }
    if let Some(user) = &cli.user {
        pair("-u", user.as_bytes().to_vec());
    }
    if let Some(mask) = &cli.umask {
        pair("-m", mask.as_bytes().to_vec());
    }
    if cli.append {
        opts.push(b"-a".to_vec());
    }
    if cli.verbose {
        opts.push(b"-v".to_vec());
    }
    if let Some(secs) = cli.notify {
        opts.push(format!("--notify={secs}").into_bytes());
    }
    for (option, tag) in [("--syslog", &cli.syslog), ("--journal", &cli.journal)] {
        match tag.as_deref().map(OsStrExt::as_bytes) {
            Some([]) => opts.push(option.as_bytes().to_vec()),
            Some(tag) => {
                let mut line = format!("{option}=").into_bytes();
                line.extend(sh_quote(tag));
                opts.push(line);
            }
            None => {}
        }
    }
    // The script runs at boot, outside any login session: --scope still moves
    // the daemon out of the script's own cgroup (a unit of the init system).
    if cli.scope {
        opts.push(b"--scope".to_vec());
    }
    opts
}

const SYSV_ACTIONS: &str = r#"
do_start() {
	start_daemon
	case $? in
	0|1) return 0 ;; # 1: already running, a success for start (LSB)
	126) return 4 ;; # COMMAND could not be run
	127) return 5 ;; # COMMAND is not installed
	*) return 1 ;;
	esac
}

do_stop() {
	"$DETACH" --stop -p "$PIDFILE"
	case $? in
	0|1) return 0 ;; # 1: was not running, a success for stop (LSB)
	*) return 1 ;;
	esac
}

do_reload() {
	"$DETACH" --reload -p "$PIDFILE"
	case $? in
	0) return 0 ;;
	1) return 7 ;; # not running
	*) return 1 ;;
	esac
}

case "$1" in
start) do_start ;;
stop) do_stop ;;
# force-reload restarts: nothing says the daemon rereads anything on SIGHUP.
# (detach --restart is not used: this script, not a job record, holds the options.)
restart|force-reload) do_stop && do_start ;;
reload) do_reload ;;
status) "$DETACH" --status -p "$PIDFILE" ;;
*)
	printf 'Usage: %s {start|stop|restart|reload|force-reload|status}\n' "$0" >&2
	exit 2
	;;
esac
"#;

/// The /etc/init.d script.
fn sysv(cli: &Cli, r: &Resolved) -> Result<Vec<u8>> {
    let name = &r.name;
    let pidfile = cli.pidfile.as_deref().map_or_else(
        || PathBuf::from(format!("/run/{name}.pid")),
        |p| absolute(&r.cwd, p),
    );
    let mut text = format!(
        "#!/bin/sh
### BEGIN INIT INFO
# Provides:          {name}
# Required-Start:    $remote_fs $syslog
# Required-Stop:     $remote_fs $syslog
# Default-Start:     2 3 4 5
# Default-Stop:      0 1 6
# Short-Description: {name}, a daemon run by detach
# Description:       Runs {} as a daemon, with detach(1).
### END INIT INFO
#
# Generated by detach --print=sysv. The daemon gets the environment this
# script runs with (service(8) clears it) plus the --env pairs below: the
# environment of whoever generated the script is not carried over. Paths were
# made absolute from {}.
",
        comment_text(words(&cli.command)),
        comment_text([r.cwd.as_os_str().as_bytes()]),
    )
    .into_bytes();
    if cli.command.first().map(OsString::as_os_str) != Some(r.program.as_os_str()) {
        text.extend(
            format!(
                "# COMMAND {} is {}, as found with the PATH of the caller of --print.\n",
                comment_text(words(&cli.command[..1])),
                comment_text([r.program.as_os_str().as_bytes()])
            )
            .into_bytes(),
        );
    }
    if cli.linger {
        text.extend(
            b"# --linger: not translated (a one-time setting: loginctl enable-linger USER).\n"
                .iter(),
        );
    }
    text.extend(b"\nDETACH=");
    text.extend(sh_quote(detach_path()?.as_os_str().as_bytes()));
    text.extend(b"\nPIDFILE=");
    text.extend(sh_quote(pidfile.as_os_str().as_bytes()));
    text.extend(b"\n\nstart_daemon() {\n\t\"$DETACH\" -p \"$PIDFILE\"");
    for opt in start_options(cli, r) {
        text.extend(b" \\\n\t\t");
        text.extend(opt);
    }
    text.extend(b" \\\n\t\t--");
    let args = std::iter::once(r.program.as_os_str())
        .chain(cli.command.iter().skip(1).map(OsString::as_os_str));
    for arg in args {
        text.push(b' ');
        text.extend(sh_quote(arg.as_bytes()));
    }
    text.extend(b"\n}\n");
    text.extend(SYSV_ACTIONS.as_bytes());
    Ok(text)
}

/// `word` quoted for a unit file: double quotes, C escapes, `%%`; `exec`:
/// for a command line, where `$` is `$$`.
fn unit_quote(word: &[u8], exec: bool) -> String {
    let mut out = String::from("\"");
    for &b in word {
        match b {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            b'%' => out.push_str("%%"),
            b'$' if exec => out.push_str("$$"),
            b'\n' => out.push_str("\\n"),
            b'\t' => out.push_str("\\t"),
            0x20..=0x7e => out.push(char::from(b)),
            _ => {
                let _ = write!(out, "\\x{b:02x}");
            }
        }
    }
    out.push('"');
    out
}

/// A path as a unit setting takes it (unquoted, `%` as `%%`), or `None` when
/// a unit file cannot hold it (not UTF-8, a control character, or an end that
/// the parser would strip or join).
fn unit_path(path: &Path) -> Option<String> {
    let text = path.to_str()?;
    let ok = !text.chars().any(char::is_control)
        && !text.ends_with(|c: char| c == '\\' || c.is_whitespace());
    ok.then(|| text.replace('%', "%%"))
}

/// The caller's umask, from /proc/self/status (reading it with umask(2)
/// would change it).
fn caller_umask() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Umask:"))
        .map(|m| m.trim().to_string())
}

/// `StandardOutput=` or `StandardError=` for `file`.
fn unit_output(
    key: &str,
    option: &str,
    file: Option<&Path>,
    cli: &Cli,
    r: &Resolved,
    notes: &mut String,
) -> String {
    let Some(file) = file else {
        let _ = writeln!(
            notes,
            "# No --{option}: detach would discard it (/dev/null); here it goes to the journal."
        );
        return format!("{key}=journal\n");
    };
    let abs = absolute(&r.cwd, file);
    if let Some(p) = unit_path(&abs) {
        let how = if cli.append { "append" } else { "truncate" };
        return format!("{key}={how}:{p}\n");
    }
    let _ = writeln!(
        notes,
        "# --{option} {}: a unit file cannot hold this path; the journal is used instead.",
        comment_text([abs.as_os_str().as_bytes()])
    );
    format!("{key}=journal\n")
}

/// The `[Service]` settings other than `ExecStart=` and outputs, and notes
/// for what has no equivalent.
fn service_settings(cli: &Cli, r: &Resolved, notes: &mut String) -> String {
    let mut s = String::new();
    if let Some(spec) = &cli.user {
        let (user, group) = spec
            .split_once(':')
            .map_or((spec.as_str(), None), |(u, g)| (u, Some(g)));
        let _ = writeln!(s, "User={}", user.replace('%', "%%"));
        if let Some(group) = group {
            let _ = writeln!(s, "Group={}", group.replace('%', "%%"));
        }
    }
    let dir = absolute(&r.cwd, cli.chdir.as_deref().unwrap_or(Path::new("/")));
    match unit_path(&dir) {
        Some(p) => {
            let _ = writeln!(s, "WorkingDirectory={p}");
        }
        None => {
            let _ = writeln!(
                notes,
                "# --chdir {}: a unit file cannot hold this path; left out (the directory is /).",
                comment_text([dir.as_os_str().as_bytes()])
            );
        }
    }
    let umask = match cli.umask.as_deref().map(plan::parse_umask) {
        Some(Ok(m)) => Some(format!("{m:04o}")),
        _ => caller_umask().inspect(|_| {
            let _ = writeln!(
                notes,
                "# UMask= is the caller's at --print time: detach keeps the caller's."
            );
        }),
    };
    if let Some(m) = umask {
        let _ = writeln!(s, "UMask={m}");
    }
    for (k, v) in &r.env {
        let mut pair = k.as_bytes().to_vec();
        pair.push(b'=');
        pair.extend_from_slice(v.as_bytes());
        let _ = writeln!(s, "Environment={}", unit_quote(&pair, false));
    }
    s
}

/// Notes for the options a unit has no use for.
fn unit_notes(cli: &Cli, notes: &mut String) {
    notes.push_str("# No PIDFile=: systemd tracks the main process itself");
    if let Some(p) = &cli.pidfile {
        let _ = write!(
            notes,
            " (--pidfile {} is not written)",
            comment_text([p.as_os_str().as_bytes()])
        );
    }
    notes.push_str(".\n");
    if let Some(p) = &cli.lock {
        let _ = writeln!(
            notes,
            "# --lock {}: not needed, systemd runs one instance of a unit (no lock file is written).",
            comment_text([p.as_os_str().as_bytes()])
        );
    }
    if cli.verbose {
        notes.push_str("# --verbose: systemctl status and the journal say what was done.\n");
    }
    if cli.scope {
        notes.push_str(
            "# --scope: not needed, a unit is a cgroup of its own that no logout reaches.\n",
        );
    }
    if cli.linger {
        notes.push_str(
            "# --linger: not translated; for a user unit run loginctl enable-linger USER once.\n",
        );
    }
    if cli.notify.is_some() {
        notes.push_str("# --notify: NotifyAccess=all, as detach accepts READY=1 from the daemon's processes.\n");
    }
}

/// `--journal` or `--syslog` in a unit: both outputs to the journal, with the
/// tag as `SyslogIdentifier=`; `None` without either.
fn unit_logging(cli: &Cli, notes: &mut String) -> Option<String> {
    let (given, syslog) = match (&cli.journal, &cli.syslog) {
        (Some(tag), _) => (tag, false),
        (None, Some(tag)) => (tag, true),
        (None, None) => return None,
    };
    let tag = logging::tag(given, &cli.command).ok()?;
    let tag = tag.to_string_lossy().replace('%', "%%");
    let mut s = format!("StandardOutput=journal\nStandardError=journal\nSyslogIdentifier={tag}\n");
    if syslog {
        notes.push_str(
            "# --syslog: the journal takes the output (StandardOutput=syslog is the journal\n\
             # today), with facility daemon and no <N> prefixes, as detach's relay sends it;\n\
             # journald passes it on to syslog with ForwardToSyslog=yes in journald.conf.\n",
        );
        s.push_str("SyslogFacility=daemon\nSyslogLevelPrefix=no\n");
    }
    Some(s)
}

/// The systemd unit.
fn systemd(cli: &Cli, r: &Resolved) -> String {
    let mut notes = String::new();
    unit_notes(cli, &mut notes);
    let settings = service_settings(cli, r, &mut notes);
    let (stdout, stderr) = match unit_logging(cli, &mut notes) {
        Some(both) => (both, String::new()),
        None => (
            unit_output(
                "StandardOutput",
                "stdout",
                cli.stdout.as_deref(),
                cli,
                r,
                &mut notes,
            ),
            unit_output(
                "StandardError",
                "stderr",
                cli.stderr.as_deref(),
                cli,
                r,
                &mut notes,
            ),
        ),
    };
    let mut exec = format!("@{}", unit_quote(r.program.as_os_str().as_bytes(), true));
    for arg in &cli.command {
        exec.push(' ');
        exec.push_str(&unit_quote(arg.as_bytes(), true));
    }
    let kind = match cli.notify {
        Some(secs) => format!("Type=notify\nNotifyAccess=all\nTimeoutStartSec={secs}\n"),
        None => "Type=exec\n".to_string(),
    };
    format!(
        "# {name}.service, generated by detach --print=systemd from:
#   {line}
# The caller's environment is not carried over: the service gets systemd's
# environment plus Environment= (the --env pairs) only.
{notes}
[Unit]
Description={name}

[Service]
{kind}ExecStart={exec}
ExecReload=/bin/kill -HUP $MAINPID
{settings}{stdout}{stderr}
[Install]
WantedBy=multi-user.target
",
        name = r.name,
        line = comment_text(words(&cli.command)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(sh_quote(b"it's"), b"'it'\\''s'".to_vec());
        assert_eq!(sh_quote(b""), b"''".to_vec());
        assert_eq!(
            unit_quote(b"a \"$b\" 100% \\ \n\xff", true),
            "\"a \\\"$$b\\\" 100%% \\\\ \\n\\xff\""
        );
        assert_eq!(unit_quote(b"$x", false), "\"$x\"");
        assert_eq!(unit_path(Path::new("/a%b c")), Some("/a%%b c".to_string()));
        assert_eq!(unit_path(Path::new("/a\nb")), None);
        assert_eq!(unit_path(Path::new("/a ")), None);
    }

    #[test]
    fn names() {
        for ok in ["a", "hk-print.test", "x@y_1"] {
            assert!(check_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "a b", "a/b", "$x", "é"] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }
}
