//! Passkey ceremonies driven end to end by 1Password's software authenticator (`passkey`),
//! speaking the same JSON a browser would.

use passkey::client::DefaultClientData;
use passkey::types::webauthn::{CredentialCreationOptions, CredentialRequestOptions};
use webauthn_rs::prelude::Url;

use super::test_client::{SoftClient, software_client};
use super::*;

const RP_ID: &str = "rampart.example.com";
const ORIGIN: &str = "https://rampart.example.com";
const USER_ID: [u8; 16] = [7; 16];

fn origin() -> Url {
    Url::parse(ORIGIN).unwrap()
}

async fn register(rp: &Passkeys, client: &mut SoftClient) -> RegisteredPasskey {
    let (challenge, state) = rp
        .start_registration(USER_ID, "ada@example.com", "Ada", &[])
        .unwrap();
    let options: CredentialCreationOptions = serde_json::from_value(challenge).unwrap();
    let created = client
        .register(&origin(), options, DefaultClientData)
        .await
        .unwrap();
    let response = serde_json::to_string(&created).unwrap();
    rp.finish_registration(&state, &response).unwrap()
}

async fn answer(client: &mut SoftClient, challenge: serde_json::Value) -> String {
    let options: CredentialRequestOptions = serde_json::from_value(challenge).unwrap();
    let assertion = client
        .authenticate(&origin(), options, DefaultClientData)
        .await
        .unwrap();
    serde_json::to_string(&assertion).unwrap()
}

#[tokio::test]
async fn registers_and_logs_in_with_a_software_authenticator() {
    let rp = Passkeys::new(RP_ID, ORIGIN).unwrap();
    let mut client = software_client();
    let registered = register(&rp, &mut client).await;
    assert!(!registered.credential_id.is_empty());
    assert_eq!(
        stored_credential_id(&registered.stored).unwrap(),
        registered.credential_id
    );

    let (challenge, state) = rp
        .start_authentication(std::slice::from_ref(&registered.stored))
        .unwrap();
    let response = answer(&mut client, challenge).await;
    let outcome = rp.finish_authentication(&state, &response).unwrap();
    assert_eq!(outcome.credential_id, registered.credential_id);

    let updated = update_stored_passkey(&registered.stored, &outcome).unwrap();
    assert_eq!(updated.is_some(), outcome.needs_update);
}

#[tokio::test]
async fn a_response_for_another_challenge_is_refused() {
    let rp = Passkeys::new(RP_ID, ORIGIN).unwrap();
    let mut client = software_client();
    let registered = register(&rp, &mut client).await;
    let stored = std::slice::from_ref(&registered.stored);

    let (_first_challenge, first_state) = rp.start_authentication(stored).unwrap();
    let (second_challenge, second_state) = rp.start_authentication(stored).unwrap();
    let response = answer(&mut client, second_challenge).await;

    assert!(matches!(
        rp.finish_authentication(&first_state, &response),
        Err(PasskeyError::Refused(_))
    ));
    // The same response does complete the ceremony it was made for.
    assert!(rp.finish_authentication(&second_state, &response).is_ok());
}

#[tokio::test]
async fn an_authenticator_already_registered_is_not_registered_twice() {
    let rp = Passkeys::new(RP_ID, ORIGIN).unwrap();
    let mut client = software_client();
    let registered = register(&rp, &mut client).await;

    let (challenge, _state) = rp
        .start_registration(
            USER_ID,
            "ada@example.com",
            "Ada",
            std::slice::from_ref(&registered.credential_id),
        )
        .unwrap();
    let excluded = &challenge["publicKey"]["excludeCredentials"];
    assert_eq!(excluded.as_array().map(Vec::len), Some(1), "{challenge}");
    let options: CredentialCreationOptions = serde_json::from_value(challenge).unwrap();
    assert!(
        client
            .register(&origin(), options, DefaultClientData)
            .await
            .is_err()
    );
}

#[test]
fn malformed_responses_and_state_are_refused() {
    let rp = Passkeys::new(RP_ID, ORIGIN).unwrap();
    let (_, state) = rp.start_registration(USER_ID, "ada", "Ada", &[]).unwrap();
    assert!(matches!(
        rp.finish_registration(&state, "{}"),
        Err(PasskeyError::MalformedResponse(_))
    ));
    assert!(matches!(
        rp.finish_registration("not state", "{}"),
        Err(PasskeyError::CorruptState(_))
    ));
}

#[test]
fn an_origin_outside_the_relying_party_is_a_configuration_error() {
    assert!(matches!(
        Passkeys::new(RP_ID, "https://evil.example.net"),
        Err(PasskeyError::Config(_))
    ));
    assert!(matches!(
        Passkeys::new(RP_ID, "not a url"),
        Err(PasskeyError::Config(_))
    ));
}

#[test]
fn the_relying_party_comes_from_the_public_url() {
    assert!(Passkeys::for_public_url("https://rampart.example.com:8443/console/").is_ok());
    assert!(Passkeys::for_public_url("https://localhost:8443").is_ok());
    assert!(matches!(
        Passkeys::for_public_url("https://10.0.0.1:8443"),
        Err(PasskeyError::Config(_))
    ));
    assert!(matches!(
        Passkeys::for_public_url("rampart.example.com"),
        Err(PasskeyError::Config(_))
    ));
}
