//! Robot messages and the rest of the new-style IM endpoints: group and one-to-one sends (shown
//! in the console's conversations), recall (removes them), read status, message-file download,
//! StandardCards, scene-group settings.

use super::*;

/// Answers a robot or IM call, or `None` when `path` is not one.
pub(crate) fn handle(
    shared: &Shared,
    method: &Method,
    path: &str,
    body: &Value,
) -> Option<Response> {
    if !(path.starts_with("/v1.0/robot/") || path.starts_with("/v1.0/im/")) {
        return None;
    }
    Some(answer(shared, method, path, body))
}

fn answer(shared: &Shared, method: &Method, path: &str, body: &Value) -> Response {
    let mut st = shared.lock();
    let n = shared.next(&mut st);
    drop(st);
    let pqk = format!("sim-pqk-{n}");
    let str_field = |k: &str| body[k].as_str().unwrap_or_default().to_owned();
    match (method.as_str(), path) {
        ("POST", "/v1.0/robot/groupMessages/send")
        | ("POST", "/v1.0/robot/oToMessages/batchSend") => {
            if body["msgKey"].as_str().is_none() || body["msgParam"].as_str().is_none() {
                return api_error(
                    StatusCode::BAD_REQUEST,
                    "invalidParameter.msgParam.invalid",
                    "msgKey and msgParam (a JSON string) are required",
                );
            }
            shared
                .lock()
                .chat
                .robot(path.contains("groupMessages"), body, &pqk);
            ok_json(
                json!({"processQueryKey": pqk, "invalidStaffIdList": [], "flowControlledStaffIdList": []}),
            )
        }
        ("POST", "/v1.0/robot/groupMessages/recall")
        | ("POST", "/v1.0/robot/otoMessages/batchRecall") => {
            let keys: Vec<String> = body["processQueryKeys"]
                .as_array()
                .map(|k| {
                    k.iter()
                        .filter_map(|x| x.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            if keys.is_empty() {
                return api_error(
                    StatusCode::BAD_REQUEST,
                    "MissingprocessQueryKeys",
                    "processQueryKeys is required",
                );
            }
            let mut st = shared.lock();
            let (done, failed): (Vec<String>, Vec<String>) =
                keys.into_iter().partition(|k| st.chat.recall(k));
            drop(st);
            let failed: serde_json::Map<String, Value> = failed
                .into_iter()
                .map(|k| (k, json!("message not found")))
                .collect();
            ok_json(json!({"successResult": done, "failedResult": failed}))
        }
        ("GET", "/v1.0/robot/oToMessages/readStatus") => {
            ok_json(json!({"sendStatus": "SUCCESS", "messageReadInfoList": []}))
        }
        ("POST", "/v1.0/robot/messageFiles/download") => {
            let code = str_field("downloadCode");
            if code.is_empty() {
                return api_error(
                    StatusCode::BAD_REQUEST,
                    "param.invalid",
                    "downloadCode is required",
                );
            }
            ok_json(json!({"downloadUrl": format!("{}/_files/{code}", shared.base_url)}))
        }
        ("POST", "/v1.0/im/v1.0/robot/interactiveCards/send") => {
            for field in ["cardTemplateId", "cardBizId", "robotCode", "cardData"] {
                if body[field].as_str().is_none_or(str::is_empty) {
                    return api_error(
                        StatusCode::BAD_REQUEST,
                        "MissingParameter",
                        &format!("{field} is required"),
                    );
                }
            }
            shared.lock().chat.standard_card(body);
            ok_json(json!({"processQueryKey": pqk}))
        }
        ("PUT", "/v1.0/im/robots/interactiveCards") => ok_json(json!({"success": true})),
        _ if path.starts_with("/v1.0/im/sceneGroups") => ok_json(json!({"success": true})),
        _ => api_error(
            StatusCode::NOT_FOUND,
            "resource.not.found",
            "no such API in the emulator",
        ),
    }
}
