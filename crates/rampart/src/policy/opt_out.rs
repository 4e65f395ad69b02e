//! Opt-outs: a recipient who asked this account (and sender) to stop gets nothing more. The
//! app layer says who opted out; the rule only refuses.

use super::{Outgoing, Violation, recipient_field};

pub const CODE: &str = "recipient_opted_out";

pub fn check(opted_out: &[bool], message: &Outgoing<'_>, out: &mut Vec<Violation>) {
    for (i, _) in opted_out.iter().enumerate().filter(|(_, opted)| **opted) {
        out.push(Violation {
            code: CODE,
            message: "the recipient opted out of messages from this account".to_owned(),
            rule: "opt_out",
            field: Some(recipient_field(message, i)),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{codes, message, outgoing};
    use super::*;

    #[test]
    fn only_the_recipients_that_opted_out_are_refused() {
        let (to, sender, body) = outgoing(&["+447400123456", "+447400123457"], "Acme", "hi");
        let message = message(&to, &sender, &body);
        let mut out = Vec::new();
        check(&[false, true], &message, &mut out);
        assert_eq!(codes(&out), [CODE]);
        assert_eq!(out[0].field.as_deref(), Some("to[1]"));
        out.clear();
        check(&[], &message, &mut out);
        assert!(out.is_empty());
    }
}
