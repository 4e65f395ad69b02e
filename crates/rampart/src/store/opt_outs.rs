//! Opt-outs (numbers that get no more messages from an account or one of its senders) and
//! each account's opt-out settings. Numbers appear only as blind-index tags and sealed.

use rusqlite::{OptionalExtension, params};

use super::{Db, StoreError};
use crate::clock::Millis;

/// An opt-out as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OptOutRecord {
    pub id: String,
    pub account_id: String,
    /// The number's blind-index tag in its account.
    pub phone_index: Vec<u8>,
    /// The sender the opt-out is limited to; empty for the whole account.
    pub sender: String,
    pub number_sealed: Vec<u8>,
    /// `keyword`, `api` or `import`.
    pub source: String,
    pub created_at: Millis,
}

/// What the send path needs of an opt-out: whose, which tag, which sender.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OptOutEntry {
    pub account_id: String,
    pub phone_index: Vec<u8>,
    pub sender: String,
}

/// An account's opt-out settings as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OptOutSettingsRecord {
    pub account_id: String,
    pub enabled: bool,
    /// `account` or `per_sender`.
    pub scope: String,
    pub help_text: Option<String>,
    pub stop_text: Option<String>,
    pub start_text: Option<String>,
    pub updated_at: Millis,
}

/// Opt-outs and their settings.
pub trait OptOuts {
    /// Adds an opt-out; false when the number was already opted out with that sender.
    fn insert_opt_out(&self, row: &OptOutRecord) -> Result<bool, StoreError>;
    /// Removes the account's opt-outs of a number: with `sender`, the one limited to it and
    /// the account-wide one; without, every one. The ids removed.
    fn delete_opt_outs(
        &self,
        account_id: &str,
        phone_index: &[u8],
        sender: Option<&str>,
    ) -> Result<Vec<String>, StoreError>;
    /// A page of the account's opt-outs, newest first, older than the cursor (an id of the
    /// same account; another's gives an empty page).
    fn list_opt_outs(
        &self,
        account_id: &str,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Vec<OptOutRecord>, StoreError>;
    /// Every opt-out of every account (the send path's copy).
    fn all_opt_outs(&self) -> Result<Vec<OptOutEntry>, StoreError>;
    /// The counter every change to `opt_outs` bumps.
    fn opt_outs_version(&self) -> Result<i64, StoreError>;
    fn opt_out_settings(
        &self,
        account_id: &str,
    ) -> Result<Option<OptOutSettingsRecord>, StoreError>;
    fn set_opt_out_settings(&self, row: &OptOutSettingsRecord) -> Result<(), StoreError>;
}

const COLUMNS: &str = "id, account_id, phone_index, sender, number_sealed, source, created_at";

fn record(r: &rusqlite::Row<'_>) -> rusqlite::Result<OptOutRecord> {
    Ok(OptOutRecord {
        id: r.get(0)?,
        account_id: r.get(1)?,
        phone_index: r.get(2)?,
        sender: r.get(3)?,
        number_sealed: r.get(4)?,
        source: r.get(5)?,
        created_at: r.get(6)?,
    })
}

impl OptOuts for Db<'_> {
    fn insert_opt_out(&self, row: &OptOutRecord) -> Result<bool, StoreError> {
        Ok(self
            .conn()
            .prepare_cached(&format!(
                "INSERT INTO opt_outs ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) \
                 ON CONFLICT (account_id, phone_index, sender) DO NOTHING"
            ))?
            .execute(params![
                row.id,
                row.account_id,
                row.phone_index,
                row.sender,
                row.number_sealed,
                row.source,
                row.created_at
            ])?
            == 1)
    }

    fn delete_opt_outs(
        &self,
        account_id: &str,
        phone_index: &[u8],
        sender: Option<&str>,
    ) -> Result<Vec<String>, StoreError> {
        let mut stmt = self.conn().prepare_cached(
            "DELETE FROM opt_outs WHERE account_id = ?1 AND phone_index = ?2 \
             AND (?3 IS NULL OR sender IN ('', ?3)) RETURNING id",
        )?;
        let ids = stmt.query_map(params![account_id, phone_index, sender], |r| r.get(0))?;
        Ok(ids.collect::<Result<_, _>>()?)
    }

    fn list_opt_outs(
        &self,
        account_id: &str,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Vec<OptOutRecord>, StoreError> {
        let mut stmt = self.conn().prepare_cached(&format!(
            "SELECT {COLUMNS} FROM opt_outs WHERE account_id = ?1 AND (?2 IS NULL OR id < \
             (SELECT id FROM opt_outs WHERE id = ?2 AND account_id = ?1)) \
             ORDER BY id DESC LIMIT ?3"
        ))?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = stmt.query_map(params![account_id, cursor, limit], record)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn all_opt_outs(&self) -> Result<Vec<OptOutEntry>, StoreError> {
        let mut stmt = self
            .conn()
            .prepare_cached("SELECT account_id, phone_index, sender FROM opt_outs")?;
        let rows = stmt.query_map([], |r| {
            Ok(OptOutEntry {
                account_id: r.get(0)?,
                phone_index: r.get(1)?,
                sender: r.get(2)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn opt_outs_version(&self) -> Result<i64, StoreError> {
        Ok(self
            .conn()
            .prepare_cached("SELECT version FROM opt_outs_version WHERE id = 1")?
            .query_row([], |r| r.get(0))?)
    }

    fn opt_out_settings(
        &self,
        account_id: &str,
    ) -> Result<Option<OptOutSettingsRecord>, StoreError> {
        Ok(self
            .conn()
            .prepare_cached(
                "SELECT account_id, enabled, scope, help_text, stop_text, start_text, updated_at \
                 FROM opt_out_settings WHERE account_id = ?1",
            )?
            .query_row([account_id], |r| {
                Ok(OptOutSettingsRecord {
                    account_id: r.get(0)?,
                    enabled: r.get(1)?,
                    scope: r.get(2)?,
                    help_text: r.get(3)?,
                    stop_text: r.get(4)?,
                    start_text: r.get(5)?,
                    updated_at: r.get(6)?,
                })
            })
            .optional()?)
    }

    fn set_opt_out_settings(&self, row: &OptOutSettingsRecord) -> Result<(), StoreError> {
        self.conn()
            .prepare_cached(
                "INSERT INTO opt_out_settings \
                 (account_id, enabled, scope, help_text, stop_text, start_text, updated_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (account_id) DO UPDATE SET \
                 enabled = excluded.enabled, scope = excluded.scope, \
                 help_text = excluded.help_text, stop_text = excluded.stop_text, \
                 start_text = excluded.start_text, updated_at = excluded.updated_at",
            )?
            .execute(params![
                row.account_id,
                row.enabled,
                row.scope,
                row.help_text,
                row.stop_text,
                row.start_text,
                row.updated_at
            ])?;
        Ok(())
    }
}
