//! Exact products of decimal strings: a trade's total from its price and quantity, for venues
//! that do not send it (Binance).
//!
//! Pure, integer arithmetic only: a decimal must never pass through a float, where digits are
//! lost.

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
