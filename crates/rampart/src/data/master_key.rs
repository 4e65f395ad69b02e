//! The master key: the root of the key hierarchy, read from an owner-only file (the default,
//! created on first start), from the `RAMPART_MASTER_KEY` environment variable, or from the
//! output of an operator's command (a KMS or vault CLI). It only wraps the key-encryption
//! keys, so it can change (`rampart keys rotate-master`) without touching data or API keys.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use hkdf::Hkdf;
use hmac::Mac;
use sha2::Sha256;
use zeroize::Zeroizing;

use super::keyring::{KeyringError, hmac_from};

/// The environment variable that may hold the master key (base64 of 32 bytes).
pub const MASTER_KEY_ENV: &str = "RAMPART_MASTER_KEY";

/// Where the master key comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MasterKeySource {
    /// An owner-only file holding the base64 key; created on first start.
    File(PathBuf),
    /// The `RAMPART_MASTER_KEY` environment variable.
    Env,
    /// A shell command whose standard output is the base64 key.
    Command(String),
}

impl MasterKeySource {
    /// The command when one is configured, else the environment variable when it is set,
    /// else the file.
    pub fn choose(command: Option<&str>, file: PathBuf) -> Self {
        match command {
            Some(command) if !command.trim().is_empty() => Self::Command(command.to_owned()),
            _ if std::env::var_os(MASTER_KEY_ENV).is_some() => Self::Env,
            _ => Self::File(file),
        }
    }

    /// How to name this source in messages (never the key).
    pub fn describe(&self) -> String {
        match self {
            Self::File(path) => format!("master key file {}", path.display()),
            Self::Env => format!("environment variable {MASTER_KEY_ENV}"),
            Self::Command(_) => "keys.master_key_command".to_owned(),
        }
    }
}

/// The 32-byte master key.
pub struct MasterKey(Zeroizing<[u8; 32]>);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

fn decode(text: &str, source: &str) -> Result<MasterKey, KeyringError> {
    let bytes = Zeroizing::new(
        B64.decode(text.trim())
            .map_err(|_| KeyringError::MasterKeyMalformed(source.to_owned()))?,
    );
    let key: [u8; 32] = bytes
        .as_slice()
        .try_into()
        .map_err(|_| KeyringError::MasterKeyMalformed(source.to_owned()))?;
    Ok(MasterKey(Zeroizing::new(key)))
}

impl MasterKey {
    /// Reads the key from `source`; a missing file is created (mode 0600) when `create`.
    pub fn from_source(source: &MasterKeySource, create: bool) -> Result<Self, KeyringError> {
        match source {
            MasterKeySource::File(path) if create => Self::load_or_create(path),
            MasterKeySource::File(path) => Self::load(path),
            MasterKeySource::Env => {
                let text = Zeroizing::new(
                    std::env::var(MASTER_KEY_ENV)
                        .map_err(|_| KeyringError::MasterKeyMalformed(source.describe()))?,
                );
                decode(&text, &source.describe())
            }
            MasterKeySource::Command(command) => {
                let output = Command::new("/bin/sh")
                    .arg("-c")
                    .arg(command)
                    .stdin(Stdio::null())
                    .stderr(Stdio::inherit())
                    .output()
                    .map_err(|e| KeyringError::MasterKeyCommand(e.to_string()))?;
                let text = Zeroizing::new(output.stdout);
                if !output.status.success() {
                    return Err(KeyringError::MasterKeyCommand(format!(
                        "exited with {}",
                        output.status
                    )));
                }
                let text = std::str::from_utf8(&text)
                    .map_err(|_| KeyringError::MasterKeyMalformed(source.describe()))?;
                decode(text, &source.describe())
            }
        }
    }

    /// Reads the master key file, creating it (mode 0600) if it does not exist yet.
    pub fn load_or_create(path: &Path) -> Result<Self, KeyringError> {
        if !path.exists() {
            let key = Self::generate();
            key.write_new_file(path)?;
            return Ok(key);
        }
        let io = |source| KeyringError::MasterKeyIo {
            path: path.display().to_string(),
            source,
        };
        // The one rule for secret files (data::permissions): owner-only, and ours.
        super::permissions::require_owner_only(&[path])
            .map_err(|e| KeyringError::MasterKeyExposed(e.to_string()))?;
        let text = Zeroizing::new(fs::read_to_string(path).map_err(io)?);
        decode(&text, &path.display().to_string())
    }

    /// Reads an existing master key file (never creates one): restore needs the key that made
    /// the backup, and a new one would only fail later.
    pub fn load(path: &Path) -> Result<Self, KeyringError> {
        if !path.exists() {
            return Err(KeyringError::MasterKeyIo {
                path: path.display().to_string(),
                source: std::io::Error::from(std::io::ErrorKind::NotFound),
            });
        }
        Self::load_or_create(path)
    }

    /// A fresh random key.
    pub fn generate() -> Self {
        let mut key = Zeroizing::new([0u8; 32]);
        rand::fill(&mut key[..]);
        Self(key)
    }

    #[cfg(test)]
    pub fn from_bytes(key: [u8; 32]) -> Self {
        Self(Zeroizing::new(key))
    }

    /// Writes the key to a file that must not exist yet (mode 0600, synced).
    pub fn write_new_file(&self, path: &Path) -> Result<(), KeyringError> {
        let io = |source| KeyringError::MasterKeyIo {
            path: path.display().to_string(),
            source,
        };
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(io)?;
        let encoded = Zeroizing::new(B64.encode(&self.0[..]));
        file.write_all(encoded.as_bytes()).map_err(io)?;
        file.write_all(b"\n").map_err(io)?;
        file.sync_all().map_err(io)
    }

    /// A public name of this key (a keyed hash): the wraps it made carry it, so the keyring
    /// knows which wrap this key opens and can tell a wrong key from a tampered database.
    pub fn fingerprint(&self) -> Vec<u8> {
        let mut mac = hmac_from(&self.derive("fingerprint")[..]);
        mac.update(b"rampart master key");
        mac.finalize().into_bytes()[..16].to_vec()
    }

    /// A key derived from the master key for one purpose (key-encryption keys of earlier
    /// releases, backups).
    pub(super) fn derive(&self, label: &str) -> Zeroizing<[u8; 32]> {
        let hk = Hkdf::<Sha256>::new(Some(b"rampart keyring v1"), &self.0[..]);
        let mut out = Zeroizing::new([0u8; 32]);
        // 32 bytes is always a valid HKDF-SHA256 output length.
        let _ = hk.expand(label.as_bytes(), &mut out[..]);
        out
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

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

    #[test]
    fn a_command_prints_the_key_and_a_failing_one_is_an_error() {
        let key = B64.encode([5u8; 32]);
        let ok = MasterKey::from_source(&MasterKeySource::Command(format!("echo {key}")), false)
            .unwrap();
        assert_eq!(*ok.0, [5u8; 32]);
        let failing = MasterKey::from_source(&MasterKeySource::Command("exit 3".into()), false);
        assert!(matches!(failing, Err(KeyringError::MasterKeyCommand(_))));
        let short =
            MasterKey::from_source(&MasterKeySource::Command("echo c2hvcnQ=".into()), false);
        assert!(matches!(short, Err(KeyringError::MasterKeyMalformed(_))));
    }

    #[test]
    fn fingerprints_tell_keys_apart_and_reveal_neither() {
        let a = MasterKey::from_bytes([1; 32]);
        let b = MasterKey::from_bytes([2; 32]);
        assert_eq!(
            a.fingerprint(),
            MasterKey::from_bytes([1; 32]).fingerprint()
        );
        assert_ne!(a.fingerprint(), b.fingerprint());
        assert_eq!(a.fingerprint().len(), 16);
    }
}
