//! Routing: which connector carries a message, by destination prefix and priority, skipping
//! connectors that are down (failover).

use std::collections::HashSet;
use std::sync::Arc;

use super::connector::Connector;

/// A route: destinations starting with `prefix` (E.164 with `+`; empty matches all) go to
/// `connector`; among matching routes the longest prefix wins, then the lowest priority number.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Route {
    pub prefix: String,
    pub connector: String,
    #[serde(default)]
    pub priority: i64,
}

/// The routing table with the live connectors it points at.
#[derive(Default)]
pub struct Router {
    connectors: Vec<Arc<dyn Connector>>,
    routes: Vec<Route>,
    /// When set: the accounts whose messages follow the routes, and the connector that
    /// delivers everyone else's (the sandbox). Unset: every account follows the routes.
    modes: Option<(HashSet<String>, String)>,
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
        Self {
            connectors,
            routes,
            modes: None,
        }
    }

    /// Sends the messages of accounts not in `live` to connector `sandbox`.
    pub fn with_live_accounts(
        mut self,
        live: impl IntoIterator<Item = String>,
        sandbox: &str,
    ) -> Self {
        self.modes = Some((live.into_iter().collect(), sandbox.to_owned()));
        self
    }

    /// The sandbox connector, when `account` is in sandbox mode.
    pub fn sandbox_for(&self, account: &str) -> Option<&Arc<dyn Connector>> {
        let (live, sandbox) = self.modes.as_ref()?;
        if live.contains(account) {
            return None;
        }
        self.connector(sandbox)
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

    /// The first live connector, by priority, among the routes with the longest prefix that
    /// matches `to`. Failover stays within that prefix: when its connectors are all down the
    /// message waits rather than leaking to a less specific route (a country's traffic may be
    /// bound to the carriers licensed for it). `None` when nothing matches or all are down.
    pub fn pick(&self, to: &str) -> Option<&Arc<dyn Connector>> {
        let best = self
            .routes
            .iter()
            .find(|route| to.starts_with(&route.prefix))?;
        self.routes
            .iter()
            .filter(|route| route.prefix == best.prefix)
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

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;
    use crate::delivery::connector::{BoxFuture, ConnectorStatus, ConnectorUnavailable, Outbound};

    /// A connector that is only a name and an up/down switch: routing looks at nothing else.
    struct Link(&'static str, AtomicBool);

    impl Connector for Link {
        fn name(&self) -> &str {
            self.0
        }
        fn submit(&self, _: Outbound) -> BoxFuture<'_, Result<(), ConnectorUnavailable>> {
            Box::pin(async { Ok(()) })
        }
        fn is_up(&self) -> bool {
            self.1.load(Ordering::SeqCst)
        }
        fn status(&self) -> ConnectorStatus {
            ConnectorStatus {
                name: self.0.into(),
                kind: "test",
                up: self.is_up(),
                in_flight: 0,
                window: None,
                submitted: 0,
                errors: 0,
                tls: None,
                inbound_dropped: 0,
            }
        }
        fn shutdown(&self) -> BoxFuture<'_, ()> {
            Box::pin(async {})
        }
    }

    fn route(prefix: &str, connector: &str, priority: i64) -> Route {
        Route {
            prefix: prefix.into(),
            connector: connector.into(),
            priority,
        }
    }

    fn router() -> (Router, [Arc<Link>; 3]) {
        let links = [
            Arc::new(Link("uk-main", AtomicBool::new(true))),
            Arc::new(Link("uk-backup", AtomicBool::new(true))),
            Arc::new(Link("world", AtomicBool::new(true))),
        ];
        let connectors: Vec<Arc<dyn Connector>> = links
            .iter()
            .map(|l| l.clone() as Arc<dyn Connector>)
            .collect();
        let routes = vec![
            route("", "world", 0),
            route("+44", "uk-backup", 1),
            route("+44", "uk-main", 0),
        ];
        (Router::new(connectors, routes), links)
    }

    #[test]
    fn the_longest_prefix_wins_then_the_lowest_priority() {
        let (router, _) = router();
        assert_eq!(
            router.pick("+447400123456").map(|c| c.name()),
            Some("uk-main")
        );
        assert_eq!(router.pick("+33612345678").map(|c| c.name()), Some("world"));
    }

    #[test]
    fn a_down_connector_fails_over_within_its_prefix_but_never_to_a_shorter_one() {
        let (router, links) = router();
        links[0].1.store(false, Ordering::SeqCst);
        assert_eq!(
            router.pick("+447400123456").map(|c| c.name()),
            Some("uk-backup")
        );
        links[1].1.store(false, Ordering::SeqCst);
        assert!(router.pick("+447400123456").is_none());
        assert!(router.has_route("+447400123456"));
    }
}
