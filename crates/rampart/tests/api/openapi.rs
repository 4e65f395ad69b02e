//! The OpenAPI document tells the truth: it is OpenAPI 3.1, documents every route the router
//! serves with exactly its methods, every documented operation answers on the live server, and
//! no undocumented method does.
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
        ("/v1/messages/{id}/cancel", &["post"]),
        ("/v1/api-keys", &["get", "post"]),
        ("/v1/api-keys/{id}", &["delete", "get"]),
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

    // Every operation that needs a key says so, and the scheme it names exists.
    let scheme = &doc["components"]["securitySchemes"]["api_key"];
    assert_eq!(scheme["scheme"], "bearer", "{scheme}");
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let public = ["/healthz", "/readyz", "/v1/openapi.json"].contains(&path.as_str());
            let secured = op["security"]
                .as_array()
                .is_some_and(|s| s.iter().any(|r| r.get("api_key").is_some()));
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
