//! Typed errors of the Stream session. No `io::Error` here: the core does no IO.

/// A terminal error: the session stops after reporting it.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The configuration cannot work (empty credentials, a bad endpoint URL, ...).
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
    /// The gateway rejected the client id or secret (HTTP 401 `authFailed`, or
    /// `invalidClientIdOrSecret`). Retrying cannot help, so the session stops.
    #[error(
        "DingTalk rejected the credentials (HTTP {status}, code {code:?}, message {message:?})"
    )]
    AuthFailed {
        /// HTTP status of the open-connection response.
        status: u16,
        /// The `code` of the error body, when it had one.
        code: Option<String>,
        /// The `message` of the error body.
        message: Option<String>,
        /// The `requestid` of the error body, for DingTalk support.
        request_id: Option<String>,
    },
}

/// Why one attempt to open a connection failed. Not terminal: the session retries with backoff.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    /// The gateway answered with an error status.
    #[error("open-connection answered HTTP {status} (code {code:?}, message {message:?})")]
    Status {
        /// HTTP status.
        status: u16,
        /// The `code` of the error body.
        code: Option<String>,
        /// The `message` of the error body.
        message: Option<String>,
        /// The `requestid` of the error body.
        request_id: Option<String>,
    },
    /// A 2xx answer without a usable `endpoint` and `ticket`.
    #[error("invalid open-connection response: {0}")]
    InvalidResponse(String),
    /// The adapter could not complete the HTTP call.
    #[error("open-connection request failed: {0}")]
    Transport(String),
    /// No answer within the open timeout.
    #[error("open-connection request timed out")]
    Timeout,
}
