//! The key hierarchy over a real data directory: rotation while messages keep coming, a
//! re-encryption that dies halfway and is resumed, retirement, rotation by use and by age on a
//! manual clock, the master key replaced under live API keys, and per-account keys.

use super::*;
use crate::app::backup::{NoProgress, Progress};
use crate::data::keyring::{Keyring, MasterKey};
use crate::store::keys::SealedColumn;

async fn send(bench: &Bench, to: &str, body: &str) -> String {
    accepted(&bench.app, &bench.operator(), &[to.to_owned()], body).await[0].clone()
}

/// How many values of every sealed column name data key `id`.
fn sealed_under(app: &App, id: u32) -> u64 {
    SealedColumn::ALL
        .iter()
        .map(|c| app.store.read(|tx| tx.count_sealed_under(*c, id)).unwrap())
        .sum()
}

fn account_key(bench: &Bench) -> u32 {
    bench.app.keyring().active_key_of(&bench.account).unwrap()
}

/// A progress report that dies once the first batch is committed, like a process killed
/// halfway.
struct DiesAfterFirstBatch;

impl Progress for DiesAfterFirstBatch {
    fn update(&self, _: &'static str, done: u64, total: u64) {
        if done > 0 && done < total {
            panic!("killed halfway");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotated_messages_stay_readable_and_a_resumed_reencryption_lets_the_old_key_retire() {
    let bench = Bench::new().await;
    let v1 = account_key(&bench);
    let mut ids = Vec::new();
    for i in 0..600 {
        ids.push(send(&bench, NUMBER, &format!("before rotation {i}")).await);
    }
    let v2 = bench
        .app
        .rotate_data_key(&Actor::Operator, Some(&bench.account))
        .await
        .unwrap();
    assert!(v2 > v1);
    assert_eq!(account_key(&bench), v2);
    for i in 0..5 {
        ids.push(send(&bench, NUMBER, &format!("after rotation {i}")).await);
    }
    assert_eq!(
        sealed_under(&bench.app, v1),
        1200,
        "number and body of each"
    );
    assert_eq!(sealed_under(&bench.app, v2), 10);
    assert!(matches!(
        bench.app.retire_key(&Actor::Operator, v1).await,
        Err(AppError::Conflict {
            code: "key_in_use",
            ..
        })
    ));

    let app = Arc::new(bench.app);
    let dying = {
        let app = app.clone();
        tokio::spawn(async move {
            app.reencrypt(&Actor::Operator, &DiesAfterFirstBatch, false)
                .await
        })
    };
    assert!(dying.await.is_err(), "the first run dies halfway");
    let left = sealed_under(&app, v1);
    assert!(left > 0 && left < 1200, "{left} values left under v1");
    let report = app
        .reencrypt(&Actor::Operator, &NoProgress, false)
        .await
        .unwrap();
    assert_eq!(report.reencrypted, left);
    assert_eq!(report.unreadable, 0);
    assert_eq!(sealed_under(&app, v1), 0);

    app.retire_key(&Actor::Operator, v1).await.unwrap();
    assert!(!app.keyring().holds(v1));
    let caller = Caller::operator(&bench.account);
    for (i, id) in ids.iter().enumerate() {
        let message = app.get_message(&caller, id).unwrap();
        assert_eq!(message.to, NUMBER);
        let body = message.body.unwrap();
        assert!(
            body.ends_with(&format!(" {}", i % 600)) || i >= 600,
            "{body}"
        );
    }
    // The recipient filter still finds them: the index key does not rotate with data keys.
    let found = app
        .list_messages(
            &caller,
            MessageQuery {
                to: Some(NUMBER.into()),
                limit: Some(100),
                ..MessageQuery::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(found.data.len(), 100);
    let audit = app.audit_trail(None, 20).unwrap();
    for action in ["key.rotate", "key.reencrypt", "key.retire"] {
        assert!(
            audit.iter().any(|e| e.action == action),
            "{action} audited: {audit:?}"
        );
    }
    // The active key cannot go.
    assert!(matches!(
        app.retire_key(&Actor::Operator, v2).await,
        Err(AppError::Conflict {
            code: "key_active",
            ..
        })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_key_is_rotated_after_its_quota_of_encryptions_and_every_key_when_old() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(START);
    let mut config = Config {
        data_dir: dir.path().join("data"),
        ..Config::default()
    };
    config.keys.rotate_after_encryptions = 10;
    config.keys.rotate_after_days = 90;
    let app = App::open_with_clock(config, Arc::new(clock.clone())).unwrap();
    let account = app.create_account(&Actor::Operator, "a").await.unwrap().id;
    let bench = Bench {
        app,
        clock,
        account,
        _dir: dir,
    };
    let first = account_key(&bench);
    for i in 0..4 {
        send(&bench, NUMBER, &format!("m{i}")).await;
    }
    assert!(
        bench.app.rotate_due_keys().await.unwrap().is_empty(),
        "8 of 10"
    );
    bench.clock.advance(86_400_000);
    send(&bench, NUMBER, "m4").await;
    let rotated = bench.app.rotate_due_keys().await.unwrap();
    let second = account_key(&bench);
    assert_eq!(rotated, [second]);
    assert_ne!(second, first);
    let listed = bench.app.list_keys().unwrap();
    let old = listed.iter().find(|k| k.id == first).unwrap();
    assert_eq!(old.uses, 10);
    assert!(!old.active);

    // Day 90: the instance's own key (made at start) is due by age; the account's is 89 days
    // old.
    bench.clock.advance(89 * 86_400_000);
    let instance = bench.app.keyring().active_key_of("").unwrap();
    let rotated = bench.app.rotate_due_keys().await.unwrap();
    assert_eq!(rotated.len(), 1, "{rotated:?}");
    assert_ne!(bench.app.keyring().active_key_of(""), Some(instance));
    assert_eq!(account_key(&bench), second);
    bench.clock.advance(86_400_000);
    let rotated = bench.app.rotate_due_keys().await.unwrap();
    assert_eq!(rotated, [account_key(&bench)]);
    assert_ne!(account_key(&bench), second);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_master_key_keeps_every_api_key_and_message_and_the_old_one_stops_opening() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let config = Config {
        data_dir: data_dir.clone(),
        ..Config::default()
    };
    let app = App::open(config.clone()).unwrap();
    let account = app.create_account(&Actor::Operator, "a").await.unwrap().id;
    let bench = Bench {
        app,
        clock: ManualClock::new(START),
        account,
        _dir: dir,
    };
    let token = bench
        .issue_key(&["messages:send", "messages:read"], None)
        .await;
    let id = send(&bench, NUMBER, BODY).await;
    let old_master = std::fs::read(data_dir.join("master.key")).unwrap();

    let new = MasterKey::generate();
    bench
        .app
        .rotate_master_key(&Actor::Operator, &new)
        .await
        .unwrap();
    assert!(bench.authenticate(&token).is_ok(), "the running server");
    bench.app.close();

    std::fs::remove_file(data_dir.join("master.key")).unwrap();
    new.write_new_file(&data_dir.join("master.key")).unwrap();
    let reopened = App::open(config.clone()).unwrap();
    let caller = reopened.authenticate(Some(token.reveal()), None).unwrap();
    let message = reopened.get_message(&caller, &id).unwrap();
    assert_eq!(message.body.as_deref(), Some(BODY));
    assert!(
        reopened
            .audit_trail(None, 10)
            .unwrap()
            .iter()
            .any(|e| e.action == "key.rotate_master")
    );
    reopened.close();

    std::fs::remove_file(data_dir.join("master.key")).unwrap();
    std::fs::write(data_dir.join("master.key"), old_master).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        data_dir.join("master.key"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    let refused = App::open(config).unwrap_err();
    assert!(
        refused
            .to_string()
            .contains("does not open this data directory"),
        "{refused}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_account_seals_under_its_own_key_and_tags_numbers_its_own_way() {
    let bench = Bench::new().await;
    let other = bench
        .app
        .create_account(&Actor::Operator, "b")
        .await
        .unwrap()
        .id;
    let mine = send(&bench, NUMBER, BODY).await;
    let theirs = accepted(
        &bench.app,
        &Caller::operator(&other),
        &[NUMBER.into()],
        BODY,
    )
    .await;
    let row = |account: &str, id: &str| {
        bench
            .app
            .store
            .read(|tx| tx.get_message(account, id))
            .unwrap()
            .unwrap()
    };
    let (a, b) = (row(&bench.account, &mine), row(&other, &theirs[0]));
    assert_ne!(
        Keyring::key_id_of(&a.to_sealed),
        Keyring::key_id_of(&b.to_sealed)
    );
    assert_eq!(
        Keyring::key_id_of(&b.body_sealed),
        bench.app.keyring().active_key_of(&other)
    );
    let sealer = &bench.app.sealer;
    assert_ne!(
        sealer.phone_index(&bench.account, NUMBER),
        sealer.phone_index(&other, NUMBER),
        "one number, unrelated tags"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_an_account_shreds_its_keys_at_once_and_then_purges_its_rows() {
    let bench = Bench::new().await;
    let token = bench
        .issue_key(&["messages:send", "messages:read"], None)
        .await;
    let other = bench
        .app
        .create_account(&Actor::Operator, "b")
        .await
        .unwrap()
        .id;
    let mine = send(&bench, NUMBER, BODY).await;
    let kept = accepted(
        &bench.app,
        &Caller::operator(&other),
        &[NUMBER.into()],
        "kept",
    )
    .await[0]
        .clone();
    let row = bench
        .app
        .store
        .read(|tx| tx.get_message(&bench.account, &mine))
        .unwrap()
        .unwrap();
    bench.clock.advance(60_000);

    let destroyed = bench
        .app
        .delete_account(&Actor::Operator, &bench.account)
        .await
        .unwrap();
    assert_eq!(destroyed, 1);
    // The row is still there, and nothing opens it any more.
    let sealer = &bench.app.sealer;
    assert!(
        sealer
            .open(
                crate::data::sealing::Field::MessageBody,
                &bench.account,
                &mine,
                &row.body_sealed
            )
            .is_err()
    );
    assert_unauthenticated(bench.authenticate(&token), "a key of the deleted account");
    assert!(matches!(
        bench
            .app
            .delete_account(&Actor::Operator, &bench.account)
            .await,
        Err(AppError::NotFound(_))
    ));
    let event = bench
        .app
        .audit_trail(None, 5)
        .unwrap()
        .into_iter()
        .find(|e| e.action == "account.delete")
        .unwrap();
    assert_eq!(event.target, bench.account);
    assert_eq!(event.at, START + 60_000);

    assert_eq!(bench.app.purge_deleted_accounts().await.unwrap(), 1);
    assert!(
        bench
            .app
            .store
            .read(|tx| tx.get_message(&bench.account, &mine))
            .unwrap()
            .is_none()
    );
    let theirs = bench
        .app
        .get_message(&Caller::operator(&other), &kept)
        .unwrap();
    assert_eq!(
        theirs.body.as_deref(),
        Some("kept"),
        "another account is untouched"
    );
    assert_eq!(bench.app.purge_deleted_accounts().await.unwrap(), 0);
}
