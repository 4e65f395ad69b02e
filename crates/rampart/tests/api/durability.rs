//! An acknowledged message survives a crash: after SIGKILL and a restart on the same data
//! directory every acknowledged message is delivered, none is lost or duplicated, and each
//! was handed to the carrier once (one part row per segment in the store).

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{NORMAL_NUMBER, OTHER_NUMBER, id_of, join_all, spawn_app_with};

const MESSAGES: usize = 300;
const CONCURRENT_SENDERS: usize = 6;

#[tokio::test]
async fn every_acknowledged_message_survives_a_crash_and_is_handed_over_once() {
    // Receipts take a while, so the crash catches messages sent but not yet delivered, and
    // the restart must pick their receipts up again.
    let mut app = spawn_app_with(&[("RAMPART_SANDBOX__RECEIPT_DELAY_MS", "400")]);

    // Several senders at once; every 202 is a promise we check after the crash.
    let per_sender = MESSAGES / CONCURRENT_SENDERS;
    let senders = (0..CONCURRENT_SENDERS).map(|sender| {
        let app = &app;
        async move {
            let mut acknowledged = Vec::with_capacity(per_sender);
            for i in 0..per_sender {
                let to = if i % 2 == 0 {
                    NORMAL_NUMBER
                } else {
                    OTHER_NUMBER
                };
                let body =
                    json!({"to": to, "from": "Rampart", "body": format!("durable {sender}-{i}")});
                let reply = app.post_json("/v1/messages", &app.key, &body).await;
                assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.text);
                for entry in reply.json()["messages"].as_array().unwrap() {
                    acknowledged.push((id_of(entry), entry["segments"].as_i64().unwrap()));
                }
            }
            acknowledged
        }
    });
    let acknowledged: HashMap<String, i64> =
        join_all(senders).await.into_iter().flatten().collect();
    assert_eq!(
        acknowledged.len(),
        MESSAGES,
        "every send was acknowledged once"
    );

    app.kill9();
    app.restart();

    let expected: HashSet<String> = acknowledged.keys().cloned().collect();
    let deadline = Instant::now() + Duration::from_secs(40);
    let listed = loop {
        let listed = app.list_all("", 200).await;
        let delivered = listed.iter().filter(|m| m["status"] == "delivered").count();
        if delivered >= expected.len() || Instant::now() >= deadline {
            break listed;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let listed_ids: Vec<String> = listed.iter().map(id_of).collect();
    let listed_set: HashSet<String> = listed_ids.iter().cloned().collect();
    let missing: Vec<&String> = expected.difference(&listed_set).collect();
    assert!(missing.is_empty(), "acknowledged but lost: {missing:?}");
    assert_eq!(
        listed_ids.len(),
        expected.len(),
        "the account holds exactly the acknowledged messages"
    );
    let not_delivered: Vec<String> = listed
        .iter()
        .filter(|m| m["status"] != "delivered")
        .map(|m| format!("{} {}", m["id"], m["status"]))
        .collect();
    assert!(
        not_delivered.is_empty(),
        "not delivered after the restart: {not_delivered:?}"
    );

    app.terminate(Duration::from_secs(30)).await;
    let db = rusqlite::Connection::open(app.data_dir.join("rampart.db")).unwrap();
    let mut parts = db
        .prepare("SELECT message_id, COUNT(*) FROM message_parts GROUP BY message_id")
        .unwrap();
    let handed_over: HashMap<String, i64> = parts
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let mut wrong = Vec::new();
    for (id, segments) in &acknowledged {
        let count = handed_over.get(id).copied().unwrap_or(0);
        if count != *segments {
            wrong.push(format!("{id}: {count} part rows for {segments} segments"));
        }
    }
    let strangers: Vec<&String> = handed_over
        .keys()
        .filter(|id| !acknowledged.contains_key(*id))
        .collect();
    assert!(wrong.is_empty(), "not handed over exactly once: {wrong:?}");
    assert!(
        strangers.is_empty(),
        "parts of unknown messages: {strangers:?}"
    );
}
