//! Layer 3, identity and access: API keys (tokens, verification, the in-memory key cache)
//! and the scopes they carry; people's second factors (TOTP, passkeys) and one-time codes
//! and link tokens. Deny by default: a key can do exactly what its scopes name,
//! within its own account. Accounts themselves are records of the store, created by the
//! application layer.

pub mod api_keys;
pub mod codes;
pub mod key_cache;
pub mod passkeys;
pub mod password;
pub mod roles;
pub mod scopes;
pub mod softlock;
pub mod totp;

pub use api_keys::{ApiKeyToken, Principal};
pub use scopes::{Scope, Scopes};
