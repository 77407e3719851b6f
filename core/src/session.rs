//! The Stream session: a sans-IO state machine that owns every protocol decision.
//!
//! ```text
//!          start / failure (backoff)                 disconnect frame
//!   ┌──────────────┐   Output::Http    ┌──────────┐   (make-before-break)   ┌──────────┐
//!   │ waiting      │ ───────────────▶  │ opening  │ ──────────────────────▶ │ draining │ ── closed / deadline
//!   │ (next_open)  │ ◀── 5xx/timeout ─ │ (1 max)  │                         └──────────┘
//!   └──────────────┘                   └────┬─────┘                               ▲
//!          ▲                                │ endpoint + ticket                   │
//!          │ close / dead / handshake fail  ▼ Output::Connect                     │
//!          │                           ┌──────────┐  Input::Connected  ┌──────┐   │
//!          └────────────────────────── │connecting│ ─────────────────▶ │ open │ ──┘
//!                                      └──────────┘                    └──────┘
//!   401 authFailed ──▶ Output::Error (terminal) ──▶ graceful stop ──▶ Output::Done
//! ```
//!
//! Several connections may be alive at once (a draining one and its replacement). Every input
//! and output names its [`ConnId`]; acks always go to the connection the frame arrived on.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use foldhash::fast::FixedState;
use serde::Deserialize;

use crate::api::gateway::OpenConnection;
use crate::api::{build_request, parse_response};
use crate::config::{Route, StreamConfig};
use crate::dedup::{CachedAck, DedupCache};
use crate::error::{Error, OpenError};
use crate::frame::{Ack, Frame, FrameError, FrameType, salvage_message_id, status};
use crate::topic::{self, AckPolicy};

/// Identifies one WebSocket connection chosen by the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u64);

/// Identifies one HTTP request emitted by the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestId(pub u64);

/// Identifies one delivery handed to the application.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DeliveryId(pub u64);

/// What a handler made of a delivery.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Handled. For CALLBACK the value is sent as `{"response": value}` (`Null` for none);
    /// for EVENT it acks `{"status":"SUCCESS"}`.
    Ok(serde_json::Value),
    /// EVENT: ask DingTalk to deliver again later (`{"status":"LATER"}`). CALLBACK: a 500 ack.
    Later,
    /// The handler failed (error or panic): EVENT acks `LATER`, CALLBACK acks 500 with the text.
    Failed(String),
}

impl Outcome {
    /// `Ok(null)`: handled, nothing to answer.
    pub fn done() -> Self {
        Self::Ok(serde_json::Value::Null)
    }

    /// From a handler's result: `Ok(value)` answers `value`, an error fails with its text.
    pub fn from_result<E: fmt::Display>(result: Result<serde_json::Value, E>) -> Self {
        match result {
            Ok(v) => Self::Ok(v),
            Err(e) => Self::Failed(e.to_string()),
        }
    }

    /// From a serializable answer (card response, graph response).
    pub fn answer<T: serde::Serialize, E: fmt::Display>(result: Result<T, E>) -> Self {
        match result.map(|v| serde_json::to_value(v)) {
            Ok(Ok(v)) => Self::Ok(v),
            Ok(Err(e)) => Self::Failed(e.to_string()),
            Err(e) => Self::Failed(e.to_string()),
        }
    }
}

/// How an event handler asks for an event to be acked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventAck {
    /// Consumed (`{"status":"SUCCESS"}`).
    Success,
    /// Deliver again later (`{"status":"LATER"}`).
    Later,
}

impl<E: fmt::Display> From<Result<EventAck, E>> for Outcome {
    fn from(result: Result<EventAck, E>) -> Self {
        match result {
            Ok(EventAck::Success) => Self::done(),
            Ok(EventAck::Later) => Self::Later,
            Err(e) => Self::Failed(e.to_string()),
        }
    }
}

/// Something that happened to the session, to hand to the session with [`Session::handle_input`].
#[derive(Debug)]
pub enum Input<'a> {
    /// The response to an [`Output::Http`] request.
    HttpResponse {
        /// The request it answers.
        id: RequestId,
        /// Status, headers and body.
        response: http::Response<Vec<u8>>,
    },
    /// The [`Output::Http`] request could not be completed (DNS, TLS, refused, ...).
    HttpFailed {
        /// The request that failed.
        id: RequestId,
        /// Why, for the logs.
        reason: String,
    },
    /// The WebSocket handshake of an [`Output::Connect`] succeeded.
    Connected {
        /// The connection.
        conn: ConnId,
    },
    /// The WebSocket handshake of an [`Output::Connect`] failed.
    ConnectFailed {
        /// The connection.
        conn: ConnId,
        /// Why, for the logs.
        reason: String,
    },
    /// A text message arrived on a connection.
    Text {
        /// The connection it arrived on.
        conn: ConnId,
        /// The message.
        text: &'a str,
    },
    /// A WebSocket pong (or a ping, or any non-text frame) arrived: the peer is alive.
    Pong {
        /// The connection.
        conn: ConnId,
    },
    /// A connection ended, cleanly or not.
    Closed {
        /// The connection.
        conn: ConnId,
        /// Why, for the logs.
        reason: String,
    },
    /// The application finished a [`Delivery`]. Every delivery must be completed exactly once.
    Complete {
        /// The delivery.
        id: DeliveryId,
        /// What the handler made of it.
        outcome: Outcome,
    },
    /// Time passed (the instant of the last [`Output::Timeout`] was reached).
    Timeout,
    /// Stop gracefully: stop reading, let in-flight handlers finish, send their acks, close.
    Stop,
}

/// A frame handed to the application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// Pass this back in [`Input::Complete`].
    pub id: DeliveryId,
    /// The connection the frame arrived on.
    pub conn: ConnId,
    /// The frame (EVENT or CALLBACK).
    pub frame: Frame,
    /// The subscription it belongs to: the index of the handler to call (the session routed
    /// it; the application does not route again).
    pub route: Route,
    /// `true` when the frame was already acked ([`AckPolicy::Immediate`]); the outcome then only
    /// frees the handler slot.
    pub acked: bool,
}

/// Informational happenings, for logs and metrics. None of them needs an answer.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionEvent {
    /// A connection completed its handshake.
    Connected {
        /// The connection.
        conn: ConnId,
    },
    /// An open-connection attempt failed; the next one is scheduled.
    OpenFailed {
        /// What went wrong.
        error: OpenError,
    },
    /// A reconnect was scheduled after a failure.
    ReconnectScheduled {
        /// Delay before the next open request.
        after: Duration,
        /// How many consecutive failures led here (1 for the first).
        attempt: u32,
    },
    /// The server announced `disconnect`; a replacement is being opened while this one drains.
    Draining {
        /// The draining connection.
        conn: ConnId,
        /// The reason the server gave.
        reason: Option<String>,
    },
    /// A connection was lost or declared dead.
    ConnectionLost {
        /// The connection.
        conn: ConnId,
        /// Why.
        reason: String,
    },
    /// A frame could not be understood. `acked` says whether a 400 ack could be sent.
    FrameRejected {
        /// The connection.
        conn: ConnId,
        /// The parse error.
        error: FrameError,
        /// Whether a 400 ack was sent.
        acked: bool,
    },
    /// A frame of a topic nobody subscribed to; acked 404.
    UnknownTopic {
        /// The connection.
        conn: ConnId,
        /// The frame type.
        kind: FrameType,
        /// The topic.
        topic: String,
    },
    /// A duplicate `messageId`; the handler was not called again.
    Duplicate {
        /// The connection the copy arrived on.
        conn: ConnId,
        /// The duplicated id.
        message_id: String,
    },
    /// A handler did not finish within its ack timeout; a failure ack was sent.
    HandlerTimedOut {
        /// The delivery.
        id: DeliveryId,
    },
    /// The queue was over its hard limit: the frame was left unacked so DingTalk redelivers it.
    Shed {
        /// The shed frame's id.
        message_id: String,
    },
}

impl SessionEvent {
    /// Whether the event deserves a warning in the logs (lost connections, failed opens,
    /// rejected or shed frames, handler timeouts); the rest is informational.
    pub fn is_warning(&self) -> bool {
        matches!(
            self,
            Self::OpenFailed { .. }
                | Self::ConnectionLost { .. }
                | Self::FrameRejected { .. }
                | Self::HandlerTimedOut { .. }
                | Self::Shed { .. }
        )
    }
}

impl fmt::Display for SessionEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Connected { conn } => write!(f, "connected ({conn:?})"),
            Self::OpenFailed { error } => write!(f, "open-connection failed: {error}"),
            Self::ReconnectScheduled { after, attempt } => {
                write!(f, "reconnecting in {after:?} (attempt {attempt})")
            }
            Self::Draining { conn, reason } => {
                write!(
                    f,
                    "server rotates {conn:?} ({})",
                    reason.as_deref().unwrap_or("no reason")
                )
            }
            Self::ConnectionLost { conn, reason } => write!(f, "{conn:?} lost: {reason}"),
            Self::FrameRejected { conn, error, acked } => {
                write!(
                    f,
                    "frame on {conn:?} rejected ({error}); acked 400: {acked}"
                )
            }
            Self::UnknownTopic { conn, kind, topic } => {
                write!(
                    f,
                    "{kind} frame for unsubscribed topic `{topic}` on {conn:?}; acked 404"
                )
            }
            Self::Duplicate { conn, message_id } => {
                write!(
                    f,
                    "duplicate {message_id} on {conn:?} answered without the handler"
                )
            }
            Self::HandlerTimedOut { id } => write!(f, "handler of {id:?} timed out; failure acked"),
            Self::Shed { message_id } => write!(f, "{message_id} left unacked: queue full"),
        }
    }
}

/// What the session wants done. Drain with [`Session::poll_output`] until `Timeout` (or `Done`).
pub enum Output {
    /// Perform this HTTP request and report [`Input::HttpResponse`] or [`Input::HttpFailed`].
    Http {
        /// Echo this in the answer.
        id: RequestId,
        /// The request (its body holds the client secret: never log it).
        request: http::Request<Vec<u8>>,
    },
    /// Open a WebSocket to `request.uri()` and report [`Input::Connected`] or
    /// [`Input::ConnectFailed`].
    Connect {
        /// The new connection's id.
        conn: ConnId,
        /// The upgrade request (GET, URI with the one-use ticket).
        request: http::Request<()>,
    },
    /// Send a text message on a connection.
    Send {
        /// The connection (the one the acked frame came from).
        conn: ConnId,
        /// The text.
        text: String,
    },
    /// Send a WebSocket ping; report its pong as [`Input::Pong`].
    Ping {
        /// The connection.
        conn: ConnId,
    },
    /// Close the connection (after writing everything queued before this output).
    Close {
        /// The connection.
        conn: ConnId,
    },
    /// Stop reading from every connection (backpressure or stopping).
    PauseReading,
    /// Read again.
    ResumeReading,
    /// Run the application's handler; report [`Input::Complete`].
    Deliver(Delivery),
    /// Informational.
    Event(SessionEvent),
    /// A terminal error; the session winds down and then returns [`Output::Done`].
    Error(Error),
    /// Nothing more to do until this instant; then send [`Input::Timeout`].
    Timeout(Instant),
    /// The session has ended: return from the run loop.
    Done,
}

impl fmt::Debug for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // The open request's body carries the client secret: show only method and URI.
            Self::Http { id, request } => f
                .debug_struct("Http")
                .field("id", id)
                .field("method", request.method())
                .field("uri", request.uri())
                .field("body", &"<redacted>")
                .finish(),
            Self::Connect { conn, request } => f
                .debug_struct("Connect")
                .field("conn", conn)
                .field("uri", request.uri())
                .finish(),
            Self::Send { conn, text } => f
                .debug_struct("Send")
                .field("conn", conn)
                .field("text", text)
                .finish(),
            Self::Ping { conn } => f.debug_struct("Ping").field("conn", conn).finish(),
            Self::Close { conn } => f.debug_struct("Close").field("conn", conn).finish(),
            Self::PauseReading => f.write_str("PauseReading"),
            Self::ResumeReading => f.write_str("ResumeReading"),
            Self::Deliver(d) => f.debug_tuple("Deliver").field(d).finish(),
            Self::Event(e) => f.debug_tuple("Event").field(e).finish(),
            Self::Error(e) => f.debug_tuple("Error").field(e).finish(),
            Self::Timeout(t) => f.debug_tuple("Timeout").field(t).finish(),
            Self::Done => f.write_str("Done"),
        }
    }
}

/// Counters for observability.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Text frames received.
    pub frames_received: u64,
    /// Frames that could not be parsed.
    pub frames_rejected: u64,
    /// Duplicate message ids that did not reach a handler.
    pub duplicates: u64,
    /// Acks sent.
    pub acks_sent: u64,
    /// Acks not sent because their connection had already closed.
    pub acks_dropped: u64,
    /// Frames left unacked because the queue was over its hard limit.
    pub frames_shed: u64,
    /// Frames ignored because the session was stopping (left unacked for redelivery).
    pub frames_ignored: u64,
    /// Handler ack timeouts.
    pub handler_timeouts: u64,
    /// Open-connection requests sent.
    pub open_requests: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ConnState {
    Connecting { deadline: Instant },
    Open,
    Draining { deadline: Instant },
}

#[derive(Debug)]
struct Conn {
    id: ConnId,
    state: ConnState,
    last_rx: Instant,
    ping_deadline: Option<Instant>,
}

#[derive(Debug)]
struct InFlight {
    delivery: DeliveryId,
    conn: ConnId,
    kind: FrameType,
    route: Route,
    policy: AckPolicy,
    /// Connections owed an ack for this message id (the original and any duplicate copies).
    waiting: Vec<ConnId>,
    deadline: Option<Instant>,
    /// The frame until it is delivered.
    frame: Option<Frame>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Running,
    Stopping { deadline: Instant },
    Done,
}

/// Most duplicate copies that may wait for one in-flight message; more are left unacked.
const MAX_WAITERS: usize = 16;
/// Slack over `max_queued` for frames the adapter had already read when told to pause.
const QUEUE_SLACK: usize = 64;
/// Longest failure message copied into a 500 ack.
const MAX_ACK_MESSAGE: usize = 256;
const IDLE_WAKEUP: Duration = Duration::from_secs(3600);

/// The Stream-mode state machine. See the [crate docs](crate) for the loop contract.
pub struct Session {
    config: StreamConfig,
    /// The open-connection call (its body holds the client secret).
    open_call: OpenConnection,
    now: Instant,
    phase: Phase,
    out: VecDeque<Output>,
    next_id: u64,
    opening: Option<(RequestId, Instant)>,
    next_open_at: Option<Instant>,
    attempt: u32,
    /// The quick first reconnect was used since the last frame.
    quick_reconnect_used: bool,
    rng: fastrand::Rng,
    conns: Vec<Conn>,
    inflight: HashMap<Arc<str>, InFlight, FixedState>,
    by_delivery: HashMap<DeliveryId, Arc<str>, FixedState>,
    deadlines: BinaryHeap<Reverse<(Instant, DeliveryId)>>,
    queue: VecDeque<DeliveryId>,
    running: usize,
    reading_paused: bool,
    dedup: DedupCache,
    stats: Stats,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `open_call` holds the client secret and is left out.
        f.debug_struct("Session")
            .field("config", &self.config)
            .field("phase", &self.phase)
            .field("conns", &self.conns)
            .field("opening", &self.opening)
            .field("next_open_at", &self.next_open_at)
            .field("attempt", &self.attempt)
            .field("in_flight", &self.running)
            .field("queued", &self.queue.len())
            .field("reading_paused", &self.reading_paused)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl Session {
    /// Creates a session that will open its first connection at `now`.
    ///
    /// Fails with [`Error::InvalidConfig`] for empty or whitespace-padded credentials, an
    /// unusable gateway URL, or a SYSTEM subscription.
    pub fn new(config: StreamConfig, now: Instant) -> Result<Self, Error> {
        config
            .credentials
            .validate()
            .map_err(Error::InvalidConfig)?;
        let open_call = OpenConnection::new(
            &config.credentials,
            &config.subscriptions,
            &config.ua,
            config.local_ip.as_deref(),
        );
        // Built once here so that a request that cannot be built is a configuration error now,
        // not a failed open later.
        let probe = build_request(&open_call, &config.endpoints, None)
            .map_err(|e| Error::InvalidConfig(format!("gateway URL: {e}")))?;
        if !matches!(probe.uri().scheme_str(), Some("http" | "https")) {
            return Err(Error::InvalidConfig(
                "the gateway URL must be http(s)://host".into(),
            ));
        }
        if let Some(s) = config
            .subscriptions
            .iter()
            .find(|s| s.kind == FrameType::System)
        {
            return Err(Error::InvalidConfig(format!(
                "SYSTEM topics are handled by the session and cannot be subscribed (`{}`)",
                s.topic
            )));
        }
        if config.max_in_flight == 0 {
            return Err(Error::InvalidConfig(
                "max_in_flight must be at least 1".into(),
            ));
        }
        let seed = config.rng_seed;
        let dedup = DedupCache::with_seed(config.dedup_capacity, config.dedup_ttl, seed);
        let rng = fastrand::Rng::with_seed(seed);
        let mut session = Self {
            config,
            open_call,
            now,
            phase: Phase::Running,
            out: VecDeque::new(),
            next_id: 1,
            opening: None,
            next_open_at: Some(now),
            attempt: 0,
            quick_reconnect_used: false,
            rng,
            conns: Vec::new(),
            inflight: HashMap::with_hasher(FixedState::with_seed(seed)),
            by_delivery: HashMap::with_hasher(FixedState::with_seed(seed)),
            deadlines: BinaryHeap::new(),
            queue: VecDeque::new(),
            running: 0,
            reading_paused: false,
            dedup,
            stats: Stats::default(),
        };
        session.maybe_open();
        Ok(session)
    }

    // ---- getters -------------------------------------------------------------------------

    /// Counters since the session was created.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The configuration.
    pub fn config(&self) -> &StreamConfig {
        &self.config
    }

    /// Handler calls delivered and not yet completed.
    pub fn in_flight(&self) -> usize {
        self.running
    }

    /// Frames waiting for a handler slot.
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// Whether the session has ended ([`Output::Done`]).
    pub fn is_done(&self) -> bool {
        self.phase == Phase::Done
    }

    /// Connections the session considers alive (connecting, open or draining).
    pub fn connections(&self) -> Vec<ConnId> {
        self.conns.iter().map(|c| c.id).collect()
    }

    // ---- inputs --------------------------------------------------------------------------

    /// Feeds one input at time `now`. Afterwards drain [`Session::poll_output`].
    pub fn handle_input(&mut self, input: Input<'_>, now: Instant) {
        if now > self.now {
            self.now = now;
        }
        match input {
            Input::HttpResponse { id, response } => self.handle_http_response(id, response),
            Input::HttpFailed { id, reason } => {
                if self.take_opening(id) {
                    self.open_failed(OpenError::Transport(reason));
                }
            }
            Input::Connected { conn } => self.handle_connected(conn),
            Input::ConnectFailed { conn, reason } | Input::Closed { conn, reason } => {
                self.handle_closed(conn, reason)
            }
            Input::Text { conn, text } => self.handle_text(conn, text),
            Input::Pong { conn } => {
                if let Some(c) = self.conn_mut(conn) {
                    c.last_rx = now;
                    c.ping_deadline = None;
                }
            }
            Input::Complete { id, outcome } => self.handle_complete(id, outcome),
            Input::Timeout => {}
            Input::Stop => self.begin_stop(),
        }
        self.fire_timers();
        self.maybe_open();
        self.update_reading();
        self.maybe_finish_stop();
    }

    // ---- outputs -------------------------------------------------------------------------

    /// The next thing to do. Call until it returns [`Output::Timeout`] or [`Output::Done`].
    #[must_use]
    pub fn poll_output(&mut self) -> Output {
        if let Some(o) = self.out.pop_front() {
            return o;
        }
        if self.phase == Phase::Done {
            return Output::Done;
        }
        Output::Timeout(self.next_timeout())
    }

    fn next_timeout(&self) -> Instant {
        let mut t = self.now + IDLE_WAKEUP;
        let mut consider = |x: Instant| {
            if x < t {
                t = x;
            }
        };
        if self.opening.is_none() {
            if let Some(x) = self.next_open_at {
                consider(x);
            }
        }
        if let Some((_, d)) = self.opening {
            consider(d);
        }
        for c in &self.conns {
            match c.state {
                ConnState::Connecting { deadline } | ConnState::Draining { deadline } => {
                    consider(deadline)
                }
                ConnState::Open if !self.reading_paused => match c.ping_deadline {
                    Some(d) => consider(d),
                    None => consider(c.last_rx + self.config.keepalive_idle),
                },
                ConnState::Open => {}
            }
        }
        if let Some(Reverse((d, _))) = self.deadlines.peek() {
            consider(*d);
        }
        if let Phase::Stopping { deadline } = self.phase {
            consider(deadline);
        }
        t.max(self.now)
    }

    // ---- connection management ------------------------------------------------------------

    fn alloc_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    fn conn_mut(&mut self, id: ConnId) -> Option<&mut Conn> {
        self.conns.iter_mut().find(|c| c.id == id)
    }

    fn has_primary(&self) -> bool {
        self.conns
            .iter()
            .any(|c| !matches!(c.state, ConnState::Draining { .. }))
    }

    fn maybe_open(&mut self) {
        if self.phase != Phase::Running || self.opening.is_some() || self.has_primary() {
            return;
        }
        match self.next_open_at {
            Some(at) if at <= self.now => {}
            _ => return,
        }
        self.next_open_at = None;
        let request = match build_request(&self.open_call, &self.config.endpoints, None) {
            Ok(r) => r,
            Err(e) => {
                // Validated in `new`; kept as a failed open rather than a panic.
                self.open_failed(OpenError::InvalidResponse(e.to_string()));
                return;
            }
        };
        let id = RequestId(self.alloc_id());
        self.opening = Some((id, self.now + self.config.open_timeout));
        self.stats.open_requests += 1;
        self.out.push_back(Output::Http { id, request });
    }

    fn take_opening(&mut self, id: RequestId) -> bool {
        match self.opening {
            Some((current, _)) if current == id => {
                self.opening = None;
                true
            }
            _ => false,
        }
    }

    fn handle_http_response(&mut self, id: RequestId, response: http::Response<Vec<u8>>) {
        if !self.take_opening(id) || self.phase != Phase::Running {
            return;
        }
        let status = response.status().as_u16();
        if response.status().is_success() {
            let uri = parse_response(&self.open_call, response)
                .map_err(|e| OpenError::InvalidResponse(e.to_string()))
                .and_then(|t| connect_uri(&t.endpoint, &t.ticket, self.config.allow_insecure_ws));
            match uri {
                Ok(uri) => {
                    let conn = ConnId(self.alloc_id());
                    let mut request = http::Request::new(());
                    *request.uri_mut() = uri;
                    self.conns.push(Conn {
                        id: conn,
                        state: ConnState::Connecting {
                            deadline: self.now + self.config.connect_timeout,
                        },
                        last_rx: self.now,
                        ping_deadline: None,
                    });
                    self.out.push_back(Output::Connect { conn, request });
                }
                Err(e) => self.open_failed(e),
            }
            return;
        }
        let body = ErrorBody::parse(response.body());
        let auth_code = matches!(
            body.code.as_deref(),
            Some("authFailed" | "invalidClientIdOrSecret")
        );
        if status == 401 || auth_code {
            self.out.push_back(Output::Error(Error::AuthFailed {
                status,
                code: body.code,
                message: body.message,
                request_id: body.request_id,
            }));
            self.begin_stop();
        } else {
            self.open_failed(OpenError::Status {
                status,
                code: body.code,
                message: body.message,
                request_id: body.request_id,
            });
        }
    }

    fn open_failed(&mut self, error: OpenError) {
        self.out
            .push_back(Output::Event(SessionEvent::OpenFailed { error }));
        self.schedule_reconnect(false);
    }

    /// Schedules the next open request after a failure: `base · 2ⁿ + jitter`, capped. The
    /// first reconnect after a lost connection (`after_loss`) comes at once (a random delay up
    /// to `first_reconnect_max`); the backoff starts with the attempt after it.
    fn schedule_reconnect(&mut self, after_loss: bool) {
        if self.phase != Phase::Running
            || self.opening.is_some()
            || self.has_primary()
            || self.next_open_at.is_some()
        {
            return;
        }
        let delay = if after_loss && self.attempt == 0 {
            self.quick_reconnect_used = true;
            let max_ms =
                u64::try_from(self.config.first_reconnect_max.as_millis()).unwrap_or(u64::MAX);
            Duration::from_millis(self.rng.u64(0..=max_ms))
        } else {
            let exponent = self
                .attempt
                .saturating_sub(u32::from(self.quick_reconnect_used));
            self.backoff_delay(exponent)
        };
        self.attempt = self.attempt.saturating_add(1);
        self.next_open_at = Some(self.now + delay);
        self.out
            .push_back(Output::Event(SessionEvent::ReconnectScheduled {
                after: delay,
                attempt: self.attempt,
            }));
    }

    fn backoff_delay(&mut self, attempt: u32) -> Duration {
        let exp = self
            .config
            .backoff_base
            .saturating_mul(1u32 << attempt.min(16));
        let jitter_ms = u64::try_from(self.config.backoff_jitter.as_millis()).unwrap_or(u64::MAX);
        let jitter = Duration::from_millis(self.rng.u64(0..=jitter_ms));
        exp.saturating_add(jitter).min(self.config.backoff_max)
    }

    fn handle_connected(&mut self, conn: ConnId) {
        let running = self.phase == Phase::Running;
        let now = self.now;
        match self.conn_mut(conn) {
            Some(c) if matches!(c.state, ConnState::Connecting { .. }) && running => {
                c.state = ConnState::Open;
                c.last_rx = now;
                c.ping_deadline = None;
                self.out
                    .push_back(Output::Event(SessionEvent::Connected { conn }));
            }
            Some(_) => {}
            None => {
                // A handshake we gave up on (timed out, or stopping): close it.
                self.out.push_back(Output::Close { conn });
            }
        }
    }

    fn handle_closed(&mut self, conn: ConnId, reason: String) {
        let Some(pos) = self.conns.iter().position(|c| c.id == conn) else {
            return;
        };
        let c = self.conns.remove(pos);
        if matches!(c.state, ConnState::Draining { .. }) {
            return;
        }
        self.out
            .push_back(Output::Event(SessionEvent::ConnectionLost { conn, reason }));
        self.schedule_reconnect(true);
    }

    /// Closes a connection the session gave up on and schedules a replacement.
    fn drop_conn(&mut self, conn: ConnId, reason: &str) {
        if let Some(pos) = self.conns.iter().position(|c| c.id == conn) {
            let c = self.conns.remove(pos);
            self.out.push_back(Output::Close { conn });
            if !matches!(c.state, ConnState::Draining { .. }) {
                self.out
                    .push_back(Output::Event(SessionEvent::ConnectionLost {
                        conn,
                        reason: reason.to_owned(),
                    }));
                self.schedule_reconnect(true);
            }
        }
    }

    // ---- frames --------------------------------------------------------------------------

    fn handle_text(&mut self, conn: ConnId, text: &str) {
        let now = self.now;
        let Some(c) = self.conn_mut(conn) else {
            // A frame from a connection we already closed: nobody can receive its ack.
            return;
        };
        c.last_rx = now;
        c.ping_deadline = None;
        if matches!(c.state, ConnState::Connecting { .. }) {
            // A frame proves the handshake completed even if `Connected` was not reported.
            c.state = ConnState::Open;
        }
        self.stats.frames_received += 1;
        match Frame::parse(text, &self.config.limits) {
            Ok(frame) => {
                self.attempt = 0;
                self.quick_reconnect_used = false;
                match frame.kind {
                    FrameType::System => self.handle_system(conn, frame),
                    FrameType::Event | FrameType::Callback => self.handle_data(conn, frame),
                }
            }
            Err(error) => {
                self.stats.frames_rejected += 1;
                let id = salvage_message_id(text, &self.config.limits);
                let acked = id.is_some();
                if let Some(id) = id {
                    let ack = Ack::new(status::BAD_REQUEST, &id, "bad request", "").to_text();
                    self.send(conn, ack);
                }
                self.out
                    .push_back(Output::Event(SessionEvent::FrameRejected {
                        conn,
                        error,
                        acked,
                    }));
            }
        }
    }

    fn handle_system(&mut self, conn: ConnId, frame: Frame) {
        match frame.topic() {
            topic::PING => {
                let ack = Ack::echo(status::OK, &frame, "OK").to_text();
                self.send(conn, ack);
            }
            topic::DISCONNECT => {
                let ack = Ack::echo(status::OK, &frame, "OK").to_text();
                self.send(conn, ack);
                let deadline = self.now + self.config.drain_timeout;
                let Some(c) = self.conn_mut(conn) else { return };
                if matches!(c.state, ConnState::Draining { .. }) {
                    return;
                }
                c.state = ConnState::Draining { deadline };
                c.ping_deadline = None;
                #[derive(Deserialize)]
                struct Reason {
                    reason: Option<String>,
                }
                let reason = frame.data_json::<Reason>().ok().and_then(|r| r.reason);
                self.out
                    .push_back(Output::Event(SessionEvent::Draining { conn, reason }));
                // Make-before-break: open the replacement now, without backoff.
                if self.phase == Phase::Running && self.opening.is_none() {
                    self.next_open_at = Some(self.now);
                }
            }
            other => {
                let topic = other.to_owned();
                let ack =
                    Ack::new(status::NOT_FOUND, frame.message_id(), "unknown topic", "").to_text();
                self.send(conn, ack);
                self.out
                    .push_back(Output::Event(SessionEvent::UnknownTopic {
                        conn,
                        kind: FrameType::System,
                        topic,
                    }));
            }
        }
    }

    /// The frame's route and ack policy: the one place a frame is routed.
    fn route_for(&self, frame: &Frame) -> Option<(Route, AckPolicy)> {
        let route = self.config.route(frame.kind, frame.topic())?;
        let policy = self.config.subscriptions.get(route.0)?.ack;
        Some((route, policy))
    }

    fn handle_data(&mut self, conn: ConnId, frame: Frame) {
        if self.phase != Phase::Running {
            // Not acked: DingTalk redelivers it to a live client.
            self.stats.frames_ignored += 1;
            return;
        }
        let now = self.now;
        if let Some(ack) = self.dedup.get(frame.message_id(), now) {
            self.stats.duplicates += 1;
            let text = match ack {
                CachedAck::ResponseNull => Ack::response_null_text(frame.message_id()),
                CachedAck::Text(t) => t.to_string(),
            };
            self.send(conn, text);
            self.out.push_back(Output::Event(SessionEvent::Duplicate {
                conn,
                message_id: frame.headers.message_id,
            }));
            return;
        }
        if let Some(f) = self.inflight.get_mut(frame.message_id()) {
            self.stats.duplicates += 1;
            if f.waiting.len() < MAX_WAITERS {
                f.waiting.push(conn);
                if f.deadline.is_none() {
                    if let AckPolicy::AfterHandler { timeout } = f.policy {
                        let d = now + timeout;
                        f.deadline = Some(d);
                        self.deadlines.push(Reverse((d, f.delivery)));
                    }
                }
            }
            self.out.push_back(Output::Event(SessionEvent::Duplicate {
                conn,
                message_id: frame.headers.message_id,
            }));
            return;
        }
        let Some((route, policy)) = self.route_for(&frame) else {
            let ack =
                Ack::new(status::NOT_FOUND, frame.message_id(), "topic not found", "").to_text();
            self.send(conn, ack);
            self.out
                .push_back(Output::Event(SessionEvent::UnknownTopic {
                    conn,
                    kind: frame.kind,
                    topic: frame.headers.topic,
                }));
            return;
        };
        if self.running >= self.config.max_in_flight
            && self.queue.len() >= self.config.max_queued.saturating_add(QUEUE_SLACK)
        {
            self.stats.frames_shed += 1;
            self.out.push_back(Output::Event(SessionEvent::Shed {
                message_id: frame.headers.message_id,
            }));
            return;
        }
        let delivery = DeliveryId(self.alloc_id());
        let message_id: Arc<str> = Arc::from(frame.message_id());
        let mut waiting = Vec::new();
        let mut deadline = None;
        match policy {
            AckPolicy::Immediate => {
                let ack = Ack::response_null_text(&message_id);
                self.send(conn, ack);
                self.dedup
                    .insert(message_id.clone(), CachedAck::ResponseNull, now);
            }
            AckPolicy::AfterHandler { timeout } => {
                waiting.push(conn);
                let d = now + timeout;
                deadline = Some(d);
                self.deadlines.push(Reverse((d, delivery)));
            }
        }
        let kind = frame.kind;
        self.inflight.insert(
            message_id.clone(),
            InFlight {
                delivery,
                conn,
                kind,
                route,
                policy,
                waiting,
                deadline,
                frame: Some(frame),
            },
        );
        self.by_delivery.insert(delivery, message_id);
        if self.running < self.config.max_in_flight && self.queue.is_empty() {
            self.deliver(delivery);
        } else {
            self.queue.push_back(delivery);
        }
    }

    fn deliver(&mut self, id: DeliveryId) {
        let Some(mid) = self.by_delivery.get(&id) else {
            return;
        };
        let Some(f) = self.inflight.get_mut(mid) else {
            return;
        };
        let Some(frame) = f.frame.take() else {
            return;
        };
        self.running += 1;
        self.out.push_back(Output::Deliver(Delivery {
            id,
            conn: f.conn,
            frame,
            route: f.route,
            acked: f.policy == AckPolicy::Immediate,
        }));
    }

    fn pump_queue(&mut self) {
        while self.running < self.config.max_in_flight {
            let Some(id) = self.queue.pop_front() else {
                break;
            };
            self.deliver(id);
        }
    }

    fn handle_complete(&mut self, id: DeliveryId, outcome: Outcome) {
        let Some(mid) = self.by_delivery.get(&id).cloned() else {
            return;
        };
        match self.inflight.get(&mid) {
            // Completing a delivery that was never handed out is an adapter bug; ignore it.
            Some(f) if f.frame.is_some() => return,
            None => return,
            Some(_) => {}
        }
        self.by_delivery.remove(&id);
        let Some(f) = self.inflight.remove(&mid) else {
            return;
        };
        self.running = self.running.saturating_sub(1);
        if let AckPolicy::AfterHandler { .. } = f.policy {
            let (ack, success) = outcome_ack(f.kind, &mid, &outcome);
            if success {
                // Only successes are remembered: a failed message must reach the handler again
                // when DingTalk redelivers it.
                self.dedup
                    .insert(mid, CachedAck::Text(Arc::from(ack.as_str())), self.now);
            }
            self.send_all(&f.waiting, ack);
        }
        self.pump_queue();
    }

    /// Sends `text` to every connection in `conns`, copying it only for all but the last.
    fn send_all(&mut self, conns: &[ConnId], text: String) {
        if let Some((last, rest)) = conns.split_last() {
            for conn in rest {
                self.send(*conn, text.clone());
            }
            self.send(*last, text);
        }
    }

    fn send(&mut self, conn: ConnId, text: String) {
        let alive = self
            .conns
            .iter()
            .any(|c| c.id == conn && !matches!(c.state, ConnState::Connecting { .. }));
        if alive {
            self.stats.acks_sent += 1;
            self.out.push_back(Output::Send { conn, text });
        } else {
            self.stats.acks_dropped += 1;
        }
    }

    // ---- timers --------------------------------------------------------------------------

    fn fire_timers(&mut self) {
        let now = self.now;
        if let Some((_, deadline)) = self.opening {
            if deadline <= now {
                self.opening = None;
                self.open_failed(OpenError::Timeout);
            }
        }
        let mut dead: Vec<(ConnId, &'static str)> = Vec::new();
        let mut pings = Vec::new();
        for c in &mut self.conns {
            match c.state {
                ConnState::Connecting { deadline } if deadline <= now => {
                    dead.push((c.id, "WebSocket handshake timed out"))
                }
                ConnState::Draining { deadline } if deadline <= now => {
                    dead.push((c.id, "drain deadline passed"))
                }
                ConnState::Open if !self.reading_paused => match c.ping_deadline {
                    Some(d) if d <= now => {
                        dead.push((c.id, "no pong or frame after keepalive ping"))
                    }
                    None if c.last_rx + self.config.keepalive_idle <= now => {
                        c.ping_deadline = Some(now + self.config.keepalive_timeout);
                        pings.push(c.id);
                    }
                    _ => {}
                },
                _ => {}
            }
        }
        for conn in pings {
            self.out.push_back(Output::Ping { conn });
        }
        for (conn, reason) in dead {
            self.drop_conn(conn, reason);
        }
        while let Some(Reverse((d, id))) = self.deadlines.peek().copied() {
            if d > now {
                break;
            }
            self.deadlines.pop();
            self.ack_timeout(id, d);
        }
        if let Phase::Stopping { deadline } = self.phase {
            if deadline <= now {
                self.finish_stop();
            }
        }
    }

    fn ack_timeout(&mut self, id: DeliveryId, at: Instant) {
        let Some(mid) = self.by_delivery.get(&id).cloned() else {
            return;
        };
        let Some(f) = self.inflight.get_mut(&mid) else {
            return;
        };
        if f.deadline != Some(at) {
            return;
        }
        f.deadline = None;
        let waiting = std::mem::take(&mut f.waiting);
        let kind = f.kind;
        self.stats.handler_timeouts += 1;
        let (ack, _) = outcome_ack(kind, &mid, &Outcome::Failed("handler timed out".into()));
        self.send_all(&waiting, ack);
        self.out
            .push_back(Output::Event(SessionEvent::HandlerTimedOut { id }));
    }

    // ---- backpressure and stop -----------------------------------------------------------

    fn update_reading(&mut self) {
        if self.phase == Phase::Done {
            return;
        }
        let stopping = matches!(self.phase, Phase::Stopping { .. });
        let busy = self.running >= self.config.max_in_flight;
        let want_pause = stopping
            || if self.reading_paused {
                busy && self.queue.len() > self.config.max_queued / 2
            } else {
                busy && self.queue.len() >= self.config.max_queued
            };
        if want_pause && !self.reading_paused {
            self.reading_paused = true;
            self.out.push_back(Output::PauseReading);
        } else if !want_pause && self.reading_paused {
            self.reading_paused = false;
            let now = self.now;
            for c in &mut self.conns {
                // Idle time is measured from when reading resumed.
                c.last_rx = now;
                c.ping_deadline = None;
            }
            self.out.push_back(Output::ResumeReading);
        }
    }

    fn begin_stop(&mut self) {
        if self.phase != Phase::Running {
            return;
        }
        self.phase = Phase::Stopping {
            deadline: self.now + self.config.stop_timeout,
        };
        self.next_open_at = None;
        self.opening = None;
        let connecting: Vec<ConnId> = self
            .conns
            .iter()
            .filter(|c| matches!(c.state, ConnState::Connecting { .. }))
            .map(|c| c.id)
            .collect();
        for conn in connecting {
            self.conns.retain(|c| c.id != conn);
            self.out.push_back(Output::Close { conn });
        }
        // Queued frames that were not acked yet are dropped unacked: DingTalk redelivers them.
        // Immediately-acked ones stay queued: they must still reach their handler.
        let queue = std::mem::take(&mut self.queue);
        for id in queue {
            let keep = self
                .by_delivery
                .get(&id)
                .and_then(|m| self.inflight.get(m))
                .is_some_and(|f| f.policy == AckPolicy::Immediate);
            if keep {
                self.queue.push_back(id);
            } else if let Some(mid) = self.by_delivery.remove(&id) {
                self.inflight.remove(&mid);
                self.stats.frames_ignored += 1;
            }
        }
    }

    fn maybe_finish_stop(&mut self) {
        if matches!(self.phase, Phase::Stopping { .. })
            && self.running == 0
            && self.queue.is_empty()
        {
            self.finish_stop();
        }
    }

    fn finish_stop(&mut self) {
        // Whatever is still running gets the failure ack it would get on timeout.
        let pending: Vec<DeliveryId> = self.inflight.values().map(|f| f.delivery).collect();
        for id in pending {
            if let Some(mid) = self.by_delivery.get(&id).cloned() {
                if let Some(f) = self.inflight.get_mut(&mid) {
                    let waiting = std::mem::take(&mut f.waiting);
                    let (ack, _) =
                        outcome_ack(f.kind, &mid, &Outcome::Failed("client stopping".into()));
                    for conn in waiting {
                        self.send(conn, ack.clone());
                    }
                }
            }
        }
        for c in std::mem::take(&mut self.conns) {
            self.out.push_back(Output::Close { conn: c.id });
        }
        self.inflight.clear();
        self.by_delivery.clear();
        self.deadlines.clear();
        self.queue.clear();
        self.phase = Phase::Done;
    }
}

const RESPONSE_NULL: &str = r#"{"response":null}"#;

/// The ack text for an outcome, and whether it is a success worth remembering.
fn outcome_ack(kind: FrameType, message_id: &str, outcome: &Outcome) -> (String, bool) {
    match (kind, outcome) {
        (FrameType::Event, Outcome::Ok(_)) => (
            Ack::new(
                status::OK,
                message_id,
                "OK",
                r#"{"status":"SUCCESS","message":"success"}"#,
            )
            .to_text(),
            true,
        ),
        (FrameType::Event, Outcome::Later) => (
            Ack::new(
                status::OK,
                message_id,
                "OK",
                r#"{"status":"LATER","message":"later"}"#,
            )
            .to_text(),
            false,
        ),
        (FrameType::Event, Outcome::Failed(why)) => {
            let data = serde_json::json!({"status": "LATER", "message": truncate(why)}).to_string();
            (
                Ack::new(status::OK, message_id, "OK", &data).to_text(),
                false,
            )
        }
        (_, Outcome::Ok(value)) => {
            let data = serde_json::json!({ "response": value }).to_string();
            (
                Ack::new(status::OK, message_id, "OK", &data).to_text(),
                true,
            )
        }
        (_, Outcome::Later) => (
            Ack::new(status::INTERNAL_ERROR, message_id, "later", RESPONSE_NULL).to_text(),
            false,
        ),
        (_, Outcome::Failed(why)) => (
            Ack::new(
                status::INTERNAL_ERROR,
                message_id,
                truncate(why),
                RESPONSE_NULL,
            )
            .to_text(),
            false,
        ),
    }
}

fn truncate(s: &str) -> &str {
    if s.len() <= MAX_ACK_MESSAGE {
        return s;
    }
    let mut end = MAX_ACK_MESSAGE;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// `endpoint` plus the `ticket` query parameter, escaped, joined with `?` or `&`.
pub fn connect_uri(
    endpoint: &str,
    ticket: &str,
    allow_insecure: bool,
) -> Result<http::Uri, OpenError> {
    let endpoint = endpoint.trim();
    if endpoint.contains('#') {
        return Err(OpenError::InvalidResponse("endpoint has a fragment".into()));
    }
    let parsed: http::Uri = endpoint
        .parse()
        .map_err(|e| OpenError::InvalidResponse(format!("endpoint `{endpoint}`: {e}")))?;
    match parsed.scheme_str() {
        Some("wss") => {}
        Some("ws") if allow_insecure => {}
        other => {
            return Err(OpenError::InvalidResponse(format!(
                "endpoint scheme {other:?} is not allowed"
            )));
        }
    }
    if parsed.authority().is_none() {
        return Err(OpenError::InvalidResponse("endpoint has no host".into()));
    }
    let escaped: String = form_urlencoded::byte_serialize(ticket.as_bytes()).collect();
    let sep = match parsed.query() {
        None if endpoint.ends_with('?') => "",
        None => "?",
        Some(q) if q.is_empty() || endpoint.ends_with('&') => "",
        Some(_) => "&",
    };
    format!("{endpoint}{sep}ticket={escaped}")
        .parse()
        .map_err(|e| OpenError::InvalidResponse(format!("endpoint with ticket: {e}")))
}

/// The api-style error body `{code, message, requestid}`; every field optional.
#[derive(Debug, Default, Deserialize)]
struct ErrorBody {
    code: Option<serde_json::Value>,
    message: Option<String>,
    requestid: Option<String>,
    #[serde(rename = "requestId")]
    request_id_alt: Option<String>,
}

struct ParsedErrorBody {
    code: Option<String>,
    message: Option<String>,
    request_id: Option<String>,
}

impl ErrorBody {
    fn parse(body: &[u8]) -> ParsedErrorBody {
        let b: Self = serde_json::from_slice(body).unwrap_or_default();
        let code = match b.code {
            Some(serde_json::Value::String(s)) => Some(s),
            Some(serde_json::Value::Number(n)) => Some(n.to_string()),
            _ => None,
        };
        ParsedErrorBody {
            code,
            message: b.message,
            request_id: b.requestid.or(b.request_id_alt),
        }
    }
}
