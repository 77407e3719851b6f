//! Webhooks: a received message's session webhook (`/robot/sendBySession`, valid until it
//! expires) and a custom robot (`/robot/send`, with the sign check when a robot secret is set).

use super::*;

pub(crate) fn webhook(
    shared: &Shared,
    path: &str,
    query: &BTreeMap<String, String>,
    body: &Value,
) -> Response {
    let mut st = shared.lock();
    if !matches!(
        body["msgtype"].as_str(),
        Some("text" | "markdown" | "link" | "actionCard" | "feedCard" | "empty")
    ) {
        return oapi_error(400105, "不支持的消息类型");
    }
    if path == "/robot/sendBySession" {
        let session = query.get("session").cloned().unwrap_or_default();
        return match st.sessions.get(&session) {
            Some(exp) if now_ms() < *exp => {
                if !shared.config.bench_mode {
                    st.chat.webhook(Some(&session), body);
                }
                oapi_error(0, "ok")
            }
            _ => oapi_error(300001, "session 不存在"),
        };
    }
    if query.get("access_token").is_none_or(|t| t.is_empty()) {
        return oapi_error(300001, "token is not exist");
    }
    if let Some(secret) = &shared.config.robot_secret {
        let ts: Option<i64> = query.get("timestamp").and_then(|t| t.parse().ok());
        let Some(ts) = ts else {
            return oapi_error(310000, "invalid timestamp");
        };
        if (now_ms() - ts).abs() > 3_600_000 {
            return oapi_error(310000, "invalid timestamp");
        }
        if query.get("sign") != Some(&dingtalk_core::webhook::sign(secret, ts)) {
            return oapi_error(310000, "sign not match");
        }
    }
    st.chat.webhook(None, body);
    oapi_error(0, "ok")
}
