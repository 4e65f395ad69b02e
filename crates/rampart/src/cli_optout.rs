//! `rampart optout`: an account's opt-outs and opt-out settings, through the same use cases as
//! `/v1/opt-outs`. A running server applies changes within a second.

use std::io::Read;
use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;
use rampart::app::opt_out_settings::OptOutSettingsChange;
use rampart::app::opt_outs::{csv_numbers, export_csv};
use rampart::app::{App, Caller};
use rampart::clock;

#[derive(Subcommand)]
pub enum OptOutCommand {
    /// List the account's opt-outs, newest first.
    List {
        #[arg(long)]
        account: String,
    },
    /// Opt a number (E.164) out of the account, or of one sender of it.
    Add {
        number: String,
        #[arg(long)]
        account: String,
        /// Only messages from this sender are refused.
        #[arg(long)]
        sender: Option<String>,
    },
    /// Opt a number back in: every opt-out of it in the account goes.
    Remove {
        number: String,
        #[arg(long)]
        account: String,
    },
    /// Opt out every number of a CSV file (first column; `-` reads standard input).
    Import {
        file: PathBuf,
        #[arg(long)]
        account: String,
    },
    /// Print the account's opt-outs as CSV.
    Export {
        #[arg(long)]
        account: String,
    },
    /// Show or change the account's opt-out settings.
    Settings {
        #[arg(long)]
        account: String,
        /// Act on STOP, START and HELP (`true`) or not (`false`).
        #[arg(long)]
        enabled: Option<bool>,
        /// `account` or `per_sender`.
        #[arg(long)]
        scope: Option<String>,
        #[arg(long)]
        help_text: Option<String>,
        #[arg(long)]
        stop_text: Option<String>,
        #[arg(long)]
        start_text: Option<String>,
    },
}

pub async fn run_optout(app: &App, command: OptOutCommand) -> anyhow::Result<()> {
    match command {
        OptOutCommand::List { account } => {
            let caller = Caller::operator(account);
            let mut cursor: Option<String> = None;
            loop {
                let page = app.list_opt_outs(&caller, Some(200), cursor.as_deref())?;
                for o in &page.data {
                    let sender = o.sender.as_deref().unwrap_or("*");
                    let at = clock::rfc3339(o.created_at);
                    println!("{}\t{sender}\t{}\t{at}", o.number, o.source);
                }
                match page.next_cursor {
                    Some(next) => cursor = Some(next),
                    None => break,
                }
            }
        }
        OptOutCommand::Add {
            number,
            account,
            sender,
        } => {
            let caller = Caller::operator(account);
            let (_, added) = app.add_opt_out(&caller, &number, sender.as_deref()).await?;
            println!(
                "{}",
                if added {
                    "opted out"
                } else {
                    "already opted out"
                }
            );
        }
        OptOutCommand::Remove { number, account } => {
            app.remove_opt_out(&Caller::operator(account), &number)
                .await
                .context("no opt-out of that number")?;
            println!("opted back in");
        }
        OptOutCommand::Import { file, account } => {
            let mut text = String::new();
            if file.as_os_str() == "-" {
                std::io::stdin().read_to_string(&mut text)?;
            } else {
                text = std::fs::read_to_string(&file)
                    .with_context(|| format!("cannot read {}", file.display()))?;
            }
            let summary = app
                .import_opt_outs(&Caller::operator(account), &csv_numbers(&text))
                .await?;
            println!(
                "{} opted out, {} already were",
                summary.added, summary.unchanged
            );
        }
        OptOutCommand::Export { account } => {
            print!(
                "{}",
                export_csv(&app.export_opt_outs(&Caller::operator(account))?)
            );
        }
        OptOutCommand::Settings {
            account,
            enabled,
            scope,
            help_text,
            stop_text,
            start_text,
        } => {
            let caller = Caller::operator(account);
            let change = OptOutSettingsChange {
                enabled,
                scope,
                help_text,
                stop_text,
                start_text,
            };
            let unchanged = change.enabled.is_none()
                && change.scope.is_none()
                && change.help_text.is_none()
                && change.stop_text.is_none()
                && change.start_text.is_none();
            let settings = if unchanged {
                app.opt_out_settings_for(&caller)?
            } else {
                app.set_opt_out_settings(&caller, change).await?
            };
            println!("enabled\t{}", settings.enabled);
            println!("scope\t{}", settings.scope.as_str());
            println!("help_text\t{}", settings.help_text);
            println!("stop_text\t{}", settings.stop_text);
            println!("start_text\t{}", settings.start_text);
        }
    }
    Ok(())
}
