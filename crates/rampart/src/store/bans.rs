//! Banned client addresses.

use rusqlite::params;

use super::{Db, StoreError};
use crate::clock::Millis;

/// A ban as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BanRecord {
    pub ip: String,
    pub until: Millis,
    /// How many times the address was banned (each ban lasts twice the one before).
    pub strikes: u32,
    pub created_at: Millis,
}

/// Bans.
pub trait Bans {
    fn upsert_ban(&self, ban: &BanRecord) -> Result<(), StoreError>;
    /// Bans still running at `now`.
    fn list_bans(&self, now: Millis) -> Result<Vec<BanRecord>, StoreError>;
    /// Lifts a ban; false when there was none.
    fn delete_ban(&self, ip: &str) -> Result<bool, StoreError>;
    /// Forgets bans that ended before `before`.
    fn purge_bans(&self, before: Millis) -> Result<usize, StoreError>;
}

impl Bans for Db<'_> {
    fn upsert_ban(&self, ban: &BanRecord) -> Result<(), StoreError> {
        self.conn()
            .prepare_cached(
                "INSERT INTO ip_bans (ip, until, strikes, created_at) VALUES (?1, ?2, ?3, ?4) \
                 ON CONFLICT (ip) DO UPDATE SET until = excluded.until, strikes = excluded.strikes",
            )?
            .execute(params![ban.ip, ban.until, ban.strikes, ban.created_at])?;
        Ok(())
    }

    fn list_bans(&self, now: Millis) -> Result<Vec<BanRecord>, StoreError> {
        let mut stmt = self.conn().prepare_cached(
            "SELECT ip, until, strikes, created_at FROM ip_bans WHERE until > ?1 ORDER BY until",
        )?;
        let rows = stmt.query_map([now], |r| {
            Ok(BanRecord {
                ip: r.get(0)?,
                until: r.get(1)?,
                strikes: r.get(2)?,
                created_at: r.get(3)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn delete_ban(&self, ip: &str) -> Result<bool, StoreError> {
        Ok(self
            .conn()
            .prepare_cached("DELETE FROM ip_bans WHERE ip = ?1")?
            .execute([ip])?
            == 1)
    }

    fn purge_bans(&self, before: Millis) -> Result<usize, StoreError> {
        Ok(self
            .conn()
            .prepare_cached("DELETE FROM ip_bans WHERE until < ?1")?
            .execute([before])?)
    }
}
