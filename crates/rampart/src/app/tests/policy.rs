//! The account's policy on the send path, on a manual clock: documents are versioned and a
//! stale change refused, a deferral schedules the messages, frequency caps count accepted
//! messages only, the opt-out hook refuses, and a change made by another process (the CLI)
//! applies from the next send.

use std::sync::Arc;

use serde_json::json;

use super::super::messages::{Message, MessageQuery, SendOutcome, SendRequest};
use super::super::policies::OptOuts;
use super::{BODY, Bench, NUMBER, OTHER_NUMBER};
use crate::app::{Actor, AppError};
use crate::clock::Millis;
use crate::policy::Category;

fn request(to: &str, body: &str, category: Option<&str>) -> SendRequest {
    SendRequest {
        to: vec![to.into()],
        from: "Rampart".into(),
        body: body.into(),
        category: category.map(str::to_owned),
        ..SendRequest::default()
    }
}

async fn set(bench: &Bench, document: serde_json::Value) -> u64 {
    bench
        .app
        .set_policy_of(&Actor::Operator, &bench.account, document, None)
        .await
        .unwrap()
        .version
}

async fn send(bench: &Bench, request: SendRequest) -> Result<SendOutcome, AppError> {
    bench.app.send_messages(&bench.operator(), request).await
}

fn refused_with(sent: Result<SendOutcome, AppError>) -> Vec<&'static str> {
    match sent {
        Err(AppError::PolicyRefused(violations)) => violations.iter().map(|v| v.code).collect(),
        other => panic!("expected a policy refusal, got {other:?}"),
    }
}

async fn only_message(bench: &Bench) -> Message {
    let listed = bench
        .app
        .list_messages(&bench.operator(), MessageQuery::default())
        .await
        .unwrap();
    assert_eq!(listed.data.len(), 1, "{:?}", listed.data);
    listed.data.into_iter().next().unwrap()
}

#[tokio::test]
async fn each_change_makes_a_new_version_audited_and_a_stale_one_is_refused() {
    let bench = Bench::new().await;
    let app = &bench.app;
    assert_eq!(app.policy_of(&bench.account).unwrap().version, 0);
    let first = app
        .set_policy_of(&Actor::Operator, &bench.account, json!({}), Some(0))
        .await
        .unwrap();
    assert_eq!(first.version, 1);
    let stale = app
        .set_policy_of(&Actor::Operator, &bench.account, json!({}), Some(0))
        .await;
    assert!(
        matches!(
            stale,
            Err(AppError::Conflict {
                code: "policy_version_conflict",
                ..
            })
        ),
        "{stale:?}"
    );
    let bad = app
        .set_policy_of(
            &Actor::Operator,
            &bench.account,
            json!({"content": {"blocked_wrods": ["x"]}}),
            None,
        )
        .await;
    match bad {
        Err(AppError::Invalid { code, field, .. }) => {
            assert_eq!(code, "invalid_policy");
            assert_eq!(field.as_deref(), Some("content.blocked_wrods"));
        }
        other => panic!("{other:?}"),
    }
    let audit = app.audit_trail(Some(&bench.account), 10).unwrap();
    let sets: Vec<&str> = audit
        .iter()
        .filter(|e| e.action == "account.policy")
        .map(|e| e.target.as_str())
        .collect();
    assert_eq!(sets, ["version=1"]);
}

#[tokio::test]
async fn marketing_in_quiet_hours_is_scheduled_for_the_end_of_the_window() {
    let bench = Bench::new().await;
    // START is 22:13:20 UTC on 14 November 2023; a Guernsey number is on London time (GMT).
    set(
        &bench,
        json!({"quiet_hours": {"start": "21:00", "end": "08:00", "action": "defer"}}),
    )
    .await;
    let sent = send(
        &bench,
        request(NUMBER, "Sale! STOP to opt out", Some("marketing")),
    )
    .await;
    assert!(matches!(sent, Ok(SendOutcome::Accepted(_))), "{sent:?}");
    let message = only_message(&bench).await;
    let eight_next_morning: Millis = 1_700_035_200_000; // 2023-11-15T08:00:00Z
    assert_eq!(message.send_at, Some(eight_next_morning));
    assert_eq!(message.category, Some(Category::Marketing));

    // A transactional message leaves at once, quiet hours or not.
    send(&bench, request(OTHER_NUMBER, BODY, None))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_frequency_cap_counts_accepted_messages_only_and_frees_up_after_its_window() {
    let bench = Bench::new().await;
    set(
        &bench,
        json!({
            "frequency_cap": {"max_messages": 2, "window_seconds": 3600},
            "content": {"blocked_words": ["casino"]},
        }),
    )
    .await;
    // A refused message does not count.
    assert_eq!(
        refused_with(send(&bench, request(NUMBER, "casino", None)).await),
        ["content_blocked"]
    );
    send(&bench, request(NUMBER, BODY, None)).await.unwrap();
    bench.clock.advance(60_000);
    send(&bench, request(NUMBER, BODY, None)).await.unwrap();
    assert_eq!(
        refused_with(send(&bench, request(NUMBER, BODY, None)).await),
        ["frequency_cap_exceeded"]
    );
    // Another recipient has its own count.
    send(&bench, request(OTHER_NUMBER, BODY, None))
        .await
        .unwrap();
    // An hour after the first, one place is free again.
    bench.clock.advance(3_540_001);
    send(&bench, request(NUMBER, BODY, None)).await.unwrap();
    assert_eq!(
        refused_with(send(&bench, request(NUMBER, BODY, None)).await),
        ["frequency_cap_exceeded"]
    );
}

/// Says that one recipient (by its tag) opted out.
struct OptedOut(std::sync::Mutex<Option<[u8; 16]>>);

impl OptOuts for OptedOut {
    fn opted_out(&self, _account: &str, _sender: &str, tag: [u8; 16]) -> bool {
        self.0.lock().unwrap().is_some_and(|t| t == tag)
    }
}

#[tokio::test]
async fn a_recipient_the_opt_out_hook_names_is_refused_and_others_are_not() {
    let hook = Arc::new(OptedOut(std::sync::Mutex::new(None)));
    let bench = Bench::with({
        let hook = hook.clone();
        move |app| app.with_opt_outs(hook)
    })
    .await;
    send(&bench, request(NUMBER, BODY, None)).await.unwrap();
    let tag = bench.app.sealer.phone_index(&bench.account, NUMBER);
    *hook.0.lock().unwrap() = Some(tag);
    assert_eq!(
        refused_with(send(&bench, request(NUMBER, BODY, None)).await),
        ["recipient_opted_out"]
    );
    send(&bench, request(OTHER_NUMBER, BODY, None))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_policy_set_by_another_process_applies_from_the_next_send() {
    let bench = Bench::new().await;
    send(&bench, request(NUMBER, "casino", None)).await.unwrap();
    // Another process (the CLI beside the server) opens the same data directory.
    let config = bench.app.config().as_ref().clone();
    let other = crate::app::App::open(config).unwrap();
    other
        .set_policy_of(
            &Actor::Operator,
            &bench.account,
            json!({"content": {"blocked_words": ["casino"]}}),
            None,
        )
        .await
        .unwrap();
    other.close();
    assert_eq!(
        refused_with(send(&bench, request(NUMBER, "casino", None)).await),
        ["content_blocked"]
    );
    // Once the epoch file settles the documents are served from memory again, still new.
    std::thread::sleep(std::time::Duration::from_millis(150));
    for _ in 0..2 {
        assert_eq!(
            refused_with(send(&bench, request(NUMBER, "casino", None)).await),
            ["content_blocked"]
        );
    }
}

#[tokio::test]
async fn a_dry_run_answers_like_a_send_and_stores_nothing() {
    let bench = Bench::new().await;
    set(&bench, json!({"senders": {"sender_ids": ["Acme"]}})).await;
    let found = bench
        .app
        .dry_run(&bench.operator(), request(NUMBER, BODY, None))
        .unwrap();
    let codes: Vec<&str> = found.violations.iter().map(|v| v.code).collect();
    assert_eq!(codes, ["sender_not_allowed"]);
    assert_eq!(found.segments, 1);
    let listed = bench
        .app
        .list_messages(&bench.operator(), MessageQuery::default())
        .await
        .unwrap();
    assert!(listed.data.is_empty());
}

#[tokio::test]
async fn a_retry_of_an_accepted_send_is_answered_as_before_even_once_the_cap_is_full() {
    let bench = Bench::new().await;
    set(
        &bench,
        json!({"frequency_cap": {"max_messages": 1, "window_seconds": 3600}}),
    )
    .await;
    let retry = || {
        let mut r = request(NUMBER, BODY, None);
        r.idempotency =
            Some(super::super::messages::Idempotency::new("order-1", BODY.as_bytes()).unwrap());
        r
    };
    let Ok(SendOutcome::Accepted(first)) = send(&bench, retry()).await else {
        panic!("the first send is new");
    };
    let Ok(SendOutcome::Replayed(again)) = send(&bench, retry()).await else {
        panic!("the retry is answered as before");
    };
    assert_eq!(first[0].id, again[0].id);
    assert_eq!(
        refused_with(send(&bench, request(NUMBER, BODY, None)).await),
        ["frequency_cap_exceeded"]
    );
}
