//! The web console: a page (embedded, no CDN: it works offline) where a person chats with
//! their bot as a user, sees its answers live (text, markdown, cards with working buttons, AI
//! cards streaming), sends organisation events, reads the API calls the bot made (secrets
//! redacted), and injects faults into its connections.
//!
//! | route | what |
//! |---|---|
//! | `GET /`, `GET /_sim/console` | the page |
//! | `GET /_sim/state` | everything the page shows, as JSON |
//! | `GET /_sim/stream` | the same, pushed as Server-Sent Events on every change |
//! | `POST /_sim/messages` `{"text", "group"}` | a user writes to the bot (in `lib.rs`) |
//! | `POST /_sim/card-action` `{"out_track_id", "action_id"}` | a user clicks a card button |
//! | `POST /_sim/event` `{"event_type", "data"}` | an organisation event is pushed |
//! | `POST /_sim/fault` `{"fault"}` | `disconnect`, `drop`, `freeze`, `duplicate`, `malformed`, `fail-token`, `delay-token`, `rate-limit` |

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State as AxState;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use serde::Serialize;
use serde_json::{Value, json};

use crate::{Chat, Control, Shared, now_ms};

/// The page.
const PAGE: &str = include_str!("console.html");

/// Most chat lines kept (older ones are dropped).
const MAX_LINES: usize = 500;

/// Most API calls the page lists (the newest).
const API_LOG: usize = 200;

/// One line of a conversation.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ChatLine {
    /// Order of arrival.
    pub seq: u64,
    /// `group`, or `private:<userid>` (a user's one-to-one chat with the bot).
    pub conv: String,
    /// `user` or `bot`.
    pub from: &'static str,
    /// `text`, `markdown`, `link`, `actionCard`, `feedCard`, `image`, `card`, …
    pub kind: String,
    /// The text (markdown for `markdown`).
    pub text: String,
    /// A title, when the message has one.
    pub title: Option<String>,
    /// The card's `outTrackId`, for `card`.
    pub card: Option<String>,
    /// The `processQueryKey` of a message sent through the robot API (to recall it).
    pub process_query_key: Option<String>,
    /// When (Unix ms).
    pub at_ms: i64,
}

/// The conversations as the console shows them.
#[derive(Debug, Default)]
pub(crate) struct ChatLog {
    lines: VecDeque<ChatLine>,
    seq: u64,
    /// Which conversation each session webhook answers.
    sessions: HashMap<String, String>,
}

fn conv_of(chat: Chat, userid: &str) -> String {
    match chat {
        Chat::Group => "group".to_owned(),
        Chat::Private => format!("private:{userid}"),
    }
}

impl ChatLog {
    fn push(
        &mut self,
        conv: String,
        from: &'static str,
        kind: &str,
        text: String,
    ) -> &mut ChatLine {
        self.seq += 1;
        if self.lines.len() >= MAX_LINES {
            self.lines.pop_front();
        }
        self.lines.push_back(ChatLine {
            seq: self.seq,
            conv,
            from,
            kind: kind.to_owned(),
            text,
            title: None,
            card: None,
            process_query_key: None,
            at_ms: now_ms(),
        });
        let last = self.lines.len() - 1;
        &mut self.lines[last]
    }

    /// A user wrote (through a pushed bot message with this session webhook).
    pub(crate) fn user(
        &mut self,
        chat: Chat,
        userid: &str,
        nick: &str,
        msgtype: &str,
        text: &str,
        session: &str,
    ) {
        let conv = conv_of(chat, userid);
        if self.sessions.len() >= 10_000 {
            self.sessions.clear();
        }
        self.sessions.insert(session.to_owned(), conv.clone());
        let shown = if msgtype == "text" {
            text.to_owned()
        } else {
            format!("[{msgtype}]")
        };
        let line = self.push(conv, "user", "text", shown);
        line.title = Some(nick.to_owned());
    }

    /// The bot answered through a session webhook or a custom robot (`session` `None`: a group).
    pub(crate) fn webhook(&mut self, session: Option<&str>, body: &Value) {
        let conv = session
            .and_then(|s| self.sessions.get(s).cloned())
            .unwrap_or_else(|| "group".to_owned());
        let kind = body["msgtype"].as_str().unwrap_or("text").to_owned();
        let (title, text) = match kind.as_str() {
            "text" => (
                None,
                body["text"]["content"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            ),
            "markdown" => (
                body["markdown"]["title"].as_str().map(str::to_owned),
                body["markdown"]["text"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            ),
            "link" => (
                body["link"]["title"].as_str().map(str::to_owned),
                format!(
                    "{} ({})",
                    body["link"]["text"].as_str().unwrap_or_default(),
                    body["link"]["messageUrl"].as_str().unwrap_or_default()
                ),
            ),
            "actionCard" => (
                body["actionCard"]["title"].as_str().map(str::to_owned),
                body["actionCard"]["text"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            ),
            other => (None, format!("[{other}] {body}")),
        };
        let line = self.push(conv, "bot", &kind, text);
        line.title = title;
    }

    /// The bot sent through the robot API (`msgKey`, `msgParam`).
    pub(crate) fn robot(&mut self, group: bool, body: &Value, process_query_key: &str) {
        let conv = if group {
            "group".to_owned()
        } else {
            let user = body["userIds"][0].as_str().unwrap_or("sim-staff-1");
            format!("private:{user}")
        };
        let key = body["msgKey"].as_str().unwrap_or_default();
        let param: Value = body["msgParam"]
            .as_str()
            .and_then(|p| serde_json::from_str(p).ok())
            .unwrap_or(Value::Null);
        let (kind, title, text) = match key {
            "sampleText" => (
                "text",
                None,
                param["content"].as_str().unwrap_or_default().to_owned(),
            ),
            "sampleMarkdown" => (
                "markdown",
                param["title"].as_str().map(str::to_owned),
                param["text"].as_str().unwrap_or_default().to_owned(),
            ),
            "sampleImageMsg" => (
                "image",
                None,
                param["photoURL"].as_str().unwrap_or_default().to_owned(),
            ),
            "sampleFile" => (
                "file",
                None,
                param["fileName"].as_str().unwrap_or_default().to_owned(),
            ),
            other => ("text", None, format!("[{other}] {param}")),
        };
        let line = self.push(conv, "bot", kind, text);
        line.title = title;
        line.process_query_key = Some(process_query_key.to_owned());
    }

    /// Removes the message sent with `process_query_key`; whether there was one.
    pub(crate) fn recall(&mut self, process_query_key: &str) -> bool {
        let before = self.lines.len();
        self.lines
            .retain(|l| l.process_query_key.as_deref() != Some(process_query_key));
        self.lines.len() < before
    }

    /// The bot sent a StandardCard (`interactiveCards/send`): its title and texts are shown.
    pub(crate) fn standard_card(&mut self, body: &Value) {
        let conv = if body["openConversationId"].is_string() {
            "group".to_owned()
        } else {
            let receiver: Value = body["singleChatReceiver"]
                .as_str()
                .and_then(|r| serde_json::from_str(r).ok())
                .unwrap_or(Value::Null);
            format!(
                "private:{}",
                receiver["userId"].as_str().unwrap_or("sim-staff-1")
            )
        };
        let data: Value = body["cardData"]
            .as_str()
            .and_then(|d| serde_json::from_str(d).ok())
            .unwrap_or(Value::Null);
        let title = data["header"]["title"]["text"].as_str().map(str::to_owned);
        let texts: Vec<&str> = data["contents"]
            .as_array()
            .map(|c| c.iter().filter_map(|x| x["text"].as_str()).collect())
            .unwrap_or_default();
        let line = self.push(conv, "bot", "standardCard", texts.join("\n"));
        line.title = title;
    }

    /// The bot created and delivered a card to `open_space_id`.
    pub(crate) fn card(&mut self, open_space_id: &str, track: &str) {
        let upper = open_space_id.to_ascii_uppercase();
        let conv = match upper.find("IM_ROBOT.") {
            Some(i) => format!("private:{}", &open_space_id[i + "IM_ROBOT.".len()..]),
            None => "group".to_owned(),
        };
        if self.lines.iter().any(|l| l.card.as_deref() == Some(track)) {
            return;
        }
        let line = self.push(conv, "bot", "card", String::new());
        line.card = Some(track.to_owned());
    }
}

/// Query parameters and body fields never shown.
fn redact(mut v: Value) -> Value {
    const SECRET: [&str; 8] = [
        "access_token",
        "session",
        "sign",
        "appSecret",
        "clientSecret",
        "sessionWebhook",
        "accessToken",
        "token",
    ];
    match &mut v {
        Value::Object(map) => {
            for (k, val) in map.iter_mut() {
                if SECRET.contains(&k.as_str()) {
                    *val = json!("<redacted>");
                } else {
                    *val = redact(std::mem::take(val));
                }
            }
        }
        Value::Array(items) => {
            for item in items.iter_mut() {
                *item = redact(std::mem::take(item));
            }
        }
        _ => {}
    }
    v
}

/// Everything the page shows.
pub(crate) fn state(shared: &Shared) -> Value {
    let st = shared.lock();
    let cards: serde_json::Map<String, Value> = st
        .cards
        .cards
        .iter()
        .map(|(k, c)| {
            (
                k.clone(),
                json!({"template": c.template_id, "data": c.data, "flowStatus": c.flow_status(),
                       "finalized": c.finalized, "error": c.error}),
            )
        })
        .collect();
    let calls = st.snap.webhooks.iter().chain(st.snap.api_calls.iter());
    let mut api: Vec<Value> = calls
        .map(|r| {
            let query: serde_json::Map<String, Value> =
                r.query.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
            json!({"method": r.method, "path": r.path, "status": r.status, "at_ms": r.at_unix_ms,
                   "latency_us": r.latency_us,
                   "query": redact(Value::Object(query)), "body": redact(r.body.clone())})
        })
        .collect();
    api.sort_by_key(|v| v["at_ms"].as_i64().unwrap_or_default());
    let skip = api.len().saturating_sub(API_LOG);
    let conns: Vec<Value> = st
        .snap
        .conns
        .iter()
        .map(|c| {
            let acks = st.snap.acks.iter().filter(|a| a.conn == c.id).count();
            let failed = st
                .snap
                .acks
                .iter()
                .filter(|a| a.conn == c.id && a.code != 200)
                .count();
            let sent = st.snap.sent.iter().filter(|s| s.conn == c.id).count();
            json!({"id": c.id, "open": c.open, "draining": c.draining, "sent": sent, "acks": acks,
                   "failed_acks": failed})
        })
        .collect();
    let users: Vec<Value> = st
        .directory
        .users
        .values()
        .map(|u| json!({"userid": u.userid, "name": u.name}))
        .collect();
    json!({
        "base_url": shared.base_url,
        "users": users,
        "client_id": shared.config.client_id,
        "chat": st.chat.lines,
        "cards": cards,
        "conns": conns,
        "api": api[skip..],
        "violations": st.snap.violations,
        "tokens_issued": st.snap.tokens_issued,
    })
}

pub(crate) async fn page() -> Html<&'static str> {
    Html(PAGE)
}

pub(crate) async fn get_state(AxState(shared): AxState<Arc<Shared>>) -> Response {
    axum::Json(state(&shared)).into_response()
}

/// The state on every change (at most ten a second), and a comment every 15 s to keep the
/// connection open.
pub(crate) async fn stream(AxState(shared): AxState<Arc<Shared>>) -> Response {
    let rx = shared.version.subscribe();
    let first = futures_util::stream::once({
        let shared = shared.clone();
        async move { Ok::<_, Infallible>(SseEvent::default().data(state(&shared).to_string())) }
    });
    let changes = futures_util::stream::unfold((rx, shared), |(mut rx, shared)| async move {
        rx.changed().await.ok()?;
        tokio::time::sleep(Duration::from_millis(100)).await;
        rx.borrow_and_update();
        let event = SseEvent::default().data(state(&shared).to_string());
        Some((Ok::<_, Infallible>(event), (rx, shared)))
    });
    Sse::new(futures_util::StreamExt::chain(first, changes))
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}

#[derive(serde::Deserialize)]
pub(crate) struct CardAction {
    out_track_id: String,
    #[serde(default = "sim_button")]
    action_id: String,
}

fn sim_button() -> String {
    "sim_button".to_owned()
}

fn answer(result: Option<String>, what: &str) -> Response {
    match result {
        Some(id) => axum::Json(json!({"message_id": id})).into_response(),
        None => (
            axum::http::StatusCode::CONFLICT,
            axum::Json(json!({"error": format!("{what}: no bot is connected")})),
        )
            .into_response(),
    }
}

fn live(shared: &Arc<Shared>) -> Option<Control> {
    let control = Control {
        shared: shared.clone(),
    };
    Control::active_conn(&shared.lock()).map(|_| control)
}

pub(crate) async fn card_action(
    AxState(shared): AxState<Arc<Shared>>,
    axum::Json(req): axum::Json<CardAction>,
) -> Response {
    let id = live(&shared).map(|c| c.card_action(&req.out_track_id, &req.action_id, json!({})));
    answer(id, "card action")
}

#[derive(serde::Deserialize)]
pub(crate) struct PushEvent {
    event_type: String,
    #[serde(default)]
    data: Value,
}

pub(crate) async fn event(
    AxState(shared): AxState<Arc<Shared>>,
    axum::Json(req): axum::Json<PushEvent>,
) -> Response {
    if req.event_type.trim().is_empty() {
        return (
            axum::http::StatusCode::BAD_REQUEST,
            axum::Json(json!({"error": "event_type is required"})),
        )
            .into_response();
    }
    let id = live(&shared).map(|c| c.event(&req.event_type, req.data));
    answer(id, "event")
}

#[derive(serde::Deserialize)]
pub(crate) struct Fault {
    fault: String,
}

pub(crate) async fn fault(
    AxState(shared): AxState<Arc<Shared>>,
    axum::Json(req): axum::Json<Fault>,
) -> Response {
    let control = Control {
        shared: shared.clone(),
    };
    let done = match req.fault.as_str() {
        "disconnect" => control
            .disconnect()
            .map(|c| format!("connection {c} told to disconnect")),
        "drop" => control
            .close_abruptly()
            .map(|c| format!("connection {c} dropped")),
        "freeze" => control
            .freeze()
            .map(|c| format!("connection {c} stops answering pings")),
        "duplicate" => live(&shared).map(|c| {
            let id = c.bot_text("duplicated message", Chat::Group);
            let again = c.redeliver_to(&id, Control::active_conn(&shared.lock()).unwrap_or(0));
            format!("message {id} sent twice ({again:?})")
        }),
        "malformed" => control
            .push_raw("{this is not a frame")
            .map(|c| format!("malformed frame on connection {c}")),
        "delay-token" => {
            control.delay_next_tokens(3, Duration::from_secs(3));
            Some("the next 3 token requests answer after 3 s".to_owned())
        }
        "fail-token" => {
            control.fail_next_tokens(3);
            Some("the next 3 token requests fail".to_owned())
        }
        "rate-limit" => {
            control.rate_limit_next_calls(5);
            Some("the next 5 API calls are rate limited".to_owned())
        }
        other => {
            return (
                axum::http::StatusCode::BAD_REQUEST,
                axum::Json(json!({"error": format!("unknown fault `{other}`")})),
            )
                .into_response();
        }
    };
    match done {
        Some(text) => axum::Json(json!({"done": text})).into_response(),
        None => answer(None, &req.fault),
    }
}
