//! Backups and restores. `App::create_backup` copies the live database (the store's online
//! snapshot), seals it into a backup file (`data::backup`) and records `backup.create`;
//! scheduled backups do the same on a timer and keep the newest few. `restore` checks a
//! backup whole (manifest, every chunk, both digests, the database inside) in a temporary
//! file before it puts anything in place, and never replaces a database without `force`.

use std::fs::{self, File, OpenOptions};
use std::io::{BufReader, BufWriter, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::audit::{Action, AuditEvent};
use super::{Actor, App, AppError};
use crate::clock::{self, Clock, Millis};
use crate::data::backup::{self as sealed, BackupError, BackupKey, BackupMeta, Manifest};
use crate::data::keyring::MasterKey;
use crate::store::Store;
use crate::store::snapshot::{self, SnapshotFacts};

/// Backup files the server and `rampart backup DIR` name: `rampart-backup-<UTC time>.rbk`,
/// so their names sort by age.
const FILE_PREFIX: &str = "rampart-backup-";
const FILE_SUFFIX: &str = ".rbk";
/// Bytes a backup encrypts between two pauses (see [`Paced`]).
const PACE_BYTES: u64 = 4 * 1024 * 1024;
/// What a data directory may hold and still count as empty for a restore.
const ALLOWED_IN_EMPTY: &[&str] = &["master.key", "rampart.toml"];

/// Why a backup or restore did not happen. Nothing was replaced.
#[derive(Debug, thiserror::Error)]
pub enum BackupFailure {
    #[error(transparent)]
    App(#[from] AppError),
    /// The backup file was refused (see its message) or could not be written.
    #[error("{0}")]
    Backup(#[from] BackupError),
    /// The request itself cannot be carried out as asked.
    #[error("{0}")]
    Refused(String),
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> BackupFailure {
    let what = what.into();
    move |source| BackupFailure::Io { what, source }
}

/// Hears how far a backup or restore has come: `done` of `total` units of `phase` (pages
/// while copying, bytes while sealing or opening).
pub trait Progress: Send + Sync {
    fn update(&self, phase: &'static str, done: u64, total: u64);
}

/// For work nobody watches (scheduled backups).
pub struct NoProgress;

impl Progress for NoProgress {
    fn update(&self, _: &'static str, _: u64, _: u64) {}
}

/// A backup that was written.
#[derive(Debug, Clone)]
pub struct BackupReport {
    pub path: PathBuf,
    pub file_bytes: u64,
    pub manifest: Manifest,
    pub elapsed: Duration,
}

/// A file removed when dropped unless kept: temporary snapshots, partial outputs.
struct Scratch {
    path: PathBuf,
    keep: bool,
}

impl Scratch {
    fn create(path: PathBuf) -> Result<(Self, File), BackupFailure> {
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(io(format!("cannot create {}", path.display())))?;
        Ok((Self { path, keep: false }, file))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if !self.keep {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// A reader that, after every `PACE_BYTES`, pauses for as long as the work since the last
/// pause took (reading, and whatever its consumer did in between: sealing, hashing, writing).
/// A backup then takes at most half of a core from the server it runs beside, and twice as
/// long on an idle machine; measured in bench/README.md.
struct Paced<R> {
    inner: R,
    since_pause: u64,
    working_since: Instant,
}

impl<R> Paced<R> {
    fn new(inner: R) -> Self {
        Self {
            inner,
            since_pause: 0,
            working_since: Instant::now(),
        }
    }
}

impl<R: Read> Read for Paced<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let read = self.inner.read(buf)?;
        self.since_pause += read as u64;
        if self.since_pause >= PACE_BYTES {
            std::thread::sleep(self.working_since.elapsed());
            self.since_pause = 0;
            self.working_since = Instant::now();
        }
        Ok(read)
    }
}

fn random_hex() -> String {
    let mut bytes = [0u8; 8];
    rand::fill(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `20261203T132405.123Z`: UTC, sortable, safe in a file name.
fn file_stamp(at: Millis) -> String {
    let format = time::macros::format_description!(
        "[year][month][day]T[hour][minute][second].[subsecond digits:3]Z"
    );
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(at) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_else(|| at.to_string())
}

fn sync_dir(dir: &Path) -> Result<(), BackupFailure> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(format!("cannot sync {}", dir.display())))
}

fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

impl App {
    /// Takes a backup of the live database into `out`: a new file, or a new file named
    /// `rampart-backup-<time>.rbk` when `out` is a directory. Blocking work runs off the
    /// async threads; the server keeps taking writes meanwhile.
    pub async fn create_backup(
        &self,
        actor: &Actor,
        out: &Path,
        progress: Arc<dyn Progress>,
    ) -> Result<BackupReport, BackupFailure> {
        let started = Instant::now();
        let now = self.clock.now_ms();
        let path = if out.is_dir() {
            out.join(format!("{FILE_PREFIX}{}{FILE_SUFFIX}", file_stamp(now)))
        } else if out.exists() {
            return Err(BackupFailure::Refused(format!(
                "{} exists already: name a new file, or a directory to write into",
                out.display()
            )));
        } else {
            out.to_path_buf()
        };
        let (store, key) = (self.store.clone(), self.backup_key.clone());
        let scratch_dir = self.config.data_dir.clone();
        let target = path.clone();
        let manifest = tokio::task::spawn_blocking(move || {
            write_backup(&store, &key, &scratch_dir, &target, now, &*progress)
        })
        .await
        .map_err(|_| BackupFailure::Refused("the backup task stopped unexpectedly".into()))??;
        let file_bytes = fs::metadata(&path)
            .map_err(io(format!("cannot read {}", path.display())))?
            .len();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let event = AuditEvent::instance(actor, Action::BackupCreated, name, now);
        self.store
            .write(move |tx| event.record(tx).map_err(AppError::from))
            .await?;
        Ok(BackupReport {
            path,
            file_bytes,
            manifest,
            elapsed: started.elapsed(),
        })
    }

    /// The scheduled backup (`[backup]`): one into `backup.dir`, then all but the newest
    /// `backup.keep` of the files named like ours there are removed.
    pub async fn scheduled_backup(&self) -> Result<BackupReport, BackupFailure> {
        let settings = &self.config.backup;
        let dir = settings
            .dir
            .clone()
            .ok_or_else(|| BackupFailure::Refused("backup.dir is not set".into()))?;
        if !dir.exists() {
            fs::create_dir_all(&dir)
                .and_then(|()| fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)))
                .map_err(io(format!("cannot create {}", dir.display())))?;
        }
        let report = self
            .create_backup(&Actor::System, &dir, Arc::new(NoProgress))
            .await?;
        prune_backups(&dir, settings.keep.max(1))?;
        Ok(report)
    }
}

/// Snapshot into a scratch file in the data directory (owner-only, beside the database it
/// copies, so no copy lands anywhere less protected), seal it into `<path>.partial`, and
/// move that into place only once it is whole and synced.
fn write_backup(
    store: &Store,
    key: &BackupKey,
    scratch_dir: &Path,
    path: &Path,
    now: Millis,
    progress: &dyn Progress,
) -> Result<Manifest, BackupFailure> {
    let snapshot_path = scratch_dir.join(format!(".backup-{}.snapshot", random_hex()));
    // The store creates the file itself; the guard only removes it.
    let snapshot = Scratch {
        path: snapshot_path,
        keep: false,
    };
    let facts = store
        .snapshot_into(&snapshot.path, &mut |done, total| {
            progress.update("copying the database", done, total)
        })
        .map_err(AppError::from)?;
    let partial_path = PathBuf::from(format!("{}.partial", path.display()));
    let (mut partial, file) = Scratch::create(partial_path)?;
    let plain = File::open(&snapshot.path).map_err(io("cannot read the snapshot"))?;
    let mut out = BufWriter::new(file);
    let meta = BackupMeta {
        created_at: clock::rfc3339(now),
        rampart_version: env!("CARGO_PKG_VERSION").to_owned(),
        messages: facts.messages,
    };
    let plain = Paced::new(BufReader::new(plain));
    let manifest = sealed::seal(key, meta, plain, &mut out, &mut |done| {
        progress.update("encrypting", done, facts.bytes)
    })?;
    out.into_inner()
        .map_err(|e| BackupFailure::Io {
            what: format!("cannot write {}", partial.path.display()),
            source: e.into_error(),
        })?
        .sync_all()
        .map_err(io(format!("cannot sync {}", partial.path.display())))?;
    fs::rename(&partial.path, path).map_err(io(format!("cannot create {}", path.display())))?;
    partial.keep = true;
    sync_dir(parent_of(path))?;
    Ok(manifest)
}

/// Removes all but the newest `keep` backups named like ours in `dir`.
fn prune_backups(dir: &Path, keep: usize) -> Result<(), BackupFailure> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .map_err(io(format!("cannot list {}", dir.display())))?
        .filter_map(Result::ok)
        .filter_map(|entry| entry.file_name().into_string().ok())
        .filter(|name| name.starts_with(FILE_PREFIX) && name.ends_with(FILE_SUFFIX))
        .collect();
    names.sort();
    let surplus = names.len().saturating_sub(keep);
    for name in &names[..surplus] {
        let path = dir.join(name);
        fs::remove_file(&path).map_err(io(format!("cannot remove {}", path.display())))?;
    }
    Ok(())
}

/// What `restore` is asked to do.
#[derive(Debug, Clone)]
pub struct RestoreRequest {
    /// The backup file.
    pub from: PathBuf,
    pub data_dir: PathBuf,
    /// The master key file the data directory's configuration names (by default
    /// `<data_dir>/master.key`): the key restore uses unless given another.
    pub configured_key: PathBuf,
    /// The master key of the instance that made the backup, when it is not at
    /// `configured_key` yet; it is copied there (owner-only).
    pub master_key_file: Option<PathBuf>,
    /// Replace the database of a data directory that has one (it is set aside, not lost).
    pub force: bool,
    /// Only check the backup; change nothing.
    pub check_only: bool,
}

/// What a restore did.
#[derive(Debug, Clone)]
pub struct RestoreReport {
    pub manifest: Manifest,
    pub database: SnapshotFacts,
    /// Where the database restore replaced was moved, if there was one.
    pub set_aside: Option<PathBuf>,
    /// Where the master key was copied, when it was.
    pub master_key_copied: Option<PathBuf>,
    pub elapsed: Duration,
}

/// Checks a backup whole and, unless `check_only`, makes it the data directory's database.
/// Nothing in the directory changes unless every check passed.
pub fn restore(
    request: &RestoreRequest,
    progress: &dyn Progress,
) -> Result<RestoreReport, BackupFailure> {
    let started = Instant::now();
    let key_path = request
        .master_key_file
        .clone()
        .unwrap_or_else(|| request.configured_key.clone());
    if !key_path.exists() {
        return Err(BackupFailure::Refused(format!(
            "no master key at {}: a backup holds no key; pass --master-key-file with the master key file of the instance that made it",
            key_path.display()
        )));
    }
    let master = MasterKey::load(&key_path).map_err(AppError::from)?;
    let key = BackupKey::from_master(&master);
    let copy_key_to = copy_key_target(request, &key_path)?;
    if !request.check_only {
        refuse_unless_empty(&request.data_dir, request.force)?;
    }
    let backup =
        File::open(&request.from).map_err(io(format!("cannot open {}", request.from.display())))?;
    let mut report_progress =
        |done: u64, total: u64| progress.update("checking and decrypting", done, total);
    if request.check_only {
        let manifest = sealed::open(
            &key,
            BufReader::new(backup),
            std::io::sink(),
            &mut report_progress,
        )?;
        return Ok(RestoreReport {
            database: SnapshotFacts {
                bytes: manifest.database_bytes,
                messages: manifest.messages,
            },
            manifest,
            set_aside: None,
            master_key_copied: None,
            elapsed: started.elapsed(),
        });
    }

    let dir = &request.data_dir;
    let created_dir = !dir.exists();
    if created_dir {
        fs::create_dir_all(dir)
            .and_then(|()| fs::set_permissions(dir, fs::Permissions::from_mode(0o700)))
            .map_err(io(format!("cannot create {}", dir.display())))?;
    }
    let outcome = (|| {
        let (mut scratch, file) =
            Scratch::create(dir.join(format!(".restore-{}.db", random_hex())))?;
        let mut out = BufWriter::new(file);
        let manifest = sealed::open(&key, BufReader::new(backup), &mut out, &mut report_progress)?;
        out.into_inner()
            .map_err(|e| BackupFailure::Io {
                what: "cannot write the restored database".into(),
                source: e.into_error(),
            })?
            .sync_all()
            .map_err(io("cannot sync the restored database"))?;
        let database = snapshot::check_database(&scratch.path).map_err(AppError::from)?;
        if database.messages != manifest.messages {
            return Err(BackupFailure::Backup(BackupError::Mismatch(
                "the number of messages",
            )));
        }
        if let Some(target) = &copy_key_to {
            copy_master_key(&key_path, target)?;
        }
        let set_aside = match put_in_place(&scratch.path, &dir.join("rampart.db")) {
            Ok(set_aside) => set_aside,
            Err(e) => {
                if let Some(target) = &copy_key_to {
                    let _ = fs::remove_file(target);
                }
                return Err(e);
            }
        };
        scratch.keep = true;
        let master_key_copied = copy_key_to;
        sync_dir(dir)?;
        Ok(RestoreReport {
            manifest,
            database,
            set_aside,
            master_key_copied,
            elapsed: started.elapsed(),
        })
    })();
    if outcome.is_err() && created_dir {
        // Only an empty directory goes: the one this restore made.
        let _ = fs::remove_dir(dir);
    }
    outcome
}

/// Where the given master key must be copied for the restored directory to start: to the
/// configured path when nothing is there; refused when another key is.
fn copy_key_target(
    request: &RestoreRequest,
    key_path: &Path,
) -> Result<Option<PathBuf>, BackupFailure> {
    let target = &request.configured_key;
    if request.master_key_file.is_none() || request.check_only || key_path == target {
        return Ok(None);
    }
    if !target.exists() {
        return Ok(Some(target.clone()));
    }
    let given = fs::read(key_path).map_err(io(format!("cannot read {}", key_path.display())))?;
    let present = fs::read(target).map_err(io(format!("cannot read {}", target.display())))?;
    if given.trim_ascii() == present.trim_ascii() {
        Ok(None)
    } else {
        Err(BackupFailure::Refused(format!(
            "{} holds another master key than {}: the restored database could not be read with it; remove it, or restore into another directory",
            target.display(),
            key_path.display()
        )))
    }
}

fn refuse_unless_empty(dir: &Path, force: bool) -> Result<(), BackupFailure> {
    if !dir.exists() || force {
        return Ok(());
    }
    let mut present: Vec<String> = fs::read_dir(dir)
        .map_err(io(format!("cannot list {}", dir.display())))?
        .filter_map(Result::ok)
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|name| !ALLOWED_IN_EMPTY.contains(&name.as_str()))
        .collect();
    if present.is_empty() {
        return Ok(());
    }
    present.sort();
    Err(BackupFailure::Refused(format!(
        "{} is not empty (it holds {}): restore into a new or empty directory, or pass --force to replace its database (stop the server on it first; the old database is set aside)",
        dir.display(),
        present.join(", ")
    )))
}

/// Moves `restored` to `database`, setting an existing database and its WAL aside first (a
/// stale WAL beside the new file would be replayed into it).
fn put_in_place(restored: &Path, database: &Path) -> Result<Option<PathBuf>, BackupFailure> {
    let wal = PathBuf::from(format!("{}-wal", database.display()));
    let shm = PathBuf::from(format!("{}-shm", database.display()));
    let mut set_aside = None;
    if database.exists() {
        let aside = PathBuf::from(format!(
            "{}.pre-restore-{}",
            database.display(),
            file_stamp(clock::SystemClock.now_ms())
        ));
        fs::rename(database, &aside).map_err(io(format!("cannot move {}", database.display())))?;
        if wal.exists() {
            let aside_wal = PathBuf::from(format!("{}-wal", aside.display()));
            fs::rename(&wal, &aside_wal).map_err(io(format!("cannot move {}", wal.display())))?;
        }
        set_aside = Some(aside);
    } else if wal.exists() {
        fs::remove_file(&wal).map_err(io(format!("cannot remove {}", wal.display())))?;
    }
    if shm.exists() {
        fs::remove_file(&shm).map_err(io(format!("cannot remove {}", shm.display())))?;
    }
    fs::rename(restored, database).map_err(io(format!("cannot create {}", database.display())))?;
    fs::set_permissions(database, fs::Permissions::from_mode(0o600))
        .map_err(io(format!("cannot restrict {}", database.display())))?;
    Ok(set_aside)
}

fn copy_master_key(from: &Path, to: &Path) -> Result<(), BackupFailure> {
    let bytes = zeroize::Zeroizing::new(
        fs::read(from).map_err(io(format!("cannot read {}", from.display())))?,
    );
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(to)
        .map_err(io(format!("cannot create {}", to.display())))?;
    file.write_all(&bytes)
        .and_then(|()| file.sync_all())
        .map_err(io(format!("cannot write {}", to.display())))
}
