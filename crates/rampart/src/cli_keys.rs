//! `rampart keys …`: the key hierarchy from the operator's side (see docs/keys.md). Works
//! beside a running server, which takes new and retired keys within a second.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Subcommand;
use rampart::app::keys::master_key_source;
use rampart::app::{Actor, App};
use rampart::clock;
use rampart::data::keyring::{MasterKey, MasterKeySource};

use crate::cli_backup::Bar;

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// The keyring's keys: id, owner, purpose, state, values sealed (never their material).
    List,
    /// Start a new data key for an account, for the instance's own data (no --account), or
    /// for everyone (--all). It seals everything written from now on; older values stay
    /// readable under their key until re-encrypted.
    Rotate {
        #[arg(long)]
        account: Option<String>,
        #[arg(long, conflicts_with = "account")]
        all: bool,
    },
    /// Replace the master key: the key-encryption keys are wrapped under the new one and the
    /// old wraps erased. Data and API keys stay as they are. With the default file source a
    /// new key is made (or taken from --new-key-file) and replaces the file; with
    /// RAMPART_MASTER_KEY or keys.master_key_command, --new-key-file is required and the new
    /// key must be put there before the next start.
    RotateMaster {
        #[arg(long)]
        new_key_file: Option<PathBuf>,
    },
    /// Move every sealed value to its account's newest key, with a progress bar. Safe to
    /// interrupt and run again.
    Reencrypt,
    /// Erase a data key for good; refused while it is an account's newest or anything is
    /// still sealed under it.
    Retire {
        #[arg(long)]
        key: u32,
    },
}

pub async fn run_keys(app: &App, command: KeysCommand) -> anyhow::Result<()> {
    match command {
        KeysCommand::List => {
            println!("id\towner\tpurpose\tstate\tuses\tcreated");
            for key in app.list_keys()? {
                let state = match (key.retired_at, key.active) {
                    (Some(_), _) => "retired",
                    (None, true) => "active",
                    (None, false) => "older",
                };
                println!(
                    "{}\t{}\t{}\t{state}\t{}\t{}",
                    key.id,
                    key.account_id.as_deref().unwrap_or("instance"),
                    key.purpose,
                    key.uses,
                    clock::rfc3339(key.created_at)
                );
            }
        }
        KeysCommand::Rotate { account, all } => {
            let ids = if all {
                app.rotate_all_data_keys(&Actor::Operator).await?
            } else {
                vec![
                    app.rotate_data_key(&Actor::Operator, account.as_deref())
                        .await?,
                ]
            };
            let ids: Vec<String> = ids.iter().map(u32::to_string).collect();
            println!(
                "new data key(s) {}; run `rampart keys reencrypt` to move older values",
                ids.join(", ")
            );
        }
        KeysCommand::RotateMaster { new_key_file } => {
            rotate_master(app, new_key_file.as_deref()).await?;
        }
        KeysCommand::Reencrypt => {
            let bar = Bar::new();
            let report = app.reencrypt(&Actor::Operator, bar.as_ref(), false).await;
            bar.finish();
            let report = report?;
            println!(
                "re-encrypted {} of {} sealed values",
                report.reencrypted, report.scanned
            );
            if report.unreadable > 0 {
                anyhow::bail!(
                    "{} values did not open and were left as they are: run `rampart verify`",
                    report.unreadable
                );
            }
        }
        KeysCommand::Retire { key } => {
            app.retire_key(&Actor::Operator, key).await?;
            println!("data key {key} retired: its material is erased");
        }
    }
    Ok(())
}

async fn rotate_master(app: &App, new_key_file: Option<&Path>) -> anyhow::Result<()> {
    let source = master_key_source(app.config());
    let new = match new_key_file {
        Some(path) => MasterKey::load(path).with_context(|| format!("{}", path.display()))?,
        None if matches!(source, MasterKeySource::File(_)) => MasterKey::generate(),
        None => anyhow::bail!(
            "the master key comes from {}: pass --new-key-file with the new key, then put it \
             there before the next start",
            source.describe()
        ),
    };
    // Both keys open the directory while the file changes, so a crash at any point leaves
    // it openable with whichever key the file holds.
    app.add_master_key(&new).await?;
    if let MasterKeySource::File(path) = &source {
        let staged = PathBuf::from(format!("{}.new", path.display()));
        let _ = fs::remove_file(&staged);
        new.write_new_file(&staged)?;
        fs::rename(&staged, path).with_context(|| format!("replacing {}", path.display()))?;
        if let Some(parent) = path.parent() {
            fs::File::open(parent)
                .and_then(|d| d.sync_all())
                .with_context(|| format!("syncing {}", parent.display()))?;
        }
    }
    app.rotate_master_key(&Actor::Operator, &new).await?;
    match source {
        MasterKeySource::File(path) => println!(
            "master key replaced in {}; backups made before now need the old key to restore",
            path.display()
        ),
        other => println!(
            "this data directory now opens only with the new key: put it in {} before the next \
             start",
            other.describe()
        ),
    }
    Ok(())
}
