//! # dingtalk-async-std
//!
//! A DingTalk (钉钉) bot on the async-io stack (`async-net`, `async-io` timers,
//! async-tungstenite with futures-rustls): the same [`Client::run`] future runs under async-std,
//! smol, or `futures_lite::future::block_on`, because it brings its own small executor for the
//! tasks it spawns and depends on no runtime's global spawner. No tokio anywhere in the tree.
//! HTTP calls run ureq on the `blocking` thread pool.
//!
//! ```no_run
//! use dingtalk_async_std::{Client, HandlerError};
//!
//! fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let client = Client::from_env()?
//!         .on_bot_message(|ctx| async move {
//!             if let Some(text) = ctx.text() {
//!                 ctx.reply_text(format!("echo: {text}")).await?;
//!             }
//!             Ok::<(), HandlerError>(())
//!         })
//!         .build()?;
//!     // async_std::task::block_on, smol::block_on or futures_lite::future::block_on:
//!     futures_lite::future::block_on(client.run())?;
//!     Ok(())
//! }
//! ```

#![forbid(unsafe_code)]
#![deny(missing_docs)]

use std::collections::HashMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use async_executor::Executor;
use dingtalk_core::api::ApiCall;
use dingtalk_core::api::card::{CardContent, CardResult, CreateAndDeliver};
use dingtalk_core::model::{
    CardCallback, CardCallbackResponse, CardParamMap, ChatbotMessage, Event, GraphRequest,
    GraphResponse,
};
use dingtalk_core::topic::Handlers;
use dingtalk_core::webhook::Message;
use dingtalk_core::{
    ConnId, Credentials, Delivery, DeliveryId, Endpoints, Frame, Input, Outcome, Output, RequestId,
    Session, SessionEvent, StreamConfig, Subscription, topic,
};
use event_listener::Event as Signal;
use futures_lite::FutureExt;
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;

pub use dingtalk_blocking::{ClientError, default_tls_config, env_config};
pub use dingtalk_core;
pub use dingtalk_core::EventAck;
pub use dingtalk_core::api::retry::RetryPolicy;

/// The error a handler may return; its text goes into the failure ack and the logs.
pub type HandlerError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why the client could not be built or could not keep running.
pub type Error = dingtalk_blocking::Error;

type WsMessage = async_tungstenite::tungstenite::Message;

// ---- API client ---------------------------------------------------------------------------

/// Calls the DingTalk OpenAPI without blocking the executor: each call runs on the `blocking`
/// thread pool (token cache, refresh-and-retry and rate-limit retries as in the core).
#[derive(Clone, Debug)]
pub struct ApiClient {
    inner: dingtalk_blocking::ApiClient,
}

impl ApiClient {
    /// An API client for these credentials and hosts.
    pub fn new(credentials: Credentials, endpoints: Endpoints) -> Self {
        Self {
            inner: dingtalk_blocking::ApiClient::new(credentials, endpoints),
        }
    }

    /// The robot code of the app's bot (its client id).
    pub fn robot_code(&self) -> &str {
        self.inner.robot_code()
    }

    /// Runs `call`.
    pub async fn call<C>(&self, call: C) -> Result<C::Output, ClientError>
    where
        C: ApiCall + Send + 'static,
        C::Output: Send + 'static,
    {
        let inner = self.inner.clone();
        blocking::unblock(move || inner.call(&call)).await
    }

    /// Downloads the bytes behind a URL.
    pub async fn get_bytes(&self, url: &str) -> Result<Vec<u8>, ClientError> {
        let inner = self.inner.clone();
        let url = url.to_owned();
        blocking::unblock(move || inner.get_bytes(&url)).await
    }
}

fn unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// A chatbot message and everything needed to answer it.
#[derive(Debug, Clone)]
pub struct BotContext {
    /// The message.
    pub message: ChatbotMessage,
    /// The frame it came in.
    pub frame: Frame,
    api: ApiClient,
}

impl BotContext {
    /// The API client.
    pub fn api(&self) -> &ApiClient {
        &self.api
    }

    /// The message text, trimmed.
    pub fn text(&self) -> Option<&str> {
        self.message.text()
    }

    /// Replies through the session webhook (refused once it expired).
    pub async fn reply(&self, message: Message) -> Result<(), ClientError> {
        self.api
            .call(self.message.reply_call(message, unix_ms())?)
            .await
    }

    /// Replies with text; in a group the sender is @-mentioned.
    pub async fn reply_text(&self, text: impl Into<String>) -> Result<(), ClientError> {
        self.reply(self.message.text_reply(text)).await
    }

    /// Replies with markdown.
    pub async fn reply_markdown(
        &self,
        title: impl Into<String>,
        text: impl Into<String>,
    ) -> Result<(), ClientError> {
        self.reply(Message::markdown(title, text)).await
    }

    /// Creates and delivers an interactive card to this conversation.
    pub async fn reply_card(
        &self,
        template_id: impl Into<String>,
        out_track_id: impl Into<String>,
        data: CardParamMap,
    ) -> Result<CardResult, ClientError> {
        let call = CreateAndDeliver {
            card: CardContent::new(template_id, out_track_id, data),
            space: self.message.card_space(self.api.robot_code()),
        };
        self.api.call(call).await
    }

    /// Downloads a file, picture, audio or video of this message by its `downloadCode`.
    pub async fn download(&self, download_code: &str) -> Result<Vec<u8>, ClientError> {
        let call = self
            .message
            .download_call(download_code, self.api.robot_code());
        let url = self.api.call(call).await?;
        self.api.get_bytes(&url).await
    }
}

// ---- handlers -----------------------------------------------------------------------------

type BoxFuture = Pin<Box<dyn Future<Output = Outcome> + Send + 'static>>;
type Handler = Arc<dyn Fn(Frame, ApiClient) -> BoxFuture + Send + Sync>;

fn failed(e: impl std::fmt::Display) -> Outcome {
    Outcome::Failed(e.to_string())
}

/// Builds a [`Client`].
pub struct ClientBuilder {
    config: StreamConfig,
    tls: Option<Arc<rustls::ClientConfig>>,
    handlers: Handlers<Handler>,
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
            handlers: Handlers::default(),
        }
    }

    /// Uses these hosts. A plain `http://` loopback gateway (the emulator) also allows `ws://`.
    #[must_use]
    pub fn endpoints(mut self, endpoints: Endpoints) -> Self {
        self.config.set_endpoints(endpoints);
        self
    }

    /// Uses your own rustls configuration for the WebSocket.
    #[must_use]
    pub fn tls_config(mut self, config: Arc<rustls::ClientConfig>) -> Self {
        self.tls = Some(config);
        self
    }

    /// Adjusts the Stream session.
    #[must_use]
    pub fn configure(mut self, f: impl FnOnce(&mut StreamConfig)) -> Self {
        f(&mut self.config);
        self
    }

    fn subscribe(&mut self, subscription: Subscription, handler: Handler) {
        self.handlers
            .register(&mut self.config, subscription, handler);
    }

    /// Handles chatbot messages (acked on arrival).
    #[must_use]
    pub fn on_bot_message<F, Fut>(mut self, f: F) -> Self
    where
        F: Fn(BotContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), HandlerError>> + Send + 'static,
    {
        let f = Arc::new(f);
        let h: Handler = Arc::new(move |frame: Frame, api: ApiClient| {
            let f = f.clone();
            Box::pin(async move {
                match frame.data_json::<ChatbotMessage>() {
                    Ok(message) => {
                        let ctx = BotContext {
                            message,
                            frame,
                            api,
                        };
                        Outcome::from_result(f(ctx).await.map(|()| Value::Null))
                    }
                    Err(e) => failed(format!("invalid bot message: {e}")),
                }
            }) as BoxFuture
        });
        self.subscribe(Subscription::callback(topic::BOT_MESSAGE), h);
        self
    }

    /// Handles card actions; the response is sent inside the ack.
    #[must_use]
    pub fn on_card_callback<F, Fut>(mut self, f: F) -> Self
    where
        F: Fn(CardCallback, ApiClient) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Option<CardCallbackResponse>, HandlerError>> + Send + 'static,
    {
        let f = Arc::new(f);
        let h: Handler = Arc::new(move |frame: Frame, api: ApiClient| {
            let f = f.clone();
            Box::pin(async move {
                match frame.data_json::<CardCallback>() {
                    Ok(cb) => Outcome::answer(f(cb, api).await),
                    Err(e) => failed(format!("invalid card callback: {e}")),
                }
            }) as BoxFuture
        });
        self.subscribe(Subscription::callback(topic::CARD_CALLBACK), h);
        self
    }

    /// Handles graph API invocations; the response is sent inside the ack.
    #[must_use]
    pub fn on_graph_invoke<F, Fut>(mut self, f: F) -> Self
    where
        F: Fn(GraphRequest, ApiClient) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<GraphResponse, HandlerError>> + Send + 'static,
    {
        let f = Arc::new(f);
        let h: Handler = Arc::new(move |frame: Frame, api: ApiClient| {
            let f = f.clone();
            Box::pin(async move {
                match frame.data_json::<GraphRequest>() {
                    Ok(req) => Outcome::answer(f(req, api).await),
                    Err(e) => failed(format!("invalid graph request: {e}")),
                }
            }) as BoxFuture
        });
        self.subscribe(Subscription::callback(topic::GRAPH_INVOKE), h);
        self
    }

    /// Handles organisation events; an error or a timeout acks `LATER`.
    #[must_use]
    pub fn on_event<F, Fut>(mut self, f: F) -> Self
    where
        F: Fn(Event, ApiClient) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<EventAck, HandlerError>> + Send + 'static,
    {
        let f = Arc::new(f);
        let h: Handler = Arc::new(move |frame: Frame, api: ApiClient| {
            let f = f.clone();
            Box::pin(async move {
                match Event::from_frame(&frame) {
                    Ok(ev) => Outcome::from(f(ev, api).await),
                    Err(e) => failed(format!("invalid event: {e}")),
                }
            }) as BoxFuture
        });
        self.subscribe(Subscription::events(), h);
        self
    }

    /// Builds the client.
    pub fn build(self) -> Result<Client, Error> {
        self.config.credentials.validate().map_err(Error::Config)?;
        let tls = match self.tls {
            Some(t) => t,
            None => default_tls_config()?,
        };
        let api = ApiClient::new(
            self.config.credentials.clone(),
            self.config.endpoints.clone(),
        );
        let (tx, rx) = async_channel::unbounded();
        Ok(Client {
            inner: Arc::new(Inner {
                config: self.config,
                tls,
                api,
                handlers: self.handlers,
                tx,
                rx,
                stopped: Arc::new(AtomicBool::new(false)),
            }),
        })
    }
}

// ---- client -------------------------------------------------------------------------------

enum Ev {
    Http(RequestId, Result<http::Response<Vec<u8>>, String>),
    Connected(
        ConnId,
        Result<(async_channel::Sender<WsCmd>, async_executor::Task<()>), String>,
    ),
    Text(ConnId, String),
    Pong(ConnId),
    Closed(ConnId, String),
    Complete(DeliveryId, Outcome),
    Stop,
}

enum WsCmd {
    Text(String),
    Ping,
    Close,
}

struct Inner {
    config: StreamConfig,
    tls: Arc<rustls::ClientConfig>,
    api: ApiClient,
    handlers: Handlers<Handler>,
    tx: async_channel::Sender<Ev>,
    rx: async_channel::Receiver<Ev>,
    stopped: Arc<AtomicBool>,
}

/// A DingTalk Stream client for async-std, smol or any executor.
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

/// Stops a running [`Client`] gracefully; cloneable, usable from any thread.
#[derive(Clone)]
pub struct StopHandle {
    tx: async_channel::Sender<Ev>,
    stopped: Arc<AtomicBool>,
}

impl std::fmt::Debug for StopHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StopHandle")
    }
}

impl StopHandle {
    /// Asks the client to stop: in-flight handlers finish, acks are sent, connections close,
    /// and `run()` returns.
    pub fn stop(&self) {
        self.stopped.store(true, Ordering::SeqCst);
        let _ = self.tx.try_send(Ev::Stop);
    }
}

impl Client {
    /// A builder for these credentials.
    pub fn builder(credentials: Credentials) -> ClientBuilder {
        ClientBuilder::new(credentials)
    }

    /// A builder from the environment; see [`env_config`].
    pub fn from_env() -> Result<ClientBuilder, Error> {
        let (credentials, endpoints) = env_config().ok_or_else(|| {
            Error::Config("DINGTALK_CLIENT_ID and DINGTALK_CLIENT_SECRET must be set".into())
        })?;
        Ok(ClientBuilder::new(credentials).endpoints(endpoints))
    }

    /// The OpenAPI client.
    pub fn api(&self) -> &ApiClient {
        &self.inner.api
    }

    /// A handle that stops [`Client::run`] gracefully.
    pub fn stop_handle(&self) -> StopHandle {
        StopHandle {
            tx: self.inner.tx.clone(),
            stopped: self.inner.stopped.clone(),
        }
    }

    /// Connects and serves until stopped (`Ok`) or a terminal error (`Err`). Runs under any
    /// executor: the tasks it needs run on an executor inside this future.
    pub async fn run(&self) -> Result<(), Error> {
        let mut config = self.inner.config.clone();
        config.rng_seed = u64::try_from(unix_ms()).unwrap_or(0) ^ 0x9e37_79b9_7f4a_7c15;
        let session = Session::new(config, Instant::now())?;
        let ex = Arc::new(Executor::new());
        let mut driver = Driver {
            inner: self.inner.clone(),
            ex: ex.clone(),
            session,
            conns: HashMap::new(),
            paused: Arc::new((AtomicBool::new(false), Signal::new())),
            fatal: None,
            writers: Vec::new(),
        };
        if self.inner.stopped.load(Ordering::SeqCst) {
            driver.input(Input::Stop);
        }
        ex.run(driver.run()).await;
        match driver.fatal.take() {
            Some(e) => Err(Error::Stream(e)),
            None => Ok(()),
        }
    }
}

// ---- the driver ---------------------------------------------------------------------------

struct Driver {
    inner: Arc<Inner>,
    ex: Arc<Executor<'static>>,
    session: Session,
    conns: HashMap<ConnId, async_channel::Sender<WsCmd>>,
    paused: Arc<(AtomicBool, Signal)>,
    fatal: Option<dingtalk_core::Error>,
    writers: Vec<async_executor::Task<()>>,
}

enum Wake {
    Ev(Option<Ev>),
    Timeout,
}

impl Driver {
    fn input(&mut self, input: Input<'_>) {
        self.session.handle_input(input, Instant::now());
    }

    async fn run(&mut self) {
        let rx = self.inner.rx.clone();
        while let Some(deadline) = self.drain() {
            let wake = async { Wake::Ev(rx.recv().await.ok()) }
                .or(async {
                    async_io::Timer::at(deadline).await;
                    Wake::Timeout
                })
                .await;
            match wake {
                Wake::Ev(Some(ev)) => {
                    self.handle(ev);
                    while let Ok(ev) = rx.try_recv() {
                        self.handle(ev);
                    }
                }
                Wake::Ev(None) | Wake::Timeout => self.input(Input::Timeout),
            }
        }
        // Every connection got its Close; let the writers send the last acks (bounded).
        self.conns.clear();
        let writers = std::mem::take(&mut self.writers);
        let flushed = async {
            for w in writers {
                w.await;
            }
        };
        flushed
            .or(async {
                async_io::Timer::after(std::time::Duration::from_secs(5)).await;
            })
            .await;
    }

    fn handle(&mut self, ev: Ev) {
        match ev {
            Ev::Http(id, Ok(response)) => self.input(Input::HttpResponse { id, response }),
            Ev::Http(id, Err(reason)) => self.input(Input::HttpFailed { id, reason }),
            Ev::Connected(conn, Ok((cmd, writer))) => {
                self.conns.insert(conn, cmd);
                self.writers.push(writer);
                self.input(Input::Connected { conn });
            }
            Ev::Connected(conn, Err(reason)) => self.input(Input::ConnectFailed { conn, reason }),
            Ev::Text(conn, text) => self.input(Input::Text { conn, text: &text }),
            Ev::Pong(conn) => self.input(Input::Pong { conn }),
            Ev::Closed(conn, reason) => {
                self.conns.remove(&conn);
                self.input(Input::Closed { conn, reason });
            }
            Ev::Complete(id, outcome) => self.input(Input::Complete { id, outcome }),
            Ev::Stop => self.input(Input::Stop),
        }
    }

    fn set_paused(&self, paused: bool) {
        self.paused.0.store(paused, Ordering::SeqCst);
        self.paused.1.notify(usize::MAX);
    }

    fn command(&self, conn: ConnId, cmd: WsCmd) {
        if let Some(tx) = self.conns.get(&conn) {
            let _ = tx.try_send(cmd);
        }
    }

    fn drain(&mut self) -> Option<Instant> {
        loop {
            match self.session.poll_output() {
                Output::Http { id, request } => {
                    let tx = self.inner.tx.clone();
                    self.ex
                        .spawn(async move {
                            let agent =
                                dingtalk_blocking::agent(std::time::Duration::from_secs(10));
                            let result = blocking::unblock(move || {
                                dingtalk_blocking::send(&agent, request).map_err(|e| e.to_string())
                            })
                            .await;
                            let _ = tx.send(Ev::Http(id, result)).await;
                        })
                        .detach();
                }
                Output::Connect { conn, request } => {
                    let uri = request.uri().clone();
                    let tls = self.inner.tls.clone();
                    let tx = self.inner.tx.clone();
                    let paused = self.paused.clone();
                    let ex = self.ex.clone();
                    self.ex
                        .spawn(async move {
                            match connect(&uri, tls).await {
                                Ok(ws) => {
                                    let (sink, stream) = StreamExt::split(ws);
                                    let (cmd_tx, cmd_rx) = async_channel::unbounded();
                                    let writer = ex.spawn(writer(sink, cmd_rx));
                                    // Announce the connection before its first frame is read.
                                    let _ =
                                        tx.send(Ev::Connected(conn, Ok((cmd_tx, writer)))).await;
                                    ex.spawn(reader(conn, stream, tx, paused)).detach();
                                }
                                Err(e) => {
                                    let _ = tx.send(Ev::Connected(conn, Err(e))).await;
                                }
                            }
                        })
                        .detach();
                }
                Output::Send { conn, text } => self.command(conn, WsCmd::Text(text)),
                Output::Ping { conn } => self.command(conn, WsCmd::Ping),
                Output::Close { conn } => {
                    self.command(conn, WsCmd::Close);
                    self.conns.remove(&conn);
                }
                Output::PauseReading => self.set_paused(true),
                Output::ResumeReading => self.set_paused(false),
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

    fn deliver(&mut self, delivery: Delivery) {
        let id = delivery.id;
        let handler = self.inner.handlers.find(&delivery.frame).cloned();
        let tx = self.inner.tx.clone();
        let api = self.inner.api.clone();
        self.ex
            .spawn(async move {
                let outcome = match handler {
                    Some(h) => AssertUnwindSafe(h(delivery.frame, api))
                        .catch_unwind()
                        .await
                        .unwrap_or_else(|_| Outcome::Failed("handler panicked".into())),
                    None => Outcome::Failed("no handler".into()),
                };
                let _ = tx.send(Ev::Complete(id, outcome)).await;
            })
            .detach();
    }
}

type Ws =
    async_tungstenite::WebSocketStream<async_tungstenite::smol::ClientStream<async_net::TcpStream>>;

/// TCP (with TCP_NODELAY), TLS for `wss`, and the WebSocket handshake.
async fn connect(uri: &http::Uri, tls: Arc<rustls::ClientConfig>) -> Result<Ws, String> {
    let host = uri.host().ok_or("endpoint has no host")?.to_owned();
    let port = uri
        .port_u16()
        .unwrap_or(if uri.scheme_str() == Some("wss") {
            443
        } else {
            80
        });
    let connecting = async {
        let tcp = async_net::TcpStream::connect((host.as_str(), port))
            .await
            .map_err(|e| e.to_string())?;
        tcp.set_nodelay(true).map_err(|e| e.to_string())?;
        let connector = futures_rustls::TlsConnector::from(tls);
        async_tungstenite::smol::client_async_tls_with_connector_and_config(
            uri.to_string(),
            tcp,
            Some(connector),
            None,
        )
        .await
        .map(|(ws, _)| ws)
        .map_err(|e| e.to_string())
    };
    connecting
        .or(async {
            async_io::Timer::after(std::time::Duration::from_secs(10)).await;
            Err("WebSocket handshake timed out".to_owned())
        })
        .await
}

async fn writer(
    mut sink: futures_util::stream::SplitSink<Ws, WsMessage>,
    rx: async_channel::Receiver<WsCmd>,
) {
    while let Ok(cmd) = rx.recv().await {
        let mut next = Some(cmd);
        // Feed everything already queued, then flush once.
        while let Some(cmd) = next.take() {
            let result = match cmd {
                WsCmd::Text(t) => sink.feed(WsMessage::text(t)).await,
                WsCmd::Ping => sink.feed(WsMessage::Ping(Vec::new().into())).await,
                WsCmd::Close => {
                    let _ = sink.close().await;
                    return;
                }
            };
            if result.is_err() {
                return;
            }
            next = rx.try_recv().ok();
        }
        if sink.flush().await.is_err() {
            return;
        }
    }
    let _ = sink.close().await;
}

async fn reader(
    conn: ConnId,
    mut stream: futures_util::stream::SplitStream<Ws>,
    tx: async_channel::Sender<Ev>,
    paused: Arc<(AtomicBool, Signal)>,
) {
    loop {
        while paused.0.load(Ordering::SeqCst) {
            let listener = paused.1.listen();
            if paused.0.load(Ordering::SeqCst) {
                listener.await;
            }
        }
        let ev = match stream.next().await {
            Some(Ok(WsMessage::Text(t))) => Ev::Text(conn, t.as_str().to_owned()),
            Some(Ok(WsMessage::Binary(b))) => {
                Ev::Text(conn, String::from_utf8_lossy(&b).into_owned())
            }
            Some(Ok(WsMessage::Close(_))) => {
                let _ = tx
                    .send(Ev::Closed(conn, "closed by the server".into()))
                    .await;
                return;
            }
            Some(Ok(_)) => Ev::Pong(conn),
            Some(Err(e)) => {
                let _ = tx.send(Ev::Closed(conn, e.to_string())).await;
                return;
            }
            None => {
                let _ = tx.send(Ev::Closed(conn, "end of stream".into())).await;
                return;
            }
        };
        if tx.send(ev).await.is_err() {
            return;
        }
    }
}

fn log_event(event: &SessionEvent) {
    if event.is_warning() {
        tracing::warn!(%event, "DingTalk Stream");
    } else {
        tracing::debug!(%event, "DingTalk Stream");
    }
}
