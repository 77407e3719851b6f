//! # dingtalk-tokio
//!
//! A DingTalk (钉钉) bot on tokio. Stream mode (the WebSocket push channel), replies through
//! session webhooks, and any OpenAPI call, with every protocol decision made by
//! [`dingtalk_core`]: acks go to the connection a frame came from, pings are answered even when
//! handlers are busy, `disconnect` switches connections without losing frames, duplicates reach
//! the handler once, dead connections are detected and replaced with backoff, and
//! [`StopHandle::stop`] finishes in-flight work before [`Client::run`] returns.
//!
//! ```no_run
//! use dingtalk_tokio::{Client, HandlerError};
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let client = Client::from_env()? // DINGTALK_CLIENT_ID, DINGTALK_CLIENT_SECRET
//!         .on_bot_message(|ctx| async move {
//!             if let Some(text) = ctx.text() {
//!                 ctx.reply_text(format!("echo: {text}")).await?;
//!             }
//!             Ok::<(), HandlerError>(())
//!         })
//!         .build()?;
//!     let stop = client.stop_handle();
//!     tokio::spawn(async move {
//!         let _ = tokio::signal::ctrl_c().await;
//!         stop.stop();
//!     });
//!     client.run().await?;
//!     Ok(())
//! }
//! ```
//!
//! TLS is rustls with the ring provider and the bundled webpki roots (or the platform verifier
//! with the `platform-verifier` feature, or your own `ClientConfig` through
//! [`ClientBuilder::tls_config`]); no process-wide provider is installed.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod api;
mod context;
mod handler;
#[cfg(feature = "http-callback")]
pub mod http_callback;
mod tls;

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dingtalk_core::model::{
    CardCallback, CardCallbackResponse, Event, GraphRequest, GraphResponse,
};
use dingtalk_core::{
    ConnId, Credentials, Delivery, Endpoints, Input, Outcome, Output, RequestId, Session,
    SessionEvent, StreamConfig, Subscription, topic,
};
use futures_util::{FutureExt, SinkExt, StreamExt};
use serde_json::Value;
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::Message;

pub use api::{ApiClient, ClientError};
pub use context::BotContext;
pub use dingtalk_core;
pub use dingtalk_core::api::retry::RetryPolicy;
pub use handler::{EventAck, HandlerError};
pub use tls::default_tls_config;

/// Why the client could not be built or could not keep running.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Missing or invalid configuration (e.g. environment variables).
    #[error("configuration: {0}")]
    Config(String),
    /// The TLS or HTTP client could not be set up.
    #[error("TLS setup: {0}")]
    Tls(String),
    /// A terminal protocol error, such as rejected credentials.
    #[error(transparent)]
    Stream(#[from] dingtalk_core::Error),
}

/// Builds a [`Client`].
pub struct ClientBuilder {
    config: StreamConfig,
    tls: Option<Arc<rustls::ClientConfig>>,
    handlers: handler::Handlers,
    http_timeout: Duration,
    retry: RetryPolicy,
}

impl std::fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl ClientBuilder {
    /// A builder for these credentials, with DingTalk's real hosts.
    pub fn new(credentials: Credentials) -> Self {
        Self {
            config: StreamConfig::new(credentials),
            tls: None,
            handlers: handler::Handlers::default(),
            http_timeout: Duration::from_secs(10),
            retry: RetryPolicy::default(),
        }
    }

    /// Uses these hosts (the emulator, a forwarder, overseas hosts). A plain `http://` loopback
    /// gateway (the emulator) also allows its `ws://` Stream endpoint.
    #[must_use]
    pub fn endpoints(mut self, endpoints: Endpoints) -> Self {
        self.config.set_endpoints(endpoints);
        self
    }

    /// Uses your own rustls configuration for both WebSocket and HTTP.
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

    /// Timeout of each HTTP request (default 10 s).
    #[must_use]
    pub fn http_timeout(mut self, timeout: Duration) -> Self {
        self.http_timeout = timeout;
        self
    }

    /// Retry policy of API calls (rate limits, busy server).
    #[must_use]
    pub fn retry_policy(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    fn register(&mut self, subscription: Subscription, handler: handler::Erased) {
        self.handlers
            .register(&mut self.config, subscription, handler);
    }

    /// Handles chatbot messages (`/v1.0/im/bot/messages/get`). They are acked on arrival
    /// (DingTalk redelivers late-acked messages), so the handler may take its time.
    #[must_use]
    pub fn on_bot_message<F, Fut>(mut self, f: F) -> Self
    where
        F: Fn(BotContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), HandlerError>> + Send + 'static,
    {
        self.register(Subscription::callback(topic::BOT_MESSAGE), handler::bot(f));
        self
    }

    /// Handles delegate ("托管") bot messages.
    #[must_use]
    pub fn on_delegate_message<F, Fut>(mut self, f: F) -> Self
    where
        F: Fn(BotContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), HandlerError>> + Send + 'static,
    {
        self.register(Subscription::callback(topic::BOT_DELEGATE), handler::bot(f));
        self
    }

    /// Handles card actions; the returned response is sent inside the ack.
    #[must_use]
    pub fn on_card_callback<F, Fut>(mut self, f: F) -> Self
    where
        F: Fn(CardCallback, ApiClient) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Option<CardCallbackResponse>, HandlerError>> + Send + 'static,
    {
        self.register(
            Subscription::callback(topic::CARD_CALLBACK),
            handler::card(f),
        );
        self
    }

    /// Handles graph API invocations; the response is sent inside the ack.
    #[must_use]
    pub fn on_graph_invoke<F, Fut>(mut self, f: F) -> Self
    where
        F: Fn(GraphRequest, ApiClient) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<GraphResponse, HandlerError>> + Send + 'static,
    {
        self.register(
            Subscription::callback(topic::GRAPH_INVOKE),
            handler::graph(f),
        );
        self
    }

    /// Handles organisation events (EVENT `*`). An error or a timeout acks `LATER`.
    #[must_use]
    pub fn on_event<F, Fut>(mut self, f: F) -> Self
    where
        F: Fn(Event, ApiClient) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<EventAck, HandlerError>> + Send + 'static,
    {
        self.register(Subscription::events(), handler::event(f));
        self
    }

    /// Handles any other CALLBACK topic with the raw frame; the value goes into the ack.
    #[must_use]
    pub fn on_callback<F, Fut>(mut self, topic: &str, f: F) -> Self
    where
        F: Fn(dingtalk_core::Frame, ApiClient) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Value, HandlerError>> + Send + 'static,
    {
        self.register(Subscription::callback(topic), handler::raw(f));
        self
    }

    /// Builds the client (validates the configuration, sets up TLS and HTTP).
    pub fn build(self) -> Result<Client, Error> {
        self.config.credentials.validate().map_err(Error::Config)?;
        let tls = match self.tls {
            Some(t) => t,
            None => default_tls_config()?,
        };
        let http = api::build_http(&tls, self.http_timeout)?;
        let api = ApiClient::new(
            http.clone(),
            self.config.credentials.clone(),
            self.config.endpoints.clone(),
            self.retry,
        );
        let (stop_tx, _) = watch::channel(false);
        Ok(Client {
            inner: Arc::new(Inner {
                config: self.config,
                tls,
                http,
                api,
                handlers: self.handlers,
                stop: stop_tx,
            }),
        })
    }
}

struct Inner {
    config: StreamConfig,
    tls: Arc<rustls::ClientConfig>,
    http: reqwest::Client,
    api: ApiClient,
    handlers: handler::Handlers,
    stop: watch::Sender<bool>,
}

/// A DingTalk Stream client. Build it with [`Client::builder`] or [`Client::from_env`].
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

/// Stops a running [`Client`] gracefully. Cloneable; usable from any thread.
#[derive(Clone, Debug)]
pub struct StopHandle {
    tx: watch::Sender<bool>,
}

impl StopHandle {
    /// Asks the client to stop: reading stops, in-flight handlers finish (bounded by
    /// `stop_timeout`), their acks are sent, connections close, and `run()` returns.
    pub fn stop(&self) {
        self.tx.send_replace(true);
    }
}

/// Reads the credentials and endpoint from the environment: `DINGTALK_CLIENT_ID`,
/// `DINGTALK_CLIENT_SECRET`, and optionally `DINGTALK_OPENAPI_ENDPOINT` (the gateway/api base
/// URL, as in the official Python SDK) and `DINGTALK_OAPI_ENDPOINT`.
/// Returns `None` when the credentials are not set.
pub fn env_config() -> Option<(Credentials, Endpoints)> {
    dingtalk_core::config::from_env(|k| std::env::var(k).ok())
}

impl Client {
    /// A builder for these credentials.
    pub fn builder(credentials: Credentials) -> ClientBuilder {
        ClientBuilder::new(credentials)
    }

    /// A builder from `DINGTALK_CLIENT_ID` / `DINGTALK_CLIENT_SECRET` (and
    /// `DINGTALK_OPENAPI_ENDPOINT`); see [`env_config`].
    pub fn from_env() -> Result<ClientBuilder, Error> {
        let (credentials, endpoints) = env_config().ok_or_else(|| {
            Error::Config("DINGTALK_CLIENT_ID and DINGTALK_CLIENT_SECRET must be set".into())
        })?;
        Ok(ClientBuilder::new(credentials).endpoints(endpoints))
    }

    /// The OpenAPI client (shares this client's token cache).
    pub fn api(&self) -> &ApiClient {
        &self.inner.api
    }

    /// A handle that stops [`Client::run`] gracefully.
    pub fn stop_handle(&self) -> StopHandle {
        StopHandle {
            tx: self.inner.stop.clone(),
        }
    }

    /// Connects and serves until stopped (`Ok`) or a terminal error such as rejected
    /// credentials (`Err`). Transient failures are retried with backoff, never returned.
    pub async fn run(&self) -> Result<(), Error> {
        let mut config = self.inner.config.clone();
        config.rng_seed = u64::try_from(context::unix_ms()).unwrap_or(0) ^ 0x9e37_79b9_7f4a_7c15;
        let session = Session::new(config, Instant::now())?;
        Driver::new(self.inner.clone(), session).run().await
    }
}

// ---- the driver ---------------------------------------------------------------------------

enum Ev {
    Http(RequestId, Result<http::Response<Vec<u8>>, String>),
    Connected(ConnId, Result<NewConn, String>),
    Complete(dingtalk_core::DeliveryId, Outcome),
}

/// A handshaken connection: its writer task and the read half the driver polls itself.
struct NewConn {
    handle: ConnHandle,
    writer: tokio::task::JoinHandle<()>,
    stream: futures_util::stream::SplitStream<WsStream>,
}

/// What a connection's read half produced (`None`: the stream ended).
type ReadItem = (
    ConnId,
    Option<Result<Message, tokio_tungstenite::tungstenite::Error>>,
);
type Readers = futures_util::stream::SelectAll<
    std::pin::Pin<Box<dyn futures_util::Stream<Item = ReadItem> + Send>>,
>;

enum WsCmd {
    Text(String),
    Ping,
    Close,
}

struct ConnHandle {
    cmd: mpsc::UnboundedSender<WsCmd>,
}

struct Driver {
    inner: Arc<Inner>,
    session: Session,
    conns: HashMap<ConnId, ConnHandle>,
    events: mpsc::UnboundedSender<Ev>,
    rx: mpsc::UnboundedReceiver<Ev>,
    /// Every connection's read half, polled by the driver itself (no task hop per frame).
    readers: Readers,
    /// Ends a connection's read half when the session closes it.
    aborts: HashMap<ConnId, futures_util::stream::AbortHandle>,
    paused: bool,
    fatal: Option<dingtalk_core::Error>,
    writers: Vec<tokio::task::JoinHandle<()>>,
}

impl Driver {
    fn new(inner: Arc<Inner>, session: Session) -> Self {
        let (events, rx) = mpsc::unbounded_channel();
        Self {
            inner,
            session,
            conns: HashMap::new(),
            events,
            rx,
            readers: futures_util::stream::SelectAll::new(),
            aborts: HashMap::new(),
            paused: false,
            fatal: None,
            writers: Vec::new(),
        }
    }

    fn input(&mut self, input: Input<'_>) {
        self.session.handle_input(input, Instant::now());
    }

    async fn run(mut self) -> Result<(), Error> {
        let mut stop = self.inner.stop.subscribe();
        let mut stop_sent = false;
        if *stop.borrow_and_update() {
            self.input(Input::Stop);
            stop_sent = true;
        }
        while let Some(deadline) = self.drain() {
            let deadline = tokio::time::Instant::from_std(deadline);
            tokio::select! {
                biased;
                changed = stop.changed(), if !stop_sent => {
                    if changed.is_err() || *stop.borrow_and_update() {
                        stop_sent = true;
                        self.input(Input::Stop);
                    }
                }
                ev = self.rx.recv() => {
                    if let Some(ev) = ev {
                        self.handle(ev);
                        while let Ok(ev) = self.rx.try_recv() {
                            self.handle(ev);
                        }
                    }
                }
                Some(item) = self.readers.next(), if !self.paused && !self.readers.is_empty() => {
                    self.read(item);
                    // Take every frame already received before draining, so a burst of
                    // frames produces a burst of acks that the writer flushes once.
                    for _ in 0..64 {
                        if self.paused {
                            break;
                        }
                        match self.readers.next().now_or_never() {
                            Some(Some(item)) => self.read(item),
                            _ => break,
                        }
                    }
                }
                () = tokio::time::sleep_until(deadline) => self.input(Input::Timeout),
            }
        }
        // Every connection got its Close; let the writers send the last acks (bounded), so
        // a program that exits right after `run` returns loses nothing.
        self.conns.clear();
        let writers = std::mem::take(&mut self.writers);
        let _ = tokio::time::timeout(Duration::from_secs(5), async {
            for w in writers {
                let _ = w.await;
            }
        })
        .await;
        match self.fatal.take() {
            Some(e) => Err(Error::Stream(e)),
            None => Ok(()),
        }
    }

    fn handle(&mut self, ev: Ev) {
        match ev {
            Ev::Http(id, Ok(response)) => self.input(Input::HttpResponse { id, response }),
            Ev::Http(id, Err(reason)) => self.input(Input::HttpFailed { id, reason }),
            Ev::Connected(conn, Ok(new)) => {
                self.writers.retain(|w| !w.is_finished());
                self.writers.push(new.writer);
                self.conns.insert(conn, new.handle);
                let (stream, abort) = futures_util::stream::abortable(
                    new.stream
                        .map(move |m| (conn, Some(m)))
                        .chain(futures_util::stream::once(async move { (conn, None) })),
                );
                self.aborts.insert(conn, abort);
                self.readers.push(Box::pin(stream));
                self.input(Input::Connected { conn });
            }
            Ev::Connected(conn, Err(reason)) => self.input(Input::ConnectFailed { conn, reason }),
            Ev::Complete(id, outcome) => self.input(Input::Complete { id, outcome }),
        }
    }

    fn read(&mut self, (conn, item): ReadItem) {
        if !self.aborts.contains_key(&conn) {
            return; // a connection the session already closed
        }
        let closed = match item {
            Some(Ok(Message::Text(t))) => {
                self.input(Input::Text {
                    conn,
                    text: t.as_str(),
                });
                None
            }
            Some(Ok(Message::Binary(b))) => {
                match std::str::from_utf8(&b) {
                    Ok(text) => self.input(Input::Text { conn, text }),
                    Err(_) => self.input(Input::Pong { conn }),
                }
                None
            }
            Some(Ok(Message::Close(frame))) => Some(frame.map_or_else(
                || "closed".to_owned(),
                |f| format!("closed: {} {}", f.code, f.reason),
            )),
            Some(Ok(_)) => {
                self.input(Input::Pong { conn });
                None
            }
            Some(Err(e)) => Some(e.to_string()),
            None => Some("end of stream".to_owned()),
        };
        if let Some(reason) = closed {
            self.aborts.remove(&conn);
            self.conns.remove(&conn);
            self.input(Input::Closed { conn, reason });
        }
    }

    /// Carries out every output; returns the next deadline, or `None` when the session is done.
    fn drain(&mut self) -> Option<Instant> {
        loop {
            match self.session.poll_output() {
                Output::Http { id, request } => {
                    let http = self.inner.http.clone();
                    let tx = self.events.clone();
                    tokio::spawn(async move {
                        let result = api::send(&http, request).await.map_err(|e| e.to_string());
                        let _ = tx.send(Ev::Http(id, result));
                    });
                }
                Output::Connect { conn, request } => self.connect(conn, request.uri().to_string()),
                Output::Send { conn, text } => self.command(conn, WsCmd::Text(text)),
                Output::Ping { conn } => self.command(conn, WsCmd::Ping),
                Output::Close { conn } => {
                    self.command(conn, WsCmd::Close);
                    self.conns.remove(&conn);
                    if let Some(abort) = self.aborts.remove(&conn) {
                        abort.abort();
                    }
                }
                Output::PauseReading => self.paused = true,
                Output::ResumeReading => self.paused = false,
                Output::Deliver(delivery) => self.deliver(delivery),
                Output::Event(event) => log_event(&event),
                Output::Error(error) => {
                    tracing::error!(%error, "DingTalk Stream stopped");
                    self.fatal = Some(error);
                }
                Output::Timeout(at) => return Some(at),
                Output::Done => return None,
            }
        }
    }

    fn command(&mut self, conn: ConnId, cmd: WsCmd) {
        self.writers.retain(|w| !w.is_finished());
        if let Some(h) = self.conns.get(&conn) {
            if h.cmd.send(cmd).is_err() {
                tracing::debug!(?conn, "connection task already gone");
            }
        }
    }

    fn connect(&mut self, conn: ConnId, uri: String) {
        let tls = self.inner.tls.clone();
        let tx = self.events.clone();
        tokio::spawn(async move {
            let connector = tokio_tungstenite::Connector::Rustls(tls);
            let result = tokio_tungstenite::connect_async_tls_with_config(
                uri.as_str(),
                None,
                true, // TCP_NODELAY: acks are small and latency-sensitive
                Some(connector),
            )
            .await;
            match result {
                Ok((ws, _)) => {
                    let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
                    let (sink, stream) = ws.split();
                    let writer = tokio::spawn(writer(sink, cmd_rx));
                    // The driver reads the stream itself, so the connection is known before
                    // its first frame is read and that frame's ack has somewhere to go.
                    let new = NewConn {
                        handle: ConnHandle { cmd: cmd_tx },
                        writer,
                        stream,
                    };
                    let _ = tx.send(Ev::Connected(conn, Ok(new)));
                }
                Err(e) => {
                    let _ = tx.send(Ev::Connected(conn, Err(e.to_string())));
                }
            }
        });
    }

    fn deliver(&mut self, delivery: Delivery) {
        let tx = self.events.clone();
        let id = delivery.id;
        let Some(handler) = self.inner.handlers.find(&delivery.frame).cloned() else {
            // Subscriptions come from the registered handlers, so this cannot happen unless a
            // subscription was added through `configure` without a handler.
            let _ = tx.send(Ev::Complete(id, Outcome::Failed("no handler".into())));
            return;
        };
        let api = self.inner.api.clone();
        // One task per delivery; a panic is caught inside it and becomes a failure outcome.
        tokio::spawn(async move {
            let outcome = std::panic::AssertUnwindSafe(handler(delivery.frame, api))
                .catch_unwind()
                .await
                .unwrap_or_else(|_| {
                    tracing::error!("handler panicked");
                    Outcome::Failed("handler panicked".into())
                });
            let _ = tx.send(Ev::Complete(id, outcome));
        });
    }
}

fn log_event(event: &SessionEvent) {
    if event.is_warning() {
        tracing::warn!(%event, "DingTalk Stream");
    } else {
        tracing::debug!(%event, "DingTalk Stream");
    }
}

type WsStream =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn writer(
    mut sink: futures_util::stream::SplitSink<WsStream, Message>,
    mut rx: mpsc::UnboundedReceiver<WsCmd>,
) {
    while let Some(cmd) = rx.recv().await {
        let mut batch = Some(cmd);
        // Feed everything already queued, then flush once.
        while let Some(cmd) = batch.take() {
            let result = match cmd {
                WsCmd::Text(t) => sink.feed(Message::text(t)).await,
                WsCmd::Ping => sink.feed(Message::Ping(Vec::new().into())).await,
                WsCmd::Close => {
                    let _ = sink.close().await;
                    return;
                }
            };
            if result.is_err() {
                return;
            }
            batch = rx.try_recv().ok();
        }
        if sink.flush().await.is_err() {
            return;
        }
    }
    // The driver dropped the connection without a Close (it stopped): close politely.
    let _ = sink.close().await;
}
