//! `/v1/bans`: client addresses banned for failing authentication again and again. Server-wide,
//! so only keys with the `bans:manage` scope (operators) may list or lift them.

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

/// A ban in force.
#[derive(Debug, Serialize, ToSchema)]
pub struct BanView {
    /// The address (IPv4), or the /64 network address of an IPv6 client.
    pub ip: String,
    #[schema(format = DateTime)]
    pub until: String,
    /// How many times the address was banned; each ban lasts twice the one before.
    pub strikes: u32,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BanList {
    pub data: Vec<BanView>,
}

/// The bans in force, soonest to end first (needs the `bans:manage` scope).
#[utoipa::path(get, path = "/v1/bans", tag = "system",
    responses((status = 200, description = "Bans in force", body = BanList),
        (status = 401, response = Unauthorized), (status = 403, response = Forbidden)),
    security(("api_key" = [])))]
pub async fn list_bans(
    State(state): State<AppState>,
    auth: Auth,
) -> Result<Json<BanList>, ApiError> {
    let data = state
        .app
        .list_bans_for(&auth.0)?
        .into_iter()
        .map(|ban| BanView {
            ip: ban.ip,
            until: clock::rfc3339(ban.until),
            strikes: ban.strikes,
        })
        .collect();
    Ok(Json(BanList { data }))
}

/// Lift the ban on an address (needs the `bans:manage` scope); running servers apply it within
/// a second.
#[utoipa::path(delete, path = "/v1/bans/{ip}", tag = "system",
    params(("ip" = String, Path, description = "The banned IP address (for IPv6, any address of the /64)")),
    responses((status = 204, description = "Lifted"),
        (status = 401, response = Unauthorized), (status = 403, response = Forbidden),
        (status = 404, response = NotFound), (status = 422, response = Unprocessable)),
    security(("api_key" = [])))]
pub async fn lift_ban(
    State(state): State<AppState>,
    auth: Auth,
    Path(ip): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.app.lift_ban_for(&auth.0, &ip).await?;
    Ok(StatusCode::NO_CONTENT)
}
