//! The loop's vocabulary: what goes in, what comes out, what a handler made of a frame.

use super::*;

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
    /// The handler of this delivery ran past [`crate::StreamConfig::handler_timeout`]: drop
    /// (cancel) its call. Its slot is already free and a failure ack already sent where one
    /// was owed; a completion reported later is ignored.
    Cancel {
        /// The delivery.
        id: DeliveryId,
    },
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
            // The URI's query holds the one-use ticket.
            Self::Connect { conn, request } => f
                .debug_struct("Connect")
                .field("conn", conn)
                .field("host", &request.uri().host())
                .field("path", &request.uri().path())
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
            Self::Cancel { id } => f.debug_struct("Cancel").field("id", id).finish(),
            Self::Event(e) => f.debug_tuple("Event").field(e).finish(),
            Self::Error(e) => f.debug_tuple("Error").field(e).finish(),
            Self::Timeout(t) => f.debug_tuple("Timeout").field(t).finish(),
            Self::Done => f.write_str("Done"),
        }
    }
}
