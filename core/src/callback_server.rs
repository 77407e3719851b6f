//! The decisions of an HTTP-callback endpoint (outgoing robot, event subscription), sans IO:
//! the same guarantees as Stream mode. An adapter passes each request in and does what the
//! [`Verdict`] says; it owns no policy.
//!
//! * **Verified**: the robot `sign` (HMAC with the app secret) or the event signature and AES
//!   envelope; a body over [`CallbackLimits::max_body`] is refused unread.
//! * **Fresh**: a signed timestamp more than [`CallbackLimits::window`] away from now is refused,
//!   so a captured request cannot be replayed later.
//! * **Once**: a message id (robot `msgId`, event `EventId`) seen within the dedup TTL, or still
//!   being handled, is answered without calling the handler again.
//! * **Bounded**: at most [`CallbackLimits::max_in_flight`] handler calls; beyond that the answer
//!   is `503` with `Retry-After` (DingTalk retries later) instead of an unbounded queue.
//! * **In time**: the robot is answered at once (replies go through the session webhook); an
//!   event waits for its handler at most [`CallbackLimits::answer_within`], then is answered
//!   `success` (accepted; the handler finishes in the background), because DingTalk resends
//!   slow answers.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use dingtalk_core::callback_server::{CallbackLimits, CallbackServer, Verdict};
//! let mut server = CallbackServer::new("app-secret", None, CallbackLimits::default());
//! let now_ms = 1_700_000_000_000;
//! let sign = dingtalk_core::webhook::sign("app-secret", now_ms);
//! let body = br#"{"msgId":"m1","msgtype":"text","text":{"content":"hi"}}"#;
//! let verdict = server.robot(&now_ms.to_string(), &sign, body, now_ms, Instant::now());
//! let Verdict::Handle { frame, ticket, answer } = verdict else { panic!() };
//! assert_eq!(answer.map(|a| a.status), Some(200)); // answer now, run the handler meanwhile
//! assert_eq!(frame.message_id(), "m1");
//! server.finished(ticket, true, Instant::now());
//! // The same request again (a retry or a replay) is answered without the handler.
//! let again = server.robot(&now_ms.to_string(), &sign, body, now_ms, Instant::now());
//! assert!(matches!(again, Verdict::Answer(a) if a.status == 200));
//! ```

use std::collections::HashSet;
use std::fmt;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::callback::{CallbackError, EventCrypto, parse_outgoing};
use crate::dedup::{CachedAck, DedupCache};
use crate::frame::{Frame, FrameType, Headers};
use crate::topic;

/// Limits of an HTTP-callback endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallbackLimits {
    /// Largest request body read (default 1 MiB).
    pub max_body: usize,
    /// How far a signed timestamp may be from now (default 1 h, the documented robot window).
    pub window: Duration,
    /// Handler calls at once (default 64); more are answered `503`.
    pub max_in_flight: usize,
    /// Message ids remembered (default 10 000) ...
    pub dedup_capacity: usize,
    /// ... for this long (default 2 h: longer than the window, so a replay inside the window
    /// is always caught).
    pub dedup_ttl: Duration,
    /// How long an event's answer waits for its handler (default 1 s).
    pub answer_within: Duration,
}

impl Default for CallbackLimits {
    fn default() -> Self {
        Self {
            max_body: 1 << 20,
            window: Duration::from_secs(3600),
            max_in_flight: 64,
            dedup_capacity: 10_000,
            dedup_ttl: Duration::from_secs(7200),
            answer_within: Duration::from_secs(1),
        }
    }
}

/// An HTTP answer: status, JSON body, and a `Retry-After` in seconds where set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallbackAnswer {
    /// HTTP status.
    pub status: u16,
    /// JSON body (or a short plain-text reason for refusals).
    pub body: String,
    /// `Retry-After` seconds.
    pub retry_after: Option<u32>,
}

impl CallbackAnswer {
    fn refuse(status: u16, why: impl Into<String>) -> Self {
        Self {
            status,
            body: why.into(),
            retry_after: None,
        }
    }

    fn json(value: Value) -> Self {
        Self {
            status: 200,
            body: value.to_string(),
            retry_after: None,
        }
    }

    fn busy() -> Self {
        Self {
            status: 503,
            body: "busy: too many callbacks in flight".into(),
            retry_after: Some(1),
        }
    }
}

/// What to do with a request.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // short-lived return value
pub enum Verdict {
    /// Answer this; call no handler.
    Answer(CallbackAnswer),
    /// Run the handler for `frame` (a slot is taken: report [`CallbackServer::finished`] with
    /// `ticket` exactly once, also when the call is cancelled). With `answer`, answer it now;
    /// without, wait for the handler at most [`CallbackLimits::answer_within`] and ask
    /// [`CallbackServer::event_answer`].
    Handle {
        /// The request as a Stream frame, for the same handlers.
        frame: Frame,
        /// Hand back to [`CallbackServer::finished`].
        ticket: Ticket,
        /// The answer to send now, if it does not depend on the handler.
        answer: Option<CallbackAnswer>,
    },
}

/// A taken handler slot.
#[derive(Debug, PartialEq, Eq)]
#[must_use = "hand the ticket back to CallbackServer::finished"]
pub struct Ticket {
    id: String,
}

impl Ticket {
    /// The message id being handled.
    pub fn message_id(&self) -> &str {
        &self.id
    }
}

/// The state of one HTTP-callback endpoint. Not thread-safe by itself: keep it behind a mutex
/// (each call is short).
pub struct CallbackServer {
    app_secret: String,
    crypto: Option<EventCrypto>,
    limits: CallbackLimits,
    seen: DedupCache,
    handling: HashSet<String>,
}

impl fmt::Debug for CallbackServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CallbackServer")
            .field("app_secret", &"<redacted>")
            .field("events", &self.crypto.is_some())
            .field("limits", &self.limits)
            .field("handling", &self.handling.len())
            .finish()
    }
}

/// Timestamps below this are seconds (the event FAQ vector uses seconds; pushes use ms).
const MS_THRESHOLD: i64 = 100_000_000_000;

impl CallbackServer {
    /// An endpoint for the app with `app_secret` (robot signatures) and, with `crypto`, event
    /// subscriptions.
    pub fn new(
        app_secret: impl Into<String>,
        crypto: Option<EventCrypto>,
        limits: CallbackLimits,
    ) -> Self {
        Self {
            app_secret: app_secret.into(),
            crypto,
            seen: DedupCache::new(limits.dedup_capacity, limits.dedup_ttl),
            limits,
            handling: HashSet::new(),
        }
    }

    /// The limits.
    pub fn limits(&self) -> &CallbackLimits {
        &self.limits
    }

    /// Handler calls in flight.
    pub fn in_flight(&self) -> usize {
        self.handling.len()
    }

    /// An outgoing-robot request: its `timestamp` and `sign` headers and its body.
    pub fn robot(
        &mut self,
        timestamp: &str,
        sign: &str,
        body: &[u8],
        now_ms: i64,
        now: Instant,
    ) -> Verdict {
        if body.len() > self.limits.max_body {
            return Verdict::Answer(CallbackAnswer::refuse(413, "body too large"));
        }
        // The robot's documented window is one hour; a shorter configured one applies too.
        if let Err(e) = self.fresh(timestamp, now_ms) {
            return Verdict::Answer(CallbackAnswer::refuse(401, e.to_string()));
        }
        let message = match parse_outgoing(timestamp, sign, &self.app_secret, now_ms, body) {
            Ok(m) => m,
            Err(e @ CallbackError::InvalidBody(_)) => {
                return Verdict::Answer(CallbackAnswer::refuse(400, e.to_string()));
            }
            Err(e) => return Verdict::Answer(CallbackAnswer::refuse(401, e.to_string())),
        };
        if message.msg_id.is_empty() {
            return Verdict::Answer(CallbackAnswer::refuse(400, "msgId is missing"));
        }
        let empty = CallbackAnswer::json(json!({"msgtype": "empty"}));
        if self.is_known(&message.msg_id, now) {
            return Verdict::Answer(empty);
        }
        let Some(ticket) = self.take_slot(&message.msg_id) else {
            return Verdict::Answer(CallbackAnswer::busy());
        };
        // Answered at once, like a Stream bot message: the copy DingTalk sends when an answer
        // is late must not run the handler twice.
        self.seen
            .insert(&message.msg_id, CachedAck::ResponseNull, now);
        let frame = Frame::new(
            FrameType::Callback,
            Headers {
                topic: topic::BOT_MESSAGE.into(),
                message_id: message.msg_id.as_str().into(),
                content_type: Some("application/json".into()),
                ..Headers::default()
            },
            &String::from_utf8_lossy(body),
        );
        Verdict::Handle {
            frame,
            ticket,
            answer: Some(empty),
        }
    }

    /// An event-subscription request: the `msg_signature` (or `signature`), `timestamp` (or
    /// `timeStamp`) and `nonce` query values and the body. `random` supplies the reply's nonce
    /// and AES padding prefix (the caller's RNG; the core has none).
    #[allow(clippy::too_many_arguments)]
    pub fn event(
        &mut self,
        signature: &str,
        timestamp: &str,
        nonce: &str,
        body: &[u8],
        now_ms: i64,
        now: Instant,
        random: [u8; 24],
    ) -> Verdict {
        let Some(crypto) = &self.crypto else {
            return Verdict::Answer(CallbackAnswer::refuse(
                404,
                "event subscription is not configured",
            ));
        };
        if body.len() > self.limits.max_body {
            return Verdict::Answer(CallbackAnswer::refuse(413, "body too large"));
        }
        let plain = match crypto.decrypt_body(signature, timestamp, nonce, body) {
            Ok(p) => p,
            Err(e) => return Verdict::Answer(CallbackAnswer::refuse(401, e.to_string())),
        };
        if let Err(e) = self.fresh(timestamp, now_ms) {
            return Verdict::Answer(CallbackAnswer::refuse(401, e.to_string()));
        }
        let event: Value = serde_json::from_str(&plain).unwrap_or(Value::Null);
        let event_type = event["EventType"].as_str().unwrap_or_default().to_owned();
        if event_type == "check_url" {
            return Verdict::Answer(self.success(now_ms, random));
        }
        let id = event["EventId"]
            .as_str()
            .filter(|id| !id.is_empty())
            .map_or_else(|| format!("http-{timestamp}-{nonce}"), str::to_owned);
        if self.is_known(&id, now) {
            return Verdict::Answer(self.success(now_ms, random));
        }
        let Some(ticket) = self.take_slot(&id) else {
            return Verdict::Answer(CallbackAnswer::busy());
        };
        let frame = Frame::new(
            FrameType::Event,
            Headers {
                topic: topic::ALL_EVENTS.into(),
                message_id: id.as_str().into(),
                event_type: Some(event_type),
                event_corp_id: event["CorpId"].as_str().map(str::to_owned),
                ..Headers::default()
            },
            &plain,
        );
        Verdict::Handle {
            frame,
            ticket,
            answer: None,
        }
    }

    /// The answer to an event whose handler finished (`Some(true)` handled, `Some(false)`
    /// failed or asked for later) or did not finish within
    /// [`CallbackLimits::answer_within`] (`None`: accepted, it finishes in the background).
    /// A failure answers `503`, so DingTalk delivers the event again.
    pub fn event_answer(
        &mut self,
        handled: Option<bool>,
        now_ms: i64,
        random: [u8; 24],
    ) -> CallbackAnswer {
        match handled {
            Some(false) => CallbackAnswer {
                status: 503,
                body: "handler failed; deliver again later".into(),
                retry_after: None,
            },
            _ => self.success(now_ms, random),
        }
    }

    /// The handler call of `ticket` ended (`handled`: it succeeded). Frees the slot; a success
    /// is remembered, so a later copy is answered without the handler.
    pub fn finished(&mut self, ticket: Ticket, handled: bool, now: Instant) {
        self.handling.remove(&ticket.id);
        if handled {
            self.seen.insert(&ticket.id, CachedAck::ResponseNull, now);
        }
    }

    fn fresh(&self, timestamp: &str, now_ms: i64) -> Result<(), CallbackError> {
        let ts: i64 = timestamp
            .trim()
            .parse()
            .map_err(|_| CallbackError::InvalidTimestamp)?;
        let ts_ms = if ts.abs() < MS_THRESHOLD {
            ts.saturating_mul(1000)
        } else {
            ts
        };
        let window = u64::try_from(self.limits.window.as_millis()).unwrap_or(u64::MAX);
        if now_ms.abs_diff(ts_ms) > window {
            return Err(CallbackError::Expired);
        }
        Ok(())
    }

    fn is_known(&mut self, id: &str, now: Instant) -> bool {
        self.handling.contains(id) || self.seen.get(id, now).is_some()
    }

    fn take_slot(&mut self, id: &str) -> Option<Ticket> {
        if self.handling.len() >= self.limits.max_in_flight {
            return None;
        }
        self.handling.insert(id.to_owned());
        Some(Ticket { id: id.to_owned() })
    }

    fn success(&self, now_ms: i64, random: [u8; 24]) -> CallbackAnswer {
        let Some(crypto) = &self.crypto else {
            return CallbackAnswer::refuse(404, "event subscription is not configured");
        };
        const CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
        let alnum = |b: u8| char::from(CHARS[usize::from(b) % CHARS.len()]);
        let nonce: String = random[..8].iter().map(|b| alnum(*b)).collect();
        let mut prefix = [0u8; 16];
        for (p, b) in prefix.iter_mut().zip(&random[8..]) {
            *p = CHARS[usize::from(*b) % CHARS.len()];
        }
        let reply = crypto.encrypt("success", &now_ms.to_string(), &nonce, prefix);
        CallbackAnswer::json(serde_json::to_value(reply).unwrap_or(Value::Null))
    }
}
