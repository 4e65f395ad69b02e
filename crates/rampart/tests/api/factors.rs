//! Second factors end to end: enrolling an authenticator app and signing in with it (a code
//! works once), a phone verified with a code read from the sandbox's outbox (the test phone)
//! and signing in by SMS, recovery codes, the pending sign-in that dies after three wrong
//! codes, and the account rules that require a second factor or forbid SMS.

use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use reqwest::Method;
use serde_json::{Value, json};
use totp_rs::{Algorithm, Builder, Secret};

use crate::helpers::{
    NORMAL_NUMBER, POLL_INTERVAL, Reply, STATUS_DEADLINE, TestApp, spawn_app_with,
};
use crate::session::{PASSWORD, Session, set_cookie};

const EMAIL: &str = "ada@example.com";

/// A server whose sandbox writes every message it accepts to an outbox file.
fn spawn_with_outbox() -> (TestApp, PathBuf, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let outbox = dir.path().join("outbox.jsonl");
    let app = spawn_app_with(&[("RAMPART_SANDBOX__OUTBOX_FILE", outbox.to_str().unwrap())]);
    (app, outbox, dir)
}

/// The bodies of the messages the sandbox accepted for `to`, oldest first.
fn outbox_bodies(outbox: &Path, to: &str) -> Vec<String> {
    let text = std::fs::read_to_string(outbox).unwrap_or_default();
    text.lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|m| m["to"] == to)
        .filter_map(|m| m["body"].as_str().map(str::to_owned))
        .collect()
}

/// Waits (bounded) for the sandbox to accept message number `n` (from 1) to `to`; returns the
/// code in it.
async fn nth_code(outbox: &Path, to: &str, n: usize) -> String {
    let deadline = Instant::now() + STATUS_DEADLINE;
    loop {
        let bodies = outbox_bodies(outbox, to);
        if let Some(body) = bodies.get(n - 1) {
            let code: String = body
                .strip_prefix("Your Rampart code is ")
                .map(|rest| rest.chars().take_while(char::is_ascii_digit).collect())
                .unwrap_or_default();
            assert_eq!(code.len(), 6, "{body}");
            return code;
        }
        assert!(
            Instant::now() < deadline,
            "no message {n} to {to}: {bodies:?}"
        );
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// The code an authenticator app shows `offset_steps` steps from now.
fn app_code(secret: &str, offset_steps: i64) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let at = now.checked_add_signed(offset_steps * 30).unwrap();
    Builder::new()
        .with_algorithm(Algorithm::SHA1)
        .with_digits(6)
        .with_step_duration(30)
        .with_secret(Secret::try_from_base32(secret).unwrap())
        .build()
        .unwrap()
        .generate(at)
        .to_string()
}

/// A sign-in waiting for its second factor: the pending cookie and the factors offered.
struct Pending {
    cookie: String,
    factors: Vec<String>,
}

async fn login_pending(app: &TestApp, email: &str) -> Pending {
    let reply = app.login(email, PASSWORD).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let body = reply.json();
    assert_eq!(body["status"], "second_factor_required", "{body}");
    let cookie = set_cookie(&reply, "__Host-rampart_sign_in")
        .expect("a sign-in cookie")
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let factors = body["factors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap().to_owned())
        .collect();
    Pending { cookie, factors }
}

/// `POST /v1/auth/login/{step}` with the pending cookie.
async fn second_step(app: &TestApp, pending: &Pending, step: &str, body: Option<Value>) -> Reply {
    let body = body.map(|b| (Some("application/json"), serde_json::to_vec(&b).unwrap()));
    app.request(
        Method::POST,
        &format!("/v1/auth/login/{step}"),
        "",
        body,
        &[("cookie", pending.cookie.as_str())],
    )
    .await
}

/// The session a completed sign-in answered with.
fn session_of(reply: &Reply) -> Session {
    assert_eq!(reply.status, 200, "{}", reply.text);
    let body = reply.json();
    assert_eq!(body["status"], "signed_in", "{body}");
    Session {
        cookie: set_cookie(reply, "__Host-rampart_session")
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_owned(),
        csrf: body["csrf_token"].as_str().unwrap().to_owned(),
    }
}

/// Enrols and confirms an authenticator app; returns its secret and the recovery codes.
async fn enrol_totp(app: &TestApp, session: &Session) -> (String, Vec<String>) {
    let started = app.post_as(session, "/v1/users/me/totp", &json!({})).await;
    assert_eq!(started.status, 201, "{}", started.text);
    let started = started.json();
    let secret = started["secret"].as_str().unwrap().to_owned();
    assert!(
        started["provisioning_uri"]
            .as_str()
            .unwrap()
            .starts_with("otpauth://totp/Rampart:"),
        "{started}"
    );
    assert!(
        started["qr_png_base64"]
            .as_str()
            .unwrap()
            .starts_with("iVBORw0KGgo")
    );
    let id = started["factor_id"].as_str().unwrap();
    let confirmed = app
        .post_as(
            session,
            &format!("/v1/users/me/totp/{id}/confirm"),
            &json!({"code": app_code(&secret, 0)}),
        )
        .await;
    assert_eq!(confirmed.status, 200, "{}", confirmed.text);
    let codes = confirmed.json()["recovery_codes"]
        .as_array()
        .map(|codes| {
            codes
                .iter()
                .map(|c| c.as_str().unwrap().to_owned())
                .collect()
        })
        .unwrap_or_default();
    (secret, codes)
}

/// Verifies `NORMAL_NUMBER` as the person's phone with the code from the outbox.
async fn verify_phone(app: &TestApp, session: &Session, outbox: &Path) {
    let before = outbox_bodies(outbox, NORMAL_NUMBER).len();
    let sent = app
        .post_as(
            session,
            "/v1/users/me/phone",
            &json!({"phone": NORMAL_NUMBER}),
        )
        .await;
    assert_eq!(sent.status, 202, "{}", sent.text);
    let code = nth_code(outbox, NORMAL_NUMBER, before + 1).await;
    let verified = app
        .post_as(session, "/v1/users/me/phone/verify", &json!({"code": code}))
        .await;
    assert_eq!(verified.status, 200, "{}", verified.text);
}

/// `PUT /v1/accounts/{id}/security` with the test's API key.
async fn set_rules(app: &TestApp, account: &str, rules: &Value) -> Reply {
    app.request(
        Method::PUT,
        &format!("/v1/accounts/{account}/security"),
        &app.key,
        Some((Some("application/json"), serde_json::to_vec(rules).unwrap())),
        &[],
    )
    .await
}

async fn account_of(app: &TestApp, session: &Session) -> String {
    let current = app.get_as(session, "/v1/auth/session").await;
    assert_eq!(current.status, 200, "{}", current.text);
    current.json()["account_id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_person_enrols_an_authenticator_app_and_each_code_signs_in_once() {
    let (app, _outbox, _dir) = spawn_with_outbox();
    app.create_person(EMAIL, "owner", None);
    let session = app.sign_in(EMAIL, PASSWORD).await;
    let (secret, codes) = enrol_totp(&app, &session).await;
    assert_eq!(
        codes.len(),
        10,
        "the first factor comes with recovery codes"
    );

    let listed = app.get_as(&session, "/v1/users/me/factors").await;
    assert_eq!(listed.status, 200, "{}", listed.text);
    assert!(!listed.text.contains(&secret), "a secret is never listed");
    let listed = listed.json();
    assert_eq!(listed["data"][0]["kind"], "totp", "{listed}");
    assert!(listed["data"][0]["confirmed_at"].is_string(), "{listed}");
    assert_eq!(listed["recovery_codes_left"], 10, "{listed}");
    assert_eq!(listed["phone_verified"], false, "{listed}");

    let pending = login_pending(&app, EMAIL).await;
    assert!(
        pending.factors.contains(&"totp".to_owned()),
        "{:?}",
        pending.factors
    );
    // The next step's code: the enrolment used this step's.
    let code = app_code(&secret, 1);
    let signed_in =
        session_of(&second_step(&app, &pending, "totp", Some(json!({"code": code}))).await);
    let messages = app.get_as(&signed_in, "/v1/messages").await;
    assert_eq!(messages.status, 200, "{}", messages.text);

    let again = login_pending(&app, EMAIL).await;
    second_step(&app, &again, "totp", Some(json!({"code": code})))
        .await
        .assert_problem(401, "invalid_credentials");
}

#[tokio::test]
async fn a_person_verifies_a_phone_and_signs_in_with_a_code_sent_by_sms() {
    let (app, outbox, _dir) = spawn_with_outbox();
    app.create_person(EMAIL, "owner", None);
    let session = app.sign_in(EMAIL, PASSWORD).await;
    verify_phone(&app, &session, &outbox).await;
    let listed = app.get_as(&session, "/v1/users/me/factors").await.json();
    assert_eq!(listed["phone_verified"], true, "{listed}");
    assert!(!listed.to_string().contains(NORMAL_NUMBER), "{listed}");

    let pending = login_pending(&app, EMAIL).await;
    assert!(
        pending.factors.contains(&"sms".to_owned()),
        "{:?}",
        pending.factors
    );
    let sent = second_step(&app, &pending, "sms/send", None).await;
    assert_eq!(sent.status, 202, "{}", sent.text);
    let code = nth_code(&outbox, NORMAL_NUMBER, 2).await;
    let signed_in =
        session_of(&second_step(&app, &pending, "sms", Some(json!({"code": code}))).await);
    let me = app.get_as(&signed_in, "/v1/auth/session").await;
    assert_eq!(me.status, 200, "{}", me.text);
}

#[tokio::test]
async fn a_recovery_code_signs_in_once() {
    let (app, _outbox, _dir) = spawn_with_outbox();
    app.create_person(EMAIL, "owner", None);
    let session = app.sign_in(EMAIL, PASSWORD).await;
    let (_, codes) = enrol_totp(&app, &session).await;

    let pending = login_pending(&app, EMAIL).await;
    assert!(pending.factors.contains(&"recovery_code".to_owned()));
    session_of(&second_step(&app, &pending, "recovery", Some(json!({"code": codes[0]}))).await);
    let again = login_pending(&app, EMAIL).await;
    second_step(&app, &again, "recovery", Some(json!({"code": codes[0]})))
        .await
        .assert_problem(401, "invalid_credentials");
}

#[tokio::test]
async fn three_wrong_codes_end_the_pending_sign_in() {
    let (app, _outbox, _dir) = spawn_with_outbox();
    app.create_person(EMAIL, "owner", None);
    let session = app.sign_in(EMAIL, PASSWORD).await;
    let (secret, _) = enrol_totp(&app, &session).await;

    let pending = login_pending(&app, EMAIL).await;
    for wrong in ["000000", "111111", "222222"] {
        second_step(&app, &pending, "totp", Some(json!({"code": wrong})))
            .await
            .assert_problem(401, "invalid_credentials");
    }
    // Even the right code: the person starts again with their password.
    second_step(
        &app,
        &pending,
        "totp",
        Some(json!({"code": app_code(&secret, 1)})),
    )
    .await
    .assert_problem(401, "invalid_credentials");
    let fresh = login_pending(&app, EMAIL).await;
    session_of(
        &second_step(
            &app,
            &fresh,
            "totp",
            Some(json!({"code": app_code(&secret, 1)})),
        )
        .await,
    );
}

#[tokio::test]
async fn an_account_requiring_two_factors_holds_an_unenrolled_member_to_their_own_routes() {
    let (app, _outbox, _dir) = spawn_with_outbox();
    app.create_person(EMAIL, "developer", None);
    let session = app.sign_in(EMAIL, PASSWORD).await;
    let account = account_of(&app, &session).await;
    let rules = json!({"require_2fa": true, "allow_sms_factor": true,
        "password_max_age_days": null, "password_history": 0});
    let set = set_rules(&app, &account, &rules).await;
    assert_eq!(set.status, 200, "{}", set.text);
    let read = app
        .get(
            &format!("/v1/accounts/{account}/security"),
            &app.operator_key(),
        )
        .await;
    assert_eq!(read.json()["require_2fa"], true, "{}", read.text);
    app.get("/v1/accounts/acc_not_ours/security", &app.key)
        .await
        .assert_problem(404, "not_found");

    let held = app.sign_in(EMAIL, PASSWORD).await;
    app.get_as(&held, "/v1/messages")
        .await
        .assert_problem(403, "insufficient_scope");
    let me = app.get_as(&held, "/v1/auth/session").await.json();
    assert_eq!(me["permissions"], json!([]), "{me}");
    // Their own routes still answer: they enrol, and their next session may work.
    let (secret, _) = enrol_totp(&app, &held).await;
    let pending = login_pending(&app, EMAIL).await;
    let enrolled = session_of(
        &second_step(
            &app,
            &pending,
            "totp",
            Some(json!({"code": app_code(&secret, 1)})),
        )
        .await,
    );
    let messages = app.get_as(&enrolled, "/v1/messages").await;
    assert_eq!(messages.status, 200, "{}", messages.text);

    // The last factor stays while the account requires one.
    let factor = app.get_as(&enrolled, "/v1/users/me/factors").await.json()["data"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.as_person(
        &enrolled,
        Method::DELETE,
        &format!("/v1/users/me/factors/{factor}"),
        None,
        true,
    )
    .await
    .assert_problem(409, "factor_required");
}

#[tokio::test]
async fn an_account_forbidding_sms_refuses_the_sms_factor() {
    let (app, outbox, _dir) = spawn_with_outbox();
    app.create_person(EMAIL, "owner", None);
    let session = app.sign_in(EMAIL, PASSWORD).await;
    let account = account_of(&app, &session).await;
    enrol_totp(&app, &session).await;
    verify_phone(&app, &session, &outbox).await;
    let rules = json!({"require_2fa": false, "allow_sms_factor": false,
        "password_max_age_days": null, "password_history": 0});
    assert_eq!(set_rules(&app, &account, &rules).await.status, 200);

    let pending = login_pending(&app, EMAIL).await;
    assert!(
        !pending.factors.contains(&"sms".to_owned()),
        "{:?}",
        pending.factors
    );
    second_step(&app, &pending, "sms/send", None)
        .await
        .assert_problem(403, "factor_not_allowed");
    second_step(&app, &pending, "sms", Some(json!({"code": "123456"})))
        .await
        .assert_problem(403, "factor_not_allowed");
    // Out-of-range rules are refused.
    let wrong = json!({"require_2fa": false, "allow_sms_factor": false,
        "password_max_age_days": 0, "password_history": 0});
    set_rules(&app, &account, &wrong)
        .await
        .assert_problem(422, "invalid_password_max_age_days");
}
