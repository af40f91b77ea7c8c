//! Exact arithmetic on decimal strings: a trade's total from its price and quantity, for venues
//! that do not send it (Binance), and a decimal as an integer count of units at a fixed scale,
//! for typed outputs (Parquet's Decimal128) and back.
//!
//! Pure, integer arithmetic only: a decimal must never pass through a float, where digits are
//! lost, and is never rounded: a digit that a scale cannot hold is an error.

/// Digits in a factor (before and after the point) at most: two of them multiply within a
/// `u128` (38 digits).
const MAX_DIGITS: usize = 19;

/// `a × b`, exactly, written without trailing zeros after the point (and without the point if
/// none remain). `None` if either is not a plain non-negative decimal (`123`, `0.5`, `1.25000`)
/// of at most 19 digits.
pub fn multiply(a: &str, b: &str) -> Option<String> {
    let (ma, sa) = parse(a)?;
    let (mb, sb) = parse(b)?;
    let product = ma.checked_mul(mb)?;
    Some(format_scaled(product, sa + sb))
}

/// The digits as an integer, and how many of them follow the point.
fn parse(s: &str) -> Option<(u128, usize)> {
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    let digits = |part: &str| part.bytes().all(|b| b.is_ascii_digit());
    if int.is_empty() || !digits(int) || !digits(frac) || int.len() + frac.len() > MAX_DIGITS {
        return None;
    }
    if s.ends_with('.') {
        return None;
    }
    let mut value: u128 = 0;
    for b in int.bytes().chain(frac.bytes()) {
        value = value * 10 + u128::from(b - b'0');
    }
    Some((value, frac.len()))
}

/// Why a decimal string has no value at a scale.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScaleError {
    #[error("is not a plain non-negative decimal")]
    NotDecimal,
    #[error("has {digits} digits after the point, more than the scale of {scale} holds")]
    TooPrecise { digits: usize, scale: u8 },
    #[error("has more than {precision} digits at a scale of {scale}")]
    TooLong { precision: u8, scale: u8 },
}

/// `s × 10^scale` exactly: the decimal as a count of units of `10^-scale`, as Decimal128 stores
/// it, within `precision` digits (at most 38). Trailing zeros past the scale are digits too
/// (`"1.50"` at scale 1 is refused): the string is what the venue sent, and a scale that cannot
/// hold it is the caller's mistake to see, not to round away.
pub fn to_scaled(s: &str, scale: u8, precision: u8) -> Result<i128, ScaleError> {
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    let digits = |part: &str| part.bytes().all(|b| b.is_ascii_digit());
    if int.is_empty() || !digits(int) || !digits(frac) || s.ends_with('.') {
        return Err(ScaleError::NotDecimal);
    }
    if frac.len() > usize::from(scale) {
        return Err(ScaleError::TooPrecise {
            digits: frac.len(),
            scale,
        });
    }
    let too_long = ScaleError::TooLong { precision, scale };
    let int = int.trim_start_matches('0');
    // Digits in the scaled integer: leading zeros of the integer part are not.
    if int.len() + usize::from(scale) > usize::from(precision.min(38)) {
        return Err(too_long);
    }
    let mut value: i128 = 0;
    let padding = std::iter::repeat_n(b'0', usize::from(scale) - frac.len());
    for b in int.bytes().chain(frac.bytes()).chain(padding) {
        value = value * 10 + i128::from(b - b'0');
    }
    Ok(value)
}

/// A count of units of `10^-scale` as a decimal string with exactly `scale` digits after the
/// point (`130.0002000000000000` at 16): the form Decimal128 readers show.
pub fn format_at_scale(value: i128, scale: u8) -> String {
    let sign = if value < 0 { "-" } else { "" };
    let digits = format!(
        "{:0>width$}",
        value.unsigned_abs(),
        width = usize::from(scale) + 1
    );
    let (int, frac) = digits.split_at(digits.len() - usize::from(scale));
    if frac.is_empty() {
        format!("{sign}{int}")
    } else {
        format!("{sign}{int}.{frac}")
    }
}

fn format_scaled(value: u128, scale: usize) -> String {
    let digits = format!("{value:0>width$}", width = scale + 1);
    let (int, frac) = digits.split_at(digits.len() - scale);
    let frac = frac.trim_end_matches('0');
    if frac.is_empty() {
        int.to_string()
    } else {
        format!("{int}.{frac}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn products_are_exact() {
        assert_eq!(multiply("0.1", "0.2").as_deref(), Some("0.02"));
        assert_eq!(
            multiply("65123.45678901", "0.00012345").as_deref(),
            Some("8.0394907406032845")
        );
        assert_eq!(multiply("2", "3").as_deref(), Some("6"));
        assert_eq!(multiply("2.50000000", "4.00000000").as_deref(), Some("10"));
        assert_eq!(
            multiply("0.00000001", "0.00000001").as_deref(),
            Some("0.0000000000000001")
        );
        assert_eq!(multiply("0", "123.4").as_deref(), Some("0"));
        assert_eq!(
            multiply("99999999999.99999999", "99999999999.99999999").as_deref(),
            Some("9999999999999999998000.0000000000000001")
        );
    }

    #[test]
    fn decimals_are_exact_at_their_scale_and_never_rounded() {
        assert_eq!(to_scaled("65000.10000000", 8, 38), Ok(6_500_010_000_000));
        assert_eq!(to_scaled("130.0002", 16, 38), Ok(1_300_002_000_000_000_000));
        assert_eq!(to_scaled("0", 8, 38), Ok(0));
        assert_eq!(to_scaled("007", 2, 38), Ok(700));
        assert_eq!(to_scaled("0.00000001", 8, 38), Ok(1));
        // 38 digits exactly fit; one more does not.
        let widest = format!("{}.{}", "9".repeat(22), "9".repeat(16));
        assert_eq!(to_scaled(&widest, 16, 38), Ok(10i128.pow(38) - 1));
        assert_eq!(
            to_scaled(&format!("1{widest}"), 16, 38),
            Err(ScaleError::TooLong {
                precision: 38,
                scale: 16
            })
        );
        assert_eq!(
            to_scaled("0.000000001", 8, 38),
            Err(ScaleError::TooPrecise {
                digits: 9,
                scale: 8
            }),
            "a ninth decimal is refused, not rounded"
        );
        assert_eq!(
            to_scaled("1.50", 1, 38),
            Err(ScaleError::TooPrecise {
                digits: 2,
                scale: 1
            }),
            "a trailing zero is a digit the venue sent"
        );
        for bad in ["", ".5", "5.", "-1", "1e5", "1,5", " 1", "1.2.3", "0x10"] {
            assert_eq!(
                to_scaled(bad, 8, 38),
                Err(ScaleError::NotDecimal),
                "{bad:?}"
            );
        }
        for (value, scale, text) in [
            (6_500_010_000_000, 8, "65000.10000000"),
            (0, 16, "0.0000000000000000"),
            (1, 8, "0.00000001"),
            (42, 0, "42"),
            (-5, 2, "-0.05"),
        ] {
            assert_eq!(format_at_scale(value, scale), text);
        }
        let product = multiply("65123.45678901", "0.00012345").unwrap();
        let scaled = to_scaled(&product, 16, 38).unwrap();
        assert_eq!(format_at_scale(scaled, 16), "8.0394907406032845");
    }

    #[test]
    fn anything_but_a_plain_decimal_is_refused() {
        for bad in [
            "",
            ".5",
            "5.",
            "-1",
            "1e5",
            "1,5",
            " 1",
            "0x10",
            "1.2.3",
            "12345678901234567890",
        ] {
            assert_eq!(multiply(bad, "1"), None, "{bad:?}");
        }
    }
}
