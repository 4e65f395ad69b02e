//! Integrity checks as use cases: `rampart verify` on a data directory (read-only, so it runs
//! beside a live server), and the server's scheduled check of the audit chain, which records
//! a `security.integrity_failed` event and counts it when it fails.

use std::path::PathBuf;
use std::sync::{Arc, PoisonError};

use super::audit::{Action, Actor, AuditEvent};
use super::{App, AppError};
use crate::config::Config;
use crate::data::Keyring;
use crate::data::integrity::{
    ChainPosition, ChainReport, Finding, SealedReport, verify_audit_chain, verify_audit_chain_from,
    verify_owner_only, verify_sealed_fields,
};
use crate::data::keyring::{MasterKey, MasterKeySource};
use crate::data::sealing::Sealer;
use crate::data::{audit_key, permissions};
use crate::store::{Store, StoreError};

/// Where the scheduled check stands.
#[derive(Debug, Default)]
pub(crate) struct IntegrityWatch {
    runs: u64,
    /// The newest row of the last clean run.
    resume: Option<ChainPosition>,
}

/// Everything `rampart verify` checked.
#[derive(Debug, Clone)]
pub struct IntegrityReport {
    pub chain: ChainReport,
    pub sealed: SealedReport,
    /// Files and folders others may read, or that belong to someone else.
    pub files: Vec<Finding>,
}

impl IntegrityReport {
    pub fn findings(&self) -> impl Iterator<Item = &Finding> {
        self.files
            .iter()
            .chain(&self.chain.findings)
            .chain(&self.sealed.findings)
    }

    pub fn is_clean(&self) -> bool {
        self.findings().next().is_none()
    }
}

/// Verifies the data directory of `config` without changing anything: file permissions, the
/// whole audit chain and every checkpoint signature (against `pinned_public_key`, hex, when
/// given, else the key in the directory), and every sealed field of messages and inbound.
pub fn verify_data_dir(
    config: &Config,
    pinned_public_key: Option<&str>,
) -> Result<IntegrityReport, AppError> {
    let dir = &config.data_dir;
    let db = config.db_path();
    let master_path = config.master_key_path();
    if !db.exists() {
        return Err(AppError::Setup(format!(
            "no database at {}: is --data-dir right?",
            db.display()
        )));
    }
    let private = permissions::private_paths(config);
    let files = verify_owner_only(&private.iter().map(PathBuf::as_path).collect::<Vec<_>>());
    let source = super::keys::master_key_source(config);
    if matches!(source, MasterKeySource::File(_)) && !master_path.exists() {
        return Err(AppError::Setup(format!(
            "no master key at {}",
            master_path.display()
        )));
    }
    let master = MasterKey::from_source(&source, false)?;
    let store = Store::open_read_only(&db)?;
    let stored = super::keys::stored_keys(&store)?;
    // Read-only: keys an upgrade would make are not stored (nothing is sealed under them).
    let (keyring, _) = Keyring::open(&master, &stored, 0)?;
    let sealer = Sealer::new(Arc::new(keyring));
    let key = audit_key::verifying_key(dir, pinned_public_key)
        .map_err(|e| AppError::Setup(e.to_string()))?;
    let chain = verify_audit_chain(&store, key.as_ref())?;
    let sealed = verify_sealed_fields(&store, &sealer)?;
    Ok(IntegrityReport {
        chain,
        sealed,
        files,
    })
}

impl App {
    /// The scheduled check of the audit chain and its checkpoints: the whole chain on the
    /// first run and every `audit.full_verify_every`th (daily by default), otherwise the rows added since the last
    /// clean run (after checking that its last row still holds its hash). On a finding it
    /// logs an error, counts `rampart_integrity_failures_total` and records
    /// `security.integrity_failed` (naming the first bad row) in the trail itself.
    pub async fn check_audit_integrity(&self) -> Result<ChainReport, AppError> {
        let from = {
            let mut watch = self
                .integrity_watch
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            watch.runs += 1;
            let full_every = self.config.audit.full_verify_every.max(1);
            if full_every == 1 || watch.runs % full_every == 1 {
                None
            } else {
                watch.resume.clone()
            }
        };
        let store = self.store.clone();
        let key = self.audit_public;
        let resume = from.clone();
        let report = tokio::task::spawn_blocking(move || {
            verify_audit_chain_from(&store, Some(&key), resume.as_ref())
        })
        .await
        .map_err(|_| StoreError::Closed)??;
        if report.findings.is_empty() {
            tracing::info!(
                events = report.events,
                whole_chain = from.is_none(),
                last_seq = report.last_seq,
                "audit trail verified"
            );
            if report.head.is_some() {
                self.integrity_watch
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .resume = report.head.clone();
            }
        }
        if let Some(first) = report.findings.first() {
            tracing::error!(
                findings = report.findings.len(),
                first = %first,
                "integrity check failed: the audit trail does not verify; run `rampart verify`"
            );
            metrics::counter!("rampart_integrity_failures_total").increment(1);
            let event = AuditEvent::instance(
                &Actor::System,
                Action::IntegrityFailed,
                first.subject.clone(),
                self.clock.now_ms(),
            );
            self.store.write(move |tx| event.record(tx)).await?;
        }
        Ok(report)
    }
}
