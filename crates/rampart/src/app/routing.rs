//! Use cases of the routing directory, for the operator: connectors to carriers (their bind
//! password sealed), routes by destination prefix, and the numbers we receive on. A running
//! server sees every change within a second.

use std::path::PathBuf;

use secrecy::{ExposeSecret, SecretString};

use super::audit::{Action, Actor, AuditEvent};
use super::{App, AppError};
use crate::data::sealing::Field;
use crate::delivery::fleet::SANDBOX;
use crate::delivery::router::Route;
use crate::delivery::smpp_config::{self, SmppOptions};
use crate::messaging::PhoneNumber;
use crate::store::routing::{ConnectorRecord, NumberRecord, RouteRecord};

/// An SMPP connector to add.
#[derive(Debug)]
pub struct NewSmppConnector {
    /// Letters, digits, `-` and `_`; used in routes and metrics.
    pub name: String,
    pub host: String,
    pub port: u16,
    pub system_id: String,
    pub password: SecretString,
    pub tls: bool,
    /// A PEM file of extra trusted roots for the SMSC (implies TLS).
    pub tls_ca_file: Option<PathBuf>,
    pub window: usize,
    pub max_rate: Option<u32>,
    /// Further tunables as `KEY=VALUE`.
    pub options: Vec<String>,
}

impl App {
    /// Adds an SMPP connector, refusing now what the server could not start later.
    pub async fn add_smpp_connector(
        &self,
        actor: &Actor,
        new: NewSmppConnector,
    ) -> Result<ConnectorRecord, AppError> {
        let valid_name = !new.name.is_empty()
            && new.name.len() <= 64
            && new
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !valid_name {
            return Err(invalid(
                "the name must be 1 to 64 letters, digits, `-` or `_`",
                "name",
            ));
        }
        if new.name == SANDBOX {
            return Err(invalid(
                "`sandbox` is the built-in connector's name",
                "name",
            ));
        }
        let options = parse_options(&new.name, &new.options)?;
        let tls_ca_file = new
            .tls_ca_file
            .as_ref()
            .map(|path| {
                std::fs::canonicalize(path)
                    .map_err(|e| invalid(format!("cannot read {}: {e}", path.display()), "tls_ca"))
            })
            .transpose()?;
        let ca_pem = tls_ca_file
            .as_ref()
            .map(std::fs::read_to_string)
            .transpose()
            .map_err(|e| invalid(format!("cannot read the CA file: {e}"), "tls_ca"))?;
        let now = self.clock.now_ms();
        let mut row = ConnectorRecord {
            name: new.name.clone(),
            kind: "smpp".into(),
            host: new.host,
            port: new.port,
            system_id: new.system_id,
            password_sealed: Vec::new(),
            tls: new.tls || tls_ca_file.is_some(),
            tls_ca_file: tls_ca_file.map(|p| p.display().to_string()),
            window: new.window,
            max_rate: new.max_rate,
            options,
            created_at: now,
        };
        smpp_config::build(&row, new.password.clone(), ca_pem)
            .map_err(|e| invalid(e.to_string(), "connector"))?;
        row.password_sealed = self.sealer.seal(
            Field::ConnectorPassword,
            "",
            &row.name,
            new.password.expose_secret().as_bytes(),
        )?;
        let (stored, audit) = (
            row.clone(),
            AuditEvent::instance(actor, Action::ConnectorAdded, &row.name, now),
        );
        let added = self
            .write_audited(audit, move |tx| tx.insert_connector(&stored), |x| *x)
            .await?;
        if !added {
            return Err(AppError::conflict(
                "connector_exists",
                format!(
                    "a connector named {} exists already; remove it first",
                    row.name
                ),
            ));
        }
        Ok(row)
    }

    /// The stored connectors (their settings; the password stays sealed).
    pub fn list_connectors(&self) -> Result<Vec<ConnectorRecord>, AppError> {
        Ok(self.store.read(|tx| tx.list_connectors())?)
    }

    /// Removes a connector and the routes that use it; returns how many routes went with it.
    pub async fn remove_connector(&self, actor: &Actor, name: &str) -> Result<usize, AppError> {
        let now = self.clock.now_ms();
        let (target, audit) = (
            name.to_owned(),
            AuditEvent::instance(actor, Action::ConnectorRemoved, name, now),
        );
        let removed = self
            .write_audited(
                audit,
                move |tx| tx.delete_connector(&target),
                |x| x.is_some(),
            )
            .await?;
        removed.ok_or(AppError::NotFound("connector"))
    }

    /// Sends destinations starting with `prefix` through `connector` (lower priority first);
    /// an existing route of that prefix and connector gets the new priority.
    pub async fn set_route(&self, actor: &Actor, route: Route) -> Result<(), AppError> {
        let digits = route.prefix.strip_prefix('+');
        let valid = route.prefix.is_empty()
            || digits.is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()));
        if !valid {
            return Err(invalid(
                "a prefix is `+` and digits (like +44), or empty for every destination",
                "prefix",
            ));
        }
        let exists = route.connector == SANDBOX
            || self
                .store
                .read(|tx| tx.connector_exists(&route.connector))?;
        if !exists {
            return Err(AppError::NotFound("connector"));
        }
        let now = self.clock.now_ms();
        let target = format!("{}->{}", route.prefix, route.connector);
        let audit = AuditEvent::instance(actor, Action::RouteSet, target, now);
        let record = RouteRecord {
            prefix: route.prefix,
            connector: route.connector,
            priority: route.priority,
        };
        self.store
            .write(move |tx| {
                tx.upsert_route(&record, now)?;
                audit.record(tx)
            })
            .await?;
        Ok(())
    }

    /// The stored routes.
    pub fn list_routes(&self) -> Result<Vec<Route>, AppError> {
        let routes = self.store.read(|tx| tx.list_routes())?;
        Ok(routes.into_iter().map(Route::from).collect())
    }

    /// Removes a route.
    pub async fn remove_route(
        &self,
        actor: &Actor,
        prefix: &str,
        connector: &str,
    ) -> Result<(), AppError> {
        let now = self.clock.now_ms();
        let (p, c) = (prefix.to_owned(), connector.to_owned());
        let audit = AuditEvent::instance(
            actor,
            Action::RouteRemoved,
            format!("{prefix}->{connector}"),
            now,
        );
        let removed = self
            .write_audited(audit, move |tx| tx.delete_route(&p, &c), |x| *x)
            .await?;
        if removed {
            Ok(())
        } else {
            Err(AppError::NotFound("route"))
        }
    }

    /// Assigns one of our numbers to an account: messages sent to it arrive in that account.
    pub async fn assign_number(
        &self,
        actor: &Actor,
        number: &str,
        account_id: &str,
    ) -> Result<NumberRecord, AppError> {
        let number = parse_number(number)?;
        if self.store.read(|tx| tx.get_account(account_id))?.is_none() {
            return Err(AppError::NotFound("account"));
        }
        let now = self.clock.now_ms();
        let row = NumberRecord {
            number: number.clone(),
            account_id: account_id.to_owned(),
            created_at: now,
        };
        let mut audit = AuditEvent::instance(actor, Action::NumberAssigned, &number, now);
        audit.account_id = Some(account_id.to_owned());
        let stored = row.clone();
        let added = self
            .write_audited(audit, move |tx| tx.insert_number(&stored), |x| *x)
            .await?;
        if !added {
            return Err(AppError::conflict(
                "number_taken",
                format!("{number} is assigned already; remove it first"),
            ));
        }
        Ok(row)
    }

    /// Every number and its account.
    pub fn list_numbers(&self) -> Result<Vec<NumberRecord>, AppError> {
        Ok(self.store.read(|tx| tx.list_numbers(None))?)
    }

    /// Removes one of our numbers; returns it as normalised.
    pub async fn remove_number(&self, actor: &Actor, number: &str) -> Result<String, AppError> {
        let number = parse_number(number).unwrap_or_else(|_| number.to_owned());
        let now = self.clock.now_ms();
        let (target, audit) = (
            number.clone(),
            AuditEvent::instance(actor, Action::NumberRemoved, &number, now),
        );
        let removed = self
            .write_audited(audit, move |tx| tx.delete_number(&target), |x| *x)
            .await?;
        if removed {
            Ok(number)
        } else {
            Err(AppError::NotFound("number"))
        }
    }
}

fn invalid(message: impl Into<String>, field: &str) -> AppError {
    AppError::invalid("invalid_setting", message, field)
}

/// An E.164 number (normalised) or a short code (digits only).
fn parse_number(number: &str) -> Result<String, AppError> {
    let trimmed = number.trim();
    if trimmed.starts_with('+') {
        return PhoneNumber::parse(trimmed)
            .map(|n| n.as_str().to_owned())
            .map_err(|e| AppError::invalid("invalid_phone_number", e.to_string(), "number"));
    }
    if (3..=15).contains(&trimmed.len()) && trimmed.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(trimmed.to_owned());
    }
    Err(AppError::invalid(
        "invalid_phone_number",
        "a number is + and the international number, or a short code of 3 to 15 digits",
        "number",
    ))
}

/// `KEY=VALUE` pairs into the options JSON, checked against [`SmppOptions`]. Values that read
/// as JSON (numbers, booleans) are taken as such, anything else as a string.
fn parse_options(name: &str, pairs: &[String]) -> Result<String, AppError> {
    let mut object = serde_json::Map::new();
    for pair in pairs {
        let (key, value) = pair
            .split_once('=')
            .ok_or_else(|| invalid(format!("option {pair}: expected KEY=VALUE"), "options"))?;
        let value = serde_json::from_str::<serde_json::Value>(value)
            .ok()
            .filter(|v| v.is_number() || v.is_boolean())
            .unwrap_or_else(|| serde_json::Value::String(value.to_owned()));
        object.insert(key.trim().to_owned(), value);
    }
    let json = serde_json::Value::Object(object).to_string();
    SmppOptions::parse(name, &json).map_err(|e| invalid(e.to_string(), "options"))?;
    Ok(json)
}
