//! Acting on keywords handsets send to an account's numbers: STOP opts the sender out (of the
//! account, or of that number when the account's scope is `per_sender`), START opts it back
//! in, HELP gets the account's help text. STOP and START are confirmed by SMS; every reply
//! goes through the ordinary pipeline, from the number that received the keyword.

use std::sync::Arc;

use tokio::sync::mpsc;

use super::audit::{Actor, Caller};
use super::messages::{SendOutcome, SendRequest};
use super::opt_outs::OptOutSource;
use super::{App, AppError};
use crate::delivery::recorder::InboundKeyword;
use crate::identity::{Scope, Scopes};
use crate::messaging::PhoneNumber;
use crate::messaging::keywords::Keyword;
use crate::network::ip::IpList;
use crate::policy::opt_out_list::OptOutScope;

/// Keywords waiting to be acted on; more are stored as inbound messages only.
pub const KEYWORD_QUEUE: usize = 1024;

impl App {
    /// Acts on keywords as delivery records them, until it drops its sender.
    pub async fn act_on_keywords(self: Arc<Self>, mut keywords: mpsc::Receiver<InboundKeyword>) {
        while let Some(keyword) = keywords.recv().await {
            let (inbound_id, word) = (keyword.inbound_id.clone(), keyword.keyword.as_str());
            match self.act_on_keyword(keyword).await {
                Ok(reply) => {
                    metrics::counter!("rampart_inbound_keywords_total", "keyword" => word)
                        .increment(1);
                    tracing::info!(inbound_id, keyword = word, reply = ?reply, "keyword acted on");
                }
                Err(e) => {
                    tracing::warn!(inbound_id, keyword = word, error = %e, "cannot act on a keyword");
                }
            }
        }
    }

    /// Acts on one keyword; the id of the reply queued, if any (none when the account turned
    /// keywords off, or the sender is no phone number to answer).
    pub async fn act_on_keyword(
        &self,
        keyword: InboundKeyword,
    ) -> Result<Option<String>, AppError> {
        let settings = self.opt_out_settings(&keyword.account_id)?;
        if !settings.enabled {
            return Ok(None);
        }
        let Ok(number) = PhoneNumber::parse(&keyword.from) else {
            return Ok(None);
        };
        let caller = replying_caller(&keyword.account_id);
        let reply = match keyword.keyword {
            Keyword::Stop => {
                let sender = match settings.scope {
                    OptOutScope::Account => "",
                    OptOutScope::PerSender => keyword.to_number.as_str(),
                };
                self.opt_out(&caller, &number, sender, OptOutSource::Keyword)
                    .await?;
                settings.stop_text
            }
            Keyword::Start => {
                self.opt_in(&caller, &number, Some(&keyword.to_number))
                    .await?;
                settings.start_text
            }
            Keyword::Help => settings.help_text,
        };
        let request = SendRequest {
            to: vec![number.as_str().to_owned()],
            from: keyword.to_number,
            body: reply,
            ..SendRequest::default()
        };
        match self.send_messages(&caller, request).await? {
            SendOutcome::Accepted(sent) | SendOutcome::Replayed(sent) => {
                Ok(sent.into_iter().next().map(|m| m.id))
            }
        }
    }
}

/// Rampart acting in the account to answer a keyword: it may send, and nothing else.
fn replying_caller(account_id: &str) -> Caller {
    Caller {
        actor: Actor::System,
        account_id: account_id.to_owned(),
        scopes: [Scope::MessagesSend].into_iter().collect::<Scopes>(),
        client_ip: None,
        allowed_ips: IpList::default(),
        user_id: None,
        role: None,
        expires_at: None,
        session: None,
        client_cert_sha256: None,
    }
}
