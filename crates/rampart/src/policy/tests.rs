//! Helpers for the rules' table tests, and the rules in combination.

use std::sync::Arc;

use super::document::{Content, Destinations, FrequencyCap, QuietAction, QuietHours, Senders};
use super::*;
use crate::messaging::{MessageBody, PhoneNumber, SenderId};

/// Parsed recipients, sender and body, as a send would have them.
pub fn outgoing(to: &[&str], from: &str, body: &str) -> (Vec<PhoneNumber>, SenderId, MessageBody) {
    (
        to.iter().map(|n| PhoneNumber::parse(n).unwrap()).collect(),
        SenderId::parse(from).unwrap(),
        MessageBody::parse(body.to_owned(), 10).unwrap(),
    )
}

/// A transactional message leaving at noon UTC on 15 January 2026.
pub fn message<'a>(
    to: &'a [PhoneNumber],
    sender: &'a SenderId,
    body: &'a MessageBody,
) -> Outgoing<'a> {
    Outgoing {
        recipients: to,
        sender,
        body,
        send_at: 1_768_478_400_000,
        category: Category::Transactional,
    }
}

pub fn codes(violations: &[Violation]) -> Vec<&'static str> {
    violations.iter().map(|v| v.code).collect()
}

fn strict() -> PolicyDocument {
    PolicyDocument {
        destinations: Destinations {
            allowed_countries: Some(vec!["GB".into(), "US".into()]),
            allow_high_risk: false,
            blocked_prefixes: vec!["+4470".into()],
        },
        senders: Senders {
            sender_ids: vec!["Acme".into()],
        },
        content: Content {
            max_segments: Some(1),
            blocked_words: vec!["casino".into()],
            block_url_shorteners: true,
            ..Content::default()
        },
        quiet_hours: Some(QuietHours {
            start: "21:00".into(),
            end: "08:00".into(),
            action: QuietAction::Refuse,
        }),
        frequency_cap: Some(FrequencyCap {
            max_messages: 3,
            window_seconds: 3600,
        }),
    }
}

fn snapshot(document: PolicyDocument) -> AccountSnapshot {
    AccountSnapshot {
        document: Arc::new(document),
        ..AccountSnapshot::of("acc_1")
    }
}

#[test]
fn the_defaults_allow_an_ordinary_message() {
    let (to, sender, body) = outgoing(&["+447400123456"], "Anyone", "Your code is 1234");
    assert_eq!(
        Rules.decide(&AccountSnapshot::of("acc_1"), &message(&to, &sender, &body)),
        Decision::Allow
    );
}

#[test]
fn a_message_within_every_rule_is_allowed() {
    let (to, sender, body) = outgoing(&["+447400123456", "+12125550123"], "Acme", "Hi there");
    let mut account = snapshot(strict());
    account.recent_sends = vec![2, 0];
    account.opted_out = vec![false, false];
    assert_eq!(
        Rules.decide(&account, &message(&to, &sender, &body)),
        Decision::Allow
    );
}

#[test]
fn every_broken_rule_is_reported_at_once() {
    let body = format!("casino https://bit.ly/x {}", "a".repeat(160));
    let (to, sender, body) = outgoing(
        &[
            "+447011123456",
            "+33612345678",
            "+447400123456",
            "+12125550123",
        ],
        "Other",
        &body,
    );
    let mut account = snapshot(strict());
    account.recent_sends = vec![0, 0, 3, 0];
    account.opted_out = vec![false, false, false, true];
    let mut message = message(&to, &sender, &body);
    message.category = Category::Marketing;
    // 22:00 UTC: night in London and Paris, 17:00 in New York.
    message.send_at += 10 * 3_600_000;
    let Decision::Deny(violations) = Rules.decide(&account, &message) else {
        panic!("refused");
    };
    let got: Vec<(&str, Option<&str>)> = violations
        .iter()
        .map(|v| (v.code, v.field.as_deref()))
        .collect();
    assert_eq!(
        got,
        [
            (destinations::BLOCKED, Some("to[0]")),
            (destinations::NOT_ALLOWED, Some("to[1]")),
            (senders::NOT_ALLOWED, Some("from")),
            (content::TOO_MANY_SEGMENTS, Some("body")),
            (content::BLOCKED, Some("body")),
            (content::URL_SHORTENER, Some("body")),
            (content::FOOTER_MISSING, Some("body")),
            (opt_out::CODE, Some("to[3]")),
            (frequency::CODE, Some("to[2]")),
            (quiet_hours::CODE, Some("to[0]")),
            (quiet_hours::CODE, Some("to[1]")),
            (quiet_hours::CODE, Some("to[2]")),
        ]
    );
    for v in &violations {
        assert!(CODES.contains(&v.code), "{}", v.code);
        // Neither a recipient nor a blocked word is repeated back.
        let leaks =
            to.iter().any(|n| v.message.contains(&n.as_str()[3..])) || v.message.contains("casino");
        assert!(!leaks, "{}", v.message);
    }
}

#[test]
fn deferral_applies_only_when_nothing_is_refused() {
    let mut document = strict();
    document.quiet_hours.as_mut().unwrap().action = QuietAction::Defer;
    let (to, sender, good) = outgoing(&["+447400123456"], "Acme", "Sale STOP to end");
    let mut m = message(&to, &sender, &good);
    m.category = Category::Marketing;
    m.send_at += 10 * 3_600_000;
    let account = snapshot(document);
    assert_eq!(
        Rules.decide(&account, &m),
        Decision::Defer(1_768_550_400_000) // 08:00 UTC on the 16th
    );
    let (_, _, bad) = outgoing(&["+447400123456"], "Acme", "Sale");
    m.body = &bad;
    assert!(matches!(Rules.decide(&account, &m), Decision::Deny(v) if v.len() == 1));
}
