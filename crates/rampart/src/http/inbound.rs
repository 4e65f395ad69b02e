//! `/v1/inbound` and `/v1/numbers`: messages from handsets to the account's numbers, and the
//! numbers themselves. Read-only; every query is scoped by the caller's account.

use axum::Json;
use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::error::ApiError;
use super::extract::{ApiQuery, Auth, page_limit, split_page};
use super::openapi::{BadRequest, Forbidden, NotFound, Unauthorized};
use crate::clock;
use crate::identity::Scope;
use crate::messaging::PhoneNumber;
use crate::store::inbound::{self as stored, InboundFilter, InboundRow};
use crate::store::routing;

/// A message a handset sent to one of the account's numbers.
#[derive(Debug, Serialize, ToSchema)]
pub struct InboundView {
    pub id: String,
    /// The sender: E.164 when the carrier gave an international number.
    pub from: String,
    /// The account's number it was sent to.
    pub to: String,
    pub body: String,
    /// The connector it arrived on.
    pub connector: String,
    #[schema(format = DateTime)]
    pub received_at: String,
}

/// A page of inbound messages, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct InboundPage {
    pub data: Vec<InboundView>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// Filters for listing inbound messages.
#[derive(Debug, Deserialize, IntoParams)]
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

impl AppState {
    fn inbound_view(&self, row: InboundRow) -> Result<InboundView, ApiError> {
        let from = self.keyring.decrypt_string(
            &row.from_sealed,
            format!("inbound-from:{}", row.id).as_bytes(),
        )?;
        let body = self.keyring.decrypt_string(
            &row.body_sealed,
            format!("inbound-body:{}", row.id).as_bytes(),
        )?;
        Ok(InboundView {
            from,
            to: row.to_number,
            body,
            connector: row.connector,
            received_at: clock::rfc3339(row.received_at),
            id: row.id,
        })
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
    let principal = auth.require(Scope::InboundRead)?;
    let limit = page_limit(params.limit)?;
    // Senders are indexed in the form they are stored in: E.164 when they parse as such.
    let from_index = params.from.map(|from| {
        let from = PhoneNumber::parse(&from)
            .map(|n| n.as_str().to_owned())
            .unwrap_or_else(|_| from.trim().to_owned());
        state.keyring.blind_index(b"phone", from.as_bytes())
    });
    let filter = InboundFilter {
        from_index,
        to_number: params.to,
        before_id: params.cursor,
        limit: limit + 1,
    };
    let account = principal.account_id.clone();
    let rows = state
        .store
        .read_blocking(move |c| stored::list(c, &account, &filter))
        .await?;
    let (rows, next_cursor) = split_page(rows, limit, |m| &m.id);
    let data = rows
        .into_iter()
        .map(|row| state.inbound_view(row))
        .collect::<Result<_, _>>()?;
    Ok(Json(InboundPage { data, next_cursor }))
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
    let principal = auth.require(Scope::InboundRead)?;
    let row = state
        .store
        .read(|c| stored::get(c, &principal.account_id, &id))?
        .ok_or_else(|| ApiError::not_found("inbound message"))?;
    Ok(Json(state.inbound_view(row)?))
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
    let principal = auth.require(Scope::InboundRead)?;
    let rows = state
        .store
        .read(|c| routing::list_numbers(c, Some(&principal.account_id)))?;
    let data = rows
        .into_iter()
        .map(|row| NumberView {
            number: row.number,
            created_at: clock::rfc3339(row.created_at),
        })
        .collect();
    Ok(Json(NumberList { data }))
}
