//! Stream frames: parsing what the gateway pushes and building the acks we send back.
//!
//! A frame is one WebSocket text message:
//!
//! ```text
//! {"specVersion":"1.0","type":"CALLBACK",
//!  "headers":{"topic":"/v1.0/im/bot/messages/get","messageId":"...","contentType":"application/json","time":"1690362102194"},
//!  "data":"{\"msgtype\":\"text\", ...}"}
//! ```
//!
//! `data` is a *string* that holds JSON. [`Frame::parse`] keeps it exactly as it arrived — the
//! escaped string literal, copied once, neither unescaped nor parsed — so routing and acking a
//! frame never pay for a large payload; [`Frame::data_json`] and [`Frame::data_text`] decode it
//! on demand, and a ping's ack echoes the literal as it came.
//!
//! ```
//! use dingtalk_core::frame::{Frame, FrameType, Limits};
//! let text = r#"{"specVersion":"1.0","type":"SYSTEM","headers":{"topic":"ping","messageId":"m1","contentType":"application/json","time":"1707286661313"},"data":"{\"opaque\":\"abc\"}"}"#;
//! let frame = Frame::parse(text, &Limits::default()).unwrap();
//! assert_eq!(frame.kind, FrameType::System);
//! assert_eq!(frame.headers.time, Some(1707286661313));
//! assert_eq!(frame.data_text().unwrap(), r#"{"opaque":"abc"}"#);
//! assert_eq!(frame.data_raw(), r#""{\"opaque\":\"abc\"}""#);
//! ```

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// The three frame types of Stream mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FrameType {
    /// Connection management: `ping`, `disconnect`.
    System,
    /// Organisation events (topic `*`), acked with `{"status": "SUCCESS" | "LATER"}`.
    Event,
    /// Callbacks (bot messages, card actions, graph invoke), acked with `{"response": ...}`.
    Callback,
}

impl FrameType {
    /// The wire name (`SYSTEM`, `EVENT`, `CALLBACK`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::System => "SYSTEM",
            Self::Event => "EVENT",
            Self::Callback => "CALLBACK",
        }
    }

    fn from_wire(s: &str) -> Option<Self> {
        match s {
            "SYSTEM" => Some(Self::System),
            "EVENT" => Some(Self::Event),
            "CALLBACK" => Some(Self::Callback),
            _ => None,
        }
    }
}

impl fmt::Display for FrameType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Limits applied while parsing untrusted frames.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Largest accepted frame, in bytes of the WebSocket text message. Default 1 MiB
    /// (the Python SDK's websockets default; the Java SDK uses 256 KiB).
    pub max_frame_bytes: usize,
    /// Largest number of headers in one frame. Default 64 (real frames carry at most 10).
    pub max_headers: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_frame_bytes: 1 << 20,
            max_headers: 64,
        }
    }
}

/// Why a frame could not be understood. Every variant is recoverable: the connection survives.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The text is larger than [`Limits::max_frame_bytes`].
    #[error("frame of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// Size of the rejected frame.
        len: usize,
        /// The configured limit.
        max: usize,
    },
    /// The frame has more headers than [`Limits::max_headers`].
    #[error("frame has more than {max} headers")]
    TooManyHeaders {
        /// The configured limit.
        max: usize,
    },
    /// Not JSON, or JSON of the wrong shape (wrong types, too deeply nested, ...).
    #[error("malformed frame: {0}")]
    Malformed(String),
    /// A required field is absent.
    #[error("frame lacks the required field `{0}`")]
    MissingField(&'static str),
    /// `type` is not one of `SYSTEM`, `EVENT`, `CALLBACK`.
    #[error("unknown frame type `{0}`")]
    UnknownType(String),
}

/// The headers of a frame. Known headers are typed; unknown ones are kept in `extra`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Headers {
    /// `topic`, e.g. `/v1.0/im/bot/messages/get`, `ping`, `*` (the documented topics are not
    /// copied: they borrow the [`topic`](crate::topic) constants).
    pub topic: Cow<'static, str>,
    /// `messageId`: the push id echoed in the ack (shared, not copied, by the session's
    /// in-flight and duplicate bookkeeping).
    pub message_id: Arc<str>,
    /// `contentType`, normally `application/json` (not copied when it is).
    pub content_type: Option<Cow<'static, str>>,
    /// `time`: push time in unix milliseconds (arrives as a string; numbers accepted too).
    pub time: Option<i64>,
    /// `appId` (shared with the previous frame's when equal).
    pub app_id: Option<Arc<str>>,
    /// `connectionId`, which equals the connection's ticket (shared with the previous frame's
    /// when equal).
    pub connection_id: Option<Arc<str>>,
    /// `eventType` (EVENT frames), e.g. `user_add_org`.
    pub event_type: Option<String>,
    /// `eventId` (EVENT frames).
    pub event_id: Option<String>,
    /// `eventCorpId` (EVENT frames).
    pub event_corp_id: Option<String>,
    /// `eventBornTime` in unix milliseconds (EVENT frames).
    pub event_born_time: Option<i64>,
    /// `eventUnifiedAppId` (EVENT frames).
    pub event_unified_app_id: Option<String>,
    /// Every other header, in arrival order, values as text.
    pub extra: Vec<(String, String)>,
}

impl Headers {
    /// Looks up an unknown header by name.
    pub fn get_extra(&self, name: &str) -> Option<&str> {
        self.extra
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// One parsed Stream frame. Its `Debug` shows the headers and the size of `data`, never the
/// data (a bot message's data holds its session webhook, a credential).
#[derive(Clone, PartialEq, Eq)]
pub struct Frame {
    /// `specVersion`, normally `1.0` (not copied when it is).
    pub spec_version: Option<Cow<'static, str>>,
    /// `type`.
    pub kind: FrameType,
    /// `headers`.
    pub headers: Headers,
    /// `data` as it arrived: the JSON string literal, quotes and escapes included (empty when
    /// absent or `null`).
    data: String,
}

impl fmt::Debug for Frame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Frame")
            .field("spec_version", &self.spec_version)
            .field("kind", &self.kind)
            .field("headers", &self.headers)
            .field("data_bytes", &self.data.len())
            .finish()
    }
}

impl Frame {
    /// Parses one WebSocket text message. Never panics; every failure is a [`FrameError`].
    pub fn parse(text: &str, limits: &Limits) -> Result<Self, FrameError> {
        if text.len() > limits.max_frame_bytes {
            return Err(FrameError::TooLarge {
                len: text.len(),
                max: limits.max_frame_bytes,
            });
        }
        Self::parse_shared(text, limits, &mut Interner::default())
    }

    /// [`Frame::parse`], sharing the `appId` and `connectionId` values with the frames parsed
    /// before through `interner` (a session parses with one, so a steady stream of frames from
    /// one connection allocates neither).
    pub fn parse_shared(
        text: &str,
        limits: &Limits,
        interner: &mut Interner,
    ) -> Result<Self, FrameError> {
        if text.len() > limits.max_frame_bytes {
            return Err(FrameError::TooLarge {
                len: text.len(),
                max: limits.max_frame_bytes,
            });
        }
        let mut de = serde_json::Deserializer::from_str(text);
        let raw = RawFrame::deserialize_with_limits(&mut de, limits, interner)?;
        de.end().map_err(|e| FrameError::Malformed(e.to_string()))?;
        raw.into_frame()
    }

    /// The topic header.
    pub fn topic(&self) -> &str {
        &self.headers.topic
    }

    /// The message id header.
    pub fn message_id(&self) -> &str {
        &self.headers.message_id
    }

    /// Builds a frame from parts; `data` is the JSON text it carries (it is encoded as the
    /// string literal the wire would hold).
    pub fn new(kind: FrameType, headers: Headers, data: &str) -> Self {
        Self {
            spec_version: Some(Cow::Borrowed("1.0")),
            kind,
            headers,
            data: serde_json::to_string(data).unwrap_or_default(),
        }
    }

    /// `data` exactly as it arrived: a JSON string literal (`"{\"a\":1}"`), or empty.
    pub fn data_raw(&self) -> &str {
        &self.data
    }

    /// Whether the frame carries no `data`.
    pub fn data_is_empty(&self) -> bool {
        self.data.is_empty() || self.data == "\"\""
    }

    /// `data` decoded: the JSON text the gateway sent (empty when absent).
    pub fn data_text(&self) -> Result<String, FrameError> {
        if self.data.is_empty() {
            return Ok(String::new());
        }
        serde_json::from_str(&self.data).map_err(|e| FrameError::Malformed(e.to_string()))
    }

    /// Decodes `data` into any deserializable type (e.g. a payload model or `serde_json::Value`).
    pub fn data_json<T: DeserializeOwned>(&self) -> Result<T, FrameError> {
        let text = self.data_text()?;
        serde_json::from_str(&text).map_err(|e| FrameError::Malformed(e.to_string()))
    }
}

/// Best-effort recovery of `headers.messageId` from a frame that failed to parse (too large,
/// malformed), so that it can still be acked with 400 instead of being redelivered forever.
/// Everything but the id is skipped without being kept; texts over 16 × the frame limit, ids
/// over [`MAX_SALVAGED_ID`] bytes, non-JSON and id-less frames give `None`.
pub fn salvage_message_id(text: &str, limits: &Limits) -> Option<String> {
    #[derive(Deserialize)]
    struct Only {
        headers: OnlyHeaders,
    }
    #[derive(Deserialize)]
    struct OnlyHeaders {
        #[serde(rename = "messageId")]
        message_id: Option<IdValue>,
    }
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum IdValue {
        Text(String),
        Number(serde_json::Number),
    }
    if text.len() > limits.max_frame_bytes.saturating_mul(16) {
        return None;
    }
    let only: Only = serde_json::from_str(text).ok()?;
    let id = match only.headers.message_id? {
        IdValue::Text(s) => s,
        IdValue::Number(n) => n.to_string(),
    };
    (!id.is_empty() && id.len() <= MAX_SALVAGED_ID).then_some(id)
}

/// Longest `messageId` recovered from a rejected frame.
pub const MAX_SALVAGED_ID: usize = 256;

/// Values shared between consecutive frames (`appId`, `connectionId`): equal ones are not
/// allocated again.
#[derive(Debug, Default, Clone)]
pub struct Interner {
    app_id: Option<Arc<str>>,
    connection_id: Option<Arc<str>>,
}

fn share(slot: &mut Option<Arc<str>>, value: &str) -> Arc<str> {
    match slot {
        Some(v) if **v == *value => v.clone(),
        _ => {
            let v: Arc<str> = Arc::from(value);
            *slot = Some(v.clone());
            v
        }
    }
}

/// The documented topics, borrowed instead of copied.
fn known_topic(value: Cow<'_, str>) -> Cow<'static, str> {
    use crate::topic::*;
    for t in [
        BOT_MESSAGE,
        BOT_DELEGATE,
        CARD_CALLBACK,
        CARD_DYNAMIC_DATA,
        GRAPH_INVOKE,
        ALL_EVENTS,
        PING,
        DISCONNECT,
    ] {
        if value == t {
            return Cow::Borrowed(t);
        }
    }
    Cow::Owned(value.into_owned())
}

struct RawFrame {
    spec_version: Option<Cow<'static, str>>,
    kind: Option<Result<FrameType, String>>,
    headers: Option<Headers>,
    data: Option<String>,
}

impl RawFrame {
    fn deserialize_with_limits(
        de: &mut serde_json::Deserializer<serde_json::de::StrRead<'_>>,
        limits: &Limits,
        interner: &mut Interner,
    ) -> Result<Self, FrameError> {
        use serde::de::DeserializeSeed;
        FrameSeed { limits, interner }.deserialize(de).map_err(|e| {
            let text = e.to_string();
            if text.starts_with(TOO_MANY_HEADERS) {
                FrameError::TooManyHeaders {
                    max: limits.max_headers,
                }
            } else {
                FrameError::Malformed(text)
            }
        })
    }

    fn into_frame(self) -> Result<Frame, FrameError> {
        let kind = self
            .kind
            .ok_or(FrameError::MissingField("type"))?
            .map_err(FrameError::UnknownType)?;
        let headers = self.headers.ok_or(FrameError::MissingField("headers"))?;
        if headers.topic.is_empty() {
            return Err(FrameError::MissingField("headers.topic"));
        }
        if headers.message_id.is_empty() {
            return Err(FrameError::MissingField("headers.messageId"));
        }
        Ok(Frame {
            spec_version: self.spec_version,
            kind,
            headers,
            data: self.data.unwrap_or_default(),
        })
    }
}

const TOO_MANY_HEADERS: &str = "too many headers";

struct FrameSeed<'l> {
    limits: &'l Limits,
    interner: &'l mut Interner,
}

impl<'de> de::DeserializeSeed<'de> for FrameSeed<'_> {
    type Value = RawFrame;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<RawFrame, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for FrameSeed<'_> {
    type Value = RawFrame;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a Stream frame object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawFrame, A::Error> {
        let mut raw = RawFrame {
            spec_version: None,
            kind: None,
            headers: None,
            data: None,
        };
        while let Some(Text(key)) = map.next_key::<Text<'de>>()? {
            match key.as_ref() {
                "specVersion" => {
                    raw.spec_version = map.next_value::<Option<Text<'de>>>()?.map(|t| {
                        if t.0 == "1.0" {
                            Cow::Borrowed("1.0")
                        } else {
                            Cow::Owned(t.0.into_owned())
                        }
                    })
                }
                "type" => {
                    raw.kind = map
                        .next_value::<Option<Text<'de>>>()?
                        .map(|t| FrameType::from_wire(&t.0).ok_or_else(|| t.0.into_owned()))
                }
                "headers" => {
                    raw.headers = Some(map.next_value_seed(HeadersSeed {
                        max: self.limits.max_headers,
                        interner: &mut *self.interner,
                    })?)
                }
                "data" => {
                    raw.data = match map.next_value::<Option<&'de RawValue>>()? {
                        None => None,
                        Some(v) if v.get().starts_with('"') => Some(v.get().to_owned()),
                        Some(_) => return Err(de::Error::custom("`data` is not a string")),
                    }
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(raw)
    }
}

struct HeadersSeed<'i> {
    max: usize,
    interner: &'i mut Interner,
}

impl<'de> de::DeserializeSeed<'de> for HeadersSeed<'_> {
    type Value = Headers;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Headers, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for HeadersSeed<'_> {
    type Value = Headers;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a headers object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Headers, A::Error> {
        let mut h = Headers::default();
        let mut count = 0usize;
        while let Some(Text(key)) = map.next_key::<Text<'de>>()? {
            count += 1;
            if count > self.max {
                return Err(de::Error::custom(TOO_MANY_HEADERS));
            }
            let value = map.next_value::<HeaderValue<'de>>()?.0;
            let owned = |v: Option<Cow<'de, str>>| v.map(Cow::into_owned);
            match key.as_ref() {
                "topic" => h.topic = value.map(known_topic).unwrap_or_default(),
                "messageId" => h.message_id = value.as_deref().map(Arc::from).unwrap_or_default(),
                "contentType" => {
                    h.content_type = value.map(|v| {
                        if v == "application/json" {
                            Cow::Borrowed("application/json")
                        } else {
                            Cow::Owned(v.into_owned())
                        }
                    })
                }
                "time" => h.time = parse_millis(value.as_deref(), "time")?,
                "appId" => {
                    h.app_id = value
                        .as_deref()
                        .map(|v| share(&mut self.interner.app_id, v))
                }
                "connectionId" => {
                    h.connection_id = value
                        .as_deref()
                        .map(|v| share(&mut self.interner.connection_id, v))
                }
                "eventType" => h.event_type = owned(value),
                "eventId" => h.event_id = owned(value),
                "eventCorpId" => h.event_corp_id = owned(value),
                "eventBornTime" => {
                    h.event_born_time = parse_millis(value.as_deref(), "eventBornTime")?
                }
                "eventUnifiedAppId" => h.event_unified_app_id = owned(value),
                other => {
                    if let Some(v) = value {
                        h.extra.push((other.to_owned(), v.into_owned()));
                    }
                }
            }
        }
        Ok(h)
    }
}

fn parse_millis<E: de::Error>(value: Option<&str>, name: &str) -> Result<Option<i64>, E> {
    match value {
        None => Ok(None),
        Some(s) if s.trim().is_empty() => Ok(None),
        Some(s) => s
            .trim()
            .parse::<i64>()
            .map(Some)
            .map_err(|_| E::custom(format!("header `{name}` is not a millisecond timestamp"))),
    }
}

/// A JSON string, borrowed from the input when it has no escapes.
struct Text<'de>(Cow<'de, str>);

impl<'de> Deserialize<'de> for Text<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

/// A header value: a string (borrowed when possible), or a number/bool kept as its text.
/// `null` is absent.
struct HeaderValue<'de>(Option<Cow<'de, str>>);

impl<'de> Deserialize<'de> for HeaderValue<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = HeaderValue<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string, number or boolean header value")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<HeaderValue<'de>, E> {
                Ok(HeaderValue(Some(Cow::Borrowed(v))))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<HeaderValue<'de>, E> {
                Ok(HeaderValue(Some(Cow::Owned(v.to_owned()))))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<HeaderValue<'de>, E> {
                Ok(HeaderValue(Some(Cow::Owned(v))))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<HeaderValue<'de>, E> {
                Ok(HeaderValue(Some(Cow::Owned(v.to_string()))))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<HeaderValue<'de>, E> {
                Ok(HeaderValue(Some(Cow::Owned(v.to_string()))))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<HeaderValue<'de>, E> {
                // Integral floats (e.g. `1.69e12`) are still timestamps.
                let text = if v.fract() == 0.0 && v.abs() < 9.0e15 {
                    format!("{}", v as i64)
                } else {
                    v.to_string()
                };
                Ok(HeaderValue(Some(Cow::Owned(text))))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<HeaderValue<'de>, E> {
                Ok(HeaderValue(Some(Cow::Owned(v.to_string()))))
            }
            fn visit_unit<E: de::Error>(self) -> Result<HeaderValue<'de>, E> {
                Ok(HeaderValue(None))
            }
            fn visit_none<E: de::Error>(self) -> Result<HeaderValue<'de>, E> {
                Ok(HeaderValue(None))
            }
        }
        d.deserialize_any(V)
    }
}

/// Ack status codes used by Stream mode.
pub mod status {
    /// Success.
    pub const OK: u16 = 200;
    /// The frame could not be understood.
    pub const BAD_REQUEST: u16 = 400;
    /// No handler for the topic.
    pub const NOT_FOUND: u16 = 404;
    /// The handler failed or timed out.
    pub const INTERNAL_ERROR: u16 = 500;
}

/// The `data` of an ack.
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(untagged)]
pub enum AckData<'a> {
    /// JSON text, serialized as a JSON *string*.
    Text(&'a str),
    /// An already encoded JSON string literal (a frame's [`Frame::data_raw`]), written as is.
    Literal(&'a RawValue),
}

/// An ack to send back for one frame, exactly in the documented shape:
/// `{"code":200,"headers":{"contentType":"application/json","messageId":"…"},"message":"OK","data":"<JSON text>"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Ack<'a> {
    /// Status code (see [`status`]).
    pub code: u16,
    /// Ack headers.
    pub headers: AckHeaders<'a>,
    /// Human-readable message (`OK` for 200).
    pub message: &'a str,
    /// The data; always a JSON string on the wire.
    pub data: AckData<'a>,
}

impl PartialEq for AckData<'_> {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Text(a), Self::Text(b)) => a == b,
            (Self::Literal(a), Self::Literal(b)) => a.get() == b.get(),
            _ => false,
        }
    }
}

impl Eq for AckData<'_> {}

/// The headers of an [`Ack`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AckHeaders<'a> {
    /// Always `application/json`.
    #[serde(rename = "contentType")]
    pub content_type: &'a str,
    /// The `messageId` of the frame being acked.
    #[serde(rename = "messageId")]
    pub message_id: &'a str,
}

impl<'a> Ack<'a> {
    /// Creates an ack for `message_id`.
    pub fn new(code: u16, message_id: &'a str, message: &'a str, data: &'a str) -> Self {
        Self::with_data(code, message_id, message, AckData::Text(data))
    }

    /// An ack echoing a frame's `data` literal as it arrived (ping, disconnect); falls back to
    /// an empty data string when the frame had none.
    pub fn echo(code: u16, frame: &'a Frame, message: &'a str) -> Self {
        let data = match serde_json::from_str::<&RawValue>(frame.data_raw()) {
            Ok(raw) => AckData::Literal(raw),
            Err(_) => AckData::Text(""),
        };
        Self::with_data(code, frame.message_id(), message, data)
    }

    fn with_data(code: u16, message_id: &'a str, message: &'a str, data: AckData<'a>) -> Self {
        Self {
            code,
            headers: AckHeaders {
                content_type: "application/json",
                message_id,
            },
            message,
            data,
        }
    }

    /// The text of `200 OK {"response":null}` for `message_id`: the ack of every immediately
    /// acked bot message, so it skips the serializer when the id needs no escaping (the same
    /// bytes [`Ack::to_text`] writes).
    pub fn response_null_text(message_id: &str) -> String {
        const HEAD: &str =
            r#"{"code":200,"headers":{"contentType":"application/json","messageId":""#;
        const TAIL: &str = r#""},"message":"OK","data":"{\"response\":null}"}"#;
        let plain = message_id
            .bytes()
            .all(|b| b >= 0x20 && b != b'"' && b != b'\\');
        if !plain {
            return Ack::new(status::OK, message_id, "OK", r#"{"response":null}"#).to_text();
        }
        let mut out = String::with_capacity(HEAD.len() + message_id.len() + TAIL.len());
        out.push_str(HEAD);
        out.push_str(message_id);
        out.push_str(TAIL);
        out
    }

    /// Serializes the ack to the text sent over the WebSocket.
    pub fn to_text(&self) -> String {
        // One allocation, sized for the envelope plus the (escaped) data.
        let data_len = match self.data {
            AckData::Text(t) => t.len() * 5 / 4,
            AckData::Literal(raw) => raw.get().len(),
        };
        let mut out =
            Vec::with_capacity(96 + self.headers.message_id.len() + self.message.len() + data_len);
        // Serializing borrowed strings and an integer cannot fail.
        if serde_json::to_writer(&mut out, self).is_err() {
            return String::new();
        }
        String::from_utf8(out).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests may abort on failure
    use super::*;

    fn parse(text: &str) -> Result<Frame, FrameError> {
        Frame::parse(text, &Limits::default())
    }

    #[test]
    fn response_null_fast_path_writes_what_the_serializer_writes() {
        for id in [
            "m1",
            "msg-ÄÖ-✓",
            "with\"quote",
            "back\\slash",
            "ctl\u{1}",
            "",
        ] {
            assert_eq!(
                Ack::response_null_text(id),
                Ack::new(status::OK, id, "OK", r#"{"response":null}"#).to_text(),
                "{id:?}"
            );
        }
    }

    #[test]
    fn time_accepts_string_and_number() {
        let a = parse(r#"{"type":"EVENT","headers":{"topic":"*","messageId":"m","time":"12","eventBornTime":34},"data":"{}"}"#).unwrap();
        assert_eq!(a.headers.time, Some(12));
        assert_eq!(a.headers.event_born_time, Some(34));
    }

    #[test]
    fn unknown_headers_are_kept() {
        let f = parse(r#"{"type":"CALLBACK","headers":{"topic":"t","messageId":"m","x-custom":"v","n":5},"data":""}"#).unwrap();
        assert_eq!(f.headers.get_extra("x-custom"), Some("v"));
        assert_eq!(f.headers.get_extra("n"), Some("5"));
    }

    #[test]
    fn typed_errors() {
        assert!(matches!(parse("not json"), Err(FrameError::Malformed(_))));
        assert_eq!(
            parse(r#"{"type":"EVENT","headers":{"topic":"*"},"data":"{}"}"#),
            Err(FrameError::MissingField("headers.messageId"))
        );
        assert_eq!(
            parse(r#"{"headers":{"topic":"*","messageId":"m"}}"#),
            Err(FrameError::MissingField("type"))
        );
        assert_eq!(
            parse(r#"{"type":"NOPE","headers":{"topic":"*","messageId":"m"}}"#),
            Err(FrameError::UnknownType("NOPE".into()))
        );
        assert!(matches!(
            parse(r#"{"type":"EVENT","headers":{"topic":"*","messageId":"m"},"data":{"a":1}}"#),
            Err(FrameError::Malformed(_))
        ));
        // `data` is validated as a JSON string even though it is decoded lazily.
        assert!(matches!(
            parse(r#"{"type":"EVENT","headers":{"topic":"*","messageId":"m"},"data":"\q"}"#),
            Err(FrameError::Malformed(_))
        ));
        assert!(matches!(
            parse(r#"{"type":"EVENT","headers":{"topic":"*","messageId":"m","time":"soon"}}"#),
            Err(FrameError::Malformed(_))
        ));
        assert!(matches!(
            parse(r#"{"type":"EVENT","headers":[1,2]}"#),
            Err(FrameError::Malformed(_))
        ));
        assert!(matches!(
            parse(r#"{"type":"EVENT","headers":{"topic":"*","messageId":"m"}} trailing"#),
            Err(FrameError::Malformed(_))
        ));
    }

    #[test]
    fn limits_are_enforced() {
        let limits = Limits {
            max_frame_bytes: 10,
            max_headers: 2,
        };
        assert_eq!(
            Frame::parse("12345678901", &limits),
            Err(FrameError::TooLarge { len: 11, max: 10 })
        );
        let limits = Limits {
            max_frame_bytes: 1000,
            max_headers: 2,
        };
        assert_eq!(
            Frame::parse(
                r#"{"type":"EVENT","headers":{"topic":"*","messageId":"m","a":"b"}}"#,
                &limits
            ),
            Err(FrameError::TooManyHeaders { max: 2 })
        );
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let deep = format!(
            r#"{{"type":"EVENT","headers":{{"topic":"*","messageId":"m"}},"x":{}{}}}"#,
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        let limits = Limits {
            max_frame_bytes: 1 << 22,
            max_headers: 64,
        };
        // Unknown fields are skipped without recursion, so this parses, and so does the salvage
        // path.
        assert!(Frame::parse(&deep, &limits).is_ok());
        assert_eq!(salvage_message_id(&deep, &limits), Some("m".into()));
        let deep_type = format!(r#"{{"type":{}{}}}"#, "[".repeat(50_000), "]".repeat(50_000));
        assert!(matches!(
            Frame::parse(&deep_type, &limits),
            Err(FrameError::Malformed(_))
        ));
    }

    #[test]
    fn echo_ack_writes_the_literal_as_it_came() {
        let f = parse(r#"{"type":"SYSTEM","headers":{"topic":"ping","messageId":"p"},"data":"{\"opaque\":\"\u00e9\"}"}"#).unwrap();
        let text = Ack::echo(200, &f, "OK").to_text();
        assert_eq!(
            text,
            r#"{"code":200,"headers":{"contentType":"application/json","messageId":"p"},"message":"OK","data":"{\"opaque\":\"\u00e9\"}"}"#
        );
        let f = parse(r#"{"type":"SYSTEM","headers":{"topic":"ping","messageId":"p"}}"#).unwrap();
        assert!(
            Ack::echo(200, &f, "OK")
                .to_text()
                .ends_with(r#""data":""}"#)
        );
        assert_eq!(f.data_text().unwrap(), "");
    }

    #[test]
    fn ack_has_documented_shape() {
        let text = Ack::new(200, "id-1", "OK", r#"{"response":null}"#).to_text();
        assert_eq!(
            text,
            r#"{"code":200,"headers":{"contentType":"application/json","messageId":"id-1"},"message":"OK","data":"{\"response\":null}"}"#
        );
    }

    #[test]
    fn salvage_finds_message_id() {
        let l = Limits::default();
        assert_eq!(
            salvage_message_id(r#"{"type":"WHAT","headers":{"messageId":"x1"}}"#, &l),
            Some("x1".into())
        );
        assert_eq!(salvage_message_id("{", &l), None);
        assert_eq!(salvage_message_id(r#"{"headers":{}}"#, &l), None);
        assert_eq!(
            salvage_message_id(r#"{"headers":{"messageId":7},"data":[1,{"a":2}]}"#, &l),
            Some("7".into())
        );
        let long_id = format!(r#"{{"headers":{{"messageId":"{}"}}}}"#, "x".repeat(300));
        assert_eq!(salvage_message_id(&long_id, &l), None);
        // Too large for the parser, still nacked by its id.
        let small = Limits {
            max_frame_bytes: 64,
            max_headers: 8,
        };
        let big = format!(
            r#"{{"headers":{{"messageId":"big-1"}},"data":"{}"}}"#,
            "x".repeat(500)
        );
        assert!(Frame::parse(&big, &small).is_err());
        assert_eq!(salvage_message_id(&big, &small), Some("big-1".into()));
        let huge = format!(
            r#"{{"headers":{{"messageId":"big-2"}},"data":"{}"}}"#,
            "x".repeat(2000)
        );
        assert_eq!(salvage_message_id(&huge, &small), None);
    }
}
