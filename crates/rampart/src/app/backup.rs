//! Backups. `App::create_backup` copies the live database (the store's online snapshot),
//! seals it into a backup file (`data::backup`) and records `backup.create`; scheduled backups
//! do the same on a timer and keep the newest few. Restoring is in `restore.rs`.

use std::fs::{self, File, OpenOptions};
use std::io::{BufReader, BufWriter, Read};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::audit::{Action, AuditEvent};
use super::{Actor, App, AppError};
use crate::clock::{self, Millis};
use crate::data::backup::{self as sealed, BackupError, BackupKey, BackupMeta, Manifest};
use crate::store::Store;

/// Backup files the server and `rampart backup DIR` name: `rampart-backup-<UTC time>.rbk`,
/// so their names sort by age.
const FILE_PREFIX: &str = "rampart-backup-";
const FILE_SUFFIX: &str = ".rbk";
/// Bytes a backup encrypts between two pauses (see [`Paced`]).
const PACE_BYTES: u64 = 4 * 1024 * 1024;

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

pub(super) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> BackupFailure {
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
pub(super) struct Scratch {
    pub(super) path: PathBuf,
    pub(super) keep: bool,
}

impl Scratch {
    pub(super) fn create(path: PathBuf) -> Result<(Self, File), BackupFailure> {
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

pub(super) fn random_hex() -> String {
    let mut bytes = [0u8; 8];
    rand::fill(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `20261203T132405.123Z`: UTC, sortable, safe in a file name.
pub(super) fn file_stamp(at: Millis) -> String {
    let format = time::macros::format_description!(
        "[year][month][day]T[hour][minute][second].[subsecond digits:3]Z"
    );
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(at) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_else(|| at.to_string())
}

pub(super) fn sync_dir(dir: &Path) -> Result<(), BackupFailure> {
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
        // The master key is read again for every backup: after `rampart keys rotate-master`
        // a running server's next backup is sealed under the new one.
        let master = crate::data::keyring::MasterKey::from_source(
            &super::keys::master_key_source(&self.config),
            false,
        )
        .map_err(AppError::from)?;
        let key = Arc::new(BackupKey::from_master(&master));
        drop(master);
        let store = self.store.clone();
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
