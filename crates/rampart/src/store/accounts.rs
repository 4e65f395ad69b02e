//! Accounts and the keyring's wrapped data keys.

use rusqlite::{Connection, OptionalExtension, params};

use super::StoreError;
use crate::clock::Millis;
use crate::data::keyring::WrappedDataKey;

/// An account: the owner of messages and keys.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Account {
    pub id: String,
    pub name: String,
    pub created_at: Millis,
}

pub fn new_account_id() -> String {
    super::new_id("acc")
}

pub fn insert(conn: &Connection, account: &Account) -> Result<(), StoreError> {
    conn.prepare_cached("INSERT INTO accounts (id, name, created_at) VALUES (?1, ?2, ?3)")?
        .execute(params![account.id, account.name, account.created_at])?;
    Ok(())
}

pub fn count(conn: &Connection) -> Result<i64, StoreError> {
    Ok(conn.query_row("SELECT COUNT(*) FROM accounts", [], |r| r.get(0))?)
}

pub fn get(conn: &Connection, id: &str) -> Result<Option<Account>, StoreError> {
    Ok(conn
        .prepare_cached("SELECT id, name, created_at FROM accounts WHERE id = ?1")?
        .query_row([id], |r| {
            Ok(Account {
                id: r.get(0)?,
                name: r.get(1)?,
                created_at: r.get(2)?,
            })
        })
        .optional()?)
}

pub fn list(conn: &Connection) -> Result<Vec<Account>, StoreError> {
    let mut stmt =
        conn.prepare_cached("SELECT id, name, created_at FROM accounts ORDER BY created_at")?;
    let rows = stmt.query_map([], |r| {
        Ok(Account {
            id: r.get(0)?,
            name: r.get(1)?,
            created_at: r.get(2)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub fn data_keys(conn: &Connection) -> Result<Vec<WrappedDataKey>, StoreError> {
    let mut stmt = conn.prepare_cached("SELECT id, wrapped FROM data_keys ORDER BY id")?;
    let rows = stmt.query_map([], |r| {
        Ok(WrappedDataKey {
            id: r.get(0)?,
            wrapped: r.get(1)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub fn insert_data_key(
    conn: &Connection,
    key: &WrappedDataKey,
    now: Millis,
) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO data_keys (id, wrapped, created_at) VALUES (?1, ?2, ?3)",
        params![key.id, key.wrapped, now],
    )?;
    Ok(())
}
