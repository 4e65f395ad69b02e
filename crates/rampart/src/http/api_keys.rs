//! `/v1/api-keys`: an account's keys, managed over the API with the `keys:manage` scope; an
//! operator's key (one over the instance, made with `rampart apikey create --operator`) manages
//! the operators' keys with `accounts:manage` instead.
//!
//! Keys form a hierarchy: a key holds at most its maker's scopes, ends no later than its maker,
//! and is revoked with it; revoking a key needs every scope it holds. An account's key never
//! holds a server-wide scope, and an operator's key holds nothing but server-wide scopes.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::AppState;
use super::error::ApiError;
use super::extract::{ApiJson, Auth};
use super::openapi::{
    self, BadRequest, Forbidden, NotFound, PayloadTooLarge, Unauthorized, Unprocessable,
    UnsupportedMediaType,
};
use crate::app::api_keys::NewApiKey;
use crate::clock;
use crate::identity::api_keys::StoredApiKey;

/// A new key's name, scopes and optional expiry.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateApiKey {
    /// 1 to 100 characters, not blank (leading and trailing white space is dropped), with no
    /// control characters (`invalid_name`).
    #[schema(
        example = "billing service",
        min_length = 1,
        max_length = 100,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$"
    )]
    pub name: String,
    /// Scope names, e.g. `["messages:send"]`; `*` for everything the calling key may pass on.
    #[schema(schema_with = openapi::requested_scopes)]
    pub scopes: Vec<String>,
    /// RFC 3339, in the future; the key stops working at this time. No later than the calling
    /// key's own expiry (403 `expiry_escalation`); absent: the calling key's expiry (none for a
    /// calling key that never expires).
    #[schema(format = DateTime)]
    pub expires_at: Option<String>,
    /// Addresses or CIDR networks (IPv4 or IPv6, like `203.0.113.0/24`) the key may be used
    /// from. Absent or empty: the creating key's own list (any address for an unrestricted
    /// creator). A key cannot be usable from addresses its creator may not use.
    #[schema(max_items = 64, inline)]
    pub allowed_ips: Option<Vec<NetworkEntry>>,
    /// Binds the key to one client certificate (mutual TLS; the server needs
    /// `tls_client_ca_file`): the SHA-256 of the certificate's DER, as 64 hex digits, colons
    /// between pairs allowed (`openssl x509 -noout -fingerprint -sha256`); stored and shown
    /// lowercase without colons. Every request with the key must then come over a connection
    /// that presented this certificate: 403 `client_certificate_required` without one,
    /// `client_certificate_mismatch` with another. Absent: the creating key's own binding
    /// (none for most); a bound key cannot make a key bound to another certificate (403
    /// `client_certificate_escalation`). Malformed: 422 `invalid_client_cert_sha256`.
    #[schema(
        example = "5f3c0a1e9b2d4c6f8a7e1d0c3b5a4f6e2d1c0b9a8f7e6d5c4b3a2f1e0d9c8b7a",
        pattern = r"^([0-9A-Fa-f]{64}|[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){31})$"
    )]
    pub client_cert_sha256: Option<String>,
}

/// An IP address or CIDR network.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(transparent)]
#[schema(value_type = String, min_length = 1, max_length = 64, example = "203.0.113.0/24")]
pub struct NetworkEntry(pub String);

/// A key as listed (never with its secret). Made by an operator's key, it is an operator's key
/// too, over the instance: it holds server-wide scopes only.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKeyView {
    pub id: String,
    /// The account the key acts in; `null` for an operator's key, which acts over the
    /// instance.
    pub account_id: Option<String>,
    pub name: String,
    #[schema(schema_with = openapi::scope_names)]
    pub scopes: Vec<&'static str>,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    pub expires_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    pub revoked_at: Option<String>,
    /// Accurate to the minute.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    pub last_used_at: Option<String>,
    /// Networks the key may be used from; absent when any address may use it.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub allowed_ips: Vec<String>,
    /// The SHA-256 (64 lowercase hex digits) of the client certificate the key must be used
    /// with; absent when it needs none.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(pattern = "^[0-9a-f]{64}$")]
    pub client_cert_sha256: Option<String>,
}

/// A new key: the only time its secret is shown.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedApiKey {
    #[serde(flatten)]
    pub view: ApiKeyView,
    /// The whole key. Store it now: it cannot be shown again.
    pub key: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKeyList {
    pub data: Vec<ApiKeyView>,
}

impl From<&StoredApiKey> for ApiKeyView {
    fn from(k: &StoredApiKey) -> Self {
        Self {
            id: k.id.clone(),
            account_id: k.account_id.clone(),
            name: k.name.clone(),
            scopes: k.scopes.names(),
            created_at: clock::rfc3339(k.created_at),
            expires_at: k.expires_at.map(clock::rfc3339),
            revoked_at: k.revoked_at.map(clock::rfc3339),
            last_used_at: k.last_used_at.map(clock::rfc3339),
            allowed_ips: k.allowed_ips.names(),
            client_cert_sha256: k.client_cert_sha256.map(|f| f.to_hex()),
        }
    }
}

/// Create an API key, made by (and revoked with) the calling key.
///
/// The new key holds at most the calling key's scopes (403 `scope_escalation`) and ends no
/// later than it (403 `expiry_escalation`). An account's key makes keys of its account, never
/// with a server-wide scope; an operator's key (it needs `accounts:manage`) makes operators'
/// keys, with server-wide scopes only.
#[utoipa::path(post, path = "/v1/api-keys", tag = "api-keys", request_body = CreateApiKey,
    responses((status = 201, description = "Created; the only time the key's secret is shown", body = CreatedApiKey),
        (status = 400, response = BadRequest), (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden), (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType), (status = 422, response = Unprocessable)),
    security(("api_key" = [])))]
pub async fn create_api_key(
    State(state): State<AppState>,
    auth: Auth,
    request: ApiJson<CreateApiKey>,
) -> Result<(StatusCode, Json<CreatedApiKey>), ApiError> {
    let request = request.value;
    let expires_at = match request.expires_at.as_deref() {
        None => None,
        Some(text) => Some(clock::parse_rfc3339(text).ok_or_else(|| {
            ApiError::unprocessable(
                "invalid_expires_at",
                "`expires_at` must be an RFC 3339 time in the future",
            )
            .with_field("expires_at")
        })?),
    };
    let new = NewApiKey {
        name: request.name,
        scopes: request.scopes,
        expires_at,
        allowed_ips: request
            .allowed_ips
            .unwrap_or_default()
            .into_iter()
            .map(|entry| entry.0)
            .collect(),
        client_cert_sha256: request.client_cert_sha256,
    };
    let issued = state.app.issue_api_key(&auth.0, new).await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedApiKey {
            view: (&issued.key).into(),
            key: issued.token.reveal().to_owned(),
        }),
    ))
}

/// List the account's API keys (for an operator's key: the operators' keys).
#[utoipa::path(get, path = "/v1/api-keys", tag = "api-keys",
    responses((status = 200, description = "The account's keys, revoked ones included", body = ApiKeyList),
        (status = 401, response = Unauthorized), (status = 403, response = Forbidden)),
    security(("api_key" = [])))]
pub async fn list_api_keys(
    State(state): State<AppState>,
    auth: Auth,
) -> Result<Json<ApiKeyList>, ApiError> {
    let keys = state.app.list_api_keys(&auth.0)?;
    Ok(Json(ApiKeyList {
        data: keys.iter().map(ApiKeyView::from).collect(),
    }))
}

/// Read one API key.
#[utoipa::path(get, path = "/v1/api-keys/{id}", tag = "api-keys",
    params(("id" = String, Path, description = "The key id (`rk_` and 12 characters)")),
    responses((status = 200, description = "The key (a revoked one too, with `revoked_at`)", body = ApiKeyView),
        (status = 401, response = Unauthorized), (status = 403, response = Forbidden), (status = 404, response = NotFound)),
    security(("api_key" = [])))]
pub async fn get_api_key(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<ApiKeyView>, ApiError> {
    Ok(Json((&state.app.get_api_key(&auth.0, &id)?).into()))
}

/// Revoke an API key and every key it made; they stop working on their next request.
///
/// The calling key must hold every scope of the key it revokes (403 `scope_escalation`).
#[utoipa::path(delete, path = "/v1/api-keys/{id}", tag = "api-keys",
    params(("id" = String, Path, description = "The key id (`rk_` and 12 characters)")),
    responses((status = 204, description = "Revoked"),
        (status = 401, response = Unauthorized), (status = 403, response = Forbidden), (status = 404, response = NotFound)),
    security(("api_key" = [])))]
pub async fn revoke_api_key(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.app.revoke_api_key(&auth.0, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
