//! Opt-out by keyword, end to end: a handset sends STOP, START and HELP to the account's number
//! through the SMSC; the next API send to it is refused, then accepted again, and every reply
//! (STOP's and START's confirmations, the help text) reaches the SMSC from that number.

use reqwest::StatusCode;
use serde_json::{Value, json};

use rampart::app::opt_out_settings::{DEFAULT_START_TEXT, DEFAULT_STOP_TEXT};

use crate::harness::{DataDir, Rampart, Smsc, hex};
use crate::require_node;

const HANDSET: &str = "447911123456";
const OUR_NUMBER: &str = "12345";
const HELP: &str = "Acme alerts. Reply STOP to end, START to resume.";

/// Waits for the `n`th accepted submit_sm from our number to the handset carrying `text`.
async fn reply_reaches_the_smsc(smsc: &Smsc, text: &str) -> Value {
    let wanted = hex(text.as_bytes());
    smsc.wait_for(1, |r| {
        r["event"] == "submit_sm"
            && r["command_status"] == 0
            && r["source_addr"] == OUR_NUMBER
            && r["destination_addr"]
                .as_str()
                .is_some_and(|d| d.ends_with(HANDSET))
            && r["short_message"] == wanted.as_str()
    })
    .await
    .remove(0)
}

async fn handset_sends(smsc: &mut Smsc, text: &str) {
    smsc.control(
        json!({"cmd": "mo", "source": HANDSET, "destination": OUR_NUMBER,
        "data_coding": 0, "short_message_hex": hex(text.as_bytes())}),
    )
    .await;
}

async fn api_send(app: &Rampart, body: &str) -> (StatusCode, Value) {
    app.post(
        "/v1/messages",
        &app.key,
        &json!({"to": [format!("+{HANDSET}")], "from": "Rampart", "body": body}),
    )
    .await
}

#[tokio::test]
async fn stop_keyword_blocks_further_sends_start_restores_them_and_help_gets_the_help_text() {
    require_node!();
    let mut smsc = Smsc::start(json!({"port": 0})).await;
    let dir = DataDir::new();
    dir.add_connector("carrier", smsc.port, &[]);
    dir.cli(&["route", "add", "--prefix", "", "--connector", "carrier"]);
    let accounts = dir.cli(&["account", "list"]);
    let account = accounts
        .lines()
        .find(|l| l.contains("\tdefault\t"))
        .and_then(|l| l.split('\t').next())
        .unwrap()
        .to_owned();
    dir.cli(&["number", "add", OUR_NUMBER, "--account", &account]);
    dir.cli(&[
        "optout",
        "settings",
        "--account",
        &account,
        "--help-text",
        HELP,
    ]);
    let app = Rampart::start(dir);
    app.wait_until_bound("carrier").await;

    // A message that only mentions the word is a message, not a keyword.
    handset_sends(&mut smsc, "stop please").await;
    handset_sends(&mut smsc, " Stop ").await;
    reply_reaches_the_smsc(&smsc, DEFAULT_STOP_TEXT).await;
    let (status, refused) = api_send(&app, "after stop").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
    assert_eq!(refused["code"], "recipient_opted_out");
    assert_eq!(refused["field"], "to[0]");
    let (_, listed) = app.get("/v1/opt-outs", &app.key).await;
    assert_eq!(
        listed["data"][0]["number"],
        format!("+{HANDSET}"),
        "{listed}"
    );
    assert_eq!(listed["data"][0]["source"], "keyword");

    handset_sends(&mut smsc, "start").await;
    reply_reaches_the_smsc(&smsc, DEFAULT_START_TEXT).await;
    let (status, accepted) = api_send(&app, "after start").await;
    assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
    let wanted = hex(b"after start");
    smsc.wait_for(1, |r| {
        r["event"] == "submit_sm" && r["short_message"] == wanted.as_str()
    })
    .await;

    handset_sends(&mut smsc, "HELP").await;
    reply_reaches_the_smsc(&smsc, HELP).await;

    // Every keyword is kept as an inbound message too, and the trail names no number.
    let (_, inbound) = app.get("/v1/inbound", &app.key).await;
    assert_eq!(inbound["data"].as_array().unwrap().len(), 4, "{inbound}");
    let (_, trail) = app.get("/v1/audit-events?limit=100", &app.key).await;
    let actions: Vec<&str> = trail["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    assert!(actions.contains(&"opt_out.add"), "{actions:?}");
    assert!(actions.contains(&"opt_out.remove"), "{actions:?}");
    assert!(!trail.to_string().contains("7911123456"), "{trail}");
    assert!(
        !app.log().contains("7911123456"),
        "a full number reached the log"
    );
}
