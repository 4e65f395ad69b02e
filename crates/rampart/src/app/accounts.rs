//! Use cases of accounts: create and list them (operator only), and the very first start,
//! which makes a default account with a key holding every scope.

use super::audit::{Action, Actor, AuditEvent, Caller};
use super::{App, AppError};
use crate::identity::Scope;
use crate::network::ip::{AccountNetworks, IpList};
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
        self.store
            .write(move |tx| {
                tx.insert_account(&record)?;
                audit.record(tx)
            })
            .await?;
        Ok(account)
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
