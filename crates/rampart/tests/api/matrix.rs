//! Every scope against every route: the routes come from the served OpenAPI document, the
//! expectations from one table (`REQUIRED`), so a new route fails here until it says which
//! scope opens it. A credential that lacks the scope gets 403 `insufficient_scope`, never a
//! 2xx; one that holds it is not refused for its scope. And every route with an `{id}` answers
//! 404 to another account's existing id.
//!
//! Credentials are a list of (label, token, scopes held): today one key per scope (account
//! scopes in the default account, server-wide ones as operators' keys); sessions per role
//! (`rampart::identity::roles::MATRIX`) slot in the same way.

use std::collections::BTreeSet;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use rampart::identity::Scope;

use crate::helpers::{NORMAL_NUMBER, Reply, TestApp, id_of, rfc3339_from_now, spawn_app};

/// Who may call each documented operation: `None` for anyone (no key needed), else the
/// scopes any one of which opens it.
const REQUIRED: &[(&str, &str, Option<&[&str]>)] = &[
    ("GET", "/healthz", None),
    ("GET", "/readyz", None),
    ("GET", "/v1/openapi.json", None),
    ("GET", "/metrics", Some(&["metrics:read"])),
    ("GET", "/v1/connectors", Some(&["connectors:read"])),
    ("GET", "/v1/bans", Some(&["bans:manage"])),
    ("DELETE", "/v1/bans/{ip}", Some(&["bans:manage"])),
    ("POST", "/v1/messages", Some(&["messages:send"])),
    (
        "GET",
        "/v1/messages",
        Some(&["messages:read", "messages:status"]),
    ),
    (
        "GET",
        "/v1/messages/{id}",
        Some(&["messages:read", "messages:status"]),
    ),
    ("POST", "/v1/messages/{id}/cancel", Some(&["messages:send"])),
    ("GET", "/v1/inbound", Some(&["inbound:read"])),
    ("GET", "/v1/inbound/{id}", Some(&["inbound:read"])),
    ("GET", "/v1/numbers", Some(&["inbound:read"])),
    // An account's keys with keys:manage; the operators' keys with accounts:manage.
    (
        "GET",
        "/v1/api-keys",
        Some(&["keys:manage", "accounts:manage"]),
    ),
    (
        "POST",
        "/v1/api-keys",
        Some(&["keys:manage", "accounts:manage"]),
    ),
    (
        "GET",
        "/v1/api-keys/{id}",
        Some(&["keys:manage", "accounts:manage"]),
    ),
    (
        "DELETE",
        "/v1/api-keys/{id}",
        Some(&["keys:manage", "accounts:manage"]),
    ),
];

/// Something that authenticates, and the scopes it holds.
struct Credential {
    label: String,
    token: String,
    scopes: BTreeSet<String>,
    /// Acts over the instance (an operator's key) rather than in the default account.
    operator: bool,
}

/// One key per scope, each holding exactly that scope.
fn one_key_per_scope(app: &TestApp) -> Vec<Credential> {
    Scope::ALL
        .iter()
        .map(|scope| {
            let name = scope.as_str();
            let mut args = vec!["apikey", "create", "--name", name, "--scopes", name];
            if scope.is_server_wide() {
                args.push("--operator");
            }
            Credential {
                label: format!("key with {name}"),
                token: app.cli(&args),
                scopes: BTreeSet::from([name.to_owned()]),
                operator: scope.is_server_wide(),
            }
        })
        .collect()
}

/// The operations the served document lists, as (METHOD, path).
async fn documented_operations(app: &TestApp) -> Vec<(String, String)> {
    let doc = app.get("/v1/openapi.json", "").await;
    assert_eq!(doc.status, StatusCode::OK, "{}", doc.text);
    let mut operations = Vec::new();
    for (path, item) in doc.json()["paths"].as_object().expect("paths") {
        for method in ["get", "post", "put", "patch", "delete"] {
            if item.get(method).is_some() {
                operations.push((method.to_uppercase(), path.clone()));
            }
        }
    }
    operations.sort();
    operations
}

fn required(method: &str, path: &str) -> Option<&'static [&'static str]> {
    REQUIRED
        .iter()
        .find(|(m, p, _)| *m == method && *p == path)
        .unwrap_or_else(|| {
            panic!("{method} {path} is documented but REQUIRED does not say who may call it")
        })
        .2
}

fn scheduled_message() -> Value {
    json!({
        "to": NORMAL_NUMBER, "from": "Rampart", "body": "matrix",
        "send_at": rfc3339_from_now(time::Duration::hours(1)),
    })
}

/// A well-formed, harmless request for the operation, with ids that exist where the caller
/// could succeed. Returns the path and the JSON body to send, if any.
async fn harmless_request(
    app: &TestApp,
    who: &Credential,
    method: &str,
    path: &str,
    message_id: &str,
) -> (String, Option<Value>) {
    match (method, path) {
        ("GET", "/v1/messages/{id}") => (format!("/v1/messages/{message_id}"), None),
        ("POST", "/v1/messages/{id}/cancel") => {
            // A fresh scheduled message each time, so a permitted cancel can succeed.
            let id = id_of(&app.send(&scheduled_message()).await[0]);
            (format!("/v1/messages/{id}/cancel"), Some(json!({})))
        }
        ("POST", "/v1/messages") => (path.to_owned(), Some(scheduled_message())),
        ("GET", "/v1/inbound/{id}") => {
            // Only a carrier makes inbound messages: a well-formed id that does not exist.
            (
                "/v1/inbound/inb_00000000000000000000000000".to_owned(),
                None,
            )
        }
        ("DELETE", "/v1/bans/{ip}") => ("/v1/bans/127.0.0.9".to_owned(), None),
        ("POST", "/v1/api-keys") => (
            path.to_owned(),
            Some(json!({"name": "matrix child", "scopes": ["*"]})),
        ),
        ("GET" | "DELETE", "/v1/api-keys/{id}") => {
            // A key of the caller's realm holding the caller's own scopes, so that a
            // permitted revoke is not refused for escalation.
            let scopes = who.scopes.iter().cloned().collect::<Vec<_>>().join(",");
            let mut args = vec!["apikey", "create", "--name", "victim", "--scopes", &scopes];
            if who.operator {
                args.push("--operator");
            }
            let victim = app.cli(&args);
            (format!("/v1/api-keys/{}", &victim[..15]), None)
        }
        _ => {
            assert!(!path.contains('{'), "no placeholder for {method} {path}");
            (path.to_owned(), None)
        }
    }
}

async fn call(app: &TestApp, method: &str, path: &str, key: &str, body: Option<Value>) -> Reply {
    let method = Method::from_bytes(method.as_bytes()).expect("a method");
    let body = body.map(|b| (Some("application/json"), serde_json::to_vec(&b).unwrap()));
    app.request(method, path, key, body, &[]).await
}

#[tokio::test]
async fn every_scope_opens_exactly_the_routes_the_table_gives_it() {
    let app = spawn_app();
    let operations = documented_operations(&app).await;
    assert!(operations.len() >= REQUIRED.len(), "{operations:?}");
    for (method, path, _) in REQUIRED {
        assert!(
            operations.contains(&((*method).to_owned(), (*path).to_owned())),
            "REQUIRED names {method} {path}, which the document does not list"
        );
    }
    let message_id = app.send_to(NORMAL_NUMBER, "an existing message").await;
    let credentials = one_key_per_scope(&app);

    let mut unexpected = Vec::new();
    let mut checked = 0;
    for who in &credentials {
        for (method, path) in &operations {
            let (url, body) = harmless_request(&app, who, method, path, &message_id).await;
            let reply = call(&app, method, &url, &who.token, body).await;
            checked += 1;
            let allowed = match required(method, path) {
                None => true,
                Some(any_of) => any_of.iter().any(|s| who.scopes.contains(*s)),
            };
            let status = reply.status;
            let wrong = if allowed {
                // Held: never refused for its scope (404/409 for ids and states are fine).
                status == StatusCode::FORBIDDEN || status == StatusCode::UNAUTHORIZED
            } else {
                status.is_success()
                    || status != StatusCode::FORBIDDEN
                    || reply.problem_code() != "insufficient_scope"
            };
            if wrong {
                unexpected.push(format!(
                    "{}: {method} {url} -> {status} (expected {}): {}",
                    who.label,
                    if allowed {
                        "not 401/403"
                    } else {
                        "403 insufficient_scope"
                    },
                    reply.text.chars().take(200).collect::<String>()
                ));
            }
        }
    }
    assert_eq!(checked, credentials.len() * operations.len());
    assert!(
        unexpected.is_empty(),
        "{} unexpected outcomes:\n{}",
        unexpected.len(),
        unexpected.join("\n")
    );

    // Without a key: the open routes answer, every other one is 401.
    for (method, path) in &operations {
        let no_key = Credential {
            label: "no key".into(),
            token: String::new(),
            scopes: BTreeSet::new(),
            operator: false,
        };
        if required(method, path).is_some() && path.contains("/api-keys/") {
            // The placeholder would make a key with no scope; any well-formed id will do.
            let reply = call(&app, method, "/v1/api-keys/rk_000000000000", "", None).await;
            assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{method} {path}");
            continue;
        }
        let (url, body) = harmless_request(&app, &no_key, method, path, &message_id).await;
        let reply = call(&app, method, &url, "", body).await;
        match required(method, path) {
            None => assert!(
                reply.status.is_success(),
                "{method} {url}: {}",
                reply.status
            ),
            Some(_) => assert_eq!(
                reply.status,
                StatusCode::UNAUTHORIZED,
                "{method} {url}: {}",
                reply.text
            ),
        }
    }
}

#[tokio::test]
async fn every_route_with_an_id_answers_404_to_another_accounts_existing_id() {
    let app = spawn_app();
    let account_b = app.cli(&["account", "create", "--name", "tenant b"]);
    let key_b = app.cli(&["apikey", "create", "--account", &account_b, "--scopes", "*"]);
    let sent = app
        .post_json("/v1/messages", &key_b, &scheduled_message())
        .await;
    assert_eq!(sent.status, StatusCode::ACCEPTED, "{}", sent.text);
    let b_message = id_of(&sent.json()["messages"][0]);
    let b_key_id = key_b[..15].to_owned();

    let operations = documented_operations(&app).await;
    let with_id: Vec<_> = operations
        .iter()
        .filter(|(_, path)| path.contains("{id}"))
        .collect();
    assert!(with_id.len() >= 5, "{with_id:?}");
    for (method, path) in with_id {
        let id = if path.starts_with("/v1/messages/") {
            b_message.clone()
        } else if path.starts_with("/v1/api-keys/") {
            b_key_id.clone()
        } else if path.starts_with("/v1/inbound/") {
            // No inbound message can be made over the API (only a carrier makes them): a
            // well-formed id stands in; tests/smpp covers inbound across accounts.
            "inb_00000000000000000000000000".to_owned()
        } else {
            panic!("no other account's id for {method} {path}: add one here");
        };
        let url = path.replace("{id}", &id);
        let body = (method == "POST").then(|| json!({}));
        let reply = call(&app, method, &url, &app.key, body).await;
        assert_eq!(
            reply.status,
            StatusCode::NOT_FOUND,
            "{method} {url} with account A's key: {}",
            reply.text
        );
        assert_eq!(reply.problem_code(), "not_found", "{method} {url}");
    }
    // B's message and key are untouched.
    let b_view = app.get(&format!("/v1/messages/{b_message}"), &key_b).await;
    assert_eq!(b_view.json()["status"], "queued", "{}", b_view.text);
}
