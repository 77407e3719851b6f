//! # dingtalk-tokio
//!
//! A DingTalk (钉钉) bot on tokio. Stream mode (the WebSocket push channel), replies through
//! session webhooks, and any OpenAPI call, with every protocol decision made by
//! [`dingtalk_core`]: acks go to the connection a frame came from, pings are answered even when
//! handlers are busy, `disconnect` switches connections without losing frames, duplicates reach
//! the handler once, dead connections are detected and replaced with backoff, and
//! [`StopHandle::stop`] finishes in-flight work before [`Client::run`] returns.
//!
//! ```no_run
//! use dingtalk_tokio::{Client, HandlerError};
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let client = Client::from_env()? // DINGTALK_CLIENT_ID, DINGTALK_CLIENT_SECRET
//!         .on_bot_message(|ctx| async move {
//!             if let Some(text) = ctx.text() {
//!                 ctx.reply_text(format!("echo: {text}")).await?;
//!             }
//!             Ok::<(), HandlerError>(())
//!         })
//!         .build()?;
//!     let stop = client.stop_handle();
//!     tokio::spawn(async move {
//!         let _ = tokio::signal::ctrl_c().await;
//!         stop.stop();
//!     });
//!     client.run().await?;
//!     Ok(())
//! }
//! ```
//!
//! Sending without a bot:
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use dingtalk_core::webhook::{CustomRobotSend, Message};
//! let api = dingtalk_tokio::ApiClient::new(
//!     dingtalk_core::Credentials::new("id", "secret"),
//!     Default::default(),
//! )?;
//! api.call(&CustomRobotSend {
//!     webhook: "https://oapi.dingtalk.com/robot/send?access_token=...".into(),
//!     secret: Some("SEC...".into()),
//!     timestamp_ms: dingtalk_tokio::unix_ms(),
//!     message: Message::text("deploy finished"),
//! })
//! .await?;
//! # Ok(()) }
//! ```
//!
//! This crate names the types of [`dingtalk_driver`] with its tokio runtime: the driver (one
//! future that reads every connection, writes every ack in the same burst and polls each
//! handler once inline, spawning only a handler that waits) is shared with the other adapters.
//! [`Client::run`] works on a multi-thread or a current-thread runtime. TLS is rustls with the
//! ring provider and the bundled webpki roots (or the platform verifier with the
//! `platform-verifier` feature, or your own `ClientConfig` through
//! [`ClientBuilder::tls_config`]); no process-wide provider is installed.

#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![deny(missing_docs)]

#[cfg(feature = "http-callback")]
pub mod http_callback;

use dingtalk_driver::runtime::{Reqwest, Tokio};

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

/// A DingTalk Stream client on tokio; see [`dingtalk_driver::Client`] for its methods.
pub type Client = dingtalk_driver::Client<Tokio>;
/// Several clients (several apps) run and stopped together; see [`dingtalk_driver::Group`].
pub type Group = dingtalk_driver::Group<Tokio>;
/// Routes chatbot messages (commands, kinds, text, fallback, `/help`); see
/// [`dingtalk_driver::Router`].
pub type Router = dingtalk_driver::Router<Reqwest>;
/// Routes organisation events by type; see [`dingtalk_driver::EventRouter`].
pub type EventRouter = dingtalk_driver::EventRouter<Reqwest>;
/// Routes card actions by action id; see [`dingtalk_driver::CardRouter`].
pub type CardRouter = dingtalk_driver::CardRouter<Reqwest>;
/// Builds a [`Client`]; see [`dingtalk_driver::ClientBuilder`] for every option and handler.
pub type ClientBuilder = dingtalk_driver::ClientBuilder<Tokio>;
/// Calls the DingTalk OpenAPI over reqwest; see [`dingtalk_driver::ApiClient`].
pub type ApiClient = dingtalk_driver::ApiClient<Reqwest>;
/// A chatbot message and its reply methods; see [`dingtalk_driver::BotContext`].
pub type BotContext = dingtalk_driver::BotContext<Reqwest>;

/// The crate README's examples, compiled as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
