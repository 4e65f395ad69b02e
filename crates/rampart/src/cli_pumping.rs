//! `rampart pumping`: destination ranges the SMS pumping defence holds, and each account's safe
//! list. A running server applies changes within a second.

use anyhow::Context;
use clap::Subcommand;
use rampart::app::{App, Caller};
use rampart::clock;

#[derive(Subcommand)]
pub enum PumpingCommand {
    /// List blocks in force: one account's, or every account's.
    List {
        #[arg(long)]
        account: Option<String>,
    },
    /// Lift the block of a prefix (as `list` shows it) in an account.
    Lift {
        prefix: String,
        #[arg(long)]
        account: String,
    },
    /// Show an account's safe list (prefixes never blocked), or add to it or remove from it.
    SafeList {
        #[arg(long)]
        account: String,
        /// A prefix (`+` and digits) never to block.
        #[arg(long, conflicts_with = "remove")]
        add: Option<String>,
        #[arg(long)]
        remove: Option<String>,
    },
}

pub async fn run_pumping(app: &App, command: PumpingCommand) -> anyhow::Result<()> {
    match command {
        PumpingCommand::List { account } => {
            for b in app.list_pumping_blocks(account.as_deref())? {
                let until = clock::rfc3339(b.until);
                println!(
                    "{}\t{}\t{}\tuntil {until}",
                    b.account_id, b.prefix, b.reason
                );
            }
        }
        PumpingCommand::Lift { prefix, account } => {
            app.lift_pumping_block(&Caller::operator(account), &prefix)
                .await
                .with_context(|| format!("no block on {prefix}"))?;
            println!("lifted the block on {prefix}");
        }
        PumpingCommand::SafeList {
            account,
            add,
            remove,
        } => {
            let caller = Caller::operator(account);
            if let Some(prefix) = add {
                app.edit_pumping_safe_list(&caller, &prefix, false).await?;
            }
            if let Some(prefix) = remove {
                app.edit_pumping_safe_list(&caller, &prefix, true).await?;
            }
            for prefix in app.pumping_safe_list(&caller)? {
                println!("{prefix}");
            }
        }
    }
    Ok(())
}
