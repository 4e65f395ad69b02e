//! API key records. Every query is scoped by account, so one account never sees another's keys.

use rusqlite::{Connection, OptionalExtension, Row, params};

use super::StoreError;
use crate::clock::Millis;
use crate::identity::Scopes;
use crate::identity::api_keys::StoredApiKey;

const COLUMNS: &str =
    "id, account_id, name, hash, scopes, created_at, expires_at, revoked_at, last_used_at";

fn from_row(r: &Row<'_>) -> rusqlite::Result<StoredApiKey> {
    Ok(StoredApiKey {
        id: r.get(0)?,
        account_id: r.get(1)?,
        name: r.get(2)?,
        hash: r.get(3)?,
        scopes: Scopes::from_stored(&r.get::<_, String>(4)?),
        created_at: r.get(5)?,
        expires_at: r.get(6)?,
        revoked_at: r.get(7)?,
        last_used_at: r.get(8)?,
    })
}

pub fn insert(conn: &Connection, key: &StoredApiKey) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO api_keys (id, account_id, name, hash, scopes, created_at, expires_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        key.id,
        key.account_id,
        key.name,
        key.hash,
        key.scopes.to_stored(),
        key.created_at,
        key.expires_at
    ])?;
    Ok(())
}

/// The key with this public id, whatever its account (authentication).
pub fn find(conn: &Connection, id: &str) -> Result<Option<StoredApiKey>, StoreError> {
    Ok(conn
        .prepare_cached(&format!("SELECT {COLUMNS} FROM api_keys WHERE id = ?1"))?
        .query_row([id], from_row)
        .optional()?)
}

/// The key with this id in this account.
pub fn get(
    conn: &Connection,
    account_id: &str,
    id: &str,
) -> Result<Option<StoredApiKey>, StoreError> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM api_keys WHERE id = ?1 AND account_id = ?2"
        ))?
        .query_row([id, account_id], from_row)
        .optional()?)
}

pub fn list(conn: &Connection, account_id: &str) -> Result<Vec<StoredApiKey>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM api_keys WHERE account_id = ?1 ORDER BY created_at, id"
    ))?;
    let rows = stmt.query_map([account_id], from_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Revokes a key of this account; false when there is no such live key.
pub fn revoke(
    conn: &Connection,
    account_id: &str,
    id: &str,
    now: Millis,
) -> Result<bool, StoreError> {
    let changed = conn
        .prepare_cached("UPDATE api_keys SET revoked_at = ?3 WHERE id = ?1 AND account_id = ?2 AND revoked_at IS NULL")?
        .execute(params![id, account_id, now])?;
    Ok(changed == 1)
}

pub fn touch(conn: &Connection, id: &str, now: Millis) -> Result<(), StoreError> {
    conn.prepare_cached("UPDATE api_keys SET last_used_at = ?2 WHERE id = ?1")?
        .execute(params![id, now])?;
    Ok(())
}
