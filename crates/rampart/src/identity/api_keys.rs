//! API key tokens: `rk_` + a 12-character public id + a 32-character secret (190 bits).
//!
//! The recognisable prefix lets secret scanners spot leaked keys. Only a keyed hash of the
//! whole token is stored; verification is one HMAC and a constant-time comparison, so the send
//! path never runs a slow password hash (unneeded at this entropy).

use std::fmt;

use rand::RngExt;
use secrecy::{ExposeSecret, SecretString};
use subtle::ConstantTimeEq;

use super::scopes::Scopes;
use crate::clock::Millis;
use crate::data::sealing::Sealer;
use crate::network::client_cert::CertFingerprint;
use crate::network::ip::{AccountNetworks, IpList};
use crate::network::rate_limit::AccountRates;
use crate::store::api_keys::ApiKeyRecord;

const PREFIX: &str = "rk_";
const ID_LEN: usize = 12;
const SECRET_LEN: usize = 32;
const TOKEN_LEN: usize = PREFIX.len() + ID_LEN + SECRET_LEN;
const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const ID_ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";

/// A whole API key as the client holds it.
pub struct ApiKeyToken(SecretString);

impl ApiKeyToken {
    /// A fresh random token.
    pub fn generate() -> Self {
        let mut rng = rand::rng();
        let mut token = String::with_capacity(TOKEN_LEN);
        token.push_str(PREFIX);
        for _ in 0..ID_LEN {
            token.push(char::from(
                ID_ALPHABET[rng.random_range(0..ID_ALPHABET.len())],
            ));
        }
        for _ in 0..SECRET_LEN {
            token.push(char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]));
        }
        Self(SecretString::from(token))
    }

    /// Checks the shape of a presented token; `None` for anything that cannot be a key.
    pub fn parse(presented: &str) -> Option<Self> {
        let ok = presented.len() == TOKEN_LEN
            && presented.starts_with(PREFIX)
            && presented[PREFIX.len()..]
                .bytes()
                .all(|b| b.is_ascii_alphanumeric());
        ok.then(|| Self(SecretString::from(presented.to_owned())))
    }

    /// The public id (`rk_` + 12 characters), safe to show and log.
    pub fn id(&self) -> &str {
        &self.0.expose_secret()[..PREFIX.len() + ID_LEN]
    }

    /// The whole token, to be shown once at creation and never again.
    pub fn reveal(&self) -> &str {
        self.0.expose_secret()
    }
}

impl fmt::Debug for ApiKeyToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ApiKeyToken({}…)", self.id())
    }
}

/// An API key's record: everything but its secret, of which only a keyed hash is kept.
#[derive(Debug, Clone)]
pub struct StoredApiKey {
    pub id: String,
    /// The account it acts in; `None` for an operator's key over the instance.
    pub account_id: Option<String>,
    pub name: String,
    pub hash: Vec<u8>,
    pub scopes: Scopes,
    pub created_at: Millis,
    pub expires_at: Option<Millis>,
    pub revoked_at: Option<Millis>,
    pub last_used_at: Option<Millis>,
    /// Networks the key may be used from (empty: any).
    pub allowed_ips: IpList,
    /// Networks its account's keys may be used from (the operator's list and the account's
    /// own); filled when the key is loaded for authentication.
    pub account_networks: AccountNetworks,
    /// Its account's rate limits (the operator's and the admins'); filled with the networks.
    pub account_rates: AccountRates,
    /// The person it belongs to, if a person made it.
    pub user_id: Option<String>,
    /// The key that made it.
    pub parent_id: Option<String>,
    /// The client certificate the key must be presented with (mutual TLS), if any.
    pub client_cert_sha256: Option<CertFingerprint>,
}

impl StoredApiKey {
    /// The key as the store keeps it.
    pub fn to_record(&self) -> ApiKeyRecord {
        ApiKeyRecord {
            id: self.id.clone(),
            account_id: self.account_id.clone(),
            name: self.name.clone(),
            hash: self.hash.clone(),
            scopes: self.scopes.to_stored(),
            created_at: self.created_at,
            expires_at: self.expires_at,
            revoked_at: self.revoked_at,
            last_used_at: self.last_used_at,
            allowed_ips: self.allowed_ips.to_stored(),
            user_id: self.user_id.clone(),
            parent_id: self.parent_id.clone(),
            client_cert_sha256: self.client_cert_sha256.map(|f| f.to_hex()),
        }
    }
}

impl From<ApiKeyRecord> for StoredApiKey {
    fn from(r: ApiKeyRecord) -> Self {
        // An account's key never holds a server-wide scope, whatever was stored before that
        // rule existed: those belong to operators' keys.
        let scopes = Scopes::from_stored(&r.scopes);
        Self {
            scopes: if r.account_id.is_some() {
                scopes.account_only()
            } else {
                scopes.server_wide_only()
            },
            id: r.id,
            account_id: r.account_id,
            name: r.name,
            hash: r.hash,
            created_at: r.created_at,
            expires_at: r.expires_at,
            revoked_at: r.revoked_at,
            last_used_at: r.last_used_at,
            allowed_ips: IpList::from_stored(&r.allowed_ips),
            account_networks: AccountNetworks::default(),
            account_rates: AccountRates::default(),
            user_id: r.user_id,
            parent_id: r.parent_id,
            // The column's CHECK admits only what parses; should anything else ever be there,
            // the key is bound to a certificate no one holds rather than to none.
            client_cert_sha256: r
                .client_cert_sha256
                .as_deref()
                .map(|hex| CertFingerprint::parse(hex).unwrap_or(CertFingerprint::UNMATCHABLE)),
        }
    }
}

/// Makes a new key in `account_id` (`None`: an operator's key): the token to show once, and
/// the record to store.
pub fn issue(
    sealer: &Sealer,
    account_id: Option<&str>,
    name: &str,
    scopes: Scopes,
    expires_at: Option<Millis>,
    now: Millis,
) -> (ApiKeyToken, StoredApiKey) {
    let token = ApiKeyToken::generate();
    let stored = StoredApiKey {
        id: token.id().to_owned(),
        account_id: account_id.map(str::to_owned),
        name: name.to_owned(),
        hash: sealer.hash_api_key(token.reveal()).to_vec(),
        scopes,
        created_at: now,
        expires_at,
        revoked_at: None,
        last_used_at: None,
        allowed_ips: IpList::default(),
        account_networks: AccountNetworks::default(),
        account_rates: AccountRates::default(),
        user_id: None,
        parent_id: None,
        client_cert_sha256: None,
    };
    (token, stored)
}

/// Who is calling: established from a valid, live API key.
#[derive(Debug, Clone)]
pub struct Principal {
    pub account_id: Option<String>,
    pub key_id: String,
    pub scopes: Scopes,
}

/// Why a key was not accepted. The API shows every case as the same 401, so that a caller
/// cannot probe which keys exist; the distinction is for logs and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyRejection {
    Malformed,
    Unknown,
    WrongSecret,
    Revoked,
    Expired,
}

/// Verifies `token` against its stored record at time `now`.
pub fn verify(
    stored: &StoredApiKey,
    presented_hash: &[u8; 32],
    now: Millis,
) -> Result<Principal, KeyRejection> {
    if !bool::from(stored.hash.as_slice().ct_eq(presented_hash)) {
        return Err(KeyRejection::WrongSecret);
    }
    if stored.revoked_at.is_some() {
        return Err(KeyRejection::Revoked);
    }
    if stored.expires_at.is_some_and(|at| at <= now) {
        return Err(KeyRejection::Expired);
    }
    Ok(Principal {
        account_id: stored.account_id.clone(),
        key_id: stored.id.clone(),
        scopes: stored.scopes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(hash: [u8; 32]) -> StoredApiKey {
        StoredApiKey {
            id: "rk_abc".into(),
            account_id: Some("acc_1".into()),
            name: "k".into(),
            hash: hash.to_vec(),
            scopes: Scopes::all(),
            created_at: 0,
            expires_at: Some(1_000),
            revoked_at: None,
            last_used_at: None,
            allowed_ips: IpList::default(),
            account_networks: AccountNetworks::default(),
            account_rates: AccountRates::default(),
            user_id: None,
            parent_id: None,
            client_cert_sha256: None,
        }
    }

    #[test]
    fn generated_tokens_parse_and_have_the_rk_prefix() {
        let token = ApiKeyToken::generate();
        assert!(token.reveal().starts_with("rk_"));
        assert_eq!(token.reveal().len(), TOKEN_LEN);
        let again = ApiKeyToken::parse(token.reveal()).unwrap();
        assert_eq!(again.id(), token.id());
        assert_ne!(ApiKeyToken::generate().reveal(), token.reveal());
    }

    #[test]
    fn malformed_tokens_do_not_parse() {
        for bad in [
            "",
            "rk_",
            "sk_0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJK",
            "rk_é",
        ] {
            assert!(ApiKeyToken::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn wrong_secret_revoked_and_expired_keys_are_rejected() {
        let key = stored([1; 32]);
        assert!(verify(&key, &[1; 32], 999).is_ok());
        assert_eq!(
            verify(&key, &[2; 32], 0).unwrap_err(),
            KeyRejection::WrongSecret
        );
        assert_eq!(
            verify(&key, &[1; 32], 1_000).unwrap_err(),
            KeyRejection::Expired
        );
        let revoked = StoredApiKey {
            revoked_at: Some(5),
            ..key
        };
        assert_eq!(
            verify(&revoked, &[1; 32], 0).unwrap_err(),
            KeyRejection::Revoked
        );
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let token = ApiKeyToken::generate();
        assert!(!format!("{token:?}").contains(&token.reveal()[15..]));
    }
}
