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
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use dingtalk_core::callback::{EventCrypto, parse_outgoing};
use dingtalk_core::{Frame, FrameType, Headers, Outcome, topic};
use serde_json::{Value, json};

use crate::{Client, unix_ms};

struct CallbackState {
    client: Client,
    crypto: Option<EventCrypto>,
}

/// An axum router with `POST /robot` (outgoing-robot callbacks, verified with the app secret)
/// and, when `crypto` is given, `POST /events` (event subscription). Both use the handlers
/// registered on `client`.
pub fn router(client: &Client, crypto: Option<EventCrypto>) -> Router {
    let state = Arc::new(CallbackState {
        client: client.clone(),
        crypto,
    });
    Router::new()
        .route("/robot", post(robot))
        .route("/events", post(events))
        .with_state(state)
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

async fn run_handler(state: &CallbackState, frame: Frame) -> Option<Outcome> {
    let call = state.client.dispatch(frame)?;
    Some(match tokio::spawn(call).await {
        Ok(outcome) => outcome,
        Err(_) => Outcome::Failed("handler panicked".into()),
    })
}

async fn robot(
    State(state): State<Arc<CallbackState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let secret = state.client.config().credentials.client_secret();
    let message = match parse_outgoing(
        header(&headers, "timestamp"),
        header(&headers, "sign"),
        secret,
        unix_ms(),
        &body,
    ) {
        Ok(m) => m,
        Err(e) => return (StatusCode::UNAUTHORIZED, e.to_string()).into_response(),
    };
    let frame = Frame::new(
        FrameType::Callback,
        Headers {
            topic: topic::BOT_MESSAGE.into(),
            message_id: message.msg_id.as_str().into(),
            content_type: Some("application/json".into()),
            ..Headers::default()
        },
        &String::from_utf8_lossy(&body),
    );
    match run_handler(&state, frame).await {
        // Replies go through the session webhook; nothing to send in the HTTP answer.
        Some(Outcome::Ok(_)) => axum::Json(json!({"msgtype": "empty"})).into_response(),
        Some(Outcome::Failed(e)) => (StatusCode::INTERNAL_SERVER_ERROR, e).into_response(),
        Some(Outcome::Later) => StatusCode::SERVICE_UNAVAILABLE.into_response(),
        None => (StatusCode::NOT_FOUND, "no bot-message handler").into_response(),
    }
}

fn random_alnum<const N: usize>() -> [u8; N] {
    const CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    std::array::from_fn(|_| CHARS[fastrand::usize(..CHARS.len())])
}

async fn events(
    State(state): State<Arc<CallbackState>>,
    Query(q): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    let Some(crypto) = &state.crypto else {
        return (
            StatusCode::NOT_FOUND,
            "event subscription is not configured",
        )
            .into_response();
    };
    let get = |a: &str, b: &str| q.get(a).or_else(|| q.get(b)).cloned().unwrap_or_default();
    let signature = get("msg_signature", "signature");
    let timestamp = get("timeStamp", "timestamp");
    let nonce = get("nonce", "nonce");
    let plain = match crypto.decrypt_body(&signature, &timestamp, &nonce, &body) {
        Ok(p) => p,
        Err(e) => return (StatusCode::UNAUTHORIZED, e.to_string()).into_response(),
    };
    let event: Value = serde_json::from_str(&plain).unwrap_or(Value::Null);
    let event_type = event["EventType"].as_str().unwrap_or_default().to_owned();
    let accepted = if event_type == "check_url" {
        true
    } else {
        let frame = Frame::new(
            FrameType::Event,
            Headers {
                topic: topic::ALL_EVENTS.into(),
                message_id: event["EventId"]
                    .as_str()
                    .map_or_else(|| format!("http-{timestamp}-{nonce}"), str::to_owned)
                    .into(),
                event_type: Some(event_type),
                event_corp_id: event["CorpId"].as_str().map(str::to_owned),
                ..Headers::default()
            },
            &plain,
        );
        matches!(run_handler(&state, frame).await, Some(Outcome::Ok(_)))
    };
    if !accepted {
        // Anything but the encrypted `success` makes DingTalk deliver the event again.
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    let nonce: [u8; 8] = random_alnum();
    let reply = crypto.encrypt(
        "success",
        &unix_ms().to_string(),
        &String::from_utf8_lossy(&nonce),
        random_alnum::<16>(),
    );
    axum::Json(reply).into_response()
}
