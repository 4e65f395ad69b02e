//! When the carrier pushes back or goes away: throttling, an SMSC killed under load and
//! restarted, and failover to a second connector.

use std::collections::HashSet;

use serde_json::{Value, json};

use crate::harness::{DataDir, Rampart, Smsc};
use crate::require_node;

/// `count` distinct UK mobile numbers.
fn recipients(count: usize) -> Vec<String> {
    (0..count).map(|i| format!("+4479111{i:05}")).collect()
}

fn destinations(records: &[Value]) -> HashSet<String> {
    records
        .iter()
        .map(|r| r["destination_addr"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn throttling_slows_sending_down_and_every_message_still_arrives() {
    require_node!();
    let smsc = Smsc::start(json!({"port": 0, "throttle_first": 6})).await;
    let dir = DataDir::new();
    dir.add_connector("carrier", smsc.port, &["--option=throttle_backoff_ms=300"]);
    dir.cli(&["route", "add", "--prefix", "", "--connector", "carrier"]);
    let app = Rampart::start(dir);
    app.wait_until_bound("carrier").await;

    let ids = app.send(json!(recipients(10)), "slow down").await;
    for id in &ids {
        app.wait_for_status(id, &["delivered"]).await;
    }
    let submits = smsc.timed("submit_sm");
    let throttled: Vec<_> = submits
        .iter()
        .filter(|(_, r)| r["command_status"] == 0x58)
        .collect();
    assert_eq!(throttled.len(), 6, "{submits:?}");
    let accepted: Vec<_> = submits
        .iter()
        .filter(|(_, r)| r["command_status"] == 0)
        .collect();
    assert_eq!(
        destinations(&accepted.iter().map(|(_, r)| r.clone()).collect::<Vec<_>>()).len(),
        10
    );
    // The refused messages were tried again only after the pause (300 ms) the SMSC forced.
    let refused = destinations(&throttled.iter().map(|(_, r)| r.clone()).collect::<Vec<_>>());
    let first_refusal = throttled[0].0;
    let first_retry = accepted
        .iter()
        .filter(|(_, r)| refused.contains(r["destination_addr"].as_str().unwrap()))
        .map(|(at, _)| *at)
        .min()
        .unwrap();
    assert!(
        first_retry.duration_since(first_refusal).as_millis() >= 250,
        "no pause after throttling: {submits:?}"
    );
    let status = app.wait_for_connector("carrier", |c| c["up"] == true).await;
    assert!(status["errors"].as_u64().unwrap() >= 6, "{status}");
    assert_eq!(status["submitted"].as_u64().unwrap(), 10, "{status}");
}

#[tokio::test]
async fn an_smsc_killed_under_load_and_restarted_loses_no_accepted_message() {
    require_node!();
    let mut first = Smsc::start(json!({"port": 0, "respond_after_ms": 20})).await;
    let port = first.port;
    let dir = DataDir::new();
    dir.add_connector("carrier", port, &["--window", "4"]);
    dir.cli(&["route", "add", "--prefix", "", "--connector", "carrier"]);
    let app = Rampart::start(dir);
    app.wait_until_bound("carrier").await;

    let numbers = recipients(200);
    let ids = app.send(json!(numbers), "under load").await;
    first
        .wait_for(40, |r| {
            r["event"] == "submit_sm" && r["command_status"] == 0
        })
        .await;
    first.kill().await;
    app.wait_for_connector("carrier", |c| c["up"] == false)
        .await;
    let second = Smsc::start(json!({"port": port})).await;

    let mut statuses = Vec::new();
    for id in &ids {
        statuses.push(app.wait_for_status(id, &["delivered", "sent"]).await);
    }
    // None failed and none is missing: each reached an SMSC. Those the second SMSC took, and
    // those whose receipt we acknowledged before the kill, end delivered; only a message
    // whose receipt died with the first SMSC may stay `sent`.
    let after = destinations(&second.accepted());
    assert!(!after.is_empty(), "nothing reached the restarted SMSC");
    let acknowledged: HashSet<String> = first
        .recorded("deliver_sm_resp")
        .iter()
        .filter_map(|r| r["message_id"].as_str().map(str::to_owned))
        .collect();
    let receipted_numbers: HashSet<String> = first
        .accepted()
        .iter()
        .filter(|r| acknowledged.contains(r["message_id"].as_str().unwrap()))
        .map(|r| r["destination_addr"].as_str().unwrap().to_owned())
        .collect();
    let before = destinations(&first.accepted());
    for (number, message) in numbers.iter().zip(&statuses) {
        let digits = number.trim_start_matches('+');
        assert!(
            before.contains(digits) || after.contains(digits),
            "{number} reached no SMSC"
        );
        if after.contains(digits) || receipted_numbers.contains(digits) {
            app.wait_for_status(message["id"].as_str().unwrap(), &["delivered"])
                .await;
        }
    }
}

#[tokio::test]
async fn when_one_smsc_of_a_route_dies_messages_go_through_the_other() {
    require_node!();
    let mut primary = Smsc::start(json!({"port": 0})).await;
    let backup = Smsc::start(json!({"port": 0})).await;
    let dir = DataDir::new();
    dir.add_connector("primary", primary.port, &[]);
    dir.add_connector("backup", backup.port, &[]);
    dir.cli(&["route", "add", "--prefix", "+44", "--connector", "primary"]);
    dir.cli(&[
        "route",
        "add",
        "--prefix",
        "+44",
        "--connector",
        "backup",
        "--priority",
        "1",
    ]);
    let app = Rampart::start(dir);
    app.wait_until_bound("primary").await;
    app.wait_until_bound("backup").await;

    let first = app.send(json!(recipients(5)), "via primary").await;
    for id in &first {
        app.wait_for_status(id, &["delivered"]).await;
    }
    assert_eq!(primary.accepted().len(), 5);
    assert_eq!(backup.accepted().len(), 0);

    primary.kill().await;
    let numbers: Vec<String> = (0..20).map(|i| format!("+4479112{i:05}")).collect();
    let second = app.send(json!(numbers), "via backup").await;
    for id in &second {
        app.wait_for_status(id, &["delivered"]).await;
    }
    let via_backup = destinations(&backup.accepted());
    for number in &numbers {
        assert!(
            via_backup.contains(number.trim_start_matches('+')),
            "{number} did not go through the backup"
        );
    }
}
