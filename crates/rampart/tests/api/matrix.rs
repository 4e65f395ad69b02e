//! Every credential against every route: the routes come from the served OpenAPI document, the
//! expectations from one table (`REQUIRED`), so a new route fails here until it says who may
//! call it. Credentials are one key per scope (account scopes in the default account,
//! server-wide ones as operators' keys) and one signed-in session per role, whose permissions
//! come from `rampart::identity::roles::MATRIX`. A credential that lacks the permission gets
//! 403 (`insufficient_scope`, or `session_required` for a key on a person's own routes), never
//! a 2xx; one that holds it is not refused. And every route with an account's id answers 404
//! to another account's existing id.

use std::collections::BTreeSet;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use rampart::identity::Scope;
use rampart::identity::roles::{MATRIX, RoleKind};

use crate::helpers::{NORMAL_NUMBER, Reply, TestApp, id_of, rfc3339_from_now, spawn_app};
use crate::session::{PASSWORD, Session};

/// Who may call an operation.
#[derive(Debug, Clone, Copy)]
enum Who {
    /// Anyone, with or without credentials: it answers 2xx.
    Anyone,
    /// A step of signing in, setting up or resetting: open to anyone, its answer depends on
    /// what is sent (a wrong code is a 401), never on the caller's permissions.
    SignInStep,
    /// A signed-in person, about themselves; a key gets 403 `session_required`.
    Person,
    /// Any one of these permissions.
    AnyOf(&'static [&'static str]),
}

use Who::*;

const ACCOUNTS: &[&str] = &["accounts:manage"];

/// Who may call each documented operation.
const REQUIRED: &[(&str, &str, Who)] = &[
    ("GET", "/healthz", Anyone),
    ("GET", "/readyz", Anyone),
    ("GET", "/v1/openapi.json", Anyone),
    ("GET", "/v1/roles", Anyone),
    ("GET", "/metrics", AnyOf(&["metrics:read"])),
    ("GET", "/v1/connectors", AnyOf(&["connectors:read"])),
    ("GET", "/v1/bans", AnyOf(&["bans:manage"])),
    ("DELETE", "/v1/bans/{ip}", AnyOf(&["bans:manage"])),
    ("POST", "/v1/messages", AnyOf(&["messages:send"])),
    ("POST", "/v1/messages/dry-run", AnyOf(&["messages:send"])),
    (
        "GET",
        "/v1/messages",
        AnyOf(&["messages:read", "messages:status"]),
    ),
    (
        "GET",
        "/v1/messages/{id}",
        AnyOf(&["messages:read", "messages:status"]),
    ),
    (
        "POST",
        "/v1/messages/{id}/cancel",
        AnyOf(&["messages:send"]),
    ),
    ("GET", "/v1/inbound", AnyOf(&["inbound:read"])),
    ("GET", "/v1/inbound/{id}", AnyOf(&["inbound:read"])),
    ("GET", "/v1/numbers", AnyOf(&["inbound:read"])),
    // An account's trail with audit:read; the instance's with accounts:manage.
    (
        "GET",
        "/v1/audit-events",
        AnyOf(&["audit:read", "accounts:manage"]),
    ),
    // An account's keys with keys:manage; the operators' keys with accounts:manage.
    (
        "GET",
        "/v1/api-keys",
        AnyOf(&["keys:manage", "accounts:manage"]),
    ),
    (
        "POST",
        "/v1/api-keys",
        AnyOf(&["keys:manage", "accounts:manage"]),
    ),
    (
        "GET",
        "/v1/api-keys/{id}",
        AnyOf(&["keys:manage", "accounts:manage"]),
    ),
    (
        "DELETE",
        "/v1/api-keys/{id}",
        AnyOf(&["keys:manage", "accounts:manage"]),
    ),
    ("POST", "/v1/auth/login", SignInStep),
    ("POST", "/v1/auth/setup", SignInStep),
    ("POST", "/v1/auth/password-reset", SignInStep),
    ("POST", "/v1/auth/password-reset/complete", SignInStep),
    ("POST", "/v1/auth/invitations/accept", SignInStep),
    ("POST", "/v1/auth/login/passkey/start", SignInStep),
    ("POST", "/v1/auth/login/passkey/finish", SignInStep),
    ("POST", "/v1/auth/logout", Person),
    ("GET", "/v1/auth/session", Person),
    ("POST", "/v1/auth/reauthenticate", Person),
    ("GET", "/v1/users/me", Person),
    ("POST", "/v1/users/me/password", Person),
    ("GET", "/v1/users/me/sessions", Person),
    ("DELETE", "/v1/users/me/sessions/{id}", Person),
    ("POST", "/v1/users/me/passkeys/register/start", Person),
    ("POST", "/v1/users/me/passkeys/register/finish", Person),
    ("GET", "/v1/users/me/passkeys", Person),
    ("DELETE", "/v1/users/me/passkeys/{id}", Person),
    ("POST", "/v1/users/me/totp", Person),
    ("POST", "/v1/users/me/totp/{id}/confirm", Person),
    ("GET", "/v1/users/me/factors", Person),
    ("DELETE", "/v1/users/me/factors/{id}", Person),
    ("POST", "/v1/users/me/recovery-codes", Person),
    ("POST", "/v1/users/me/phone", Person),
    ("DELETE", "/v1/users/me/phone", Person),
    ("POST", "/v1/users/me/phone/verify", Person),
    ("POST", "/v1/auth/login/totp", SignInStep),
    ("POST", "/v1/auth/login/sms/send", SignInStep),
    ("POST", "/v1/auth/login/sms", SignInStep),
    ("POST", "/v1/auth/login/recovery", SignInStep),
    (
        "GET",
        "/v1/accounts/{id}/allowed-ips",
        AnyOf(&["account:manage", "accounts:manage"]),
    ),
    (
        "PUT",
        "/v1/accounts/{id}/allowed-ips",
        AnyOf(&["account:manage", "accounts:manage"]),
    ),
    (
        "PUT",
        "/v1/accounts/{id}/operator-allowed-ips",
        AnyOf(ACCOUNTS),
    ),
    (
        "GET",
        "/v1/accounts/{id}/rate-limits",
        AnyOf(&["account:manage", "accounts:manage"]),
    ),
    (
        "PUT",
        "/v1/accounts/{id}/rate-limits",
        AnyOf(&["account:manage", "accounts:manage"]),
    ),
    (
        "PUT",
        "/v1/accounts/{id}/operator-rate-limits",
        AnyOf(ACCOUNTS),
    ),
    (
        "GET",
        "/v1/accounts/{id}/retention",
        AnyOf(&["account:manage", "accounts:manage"]),
    ),
    (
        "PUT",
        "/v1/accounts/{id}/retention",
        AnyOf(&["account:manage", "accounts:manage"]),
    ),
    (
        "GET",
        "/v1/accounts/{id}/policy",
        AnyOf(&["members:read", "accounts:manage"]),
    ),
    (
        "PUT",
        "/v1/accounts/{id}/policy",
        AnyOf(&["account:manage", "accounts:manage"]),
    ),
    (
        "GET",
        "/v1/accounts/{id}/security",
        AnyOf(&["members:read", "accounts:manage"]),
    ),
    (
        "PUT",
        "/v1/accounts/{id}/security",
        AnyOf(&["account:manage", "accounts:manage"]),
    ),
    (
        "GET",
        "/v1/accounts/{id}/balance",
        AnyOf(&["billing:read", "accounts:manage"]),
    ),
    (
        "GET",
        "/v1/accounts/{id}/ledger",
        AnyOf(&["billing:read", "accounts:manage"]),
    ),
    ("POST", "/v1/accounts/{id}/credits", AnyOf(ACCOUNTS)),
    (
        "POST",
        "/v1/messages/{id}/refund",
        AnyOf(&["account:manage", "accounts:manage"]),
    ),
    ("GET", "/v1/opt-outs", AnyOf(&["messages:read"])),
    ("POST", "/v1/opt-outs", AnyOf(&["account:manage"])),
    (
        "DELETE",
        "/v1/opt-outs/{number}",
        AnyOf(&["account:manage"]),
    ),
    ("POST", "/v1/opt-outs/import", AnyOf(&["account:manage"])),
    ("GET", "/v1/opt-outs/export", AnyOf(&["messages:read"])),
    ("GET", "/v1/opt-outs/settings", AnyOf(&["messages:read"])),
    ("PUT", "/v1/opt-outs/settings", AnyOf(&["account:manage"])),
    ("GET", "/v1/pumping/blocks", AnyOf(&["account:manage"])),
    (
        "DELETE",
        "/v1/pumping/blocks/{prefix}",
        AnyOf(&["account:manage"]),
    ),
    ("GET", "/v1/users", AnyOf(ACCOUNTS)),
    ("POST", "/v1/users", AnyOf(ACCOUNTS)),
    ("POST", "/v1/users/{id}/disable", AnyOf(ACCOUNTS)),
    ("POST", "/v1/users/{id}/enable", AnyOf(ACCOUNTS)),
    (
        "GET",
        "/v1/accounts/{id}/members",
        AnyOf(&["members:read", "accounts:manage"]),
    ),
    (
        "POST",
        "/v1/accounts/{id}/members",
        AnyOf(&["members:manage", "accounts:manage"]),
    ),
    (
        "PATCH",
        "/v1/accounts/{id}/members/{user_id}",
        AnyOf(&["members:manage", "accounts:manage"]),
    ),
    (
        "DELETE",
        "/v1/accounts/{id}/members/{user_id}",
        AnyOf(&["members:manage", "accounts:manage"]),
    ),
];

/// How a credential authenticates.
#[derive(Clone)]
enum Auth {
    None,
    Key(String),
    Session { email: String, session: Session },
}

/// Something that authenticates, and the permissions it holds.
struct Credential {
    label: String,
    auth: Auth,
    scopes: BTreeSet<String>,
    /// Acts over the instance (an operator) rather than in the default account.
    operator: bool,
}

impl Credential {
    fn is_person(&self) -> bool {
        matches!(self.auth, Auth::Session { .. })
    }
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
                auth: Auth::Key(app.cli(&args)),
                scopes: BTreeSet::from([name.to_owned()]),
                operator: scope.is_server_wide(),
            }
        })
        .collect()
}

/// One signed-in person per role: operators, and members of the default account.
async fn one_session_per_role(app: &TestApp) -> Vec<Credential> {
    let mut credentials = Vec::new();
    for (role, scopes) in MATRIX {
        let email = format!("{role}@matrix.example.com");
        app.create_person(&email, role.as_str(), None);
        let session = app.sign_in(&email, PASSWORD).await;
        credentials.push(Credential {
            label: format!("{role} session"),
            auth: Auth::Session { email, session },
            scopes: scopes.iter().map(|s| s.as_str().to_owned()).collect(),
            operator: role.kind() == RoleKind::Operator,
        });
    }
    credentials
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

fn required(method: &str, path: &str) -> Who {
    REQUIRED
        .iter()
        .find(|(m, p, _)| *m == method && *p == path)
        .unwrap_or_else(|| {
            panic!("{method} {path} is documented but REQUIRED does not say who may call it")
        })
        .2
}

/// A person made for one call to change or remove; returns their user id.
fn victim(app: &TestApp, n: &mut usize) -> String {
    *n += 1;
    app.create_person(&format!("victim{n}@matrix.example.com"), "viewer", None)
}

fn scheduled_message() -> Value {
    json!({
        "to": NORMAL_NUMBER, "from": "Rampart", "body": "matrix",
        "send_at": rfc3339_from_now(time::Duration::hours(1)),
    })
}

/// A well-formed, harmless request for the operation, with ids that exist where the caller
/// could succeed. Returns the path, the JSON body to send, if any, and the credential to use
/// instead of the caller's (a throwaway session of the same person, for signing out).
async fn harmless_request(
    app: &TestApp,
    who: &Credential,
    method: &str,
    path: &str,
    ids: &Ids,
    n: &mut usize,
) -> (String, Option<Value>, Option<Auth>) {
    let account = &ids.account;
    let (url, body) = match (method, path) {
        ("GET", "/v1/messages/{id}") => (format!("/v1/messages/{}", ids.message), None),
        ("POST", "/v1/messages/{id}/cancel") => {
            // A fresh scheduled message each time, so a permitted cancel can succeed.
            let id = id_of(&app.send(&scheduled_message()).await[0]);
            (format!("/v1/messages/{id}/cancel"), Some(json!({})))
        }
        ("POST", "/v1/messages") => (path.to_owned(), Some(scheduled_message())),
        // Never charged (the default account is not prepaid): a permitted caller gets 409.
        ("POST", "/v1/messages/{id}/refund") => {
            (format!("/v1/messages/{}/refund", ids.message), None)
        }
        ("GET", "/v1/accounts/{id}/balance" | "/v1/accounts/{id}/ledger") => {
            (path.replace("{id}", account), None)
        }
        ("POST", "/v1/accounts/{id}/credits") => (
            format!("/v1/accounts/{account}/credits"),
            Some(json!({"amount": "1.00"})),
        ),
        ("POST", "/v1/messages/dry-run") => (path.to_owned(), Some(scheduled_message())),
        ("GET", "/v1/accounts/{id}/policy") => (format!("/v1/accounts/{account}/policy"), None),
        ("PUT", "/v1/accounts/{id}/policy") => {
            (format!("/v1/accounts/{account}/policy"), Some(json!({})))
        }
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
            let realm: Vec<String> = who
                .scopes
                .iter()
                .filter(|s| Scope::parse(s).is_some_and(|s| s.is_server_wide()) == who.operator)
                .cloned()
                .collect();
            let scopes = if realm.is_empty() {
                "messages:status".to_owned()
            } else {
                realm.join(",")
            };
            let mut args = vec!["apikey", "create", "--name", "victim", "--scopes", &scopes];
            if who.operator {
                args[5] = if realm.is_empty() {
                    "metrics:read"
                } else {
                    &scopes
                };
                args.push("--operator");
            }
            let victim = app.cli(&args);
            (format!("/v1/api-keys/{}", &victim[..15]), None)
        }
        // A right password (wrong ones would slow this address down for the rest).
        ("POST", "/v1/auth/login") => (
            path.to_owned(),
            Some(json!({"email": "viewer@matrix.example.com", "password": PASSWORD})),
        ),
        ("POST", "/v1/auth/setup") => (
            path.to_owned(),
            Some(
                json!({"setup_code": "rsu_000000000000_00000000000000000000000000000000",
                "email": "x@example.com", "name": "X", "password": PASSWORD}),
            ),
        ),
        ("POST", "/v1/auth/password-reset") => (
            path.to_owned(),
            Some(json!({"email": "nobody@matrix.example.com"})),
        ),
        ("POST", "/v1/auth/password-reset/complete") => (
            path.to_owned(),
            Some(
                json!({"token": "rr_000000000000_00000000000000000000000000000000",
                "password": PASSWORD}),
            ),
        ),
        ("POST", "/v1/auth/invitations/accept") => (
            path.to_owned(),
            Some(json!({"token": "ri_000000000000_00000000000000000000000000000000"})),
        ),
        ("POST", "/v1/auth/login/passkey/finish") => {
            (path.to_owned(), Some(json!({"credential": {}})))
        }
        ("POST", "/v1/auth/reauthenticate") => {
            (path.to_owned(), Some(json!({"password": PASSWORD})))
        }
        ("POST", "/v1/users/me/password") => (
            path.to_owned(),
            Some(json!({"current_password": PASSWORD, "new_password": "too short"})),
        ),
        ("DELETE", "/v1/users/me/sessions/{id}") => {
            ("/v1/users/me/sessions/rs_000000000000".to_owned(), None)
        }
        ("POST", "/v1/users/me/passkeys/register/start") => {
            (path.to_owned(), Some(json!({"name": "matrix"})))
        }
        ("POST", "/v1/users/me/passkeys/register/finish") => (
            path.to_owned(),
            Some(json!({"ceremony_id": "ch_000000000000", "credential": {}})),
        ),
        ("POST", "/v1/users/me/totp/{id}/confirm") => (
            "/v1/users/me/totp/fac_000000000000/confirm".to_owned(),
            Some(json!({"code": "000000"})),
        ),
        ("DELETE", "/v1/users/me/factors/{id}") => {
            ("/v1/users/me/factors/fac_000000000000".to_owned(), None)
        }
        ("POST", "/v1/users/me/phone") => (path.to_owned(), Some(json!({"phone": NORMAL_NUMBER}))),
        ("POST", "/v1/users/me/phone/verify" | "/v1/auth/login/totp" | "/v1/auth/login/sms")
        | ("POST", "/v1/auth/login/recovery") => (path.to_owned(), Some(json!({"code": "000000"}))),
        ("GET", "/v1/accounts/{id}/security") => (format!("/v1/accounts/{account}/security"), None),
        ("GET", "/v1/accounts/{id}/allowed-ips") => {
            (format!("/v1/accounts/{account}/allowed-ips"), None)
        }
        ("PUT", "/v1/accounts/{id}/allowed-ips") => (
            format!("/v1/accounts/{account}/allowed-ips"),
            Some(json!({"allowed_ips": []})),
        ),
        ("PUT", "/v1/accounts/{id}/operator-allowed-ips") => (
            format!("/v1/accounts/{account}/operator-allowed-ips"),
            Some(json!({"operator_allowed_ips": []})),
        ),
        ("GET", "/v1/accounts/{id}/rate-limits") => {
            (format!("/v1/accounts/{account}/rate-limits"), None)
        }
        ("PUT", "/v1/accounts/{id}/rate-limits" | "/v1/accounts/{id}/operator-rate-limits") => (
            path.replace("{id}", account),
            Some(json!({"api_key": null, "account": null})),
        ),
        ("GET", "/v1/accounts/{id}/retention") => {
            (format!("/v1/accounts/{account}/retention"), None)
        }
        ("PUT", "/v1/accounts/{id}/retention") => (
            format!("/v1/accounts/{account}/retention"),
            Some(json!({"erase_bodies_after_days": null, "purge_after_days": null})),
        ),
        // Numbers no other request sends to, so the matrix's sends stay accepted.
        ("POST", "/v1/opt-outs") => (path.to_owned(), Some(json!({"number": "+447911123990"}))),
        ("DELETE", "/v1/opt-outs/{number}") => ("/v1/opt-outs/%2B447911123990".to_owned(), None),
        ("POST", "/v1/opt-outs/import") => {
            (path.to_owned(), Some(json!({"numbers": ["+447911123991"]})))
        }
        ("DELETE", "/v1/pumping/blocks/{prefix}") => {
            ("/v1/pumping/blocks/%2B447911123".to_owned(), None)
        }
        ("PUT", "/v1/opt-outs/settings") => (path.to_owned(), Some(json!({"enabled": true}))),
        ("PUT", "/v1/accounts/{id}/security") => (
            format!("/v1/accounts/{account}/security"),
            Some(json!({"require_2fa": false, "allow_sms_factor": true,
                "password_max_age_days": null, "password_history": 0})),
        ),
        ("DELETE", "/v1/users/me/passkeys/{id}") => {
            ("/v1/users/me/passkeys/fac_000000000000".to_owned(), None)
        }
        ("POST", "/v1/users") => {
            *n += 1;
            (
                path.to_owned(),
                Some(
                    json!({"email": format!("new{n}@matrix.example.com"), "name": "New",
                    "role": "viewer", "account_id": account}),
                ),
            )
        }
        ("POST", "/v1/users/{id}/disable" | "/v1/users/{id}/enable") => {
            let id = victim(app, n);
            (path.replace("{id}", &id), None)
        }
        ("GET", "/v1/accounts/{id}/members") => (format!("/v1/accounts/{account}/members"), None),
        ("POST", "/v1/accounts/{id}/members") => {
            *n += 1;
            (
                format!("/v1/accounts/{account}/members"),
                Some(json!({"email": format!("invited{n}@matrix.example.com"), "role": "viewer"})),
            )
        }
        ("PATCH" | "DELETE", "/v1/accounts/{id}/members/{user_id}") => {
            let id = victim(app, n);
            let url = format!("/v1/accounts/{account}/members/{id}");
            let body = (method == "PATCH").then(|| json!({"role": "analyst"}));
            (url, body)
        }
        _ => {
            assert!(!path.contains('{'), "no placeholder for {method} {path}");
            (path.to_owned(), None)
        }
    };
    // Signing out ends the session: sign the same person in again for that call.
    let instead = match (&who.auth, method, path) {
        (Auth::Session { email, .. }, "POST", "/v1/auth/logout") => Some(Auth::Session {
            email: email.clone(),
            session: app.sign_in(email, PASSWORD).await,
        }),
        _ => None,
    };
    (url, body, instead)
}

/// Ids the requests need.
struct Ids {
    account: String,
    message: String,
}

async fn call(app: &TestApp, method: &str, path: &str, auth: &Auth, body: Option<Value>) -> Reply {
    let method = Method::from_bytes(method.as_bytes()).expect("a method");
    let body = body.map(|b| (Some("application/json"), serde_json::to_vec(&b).unwrap()));
    match auth {
        Auth::None => app.request(method, path, "", body, &[]).await,
        Auth::Key(key) => app.request(method, path, key, body, &[]).await,
        Auth::Session { session, .. } => {
            let headers = [
                ("cookie", session.cookie.as_str()),
                ("x-csrf-token", session.csrf.as_str()),
            ];
            app.request(method, path, "", body, &headers).await
        }
    }
}

/// The problem `code` of a reply, if it is a problem.
fn code(reply: &Reply) -> String {
    serde_json::from_str::<Value>(&reply.text)
        .ok()
        .and_then(|v| v["code"].as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// What a credential should get from an operation; `None` when `reply` is that.
fn judge(who: &Credential, who_may: Who, reply: &Reply) -> Option<&'static str> {
    let status = reply.status;
    let refused = status == StatusCode::FORBIDDEN || status == StatusCode::UNAUTHORIZED;
    let ok = match who_may {
        Anyone => status.is_success(),
        SignInStep => !status.is_server_error() && code(reply) != "insufficient_scope",
        Person if who.is_person() => !refused,
        Person => {
            matches!(who.auth, Auth::None) && status == StatusCode::UNAUTHORIZED
                || status == StatusCode::FORBIDDEN && code(reply) == "session_required"
        }
        AnyOf(any) if any.iter().any(|s| who.scopes.contains(*s)) => !refused,
        AnyOf(_) if matches!(who.auth, Auth::None) => status == StatusCode::UNAUTHORIZED,
        AnyOf(_) => status == StatusCode::FORBIDDEN && code(reply) == "insufficient_scope",
    };
    if ok {
        return None;
    }
    Some(match who_may {
        Anyone => "2xx",
        SignInStep => "no 5xx, never insufficient_scope",
        Person if who.is_person() => "not 401/403",
        Person => "403 session_required (401 without credentials)",
        AnyOf(any) if any.iter().any(|s| who.scopes.contains(*s)) => "not 401/403",
        AnyOf(_) => "403 insufficient_scope (401 without credentials)",
    })
}

#[tokio::test]
async fn every_key_and_every_role_opens_exactly_the_routes_the_table_gives_it() {
    let app = spawn_app();
    let operations = documented_operations(&app).await;
    for (method, path, _) in REQUIRED {
        assert!(
            operations.contains(&((*method).to_owned(), (*path).to_owned())),
            "REQUIRED names {method} {path}, which the document does not list"
        );
    }
    let ids = Ids {
        account: app.account_id(),
        message: app.send_to(NORMAL_NUMBER, "an existing message").await,
    };
    let mut credentials = one_key_per_scope(&app);
    credentials.extend(one_session_per_role(&app).await);
    credentials.push(Credential {
        label: "no credentials".into(),
        auth: Auth::None,
        scopes: BTreeSet::new(),
        operator: false,
    });

    let mut unexpected = Vec::new();
    let mut checked = 0;
    let mut n = 0;
    for who in &credentials {
        for (method, path) in &operations {
            let (url, body, instead) =
                harmless_request(&app, who, method, path, &ids, &mut n).await;
            let auth = instead.as_ref().unwrap_or(&who.auth);
            let reply = call(&app, method, &url, auth, body).await;
            checked += 1;
            if let Some(expected) = judge(who, required(method, path), &reply) {
                unexpected.push(format!(
                    "{}: {method} {url} -> {} (expected {expected}): {}",
                    who.label,
                    reply.status,
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
}

/// A well-formed body for a change to another account's member or rules.
fn request_body(method: &str, path: &str) -> Option<Value> {
    match method {
        "POST" if path.ends_with("/credits") => Some(json!({"amount": "1.00"})),
        "POST" => Some(json!({"role": "viewer", "email": "z@example.com"})),
        "PATCH" => Some(json!({"role": "viewer"})),
        "PUT" if path.ends_with("/operator-allowed-ips") => {
            Some(json!({"operator_allowed_ips": []}))
        }
        "PUT" if path.ends_with("/allowed-ips") => Some(json!({"allowed_ips": []})),
        "PUT" if path.ends_with("rate-limits") => Some(json!({"api_key": null})),
        "PUT" if path.ends_with("/retention") => Some(json!({"purge_after_days": null})),
        "PUT" if path.ends_with("/policy") => Some(json!({})),
        "PUT" => Some(json!({"require_2fa": false, "allow_sms_factor": true,
            "password_max_age_days": null, "password_history": 0})),
        _ => None,
    }
}

#[tokio::test]
async fn every_route_with_an_id_answers_404_to_another_accounts_existing_id() {
    let app = spawn_app();
    let account_a = app.account_id();
    let account_b = app.cli(&["account", "create", "--name", "tenant b"]);
    let key_b = app.cli(&["apikey", "create", "--account", &account_b, "--scopes", "*"]);
    let sent = app
        .post_json("/v1/messages", &key_b, &scheduled_message())
        .await;
    assert_eq!(sent.status, StatusCode::ACCEPTED, "{}", sent.text);
    let b_message = id_of(&sent.json()["messages"][0]);
    let b_key_id = key_b[..15].to_owned();
    let b_person = app.create_person("b@matrix.example.com", "owner", Some(&account_b));
    let b_session = app.sign_in("b@matrix.example.com", PASSWORD).await;
    let b_session_id = b_session.cookie.split('=').nth(1).unwrap()[..15].to_owned();
    app.create_person("a@matrix.example.com", "owner", Some(&account_a));
    let a_person = Auth::Session {
        email: "a@matrix.example.com".into(),
        session: app.sign_in("a@matrix.example.com", PASSWORD).await,
    };
    let a_key = Auth::Key(app.key.clone());

    let operations = documented_operations(&app).await;
    let with_id: Vec<_> = operations
        .iter()
        .filter(|(_, path)| path.contains('{'))
        .collect();
    assert!(with_id.len() >= 10, "{with_id:?}");
    for (method, path) in with_id {
        let (url, who) = if path.starts_with("/v1/messages/") {
            (path.replace("{id}", &b_message), &a_key)
        } else if path.starts_with("/v1/api-keys/") {
            (path.replace("{id}", &b_key_id), &a_key)
        } else if path.starts_with("/v1/inbound/") {
            // No inbound message can be made over the API (only a carrier makes them): a
            // well-formed id stands in; tests/smpp covers inbound across accounts.
            (
                path.replace("{id}", "inb_00000000000000000000000000"),
                &a_key,
            )
        } else if path.starts_with("/v1/accounts/{id}/") {
            let url = path
                .replace("{id}", &account_b)
                .replace("{user_id}", &b_person);
            // Both a key and a person of account A.
            let body = request_body(method, path);
            let by_key = call(&app, method, &url, &a_key, body.clone()).await;
            assert_eq!(
                by_key.status,
                StatusCode::NOT_FOUND,
                "{method} {url} by A's key: {}",
                by_key.text
            );
            (url, &a_person)
        } else if path.starts_with("/v1/users/me/sessions/") {
            (path.replace("{id}", &b_session_id), &a_person)
        } else if path.starts_with("/v1/users/me/passkeys/")
            || path.starts_with("/v1/users/me/factors/")
            || path.starts_with("/v1/users/me/totp/")
        {
            (path.replace("{id}", "fac_000000000000"), &a_person)
        } else if path.starts_with("/v1/users/{id}/") {
            // People are the instance's, not an account's: only operators reach them (the
            // matrix above checks that no account credential does).
            continue;
        } else if path == "/v1/bans/{ip}" {
            continue;
        } else if path == "/v1/pumping/blocks/{prefix}" {
            // Blocks are found by account and prefix: another account's are not A's to lift.
            ("/v1/pumping/blocks/%2B447911123".to_owned(), &a_key)
        } else if path == "/v1/opt-outs/{number}" {
            // B's opt-out is B's: A finds no opt-out of that number (its tags are A's own).
            let added = app
                .post_json("/v1/opt-outs", &key_b, &json!({"number": "+447911123995"}))
                .await;
            assert_eq!(added.status, StatusCode::CREATED, "{}", added.text);
            ("/v1/opt-outs/%2B447911123995".to_owned(), &a_key)
        } else {
            panic!("no other account's id for {method} {path}: add one here");
        };
        let body = if path.contains("/confirm") {
            Some(json!({"code": "000000"}))
        } else {
            request_body(method, path)
        };
        let reply = call(&app, method, &url, who, body).await;
        assert_eq!(
            reply.status,
            StatusCode::NOT_FOUND,
            "{method} {url} from account A: {}",
            reply.text
        );
        assert_eq!(reply.problem_code(), "not_found", "{method} {url}");
    }
    // B's message, key and session are untouched.
    let b_view = app.get(&format!("/v1/messages/{b_message}"), &key_b).await;
    assert_eq!(b_view.json()["status"], "queued", "{}", b_view.text);
    assert_eq!(app.get_as(&b_session, "/v1/users/me").await.status, 200);
}
