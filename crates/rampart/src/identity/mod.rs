//! Layer 3, identity and access: API keys (tokens, verification, the in-memory key cache)
//! and the scopes they carry; people's passwords (acceptance rule, Argon2id hashing) and the
//! brute-force softlock in front of them. Deny by default: a key can do exactly what its
//! scopes name, within its own account. Accounts themselves are records of the store, created
//! by the application layer.

pub mod api_keys;
pub mod key_cache;
pub mod password;
pub mod scopes;
pub mod softlock;

pub use api_keys::{ApiKeyToken, Principal};
pub use scopes::{Scope, Scopes};
