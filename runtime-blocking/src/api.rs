//! Runs any [`ApiCall`] with ureq: token from the shared cache (one refresh at a time), the
//! core's retry decisions, and plain blocking waits.

use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use dingtalk_core::api::retry::{Attempts, Next, RetryPolicy};
use dingtalk_core::api::{ApiCall, build_request, parse_response};
use dingtalk_core::auth::{TokenCache, TokenStep};
use dingtalk_core::{Credentials, Endpoints};

pub use dingtalk_core::error::ClientError;

struct Tokens {
    cache: Mutex<TokenCache>,
    refreshed: Condvar,
}

/// Calls the DingTalk OpenAPI from any thread. Cheap to clone; clones share the token cache.
#[derive(Clone)]
pub struct ApiClient {
    agent: ureq::Agent,
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

/// The ureq agent: statuses are not errors (the core reads error bodies), timeouts set.
pub fn agent(timeout: Duration) -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(timeout))
        .build()
        .into()
}

impl ApiClient {
    /// An API client for these credentials and hosts, without running a bot (e.g. to send a
    /// message from a script).
    pub fn new(credentials: Credentials, endpoints: Endpoints) -> Self {
        Self::with_agent(
            agent(Duration::from_secs(10)),
            credentials,
            endpoints,
            RetryPolicy::default(),
        )
    }

    pub(crate) fn with_agent(
        agent: ureq::Agent,
        credentials: Credentials,
        endpoints: Endpoints,
        retry: RetryPolicy,
    ) -> Self {
        let robot_code = credentials.client_id().to_owned();
        Self {
            agent,
            tokens: Arc::new(Tokens {
                cache: Mutex::new(TokenCache::new(credentials, endpoints.clone())),
                refreshed: Condvar::new(),
            }),
            endpoints,
            retry,
            robot_code,
        }
    }

    /// A copy with another retry policy.
    #[must_use]
    pub fn with_retry_policy(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// The robot code of the app's bot (its client id).
    pub fn robot_code(&self) -> &str {
        &self.robot_code
    }

    /// The hosts calls go to.
    pub fn endpoints(&self) -> &Endpoints {
        &self.endpoints
    }

    /// Runs `call` with token refresh-and-retry-once and bounded retries of rate-limited or busy
    /// answers.
    pub fn call<C: ApiCall + ?Sized>(&self, call: &C) -> Result<C::Output, ClientError> {
        let needs_token = call.spec()?.needs_token;
        let mut attempts = Attempts::new(self.retry);
        loop {
            let token = if needs_token {
                Some(self.token()?)
            } else {
                None
            };
            let request = build_request(call, &self.endpoints, token.as_deref())?;
            let response = self.send(request)?;
            match attempts.judge(parse_response(call, response)) {
                Next::Done(v) => return Ok(v),
                Next::RefreshToken => {
                    if let Some(t) = &token {
                        self.lock().invalidate(t);
                    }
                }
                Next::Retry { after } => std::thread::sleep(after),
                Next::Fail(e) => return Err(e.into()),
            }
        }
    }

    /// Downloads the bytes behind a URL (e.g. a `downloadUrl`).
    pub fn get_bytes(&self, url: &str) -> Result<Vec<u8>, ClientError> {
        let request = http::Request::get(url)
            .body(Vec::new())
            .map_err(|e| ClientError::Transport(e.to_string()))?;
        let response = self.send(request)?;
        if !response.status().is_success() {
            return Err(ClientError::Transport(format!(
                "GET answered HTTP {}",
                response.status().as_u16()
            )));
        }
        Ok(response.into_body())
    }

    fn lock(&self) -> MutexGuard<'_, TokenCache> {
        self.tokens.cache.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The current access token, fetching it if needed; one refresh at a time.
    pub fn token(&self) -> Result<String, ClientError> {
        let mut cache = self.lock();
        loop {
            let request = match cache.poll(Instant::now()) {
                TokenStep::Use(t) => return Ok(t.to_owned()),
                TokenStep::Refresh(request) => request,
                TokenStep::Wait => {
                    cache = self
                        .tokens
                        .refreshed
                        .wait(cache)
                        .unwrap_or_else(|e| e.into_inner());
                    continue;
                }
            };
            drop(cache);
            let result = self.send(request);
            cache = self.lock();
            let outcome = match result {
                Ok(response) => cache
                    .handle_response(response, Instant::now())
                    .map_err(ClientError::from),
                Err(e) => {
                    cache.refresh_failed();
                    Err(e)
                }
            };
            self.tokens.refreshed.notify_all();
            outcome?;
        }
    }

    pub(crate) fn send(
        &self,
        request: http::Request<Vec<u8>>,
    ) -> Result<http::Response<Vec<u8>>, ClientError> {
        send(&self.agent, request)
    }
}

/// Sends one request with ureq and reads the whole answer.
pub fn send(
    agent: &ureq::Agent,
    request: http::Request<Vec<u8>>,
) -> Result<http::Response<Vec<u8>>, ClientError> {
    let response = agent
        .run(request)
        .map_err(|e| ClientError::Transport(e.to_string()))?;
    let (parts, mut body) = response.into_parts();
    let bytes = body
        .with_config()
        .limit(64 * 1024 * 1024)
        .read_to_vec()
        .map_err(|e| ClientError::Transport(e.to_string()))?;
    Ok(http::Response::from_parts(parts, bytes))
}
