//! Masking for `Debug` output: the crate's types carry phone numbers and message bodies, and a
//! stray `{:?}` in a log line must not leak them.

/// Masks all but the first four and the last two characters of an address (`4477******23`):
/// enough to tell numbers apart in a log, not enough to reach anyone. Addresses of six
/// characters or fewer (short codes) are masked whole.
pub(crate) fn mask(addr: &str) -> String {
    let count = addr.chars().count();
    if count <= 6 {
        return "*".repeat(count);
    }
    addr.chars()
        .enumerate()
        .map(|(i, c)| if i < 4 || i + 2 >= count { c } else { '*' })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_keep_four_leading_and_two_trailing_digits() {
        assert_eq!(mask("447700900123"), "4477******23");
        assert_eq!(mask("1234567"), "1234*67");
    }

    #[test]
    fn short_codes_are_masked_whole() {
        assert_eq!(mask("12345"), "*****");
        assert_eq!(mask(""), "");
    }

    #[test]
    fn multibyte_characters_are_counted_not_split() {
        assert_eq!(mask("Zürich-Bank"), "Züri*****nk");
    }
}
