//! What people sign in with and stay signed in by: sessions, second factors, recovery codes
//! and one-time challenges (links, codes by SMS, pending sign-ins, passkey ceremonies).

use rusqlite::{OptionalExtension, Row, params};

use super::{Db, StoreError};
use crate::clock::Millis;

/// A signed-in person's session; only a keyed hash of its token is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    pub id: String,
    pub user_id: String,
    pub hash: Vec<u8>,
    pub created_at: Millis,
    pub last_seen_at: Millis,
    pub authenticated_at: Millis,
    pub expires_at: Millis,
    pub revoked_at: Option<Millis>,
    pub client_ip: Option<String>,
    pub user_agent: Option<String>,
}

/// A second factor: a TOTP secret or a passkey, sealed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FactorRecord {
    pub id: String,
    pub user_id: String,
    /// `totp` or `passkey`.
    pub kind: String,
    pub name: String,
    pub secret_sealed: Vec<u8>,
    pub last_step: Option<u64>,
    pub confirmed_at: Option<Millis>,
    pub created_at: Millis,
}

/// A one-time challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChallengeRecord {
    pub id: String,
    pub purpose: String,
    pub user_id: Option<String>,
    pub account_id: Option<String>,
    pub role: Option<String>,
    pub hash: Vec<u8>,
    pub state_sealed: Option<Vec<u8>>,
    pub attempts: u32,
    pub created_at: Millis,
    pub expires_at: Millis,
    pub used_at: Option<Millis>,
}

/// Sessions, factors, recovery codes and challenges.
pub trait Sessions {
    fn insert_session(&self, session: &SessionRecord) -> Result<(), StoreError>;
    fn get_session(&self, id: &str) -> Result<Option<SessionRecord>, StoreError>;
    /// The user's live sessions, newest first.
    fn list_sessions(&self, user_id: &str, now: Millis) -> Result<Vec<SessionRecord>, StoreError>;
    fn touch_session(&self, id: &str, now: Millis) -> Result<(), StoreError>;
    fn set_session_authenticated(&self, id: &str, at: Millis) -> Result<(), StoreError>;
    /// Revokes one session of the user; false when there is no such live session.
    fn revoke_session(&self, user_id: &str, id: &str, now: Millis) -> Result<bool, StoreError>;
    /// Revokes every live session of the user but `keep`; returns how many.
    fn revoke_sessions_of(
        &self,
        user_id: &str,
        keep: Option<&str>,
        now: Millis,
    ) -> Result<usize, StoreError>;

    fn insert_factor(&self, factor: &FactorRecord) -> Result<(), StoreError>;
    /// The user's factors (confirmed or not), oldest first.
    fn list_factors(&self, user_id: &str) -> Result<Vec<FactorRecord>, StoreError>;
    fn confirm_factor(&self, id: &str, at: Millis) -> Result<(), StoreError>;
    /// Records the TOTP step accepted; false when a later or equal step was already used
    /// (a replay racing the first use).
    fn advance_factor_step(&self, id: &str, step: u64) -> Result<bool, StoreError>;
    fn update_factor_secret(&self, id: &str, secret_sealed: &[u8]) -> Result<(), StoreError>;
    fn delete_factor(&self, user_id: &str, id: &str) -> Result<bool, StoreError>;

    /// Replaces the user's recovery codes.
    fn replace_recovery_codes(&self, user_id: &str, hashes: &[Vec<u8>]) -> Result<(), StoreError>;
    /// Uses a recovery code; false when it does not exist or was used.
    fn use_recovery_code(
        &self,
        user_id: &str,
        hash: &[u8],
        now: Millis,
    ) -> Result<bool, StoreError>;
    fn count_recovery_codes(&self, user_id: &str) -> Result<i64, StoreError>;
    /// The keyed hashes of the user's unused recovery codes.
    fn list_recovery_codes(&self, user_id: &str) -> Result<Vec<Vec<u8>>, StoreError>;

    fn insert_challenge(&self, challenge: &ChallengeRecord) -> Result<(), StoreError>;
    fn get_challenge(&self, id: &str) -> Result<Option<ChallengeRecord>, StoreError>;
    /// The user's newest unused challenge with this purpose.
    fn latest_challenge(
        &self,
        user_id: &str,
        purpose: &str,
    ) -> Result<Option<ChallengeRecord>, StoreError>;
    /// Marks it used; false when it was already used.
    fn use_challenge(&self, id: &str, now: Millis) -> Result<bool, StoreError>;
    /// Deletes a challenge (a ceremony taken for its one answer); false when there was none.
    fn delete_challenge(&self, id: &str) -> Result<bool, StoreError>;
    /// Counts a wrong answer; returns the new count.
    fn note_challenge_attempt(&self, id: &str) -> Result<u32, StoreError>;
    /// Ends every unused challenge of the user with this purpose (a new one replaces them).
    fn end_challenges(&self, user_id: &str, purpose: &str, now: Millis) -> Result<(), StoreError>;
    /// Deletes challenges that ended before `before`.
    fn purge_challenges(&self, before: Millis) -> Result<usize, StoreError>;
}

const SESSION_COLUMNS: &str = "id, user_id, hash, created_at, last_seen_at, authenticated_at, \
     expires_at, revoked_at, client_ip, user_agent";

fn session_from_row(r: &Row<'_>) -> rusqlite::Result<SessionRecord> {
    Ok(SessionRecord {
        id: r.get(0)?,
        user_id: r.get(1)?,
        hash: r.get(2)?,
        created_at: r.get(3)?,
        last_seen_at: r.get(4)?,
        authenticated_at: r.get(5)?,
        expires_at: r.get(6)?,
        revoked_at: r.get(7)?,
        client_ip: r.get(8)?,
        user_agent: r.get(9)?,
    })
}

const FACTOR_COLUMNS: &str =
    "id, user_id, kind, name, secret_sealed, last_step, confirmed_at, created_at";

fn factor_from_row(r: &Row<'_>) -> rusqlite::Result<FactorRecord> {
    Ok(FactorRecord {
        id: r.get(0)?,
        user_id: r.get(1)?,
        kind: r.get(2)?,
        name: r.get(3)?,
        secret_sealed: r.get(4)?,
        last_step: r.get::<_, Option<i64>>(5)?.map(|s| s.max(0) as u64),
        confirmed_at: r.get(6)?,
        created_at: r.get(7)?,
    })
}

const CHALLENGE_COLUMNS: &str = "id, purpose, user_id, account_id, role, hash, state_sealed, \
     attempts, created_at, expires_at, used_at";

fn challenge_from_row(r: &Row<'_>) -> rusqlite::Result<ChallengeRecord> {
    Ok(ChallengeRecord {
        id: r.get(0)?,
        purpose: r.get(1)?,
        user_id: r.get(2)?,
        account_id: r.get(3)?,
        role: r.get(4)?,
        hash: r.get(5)?,
        state_sealed: r.get(6)?,
        attempts: r.get(7)?,
        created_at: r.get(8)?,
        expires_at: r.get(9)?,
        used_at: r.get(10)?,
    })
}

impl Sessions for Db<'_> {
    fn insert_session(&self, s: &SessionRecord) -> Result<(), StoreError> {
        self.conn()
            .prepare_cached(&format!(
                "INSERT INTO sessions ({SESSION_COLUMNS}) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"
            ))?
            .execute(params![
                s.id,
                s.user_id,
                s.hash,
                s.created_at,
                s.last_seen_at,
                s.authenticated_at,
                s.expires_at,
                s.revoked_at,
                s.client_ip,
                s.user_agent
            ])?;
        Ok(())
    }

    fn get_session(&self, id: &str) -> Result<Option<SessionRecord>, StoreError> {
        Ok(self
            .conn()
            .prepare_cached(&format!(
                "SELECT {SESSION_COLUMNS} FROM sessions WHERE id = ?1"
            ))?
            .query_row([id], session_from_row)
            .optional()?)
    }

    fn list_sessions(&self, user_id: &str, now: Millis) -> Result<Vec<SessionRecord>, StoreError> {
        let mut stmt = self.conn().prepare_cached(&format!(
            "SELECT {SESSION_COLUMNS} FROM sessions \
             WHERE user_id = ?1 AND revoked_at IS NULL AND expires_at > ?2 \
             ORDER BY created_at DESC"
        ))?;
        let rows = stmt.query_map(params![user_id, now], session_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn touch_session(&self, id: &str, now: Millis) -> Result<(), StoreError> {
        self.conn()
            .prepare_cached("UPDATE sessions SET last_seen_at = ?2 WHERE id = ?1")?
            .execute(params![id, now])?;
        Ok(())
    }

    fn set_session_authenticated(&self, id: &str, at: Millis) -> Result<(), StoreError> {
        self.conn()
            .prepare_cached("UPDATE sessions SET authenticated_at = ?2 WHERE id = ?1")?
            .execute(params![id, at])?;
        Ok(())
    }

    fn revoke_session(&self, user_id: &str, id: &str, now: Millis) -> Result<bool, StoreError> {
        Ok(self
            .conn()
            .prepare_cached(
                "UPDATE sessions SET revoked_at = ?3 \
                 WHERE id = ?1 AND user_id = ?2 AND revoked_at IS NULL",
            )?
            .execute(params![id, user_id, now])?
            == 1)
    }

    fn revoke_sessions_of(
        &self,
        user_id: &str,
        keep: Option<&str>,
        now: Millis,
    ) -> Result<usize, StoreError> {
        Ok(self
            .conn()
            .prepare_cached(
                "UPDATE sessions SET revoked_at = ?3 WHERE user_id = ?1 AND revoked_at IS NULL \
                 AND id IS NOT ?2",
            )?
            .execute(params![user_id, keep, now])?)
    }

    fn insert_factor(&self, f: &FactorRecord) -> Result<(), StoreError> {
        self.conn()
            .prepare_cached(&format!(
                "INSERT INTO factors ({FACTOR_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
            ))?
            .execute(params![
                f.id,
                f.user_id,
                f.kind,
                f.name,
                f.secret_sealed,
                f.last_step.map(|s| s as i64),
                f.confirmed_at,
                f.created_at
            ])?;
        Ok(())
    }

    fn list_factors(&self, user_id: &str) -> Result<Vec<FactorRecord>, StoreError> {
        let mut stmt = self.conn().prepare_cached(&format!(
            "SELECT {FACTOR_COLUMNS} FROM factors WHERE user_id = ?1 ORDER BY created_at, id"
        ))?;
        let rows = stmt.query_map([user_id], factor_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn confirm_factor(&self, id: &str, at: Millis) -> Result<(), StoreError> {
        self.conn()
            .prepare_cached("UPDATE factors SET confirmed_at = ?2 WHERE id = ?1")?
            .execute(params![id, at])?;
        Ok(())
    }

    fn advance_factor_step(&self, id: &str, step: u64) -> Result<bool, StoreError> {
        Ok(self
            .conn()
            .prepare_cached(
                "UPDATE factors SET last_step = ?2 \
                 WHERE id = ?1 AND (last_step IS NULL OR last_step < ?2)",
            )?
            .execute(params![id, step as i64])?
            == 1)
    }

    fn update_factor_secret(&self, id: &str, secret_sealed: &[u8]) -> Result<(), StoreError> {
        self.conn()
            .prepare_cached("UPDATE factors SET secret_sealed = ?2 WHERE id = ?1")?
            .execute(params![id, secret_sealed])?;
        Ok(())
    }

    fn delete_factor(&self, user_id: &str, id: &str) -> Result<bool, StoreError> {
        Ok(self
            .conn()
            .prepare_cached("DELETE FROM factors WHERE id = ?1 AND user_id = ?2")?
            .execute([id, user_id])?
            == 1)
    }

    fn replace_recovery_codes(&self, user_id: &str, hashes: &[Vec<u8>]) -> Result<(), StoreError> {
        self.conn()
            .prepare_cached("DELETE FROM recovery_codes WHERE user_id = ?1")?
            .execute([user_id])?;
        let mut insert = self
            .conn()
            .prepare_cached("INSERT INTO recovery_codes (user_id, hash) VALUES (?1, ?2)")?;
        for hash in hashes {
            insert.execute(params![user_id, hash])?;
        }
        Ok(())
    }

    fn use_recovery_code(
        &self,
        user_id: &str,
        hash: &[u8],
        now: Millis,
    ) -> Result<bool, StoreError> {
        Ok(self
            .conn()
            .prepare_cached(
                "UPDATE recovery_codes SET used_at = ?3 \
                 WHERE user_id = ?1 AND hash = ?2 AND used_at IS NULL",
            )?
            .execute(params![user_id, hash, now])?
            == 1)
    }

    fn count_recovery_codes(&self, user_id: &str) -> Result<i64, StoreError> {
        Ok(self.conn().query_row(
            "SELECT COUNT(*) FROM recovery_codes WHERE user_id = ?1 AND used_at IS NULL",
            [user_id],
            |r| r.get(0),
        )?)
    }

    fn list_recovery_codes(&self, user_id: &str) -> Result<Vec<Vec<u8>>, StoreError> {
        let mut stmt = self.conn().prepare_cached(
            "SELECT hash FROM recovery_codes WHERE user_id = ?1 AND used_at IS NULL",
        )?;
        let rows = stmt.query_map([user_id], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn insert_challenge(&self, c: &ChallengeRecord) -> Result<(), StoreError> {
        self.conn()
            .prepare_cached(&format!(
                "INSERT INTO challenges ({CHALLENGE_COLUMNS}) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"
            ))?
            .execute(params![
                c.id,
                c.purpose,
                c.user_id,
                c.account_id,
                c.role,
                c.hash,
                c.state_sealed,
                c.attempts,
                c.created_at,
                c.expires_at,
                c.used_at
            ])?;
        Ok(())
    }

    fn get_challenge(&self, id: &str) -> Result<Option<ChallengeRecord>, StoreError> {
        Ok(self
            .conn()
            .prepare_cached(&format!(
                "SELECT {CHALLENGE_COLUMNS} FROM challenges WHERE id = ?1"
            ))?
            .query_row([id], challenge_from_row)
            .optional()?)
    }

    fn latest_challenge(
        &self,
        user_id: &str,
        purpose: &str,
    ) -> Result<Option<ChallengeRecord>, StoreError> {
        Ok(self
            .conn()
            .prepare_cached(&format!(
                "SELECT {CHALLENGE_COLUMNS} FROM challenges \
                 WHERE user_id = ?1 AND purpose = ?2 AND used_at IS NULL \
                 ORDER BY created_at DESC, rowid DESC LIMIT 1"
            ))?
            .query_row([user_id, purpose], challenge_from_row)
            .optional()?)
    }

    fn use_challenge(&self, id: &str, now: Millis) -> Result<bool, StoreError> {
        Ok(self
            .conn()
            .prepare_cached("UPDATE challenges SET used_at = ?2 WHERE id = ?1 AND used_at IS NULL")?
            .execute(params![id, now])?
            == 1)
    }

    fn delete_challenge(&self, id: &str) -> Result<bool, StoreError> {
        Ok(self
            .conn()
            .prepare_cached("DELETE FROM challenges WHERE id = ?1")?
            .execute([id])?
            == 1)
    }

    fn note_challenge_attempt(&self, id: &str) -> Result<u32, StoreError> {
        Ok(self
            .conn()
            .prepare_cached(
                "UPDATE challenges SET attempts = attempts + 1 WHERE id = ?1 RETURNING attempts",
            )?
            .query_row([id], |r| r.get(0))
            .optional()?
            .unwrap_or(u32::MAX))
    }

    fn end_challenges(&self, user_id: &str, purpose: &str, now: Millis) -> Result<(), StoreError> {
        self.conn()
            .prepare_cached(
                "UPDATE challenges SET used_at = ?3 \
                 WHERE user_id = ?1 AND purpose = ?2 AND used_at IS NULL",
            )?
            .execute(params![user_id, purpose, now])?;
        Ok(())
    }

    fn purge_challenges(&self, before: Millis) -> Result<usize, StoreError> {
        Ok(self
            .conn()
            .prepare_cached("DELETE FROM challenges WHERE expires_at < ?1 OR used_at < ?1")?
            .execute([before])?)
    }
}
