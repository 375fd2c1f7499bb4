//! Exchange timestamps to Unix milliseconds (floored, as PROTOCOLS.md §1 requires).

/// Parses RFC 3339 (`2026-11-24T05:12:33.123456789Z`, 0–9 fraction digits, `Z` or `±hh:mm`)
/// into Unix milliseconds, truncating sub-millisecond digits.
pub fn rfc3339_ms(text: &str) -> Option<u64> {
    let b = text.as_bytes();
    let num = |range: std::ops::Range<usize>| -> Option<i64> {
        let digits = b.get(range)?;
        if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
            return None;
        }
        Some(
            digits
                .iter()
                .fold(0i64, |n, d| n * 10 + i64::from(d - b'0')),
        )
    };
    let sep = |at: usize, allowed: &[u8]| b.get(at).is_some_and(|c| allowed.contains(c));
    if !(sep(4, b"-") && sep(7, b"-") && sep(10, b"Tt ") && sep(13, b":") && sep(16, b":")) {
        return None;
    }
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let mut pos = 19;
    let mut millis = 0i64;
    if b.get(pos) == Some(&b'.') {
        let start = pos + 1;
        let mut end = start;
        while b.get(end).is_some_and(u8::is_ascii_digit) {
            end += 1;
        }
        if end == start || end - start > 9 {
            return None;
        }
        // The first three fraction digits are the milliseconds; the rest is floored away.
        for i in 0..3 {
            let digit = b
                .get(start + i)
                .filter(|_| start + i < end)
                .map_or(0, |d| i64::from(d - b'0'));
            millis = millis * 10 + digit;
        }
        pos = end;
    }
    let offset_s = match b.get(pos) {
        Some(b'Z' | b'z') if pos + 1 == b.len() => 0,
        Some(sign @ (b'+' | b'-')) if pos + 6 == b.len() && sep(pos + 3, b":") => {
            let minutes = num(pos + 1..pos + 3)? * 60 + num(pos + 4..pos + 6)?;
            if *sign == b'+' {
                minutes * 60
            } else {
                -minutes * 60
            }
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let seconds = days * 86_400 + hour * 3_600 + minute * 60 + second - offset_s;
    u64::try_from(seconds * 1000 + millis).ok()
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rfc3339() {
        let cases: &[(&str, Option<u64>)] = &[
            ("1970-01-01T00:00:00Z", Some(0)),
            ("2026-11-24T05:12:33.123456789Z", Some(1_795_497_153_123)),
            ("2026-11-24T05:12:33.1239Z", Some(1_795_497_153_123)),
            ("2026-11-24T05:12:33.9Z", Some(1_795_497_153_900)),
            ("2026-11-24T05:12:33Z", Some(1_795_497_153_000)),
            ("2026-08-09T21:05:50.0474128Z", Some(1_786_309_550_047)),
            ("2026-11-24T06:12:33.123+01:00", Some(1_795_497_153_123)),
            ("2024-02-29T00:00:00Z", Some(1_709_164_800_000)),
            ("2026-11-24T05:12:33.1234567890Z", None),
            ("2026-11-24T05:12:33.Z", None),
            ("2026-13-24T05:12:33Z", None),
            ("2026-11-24T05:12:33", None),
            ("2026-11-24 05:12:34.000101 +0000 UTC", None),
            ("1795497153123", None),
            ("", None),
        ];
        for (text, expected) in cases {
            assert_eq!(rfc3339_ms(text), *expected, "{text}");
        }
    }
}
