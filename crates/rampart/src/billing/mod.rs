//! Money and prices, as pure values: amounts in integer micro-units of the instance's currency
//! (1 EUR = 1 000 000; SMS prices have fractions of a cent, and floats never hold money), the
//! price table by destination prefix (longest wins) and its CSV form. Balances, reservations
//! and the ledger are kept by the store, in the send's own transaction (`app/billing.rs`).

use std::collections::HashMap;

use crate::clock::{Millis, rfc3339};

/// Micro-units in one unit of the currency.
pub const MICROS_PER_UNIT: i64 = 1_000_000;

/// The largest amount accepted anywhere (a billion units): sums of many stay far from
/// `i64::MAX`.
pub const MAX_AMOUNT: i64 = 1_000_000_000 * MICROS_PER_UNIT;

/// Why an amount was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AmountError {
    #[error("an amount is a decimal number such as 10.00 or 0.0075, with at most 6 decimals")]
    Malformed,
    #[error("an amount must be at most 1000000000")]
    TooLarge,
}

/// Parses a non-negative decimal amount (`10`, `10.00`, `0.0075`) into micro-units.
pub fn parse_amount(text: &str) -> Result<i64, AmountError> {
    let text = text.trim();
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || !digits(whole) || !digits(fraction) || fraction.len() > 6 {
        return Err(AmountError::Malformed);
    }
    if text.ends_with('.') {
        return Err(AmountError::Malformed);
    }
    if whole.len() > 10 {
        return Err(AmountError::TooLarge);
    }
    let whole: i64 = whole.parse().map_err(|_| AmountError::Malformed)?;
    let padded = format!("{fraction:0<6}");
    let fraction: i64 = padded.parse().map_err(|_| AmountError::Malformed)?;
    let micros = whole * MICROS_PER_UNIT + fraction;
    if micros > MAX_AMOUNT {
        return Err(AmountError::TooLarge);
    }
    Ok(micros)
}

/// Shows micro-units as a decimal with at least two decimals (`10.00`, `0.0075`, `-1.50`).
pub fn format_amount(micros: i64) -> String {
    let sign = if micros < 0 { "-" } else { "" };
    let abs = micros.unsigned_abs();
    let unit = MICROS_PER_UNIT as u64;
    let fraction = format!("{:06}", abs % unit);
    let trimmed = fraction.trim_end_matches('0');
    let shown = if trimmed.len() < 2 {
        &fraction[..2]
    } else {
        trimmed
    };
    format!("{sign}{}.{shown}", abs / unit)
}

/// The UTC day (`2026-12-04`) and month (`2026-12`) a moment counts in, for spend caps.
pub fn day_and_month(at: Millis) -> (String, String) {
    let stamp = rfc3339(at);
    (
        stamp.get(..10).unwrap_or_default().to_owned(),
        stamp.get(..7).unwrap_or_default().to_owned(),
    )
}

/// Prices per segment by destination prefix.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PriceTable {
    by_prefix: HashMap<String, i64>,
    longest: usize,
}

impl PriceTable {
    pub fn new(prices: impl IntoIterator<Item = (String, i64)>) -> Self {
        let by_prefix: HashMap<String, i64> = prices.into_iter().collect();
        let longest = by_prefix.keys().map(String::len).max().unwrap_or(0);
        Self { by_prefix, longest }
    }

    /// The price of one segment to `number` (E.164): the longest matching prefix's.
    pub fn per_segment(&self, number: &str) -> Option<i64> {
        (0..=self.longest.min(number.len()))
            .rev()
            .filter_map(|n| number.get(..n))
            .find_map(|prefix| self.by_prefix.get(prefix).copied())
    }

    pub fn len(&self) -> usize {
        self.by_prefix.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_prefix.is_empty()
    }
}

/// A line of a price file that was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct PriceFileError {
    pub line: usize,
    pub message: String,
}

/// Parses a price file: a `prefix,price_per_segment` header, then one row per prefix (`+44`,
/// `+4477`; `+` and 0 to 15 digits) with a decimal price. Blank lines are skipped; the first
/// bad line is named.
pub fn parse_price_csv(text: &str) -> Result<Vec<(String, i64)>, PriceFileError> {
    let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l.trim()));
    let err = |line: usize, message: String| PriceFileError { line, message };
    match lines.find(|(_, l)| !l.is_empty()) {
        Some((_, header)) if header.replace(' ', "") == "prefix,price_per_segment" => {}
        Some((n, _)) => {
            return Err(err(
                n,
                "the first line must be the header `prefix,price_per_segment`".into(),
            ));
        }
        None => return Err(err(1, "the file is empty".into())),
    }
    let mut prices: Vec<(String, i64)> = Vec::new();
    let mut seen = HashMap::new();
    for (n, line) in lines {
        if line.is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        let [prefix, price] = fields[..] else {
            return Err(err(
                n,
                format!("expected 2 columns, found {}", fields.len()),
            ));
        };
        let valid_prefix = prefix.starts_with('+')
            && prefix.len() <= 16
            && prefix[1..].bytes().all(|b| b.is_ascii_digit());
        if !valid_prefix {
            return Err(err(
                n,
                format!("`{prefix}` is not a prefix such as +44 (a `+` and up to 15 digits)"),
            ));
        }
        let price = parse_amount(price).map_err(|e| err(n, format!("price: {e}")))?;
        if let Some(first) = seen.insert(prefix.to_owned(), n) {
            return Err(err(
                n,
                format!("prefix {prefix} is already on line {first}"),
            ));
        }
        prices.push((prefix.to_owned(), price));
    }
    Ok(prices)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_are_parsed_into_micro_units_and_shown_back_without_floats() {
        assert_eq!(parse_amount("10.00"), Ok(10_000_000));
        assert_eq!(parse_amount("0.0075"), Ok(7_500));
        assert_eq!(parse_amount("3"), Ok(3_000_000));
        for bad in ["", "-1", "1.", ".5", "1.0000001", "1e3", "1,5", "abc"] {
            assert_eq!(parse_amount(bad), Err(AmountError::Malformed), "{bad:?}");
        }
        assert_eq!(parse_amount("99999999999"), Err(AmountError::TooLarge));
        assert_eq!(format_amount(10_000_000), "10.00");
        assert_eq!(format_amount(7_500), "0.0075");
        assert_eq!(format_amount(-1_500_000), "-1.50");
        assert_eq!(format_amount(0), "0.00");
    }

    #[test]
    fn the_longest_matching_prefix_sets_the_price() {
        let table = PriceTable::new([("+44".into(), 40_000), ("+4477".into(), 35_000)]);
        assert_eq!(table.per_segment("+447700900123"), Some(35_000));
        assert_eq!(table.per_segment("+441632960000"), Some(40_000));
        assert_eq!(table.per_segment("+33612345678"), None);
        let with_default = PriceTable::new([("+".into(), 90_000)]);
        assert_eq!(with_default.per_segment("+33612345678"), Some(90_000));
    }

    #[test]
    fn a_price_file_error_names_its_line() {
        let good = "prefix,price_per_segment\n+44,0.04\n\n+4477,0.035\n";
        assert_eq!(
            parse_price_csv(good),
            Ok(vec![("+44".into(), 40_000), ("+4477".into(), 35_000)])
        );
        let cases = [
            ("to,price\n", 1),
            ("prefix,price_per_segment\n+44,0.04\n44,0.05\n", 3),
            ("prefix,price_per_segment\n+44,0.04\n+33,-1\n", 3),
            ("prefix,price_per_segment\n+44,0.04,x\n", 2),
            ("prefix,price_per_segment\n+44,0.04\n+1,0.01\n+44,0.05\n", 4),
        ];
        for (text, line) in cases {
            let e = parse_price_csv(text).unwrap_err();
            assert_eq!(e.line, line, "{text:?}: {e}");
            assert!(e.to_string().starts_with(&format!("line {line}:")), "{e}");
        }
    }

    #[test]
    fn spend_counts_in_utc_days_and_months() {
        let (day, month) = day_and_month(1_764_806_400_000);
        assert_eq!((day.as_str(), month.as_str()), ("2025-12-04", "2025-12"));
    }
}
