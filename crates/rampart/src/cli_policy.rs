//! `rampart policy`: show and set an account's policy document (docs/policy.md), through the
//! same use cases as `GET`/`PUT /v1/accounts/{id}/policy`. A running server applies a change
//! from its next send.

use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;
use rampart::app::audit::Actor;
use rampart::app::policies::StoredPolicy;
use rampart::app::{App, AppError};

#[derive(Subcommand)]
pub enum PolicyCommand {
    /// Print the account's document (the defaults while it has none) with its version.
    Show {
        #[arg(long)]
        account: String,
    },
    /// Replace the account's document with the JSON in a file (`-` for standard input).
    Set {
        #[arg(long)]
        account: String,
        #[arg(long)]
        file: PathBuf,
        /// Only over this version (lost-update protection; 0 while the account has none).
        #[arg(long)]
        if_version: Option<u64>,
    },
}

fn print(account: &str, stored: &StoredPolicy) -> anyhow::Result<()> {
    println!("{account}: version {}", stored.version);
    println!("{}", serde_json::to_string_pretty(&*stored.document)?);
    Ok(())
}

pub async fn run_policy(app: &App, command: PolicyCommand) -> anyhow::Result<()> {
    match command {
        PolicyCommand::Show { account } => print(&account, &app.policy_of(&account)?),
        PolicyCommand::Set {
            account,
            file,
            if_version,
        } => {
            let text = if file.as_os_str() == "-" {
                std::io::read_to_string(std::io::stdin()).context("reading standard input")?
            } else {
                std::fs::read_to_string(&file)
                    .with_context(|| format!("reading {}", file.display()))?
            };
            let document: serde_json::Value =
                serde_json::from_str(&text).context("the file is not JSON")?;
            let stored = app
                .set_policy_of(&Actor::Operator, &account, document, if_version)
                .await
                .map_err(|e| match e {
                    AppError::Invalid { message, .. } => {
                        anyhow::anyhow!("invalid policy: {message}")
                    }
                    AppError::NotFound(_) => anyhow::anyhow!("no account {account}"),
                    other => other.into(),
                })?;
            print(&account, &stored)
        }
    }
}
