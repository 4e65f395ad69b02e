//! Routing kept in sync while the server runs: the directory in the database (edited by the
//! CLI) and the configuration file are polled, and the fleet is brought in line.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use super::connector::ConnectorEvent;
use super::fleet::{Declared, Directory, Fleet, SANDBOX};
use super::router::Router;
use super::sandbox::Sandbox;
use super::{Delivery, DeliveryDeps, DeliveryError};
use crate::config::Config;
use crate::data::sealing::Sealer;
use crate::store::Store;

/// How often the routing directory's version is checked.
const ROUTING_POLL: Duration = Duration::from_secs(1);

/// The configuration file's identity, to notice edits.
fn file_stamp(path: &std::path::Path) -> Option<std::time::SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// Keeps the running connectors and routes in line with the routing directory (the CLI
/// edits it while the server runs) and the configuration file (only its connectors and routes
/// are re-read; other settings take a restart).
pub struct RoutingSync {
    fleet: Fleet,
    declared: Declared,
    /// The configuration whose connectors and routes are in force.
    config: Config,
    sealer: Sealer,
    store: Arc<Store>,
    /// The directory version in force.
    seen: i64,
}

impl RoutingSync {
    /// Starts the sandbox and every configured connector; returns the first router.
    pub fn start(
        deps: &DeliveryDeps,
        config: &Config,
        events: mpsc::Sender<ConnectorEvent>,
    ) -> Result<(Self, Router), DeliveryError> {
        let sandbox = Sandbox::new(SANDBOX, config.sandbox.clone(), events.clone());
        let mut fleet = Fleet::new(sandbox, deps.sealer.clone(), deps.clock.clone(), events);
        let seen = deps.store.read(|tx| tx.routing_version())?;
        let mut declared = Declared::default();
        let mut directory = Directory::load(&deps.store)?;
        declared.merge_into(&mut directory, config, &deps.sealer);
        let router = fleet.start(directory);
        let sync = Self {
            fleet,
            declared,
            config: config.clone(),
            sealer: deps.sealer.clone(),
            store: deps.store.clone(),
            seen,
        };
        Ok((sync, router))
    }

    /// Rebuilds the router whenever the directory or the configuration file changes, until
    /// stopped. One point read and one `stat` a second; connectors that did not change keep
    /// their links.
    pub async fn run(mut self, delivery: Arc<Delivery>, mut stop: watch::Receiver<bool>) {
        let config_file = self
            .config
            .source_file
            .clone()
            .unwrap_or_else(|| self.config.data_dir.join("rampart.toml"));
        let mut seen_file = file_stamp(&config_file);
        let mut tick = tokio::time::interval(ROUTING_POLL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.changed() => return,
            }
            let version = match self.store.read(|tx| tx.routing_version()) {
                Ok(version) => version,
                Err(e) => {
                    tracing::error!(error = %e, "cannot read the routing version");
                    continue;
                }
            };
            let file = file_stamp(&config_file);
            if version == self.seen && file == seen_file {
                continue;
            }
            if file != seen_file {
                seen_file = file;
                match Config::load(&self.config.data_dir, Some(&config_file)) {
                    Ok(config) => {
                        self.config.connectors = config.connectors;
                        self.config.routes = config.routes;
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "configuration file not reloaded; keeping its previous connectors and routes")
                    }
                }
            }
            match Directory::load(&self.store) {
                Ok(mut directory) => {
                    tracing::info!(version, "routing changed; reloading connectors and routes");
                    self.declared
                        .merge_into(&mut directory, &self.config, &self.sealer);
                    self.fleet.apply(&delivery, directory).await;
                    self.seen = version;
                }
                Err(e) => tracing::error!(error = %e, "cannot read the routing directory"),
            }
        }
    }
}
