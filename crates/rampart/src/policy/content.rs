//! Content: how long a message may be, words it may not say, links through URL shorteners
//! (they hide where a link goes, a favourite of phishing), and the opt-out footer every
//! marketing message carries.

use super::document::Content;
use super::{Category, Outgoing, Violation};

pub const TOO_MANY_SEGMENTS: &str = "too_many_segments";
pub const BLOCKED: &str = "content_blocked";
pub const URL_SHORTENER: &str = "url_shortener_blocked";
pub const FOOTER_MISSING: &str = "opt_out_footer_missing";

/// The shorteners refused when `block_url_shorteners` is set.
pub const URL_SHORTENERS: &[&str] = &[
    "bit.ly",
    "tinyurl.com",
    "t.co",
    "goo.gl",
    "ow.ly",
    "is.gd",
    "buff.ly",
    "rebrand.ly",
];

fn body_violation(code: &'static str, rule: &'static str, message: String) -> Violation {
    Violation {
        code,
        message,
        rule,
        field: Some("body".to_owned()),
    }
}

pub fn check(rules: &Content, message: &Outgoing<'_>, out: &mut Vec<Violation>) {
    let segments = message.body.info().segments;
    if let Some(max) = rules.max_segments
        && segments > max as usize
    {
        out.push(body_violation(
            TOO_MANY_SEGMENTS,
            "content.max_segments",
            format!("the body takes {segments} segments; this account allows {max}"),
        ));
    }
    let wants_footer = message.category == Category::Marketing;
    if rules.blocked_words.is_empty() && !rules.block_url_shorteners && !wants_footer {
        return;
    }
    let text = message.body.as_str().to_lowercase();
    if rules
        .blocked_words
        .iter()
        .any(|w| contains_word(&text, &w.to_lowercase()))
    {
        // The word itself is not repeated: the answer may be logged by the client.
        out.push(body_violation(
            BLOCKED,
            "content.blocked_words",
            "the body contains a word this account blocks".to_owned(),
        ));
    }
    if rules.block_url_shorteners && URL_SHORTENERS.iter().any(|d| contains_domain(&text, d)) {
        out.push(body_violation(
            URL_SHORTENER,
            "content.block_url_shorteners",
            "links through URL shorteners are blocked; link to the destination itself".to_owned(),
        ));
    }
    if wants_footer && !text.contains(&rules.marketing_opt_out_footer.to_lowercase()) {
        out.push(body_violation(
            FOOTER_MISSING,
            "content.marketing_opt_out_footer",
            format!(
                "a marketing message must tell how to opt out (contain `{}`)",
                rules.marketing_opt_out_footer
            ),
        ));
    }
}

/// Whether `word` occurs in `text` with no letter or digit on either side.
fn contains_word(text: &str, word: &str) -> bool {
    let edge = |c: Option<char>| !c.is_some_and(char::is_alphanumeric);
    text.match_indices(word).any(|(at, w)| {
        edge(text[..at].chars().next_back()) && edge(text[at + w.len()..].chars().next())
    })
}

/// Whether `domain` occurs as a host: not inside a longer name (`at.com` is not `t.co`).
fn contains_domain(text: &str, domain: &str) -> bool {
    let host_char = |c: char| c.is_alphanumeric() || c == '.' || c == '-';
    text.match_indices(domain).any(|(at, d)| {
        !text[..at].chars().next_back().is_some_and(host_char)
            && !text[at + d.len()..]
                .chars()
                .next()
                .is_some_and(|c| c.is_alphanumeric() || c == '-')
    })
}

#[cfg(test)]
mod tests {
    use super::super::tests::{codes, message, outgoing};
    use super::*;

    fn decide(rules: &Content, category: Category, body: &str) -> Vec<&'static str> {
        let (to, sender, body) = outgoing(&["+447400123456"], "Acme", body);
        let mut message = message(&to, &sender, &body);
        message.category = category;
        let mut out = Vec::new();
        check(rules, &message, &mut out);
        codes(&out)
    }

    #[test]
    fn bodies_longer_than_the_accounts_segments_are_refused() {
        let rules = Content {
            max_segments: Some(1),
            ..Content::default()
        };
        let t = Category::Transactional;
        assert!(decide(&rules, t, &"a".repeat(160)).is_empty());
        assert_eq!(decide(&rules, t, &"a".repeat(161)), [TOO_MANY_SEGMENTS]);
    }

    #[test]
    fn blocked_words_match_whole_words_in_any_case() {
        let rules = Content {
            blocked_words: vec!["Casino".into(), "free money".into()],
            ..Content::default()
        };
        let t = Category::Transactional;
        let cases: &[(&str, &[&str])] = &[
            ("Visit our CASINO tonight", &[BLOCKED]),
            ("casino!", &[BLOCKED]),
            ("Get FREE MONEY now", &[BLOCKED]),
            ("casinos are not a whole word", &[]),
            ("occasional", &[]),
            ("your code is 1234", &[]),
        ];
        for (body, want) in cases {
            assert_eq!(decide(&rules, t, body), *want, "{body}");
        }
    }

    #[test]
    fn url_shorteners_are_refused_only_when_the_account_blocks_them() {
        let on = Content {
            block_url_shorteners: true,
            ..Content::default()
        };
        let t = Category::Transactional;
        let cases: &[(&str, &[&str])] = &[
            ("see https://bit.ly/3xyz", &[URL_SHORTENER]),
            ("see T.CO/abc", &[URL_SHORTENER]),
            ("tinyurl.com", &[URL_SHORTENER]),
            ("see https://example.com/a", &[]),
            ("mail me at.com or at t.com", &[]),
            ("see https://notbit.ly/x", &[]),
        ];
        for (body, want) in cases {
            assert_eq!(decide(&on, t, body), *want, "{body}");
        }
        assert!(decide(&Content::default(), t, "https://bit.ly/3xyz").is_empty());
    }

    #[test]
    fn marketing_must_carry_the_opt_out_footer_and_other_categories_need_not() {
        let rules = Content::default();
        let cases: &[(Category, &str, &[&str])] = &[
            (
                Category::Marketing,
                "Sale today. Reply STOP to opt out",
                &[],
            ),
            (Category::Marketing, "Sale today. reply stop to end", &[]),
            (Category::Marketing, "Sale today", &[FOOTER_MISSING]),
            (Category::Transactional, "Your parcel is here", &[]),
            (Category::Otp, "Your code is 123456", &[]),
        ];
        for (category, body, want) in cases {
            assert_eq!(decide(&rules, *category, body), *want, "{body}");
        }
    }
}
