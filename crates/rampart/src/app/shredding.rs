//! Deleting an account by crypto-shredding: one transaction destroys the material of every
//! data key of the account, so its sealed numbers and bodies cannot be read from that moment
//! (wherever copies of the rows linger: free pages, the WAL), and removes every way into it
//! (API keys revoked, members, invitations and numbers removed). Its rows are then purged in
//! batches. Backups taken before hold the keys too, wrapped: they age out with the backups.

use super::audit::{Action, Actor, AuditEvent};
use super::{App, AppError};

/// Rows of deleted accounts deleted per transaction.
const PURGE_BATCH: usize = 1_000;

impl App {
    /// Deletes `account_id`; returns how many of its data keys were destroyed. Its rows stay
    /// until [`App::purge_deleted_accounts`] (the server's hourly sweep, or `rampart account
    /// delete` itself) removes them, unreadable meanwhile.
    pub async fn delete_account(&self, actor: &Actor, account_id: &str) -> Result<usize, AppError> {
        let now = self.clock.now_ms();
        let mut audit = AuditEvent::instance(actor, Action::AccountDeleted, account_id, now);
        audit.account_id = Some(account_id.to_owned());
        let id = account_id.to_owned();
        let destroyed = self
            .store
            .write(move |tx| {
                if !tx.mark_account_deleted(&id, now)? {
                    return Err(AppError::NotFound("account"));
                }
                let destroyed = tx.destroy_account_keys(&id, now)?;
                audit.record(tx)?;
                Ok(destroyed)
            })
            .await?;
        self.announce_key_change()?;
        self.sync_keys()?;
        Ok(destroyed)
    }

    /// Deletes the rows of deleted accounts, a batch per transaction; how many went.
    pub async fn purge_deleted_accounts(&self) -> Result<usize, AppError> {
        let mut total = 0;
        loop {
            let purged = self
                .store
                .write(|tx| tx.purge_deleted_accounts(PURGE_BATCH))
                .await?;
            total += purged;
            if purged == 0 {
                return Ok(total);
            }
        }
    }
}
