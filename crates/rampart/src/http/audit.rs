//! `GET /v1/audit-events`: the audit trail, newest first, with filters and a cursor. An
//! account's caller (`audit:read`) sees its account's events; an operator (`accounts:manage`)
//! sees the instance's.

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::error::ApiError;
use super::extract::{ApiQuery, Auth};
use super::openapi::{BadRequest, Forbidden, Unauthorized};
use crate::app::audit_trail::{AuditEventsQuery, AuditRecord};
use crate::clock;

/// One audited change. Targets are ids, never phone numbers or message text.
#[derive(Serialize, ToSchema)]
pub struct AuditEventView {
    /// Its place in the trail (and its hash chain).
    pub seq: i64,
    #[schema(format = DateTime)]
    pub at: String,
    /// `api_key`, `user`, `operator` or `system`.
    pub actor_kind: String,
    /// The key's or person's id (absent for the operator's CLI and for Rampart itself).
    pub actor_id: Option<String>,
    /// The account it happened in (absent for changes to the instance).
    pub account_id: Option<String>,
    /// What was done, e.g. `api_key.issue`, `messages.send`, `security.integrity_failed`.
    pub action: String,
    /// The id of what it was done to.
    pub target: String,
    pub client_ip: Option<String>,
    /// `ok`, or `denied:<code>`.
    pub outcome: String,
}

/// A page of audit events, newest first.
#[derive(Serialize, ToSchema)]
pub struct AuditEventPage {
    pub data: Vec<AuditEventView>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// Filters for listing audit events.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditEventParams {
    /// The actor's id (`rk_...`, `usr_...`), or `operator` or `system`.
    #[param(min_length = 1, max_length = 100)]
    pub actor: Option<String>,
    /// One action, e.g. `api_key.issue`.
    #[param(min_length = 1, max_length = 100)]
    pub action: Option<String>,
    /// RFC 3339; events at or after.
    #[param(format = DateTime)]
    pub since: Option<String>,
    /// RFC 3339; events before (after `since`).
    #[param(format = DateTime)]
    pub until: Option<String>,
    /// Page size: 1 to 200, default 50.
    #[param(minimum = 1, maximum = 200, default = 50)]
    pub limit: Option<usize>,
    /// The `next_cursor` of the previous page.
    #[param(pattern = r"^[1-9][0-9]{0,17}$")]
    pub cursor: Option<String>,
}

impl From<AuditRecord> for AuditEventView {
    fn from(e: AuditRecord) -> Self {
        Self {
            seq: e.seq,
            at: clock::rfc3339(e.at),
            actor_kind: e.actor_kind,
            actor_id: e.actor_id,
            account_id: e.account_id,
            action: e.action,
            target: e.target,
            client_ip: e.client_ip,
            outcome: e.outcome,
        }
    }
}

/// List audit events, newest first, with cursor pagination: the caller's account's
/// (`audit:read`), or the whole instance's for an operator (`accounts:manage`).
#[utoipa::path(get, path = "/v1/audit-events", tag = "audit", params(AuditEventParams),
    responses((status = 200, description = "A page of audit events", body = AuditEventPage),
        (status = 400, response = BadRequest), (status = 401, response = Unauthorized), (status = 403, response = Forbidden)),
    security(("api_key" = [])))]
pub async fn list_audit_events(
    State(state): State<AppState>,
    auth: Auth,
    ApiQuery(params): ApiQuery<AuditEventParams>,
) -> Result<Json<AuditEventPage>, ApiError> {
    let query = AuditEventsQuery {
        actor: params.actor,
        action: params.action,
        since: params.since,
        until: params.until,
        limit: params.limit,
        cursor: params.cursor,
    };
    let page = state.app.list_audit_events(&auth.0, query).await?;
    Ok(Json(AuditEventPage {
        data: page.data.into_iter().map(AuditEventView::from).collect(),
        next_cursor: page.next_cursor,
    }))
}
