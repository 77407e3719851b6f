//! Informational happenings and counters, for logs and metrics.

use super::*;

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
    /// An ack could not be sent: the connection its frame came from is gone (DingTalk
    /// redelivers the frame on another connection).
    AckDropped {
        /// The connection.
        conn: ConnId,
    },
    /// A handler ran past the handler timeout: its call was cancelled, its slot freed, and a
    /// failure ack sent where one was still owed.
    HandlerCancelled {
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
                | Self::HandlerCancelled { .. }
                | Self::AckDropped { .. }
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
            Self::AckDropped { conn } => {
                write!(f, "ack not sent: connection {conn:?} is gone")
            }
            Self::HandlerCancelled { id } => {
                write!(
                    f,
                    "handler of {id:?} ran past the handler timeout; cancelled"
                )
            }
            Self::Shed { message_id } => write!(f, "{message_id} left unacked: queue full"),
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
    /// Handler calls cancelled at the handler timeout.
    pub handlers_cancelled: u64,
    /// Open-connection requests sent.
    pub open_requests: u64,
}

/// Where a connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnPhase {
    /// The WebSocket handshake is under way.
    Connecting,
    /// Receiving frames.
    Open,
    /// DingTalk asked it to `disconnect`: it finishes its acks while its replacement takes over.
    Draining,
}

/// Counters of one connection ([`Session::connection_stats`](super::Session::connection_stats)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnStats {
    /// The connection.
    pub conn: super::ConnId,
    /// Which of the app's connections (`0..connections`) it serves.
    pub slot: usize,
    /// Where it is in its life.
    pub state: ConnPhase,
    /// Text frames read from it.
    pub frames_received: u64,
    /// Acks and pongs written to it.
    pub acks_sent: u64,
}
