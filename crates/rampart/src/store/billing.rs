//! Spend: prepaid balances, the reservations sends make, the ledger of every movement, the
//! price table and refunds. Amounts are integers in micro-units. Settlement (charge or
//! release when a message becomes final) is done by triggers on `messages` (0015_spend.sql),
//! so it shares the transaction of whatever status change made the message final.

use rusqlite::{OptionalExtension, params};

use super::{Db, StoreError};
use crate::clock::Millis;

/// A prepaid account's settings and state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BillingAccountRecord {
    pub account_id: String,
    pub balance: i64,
    pub low_balance_threshold: i64,
    pub low_balance_alerted: bool,
    pub daily_cap: Option<i64>,
    pub monthly_cap: Option<i64>,
    /// Reserved so far in `day_key` and `month_key` (UTC).
    pub day_key: String,
    pub day_spent: i64,
    pub month_key: String,
    pub month_spent: i64,
}

/// The settings an operator gives a prepaid account.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BillingSettings {
    pub low_balance_threshold: i64,
    pub daily_cap: Option<i64>,
    pub monthly_cap: Option<i64>,
}

/// One movement of a balance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerRecord {
    pub seq: i64,
    pub account_id: String,
    /// `credit`, `reservation`, `charge`, `release` or `refund`.
    pub kind: String,
    pub amount: i64,
    pub balance_after: i64,
    pub message_id: Option<String>,
    pub at: Millis,
    pub actor: String,
    pub note: Option<String>,
}

/// A send's reservation: what each message costs, and the UTC day and month it counts in.
#[derive(Debug, Clone)]
pub struct ReservationRequest<'a> {
    pub account_id: &'a str,
    /// (message id, price) per message.
    pub messages: Vec<(&'a str, i64)>,
    pub day_key: &'a str,
    pub month_key: &'a str,
    pub at: Millis,
    pub actor: &'a str,
}

/// What a reservation did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reservation {
    /// Held; `now_low` when this reservation took the balance under the account's threshold
    /// for the first time since it was last topped up.
    Reserved { balance_after: i64, now_low: bool },
    /// Nothing held: the balance does not cover the total.
    Insufficient { balance: i64 },
    /// Nothing held: the day's (`daily`) or month's cap would be passed.
    CapExceeded { daily: bool },
    /// The account is not billed (nothing to hold).
    NotBilled,
}

/// What a refund did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refund {
    Refunded {
        amount: i64,
        balance_after: i64,
    },
    /// No such message in the account (or anywhere, for an operator).
    NoMessage,
    /// The message was never charged (unbilled, or not delivered: its reservation is
    /// released on its own).
    NotCharged,
    AlreadyRefunded,
    /// Charged before the window opened.
    WindowClosed,
}

/// Balances, reservations, the ledger and prices.
pub trait Billing {
    /// The version bumped by every change to prices or billed accounts.
    fn billing_version(&self) -> Result<i64, StoreError>;
    /// Every prepaid account's id.
    fn billed_accounts(&self) -> Result<Vec<String>, StoreError>;
    /// The price table: (prefix, price per segment).
    fn prices(&self) -> Result<Vec<(String, i64)>, StoreError>;
    /// Replaces the whole price table.
    fn replace_prices(&self, prices: &[(String, i64)]) -> Result<(), StoreError>;
    /// Makes the account prepaid (or updates its settings); false when no such account.
    fn enable_billing(
        &self,
        account_id: &str,
        settings: BillingSettings,
        now: Millis,
    ) -> Result<bool, StoreError>;
    fn billing_account(&self, account_id: &str)
    -> Result<Option<BillingAccountRecord>, StoreError>;
    /// Adds to a prepaid account's balance; the balance after, or `None` when not prepaid.
    fn credit(
        &self,
        account_id: &str,
        amount: i64,
        at: Millis,
        actor: &str,
        note: Option<&str>,
    ) -> Result<Option<i64>, StoreError>;
    /// Holds the price of each message if the balance and caps allow the whole send, with one
    /// ledger row per message.
    fn reserve(&self, request: &ReservationRequest<'_>) -> Result<Reservation, StoreError>;
    /// The account's ledger, oldest first, after `after_seq`.
    fn ledger(
        &self,
        account_id: &str,
        after_seq: i64,
        limit: usize,
    ) -> Result<Vec<LedgerRecord>, StoreError>;
    /// The sum of the account's ledger (equal to its balance).
    fn ledger_sum(&self, account_id: &str) -> Result<i64, StoreError>;
    /// Refunds a charged message of `account_id` (any account's when `None`) charged at
    /// `charged_since` or later.
    fn refund(
        &self,
        account_id: Option<&str>,
        message_id: &str,
        charged_since: Millis,
        at: Millis,
        actor: &str,
    ) -> Result<Refund, StoreError>;
}

fn bump_version(db: &Db<'_>) -> Result<(), StoreError> {
    db.conn()
        .prepare_cached("UPDATE billing_version SET version = version + 1 WHERE id = 1")?
        .execute([])?;
    Ok(())
}

fn insert_ledger(db: &Db<'_>, row: &LedgerRecord) -> Result<(), StoreError> {
    db.conn()
        .prepare_cached(
            "INSERT INTO billing_ledger (account_id, kind, amount, balance_after, message_id, at, \
             actor, note) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )?
        .execute(params![
            row.account_id,
            row.kind,
            row.amount,
            row.balance_after,
            row.message_id,
            row.at,
            row.actor,
            row.note
        ])?;
    Ok(())
}

impl Billing for Db<'_> {
    fn billing_version(&self) -> Result<i64, StoreError> {
        Ok(self
            .conn()
            .prepare_cached("SELECT version FROM billing_version WHERE id = 1")?
            .query_row([], |r| r.get(0))?)
    }

    fn billed_accounts(&self) -> Result<Vec<String>, StoreError> {
        let mut stmt = self
            .conn()
            .prepare_cached("SELECT account_id FROM billing_accounts")?;
        let rows = stmt.query_map([], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn prices(&self) -> Result<Vec<(String, i64)>, StoreError> {
        let mut stmt = self.conn().prepare_cached(
            "SELECT prefix, price_per_segment FROM billing_prices ORDER BY prefix",
        )?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn replace_prices(&self, prices: &[(String, i64)]) -> Result<(), StoreError> {
        self.conn().execute("DELETE FROM billing_prices", [])?;
        let mut stmt = self.conn().prepare_cached(
            "INSERT INTO billing_prices (prefix, price_per_segment) VALUES (?1, ?2)",
        )?;
        for (prefix, price) in prices {
            stmt.execute(params![prefix, price])?;
        }
        bump_version(self)
    }

    fn enable_billing(
        &self,
        account_id: &str,
        settings: BillingSettings,
        now: Millis,
    ) -> Result<bool, StoreError> {
        let exists: Option<i64> = self
            .conn()
            .prepare_cached("SELECT 1 FROM accounts WHERE id = ?1")?
            .query_row([account_id], |r| r.get(0))
            .optional()?;
        if exists.is_none() {
            return Ok(false);
        }
        self.conn()
            .prepare_cached(
                "INSERT INTO billing_accounts (account_id, low_balance_threshold, daily_cap, \
                 monthly_cap, enabled_at) VALUES (?1, ?2, ?3, ?4, ?5) \
                 ON CONFLICT (account_id) DO UPDATE SET \
                 low_balance_threshold = excluded.low_balance_threshold, \
                 daily_cap = excluded.daily_cap, monthly_cap = excluded.monthly_cap",
            )?
            .execute(params![
                account_id,
                settings.low_balance_threshold,
                settings.daily_cap,
                settings.monthly_cap,
                now
            ])?;
        bump_version(self)?;
        Ok(true)
    }

    fn billing_account(
        &self,
        account_id: &str,
    ) -> Result<Option<BillingAccountRecord>, StoreError> {
        Ok(self
            .conn()
            .prepare_cached(
                "SELECT account_id, balance, low_balance_threshold, low_balance_alerted, \
                 daily_cap, monthly_cap, day_key, day_spent, month_key, month_spent \
                 FROM billing_accounts WHERE account_id = ?1",
            )?
            .query_row([account_id], |r| {
                Ok(BillingAccountRecord {
                    account_id: r.get(0)?,
                    balance: r.get(1)?,
                    low_balance_threshold: r.get(2)?,
                    low_balance_alerted: r.get(3)?,
                    daily_cap: r.get(4)?,
                    monthly_cap: r.get(5)?,
                    day_key: r.get(6)?,
                    day_spent: r.get(7)?,
                    month_key: r.get(8)?,
                    month_spent: r.get(9)?,
                })
            })
            .optional()?)
    }

    fn credit(
        &self,
        account_id: &str,
        amount: i64,
        at: Millis,
        actor: &str,
        note: Option<&str>,
    ) -> Result<Option<i64>, StoreError> {
        // A top-up that lifts the balance to the threshold or above arms the alert again.
        let balance: Option<i64> = self
            .conn()
            .prepare_cached(
                "UPDATE billing_accounts SET balance = balance + ?2, \
                 low_balance_alerted = CASE WHEN balance + ?2 >= low_balance_threshold THEN 0 \
                 ELSE low_balance_alerted END \
                 WHERE account_id = ?1 RETURNING balance",
            )?
            .query_row(params![account_id, amount], |r| r.get(0))
            .optional()?;
        if let Some(balance_after) = balance {
            insert_ledger(
                self,
                &LedgerRecord {
                    seq: 0,
                    account_id: account_id.to_owned(),
                    kind: "credit".into(),
                    amount,
                    balance_after,
                    message_id: None,
                    at,
                    actor: actor.to_owned(),
                    note: note.map(str::to_owned),
                },
            )?;
        }
        Ok(balance)
    }

    fn reserve(&self, request: &ReservationRequest<'_>) -> Result<Reservation, StoreError> {
        let total: i64 = request.messages.iter().map(|(_, p)| p).sum();
        // One statement checks the balance and both caps and holds the total, inside the
        // send's transaction: the single writer runs it after every earlier send committed
        // its own, so concurrent sends can never overspend. (SET reads the old row's values.)
        let held: Option<(i64, i64, bool)> = self
            .conn()
            .prepare_cached(
                "UPDATE billing_accounts SET balance = balance - ?2, \
                 day_spent = (CASE WHEN day_key = ?3 THEN day_spent ELSE 0 END) + ?2, day_key = ?3, \
                 month_spent = (CASE WHEN month_key = ?4 THEN month_spent ELSE 0 END) + ?2, \
                 month_key = ?4 \
                 WHERE account_id = ?1 AND balance >= ?2 \
                 AND (daily_cap IS NULL OR (CASE WHEN day_key = ?3 THEN day_spent ELSE 0 END) + ?2 <= daily_cap) \
                 AND (monthly_cap IS NULL OR (CASE WHEN month_key = ?4 THEN month_spent ELSE 0 END) + ?2 <= monthly_cap) \
                 RETURNING balance, low_balance_threshold, low_balance_alerted",
            )?
            .query_row(
                params![request.account_id, total, request.day_key, request.month_key],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?;
        let Some((balance_after, threshold, alerted)) = held else {
            // Refused: only now is it worth reading why.
            let Some(account) = self.billing_account(request.account_id)? else {
                return Ok(Reservation::NotBilled);
            };
            if account.balance < total {
                return Ok(Reservation::Insufficient {
                    balance: account.balance,
                });
            }
            let day_spent = if account.day_key == request.day_key {
                account.day_spent
            } else {
                0
            };
            let daily = account.daily_cap.is_some_and(|cap| day_spent + total > cap);
            return Ok(Reservation::CapExceeded { daily });
        };
        let mut running = balance_after + total;
        let mut reserve = self.conn().prepare_cached(
            "INSERT INTO billing_reservations (message_id, account_id, amount) VALUES (?1, ?2, ?3)",
        )?;
        for (message_id, price) in &request.messages {
            running -= price;
            reserve.execute(params![message_id, request.account_id, price])?;
            insert_ledger(
                self,
                &LedgerRecord {
                    seq: 0,
                    account_id: request.account_id.to_owned(),
                    kind: "reservation".into(),
                    amount: -price,
                    balance_after: running,
                    message_id: Some((*message_id).to_owned()),
                    at: request.at,
                    actor: request.actor.to_owned(),
                    note: None,
                },
            )?;
        }
        let now_low = !alerted && balance_after < threshold;
        if now_low {
            self.conn()
                .prepare_cached(
                    "UPDATE billing_accounts SET low_balance_alerted = 1 WHERE account_id = ?1",
                )?
                .execute([request.account_id])?;
        }
        Ok(Reservation::Reserved {
            balance_after,
            now_low,
        })
    }

    fn ledger(
        &self,
        account_id: &str,
        after_seq: i64,
        limit: usize,
    ) -> Result<Vec<LedgerRecord>, StoreError> {
        let mut stmt = self.conn().prepare_cached(
            "SELECT seq, account_id, kind, amount, balance_after, message_id, at, actor, note \
             FROM billing_ledger WHERE account_id = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
        )?;
        let rows = stmt.query_map(params![account_id, after_seq, limit as i64], |r| {
            Ok(LedgerRecord {
                seq: r.get(0)?,
                account_id: r.get(1)?,
                kind: r.get(2)?,
                amount: r.get(3)?,
                balance_after: r.get(4)?,
                message_id: r.get(5)?,
                at: r.get(6)?,
                actor: r.get(7)?,
                note: r.get(8)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn ledger_sum(&self, account_id: &str) -> Result<i64, StoreError> {
        Ok(self
            .conn()
            .prepare_cached(
                "SELECT COALESCE(SUM(amount), 0) FROM billing_ledger WHERE account_id = ?1",
            )?
            .query_row([account_id], |r| r.get(0))?)
    }

    fn refund(
        &self,
        account_id: Option<&str>,
        message_id: &str,
        charged_since: Millis,
        at: Millis,
        actor: &str,
    ) -> Result<Refund, StoreError> {
        let owner: Option<String> = self
            .conn()
            .prepare_cached("SELECT account_id FROM messages WHERE id = ?1")?
            .query_row([message_id], |r| r.get(0))
            .optional()?;
        let owner = match (owner, account_id) {
            (Some(owner), Some(wanted)) if owner != wanted => return Ok(Refund::NoMessage),
            (Some(owner), _) => owner,
            (None, _) => return Ok(Refund::NoMessage),
        };
        let charge: Option<(i64, Millis, Option<Millis>)> = self
            .conn()
            .prepare_cached(
                "SELECT amount, charged_at, refunded_at FROM billing_charges \
                 WHERE message_id = ?1 AND account_id = ?2",
            )?
            .query_row([message_id, owner.as_str()], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .optional()?;
        let Some((amount, charged_at, refunded_at)) = charge else {
            return Ok(Refund::NotCharged);
        };
        if refunded_at.is_some() {
            return Ok(Refund::AlreadyRefunded);
        }
        if charged_at < charged_since {
            return Ok(Refund::WindowClosed);
        }
        self.conn()
            .prepare_cached("UPDATE billing_charges SET refunded_at = ?2 WHERE message_id = ?1")?
            .execute(params![message_id, at])?;
        let balance_after: i64 = self
            .conn()
            .prepare_cached(
                "UPDATE billing_accounts SET balance = balance + ?2 WHERE account_id = ?1 \
                 RETURNING balance",
            )?
            .query_row(params![owner, amount], |r| r.get(0))?;
        insert_ledger(
            self,
            &LedgerRecord {
                seq: 0,
                account_id: owner,
                kind: "refund".into(),
                amount,
                balance_after,
                message_id: Some(message_id.to_owned()),
                at,
                actor: actor.to_owned(),
                note: None,
            },
        )?;
        Ok(Refund::Refunded {
            amount,
            balance_after,
        })
    }
}
