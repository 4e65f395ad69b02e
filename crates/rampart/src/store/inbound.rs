//! Inbound (mobile-originated) messages, stored for the account that owns the number they
//! were sent to. Every query is scoped by account.

use rusqlite::{OptionalExtension, Row, params, params_from_iter};

use super::messages::SealedPair;
use super::{Db, StoreError};
use crate::clock::Millis;

/// An inbound message (sender and body already encrypted).
#[derive(Debug, Clone)]
pub struct InboundRecord {
    pub id: String,
    pub account_id: String,
    /// Sealed (see `data::sealing`).
    pub from_sealed: Vec<u8>,
    /// Blind index of the sender, domain `phone` (as for outbound recipients).
    pub from_index: [u8; 16],
    pub to_number: String,
    /// Sealed (see `data::sealing`).
    pub body_sealed: Vec<u8>,
    pub connector: String,
    pub received_at: Millis,
    /// When retention erased the body (`body_sealed` is then empty).
    pub body_erased_at: Option<Millis>,
}

const COLUMNS: &str = "id, account_id, from_sealed, from_index, to_number, body_sealed, connector, \
     received_at, body_erased_at";

fn from_row(r: &Row<'_>) -> rusqlite::Result<InboundRecord> {
    let index: Vec<u8> = r.get(3)?;
    Ok(InboundRecord {
        id: r.get(0)?,
        account_id: r.get(1)?,
        from_sealed: r.get(2)?,
        from_index: index.as_slice().try_into().map_err(|_| {
            rusqlite::Error::FromSqlConversionFailure(
                3,
                rusqlite::types::Type::Blob,
                "blind index of the wrong length".into(),
            )
        })?,
        to_number: r.get(4)?,
        body_sealed: r.get(5)?,
        connector: r.get(6)?,
        received_at: r.get(7)?,
        body_erased_at: r.get(8)?,
    })
}

/// Filters for listing an account's inbound messages, newest first.
#[derive(Debug, Clone, Default)]
pub struct InboundFilter {
    pub from_index: Option<[u8; 16]>,
    pub to_number: Option<String>,
    /// Only messages with ids below this one (the cursor).
    pub before_id: Option<String>,
    pub limit: usize,
}

/// Inbound messages.
pub trait Inbound {
    fn insert_inbound(&self, row: &InboundRecord) -> Result<(), StoreError>;
    /// Every account's inbound messages' sealed fields, by id after `after_id` (integrity
    /// checks; not scoped by account).
    fn sealed_inbound_page(
        &self,
        after_id: &str,
        limit: usize,
    ) -> Result<Vec<SealedPair>, StoreError>;
    fn get_inbound(&self, account_id: &str, id: &str) -> Result<Option<InboundRecord>, StoreError>;
    /// The account's inbound messages, newest first.
    fn list_inbound(
        &self,
        account_id: &str,
        filter: &InboundFilter,
    ) -> Result<Vec<InboundRecord>, StoreError>;
}

impl Inbound for Db<'_> {
    fn sealed_inbound_page(
        &self,
        after_id: &str,
        limit: usize,
    ) -> Result<Vec<SealedPair>, StoreError> {
        let mut stmt = self.conn().prepare_cached(
            "SELECT id, account_id, from_sealed, body_sealed, body_erased_at IS NOT NULL \
             FROM inbound_messages \
             WHERE id > ?1 ORDER BY id LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![after_id, limit as i64], |r| {
            Ok(SealedPair {
                id: r.get(0)?,
                account_id: r.get(1)?,
                number: r.get(2)?,
                body: r.get(3)?,
                body_erased: r.get(4)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn insert_inbound(&self, row: &InboundRecord) -> Result<(), StoreError> {
        self.conn()
            .prepare_cached(&format!(
                "INSERT INTO inbound_messages ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
            ))?
            .execute(params![
                row.id,
                row.account_id,
                row.from_sealed,
                &row.from_index[..],
                row.to_number,
                row.body_sealed,
                row.connector,
                row.received_at,
                row.body_erased_at,
            ])?;
        Ok(())
    }

    fn get_inbound(&self, account_id: &str, id: &str) -> Result<Option<InboundRecord>, StoreError> {
        Ok(self
            .conn()
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM inbound_messages WHERE id = ?1 AND account_id = ?2"
            ))?
            .query_row([id, account_id], from_row)
            .optional()?)
    }

    fn list_inbound(
        &self,
        account_id: &str,
        filter: &InboundFilter,
    ) -> Result<Vec<InboundRecord>, StoreError> {
        let mut sql = format!("SELECT {COLUMNS} FROM inbound_messages WHERE account_id = ?");
        let mut args: Vec<rusqlite::types::Value> = vec![account_id.to_owned().into()];
        if let Some(index) = filter.from_index {
            sql.push_str(" AND from_index = ?");
            args.push(index.to_vec().into());
        }
        if let Some(to) = &filter.to_number {
            sql.push_str(" AND to_number = ?");
            args.push(to.clone().into());
        }
        if let Some(id) = &filter.before_id {
            // As for messages: the cursor must be one of the account's own rows, else the
            // page is empty.
            sql.push_str(
                " AND id < (SELECT id FROM inbound_messages WHERE id = ? AND account_id = ?)",
            );
            args.push(id.clone().into());
            args.push(account_id.to_owned().into());
        }
        sql.push_str(" ORDER BY id DESC LIMIT ?");
        args.push((filter.limit as i64).into());
        let mut stmt = self.conn().prepare_cached(&sql)?;
        let rows = stmt.query_map(params_from_iter(args), from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}
