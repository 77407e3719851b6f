//! `POST /v1.0/gateway/connections/open`: the Stream gateway's open-connection call, which
//! trades the app's credentials and subscriptions for a WebSocket endpoint and a one-use
//! ticket. The [`Session`](crate::Session) sends it (and decides what a failure means); it is
//! an [`ApiCall`] like every other request, so it is built and read the same way.
//!
//! ```
//! use dingtalk_core::api::gateway::OpenConnection;
//! use dingtalk_core::api::{ApiCall, build_request};
//! use dingtalk_core::{Credentials, Endpoints, Subscription, topic};
//! let call = OpenConnection::new(
//!     &Credentials::new("id", "secret"),
//!     &[Subscription::callback(topic::BOT_MESSAGE)],
//!     "my-ua",
//!     None,
//! );
//! let request = build_request(&call, &Endpoints::default(), None).unwrap();
//! assert_eq!(request.uri(), "https://api.dingtalk.com/v1.0/gateway/connections/open");
//! let body: serde_json::Value = serde_json::from_slice(request.body()).unwrap();
//! assert_eq!(body["subscriptions"][0]["topic"], "/v1.0/im/bot/messages/get");
//! ```

use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiCall, Body, RequestSpec, Target, from_value};
use crate::config::Credentials;
use crate::error::ApiError;
use crate::frame::FrameType;
use crate::topic::Subscription;

/// The open-connection request. Its body holds the client secret: `Debug` leaves it out.
#[derive(Clone, PartialEq, Eq)]
pub struct OpenConnection {
    client_id: String,
    client_secret: String,
    subscriptions: Vec<(FrameType, String)>,
    ua: String,
    local_ip: Option<String>,
}

impl std::fmt::Debug for OpenConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenConnection")
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .field("subscriptions", &self.subscriptions)
            .field("ua", &self.ua)
            .field("local_ip", &self.local_ip)
            .finish()
    }
}

impl OpenConnection {
    /// The call for these credentials and subscriptions (each `{type, topic}` once).
    pub fn new(
        credentials: &Credentials,
        subscriptions: &[Subscription],
        ua: &str,
        local_ip: Option<&str>,
    ) -> Self {
        let mut subs: Vec<(FrameType, String)> = Vec::new();
        for s in subscriptions {
            if !subs.iter().any(|(k, t)| *k == s.kind && *t == s.topic) {
                subs.push((s.kind, s.topic.clone()));
            }
        }
        Self {
            client_id: credentials.client_id().to_owned(),
            client_secret: credentials.client_secret().to_owned(),
            subscriptions: subs,
            ua: ua.to_owned(),
            local_ip: local_ip.map(str::to_owned),
        }
    }
}

/// The gateway's answer: where to connect, with which one-use ticket.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct OpenTicket {
    /// The WebSocket endpoint (`wss://...`).
    pub endpoint: String,
    /// The one-use ticket to append as the `ticket` query parameter.
    pub ticket: String,
}

impl ApiCall for OpenConnection {
    type Output = OpenTicket;

    fn spec(&self) -> Result<RequestSpec, ApiError> {
        let subscriptions: Vec<Value> = self
            .subscriptions
            .iter()
            .map(|(kind, topic)| json!({"type": kind.as_str(), "topic": topic}))
            .collect();
        let mut body = json!({
            "clientId": self.client_id,
            "clientSecret": self.client_secret,
            "subscriptions": subscriptions,
            "ua": self.ua,
        });
        if let (Some(ip), Some(obj)) = (&self.local_ip, body.as_object_mut()) {
            obj.insert("localIp".into(), Value::String(ip.clone()));
        }
        Ok(RequestSpec {
            method: http::Method::POST,
            target: Target::Api("/v1.0/gateway/connections/open".to_owned()),
            query: Vec::new(),
            body: Body::Json(body),
            needs_token: false,
        })
    }

    fn parse(&self, body: Value) -> Result<OpenTicket, ApiError> {
        let ticket: OpenTicket = from_value(body)?;
        if ticket.endpoint.trim().is_empty() || ticket.ticket.is_empty() {
            return Err(ApiError::new(
                crate::error::ErrorKind::InvalidResponse,
                "the gateway answered no endpoint or no ticket",
            ));
        }
        Ok(ticket)
    }
}
