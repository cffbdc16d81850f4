//! Quoting of operands in messages, exactly as coreutils' `quoteaf` does it.
//!
//! `quoteaf` is gnulib's `shell_escape_always_quoting_style`: the result is always
//! quoted so that a shell reads it back as the same bytes.
//!
//! - Plain text goes in single quotes: `'nohup.out'`, `'/tmp/h 3/nohup.out'`.
//! - Control characters and (in the C locale) bytes that are not printable leave the
//!   single quotes for a `$'...'` escape: `'a'$'\t''b'`, `''$'\303\251'`.
//! - A single quote inside is written `'\''`, unless every character of the string
//!   means the same inside C and shell double quotes, in which case the whole string
//!   goes in double quotes instead: `"/tmp/it's/nohup.out"`.
//!
//! Which characters are printable depends on the locale's character set, as in GNU:
//! in a UTF-8 locale (from `LC_ALL`, `LC_CTYPE` or `LANG`) printable non-ASCII
//! characters are kept; in any other locale each non-ASCII byte is escaped in octal.
//!
//! Command lines and process names are another matter: they come from other
//! processes (another user's, under `rjobs -A`), and printed raw their escape
//! sequences, carriage returns and newlines would drive the reader's terminal.
//! [`command_line`] and [`word`] print them the way a shell reads them back:
//! plain words bare (`sleep 300`), anything else quoted as above, so that no
//! control byte and no invalid UTF-8 reaches the terminal (`sh -c 'while :; do
//! date; done'`, `$'\033''[31mred'$'\r\n'`). Each word is quoted on its own; the
//! line can be pasted back into a shell. Characters that print nothing but
//! change what is seen (a right-to-left override, which would reorder the rest
//! of the line on the screen, zero-width characters, line separators) are
//! escaped there too, even in a UTF-8 locale.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::sync::OnceLock;

/// Quotes `s` like coreutils' `quoteaf`, for the current locale's character set.
#[must_use]
pub fn quote(s: &OsStr) -> String {
    quote_bytes(s.as_bytes(), locale_is_utf8())
}

/// Whether the locale the environment selects (as `setlocale(LC_ALL, "")` would) uses UTF-8.
#[must_use]
pub fn locale_is_utf8() -> bool {
    static UTF8: OnceLock<bool> = OnceLock::new();
    *UTF8.get_or_init(|| {
        let name = ["LC_ALL", "LC_CTYPE", "LANG"]
            .iter()
            .filter_map(std::env::var_os)
            .find(|v| !v.is_empty());
        name.is_some_and(|v| {
            let v = v.to_string_lossy().to_ascii_lowercase();
            v.contains("utf-8") || v.contains("utf8")
        })
    })
}

/// One unit of the input: an ASCII byte, a printable multibyte character, or a
/// byte that must be escaped.
enum Unit<'a> {
    Byte(u8),
    Char(&'a str),
    Unprintable(&'a [u8]),
}

/// Whether `c` prints nothing yet changes what is seen around it: a format
/// character (Unicode category Cf: bidi marks, overrides and isolates,
/// zero-width characters, tags) or a line or paragraph separator (Zl, Zp).
fn invisible(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{0600}'..='\u{0605}'
            | '\u{061C}'
            | '\u{06DD}'
            | '\u{070F}'
            | '\u{0890}'..='\u{0891}'
            | '\u{08E2}'
            | '\u{180E}'
            | '\u{200B}'..='\u{200F}'
            | '\u{2028}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{206F}'
            | '\u{FEFF}'
            | '\u{FFF9}'..='\u{FFFB}'
            | '\u{110BD}'
            | '\u{110CD}'
            | '\u{13430}'..='\u{1343F}'
            | '\u{1BCA0}'..='\u{1BCA3}'
            | '\u{1D173}'..='\u{1D17A}'
            | '\u{E0001}'
            | '\u{E0020}'..='\u{E007F}'
    )
}

/// `strict`: [`invisible`] characters are escaped too (command lines, which
/// come from other users; file names in messages follow GNU, which prints them).
fn units(bytes: &[u8], utf8: bool, strict: bool) -> Vec<Unit<'_>> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b.is_ascii() {
            out.push(Unit::Byte(b));
            i += 1;
            continue;
        }
        if utf8 {
            let len = match b {
                0xC2..=0xDF => 2,
                0xE0..=0xEF => 3,
                0xF0..=0xF4 => 4,
                _ => 0,
            };
            if len > 0 && i + len <= bytes.len() {
                if let Ok(s) = std::str::from_utf8(&bytes[i..i + len]) {
                    let printable = s
                        .chars()
                        .all(|c| !(c.is_control() || (strict && invisible(c))));
                    out.push(if printable {
                        Unit::Char(s)
                    } else {
                        Unit::Unprintable(&bytes[i..i + len])
                    });
                    i += len;
                    continue;
                }
            }
        }
        out.push(Unit::Unprintable(&bytes[i..=i]));
        i += 1;
    }
    out
}

/// Whether an ASCII byte means the same inside C and shell double quotes (gnulib's
/// `c_and_shell_quote_compat`); `first` is whether it starts the string.
fn compat(b: u8, first: bool, len: usize) -> bool {
    match b {
        b'{' | b'}' => len == 1,
        b'#' | b'~' => first,
        // '@' is not special to gnulib; it falls to "printable", which is compatible.
        b' ' | b'\'' | b'%' | b'+' | b',' | b'-' | b'.' | b'/' | b':' | b']' | b'_' | b'@' => true,
        _ => b.is_ascii_alphanumeric(),
    }
}

/// The escape letter for a control character, where C has one.
fn c_escape(b: u8) -> Option<u8> {
    match b {
        0x07 => Some(b'a'),
        0x08 => Some(b'b'),
        0x0C => Some(b'f'),
        b'\n' => Some(b'n'),
        b'\r' => Some(b'r'),
        b'\t' => Some(b't'),
        0x0B => Some(b'v'),
        _ => None,
    }
}

/// Quotes raw bytes; `utf8` says whether multibyte characters may be printed as they are.
#[must_use]
pub fn quote_bytes(bytes: &[u8], utf8: bool) -> String {
    quote_units(bytes, utf8, false)
}

/// [`quote_bytes`]; `strict` escapes [`invisible`] characters as well.
fn quote_units(bytes: &[u8], utf8: bool, strict: bool) -> String {
    let mut out = String::with_capacity(bytes.len() + 2);
    push_quoted(&mut out, bytes, utf8, strict);
    out
}

/// Appends `bytes` to `out` as [`quote_units`] quotes them.
///
/// Printable ASCII (what most quoted arguments are: `sh -c 'while :; do
/// date; done'`) is quoted in one pass over the bytes, without the units;
/// the result is the same as the general rules give for it: double quotes
/// when it holds a `'` and nothing else that differs between C and the shell,
/// else single quotes with each `'` written `'\''`.
fn push_quoted(out: &mut String, bytes: &[u8], utf8: bool, strict: bool) {
    if let Some(text) = printable_ascii(bytes) {
        let compatible = || {
            bytes
                .iter()
                .enumerate()
                .all(|(i, &b)| compat(b, i == 0, bytes.len()))
        };
        if bytes.contains(&b'\'') && compatible() {
            out.push('"');
            out.push_str(text);
            out.push('"');
        } else {
            out.push('\'');
            for (i, part) in text.split('\'').enumerate() {
                if i > 0 {
                    out.push_str("'\\''");
                }
                out.push_str(part);
            }
            out.push('\'');
        }
        return;
    }
    push_quoted_units(out, bytes, utf8, strict);
}

/// `bytes` as text when every byte is printable ASCII (space to `~`).
fn printable_ascii(bytes: &[u8]) -> Option<&str> {
    if bytes.iter().all(|b| (b' '..=b'~').contains(b)) {
        std::str::from_utf8(bytes).ok()
    } else {
        None
    }
}

/// [`push_quoted`] by the general rules, a unit at a time.
fn push_quoted_units(out: &mut String, bytes: &[u8], utf8: bool, strict: bool) {
    let units = units(bytes, utf8, strict);
    let mut has_single_quote = false;
    let mut all_compat = true;
    for (i, u) in units.iter().enumerate() {
        match u {
            Unit::Byte(b'\'') => has_single_quote = true,
            Unit::Byte(b) if !compat(*b, i == 0, bytes.len()) => all_compat = false,
            Unit::Unprintable(_) => all_compat = false,
            _ => {}
        }
    }
    if has_single_quote && all_compat {
        // Only letters, digits, safe punctuation, spaces and quotes: C double quotes.
        out.push('"');
        for u in &units {
            match u {
                Unit::Byte(b) => out.push(char::from(*b)),
                Unit::Char(s) => out.push_str(s),
                Unit::Unprintable(_) => {}
            }
        }
        out.push('"');
        return;
    }

    out.push('\'');
    // Inside a `'$'...` escape run that still needs closing with `''`.
    let mut in_escape = false;
    let start_escape = |out: &mut String, in_escape: &mut bool| {
        if !*in_escape {
            out.push_str("'$'");
            *in_escape = true;
        }
        out.push('\\');
    };
    for u in &units {
        match u {
            Unit::Byte(b) => {
                if let Some(e) = c_escape(*b) {
                    start_escape(out, &mut in_escape);
                    out.push(char::from(e));
                    continue;
                }
                if *b == b'\'' {
                    // `'\''` closes any escape run by itself.
                    out.push_str("'\\''");
                    in_escape = false;
                    continue;
                }
                if b.is_ascii_graphic() || *b == b' ' {
                    if in_escape {
                        out.push_str("''");
                        in_escape = false;
                    }
                    out.push(char::from(*b));
                } else {
                    start_escape(out, &mut in_escape);
                    push_octal(out, *b);
                }
            }
            Unit::Char(s) => {
                if in_escape {
                    out.push_str("''");
                    in_escape = false;
                }
                out.push_str(s);
            }
            Unit::Unprintable(raw) => {
                for b in *raw {
                    start_escape(out, &mut in_escape);
                    push_octal(out, *b);
                }
            }
        }
    }
    out.push('\'');
}

/// Whether a byte means itself anywhere in a shell word (no quoting, expansion,
/// globbing or word splitting applies to it).
fn bare(b: u8) -> bool {
    matches!(b, b'0'..=b'9' | b'a'..=b'z' | b'A'..=b'Z' | b'%' | b'+' | b',' | b'-' | b'.' | b'/' | b':' | b'=' | b'@' | b'_')
}

/// Quotes one word of a command line (or a process name) for a POSIX shell:
/// bare when every byte is plain, else as [`quote`] does, for the current
/// locale's character set, except that [`invisible`] characters (a
/// right-to-left override, a zero-width space) are escaped even in a UTF-8
/// locale.
#[must_use]
pub fn word(s: &[u8]) -> String {
    word_bytes(s, locale_is_utf8())
}

/// [`word`], with the character set given: `utf8` says whether printable
/// multibyte characters may be shown as they are.
#[must_use]
pub fn word_bytes(s: &[u8], utf8: bool) -> String {
    let mut out = String::with_capacity(s.len());
    push_word(&mut out, s, utf8);
    out
}

/// Appends [`word_bytes`] of `s` to `out`.
fn push_word(out: &mut String, s: &[u8], utf8: bool) {
    if !s.is_empty() && s.iter().copied().all(bare) {
        // Bare bytes are ASCII: the check cannot fail.
        out.push_str(std::str::from_utf8(s).unwrap_or_default());
        return;
    }
    let start = out.len();
    push_quoted(out, s, utf8, true);
    // `''$'\t'`: the empty quotes before a leading escape add nothing to a word.
    if out[start..].starts_with("''$'") {
        out.replace_range(start..start + 2, "");
    }
}

/// A whole command line for text output: each argument quoted by [`word`],
/// joined by spaces. The first word is also quoted when a shell would not run
/// it as a command (`A=b` is an assignment, `%1` a job).
#[must_use]
pub fn command_line<I, S>(argv: I) -> String
where
    I: IntoIterator<Item = S>,
    S: AsRef<[u8]>,
{
    command_line_bytes(argv, locale_is_utf8())
}

/// [`command_line`], with the character set given.
#[must_use]
pub fn command_line_bytes<I, S>(argv: I, utf8: bool) -> String
where
    I: IntoIterator<Item = S>,
    S: AsRef<[u8]>,
{
    let mut out = String::new();
    push_command_line(&mut out, argv, utf8);
    out
}

/// Appends [`command_line_bytes`] of `argv` to `out`: what a view that
/// writes many command lines into one buffer calls, so that no line needs a
/// `String` of its own.
pub fn push_command_line<I, S>(out: &mut String, argv: I, utf8: bool)
where
    I: IntoIterator<Item = S>,
    S: AsRef<[u8]>,
{
    for (i, arg) in argv.into_iter().enumerate() {
        let arg = arg.as_ref();
        if i > 0 {
            out.push(' ');
            push_word(out, arg, utf8);
        } else if arg.contains(&b'=') || arg.first() == Some(&b'%') {
            push_quoted(out, arg, utf8, true);
        } else {
            push_word(out, arg, utf8);
        }
    }
}

fn push_octal(out: &mut String, b: u8) {
    out.push(char::from(b'0' + (b >> 6)));
    out.push(char::from(b'0' + ((b >> 3) & 7)));
    out.push(char::from(b'0' + (b & 7)));
}

#[cfg(test)]
mod tests {
    use super::{command_line_bytes, quote_bytes, word_bytes};

    fn q(s: &[u8]) -> String {
        quote_bytes(s, false)
    }

    #[test]
    fn plain_and_spaces() {
        assert_eq!(q(b"nohup.out"), "'nohup.out'");
        assert_eq!(q(b"/tmp/h 3/nohup.out"), "'/tmp/h 3/nohup.out'");
        assert_eq!(q(b""), "''");
        assert_eq!(q(b"--help"), "'--help'");
    }

    #[test]
    fn single_quotes() {
        assert_eq!(q(b"/tmp/it's/nohup.out"), "\"/tmp/it's/nohup.out\"");
        assert_eq!(q(b"bad'name"), "\"bad'name\"");
        assert_eq!(q(b"a'b$c"), "'a'\\''b$c'");
        assert_eq!(q(b"a'b\\c"), "'a'\\''b\\c'");
    }

    #[test]
    fn control_characters() {
        assert_eq!(q(b"a\tb"), "'a'$'\\t''b'");
        assert_eq!(q(b"\t"), "''$'\\t'");
        assert_eq!(q(b"a\x01"), "'a'$'\\001'");
        assert_eq!(q(b"a\tb'c"), "'a'$'\\t''b'\\''c'");
    }

    #[test]
    fn non_ascii_depends_on_locale() {
        assert_eq!(quote_bytes("é".as_bytes(), false), "''$'\\303\\251'");
        assert_eq!(quote_bytes("é".as_bytes(), true), "'é'");
        assert_eq!(quote_bytes(b"\xff", true), "''$'\\377'");
    }

    #[test]
    fn words_are_quoted_only_when_needed() {
        let w = |s: &[u8]| word_bytes(s, false);
        assert_eq!(w(b"sleep"), "sleep");
        assert_eq!(w(b"/usr/bin/python3"), "/usr/bin/python3");
        assert_eq!(w(b"--output=x.log"), "--output=x.log");
        assert_eq!(w(b""), "''");
        assert_eq!(w(b"a b"), "'a b'");
        assert_eq!(w(b"$HOME"), "'$HOME'");
        assert_eq!(w(b"*"), "'*'");
        assert_eq!(w(b"~x"), "'~x'");
        assert_eq!(w(b"it's"), "\"it's\"");
        assert_eq!(w(b"\t"), "$'\\t'");
        assert_eq!(w(b"\x1b[31mred\r\n"), "$'\\033''[31mred'$'\\r\\n'");
        assert_eq!(w(b"\xff"), "$'\\377'");
        assert_eq!(word_bytes("é".as_bytes(), true), "'é'");
    }

    #[test]
    fn command_lines() {
        let c = |v: &[&[u8]]| command_line_bytes(v, false);
        assert_eq!(c(&[b"sleep", b"300"]), "sleep 300");
        assert_eq!(
            c(&[b"sh", b"-c", b"while :; do date; done"]),
            "sh -c 'while :; do date; done'"
        );
        assert_eq!(c(&[b"A=b", b"x=y"]), "'A=b' x=y");
        assert_eq!(c(&[b"%1"]), "'%1'");
        assert_eq!(c(&[]), "");
    }

    /// Characters that print nothing yet change what the reader sees (bidi
    /// overrides and isolates, zero-width characters, line and paragraph
    /// separators) are escaped in command lines, even in a UTF-8 locale: a
    /// right-to-left override in another user's argument would otherwise
    /// reorder the rest of root's `rjobs -A` line on the screen. Messages
    /// about file names keep GNU's `quoteaf` rules.
    #[test]
    fn invisible_characters_in_command_lines() {
        for (arg, want) in [
            ("\u{202E}txt.exe", "$'\\342\\200\\256''txt.exe'"),
            ("a\u{2028}b", "'a'$'\\342\\200\\250''b'"),
            ("\u{200B}", "$'\\342\\200\\213'"),
            ("\u{FEFF}x", "$'\\357\\273\\277''x'"),
            ("\u{061C}\u{2066}", "$'\\330\\234\\342\\201\\246'"),
            ("\u{E0041}", "$'\\363\\240\\201\\201'"),
            ("é", "'é'"),
        ] {
            assert_eq!(word_bytes(arg.as_bytes(), true), want, "{arg:?}");
        }
        assert_eq!(
            command_line_bytes(["sleep", "\u{202E}1"], true),
            "sleep $'\\342\\200\\256''1'"
        );
        assert_eq!(quote_bytes("\u{202E}".as_bytes(), true), "'\u{202E}'");
    }

    /// The quick path for printable ASCII gives what the general rules give:
    /// every printable character alone, first and after a letter, beside a
    /// quote, and a few whole arguments.
    #[test]
    fn printable_ascii_path_agrees_with_the_units() {
        use super::{push_quoted, push_quoted_units};
        let mut inputs: Vec<Vec<u8>> = vec![
            b"".to_vec(),
            b"it's".to_vec(),
            b"'".to_vec(),
            b"''".to_vec(),
            b"a'b$c".to_vec(),
            b"#it's".to_vec(),
            b"~it's".to_vec(),
            b"{'".to_vec(),
            b"while :; do date; done".to_vec(),
            b"x=it's y".to_vec(),
        ];
        for b in b' '..=b'~' {
            inputs.extend([vec![b], vec![b, b'\''], vec![b'a', b], vec![b'\'', b, b'a']]);
        }
        for input in &inputs {
            for (utf8, strict) in [(false, false), (true, true)] {
                let (mut quick, mut general) = (String::new(), String::new());
                push_quoted(&mut quick, input, utf8, strict);
                push_quoted_units(&mut general, input, utf8, strict);
                assert_eq!(quick, general, "{:?}", String::from_utf8_lossy(input));
            }
        }
    }

    /// Every quoted line, read back by a shell, gives the same words, and holds
    /// no control byte. (`$'...'` is POSIX.1-2024; dash reads it from 0.5.13 on,
    /// so the shells tried are bash and, where installed, zsh.)
    #[test]
    fn command_lines_read_back_by_shells() {
        let argv: Vec<&[u8]> = vec![
            b"printf",
            b"%s\\0",
            b"\x1b[31mred\r\n",
            b"\xff",
            b"\xc3\xa9",
            b"it's",
            b"a'b$c\\d",
            b"",
            b"tab\there",
            b"\x7f\x01\x9b",
            b"-",
            b"x=y",
            b"!",
            b"{a,b}",
            b"#c",
            "\u{202E}\u{2028}\u{200B}\u{FEFF}".as_bytes(),
        ];
        for utf8 in [false, true] {
            let line = command_line_bytes(&argv, utf8);
            assert!(
                !line.bytes().any(|b| b < 0x20 || b == 0x7f),
                "control byte in {line:?}"
            );
            for shell in ["bash", "zsh"] {
                let Ok(out) = std::process::Command::new(shell)
                    .args(["-c", &line])
                    .env_clear()
                    .output()
                else {
                    continue;
                };
                let mut want = Vec::new();
                for a in &argv[2..] {
                    want.extend_from_slice(a);
                    want.push(0);
                }
                assert_eq!(out.stdout, want, "{shell} ({utf8}): {line}");
            }
        }
    }
}
