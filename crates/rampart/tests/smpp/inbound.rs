//! Inbound (MO) messages reach the account that owns the number, and only that account.

use std::time::Instant;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::harness::{DataDir, Rampart, Smsc, WAIT, hex};
use crate::require_node;

async fn wait_for_inbound(app: &Rampart, key: &str, count: usize) -> Vec<Value> {
    let deadline = Instant::now() + WAIT;
    loop {
        let (status, page) = app.get("/v1/inbound", key).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let data = page["data"].as_array().cloned().unwrap_or_default();
        if data.len() >= count {
            return data;
        }
        assert!(
            Instant::now() < deadline,
            "only {data:?} arrived\n{}",
            app.log()
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn an_inbound_message_reaches_the_account_owning_the_number_and_no_other() {
    require_node!();
    let mut smsc = Smsc::start(json!({"port": 0})).await;
    let dir = DataDir::new();
    dir.add_connector("carrier", smsc.port, &[]);
    let app = Rampart::start(dir);
    app.wait_until_bound("carrier").await;

    let accounts = app.dir.cli(&["account", "list"]);
    let own = accounts
        .lines()
        .find(|l| l.contains("\tdefault\t"))
        .and_then(|l| l.split('\t').next())
        .unwrap()
        .to_owned();
    let other = app.dir.cli(&["account", "create", "--name", "other"]);
    let other_key = app.dir.cli(&[
        "apikey",
        "create",
        "--account",
        &other,
        "--scopes",
        "inbound:read",
    ]);
    app.dir.cli(&["number", "add", "12345", "--account", &own]);
    app.dir
        .cli(&["number", "add", "+447911000222", "--account", &other]);

    // To nobody's number first: by the time the others are stored, it has been handled.
    smsc.control(
        json!({"cmd": "mo", "source": "447911123456", "destination": "99999",
        "data_coding": 0, "short_message_hex": hex(b"lost")}),
    )
    .await;
    smsc.control(
        json!({"cmd": "mo", "source": "447911123456", "destination": "12345",
        "data_coding": 0, "short_message_hex": "48656c6c6f201b65"}),
    )
    .await;
    let utf16: Vec<u8> = "Привет".encode_utf16().flat_map(u16::to_be_bytes).collect();
    smsc.control(
        json!({"cmd": "mo", "source": "447911123457", "destination": "447911000222",
        "destination_ton": 1, "destination_npi": 1, "data_coding": 8,
        "short_message_hex": hex(&utf16)}),
    )
    .await;

    let mine = wait_for_inbound(&app, &app.key, 1).await;
    let theirs = wait_for_inbound(&app, &other_key, 1).await;
    assert_eq!(mine.len(), 1, "{mine:?}");
    assert_eq!(mine[0]["from"], "+447911123456");
    assert_eq!(mine[0]["to"], "12345");
    assert_eq!(mine[0]["body"], "Hello €");
    assert_eq!(mine[0]["connector"], "carrier");
    assert!(mine[0]["id"].as_str().unwrap().starts_with("inb_"));
    assert_eq!(theirs.len(), 1, "{theirs:?}");
    assert_eq!(theirs[0]["body"], "Привет");
    assert_eq!(theirs[0]["to"], "+447911000222");

    // Each account's ids are invisible to the other.
    let mine_id = mine[0]["id"].as_str().unwrap();
    let theirs_id = theirs[0]["id"].as_str().unwrap();
    let (status, one) = app.get(&format!("/v1/inbound/{mine_id}"), &app.key).await;
    assert_eq!(
        (status, one["body"].clone()),
        (StatusCode::OK, json!("Hello €"))
    );
    let (status, _) = app.get(&format!("/v1/inbound/{mine_id}"), &other_key).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = app.get(&format!("/v1/inbound/{theirs_id}"), &app.key).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // A list cursor is looked up in its own account only: the other account's (newer) id as
    // our cursor gives an empty page, not our rows older than it.
    let (status, page) = app
        .get(&format!("/v1/inbound?cursor={theirs_id}"), &app.key)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["data"], json!([]), "{page}");
    let (status, page) = app
        .get(&format!("/v1/inbound?cursor={mine_id}"), &other_key)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["data"], json!([]), "{page}");

    // Filtering by sender goes through the blind index.
    let (_, by_sender) = app.get("/v1/inbound?from=%2B447911123456", &app.key).await;
    assert_eq!(by_sender["data"].as_array().unwrap().len(), 1);
    let (_, by_other) = app.get("/v1/inbound?from=%2B447911123457", &app.key).await;
    assert_eq!(by_other["data"].as_array().unwrap().len(), 0);

    let (_, numbers) = app.get("/v1/numbers", &other_key).await;
    assert_eq!(numbers["data"][0]["number"], "+447911000222");
    assert_eq!(numbers["data"].as_array().unwrap().len(), 1);
    // An inbound-only key sees no connectors and no outbound messages.
    let (status, _) = app.get("/v1/connectors", &other_key).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = app.get("/v1/messages", &other_key).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(smsc.recorded("mo_sent").len(), 3);
}
