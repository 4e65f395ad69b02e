//! The key hierarchy from the operator's side, on the real binary: data keys rotated,
//! re-encrypted and retired with `rampart keys …` while the server runs; a re-encryption
//! killed halfway and resumed; the master key from the environment or a command, and replaced
//! with `rampart keys rotate-master` under live API keys.

use std::os::unix::fs::PermissionsExt;
use std::process::Stdio;
use std::time::{Duration, Instant};

use base64::Engine;
use rusqlite::{Connection, OpenFlags};
use serde_json::json;

use crate::helpers::{NORMAL_NUMBER, TestApp, id_of, spawn_app, spawn_app_with};

/// The active data key of `owner` (an account id, or `instance`) in `rampart keys list`.
fn active_key(app: &TestApp, owner: &str) -> u32 {
    app.cli(&["keys", "list"])
        .lines()
        .skip(1)
        .map(|line| line.split('\t').collect::<Vec<_>>())
        .find(|cols| cols[1] == owner && cols[2] == "data" && cols[3] == "active")
        .unwrap_or_else(|| panic!("no active data key of {owner}"))[0]
        .parse()
        .unwrap()
}

/// Sealed values in the database that name data key `id` (read beside the writers).
fn sealed_under(app: &TestApp, id: u32) -> i64 {
    let db = Connection::open_with_flags(
        app.data_dir.join("rampart.db"),
        OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    db.busy_timeout(Duration::from_secs(5)).unwrap();
    db.query_row(
        "SELECT (SELECT count(*) FROM messages WHERE substr(to_sealed, 2, 4) = ?1) + \
                (SELECT count(*) FROM messages WHERE substr(body_sealed, 2, 4) = ?1)",
        [id.to_be_bytes().as_slice()],
        |r| r.get(0),
    )
    .unwrap()
}

async fn send_batch(app: &TestApp, n: usize, tag: &str) -> Vec<String> {
    let numbers: Vec<String> = (0..n).map(|i| format!("+4479111{i:05}")).collect();
    app.send(&json!({"to": numbers, "from": "Rampart", "body": format!("batch {tag}")}))
        .await
        .iter()
        .map(id_of)
        .collect()
}

async fn assert_all_readable(app: &TestApp, ids: &[String]) {
    for id in ids {
        let message = app.message(id).await;
        assert!(
            message["body"]
                .as_str()
                .is_some_and(|b| b.starts_with("batch")),
            "{message}"
        );
    }
}

/// Waits until the running server has taken the keys as stored (it looks once a second).
async fn let_the_server_reload() {
    tokio::time::sleep(Duration::from_millis(2_500)).await;
}

#[tokio::test]
async fn keys_rotated_reencrypted_and_retired_beside_the_running_server_keep_every_message() {
    let app = spawn_app_with(&[("RAMPART_KEYS__REENCRYPT_IN_BACKGROUND", "false")]);
    let account = app.account_id();
    let v1 = active_key(&app, &account);
    let mut ids = send_batch(&app, 3, "one").await;
    let rotated = app.cli(&["keys", "rotate", "--account", &account]);
    let v2 = active_key(&app, &account);
    assert!(v2 > v1 && rotated.contains(&v2.to_string()), "{rotated}");
    let_the_server_reload().await;
    ids.extend(send_batch(&app, 3, "two").await);
    assert_eq!(sealed_under(&app, v1), 6);
    assert_eq!(
        sealed_under(&app, v2),
        6,
        "the server seals under the new key"
    );
    assert_all_readable(&app, &ids).await;

    let (retired, _, stderr) = app.cli_output(&["keys", "retire", "--key", &v1.to_string()]);
    assert!(!retired && stderr.contains("reencrypt"), "{stderr}");
    let moved = app.cli(&["keys", "reencrypt"]);
    assert!(moved.starts_with("re-encrypted 6 of"), "{moved}");
    assert_eq!(sealed_under(&app, v1), 0);
    app.cli(&["keys", "retire", "--key", &v1.to_string()]);
    let listed = app.cli(&["keys", "list"]);
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with(&format!("{v1}\t")) && l.contains("\tretired\t")),
        "{listed}"
    );
    let_the_server_reload().await;
    assert_all_readable(&app, &ids).await;
    let (clean, stdout, stderr) = app.cli_output(&["verify"]);
    assert!(clean, "{stdout}\n{stderr}");
    for line in ["key.rotate", "key.reencrypt", "key.retire"] {
        let trail = app
            .get("/v1/audit-events?limit=100", &app.operator_key())
            .await;
        assert!(trail.text.contains(line), "{line} audited: {}", trail.text);
    }
}

#[tokio::test]
async fn a_reencryption_killed_halfway_resumes_and_then_no_value_needs_the_old_key() {
    let app = spawn_app_with(&[
        ("RAMPART_KEYS__REENCRYPT_IN_BACKGROUND", "false"),
        ("RAMPART_KEYS__REENCRYPT_BATCH", "10"),
    ]);
    let account = app.account_id();
    let v1 = active_key(&app, &account);
    let mut ids = Vec::new();
    for round in 0..6 {
        ids.extend(send_batch(&app, 100, &round.to_string()).await);
    }
    let total = sealed_under(&app, v1);
    assert_eq!(total, 1_200);
    app.cli(&["keys", "rotate", "--account", &account]);
    let mut child = app
        .command()
        .args(["keys", "reencrypt"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let left = sealed_under(&app, v1);
        if left < total {
            break;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the re-encryption ended before it was seen working"
        );
        assert!(Instant::now() < deadline, "nothing moved within a minute");
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let left = sealed_under(&app, v1);
    assert!(
        left > 0 && left < total,
        "{left} of {total} left when killed"
    );

    let resumed = app.cli(&["keys", "reencrypt"]);
    assert!(
        resumed.starts_with(&format!("re-encrypted {left} of")),
        "{resumed} ({left} were left)"
    );
    assert_eq!(sealed_under(&app, v1), 0);
    app.cli(&["keys", "retire", "--key", &v1.to_string()]);
    let_the_server_reload().await;
    assert_all_readable(&app, &ids).await;
}

fn random_master_key() -> String {
    let bytes: [u8; 32] = std::array::from_fn(|i| (i as u8).wrapping_mul(37).wrapping_add(11));
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[tokio::test]
async fn the_master_key_comes_from_the_environment_and_a_wrong_one_is_refused() {
    let key = random_master_key();
    let mut app = spawn_app_with(&[("RAMPART_MASTER_KEY", &key)]);
    assert!(
        !app.data_dir.join("master.key").exists(),
        "no key file beside a key from the environment"
    );
    let ids = send_batch(&app, 2, "env").await;
    app.restart();
    assert_all_readable(&app, &ids).await;

    let other = base64::engine::general_purpose::STANDARD.encode([9u8; 32]);
    let refused = app
        .command()
        .env("RAMPART_MASTER_KEY", &other)
        .args(["keys", "list"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("does not open this data directory"),
        "{stderr}"
    );
    assert!(
        !stderr.contains(&other) && !stderr.contains(&key),
        "{stderr}"
    );
}

#[tokio::test]
async fn the_master_key_comes_from_a_command() {
    let holder = tempfile::tempdir().unwrap();
    let file = holder.path().join("vault-secret");
    std::fs::write(&file, random_master_key()).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let command = format!("cat {}", file.display());
    let mut app = spawn_app_with(&[("RAMPART_KEYS__MASTER_KEY_COMMAND", &command)]);
    assert!(!app.data_dir.join("master.key").exists());
    let ids = send_batch(&app, 2, "command").await;
    app.restart();
    assert_all_readable(&app, &ids).await;
}

#[tokio::test]
async fn rotate_master_replaces_the_key_file_and_every_api_key_keeps_working() {
    let mut app = spawn_app();
    let ids = send_batch(&app, 2, "before").await;
    let before = std::fs::read_to_string(app.data_dir.join("master.key")).unwrap();
    let said = app.cli(&["keys", "rotate-master"]);
    assert!(said.contains("master key replaced"), "{said}");
    let after = std::fs::read_to_string(app.data_dir.join("master.key")).unwrap();
    assert_ne!(before, after);
    let mode = std::fs::metadata(app.data_dir.join("master.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    // The running server, then a fresh start under the new key: the same API key works.
    assert_all_readable(&app, &ids).await;
    app.restart();
    assert_all_readable(&app, &ids).await;
    send_batch(&app, 1, "after").await;
    let (clean, stdout, stderr) = app.cli_output(&["verify"]);
    assert!(clean, "{stdout}\n{stderr}");

    // The old key no longer opens the directory.
    let holder = tempfile::tempdir().unwrap();
    let old = holder.path().join("old.key");
    std::fs::write(&old, before).unwrap();
    std::fs::set_permissions(&old, std::fs::Permissions::from_mode(0o600)).unwrap();
    let refused = app
        .command()
        .env("RAMPART_MASTER_KEY_FILE", &old)
        .args(["keys", "list"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("does not open this data directory"));
}

#[tokio::test]
async fn an_account_made_while_the_server_runs_gets_its_own_key_and_its_lookups_work() {
    let app = spawn_app();
    let other = app.cli(&["account", "create", "--name", "tenant b"]);
    let key_b = app.cli(&["apikey", "create", "--account", &other, "--scopes", "*"]);
    let theirs = active_key(&app, &other);
    assert_ne!(theirs, active_key(&app, &app.account_id()));
    let reply = app
        .post_json(
            "/v1/messages",
            &key_b,
            &json!({"to": NORMAL_NUMBER, "from": "TenantB", "body": "batch b"}),
        )
        .await;
    assert_eq!(reply.status.as_u16(), 202, "{}", reply.text);
    let by_recipient = format!("/v1/messages?to={}", NORMAL_NUMBER.replace('+', "%2B"));
    let found = app.get(&by_recipient, &key_b).await;
    assert_eq!(
        found.json()["data"].as_array().unwrap().len(),
        1,
        "{}",
        found.text
    );
    let_the_server_reload().await;
    let found = app.get(&by_recipient, &key_b).await;
    assert_eq!(
        found.json()["data"].as_array().unwrap().len(),
        1,
        "the same tag once the server has the account's keys: {}",
        found.text
    );
}

#[tokio::test]
async fn an_account_deleted_from_the_cli_is_shredded_and_purged_while_the_server_runs() {
    let app = spawn_app();
    let other = app.cli(&["account", "create", "--name", "tenant b"]);
    let key_b = app.cli(&["apikey", "create", "--account", &other, "--scopes", "*"]);
    let reply = app
        .post_json(
            "/v1/messages",
            &key_b,
            &json!({"to": NORMAL_NUMBER, "from": "TenantB", "body": "batch b"}),
        )
        .await;
    assert_eq!(reply.status.as_u16(), 202, "{}", reply.text);
    let kept = send_batch(&app, 2, "a").await;

    let (refused, _, stderr) = app.cli_output(&[
        "account",
        "delete",
        "--account",
        &other,
        "--confirm",
        "acc_x",
    ]);
    assert!(
        !refused && stderr.contains("nothing was deleted"),
        "{stderr}"
    );
    let said = app.cli(&[
        "account",
        "delete",
        "--account",
        &other,
        "--confirm",
        &other,
    ]);
    assert!(said.contains("1 data keys destroyed"), "{said}");
    let listed = app.cli(&["keys", "list"]);
    assert!(
        listed
            .lines()
            .filter(|l| l.contains(&other))
            .all(|l| l.contains("\tretired\t")),
        "{listed}"
    );
    let gone = app.get("/v1/messages", &key_b).await;
    assert_eq!(gone.status.as_u16(), 401, "{}", gone.text);
    assert!(!app.cli(&["account", "list"]).contains(&other));
    let db = Connection::open_with_flags(
        app.data_dir.join("rampart.db"),
        OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    let left: i64 = db
        .query_row(
            "SELECT count(*) FROM messages WHERE account_id = ?1",
            [&other],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(left, 0, "the account's rows are purged");
    assert_all_readable(&app, &kept).await;
    let (clean, stdout, stderr) = app.cli_output(&["verify"]);
    assert!(clean, "{stdout}\n{stderr}");
}
