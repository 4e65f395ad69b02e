//! The account's policy against the real server: the document read and replaced over the API
//! with versions (`ETag`, `If-Match`, 409), refused with 422 `invalid_policy` naming the
//! field, shown and set by `rampart policy`; every rule refusing a send with its code and all
//! violations in the problem, counted in /metrics and audited without the number; and the
//! dry run, which answers the same and stores nothing.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{NORMAL_NUMBER, OTHER_NUMBER, Reply, TestApp, parse_rfc3339, spawn_app};

async fn put_policy(app: &TestApp, document: &Value, if_match: Option<&str>) -> Reply {
    let path = format!("/v1/accounts/{}/policy", app.account_id());
    let headers: Vec<(&str, &str)> = if_match.map(|v| ("if-match", v)).into_iter().collect();
    let bytes = serde_json::to_vec(document).unwrap();
    app.request(
        Method::PUT,
        &path,
        &app.key,
        Some((Some("application/json"), bytes)),
        &headers,
    )
    .await
}

async fn set_policy(app: &TestApp, document: Value) {
    let set = put_policy(app, &document, None).await;
    assert_eq!(set.status, StatusCode::OK, "{}", set.text);
}

fn message(to: Value, from: &str, body: &str, category: Option<&str>) -> Value {
    let mut m = json!({"to": to, "from": from, "body": body});
    if let Some(c) = category {
        m["category"] = json!(c);
    }
    m
}

#[tokio::test]
async fn a_policy_is_versioned_a_stale_change_gets_409_and_the_cli_shows_and_sets_the_same() {
    let app = spawn_app();
    let account = app.account_id();
    let path = format!("/v1/accounts/{account}/policy");
    let shown = app.get(&path, &app.key).await;
    assert_eq!(shown.status, StatusCode::OK, "{}", shown.text);
    assert_eq!(shown.json()["version"], 0);
    assert_eq!(shown.header("etag"), Some("\"0\""));
    assert_eq!(
        shown.json()["document"]["content"]["marketing_opt_out_footer"],
        "STOP"
    );

    let document = json!({"senders": {"sender_ids": ["Acme"]}});
    let first = put_policy(&app, &document, Some("\"0\"")).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text);
    assert_eq!(first.json()["version"], 1);
    assert_eq!(first.header("etag"), Some("\"1\""));
    put_policy(&app, &document, Some("\"0\""))
        .await
        .assert_problem(409, "policy_version_conflict");
    let second = put_policy(&app, &json!({}), None).await;
    assert_eq!(second.json()["version"], 2);

    for (bad, field) in [
        (
            json!({"destinations": {"allowed_countries": ["gb"]}}),
            "destinations.allowed_countries[0]",
        ),
        (
            json!({"content": {"max_segment": 2}}),
            "content.max_segment",
        ),
        (
            json!({"quiet_hours": {"start": "21:00", "end": "21:00"}}),
            "quiet_hours.end",
        ),
    ] {
        let refused = put_policy(&app, &bad, None).await;
        refused.assert_problem(422, "invalid_policy");
        assert_eq!(refused.json()["field"], field, "{}", refused.text);
    }
    put_policy(&app, &json!({}), Some("3"))
        .await
        .assert_problem(409, "policy_version_conflict");
    put_policy(&app, &json!({}), Some("three"))
        .await
        .assert_problem(400, "invalid_if_match");

    let shown = app.cli(&["policy", "show", "--account", &account]);
    assert!(
        shown.starts_with(&format!("{account}: version 2")),
        "{shown}"
    );
    let file = app.data_dir.join("policy.json");
    std::fs::write(&file, r#"{"content": {"blocked_words": ["casino"]}}"#).unwrap();
    let set = app.cli(&[
        "policy",
        "set",
        "--account",
        &account,
        "--file",
        file.to_str().unwrap(),
    ]);
    assert!(set.contains("version 3"), "{set}");
    let read = app.get(&path, &app.key).await.json();
    assert_eq!(read["version"], 3);
    assert_eq!(
        read["document"]["content"]["blocked_words"],
        json!(["casino"])
    );
    std::fs::write(&file, r#"{"content": {"max_segments": 0}}"#).unwrap();
    let (ok, _, stderr) = app.cli_output(&[
        "policy",
        "set",
        "--account",
        &account,
        "--file",
        file.to_str().unwrap(),
    ]);
    assert!(!ok && stderr.contains("content.max_segments"), "{stderr}");

    let audit = app
        .get("/v1/audit-events?action=account.policy", &app.key)
        .await
        .json();
    let targets: Vec<&str> = audit["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["target"].as_str())
        .collect();
    assert_eq!(targets, ["version=3", "version=2", "version=1"], "{audit}");
}

#[tokio::test]
async fn each_rule_refuses_a_send_with_its_code_counted_in_metrics_and_audited_without_the_number()
{
    let app = spawn_app();
    set_policy(
        &app,
        json!({
            "destinations": {"allowed_countries": ["GB", "GG", "CY"], "blocked_prefixes": ["+44740"]},
            "senders": {"sender_ids": ["Acme"]},
            "content": {"max_segments": 1, "blocked_words": ["casino"], "block_url_shorteners": true},
            "frequency_cap": {"max_messages": 1, "window_seconds": 3600},
        }),
    )
    .await;
    let long = "a".repeat(161);
    let cases = [
        (
            message(json!(OTHER_NUMBER), "Acme", "hi", None),
            "destination_not_allowed",
            Some("to"),
        ),
        (
            message(json!("+447400123456"), "Acme", "hi", None),
            "destination_blocked",
            Some("to"),
        ),
        (
            message(json!(NORMAL_NUMBER), "Other", "hi", None),
            "sender_not_allowed",
            Some("from"),
        ),
        (
            message(json!(NORMAL_NUMBER), "Acme", &long, None),
            "too_many_segments",
            Some("body"),
        ),
        (
            message(json!(NORMAL_NUMBER), "Acme", "casino night", None),
            "content_blocked",
            Some("body"),
        ),
        (
            message(json!(NORMAL_NUMBER), "Acme", "see bit.ly/x", None),
            "url_shortener_blocked",
            Some("body"),
        ),
        (
            message(json!(NORMAL_NUMBER), "Acme", "Sale", Some("marketing")),
            "opt_out_footer_missing",
            Some("body"),
        ),
    ];
    for (body, code, field) in &cases {
        let refused = app.post_json("/v1/messages", &app.key, body).await;
        refused.assert_problem(422, code);
        let problem = refused.json();
        assert_eq!(problem["field"].as_str(), *field, "{problem}");
        assert_eq!(problem["violations"][0]["code"], *code, "{problem}");
        assert!(problem["violations"][0]["rule"].is_string(), "{problem}");
    }
    // Every broken rule at once, in the order the rules run; `code` is the first.
    let many = message(
        json!([OTHER_NUMBER, "+447400123456"]),
        "Other",
        "casino",
        None,
    );
    let refused = app.post_json("/v1/messages", &app.key, &many).await;
    refused.assert_problem(422, "destination_not_allowed");
    let got: Vec<(String, String)> = refused.json()["violations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["code"].as_str().unwrap().to_owned(),
                v["field"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let want = [
        ("destination_not_allowed", "to[0]"),
        ("destination_blocked", "to[1]"),
        ("sender_not_allowed", "from"),
        ("content_blocked", "body"),
    ];
    assert_eq!(got, want.map(|(c, f)| (c.to_owned(), f.to_owned())));

    // The cap counts accepted messages only: the refusals above left the number free.
    let sent = app
        .post_json(
            "/v1/messages",
            &app.key,
            &message(json!(NORMAL_NUMBER), "Acme", "hi", None),
        )
        .await;
    assert_eq!(sent.status, StatusCode::ACCEPTED, "{}", sent.text);
    app.post_json(
        "/v1/messages",
        &app.key,
        &message(json!(NORMAL_NUMBER), "Acme", "hi", None),
    )
    .await
    .assert_problem(422, "frequency_cap_exceeded");

    // Quiet hours that hold right now for a number on UTC (Cyprus is not in the zone table).
    let now = time::OffsetDateTime::now_utc();
    let hh_mm = |t: time::OffsetDateTime| format!("{:02}:{:02}", t.hour(), t.minute());
    set_policy(
        &app,
        json!({"quiet_hours": {"start": hh_mm(now - time::Duration::hours(1)),
            "end": hh_mm(now + time::Duration::hours(2)), "action": "refuse"}}),
    )
    .await;
    app.post_json(
        "/v1/messages",
        &app.key,
        &message(
            json!("+35796123456"),
            "Acme",
            "Sale STOP",
            Some("marketing"),
        ),
    )
    .await
    .assert_problem(422, "quiet_hours");

    let metrics = app.get("/metrics", &app.operator_key()).await.text;
    for code in cases
        .iter()
        .map(|c| c.1)
        .chain(["frequency_cap_exceeded", "quiet_hours"])
    {
        let line = format!("rampart_policy_refusals_total{{code=\"{code}\"}}");
        assert!(metrics.contains(&line), "{line} in\n{metrics}");
    }
    let audit = app
        .get("/v1/audit-events?action=messages.send", &app.key)
        .await;
    assert!(
        audit.text.contains("denied:sender_not_allowed"),
        "{}",
        audit.text
    );
    assert!(
        !audit.text.contains("7911123456") && !audit.text.contains("casino"),
        "{}",
        audit.text
    );
}

#[tokio::test]
async fn a_dry_run_answers_what_a_send_would_meet_and_stores_nothing() {
    let app = spawn_app();
    let account = app.account_id();
    set_policy(&app, json!({"senders": {"sender_ids": ["Acme"]}})).await;
    app.cli(&["number", "add", "+447400123499", "--account", &account]);

    let allowed = app
        .post_json(
            "/v1/messages/dry-run",
            &app.key,
            &message(json!(NORMAL_NUMBER), "+447400123499", "Привет", None),
        )
        .await;
    assert_eq!(allowed.status, StatusCode::OK, "{}", allowed.text);
    assert_eq!(
        allowed.json(),
        json!({"allowed": true, "violations": [], "segments": 1, "encoding": "ucs2"})
    );
    let refused = app
        .post_json(
            "/v1/messages/dry-run",
            &app.key,
            &message(json!(NORMAL_NUMBER), "Other", "hi", None),
        )
        .await;
    assert_eq!(refused.status, StatusCode::OK, "{}", refused.text);
    let refused = refused.json();
    assert_eq!(refused["allowed"], false);
    assert_eq!(refused["violations"][0]["code"], "sender_not_allowed");
    assert_eq!(refused["violations"][0]["field"], "from");
    // A body that is not a send is refused as the send would be.
    app.post_json(
        "/v1/messages/dry-run",
        &app.key,
        &message(json!("+44"), "Acme", "hi", None),
    )
    .await
    .assert_problem(422, "invalid_phone_number");

    // Marketing in quiet hours (deferred): the dry run names the end of the window, and the
    // send schedules the message for it.
    let now = time::OffsetDateTime::now_utc();
    let end = now + time::Duration::hours(2);
    let hh_mm = |t: time::OffsetDateTime| format!("{:02}:{:02}", t.hour(), t.minute());
    set_policy(
        &app,
        json!({"quiet_hours": {"start": hh_mm(now - time::Duration::hours(1)), "end": hh_mm(end)}}),
    )
    .await;
    let marketing = message(
        json!("+35796123456"),
        "Acme",
        "Sale! STOP to end",
        Some("marketing"),
    );
    let dry = app
        .post_json("/v1/messages/dry-run", &app.key, &marketing)
        .await
        .json();
    assert_eq!(dry["allowed"], true, "{dry}");
    let until = parse_rfc3339(dry["deferred_until"].as_str().unwrap());
    assert_eq!(
        (until.hour(), until.minute(), until.second()),
        (end.hour(), end.minute(), 0)
    );
    assert!(until > now, "{dry}");
    let listed = app.get("/v1/messages", &app.key).await.json();
    assert_eq!(listed["data"], json!([]), "a dry run stores nothing");

    let sent = app.send(&marketing).await;
    let id = sent[0]["id"].as_str().unwrap();
    let stored = app.message(id).await;
    assert_eq!(stored["status"], "queued");
    assert_eq!(stored["category"], "marketing");
    assert_eq!(parse_rfc3339(stored["send_at"].as_str().unwrap()), until);
}
