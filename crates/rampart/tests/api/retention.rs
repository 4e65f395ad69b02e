//! An account's retention against the real server: read and set over the API by the account's
//! admins and operators (a developer's key is refused), bounds answered 422
//! `invalid_retention`, the operator's `rampart account retention` sets and shows the same, and
//! the server applies it shortly after start. (What retention erases and deletes, day by day,
//! is driven on a manual clock in `app::delivery_tests`.)

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{NORMAL_NUMBER, POLL_INTERVAL, TestApp, spawn_app};
use crate::reply::Reply;

/// The scopes of the developer role: everything but the account's rules and its trail.
const DEVELOPER: &[&str] = &[
    "messages:send",
    "messages:read",
    "messages:status",
    "inbound:read",
    "keys:manage",
    "members:read",
];

async fn put(app: &TestApp, path: &str, key: &str, body: Value) -> Reply {
    let bytes = serde_json::to_vec(&body).unwrap();
    app.request(
        reqwest::Method::PUT,
        path,
        key,
        Some((Some("application/json"), bytes)),
        &[],
    )
    .await
}

#[tokio::test]
async fn an_account_keeps_everything_until_retention_is_set_and_the_cli_shows_the_same() {
    let app = spawn_app();
    let account = app.account_id();
    let path = format!("/v1/accounts/{account}/retention");
    let shown = app.get(&path, &app.key).await;
    assert_eq!(shown.status, StatusCode::OK, "{}", shown.text);
    assert_eq!(
        shown.json(),
        json!({"erase_bodies_after_days": null, "purge_after_days": null})
    );

    let set = put(
        &app,
        &path,
        &app.key,
        json!({"erase_bodies_after_days": 30, "purge_after_days": 365}),
    )
    .await;
    assert_eq!(set.status, StatusCode::OK, "{}", set.text);
    assert_eq!(
        set.json(),
        json!({"erase_bodies_after_days": 30, "purge_after_days": 365})
    );
    assert_eq!(app.get(&path, &app.key).await.json(), set.json());
    let cli = app.cli(&["account", "retention", "--account", &account, "--show"]);
    assert_eq!(
        cli,
        format!("{account}: bodies erased after 30 days; messages deleted after 365 days")
    );

    // Whole floats are the schema's integers too; a period left out is kept for ever.
    let set = put(
        &app,
        &path,
        &app.key,
        json!({"erase_bodies_after_days": 7.0}),
    )
    .await;
    assert_eq!(
        set.json(),
        json!({"erase_bodies_after_days": 7, "purge_after_days": null})
    );

    // The operator, from the command line: no numbers keeps everything for ever again.
    let cli = app.cli(&["account", "retention", "--account", &account]);
    assert_eq!(
        cli,
        format!("{account}: bodies erased never; messages deleted never")
    );
    assert_eq!(
        app.get(&path, &app.key).await.json(),
        json!({"erase_bodies_after_days": null, "purge_after_days": null})
    );

    let trail = app.get("/v1/audit-events?limit=50", &app.key).await.json();
    let changes = trail["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "account.retention")
        .count();
    assert_eq!(changes, 3, "every change is audited: {trail}");
}

#[tokio::test]
async fn retention_out_of_bounds_or_purging_before_erasing_is_a_422_invalid_retention() {
    let app = spawn_app();
    let account = app.account_id();
    let path = format!("/v1/accounts/{account}/retention");
    for body in [
        json!({"erase_bodies_after_days": 0}),
        json!({"purge_after_days": 36501}),
        json!({"erase_bodies_after_days": 30, "purge_after_days": 29}),
    ] {
        put(&app, &path, &app.key, body.clone())
            .await
            .assert_problem(422, "invalid_retention");
    }
    for body in [
        json!({"erase_bodies_after_days": "30"}),
        json!({"erase_bodies_after_days": -1}),
        json!({"erase_bodies_after_days": 1.5}),
        json!({"erase_bodies_after_days": 1e30}),
        json!({"purge_after_days": 30, "keep": true}),
    ] {
        put(&app, &path, &app.key, body.clone())
            .await
            .assert_problem(422, "invalid_field");
    }
    let (ok, _, stderr) = app.cli_output(&[
        "account",
        "retention",
        "--account",
        &account,
        "--erase-bodies-after-days",
        "30",
        "--purge-after-days",
        "10",
    ]);
    assert!(!ok, "the CLI refuses it too");
    assert!(
        stderr.contains("purge_after_days may not be shorter than erase_bodies_after_days"),
        "{stderr}"
    );
    assert_eq!(
        app.get(&path, &app.key).await.json(),
        json!({"erase_bodies_after_days": null, "purge_after_days": null}),
        "nothing refused was stored"
    );
}

#[tokio::test]
async fn a_developer_key_may_not_read_or_set_retention_and_an_operator_with_accounts_manage_may() {
    let app = spawn_app();
    let account = app.account_id();
    let path = format!("/v1/accounts/{account}/retention");
    let (_, developer) = app.create_key(DEVELOPER, None).await;
    app.get(&path, &developer)
        .await
        .assert_problem(403, "insufficient_scope");
    put(
        &app,
        &path,
        &developer,
        json!({"erase_bodies_after_days": 1}),
    )
    .await
    .assert_problem(403, "insufficient_scope");

    let operator = app.cli(&[
        "apikey",
        "create",
        "--operator",
        "--scopes",
        "accounts:manage",
    ]);
    let set = put(&app, &path, &operator, json!({"purge_after_days": 90})).await;
    assert_eq!(set.status, StatusCode::OK, "{}", set.text);
    assert_eq!(
        app.get(&path, &operator).await.json()["purge_after_days"],
        90
    );
    app.get(
        "/v1/accounts/acc_00000000000000000000000000/retention",
        &operator,
    )
    .await
    .assert_problem(404, "not_found");
}

#[tokio::test]
async fn shortly_after_start_the_server_erases_bodies_past_the_accounts_period() {
    let mut app = spawn_app();
    let account = app.account_id();
    let old = app.send_to(NORMAL_NUMBER, "Your code is 918273").await;
    let recent = app.send_to(NORMAL_NUMBER, "Your code is 555111").await;
    app.wait_for_status(&old, "delivered").await;
    app.wait_for_status(&recent, "delivered").await;
    app.cli(&[
        "account",
        "retention",
        "--account",
        &account,
        "--erase-bodies-after-days",
        "1",
    ]);
    app.kill9();
    // Two days older, as if the server had been down that long since it sent it.
    let db = rusqlite::Connection::open(app.data_dir.join("rampart.db")).unwrap();
    db.execute(
        "UPDATE messages SET created_at = created_at - 2 * 86400000 WHERE id = ?1",
        [&old],
    )
    .unwrap();
    drop(db);
    app.restart();

    // The first run is half a minute after start.
    let deadline = Instant::now() + Duration::from_secs(60);
    let erased = loop {
        let message = app.message(&old).await;
        if message.get("body_erased_at").is_some() {
            break message;
        }
        assert!(Instant::now() < deadline, "not erased: {message}");
        tokio::time::sleep(POLL_INTERVAL * 20).await;
    };
    assert_eq!(erased["body"], json!(null));
    assert_eq!(erased["status"], "delivered");
    assert_eq!(erased["to"], NORMAL_NUMBER);
    let kept = app.message(&recent).await;
    assert_eq!(kept["body"], "Your code is 555111");
    assert!(kept.get("body_erased_at").is_none(), "{kept}");

    let trail = app
        .get("/v1/audit-events?action=retention.applied", &app.key)
        .await
        .json();
    assert_eq!(
        trail["data"][0]["target"],
        "messages_erased=1 messages_purged=0 inbound_erased=0 inbound_purged=0",
        "{trail}"
    );
    let (verified, stdout, stderr) = app.cli_output(&["verify"]);
    assert!(
        verified,
        "an erased body is no integrity finding: {stdout}\n{stderr}"
    );
}
