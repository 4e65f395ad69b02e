//! API key records. Every query but the authentication lookup is scoped by account, so one
//! account never sees another's keys.

use rusqlite::{OptionalExtension, Row, params};

use super::{Db, StoreError};
use crate::clock::Millis;

/// An API key as stored: the keyed hash of the token, never the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyRecord {
    pub id: String,
    /// The account the key acts in; `None` for an operator's key over the instance.
    pub account_id: Option<String>,
    pub name: String,
    pub hash: Vec<u8>,
    /// Scope names separated by spaces.
    pub scopes: String,
    pub created_at: Millis,
    pub expires_at: Option<Millis>,
    pub revoked_at: Option<Millis>,
    pub last_used_at: Option<Millis>,
    /// Networks the key may be used from, separated by spaces; empty for any.
    pub allowed_ips: String,
    /// The person the key belongs to (`None`: made by the local operator's command).
    pub user_id: Option<String>,
    /// The key that made this one; revoking it revokes this one.
    pub parent_id: Option<String>,
    /// The SHA-256 (64 lowercase hex digits) of the client certificate the key must be used
    /// with; `None`: no certificate needed.
    pub client_cert_sha256: Option<String>,
}

/// API keys.
pub trait ApiKeys {
    fn insert_api_key(&self, key: &ApiKeyRecord) -> Result<(), StoreError>;
    /// The key with this public id, whatever its account (authentication).
    fn find_api_key(&self, id: &str) -> Result<Option<ApiKeyRecord>, StoreError>;
    /// The key with this id in this account.
    fn get_api_key(&self, account_id: &str, id: &str) -> Result<Option<ApiKeyRecord>, StoreError>;
    /// The account's keys, oldest first.
    fn list_api_keys(&self, account_id: &str) -> Result<Vec<ApiKeyRecord>, StoreError>;
    /// The operators' keys (no account), oldest first.
    fn list_operator_api_keys(&self) -> Result<Vec<ApiKeyRecord>, StoreError>;
    /// Revokes a live key and every live key it made, directly or not; returns how many.
    fn revoke_api_key_tree(&self, id: &str, now: Millis) -> Result<usize, StoreError>;
    /// Revokes every live key of the person (in one account, or everywhere) and the keys
    /// those made; returns how many.
    fn revoke_api_keys_of_user(
        &self,
        user_id: &str,
        account_id: Option<&str>,
        now: Millis,
    ) -> Result<usize, StoreError>;
    fn touch_api_key(&self, id: &str, now: Millis) -> Result<(), StoreError>;
}

const COLUMNS: &str = "id, account_id, name, hash, scopes, created_at, expires_at, revoked_at, \
     last_used_at, allowed_ips, user_id, parent_id, client_cert_sha256";

fn from_row(r: &Row<'_>) -> rusqlite::Result<ApiKeyRecord> {
    Ok(ApiKeyRecord {
        id: r.get(0)?,
        account_id: r.get(1)?,
        name: r.get(2)?,
        hash: r.get(3)?,
        scopes: r.get(4)?,
        created_at: r.get(5)?,
        expires_at: r.get(6)?,
        revoked_at: r.get(7)?,
        last_used_at: r.get(8)?,
        allowed_ips: r.get(9)?,
        user_id: r.get(10)?,
        parent_id: r.get(11)?,
        client_cert_sha256: r.get(12)?,
    })
}

impl ApiKeys for Db<'_> {
    fn insert_api_key(&self, key: &ApiKeyRecord) -> Result<(), StoreError> {
        self.conn()
            .prepare_cached(
                "INSERT INTO api_keys (id, account_id, name, hash, scopes, created_at, expires_at, \
                 allowed_ips, user_id, parent_id, client_cert_sha256) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            )?
            .execute(params![
                key.id,
                key.account_id,
                key.name,
                key.hash,
                key.scopes,
                key.created_at,
                key.expires_at,
                key.allowed_ips,
                key.user_id,
                key.parent_id,
                key.client_cert_sha256
            ])?;
        Ok(())
    }

    fn find_api_key(&self, id: &str) -> Result<Option<ApiKeyRecord>, StoreError> {
        Ok(self
            .conn()
            .prepare_cached(&format!("SELECT {COLUMNS} FROM api_keys WHERE id = ?1"))?
            .query_row([id], from_row)
            .optional()?)
    }

    fn get_api_key(&self, account_id: &str, id: &str) -> Result<Option<ApiKeyRecord>, StoreError> {
        Ok(self
            .conn()
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM api_keys WHERE id = ?1 AND account_id = ?2"
            ))?
            .query_row([id, account_id], from_row)
            .optional()?)
    }

    fn list_api_keys(&self, account_id: &str) -> Result<Vec<ApiKeyRecord>, StoreError> {
        let mut stmt = self.conn().prepare_cached(&format!(
            "SELECT {COLUMNS} FROM api_keys WHERE account_id = ?1 ORDER BY created_at, id"
        ))?;
        let rows = stmt.query_map([account_id], from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn list_operator_api_keys(&self) -> Result<Vec<ApiKeyRecord>, StoreError> {
        let mut stmt = self.conn().prepare_cached(&format!(
            "SELECT {COLUMNS} FROM api_keys WHERE account_id IS NULL ORDER BY created_at, id"
        ))?;
        let rows = stmt.query_map([], from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn revoke_api_key_tree(&self, id: &str, now: Millis) -> Result<usize, StoreError> {
        Ok(self
            .conn()
            .prepare_cached(
                "WITH RECURSIVE tree(id) AS ( \
                     SELECT id FROM api_keys WHERE id = ?1 \
                     UNION SELECT k.id FROM api_keys k JOIN tree t ON k.parent_id = t.id) \
                 UPDATE api_keys SET revoked_at = ?2 \
                 WHERE id IN (SELECT id FROM tree) AND revoked_at IS NULL",
            )?
            .execute(params![id, now])?)
    }

    fn revoke_api_keys_of_user(
        &self,
        user_id: &str,
        account_id: Option<&str>,
        now: Millis,
    ) -> Result<usize, StoreError> {
        Ok(self
            .conn()
            .prepare_cached(
                "WITH RECURSIVE tree(id) AS ( \
                     SELECT id FROM api_keys WHERE user_id = ?1 \
                         AND (?2 IS NULL OR account_id = ?2) \
                     UNION SELECT k.id FROM api_keys k JOIN tree t ON k.parent_id = t.id) \
                 UPDATE api_keys SET revoked_at = ?3 \
                 WHERE id IN (SELECT id FROM tree) AND revoked_at IS NULL",
            )?
            .execute(params![user_id, account_id, now])?)
    }

    fn touch_api_key(&self, id: &str, now: Millis) -> Result<(), StoreError> {
        self.conn()
            .prepare_cached("UPDATE api_keys SET last_used_at = ?2 WHERE id = ?1")?
            .execute(params![id, now])?;
        Ok(())
    }
}
