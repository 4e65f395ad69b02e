//! The OpenAPI document tells the truth: it is OpenAPI 3.1, documents every route the router
//! serves with exactly its methods, every documented operation answers on the live server, and
//! no undocumented method does. Every error it documents is a problem document, every operation
//! lists the errors it can answer with, and the input rules it states are the server's own (the
//! live server refuses just past each documented bound). (scripts/schemathesis.sh checks the
//! same document against the live server with generated requests.)
//! Health and readiness answer without a key.

use std::collections::{BTreeMap, BTreeSet};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{NORMAL_NUMBER, TestApp, spawn_app};

/// The routes of the lead's router (`http::api_router`), by path, with their methods.
fn served_routes() -> BTreeMap<&'static str, BTreeSet<&'static str>> {
    [
        ("/v1/messages", &["get", "post"][..]),
        ("/v1/messages/{id}", &["get"]),
        ("/v1/messages/dry-run", &["post"]),
        ("/v1/messages/{id}/cancel", &["post"]),
        ("/v1/api-keys", &["get", "post"]),
        ("/v1/api-keys/{id}", &["delete", "get"]),
        ("/v1/inbound", &["get"]),
        ("/v1/inbound/{id}", &["get"]),
        ("/v1/numbers", &["get"]),
        ("/v1/audit-events", &["get"]),
        ("/v1/connectors", &["get"]),
        ("/v1/bans", &["get"]),
        ("/v1/bans/{ip}", &["delete"]),
        ("/v1/auth/login", &["post"]),
        ("/v1/auth/logout", &["post"]),
        ("/v1/auth/session", &["get"]),
        ("/v1/auth/reauthenticate", &["post"]),
        ("/v1/auth/setup", &["post"]),
        ("/v1/auth/password-reset", &["post"]),
        ("/v1/auth/password-reset/complete", &["post"]),
        ("/v1/auth/invitations/accept", &["post"]),
        ("/v1/users", &["get", "post"]),
        ("/v1/users/{id}/disable", &["post"]),
        ("/v1/users/{id}/enable", &["post"]),
        ("/v1/users/me", &["get"]),
        ("/v1/users/me/password", &["post"]),
        ("/v1/users/me/sessions", &["get"]),
        ("/v1/users/me/sessions/{id}", &["delete"]),
        ("/v1/accounts/{id}/members", &["get", "post"]),
        ("/v1/accounts/{id}/members/{user_id}", &["delete", "patch"]),
        ("/v1/roles", &["get"]),
        ("/v1/accounts/{id}/allowed-ips", &["get", "put"]),
        ("/v1/accounts/{id}/operator-allowed-ips", &["put"]),
        ("/v1/accounts/{id}/rate-limits", &["get", "put"]),
        ("/v1/accounts/{id}/operator-rate-limits", &["put"]),
        ("/v1/accounts/{id}/retention", &["get", "put"]),
        ("/v1/accounts/{id}/balance", &["get"]),
        ("/v1/accounts/{id}/ledger", &["get"]),
        ("/v1/accounts/{id}/credits", &["post"]),
        ("/v1/messages/{id}/refund", &["post"]),
        ("/v1/accounts/{id}/policy", &["get", "put"]),
        ("/v1/opt-outs", &["get", "post"]),
        ("/v1/opt-outs/{number}", &["delete"]),
        ("/v1/opt-outs/import", &["post"]),
        ("/v1/opt-outs/export", &["get"]),
        ("/v1/opt-outs/settings", &["get", "put"]),
        ("/v1/pumping/blocks", &["get"]),
        ("/v1/pumping/blocks/{prefix}", &["delete"]),
        ("/healthz", &["get"]),
        ("/readyz", &["get"]),
        ("/metrics", &["get"]),
        ("/v1/openapi.json", &["get"]),
    ]
    .into_iter()
    .map(|(path, methods)| (path, methods.iter().copied().collect()))
    .collect()
}

const HTTP_METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

async fn document(app: &TestApp) -> Value {
    let reply = app.get("/v1/openapi.json", "").await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert!(
        reply
            .header("content-type")
            .is_some_and(|ct| ct.starts_with("application/json")),
        "{:?}",
        reply.header("content-type")
    );
    reply.json()
}

fn documented(doc: &Value) -> BTreeMap<String, BTreeSet<String>> {
    doc["paths"]
        .as_object()
        .expect("`paths` is an object")
        .iter()
        .map(|(path, item)| {
            let methods = item
                .as_object()
                .expect("a path item is an object")
                .keys()
                .filter(|k| HTTP_METHODS.contains(&k.as_str()))
                .cloned()
                .collect();
            (path.clone(), methods)
        })
        .collect()
}

#[tokio::test]
async fn the_openapi_document_is_3_1_and_documents_every_served_route() {
    let app = spawn_app();
    let doc = document(&app).await;
    let version = doc["openapi"].as_str().unwrap_or_default();
    assert!(version.starts_with("3.1"), "OpenAPI version {version}");
    assert!(doc["info"]["title"].is_string() && doc["info"]["version"].is_string());

    // Every route of the router is documented, with exactly its methods. (That every
    // documented operation is really served is checked against the live server below, so
    // together the document and the router agree both ways.)
    let documented = documented(&doc);
    let mut wrong = Vec::new();
    for (path, methods) in served_routes() {
        let methods: BTreeSet<String> = methods.into_iter().map(str::to_owned).collect();
        match documented.get(path) {
            None => wrong.push(format!("{path} is served but not documented")),
            Some(listed) if *listed != methods => {
                wrong.push(format!("{path}: served {methods:?}, documented {listed:?}"));
            }
            Some(_) => {}
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));

    // Every operation that needs a key or a session says so, and the schemes it names exist.
    // Signing in (and its second step with the pending sign-in cookie), setting up, resetting
    // a password and accepting an invitation are open to anyone, as is the role matrix.
    let scheme = &doc["components"]["securitySchemes"]["api_key"];
    assert_eq!(scheme["scheme"], "bearer", "{scheme}");
    let session = &doc["components"]["securitySchemes"]["session"];
    assert_eq!(session["in"], "cookie", "{session}");
    assert_eq!(session["name"], "__Host-rampart_session", "{session}");
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let public = ["/healthz", "/readyz", "/v1/openapi.json", "/v1/roles"]
                .contains(&path.as_str())
                || path.starts_with("/v1/auth/login")
                || [
                    "/v1/auth/setup",
                    "/v1/auth/password-reset",
                    "/v1/auth/password-reset/complete",
                    "/v1/auth/invitations/accept",
                ]
                .contains(&path.as_str());
            let secured = op["security"].as_array().is_some_and(|s| {
                s.iter()
                    .any(|r| r.get("api_key").is_some() || r.get("session").is_some())
            });
            assert_eq!(
                secured, !public,
                "{method} {path}: security is {}",
                op["security"]
            );
        }
    }
}

#[tokio::test]
async fn every_documented_operation_is_served_and_undocumented_methods_are_not() {
    let app = spawn_app();
    let doc = document(&app).await;
    let message = app.send_to(NORMAL_NUMBER, "for the route walk").await;
    let (key_id, _) = app.create_key(&["messages:read"], None).await;

    let mut failures = Vec::new();
    for (template, methods) in documented(&doc) {
        // Ids we can make through the API are real. Others (an inbound message, which only a
        // carrier creates) get one that does not exist: there the handler's 404 is the served
        // answer, and the router's 404 for an unmatched path is ruled out below by the 405
        // that an undocumented method gets on the same path.
        let real_id = if template.starts_with("/v1/messages/") {
            Some(message.as_str())
        } else if template.starts_with("/v1/api-keys/") {
            Some(key_id.as_str())
        } else {
            None
        };
        let fake_id = template.contains("{id}") && real_id.is_none();
        let path = template.replace("{id}", real_id.unwrap_or("x_0000000000000000"));
        // DELETE last, so the key is still there for GET.
        let mut ordered: Vec<String> = methods.iter().cloned().collect();
        ordered.sort_by_key(|m| m == "delete");
        for method in ordered {
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let body = (method == Method::POST).then(|| {
                let json = if template == "/v1/api-keys" {
                    json!({"name": "route walk", "scopes": ["messages:read"]})
                } else if template == "/v1/messages" {
                    json!({"to": NORMAL_NUMBER, "from": "Rampart", "body": "route walk"})
                } else {
                    json!({})
                };
                (Some("application/json"), serde_json::to_vec(&json).unwrap())
            });
            let reply = app
                .request(method.clone(), &path, &app.key, body, &[])
                .await;
            let status = reply.status.as_u16();
            let missing = status == 404 && !(fake_id && reply.problem_code() == "not_found");
            if missing || status == 405 || reply.status.is_server_error() {
                failures.push(format!(
                    "documented {method} {path} answered {status}: {}",
                    reply.text
                ));
            }
        }
        for other in ["get", "post", "put", "patch", "delete"] {
            if methods.contains(other) {
                continue;
            }
            let method = Method::from_bytes(other.to_uppercase().as_bytes()).unwrap();
            let reply = app
                .request(method.clone(), &path, &app.key, None, &[])
                .await;
            if reply.status != StatusCode::METHOD_NOT_ALLOWED {
                failures.push(format!(
                    "undocumented {method} {path} answered {}, not 405",
                    reply.status
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test]
async fn health_and_readiness_answer_200_without_a_key() {
    let app = spawn_app();
    for path in ["/healthz", "/readyz"] {
        let reply = app.get(path, "").await;
        assert_eq!(reply.status, StatusCode::OK, "{path}: {}", reply.text);
        assert!(reply.json()["status"].is_string(), "{path}: {}", reply.text);
    }
}

/// Follows a local `$ref` (`#/components/...`) to what it names.
fn resolve<'a>(doc: &'a Value, value: &'a Value) -> &'a Value {
    match value.get("$ref").and_then(Value::as_str) {
        Some(pointer) => doc
            .pointer(pointer.trim_start_matches('#'))
            .unwrap_or_else(|| panic!("dangling reference {pointer}")),
        None => value,
    }
}

/// Every operation: (path, method, operation object).
fn operations(doc: &Value) -> Vec<(String, String, &Value)> {
    let mut all = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            if HTTP_METHODS.contains(&method.as_str()) {
                all.push((path.clone(), method.clone(), op));
            }
        }
    }
    all
}

fn parameter<'a>(doc: &'a Value, path: &str, method: &str, name: &str) -> &'a Value {
    doc["paths"][path][method]["parameters"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["name"] == name))
        .map(|p| &p["schema"])
        .unwrap_or_else(|| panic!("{method} {path} has no parameter {name}"))
}

fn uint(schema: &Value, keyword: &str) -> u64 {
    schema[keyword]
        .as_u64()
        .unwrap_or_else(|| panic!("no `{keyword}` in {schema}"))
}

#[tokio::test]
async fn every_documented_error_is_a_problem_document() {
    let app = spawn_app();
    let doc = document(&app).await;
    assert!(doc["components"]["schemas"]["Problem"].is_object());
    let mut wrong = Vec::new();
    for (path, method, op) in operations(&doc) {
        for (status, response) in op["responses"].as_object().unwrap() {
            let response = resolve(&doc, response);
            if !response["description"].is_string() {
                wrong.push(format!("{method} {path} {status}: no description"));
            }
            if status.as_str() < "400" {
                continue;
            }
            let content = response["content"].as_object();
            let problem = content.and_then(|c| c.get("application/problem+json"));
            if content.map(|c| c.len()) != Some(1)
                || problem.is_none_or(|p| p["schema"]["$ref"] != "#/components/schemas/Problem")
            {
                wrong.push(format!(
                    "{method} {path} {status}: content is {}, not only application/problem+json \
                     with the Problem schema",
                    response["content"]
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[tokio::test]
async fn every_operation_documents_the_errors_it_can_answer_with() {
    let app = spawn_app();
    let doc = document(&app).await;
    let mut missing = Vec::new();
    for (path, method, op) in operations(&doc) {
        let documented: BTreeSet<&str> = op["responses"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        // The layers every request passes: deadline, panic guard, load shedding.
        let mut expected = vec!["408", "500", "503"];
        if op["security"].is_array() {
            expected.extend(["401", "403"]);
        }
        if path.contains("{id}") {
            expected.push("404");
        }
        if op["requestBody"].is_object() {
            expected.extend(["400", "413", "415", "422"]);
        }
        let takes_query = op["parameters"]
            .as_array()
            .is_some_and(|ps| ps.iter().any(|p| p["in"] == "query"));
        if takes_query {
            expected.push("400");
        }
        for status in expected {
            if !documented.contains(status) {
                missing.push(format!("{method} {path} does not document {status}"));
            }
        }
    }
    assert!(missing.is_empty(), "{}", missing.join("\n"));
    let sent = &doc["paths"]["/v1/messages"]["post"]["responses"];
    assert!(sent["409"].is_object(), "a reused Idempotency-Key: {sent}");
    assert!(
        sent["402"].is_object(),
        "a prepaid account that cannot pay: {sent}"
    );
    let cancel = &doc["paths"]["/v1/messages/{id}/cancel"]["post"]["responses"];
    assert!(cancel["409"].is_object(), "not cancelable: {cancel}");
}

#[tokio::test]
async fn the_input_rules_the_server_enforces_are_in_the_schema() {
    let app = spawn_app();
    let doc = document(&app).await;
    let schemas = &doc["components"]["schemas"];

    for path in ["/v1/messages", "/v1/inbound"] {
        let limit = parameter(&doc, path, "get", "limit");
        assert_eq!(limit["type"], "integer", "{path} limit: {limit}");
        assert_eq!((uint(limit, "minimum"), uint(limit, "maximum")), (1, 200));
        assert_eq!(limit["default"], 50, "{path} limit: {limit}");
    }
    let status = resolve(&doc, parameter(&doc, "/v1/messages", "get", "status"));
    for name in ["queued", "sent", "delivered", "failed", "canceled"] {
        assert!(status["enum"].as_array().unwrap().contains(&json!(name)));
    }
    for name in ["created_after", "created_before"] {
        let time = parameter(&doc, "/v1/messages", "get", name);
        assert_eq!(time["format"], "date-time", "{name}: {time}");
    }
    let key = parameter(&doc, "/v1/messages", "post", "Idempotency-Key");
    assert_eq!((uint(key, "minLength"), uint(key, "maxLength")), (1, 255));

    let send = &schemas["SendMessage"];
    assert_eq!(send["additionalProperties"], false, "{send}");
    let to = &send["properties"]["to"]["oneOf"];
    let list = to
        .as_array()
        .and_then(|v| v.iter().find(|s| s["type"] == "array"))
        .unwrap_or_else(|| panic!("`to` has no list form: {to}"));
    assert_eq!((uint(list, "minItems"), uint(list, "maxItems")), (1, 1000));
    assert_eq!(list["uniqueItems"], true, "{list}");
    assert!(list["items"]["pattern"].is_string(), "{list}");
    let validity = &send["properties"]["validity_period"];
    assert_eq!(
        (uint(validity, "minimum"), uint(validity, "maximum")),
        (60, 604_800)
    );
    assert_eq!(uint(&send["properties"]["client_ref"], "maxLength"), 128);
    assert_eq!(send["properties"]["send_at"]["format"], "date-time");
    assert_eq!(uint(&send["properties"]["body"], "minLength"), 1);

    let create = &schemas["CreateApiKey"];
    assert_eq!(create["additionalProperties"], false, "{create}");
    let name = &create["properties"]["name"];
    assert_eq!((uint(name, "minLength"), uint(name, "maxLength")), (1, 100));
    let scopes = &create["properties"]["scopes"];
    assert_eq!(uint(scopes, "minItems"), 1, "{scopes}");
    let names = scopes["items"]["enum"].as_array().unwrap();
    for scope in [
        "messages:send",
        "messages:read",
        "keys:manage",
        "metrics:read",
    ] {
        assert!(names.contains(&json!(scope)), "{scope} in {scopes}");
    }
    assert!(names.contains(&json!("inbound:read")) && names.contains(&json!("*")));
    assert_eq!(create["properties"]["expires_at"]["format"], "date-time");
    let cert = &create["properties"]["client_cert_sha256"];
    assert!(cert["pattern"].as_str().unwrap().contains("{64}"), "{cert}");
    let shown = &schemas["ApiKeyView"]["properties"]["client_cert_sha256"];
    assert_eq!(shown["pattern"], "^[0-9a-f]{64}$", "{shown}");
}

#[tokio::test]
async fn the_live_server_refuses_just_past_each_documented_bound() {
    let app = spawn_app();
    let doc = document(&app).await;
    let send = &doc["components"]["schemas"]["SendMessage"]["properties"];
    let message = |extra: Value| {
        let mut body = json!({"to": NORMAL_NUMBER, "from": "Rampart", "body": "bounds"});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        body
    };

    let limit = parameter(&doc, "/v1/messages", "get", "limit");
    for (value, ok) in [
        (uint(limit, "minimum"), true),
        (uint(limit, "maximum"), true),
        (uint(limit, "minimum") - 1, false),
        (uint(limit, "maximum") + 1, false),
    ] {
        let reply = app
            .get(&format!("/v1/messages?limit={value}"), &app.key)
            .await;
        if ok {
            assert_eq!(
                reply.status,
                StatusCode::OK,
                "limit {value}: {}",
                reply.text
            );
        } else {
            reply.assert_problem(400, "invalid_query");
        }
    }

    let to = send["to"]["oneOf"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["type"] == "array")
        .unwrap();
    let too_many: Vec<String> = (0..=uint(to, "maxItems"))
        .map(|i| format!("+4479111{i:05}"))
        .collect();
    let reply = app
        .post_json("/v1/messages", &app.key, &message(json!({"to": too_many})))
        .await;
    reply.assert_problem(422, "too_many_recipients");
    let reply = app
        .post_json("/v1/messages", &app.key, &message(json!({"to": []})))
        .await;
    reply.assert_problem(422, "no_recipients");

    let validity = &send["validity_period"];
    for (value, code) in [
        (
            uint(validity, "minimum") - 1,
            Some("invalid_validity_period"),
        ),
        (
            uint(validity, "maximum") + 1,
            Some("invalid_validity_period"),
        ),
        (uint(validity, "minimum"), None),
    ] {
        let reply = app
            .post_json(
                "/v1/messages",
                &app.key,
                &message(json!({"validity_period": value})),
            )
            .await;
        match code {
            Some(code) => reply.assert_problem(422, code),
            None => assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.text),
        }
    }
    let long_ref = "r".repeat(uint(&send["client_ref"], "maxLength") as usize + 1);
    let reply = app
        .post_json(
            "/v1/messages",
            &app.key,
            &message(json!({"client_ref": long_ref})),
        )
        .await;
    reply.assert_problem(422, "invalid_client_ref");
    let reply = app
        .post_json(
            "/v1/messages",
            &app.key,
            &message(json!({"priority": "high"})),
        )
        .await;
    reply.assert_problem(422, "invalid_field");

    let key = parameter(&doc, "/v1/messages", "post", "Idempotency-Key");
    let long_key = "k".repeat(uint(key, "maxLength") as usize + 1);
    let reply = app
        .post_json_with_headers(
            "/v1/messages",
            &app.key,
            &message(json!({})),
            &[("idempotency-key", long_key.as_str())],
        )
        .await;
    reply.assert_problem(400, "invalid_idempotency_key");

    let name = &doc["components"]["schemas"]["CreateApiKey"]["properties"]["name"];
    let long_name = "n".repeat(uint(name, "maxLength") as usize + 1);
    let reply = app
        .post_json(
            "/v1/api-keys",
            &app.key,
            &json!({"name": long_name, "scopes": ["messages:read"]}),
        )
        .await;
    reply.assert_problem(422, "invalid_name");
    let reply = app
        .post_json(
            "/v1/api-keys",
            &app.key,
            &json!({"name": "none", "scopes": []}),
        )
        .await;
    reply.assert_problem(422, "invalid_scope");

    let retention = &doc["components"]["schemas"]["RetentionView"]["properties"];
    let path = format!("/v1/accounts/{}/retention", app.account_id());
    for field in ["erase_bodies_after_days", "purge_after_days"] {
        let days = &retention[field];
        for (value, ok) in [
            (uint(days, "minimum"), true),
            (uint(days, "maximum"), true),
            (uint(days, "minimum") - 1, false),
            (uint(days, "maximum") + 1, false),
        ] {
            let body = serde_json::to_vec(&json!({ field: value })).unwrap();
            let reply = app
                .request(
                    Method::PUT,
                    &path,
                    &app.key,
                    Some((Some("application/json"), body)),
                    &[],
                )
                .await;
            if ok {
                assert_eq!(
                    reply.status,
                    StatusCode::OK,
                    "{field} {value}: {}",
                    reply.text
                );
            } else {
                reply.assert_problem(422, "invalid_retention");
            }
        }
    }
}

#[tokio::test]
async fn a_whole_number_written_with_a_fraction_part_is_taken_where_the_schema_says_integer() {
    // JSON Schema's `integer` includes 3600.0, and some JSON libraries write whole floats so.
    let app = spawn_app();
    let reply = app
        .post_json(
            "/v1/messages",
            &app.key,
            &json!({"to": NORMAL_NUMBER, "from": "Rampart", "body": "hi", "validity_period": 3600.0}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.text);
    let reply = app
        .post_json(
            "/v1/messages",
            &app.key,
            &json!({"to": NORMAL_NUMBER, "from": "Rampart", "body": "hi", "validity_period": 3600.5}),
        )
        .await;
    reply.assert_problem(422, "invalid_field");
}
