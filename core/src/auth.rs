//! The app access token: the call that fetches it and a cache that decides when to refresh.
//!
//! ```text
//!   empty ──poll──▶ Refresh(request) ──handle_response──▶ valid ──(expireIn − 5 min)──▶ Refresh
//!                        │  poll while in flight: Wait        │ invalidate(token) on a token error
//!                        └──── refresh failed ──▶ empty       └──────────────▶ empty
//! ```
//!
//! ```
//! use std::time::{Duration, Instant};
//! use dingtalk_core::auth::{TokenCache, TokenStep};
//! use dingtalk_core::{Credentials, Endpoints};
//! let mut cache = TokenCache::new(Credentials::new("id", "secret"), Endpoints::default());
//! let now = Instant::now();
//! let TokenStep::Refresh(request) = cache.poll(now) else { unreachable!() };
//! assert_eq!(request.uri(), "https://api.dingtalk.com/v1.0/oauth2/accessToken");
//! assert!(matches!(cache.poll(now), TokenStep::Wait)); // one refresh at a time
//! let response = http::Response::new(br#"{"accessToken":"tok","expireIn":7200}"#.to_vec());
//! cache.handle_response(response, now).unwrap();
//! assert!(matches!(cache.poll(now + Duration::from_secs(6000)), TokenStep::Use(t) if t == "tok"));
//! assert!(matches!(cache.poll(now + Duration::from_secs(6900)), TokenStep::Refresh(_)));
//! ```

use std::fmt;
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::{Value, json};

use crate::api::{ApiCall, RequestSpec, build_request, from_value, parse_response};
use crate::config::{Credentials, Endpoints};
use crate::error::{ApiError, ErrorKind};

/// `POST {api}/v1.0/oauth2/accessToken` with `{appKey, appSecret}`.
#[derive(Clone)]
pub struct GetAccessToken {
    /// The app credentials.
    pub credentials: Credentials,
}

impl fmt::Debug for GetAccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GetAccessToken")
            .field("credentials", &self.credentials)
            .finish()
    }
}

/// The answer of [`GetAccessToken`].
#[derive(Clone, PartialEq, Eq, Deserialize)]
pub struct AccessTokenResponse {
    /// The token.
    #[serde(rename = "accessToken")]
    pub access_token: String,
    /// Validity in seconds (7200).
    #[serde(rename = "expireIn")]
    pub expire_in: u64,
}

impl fmt::Debug for AccessTokenResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessTokenResponse")
            .field("access_token", &"<redacted>")
            .field("expire_in", &self.expire_in)
            .finish()
    }
}

impl ApiCall for GetAccessToken {
    type Output = AccessTokenResponse;

    fn spec(&self) -> Result<RequestSpec, ApiError> {
        self.credentials
            .validate()
            .map_err(|m| ApiError::new(ErrorKind::InvalidCredentials, m))?;
        let mut spec = RequestSpec::api_post(
            "/v1.0/oauth2/accessToken",
            json!({
                "appKey": self.credentials.client_id(),
                "appSecret": self.credentials.client_secret(),
            }),
        );
        spec.needs_token = false;
        Ok(spec)
    }

    fn parse(&self, body: Value) -> Result<AccessTokenResponse, ApiError> {
        let r: AccessTokenResponse = from_value(body)?;
        if r.access_token.is_empty() {
            return Err(ApiError::new(
                ErrorKind::InvalidResponse,
                "empty accessToken",
            ));
        }
        Ok(r)
    }

    fn classify(&self, mut error: ApiError) -> ApiError {
        // A 400 from the token endpoint that is not a credentials error is still not retryable.
        if error.code.as_deref() == Some("invalidClientIdOrSecret") {
            error.kind = ErrorKind::InvalidCredentials;
        }
        error
    }
}

/// What to do about the token now.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // short-lived return value; boxing would only add an allocation
pub enum TokenStep<'a> {
    /// Use this token.
    Use(&'a str),
    /// Send this request and feed its response to [`TokenCache::handle_response`].
    Refresh(http::Request<Vec<u8>>),
    /// A refresh is already in flight: wait for it.
    Wait,
    /// The refresh request cannot be built (e.g. an endpoint that is not a URL): fail the call
    /// now instead of waiting for a refresh that never starts.
    Fail(ApiError),
}

/// The longest a token is kept before it is refreshed, whatever `expireIn` says.
pub const MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(24 * 3600);

/// How long before `expireIn` the token is refreshed.
pub const REFRESH_MARGIN: Duration = Duration::from_secs(300);

/// Caches the app access token: refreshed [`REFRESH_MARGIN`] before it expires, one refresh at a
/// time, dropped when DingTalk says it is invalid.
pub struct TokenCache {
    call: GetAccessToken,
    endpoints: Endpoints,
    token: Option<(String, Instant)>,
    refreshing: bool,
    /// The last token DingTalk refused (a shared copy of it is not adopted).
    rejected: Option<String>,
}

impl fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenCache")
            .field("has_token", &self.token.is_some())
            .field("refreshing", &self.refreshing)
            .finish_non_exhaustive()
    }
}

impl TokenCache {
    /// An empty cache for these credentials.
    pub fn new(credentials: Credentials, endpoints: Endpoints) -> Self {
        Self {
            call: GetAccessToken { credentials },
            endpoints,
            token: None,
            refreshing: false,
            rejected: None,
        }
    }

    /// Decides: use the cached token, refresh it, or wait for the refresh in flight.
    pub fn poll(&mut self, now: Instant) -> TokenStep<'_> {
        let fresh = matches!(&self.token, Some((_, refresh_at)) if now < *refresh_at);
        if fresh {
            if let Some((t, _)) = &self.token {
                return TokenStep::Use(t);
            }
        }
        if self.refreshing {
            return TokenStep::Wait;
        }
        match build_request(&self.call, &self.endpoints, None) {
            Ok(request) => {
                self.refreshing = true;
                TokenStep::Refresh(request)
            }
            Err(e) => TokenStep::Fail(e),
        }
    }

    /// The cached token if it is still fresh, without starting a refresh.
    pub fn current(&self, now: Instant) -> Option<&str> {
        match &self.token {
            Some((t, refresh_at)) if now < *refresh_at => Some(t),
            _ => None,
        }
    }

    /// Feeds the response of the refresh request.
    pub fn handle_response(
        &mut self,
        response: http::Response<Vec<u8>>,
        now: Instant,
    ) -> Result<(), ApiError> {
        self.refreshing = false;
        let r = parse_response(&self.call, response)?;
        // DingTalk says 7200 s; a huge value from a broken or hostile server is capped, and
        // the deadline saturates instead of overflowing.
        let lifetime = Duration::from_secs(r.expire_in.min(MAX_TOKEN_LIFETIME.as_secs()));
        let refresh_in = lifetime.saturating_sub(REFRESH_MARGIN).max(lifetime / 2);
        let refresh_at = now.checked_add(refresh_in).unwrap_or(now);
        self.token = Some((r.access_token, refresh_at));
        Ok(())
    }

    /// The refresh request could not be completed; the next [`TokenCache::poll`] tries again.
    pub fn refresh_failed(&mut self) {
        self.refreshing = false;
    }

    /// Drops `token` if it is the cached one (after a token error). A token refreshed meanwhile
    /// by a concurrent call is kept.
    pub fn invalidate(&mut self, token: &str) {
        if matches!(&self.token, Some((t, _)) if t == token) {
            self.token = None;
        }
        self.rejected = Some(token.to_owned());
    }

    /// The last token DingTalk refused, if any.
    pub fn rejected(&self) -> Option<&str> {
        self.rejected.as_deref()
    }

    /// Takes a token another replica refreshed (see [`crate::store::read_shared_token`]),
    /// fresh for `fresh_for`; ends the refresh this cache started.
    pub fn adopt(&mut self, token: String, fresh_for: Duration, now: Instant) {
        self.refreshing = false;
        let refresh_at = now.checked_add(fresh_for).unwrap_or(now);
        self.token = Some((token, refresh_at));
    }

    /// How long the cached token stays fresh after `now` (`None`: no fresh token).
    pub fn fresh_for(&self, now: Instant) -> Option<Duration> {
        let (_, refresh_at) = self.token.as_ref()?;
        refresh_at
            .checked_duration_since(now)
            .filter(|d| !d.is_zero())
    }

    /// The cached token as a shared value ([`crate::store::shared_token`]), if it is fresh at
    /// `now` (`now_unix_ms` is the same moment on the wall clock).
    pub fn shareable(&self, now: Instant, now_unix_ms: i64) -> Option<String> {
        let (t, refresh_at) = self.token.as_ref()?;
        let left = refresh_at.checked_duration_since(now)?;
        let left_ms = i64::try_from(left.as_millis()).ok()?;
        Some(crate::store::shared_token(
            t,
            now_unix_ms.saturating_add(left_ms),
        ))
    }

    /// Whether `error` should make the adapter invalidate the token and retry once.
    pub fn should_refresh(error: &ApiError) -> bool {
        error.is_token_error()
    }
}
