//! The SMS pumping defence over the API: a burst of sequential numbers in one range is refused
//! with `destination_suspected_pumping` once it trips, counted, listed under
//! `/v1/pumping/blocks` and lifted there.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{OTHER_NUMBER, spawn_app_with};

#[tokio::test]
async fn a_burst_of_sequential_numbers_is_refused_listed_and_lifted_over_the_api() {
    let app = spawn_app_with(&[
        ("RAMPART_PUMPING__ENABLED", "true"),
        ("RAMPART_PUMPING__CATEGORIES", r#"["otp","transactional"]"#),
    ]);
    let mut accepted = 0;
    let refused = loop {
        let to = format!("+447911123{accepted:03}");
        let reply = app
            .post_json(
                "/v1/messages",
                &app.key,
                &json!({"to": [to], "from": "Rampart", "body": "hello"}),
            )
            .await;
        if reply.status != StatusCode::ACCEPTED {
            break reply;
        }
        accepted += 1;
        assert!(accepted < 50, "the range was never blocked");
    };
    refused.assert_problem(422, "destination_suspected_pumping");
    assert_eq!(refused.json()["field"], "to[0]");
    assert_eq!(accepted, 9, "the tenth number in a run trips the range");

    let other = app
        .post_json(
            "/v1/messages",
            &app.key,
            &json!({"to": OTHER_NUMBER, "from": "Rampart", "body": "hello"}),
        )
        .await;
    assert_eq!(other.status, StatusCode::ACCEPTED, "{}", other.text);

    let blocks = app.get("/v1/pumping/blocks", &app.key).await.json();
    assert_eq!(blocks["data"][0]["prefix"], "+447911123", "{blocks}");
    assert_eq!(blocks["data"][0]["reason"], "sequential_numbers");
    let metrics = app.get("/metrics", &app.operator_key()).await.text;
    assert!(
        metrics.contains("rampart_pumping_blocks_total{reason=\"sequential_numbers\"} 1"),
        "{metrics}"
    );

    let lifted = app
        .delete("/v1/pumping/blocks/%2B447911123", &app.key)
        .await;
    assert_eq!(lifted.status, StatusCode::NO_CONTENT, "{}", lifted.text);
    let again = app
        .post_json(
            "/v1/messages",
            &app.key,
            &json!({"to": "+447911123500", "from": "Rampart", "body": "hello"}),
        )
        .await;
    assert_eq!(again.status, StatusCode::ACCEPTED, "{}", again.text);
    let (ok, listed, _) = app.cli_output(&["pumping", "list"]);
    assert!(ok);
    assert!(listed.is_empty(), "{listed}");
}
