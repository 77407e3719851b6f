//! Entry points of the fuzz targets, shared by `fuzz/` and the corpus-replay test. Each takes
//! untrusted bytes and must never panic, except where an invariant check fails on purpose.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used, missing_docs)] // invariant checks abort the fuzzer on purpose

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use arbitrary::{Arbitrary, Unstructured};

use crate::api::{self, ApiCall, Family};
use crate::callback::{EventCrypto, verify_outgoing};
use crate::callback_server::{CallbackLimits, CallbackServer, Verdict};
use crate::frame::{Frame, Limits, salvage_message_id};
use crate::model::{CardCallback, ChatbotMessage, GraphRequest};
use crate::{
    ConnId, Credentials, DeliveryId, Endpoints, Input, Outcome, Output, RequestId, Session,
    StreamConfig, Subscription, topic,
};

/// Frame parser and the 400-ack salvage path.
pub fn frame(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let limits = Limits::default();
    if let Ok(f) = Frame::parse(text, &limits) {
        assert!(!f.headers.message_id.is_empty());
        assert!(!f.headers.topic.is_empty());
        let _ = f.data_json::<serde_json::Value>();
    }
    let _ = salvage_message_id(text, &limits);
}

/// Payload models.
pub fn models(data: &[u8]) {
    if let Ok(m) = serde_json::from_slice::<ChatbotMessage>(data) {
        let _ = m.content();
        let _ = m.text();
    }
    if let Ok(c) = serde_json::from_slice::<CardCallback>(data) {
        let _ = c.action();
    }
    if let Ok(g) = serde_json::from_slice::<GraphRequest>(data) {
        let _ = (g.path(), g.query());
    }
    // Organisation events: the first byte picks a typed event type.
    if let (Some((first, rest)), true) = (data.split_first(), !data.is_empty()) {
        const TYPES: [&str; 6] = [
            "user_add_org",
            "org_dept_create",
            "chat_update_title",
            "bpms_instance_change",
            "bpms_task_change",
            "other",
        ];
        if let Ok(v) = serde_json::from_slice::<serde_json::Value>(rest) {
            let _ = crate::events::OrgEvent::parse(TYPES[usize::from(*first) % TYPES.len()], &v);
        }
    }
}

/// API response parsing for both envelopes. First byte: family; next two: status.
pub fn api_response(data: &[u8]) {
    if data.len() < 3 {
        return;
    }
    let family = match data[0] % 3 {
        0 => Family::Api,
        1 => Family::Oapi,
        _ => Family::Webhook,
    };
    let status = 100 + u16::from_be_bytes([data[1], data[2]]) % 500;
    let body = &data[3..];
    if let Err(e) = api::check_envelope(family, status, body) {
        let _ = (e.is_retryable(), e.retry_after(), e.to_string());
    }
    let call = api::robot::MessageFileDownload {
        robot_code: "r".into(),
        download_code: "d".into(),
    };
    let response = http::Response::builder()
        .status(status)
        .body(body.to_vec())
        .unwrap();
    let _ = api::parse_response(&call, response);
    let token = crate::auth::GetAccessToken {
        credentials: Credentials::new("id", "secret"),
    };
    let response = http::Response::builder()
        .status(status)
        .body(body.to_vec())
        .unwrap();
    let _ = api::parse_response(&token, response);
    let _ = token.family();
}

/// Webhook and outgoing-callback verification, and the event-subscription decrypt.
pub fn callback(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut parts = text.splitn(4, '\n');
    let (a, b, c, d) = (
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
    );
    let _ = verify_outgoing(a, b, c, 1_700_000_000_000);
    let _ = crate::callback::parse_outgoing(a, b, c, 1_700_000_000_000, d.as_bytes());
    let crypto = EventCrypto::new(
        "123456",
        "4g5j64qlyl3zvetqxz5jiocdr586fn2zvjpa8zls3ij",
        "suite4xxxxxxxxxxxxxxx",
    )
    .unwrap();
    // Correctly signed garbage reaches the decryptor itself.
    let sig = crate::callback::event_signature("123456", a, b, d);
    let _ = crypto.decrypt(&sig, a, b, d);
    let _ = crypto.decrypt_body(&sig, a, b, d.as_bytes());
    let _ = EventCrypto::new(a, c, b);
    let send = crate::webhook::CustomRobotSend {
        webhook: a.to_owned(),
        secret: Some(b.to_owned()),
        timestamp_ms: 1,
        message: crate::webhook::Message::text(c),
    };
    let _ = api::build_request(&send, &Endpoints::default(), None);

    // The HTTP-callback request path: headers and body as they come, then correctly signed
    // (so arbitrary bodies reach the parsers), twice (the second is a duplicate or refused).
    let now = Instant::now();
    let now_ms = 1_700_000_000_000;
    let mut server = CallbackServer::new(c, Some(crypto.clone()), CallbackLimits::default());
    let settle = |server: &mut CallbackServer, verdict: Verdict| match verdict {
        Verdict::Handle { frame, ticket, .. } => {
            assert_eq!(frame.message_id(), ticket.message_id());
            server.finished(ticket, true, now);
        }
        Verdict::Answer(answer) => assert!((200..600).contains(&answer.status)),
    };
    let v = server.robot(a, b, d.as_bytes(), now_ms, now);
    settle(&mut server, v);
    let signed = crate::webhook::sign(c, now_ms);
    for _ in 0..2 {
        let v = server.robot(&now_ms.to_string(), &signed, d.as_bytes(), now_ms, now);
        settle(&mut server, v);
    }
    let v = server.event(&sig, a, b, d.as_bytes(), now_ms, now, [0; 24]);
    settle(&mut server, v);
    let sealed = crypto.encrypt(d, &now_ms.to_string(), "n", *b"0123456789abcdef");
    let body = serde_json::json!({"encrypt": sealed.encrypt}).to_string();
    for _ in 0..2 {
        let v = server.event(
            &sealed.msg_signature,
            &now_ms.to_string(),
            "n",
            body.as_bytes(),
            now_ms,
            now,
            [1; 24],
        );
        settle(&mut server, v);
    }
    assert_eq!(server.in_flight(), 0);
}

/// One operation on a session under test.
#[derive(Debug, Clone, Arbitrary)]
pub enum Op {
    AnswerOpen { status: u16, good: bool },
    FailOpen,
    Connected,
    ConnectFailed,
    Frame { conn: u8, kind: u8, id: u8 },
    Raw { conn: u8, text: String },
    Pong { conn: u8 },
    Close { conn: u8 },
    Complete { which: u8, outcome: u8 },
    CompleteUnknown { id: u16 },
    Advance { ms: u32 },
    Stop,
}

fn frame_text(kind: u8, id: u8) -> String {
    let (t, topic, data) = match kind % 6 {
        0 => ("SYSTEM", "ping", r#"{"opaque":"o"}"#),
        1 => ("SYSTEM", "disconnect", r#"{"reason":"r"}"#),
        2 => (
            "CALLBACK",
            topic::BOT_MESSAGE,
            r#"{"msgtype":"text","text":{"content":"x"}}"#,
        ),
        3 => ("CALLBACK", topic::CARD_CALLBACK, r#"{"outTrackId":"t"}"#),
        4 => ("EVENT", "*", "{}"),
        _ => ("CALLBACK", "/unknown", "{}"),
    };
    serde_json::json!({"type": t, "headers": {"topic": topic, "messageId": format!("m{}", id % 8)}, "data": data})
        .to_string()
}

/// A session fed an arbitrary sequence of inputs, checking invariants on the way:
/// no ack for a frame that connection never received, at most one open request in flight,
/// every received copy acked at most once, handler concurrency bounded.
pub fn session(data: &[u8]) {
    let Ok(ops) = Vec::<Op>::arbitrary_take_rest(Unstructured::new(data)) else {
        return;
    };
    let mut config = StreamConfig::new(Credentials::new("id", "secret"))
        .endpoints(Endpoints::single("https://gw.test"))
        .subscribe(Subscription::callback(topic::BOT_MESSAGE))
        .subscribe(Subscription::callback(topic::CARD_CALLBACK))
        .subscribe(Subscription::events());
    config.max_in_flight = 2;
    config.max_queued = 2;
    let open_timeout = config.open_timeout;
    let mut now = Instant::now();
    let mut s = Session::new(config, now).unwrap();
    let mut open: Option<(RequestId, Instant)> = None;
    let mut connecting: Vec<ConnId> = Vec::new();
    let mut conns: Vec<ConnId> = Vec::new();
    let mut received: HashMap<(ConnId, String), usize> = HashMap::new();
    let mut acked: HashMap<(ConnId, String), usize> = HashMap::new();
    let mut delivered: Vec<DeliveryId> = Vec::new();
    let mut completed: HashSet<DeliveryId> = HashSet::new();

    let drain = |s: &mut Session,
                 now: Instant,
                 open: &mut Option<(RequestId, Instant)>,
                 connecting: &mut Vec<ConnId>,
                 conns: &mut Vec<ConnId>,
                 received: &HashMap<(ConnId, String), usize>,
                 acked: &mut HashMap<(ConnId, String), usize>,
                 delivered: &mut Vec<DeliveryId>| {
        loop {
            match s.poll_output() {
                Output::Timeout(_) | Output::Done => break,
                Output::Http { id, .. } => {
                    if let Some((_, sent)) = open {
                        assert!(
                            now.duration_since(*sent) >= open_timeout,
                            "two open requests in flight"
                        );
                    }
                    *open = Some((id, now));
                }
                Output::Connect { conn, .. } => connecting.push(conn),
                Output::Send { conn, text } => {
                    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
                    let id = v["headers"]["messageId"].as_str().unwrap().to_owned();
                    let key = (conn, id);
                    let got = received.get(&key).copied().unwrap_or(0);
                    assert!(got > 0, "ack for a frame {conn:?} never received");
                    let n = acked.entry(key).or_default();
                    *n += 1;
                    assert!(*n <= got, "more acks than received copies");
                }
                Output::Close { conn } => {
                    conns.retain(|c| *c != conn);
                    connecting.retain(|c| *c != conn);
                }
                Output::Deliver(d) => delivered.push(d.id),
                _ => {}
            }
        }
    };
    macro_rules! step {
        ($input:expr) => {{
            s.handle_input($input, now);
            drain(
                &mut s,
                now,
                &mut open,
                &mut connecting,
                &mut conns,
                &received,
                &mut acked,
                &mut delivered,
            );
        }};
    }
    drain(
        &mut s,
        now,
        &mut open,
        &mut connecting,
        &mut conns,
        &received,
        &mut acked,
        &mut delivered,
    );
    for op in ops.into_iter().take(500) {
        match op {
            Op::AnswerOpen { status, good } => {
                if let Some((id, _)) = open.take() {
                    let body = if good {
                        r#"{"endpoint":"wss://gw.test/connect","ticket":"t"}"#
                    } else {
                        "{}"
                    };
                    let status = 100 + status % 500;
                    let response = http::Response::builder()
                        .status(status)
                        .body(body.as_bytes().to_vec())
                        .unwrap();
                    step!(Input::HttpResponse { id, response });
                }
            }
            Op::FailOpen => {
                if let Some((id, _)) = open.take() {
                    step!(Input::HttpFailed {
                        id,
                        reason: String::new()
                    });
                }
            }
            Op::Connected => {
                if let Some(conn) = connecting.pop() {
                    conns.push(conn);
                    step!(Input::Connected { conn });
                }
            }
            Op::ConnectFailed => {
                if let Some(conn) = connecting.pop() {
                    step!(Input::ConnectFailed {
                        conn,
                        reason: String::new()
                    });
                }
            }
            Op::Frame { conn, kind, id } => {
                if let Some(&c) = conns.get(usize::from(conn) % conns.len().max(1)) {
                    let text = frame_text(kind, id);
                    *received.entry((c, format!("m{}", id % 8))).or_default() += 1;
                    step!(Input::Text {
                        conn: c,
                        text: &text
                    });
                }
            }
            Op::Raw { conn, text } => {
                if let Some(&c) = conns.get(usize::from(conn) % conns.len().max(1)) {
                    if let Some(id) = salvage_message_id(&text, &Limits::default()) {
                        *received.entry((c, id)).or_default() += 1;
                    }
                    step!(Input::Text {
                        conn: c,
                        text: &text
                    });
                }
            }
            Op::Pong { conn } => {
                if let Some(&c) = conns.get(usize::from(conn) % conns.len().max(1)) {
                    step!(Input::Pong { conn: c });
                }
            }
            Op::Close { conn } => {
                if !conns.is_empty() {
                    let c = conns.remove(usize::from(conn) % conns.len());
                    step!(Input::Closed {
                        conn: c,
                        reason: String::new()
                    });
                }
            }
            Op::Complete { which, outcome } => {
                let pending: Vec<DeliveryId> = delivered
                    .iter()
                    .copied()
                    .filter(|d| !completed.contains(d))
                    .collect();
                if let Some(&id) = pending.get(usize::from(which) % pending.len().max(1)) {
                    completed.insert(id);
                    let outcome = match outcome % 3 {
                        0 => Outcome::done(),
                        1 => Outcome::Later,
                        _ => Outcome::Failed("f".into()),
                    };
                    step!(Input::Complete { id, outcome });
                }
            }
            Op::CompleteUnknown { id } => {
                step!(Input::Complete {
                    id: DeliveryId(u64::from(id) + 1_000_000),
                    outcome: Outcome::done()
                });
            }
            Op::Advance { ms } => {
                now += Duration::from_millis(u64::from(ms % 120_000));
                step!(Input::Timeout);
            }
            Op::Stop => step!(Input::Stop),
        }
        assert!(s.in_flight() <= 2, "handler concurrency over the limit");
    }
}
