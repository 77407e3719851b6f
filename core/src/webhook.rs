//! Session-webhook replies and custom-robot webhooks: message bodies, signing, expiry checks.
//!
//! ```
//! use dingtalk_core::webhook::{At, Message, sign};
//! let body = Message::text("hello @manager1").at(At::users(["manager1"])).to_json();
//! assert_eq!(body["at"]["atUserIds"][0], "manager1");
//! // The published custom-robot signing vector:
//! assert_eq!(sign("this is secret", 1577262236757), "hmPWwU+7lVdm3ZZz0r9tSfx0L4Q26jWOZr9+Gs6EZQM=");
//! ```

use std::fmt;

use base64::Engine;
use hmac::{Hmac, Mac};
use serde::Serialize;
use serde_json::{Value, json};
use sha2::Sha256;

use crate::api::{ApiCall, Body, RequestSpec, Target, unit};
use crate::error::{ApiError, ErrorKind};

/// Webhook bodies are refused above this size (DingTalk answers 460101 above 20 000 bytes).
pub const MAX_BODY_BYTES: usize = 20_000;

/// Whom a message @-mentions. For the mention to render, the user id or mobile must also appear
/// in the text (e.g. `@manager1`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct At {
    /// `atUserIds`.
    #[serde(rename = "atUserIds", skip_serializing_if = "Vec::is_empty")]
    pub user_ids: Vec<String>,
    /// `atMobiles`.
    #[serde(rename = "atMobiles", skip_serializing_if = "Vec::is_empty")]
    pub mobiles: Vec<String>,
    /// `isAtAll`.
    #[serde(rename = "isAtAll")]
    pub all: bool,
}

impl At {
    /// Mentions these user ids.
    pub fn users<I: IntoIterator<Item = S>, S: Into<String>>(ids: I) -> Self {
        Self {
            user_ids: ids.into_iter().map(Into::into).collect(),
            ..Self::default()
        }
    }

    /// Mentions these mobiles.
    pub fn mobiles<I: IntoIterator<Item = S>, S: Into<String>>(mobiles: I) -> Self {
        Self {
            mobiles: mobiles.into_iter().map(Into::into).collect(),
            ..Self::default()
        }
    }

    /// Mentions everyone.
    pub fn all() -> Self {
        Self {
            all: true,
            ..Self::default()
        }
    }
}

/// One button of a multi-button action card.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Button {
    /// Button text.
    pub title: String,
    /// `actionURL`.
    #[serde(rename = "actionURL")]
    pub action_url: String,
}

/// One entry of a feed card.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FeedLink {
    /// Title.
    pub title: String,
    /// `messageURL` (upper-case URL, unlike `link`).
    #[serde(rename = "messageURL")]
    pub message_url: String,
    /// `picURL`.
    #[serde(rename = "picURL")]
    pub pic_url: String,
}

/// Button layout of an action card.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Orientation {
    /// `"0"`: buttons stacked.
    #[default]
    Vertical,
    /// `"1"`: buttons side by side.
    Horizontal,
}

impl Orientation {
    fn wire(self) -> &'static str {
        match self {
            Self::Vertical => "0",
            Self::Horizontal => "1",
        }
    }
}

/// A message for a session webhook or custom robot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// `text`.
    Text {
        /// The text.
        content: String,
        /// Mentions.
        at: Option<At>,
    },
    /// `markdown`.
    Markdown {
        /// Title shown in notifications.
        title: String,
        /// Markdown text.
        text: String,
        /// Mentions.
        at: Option<At>,
    },
    /// `link` (`messageUrl`, `picUrl`); cannot @.
    Link {
        /// Title.
        title: String,
        /// Text.
        text: String,
        /// `messageUrl`.
        message_url: String,
        /// `picUrl` (may be empty).
        pic_url: String,
    },
    /// `actionCard` with one button (`singleTitle`, `singleURL`).
    ActionCard {
        /// Title.
        title: String,
        /// Markdown text.
        text: String,
        /// Button text.
        single_title: String,
        /// Button URL.
        single_url: String,
    },
    /// `actionCard` with several buttons (`btns`).
    ActionCardButtons {
        /// Title.
        title: String,
        /// Markdown text.
        text: String,
        /// The buttons.
        buttons: Vec<Button>,
        /// Layout.
        orientation: Orientation,
    },
    /// `feedCard` (`messageURL`, `picURL`); cannot @.
    FeedCard {
        /// The entries.
        links: Vec<FeedLink>,
    },
}

impl Message {
    /// A text message.
    pub fn text(content: impl Into<String>) -> Self {
        Self::Text {
            content: content.into(),
            at: None,
        }
    }

    /// A markdown message.
    pub fn markdown(title: impl Into<String>, text: impl Into<String>) -> Self {
        Self::Markdown {
            title: title.into(),
            text: text.into(),
            at: None,
        }
    }

    /// Adds mentions (text and markdown only; ignored by the other types, which cannot @).
    #[must_use]
    pub fn at(mut self, mention: At) -> Self {
        match &mut self {
            Self::Text { at, .. } | Self::Markdown { at, .. } => *at = Some(mention),
            _ => {}
        }
        self
    }

    /// The JSON body.
    pub fn to_json(&self) -> Value {
        match self {
            Self::Text { content, at } => {
                with_at(json!({"msgtype": "text", "text": {"content": content}}), at)
            }
            Self::Markdown { title, text, at } => with_at(
                json!({"msgtype": "markdown", "markdown": {"title": title, "text": text}}),
                at,
            ),
            Self::Link {
                title,
                text,
                message_url,
                pic_url,
            } => json!({"msgtype": "link", "link": {
                "title": title, "text": text, "messageUrl": message_url, "picUrl": pic_url}}),
            Self::ActionCard {
                title,
                text,
                single_title,
                single_url,
            } => json!({"msgtype": "actionCard", "actionCard": {
                "title": title, "text": text, "singleTitle": single_title, "singleURL": single_url}}),
            Self::ActionCardButtons {
                title,
                text,
                buttons,
                orientation,
            } => json!({"msgtype": "actionCard", "actionCard": {
                "title": title, "text": text, "btnOrientation": orientation.wire(), "btns": buttons}}),
            Self::FeedCard { links } => {
                json!({"msgtype": "feedCard", "feedCard": {"links": links}})
            }
        }
    }

    fn validate(&self) -> Result<Value, ApiError> {
        match self {
            Self::ActionCardButtons { buttons, .. } if buttons.is_empty() => {
                return Err(ApiError::validation(
                    "an action card needs at least one button",
                ));
            }
            Self::FeedCard { links } if links.is_empty() => {
                return Err(ApiError::validation("a feed card needs at least one link"));
            }
            _ => {}
        }
        let body = self.to_json();
        let len = body.to_string().len();
        if len > MAX_BODY_BYTES {
            return Err(ApiError::new(
                ErrorKind::TooLarge,
                format!("message body of {len} bytes exceeds {MAX_BODY_BYTES}"),
            ));
        }
        Ok(body)
    }
}

fn with_at(mut body: Value, at: &Option<At>) -> Value {
    if let (Some(at), Some(obj)) = (at, body.as_object_mut()) {
        obj.insert("at".into(), json!(at));
    }
    body
}

/// Custom-robot signature: Base64(HMAC-SHA256(key = secret, msg = `"{timestamp}\n{secret}"`)).
/// Not URL-encoded: [`CustomRobotSend`] escapes it when it builds the URL.
pub fn sign(secret: &str, timestamp_ms: i64) -> String {
    hmac_sha256_base64(
        secret.as_bytes(),
        format!("{timestamp_ms}\n{secret}").as_bytes(),
    )
}

pub(crate) fn hmac_sha256_base64(key: &[u8], msg: &[u8]) -> String {
    // HMAC accepts keys of any length, so `new_from_slice` cannot fail here.
    let mut mac = match <Hmac<Sha256> as Mac>::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => return String::new(),
    };
    mac.update(msg);
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// Reply through the `sessionWebhook` of an incoming message. Refused before sending once
/// `sessionWebhookExpiredTime` has passed. `Debug` leaves the URL out (it is a credential).
#[derive(Clone, PartialEq, Eq)]
pub struct SessionWebhookSend {
    /// The `sessionWebhook` URL.
    pub url: String,
    /// `sessionWebhookExpiredTime` (unix ms), when known.
    pub expires_at_ms: Option<i64>,
    /// The current wall-clock time (unix ms).
    pub now_ms: i64,
    /// The message.
    pub message: Message,
}

impl fmt::Debug for SessionWebhookSend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionWebhookSend")
            .field("url", &"<redacted>")
            .field("expires_at_ms", &self.expires_at_ms)
            .field("message", &self.message)
            .finish()
    }
}

impl ApiCall for SessionWebhookSend {
    type Output = ();

    fn spec(&self) -> Result<RequestSpec, ApiError> {
        if let Some(expires) = self.expires_at_ms {
            if self.now_ms >= expires {
                return Err(ApiError::new(
                    ErrorKind::SessionWebhookExpired,
                    format!("session webhook expired at {expires} (now {})", self.now_ms),
                ));
            }
        }
        // A forged or corrupted frame must not make the bot post its reply in clear text.
        crate::url::check_secure(&self.url, "sessionWebhook").map_err(ApiError::validation)?;
        Ok(RequestSpec {
            method: http::Method::POST,
            target: Target::Webhook(self.url.clone()),
            query: Vec::new(),
            body: Body::Json(self.message.validate()?),
            needs_token: false,
        })
    }

    fn parse(&self, body: Value) -> Result<(), ApiError> {
        unit(body)
    }
}

/// Send through a custom robot (`{oapi}/robot/send?access_token=…`), signed when the robot uses
/// 加签. The timestamp must be within an hour of DingTalk's clock.
#[derive(Clone, PartialEq, Eq)]
pub struct CustomRobotSend {
    /// The robot's webhook URL, or its bare `access_token`.
    pub webhook: String,
    /// The `SEC…` signing secret, if the robot has one.
    pub secret: Option<String>,
    /// The current wall-clock time (unix ms), used for the signature.
    pub timestamp_ms: i64,
    /// The message.
    pub message: Message,
}

impl fmt::Debug for CustomRobotSend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CustomRobotSend")
            .field("webhook", &"<redacted>")
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .field("timestamp_ms", &self.timestamp_ms)
            .field("message", &self.message)
            .finish()
    }
}

/// The default custom-robot endpoint, used when only an access token is given.
pub const CUSTOM_ROBOT_URL: &str = "https://oapi.dingtalk.com/robot/send";

impl ApiCall for CustomRobotSend {
    type Output = ();

    fn spec(&self) -> Result<RequestSpec, ApiError> {
        let body = self.message.validate()?;
        let mut query = Vec::new();
        let url = if self.webhook.contains("://") {
            crate::url::check_secure(&self.webhook, "custom robot webhook")
                .map_err(ApiError::validation)?;
            self.webhook.clone()
        } else {
            crate::api::require("access_token", &self.webhook)?;
            query.push(("access_token".to_owned(), self.webhook.clone()));
            CUSTOM_ROBOT_URL.to_owned()
        };
        if let Some(secret) = &self.secret {
            query.push(("timestamp".to_owned(), self.timestamp_ms.to_string()));
            query.push(("sign".to_owned(), sign(secret, self.timestamp_ms)));
        }
        Ok(RequestSpec {
            method: http::Method::POST,
            target: Target::Webhook(url),
            query,
            body: Body::Json(body),
            needs_token: false,
        })
    }

    fn parse(&self, body: Value) -> Result<(), ApiError> {
        unit(body)
    }

    fn classify(&self, mut error: ApiError) -> ApiError {
        // For a custom robot 300001 means "token is not exist", not an expired session.
        if error.code.as_deref() == Some("300001") {
            error.kind = ErrorKind::WebhookRejected;
        }
        error
    }
}
