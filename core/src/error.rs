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

/// What kind of failure an [`ApiError`] is. Decides whether a retry can help.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// QPS / per-minute limits (90002, 90018, 90005, 90006, `Forbidden.AccessDenied.Qps*`,
    /// `send.too.fast`, webhook 130101 / 410100 / 660026, ...). Retry after a pause.
    RateLimited,
    /// Monthly call quota exhausted (90020, `ApiCountLimitForOrg`). Retrying does not help.
    QuotaExceeded,
    /// The access token is invalid or expired (40014, 42001, 40001, 33001, 41001, `88`+`40014`,
    /// `InvalidAuthentication`). Refresh the token and retry once.
    TokenInvalid,
    /// The client id / secret is wrong (`invalidClientIdOrSecret`, 40096). Terminal.
    InvalidCredentials,
    /// The app lacks the permission (60011, `Forbidden.AccessDenied.AccessTokenPermissionDenied`).
    PermissionDenied,
    /// The calling IP is not on the app's whitelist (60020, `Forbidden.AccessDenied.IpNotInWhiteList`).
    IpNotWhitelisted,
    /// A parameter is invalid (40035, `param.*`, `invalidParameter*`, 400002).
    InvalidParameter,
    /// The resource does not exist (60121, 60111, 60003, 33012, `resource.not.found`, `staff.not.found`).
    NotFound,
    /// Invalid media file type, size or id (40004–40007).
    InvalidFile,
    /// DingTalk is busy or failed (-1, `system.busy`, `unknownError`, HTTP 5xx). Retry later.
    ServerBusy,
    /// The session webhook expired (refused before sending, or 300001 from DingTalk).
    SessionWebhookExpired,
    /// The custom robot refused the message: keyword, signature, timestamp or IP check (310000),
    /// unknown or stopped robot (300001, 300005, 400101–400106), group dissolved (400013).
    WebhookRejected,
    /// The message is too long (460101, 101002) or otherwise over a documented limit.
    TooLarge,
    /// The content was judged unsafe (430101–430104, `param.contentUnsafe`).
    ContentUnsafe,
    /// The request was refused by the SDK before sending (a documented limit was exceeded).
    Validation,
    /// The response could not be understood (not JSON, HTML error page, wrong types, empty).
    InvalidResponse,
    /// Any other DingTalk code; the raw code is in [`ApiError::code`].
    Other,
}

/// An OpenAPI, webhook or token error. The raw code, message, request id and HTTP status are
/// always kept, whatever the [`ErrorKind`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind:?}: {}", self.describe())]
pub struct ApiError {
    /// The classification.
    pub kind: ErrorKind,
    /// HTTP status, when a response was received.
    pub status: Option<u16>,
    /// `errcode` (oapi, webhooks) or `code` (api), as text.
    pub code: Option<String>,
    /// `sub_code` of an oapi `88` wrapper.
    pub sub_code: Option<String>,
    /// `errmsg` / `message` / `sub_msg`, or the SDK's own explanation.
    pub message: Option<String>,
    /// `requestid` / `request_id`.
    pub request_id: Option<String>,
}

impl ApiError {
    /// An error of `kind` with only a message (validation, unreadable responses).
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            status: None,
            code: None,
            sub_code: None,
            message: Some(message.into()),
            request_id: None,
        }
    }

    /// A request refused before sending.
    pub fn validation(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Validation, message)
    }

    /// Whether retrying the same call later can succeed (rate limits, busy server).
    /// Token errors are retryable only after a refresh: see [`ApiError::is_token_error`].
    pub fn is_retryable(&self) -> bool {
        matches!(self.kind, ErrorKind::RateLimited | ErrorKind::ServerBusy)
    }

    /// Whether the access token should be refreshed and the call retried once.
    pub fn is_token_error(&self) -> bool {
        self.kind == ErrorKind::TokenInvalid
    }

    /// The pause DingTalk documents before a retry: 1 s for QPS limits (they last one second),
    /// 60 s for per-minute limits, 1 s for a busy server; `None` when a retry cannot help.
    pub fn retry_after(&self) -> Option<std::time::Duration> {
        use std::time::Duration;
        match self.kind {
            ErrorKind::RateLimited => {
                let per_minute = matches!(
                    self.code.as_deref(),
                    Some(
                        "90005"
                            | "90006"
                            | "130101"
                            | "660026"
                            | "Forbidden.AccessDenied.QpmLimitForAppkeyAndApi"
                    )
                );
                Some(if per_minute {
                    Duration::from_secs(60)
                } else {
                    Duration::from_secs(1)
                })
            }
            ErrorKind::ServerBusy => Some(Duration::from_secs(1)),
            _ => None,
        }
    }

    fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(s) = self.status {
            parts.push(format!("HTTP {s}"));
        }
        if let Some(c) = &self.code {
            parts.push(format!("code {c}"));
        }
        if let Some(c) = &self.sub_code {
            parts.push(format!("sub_code {c}"));
        }
        if let Some(m) = &self.message {
            parts.push(m.clone());
        }
        if let Some(r) = &self.request_id {
            parts.push(format!("request id {r}"));
        }
        parts.join(", ")
    }
}

/// Classifies a DingTalk error code (oapi `errcode`, oapi `sub_code`, api `code`, webhook
/// `errcode`) per reference/openapi.md §9.
pub fn classify_code(code: &str) -> ErrorKind {
    match code {
        "40014" | "42001" | "40001" | "33001" | "41001" | "40000" | "InvalidAuthentication" => {
            ErrorKind::TokenInvalid
        }
        "40096" | "invalidClientIdOrSecret" | "invalid.client" | "authFailed" => {
            ErrorKind::InvalidCredentials
        }
        "90002"
        | "90018"
        | "90005"
        | "90006"
        | "45009"
        | "90001"
        | "90003"
        | "90004"
        | "90007"
        | "90008"
        | "90009"
        | "90010"
        | "90011"
        | "90012"
        | "90013"
        | "90014"
        | "Forbidden.AccessDenied.QpsLimitForApi"
        | "Forbidden.AccessDenied.QpsLimitForAppkeyAndApi"
        | "Forbidden.AccessDenied.QpmLimitForAppkeyAndApi"
        | "send.too.fast"
        | "too.many.group"
        | "too.many.people"
        | "send.byToken.tooFast"
        | "130101"
        | "410100"
        | "660026" => ErrorKind::RateLimited,
        "90020" | "Forbidden.AccessDenied.ApiCountLimitForOrg" => ErrorKind::QuotaExceeded,
        "60011" | "Forbidden.AccessDenied.AccessTokenPermissionDenied" => {
            ErrorKind::PermissionDenied
        }
        "60020" | "Forbidden.AccessDenied.IpNotInWhiteList" => ErrorKind::IpNotWhitelisted,
        "40035" | "400002" | "param.invalid" | "AuthenticationFailed.MissingParameter" => {
            ErrorKind::InvalidParameter
        }
        "60121" | "60111" | "60003" | "33012" | "resource.not.found" | "staff.not.found"
        | "71007" => ErrorKind::NotFound,
        "40004" | "40005" | "40006" | "40007" => ErrorKind::InvalidFile,
        "-1" | "system.busy" | "unknownError" => ErrorKind::ServerBusy,
        "300001" => ErrorKind::SessionWebhookExpired,
        "310000" | "300005" | "400013" | "400101" | "400102" | "400105" | "400106" => {
            ErrorKind::WebhookRejected
        }
        "460101" | "101002" => ErrorKind::TooLarge,
        "430101" | "430102" | "430103" | "430104" | "param.contentUnsafe" => {
            ErrorKind::ContentUnsafe
        }
        c if c.starts_with("invalidParameter") || c.starts_with("param.") => {
            ErrorKind::InvalidParameter
        }
        c if c.starts_with("Forbidden.AccessDenied") => ErrorKind::PermissionDenied,
        _ => ErrorKind::Other,
    }
}

/// Why running an API call failed, as every adapter reports it.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    /// DingTalk (or the SDK's own pre-send check) refused the call.
    #[error(transparent)]
    Api(#[from] ApiError),
    /// The request could not be sent or its answer not received.
    #[error("transport error: {0}")]
    Transport(String),
}

impl ClientError {
    /// The API error, if DingTalk answered (or the SDK refused the call before sending).
    pub fn api_error(&self) -> Option<&ApiError> {
        match self {
            Self::Api(e) => Some(e),
            Self::Transport(_) => None,
        }
    }
}
