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
//!
//! The state machine is one type, [`Session`], whose work is split by job:
//!
//! | module | job |
//! |---|---|
//! | `types` | the loop's vocabulary: [`Input`], [`Output`], [`Delivery`], [`Outcome`], ids |
//! | `events` | [`SessionEvent`] and [`Stats`], for logs and metrics |
//! | `connections` | open requests, handshakes, reconnect and backoff, lost connections |
//! | `frames` | reading a frame: SYSTEM frames, routing, dedup, in-flight copies |
//! | `acks` | handing frames to handlers, completing them, writing acks |
//! | `timers` | keepalive pings, dead connections, ack and drain deadlines |
//! | `lifecycle` | backpressure (pause/resume reading) and the graceful stop |

mod acks;
mod connections;
mod events;
mod frames;
mod lifecycle;
mod timers;
mod types;

pub use connections::connect_uri;
pub use events::{ConnPhase, ConnStats, SessionEvent, Stats};
pub use types::{ConnId, Delivery, DeliveryId, EventAck, Input, Outcome, Output, RequestId};

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
use crate::frame::{Ack, Frame, FrameError, FrameType, Interner, salvage_message_id, status};
use crate::topic::{self, AckPolicy};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ConnState {
    Connecting { deadline: Instant },
    Open,
    Draining { deadline: Instant },
}

#[derive(Debug)]
struct Conn {
    id: ConnId,
    /// Which of the app's `connections` this one serves (its replacement takes the same slot).
    slot: usize,
    state: ConnState,
    /// Text frames read from it.
    frames: u64,
    /// Acks and pongs written to it.
    acks: u64,
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
    /// When the handler call is cancelled: set when it is handed out, so `None` means still
    /// queued. (A queued frame waits in [`Session::queue`], not here: the map's slots stay
    /// small however many frames wait.)
    cancel_at: Option<Instant>,
}

/// A frame waiting for a handler slot. The frame is boxed: the queue's buffer keeps the
/// capacity of its longest burst for the session's life (576 frames by default, a 1 024-slot
/// buffer), which is 16 KiB of pointers instead of ~340 KiB of frames inline.
type Queued = (DeliveryId, Box<Frame>);

/// What a deadline in [`Session::deadlines`] is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Deadline {
    /// The ack owed after the handler ([`AckPolicy::AfterHandler`]'s timeout).
    Ack,
    /// The handler timeout.
    Cancel,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Running,
    Stopping { deadline: Instant },
    Done,
}

/// One of the app's `connections`: its own open request, backoff and quick-reconnect budget.
/// A slot holds at most one connection that is not draining.
#[derive(Debug, Clone)]
struct Slot {
    opening: Option<(RequestId, Instant)>,
    next_open_at: Option<Instant>,
    attempt: u32,
    /// The quick first reconnect was used since the slot's last frame.
    quick_reconnect_used: bool,
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
    slots: Vec<Slot>,
    rng: fastrand::Rng,
    conns: Vec<Conn>,
    inflight: HashMap<Arc<str>, InFlight, FixedState>,
    by_delivery: HashMap<DeliveryId, Arc<str>, FixedState>,
    /// Ack deadlines and handler timeouts of deliveries; entries of finished deliveries are
    /// skipped when they come up, and swept when they outnumber the live ones.
    deadlines: BinaryHeap<Reverse<(Instant, DeliveryId, Deadline)>>,
    queue: VecDeque<Queued>,
    running: usize,
    reading_paused: bool,
    dedup: DedupCache,
    /// `appId` / `connectionId` values shared between frames.
    interner: Interner,
    stats: Stats,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `open_call` holds the client secret and is left out.
        f.debug_struct("Session")
            .field("config", &self.config)
            .field("phase", &self.phase)
            .field("conns", &self.conns)
            .field("slots", &self.slots)
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
        if config.connections == 0 || config.connections > crate::config::MAX_CONNECTIONS {
            return Err(Error::InvalidConfig(format!(
                "connections must be between 1 and {}",
                crate::config::MAX_CONNECTIONS
            )));
        }
        if config.max_in_flight == 0 {
            return Err(Error::InvalidConfig(
                "max_in_flight must be at least 1".into(),
            ));
        }
        let seed = config.rng_seed;
        let dedup = DedupCache::with_seed(config.dedup_capacity, config.dedup_ttl, seed)
            .with_max_bytes(config.dedup_max_bytes);
        let rng = fastrand::Rng::with_seed(seed);
        // Every slot opens at once; their connections share the dedup cache and the in-flight
        // table, so a frame redelivered to a sibling connection reaches its handler once.
        let slots = vec![
            Slot {
                opening: None,
                next_open_at: Some(now),
                attempt: 0,
                quick_reconnect_used: false,
            };
            config.connections
        ];
        let mut session = Self {
            config,
            open_call,
            now,
            phase: Phase::Running,
            out: VecDeque::new(),
            next_id: 1,
            slots,
            rng,
            conns: Vec::new(),
            inflight: HashMap::with_hasher(FixedState::with_seed(seed)),
            by_delivery: HashMap::with_hasher(FixedState::with_seed(seed)),
            deadlines: BinaryHeap::new(),
            queue: VecDeque::new(),
            running: 0,
            reading_paused: false,
            dedup,
            interner: Interner::default(),
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

    /// Per-connection counters of the connections alive now, in the order they were opened.
    pub fn connection_stats(&self) -> Vec<ConnStats> {
        self.conns
            .iter()
            .map(|c| ConnStats {
                conn: c.id,
                slot: c.slot,
                state: match c.state {
                    ConnState::Connecting { .. } => ConnPhase::Connecting,
                    ConnState::Open => ConnPhase::Open,
                    ConnState::Draining { .. } => ConnPhase::Draining,
                },
                frames_received: c.frames,
                acks_sent: c.acks,
            })
            .collect()
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
                if let Some(slot) = self.take_opening(id) {
                    self.open_failed(slot, OpenError::Transport(reason));
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
        let mut t = later(self.now, IDLE_WAKEUP);
        let mut consider = |x: Instant| {
            if x < t {
                t = x;
            }
        };
        for slot in &self.slots {
            match (slot.opening, slot.next_open_at) {
                (Some((_, d)), _) | (None, Some(d)) => consider(d),
                (None, None) => {}
            }
        }
        for c in &self.conns {
            match c.state {
                ConnState::Connecting { deadline } | ConnState::Draining { deadline } => {
                    consider(deadline)
                }
                ConnState::Open if !self.reading_paused => match c.ping_deadline {
                    Some(d) => consider(d),
                    None => consider(later(c.last_rx, self.config.keepalive_idle)),
                },
                ConnState::Open => {}
            }
        }
        if let Some(Reverse((d, _, _))) = self.deadlines.peek() {
            consider(*d);
        }
        if let Phase::Stopping { deadline } = self.phase {
            consider(deadline);
        }
        t.max(self.now)
    }
    pub(super) fn alloc_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }
}

/// `now + d`, saturating: durations come from the user's configuration (and `Duration::MAX`-like
/// values must not panic); past the clock's range the deadline is a day away (or, failing that,
/// now).
pub(crate) fn later(now: Instant, d: Duration) -> Instant {
    now.checked_add(d)
        .or_else(|| now.checked_add(Duration::from_secs(86_400)))
        .unwrap_or(now)
}

impl Session {
    /// Deadline entries kept (live and not yet swept): for tests of the bound.
    #[doc(hidden)]
    pub fn deadline_entries(&self) -> usize {
        self.deadlines.len()
    }

    /// Adds a delivery deadline; sweeps entries of finished deliveries once they outnumber the
    /// live ones, so the heap stays bounded by what is in flight.
    fn push_deadline(&mut self, at: Instant, id: DeliveryId, kind: Deadline) {
        self.deadlines.push(Reverse((at, id, kind)));
        if self.deadlines.len() > 2 * self.by_delivery.len() + 64 {
            let live = &self.by_delivery;
            self.deadlines
                .retain(|Reverse((_, id, _))| live.contains_key(id));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Up to `max_in_flight + max_queued` (576 by default) entries live in the in-flight map
    /// when handlers fall behind; its slots must not carry the frame (a ~320-byte `Frame` inline
    /// made the map 2.6 MB under load), which waits in the queue instead.
    #[test]
    fn an_in_flight_slot_stays_small() {
        let slot = std::mem::size_of::<(Arc<str>, InFlight)>();
        assert!(
            slot <= 128,
            "an in-flight slot is {slot} bytes (a frame inline?)"
        );
        assert!(
            std::mem::size_of::<Frame>() > 128,
            "the test would prove nothing"
        );
        // The same for the queue, whose buffer never shrinks after a burst.
        let queued = std::mem::size_of::<Queued>();
        assert!(
            queued <= 16,
            "a queue slot is {queued} bytes (a frame inline?)"
        );
    }
}
