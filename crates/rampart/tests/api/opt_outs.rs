//! `/v1/opt-outs` and `rampart optout`: an opted-out number's sends are refused with
//! `recipient_opted_out` (naming `to[i]`), counted and audited without the number; the list
//! pages, imports (JSON and CSV), exports CSV and follows the CLI within a second.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{NORMAL_NUMBER, OTHER_NUMBER, THIRD_NUMBER, TestApp, spawn_app};

async fn send(app: &TestApp, to: Value) -> crate::reply::Reply {
    app.post_json(
        "/v1/messages",
        &app.key,
        &json!({"to": to, "from": "Rampart", "body": "hello"}),
    )
    .await
}

#[tokio::test]
async fn an_opted_out_number_is_refused_by_name_until_it_is_removed() {
    let app = spawn_app();
    let added = app
        .post_json("/v1/opt-outs", &app.key, &json!({"number": OTHER_NUMBER}))
        .await;
    assert_eq!(added.status, StatusCode::CREATED, "{}", added.text);
    let view = added.json();
    assert_eq!(view["number"], OTHER_NUMBER);
    assert_eq!(view["scope"], "account");
    assert_eq!(view["source"], "api");
    let again = app
        .post_json("/v1/opt-outs", &app.key, &json!({"number": OTHER_NUMBER}))
        .await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.text);

    let refused = send(&app, json!([NORMAL_NUMBER, OTHER_NUMBER])).await;
    refused.assert_problem(422, "recipient_opted_out");
    assert_eq!(refused.json()["field"], "to[1]", "{}", refused.text);
    send(&app, json!(OTHER_NUMBER))
        .await
        .assert_problem(422, "recipient_opted_out");
    let accepted = send(&app, json!(NORMAL_NUMBER)).await;
    assert_eq!(accepted.status, StatusCode::ACCEPTED, "{}", accepted.text);

    let metrics = app.get("/metrics", &app.operator_key()).await.text;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("rampart_policy_refusals_total{code=\"recipient_opted_out\"} 2")),
        "{metrics}"
    );

    let removed = app.delete("/v1/opt-outs/%2B33612345678", &app.key).await;
    assert_eq!(removed.status, StatusCode::NO_CONTENT, "{}", removed.text);
    app.delete("/v1/opt-outs/%2B33612345678", &app.key)
        .await
        .assert_problem(404, "not_found");
    let accepted = send(&app, json!([NORMAL_NUMBER, OTHER_NUMBER])).await;
    assert_eq!(accepted.status, StatusCode::ACCEPTED, "{}", accepted.text);

    // The trail names the opt-out's id, never the number.
    let trail = app.get("/v1/audit-events?limit=50", &app.key).await;
    let actions: Vec<String> = trail.json()["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_owned())
        .collect();
    assert!(actions.contains(&"opt_out.add".to_owned()), "{actions:?}");
    assert!(
        actions.contains(&"opt_out.remove".to_owned()),
        "{actions:?}"
    );
    assert!(!trail.text.contains("612345678"), "{}", trail.text);
}

#[tokio::test]
async fn a_per_sender_opt_out_refuses_that_sender_only() {
    let app = spawn_app();
    let added = app
        .post_json(
            "/v1/opt-outs",
            &app.key,
            &json!({"number": NORMAL_NUMBER, "sender": "Rampart"}),
        )
        .await;
    assert_eq!(added.status, StatusCode::CREATED, "{}", added.text);
    assert_eq!(added.json()["scope"], "sender");
    send(&app, json!(NORMAL_NUMBER))
        .await
        .assert_problem(422, "recipient_opted_out");
    let other_sender = app
        .post_json(
            "/v1/messages",
            &app.key,
            &json!({"to": NORMAL_NUMBER, "from": "Other", "body": "hello"}),
        )
        .await;
    assert_eq!(
        other_sender.status,
        StatusCode::ACCEPTED,
        "{}",
        other_sender.text
    );
}

#[tokio::test]
async fn opt_outs_import_as_json_or_csv_and_export_as_csv_in_pages() {
    let app = spawn_app();
    let imported = app
        .post_json(
            "/v1/opt-outs/import",
            &app.key,
            &json!({"numbers": [NORMAL_NUMBER, OTHER_NUMBER]}),
        )
        .await;
    assert_eq!(imported.status, StatusCode::OK, "{}", imported.text);
    assert_eq!(imported.json(), json!({"added": 2, "unchanged": 0}));
    let csv = format!("number\n{OTHER_NUMBER}\n{THIRD_NUMBER}\n");
    let imported = app
        .post_raw(
            "/v1/opt-outs/import",
            &app.key,
            Some("text/csv"),
            csv.into_bytes(),
        )
        .await;
    assert_eq!(imported.status, StatusCode::OK, "{}", imported.text);
    assert_eq!(imported.json(), json!({"added": 1, "unchanged": 1}));
    let bad = app
        .post_json(
            "/v1/opt-outs/import",
            &app.key,
            &json!({"numbers": ["+447911123999", "not a number"]}),
        )
        .await;
    bad.assert_problem(422, "invalid_phone_number");
    assert_eq!(bad.json()["field"], "numbers[1]");

    let first = app.get("/v1/opt-outs?limit=2", &app.key).await.json();
    assert_eq!(first["data"].as_array().unwrap().len(), 2, "{first}");
    let cursor = first["next_cursor"].as_str().unwrap();
    let rest = app
        .get(&format!("/v1/opt-outs?limit=2&cursor={cursor}"), &app.key)
        .await
        .json();
    assert_eq!(rest["data"].as_array().unwrap().len(), 1, "{rest}");
    assert!(rest.get("next_cursor").is_none());
    assert_eq!(rest["data"][0]["source"], "import");

    let export = app.get("/v1/opt-outs/export", &app.key).await;
    assert_eq!(export.status, StatusCode::OK);
    assert!(
        export
            .header("content-type")
            .unwrap()
            .starts_with("text/csv")
    );
    let lines: Vec<&str> = export.text.lines().collect();
    assert_eq!(lines[0], "number,scope,sender,source,created_at");
    assert_eq!(lines.len(), 4, "{}", export.text);
    for number in [NORMAL_NUMBER, OTHER_NUMBER, THIRD_NUMBER] {
        assert!(export.text.contains(&format!("{number},account,,import,")));
    }
}

#[tokio::test]
async fn an_opt_out_added_with_the_cli_refuses_sends_of_the_running_server_within_a_second() {
    let app = spawn_app();
    let account = app.account_id();
    let out = app.cli(&["optout", "add", THIRD_NUMBER, "--account", &account]);
    assert_eq!(out, "opted out");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let reply = send(&app, json!(THIRD_NUMBER)).await;
        if reply.status == StatusCode::UNPROCESSABLE_ENTITY {
            reply.assert_problem(422, "recipient_opted_out");
            break;
        }
        assert!(Instant::now() < deadline, "still accepted: {}", reply.text);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let listed = app.cli(&["optout", "list", "--account", &account]);
    assert!(
        listed.starts_with(&format!("{THIRD_NUMBER}\t*\tapi\t")),
        "{listed}"
    );
    let exported = app.cli(&["optout", "export", "--account", &account]);
    assert!(exported.contains(&format!("{THIRD_NUMBER},account,,api,")));
    app.cli(&["optout", "remove", THIRD_NUMBER, "--account", &account]);
    let deadline = Instant::now() + Duration::from_secs(5);
    while send(&app, json!(THIRD_NUMBER)).await.status != StatusCode::ACCEPTED {
        assert!(
            Instant::now() < deadline,
            "still refused after the CLI removed it"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn the_opt_out_settings_have_defaults_and_refuse_a_bad_scope_or_text() {
    let app = spawn_app();
    let settings = app.get("/v1/opt-outs/settings", &app.key).await.json();
    assert_eq!(settings["enabled"], true);
    assert_eq!(settings["scope"], "account");
    assert!(settings["stop_text"].as_str().unwrap().contains("START"));
    let put = |body: Value| {
        let app = &app;
        async move {
            let bytes = serde_json::to_vec(&body).unwrap();
            app.request(
                Method::PUT,
                "/v1/opt-outs/settings",
                &app.key,
                Some((Some("application/json"), bytes)),
                &[],
            )
            .await
        }
    };
    let changed =
        put(json!({"scope": "per_sender", "help_text": "Acme alerts. Reply STOP to end."})).await;
    assert_eq!(changed.status, StatusCode::OK, "{}", changed.text);
    assert_eq!(changed.json()["scope"], "per_sender");
    assert_eq!(
        changed.json()["help_text"],
        "Acme alerts. Reply STOP to end."
    );
    put(json!({"scope": "everyone"}))
        .await
        .assert_problem(422, "invalid_opt_out_scope");
    put(json!({"stop_text": "x".repeat(307)}))
        .await
        .assert_problem(422, "invalid_reply_text");
    put(json!({"stop_text": "  "}))
        .await
        .assert_problem(422, "invalid_reply_text");
    put(json!([null, null]))
        .await
        .assert_problem(422, "invalid_field");
    let kept = app.get("/v1/opt-outs/settings", &app.key).await.json();
    assert_eq!(kept["scope"], "per_sender");
}
