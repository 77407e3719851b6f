//! Typed payloads: chatbot messages of every msgtype, card callbacks, graph requests and
//! responses, events. Unknown fields never make parsing fail; unknown message types are kept raw.
//!
//! ```
//! use dingtalk_core::model::{ChatbotMessage, Content};
//! let msg: ChatbotMessage = serde_json::from_str(
//!     r#"{"msgtype":"text","text":{"content":" hi"},"conversationType":"2","senderStaffId":"u1","isInAtList":true}"#,
//! ).unwrap();
//! assert!(matches!(msg.content(), Content::Text { text } if text == " hi"));
//! assert!(msg.is_group());
//! ```

use std::collections::BTreeMap;

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A user mentioned in a group message.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct AtUser {
    /// `dingtalkId`.
    pub dingtalk_id: String,
    /// `staffId` (only for members of the bot's org).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub staff_id: Option<String>,
}

/// The person a delegate ("托管") message is answered for.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct HostingContext {
    /// `userId`.
    pub user_id: String,
    /// `nick`.
    pub nick: String,
}

/// A chatbot message (`/v1.0/im/bot/messages/get`, the delegate topic, or an HTTP-mode
/// outgoing-robot callback).
///
/// Deserialized field by field in one pass (see the `Deserialize` impl below): a derived impl
/// with `#[serde(flatten)]` would first copy the whole object into serde's buffer of values.
#[derive(Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChatbotMessage {
    /// `msgId`.
    pub msg_id: String,
    /// `msgtype`: `text`, `picture`, `richText`, `audio`, `video`, `file`, `unknownMsgType`, ...
    pub msgtype: String,
    /// `conversationId`.
    pub conversation_id: String,
    /// `conversationType`: `"1"` one-to-one, `"2"` group.
    pub conversation_type: String,
    /// `conversationTitle` (groups).
    pub conversation_title: Option<String>,
    /// `createAt` (unix ms).
    pub create_at: Option<i64>,
    /// `senderId`.
    pub sender_id: String,
    /// `senderNick`.
    pub sender_nick: String,
    /// `senderStaffId` (user id inside the org).
    pub sender_staff_id: Option<String>,
    /// `senderCorpId`.
    pub sender_corp_id: Option<String>,
    /// `senderPlatform`.
    pub sender_platform: Option<String>,
    /// `chatbotCorpId`.
    pub chatbot_corp_id: Option<String>,
    /// `chatbotUserId`.
    pub chatbot_user_id: Option<String>,
    /// `robotCode`.
    pub robot_code: Option<String>,
    /// `isAdmin`.
    pub is_admin: Option<bool>,
    /// `isInAtList` (groups).
    pub is_in_at_list: Option<bool>,
    /// `atUsers`.
    pub at_users: Vec<AtUser>,
    /// `sessionWebhook`: where replies go.
    pub session_webhook: Option<String>,
    /// `sessionWebhookExpiredTime` (unix ms).
    pub session_webhook_expired_time: Option<i64>,
    /// `hostingContext` (delegate topic).
    pub hosting_context: Option<HostingContext>,
    /// `text` (msgtype `text`).
    pub text: Option<TextBody>,
    /// `content` (all other msgtypes), kept raw; read it through [`ChatbotMessage::content`].
    pub content: Option<Value>,
    /// Every other field.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The session webhook is a credential (anyone holding it can post into the conversation until
/// it expires): `Debug` shows only whether there is one.
impl fmt::Debug for ChatbotMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChatbotMessage")
            .field("msg_id", &self.msg_id)
            .field("msgtype", &self.msgtype)
            .field("conversation_id", &self.conversation_id)
            .field("conversation_type", &self.conversation_type)
            .field("conversation_title", &self.conversation_title)
            .field("create_at", &self.create_at)
            .field("sender_id", &self.sender_id)
            .field("sender_nick", &self.sender_nick)
            .field("sender_staff_id", &self.sender_staff_id)
            .field("sender_corp_id", &self.sender_corp_id)
            .field("sender_platform", &self.sender_platform)
            .field("chatbot_corp_id", &self.chatbot_corp_id)
            .field("chatbot_user_id", &self.chatbot_user_id)
            .field("robot_code", &self.robot_code)
            .field("is_admin", &self.is_admin)
            .field("is_in_at_list", &self.is_in_at_list)
            .field("at_users", &self.at_users)
            .field(
                "session_webhook",
                &self.session_webhook.as_ref().map(|_| "<redacted>"),
            )
            .field(
                "session_webhook_expired_time",
                &self.session_webhook_expired_time,
            )
            .field("hosting_context", &self.hosting_context)
            .field("text", &self.text)
            .field("content", &self.content)
            .field("extra", &self.extra)
            .finish()
    }
}

/// A key of a JSON object, borrowed from the input when it has no escapes.
enum Key<'de> {
    Borrowed(&'de str),
    Owned(String),
}

impl Key<'_> {
    fn as_str(&self) -> &str {
        match self {
            Key::Borrowed(s) => s,
            Key::Owned(s) => s,
        }
    }

    fn into_owned(self) -> String {
        match self {
            Key::Borrowed(s) => s.to_owned(),
            Key::Owned(s) => s,
        }
    }
}

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_borrowed_str<E: serde::de::Error>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key::Borrowed(v))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key::Owned(v.to_owned()))
            }
            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Key<'de>, E> {
                Ok(Key::Owned(v))
            }
        }
        d.deserialize_str(V)
    }
}

/// The same rules as a derived impl with `#[serde(rename_all = "camelCase", default)]` and the
/// unknown fields flattened into `extra`: a missing field takes its default, a repeated known
/// field is an error, a `null` is accepted where the field is an `Option`.
impl<'de> Deserialize<'de> for ChatbotMessage {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = ChatbotMessage;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a chatbot message object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<ChatbotMessage, A::Error> {
                let mut m = ChatbotMessage::default();
                // One bit per known field (22; a u64 holds up to 64).
                let mut seen = 0u64;
                macro_rules! fields {
                    ($key:expr; $($name:literal => $field:ident,)*) => {{
                        let mut bit = 0u64;
                        $(
                            if $key == $name {
                                if seen & (1 << bit) != 0 {
                                    return Err(serde::de::Error::duplicate_field($name));
                                }
                                seen |= 1 << bit;
                                m.$field = map.next_value()?;
                                continue;
                            }
                            bit += 1;
                        )*
                        let _ = bit;
                    }};
                }
                while let Some(key) = map.next_key::<Key<'de>>()? {
                    fields!(key.as_str();
                        "msgId" => msg_id,
                        "msgtype" => msgtype,
                        "conversationId" => conversation_id,
                        "conversationType" => conversation_type,
                        "conversationTitle" => conversation_title,
                        "createAt" => create_at,
                        "senderId" => sender_id,
                        "senderNick" => sender_nick,
                        "senderStaffId" => sender_staff_id,
                        "senderCorpId" => sender_corp_id,
                        "senderPlatform" => sender_platform,
                        "chatbotCorpId" => chatbot_corp_id,
                        "chatbotUserId" => chatbot_user_id,
                        "robotCode" => robot_code,
                        "isAdmin" => is_admin,
                        "isInAtList" => is_in_at_list,
                        "atUsers" => at_users,
                        "sessionWebhook" => session_webhook,
                        "sessionWebhookExpiredTime" => session_webhook_expired_time,
                        "hostingContext" => hosting_context,
                        "text" => text,
                        "content" => content,
                    );
                    let value: Value = map.next_value()?;
                    m.extra.insert(key.into_owned(), value);
                }
                Ok(m)
            }
        }
        d.deserialize_map(V)
    }
}

/// `text` of a text message.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TextBody {
    /// The text.
    pub content: String,
    /// Quoted reply (unofficial field).
    pub is_reply_msg: Option<bool>,
}

/// One element of a rich-text message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RichTextItem {
    /// A run of text.
    Text(String),
    /// A picture.
    Picture {
        /// `downloadCode`.
        download_code: String,
    },
    /// Anything else, raw.
    Other(Value),
}

/// The typed content of a [`ChatbotMessage`].
#[derive(Debug, Clone, PartialEq)]
pub enum Content {
    /// `text`.
    Text {
        /// The text.
        text: String,
    },
    /// `picture`.
    Picture {
        /// `downloadCode` for [`crate::api::robot::MessageFileDownload`].
        download_code: String,
    },
    /// `richText`.
    RichText(Vec<RichTextItem>),
    /// `audio`.
    Audio {
        /// `downloadCode`.
        download_code: String,
        /// Speech recognition result.
        recognition: Option<String>,
        /// Duration (ms), when given.
        duration: Option<String>,
    },
    /// `video`.
    Video {
        /// `downloadCode`.
        download_code: String,
        /// `videoType`, e.g. `mp4`.
        video_type: Option<String>,
        /// Duration, when given.
        duration: Option<String>,
    },
    /// `file`.
    File {
        /// `downloadCode`.
        download_code: String,
        /// `fileName`.
        file_name: Option<String>,
        /// `spaceId`.
        space_id: Option<String>,
        /// `fileId`.
        file_id: Option<String>,
    },
    /// Any other msgtype (including `unknownMsgType`): the type and the raw content.
    Unknown {
        /// `msgtype`.
        msgtype: String,
        /// `content` (or `Null`).
        content: Value,
    },
}

fn str_field(v: &Value, k: &str) -> Option<String> {
    match v.get(k)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

impl ChatbotMessage {
    /// Parses the `data` of a bot-message frame.
    pub fn from_json(data: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(data)
    }

    /// Whether it came from a group chat.
    pub fn is_group(&self) -> bool {
        self.conversation_type == "2"
    }

    /// The text of a text message, trimmed of the leading space DingTalk adds after an @.
    pub fn text(&self) -> Option<&str> {
        self.text.as_ref().map(|t| t.content.trim())
    }

    /// The typed content. A known msgtype whose content lacks its download code is `Unknown`.
    pub fn content(&self) -> Content {
        let raw = self.content.clone().unwrap_or(Value::Null);
        let code = str_field(&raw, "downloadCode");
        let unknown = || Content::Unknown {
            msgtype: self.msgtype.clone(),
            content: raw.clone(),
        };
        match self.msgtype.as_str() {
            "text" => Content::Text {
                text: self
                    .text
                    .as_ref()
                    .map(|t| t.content.clone())
                    .unwrap_or_default(),
            },
            "picture" => match code
                .clone()
                .or_else(|| str_field(&raw, "pictureDownloadCode"))
            {
                Some(download_code) => Content::Picture { download_code },
                None => unknown(),
            },
            "richText" => match raw.get("richText").and_then(Value::as_array) {
                Some(items) => Content::RichText(
                    items
                        .iter()
                        .map(|i| {
                            if let Some(t) = str_field(i, "text") {
                                RichTextItem::Text(t)
                            } else if let Some(c) = str_field(i, "downloadCode") {
                                RichTextItem::Picture { download_code: c }
                            } else {
                                RichTextItem::Other(i.clone())
                            }
                        })
                        .collect(),
                ),
                None => unknown(),
            },
            "audio" => match code {
                Some(download_code) => Content::Audio {
                    download_code,
                    recognition: str_field(&raw, "recognition"),
                    duration: str_field(&raw, "duration"),
                },
                None => unknown(),
            },
            "video" => match code {
                Some(download_code) => Content::Video {
                    download_code,
                    video_type: str_field(&raw, "videoType"),
                    duration: str_field(&raw, "duration"),
                },
                None => unknown(),
            },
            "file" => match code {
                Some(download_code) => Content::File {
                    download_code,
                    file_name: str_field(&raw, "fileName"),
                    space_id: str_field(&raw, "spaceId"),
                    file_id: str_field(&raw, "fileId"),
                },
                None => unknown(),
            },
            _ => unknown(),
        }
    }
}

impl ChatbotMessage {
    /// A session-webhook reply to this message, refused before sending once the webhook has
    /// expired (`now_ms` is the wall clock in unix ms).
    pub fn reply_call(
        &self,
        message: crate::webhook::Message,
        now_ms: i64,
    ) -> Result<crate::webhook::SessionWebhookSend, crate::ApiError> {
        let url = self
            .session_webhook
            .clone()
            .ok_or_else(|| crate::ApiError::validation("the message has no sessionWebhook"))?;
        Ok(crate::webhook::SessionWebhookSend {
            url,
            expires_at_ms: self.session_webhook_expired_time,
            now_ms,
            message,
        })
    }

    /// A text reply; in a group the sender is @-mentioned.
    pub fn text_reply(&self, text: impl Into<String>) -> crate::webhook::Message {
        let message = crate::webhook::Message::text(text);
        match (&self.sender_staff_id, self.is_group()) {
            (Some(staff), true) => message.at(crate::webhook::At::users([staff.clone()])),
            _ => message,
        }
    }

    /// Where a card answering this message goes: the group, or the one-to-one chat.
    pub fn card_space(&self, robot_code: &str) -> crate::api::card::CardSpace {
        if self.is_group() {
            crate::api::card::CardSpace::Group {
                open_conversation_id: self.conversation_id.clone(),
                robot_code: robot_code.to_owned(),
                at_user_ids: None,
                at_all: false,
                recipients: Vec::new(),
            }
        } else {
            crate::api::card::CardSpace::Robot {
                user_id: self.sender_staff_id.clone().unwrap_or_default(),
                robot_code: Some(robot_code.to_owned()),
            }
        }
    }

    /// The call that turns a `downloadCode` of this message into a download URL.
    pub fn download_call(
        &self,
        download_code: &str,
        app_robot_code: &str,
    ) -> crate::api::robot::MessageFileDownload {
        crate::api::robot::MessageFileDownload {
            robot_code: self
                .robot_code
                .clone()
                .unwrap_or_else(|| app_robot_code.to_owned()),
            download_code: download_code.to_owned(),
        }
    }
}

/// A card action (`/v1.0/card/instances/callback`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct CardCallback {
    /// `type`, e.g. `actionCallback`.
    #[serde(rename = "type")]
    pub kind: String,
    /// `outTrackId`: the card instance.
    pub out_track_id: String,
    /// `corpId`.
    pub corp_id: String,
    /// `userId`: who clicked.
    pub user_id: String,
    /// `userIdType` (1 userId, 2 unionId).
    pub user_id_type: Option<i64>,
    /// `spaceType`.
    pub space_type: Option<String>,
    /// `spaceId`.
    pub space_id: Option<String>,
    /// `content`: a JSON *string*; read it with [`CardCallback::action`].
    pub content: Option<String>,
    /// `value`: a JSON string (same as content in samples).
    pub value: Option<String>,
    /// `extension`: a JSON string.
    pub extension: Option<String>,
    /// Every other field.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `cardPrivateData` of a card action.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct CardAction {
    /// `actionIds`.
    pub action_ids: Vec<String>,
    /// `params`.
    pub params: Map<String, Value>,
}

impl CardCallback {
    /// Decodes `content` (the JSON string) into the action ids and params.
    pub fn action(&self) -> Result<CardAction, serde_json::Error> {
        #[derive(Deserialize, Default)]
        #[serde(rename_all = "camelCase", default)]
        struct Wrapper {
            card_private_data: CardAction,
        }
        let text = self.content.as_deref().unwrap_or("{}");
        Ok(serde_json::from_str::<Wrapper>(text)?.card_private_data)
    }
}

/// The answer to a card action, sent inside the ack's `{"response": …}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CardCallbackResponse {
    /// `cardUpdateOptions`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub card_update_options: Option<CardUpdateOptions>,
    /// `cardData.cardParamMap`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub card_data: Option<CardParamMap>,
    /// `userPrivateData.cardParamMap`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_private_data: Option<CardParamMap>,
}

/// Which parts of a card an update touches.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CardUpdateOptions {
    /// Merge card data by key instead of replacing it.
    pub update_card_data_by_key: bool,
    /// Merge private data by key instead of replacing it.
    pub update_private_data_by_key: bool,
}

/// `{"cardParamMap": {…}}` whose values are all strings, as DingTalk requires: non-string values
/// are JSON-encoded.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CardParamMap {
    /// The parameters.
    #[serde(rename = "cardParamMap")]
    pub card_param_map: BTreeMap<String, String>,
}

impl CardParamMap {
    /// Builds the map from any JSON object; strings stay as they are, everything else is
    /// serialized (`true` → `"true"`, `[1]` → `"[1]"`).
    pub fn from_json(values: &Map<String, Value>) -> Self {
        Self {
            card_param_map: values
                .iter()
                .map(|(k, v)| {
                    let s = match v {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    (k.clone(), s)
                })
                .collect(),
        }
    }

    /// Adds one parameter.
    #[must_use]
    pub fn with(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.card_param_map.insert(key.into(), value.into());
        self
    }
}

/// A graph API request (`/v1.0/graph/api/invoke`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct GraphRequest {
    /// `requestLine`.
    pub request_line: RequestLine,
    /// `headers`.
    pub headers: BTreeMap<String, String>,
    /// `body`, as text.
    pub body: String,
}

/// The request line of a [`GraphRequest`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RequestLine {
    /// Method, e.g. `POST`.
    pub method: String,
    /// URI with query.
    pub uri: String,
}

impl GraphRequest {
    /// The path of the URI (before `?`).
    pub fn path(&self) -> &str {
        self.request_line
            .uri
            .split_once('?')
            .map_or(self.request_line.uri.as_str(), |(p, _)| p)
    }

    /// The query of the URI (after `?`), if any.
    pub fn query(&self) -> Option<&str> {
        self.request_line.uri.split_once('?').map(|(_, q)| q)
    }
}

/// A graph API response, sent inside the ack's `{"response": …}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GraphResponse {
    /// `statusLine`.
    pub status_line: StatusLine,
    /// `headers`.
    pub headers: BTreeMap<String, String>,
    /// `body`, as text.
    pub body: String,
}

/// The status line of a [`GraphResponse`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusLine {
    /// Status code.
    pub code: u16,
    /// Reason phrase.
    pub reason_phrase: String,
}

impl GraphResponse {
    /// `200 OK` with a JSON body.
    pub fn json(body: &Value) -> Self {
        let mut headers = BTreeMap::new();
        headers.insert("Content-Type".to_owned(), "application/json".to_owned());
        Self {
            status_line: StatusLine {
                code: 200,
                reason_phrase: "OK".to_owned(),
            },
            headers,
            body: body.to_string(),
        }
    }
}

/// An organisation event (EVENT frame): the typed headers plus the raw data.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// `eventType`, e.g. `user_add_org`.
    pub event_type: String,
    /// `eventId`.
    pub event_id: Option<String>,
    /// `eventCorpId`.
    pub corp_id: Option<String>,
    /// `eventBornTime` (unix ms).
    pub born_time: Option<i64>,
    /// The event's data.
    pub data: Value,
}

impl Event {
    /// The data typed, for the common event types ([`crate::events`]; any other type is
    /// [`OrgEvent::Other`](crate::events::OrgEvent::Other) with the raw data). A payload that
    /// does not fit its type is an error; the raw [`Event::data`] stays.
    pub fn typed(&self) -> Result<crate::events::OrgEvent, serde_json::Error> {
        crate::events::OrgEvent::parse(&self.event_type, &self.data)
    }

    /// Builds the event from an EVENT frame.
    pub fn from_frame(frame: &crate::frame::Frame) -> Result<Self, crate::frame::FrameError> {
        let data = if frame.data_is_empty() {
            Value::Null
        } else {
            frame.data_json()?
        };
        Ok(Self {
            event_type: frame.headers.event_type.clone().unwrap_or_default(),
            event_id: frame.headers.event_id.clone(),
            corp_id: frame.headers.event_corp_id.clone(),
            born_time: frame.headers.event_born_time,
            data,
        })
    }
}
