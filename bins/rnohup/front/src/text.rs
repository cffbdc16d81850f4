//! The text of a job record, written without allocation: numbers, dates and
//! escaped values, byte for byte as `hupkit_common::records` writes them (a
//! test in `tests/rnohup/front.rs` compares the two writers' records).

/// Where text goes: a counter (for the length) or a buffered file.
pub trait Sink {
    /// Appends `bytes`.
    fn put(&mut self, bytes: &[u8]);
}

/// Counts the bytes put.
#[derive(Debug, Default)]
pub struct Count(pub u64);

impl Sink for Count {
    fn put(&mut self, bytes: &[u8]) {
        self.0 += bytes.len() as u64;
    }
}

/// Writes `n` in decimal.
pub fn decimal(sink: &mut impl Sink, mut n: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        // n % 10 < 10 fits a u8.
        #[allow(clippy::cast_possible_truncation)]
        let digit = (n % 10) as u8;
        buf[i] = b'0' + digit;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    sink.put(&buf[i..]);
}

/// Writes `n` in lowercase hexadecimal, without leading zeros.
pub fn hex(sink: &mut impl Sink, mut n: u64) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut buf = [0u8; 16];
    let mut i = buf.len();
    loop {
        i -= 1;
        #[allow(clippy::cast_possible_truncation)]
        let digit = (n & 15) as usize;
        buf[i] = DIGITS[digit];
        n >>= 4;
        if n == 0 {
            break;
        }
    }
    sink.put(&buf[i..]);
}

fn two(sink: &mut impl Sink, n: u32) {
    // n < 100 here, so both digits fit a u8.
    #[allow(clippy::cast_possible_truncation)]
    sink.put(&[b'0' + (n / 10) as u8, b'0' + (n % 10) as u8]);
}

/// Writes the UTC time `secs` after the epoch as RFC 3339 to the second with
/// a `Z` (`2026-12-02T19:30:21Z`), as chrono's `to_rfc3339_opts(Secs, true)`;
/// `false` (nothing written) outside the years 0 to 9999, where chrono writes
/// another form.
pub fn rfc3339(sink: &mut impl Sink, secs: i64) -> bool {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    if !(0..=9999).contains(&year) {
        return false;
    }
    // Every value below is in 0..=9999 (checked) or smaller.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    {
        let y = year as u32;
        two(sink, y / 100);
        two(sink, y % 100);
        sink.put(b"-");
        two(sink, month as u32);
        sink.put(b"-");
        two(sink, day as u32);
        sink.put(b"T");
        two(sink, (rem / 3600) as u32);
        sink.put(b":");
        two(sink, (rem / 60 % 60) as u32);
        sink.put(b":");
        two(sink, (rem % 60) as u32);
        sink.put(b"Z");
    }
    true
}

/// The length of the well-formed UTF-8 sequence at the start of `b`, if one is.
fn utf8_len(b: &[u8]) -> Option<usize> {
    let cont = |i: usize, lo: u8, hi: u8| b.get(i).is_some_and(|&c| (lo..=hi).contains(&c));
    let any = |i: usize| cont(i, 0x80, 0xBF);
    let (len, ok) = match *b.first()? {
        0x00..=0x7F => (1, true),
        0xC2..=0xDF => (2, any(1)),
        0xE0 => (3, cont(1, 0xA0, 0xBF) && any(2)),
        0xE1..=0xEC | 0xEE..=0xEF => (3, any(1) && any(2)),
        0xED => (3, cont(1, 0x80, 0x9F) && any(2)),
        0xF0 => (4, cont(1, 0x90, 0xBF) && any(2) && any(3)),
        0xF1..=0xF3 => (4, any(1) && any(2) && any(3)),
        0xF4 => (4, cont(1, 0x80, 0x8F) && any(2) && any(3)),
        _ => (1, false),
    };
    ok.then_some(len)
}

/// Whether `b` is UTF-8 throughout.
#[must_use]
pub fn is_utf8(mut b: &[u8]) -> bool {
    while !b.is_empty() {
        match utf8_len(b) {
            Some(n) => b = &b[n..],
            None => return false,
        }
    }
    true
}

/// Writes `bytes` escaped as records store values: `\` as `\\`, a newline as
/// `\n`, each byte that is not part of well-formed UTF-8 as `\xNN`.
pub fn escape(sink: &mut impl Sink, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let shown: &[u8] = match b {
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            _ => match utf8_len(&bytes[i..]) {
                Some(n) => {
                    i += n;
                    continue;
                }
                None => &[
                    b'\\',
                    b'x',
                    DIGITS[usize::from(b >> 4)],
                    DIGITS[usize::from(b & 15)],
                ],
            },
        };
        sink.put(&bytes[start..i]);
        sink.put(shown);
        i += 1;
        start = i;
    }
    sink.put(&bytes[start..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    impl Sink for Vec<u8> {
        fn put(&mut self, bytes: &[u8]) {
            self.extend_from_slice(bytes);
        }
    }

    fn esc(b: &[u8]) -> String {
        let mut v = Vec::new();
        escape(&mut v, b);
        String::from_utf8(v).unwrap()
    }

    #[test]
    fn escapes_like_the_record_writer() {
        assert_eq!(esc(b"plain"), "plain");
        assert_eq!(esc(b"a\\b\nc"), "a\\\\b\\nc");
        assert_eq!(esc(b"\xff\xfe"), "\\xff\\xfe");
        assert_eq!(esc("é€😀".as_bytes()), "é€😀");
        assert_eq!(esc(b"\xe2\x82A"), "\\xe2\\x82A");
        assert_eq!(esc(b"\xed\xa0\x80"), "\\xed\\xa0\\x80");
        assert_eq!(esc(b"\xc0\xaf"), "\\xc0\\xaf");
        assert_eq!(esc(b"\xf4\x90\x80\x80"), "\\xf4\\x90\\x80\\x80");
        // Against the reference: std's utf8_chunks, as records.rs uses it.
        let mut seed = 0x1234_5678u32;
        for _ in 0..20_000 {
            let mut b = Vec::new();
            for _ in 0..(seed % 9) {
                seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
                let pick = [
                    b'a', b'\\', b'\n', 0x80, 0xBF, 0xC2, 0xE0, 0xED, 0xF0, 0xF4, 0xFF, 0x9F, 0xA0,
                    0x90,
                ];
                b.push(pick[(seed >> 16) as usize % pick.len()]);
            }
            let mut want = String::new();
            for chunk in b.utf8_chunks() {
                want.push_str(&chunk.valid().replace('\\', "\\\\").replace('\n', "\\n"));
                for x in chunk.invalid() {
                    std::fmt::Write::write_fmt(&mut want, format_args!("\\x{x:02x}")).unwrap();
                }
            }
            assert_eq!(esc(&b), want, "{b:?}");
            assert_eq!(is_utf8(&b), std::str::from_utf8(&b).is_ok(), "{b:?}");
        }
    }

    #[test]
    fn numbers_and_dates() {
        let mut v = Vec::new();
        decimal(&mut v, 0);
        v.push(b' ');
        decimal(&mut v, u64::MAX);
        v.push(b' ');
        hex(&mut v, 0x1f_2e3d);
        assert_eq!(v, b"0 18446744073709551615 1f2e3d");
        for secs in [
            0i64,
            951_782_400,
            1_796_239_821,
            253_402_300_799,
            -1,
            68_169_600,
        ] {
            let mut v = Vec::new();
            assert!(rfc3339(&mut v, secs));
            let want = std::process::Command::new("date")
                .args(["-u", "-d", &format!("@{secs}"), "+%Y-%m-%dT%H:%M:%SZ"])
                .output()
                .unwrap();
            assert_eq!(
                String::from_utf8(v).unwrap(),
                String::from_utf8(want.stdout).unwrap().trim()
            );
        }
        assert!(!rfc3339(&mut Vec::new(), 253_402_300_800));
    }
}
