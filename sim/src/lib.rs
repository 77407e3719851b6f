//! # dingtalk-sim — a local DingTalk emulator
//!
//! Speaks DingTalk's side of everything the SDK uses, over loopback (`http://` and `ws://` on
//! 127.0.0.1): the Stream gateway (`/v1.0/gateway/connections/open`, one-use tickets, the
//! WebSocket), the token endpoints, session and custom-robot webhooks, and the OpenAPI calls the
//! core builds. It pushes realistic frames, checks every ack it gets back, records everything the
//! bot sent, and injects faults: `disconnect` (closing 10 s later, as the real server does),
//! abrupt closes, malformed and unknown-topic frames, duplicate deliveries, frozen connections
//! (no pong), 401/5xx on open, token expiry and rate limits.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use dingtalk_sim::{Chat, Sim, SimConfig};
//! let sim = Sim::start(SimConfig::default()).await?;
//! println!("gateway at {}", sim.base_url());
//! // ... start a bot with sim.credentials() and DINGTALK_OPENAPI_ENDPOINT = sim.base_url() ...
//! sim.wait_connections(1, std::time::Duration::from_secs(5)).await.expect("bot connected");
//! let id = sim.bot_text("hello", Chat::Private);
//! let ack = sim.wait_ack(&id, std::time::Duration::from_secs(5)).await.expect("acked");
//! assert_eq!(ack.code, 200);
//! # Ok(()) }
//! ```
//!
//! Waiting is done on change notifications with a deadline, never by sleeping.
//!
//! | job | module |
//! |---|---|
//! | configuration, records, the shared state, [`Sim`], [`Control`] (push frames, faults, wait) | `lib.rs` |
//! | gateway open endpoint and the WebSocket (tickets, frames out, acks checked) | `stream` |
//! | the HTTP side: one entry, one handler per endpoint family (tokens, webhooks, cards, robot, oapi) | `openapi` |
//! | card and AI-card state with DingTalk's errors | `cards` |
//! | users, departments, scene groups | `directory` |
//! | payloads DingTalk sends (messages, clicks, events, HTTP callbacks) | `payloads` |
//! | the web console and its routes | `console` (page in `console.html`) |
//! | the control API for scripts | `control` |
//! | the demo conversation and the load generator | `load` |
#![cfg_attr(docsrs, feature(doc_cfg))]

mod cards;
mod console;
mod control;
mod directory;
mod load;
mod openapi;
mod payloads;
mod stream;

use openapi::{api_error, oapi_error, ok_json};

pub use cards::{CardChange, MAX_STREAM_CONTENT, SimCard};
pub use console::ChatLine;
pub use directory::{SceneGroup, SimUser};

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, Query, State as AxState};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures_util::{SinkExt, StreamExt};
use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot, watch};

/// How the emulator behaves.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// The only accepted client id.
    pub client_id: String,
    /// The only accepted client secret.
    pub client_secret: String,
    /// The custom robot's signing secret (`SEC…`); `None` accepts unsigned robot calls.
    pub robot_secret: Option<String>,
    /// Lifetime of issued access tokens (`expireIn`).
    pub token_ttl: Duration,
    /// How long after a `disconnect` frame the server closes the connection (10 s for real).
    pub disconnect_grace: Duration,
    /// Lifetime of a ticket (90 s for real).
    pub ticket_ttl: Duration,
    /// Benchmark mode: acks and pushed frames are checked but not kept in the snapshot, so
    /// long runs use constant memory.
    pub bench_mode: bool,
    /// As DingTalk does: an EVENT or CALLBACK frame not acked this long after it was pushed is
    /// pushed again, on another live connection when there is one (`None`: never).
    pub redeliver_after: Option<Duration>,
    /// Most redeliveries of one frame.
    pub max_redeliveries: u32,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            client_id: "sim-client-id".to_owned(),
            client_secret: "sim-client-secret".to_owned(),
            robot_secret: None,
            token_ttl: Duration::from_secs(7200),
            disconnect_grace: Duration::from_secs(10),
            ticket_ttl: Duration::from_secs(90),
            bench_mode: false,
            redeliver_after: None,
            max_redeliveries: 3,
        }
    }
}

/// A frame the emulator pushed again because it was not acked in time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redelivery {
    /// `headers.messageId`.
    pub message_id: String,
    /// The connection the previous copy went to.
    pub from: u64,
    /// The connection this copy went to.
    pub to: u64,
}

/// Where a simulated chat message comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chat {
    /// A one-to-one chat with the bot.
    Private,
    /// A group chat in which the bot was @-mentioned.
    Group,
}

/// An ack the bot sent, as the emulator saw it on the wire.
#[derive(Debug, Clone, PartialEq)]
pub struct AckRecord {
    /// The connection it arrived on.
    pub conn: u64,
    /// `headers.messageId`.
    pub message_id: String,
    /// `code`.
    pub code: i64,
    /// `message`.
    pub message: String,
    /// `data` parsed as JSON (`Null` when empty or not JSON).
    pub data: Value,
    /// The raw text.
    pub raw: String,
}

/// A frame the emulator pushed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentFrame {
    /// The connection it was pushed on.
    pub conn: u64,
    /// `headers.messageId`.
    pub message_id: String,
    /// `type`.
    pub kind: String,
    /// `headers.topic`.
    pub topic: String,
}

/// An HTTP request the bot made (webhook or OpenAPI).
#[derive(Debug, Clone, PartialEq)]
pub struct Recorded {
    /// Method.
    pub method: String,
    /// Path.
    pub path: String,
    /// Query parameters.
    pub query: BTreeMap<String, String>,
    /// `x-acs-dingtalk-access-token`, if sent.
    pub token: Option<String>,
    /// Body as JSON (`Null` when not JSON).
    pub body: Value,
    /// The status the emulator answered.
    pub status: u16,
    /// The address the request came from (a proxy's, when it went through one).
    pub peer: IpAddr,
    /// When it arrived (Unix milliseconds).
    pub at_unix_ms: i64,
    /// How long the emulator took to answer (microseconds).
    pub latency_us: u64,
}

/// An open-connection request the gateway received.
#[derive(Debug, Clone, PartialEq)]
pub struct OpenRecord {
    /// `clientId`.
    pub client_id: String,
    /// `subscriptions`.
    pub subscriptions: Value,
    /// `ua`.
    pub ua: String,
    /// The status answered.
    pub status: u16,
    /// When it arrived.
    pub at: Instant,
    /// The address the request came from (a proxy's, when it went through one).
    pub peer: IpAddr,
}

/// A WebSocket connection as the emulator sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnInfo {
    /// Id (1, 2, ...).
    pub id: u64,
    /// The ticket it was opened with.
    pub ticket: String,
    /// Still open.
    pub open: bool,
    /// Sent a `disconnect`; no new frames are pushed on it.
    pub draining: bool,
    /// WebSocket pings received from the client.
    pub pings: u64,
    /// The address the connection came from (a proxy's, when it went through one).
    pub peer: IpAddr,
}

/// What a test waits on: a copy of everything recorded so far.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Every ack received.
    pub acks: Vec<AckRecord>,
    /// Every frame pushed.
    pub sent: Vec<SentFrame>,
    /// Every connection.
    pub conns: Vec<ConnInfo>,
    /// Every open-connection request.
    pub opens: Vec<OpenRecord>,
    /// Session-webhook and custom-robot calls.
    pub webhooks: Vec<Recorded>,
    /// OpenAPI calls (api and oapi hosts).
    pub api_calls: Vec<Recorded>,
    /// Token requests served.
    pub tokens_issued: u64,
    /// Protocol violations the emulator detected in what the bot sent.
    pub violations: Vec<String>,
    /// Frames pushed again because they were not acked in time ([`SimConfig::redeliver_after`]).
    pub redeliveries: Vec<Redelivery>,
    /// The cards the bot created, by `outTrackId`, as they are now.
    pub cards: BTreeMap<String, SimCard>,
}

impl Snapshot {
    /// The acks for one message id, in arrival order.
    pub fn acks_for(&self, message_id: &str) -> Vec<&AckRecord> {
        self.acks
            .iter()
            .filter(|a| a.message_id == message_id)
            .collect()
    }

    /// Connections currently open.
    pub fn open_conns(&self) -> usize {
        self.conns.iter().filter(|c| c.open).count()
    }
}

/// The emulator did not see the awaited condition in time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaitTimeout(pub String);

impl std::fmt::Display for WaitTimeout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "timed out waiting for {}", self.0)
    }
}

impl std::error::Error for WaitTimeout {}

enum Cmd {
    Text(String),
    Close,
    Abort,
    Freeze,
}

struct ConnSlot {
    info: ConnInfo,
    tx: mpsc::UnboundedSender<Cmd>,
    /// Frozen by [`Control::freeze`]: frames are no longer spread onto it.
    frozen: bool,
}

#[derive(Default)]
struct Faults {
    open_failures: VecDeque<u16>,
    rate_limit_calls: u32,
    token_failures: u32,
    /// The next this many token requests are answered after `token_delay`.
    token_delays: u32,
    token_delay: Duration,
}

/// One ack as the emulator received it, for a consumer that keeps its own books (a soak run:
/// [`Control::ack_sink`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AckEvent {
    /// The connection it came on.
    pub conn: u64,
    /// `headers.messageId`.
    pub message_id: String,
    /// `code`.
    pub code: i64,
    /// `data.status` of an EVENT ack (`SUCCESS`, `LATER`), if any.
    pub status: Option<String>,
    /// Whether the ack was for a frame pushed on that connection.
    pub on_its_connection: bool,
}

/// The result of [`Control::run_load`].
#[derive(Debug, Clone)]
pub struct LoadReport {
    /// Frames pushed and acked.
    pub frames: usize,
    /// From the first push to the last ack.
    pub elapsed: Duration,
    /// Push-to-ack latency of every frame, sorted.
    pub latencies: Vec<Duration>,
}

impl LoadReport {
    /// Acked frames per second.
    pub fn frames_per_sec(&self) -> f64 {
        self.frames as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// The latency at quantile `q` (0.5 = median).
    pub fn latency(&self, q: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        let i = ((self.latencies.len() - 1) as f64 * q).round() as usize;
        self.latencies[i.min(self.latencies.len() - 1)]
    }
}

struct Load {
    pending: HashMap<String, Instant>,
    latencies: Vec<Duration>,
    permits: Arc<tokio::sync::Semaphore>,
    done: Arc<tokio::sync::Notify>,
    remaining: usize,
}

#[derive(Default)]
struct State {
    load: Option<Load>,
    snap: Snapshot,
    slots: BTreeMap<u64, ConnSlot>,
    tickets: HashMap<String, Instant>,
    used_tickets: HashSet<String>,
    tokens: HashMap<String, Instant>,
    sessions: HashMap<String, i64>,
    /// Frames pushed per connection and message id: kind, topic, and how many copies (a
    /// frame delivered again on the same connection is acked once per copy).
    sent_kinds: HashMap<(u64, String), (String, String, u32)>,
    faults: Faults,
    ack_sink: Option<mpsc::UnboundedSender<AckEvent>>,
    counter: u64,
    /// The last connection id handed out (ids are never reused).
    last_conn: u64,
    /// Frames pushed connection by connection in turn: the last one used.
    last_pushed: u64,
    /// Data frames not acked yet, by message id: text, connection, when pushed, copies pushed
    /// again (only with [`SimConfig::redeliver_after`]).
    unacked: HashMap<String, (String, u64, Instant, u32)>,
    /// The text of every data frame pushed, by message id (not kept in bench mode).
    texts: HashMap<String, String>,
    cards: cards::Cards,
    /// The conversations as the console shows them (not kept in bench mode).
    chat: console::ChatLog,
    /// Users, departments, scene groups.
    directory: directory::Directory,
}

impl State {
    /// Copies a live connection's info into the snapshot.
    fn sync_conn(&mut self, id: u64) {
        if let Some(slot) = self.slots.get(&id) {
            let info = slot.info.clone();
            match self.snap.conns.iter_mut().find(|c| c.id == id) {
                Some(c) => *c = info,
                None => self.snap.conns.push(info),
            }
        }
    }
}

struct Shared {
    config: SimConfig,
    base_url: String,
    state: Mutex<State>,
    version: watch::Sender<u64>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock only happens in a broken test; keep serving.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn changed(&self) {
        self.version.send_modify(|v| *v += 1);
    }

    fn next(&self, st: &mut State) -> u64 {
        st.counter += 1;
        st.counter
    }
}

/// A running emulator. Dropping it stops the server. It dereferences to its [`Control`].
pub struct Sim {
    control: Control,
    addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
}

/// Drives and observes a running emulator: push frames, inject faults, read what was recorded,
/// wait for conditions. Cheap to clone (e.g. into a task).
#[derive(Clone)]
pub struct Control {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Control {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Control")
            .field("base_url", &self.shared.base_url)
            .finish()
    }
}

impl std::ops::Deref for Sim {
    type Target = Control;
    fn deref(&self) -> &Control {
        &self.control
    }
}

impl std::fmt::Debug for Sim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sim").field("addr", &self.addr).finish()
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let st = self.control.shared.lock();
        for slot in st.slots.values() {
            let _ = slot.tx.send(Cmd::Abort);
        }
    }
}

/// The client the emulator POSTs callbacks with (plain HTTP to loopback; rustls with ring is
/// configured only because reqwest needs a provider).
fn http_client() -> Result<reqwest::Client, String> {
    static CLIENT: std::sync::OnceLock<Result<reqwest::Client, String>> =
        std::sync::OnceLock::new();
    CLIENT
        .get_or_init(|| {
            let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth();
            reqwest::Client::builder()
                .use_preconfigured_tls(tls)
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .map_err(|e| e.to_string())
        })
        .clone()
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

impl Sim {
    /// Starts the emulator on 127.0.0.1 with an ephemeral port.
    pub async fn start(config: SimConfig) -> std::io::Result<Self> {
        Self::start_on(config, 0).await
    }

    /// Starts the emulator on 127.0.0.1:`port` (0 for any).
    pub async fn start_on(config: SimConfig, port: u16) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
        let addr = listener.local_addr()?;
        let (version, _) = watch::channel(0u64);
        let shared = Arc::new(Shared {
            config,
            base_url: format!("http://{addr}"),
            state: Mutex::new(State::default()),
            version,
        });
        let app = Router::new()
            .route("/connect", get(stream::ws_handler))
            .route("/_sim/messages", post(control::control_message))
            .route("/_sim/replies", get(control::control_replies))
            .route("/_sim/acks", get(control::control_acks))
            .route("/", get(console::page))
            .route("/_sim/console", get(console::page))
            .route("/favicon.ico", get(|| async { StatusCode::NO_CONTENT }))
            .route("/_sim/state", get(console::get_state))
            .route("/_sim/stream", get(console::stream))
            .route("/_sim/card-action", post(console::card_action))
            .route("/_sim/event", post(console::event))
            .route("/_sim/fault", post(console::fault))
            .fallback(openapi::http_handler)
            .with_state(shared.clone());
        let (shutdown, rx) = oneshot::channel::<()>();
        tokio::spawn(async move {
            let app = app.into_make_service_with_connect_info::<SocketAddr>();
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await;
        });
        if let Some(after) = shared.config.redeliver_after {
            // Ends when the emulator is gone (the last strong reference dropped).
            let weak = Arc::downgrade(&shared);
            let tick = (after / 4).max(Duration::from_millis(5));
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(tick).await;
                    let Some(shared) = weak.upgrade() else { break };
                    Control { shared }.redeliver_due();
                }
            });
        }
        Ok(Self {
            control: Control { shared },
            addr,
            shutdown: Some(shutdown),
        })
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A cloneable controller of this emulator.
    pub fn control(&self) -> Control {
        self.control.clone()
    }
}

impl Control {
    /// `http://127.0.0.1:PORT`: use it as the gateway/api/oapi base URL.
    pub fn base_url(&self) -> String {
        self.shared.base_url.clone()
    }

    /// The accepted client id and secret.
    pub fn credentials(&self) -> (String, String) {
        (
            self.shared.config.client_id.clone(),
            self.shared.config.client_secret.clone(),
        )
    }

    /// A copy of everything recorded so far.
    pub fn snapshot(&self) -> Snapshot {
        let st = self.shared.lock();
        let mut snap = st.snap.clone();
        snap.cards.clone_from(&st.cards.cards);
        snap
    }

    /// One card as it is now.
    pub fn card(&self, out_track_id: &str) -> Option<SimCard> {
        self.shared.lock().cards.cards.get(out_track_id).cloned()
    }

    /// A scene group the bot created, as it is now.
    pub fn scene_group(&self, open_conversation_id: &str) -> Option<SceneGroup> {
        self.shared
            .lock()
            .directory
            .groups
            .get(open_conversation_id)
            .cloned()
    }

    /// A user of the emulated organisation.
    pub fn user(&self, userid: &str) -> Option<SimUser> {
        self.shared.lock().directory.users.get(userid).cloned()
    }

    /// The next `n` card creations fail with 400 `param.templateNotExist`.
    pub fn fail_next_card_creates(&self, n: u32) {
        self.shared.lock().cards.fail_creates = n;
    }

    // ---- pushing frames -------------------------------------------------------------------

    /// The newest live connection (the target of the fault switches).
    fn active_conn(st: &State) -> Option<u64> {
        st.slots
            .values()
            .filter(|s| s.info.open && !s.info.draining)
            .map(|s| s.info.id)
            .max()
    }

    /// The next live connection after `after` in id order, wrapping around (as DingTalk
    /// spreads an app's frames over its connections); one other than `not` when there is one.
    fn next_conn(st: &State, after: u64, not: Option<u64>) -> Option<u64> {
        let live: Vec<u64> = st
            .slots
            .values()
            .filter(|s| s.info.open && !s.info.draining && !s.frozen)
            .map(|s| s.info.id)
            .collect();
        let others: Vec<u64> = live.iter().copied().filter(|c| Some(*c) != not).collect();
        let pool = if others.is_empty() { &live } else { &others };
        pool.iter()
            .copied()
            .find(|c| *c > after)
            .or_else(|| pool.first().copied())
    }

    /// Pushes a raw text frame on the live connections in turn (one frame each, round robin).
    /// Returns the connection, or `None` when no connection is live.
    pub fn push_raw(&self, text: impl Into<String>) -> Option<u64> {
        let conn = {
            let mut st = self.shared.lock();
            let conn = Self::next_conn(&st, st.last_pushed, None)?;
            st.last_pushed = conn;
            conn
        };
        self.push_raw_to(conn, text)
    }

    /// Pushes the frame `message_id` (pushed before) again on connection `conn`, as DingTalk
    /// redelivers a message to another connection, possibly of another process. Returns
    /// `conn`, or `None` when the frame is unknown or the connection closed.
    pub fn redeliver_to(&self, message_id: &str, conn: u64) -> Option<u64> {
        let (text, from) = {
            let st = self.shared.lock();
            let text = st.texts.get(message_id)?.clone();
            let from = st
                .snap
                .sent
                .iter()
                .rev()
                .find(|f| f.message_id == message_id)
                .map_or(0, |f| f.conn);
            (text, from)
        };
        self.push_raw_to(conn, text)?;
        let mut st = self.shared.lock();
        st.snap.redeliveries.push(Redelivery {
            message_id: message_id.to_owned(),
            from,
            to: conn,
        });
        drop(st);
        self.shared.changed();
        Some(conn)
    }

    /// Pushes again every data frame un-acked for [`SimConfig::redeliver_after`], on another
    /// live connection when there is one.
    fn redeliver_due(&self) {
        let Some(after) = self.shared.config.redeliver_after else {
            return;
        };
        let max = self.shared.config.max_redeliveries;
        let due: Vec<(String, String, u64)> = {
            let mut st = self.shared.lock();
            let now = Instant::now();
            st.unacked
                .retain(|_, (_, _, at, copies)| *copies < max || now.duration_since(*at) < after);
            st.unacked
                .iter()
                .filter(|(_, (_, _, at, copies))| *copies < max && now.duration_since(*at) >= after)
                .map(|(id, (text, conn, _, _))| (id.clone(), text.clone(), *conn))
                .collect()
        };
        for (id, text, from) in due {
            let to = {
                let st = self.shared.lock();
                Self::next_conn(&st, from, Some(from))
            };
            let Some(to) = to else { continue };
            if self.push_raw_to(to, text).is_some() {
                let mut st = self.shared.lock();
                if let Some(e) = st.unacked.get_mut(&id) {
                    e.3 += 1;
                }
                st.snap.redeliveries.push(Redelivery {
                    message_id: id,
                    from,
                    to,
                });
                drop(st);
                self.shared.changed();
            }
        }
    }

    /// Pushes a raw text frame on connection `conn` (even a draining one). Returns `conn`, or
    /// `None` when it is closed.
    pub fn push_raw_to(&self, conn: u64, text: impl Into<String>) -> Option<u64> {
        let text = text.into();
        let mut st = self.shared.lock();
        if !st.slots.get(&conn).is_some_and(|s| s.info.open) {
            return None;
        }
        if let Ok(v) = serde_json::from_str::<Value>(&text) {
            let id = v["headers"]["messageId"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            let kind = v["type"].as_str().unwrap_or_default().to_owned();
            let topic = v["headers"]["topic"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            if !id.is_empty() {
                st.sent_kinds
                    .entry((conn, id.clone()))
                    .and_modify(|e| e.2 += 1)
                    .or_insert((kind.clone(), topic.clone(), 1));
            }
            if !id.is_empty() && kind != "SYSTEM" && !self.shared.config.bench_mode {
                st.texts.insert(id.clone(), text.clone());
            }
            if !id.is_empty() && kind != "SYSTEM" && self.shared.config.redeliver_after.is_some() {
                let copies = st.unacked.get(&id).map_or(0, |e| e.3);
                st.unacked
                    .insert(id.clone(), (text.clone(), conn, Instant::now(), copies));
            }
            if !id.is_empty() && !self.shared.config.bench_mode {
                st.snap.sent.push(SentFrame {
                    conn,
                    message_id: id,
                    kind,
                    topic,
                });
            }
        }
        let ok = st
            .slots
            .get(&conn)
            .is_some_and(|s| s.tx.send(Cmd::Text(text)).is_ok());
        drop(st);
        self.shared.changed();
        ok.then_some(conn)
    }

    /// Pushes a frame of `kind`/`topic` with `data` (JSON text) and returns its message id.
    pub fn push_frame(&self, kind: &str, topic: &str, data: &str) -> String {
        let id = self.new_message_id();
        self.push_frame_with_id(kind, topic, &id, data);
        id
    }

    /// Pushes a frame on connection `conn` and returns its message id.
    pub fn push_frame_to(&self, conn: u64, kind: &str, topic: &str, data: &str) -> Option<String> {
        let id = self.new_message_id();
        self.push_raw_to(conn, Self::frame_text(kind, topic, &id, data))?;
        Some(id)
    }

    fn frame_text(kind: &str, topic: &str, message_id: &str, data: &str) -> String {
        json!({
            "specVersion": "1.0",
            "type": kind,
            "headers": {
                "appId": "sim-app", "connectionId": "sim", "contentType": "application/json",
                "messageId": message_id, "time": now_ms().to_string(), "topic": topic,
            },
            "data": data,
        })
        .to_string()
    }

    /// Pushes a frame with a chosen message id (e.g. a duplicate delivery).
    pub fn push_frame_with_id(
        &self,
        kind: &str,
        topic: &str,
        message_id: &str,
        data: &str,
    ) -> Option<u64> {
        self.push_raw(Self::frame_text(kind, topic, message_id, data))
    }

    fn new_message_id(&self) -> String {
        let mut st = self.shared.lock();
        let n = self.shared.next(&mut st);
        format!("sim_{n}_{:x}", now_ms())
    }

    /// Pushes a SYSTEM `ping` and returns its message id; the ack must echo `opaque`.
    pub fn ping(&self) -> String {
        let id = self.new_message_id();
        let data = json!({"opaque": format!("opaque-{id}")}).to_string();
        self.push_frame_with_id("SYSTEM", "ping", &id, &data);
        id
    }

    /// Sends `disconnect` on the newest live connection and closes it after
    /// [`SimConfig::disconnect_grace`]. Returns the connection.
    pub fn disconnect(&self) -> Option<u64> {
        let id = self.new_message_id();
        let data = json!({"reason": "persistent connection is timeout"}).to_string();
        let conn = self.push_frame_with_id("SYSTEM", "disconnect", &id, &data)?;
        let tx = {
            let mut st = self.shared.lock();
            let slot = st.slots.get_mut(&conn)?;
            slot.info.draining = true;
            let tx = slot.tx.clone();
            st.sync_conn(conn);
            tx
        };
        self.shared.changed();
        let grace = self.shared.config.disconnect_grace;
        tokio::spawn(async move {
            tokio::time::sleep(grace).await;
            let _ = tx.send(Cmd::Close);
        });
        Some(conn)
    }

    /// Drops the newest live connection's TCP stream without a close frame.
    pub fn close_abruptly(&self) -> Option<u64> {
        self.command_active(Cmd::Abort)
    }

    /// Stops reading and writing the newest live connection: pings go unanswered, as on a
    /// half-open TCP connection. The connection stays until the client closes it.
    pub fn freeze(&self) -> Option<u64> {
        let conn = self.command_active(Cmd::Freeze)?;
        if let Some(slot) = self.shared.lock().slots.get_mut(&conn) {
            slot.frozen = true;
        }
        Some(conn)
    }

    fn command_active(&self, cmd: Cmd) -> Option<u64> {
        let st = self.shared.lock();
        let conn = Self::active_conn(&st)?;
        st.slots.get(&conn)?.tx.send(cmd).ok()?;
        Some(conn)
    }

    // ---- faults ---------------------------------------------------------------------------

    /// The next open-connection requests answer these statuses (401 answers `authFailed`).
    pub fn fail_next_opens(&self, statuses: &[u16]) {
        self.shared
            .lock()
            .faults
            .open_failures
            .extend(statuses.iter().copied());
    }

    /// Invalidates every issued access token (as if they expired).
    pub fn expire_tokens(&self) {
        self.shared.lock().tokens.clear();
    }

    /// The next `n` access-token requests are answered after `delay`.
    pub fn delay_next_tokens(&self, n: u32, delay: Duration) {
        let mut st = self.shared.lock();
        st.faults.token_delays = n;
        st.faults.token_delay = delay;
    }

    /// The next `n` access-token requests fail with HTTP 500.
    pub fn fail_next_tokens(&self, n: u32) {
        self.shared.lock().faults.token_failures = n;
    }

    /// Every ack from now on is also sent here (constant memory in the emulator with
    /// [`SimConfig::bench_mode`]; the consumer keeps the books).
    pub fn ack_sink(&self) -> mpsc::UnboundedReceiver<AckEvent> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.shared.lock().ack_sink = Some(tx);
        rx
    }

    /// The next `n` OpenAPI calls are rate limited (403 `QpsLimitForApi` / errcode 90018).
    pub fn rate_limit_next_calls(&self, n: u32) {
        self.shared.lock().faults.rate_limit_calls = n;
    }

    // ---- waiting --------------------------------------------------------------------------

    /// Waits until `cond` holds for the recorded state, or `timeout` passes.
    pub async fn wait_for<F>(
        &self,
        what: &str,
        timeout: Duration,
        cond: F,
    ) -> Result<Snapshot, WaitTimeout>
    where
        F: Fn(&Snapshot) -> bool,
    {
        let mut rx = self.shared.version.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let snap = self.snapshot();
            if cond(&snap) {
                return Ok(snap);
            }
            match tokio::time::timeout_at(deadline, rx.changed()).await {
                Ok(Ok(())) => {}
                _ => return Err(WaitTimeout(what.to_owned())),
            }
        }
    }

    /// Waits for the first ack of `message_id`.
    pub async fn wait_ack(
        &self,
        message_id: &str,
        timeout: Duration,
    ) -> Result<AckRecord, WaitTimeout> {
        let snap = self
            .wait_for(&format!("ack of {message_id}"), timeout, |s| {
                !s.acks_for(message_id).is_empty()
            })
            .await?;
        snap.acks_for(message_id)
            .first()
            .map(|a| (*a).clone())
            .ok_or_else(|| WaitTimeout(message_id.to_owned()))
    }

    /// Waits until `n` connections are open and not draining.
    pub async fn wait_connections(&self, n: usize, timeout: Duration) -> Result<(), WaitTimeout> {
        self.wait_for(&format!("{n} live connections"), timeout, |s| {
            s.conns.iter().filter(|c| c.open && !c.draining).count() >= n
        })
        .await
        .map(|_| ())
    }
}

/// An emulator running on its own small tokio runtime, for programs that are not tokio
/// programs (the blocking and async-std examples and tests). It dereferences to its
/// [`Control`]; [`BackgroundSim::block_on`] waits for one of its futures from any thread.
pub struct BackgroundSim {
    sim: Option<Sim>,
    rt: tokio::runtime::Runtime,
}

impl std::fmt::Debug for BackgroundSim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackgroundSim")
            .field("sim", &self.sim)
            .finish()
    }
}

impl BackgroundSim {
    /// Starts the emulator on a dedicated runtime thread.
    pub fn start(config: SimConfig) -> std::io::Result<Self> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("dingtalk-sim")
            .enable_all()
            .build()?;
        let sim = rt.block_on(Sim::start(config))?;
        Ok(Self { sim: Some(sim), rt })
    }

    /// Runs `future` (e.g. a [`Control::wait_for`]) to completion on the emulator's runtime.
    pub fn block_on<F: std::future::Future>(&self, future: F) -> F::Output {
        self.rt.block_on(future)
    }
}

impl std::ops::Deref for BackgroundSim {
    type Target = Control;
    fn deref(&self) -> &Control {
        // Present from `start` until drop.
        match &self.sim {
            Some(sim) => sim,
            None => unreachable_control(),
        }
    }
}

#[allow(clippy::panic)] // `sim` is only taken in `drop`, after which no deref can happen
fn unreachable_control() -> &'static Control {
    panic!("BackgroundSim used after drop")
}

impl Drop for BackgroundSim {
    fn drop(&mut self) {
        // Stop the server inside its runtime so its tasks wind down cleanly.
        let _guard = self.rt.enter();
        self.sim.take();
    }
}

/// The crate README's examples, compiled as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
