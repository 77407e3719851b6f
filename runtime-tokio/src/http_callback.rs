//! HTTP-callback mode: DingTalk POSTs to your server instead of pushing over Stream. The router
//! verifies each request (outgoing-robot signature with a one-hour window; event-subscription
//! signature and AES decryption), hands it to the same handlers as Stream mode, and answers in
//! the documented shape (`{"msgtype":"empty"}` for the robot, the encrypted `success` for
//! events). Mount it into your own axum server, or serve it alone.
//!
//! ```no_run
//! # async fn demo(client: dingtalk_tokio::Client) -> std::io::Result<()> {
//! use dingtalk_core::callback::EventCrypto;
//! let crypto = EventCrypto::new("token", "43-character-EncodingAESKey-from-the-console", "appkey")
//!     .expect("valid key");
//! let app = dingtalk_tokio::http_callback::router(&client, Some(crypto)); // POST /robot, /events
//! let listener = tokio::net::TcpListener::bind("0.0.0.0:8080").await?;
//! axum::serve(listener, app).await
//! # }
//! ```

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use dingtalk_core::callback::EventCrypto;
use dingtalk_core::callback_server::{CallbackAnswer, CallbackServer, Ticket, Verdict};
use dingtalk_core::{FrameType, Outcome, topic};

pub use dingtalk_core::callback_server::CallbackLimits;

use crate::{Client, unix_ms};

struct CallbackState {
    client: Client,
    server: Mutex<CallbackServer>,
}

impl CallbackState {
    fn has_handler(&self, kind: FrameType, topic: &str) -> bool {
        self.client.config().route(kind, topic).is_some()
    }

    fn lock(&self) -> MutexGuard<'_, CallbackServer> {
        self.server.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// An axum router with `POST /robot` (outgoing-robot callbacks, verified with the app secret)
/// and, when `crypto` is given, `POST /events` (event subscription). Both use the handlers
/// registered on `client`, at most as many at once as the client's concurrency, with the
/// default [`CallbackLimits`] otherwise.
pub fn router(client: &Client, crypto: Option<EventCrypto>) -> Router {
    let limits = CallbackLimits {
        max_in_flight: client.config().max_in_flight,
        ..CallbackLimits::default()
    };
    router_with(client, crypto, limits)
}

/// [`router`] with explicit limits (body size, timestamp window, concurrency, dedup, answer
/// deadline).
pub fn router_with(client: &Client, crypto: Option<EventCrypto>, limits: CallbackLimits) -> Router {
    let max_body = limits.max_body;
    let secret = client.config().credentials.client_secret().to_owned();
    let state = Arc::new(CallbackState {
        client: client.clone(),
        server: Mutex::new(CallbackServer::new(secret, crypto, limits)),
    });
    Router::new()
        .route("/robot", post(robot))
        .route("/events", post(events))
        // The server refuses larger bodies itself; axum stops reading them at the same size.
        .layer(DefaultBodyLimit::max(max_body))
        .with_state(state)
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

fn respond(answer: CallbackAnswer) -> Response {
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let content_type = if answer.status == 200 {
        "application/json"
    } else {
        "text/plain; charset=utf-8"
    };
    let mut response =
        (status, [(header::CONTENT_TYPE, content_type)], answer.body).into_response();
    if let Some(secs) = answer.retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    response
}

/// Hands the slot back when the handler call ends, however it ends (a cancelled or panicking
/// call counts as failed).
struct Slot {
    state: Arc<CallbackState>,
    ticket: Option<Ticket>,
    handled: bool,
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(ticket) = self.ticket.take() {
            self.state
                .lock()
                .finished(ticket, self.handled, Instant::now());
        }
    }
}

/// Runs the handler for `frame` in its own task; the receiver gets whether it succeeded.
fn spawn_handler(
    state: &Arc<CallbackState>,
    frame: dingtalk_core::Frame,
    ticket: Ticket,
) -> tokio::sync::oneshot::Receiver<bool> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let mut slot = Slot {
        state: state.clone(),
        ticket: Some(ticket),
        handled: false,
    };
    let call = state.client.dispatch(frame);
    tokio::spawn(async move {
        let handled = match call {
            Some(call) => matches!(call.await, Outcome::Ok(_)),
            None => false,
        };
        slot.handled = handled;
        drop(slot);
        let _ = tx.send(handled);
    });
    rx
}

fn random24() -> [u8; 24] {
    std::array::from_fn(|_| fastrand::u8(..))
}

async fn robot(
    State(state): State<Arc<CallbackState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !state.has_handler(FrameType::Callback, topic::BOT_MESSAGE) {
        return (StatusCode::NOT_FOUND, "no bot-message handler").into_response();
    }
    let verdict = state.lock().robot(
        header(&headers, "timestamp"),
        header(&headers, "sign"),
        &body,
        unix_ms(),
        Instant::now(),
    );
    match verdict {
        Verdict::Answer(answer) => respond(answer),
        Verdict::Handle {
            frame,
            ticket,
            answer,
        } => {
            // Replies go through the session webhook: answered at once.
            drop(spawn_handler(&state, frame, ticket)); // answered without waiting
            respond(answer.unwrap_or_else(|| CallbackAnswer {
                status: 200,
                body: r#"{"msgtype":"empty"}"#.into(),
                retry_after: None,
            }))
        }
    }
}

async fn events(
    State(state): State<Arc<CallbackState>>,
    Query(q): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    if !state.has_handler(FrameType::Event, topic::ALL_EVENTS) {
        return (StatusCode::NOT_FOUND, "no event handler").into_response();
    }
    let get = |a: &str, b: &str| q.get(a).or_else(|| q.get(b)).map_or("", String::as_str);
    let verdict = state.lock().event(
        get("msg_signature", "signature"),
        get("timestamp", "timeStamp"),
        get("nonce", "nonce"),
        &body,
        unix_ms(),
        Instant::now(),
        random24(),
    );
    match verdict {
        Verdict::Answer(answer) => respond(answer),
        Verdict::Handle {
            frame,
            ticket,
            answer: Some(answer),
        } => {
            drop(spawn_handler(&state, frame, ticket)); // answered without waiting
            respond(answer)
        }
        Verdict::Handle {
            frame,
            ticket,
            answer: None,
        } => {
            let within = state.lock().limits().answer_within;
            let done = spawn_handler(&state, frame, ticket);
            // DingTalk resends slow answers: past the deadline the event is accepted and its
            // handler finishes in the background (a resent copy is recognised meanwhile).
            let handled = match tokio::time::timeout(within, done).await {
                Ok(Ok(handled)) => Some(handled),
                Ok(Err(_)) => Some(false),
                Err(_) => None,
            };
            let answer = state.lock().event_answer(handled, unix_ms(), random24());
            respond(answer)
        }
    }
}
