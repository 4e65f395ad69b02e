//! Tamper evidence: each test runs the real server (two accounts, a few sends, checkpoints
//! every 3 events), stops it cleanly, edits the database file directly as an intruder with
//! the file would, and runs `rampart verify`: it must name the row and exit non-zero. An
//! untouched directory verifies clean, also while the server runs; the server's own scheduled
//! check notices an edit and records it.

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use rusqlite::{Connection, params};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::helpers::{NORMAL_NUMBER, OTHER_NUMBER, TestApp, id_of, spawn_app_with};

/// A stopped server's data directory with messages in two accounts.
struct Stopped {
    app: TestApp,
    a1: String,
    a2: String,
    b: String,
}

async fn stopped_server_with_messages() -> Stopped {
    let mut app = spawn_app_with(&[("RAMPART_AUDIT__CHECKPOINT_EVERY", "3")]);
    let account_b = app.cli(&["account", "create", "--name", "tenant b"]);
    let key_b = app.cli(&["apikey", "create", "--account", &account_b, "--scopes", "*"]);
    let a1 = app.send_to(NORMAL_NUMBER, "first for A").await;
    let a2 = app.send_to(NORMAL_NUMBER, "second for A").await;
    let reply = app
        .post_json(
            "/v1/messages",
            &key_b,
            &json!({"to": OTHER_NUMBER, "from": "TenantB", "body": "for B"}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.text);
    let b = id_of(&reply.json()["messages"][0]);
    assert!(app.terminate(Duration::from_secs(30)).await.success());
    Stopped { app, a1, a2, b }
}

impl Stopped {
    fn db(&self) -> Connection {
        Connection::open(self.app.data_dir.join("rampart.db")).unwrap()
    }

    fn edit(&self, sql: &str) {
        self.db().execute_batch(sql).unwrap();
    }

    /// Runs `rampart verify`; returns whether it passed and what it printed.
    fn verify(&self) -> (bool, String) {
        let (passed, stdout, stderr) = self.app.cli_output(&["verify"]);
        (passed, format!("{stdout}\n{stderr}"))
    }

    /// `rampart verify` must fail and name each of `subjects`.
    fn assert_caught(&self, subjects: &[&str]) -> String {
        let (passed, output) = self.verify();
        assert!(!passed, "verify passed a tampered database:\n{output}");
        for subject in subjects {
            assert!(
                output.contains(&format!("FAIL {subject}:")),
                "verify did not name {subject}:\n{output}"
            );
        }
        output
    }

    fn last_seq(&self) -> i64 {
        self.db()
            .query_row("SELECT MAX(seq) FROM audit_events", [], |r| r.get(0))
            .unwrap()
    }
}

#[tokio::test]
async fn an_untouched_data_directory_verifies_clean() {
    let stopped = stopped_server_with_messages().await;
    let (passed, output) = stopped.verify();
    assert!(passed, "{output}");
    let events = stopped.last_seq();
    let checkpoints: i64 = stopped
        .db()
        .query_row("SELECT COUNT(*) FROM audit_checkpoints", [], |r| r.get(0))
        .unwrap();
    assert!(checkpoints >= 2, "every 3 events and at shutdown");
    assert!(
        output.contains(&format!(
            "verified {events} audit events, {checkpoints} checkpoints, 6 sealed fields"
        )),
        "{output}"
    );
    assert!(!output.contains("FAIL"), "{output}");
}

#[tokio::test]
async fn an_edited_audit_row_is_named_by_verify() {
    let stopped = stopped_server_with_messages().await;
    stopped.edit("UPDATE audit_events SET outcome = 'denied:forbidden' WHERE seq = 2");
    let output = stopped.assert_caught(&["audit seq 2"]);
    assert!(
        !output.contains("FAIL audit seq 3:"),
        "one edit, one row:\n{output}"
    );
}

#[tokio::test]
async fn a_deleted_audit_row_is_named_by_verify() {
    let stopped = stopped_server_with_messages().await;
    stopped.edit("DELETE FROM audit_events WHERE seq = 3");
    stopped.assert_caught(&["audit seq 3", "audit seq 4"]);
}

#[tokio::test]
async fn deleting_the_newest_rows_is_caught_by_the_shutdown_checkpoint() {
    let stopped = stopped_server_with_messages().await;
    let last = stopped.last_seq();
    stopped.edit(&format!("DELETE FROM audit_events WHERE seq = {last}"));
    stopped.assert_caught(&[&format!("checkpoint at seq {last}")]);
}

#[tokio::test]
async fn reordered_audit_rows_are_named_by_verify() {
    let stopped = stopped_server_with_messages().await;
    stopped.edit(
        "UPDATE audit_events SET seq = -1 WHERE seq = 2; \
         UPDATE audit_events SET seq = 2 WHERE seq = 3; \
         UPDATE audit_events SET seq = 3 WHERE seq = -1;",
    );
    stopped.assert_caught(&["audit seq 2", "audit seq 3"]);
}

#[tokio::test]
async fn an_inserted_audit_row_is_named_by_verify() {
    let stopped = stopped_server_with_messages().await;
    let seq = stopped.last_seq() + 1;
    // A plausible row, with the hash of the row before it copied over.
    stopped.edit(&format!(
        "INSERT INTO audit_events (seq, at, actor_kind, actor_id, account_id, action, target, \
         client_ip, outcome, hash) SELECT {seq}, at, actor_kind, actor_id, account_id, action, \
         'key_forged', client_ip, outcome, hash FROM audit_events WHERE seq = {}",
        seq - 1
    ));
    stopped.assert_caught(&[&format!("audit seq {seq}")]);
}

/// The chain's hash, spelled independently of the server's code from docs/audit.md.
fn chain_hash(prev: &[u8], row: &rusqlite::Row<'_>) -> Vec<u8> {
    let mut h = Sha256::new();
    h.update(b"rampart audit v1\0");
    h.update((prev.len() as u32).to_be_bytes());
    h.update(prev);
    h.update(row.get::<_, i64>(0).unwrap().to_be_bytes());
    h.update(row.get::<_, i64>(1).unwrap().to_be_bytes());
    for column in 2..=8 {
        match row.get::<_, Option<String>>(column).unwrap() {
            None => h.update([0]),
            Some(text) => {
                h.update([1]);
                h.update((text.len() as u32).to_be_bytes());
                h.update(text.as_bytes());
            }
        }
    }
    h.finalize().to_vec()
}

#[tokio::test]
async fn a_rewritten_chain_is_caught_by_its_signed_checkpoints() {
    let stopped = stopped_server_with_messages().await;
    // The intruder edits row 2 and recomputes every hash after it: the chain itself is whole
    // again, and only the signed checkpoints can tell.
    stopped.edit("UPDATE audit_events SET target = 'key_other' WHERE seq = 2");
    let db = stopped.db();
    let mut prev = vec![0u8; 32];
    let rows: Vec<(i64, Vec<u8>)> = db
        .prepare(
            "SELECT seq, at, actor_kind, actor_id, account_id, action, target, client_ip, \
             outcome FROM audit_events ORDER BY seq",
        )
        .unwrap()
        .query_map([], |r| {
            let hash = chain_hash(&prev, r);
            prev = hash.clone();
            Ok((r.get(0)?, hash))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let stored_before: Vec<u8> = db
        .query_row("SELECT hash FROM audit_events WHERE seq = 1", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(
        stored_before, rows[0].1,
        "the test spells the chain as the server does"
    );
    for (seq, hash) in &rows {
        db.execute(
            "UPDATE audit_events SET hash = ?1 WHERE seq = ?2",
            params![hash, seq],
        )
        .unwrap();
    }
    drop(db);
    let (passed, output) = stopped.verify();
    assert!(!passed, "{output}");
    assert!(
        output.contains("FAIL checkpoint at seq") && output.contains("no longer ends"),
        "{output}"
    );
    assert!(!output.contains("FAIL audit seq"), "{output}");
}

#[tokio::test]
async fn a_checkpoint_with_a_bad_signature_is_named_by_verify() {
    let stopped = stopped_server_with_messages().await;
    stopped.edit(
        "UPDATE audit_checkpoints SET at = at + 1 WHERE seq = (SELECT MIN(seq) FROM audit_checkpoints)",
    );
    let first: i64 = stopped
        .db()
        .query_row("SELECT MIN(seq) FROM audit_checkpoints", [], |r| r.get(0))
        .unwrap();
    let output = stopped.assert_caught(&[&format!("checkpoint at seq {first}")]);
    assert!(output.contains("bad signature"), "{output}");
}

#[tokio::test]
async fn a_sealed_body_swapped_between_two_messages_is_named_by_verify() {
    let stopped = stopped_server_with_messages().await;
    let (a1, a2) = (&stopped.a1, &stopped.a2);
    let db = stopped.db();
    let body = |id: &str| -> Vec<u8> {
        db.query_row(
            "SELECT body_sealed FROM messages WHERE id = ?1",
            [id],
            |r| r.get(0),
        )
        .unwrap()
    };
    let (body1, body2) = (body(a1), body(a2));
    for (id, sealed) in [(a1, body2), (a2, body1)] {
        db.execute(
            "UPDATE messages SET body_sealed = ?1 WHERE id = ?2",
            params![sealed, id],
        )
        .unwrap();
    }
    drop(db);
    stopped.assert_caught(&[&format!("message {a1}"), &format!("message {a2}")]);
}

#[tokio::test]
async fn a_sealed_number_copied_to_another_accounts_message_is_named_by_verify() {
    let stopped = stopped_server_with_messages().await;
    let (a1, b) = (&stopped.a1, &stopped.b);
    stopped.edit(&format!(
        "UPDATE messages SET to_sealed = (SELECT to_sealed FROM messages WHERE id = '{a1}') \
         WHERE id = '{b}'"
    ));
    let output = stopped.assert_caught(&[&format!("message {b}")]);
    assert!(output.contains("to does not open"), "{output}");
    assert!(!output.contains(&format!("FAIL message {a1}")), "{output}");
}

#[tokio::test]
async fn a_flipped_byte_in_a_sealed_body_is_named_by_verify() {
    let stopped = stopped_server_with_messages().await;
    let db = stopped.db();
    let mut body: Vec<u8> = db
        .query_row(
            "SELECT body_sealed FROM messages WHERE id = ?1",
            [&stopped.a2],
            |r| r.get(0),
        )
        .unwrap();
    let middle = body.len() / 2;
    body[middle] ^= 0x01;
    db.execute(
        "UPDATE messages SET body_sealed = ?1 WHERE id = ?2",
        params![body, stopped.a2],
    )
    .unwrap();
    drop(db);
    stopped.assert_caught(&[&format!("message {}", stopped.a2)]);
}

#[tokio::test]
async fn a_database_others_can_read_is_named_by_verify() {
    let stopped = stopped_server_with_messages().await;
    let db = stopped.app.data_dir.join("rampart.db");
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
    let output = stopped.assert_caught(&[&db.display().to_string()]);
    assert!(output.contains("mode 644"), "{output}");
}

#[tokio::test]
async fn the_server_checks_the_chain_on_schedule_and_records_a_failure() {
    let app = spawn_app_with(&[
        ("RAMPART_AUDIT__VERIFY_EVERY_SECONDS", "1"),
        ("RAMPART_AUDIT__FULL_VERIFY_EVERY", "1"),
    ]);
    app.send_to(NORMAL_NUMBER, "audited").await;
    let (passed, stdout, stderr) = app.cli_output(&["verify"]);
    assert!(passed, "verify beside a running server: {stdout}\n{stderr}");

    let db = Connection::open(app.data_dir.join("rampart.db")).unwrap();
    db.busy_timeout(Duration::from_secs(10)).unwrap();
    db.execute(
        "UPDATE audit_events SET target = 'acc_other' WHERE seq = 1",
        [],
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    let recorded = loop {
        let found: Option<String> = db
            .query_row(
                "SELECT target FROM audit_events WHERE action = 'security.integrity_failed' \
                 ORDER BY seq LIMIT 1",
                [],
                |r| r.get(0),
            )
            .ok();
        if let Some(target) = found {
            break target;
        }
        assert!(
            Instant::now() < deadline,
            "no security.integrity_failed event"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(recorded, "audit seq 1");
    assert!(
        app.server_log().contains("integrity check failed"),
        "{}",
        app.server_log()
    );
    let metrics = app.get("/metrics", &app.operator_key()).await;
    assert!(
        metrics.text.contains("rampart_integrity_failures_total"),
        "{}",
        metrics.text
    );
}

/// The target of the first `security.integrity_failed` event, waiting up to 15 s for one.
async fn first_integrity_failure(db: &Connection) -> String {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let found: Option<String> = db
            .query_row(
                "SELECT target FROM audit_events WHERE action = 'security.integrity_failed' \
                 ORDER BY seq LIMIT 1",
                [],
                |r| r.get(0),
            )
            .ok();
        if let Some(target) = found {
            return target;
        }
        assert!(
            Instant::now() < deadline,
            "no security.integrity_failed event"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn the_scheduled_check_between_full_ones_reads_only_new_rows_and_still_catches_them() {
    let app = spawn_app_with(&[
        ("RAMPART_AUDIT__VERIFY_EVERY_SECONDS", "1"),
        ("RAMPART_AUDIT__FULL_VERIFY_EVERY", "1000"),
    ]);
    let deadline = Instant::now() + Duration::from_secs(15);
    while !app.server_log().contains("audit trail verified") {
        assert!(
            Instant::now() < deadline,
            "no clean run: {}",
            app.server_log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    app.send_to(NORMAL_NUMBER, "after the first check").await;
    let db = Connection::open(app.data_dir.join("rampart.db")).unwrap();
    db.busy_timeout(Duration::from_secs(10)).unwrap();
    let newest: i64 = db
        .query_row(
            "SELECT seq FROM audit_events WHERE action = 'messages.send'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    db.execute(
        "UPDATE audit_events SET outcome = 'denied:forbidden' WHERE seq = ?1",
        [newest],
    )
    .unwrap();
    assert_eq!(
        first_integrity_failure(&db).await,
        format!("audit seq {newest}")
    );
}

#[tokio::test]
async fn checkpoints_fail_against_a_pinned_public_key_that_did_not_sign_them() {
    let stopped = stopped_server_with_messages().await;
    let own = std::fs::read_to_string(stopped.app.data_dir.join("audit-signing.pub")).unwrap();
    let (passed, stdout, stderr) = stopped
        .app
        .cli_output(&["verify", "--public-key", own.trim()]);
    assert!(passed, "{stdout}\n{stderr}");
    // Another instance's key stands for a key an intruder planted and re-signed with.
    let other = stopped_server_with_messages().await;
    let planted = std::fs::read_to_string(other.app.data_dir.join("audit-signing.pub")).unwrap();
    let (passed, stdout, _) = stopped
        .app
        .cli_output(&["verify", "--public-key", planted.trim()]);
    assert!(!passed, "{stdout}");
    assert!(stdout.contains("bad signature"), "{stdout}");
    let (passed, _, stderr) = stopped.app.cli_output(&["verify", "--public-key", "zz"]);
    assert!(!passed);
    assert!(stderr.contains("64 hex digits"), "{stderr}");
}
