//! The audit trail, append-only and hash-chained: events are added inside the transaction of
//! the change they describe, each row committing to the one before it; signed checkpoints pin
//! the chain's head from time to time (written by the writer thread, see `store/mod.rs`).
//!
//! The chain's format lives here because the store computes it on every insert: the hash of
//! row `n` is `SHA-256(hash(n-1) || encode(row n))`, with 32 zero bytes before the first row,
//! and `encode` a length-prefixed encoding of every column (see [`chain_hash`]). Checking it,
//! and the checkpoints' signatures, is `data::integrity`'s work.

use rusqlite::{Connection, OptionalExtension, Row, params};
use sha2::{Digest, Sha256};

use super::{Db, StoreError};
use crate::clock::Millis;

/// What comes "before" the first row of the chain.
pub const GENESIS_HASH: [u8; 32] = [0; 32];

/// One audit event as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    /// Its place in the trail (and the chain).
    pub seq: i64,
    pub at: Millis,
    /// `api_key`, `user`, `operator` or `system`.
    pub actor_kind: String,
    pub actor_id: Option<String>,
    pub account_id: Option<String>,
    /// What was done, e.g. `api_key.revoke`.
    pub action: String,
    /// The id of what it was done to.
    pub target: String,
    pub client_ip: Option<String>,
    /// `ok`, or `denied:<code>`.
    pub outcome: String,
}

impl AuditRecord {
    /// The record's columns, borrowed, as the chain encodes them.
    pub fn as_new(&self) -> NewAuditRecord<'_> {
        NewAuditRecord {
            at: self.at,
            actor_kind: &self.actor_kind,
            actor_id: self.actor_id.as_deref(),
            account_id: self.account_id.as_deref(),
            action: &self.action,
            target: &self.target,
            client_ip: self.client_ip.as_deref(),
            outcome: &self.outcome,
        }
    }
}

/// An audit row with the chain hash stored beside it (`None`: the row has none, a finding).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainedAuditRecord {
    pub record: AuditRecord,
    pub hash: Option<Vec<u8>>,
}

/// A signed checkpoint: the chain's head at `seq` was `hash` at `at`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditCheckpoint {
    pub seq: i64,
    pub hash: Vec<u8>,
    pub at: Millis,
    pub signature: Vec<u8>,
}

/// An audit event to add, borrowed from the caller (it is written on every send, so it is
/// not copied on the way in).
#[derive(Debug, Clone, Copy)]
pub struct NewAuditRecord<'a> {
    pub at: Millis,
    pub actor_kind: &'a str,
    pub actor_id: Option<&'a str>,
    pub account_id: Option<&'a str>,
    pub action: &'a str,
    pub target: &'a str,
    pub client_ip: Option<&'a str>,
    pub outcome: &'a str,
}

/// Which events to list, newest first.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    /// One account's events; `None` for every event of the instance.
    pub account_id: Option<String>,
    /// The actor's id (a key or user id), or its kind for actors without one (`operator`,
    /// `system`).
    pub actor: Option<String>,
    pub action: Option<String>,
    /// `at >= since` and `at < until`.
    pub since: Option<Millis>,
    pub until: Option<Millis>,
    /// Only events before this sequence number (the cursor of the previous page).
    pub before_seq: Option<i64>,
    pub limit: usize,
}

/// The hash of a row in the chain, given the hash of the row before it. Every column is
/// encoded with a presence byte and a 4-byte length (integers as 8 bytes), so no two rows
/// encode alike by moving bytes between columns.
pub fn chain_hash(prev: &[u8], seq: i64, e: &NewAuditRecord<'_>) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"rampart audit v1\0");
    h.update((prev.len() as u32).to_be_bytes());
    h.update(prev);
    h.update(seq.to_be_bytes());
    h.update(e.at.to_be_bytes());
    for text in [
        Some(e.actor_kind),
        e.actor_id,
        e.account_id,
        Some(e.action),
        Some(e.target),
        e.client_ip,
        Some(e.outcome),
    ] {
        match text {
            None => h.update([0]),
            Some(text) => {
                h.update([1]);
                h.update((text.len() as u32).to_be_bytes());
                h.update(text.as_bytes());
            }
        }
    }
    h.finalize().into()
}

/// The bytes a checkpoint's signature covers.
pub fn checkpoint_message(seq: i64, hash: &[u8], at: Millis) -> Vec<u8> {
    let mut message = b"rampart audit checkpoint v1\0".to_vec();
    message.extend_from_slice(&seq.to_be_bytes());
    message.extend_from_slice(&at.to_be_bytes());
    message.extend_from_slice(hash);
    message
}

/// Signs checkpoints for the writer; implemented where the key lives (`data::audit_key`).
pub trait CheckpointSigner: Send + Sync {
    fn sign(&self, message: &[u8]) -> Vec<u8>;
    /// The time a checkpoint is stamped with.
    fn now_ms(&self) -> Millis;
}

/// The audit trail.
pub trait Audit {
    /// Appends an event to the chain.
    fn record_audit(&self, event: &NewAuditRecord<'_>) -> Result<(), StoreError>;
    /// The latest events, newest first; one account's, or all when `account_id` is `None`.
    fn list_audit(
        &self,
        account_id: Option<&str>,
        limit: usize,
    ) -> Result<Vec<AuditRecord>, StoreError>;
    /// Events matching `query`, newest first.
    fn query_audit(&self, query: &AuditQuery) -> Result<Vec<AuditRecord>, StoreError>;
    /// Up to `limit` rows with their hashes, in chain order, after `after_seq`.
    fn audit_chain_page(
        &self,
        after_seq: i64,
        limit: usize,
    ) -> Result<Vec<ChainedAuditRecord>, StoreError>;
    /// The checkpoints after `after_seq`, oldest first.
    fn audit_checkpoints(&self, after_seq: i64) -> Result<Vec<AuditCheckpoint>, StoreError>;
}

const COLUMNS: &str =
    "seq, at, actor_kind, actor_id, account_id, action, target, client_ip, outcome";

fn from_row(r: &Row<'_>) -> rusqlite::Result<AuditRecord> {
    Ok(AuditRecord {
        seq: r.get(0)?,
        at: r.get(1)?,
        actor_kind: r.get(2)?,
        actor_id: r.get(3)?,
        account_id: r.get(4)?,
        action: r.get(5)?,
        target: r.get(6)?,
        client_ip: r.get(7)?,
        outcome: r.get(8)?,
    })
}

/// The newest row's sequence number and hash (genesis for an empty trail). A row without a
/// hash (tampering) is chained on as if its hash were genesis; `rampart verify` reports it.
fn chain_head(conn: &Connection) -> Result<(i64, Vec<u8>), StoreError> {
    let head = conn
        .prepare_cached("SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1")?
        .query_row([], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, Option<Vec<u8>>>(1)?))
        })
        .optional()?;
    Ok(match head {
        Some((seq, hash)) => (seq, hash.unwrap_or_else(|| GENESIS_HASH.to_vec())),
        None => (0, GENESIS_HASH.to_vec()),
    })
}

/// Chains the rows written before the chain existed (the 0011 migration's hook), a page at a
/// time so a long trail does not have to fit in memory.
pub(super) fn chain_existing_rows(conn: &Connection) -> Result<usize, StoreError> {
    const PAGE: i64 = 10_000;
    let mut prev = GENESIS_HASH.to_vec();
    let (mut after, mut chained) = (i64::MIN, 0);
    let mut select = conn.prepare(&format!(
        "SELECT {COLUMNS} FROM audit_events WHERE seq > ?1 ORDER BY seq LIMIT ?2"
    ))?;
    let mut update = conn.prepare("UPDATE audit_events SET hash = ?1 WHERE seq = ?2")?;
    loop {
        let rows: Vec<AuditRecord> = select
            .query_map(params![after, PAGE], from_row)?
            .collect::<Result<_, _>>()?;
        let Some(last) = rows.last() else {
            return Ok(chained);
        };
        after = last.seq;
        for row in &rows {
            let hash = chain_hash(&prev, row.seq, &row.as_new());
            update.execute(params![&hash[..], row.seq])?;
            prev = hash.to_vec();
        }
        chained += rows.len();
    }
}

/// Writes a signed checkpoint of the chain's head when `every` rows were added since the
/// last one (or, with `force`, when any were). Runs inside the writer's group transaction.
pub(super) fn checkpoint_if_due(
    conn: &Connection,
    every: i64,
    signer: &dyn CheckpointSigner,
    force: bool,
) -> Result<bool, StoreError> {
    let (head_seq, head_hash) = chain_head(conn)?;
    let checkpointed: i64 = conn
        .prepare_cached("SELECT COALESCE(MAX(seq), 0) FROM audit_checkpoints")?
        .query_row([], |r| r.get(0))?;
    let added = head_seq - checkpointed;
    if added <= 0 || (!force && added < every) {
        return Ok(false);
    }
    let at = signer.now_ms();
    let signature = signer.sign(&checkpoint_message(head_seq, &head_hash, at));
    conn.prepare_cached(
        "INSERT INTO audit_checkpoints (seq, hash, at, signature) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![head_seq, head_hash, at, signature])?;
    Ok(true)
}

impl Audit for Db<'_> {
    fn record_audit(&self, e: &NewAuditRecord<'_>) -> Result<(), StoreError> {
        // Read inside the transaction, not cached: the CLI writes from another process, and a
        // job rolled back to its savepoint takes its rows with it.
        let (head_seq, head_hash) = chain_head(self.conn())?;
        let seq = head_seq + 1;
        let hash = chain_hash(&head_hash, seq, e);
        self.conn()
            .prepare_cached(
                "INSERT INTO audit_events (seq, at, actor_kind, actor_id, account_id, action, target, client_ip, outcome, hash) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            )?
            .execute(params![
                seq,
                e.at,
                e.actor_kind,
                e.actor_id,
                e.account_id,
                e.action,
                e.target,
                e.client_ip,
                e.outcome,
                &hash[..]
            ])?;
        Ok(())
    }

    fn list_audit(
        &self,
        account_id: Option<&str>,
        limit: usize,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        self.query_audit(&AuditQuery {
            account_id: account_id.map(str::to_owned),
            limit,
            ..AuditQuery::default()
        })
    }

    fn query_audit(&self, q: &AuditQuery) -> Result<Vec<AuditRecord>, StoreError> {
        // Two statements rather than `?1 IS NULL OR account_id = ?1`, so one account's page
        // is read through its index.
        let scope = if q.account_id.is_some() {
            "account_id = ?1"
        } else {
            "?1 IS NULL"
        };
        let sql = format!(
            "SELECT {COLUMNS} FROM audit_events WHERE {scope} \
             AND (?2 IS NULL OR actor_id = ?2 OR (actor_id IS NULL AND actor_kind = ?2)) \
             AND (?3 IS NULL OR action = ?3) AND (?4 IS NULL OR at >= ?4) \
             AND (?5 IS NULL OR at < ?5) AND (?6 IS NULL OR seq < ?6) \
             ORDER BY seq DESC LIMIT ?7"
        );
        let mut stmt = self.conn().prepare_cached(&sql)?;
        let rows = stmt.query_map(
            params![
                q.account_id,
                q.actor,
                q.action,
                q.since,
                q.until,
                q.before_seq,
                q.limit as i64
            ],
            from_row,
        )?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn audit_chain_page(
        &self,
        after_seq: i64,
        limit: usize,
    ) -> Result<Vec<ChainedAuditRecord>, StoreError> {
        let mut stmt = self.conn().prepare_cached(&format!(
            "SELECT {COLUMNS}, hash FROM audit_events WHERE seq > ?1 ORDER BY seq LIMIT ?2"
        ))?;
        let rows = stmt.query_map(params![after_seq, limit as i64], |r| {
            Ok(ChainedAuditRecord {
                record: from_row(r)?,
                hash: r.get(9)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn audit_checkpoints(&self, after_seq: i64) -> Result<Vec<AuditCheckpoint>, StoreError> {
        let mut stmt = self.conn().prepare_cached(
            "SELECT seq, hash, at, signature FROM audit_checkpoints WHERE seq > ?1 ORDER BY seq",
        )?;
        let rows = stmt.query_map([after_seq], |r| {
            Ok(AuditCheckpoint {
                seq: r.get(0)?,
                hash: r.get(1)?,
                at: r.get(2)?,
                signature: r.get(3)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event<'a>(target: &'a str, account: Option<&'a str>) -> NewAuditRecord<'a> {
        NewAuditRecord {
            at: 1,
            actor_kind: "operator",
            actor_id: None,
            account_id: account,
            action: "api_key.issue",
            target,
            client_ip: None,
            outcome: "ok",
        }
    }

    #[test]
    fn the_chain_hash_commits_to_every_column_and_the_previous_hash() {
        let base = chain_hash(&GENESIS_HASH, 1, &event("key_a", Some("acc_1")));
        assert_ne!(
            base,
            chain_hash(&[1; 32], 1, &event("key_a", Some("acc_1")))
        );
        assert_ne!(
            base,
            chain_hash(&GENESIS_HASH, 2, &event("key_a", Some("acc_1")))
        );
        assert_ne!(
            base,
            chain_hash(&GENESIS_HASH, 1, &event("key_b", Some("acc_1")))
        );
        assert_ne!(base, chain_hash(&GENESIS_HASH, 1, &event("key_a", None)));
        // Moving bytes from one column to the next changes the hash.
        let mut moved = event("y_a", Some("acc_1ke"));
        moved.target = "y_a";
        assert_ne!(base, chain_hash(&GENESIS_HASH, 1, &moved));
    }
}
