//! The audit trail's signing key: an Ed25519 key in an owner-only file of the data directory,
//! made on first use. The writer signs checkpoints of the hash chain with it; `rampart verify`
//! checks them with its public half, which is also written beside it (`audit-signing.pub`, hex)
//! so an operator can keep a copy elsewhere and pin it (`rampart verify --public-key`).

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use zeroize::Zeroizing;

use crate::clock::{Millis, SharedClock};
use crate::store::audit::CheckpointSigner;

/// What can go wrong with the audit signing key.
#[derive(Debug, thiserror::Error)]
pub enum AuditKeyError {
    /// The key file could not be read or written.
    #[error("audit signing key {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    /// The key file is readable by others than its owner, or is another user's.
    #[error("audit signing key: {0}")]
    Exposed(String),
    /// The file does not hold a base64-encoded 32-byte key.
    #[error("audit signing key {0} does not hold a 32-byte base64 key")]
    Malformed(String),
    /// A public key given to pin is not 64 hex digits of a valid Ed25519 key.
    #[error("the public key must be 64 hex digits of an Ed25519 key")]
    BadPublicKey,
}

/// The file names in the data directory.
pub fn key_path(data_dir: &Path) -> PathBuf {
    data_dir.join("audit-signing.key")
}

fn public_path(data_dir: &Path) -> PathBuf {
    data_dir.join("audit-signing.pub")
}

/// The signing key, with the clock checkpoints are stamped by.
pub struct AuditSigningKey {
    key: SigningKey,
    clock: SharedClock,
}

impl std::fmt::Debug for AuditSigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditSigningKey")
            .field("public", &public_hex(&self.key.verifying_key()))
            .finish_non_exhaustive()
    }
}

impl AuditSigningKey {
    /// Reads the key from `data_dir`, creating it (0600) and its public half on first use.
    pub fn load_or_create(data_dir: &Path, clock: SharedClock) -> Result<Self, AuditKeyError> {
        let path = key_path(data_dir);
        let io = |source| AuditKeyError::Io {
            path: path.display().to_string(),
            source,
        };
        if !path.exists() {
            let mut seed = Zeroizing::new([0u8; 32]);
            rand::fill(&mut seed[..]);
            let mut file = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
                .map_err(io)?;
            let encoded = Zeroizing::new(B64.encode(&seed[..]));
            file.write_all(encoded.as_bytes()).map_err(io)?;
            file.write_all(b"\n").map_err(io)?;
            file.sync_all().map_err(io)?;
            let key = SigningKey::from_bytes(&seed);
            let public = format!("{}\n", public_hex(&key.verifying_key()));
            fs::write(public_path(data_dir), public).map_err(io)?;
            return Ok(Self { key, clock });
        }
        Ok(Self {
            key: read_key(&path)?,
            clock,
        })
    }

    pub fn verifying_key(&self) -> VerifyingKey {
        self.key.verifying_key()
    }
}

impl CheckpointSigner for AuditSigningKey {
    fn sign(&self, message: &[u8]) -> Vec<u8> {
        self.key.sign(message).to_bytes().to_vec()
    }

    fn now_ms(&self) -> Millis {
        self.clock.now_ms()
    }
}

fn read_key(path: &Path) -> Result<SigningKey, AuditKeyError> {
    let io = |source| AuditKeyError::Io {
        path: path.display().to_string(),
        source,
    };
    if let Err(exposed) = super::permissions::require_owner_only(&[path]) {
        return Err(AuditKeyError::Exposed(
            exposed
                .0
                .iter()
                .map(|e| e.problem())
                .collect::<Vec<_>>()
                .join("; "),
        ));
    }
    let text = Zeroizing::new(fs::read_to_string(path).map_err(io)?);
    let bytes = Zeroizing::new(
        B64.decode(text.trim())
            .map_err(|_| AuditKeyError::Malformed(path.display().to_string()))?,
    );
    let seed: Zeroizing<[u8; 32]> = Zeroizing::new(
        bytes
            .as_slice()
            .try_into()
            .map_err(|_| AuditKeyError::Malformed(path.display().to_string()))?,
    );
    Ok(SigningKey::from_bytes(&seed))
}

/// The public key checkpoints are checked with: the one pinned by the operator, or else the
/// public half of the key in `data_dir` (`None` when there is no key yet: nothing was signed).
pub fn verifying_key(
    data_dir: &Path,
    pinned_hex: Option<&str>,
) -> Result<Option<VerifyingKey>, AuditKeyError> {
    if let Some(hex) = pinned_hex {
        return parse_public_hex(hex).map(Some);
    }
    let path = key_path(data_dir);
    if !path.exists() {
        return Ok(None);
    }
    Ok(Some(read_key(&path)?.verifying_key()))
}

/// Whether `signature` is a valid signature of `message` by `key`.
pub fn signature_is_valid(key: &VerifyingKey, message: &[u8], signature: &[u8]) -> bool {
    Signature::from_slice(signature).is_ok_and(|s| key.verify_strict(message, &s).is_ok())
}

fn public_hex(key: &VerifyingKey) -> String {
    key.as_bytes().iter().map(|b| format!("{b:02x}")).collect()
}

fn parse_public_hex(hex: &str) -> Result<VerifyingKey, AuditKeyError> {
    let hex = hex.trim();
    if hex.len() != 64 || !hex.is_ascii() {
        return Err(AuditKeyError::BadPublicKey);
    }
    let mut bytes = [0u8; 32];
    for (i, byte) in bytes.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16)
            .map_err(|_| AuditKeyError::BadPublicKey)?;
    }
    VerifyingKey::from_bytes(&bytes).map_err(|_| AuditKeyError::BadPublicKey)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;
    use std::sync::Arc;

    use super::*;
    use crate::clock::SystemClock;

    #[test]
    fn the_key_is_made_owner_only_and_its_signatures_check_with_the_published_half() {
        let dir = tempfile::tempdir().unwrap();
        let key = AuditSigningKey::load_or_create(dir.path(), Arc::new(SystemClock)).unwrap();
        let mode = fs::metadata(key_path(dir.path()))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0);
        let signature = key.sign(b"head");
        let published = fs::read_to_string(public_path(dir.path())).unwrap();
        let pinned = verifying_key(dir.path(), Some(&published))
            .unwrap()
            .unwrap();
        assert!(signature_is_valid(&pinned, b"head", &signature));
        assert!(!signature_is_valid(&pinned, b"other", &signature));
        let reloaded = AuditSigningKey::load_or_create(dir.path(), Arc::new(SystemClock)).unwrap();
        assert_eq!(reloaded.verifying_key(), key.verifying_key());
    }
}
