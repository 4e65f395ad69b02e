//! Geo permissions: which countries an account may send to (from the number's calling code)
//! and which number ranges it never sends to.

use super::document::Destinations;
use super::{Outgoing, Violation, recipient_field};

pub const NOT_ALLOWED: &str = "destination_not_allowed";
pub const BLOCKED: &str = "destination_blocked";

/// Satellite and international networks (+881 GMSS, +882/+883 international networks):
/// numbers of no country, with carrier rates far above any country's, the first choice of
/// SMS pumping. Off unless the account allows high-risk destinations.
pub const HIGH_RISK_PREFIXES: &[&str] = &["+881", "+882", "+883"];

/// Countries often reported in SMS pumping (artificially inflated traffic) for their high
/// termination rates. A starting point, not a verdict: an account that does business there
/// lists them in `allowed_countries` or sets `allow_high_risk`.
pub const HIGH_RISK_COUNTRIES: &[&str] = &["AZ", "CU", "KG", "SO", "TJ", "TM", "UZ"];

/// Whether `to` (E.164) is in the built-in high-risk set.
pub fn is_high_risk(to: &str, country: Option<&str>) -> bool {
    HIGH_RISK_PREFIXES.iter().any(|p| to.starts_with(p))
        || country.is_some_and(|c| HIGH_RISK_COUNTRIES.contains(&c))
}

pub fn check(rules: &Destinations, message: &Outgoing<'_>, out: &mut Vec<Violation>) {
    for (i, to) in message.recipients.iter().enumerate() {
        let number = to.as_str();
        if let Some(prefix) = rules
            .blocked_prefixes
            .iter()
            .find(|p| number.starts_with(p.as_str()))
        {
            out.push(Violation {
                code: BLOCKED,
                message: format!("numbers starting {prefix} are blocked for this account"),
                rule: "destinations.blocked_prefixes",
                field: Some(recipient_field(message, i)),
            });
            continue;
        }
        let country = to.country();
        let allowed = match &rules.allowed_countries {
            Some(list) => country.is_some_and(|c| list.iter().any(|a| a == c)),
            None => rules.allow_high_risk || !is_high_risk(number, country),
        };
        if !allowed {
            let (rule, what) = match &rules.allowed_countries {
                Some(_) => (
                    "destinations.allowed_countries",
                    "not in the account's allowed countries",
                ),
                None => (
                    "destinations.high_risk",
                    "a high-risk destination, off by default",
                ),
            };
            out.push(Violation {
                code: NOT_ALLOWED,
                message: format!("{} is {what}", country.unwrap_or("this network")),
                rule,
                field: Some(recipient_field(message, i)),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{codes, outgoing};
    use super::*;

    fn decide(rules: &Destinations, to: &[&str]) -> Vec<&'static str> {
        let (numbers, sender, body) = outgoing(to, "Acme", "hello");
        let message = super::super::tests::message(&numbers, &sender, &body);
        let mut out = Vec::new();
        check(rules, &message, &mut out);
        codes(&out)
    }

    #[test]
    fn by_default_every_country_but_the_high_risk_set_is_allowed() {
        let rules = Destinations::default();
        let cases: &[(&str, &[&str])] = &[
            ("+447400123456", &[]),
            ("+12025550123", &[]),
            ("+998901234567", &[NOT_ALLOWED]),
            ("+8816212345678", &[NOT_ALLOWED]),
        ];
        for (to, want) in cases {
            assert_eq!(decide(&rules, &[to]), *want, "{to}");
        }
    }

    #[test]
    fn allowing_high_risk_opens_the_built_in_set() {
        let rules = Destinations {
            allow_high_risk: true,
            ..Destinations::default()
        };
        assert!(decide(&rules, &["+998901234567", "+8816212345678"]).is_empty());
    }

    #[test]
    fn an_allowlist_admits_only_its_countries() {
        let rules = Destinations {
            allowed_countries: Some(vec!["GB".into(), "UZ".into()]),
            ..Destinations::default()
        };
        let cases: &[(&str, &[&str])] = &[
            ("+447400123456", &[]),
            ("+998901234567", &[]),
            ("+12025550123", &[NOT_ALLOWED]),
            ("+8816212345678", &[NOT_ALLOWED]),
        ];
        for (to, want) in cases {
            assert_eq!(decide(&rules, &[to]), *want, "{to}");
        }
    }

    #[test]
    fn blocked_prefixes_refuse_their_range_only() {
        let rules = Destinations {
            blocked_prefixes: vec!["+4474001".into()],
            ..Destinations::default()
        };
        assert_eq!(
            decide(&rules, &["+447400123456", "+33612345678"]),
            [BLOCKED]
        );
    }
}
