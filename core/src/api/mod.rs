//! OpenAPI calls as pure request builders and response parsers.
//!
//! Every call is a small type implementing [`ApiCall`]: it says what to send ([`ApiCall::spec`],
//! which also checks DingTalk's documented limits before anything is sent) and how to read a
//! successful answer ([`ApiCall::parse`]). [`build_request`] turns the spec into an
//! `http::Request<Vec<u8>>` for the configured [`Endpoints`], putting the access token where the
//! API family wants it (header `x-acs-dingtalk-access-token` for `api`, query `access_token` for
//! `oapi`, nothing for webhooks). [`parse_response`] checks the family's error envelope and
//! returns a typed value or a typed [`ApiError`].
//!
//! ```
//! use dingtalk_core::api::{build_request, parse_response, robot::MessageFileDownload};
//! use dingtalk_core::Endpoints;
//! let call = MessageFileDownload { robot_code: "dingrobot".into(), download_code: "code-1".into() };
//! let request = build_request(&call, &Endpoints::default(), Some("tok")).unwrap();
//! assert_eq!(request.uri(), "https://api.dingtalk.com/v1.0/robot/messageFiles/download");
//! assert_eq!(request.headers()["x-acs-dingtalk-access-token"], "tok");
//! let response = http::Response::new(br#"{"downloadUrl":"https://f.example/x"}"#.to_vec());
//! assert_eq!(parse_response(&call, response).unwrap(), "https://f.example/x");
//! ```
//!
//! Users add calls we did not write by implementing [`ApiCall`] for their own type.

pub mod card;
pub mod contact;
pub mod gateway;
pub mod group;
pub mod media;
pub mod notify;
pub mod retry;
pub mod robot;

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::config::Endpoints;
use crate::error::{ApiError, ErrorKind, classify_code};

/// Which host and error envelope a call uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A path on the new-style host (`https://api.dingtalk.com`): token in the
    /// `x-acs-dingtalk-access-token` header; errors as HTTP status + `{code, message, requestid}`.
    Api(String),
    /// A path on the old-style host (`https://oapi.dingtalk.com`): token as the `access_token`
    /// query parameter; errors as `{errcode, errmsg}` (with `88` + `sub_code` for topapi).
    Oapi(String),
    /// An absolute URL carrying its own credential (session webhook, custom robot): no token;
    /// errors as `{errcode, errmsg}`.
    Webhook(String),
}

/// Which error envelope a response uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// HTTP status + `{code, message, requestid}`.
    Api,
    /// `{errcode, errmsg}`, with `88` + `sub_code` for topapi.
    Oapi,
    /// `{errcode, errmsg}` of webhooks.
    Webhook,
}

impl Target {
    /// The error envelope of this target.
    pub fn family(&self) -> Family {
        match self {
            Self::Api(_) => Family::Api,
            Self::Oapi(_) => Family::Oapi,
            Self::Webhook(_) => Family::Webhook,
        }
    }
}

/// A request body.
#[derive(Debug, Clone, PartialEq)]
pub enum Body {
    /// No body.
    Empty,
    /// A JSON body (`Content-Type: application/json`).
    Json(Value),
    /// Raw bytes with their content type (e.g. `multipart/form-data; boundary=…`).
    Raw {
        /// The `Content-Type` header value.
        content_type: String,
        /// The bytes.
        bytes: Vec<u8>,
    },
}

/// Everything needed to build one request, independent of hosts and tokens.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestSpec {
    /// HTTP method.
    pub method: http::Method,
    /// Host family and path (or absolute URL).
    pub target: Target,
    /// Query parameters (escaped when the request is built).
    pub query: Vec<(String, String)>,
    /// Body.
    pub body: Body,
    /// Whether the call needs an access token.
    pub needs_token: bool,
}

impl RequestSpec {
    /// A JSON `POST` to the api host that needs a token.
    pub fn api_post(path: impl Into<String>, body: Value) -> Self {
        Self::api(http::Method::POST, path, body)
    }

    /// A JSON request with `method` to the api host that needs a token.
    pub fn api(method: http::Method, path: impl Into<String>, body: Value) -> Self {
        Self {
            method,
            target: Target::Api(path.into()),
            query: Vec::new(),
            body: Body::Json(body),
            needs_token: true,
        }
    }

    /// A JSON `POST` to the oapi host that needs a token.
    pub fn oapi_post(path: impl Into<String>, body: Value) -> Self {
        Self {
            method: http::Method::POST,
            target: Target::Oapi(path.into()),
            query: Vec::new(),
            body: Body::Json(body),
            needs_token: true,
        }
    }
}

/// One DingTalk call: what to send and how to read a successful answer.
pub trait ApiCall {
    /// The typed result.
    type Output;

    /// The request to send. Fails with [`ErrorKind::Validation`] when the call breaks a limit
    /// DingTalk documents (sizes, recipient counts, expired webhooks, ...).
    fn spec(&self) -> Result<RequestSpec, ApiError>;

    /// Reads the JSON of a response that passed the envelope check.
    fn parse(&self, body: Value) -> Result<Self::Output, ApiError>;

    /// The error envelope of the response. The default asks [`ApiCall::spec`]; calls whose spec
    /// is expensive to build (uploads) override it.
    fn family(&self) -> Family {
        self.spec().map_or(Family::Api, |s| s.target.family())
    }

    /// Adjusts the classification of an error for this call (e.g. 300001 means an expired
    /// session for a session webhook but an unknown robot for a custom robot).
    fn classify(&self, error: ApiError) -> ApiError {
        error
    }
}

/// Builds the HTTP request of `call` for `endpoints`, with `token` placed for its family.
///
/// Fails with [`ErrorKind::Validation`] when the call is invalid, or with
/// [`ErrorKind::TokenInvalid`] when the call needs a token and none is given.
pub fn build_request<C: ApiCall + ?Sized>(
    call: &C,
    endpoints: &Endpoints,
    token: Option<&str>,
) -> Result<http::Request<Vec<u8>>, ApiError> {
    let spec = call.spec()?;
    build_from_spec(spec, endpoints, token)
}

/// Builds a request from a [`RequestSpec`]; see [`build_request`].
pub fn build_from_spec(
    spec: RequestSpec,
    endpoints: &Endpoints,
    token: Option<&str>,
) -> Result<http::Request<Vec<u8>>, ApiError> {
    let mut query = spec.query;
    let token = if spec.needs_token {
        Some(token.ok_or_else(|| {
            ApiError::new(ErrorKind::TokenInvalid, "the call needs an access token")
        })?)
    } else {
        None
    };
    let (base, path, header_token) = match &spec.target {
        Target::Api(path) => (endpoints.api.trim_end_matches('/'), path.as_str(), token),
        Target::Oapi(path) => {
            if let Some(t) = token {
                query.insert(0, ("access_token".to_owned(), t.to_owned()));
            }
            (endpoints.oapi.trim_end_matches('/'), path.as_str(), None)
        }
        Target::Webhook(url) => ("", url.as_str(), None),
    };
    let mut url = format!("{base}{path}");
    if !query.is_empty() {
        let encoded = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(query.iter())
            .finish();
        url.push(if url.contains('?') { '&' } else { '?' });
        url.push_str(&encoded);
    }
    // The error never quotes the URL: its query may hold an access token or a signature.
    let uri = crate::url::check_secure(&url, "request URL").map_err(ApiError::validation)?;
    let (content_type, bytes) = match spec.body {
        Body::Empty => (None, Vec::new()),
        Body::Json(v) => (
            Some("application/json".to_owned()),
            v.to_string().into_bytes(),
        ),
        Body::Raw {
            content_type,
            bytes,
        } => (Some(content_type), bytes),
    };
    let mut builder = http::Request::builder()
        .method(spec.method)
        .uri(uri)
        .header(http::header::ACCEPT, "application/json")
        .header(http::header::USER_AGENT, crate::config::USER_AGENT);
    if let Some(ct) = content_type {
        builder = builder.header(http::header::CONTENT_TYPE, ct);
    }
    if let Some(t) = header_token {
        builder = builder.header("x-acs-dingtalk-access-token", t);
    }
    builder
        .body(bytes)
        .map_err(|e| ApiError::validation(format!("invalid request: {e}")))
}

/// Parses the response of `call`: checks the error envelope of its family, then
/// [`ApiCall::parse`]s the JSON.
pub fn parse_response<C: ApiCall + ?Sized>(
    call: &C,
    response: http::Response<Vec<u8>>,
) -> Result<C::Output, ApiError> {
    let family = call.family();
    let status = response.status().as_u16();
    let body = response.into_body();
    let value = check_envelope(family, status, &body).map_err(|e| call.classify(e))?;
    call.parse(value).map_err(|mut e| {
        e.status.get_or_insert(status);
        e
    })
}

/// Checks the error envelope of a response for its family and returns its JSON on success.
pub fn check_envelope(family: Family, status: u16, body: &[u8]) -> Result<Value, ApiError> {
    let json: Option<Value> = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        serde_json::from_slice(body).ok()
    };
    match family {
        Family::Api => {
            if (200..300).contains(&status) {
                return match json {
                    Some(v) => Ok(v),
                    None if body.iter().all(u8::is_ascii_whitespace) => Ok(Value::Null),
                    None => Err(unreadable(status, body)),
                };
            }
            let Some(v) = json else {
                let mut e = unreadable(status, body);
                if status >= 500 {
                    e.kind = ErrorKind::ServerBusy;
                } else if status == 429 {
                    e.kind = ErrorKind::RateLimited;
                }
                return Err(e);
            };
            let code = text_field(&v, &["code", "Code"]);
            let mut kind = code.as_deref().map_or(ErrorKind::Other, classify_code);
            if kind == ErrorKind::Other {
                kind = match status {
                    500..=599 => ErrorKind::ServerBusy,
                    429 => ErrorKind::RateLimited,
                    404 => ErrorKind::NotFound,
                    _ => ErrorKind::Other,
                };
            }
            Err(ApiError {
                kind,
                status: Some(status),
                code,
                sub_code: None,
                message: text_field(&v, &["message", "Message"]),
                request_id: text_field(&v, &["requestid", "requestId", "RequestId"]),
            })
        }
        Family::Oapi | Family::Webhook => {
            let Some(v) = json else {
                let mut e = unreadable(status, body);
                if status >= 500 {
                    e.kind = ErrorKind::ServerBusy;
                }
                return Err(e);
            };
            let errcode = text_field(&v, &["errcode"]);
            match errcode.as_deref() {
                Some("0") | None if (200..300).contains(&status) => Ok(v),
                None => Err(ApiError {
                    kind: if status >= 500 {
                        ErrorKind::ServerBusy
                    } else {
                        ErrorKind::Other
                    },
                    status: Some(status),
                    code: None,
                    sub_code: None,
                    message: text_field(&v, &["errmsg", "message"]),
                    request_id: text_field(&v, &["request_id", "requestid"]),
                }),
                Some(code) => {
                    let sub_code = text_field(&v, &["sub_code"]);
                    let kind = match (code, sub_code.as_deref()) {
                        ("88", Some(sub)) => classify_code(sub),
                        _ => classify_code(code),
                    };
                    let message = text_field(&v, &["sub_msg"])
                        .filter(|_| code == "88")
                        .or_else(|| text_field(&v, &["errmsg"]));
                    Err(ApiError {
                        kind,
                        status: Some(status),
                        code: Some(code.to_owned()),
                        sub_code,
                        message,
                        request_id: text_field(&v, &["request_id", "requestid"]),
                    })
                }
            }
        }
    }
}

fn unreadable(status: u16, body: &[u8]) -> ApiError {
    let snippet: String = String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
    let message = if body.is_empty() {
        "empty response body".to_owned()
    } else {
        format!("response is not JSON: {snippet}")
    };
    ApiError {
        kind: ErrorKind::InvalidResponse,
        status: Some(status),
        code: None,
        sub_code: None,
        message: Some(message),
        request_id: None,
    }
}

/// A field as text whether it arrived as a string or a number.
fn text_field(v: &Value, names: &[&str]) -> Option<String> {
    names.iter().find_map(|n| match v.get(*n)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    })
}

/// Deserializes a successful body into `T`, mapping shape errors to [`ErrorKind::InvalidResponse`].
pub fn from_value<T: DeserializeOwned>(value: Value) -> Result<T, ApiError> {
    serde_json::from_value(value).map_err(|e| {
        ApiError::new(
            ErrorKind::InvalidResponse,
            format!("unexpected response: {e}"),
        )
    })
}

/// Returns `Ok(())` for a success body (used by calls with no useful result).
pub fn unit(_: Value) -> Result<(), ApiError> {
    Ok(())
}

/// Refuses an empty required field.
pub(crate) fn require(name: &str, value: &str) -> Result<(), ApiError> {
    if value.trim().is_empty() {
        Err(ApiError::validation(format!("`{name}` is required")))
    } else {
        Ok(())
    }
}

/// Adds the fields of `extra` (an object) to `body` (an object), without overriding.
pub(crate) fn merge_extra(body: &mut Value, extra: &serde_json::Map<String, Value>) {
    if let Some(obj) = body.as_object_mut() {
        for (k, v) in extra {
            obj.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
}
