//! Passkeys over the real API, answered by a software authenticator (1Password's `passkey`)
//! speaking the same JSON a browser would: registration while signed in, then sign-in with
//! the password and the passkey as the second factor; a response made for another challenge
//! is refused, and a removed passkey no longer signs in.

use passkey::authenticator::{Authenticator, UiHint, UserCheck, UserValidationMethod};
use passkey::client::{Client, DefaultClientData};
use passkey::crypto::rust_crypto::RustCryptoBackend;
use passkey::types::Passkey as SoftPasskey;
use passkey::types::ctap2::{Aaguid, Ctap2Error};
use passkey::types::webauthn::{CredentialCreationOptions, CredentialRequestOptions};
use reqwest::Method;
use serde_json::{Value, json};
use webauthn_rs::prelude::Url;

use crate::helpers::{TestApp, spawn_app_with};
use crate::reply::Reply;
use crate::session::{PASSWORD, Session, set_cookie};

/// The address people reach the server at: the relying party, and the origin the
/// authenticator answers for (the test talks to the server on localhost all the same).
const ORIGIN: &str = "https://rampart.example.com";
const EMAIL: &str = "ada@example.com";

/// A person who is present and verified (after a fingerprint or PIN).
struct VerifiedUser;

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

type SoftClient = Client<
    Option<SoftPasskey>,
    VerifiedUser,
    RustCryptoBackend,
    public_suffix::PublicSuffixList,
    (),
>;

fn software_client() -> SoftClient {
    Client::new(Authenticator::new(
        Aaguid::new_empty(),
        None,
        VerifiedUser,
        RustCryptoBackend,
    ))
}

fn origin() -> Url {
    Url::parse(ORIGIN).unwrap()
}

fn spawn() -> TestApp {
    spawn_app_with(&[("RAMPART_PEOPLE__PUBLIC_URL", ORIGIN)])
}

/// Registers the authenticator's passkey through the API; returns the passkey's id.
async fn register(app: &TestApp, session: &Session, client: &mut SoftClient, name: &str) -> String {
    let started = app
        .post_as(
            session,
            "/v1/users/me/passkeys/register/start",
            &json!({"name": name}),
        )
        .await;
    assert_eq!(started.status, 200, "{}", started.text);
    let body = started.json();
    let options: CredentialCreationOptions =
        serde_json::from_value(body["options"].clone()).unwrap();
    let created = client
        .register(&origin(), options, DefaultClientData)
        .await
        .unwrap();
    let finished = app
        .post_as(
            session,
            "/v1/users/me/passkeys/register/finish",
            &json!({"ceremony_id": body["ceremony_id"], "credential": created}),
        )
        .await;
    assert_eq!(finished.status, 201, "{}", finished.text);
    let passkey = finished.json();
    assert_eq!(passkey["name"], name, "{passkey}");
    passkey["id"].as_str().unwrap().to_owned()
}

/// The password step, which must ask for a passkey: the sign-in cookie (`name=value`).
async fn password_step(app: &TestApp) -> String {
    let reply = app.login(EMAIL, PASSWORD).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let body = reply.json();
    assert_eq!(body["status"], "second_factor_required", "{body}");
    let factors = body["factors"].as_array().unwrap();
    assert!(factors.contains(&json!("passkey")), "{body}");
    assert!(set_cookie(&reply, "__Host-rampart_session").is_none());
    set_cookie(&reply, "__Host-rampart_sign_in")
        .expect("a sign-in cookie")
        .split(';')
        .next()
        .unwrap()
        .to_owned()
}

async fn with_pending(app: &TestApp, pending: &str, path: &str, body: Option<&Value>) -> Reply {
    let body = body.map(|b| (Some("application/json"), serde_json::to_vec(b).unwrap()));
    app.request(Method::POST, path, "", body, &[("cookie", pending)])
        .await
}

/// Starts the passkey step: the options the authenticator answers.
async fn start(app: &TestApp, pending: &str) -> CredentialRequestOptions {
    let reply = with_pending(app, pending, "/v1/auth/login/passkey/start", None).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    serde_json::from_value(reply.json()["options"].clone()).unwrap()
}

async fn answer(client: &mut SoftClient, options: CredentialRequestOptions) -> Value {
    let assertion = client
        .authenticate(&origin(), options, DefaultClientData)
        .await
        .unwrap();
    serde_json::to_value(&assertion).unwrap()
}

async fn finish(app: &TestApp, pending: &str, credential: &Value) -> Reply {
    with_pending(
        app,
        pending,
        "/v1/auth/login/passkey/finish",
        Some(&json!({"credential": credential})),
    )
    .await
}

/// A completed sign-in's session.
fn session_of(reply: &Reply) -> Session {
    assert_eq!(reply.status, 200, "{}", reply.text);
    let body = reply.json();
    assert_eq!(body["status"], "signed_in", "{body}");
    Session {
        cookie: set_cookie(reply, "__Host-rampart_session")
            .expect("a session cookie")
            .split(';')
            .next()
            .unwrap()
            .to_owned(),
        csrf: body["csrf_token"].as_str().unwrap().to_owned(),
    }
}

async fn sign_out(app: &TestApp, session: &Session) {
    let out = app
        .as_person(session, Method::POST, "/v1/auth/logout", None, true)
        .await;
    assert_eq!(out.status, 204, "{}", out.text);
}

#[tokio::test]
async fn a_passkey_registered_over_the_api_completes_the_sign_in_after_the_password() {
    let app = spawn();
    app.create_person(EMAIL, "owner", None);
    let session = app.sign_in(EMAIL, PASSWORD).await;
    let mut client = software_client();
    let id = register(&app, &session, &mut client, "Laptop").await;
    let listed = app.get_as(&session, "/v1/users/me/passkeys").await;
    assert_eq!(listed.status, 200, "{}", listed.text);
    let data = listed.json()["data"].clone();
    assert_eq!(data.as_array().unwrap().len(), 1, "{data}");
    assert_eq!(data[0]["id"], id.as_str());
    assert!(data[0]["created_at"].is_string(), "{data}");
    assert!(data[0].get("credential").is_none() && data[0].get("secret").is_none());
    sign_out(&app, &session).await;

    let pending = password_step(&app).await;
    let options = start(&app, &pending).await;
    let credential = answer(&mut client, options).await;
    let reply = finish(&app, &pending, &credential).await;
    let session = session_of(&reply);
    let cleared = set_cookie(&reply, "__Host-rampart_sign_in").unwrap();
    assert!(cleared.contains("Max-Age=0"), "{cleared}");
    let messages = app.get_as(&session, "/v1/messages").await;
    assert_eq!(messages.status, 200, "{}", messages.text);

    // The sign-in it completed is used up: its answer does not start a second session.
    finish(&app, &pending, &credential)
        .await
        .assert_problem(401, "invalid_credentials");

    // The same authenticator is not registered twice: the options exclude it.
    let again = app
        .post_as(
            &session,
            "/v1/users/me/passkeys/register/start",
            &json!({"name": "Laptop again"}),
        )
        .await;
    assert_eq!(again.status, 200, "{}", again.text);
    let excluded = &again.json()["options"]["publicKey"]["excludeCredentials"];
    assert_eq!(excluded.as_array().map(Vec::len), Some(1), "{excluded}");
}

#[tokio::test]
async fn a_response_to_another_challenge_is_refused() {
    let app = spawn();
    app.create_person(EMAIL, "owner", None);
    let session = app.sign_in(EMAIL, PASSWORD).await;
    let mut client = software_client();
    register(&app, &session, &mut client, "Laptop").await;
    sign_out(&app, &session).await;

    // An answer to another sign-in's challenge.
    let other = password_step(&app).await;
    let foreign = answer(&mut client, start(&app, &other).await).await;
    let pending = password_step(&app).await;
    start(&app, &pending).await;
    finish(&app, &pending, &foreign)
        .await
        .assert_problem(401, "invalid_credentials");

    // An answer to an earlier challenge of the same sign-in, replaced by a new start.
    let first = start(&app, &pending).await;
    let stale = answer(&mut client, first).await;
    start(&app, &pending).await;
    finish(&app, &pending, &stale)
        .await
        .assert_problem(401, "invalid_credentials");

    // Without the sign-in cookie nothing starts.
    app.request(Method::POST, "/v1/auth/login/passkey/start", "", None, &[])
        .await
        .assert_problem(401, "invalid_credentials");

    // Two wrong answers are not three: the right one still completes the sign-in.
    let fresh = answer(&mut client, start(&app, &pending).await).await;
    let session = session_of(&finish(&app, &pending, &fresh).await);
    assert_eq!(app.get_as(&session, "/v1/messages").await.status, 200);
}

#[tokio::test]
async fn a_removed_passkey_no_longer_signs_in() {
    let app = spawn();
    app.create_person(EMAIL, "owner", None);
    let session = app.sign_in(EMAIL, PASSWORD).await;
    let mut client = software_client();
    let id = register(&app, &session, &mut client, "Laptop").await;

    // A sign-in elsewhere is waiting for the passkey when it is removed.
    let pending = password_step(&app).await;
    let credential = answer(&mut client, start(&app, &pending).await).await;
    let path = format!("/v1/users/me/passkeys/{id}");
    let removed = app
        .as_person(&session, Method::DELETE, &path, None, true)
        .await;
    assert_eq!(removed.status, 204, "{}", removed.text);
    app.as_person(&session, Method::DELETE, &path, None, true)
        .await
        .assert_problem(404, "not_found");
    let listed = app.get_as(&session, "/v1/users/me/passkeys").await;
    assert_eq!(listed.json()["data"], json!([]));
    finish(&app, &pending, &credential)
        .await
        .assert_problem(401, "invalid_credentials");

    // With no second factor left, the password alone signs in again.
    sign_out(&app, &session).await;
    app.sign_in(EMAIL, PASSWORD).await;
}

#[tokio::test]
async fn registration_needs_a_signed_in_person_and_a_live_ceremony() {
    let app = spawn();
    app.create_person(EMAIL, "owner", None);
    let session = app.sign_in(EMAIL, PASSWORD).await;

    // An API key is no person.
    app.post_json(
        "/v1/users/me/passkeys/register/start",
        &app.key,
        &json!({"name": "Laptop"}),
    )
    .await
    .assert_problem(403, "session_required");
    // Without the CSRF token a session changes nothing.
    app.as_person(
        &session,
        Method::POST,
        "/v1/users/me/passkeys/register/start",
        Some(&json!({"name": "Laptop"})),
        false,
    )
    .await
    .assert_problem(403, "csrf_token_invalid");
    app.post_as(
        &session,
        "/v1/users/me/passkeys/register/start",
        &json!({"name": ""}),
    )
    .await
    .assert_problem(422, "invalid_name");
    app.post_as(
        &session,
        "/v1/users/me/passkeys/register/finish",
        &json!({"ceremony_id": "pkr_unknown", "credential": {}}),
    )
    .await
    .assert_problem(422, "invalid_ceremony");
}
