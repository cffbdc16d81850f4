//! Text built without `core::fmt`: decimal integers and left-aligned
//! columns, for what is written once per process (`rjobs -A`'s rows, the
//! `/proc/PID/FILE` paths of a scan).
//!
//! `core::fmt` goes through a `Formatter`, a trait object and padding logic
//! for every field; at thousands of rows it was about a sixth of `rjobs -A`'s
//! own instructions (docs/benchmarks.md, "Floors"). These helpers write the
//! same bytes as `{}` and `{:<N}` do for the types they take: integers in
//! decimal with a `-` when negative, padding counted in characters, as
//! `Formatter::pad` counts them.

/// The decimal digits of `n`, in `buf`: returns the slice that holds them.
#[must_use]
pub fn decimal(buf: &mut [u8; 20], mut n: u64) -> &[u8] {
    let mut at = buf.len();
    loop {
        at -= 1;
        // n % 10 < 10: the cast cannot truncate.
        #[allow(clippy::cast_possible_truncation)]
        let digit = (n % 10) as u8;
        buf[at] = b'0' + digit;
        n /= 10;
        if n == 0 {
            return &buf[at..];
        }
    }
}

/// Appends `n` in decimal, as `{n}` would.
pub fn push_int(out: &mut String, n: i64) {
    if n < 0 {
        out.push('-');
    }
    push_uint(out, n.unsigned_abs());
}

/// Appends `n` in decimal, as `{n}` would.
pub fn push_uint(out: &mut String, n: u64) {
    let mut buf = [0u8; 20];
    // Digits are ASCII: the check cannot fail.
    out.push_str(std::str::from_utf8(decimal(&mut buf, n)).unwrap_or_default());
}

/// Spaces to pad with, a slice at a time.
const SPACES: &str = "                                ";

/// Appends `n` spaces.
fn push_spaces(out: &mut String, mut n: usize) {
    while n > 0 {
        let now = n.min(SPACES.len());
        out.push_str(&SPACES[..now]);
        n -= now;
    }
}

/// Appends `n` padded with spaces to `width` characters, as `{n:<width}` would.
pub fn push_int_left(out: &mut String, n: i64, width: usize) {
    let start = out.len();
    push_int(out, n);
    pad_to(out, start, width);
}

/// Appends `s` padded with spaces to `width` characters, as `{s:<width}` would.
pub fn push_left(out: &mut String, s: &str, width: usize) {
    out.push_str(s);
    let chars = if s.is_ascii() {
        s.len()
    } else {
        s.chars().count()
    };
    push_spaces(out, width.saturating_sub(chars));
}

/// Pads the ASCII text `out[start..]` with spaces to `width` bytes.
fn pad_to(out: &mut String, start: usize, width: usize) {
    push_spaces(out, width.saturating_sub(out.len() - start));
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The same bytes as `core::fmt`, at the edges: 0, one digit, powers of
    /// ten, the extremes of each type, and widths shorter and longer than
    /// the text.
    #[test]
    fn as_core_fmt_writes_them() {
        for n in [
            0,
            1,
            9,
            10,
            99,
            100,
            -1,
            -10,
            4_194_304,
            i64::from(i32::MAX),
            i64::from(i32::MIN),
            i64::MAX,
            i64::MIN,
        ] {
            let mut s = String::new();
            push_int(&mut s, n);
            assert_eq!(s, n.to_string());
            for width in [0, 1, 7, 25] {
                let mut s = String::from("x");
                push_int_left(&mut s, n, width);
                assert_eq!(s, format!("x{n:<width$}"));
            }
        }
        for n in [0, 7, 10, u64::MAX] {
            let mut s = String::new();
            push_uint(&mut s, n);
            assert_eq!(s, n.to_string());
        }
        for text in [
            "",
            "Running",
            "Stopped (tty output)",
            "été",
            "x".repeat(30).as_str(),
        ] {
            for width in [0, 3, 22] {
                let mut s = String::new();
                push_left(&mut s, text, width);
                assert_eq!(s, format!("{text:<width$}"));
            }
        }
    }
}
