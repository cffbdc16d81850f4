//! rnohup's option parsing: GNU `getopt_long` with optstring `"+"` and no short
//! options, as coreutils' nohup does it.
//!
//! - Options stop at the first operand or at `--`; `-` alone is an operand.
//! - GNU's own long options may be abbreviated to any unique prefix (`--he`,
//!   `--v`). rnohup's `--output` may not: it is recognised only spelt in full
//!   (`--output FILE`, `--output=FILE`), so that every other argument vector
//!   (`--o`, `--ou FILE`, `--=x`) gets GNU nohup's answer, byte for byte.
//! - `--help` and `--version` act at once, so `--help --bogus` prints help and
//!   `--bogus --help` is an error, as in GNU.
//! - Errors are a [`UsageError`], whose `Display` is glibc's message (or
//!   nohup's `missing operand`), word for word. The option table comes from
//!   [`crate::cli::command`].
//!
//! The one difference with GNU: `--output` alone says it requires an argument
//! (GNU, which has no such option, calls it unrecognized; both exit 125).

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;

use hupkit_common::Error;
use hupkit_common::exit::Status;

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Print help and exit 0.
    Help,
    /// Print the version and exit 0.
    Version,
    /// Run a command.
    Run {
        /// `--output FILE`, if given (the last one wins).
        output: Option<OsString>,
        /// The command and its arguments (never empty).
        command: Vec<OsString>,
    },
}

/// A command line rnohup refuses, as GNU nohup does: `Display` is the message
/// after the program name, word for word, and the caller adds `Try ... --help`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UsageError {
    /// A short option (`-x`): nohup has none. The option letter (its byte,
    /// lossy UTF-8).
    #[error("invalid option -- '{0}'")]
    InvalidOption(String),
    /// A long option that names none of the table (the argument, lossy UTF-8).
    #[error("unrecognized option '{0}'")]
    Unrecognized(String),
    /// A prefix of several options (`--=x`): the argument, and the long names.
    #[error("option '{arg}' is ambiguous; possibilities:{}", possibilities(names))]
    Ambiguous {
        /// The argument as given (lossy UTF-8).
        arg: String,
        /// The long options it could mean, without `--`.
        names: Vec<String>,
    },
    /// `--help=x`: the long name.
    #[error("option '--{0}' doesn't allow an argument")]
    NoArgumentAllowed(String),
    /// `--output` last on the line: the long name.
    #[error("option '--{0}' requires an argument")]
    ArgumentRequired(String),
    /// No command after the options.
    #[error("missing operand")]
    MissingOperand,
}

impl UsageError {
    /// The suite's usage error, with rnohup's failure status (125, or 127 under
    /// `POSIXLY_CORRECT`).
    #[must_use]
    pub fn into_error(self, status: Status) -> Error {
        Error::usage(self.to_string(), status)
    }
}

/// ` '--a' '--b'`, as glibc lists the possibilities.
fn possibilities(names: &[String]) -> String {
    names.iter().fold(String::new(), |mut out, n| {
        out.push_str(" '--");
        out.push_str(n);
        out.push('\'');
        out
    })
}

/// GNU nohup's long options: the only ones that may be abbreviated.
const GNU_OPTIONS: &[&str] = &["help", "version"];

/// One long option of the table.
struct LongOpt {
    name: String,
    takes_value: bool,
    /// Whether a prefix names it (GNU's options), or only the full name (ours).
    abbreviable: bool,
}

fn table_from_cli() -> Vec<LongOpt> {
    crate::cli::command("rnohup")
        .get_arguments()
        .filter_map(|a| {
            a.get_long().map(|name| LongOpt {
                name: name.to_string(),
                takes_value: a.get_action().takes_values(),
                abbreviable: GNU_OPTIONS.contains(&name),
            })
        })
        .collect()
}

/// Parses the arguments after argv\[0\].
pub fn parse(args: &[OsString]) -> Result<Action, UsageError> {
    // Built only when a long option is seen: `rnohup CMD` never pays for clap.
    let mut table: Option<Vec<LongOpt>> = None;
    let mut output = None;
    let mut i = 0;
    while let Some(arg) = args.get(i) {
        let bytes = arg.as_bytes();
        if bytes == b"--" {
            i += 1;
            break;
        }
        if let Some(body) = bytes.strip_prefix(b"--") {
            let (name, value) = match body.iter().position(|&b| b == b'=') {
                Some(eq) => (&body[..eq], Some(&body[eq + 1..])),
                None => (body, None),
            };
            let opt = find(table.get_or_insert_with(table_from_cli), name, arg)?;
            if !opt.takes_value {
                if value.is_some() {
                    return Err(UsageError::NoArgumentAllowed(opt.name.clone()));
                }
                return Ok(if opt.name == "help" {
                    Action::Help
                } else {
                    Action::Version
                });
            }
            let value = if let Some(v) = value {
                OsStr::from_bytes(v).to_os_string()
            } else {
                i += 1;
                args.get(i)
                    .cloned()
                    .ok_or_else(|| UsageError::ArgumentRequired(opt.name.clone()))?
            };
            output = Some(value);
            i += 1;
            continue;
        }
        if bytes.len() > 1 && bytes[0] == b'-' {
            let letter = String::from_utf8_lossy(&bytes[1..2]).into_owned();
            return Err(UsageError::InvalidOption(letter));
        }
        break;
    }
    let command = args.get(i..).unwrap_or_default().to_vec();
    if command.is_empty() {
        return Err(UsageError::MissingOperand);
    }
    Ok(Action::Run { output, command })
}

/// Finds the option `name` abbreviates: an exact match, else the only prefix
/// match among the abbreviable options.
fn find<'t>(table: &'t [LongOpt], name: &[u8], arg: &OsStr) -> Result<&'t LongOpt, UsageError> {
    if let Some(exact) = table.iter().find(|o| o.name.as_bytes() == name) {
        return Ok(exact);
    }
    let matches: Vec<&LongOpt> = table
        .iter()
        .filter(|o| o.abbreviable && o.name.as_bytes().starts_with(name))
        .collect();
    let arg = String::from_utf8_lossy(arg.as_bytes()).into_owned();
    match matches.as_slice() {
        [one] => Ok(one),
        [] => Err(UsageError::Unrecognized(arg)),
        many => Err(UsageError::Ambiguous {
            arg,
            names: many.iter().map(|o| o.name.clone()).collect(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The parse, with the error as the message the user reads.
    fn p(args: &[&str]) -> Result<Action, String> {
        let args: Vec<OsString> = args.iter().map(OsString::from).collect();
        parse(&args).map_err(|e| e.to_string())
    }

    #[allow(clippy::unnecessary_wraps)] // compared with parse()'s result
    fn run(output: Option<&str>, command: &[&str]) -> Result<Action, String> {
        Ok(Action::Run {
            output: output.map(OsString::from),
            command: command.iter().map(OsString::from).collect(),
        })
    }

    #[test]
    fn help_and_version_with_abbreviations() {
        for a in ["--help", "--he", "--h"] {
            assert_eq!(p(&[a]), Ok(Action::Help));
        }
        for a in ["--version", "--vers", "--v"] {
            assert_eq!(p(&[a]), Ok(Action::Version));
        }
        assert_eq!(p(&["--help", "echo", "hi"]), Ok(Action::Help));
        assert_eq!(p(&["--help", "--bogus"]), Ok(Action::Help));
    }

    #[test]
    fn operands_stop_option_parsing() {
        assert_eq!(p(&["echo", "--help"]), run(None, &["echo", "--help"]));
        assert_eq!(p(&["--", "--help"]), run(None, &["--help"]));
        assert_eq!(p(&["-"]), run(None, &["-"]));
        assert_eq!(p(&[""]), run(None, &[""]));
        assert_eq!(p(&[]), Err("missing operand".into()));
        assert_eq!(p(&["--"]), Err("missing operand".into()));
    }

    #[test]
    fn output_option() {
        assert_eq!(p(&["--output", "f", "true"]), run(Some("f"), &["true"]));
        assert_eq!(p(&["--output=f", "true"]), run(Some("f"), &["true"]));
        assert_eq!(
            p(&["--output=f", "--output", "g", "true"]),
            run(Some("g"), &["true"])
        );
        assert_eq!(p(&["--output=", "true"]), run(Some(""), &["true"]));
        assert_eq!(p(&["--output=f"]), Err("missing operand".into()));
        assert_eq!(
            p(&["--output"]),
            Err("option '--output' requires an argument".into())
        );
    }

    #[test]
    fn output_is_never_abbreviated() {
        for a in [
            "--o",
            "--ou",
            "--out",
            "--outpu",
            "--o=f",
            "--outp=f",
            "--outputs",
        ] {
            assert_eq!(
                p(&[a, "f", "true"]),
                Err(format!("unrecognized option '{a}'")),
                "{a}"
            );
        }
    }

    #[test]
    fn glibc_messages() {
        assert_eq!(p(&["-x"]), Err("invalid option -- 'x'".into()));
        assert_eq!(p(&["-h"]), Err("invalid option -- 'h'".into()));
        assert_eq!(p(&["-/"]), Err("invalid option -- '/'".into()));
        assert_eq!(p(&["--foo"]), Err("unrecognized option '--foo'".into()));
        assert_eq!(p(&["--foo=1"]), Err("unrecognized option '--foo=1'".into()));
        assert_eq!(
            p(&["--help=1"]),
            Err("option '--help' doesn't allow an argument".into())
        );
        assert_eq!(
            p(&["--=x"]),
            Err("option '--=x' is ambiguous; possibilities: '--help' '--version'".into())
        );
        assert_eq!(
            p(&["--bogus", "--help"]),
            Err("unrecognized option '--bogus'".into())
        );
    }

    #[test]
    fn errors_are_typed() {
        let parse = |a: &[&str]| parse(&a.iter().map(OsString::from).collect::<Vec<_>>());
        assert_eq!(parse(&["-x"]), Err(UsageError::InvalidOption("x".into())));
        assert_eq!(
            parse(&["--=x"]),
            Err(UsageError::Ambiguous {
                arg: "--=x".into(),
                names: vec!["help".into(), "version".into()],
            })
        );
        assert_eq!(parse(&[]), Err(UsageError::MissingOperand));
        let err = UsageError::MissingOperand.into_error(hupkit_common::exit::CANCELED);
        assert!(err.is_usage());
        assert_eq!(err.status(), hupkit_common::exit::CANCELED);
    }
}
