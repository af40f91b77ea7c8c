//! UTC dates for the API (`"YYYY-MM-DD HH:MM:SS"`) and the command line's times, on `jiff`.
//!
//! Pure functions; they must never consult the local time zone (they use only UTC).

use jiff::{civil::DateTime, tz::Offset, Timestamp};

/// `"YYYY-MM-DD HH:MM:SS"` (UTC) as unix seconds; `None` if it is not exactly that.
pub fn parse_utc_datetime(s: &str) -> Option<i64> {
    // The shape is checked here because jiff's parsers are lenient (a sign, fewer digits, `T`,
    // a leap second read as :59); the calendar (month lengths, leap years, ranges) is jiff's.
    const SHAPE: &[u8] = b"0000-00-00 00:00:00";
    let b = s.as_bytes();
    let digit_or = |(&c, &p): (&u8, &u8)| {
        if p == b'0' {
            c.is_ascii_digit()
        } else {
            c == p
        }
    };
    if b.len() != SHAPE.len() || !b.iter().zip(SHAPE).all(digit_or) {
        return None;
    }
    let n = |at: usize| s[at..at + 2].parse().ok();
    let (year, month, day) = (s[..4].parse().ok()?, n(5)?, n(8)?);
    let datetime = DateTime::new(year, month, day, n(11)?, n(14)?, n(17)?, 0).ok()?;
    Some(Offset::UTC.to_timestamp(datetime).ok()?.as_second())
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
    parse_utc_datetime(&s.replacen('T', " ", 1))
}

/// Unix seconds → `"YYYY-MM-DD HH:MM:SS"` (UTC), as the API writes dates. Outside jiff's range
/// (beyond the years ±9999; never a date of the wire's i32 seconds), the bare number.
pub fn format_utc(unix: i64) -> String {
    Timestamp::from_second(unix).map_or_else(
        |_| unix.to_string(),
        |t| t.strftime("%Y-%m-%d %H:%M:%S").to_string(),
    )
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

    #[test]
    fn edges_before_1970_leap_seconds_and_lenient_forms() {
        assert_eq!(parse_utc_datetime("1969-12-31 23:59:59"), Some(-1));
        assert_eq!(format_utc(-1), "1969-12-31 23:59:59");
        assert_eq!(format_utc(i32::MIN.into()), "1901-12-13 20:45:52");
        assert_eq!(
            parse_utc_datetime("0000-01-01 00:00:00"),
            Some(-62_167_219_200)
        );
        assert_eq!(
            parse_utc_datetime("2024-02-29 12:00:00"),
            Some(1_709_208_000)
        );
        // No leap second, no sign, no missing digits, no lower-case or padded forms.
        for bad in [
            "2016-12-31 23:59:60",
            "-018-10-22 15:03:57",
            "2018-10-22 5:03:57 ",
            "2018-10-22t15:03:57",
            " 2018-10-22 15:03:57",
            "2018-10-22 15:03:57.0",
        ] {
            assert_eq!(parse_utc_datetime(bad), None, "{bad}");
        }
        let day = 1_540_166_400;
        for (arg, expected) in [
            ("2018-10-22 00:00:01Z", Some(day + 1)),
            ("2018-10-22T23:59:59Z", Some(day + 86_399)),
            ("0", Some(0)),
            ("99999999999999999999", None),
            ("2018-10-22Z", None),
            ("2018-10-22t00:00:01z", None),
            ("2018-10-22T00:00:60Z", None),
            ("2018-10-22T00:00Z", None),
        ] {
            assert_eq!(parse_time_arg(arg), expected, "{arg:?}");
        }
    }
}
