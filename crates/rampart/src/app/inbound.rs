//! Use cases of inbound messages: read and list what handsets sent to the account's numbers,
//! and list those numbers.

use std::fmt;

use super::audit::Caller;
use super::messages::{Page, page_size};
use super::{App, AppError};
use crate::clock::Millis;
use crate::data::sealing::Field;
use crate::identity::Scope;
use crate::messaging::PhoneNumber;
use crate::messaging::phone::mask;
use crate::store::inbound::{InboundFilter, InboundRecord};
use crate::store::routing::NumberRecord;

/// An inbound message, opened for its owner.
#[derive(Clone)]
pub struct InboundMessage {
    pub id: String,
    /// The sender: E.164 when the carrier gave an international number.
    pub from: String,
    /// The account's number it was sent to.
    pub to: String,
    /// `None` once retention erased it.
    pub body: Option<String>,
    /// When retention erased the body.
    pub body_erased_at: Option<Millis>,
    /// The connector it arrived on.
    pub connector: String,
    pub received_at: Millis,
}

/// Filters for listing inbound messages, as the caller wrote them.
#[derive(Default)]
pub struct InboundQuery {
    pub from: Option<String>,
    pub to: Option<String>,
    pub limit: Option<usize>,
    pub cursor: Option<String>,
}

// Debug never shows a full phone number or a message text: these values reach logs.

impl fmt::Debug for InboundMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InboundMessage")
            .field("id", &self.id)
            .field("from", &mask(&self.from))
            .field("to", &mask(&self.to))
            .field("body_chars", &self.body.as_ref().map(|b| b.chars().count()))
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for InboundQuery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InboundQuery")
            .field("from", &self.from.as_deref().map(mask))
            .field("to", &self.to.as_deref().map(mask))
            .field("limit", &self.limit)
            .finish_non_exhaustive()
    }
}

impl App {
    /// The caller's inbound messages, newest first.
    pub async fn list_inbound(
        &self,
        caller: &Caller,
        query: InboundQuery,
    ) -> Result<Page<InboundMessage>, AppError> {
        caller.require(Scope::InboundRead)?;
        let limit = page_size(query.limit)?;
        // Senders are indexed in the form they are stored in: E.164 when they parse as such.
        let from_index = query.from.map(|from| {
            let from = PhoneNumber::parse(&from)
                .map(|n| n.as_str().to_owned())
                .unwrap_or_else(|_| from.trim().to_owned());
            self.sealer.phone_index(&caller.account_id, &from)
        });
        let filter = InboundFilter {
            from_index,
            to_number: query.to,
            before_id: query.cursor,
            limit: limit + 1,
        };
        let account = caller.account_id.clone();
        let rows = self
            .store
            .read_blocking(move |tx| tx.list_inbound(&account, &filter))
            .await?;
        Page::cut(rows, limit, |m| &m.id).try_map(|row| self.open_inbound(row))
    }

    /// One inbound message of the caller's account.
    pub fn get_inbound(&self, caller: &Caller, id: &str) -> Result<InboundMessage, AppError> {
        caller.require(Scope::InboundRead)?;
        let row = self
            .store
            .read(|tx| tx.get_inbound(&caller.account_id, id))?
            .ok_or(AppError::NotFound("inbound message"))?;
        self.open_inbound(row)
    }

    /// The caller's numbers: messages sent to them arrive in its inbound list.
    pub fn list_account_numbers(&self, caller: &Caller) -> Result<Vec<NumberRecord>, AppError> {
        caller.require(Scope::InboundRead)?;
        Ok(self
            .store
            .read(|tx| tx.list_numbers(Some(&caller.account_id)))?)
    }

    fn open_inbound(&self, row: InboundRecord) -> Result<InboundMessage, AppError> {
        let (account, id) = (&row.account_id, &row.id);
        let from = self
            .sealer
            .open_string(Field::InboundFrom, account, id, &row.from_sealed)?;
        let body = match row.body_erased_at {
            Some(_) => None,
            None => {
                Some(
                    self.sealer
                        .open_string(Field::InboundBody, account, id, &row.body_sealed)?,
                )
            }
        };
        Ok(InboundMessage {
            from,
            to: row.to_number,
            body,
            body_erased_at: row.body_erased_at,
            connector: row.connector,
            received_at: row.received_at,
            id: row.id,
        })
    }
}
