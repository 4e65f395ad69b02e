//! Spend over the API: a prepaid account's balance and ledger, credits by operators, and
//! refunds of charged messages. Amounts are decimal strings in the instance's currency
//! (`"10.00"`, `"0.0075"`), never floats; the `_micros` twins are the same in integer
//! micro-units.

use axum::Json;
use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::error::ApiError;
use super::extract::{ApiJson, ApiQuery, Auth};
use super::openapi::{
    BadRequest, Conflict, Forbidden, NotFound, PayloadTooLarge, Unauthorized, Unprocessable,
    UnsupportedMediaType,
};
use crate::app::billing::{Balance, LedgerEntry, Refunded};
use crate::billing::format_amount;
use crate::clock;

/// A prepaid account's balance: what it may still spend (credits less what its messages
/// reserved or were charged, plus releases and refunds).
#[derive(Debug, Serialize, ToSchema)]
pub struct BalanceView {
    pub account_id: String,
    /// ISO 4217 (`billing.currency`).
    pub currency: String,
    #[schema(example = "10.00")]
    pub balance: String,
    pub balance_micros: i64,
    /// Under this balance one `billing.low_balance` audit event is recorded.
    pub low_balance_threshold: String,
    pub daily_cap: Option<String>,
    pub monthly_cap: Option<String>,
}

impl From<Balance> for BalanceView {
    fn from(b: Balance) -> Self {
        Self {
            account_id: b.account_id,
            currency: b.currency,
            balance: format_amount(b.balance),
            balance_micros: b.balance,
            low_balance_threshold: format_amount(b.low_balance_threshold),
            daily_cap: b.daily_cap.map(format_amount),
            monthly_cap: b.monthly_cap.map(format_amount),
        }
    }
}

/// One movement of the balance.
#[derive(Debug, Serialize, ToSchema)]
pub struct LedgerEntryView {
    pub id: String,
    /// `credit`, `reservation` (a send held the price), `charge` (delivered: the reservation
    /// became final; moves nothing), `release` (not delivered: the reservation came back) or
    /// `refund`.
    pub kind: String,
    /// Signed: negative for a reservation.
    pub amount: String,
    pub amount_micros: i64,
    pub balance_after: String,
    pub balance_after_micros: i64,
    pub message_id: Option<String>,
    #[schema(format = DateTime)]
    pub at: String,
    /// `operator`, `api_key:<id>`, `user:<id>`, or `delivery` for settlements.
    pub actor: String,
    pub note: Option<String>,
}

impl From<LedgerEntry> for LedgerEntryView {
    fn from(e: LedgerEntry) -> Self {
        Self {
            id: e.id,
            kind: e.kind,
            amount: format_amount(e.amount),
            amount_micros: e.amount,
            balance_after: format_amount(e.balance_after),
            balance_after_micros: e.balance_after,
            message_id: e.message_id,
            at: clock::rfc3339(e.at),
            actor: e.actor,
            note: e.note,
        }
    }
}

/// A page of the ledger, oldest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct LedgerPage {
    pub data: Vec<LedgerEntryView>,
    /// Pass as `cursor` for the next page; null on the last.
    pub next_cursor: Option<String>,
}

/// Paging of the ledger.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct LedgerParams {
    /// Page size: 1 to 200, default 50.
    #[param(minimum = 1, maximum = 200, default = 50)]
    pub limit: Option<usize>,
    /// The `next_cursor` of the previous page.
    #[param(pattern = r"^[0-9]{1,18}$")]
    pub cursor: Option<String>,
}

/// A credit to add.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"amount": "10.00", "note": "invoice 2026-118"}))]
pub struct NewCredit {
    /// A decimal in the instance's currency, more than zero (422 `invalid_amount`), at most
    /// 6 decimals.
    #[schema(pattern = r"^[0-9]{1,9}(\.[0-9]{1,6})?$")]
    pub amount: String,
    /// Why (at most 200 characters, no control characters).
    #[schema(max_length = 200, pattern = r"^[^\u0000-\u001f\u007f-\u009f]*$")]
    pub note: Option<String>,
}

/// The balance after a credit or refund.
#[derive(Debug, Serialize, ToSchema)]
pub struct MovementView {
    pub amount: String,
    pub amount_micros: i64,
    pub balance_after: String,
    pub balance_after_micros: i64,
}

/// A prepaid account's balance (`billing:read` in it, or an operator's `accounts:manage`).
#[utoipa::path(get, path = "/v1/accounts/{id}/balance", tag = "billing",
    params(("id" = String, Path, description = "The account id")),
    responses((status = 200, description = "The balance", body = BalanceView),
        (status = 401, response = Unauthorized), (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict)),
    security(("api_key" = [])))]
pub async fn get_balance(
    State(state): State<AppState>,
    auth: Auth,
    Path(account): Path<String>,
) -> Result<Json<BalanceView>, ApiError> {
    Ok(Json(state.app.balance(&auth.0, &account)?.into()))
}

/// The account's ledger, oldest first: every credit, reservation, charge, release and refund
/// (`billing:read`, or an operator's `accounts:manage`).
#[utoipa::path(get, path = "/v1/accounts/{id}/ledger", tag = "billing",
    params(("id" = String, Path, description = "The account id"), LedgerParams),
    responses((status = 200, description = "A page of the ledger", body = LedgerPage),
        (status = 400, response = BadRequest), (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden), (status = 404, response = NotFound)),
    security(("api_key" = [])))]
pub async fn get_ledger(
    State(state): State<AppState>,
    auth: Auth,
    Path(account): Path<String>,
    ApiQuery(params): ApiQuery<LedgerParams>,
) -> Result<Json<LedgerPage>, ApiError> {
    let page = state
        .app
        .ledger(&auth.0, &account, params.cursor.as_deref(), params.limit)?;
    Ok(Json(LedgerPage {
        data: page.data.into_iter().map(LedgerEntryView::from).collect(),
        next_cursor: page.next_cursor,
    }))
}

/// Add credit to a prepaid account (operators: `accounts:manage`), as `rampart billing
/// credit` does.
#[utoipa::path(post, path = "/v1/accounts/{id}/credits", tag = "billing",
    request_body = NewCredit,
    params(("id" = String, Path, description = "The account id")),
    responses((status = 201, description = "Credited", body = MovementView),
        (status = 400, response = BadRequest), (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden), (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 413, response = PayloadTooLarge), (status = 415, response = UnsupportedMediaType),
        (status = 422, response = Unprocessable)),
    security(("api_key" = [])))]
pub async fn add_credit(
    State(state): State<AppState>,
    auth: Auth,
    Path(account): Path<String>,
    request: ApiJson<NewCredit>,
) -> Result<(axum::http::StatusCode, Json<MovementView>), ApiError> {
    let credit = request.value;
    let amount = crate::billing::parse_amount(&credit.amount).unwrap_or(0);
    let balance = state
        .app
        .credit_account(&auth.0, &account, &credit.amount, credit.note)
        .await?;
    Ok((
        axum::http::StatusCode::CREATED,
        Json(MovementView {
            amount: format_amount(amount),
            amount_micros: amount,
            balance_after: format_amount(balance),
            balance_after_micros: balance,
        }),
    ))
}

/// Refund a charged message within `billing.refund_window_days` of its charge
/// (`account:manage` in its account, or an operator's `accounts:manage`). A message that was
/// not delivered needs none: its reservation came back when it failed.
#[utoipa::path(post, path = "/v1/messages/{id}/refund", tag = "billing",
    params(("id" = String, Path, description = "The message id (`msg_...`)")),
    responses((status = 200, description = "Refunded", body = MovementView),
        (status = 401, response = Unauthorized), (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict)),
    security(("api_key" = [])))]
pub async fn refund_message(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<MovementView>, ApiError> {
    let Refunded {
        amount,
        balance_after,
    } = state.app.refund_message(&auth.0, &id).await?;
    Ok(Json(MovementView {
        amount: format_amount(amount),
        amount_micros: amount,
        balance_after: format_amount(balance_after),
        balance_after_micros: balance_after,
    }))
}
