//! The time zone of a number's country, for quiet hours. A country spanning several zones
//! takes its most populous one (the United States: New York; Russia: Moscow; Brazil:
//! São Paulo; ...): a number does not say where in the country its owner is. A country
//! missing from the table, and numbers of no country, use UTC.

use std::collections::HashMap;
use std::sync::LazyLock;

use jiff::tz::TimeZone;

/// ISO 3166 alpha-2 → IANA zone.
const ZONES: &[(&str, &str)] = &[
    ("AE", "Asia/Dubai"),
    ("AR", "America/Argentina/Buenos_Aires"),
    ("AT", "Europe/Vienna"),
    ("AU", "Australia/Sydney"),
    ("BD", "Asia/Dhaka"),
    ("BE", "Europe/Brussels"),
    ("BG", "Europe/Sofia"),
    ("BR", "America/Sao_Paulo"),
    ("CA", "America/Toronto"),
    ("CH", "Europe/Zurich"),
    ("CL", "America/Santiago"),
    ("CN", "Asia/Shanghai"),
    ("CO", "America/Bogota"),
    ("CZ", "Europe/Prague"),
    ("DE", "Europe/Berlin"),
    ("DK", "Europe/Copenhagen"),
    ("DZ", "Africa/Algiers"),
    ("EG", "Africa/Cairo"),
    ("ES", "Europe/Madrid"),
    ("FI", "Europe/Helsinki"),
    ("FR", "Europe/Paris"),
    ("GB", "Europe/London"),
    ("GG", "Europe/Guernsey"),
    ("GH", "Africa/Accra"),
    ("GR", "Europe/Athens"),
    ("HK", "Asia/Hong_Kong"),
    ("HU", "Europe/Budapest"),
    ("ID", "Asia/Jakarta"),
    ("IE", "Europe/Dublin"),
    ("IL", "Asia/Jerusalem"),
    ("IM", "Europe/Isle_of_Man"),
    ("IN", "Asia/Kolkata"),
    ("IT", "Europe/Rome"),
    ("JE", "Europe/Jersey"),
    ("JP", "Asia/Tokyo"),
    ("KE", "Africa/Nairobi"),
    ("KR", "Asia/Seoul"),
    ("KZ", "Asia/Almaty"),
    ("LK", "Asia/Colombo"),
    ("MA", "Africa/Casablanca"),
    ("MX", "America/Mexico_City"),
    ("MY", "Asia/Kuala_Lumpur"),
    ("NG", "Africa/Lagos"),
    ("NL", "Europe/Amsterdam"),
    ("NO", "Europe/Oslo"),
    ("NZ", "Pacific/Auckland"),
    ("PE", "America/Lima"),
    ("PH", "Asia/Manila"),
    ("PK", "Asia/Karachi"),
    ("PL", "Europe/Warsaw"),
    ("PT", "Europe/Lisbon"),
    ("RO", "Europe/Bucharest"),
    ("RS", "Europe/Belgrade"),
    ("RU", "Europe/Moscow"),
    ("SA", "Asia/Riyadh"),
    ("SE", "Europe/Stockholm"),
    ("SG", "Asia/Singapore"),
    ("TH", "Asia/Bangkok"),
    ("TR", "Europe/Istanbul"),
    ("TW", "Asia/Taipei"),
    ("UA", "Europe/Kyiv"),
    ("US", "America/New_York"),
    ("VN", "Asia/Ho_Chi_Minh"),
    ("ZA", "Africa/Johannesburg"),
];

/// Zones parsed once from the bundled tz database.
static PARSED: LazyLock<HashMap<&'static str, TimeZone>> = LazyLock::new(|| {
    ZONES
        .iter()
        .filter_map(|(country, name)| Some((*country, TimeZone::get(name).ok()?)))
        .collect()
});

/// The zone quiet hours are counted in for a number of `country`.
pub fn zone_of(country: Option<&str>) -> TimeZone {
    country
        .and_then(|c| PARSED.get(c))
        .cloned()
        .unwrap_or(TimeZone::UTC)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_zone_of_the_table_is_in_the_bundled_database() {
        for (country, name) in ZONES {
            assert!(TimeZone::get(name).is_ok(), "{country} {name}");
        }
        assert_eq!(
            ZONES.windows(2).filter(|w| w[0].0 >= w[1].0).count(),
            0,
            "sorted, once each"
        );
    }

    #[test]
    fn unknown_countries_and_numbers_of_no_country_use_utc() {
        assert_eq!(zone_of(None), TimeZone::UTC);
        assert_eq!(zone_of(Some("AQ")), TimeZone::UTC);
        assert_eq!(zone_of(Some("GB")).iana_name(), Some("Europe/London"));
    }
}
