//! Extractors that turn requests into typed values or a problem response: JSON bodies, query
//! strings, and the authenticated principal behind an API key.

use std::net::SocketAddr;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use serde::de::DeserializeOwned;

use super::AppState;
use super::error::ApiError;
use crate::app::Caller;
use crate::identity::Scope;
use crate::network::client_cert::{CertFingerprint, PeerCertificate};

/// A JSON body, with the raw bytes kept (for idempotency fingerprints).
pub struct ApiJson<T> {
    pub value: T,
    pub raw: Bytes,
}

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|mime| {
                let mime = mime.trim().to_ascii_lowercase();
                mime == "application/json"
                    || (mime.starts_with("application/") && mime.ends_with("+json"))
            });
        if !is_json {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the body as JSON with `Content-Type: application/json`",
            ));
        }
        let raw = Bytes::from_request(req, state).await.map_err(body_error)?;
        let value = parse_json(&raw)?;
        Ok(Self { value, raw })
    }
}

/// The answer to a body over `limits.max_body_bytes`.
pub fn payload_too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        "the request body is too large",
    )
}

fn body_error(rejection: BytesRejection) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        payload_too_large()
    } else {
        ApiError::bad_request("unreadable_body", "the request body could not be read")
    }
}

/// Parses JSON, telling syntax errors (400) from well-formed JSON of the wrong shape (422).
pub fn parse_json<T: DeserializeOwned>(raw: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(raw);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        match inner.classify() {
            serde_json::error::Category::Data => {
                let err =
                    ApiError::unprocessable("invalid_field", strip_position(&inner.to_string()));
                if path == "." {
                    err
                } else {
                    err.with_field(path)
                }
            }
            _ => ApiError::bad_request(
                "malformed_json",
                format!("the body is not valid JSON: {inner}"),
            ),
        }
    })?;
    de.end().map_err(|e| {
        ApiError::bad_request("malformed_json", format!("the body is not valid JSON: {e}"))
    })?;
    Ok(value)
}

fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(at) => message[..at].to_owned(),
        None => message.to_owned(),
    }
}

/// A query string parsed into `T`; unknown or malformed parameters are a 400.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or("");
        serde_urlencoded::from_str(query)
            .map(ApiQuery)
            .map_err(|e| {
                ApiError::bad_request("invalid_query", format!("invalid query string: {e}"))
            })
    }
}

/// The caller, authenticated by `Authorization: Bearer rk_...`, or by a person's session
/// cookie (with the session's CSRF token on every state-changing request).
pub struct Auth(pub Caller);

/// The session cookie: `__Host-` binds it to this origin, over HTTPS, for every path
/// (OWASP ASVS 4.0 V3.4.1-V3.4.4).
pub const SESSION_COOKIE: &str = "__Host-rampart_session";
/// The cookie of a sign-in waiting for its second factor.
pub const PENDING_COOKIE: &str = "__Host-rampart_sign_in";
/// The header carrying the session's CSRF token.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// The header naming the account a session acts in (when the path does not).
pub const ACCOUNT_HEADER: &str = "rampart-account";

impl Auth {
    /// The caller, once it holds `scope` (use cases check again; this lets handlers that
    /// read server state rather than call a use case deny by default too).
    pub fn require(&self, scope: Scope) -> Result<&Caller, ApiError> {
        self.0.require(scope)?;
        Ok(&self.0)
    }
}

/// The value of cookie `name` in the request, if sent.
pub fn cookie<'a>(parts: &'a Parts, name: &str) -> Option<&'a str> {
    parts
        .headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.trim())
}

/// The client's address, as the server's trusted-proxy rule sees it.
pub fn client_ip(parts: &Parts, state: &AppState) -> Option<std::net::IpAddr> {
    let forwarded_for = parts
        .headers
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok());
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| state.app.client_ip(info.0.ip(), forwarded_for))
}

/// The verified client certificate of the request's connection (mutual TLS), if it had one.
pub fn client_certificate(parts: &Parts) -> Option<CertFingerprint> {
    parts.extensions.get::<PeerCertificate>().map(|peer| peer.0)
}

/// The account a request is about: `/v1/accounts/{id}/…` in the path, else the
/// `Rampart-Account` header.
fn account_of(parts: &Parts) -> Option<&str> {
    parts
        .uri
        .path()
        .strip_prefix("/v1/accounts/")
        .and_then(|rest| rest.split('/').next())
        .filter(|id| !id.is_empty())
        .or_else(|| {
            parts
                .headers
                .get(ACCOUNT_HEADER)
                .and_then(|v| v.to_str().ok())
        })
}

impl FromRequestParts<AppState> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let presented = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim());
        let ip = client_ip(parts, state);
        if presented.is_none()
            && let Some(session) = cookie(parts, SESSION_COOKIE)
        {
            let csrf = parts.headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok());
            let changes_state = !parts.method.is_safe();
            let caller = state.app.authenticate_session(
                session,
                csrf,
                changes_state,
                account_of(parts),
                ip,
            )?;
            return Ok(Auth(caller));
        }
        let certificate = client_certificate(parts);
        Ok(Auth(state.app.authenticate_with_certificate(
            presented,
            ip,
            certificate,
        )?))
    }
}
