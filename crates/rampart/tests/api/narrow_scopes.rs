//! What narrow keys see: a cancel shows a sender only the status, `messages:status` shows
//! messages without their text, list cursors stay in their account, and names with control
//! characters are refused.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{NORMAL_NUMBER, id_of, rfc3339_from_now, spawn_app};

fn scheduled(body: &str) -> Value {
    json!({
        "to": NORMAL_NUMBER, "from": "Rampart", "body": body,
        "send_at": rfc3339_from_now(time::Duration::hours(1)),
    })
}

fn keys_of(value: &Value) -> Vec<String> {
    let mut keys: Vec<String> = value
        .as_object()
        .unwrap_or_else(|| panic!("an object: {value}"))
        .keys()
        .cloned()
        .collect();
    keys.sort();
    keys
}

#[tokio::test]
async fn a_cancel_answers_a_key_without_messages_read_with_the_id_and_status_only() {
    let app = spawn_app();
    let (_, sender) = app.create_key(&["messages:send"], None).await;
    let first = id_of(&app.send(&scheduled("secret code 551234")).await[0]);
    let second = id_of(&app.send(&scheduled("secret code 551234")).await[0]);

    let reply = app
        .post_json(&format!("/v1/messages/{first}/cancel"), &sender, &json!({}))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(keys_of(&reply.json()), ["id", "status"], "{}", reply.text);
    assert_eq!(reply.json()["id"], json!(first));
    assert_eq!(reply.json()["status"], "canceled");
    assert!(!reply.text.contains("551234") && !reply.text.contains(&NORMAL_NUMBER[3..]));

    // With messages:read too, the whole message as it is now.
    let (_, reader) = app
        .create_key(&["messages:send", "messages:read"], None)
        .await;
    let reply = app
        .post_json(
            &format!("/v1/messages/{second}/cancel"),
            &reader,
            &json!({}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.json()["status"], "canceled");
    assert_eq!(reply.json()["body"], "secret code 551234");
    assert_eq!(reply.json()["to"], NORMAL_NUMBER);
}

#[tokio::test]
async fn a_messages_status_key_reads_and_lists_messages_without_their_bodies() {
    let app = spawn_app();
    let id = app.send_to(NORMAL_NUMBER, "secret code 778812").await;
    let (_, status_key) = app.create_key(&["messages:status"], None).await;

    let one = app.get(&format!("/v1/messages/{id}"), &status_key).await;
    assert_eq!(one.status, StatusCode::OK, "{}", one.text);
    let shown = one.json();
    assert_eq!(shown["id"], json!(id));
    assert!(shown["status"].is_string(), "{shown}");
    assert!(shown.get("body").is_none(), "no body: {shown}");
    assert!(!one.text.contains("778812"), "{}", one.text);

    let list = app.get("/v1/messages", &status_key).await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.text);
    let data = list.json()["data"].as_array().cloned().unwrap();
    assert_eq!(data.len(), 1, "{}", list.text);
    assert!(data[0].get("body").is_none(), "{}", list.text);
    assert!(!list.text.contains("778812"), "{}", list.text);

    // The default key (messages:read) still sees the text.
    assert_eq!(app.message(&id).await["body"], "secret code 778812");

    // Inbound stays forbidden, and so do sends and cancels.
    for reply in [
        app.get("/v1/inbound", &status_key).await,
        app.get("/v1/inbound/inb_00000000000000000000000000", &status_key)
            .await,
        app.post_json("/v1/messages", &status_key, &scheduled("x"))
            .await,
        app.post_json(
            &format!("/v1/messages/{id}/cancel"),
            &status_key,
            &json!({}),
        )
        .await,
    ] {
        reply.assert_problem(403, "insufficient_scope");
    }
}

#[tokio::test]
async fn a_list_cursor_from_another_account_gives_an_empty_page_never_that_accounts_rows() {
    let app = spawn_app();
    let account_b = app.cli(&["account", "create", "--name", "tenant b"]);
    let key_b = app.cli(&["apikey", "create", "--account", &account_b, "--scopes", "*"]);
    // Interleaved sends, so that a position taken in B would fall among A's rows.
    let mut a_ids = Vec::new();
    let mut b_ids = Vec::new();
    for round in 0..3 {
        a_ids.push(id_of(&app.send(&scheduled(&format!("A {round}"))).await[0]));
        let b = app.post_json("/v1/messages", &key_b, &scheduled("B")).await;
        assert_eq!(b.status, StatusCode::ACCEPTED, "{}", b.text);
        b_ids.push(id_of(&b.json()["messages"][0]));
    }

    // B pages through its own messages with a cursor, as usual.
    let first = app.get("/v1/messages?limit=1", &key_b).await;
    let cursor = first.json()["next_cursor"].as_str().unwrap().to_owned();
    let second = app
        .get(&format!("/v1/messages?limit=1&cursor={cursor}"), &key_b)
        .await;
    assert_eq!(second.status, StatusCode::OK, "{}", second.text);
    assert_eq!(id_of(&second.json()["data"][0]), b_ids[1]);

    // A presents B's cursor (and B's newest id): nothing of either account comes back.
    for foreign in [cursor.as_str(), b_ids[2].as_str()] {
        let reply = app
            .get(&format!("/v1/messages?limit=50&cursor={foreign}"), &app.key)
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        assert_eq!(reply.json()["data"], json!([]), "{}", reply.text);
        assert!(reply.json().get("next_cursor").is_none(), "{}", reply.text);
        for id in a_ids.iter().chain(&b_ids) {
            assert!(!reply.text.contains(id.as_str()), "{}", reply.text);
        }
        let inbound = app
            .get(&format!("/v1/inbound?limit=50&cursor={foreign}"), &app.key)
            .await;
        assert_eq!(inbound.status, StatusCode::OK, "{}", inbound.text);
        assert_eq!(inbound.json()["data"], json!([]), "{}", inbound.text);
    }
}

#[tokio::test]
async fn names_of_keys_and_accounts_with_control_characters_are_refused() {
    let app = spawn_app();
    for name in [
        "line\nbreak",
        "tab\there",
        "bell\u{7}",
        "escape\u{1b}[31m",
        "trailing newline\n",
        "next line\u{85}",
        "nul\u{0}",
    ] {
        app.post_json(
            "/v1/api-keys",
            &app.key,
            &json!({"name": name, "scopes": ["messages:read"]}),
        )
        .await
        .assert_problem(422, "invalid_name");
        // Accounts are made by the operator's command, through the same rule (an argument
        // cannot hold a NUL).
        if name.contains('\0') {
            continue;
        }
        let (made, _, stderr) = app.cli_output(&["account", "create", "--name", name]);
        assert!(!made, "account {name:?} was made");
        assert!(stderr.contains("control characters"), "{stderr}");
        let (made, _, stderr) =
            app.cli_output(&["apikey", "create", "--name", name, "--scopes", "*"]);
        assert!(!made, "key {name:?} was made");
        assert!(stderr.contains("control characters"), "{stderr}");
    }
    // A name of ordinary characters, accents and all, is kept.
    let ok = app
        .post_json(
            "/v1/api-keys",
            &app.key,
            &json!({"name": "Zoë's café (prod)", "scopes": ["messages:read"]}),
        )
        .await;
    assert_eq!(ok.status, StatusCode::CREATED, "{}", ok.text);
    assert_eq!(ok.json()["name"], "Zoë's café (prod)");
}
