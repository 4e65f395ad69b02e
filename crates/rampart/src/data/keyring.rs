//! The keyring: a master key on disk (owner-only file) from which every other key descends.
//!
//! Envelope encryption: data keys (AES-256-GCM) encrypt fields; they are stored in the database
//! wrapped by a key-encryption key derived from the master key. Each ciphertext names its data
//! key, so a new data key can take over writes while old rows stay readable (rotation without
//! downtime). All derivation happens once at start-up; the send path only runs AES and HMAC.

use std::collections::HashMap;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

type HmacSha256 = Hmac<Sha256>;

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
    /// The master key file is readable by others than its owner.
    #[error("master key file {0} must be readable by its owner only (chmod 600)")]
    MasterKeyExposed(String),
    /// The master key file does not hold 32 base64-encoded bytes.
    #[error("master key file {0} does not hold a 32-byte base64 key")]
    MasterKeyMalformed(String),
    /// A wrapped data key did not decrypt under the master key (wrong master key?).
    #[error("data key {0} cannot be unwrapped: wrong master key or tampered database")]
    DataKeyUnwrap(u32),
    /// A ciphertext is malformed, names an unknown data key, or failed authentication.
    #[error("ciphertext failed to decrypt: tampered, truncated, or written under another key")]
    Decrypt,
    /// Encryption failed (never expected with valid keys).
    #[error("encryption failed")]
    Encrypt,
}

/// A data key as stored: its id and its bytes wrapped by the key-encryption key.
#[derive(Debug, Clone)]
pub struct WrappedDataKey {
    pub id: u32,
    pub wrapped: Vec<u8>,
}

/// The 32-byte master key, loaded or created on first start.
pub struct MasterKey(Zeroizing<[u8; 32]>);

impl MasterKey {
    /// Reads the master key, creating it (mode 0600) if the file does not exist yet.
    pub fn load_or_create(path: &Path) -> Result<Self, KeyringError> {
        let io = |source| KeyringError::MasterKeyIo {
            path: path.display().to_string(),
            source,
        };
        if !path.exists() {
            let mut key = Zeroizing::new([0u8; 32]);
            rand::fill(&mut key[..]);
            let mut file = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .map_err(io)?;
            let encoded = Zeroizing::new(B64.encode(&key[..]));
            file.write_all(encoded.as_bytes()).map_err(io)?;
            file.write_all(b"\n").map_err(io)?;
            file.sync_all().map_err(io)?;
            return Ok(Self(key));
        }
        let mode = fs::metadata(path).map_err(io)?.permissions().mode();
        if mode & 0o077 != 0 {
            return Err(KeyringError::MasterKeyExposed(path.display().to_string()));
        }
        let text = Zeroizing::new(fs::read_to_string(path).map_err(io)?);
        let bytes = Zeroizing::new(
            B64.decode(text.trim())
                .map_err(|_| KeyringError::MasterKeyMalformed(path.display().to_string()))?,
        );
        let key: [u8; 32] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| KeyringError::MasterKeyMalformed(path.display().to_string()))?;
        Ok(Self(Zeroizing::new(key)))
    }

    #[cfg(test)]
    pub fn from_bytes(key: [u8; 32]) -> Self {
        Self(Zeroizing::new(key))
    }

    /// Reads an existing master key (never creates one): restore needs the key that made the
    /// backup, and a new one would only fail later.
    pub fn load(path: &Path) -> Result<Self, KeyringError> {
        if !path.exists() {
            return Err(KeyringError::MasterKeyIo {
                path: path.display().to_string(),
                source: std::io::Error::from(std::io::ErrorKind::NotFound),
            });
        }
        Self::load_or_create(path)
    }

    pub(super) fn derive(&self, label: &str) -> Zeroizing<[u8; 32]> {
        let hk = Hkdf::<Sha256>::new(Some(b"rampart keyring v1"), &self.0[..]);
        let mut out = Zeroizing::new([0u8; 32]);
        // 32 bytes is always a valid HKDF-SHA256 output length.
        let _ = hk.expand(label.as_bytes(), &mut out[..]);
        out
    }
}

/// Every key the running server needs, derived once.
pub struct Keyring {
    api_key_mac: HmacSha256,
    blind_index_mac: HmacSha256,
    kek: Aes256Gcm,
    active: u32,
    data_keys: HashMap<u32, Aes256Gcm>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring")
            .field("active_data_key", &self.active)
            .finish_non_exhaustive()
    }
}

fn hmac_from(key: &[u8; 32]) -> HmacSha256 {
    // HMAC accepts keys of any length.
    <HmacSha256 as KeyInit>::new_from_slice(key).unwrap_or_else(|_| unreachable!())
}

fn aes_from(key: &[u8; 32]) -> Aes256Gcm {
    Aes256Gcm::new(key.into())
}

impl Keyring {
    /// Builds the keyring from the master key and the stored data keys. When `stored` is empty,
    /// a first data key is generated; the caller must persist the returned wrapped key.
    pub fn open(
        master: &MasterKey,
        stored: &[WrappedDataKey],
    ) -> Result<(Self, Option<WrappedDataKey>), KeyringError> {
        let kek = aes_from(&master.derive("key-encryption"));
        let mut ring = Self {
            api_key_mac: hmac_from(&master.derive("api-key-hash")),
            blind_index_mac: hmac_from(&master.derive("blind-index")),
            kek,
            active: 0,
            data_keys: HashMap::new(),
        };
        for key in stored {
            let plain = Zeroizing::new(ring.unwrap_key(key)?);
            ring.data_keys.insert(key.id, aes_from(&plain));
            ring.active = ring.active.max(key.id);
        }
        if ring.data_keys.is_empty() {
            let new = ring.add_data_key(1)?;
            return Ok((ring, Some(new)));
        }
        Ok((ring, None))
    }

    /// Generates data key `id`, makes it the active one, and returns it wrapped for storage.
    pub fn add_data_key(&mut self, id: u32) -> Result<WrappedDataKey, KeyringError> {
        let mut key = Zeroizing::new([0u8; 32]);
        rand::fill(&mut key[..]);
        let mut nonce = [0u8; NONCE_LEN];
        rand::fill(&mut nonce);
        let aad = format!("data-key:{id}");
        let sealed = self
            .kek
            .encrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: &key[..],
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| KeyringError::Encrypt)?;
        let mut wrapped = nonce.to_vec();
        wrapped.extend_from_slice(&sealed);
        self.data_keys.insert(id, aes_from(&key));
        self.active = id;
        Ok(WrappedDataKey { id, wrapped })
    }

    fn unwrap_key(&self, key: &WrappedDataKey) -> Result<[u8; 32], KeyringError> {
        let err = || KeyringError::DataKeyUnwrap(key.id);
        let (nonce, sealed) = key.wrapped.split_at_checked(NONCE_LEN).ok_or_else(err)?;
        let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| err())?;
        let aad = format!("data-key:{}", key.id);
        let plain = Zeroizing::new(
            self.kek
                .decrypt(
                    &Nonce::from(nonce),
                    Payload {
                        msg: sealed,
                        aad: aad.as_bytes(),
                    },
                )
                .map_err(|_| err())?,
        );
        plain.as_slice().try_into().map_err(|_| err())
    }

    /// Encrypts `plain` under the active data key. `context` (built by `data::sealing`) is
    /// bound as associated data, so a ciphertext moved to another row or field fails to
    /// decrypt.
    pub fn encrypt(&self, plain: &[u8], context: &[u8]) -> Result<Vec<u8>, KeyringError> {
        self.encrypt_as(CIPHERTEXT_VERSION, plain, context)
    }

    /// A ciphertext of the first format, as earlier releases wrote them (tests of reading
    /// old data).
    #[cfg(test)]
    pub fn encrypt_legacy(&self, plain: &[u8], context: &[u8]) -> Result<Vec<u8>, KeyringError> {
        self.encrypt_as(LEGACY_CIPHERTEXT_VERSION, plain, context)
    }

    fn encrypt_as(
        &self,
        version: u8,
        plain: &[u8],
        context: &[u8],
    ) -> Result<Vec<u8>, KeyringError> {
        let cipher = self
            .data_keys
            .get(&self.active)
            .ok_or(KeyringError::Encrypt)?;
        let mut nonce = [0u8; NONCE_LEN];
        rand::fill(&mut nonce);
        let sealed = cipher
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
        out.extend_from_slice(&self.active.to_be_bytes());
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
        let cipher = self.data_keys.get(&key_id).ok_or(KeyringError::Decrypt)?;
        cipher
            .decrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: &sealed[HEADER_LEN..],
                    aad: context,
                },
            )
            .map_err(|_| KeyringError::Decrypt)
    }

    /// Decrypts a UTF-8 field.
    pub fn decrypt_string(&self, sealed: &[u8], context: &[u8]) -> Result<String, KeyringError> {
        String::from_utf8(self.decrypt(sealed, context)?).map_err(|_| KeyringError::Decrypt)
    }

    /// The keyed hash under which an API key is stored (fast: no slow hashing on the send path,
    /// which is safe because API keys carry 190+ bits of entropy).
    pub fn hash_api_key(&self, token: &str) -> [u8; 32] {
        let mut mac = self.api_key_mac.clone();
        mac.update(token.as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// A blind index: equal inputs give equal tags, and the tag reveals nothing without the key.
    /// `domain` separates indexes (e.g. `b"phone"`), so tags cannot be matched across fields.
    pub fn blind_index(&self, domain: &[u8], value: &[u8]) -> [u8; 16] {
        let mut mac = self.blind_index_mac.clone();
        mac.update(domain);
        mac.update(&[0]);
        mac.update(value);
        let full: [u8; 32] = mac.finalize().into_bytes().into();
        let mut out = [0u8; 16];
        out.copy_from_slice(&full[..16]);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring() -> Keyring {
        let (ring, created) = Keyring::open(&MasterKey::from_bytes([7; 32]), &[]).unwrap();
        assert!(created.is_some());
        ring
    }

    #[test]
    fn ciphertext_round_trips_and_is_bound_to_its_context() {
        let ring = ring();
        let sealed = ring.encrypt(b"+447700900123", b"to:msg_1").unwrap();
        assert_eq!(
            ring.decrypt(&sealed, b"to:msg_1").unwrap(),
            b"+447700900123"
        );
        assert!(ring.decrypt(&sealed, b"to:msg_2").is_err());
    }

    #[test]
    fn tampered_ciphertext_is_rejected() {
        let ring = ring();
        let mut sealed = ring.encrypt(b"hello", b"c").unwrap();
        let last = sealed.len() - 1;
        sealed[last] ^= 1;
        assert!(matches!(
            ring.decrypt(&sealed, b"c"),
            Err(KeyringError::Decrypt)
        ));
        assert!(ring.decrypt(&[1, 0], b"c").is_err());
    }

    #[test]
    fn rotated_ring_still_reads_old_ciphertexts() {
        let master = MasterKey::from_bytes([9; 32]);
        let (mut ring, first) = Keyring::open(&master, &[]).unwrap();
        let old = ring.encrypt(b"old", b"c").unwrap();
        let second = ring.add_data_key(2).unwrap();
        let new = ring.encrypt(b"new", b"c").unwrap();
        let (reopened, none) = Keyring::open(&master, &[first.unwrap(), second]).unwrap();
        assert!(none.is_none());
        assert_eq!(reopened.decrypt(&old, b"c").unwrap(), b"old");
        assert_eq!(reopened.decrypt(&new, b"c").unwrap(), b"new");
    }

    #[test]
    fn another_master_key_cannot_unwrap_data_keys() {
        let (_, first) = Keyring::open(&MasterKey::from_bytes([1; 32]), &[]).unwrap();
        let other = Keyring::open(&MasterKey::from_bytes([2; 32]), &[first.unwrap()]);
        assert!(matches!(other, Err(KeyringError::DataKeyUnwrap(1))));
    }

    #[test]
    fn blind_index_is_deterministic_and_domain_separated() {
        let ring = ring();
        assert_eq!(
            ring.blind_index(b"phone", b"+1"),
            ring.blind_index(b"phone", b"+1")
        );
        assert_ne!(
            ring.blind_index(b"phone", b"+1"),
            ring.blind_index(b"email", b"+1")
        );
    }

    #[test]
    fn master_key_file_is_created_owner_only_and_reloads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        let first = MasterKey::load_or_create(&path).unwrap();
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let again = MasterKey::load_or_create(&path).unwrap();
        assert_eq!(*first.0, *again.0);
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            MasterKey::load_or_create(&path),
            Err(KeyringError::MasterKeyExposed(_))
        ));
    }
}
