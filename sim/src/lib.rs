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

mod cards;
mod console;
mod directory;

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
            .route("/connect", get(ws_handler))
            .route("/_sim/messages", post(control_message))
            .route("/_sim/replies", get(control_replies))
            .route("/_sim/acks", get(control_acks))
            .route("/", get(console::page))
            .route("/_sim/console", get(console::page))
            .route("/favicon.ico", get(|| async { StatusCode::NO_CONTENT }))
            .route("/_sim/state", get(console::get_state))
            .route("/_sim/stream", get(console::stream))
            .route("/_sim/card-action", post(console::card_action))
            .route("/_sim/event", post(console::event))
            .route("/_sim/fault", post(console::fault))
            .fallback(http_handler)
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

    /// The realistic `data` of a bot message; its session webhook points at the emulator.
    pub fn bot_message_data(&self, msgtype: &str, text: &str, chat: Chat) -> Value {
        let mut st = self.shared.lock();
        let n = self.shared.next(&mut st);
        let session = format!("sim-session-{n}");
        let created = now_ms();
        let expires = created + 5_400_000;
        st.sessions.insert(session.clone(), expires);
        if !self.shared.config.bench_mode {
            st.chat.user(chat, msgtype, text, &session);
        }
        let client_id = self.shared.config.client_id.clone();
        drop(st);
        let (cid, ctype) = match chat {
            Chat::Private => ("cidSimPrivate0001==", "1"),
            Chat::Group => ("cidSimGroup0001==", "2"),
        };
        let mut data = json!({
            "conversationId": cid,
            "conversationType": ctype,
            "chatbotCorpId": "dingSimCorp",
            "chatbotUserId": "$:LWCP_v1:$simbot",
            "msgId": format!("msgSim{n}=="),
            "senderNick": "Sim User",
            "isAdmin": false,
            "senderStaffId": "sim-staff-1",
            "sessionWebhookExpiredTime": expires,
            "createAt": created,
            "senderCorpId": "dingSimCorp",
            "senderId": "$:LWCP_v1:$simuser",
            "sessionWebhook": format!("{}/robot/sendBySession?session={session}", self.shared.base_url),
            "robotCode": client_id,
            "msgtype": msgtype,
        });
        if let Some(obj) = data.as_object_mut() {
            if chat == Chat::Group {
                obj.insert("conversationTitle".into(), json!("Sim Group"));
                obj.insert("isInAtList".into(), json!(true));
                obj.insert(
                    "atUsers".into(),
                    json!([{"dingtalkId": "$:LWCP_v1:$simbot"}]),
                );
            }
            match msgtype {
                "text" => {
                    obj.insert("text".into(), json!({"content": text}));
                }
                "picture" => {
                    obj.insert(
                        "content".into(),
                        json!({"pictureDownloadCode": format!("pic-{n}"), "downloadCode": format!("dl-{n}")}),
                    );
                }
                _ => {}
            }
        }
        data
    }

    /// A user sends `text` to the bot; returns the frame's message id.
    pub fn bot_text(&self, text: &str, chat: Chat) -> String {
        let data = self.bot_message_data("text", text, chat).to_string();
        self.push_frame("CALLBACK", "/v1.0/im/bot/messages/get", &data)
    }

    /// A user sends a picture to the bot; returns the frame's message id.
    pub fn bot_picture(&self, chat: Chat) -> String {
        let data = self.bot_message_data("picture", "", chat).to_string();
        self.push_frame("CALLBACK", "/v1.0/im/bot/messages/get", &data)
    }

    /// Acts as DingTalk's outgoing robot in HTTP-callback mode: POSTs a chatbot message with
    /// `text` to `url` (your server's `/robot`), signed with the app secret (`timestamp` and
    /// `sign` headers, as DingTalk sends them). Returns the answer's status and body. The bot's
    /// replies reach this emulator's session webhook, as in Stream mode.
    pub async fn robot_callback(
        &self,
        url: &str,
        text: &str,
        chat: Chat,
    ) -> Result<(u16, String), String> {
        let body = self.bot_message_data("text", text, chat).to_string();
        let ts = now_ms();
        let sign = dingtalk_core::webhook::sign(&self.shared.config.client_secret, ts);
        let answer = http_client()?
            .post(url)
            .header("timestamp", ts.to_string())
            .header("sign", sign)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .map_err(|e| e.without_url().to_string())?;
        let status = answer.status().as_u16();
        let text = answer
            .text()
            .await
            .map_err(|e| e.without_url().to_string())?;
        Ok((status, text))
    }

    /// Acts as DingTalk's event subscription in HTTP-callback mode: POSTs the event
    /// `event_type` with `fields` to `url` (your server's `/events`), encrypted and signed with
    /// `crypto` (the token and `aes_key` you set in the console). Returns the answer's status
    /// and, when it is the encrypted reply, its decrypted text (`success`).
    pub async fn event_callback(
        &self,
        url: &str,
        crypto: &dingtalk_core::callback::EventCrypto,
        event_type: &str,
        fields: Value,
    ) -> Result<(u16, String), String> {
        let mut plain = json!({"EventType": event_type, "CorpId": "dingSimCorp",
                               "EventId": format!("sim-event-{}", now_ms())});
        if let (Some(p), Some(f)) = (plain.as_object_mut(), fields.as_object()) {
            p.extend(f.clone());
        }
        let ts = now_ms().to_string();
        let nonce = format!("n{}", self.shared.next(&mut self.shared.lock()));
        let random: [u8; 16] = *b"simsimsimsimsim0";
        let sealed = crypto.encrypt(&plain.to_string(), &ts, &nonce, random);
        let answer = http_client()?
            .post(format!(
                "{url}?msg_signature={}&timestamp={ts}&nonce={nonce}",
                sealed.msg_signature
            ))
            .header("content-type", "application/json")
            .body(json!({"encrypt": sealed.encrypt}).to_string())
            .send()
            .await
            .map_err(|e| e.without_url().to_string())?;
        let status = answer.status().as_u16();
        let body = answer
            .text()
            .await
            .map_err(|e| e.without_url().to_string())?;
        let text = serde_json::from_str::<Value>(&body)
            .ok()
            .and_then(|v| {
                crypto
                    .decrypt(
                        v["msg_signature"].as_str()?,
                        v["timeStamp"].as_str()?,
                        v["nonce"].as_str()?,
                        v["encrypt"].as_str()?,
                    )
                    .ok()
            })
            .unwrap_or(body);
        Ok((status, text))
    }

    /// A card button is clicked; returns the frame's message id.
    pub fn card_callback(&self, out_track_id: &str, params: Value) -> String {
        self.card_action(out_track_id, "sim_button", params)
    }

    /// A click on the button `action_id` of the card `out_track_id`; returns the frame's
    /// message id.
    pub fn card_action(&self, out_track_id: &str, action_id: &str, params: Value) -> String {
        let content =
            json!({"cardPrivateData": {"actionIds": [action_id], "params": params}}).to_string();
        let data = json!({
            "extension": "{}", "corpId": "dingSimCorp", "spaceType": "im", "userIdType": 1,
            "type": "actionCallback", "userId": "sim-staff-1", "content": content,
            "spaceId": "cidSimGroup0001==", "outTrackId": out_track_id, "value": content,
        });
        self.push_frame(
            "CALLBACK",
            "/v1.0/card/instances/callback",
            &data.to_string(),
        )
    }

    /// An organisation event; returns the frame's message id.
    pub fn event(&self, event_type: &str, data: Value) -> String {
        let id = self.new_message_id();
        let frame = json!({
            "specVersion": "1.0", "type": "EVENT",
            "headers": {
                "topic": "*", "messageId": id, "contentType": "application/json",
                "time": now_ms().to_string(), "eventType": event_type,
                "eventId": format!("evt-{id}"), "eventCorpId": "dingSimCorp",
                "eventBornTime": now_ms().to_string(), "eventUnifiedAppId": "sim-app",
            },
            "data": data.to_string(),
        });
        self.push_raw(frame.to_string());
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

    /// Plays the quickstart conversation (a one-to-one text, a group message that @-mentions the
    /// bot, a picture), waiting for the bot's reply to each, and calls `print` with every line
    /// of the transcript. Fails if a reply does not come within `timeout` or the bot broke the
    /// protocol.
    pub async fn play_demo_conversation(
        &self,
        timeout: Duration,
        mut print: impl FnMut(&str),
    ) -> Result<(), WaitTimeout> {
        let conversation = [
            ("one-to-one", Some("hello bot"), Chat::Private),
            ("group, @bot", Some("@EchoBot what did I say?"), Chat::Group),
            ("one-to-one", None, Chat::Private),
        ];
        self.wait_connections(1, timeout).await?;
        let before = self.snapshot().webhooks.len();
        for (n, (place, text, chat)) in conversation.into_iter().enumerate() {
            match text {
                Some(t) => {
                    print(&format!("[{place}] user: {t}"));
                    self.bot_text(t, chat);
                }
                None => {
                    print(&format!("[{place}] user: <a picture>"));
                    self.bot_picture(chat);
                }
            }
            let snap = self
                .wait_for("the bot's reply", timeout, |s| {
                    s.webhooks.len() > before + n
                })
                .await?;
            let reply = &snap.webhooks[before + n].body;
            let text = reply["text"]["content"]
                .as_str()
                .or_else(|| reply["markdown"]["text"].as_str())
                .unwrap_or_default();
            print(&format!("[{place}] bot:  {text}\n"));
        }
        let snap = self.snapshot();
        print(&format!(
            "{} frames acked, {} replies, protocol violations: {}",
            snap.acks.len(),
            snap.webhooks.len(),
            snap.violations.len()
        ));
        if snap.violations.is_empty() {
            Ok(())
        } else {
            Err(WaitTimeout(format!(
                "a clean protocol run; violations: {:?}",
                snap.violations
            )))
        }
    }

    /// Pushes `frames` (prebuilt texts with their message ids) on the newest live connection
    /// with at most `window` un-acked at a time, and measures push-to-ack latency. Fails if the
    /// acks do not all come within `timeout`.
    pub async fn run_load(
        &self,
        frames: Vec<(String, String)>,
        window: usize,
        timeout: Duration,
    ) -> Result<LoadReport, WaitTimeout> {
        let permits = Arc::new(tokio::sync::Semaphore::new(window.max(1)));
        let done = Arc::new(tokio::sync::Notify::new());
        let n = frames.len();
        let tx = {
            let mut st = self.shared.lock();
            let conn =
                Self::active_conn(&st).ok_or_else(|| WaitTimeout("a live connection".into()))?;
            st.load = Some(Load {
                pending: HashMap::with_capacity(n),
                latencies: Vec::with_capacity(n),
                permits: permits.clone(),
                done: done.clone(),
                remaining: n,
            });
            st.slots
                .get(&conn)
                .map(|s| s.tx.clone())
                .ok_or_else(|| WaitTimeout("a live connection".into()))?
        };
        let start = Instant::now();
        let deadline = tokio::time::Instant::now() + timeout;
        let finished = done.notified();
        tokio::pin!(finished);
        for (id, text) in frames {
            match tokio::time::timeout_at(deadline, permits.acquire()).await {
                Ok(Ok(p)) => p.forget(),
                _ => return Err(WaitTimeout("a free slot in the ack window".into())),
            }
            if let Some(load) = self.shared.lock().load.as_mut() {
                load.pending.insert(id, Instant::now());
            }
            if tx.send(Cmd::Text(text)).is_err() {
                return Err(WaitTimeout("the connection to stay open".into()));
            }
        }
        if n > 0
            && tokio::time::timeout_at(deadline, &mut finished)
                .await
                .is_err()
        {
            return Err(WaitTimeout("every ack of the load run".into()));
        }
        let elapsed = start.elapsed();
        let mut latencies = self
            .shared
            .lock()
            .load
            .take()
            .map(|l| l.latencies)
            .unwrap_or_default();
        latencies.sort_unstable();
        Ok(LoadReport {
            frames: n,
            elapsed,
            latencies,
        })
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

// ---- WebSocket ----------------------------------------------------------------------------

async fn ws_handler(
    AxState(shared): AxState<Arc<Shared>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Query(q): Query<HashMap<String, String>>,
    ws: WebSocketUpgrade,
) -> Response {
    let Some(ticket) = q.get("ticket").cloned() else {
        return (StatusCode::BAD_REQUEST, "missing ticket").into_response();
    };
    {
        let mut st = shared.lock();
        let valid = st
            .tickets
            .get(&ticket)
            .is_some_and(|issued| issued.elapsed() <= shared.config.ticket_ttl);
        if !valid || st.used_tickets.contains(&ticket) {
            let msg = format!("ticket `{ticket}` is unknown, expired or already used");
            st.snap.violations.push(msg.clone());
            drop(st);
            shared.changed();
            return (StatusCode::UNAUTHORIZED, msg).into_response();
        }
        st.used_tickets.insert(ticket.clone());
    }
    ws.on_upgrade(move |socket| conn_task(shared, socket, ticket, peer.ip()))
}

async fn conn_task(shared: Arc<Shared>, socket: WebSocket, ticket: String, peer: IpAddr) {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let id = {
        let mut st = shared.lock();
        st.last_conn += 1;
        let id = st.last_conn;
        let info = ConnInfo {
            id,
            ticket,
            open: true,
            draining: false,
            pings: 0,
            peer,
        };
        st.snap.conns.push(info.clone());
        st.slots.insert(
            id,
            ConnSlot {
                info,
                tx,
                frozen: false,
            },
        );
        id
    };
    shared.changed();
    let (mut sink, mut stream) = socket.split();
    let mut frozen = false;
    loop {
        tokio::select! {
            cmd = rx.recv() => match cmd {
                Some(Cmd::Text(t)) if !frozen => {
                    if sink.send(Message::Text(t.into())).await.is_err() {
                        break;
                    }
                }
                Some(Cmd::Text(_)) => {}
                Some(Cmd::Close) => {
                    let _ = sink.send(Message::Close(None)).await;
                    break;
                }
                Some(Cmd::Freeze) => frozen = true,
                Some(Cmd::Abort) | None => break,
            },
            msg = stream.next(), if !frozen => match msg {
                Some(Ok(Message::Text(t))) => record_ack(&shared, id, t.as_str()),
                Some(Ok(Message::Ping(_))) => {
                    let mut st = shared.lock();
                    if let Some(s) = st.slots.get_mut(&id) {
                        s.info.pings += 1;
                    }
                    st.sync_conn(id);
                    drop(st);
                    shared.changed();
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => {}
            },
        }
    }
    let mut st = shared.lock();
    if let Some(mut slot) = st.slots.remove(&id) {
        slot.info.open = false;
        st.snap.conns.retain(|c| c.id != id);
        st.snap.conns.push(slot.info);
        st.snap.conns.sort_by_key(|c| c.id);
    }
    drop(st);
    shared.changed();
}

fn record_ack(shared: &Shared, conn: u64, text: &str) {
    let mut st = shared.lock();
    if st.load.is_some() {
        // Fast path of a load run: find the message id without building a JSON tree.
        #[derive(serde::Deserialize)]
        struct AckHeaders<'a> {
            #[serde(rename = "messageId", borrow)]
            message_id: &'a str,
        }
        #[derive(serde::Deserialize)]
        struct AckFrame<'a> {
            #[serde(borrow)]
            headers: AckHeaders<'a>,
            code: i64,
        }
        let mut bad_code = None;
        let mut handled = false;
        if let (Ok(ack), Some(load)) =
            (serde_json::from_str::<AckFrame<'_>>(text), st.load.as_mut())
        {
            if let Some(sent) = load.pending.remove(ack.headers.message_id) {
                handled = true;
                if ack.code == 200 {
                    load.latencies.push(sent.elapsed());
                } else {
                    bad_code = Some(ack.code);
                }
                load.permits.add_permits(1);
                load.remaining = load.remaining.saturating_sub(1);
                if load.remaining == 0 {
                    load.done.notify_one();
                }
            }
        }
        if let Some(code) = bad_code {
            st.snap.violations.push(format!("load frame acked {code}"));
        }
        if handled {
            return;
        }
    }
    let parsed: Result<Value, _> = serde_json::from_str(text);
    let Ok(v) = parsed else {
        st.snap
            .violations
            .push(format!("conn {conn}: non-JSON text `{text}`"));
        drop(st);
        shared.changed();
        return;
    };
    let message_id = v["headers"]["messageId"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let code = v["code"].as_i64().unwrap_or(-1);
    let message = v["message"].as_str().unwrap_or_default().to_owned();
    let data_text = v["data"].as_str();
    let mut problems = Vec::new();
    if v["code"].as_i64().is_none() {
        problems.push("`code` is not a number".to_owned());
    }
    if v["headers"]["contentType"].as_str() != Some("application/json") {
        problems.push("`headers.contentType` is not application/json".to_owned());
    }
    if data_text.is_none() {
        problems.push("`data` is not a string".to_owned());
    }
    let data: Value = data_text
        .and_then(|d| serde_json::from_str(d).ok())
        .unwrap_or(Value::Null);
    let known = st.sent_kinds.contains_key(&(conn, message_id.clone()));
    if let Some(sink) = &st.ack_sink {
        let _ = sink.send(AckEvent {
            conn,
            message_id: message_id.clone(),
            code,
            status: data["status"].as_str().map(str::to_owned),
            on_its_connection: known,
        });
    }
    match st.sent_kinds.get(&(conn, message_id.clone())).cloned() {
        None => problems.push(format!(
            "ack for `{message_id}`, which was not sent on this connection"
        )),
        Some((kind, topic, _)) => match (kind.as_str(), topic.as_str()) {
            ("SYSTEM", "ping") if code == 200 && data.get("opaque").is_none() => {
                problems.push("ping ack does not echo `opaque`".to_owned())
            }
            ("EVENT", _)
                if code == 200 && !matches!(data["status"].as_str(), Some("SUCCESS" | "LATER")) =>
            {
                problems.push("EVENT ack lacks status SUCCESS/LATER".to_owned())
            }
            ("CALLBACK", _) if code == 200 && data.get("response").is_none() => {
                problems.push("CALLBACK ack lacks `response`".to_owned())
            }
            _ => {}
        },
    }
    for p in problems {
        st.snap.violations.push(format!("conn {conn}: {p}: {text}"));
    }
    if shared.config.bench_mode {
        // Forget one copy; an ack beyond the copies sent is then reported as above.
        let key = (conn, message_id);
        if let Some(e) = st.sent_kinds.get_mut(&key) {
            e.2 -= 1;
            if e.2 == 0 {
                st.sent_kinds.remove(&key);
            }
        }
        drop(st);
        shared.changed();
        return;
    }
    st.unacked.remove(&message_id);
    if code == 200 {
        // A card callback's answer updates the card, as DingTalk does.
        let track = st
            .texts
            .get(&message_id)
            .and_then(|t| serde_json::from_str::<Value>(t).ok())
            .filter(|f| f["headers"]["topic"] == "/v1.0/card/instances/callback")
            .and_then(|f| {
                f["data"]
                    .as_str()
                    .and_then(|d| serde_json::from_str::<Value>(d).ok())
            })
            .and_then(|d| d["outTrackId"].as_str().map(str::to_owned));
        if let Some(track) = track {
            st.cards.apply_answer(&track, &data["response"]);
        }
    }
    st.snap.acks.push(AckRecord {
        conn,
        message_id,
        code,
        message,
        data,
        raw: text.to_owned(),
    });
    drop(st);
    shared.changed();
}

// ---- HTTP ---------------------------------------------------------------------------------

fn api_error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        axum::Json(json!({"requestid": "SIM-REQUEST", "code": code, "message": message})),
    )
        .into_response()
}

fn oapi_error(code: i64, message: &str) -> Response {
    axum::Json(json!({"errcode": code, "errmsg": message, "request_id": "simreq"})).into_response()
}

fn ok_json(v: Value) -> Response {
    axum::Json(v).into_response()
}

async fn http_handler(
    AxState(shared): AxState<Arc<Shared>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_owned();
    let query: BTreeMap<String, String> = uri
        .query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    let json_body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let token = headers
        .get("x-acs-dingtalk-access-token")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);

    if method == Method::POST && path == "/v1.0/gateway/connections/open" {
        return open_connection(&shared, &headers, &json_body, peer.ip());
    }
    if method == Method::POST && path == "/v1.0/oauth2/accessToken" {
        return issue_token(
            &shared,
            json_body["appKey"].as_str(),
            json_body["appSecret"].as_str(),
            false,
        );
    }
    if method == Method::GET && path == "/gettoken" {
        return issue_token(
            &shared,
            query.get("appkey").map(String::as_str),
            query.get("appsecret").map(String::as_str),
            true,
        );
    }
    if let Some(code) = path.strip_prefix("/_files/") {
        return (
            [("content-type", "application/octet-stream")],
            format!("sim file {code}"),
        )
            .into_response();
    }
    let mut record = Recorded {
        method: method.to_string(),
        path: path.clone(),
        query: query.clone(),
        token: token.clone(),
        body: if json_body.is_null() && !body.is_empty() {
            Value::String(String::from_utf8_lossy(&body[..body.len().min(4096)]).into_owned())
        } else {
            json_body.clone()
        },
        status: 200,
        peer: peer.ip(),
        at_unix_ms: now_ms(),
    };
    let response = if path == "/robot/sendBySession" || path == "/robot/send" {
        let r = webhook(&shared, &path, &query, &json_body);
        record.status = r.status().as_u16();
        let mut st = shared.lock();
        st.snap.webhooks.push(record);
        drop(st);
        shared.changed();
        return r;
    } else if path.starts_with("/v1.0/") {
        api_call(&shared, &method, &path, token.as_deref(), &json_body)
    } else if path == "/media/upload" || path.starts_with("/topapi/") {
        oapi_call(&shared, &path, &query, &body)
    } else {
        api_error(StatusCode::NOT_FOUND, "resource.not.found", "no such path")
    };
    record.status = response.status().as_u16();
    shared.lock().snap.api_calls.push(record);
    shared.changed();
    response
}

fn open_connection(shared: &Shared, headers: &HeaderMap, body: &Value, peer: IpAddr) -> Response {
    let mut st = shared.lock();
    let record_open = |st: &mut State, status: u16| {
        st.snap.opens.push(OpenRecord {
            client_id: body["clientId"].as_str().unwrap_or_default().to_owned(),
            subscriptions: body["subscriptions"].clone(),
            ua: body["ua"].as_str().unwrap_or_default().to_owned(),
            status,
            at: Instant::now(),
            peer,
        });
    };
    let json_headers = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"))
        && headers
            .get("accept")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("application/json"));
    if !json_headers {
        st.snap
            .violations
            .push("open request without JSON Content-Type/Accept".into());
    }
    if let Some(status) = st.faults.open_failures.pop_front() {
        record_open(&mut st, status);
        drop(st);
        shared.changed();
        let code = StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
        return if status == 401 {
            api_error(code, "authFailed", "鉴权失败")
        } else {
            api_error(code, "ServiceUnavailable", "injected failure")
        };
    }
    if body["clientId"].as_str() != Some(&shared.config.client_id)
        || body["clientSecret"].as_str() != Some(&shared.config.client_secret)
    {
        record_open(&mut st, 401);
        drop(st);
        shared.changed();
        return api_error(StatusCode::UNAUTHORIZED, "authFailed", "鉴权失败");
    }
    let subs_ok = body["subscriptions"].as_array().is_some_and(|subs| {
        subs.iter().all(|s| {
            matches!(s["type"].as_str(), Some("EVENT" | "CALLBACK"))
                && s["topic"].as_str().is_some_and(|t| !t.is_empty())
        })
    });
    if !subs_ok {
        record_open(&mut st, 400);
        drop(st);
        shared.changed();
        return api_error(
            StatusCode::BAD_REQUEST,
            "param.invalid",
            "subscriptions must be [{type, topic}]",
        );
    }
    let n = shared.next(&mut st);
    let ticket = format!("sim-ticket-{n}-{:x}", now_ms());
    st.tickets.insert(ticket.clone(), Instant::now());
    record_open(&mut st, 200);
    drop(st);
    shared.changed();
    let endpoint = format!("{}/connect", shared.base_url.replacen("http", "ws", 1));
    ok_json(json!({"endpoint": endpoint, "ticket": ticket}))
}

fn issue_token(shared: &Shared, key: Option<&str>, secret: Option<&str>, oapi: bool) -> Response {
    if key != Some(&shared.config.client_id) || secret != Some(&shared.config.client_secret) {
        return if oapi {
            oapi_error(40096, "不合法的appKey或appSecret")
        } else {
            api_error(
                StatusCode::BAD_REQUEST,
                "invalidClientIdOrSecret",
                "无效的clientId或者clientSecret",
            )
        };
    }
    let mut st = shared.lock();
    if st.faults.token_failures > 0 {
        st.faults.token_failures -= 1;
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            "token service unavailable",
        )
            .into_response();
    }
    let n = shared.next(&mut st);
    let token = format!("sim-token-{n}");
    st.tokens
        .insert(token.clone(), Instant::now() + shared.config.token_ttl);
    st.snap.tokens_issued += 1;
    drop(st);
    shared.changed();
    let ttl = shared.config.token_ttl.as_secs();
    if oapi {
        ok_json(json!({"errcode": 0, "errmsg": "ok", "access_token": token, "expires_in": ttl}))
    } else {
        ok_json(json!({"accessToken": token, "expireIn": ttl}))
    }
}

fn token_valid(st: &State, token: Option<&str>) -> bool {
    token
        .and_then(|t| st.tokens.get(t))
        .is_some_and(|exp| Instant::now() < *exp)
}

fn webhook(
    shared: &Shared,
    path: &str,
    query: &BTreeMap<String, String>,
    body: &Value,
) -> Response {
    let mut st = shared.lock();
    if !matches!(
        body["msgtype"].as_str(),
        Some("text" | "markdown" | "link" | "actionCard" | "feedCard" | "empty")
    ) {
        return oapi_error(400105, "不支持的消息类型");
    }
    if path == "/robot/sendBySession" {
        let session = query.get("session").cloned().unwrap_or_default();
        return match st.sessions.get(&session) {
            Some(exp) if now_ms() < *exp => {
                if !shared.config.bench_mode {
                    st.chat.webhook(Some(&session), body);
                }
                oapi_error(0, "ok")
            }
            _ => oapi_error(300001, "session 不存在"),
        };
    }
    if query.get("access_token").is_none_or(|t| t.is_empty()) {
        return oapi_error(300001, "token is not exist");
    }
    if let Some(secret) = &shared.config.robot_secret {
        let ts: Option<i64> = query.get("timestamp").and_then(|t| t.parse().ok());
        let Some(ts) = ts else {
            return oapi_error(310000, "invalid timestamp");
        };
        if (now_ms() - ts).abs() > 3_600_000 {
            return oapi_error(310000, "invalid timestamp");
        }
        if query.get("sign") != Some(&dingtalk_core::webhook::sign(secret, ts)) {
            return oapi_error(310000, "sign not match");
        }
    }
    st.chat.webhook(None, body);
    oapi_error(0, "ok")
}

fn api_call(
    shared: &Shared,
    method: &Method,
    path: &str,
    token: Option<&str>,
    body: &Value,
) -> Response {
    let mut st = shared.lock();
    if !token_valid(&st, token) {
        return api_error(
            StatusCode::BAD_REQUEST,
            "InvalidAuthentication",
            "不合法的access_token",
        );
    }
    if st.faults.rate_limit_calls > 0 {
        st.faults.rate_limit_calls -= 1;
        return api_error(
            StatusCode::FORBIDDEN,
            "Forbidden.AccessDenied.QpsLimitForApi",
            "当前接口全局QPS限流",
        );
    }
    if let Some(response) = st.cards.handle(method.as_str(), path, body) {
        let created = response.status().is_success()
            && method == Method::POST
            && path.ends_with("createAndDeliver") | path.ends_with("/deliver");
        if created {
            let space = body["openSpaceId"].as_str().unwrap_or_default();
            let track = body["outTrackId"].as_str().unwrap_or_default();
            st.chat.card(space, track);
        }
        return response;
    }
    let n = shared.next(&mut st);
    drop(st);
    let pqk = format!("sim-pqk-{n}");
    let str_field = |k: &str| body[k].as_str().unwrap_or_default().to_owned();
    match (method.as_str(), path) {
        ("POST", "/v1.0/robot/groupMessages/send")
        | ("POST", "/v1.0/robot/oToMessages/batchSend") => {
            if body["msgKey"].as_str().is_none() || body["msgParam"].as_str().is_none() {
                return api_error(
                    StatusCode::BAD_REQUEST,
                    "invalidParameter.msgParam.invalid",
                    "msgKey and msgParam (a JSON string) are required",
                );
            }
            shared
                .lock()
                .chat
                .robot(path.contains("groupMessages"), body, &pqk);
            ok_json(
                json!({"processQueryKey": pqk, "invalidStaffIdList": [], "flowControlledStaffIdList": []}),
            )
        }
        ("POST", "/v1.0/robot/groupMessages/recall")
        | ("POST", "/v1.0/robot/otoMessages/batchRecall") => {
            let keys: Vec<String> = body["processQueryKeys"]
                .as_array()
                .map(|k| {
                    k.iter()
                        .filter_map(|x| x.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            if keys.is_empty() {
                return api_error(
                    StatusCode::BAD_REQUEST,
                    "MissingprocessQueryKeys",
                    "processQueryKeys is required",
                );
            }
            let mut st = shared.lock();
            let (done, failed): (Vec<String>, Vec<String>) =
                keys.into_iter().partition(|k| st.chat.recall(k));
            drop(st);
            let failed: serde_json::Map<String, Value> = failed
                .into_iter()
                .map(|k| (k, json!("message not found")))
                .collect();
            ok_json(json!({"successResult": done, "failedResult": failed}))
        }
        ("GET", "/v1.0/robot/oToMessages/readStatus") => {
            ok_json(json!({"sendStatus": "SUCCESS", "messageReadInfoList": []}))
        }
        ("POST", "/v1.0/robot/messageFiles/download") => {
            let code = str_field("downloadCode");
            if code.is_empty() {
                return api_error(
                    StatusCode::BAD_REQUEST,
                    "param.invalid",
                    "downloadCode is required",
                );
            }
            ok_json(json!({"downloadUrl": format!("{}/_files/{code}", shared.base_url)}))
        }
        ("POST", "/v1.0/im/v1.0/robot/interactiveCards/send") => {
            for field in ["cardTemplateId", "cardBizId", "robotCode", "cardData"] {
                if body[field].as_str().is_none_or(str::is_empty) {
                    return api_error(
                        StatusCode::BAD_REQUEST,
                        "MissingParameter",
                        &format!("{field} is required"),
                    );
                }
            }
            shared.lock().chat.standard_card(body);
            ok_json(json!({"processQueryKey": pqk}))
        }
        ("PUT", "/v1.0/im/robots/interactiveCards") => ok_json(json!({"success": true})),
        _ if path.starts_with("/v1.0/im/sceneGroups") => ok_json(json!({"success": true})),
        _ => api_error(
            StatusCode::NOT_FOUND,
            "resource.not.found",
            "no such API in the emulator",
        ),
    }
}

fn oapi_call(
    shared: &Shared,
    path: &str,
    query: &BTreeMap<String, String>,
    body: &[u8],
) -> Response {
    let mut st = shared.lock();
    if !token_valid(&st, query.get("access_token").map(String::as_str)) {
        return oapi_error(40014, "不合法的access_token");
    }
    if st.faults.rate_limit_calls > 0 {
        st.faults.rate_limit_calls -= 1;
        return oapi_error(90018, "当前应用调用该接口的QPS超出限制");
    }
    let n = shared.next(&mut st);
    drop(st);
    if path == "/media/upload" {
        let text = String::from_utf8_lossy(body);
        if !text.contains("name=\"media\"") || !text.contains("name=\"type\"") {
            return oapi_error(40035, "缺少参数 media 或 type");
        }
        return ok_json(
            json!({"errcode": 0, "errmsg": "ok", "media_id": format!("@sim-media-{n}"),
                              "created_at": now_ms(), "type": query.get("type")}),
        );
    }
    if path == "/topapi/message/corpconversation/asyncsend_v2" {
        let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        if v["agent_id"].as_i64().is_none_or(|a| a <= 0) {
            return oapi_error(40035, "缺少参数 agent_id");
        }
        if v["msg"]["msgtype"].as_str().is_none() {
            return oapi_error(40035, "缺少参数 msg");
        }
        let to_all = v["to_all_user"].as_bool().unwrap_or(false);
        let users = v["userid_list"].as_str().unwrap_or_default();
        if !to_all && (users.is_empty() || users.split(',').count() > 100) {
            return oapi_error(40035, "userid_list 无效");
        }
        return ok_json(json!({"errcode": 0, "errmsg": "ok", "task_id": n,
                              "request_id": format!("sim-request-{n}")}));
    }
    let json_body: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    if let Some(response) = shared.lock().directory.handle(path, &json_body) {
        return response;
    }
    oapi_error(404, "no such API in the emulator")
}

// ---- control API for people ----------------------------------------------------------------

#[derive(serde::Deserialize)]
struct InjectMessage {
    text: String,
    #[serde(default)]
    group: bool,
}

#[derive(Serialize)]
struct Injected {
    message_id: Option<String>,
    error: Option<String>,
}

async fn control_message(
    AxState(shared): AxState<Arc<Shared>>,
    axum::Json(req): axum::Json<InjectMessage>,
) -> Response {
    // The control API reuses the same pushing code as the Rust API.
    let sim = Control {
        shared: shared.clone(),
    };
    let chat = if req.group {
        Chat::Group
    } else {
        Chat::Private
    };
    let live = Control::active_conn(&shared.lock()).is_some();
    let result = if live {
        Injected {
            message_id: Some(sim.bot_text(&req.text, chat)),
            error: None,
        }
    } else {
        Injected {
            message_id: None,
            error: Some("no bot is connected".into()),
        }
    };
    axum::Json(result).into_response()
}

async fn control_replies(AxState(shared): AxState<Arc<Shared>>) -> Response {
    let replies: Vec<Value> = shared
        .lock()
        .snap
        .webhooks
        .iter()
        .map(|r| json!({"path": r.path, "body": r.body, "status": r.status}))
        .collect();
    axum::Json(replies).into_response()
}

async fn control_acks(AxState(shared): AxState<Arc<Shared>>) -> Response {
    let acks: Vec<Value> = shared
        .lock()
        .snap
        .acks
        .iter()
        .map(|a| json!({"conn": a.conn, "messageId": a.message_id, "code": a.code, "data": a.data}))
        .collect();
    axum::Json(acks).into_response()
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
