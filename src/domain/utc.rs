//! UTC calendar arithmetic for the API's dates (`"YYYY-MM-DD HH:MM:SS"`) and the command
//! line's times: the few conversions this crate needs, without a date library.
//!
//! Pure functions; they must never consult the local time zone.

/// `"YYYY-MM-DD HH:MM:SS"` (UTC) as unix seconds; `None` if it is not exactly that.
pub fn parse_utc_datetime(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() != 19
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b' '
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let num = |range: std::ops::Range<usize>| -> Option<i64> {
        let digits = &s[range];
        digits
            .bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| digits.parse().ok())?
    };
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    Some(days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
pub fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// A time as users write it on a command line, as unix seconds: unix seconds (`1540166400`),
/// a date (`2018-10-22`, its midnight), or a date and time (`2018-10-22 15:03:57`,
/// `2018-10-22T15:03:57`, `2018-10-22T15:03:57Z`); always UTC.
pub fn parse_time_arg(s: &str) -> Option<i64> {
    let s = s.trim();
    if !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit()) {
        return s.parse().ok();
    }
    if s.len() == 10 {
        return parse_utc_datetime(&format!("{s} 00:00:00"));
    }
    let s = s.strip_suffix('Z').unwrap_or(s);
    if s.len() == 19 && s.as_bytes()[10] == b'T' {
        return parse_utc_datetime(&format!("{} {}", &s[..10], &s[11..]));
    }
    parse_utc_datetime(s)
}

/// Unix seconds → `"YYYY-MM-DD HH:MM:SS"` (UTC), as the API writes dates.
pub fn format_utc(unix: i64) -> String {
    let (days, secs) = (unix.div_euclid(86_400), unix.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    const AT: i64 = 1_540_220_637;

    #[test]
    fn parses_utc_datetimes() {
        assert_eq!(parse_utc_datetime("1970-01-01 00:00:00"), Some(0));
        assert_eq!(parse_utc_datetime("2018-10-22 15:03:57"), Some(AT));
        assert_eq!(parse_utc_datetime("2000-02-29 23:59:59"), Some(951_868_799));
        assert_eq!(
            parse_utc_datetime("2038-01-19 03:14:07"),
            Some(i32::MAX as i64)
        );
        for bad in [
            "2019-02-29 00:00:00",
            "1900-02-29 00:00:00",
            "2018-10-22T15:03:57",
            "2018-10-22 24:00:00",
            "2018-10-22 15:03",
            "2018-1-022 15:03:57",
            "+018-10-22 15:03:57",
            "2018-04-31 00:00:00",
            "",
        ] {
            assert_eq!(parse_utc_datetime(bad), None, "{bad}");
        }
    }

    #[test]
    fn parses_command_line_times() {
        let day = 1_540_166_400;
        for (arg, expected) in [
            ("1540166400", Some(day)),
            ("2018-10-22", Some(day)),
            ("2018-10-22 00:00:01", Some(day + 1)),
            ("2018-10-22T00:00:01", Some(day + 1)),
            ("2018-10-22T00:00:01Z", Some(day + 1)),
            (" 2018-10-22 ", Some(day)),
            ("2018-10-32", None),
            ("yesterday", None),
            ("-5", None),
            ("", None),
        ] {
            assert_eq!(parse_time_arg(arg), expected, "{arg:?}");
        }
    }

    #[test]
    fn formats_dates() {
        assert_eq!(format_utc(1_540_220_637), "2018-10-22 15:03:57");
        assert_eq!(format_utc(0), "1970-01-01 00:00:00");
        assert_eq!(format_utc(951_868_799), "2000-02-29 23:59:59");
        for t in [0, 86_399, 951_868_799, 1_540_220_637, 2_147_483_647] {
            assert_eq!(parse_utc_datetime(&format_utc(t)), Some(t));
        }
    }
}
