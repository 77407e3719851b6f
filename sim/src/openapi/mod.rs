//! DingTalk's HTTP side as the emulator answers it: one entry ([`http_handler`]) records each
//! call and checks the token, then one handler per endpoint family answers:
//!
//! | family | module | paths |
//! |---|---|---|
//! | tokens | [`auth`] | `POST /v1.0/oauth2/accessToken`, `GET /gettoken` |
//! | webhooks | [`webhook`] | `/robot/sendBySession`, `/robot/send` (custom robot, signed) |
//! | cards | `crate::cards` | `/v1.0/card/instances…`, `/v1.0/card/streaming` |
//! | robot messages | [`robot`] | `/v1.0/robot/…`, `/v1.0/im/…/interactiveCards…`, `/v1.0/im/sceneGroups…` |
//! | old-style (oapi) | [`oapi`] | `/media/upload`, `/topapi/message/…`, and through `crate::directory` `/topapi/v2/user/…`, `/topapi/v2/department/…`, `/topapi/im/chat/scenegroup/…` |
//!
//! Adding an endpoint is one arm in its family's handler (or one family in [`API_FAMILIES`]).

use super::*;

pub(crate) mod auth;
pub(crate) mod oapi;
pub(crate) mod robot;
pub(crate) mod webhook;

/// A handler of one family of new-style (`/v1.0/…`) endpoints: `None` when the path is not
/// one of its.
type Family = fn(&Shared, &Method, &str, &Value) -> Option<Response>;

/// The new-style families, asked in order (after the token check and the fault switches).
const API_FAMILIES: &[Family] = &[cards_family, robot::handle];

/// Cards (`crate::cards`): created, delivered (shown in the console's conversation), updated,
/// streamed.
fn cards_family(shared: &Shared, method: &Method, path: &str, body: &Value) -> Option<Response> {
    let mut st = shared.lock();
    let response = st.cards.handle(method.as_str(), path, body)?;
    let created = response.status().is_success()
        && method == Method::POST
        && (path.ends_with("createAndDeliver") || path.ends_with("/deliver"));
    if created {
        let space = body["openSpaceId"].as_str().unwrap_or_default();
        let track = body["outTrackId"].as_str().unwrap_or_default();
        st.chat.card(space, track);
    }
    Some(response)
}

pub(crate) fn api_error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        axum::Json(json!({"requestid": "SIM-REQUEST", "code": code, "message": message})),
    )
        .into_response()
}

pub(crate) fn oapi_error(code: i64, message: &str) -> Response {
    axum::Json(json!({"errcode": code, "errmsg": message, "request_id": "simreq"})).into_response()
}

pub(crate) fn ok_json(v: Value) -> Response {
    axum::Json(v).into_response()
}

pub(crate) async fn http_handler(
    AxState(shared): AxState<Arc<Shared>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let started = std::time::Instant::now();
    let path = uri.path().to_owned();
    let query: BTreeMap<String, String> = uri
        .query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    let json_body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let token = headers
        .get("x-acs-dingtalk-access-token")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);

    if method == Method::POST && path == "/v1.0/gateway/connections/open" {
        return crate::stream::open_connection(&shared, &headers, &json_body, peer.ip());
    }
    let is_token = (method == Method::POST && path == "/v1.0/oauth2/accessToken")
        || (method == Method::GET && path == "/gettoken");
    if is_token {
        let delay = {
            let mut st = shared.lock();
            if st.faults.token_delays > 0 {
                st.faults.token_delays -= 1;
                st.faults.token_delay
            } else {
                Duration::ZERO
            }
        };
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
    }
    if method == Method::POST && path == "/v1.0/oauth2/accessToken" {
        return auth::issue_token(
            &shared,
            json_body["appKey"].as_str(),
            json_body["appSecret"].as_str(),
            false,
        );
    }
    if method == Method::GET && path == "/gettoken" {
        return auth::issue_token(
            &shared,
            query.get("appkey").map(String::as_str),
            query.get("appsecret").map(String::as_str),
            true,
        );
    }
    if let Some(code) = path.strip_prefix("/_files/") {
        return (
            [("content-type", "application/octet-stream")],
            format!("sim file {code}"),
        )
            .into_response();
    }
    let mut record = Recorded {
        method: method.to_string(),
        path: path.clone(),
        query: query.clone(),
        token: token.clone(),
        body: if json_body.is_null() && !body.is_empty() {
            Value::String(String::from_utf8_lossy(&body[..body.len().min(4096)]).into_owned())
        } else {
            json_body.clone()
        },
        status: 200,
        peer: peer.ip(),
        at_unix_ms: now_ms(),
        latency_us: 0,
    };
    let response = if path == "/robot/sendBySession" || path == "/robot/send" {
        let r = webhook::webhook(&shared, &path, &query, &json_body);
        record.status = r.status().as_u16();
        record.latency_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        let mut st = shared.lock();
        st.snap.webhooks.push(record);
        drop(st);
        shared.changed();
        return r;
    } else if path.starts_with("/v1.0/") {
        api_call(&shared, &method, &path, token.as_deref(), &json_body)
    } else if path == "/media/upload" || path.starts_with("/topapi/") {
        oapi::oapi_call(&shared, &path, &query, &body)
    } else {
        api_error(StatusCode::NOT_FOUND, "resource.not.found", "no such path")
    };
    record.status = response.status().as_u16();
    record.latency_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
    shared.lock().snap.api_calls.push(record);
    shared.changed();
    response
}

fn api_call(
    shared: &Shared,
    method: &Method,
    path: &str,
    token: Option<&str>,
    body: &Value,
) -> Response {
    let mut st = shared.lock();
    if !auth::token_valid(&st, token) {
        return api_error(
            StatusCode::BAD_REQUEST,
            "InvalidAuthentication",
            "不合法的access_token",
        );
    }
    if st.faults.rate_limit_calls > 0 {
        st.faults.rate_limit_calls -= 1;
        return api_error(
            StatusCode::FORBIDDEN,
            "Forbidden.AccessDenied.QpsLimitForApi",
            "当前接口全局QPS限流",
        );
    }
    drop(st);
    for family in API_FAMILIES {
        if let Some(response) = family(shared, method, path, body) {
            return response;
        }
    }
    api_error(
        StatusCode::NOT_FOUND,
        "resource.not.found",
        "no such API in the emulator",
    )
}
