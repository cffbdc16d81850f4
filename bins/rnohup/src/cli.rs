//! rnohup's command-line definition: the one source of `--help`, the man page,
//! the completions, and the option table the GNU-style parser reads.

use clap::{Arg, ArgAction, Command, ValueHint, value_parser};

/// The exit statuses, as `--help` and the man page list them.
pub const EXIT_STATUS: &[(&str, &str)] = &[
    (
        "125",
        "if rnohup itself fails (127 if POSIXLY_CORRECT is set, as POSIX asks)",
    ),
    ("126", "if COMMAND is found but cannot be invoked"),
    ("127", "if COMMAND cannot be found"),
    ("-", "the exit status of COMMAND otherwise"),
];

const DESCRIPTION: &str = "\
If standard input is a terminal, redirect it from an unreadable file.
If standard output is a terminal, append output to 'nohup.out' if possible,
'$HOME/nohup.out' otherwise.
If standard error is a terminal, redirect it to standard output.
To save output to FILE, use 'rnohup COMMAND > FILE', or --output FILE.

With --output FILE, standard output is appended to FILE whether or not it is a
terminal (and standard error too, if it is a terminal); FILE is created with
mode 0600, and there is no $HOME fallback.

rnohup behaves as GNU coreutils nohup 9.1 does, message for message. It does
not put COMMAND in the background: add '&' yourself.";

/// Extra man page sections, after OPTIONS: (title, text).
pub const MAN_SECTIONS: &[(&str, &str)] = &[
    (
        "ENVIRONMENT",
        "HOME: where nohup.out goes when the current directory's cannot be opened.\n\
         POSIXLY_CORRECT: when set, rnohup's own failures exit with 127 instead of 125.\n\
         PATH: searched for COMMAND, as execvp(3) does.",
    ),
    (
        "FILES",
        "nohup.out, $HOME/nohup.out: opened for appending, created with mode 0600 \
         whatever the umask (COMMAND still sees the original umask).\n\
         PREFIX/libexec/hupkit/hupkit-rnohup (else hupkit-rnohup beside rnohup): \
         rnohup's full implementation. rnohup itself is a small program without \
         the C library that does the common case alone (COMMAND first, no terminal \
         on standard input, output or error) and runs hupkit-rnohup, with the same \
         arguments, for everything else; if it is missing (or writable by a user \
         other than its owner), that is one message and exit status 125 (127 if \
         POSIXLY_CORRECT is set).",
    ),
    (
        "JOB RECORD",
        "Before it runs COMMAND, rnohup writes a job record to \
         $XDG_STATE_HOME/hupkit/jobs/ (default ~/.local/state/hupkit/jobs/): one file per \
         job, PID-STARTTIME.job, mode 0600 in a 0700 directory, holding the job's identity \
         (PID, start time, boot), when it started, the command line, directory, terminal \
         and output; rjobs --records lists them. The record changes nothing COMMAND sees, \
         and one that cannot be written is skipped silently. HUPKIT_NO_RECORD=1 in the \
         environment turns it off.",
    ),
    (
        "COMPATIBILITY",
        "With the same arguments, rnohup does what GNU coreutils nohup 9.1 does: the same \
         files, modes, messages (with argv[0] as the prefix) and exit statuses, for every \
         combination of terminal, file, pipe, /dev/null, /dev/full and closed standard \
         streams; the test suite checks this against /usr/bin/nohup.\n\
         Differences: --output is rnohup's own, recognised only spelt in full \
         (--output FILE, --output=FILE; alone, it requires an argument): its prefixes \
         such as --o or --out are unrecognized options, as in GNU, while GNU's \
         --help and --version may be abbreviated (--h, --v); the --help and --version \
         texts are rnohup's.",
    ),
    (
        "SEE ALSO",
        "nohup(1), detach(1), disown(1), rjobs(1), signal(7)",
    ),
];

/// The usage lines, with `prog` as the program name (GNU prints argv\[0\]).
fn usage(prog: &str) -> String {
    format!(
        "{prog} COMMAND [ARG]...\n  or:  {prog} --output FILE COMMAND [ARG]...\n  or:  {prog} OPTION"
    )
}

fn after_help() -> String {
    let mut text = String::from(DESCRIPTION);
    text.push_str("\n\nExit status:\n");
    let lines: Vec<String> = EXIT_STATUS
        .iter()
        .map(|(code, what)| format!("  {code:<4} {what}\n"))
        .collect();
    text.push_str(&lines.concat());
    text
}

/// The command-line definition, with `prog` in the usage lines.
#[must_use]
pub fn command(prog: &str) -> Command {
    Command::new("rnohup")
        .version(env!("CARGO_PKG_VERSION"))
        .about("Run COMMAND, ignoring hangup signals.")
        .long_about(format!(
            "Run COMMAND, ignoring hangup signals.\n\n{DESCRIPTION}"
        ))
        .override_usage(usage(prog))
        .help_template("Usage: {usage}\n{about}\n\n{options}{after-help}")
        .after_help(after_help())
        .disable_help_flag(true)
        .disable_version_flag(true)
        .arg(
            Arg::new("help")
                .long("help")
                .action(ArgAction::Help)
                .help("display this help and exit"),
        )
        .arg(
            Arg::new("version")
                .long("version")
                .action(ArgAction::Version)
                .help("output version information and exit"),
        )
        .arg(
            Arg::new("output")
                .long("output")
                .value_name("FILE")
                .value_parser(value_parser!(std::path::PathBuf))
                .value_hint(ValueHint::FilePath)
                .help("append output to FILE instead of 'nohup.out'"),
        )
        .arg(
            Arg::new("command")
                .value_name("COMMAND")
                .num_args(1..)
                .trailing_var_arg(true)
                .allow_hyphen_values(true)
                .value_parser(value_parser!(std::ffi::OsString))
                .value_hint(ValueHint::CommandWithArguments)
                .help("the command to run, and its arguments"),
        )
}

/// The `--help` text, with `prog` in the usage lines.
#[must_use]
pub fn help_text(prog: &str) -> String {
    command(prog).render_help().to_string()
}

/// The `--version` text.
#[must_use]
pub fn version_text() -> String {
    format!(
        "rnohup (hupkit) {}\nLicense: MIT.\n",
        env!("CARGO_PKG_VERSION")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn definition_is_consistent() {
        command("rnohup").debug_assert();
    }

    #[test]
    fn help_names_every_option_and_status() {
        let help = help_text("rnohup");
        for long in ["--help", "--version", "--output"] {
            assert!(help.contains(long), "{long} missing from --help");
        }
        for (code, _) in EXIT_STATUS {
            assert!(
                help.contains(&format!("  {code} ")),
                "status {code} missing"
            );
        }
        assert!(help.starts_with("Usage: rnohup COMMAND [ARG]...\n"));
    }
}
