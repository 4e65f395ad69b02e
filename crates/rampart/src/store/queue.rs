//! The queue: the delivery worker's view of messages. It claims due messages, records what
//! connectors answered (sent, retry, postponed, failed) and settles messages by receipts.

use rusqlite::{OptionalExtension, params};

use super::messages::{COLUMNS, MessageRecord, from_row};
use super::{Db, StoreError};
use crate::clock::Millis;

/// A part still waiting for its receipt.
#[derive(Debug, Clone)]
pub struct AwaitingReceipt {
    pub message_id: String,
    pub account_id: String,
    pub provider_id: String,
    pub to_sealed: Vec<u8>,
}

/// The queue's state transitions.
pub trait Queue {
    /// At start-up: messages left `sending` by a crash go back to the queue (at-least-once).
    fn requeue_unfinished_sends(&self, now: Millis) -> Result<usize, StoreError>;
    /// Takes up to `limit` due messages off the queue, marking them `sending` and counting an
    /// attempt. Claimed messages whose validity has already run out are marked `expired`
    /// instead and not returned.
    fn claim_due(&self, now: Millis, limit: usize) -> Result<Vec<MessageRecord>, StoreError>;
    /// When the next queued message falls due, if any.
    fn next_due_at(&self) -> Result<Option<Millis>, StoreError>;
    /// A connector took the message: record the carrier's id for each part, and apply any
    /// receipt that arrived for those ids before we got here.
    fn mark_sent(
        &self,
        id: &str,
        connector: &str,
        provider_ids: &[String],
        now: Millis,
    ) -> Result<(), StoreError>;
    /// A transient failure: back to the queue until `next_attempt_at`.
    fn mark_retry(
        &self,
        id: &str,
        next_attempt_at: Millis,
        error_code: &str,
        detail: &str,
        now: Millis,
    ) -> Result<(), StoreError>;
    /// No connector could take the message (every one on its route is down): back to the
    /// queue until `next_attempt_at`, and the claim does not count as an attempt, so an outage
    /// cannot use up a message's attempts.
    fn postpone(
        &self,
        id: &str,
        next_attempt_at: Millis,
        error_code: &str,
        detail: &str,
        now: Millis,
    ) -> Result<(), StoreError>;
    /// A permanent failure: no carrier will take this message.
    fn mark_failed(
        &self,
        id: &str,
        error_code: &str,
        detail: &str,
        now: Millis,
    ) -> Result<(), StoreError>;
    /// Records a delivery receipt for one part (`state`: delivered, undelivered, expired, or
    /// a non-final state that is ignored) and settles the message once every part is final.
    fn apply_receipt(
        &self,
        connector: &str,
        provider_id: &str,
        state: &str,
        error_code: Option<&str>,
        now: Millis,
    ) -> Result<(), StoreError>;
    /// Parts sent through `connector` that have no final receipt yet.
    fn awaiting_receipts(&self, connector: &str) -> Result<Vec<AwaitingReceipt>, StoreError>;
    /// Bounds the receipts kept for ids not recorded yet (a carrier can send receipts for ids
    /// we never sent): drops every connector's receipts received before `received_before`,
    /// then `connector`'s oldest beyond `max_rows`. Returns how many rows went.
    fn trim_early_receipts(
        &self,
        connector: &str,
        received_before: Millis,
        max_rows: usize,
    ) -> Result<usize, StoreError>;
}

/// Most accounts served in one claim; with more waiting, the next claim starts after the
/// last one served.
const MAX_ACCOUNTS_PER_CLAIM: usize = 256;

/// Where the next claim starts among the accounts with due messages (round robin).
static NEXT_ACCOUNT: std::sync::Mutex<String> = std::sync::Mutex::new(String::new());

impl Db<'_> {
    /// Fair sharing: each account with due messages gets an equal share of the claim (the
    /// oldest due first within it), so one account's backlog of a million messages does not
    /// hold back another's one-time code. What a share leaves unused goes to whoever has
    /// more, oldest first.
    fn claim_fairly(&self, now: Millis, limit: usize) -> Result<Vec<MessageRecord>, StoreError> {
        let accounts = self.accounts_with_due_messages(now)?;
        if accounts.len() <= 1 {
            return self.claim_oldest(now, None, limit);
        }
        let start = {
            let next = NEXT_ACCOUNT
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            accounts.iter().position(|a| *a >= *next).unwrap_or(0)
        };
        let served = accounts.len().min(MAX_ACCOUNTS_PER_CLAIM);
        let share = (limit / served).max(1);
        let mut claimed = Vec::with_capacity(limit);
        let mut last = String::new();
        for account in accounts.iter().cycle().skip(start).take(served) {
            if claimed.len() >= limit {
                break;
            }
            let take = share.min(limit - claimed.len());
            claimed.extend(self.claim_oldest(now, Some(account), take)?);
            last.clone_from(account);
        }
        *NEXT_ACCOUNT
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = format!("{last}\u{0}");
        if claimed.len() < limit {
            claimed.extend(self.claim_oldest(now, None, limit - claimed.len())?);
        }
        Ok(claimed)
    }

    /// Claims up to `limit` of the oldest due messages, of one account or of all.
    fn claim_oldest(
        &self,
        now: Millis,
        account: Option<&str>,
        limit: usize,
    ) -> Result<Vec<MessageRecord>, StoreError> {
        // Two statements, so each has the plan of its own index: by due time for all, by
        // account then due time for one.
        let rows = match account {
            None => self
                .conn()
                .prepare_cached(&format!(
                    "UPDATE messages SET status = 'sending', attempts = attempts + 1, \
                     updated_at = ?1 WHERE seq IN (SELECT seq FROM messages \
                     WHERE status = 'queued' AND next_attempt_at <= ?1 \
                     ORDER BY next_attempt_at LIMIT ?2) RETURNING {COLUMNS}"
                ))?
                .query_map(params![now, limit as i64], from_row)?
                .collect::<Result<Vec<_>, _>>()?,
            Some(account) => self
                .conn()
                .prepare_cached(&format!(
                    "UPDATE messages SET status = 'sending', attempts = attempts + 1, \
                     updated_at = ?1 WHERE seq IN (SELECT seq FROM messages \
                     INDEXED BY messages_queued_by_account WHERE status = 'queued' \
                     AND account_id = ?3 AND next_attempt_at <= ?1 \
                     ORDER BY next_attempt_at LIMIT ?2) RETURNING {COLUMNS}"
                ))?
                .query_map(params![now, limit as i64, account], from_row)?
                .collect::<Result<Vec<_>, _>>()?,
        };
        Ok(rows)
    }

    /// The accounts that have due messages, in id order (a skip scan over the index of queued
    /// messages by account: one seek per account, however long its backlog).
    fn accounts_with_due_messages(&self, now: Millis) -> Result<Vec<String>, StoreError> {
        let mut stmt = self.conn().prepare_cached(
            "WITH RECURSIVE due(account) AS ( \
               SELECT (SELECT account_id FROM messages INDEXED BY messages_queued_by_account \
                       WHERE status = 'queued' AND next_attempt_at <= ?1 \
                       ORDER BY account_id LIMIT 1) \
               UNION ALL \
               SELECT (SELECT account_id FROM messages INDEXED BY messages_queued_by_account \
                       WHERE status = 'queued' AND next_attempt_at <= ?1 \
                       AND account_id > due.account ORDER BY account_id LIMIT 1) \
               FROM due WHERE due.account IS NOT NULL LIMIT ?2) \
             SELECT account FROM due WHERE account IS NOT NULL",
        )?;
        let rows = stmt.query_map(params![now, 4 * MAX_ACCOUNTS_PER_CLAIM as i64], |r| {
            r.get(0)
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

impl Queue for Db<'_> {
    fn requeue_unfinished_sends(&self, now: Millis) -> Result<usize, StoreError> {
        Ok(self.conn().execute(
        "UPDATE messages SET status = 'queued', next_attempt_at = ?1, updated_at = ?1 WHERE status = 'sending'",
        [now],
    )?)
    }

    fn claim_due(&self, now: Millis, limit: usize) -> Result<Vec<MessageRecord>, StoreError> {
        let claimed = self.claim_fairly(now, limit)?;
        let (live, overdue): (Vec<_>, Vec<_>) = claimed
            .into_iter()
            .partition(|m| m.valid_until.is_none_or(|until| until > now));
        // An overdue message is not handed over, so its claim gives its attempt back, and the
        // detail of an earlier refusal would not explain this ending.
        let mut expire = self.conn().prepare_cached(
        "UPDATE messages SET status = 'expired', attempts = MAX(attempts - 1, 0), error_code = 'validity_expired', \
         error_detail = 'the validity period ran out before the message could be sent', completed_at = ?2, updated_at = ?2 \
         WHERE id = ?1",
    )?;
        for message in overdue {
            expire.execute(params![message.id, now])?;
        }
        Ok(live)
    }

    fn next_due_at(&self) -> Result<Option<Millis>, StoreError> {
        Ok(self
            .conn()
            .prepare_cached("SELECT MIN(next_attempt_at) FROM messages WHERE status = 'queued'")?
            .query_row([], |r| r.get(0))?)
    }

    fn mark_sent(
        &self,
        id: &str,
        connector: &str,
        provider_ids: &[String],
        now: Millis,
    ) -> Result<(), StoreError> {
        self.conn().prepare_cached(
        "UPDATE messages SET status = 'sent', connector = ?2, sent_at = ?3, updated_at = ?3, \
         error_code = NULL, error_detail = NULL WHERE id = ?1 AND status = 'sending'",
    )?
    .execute(params![id, connector, now])?;
        let mut insert = self.conn().prepare_cached(
        "INSERT OR REPLACE INTO message_parts (connector, provider_id, message_id, part, state, updated_at) \
         VALUES (?1, ?2, ?3, ?4, 'sent', ?5)",
    )?;
        for (part, provider_id) in provider_ids.iter().enumerate() {
            insert.execute(params![connector, provider_id, id, part as i64, now])?;
        }
        for provider_id in provider_ids {
            let early: Option<(String, Option<String>)> = self.conn()
            .prepare_cached(
                "DELETE FROM early_receipts WHERE connector = ?1 AND provider_id = ?2 RETURNING state, error_code",
            )?
            .query_row(params![connector, provider_id], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
            if let Some((state, error_code)) = early {
                self.apply_receipt(connector, provider_id, &state, error_code.as_deref(), now)?;
            }
        }
        Ok(())
    }

    fn mark_retry(
        &self,
        id: &str,
        next_attempt_at: Millis,
        error_code: &str,
        detail: &str,
        now: Millis,
    ) -> Result<(), StoreError> {
        requeue(self, id, next_attempt_at, (error_code, detail), 0, now)
    }

    fn postpone(
        &self,
        id: &str,
        next_attempt_at: Millis,
        error_code: &str,
        detail: &str,
        now: Millis,
    ) -> Result<(), StoreError> {
        requeue(self, id, next_attempt_at, (error_code, detail), 1, now)
    }

    fn mark_failed(
        &self,
        id: &str,
        error_code: &str,
        detail: &str,
        now: Millis,
    ) -> Result<(), StoreError> {
        self.conn().prepare_cached(
        "UPDATE messages SET status = 'failed', error_code = ?2, error_detail = ?3, completed_at = ?4, updated_at = ?4 \
         WHERE id = ?1 AND status IN ('queued', 'sending')",
    )?
    .execute(params![id, error_code, detail, now])?;
        Ok(())
    }

    fn apply_receipt(
        &self,
        connector: &str,
        provider_id: &str,
        state: &str,
        error_code: Option<&str>,
        now: Millis,
    ) -> Result<(), StoreError> {
        let message_id: Option<String> = self
            .conn()
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
            self.conn().prepare_cached(
            "INSERT OR REPLACE INTO early_receipts (connector, provider_id, state, error_code, received_at) \
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )?
        .execute(params![connector, provider_id, state, error_code, now])?;
            return Ok(());
        };
        let (total, delivered, expired, pending): (i64, i64, i64, i64) = self.conn()
        .prepare_cached(
            "SELECT COUNT(*), COALESCE(SUM(state = 'delivered'), 0), COALESCE(SUM(state = 'expired'), 0), \
                    COALESCE(SUM(state = 'sent'), 0) \
             FROM message_parts WHERE message_id = ?1",
        )?
        .query_row([&message_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?;
        if pending > 0 {
            return Ok(());
        }
        let (status, fallback) = if delivered == total {
            ("delivered", None)
        } else if delivered + expired == total {
            ("expired", Some("validity_expired"))
        } else {
            ("undelivered", Some("undelivered"))
        };
        // The message's error is that of its first part that ended as the message did, not
        // that of the last receipt (which may be another part's success).
        let code: Option<String> = match fallback {
            None => None,
            Some(fallback) => Some(
                self.conn()
                    .prepare_cached(
                        "SELECT error_code FROM message_parts \
                         WHERE message_id = ?1 AND state = ?2 AND error_code IS NOT NULL \
                         ORDER BY part LIMIT 1",
                    )?
                    .query_row(params![message_id, status], |r| r.get(0))
                    .optional()?
                    .unwrap_or_else(|| fallback.to_owned()),
            ),
        };
        self.conn().prepare_cached(
        "UPDATE messages SET status = ?2, error_code = ?3, completed_at = ?4, updated_at = ?4 \
         WHERE id = ?1 AND status = 'sent'",
    )?
    .execute(params![message_id, status, code, now])?;
        Ok(())
    }

    fn awaiting_receipts(&self, connector: &str) -> Result<Vec<AwaitingReceipt>, StoreError> {
        let mut stmt = self.conn().prepare_cached(
        "SELECT p.message_id, p.provider_id, m.to_sealed, m.account_id FROM message_parts p JOIN messages m ON m.id = p.message_id \
         WHERE p.connector = ?1 AND p.state = 'sent' AND m.status = 'sent'",
    )?;
        let rows = stmt.query_map([connector], |r| {
            Ok(AwaitingReceipt {
                message_id: r.get(0)?,
                provider_id: r.get(1)?,
                to_sealed: r.get(2)?,
                account_id: r.get(3)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn trim_early_receipts(
        &self,
        connector: &str,
        received_before: Millis,
        max_rows: usize,
    ) -> Result<usize, StoreError> {
        let stale = self
            .conn()
            .prepare_cached("DELETE FROM early_receipts WHERE received_at < ?1")?
            .execute([received_before])?;
        let excess = self
            .conn()
            .prepare_cached(
                "DELETE FROM early_receipts WHERE connector = ?1 AND provider_id IN \
                 (SELECT provider_id FROM early_receipts WHERE connector = ?1 \
                  ORDER BY received_at DESC, provider_id DESC LIMIT -1 OFFSET ?2)",
            )?
            .execute(params![
                connector,
                i64::try_from(max_rows).unwrap_or(i64::MAX)
            ])?;
        Ok(stale + excess)
    }
}

/// Puts a claimed message back in the queue, giving back `returned_attempts` of its attempts.
fn requeue(
    db: &Db<'_>,
    id: &str,
    next_attempt_at: Millis,
    (error_code, detail): (&str, &str),
    returned_attempts: u32,
    now: Millis,
) -> Result<(), StoreError> {
    db.conn().prepare_cached(
        "UPDATE messages SET status = 'queued', attempts = MAX(attempts - ?6, 0), next_attempt_at = ?2, \
         error_code = ?3, error_detail = ?4, updated_at = ?5 WHERE id = ?1 AND status = 'sending'",
    )?
    .execute(params![id, next_attempt_at, error_code, detail, now, returned_attempts])?;
    Ok(())
}
