//! The running connectors, kept across routing reloads: the router is rebuilt from the
//! directory in the database, connectors whose settings did not change keep their links,
//! removed or changed ones are shut down (their unanswered messages go back to the queue) and
//! new ones are started.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::mpsc;

use super::Delivery;
use super::connector::{Connector, ConnectorEvent};
use super::router::{Route, Router};
use super::sandbox::Sandbox;
use super::smpp::SmppConnector;
use super::smpp_config::smpp_config;
use crate::clock::SharedClock;
use crate::config::{Config, DeclaredConnector};
use crate::data::sealing::{Field, Sealer};
use crate::store::routing::{ConnectorRecord, RouteRecord};
use crate::store::{Store, StoreError};
use zeroize::Zeroizing;

/// The built-in connector's name; it always exists.
pub const SANDBOX: &str = "sandbox";

/// The routing directory as read from the database.
#[derive(Debug, Clone, Default)]
pub struct Directory {
    pub connectors: Vec<ConnectorRecord>,
    pub routes: Vec<Route>,
    /// Accounts whose messages follow the routes; the others' go to the sandbox.
    pub live_accounts: Vec<String>,
}

impl Directory {
    /// Reads connectors and routes (a handful of rows).
    pub fn load(store: &Store) -> Result<Self, StoreError> {
        store.read(|tx| {
            Ok(Self {
                connectors: tx.list_connectors()?,
                routes: tx.list_routes()?.into_iter().map(Route::from).collect(),
                live_accounts: tx.live_accounts()?,
            })
        })
    }
}

impl From<RouteRecord> for Route {
    fn from(r: RouteRecord) -> Self {
        Self {
            prefix: r.prefix,
            connector: r.connector,
            priority: r.priority,
        }
    }
}

/// Connectors and routes from the configuration file, turned into directory entries. Sealed
/// passwords are kept while a password file is unchanged, so that an unchanged declaration
/// compares equal across reloads and its connector keeps its link.
#[derive(Default)]
pub struct Declared {
    sealed: HashMap<String, ([u8; 32], Vec<u8>)>,
}

impl Declared {
    /// Adds the file's connectors and routes to `directory`. A declared connector replaces a
    /// stored one of the same name. A connector whose password file cannot be read is left
    /// out (and logged), like any connector that cannot start.
    pub fn merge_into(&mut self, directory: &mut Directory, config: &Config, sealer: &Sealer) {
        for declared in &config.connectors {
            match self.row(declared, sealer) {
                Ok(row) => {
                    directory
                        .connectors
                        .retain(|stored| stored.name != row.name);
                    directory.connectors.push(row);
                }
                Err(e) => {
                    tracing::error!(connector = %declared.name, error = %e, "declared connector left out")
                }
            }
        }
        for declared in &config.routes {
            let route = Route {
                prefix: declared.prefix.clone(),
                connector: declared.connector.clone(),
                priority: declared.priority,
            };
            if !directory.routes.contains(&route) {
                directory.routes.push(route);
            }
        }
    }

    fn row(
        &mut self,
        declared: &DeclaredConnector,
        sealer: &Sealer,
    ) -> Result<ConnectorRecord, DeclaredError> {
        use sha2::{Digest, Sha256};
        // Checked at every read, as the file may change while the server runs.
        crate::data::permissions::require_owner_only(&[&declared.password_file])?;
        let text = Zeroizing::new(std::fs::read_to_string(&declared.password_file).map_err(
            |source| DeclaredError::PasswordFile {
                path: declared.password_file.display().to_string(),
                source,
            },
        )?);
        let password = text.trim_end_matches(['\r', '\n']);
        let digest: [u8; 32] = Sha256::digest(password.as_bytes()).into();
        let sealed = match self.sealed.get(&declared.name) {
            Some((seen, sealed)) if *seen == digest => sealed.clone(),
            _ => {
                let sealed = sealer.seal(
                    Field::ConnectorPassword,
                    "",
                    &declared.name,
                    password.as_bytes(),
                )?;
                self.sealed
                    .insert(declared.name.clone(), (digest, sealed.clone()));
                sealed
            }
        };
        Ok(ConnectorRecord {
            name: declared.name.clone(),
            kind: "smpp".into(),
            host: declared.host.clone(),
            port: declared.port,
            system_id: declared.system_id.clone(),
            password_sealed: sealed,
            tls: declared.tls || declared.tls_ca_file.is_some(),
            tls_ca_file: declared
                .tls_ca_file
                .as_ref()
                .map(|p| p.display().to_string()),
            window: declared.window,
            max_rate: declared.max_rate,
            options: serde_json::Value::Object(declared.options.clone()).to_string(),
            created_at: 0,
        })
    }
}

/// Why a declared connector was left out.
#[derive(Debug, thiserror::Error)]
pub enum DeclaredError {
    /// Its password file could not be read.
    #[error("cannot read the password file {path}: {source}")]
    PasswordFile {
        path: String,
        source: std::io::Error,
    },
    /// Others may read its password file, or it is another user's.
    #[error(transparent)]
    PasswordFileExposed(#[from] crate::data::permissions::Exposed),
    /// The password could not be sealed.
    #[error(transparent)]
    Keyring(#[from] crate::data::KeyringError),
}

/// The connectors this server runs.
pub struct Fleet {
    sandbox: Arc<Sandbox>,
    sealer: Sealer,
    clock: SharedClock,
    events: mpsc::Sender<ConnectorEvent>,
    running: HashMap<String, (ConnectorRecord, Arc<SmppConnector>)>,
    routes: Vec<Route>,
    live_accounts: Vec<String>,
}

impl Fleet {
    pub fn new(
        sandbox: Arc<Sandbox>,
        sealer: Sealer,
        clock: SharedClock,
        events: mpsc::Sender<ConnectorEvent>,
    ) -> Self {
        Self {
            sandbox,
            sealer,
            clock,
            events,
            running: HashMap::new(),
            routes: Vec::new(),
            live_accounts: Vec::new(),
        }
    }

    /// Starts every connector of `directory` and returns the first router.
    pub fn start(&mut self, directory: Directory) -> Router {
        self.routes = directory.routes;
        self.live_accounts = directory.live_accounts;
        for row in directory.connectors {
            self.launch(row);
        }
        self.router()
    }

    /// Brings the running connectors in line with `directory` and installs the new router.
    pub async fn apply(&mut self, delivery: &Delivery, directory: Directory) {
        self.routes = directory.routes;
        self.live_accounts = directory.live_accounts;
        let wanted: HashMap<&str, &ConnectorRecord> = directory
            .connectors
            .iter()
            .map(|row| (row.name.as_str(), row))
            .collect();
        let retired: Vec<String> = self
            .running
            .iter()
            .filter(|(name, (row, _))| wanted.get(name.as_str()) != Some(&row))
            .map(|(name, _)| name.clone())
            .collect();
        if !retired.is_empty() {
            let stopping: Vec<_> = retired
                .iter()
                .filter_map(|name| self.running.remove(name))
                .collect();
            // Route around them first, so nothing new is handed to a connector that stops.
            delivery.set_router(self.router());
            for (row, connector) in stopping {
                tracing::info!(connector = %row.name, "stopping connector (removed or changed)");
                connector.shutdown().await;
            }
        }
        for row in directory.connectors {
            if !self.running.contains_key(&row.name) {
                self.launch(row);
            }
        }
        delivery.set_router(self.router());
    }

    fn launch(&mut self, row: ConnectorRecord) {
        if row.name == SANDBOX {
            tracing::error!("a stored connector may not be named `sandbox`; ignored");
            return;
        }
        let spawned = smpp_config(&row, &self.sealer).and_then(|config| {
            SmppConnector::spawn(&row.name, config, self.clock.clone(), self.events.clone())
        });
        match spawned {
            Ok(connector) => {
                tracing::info!(connector = %row.name, host = %row.host, port = row.port, tls = row.tls, "connector started");
                if !row.tls {
                    tracing::warn!(
                        connector = %row.name,
                        host = %row.host,
                        "SMPP connector without TLS: numbers, message bodies and the bind password cross the network in clear, and anyone on the path can inject receipts and inbound messages"
                    );
                }
                self.running.insert(row.name.clone(), (row, connector));
            }
            // A connector that cannot start must not stop the others: its routes fail over.
            Err(e) => tracing::error!(error = %e, "connector not started"),
        }
    }

    /// The router over the sandbox and the running connectors. Accounts in sandbox mode are
    /// delivered by the sandbox; live ones follow the routes, and with none matching their
    /// messages fail with `no_route` (never "delivered" by the simulator).
    fn router(&self) -> Router {
        let mut connectors: Vec<Arc<dyn Connector>> = vec![self.sandbox.clone()];
        let mut names: Vec<&String> = self.running.keys().collect();
        names.sort();
        for name in names {
            if let Some((_, connector)) = self.running.get(name) {
                connectors.push(connector.clone());
            }
        }
        Router::new(connectors, self.routes.clone())
            .with_live_accounts(self.live_accounts.iter().cloned(), SANDBOX)
    }
}
