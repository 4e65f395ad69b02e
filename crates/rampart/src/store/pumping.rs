//! The pumping defence's durable state: prefixes blocked per account, and each account's safe
//! list. (The counting itself is in memory, in `policy::pumping`.)

use rusqlite::params;

use super::{Db, StoreError};
use crate::clock::Millis;

/// A blocked prefix as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PumpingBlockRecord {
    pub account_id: String,
    pub prefix: String,
    pub until: Millis,
    /// The rule that tripped (`sequential_numbers`, `prefix_velocity`, `country_velocity`).
    pub reason: String,
    pub created_at: Millis,
}

/// Blocks and safe lists.
pub trait Pumping {
    fn upsert_pumping_block(&self, row: &PumpingBlockRecord) -> Result<(), StoreError>;
    /// Blocks still running at `now`: one account's, or every one's.
    fn list_pumping_blocks(
        &self,
        account_id: Option<&str>,
        now: Millis,
    ) -> Result<Vec<PumpingBlockRecord>, StoreError>;
    /// Lifts a block; false when there was none.
    fn delete_pumping_block(&self, account_id: &str, prefix: &str) -> Result<bool, StoreError>;
    /// Adds a safe prefix; false when it was listed.
    fn insert_safe_prefix(
        &self,
        account_id: &str,
        prefix: &str,
        now: Millis,
    ) -> Result<bool, StoreError>;
    fn delete_safe_prefix(&self, account_id: &str, prefix: &str) -> Result<bool, StoreError>;
    /// Every safe prefix: (account, prefix), one account's or all.
    fn list_safe_prefixes(
        &self,
        account_id: Option<&str>,
    ) -> Result<Vec<(String, String)>, StoreError>;
    /// The counter every change to blocks and safe lists bumps.
    fn pumping_version(&self) -> Result<i64, StoreError>;
}

impl Pumping for Db<'_> {
    fn upsert_pumping_block(&self, row: &PumpingBlockRecord) -> Result<(), StoreError> {
        self.conn()
            .prepare_cached(
                "INSERT INTO pumping_blocks (account_id, prefix, until, reason, created_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (account_id, prefix) DO UPDATE SET \
                 until = excluded.until, reason = excluded.reason",
            )?
            .execute(params![
                row.account_id,
                row.prefix,
                row.until,
                row.reason,
                row.created_at
            ])?;
        Ok(())
    }

    fn list_pumping_blocks(
        &self,
        account_id: Option<&str>,
        now: Millis,
    ) -> Result<Vec<PumpingBlockRecord>, StoreError> {
        let mut stmt = self.conn().prepare_cached(
            "SELECT account_id, prefix, until, reason, created_at FROM pumping_blocks \
             WHERE until > ?1 AND (?2 IS NULL OR account_id = ?2) ORDER BY until",
        )?;
        let rows = stmt.query_map(params![now, account_id], |r| {
            Ok(PumpingBlockRecord {
                account_id: r.get(0)?,
                prefix: r.get(1)?,
                until: r.get(2)?,
                reason: r.get(3)?,
                created_at: r.get(4)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn delete_pumping_block(&self, account_id: &str, prefix: &str) -> Result<bool, StoreError> {
        Ok(self
            .conn()
            .prepare_cached("DELETE FROM pumping_blocks WHERE account_id = ?1 AND prefix = ?2")?
            .execute([account_id, prefix])?
            == 1)
    }

    fn insert_safe_prefix(
        &self,
        account_id: &str,
        prefix: &str,
        now: Millis,
    ) -> Result<bool, StoreError> {
        Ok(self
            .conn()
            .prepare_cached(
                "INSERT INTO pumping_safe_prefixes (account_id, prefix, created_at) \
                 VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
            )?
            .execute(params![account_id, prefix, now])?
            == 1)
    }

    fn delete_safe_prefix(&self, account_id: &str, prefix: &str) -> Result<bool, StoreError> {
        Ok(self
            .conn()
            .prepare_cached(
                "DELETE FROM pumping_safe_prefixes WHERE account_id = ?1 AND prefix = ?2",
            )?
            .execute([account_id, prefix])?
            == 1)
    }

    fn list_safe_prefixes(
        &self,
        account_id: Option<&str>,
    ) -> Result<Vec<(String, String)>, StoreError> {
        let mut stmt = self.conn().prepare_cached(
            "SELECT account_id, prefix FROM pumping_safe_prefixes \
             WHERE ?1 IS NULL OR account_id = ?1 ORDER BY account_id, prefix",
        )?;
        let rows = stmt.query_map(params![account_id], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn pumping_version(&self) -> Result<i64, StoreError> {
        Ok(self
            .conn()
            .prepare_cached("SELECT version FROM pumping_version WHERE id = 1")?
            .query_row([], |r| r.get(0))?)
    }
}
