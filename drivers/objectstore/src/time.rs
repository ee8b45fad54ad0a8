//! The few calendar conversions the cloud drivers need, in UTC: RFC 3339 times (GCS's
//! `updated`) to nanoseconds, and Unix seconds to ISO 8601 (Azure SAS fields) or to the compact
//! stamps of GCS V4 signing; and Go's duration syntax (`30s`, `1m30s`, `250ms`) for parameters.

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = month as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + day as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day number, as (year, month, day).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

/// Unix seconds as ISO 8601 UTC without fractions: `2026-12-02T17:00:00Z`.
pub fn iso8601(unix_secs: u64) -> String {
    let (year, month, day) = civil_from_days((unix_secs / 86_400) as i64);
    let rem = unix_secs % 86_400;
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// Nanoseconds since the epoch of an RFC 3339 time such as `2024-05-06T07:08:09.123Z` or
/// `...+02:00`; `None` when it is not one (the caller then reports no time).
pub fn parse_rfc3339_ns(text: &str) -> Option<u64> {
    let b = text.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let num = |r: std::ops::Range<usize>| text.get(r)?.parse::<u32>().ok();
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if b[13] != b':' || b[16] != b':' || !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    let mut rest = &text[19..];
    let mut nanos = 0u64;
    if let Some(fraction) = rest.strip_prefix('.') {
        let digits = fraction.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        for (i, c) in fraction[..digits].bytes().enumerate().take(9) {
            nanos += u64::from(c - b'0') * 10u64.pow(8 - i as u32);
        }
        rest = &fraction[digits..];
    }
    let offset_secs: i64 = match rest {
        "Z" | "z" => 0,
        _ if rest.len() == 6 && (rest.starts_with('+') || rest.starts_with('-')) && &rest[3..4] == ":" => {
            let hours: i64 = rest[1..3].parse().ok()?;
            let minutes: i64 = rest[4..6].parse().ok()?;
            let sign = if rest.starts_with('-') { -1 } else { 1 };
            sign * (hours * 3600 + minutes * 60)
        }
        _ => return None,
    };
    let days = days_from_civil(i64::from(year), month, day);
    let secs = days * 86_400 + i64::from(hour) * 3600 + i64::from(minute) * 60 + i64::from(second) - offset_secs;
    // Past 2554 nanoseconds overflow u64: no time rather than a wrong one.
    u64::try_from(secs).ok()?.checked_mul(1_000_000_000)?.checked_add(nanos)
}

/// `YYYYMMDDTHHMMSSZ` of a Unix time, as V4 signing writes `X-Goog-Date`.
pub fn compact_stamp(unix_secs: u64) -> String {
    let secs = unix_secs as i64;
    let (year, month, day) = civil_from_days(secs.div_euclid(86_400));
    let of_day = secs.rem_euclid(86_400);
    format!("{year:04}{month:02}{day:02}T{:02}{:02}{:02}Z", of_day / 3600, of_day % 3600 / 60, of_day % 60)
}

/// Unix seconds of an RFC 3339 time (GCS's signing vectors give their timestamps so).
pub fn parse_rfc3339_secs(text: &str) -> Option<u64> {
    parse_rfc3339_ns(text).map(|ns| ns / 1_000_000_000)
}

/// A Go duration: a sequence of decimal numbers with units (`ns`, `us`, `µs`, `ms`, `s`, `m`,
/// `h`), as `time.ParseDuration` reads it; negative durations are refused.
pub fn parse_go_duration(text: &str) -> Result<std::time::Duration, String> {
    let s = text.trim();
    if s == "0" {
        return Ok(std::time::Duration::ZERO);
    }
    if s.is_empty() || s.starts_with('-') {
        return Err("expected a positive duration such as 100ms or 1.5s".into());
    }
    let mut rest = s.strip_prefix('+').unwrap_or(s);
    let mut total = 0f64;
    while !rest.is_empty() {
        let number_end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        let number: f64 = rest[..number_end].parse().map_err(|_| format!("{s:?} has no number before a unit"))?;
        rest = &rest[number_end..];
        let unit_end = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let nanos_per = match &rest[..unit_end] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            "" => return Err(format!("{s:?} is missing a unit (ns, us, ms, s, m, h)")),
            unit => return Err(format!("unknown unit {unit:?} in {s:?}")),
        };
        total += number * nanos_per;
        rest = &rest[unit_end..];
    }
    if total > 1e18 {
        return Err(format!("{s:?} is too long"));
    }
    Ok(std::time::Duration::from_nanos(total as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        use std::time::Duration;
        assert_eq!(parse_go_duration("100ms"), Ok(Duration::from_millis(100)));
        assert_eq!(parse_go_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_go_duration("2.5s"), Ok(Duration::from_millis(2500)));
        assert_eq!(parse_go_duration("500µs"), Ok(Duration::from_micros(500)));
        assert_eq!(parse_go_duration("0"), Ok(Duration::ZERO));
        for bad in ["10", "-1s", "1d", "", "s", "1.2.3s"] {
            assert!(parse_go_duration(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn iso_dates() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso8601(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(iso8601(1_796_230_800), "2026-12-02T17:00:00Z");
    }

    #[test]
    fn parses_what_the_json_api_sends() {
        assert_eq!(parse_rfc3339_ns("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339_ns("1970-01-01T00:00:01.5Z"), Some(1_500_000_000));
        // fake-gcs-server writes six digits, GCS three; both are nanosecond-exact.
        assert_eq!(parse_rfc3339_ns("2026-12-02T17:13:35.45567Z"), Some(1_796_231_615_455_670_000));
        assert_eq!(parse_rfc3339_ns("2019-02-01T09:00:00Z"), Some(1_549_011_600_000_000_000));
        assert_eq!(parse_rfc3339_ns("2019-02-01T10:00:00+01:00"), Some(1_549_011_600_000_000_000));
        assert_eq!(parse_rfc3339_ns("2000-02-29T00:00:00.123456789123Z"), Some(951_782_400_123_456_789));
        assert_eq!(parse_rfc3339_ns("9999-12-31T23:59:59Z"), None, "beyond u64 nanoseconds");
        for bad in ["", "2019-02-01", "2019-13-01T00:00:00Z", "2019-02-01T09:00:00", "2019-02-01T09:00:00.Z", "x"] {
            assert_eq!(parse_rfc3339_ns(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn stamps_round_trip() {
        assert_eq!(compact_stamp(1_549_011_600), "20190201T090000Z");
        assert_eq!(compact_stamp(0), "19700101T000000Z");
        assert_eq!(compact_stamp(951_782_399), "20000228T235959Z");
        assert_eq!(compact_stamp(951_782_400), "20000229T000000Z");
        for secs in [0u64, 59, 86_399, 86_400, 1_000_000_007, 4_102_444_800, 18_000_000_000] {
            let stamp = compact_stamp(secs);
            let rfc = format!(
                "{}-{}-{}T{}:{}:{}Z",
                &stamp[0..4],
                &stamp[4..6],
                &stamp[6..8],
                &stamp[9..11],
                &stamp[11..13],
                &stamp[13..15]
            );
            assert_eq!(parse_rfc3339_secs(&rfc), Some(secs), "{stamp}");
        }
    }
}
