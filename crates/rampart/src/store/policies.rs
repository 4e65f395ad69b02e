//! Account policy documents: the one in force, with its version, and every version set.

use rusqlite::{OptionalExtension, params};

use super::{Db, StoreError};
use crate::clock::Millis;

/// A policy document as stored (JSON text, checked before it was stored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyRecord {
    pub account_id: String,
    pub version: u64,
    pub document: String,
    pub updated_at: Millis,
}

/// What storing a document did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyWrite {
    /// Stored as this version.
    Stored(u64),
    /// The caller expected another version than the one in force (0: none yet).
    Stale { current: u64 },
    /// There is no such (live) account.
    NoAccount,
}

/// Policy documents.
pub trait Policies {
    /// The account's document; `None` when it has none.
    fn account_policy(&self, account_id: &str) -> Result<Option<PolicyRecord>, StoreError>;
    /// Every document in force, for loading them at start.
    fn all_policies(&self) -> Result<Vec<PolicyRecord>, StoreError>;
    /// Stores a new version (the one in force + 1), in history too, when `expected` is
    /// `None` or the version in force (0 when there is none).
    fn set_account_policy(
        &self,
        account_id: &str,
        expected: Option<u64>,
        document: &str,
        now: Millis,
    ) -> Result<PolicyWrite, StoreError>;
}

fn record(r: &rusqlite::Row<'_>) -> rusqlite::Result<PolicyRecord> {
    Ok(PolicyRecord {
        account_id: r.get(0)?,
        version: r.get::<_, i64>(1)? as u64,
        document: r.get(2)?,
        updated_at: r.get(3)?,
    })
}

impl Policies for Db<'_> {
    fn account_policy(&self, account_id: &str) -> Result<Option<PolicyRecord>, StoreError> {
        Ok(self
            .conn()
            .prepare_cached(
                "SELECT account_id, version, document, updated_at FROM account_policies \
                 WHERE account_id = ?1",
            )?
            .query_row([account_id], record)
            .optional()?)
    }

    fn all_policies(&self) -> Result<Vec<PolicyRecord>, StoreError> {
        let mut stmt = self.conn().prepare_cached(
            "SELECT p.account_id, p.version, p.document, p.updated_at FROM account_policies p \
             JOIN accounts a ON a.id = p.account_id WHERE a.deleted_at IS NULL",
        )?;
        let rows = stmt.query_map([], record)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn set_account_policy(
        &self,
        account_id: &str,
        expected: Option<u64>,
        document: &str,
        now: Millis,
    ) -> Result<PolicyWrite, StoreError> {
        let conn = self.conn();
        let live: Option<i64> = conn
            .prepare_cached("SELECT 1 FROM accounts WHERE id = ?1 AND deleted_at IS NULL")?
            .query_row([account_id], |r| r.get(0))
            .optional()?;
        if live.is_none() {
            return Ok(PolicyWrite::NoAccount);
        }
        let current = self.account_policy(account_id)?.map_or(0, |p| p.version);
        if expected.is_some_and(|e| e != current) {
            return Ok(PolicyWrite::Stale { current });
        }
        let version = current + 1;
        conn.prepare_cached(
            "INSERT INTO account_policies (account_id, version, document, updated_at) \
             VALUES (?1, ?2, ?3, ?4) ON CONFLICT (account_id) DO UPDATE SET \
             version = excluded.version, document = excluded.document, \
             updated_at = excluded.updated_at",
        )?
        .execute(params![account_id, version as i64, document, now])?;
        conn.prepare_cached(
            "INSERT INTO account_policy_history (account_id, version, document, set_at) \
             VALUES (?1, ?2, ?3, ?4)",
        )?
        .execute(params![account_id, version as i64, document, now])?;
        Ok(PolicyWrite::Stored(version))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;
    use crate::store::accounts::AccountRecord;

    #[test]
    fn each_document_gets_the_next_version_and_a_stale_one_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db")).unwrap();
        store
            .write_blocking(|tx| {
                tx.insert_account(&AccountRecord {
                    id: "acc_1".into(),
                    name: "a".into(),
                    created_at: 0,
                })?;
                assert_eq!(tx.account_policy("acc_1")?, None);
                assert_eq!(
                    tx.set_account_policy("acc_1", Some(0), "{}", 1)?,
                    PolicyWrite::Stored(1)
                );
                assert_eq!(
                    tx.set_account_policy("acc_1", None, "{\"a\":1}", 2)?,
                    PolicyWrite::Stored(2)
                );
                assert_eq!(
                    tx.set_account_policy("acc_1", Some(1), "{}", 3)?,
                    PolicyWrite::Stale { current: 2 }
                );
                assert_eq!(
                    tx.set_account_policy("acc_9", None, "{}", 3)?,
                    PolicyWrite::NoAccount
                );
                let stored = tx.account_policy("acc_1")?.unwrap();
                assert_eq!((stored.version, stored.document.as_str()), (2, "{\"a\":1}"));
                assert_eq!(tx.all_policies()?.len(), 1);
                Ok::<_, StoreError>(())
            })
            .unwrap();
    }
}
