//! `/v1/accounts/{id}/rate-limits`: an account's rate limits, set by the operator (replacing
//! the server's for it) and, within those, by the account's admins.

use axum::Json;
use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::AppState;
use super::error::ApiError;
use super::extract::{ApiJson, Auth};
use super::openapi::{
    BadRequest, Forbidden, NotFound, PayloadTooLarge, Unauthorized, Unprocessable,
    UnsupportedMediaType,
};
use crate::app::accounts::AccountRateLimits;
use crate::network::rate_limit::{Rate, RateSettings, Rates};

/// Requests per second, and how many may come at once.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RateView {
    /// Requests per second; 0: no limit.
    #[serde(deserialize_with = "crate::whole_number::u32_whole")]
    #[schema(minimum = 0, maximum = 1_000_000)]
    pub per_second: u32,
    /// Requests allowed at once; 0 or absent: as many as `per_second`.
    #[serde(default, deserialize_with = "crate::whole_number::u32_whole")]
    #[schema(minimum = 0, maximum = 1_000_000)]
    pub burst: u32,
}

impl From<Rate> for RateView {
    fn from(r: Rate) -> Self {
        Self {
            per_second: r.per_second,
            burst: r.burst,
        }
    }
}

impl From<RateView> for Rate {
    fn from(r: RateView) -> Self {
        Self {
            per_second: r.per_second,
            burst: r.burst,
        }
    }
}

/// Limits at one level; an absent or null entry takes the level above.
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RateSettingsView {
    /// For each API key of the account.
    #[serde(default)]
    pub api_key: Option<RateView>,
    /// For all the account's keys together.
    #[serde(default)]
    pub account: Option<RateView>,
}

impl From<RateSettings> for RateSettingsView {
    fn from(s: RateSettings) -> Self {
        Self {
            api_key: s.api_key.map(Into::into),
            account: s.account.map(Into::into),
        }
    }
}

impl From<RateSettingsView> for RateSettings {
    fn from(s: RateSettingsView) -> Self {
        Self {
            api_key: s.api_key.map(Into::into),
            account: s.account.map(Into::into),
        }
    }
}

/// Limits in force.
#[derive(Debug, Serialize, ToSchema)]
pub struct RatesView {
    pub api_key: RateView,
    pub account: RateView,
}

impl From<Rates> for RatesView {
    fn from(r: Rates) -> Self {
        Self {
            api_key: r.api_key.into(),
            account: r.account.into(),
        }
    }
}

/// An account's rate limits at each level, and those in force.
#[derive(Debug, Serialize, ToSchema)]
pub struct AccountRateLimitsView {
    /// The server's (`[rate_limits]` in the configuration), for accounts the operator set
    /// nothing for.
    pub server: RatesView,
    /// Set by the operator for this account, replacing the server's.
    pub operator: RateSettingsView,
    /// Set by the account's admins, within the operator's.
    pub account: RateSettingsView,
    /// In force: the admins' where within the operator's, else the operator's, else the
    /// server's.
    pub effective: RatesView,
}

impl From<AccountRateLimits> for AccountRateLimitsView {
    fn from(l: AccountRateLimits) -> Self {
        Self {
            server: l.server.into(),
            operator: l.operator.into(),
            account: l.account.into(),
            effective: l.effective.into(),
        }
    }
}

/// The account's rate limits (`account:manage`, or an operator's `accounts:manage`).
#[utoipa::path(get, path = "/v1/accounts/{id}/rate-limits", tag = "members",
    params(("id" = String, Path, description = "The account id")),
    responses((status = 200, description = "The limits at each level", body = AccountRateLimitsView),
        (status = 401, response = Unauthorized), (status = 403, response = Forbidden),
        (status = 404, response = NotFound)),
    security(("api_key" = [])))]
pub async fn get_rate_limits(
    State(state): State<AppState>,
    auth: Auth,
    Path(account): Path<String>,
) -> Result<Json<AccountRateLimitsView>, ApiError> {
    Ok(Json(
        state.app.account_rate_limits(&auth.0, &account)?.into(),
    ))
}

/// Set the account's own rate limits, within the operator's (`account:manage`; a session
/// needs a recent re-authentication). Above the operator's: 403 `rate_limit_escalation`.
/// Running servers apply them on the next request.
#[utoipa::path(put, path = "/v1/accounts/{id}/rate-limits", tag = "members",
    request_body = RateSettingsView,
    params(("id" = String, Path, description = "The account id")),
    responses((status = 200, description = "The limits now", body = AccountRateLimitsView),
        (status = 400, response = BadRequest), (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden), (status = 404, response = NotFound),
        (status = 413, response = PayloadTooLarge), (status = 415, response = UnsupportedMediaType),
        (status = 422, response = Unprocessable)),
    security(("api_key" = [])))]
pub async fn set_rate_limits(
    State(state): State<AppState>,
    auth: Auth,
    Path(account): Path<String>,
    request: ApiJson<RateSettingsView>,
) -> Result<Json<AccountRateLimitsView>, ApiError> {
    let set = state
        .app
        .set_member_rate_limits(&auth.0, &account, request.value.into())
        .await?;
    Ok(Json(set.into()))
}

/// Set the operator's rate limits of an account (an operator's `accounts:manage`; a session
/// needs a recent re-authentication), as `rampart account rate-limits` does. They replace the
/// server's for this account; `per_second: 0` lifts a limit.
#[utoipa::path(put, path = "/v1/accounts/{id}/operator-rate-limits", tag = "members",
    request_body = RateSettingsView,
    params(("id" = String, Path, description = "The account id")),
    responses((status = 200, description = "The limits now", body = AccountRateLimitsView),
        (status = 400, response = BadRequest), (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden), (status = 404, response = NotFound),
        (status = 413, response = PayloadTooLarge), (status = 415, response = UnsupportedMediaType),
        (status = 422, response = Unprocessable)),
    security(("api_key" = [])))]
pub async fn set_operator_rate_limits(
    State(state): State<AppState>,
    auth: Auth,
    Path(account): Path<String>,
    request: ApiJson<RateSettingsView>,
) -> Result<Json<AccountRateLimitsView>, ApiError> {
    let set = state
        .app
        .set_operator_rate_limits(&auth.0, &account, request.value.into())
        .await?;
    Ok(Json(set.into()))
}
