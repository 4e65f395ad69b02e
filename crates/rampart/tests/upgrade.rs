//! Data written by an earlier release stays readable. `fixtures/v0.1-data` is a data
//! directory made by Rampart 0.1 (commit ed052bf) with its master key: it is opened by
//! today's code (migrations apply, old ciphertexts open under their old contexts) and every
//! message, inbound message, key and connector in it reads back as recorded in
//! `expected.json`. New writes then sit beside the old rows.

// A test reports failure by panicking; helpers outside `#[test]` functions do the same.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

use rampart::app::messages::{MessageQuery, SendOutcome, SendRequest};
use rampart::app::{App, Caller};
use rampart::config::Config;
use rampart::delivery::smpp_config::smpp_config;
use secrecy::ExposeSecret;
use serde_json::Value;

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/v0.1-data")
}

/// A private copy of the fixture (git keeps no file modes; the master key must be 0600).
fn open_copy() -> (tempfile::TempDir, App, Value) {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    std::fs::create_dir(&data).expect("data dir");
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o700)).expect("mode");
    for file in ["rampart.db", "master.key"] {
        std::fs::copy(fixture().join(file), data.join(file)).expect("copy fixture");
        std::fs::set_permissions(data.join(file), std::fs::Permissions::from_mode(0o600))
            .expect("mode");
    }
    let expected: Value = serde_json::from_str(
        &std::fs::read_to_string(fixture().join("expected.json")).expect("expected.json"),
    )
    .expect("json");
    let config = Config {
        data_dir: data,
        ..Config::default()
    };
    let app = App::open(config).expect("the old data directory opens");
    (dir, app, expected)
}

fn text(value: &Value) -> Option<String> {
    value.as_str().map(str::to_owned)
}

fn accounts(expected: &Value) -> &Vec<Value> {
    expected["accounts"].as_array().expect("accounts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_message_written_by_the_first_release_reads_back() {
    let (_dir, app, expected) = open_copy();
    let mut checked = 0;
    for account in accounts(&expected) {
        let caller = Caller::operator(account["id"].as_str().expect("id"));
        for want in account["messages"].as_array().expect("messages") {
            let id = want["id"].as_str().expect("id");
            let got = app.get_message(&caller, id).expect("message opens");
            assert_eq!(Some(got.to.clone()), text(&want["to"]), "{id} to");
            assert_eq!(Some(got.from.clone()), text(&want["from"]), "{id} from");
            assert_eq!(got.body.clone(), text(&want["body"]), "{id} body");
            assert_eq!(
                Some(got.status.as_str().to_owned()),
                text(&want["status"]),
                "{id}"
            );
            assert_eq!(
                Some(got.encoding.as_str().to_owned()),
                text(&want["encoding"])
            );
            assert_eq!(
                Some(u64::from(got.segments)),
                want["segments"].as_u64(),
                "{id}"
            );
            assert_eq!(got.client_ref, text(&want["client_ref"]), "{id} client_ref");
            assert_eq!(got.error_code, text(&want["error_code"]), "{id} error_code");
            checked += 1;
        }
        // Listing opens every row too, and the recipient filter (blind index) still matches.
        let page = app
            .list_messages(&caller, MessageQuery::default())
            .await
            .expect("list");
        assert_eq!(
            page.data.len(),
            account["messages"].as_array().map_or(0, Vec::len)
        );
        if let Some(first) = account["messages"][0]["to"].as_str() {
            let query = MessageQuery {
                to: Some(first.to_owned()),
                ..MessageQuery::default()
            };
            let found = app.list_messages(&caller, query).await.expect("filter");
            assert!(found.data.iter().all(|m| m.to == first) && !found.data.is_empty());
        }
    }
    assert_eq!(checked, 14);
    app.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inbound_messages_keys_numbers_and_connector_passwords_of_the_first_release_read_back() {
    let (_dir, app, expected) = open_copy();
    for account in accounts(&expected) {
        let caller = Caller::operator(account["id"].as_str().expect("id"));
        for want in account["inbound"].as_array().expect("inbound") {
            let got = app
                .get_inbound(&caller, want["id"].as_str().expect("id"))
                .expect("inbound opens");
            assert_eq!(Some(got.from), text(&want["from"]));
            assert_eq!(Some(got.to), text(&want["to"]));
            assert_eq!(got.body, text(&want["body"]));
        }
        let keys = app.list_api_keys(&caller).expect("keys");
        for want in account["api_keys"].as_array().expect("keys") {
            let key = keys
                .iter()
                .find(|k| Some(k.id.clone()) == text(&want["id"]))
                .expect("key kept");
            assert_eq!(key.revoked_at.is_some(), want["state"] == "revoked");
            // 0.1 let an account's key hold server-wide scopes (its initial key had
            // metrics:read and connectors:read). Those now belong to operators' keys only, so
            // such a key reads back with its account scopes alone; the rest are kept as they
            // were.
            let recorded: Vec<&str> = want["scopes"]
                .as_array()
                .expect("scopes")
                .iter()
                .filter_map(Value::as_str)
                .collect();
            let account_only: Vec<&str> = recorded
                .iter()
                .copied()
                .filter(|s| !matches!(*s, "metrics:read" | "connectors:read" | "bans:manage"))
                .collect();
            let mut held = key.scopes.names();
            held.sort_unstable();
            let mut expected_scopes = account_only;
            expected_scopes.sort_unstable();
            assert_eq!(held, expected_scopes, "scopes of {}", key.id);
        }
        let numbers: Vec<Value> = app
            .list_account_numbers(&caller)
            .expect("numbers")
            .into_iter()
            .map(|n| Value::String(n.number))
            .collect();
        assert_eq!(Value::Array(numbers), account["numbers"]);
    }
    let sealer = app.delivery_deps().sealer;
    for want in expected["connectors"].as_array().expect("connectors") {
        let row = app
            .list_connectors()
            .expect("connectors")
            .into_iter()
            .find(|c| Some(c.name.clone()) == text(&want["name"]))
            .expect("connector kept");
        let config = smpp_config(&row, &sealer).expect("the sealed password opens");
        assert_eq!(
            Some(config.password.expose_secret().to_owned()),
            text(&want["password"])
        );
    }
    app.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_messages_are_written_beside_the_old_ones_and_both_read_back() {
    let (_dir, app, expected) = open_copy();
    let account = accounts(&expected)[0]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let caller = Caller::operator(&account);
    let sent = app
        .send_messages(
            &caller,
            SendRequest {
                to: vec!["+447400123456".into()],
                from: "Rampart".into(),
                body: "after the upgrade".into(),
                ..SendRequest::default()
            },
        )
        .await
        .expect("send");
    let SendOutcome::Accepted(messages) = sent else {
        panic!("a new send is accepted");
    };
    let new = app
        .get_message(&caller, &messages[0].id)
        .expect("new row opens");
    assert_eq!(new.body.as_deref(), Some("after the upgrade"));
    let old_id = accounts(&expected)[0]["messages"][0]["id"]
        .as_str()
        .expect("id");
    assert!(app.get_message(&caller, old_id).is_ok());
    // Another account cannot open either.
    let other = Caller::operator(accounts(&expected)[1]["id"].as_str().expect("id"));
    assert!(app.get_message(&other, &messages[0].id).is_err());
    app.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgraded_data_directory_verifies_clean_with_its_early_ciphertexts_counted() {
    let (_dir, app, _) = open_copy();
    app.bootstrap().await.expect("bootstrap");
    let config = (**app.config()).clone();
    app.close();
    let report = rampart::app::integrity::verify_data_dir(&config, None).expect("verify runs");
    let findings: Vec<String> = report.findings().map(ToString::to_string).collect();
    assert!(findings.is_empty(), "{findings:?}");
    assert_eq!(
        report.chain.last_checkpoint_seq, report.chain.last_seq,
        "closing signs the trail's end, if it has one"
    );
    assert!(report.sealed.fields > 0);
    assert!(
        report.sealed.legacy_fields > 0,
        "0.1's ciphertexts are bound to their row only, and verify says so"
    );
}
