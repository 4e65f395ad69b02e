//! Messages Rampart sends on its own behalf to people (sign-in codes, phone checks, reset
//! links), through its own delivery pipeline: durable, routed and receipted like any message,
//! sealed at rest, and kept out of every account (they belong to the instance, so no
//! account's API lists them).

use super::audit::{Actor, Caller};
use super::messages::{SendOutcome, SendRequest};
use super::{App, AppError};
use crate::identity::{Scope, Scopes};
use crate::network::ip::IpList;

/// The sender ID of Rampart's own messages.
pub const NOTICE_SENDER: &str = "Rampart";
/// How long a notice may wait for a carrier before it is pointless (a code lives 5 minutes).
const NOTICE_VALIDITY_SECONDS: u64 = 300;

impl App {
    /// Queues a notice to `to` (E.164); returns the message id.
    pub(crate) async fn send_notice(&self, to: &str, body: String) -> Result<String, AppError> {
        let instance = Caller {
            actor: Actor::System,
            account_id: String::new(),
            scopes: [Scope::MessagesSend].into_iter().collect::<Scopes>(),
            client_ip: None,
            allowed_ips: IpList::default(),
            user_id: None,
            role: None,
            expires_at: None,
            session: None,
            client_cert_sha256: None,
        };
        let request = SendRequest {
            to: vec![to.to_owned()],
            to_is_list: false,
            from: NOTICE_SENDER.to_owned(),
            body,
            send_at: None,
            validity_period: Some(NOTICE_VALIDITY_SECONDS),
            client_ref: None,
            category: Some("otp".to_owned()),
            idempotency: None,
        };
        match self.send_messages(&instance, request).await? {
            SendOutcome::Accepted(accepted) | SendOutcome::Replayed(accepted) => accepted
                .into_iter()
                .next()
                .map(|m| m.id)
                .ok_or_else(|| AppError::Setup("a notice was not queued".into())),
        }
    }
}
