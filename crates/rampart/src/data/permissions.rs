//! The one rule for files that hold secrets: the data directory, the database (and its WAL and
//! shared memory), the master key, the audit signing key, the TLS key Rampart made, and SMPP
//! password files must belong to the user running Rampart and be unreadable to anyone else.
//! Start-up refuses otherwise; `rampart verify` reports the same findings.

use std::fmt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::config::Config;

/// Mode bits that let the group or others read, write or enter.
const OTHERS: u32 = 0o077;

/// What is wrong with one path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exposure {
    /// The group or others may use it.
    Mode { path: PathBuf, mode: u32, dir: bool },
    /// It belongs to another user than the one running Rampart.
    Owner { path: PathBuf, uid: u32, me: u32 },
}

impl Exposure {
    pub fn path(&self) -> &Path {
        match self {
            Self::Mode { path, .. } | Self::Owner { path, .. } => path,
        }
    }

    /// What is wrong, and the command that fixes it, without the path.
    pub fn problem(&self) -> String {
        match self {
            Self::Mode { path, mode, dir } => {
                let (wanted, kind) = if *dir {
                    ("700", "directory")
                } else {
                    ("600", "file")
                };
                format!(
                    "mode {mode:o}: the group or others may use this {kind} (fix: chmod {wanted} {})",
                    path.display()
                )
            }
            Self::Owner { path, uid, me } => format!(
                "belongs to uid {uid}, not to {} (uid {me}) that runs rampart (fix: chown {} {})",
                user_name(*me).unwrap_or_else(|| format!("uid {me}")),
                user_name(*me).unwrap_or_else(|| me.to_string()),
                path.display()
            ),
        }
    }
}

impl fmt::Display for Exposure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path().display(), self.problem())
    }
}

/// Paths others may use, and why start-up refuses them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("refusing to start: {}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
pub struct Exposed(pub Vec<Exposure>);

/// What is wrong with each of `paths` that exists: others may use it, or it belongs to
/// another user than this process's.
pub fn exposures(paths: &[&Path]) -> Vec<Exposure> {
    let me = effective_uid();
    let mut found = Vec::new();
    for path in paths {
        // Absent files are made owner-only when first needed.
        let Ok(meta) = std::fs::metadata(path) else {
            continue;
        };
        let mode = meta.mode() & 0o777;
        if mode & OTHERS != 0 {
            found.push(Exposure::Mode {
                path: path.to_path_buf(),
                mode,
                dir: meta.is_dir(),
            });
        }
        if let Some(me) = me
            && meta.uid() != me
        {
            found.push(Exposure::Owner {
                path: path.to_path_buf(),
                uid: meta.uid(),
                me,
            });
        }
    }
    found
}

/// Refuses when any of `paths` is exposed (see [`exposures`]).
pub fn require_owner_only(paths: &[&Path]) -> Result<(), Exposed> {
    let found = exposures(paths);
    if found.is_empty() {
        Ok(())
    } else {
        Err(Exposed(found))
    }
}

/// Every path `config` names that must be private: the data directory, the database with its
/// `-wal` and `-shm`, the master key, the audit signing key, the TLS key made on first start,
/// and the password file of every SMPP connector the configuration declares.
pub fn private_paths(config: &Config) -> Vec<PathBuf> {
    let dir = &config.data_dir;
    let db = config.db_path();
    let sibling = |suffix: &str| PathBuf::from(format!("{}{suffix}", db.display()));
    let mut paths = vec![
        dir.clone(),
        db.clone(),
        sibling("-wal"),
        sibling("-shm"),
        config.master_key_path(),
        super::audit_key::key_path(dir),
        dir.join("tls").join("key.pem"),
    ];
    paths.extend(config.connectors.iter().map(|c| c.password_file.clone()));
    paths
}

/// What start-up checks, before the master key is read: [`private_paths`].
pub fn require_private_data(config: &Config) -> Result<(), Exposed> {
    let paths = private_paths(config);
    let paths: Vec<&Path> = paths.iter().map(PathBuf::as_path).collect();
    require_owner_only(&paths)
}

/// The effective uid: the owner of this process's `/proc` entry (std offers no `geteuid`).
fn effective_uid() -> Option<u32> {
    std::fs::metadata("/proc/self").map(|m| m.uid()).ok()
}

/// The name of `uid` in `/etc/passwd`, for a `chown` the operator can paste.
fn user_name(uid: u32) -> Option<String> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        let name = fields.next()?;
        let found: u32 = fields.nth(1)?.parse().ok()?;
        (found == uid).then(|| name.to_owned())
    })
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn chmod(path: &Path, mode: u32) {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn a_file_or_directory_the_group_or_others_may_use_is_named_with_its_fix() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("secret");
        std::fs::write(&file, "x").unwrap();
        chmod(&file, 0o600);
        chmod(dir.path(), 0o700);
        assert_eq!(require_owner_only(&[dir.path(), &file]), Ok(()));

        for mode in [0o640, 0o604, 0o620, 0o644] {
            chmod(&file, mode);
            let found = exposures(&[&file]);
            assert_eq!(found.len(), 1, "{mode:o}");
            let shown = found[0].to_string();
            assert!(shown.contains(&format!("mode {mode:o}")), "{shown}");
            assert!(
                shown.contains(&format!("chmod 600 {}", file.display())),
                "{shown}"
            );
        }
        chmod(dir.path(), 0o755);
        let shown = require_owner_only(&[dir.path()]).unwrap_err().to_string();
        assert!(shown.starts_with("refusing to start: "), "{shown}");
        assert!(
            shown.contains(&format!("chmod 700 {}", dir.path().display())),
            "{shown}"
        );
    }

    #[test]
    fn a_path_that_does_not_exist_yet_is_no_exposure() {
        let dir = tempfile::tempdir().unwrap();
        assert!(exposures(&[&dir.path().join("later")]).is_empty());
    }
}
