//! The keyring: envelope encryption under a key hierarchy.
//!
//! Master key → key-encryption keys (random, stored wrapped by the master key) → data keys
//! (AES-256-GCM, one set per account plus the instance's own, stored wrapped by a
//! key-encryption key), the API-key hash key and the blind-index root (each account's index
//! key is derived from it, so equal numbers in two accounts get unrelated tags). Every
//! ciphertext names its data key, so a new key takes over writes while old rows stay readable
//! (rotation without downtime) until they are re-encrypted and the old key retired. Unwrapping
//! happens when keys are loaded; the send path runs one AES-GCM and one HMAC per field.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use arc_swap::ArcSwap;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

pub use super::master_key::{MasterKey, MasterKeySource};
use crate::clock::Millis;
use crate::store::keys::{DataKeyRecord, KekRecord, KeyPurpose};

type HmacSha256 = Hmac<Sha256>;
type Secret = Zeroizing<[u8; 32]>;
/// A key-encryption key: its bytes (to wrap it under a new master key) and its cipher.
type Kek = (Secret, Aes256Gcm);

/// The first byte of every ciphertext: its format. Format 2 binds the context built by
/// `data::sealing` (account, table, column, row); format 1 was written under a context naming
/// the row only, and is still read.
const CIPHERTEXT_VERSION: u8 = 2;
pub(crate) const LEGACY_CIPHERTEXT_VERSION: u8 = 1;
const NONCE_LEN: usize = 12;
const HEADER_LEN: usize = 1 + 4 + NONCE_LEN;

/// What can go wrong with keys and ciphertexts.
#[derive(Debug, thiserror::Error)]
pub enum KeyringError {
    /// The master key file could not be read or created.
    #[error("master key file {path}: {source}")]
    MasterKeyIo {
        path: String,
        source: std::io::Error,
    },
    /// The master key file is readable by others than its owner, or is another user's.
    #[error("master key file: {0}")]
    MasterKeyExposed(String),
    /// The master key source does not hold 32 base64-encoded bytes.
    #[error("{0} does not hold a 32-byte base64 key")]
    MasterKeyMalformed(String),
    /// The master key command could not run or failed.
    #[error("keys.master_key_command: {0}")]
    MasterKeyCommand(String),
    /// No key-encryption key of this data directory is wrapped by the given master key.
    #[error(
        "this master key does not open this data directory (its keys are wrapped by another \
         master key)"
    )]
    MasterKeyMismatch,
    /// A wrapped key did not decrypt (wrong master key or tampered database).
    #[error("key {0} cannot be unwrapped: wrong master key or tampered database")]
    DataKeyUnwrap(u32),
    /// A ciphertext is malformed, names an unknown data key, or failed authentication.
    #[error("ciphertext failed to decrypt: tampered, truncated, or written under another key")]
    Decrypt,
    /// Encryption failed (never expected with valid keys).
    #[error("encryption failed")]
    Encrypt,
}

pub(crate) fn hmac_from(key: &[u8]) -> HmacSha256 {
    // HMAC accepts keys of any length.
    <HmacSha256 as KeyInit>::new_from_slice(key).unwrap_or_else(|_| unreachable!())
}

fn aes_from(key: &[u8; 32]) -> Aes256Gcm {
    Aes256Gcm::new(key.into())
}

fn random_key() -> Zeroizing<[u8; 32]> {
    let mut key = Zeroizing::new([0u8; 32]);
    rand::fill(&mut key[..]);
    key
}

fn seal_with(cipher: &Aes256Gcm, plain: &[u8], aad: &[u8]) -> Result<Vec<u8>, KeyringError> {
    let mut nonce = [0u8; NONCE_LEN];
    rand::fill(&mut nonce);
    let sealed = cipher
        .encrypt(&Nonce::from(nonce), Payload { msg: plain, aad })
        .map_err(|_| KeyringError::Encrypt)?;
    let mut out = nonce.to_vec();
    out.extend_from_slice(&sealed);
    Ok(out)
}

fn unseal_key(cipher: &Aes256Gcm, wrapped: &[u8], aad: &[u8]) -> Option<Zeroizing<[u8; 32]>> {
    let (nonce, sealed) = wrapped.split_at_checked(NONCE_LEN)?;
    let nonce: [u8; NONCE_LEN] = nonce.try_into().ok()?;
    let plain = Zeroizing::new(
        cipher
            .decrypt(&Nonce::from(nonce), Payload { msg: sealed, aad })
            .ok()?,
    );
    let key: [u8; 32] = plain.as_slice().try_into().ok()?;
    Some(Zeroizing::new(key))
}

fn kek_aad(id: u32) -> Vec<u8> {
    format!("rampart/kek/{id}").into_bytes()
}

/// What a key wrapped by a key-encryption key is bound to: its id, purpose and owner.
fn key_aad(id: u32, purpose: KeyPurpose, account: Option<&str>) -> Vec<u8> {
    let mut aad = format!("rampart/key/{id}\0{}\0", purpose.as_str()).into_bytes();
    aad.extend_from_slice(account.unwrap_or("").as_bytes());
    aad
}

/// How earlier releases bound a data key wrapped by the master-derived key.
fn legacy_key_aad(id: u32) -> Vec<u8> {
    format!("data-key:{id}").into_bytes()
}

/// An unwrapped data key and the encryptions made with it since they were last counted.
struct DataKey {
    cipher: Aes256Gcm,
    uses: AtomicU64,
}

/// A data key's stored facts, for rotation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyInfo {
    pub id: u32,
    /// `None`: the instance's own.
    pub account_id: Option<String>,
    pub created_at: Millis,
    /// Encryptions counted in the store (without those still in memory).
    pub stored_uses: u64,
}

/// The data keys in use, swapped whole when keys change.
#[derive(Default)]
struct KeySet {
    keys: HashMap<u32, Arc<DataKey>>,
    /// The newest key of each account ("" for the instance).
    active: HashMap<Box<str>, u32>,
    infos: HashMap<u32, KeyInfo>,
    /// Each known account's blind-index key.
    index: HashMap<Box<str>, HmacSha256>,
}

/// Keys a keyring made while opening; they must be stored (one transaction) before anything
/// is sealed under them.
#[derive(Debug, Default)]
pub struct KeyWrites {
    pub keks: Vec<KekRecord>,
    /// (key id, key-encryption key id, new wrap) of keys wrapped the earlier way.
    pub rewrapped: Vec<(u32, u32, Vec<u8>)>,
    pub new_keys: Vec<DataKeyRecord>,
}

impl KeyWrites {
    pub fn is_empty(&self) -> bool {
        self.keks.is_empty() && self.rewrapped.is_empty() && self.new_keys.is_empty()
    }
}

/// What the store holds for the keyring.
#[derive(Debug, Default, Clone)]
pub struct StoredKeys {
    pub keks: Vec<KekRecord>,
    pub keys: Vec<DataKeyRecord>,
    pub accounts_without_key: Vec<String>,
    pub legacy_index_accounts: Vec<String>,
}

/// Every key the running server needs.
pub struct Keyring {
    keks: HashMap<u32, Kek>,
    active_kek: u32,
    api_key_mac: HmacSha256,
    index_root: Zeroizing<[u8; 32]>,
    legacy_index: Option<HmacSha256>,
    legacy_accounts: HashSet<Box<str>>,
    set: ArcSwap<KeySet>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring")
            .field("keys", &self.set.load().keys.len())
            .finish_non_exhaustive()
    }
}

impl Keyring {
    /// Opens the keyring from the master key and the stored keys. A data directory of an
    /// earlier release (no key-encryption key yet) is brought up to the hierarchy: its data
    /// keys re-wrapped, its API-key hash and blind-index keys (derived from the master key
    /// then) stored wrapped, so API keys and lookups keep working and the master key can
    /// change. Missing keys (the instance's data key, one per account) are made. The caller
    /// stores the returned writes before sealing anything.
    pub fn open(
        master: &MasterKey,
        stored: &StoredKeys,
        now: Millis,
    ) -> Result<(Self, KeyWrites), KeyringError> {
        let mut writes = KeyWrites::default();
        let mut next_id = stored.keys.iter().map(|k| k.id).max().unwrap_or(0) + 1;
        let keks = open_keks(master, &stored.keks, now, &mut writes)?;
        let active_kek = keks.keys().copied().max().unwrap_or(1);
        let mut ring = Self {
            keks,
            active_kek,
            api_key_mac: hmac_from(&[0u8; 32]),
            index_root: Zeroizing::new([0u8; 32]),
            legacy_index: None,
            legacy_accounts: stored
                .legacy_index_accounts
                .iter()
                .map(|a| a.as_str().into())
                .collect(),
            set: ArcSwap::from_pointee(KeySet::default()),
        };
        let upgrading = !writes.keks.is_empty() && !stored.keys.is_empty();
        let legacy_kek = aes_from(&master.derive("key-encryption"));
        let mut records = Vec::with_capacity(stored.keys.len());
        for key in &stored.keys {
            let mut key = key.clone();
            if key.kek_id.is_none() && key.retired_at.is_none() {
                let plain = unseal_key(&legacy_kek, &key.wrapped, &legacy_key_aad(key.id))
                    .ok_or(KeyringError::DataKeyUnwrap(key.id))?;
                key.kek_id = Some(ring.active_kek);
                key.wrapped = ring.wrap(key.id, key.purpose, key.account_id.as_deref(), &plain)?;
                writes
                    .rewrapped
                    .push((key.id, ring.active_kek, key.wrapped.clone()));
            }
            records.push(key);
        }
        let has = |records: &[DataKeyRecord], purpose| {
            records
                .iter()
                .any(|k| k.purpose == purpose && k.retired_at.is_none())
        };
        let mut wanted: Vec<(KeyPurpose, Option<&str>, Secret)> = Vec::new();
        if !has(&records, KeyPurpose::ApiKeyHash) {
            // Keys issued by earlier releases are hashed under the master-derived key.
            let plain = if upgrading {
                master.derive("api-key-hash")
            } else {
                random_key()
            };
            wanted.push((KeyPurpose::ApiKeyHash, None, plain));
        }
        if upgrading && !has(&records, KeyPurpose::LegacyIndex) {
            wanted.push((KeyPurpose::LegacyIndex, None, master.derive("blind-index")));
        }
        if !has(&records, KeyPurpose::IndexRoot) {
            wanted.push((KeyPurpose::IndexRoot, None, random_key()));
        }
        let instance_key = records.iter().any(|k| {
            k.purpose == KeyPurpose::Data && k.account_id.is_none() && k.retired_at.is_none()
        });
        if !instance_key {
            wanted.push((KeyPurpose::Data, None, random_key()));
        }
        for account in &stored.accounts_without_key {
            wanted.push((KeyPurpose::Data, Some(account), random_key()));
        }
        for (purpose, account, plain) in wanted {
            let record = ring.new_record(next_id, purpose, account, &plain, now)?;
            next_id += 1;
            records.push(record.clone());
            writes.new_keys.push(record);
        }
        for key in records.iter().filter(|k| k.retired_at.is_none()) {
            let plain = ring.unwrap(key)?;
            match key.purpose {
                KeyPurpose::ApiKeyHash => ring.api_key_mac = hmac_from(&plain[..]),
                KeyPurpose::IndexRoot => ring.index_root = plain,
                KeyPurpose::LegacyIndex => ring.legacy_index = Some(hmac_from(&plain[..])),
                KeyPurpose::Data => {}
            }
        }
        ring.reload(&records)?;
        Ok((ring, writes))
    }

    fn wrap(
        &self,
        id: u32,
        purpose: KeyPurpose,
        account: Option<&str>,
        plain: &[u8; 32],
    ) -> Result<Vec<u8>, KeyringError> {
        let (_, kek) = self
            .keks
            .get(&self.active_kek)
            .ok_or(KeyringError::Encrypt)?;
        seal_with(kek, &plain[..], &key_aad(id, purpose, account))
    }

    fn unwrap(&self, key: &DataKeyRecord) -> Result<Zeroizing<[u8; 32]>, KeyringError> {
        let (_, kek) = key
            .kek_id
            .and_then(|id| self.keks.get(&id))
            .ok_or(KeyringError::DataKeyUnwrap(key.id))?;
        unseal_key(
            kek,
            &key.wrapped,
            &key_aad(key.id, key.purpose, key.account_id.as_deref()),
        )
        .ok_or(KeyringError::DataKeyUnwrap(key.id))
    }

    fn new_record(
        &self,
        id: u32,
        purpose: KeyPurpose,
        account: Option<&str>,
        plain: &[u8; 32],
        now: Millis,
    ) -> Result<DataKeyRecord, KeyringError> {
        Ok(DataKeyRecord {
            id,
            account_id: account.map(str::to_owned),
            purpose,
            kek_id: Some(self.active_kek),
            wrapped: self.wrap(id, purpose, account, plain)?,
            uses: 0,
            created_at: now,
            retired_at: None,
        })
    }

    /// A fresh data key `id` for `account` (`None`: the instance), wrapped for storage. It
    /// takes over that account's writes once stored and reloaded.
    pub fn new_data_key(
        &self,
        id: u32,
        account: Option<&str>,
        now: Millis,
    ) -> Result<DataKeyRecord, KeyringError> {
        self.new_record(id, KeyPurpose::Data, account, &random_key(), now)
    }

    /// The key-encryption keys wrapped by `master` (to store before it replaces the current
    /// one).
    pub fn wrap_keks_for(
        &self,
        master: &MasterKey,
        now: Millis,
    ) -> Result<Vec<KekRecord>, KeyringError> {
        let wrapper = aes_from(&master.derive("kek-wrap"));
        let fp = master.fingerprint();
        let mut ids: Vec<_> = self.keks.keys().copied().collect();
        ids.sort_unstable();
        ids.into_iter()
            .map(|id| {
                Ok(KekRecord {
                    id,
                    master_fp: fp.clone(),
                    wrapped: seal_with(&wrapper, &self.keks[&id].0[..], &kek_aad(id))?,
                    created_at: now,
                })
            })
            .collect()
    }

    /// Takes the data keys as stored now: new ones join, retired ones leave, and counts of
    /// encryptions not yet flushed are kept.
    pub fn reload(&self, records: &[DataKeyRecord]) -> Result<(), KeyringError> {
        let old = self.set.load();
        let mut set = KeySet::default();
        for key in records {
            if key.purpose != KeyPurpose::Data || key.retired_at.is_some() {
                continue;
            }
            let data_key = match old.keys.get(&key.id) {
                Some(existing) => existing.clone(),
                None => Arc::new(DataKey {
                    cipher: aes_from(&*self.unwrap(key)?),
                    uses: AtomicU64::new(0),
                }),
            };
            set.keys.insert(key.id, data_key);
            let account: Box<str> = key.account_id.as_deref().unwrap_or("").into();
            let active = set.active.entry(account.clone()).or_insert(key.id);
            *active = (*active).max(key.id);
            if !account.is_empty() && !set.index.contains_key(&account) {
                set.index.insert(account.clone(), self.index_key(&account));
            }
            set.infos.insert(
                key.id,
                KeyInfo {
                    id: key.id,
                    account_id: key.account_id.clone(),
                    created_at: key.created_at,
                    stored_uses: key.uses,
                },
            );
        }
        self.set.store(Arc::new(set));
        Ok(())
    }

    fn index_key(&self, account: &str) -> HmacSha256 {
        if self.legacy_accounts.contains(account)
            && let Some(legacy) = &self.legacy_index
        {
            return legacy.clone();
        }
        let mut mac = hmac_from(&self.index_root[..]);
        mac.update(b"rampart/index/v2\0");
        mac.update(account.as_bytes());
        hmac_from(&mac.finalize().into_bytes())
    }

    /// The active (newest) data key of each account and of the instance ("").
    pub fn active_keys(&self) -> Vec<KeyInfo> {
        let set = self.set.load();
        let mut out: Vec<_> = set
            .active
            .values()
            .filter_map(|id| set.infos.get(id).cloned())
            .collect();
        out.sort_by_key(|k| k.id);
        out
    }

    /// The key `account`'s new ciphertexts are sealed under (the instance's until the
    /// account's own is loaded).
    pub fn active_key_of(&self, account: &str) -> Option<u32> {
        let set = self.set.load();
        set.active
            .get(account)
            .or_else(|| set.active.get(""))
            .copied()
    }

    /// Whether a loaded data key is no account's newest: values under it may want moving.
    pub fn has_older_keys(&self) -> bool {
        let set = self.set.load();
        set.keys.len() > set.active.len()
    }

    /// Whether data key `id` is loaded (not retired, not destroyed).
    pub fn holds(&self, id: u32) -> bool {
        self.set.load().keys.contains_key(&id)
    }

    /// Encryptions per key since the last call (their counts restart at zero).
    pub fn take_uses(&self) -> Vec<(u32, u64)> {
        let set = self.set.load();
        let mut out: Vec<_> = set
            .keys
            .iter()
            .map(|(id, key)| (*id, key.uses.swap(0, Ordering::Relaxed)))
            .filter(|(_, n)| *n > 0)
            .collect();
        out.sort_unstable();
        out
    }

    /// Gives back counts [`Keyring::take_uses`] took and could not store.
    pub fn restore_uses(&self, uses: &[(u32, u64)]) {
        let set = self.set.load();
        for (id, n) in uses {
            if let Some(key) = set.keys.get(id) {
                key.uses.fetch_add(*n, Ordering::Relaxed);
            }
        }
    }

    /// The data key a ciphertext names.
    pub fn key_id_of(sealed: &[u8]) -> Option<u32> {
        (sealed.len() >= HEADER_LEN)
            .then(|| u32::from_be_bytes([sealed[1], sealed[2], sealed[3], sealed[4]]))
    }

    /// Encrypts `plain` under `account`'s active data key. `context` (built by
    /// `data::sealing`) is bound as associated data, so a ciphertext moved to another row or
    /// field fails to decrypt.
    pub fn encrypt(
        &self,
        account: &str,
        plain: &[u8],
        context: &[u8],
    ) -> Result<Vec<u8>, KeyringError> {
        self.encrypt_as(CIPHERTEXT_VERSION, account, plain, context)
    }

    /// A ciphertext of the first format, as earlier releases wrote them (tests of reading
    /// old data).
    #[cfg(test)]
    pub fn encrypt_legacy(&self, plain: &[u8], context: &[u8]) -> Result<Vec<u8>, KeyringError> {
        self.encrypt_as(LEGACY_CIPHERTEXT_VERSION, "", plain, context)
    }

    fn encrypt_as(
        &self,
        version: u8,
        account: &str,
        plain: &[u8],
        context: &[u8],
    ) -> Result<Vec<u8>, KeyringError> {
        let set = self.set.load();
        let id = *set
            .active
            .get(account)
            .or_else(|| set.active.get(""))
            .ok_or(KeyringError::Encrypt)?;
        let key = set.keys.get(&id).ok_or(KeyringError::Encrypt)?;
        key.uses.fetch_add(1, Ordering::Relaxed);
        let mut nonce = [0u8; NONCE_LEN];
        rand::fill(&mut nonce);
        let sealed = key
            .cipher
            .encrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: plain,
                    aad: context,
                },
            )
            .map_err(|_| KeyringError::Encrypt)?;
        let mut out = Vec::with_capacity(HEADER_LEN + sealed.len());
        out.push(version);
        out.extend_from_slice(&id.to_be_bytes());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    /// Decrypts what `encrypt` produced with the same `context`.
    pub fn decrypt(&self, sealed: &[u8], context: &[u8]) -> Result<Vec<u8>, KeyringError> {
        if sealed.len() < HEADER_LEN
            || !(sealed[0] == CIPHERTEXT_VERSION || sealed[0] == LEGACY_CIPHERTEXT_VERSION)
        {
            return Err(KeyringError::Decrypt);
        }
        let key_id = u32::from_be_bytes([sealed[1], sealed[2], sealed[3], sealed[4]]);
        let nonce: [u8; NONCE_LEN] = sealed[5..HEADER_LEN]
            .try_into()
            .map_err(|_| KeyringError::Decrypt)?;
        let set = self.set.load();
        let key = set.keys.get(&key_id).ok_or(KeyringError::Decrypt)?;
        key.cipher
            .decrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: &sealed[HEADER_LEN..],
                    aad: context,
                },
            )
            .map_err(|_| KeyringError::Decrypt)
    }

    /// The keyed hash under which an API key is stored (fast: no slow hashing on the send path,
    /// which is safe because API keys carry 190+ bits of entropy).
    pub fn hash_api_key(&self, token: &str) -> [u8; 32] {
        let mut mac = self.api_key_mac.clone();
        mac.update(token.as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// A blind index under `account`'s index key: equal inputs give equal tags within one
    /// account, and the tag reveals nothing without the key. `domain` separates indexes (e.g.
    /// `b"phone"`), so tags cannot be matched across fields.
    pub fn blind_index(&self, account: &str, domain: &[u8], value: &[u8]) -> [u8; 16] {
        let set = self.set.load();
        let mut mac = match set.index.get(account) {
            Some(mac) => mac.clone(),
            None => self.index_key(account),
        };
        drop(set);
        mac.update(domain);
        mac.update(&[0]);
        mac.update(value);
        let full: [u8; 32] = mac.finalize().into_bytes().into();
        let mut out = [0u8; 16];
        out.copy_from_slice(&full[..16]);
        out
    }
}

/// Unwraps the key-encryption keys `master` wraps; makes the first one for a data directory
/// that has none.
fn open_keks(
    master: &MasterKey,
    stored: &[KekRecord],
    now: Millis,
    writes: &mut KeyWrites,
) -> Result<HashMap<u32, Kek>, KeyringError> {
    let wrapper = aes_from(&master.derive("kek-wrap"));
    let fp = master.fingerprint();
    let mut keks = HashMap::new();
    if stored.is_empty() {
        let plain = random_key();
        writes.keks.push(KekRecord {
            id: 1,
            master_fp: fp,
            wrapped: seal_with(&wrapper, &plain[..], &kek_aad(1))?,
            created_at: now,
        });
        let cipher = aes_from(&plain);
        keks.insert(1, (plain, cipher));
        return Ok(keks);
    }
    for kek in stored.iter().filter(|k| k.master_fp == fp) {
        let plain = unseal_key(&wrapper, &kek.wrapped, &kek_aad(kek.id))
            .ok_or(KeyringError::DataKeyUnwrap(kek.id))?;
        let cipher = aes_from(&plain);
        keks.insert(kek.id, (plain, cipher));
    }
    if keks.is_empty() {
        return Err(KeyringError::MasterKeyMismatch);
    }
    Ok(keks)
}

#[cfg(test)]
#[path = "keyring_tests.rs"]
mod tests;
