//! Encrypted online backups and verified restores, on the real binary: a backup taken while
//! messages are being sent restores into a fresh directory that serves every message
//! acknowledged before it began; damaged, reordered and foreign backups are refused with
//! nothing touched; a non-empty directory is replaced only with --force; and the backup file
//! holds no number or body in any form, nor do the database, its WAL after a crash, or the
//! server log.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{TestApp, id_of, spawn_app, spawn_app_on};

/// Bytes of the header, and of one whole chunk as stored (length, 64 KiB, tag).
const HEADER: usize = 24;
const FRAME: usize = 4 + 64 * 1024 + 16;

fn number(i: usize) -> String {
    format!("+4479112{i:05}")
}

fn body(i: usize) -> String {
    format!(
        "backup canary {i}: your code is {:06}",
        100_000 + i * 7919 % 900_000
    )
}

fn path_arg(path: &Path) -> &str {
    path.to_str().expect("a UTF-8 test path")
}

/// `rampart backup --out <out>` on the app's data directory; returns its stdout.
fn take_backup(app: &TestApp, out: &Path) -> String {
    let (ok, stdout, stderr) = app.cli_output(&["backup", "--out", path_arg(out)]);
    assert!(ok, "backup failed: {stderr}");
    assert!(stdout.contains("Backup written to"), "{stdout}");
    stdout
}

/// `rampart restore` of `from` into `target` with the app's master key, plus `extra` flags.
fn restore(app: &TestApp, target: &Path, from: &Path, extra: &[&str]) -> (bool, String, String) {
    let key = app.data_dir.join("master.key");
    let mut args = vec![
        "restore",
        "--from",
        path_arg(from),
        "--master-key-file",
        path_arg(&key),
    ];
    args.extend_from_slice(extra);
    app.cli_output_on(target, &args)
}

/// Every file in `dir` and its bytes.
fn contents(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .expect("a readable directory")
        .map(|entry| {
            let entry = entry.expect("a directory entry");
            let name = entry.file_name().to_string_lossy().into_owned();
            let bytes = if entry.path().is_file() {
                std::fs::read(entry.path()).expect("a readable file")
            } else {
                Vec::new()
            };
            (name, bytes)
        })
        .collect()
}

/// The ways a string may sit in a file: UTF-8, UTF-16 (both orders), hex (both cases).
fn forms(text: &str) -> Vec<Vec<u8>> {
    let utf16le = text.encode_utf16().flat_map(u16::to_le_bytes).collect();
    let utf16be = text.encode_utf16().flat_map(u16::to_be_bytes).collect();
    let hex: String = text.bytes().map(|b| format!("{b:02x}")).collect();
    vec![
        text.as_bytes().to_vec(),
        utf16le,
        utf16be,
        hex.clone().into_bytes(),
        hex.to_uppercase().into_bytes(),
    ]
}

fn assert_no_plaintext(file: &Path, secrets: &[String]) {
    let haystack = std::fs::read(file).expect("a readable file");
    for secret in secrets {
        for (form, needle) in forms(secret).iter().enumerate() {
            assert!(
                memchr::memmem::find(&haystack, needle).is_none(),
                "{} holds `{secret}` (form {form})",
                file.display()
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_while_messages_are_sent_restores_every_acknowledged_message() {
    let app = spawn_app();
    let root = tempfile::tempdir().expect("a temporary directory");
    let mut before = Vec::new();
    for i in 0..40 {
        let id = app.send_to(&number(i), &body(i)).await;
        before.push((id, number(i), body(i)));
    }

    // The backup runs while a bounded loop keeps sending on loopback.
    let backups = root.path().join("backups");
    std::fs::create_dir(&backups).expect("a backup directory");
    let backup_done = AtomicBool::new(false);
    let sender = async {
        let mut during = 0usize;
        for i in 1000..3000 {
            if backup_done.load(Ordering::SeqCst) {
                break;
            }
            let reply = app
                .post_json(
                    "/v1/messages",
                    &app.key,
                    &json!({"to": number(i), "from": "Rampart", "body": body(i)}),
                )
                .await;
            assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.text);
            during += 1;
        }
        during
    };
    let command = {
        let mut command = app.command();
        command.args(["backup", "--out", path_arg(&backups)]);
        command
    };
    let backup = async {
        let started = Instant::now();
        let output = tokio::task::spawn_blocking(move || {
            let mut command = command;
            command.output().expect("the rampart binary runs")
        })
        .await
        .expect("the backup command's thread");
        backup_done.store(true, Ordering::SeqCst);
        (output, started.elapsed())
    };
    let (during, (output, took)) = tokio::join!(sender, backup);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "backup failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("Backup written to"), "{stdout}");
    assert!(
        during > 0,
        "the server took no message during the {took:?} backup"
    );
    let written: Vec<PathBuf> = std::fs::read_dir(&backups)
        .expect("the backup directory")
        .map(|e| e.expect("an entry").path())
        .collect();
    assert_eq!(
        written.len(),
        1,
        "one backup file, nothing partial: {written:?}"
    );
    let file = &written[0];
    let name = file.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        name.starts_with("rampart-backup-") && name.ends_with(".rbk"),
        "{name}"
    );
    let mode = std::fs::metadata(file).unwrap().permissions().mode();
    assert_eq!(mode & 0o077, 0, "the backup file is owner-only");

    let mut secrets: Vec<String> = before.iter().map(|(_, to, _)| to.clone()).collect();
    secrets.extend(before.iter().map(|(_, to, _)| to[1..].to_owned()));
    secrets.extend(before.iter().map(|(_, _, text)| text.clone()));
    assert_no_plaintext(file, &secrets);

    let restored = root.path().join("restored");
    let (ok, stdout, stderr) = restore(&app, &restored, file, &[]);
    assert!(ok, "restore failed: {stderr}");
    assert!(stdout.contains("Restored"), "{stdout}");
    let db = restored.join("rampart.db");
    for path in [&restored.join("master.key"), &db] {
        let mode = std::fs::metadata(path).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "{} is owner-only", path.display());
    }
    assert_no_plaintext(&db, &secrets);

    let served = spawn_app_on(&restored, &app.key);
    for (id, to, text) in &before {
        let message = served.message(id).await;
        assert_eq!(message["to"], json!(to), "{message}");
        assert_eq!(message["body"], json!(text), "{message}");
    }
    // The restored instance takes new work too.
    let accepted = served
        .send(&json!({"to": number(7), "from": "Rampart", "body": "after the restore"}))
        .await;
    assert_eq!(accepted.len(), 1);
    let _ = id_of(&accepted[0]);
}

/// A backup of `app` with a few messages in it, at `<root>/good.rbk`, and a directory
/// restored from it.
async fn good_backup(app: &TestApp, root: &Path) -> (PathBuf, PathBuf) {
    for i in 0..5 {
        app.send_to(&number(i), &body(i)).await;
    }
    let good = root.join("good.rbk");
    take_backup(app, &good);
    let target = root.join("target");
    let (ok, _, stderr) = restore(app, &target, &good, &[]);
    assert!(ok, "the good backup restores: {stderr}");
    (good, target)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_altered_reordered_and_foreign_backups_are_refused_and_nothing_is_replaced() {
    let app = spawn_app();
    let root = tempfile::tempdir().expect("a temporary directory");
    let (good, target) = good_backup(&app, root.path()).await;
    let bytes = std::fs::read(&good).unwrap();
    assert!(bytes.len() > HEADER + 2 * FRAME, "two whole chunks to swap");

    let truncated = bytes[..bytes.len() * 2 / 3].to_vec();
    let mut flipped = bytes.clone();
    flipped[HEADER + 4 + 1000] ^= 0x01;
    let mut swapped = bytes.clone();
    swapped[HEADER..HEADER + 2 * FRAME].rotate_left(FRAME);
    // Another instance: its own data directory, master key and backup.
    let other = root.path().join("other");
    let (ok, _, stderr) = app.cli_output_on(
        &other,
        &["apikey", "create", "--name", "other", "--scopes", "*"],
    );
    assert!(ok, "{stderr}");
    let foreign = root.path().join("foreign.rbk");
    let (ok, _, stderr) = app.cli_output_on(&other, &["backup", "--out", path_arg(&foreign)]);
    assert!(ok, "{stderr}");

    let cases = [
        ("truncated", Some(truncated), "truncated"),
        (
            "flipped",
            Some(flipped),
            "chunk 0 of the backup fails authentication",
        ),
        (
            "swapped",
            Some(swapped),
            "chunk 0 of the backup fails authentication",
        ),
        ("foreign", None, "made under another master key"),
    ];
    let kept = contents(&target);
    for (name, damaged, expected) in cases {
        let file = match damaged {
            Some(damaged) => {
                let file = root.path().join(format!("{name}.rbk"));
                std::fs::write(&file, damaged).unwrap();
                file
            }
            None => foreign.clone(),
        };
        let (ok, _, stderr) = restore(&app, &target, &file, &["--force"]);
        assert!(!ok, "{name}: the restore must fail");
        assert!(stderr.contains(expected), "{name}: {stderr}");
        assert!(stderr.contains("nothing in"), "{name}: {stderr}");
        assert_eq!(
            contents(&target),
            kept,
            "{name}: the directory is untouched"
        );
        let fresh = root.path().join(format!("fresh-{name}"));
        let (ok, _, stderr) = restore(&app, &fresh, &file, &[]);
        assert!(!ok && stderr.contains(expected), "{name}: {stderr}");
        assert!(!fresh.exists(), "{name}: no directory is left behind");
        let (ok, _, stderr) = restore(&app, &fresh, &file, &["--check"]);
        assert!(!ok && stderr.contains(expected), "{name} --check: {stderr}");
    }
    let (ok, stdout, stderr) = restore(&app, &target, &good, &["--check"]);
    assert!(ok && stdout.contains("is whole"), "{stdout} {stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_replaces_a_non_empty_directory_only_with_force() {
    let app = spawn_app();
    let root = tempfile::tempdir().expect("a temporary directory");
    let (good, target) = good_backup(&app, root.path()).await;
    let kept = contents(&target);
    let (ok, _, stderr) = restore(&app, &target, &good, &[]);
    assert!(!ok, "a second restore without --force must fail");
    assert!(stderr.contains("is not empty"), "{stderr}");
    assert!(stderr.contains("--force"), "{stderr}");
    assert_eq!(contents(&target), kept);

    let notes = root.path().join("notes");
    std::fs::create_dir(&notes).unwrap();
    std::fs::write(notes.join("todo.txt"), "keep me").unwrap();
    let (ok, _, stderr) = restore(&app, &notes, &good, &[]);
    assert!(!ok && stderr.contains("todo.txt"), "{stderr}");
    assert!(!notes.join("rampart.db").exists());

    let (ok, stdout, stderr) = restore(&app, &target, &good, &["--force"]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("set aside as"), "{stdout}");
    let names: Vec<String> = contents(&target).into_keys().collect();
    assert!(
        names
            .iter()
            .any(|n| n.starts_with("rampart.db.pre-restore-")),
        "{names:?}"
    );
    assert_eq!(
        std::fs::read(target.join("rampart.db")).unwrap(),
        kept["rampart.db"],
        "the same backup restored again gives the same database"
    );
}

/// Every file of a directory tree, recursively.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).expect("a readable directory") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            found.extend(files_under(&path));
        } else {
            found.push(path);
        }
    }
    found
}

#[tokio::test]
async fn the_database_its_wal_and_the_server_log_hold_no_number_or_body_in_any_form() {
    let mut app = spawn_app();
    let mut secrets = Vec::new();
    for i in 0..30 {
        let text = if i % 2 == 0 {
            body(i)
        } else {
            format!("Ваш код {i:04}: приём в четверг")
        };
        let id = app.send_to(&number(i), &text).await;
        if i == 0 {
            app.wait_for_status(&id, "delivered").await;
        }
        secrets.push(number(i));
        // Without the `+` too: a number stored bare would still be the number.
        secrets.push(number(i).trim_start_matches('+').to_owned());
        secrets.push(text);
    }
    // A crash leaves the newest writes in the WAL, beside the database.
    app.kill9();
    let files = files_under(&app.data_dir);
    let names: Vec<String> = files
        .iter()
        .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect();
    assert!(names.iter().any(|n| n == "rampart.db"), "{names:?}");
    assert!(
        names.iter().any(|n| n == "rampart.db-wal"),
        "a crash leaves the WAL: {names:?}"
    );
    for file in files.iter().chain([&app.stderr_path]) {
        assert_no_plaintext(file, &secrets);
    }
}
