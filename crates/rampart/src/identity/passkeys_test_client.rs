//! A software authenticator (1Password's `passkey`) behind a WebAuthn client, speaking the
//! same JSON a browser would: for tests of passkey ceremonies at every layer.

use passkey::authenticator::{Authenticator, UiHint, UserCheck, UserValidationMethod};
use passkey::client::{Client, DefaultClientData};
use passkey::crypto::rust_crypto::RustCryptoBackend;
use passkey::types::Passkey as SoftPasskey;
use passkey::types::ctap2::{Aaguid, Ctap2Error};
use passkey::types::webauthn::{CredentialCreationOptions, CredentialRequestOptions};
use webauthn_rs::prelude::Url;

/// A user who is present and verified (as after a fingerprint or PIN), and who, like a
/// browser's UI, stops when told the authenticator is already registered.
pub(crate) struct VerifiedUser;

#[async_trait::async_trait]
impl UserValidationMethod for VerifiedUser {
    type PasskeyItem = SoftPasskey;

    async fn check_user<'a>(
        &self,
        hint: UiHint<'a, Self::PasskeyItem>,
        _presence: bool,
        _verification: bool,
    ) -> Result<UserCheck, Ctap2Error> {
        if let UiHint::InformExcludedCredentialFound(_) = hint {
            return Err(Ctap2Error::CredentialExcluded);
        }
        Ok(UserCheck {
            presence: true,
            verification: true,
        })
    }

    fn is_presence_enabled(&self) -> bool {
        true
    }

    fn is_verification_enabled(&self) -> Option<bool> {
        Some(true)
    }
}

pub(crate) type SoftClient = Client<
    Option<SoftPasskey>,
    VerifiedUser,
    RustCryptoBackend,
    public_suffix::PublicSuffixList,
    (),
>;

/// A client over an authenticator holding no passkey yet.
pub(crate) fn software_client() -> SoftClient {
    Client::new(Authenticator::new(
        Aaguid::new_empty(),
        None,
        VerifiedUser,
        RustCryptoBackend,
    ))
}

/// A client whose new passkeys keep a signature counter (most synced passkeys do not).
pub(crate) fn counting_client() -> SoftClient {
    let mut client = software_client();
    client
        .authenticator_mut()
        .set_make_credentials_with_signature_counter(true);
    client
}

/// A second authenticator holding a copy of the client's passkey (a cloned key).
pub(crate) fn clone_of(client: &SoftClient) -> SoftClient {
    let mut clone = software_client();
    *clone.authenticator_mut().store_mut() = client.authenticator().store().clone();
    clone
}

/// Answers the options of `navigator.credentials.create` at `origin`: the JSON response.
pub(crate) async fn create(
    client: &mut SoftClient,
    origin: &str,
    options: serde_json::Value,
) -> Result<serde_json::Value, String> {
    let options: CredentialCreationOptions =
        serde_json::from_value(options).map_err(|e| e.to_string())?;
    let created = client
        .register(&url(origin), options, DefaultClientData)
        .await
        .map_err(|e| format!("{e:?}"))?;
    serde_json::to_value(&created).map_err(|e| e.to_string())
}

/// Answers the options of `navigator.credentials.get` at `origin`: the JSON response.
pub(crate) async fn get(
    client: &mut SoftClient,
    origin: &str,
    options: serde_json::Value,
) -> Result<serde_json::Value, String> {
    let options: CredentialRequestOptions =
        serde_json::from_value(options).map_err(|e| e.to_string())?;
    let assertion = client
        .authenticate(&url(origin), options, DefaultClientData)
        .await
        .map_err(|e| format!("{e:?}"))?;
    serde_json::to_value(&assertion).map_err(|e| e.to_string())
}

fn url(origin: &str) -> Url {
    Url::parse(origin).unwrap()
}
