//! `GET /v1/audit-events`: an account's key reads its own account's trail only, filtered by
//! actor, action and time and paged by cursor; an operator reads the instance's; a key
//! without `audit:read` is refused; bad filters are problem documents with stable codes.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{NORMAL_NUMBER, TestApp, spawn_app};

async fn events(app: &TestApp, key: &str, query: &str) -> Vec<Value> {
    let reply = app.get(&format!("/v1/audit-events{query}"), key).await;
    assert_eq!(reply.status, StatusCode::OK, "{query}: {}", reply.text);
    reply.json()["data"].as_array().cloned().unwrap()
}

fn actions(events: &[Value]) -> Vec<&str> {
    events
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn each_account_reads_only_its_own_audit_events_and_operators_read_all() {
    let app = spawn_app();
    let account_b = app.cli(&["account", "create", "--name", "tenant b"]);
    let key_b = app.cli(&["apikey", "create", "--account", &account_b, "--scopes", "*"]);
    app.send_to(NORMAL_NUMBER, "from A").await;
    let sent_b = app
        .post_json(
            "/v1/messages",
            &key_b,
            &json!({"to": NORMAL_NUMBER, "from": "TenantB", "body": "from B"}),
        )
        .await;
    assert_eq!(sent_b.status, StatusCode::ACCEPTED, "{}", sent_b.text);

    let mine = events(&app, &app.key, "").await;
    let account_a = mine[0]["account_id"].as_str().unwrap().to_owned();
    assert_ne!(account_a, account_b);
    assert!(actions(&mine).contains(&"messages.send"), "{mine:?}");
    assert!(
        mine.iter().all(|e| e["account_id"] == json!(account_a)),
        "{mine:?}"
    );
    let seqs: Vec<i64> = mine.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert!(
        seqs.windows(2).all(|w| w[0] > w[1]),
        "newest first: {seqs:?}"
    );

    let theirs = events(&app, &key_b, "").await;
    assert!(!theirs.is_empty());
    assert!(
        theirs.iter().all(|e| e["account_id"] == json!(account_b)),
        "{theirs:?}"
    );

    let all = events(&app, &app.operator_key(), "?limit=200").await;
    for account in [&account_a, &account_b] {
        assert!(
            all.iter().any(|e| e["account_id"] == json!(account)),
            "{all:?}"
        );
    }
    assert!(
        all.iter().any(|e| e["account_id"].is_null()),
        "the instance's own events too: {all:?}"
    );
}

#[tokio::test]
async fn audit_events_filter_by_actor_action_and_time_and_page_by_cursor() {
    let app = spawn_app();
    app.send_to(NORMAL_NUMBER, "one").await;
    app.send_to(NORMAL_NUMBER, "two").await;
    let (key_id, _) = app.create_key(&["messages:read"], None).await;

    let sends = events(&app, &app.key, "?action=messages.send").await;
    assert_eq!(actions(&sends), ["messages.send", "messages.send"]);
    let actor = sends[0]["actor_id"].as_str().unwrap().to_owned();
    assert_eq!(sends[0]["actor_kind"], "api_key");
    let by_actor = events(&app, &app.key, &format!("?actor={actor}")).await;
    assert!(by_actor.iter().all(|e| e["actor_id"] == json!(actor)));
    assert_eq!(
        actions(&by_actor),
        ["api_key.issue", "messages.send", "messages.send"]
    );
    assert_eq!(by_actor[0]["target"], json!(key_id));
    let operator = events(&app, &app.key, "?actor=operator").await;
    assert!(
        actions(&operator).contains(&"api_key.issue"),
        "the CLI's key"
    );

    assert!(
        events(&app, &app.key, "?since=2999-01-01T00:00:00Z")
            .await
            .is_empty()
    );
    assert!(
        events(&app, &app.key, "?until=2000-01-01T00:00:00Z")
            .await
            .is_empty()
    );
    let everything = events(&app, &app.key, "?limit=200").await;
    let now = events(
        &app,
        &app.key,
        "?since=2000-01-01T00:00:00Z&until=2999-01-01T00:00:00Z",
    )
    .await;
    assert_eq!(now, everything);
    // A window that ends before it begins holds nothing.
    assert!(
        events(
            &app,
            &app.key,
            "?since=2999-01-01T00:00:00Z&until=2000-01-01T00:00:00Z"
        )
        .await
        .is_empty()
    );

    let first = app.get("/v1/audit-events?limit=1", &app.key).await.json();
    let cursor = first["next_cursor"].as_str().unwrap().to_owned();
    let second = events(&app, &app.key, &format!("?limit=1&cursor={cursor}")).await;
    assert!(second[0]["seq"].as_i64() < first["data"][0]["seq"].as_i64());
    let last = everything.last().unwrap()["seq"].as_i64().unwrap();
    let end = app
        .get(&format!("/v1/audit-events?cursor={}", last), &app.key)
        .await
        .json();
    assert_eq!(end["data"], json!([]));
    assert!(end.get("next_cursor").is_none(), "{end}");
}

#[tokio::test]
async fn bad_audit_event_filters_are_problems_with_stable_codes() {
    let app = spawn_app();
    for (query, field) in [
        ("since=yesterday", "since"),
        ("until=2026-13-01T00:00:00Z", "until"),
        ("limit=0", "limit"),
        ("limit=201", "limit"),
        ("cursor=abc", "cursor"),
        ("cursor=-5", "cursor"),
        ("cursor=%2B5", "cursor"),
        ("cursor=007", "cursor"),
        ("action=", "action"),
    ] {
        let reply = app
            .get(&format!("/v1/audit-events?{query}"), &app.key)
            .await;
        reply.assert_problem(400, "invalid_query");
        assert_eq!(reply.json()["field"], field, "{query}: {}", reply.text);
    }
    let unknown = app.get("/v1/audit-events?colour=red", &app.key).await;
    assert_eq!(unknown.status, StatusCode::BAD_REQUEST, "{}", unknown.text);
}

#[tokio::test]
async fn a_key_without_audit_read_cannot_read_the_audit_trail() {
    let app = spawn_app();
    let (_, reader) = app
        .create_key(&["messages:read", "keys:manage"], None)
        .await;
    app.get("/v1/audit-events", &reader)
        .await
        .assert_problem(403, "insufficient_scope");
    let (_, viewer) = app.create_key(&["audit:read"], None).await;
    assert!(!events(&app, &viewer, "").await.is_empty());
}
