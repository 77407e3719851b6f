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
//! `data` is a *string* that holds JSON. [`Frame::parse`] keeps it as that string (one
//! unescaped copy, no second parse on the hot path); [`Frame::data_json`] decodes it on demand.
//!
//! ```
//! use dingtalk_core::frame::{Frame, FrameType, Limits};
//! let text = r#"{"specVersion":"1.0","type":"SYSTEM","headers":{"topic":"ping","messageId":"m1","contentType":"application/json","time":"1707286661313"},"data":"{\"opaque\":\"abc\"}"}"#;
//! let frame = Frame::parse(text, &Limits::default()).unwrap();
//! assert_eq!(frame.kind, FrameType::System);
//! assert_eq!(frame.headers.time, Some(1707286661313));
//! assert_eq!(frame.data, r#"{"opaque":"abc"}"#);
//! ```

use std::fmt;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Serialize};

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
    /// `topic`, e.g. `/v1.0/im/bot/messages/get`, `ping`, `*`.
    pub topic: String,
    /// `messageId`: the push id echoed in the ack.
    pub message_id: String,
    /// `contentType`, normally `application/json`.
    pub content_type: Option<String>,
    /// `time`: push time in unix milliseconds (arrives as a string; numbers accepted too).
    pub time: Option<i64>,
    /// `appId`.
    pub app_id: Option<String>,
    /// `connectionId` (equals the ticket of the connection).
    pub connection_id: Option<String>,
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

/// One parsed Stream frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// `specVersion`, normally `1.0`.
    pub spec_version: Option<String>,
    /// `type`.
    pub kind: FrameType,
    /// `headers`.
    pub headers: Headers,
    /// `data`: the JSON *text* the gateway sent (empty when absent).
    pub data: String,
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
        let mut de = serde_json::Deserializer::from_str(text);
        let raw = RawFrame::deserialize_with_limits(&mut de, limits)?;
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

    /// Decodes `data` into any deserializable type (e.g. a payload model or `serde_json::Value`).
    pub fn data_json<'a, T: Deserialize<'a>>(&'a self) -> Result<T, FrameError> {
        serde_json::from_str(&self.data).map_err(|e| FrameError::Malformed(e.to_string()))
    }
}

/// Best-effort recovery of `headers.messageId` from a frame that failed to parse, so that it can
/// still be acked with 400. Returns `None` when the text is too large, not JSON, or has no id.
pub fn salvage_message_id(text: &str, limits: &Limits) -> Option<String> {
    if text.len() > limits.max_frame_bytes {
        return None;
    }
    let value: serde_json::Value = serde_json::from_str(text).ok()?;
    let id = value.get("headers")?.get("messageId")?;
    match id {
        serde_json::Value::String(s) if !s.is_empty() => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

struct RawFrame {
    spec_version: Option<String>,
    kind: Option<String>,
    headers: Option<Headers>,
    data: Option<String>,
}

impl RawFrame {
    fn deserialize_with_limits(
        de: &mut serde_json::Deserializer<serde_json::de::StrRead<'_>>,
        limits: &Limits,
    ) -> Result<Self, FrameError> {
        use serde::de::DeserializeSeed;
        FrameSeed { limits }.deserialize(de).map_err(|e| {
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
        let kind_text = self.kind.ok_or(FrameError::MissingField("type"))?;
        let kind = FrameType::from_wire(&kind_text).ok_or(FrameError::UnknownType(kind_text))?;
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
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            match key.as_ref() {
                "specVersion" => raw.spec_version = map.next_value::<Option<String>>()?,
                "type" => raw.kind = map.next_value::<Option<String>>()?,
                "headers" => {
                    raw.headers = Some(map.next_value_seed(HeadersSeed {
                        max: self.limits.max_headers,
                    })?)
                }
                "data" => raw.data = map.next_value::<Option<String>>()?,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(raw)
    }
}

struct HeadersSeed {
    max: usize,
}

impl<'de> de::DeserializeSeed<'de> for HeadersSeed {
    type Value = Headers;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Headers, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for HeadersSeed {
    type Value = Headers;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a headers object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Headers, A::Error> {
        let mut h = Headers::default();
        let mut count = 0usize;
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            count += 1;
            if count > self.max {
                return Err(de::Error::custom(TOO_MANY_HEADERS));
            }
            let value = map.next_value::<HeaderValue>()?.0;
            match key.as_ref() {
                "topic" => h.topic = value.unwrap_or_default(),
                "messageId" => h.message_id = value.unwrap_or_default(),
                "contentType" => h.content_type = value,
                "time" => h.time = parse_millis(value, "time")?,
                "appId" => h.app_id = value,
                "connectionId" => h.connection_id = value,
                "eventType" => h.event_type = value,
                "eventId" => h.event_id = value,
                "eventCorpId" => h.event_corp_id = value,
                "eventBornTime" => h.event_born_time = parse_millis(value, "eventBornTime")?,
                "eventUnifiedAppId" => h.event_unified_app_id = value,
                other => {
                    if let Some(v) = value {
                        h.extra.push((other.to_owned(), v));
                    }
                }
            }
        }
        Ok(h)
    }
}

fn parse_millis<E: de::Error>(value: Option<String>, name: &str) -> Result<Option<i64>, E> {
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

/// A header value: a string, or a number/bool kept as its text. `null` is absent.
struct HeaderValue(Option<String>);

impl<'de> Deserialize<'de> for HeaderValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = HeaderValue;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string, number or boolean header value")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<HeaderValue, E> {
                Ok(HeaderValue(Some(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<HeaderValue, E> {
                Ok(HeaderValue(Some(v)))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<HeaderValue, E> {
                Ok(HeaderValue(Some(v.to_string())))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<HeaderValue, E> {
                Ok(HeaderValue(Some(v.to_string())))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<HeaderValue, E> {
                // Integral floats (e.g. `1.69e12`) are still timestamps.
                if v.fract() == 0.0 && v.abs() < 9.0e15 {
                    Ok(HeaderValue(Some(format!("{}", v as i64))))
                } else {
                    Ok(HeaderValue(Some(v.to_string())))
                }
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<HeaderValue, E> {
                Ok(HeaderValue(Some(v.to_string())))
            }
            fn visit_unit<E: de::Error>(self) -> Result<HeaderValue, E> {
                Ok(HeaderValue(None))
            }
            fn visit_none<E: de::Error>(self) -> Result<HeaderValue, E> {
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
    /// The data, as JSON text; serialized as a JSON *string*.
    pub data: &'a str,
}

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

    /// Serializes the ack to the text sent over the WebSocket.
    pub fn to_text(&self) -> String {
        // Serializing borrowed strings and an integer into a String cannot fail.
        serde_json::to_string(self).unwrap_or_default()
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
        // Unknown fields are skipped without recursion, so this parses; the lenient salvage path
        // (a full `Value` parse) hits serde_json's recursion limit and gives up cleanly.
        assert!(Frame::parse(&deep, &limits).is_ok());
        assert_eq!(salvage_message_id(&deep, &limits), None);
        let deep_type = format!(r#"{{"type":{}{}}}"#, "[".repeat(50_000), "]".repeat(50_000));
        assert!(matches!(
            Frame::parse(&deep_type, &limits),
            Err(FrameError::Malformed(_))
        ));
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
    }
}
