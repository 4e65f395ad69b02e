//! Whole numbers as JSON reads them (request bodies and stored documents alike): `60.0` is the number 60, and JSON Schema's `integer`
//! allows it. serde's integer types refuse a number written with a fraction part, so without
//! this a client whose JSON library writes whole floats that way (Python's `json`, say) would
//! be refused for a value the OpenAPI document allows.

use serde::de::{Deserialize, Deserializer, Error, Unexpected};

/// An optional non-negative whole number, written with or without a zero fraction part. Use
/// with `#[serde(default, deserialize_with = "...")]`.
pub fn optional_u64<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u64>, D::Error> {
    let Some(number) = Option::<serde_json::Number>::deserialize(deserializer)? else {
        return Ok(None);
    };
    if let Some(whole) = number.as_u64() {
        return Ok(Some(whole));
    }
    match number.as_f64() {
        // Below 2^64 an f64 with no fraction part converts exactly.
        Some(f) if f >= 0.0 && f.fract() == 0.0 && f < u64::MAX as f64 => Ok(Some(f as u64)),
        Some(f) => Err(D::Error::invalid_value(
            Unexpected::Float(f),
            &"a non-negative whole number",
        )),
        None => Err(D::Error::invalid_value(
            Unexpected::Other("a number"),
            &"a non-negative whole number",
        )),
    }
}

/// An optional whole number that fits a `u32` (see [`optional_u64`]).
pub fn optional_u32<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u32>, D::Error> {
    optional_u64(deserializer)?
        .map(|n| {
            u32::try_from(n).map_err(|_| {
                D::Error::invalid_value(Unexpected::Unsigned(n), &"at most 4294967295")
            })
        })
        .transpose()
}

/// A required non-negative whole number (see [`optional_u64`]).
pub fn u64_whole<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    optional_u64(deserializer)?.ok_or_else(|| D::Error::invalid_type(Unexpected::Unit, &"a number"))
}

/// A required whole number that fits a `u32` (see [`optional_u64`]).
pub fn u32_whole<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u32, D::Error> {
    optional_u32(deserializer)?.ok_or_else(|| D::Error::invalid_type(Unexpected::Unit, &"a number"))
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    struct Body {
        #[serde(default, deserialize_with = "super::optional_u64")]
        seconds: Option<u64>,
    }

    fn seconds(json: &str) -> Result<Option<u64>, serde_json::Error> {
        serde_json::from_str::<Body>(json).map(|b| b.seconds)
    }

    #[test]
    fn whole_numbers_are_read_with_or_without_a_zero_fraction() {
        assert_eq!(seconds(r#"{"seconds": 3600}"#).unwrap(), Some(3600));
        assert_eq!(seconds(r#"{"seconds": 3600.0}"#).unwrap(), Some(3600));
        assert_eq!(seconds(r#"{"seconds": 36e2}"#).unwrap(), Some(3600));
        assert_eq!(seconds(r#"{"seconds": null}"#).unwrap(), None);
        assert_eq!(seconds("{}").unwrap(), None);
    }

    #[test]
    fn fractions_negatives_and_other_types_are_refused() {
        for json in [
            r#"{"seconds": 1.5}"#,
            r#"{"seconds": -1}"#,
            r#"{"seconds": -1.0}"#,
            r#"{"seconds": 1e30}"#,
            r#"{"seconds": "60"}"#,
        ] {
            assert!(seconds(json).is_err(), "{json}");
        }
    }
}
