//! # dingtalk-driver
//!
//! The layer between [`dingtalk_core`]'s decisions and the sockets, written once for every
//! runtime. The core decides (acks, pings, reconnects, tokens); this crate schedules (turns the
//! core's outputs into socket writes, timers, handler calls and HTTP requests, and feeds the
//! results back); a [`Runtime`](runtime::Runtime) performs (connects, reads and writes a
//! WebSocket, sleeps, spawns, sends one HTTP request).
//!
//! | piece | where |
//! |---|---|
//! | the Stream driver (one future per run) | `driver.rs` (private; its module doc gives the design) |
//! | the client, builder, handler registrations, stop handle | [`Client`], [`ClientBuilder`], [`StopHandle`] |
//! | OpenAPI calls with token cache and retries | [`ApiClient`] |
//! | the bot reply context | [`BotContext`] |
//! | what a runtime supplies | [`runtime::Runtime`], [`runtime::HttpClient`] |
//! | tokio (tokio-tungstenite, reqwest) | `runtime::Tokio`, feature `tokio` |
//! | async-io (async-net, async-tungstenite, ureq) | `runtime::AsyncIo`, feature `async-io` |
//!
//! Applications use an adapter crate (`dingtalk-tokio`, `dingtalk-async-std`,
//! `dingtalk-blocking`), which names these types with its runtime; this crate is for adapters
//! and for a runtime of your own.
//!
//! The driver in short: one hand-written future owns the session, every connection and every
//! pending request. Each poll reads a burst of frames from every connection, feeds them to the
//! core, queues the acks the core emits and flushes each socket once: acks and pongs are
//! written by the poll that read the frame, with no task or channel in between. A handler is
//! polled once inline; only a call that is still pending is spawned (multi-threaded tokio) or
//! kept in the driver's own set (single-threaded runtimes).

#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![deny(missing_docs)]

mod aicard;
mod api;
pub mod callback;
mod client;
mod context;
mod driver;
mod handler;
pub mod observe;
#[cfg(any(feature = "redis-tokio", feature = "redis-async-io"))]
mod redis;
mod router;
pub mod runtime;
mod store;
mod tls;

pub use aicard::{AiCard, MAX_OPEN_CARDS};
pub use api::{ApiClient, DEFAULT_HTTP_TIMEOUT};
pub use client::{
    Client, ClientBuilder, ClientStats, Error, Group, GroupError, StopHandle, env_config,
    env_proxies,
};
pub use context::{BotContext, unix_ms};
pub use dingtalk_core;
pub use dingtalk_core::EventAck;
pub use dingtalk_core::aicard::{AiCardError, AiCardOptions, AiCardOutcome, StreamMode};
pub use dingtalk_core::api::retry::RetryPolicy;
pub use dingtalk_core::error::ClientError;
pub use dingtalk_core::store::{OnStoreError, StoreConfig};
pub use handler::{Handler, HandlerError};
pub use observe::{Lifecycle, LifecycleHook};
#[cfg(any(feature = "redis-tokio", feature = "redis-async-io"))]
pub use redis::RedisStore;
pub use router::{CardRouter, EventRouter, Router};
pub use store::{StateStore, StoreError};
pub use tls::default_tls_config;

/// The crate README's examples, compiled as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
