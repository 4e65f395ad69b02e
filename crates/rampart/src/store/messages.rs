//! Messages, their delivery parts and receipts. Queries that serve the API are always scoped by
//! account; the queue queries serve the delivery worker.

use rusqlite::{OptionalExtension, Row, params, params_from_iter};

use super::{Db, StoreError};
use crate::clock::Millis;

/// A message ready to be stored (fields already encrypted).
#[derive(Debug, Clone)]
pub struct NewMessage {
    pub id: String,
    pub account_id: String,
    pub to_index: [u8; 16],
    pub to_sealed: Vec<u8>,
    pub sender: String,
    pub body_sealed: Vec<u8>,
    /// `gsm7` or `ucs2`.
    pub encoding: &'static str,
    pub segments: u32,
    pub client_ref: Option<String>,
    pub send_at: Option<Millis>,
    pub valid_until: Option<Millis>,
    pub created_at: Millis,
    /// `transactional`, `marketing` or `otp`.
    pub category: &'static str,
}

/// A stored message (fields still encrypted).
#[derive(Debug, Clone)]
pub struct MessageRecord {
    pub id: String,
    pub account_id: String,
    pub to_sealed: Vec<u8>,
    pub sender: String,
    pub body_sealed: Vec<u8>,
    pub encoding: String,
    pub segments: u32,
    /// A `MessageStatus` name.
    pub status: String,
    pub client_ref: Option<String>,
    pub send_at: Option<Millis>,
    pub valid_until: Option<Millis>,
    pub attempts: u32,
    pub connector: Option<String>,
    pub error_code: Option<String>,
    pub error_detail: Option<String>,
    pub created_at: Millis,
    pub updated_at: Millis,
    pub sent_at: Option<Millis>,
    pub completed_at: Option<Millis>,
    /// When retention erased the body (`body_sealed` is then empty).
    pub body_erased_at: Option<Millis>,
    /// Why it is sent; `None` for messages stored before categories existed.
    pub category: Option<String>,
}

pub(super) const COLUMNS: &str = "id, account_id, to_sealed, sender, body_sealed, encoding, segments, status, client_ref, \
     send_at, valid_until, attempts, connector, error_code, error_detail, created_at, updated_at, sent_at, completed_at, \
     body_erased_at, category";

pub(super) fn from_row(r: &Row<'_>) -> rusqlite::Result<MessageRecord> {
    Ok(MessageRecord {
        id: r.get(0)?,
        account_id: r.get(1)?,
        to_sealed: r.get(2)?,
        sender: r.get(3)?,
        body_sealed: r.get(4)?,
        encoding: r.get(5)?,
        segments: r.get(6)?,
        status: r.get(7)?,
        client_ref: r.get(8)?,
        send_at: r.get(9)?,
        valid_until: r.get(10)?,
        attempts: r.get(11)?,
        connector: r.get(12)?,
        error_code: r.get(13)?,
        error_detail: r.get(14)?,
        created_at: r.get(15)?,
        updated_at: r.get(16)?,
        sent_at: r.get(17)?,
        completed_at: r.get(18)?,
        body_erased_at: r.get(19)?,
        category: r.get(20)?,
    })
}

/// What storing a send request did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Insertion {
    /// The messages were stored.
    Created,
    /// The idempotency key was seen before with the same request: these are its messages.
    Replayed(Vec<String>),
    /// The idempotency key was seen before with a different request.
    KeyReused,
}

/// Filters for listing an account's messages, newest first.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    pub status: Option<&'static str>,
    pub to_index: Option<[u8; 16]>,
    pub client_ref: Option<String>,
    pub created_after: Option<Millis>,
    pub created_before: Option<Millis>,
    /// Only messages with ids below this one (the cursor).
    pub before_id: Option<String>,
    pub limit: usize,
}

/// Messages as the API sees them: always scoped by account.
pub trait Messages {
    /// Stores the messages of one send request, honouring its idempotency key (key and the
    /// request's fingerprint) when it was recorded at `remembered_since` or later; an older
    /// record counts as none and is replaced.
    fn insert_messages(
        &self,
        messages: &[NewMessage],
        idempotency: Option<(&str, &[u8])>,
        remembered_since: Millis,
    ) -> Result<Insertion, StoreError>;
    /// Deletes idempotency records made before `before`; how many went.
    fn expire_idempotency_keys(&self, before: Millis) -> Result<usize, StoreError>;
    /// The messages recorded for this key and request fingerprint since `remembered_since`.
    fn idempotent_messages(
        &self,
        account_id: &str,
        key: &str,
        request_hash: &[u8],
        remembered_since: Millis,
    ) -> Result<Option<Vec<String>>, StoreError>;
    fn get_message(&self, account_id: &str, id: &str) -> Result<Option<MessageRecord>, StoreError>;
    /// The account's messages, newest first.
    fn list_messages(
        &self,
        account_id: &str,
        filter: &ListFilter,
    ) -> Result<Vec<MessageRecord>, StoreError>;
    /// Cancels a message that has not left the queue; false when it is not (or no longer)
    /// queued.
    fn cancel_message(&self, account_id: &str, id: &str, now: Millis) -> Result<bool, StoreError>;
    /// Every account's messages' sealed fields, in insertion order after the row at
    /// `after_seq` (integrity checks; not scoped by account).
    fn sealed_messages_page(
        &self,
        after_seq: i64,
        limit: usize,
    ) -> Result<Vec<(i64, SealedPair)>, StoreError>;
}

/// The two sealed fields of a message or inbound row, with what binds them (integrity checks).
#[derive(Debug, Clone)]
pub struct SealedPair {
    pub id: String,
    pub account_id: String,
    /// `to_sealed` (messages) or `from_sealed` (inbound).
    pub number: Vec<u8>,
    pub body: Vec<u8>,
    /// Retention erased the body: `body` is empty and opens as nothing.
    pub body_erased: bool,
}

impl Messages for Db<'_> {
    fn expire_idempotency_keys(&self, before: Millis) -> Result<usize, StoreError> {
        Ok(self
            .conn()
            .prepare_cached("DELETE FROM idempotency_keys WHERE created_at < ?1")?
            .execute([before])?)
    }

    fn sealed_messages_page(
        &self,
        after_seq: i64,
        limit: usize,
    ) -> Result<Vec<(i64, SealedPair)>, StoreError> {
        let mut stmt = self.conn().prepare_cached(
            "SELECT seq, id, account_id, to_sealed, body_sealed, body_erased_at IS NOT NULL \
             FROM messages \
             WHERE seq > ?1 ORDER BY seq LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![after_seq, limit as i64], |r| {
            Ok((
                r.get(0)?,
                SealedPair {
                    id: r.get(1)?,
                    account_id: r.get(2)?,
                    number: r.get(3)?,
                    body: r.get(4)?,
                    body_erased: r.get(5)?,
                },
            ))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn idempotent_messages(
        &self,
        account_id: &str,
        key: &str,
        request_hash: &[u8],
        remembered_since: Millis,
    ) -> Result<Option<Vec<String>>, StoreError> {
        let seen: Option<(Vec<u8>, String)> = self.conn()
            .prepare_cached("SELECT request_hash, message_ids FROM idempotency_keys WHERE account_id = ?1 AND key = ?2 AND created_at >= ?3")?
            .query_row(params![account_id, key, remembered_since], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        Ok(seen
            .filter(|(hash, _)| hash == request_hash)
            .map(|(_, ids)| ids.split(' ').map(str::to_owned).collect()))
    }

    fn insert_messages(
        &self,
        messages: &[NewMessage],
        idempotency: Option<(&str, &[u8])>,
        remembered_since: Millis,
    ) -> Result<Insertion, StoreError> {
        let Some(first) = messages.first() else {
            return Ok(Insertion::Created);
        };
        if let Some((key, request_hash)) = idempotency {
            let seen: Option<(Vec<u8>, String)> = self.conn()
            .prepare_cached("SELECT request_hash, message_ids FROM idempotency_keys WHERE account_id = ?1 AND key = ?2 AND created_at >= ?3")?
            .query_row(params![first.account_id, key, remembered_since], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
            if let Some((hash, ids)) = seen {
                if hash != request_hash {
                    return Ok(Insertion::KeyReused);
                }
                return Ok(Insertion::Replayed(
                    ids.split(' ').map(str::to_owned).collect(),
                ));
            }
            let ids: Vec<&str> = messages.iter().map(|m| m.id.as_str()).collect();
            self.conn().prepare_cached(
            "INSERT OR REPLACE INTO idempotency_keys (account_id, key, request_hash, message_ids, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
        )?
        .execute(params![first.account_id, key, request_hash, ids.join(" "), first.created_at])?;
        }
        let mut stmt = self.conn().prepare_cached(
        "INSERT INTO messages (id, account_id, to_index, to_sealed, sender, body_sealed, encoding, segments, status, \
         client_ref, send_at, valid_until, next_attempt_at, created_at, updated_at, category) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 'queued', ?9, ?10, ?11, ?12, ?13, ?13, ?14)",
    )?;
        for m in messages {
            stmt.execute(params![
                m.id,
                m.account_id,
                &m.to_index[..],
                m.to_sealed,
                m.sender,
                m.body_sealed,
                m.encoding,
                m.segments,
                m.client_ref,
                m.send_at,
                m.valid_until,
                m.send_at.unwrap_or(m.created_at),
                m.created_at,
                m.category,
            ])?;
        }
        Ok(Insertion::Created)
    }

    fn get_message(&self, account_id: &str, id: &str) -> Result<Option<MessageRecord>, StoreError> {
        Ok(self
            .conn()
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM messages WHERE id = ?1 AND account_id = ?2"
            ))?
            .query_row([id, account_id], from_row)
            .optional()?)
    }

    fn list_messages(
        &self,
        account_id: &str,
        filter: &ListFilter,
    ) -> Result<Vec<MessageRecord>, StoreError> {
        let mut sql = format!("SELECT {COLUMNS} FROM messages WHERE account_id = ?");
        let mut args: Vec<rusqlite::types::Value> = vec![account_id.to_owned().into()];
        if let Some(status) = filter.status {
            sql.push_str(" AND status = ?");
            args.push(status.to_owned().into());
        }
        if let Some(index) = filter.to_index {
            sql.push_str(" AND to_index = ?");
            args.push(index.to_vec().into());
        }
        if let Some(client_ref) = &filter.client_ref {
            sql.push_str(" AND client_ref = ?");
            args.push(client_ref.clone().into());
        }
        if let Some(after) = filter.created_after {
            sql.push_str(" AND created_at >= ?");
            args.push(after.into());
        }
        if let Some(before) = filter.created_before {
            sql.push_str(" AND created_at < ?");
            args.push(before.into());
        }
        if let Some(id) = &filter.before_id {
            // The cursor is looked up in the caller's account only: another account's id (or
            // an unknown one) gives an empty page, never a position among that account's rows.
            sql.push_str(" AND seq < (SELECT seq FROM messages WHERE id = ? AND account_id = ?)");
            args.push(id.clone().into());
            args.push(account_id.to_owned().into());
        }
        sql.push_str(" ORDER BY seq DESC LIMIT ?");
        args.push((filter.limit as i64).into());
        let mut stmt = self.conn().prepare_cached(&sql)?;
        let rows = stmt.query_map(params_from_iter(args), from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn cancel_message(&self, account_id: &str, id: &str, now: Millis) -> Result<bool, StoreError> {
        let changed = self
            .conn()
            .prepare_cached(
                "UPDATE messages SET status = 'canceled', completed_at = ?3, updated_at = ?3 \
             WHERE id = ?1 AND account_id = ?2 AND status = 'queued'",
            )?
            .execute(params![id, account_id, now])?;
        Ok(changed == 1)
    }
}
