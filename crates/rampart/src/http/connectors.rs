//! `/v1/connectors`: the live state of every connector and the routing table in force. It is
//! server-wide (not per account), so only keys with the `connectors:read` scope may read it.

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;
use super::error::ApiError;
use super::extract::Auth;
use super::openapi::{Forbidden, Unauthorized};
use crate::identity::Scope;

/// One connector's health and load.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConnectorView {
    pub name: String,
    /// `sandbox` or `smpp`.
    pub kind: String,
    /// Whether it takes messages now (for SMPP: the link is bound).
    pub up: bool,
    /// Submissions sent and not yet answered.
    pub in_flight: usize,
    /// Most submissions in flight at once (absent for the sandbox).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window: Option<usize>,
    /// Parts (SMPP) or messages (sandbox) the carrier accepted since start.
    pub submitted: u64,
    /// Refusals, timeouts and parts lost with the link since start.
    pub errors: u64,
    /// Whether the link to the carrier is encrypted (SMPP only; absent for the sandbox). A
    /// plaintext SMPP link exposes numbers, bodies and the bind password on the network.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<bool>,
}

/// A route in force.
#[derive(Debug, Serialize, ToSchema)]
pub struct RouteView {
    /// Destinations starting with this (E.164 with `+`; empty matches all).
    pub prefix: String,
    pub connector: String,
    /// Among routes of equal prefix, lower goes first.
    pub priority: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ConnectorList {
    pub data: Vec<ConnectorView>,
    /// Longest prefix first, then priority: the order routing tries them.
    pub routes: Vec<RouteView>,
}

/// Every connector's status and the routing table (needs the `connectors:read` scope).
#[utoipa::path(get, path = "/v1/connectors", tag = "system",
    responses((status = 200, description = "Connectors and routes", body = ConnectorList),
        (status = 401, response = Unauthorized), (status = 403, response = Forbidden)),
    security(("api_key" = [])))]
pub async fn list_connectors(
    State(state): State<AppState>,
    auth: Auth,
) -> Result<Json<ConnectorList>, ApiError> {
    auth.require(Scope::ConnectorsRead)?;
    let router = state.delivery.router();
    let data = router
        .connectors()
        .iter()
        .map(|connector| {
            let status = connector.status();
            ConnectorView {
                name: status.name,
                kind: status.kind.to_owned(),
                up: status.up,
                in_flight: status.in_flight,
                window: status.window,
                submitted: status.submitted,
                errors: status.errors,
                tls: status.tls,
            }
        })
        .collect();
    let routes = router
        .routes()
        .iter()
        .map(|route| RouteView {
            prefix: route.prefix.clone(),
            connector: route.connector.clone(),
            priority: route.priority,
        })
        .collect();
    Ok(Json(ConnectorList { data, routes }))
}
