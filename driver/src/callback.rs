//! HTTP-callback mode, written once for every runtime: DingTalk POSTs to your server instead of
//! pushing over Stream. [`CallbackService`] turns one request into one answer: it verifies it
//! (outgoing-robot signature with a one-hour window; event-subscription signature and AES
//! decryption), drops resent copies, bounds the handlers running at once, hands the request to
//! the same handlers as Stream mode ([`Client::dispatch`]), and answers in the documented shape
//! (`{"msgtype":"empty"}` for the robot, the encrypted `success` for events) within the
//! platform's deadline. Every decision is [`dingtalk_core::callback_server`]'s.
//!
//! A server only moves bytes: the tokio adapter mounts the service in an axum router; the
//! async-std and blocking adapters serve it with hyper on the async-io stack
//! ([`serve`], feature `http-callback-async-io`).

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use dingtalk_core::callback::EventCrypto;
use dingtalk_core::callback_server::{CallbackAnswer, CallbackServer, Ticket, Verdict};
use dingtalk_core::{Frame, FrameType, Outcome, topic};

pub use dingtalk_core::callback_server::CallbackLimits;

use crate::runtime::{BoxFuture, HttpClient, Runtime};
use crate::{Client, unix_ms};

#[cfg(feature = "http-callback-async-io")]
mod serve;
#[cfg(feature = "http-callback-async-io")]
pub use serve::{MAX_CONNECTIONS, serve, serve_until};

/// Runs a background future to its end (the server's way of spawning).
pub type Spawn<'a> = &'a (dyn Fn(BoxFuture<'static, ()>) + Send + Sync);

/// Answers DingTalk's HTTP callbacks with a client's handlers: `POST /robot` (outgoing robot)
/// and, with an [`EventCrypto`], `POST /events` (event subscription). Cheap to share
/// (`Arc`).
pub struct CallbackService<R: Runtime> {
    client: Client<R>,
    server: Mutex<CallbackServer>,
    limits: CallbackLimits,
}

impl<R: Runtime> std::fmt::Debug for CallbackService<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallbackService")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl<R: Runtime> CallbackService<R> {
    /// A service for `client`'s handlers: at most as many at once as the client's concurrency,
    /// the default [`CallbackLimits`] otherwise.
    pub fn new(client: &Client<R>, crypto: Option<EventCrypto>) -> Self {
        let limits = CallbackLimits {
            max_in_flight: client.config().max_in_flight,
            ..CallbackLimits::default()
        };
        Self::with_limits(client, crypto, limits)
    }

    /// With explicit limits (body size, timestamp window, concurrency, dedup, answer deadline).
    pub fn with_limits(
        client: &Client<R>,
        crypto: Option<EventCrypto>,
        limits: CallbackLimits,
    ) -> Self {
        let secret = client.config().credentials.client_secret().to_owned();
        Self {
            client: client.clone(),
            server: Mutex::new(CallbackServer::new(secret, crypto, limits.clone())),
            limits,
        }
    }

    /// The limits (a server stops reading a body at `max_body`).
    pub fn limits(&self) -> &CallbackLimits {
        &self.limits
    }

    fn lock(&self) -> MutexGuard<'_, CallbackServer> {
        self.server.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn has_handler(&self, kind: FrameType, topic: &str) -> bool {
        self.client.config().route(kind, topic).is_some()
    }

    /// Answers one request. Handler calls that outlive the answer (a robot message is answered
    /// at once; a slow event past the deadline) are given to `spawn`.
    pub async fn handle(
        self: &Arc<Self>,
        method: &http::Method,
        uri: &http::Uri,
        headers: &http::HeaderMap,
        body: &[u8],
        spawn: Spawn<'_>,
    ) -> http::Response<Vec<u8>> {
        let path = uri.path();
        if path != "/robot" && path != "/events" {
            return plain(404, "not found");
        }
        if method != http::Method::POST {
            return plain(405, "use POST");
        }
        if body.len() > self.limits.max_body {
            return plain(413, "body too large");
        }
        if path == "/robot" {
            self.robot(headers, body, spawn)
        } else {
            self.events(uri.query().unwrap_or_default(), body, spawn)
                .await
        }
    }

    fn robot(
        self: &Arc<Self>,
        headers: &http::HeaderMap,
        body: &[u8],
        spawn: Spawn<'_>,
    ) -> http::Response<Vec<u8>> {
        if !self.has_handler(FrameType::Callback, topic::BOT_MESSAGE) {
            return plain(404, "no bot-message handler");
        }
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
        };
        let verdict = self.lock().robot(
            header("timestamp"),
            header("sign"),
            body,
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
                let (call, _done) = self.call(frame, ticket);
                spawn(call);
                respond(answer.unwrap_or_else(|| CallbackAnswer {
                    status: 200,
                    body: r#"{"msgtype":"empty"}"#.into(),
                    retry_after: None,
                }))
            }
        }
    }

    async fn events(
        self: &Arc<Self>,
        query: &str,
        body: &[u8],
        spawn: Spawn<'_>,
    ) -> http::Response<Vec<u8>> {
        if !self.has_handler(FrameType::Event, topic::ALL_EVENTS) {
            return plain(404, "no event handler");
        }
        let q: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect();
        let get = |a: &str, b: &str| {
            q.iter()
                .find(|(k, _)| k == a)
                .or_else(|| q.iter().find(|(k, _)| k == b))
                .map_or("", |(_, v)| v.as_str())
        };
        let verdict = self.lock().event(
            get("msg_signature", "signature"),
            get("timestamp", "timeStamp"),
            get("nonce", "nonce"),
            body,
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
                let (call, _done) = self.call(frame, ticket);
                spawn(call);
                respond(answer)
            }
            Verdict::Handle {
                frame,
                ticket,
                answer: None,
            } => {
                let within = self.limits.answer_within;
                let (call, done) = self.call(frame, ticket);
                spawn(call);
                // DingTalk resends slow answers: past the deadline the event is accepted and
                // its handler finishes in the background (a resent copy is recognised
                // meanwhile).
                let timeout = self.client.api().http().sleep(within);
                let handled = match futures_util::future::select(done, timeout).await {
                    futures_util::future::Either::Left((Ok(handled), _)) => Some(handled),
                    futures_util::future::Either::Left((Err(_), _)) => Some(false),
                    futures_util::future::Either::Right(_) => None,
                };
                let answer = self.lock().event_answer(handled, unix_ms(), random24());
                respond(answer)
            }
        }
    }

    /// The handler call of `frame`, holding its slot until it ends (a cancelled or panicking
    /// call counts as failed), and a receiver of whether it succeeded.
    fn call(
        self: &Arc<Self>,
        frame: Frame,
        ticket: Ticket,
    ) -> (
        BoxFuture<'static, ()>,
        futures_channel::oneshot::Receiver<bool>,
    ) {
        let (tx, rx) = futures_channel::oneshot::channel();
        let mut slot = Slot {
            service: self.clone(),
            ticket: Some(ticket),
            handled: false,
        };
        let call = self.client.dispatch(frame);
        let fut = Box::pin(async move {
            let handled = match call {
                Some(call) => matches!(call.await, Outcome::Ok(_)),
                None => false,
            };
            slot.handled = handled;
            drop(slot);
            let _ = tx.send(handled);
        });
        (fut, rx)
    }
}

/// Hands the slot back when the handler call ends, however it ends.
struct Slot<R: Runtime> {
    service: Arc<CallbackService<R>>,
    ticket: Option<Ticket>,
    handled: bool,
}

impl<R: Runtime> Drop for Slot<R> {
    fn drop(&mut self) {
        if let Some(ticket) = self.ticket.take() {
            self.service
                .lock()
                .finished(ticket, self.handled, Instant::now());
        }
    }
}

fn random24() -> [u8; 24] {
    let mut rng = fastrand::Rng::with_seed(crate::client::seed());
    std::array::from_fn(|_| rng.u8(..))
}

fn plain(status: u16, text: &str) -> http::Response<Vec<u8>> {
    respond(CallbackAnswer {
        status,
        body: text.to_owned(),
        retry_after: None,
    })
}

fn respond(answer: CallbackAnswer) -> http::Response<Vec<u8>> {
    let content_type = if answer.status == 200 {
        "application/json"
    } else {
        "text/plain; charset=utf-8"
    };
    let mut response = http::Response::new(answer.body.into_bytes());
    *response.status_mut() = http::StatusCode::from_u16(answer.status)
        .unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(content_type),
    );
    if let Some(secs) = answer.retry_after {
        response
            .headers_mut()
            .insert(http::header::RETRY_AFTER, http::HeaderValue::from(secs));
    }
    response
}
