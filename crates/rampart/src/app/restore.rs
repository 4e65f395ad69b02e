//! Restoring: `restore` checks a backup whole (manifest, every chunk, both digests, the
//! database inside) into a temporary file in the target directory before it puts anything in
//! place, and never replaces a database without `force` (the old one is then set aside).

use std::fs::{self, File, OpenOptions};
use std::io::{BufReader, BufWriter, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::AppError;
use super::backup::{BackupFailure, Progress, Scratch, file_stamp, io, random_hex, sync_dir};
use crate::clock::{Clock, SystemClock};
use crate::data::backup::{self as sealed, BackupError, BackupKey, Manifest};
use crate::data::keyring::MasterKey;
use crate::store::snapshot::{self, SnapshotFacts};

/// What a data directory may hold and still count as empty for a restore.
const ALLOWED_IN_EMPTY: &[&str] = &["master.key", "rampart.toml"];

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
            file_stamp(SystemClock.now_ms())
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
