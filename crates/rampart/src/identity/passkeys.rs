//! Passkeys (WebAuthn) as a phishing-resistant factor, wrapping webauthn-rs behind a small,
//! JSON-in JSON-out API: registration and authentication ceremonies, and counter updates.
//! User verification is required, so a passkey alone meets NIST SP 800-63B AAL2 (5.1.8,
//! 5.1.9; ASVS 4.0 2.7.x/2.8.x out-of-band and multi-factor authenticators).
//!
//! The ceremony state returned by `start_*` must stay on the server (sealed, keyed by the
//! pending session) and be passed back to `finish_*`: it holds the challenge, and a client that
//! could send it back could replay an old one (webauthn-rs `danger-allow-state-serialisation`).
//! A state is good for one `finish_*` call: the caller deletes it then, whatever the outcome.

use webauthn_rs::prelude::{
    AuthenticationResult, Passkey, PasskeyAuthentication, PasskeyRegistration, PublicKeyCredential,
    RegisterPublicKeyCredential, Url, Uuid, WebauthnError,
};
use webauthn_rs::{Webauthn, WebauthnBuilder};

/// Why a passkey ceremony failed.
#[derive(Debug, thiserror::Error)]
pub enum PasskeyError {
    /// The relying-party id or origin is not usable (the origin must be a URL whose host is
    /// the id or a subdomain of it).
    #[error("invalid passkey relying party: {0}")]
    Config(String),
    /// The client's response is not valid JSON of the expected shape.
    #[error("malformed passkey response: {0}")]
    MalformedResponse(serde_json::Error),
    /// Stored ceremony state or a stored passkey could not be read back.
    #[error("unreadable passkey state: {0}")]
    CorruptState(serde_json::Error),
    /// WebAuthn refused the ceremony: wrong challenge, origin or signature, no user
    /// verification, unknown credential... Shown to the user as one generic failure.
    #[error("passkey ceremony refused: {0}")]
    Refused(#[from] WebauthnError),
}

/// A passkey just registered: its credential id (to index it, and to refuse registering it
/// to a second account) and its serialised form to store with the user.
#[derive(Debug, Clone)]
pub struct RegisteredPasskey {
    pub credential_id: Vec<u8>,
    pub stored: String,
}

/// A successful passkey login.
#[derive(Debug, Clone)]
pub struct AuthenticationOutcome {
    /// Which of the user's passkeys was used.
    pub credential_id: Vec<u8>,
    /// The authenticator's signature counter (0 for most synced passkeys).
    pub counter: u32,
    /// Whether the stored passkey should be rewritten with `update_stored_passkey`.
    pub needs_update: bool,
    result: AuthenticationResult,
}

/// The relying party: this server, as browsers and authenticators know it.
#[derive(Debug)]
pub struct Passkeys {
    webauthn: Webauthn,
}

impl Passkeys {
    /// A relying party with id `rp_id` (a domain, e.g. `sms.example.com`) served at
    /// `rp_origin` (e.g. `https://sms.example.com`).
    pub fn new(rp_id: &str, rp_origin: &str) -> Result<Self, PasskeyError> {
        let origin = Url::parse(rp_origin).map_err(|e| PasskeyError::Config(e.to_string()))?;
        let webauthn = WebauthnBuilder::new(rp_id, &origin)
            .and_then(|b| b.rp_name("Rampart").build())
            .map_err(|e| PasskeyError::Config(e.to_string()))?;
        Ok(Self { webauthn })
    }

    /// The relying party of a server people reach at `public_url`: its host is the id, its
    /// scheme, host and port the origin (a path is ignored). The host must be a domain name:
    /// WebAuthn has no relying party on a bare IP address.
    pub fn for_public_url(public_url: &str) -> Result<Self, PasskeyError> {
        let url = Url::parse(public_url).map_err(|e| PasskeyError::Config(e.to_string()))?;
        let rp_id = url
            .domain()
            .ok_or_else(|| PasskeyError::Config(format!("{public_url} has no domain name")))?
            .to_owned();
        Self::new(&rp_id, &url.origin().ascii_serialization())
    }

    /// Begins registering a passkey for a user. Returns the options to send to the browser
    /// (`navigator.credentials.create`) and the state to keep server-side. Credentials the
    /// user already has are excluded so the same authenticator is not registered twice.
    pub fn start_registration(
        &self,
        user_unique_id: [u8; 16],
        user_name: &str,
        display_name: &str,
        existing_credential_ids: &[Vec<u8>],
    ) -> Result<(serde_json::Value, String), PasskeyError> {
        let exclude =
            (!existing_credential_ids.is_empty()).then(|| existing_credential_ids.to_vec());
        let (challenge, state) = self.webauthn.start_passkey_registration(
            Uuid::from_bytes(user_unique_id),
            user_name,
            display_name,
            exclude,
        )?;
        Ok((to_value(&challenge)?, to_state(&state)?))
    }

    /// Completes a registration with the browser's JSON response and the kept state.
    pub fn finish_registration(
        &self,
        state: &str,
        client_response: &str,
    ) -> Result<RegisteredPasskey, PasskeyError> {
        let state: PasskeyRegistration =
            serde_json::from_str(state).map_err(PasskeyError::CorruptState)?;
        let response: RegisterPublicKeyCredential =
            serde_json::from_str(client_response).map_err(PasskeyError::MalformedResponse)?;
        let passkey = self
            .webauthn
            .finish_passkey_registration(&response, &state)?;
        Ok(RegisteredPasskey {
            credential_id: passkey.cred_id().clone(),
            stored: to_state(&passkey)?,
        })
    }

    /// Begins a login with the user's stored passkeys. Returns the options to send to the
    /// browser (`navigator.credentials.get`) and the state to keep server-side.
    pub fn start_authentication(
        &self,
        stored_passkeys: &[String],
    ) -> Result<(serde_json::Value, String), PasskeyError> {
        let passkeys = stored_passkeys
            .iter()
            .map(|s| serde_json::from_str::<Passkey>(s))
            .collect::<Result<Vec<_>, _>>()
            .map_err(PasskeyError::CorruptState)?;
        let (challenge, state) = self.webauthn.start_passkey_authentication(&passkeys)?;
        Ok((to_value(&challenge)?, to_state(&state)?))
    }

    /// Completes a login with the browser's JSON response and the kept state. The challenge,
    /// origin, signature and user verification are all checked by webauthn-rs.
    pub fn finish_authentication(
        &self,
        state: &str,
        client_response: &str,
    ) -> Result<AuthenticationOutcome, PasskeyError> {
        let state: PasskeyAuthentication =
            serde_json::from_str(state).map_err(PasskeyError::CorruptState)?;
        let response: PublicKeyCredential =
            serde_json::from_str(client_response).map_err(PasskeyError::MalformedResponse)?;
        let result = self
            .webauthn
            .finish_passkey_authentication(&response, &state)?;
        Ok(AuthenticationOutcome {
            credential_id: result.cred_id().clone(),
            counter: result.counter(),
            needs_update: result.needs_update(),
            result,
        })
    }
}

/// The stored passkey with its counter and backup flags brought up to date after a login,
/// or `None` if `stored` is another credential or nothing changed.
pub fn update_stored_passkey(
    stored: &str,
    outcome: &AuthenticationOutcome,
) -> Result<Option<String>, PasskeyError> {
    let mut passkey: Passkey = serde_json::from_str(stored).map_err(PasskeyError::CorruptState)?;
    match passkey.update_credential(&outcome.result) {
        Some(true) => Ok(Some(to_state(&passkey)?)),
        _ => Ok(None),
    }
}

/// The id of a stored passkey, e.g. to list or delete it.
pub fn stored_credential_id(stored: &str) -> Result<Vec<u8>, PasskeyError> {
    let passkey: Passkey = serde_json::from_str(stored).map_err(PasskeyError::CorruptState)?;
    Ok(passkey.cred_id().clone())
}

fn to_value<T: serde::Serialize>(value: &T) -> Result<serde_json::Value, PasskeyError> {
    serde_json::to_value(value).map_err(PasskeyError::CorruptState)
}

fn to_state<T: serde::Serialize>(value: &T) -> Result<String, PasskeyError> {
    serde_json::to_string(value).map_err(PasskeyError::CorruptState)
}

#[cfg(test)]
#[path = "passkeys_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "passkeys_test_client.rs"]
pub(crate) mod test_client;
