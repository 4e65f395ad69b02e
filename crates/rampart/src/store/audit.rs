//! The audit trail, append-only: events are added inside the transaction of the change they
//! describe, and read back newest first.

use rusqlite::{Row, params};

use super::{Db, StoreError};
use crate::clock::Millis;

/// One audit event as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    pub at: Millis,
    /// `api_key`, `operator` or `system`.
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

/// The audit trail.
pub trait Audit {
    fn record_audit(&self, event: &NewAuditRecord<'_>) -> Result<(), StoreError>;
    /// The latest events, newest first; one account's, or all when `account_id` is `None`.
    fn list_audit(
        &self,
        account_id: Option<&str>,
        limit: usize,
    ) -> Result<Vec<AuditRecord>, StoreError>;
}

fn from_row(r: &Row<'_>) -> rusqlite::Result<AuditRecord> {
    Ok(AuditRecord {
        at: r.get(0)?,
        actor_kind: r.get(1)?,
        actor_id: r.get(2)?,
        account_id: r.get(3)?,
        action: r.get(4)?,
        target: r.get(5)?,
        client_ip: r.get(6)?,
        outcome: r.get(7)?,
    })
}

impl Audit for Db<'_> {
    fn record_audit(&self, e: &NewAuditRecord<'_>) -> Result<(), StoreError> {
        self.conn()
            .prepare_cached(
                "INSERT INTO audit_events (at, actor_kind, actor_id, account_id, action, target, client_ip, outcome) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?
            .execute(params![
                e.at,
                e.actor_kind,
                e.actor_id,
                e.account_id,
                e.action,
                e.target,
                e.client_ip,
                e.outcome
            ])?;
        Ok(())
    }

    fn list_audit(
        &self,
        account_id: Option<&str>,
        limit: usize,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        let mut stmt = self.conn().prepare_cached(
            "SELECT at, actor_kind, actor_id, account_id, action, target, client_ip, outcome \
             FROM audit_events WHERE ?1 IS NULL OR account_id = ?1 ORDER BY seq DESC LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![account_id, limit as i64], from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}
