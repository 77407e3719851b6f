//! # dingtalk-async-std
//!
//! A DingTalk (钉钉) bot on the async-io stack (`async-net`, `async-io` timers,
//! async-tungstenite with futures-rustls, HTTP/1.1 in the reactor with keep-alive: ureq-proto's
//! protocol state machine over the same sockets and TLS, no thread per request): the same
//! [`Client::run`] future runs under async-std, smol, or `futures_lite::future::block_on`,
//! because it spawns nothing: the one driver of [`dingtalk_driver`] polls every socket, timer
//! and waiting handler inside the future you run. No tokio anywhere in the tree.
//!
//! ```no_run
//! use dingtalk_async_std::{Client, HandlerError};
//!
//! fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let client = Client::from_env()?
//!         .on_bot_message(|ctx| async move {
//!             if let Some(text) = ctx.text() {
//!                 ctx.reply_text(format!("echo: {text}")).await?;
//!             }
//!             Ok::<(), HandlerError>(())
//!         })
//!         .build()?;
//!     // async_std::task::block_on, smol::block_on or futures_lite::future::block_on:
//!     futures_lite::future::block_on(client.run())?;
//!     Ok(())
//! }
//! ```
//!
//! Sending without a bot:
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use dingtalk_core::webhook::{CustomRobotSend, Message};
//! let api = dingtalk_async_std::ApiClient::new(
//!     dingtalk_core::Credentials::new("id", "secret"),
//!     Default::default(),
//! )?;
//! api.call(&CustomRobotSend {
//!     webhook: "https://oapi.dingtalk.com/robot/send?access_token=...".into(),
//!     secret: Some("SEC...".into()),
//!     timestamp_ms: dingtalk_async_std::unix_ms(),
//!     message: Message::text("deploy finished"),
//! })
//! .await?;
//! # Ok(()) }
//! ```
//!
//! A handler runs inside the client's future: one that computes for long should move that
//! work to a thread (e.g. the `blocking` crate's `unblock`), as in any single-task async program.

#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![deny(missing_docs)]

use dingtalk_driver::runtime::{AsyncIo, Ureq};

/// HTTP-callback mode (feature `http-callback`): DingTalk POSTs outgoing-robot messages and
/// subscribed events to your server; they reach the same handlers as Stream mode, verified,
/// deduplicated and bounded (see [`dingtalk_driver::callback`]). Served by hyper on the
/// async-io stack in one future (no executor needed); hyper brings tokio's `sync` primitives,
/// never its runtime.
///
/// ```no_run
/// # async fn demo(client: dingtalk_async_std::Client) -> std::io::Result<()> {
/// let listener = std::net::TcpListener::bind("0.0.0.0:8080")?;
/// dingtalk_async_std::http_callback::serve(listener, &client, None).await // POST /robot
/// # }
/// ```
#[cfg(feature = "http-callback")]
pub mod http_callback {
    use std::sync::Arc;

    use dingtalk_core::callback::EventCrypto;
    use dingtalk_driver::runtime::AsyncIo;

    pub use dingtalk_driver::callback::{CallbackLimits, MAX_CONNECTIONS};

    /// The service: every decision and the handler calls.
    pub type CallbackService = dingtalk_driver::callback::CallbackService<AsyncIo>;

    /// Serves `client`'s handlers on `listener`: `POST /robot` and, with `crypto`,
    /// `POST /events`, until the future is dropped.
    pub async fn serve(
        listener: std::net::TcpListener,
        client: &crate::Client,
        crypto: Option<EventCrypto>,
    ) -> std::io::Result<()> {
        let service = Arc::new(CallbackService::new(client, crypto));
        dingtalk_driver::callback::serve(listener, service).await
    }

    /// [`serve`] until `stop` is stopped (the client's [`StopHandle`](crate::StopHandle), say):
    /// then no connection is accepted, open ones close, and running handler calls finish.
    pub async fn serve_until(
        listener: std::net::TcpListener,
        client: &crate::Client,
        crypto: Option<EventCrypto>,
        stop: crate::StopHandle,
    ) -> std::io::Result<()> {
        let service = Arc::new(CallbackService::new(client, crypto));
        dingtalk_driver::callback::serve_until(
            listener,
            service,
            async move { stop.stopped().await },
        )
        .await
    }
}

pub use dingtalk_core;
pub use dingtalk_driver;
#[cfg(feature = "redis")]
pub use dingtalk_driver::RedisStore;
pub use dingtalk_driver::{AiCard, AiCardError, AiCardOptions, AiCardOutcome, StreamMode};
pub use dingtalk_driver::{
    ClientError, Error, EventAck, HandlerError, RetryPolicy, StopHandle, default_tls_config,
    env_config, env_proxies, unix_ms,
};
pub use dingtalk_driver::{
    ClientStats, GroupError, Lifecycle, OnStoreError, StateStore, StoreConfig, StoreError,
};

/// A DingTalk Stream client on the async-io stack; see [`dingtalk_driver::Client`].
pub type Client = dingtalk_driver::Client<AsyncIo>;
/// Several clients (several apps) run and stopped together; see [`dingtalk_driver::Group`].
pub type Group = dingtalk_driver::Group<AsyncIo>;
/// Routes chatbot messages (commands, kinds, text, fallback, `/help`); see
/// [`dingtalk_driver::Router`].
pub type Router = dingtalk_driver::Router<Ureq>;
/// Routes organisation events by type; see [`dingtalk_driver::EventRouter`].
pub type EventRouter = dingtalk_driver::EventRouter<Ureq>;
/// Routes card actions by action id; see [`dingtalk_driver::CardRouter`].
pub type CardRouter = dingtalk_driver::CardRouter<Ureq>;
/// Builds a [`Client`]; see [`dingtalk_driver::ClientBuilder`] for every option and handler.
pub type ClientBuilder = dingtalk_driver::ClientBuilder<AsyncIo>;
/// Calls the DingTalk OpenAPI (ureq with keep-alive, on a thread pool); see
/// [`dingtalk_driver::ApiClient`].
pub type ApiClient = dingtalk_driver::ApiClient<Ureq>;
/// A chatbot message and its reply methods; see [`dingtalk_driver::BotContext`].
pub type BotContext = dingtalk_driver::BotContext<Ureq>;

/// The crate README's examples, compiled as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
