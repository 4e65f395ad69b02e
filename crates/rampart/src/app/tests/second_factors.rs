//! Signing in and second factors on a hand-driven clock: TOTP accepted once and only near its
//! time, SMS codes that expire and work once, recovery codes used up, step-up asking for a
//! code, the lock after 100 failures, rising delays, and one answer for every refusal.

use secrecy::SecretString;
use totp_rs::{Algorithm, Builder, Secret};

use super::*;
use crate::app::people::NewUser;
use crate::app::sessions::Client;
use crate::app::sign_in::SignIn;
use crate::clock::Clock as _;
use crate::data::sealing::Field;
use crate::identity::roles::Role;
use crate::store::messages::ListFilter;
use crate::store::people::PeoplePolicyRecord;

const PASSWORD: &str = "correct horse battery staple lantern";
const EMAIL: &str = "ada@example.com";

async fn make_person(bench: &Bench, email: &str) -> String {
    bench
        .app
        .create_user(
            &bench.operator(),
            NewUser {
                email: email.into(),
                name: "Ada".into(),
                password: Some(PASSWORD.into()),
                role: Role::Owner,
                account: Some(bench.account.clone()),
            },
        )
        .await
        .unwrap()
        .user
        .id
}

async fn sign_in(bench: &Bench, email: &str, password: &str) -> Result<SignIn, AppError> {
    bench
        .app
        .sign_in(email, SecretString::from(password), &Client::default())
        .await
}

/// A signed-in person's caller, as a request with their cookie and CSRF token would get.
async fn session(bench: &Bench, email: &str) -> Caller {
    let SignIn::Done(new) = sign_in(bench, email, PASSWORD).await.unwrap() else {
        panic!("a second factor was asked for");
    };
    bench
        .app
        .authenticate_session(new.token.reveal(), Some(&new.csrf_token), true, None, None)
        .unwrap()
}

/// The pending token of a sign-in waiting for its second factor.
async fn pending(bench: &Bench, email: &str) -> String {
    match sign_in(bench, email, PASSWORD).await.unwrap() {
        SignIn::SecondFactor { pending, .. } => pending.reveal().to_owned(),
        SignIn::Done(_) => panic!("no second factor was asked for"),
    }
}

/// The code an authenticator app shows at `at` for a base32 secret.
fn app_code(secret: &str, at: Millis) -> String {
    Builder::new()
        .with_algorithm(Algorithm::SHA1)
        .with_digits(6)
        .with_step_duration(30)
        .with_secret(Secret::try_from_base32(secret).unwrap())
        .build()
        .unwrap()
        .generate(u64::try_from(at / 1000).unwrap())
        .to_string()
}

/// Enrols and confirms an authenticator app; returns its secret and the recovery codes.
async fn enrol_totp(bench: &Bench, caller: &Caller) -> (String, Vec<String>) {
    let enrolment = bench.app.start_totp_enrolment(caller).await.unwrap();
    let secret = enrolment.secret_base32.to_string();
    let code = app_code(&secret, bench.clock.now_ms());
    let confirmed = bench
        .app
        .confirm_totp(caller, &enrolment.factor_id, &code)
        .await
        .unwrap();
    (secret, confirmed.recovery_codes.unwrap_or_default())
}

/// The body of the newest notice Rampart queued, opened as `get_message` opens a message.
fn last_notice(bench: &Bench) -> Option<String> {
    let filter = ListFilter {
        limit: 1,
        ..ListFilter::default()
    };
    let newest = bench
        .app
        .store
        .read(|tx| tx.list_messages("", &filter))
        .unwrap()
        .into_iter()
        .next()?;
    Some(
        bench
            .app
            .sealer
            .open_string(Field::MessageBody, "", &newest.id, &newest.body_sealed)
            .unwrap(),
    )
}

/// The six-digit code in the newest notice.
fn last_code(bench: &Bench) -> String {
    let body = last_notice(bench).expect("a notice was queued");
    let code: String = body
        .split_once(" is ")
        .map(|(_, rest)| rest.chars().take_while(char::is_ascii_digit).collect())
        .unwrap_or_default();
    assert_eq!(code.len(), 6, "{body}");
    assert_eq!(
        body,
        format!("Your Rampart code is {code}. It expires in 5 minutes.")
    );
    code
}

fn assert_refused<T: std::fmt::Debug>(result: Result<T, AppError>, what: &str) {
    assert!(
        matches!(result, Err(AppError::SignInRefused)),
        "{what}: {result:?}"
    );
}

async fn verified_phone(bench: &Bench, caller: &Caller) {
    bench
        .app
        .start_phone_verification(caller, NUMBER)
        .await
        .unwrap();
    let code = last_code(bench);
    bench.app.verify_phone(caller, &code).await.unwrap();
}

#[tokio::test]
async fn a_totp_code_is_accepted_once_and_its_replay_is_refused() {
    let bench = Bench::new().await;
    make_person(&bench, EMAIL).await;
    let caller = session(&bench, EMAIL).await;
    let (secret, codes) = enrol_totp(&bench, &caller).await;
    assert_eq!(
        codes.len(),
        10,
        "the first factor comes with recovery codes"
    );

    // The code that confirmed the app cannot sign in.
    let confirmed_with = app_code(&secret, bench.clock.now_ms());
    let token = pending(&bench, EMAIL).await;
    assert_refused(
        bench
            .app
            .sign_in_with_totp(&token, &confirmed_with, &Client::default())
            .await,
        "the enrolment code replayed",
    );

    bench.clock.advance(30_000);
    let code = app_code(&secret, bench.clock.now_ms());
    let new = bench
        .app
        .sign_in_with_totp(&token, &code, &Client::default())
        .await
        .unwrap();
    assert_eq!(new.user.email, EMAIL);

    let again = pending(&bench, EMAIL).await;
    assert_refused(
        bench
            .app
            .sign_in_with_totp(&again, &code, &Client::default())
            .await,
        "a code replayed in its own time step",
    );
}

#[tokio::test]
async fn a_totp_code_two_steps_old_is_refused_and_one_step_old_is_accepted() {
    let bench = Bench::new().await;
    make_person(&bench, EMAIL).await;
    let caller = session(&bench, EMAIL).await;
    let (secret, _) = enrol_totp(&bench, &caller).await;
    bench.clock.advance(120_000);
    let now = bench.clock.now_ms();

    let token = pending(&bench, EMAIL).await;
    assert_refused(
        bench
            .app
            .sign_in_with_totp(&token, &app_code(&secret, now - 60_000), &Client::default())
            .await,
        "two steps old",
    );
    bench
        .app
        .sign_in_with_totp(&token, &app_code(&secret, now - 30_000), &Client::default())
        .await
        .unwrap();
}

#[tokio::test]
async fn a_phone_code_expires_after_five_minutes_and_works_once() {
    let bench = Bench::new().await;
    make_person(&bench, EMAIL).await;
    let caller = session(&bench, EMAIL).await;

    bench
        .app
        .start_phone_verification(&caller, NUMBER)
        .await
        .unwrap();
    let late = last_code(&bench);
    bench.clock.advance(5 * 60 * 1000);
    let expired = bench.app.verify_phone(&caller, &late).await;
    assert!(
        matches!(
            expired,
            Err(AppError::Invalid {
                code: "invalid_code",
                ..
            })
        ),
        "{expired:?}"
    );

    // A fresh code (the step-up is renewed: five minutes passed).
    let caller = session(&bench, EMAIL).await;
    bench
        .app
        .start_phone_verification(&caller, NUMBER)
        .await
        .unwrap();
    let code = last_code(&bench);
    bench.clock.advance(5 * 60 * 1000 - 1);
    let verified = bench.app.verify_phone(&caller, &code).await.unwrap();
    assert_eq!(verified.recovery_codes.map(|c| c.len()), Some(10));
    let twice = bench.app.verify_phone(&caller, &code).await;
    assert!(twice.is_err(), "a code works once: {twice:?}");
    let overview = bench.app.list_own_factors(&caller).unwrap();
    let masked = overview.phone.unwrap();
    assert!(
        masked.contains('*') && !masked.contains("123456"),
        "{masked}"
    );
}

#[tokio::test]
async fn a_phone_code_dies_after_three_wrong_attempts() {
    let bench = Bench::new().await;
    make_person(&bench, EMAIL).await;
    let caller = session(&bench, EMAIL).await;
    bench
        .app
        .start_phone_verification(&caller, NUMBER)
        .await
        .unwrap();
    let code = last_code(&bench);
    let wrong = if code == "000000" { "111111" } else { "000000" };
    for _ in 0..3 {
        assert!(bench.app.verify_phone(&caller, wrong).await.is_err());
    }
    assert!(
        bench.app.verify_phone(&caller, &code).await.is_err(),
        "the right code after three wrong ones"
    );
}

#[tokio::test]
async fn an_sms_sign_in_code_works_once_and_a_resend_replaces_it() {
    let bench = Bench::new().await;
    make_person(&bench, EMAIL).await;
    let caller = session(&bench, EMAIL).await;
    verified_phone(&bench, &caller).await;

    let token = pending(&bench, EMAIL).await;
    bench.app.send_sign_in_code(&token).await.unwrap();
    let first = last_code(&bench);
    let quick = bench.app.send_sign_in_code(&token).await;
    assert!(
        matches!(quick, Err(AppError::Throttled { .. })),
        "{quick:?}"
    );
    bench.clock.advance(30_000);
    bench.app.send_sign_in_code(&token).await.unwrap();
    let second = last_code(&bench);
    if first != second {
        assert_refused(
            bench
                .app
                .sign_in_with_sms(&token, &first, &Client::default())
                .await,
            "the replaced code",
        );
    }
    bench
        .app
        .sign_in_with_sms(&token, &second, &Client::default())
        .await
        .unwrap();

    let again = pending(&bench, EMAIL).await;
    assert_refused(
        bench
            .app
            .sign_in_with_sms(&again, &second, &Client::default())
            .await,
        "a used code",
    );
}

#[tokio::test]
async fn a_recovery_code_works_once() {
    let bench = Bench::new().await;
    make_person(&bench, EMAIL).await;
    let caller = session(&bench, EMAIL).await;
    let (_, codes) = enrol_totp(&bench, &caller).await;

    let token = pending(&bench, EMAIL).await;
    bench
        .app
        .sign_in_with_recovery_code(&token, &codes[0], &Client::default())
        .await
        .unwrap();
    let token = pending(&bench, EMAIL).await;
    assert_refused(
        bench
            .app
            .sign_in_with_recovery_code(&token, &codes[0], &Client::default())
            .await,
        "a used recovery code",
    );
    // Typed loosely, another code still works.
    bench
        .app
        .sign_in_with_recovery_code(&token, &codes[1].to_uppercase(), &Client::default())
        .await
        .unwrap();
    let left = bench
        .app
        .list_own_factors(&caller)
        .unwrap()
        .recovery_codes_left;
    assert_eq!(left, 8);
}

#[tokio::test]
async fn step_up_asks_a_person_with_an_authenticator_app_for_a_code() {
    let bench = Bench::new().await;
    make_person(&bench, EMAIL).await;
    let caller = session(&bench, EMAIL).await;
    let (secret, codes) = enrol_totp(&bench, &caller).await;
    let password = || SecretString::from(PASSWORD);
    let client = Client::default();

    assert_refused(
        bench
            .app
            .reauthenticate(&caller, password(), None, &client)
            .await,
        "without a code",
    );
    assert_refused(
        bench
            .app
            .reauthenticate(&caller, password(), Some("000000"), &client)
            .await,
        "with a wrong code",
    );
    bench.clock.advance(30_000);
    let code = app_code(&secret, bench.clock.now_ms());
    bench
        .app
        .reauthenticate(&caller, password(), Some(&code), &client)
        .await
        .unwrap();
    bench
        .app
        .reauthenticate(&caller, password(), Some(&codes[0]), &client)
        .await
        .unwrap();
}

#[tokio::test]
async fn the_last_factor_stays_while_an_account_requires_two_factors() {
    let bench = Bench::new().await;
    make_person(&bench, EMAIL).await;
    let caller = session(&bench, EMAIL).await;
    let (_, _) = enrol_totp(&bench, &caller).await;
    bench
        .app
        .set_people_policy(
            &bench.operator(),
            &bench.account,
            PeoplePolicyRecord {
                require_2fa: true,
                allow_sms_factor: true,
                password_max_age_days: None,
                password_history: 0,
            },
        )
        .await
        .unwrap();
    let factor = bench.app.list_own_factors(&caller).unwrap().factors[0]
        .id
        .clone();
    let refused = bench.app.remove_factor(&caller, &factor).await;
    assert!(
        matches!(
            refused,
            Err(AppError::Conflict {
                code: "factor_required",
                ..
            })
        ),
        "{refused:?}"
    );

    // With a verified phone (SMS allowed) the app may go.
    verified_phone(&bench, &caller).await;
    bench.app.remove_factor(&caller, &factor).await.unwrap();
    let refused = bench.app.remove_phone(&caller).await;
    assert!(
        matches!(
            refused,
            Err(AppError::Conflict {
                code: "factor_required",
                ..
            })
        ),
        "{refused:?}"
    );
}

#[tokio::test]
async fn a_hundred_failures_in_a_row_lock_the_user_until_a_password_reset() {
    let bench = Bench::new().await;
    let user_id = make_person(&bench, EMAIL).await;
    for attempt in 0..100 {
        // Past the longest delay, so every attempt is heard.
        bench.clock.advance(61_000);
        let failed = sign_in(&bench, EMAIL, "not the right passphrase").await;
        assert!(
            matches!(failed, Err(AppError::SignInRefused)),
            "attempt {attempt}: {failed:?}"
        );
    }
    let user = bench
        .app
        .store
        .read(|tx| tx.get_user(&user_id))
        .unwrap()
        .unwrap();
    assert!(user.locked_at.is_some(), "the lock is durable");
    bench.clock.advance(61_000);
    assert_refused(
        sign_in(&bench, EMAIL, PASSWORD).await,
        "the right password on a locked user",
    );

    let token = bench
        .app
        .request_password_reset(EMAIL, &Client::default())
        .await
        .unwrap()
        .unwrap();
    let new = "a brand new passphrase for the winter";
    bench
        .app
        .complete_password_reset(token.reveal(), new, &Client::default())
        .await
        .unwrap();
    bench.clock.advance(61_000);
    assert!(matches!(
        sign_in(&bench, EMAIL, new).await,
        Ok(SignIn::Done(_))
    ));
}

#[tokio::test]
async fn failed_sign_ins_wait_longer_and_longer() {
    let bench = Bench::new().await;
    make_person(&bench, EMAIL).await;
    let mut waits = Vec::new();
    for _ in 0..12 {
        match sign_in(&bench, EMAIL, "not the right passphrase").await {
            Err(AppError::SignInRefused) => {}
            Err(AppError::Throttled { retry_after_ms }) => {
                waits.push(retry_after_ms);
                bench.clock.advance(retry_after_ms);
            }
            other => panic!("{other:?}"),
        }
    }
    assert!(waits.len() >= 3, "{waits:?}");
    assert!(waits.windows(2).all(|w| w[1] > w[0]), "{waits:?}");
}

#[tokio::test]
async fn unknown_and_known_emails_get_the_same_refusal() {
    let bench = Bench::new().await;
    make_person(&bench, EMAIL).await;
    let known = sign_in(&bench, EMAIL, "not the right passphrase")
        .await
        .unwrap_err();
    let unknown = sign_in(&bench, "nobody@example.com", PASSWORD)
        .await
        .unwrap_err();
    assert!(matches!(known, AppError::SignInRefused), "{known:?}");
    assert!(matches!(unknown, AppError::SignInRefused), "{unknown:?}");
    assert_eq!(known.to_string(), unknown.to_string());
}

#[tokio::test]
async fn a_reset_code_goes_by_sms_only_to_a_verified_phone() {
    let bench = Bench::new().await;
    make_person(&bench, EMAIL).await;
    make_person(&bench, "grace@example.com").await;
    let client = Client::default();

    bench
        .app
        .send_password_reset("grace@example.com", &client)
        .await
        .unwrap();
    assert_eq!(last_notice(&bench), None, "no phone, nothing sent");

    let caller = session(&bench, EMAIL).await;
    verified_phone(&bench, &caller).await;
    bench.app.send_password_reset(EMAIL, &client).await.unwrap();
    let body = last_notice(&bench).unwrap();
    let token = body
        .strip_prefix("Your Rampart password reset code: ")
        .and_then(|rest| rest.strip_suffix(" (valid 1 hour)"))
        .unwrap_or_else(|| panic!("{body}"));
    assert!(token.starts_with("rr_"), "{body}");
    bench
        .app
        .complete_password_reset(
            token,
            "a brand new passphrase for the winter",
            &Client::default(),
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn a_phone_counts_as_a_factor_only_where_sms_is_allowed() {
    let bench = Bench::new().await;
    make_person(&bench, EMAIL).await;
    let caller = session(&bench, EMAIL).await;
    verified_phone(&bench, &caller).await;
    let rules = |allow_sms_factor| PeoplePolicyRecord {
        require_2fa: true,
        allow_sms_factor,
        password_max_age_days: None,
        password_history: 0,
    };

    bench
        .app
        .set_people_policy(&bench.operator(), &bench.account, rules(true))
        .await
        .unwrap();
    let SignIn::SecondFactor { pending, .. } = sign_in(&bench, EMAIL, PASSWORD).await.unwrap()
    else {
        panic!("the phone is a second factor");
    };
    bench.app.send_sign_in_code(pending.reveal()).await.unwrap();
    let new = bench
        .app
        .sign_in_with_sms(pending.reveal(), &last_code(&bench), &Client::default())
        .await
        .unwrap();
    let allowed = bench
        .app
        .authenticate_session(new.token.reveal(), None, false, None, None)
        .unwrap();
    assert!(!allowed.scopes.names().is_empty(), "SMS allowed: not held");

    bench
        .app
        .set_people_policy(&bench.operator(), &bench.account, rules(false))
        .await
        .unwrap();
    let held = session(&bench, EMAIL).await;
    assert!(
        held.scopes.names().is_empty(),
        "SMS forbidden: the phone does not count, so the person must enrol another factor"
    );
}
