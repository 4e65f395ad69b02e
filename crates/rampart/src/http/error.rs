//! The one API error type, rendered as RFC 9457 `application/problem+json` with a stable,
//! machine-readable `code`. Server faults are logged and shown opaque.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::app::AppError;
use crate::network::rate_limit::Limited;

/// An error as the API reports it.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub detail: String,
    /// Extra members of the problem object (e.g. which field).
    pub field: Option<String>,
    pub retry_after: Option<u64>,
    /// The limit in force, for a 429.
    pub rate_limit_policy: Option<String>,
    /// Every rule a refused send broke (boxed: most errors carry none, and every handler
    /// returns this type).
    pub violations: Option<Box<Vec<ViolationView>>>,
}

/// One rule of the account's policy that a message breaks (docs/policy.md).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ViolationView {
    /// Stable machine-readable code, e.g. `destination_not_allowed`.
    pub code: &'static str,
    /// A sentence for people.
    pub message: String,
    /// The rule of the policy document that fired, e.g. `destinations.allowed_countries`.
    pub rule: &'static str,
    /// The request field at fault (`to[2]`), when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl From<crate::policy::Violation> for ViolationView {
    fn from(v: crate::policy::Violation) -> Self {
        Self {
            code: v.code,
            message: v.message,
            rule: v.rule,
            field: v.field,
        }
    }
}

/// The problem document (RFC 9457).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// A URI naming the problem type: `urn:rampart:problem:<code>`.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: &'static str,
    pub status: u16,
    pub detail: String,
    /// Stable machine-readable error code.
    pub code: &'static str,
    /// The request field at fault, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// For a send the account's policy refused: every rule it broke, the first of which
    /// gave `code`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub violations: Option<Vec<ViolationView>>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        Self {
            status,
            code,
            detail: detail.into(),
            field: None,
            retry_after: None,
            rate_limit_policy: None,
            violations: None,
        }
    }

    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    pub fn bad_request(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, detail)
    }

    pub fn unprocessable(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, detail)
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no such {what}"),
        )
    }

    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "a valid API key or session is required: send `Authorization: Bearer rk_...` or sign in",
        )
    }

    pub fn forbidden_scope(scope: &str) -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "insufficient_scope",
            format!("this API key lacks the `{scope}` scope"),
        )
    }

    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "an internal error occurred; it has been logged",
        )
    }

    pub fn unavailable(detail: impl Into<String>) -> Self {
        let mut e = Self::new(StatusCode::SERVICE_UNAVAILABLE, "overloaded", detail);
        e.retry_after = Some(1);
        e
    }

    /// 429 with `Retry-After` (whole seconds, at least 1) and the limit in force as
    /// `RateLimit-Policy` (draft-ietf-httpapi-ratelimit-headers).
    pub fn rate_limited(limited: &Limited) -> Self {
        let mut e = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!(
                "over the {} limit of {} requests per second (burst {}); retry after the time in Retry-After",
                limited.scope.replace('_', " "),
                limited.per_second,
                limited.burst
            ),
        );
        e.retry_after = Some(limited.retry_after.as_secs_f64().ceil().max(1.0) as u64);
        e.rate_limit_policy = Some(format!(
            "{};w=1;burst={}",
            limited.per_second, limited.burst
        ));
        e
    }

    pub fn shutting_down() -> Self {
        let mut e = Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "shutting_down",
            "the server is shutting down; retry on another instance or shortly",
        );
        e.retry_after = Some(5);
        e
    }

    pub fn problem(&self) -> Problem {
        Problem {
            kind: format!("urn:rampart:problem:{}", self.code),
            title: self.status.canonical_reason().unwrap_or("Error"),
            status: self.status.as_u16(),
            detail: self.detail.clone(),
            code: self.code,
            field: self.field.clone(),
            violations: self.violations.as_deref().cloned(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() && self.status != StatusCode::SERVICE_UNAVAILABLE {
            tracing::error!(code = self.code, detail = %self.detail, "request failed");
        }
        let mut response = (self.status, Json(self.problem())).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some(seconds) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if let Some(policy) = self.rate_limit_policy.as_deref()
            && let Ok(value) = HeaderValue::from_str(policy)
        {
            headers.insert("ratelimit-policy", value);
            if let Some(seconds) = self.retry_after {
                let now = format!("remaining=0, reset={seconds}");
                if let Ok(value) = HeaderValue::from_str(&now) {
                    headers.insert("ratelimit", value);
                }
            }
        }
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"rampart\""),
            );
        }
        response
    }
}

impl From<AppError> for ApiError {
    fn from(e: AppError) -> Self {
        match e {
            AppError::Invalid {
                code,
                message,
                field,
            } => Self {
                field,
                ..Self::unprocessable(code, message)
            },
            AppError::PolicyRefused(violations) => {
                let first = violations.first().cloned();
                let mut e = match &first {
                    Some(v) => Self {
                        field: v.field.clone(),
                        ..Self::unprocessable(v.code, format!("{} (rule {})", v.message, v.rule))
                    },
                    None => Self::unprocessable(
                        "policy_denied",
                        "the account's policy refused this message",
                    ),
                };
                e.violations = Some(Box::new(
                    violations.into_iter().map(ViolationView::from).collect(),
                ));
                e
            }
            AppError::BadRequest {
                code,
                message,
                field,
            } => Self {
                field,
                ..Self::bad_request(code, message)
            },
            AppError::Unauthenticated => Self::unauthorized(),
            AppError::SignInRefused => Self::new(
                StatusCode::UNAUTHORIZED,
                "invalid_credentials",
                "the email, password or code was not accepted",
            ),
            AppError::Throttled { retry_after_ms } => {
                let mut e = Self::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "too_many_attempts",
                    "too many failed attempts; retry after the time in Retry-After",
                );
                e.retry_after = Some((retry_after_ms.max(1) as u64).div_ceil(1000));
                e
            }
            AppError::Forbidden { code, message } => {
                Self::new(StatusCode::FORBIDDEN, code, message)
            }
            AppError::NotFound(what) => Self::not_found(what),
            AppError::Conflict { code, message } => Self::new(StatusCode::CONFLICT, code, message),
            AppError::PaymentRequired { code, message } => {
                Self::new(StatusCode::PAYMENT_REQUIRED, code, message)
            }
            AppError::ShuttingDown => Self::shutting_down(),
            AppError::RateLimited(limited) => Self::rate_limited(&limited),
            AppError::Store(e) => {
                tracing::error!(error = %e, "store error");
                Self::internal()
            }
            AppError::Keyring(e) => {
                tracing::error!(error = %e, "keyring error");
                Self::internal()
            }
            AppError::Setup(e) => {
                tracing::error!(error = %e, "server fault");
                Self::internal()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stopping_server_answers_503_shutting_down_with_retry_after() {
        let error = ApiError::from(AppError::ShuttingDown);
        assert_eq!(error.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(error.code, "shutting_down");
        assert!(error.retry_after.is_some());
    }

    #[test]
    fn server_faults_are_opaque_500s() {
        let error = ApiError::from(AppError::Setup("row 7 of /var/lib/rampart".into()));
        assert_eq!(error.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(!error.detail.contains("row 7"));
    }

    #[test]
    fn use_case_refusals_keep_their_code_and_field() {
        let error = ApiError::from(AppError::invalid("invalid_sender", "bad", "from"));
        assert_eq!(error.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(
            (error.code, error.field.as_deref()),
            ("invalid_sender", Some("from"))
        );
        let error = ApiError::from(AppError::invalid_filter("invalid_query", "bad", "limit"));
        assert_eq!(error.status, StatusCode::BAD_REQUEST);
    }
}
