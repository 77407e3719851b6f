//! The control API for people and scripts: inject a user message, read the replies and the
//! acks (the console's routes are in `crate::console`).

use super::*;

#[derive(serde::Deserialize)]
pub(crate) struct InjectMessage {
    text: String,
    #[serde(default)]
    group: bool,
    /// Who writes (a user id of the emulated organisation; default `sim-staff-1`).
    #[serde(default)]
    user: Option<String>,
}

#[derive(Serialize)]
pub(crate) struct Injected {
    message_id: Option<String>,
    error: Option<String>,
}

pub(crate) async fn control_message(
    AxState(shared): AxState<Arc<Shared>>,
    axum::Json(req): axum::Json<InjectMessage>,
) -> Response {
    // The control API reuses the same pushing code as the Rust API.
    let sim = Control {
        shared: shared.clone(),
    };
    let chat = if req.group {
        Chat::Group
    } else {
        Chat::Private
    };
    let live = Control::active_conn(&shared.lock()).is_some();
    let result = if live {
        Injected {
            message_id: Some(sim.bot_text_as(
                &req.text,
                chat,
                req.user.as_deref().unwrap_or("sim-staff-1"),
            )),
            error: None,
        }
    } else {
        Injected {
            message_id: None,
            error: Some("no bot is connected".into()),
        }
    };
    axum::Json(result).into_response()
}

pub(crate) async fn control_replies(AxState(shared): AxState<Arc<Shared>>) -> Response {
    let replies: Vec<Value> = shared
        .lock()
        .snap
        .webhooks
        .iter()
        .map(|r| json!({"path": r.path, "body": r.body, "status": r.status}))
        .collect();
    axum::Json(replies).into_response()
}

pub(crate) async fn control_acks(AxState(shared): AxState<Arc<Shared>>) -> Response {
    let acks: Vec<Value> = shared
        .lock()
        .snap
        .acks
        .iter()
        .map(|a| json!({"conn": a.conn, "messageId": a.message_id, "code": a.code, "data": a.data}))
        .collect();
    axum::Json(acks).into_response()
}
