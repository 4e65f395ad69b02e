//! `/v1/users/me/passkeys…` and `/v1/auth/login/passkey/…`: a signed-in person registers,
//! lists and removes passkeys (WebAuthn), and signs in with one as the second factor. The
//! WebAuthn options and responses are the JSON of `navigator.credentials.create` / `.get`
//! (with bytes as base64url strings), passed through as free-form objects.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::AppState;
use super::auth::{ClientInfo, LoginResult, PendingSignIn, signed_in};
use super::error::ApiError;
use super::extract::{ApiJson, Auth};
use super::openapi::{
    BadRequest, Conflict, Forbidden, NotFound, PayloadTooLarge, Unauthorized, Unprocessable,
    UnsupportedMediaType,
};
use crate::app::passkeys::{PasskeyCeremony, PasskeyInfo};
use crate::clock;

/// A name for the passkey being registered.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartPasskeyRegistration {
    /// 1 to 64 characters, no control characters.
    #[schema(
        example = "Work laptop",
        min_length = 1,
        max_length = 64,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$"
    )]
    pub name: String,
}

/// The options for `navigator.credentials.create`, and the id to finish the ceremony with.
#[derive(Serialize, ToSchema)]
pub struct PasskeyRegistrationOptions {
    #[schema(example = "pkr_01jd6m2w4bq8c3x1t9y7zr5k2a")]
    pub ceremony_id: String,
    /// WebAuthn `CredentialCreationOptions` (`{"publicKey": {...}}`).
    #[schema(value_type = Object)]
    pub options: serde_json::Value,
    #[schema(format = DateTime)]
    pub expires_at: String,
}

/// The browser's answer to a registration.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FinishPasskeyRegistration {
    pub ceremony_id: String,
    /// The `PublicKeyCredential` from `navigator.credentials.create`, as JSON.
    #[schema(value_type = Object)]
    pub credential: serde_json::Value,
}

/// A registered passkey.
#[derive(Serialize, ToSchema)]
pub struct PasskeyView {
    #[schema(example = "fac_01jd6m2w4bq8c3x1t9y7zr5k2a")]
    pub id: String,
    pub name: String,
    #[schema(format = DateTime)]
    pub created_at: String,
}

impl From<&PasskeyInfo> for PasskeyView {
    fn from(p: &PasskeyInfo) -> Self {
        Self {
            id: p.id.clone(),
            name: p.name.clone(),
            created_at: clock::rfc3339(p.created_at),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct PasskeyList {
    pub data: Vec<PasskeyView>,
}

/// The options for `navigator.credentials.get`.
#[derive(Serialize, ToSchema)]
pub struct PasskeySignInOptions {
    /// WebAuthn `CredentialRequestOptions` (`{"publicKey": {...}}`).
    #[schema(value_type = Object)]
    pub options: serde_json::Value,
    #[schema(format = DateTime)]
    pub expires_at: String,
}

/// The browser's answer to a sign-in.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FinishPasskeySignIn {
    /// The `PublicKeyCredential` from `navigator.credentials.get`, as JSON.
    #[schema(value_type = Object)]
    pub credential: serde_json::Value,
}

fn registration_options(ceremony: PasskeyCeremony) -> PasskeyRegistrationOptions {
    PasskeyRegistrationOptions {
        ceremony_id: ceremony.ceremony_id,
        options: ceremony.options,
        expires_at: clock::rfc3339(ceremony.expires_at),
    }
}

/// Begin registering a passkey (confirm your password first: step-up). Passkeys you already
/// have are excluded. Finish within five minutes.
#[utoipa::path(post, path = "/v1/users/me/passkeys/register/start", tag = "users",
    request_body = StartPasskeyRegistration,
    responses((status = 200, description = "The options for the authenticator", body = PasskeyRegistrationOptions),
        (status = 400, response = BadRequest), (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden), (status = 409, response = Conflict),
        (status = 413, response = PayloadTooLarge), (status = 415, response = UnsupportedMediaType),
        (status = 422, response = Unprocessable)),
    security(("session" = [])))]
pub async fn start_registration(
    State(state): State<AppState>,
    auth: Auth,
    request: ApiJson<StartPasskeyRegistration>,
) -> Result<Json<PasskeyRegistrationOptions>, ApiError> {
    let ceremony = state
        .app
        .start_passkey_registration(&auth.0, &request.value.name)
        .await?;
    Ok(Json(registration_options(ceremony)))
}

/// Finish registering a passkey with the authenticator's response; the ceremony answers once.
#[utoipa::path(post, path = "/v1/users/me/passkeys/register/finish", tag = "users",
    request_body = FinishPasskeyRegistration,
    responses((status = 201, description = "Registered", body = PasskeyView),
        (status = 400, response = BadRequest), (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden), (status = 409, response = Conflict),
        (status = 413, response = PayloadTooLarge), (status = 415, response = UnsupportedMediaType),
        (status = 422, response = Unprocessable)),
    security(("session" = [])))]
pub async fn finish_registration(
    State(state): State<AppState>,
    auth: Auth,
    request: ApiJson<FinishPasskeyRegistration>,
) -> Result<(StatusCode, Json<PasskeyView>), ApiError> {
    let FinishPasskeyRegistration {
        ceremony_id,
        credential,
    } = request.value;
    let passkey = state
        .app
        .finish_passkey_registration(&auth.0, &ceremony_id, &credential.to_string())
        .await?;
    Ok((StatusCode::CREATED, Json(PasskeyView::from(&passkey))))
}

/// Your passkeys, oldest first.
#[utoipa::path(get, path = "/v1/users/me/passkeys", tag = "users",
    responses((status = 200, description = "Your passkeys", body = PasskeyList),
        (status = 401, response = Unauthorized), (status = 403, response = Forbidden)),
    security(("session" = [])))]
pub async fn list_passkeys(
    State(state): State<AppState>,
    auth: Auth,
) -> Result<Json<PasskeyList>, ApiError> {
    let passkeys = state.app.list_passkeys(&auth.0)?;
    Ok(Json(PasskeyList {
        data: passkeys.iter().map(PasskeyView::from).collect(),
    }))
}

/// Remove one of your passkeys (step-up); it no longer signs in.
#[utoipa::path(delete, path = "/v1/users/me/passkeys/{id}", tag = "users",
    params(("id" = String, Path, description = "The passkey id")),
    responses((status = 204, description = "Removed"),
        (status = 401, response = Unauthorized), (status = 403, response = Forbidden),
        (status = 404, response = NotFound)),
    security(("session" = [])))]
pub async fn remove_passkey(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.app.remove_passkey(&auth.0, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Begin the passkey step of a sign-in waiting for its second factor (the sign-in cookie of
/// `POST /v1/auth/login`). A new start replaces the previous one.
#[utoipa::path(post, path = "/v1/auth/login/passkey/start", tag = "auth",
    responses((status = 200, description = "The options for the authenticator", body = PasskeySignInOptions),
        (status = 401, response = Unauthorized), (status = 409, response = Conflict)))]
pub async fn start_sign_in(
    State(state): State<AppState>,
    PendingSignIn(pending): PendingSignIn,
) -> Result<Json<PasskeySignInOptions>, ApiError> {
    let ceremony = state.app.start_passkey_sign_in(&pending).await?;
    Ok(Json(PasskeySignInOptions {
        options: ceremony.options,
        expires_at: clock::rfc3339(ceremony.expires_at),
    }))
}

/// Complete a sign-in with the authenticator's response: the session cookie is set. A wrong
/// response counts as a wrong second factor (three end the sign-in).
#[utoipa::path(post, path = "/v1/auth/login/passkey/finish", tag = "auth",
    request_body = FinishPasskeySignIn,
    responses((status = 200, description = "Signed in (session cookie set)", body = LoginResult),
        (status = 400, response = BadRequest), (status = 401, response = Unauthorized),
        (status = 409, response = Conflict), (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType), (status = 422, response = Unprocessable)))]
pub async fn finish_sign_in(
    State(state): State<AppState>,
    PendingSignIn(pending): PendingSignIn,
    ClientInfo(client): ClientInfo,
    request: ApiJson<FinishPasskeySignIn>,
) -> Result<Response, ApiError> {
    let new = state
        .app
        .finish_passkey_sign_in(&pending, &request.value.credential.to_string(), &client)
        .await?;
    Ok(signed_in(&state, &new))
}
