//! Online snapshots: a consistent copy of the database taken while the writer keeps
//! committing, and the check a copy passes before a restore puts it in place.
//!
//! The copy uses SQLite's online backup API on a read-only connection that holds one read
//! transaction for the whole copy. In WAL mode that transaction pins a snapshot without
//! blocking the writer (it only holds checkpoints back, so the WAL grows by what is written
//! meanwhile), and the copy never restarts however busy the writer is. Pages are copied in
//! steps with pauses between them, so the copy shares the disk rather than taking it.

use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use rusqlite::backup::{Backup, StepResult};
use rusqlite::{Connection, OpenFlags};

use super::{SCHEMA_VERSION, Store, StoreError, open_connection};

/// Pages copied per step (4 MiB at SQLite's default 4 KiB page).
const PAGES_PER_STEP: i32 = 1024;
/// The least pause between two steps; a step that took longer is followed by as long a pause,
/// so the copy takes at most half of a core and of the disk's time from the server.
const MIN_PAUSE: Duration = Duration::from_millis(2);

/// What a snapshot or a checked copy holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotFacts {
    pub bytes: u64,
    pub messages: u64,
}

impl Store {
    /// Copies the database, as of one instant, into `dest` (a new file, created owner-only).
    /// `progress` hears (pages copied, pages in all) after each step.
    pub fn snapshot_into(
        &self,
        dest: &Path,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<SnapshotFacts, StoreError> {
        create_owner_only(dest)?;
        let source = open_connection(&self.path, true)?;
        // The read transaction starts with this query and pins the snapshot the copy sees;
        // the count is of that same snapshot.
        source.execute_batch("BEGIN")?;
        let messages: i64 =
            source.query_row("SELECT count(*) FROM messages", [], |row| row.get(0))?;
        let mut copy = Connection::open(dest)?;
        {
            let backup = Backup::new(&source, &mut copy)?;
            loop {
                let started = Instant::now();
                let step = backup.step(PAGES_PER_STEP)?;
                let at = backup.progress();
                let total = u64::try_from(at.pagecount).unwrap_or(0);
                let left = u64::try_from(at.remaining).unwrap_or(0);
                progress(total.saturating_sub(left), total);
                match step {
                    StepResult::Done => break,
                    // Busy or locked only on the copy's side (no one else opens it): retry.
                    _ => thread::sleep(MIN_PAUSE.max(started.elapsed())),
                }
            }
        }
        source.execute_batch("COMMIT")?;
        // A plain rollback-journal file: it opens read-only anywhere, with no -wal or -shm
        // beside it; the store turns WAL on again when it opens a restored copy.
        copy.query_row("PRAGMA journal_mode = DELETE", [], |_| Ok(()))?;
        drop(copy);
        let bytes = std::fs::metadata(dest)
            .map_err(|e| StoreError::Open(format!("cannot read {}: {e}", dest.display())))?
            .len();
        Ok(SnapshotFacts {
            bytes,
            messages: u64::try_from(messages).unwrap_or(0),
        })
    }
}

fn create_owner_only(path: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map(drop)
        .map_err(|e| StoreError::Open(format!("cannot create {}: {e}", path.display())))
}

/// Checks that `path` is a whole Rampart database this release can open: SQLite's own
/// consistency check passes and its schema is not newer than ours. Opens it read-only.
pub fn check_database(path: &Path) -> Result<SnapshotFacts, StoreError> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    let verdict: String = conn.query_row("PRAGMA quick_check", [], |row| row.get(0))?;
    if verdict != "ok" {
        return Err(StoreError::Corrupt(format!(
            "the database fails its consistency check: {verdict}"
        )));
    }
    let schema: i64 = conn.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    if usize::try_from(schema).map_or(true, |v| v > SCHEMA_VERSION) {
        return Err(StoreError::Corrupt(format!(
            "the database has schema version {schema}, newer than this release's {}",
            SCHEMA_VERSION
        )));
    }
    let messages: i64 = conn.query_row("SELECT count(*) FROM messages", [], |row| row.get(0))?;
    let bytes = std::fs::metadata(path)
        .map_err(|e| StoreError::Open(format!("cannot read {}: {e}", path.display())))?
        .len();
    Ok(SnapshotFacts {
        bytes,
        messages: u64::try_from(messages).unwrap_or(0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::accounts::AccountRecord;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_snapshot_taken_during_writes_is_consistent_and_checks_clean() {
        let dir = tempfile::tempdir().unwrap();
        let store = std::sync::Arc::new(Store::open(&dir.path().join("live.db")).unwrap());
        let writer = {
            let store = store.clone();
            tokio::spawn(async move {
                for i in 0..300i64 {
                    store
                        .write(move |tx| {
                            tx.insert_account(&AccountRecord {
                                id: format!("acc_{i}"),
                                name: "n".into(),
                                created_at: i,
                            })
                        })
                        .await
                        .unwrap();
                }
            })
        };
        let dest = dir.path().join("copy.db");
        let snapshot = {
            let store = store.clone();
            let dest = dest.clone();
            tokio::task::spawn_blocking(move || store.snapshot_into(&dest, &mut |_, _| {}))
                .await
                .unwrap()
                .unwrap()
        };
        writer.await.unwrap();
        let facts = check_database(&dest).unwrap();
        assert_eq!(facts, snapshot);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&dest).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "the copy is owner-only");
        // A second snapshot into the same file is refused rather than overwriting it.
        assert!(store.snapshot_into(&dest, &mut |_, _| {}).is_err());
        store.close();
    }

    #[test]
    fn a_damaged_copy_fails_the_check() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("junk.db");
        std::fs::write(&path, b"not a database at all, just bytes").unwrap();
        assert!(check_database(&path).is_err());
    }
}
