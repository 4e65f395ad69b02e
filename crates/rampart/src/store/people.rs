//! People: users (operators and members), their memberships of accounts with a role, the
//! accounts' policies for people, and password history.

use rusqlite::{OptionalExtension, Row, params};

use super::{Db, StoreError};
use crate::clock::Millis;

/// A person who signs in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    pub id: String,
    /// Trimmed and lowercased.
    pub email: String,
    pub name: String,
    /// `operator-admin`, `operator-viewer`, or `None` for a person who is only a member.
    pub operator_role: Option<String>,
    /// Argon2id PHC string; `None` until the person sets one.
    pub password_hash: Option<String>,
    pub password_changed_at: Option<Millis>,
    pub failed_logins: u32,
    pub locked_at: Option<Millis>,
    pub disabled_at: Option<Millis>,
    /// The verified phone number for codes by SMS, sealed.
    pub phone_sealed: Option<Vec<u8>>,
    pub created_at: Millis,
}

/// A person's role in one account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MembershipRecord {
    pub account_id: String,
    pub user_id: String,
    pub role: String,
    pub created_at: Millis,
}

/// An account's rules for its people.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeoplePolicyRecord {
    pub require_2fa: bool,
    pub allow_sms_factor: bool,
    pub password_max_age_days: Option<u32>,
    pub password_history: u32,
}

/// Users, memberships, people policies and password history.
pub trait People {
    fn insert_user(&self, user: &UserRecord) -> Result<(), StoreError>;
    fn get_user(&self, id: &str) -> Result<Option<UserRecord>, StoreError>;
    fn find_user_by_email(&self, email: &str) -> Result<Option<UserRecord>, StoreError>;
    /// Every user, oldest first.
    fn list_users(&self) -> Result<Vec<UserRecord>, StoreError>;
    fn count_operators(&self) -> Result<i64, StoreError>;
    /// Sets the password and clears failures and any lock.
    fn set_user_password(&self, id: &str, phc: &str, now: Millis) -> Result<(), StoreError>;
    /// Counts one more failed sign-in; returns the new count.
    fn note_failed_login(&self, id: &str) -> Result<u32, StoreError>;
    fn clear_failed_logins(&self, id: &str) -> Result<(), StoreError>;
    fn set_user_locked(&self, id: &str, at: Option<Millis>) -> Result<(), StoreError>;
    /// Disables (`Some`) or enables (`None`) a user; false when there is no such user.
    fn set_user_disabled(&self, id: &str, at: Option<Millis>) -> Result<bool, StoreError>;
    fn set_user_phone(&self, id: &str, phone_sealed: Option<&[u8]>) -> Result<(), StoreError>;
    fn set_operator_role(&self, id: &str, role: Option<&str>) -> Result<(), StoreError>;

    /// Adds the membership or changes its role.
    fn put_membership(&self, membership: &MembershipRecord) -> Result<(), StoreError>;
    fn get_membership(
        &self,
        account_id: &str,
        user_id: &str,
    ) -> Result<Option<MembershipRecord>, StoreError>;
    /// The account's members, oldest first.
    fn list_members(&self, account_id: &str) -> Result<Vec<MembershipRecord>, StoreError>;
    /// The accounts a user belongs to.
    fn list_memberships(&self, user_id: &str) -> Result<Vec<MembershipRecord>, StoreError>;
    fn remove_membership(&self, account_id: &str, user_id: &str) -> Result<bool, StoreError>;
    /// Owners of the account whose user is not disabled.
    fn count_owners(&self, account_id: &str) -> Result<i64, StoreError>;

    fn people_policy(&self, account_id: &str) -> Result<PeoplePolicyRecord, StoreError>;
    fn set_people_policy(
        &self,
        account_id: &str,
        policy: &PeoplePolicyRecord,
    ) -> Result<bool, StoreError>;

    fn push_password_history(&self, user_id: &str, phc: &str, at: Millis)
    -> Result<(), StoreError>;
    /// The latest `limit` former passwords, newest first.
    fn password_history(&self, user_id: &str, limit: u32) -> Result<Vec<String>, StoreError>;
}

const USER_COLUMNS: &str = "id, email, name, operator_role, password_hash, password_changed_at, \
     failed_logins, locked_at, disabled_at, phone_sealed, created_at";

fn user_from_row(r: &Row<'_>) -> rusqlite::Result<UserRecord> {
    Ok(UserRecord {
        id: r.get(0)?,
        email: r.get(1)?,
        name: r.get(2)?,
        operator_role: r.get(3)?,
        password_hash: r.get(4)?,
        password_changed_at: r.get(5)?,
        failed_logins: r.get(6)?,
        locked_at: r.get(7)?,
        disabled_at: r.get(8)?,
        phone_sealed: r.get(9)?,
        created_at: r.get(10)?,
    })
}

fn membership_from_row(r: &Row<'_>) -> rusqlite::Result<MembershipRecord> {
    Ok(MembershipRecord {
        account_id: r.get(0)?,
        user_id: r.get(1)?,
        role: r.get(2)?,
        created_at: r.get(3)?,
    })
}

impl People for Db<'_> {
    fn insert_user(&self, u: &UserRecord) -> Result<(), StoreError> {
        self.conn()
            .prepare_cached(&format!(
                "INSERT INTO users ({USER_COLUMNS}) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"
            ))?
            .execute(params![
                u.id,
                u.email,
                u.name,
                u.operator_role,
                u.password_hash,
                u.password_changed_at,
                u.failed_logins,
                u.locked_at,
                u.disabled_at,
                u.phone_sealed,
                u.created_at
            ])?;
        Ok(())
    }

    fn get_user(&self, id: &str) -> Result<Option<UserRecord>, StoreError> {
        Ok(self
            .conn()
            .prepare_cached(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = ?1"))?
            .query_row([id], user_from_row)
            .optional()?)
    }

    fn find_user_by_email(&self, email: &str) -> Result<Option<UserRecord>, StoreError> {
        Ok(self
            .conn()
            .prepare_cached(&format!(
                "SELECT {USER_COLUMNS} FROM users WHERE email = ?1"
            ))?
            .query_row([email], user_from_row)
            .optional()?)
    }

    fn list_users(&self) -> Result<Vec<UserRecord>, StoreError> {
        let mut stmt = self.conn().prepare_cached(&format!(
            "SELECT {USER_COLUMNS} FROM users ORDER BY created_at, id"
        ))?;
        let rows = stmt.query_map([], user_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn count_operators(&self) -> Result<i64, StoreError> {
        Ok(self.conn().query_row(
            "SELECT COUNT(*) FROM users WHERE operator_role IS NOT NULL",
            [],
            |r| r.get(0),
        )?)
    }

    fn set_user_password(&self, id: &str, phc: &str, now: Millis) -> Result<(), StoreError> {
        self.conn()
            .prepare_cached(
                "UPDATE users SET password_hash = ?2, password_changed_at = ?3, \
                 failed_logins = 0, locked_at = NULL WHERE id = ?1",
            )?
            .execute(params![id, phc, now])?;
        Ok(())
    }

    fn note_failed_login(&self, id: &str) -> Result<u32, StoreError> {
        Ok(self
            .conn()
            .prepare_cached(
                "UPDATE users SET failed_logins = failed_logins + 1 WHERE id = ?1 \
                 RETURNING failed_logins",
            )?
            .query_row([id], |r| r.get(0))
            .optional()?
            .unwrap_or(0))
    }

    fn clear_failed_logins(&self, id: &str) -> Result<(), StoreError> {
        self.conn()
            .prepare_cached("UPDATE users SET failed_logins = 0 WHERE id = ?1")?
            .execute([id])?;
        Ok(())
    }

    fn set_user_locked(&self, id: &str, at: Option<Millis>) -> Result<(), StoreError> {
        self.conn()
            .prepare_cached("UPDATE users SET locked_at = ?2 WHERE id = ?1")?
            .execute(params![id, at])?;
        Ok(())
    }

    fn set_user_disabled(&self, id: &str, at: Option<Millis>) -> Result<bool, StoreError> {
        Ok(self
            .conn()
            .prepare_cached("UPDATE users SET disabled_at = ?2 WHERE id = ?1")?
            .execute(params![id, at])?
            == 1)
    }

    fn set_user_phone(&self, id: &str, phone_sealed: Option<&[u8]>) -> Result<(), StoreError> {
        self.conn()
            .prepare_cached("UPDATE users SET phone_sealed = ?2 WHERE id = ?1")?
            .execute(params![id, phone_sealed])?;
        Ok(())
    }

    fn set_operator_role(&self, id: &str, role: Option<&str>) -> Result<(), StoreError> {
        self.conn()
            .prepare_cached("UPDATE users SET operator_role = ?2 WHERE id = ?1")?
            .execute(params![id, role])?;
        Ok(())
    }

    fn put_membership(&self, m: &MembershipRecord) -> Result<(), StoreError> {
        self.conn()
            .prepare_cached(
                "INSERT INTO memberships (account_id, user_id, role, created_at) \
                 VALUES (?1, ?2, ?3, ?4) \
                 ON CONFLICT (account_id, user_id) DO UPDATE SET role = excluded.role",
            )?
            .execute(params![m.account_id, m.user_id, m.role, m.created_at])?;
        Ok(())
    }

    fn get_membership(
        &self,
        account_id: &str,
        user_id: &str,
    ) -> Result<Option<MembershipRecord>, StoreError> {
        Ok(self
            .conn()
            .prepare_cached(
                "SELECT account_id, user_id, role, created_at FROM memberships \
                 WHERE account_id = ?1 AND user_id = ?2",
            )?
            .query_row([account_id, user_id], membership_from_row)
            .optional()?)
    }

    fn list_members(&self, account_id: &str) -> Result<Vec<MembershipRecord>, StoreError> {
        let mut stmt = self.conn().prepare_cached(
            "SELECT account_id, user_id, role, created_at FROM memberships \
             WHERE account_id = ?1 ORDER BY created_at, user_id",
        )?;
        let rows = stmt.query_map([account_id], membership_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn list_memberships(&self, user_id: &str) -> Result<Vec<MembershipRecord>, StoreError> {
        let mut stmt = self.conn().prepare_cached(
            "SELECT account_id, user_id, role, created_at FROM memberships \
             WHERE user_id = ?1 ORDER BY created_at, account_id",
        )?;
        let rows = stmt.query_map([user_id], membership_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn remove_membership(&self, account_id: &str, user_id: &str) -> Result<bool, StoreError> {
        Ok(self
            .conn()
            .prepare_cached("DELETE FROM memberships WHERE account_id = ?1 AND user_id = ?2")?
            .execute([account_id, user_id])?
            == 1)
    }

    fn count_owners(&self, account_id: &str) -> Result<i64, StoreError> {
        Ok(self.conn().query_row(
            "SELECT COUNT(*) FROM memberships m JOIN users u ON u.id = m.user_id \
             WHERE m.account_id = ?1 AND m.role = 'owner' AND u.disabled_at IS NULL",
            [account_id],
            |r| r.get(0),
        )?)
    }

    fn people_policy(&self, account_id: &str) -> Result<PeoplePolicyRecord, StoreError> {
        Ok(self
            .conn()
            .prepare_cached(
                "SELECT require_2fa, allow_sms_factor, password_max_age_days, password_history \
                 FROM accounts WHERE id = ?1",
            )?
            .query_row([account_id], |r| {
                Ok(PeoplePolicyRecord {
                    require_2fa: r.get(0)?,
                    allow_sms_factor: r.get(1)?,
                    password_max_age_days: r.get(2)?,
                    password_history: r.get(3)?,
                })
            })
            .optional()?
            .unwrap_or(PeoplePolicyRecord {
                allow_sms_factor: true,
                ..PeoplePolicyRecord::default()
            }))
    }

    fn set_people_policy(
        &self,
        account_id: &str,
        p: &PeoplePolicyRecord,
    ) -> Result<bool, StoreError> {
        Ok(self
            .conn()
            .prepare_cached(
                "UPDATE accounts SET require_2fa = ?2, allow_sms_factor = ?3, \
                 password_max_age_days = ?4, password_history = ?5 WHERE id = ?1",
            )?
            .execute(params![
                account_id,
                p.require_2fa,
                p.allow_sms_factor,
                p.password_max_age_days,
                p.password_history
            ])?
            == 1)
    }

    fn push_password_history(
        &self,
        user_id: &str,
        phc: &str,
        at: Millis,
    ) -> Result<(), StoreError> {
        self.conn()
            .prepare_cached(
                "INSERT INTO password_history (user_id, hash, changed_at) VALUES (?1, ?2, ?3)",
            )?
            .execute(params![user_id, phc, at])?;
        Ok(())
    }

    fn password_history(&self, user_id: &str, limit: u32) -> Result<Vec<String>, StoreError> {
        let mut stmt = self.conn().prepare_cached(
            "SELECT hash FROM password_history WHERE user_id = ?1 \
             ORDER BY changed_at DESC LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![user_id, limit], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}
