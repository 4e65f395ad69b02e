//! Use cases of spend: prepaid accounts, the price table, credits, balances, the ledger and
//! refunds, and the reservation a billed send makes inside its own write transaction. Unbilled
//! accounts (the default) pay one look-up in memory per send and nothing else.

use std::collections::HashSet;
use std::sync::{PoisonError, RwLock};

use super::audit::{Action, Actor, AuditEvent, Caller};
use super::messages::{AcceptedMessage, Page, page_size};
use super::{App, AppError};
use crate::billing::{PriceTable, day_and_month, format_amount, parse_amount, parse_price_csv};
use crate::clock::Millis;
use crate::identity::Scope;
pub use crate::store::billing::BillingSettings;
use crate::store::billing::{LedgerRecord, Refund, Reservation, ReservationRequest};
use crate::store::{Store, StoreError, Tx};

/// Longest note on a credit, in characters.
pub const MAX_NOTE: usize = 200;

/// What the send path holds in memory: which accounts are billed and the prices, as of the
/// store's billing version (polled each second by the server, reloaded on a change).
#[derive(Debug, Default)]
pub(crate) struct BillingState {
    version: i64,
    billed: HashSet<String>,
    prices: PriceTable,
}

impl BillingState {
    pub(crate) fn load(store: &Store) -> Result<Self, StoreError> {
        store.read(|tx| {
            Ok(Self {
                version: tx.billing_version()?,
                billed: tx.billed_accounts()?.into_iter().collect(),
                prices: PriceTable::new(tx.prices()?),
            })
        })
    }
}

/// A prepaid account's balance and settings (amounts in micro-units).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Balance {
    pub account_id: String,
    pub currency: String,
    pub balance: i64,
    pub low_balance_threshold: i64,
    pub daily_cap: Option<i64>,
    pub monthly_cap: Option<i64>,
}

/// One movement of a balance, as callers see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerEntry {
    /// Its position in the ledger (the cursor for the next page).
    pub id: String,
    pub kind: String,
    pub amount: i64,
    pub balance_after: i64,
    pub message_id: Option<String>,
    pub at: Millis,
    pub actor: String,
    pub note: Option<String>,
}

impl From<LedgerRecord> for LedgerEntry {
    fn from(r: LedgerRecord) -> Self {
        Self {
            id: r.seq.to_string(),
            kind: r.kind,
            amount: r.amount,
            balance_after: r.balance_after,
            message_id: r.message_id,
            at: r.at,
            actor: r.actor,
            note: r.note,
        }
    }
}

/// A refund made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refunded {
    pub amount: i64,
    pub balance_after: i64,
}

/// A billed send's reservation, made inside the send's write transaction.
pub(crate) struct PendingReservation {
    account_id: String,
    messages: Vec<(String, i64)>,
    day: String,
    month: String,
    at: Millis,
    actor: String,
}

impl PendingReservation {
    /// Holds the money or refuses the whole send (the caller's transaction then rolls back,
    /// so nothing of it is stored). Records `billing.low_balance` when this send took the
    /// balance under the threshold.
    pub(crate) fn hold(&self, tx: &Tx<'_>) -> Result<(), AppError> {
        let request = ReservationRequest {
            account_id: &self.account_id,
            messages: self
                .messages
                .iter()
                .map(|(id, p)| (id.as_str(), *p))
                .collect(),
            day_key: &self.day,
            month_key: &self.month,
            at: self.at,
            actor: &self.actor,
        };
        match tx.reserve(&request)? {
            // Billing was switched off under us: nothing to hold.
            Reservation::NotBilled => Ok(()),
            Reservation::Reserved { now_low, .. } => {
                if now_low {
                    let mut event = AuditEvent::instance(
                        &Actor::System,
                        Action::LowBalance,
                        &self.account_id,
                        self.at,
                    );
                    event.account_id = Some(self.account_id.clone());
                    event.record(tx)?;
                }
                Ok(())
            }
            Reservation::Insufficient { balance } => {
                let total: i64 = self.messages.iter().map(|(_, p)| p).sum();
                Err(AppError::PaymentRequired {
                    code: "insufficient_balance",
                    message: format!(
                        "the send costs {} and the balance is {}",
                        format_amount(total),
                        format_amount(balance)
                    ),
                })
            }
            Reservation::CapExceeded { daily } => Err(AppError::PaymentRequired {
                code: "spend_cap_exceeded",
                message: format!(
                    "the send would pass the account's {} spend cap",
                    if daily { "daily" } else { "monthly" }
                ),
            }),
        }
    }
}

fn read_state(lock: &RwLock<BillingState>) -> std::sync::RwLockReadGuard<'_, BillingState> {
    lock.read().unwrap_or_else(PoisonError::into_inner)
}

impl App {
    /// Reloads billed accounts and prices when the store's billing version moved (the CLI
    /// changes them beside a running server; it calls this each second).
    pub fn sync_billing(&self) -> Result<(), AppError> {
        let version = self.store.read(|tx| tx.billing_version())?;
        if version != read_state(&self.billing).version {
            let state = BillingState::load(&self.store)?;
            *self.billing.write().unwrap_or_else(PoisonError::into_inner) = state;
        }
        Ok(())
    }

    /// The reservation a send needs: `None` for an unbilled account. A recipient without a
    /// price refuses the send (`no_price_for_destination`).
    pub(crate) fn price_send(
        &self,
        caller: &Caller,
        messages: &[AcceptedMessage],
        many: bool,
        now: Millis,
    ) -> Result<Option<PendingReservation>, AppError> {
        let state = read_state(&self.billing);
        if !state.billed.contains(&caller.account_id) {
            return Ok(None);
        }
        let mut priced = Vec::with_capacity(messages.len());
        for (i, m) in messages.iter().enumerate() {
            let Some(price) = state.prices.per_segment(&m.to) else {
                let field = if many {
                    format!("to[{i}]")
                } else {
                    "to".into()
                };
                return Err(AppError::invalid(
                    "no_price_for_destination",
                    "the price table has no price for this destination",
                    field,
                ));
            };
            priced.push((m.id.clone(), price * i64::from(m.segments)));
        }
        let (day, month) = day_and_month(now);
        Ok(Some(PendingReservation {
            account_id: caller.account_id.clone(),
            messages: priced,
            day,
            month,
            at: now,
            actor: caller.actor.label(),
        }))
    }

    /// Makes an account prepaid, or changes its threshold and caps (`rampart billing enable`).
    pub async fn enable_billing(
        &self,
        actor: &Actor,
        account_id: &str,
        settings: BillingSettings,
    ) -> Result<(), AppError> {
        let now = self.clock.now_ms();
        let mut audit = AuditEvent::instance(actor, Action::BillingEnabled, account_id, now);
        audit.account_id = Some(account_id.to_owned());
        let account = account_id.to_owned();
        let found = self
            .write_audited(
                audit,
                move |tx| tx.enable_billing(&account, settings, now),
                |x| *x,
            )
            .await?;
        if !found {
            return Err(AppError::NotFound("account"));
        }
        self.sync_billing()
    }

    /// Replaces the price table with a CSV file's (`prefix,price_per_segment`), all at once;
    /// how many prefixes it holds. An error names the file's line.
    pub async fn load_prices(&self, actor: &Actor, csv: &str) -> Result<usize, AppError> {
        let prices = parse_price_csv(csv)
            .map_err(|e| AppError::invalid("invalid_price_file", e.to_string(), "file"))?;
        let count = prices.len();
        let now = self.clock.now_ms();
        let audit = AuditEvent::instance(
            actor,
            Action::PricesLoaded,
            format!("prefixes={count}"),
            now,
        );
        self.write_audited(audit, move |tx| tx.replace_prices(&prices), |_| true)
            .await?;
        self.sync_billing()?;
        Ok(count)
    }

    /// Adds credit to a prepaid account (operators: `accounts:manage`, or the local
    /// operator). The amount is a decimal in the instance's currency.
    pub async fn credit_account(
        &self,
        caller: &Caller,
        account_id: &str,
        amount: &str,
        note: Option<String>,
    ) -> Result<i64, AppError> {
        // Another account's id answers 404 before any scope is looked at, as everywhere.
        if !caller.is_instance() && caller.account_id != account_id {
            return Err(AppError::NotFound("account"));
        }
        caller.require(Scope::AccountsManage)?;
        let amount = parse_amount(amount)
            .map_err(|e| AppError::invalid("invalid_amount", e.to_string(), "amount"))?;
        if amount == 0 {
            return Err(AppError::invalid(
                "invalid_amount",
                "a credit must be more than zero",
                "amount",
            ));
        }
        if let Some(n) = &note
            && (n.chars().count() > MAX_NOTE || n.chars().any(char::is_control))
        {
            return Err(AppError::invalid(
                "invalid_note",
                "a note is at most 200 characters, with no control characters",
                "note",
            ));
        }
        let now = self.clock.now_ms();
        let mut audit = AuditEvent::by(caller, Action::CreditAdded, account_id, now);
        audit.account_id = Some(account_id.to_owned());
        let (account, actor) = (account_id.to_owned(), caller.actor.label());
        let balance = self
            .write_audited(
                audit,
                move |tx| tx.credit(&account, amount, now, &actor, note.as_deref()),
                Option::is_some,
            )
            .await?;
        balance.ok_or_else(|| self.not_billed(account_id))
    }

    fn not_billed(&self, account_id: &str) -> AppError {
        match self.store.read(|tx| tx.get_account(account_id)) {
            Ok(Some(_)) => AppError::conflict(
                "billing_not_enabled",
                "the account is not prepaid: `rampart billing enable --account ID` first",
            ),
            Ok(None) => AppError::NotFound("account"),
            Err(e) => e.into(),
        }
    }

    /// A prepaid account's balance (`billing:read` in it, or an operator's `accounts:manage`).
    pub fn balance(&self, caller: &Caller, account_id: &str) -> Result<Balance, AppError> {
        self.member_scope(caller, account_id, Scope::BillingRead)?;
        let record = self
            .store
            .read(|tx| tx.billing_account(account_id))?
            .ok_or_else(|| self.not_billed(account_id))?;
        Ok(Balance {
            account_id: record.account_id,
            currency: self.config.billing.currency.clone(),
            balance: record.balance,
            low_balance_threshold: record.low_balance_threshold,
            daily_cap: record.daily_cap,
            monthly_cap: record.monthly_cap,
        })
    }

    /// A page of the account's ledger, oldest first (`billing:read`, or `accounts:manage`).
    pub fn ledger(
        &self,
        caller: &Caller,
        account_id: &str,
        cursor: Option<&str>,
        limit: Option<usize>,
    ) -> Result<Page<LedgerEntry>, AppError> {
        self.member_scope(caller, account_id, Scope::BillingRead)?;
        let limit = page_size(limit)?;
        let after = match cursor {
            None => 0,
            Some(c) => c.parse::<i64>().map_err(|_| {
                AppError::invalid_filter("invalid_query", "unknown `cursor`", "cursor")
            })?,
        };
        let rows = self
            .store
            .read(|tx| tx.ledger(account_id, after, limit + 1))?;
        let entries: Vec<LedgerEntry> = rows.into_iter().map(LedgerEntry::from).collect();
        Ok(Page::cut(entries, limit, |e| &e.id))
    }

    /// The sum of the account's ledger, which always equals its balance (checks and tests).
    pub fn ledger_sum(&self, account_id: &str) -> Result<i64, AppError> {
        Ok(self.store.read(|tx| tx.ledger_sum(account_id))?)
    }

    /// Refunds a charged message within `billing.refund_window_days` of its charge
    /// (`account:manage` in its account, or an operator's `accounts:manage`).
    pub async fn refund_message(
        &self,
        caller: &Caller,
        message_id: &str,
    ) -> Result<Refunded, AppError> {
        let account = if caller.is_instance() {
            caller.require(Scope::AccountsManage)?;
            None
        } else {
            caller.require(Scope::AccountManage)?;
            Some(caller.account_id.clone())
        };
        let now = self.clock.now_ms();
        let window = Millis::from(self.config.billing.refund_window_days) * 86_400_000;
        let audit = AuditEvent::by(caller, Action::MessageRefunded, message_id, now);
        let (id, actor) = (message_id.to_owned(), caller.actor.label());
        let refund = self
            .write_audited(
                audit,
                move |tx| tx.refund(account.as_deref(), &id, now - window, now, &actor),
                |r| matches!(r, Refund::Refunded { .. }),
            )
            .await?;
        match refund {
            Refund::Refunded {
                amount,
                balance_after,
            } => Ok(Refunded {
                amount,
                balance_after,
            }),
            Refund::NoMessage => Err(AppError::NotFound("message")),
            Refund::NotCharged => Err(AppError::conflict(
                "not_refundable",
                "the message was not charged: only delivered messages of prepaid accounts are; \
                 the reservation of one that was not delivered comes back on its own",
            )),
            Refund::AlreadyRefunded => Err(AppError::conflict(
                "already_refunded",
                "the message was refunded already",
            )),
            Refund::WindowClosed => Err(AppError::conflict(
                "refund_window_closed",
                format!(
                    "the message was charged more than {} days ago",
                    self.config.billing.refund_window_days
                ),
            )),
        }
    }
}
