//! The pool of destination numbers the load generator cycles through: distinct, valid mobile
//! numbers spread over several countries, so the server's number parsing, geo rules and
//! per-destination bookkeeping see realistic, non-repeating traffic.

use anyhow::{Result, ensure};

/// Largest pool we generate; every numbering plan below holds far more than its share of this.
pub const MAX_POOL_SIZE: usize = 1_000_000;

/// One block of a national numbering plan: a fixed prefix followed by `digits` subscriber digits.
struct NumberBlock {
    /// ISO 3166-1 alpha-2, lower case, as given to `--countries`.
    country: &'static str,
    prefix: &'static str,
    digits: u32,
    /// Rejects subscriber parts that are valid digits but not valid numbers in this plan.
    accepts: fn(&str) -> bool,
}

fn any_subscriber(_: &str) -> bool {
    true
}

/// NANP exchange codes: not 0xx/1xx, not N11 service codes, and not the 555 fiction exchange.
fn nanp_exchange(subscriber: &str) -> bool {
    let exchange = subscriber.as_bytes();
    exchange.len() >= 3
        && exchange[0] >= b'2'
        && !(exchange[1] == b'1' && exchange[2] == b'1')
        && &exchange[..3] != b"555"
}

/// Mobile ranges as libphonenumber knows them (checked by a test against the `phonenumber` crate,
/// the parser the server uses). The UK drama range +447700900xxx is deliberately not used: it is
/// reserved for fiction and too small for a pool.
const BLOCKS: [NumberBlock; 8] = [
    block("gb", "+447900", 6, any_subscriber),
    block("fr", "+33612", 6, any_subscriber),
    block("de", "+49151", 8, any_subscriber), // T-Mobile
    block("us", "+1212", 7, nanp_exchange),   // New York
    block("gb", "+447400", 6, any_subscriber),
    block("fr", "+3375", 7, any_subscriber),
    block("de", "+49170", 7, any_subscriber),
    block("us", "+1415", 7, nanp_exchange), // San Francisco
];

const fn block(
    country: &'static str,
    prefix: &'static str,
    digits: u32,
    accepts: fn(&str) -> bool,
) -> NumberBlock {
    NumberBlock {
        country,
        prefix,
        digits,
        accepts,
    }
}

/// Odd and not a multiple of five, so multiplying by it permutes `0..10^d` for every `d`: the
/// numbers come out scattered over each block instead of as a sequential run, which an
/// SMS-pumping detector would rightly find suspicious.
const SCATTER: u64 = 7_654_321;

/// Countries the pool can draw from.
pub const COUNTRIES: [&str; 4] = ["gb", "fr", "de", "us"];

/// Generates `size` distinct valid E.164 numbers, round-robin over the blocks of `countries`.
pub fn generate_pool(size: usize, countries: &[String]) -> Result<Vec<String>> {
    ensure!(size >= 1, "the number pool needs at least one number");
    ensure!(
        size <= MAX_POOL_SIZE,
        "the number pool is limited to {MAX_POOL_SIZE} numbers"
    );
    for country in countries {
        ensure!(
            COUNTRIES.contains(&country.as_str()),
            "no numbers for country `{country}`: choose among {}",
            COUNTRIES.join(",")
        );
    }
    let blocks: Vec<usize> = (0..BLOCKS.len())
        .filter(|&b| countries.iter().any(|c| c == BLOCKS[b].country))
        .collect();
    ensure!(!blocks.is_empty(), "no country to draw numbers from");
    let mut next_serial = [0_u64; BLOCKS.len()];
    let mut pool = Vec::with_capacity(size);
    for index in 0..size {
        let slot = blocks[index % blocks.len()];
        let block = &BLOCKS[slot];
        let capacity = 10_u64.pow(block.digits);
        loop {
            let serial = next_serial[slot];
            ensure!(
                serial < capacity,
                "number block {} is exhausted",
                block.prefix
            );
            next_serial[slot] += 1;
            let subscriber = format!(
                "{:0width$}",
                (serial * SCATTER) % capacity,
                width = block.digits as usize
            );
            if (block.accepts)(&subscriber) {
                pool.push(format!("{}{subscriber}", block.prefix));
                break;
            }
        }
    }
    Ok(pool)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn all() -> Vec<String> {
        COUNTRIES.iter().map(|c| c.to_string()).collect()
    }

    #[test]
    fn pool_numbers_are_distinct_and_of_the_requested_size() {
        let pool = generate_pool(50_000, &all()).unwrap();
        assert_eq!(pool.len(), 50_000);
        let distinct: HashSet<&String> = pool.iter().collect();
        assert_eq!(distinct.len(), pool.len());
    }

    #[test]
    fn every_pool_number_is_a_valid_mobile_or_nanp_number() {
        for number in generate_pool(4_000, &all()).unwrap() {
            let parsed = phonenumber::parse(None, &number)
                .unwrap_or_else(|e| panic!("{number} does not parse: {e}"));
            assert!(phonenumber::is_valid(&parsed), "{number} is not valid");
            let kind = parsed.number_type(&phonenumber::metadata::DATABASE);
            assert!(
                matches!(
                    kind,
                    phonenumber::Type::Mobile | phonenumber::Type::FixedLineOrMobile
                ),
                "{number} is {kind:?}, not a mobile number"
            );
        }
    }

    #[test]
    fn pool_covers_four_countries() {
        let pool = generate_pool(16, &all()).unwrap();
        for prefix in ["+44", "+33", "+49", "+1"] {
            assert!(
                pool.iter().any(|n| n.starts_with(prefix)),
                "no {prefix} number"
            );
        }
    }

    #[test]
    fn pool_can_be_limited_to_chosen_countries() {
        let pool = generate_pool(1_000, &["gb".to_string()]).unwrap();
        assert!(pool.iter().all(|n| n.starts_with("+447")));
        assert_eq!(pool.iter().collect::<HashSet<_>>().len(), 1_000);
        assert!(generate_pool(10, &["xx".to_string()]).is_err());
    }

    #[test]
    fn nanp_service_and_fiction_exchanges_are_skipped() {
        assert!(!nanp_exchange("5550123"));
        assert!(!nanp_exchange("4110000"));
        assert!(!nanp_exchange("1234567"));
        assert!(nanp_exchange("2345678"));
    }

    #[test]
    fn empty_and_oversized_pools_are_refused() {
        assert!(generate_pool(0, &all()).is_err());
        assert!(generate_pool(MAX_POOL_SIZE + 1, &all()).is_err());
    }
}
