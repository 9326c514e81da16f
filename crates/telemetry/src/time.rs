//! Timestamp parsing without allocation: RFC 3339 and decimal seconds.

use bulkhead_core::flow::Timestamp;

/// Days from 1970-01-01 to the given civil date (proleptic Gregorian; Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp as i64 + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn digits(b: &[u8]) -> Option<u32> {
    if b.is_empty() || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(b.iter().fold(0u32, |a, &c| a * 10 + (c - b'0') as u32))
}

/// Parses `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)` into nanoseconds since the epoch.
pub fn parse_rfc3339(s: &str) -> Option<Timestamp> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (y, mo, d) = (digits(&b[0..4])?, digits(&b[5..7])?, digits(&b[8..10])?);
    let (h, mi, se) = (
        digits(&b[11..13])?,
        digits(&b[14..16])?,
        digits(&b[17..19])?,
    );
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    let mut i = 19;
    let mut nanos: i64 = 0;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            if i - start < 9 {
                nanos = nanos * 10 + (b[i] - b'0') as i64;
            }
            i += 1;
        }
        let n = i - start;
        if n == 0 {
            return None;
        }
        for _ in n..9 {
            nanos *= 10;
        }
    }
    let offset: i64 = match b.get(i..)? {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), oh1, oh2, b':', om1, om2] => {
            let oh = digits(&[*oh1, *oh2])? as i64;
            let om = digits(&[*om1, *om2])? as i64;
            let o = oh * 3600 + om * 60;
            if *sign == b'+' { o } else { -o }
        }
        _ => return None,
    };
    let days = days_from_civil(y as i64, mo, d);
    let secs = days * 86_400 + h as i64 * 3600 + mi as i64 * 60 + se as i64 - offset;
    secs.checked_mul(1_000_000_000)?.checked_add(nanos)
}

/// Parses decimal seconds (`1418530010` or `1418530010.123456`) into nanoseconds, exactly
/// (no floating point).
pub fn parse_decimal_secs(s: &str) -> Option<Timestamp> {
    let (int, frac) = match s.split_once('.') {
        Some((i, f)) => (i, f),
        None => (s, ""),
    };
    let neg = int.starts_with('-');
    let int = int.strip_prefix('-').unwrap_or(int);
    if int.is_empty() || int.len() > 11 || !int.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    if !frac.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let secs: i64 = int.parse().ok()?;
    let mut nanos: i64 = 0;
    for (k, c) in frac.bytes().enumerate() {
        if k < 9 {
            nanos = nanos * 10 + (c - b'0') as i64;
        }
    }
    for _ in frac.len().min(9)..9 {
        nanos *= 10;
    }
    let t = secs.checked_mul(1_000_000_000)?.checked_add(nanos)?;
    Some(if neg { -t } else { t })
}

/// Seconds as a float into nanoseconds (for JSON numbers).
pub fn secs_f64(v: f64) -> Option<Timestamp> {
    (v.is_finite() && v.abs() < 9.0e9).then(|| (v * 1e9).round() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339() {
        for (s, want, msg) in [
            ("1970-01-01T00:00:00Z", Some(0), "epoch"),
            (
                "2021-06-16T16:52:13.136834446Z",
                Some(1_623_862_333_136_834_446),
                "hubble nanos",
            ),
            (
                "2021-06-16T16:52:13.1Z",
                Some(1_623_862_333_100_000_000),
                "short fraction",
            ),
            (
                "2021-06-16T18:52:13+02:00",
                Some(1_623_862_333_000_000_000),
                "offset",
            ),
            ("2021-06-16T16:52:13", None, "no zone"),
            ("2021-13-16T16:52:13Z", None, "month 13"),
            ("2021-06-16T16:52:13.Z", None, "empty fraction"),
            ("", None, "empty"),
        ] {
            assert_eq!(parse_rfc3339(s), want, "{msg}: {s}");
        }
    }

    #[test]
    fn decimal() {
        assert_eq!(
            parse_decimal_secs("1418530010"),
            Some(1_418_530_010_000_000_000)
        );
        assert_eq!(parse_decimal_secs("1.5"), Some(1_500_000_000));
        assert_eq!(parse_decimal_secs("XXXXXXXXXX.XXXXXX"), None);
        assert_eq!(parse_decimal_secs("-"), None);
        assert_eq!(parse_decimal_secs("99999999999.9"), None, "out of range");
    }
}
