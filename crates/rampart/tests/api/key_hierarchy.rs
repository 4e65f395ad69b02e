//! Keys form a hierarchy: a key holds at most its maker's scopes, ends no later than its
//! maker, and is revoked with it; revoking a key needs every scope it holds. An account's key
//! never holds a server-wide scope, and an operator's key nothing but server-wide scopes.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, rfc3339_from_now, spawn_app};

/// Makes a key with `maker`; returns the whole answer (201 asserted).
async fn make_key(app: &TestApp, maker: &str, body: Value) -> Value {
    let reply = app.post_json("/v1/api-keys", maker, &body).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    reply.json()
}

fn secret(created: &Value) -> String {
    created["key"].as_str().expect("key secret").to_owned()
}

fn sorted_scopes(created: &Value) -> Vec<String> {
    let mut scopes: Vec<String> =
        serde_json::from_value(created["scopes"].clone()).expect("scopes");
    scopes.sort();
    scopes
}

#[tokio::test]
async fn a_child_key_cannot_expire_later_than_its_parent() {
    let app = spawn_app();
    let expiry = rfc3339_from_now(time::Duration::hours(1));
    let (_, parent) = app
        .create_key(&["keys:manage", "messages:read"], Some(&expiry))
        .await;
    let later = rfc3339_from_now(time::Duration::hours(2));
    app.post_json(
        "/v1/api-keys",
        &parent,
        &json!({"name": "outlives", "scopes": ["messages:read"], "expires_at": later}),
    )
    .await
    .assert_problem(403, "expiry_escalation");
    // Sooner is fine.
    let sooner = rfc3339_from_now(time::Duration::minutes(30));
    make_key(
        &app,
        &parent,
        json!({"name": "sooner", "scopes": ["messages:read"], "expires_at": sooner}),
    )
    .await;
}

#[tokio::test]
async fn a_child_key_made_without_an_expiry_gets_its_parents_expiry() {
    let app = spawn_app();
    let expiry = rfc3339_from_now(time::Duration::hours(1));
    let (parent_id, parent) = app
        .create_key(&["keys:manage", "messages:read"], Some(&expiry))
        .await;
    let child = make_key(
        &app,
        &parent,
        json!({"name": "child", "scopes": ["messages:read"]}),
    )
    .await;
    let parent_shown = app
        .get(&format!("/v1/api-keys/{parent_id}"), &app.key)
        .await
        .json();
    assert!(parent_shown["expires_at"].is_string(), "{parent_shown}");
    assert_eq!(child["expires_at"], parent_shown["expires_at"], "{child}");
}

#[tokio::test]
async fn revoking_a_parent_key_makes_its_child_fail_on_its_next_request() {
    let app = spawn_app();
    let (parent_id, parent) = app
        .create_key(&["keys:manage", "messages:read"], None)
        .await;
    let child = secret(
        &make_key(
            &app,
            &parent,
            json!({"name": "child", "scopes": ["messages:read"]}),
        )
        .await,
    );
    let grandchild = secret(
        &make_key(
            &app,
            &parent,
            json!({"name": "sibling", "scopes": ["keys:manage", "messages:read"]}),
        )
        .await,
    );
    let grandchild = secret(
        &make_key(
            &app,
            &grandchild,
            json!({"name": "grandchild", "scopes": ["messages:read"]}),
        )
        .await,
    );
    for key in [&child, &grandchild] {
        assert_eq!(app.get("/v1/messages", key).await.status, StatusCode::OK);
    }

    let revoked = app
        .delete(&format!("/v1/api-keys/{parent_id}"), &app.key)
        .await;
    assert_eq!(revoked.status, StatusCode::NO_CONTENT, "{}", revoked.text);
    for key in [&parent, &child, &grandchild] {
        let reply = app.get("/v1/messages", key).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{}", reply.text);
    }
    // The maker of the revoked key still works.
    assert_eq!(
        app.get("/v1/messages", &app.key).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_keys_manage_only_key_cannot_revoke_the_star_key_nor_make_keys_with_scopes_it_lacks() {
    let app = spawn_app();
    let (_, manager) = app.create_key(&["keys:manage"], None).await;
    let star_id = &app.key[..15];
    app.delete(&format!("/v1/api-keys/{star_id}"), &manager)
        .await
        .assert_problem(403, "scope_escalation");
    // The `*` key still works.
    assert_eq!(
        app.get("/v1/messages", &app.key).await.status,
        StatusCode::OK
    );
    for scopes in [
        json!(["messages:read"]),
        json!(["keys:manage", "messages:send"]),
        json!(["*", "inbound:read"]),
    ] {
        app.post_json(
            "/v1/api-keys",
            &manager,
            &json!({"name": "wider", "scopes": scopes}),
        )
        .await
        .assert_problem(403, "scope_escalation");
    }
    // A key it holds every scope of, it may revoke.
    let (peer_id, _) = app.create_key(&["keys:manage"], None).await;
    let revoked = app
        .delete(&format!("/v1/api-keys/{peer_id}"), &manager)
        .await;
    assert_eq!(revoked.status, StatusCode::NO_CONTENT, "{}", revoked.text);
}

#[tokio::test]
async fn an_account_key_asking_for_a_server_wide_scope_is_refused() {
    let app = spawn_app();
    for scope in [
        "metrics:read",
        "connectors:read",
        "bans:manage",
        "accounts:manage",
    ] {
        app.post_json(
            "/v1/api-keys",
            &app.key,
            &json!({"name": "scraper", "scopes": [scope]}),
        )
        .await
        .assert_problem(403, "scope_escalation");
    }
    // `*` from the account's every-scope key gives account scopes only.
    let star = make_key(&app, &app.key, json!({"name": "star", "scopes": ["*"]})).await;
    assert!(
        star["account_id"]
            .as_str()
            .is_some_and(|a| a.starts_with("acc_")),
        "{star}"
    );
    assert!(
        !sorted_scopes(&star).iter().any(|s| [
            "metrics:read",
            "connectors:read",
            "bans:manage",
            "accounts:manage"
        ]
        .contains(&s.as_str())),
        "{star}"
    );
    app.get("/metrics", &secret(&star))
        .await
        .assert_problem(403, "insufficient_scope");
}

#[tokio::test]
async fn an_operator_key_cannot_hold_account_scopes_nor_read_messages() {
    let app = spawn_app();
    let ops = app.operator_key();
    for scopes in [
        json!(["messages:read"]),
        json!(["metrics:read", "keys:manage"]),
    ] {
        app.post_json(
            "/v1/api-keys",
            &ops,
            &json!({"name": "tenant", "scopes": scopes}),
        )
        .await
        .assert_problem(403, "scope_escalation");
    }
    let (made, _, _) = app.cli_output(&[
        "apikey",
        "create",
        "--operator",
        "--scopes",
        "messages:read",
    ]);
    assert!(
        !made,
        "the CLI made an operator's key with an account scope"
    );
    for path in ["/v1/messages", "/v1/inbound", "/v1/numbers"] {
        app.get(path, &ops)
            .await
            .assert_problem(403, "insufficient_scope");
    }
    app.post_json(
        "/v1/messages",
        &ops,
        &json!({"to": "+447911123456", "from": "Rampart", "body": "hi"}),
    )
    .await
    .assert_problem(403, "insufficient_scope");
    // What an operator's key makes is an operator's key: server-wide scopes only.
    let scraper = make_key(
        &app,
        &ops,
        json!({"name": "scraper", "scopes": ["metrics:read"]}),
    )
    .await;
    assert_eq!(sorted_scopes(&scraper), ["metrics:read"]);
    assert_eq!(scraper["account_id"], Value::Null, "{scraper}");
    assert_eq!(
        app.get("/metrics", &secret(&scraper)).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn star_from_a_narrower_key_gives_exactly_the_narrower_keys_scopes() {
    let app = spawn_app();
    let (_, narrower) = app
        .create_key(&["keys:manage", "messages:status", "inbound:read"], None)
        .await;
    let star = make_key(&app, &narrower, json!({"name": "star", "scopes": ["*"]})).await;
    assert_eq!(
        sorted_scopes(&star),
        ["inbound:read", "keys:manage", "messages:status"]
    );
    // An operator's key with two server-wide scopes passes on exactly those two.
    let ops = app.cli(&[
        "apikey",
        "create",
        "--operator",
        "--name",
        "two",
        "--scopes",
        "metrics:read,accounts:manage",
    ]);
    let star = make_key(&app, &ops, json!({"name": "star", "scopes": ["*"]})).await;
    assert_eq!(sorted_scopes(&star), ["accounts:manage", "metrics:read"]);
}
