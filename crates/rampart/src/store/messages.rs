//! Messages, their delivery parts and receipts. Queries that serve the API are always scoped by
//! account; the queue queries serve the delivery worker.

use rusqlite::{Connection, OptionalExtension, Row, params, params_from_iter};

use super::StoreError;
use crate::clock::Millis;
use crate::messaging::{Encoding, MessageStatus};

/// A message ready to be stored (fields already encrypted).
#[derive(Debug, Clone)]
pub struct NewMessage {
    pub id: String,
    pub account_id: String,
    pub to_index: [u8; 16],
    pub to_sealed: Vec<u8>,
    pub sender: String,
    pub body_sealed: Vec<u8>,
    pub encoding: Encoding,
    pub segments: u32,
    pub client_ref: Option<String>,
    pub send_at: Option<Millis>,
    pub valid_until: Option<Millis>,
    pub created_at: Millis,
}

/// A stored message (fields still encrypted).
#[derive(Debug, Clone)]
pub struct StoredMessage {
    pub id: String,
    pub account_id: String,
    pub to_sealed: Vec<u8>,
    pub sender: String,
    pub body_sealed: Vec<u8>,
    pub encoding: Encoding,
    pub segments: u32,
    pub status: MessageStatus,
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
}

const COLUMNS: &str = "id, account_id, to_sealed, sender, body_sealed, encoding, segments, status, client_ref, \
     send_at, valid_until, attempts, connector, error_code, error_detail, created_at, updated_at, sent_at, completed_at";

fn corrupt(what: &str) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(
        0,
        rusqlite::types::Type::Text,
        what.to_owned().into(),
    )
}

fn from_row(r: &Row<'_>) -> rusqlite::Result<StoredMessage> {
    let encoding: String = r.get(5)?;
    let status: String = r.get(7)?;
    Ok(StoredMessage {
        id: r.get(0)?,
        account_id: r.get(1)?,
        to_sealed: r.get(2)?,
        sender: r.get(3)?,
        body_sealed: r.get(4)?,
        encoding: Encoding::parse(&encoding).ok_or_else(|| corrupt("encoding"))?,
        segments: r.get(6)?,
        status: MessageStatus::parse(&status).ok_or_else(|| corrupt("status"))?,
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

/// Stores the messages of one send request, honouring its idempotency key.
pub fn insert(
    conn: &Connection,
    messages: &[NewMessage],
    idempotency: Option<(&str, &[u8])>,
) -> Result<Insertion, StoreError> {
    let Some(first) = messages.first() else {
        return Ok(Insertion::Created);
    };
    if let Some((key, request_hash)) = idempotency {
        let seen: Option<(Vec<u8>, String)> = conn
            .prepare_cached("SELECT request_hash, message_ids FROM idempotency_keys WHERE account_id = ?1 AND key = ?2")?
            .query_row(params![first.account_id, key], |r| Ok((r.get(0)?, r.get(1)?)))
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
        conn.prepare_cached(
            "INSERT INTO idempotency_keys (account_id, key, request_hash, message_ids, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
        )?
        .execute(params![first.account_id, key, request_hash, ids.join(" "), first.created_at])?;
    }
    let mut stmt = conn.prepare_cached(
        "INSERT INTO messages (id, account_id, to_index, to_sealed, sender, body_sealed, encoding, segments, status, \
         client_ref, send_at, valid_until, next_attempt_at, created_at, updated_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 'queued', ?9, ?10, ?11, ?12, ?13, ?13)",
    )?;
    for m in messages {
        stmt.execute(params![
            m.id,
            m.account_id,
            &m.to_index[..],
            m.to_sealed,
            m.sender,
            m.body_sealed,
            m.encoding.as_str(),
            m.segments,
            m.client_ref,
            m.send_at,
            m.valid_until,
            m.send_at.unwrap_or(m.created_at),
            m.created_at,
        ])?;
    }
    Ok(Insertion::Created)
}

pub fn get(
    conn: &Connection,
    account_id: &str,
    id: &str,
) -> Result<Option<StoredMessage>, StoreError> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM messages WHERE id = ?1 AND account_id = ?2"
        ))?
        .query_row([id, account_id], from_row)
        .optional()?)
}

/// Filters for listing an account's messages, newest first.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    pub status: Option<MessageStatus>,
    pub to_index: Option<[u8; 16]>,
    pub client_ref: Option<String>,
    pub created_after: Option<Millis>,
    pub created_before: Option<Millis>,
    /// Only messages with ids below this one (the cursor).
    pub before_id: Option<String>,
    pub limit: usize,
}

pub fn list(
    conn: &Connection,
    account_id: &str,
    filter: &ListFilter,
) -> Result<Vec<StoredMessage>, StoreError> {
    let mut sql = format!("SELECT {COLUMNS} FROM messages WHERE account_id = ?");
    let mut args: Vec<rusqlite::types::Value> = vec![account_id.to_owned().into()];
    if let Some(status) = filter.status {
        sql.push_str(" AND status = ?");
        args.push(status.as_str().to_owned().into());
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
        sql.push_str(" AND seq < (SELECT seq FROM messages WHERE id = ?)");
        args.push(id.clone().into());
    }
    sql.push_str(" ORDER BY seq DESC LIMIT ?");
    args.push((filter.limit as i64).into());
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(params_from_iter(args), from_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Cancels a message that has not left the queue; false when it is not (or no longer) queued.
pub fn cancel(
    conn: &Connection,
    account_id: &str,
    id: &str,
    now: Millis,
) -> Result<bool, StoreError> {
    let changed = conn
        .prepare_cached(
            "UPDATE messages SET status = 'canceled', completed_at = ?3, updated_at = ?3 \
             WHERE id = ?1 AND account_id = ?2 AND status = 'queued'",
        )?
        .execute(params![id, account_id, now])?;
    Ok(changed == 1)
}

/// At start-up: messages left `sending` by a crash go back to the queue (at-least-once).
pub fn requeue_unfinished_sends(conn: &Connection, now: Millis) -> Result<usize, StoreError> {
    Ok(conn.execute(
        "UPDATE messages SET status = 'queued', next_attempt_at = ?1, updated_at = ?1 WHERE status = 'sending'",
        [now],
    )?)
}

/// Takes up to `limit` due messages off the queue, marking them `sending`. Claimed messages
/// whose validity has already run out are marked `expired` instead and not returned.
pub fn claim_due(
    conn: &Connection,
    now: Millis,
    limit: usize,
) -> Result<Vec<StoredMessage>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "UPDATE messages SET status = 'sending', attempts = attempts + 1, updated_at = ?1 \
         WHERE seq IN (SELECT seq FROM messages WHERE status = 'queued' AND next_attempt_at <= ?1 \
                       ORDER BY next_attempt_at LIMIT ?2) \
         RETURNING {COLUMNS}"
    ))?;
    let rows = stmt.query_map(params![now, limit as i64], from_row)?;
    let claimed: Vec<StoredMessage> = rows.collect::<Result<_, _>>()?;
    let (live, overdue): (Vec<_>, Vec<_>) = claimed
        .into_iter()
        .partition(|m| m.valid_until.is_none_or(|until| until > now));
    let mut expire = conn.prepare_cached(
        "UPDATE messages SET status = 'expired', error_code = 'validity_expired', completed_at = ?2, updated_at = ?2 \
         WHERE id = ?1",
    )?;
    for message in overdue {
        expire.execute(params![message.id, now])?;
    }
    Ok(live)
}

/// When the next queued message falls due, if any.
pub fn next_due_at(conn: &Connection) -> Result<Option<Millis>, StoreError> {
    Ok(conn
        .prepare_cached("SELECT MIN(next_attempt_at) FROM messages WHERE status = 'queued'")?
        .query_row([], |r| r.get(0))?)
}

/// A connector took the message: record the carrier's id for each part, and apply any receipt
/// that arrived for those ids before we got here.
pub fn mark_sent(
    conn: &Connection,
    id: &str,
    connector: &str,
    provider_ids: &[String],
    now: Millis,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "UPDATE messages SET status = 'sent', connector = ?2, sent_at = ?3, updated_at = ?3, \
         error_code = NULL, error_detail = NULL WHERE id = ?1 AND status = 'sending'",
    )?
    .execute(params![id, connector, now])?;
    let mut insert = conn.prepare_cached(
        "INSERT OR REPLACE INTO message_parts (connector, provider_id, message_id, part, state, updated_at) \
         VALUES (?1, ?2, ?3, ?4, 'sent', ?5)",
    )?;
    for (part, provider_id) in provider_ids.iter().enumerate() {
        insert.execute(params![connector, provider_id, id, part as i64, now])?;
    }
    for provider_id in provider_ids {
        let early: Option<(String, Option<String>)> = conn
            .prepare_cached(
                "DELETE FROM early_receipts WHERE connector = ?1 AND provider_id = ?2 RETURNING state, error_code",
            )?
            .query_row(params![connector, provider_id], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        if let Some((state, error_code)) = early {
            apply_receipt(
                conn,
                connector,
                provider_id,
                &state,
                error_code.as_deref(),
                now,
            )?;
        }
    }
    Ok(())
}

/// A transient failure: back to the queue until `next_attempt_at`.
pub fn mark_retry(
    conn: &Connection,
    id: &str,
    next_attempt_at: Millis,
    error_code: &str,
    detail: &str,
    now: Millis,
) -> Result<(), StoreError> {
    requeue(conn, id, next_attempt_at, (error_code, detail), 0, now)
}

/// No connector could take the message (every one on its route is down): back to the queue
/// until `next_attempt_at`, and the claim does not count as an attempt, so an outage cannot
/// use up a message's attempts.
pub fn postpone(
    conn: &Connection,
    id: &str,
    next_attempt_at: Millis,
    error_code: &str,
    detail: &str,
    now: Millis,
) -> Result<(), StoreError> {
    requeue(conn, id, next_attempt_at, (error_code, detail), 1, now)
}

/// Puts a claimed message back in the queue, giving back `returned_attempts` of its attempts.
fn requeue(
    conn: &Connection,
    id: &str,
    next_attempt_at: Millis,
    (error_code, detail): (&str, &str),
    returned_attempts: u32,
    now: Millis,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "UPDATE messages SET status = 'queued', attempts = MAX(attempts - ?6, 0), next_attempt_at = ?2, \
         error_code = ?3, error_detail = ?4, updated_at = ?5 WHERE id = ?1 AND status = 'sending'",
    )?
    .execute(params![id, next_attempt_at, error_code, detail, now, returned_attempts])?;
    Ok(())
}

/// A permanent failure: no carrier will take this message.
pub fn mark_failed(
    conn: &Connection,
    id: &str,
    error_code: &str,
    detail: &str,
    now: Millis,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "UPDATE messages SET status = 'failed', error_code = ?2, error_detail = ?3, completed_at = ?4, updated_at = ?4 \
         WHERE id = ?1 AND status IN ('queued', 'sending')",
    )?
    .execute(params![id, error_code, detail, now])?;
    Ok(())
}

/// Records a delivery receipt for one part (`state`: delivered, undelivered, expired, or a
/// non-final state that is ignored) and settles the message once every part is final.
pub fn apply_receipt(
    conn: &Connection,
    connector: &str,
    provider_id: &str,
    state: &str,
    error_code: Option<&str>,
    now: Millis,
) -> Result<(), StoreError> {
    let message_id: Option<String> = conn
        .prepare_cached(
            "UPDATE message_parts SET state = ?3, error_code = ?4, updated_at = ?5 \
             WHERE connector = ?1 AND provider_id = ?2 RETURNING message_id",
        )?
        .query_row(
            params![connector, provider_id, state, error_code, now],
            |r| r.get(0),
        )
        .optional()?;
    let Some(message_id) = message_id else {
        conn.prepare_cached(
            "INSERT OR REPLACE INTO early_receipts (connector, provider_id, state, error_code, received_at) \
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )?
        .execute(params![connector, provider_id, state, error_code, now])?;
        return Ok(());
    };
    let (total, delivered, expired, pending): (i64, i64, i64, i64) = conn
        .prepare_cached(
            "SELECT COUNT(*), COALESCE(SUM(state = 'delivered'), 0), COALESCE(SUM(state = 'expired'), 0), \
                    COALESCE(SUM(state = 'sent'), 0) \
             FROM message_parts WHERE message_id = ?1",
        )?
        .query_row([&message_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?;
    if pending > 0 {
        return Ok(());
    }
    let (status, code) = if delivered == total {
        (MessageStatus::Delivered, None)
    } else if delivered + expired == total {
        (
            MessageStatus::Expired,
            Some(error_code.unwrap_or("validity_expired")),
        )
    } else {
        (
            MessageStatus::Undelivered,
            Some(error_code.unwrap_or("undelivered")),
        )
    };
    conn.prepare_cached(
        "UPDATE messages SET status = ?2, error_code = ?3, completed_at = ?4, updated_at = ?4 \
         WHERE id = ?1 AND status = 'sent'",
    )?
    .execute(params![message_id, status.as_str(), code, now])?;
    Ok(())
}

/// A part still waiting for its receipt.
#[derive(Debug, Clone)]
pub struct AwaitingReceipt {
    pub message_id: String,
    pub provider_id: String,
    pub to_sealed: Vec<u8>,
}

/// Parts sent through `connector` that have no final receipt yet.
pub fn awaiting_receipts(
    conn: &Connection,
    connector: &str,
) -> Result<Vec<AwaitingReceipt>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT p.message_id, p.provider_id, m.to_sealed FROM message_parts p JOIN messages m ON m.id = p.message_id \
         WHERE p.connector = ?1 AND p.state = 'sent' AND m.status = 'sent'",
    )?;
    let rows = stmt.query_map([connector], |r| {
        Ok(AwaitingReceipt {
            message_id: r.get(0)?,
            provider_id: r.get(1)?,
            to_sealed: r.get(2)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}
