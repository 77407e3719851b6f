//! Lifecycle hooks, connection state and metrics: what the driver tells the application about
//! the session, written once for every adapter.
//!
//! # Metrics
//!
//! Through the [`metrics`] facade, so any exporter works (Prometheus, StatsD, OpenTelemetry...);
//! with no recorder installed they cost a no-op call. Every metric carries the `app` label (the
//! client id), so several apps in one process stay apart.
//!
//! | name | kind | labels | what |
//! |---|---|---|---|
//! | `dingtalk_frames_total` | counter | `app`, `topic` | frames handed to a handler |
//! | `dingtalk_handler_seconds` | histogram | `app`, `topic` | handler call duration |
//! | `dingtalk_handler_outcomes_total` | counter | `app`, `topic`, `outcome` (`ok`, `later`, `failed`, `cancelled`) | how handler calls ended |
//! | `dingtalk_duplicates_total` | counter | `app` | duplicate `messageId`s not handed to a handler |
//! | `dingtalk_ai_cards_total` | counter | `app`, `outcome` (`finished`, `failed`, `fell_back`, `abandoned`) | how AI cards ended |
//! | `dingtalk_frames_rejected_total` | counter | `app` | frames that could not be parsed |
//! | `dingtalk_reconnects_total` | counter | `app`, `reason` (`lost`, `draining`, `open_failed`) | why a new connection was opened |
//! | `dingtalk_connections` | gauge | `app` | connections open (receiving frames) |
//! | `dingtalk_api_calls_total` | counter | `app`, `endpoint`, `result` (`ok` or the error code) | OpenAPI calls: the usage counter |
//!
//! Each delivery runs in a `tracing` span `dingtalk.delivery` (level debug) with the fields
//! `topic` and `message_id`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use dingtalk_core::error::OpenError;
use dingtalk_core::{ConnId, Outcome, SessionEvent};
use metrics::{Counter, Gauge, Histogram};

/// A change in the client's connections, passed to the hook registered with
/// [`ClientBuilder::on_lifecycle`](crate::ClientBuilder::on_lifecycle).
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifecycle<'a> {
    /// A connection completed its handshake and receives frames; `open` are open now.
    Connected {
        /// The connection.
        conn: ConnId,
        /// Connections open now.
        open: usize,
    },
    /// DingTalk asked a connection to go (`disconnect`); its replacement is being opened.
    Draining {
        /// The connection.
        conn: ConnId,
        /// The reason DingTalk gave.
        reason: Option<&'a str>,
    },
    /// A connection was lost or declared dead; `open` are still open.
    Disconnected {
        /// The connection.
        conn: ConnId,
        /// Why.
        reason: &'a str,
        /// Connections still open.
        open: usize,
    },
    /// An attempt to open a connection failed.
    OpenFailed {
        /// What went wrong.
        error: &'a OpenError,
    },
    /// The next connection attempt is scheduled.
    Reconnecting {
        /// In how long.
        after: Duration,
        /// How many consecutive failures led here.
        attempt: u32,
    },
    /// `run` is returning: every connection is closed.
    Stopped,
}

/// A lifecycle hook. Called on the driver's task: it must return quickly (spawn or send
/// anything slow elsewhere).
pub type LifecycleHook = Arc<dyn Fn(&Lifecycle<'_>) + Send + Sync>;

/// Calls `hook`; a panic in it is logged and contained (the session goes on).
pub(crate) fn call_hook(hook: &LifecycleHook, change: &Lifecycle<'_>) {
    let call = std::panic::AssertUnwindSafe(|| hook(change));
    if std::panic::catch_unwind(call).is_err() {
        tracing::error!("the lifecycle hook panicked; the client goes on");
    }
}

/// Whether the client is connected, shared with [`Client::is_connected`] and its waiters.
#[derive(Debug, Default)]
pub(crate) struct Presence {
    open: AtomicUsize,
    /// The last run has ended (until the next starts).
    ended: AtomicBool,
    changed: event_listener::Event,
}

impl Presence {
    pub(crate) fn open(&self) -> usize {
        self.open.load(Ordering::SeqCst)
    }

    pub(crate) fn set_open(&self, open: usize) {
        self.open.store(open, Ordering::SeqCst);
        self.changed.notify(usize::MAX);
    }

    /// A run starts.
    pub(crate) fn start(&self) {
        self.ended.store(false, Ordering::SeqCst);
        self.changed.notify(usize::MAX);
    }

    /// The run ended: nothing is open.
    pub(crate) fn end(&self) {
        self.open.store(0, Ordering::SeqCst);
        self.ended.store(true, Ordering::SeqCst);
        self.changed.notify(usize::MAX);
    }

    /// Resolves once a connection is open (`true`) or the run has ended without one
    /// (`false`). Cancellation safe.
    pub(crate) async fn connected(&self) -> bool {
        loop {
            let listener = self.changed.listen();
            if self.open() > 0 {
                return true;
            }
            if self.ended.load(Ordering::SeqCst) {
                return false;
            }
            listener.await;
        }
    }
}

/// The metric handles of one route (topic), registered once.
struct RouteMetrics {
    frames: Counter,
    seconds: Histogram,
    ok: Counter,
    later: Counter,
    failed: Counter,
    cancelled: Counter,
}

/// Every metric handle of a run, registered once so a frame costs no label allocation.
pub(crate) struct Metrics {
    routes: Vec<RouteMetrics>,
    duplicates: Counter,
    rejected: Counter,
    lost: Counter,
    draining: Counter,
    open_failed: Counter,
    connections: Gauge,
}

impl Metrics {
    pub(crate) fn new(app: &str, topics: impl Iterator<Item = String>) -> Self {
        let app = app.to_owned();
        let routes = topics
            .map(|topic| {
                let outcome = |o: &'static str| {
                    metrics::counter!("dingtalk_handler_outcomes_total", "app" => app.clone(), "topic" => topic.clone(), "outcome" => o)
                };
                RouteMetrics {
                    frames: metrics::counter!("dingtalk_frames_total", "app" => app.clone(), "topic" => topic.clone()),
                    seconds: metrics::histogram!("dingtalk_handler_seconds", "app" => app.clone(), "topic" => topic.clone()),
                    ok: outcome("ok"),
                    later: outcome("later"),
                    failed: outcome("failed"),
                    cancelled: outcome("cancelled"),
                }
            })
            .collect();
        let reconnect = |reason: &'static str| metrics::counter!("dingtalk_reconnects_total", "app" => app.clone(), "reason" => reason);
        Self {
            routes,
            duplicates: metrics::counter!("dingtalk_duplicates_total", "app" => app.clone()),
            rejected: metrics::counter!("dingtalk_frames_rejected_total", "app" => app.clone()),
            lost: reconnect("lost"),
            draining: reconnect("draining"),
            open_failed: reconnect("open_failed"),
            connections: metrics::gauge!("dingtalk_connections", "app" => app.clone()),
        }
    }

    /// A frame of route `route` was handed to its handler.
    pub(crate) fn delivered(&self, route: usize) {
        if let Some(r) = self.routes.get(route) {
            r.frames.increment(1);
        }
    }

    /// A handler call of route `route` ended after `took` (`None`: cancelled).
    pub(crate) fn finished(&self, route: usize, outcome: Option<&Outcome>, took: Duration) {
        let Some(r) = self.routes.get(route) else {
            return;
        };
        r.seconds.record(took.as_secs_f64());
        match outcome {
            Some(Outcome::Ok(_)) => r.ok.increment(1),
            Some(Outcome::Later) => r.later.increment(1),
            Some(Outcome::Failed(_)) => r.failed.increment(1),
            None => r.cancelled.increment(1),
        }
    }

    /// The run ended: nothing is open.
    pub(crate) fn stopped(&self) {
        self.connections.set(0.0);
    }

    pub(crate) fn event(&self, event: &SessionEvent, open: usize) {
        match event {
            SessionEvent::Duplicate { .. } => self.duplicates.increment(1),
            SessionEvent::FrameRejected { .. } => self.rejected.increment(1),
            SessionEvent::ConnectionLost { .. } => self.lost.increment(1),
            SessionEvent::Draining { .. } => self.draining.increment(1),
            SessionEvent::OpenFailed { .. } => self.open_failed.increment(1),
            _ => {}
        }
        self.connections.set(open as f64);
    }
}

/// The hook's view of a session event, if it is a lifecycle change.
pub(crate) fn lifecycle(event: &SessionEvent, open: usize) -> Option<Lifecycle<'_>> {
    Some(match event {
        SessionEvent::Connected { conn } => Lifecycle::Connected { conn: *conn, open },
        SessionEvent::Draining { conn, reason } => Lifecycle::Draining {
            conn: *conn,
            reason: reason.as_deref(),
        },
        SessionEvent::ConnectionLost { conn, reason } => Lifecycle::Disconnected {
            conn: *conn,
            reason,
            open,
        },
        SessionEvent::OpenFailed { error } => Lifecycle::OpenFailed { error },
        SessionEvent::ReconnectScheduled { after, attempt } => Lifecycle::Reconnecting {
            after: *after,
            attempt: *attempt,
        },
        _ => return None,
    })
}
