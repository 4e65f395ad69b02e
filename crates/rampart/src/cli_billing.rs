//! `rampart billing`: prepaid accounts, the price table, credits, balances, the ledger and
//! refunds, through the same use cases as the API. A running server sees price and account
//! changes within a second.

use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;
use rampart::app::billing::BillingSettings;
use rampart::app::{Actor, App, Caller};
use rampart::billing::{format_amount, parse_amount};
use rampart::clock;

#[derive(Subcommand)]
pub enum BillingCommand {
    /// Make an account prepaid (its sends then reserve their price), or change its settings.
    Enable {
        #[arg(long)]
        account: String,
        /// Record one `billing.low_balance` audit event when the balance falls under this.
        #[arg(long)]
        low_balance: Option<String>,
        /// The most the account may spend in a UTC day.
        #[arg(long)]
        daily_cap: Option<String>,
        /// The most the account may spend in a UTC month.
        #[arg(long)]
        monthly_cap: Option<String>,
    },
    /// Add credit to a prepaid account.
    Credit {
        #[arg(long)]
        account: String,
        /// A decimal in the instance's currency (`10.00`).
        #[arg(long)]
        amount: String,
        #[arg(long)]
        note: Option<String>,
    },
    /// Show a prepaid account's balance.
    Balance {
        #[arg(long)]
        account: String,
    },
    /// Show a prepaid account's ledger, oldest first.
    Ledger {
        #[arg(long)]
        account: String,
        /// Rows per page (the next page's cursor is printed last).
        #[arg(long, default_value_t = 200)]
        limit: usize,
        #[arg(long)]
        cursor: Option<String>,
    },
    /// Refund a charged message (within `billing.refund_window_days` of its charge).
    Refund {
        #[arg(long)]
        message: String,
    },
    /// The price table.
    #[command(subcommand)]
    Prices(PricesCommand),
}

#[derive(Subcommand)]
pub enum PricesCommand {
    /// Replace the whole price table with a CSV file: `prefix,price_per_segment`.
    Load {
        #[arg(long)]
        file: PathBuf,
    },
}

fn amount(flag: &str, value: Option<String>) -> anyhow::Result<Option<i64>> {
    value
        .map(|v| parse_amount(&v).map_err(|e| anyhow::anyhow!("--{flag}: {e}")))
        .transpose()
}

pub async fn run_billing(app: &App, command: BillingCommand) -> anyhow::Result<()> {
    let currency = app.config().billing.currency.clone();
    match command {
        BillingCommand::Enable {
            account,
            low_balance,
            daily_cap,
            monthly_cap,
        } => {
            let settings = BillingSettings {
                low_balance_threshold: amount("low-balance", low_balance)?.unwrap_or(0),
                daily_cap: amount("daily-cap", daily_cap)?,
                monthly_cap: amount("monthly-cap", monthly_cap)?,
            };
            app.enable_billing(&Actor::Operator, &account, settings)
                .await?;
            println!("{account} is prepaid");
        }
        BillingCommand::Credit {
            account,
            amount,
            note,
        } => {
            let balance = app
                .credit_account(&Caller::operator(&account), &account, &amount, note)
                .await?;
            println!("{account}: balance {} {currency}", format_amount(balance));
        }
        BillingCommand::Balance { account } => {
            let b = app.balance(&Caller::operator(&account), &account)?;
            println!("{account}: balance {} {currency}", format_amount(b.balance));
        }
        BillingCommand::Ledger {
            account,
            limit,
            cursor,
        } => {
            let page = app.ledger(
                &Caller::operator(&account),
                &account,
                cursor.as_deref(),
                Some(limit),
            )?;
            for e in page.data {
                println!(
                    "{}\t{}\t{}\t{}\t{}\t{}\t{}",
                    e.id,
                    clock::rfc3339(e.at),
                    e.kind,
                    format_amount(e.amount),
                    format_amount(e.balance_after),
                    e.message_id.as_deref().unwrap_or("-"),
                    e.actor
                );
            }
            if let Some(next) = page.next_cursor {
                println!("next cursor: {next}");
            }
        }
        BillingCommand::Refund { message } => {
            let refunded = app.refund_message(&Caller::operator(""), &message).await?;
            println!(
                "{message}: refunded {} {currency}; balance {} {currency}",
                format_amount(refunded.amount),
                format_amount(refunded.balance_after)
            );
        }
        BillingCommand::Prices(PricesCommand::Load { file }) => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            let count = app.load_prices(&Actor::Operator, &text).await?;
            println!("{count} prices loaded");
        }
    }
    Ok(())
}
