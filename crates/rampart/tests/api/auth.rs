//! API keys and scopes: each scope opens exactly its own doors, and a key that is missing,
//! malformed, unknown, revoked (over the API or the CLI) or expired opens none.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{NORMAL_NUMBER, Reply, TestApp, assert_problem, join_all, spawn_app};

fn message_request() -> Value {
    json!({"to": NORMAL_NUMBER, "from": "Rampart", "body": "scope check"})
}

fn assert_forbidden(reply: &Reply, what: &str) {
    assert_eq!(
        reply.status,
        StatusCode::FORBIDDEN,
        "{what} should be forbidden: {}",
        reply.text
    );
    assert_eq!(reply.problem_code(), "insufficient_scope", "{what}");
}

fn assert_unauthorized(reply: &Reply, what: &str) {
    assert_eq!(
        reply.status,
        StatusCode::UNAUTHORIZED,
        "{what} should be 401: {}",
        reply.text
    );
    assert_problem(reply);
    assert_eq!(reply.problem_code(), "unauthorized", "{what}");
    assert!(
        reply
            .header("www-authenticate")
            .is_some_and(|v| v.to_ascii_lowercase().starts_with("bearer")),
        "{what}: a 401 must carry `WWW-Authenticate: Bearer ...`, got {:?}",
        reply.headers
    );
}

/// A message of the default account, for read attempts.
async fn some_message(app: &TestApp) -> String {
    app.send_to(NORMAL_NUMBER, "a message to read").await
}

#[tokio::test]
async fn a_send_only_key_can_send_but_not_read_messages_or_manage_keys() {
    let app = spawn_app();
    let existing = some_message(&app).await;
    let (_, send_key) = app.create_key(&["messages:send"], None).await;

    let sent = app
        .post_json("/v1/messages", &send_key, &message_request())
        .await;
    assert_eq!(sent.status, StatusCode::ACCEPTED, "{}", sent.text);

    let path = format!("/v1/messages/{existing}");
    assert_forbidden(&app.get(&path, &send_key).await, "GET a message");
    assert_forbidden(&app.get("/v1/messages", &send_key).await, "list messages");
    assert_forbidden(&app.get("/v1/api-keys", &send_key).await, "list keys");
    assert_forbidden(
        &app.post_json(
            "/v1/api-keys",
            &send_key,
            &json!({"name": "x", "scopes": ["messages:send"]}),
        )
        .await,
        "create a key",
    );
    assert_forbidden(&app.get("/metrics", &send_key).await, "metrics");
}

#[tokio::test]
async fn a_read_only_key_can_read_and_list_messages_but_not_send_or_cancel() {
    let app = spawn_app();
    let existing = some_message(&app).await;
    let (_, read_key) = app.create_key(&["messages:read"], None).await;

    let read = app
        .get(&format!("/v1/messages/{existing}"), &read_key)
        .await;
    assert_eq!(read.status, StatusCode::OK, "{}", read.text);
    assert_eq!(read.json()["id"], existing.as_str());
    let listed = app.get("/v1/messages", &read_key).await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.text);

    assert_forbidden(
        &app.post_json("/v1/messages", &read_key, &message_request())
            .await,
        "send",
    );
    assert_forbidden(
        &app.post_json(
            &format!("/v1/messages/{existing}/cancel"),
            &read_key,
            &json!({}),
        )
        .await,
        "cancel",
    );
    assert_forbidden(&app.get("/v1/api-keys", &read_key).await, "list keys");
    assert_forbidden(&app.get("/metrics", &read_key).await, "metrics");
}

#[tokio::test]
async fn a_keys_manage_key_can_create_list_read_and_revoke_keys_but_not_send() {
    let app = spawn_app();
    let existing = some_message(&app).await;
    let (_, manager) = app.create_key(&["keys:manage"], None).await;

    let created = app
        .post_json(
            "/v1/api-keys",
            &manager,
            &json!({"name": "made by the manager", "scopes": ["keys:manage"]}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let new_id = created.json()["id"].as_str().unwrap().to_owned();

    let listed = app.get("/v1/api-keys", &manager).await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.text);
    assert!(
        listed.json()["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k["id"] == new_id.as_str()),
        "the new key is listed: {}",
        listed.text
    );
    let one = app.get(&format!("/v1/api-keys/{new_id}"), &manager).await;
    assert_eq!(one.status, StatusCode::OK, "{}", one.text);
    let revoked = app
        .delete(&format!("/v1/api-keys/{new_id}"), &manager)
        .await;
    assert_eq!(revoked.status, StatusCode::NO_CONTENT, "{}", revoked.text);

    assert_forbidden(
        &app.post_json("/v1/messages", &manager, &message_request())
            .await,
        "send",
    );
    assert_forbidden(
        &app.get(&format!("/v1/messages/{existing}"), &manager).await,
        "read a message",
    );
    assert_forbidden(&app.get("/metrics", &manager).await, "metrics");
}

#[tokio::test]
async fn a_metrics_key_can_scrape_prometheus_metrics_and_nothing_else() {
    let app = spawn_app();
    let existing = some_message(&app).await;
    // Metrics are server-wide: an operator's key scrapes them, never an account's.
    let metrics_key = app.cli(&[
        "apikey",
        "create",
        "--operator",
        "--name",
        "scraper",
        "--scopes",
        "metrics:read",
    ]);

    let scraped = app.get("/metrics", &metrics_key).await;
    assert_eq!(scraped.status, StatusCode::OK, "{}", scraped.text);
    assert!(
        scraped
            .header("content-type")
            .is_some_and(|ct| ct.starts_with("text/plain")),
        "Prometheus text format: {:?}",
        scraped.header("content-type")
    );
    assert!(
        scraped
            .text
            .contains("# TYPE rampart_http_requests_total counter"),
        "the exposition holds the request counter: {}",
        scraped.text
    );
    assert!(
        scraped
            .text
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .all(|l| l
                .rsplit(' ')
                .next()
                .is_some_and(|v| v.parse::<f64>().is_ok())),
        "every sample line ends in a number: {}",
        scraped.text
    );

    assert_forbidden(
        &app.post_json("/v1/messages", &metrics_key, &message_request())
            .await,
        "send",
    );
    assert_forbidden(
        &app.get(&format!("/v1/messages/{existing}"), &metrics_key)
            .await,
        "read a message",
    );
    assert_forbidden(&app.get("/v1/messages", &metrics_key).await, "list");
    assert_forbidden(&app.get("/v1/api-keys", &metrics_key).await, "list keys");
}

#[tokio::test]
async fn requests_without_a_valid_key_get_a_401_problem_with_www_authenticate() {
    let app = spawn_app();
    let key_id = &app.key[..15];
    let wrong_secret = format!("{key_id}{}", "A".repeat(app.key.len() - 15));
    assert_ne!(wrong_secret, app.key);
    let unknown = format!("rk_zzzzzzzzzzzz{}", "b".repeat(app.key.len() - 15));

    let none = app.get("/v1/messages", "").await;
    assert_unauthorized(&none, "no key");

    for (what, header) in [
        ("malformed key", "Bearer not-a-key".to_owned()),
        ("truncated key", format!("Bearer {}", &app.key[..20])),
        ("basic scheme", format!("Basic {}", app.key)),
        ("unknown key", format!("Bearer {unknown}")),
        ("right id, wrong secret", format!("Bearer {wrong_secret}")),
        ("empty bearer", "Bearer ".to_owned()),
    ] {
        let reply = app
            .request(
                reqwest::Method::GET,
                "/v1/messages",
                "",
                None,
                &[("authorization", header.as_str())],
            )
            .await;
        assert_unauthorized(&reply, what);
    }

    let send = app.post_json("/v1/messages", "", &message_request()).await;
    assert_unauthorized(&send, "send without a key");
    let metrics = app.get("/metrics", "").await;
    assert_unauthorized(&metrics, "metrics without a key");
}

#[tokio::test]
async fn a_key_revoked_over_the_api_is_refused_on_its_next_request() {
    let app = spawn_app();
    let (id, key) = app.create_key(&["messages:read"], None).await;
    let before = app.get("/v1/messages", &key).await;
    assert_eq!(before.status, StatusCode::OK, "{}", before.text);

    let revoked = app.delete(&format!("/v1/api-keys/{id}"), &app.key).await;
    assert_eq!(revoked.status, StatusCode::NO_CONTENT, "{}", revoked.text);

    assert_unauthorized(&app.get("/v1/messages", &key).await, "revoked key");
    let shown = app.get(&format!("/v1/api-keys/{id}"), &app.key).await;
    assert!(
        shown.json()["revoked_at"].is_string(),
        "the key shows when it was revoked: {}",
        shown.text
    );
    let again = app.delete(&format!("/v1/api-keys/{id}"), &app.key).await;
    assert_eq!(again.status, StatusCode::NOT_FOUND, "{}", again.text);
}

#[tokio::test]
async fn a_key_revoked_with_the_cli_while_the_server_runs_is_refused_on_its_next_request() {
    let app = spawn_app();
    let (id, key) = app.create_key(&["messages:read"], None).await;
    let before = app.get("/v1/messages", &key).await;
    assert_eq!(before.status, StatusCode::OK, "{}", before.text);

    let out = app.cli(&["apikey", "revoke", &id]);
    assert!(out.contains(&id), "the CLI says what it revoked: {out}");

    assert_unauthorized(&app.get("/v1/messages", &key).await, "key revoked by CLI");
    let listed = app.cli(&["apikey", "list"]);
    let line = listed
        .lines()
        .find(|l| l.starts_with(&id))
        .unwrap_or_else(|| panic!("{id} in the CLI listing: {listed}"));
    assert!(line.contains("revoked"), "{line}");
    // The server's own key is untouched.
    let mine = app.get("/v1/messages", &app.key).await;
    assert_eq!(mine.status, StatusCode::OK, "{}", mine.text);
}

// A key that expires while in use is refused: the app-level tests drive that on a manual
// clock (`app::tests`). Over HTTP, an expiry already behind us is refused at creation.
#[tokio::test]
async fn a_key_cannot_be_created_with_an_expiry_in_the_past() {
    let app = spawn_app();
    let reply = app
        .post_json(
            "/v1/api-keys",
            &app.key,
            &json!({
                "name": "born expired",
                "scopes": ["messages:read"],
                "expires_at": crate::helpers::rfc3339_from_now(time::Duration::hours(-1)),
            }),
        )
        .await;
    reply.assert_problem(422, "invalid_expires_at");
    assert_problem(&reply);
}

#[tokio::test]
async fn a_key_cannot_create_a_key_with_scopes_it_lacks() {
    let app = spawn_app();
    let (_, manager) = app
        .create_key(&["keys:manage", "messages:read"], None)
        .await;
    for scopes in [
        json!(["messages:send"]),
        json!(["messages:read", "metrics:read"]),
        json!(["*", "messages:send"]),
    ] {
        let reply = app
            .post_json(
                "/v1/api-keys",
                &manager,
                &json!({"name": "escalation", "scopes": scopes}),
            )
            .await;
        reply.assert_problem(403, "scope_escalation");
    }
    // `*` asks for everything the maker may pass on: exactly its own scopes.
    let star = app
        .post_json(
            "/v1/api-keys",
            &manager,
            &json!({"name": "star", "scopes": ["*"]}),
        )
        .await;
    assert_eq!(star.status, StatusCode::CREATED, "{}", star.text);
    let mut scopes: Vec<String> = serde_json::from_value(star.json()["scopes"].clone()).unwrap();
    scopes.sort();
    assert_eq!(scopes, ["keys:manage", "messages:read"]);
    // Scopes it holds it may hand on.
    let ok = app
        .post_json(
            "/v1/api-keys",
            &manager,
            &json!({"name": "narrower", "scopes": ["messages:read"]}),
        )
        .await;
    assert_eq!(ok.status, StatusCode::CREATED, "{}", ok.text);
}

#[tokio::test]
async fn a_new_keys_secret_is_shown_once_and_never_in_list_or_get() {
    let app = spawn_app();
    let created = app
        .post_json(
            "/v1/api-keys",
            &app.key,
            &json!({"name": "shown once", "scopes": ["messages:read"]}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let body = created.json();
    let id = body["id"].as_str().unwrap().to_owned();
    let key = body["key"].as_str().unwrap().to_owned();
    assert!(key.starts_with(&id), "the key starts with its public id");
    let secret = &key[id.len()..];
    assert!(secret.len() >= 20, "a secret part follows the id: {key}");
    assert_eq!(
        app.get("/v1/messages", &key).await.status,
        StatusCode::OK,
        "the shown key works"
    );

    let listed = app.get("/v1/api-keys", &app.key).await;
    let one = app.get(&format!("/v1/api-keys/{id}"), &app.key).await;
    for (what, reply) in [("list", &listed), ("get", &one)] {
        assert_eq!(reply.status, StatusCode::OK, "{what}: {}", reply.text);
        assert!(
            !reply.text.contains(secret),
            "{what} shows the secret: {}",
            reply.text
        );
    }
    for view in listed.json()["data"].as_array().unwrap() {
        assert!(view.get("key").is_none(), "list shows a `key`: {view}");
        assert!(view.get("hash").is_none(), "list shows a `hash`: {view}");
    }
    assert!(one.json().get("key").is_none(), "get shows a `key`");
    // The bootstrap key's secret is not shown either.
    assert!(!listed.text.contains(&app.key[15..]), "{}", listed.text);
}

#[tokio::test]
async fn many_keys_revoked_at_once_each_answer_204_and_each_stops_working() {
    let app = spawn_app();
    let mut keys = Vec::new();
    for _ in 0..64 {
        keys.push(app.create_key(&["messages:read"], None).await);
    }
    let paths: Vec<String> = keys
        .iter()
        .map(|(id, _)| format!("/v1/api-keys/{id}"))
        .collect();
    let revocations = join_all(paths.iter().map(|path| app.delete(path, &app.key))).await;
    let failed: Vec<String> = revocations
        .iter()
        .zip(&keys)
        .filter(|(reply, _)| reply.status != StatusCode::NO_CONTENT)
        .map(|(reply, (id, _))| format!("{id}: {} {}", reply.status, reply.text))
        .collect();
    if !failed.is_empty() {
        let log = app.server_log();
        let errors: Vec<&str> = log.lines().filter(|l| l.contains("ERROR")).collect();
        panic!(
            "{} of {} concurrent revocations did not answer 204:\n{}\nserver errors:\n{}",
            failed.len(),
            keys.len(),
            failed.join("\n"),
            errors.join("\n")
        );
    }
    for (id, key) in &keys {
        assert_unauthorized(&app.get("/v1/messages", key).await, id);
    }
}
