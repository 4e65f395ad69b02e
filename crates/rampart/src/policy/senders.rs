//! Sender IDs: an account sends only as the names registered in its document and from the
//! numbers assigned to it. With no name registered the rule is off (any sender), as before
//! the rule existed.

use super::document::Senders;
use super::{Outgoing, Violation};
use crate::messaging::SenderId;

pub const NOT_ALLOWED: &str = "sender_not_allowed";

pub fn check(
    rules: &Senders,
    numbers: &[String],
    message: &Outgoing<'_>,
    out: &mut Vec<Violation>,
) {
    if rules.sender_ids.is_empty() {
        return;
    }
    let allowed = match message.sender {
        SenderId::Alphanumeric(name) => rules.sender_ids.iter().any(|s| s == name),
        SenderId::Number(n) => numbers.iter().any(|a| a == n.as_str()),
        SenderId::ShortCode(code) => numbers.iter().any(|a| a == code),
    };
    if !allowed {
        out.push(Violation {
            code: NOT_ALLOWED,
            message: "the sender is neither registered to the account nor one of its numbers"
                .to_owned(),
            rule: "senders.sender_ids",
            field: Some("from".to_owned()),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{codes, message, outgoing};
    use super::*;

    #[test]
    fn registered_names_and_assigned_numbers_may_send_and_nothing_else() {
        let rules = Senders {
            sender_ids: vec!["Acme".into()],
        };
        let numbers = vec!["+447400123401".to_owned(), "60123".to_owned()];
        let cases: &[(&str, &[&str])] = &[
            ("Acme", &[]),
            ("+447400123401", &[]),
            ("60123", &[]),
            ("Other", &[NOT_ALLOWED]),
            ("acme", &[NOT_ALLOWED]),
            ("+447400123402", &[NOT_ALLOWED]),
        ];
        for (from, want) in cases {
            let (to, sender, body) = outgoing(&["+447400123456"], from, "hi");
            let mut out = Vec::new();
            check(&rules, &numbers, &message(&to, &sender, &body), &mut out);
            assert_eq!(codes(&out), *want, "{from}");
        }
    }

    #[test]
    fn without_a_registered_name_any_sender_is_allowed() {
        let (to, sender, body) = outgoing(&["+447400123456"], "Anything", "hi");
        let mut out = Vec::new();
        check(
            &Senders::default(),
            &[],
            &message(&to, &sender, &body),
            &mut out,
        );
        assert!(out.is_empty());
    }
}
