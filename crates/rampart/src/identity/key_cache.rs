//! API key records cached in memory, so authenticating a request costs no database read.
//!
//! Revocation must still take effect on the very next request, even when it is done by the CLI
//! in another process. Every change to keys replaces a small epoch file in the data directory
//! (a new inode each time, by rename); each lookup compares the file's identity, one `stat`,
//! and drops the whole cache when it moved on. File times are coarse (a few milliseconds), so
//! nothing is served from or put into the cache while the epoch file is younger than
//! `SETTLE`: a later change then always shows a different modification time.
//!
//! Unknown ids are remembered as misses too, so a flood of well-formed junk tokens costs no
//! disk read; issuing a key moves the epoch on like any other change, and the table is
//! emptied when it reaches `MAX_ENTRIES`, so junk cannot grow it without bound.

use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use super::api_keys::StoredApiKey;
use crate::network::ip::AccountNetworks;
use crate::network::rate_limit::AccountRates;
use crate::store::{Store, StoreError};

/// The epoch file's identity: inode and modification time.
pub(crate) type Stamp = (u64, i64, i64);

/// How old the epoch file must be before records are cached against it.
const SETTLE: Duration = Duration::from_millis(100);

/// Most ids remembered (keys and misses) before the table starts afresh.
const MAX_ENTRIES: usize = 100_000;

/// Key records by id; `None` remembers that there is no such key.
type Entries = HashMap<String, Option<Arc<StoredApiKey>>>;

/// Cached key records (`None`: no such key), valid while the epoch file is unchanged.
pub struct KeyCache {
    epoch_file: PathBuf,
    entries: RwLock<(Stamp, Entries)>,
}

/// The stamp, and whether the file is old enough to cache against (policy documents are
/// cached against their own epoch file the same way).
pub(crate) fn stamp(path: &Path) -> (Stamp, bool) {
    match fs::metadata(path) {
        Ok(m) => {
            let settled = m
                .modified()
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age >= SETTLE);
            ((m.ino(), m.mtime(), m.mtime_nsec()), settled)
        }
        Err(_) => ((0, 0, 0), true),
    }
}

/// The epoch file of a data directory.
pub fn epoch_file(data_dir: &Path) -> PathBuf {
    data_dir.join("api-keys.epoch")
}

/// Tells every running server that keys changed. Call after the change is committed.
pub fn announce_change(data_dir: &Path) -> std::io::Result<()> {
    let target = epoch_file(data_dir);
    let temp = data_dir.join(format!(".api-keys.epoch.{}", crate::store::new_id("tmp")));
    fs::write(&temp, crate::store::new_id("epoch"))?;
    fs::rename(&temp, &target)
}

impl KeyCache {
    pub fn new(data_dir: &Path) -> Self {
        Self {
            epoch_file: epoch_file(data_dir),
            entries: RwLock::new(((0, 0, 0), HashMap::new())),
        }
    }

    /// The key with this public id, from memory when the epoch is unchanged.
    /// Shared, not copied: this runs on every request.
    pub fn find(&self, store: &Store, id: &str) -> Result<Option<Arc<StoredApiKey>>, StoreError> {
        let (current, settled) = stamp(&self.epoch_file);
        if let Ok(entries) = self.entries.read()
            && settled
            && entries.0 == current
            && let Some(key) = entries.1.get(id)
        {
            return Ok(key.clone());
        }
        // Read after taking the stamp: a change committed meanwhile moves the stamp on, so the
        // next lookup reloads.
        let found = store.read(|tx| {
            let Some(record) = tx.find_api_key(id)? else {
                return Ok(None);
            };
            let ((operator, account), (operator_rates, account_rates)) = match &record.account_id {
                Some(account) => (
                    tx.account_networks(account)?,
                    tx.account_rate_limits(account)?.unwrap_or_default(),
                ),
                None => Default::default(),
            };
            let mut key = StoredApiKey::from(record);
            key.account_networks = AccountNetworks::from_stored(&operator, &account);
            key.account_rates = AccountRates::from_stored(&operator_rates, &account_rates);
            Ok::<_, StoreError>(Some(Arc::new(key)))
        })?;
        if !settled {
            return Ok(found);
        }
        if let Ok(mut entries) = self.entries.write() {
            if entries.0 != current || entries.1.len() >= MAX_ENTRIES {
                entries.1.clear();
                entries.0 = current;
            }
            entries.1.insert(id.to_owned(), found.clone());
        }
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Scopes;
    use crate::network::ip::IpList;

    #[test]
    fn a_change_announced_after_caching_is_seen_on_the_next_lookup() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db")).unwrap();
        store
            .write_blocking(|tx| {
                tx.insert_account(&crate::store::accounts::AccountRecord {
                    id: "acc_1".into(),
                    name: "a".into(),
                    created_at: 0,
                })?;
                tx.insert_api_key(
                    &StoredApiKey {
                        id: "rk_1".into(),
                        account_id: Some("acc_1".into()),
                        name: "k".into(),
                        hash: vec![0; 32],
                        scopes: Scopes::all(),
                        created_at: 0,
                        expires_at: None,
                        revoked_at: None,
                        last_used_at: None,
                        allowed_ips: IpList::default(),
                        account_networks: AccountNetworks::default(),
                        account_rates: AccountRates::default(),
                        user_id: None,
                        parent_id: None,
                        client_cert_sha256: None,
                    }
                    .to_record(),
                )
            })
            .unwrap();
        let cache = KeyCache::new(dir.path());
        assert!(
            cache
                .find(&store, "rk_1")
                .unwrap()
                .unwrap()
                .revoked_at
                .is_none()
        );
        store
            .write_blocking(|tx| tx.revoke_api_key_tree("rk_1", 5))
            .unwrap();
        // Without an announcement the cached record is served.
        assert!(
            cache
                .find(&store, "rk_1")
                .unwrap()
                .unwrap()
                .revoked_at
                .is_none()
        );
        announce_change(dir.path()).unwrap();
        assert_eq!(
            cache.find(&store, "rk_1").unwrap().unwrap().revoked_at,
            Some(5)
        );
        std::thread::sleep(SETTLE);
        assert_eq!(
            cache.find(&store, "rk_1").unwrap().unwrap().revoked_at,
            Some(5)
        );
        store.close();
    }

    fn insert_key(store: &Store, id: &str) {
        let id = id.to_owned();
        store
            .write_blocking(move |tx| {
                tx.insert_api_key(
                    &StoredApiKey {
                        id,
                        account_id: None,
                        name: "k".into(),
                        hash: vec![0; 32],
                        scopes: Scopes::all().server_wide_only(),
                        created_at: 0,
                        expires_at: None,
                        revoked_at: None,
                        last_used_at: None,
                        allowed_ips: IpList::default(),
                        account_networks: AccountNetworks::default(),
                        account_rates: AccountRates::default(),
                        user_id: None,
                        parent_id: None,
                        client_cert_sha256: None,
                    }
                    .to_record(),
                )
            })
            .unwrap();
    }

    #[test]
    fn an_unknown_id_is_remembered_as_a_miss_until_a_key_is_issued() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db")).unwrap();
        let cache = KeyCache::new(dir.path());
        // A settled epoch, as on a server that has been running a while.
        announce_change(dir.path()).unwrap();
        std::thread::sleep(SETTLE);
        assert!(cache.find(&store, "rk_unknown").unwrap().is_none());

        // The row appears without an announcement: the remembered miss is served, which shows
        // that the second lookup did not read the store.
        insert_key(&store, "rk_unknown");
        assert!(cache.find(&store, "rk_unknown").unwrap().is_none());

        // Issuing a key announces the change (`App::announce_key_change`): the miss is
        // forgotten and the key is found on the next lookup, settled or not.
        announce_change(dir.path()).unwrap();
        assert!(cache.find(&store, "rk_unknown").unwrap().is_some());
        std::thread::sleep(SETTLE);
        assert!(cache.find(&store, "rk_unknown").unwrap().is_some());
        store.close();
    }
}
