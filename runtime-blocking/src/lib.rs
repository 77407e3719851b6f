//! # dingtalk-blocking
//!
//! A DingTalk (钉钉) bot for programs without an async runtime. The same protocol core as the
//! async adapters ([`dingtalk_core`]) decides every ack, ping, keepalive and reconnect; this crate
//! only moves bytes with tungstenite and ureq. One thread (the caller of [`Client::run`]) owns the
//! session and the sockets, and its socket read timeout follows the session's next timeout (the
//! str0m blocking loop); handlers run on a bounded worker pool, so a slow handler never stalls
//! pings.
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
//! let api = ApiClient::new(dingtalk_core::Credentials::new("id", "secret"), Default::default());
//! api.call(&CustomRobotSend {
//!     webhook: "https://oapi.dingtalk.com/robot/send?access_token=...".into(),
//!     secret: Some("SEC...".into()),
//!     timestamp_ms: 1_700_000_000_000,
//!     message: Message::text("deploy finished"),
//! })?;
//! # Ok::<(), dingtalk_blocking::ClientError>(())
//! ```

#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod api;
mod context;
mod tls;

use std::net::{TcpStream, ToSocketAddrs};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use dingtalk_core::model::{
    CardCallback, CardCallbackResponse, Event, GraphRequest, GraphResponse,
};
use dingtalk_core::topic::Handlers;
use dingtalk_core::{
    ConnId, Credentials, Delivery, DeliveryId, Endpoints, Frame, Input, Outcome, Output, RequestId,
    Session, SessionEvent, StreamConfig, Subscription, topic,
};
use serde_json::Value;
use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Message, WebSocket};

pub use api::{ApiClient, ClientError, agent, send};
pub use context::BotContext;
pub use dingtalk_core;
pub use dingtalk_core::EventAck;
pub use dingtalk_core::api::retry::RetryPolicy;
pub use tls::default_tls_config;

/// The error a handler may return; its text goes into the failure ack and the logs.
pub type HandlerError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why the client could not be built or could not keep running.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Missing or invalid configuration.
    #[error("configuration: {0}")]
    Config(String),
    /// TLS could not be set up.
    #[error("TLS setup: {0}")]
    Tls(String),
    /// A terminal protocol error, such as rejected credentials.
    #[error(transparent)]
    Stream(#[from] dingtalk_core::Error),
}

type Handler = Arc<dyn Fn(Frame, &ApiClient) -> Outcome + Send + Sync>;

/// Builds a [`Client`].
pub struct ClientBuilder {
    config: StreamConfig,
    tls: Option<Arc<rustls::ClientConfig>>,
    handlers: Handlers<Handler>,
    workers: usize,
    http_timeout: Duration,
    retry: RetryPolicy,
}

impl std::fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("config", &self.config)
            .field("workers", &self.workers)
            .finish_non_exhaustive()
    }
}

fn failed(e: impl std::fmt::Display) -> Outcome {
    Outcome::Failed(e.to_string())
}

impl ClientBuilder {
    /// A builder for these credentials, with DingTalk's real hosts and 16 handler threads.
    pub fn new(credentials: Credentials) -> Self {
        let mut config = StreamConfig::new(credentials);
        config.max_in_flight = 16;
        Self {
            config,
            tls: None,
            handlers: Handlers::default(),
            workers: 16,
            http_timeout: Duration::from_secs(10),
            retry: RetryPolicy::default(),
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

    /// Number of handler threads (default 16); also the session's handler concurrency.
    #[must_use]
    pub fn workers(mut self, n: usize) -> Self {
        self.workers = n.max(1);
        self.config.max_in_flight = self.workers;
        self
    }

    /// Adjusts the Stream session.
    #[must_use]
    pub fn configure(mut self, f: impl FnOnce(&mut StreamConfig)) -> Self {
        f(&mut self.config);
        self
    }

    /// Retry policy of API calls.
    #[must_use]
    pub fn retry_policy(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    fn subscribe(&mut self, subscription: Subscription, handler: Handler) {
        self.handlers
            .register(&mut self.config, subscription, handler);
    }

    /// Handles chatbot messages (acked on arrival).
    #[must_use]
    pub fn on_bot_message<F>(mut self, f: F) -> Self
    where
        F: Fn(BotContext) -> Result<(), HandlerError> + Send + Sync + 'static,
    {
        let h: Handler =
            Arc::new(move |frame: Frame, api: &ApiClient| match frame
                .data_json::<dingtalk_core::model::ChatbotMessage>(
            ) {
                Ok(m) => Outcome::from_result(
                    f(BotContext::new(m, frame, api.clone())).map(|()| Value::Null),
                ),
                Err(e) => failed(format!("invalid bot message: {e}")),
            });
        self.subscribe(Subscription::callback(topic::BOT_MESSAGE), h);
        self
    }

    /// Handles card actions; the returned response is sent inside the ack.
    #[must_use]
    pub fn on_card_callback<F>(mut self, f: F) -> Self
    where
        F: Fn(CardCallback, &ApiClient) -> Result<Option<CardCallbackResponse>, HandlerError>
            + Send
            + Sync
            + 'static,
    {
        let h: Handler = Arc::new(
            move |frame: Frame, api: &ApiClient| match frame.data_json() {
                Ok(cb) => Outcome::answer(f(cb, api)),
                Err(e) => failed(format!("invalid card callback: {e}")),
            },
        );
        self.subscribe(Subscription::callback(topic::CARD_CALLBACK), h);
        self
    }

    /// Handles graph API invocations; the response is sent inside the ack.
    #[must_use]
    pub fn on_graph_invoke<F>(mut self, f: F) -> Self
    where
        F: Fn(GraphRequest, &ApiClient) -> Result<GraphResponse, HandlerError>
            + Send
            + Sync
            + 'static,
    {
        let h: Handler = Arc::new(
            move |frame: Frame, api: &ApiClient| match frame.data_json() {
                Ok(req) => Outcome::answer(f(req, api)),
                Err(e) => failed(format!("invalid graph request: {e}")),
            },
        );
        self.subscribe(Subscription::callback(topic::GRAPH_INVOKE), h);
        self
    }

    /// Handles organisation events; an error or a timeout acks `LATER`.
    #[must_use]
    pub fn on_event<F>(mut self, f: F) -> Self
    where
        F: Fn(Event, &ApiClient) -> Result<EventAck, HandlerError> + Send + Sync + 'static,
    {
        let h: Handler =
            Arc::new(
                move |frame: Frame, api: &ApiClient| match Event::from_frame(&frame) {
                    Ok(ev) => Outcome::from(f(ev, api)),
                    Err(e) => failed(format!("invalid event: {e}")),
                },
            );
        self.subscribe(Subscription::events(), h);
        self
    }

    /// Handles any other CALLBACK topic with the raw frame.
    #[must_use]
    pub fn on_callback<F>(mut self, topic: &str, f: F) -> Self
    where
        F: Fn(Frame, &ApiClient) -> Result<Value, HandlerError> + Send + Sync + 'static,
    {
        let h: Handler =
            Arc::new(move |frame: Frame, api: &ApiClient| Outcome::from_result(f(frame, api)));
        self.subscribe(Subscription::callback(topic), h);
        self
    }

    /// Builds the client.
    pub fn build(self) -> Result<Client, Error> {
        self.config.credentials.validate().map_err(Error::Config)?;
        let tls = match self.tls {
            Some(t) => t,
            None => default_tls_config()?,
        };
        let agent = api::agent(self.http_timeout);
        let api = ApiClient::with_agent(
            agent.clone(),
            self.config.credentials.clone(),
            self.config.endpoints.clone(),
            self.retry,
        );
        let (tx, rx) = mpsc::channel();
        Ok(Client {
            inner: Arc::new(Inner {
                config: self.config,
                tls,
                agent,
                api,
                handlers: self.handlers,
                workers: self.workers,
                tx,
                rx: Mutex::new(rx),
                stopped: Arc::new(AtomicBool::new(false)),
            }),
        })
    }
}

enum Ev {
    Http(RequestId, Result<http::Response<Vec<u8>>, String>),
    Connected(ConnId, Result<Box<Ws>, String>),
    Complete(DeliveryId, Outcome),
    Stop,
}

type Ws = WebSocket<MaybeTlsStream<TcpStream>>;

struct Inner {
    config: StreamConfig,
    tls: Arc<rustls::ClientConfig>,
    agent: ureq::Agent,
    api: ApiClient,
    handlers: Handlers<Handler>,
    workers: usize,
    tx: mpsc::Sender<Ev>,
    rx: Mutex<mpsc::Receiver<Ev>>,
    stopped: Arc<AtomicBool>,
}

/// A DingTalk Stream client for plain threads.
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

/// Stops a running [`Client`] gracefully, from any thread or a signal handler's thread.
#[derive(Clone)]
pub struct StopHandle {
    tx: mpsc::Sender<Ev>,
    stopped: Arc<AtomicBool>,
}

impl std::fmt::Debug for StopHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StopHandle")
    }
}

impl StopHandle {
    /// Asks the client to stop: in-flight handlers finish, their acks are sent, connections
    /// close, and `run()` returns.
    pub fn stop(&self) {
        self.stopped.store(true, Ordering::SeqCst);
        let _ = self.tx.send(Ev::Stop);
    }
}

/// Reads `DINGTALK_CLIENT_ID`, `DINGTALK_CLIENT_SECRET` and optionally
/// `DINGTALK_OPENAPI_ENDPOINT` / `DINGTALK_OAPI_ENDPOINT`; `None` without credentials.
pub fn env_config() -> Option<(Credentials, Endpoints)> {
    dingtalk_core::config::from_env(|k| std::env::var(k).ok())
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

    /// Connects and serves on this thread until stopped (`Ok`) or a terminal error (`Err`).
    pub fn run(&self) -> Result<(), Error> {
        let rx = self
            .inner
            .rx
            .try_lock()
            .map_err(|_| Error::Config("this client is already running".into()))?;
        let mut config = self.inner.config.clone();
        config.rng_seed = u64::try_from(context::unix_ms()).unwrap_or(0) ^ 0x9e37_79b9_7f4a_7c15;
        let session = Session::new(config, Instant::now())?;
        let mut driver = Driver {
            inner: self.inner.clone(),
            session,
            conns: Vec::new(),
            paused: false,
            fatal: None,
            pool: Pool::new(self.inner.workers),
        };
        if self.inner.stopped.load(Ordering::SeqCst) {
            driver.input(Input::Stop);
        }
        driver.run(&rx);
        match driver.fatal.take() {
            Some(e) => Err(Error::Stream(e)),
            None => Ok(()),
        }
    }
}

// ---- worker pool --------------------------------------------------------------------------

type Job = Box<dyn FnOnce() + Send>;

struct Pool {
    tx: Option<mpsc::Sender<Job>>,
}

impl Pool {
    fn new(n: usize) -> Self {
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..n {
            let rx = rx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("dingtalk-handler-{i}"))
                .spawn(move || {
                    loop {
                        let job = rx
                            .lock()
                            .map_err(|_| ())
                            .and_then(|r| r.recv().map_err(|_| ()));
                        match job {
                            Ok(job) => job(),
                            Err(()) => return,
                        }
                    }
                });
            if let Err(e) = spawned {
                tracing::error!(%e, "could not start a handler thread");
            }
        }
        Self { tx: Some(tx) }
    }

    fn submit(&self, job: Job) -> bool {
        self.tx.as_ref().is_some_and(|tx| tx.send(job).is_ok())
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        // Closing the queue lets every worker finish its job and exit.
        self.tx.take();
    }
}

// ---- the driver ---------------------------------------------------------------------------

/// Longest single wait on a socket or the event queue; bounds how long a handler completion
/// waits for the driver while no frame arrives.
const POLL: Duration = Duration::from_millis(5);
/// Most frames read from one socket before the driver flushes the acks they produced.
const READ_BATCH: usize = 64;

struct Conn {
    id: ConnId,
    ws: Box<Ws>,
    dirty: bool,
}

struct Driver {
    inner: Arc<Inner>,
    session: Session,
    conns: Vec<Conn>,
    paused: bool,
    fatal: Option<dingtalk_core::Error>,
    pool: Pool,
}

fn tcp(ws: &Ws) -> Option<&TcpStream> {
    match ws.get_ref() {
        MaybeTlsStream::Plain(s) => Some(s),
        MaybeTlsStream::Rustls(s) => Some(s.get_ref()),
        _ => None,
    }
}

fn is_timeout(e: &tungstenite::Error) -> bool {
    matches!(e, tungstenite::Error::Io(io) if matches!(io.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut))
}

impl Driver {
    fn input(&mut self, input: Input<'_>) {
        self.session.handle_input(input, Instant::now());
    }

    fn run(&mut self, rx: &mpsc::Receiver<Ev>) {
        while let Some(deadline) = self.drain() {
            self.flush();
            // Everything already queued (completions, HTTP answers, new sockets, stop).
            let mut progressed = false;
            while let Ok(ev) = rx.try_recv() {
                self.handle(ev);
                progressed = true;
            }
            if progressed {
                continue;
            }
            let now = Instant::now();
            if now >= deadline {
                self.input(Input::Timeout);
                continue;
            }
            let wait = (deadline - now).min(POLL);
            if self.paused || self.conns.is_empty() {
                if let Ok(ev) = rx.recv_timeout(wait) {
                    self.handle(ev);
                }
            } else {
                self.read_sockets(wait);
            }
            if Instant::now() >= deadline {
                self.input(Input::Timeout);
            }
        }
        self.flush();
    }

    /// Reads each open socket: waits up to its share of `wait` for the first frame, then takes
    /// whatever else is already there without waiting.
    fn read_sockets(&mut self, wait: Duration) {
        let share =
            (wait / u32::try_from(self.conns.len()).unwrap_or(1)).max(Duration::from_millis(1));
        let mut i = 0;
        while i < self.conns.len() {
            let id = self.conns[i].id;
            let mut frames: Vec<String> = Vec::new();
            let mut closed: Option<String> = None;
            let mut alive = false;
            {
                let ws = &mut self.conns[i].ws;
                if let Some(s) = tcp(ws) {
                    let _ = s.set_read_timeout(Some(share));
                }
                for n in 0..READ_BATCH {
                    if n == 1 {
                        if let Some(s) = tcp(ws) {
                            let _ = s.set_nonblocking(true);
                        }
                    }
                    match ws.read() {
                        Ok(Message::Text(t)) => frames.push(t.as_str().to_owned()),
                        Ok(Message::Binary(b)) => {
                            frames.push(String::from_utf8_lossy(&b).into_owned())
                        }
                        Ok(Message::Close(_)) => {
                            closed = Some("closed by the server".into());
                            break;
                        }
                        Ok(_) => alive = true,
                        Err(e) if is_timeout(&e) => break,
                        Err(e) => {
                            closed = Some(e.to_string());
                            break;
                        }
                    }
                }
                if let Some(s) = tcp(ws) {
                    let _ = s.set_nonblocking(false);
                }
            }
            if alive {
                self.input(Input::Pong { conn: id });
            }
            for text in &frames {
                self.input(Input::Text { conn: id, text });
            }
            if let Some(reason) = closed {
                self.conns.retain(|c| c.id != id);
                self.input(Input::Closed { conn: id, reason });
                continue;
            }
            i += 1;
        }
    }

    fn handle(&mut self, ev: Ev) {
        match ev {
            Ev::Http(id, Ok(response)) => self.input(Input::HttpResponse { id, response }),
            Ev::Http(id, Err(reason)) => self.input(Input::HttpFailed { id, reason }),
            Ev::Connected(conn, Ok(ws)) => {
                self.conns.push(Conn {
                    id: conn,
                    ws,
                    dirty: false,
                });
                self.input(Input::Connected { conn });
            }
            Ev::Connected(conn, Err(reason)) => self.input(Input::ConnectFailed { conn, reason }),
            Ev::Complete(id, outcome) => self.input(Input::Complete { id, outcome }),
            Ev::Stop => self.input(Input::Stop),
        }
    }

    fn conn(&mut self, id: ConnId) -> Option<&mut Conn> {
        self.conns.iter_mut().find(|c| c.id == id)
    }

    fn flush(&mut self) {
        let mut failed = Vec::new();
        for c in self.conns.iter_mut().filter(|c| c.dirty) {
            c.dirty = false;
            if let Err(e) = c.ws.flush() {
                if !is_timeout(&e) {
                    failed.push((c.id, e.to_string()));
                }
            }
        }
        for (conn, reason) in failed {
            self.conns.retain(|c| c.id != conn);
            self.input(Input::Closed { conn, reason });
        }
    }

    /// Carries out every output; the next deadline, or `None` when the session is done.
    fn drain(&mut self) -> Option<Instant> {
        loop {
            match self.session.poll_output() {
                Output::Http { id, request } => {
                    let agent = self.inner.agent.clone();
                    let tx = self.inner.tx.clone();
                    std::thread::spawn(move || {
                        let result = api::send(&agent, request).map_err(|e| e.to_string());
                        let _ = tx.send(Ev::Http(id, result));
                    });
                }
                Output::Connect { conn, request } => {
                    let tls = self.inner.tls.clone();
                    let tx = self.inner.tx.clone();
                    let uri = request.uri().clone();
                    std::thread::spawn(move || {
                        let result = connect(&uri, tls).map(Box::new);
                        let _ = tx.send(Ev::Connected(conn, result));
                    });
                }
                Output::Send { conn, text } => {
                    if let Some(c) = self.conn(conn) {
                        if c.ws.write(Message::text(text)).is_ok() {
                            c.dirty = true;
                        }
                    }
                }
                Output::Ping { conn } => {
                    if let Some(c) = self.conn(conn) {
                        if c.ws.write(Message::Ping(Vec::new().into())).is_ok() {
                            c.dirty = true;
                        }
                    }
                }
                Output::Close { conn } => {
                    if let Some(pos) = self.conns.iter().position(|c| c.id == conn) {
                        let mut c = self.conns.remove(pos);
                        let _ = c.ws.flush();
                        let _ = c.ws.close(None);
                        let _ = c.ws.flush();
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

    fn deliver(&mut self, delivery: Delivery) {
        let id = delivery.id;
        let handler = self.inner.handlers.find(&delivery.frame).cloned();
        let tx = self.inner.tx.clone();
        let Some(handler) = handler else {
            let _ = tx.send(Ev::Complete(id, Outcome::Failed("no handler".into())));
            return;
        };
        let api = self.inner.api.clone();
        let frame = delivery.frame;
        let job: Job = Box::new(move || {
            let outcome = catch_unwind(AssertUnwindSafe(|| handler(frame, &api)))
                .unwrap_or_else(|_| Outcome::Failed("handler panicked".into()));
            let _ = tx.send(Ev::Complete(id, outcome));
        });
        if !self.pool.submit(job) {
            self.input(Input::Complete {
                id,
                outcome: Outcome::Failed("handler pool closed".into()),
            });
        }
    }
}

/// TCP (with TCP_NODELAY), TLS for `wss`, and the WebSocket handshake, with a 10 s timeout.
fn connect(uri: &http::Uri, tls: Arc<rustls::ClientConfig>) -> Result<Ws, String> {
    let host = uri.host().ok_or("endpoint has no host")?;
    let port = uri
        .port_u16()
        .unwrap_or(if uri.scheme_str() == Some("wss") {
            443
        } else {
            80
        });
    let timeout = Duration::from_secs(10);
    let mut last = String::from("no address");
    let addrs = (host, port).to_socket_addrs().map_err(|e| e.to_string())?;
    let mut stream = None;
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, timeout) {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) => last = e.to_string(),
        }
    }
    let stream = stream.ok_or(last)?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    stream
        .set_write_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    let (ws, _) = tungstenite::client_tls_with_config(
        uri.to_string(),
        stream,
        None,
        Some(tungstenite::Connector::Rustls(tls)),
    )
    .map_err(|e| e.to_string())?;
    Ok(ws)
}

fn log_event(event: &SessionEvent) {
    if event.is_warning() {
        tracing::warn!(%event, "DingTalk Stream");
    } else {
        tracing::debug!(%event, "DingTalk Stream");
    }
}
