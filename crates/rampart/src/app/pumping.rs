//! Use cases of the SMS pumping defence: the send-time check beside the policy (count each
//! recipient, refuse a blocked prefix, block one that trips and raise a security event), and
//! listing and lifting blocks and editing safe lists. The counting is in memory
//! (`policy::pumping`); blocks and safe lists are stored, and the running server follows the
//! CLI's changes within a second.

use std::sync::PoisonError;

use super::audit::{Action, Actor, AuditEvent, Caller};
use super::{App, AppError};
use crate::clock::Millis;
use crate::identity::Scope;
use crate::messaging::PhoneNumber;
use crate::policy::pumping::{NewBlock, PumpingRules, Verdict, masked_prefix};
use crate::store::pumping::PumpingBlockRecord;

impl App {
    /// The rules in force (`pumping.*`).
    fn pumping_rules(&self) -> PumpingRules {
        let p = &self.config.pumping;
        PumpingRules {
            masked_digits: p.masked_digits,
            window_ms: Millis::try_from(p.window_minutes.max(1))
                .unwrap_or(Millis::MAX)
                .saturating_mul(60_000),
            max_per_prefix: p.max_per_prefix,
            max_per_country: p.max_per_country,
            sequential_run: p.sequential_run,
            block_ms: Millis::try_from(p.block_hours)
                .unwrap_or(Millis::MAX)
                .saturating_mul(3_600_000),
        }
    }

    /// The send-time check: each recipient is counted against its prefix and country; one in
    /// a blocked prefix is refused (422 `destination_suspected_pumping`, naming `to[i]`), and
    /// a prefix that trips is blocked for `pumping.block_hours` with a security event.
    /// Rampart's own replies are not counted.
    pub(crate) fn check_pumping(
        &self,
        caller: &Caller,
        recipients: &[PhoneNumber],
        to_is_list: bool,
        category: crate::policy::Category,
    ) -> Result<(), AppError> {
        let pumping = &self.config.pumping;
        if !pumping.enabled
            || caller.actor == Actor::System
            || !pumping.categories.iter().any(|c| c == category.as_str())
        {
            return Ok(());
        }
        let rules = self.pumping_rules();
        let now = self.clock.now_ms();
        let account = caller.account_id.as_str();
        let mut guard = self.pumping.lock().unwrap_or_else(PoisonError::into_inner);
        for (i, to) in recipients.iter().enumerate() {
            let country = to.country().unwrap_or("??");
            let Verdict::Blocked(new) = guard.observe(&rules, account, to.as_str(), country, now)
            else {
                continue;
            };
            drop(guard);
            if let Some(block) = new {
                self.record_pumping_block(caller, block, now);
            }
            metrics::counter!("rampart_policy_refusals_total", "code" => "destination_suspected_pumping")
                .increment(1);
            return Err(AppError::Invalid {
                code: "destination_suspected_pumping",
                message: "messages to this number's range are held: it received a burst typical \
                          of SMS pumping (an account admin can lift the block)"
                    .into(),
                field: Some(if to_is_list {
                    format!("to[{i}]")
                } else {
                    "to".to_owned()
                }),
            });
        }
        Ok(())
    }

    /// Stores a new block with its security event, without making the request wait.
    fn record_pumping_block(&self, caller: &Caller, block: NewBlock, now: Millis) {
        let masked = masked_prefix(&block.prefix);
        tracing::warn!(
            account = %caller.account_id, prefix = %masked, reason = block.trip.as_str(),
            count = block.count, distinct = block.distinct,
            "destination prefix blocked: suspected SMS pumping"
        );
        metrics::counter!("rampart_pumping_blocks_total", "reason" => block.trip.as_str())
            .increment(1);
        let target = format!(
            "prefix={masked} reason={} count={} distinct={}",
            block.trip.as_str(),
            block.count,
            block.distinct
        );
        let mut audit = AuditEvent::by(caller, Action::PumpingBlocked, target, now);
        audit.actor = Actor::System;
        let row = PumpingBlockRecord {
            account_id: caller.account_id.clone(),
            prefix: block.prefix,
            until: block.until,
            reason: block.trip.as_str().to_owned(),
            created_at: now,
        };
        self.store.write_detached(move |tx| {
            tx.upsert_pumping_block(&row)?;
            audit.record(tx)
        });
    }

    /// The account's blocks in force (`account:manage`).
    pub fn list_pumping_blocks_for(
        &self,
        caller: &Caller,
    ) -> Result<Vec<PumpingBlockRecord>, AppError> {
        caller.require(Scope::AccountManage)?;
        self.list_pumping_blocks(Some(&caller.account_id))
    }

    /// Blocks in force, soonest to end first: one account's or every one's (the operator).
    pub fn list_pumping_blocks(
        &self,
        account: Option<&str>,
    ) -> Result<Vec<PumpingBlockRecord>, AppError> {
        let now = self.clock.now_ms();
        Ok(self.store.read(|tx| tx.list_pumping_blocks(account, now))?)
    }

    /// Lifts a block of the caller's account (`account:manage`).
    pub async fn lift_pumping_block(&self, caller: &Caller, prefix: &str) -> Result<(), AppError> {
        caller.require(Scope::AccountManage)?;
        let prefix = parse_prefix(prefix)?;
        let now = self.clock.now_ms();
        let account = caller.account_id.clone();
        let audit = AuditEvent::by(
            caller,
            Action::PumpingBlockLifted,
            masked_prefix(&prefix),
            now,
        );
        let owned = prefix.clone();
        let lifted = self
            .write_audited(
                audit,
                move |tx| tx.delete_pumping_block(&account, &owned),
                |x| *x,
            )
            .await?;
        self.pumping
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .lift(&caller.account_id, &prefix);
        if lifted {
            Ok(())
        } else {
            Err(AppError::NotFound("block"))
        }
    }

    /// The account's safe list.
    pub fn pumping_safe_list(&self, caller: &Caller) -> Result<Vec<String>, AppError> {
        caller.require(Scope::AccountManage)?;
        let rows = self
            .store
            .read(|tx| tx.list_safe_prefixes(Some(&caller.account_id)))?;
        Ok(rows.into_iter().map(|(_, p)| p).collect())
    }

    /// Adds (or with `remove`, takes off) a prefix of the account's safe list: `+` and 1 to 14
    /// digits. Whether it changed anything.
    pub async fn edit_pumping_safe_list(
        &self,
        caller: &Caller,
        prefix: &str,
        remove: bool,
    ) -> Result<bool, AppError> {
        caller.require(Scope::AccountManage)?;
        let prefix = parse_prefix(prefix)?;
        let now = self.clock.now_ms();
        let account = caller.account_id.clone();
        let action = if remove {
            Action::PumpingSafeRemoved
        } else {
            Action::PumpingSafeAdded
        };
        let audit = AuditEvent::by(caller, action, masked_prefix(&prefix), now);
        let changed = self
            .write_audited(
                audit,
                move |tx| {
                    if remove {
                        tx.delete_safe_prefix(&account, &prefix)
                    } else {
                        tx.insert_safe_prefix(&account, &prefix, now)
                    }
                },
                |x| *x,
            )
            .await?;
        // The send path follows at once, not at the next second's look.
        *self
            .pumping_version
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = None;
        self.sync_pumping()?;
        Ok(changed)
    }

    /// Takes the store's blocks and safe lists when they changed since the last look (the
    /// server calls this every second; `App::open` once).
    pub fn sync_pumping(&self) -> Result<(), AppError> {
        let version = self.store.read(|tx| tx.pumping_version())?;
        let mut seen = self
            .pumping_version
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if *seen == Some(version) {
            return Ok(());
        }
        let now = self.clock.now_ms();
        let blocks = self.store.read(|tx| tx.list_pumping_blocks(None, now))?;
        let safe = self.store.read(|tx| tx.list_safe_prefixes(None))?;
        let mut guard = self.pumping.lock().unwrap_or_else(PoisonError::into_inner);
        guard.replace_blocks(
            blocks
                .into_iter()
                .map(|b| (b.account_id, b.prefix, b.until)),
        );
        guard.replace_safe_list(safe);
        *seen = Some(version);
        Ok(())
    }
}

/// A number prefix: `+` and 1 to 14 digits.
fn parse_prefix(raw: &str) -> Result<String, AppError> {
    let prefix = raw.trim();
    let digits = prefix.strip_prefix('+').unwrap_or("");
    if digits.is_empty() || digits.len() > 14 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(AppError::invalid(
            "invalid_prefix",
            "a prefix is `+` and 1 to 14 digits",
            "prefix",
        ));
    }
    Ok(prefix.to_owned())
}
