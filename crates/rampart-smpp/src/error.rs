//! The one error type of this crate: what a caller of [`crate::SmppClient`] can be told.

/// Errors returned by [`crate::SmppClient::spawn`], [`crate::SmppHandle::submit`] and the
/// address helpers.
///
/// Failures of a message after it was accepted by `submit` are never errors: they arrive as
/// [`crate::SmppEvent`]s (`Rejected`, `Requeue`).
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum SmppError {
    /// The configuration cannot work: a field is out of range, a credential is longer than
    /// SMPP allows, or a TLS certificate or key does not parse.
    #[error("invalid SMPP configuration: {0}")]
    InvalidConfig(String),
    /// An address cannot be sent over SMPP: empty, too long, or with characters SMPP address
    /// fields do not carry.
    #[error("invalid address: {0}")]
    InvalidAddress(String),
    /// The submission cannot be encoded: no parts, a part too long for one SMS, a GSM-7 part
    /// with a byte that is not a septet, or too many parts.
    #[error("invalid submission: {0}")]
    InvalidSubmission(String),
    /// The client was shut down (or its handle dropped); nothing more can be submitted.
    #[error("the SMPP client is shut down")]
    ShutDown,
    /// [`crate::SmppClient::spawn`] was called outside a Tokio runtime.
    #[error("the SMPP client must be spawned inside a Tokio runtime")]
    NoRuntime,
    /// Connecting, the TLS handshake or the bind to the SMSC failed. Only seen in
    /// [`crate::LinkState::Down`] reasons: the client keeps retrying with backoff.
    #[error("cannot bind to the SMSC: {0}")]
    Link(String),
}
