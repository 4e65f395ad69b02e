//! Routing: which connector carries a message, by destination prefix and priority, skipping
//! connectors that are down (failover).

use std::sync::Arc;

use super::connector::Connector;

/// A route: destinations starting with `prefix` (E.164 with `+`; empty matches all) go to
/// `connector`; among matching routes the longest prefix wins, then the lowest priority number.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Route {
    pub prefix: String,
    pub connector: String,
    pub priority: i64,
}

/// The routing table with the live connectors it points at.
#[derive(Default)]
pub struct Router {
    connectors: Vec<Arc<dyn Connector>>,
    routes: Vec<Route>,
}

impl Router {
    /// Routes are ordered once here, so `pick` only walks them.
    pub fn new(connectors: Vec<Arc<dyn Connector>>, mut routes: Vec<Route>) -> Self {
        routes.sort_by(|a, b| {
            b.prefix
                .len()
                .cmp(&a.prefix.len())
                .then(a.priority.cmp(&b.priority))
        });
        Self { connectors, routes }
    }

    pub fn connectors(&self) -> &[Arc<dyn Connector>] {
        &self.connectors
    }

    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    pub fn connector(&self, name: &str) -> Option<&Arc<dyn Connector>> {
        self.connectors.iter().find(|c| c.name() == name)
    }

    /// The first live connector on the best matching route, or `None` when every candidate
    /// is down (the message waits and retries) or no route matches.
    pub fn pick(&self, to: &str) -> Option<&Arc<dyn Connector>> {
        self.routes
            .iter()
            .filter(|route| to.starts_with(&route.prefix))
            .filter_map(|route| self.connector(&route.connector))
            .find(|connector| connector.is_up())
    }

    /// Whether any route matches `to` at all (to tell "no route" from "all down").
    pub fn has_route(&self, to: &str) -> bool {
        self.routes
            .iter()
            .any(|route| to.starts_with(&route.prefix))
    }
}
