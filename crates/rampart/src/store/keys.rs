//! The keyring's stored keys (key-encryption keys and data keys, all wrapped) and the sealed
//! columns a re-encryption walks.

use rusqlite::{OptionalExtension, Row, params};

use super::{Db, StoreError};
use crate::clock::Millis;

/// A key-encryption key wrapped by one master key, named by that master key's fingerprint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KekRecord {
    pub id: u32,
    pub master_fp: Vec<u8>,
    pub wrapped: Vec<u8>,
    pub created_at: Millis,
}

/// What a stored key is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyPurpose {
    /// AES-256-GCM for sealed fields, of one account or (no account) of the instance.
    Data,
    /// The HMAC key API keys, session tokens and one-time codes are stored under.
    ApiKeyHash,
    /// The root each account's blind-index key is derived from.
    IndexRoot,
    /// The one blind-index key of releases before per-account indexes (their accounts' tags).
    LegacyIndex,
}

impl KeyPurpose {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Data => "data",
            Self::ApiKeyHash => "api-key-hash",
            Self::IndexRoot => "index-root",
            Self::LegacyIndex => "legacy-index",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        [
            Self::Data,
            Self::ApiKeyHash,
            Self::IndexRoot,
            Self::LegacyIndex,
        ]
        .into_iter()
        .find(|p| p.as_str() == text)
    }
}

/// A data key (or another keyring key) as stored: wrapped by key-encryption key `kek_id`
/// (`None`: by the key earlier releases derived from the master key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataKeyRecord {
    pub id: u32,
    pub account_id: Option<String>,
    pub purpose: KeyPurpose,
    pub kek_id: Option<u32>,
    /// Empty once retired: the key's material is erased.
    pub wrapped: Vec<u8>,
    /// Encryptions counted so far (flushed from memory now and then).
    pub uses: u64,
    pub created_at: Millis,
    pub retired_at: Option<Millis>,
}

/// A column whose values are sealed by the keyring.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SealedColumn {
    MessageTo,
    MessageBody,
    InboundFrom,
    InboundBody,
    ConnectorPassword,
    UserPhone,
    FactorSecret,
    ChallengeState,
    OptOutNumber,
}

impl SealedColumn {
    pub const ALL: [Self; 9] = [
        Self::MessageTo,
        Self::MessageBody,
        Self::InboundFrom,
        Self::InboundBody,
        Self::ConnectorPassword,
        Self::UserPhone,
        Self::FactorSecret,
        Self::ChallengeState,
        Self::OptOutNumber,
    ];

    /// Table, column, row key and the account expression ('' for the instance's rows).
    fn sql(self) -> (&'static str, &'static str, &'static str, &'static str) {
        match self {
            Self::MessageTo => ("messages", "to_sealed", "id", "account_id"),
            Self::MessageBody => ("messages", "body_sealed", "id", "account_id"),
            Self::InboundFrom => ("inbound_messages", "from_sealed", "id", "account_id"),
            Self::InboundBody => ("inbound_messages", "body_sealed", "id", "account_id"),
            Self::ConnectorPassword => ("connectors", "password_sealed", "name", "''"),
            Self::UserPhone => ("users", "phone_sealed", "id", "''"),
            Self::FactorSecret => ("factors", "secret_sealed", "id", "''"),
            Self::ChallengeState => ("challenges", "state_sealed", "id", "''"),
            Self::OptOutNumber => ("opt_outs", "number_sealed", "id", "account_id"),
        }
    }
}

/// One sealed value with what binds it.
#[derive(Debug, Clone)]
pub struct SealedCell {
    pub row: String,
    /// Empty for the instance's own rows (operators, people).
    pub account_id: String,
    pub sealed: Vec<u8>,
}

/// A summary that changes whenever a key is added, retired or destroyed (cheap to poll).
pub type KeysVersion = (i64, i64, i64);

/// Stored keys.
pub trait Keys {
    fn keks(&self) -> Result<Vec<KekRecord>, StoreError>;
    fn insert_kek(&self, kek: &KekRecord) -> Result<(), StoreError>;
    /// Drops the wraps made by other master keys than `master_fp`; how many went.
    fn delete_keks_not_under(&self, master_fp: &[u8]) -> Result<usize, StoreError>;
    /// Every stored key, oldest first.
    fn data_keys(&self) -> Result<Vec<DataKeyRecord>, StoreError>;
    fn keys_version(&self) -> Result<KeysVersion, StoreError>;
    /// The id the next key takes.
    fn next_data_key_id(&self) -> Result<u32, StoreError>;
    fn insert_data_key(&self, key: &DataKeyRecord) -> Result<(), StoreError>;
    /// Stores key `id` wrapped anew, by key-encryption key `kek_id`.
    fn rewrap_data_key(&self, id: u32, kek_id: u32, wrapped: &[u8]) -> Result<(), StoreError>;
    fn add_key_uses(&self, id: u32, uses: u64) -> Result<(), StoreError>;
    /// Erases key `id`'s material and marks it retired; false when it already was.
    fn retire_data_key(&self, id: u32, now: Millis) -> Result<bool, StoreError>;
    /// Erases the material of every data key of `account` (crypto-shredding); how many.
    fn destroy_account_keys(&self, account: &str, now: Millis) -> Result<usize, StoreError>;
    /// Accounts that have no data key of their own yet.
    fn accounts_without_data_key(&self) -> Result<Vec<String>, StoreError>;
    /// Accounts whose rows carry the instance-wide blind index of earlier releases.
    fn legacy_index_accounts(&self) -> Result<Vec<String>, StoreError>;
    /// Up to `limit` sealed values of `column` in row-key order after `after`.
    fn sealed_cells(
        &self,
        column: SealedColumn,
        after: &str,
        limit: usize,
    ) -> Result<Vec<SealedCell>, StoreError>;
    /// Replaces a sealed value if it is still `old` (a concurrent change wins).
    fn replace_sealed(
        &self,
        column: SealedColumn,
        row: &str,
        old: &[u8],
        new: &[u8],
    ) -> Result<bool, StoreError>;
    /// Rows of `column` (sealed or not).
    fn count_rows(&self, column: SealedColumn) -> Result<u64, StoreError>;
    /// Values of `column` sealed under data key `key_id` (any ciphertext format).
    fn count_sealed_under(&self, column: SealedColumn, key_id: u32) -> Result<u64, StoreError>;
}

fn data_key_from_row(r: &Row<'_>) -> rusqlite::Result<DataKeyRecord> {
    let purpose: String = r.get(2)?;
    Ok(DataKeyRecord {
        id: r.get(0)?,
        account_id: r.get(1)?,
        purpose: KeyPurpose::parse(&purpose).ok_or_else(|| {
            rusqlite::Error::FromSqlConversionFailure(
                2,
                rusqlite::types::Type::Text,
                format!("unknown key purpose {purpose:?}").into(),
            )
        })?,
        kek_id: r.get(3)?,
        wrapped: r.get(4)?,
        uses: r.get::<_, i64>(5)?.max(0) as u64,
        created_at: r.get(6)?,
        retired_at: r.get(7)?,
    })
}

impl Keys for Db<'_> {
    fn keks(&self) -> Result<Vec<KekRecord>, StoreError> {
        let mut stmt = self
            .conn()
            .prepare_cached("SELECT id, master_fp, wrapped, created_at FROM keks ORDER BY id")?;
        let rows = stmt.query_map([], |r| {
            Ok(KekRecord {
                id: r.get(0)?,
                master_fp: r.get(1)?,
                wrapped: r.get(2)?,
                created_at: r.get(3)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn insert_kek(&self, kek: &KekRecord) -> Result<(), StoreError> {
        self.conn().execute(
            "INSERT INTO keks (id, master_fp, wrapped, created_at) VALUES (?1, ?2, ?3, ?4)",
            params![kek.id, kek.master_fp, kek.wrapped, kek.created_at],
        )?;
        Ok(())
    }

    fn delete_keks_not_under(&self, master_fp: &[u8]) -> Result<usize, StoreError> {
        Ok(self
            .conn()
            .execute("DELETE FROM keks WHERE master_fp != ?1", [master_fp])?)
    }

    fn data_keys(&self) -> Result<Vec<DataKeyRecord>, StoreError> {
        let mut stmt = self.conn().prepare_cached(
            "SELECT id, account_id, purpose, kek_id, wrapped, uses, created_at, retired_at \
             FROM data_keys ORDER BY id",
        )?;
        let rows = stmt.query_map([], data_key_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn keys_version(&self) -> Result<KeysVersion, StoreError> {
        Ok(self
            .conn()
            .prepare_cached(
                "SELECT count(*), coalesce(max(id), 0), count(retired_at) FROM data_keys",
            )?
            .query_row([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?)
    }

    fn next_data_key_id(&self) -> Result<u32, StoreError> {
        Ok(self
            .conn()
            .prepare_cached("SELECT coalesce(max(id), 0) + 1 FROM data_keys")?
            .query_row([], |r| r.get(0))?)
    }

    fn insert_data_key(&self, key: &DataKeyRecord) -> Result<(), StoreError> {
        self.conn().execute(
            "INSERT INTO data_keys \
             (id, account_id, purpose, kek_id, wrapped, uses, created_at, retired_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                key.id,
                key.account_id,
                key.purpose.as_str(),
                key.kek_id,
                key.wrapped,
                key.uses as i64,
                key.created_at,
                key.retired_at
            ],
        )?;
        Ok(())
    }

    fn rewrap_data_key(&self, id: u32, kek_id: u32, wrapped: &[u8]) -> Result<(), StoreError> {
        self.conn().execute(
            "UPDATE data_keys SET kek_id = ?2, wrapped = ?3 WHERE id = ?1",
            params![id, kek_id, wrapped],
        )?;
        Ok(())
    }

    fn add_key_uses(&self, id: u32, uses: u64) -> Result<(), StoreError> {
        self.conn()
            .prepare_cached("UPDATE data_keys SET uses = uses + ?2 WHERE id = ?1")?
            .execute(params![id, uses as i64])?;
        Ok(())
    }

    fn retire_data_key(&self, id: u32, now: Millis) -> Result<bool, StoreError> {
        Ok(self.conn().execute(
            "UPDATE data_keys SET wrapped = X'', retired_at = ?2 \
             WHERE id = ?1 AND retired_at IS NULL",
            params![id, now],
        )? == 1)
    }

    fn destroy_account_keys(&self, account: &str, now: Millis) -> Result<usize, StoreError> {
        Ok(self.conn().execute(
            "UPDATE data_keys SET wrapped = X'', retired_at = coalesce(retired_at, ?2) \
             WHERE account_id = ?1 AND wrapped != X''",
            params![account, now],
        )?)
    }

    fn accounts_without_data_key(&self) -> Result<Vec<String>, StoreError> {
        let mut stmt = self.conn().prepare_cached(
            "SELECT id FROM accounts a WHERE deleted_at IS NULL AND NOT EXISTS \
             (SELECT 1 FROM data_keys k WHERE k.account_id = a.id AND k.purpose = 'data') \
             ORDER BY created_at, id",
        )?;
        let rows = stmt.query_map([], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn legacy_index_accounts(&self) -> Result<Vec<String>, StoreError> {
        let mut stmt = self
            .conn()
            .prepare_cached("SELECT id FROM accounts WHERE legacy_index = 1 ORDER BY id")?;
        let rows = stmt.query_map([], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn sealed_cells(
        &self,
        column: SealedColumn,
        after: &str,
        limit: usize,
    ) -> Result<Vec<SealedCell>, StoreError> {
        let (table, col, key, account) = column.sql();
        let sql = format!(
            "SELECT {key}, {account}, {col} FROM {table} \
             WHERE {key} > ?1 AND {col} IS NOT NULL ORDER BY {key} LIMIT ?2"
        );
        let mut stmt = self.conn().prepare_cached(&sql)?;
        let rows = stmt.query_map(params![after, limit as i64], |r| {
            Ok(SealedCell {
                row: r.get(0)?,
                account_id: r.get(1)?,
                sealed: r.get(2)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn replace_sealed(
        &self,
        column: SealedColumn,
        row: &str,
        old: &[u8],
        new: &[u8],
    ) -> Result<bool, StoreError> {
        let (table, col, key, _) = column.sql();
        let sql = format!("UPDATE {table} SET {col} = ?1 WHERE {key} = ?2 AND {col} = ?3");
        Ok(self
            .conn()
            .prepare_cached(&sql)?
            .execute(params![new, row, old])?
            == 1)
    }

    fn count_rows(&self, column: SealedColumn) -> Result<u64, StoreError> {
        let (table, ..) = column.sql();
        let n: i64 = self
            .conn()
            .prepare_cached(&format!("SELECT count(*) FROM {table}"))?
            .query_row([], |r| r.get(0))?;
        Ok(n.max(0) as u64)
    }

    fn count_sealed_under(&self, column: SealedColumn, key_id: u32) -> Result<u64, StoreError> {
        let (table, col, ..) = column.sql();
        // Every ciphertext format starts with one format byte and the key id (4 bytes, big
        // endian).
        let sql = format!("SELECT count(*) FROM {table} WHERE substr({col}, 2, 4) = ?1");
        let n: Option<i64> = self
            .conn()
            .prepare_cached(&sql)?
            .query_row([key_id.to_be_bytes().as_slice()], |r| r.get(0))
            .optional()?;
        Ok(n.unwrap_or(0).max(0) as u64)
    }
}
