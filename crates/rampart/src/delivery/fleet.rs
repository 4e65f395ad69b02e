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
use crate::data::Keyring;
use crate::store::routing::ConnectorRow;
use crate::store::{self, Store, StoreError};

/// The built-in connector's name; it always exists.
pub const SANDBOX: &str = "sandbox";

/// The routing directory as read from the database.
#[derive(Debug, Clone, Default)]
pub struct Directory {
    pub connectors: Vec<ConnectorRow>,
    pub routes: Vec<Route>,
}

impl Directory {
    /// Reads connectors and routes (a handful of rows).
    pub fn load(store: &Store) -> Result<Self, StoreError> {
        store.read(|c| {
            Ok(Self {
                connectors: store::routing::list_connectors(c)?,
                routes: store::routing::list_routes(c)?,
            })
        })
    }
}

/// The connectors this server runs.
pub struct Fleet {
    sandbox: Arc<Sandbox>,
    keyring: Arc<Keyring>,
    clock: SharedClock,
    events: mpsc::Sender<ConnectorEvent>,
    running: HashMap<String, (ConnectorRow, Arc<SmppConnector>)>,
    routes: Vec<Route>,
}

impl Fleet {
    pub fn new(
        sandbox: Arc<Sandbox>,
        keyring: Arc<Keyring>,
        clock: SharedClock,
        events: mpsc::Sender<ConnectorEvent>,
    ) -> Self {
        Self {
            sandbox,
            keyring,
            clock,
            events,
            running: HashMap::new(),
            routes: Vec::new(),
        }
    }

    /// Starts every connector of `directory` and returns the first router.
    pub fn start(&mut self, directory: Directory) -> Router {
        self.routes = directory.routes;
        for row in directory.connectors {
            self.launch(row);
        }
        self.router()
    }

    /// Brings the running connectors in line with `directory` and installs the new router.
    pub async fn apply(&mut self, delivery: &Delivery, directory: Directory) {
        self.routes = directory.routes;
        let wanted: HashMap<&str, &ConnectorRow> = directory
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

    fn launch(&mut self, row: ConnectorRow) {
        if row.name == SANDBOX {
            tracing::error!("a stored connector may not be named `sandbox`; ignored");
            return;
        }
        let spawned = smpp_config(&row, &self.keyring).and_then(|config| {
            SmppConnector::spawn(&row.name, config, self.clock.clone(), self.events.clone())
        });
        match spawned {
            Ok(connector) => {
                tracing::info!(connector = %row.name, host = %row.host, port = row.port, tls = row.tls, "connector started");
                self.running.insert(row.name.clone(), (row, connector));
            }
            // A connector that cannot start must not stop the others: its routes fail over.
            Err(e) => tracing::error!(error = %e, "connector not started"),
        }
    }

    /// The router over the sandbox and the running connectors. Without any configured route,
    /// everything goes to the sandbox.
    fn router(&self) -> Router {
        let mut connectors: Vec<Arc<dyn Connector>> = vec![self.sandbox.clone()];
        let mut names: Vec<&String> = self.running.keys().collect();
        names.sort();
        for name in names {
            if let Some((_, connector)) = self.running.get(name) {
                connectors.push(connector.clone());
            }
        }
        let routes = if self.routes.is_empty() {
            vec![Route {
                prefix: String::new(),
                connector: SANDBOX.into(),
                priority: 0,
            }]
        } else {
            self.routes.clone()
        };
        Router::new(connectors, routes)
    }
}
