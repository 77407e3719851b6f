//! # dingtalk-core
//!
//! The sans-IO protocol core of **dingtalk-rs**, a DingTalk (钉钉) bot SDK. It decides everything
//! the Stream protocol needs — which request opens a connection, what to ack and where, when to
//! ping, when a connection is dead, when to reconnect, which duplicate to suppress — and leaves
//! every byte of IO to an adapter (`dingtalk-tokio`, `dingtalk-async-std`, `dingtalk-blocking`).
//!
//! ## What this crate does *not* do
//!
//! It opens no socket, resolves no name, reads no clock, spawns no thread, has no async runtime
//! and no global random generator. Time is an argument of every input; randomness (reconnect
//! jitter) comes from [`StreamConfig::rng_seed`]. The same inputs give the same outputs, so every
//! behaviour is tested without sockets or sleeps.
//!
//! ## The loop contract
//!
//! A [`Session`] is driven by two verbs:
//!
//! * [`Session::handle_input`] — tell it what happened (an HTTP response, a connection opened, a
//!   text frame arrived, a handler finished, time passed, stop was asked for);
//! * [`Session::poll_output`] — ask what to do next.
//!
//! **After every `handle_input`, drain `poll_output` until it returns [`Output::Timeout`]** (or
//! [`Output::Done`]). `Timeout(t)` says: nothing to do before `t`; wait for IO until then and feed
//! [`Input::Timeout`] if nothing happens. `Done` says the session has ended (stopped, or a terminal
//! [`Error`] such as rejected credentials): return from the loop.
//!
//! Every output naming a connection ([`ConnId`]) must be carried out on *that* connection: acks go
//! to the socket the frame came from, even while a replacement connection is already open.
//! Every [`Output::Deliver`] must be answered with exactly one [`Input::Complete`].
//!
//! A complete blocking loop looks like this (the transport functions stand for the adapter's
//! WebSocket and HTTP code):
//!
//! ```no_run
//! use std::time::Instant;
//! use dingtalk_core::{Credentials, Input, Output, Outcome, Session, StreamConfig, Subscription, topic};
//! # mod transport {
//! #   use dingtalk_core::*; use std::time::Instant;
//! #   pub enum Io { Text(ConnId, String), Pong(ConnId), Closed(ConnId), Nothing }
//! #   pub fn http(_: http::Request<Vec<u8>>) -> Result<http::Response<Vec<u8>>, String> { Err(String::new()) }
//! #   pub fn connect(_: ConnId, _: &http::Request<()>) -> Result<(), String> { Ok(()) }
//! #   pub fn send(_: ConnId, _: &str) {}
//! #   pub fn ping(_: ConnId) {}
//! #   pub fn close(_: ConnId) {}
//! #   pub fn read_until(_: Instant) -> Io { Io::Nothing }
//! # }
//! # use transport::*;
//! let config = StreamConfig::new(Credentials::new("client-id", "client-secret"))
//!     .subscribe(Subscription::callback(topic::BOT_MESSAGE));
//! let mut session = Session::new(config, Instant::now()).expect("valid config");
//! let mut completions = Vec::new();
//! loop {
//!     // 1. Drain every output.
//!     let deadline = loop {
//!         match session.poll_output() {
//!             Output::Http { id, request } => match http(request) {
//!                 Ok(response) => session.handle_input(Input::HttpResponse { id, response }, Instant::now()),
//!                 Err(reason) => session.handle_input(Input::HttpFailed { id, reason }, Instant::now()),
//!             },
//!             Output::Connect { conn, request } => match connect(conn, &request) {
//!                 Ok(()) => session.handle_input(Input::Connected { conn }, Instant::now()),
//!                 Err(reason) => session.handle_input(Input::ConnectFailed { conn, reason }, Instant::now()),
//!             },
//!             Output::Send { conn, text } => send(conn, &text),
//!             Output::Ping { conn } => ping(conn),
//!             Output::Close { conn } => close(conn),
//!             Output::PauseReading | Output::ResumeReading => {} // a real adapter obeys these
//!             Output::Deliver(delivery) => {
//!                 println!("{}: {:?}", delivery.frame.topic(), delivery.frame.data_text());
//!                 completions.push((delivery.id, Outcome::done()));
//!             }
//!             Output::Cancel { .. } => {} // handlers here finish at once; nothing to cancel
//!             Output::Event(event) => eprintln!("{event:?}"),
//!             Output::Error(error) => eprintln!("fatal: {error}"),
//!             Output::Timeout(at) => break Some(at),
//!             Output::Done => break None,
//!         }
//!     };
//!     let Some(deadline) = deadline else { return };
//!     for (id, outcome) in completions.drain(..) {
//!         session.handle_input(Input::Complete { id, outcome }, Instant::now());
//!     }
//!     // 2. Wait for IO, at most until the deadline (the socket's read timeout).
//!     let now = Instant::now();
//!     match read_until(deadline) {
//!         Io::Text(conn, text) => session.handle_input(Input::Text { conn, text: &text }, now),
//!         Io::Pong(conn) => session.handle_input(Input::Pong { conn }, now),
//!         Io::Closed(conn) => session.handle_input(Input::Closed { conn, reason: "eof".into() }, now),
//!         Io::Nothing => session.handle_input(Input::Timeout, now),
//!     }
//! }
//! ```
//!
//! ## Stream decisions
//!
//! | situation | what the session does |
//! |---|---|
//! | start / reconnect | `POST {api}/v1.0/gateway/connections/open` with JSON headers and `{clientId, clientSecret, subscriptions, ua, localIp?}`; validates `endpoint` and `ticket`; connects to the endpoint with the escaped ticket appended with `?` or `&`; a ticket is used once |
//! | 401 `authFailed` / `invalidClientIdOrSecret` | terminal [`Error::AuthFailed`], no retry |
//! | SYSTEM `ping` | ack 200 echoing `data` at once, never queued behind handlers |
//! | SYSTEM `disconnect` | ack, open the replacement at once, keep reading the old connection until it closes or `drain_timeout` passes |
//! | CALLBACK | deliver; ack `{"response": …}`; bot messages acked at once by default; unknown topic 404 |
//! | EVENT | deliver; ack `{"status":"SUCCESS"}`, or `LATER` on failure or timeout |
//! | duplicate `messageId` | the handler runs once; copies wait for its ack or get the remembered one |
//! | malformed frame | 400 when the `messageId` can be read, otherwise dropped and counted |
//! | keepalive | ping after `keepalive_idle` of silence; no pong or frame within `keepalive_timeout` → close and reconnect |
//! | reconnect | the first after losing a connection at once (a random delay up to `first_reconnect_max`, 100 ms); then `base · 2ⁿ + jitter` capped at `backoff_max`, reset by a frame; one open request at a time |
//! | routing | each frame is routed once, to the index of its subscription ([`Route`]), carried by the [`Delivery`]; the application's handler table is indexed by it |
//! | backpressure | `max_in_flight` handler calls; then up to `max_queued` waiting frames; then [`Output::PauseReading`] |
//! | stop | stop reading, let handlers finish (bounded), send their acks, close everything, [`Output::Done`] |
//!
//! ## Limits on untrusted input
//!
//! Everything from the network is bounded, and exceeding a bound is a typed error or a counted
//! drop, never a panic or unbounded growth:
//!
//! | what | default | where | past the limit |
//! |---|---|---|---|
//! | frame size | 1 MiB | [`Limits::max_frame_bytes`] | [`FrameError::TooLarge`], not parsed; acked 400 by its `messageId` (recovered without keeping the rest, up to 16 × the limit) |
//! | headers per frame | 64 | [`Limits::max_headers`] | [`FrameError::TooManyHeaders`], ack 400 |
//! | JSON nesting | 128 levels | serde_json's recursion limit (frames, API bodies, payloads) | a `Malformed` / `InvalidResponse` error |
//! | `data` payload | decoded only on demand | [`Frame::data_json`] | routing and acking never parse it |
//! | remembered message ids | 10 000 / 4 MiB for 5 min | [`StreamConfig::dedup_capacity`], [`StreamConfig::dedup_max_bytes`], [`StreamConfig::dedup_ttl`] | oldest forgotten |
//! | handler calls in flight | 64 | [`StreamConfig::max_in_flight`] | frames wait in the queue |
//! | handler call duration | 10 min | [`StreamConfig::handler_timeout`] | cancelled ([`Output::Cancel`]), slot freed, failure ack if owed |
//! | configured durations | any `Duration` | session, token cache, dedup | deadlines saturate; never an overflow panic |
//! | token lifetime (`expireIn`) | capped at 24 h | [`auth::MAX_TOKEN_LIFETIME`] | refreshed anyway |
//! | URLs sent to | `https://` (`wss://`); plain only to loopback | [`url::check_secure`] | typed validation error, URL never quoted |
//! | HTTP-callback requests | 1 MiB body, 1 h timestamp window, 64 handler calls | [`callback_server::CallbackLimits`] | 413 / 401 / 503 with `Retry-After` |
//! | queued frames | 512 (+64 slack) | [`StreamConfig::max_queued`] | [`Output::PauseReading`]; beyond the slack a frame is left unacked for redelivery ([`SessionEvent::Shed`]) |
//! | duplicate copies waiting for one message | 16 | session | further copies left unacked |
//! | ack `message` text of a failure | 256 bytes | session | truncated at a character boundary |
//! | webhook body | 20 000 bytes | [`webhook::MAX_BODY_BYTES`] | [`ErrorKind::TooLarge`] before sending |
//! | robot `msgParam` / recipients | 15 000 bytes / 20 users | [`api::robot`] | typed error before sending |
//! | media upload | 20 MB (voice 2 MB), per-type extensions | [`api::media::MediaType`] | typed error before sending |
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![deny(missing_docs)]

pub mod aicard;
pub mod api;
pub mod auth;
pub mod callback;
pub mod callback_server;
pub mod config;
pub mod dedup;
pub mod error;
pub mod events;
pub mod frame;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
pub mod markdown;
pub mod model;
pub mod proxy;
pub mod router;
pub mod send;
pub mod session;
pub mod store;
pub mod topic;
pub mod url;
pub mod webhook;

pub use api::ApiCall;
pub use config::{Credentials, Endpoints, Route, StreamConfig};
pub use error::{ApiError, Error, ErrorKind, OpenError};
pub use frame::{Frame, FrameError, FrameType, Headers, Interner, Limits};
pub use http;
pub use session::{
    ConnId, Delivery, DeliveryId, EventAck, Input, Outcome, Output, RequestId, Session,
    SessionEvent, Stats,
};
pub use topic::{AckPolicy, Subscription};

/// The crate README's examples, compiled as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
