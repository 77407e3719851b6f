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

use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, Method, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use dingtalk_core::callback::EventCrypto;
use dingtalk_driver::runtime::{BoxFuture, Tokio};

pub use dingtalk_driver::callback::CallbackLimits;

use crate::Client;

/// The service behind the router (every decision and the handler calls; see
/// [`dingtalk_driver::callback`]).
pub type CallbackService = dingtalk_driver::callback::CallbackService<Tokio>;

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
    let service = Arc::new(CallbackService::with_limits(client, crypto, limits));
    Router::new()
        .route("/robot", any(handle))
        .route("/events", any(handle))
        // The service refuses larger bodies itself; axum stops reading them at the same size.
        .layer(DefaultBodyLimit::max(max_body))
        .with_state(service)
}

async fn handle(
    State(service): State<Arc<CallbackService>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let spawn = |task: BoxFuture<'static, ()>| {
        tokio::spawn(task);
    };
    service
        .handle(&method, &uri, &headers, &body, &spawn)
        .await
        .map(Body::from)
        .into_response()
}
