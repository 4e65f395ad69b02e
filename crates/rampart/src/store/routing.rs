//! The routing directory: connectors (their settings, the password sealed), routes, and the
//! numbers we receive on with the account that owns each. Every change bumps
//! `routing_version` (by trigger), which the running server polls to reload.

use rusqlite::{OptionalExtension, Row, params};

use super::{Db, StoreError};
use crate::clock::Millis;

/// A configured connector as stored (the password still sealed).
#[derive(Clone, PartialEq, Eq)]
pub struct ConnectorRecord {
    pub name: String,
    /// Only `smpp` for now.
    pub kind: String,
    pub host: String,
    pub port: u16,
    pub system_id: String,
    /// Sealed (see `data::sealing`).
    pub password_sealed: Vec<u8>,
    pub tls: bool,
    /// A PEM file of extra trusted roots for the SMSC's certificate.
    pub tls_ca_file: Option<String>,
    pub window: usize,
    pub max_rate: Option<u32>,
    /// JSON object of further tunables.
    pub options: String,
    pub created_at: Millis,
}

impl std::fmt::Debug for ConnectorRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectorRecord")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .finish_non_exhaustive()
    }
}

/// A route: destinations starting with `prefix` go through `connector`, lower priority first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteRecord {
    pub prefix: String,
    pub connector: String,
    pub priority: i64,
}

const CONNECTOR_COLUMNS: &str = "name, kind, host, port, system_id, password_sealed, tls, tls_ca_file, \
     window_size, max_rate, options, created_at";

fn connector_from_row(r: &Row<'_>) -> rusqlite::Result<ConnectorRecord> {
    let window: i64 = r.get(8)?;
    Ok(ConnectorRecord {
        name: r.get(0)?,
        kind: r.get(1)?,
        host: r.get(2)?,
        port: r.get(3)?,
        system_id: r.get(4)?,
        password_sealed: r.get(5)?,
        tls: r.get(6)?,
        tls_ca_file: r.get(7)?,
        window: usize::try_from(window).unwrap_or(1),
        max_rate: r.get(9)?,
        options: r.get(10)?,
        created_at: r.get(11)?,
    })
}

/// One of our numbers and its owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NumberRecord {
    pub number: String,
    pub account_id: String,
    pub created_at: Millis,
}

/// The routing directory.
pub trait Routing {
    /// Adds a connector; false when one of that name exists already.
    fn insert_connector(&self, row: &ConnectorRecord) -> Result<bool, StoreError>;
    fn list_connectors(&self) -> Result<Vec<ConnectorRecord>, StoreError>;
    fn connector_exists(&self, name: &str) -> Result<bool, StoreError>;
    /// Removes a connector and the routes that point at it; `None` when there was no such
    /// connector, else how many routes went with it.
    fn delete_connector(&self, name: &str) -> Result<Option<usize>, StoreError>;
    /// Adds a route, or changes the priority of the existing route with that prefix and
    /// connector.
    fn upsert_route(&self, route: &RouteRecord, now: Millis) -> Result<(), StoreError>;
    fn list_routes(&self) -> Result<Vec<RouteRecord>, StoreError>;
    /// Removes a route; false when there was none.
    fn delete_route(&self, prefix: &str, connector: &str) -> Result<bool, StoreError>;
    /// Assigns a number to an account; false when the number is taken already.
    fn insert_number(&self, row: &NumberRecord) -> Result<bool, StoreError>;
    /// Every number, or one account's numbers.
    fn list_numbers(&self, account_id: Option<&str>) -> Result<Vec<NumberRecord>, StoreError>;
    /// Removes a number; false when there was none.
    fn delete_number(&self, number: &str) -> Result<bool, StoreError>;
    /// Who owns the number a message was sent to. Carriers write the destination with or
    /// without the `+` (the type of number says which), so both spellings are tried.
    fn number_owner(&self, to: &str) -> Result<Option<NumberRecord>, StoreError>;
    /// The counter every change to the directory bumps.
    fn routing_version(&self) -> Result<i64, StoreError>;
    /// The accounts whose messages follow the routes (the others are in sandbox mode).
    fn live_accounts(&self) -> Result<Vec<String>, StoreError>;
    /// Puts an account live or in sandbox mode; false when there is no such account.
    fn set_account_live(&self, account_id: &str, live: bool) -> Result<bool, StoreError>;
}

impl Routing for Db<'_> {
    fn insert_connector(&self, row: &ConnectorRecord) -> Result<bool, StoreError> {
        let added = self.conn()
        .prepare_cached(&format!(
            "INSERT INTO connectors ({CONNECTOR_COLUMNS}) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12) ON CONFLICT (name) DO NOTHING"
        ))?
        .execute(params![
            row.name,
            row.kind,
            row.host,
            row.port,
            row.system_id,
            row.password_sealed,
            row.tls,
            row.tls_ca_file,
            row.window as i64,
            row.max_rate,
            row.options,
            row.created_at,
        ])?;
        Ok(added == 1)
    }

    fn list_connectors(&self) -> Result<Vec<ConnectorRecord>, StoreError> {
        let mut stmt = self.conn().prepare_cached(&format!(
            "SELECT {CONNECTOR_COLUMNS} FROM connectors ORDER BY name"
        ))?;
        let rows = stmt.query_map([], connector_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn connector_exists(&self, name: &str) -> Result<bool, StoreError> {
        Ok(self
            .conn()
            .prepare_cached("SELECT 1 FROM connectors WHERE name = ?1")?
            .query_row([name], |_| Ok(()))
            .optional()?
            .is_some())
    }

    fn delete_connector(&self, name: &str) -> Result<Option<usize>, StoreError> {
        let removed = self
            .conn()
            .prepare_cached("DELETE FROM connectors WHERE name = ?1")?
            .execute([name])?;
        if removed == 0 {
            return Ok(None);
        }
        let routes = self
            .conn()
            .prepare_cached("DELETE FROM routes WHERE connector = ?1")?
            .execute([name])?;
        Ok(Some(routes))
    }

    fn upsert_route(&self, route: &RouteRecord, now: Millis) -> Result<(), StoreError> {
        self.conn().prepare_cached(
        "INSERT INTO routes (prefix, connector, priority, created_at) VALUES (?1, ?2, ?3, ?4) \
         ON CONFLICT (prefix, connector) DO UPDATE SET priority = excluded.priority",
    )?
    .execute(params![route.prefix, route.connector, route.priority, now])?;
        Ok(())
    }

    fn list_routes(&self) -> Result<Vec<RouteRecord>, StoreError> {
        let mut stmt = self.conn().prepare_cached(
            "SELECT prefix, connector, priority FROM routes ORDER BY prefix, priority, connector",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(RouteRecord {
                prefix: r.get(0)?,
                connector: r.get(1)?,
                priority: r.get(2)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn delete_route(&self, prefix: &str, connector: &str) -> Result<bool, StoreError> {
        Ok(self
            .conn()
            .prepare_cached("DELETE FROM routes WHERE prefix = ?1 AND connector = ?2")?
            .execute([prefix, connector])?
            == 1)
    }

    fn insert_number(&self, row: &NumberRecord) -> Result<bool, StoreError> {
        Ok(self
            .conn()
            .prepare_cached(
                "INSERT INTO numbers (number, account_id, created_at) VALUES (?1, ?2, ?3) \
             ON CONFLICT (number) DO NOTHING",
            )?
            .execute(params![row.number, row.account_id, row.created_at])?
            == 1)
    }

    fn list_numbers(&self, account_id: Option<&str>) -> Result<Vec<NumberRecord>, StoreError> {
        let mut stmt = self.conn().prepare_cached(
            "SELECT number, account_id, created_at FROM numbers \
         WHERE ?1 IS NULL OR account_id = ?1 ORDER BY number",
        )?;
        let rows = stmt.query_map([account_id], |r| {
            Ok(NumberRecord {
                number: r.get(0)?,
                account_id: r.get(1)?,
                created_at: r.get(2)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn delete_number(&self, number: &str) -> Result<bool, StoreError> {
        Ok(self
            .conn()
            .prepare_cached("DELETE FROM numbers WHERE number = ?1")?
            .execute([number])?
            == 1)
    }

    fn number_owner(&self, to: &str) -> Result<Option<NumberRecord>, StoreError> {
        let digits = to.strip_prefix('+').unwrap_or(to);
        let plus = format!("+{digits}");
        Ok(self
            .conn()
            .prepare_cached(
                "SELECT number, account_id, created_at FROM numbers WHERE number IN (?1, ?2) \
             ORDER BY number = ?3 DESC LIMIT 1",
            )?
            .query_row(params![digits, plus, to], |r| {
                Ok(NumberRecord {
                    number: r.get(0)?,
                    account_id: r.get(1)?,
                    created_at: r.get(2)?,
                })
            })
            .optional()?)
    }

    fn live_accounts(&self) -> Result<Vec<String>, StoreError> {
        let mut stmt = self.conn().prepare_cached(
            "SELECT id FROM accounts WHERE live = 1 AND deleted_at IS NULL ORDER BY id",
        )?;
        let rows = stmt.query_map([], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn set_account_live(&self, account_id: &str, live: bool) -> Result<bool, StoreError> {
        Ok(self.conn().execute(
            "UPDATE accounts SET live = ?2 WHERE id = ?1 AND deleted_at IS NULL",
            params![account_id, live],
        )? == 1)
    }

    fn routing_version(&self) -> Result<i64, StoreError> {
        Ok(self
            .conn()
            .prepare_cached("SELECT version FROM routing_version WHERE id = 1")?
            .query_row([], |r| r.get(0))?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db() -> (tempfile::TempDir, rusqlite::Connection) {
        let dir = tempfile::tempdir().unwrap();
        let store = super::super::Store::open(&dir.path().join("t.db")).unwrap();
        store.close();
        let conn = rusqlite::Connection::open(dir.path().join("t.db")).unwrap();
        (dir, conn)
    }

    #[test]
    fn every_directory_change_bumps_the_version() {
        let (_dir, conn) = db();
        let db = Db(&conn);
        let v0 = db.routing_version().unwrap();
        let route = RouteRecord {
            prefix: "+44".into(),
            connector: "sandbox".into(),
            priority: 0,
        };
        db.upsert_route(&route, 1).unwrap();
        let v1 = db.routing_version().unwrap();
        assert!(v1 > v0);
        assert!(db.delete_route("+44", "sandbox").unwrap());
        assert!(db.routing_version().unwrap() > v1);
    }

    #[test]
    fn numbers_match_with_or_without_the_plus() {
        let (_dir, conn) = db();
        let db = Db(&conn);
        conn.execute(
            "INSERT INTO accounts (id, name, created_at) VALUES ('acc_1', 'a', 0)",
            [],
        )
        .unwrap();
        for number in ["+447700900999", "12345"] {
            let row = NumberRecord {
                number: number.into(),
                account_id: "acc_1".into(),
                created_at: 0,
            };
            assert!(db.insert_number(&row).unwrap());
            assert!(!db.insert_number(&row).unwrap());
        }
        for to in ["+447700900999", "447700900999", "12345", "+12345"] {
            let owner = db.number_owner(to).unwrap();
            assert_eq!(owner.map(|o| o.account_id), Some("acc_1".into()), "{to}");
        }
        assert!(db.number_owner("54321").unwrap().is_none());
    }
}
