//! Use cases driven on a manual clock over a real data directory: when a key stops opening
//! doors, what a key may hand on, what a send leaves in the audit trail, and the policy gate.

use std::sync::Arc;

use super::api_keys::NewApiKey;
use super::messages::{MessageQuery, SendOutcome, SendRequest};
use super::{Actor, App, AppError, Caller};
use crate::clock::{ManualClock, Millis};
use crate::config::Config;
use crate::identity::ApiKeyToken;
use crate::policy::{AccountSnapshot, Decision, Outgoing, Policy, Violation};

const START: Millis = 1_700_000_000_000;
const NUMBER: &str = "+447911123456";
const OTHER_NUMBER: &str = "+447400123456";
const BODY: &str = "Your code is 918273";

/// An opened data directory on a manual clock, with one account.
struct Bench {
    app: App,
    clock: ManualClock,
    account: String,
    _dir: tempfile::TempDir,
}

impl Bench {
    async fn new() -> Self {
        Self::with(|app| app).await
    }

    async fn with(configure: impl FnOnce(App) -> App) -> Self {
        Self::build(false, configure).await
    }

    /// A bench with the SMS pumping defence on (the others send runs of sequential numbers).
    async fn with_pumping_defence() -> Self {
        Self::build(true, |app| app).await
    }

    async fn build(pumping: bool, configure: impl FnOnce(App) -> App) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::new(START);
        let mut config = Config {
            data_dir: dir.path().join("data"),
            ..Config::default()
        };
        config.pumping.enabled = pumping;
        config.pumping.categories = vec!["otp".into(), "transactional".into(), "marketing".into()];
        let shared = Arc::new(clock.clone());
        let app = App::open_with_clock(config, shared).unwrap();
        let app = configure(app);
        let account = app.create_account(&Actor::Operator, "a").await.unwrap().id;
        Self {
            app,
            clock,
            account,
            _dir: dir,
        }
    }

    fn operator(&self) -> Caller {
        Caller::operator(&self.account)
    }

    async fn issue_key(&self, scopes: &[&str], expires_at: Option<Millis>) -> ApiKeyToken {
        self.app
            .issue_api_key(
                &self.operator(),
                NewApiKey {
                    name: "test key".into(),
                    scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
                    expires_at,
                    allowed_ips: Vec::new(),
                    client_cert_sha256: None,
                },
            )
            .await
            .unwrap()
            .token
    }

    fn authenticate(&self, token: &ApiKeyToken) -> Result<Caller, AppError> {
        self.app.authenticate(Some(token.reveal()), None)
    }
}

fn assert_unauthenticated(result: Result<Caller, AppError>, what: &str) {
    assert!(
        matches!(result, Err(AppError::Unauthenticated)),
        "{what}: {result:?}"
    );
}

#[tokio::test]
async fn a_key_is_refused_once_the_clock_passes_its_expiry() {
    let bench = Bench::new().await;
    let expires_at = START + 60_000;
    let token = bench.issue_key(&["messages:read"], Some(expires_at)).await;

    let caller = bench.authenticate(&token).unwrap();
    assert_eq!(caller.account_id, bench.account);
    assert_eq!(caller.actor, Actor::ApiKey(token.id().to_owned()));
    bench.clock.advance(59_999);
    assert!(bench.authenticate(&token).is_ok(), "valid until its expiry");

    bench.clock.advance(1);
    assert_unauthenticated(bench.authenticate(&token), "at its expiry");
    bench.clock.advance(3_600_000);
    assert_unauthenticated(bench.authenticate(&token), "an hour later");
}

#[tokio::test]
async fn a_key_cannot_be_issued_with_an_expiry_that_has_passed() {
    let bench = Bench::new().await;
    for expires_at in [START - 1, START] {
        let issued = bench
            .app
            .issue_api_key(
                &bench.operator(),
                NewApiKey {
                    name: "stale".into(),
                    scopes: vec!["messages:read".into()],
                    expires_at: Some(expires_at),
                    allowed_ips: Vec::new(),
                    client_cert_sha256: None,
                },
            )
            .await;
        assert!(
            matches!(
                issued,
                Err(AppError::Invalid {
                    code: "invalid_expires_at",
                    ..
                })
            ),
            "expires_at {expires_at}: {issued:?}"
        );
    }
}

#[tokio::test]
async fn a_revoked_key_is_refused_on_its_next_authentication() {
    let bench = Bench::new().await;
    let token = bench.issue_key(&["messages:read"], None).await;
    let other = bench.issue_key(&["messages:read"], None).await;
    assert!(bench.authenticate(&token).is_ok());
    assert!(bench.authenticate(&other).is_ok());

    bench
        .app
        .revoke_api_key(&bench.operator(), token.id())
        .await
        .unwrap();

    assert_unauthenticated(bench.authenticate(&token), "the revoked key");
    assert!(
        bench.authenticate(&other).is_ok(),
        "other keys keep working"
    );
    let again = bench
        .app
        .revoke_api_key(&bench.operator(), token.id())
        .await;
    assert!(
        matches!(again, Err(AppError::NotFound(_))),
        "a key is revoked once: {again:?}"
    );
    let audit = bench.app.audit_trail(Some(&bench.account), 10).unwrap();
    let revocations: Vec<_> = audit
        .iter()
        .filter(|e| e.action == "api_key.revoke")
        .collect();
    assert_eq!(revocations.len(), 1, "{audit:?}");
    assert_eq!(revocations[0].target, token.id());
}

#[tokio::test]
async fn a_key_cannot_grant_scopes_it_does_not_hold_and_the_denial_is_audited() {
    let bench = Bench::new().await;
    let token = bench
        .issue_key(&["keys:manage", "messages:read"], None)
        .await;
    let manager = bench.authenticate(&token).unwrap();

    for scopes in [
        vec!["messages:send"],
        vec!["messages:read", "metrics:read"],
        vec!["*", "messages:send"],
    ] {
        let issued = bench
            .app
            .issue_api_key(
                &manager,
                NewApiKey {
                    name: "escalation".into(),
                    scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
                    expires_at: None,
                    allowed_ips: Vec::new(),
                    client_cert_sha256: None,
                },
            )
            .await;
        assert!(
            matches!(
                issued,
                Err(AppError::Forbidden {
                    code: "scope_escalation",
                    ..
                })
            ),
            "{scopes:?}: {issued:?}"
        );
    }

    let audit = bench.app.audit_trail(Some(&bench.account), 10).unwrap();
    let denials: Vec<_> = audit
        .iter()
        .filter(|e| e.outcome == "denied:scope_escalation")
        .collect();
    assert_eq!(denials.len(), 3, "{audit:?}");
    for denial in denials {
        assert_eq!(denial.action, "api_key.issue");
        assert_eq!(denial.actor_kind, "api_key");
        assert_eq!(denial.actor_id.as_deref(), Some(token.id()));
        assert_eq!(denial.account_id.as_deref(), Some(bench.account.as_str()));
        assert_eq!(denial.at, START);
    }
    let narrower = bench
        .app
        .issue_api_key(
            &manager,
            NewApiKey {
                name: "narrower".into(),
                scopes: vec!["messages:read".into()],
                expires_at: None,
                allowed_ips: Vec::new(),
                client_cert_sha256: None,
            },
        )
        .await;
    assert!(narrower.is_ok(), "scopes it holds it may hand on");
}

#[tokio::test]
async fn a_send_records_one_audit_event_naming_the_actor_without_the_number_or_the_text() {
    let bench = Bench::new().await;
    let token = bench.issue_key(&["messages:send"], None).await;
    let sender = bench.authenticate(&token).unwrap();
    bench.clock.advance(1_000);

    let outcome = bench
        .app
        .send_messages(
            &sender,
            SendRequest {
                to: vec![NUMBER.into(), OTHER_NUMBER.into()],
                to_is_list: true,
                from: "Rampart".into(),
                body: BODY.into(),
                ..SendRequest::default()
            },
        )
        .await
        .unwrap();
    let SendOutcome::Accepted(accepted) = outcome else {
        panic!("a fresh send is accepted");
    };
    assert_eq!(accepted.len(), 2);

    let audit = bench.app.audit_trail(Some(&bench.account), 10).unwrap();
    let sends: Vec<_> = audit
        .iter()
        .filter(|e| e.action == "messages.send")
        .collect();
    assert_eq!(sends.len(), 1, "one event per request: {audit:?}");
    let event = sends[0];
    assert_eq!(event.actor_kind, "api_key");
    assert_eq!(event.actor_id.as_deref(), Some(token.id()));
    assert_eq!(event.account_id.as_deref(), Some(bench.account.as_str()));
    assert_eq!(event.outcome, "ok");
    assert_eq!(event.at, START + 1_000);
    assert_eq!(event.target, accepted[0].id);
    let shown = format!("{event:?}");
    for secret in ["7911123456", "7400123456", "918273", "Your code"] {
        assert!(!shown.contains(secret), "{secret} in {shown}");
    }
}

/// A policy that refuses every message, with `violations` as its reasons.
struct DenyAll {
    violations: Vec<Violation>,
}

impl Policy for DenyAll {
    fn decide(&self, _account: &AccountSnapshot, _message: &Outgoing<'_>) -> Decision {
        Decision::Deny(self.violations.clone())
    }
}

/// Sends `body` from `caller` to each of `to`, expecting it accepted; the new messages' ids.
async fn accepted(app: &App, caller: &Caller, to: &[String], body: &str) -> Vec<String> {
    let outcome = app
        .send_messages(
            caller,
            SendRequest {
                to: to.to_vec(),
                to_is_list: to.len() > 1,
                from: "Rampart".into(),
                body: body.into(),
                ..SendRequest::default()
            },
        )
        .await
        .unwrap();
    let SendOutcome::Accepted(accepted) = outcome else {
        panic!("a fresh send is accepted");
    };
    accepted.into_iter().map(|m| m.id).collect()
}

async fn send_one(bench: &Bench) -> Result<SendOutcome, AppError> {
    bench
        .app
        .send_messages(
            &bench.operator(),
            SendRequest {
                to: vec![NUMBER.into()],
                from: "Rampart".into(),
                body: BODY.into(),
                ..SendRequest::default()
            },
        )
        .await
}

async fn assert_nothing_stored(bench: &Bench) {
    let listed = bench
        .app
        .list_messages(&bench.operator(), MessageQuery::default())
        .await
        .unwrap();
    assert!(listed.data.is_empty(), "{:?}", listed.data);
    let audit = bench.app.audit_trail(Some(&bench.account), 10).unwrap();
    // A refusal is on record (denied), an accepted send is not.
    assert!(
        audit
            .iter()
            .all(|e| e.action != "messages.send" || e.outcome.starts_with("denied:")),
        "{audit:?}"
    );
}

#[tokio::test]
async fn a_send_refused_by_the_policy_stores_nothing() {
    let violation = Violation {
        code: "destination_not_allowed",
        message: "this account may not send to the United Kingdom".into(),
        rule: "geo.allowlist",
        field: Some("to".into()),
    };
    let policy = Arc::new(DenyAll {
        violations: vec![violation],
    });
    let bench = Bench::with(|app| app.with_policy(policy)).await;

    let sent = send_one(&bench).await;

    match sent {
        Err(AppError::PolicyRefused(violations)) => {
            assert_eq!(violations.len(), 1);
            assert_eq!(violations[0].code, "destination_not_allowed");
            assert_eq!(violations[0].rule, "geo.allowlist");
            assert_eq!(violations[0].field.as_deref(), Some("to"));
        }
        other => panic!("expected a policy refusal, got {other:?}"),
    }
    assert_nothing_stored(&bench).await;
}

#[tokio::test]
async fn a_send_refused_by_a_policy_without_reasons_is_forbidden_and_stores_nothing() {
    let policy = Arc::new(DenyAll {
        violations: Vec::new(),
    });
    let bench = Bench::with(|app| app.with_policy(policy)).await;

    let sent = send_one(&bench).await;

    assert!(
        matches!(
            sent,
            Err(AppError::Forbidden {
                code: "policy_denied",
                ..
            })
        ),
        "{sent:?}"
    );
    assert_nothing_stored(&bench).await;
}

mod access;
mod backups;
mod client_certs;
mod fairness;
mod keys;
mod passkeys;
mod policy;
mod pumping;
mod rate_limits;
mod second_factors;
mod sessions;

#[tokio::test]
async fn an_idempotency_key_is_remembered_for_its_window_and_then_free_again() {
    let bench = Bench::new().await;
    let key = bench.issue_key(&["messages:send"], None).await;
    let caller = bench.authenticate(&key).unwrap();
    let send = |body: &str| {
        let request = SendRequest {
            to: vec![NUMBER.into()],
            from: "Rampart".into(),
            body: body.into(),
            idempotency: Some(
                super::messages::Idempotency::new("order-1", body.as_bytes()).unwrap(),
            ),
            ..SendRequest::default()
        };
        bench.app.send_messages(&caller, request)
    };
    let SendOutcome::Accepted(first) = send(BODY).await.unwrap() else {
        panic!("the first send is new");
    };
    bench.clock.advance(23 * 3600 * 1000);
    let SendOutcome::Replayed(again) = send(BODY).await.unwrap() else {
        panic!("a retry within 24 hours replays");
    };
    assert_eq!(again[0].id, first[0].id);
    assert!(matches!(
        send("another request").await,
        Err(AppError::Conflict {
            code: "idempotency_key_reused",
            ..
        })
    ));
    // Past the window the key is free again, and the hourly sweep deletes old records.
    bench.clock.advance(2 * 3600 * 1000);
    let SendOutcome::Accepted(later) = send("another request").await.unwrap() else {
        panic!("after 24 hours the key is new again");
    };
    assert_ne!(later[0].id, first[0].id);
    assert_eq!(bench.app.expire_idempotency_keys().await.unwrap(), 0);
    bench.clock.advance(25 * 3600 * 1000);
    assert_eq!(bench.app.expire_idempotency_keys().await.unwrap(), 1);
}
