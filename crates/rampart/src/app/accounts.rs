//! Use cases of accounts: create and list them (operator only), and the very first start,
//! which makes a default account with a key holding every scope.

use super::audit::{Action, Actor, AuditEvent, Caller};
use super::{App, AppError};
use crate::identity::Scope;
use crate::network::ip::{AccountNetworks, IpList};
use crate::network::rate_limit::{AccountRates, Rate, RateSettings, Rates};
use crate::store::accounts::AccountRecord;

impl App {
    /// Creates an account.
    pub async fn create_account(
        &self,
        actor: &Actor,
        name: &str,
    ) -> Result<AccountRecord, AppError> {
        let name = super::validate_name(name, 100)?;
        let now = self.clock.now_ms();
        let account = AccountRecord {
            id: crate::store::new_id("acc"),
            name,
            created_at: now,
        };
        let mut audit = AuditEvent::instance(actor, Action::AccountCreated, &account.id, now);
        audit.account_id = Some(account.id.clone());
        let record = account.clone();
        let ring = self.keyring().clone();
        let live = self.config.messaging.new_accounts_live;
        self.store
            .write(move |tx| {
                tx.insert_account(&record)?;
                if live {
                    tx.set_account_live(&record.id, true)?;
                }
                // The account's own data key, from its first message on.
                let key_id = tx.next_data_key_id()?;
                let key = ring.new_data_key(key_id, Some(&record.id), now)?;
                tx.insert_data_key(&key)?;
                audit.record(tx)?;
                Ok::<_, AppError>(())
            })
            .await?;
        self.sync_keys()?;
        Ok(account)
    }

    /// Puts an account live (its messages follow the routes to carriers) or in sandbox mode
    /// (the simulator delivers them). A running server applies it within a second.
    pub async fn set_account_mode(
        &self,
        actor: &Actor,
        account_id: &str,
        live: bool,
    ) -> Result<(), AppError> {
        let mut audit = AuditEvent::instance(
            actor,
            Action::AccountModeSet,
            if live { "live" } else { "sandbox" },
            self.clock.now_ms(),
        );
        audit.account_id = Some(account_id.to_owned());
        let id = account_id.to_owned();
        self.store
            .write(move |tx| {
                if !tx.set_account_live(&id, live)? {
                    return Err(AppError::NotFound("account"));
                }
                audit.record(tx)?;
                Ok(())
            })
            .await
    }

    /// Whether each account is live, by id.
    pub fn live_accounts(&self) -> Result<Vec<String>, AppError> {
        Ok(self.store.read(|tx| tx.live_accounts())?)
    }

    /// Sets the networks every key of the account may be used from (empty: any). Keys with
    /// their own list must pass both. Running servers apply it on the next request.
    pub async fn set_account_allowed_ips(
        &self,
        actor: &Actor,
        account_id: &str,
        entries: &[String],
    ) -> Result<IpList, AppError> {
        let list = parse_allowed_ips(entries)?;
        let audit = AuditEvent::instance(
            actor,
            Action::AccountNetworksSet,
            account_id,
            self.clock.now_ms(),
        );
        self.store_operator_networks(audit, account_id, list).await
    }

    /// The operator's allowlist of an account, set over the API by an operator with
    /// `accounts:manage` (after a recent sign-in for a person). The account's own list must
    /// then lie within it: entries outside it stop counting.
    pub async fn set_operator_allowed_ips(
        &self,
        caller: &Caller,
        account_id: &str,
        entries: &[String],
    ) -> Result<AccountNetworks, AppError> {
        // `accounts:manage` is server-wide: only operators hold it.
        self.member_scope(caller, account_id, Scope::AccountsManage)?;
        self.require_recent_authentication(caller)?;
        let list = parse_allowed_ips(entries)?;
        let audit = AuditEvent::by(
            caller,
            Action::AccountNetworksSet,
            account_id,
            self.clock.now_ms(),
        );
        self.store_operator_networks(audit, account_id, list)
            .await?;
        self.account_networks(caller, account_id)
    }

    async fn store_operator_networks(
        &self,
        mut audit: AuditEvent,
        account_id: &str,
        list: IpList,
    ) -> Result<IpList, AppError> {
        audit.account_id = Some(account_id.to_owned());
        let (account, stored) = (account_id.to_owned(), list.to_stored());
        let found = self
            .write_audited(
                audit,
                move |tx| tx.set_account_allowed_ips(&account, &stored),
                |x| *x,
            )
            .await?;
        if !found {
            return Err(AppError::NotFound("account"));
        }
        self.announce_key_change()?;
        Ok(list)
    }

    /// The account's own allowlist, set by its admins (`account:manage`, after a recent
    /// sign-in for a person) within the operator's: every entry must lie inside the
    /// operator's list when there is one, and the caller's own address must stay allowed, so
    /// an admin cannot lock themselves out by mistake. Empty: no rule beyond the operator's.
    pub async fn set_account_member_allowed_ips(
        &self,
        caller: &Caller,
        account_id: &str,
        entries: &[String],
    ) -> Result<AccountNetworks, AppError> {
        self.member_scope(caller, account_id, Scope::AccountManage)?;
        self.require_recent_authentication(caller)?;
        let list = parse_allowed_ips(entries)?;
        let current = self.account_networks(caller, account_id)?;
        if !current.operator.is_empty() && !current.operator.covers(&list) {
            return Err(AppError::forbidden(
                "allowlist_escalation",
                "every entry must lie within the operator's list for this account",
            ));
        }
        if !list.is_empty() && caller.client_ip.is_some_and(|ip| !list.allows(ip)) {
            return Err(AppError::invalid(
                "would_lock_out",
                "the list does not include the address you are calling from",
                "allowed_ips",
            ));
        }
        let now = self.clock.now_ms();
        let mut audit = AuditEvent::by(caller, Action::AccountNetworksSet, account_id, now);
        audit.account_id = Some(account_id.to_owned());
        let (account, stored) = (account_id.to_owned(), list.to_stored());
        let found = self
            .write_audited(
                audit,
                move |tx| tx.set_account_member_allowed_ips(&account, &stored),
                |x| *x,
            )
            .await?;
        if !found {
            return Err(AppError::NotFound("account"));
        }
        self.announce_key_change()?;
        Ok(AccountNetworks {
            operator: current.operator,
            account: list,
        })
    }

    /// Both allowlists of an account (`account:manage` in it, or an operator's
    /// `accounts:manage`).
    pub fn account_networks(
        &self,
        caller: &Caller,
        account_id: &str,
    ) -> Result<AccountNetworks, AppError> {
        self.member_scope(caller, account_id, Scope::AccountManage)?;
        let (operator, account) = self.store.read(|tx| tx.account_networks(account_id))?;
        Ok(AccountNetworks::from_stored(&operator, &account))
    }

    /// The networks the account's keys may be used from (empty: any).
    pub fn account_allowed_ips(&self, account_id: &str) -> Result<IpList, AppError> {
        let stored = self.store.read(|tx| tx.account_allowed_ips(account_id))?;
        Ok(IpList::from_stored(&stored))
    }

    /// The account's rate limits (`account:manage` in it, or an operator's `accounts:manage`).
    pub fn account_rate_limits(
        &self,
        caller: &Caller,
        account_id: &str,
    ) -> Result<AccountRateLimits, AppError> {
        self.member_scope(caller, account_id, Scope::AccountManage)?;
        self.rate_limits_of(account_id)
    }

    /// The account's rate limits as the local operator sees them.
    pub fn rate_limits_of(&self, account_id: &str) -> Result<AccountRateLimits, AppError> {
        let (operator, account) = self
            .store
            .read(|tx| tx.account_rate_limits(account_id))?
            .ok_or(AppError::NotFound("account"))?;
        let rates = AccountRates::from_stored(&operator, &account);
        let server = self.rate_limits.server();
        Ok(AccountRateLimits {
            server,
            operator: rates.operator,
            account: rates.account,
            effective: rates.effective(server),
        })
    }

    /// Sets the operator's rate limits of an account, as the local operator does
    /// (`rampart account rate-limits`): they replace the server's for it, and may lift them.
    pub async fn set_account_rate_limits(
        &self,
        actor: &Actor,
        account_id: &str,
        settings: RateSettings,
    ) -> Result<AccountRateLimits, AppError> {
        validate_rates(settings)?;
        let now = self.clock.now_ms();
        let audit = AuditEvent::instance(actor, Action::AccountRateLimitsSet, account_id, now);
        self.store_rate_limits(audit, account_id, true, settings)
            .await
    }

    /// The same over the API, by an operator with `accounts:manage` (after a recent sign-in
    /// for a person).
    pub async fn set_operator_rate_limits(
        &self,
        caller: &Caller,
        account_id: &str,
        settings: RateSettings,
    ) -> Result<AccountRateLimits, AppError> {
        // `accounts:manage` is server-wide: only operators hold it.
        self.member_scope(caller, account_id, Scope::AccountsManage)?;
        self.require_recent_authentication(caller)?;
        validate_rates(settings)?;
        let now = self.clock.now_ms();
        let audit = AuditEvent::by(caller, Action::AccountRateLimitsSet, account_id, now);
        self.store_rate_limits(audit, account_id, true, settings)
            .await
    }

    /// The account's own rate limits, set by its admins (`account:manage`, after a recent
    /// sign-in for a person) within the operator's (or the server's): never more requests
    /// or a larger burst than those allow, and no lifting of a limit.
    pub async fn set_member_rate_limits(
        &self,
        caller: &Caller,
        account_id: &str,
        settings: RateSettings,
    ) -> Result<AccountRateLimits, AppError> {
        self.member_scope(caller, account_id, Scope::AccountManage)?;
        self.require_recent_authentication(caller)?;
        validate_rates(settings)?;
        let current = self.rate_limits_of(account_id)?;
        let ceiling = AccountRates {
            operator: current.operator,
            account: RateSettings::default(),
        }
        .ceiling(current.server);
        for (name, own, ceiling) in [
            ("api_key", settings.api_key, ceiling.api_key),
            ("account", settings.account, ceiling.account),
        ] {
            if let Some(own) = own
                && !own.within(ceiling)
            {
                return Err(AppError::forbidden(
                    "rate_limit_escalation",
                    format!(
                        "the {name} limit may not exceed {} per second with bursts of {}, \
                         set by the operator",
                        ceiling.per_second,
                        ceiling.effective_burst()
                    ),
                ));
            }
        }
        let now = self.clock.now_ms();
        let audit = AuditEvent::by(caller, Action::AccountRateLimitsSet, account_id, now);
        self.store_rate_limits(audit, account_id, false, settings)
            .await
    }

    async fn store_rate_limits(
        &self,
        mut audit: AuditEvent,
        account_id: &str,
        by_operator: bool,
        settings: RateSettings,
    ) -> Result<AccountRateLimits, AppError> {
        audit.account_id = Some(account_id.to_owned());
        let (account, stored) = (account_id.to_owned(), settings.to_stored());
        let found = self
            .write_audited(
                audit,
                move |tx| tx.set_account_rate_limits(&account, by_operator, &stored),
                |x| *x,
            )
            .await?;
        if !found {
            return Err(AppError::NotFound("account"));
        }
        self.announce_key_change()?;
        self.rate_limits_of(account_id)
    }

    /// Every account, oldest first.
    pub fn list_accounts(&self) -> Result<Vec<AccountRecord>, AppError> {
        Ok(self.store.read(|tx| tx.list_accounts())?)
    }

    /// The account named, which must exist; or, when none is named, the only account.
    pub fn account_or_only(&self, id: Option<&str>) -> Result<String, AppError> {
        if let Some(id) = id {
            return match self.store.read(|tx| tx.get_account(id))? {
                Some(account) => Ok(account.id),
                None => Err(AppError::NotFound("account")),
            };
        }
        match self.list_accounts()?.as_slice() {
            [only] => Ok(only.id.clone()),
            [] => Err(AppError::invalid(
                "no_account",
                "there is no account yet: run `rampart account create --name NAME` or start the server once",
                "account",
            )),
            _ => Err(AppError::invalid(
                "account_required",
                "there are several accounts: name one with --account",
                "account",
            )),
        }
    }

    /// On the very first start (no account yet): a default account, so that the local
    /// operator can make its first key with `rampart apikey create`. No key is made here: a
    /// secret printed at start-up ends up in whatever captures the output.
    pub async fn bootstrap(&self) -> Result<(), AppError> {
        if self.store.read(|tx| tx.count_accounts())? == 0 {
            self.create_account(&Actor::System, "default").await?;
        }
        Ok(())
    }
}

fn parse_allowed_ips(entries: &[String]) -> Result<IpList, AppError> {
    IpList::parse(entries.iter().map(String::as_str))
        .map_err(|e| AppError::invalid("invalid_allowed_ips", e.to_string(), "allowed_ips"))
}

/// An account's rate limits at each level, and those in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccountRateLimits {
    /// The server's (`[rate_limits]`), for accounts without the operator's.
    pub server: Rates,
    pub operator: RateSettings,
    pub account: RateSettings,
    pub effective: Rates,
}

/// Most requests per second, or at once, a limit may name.
pub const MAX_RATE: u32 = 1_000_000;

fn validate_rates(settings: RateSettings) -> Result<(), AppError> {
    let fits =
        |rate: Option<Rate>| rate.is_none_or(|r| r.per_second <= MAX_RATE && r.burst <= MAX_RATE);
    if fits(settings.api_key) && fits(settings.account) {
        Ok(())
    } else {
        Err(AppError::invalid(
            "invalid_rate_limit",
            format!("rates and bursts may not exceed {MAX_RATE}"),
            "rate_limits",
        ))
    }
}
