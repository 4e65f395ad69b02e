//! Sending, reading, listing and canceling messages; retries made safe by idempotency keys;
//! scheduled sends; and long messages whose parts are receipted one by one.

use std::collections::HashSet;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{
    NORMAL_NUMBER, OTHER_NUMBER, THIRD_NUMBER, id_of, join_all, parse_rfc3339, rfc3339_from_now,
    spawn_app,
};

#[tokio::test]
async fn a_message_to_a_normal_number_is_delivered() {
    let app = spawn_app();
    let accepted = app
        .send(&json!({"to": NORMAL_NUMBER, "from": "Rampart", "body": "Hello there", "client_ref": "order-1"}))
        .await;
    assert_eq!(accepted.len(), 1);
    assert_eq!(accepted[0]["to"], NORMAL_NUMBER);
    assert_eq!(accepted[0]["status"], "queued");
    let id = id_of(&accepted[0]);
    assert!(id.starts_with("msg_"), "{id}");

    let message = app.wait_for_status(&id, "delivered").await;
    assert_eq!(message["to"], NORMAL_NUMBER);
    assert_eq!(message["from"], "Rampart");
    assert_eq!(message["body"], "Hello there");
    assert_eq!(message["client_ref"], "order-1");
    assert_eq!(message["attempts"], 1);
    assert_eq!(message["segments"], 1);
    assert_eq!(message["encoding"], "gsm7");
    assert!(message.get("error_code").is_none(), "{message}");
    for stamp in ["created_at", "sent_at", "completed_at"] {
        parse_rfc3339(message[stamp].as_str().unwrap_or_default());
    }
}

#[tokio::test]
async fn a_send_to_several_recipients_returns_one_message_per_recipient() {
    let app = spawn_app();
    let recipients = [NORMAL_NUMBER, OTHER_NUMBER, THIRD_NUMBER];
    let accepted = app
        .send(&json!({"to": recipients, "from": "Rampart", "body": "to all of you"}))
        .await;
    assert_eq!(accepted.len(), recipients.len(), "{accepted:?}");
    let ids: HashSet<String> = accepted.iter().map(id_of).collect();
    assert_eq!(
        ids.len(),
        recipients.len(),
        "ids are distinct: {accepted:?}"
    );
    for (entry, to) in accepted.iter().zip(recipients) {
        assert_eq!(entry["to"], to, "entries follow the order of `to`");
        let message = app.wait_for_status(&id_of(entry), "delivered").await;
        assert_eq!(message["to"], to);
        assert_eq!(message["body"], "to all of you");
    }
    let listed = app.list_all("", 50).await;
    assert_eq!(
        listed.len(),
        recipients.len(),
        "no extra messages were made"
    );
}

/// One message of the listing mix, and how it ended.
struct Sent {
    id: String,
    to: &'static str,
    client_ref: &'static str,
    outcome: &'static str,
}

/// Sends the mix used by the listing tests and waits until every message has settled.
async fn send_listing_mix(app: &crate::helpers::TestApp) -> Vec<Sent> {
    let plan: [(&str, &str, &str); 7] = [
        (NORMAL_NUMBER, "batch-a", "delivered"),
        (NORMAL_NUMBER, "batch-b", "delivered"),
        (OTHER_NUMBER, "batch-a", "delivered"),
        ("+15005550001", "batch-a", "failed"),
        (OTHER_NUMBER, "batch-b", "delivered"),
        ("+15005550001", "batch-b", "failed"),
        (THIRD_NUMBER, "batch-c", "delivered"),
    ];
    let mut sent = Vec::new();
    for (i, (to, client_ref, outcome)) in plan.into_iter().enumerate() {
        let accepted = app
            .send(&json!({"to": to, "from": "Rampart", "body": format!("listing {i}"), "client_ref": client_ref}))
            .await;
        sent.push(Sent {
            id: id_of(&accepted[0]),
            to,
            client_ref,
            outcome,
        });
    }
    for m in &sent {
        app.wait_for_status(&m.id, m.outcome).await;
    }
    sent
}

fn ids(messages: &[Value]) -> HashSet<String> {
    messages.iter().map(id_of).collect()
}

#[tokio::test]
async fn listing_filters_by_status_recipient_and_client_ref() {
    let app = spawn_app();
    let sent = send_listing_mix(&app).await;
    let expect = |keep: &dyn Fn(&Sent) -> bool| -> HashSet<String> {
        sent.iter()
            .filter(|m| keep(m))
            .map(|m| m.id.clone())
            .collect()
    };

    let failed = app.list_all("status=failed&", 50).await;
    assert_eq!(ids(&failed), expect(&|m| m.outcome == "failed"));
    assert!(failed.iter().all(|m| m["status"] == "failed"));
    let delivered = app.list_all("status=delivered&", 50).await;
    assert_eq!(ids(&delivered), expect(&|m| m.outcome == "delivered"));

    let to_other = app
        .list_all(&format!("to=%2B{}&", &OTHER_NUMBER[1..]), 50)
        .await;
    assert_eq!(ids(&to_other), expect(&|m| m.to == OTHER_NUMBER));
    assert!(to_other.iter().all(|m| m["to"] == OTHER_NUMBER));

    let batch_a = app.list_all("client_ref=batch-a&", 50).await;
    assert_eq!(ids(&batch_a), expect(&|m| m.client_ref == "batch-a"));

    let combined = app
        .list_all(
            &format!(
                "status=delivered&client_ref=batch-b&to=%2B{}&",
                &NORMAL_NUMBER[1..]
            ),
            50,
        )
        .await;
    assert_eq!(
        ids(&combined),
        expect(&|m| m.outcome == "delivered" && m.client_ref == "batch-b" && m.to == NORMAL_NUMBER)
    );

    let nothing = app.list_all("client_ref=no-such-ref&", 50).await;
    assert!(nothing.is_empty(), "{nothing:?}");
}

#[tokio::test]
async fn cursor_pagination_walks_every_message_exactly_once() {
    let app = spawn_app();
    let sent = send_listing_mix(&app).await;
    let expected: HashSet<String> = sent.iter().map(|m| m.id.clone()).collect();

    let mut seen = Vec::new();
    let mut pages = 0;
    let mut cursor: Option<String> = None;
    for _ in 0..20 {
        let path = match &cursor {
            Some(c) => format!("/v1/messages?limit=2&cursor={c}"),
            None => "/v1/messages?limit=2".to_owned(),
        };
        let page = app.get(&path, &app.key).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.text);
        let page = page.json();
        let data = page["data"].as_array().unwrap();
        assert!(data.len() <= 2, "limit=2 gave {}", data.len());
        seen.extend(data.iter().map(id_of));
        pages += 1;
        match page["next_cursor"].as_str() {
            Some(next) => {
                assert_eq!(data.len(), 2, "only the last page may be short");
                cursor = Some(next.to_owned());
            }
            None => break,
        }
    }
    assert_eq!(pages, 4, "7 messages in pages of 2: {seen:?}");
    let unique: HashSet<String> = seen.iter().cloned().collect();
    assert_eq!(
        unique.len(),
        seen.len(),
        "duplicates across pages: {seen:?}"
    );
    assert_eq!(unique, expected, "pages miss or add messages");
    let mut newest_first = seen.clone();
    newest_first.sort_by(|a, b| b.cmp(a));
    assert_eq!(seen, newest_first, "pages run newest first");

    // The same walk under a filter.
    let filtered = app.list_all("client_ref=batch-a&", 1).await;
    assert_eq!(
        ids(&filtered),
        sent.iter()
            .filter(|m| m.client_ref == "batch-a")
            .map(|m| m.id.clone())
            .collect()
    );
}

#[tokio::test]
async fn a_retry_with_the_same_idempotency_key_and_body_returns_the_same_messages_once() {
    let app = spawn_app();
    let request = json!({"to": [NORMAL_NUMBER, OTHER_NUMBER], "from": "Rampart", "body": "charged once", "client_ref": "idem"});
    let headers = [("idempotency-key", "order-1234")];

    let first = app
        .post_json_with_headers("/v1/messages", &app.key, &request, &headers)
        .await;
    assert_eq!(first.status, StatusCode::ACCEPTED, "{}", first.text);
    assert_ne!(first.header("idempotent-replayed"), Some("true"));
    let first_ids: Vec<String> = first.json()["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(id_of)
        .collect();

    let second = app
        .post_json_with_headers("/v1/messages", &app.key, &request, &headers)
        .await;
    assert_eq!(second.status, StatusCode::ACCEPTED, "{}", second.text);
    assert_eq!(second.header("idempotent-replayed"), Some("true"));
    let second_ids: Vec<String> = second.json()["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(id_of)
        .collect();
    assert_eq!(first_ids, second_ids, "a retry returns the same messages");

    for id in &first_ids {
        let message = app.wait_for_status(id, "delivered").await;
        assert_eq!(
            message["attempts"], 1,
            "handed to the carrier once: {message}"
        );
    }
    // A retry after delivery still replays the same messages.
    let third = app
        .post_json_with_headers("/v1/messages", &app.key, &request, &headers)
        .await;
    assert_eq!(third.status, StatusCode::ACCEPTED, "{}", third.text);
    assert_eq!(third.header("idempotent-replayed"), Some("true"));
    assert_eq!(id_of(&third.json()["messages"][0]), first_ids[0]);

    let listed = app.list_all("client_ref=idem&", 50).await;
    assert_eq!(
        ids(&listed),
        first_ids.iter().cloned().collect(),
        "the list shows each message once"
    );
    assert_eq!(listed.len(), first_ids.len());
}

#[tokio::test]
async fn concurrent_retries_with_one_idempotency_key_create_the_messages_once() {
    let app = spawn_app();
    let request =
        json!({"to": NORMAL_NUMBER, "from": "Rampart", "body": "raced", "client_ref": "race"});
    let headers = [("idempotency-key", "race-1")];
    let replies = join_all(
        (0..8).map(|_| app.post_json_with_headers("/v1/messages", &app.key, &request, &headers)),
    )
    .await;
    let mut distinct = HashSet::new();
    for reply in &replies {
        assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.text);
        distinct.insert(id_of(&reply.json()["messages"][0]));
    }
    assert_eq!(
        distinct.len(),
        1,
        "every retry names one message: {distinct:?}"
    );
    let listed = app.list_all("client_ref=race&", 50).await;
    assert_eq!(listed.len(), 1, "{listed:?}");
}

#[tokio::test]
async fn reusing_an_idempotency_key_with_a_different_body_is_a_conflict() {
    let app = spawn_app();
    let headers = [("idempotency-key", "order-77")];
    let first = app
        .post_json_with_headers(
            "/v1/messages",
            &app.key,
            &json!({"to": NORMAL_NUMBER, "from": "Rampart", "body": "first"}),
            &headers,
        )
        .await;
    assert_eq!(first.status, StatusCode::ACCEPTED, "{}", first.text);
    let other = app
        .post_json_with_headers(
            "/v1/messages",
            &app.key,
            &json!({"to": NORMAL_NUMBER, "from": "Rampart", "body": "second"}),
            &headers,
        )
        .await;
    other.assert_problem(409, "idempotency_key_reused");
    assert_eq!(app.list_all("", 50).await.len(), 1, "no second message");
}

#[tokio::test]
async fn a_scheduled_message_stays_queued_until_its_time_then_is_delivered() {
    let app = spawn_app();
    let send_at = rfc3339_from_now(time::Duration::seconds(3));
    let accepted = app
        .send(&json!({"to": NORMAL_NUMBER, "from": "Rampart", "body": "later", "send_at": send_at}))
        .await;
    let id = id_of(&accepted[0]);
    // A message sent now, after the scheduled one, overtakes it.
    let now_id = app.send_to(NORMAL_NUMBER, "now").await;
    app.wait_for_status(&now_id, "delivered").await;
    let waiting = app.message(&id).await;
    // Only meaningful while its time is still ahead (a slow machine may be past it already).
    if time::OffsetDateTime::now_utc() < parse_rfc3339(&send_at) {
        assert_eq!(waiting["status"], "queued", "{waiting}");
        assert_eq!(waiting["attempts"], 0, "{waiting}");
        assert!(waiting.get("sent_at").is_none(), "{waiting}");
    }

    let delivered = app.wait_for_status(&id, "delivered").await;
    let scheduled = parse_rfc3339(delivered["send_at"].as_str().unwrap());
    let sent_at = parse_rfc3339(delivered["sent_at"].as_str().unwrap());
    assert!(
        sent_at >= scheduled,
        "sent at {sent_at} before its time {scheduled}"
    );
    assert_eq!(parse_rfc3339(&send_at), scheduled, "send_at is kept");
}

#[tokio::test]
async fn a_canceled_scheduled_message_is_never_sent() {
    let app = spawn_app();
    let send_at = rfc3339_from_now(time::Duration::seconds(4));
    let request = |body: &str| json!({"to": NORMAL_NUMBER, "from": "Rampart", "body": body, "send_at": send_at});
    let canceled_id = id_of(&app.send(&request("cancel me")).await[0]);
    let sibling_id = id_of(&app.send(&request("keep me")).await[0]);

    let canceled = app
        .post_json(
            &format!("/v1/messages/{canceled_id}/cancel"),
            &app.key,
            &json!({}),
        )
        .await;
    assert_eq!(canceled.status, StatusCode::OK, "{}", canceled.text);
    assert_eq!(canceled.json()["status"], "canceled");

    // Once its sibling, due at the same time, has gone out, the canceled one would have too.
    app.wait_for_status(&sibling_id, "delivered").await;
    let after = app.message(&canceled_id).await;
    assert_eq!(after["status"], "canceled", "{after}");
    assert_eq!(after["attempts"], 0, "{after}");
    assert!(after.get("sent_at").is_none(), "{after}");

    let again = app
        .post_json(
            &format!("/v1/messages/{canceled_id}/cancel"),
            &app.key,
            &json!({}),
        )
        .await;
    again.assert_problem(409, "not_cancelable");
}

#[tokio::test]
async fn a_delivered_message_cannot_be_canceled() {
    let app = spawn_app();
    let id = app.send_to(NORMAL_NUMBER, "too late").await;
    app.wait_for_status(&id, "delivered").await;
    let reply = app
        .post_json(&format!("/v1/messages/{id}/cancel"), &app.key, &json!({}))
        .await;
    reply.assert_problem(409, "not_cancelable");
    assert_eq!(app.message(&id).await["status"], "delivered");

    let missing = app
        .post_json(
            "/v1/messages/msg_01nosuchmessage000000000000/cancel",
            &app.key,
            &json!({}),
        )
        .await;
    missing.assert_problem(404, "not_found");
}

#[tokio::test]
async fn a_long_message_is_delivered_once_every_part_has_its_receipt_even_when_receipts_come_first()
{
    // No receipt delay: a part's receipt can reach the server before the carrier's acceptance
    // of the message is recorded.
    let mut app = crate::helpers::spawn_app_with(&[("RAMPART_SANDBOX__RECEIPT_DELAY_MS", "0")]);
    let mut expected = Vec::new();
    for (body, segments) in [
        ("a".repeat(1000), 7),
        ("Ж".repeat(200), 3),
        ("b".repeat(161), 2),
    ] {
        let accepted = app
            .send(&json!({"to": NORMAL_NUMBER, "from": "Rampart", "body": body}))
            .await;
        assert_eq!(accepted[0]["segments"], segments);
        expected.push((id_of(&accepted[0]), segments));
    }
    for (id, _) in &expected {
        let message = app.wait_for_status(id, "delivered").await;
        assert_eq!(message["attempts"], 1, "{message}");
    }
    app.terminate(std::time::Duration::from_secs(30)).await;
    let db = rusqlite::Connection::open(app.data_dir.join("rampart.db")).unwrap();
    for (id, segments) in expected {
        let (parts, delivered): (i64, i64) = db
            .query_row(
                "SELECT COUNT(*), COALESCE(SUM(state = 'delivered'), 0) FROM message_parts WHERE message_id = ?1",
                [&id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!((parts, delivered), (segments, segments), "parts of {id}");
    }
}

#[tokio::test]
async fn listing_filters_by_creation_time() {
    let app = spawn_app();
    let mut created = Vec::new();
    for i in 0..3 {
        let id = app.send_to(NORMAL_NUMBER, &format!("timed {i}")).await;
        let message = app.wait_for_status(&id, "delivered").await;
        created.push((id, message["created_at"].as_str().unwrap().to_owned()));
    }
    let times: HashSet<&String> = created.iter().map(|(_, t)| t).collect();
    assert_eq!(times.len(), 3, "distinct creation times: {created:?}");
    let encode = |t: &str| t.replace('+', "%2B").replace(':', "%3A");
    let middle = encode(&created[1].1);

    let after = app.list_all(&format!("created_after={middle}&"), 50).await;
    assert_eq!(
        ids(&after),
        [created[1].0.clone(), created[2].0.clone()]
            .into_iter()
            .collect(),
        "created_after is inclusive"
    );
    let before = app.list_all(&format!("created_before={middle}&"), 50).await;
    assert_eq!(
        ids(&before),
        [created[0].0.clone()].into_iter().collect(),
        "created_before is exclusive"
    );
}
