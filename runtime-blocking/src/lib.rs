//! # dingtalk-blocking
//!
//! A DingTalk (钉钉) bot for programs without an async runtime: plain functions as handlers,
//! plain calls to reply and to call the OpenAPI. The same protocol core ([`dingtalk_core`])
//! decides every ack, ping, keepalive and reconnect, and the same driver ([`dingtalk_driver`])
//! as in the async adapters moves the bytes.
//!
//! [`Client::run`] blocks the calling thread in the async-io reactor (`async_io::block_on`):
//! the thread sleeps until a socket is ready, a handler finishes or the core's next deadline,
//! with no polling interval, and writes each burst of acks with one flush. Handlers run on the
//! client's own thread pool, at most [`ClientBuilder::concurrency`] at once, so a slow handler
//! never stalls pings or other frames' acks; a burst of fast handlers costs one thread wake-up,
//! not one hand-off per frame. Inside a handler, replies and API calls are plain
//! blocking calls (ureq, keep-alive connections shared by every handler thread).
//!
//! ```no_run
//! use dingtalk_blocking::{Client, HandlerError};
//!
//! fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let client = Client::from_env()?
//!         .on_bot_message(|ctx| {
//!             if let Some(text) = ctx.text() {
//!                 ctx.reply_text(format!("echo: {text}"))?;
//!             }
//!             Ok::<(), HandlerError>(())
//!         })
//!         .build()?;
//!     let stop = client.stop_handle(); // stop.stop() from any thread or a Ctrl-C handler
//!     client.run()?;
//!     Ok(())
//! }
//! ```
//!
//! Sending a message without running a bot:
//!
//! ```no_run
//! use dingtalk_blocking::ApiClient;
//! use dingtalk_core::webhook::{CustomRobotSend, Message};
//! let api = ApiClient::new(dingtalk_core::Credentials::new("id", "secret"), Default::default())?;
//! api.call(&CustomRobotSend {
//!     webhook: "https://oapi.dingtalk.com/robot/send?access_token=...".into(),
//!     secret: Some("SEC...".into()),
//!     timestamp_ms: dingtalk_blocking::unix_ms(),
//!     message: Message::text("deploy finished"),
//! })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![deny(missing_docs)]

use std::sync::Arc;
use std::time::Duration;

use async_io::block_on;
use dingtalk_core::api::ApiCall;
use dingtalk_core::api::card::CardResult;
use dingtalk_core::model::{
    CardCallback, CardCallbackResponse, CardParamMap, ChatbotMessage, Event, GraphRequest,
    GraphResponse,
};
use dingtalk_core::webhook::Message;
use dingtalk_core::{Credentials, Endpoints, Frame, Outcome, StreamConfig, Subscription};
use dingtalk_driver::runtime::{AsyncIo, ThreadPool, Ureq};
use serde_json::Value;

pub use dingtalk_core;
pub use dingtalk_driver;
#[cfg(feature = "redis")]
pub use dingtalk_driver::RedisStore;
pub use dingtalk_driver::{AiCardError, AiCardOptions, AiCardOutcome, StreamMode};
pub use dingtalk_driver::{
    ClientError, Error, EventAck, HandlerError, RetryPolicy, StopHandle, default_tls_config,
    env_config, env_proxies, unix_ms,
};
pub use dingtalk_driver::{
    ClientStats, GroupError, Lifecycle, OnStoreError, StateStore, StoreConfig, StoreError,
};

type Inner = dingtalk_driver::Client<AsyncIo>;
type InnerApi = dingtalk_driver::ApiClient<Ureq>;

// ---- API client ---------------------------------------------------------------------------

/// Calls the DingTalk OpenAPI from any thread, blocking until the answer. Cheap to clone;
/// clones share the token cache and the keep-alive connections.
#[derive(Clone, Debug)]
pub struct ApiClient {
    inner: InnerApi,
}

impl ApiClient {
    /// An API client for these credentials and hosts, without a bot (e.g. to send a message
    /// from a script).
    pub fn new(credentials: Credentials, endpoints: Endpoints) -> Result<Self, Error> {
        Ok(Self::from_async(&InnerApi::new(credentials, endpoints)?))
    }

    /// The blocking form of the driver's API client (same token cache and connections).
    pub fn from_async(api: &InnerApi) -> Self {
        Self {
            inner: api.map_http(Ureq::inline),
        }
    }

    /// Shares the access token with the other replicas through `store` (one refresh at a time
    /// across processes); see [`dingtalk_driver::ApiClient::with_state_store`].
    #[must_use]
    pub fn with_state_store(self, store: Arc<dyn StateStore>, config: StoreConfig) -> Self {
        Self {
            inner: self.inner.with_state_store(store, config),
        }
    }

    /// A copy with another retry policy.
    #[must_use]
    pub fn with_retry_policy(mut self, retry: RetryPolicy) -> Self {
        self.inner = self.inner.with_retry_policy(retry);
        self
    }

    /// The robot code of the app's bot (its client id).
    pub fn robot_code(&self) -> &str {
        self.inner.robot_code()
    }

    /// The hosts calls go to.
    pub fn endpoints(&self) -> &Endpoints {
        self.inner.endpoints()
    }

    /// The retry policy.
    pub fn retry_policy(&self) -> RetryPolicy {
        self.inner.retry_policy()
    }

    /// Runs `call` with token refresh-and-retry-once and bounded retries of rate-limited or
    /// busy answers.
    pub fn call<C: ApiCall + ?Sized>(&self, call: &C) -> Result<C::Output, ClientError> {
        block_on(self.inner.call(call))
    }

    /// Sends `message` to `target` (a group, a user, a session webhook, a custom robot); see
    /// [`dingtalk_driver::ApiClient::send`].
    pub fn send(
        &self,
        target: dingtalk_core::send::Target,
        message: dingtalk_core::send::Outgoing,
    ) -> Result<(), ClientError> {
        block_on(self.inner.send(target, message))
    }

    /// Uploads `bytes` as media of `kind` (limits checked first, boundary generated); see
    /// [`dingtalk_driver::ApiClient::upload`].
    pub fn upload(
        &self,
        kind: dingtalk_core::api::media::MediaType,
        file_name: impl Into<String>,
        bytes: Vec<u8>,
    ) -> Result<dingtalk_core::api::media::Uploaded, ClientError> {
        block_on(self.inner.upload(kind, file_name, bytes))
    }

    /// Uploads the file at `path` (the size checked before reading); see
    /// [`dingtalk_driver::ApiClient::upload_path`].
    pub fn upload_path(
        &self,
        kind: dingtalk_core::api::media::MediaType,
        path: impl AsRef<std::path::Path>,
    ) -> Result<dingtalk_core::api::media::Uploaded, ClientError> {
        block_on(self.inner.upload_path(kind, path))
    }

    /// Downloads the bytes behind a URL (at most 64 MiB); see
    /// [`dingtalk_driver::ApiClient::get_bytes`].
    pub fn get_bytes(&self, url: &str) -> Result<Vec<u8>, ClientError> {
        block_on(self.inner.get_bytes(url))
    }

    /// Starts an AI card in `space`; see [`dingtalk_driver::ApiClient::ai_card`].
    pub fn ai_card(
        &self,
        space: dingtalk_core::api::card::CardSpace,
        out_track_id: impl Into<String>,
        options: AiCardOptions,
    ) -> Result<AiCard, ClientError> {
        block_on(self.inner.ai_card(space, out_track_id, options)).map(AiCard)
    }

    /// The current access token, fetching it if needed; one refresh at a time.
    pub fn token(&self) -> Result<String, ClientError> {
        block_on(self.inner.token())
    }
}

// ---- AI card ------------------------------------------------------------------------------

/// An AI card being written, with blocking `finish` and `fail`; see
/// [`dingtalk_driver::AiCard`]. Writing never blocks (a background thread sends the updates);
/// dropped without `finish` or `fail`, the card is closed as failed.
#[derive(Debug)]
pub struct AiCard(dingtalk_driver::AiCard);

impl AiCard {
    /// The first card's `outTrackId`.
    pub fn out_track_id(&self) -> &str {
        self.0.out_track_id()
    }

    /// Whether the card could not be created and the text goes out as markdown at the end.
    pub fn is_fallback(&self) -> bool {
        self.0.is_fallback()
    }

    /// The text so far.
    pub fn text(&self) -> String {
        self.0.text()
    }

    /// Appends to the text. Never blocks.
    pub fn append(&self, text: &str) -> Result<(), AiCardError> {
        self.0.append(text)
    }

    /// Replaces the whole text. Never blocks.
    pub fn replace(&self, text: &str) -> Result<(), AiCardError> {
        self.0.replace(text)
    }

    /// Sets another card variable. Never blocks.
    pub fn set(&self, key: &str, value: &str) -> Result<(), AiCardError> {
        self.0.set(key, value)
    }

    /// Sends the last text, closes the card as finished; blocks until it is.
    pub fn finish(self) -> AiCardOutcome {
        block_on(self.0.finish())
    }

    /// Sends the text so far and closes the card as failed; blocks until it is.
    pub fn fail(self, reason: &str) -> AiCardOutcome {
        block_on(self.0.fail(reason))
    }
}

// ---- bot context --------------------------------------------------------------------------

/// A chatbot message and everything needed to answer it, with blocking reply methods.
#[derive(Debug, Clone)]
pub struct BotContext {
    inner: dingtalk_driver::BotContext<Ureq>,
    api: ApiClient,
}

impl BotContext {
    fn new(ctx: dingtalk_driver::BotContext<Ureq>) -> Self {
        let api = ApiClient::from_async(ctx.api());
        Self {
            inner: ctx.with_api(api.inner.clone()),
            api,
        }
    }

    /// The message, parsed from the frame when first asked for. A frame whose data is not a
    /// chatbot message gives an empty message (see [`BotContext::parse_error`]).
    pub fn message(&self) -> &ChatbotMessage {
        self.inner.message()
    }

    /// Why the frame's data is not a chatbot message, if it is not.
    pub fn parse_error(&self) -> Option<&dingtalk_core::FrameError> {
        self.inner.parse_error()
    }

    /// The frame it came in (headers such as `messageId`).
    pub fn frame(&self) -> &Frame {
        self.inner.frame()
    }

    /// The API client (token cache shared with the whole client).
    pub fn api(&self) -> &ApiClient {
        &self.api
    }

    /// The message text, trimmed (`None` for non-text messages).
    pub fn text(&self) -> Option<&str> {
        self.inner.text()
    }

    /// Replies through the session webhook (refused once it expired).
    pub fn reply(&self, message: Message) -> Result<(), ClientError> {
        block_on(self.inner.reply(message))
    }

    /// Replies with text; in a group the sender is @-mentioned.
    pub fn reply_text(&self, text: impl Into<String>) -> Result<(), ClientError> {
        block_on(self.inner.reply_text(text))
    }

    /// Replies with markdown.
    pub fn reply_markdown(
        &self,
        title: impl Into<String>,
        text: impl Into<String>,
    ) -> Result<(), ClientError> {
        block_on(self.inner.reply_markdown(title, text))
    }

    /// Replies with a one-button action card.
    pub fn reply_action_card(
        &self,
        title: impl Into<String>,
        text: impl Into<String>,
        button: impl Into<String>,
        url: impl Into<String>,
    ) -> Result<(), ClientError> {
        block_on(self.inner.reply_action_card(title, text, button, url))
    }

    /// Creates an interactive card from `template_id` and delivers it to this conversation.
    pub fn reply_card(
        &self,
        template_id: impl Into<String>,
        out_track_id: impl Into<String>,
        data: CardParamMap,
    ) -> Result<CardResult, ClientError> {
        block_on(self.inner.reply_card(template_id, out_track_id, data))
    }

    /// Starts an AI card answering this message; see [`dingtalk_driver::BotContext::ai_card`].
    pub fn ai_card(&self, options: AiCardOptions) -> Result<AiCard, ClientError> {
        block_on(self.inner.ai_card(options)).map(AiCard)
    }

    /// Downloads a file, picture, audio or video of this message by its `downloadCode`.
    pub fn download(&self, download_code: &str) -> Result<Vec<u8>, ClientError> {
        block_on(self.inner.download(download_code))
    }

    /// Sends `message` through the robot API to this conversation (the group, or the sender
    /// of a one-to-one message).
    pub fn send_robot(
        &self,
        message: dingtalk_core::api::robot::RobotMessage,
    ) -> Result<(), ClientError> {
        block_on(self.inner.send_robot(message))
    }

    /// Uploads an image (jpg, gif, png, bmp; ≤ 20 MB, checked first) and sends it here.
    pub fn reply_image(
        &self,
        file_name: impl Into<String>,
        bytes: Vec<u8>,
    ) -> Result<(), ClientError> {
        block_on(self.inner.reply_image(file_name, bytes))
    }

    /// Uploads a file (doc, docx, xls, xlsx, ppt, pptx, zip, pdf, rar; ≤ 20 MB) and sends it.
    pub fn reply_file(
        &self,
        file_name: impl Into<String>,
        bytes: Vec<u8>,
    ) -> Result<(), ClientError> {
        block_on(self.inner.reply_file(file_name, bytes))
    }

    /// Uploads a voice message (amr, mp3, wav; ≤ 2 MB) lasting `duration_ms` and sends it.
    pub fn reply_voice(
        &self,
        file_name: impl Into<String>,
        bytes: Vec<u8>,
        duration_ms: u64,
    ) -> Result<(), ClientError> {
        block_on(self.inner.reply_voice(file_name, bytes, duration_ms))
    }
}

// ---- builder ------------------------------------------------------------------------------

/// Builds a [`Client`]. Every option and registration mirrors the async adapters', with plain
/// functions as handlers (run on the client's handler threads).
#[derive(Debug)]
pub struct ClientBuilder {
    inner: dingtalk_driver::ClientBuilder<AsyncIo>,
    pool: ThreadPool,
    /// A registration that failed (reported by `build`).
    error: Option<String>,
}

/// Most handler threads. The session's `max_in_flight` (the builder's `concurrency`) already
/// bounds the handler calls in flight; this bounds threads for calls run through `dispatch`.
const HANDLER_THREADS: usize = 512;

/// Runs a plain function on the handler threads as the driver's async handler. A call whose
/// frame is acked on arrival runs even if the driver gives up on it before a thread takes it
/// (its handler timeout fired while it queued): DingTalk never redelivers such a frame, so
/// skipping the call would lose it. Other calls are skipped then: their frame was acked as a
/// failure, and DingTalk redelivers it.
fn offload<T, F>(
    pool: &ThreadPool,
    acked_on_arrival: bool,
    f: F,
) -> dingtalk_driver::runtime::BoxFuture<'static, T>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    if acked_on_arrival {
        pool.run_to_end(f)
    } else {
        pool.run(f)
    }
}

/// Parses the message of a context the driver hands over, here on the reader thread, when the
/// driver has time ([`dingtalk_driver::runtime::driver_has_time`]); the parsed message is shared
/// with the handler's context. Handler threads then allocate far less, which keeps the process
/// smaller with allocators that cache freed blocks per thread. Under load the handler parses
/// it, when it first asks, and the reader does nothing more than before.
fn prepare(ctx: &dingtalk_driver::BotContext<Ureq>) {
    if dingtalk_driver::runtime::driver_has_time() {
        let _ = ctx.message();
    }
}

/// Whether frames of `subscription` are acked on arrival: the core's policy, read from the same
/// subscription the driver registers for each kind of handler.
fn acked_on_arrival(subscription: &Subscription) -> bool {
    subscription.ack == dingtalk_core::AckPolicy::Immediate
}

impl ClientBuilder {
    /// A builder for these credentials, with DingTalk's real hosts.
    pub fn new(credentials: Credentials) -> Self {
        Self {
            inner: dingtalk_driver::ClientBuilder::new(credentials),
            pool: ThreadPool::new("dingtalk-handler", HANDLER_THREADS),
            error: None,
        }
    }

    fn map(
        self,
        f: impl FnOnce(
            dingtalk_driver::ClientBuilder<AsyncIo>,
        ) -> dingtalk_driver::ClientBuilder<AsyncIo>,
    ) -> Self {
        Self {
            inner: f(self.inner),
            pool: self.pool,
            error: self.error,
        }
    }

    /// Uses these hosts. A plain `http://` loopback gateway (the emulator) also allows `ws://`.
    #[must_use]
    pub fn endpoints(self, endpoints: Endpoints) -> Self {
        self.map(|b| b.endpoints(endpoints))
    }

    /// Uses your own rustls configuration for the WebSocket and every HTTP call.
    #[must_use]
    pub fn tls_config(self, config: Arc<rustls::ClientConfig>) -> Self {
        self.map(|b| b.tls_config(config))
    }

    /// Adjusts the Stream session (keepalive, backoff, limits, ack policies...).
    #[must_use]
    pub fn configure(self, f: impl FnOnce(&mut StreamConfig)) -> Self {
        self.map(|b| b.configure(f))
    }

    /// Concurrent Stream connections for this app (default 1); see
    /// [`dingtalk_driver::ClientBuilder::connections`].
    #[must_use]
    pub fn connections(self, n: usize) -> Self {
        self.map(|b| b.connections(n))
    }

    /// Most handler calls (threads) at once (default 64).
    #[must_use]
    pub fn concurrency(self, n: usize) -> Self {
        self.map(|b| b.concurrency(n))
    }

    /// Timeout of each HTTP request (default 10 s).
    #[must_use]
    pub fn http_timeout(self, timeout: Duration) -> Self {
        self.map(|b| b.http_timeout(timeout))
    }

    /// Longest a handler call may run (default 10 min). Past it the call's slot is freed, a
    /// failure ack sent if one is still owed, and a warning logged; the thread running it
    /// cannot be stopped from outside, so it runs on and its result is ignored.
    #[must_use]
    pub fn handler_timeout(self, timeout: Duration) -> Self {
        self.map(|b| b.handler_timeout(timeout))
    }

    /// Retry policy of API calls (rate limits, busy server).
    #[must_use]
    pub fn retry_policy(self, retry: RetryPolicy) -> Self {
        self.map(|b| b.retry_policy(retry))
    }

    /// Sends the WebSocket and every HTTP call through this `http://` proxy
    /// (`http://user:password@host:port`) instead of the environment's; see
    /// [`dingtalk_driver::ClientBuilder::proxy`].
    #[must_use]
    pub fn proxy(self, url: impl Into<String>) -> Self {
        self.map(|b| b.proxy(url))
    }

    /// Uses these proxies (per scheme, with a bypass list) instead of the environment's.
    #[must_use]
    pub fn proxies(self, proxies: dingtalk_core::proxy::Proxies) -> Self {
        self.map(|b| b.proxies(proxies))
    }

    /// Shares state with the other replicas of this app through `store` (see
    /// [`dingtalk_driver::ClientBuilder::state_store`]). The store's commands run on the
    /// client's thread, in its async-io loop.
    #[must_use]
    pub fn state_store(self, store: Arc<dyn StateStore>, config: StoreConfig) -> Self {
        self.map(|b| b.state_store(store, config))
    }

    /// Calls `hook` on every connection change (connected, draining, disconnected, open
    /// failed, reconnecting, stopped), on the client's thread: it must return quickly.
    #[must_use]
    pub fn on_lifecycle(
        self,
        hook: impl Fn(&dingtalk_driver::Lifecycle<'_>) + Send + Sync + 'static,
    ) -> Self {
        self.map(|b| b.on_lifecycle(hook))
    }

    /// Connects directly, whatever `HTTPS_PROXY` / `HTTP_PROXY` / `ALL_PROXY` say.
    #[must_use]
    pub fn no_proxy(self) -> Self {
        self.map(|b| b.no_proxy())
    }

    /// Registers a raw handler for `subscription` (and subscribes to it), for a topic with its
    /// own [`AckPolicy`](dingtalk_core::AckPolicy).
    #[must_use]
    pub fn handler<F>(self, subscription: Subscription, f: F) -> Self
    where
        F: Fn(Frame, &ApiClient) -> Outcome + Send + Sync + 'static,
    {
        let (f, pool) = (Arc::new(f), self.pool.clone());
        let acked = acked_on_arrival(&subscription);
        let handler: dingtalk_driver::Handler<Ureq> = Arc::new(move |frame, api| {
            let f = f.clone();
            offload(&pool, acked, move || f(frame, &ApiClient::from_async(&api)))
        });
        self.map(|b| b.handler(subscription, handler))
    }

    /// Handles chatbot messages (acked on arrival, so the handler may take its time).
    #[must_use]
    pub fn on_bot_message<F>(self, f: F) -> Self
    where
        F: Fn(BotContext) -> Result<(), HandlerError> + Send + Sync + 'static,
    {
        let (f, pool) = (Arc::new(f), self.pool.clone());
        let acked = acked_on_arrival(&Subscription::callback(dingtalk_core::topic::BOT_MESSAGE));
        self.map(|b| {
            b.on_bot_message(move |ctx| {
                let f = f.clone();
                prepare(&ctx);
                offload(&pool, acked, move || f(BotContext::new(ctx)))
            })
        })
    }

    /// Routes chatbot messages through `router` (commands, kinds, text, fallback, `/help`)
    /// instead of one `on_bot_message` handler. An invalid command name fails `build`.
    #[must_use]
    pub fn router(mut self, router: Router) -> Self {
        if let Some(e) = &router.error {
            self.error = Some(e.to_string());
        }
        let router = Arc::new(router);
        self.on_bot_message(move |ctx| router.dispatch(ctx))
    }

    /// Routes organisation events by type through `router` instead of one `on_event` handler.
    #[must_use]
    pub fn event_router(self, router: EventRouter) -> Self {
        let router = Arc::new(router);
        self.on_event(move |ev, api| router.dispatch(ev, api))
    }

    /// Routes card actions by action id through `router` instead of one `on_card_callback`.
    #[must_use]
    pub fn card_router(self, router: CardRouter) -> Self {
        let router = Arc::new(router);
        self.on_card_callback(move |cb, api| router.dispatch(cb, api))
    }

    /// Handles delegate ("托管") bot messages (acked on arrival).
    #[must_use]
    pub fn on_delegate_message<F>(self, f: F) -> Self
    where
        F: Fn(BotContext) -> Result<(), HandlerError> + Send + Sync + 'static,
    {
        let (f, pool) = (Arc::new(f), self.pool.clone());
        let acked = acked_on_arrival(&Subscription::callback(dingtalk_core::topic::BOT_DELEGATE));
        self.map(|b| {
            b.on_delegate_message(move |ctx| {
                let f = f.clone();
                prepare(&ctx);
                offload(&pool, acked, move || f(BotContext::new(ctx)))
            })
        })
    }

    /// Handles card actions; the returned response is sent inside the ack.
    #[must_use]
    pub fn on_card_callback<F>(self, f: F) -> Self
    where
        F: Fn(CardCallback, &ApiClient) -> Result<Option<CardCallbackResponse>, HandlerError>
            + Send
            + Sync
            + 'static,
    {
        let (f, pool) = (Arc::new(f), self.pool.clone());
        let acked = acked_on_arrival(&Subscription::callback(dingtalk_core::topic::CARD_CALLBACK));
        self.map(|b| {
            b.on_card_callback(move |cb, api| {
                let f = f.clone();
                offload(&pool, acked, move || f(cb, &ApiClient::from_async(&api)))
            })
        })
    }

    /// Handles graph API invocations; the response is sent inside the ack.
    #[must_use]
    pub fn on_graph_invoke<F>(self, f: F) -> Self
    where
        F: Fn(GraphRequest, &ApiClient) -> Result<GraphResponse, HandlerError>
            + Send
            + Sync
            + 'static,
    {
        let (f, pool) = (Arc::new(f), self.pool.clone());
        let acked = acked_on_arrival(&Subscription::callback(dingtalk_core::topic::GRAPH_INVOKE));
        self.map(|b| {
            b.on_graph_invoke(move |req, api| {
                let f = f.clone();
                offload(&pool, acked, move || f(req, &ApiClient::from_async(&api)))
            })
        })
    }

    /// Handles organisation events; an error or a timeout acks `LATER`.
    #[must_use]
    pub fn on_event<F>(self, f: F) -> Self
    where
        F: Fn(Event, &ApiClient) -> Result<EventAck, HandlerError> + Send + Sync + 'static,
    {
        let (f, pool) = (Arc::new(f), self.pool.clone());
        let acked = acked_on_arrival(&Subscription::events());
        self.map(|b| {
            b.on_event(move |ev, api| {
                let f = f.clone();
                offload(&pool, acked, move || f(ev, &ApiClient::from_async(&api)))
            })
        })
    }

    /// Handles any other CALLBACK topic with the raw frame; the value goes into the ack.
    #[must_use]
    pub fn on_callback<F>(self, topic: &str, f: F) -> Self
    where
        F: Fn(Frame, &ApiClient) -> Result<Value, HandlerError> + Send + Sync + 'static,
    {
        let (f, pool) = (Arc::new(f), self.pool.clone());
        let acked = acked_on_arrival(&Subscription::callback(topic));
        self.map(|b| {
            b.on_callback(topic, move |frame, api| {
                let f = f.clone();
                offload(&pool, acked, move || f(frame, &ApiClient::from_async(&api)))
            })
        })
    }

    /// Builds the client (validates the configuration, sets up TLS and HTTP).
    pub fn build(self) -> Result<Client, Error> {
        if let Some(e) = self.error {
            return Err(Error::Config(e));
        }
        let inner = self.inner.build()?;
        let api = ApiClient::from_async(inner.api());
        Ok(Client { inner, api })
    }
}

// ---- client -------------------------------------------------------------------------------

/// A DingTalk Stream client for plain threads. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Client {
    inner: Inner,
    api: ApiClient,
}

impl Client {
    /// A builder for these credentials.
    pub fn builder(credentials: Credentials) -> ClientBuilder {
        ClientBuilder::new(credentials)
    }

    /// A builder from `DINGTALK_CLIENT_ID` / `DINGTALK_CLIENT_SECRET` (and
    /// `DINGTALK_OPENAPI_ENDPOINT`); see [`env_config`].
    pub fn from_env() -> Result<ClientBuilder, Error> {
        Ok(ClientBuilder {
            inner: Inner::from_env()?,
            pool: ThreadPool::new("dingtalk-handler", HANDLER_THREADS),
            error: None,
        })
    }

    /// The OpenAPI client (shares this client's token cache).
    pub fn api(&self) -> &ApiClient {
        &self.api
    }

    /// The Stream configuration.
    pub fn config(&self) -> &StreamConfig {
        self.inner.config()
    }

    /// The proxies the client connects through (`Debug` shows no credentials).
    pub fn proxies(&self) -> &dingtalk_core::proxy::Proxies {
        self.inner.proxies()
    }

    /// Whether a connection is open (frames can arrive) now.
    pub fn is_connected(&self) -> bool {
        self.inner.is_connected()
    }

    /// Waits up to `timeout` for a connection to open: `true` once one is, `false` when
    /// `run` returned first or the time ran out. Called before `run` starts (from another
    /// thread), it waits for the run.
    pub fn wait_connected(&self, timeout: Duration) -> bool {
        block_on(async {
            let connected = std::pin::pin!(self.inner.wait_connected());
            let timer = std::pin::pin!(async_io::Timer::after(timeout));
            futures_lite_select(connected, timer)
                .await
                .unwrap_or_default()
        })
    }

    /// The counters of the current (or last) run; see [`dingtalk_driver::Client::stats`].
    pub fn stats(&self) -> Option<ClientStats> {
        self.inner.stats()
    }

    /// A handle that stops [`Client::run`] gracefully, from any thread.
    pub fn stop_handle(&self) -> StopHandle {
        self.inner.stop_handle()
    }

    /// Runs the handler registered for `frame` on this thread and returns its outcome (for
    /// frames that arrive another way, such as HTTP callbacks). `None` without a handler.
    pub fn dispatch(&self, frame: Frame) -> Option<Outcome> {
        self.inner.dispatch(frame).map(block_on)
    }

    /// Connects and serves on this thread until stopped (`Ok`) or a terminal error such as
    /// rejected credentials (`Err`). One run at a time per client.
    pub fn run(&self) -> Result<(), Error> {
        block_on(self.inner.run())
    }
}

// ---- HTTP callbacks ---------------------------------------------------------------------

/// HTTP-callback mode (feature `http-callback`): DingTalk POSTs outgoing-robot messages and
/// subscribed events to your server; they reach the same handlers as Stream mode, verified,
/// deduplicated and bounded (see [`dingtalk_driver::callback`]). Served by hyper on this thread
/// (its connections and handler calls multiplexed in the async-io reactor, handlers on the
/// client's thread pool).
///
/// ```no_run
/// # fn demo(client: dingtalk_blocking::Client) -> std::io::Result<()> {
/// let listener = std::net::TcpListener::bind("0.0.0.0:8080")?;
/// std::thread::spawn(move || dingtalk_blocking::http_callback::serve(listener, &client, None));
/// # Ok(()) }
/// ```
#[cfg(feature = "http-callback")]
pub mod http_callback {
    use std::sync::Arc;

    use dingtalk_core::callback::EventCrypto;
    use dingtalk_driver::runtime::AsyncIo;

    pub use dingtalk_driver::callback::{CallbackLimits, MAX_CONNECTIONS};

    /// The service: every decision and the handler calls.
    pub type CallbackService = dingtalk_driver::callback::CallbackService<AsyncIo>;

    /// Serves `client`'s handlers on `listener` (`POST /robot` and, with `crypto`,
    /// `POST /events`), blocking this thread.
    pub fn serve(
        listener: std::net::TcpListener,
        client: &crate::Client,
        crypto: Option<EventCrypto>,
    ) -> std::io::Result<()> {
        let service = Arc::new(CallbackService::new(&client.inner, crypto));
        async_io::block_on(dingtalk_driver::callback::serve(listener, service))
    }

    /// [`serve`] until `stop` is stopped (the client's [`StopHandle`](crate::StopHandle), say):
    /// then no connection is accepted, open ones close, running handler calls finish, and this
    /// returns.
    pub fn serve_until(
        listener: std::net::TcpListener,
        client: &crate::Client,
        crypto: Option<EventCrypto>,
        stop: crate::StopHandle,
    ) -> std::io::Result<()> {
        let service = Arc::new(CallbackService::new(&client.inner, crypto));
        async_io::block_on(dingtalk_driver::callback::serve_until(
            listener,
            service,
            async move { stop.stopped().await },
        ))
    }
}

// ---- group --------------------------------------------------------------------------------

/// Several clients (several apps in one process) run on one thread and stopped together; a
/// terminal error of one stops the others. See [`dingtalk_driver::Group`].
#[derive(Debug)]
pub struct Group {
    inner: dingtalk_driver::Group<AsyncIo>,
}

impl Group {
    /// A group of these clients.
    pub fn new(clients: impl IntoIterator<Item = Client>) -> Self {
        Self {
            inner: dingtalk_driver::Group::new(clients.into_iter().map(|c| c.inner)),
        }
    }

    /// One handle that stops every client of the group, from any thread.
    pub fn stop_handle(&self) -> StopHandle {
        self.inner.stop_handle()
    }

    /// Runs every client on this thread until all have stopped; the first terminal error
    /// (with its app's client id) once all are done.
    pub fn run(&self) -> Result<(), GroupError> {
        block_on(self.inner.run())
    }
}

/// The first of `a` (its value) and `b` (`None`).
async fn futures_lite_select<A, B>(a: A, b: B) -> Option<A::Output>
where
    A: std::future::Future + Unpin,
    B: std::future::Future + Unpin,
{
    let mut a = a;
    let mut b = b;
    std::future::poll_fn(move |cx| {
        if let std::task::Poll::Ready(v) = std::pin::Pin::new(&mut a).poll(cx) {
            return std::task::Poll::Ready(Some(v));
        }
        if std::pin::Pin::new(&mut b).poll(cx).is_ready() {
            return std::task::Poll::Ready(None);
        }
        std::task::Poll::Pending
    })
    .await
}

// ---- router -------------------------------------------------------------------------------

type CommandFn = Arc<dyn Fn(BotContext, String) -> Result<(), HandlerError> + Send + Sync>;
type MessageFn = Arc<dyn Fn(BotContext) -> Result<(), HandlerError> + Send + Sync>;

/// Routes chatbot messages to plain functions: commands (`/name args`, after any
/// @-mentions), message kinds, text, a fallback, and `/help` from the commands' help lines.
/// The same decisions as the async adapters' [`dingtalk_driver::Router`].
#[derive(Default)]
pub struct Router {
    routes: dingtalk_core::router::Routes,
    commands: Vec<CommandFn>,
    kinds: Vec<Option<MessageFn>>,
    text: Option<MessageFn>,
    fallback: Option<MessageFn>,
    error: Option<dingtalk_core::router::RouteError>,
}

impl std::fmt::Debug for Router {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Router")
            .field("routes", &self.routes)
            .finish_non_exhaustive()
    }
}

impl Router {
    /// An empty router.
    pub fn new() -> Self {
        Self::default()
    }

    /// The command `/name`: `f` gets the context and the text after the name.
    #[must_use]
    pub fn command<F>(mut self, name: &str, help: &str, f: F) -> Self
    where
        F: Fn(BotContext, String) -> Result<(), HandlerError> + Send + Sync + 'static,
    {
        match self.routes.command(name, help) {
            Ok(_) => self.commands.push(Arc::new(f)),
            Err(e) => {
                self.error.get_or_insert(e);
            }
        }
        self
    }

    /// Messages of `msgtype` (`picture`, `file`, `audio`, `video`, `richText`, ...).
    #[must_use]
    pub fn on_kind<F>(mut self, msgtype: &str, f: F) -> Self
    where
        F: Fn(BotContext) -> Result<(), HandlerError> + Send + Sync + 'static,
    {
        let index = self.routes.kind(msgtype);
        if self.kinds.len() <= index {
            self.kinds.resize_with(index + 1, || None);
        }
        self.kinds[index] = Some(Arc::new(f));
        self
    }

    /// Text messages that are not commands.
    #[must_use]
    pub fn on_text<F>(mut self, f: F) -> Self
    where
        F: Fn(BotContext) -> Result<(), HandlerError> + Send + Sync + 'static,
    {
        self.routes.text();
        self.text = Some(Arc::new(f));
        self
    }

    /// Whatever no other handler takes.
    #[must_use]
    pub fn fallback<F>(mut self, f: F) -> Self
    where
        F: Fn(BotContext) -> Result<(), HandlerError> + Send + Sync + 'static,
    {
        self.routes.fallback();
        self.fallback = Some(Arc::new(f));
        self
    }

    /// The help text `/help` answers.
    pub fn help(&self) -> String {
        self.routes.help()
    }

    /// Runs the handler `ctx`'s message goes to, on this thread.
    pub fn dispatch(&self, ctx: BotContext) -> Result<(), HandlerError> {
        use dingtalk_core::router::Decision;
        let decision = self.routes.decide(ctx.message());
        match decision {
            Decision::Command { index, args } => match self.commands.get(index) {
                Some(f) => {
                    let args = args.to_owned();
                    f(ctx, args)
                }
                None => Ok(()),
            },
            Decision::Help { unknown } => {
                let answer = self.routes.help_answer(unknown);
                ctx.reply_text(answer)?;
                Ok(())
            }
            Decision::Kind { index } => match self.kinds.get(index).and_then(Option::as_ref) {
                Some(f) => f(ctx),
                None => Ok(()),
            },
            Decision::Text => self.text.as_ref().map_or(Ok(()), |f| f(ctx)),
            Decision::Fallback => self.fallback.as_ref().map_or(Ok(()), |f| f(ctx)),
            _ => Ok(()),
        }
    }
}

type EventFn = Arc<dyn Fn(Event, &ApiClient) -> Result<EventAck, HandlerError> + Send + Sync>;
type CardFn = Arc<
    dyn Fn(CardCallback, &ApiClient) -> Result<Option<CardCallbackResponse>, HandlerError>
        + Send
        + Sync,
>;

/// Organisation events routed by `eventType` to plain functions, with a fallback; an event
/// nobody handles is acked `SUCCESS`. See [`dingtalk_driver::EventRouter`].
#[derive(Default)]
pub struct EventRouter(dingtalk_core::router::Table<EventFn>);

impl std::fmt::Debug for EventRouter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventRouter")
            .field("keys", self.0.keys())
            .finish_non_exhaustive()
    }
}

impl EventRouter {
    /// An empty router.
    pub fn new() -> Self {
        Self::default()
    }

    /// Events of `event_type`.
    #[must_use]
    pub fn on<F>(mut self, event_type: &str, f: F) -> Self
    where
        F: Fn(Event, &ApiClient) -> Result<EventAck, HandlerError> + Send + Sync + 'static,
    {
        self.0.add(event_type, Arc::new(f));
        self
    }

    /// Events of any other type.
    #[must_use]
    pub fn fallback<F>(mut self, f: F) -> Self
    where
        F: Fn(Event, &ApiClient) -> Result<EventAck, HandlerError> + Send + Sync + 'static,
    {
        self.0.set_fallback(Arc::new(f));
        self
    }

    /// Runs the handler of `event`'s type, on this thread.
    pub fn dispatch(&self, event: Event, api: &ApiClient) -> Result<EventAck, HandlerError> {
        match self.0.pick([event.event_type.as_str()]) {
            Some(f) => f(event, api),
            None => Ok(EventAck::Success),
        }
    }
}

/// Card actions routed by action id to plain functions, with a fallback; an action nobody
/// handles gets no update. See [`dingtalk_driver::CardRouter`].
#[derive(Default)]
pub struct CardRouter(dingtalk_core::router::Table<CardFn>);

impl std::fmt::Debug for CardRouter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CardRouter")
            .field("keys", self.0.keys())
            .finish_non_exhaustive()
    }
}

impl CardRouter {
    /// An empty router.
    pub fn new() -> Self {
        Self::default()
    }

    /// Clicks whose `actionIds` include `action_id`.
    #[must_use]
    pub fn on_action<F>(mut self, action_id: &str, f: F) -> Self
    where
        F: Fn(CardCallback, &ApiClient) -> Result<Option<CardCallbackResponse>, HandlerError>
            + Send
            + Sync
            + 'static,
    {
        self.0.add(action_id, Arc::new(f));
        self
    }

    /// Clicks on cards whose `outTrackId` starts with `prefix`, when no action handler takes
    /// the click; see [`dingtalk_driver::CardRouter::on_card`].
    #[must_use]
    pub fn on_card<F>(mut self, prefix: &str, f: F) -> Self
    where
        F: Fn(CardCallback, &ApiClient) -> Result<Option<CardCallbackResponse>, HandlerError>
            + Send
            + Sync
            + 'static,
    {
        self.0.add_prefix(prefix, Arc::new(f));
        self
    }

    /// Any other action.
    #[must_use]
    pub fn fallback<F>(mut self, f: F) -> Self
    where
        F: Fn(CardCallback, &ApiClient) -> Result<Option<CardCallbackResponse>, HandlerError>
            + Send
            + Sync
            + 'static,
    {
        self.0.set_fallback(Arc::new(f));
        self
    }

    /// Runs the handler of `callback`'s action, on this thread.
    pub fn dispatch(
        &self,
        callback: CardCallback,
        api: &ApiClient,
    ) -> Result<Option<CardCallbackResponse>, HandlerError> {
        let ids = callback.action().map(|a| a.action_ids).unwrap_or_default();
        match self
            .0
            .pick_for(ids.iter().map(String::as_str), &callback.out_track_id)
        {
            Some(f) => f(callback, api),
            None => Ok(None),
        }
    }
}

/// The crate README's examples, compiled as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
