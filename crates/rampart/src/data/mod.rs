//! Layer 2, data: the keyring that keeps secrets, phone numbers and bodies encrypted at rest,
//! the sealing rules (which field is encrypted under which context), and the blind indexes
//! that let us look up encrypted values without decrypting them; the audit trail's signing key
//! and the integrity checks (`rampart verify`); the encrypted backup file format
//! (`backup`); and the owner-only rule for the files that hold all this (`permissions`).

pub mod audit_key;
pub mod backup;
pub mod integrity;
pub mod keyring;
pub mod master_key;
pub mod permissions;
pub mod sealing;

pub use keyring::{Keyring, KeyringError};
