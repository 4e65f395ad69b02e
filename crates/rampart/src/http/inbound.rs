//! `/v1/inbound` and `/v1/numbers`: messages from handsets to the account's numbers, and the
//! numbers themselves. Read-only; every query is scoped by the caller's account.

use axum::Json;
use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::error::ApiError;
use super::extract::{ApiQuery, Auth};
use super::openapi::{BadRequest, Forbidden, NotFound, Unauthorized};
use crate::app::inbound::{InboundMessage, InboundQuery};
use crate::clock;

/// A message a handset sent to one of the account's numbers.
#[derive(Serialize, ToSchema)]
pub struct InboundView {
    pub id: String,
    /// The sender: E.164 when the carrier gave an international number.
    pub from: String,
    /// The account's number it was sent to.
    pub to: String,
    /// The text; null once the account's retention erased it (`body_erased_at`).
    #[schema(required = true)]
    pub body: Option<String>,
    /// When the account's retention erased the body; absent while it is kept.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    pub body_erased_at: Option<String>,
    /// The connector it arrived on.
    pub connector: String,
    #[schema(format = DateTime)]
    pub received_at: String,
}

/// A page of inbound messages, newest first.
#[derive(Serialize, ToSchema)]
pub struct InboundPage {
    pub data: Vec<InboundView>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// Filters for listing inbound messages.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct InboundParams {
    /// Sender, in E.164 (or as the carrier wrote it, for alphanumeric senders).
    pub from: Option<String>,
    /// One of the account's numbers.
    pub to: Option<String>,
    /// Page size: 1 to 200, default 50.
    #[param(minimum = 1, maximum = 200, default = 50)]
    pub limit: Option<usize>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// One of the account's numbers.
#[derive(Debug, Serialize, ToSchema)]
pub struct NumberView {
    pub number: String,
    #[schema(format = DateTime)]
    pub created_at: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct NumberList {
    pub data: Vec<NumberView>,
}

impl From<InboundMessage> for InboundView {
    fn from(m: InboundMessage) -> Self {
        Self {
            id: m.id,
            from: m.from,
            to: m.to,
            body: m.body,
            body_erased_at: m.body_erased_at.map(clock::rfc3339),
            connector: m.connector,
            received_at: clock::rfc3339(m.received_at),
        }
    }
}

/// List inbound messages, newest first, with cursor pagination.
#[utoipa::path(get, path = "/v1/inbound", tag = "inbound", params(InboundParams),
    responses((status = 200, description = "A page of inbound messages", body = InboundPage),
        (status = 400, response = BadRequest), (status = 401, response = Unauthorized), (status = 403, response = Forbidden)),
    security(("api_key" = [])))]
pub async fn list_inbound(
    State(state): State<AppState>,
    auth: Auth,
    ApiQuery(params): ApiQuery<InboundParams>,
) -> Result<Json<InboundPage>, ApiError> {
    let query = InboundQuery {
        from: params.from,
        to: params.to,
        limit: params.limit,
        cursor: params.cursor,
    };
    let page = state.app.list_inbound(&auth.0, query).await?;
    Ok(Json(InboundPage {
        data: page.data.into_iter().map(InboundView::from).collect(),
        next_cursor: page.next_cursor,
    }))
}

/// Read one inbound message.
#[utoipa::path(get, path = "/v1/inbound/{id}", tag = "inbound",
    params(("id" = String, Path, description = "The inbound message id")),
    responses((status = 200, description = "The inbound message", body = InboundView),
        (status = 401, response = Unauthorized), (status = 403, response = Forbidden), (status = 404, response = NotFound)),
    security(("api_key" = [])))]
pub async fn get_inbound(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<InboundView>, ApiError> {
    Ok(Json(state.app.get_inbound(&auth.0, &id)?.into()))
}

/// The account's numbers: messages sent to them arrive in `/v1/inbound`.
#[utoipa::path(get, path = "/v1/numbers", tag = "inbound",
    responses((status = 200, description = "The account's numbers", body = NumberList),
        (status = 401, response = Unauthorized), (status = 403, response = Forbidden)),
    security(("api_key" = [])))]
pub async fn list_numbers(
    State(state): State<AppState>,
    auth: Auth,
) -> Result<Json<NumberList>, ApiError> {
    let data = state
        .app
        .list_account_numbers(&auth.0)?
        .into_iter()
        .map(|row| NumberView {
            number: row.number,
            created_at: clock::rfc3339(row.created_at),
        })
        .collect();
    Ok(Json(NumberList { data }))
}
