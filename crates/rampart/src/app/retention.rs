//! Use cases of retention: read and set how long an account keeps message bodies and
//! messages, and apply every account's settings (the server does so hourly).

use super::audit::{Action, Actor, AuditEvent, Caller};
use super::{App, AppError};
use crate::identity::Scope;
use crate::messaging::MessageStatus;
use crate::messaging::retention::Retention;
use crate::store::retention::{Kept, RetentionRecord};

/// Rows changed in one write transaction at most, so the writer is never held for long and
/// API writes in between wait for one batch only.
const BATCH: usize = 1_000;

/// What one run of retention did in one account.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetentionCounts {
    pub messages_erased: usize,
    pub messages_purged: usize,
    pub inbound_erased: usize,
    pub inbound_purged: usize,
}

impl RetentionCounts {
    fn changed_anything(self) -> bool {
        self != Self::default()
    }

    /// The audit event's target: counts, never ids or text of the messages.
    fn audit_target(self) -> String {
        format!(
            "messages_erased={} messages_purged={} inbound_erased={} inbound_purged={}",
            self.messages_erased, self.messages_purged, self.inbound_erased, self.inbound_purged
        )
    }
}

/// Erase bodies, or delete whole rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sweep {
    EraseBodies,
    Purge,
}

/// The statuses after which nothing happens to a message: only these are erased or purged,
/// so a queued, scheduled or sending message keeps its body however old it is.
fn final_statuses() -> Vec<&'static str> {
    MessageStatus::ALL
        .into_iter()
        .filter(|s| s.is_final())
        .map(MessageStatus::as_str)
        .collect()
}

impl App {
    /// The account's retention (`account:manage` in it, or an operator's `accounts:manage`).
    pub fn account_retention(
        &self,
        caller: &Caller,
        account_id: &str,
    ) -> Result<Retention, AppError> {
        self.member_scope(caller, account_id, Scope::AccountManage)?;
        self.retention_of(account_id)
    }

    /// The account's retention as the local operator sees it.
    pub fn retention_of(&self, account_id: &str) -> Result<Retention, AppError> {
        let stored = self
            .store
            .read(|tx| tx.account_retention(account_id))?
            .ok_or(AppError::NotFound("account"))?;
        parse_retention(stored.erase_bodies_after_days, stored.purge_after_days)
    }

    /// Sets the account's retention (`account:manage` in it, or an operator's
    /// `accounts:manage`; a session needs a recent sign-in). `None` keeps for ever.
    pub async fn set_account_retention(
        &self,
        caller: &Caller,
        account_id: &str,
        erase_bodies_after_days: Option<u32>,
        purge_after_days: Option<u32>,
    ) -> Result<Retention, AppError> {
        self.member_scope(caller, account_id, Scope::AccountManage)?;
        self.require_recent_authentication(caller)?;
        let retention = parse_retention(erase_bodies_after_days, purge_after_days)?;
        let now = self.clock.now_ms();
        let audit = AuditEvent::by(caller, Action::AccountRetentionSet, account_id, now);
        self.store_retention(audit, account_id, retention).await
    }

    /// The same for the local operator (`rampart account retention`).
    pub async fn set_retention_of(
        &self,
        actor: &Actor,
        account_id: &str,
        erase_bodies_after_days: Option<u32>,
        purge_after_days: Option<u32>,
    ) -> Result<Retention, AppError> {
        let retention = parse_retention(erase_bodies_after_days, purge_after_days)?;
        let now = self.clock.now_ms();
        let audit = AuditEvent::instance(actor, Action::AccountRetentionSet, account_id, now);
        self.store_retention(audit, account_id, retention).await
    }

    async fn store_retention(
        &self,
        mut audit: AuditEvent,
        account_id: &str,
        retention: Retention,
    ) -> Result<Retention, AppError> {
        audit.account_id = Some(account_id.to_owned());
        let account = account_id.to_owned();
        let record = RetentionRecord {
            erase_bodies_after_days: retention.erase_bodies_after_days(),
            purge_after_days: retention.purge_after_days(),
        };
        let found = self
            .write_audited(
                audit,
                move |tx| tx.set_account_retention(&account, record),
                |x| *x,
            )
            .await?;
        if !found {
            return Err(AppError::NotFound("account"));
        }
        Ok(retention)
    }

    /// Applies every account's retention as of the clock's now: bodies of final messages
    /// (and of inbound messages) older than the account's erase period are erased, whole ones
    /// older than its purge period are deleted with their parts. Works in batches of
    /// [`BATCH`] rows per transaction on the background lane. Each account that changed gets
    /// one `retention.applied` audit event with the counts. Returns those accounts.
    pub async fn apply_retention(&self) -> Result<Vec<(String, RetentionCounts)>, AppError> {
        let now = self.clock.now_ms();
        let accounts = self
            .store
            .read_blocking(|tx| Ok::<_, AppError>(tx.accounts_with_retention()?))
            .await?;
        let mut changed = Vec::new();
        for (account, stored) in accounts {
            let retention = match parse_retention(
                stored.erase_bodies_after_days,
                stored.purge_after_days,
            ) {
                Ok(retention) => retention,
                Err(e) => {
                    tracing::warn!(account_id = %account, error = %e, "retention settings are not valid; skipped");
                    continue;
                }
            };
            let mut counts = RetentionCounts::default();
            // Purge first: a row about to be deleted need not be erased.
            if let Some(before) = retention.purge_before(now) {
                counts.messages_purged = self
                    .sweep(Kept::Messages, Sweep::Purge, &account, before)
                    .await?;
                counts.inbound_purged = self
                    .sweep(Kept::Inbound, Sweep::Purge, &account, before)
                    .await?;
            }
            if let Some(before) = retention.erase_before(now) {
                counts.messages_erased = self
                    .sweep(Kept::Messages, Sweep::EraseBodies, &account, before)
                    .await?;
                counts.inbound_erased = self
                    .sweep(Kept::Inbound, Sweep::EraseBodies, &account, before)
                    .await?;
            }
            if counts.changed_anything() {
                // The run spans many transactions (that is the point of batches), so its one
                // event follows them; a crash in between loses the event, never a change
                // without its settings being on record (`account.retention`).
                let mut audit = AuditEvent::instance(
                    &Actor::System,
                    Action::RetentionApplied,
                    counts.audit_target(),
                    now,
                );
                audit.account_id = Some(account.clone());
                self.store
                    .write_background(move |tx| audit.record(tx))
                    .await?;
                changed.push((account, counts));
            }
        }
        Ok(changed)
    }

    /// One sweep of one table of one account, batch by batch until nothing is due.
    async fn sweep(
        &self,
        kept: Kept,
        sweep: Sweep,
        account: &str,
        before: crate::clock::Millis,
    ) -> Result<usize, AppError> {
        let statuses = final_statuses();
        let mut total = 0;
        loop {
            // Chosen on a read connection, changed on the writer: the writer never scans.
            let (acc, st) = (account.to_owned(), statuses.clone());
            let due = self
                .store
                .read_blocking(move |tx| {
                    let bodies_only = sweep == Sweep::EraseBodies;
                    Ok::<_, AppError>(tx.retention_due(
                        kept,
                        &acc,
                        before,
                        &st,
                        bodies_only,
                        BATCH,
                    )?)
                })
                .await?;
            if due.is_empty() {
                return Ok(total);
            }
            let full = due.len() == BATCH;
            let (acc, st, now) = (account.to_owned(), statuses.clone(), self.clock.now_ms());
            let done = self
                .store
                .write_background(move |tx| {
                    Ok::<_, AppError>(match sweep {
                        Sweep::EraseBodies => {
                            tx.erase_bodies(kept, &acc, &due, before, &st, now)?
                        }
                        Sweep::Purge => tx.purge(kept, &acc, &due, before, &st)?,
                    })
                })
                .await?;
            total += done;
            // A batch that changed nothing would be chosen again: stop rather than spin.
            if !full || done == 0 {
                return Ok(total);
            }
        }
    }
}

fn parse_retention(
    erase_bodies_after_days: Option<u32>,
    purge_after_days: Option<u32>,
) -> Result<Retention, AppError> {
    Retention::parse(erase_bodies_after_days, purge_after_days).map_err(|e| {
        AppError::invalid(
            "invalid_retention",
            e.to_string(),
            match e {
                crate::messaging::retention::RetentionError::OutOfRange { field } => field,
                crate::messaging::retention::RetentionError::PurgeBeforeErase => "purge_after_days",
            },
        )
    })
}
