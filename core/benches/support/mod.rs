//! Shared set-up of the core benchmarks: a connected session and realistic frames.
#![allow(
    dead_code,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)] // benchmark set-up aborts on failure

use std::time::Instant;

use dingtalk_core::{
    ConnId, Credentials, Endpoints, Input, Outcome, Output, Session, StreamConfig, Subscription,
    topic,
};

/// The real one-to-one bot message capture (about 1 KB), with `{ID}` for the message id.
pub fn bot_frame_template() -> String {
    let text = include_str!("../../tests/fixtures/callback_bot_text_private.json").trim();
    let v: serde_json::Value = serde_json::from_str(text).unwrap();
    let id = v["headers"]["messageId"].as_str().unwrap().to_owned();
    text.replace(&id, "{ID}")
}

pub fn event_frame_template() -> String {
    let text = include_str!("../../tests/fixtures/event_user_add_org.json").trim();
    let v: serde_json::Value = serde_json::from_str(text).unwrap();
    let id = v["headers"]["messageId"].as_str().unwrap().to_owned();
    text.replace(&id, "{ID}")
}

pub fn ping_frame() -> String {
    include_str!("../../tests/fixtures/system_ping.json")
        .trim()
        .to_owned()
}

/// A session with one open connection, limits high enough that nothing queues.
pub fn connected() -> (Session, ConnId, Instant) {
    let now = Instant::now();
    let mut config = StreamConfig::new(Credentials::new("bench-id", "bench-secret"))
        .endpoints(Endpoints::single("https://gw.bench"))
        .subscribe(Subscription::callback(topic::BOT_MESSAGE))
        .subscribe(Subscription::events());
    config.max_in_flight = 1 << 20;
    let mut s = Session::new(config, now).unwrap();
    let Output::Http { id, .. } = s.poll_output() else {
        panic!("open request expected")
    };
    let response =
        http::Response::new(br#"{"endpoint":"wss://gw.bench/connect","ticket":"t"}"#.to_vec());
    s.handle_input(Input::HttpResponse { id, response }, now);
    let conn = loop {
        match s.poll_output() {
            Output::Connect { conn, .. } => break conn,
            Output::Timeout(_) => panic!("no connect"),
            _ => {}
        }
    };
    s.handle_input(Input::Connected { conn }, now);
    while !matches!(s.poll_output(), Output::Timeout(_)) {}
    (s, conn, now)
}

/// One full step: the frame in, every output drained, the handler's completion in, drained.
/// Returns how many acks were produced (so the work cannot be optimised away).
pub fn step(s: &mut Session, conn: ConnId, now: Instant, text: &str) -> usize {
    s.handle_input(Input::Text { conn, text }, now);
    let mut acks = 0;
    let mut delivered = None;
    loop {
        match s.poll_output() {
            Output::Send { .. } => acks += 1,
            Output::Deliver(d) => delivered = Some(d.id),
            Output::Timeout(_) | Output::Done => break,
            _ => {}
        }
    }
    if let Some(id) = delivered {
        s.handle_input(
            Input::Complete {
                id,
                outcome: Outcome::done(),
            },
            now,
        );
        loop {
            match s.poll_output() {
                Output::Send { .. } => acks += 1,
                Output::Timeout(_) | Output::Done => break,
                _ => {}
            }
        }
    }
    acks
}
