//! Runs any [`ApiCall`] over the runtime's [`HttpClient`]: the token from the shared cache (one
//! refresh at a time), refresh-and-retry once on a token error, bounded retries of rate-limited
//! and busy answers. Written once for every adapter; the blocking adapter runs it with an
//! HTTP client that sends on the calling thread.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use dingtalk_core::api::retry::{Attempts, Next, RetryPolicy};
use dingtalk_core::api::{ApiCall, build_request, parse_response};
use dingtalk_core::auth::{TokenCache, TokenStep};
use dingtalk_core::error::ClientError;
use dingtalk_core::{Credentials, Endpoints};

use crate::runtime::HttpClient;

struct Tokens {
    cache: Mutex<TokenCache>,
    refreshed: event_listener::Event,
}

/// Calls the DingTalk OpenAPI. Cheap to clone; clones share the token cache and the HTTP
/// connection pool.
pub struct ApiClient<H> {
    http: H,
    endpoints: Arc<Endpoints>,
    tokens: Arc<Tokens>,
    retry: RetryPolicy,
    robot_code: Arc<str>,
    shared: Option<Arc<crate::store::SharedState>>,
    cards: Arc<crate::aicard::OpenCards>,
}

impl<H: Clone> Clone for ApiClient<H> {
    fn clone(&self) -> Self {
        Self {
            http: self.http.clone(),
            endpoints: self.endpoints.clone(),
            tokens: self.tokens.clone(),
            retry: self.retry,
            robot_code: self.robot_code.clone(),
            shared: self.shared.clone(),
            cards: self.cards.clone(),
        }
    }
}

impl<H> std::fmt::Debug for ApiClient<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiClient")
            .field("endpoints", &self.endpoints)
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

/// Default timeout of each HTTP request.
pub const DEFAULT_HTTP_TIMEOUT: Duration = Duration::from_secs(10);

impl<H: HttpClient> ApiClient<H> {
    /// An API client for these credentials and hosts, without a bot (e.g. to send a message
    /// from a script): default TLS, 10 s per request, the default [`RetryPolicy`], the proxies
    /// of the environment ([`env_proxies`](crate::env_proxies)). For other settings build the
    /// HTTP client with [`HttpClient::new`] and use [`ApiClient::with_http`].
    pub fn new(credentials: Credentials, endpoints: Endpoints) -> Result<Self, crate::Error> {
        credentials.validate().map_err(crate::Error::Config)?;
        endpoints.validate().map_err(crate::Error::Config)?;
        let settings =
            crate::runtime::HttpSettings::new(crate::default_tls_config()?, DEFAULT_HTTP_TIMEOUT)
                .proxies(crate::env_proxies()?);
        let http = H::new(&settings)?;
        Ok(Self::with_http(
            http,
            credentials,
            endpoints,
            RetryPolicy::default(),
        ))
    }

    /// An API client over this HTTP client.
    pub fn with_http(
        http: H,
        credentials: Credentials,
        endpoints: Endpoints,
        retry: RetryPolicy,
    ) -> Self {
        let robot_code = Arc::from(credentials.client_id());
        Self {
            http,
            tokens: Arc::new(Tokens {
                cache: Mutex::new(TokenCache::new(credentials, endpoints.clone())),
                refreshed: event_listener::Event::new(),
            }),
            endpoints: Arc::new(endpoints),
            retry,
            robot_code,
            shared: None,
            cards: Arc::default(),
        }
    }

    /// Shares the access token with the other replicas through `store`: one refresh at a time
    /// across processes, the others read the fresh token (see [`dingtalk_core::store`]).
    #[must_use]
    pub fn with_state_store(
        self,
        store: Arc<dyn crate::StateStore>,
        config: dingtalk_core::store::StoreConfig,
    ) -> Self {
        let client_id = self.robot_code.clone();
        self.with_shared_state(Some(Arc::new(crate::store::SharedState::new(
            store, config, &client_id,
        ))))
    }

    pub(crate) fn with_shared_state(
        mut self,
        shared: Option<Arc<crate::store::SharedState>>,
    ) -> Self {
        self.shared = shared;
        self
    }

    /// The same client (token cache shared) over another HTTP client.
    pub fn map_http<H2: HttpClient>(&self, f: impl FnOnce(&H) -> H2) -> ApiClient<H2> {
        ApiClient {
            http: f(&self.http),
            endpoints: self.endpoints.clone(),
            tokens: self.tokens.clone(),
            retry: self.retry,
            robot_code: self.robot_code.clone(),
            shared: self.shared.clone(),
            cards: self.cards.clone(),
        }
    }

    /// The HTTP client.
    pub fn http(&self) -> &H {
        &self.http
    }

    /// The robot code of the app's bot (its client id).
    pub fn robot_code(&self) -> &str {
        &self.robot_code
    }

    /// The hosts calls go to.
    pub fn endpoints(&self) -> &Endpoints {
        &self.endpoints
    }

    /// The retry policy.
    pub fn retry_policy(&self) -> RetryPolicy {
        self.retry
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
        let spec = call.spec()?;
        let endpoint = match &spec.target {
            dingtalk_core::api::Target::Api(path) | dingtalk_core::api::Target::Oapi(path) => {
                path.clone()
            }
            // Never the URL: it carries the webhook's credential.
            dingtalk_core::api::Target::Webhook(_) => "webhook".to_owned(),
        };
        let result = self.call_inner(call, spec.needs_token).await;
        let label = match &result {
            Ok(_) => "ok".to_owned(),
            Err(ClientError::Api(e)) => e.code.clone().unwrap_or_else(|| format!("{:?}", e.kind)),
            Err(_) => "transport".to_owned(),
        };
        metrics::counter!(
            "dingtalk_api_calls_total",
            "app" => self.robot_code.to_string(),
            "endpoint" => endpoint,
            "result" => label,
        )
        .increment(1);
        result
    }

    async fn call_inner<C: ApiCall + ?Sized>(
        &self,
        call: &C,
        needs_token: bool,
    ) -> Result<C::Output, ClientError> {
        let mut attempts = Attempts::new(self.retry);
        loop {
            let token = if needs_token {
                Some(self.token().await?)
            } else {
                None
            };
            let request = build_request(call, &self.endpoints, token.as_deref())?;
            if let (true, Some(shared)) = (needs_token, &self.shared) {
                shared.within_budget(&self.http).await;
            }
            let response = self.http.send(request).await?;
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
                    self.http.sleep(after).await;
                }
                Next::Fail(e) => return Err(e.into()),
            }
        }
    }

    /// Sends `message` to `target`: a group or a user through the robot API, a session
    /// webhook, a custom robot ([`dingtalk_core::send`] picks the one call). A message the
    /// target cannot carry (an image to a webhook, @-mentions through the robot API, a feed card
    /// to a group) is a typed `Validation` error and nothing is sent.
    pub async fn send(
        &self,
        target: dingtalk_core::send::Target,
        message: dingtalk_core::send::Outgoing,
    ) -> Result<(), ClientError> {
        use dingtalk_core::send::SendCall;
        let call = dingtalk_core::send::plan(target, message, &self.robot_code, crate::unix_ms())
            .map_err(|e| ClientError::Api(e.into()))?;
        match call {
            SendCall::Group(c) => self.call(&c).await.map(|_| ()),
            SendCall::User(c) => self.call(&c).await.map(|_| ()),
            SendCall::SessionWebhook(c) => self.call(&c).await,
            SendCall::CustomRobot(c) => self.call(&c).await.map(|_| ()),
            SendCall::WorkNotification(c) => self.call(&c).await.map(|_| ()),
        }
    }

    /// Starts an AI card in `space` (a group or a one-to-one chat) with id `out_track_id`:
    /// creates and delivers it in the processing state, and returns once it is shown (see
    /// [`AiCard`](crate::AiCard) and [`dingtalk_core::aicard`] for what it guarantees). When
    /// the card cannot be created the text is sent at the end as markdown through the robot
    /// API. Only invalid options are an error.
    pub async fn ai_card(
        &self,
        space: dingtalk_core::api::card::CardSpace,
        out_track_id: impl Into<String>,
        options: dingtalk_core::aicard::AiCardOptions,
    ) -> Result<crate::AiCard, ClientError> {
        crate::AiCard::start(
            self,
            space,
            out_track_id.into(),
            options,
            crate::aicard::FallbackTo::Robot,
        )
        .await
    }

    /// The state shared with other replicas, if any.
    pub(crate) fn shared_state(&self) -> Option<&Arc<crate::store::SharedState>> {
        self.shared.as_ref()
    }

    /// The AI cards open on this client (and its clones).
    pub(crate) fn open_cards(&self) -> &crate::aicard::OpenCards {
        &self.cards
    }

    /// Uploads `bytes` as media of `kind` named `file_name` (`oapi /media/upload`): the content
    /// type from the extension, a random multipart boundary, the size and extension limits
    /// checked before sending. The media id can then be sent (`RobotMessage::Image`, `File`,
    /// `Audio`) or used in cards.
    pub async fn upload(
        &self,
        kind: dingtalk_core::api::media::MediaType,
        file_name: impl Into<String>,
        bytes: Vec<u8>,
    ) -> Result<dingtalk_core::api::media::Uploaded, ClientError> {
        let call = dingtalk_core::api::media::MediaUpload::new(
            kind,
            file_name,
            bytes,
            crate::client::seed(),
        )?;
        self.call(&call).await
    }

    /// Uploads the file at `path` as media of `kind`, named after the path's file name. The
    /// size limit is checked from the file's metadata before anything is read (a typed
    /// `TooLarge` error), and the file is read on a thread of its own, so no async task waits
    /// on the disk. Then as [`ApiClient::upload`].
    pub async fn upload_path(
        &self,
        kind: dingtalk_core::api::media::MediaType,
        path: impl AsRef<std::path::Path>,
    ) -> Result<dingtalk_core::api::media::Uploaded, ClientError> {
        use dingtalk_core::ApiError;
        let path = path.as_ref().to_owned();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| ApiError::validation("the path has no file name"))?
            .to_owned();
        let (tx, rx) = futures_channel::oneshot::channel();
        let max = kind.max_bytes();
        let reading = std::thread::Builder::new()
            .name("dingtalk-read".into())
            .spawn(move || {
                let read = || -> Result<Vec<u8>, ApiError> {
                    let io = |e: std::io::Error| {
                        ApiError::validation(format!("cannot read the file: {}", e.kind()))
                    };
                    let len = std::fs::metadata(&path).map_err(io)?.len();
                    if len > max as u64 {
                        return Err(ApiError::new(
                            dingtalk_core::ErrorKind::TooLarge,
                            format!("the file of {len} bytes exceeds the limit of {max} bytes"),
                        ));
                    }
                    let mut bytes = Vec::new();
                    // At most one byte past the limit, should the file grow meanwhile.
                    std::io::Read::read_to_end(
                        &mut std::io::Read::take(
                            std::fs::File::open(&path).map_err(io)?,
                            max as u64 + 1,
                        ),
                        &mut bytes,
                    )
                    .map_err(io)?;
                    Ok(bytes)
                };
                let _ = tx.send(read());
            });
        if reading.is_err() {
            return Err(ClientError::Api(ApiError::validation(
                "could not start a thread to read the file",
            )));
        }
        let bytes = rx.await.map_err(|_| {
            ClientError::Api(ApiError::validation("the file read was interrupted"))
        })??;
        self.upload(kind, name, bytes).await
    }

    /// Downloads the bytes behind a URL (e.g. a `downloadUrl`), at most 64 MiB; `https://` only
    /// (plain `http://` to loopback, for the emulator).
    pub async fn get_bytes(&self, url: &str) -> Result<Vec<u8>, ClientError> {
        let uri = dingtalk_core::url::check_secure(url, "download URL")
            .map_err(|e| ClientError::Api(dingtalk_core::ApiError::validation(e)))?;
        let request = http::Request::get(uri)
            .body(Vec::new())
            .map_err(|_| ClientError::Transport("invalid download URL".into()))?;
        let response = self.http.send(request).await?;
        if !response.status().is_success() {
            return Err(ClientError::Transport(format!(
                "download answered HTTP {}",
                response.status().as_u16()
            )));
        }
        Ok(response.into_body())
    }

    fn lock(&self) -> MutexGuard<'_, TokenCache> {
        self.tokens.cache.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The current access token, fetching it if needed; one refresh at a time. Cancellation
    /// safe: a caller dropped while refreshing hands the refresh to the next caller.
    pub async fn token(&self) -> Result<String, ClientError> {
        loop {
            // Listening before looking, so a refresh finishing in between still wakes us.
            let listener = self.tokens.refreshed.listen();
            let request = match self.lock().poll(Instant::now()) {
                TokenStep::Use(t) => return Ok(t.to_owned()),
                TokenStep::Refresh(request) => Some(request),
                TokenStep::Wait => None,
                TokenStep::Fail(e) => return Err(e.into()),
            };
            let Some(request) = request else {
                listener.await;
                continue;
            };
            let mut guard = Refreshing {
                tokens: &self.tokens,
                done: false,
            };
            let mut locked = false;
            let mut lock_held = None;
            if let Some(shared) = &self.shared {
                let rejected = self.lock().rejected().map(str::to_owned);
                match shared.before_refresh(&self.http, rejected).await {
                    crate::store::SharedToken::Found(token, fresh_for) => {
                        self.lock().adopt(token, fresh_for, Instant::now());
                        guard.done = true;
                        continue;
                    }
                    crate::store::SharedToken::Refresh { locked: l } => {
                        locked = l;
                        // Dropped while refreshing: the lock is released, not held for its TTL.
                        lock_held = l.then(|| shared.token_lock_held());
                    }
                }
            }
            let result = self.http.send(request).await;
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
            guard.done = true;
            drop(guard);
            if let Some(shared) = &self.shared {
                let value = if outcome.is_ok() {
                    let now = Instant::now();
                    let cache = self.lock();
                    cache
                        .shareable(now, crate::unix_ms())
                        .zip(cache.fresh_for(now))
                } else {
                    None
                };
                shared.after_refresh(&self.http, value, locked).await;
            }
            if let Some(held) = lock_held {
                held.done();
            }
            outcome?;
        }
    }
}

/// Ends a refresh: wakes the waiters, and when the refreshing caller was dropped mid-way,
/// releases the refresh so the next caller takes it over.
struct Refreshing<'a> {
    tokens: &'a Tokens,
    done: bool,
}

impl Drop for Refreshing<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.tokens
                .cache
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .refresh_failed();
        }
        self.tokens.refreshed.notify(usize::MAX);
    }
}
