//! The embedded store: one SQLite file in WAL mode.
//!
//! Every write goes through one writer thread that groups whatever is waiting into a single
//! transaction and one fsync (group commit), so durable commits stay cheap under load: a caller
//! hears back only after its change is on disk. Reads use a small pool of read-only
//! connections on the caller's thread; point reads take microseconds, so they skip the hop.

pub mod accounts;
pub mod api_keys;
pub mod messages;

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::thread;

use rusqlite::{Connection, OpenFlags};
use rusqlite_migration::{M, Migrations};
use tokio::sync::{mpsc, oneshot};

const MIGRATIONS: &[M<'static>] = &[M::up(include_str!(
    "../../../../migrations/sqlite/0001_init.sql"
))];

/// Most jobs folded into one transaction.
const MAX_GROUP: usize = 2048;

/// What can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite reported an error.
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The schema could not be brought up to date.
    #[error("database migration failed: {0}")]
    Migration(#[from] rusqlite_migration::Error),
    /// The transaction holding this change failed to commit; the change did not happen.
    #[error("commit failed: {0}")]
    Commit(String),
    /// The writer has shut down.
    #[error("the store is closed")]
    Closed,
    /// A stored value could not be decoded (tampering or a bug).
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// An encrypted value could not be decrypted.
    #[error(transparent)]
    Keyring(#[from] crate::data::KeyringError),
}

/// A fresh, time-ordered, unguessable id: `prefix` + `_` + a lowercase ULID.
pub fn new_id(prefix: &str) -> String {
    format!(
        "{prefix}_{}",
        ulid::Ulid::generate().to_string().to_lowercase()
    )
}

type Completion = Box<dyn FnOnce(Result<(), &StoreError>) + Send>;
/// A job runs inside the group transaction, or is handed `None` when no transaction could be
/// opened (it then only reports the failure).
type Job = Box<dyn FnOnce(Option<&Connection>) -> Completion + Send>;

/// Handle to the database; cheap to share behind an `Arc`.
pub struct Store {
    jobs: Mutex<Option<mpsc::UnboundedSender<Job>>>,
    readers: Mutex<Vec<Connection>>,
    path: PathBuf,
    writer: Mutex<Option<thread::JoinHandle<()>>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

fn open_connection(path: &Path, read_only: bool) -> Result<Connection, StoreError> {
    let flags = if read_only {
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX
    } else {
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
    };
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    conn.set_prepared_statement_cache_capacity(64);
    if !read_only {
        // FULL: the WAL is fsynced at every commit, so an acknowledged message survives power loss.
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;",
        )?;
    }
    Ok(conn)
}

impl Store {
    /// Opens (creating if needed) the database at `path`, applies migrations and starts the
    /// writer thread.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let mut conn = open_connection(path, false)?;
        Migrations::from_slice(MIGRATIONS).to_latest(&mut conn)?;
        let (jobs, rx) = mpsc::unbounded_channel();
        let writer = thread::Builder::new()
            .name("rampart-store-writer".into())
            .spawn(move || run_writer(conn, rx))
            .map_err(|e| StoreError::Commit(format!("cannot start writer thread: {e}")))?;
        Ok(Self {
            jobs: Mutex::new(Some(jobs)),
            readers: Mutex::new(Vec::new()),
            path: path.to_path_buf(),
            writer: Mutex::new(Some(writer)),
        })
    }

    /// Runs `f` inside the next group transaction and returns its result once committed.
    /// If `f` fails, only its own changes are rolled back.
    pub async fn write<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        self.submit(f, tx)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// Like [`Store::write`], for callers that are not async (the CLI).
    pub fn write_blocking<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        self.submit(f, tx)?;
        rx.blocking_recv().map_err(|_| StoreError::Closed)?
    }

    fn submit<T, F>(
        &self,
        f: F,
        reply: oneshot::Sender<Result<T, StoreError>>,
    ) -> Result<(), StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let job: Job = Box::new(move |conn| {
            let outcome = match conn {
                Some(conn) => run_in_savepoint(conn, f),
                None => Err(StoreError::Closed),
            };
            Box::new(move |committed: Result<(), &StoreError>| {
                let result = match committed {
                    Ok(()) => outcome,
                    Err(e) => Err(StoreError::Commit(e.to_string())),
                };
                let _ = reply.send(result);
            })
        });
        let jobs = self.jobs.lock().map_err(|_| StoreError::Closed)?;
        jobs.as_ref()
            .ok_or(StoreError::Closed)?
            .send(job)
            .map_err(|_| StoreError::Closed)
    }

    /// Runs a read on the caller's thread with a pooled read-only connection. Keep it to point
    /// reads; use [`Store::read_blocking`] for scans.
    pub fn read<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let conn = match self.readers.lock().map_err(|_| StoreError::Closed)?.pop() {
            Some(conn) => conn,
            None => open_connection(&self.path, true)?,
        };
        let result = f(&conn);
        if let Ok(mut pool) = self.readers.lock() {
            if pool.len() < 16 {
                pool.push(conn);
            }
        }
        result
    }

    /// Runs a longer read on the blocking thread pool.
    pub async fn read_blocking<T, F>(self: &std::sync::Arc<Self>, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let store = self.clone();
        tokio::task::spawn_blocking(move || store.read(f))
            .await
            .map_err(|_| StoreError::Closed)?
    }

    /// Stops taking writes, commits what is already queued, and waits for the writer to end.
    pub fn close(&self) {
        if let Ok(mut jobs) = self.jobs.lock() {
            jobs.take();
        }
        let handle = self.writer.lock().ok().and_then(|mut w| w.take());
        if let Some(handle) = handle {
            let _ = handle.join();
        }
    }
}

fn run_in_savepoint<T>(
    conn: &Connection,
    f: impl FnOnce(&Connection) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    conn.execute_batch("SAVEPOINT job")?;
    match f(conn) {
        Ok(value) => {
            conn.execute_batch("RELEASE job")?;
            Ok(value)
        }
        Err(e) => {
            conn.execute_batch("ROLLBACK TO job; RELEASE job")?;
            Err(e)
        }
    }
}

fn run_writer(conn: Connection, mut rx: mpsc::UnboundedReceiver<Job>) {
    let mut completions: Vec<Completion> = Vec::with_capacity(MAX_GROUP);
    while let Some(first) = rx.blocking_recv() {
        if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
            let err = StoreError::from(e);
            first(None)(Err(&err));
            continue;
        }
        completions.push(first(Some(&conn)));
        while completions.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(job) => completions.push(job(Some(&conn))),
                Err(_) => break,
            }
        }
        let committed = conn.execute_batch("COMMIT").map_err(StoreError::from);
        if committed.is_err() {
            let _ = conn.execute_batch("ROLLBACK");
        }
        metrics::histogram!("rampart_store_group_size").record(completions.len() as f64);
        for done in completions.drain(..) {
            done(committed.as_ref().map(|_| ()));
        }
    }
    // Every sender is gone: fold the WAL back into the database for a tidy shutdown.
    let _ = conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)");
}
