//! Second factors over the API: a person enrols an authenticator app or a phone and manages
//! recovery codes (`/v1/users/me/…`, with their session), signs in with any of them
//! (`/v1/auth/login/{factor}`, with the pending sign-in cookie), and an account sets its rules
//! for its people (`/v1/accounts/{id}/security`).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::AppState;
use super::auth::{ClientInfo, LoginResult, PendingSignIn, signed_in};
use super::error::ApiError;
use super::extract::{ApiJson, Auth};
use super::openapi::{
    BadRequest, Conflict, Forbidden, NotFound, PayloadTooLarge, TooManyRequests, Unauthorized,
    Unprocessable, UnsupportedMediaType,
};
use crate::app::factors::{CodeSent, ConfirmedFactor, FactorRecord};
use crate::app::people_policy::PeoplePolicyRecord;
use crate::clock;

/// A second factor as its owner sees it (never its secret).
#[derive(Serialize, ToSchema)]
pub struct FactorView {
    pub id: String,
    /// `totp` or `passkey`.
    #[schema(example = "totp")]
    pub kind: String,
    pub name: String,
    /// `null` while the enrolment waits for its first code.
    #[schema(format = DateTime)]
    pub confirmed_at: Option<String>,
    #[schema(format = DateTime)]
    pub created_at: String,
}

impl From<&FactorRecord> for FactorView {
    fn from(f: &FactorRecord) -> Self {
        Self {
            id: f.id.clone(),
            kind: f.kind.clone(),
            name: f.name.clone(),
            confirmed_at: f.confirmed_at.map(clock::rfc3339),
            created_at: clock::rfc3339(f.created_at),
        }
    }
}

/// Your factors, the recovery codes you have left and your verified phone.
#[derive(Serialize, ToSchema)]
pub struct FactorList {
    pub data: Vec<FactorView>,
    pub recovery_codes_left: i64,
    pub phone_verified: bool,
    /// The verified phone, masked.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "+4479******56")]
    pub phone: Option<String>,
}

/// What an authenticator app needs to enrol (shown once).
#[derive(Serialize, ToSchema)]
pub struct TotpEnrolmentView {
    pub factor_id: String,
    /// The shared secret in base32, to type in by hand.
    pub secret: String,
    /// The `otpauth://totp/…` URI.
    pub provisioning_uri: String,
    /// The URI as a QR code: a PNG in base64, for a `data:image/png;base64,` URL.
    pub qr_png_base64: String,
}

/// A one-time code.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CodeRequest {
    /// Six digits from the app or the SMS, or a recovery code (`7k3m9-x2q4h`).
    #[schema(value_type = String, example = "492039")]
    pub code: SecretString,
}

/// A factor confirmed; with the recovery codes when it is your first (shown once: keep them
/// somewhere safe).
#[derive(Serialize, ToSchema)]
pub struct FactorConfirmed {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub factor: Option<FactorView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recovery_codes: Option<Vec<String>>,
}

impl From<ConfirmedFactor> for FactorConfirmed {
    fn from(c: ConfirmedFactor) -> Self {
        Self {
            factor: c.factor.as_ref().map(FactorView::from),
            recovery_codes: c.recovery_codes,
        }
    }
}

/// Ten new recovery codes (shown once); the previous ones no longer work.
#[derive(Serialize, ToSchema)]
pub struct RecoveryCodes {
    pub recovery_codes: Vec<String>,
}

/// A code is on its way by SMS.
#[derive(Serialize, ToSchema)]
pub struct CodeSentView {
    #[schema(example = "code_sent")]
    pub status: &'static str,
    #[schema(format = DateTime)]
    pub expires_at: String,
}

impl From<CodeSent> for CodeSentView {
    fn from(c: CodeSent) -> Self {
        Self {
            status: "code_sent",
            expires_at: clock::rfc3339(c.expires_at),
        }
    }
}

/// A phone number to get codes at.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PhoneRequest {
    /// E.164.
    #[schema(example = "+447911123456")]
    pub phone: String,
}

/// Start enrolling an authenticator app (TOTP, RFC 6238). Needs a recent re-authentication.
/// Confirm it with a code from the app.
#[utoipa::path(post, path = "/v1/users/me/totp", tag = "users",
    responses((status = 201, description = "Waiting for the first code", body = TotpEnrolmentView),
        (status = 401, response = Unauthorized), (status = 403, response = Forbidden)),
    security(("session" = [])))]
pub async fn start_totp(
    State(state): State<AppState>,
    auth: Auth,
) -> Result<(StatusCode, Json<TotpEnrolmentView>), ApiError> {
    let e = state.app.start_totp_enrolment(&auth.0).await?;
    Ok((
        StatusCode::CREATED,
        Json(TotpEnrolmentView {
            factor_id: e.factor_id,
            secret: e.secret_base32.to_string(),
            provisioning_uri: e.provisioning_uri,
            qr_png_base64: e.qr_png_base64,
        }),
    ))
}

/// Confirm an authenticator app with a code from it. Your first factor comes with ten
/// recovery codes, shown once.
#[utoipa::path(post, path = "/v1/users/me/totp/{id}/confirm", tag = "users", request_body = CodeRequest,
    params(("id" = String, Path, description = "The factor id")),
    responses((status = 200, description = "Confirmed", body = FactorConfirmed),
        (status = 400, response = BadRequest), (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden), (status = 404, response = NotFound),
        (status = 409, response = Conflict), (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType), (status = 422, response = Unprocessable)),
    security(("session" = [])))]
pub async fn confirm_totp(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    request: ApiJson<CodeRequest>,
) -> Result<Json<FactorConfirmed>, ApiError> {
    let code = request.value.code;
    let confirmed = state
        .app
        .confirm_totp(&auth.0, &id, code.expose_secret())
        .await?;
    Ok(Json(confirmed.into()))
}

/// Your second factors (never their secrets), the recovery codes left, and your phone.
#[utoipa::path(get, path = "/v1/users/me/factors", tag = "users",
    responses((status = 200, description = "Your factors", body = FactorList),
        (status = 401, response = Unauthorized), (status = 403, response = Forbidden)),
    security(("session" = [])))]
pub async fn list_factors(
    State(state): State<AppState>,
    auth: Auth,
) -> Result<Json<FactorList>, ApiError> {
    let overview = state.app.list_own_factors(&auth.0)?;
    Ok(Json(FactorList {
        data: overview.factors.iter().map(FactorView::from).collect(),
        recovery_codes_left: overview.recovery_codes_left,
        phone_verified: overview.phone.is_some(),
        phone: overview.phone,
    }))
}

/// Remove one of your factors. Needs a recent re-authentication; refused (409
/// `factor_required`) when an account of yours requires a second factor and it is your last.
#[utoipa::path(delete, path = "/v1/users/me/factors/{id}", tag = "users",
    params(("id" = String, Path, description = "The factor id")),
    responses((status = 204, description = "Removed"),
        (status = 401, response = Unauthorized), (status = 403, response = Forbidden),
        (status = 404, response = NotFound), (status = 409, response = Conflict)),
    security(("session" = [])))]
pub async fn remove_factor(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.app.remove_factor(&auth.0, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Replace your recovery codes with ten new ones, shown once. Needs a recent
/// re-authentication.
#[utoipa::path(post, path = "/v1/users/me/recovery-codes", tag = "users",
    responses((status = 200, description = "The new codes", body = RecoveryCodes),
        (status = 401, response = Unauthorized), (status = 403, response = Forbidden)),
    security(("session" = [])))]
pub async fn regenerate_recovery_codes(
    State(state): State<AppState>,
    auth: Auth,
) -> Result<Json<RecoveryCodes>, ApiError> {
    let recovery_codes = state.app.regenerate_recovery_codes(&auth.0).await?;
    Ok(Json(RecoveryCodes { recovery_codes }))
}

/// Get codes by SMS at a phone number: a six-digit code is sent to it, valid five minutes.
/// Needs a recent re-authentication; one code per 30 seconds.
#[utoipa::path(post, path = "/v1/users/me/phone", tag = "users", request_body = PhoneRequest,
    responses((status = 202, description = "A code is on its way", body = CodeSentView),
        (status = 400, response = BadRequest), (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden), (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType), (status = 422, response = Unprocessable),
        (status = 429, response = TooManyRequests)),
    security(("session" = [])))]
pub async fn start_phone(
    State(state): State<AppState>,
    auth: Auth,
    request: ApiJson<PhoneRequest>,
) -> Result<(StatusCode, Json<CodeSentView>), ApiError> {
    let sent = state
        .app
        .start_phone_verification(&auth.0, &request.value.phone)
        .await?;
    Ok((StatusCode::ACCEPTED, Json(sent.into())))
}

/// Confirm your phone with the code sent to it (single use; three wrong codes end it).
#[utoipa::path(post, path = "/v1/users/me/phone/verify", tag = "users", request_body = CodeRequest,
    responses((status = 200, description = "The phone is verified", body = FactorConfirmed),
        (status = 400, response = BadRequest), (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden), (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType), (status = 422, response = Unprocessable)),
    security(("session" = [])))]
pub async fn verify_phone(
    State(state): State<AppState>,
    auth: Auth,
    request: ApiJson<CodeRequest>,
) -> Result<Json<FactorConfirmed>, ApiError> {
    let code = request.value.code;
    let confirmed = state
        .app
        .verify_phone(&auth.0, code.expose_secret())
        .await?;
    Ok(Json(confirmed.into()))
}

/// Forget your phone. Needs a recent re-authentication; refused (409 `factor_required`) when
/// it is your last factor and an account of yours requires one.
#[utoipa::path(delete, path = "/v1/users/me/phone", tag = "users",
    responses((status = 204, description = "Forgotten"),
        (status = 401, response = Unauthorized), (status = 403, response = Forbidden),
        (status = 404, response = NotFound), (status = 409, response = Conflict)),
    security(("session" = [])))]
pub async fn remove_phone(
    State(state): State<AppState>,
    auth: Auth,
) -> Result<StatusCode, ApiError> {
    state.app.remove_phone(&auth.0).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Second step of signing in: a code from your authenticator app. Three wrong second factors
/// end the sign-in (start again with your password).
#[utoipa::path(post, path = "/v1/auth/login/totp", tag = "auth", request_body = CodeRequest,
    responses((status = 200, description = "Signed in (session cookie set)", body = LoginResult),
        (status = 400, response = BadRequest), (status = 401, response = Unauthorized),
        (status = 413, response = PayloadTooLarge), (status = 415, response = UnsupportedMediaType),
        (status = 422, response = Unprocessable), (status = 429, response = TooManyRequests)))]
pub async fn login_totp(
    State(state): State<AppState>,
    PendingSignIn(pending): PendingSignIn,
    ClientInfo(client): ClientInfo,
    request: ApiJson<CodeRequest>,
) -> Result<Response, ApiError> {
    let code = request.value.code;
    let new = state
        .app
        .sign_in_with_totp(&pending, code.expose_secret(), &client)
        .await?;
    Ok(signed_in(&state, &new))
}

/// Second step of signing in: send a code to your verified phone (a new one replaces the
/// last; one per 30 seconds). Refused (403 `factor_not_allowed`) when an account of yours
/// does not allow codes by SMS.
#[utoipa::path(post, path = "/v1/auth/login/sms/send", tag = "auth",
    responses((status = 202, description = "A code is on its way", body = CodeSentView),
        (status = 401, response = Unauthorized), (status = 403, response = Forbidden),
        (status = 409, response = Conflict), (status = 429, response = TooManyRequests)))]
pub async fn login_sms_send(
    State(state): State<AppState>,
    PendingSignIn(pending): PendingSignIn,
) -> Result<(StatusCode, Json<CodeSentView>), ApiError> {
    let sent = state.app.send_sign_in_code(&pending).await?;
    Ok((StatusCode::ACCEPTED, Json(sent.into())))
}

/// Second step of signing in: the code sent by SMS.
#[utoipa::path(post, path = "/v1/auth/login/sms", tag = "auth", request_body = CodeRequest,
    responses((status = 200, description = "Signed in (session cookie set)", body = LoginResult),
        (status = 400, response = BadRequest), (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden), (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType), (status = 422, response = Unprocessable),
        (status = 429, response = TooManyRequests)))]
pub async fn login_sms(
    State(state): State<AppState>,
    PendingSignIn(pending): PendingSignIn,
    ClientInfo(client): ClientInfo,
    request: ApiJson<CodeRequest>,
) -> Result<Response, ApiError> {
    let code = request.value.code;
    let new = state
        .app
        .sign_in_with_sms(&pending, code.expose_secret(), &client)
        .await?;
    Ok(signed_in(&state, &new))
}

/// Second step of signing in: one of your recovery codes (each works once).
#[utoipa::path(post, path = "/v1/auth/login/recovery", tag = "auth", request_body = CodeRequest,
    responses((status = 200, description = "Signed in (session cookie set)", body = LoginResult),
        (status = 400, response = BadRequest), (status = 401, response = Unauthorized),
        (status = 413, response = PayloadTooLarge), (status = 415, response = UnsupportedMediaType),
        (status = 422, response = Unprocessable), (status = 429, response = TooManyRequests)))]
pub async fn login_recovery(
    State(state): State<AppState>,
    PendingSignIn(pending): PendingSignIn,
    ClientInfo(client): ClientInfo,
    request: ApiJson<CodeRequest>,
) -> Result<Response, ApiError> {
    let code = request.value.code;
    let new = state
        .app
        .sign_in_with_recovery_code(&pending, code.expose_secret(), &client)
        .await?;
    Ok(signed_in(&state, &new))
}

/// An account's rules for its people.
///
/// NIST SP 800-63B 5.1.1.2 advises against forcing passwords to change periodically;
/// `password_max_age_days` exists for organisations whose own rules demand it.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PeopleSecurity {
    /// Members must have a second factor; until they enrol one, a session may only reach
    /// their own `/v1/users/me` routes.
    pub require_2fa: bool,
    /// Whether codes by SMS count as a second factor (NIST SP 800-63B calls SMS restricted).
    pub allow_sms_factor: bool,
    /// Days before a password must change (`null`: never, as NIST SP 800-63B advises).
    #[schema(minimum = 1, maximum = 3650)]
    #[serde(default, deserialize_with = "crate::whole_number::optional_u32")]
    pub password_max_age_days: Option<u32>,
    /// Former passwords a member may not reuse.
    #[schema(minimum = 0, maximum = 24)]
    #[serde(deserialize_with = "crate::whole_number::u32_whole")]
    pub password_history: u32,
}

impl From<PeoplePolicyRecord> for PeopleSecurity {
    fn from(p: PeoplePolicyRecord) -> Self {
        Self {
            require_2fa: p.require_2fa,
            allow_sms_factor: p.allow_sms_factor,
            password_max_age_days: p.password_max_age_days,
            password_history: p.password_history,
        }
    }
}

/// The account's rules for its people (`members:read`).
#[utoipa::path(get, path = "/v1/accounts/{id}/security", tag = "members",
    params(("id" = String, Path, description = "The account id")),
    responses((status = 200, description = "The rules", body = PeopleSecurity),
        (status = 401, response = Unauthorized), (status = 403, response = Forbidden),
        (status = 404, response = NotFound)),
    security(("api_key" = []), ("session" = [])))]
pub async fn get_security(
    State(state): State<AppState>,
    auth: Auth,
    Path(account): Path<String>,
) -> Result<Json<PeopleSecurity>, ApiError> {
    Ok(Json(state.app.people_policy(&auth.0, &account)?.into()))
}

/// Set the account's rules for its people (`account:manage`; a session needs a recent
/// re-authentication). NIST SP 800-63B advises against forced periodic password rotation:
/// leave `password_max_age_days` null unless your organisation must have it.
#[utoipa::path(put, path = "/v1/accounts/{id}/security", tag = "members", request_body = PeopleSecurity,
    params(("id" = String, Path, description = "The account id")),
    responses((status = 200, description = "The rules now", body = PeopleSecurity),
        (status = 400, response = BadRequest), (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden), (status = 404, response = NotFound),
        (status = 413, response = PayloadTooLarge), (status = 415, response = UnsupportedMediaType),
        (status = 422, response = Unprocessable)),
    security(("api_key" = []), ("session" = [])))]
pub async fn set_security(
    State(state): State<AppState>,
    auth: Auth,
    Path(account): Path<String>,
    request: ApiJson<PeopleSecurity>,
) -> Result<Json<PeopleSecurity>, ApiError> {
    let r = request.value;
    let policy = PeoplePolicyRecord {
        require_2fa: r.require_2fa,
        allow_sms_factor: r.allow_sms_factor,
        password_max_age_days: r.password_max_age_days,
        password_history: r.password_history,
    };
    let set = state
        .app
        .set_people_policy(&auth.0, &account, policy)
        .await?;
    Ok(Json(set.into()))
}
