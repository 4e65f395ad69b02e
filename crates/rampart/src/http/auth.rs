//! `/v1/auth/…` and `/v1/users/me/…`: people sign in with email and password (then a second
//! factor when they have one), stay signed in by a `__Host-` session cookie, re-authenticate
//! before sensitive changes, list and end their sessions, and change their password.

use axum::Json;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::AppState;
use super::error::ApiError;
use super::extract::{ApiJson, Auth, PENDING_COOKIE, SESSION_COOKIE, client_ip, cookie};
use super::openapi::{
    BadRequest, Forbidden, NotFound, PayloadTooLarge, TooManyRequests, Unauthorized, Unprocessable,
    UnsupportedMediaType,
};
use crate::app::sessions::SessionRecord;
use crate::app::sessions::{Client, NewSession};
use crate::app::sign_in::SignIn;
use crate::clock::{self, Millis};
use crate::identity::codes::LinkToken;
use crate::identity::roles::{MATRIX, RoleKind};

/// Where the request comes from: address and user agent.
pub struct ClientInfo(pub Client);

impl FromRequestParts<AppState> for ClientInfo {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        Ok(Self(Client {
            ip: client_ip(parts, state),
            user_agent: parts
                .headers
                .get(header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
        }))
    }
}

/// The session cookie of the request, if any.
pub struct SessionCookie(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for SessionCookie {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        Ok(Self(cookie(parts, SESSION_COOKIE).map(str::to_owned)))
    }
}

/// The cookie of a sign-in waiting for its second factor (401 `invalid_credentials`
/// without one).
pub struct PendingSignIn(pub String);

impl<S: Send + Sync> FromRequestParts<S> for PendingSignIn {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        cookie(parts, PENDING_COOKIE)
            .map(|c| Self(c.to_owned()))
            .ok_or_else(|| ApiError::from(crate::app::AppError::SignInRefused))
    }
}

/// A cookie for this origin only, over HTTPS only, out of scripts' reach, never sent by other
/// sites (OWASP ASVS 4.0 V3.4).
pub fn set_cookie(name: &str, value: &str, max_age_ms: Millis) -> HeaderValue {
    let max_age = (max_age_ms.max(0) / 1000).to_string();
    HeaderValue::try_from(format!(
        "{name}={value}; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age={max_age}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Tells the browser to forget a cookie.
pub fn clear_cookie(name: &str) -> HeaderValue {
    set_cookie(name, "", 0)
}

/// Email and password.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    #[schema(example = "ada@example.com", max_length = 254)]
    pub email: String,
    #[schema(value_type = String, format = Password, max_length = 1024)]
    pub password: SecretString,
}

/// The outcome of a sign-in step.
#[derive(Serialize, ToSchema)]
pub struct LoginResult {
    /// `signed_in`, or `second_factor_required` (the sign-in waits in a cookie for one of
    /// `factors` at `/v1/auth/login/{factor}`).
    #[schema(example = "signed_in")]
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session: Option<SessionView>,
    /// Send it as `X-CSRF-Token` with every request that changes something.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub csrf_token: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub factors: Vec<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    pub expires_at: Option<String>,
}

/// A session as its owner sees it.
#[derive(Serialize, ToSchema)]
pub struct SessionView {
    pub id: String,
    pub user_id: String,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub last_seen_at: String,
    #[schema(format = DateTime)]
    pub expires_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_ip: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    /// Whether this is the session making the request.
    pub current: bool,
}

impl SessionView {
    fn new(s: &SessionRecord, current: Option<&str>) -> Self {
        Self {
            id: s.id.clone(),
            user_id: s.user_id.clone(),
            created_at: clock::rfc3339(s.created_at),
            last_seen_at: clock::rfc3339(s.last_seen_at),
            expires_at: clock::rfc3339(s.expires_at),
            client_ip: s.client_ip.clone(),
            user_agent: s.user_agent.clone(),
            current: current == Some(s.id.as_str()),
        }
    }
}

/// Answers a completed sign-in: the session cookie, the pending cookie cleared.
pub fn signed_in(state: &AppState, new: &NewSession) -> Response {
    let mut headers = HeaderMap::new();
    let now = state.app.clock().now_ms();
    headers.append(
        header::SET_COOKIE,
        set_cookie(
            SESSION_COOKIE,
            new.token.reveal(),
            new.session.expires_at - now,
        ),
    );
    headers.append(header::SET_COOKIE, clear_cookie(PENDING_COOKIE));
    let body = LoginResult {
        status: "signed_in",
        session: Some(SessionView::new(&new.session, Some(&new.session.id))),
        csrf_token: Some(new.csrf_token.clone()),
        factors: Vec::new(),
        expires_at: Some(clock::rfc3339(new.session.expires_at)),
    };
    (StatusCode::OK, headers, Json(body)).into_response()
}

/// Sign in with email and password.
#[utoipa::path(post, path = "/v1/auth/login", tag = "auth", request_body = LoginRequest,
    responses((status = 200, description = "Signed in (session cookie set), or waiting for a second factor (sign-in cookie set)", body = LoginResult),
        (status = 400, response = BadRequest), (status = 401, response = Unauthorized),
        (status = 413, response = PayloadTooLarge), (status = 415, response = UnsupportedMediaType),
        (status = 422, response = Unprocessable), (status = 429, response = TooManyRequests)))]
pub async fn login(
    State(state): State<AppState>,
    ClientInfo(client): ClientInfo,
    request: ApiJson<LoginRequest>,
) -> Result<Response, ApiError> {
    let LoginRequest { email, password } = request.value;
    match state.app.sign_in(&email, password, &client).await? {
        SignIn::Done(new) => Ok(signed_in(&state, &new)),
        SignIn::SecondFactor {
            pending,
            factors,
            expires_at,
        } => Ok(waiting_for_factor(&state, &pending, factors, expires_at)),
    }
}

fn waiting_for_factor(
    state: &AppState,
    pending: &LinkToken,
    factors: Vec<&'static str>,
    expires_at: Millis,
) -> Response {
    let now = state.app.clock().now_ms();
    let mut headers = HeaderMap::new();
    headers.append(
        header::SET_COOKIE,
        set_cookie(PENDING_COOKIE, pending.reveal(), expires_at - now),
    );
    let body = LoginResult {
        status: "second_factor_required",
        session: None,
        csrf_token: None,
        factors,
        expires_at: Some(clock::rfc3339(expires_at)),
    };
    (StatusCode::OK, headers, Json(body)).into_response()
}

/// Sign out: the session ends.
#[utoipa::path(post, path = "/v1/auth/logout", tag = "auth",
    responses((status = 204, description = "Signed out; the cookie is cleared"),
        (status = 401, response = Unauthorized), (status = 403, response = Forbidden)),
    security(("session" = [])))]
pub async fn logout(State(state): State<AppState>, auth: Auth) -> Result<Response, ApiError> {
    state.app.sign_out(&auth.0).await?;
    let mut headers = HeaderMap::new();
    headers.append(header::SET_COOKIE, clear_cookie(SESSION_COOKIE));
    Ok((StatusCode::NO_CONTENT, headers).into_response())
}

/// The current session and its CSRF token.
#[derive(Serialize, ToSchema)]
pub struct CurrentSession {
    pub user_id: String,
    /// The account this request acted in (empty for an operator over the instance).
    pub account_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<&'static str>,
    /// What the session may do here.
    pub permissions: Vec<&'static str>,
    pub csrf_token: String,
    #[schema(format = DateTime)]
    pub authenticated_at: String,
}

/// Who the session is, where it acts and what it may do there.
#[utoipa::path(get, path = "/v1/auth/session", tag = "auth",
    responses((status = 200, description = "The session", body = CurrentSession),
        (status = 401, response = Unauthorized), (status = 403, response = Forbidden)),
    security(("session" = [])))]
pub async fn current_session(
    State(state): State<AppState>,
    auth: Auth,
    SessionCookie(token): SessionCookie,
) -> Result<Json<CurrentSession>, ApiError> {
    let caller = auth.0;
    let (Some(user_id), Some(session), Some(token)) = (
        caller.user_id.clone(),
        caller.session.clone(),
        token.as_deref().and_then(|t| LinkToken::parse("rs", t)),
    ) else {
        return Err(ApiError::from(crate::app::AppError::forbidden(
            "session_required",
            "this is for a signed-in person, not an API key",
        )));
    };
    Ok(Json(CurrentSession {
        user_id,
        account_id: caller.account_id.clone(),
        role: caller.role.map(|r| r.as_str()),
        permissions: caller.scopes.names(),
        csrf_token: state.app.csrf_token(&token),
        authenticated_at: clock::rfc3339(session.authenticated_at),
    }))
}

/// A password, to prove again who one is, and a second factor's code for a person with an
/// authenticator app.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Reauthenticate {
    #[schema(value_type = String, format = Password, max_length = 1024)]
    pub password: SecretString,
    /// Required when you have an authenticator app: a current code from it, or one of your
    /// recovery codes (used up).
    #[schema(value_type = Option<String>, example = "492039")]
    pub code: Option<SecretString>,
}

/// Prove again who you are before a sensitive change (making keys, changing roles,
/// removing factors); valid for ten minutes. A person with an authenticator app also gives a
/// code from it (or a recovery code); without one the answer is 401.
#[utoipa::path(post, path = "/v1/auth/reauthenticate", tag = "auth", request_body = Reauthenticate,
    responses((status = 204, description = "Confirmed"),
        (status = 400, response = BadRequest), (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden), (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType), (status = 422, response = Unprocessable)),
    security(("session" = [])))]
pub async fn reauthenticate(
    State(state): State<AppState>,
    auth: Auth,
    ClientInfo(client): ClientInfo,
    request: ApiJson<Reauthenticate>,
) -> Result<StatusCode, ApiError> {
    let Reauthenticate { password, code } = request.value;
    state
        .app
        .reauthenticate(
            &auth.0,
            password,
            code.as_ref().map(|c| c.expose_secret()),
            &client,
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The current and the new password.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangePassword {
    #[schema(value_type = String, format = Password, max_length = 1024)]
    pub current_password: SecretString,
    /// 12 to 128 characters; long passphrases welcome; refused when easy to guess or known
    /// to be breached.
    #[schema(format = Password, min_length = 12, max_length = 1024)]
    pub new_password: String,
    /// Required when you have an authenticator app: a current code from it, or a recovery
    /// code.
    #[schema(value_type = Option<String>, example = "492039")]
    pub code: Option<SecretString>,
}

/// Change your password; every other session ends.
#[utoipa::path(post, path = "/v1/users/me/password", tag = "users", request_body = ChangePassword,
    responses((status = 204, description = "Changed; other sessions ended"),
        (status = 400, response = BadRequest), (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden), (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType), (status = 422, response = Unprocessable)),
    security(("session" = [])))]
pub async fn change_password(
    State(state): State<AppState>,
    auth: Auth,
    ClientInfo(client): ClientInfo,
    request: ApiJson<ChangePassword>,
) -> Result<StatusCode, ApiError> {
    let ChangePassword {
        current_password,
        new_password,
        code,
    } = request.value;
    state
        .app
        .change_password(
            &auth.0,
            current_password,
            code.as_ref().map(|c| c.expose_secret()),
            &new_password,
            &client,
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Serialize, ToSchema)]
pub struct SessionList {
    pub data: Vec<SessionView>,
}

/// Your live sessions, newest first.
#[utoipa::path(get, path = "/v1/users/me/sessions", tag = "users",
    responses((status = 200, description = "Live sessions", body = SessionList),
        (status = 401, response = Unauthorized), (status = 403, response = Forbidden)),
    security(("session" = [])))]
pub async fn list_sessions(
    State(state): State<AppState>,
    auth: Auth,
) -> Result<Json<SessionList>, ApiError> {
    let current = auth.0.session.as_ref().map(|s| s.id.as_str());
    let sessions = state.app.list_own_sessions(&auth.0)?;
    Ok(Json(SessionList {
        data: sessions
            .iter()
            .map(|s| SessionView::new(s, current))
            .collect(),
    }))
}

/// End one of your sessions.
#[utoipa::path(delete, path = "/v1/users/me/sessions/{id}", tag = "users",
    params(("id" = String, Path, description = "The session id")),
    responses((status = 204, description = "Ended"),
        (status = 401, response = Unauthorized), (status = 403, response = Forbidden),
        (status = 404, response = NotFound)),
    security(("session" = [])))]
pub async fn revoke_session(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.app.revoke_own_session(&auth.0, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The signed-in person.
#[derive(Serialize, ToSchema)]
pub struct Me {
    pub id: String,
    pub email: String,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operator_role: Option<String>,
    /// The accounts the person belongs to, with their role in each.
    pub memberships: Vec<MembershipView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    pub password_changed_at: Option<String>,
}

/// One account a person belongs to.
#[derive(Serialize, ToSchema)]
pub struct MembershipView {
    pub account_id: String,
    pub role: String,
}

/// Who you are and where you belong.
#[utoipa::path(get, path = "/v1/users/me", tag = "users",
    responses((status = 200, description = "The signed-in person", body = Me),
        (status = 401, response = Unauthorized), (status = 403, response = Forbidden)),
    security(("session" = [])))]
pub async fn me(State(state): State<AppState>, auth: Auth) -> Result<Json<Me>, ApiError> {
    let (user, memberships) = state.app.me(&auth.0)?;
    Ok(Json(Me {
        id: user.id,
        email: user.email,
        name: user.name,
        operator_role: user.operator_role,
        memberships: memberships
            .into_iter()
            .map(|m| MembershipView {
                account_id: m.account_id,
                role: m.role,
            })
            .collect(),
        password_changed_at: user.password_changed_at.map(clock::rfc3339),
    }))
}

/// One row of the permission matrix.
#[derive(Serialize, ToSchema)]
pub struct RoleView {
    #[schema(example = "developer")]
    pub role: &'static str,
    /// `operator` (over the instance) or `member` (within an account).
    pub kind: &'static str,
    pub permissions: Vec<&'static str>,
}

#[derive(Serialize, ToSchema)]
pub struct RoleList {
    pub data: Vec<RoleView>,
}

/// The permission matrix: every role and what it may do. Anything not listed is denied.
#[utoipa::path(get, path = "/v1/roles", tag = "users",
    responses((status = 200, description = "Every role", body = RoleList)))]
pub async fn list_roles() -> Json<RoleList> {
    Json(RoleList {
        data: MATRIX
            .iter()
            .map(|(role, _)| RoleView {
                role: role.as_str(),
                kind: match role.kind() {
                    RoleKind::Operator => "operator",
                    RoleKind::Member => "member",
                },
                permissions: role.scopes().names(),
            })
            .collect(),
    })
}
