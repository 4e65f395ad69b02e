//! Layer 4, business rules: the one decision every send passes before anything is stored.
//!
//! A policy is a pure function of the message and a snapshot of the account's state: no I/O
//! inside, so every rule can be table-tested. Today the only policy allows everything; the
//! business-layer rules (spend, destinations, opt-out, quiet hours, senders) fill it in.

pub mod opt_out;
pub mod pumping;

use crate::messaging::{MessageBody, PhoneNumber, SenderId};

/// What a policy knows about the sending account, read before the decision.
#[derive(Debug, Clone)]
pub struct AccountSnapshot {
    pub account_id: String,
}

/// A send request, parsed, as the policy sees it.
#[derive(Debug)]
pub struct Outgoing<'a> {
    pub recipients: &'a [PhoneNumber],
    pub sender: &'a SenderId,
    pub body: &'a MessageBody,
    /// When the message is to leave, epoch milliseconds (now unless scheduled).
    pub send_at: crate::clock::Millis,
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

/// The policy's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Allow,
    Deny(Vec<Violation>),
}

/// A business policy.
pub trait Policy: Send + Sync + 'static {
    /// Decides whether `message` may be sent by the account described by `account`.
    fn decide(&self, account: &AccountSnapshot, message: &Outgoing<'_>) -> Decision;
}

/// Allows every message (until the business rules are configured).
#[derive(Debug, Clone, Copy, Default)]
pub struct AllowAll;

impl Policy for AllowAll {
    fn decide(&self, _account: &AccountSnapshot, _message: &Outgoing<'_>) -> Decision {
        Decision::Allow
    }
}
