//! Encrypted backup files: a database snapshot sealed in AES-256-GCM chunks under a key that
//! only the master key derives, with an authenticated manifest at the end. A backup is useless
//! without the master key, and `open` writes nothing it has not authenticated.
//!
//! ```text
//! MAGIC (8) | backup id (16 random bytes)
//! chunk*:   length (u32 BE) | ciphertext of up to CHUNK_SIZE bytes, with its 16-byte tag
//! manifest (JSON) | manifest length (u32 BE) | HMAC-SHA256 of header and manifest (32) | END (8)
//! ```
//!
//! Each backup gets its own chunk key and manifest key, derived (HKDF-SHA256) from the master
//! key's backup key with the backup id as salt, so chunk nonces may count: the nonce is the
//! chunk's index (8 bytes) and a final-chunk flag, and the header, index and flag are the
//! associated data. A chunk that is moved, dropped or cut off, or a file that ends early,
//! fails to open. The manifest holds the counts and the SHA-256 of the ciphertext and of the
//! database; it is readable without the key (sizes and a message count, no content).

use std::io::{Read, Seek, SeekFrom, Write};

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::keyring::MasterKey;

type HmacSha256 = Hmac<Sha256>;

const MAGIC: &[u8; 8] = b"RMPBACK\x01";
const END: &[u8; 8] = b"RMPBEND\x01";
/// The manifest's `format`: what this release writes and reads.
pub const FORMAT: u32 = 1;
/// Plaintext bytes per chunk (the last one may be shorter, or empty for an empty input).
pub const CHUNK_SIZE: usize = 64 * 1024;
const ID_LEN: usize = 16;
const HEADER_LEN: u64 = (MAGIC.len() + ID_LEN) as u64;
const TAG_LEN: usize = 16;
const TRAILER_LEN: u64 = 4 + 32 + END.len() as u64;
const MAX_MANIFEST: u64 = 64 * 1024;

/// Why a backup could not be written or was refused.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// The file does not start like a Rampart backup.
    #[error("not a Rampart backup (no backup header)")]
    NotABackup,
    /// The file ends before its manifest: cut short, or its end was overwritten.
    #[error("the backup is truncated or its end is damaged (no manifest at the end of the file)")]
    Truncated,
    /// The manifest names another key: the backup was made by another instance.
    #[error(
        "the backup was made under another master key (backup key id {backup}, this master key's id {ours}); restore it with the master key of the instance that made it"
    )]
    ForeignKey { backup: String, ours: String },
    /// The manifest fails authentication under this master key.
    #[error("the backup's manifest fails authentication: the file was altered")]
    ManifestTampered,
    /// A later release's backup format.
    #[error("backup format {0} is not known to this release (it reads format {FORMAT})")]
    UnknownFormat(u32),
    /// A chunk fails authentication: changed bytes, chunks swapped, dropped or added.
    #[error(
        "chunk {0} of the backup fails authentication: the file is corrupt or was tampered with"
    )]
    ChunkRejected(u64),
    /// The chunks opened, but do not add up to what the manifest says.
    #[error("the backup does not match its manifest: {0}")]
    Mismatch(&'static str),
    /// Encryption failed (never expected with valid keys).
    #[error("encryption failed")]
    Encrypt,
    /// Reading the input or writing the output failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// The backup key of one master key: each backup's own keys descend from it.
pub struct BackupKey {
    root: Zeroizing<[u8; 32]>,
    key_id: String,
}

impl std::fmt::Debug for BackupKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackupKey")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl BackupKey {
    pub fn from_master(master: &MasterKey) -> Self {
        let root = master.derive("backup");
        let mut mac = hmac_from(&root[..]);
        mac.update(b"key-id");
        let tag: [u8; 32] = mac.finalize().into_bytes().into();
        Self {
            root,
            key_id: hex(&tag[..8]),
        }
    }

    /// A public name of the master key (a keyed hash, 16 hex digits): backups carry it, so
    /// one made by another instance is recognised as such.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    fn file_keys(&self, backup_id: &[u8]) -> (Aes256Gcm, HmacSha256) {
        let hk = Hkdf::<Sha256>::new(Some(backup_id), &self.root[..]);
        let mut chunk_key = Zeroizing::new([0u8; 32]);
        let mut manifest_key = Zeroizing::new([0u8; 32]);
        // 32 bytes is always a valid HKDF-SHA256 output length.
        let _ = hk.expand(b"rampart backup v1 chunks", &mut chunk_key[..]);
        let _ = hk.expand(b"rampart backup v1 manifest", &mut manifest_key[..]);
        (
            Aes256Gcm::new((&*chunk_key).into()),
            hmac_from(&manifest_key[..]),
        )
    }
}

fn hmac_from(key: &[u8]) -> HmacSha256 {
    // HMAC accepts keys of any length.
    <HmacSha256 as KeyInit>::new_from_slice(key).unwrap_or_else(|_| unreachable!())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What the caller knows about the database being backed up.
#[derive(Debug, Clone)]
pub struct BackupMeta {
    pub created_at: String,
    pub rampart_version: String,
    pub messages: u64,
}

/// What a backup holds, stored at its end and authenticated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    pub created_at: String,
    pub rampart_version: String,
    /// The master key's id (see [`BackupKey::key_id`]).
    pub key_id: String,
    pub backup_id: String,
    pub chunk_size: u64,
    pub chunks: u64,
    /// The database: its size, its SHA-256 and how many messages it holds.
    pub database_bytes: u64,
    pub database_sha256: String,
    pub messages: u64,
    /// The chunks as stored (lengths and ciphertexts): their size and SHA-256.
    pub ciphertext_bytes: u64,
    pub ciphertext_sha256: String,
}

fn chunk_nonce(index: u64, last: bool) -> [u8; 12] {
    let mut nonce = [0u8; 12];
    nonce[..8].copy_from_slice(&index.to_be_bytes());
    nonce[11] = u8::from(last);
    nonce
}

fn chunk_aad(header: &[u8], index: u64, last: bool) -> Vec<u8> {
    let mut aad = Vec::with_capacity(header.len() + 9);
    aad.extend_from_slice(header);
    aad.extend_from_slice(&index.to_be_bytes());
    aad.push(u8::from(last));
    aad
}

/// Reads up to `limit` bytes, fewer only at the end of the input.
fn read_up_to(input: &mut impl Read, limit: usize) -> std::io::Result<Zeroizing<Vec<u8>>> {
    let mut buffer = Zeroizing::new(Vec::with_capacity(limit));
    input.take(limit as u64).read_to_end(&mut buffer)?;
    Ok(buffer)
}

/// Encrypts `plain` (the database snapshot) into `out`; `progress` hears the plaintext bytes
/// done so far. Returns the manifest written at the end.
pub fn seal(
    key: &BackupKey,
    meta: BackupMeta,
    mut plain: impl Read,
    mut out: impl Write,
    progress: &mut dyn FnMut(u64),
) -> Result<Manifest, BackupError> {
    let mut backup_id = [0u8; ID_LEN];
    rand::fill(&mut backup_id);
    let mut header = MAGIC.to_vec();
    header.extend_from_slice(&backup_id);
    out.write_all(&header)?;
    let (cipher, mac) = key.file_keys(&backup_id);
    let (mut database_hash, mut ciphertext_hash) = (Sha256::new(), Sha256::new());
    let (mut database_bytes, mut ciphertext_bytes, mut chunks) = (0u64, 0u64, 0u64);
    let mut current = read_up_to(&mut plain, CHUNK_SIZE)?;
    loop {
        let next = if current.len() < CHUNK_SIZE {
            Zeroizing::new(Vec::new())
        } else {
            read_up_to(&mut plain, CHUNK_SIZE)?
        };
        let last = next.is_empty();
        let sealed = cipher
            .encrypt(
                &Nonce::from(chunk_nonce(chunks, last)),
                Payload {
                    msg: &current,
                    aad: &chunk_aad(&header, chunks, last),
                },
            )
            .map_err(|_| BackupError::Encrypt)?;
        let length = u32::try_from(sealed.len())
            .map_err(|_| BackupError::Encrypt)?
            .to_be_bytes();
        out.write_all(&length)?;
        out.write_all(&sealed)?;
        database_hash.update(&current[..]);
        ciphertext_hash.update(length);
        ciphertext_hash.update(&sealed);
        database_bytes += current.len() as u64;
        ciphertext_bytes += (length.len() + sealed.len()) as u64;
        chunks += 1;
        progress(database_bytes);
        if last {
            break;
        }
        current = next;
    }
    let manifest = Manifest {
        format: FORMAT,
        created_at: meta.created_at,
        rampart_version: meta.rampart_version,
        key_id: key.key_id.clone(),
        backup_id: hex(&backup_id),
        chunk_size: CHUNK_SIZE as u64,
        chunks,
        database_bytes,
        database_sha256: hex(&database_hash.finalize()),
        messages: meta.messages,
        ciphertext_bytes,
        ciphertext_sha256: hex(&ciphertext_hash.finalize()),
    };
    let json = serde_json::to_vec(&manifest).map_err(|_| BackupError::Encrypt)?;
    let mut mac = mac;
    mac.update(&header);
    mac.update(&json);
    out.write_all(&json)?;
    out.write_all(&u32::try_from(json.len()).unwrap_or(u32::MAX).to_be_bytes())?;
    out.write_all(&mac.finalize().into_bytes())?;
    out.write_all(END)?;
    out.flush()?;
    Ok(manifest)
}

/// Checks the whole backup under `key` and writes the database it holds to `out`, chunk by
/// chunk as each authenticates; `progress` hears the database bytes done, of how many. The caller must
/// treat `out` as unverified until this returns `Ok` (a later chunk may still fail).
pub fn open(
    key: &BackupKey,
    mut file: impl Read + Seek,
    mut out: impl Write,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Manifest, BackupError> {
    let total = file.seek(SeekFrom::End(0))?;
    file.seek(SeekFrom::Start(0))?;
    let mut header = vec![0u8; HEADER_LEN as usize];
    let read = read_up_to(&mut file, header.len())?;
    if !read.starts_with(MAGIC) {
        return Err(BackupError::NotABackup);
    }
    if read.len() < header.len() || total < HEADER_LEN + TRAILER_LEN {
        return Err(BackupError::Truncated);
    }
    header.copy_from_slice(&read);
    let backup_id = &header[MAGIC.len()..];

    file.seek(SeekFrom::Start(total - TRAILER_LEN))?;
    let mut trailer = [0u8; TRAILER_LEN as usize];
    file.read_exact(&mut trailer)?;
    let (length, rest) = trailer.split_at(4);
    let (tag, end) = rest.split_at(32);
    let manifest_len = u64::from(u32::from_be_bytes([
        length[0], length[1], length[2], length[3],
    ]));
    if end != END || manifest_len > MAX_MANIFEST || manifest_len > total - HEADER_LEN - TRAILER_LEN
    {
        return Err(BackupError::Truncated);
    }
    let chunks_end = total - TRAILER_LEN - manifest_len;
    file.seek(SeekFrom::Start(chunks_end))?;
    let mut json = vec![0u8; manifest_len as usize];
    file.read_exact(&mut json)?;

    let (cipher, mut mac) = key.file_keys(backup_id);
    mac.update(&header);
    mac.update(&json);
    if mac.verify_slice(tag).is_err() {
        // Which master key made it is worth saying; the id itself is not trusted.
        let named = serde_json::from_slice::<serde_json::Value>(&json)
            .ok()
            .and_then(|v| v["key_id"].as_str().map(str::to_owned));
        return Err(match named {
            Some(backup) if backup != key.key_id => BackupError::ForeignKey {
                backup,
                ours: key.key_id.clone(),
            },
            _ => BackupError::ManifestTampered,
        });
    }
    let manifest: Manifest =
        serde_json::from_slice(&json).map_err(|_| BackupError::ManifestTampered)?;
    if manifest.format != FORMAT {
        return Err(BackupError::UnknownFormat(manifest.format));
    }
    if manifest.chunks == 0 || chunks_end - HEADER_LEN != manifest.ciphertext_bytes {
        return Err(BackupError::Mismatch("its size"));
    }

    file.seek(SeekFrom::Start(HEADER_LEN))?;
    let mut chunks_in = (&mut file).take(manifest.ciphertext_bytes);
    let (mut database_hash, mut ciphertext_hash) = (Sha256::new(), Sha256::new());
    let mut database_bytes = 0u64;
    for index in 0..manifest.chunks {
        let rejected = || BackupError::ChunkRejected(index);
        let mut length = [0u8; 4];
        chunks_in.read_exact(&mut length).map_err(|_| rejected())?;
        let sealed_len = u32::from_be_bytes(length) as usize;
        if !(TAG_LEN..=CHUNK_SIZE + TAG_LEN).contains(&sealed_len) {
            return Err(rejected());
        }
        let sealed = read_up_to(&mut chunks_in, sealed_len)?;
        if sealed.len() != sealed_len {
            return Err(rejected());
        }
        let last = index + 1 == manifest.chunks;
        let plain = Zeroizing::new(
            cipher
                .decrypt(
                    &Nonce::from(chunk_nonce(index, last)),
                    Payload {
                        msg: &sealed,
                        aad: &chunk_aad(&header, index, last),
                    },
                )
                .map_err(|_| rejected())?,
        );
        ciphertext_hash.update(length);
        ciphertext_hash.update(&sealed[..]);
        database_hash.update(&plain[..]);
        database_bytes += plain.len() as u64;
        out.write_all(&plain)?;
        progress(database_bytes, manifest.database_bytes);
    }
    if chunks_in.limit() != 0 {
        return Err(BackupError::Mismatch("bytes after its last chunk"));
    }
    if hex(&ciphertext_hash.finalize()) != manifest.ciphertext_sha256 {
        return Err(BackupError::Mismatch("the SHA-256 of its chunks"));
    }
    if database_bytes != manifest.database_bytes
        || hex(&database_hash.finalize()) != manifest.database_sha256
    {
        return Err(BackupError::Mismatch("the SHA-256 of the database"));
    }
    out.flush()?;
    Ok(manifest)
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use super::*;

    fn key(byte: u8) -> BackupKey {
        BackupKey::from_master(&MasterKey::from_bytes([byte; 32]))
    }

    fn meta() -> BackupMeta {
        BackupMeta {
            created_at: "2026-12-03T12:00:00Z".into(),
            rampart_version: "test".into(),
            messages: 3,
        }
    }

    fn sealed(key: &BackupKey, plain: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        seal(key, meta(), plain, &mut out, &mut |_| {}).unwrap();
        out
    }

    fn opened(key: &BackupKey, file: &[u8]) -> Result<Vec<u8>, BackupError> {
        let mut out = Vec::new();
        open(key, Cursor::new(file), &mut out, &mut |_, _| {})?;
        Ok(out)
    }

    fn database(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 % 251) as u8).collect()
    }

    #[test]
    fn backups_round_trip_at_every_chunk_boundary() {
        let key = key(1);
        for len in [
            0,
            1,
            CHUNK_SIZE - 1,
            CHUNK_SIZE,
            CHUNK_SIZE + 1,
            3 * CHUNK_SIZE,
        ] {
            let plain = database(len);
            let file = sealed(&key, &plain);
            assert_eq!(opened(&key, &file).unwrap(), plain, "length {len}");
        }
    }

    #[test]
    fn the_manifest_describes_the_backup() {
        let key = key(1);
        let plain = database(2 * CHUNK_SIZE + 5);
        let mut out = Vec::new();
        let manifest = seal(&key, meta(), &plain[..], &mut out, &mut |_| {}).unwrap();
        assert_eq!(manifest.chunks, 3);
        assert_eq!(manifest.database_bytes, plain.len() as u64);
        assert_eq!(manifest.database_sha256, hex(&Sha256::digest(&plain)));
        assert_eq!(manifest.key_id, key.key_id());
        let reopened = open(&key, Cursor::new(&out), std::io::sink(), &mut |_, _| {}).unwrap();
        assert_eq!(reopened, manifest);
    }

    #[test]
    fn a_cut_flipped_or_reordered_backup_is_refused() {
        let key = key(1);
        let file = sealed(&key, &database(3 * CHUNK_SIZE));
        let cut = &file[..file.len() - 10];
        assert!(matches!(opened(&key, cut), Err(BackupError::Truncated)));
        let mut flipped = file.clone();
        flipped[HEADER_LEN as usize + 4 + 100] ^= 1;
        assert!(matches!(
            opened(&key, &flipped),
            Err(BackupError::ChunkRejected(0))
        ));
        let frame = 4 + CHUNK_SIZE + TAG_LEN;
        let start = HEADER_LEN as usize;
        let mut swapped = file.clone();
        swapped[start..start + 2 * frame].rotate_left(frame);
        assert!(matches!(
            opened(&key, &swapped),
            Err(BackupError::ChunkRejected(0))
        ));
        let mut manifest_edit = file.clone();
        let at = manifest_edit.len() - TRAILER_LEN as usize - 3;
        manifest_edit[at] ^= 1;
        assert!(matches!(
            opened(&key, &manifest_edit),
            Err(BackupError::ManifestTampered)
        ));
        assert!(matches!(
            opened(&key, b"SQLite format 3\0"),
            Err(BackupError::NotABackup)
        ));
    }

    #[test]
    fn a_backup_made_under_another_master_key_is_named_foreign() {
        let file = sealed(&key(1), &database(100));
        match opened(&key(2), &file) {
            Err(BackupError::ForeignKey { backup, ours }) => {
                assert_eq!(backup, key(1).key_id());
                assert_eq!(ours, key(2).key_id());
            }
            other => panic!("expected a foreign-key refusal, got {other:?}"),
        }
    }

    #[test]
    fn a_dropped_final_chunk_is_refused_even_with_its_length_fixed() {
        // Drop the last chunk and pretend the one before it was the end: its final flag
        // does not match, so it fails.
        let key = key(1);
        let plain = database(2 * CHUNK_SIZE);
        let file = sealed(&key, &plain);
        let frame = 4 + CHUNK_SIZE + TAG_LEN;
        let start = HEADER_LEN as usize;
        let mut cut = file[..start + frame].to_vec();
        cut.extend_from_slice(&file[start + 2 * frame..]);
        assert!(opened(&key, &cut).is_err());
    }
}
