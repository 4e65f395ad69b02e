//! Use cases of an account's rules for its people: whether members must have a second factor,
//! whether codes by SMS count as one, and password age and history.
//!
//! NIST SP 800-63B 5.1.1.2 advises against forcing passwords to change on a schedule (people
//! then pick weaker, predictable ones); `password_max_age_days` exists only for organisations
//! whose own rules demand it, and is off by default.

use super::audit::{Action, AuditEvent, Caller};
use super::{App, AppError};
use crate::identity::Scope;
/// Re-exported for the adapters, which reach the store only through the use cases.
pub use crate::store::people::PeoplePolicyRecord;

/// Longest password age an account may set (ten years).
pub const MAX_PASSWORD_AGE_DAYS: u32 = 3650;
/// Most former passwords an account may keep a person from reusing.
pub const MAX_PASSWORD_HISTORY: u32 = 24;

impl App {
    /// The account's rules for its people (`members:read`).
    pub fn people_policy(
        &self,
        caller: &Caller,
        account_id: &str,
    ) -> Result<PeoplePolicyRecord, AppError> {
        self.member_scope(caller, account_id, Scope::MembersRead)?;
        Ok(self.store.read(|tx| tx.people_policy(account_id))?)
    }

    /// Sets the account's rules for its people (`account:manage`, after a recent
    /// re-authentication). Members without a second factor are held to their own
    /// `/v1/users/me` routes from their next request when `require_2fa` is on.
    pub async fn set_people_policy(
        &self,
        caller: &Caller,
        account_id: &str,
        policy: PeoplePolicyRecord,
    ) -> Result<PeoplePolicyRecord, AppError> {
        self.member_scope(caller, account_id, Scope::AccountManage)?;
        if policy
            .password_max_age_days
            .is_some_and(|days| !(1..=MAX_PASSWORD_AGE_DAYS).contains(&days))
        {
            return Err(AppError::invalid(
                "invalid_password_max_age_days",
                format!("`password_max_age_days` is null or 1 to {MAX_PASSWORD_AGE_DAYS}"),
                "password_max_age_days",
            ));
        }
        if policy.password_history > MAX_PASSWORD_HISTORY {
            return Err(AppError::invalid(
                "invalid_password_history",
                format!("`password_history` is 0 to {MAX_PASSWORD_HISTORY}"),
                "password_history",
            ));
        }
        self.require_recent_authentication(caller)?;
        let now = self.clock.now_ms();
        let mut audit = AuditEvent::by(caller, Action::PeoplePolicySet, account_id, now);
        audit.account_id = Some(account_id.to_owned());
        let (id, record) = (account_id.to_owned(), policy.clone());
        self.store
            .write(move |tx| {
                if !tx.set_people_policy(&id, &record)? {
                    return Err(AppError::NotFound("account"));
                }
                audit.record(tx)?;
                Ok(())
            })
            .await?;
        Ok(policy)
    }
}
