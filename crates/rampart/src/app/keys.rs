//! Key management: opening the keyring at start (bringing an earlier release's directory up to
//! the key hierarchy), following keys other processes add, counting encryptions and rotating
//! data keys by use and age, `rampart keys rotate|rotate-master|reencrypt|retire|list`.
//! Every change is audited.

use std::sync::Arc;
use std::time::Duration;

use super::audit::{Action, Actor, AuditEvent};
use super::backup::Progress;
use super::{App, AppError};
use crate::clock::Millis;
use crate::data::keyring::{KeyInfo, KeyWrites, Keyring, MasterKey, MasterKeySource, StoredKeys};
use crate::store::keys::{KekRecord, KeyPurpose, KeysVersion, SealedColumn};
use crate::store::{Store, StoreError, Tx};

/// The keys as the store holds them.
pub(crate) fn stored_keys(store: &Store) -> Result<StoredKeys, StoreError> {
    store.read(|tx| {
        Ok(StoredKeys {
            keks: tx.keks()?,
            keys: tx.data_keys()?,
            accounts_without_key: tx.accounts_without_data_key()?,
            legacy_index_accounts: tx.legacy_index_accounts()?,
        })
    })
}

fn store_writes(tx: &Tx<'_>, writes: &KeyWrites) -> Result<(), StoreError> {
    for kek in &writes.keks {
        tx.insert_kek(kek)?;
    }
    for (id, kek, wrapped) in &writes.rewrapped {
        tx.rewrap_data_key(*id, *kek, wrapped)?;
    }
    for key in &writes.new_keys {
        tx.insert_data_key(key)?;
    }
    Ok(())
}

/// Opens the keyring of a data directory and stores the keys it had to make (the first
/// start, an upgrade, accounts without a key of their own) before anything is sealed.
/// Also says whether keys were made or re-wrapped (an upgrade: older values may want moving).
pub(crate) fn open_keyring(
    master: &MasterKey,
    store: &Store,
    now: Millis,
) -> Result<(Keyring, bool), AppError> {
    let stored = stored_keys(store)?;
    let (ring, writes) = Keyring::open(master, &stored, now)?;
    let changed = !writes.is_empty();
    if changed {
        store.write_blocking(move |tx| store_writes(tx, &writes))?;
    }
    Ok((ring, changed))
}

/// A data key as `rampart keys list` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyView {
    pub id: u32,
    pub account_id: Option<String>,
    pub purpose: &'static str,
    pub active: bool,
    pub uses: u64,
    pub created_at: Millis,
    pub retired_at: Option<Millis>,
}

/// What a re-encryption did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReencryptReport {
    pub scanned: u64,
    pub reencrypted: u64,
    /// Values that did not open (edited, or under a destroyed key): left as they are, for
    /// `rampart verify` to name.
    pub unreadable: u64,
}

/// Why a key cannot be retired.
fn still_needed(id: u32, rows: u64) -> AppError {
    AppError::conflict(
        "key_in_use",
        format!("data key {id} still seals {rows} values: run `rampart keys reencrypt` first"),
    )
}

impl App {
    /// The keyring behind every sealed field.
    pub fn keyring(&self) -> &Arc<Keyring> {
        self.sealer.keyring()
    }

    /// Whether values may sit under another key than their account's newest: older keys are
    /// loaded, or this start made keys (a first start, an upgrade, accounts without one).
    pub fn keys_to_move(&self) -> bool {
        self.keys_made_at_start || self.keyring().has_older_keys()
    }

    /// Takes keys another process added or retired (the CLI while the server runs). Cheap:
    /// a count unless something changed.
    pub fn sync_keys(&self) -> Result<bool, AppError> {
        let version: KeysVersion = self.store.read(|tx| tx.keys_version())?;
        {
            let mut seen = self
                .keys_version
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if *seen == Some(version) {
                return Ok(false);
            }
            *seen = Some(version);
        }
        let records = self.store.read(|tx| tx.data_keys())?;
        self.keyring().reload(&records)?;
        Ok(true)
    }

    /// Stores the encryption counts kept in memory, then rotates every active data key that
    /// has sealed `keys.rotate_after_encryptions` values or is older than
    /// `keys.rotate_after_days` (random 96-bit nonces: NIST SP 800-38D allows 2^32
    /// encryptions per key; the default is a quarter of that). Returns the rotated keys.
    pub async fn rotate_due_keys(&self) -> Result<Vec<u32>, AppError> {
        self.flush_key_uses().await?;
        let now = self.clock.now_ms();
        let keys = &self.config.keys;
        let max_age = Millis::from(keys.rotate_after_days).saturating_mul(86_400_000);
        let due: Vec<KeyInfo> = self
            .keyring()
            .active_keys()
            .into_iter()
            .filter(|k| {
                k.stored_uses >= keys.rotate_after_encryptions
                    || (max_age > 0 && now.saturating_sub(k.created_at) >= max_age)
            })
            .collect();
        let mut rotated = Vec::new();
        for key in due {
            rotated.push(
                self.rotate_data_key(&Actor::System, key.account_id.as_deref())
                    .await?,
            );
        }
        Ok(rotated)
    }

    /// Stores the encryption counts kept in memory (given back to memory if that fails).
    pub async fn flush_key_uses(&self) -> Result<(), AppError> {
        let uses = self.keyring().take_uses();
        if uses.is_empty() {
            return Ok(());
        }
        let counted = uses.clone();
        let stored = self
            .store
            .write(move |tx| {
                for (id, n) in &counted {
                    tx.add_key_uses(*id, *n)?;
                }
                Ok::<_, StoreError>(())
            })
            .await;
        if let Err(e) = stored {
            self.keyring().restore_uses(&uses);
            return Err(e.into());
        }
        // The counts are not part of the keys' version: reload them whatever it says.
        let records = self.store.read(|tx| tx.data_keys())?;
        self.keyring().reload(&records)?;
        Ok(())
    }

    /// Makes a new data key for `account` (`None`: the instance's own), which seals
    /// everything written from now on; older rows stay readable under their key.
    pub async fn rotate_data_key(
        &self,
        actor: &Actor,
        account: Option<&str>,
    ) -> Result<u32, AppError> {
        if let Some(account) = account
            && self.store.read(|tx| tx.get_account(account))?.is_none()
        {
            return Err(AppError::NotFound("account"));
        }
        let ring = self.keyring().clone();
        let account = account.map(str::to_owned);
        let now = self.clock.now_ms();
        let actor = actor.clone();
        let id = self
            .store
            .write(move |tx| {
                let id = tx.next_data_key_id()?;
                let key = ring.new_data_key(id, account.as_deref(), now)?;
                tx.insert_data_key(&key)?;
                let mut audit =
                    AuditEvent::instance(&actor, Action::KeyRotated, format!("data-key:{id}"), now);
                audit.account_id = account;
                audit.record(tx)?;
                Ok::<_, AppError>(id)
            })
            .await?;
        self.sync_keys()?;
        Ok(id)
    }

    /// Rotates the data keys of every account and of the instance.
    pub async fn rotate_all_data_keys(&self, actor: &Actor) -> Result<Vec<u32>, AppError> {
        let mut accounts: Vec<Option<String>> = vec![None];
        accounts.extend(
            self.store
                .read(|tx| tx.list_accounts())?
                .into_iter()
                .map(|a| Some(a.id)),
        );
        let mut ids = Vec::with_capacity(accounts.len());
        for account in accounts {
            ids.push(self.rotate_data_key(actor, account.as_deref()).await?);
        }
        Ok(ids)
    }

    /// Every stored key, oldest first.
    pub fn list_keys(&self) -> Result<Vec<KeyView>, AppError> {
        let records = self.store.read(|tx| tx.data_keys())?;
        let active: Vec<u32> = self.keyring().active_keys().iter().map(|k| k.id).collect();
        Ok(records
            .into_iter()
            .map(|k| KeyView {
                active: k.purpose != KeyPurpose::Data || active.contains(&k.id),
                id: k.id,
                account_id: k.account_id,
                purpose: k.purpose.as_str(),
                uses: k.uses,
                created_at: k.created_at,
                retired_at: k.retired_at,
            })
            .collect())
    }

    /// Moves every sealed value that is not under its account's newest key (or is of the
    /// first ciphertext format) to it, a batch per transaction. Safe to stop at any point
    /// and run again: what is left is exactly what still needs it. With `pause`, waits
    /// between batches as long as each took (the server's background job).
    pub async fn reencrypt(
        &self,
        actor: &Actor,
        progress: &dyn Progress,
        pause: bool,
    ) -> Result<ReencryptReport, AppError> {
        self.sync_keys()?;
        let mut total = 0;
        for column in SealedColumn::ALL {
            total += self.store.read(|tx| tx.count_rows(column))?;
        }
        let mut report = ReencryptReport::default();
        let batch = self.config.keys.reencrypt_batch.max(1);
        progress.update("re-encrypting", 0, total);
        for column in SealedColumn::ALL {
            let mut after = String::new();
            loop {
                let started = std::time::Instant::now();
                let cells = self
                    .store
                    .read(|tx| tx.sealed_cells(column, &after, batch))?;
                let Some(last) = cells.last() else { break };
                after = last.row.clone();
                report.scanned += cells.len() as u64;
                let mut changes = Vec::new();
                for cell in cells {
                    match self.sealer.reseal(column, &cell) {
                        Ok(Some(new)) => changes.push((cell.row, cell.sealed, new)),
                        Ok(None) => {}
                        Err(_) => report.unreadable += 1,
                    }
                }
                if !changes.is_empty() {
                    let moved = self
                        .store
                        .write(move |tx| {
                            let mut moved = 0u64;
                            for (row, old, new) in &changes {
                                moved += u64::from(tx.replace_sealed(column, row, old, new)?);
                            }
                            Ok::<_, StoreError>(moved)
                        })
                        .await?;
                    report.reencrypted += moved;
                }
                progress.update("re-encrypting", report.scanned.min(total), total);
                if pause {
                    tokio::time::sleep(started.elapsed().max(Duration::from_millis(5))).await;
                }
            }
        }
        if report.reencrypted > 0 {
            let now = self.clock.now_ms();
            let audit = AuditEvent::instance(
                actor,
                Action::KeysReencrypted,
                format!("{} values", report.reencrypted),
                now,
            );
            self.store.write(move |tx| audit.record(tx)).await?;
        }
        Ok(report)
    }

    /// Erases data key `id` for good. Refused while it is the newest key of its account (it
    /// still seals new writes) or while any value is still sealed under it.
    pub async fn retire_key(&self, actor: &Actor, id: u32) -> Result<(), AppError> {
        self.sync_keys()?;
        let records = self.store.read(|tx| tx.data_keys())?;
        let key = records
            .iter()
            .find(|k| k.id == id && k.purpose == KeyPurpose::Data)
            .ok_or(AppError::NotFound("data key"))?;
        if key.retired_at.is_some() {
            return Ok(());
        }
        if self.keyring().active_keys().iter().any(|k| k.id == id) {
            return Err(AppError::conflict(
                "key_active",
                format!(
                    "data key {id} seals new writes: run `rampart keys rotate` and \
                     `rampart keys reencrypt` first"
                ),
            ));
        }
        let mut rows = 0;
        for column in SealedColumn::ALL {
            rows += self.store.read(|tx| tx.count_sealed_under(column, id))?;
        }
        if rows > 0 {
            return Err(still_needed(id, rows));
        }
        let now = self.clock.now_ms();
        let mut audit =
            AuditEvent::instance(actor, Action::KeyRetired, format!("data-key:{id}"), now);
        audit.account_id = key.account_id.clone();
        self.store
            .write(move |tx| {
                // Counted again inside the transaction: a write since is sealed under the
                // newest key, never this one, but an old row restored meanwhile would be.
                let mut rows = 0;
                for column in SealedColumn::ALL {
                    rows += tx.count_sealed_under(column, id)?;
                }
                if rows > 0 {
                    return Err(still_needed(id, rows));
                }
                tx.retire_data_key(id, now)?;
                audit.record(tx)?;
                Ok::<_, AppError>(())
            })
            .await?;
        self.sync_keys()?;
        Ok(())
    }

    /// Wraps the key-encryption keys under `new` and drops the wraps of every other master
    /// key, so only `new` opens the directory from now on. Data and API keys are untouched.
    /// The caller puts `new` where the next start reads it ([`replace_master_key_file`]
    /// before calling this, for the file source).
    pub async fn rotate_master_key(&self, actor: &Actor, new: &MasterKey) -> Result<(), AppError> {
        let now = self.clock.now_ms();
        let wraps = self.keyring().wrap_keks_for(new, now)?;
        let fp = new.fingerprint();
        let audit = AuditEvent::instance(actor, Action::MasterKeyRotated, hex(&fp), now);
        self.store
            .write(move |tx| {
                store_missing_wraps(tx, &wraps)?;
                tx.delete_keks_not_under(&fp)?;
                audit.record(tx)?;
                Ok::<_, StoreError>(())
            })
            .await?;
        Ok(())
    }

    /// Adds wraps under `new` beside the current ones (the first half of a master key change:
    /// either key opens the directory until [`App::rotate_master_key`] finishes it).
    pub async fn add_master_key(&self, new: &MasterKey) -> Result<(), AppError> {
        let wraps = self.keyring().wrap_keks_for(new, self.clock.now_ms())?;
        self.store
            .write(move |tx| store_missing_wraps(tx, &wraps))
            .await?;
        Ok(())
    }
}

/// Stores the wraps not stored yet (a change of master key run again finds some there).
fn store_missing_wraps(tx: &Tx<'_>, wraps: &[KekRecord]) -> Result<(), StoreError> {
    let existing = tx.keks()?;
    for kek in wraps {
        if !existing
            .iter()
            .any(|k| k.id == kek.id && k.master_fp == kek.master_fp)
        {
            tx.insert_kek(kek)?;
        }
    }
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Where the master key comes from, for this configuration.
pub fn master_key_source(config: &crate::config::Config) -> MasterKeySource {
    MasterKeySource::choose(
        config.keys.master_key_command.as_deref(),
        config.master_key_path(),
    )
}
