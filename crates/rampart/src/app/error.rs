//! What a use case can answer instead of its result. Adapters map each variant once: the HTTP
//! API to a problem document, the CLI to a message on stderr.

use crate::data::KeyringError;
use crate::network::rate_limit::Limited;
use crate::store::StoreError;

/// Why a use case did not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// A field of the request is not acceptable (HTTP 422).
    #[error("{message}")]
    Invalid {
        code: &'static str,
        message: String,
        field: Option<String>,
    },
    /// The account's policy refused a send (HTTP 422 with the first violation's code and
    /// every violation listed).
    #[error("the account's policy refused the message")]
    PolicyRefused(Vec<crate::policy::Violation>),
    /// A filter, paging parameter or header is not acceptable (HTTP 400).
    #[error("{message}")]
    BadRequest {
        code: &'static str,
        message: String,
        field: Option<String>,
    },
    /// No valid credentials (HTTP 401). Every cause looks the same to the caller.
    #[error("a valid API key is required")]
    Unauthenticated,
    /// The email and password (or the second factor) were not accepted (HTTP 401). Unknown
    /// emails, wrong passwords, locked and disabled users all look the same.
    #[error("the sign-in was not accepted")]
    SignInRefused,
    /// Too many failed attempts from this client or on this user: wait (HTTP 429 with
    /// `Retry-After`).
    #[error("too many failed attempts; retry in {retry_after_ms} ms")]
    Throttled { retry_after_ms: i64 },
    /// The caller is known but may not do this (HTTP 403).
    #[error("{message}")]
    Forbidden { code: &'static str, message: String },
    /// No such thing in the caller's account (HTTP 404).
    #[error("no such {0}")]
    NotFound(&'static str),
    /// The request conflicts with the current state (HTTP 409).
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    /// The account's balance or spend cap does not cover the send (HTTP 402).
    #[error("{message}")]
    PaymentRequired { code: &'static str, message: String },
    /// The caller is over a rate limit (HTTP 429 with `Retry-After`).
    #[error("rate limit of the {} exceeded", .0.scope)]
    RateLimited(Limited),
    /// The server is stopping and takes no more changes (HTTP 503).
    #[error("the server is shutting down")]
    ShuttingDown,
    /// The database failed (HTTP 500, logged).
    #[error(transparent)]
    Store(StoreError),
    /// A key or ciphertext could not be used (HTTP 500, logged).
    #[error(transparent)]
    Keyring(#[from] KeyringError),
    /// Start-up or file-system trouble (opening the data directory).
    #[error("{0}")]
    Setup(String),
}

impl AppError {
    pub fn invalid(
        code: &'static str,
        message: impl Into<String>,
        field: impl Into<String>,
    ) -> Self {
        Self::Invalid {
            code,
            message: message.into(),
            field: Some(field.into()),
        }
    }

    pub fn invalid_filter(
        code: &'static str,
        message: impl Into<String>,
        field: impl Into<String>,
    ) -> Self {
        Self::BadRequest {
            code,
            message: message.into(),
            field: Some(field.into()),
        }
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::BadRequest {
            code,
            message: message.into(),
            field: None,
        }
    }

    pub fn forbidden(code: &'static str, message: impl Into<String>) -> Self {
        Self::Forbidden {
            code,
            message: message.into(),
        }
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::Conflict {
            code,
            message: message.into(),
        }
    }
}

impl From<StoreError> for AppError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Closed => Self::ShuttingDown,
            other => Self::Store(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_closed_store_means_the_server_is_shutting_down() {
        assert!(matches!(
            AppError::from(StoreError::Closed),
            AppError::ShuttingDown
        ));
        assert!(matches!(
            AppError::from(StoreError::Corrupt("x".into())),
            AppError::Store(_)
        ));
    }
}
