//! The client every adapter exposes: a builder with the handler registrations and options, the
//! running client, its stop handle. Generic over the [`Runtime`]; the async adapters name it
//! with their runtime (`dingtalk_tokio::Client = Client<Tokio>`), the blocking adapter wraps it
//! with plain functions.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::Context;
use std::time::{Duration, Instant};

use dingtalk_core::api::retry::RetryPolicy;
use dingtalk_core::model::{
    CardCallback, CardCallbackResponse, Event, GraphRequest, GraphResponse,
};
use dingtalk_core::{
    Credentials, Endpoints, EventAck, Frame, Outcome, Route, Session, StreamConfig, Subscription,
    topic,
};
use futures_util::task::AtomicWaker;
use serde_json::Value;

use crate::api::{ApiClient, DEFAULT_HTTP_TIMEOUT};
use crate::context::BotContext;
use crate::driver::Driver;
use crate::handler::{self, Handler, HandlerError};
use crate::runtime::{BoxFuture, HttpClient, HttpSettings, Runtime};
use dingtalk_core::proxy::Proxies;

/// Why the client could not be built or could not keep running.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Missing or invalid configuration (credentials, environment variables, endpoints).
    #[error("configuration: {0}")]
    Config(String),
    /// The TLS or HTTP client could not be set up.
    #[error("TLS setup: {0}")]
    Tls(String),
    /// A terminal protocol error, such as rejected credentials.
    #[error(transparent)]
    Stream(#[from] dingtalk_core::Error),
}

/// Reads `DINGTALK_CLIENT_ID`, `DINGTALK_CLIENT_SECRET` and optionally
/// `DINGTALK_OPENAPI_ENDPOINT` (the gateway/api base URL, as in the official Python SDK) and
/// `DINGTALK_OAPI_ENDPOINT`. `None` when the credentials are not set.
pub fn env_config() -> Option<(Credentials, Endpoints)> {
    dingtalk_core::config::from_env(|k| std::env::var(k).ok())
}

/// The proxies the standard environment variables name (`HTTPS_PROXY`, `HTTP_PROXY`,
/// `ALL_PROXY`, `NO_PROXY`, lower-case too; see [`dingtalk_core::proxy`]). A variable that is set
/// but unusable (a `socks5://` proxy, a malformed URL) is an error, never skipped.
pub fn env_proxies() -> Result<Proxies, Error> {
    Proxies::from_env(|k| std::env::var(k).ok()).map_err(|e| Error::Config(e.to_string()))
}

/// Where the proxies of a builder come from.
#[derive(Debug, Clone)]
enum ProxyChoice {
    /// The environment, read when the client is built.
    Env,
    /// One proxy URL, parsed when the client is built.
    Url(Redacted),
    /// Set in full.
    Set(Proxies),
}

/// A string that `Debug` never prints (a proxy URL may hold a password).
#[derive(Clone)]
struct Redacted(String);

impl std::fmt::Debug for Redacted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

impl ProxyChoice {
    fn resolve(&self) -> Result<Proxies, Error> {
        match self {
            Self::Env => env_proxies(),
            Self::Url(url) => Proxies::all(&url.0).map_err(|e| Error::Config(e.to_string())),
            Self::Set(p) => Ok(p.clone()),
        }
    }
}

/// The handlers, indexed by [`Route`]: the session routes each frame once and the driver calls
/// `handlers[route]`.
pub(crate) struct Handlers<H>(Vec<Option<Handler<H>>>);

impl<H> Default for Handlers<H> {
    fn default() -> Self {
        Self(Vec::new())
    }
}

impl<H> Handlers<H> {
    fn register(
        &mut self,
        config: &mut StreamConfig,
        subscription: Subscription,
        handler: Handler<H>,
    ) {
        let Route(i) = config.add_subscription(subscription);
        if self.0.len() <= i {
            self.0.resize_with(i + 1, || None);
        }
        self.0[i] = Some(handler);
    }

    pub(crate) fn get(&self, route: Route) -> Option<&Handler<H>> {
        self.0.get(route.0).and_then(Option::as_ref)
    }
}

/// Builds a [`Client`].
pub struct ClientBuilder<R: Runtime> {
    config: StreamConfig,
    tls: Option<Arc<rustls::ClientConfig>>,
    handlers: Handlers<R::Http>,
    http_timeout: Duration,
    retry: RetryPolicy,
    proxy: ProxyChoice,
    state: Option<(
        Arc<dyn crate::StateStore>,
        dingtalk_core::store::StoreConfig,
    )>,
    hook: Option<crate::LifecycleHook>,
    router_error: Option<String>,
}

impl<R: Runtime> std::fmt::Debug for ClientBuilder<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("config", &self.config)
            .field("proxy", &self.proxy)
            .field("http_timeout", &self.http_timeout)
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

impl<R: Runtime> ClientBuilder<R> {
    /// A builder for these credentials, with DingTalk's real hosts.
    pub fn new(credentials: Credentials) -> Self {
        Self {
            config: StreamConfig::new(credentials),
            tls: None,
            handlers: Handlers::default(),
            http_timeout: DEFAULT_HTTP_TIMEOUT,
            retry: RetryPolicy::default(),
            proxy: ProxyChoice::Env,
            state: None,
            hook: None,
            router_error: None,
        }
    }

    /// Calls `hook` on every connection change: connected, draining, disconnected, an open
    /// attempt failed, a reconnect scheduled, stopped ([`Lifecycle`](crate::Lifecycle)). It runs
    /// on the client's task: it must return quickly. A panic in it is logged and contained.
    #[must_use]
    pub fn on_lifecycle(
        mut self,
        hook: impl Fn(&crate::Lifecycle<'_>) + Send + Sync + 'static,
    ) -> Self {
        self.hook = Some(Arc::new(hook));
        self
    }

    /// Shares state with the other replicas of this app through `store` (Redis with the
    /// `redis` feature): a message is handled once across replicas and a redelivered copy gets
    /// the recorded ack, and one replica at a time refreshes the access token for all. See
    /// [`dingtalk_core::store`] for the keys, TTLs and what happens when the store fails
    /// ([`OnStoreError`](dingtalk_core::store::OnStoreError): fail open by default; a frame is
    /// never lost or blocked).
    #[must_use]
    pub fn state_store(
        mut self,
        store: Arc<dyn crate::StateStore>,
        config: dingtalk_core::store::StoreConfig,
    ) -> Self {
        self.state = Some((store, config));
        self
    }

    /// Sends the WebSocket and every HTTP call through this `http://` proxy
    /// (`http://user:password@host:port`; `CONNECT` tunnels, Basic credentials), instead of the
    /// proxies the environment names. An invalid URL fails [`ClientBuilder::build`]; the
    /// credentials are never logged or shown in an error.
    #[must_use]
    pub fn proxy(mut self, url: impl Into<String>) -> Self {
        self.proxy = ProxyChoice::Url(Redacted(url.into()));
        self
    }

    /// Uses these proxies (per scheme, with a bypass list) instead of the environment's.
    #[must_use]
    pub fn proxies(mut self, proxies: Proxies) -> Self {
        self.proxy = ProxyChoice::Set(proxies);
        self
    }

    /// Connects directly, whatever the environment says. By default the client reads
    /// `HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY` and `NO_PROXY` (lower-case too) as curl does;
    /// see [`env_proxies`].
    #[must_use]
    pub fn no_proxy(mut self) -> Self {
        self.proxy = ProxyChoice::Set(Proxies::none());
        self
    }

    /// Uses these hosts (the emulator, a forwarder, overseas hosts). A plain `http://` loopback
    /// gateway (the emulator) also allows its `ws://` Stream endpoint.
    #[must_use]
    pub fn endpoints(mut self, endpoints: Endpoints) -> Self {
        self.config.set_endpoints(endpoints);
        self
    }

    /// Uses your own rustls configuration (private roots, a pinned verifier, client
    /// certificates) for the WebSocket and every HTTP call, in every adapter (reqwest and ureq
    /// both use it; ureq is offered `http/1.1` only).
    #[must_use]
    pub fn tls_config(mut self, config: Arc<rustls::ClientConfig>) -> Self {
        self.tls = Some(config);
        self
    }

    /// Adjusts the Stream session (keepalive, backoff, limits, ack policies...).
    #[must_use]
    pub fn configure(mut self, f: impl FnOnce(&mut StreamConfig)) -> Self {
        f(&mut self.config);
        self
    }

    /// Concurrent Stream connections for this app (default 1, at most
    /// [`MAX_CONNECTIONS`](dingtalk_core::config::MAX_CONNECTIONS)), like the Java SDK's
    /// `maxConnectionCounts`: each is opened with its own ticket, acks the frames it read and
    /// is replaced on its own (make-before-break); deduplication is shared, so a frame
    /// DingTalk redelivers on a sibling connection reaches its handler once. An out-of-range
    /// count fails [`ClientBuilder::build`].
    #[must_use]
    pub fn connections(mut self, n: usize) -> Self {
        self.config.connections = n;
        self
    }

    /// Most handler calls in flight at once (default 64); further frames wait inside the core,
    /// then reading pauses. In the blocking adapter this is also the most handler threads.
    #[must_use]
    pub fn concurrency(mut self, n: usize) -> Self {
        self.config.max_in_flight = n.max(1);
        self
    }

    /// Timeout of each HTTP request (default 10 s).
    #[must_use]
    pub fn http_timeout(mut self, timeout: Duration) -> Self {
        self.http_timeout = timeout;
        self
    }

    /// Longest a handler call may run (default 10 min). Past it the call is cancelled (its
    /// future dropped; a blocking adapter's thread is let go and its result ignored), its slot
    /// freed, a failure ack sent if one is still owed, and a warning logged.
    #[must_use]
    pub fn handler_timeout(mut self, timeout: Duration) -> Self {
        self.config.handler_timeout = timeout;
        self
    }

    /// Retry policy of API calls (rate limits, busy server).
    #[must_use]
    pub fn retry_policy(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Registers `handler` for `subscription` (and subscribes to it): the low-level form of the
    /// typed registrations below, for a topic with its own [`AckPolicy`](dingtalk_core::AckPolicy).
    #[must_use]
    pub fn handler(mut self, subscription: Subscription, handler: Handler<R::Http>) -> Self {
        self.handlers
            .register(&mut self.config, subscription, handler);
        self
    }

    /// Handles chatbot messages (`/v1.0/im/bot/messages/get`). They are acked on arrival
    /// (DingTalk redelivers late-acked messages), so the handler may take its time.
    #[must_use]
    pub fn on_bot_message<F, Fut>(self, f: F) -> Self
    where
        F: Fn(BotContext<R::Http>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), HandlerError>> + Send + 'static,
    {
        self.handler(Subscription::callback(topic::BOT_MESSAGE), handler::bot(f))
    }

    /// Routes chatbot messages through `router` (commands, kinds, text, fallback, `/help`;
    /// see [`Router`](crate::Router)) instead of one `on_bot_message` handler. An invalid
    /// command name fails [`ClientBuilder::build`].
    #[must_use]
    pub fn router(mut self, router: crate::Router<R::Http>) -> Self {
        if let Some(e) = router.error() {
            self.router_error = Some(e.to_string());
        }
        let router = Arc::new(router);
        self.on_bot_message(move |ctx| router.dispatch(ctx))
    }

    /// Routes organisation events by type through `router` (see
    /// [`EventRouter`](crate::EventRouter)) instead of one `on_event` handler.
    #[must_use]
    pub fn event_router(self, router: crate::EventRouter<R::Http>) -> Self {
        let router = Arc::new(router);
        self.on_event(move |ev, api| router.dispatch(ev, api))
    }

    /// Routes card actions by action id through `router` (see
    /// [`CardRouter`](crate::CardRouter)) instead of one `on_card_callback` handler.
    #[must_use]
    pub fn card_router(self, router: crate::CardRouter<R::Http>) -> Self {
        let router = Arc::new(router);
        self.on_card_callback(move |cb, api| router.dispatch(cb, api))
    }

    /// Handles delegate ("托管") bot messages (acked on arrival, like bot messages).
    #[must_use]
    pub fn on_delegate_message<F, Fut>(self, f: F) -> Self
    where
        F: Fn(BotContext<R::Http>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), HandlerError>> + Send + 'static,
    {
        self.handler(Subscription::callback(topic::BOT_DELEGATE), handler::bot(f))
    }

    /// Handles card actions; the returned response is sent inside the ack.
    #[must_use]
    pub fn on_card_callback<F, Fut>(self, f: F) -> Self
    where
        F: Fn(CardCallback, ApiClient<R::Http>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Option<CardCallbackResponse>, HandlerError>> + Send + 'static,
    {
        self.handler(
            Subscription::callback(topic::CARD_CALLBACK),
            handler::card(f),
        )
    }

    /// Handles graph API invocations; the response is sent inside the ack.
    #[must_use]
    pub fn on_graph_invoke<F, Fut>(self, f: F) -> Self
    where
        F: Fn(GraphRequest, ApiClient<R::Http>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<GraphResponse, HandlerError>> + Send + 'static,
    {
        self.handler(
            Subscription::callback(topic::GRAPH_INVOKE),
            handler::graph(f),
        )
    }

    /// Handles organisation events (EVENT `*`). An error or a timeout acks `LATER`.
    #[must_use]
    pub fn on_event<F, Fut>(self, f: F) -> Self
    where
        F: Fn(Event, ApiClient<R::Http>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<EventAck, HandlerError>> + Send + 'static,
    {
        self.handler(Subscription::events(), handler::event(f))
    }

    /// Handles any other CALLBACK topic with the raw frame; the value goes into the ack.
    #[must_use]
    pub fn on_callback<F, Fut>(self, topic: &str, f: F) -> Self
    where
        F: Fn(Frame, ApiClient<R::Http>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Value, HandlerError>> + Send + 'static,
    {
        self.handler(Subscription::callback(topic), handler::raw(f))
    }

    /// Builds the client (validates the configuration, sets up TLS and HTTP).
    pub fn build(self) -> Result<Client<R>, Error> {
        self.config.credentials.validate().map_err(Error::Config)?;
        if let Some(e) = self.router_error {
            return Err(Error::Config(e));
        }
        if !(1..=dingtalk_core::config::MAX_CONNECTIONS).contains(&self.config.connections) {
            return Err(Error::Config(format!(
                "connections must be between 1 and {}",
                dingtalk_core::config::MAX_CONNECTIONS
            )));
        }
        self.config.endpoints.validate().map_err(Error::Config)?;
        let tls = match self.tls {
            Some(t) => t,
            None => crate::default_tls_config()?,
        };
        let proxies = self.proxy.resolve()?;
        let http = R::Http::new(
            &HttpSettings::new(tls.clone(), self.http_timeout).proxies(proxies.clone()),
        )?;
        let state = self.state.map(|(store, config)| {
            Arc::new(crate::store::SharedState::new(
                store,
                config,
                self.config.credentials.client_id(),
            ))
        });
        let api = ApiClient::with_http(
            http,
            self.config.credentials.clone(),
            self.config.endpoints.clone(),
            self.retry,
        )
        .with_shared_state(state.clone());
        Ok(Client {
            shared: Arc::new(Shared {
                rt: R::default(),
                config: self.config,
                tls,
                proxies,
                api,
                state,
                stats: std::sync::Mutex::new(None),
                presence: crate::observe::Presence::default(),
                hook: self.hook,
                handlers: self.handlers,
                stop: Arc::new(StopSignal::default()),
                running: AtomicBool::new(false),
            }),
        })
    }
}

/// What the driver and every clone of a client share.
pub(crate) struct Shared<R: Runtime> {
    pub(crate) rt: R,
    pub(crate) config: StreamConfig,
    pub(crate) tls: Arc<rustls::ClientConfig>,
    pub(crate) proxies: Proxies,
    pub(crate) api: ApiClient<R::Http>,
    pub(crate) state: Option<Arc<crate::store::SharedState>>,
    pub(crate) stats: std::sync::Mutex<Option<ClientStats>>,
    pub(crate) presence: crate::observe::Presence,
    pub(crate) hook: Option<crate::LifecycleHook>,
    pub(crate) handlers: Handlers<R::Http>,
    pub(crate) stop: Arc<StopSignal>,
    running: AtomicBool,
}

#[derive(Debug, Default)]
pub(crate) struct StopSignal {
    stopped: AtomicBool,
    waker: AtomicWaker,
    /// Wakes [`StopHandle::stopped`] futures.
    event: event_listener::Event,
}

impl StopSignal {
    pub(crate) fn requested(&self, cx: &Context<'_>) -> bool {
        self.waker.register(cx.waker());
        self.stopped.load(Ordering::SeqCst)
    }
}

/// A DingTalk Stream client. Build it with [`Client::builder`] or [`Client::from_env`]. Cheap
/// to clone; clones share the handlers, the token cache and the stop handle.
pub struct Client<R: Runtime> {
    shared: Arc<Shared<R>>,
}

impl<R: Runtime> Clone for Client<R> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
        }
    }
}

impl<R: Runtime> std::fmt::Debug for Client<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("config", &self.shared.config)
            .finish_non_exhaustive()
    }
}

/// Stops a running [`Client`] gracefully. Cloneable; usable from any thread (a signal handler's
/// thread included).
#[derive(Clone)]
pub struct StopHandle {
    signals: Arc<[Arc<StopSignal>]>,
}

impl std::fmt::Debug for StopHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StopHandle")
            .field("stopped", &self.is_stopped())
            .finish()
    }
}

impl StopHandle {
    /// Asks the client to stop: reading stops, in-flight handlers finish (bounded by
    /// `stop_timeout`), their acks are sent, connections close, and `run` returns. A client
    /// asked to stop before it runs returns from `run` at once.
    pub fn stop(&self) {
        for signal in self.signals.iter() {
            signal.stopped.store(true, Ordering::SeqCst);
            signal.waker.wake();
            signal.event.notify(usize::MAX);
        }
    }

    /// Resolves once [`StopHandle::stop`] has been called (for every client of a group): to
    /// stop other work with the client, e.g. an HTTP-callback server
    /// (`http_callback::serve_until`) or axum's `with_graceful_shutdown`.
    pub async fn stopped(&self) {
        for signal in self.signals.iter() {
            loop {
                let listener = signal.event.listen();
                if signal.stopped.load(Ordering::SeqCst) {
                    break;
                }
                listener.await;
            }
        }
    }

    /// Whether [`StopHandle::stop`] was called.
    pub fn is_stopped(&self) -> bool {
        self.signals
            .iter()
            .all(|s| s.stopped.load(Ordering::SeqCst))
    }
}

impl<R: Runtime> Client<R> {
    /// A builder for these credentials.
    pub fn builder(credentials: Credentials) -> ClientBuilder<R> {
        ClientBuilder::new(credentials)
    }

    /// A builder from `DINGTALK_CLIENT_ID` / `DINGTALK_CLIENT_SECRET` (and
    /// `DINGTALK_OPENAPI_ENDPOINT`); see [`env_config`].
    pub fn from_env() -> Result<ClientBuilder<R>, Error> {
        let (credentials, endpoints) = env_config().ok_or_else(|| {
            Error::Config("DINGTALK_CLIENT_ID and DINGTALK_CLIENT_SECRET must be set".into())
        })?;
        Ok(ClientBuilder::new(credentials).endpoints(endpoints))
    }

    /// The OpenAPI client (shares this client's token cache).
    pub fn api(&self) -> &ApiClient<R::Http> {
        &self.shared.api
    }

    /// The Stream configuration.
    pub fn config(&self) -> &StreamConfig {
        &self.shared.config
    }

    /// The proxies the client connects through (`Debug` shows no credentials).
    pub fn proxies(&self) -> &Proxies {
        &self.shared.proxies
    }

    /// Whether a connection is open (frames can arrive) now.
    pub fn is_connected(&self) -> bool {
        self.shared.presence.open() > 0
    }

    /// Resolves `true` once a connection is open (at once if one is), or `false` when `run`
    /// returns before one opens. Called before `run` starts, it waits for the run. Use it to
    /// hold readiness probes or start-up work until the bot can receive messages.
    pub async fn wait_connected(&self) -> bool {
        self.shared.presence.connected().await
    }

    /// The counters of the current (or last) run, at most 50 ms old: frames, acks,
    /// duplicates, handler timeouts..., and per connection (which of the app's connections it
    /// serves, its state, its frames and acks). `None` before the first run.
    pub fn stats(&self) -> Option<ClientStats> {
        self.shared
            .stats
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// A handle that stops [`Client::run`] gracefully.
    pub fn stop_handle(&self) -> StopHandle {
        StopHandle {
            signals: Arc::new([self.shared.stop.clone()]),
        }
    }

    /// Runs the handler registered for `frame` (as the Stream driver would), for frames that
    /// arrive another way, such as HTTP callbacks. `None` when no handler takes the frame.
    ///
    /// With a [state store](ClientBuilder::state_store) the call is guarded as in Stream mode:
    /// a callback that another replica already handled (DingTalk's resend reaching another
    /// instance behind a load balancer) gets that replica's recorded outcome.
    pub fn dispatch(&self, frame: Frame) -> Option<BoxFuture<'static, Outcome>> {
        let route = self.shared.config.route(frame.kind, frame.topic())?;
        let handler = self.shared.handlers.get(route)?.clone();
        let api = self.shared.api.clone();
        Some(match &self.shared.state {
            None => handler(frame, api),
            Some(state) => {
                let policy = self
                    .shared
                    .config
                    .subscriptions
                    .get(route.0)
                    .map_or(dingtalk_core::AckPolicy::Immediate, |s| s.ack);
                crate::store::guarded(state.clone(), policy, frame, handler, api)
            }
        })
    }

    /// Connects and serves until stopped (`Ok`) or a terminal error such as rejected
    /// credentials (`Err`). Transient failures are retried with backoff, never returned. One
    /// run at a time per client.
    pub async fn run(&self) -> Result<(), Error> {
        if self.shared.running.swap(true, Ordering::SeqCst) {
            return Err(Error::Config("this client is already running".into()));
        }
        self.shared.presence.start();
        let _running = Running(&self.shared);
        let mut config = self.shared.config.clone();
        config.rng_seed = seed();
        let session = Session::new(config, Instant::now())?;
        let driver = Driver::new(self.shared.rt.clone(), self.shared.clone(), session);
        crate::aicard::sweep_at_start(&self.shared.api);
        let result = driver.await.map_err(Error::Stream);
        // No card left spinning: the open AI cards get their failed state before run returns.
        let api = &self.shared.api;
        api.open_cards()
            .fail_all(
                "the client stopped",
                api.http(),
                self.shared.config.stop_timeout,
            )
            .await;
        result
    }
}

/// A copy of a running client's counters ([`Client::stats`]).
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientStats {
    /// The session's counters since the run started.
    pub session: dingtalk_core::Stats,
    /// Each connection alive when the copy was made.
    pub connections: Vec<dingtalk_core::session::ConnStats>,
    /// Handler calls running.
    pub in_flight: usize,
    /// Frames waiting for a handler slot.
    pub queued: usize,
    /// When the copy was made.
    pub at: Instant,
}

/// However `run` ends (returned or dropped): clears the running flag, marks the client
/// disconnected, and tells the lifecycle hook.
struct Running<'a, R: Runtime>(&'a Shared<R>);

impl<R: Runtime> Drop for Running<'_, R> {
    fn drop(&mut self) {
        self.0.presence.end();
        if let Some(hook) = &self.0.hook {
            crate::observe::call_hook(hook, &crate::Lifecycle::Stopped);
        }
        self.0.running.store(false, Ordering::SeqCst);
    }
}

/// The session's seed (backoff jitter): wall-clock nanoseconds mixed with the process id, so
/// replicas started together do not reconnect in step.
pub(crate) fn seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    nanos ^ (u64::from(std::process::id()) << 32) ^ 0x9e37_79b9_7f4a_7c15
}

/// Several clients run as one: several apps in one process (each with its own credentials,
/// token cache, subscriptions and handlers; a handler shared between apps tells them apart by
/// `api.robot_code()`, the app's client id), started together and stopped together.
pub struct Group<R: Runtime> {
    clients: Vec<Client<R>>,
}

impl<R: Runtime> std::fmt::Debug for Group<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Group")
            .field("clients", &self.clients)
            .finish()
    }
}

/// Why a [`Group`] stopped: the client id of the app whose client failed, and its error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("app {client_id}: {error}")]
pub struct GroupError {
    /// The app's client id.
    pub client_id: String,
    /// Its client's error.
    pub error: Error,
}

impl<R: Runtime> Group<R> {
    /// A group of these clients.
    pub fn new(clients: impl IntoIterator<Item = Client<R>>) -> Self {
        Self {
            clients: clients.into_iter().collect(),
        }
    }

    /// The clients.
    pub fn clients(&self) -> &[Client<R>] {
        &self.clients
    }

    /// One handle that stops every client of the group.
    pub fn stop_handle(&self) -> StopHandle {
        StopHandle {
            signals: self.clients.iter().map(|c| c.shared.stop.clone()).collect(),
        }
    }

    /// Runs every client in this one future until all have stopped. A terminal error of one
    /// (rejected credentials) stops the others gracefully and is returned once all are done;
    /// transient failures are retried inside each client, as in [`Client::run`].
    pub async fn run(&self) -> Result<(), GroupError> {
        use futures_util::StreamExt;
        let mut running: futures_util::stream::FuturesUnordered<_> = self
            .clients
            .iter()
            .map(|c| async move {
                (
                    c.shared.config.credentials.client_id().to_owned(),
                    c.run().await,
                )
            })
            .collect();
        let mut first = None;
        while let Some((client_id, result)) = running.next().await {
            if let Err(error) = result {
                if first.is_none() {
                    tracing::error!(app = %client_id, %error, "a client of the group failed; stopping the others");
                    self.stop_handle().stop();
                    first = Some(GroupError { client_id, error });
                }
            }
        }
        first.map_or(Ok(()), Err)
    }
}
