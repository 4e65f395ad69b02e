//! Use cases of bans: list and lift them (operator), keep the running server's copy in step
//! with the store, and count failed authentications.

use std::net::IpAddr;

use super::audit::{Action, Actor, AuditEvent, Caller};
use super::{App, AppError};
use crate::identity::Scope;
use crate::network::bans::Ban;
use crate::network::ip::client_network;
use crate::store::bans::BanRecord;

impl App {
    /// [`App::list_bans`] for a caller holding `bans:manage`.
    pub fn list_bans_for(&self, caller: &Caller) -> Result<Vec<BanRecord>, AppError> {
        caller.require(Scope::BansManage)?;
        self.list_bans()
    }

    /// [`App::lift_ban`] for a caller holding `bans:manage`.
    pub async fn lift_ban_for(&self, caller: &Caller, ip: &str) -> Result<(), AppError> {
        caller.require(Scope::BansManage)?;
        self.lift_ban(&caller.actor, ip).await
    }

    /// Bans in force, soonest to end first.
    pub fn list_bans(&self) -> Result<Vec<BanRecord>, AppError> {
        let now = self.clock.now_ms();
        Ok(self.store.read(|tx| tx.list_bans(now))?)
    }

    /// Lifts the ban on `ip`; running servers apply it within a second.
    pub async fn lift_ban(&self, actor: &Actor, ip: &str) -> Result<(), AppError> {
        let ip: IpAddr = ip.trim().parse().map_err(|_| {
            AppError::invalid("invalid_ip", format!("`{ip}` is not an IP address"), "ip")
        })?;
        let ip = client_network(ip);
        let now = self.clock.now_ms();
        let target = ip.to_string();
        let audit = AuditEvent::instance(actor, Action::BanLifted, &target, now);
        let lifted = self
            .write_audited(audit, move |tx| tx.delete_ban(&target), |x| *x)
            .await?;
        if lifted {
            Ok(())
        } else {
            Err(AppError::NotFound("ban"))
        }
    }

    /// Forgets bans that ended more than a day ago (the server calls this now and then).
    pub async fn purge_old_bans(&self) -> Result<(), AppError> {
        let before = self.clock.now_ms() - 24 * 3600 * 1000;
        self.store.write(move |tx| tx.purge_bans(before)).await?;
        Ok(())
    }

    /// Takes the store's bans as the ones in force (the server calls this every second).
    pub fn sync_bans(&self) -> Result<(), AppError> {
        let stored = self.list_bans()?;
        self.bans.replace(stored.into_iter().filter_map(|b| {
            let ip = b.ip.parse().ok()?;
            Some((
                ip,
                Ban {
                    until: b.until,
                    strikes: b.strikes,
                },
            ))
        }));
        Ok(())
    }

    /// Refuses an address under a ban.
    pub(crate) fn refuse_if_banned(&self, ip: IpAddr) -> Result<(), AppError> {
        match self.bans.banned_until(ip, self.clock.now_ms()) {
            None => Ok(()),
            Some(_) => {
                metrics::counter!("rampart_ip_refusals_total", "reason" => "banned").increment(1);
                Err(AppError::forbidden(
                    "ip_banned",
                    "too many failed authentications from this address; try again later",
                ))
            }
        }
    }

    /// Counts a failed authentication; a new ban is stored and audited without waiting.
    pub(crate) fn note_failed_authentication(&self, ip: IpAddr) {
        let now = self.clock.now_ms();
        let Some(ban) = self.bans.record_failure(ip, now) else {
            return;
        };
        tracing::warn!(%ip, strikes = ban.strikes, until = %crate::clock::rfc3339(ban.until), "address banned for failing authentication");
        let record = BanRecord {
            ip: client_network(ip).to_string(),
            until: ban.until,
            strikes: ban.strikes,
            created_at: now,
        };
        let mut audit =
            AuditEvent::instance(&Actor::System, Action::AddressBanned, &record.ip, now);
        audit.client_ip = Some(ip);
        self.store.write_detached(move |tx| {
            tx.upsert_ban(&record)?;
            audit.record(tx)
        });
    }
}
