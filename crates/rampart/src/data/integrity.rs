//! Integrity verification: the audit hash chain and its signed checkpoints, the sealed fields
//! of every message and inbound row, and the permissions of the data directory's files.
//! `rampart verify` runs all of it; the server runs the chain check on a schedule.
//!
//! Each finding names the row (sequence number or id) and what is wrong with it, so an
//! operator can look at exactly the rows that changed.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use ed25519_dalek::VerifyingKey;

use super::audit_key::signature_is_valid;
use super::sealing::{Field, Sealer};
use crate::store::audit::{GENESIS_HASH, chain_hash, checkpoint_message};
use crate::store::messages::SealedPair;
use crate::store::{Store, StoreError};

/// Rows read per page.
const PAGE: usize = 5_000;

/// One thing found wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// What it is about: `audit seq 12`, `checkpoint at seq 1000`, `message msg_...`, a path.
    pub subject: String,
    pub problem: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.subject, self.problem)
    }
}

fn finding(subject: impl Into<String>, problem: impl Into<String>) -> Finding {
    Finding {
        subject: subject.into(),
        problem: problem.into(),
    }
}

/// What the chain check saw.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChainReport {
    pub events: u64,
    pub checkpoints: u64,
    /// The newest signed sequence number (0: none yet).
    pub last_checkpoint_seq: i64,
    pub last_seq: i64,
    /// The newest row checked.
    pub head: Option<ChainPosition>,
    pub findings: Vec<Finding>,
}

/// What the sealed-field check saw.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SealedReport {
    pub fields: u64,
    /// Fields of an early format, bound to their row id but not to their account.
    pub legacy_fields: u64,
    pub findings: Vec<Finding>,
}

/// A row of the chain a check ended on: where the next check may resume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainPosition {
    pub seq: i64,
    /// The hash stored in that row.
    pub hash: Vec<u8>,
}

/// Checks the whole audit chain and every checkpoint (with `key`; without one, any checkpoint
/// is a finding, since nothing can vouch for it). Reads page by page on a read-only
/// connection, so it runs beside a live server: checkpoints are read first, and the trail is
/// append-only, so every checkpoint read refers to a row the scan will see.
pub fn verify_audit_chain(
    store: &Store,
    key: Option<&VerifyingKey>,
) -> Result<ChainReport, StoreError> {
    verify_audit_chain_from(store, key, None)
}

/// [`verify_audit_chain`] from `from` on: only the rows and checkpoints after it, once the row
/// at `from` is found to still hold the hash it held (the server's scheduled check resumes
/// where its last clean run ended, so its cost follows the trail's growth, not its size).
pub fn verify_audit_chain_from(
    store: &Store,
    key: Option<&VerifyingKey>,
    from: Option<&ChainPosition>,
) -> Result<ChainReport, StoreError> {
    let mut report = ChainReport::default();
    let (mut prev_seq, mut prev_hash) = match from {
        Some(from) => (from.seq, from.hash.clone()),
        None => (0, GENESIS_HASH.to_vec()),
    };
    let checkpoints = store.read(|tx| tx.audit_checkpoints(prev_seq))?;
    report.checkpoints = checkpoints.len() as u64;
    let mut pending = BTreeMap::new();
    for checkpoint in checkpoints {
        let subject = format!("checkpoint at seq {}", checkpoint.seq);
        let message = checkpoint_message(checkpoint.seq, &checkpoint.hash, checkpoint.at);
        match key {
            Some(key) if signature_is_valid(key, &message, &checkpoint.signature) => {}
            Some(_) => report.findings.push(finding(
                &subject,
                "bad signature (the checkpoint was edited or signed by another key)",
            )),
            None => report.findings.push(finding(
                &subject,
                "no audit signing key to check its signature with",
            )),
        }
        report.last_checkpoint_seq = report.last_checkpoint_seq.max(checkpoint.seq);
        pending.insert(checkpoint.seq, checkpoint.hash);
    }
    if let Some(from) = from {
        let row = store.read(|tx| tx.audit_chain_page(from.seq - 1, 1))?;
        let still = row
            .first()
            .is_some_and(|r| r.record.seq == from.seq && r.hash.as_ref() == Some(&from.hash));
        if !still {
            report.findings.push(finding(
                format!("audit seq {}", from.seq),
                "gone or rewritten since the last check",
            ));
        }
    }
    loop {
        let page = store.read(|tx| tx.audit_chain_page(prev_seq, PAGE))?;
        if page.is_empty() {
            break;
        }
        for row in page {
            let seq = row.record.seq;
            let subject = format!("audit seq {seq}");
            report.events += 1;
            if seq > prev_seq + 1 {
                let gap = if seq == prev_seq + 2 {
                    format!("audit seq {}", prev_seq + 1)
                } else {
                    format!("audit seq {}..{}", prev_seq + 1, seq - 1)
                };
                report.findings.push(finding(gap, "missing (deleted)"));
            }
            let expected = chain_hash(&prev_hash, seq, &row.record.as_new());
            match &row.hash {
                None => report.findings.push(finding(
                    &subject,
                    "has no chain hash (inserted outside Rampart)",
                )),
                Some(stored) if stored[..] != expected[..] => {
                    report.findings.push(finding(
                        &subject,
                        "its hash does not match its contents and the row before it \
                         (edited, inserted, moved, or a row before it was deleted)",
                    ));
                }
                Some(_) => {}
            }
            // Carry on from the stored hash, so one bad row is reported once rather than
            // breaking every row after it.
            let stored = row.hash.unwrap_or_else(|| expected.to_vec());
            if let Some(signed) = pending.remove(&seq)
                && signed != stored
            {
                report.findings.push(finding(
                    format!("checkpoint at seq {seq}"),
                    "the chain no longer ends in the signed hash here (rows up to it were \
                     rewritten)",
                ));
            }
            prev_seq = seq;
            prev_hash = stored;
        }
    }
    report.last_seq = prev_seq;
    report.head = (prev_seq > 0).then_some(ChainPosition {
        seq: prev_seq,
        hash: prev_hash,
    });
    for seq in pending.into_keys() {
        report.findings.push(finding(
            format!("checkpoint at seq {seq}"),
            "the audit row it signs is missing (rows deleted from the end of the trail?)",
        ));
    }
    Ok(report)
}

/// Opens every sealed field of every message and inbound row under the context of its own
/// row and account: a value edited, or copied from another row or account, fails to open.
pub fn verify_sealed_fields(store: &Store, sealer: &Sealer) -> Result<SealedReport, StoreError> {
    let mut report = SealedReport::default();
    let mut after = 0i64;
    loop {
        let page = store.read(|tx| tx.sealed_messages_page(after, PAGE))?;
        let Some((last, _)) = page.last() else { break };
        after = *last;
        for (_, row) in &page {
            let fields = [(Field::MessageTo, "to"), (Field::MessageBody, "body")];
            check_pair(&mut report, sealer, "message", row, fields);
        }
    }
    let mut after = String::new();
    loop {
        let page = store.read(|tx| tx.sealed_inbound_page(&after, PAGE))?;
        let Some(last) = page.last() else { break };
        after = last.id.clone();
        for row in &page {
            let fields = [(Field::InboundFrom, "from"), (Field::InboundBody, "body")];
            check_pair(&mut report, sealer, "inbound", row, fields);
        }
    }
    Ok(report)
}

fn check_pair(
    report: &mut SealedReport,
    sealer: &Sealer,
    kind: &str,
    row: &SealedPair,
    fields: [(Field, &str); 2],
) {
    for ((field, column), sealed) in fields.into_iter().zip([&row.number, &row.body]) {
        // An erased body is an empty blob by design: nothing is left to open.
        if field_is_erased_body(row, column) {
            continue;
        }
        report.fields += 1;
        if !sealer.binds_account(sealed) {
            report.legacy_fields += 1;
        }
        if sealer
            .open(field, &row.account_id, &row.id, sealed)
            .is_err()
        {
            report.findings.push(finding(
                format!("{kind} {}", row.id),
                format!(
                    "{column} does not open as account {}'s: edited, or moved from another row \
                     or account",
                    row.account_id
                ),
            ));
        }
    }
}

fn field_is_erased_body(row: &SealedPair, column: &str) -> bool {
    column == "body" && row.body_erased && row.body.is_empty()
}

/// Findings for each of `paths` that exists and that others than its owner may use, or that
/// belongs to another user than this process's: the rule start-up enforces
/// (`permissions::exposures`), reported rather than refused.
pub fn verify_owner_only(paths: &[&Path]) -> Vec<Finding> {
    super::permissions::exposures(paths)
        .into_iter()
        .map(|e| finding(e.path().display().to_string(), e.problem()))
        .collect()
}
