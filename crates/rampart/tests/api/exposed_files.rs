//! The server refuses to start on a data directory whose secrets others could read: the
//! directory, the database, the master key, the TLS key it made, or a file of another user, and
//! SMPP password files others may read. The refusal names the path, its mode or owner and the
//! command that fixes it; once fixed, the same directory starts.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use reqwest::StatusCode;

use crate::helpers::{TestApp, spawn_app, spawn_app_with, write_private};

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {mode:o} {}: {e}", path.display()));
}

/// Makes `path` exposed with `mode`, checks the refusal names it with `fix`, then restores
/// `restore` and checks the same directory starts.
async fn refused_until_fixed(app: &mut TestApp, path: &Path, mode: u32, fix: &str, restore: u32) {
    chmod(path, mode);
    let refusal = app.restart_refused();
    for needle in [
        "refusing to start",
        &path.display().to_string(),
        &format!("mode {mode:o}"),
        &format!("{fix} {}", path.display()),
    ] {
        assert!(refusal.contains(needle), "no `{needle}` in: {refusal}");
    }
    chmod(path, restore);
    app.restart();
    assert_eq!(app.get("/healthz", "").await.status, StatusCode::OK);
}

#[tokio::test]
async fn a_data_directory_others_may_enter_is_refused_until_it_is_chmod_700() {
    let mut app = spawn_app();
    let dir = app.data_dir.clone();
    refused_until_fixed(&mut app, &dir, 0o755, "chmod 700", 0o700).await;
}

#[tokio::test]
async fn a_database_others_may_read_is_refused_until_it_is_chmod_600() {
    let mut app = spawn_app();
    let db = app.data_dir.join("rampart.db");
    refused_until_fixed(&mut app, &db, 0o644, "chmod 600", 0o600).await;
}

#[tokio::test]
async fn a_master_key_its_group_may_read_is_refused_until_it_is_chmod_600() {
    let mut app = spawn_app();
    let key = app.data_dir.join("master.key");
    refused_until_fixed(&mut app, &key, 0o640, "chmod 600", 0o600).await;
}

#[tokio::test]
async fn the_tls_key_made_on_first_start_is_refused_once_others_may_read_it() {
    let mut app = spawn_app();
    let key = app.data_dir.join("tls").join("key.pem");
    refused_until_fixed(&mut app, &key, 0o644, "chmod 600", 0o600).await;
}

#[tokio::test]
async fn a_file_of_another_user_is_refused_until_it_is_chowned_back() {
    let me = std::fs::metadata("/proc/self").unwrap().uid();
    assert_eq!(
        me, 0,
        "this test gives a file to uid 65534 and needs to run as root; it does not skip"
    );
    let mut app = spawn_app();
    let key = app.data_dir.join("audit-signing.key");
    std::os::unix::fs::chown(&key, Some(65534), None).unwrap();
    let refusal = app.restart_refused();
    for needle in [
        "refusing to start",
        &key.display().to_string(),
        "belongs to uid 65534",
        &format!("chown root {}", key.display()),
    ] {
        assert!(refusal.contains(needle), "no `{needle}` in: {refusal}");
    }
    std::os::unix::fs::chown(&key, Some(me), None).unwrap();
    app.restart();
    assert_eq!(app.get("/healthz", "").await.status, StatusCode::OK);
}

#[tokio::test]
async fn an_smpp_password_file_others_may_read_is_refused_at_start_and_by_connector_add() {
    let dir = tempfile::tempdir().unwrap();
    let password = dir.path().join("smsc.pass");
    write_private(&password, "secret\n");
    let config = dir.path().join("rampart.toml");
    std::fs::write(
        &config,
        format!(
            "[[connectors]]\nname = \"smsc\"\nhost = \"127.0.0.1\"\nport = 1\n\
             system_id = \"rampart\"\npassword_file = \"{}\"\n",
            password.display()
        ),
    )
    .unwrap();
    let mut app = spawn_app_with(&[("RAMPART_CONFIG", config.to_str().unwrap())]);
    refused_until_fixed(&mut app, &password, 0o644, "chmod 600", 0o600).await;

    let added = dir.path().join("added.pass");
    std::fs::write(&added, "secret\n").unwrap();
    chmod(&added, 0o644);
    let (ok, _, stderr) = app.cli_output(&[
        "connector",
        "add",
        "smpp",
        "--name",
        "added",
        "--host",
        "127.0.0.1",
        "--port",
        "2775",
        "--system-id",
        "x",
        "--password-file",
        added.to_str().unwrap(),
    ]);
    assert!(!ok, "an exposed password file is refused");
    assert!(stderr.contains("mode 644"), "{stderr}");
    assert!(
        stderr.contains(&format!("chmod 600 {}", added.display())),
        "{stderr}"
    );
    assert!(!stderr.contains("secret"), "the password leaked: {stderr}");
}
