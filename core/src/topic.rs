//! Topics, subscriptions and how each subscribed topic is acked.

use std::time::Duration;

use crate::frame::FrameType;

/// Chatbot receives a message (CALLBACK). In groups only messages that @-mention the bot arrive.
pub const BOT_MESSAGE: &str = "/v1.0/im/bot/messages/get";
/// Delegate ("托管") bot messages (CALLBACK).
pub const BOT_DELEGATE: &str = "/v1.0/im/bot/messages/delegate";
/// Interactive-card action callback (CALLBACK), for cards created with `callbackType: "STREAM"`.
pub const CARD_CALLBACK: &str = "/v1.0/card/instances/callback";
/// Card dynamic data source pull (CALLBACK).
pub const CARD_DYNAMIC_DATA: &str = "/v1.0/card/dynamicData/get";
/// Graph API invoke: AI plugins and assistant actions (CALLBACK).
pub const GRAPH_INVOKE: &str = "/v1.0/graph/api/invoke";
/// All events ticked in the developer console (EVENT); the only event topic DingTalk supports.
pub const ALL_EVENTS: &str = "*";
/// SYSTEM health check.
pub const PING: &str = "ping";
/// SYSTEM notice that the server will close this connection.
pub const DISCONNECT: &str = "disconnect";

/// When a frame of a subscribed topic is acked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckPolicy {
    /// Ack `200 {"response": null}` as soon as the frame arrives, then run the handler. The
    /// handler's result is not sent to DingTalk. Default for bot messages: DingTalk redelivers
    /// messages whose ack is late, so waiting for a slow handler causes duplicates.
    Immediate,
    /// Ack with the handler's result (card callbacks, graph invoke, dynamic data, events). If the
    /// handler has not finished within `timeout` of the frame's arrival, a failure ack is sent
    /// (`500` for CALLBACK, `{"status":"LATER"}` for EVENT); the handler keeps running and a
    /// redelivered copy waits for its real result.
    AfterHandler {
        /// How long DingTalk may wait for the ack.
        timeout: Duration,
    },
}

/// One `{type, topic}` entry of the open-connection request, with its ack policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    /// `EVENT` or `CALLBACK`.
    pub kind: FrameType,
    /// The topic (`*` for events).
    pub topic: String,
    /// When frames of this topic are acked.
    pub ack: AckPolicy,
}

/// Default time a CALLBACK handler may take before its ack is sent as a failure.
pub const DEFAULT_CALLBACK_TIMEOUT: Duration = Duration::from_secs(5);
/// Default time an EVENT handler may take before `LATER` is acked.
pub const DEFAULT_EVENT_TIMEOUT: Duration = Duration::from_secs(10);

impl Subscription {
    /// A CALLBACK subscription with the default policy for its topic: [`AckPolicy::Immediate`]
    /// for bot messages (get and delegate), [`AckPolicy::AfterHandler`] (5 s) otherwise.
    pub fn callback(topic: impl Into<String>) -> Self {
        let topic = topic.into();
        let ack = if topic == BOT_MESSAGE || topic == BOT_DELEGATE {
            AckPolicy::Immediate
        } else {
            AckPolicy::AfterHandler {
                timeout: DEFAULT_CALLBACK_TIMEOUT,
            }
        };
        Self {
            kind: FrameType::Callback,
            topic,
            ack,
        }
    }

    /// The EVENT `*` subscription, acked after the handler (10 s).
    pub fn events() -> Self {
        Self {
            kind: FrameType::Event,
            topic: ALL_EVENTS.to_owned(),
            ack: AckPolicy::AfterHandler {
                timeout: DEFAULT_EVENT_TIMEOUT,
            },
        }
    }

    /// Replaces the ack policy.
    #[must_use]
    pub fn with_ack(mut self, ack: AckPolicy) -> Self {
        self.ack = ack;
        self
    }
}
