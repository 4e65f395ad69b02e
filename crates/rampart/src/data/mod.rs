//! Layer 2, data: the keyring that keeps secrets, phone numbers and bodies encrypted at rest,
//! and the blind indexes that let us look up encrypted values without decrypting them.

pub mod keyring;

pub use keyring::{Keyring, KeyringError};
