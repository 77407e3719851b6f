//! Runs any [`ApiCall`] over reqwest: token from the shared cache, refresh-and-retry once on a
//! token error, bounded retries of rate-limited and busy answers.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dingtalk_core::api::retry::{Attempts, Next, RetryPolicy};
use dingtalk_core::api::{ApiCall, build_request, parse_response};
use dingtalk_core::auth::{TokenCache, TokenStep};
use dingtalk_core::{Credentials, Endpoints};
use tokio::sync::Notify;

pub use dingtalk_core::error::ClientError;

struct Tokens {
    cache: Mutex<TokenCache>,
    refreshed: Notify,
}

/// Calls the DingTalk OpenAPI. Cheap to clone; clones share the token cache.
#[derive(Clone)]
pub struct ApiClient {
    http: reqwest::Client,
    endpoints: Endpoints,
    tokens: Arc<Tokens>,
    retry: RetryPolicy,
    robot_code: String,
}

impl std::fmt::Debug for ApiClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiClient")
            .field("endpoints", &self.endpoints)
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

pub(crate) fn build_http(
    tls: &rustls::ClientConfig,
    timeout: Duration,
) -> Result<reqwest::Client, crate::Error> {
    reqwest::Client::builder()
        .use_preconfigured_tls(tls.clone())
        .timeout(timeout)
        .tcp_nodelay(true)
        .build()
        .map_err(|e| crate::Error::Tls(e.to_string()))
}

impl ApiClient {
    pub(crate) fn new(
        http: reqwest::Client,
        credentials: Credentials,
        endpoints: Endpoints,
        retry: RetryPolicy,
    ) -> Self {
        let robot_code = credentials.client_id().to_owned();
        Self {
            http,
            tokens: Arc::new(Tokens {
                cache: Mutex::new(TokenCache::new(credentials, endpoints.clone())),
                refreshed: Notify::new(),
            }),
            endpoints,
            retry,
            robot_code,
        }
    }

    /// The robot code of the app's bot (its client id).
    pub fn robot_code(&self) -> &str {
        &self.robot_code
    }

    /// The hosts calls go to.
    pub fn endpoints(&self) -> &Endpoints {
        &self.endpoints
    }

    /// A copy with another retry policy.
    #[must_use]
    pub fn with_retry_policy(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Runs `call`: fetches or reuses the access token, refreshes it and retries once on a
    /// token error, and retries rate-limited or busy answers per the [`RetryPolicy`].
    pub async fn call<C: ApiCall + ?Sized>(&self, call: &C) -> Result<C::Output, ClientError> {
        let needs_token = call.spec()?.needs_token;
        let mut attempts = Attempts::new(self.retry);
        loop {
            let token = if needs_token {
                Some(self.token().await?)
            } else {
                None
            };
            let request = build_request(call, &self.endpoints, token.as_deref())?;
            let response = self.send(request).await?;
            match attempts.judge(parse_response(call, response)) {
                Next::Done(v) => return Ok(v),
                Next::RefreshToken => {
                    if let Some(t) = &token {
                        self.lock().invalidate(t);
                    }
                    tracing::debug!("access token rejected; refreshing once");
                }
                Next::Retry { after } => {
                    tracing::debug!(?after, "retrying a rate-limited or busy DingTalk call");
                    tokio::time::sleep(after).await;
                }
                Next::Fail(e) => return Err(e.into()),
            }
        }
    }

    /// Downloads the bytes behind a URL (e.g. a `downloadUrl`).
    pub async fn get_bytes(&self, url: &str) -> Result<Vec<u8>, ClientError> {
        let response = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|e| ClientError::Transport(e.to_string()))?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| ClientError::Transport(e.to_string()))?;
        if !status.is_success() {
            return Err(ClientError::Transport(format!(
                "GET answered HTTP {}",
                status.as_u16()
            )));
        }
        Ok(bytes.to_vec())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, TokenCache> {
        self.tokens.cache.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The current access token, fetching it if needed; one refresh at a time.
    pub async fn token(&self) -> Result<String, ClientError> {
        loop {
            // Registered before looking, so a refresh finishing in between still wakes us.
            let notified = self.tokens.refreshed.notified();
            let request = match self.lock().poll(Instant::now()) {
                TokenStep::Use(t) => return Ok(t.to_owned()),
                TokenStep::Refresh(request) => Some(request),
                TokenStep::Wait => None,
            };
            let Some(request) = request else {
                notified.await;
                continue;
            };
            let result = self.send(request).await;
            let outcome = match result {
                Ok(response) => self
                    .lock()
                    .handle_response(response, Instant::now())
                    .map_err(ClientError::from),
                Err(e) => {
                    self.lock().refresh_failed();
                    Err(e)
                }
            };
            self.tokens.refreshed.notify_waiters();
            outcome?;
        }
    }

    pub(crate) async fn send(
        &self,
        request: http::Request<Vec<u8>>,
    ) -> Result<http::Response<Vec<u8>>, ClientError> {
        send(&self.http, request).await
    }
}

pub(crate) async fn send(
    http: &reqwest::Client,
    request: http::Request<Vec<u8>>,
) -> Result<http::Response<Vec<u8>>, ClientError> {
    let request =
        reqwest::Request::try_from(request).map_err(|e| ClientError::Transport(e.to_string()))?;
    let response = http
        .execute(request)
        .await
        .map_err(|e| ClientError::Transport(e.to_string()))?;
    let status = response.status();
    let headers = response.headers().clone();
    let body = response
        .bytes()
        .await
        .map_err(|e| ClientError::Transport(e.to_string()))?;
    let mut out = http::Response::new(body.to_vec());
    *out.status_mut() = status;
    *out.headers_mut() = headers;
    Ok(out)
}
