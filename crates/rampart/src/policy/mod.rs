//! Layer 4, business rules: the one decision every send passes before anything is stored.
//!
//! A policy is a pure function of the message and a snapshot of the account's state: no I/O
//! inside, so every rule can be table-tested. [`Rules`] applies the account's
//! [`PolicyDocument`]: destinations, senders, content, opt-outs, frequency caps and quiet
//! hours, each in its own file. The app layer gathers the snapshot (docs/policy.md).

pub mod content;
pub mod destinations;
pub mod document;
pub mod frequency;
pub mod opt_out;
pub mod opt_out_list;
pub mod pumping;
pub mod quiet_hours;
pub mod senders;
#[cfg(test)]
mod tests;
pub mod zones;

use std::sync::Arc;

pub use document::PolicyDocument;

use crate::clock::Millis;
use crate::messaging::{MessageBody, PhoneNumber, SenderId};

/// What a policy knows about the sending account, read before the decision.
#[derive(Debug, Clone, Default)]
pub struct AccountSnapshot {
    pub account_id: String,
    /// The account's document (the defaults when it has none).
    pub document: Arc<PolicyDocument>,
    /// Numbers assigned to the account; gathered only when the document restricts senders.
    pub numbers: Vec<String>,
    /// Per recipient, in the order of `Outgoing::recipients`: messages accepted for it within
    /// the frequency cap's window (empty when no cap is set).
    pub recent_sends: Vec<u32>,
    /// Per recipient: whether it opted out of this account (and sender). Empty: nobody did.
    pub opted_out: Vec<bool>,
}

impl AccountSnapshot {
    /// An account with no document and no state: the defaults.
    pub fn of(account_id: impl Into<String>) -> Self {
        Self {
            account_id: account_id.into(),
            ..Self::default()
        }
    }
}

/// Why a message is sent, as the caller declares it; marketing meets more rules.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Category {
    #[default]
    Transactional,
    Marketing,
    Otp,
}

impl Category {
    pub const ALL: [Self; 3] = [Self::Transactional, Self::Marketing, Self::Otp];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Transactional => "transactional",
            Self::Marketing => "marketing",
            Self::Otp => "otp",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

/// A send request, parsed, as the policy sees it.
#[derive(Debug)]
pub struct Outgoing<'a> {
    pub recipients: &'a [PhoneNumber],
    pub sender: &'a SenderId,
    pub body: &'a MessageBody,
    /// When the message is to leave, epoch milliseconds (now unless scheduled).
    pub send_at: Millis,
    pub category: Category,
}

/// One broken rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// Stable machine-readable code, e.g. `destination_not_allowed`.
    pub code: &'static str,
    /// A sentence for people.
    pub message: String,
    /// The rule that fired, e.g. `geo.allowlist`.
    pub rule: &'static str,
    /// The request field at fault, when there is one (`to[2]`).
    pub field: Option<String>,
}

/// Every code a rule may answer with: the label values of `rampart_policy_refusals_total`.
pub const CODES: &[&str] = &[
    destinations::NOT_ALLOWED,
    destinations::BLOCKED,
    senders::NOT_ALLOWED,
    content::TOO_MANY_SEGMENTS,
    content::BLOCKED,
    content::URL_SHORTENER,
    content::FOOTER_MISSING,
    quiet_hours::CODE,
    frequency::CODE,
    opt_out::CODE,
];

/// The policy's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Allow,
    /// Allowed, but not before this time (quiet hours): the messages are scheduled.
    Defer(Millis),
    Deny(Vec<Violation>),
}

/// A business policy.
pub trait Policy: Send + Sync + 'static {
    /// Decides whether `message` may be sent by the account described by `account`.
    fn decide(&self, account: &AccountSnapshot, message: &Outgoing<'_>) -> Decision;
}

/// Allows every message.
#[derive(Debug, Clone, Copy, Default)]
pub struct AllowAll;

impl Policy for AllowAll {
    fn decide(&self, _account: &AccountSnapshot, _message: &Outgoing<'_>) -> Decision {
        Decision::Allow
    }
}

/// The rules of the account's document, all of them: every violation is reported, not only
/// the first, so a client can fix a request in one go.
#[derive(Debug, Clone, Copy, Default)]
pub struct Rules;

impl Policy for Rules {
    fn decide(&self, account: &AccountSnapshot, message: &Outgoing<'_>) -> Decision {
        let doc = &account.document;
        let mut violations = Vec::new();
        destinations::check(&doc.destinations, message, &mut violations);
        senders::check(&doc.senders, &account.numbers, message, &mut violations);
        content::check(&doc.content, message, &mut violations);
        opt_out::check(&account.opted_out, message, &mut violations);
        frequency::check(
            doc.frequency_cap,
            &account.recent_sends,
            message,
            &mut violations,
        );
        let deferred = quiet_hours::check(doc.quiet_hours.as_ref(), message, &mut violations);
        match (violations.is_empty(), deferred) {
            (false, _) => Decision::Deny(violations),
            (true, Some(until)) => Decision::Defer(until),
            (true, None) => Decision::Allow,
        }
    }
}

/// The field naming recipient `i` (`to` for a single recipient).
pub(crate) fn recipient_field(message: &Outgoing<'_>, i: usize) -> String {
    if message.recipients.len() == 1 {
        "to".to_owned()
    } else {
        format!("to[{i}]")
    }
}
