//! `/v1/pumping/blocks`: destination ranges the SMS pumping defence holds for the account, and
//! lifting them (`account:manage`). Operators list every account's with `rampart pumping`.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;
use super::error::ApiError;
use super::extract::Auth;
use super::openapi::{Forbidden, NotFound, Unauthorized, Unprocessable};
use crate::clock;

/// A blocked destination range.
#[derive(Debug, Serialize, ToSchema)]
pub struct PumpingBlockView {
    /// The numbers' common start: E.164 without the last `pumping.masked_digits` digits.
    pub prefix: String,
    /// `sequential_numbers`, `prefix_velocity` or `country_velocity`.
    pub reason: String,
    #[schema(format = DateTime)]
    pub until: String,
    #[schema(format = DateTime)]
    pub created_at: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PumpingBlockList {
    pub data: Vec<PumpingBlockView>,
}

/// The account's blocked ranges, soonest to end first (`account:manage`).
#[utoipa::path(get, path = "/v1/pumping/blocks", tag = "pumping",
    responses((status = 200, description = "Blocks in force", body = PumpingBlockList),
        (status = 401, response = Unauthorized), (status = 403, response = Forbidden)),
    security(("api_key" = [])))]
pub async fn list_blocks(
    State(state): State<AppState>,
    auth: Auth,
) -> Result<Json<PumpingBlockList>, ApiError> {
    let data = state
        .app
        .list_pumping_blocks_for(&auth.0)?
        .into_iter()
        .map(|b| PumpingBlockView {
            prefix: b.prefix,
            reason: b.reason,
            until: clock::rfc3339(b.until),
            created_at: clock::rfc3339(b.created_at),
        })
        .collect();
    Ok(Json(PumpingBlockList { data }))
}

/// Lift a block (`account:manage`): sends to the range go again at once.
#[utoipa::path(delete, path = "/v1/pumping/blocks/{prefix}", tag = "pumping",
    params(("prefix" = String, Path, pattern = r"^\+[0-9]{1,14}$",
        description = "The blocked prefix (`+` as `%2B`)")),
    responses((status = 204, description = "Lifted"),
        (status = 401, response = Unauthorized), (status = 403, response = Forbidden),
        (status = 404, response = NotFound), (status = 422, response = Unprocessable)),
    security(("api_key" = [])))]
pub async fn lift_block(
    State(state): State<AppState>,
    auth: Auth,
    Path(prefix): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.app.lift_pumping_block(&auth.0, &prefix).await?;
    Ok(StatusCode::NO_CONTENT)
}
