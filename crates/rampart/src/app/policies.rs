//! Use cases of the account's policy document (read, set with lost-update protection), and
//! the send path's side of the policy: the snapshot gathered for `Policy::decide`, the
//! refusal (problem, metric, audit), the frequency counts and the opt-out hook.
//!
//! Documents are held in memory ([`PolicyCache`]): a send reads no database for them. Every
//! change replaces `policies.epoch` in the data directory (as keys do with theirs), so a
//! document set by the CLI beside a running server applies from the next send.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use super::audit::{Action, Actor, AuditEvent, Caller};
use super::messages::{Parsed, SendRequest};
use super::{App, AppError};
use crate::clock::Millis;
use crate::identity::Scope;
use crate::identity::key_cache::{Stamp, stamp};
use crate::messaging::Encoding;
use crate::messaging::SenderId;
use crate::policy::{AccountSnapshot, Decision, Outgoing, PolicyDocument, Violation};
use crate::store::policies::{PolicyRecord, PolicyWrite};
use crate::store::{Store, StoreError};

/// An account's document with its version (0 and the defaults when none was ever set).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoredPolicy {
    pub version: u64,
    pub document: Arc<PolicyDocument>,
    pub updated_at: Option<Millis>,
}

impl StoredPolicy {
    fn from_record(record: PolicyRecord) -> Result<Self, StoreError> {
        let document = serde_json::from_str(&record.document).map_err(|e| {
            StoreError::Corrupt(format!("policy of {} unreadable: {e}", record.account_id))
        })?;
        Ok(Self {
            version: record.version,
            document: Arc::new(document),
            updated_at: Some(record.updated_at),
        })
    }
}

/// Whether a recipient opted out of an account (and sender). The opt-out store answers
/// here; until it does, nobody has opted out.
pub trait OptOuts: Send + Sync + 'static {
    /// `to_index` is the recipient's blind-index tag in the account, never the number.
    fn opted_out(&self, account_id: &str, sender: &str, to_index: [u8; 16]) -> bool;
}

/// No one opted out.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoOptOuts;

impl OptOuts for NoOptOuts {
    fn opted_out(&self, _account_id: &str, _sender: &str, _to_index: [u8; 16]) -> bool {
        false
    }
}

/// The stamp documents were loaded at (`None`: not yet), and every account's document (an
/// account missing here has none).
type Loaded = (Option<Stamp>, HashMap<String, Arc<StoredPolicy>>);

/// Every account's document, valid while the epoch file is unchanged.
pub struct PolicyCache {
    epoch_file: PathBuf,
    loaded: RwLock<Loaded>,
}

/// The epoch file of a data directory.
fn epoch_file(data_dir: &Path) -> PathBuf {
    data_dir.join("policies.epoch")
}

impl PolicyCache {
    pub fn new(data_dir: &Path) -> Self {
        Self {
            epoch_file: epoch_file(data_dir),
            loaded: RwLock::new((None, HashMap::new())),
        }
    }

    /// The account's document, from memory while nothing changed. After a change every
    /// document is loaded again in one read: changes are rare, sends are not.
    pub fn get(&self, store: &Store, account_id: &str) -> Result<Arc<StoredPolicy>, StoreError> {
        let (current, settled) = stamp(&self.epoch_file);
        if settled
            && let Ok(loaded) = self.loaded.read()
            && loaded.0 == Some(current)
        {
            return Ok(loaded.1.get(account_id).cloned().unwrap_or_default());
        }
        if !settled {
            // A change younger than the file times' resolution: read this account only and
            // cache nothing, so a second change in the same tick is not missed.
            let record = store.read(|tx| tx.account_policy(account_id))?;
            return Ok(Arc::new(match record {
                Some(r) => StoredPolicy::from_record(r)?,
                None => StoredPolicy::default(),
            }));
        }
        // Read after taking the stamp: a change committed meanwhile moves it on again.
        let records = store.read(|tx| tx.all_policies())?;
        let mut all = HashMap::with_capacity(records.len());
        for record in records {
            all.insert(
                record.account_id.clone(),
                Arc::new(StoredPolicy::from_record(record)?),
            );
        }
        let found = all.get(account_id).cloned().unwrap_or_default();
        if let Ok(mut loaded) = self.loaded.write() {
            *loaded = (Some(current), all);
        }
        Ok(found)
    }
}

/// Tells every running server that a document changed. Call after the commit.
fn announce_change(data_dir: &Path) -> std::io::Result<()> {
    let temp = data_dir.join(format!(".policies.epoch.{}", crate::store::new_id("tmp")));
    fs::write(&temp, crate::store::new_id("epoch"))?;
    fs::rename(&temp, epoch_file(data_dir))
}

/// What a dry run found: what a send would do, with nothing stored or sent.
#[derive(Debug, Clone)]
pub struct DryRun {
    pub violations: Vec<Violation>,
    pub encoding: Encoding,
    pub segments: u32,
    /// When quiet hours would hold the messages until.
    pub deferred_until: Option<Millis>,
}

/// A send as the policy is asked about it, with the recipients' blind-index tags.
pub(super) struct PolicyQuestion<'a> {
    pub outgoing: Outgoing<'a>,
    pub tags: &'a [[u8; 16]],
}

impl App {
    /// The account's document (`members:read` in it, or an operator's `accounts:manage`):
    /// members see the rules their sends meet.
    pub fn account_policy(
        &self,
        caller: &Caller,
        account_id: &str,
    ) -> Result<StoredPolicy, AppError> {
        self.member_scope(caller, account_id, Scope::MembersRead)?;
        self.policy_of(account_id)
    }

    /// The account's document as the local operator sees it (`rampart policy show`).
    pub fn policy_of(&self, account_id: &str) -> Result<StoredPolicy, AppError> {
        let (account, record) = self.store.read(|tx| {
            Ok::<_, StoreError>((tx.get_account(account_id)?, tx.account_policy(account_id)?))
        })?;
        account.ok_or(AppError::NotFound("account"))?;
        Ok(match record {
            Some(r) => StoredPolicy::from_record(r)?,
            None => StoredPolicy::default(),
        })
    }

    /// Sets the account's document (`account:manage` in it, or an operator's
    /// `accounts:manage`; a session needs a recent sign-in). With `expected`, only over that
    /// version (0: none yet), else 409 `policy_version_conflict`.
    pub async fn set_account_policy(
        &self,
        caller: &Caller,
        account_id: &str,
        document: serde_json::Value,
        expected: Option<u64>,
    ) -> Result<StoredPolicy, AppError> {
        self.member_scope(caller, account_id, Scope::AccountManage)?;
        self.require_recent_authentication(caller)?;
        let document = self.parse_policy(document)?;
        let audit = AuditEvent::by(caller, Action::AccountPolicySet, "", self.clock.now_ms());
        self.store_policy(audit, account_id, document, expected)
            .await
    }

    /// The same for the local operator (`rampart policy set`).
    pub async fn set_policy_of(
        &self,
        actor: &Actor,
        account_id: &str,
        document: serde_json::Value,
        expected: Option<u64>,
    ) -> Result<StoredPolicy, AppError> {
        let document = self.parse_policy(document)?;
        let now = self.clock.now_ms();
        let audit = AuditEvent::instance(actor, Action::AccountPolicySet, "", now);
        self.store_policy(audit, account_id, document, expected)
            .await
    }

    /// Reads and checks a document; a fault names its field (422 `invalid_policy`).
    fn parse_policy(&self, value: serde_json::Value) -> Result<PolicyDocument, AppError> {
        let document: PolicyDocument = serde_path_to_error::deserialize(value).map_err(|e| {
            let field = e.path().to_string();
            let message = format!("`{field}`: {}", e.into_inner());
            AppError::invalid("invalid_policy", message, field)
        })?;
        document
            .validate(self.config.messaging.max_segments)
            .map_err(|e| AppError::invalid("invalid_policy", e.to_string(), e.field))?;
        Ok(document)
    }

    async fn store_policy(
        &self,
        mut audit: AuditEvent,
        account_id: &str,
        document: PolicyDocument,
        expected: Option<u64>,
    ) -> Result<StoredPolicy, AppError> {
        audit.account_id = Some(account_id.to_owned());
        let text = serde_json::to_string(&document)
            .map_err(|e| AppError::Setup(format!("policy document not serialisable: {e}")))?;
        let (account, now) = (account_id.to_owned(), audit.at);
        let written = self
            .store
            .write(move |tx| {
                let written = tx.set_account_policy(&account, expected, &text, now)?;
                if let PolicyWrite::Stored(version) = written {
                    // The target is the version: the document itself is in its history row.
                    audit.target = format!("version={version}");
                    audit.record(tx)?;
                }
                Ok::<_, AppError>(written)
            })
            .await?;
        match written {
            PolicyWrite::Stored(version) => {
                if let Err(e) = announce_change(&self.config.data_dir) {
                    tracing::warn!(error = %e, "could not announce the policy change; running servers see it after their next change");
                }
                Ok(StoredPolicy {
                    version,
                    document: Arc::new(document),
                    updated_at: Some(now),
                })
            }
            PolicyWrite::Stale { current } => Err(AppError::conflict(
                "policy_version_conflict",
                format!(
                    "the policy is at version {current}, not the one this change was made \
                     over; read it again and reapply the change"
                ),
            )),
            PolicyWrite::NoAccount => Err(AppError::NotFound("account")),
        }
    }

    /// The recipients' blind-index tags: stored with the rows, and the key of the frequency
    /// counts and opt-outs.
    pub(super) fn recipient_tags(&self, account: &str, parsed: &Parsed) -> Vec<[u8; 16]> {
        parsed
            .recipients
            .iter()
            .map(|to| self.sealer.phone_index(account, to.as_str()))
            .collect()
    }

    /// What a send would do (`POST /v1/messages/dry-run`): parsed, segmented and decided by
    /// the policy like a send, with nothing stored, sent, counted or audited.
    pub fn dry_run(&self, caller: &Caller, request: SendRequest) -> Result<DryRun, AppError> {
        caller.require(Scope::MessagesSend)?;
        let now = self.clock.now_ms();
        let parsed = self.parse_send(request, now)?;
        let tags = self.recipient_tags(&caller.account_id, &parsed);
        let (decision, _) = self.ask_policy(&caller.account_id, &question(&parsed, &tags, now))?;
        let info = parsed.body.info();
        let (violations, deferred_until) = match decision {
            Decision::Allow => (Vec::new(), None),
            Decision::Defer(until) => (Vec::new(), Some(until)),
            Decision::Deny(violations) => (violations, None),
        };
        Ok(DryRun {
            violations,
            encoding: info.encoding,
            segments: info.segments as u32,
            deferred_until,
        })
    }

    /// Gathers the account's snapshot and asks the policy. Reads the database only for rules
    /// that are on and need it (assigned numbers, when senders are restricted).
    pub(super) fn ask_policy(
        &self,
        account_id: &str,
        question: &PolicyQuestion<'_>,
    ) -> Result<(Decision, Arc<StoredPolicy>), AppError> {
        let stored = self.policies.get(&self.store, account_id)?;
        let doc = &stored.document;
        let message = &question.outgoing;
        let numbers =
            if doc.restricts_senders() && !matches!(message.sender, SenderId::Alphanumeric(_)) {
                self.store
                    .read(|tx| tx.list_numbers(Some(account_id)))?
                    .into_iter()
                    .map(|n| n.number)
                    .collect()
            } else {
                Vec::new()
            };
        let recent_sends = match doc.frequency_cap {
            Some(cap) => {
                let (now, window) = (message.send_at, cap.window_seconds as Millis * 1000);
                question
                    .tags
                    .iter()
                    .map(|tag| self.send_counter.count(account_id, *tag, now, window))
                    .collect()
            }
            None => Vec::new(),
        };
        let sender = message.sender.as_str();
        let opted_out = question
            .tags
            .iter()
            .map(|tag| self.opt_out_hook.opted_out(account_id, sender, *tag))
            .collect();
        let snapshot = AccountSnapshot {
            account_id: account_id.to_owned(),
            document: doc.clone(),
            numbers,
            recent_sends,
            opted_out,
        };
        Ok((self.policy.decide(&snapshot, message), stored))
    }

    /// A refused send: counted per code, audited without number or text, answered 422.
    pub(super) fn refuse_send(
        &self,
        caller: &Caller,
        violations: Vec<Violation>,
        now: Millis,
    ) -> AppError {
        for v in &violations {
            metrics::counter!("rampart_policy_refusals_total", "code" => v.code).increment(1);
        }
        let Some(first) = violations.first() else {
            return AppError::forbidden(
                "policy_denied",
                "the account's policy refused this message",
            );
        };
        let mut codes: Vec<&str> = violations.iter().map(|v| v.code).collect();
        codes.dedup();
        self.record_refusal(
            AuditEvent::by(caller, Action::MessagesSent, codes.join(","), now).denied(first.code),
        );
        AppError::PolicyRefused(violations)
    }

    /// Counts accepted messages for the account's frequency cap (only when one is set).
    pub(super) fn count_sends(
        &self,
        account_id: &str,
        policy: &StoredPolicy,
        tags: &[[u8; 16]],
        at: Millis,
    ) {
        if let Some(cap) = policy.document.frequency_cap {
            for tag in tags {
                self.send_counter
                    .record(account_id, *tag, at, cap.max_messages);
            }
        }
    }
}

/// The policy's view of a parsed send.
pub(super) fn question<'a>(
    parsed: &'a Parsed,
    tags: &'a [[u8; 16]],
    now: Millis,
) -> PolicyQuestion<'a> {
    PolicyQuestion {
        outgoing: Outgoing {
            recipients: &parsed.recipients,
            sender: &parsed.sender,
            body: &parsed.body,
            send_at: parsed.send_at.unwrap_or(now),
            category: parsed.category,
        },
        tags,
    }
}

impl Parsed {
    /// Holds the messages until `until` (quiet hours); a validity period runs from then.
    pub(super) fn defer(&mut self, until: Millis, now: Millis) {
        let from = self.send_at.unwrap_or(now);
        if until > from {
            self.valid_until = self.valid_until.map(|v| v + (until - from));
            self.send_at = Some(until);
        }
    }
}
