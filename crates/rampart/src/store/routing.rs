//! The routing directory: connectors (their settings, the password sealed), routes, and the
//! numbers we receive on with the account that owns each. Every change bumps
//! `routing_version` (by trigger), which the running server polls to reload.

use rusqlite::{Connection, OptionalExtension, Row, params};

use super::StoreError;
use crate::clock::Millis;
use crate::delivery::router::Route;

/// A configured connector as stored (the password still sealed).
#[derive(Clone, PartialEq, Eq)]
pub struct ConnectorRow {
    pub name: String,
    /// Only `smpp` for now.
    pub kind: String,
    pub host: String,
    pub port: u16,
    pub system_id: String,
    /// Sealed by the keyring under `connector-password:<name>`.
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

impl std::fmt::Debug for ConnectorRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectorRow")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .finish_non_exhaustive()
    }
}

/// Context the connector password is sealed under, so it cannot be moved to another row.
pub fn password_context(name: &str) -> String {
    format!("connector-password:{name}")
}

const CONNECTOR_COLUMNS: &str = "name, kind, host, port, system_id, password_sealed, tls, tls_ca_file, \
     window_size, max_rate, options, created_at";

fn connector_from_row(r: &Row<'_>) -> rusqlite::Result<ConnectorRow> {
    let window: i64 = r.get(8)?;
    Ok(ConnectorRow {
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

/// Adds a connector; false when one of that name exists already.
pub fn insert_connector(conn: &Connection, row: &ConnectorRow) -> Result<bool, StoreError> {
    let added = conn
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

pub fn list_connectors(conn: &Connection) -> Result<Vec<ConnectorRow>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {CONNECTOR_COLUMNS} FROM connectors ORDER BY name"
    ))?;
    let rows = stmt.query_map([], connector_from_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub fn connector_exists(conn: &Connection, name: &str) -> Result<bool, StoreError> {
    Ok(conn
        .prepare_cached("SELECT 1 FROM connectors WHERE name = ?1")?
        .query_row([name], |_| Ok(()))
        .optional()?
        .is_some())
}

/// Removes a connector and the routes that point at it; `None` when there was no such
/// connector, else how many routes went with it.
pub fn delete_connector(conn: &Connection, name: &str) -> Result<Option<usize>, StoreError> {
    let removed = conn
        .prepare_cached("DELETE FROM connectors WHERE name = ?1")?
        .execute([name])?;
    if removed == 0 {
        return Ok(None);
    }
    let routes = conn
        .prepare_cached("DELETE FROM routes WHERE connector = ?1")?
        .execute([name])?;
    Ok(Some(routes))
}

/// Adds a route, or changes the priority of the existing route with that prefix and connector.
pub fn upsert_route(conn: &Connection, route: &Route, now: Millis) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO routes (prefix, connector, priority, created_at) VALUES (?1, ?2, ?3, ?4) \
         ON CONFLICT (prefix, connector) DO UPDATE SET priority = excluded.priority",
    )?
    .execute(params![route.prefix, route.connector, route.priority, now])?;
    Ok(())
}

pub fn list_routes(conn: &Connection) -> Result<Vec<Route>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT prefix, connector, priority FROM routes ORDER BY prefix, priority, connector",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(Route {
            prefix: r.get(0)?,
            connector: r.get(1)?,
            priority: r.get(2)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Removes a route; false when there was none.
pub fn delete_route(conn: &Connection, prefix: &str, connector: &str) -> Result<bool, StoreError> {
    Ok(conn
        .prepare_cached("DELETE FROM routes WHERE prefix = ?1 AND connector = ?2")?
        .execute([prefix, connector])?
        == 1)
}

/// One of our numbers and its owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NumberRow {
    pub number: String,
    pub account_id: String,
    pub created_at: Millis,
}

/// Assigns a number to an account; false when the number is taken already.
pub fn insert_number(conn: &Connection, row: &NumberRow) -> Result<bool, StoreError> {
    Ok(conn
        .prepare_cached(
            "INSERT INTO numbers (number, account_id, created_at) VALUES (?1, ?2, ?3) \
             ON CONFLICT (number) DO NOTHING",
        )?
        .execute(params![row.number, row.account_id, row.created_at])?
        == 1)
}

/// Every number, or one account's numbers.
pub fn list_numbers(
    conn: &Connection,
    account_id: Option<&str>,
) -> Result<Vec<NumberRow>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT number, account_id, created_at FROM numbers \
         WHERE ?1 IS NULL OR account_id = ?1 ORDER BY number",
    )?;
    let rows = stmt.query_map([account_id], |r| {
        Ok(NumberRow {
            number: r.get(0)?,
            account_id: r.get(1)?,
            created_at: r.get(2)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub fn delete_number(conn: &Connection, number: &str) -> Result<bool, StoreError> {
    Ok(conn
        .prepare_cached("DELETE FROM numbers WHERE number = ?1")?
        .execute([number])?
        == 1)
}

/// Who owns the number a message was sent to. Carriers write the destination with or without
/// the `+` (the type of number says which), so both spellings are tried.
pub fn number_owner(conn: &Connection, to: &str) -> Result<Option<NumberRow>, StoreError> {
    let digits = to.strip_prefix('+').unwrap_or(to);
    let plus = format!("+{digits}");
    Ok(conn
        .prepare_cached(
            "SELECT number, account_id, created_at FROM numbers WHERE number IN (?1, ?2) \
             ORDER BY number = ?3 DESC LIMIT 1",
        )?
        .query_row(params![digits, plus, to], |r| {
            Ok(NumberRow {
                number: r.get(0)?,
                account_id: r.get(1)?,
                created_at: r.get(2)?,
            })
        })
        .optional()?)
}

/// The counter every change to the directory bumps.
pub fn routing_version(conn: &Connection) -> Result<i64, StoreError> {
    Ok(conn
        .prepare_cached("SELECT version FROM routing_version WHERE id = 1")?
        .query_row([], |r| r.get(0))?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db() -> (tempfile::TempDir, Connection) {
        let dir = tempfile::tempdir().unwrap();
        let store = super::super::Store::open(&dir.path().join("t.db")).unwrap();
        store.close();
        let conn = Connection::open(dir.path().join("t.db")).unwrap();
        (dir, conn)
    }

    #[test]
    fn every_directory_change_bumps_the_version() {
        let (_dir, conn) = db();
        let v0 = routing_version(&conn).unwrap();
        let route = Route {
            prefix: "+44".into(),
            connector: "sandbox".into(),
            priority: 0,
        };
        upsert_route(&conn, &route, 1).unwrap();
        let v1 = routing_version(&conn).unwrap();
        assert!(v1 > v0);
        assert!(delete_route(&conn, "+44", "sandbox").unwrap());
        assert!(routing_version(&conn).unwrap() > v1);
    }

    #[test]
    fn numbers_match_with_or_without_the_plus() {
        let (_dir, conn) = db();
        conn.execute(
            "INSERT INTO accounts (id, name, created_at) VALUES ('acc_1', 'a', 0)",
            [],
        )
        .unwrap();
        for number in ["+447700900999", "12345"] {
            let row = NumberRow {
                number: number.into(),
                account_id: "acc_1".into(),
                created_at: 0,
            };
            assert!(insert_number(&conn, &row).unwrap());
            assert!(!insert_number(&conn, &row).unwrap());
        }
        for to in ["+447700900999", "447700900999", "12345", "+12345"] {
            let owner = number_owner(&conn, to).unwrap();
            assert_eq!(owner.map(|o| o.account_id), Some("acc_1".into()), "{to}");
        }
        assert!(number_owner(&conn, "54321").unwrap().is_none());
    }
}
