//! Scheduled backups: each is audited as `backup.create`, only the newest `keep` stay, and
//! every one that stays opens under the instance's master key.

use super::*;
use crate::app::backup::NoProgress;
use crate::app::restore::{RestoreRequest, restore};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduled_backups_are_audited_and_only_the_newest_are_kept() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(START);
    let mut config = Config {
        data_dir: dir.path().join("data"),
        ..Config::default()
    };
    let backups = dir.path().join("backups");
    config.backup.dir = Some(backups.clone());
    config.backup.keep = 2;
    let app = App::open_with_clock(config, Arc::new(clock.clone())).unwrap();
    app.bootstrap().await.unwrap();
    let mut written = Vec::new();
    for _ in 0..3 {
        written.push(app.scheduled_backup().await.unwrap().path);
        clock.advance(60_000);
    }
    let mut left: Vec<_> = std::fs::read_dir(&backups)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    left.sort();
    assert_eq!(left, written[1..].to_vec(), "the oldest backup is removed");
    let audited: Vec<_> = app
        .audit_trail(None, 50)
        .unwrap()
        .into_iter()
        .filter(|e| e.action == "backup.create")
        .collect();
    assert_eq!(audited.len(), 3, "{audited:?}");
    assert!(
        audited
            .iter()
            .all(|e| e.actor_kind == "system" && e.outcome == "ok")
    );
    let named = written[2]
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    assert_eq!(audited[0].target, named, "the target is the file's name");
    for path in &left {
        let checked = restore(
            &RestoreRequest {
                from: path.clone(),
                data_dir: dir.path().join("unused"),
                configured_key: dir.path().join("data").join("master.key"),
                master_key_file: None,
                force: false,
                check_only: true,
            },
            &NoProgress,
        );
        assert!(checked.is_ok(), "{path:?}: {checked:?}");
    }
    assert!(
        !dir.path().join("unused").exists(),
        "a check creates nothing"
    );
    app.close();
}
