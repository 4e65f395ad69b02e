//! The embedded store: one SQLite file in WAL mode.
//!
//! Every write goes through one writer thread that groups whatever is waiting into a single
//! transaction and one fsync (group commit), so durable commits stay cheap under load: a caller
//! hears back only after its change is on disk. Reads use a small pool of read-only
//! connections on the caller's thread; point reads take microseconds, so they skip the hop.
//!
//! Nothing above this module sees SQLite: callers get a [`Tx`], a transaction (or read
//! snapshot) that offers one repository trait per aggregate (accounts, API keys, messages,
//! inbound, routing, audit). The traits speak in plain records, so another database can sit
//! behind the same seam.

pub mod accounts;
pub mod api_keys;
pub mod audit;
pub mod bans;
pub mod billing;
pub mod inbound;
pub mod keys;
pub mod messages;
pub mod opt_outs;
pub mod people;
pub mod policies;
pub mod pumping;
pub mod queue;
pub mod retention;
pub mod routing;
pub mod sessions;
pub mod snapshot;

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use rusqlite::{Connection, OpenFlags};
use rusqlite_migration::{M, Migrations};
use tokio::sync::{mpsc, oneshot};

/// The schema's migrations, in order. 0011 chains the audit rows written before the chain
/// existed, in Rust, inside the migration's transaction. (0012 is kept for the key
/// hierarchy's migration.)
fn migrations() -> Migrations<'static> {
    let mut all: Vec<M<'static>> = BASE_MIGRATIONS.to_vec();
    all.push(M::up_with_hook(
        include_str!("../../../../migrations/sqlite/0011_audit_chain.sql"),
        |tx: &rusqlite::Transaction<'_>| {
            audit::chain_existing_rows(tx)
                .map(|_| ())
                .map_err(|e| rusqlite_migration::HookError::Hook(e.to_string()))
        },
    ));
    all.extend(LATER_MIGRATIONS.iter().cloned());
    Migrations::new(all)
}

/// The schema version this release brings a database to (SQLite's `user_version`).
const SCHEMA_VERSION: usize = BASE_MIGRATIONS.len() + 1 + LATER_MIGRATIONS.len();

/// The migrations after 0011's.
const LATER_MIGRATIONS: &[M<'static>] = &[
    M::up(include_str!(
        "../../../../migrations/sqlite/0012_key_hierarchy.sql"
    )),
    M::up(include_str!(
        "../../../../migrations/sqlite/0013_retention.sql"
    )),
    M::up(include_str!(
        "../../../../migrations/sqlite/0014_policy.sql"
    )),
    M::up(include_str!("../../../../migrations/sqlite/0015_spend.sql")),
    M::up(include_str!(
        "../../../../migrations/sqlite/0016_optout.sql"
    )),
    M::up(include_str!(
        "../../../../migrations/sqlite/0017_account_modes.sql"
    )),
];

const BASE_MIGRATIONS: &[M<'static>] = &[
    M::up(include_str!("../../../../migrations/sqlite/0001_init.sql")),
    M::up(include_str!(
        "../../../../migrations/sqlite/0002_routing.sql"
    )),
    M::up(include_str!("../../../../migrations/sqlite/0003_audit.sql")),
    M::up(include_str!(
        "../../../../migrations/sqlite/0004_early_receipts.sql"
    )),
    M::up(include_str!(
        "../../../../migrations/sqlite/0005_access.sql"
    )),
    M::up(include_str!("../../../../migrations/sqlite/0006_bans.sql")),
    M::up(include_str!(
        "../../../../migrations/sqlite/0007_people.sql"
    )),
    M::up(include_str!(
        "../../../../migrations/sqlite/0008_member_allowlists.sql"
    )),
    M::up(include_str!(
        "../../../../migrations/sqlite/0009_key_client_certs.sql"
    )),
    M::up(include_str!(
        "../../../../migrations/sqlite/0010_account_rate_limits.sql"
    )),
];

/// Most jobs folded into one transaction.
const MAX_GROUP: usize = 2048;

/// Threads that fsync the WAL (see `run_syncer`).
const SYNCERS: usize = 2;

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
    /// The database file or a thread serving it could not be set up.
    #[error("cannot open the store: {0}")]
    Open(String),
}

/// Every repository, as one transaction (or read snapshot) offers them.
pub trait Repositories:
    accounts::Accounts
    + api_keys::ApiKeys
    + audit::Audit
    + bans::Bans
    + billing::Billing
    + inbound::Inbound
    + keys::Keys
    + messages::Messages
    + opt_outs::OptOuts
    + people::People
    + policies::Policies
    + pumping::Pumping
    + queue::Queue
    + retention::Retention
    + routing::Routing
    + sessions::Sessions
{
}

impl<T> Repositories for T where
    T: accounts::Accounts
        + api_keys::ApiKeys
        + audit::Audit
        + bans::Bans
        + billing::Billing
        + inbound::Inbound
        + keys::Keys
        + messages::Messages
        + opt_outs::OptOuts
        + people::People
        + policies::Policies
        + pumping::Pumping
        + queue::Queue
        + retention::Retention
        + routing::Routing
        + sessions::Sessions
{
}

/// A transaction or read snapshot, seen through the repository traits.
pub type Tx<'a> = dyn Repositories + 'a;

/// SQLite's side of a [`Tx`]: the connection the repository traits are implemented on.
pub(crate) struct Db<'c>(&'c Connection);

impl Db<'_> {
    fn conn(&self) -> &Connection {
        self.0
    }
}

/// A fresh, time-ordered, unguessable id: `prefix` + `_` + a lowercase ULID. Made for every
/// message, so it is written into one allocation.
pub fn new_id(prefix: &str) -> String {
    let mut buffer = [0u8; ulid::ULID_LEN];
    let encoded = ulid::Ulid::generate().array_to_str(&mut buffer);
    encoded.make_ascii_lowercase();
    let mut id = String::with_capacity(prefix.len() + 1 + ulid::ULID_LEN);
    id.push_str(prefix);
    id.push('_');
    id.push_str(encoded);
    id
}

type Completion = Box<dyn FnOnce(Result<(), &StoreError>) + Send>;
/// A job runs inside the group transaction, or is handed `None` when no transaction could be
/// opened (it then only reports the failure).
type Job = Box<dyn FnOnce(Option<&Connection>) -> Completion + Send>;

/// Which queue a write waits in. API writes (a client is waiting) go first; background writes
/// (delivery bookkeeping) join a group one at a time while API writes are waiting, so a
/// delivery backlog can slow delivery but never the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lane {
    Api,
    Background,
}

/// Handle to the database; cheap to share behind an `Arc`.
pub struct Store {
    jobs: Mutex<Option<mpsc::UnboundedSender<(Lane, Job)>>>,
    readers: Mutex<Vec<Connection>>,
    path: PathBuf,
    writer: Mutex<Option<thread::JoinHandle<()>>>,
    /// Dropping it stops the checkpoint thread.
    checkpointer: Mutex<Option<std::sync::mpsc::Sender<()>>>,
    /// How the writer signs audit checkpoints, once the key is loaded.
    audit_checkpoints: Arc<OnceLock<CheckpointPolicy>>,
}

/// When and with what the writer signs audit checkpoints.
struct CheckpointPolicy {
    every: i64,
    signer: Arc<dyn audit::CheckpointSigner>,
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
    conn.busy_timeout(Duration::from_secs(10))?;
    conn.set_prepared_statement_cache_capacity(64);
    if !read_only {
        // NORMAL: SQLite itself does not fsync at commit. The writer's syncer thread fsyncs
        // the WAL after each commit and only then acknowledges the writes (see `run_syncer`),
        // which is as durable as FULL but lets the next group run while the disk syncs.
        // A checkpoint thread (see `run_checkpointer`) copies WAL pages into the database
        // continuously; the writer's own, rarer auto-checkpoint then finds little left to copy
        // and restarts the WAL, which keeps it from growing under constant load.
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; \
             PRAGMA wal_autocheckpoint = 8192; PRAGMA cache_size = -32768; \
             PRAGMA journal_size_limit = 67108864;",
        )?;
    }
    Ok(conn)
}

impl Store {
    /// Opens (creating if needed) the database at `path`, applies migrations and starts the
    /// writer thread.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        // Owner-only from the first byte; SQLite gives the -wal and -shm files the same mode.
        if !path.exists() {
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .map_err(|e| StoreError::Open(format!("cannot create {}: {e}", path.display())))?;
        }
        let mut conn = open_connection(path, false)?;
        migrations().to_latest(&mut conn)?;
        let (jobs, rx) = mpsc::unbounded_channel();
        let wal_path = PathBuf::from(format!("{}-wal", path.display()));
        let checkpoints = Arc::new(OnceLock::new());
        let writer_checkpoints = checkpoints.clone();
        let writer = thread::Builder::new()
            .name("rampart-store-writer".into())
            .spawn(move || run_writer(conn, rx, wal_path, &writer_checkpoints))
            .map_err(|e| StoreError::Open(format!("cannot start writer thread: {e}")))?;
        let (stop_checkpoints, stopped) = std::sync::mpsc::channel();
        let checkpoint_path = path.to_path_buf();
        thread::Builder::new()
            .name("rampart-store-checkpoint".into())
            .spawn(move || run_checkpointer(checkpoint_path, stopped))
            .map_err(|e| StoreError::Open(format!("cannot start checkpoint thread: {e}")))?;
        Ok(Self {
            checkpointer: Mutex::new(Some(stop_checkpoints)),
            jobs: Mutex::new(Some(jobs)),
            readers: Mutex::new(Vec::new()),
            path: path.to_path_buf(),
            writer: Mutex::new(Some(writer)),
            audit_checkpoints: checkpoints,
        })
    }

    /// Opens an existing database for reading only: no migration, no writer (`rampart
    /// verify`, beside a running server). Writes answer [`StoreError::Closed`].
    pub fn open_read_only(path: &Path) -> Result<Self, StoreError> {
        if !path.exists() {
            return Err(StoreError::Open(format!(
                "{} does not exist",
                path.display()
            )));
        }
        let conn = open_connection(path, true)?;
        Ok(Self {
            checkpointer: Mutex::new(None),
            jobs: Mutex::new(None),
            readers: Mutex::new(vec![conn]),
            path: path.to_path_buf(),
            writer: Mutex::new(None),
            audit_checkpoints: Arc::new(OnceLock::new()),
        })
    }

    /// From now on the writer signs a checkpoint of the audit chain every `every` events
    /// (in the transaction that reached it) and at close. Set once; later calls are ignored.
    pub fn sign_audit_checkpoints(&self, every: u64, signer: Arc<dyn audit::CheckpointSigner>) {
        let every = i64::try_from(every.max(1)).unwrap_or(i64::MAX);
        let _ = self
            .audit_checkpoints
            .set(CheckpointPolicy { every, signer });
    }

    /// Runs `f` inside the next group transaction and returns its result once committed (on
    /// disk). If `f` fails, only its own changes are rolled back. `f` may fail with any error
    /// that a store error converts into.
    pub async fn write<T, E, F>(&self, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
        F: FnOnce(&Tx<'_>) -> Result<T, E> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        self.submit(Lane::Api, f, move |result| {
            let _ = tx.send(result);
        })?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// Like [`Store::write`], for work no client waits on (delivery bookkeeping).
    pub async fn write_background<T, E, F>(&self, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
        F: FnOnce(&Tx<'_>) -> Result<T, E> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        self.submit(Lane::Background, f, move |result| {
            let _ = tx.send(result);
        })?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// Like [`Store::write`], without waiting: for bookkeeping nobody waits on (when a key was
    /// last used, a refused request's audit event). A failure is logged.
    pub fn write_detached<F>(&self, f: F)
    where
        F: FnOnce(&Tx<'_>) -> Result<(), StoreError> + Send + 'static,
    {
        let submitted = self.submit(Lane::Background, f, |result: Result<(), StoreError>| {
            if let Err(e) = result {
                tracing::warn!(error = %e, "a background write failed");
            }
        });
        if let Err(e) = submitted {
            tracing::warn!(error = %e, "a background write was not taken");
        }
    }

    /// Like [`Store::write`], for callers that are not async (start-up). It blocks the calling
    /// thread, so keep it off async tasks' hot paths; it does not need a runtime.
    pub fn write_blocking<T, E, F>(&self, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
        F: FnOnce(&Tx<'_>) -> Result<T, E> + Send + 'static,
    {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.submit(Lane::Api, f, move |result| {
            let _ = tx.send(result);
        })?;
        rx.recv().map_err(|_| StoreError::Closed)?
    }

    fn submit<T, E, F>(
        &self,
        lane: Lane,
        f: F,
        reply: impl FnOnce(Result<T, E>) + Send + 'static,
    ) -> Result<(), StoreError>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
        F: FnOnce(&Tx<'_>) -> Result<T, E> + Send + 'static,
    {
        let job: Job = Box::new(move |conn| {
            let outcome = match conn {
                Some(conn) => run_in_savepoint(conn, |c| f(&Db(c))),
                None => Err(E::from(StoreError::Closed)),
            };
            Box::new(move |committed: Result<(), &StoreError>| {
                let result = match committed {
                    Ok(()) => outcome,
                    Err(e) => Err(E::from(StoreError::Commit(e.to_string()))),
                };
                reply(result);
            })
        });
        let jobs = self.jobs.lock().unwrap_or_else(PoisonError::into_inner);
        jobs.as_ref()
            .ok_or(StoreError::Closed)?
            .send((lane, job))
            .map_err(|_| StoreError::Closed)
    }

    /// Runs a read on the caller's thread with a pooled read-only connection. Keep it to point
    /// reads; use [`Store::read_blocking`] for scans.
    pub fn read<T, E: From<StoreError>>(
        &self,
        f: impl FnOnce(&Tx<'_>) -> Result<T, E>,
    ) -> Result<T, E> {
        // The pool is a plain list: a panic elsewhere cannot leave it half-updated, so a
        // poisoned lock is safe to take over.
        let pooled = self
            .readers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        let conn = match pooled {
            Some(conn) => conn,
            None => open_connection(&self.path, true)?,
        };
        let result = f(&Db(&conn));
        let mut pool = self.readers.lock().unwrap_or_else(PoisonError::into_inner);
        if pool.len() < 16 {
            pool.push(conn);
        }
        result
    }

    /// Runs a longer read on the blocking thread pool.
    pub async fn read_blocking<T, E, F>(self: &std::sync::Arc<Self>, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
        F: FnOnce(&Tx<'_>) -> Result<T, E> + Send + 'static,
    {
        let store = self.clone();
        tokio::task::spawn_blocking(move || store.read(f))
            .await
            .map_err(|_| StoreError::Closed)?
    }

    /// Stops taking writes, commits what is already queued, and waits for the writer to end.
    pub fn close(&self) {
        self.checkpointer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        self.jobs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let handle = self
            .writer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(handle) = handle {
            let _ = handle.join();
        }
    }
}

fn run_in_savepoint<T, E: From<StoreError>>(
    conn: &Connection,
    f: impl FnOnce(&Connection) -> Result<T, E>,
) -> Result<T, E> {
    let statement = |sql: &str| -> Result<(), StoreError> {
        conn.prepare_cached(sql)?.execute([])?;
        Ok(())
    };
    statement("SAVEPOINT job")?;
    match f(conn) {
        Ok(value) => {
            statement("RELEASE job")?;
            Ok(value)
        }
        Err(e) => {
            statement("ROLLBACK TO job")?;
            statement("RELEASE job")?;
            Err(e)
        }
    }
}

/// While API writes wait, background work gets at most this share of the writer's time.
const BACKGROUND_SHARE: u32 = 4;

fn run_writer(
    conn: Connection,
    mut rx: mpsc::UnboundedReceiver<(Lane, Job)>,
    wal_path: PathBuf,
    checkpoints: &OnceLock<CheckpointPolicy>,
) {
    let (to_syncer, synced) = std::sync::mpsc::channel::<Vec<Completion>>();
    // Two syncers: a group committed while one is inside fsync starts its own fsync at once
    // instead of waiting a whole sync for its turn.
    let synced = std::sync::Arc::new(Mutex::new(synced));
    let syncer = (0..SYNCERS)
        .map(|i| {
            let (path, synced) = (wal_path.clone(), synced.clone());
            thread::Builder::new()
                .name(format!("rampart-store-sync{i}"))
                .spawn(move || run_syncer(&path, &synced))
        })
        .collect::<Result<Vec<_>, _>>();
    let mut api: VecDeque<Job> = VecDeque::new();
    let mut background: VecDeque<Job> = VecDeque::new();
    let mut completions: Vec<Completion> = Vec::with_capacity(MAX_GROUP);
    // Time spent on API groups since background work last ran, and what that work cost.
    let mut api_time = Duration::ZERO;
    let mut background_cost = Duration::ZERO;
    loop {
        if api.is_empty() && background.is_empty() {
            match rx.blocking_recv() {
                Some((Lane::Api, job)) => api.push_back(job),
                Some((Lane::Background, job)) => background.push_back(job),
                None => break,
            }
        }
        while let Ok((lane, job)) = rx.try_recv() {
            match lane {
                Lane::Api => api.push_back(job),
                Lane::Background => background.push_back(job),
            }
        }
        let started = Instant::now();
        if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
            let err = StoreError::from(e);
            for job in api.drain(..).chain(background.drain(..)) {
                job(None)(Err(&err));
            }
            continue;
        }
        // Background work runs freely when no client waits; otherwise it gets a turn once API
        // groups have had (BACKGROUND_SHARE - 1) times its last cost.
        let background_turn =
            api.is_empty() || api_time >= background_cost * (BACKGROUND_SHARE - 1);
        let mut ran_background = false;
        if background_turn {
            let budget = if api.is_empty() { MAX_GROUP } else { 1 };
            for _ in 0..budget {
                match background.pop_front() {
                    Some(job) => {
                        completions.push(job(Some(&conn)));
                        ran_background = true;
                    }
                    None => break,
                }
            }
        }
        let background_done = started.elapsed();
        while completions.len() < MAX_GROUP {
            match api.pop_front() {
                Some(job) => completions.push(job(Some(&conn))),
                None => break,
            }
        }
        sign_checkpoint_if_due(&conn, checkpoints, false);
        let committed = conn.execute_batch("COMMIT").map_err(StoreError::from);
        if committed.is_err() {
            let _ = conn.execute_batch("ROLLBACK");
        }
        if ran_background {
            background_cost = background_done;
            api_time = started.elapsed() - background_done;
        } else {
            api_time += started.elapsed();
        }
        metrics::histogram!("rampart_store_group_size").record(completions.len() as f64);
        let group = std::mem::replace(&mut completions, Vec::with_capacity(MAX_GROUP));
        match (&committed, &syncer) {
            (Ok(()), Ok(_)) => {
                if let Err(std::sync::mpsc::SendError(group)) = to_syncer.send(group) {
                    fail_all(group, &StoreError::Closed);
                }
            }
            (Err(e), _) => fail_all(group, e),
            (Ok(()), Err(e)) => {
                fail_all(group, &StoreError::Commit(format!("no sync thread: {e}")))
            }
        }
    }
    drop(to_syncer);
    for syncer in syncer.into_iter().flatten() {
        let _ = syncer.join();
    }
    // Every sender is gone: a last signed checkpoint covers the trail's end, then the WAL is
    // folded back into the database (which syncs it) for a tidy shutdown.
    if checkpoints.get().is_some() && conn.execute_batch("BEGIN IMMEDIATE").is_ok() {
        sign_checkpoint_if_due(&conn, checkpoints, true);
        if conn.execute_batch("COMMIT").is_err() {
            let _ = conn.execute_batch("ROLLBACK");
        }
    }
    let _ = conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)");
}

/// Adds a signed audit checkpoint to the open group transaction when one is due; a failure
/// only costs the checkpoint (the next group tries again).
fn sign_checkpoint_if_due(
    conn: &Connection,
    checkpoints: &OnceLock<CheckpointPolicy>,
    force: bool,
) {
    let Some(policy) = checkpoints.get() else {
        return;
    };
    let signed = run_in_savepoint(conn, |c| {
        audit::checkpoint_if_due(c, policy.every, policy.signer.as_ref(), force)
    });
    if let Err(e) = signed {
        tracing::warn!(error = %e, "an audit checkpoint could not be written");
    }
}

fn fail_all(group: Vec<Completion>, error: &StoreError) {
    for done in group {
        done(Err(error));
    }
}

/// Makes committed groups durable: one fsync of the WAL covers every group committed before
/// it began, and only then are their writers told. While it syncs, the writer runs the next
/// group, so the disk's sync latency is paid once per batch of groups, not per group.
fn run_syncer(wal_path: &Path, groups: &Mutex<std::sync::mpsc::Receiver<Vec<Completion>>>) {
    let mut wal: Option<(std::fs::File, u64)> = None;
    loop {
        let ready: Vec<Vec<Completion>> = {
            let groups = groups.lock().unwrap_or_else(PoisonError::into_inner);
            let Ok(first) = groups.recv() else { return };
            std::iter::once(first).chain(groups.try_iter()).collect()
        };
        let synced = sync_wal(wal_path, &mut wal);
        let outcome =
            synced.map_err(|e| StoreError::Commit(format!("cannot sync the write-ahead log: {e}")));
        for group in ready {
            for done in group {
                done(outcome.as_ref().map(|_| ()));
            }
        }
    }
}

/// fdatasync on the WAL, reopening it if SQLite replaced the file.
fn sync_wal(path: &Path, wal: &mut Option<(std::fs::File, u64)>) -> std::io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let inode = std::fs::metadata(path)?.ino();
    if wal.as_ref().is_none_or(|(_, open)| *open != inode) {
        *wal = Some((std::fs::OpenOptions::new().read(true).open(path)?, inode));
    }
    match wal {
        Some((file, _)) => file.sync_data(),
        None => Ok(()),
    }
}

/// Copies committed pages from the WAL back into the database five times a second, off the
/// writer's thread. PASSIVE never blocks readers or the writer.
fn run_checkpointer(path: PathBuf, stop: std::sync::mpsc::Receiver<()>) {
    let Ok(conn) = open_connection(&path, false) else {
        return;
    };
    while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
        stop.recv_timeout(Duration::from_millis(200))
    {
        if let Err(e) = conn.execute_batch("PRAGMA wal_checkpoint(PASSIVE)") {
            tracing::warn!(error = %e, "WAL checkpoint failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("test.db")).unwrap();
        (dir, store)
    }

    #[test]
    fn ids_are_prefixed_lowercase_ulids_in_time_order() {
        let first = new_id("msg");
        std::thread::sleep(Duration::from_millis(2));
        let second = new_id("msg");
        assert_eq!(first.len(), 4 + ulid::ULID_LEN);
        assert!(first.starts_with("msg_"));
        assert!(
            first[4..]
                .bytes()
                .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase())
        );
        assert!(second > first);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_writes_are_grouped_and_all_committed() {
        let (_dir, store) = store();
        let store = std::sync::Arc::new(store);
        let mut tasks = Vec::new();
        for i in 0..200i64 {
            let store = store.clone();
            let lane_background = i % 3 == 0;
            tasks.push(tokio::spawn(async move {
                let insert = move |tx: &Tx<'_>| -> Result<(), StoreError> {
                    tx.insert_account(&accounts::AccountRecord {
                        id: format!("acc_{i}"),
                        name: "n".into(),
                        created_at: i,
                    })
                };
                if lane_background {
                    store.write_background(insert).await
                } else {
                    store.write(insert).await
                }
            }));
        }
        for task in tasks {
            task.await.unwrap().unwrap();
        }
        assert_eq!(store.read(|tx| tx.count_accounts()).unwrap(), 200);
        store.close();
    }

    #[tokio::test]
    async fn a_failing_job_rolls_back_only_its_own_changes() {
        let (_dir, store) = store();
        let account = |id: &str| accounts::AccountRecord {
            id: id.into(),
            name: "n".into(),
            created_at: 0,
        };
        let (a, b) = (account("acc_a"), account("acc_b"));
        let failing = store.write(move |tx| {
            tx.insert_account(&a)?;
            Err::<(), _>(StoreError::Corrupt("deliberate".into()))
        });
        let fine = store.write(move |tx| tx.insert_account(&b));
        let (failing, fine) = tokio::join!(failing, fine);
        assert!(failing.is_err());
        fine.unwrap();
        let ids: Vec<String> = store
            .read(|tx| tx.list_accounts())
            .unwrap()
            .into_iter()
            .map(|a| a.id)
            .collect();
        assert_eq!(ids, vec!["acc_b".to_owned()]);
        store.close();
    }

    #[test]
    fn audit_rows_written_before_the_chain_are_chained_by_its_migration() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.db");
        let mut conn = Connection::open(&path).unwrap();
        Migrations::from_slice(BASE_MIGRATIONS)
            .to_latest(&mut conn)
            .unwrap();
        for target in ["key_a", "key_b", "key_c"] {
            conn.execute(
                "INSERT INTO audit_events (at, actor_kind, action, target, outcome) \
                 VALUES (5, 'operator', 'api_key.issue', ?1, 'ok')",
                [target],
            )
            .unwrap();
        }
        drop(conn);
        let store = Store::open(&path).unwrap();
        let rows = store.read(|tx| tx.audit_chain_page(0, 10)).unwrap();
        assert_eq!(rows.len(), 3);
        let mut prev = audit::GENESIS_HASH.to_vec();
        for row in rows {
            let expected = audit::chain_hash(&prev, row.record.seq, &row.record.as_new());
            assert_eq!(
                row.hash.as_deref(),
                Some(&expected[..]),
                "seq {}",
                row.record.seq
            );
            prev = expected.to_vec();
        }
        store.close();
    }

    #[test]
    fn a_closed_store_refuses_writes_and_the_database_is_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let (dir, store) = store();
        store.close();
        assert!(matches!(
            store.write_blocking(|_| Ok::<_, StoreError>(())),
            Err(StoreError::Closed)
        ));
        let mode = std::fs::metadata(dir.path().join("test.db"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0);
    }
}
