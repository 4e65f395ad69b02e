//! People's sessions on a manual clock: idle and absolute timeouts, the step-up window, the
//! lock after 100 failures, and stronger hashing settings taking effect at the next sign-in.

use secrecy::SecretString;

use super::*;
use crate::app::people::NewUser;
use crate::app::sessions::{Client, NewSession};
use crate::app::sign_in::SignIn;
use crate::identity::roles::Role;

const PASSWORD: &str = "correct horse battery staple lantern";

async fn person(bench: &Bench, email: &str) -> String {
    bench
        .app
        .create_user(
            &Caller::operator(String::new()),
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

async fn sign_in(bench: &Bench, email: &str, password: &str) -> Result<NewSession, AppError> {
    match bench
        .app
        .sign_in(email, SecretString::from(password), &Client::default())
        .await?
    {
        SignIn::Done(session) => Ok(*session),
        SignIn::SecondFactor { .. } => panic!("no second factor was enrolled"),
    }
}

fn caller(bench: &Bench, session: &NewSession) -> Result<Caller, AppError> {
    bench
        .app
        .authenticate_session(session.token.reveal(), None, false, None, None)
}

#[tokio::test]
async fn a_session_ends_after_thirty_idle_minutes_and_twelve_hours_whatever_the_activity() {
    let bench = Bench::new().await;
    person(&bench, "ada@example.com").await;
    let idle = sign_in(&bench, "ada@example.com", PASSWORD).await.unwrap();
    bench.clock.advance(29 * 60_000);
    assert!(caller(&bench, &idle).is_ok());
    bench.clock.advance(31 * 60_000);
    assert_unauthenticated(
        caller(&bench, &idle),
        "idle for 31 minutes since the last use",
    );

    let busy = sign_in(&bench, "ada@example.com", PASSWORD).await.unwrap();
    let step = 20 * 60_000;
    let mut elapsed = 0;
    while elapsed + step < 12 * 3_600_000 {
        bench.clock.advance(step);
        elapsed += step;
        assert!(caller(&bench, &busy).is_ok(), "in use after {elapsed} ms");
        // The last-seen time is written in the background: a later write in the same lane
        // lands after it.
        bench
            .app
            .store
            .write_background(|_| Ok::<_, crate::store::StoreError>(()))
            .await
            .unwrap();
    }
    bench.clock.advance(step);
    assert_unauthenticated(caller(&bench, &busy), "past the absolute end");
}

#[tokio::test]
async fn sensitive_changes_need_a_sign_in_within_ten_minutes() {
    let bench = Bench::new().await;
    person(&bench, "ada@example.com").await;
    let session = sign_in(&bench, "ada@example.com", PASSWORD).await.unwrap();
    let new_key = || NewApiKey {
        name: "k".into(),
        scopes: vec!["messages:send".into()],
        expires_at: None,
        allowed_ips: Vec::new(),
        client_cert_sha256: None,
    };
    let fresh = caller(&bench, &session).unwrap();
    let made = bench.app.issue_api_key(&fresh, new_key()).await.unwrap();
    assert_eq!(made.key.expires_at, Some(session.session.expires_at));
    bench.clock.advance(11 * 60_000);
    let stale = caller(&bench, &session).unwrap();
    match bench.app.issue_api_key(&stale, new_key()).await {
        Err(AppError::Forbidden { code, .. }) => assert_eq!(code, "reauthentication_required"),
        other => panic!("{other:?}"),
    }
    bench
        .app
        .reauthenticate(
            &stale,
            SecretString::from(PASSWORD),
            None,
            &Client::default(),
        )
        .await
        .unwrap();
    let confirmed = caller(&bench, &session).unwrap();
    bench
        .app
        .issue_api_key(&confirmed, new_key())
        .await
        .unwrap();
}

#[tokio::test]
async fn a_hundred_failures_in_a_row_lock_a_person_until_a_reset() {
    let bench = Bench::new().await;
    let id = person(&bench, "ada@example.com").await;
    for attempt in 0..100 {
        // Past every delay: only the count matters here.
        bench.clock.advance(61_000);
        let outcome = sign_in(&bench, "ada@example.com", "not the passphrase at all").await;
        assert!(
            matches!(outcome, Err(AppError::SignInRefused)),
            "attempt {attempt}: {outcome:?}"
        );
    }
    bench.clock.advance(61_000);
    assert!(matches!(
        sign_in(&bench, "ada@example.com", PASSWORD).await,
        Err(AppError::SignInRefused)
    ));
    let user = bench
        .app
        .store
        .read(|tx| tx.get_user(&id))
        .unwrap()
        .unwrap();
    assert!(user.locked_at.is_some());
    let token = bench
        .app
        .request_password_reset("ada@example.com", &Client::default())
        .await
        .unwrap()
        .unwrap();
    let new = "a fresh passphrase after the lock";
    bench
        .app
        .complete_password_reset(token.reveal(), new, &Client::default())
        .await
        .unwrap();
    bench.clock.advance(61_000);
    sign_in(&bench, "ada@example.com", new).await.unwrap();
}

#[tokio::test]
async fn delays_rise_with_failures_and_known_and_unknown_emails_answer_alike() {
    let bench = Bench::new().await;
    person(&bench, "ada@example.com").await;
    let mut waits = Vec::new();
    for _ in 0..12 {
        match sign_in(&bench, "ada@example.com", "wrong passphrase again").await {
            Err(AppError::SignInRefused) => {}
            Err(AppError::Throttled { retry_after_ms }) => {
                waits.push(retry_after_ms);
                bench.clock.advance(retry_after_ms);
            }
            other => panic!("{other:?}"),
        }
    }
    assert!(waits.len() >= 4, "{waits:?}");
    assert!(waits.windows(2).all(|w| w[0] < w[1]), "{waits:?}");
    assert!(waits.last().copied().unwrap_or(0) >= 4_000, "{waits:?}");
    let unknown = sign_in(&bench, "nobody@example.com", PASSWORD).await;
    assert!(
        matches!(unknown, Err(AppError::SignInRefused)),
        "{unknown:?}"
    );
}

#[tokio::test]
async fn stronger_hashing_settings_rehash_a_password_at_the_next_sign_in() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(START);
    let open = |iterations: u32| {
        let mut config = Config {
            data_dir: dir.path().join("data"),
            ..Config::default()
        };
        config.people.argon2_iterations = iterations;
        App::open_with_clock(config, Arc::new(clock.clone())).unwrap()
    };
    let app = open(2);
    let account = app.create_account(&Actor::Operator, "a").await.unwrap().id;
    let created = app
        .create_user(
            &Caller::operator(String::new()),
            NewUser {
                email: "ada@example.com".into(),
                name: "Ada".into(),
                password: Some(PASSWORD.into()),
                role: Role::Owner,
                account: Some(account),
            },
        )
        .await
        .unwrap();
    assert!(created.user.password_hash.unwrap().contains("t=2"));
    app.close();
    drop(app);

    let app = open(3);
    let id = created.user.id.clone();
    let outcome = app
        .sign_in(
            "ada@example.com",
            SecretString::from(PASSWORD),
            &Client::default(),
        )
        .await
        .unwrap();
    assert!(matches!(outcome, SignIn::Done(_)));
    let mut stored = String::new();
    for _ in 0..200 {
        stored = app
            .store
            .read(|tx| tx.get_user(&id))
            .unwrap()
            .unwrap()
            .password_hash
            .unwrap();
        if stored.contains("t=3") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(stored.contains("t=3"), "{stored}");
}

#[tokio::test]
async fn with_rotation_on_an_old_password_confines_a_person_and_a_recent_one_is_not_reused() {
    use crate::store::people::PeoplePolicyRecord;
    let bench = Bench::new().await;
    person(&bench, "ada@example.com").await;
    bench
        .app
        .set_people_policy(
            &bench.operator(),
            &bench.account,
            PeoplePolicyRecord {
                require_2fa: false,
                allow_sms_factor: true,
                password_max_age_days: Some(90),
                password_history: 2,
            },
        )
        .await
        .unwrap();
    let session = sign_in(&bench, "ada@example.com", PASSWORD).await.unwrap();
    assert!(!caller(&bench, &session).unwrap().scopes.is_empty());

    // 91 days on, the person may only look after themselves until they change it.
    bench.clock.advance(91 * 86_400_000);
    let session = sign_in(&bench, "ada@example.com", PASSWORD).await.unwrap();
    let confined = caller(&bench, &session).unwrap();
    assert!(confined.scopes.is_empty(), "{:?}", confined.scopes);
    let second = "the second passphrase of the year";
    bench
        .app
        .change_password(
            &confined,
            SecretString::from(PASSWORD),
            None,
            second,
            &Client::default(),
        )
        .await
        .unwrap();
    assert!(!caller(&bench, &session).unwrap().scopes.is_empty());

    // The last two passwords come back refused; an older one is fine again.
    for reused in [PASSWORD, second] {
        let outcome = bench
            .app
            .change_password(
                &caller(&bench, &session).unwrap(),
                SecretString::from(second),
                None,
                reused,
                &Client::default(),
            )
            .await;
        match outcome {
            Err(AppError::Invalid { code, .. }) => assert_eq!(code, "password_reused"),
            other => panic!("{reused}: {other:?}"),
        }
    }
}

#[tokio::test]
async fn without_rotation_a_password_never_expires() {
    let bench = Bench::new().await;
    person(&bench, "ada@example.com").await;
    bench.clock.advance(3 * 365 * 86_400_000);
    let session = sign_in(&bench, "ada@example.com", PASSWORD).await.unwrap();
    assert!(!caller(&bench, &session).unwrap().scopes.is_empty());
}
