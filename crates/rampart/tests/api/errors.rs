//! Bad requests get a 4xx RFC 9457 problem with a stable `code`, never a 5xx: malformed or
//! mistyped JSON, wrong media type, bad bytes, oversized bodies, invalid recipients and
//! senders, unknown routes and methods, bad query strings, and arbitrary junk.

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{NORMAL_NUMBER, assert_problem, spawn_app};

fn valid() -> Value {
    json!({"to": NORMAL_NUMBER, "from": "Rampart", "body": "hello"})
}

#[tokio::test]
async fn malformed_json_is_a_400_malformed_json_problem() {
    let app = spawn_app();
    for raw in [
        "{",
        "{\"to\": \"+447911123456\", }",
        "not json at all",
        "{\"to\": \"+447911123456\", \"from\": \"Rampart\", \"body\": \"hi\"} trailing",
        "",
    ] {
        let reply = app
            .post_raw(
                "/v1/messages",
                &app.key,
                Some("application/json"),
                raw.as_bytes().to_vec(),
            )
            .await;
        assert_eq!(reply.status.as_u16(), 400, "{raw:?}: {}", reply.text);
        assert_eq!(reply.problem_code(), "malformed_json", "{raw:?}");
    }
}

#[tokio::test]
async fn fields_of_the_wrong_type_are_a_422_invalid_field_problem() {
    let app = spawn_app();
    for (field, value) in [
        ("to", json!(447911123456_u64)),
        ("to", json!({"number": NORMAL_NUMBER})),
        ("from", json!(42)),
        ("body", json!(["hello"])),
        ("send_at", json!(12345)),
        ("validity_period", json!("an hour")),
        ("client_ref", json!(false)),
    ] {
        let mut body = valid();
        body[field] = value;
        let reply = app.post_json("/v1/messages", &app.key, &body).await;
        assert_eq!(reply.status.as_u16(), 422, "{field}: {}", reply.text);
        assert_eq!(reply.problem_code(), "invalid_field", "{field}");
    }
    let not_an_object = app
        .post_json("/v1/messages", &app.key, &json!(["a", "list"]))
        .await;
    not_an_object.assert_problem(422, "invalid_field");
    let missing_body = app
        .post_json(
            "/v1/messages",
            &app.key,
            &json!({"to": NORMAL_NUMBER, "from": "Rampart"}),
        )
        .await;
    missing_body.assert_problem(422, "invalid_field");
}

#[tokio::test]
async fn unknown_fields_are_a_422_invalid_field_problem() {
    let app = spawn_app();
    let mut body = valid();
    body["priority"] = json!("high");
    let reply = app.post_json("/v1/messages", &app.key, &body).await;
    reply.assert_problem(422, "invalid_field");
    assert!(
        reply.json()["detail"]
            .as_str()
            .unwrap()
            .contains("priority")
    );

    let key = app
        .post_json(
            "/v1/api-keys",
            &app.key,
            &json!({"name": "k", "scopes": ["messages:read"], "admin": true}),
        )
        .await;
    key.assert_problem(422, "invalid_field");
}

#[tokio::test]
async fn a_body_without_a_json_content_type_is_a_415_problem() {
    let app = spawn_app();
    let bytes = serde_json::to_vec(&valid()).unwrap();
    for content_type in [
        None,
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
    ] {
        let reply = app
            .post_raw("/v1/messages", &app.key, content_type, bytes.clone())
            .await;
        reply.assert_problem(415, "unsupported_media_type");
    }
    let charset = app
        .post_raw(
            "/v1/messages",
            &app.key,
            Some("application/json; charset=utf-8"),
            bytes,
        )
        .await;
    assert_eq!(charset.status.as_u16(), 202, "{}", charset.text);
}

#[tokio::test]
async fn invalid_utf8_in_the_body_is_a_400_problem() {
    let app = spawn_app();
    let mut in_string = br#"{"to": "+447911123456", "from": "Rampart", "body": "ab"#.to_vec();
    in_string.extend_from_slice(&[0xff, 0xfe, 0xc3]);
    in_string.extend_from_slice(br#""}"#);
    let mut outside = vec![0xef, 0xbb, 0xbf, 0xff];
    outside.extend_from_slice(&serde_json::to_vec(&valid()).unwrap());
    for bytes in [in_string, outside] {
        let reply = app
            .post_raw("/v1/messages", &app.key, Some("application/json"), bytes)
            .await;
        assert_eq!(reply.status.as_u16(), 400, "{}", reply.text);
        assert_problem(&reply);
    }
    assert!(app.list_all("", 50).await.is_empty());
}

#[tokio::test]
async fn a_body_over_the_size_limit_is_a_413_payload_too_large_problem() {
    let app = spawn_app();
    // Valid JSON, 300 KiB: over the 256 KiB default, so refused on size alone.
    let body = json!({"to": NORMAL_NUMBER, "from": "Rampart", "body": "a".repeat(300 * 1024)});
    let reply = app.post_json("/v1/messages", &app.key, &body).await;
    reply.assert_problem(413, "payload_too_large");

    let keys = app
        .post_json(
            "/v1/api-keys",
            &app.key,
            &json!({"name": "x".repeat(300 * 1024), "scopes": ["messages:read"]}),
        )
        .await;
    keys.assert_problem(413, "payload_too_large");

    // Over HTTP/1.1 the client must still get to read the answer (not a reset connection).
    let http1 = app
        .http1_client()
        .post(app.url("/v1/messages"))
        .bearer_auth(&app.key)
        .json(&body)
        .send()
        .await
        .expect("an HTTP/1.1 client reads the answer to an oversized body");
    assert_eq!(http1.version(), reqwest::Version::HTTP_11);
    assert_eq!(http1.status().as_u16(), 413);
    assert_eq!(
        http1
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/problem+json")
    );
    // The server is fine afterwards.
    let after = app.post_json("/v1/messages", &app.key, &valid()).await;
    assert_eq!(after.status.as_u16(), 202, "{}", after.text);
}

#[tokio::test]
async fn a_body_limit_set_in_the_environment_is_enforced() {
    let app = crate::helpers::spawn_app_with(&[("RAMPART_LIMITS__MAX_BODY_BYTES", "1024")]);
    let small = app.post_json("/v1/messages", &app.key, &valid()).await;
    assert_eq!(small.status.as_u16(), 202, "{}", small.text);
    let body = json!({"to": NORMAL_NUMBER, "from": "Rampart", "body": "a".repeat(1500)});
    let reply = app.post_json("/v1/messages", &app.key, &body).await;
    reply.assert_problem(413, "payload_too_large");
}

#[tokio::test]
async fn an_empty_recipient_list_is_a_422_problem() {
    let app = spawn_app();
    let mut body = valid();
    body["to"] = json!([]);
    let reply = app.post_json("/v1/messages", &app.key, &body).await;
    assert_eq!(reply.status.as_u16(), 422, "{}", reply.text);
    assert_problem(&reply);
    assert_eq!(reply.json()["field"], "to");
}

#[tokio::test]
async fn an_invalid_phone_number_is_a_422_problem_naming_the_field() {
    let app = spawn_app();
    for (to, field) in [
        (json!("447911123456"), "to"),
        (json!("+44 abc"), "to"),
        (json!("+999123456789"), "to"),
        (json!(""), "to"),
        (json!([NORMAL_NUMBER, "+4411"]), "to[1]"),
    ] {
        let mut body = valid();
        body["to"] = to.clone();
        let reply = app.post_json("/v1/messages", &app.key, &body).await;
        reply.assert_problem(422, "invalid_phone_number");
        assert_eq!(reply.json()["field"], field, "{to}: {}", reply.text);
    }
    assert!(app.list_all("", 50).await.is_empty(), "no partial sends");
}

#[tokio::test]
async fn a_bad_sender_is_a_422_problem() {
    let app = spawn_app();
    for from in [
        "",
        "ThisIsFarTooLong",
        "Bank<script>",
        "12",
        "+999123456789",
    ] {
        let mut body = valid();
        body["from"] = json!(from);
        let reply = app.post_json("/v1/messages", &app.key, &body).await;
        reply.assert_problem(422, "invalid_sender");
        assert_eq!(reply.json()["field"], "from", "{from:?}");
    }
}

#[tokio::test]
async fn an_unknown_route_is_a_404_problem() {
    let app = spawn_app();
    for path in [
        "/",
        "/v1",
        "/v1/nothing-here",
        "/v2/messages",
        "/v1/messages/a/b/c",
    ] {
        let reply = app.get(path, &app.key).await;
        reply.assert_problem(404, "not_found");
    }
}

#[tokio::test]
async fn a_wrong_method_is_a_405_problem() {
    let app = spawn_app();
    for (method, path) in [
        (Method::PUT, "/v1/messages"),
        (Method::DELETE, "/v1/messages"),
        (Method::DELETE, "/v1/messages/msg_x"),
        (Method::GET, "/v1/messages/msg_x/cancel"),
        (Method::PATCH, "/v1/api-keys/rk_x"),
        (Method::POST, "/healthz"),
        (Method::POST, "/metrics"),
    ] {
        let reply = app.request(method.clone(), path, &app.key, None, &[]).await;
        assert_eq!(
            reply.status.as_u16(),
            405,
            "{method} {path}: {}",
            reply.text
        );
        assert_problem(&reply);
    }
}

#[tokio::test]
async fn a_bad_list_query_is_a_400_invalid_query_problem() {
    let app = spawn_app();
    for query in [
        "limit=0",
        "limit=201",
        "limit=ten",
        "limit=-1",
        "status=lost",
        "to=12345",
        "created_after=yesterday",
        "sort=desc",
    ] {
        let reply = app.get(&format!("/v1/messages?{query}"), &app.key).await;
        assert_eq!(reply.status.as_u16(), 400, "{query}: {}", reply.text);
        assert_eq!(reply.problem_code(), "invalid_query", "{query}");
    }
}

/// JSON-ish request bodies: raw bytes, arbitrary JSON values, and send requests whose members
/// hold arbitrary values (so validation past the parser is exercised too).
fn junk_bodies() -> impl Strategy<Value = Vec<u8>> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| json!(f)),
        ".{0,40}".prop_map(Value::String),
        "\\+[0-9 ]{0,18}".prop_map(Value::String),
        Just(json!(NORMAL_NUMBER)),
        Just(json!("2030-01-01T00:00:00Z")),
    ];
    let value = leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-z_]{1,10}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    });
    let field_names = prop::sample::select(vec![
        "to",
        "from",
        "body",
        "send_at",
        "validity_period",
        "client_ref",
        "extra",
    ]);
    let send_like = prop::collection::btree_map(field_names, value.clone(), 0..7).prop_map(|m| {
        serde_json::to_vec(&Value::Object(
            m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
        ))
        .unwrap()
    });
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..256),
        value.prop_map(|v| serde_json::to_vec(&v).unwrap()),
        send_like.clone(),
        // A valid-looking request with bytes cut or flipped.
        (send_like, any::<prop::sample::Index>(), any::<u8>()).prop_map(|(mut bytes, at, b)| {
            if !bytes.is_empty() {
                let i = at.index(bytes.len());
                bytes[i] = b;
                bytes.truncate(i + 1 + (b as usize % 8));
            }
            bytes
        }),
    ]
}

#[test]
fn arbitrary_request_bodies_never_cause_a_server_error() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let app = spawn_app();
    let mut runner = TestRunner::new(Config {
        cases: 64,
        max_shrink_iters: 256,
        failure_persistence: None,
        ..Config::default()
    });
    let outcome = runner.run(&junk_bodies(), |bytes| {
        let reply = runtime.block_on(app.post_raw(
            "/v1/messages",
            &app.key,
            Some("application/json"),
            bytes.clone(),
        ));
        if reply.status.is_server_error() {
            return Err(TestCaseError::fail(format!(
                "{} for {:?}: {}",
                reply.status,
                String::from_utf8_lossy(&bytes),
                reply.text
            )));
        }
        if !reply.status.is_success() {
            assert_problem(&reply);
        }
        Ok(())
    });
    if let Err(e) = outcome {
        panic!("{e}");
    }
}
