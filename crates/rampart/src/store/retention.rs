//! Retention: each account's settings, and the rows they let go. Bodies are erased in place
//! (an empty blob and `body_erased_at`); purged messages go with their parts.

use rusqlite::{OptionalExtension, params, params_from_iter};

use super::{Db, StoreError};
use crate::clock::Millis;

/// How long an account keeps messages, in days; `None` keeps them forever.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetentionRecord {
    pub erase_bodies_after_days: Option<u32>,
    pub purge_after_days: Option<u32>,
}

/// The tables retention works on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kept {
    /// `messages`, aged by `created_at`; only rows in one of the given (final) statuses.
    Messages,
    /// `inbound_messages`, aged by `received_at`; every row is final.
    Inbound,
}

impl Kept {
    fn table(self) -> &'static str {
        match self {
            Self::Messages => "messages",
            Self::Inbound => "inbound_messages",
        }
    }

    fn born(self) -> &'static str {
        match self {
            Self::Messages => "created_at",
            Self::Inbound => "received_at",
        }
    }
}

/// Retention settings and the rows they let go.
pub trait Retention {
    /// The account's settings; `None` when there is no such account.
    fn account_retention(&self, account_id: &str) -> Result<Option<RetentionRecord>, StoreError>;
    /// Sets them; false when there is no such account.
    fn set_account_retention(
        &self,
        account_id: &str,
        retention: RetentionRecord,
    ) -> Result<bool, StoreError>;
    /// Accounts that keep something for a limited time, oldest first.
    fn accounts_with_retention(&self) -> Result<Vec<(String, RetentionRecord)>, StoreError>;
    /// Up to `limit` ids of the account's rows born before `before` (and, for messages, in
    /// one of `statuses`): those whose body is still there when `bodies_only`, else all.
    fn retention_due(
        &self,
        kept: Kept,
        account_id: &str,
        before: Millis,
        statuses: &[&str],
        bodies_only: bool,
        limit: usize,
    ) -> Result<Vec<String>, StoreError>;
    /// Erases the bodies of these rows of the account (those still born before `before` and,
    /// for messages, in one of `statuses`); how many were erased.
    fn erase_bodies(
        &self,
        kept: Kept,
        account_id: &str,
        ids: &[String],
        before: Millis,
        statuses: &[&str],
        now: Millis,
    ) -> Result<usize, StoreError>;
    /// Deletes these rows of the account under the same conditions, and a message's parts
    /// with it; how many rows went.
    fn purge(
        &self,
        kept: Kept,
        account_id: &str,
        ids: &[String],
        before: Millis,
        statuses: &[&str],
    ) -> Result<usize, StoreError>;
    /// How many delivery parts the message has on record (what a purge leaves behind).
    fn count_message_parts(&self, message_id: &str) -> Result<usize, StoreError>;
}

fn days(value: Option<i64>) -> Option<u32> {
    value.and_then(|d| u32::try_from(d).ok())
}

/// `AND status IN (?, ?, …)` for messages; nothing for inbound rows, which have no status.
fn status_clause(kept: Kept, statuses: &[&str]) -> String {
    match kept {
        Kept::Messages => {
            let marks = vec!["?"; statuses.len().max(1)].join(", ");
            format!(" AND status IN ({marks})")
        }
        Kept::Inbound => String::new(),
    }
}

fn status_args(kept: Kept, statuses: &[&str]) -> Vec<rusqlite::types::Value> {
    match kept {
        // No status at all: `IN (?)` with a name no row has, so nothing matches.
        Kept::Messages if statuses.is_empty() => vec![String::new().into()],
        Kept::Messages => statuses.iter().map(|s| (*s).to_owned().into()).collect(),
        Kept::Inbound => Vec::new(),
    }
}

impl Retention for Db<'_> {
    fn account_retention(&self, account_id: &str) -> Result<Option<RetentionRecord>, StoreError> {
        Ok(self
            .conn()
            .prepare_cached(
                "SELECT erase_bodies_after_days, purge_after_days FROM accounts WHERE id = ?1",
            )?
            .query_row([account_id], |r| {
                Ok(RetentionRecord {
                    erase_bodies_after_days: days(r.get(0)?),
                    purge_after_days: days(r.get(1)?),
                })
            })
            .optional()?)
    }

    fn set_account_retention(
        &self,
        account_id: &str,
        retention: RetentionRecord,
    ) -> Result<bool, StoreError> {
        Ok(self
            .conn()
            .prepare_cached(
                "UPDATE accounts SET erase_bodies_after_days = ?2, purge_after_days = ?3 \
                 WHERE id = ?1",
            )?
            .execute(params![
                account_id,
                retention.erase_bodies_after_days,
                retention.purge_after_days
            ])?
            == 1)
    }

    fn accounts_with_retention(&self) -> Result<Vec<(String, RetentionRecord)>, StoreError> {
        let mut stmt = self.conn().prepare_cached(
            "SELECT id, erase_bodies_after_days, purge_after_days FROM accounts \
             WHERE erase_bodies_after_days IS NOT NULL OR purge_after_days IS NOT NULL \
             ORDER BY created_at, id",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get(0)?,
                RetentionRecord {
                    erase_bodies_after_days: days(r.get(1)?),
                    purge_after_days: days(r.get(2)?),
                },
            ))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn retention_due(
        &self,
        kept: Kept,
        account_id: &str,
        before: Millis,
        statuses: &[&str],
        bodies_only: bool,
        limit: usize,
    ) -> Result<Vec<String>, StoreError> {
        // Walks the account's index in insertion order; no index of its own, so intake pays
        // nothing for retention. Run on a read connection, this scan never holds the writer.
        let order = match kept {
            Kept::Messages => "seq",
            Kept::Inbound => "id",
        };
        let sql = format!(
            "SELECT id FROM {table} WHERE account_id = ? AND {born} < ?{statuses}{erased} \
             ORDER BY {order} LIMIT ?",
            table = kept.table(),
            born = kept.born(),
            statuses = status_clause(kept, statuses),
            erased = if bodies_only {
                " AND body_erased_at IS NULL"
            } else {
                ""
            },
        );
        let mut args: Vec<rusqlite::types::Value> =
            vec![account_id.to_owned().into(), before.into()];
        args.extend(status_args(kept, statuses));
        args.push((limit as i64).into());
        let mut stmt = self.conn().prepare_cached(&sql)?;
        let rows = stmt.query_map(params_from_iter(args), |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn erase_bodies(
        &self,
        kept: Kept,
        account_id: &str,
        ids: &[String],
        before: Millis,
        statuses: &[&str],
        now: Millis,
    ) -> Result<usize, StoreError> {
        let sql = format!(
            "UPDATE {table} SET body_sealed = x'', body_erased_at = ? \
             WHERE id = ? AND account_id = ? AND {born} < ? AND body_erased_at IS NULL{statuses}",
            table = kept.table(),
            born = kept.born(),
            statuses = status_clause(kept, statuses),
        );
        let mut stmt = self.conn().prepare_cached(&sql)?;
        let mut erased = 0;
        for id in ids {
            let mut args: Vec<rusqlite::types::Value> = vec![
                now.into(),
                id.clone().into(),
                account_id.to_owned().into(),
                before.into(),
            ];
            args.extend(status_args(kept, statuses));
            erased += stmt.execute(params_from_iter(args))?;
        }
        Ok(erased)
    }

    fn purge(
        &self,
        kept: Kept,
        account_id: &str,
        ids: &[String],
        before: Millis,
        statuses: &[&str],
    ) -> Result<usize, StoreError> {
        let sql = format!(
            "DELETE FROM {table} WHERE id = ? AND account_id = ? AND {born} < ?{statuses}",
            table = kept.table(),
            born = kept.born(),
            statuses = status_clause(kept, statuses),
        );
        let mut stmt = self.conn().prepare_cached(&sql)?;
        let mut parts = self
            .conn()
            .prepare_cached("DELETE FROM message_parts WHERE message_id = ?1")?;
        let mut purged = 0;
        for id in ids {
            let mut args: Vec<rusqlite::types::Value> = vec![
                id.clone().into(),
                account_id.to_owned().into(),
                before.into(),
            ];
            args.extend(status_args(kept, statuses));
            let deleted = stmt.execute(params_from_iter(args))?;
            if deleted == 1 && kept == Kept::Messages {
                parts.execute([id])?;
            }
            purged += deleted;
        }
        Ok(purged)
    }

    fn count_message_parts(&self, message_id: &str) -> Result<usize, StoreError> {
        let count: i64 = self
            .conn()
            .prepare_cached("SELECT COUNT(*) FROM message_parts WHERE message_id = ?1")?
            .query_row([message_id], |r| r.get(0))?;
        Ok(usize::try_from(count).unwrap_or(0))
    }
}
