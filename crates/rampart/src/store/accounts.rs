//! Accounts.

use rusqlite::{OptionalExtension, Row, params};

use super::{Db, StoreError};
use crate::clock::Millis;

/// An account: the owner of messages and keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountRecord {
    pub id: String,
    pub name: String,
    pub created_at: Millis,
}

/// Accounts.
pub trait Accounts {
    fn insert_account(&self, account: &AccountRecord) -> Result<(), StoreError>;
    fn count_accounts(&self) -> Result<i64, StoreError>;
    fn get_account(&self, id: &str) -> Result<Option<AccountRecord>, StoreError>;
    /// Every account, oldest first (deleted ones are gone from here and from `get_account`).
    fn list_accounts(&self) -> Result<Vec<AccountRecord>, StoreError>;
    /// Marks the account deleted and removes every way into it: its API keys are revoked,
    /// its members, pending invitations and numbers removed. False when there is no such
    /// (live) account.
    fn mark_account_deleted(&self, id: &str, now: Millis) -> Result<bool, StoreError>;
    /// Deletes up to `limit` messages (with their parts), inbound messages and idempotency
    /// records of deleted accounts; how many rows went.
    fn purge_deleted_accounts(&self, limit: usize) -> Result<usize, StoreError>;
    /// Networks the account's keys may be used from, separated by spaces; empty for any.
    fn account_allowed_ips(&self, account_id: &str) -> Result<String, StoreError>;
    /// The operator's list and the account's own (set by its admins, within the operator's).
    fn account_networks(&self, account_id: &str) -> Result<(String, String), StoreError>;
    /// Sets the account's own list; false when there is no such account.
    fn set_account_member_allowed_ips(
        &self,
        account_id: &str,
        networks: &str,
    ) -> Result<bool, StoreError>;
    /// Sets them; false when there is no such account.
    fn set_account_allowed_ips(&self, account_id: &str, networks: &str)
    -> Result<bool, StoreError>;
    /// The operator's rate limits of the account and its admins' (stored form); `None` when
    /// there is no such account.
    fn account_rate_limits(&self, account_id: &str)
    -> Result<Option<(String, String)>, StoreError>;
    /// Sets the operator's (`by_operator`) or the admins' rate limits; false when there is no
    /// such account.
    fn set_account_rate_limits(
        &self,
        account_id: &str,
        by_operator: bool,
        limits: &str,
    ) -> Result<bool, StoreError>;
}

fn account_from_row(r: &Row<'_>) -> rusqlite::Result<AccountRecord> {
    Ok(AccountRecord {
        id: r.get(0)?,
        name: r.get(1)?,
        created_at: r.get(2)?,
    })
}

impl Accounts for Db<'_> {
    fn mark_account_deleted(&self, id: &str, now: Millis) -> Result<bool, StoreError> {
        let conn = self.conn();
        let marked = conn.execute(
            "UPDATE accounts SET deleted_at = ?2 WHERE id = ?1 AND deleted_at IS NULL",
            params![id, now],
        )?;
        if marked == 0 {
            return Ok(false);
        }
        conn.execute(
            "UPDATE api_keys SET revoked_at = ?2 WHERE account_id = ?1 AND revoked_at IS NULL",
            params![id, now],
        )?;
        conn.execute("DELETE FROM memberships WHERE account_id = ?1", [id])?;
        conn.execute("DELETE FROM challenges WHERE account_id = ?1", [id])?;
        conn.execute("DELETE FROM numbers WHERE account_id = ?1", [id])?;
        Ok(true)
    }

    fn purge_deleted_accounts(&self, limit: usize) -> Result<usize, StoreError> {
        let conn = self.conn();
        let limit = limit as i64;
        let deleted = "SELECT id FROM accounts WHERE deleted_at IS NOT NULL";
        let doomed = format!(
            "SELECT id FROM messages WHERE account_id IN ({deleted}) ORDER BY seq LIMIT ?1"
        );
        let mut rows = conn.execute(
            &format!("DELETE FROM message_parts WHERE message_id IN ({doomed})"),
            [limit],
        )?;
        rows += conn.execute(
            &format!("DELETE FROM messages WHERE id IN ({doomed})"),
            [limit],
        )?;
        rows += conn.execute(
            &format!(
                "DELETE FROM inbound_messages WHERE id IN (SELECT id FROM inbound_messages \
                 WHERE account_id IN ({deleted}) LIMIT ?1)"
            ),
            [limit],
        )?;
        rows += conn.execute(
            &format!("DELETE FROM idempotency_keys WHERE account_id IN ({deleted})"),
            [],
        )?;
        Ok(rows)
    }

    fn insert_account(&self, account: &AccountRecord) -> Result<(), StoreError> {
        self.conn()
            .prepare_cached("INSERT INTO accounts (id, name, created_at) VALUES (?1, ?2, ?3)")?
            .execute(params![account.id, account.name, account.created_at])?;
        Ok(())
    }

    fn count_accounts(&self) -> Result<i64, StoreError> {
        Ok(self
            .conn()
            .query_row("SELECT COUNT(*) FROM accounts", [], |r| r.get(0))?)
    }

    fn get_account(&self, id: &str) -> Result<Option<AccountRecord>, StoreError> {
        Ok(self
            .conn()
            .prepare_cached(
                "SELECT id, name, created_at FROM accounts WHERE id = ?1 AND deleted_at IS NULL",
            )?
            .query_row([id], account_from_row)
            .optional()?)
    }

    fn list_accounts(&self) -> Result<Vec<AccountRecord>, StoreError> {
        let mut stmt = self.conn().prepare_cached(
            "SELECT id, name, created_at FROM accounts WHERE deleted_at IS NULL \
             ORDER BY created_at, id",
        )?;
        let rows = stmt.query_map([], account_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn account_allowed_ips(&self, account_id: &str) -> Result<String, StoreError> {
        Ok(self
            .conn()
            .prepare_cached("SELECT allowed_ips FROM accounts WHERE id = ?1")?
            .query_row([account_id], |r| r.get(0))
            .optional()?
            .unwrap_or_default())
    }

    fn account_networks(&self, account_id: &str) -> Result<(String, String), StoreError> {
        Ok(self
            .conn()
            .prepare_cached("SELECT allowed_ips, member_allowed_ips FROM accounts WHERE id = ?1")?
            .query_row([account_id], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?
            .unwrap_or_default())
    }

    fn set_account_member_allowed_ips(
        &self,
        account_id: &str,
        networks: &str,
    ) -> Result<bool, StoreError> {
        Ok(self
            .conn()
            .prepare_cached("UPDATE accounts SET member_allowed_ips = ?2 WHERE id = ?1")?
            .execute([account_id, networks])?
            == 1)
    }

    fn set_account_allowed_ips(
        &self,
        account_id: &str,
        networks: &str,
    ) -> Result<bool, StoreError> {
        Ok(self
            .conn()
            .prepare_cached("UPDATE accounts SET allowed_ips = ?2 WHERE id = ?1")?
            .execute([account_id, networks])?
            == 1)
    }

    fn account_rate_limits(
        &self,
        account_id: &str,
    ) -> Result<Option<(String, String)>, StoreError> {
        Ok(self
            .conn()
            .prepare_cached("SELECT rate_limits, member_rate_limits FROM accounts WHERE id = ?1")?
            .query_row([account_id], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?)
    }

    fn set_account_rate_limits(
        &self,
        account_id: &str,
        by_operator: bool,
        limits: &str,
    ) -> Result<bool, StoreError> {
        let sql = if by_operator {
            "UPDATE accounts SET rate_limits = ?2 WHERE id = ?1"
        } else {
            "UPDATE accounts SET member_rate_limits = ?2 WHERE id = ?1"
        };
        Ok(self
            .conn()
            .prepare_cached(sql)?
            .execute([account_id, limits])?
            == 1)
    }
}
