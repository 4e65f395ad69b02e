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
    /// Every account, oldest first.
    fn list_accounts(&self) -> Result<Vec<AccountRecord>, StoreError>;
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
            .prepare_cached("SELECT id, name, created_at FROM accounts WHERE id = ?1")?
            .query_row([id], account_from_row)
            .optional()?)
    }

    fn list_accounts(&self) -> Result<Vec<AccountRecord>, StoreError> {
        let mut stmt = self
            .conn()
            .prepare_cached("SELECT id, name, created_at FROM accounts ORDER BY created_at, id")?;
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
