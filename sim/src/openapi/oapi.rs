//! Old-style (oapi) endpoints with `errcode` answers: media upload, work notifications, and
//! the organisation (`crate::directory`).

use super::auth::token_valid;
use super::*;

pub(crate) fn oapi_call(
    shared: &Shared,
    path: &str,
    query: &BTreeMap<String, String>,
    body: &[u8],
) -> Response {
    let mut st = shared.lock();
    if !token_valid(&st, query.get("access_token").map(String::as_str)) {
        return oapi_error(40014, "不合法的access_token");
    }
    if st.faults.rate_limit_calls > 0 {
        st.faults.rate_limit_calls -= 1;
        return oapi_error(90018, "当前应用调用该接口的QPS超出限制");
    }
    let n = shared.next(&mut st);
    drop(st);
    if path == "/media/upload" {
        let text = String::from_utf8_lossy(body);
        if !text.contains("name=\"media\"") || !text.contains("name=\"type\"") {
            return oapi_error(40035, "缺少参数 media 或 type");
        }
        return ok_json(
            json!({"errcode": 0, "errmsg": "ok", "media_id": format!("@sim-media-{n}"),
                              "created_at": now_ms(), "type": query.get("type")}),
        );
    }
    if path == "/topapi/message/corpconversation/asyncsend_v2" {
        let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        if v["agent_id"].as_i64().is_none_or(|a| a <= 0) {
            return oapi_error(40035, "缺少参数 agent_id");
        }
        if v["msg"]["msgtype"].as_str().is_none() {
            return oapi_error(40035, "缺少参数 msg");
        }
        let to_all = v["to_all_user"].as_bool().unwrap_or(false);
        let users = v["userid_list"].as_str().unwrap_or_default();
        if !to_all && (users.is_empty() || users.split(',').count() > 100) {
            return oapi_error(40035, "userid_list 无效");
        }
        return ok_json(json!({"errcode": 0, "errmsg": "ok", "task_id": n,
                              "request_id": format!("sim-request-{n}")}));
    }
    let json_body: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    if let Some(response) = shared.lock().directory.handle(path, &json_body) {
        return response;
    }
    oapi_error(404, "no such API in the emulator")
}
