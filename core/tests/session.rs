//! One named test per row of the Stream decision table (design.md), driven by a scripted gateway
//! with a fake clock.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests abort on failure

mod common;

use std::time::Duration;

use common::*;
use dingtalk_core::session::connect_uri;
use dingtalk_core::{
    AckPolicy, Credentials, Error, Input, OpenError, Outcome, Output, Session, SessionEvent,
    StreamConfig, Subscription, topic,
};
use serde_json::json;

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

// ---- start / open -------------------------------------------------------------------------

#[test]
fn open_request_has_documented_method_headers_and_body() {
    let mut cfg = config();
    cfg.local_ip = Some("10.0.0.7".into());
    let mut g = Gw::new(cfg);
    let (_, req) = g.pending_http().expect("first output opens a connection");
    assert_eq!(req.method(), http::Method::POST);
    assert_eq!(
        req.uri().to_string(),
        "https://api.example.test/v1.0/gateway/connections/open"
    );
    assert_eq!(req.headers()["content-type"], "application/json");
    assert_eq!(req.headers()["accept"], "application/json");
    let body: serde_json::Value = serde_json::from_slice(req.body()).unwrap();
    assert_eq!(
        body,
        json!({
            "clientId": "ding-client",
            "clientSecret": "s3cret-value",
            "subscriptions": [
                {"type": "CALLBACK", "topic": "/v1.0/im/bot/messages/get"},
                {"type": "CALLBACK", "topic": "/v1.0/card/instances/callback"},
                {"type": "EVENT", "topic": "*"},
            ],
            "ua": dingtalk_core::config::USER_AGENT,
            "localIp": "10.0.0.7",
        })
    );
}

#[test]
fn subscriptions_are_built_from_what_the_application_registers() {
    let cfg = StreamConfig::new(Credentials::new("id", "secret"))
        .subscribe(Subscription::callback(topic::GRAPH_INVOKE))
        .subscribe(Subscription::callback(topic::GRAPH_INVOKE)); // registered twice: sent once
    let mut g = Gw::new(cfg);
    let (_, req) = g.pending_http().unwrap();
    let body: serde_json::Value = serde_json::from_slice(req.body()).unwrap();
    assert_eq!(
        body["subscriptions"],
        json!([{"type": "CALLBACK", "topic": "/v1.0/graph/api/invoke"}])
    );
    assert!(
        body.get("localIp").is_none(),
        "localIp omitted when unknown"
    );
}

#[test]
fn invalid_configuration_is_a_typed_error() {
    let now = std::time::Instant::now();
    let bad = StreamConfig::new(Credentials::new("id ", "secret"));
    assert!(matches!(
        Session::new(bad, now),
        Err(Error::InvalidConfig(_))
    ));
    let bad = StreamConfig::new(Credentials::new("id", ""));
    assert!(matches!(
        Session::new(bad, now),
        Err(Error::InvalidConfig(_))
    ));
    let mut bad = StreamConfig::new(Credentials::new("id", "secret"));
    bad.endpoints.api = "ftp://x".into();
    assert!(matches!(
        Session::new(bad, now),
        Err(Error::InvalidConfig(_))
    ));
}

#[test]
fn connect_uri_escapes_ticket_and_picks_separator() {
    let u = connect_uri("wss://h.example/connect", "a b&c=d/+", false).unwrap();
    assert_eq!(
        u.to_string(),
        "wss://h.example/connect?ticket=a+b%26c%3Dd%2F%2B"
    );
    let u = connect_uri("wss://h.example/connect?region=cn", "t-1", false).unwrap();
    assert_eq!(
        u.to_string(),
        "wss://h.example/connect?region=cn&ticket=t-1"
    );
    let u = connect_uri("wss://h.example/connect?", "t-1", false).unwrap();
    assert_eq!(u.to_string(), "wss://h.example/connect?ticket=t-1");
    assert!(connect_uri("ws://h.example/connect", "t", false).is_err());
    assert!(connect_uri("ws://127.0.0.1:9/connect", "t", true).is_ok());
    // The emulator's leave covers loopback only: a ws:// endpoint elsewhere is refused.
    assert!(connect_uri("ws://h.example/connect", "t", true).is_err());
    assert!(connect_uri("ws://10.1.2.3:80/connect", "t", true).is_err());
    assert!(connect_uri("https://h.example/connect", "t", true).is_err());
    assert!(connect_uri("wss://h.example/connect#x", "t", false).is_err());
    assert!(connect_uri("not a url", "t", false).is_err());
}

#[test]
fn connect_uses_the_endpoint_and_escaped_ticket() {
    let mut g = Gw::new(config());
    let (id, _) = g.pending_http().unwrap();
    g.respond(
        id,
        200,
        r#"{"endpoint":"wss://gw.example/connect","ticket":"7724 109a/="}"#,
    );
    let (_, req) = g.pending_connect().unwrap();
    assert_eq!(req.method(), http::Method::GET);
    assert_eq!(
        req.uri().to_string(),
        "wss://gw.example/connect?ticket=7724+109a%2F%3D"
    );
}

#[test]
fn each_ticket_is_used_once_and_reconnect_opens_anew() {
    let (mut g, c1) = Gw::connected(config());
    g.input(Input::Closed {
        conn: c1,
        reason: "eof".into(),
    });
    assert!(g.pending_http().is_none(), "reconnect waits for backoff");
    g.step();
    let (id, _) = g
        .pending_http()
        .expect("a fresh open request, not a reused ticket");
    g.respond(
        id,
        200,
        &format!(r#"{{"endpoint":"{ENDPOINT}","ticket":"second"}}"#),
    );
    let (c2, req) = g.pending_connect().unwrap();
    assert_ne!(c1, c2);
    assert!(req.uri().to_string().ends_with("ticket=second"));
    let connects = g
        .log
        .iter()
        .filter(|o| matches!(o, Output::Connect { .. }))
        .count();
    let opens = g
        .log
        .iter()
        .filter(|o| matches!(o, Output::Http { .. }))
        .count();
    assert_eq!(connects, opens, "one connect per open request");
}

#[test]
fn invalid_open_response_is_retried_with_backoff() {
    for body in [
        r#"{"ticket":"t"}"#,
        r#"{"endpoint":"wss://x/connect","ticket":""}"#,
        r#"{"endpoint":"ws://x/connect","ticket":"t"}"#,
        "<html>oops</html>",
    ] {
        let mut g = Gw::new(config());
        let (id, _) = g.pending_http().unwrap();
        g.respond(id, 200, body);
        let out = g.take();
        assert!(
            out.iter().any(|o| matches!(
                o,
                Output::Event(SessionEvent::OpenFailed {
                    error: OpenError::InvalidResponse(_)
                })
            )),
            "{body}: {out:?}"
        );
        assert!(!out.iter().any(|o| matches!(o, Output::Connect { .. })));
        g.step();
        assert!(g.pending_http().is_some(), "retried after backoff");
    }
}

// ---- 401 -----------------------------------------------------------------------------------

#[test]
fn auth_failed_is_terminal_not_a_reconnect_loop() {
    let mut g = Gw::new(config());
    let (id, _) = g.pending_http().unwrap();
    g.respond(
        id,
        401,
        r#"{"requestid":"ED20-3550","code":"authFailed","message":"鉴权失败"}"#,
    );
    let out = g.take();
    assert!(out.iter().any(|o| matches!(o, Output::Error(e) if *e
    == Error::AuthFailed {
        status: 401,
        code: Some("authFailed".into()),
        message: Some("鉴权失败".into()),
        request_id: Some("ED20-3550".into()),
    })));
    assert!(matches!(out.last(), Some(Output::Done)));
    assert!(g.s.is_done());
    g.advance(secs(3600));
    assert!(g.pending_http().is_none(), "no further open request");
    assert_eq!(g.s.stats().open_requests, 1);
}

#[test]
fn invalid_client_id_or_secret_is_terminal_whatever_the_status() {
    let mut g = Gw::new(config());
    let (id, _) = g.pending_http().unwrap();
    g.respond(
        id,
        400,
        r#"{"code":"invalidClientIdOrSecret","message":"bad"}"#,
    );
    assert!(g.s.is_done());
    assert!(
        g.log
            .iter()
            .any(|o| matches!(o, Output::Error(Error::AuthFailed { status: 400, .. })))
    );
}

#[test]
fn other_open_failures_retry_with_backoff() {
    let mut g = Gw::new(config());
    let (id, _) = g.pending_http().unwrap();
    g.respond(id, 503, "<html>busy</html>");
    let out = g.take();
    assert!(out.iter().any(|o| matches!(
        o,
        Output::Event(SessionEvent::OpenFailed {
            error: OpenError::Status { status: 503, .. }
        })
    )));
    assert!(!g.s.is_done());
    let (id, _) = {
        g.step();
        g.pending_http().expect("retry")
    };
    g.input(Input::HttpFailed {
        id,
        reason: "connection refused".into(),
    });
    g.step();
    assert!(g.pending_http().is_some());
}

// ---- ping ----------------------------------------------------------------------------------

#[test]
fn ping_is_acked_at_once_echoing_opaque_even_when_handlers_are_saturated() {
    let mut cfg = config();
    cfg.max_in_flight = 1;
    cfg.max_queued = 0;
    let (mut g, c) = Gw::connected(cfg);
    g.text(c, &card_callback("busy-1"));
    assert_eq!(g.deliveries().len(), 1);
    assert_eq!(g.count(|o| matches!(o, Output::PauseReading)), 1);
    g.take();
    let ping_text = std::fs::read_to_string("tests/fixtures/system_ping.json").unwrap();
    g.text(c, ping_text.trim());
    let sends = g.sends();
    assert_eq!(sends.len(), 1);
    let (conn, ack) = &sends[0];
    assert_eq!(*conn, c);
    assert_eq!(ack["code"], 200);
    assert_eq!(
        ack["headers"]["messageId"],
        "213661cf_dba_18d5875eda1_23bf2a0"
    );
    assert_eq!(ack["headers"]["contentType"], "application/json");
    assert_eq!(
        ack["data"],
        r#"{"opaque":"95dae637-6f9e-415b-a695-d0af4a393eeb"}"#
    );
}

#[test]
fn system_frames_are_never_deduplicated() {
    let (mut g, c) = Gw::connected(config());
    g.text(c, &ping("same", "o1"));
    g.text(c, &ping("same", "o2"));
    let sends = g.sends();
    assert_eq!(sends.len(), 2);
    assert_eq!(sends[1].1["data"], r#"{"opaque":"o2"}"#);
}

// ---- disconnect ----------------------------------------------------------------------------

#[test]
fn disconnect_is_acked_and_replacement_opened_before_old_closes() {
    let (mut g, old) = Gw::connected(config());
    let disc = std::fs::read_to_string("tests/fixtures/system_disconnect.json").unwrap();
    g.text(old, disc.trim());
    let out = g.take();
    let sends = sends_of(&out);
    assert_eq!(sends.len(), 1);
    assert_eq!(sends[0].0, old);
    assert_eq!(
        sends[0].1["headers"]["messageId"],
        "c0a815dd1698551133918195d43"
    );
    assert!(
        out.iter().any(|o| matches!(o, Output::Http { .. })),
        "replacement open request at once, no backoff"
    );
    assert!(
        !out.iter().any(|o| matches!(o, Output::Close { .. })),
        "old connection is not closed by us"
    );
    // The old connection is still read: a frame on it is delivered and acked on it.
    g.fresh = out;
    let new = g.open_ok();
    g.take();
    g.text(old, &bot_message("on-old"));
    g.text(new, &bot_message("on-new"));
    let sends = g.sends();
    assert_eq!(sends.len(), 2);
    assert_eq!(
        (sends[0].0, sends[0].1["headers"]["messageId"].as_str()),
        (old, Some("on-old"))
    );
    assert_eq!(
        (sends[1].0, sends[1].1["headers"]["messageId"].as_str()),
        (new, Some("on-new"))
    );
    assert_eq!(
        g.deliveries().len(),
        2,
        "no frame lost from either connection"
    );
    g.take();
    // The server closes the old one: no reconnect, the new one carries on.
    g.input(Input::Closed {
        conn: old,
        reason: "server closed".into(),
    });
    g.advance(secs(30));
    assert!(g.pending_http().is_none());
    assert_eq!(g.s.connections(), vec![new]);
}

#[test]
fn draining_connection_is_closed_at_the_drain_deadline() {
    let (mut g, old) = Gw::connected(config());
    g.text(old, &disconnect("d1"));
    let new = g.open_ok();
    g.take();
    g.advance(secs(11));
    assert_eq!(g.count(|o| matches!(o, Output::Close { .. })), 0);
    g.advance(secs(2));
    let out = g.take();
    assert!(
        out.iter()
            .any(|o| matches!(o, Output::Close { conn } if *conn == old))
    );
    assert!(!out.iter().any(|o| matches!(o, Output::Http { .. })));
    assert_eq!(g.s.connections(), vec![new]);
}

#[test]
fn ack_for_a_frame_from_the_draining_connection_goes_to_it_after_the_switch() {
    let (mut g, old) = Gw::connected(config());
    g.text(old, &card_callback("cb-1"));
    let d = g.deliveries().pop().unwrap();
    g.text(old, &disconnect("d1"));
    let new = g.open_ok();
    g.take();
    g.complete(
        d.id,
        Outcome::Ok(json!({"cardData": {"cardParamMap": {"k": "v"}}})),
    );
    let sends = g.sends();
    assert_eq!(sends.len(), 1);
    assert_eq!(
        sends[0].0, old,
        "ack goes to the source connection, not {new:?}"
    );
    assert_eq!(
        ack_data(&sends[0].1),
        json!({"response": {"cardData": {"cardParamMap": {"k": "v"}}}})
    );
}

#[test]
fn ack_is_never_redirected_to_a_new_connection_after_reconnect() {
    let (mut g, c1) = Gw::connected(config());
    g.text(c1, &card_callback("cb-1"));
    let d = g.deliveries().pop().unwrap();
    g.input(Input::Closed {
        conn: c1,
        reason: "reset".into(),
    });
    g.step();
    let _c2 = g.open_ok();
    g.take();
    g.complete(d.id, Outcome::done());
    assert!(
        g.sends().is_empty(),
        "the ack belonged to the dead connection"
    );
    assert_eq!(g.s.stats().acks_dropped, 1);
    // ... and the dropped ack is reported, so it reaches the log.
    assert_eq!(
        g.count(|o| matches!(
            o,
            Output::Event(SessionEvent::AckDropped { conn }) if *conn == c1
        )),
        1
    );
}

// ---- CALLBACK ------------------------------------------------------------------------------

#[test]
fn bot_message_is_acked_immediately_then_delivered() {
    let (mut g, c) = Gw::connected(config());
    let text = std::fs::read_to_string("tests/fixtures/callback_bot_text_private.json").unwrap();
    g.text(c, text.trim());
    let sends = g.sends();
    assert_eq!(sends.len(), 1);
    assert_eq!(sends[0].1["code"], 200);
    assert_eq!(sends[0].1["data"], r#"{"response":null}"#);
    let d = g.deliveries();
    assert_eq!(d.len(), 1);
    assert!(d[0].acked);
    assert_eq!(d[0].frame.topic(), topic::BOT_MESSAGE);
    g.take();
    g.complete(d[0].id, Outcome::Ok(json!("ignored")));
    assert!(g.sends().is_empty(), "no second ack");
    assert_eq!(g.s.in_flight(), 0);
}

#[test]
fn callback_is_acked_with_the_handler_response() {
    let (mut g, c) = Gw::connected(config());
    let text = std::fs::read_to_string("tests/fixtures/callback_card_action.json").unwrap();
    g.text(c, text.trim());
    assert!(g.sends().is_empty(), "card callbacks wait for the handler");
    let d = g.deliveries().pop().unwrap();
    assert!(!d.acked);
    g.take();
    g.complete(
        d.id,
        Outcome::Ok(json!({"cardUpdateOptions": {"updateCardDataByKey": true}})),
    );
    let sends = g.sends();
    assert_eq!(sends.len(), 1);
    assert_eq!(sends[0].1["code"], 200);
    assert_eq!(sends[0].1["message"], "OK");
    assert_eq!(sends[0].1["headers"]["messageId"], "card_msg_0001");
    assert_eq!(
        ack_data(&sends[0].1),
        json!({"response": {"cardUpdateOptions": {"updateCardDataByKey": true}}})
    );
}

#[test]
fn failed_callback_handler_gets_500() {
    let (mut g, c) = Gw::connected(config());
    g.text(c, &card_callback("cb-err"));
    let d = g.deliveries().pop().unwrap();
    g.take();
    g.complete(d.id, Outcome::Failed("boom".into()));
    let sends = g.sends();
    assert_eq!(sends[0].1["code"], 500);
    assert_eq!(sends[0].1["message"], "boom");
}

#[test]
fn callback_handler_timeout_sends_500_and_real_result_goes_to_a_redelivery() {
    let mut cfg = config();
    cfg = cfg.subscribe(
        Subscription::callback(topic::CARD_CALLBACK)
            .with_ack(AckPolicy::AfterHandler { timeout: secs(3) }),
    );
    let (mut g, c) = Gw::connected(cfg);
    g.text(c, &card_callback("slow"));
    let d = g.deliveries().pop().unwrap();
    g.take();
    g.advance(secs(3));
    let sends = g.sends();
    assert_eq!(sends.len(), 1);
    assert_eq!(sends[0].1["code"], 500);
    g.take();
    // DingTalk redelivers; the handler is still running, so the copy waits for it.
    g.text(c, &card_callback("slow"));
    assert!(g.deliveries().is_empty());
    assert!(g.sends().is_empty());
    g.complete(d.id, Outcome::Ok(json!({"ok": true})));
    let sends = g.sends();
    assert_eq!(sends.len(), 1);
    assert_eq!(ack_data(&sends[0].1), json!({"response": {"ok": true}}));
}

#[test]
fn unknown_topics_get_404() {
    let cfg = StreamConfig::new(Credentials::new("id", "secret"))
        .subscribe(Subscription::callback(topic::BOT_MESSAGE));
    let (mut g, c) = Gw::connected(cfg);
    g.text(c, &card_callback("cb-x"));
    g.text(c, &event("ev-x"));
    g.text(c, &frame("SYSTEM", "KEEPALIVE", "sys-x", "{}"));
    let sends = g.sends();
    assert_eq!(sends.len(), 3);
    for (_, ack) in &sends {
        assert_eq!(ack["code"], 404);
    }
    assert!(g.deliveries().is_empty());
}

// ---- EVENT ---------------------------------------------------------------------------------

#[test]
fn event_is_acked_success_after_the_handler() {
    let (mut g, c) = Gw::connected(config());
    let text = std::fs::read_to_string("tests/fixtures/event_user_add_org.json").unwrap();
    g.text(c, text.trim());
    let d = g.deliveries().pop().unwrap();
    assert_eq!(d.frame.headers.event_type.as_deref(), Some("user_add_org"));
    assert_eq!(d.frame.headers.event_born_time, Some(1683533823336));
    g.take();
    g.complete(d.id, Outcome::done());
    let sends = g.sends();
    assert_eq!(sends[0].1["code"], 200);
    assert_eq!(ack_data(&sends[0].1)["status"], "SUCCESS");
}

#[test]
fn event_failure_or_timeout_is_acked_later() {
    let (mut g, c) = Gw::connected(config());
    g.text(c, &event("ev-1"));
    g.text(c, &event("ev-2"));
    g.text(c, &event("ev-3"));
    let ds = g.deliveries();
    g.take();
    g.complete(ds[0].id, Outcome::Failed("db down".into()));
    g.complete(ds[1].id, Outcome::Later);
    let sends = g.sends();
    assert_eq!(
        ack_data(&sends[0].1),
        json!({"status": "LATER", "message": "db down"})
    );
    assert_eq!(ack_data(&sends[1].1)["status"], "LATER");
    g.take();
    g.advance(topic::DEFAULT_EVENT_TIMEOUT);
    let sends = g.sends();
    assert_eq!(sends.len(), 1);
    assert_eq!(sends[0].1["headers"]["messageId"], "ev-3");
    assert_eq!(ack_data(&sends[0].1)["status"], "LATER");
}

// ---- duplicates ----------------------------------------------------------------------------

#[test]
fn duplicate_in_flight_waits_for_the_first_result() {
    let (mut g, c) = Gw::connected(config());
    g.text(c, &event("dup"));
    g.text(c, &event("dup"));
    let ds = g.deliveries();
    assert_eq!(ds.len(), 1, "the application sees it once");
    g.take();
    g.complete(ds[0].id, Outcome::done());
    let sends = g.sends();
    assert_eq!(sends.len(), 2, "both copies acked");
    assert_eq!(sends[0].1, sends[1].1);
}

#[test]
fn duplicate_after_completion_replays_the_same_ack() {
    let (mut g, c) = Gw::connected(config());
    g.text(c, &card_callback("dup"));
    let d = g.deliveries().pop().unwrap();
    g.take();
    g.complete(d.id, Outcome::Ok(json!({"v": 1})));
    let first = g.sends().pop().unwrap().1;
    g.take();
    g.advance(secs(60));
    g.text(c, &card_callback("dup"));
    assert!(g.deliveries().is_empty());
    assert_eq!(g.sends().pop().unwrap().1, first);
    assert_eq!(g.s.stats().duplicates, 1);
}

#[test]
fn duplicate_bot_message_on_another_connection_is_suppressed() {
    let (mut g, c1) = Gw::connected(config());
    g.text(c1, &bot_message("m-1"));
    g.text(c1, &disconnect("d"));
    let c2 = g.open_ok();
    g.take();
    g.text(c2, &bot_message("m-1"));
    assert!(g.deliveries().is_empty());
    let sends = g.sends();
    assert_eq!(sends.len(), 1);
    assert_eq!(sends[0].0, c2, "the copy is acked where it arrived");
}

#[test]
fn failed_results_are_not_remembered_so_redelivery_retries_the_handler() {
    let (mut g, c) = Gw::connected(config());
    g.text(c, &event("ev"));
    let d = g.deliveries().pop().unwrap();
    g.complete(d.id, Outcome::Failed("x".into()));
    g.take();
    g.text(c, &event("ev"));
    assert_eq!(g.deliveries().len(), 1);
}

#[test]
fn dedup_memory_expires() {
    let mut cfg = config();
    cfg.dedup_ttl = secs(300);
    cfg.keepalive_idle = secs(1000);
    let (mut g, c) = Gw::connected(cfg);
    g.text(c, &bot_message("m"));
    let d = g.deliveries().pop().unwrap();
    g.complete(d.id, Outcome::done());
    g.advance(secs(299));
    g.take();
    g.text(c, &bot_message("m"));
    assert!(g.deliveries().is_empty(), "still remembered");
    g.advance(secs(2));
    g.take();
    g.text(c, &bot_message("m"));
    assert_eq!(g.deliveries().len(), 1);
}

// ---- malformed -----------------------------------------------------------------------------

#[test]
fn malformed_frames_get_400_or_are_dropped_and_the_connection_survives() {
    let (mut g, c) = Gw::connected(config());
    g.text(
        c,
        r#"{"type":"WHAT","headers":{"topic":"x","messageId":"bad-1"}}"#,
    );
    g.text(c, "not json at all");
    g.text(
        c,
        r#"{"type":"CALLBACK","headers":{"topic":"x","messageId":"bad-2"},"data":{"obj":1}}"#,
    );
    let sends = g.sends();
    assert_eq!(sends.len(), 2);
    assert_eq!(sends[0].1["code"], 400);
    assert_eq!(sends[0].1["headers"]["messageId"], "bad-1");
    assert_eq!(sends[1].1["headers"]["messageId"], "bad-2");
    assert_eq!(g.s.stats().frames_rejected, 3);
    assert!(!g.fresh.iter().any(|o| matches!(o, Output::Close { .. })));
    g.take();
    g.text(c, &bot_message("good"));
    assert_eq!(g.deliveries().len(), 1);
}

#[test]
fn oversized_frames_are_nacked_by_their_id_not_delivered() {
    let mut cfg = config();
    cfg.limits.max_frame_bytes = 1024;
    let (mut g, c) = Gw::connected(cfg);
    let big = frame(
        "CALLBACK",
        topic::BOT_MESSAGE,
        "big-1",
        &format!(r#"{{"text":{{"content":"{}"}}}}"#, "x".repeat(2000)),
    );
    g.text(c, &big);
    let sends = g.sends();
    assert_eq!(sends.len(), 1, "nacked, not left to be redelivered forever");
    assert_eq!(sends[0].1["code"], 400);
    assert_eq!(sends[0].1["headers"]["messageId"], "big-1");
    assert!(g.deliveries().is_empty());
    assert_eq!(g.s.stats().frames_rejected, 1);
}

// ---- keepalive -----------------------------------------------------------------------------

#[test]
fn keepalive_ping_after_idle_and_pong_keeps_the_connection() {
    let (mut g, c) = Gw::connected(config());
    g.advance(secs(59));
    assert_eq!(g.count(|o| matches!(o, Output::Ping { .. })), 0);
    g.advance(secs(1));
    assert_eq!(
        g.count(|o| matches!(o, Output::Ping { conn } if *conn == c)),
        1
    );
    g.take();
    g.advance(secs(2));
    g.input(Input::Pong { conn: c });
    g.advance(secs(10));
    assert_eq!(g.count(|o| matches!(o, Output::Close { .. })), 0);
}

#[test]
fn any_frame_counts_as_liveness() {
    let (mut g, c) = Gw::connected(config());
    g.advance(secs(60));
    g.take();
    g.advance(secs(3));
    g.text(c, &ping("p", "o"));
    g.advance(secs(4));
    assert_eq!(g.count(|o| matches!(o, Output::Close { .. })), 0);
}

#[test]
fn dead_connection_is_closed_and_replaced_when_no_pong_arrives() {
    let (mut g, c) = Gw::connected(config());
    g.advance(secs(60));
    g.take();
    g.advance(secs(5));
    let out = g.take();
    assert!(
        out.iter()
            .any(|o| matches!(o, Output::Close { conn } if *conn == c))
    );
    assert!(out.iter().any(|o| matches!(
        o,
        Output::Event(SessionEvent::ReconnectScheduled { attempt: 1, .. })
    )));
    g.step();
    assert!(g.pending_http().is_some());
}

#[test]
fn handshake_timeout_closes_and_retries() {
    let mut g = Gw::new(config());
    let (id, _) = g.pending_http().unwrap();
    g.respond(
        id,
        200,
        &format!(r#"{{"endpoint":"{ENDPOINT}","ticket":"t"}}"#),
    );
    let (conn, _) = g.pending_connect().unwrap();
    g.advance(secs(10));
    assert!(
        g.fresh
            .iter()
            .any(|o| matches!(o, Output::Close { conn: c } if *c == conn))
    );
    // A late handshake for the abandoned connection is closed, not used.
    g.take();
    g.input(Input::Connected { conn });
    assert!(
        g.fresh
            .iter()
            .any(|o| matches!(o, Output::Close { conn: c } if *c == conn))
    );
}

// ---- reconnect -----------------------------------------------------------------------------

fn backoff_delays(g: &Gw) -> Vec<Duration> {
    g.log
        .iter()
        .filter_map(|o| match o {
            Output::Event(SessionEvent::ReconnectScheduled { after, .. }) => Some(*after),
            _ => None,
        })
        .collect()
}

#[test]
fn reconnect_backoff_is_exponential_with_jitter_and_capped() {
    let mut g = Gw::new(config());
    for _ in 0..9 {
        let (id, _) = g.pending_http().expect("open request");
        g.respond(id, 500, "");
        g.step();
    }
    let delays = backoff_delays(&g);
    assert_eq!(delays.len(), 9);
    for (n, d) in delays.iter().enumerate() {
        let base = secs(1u64 << n).min(secs(60));
        assert!(
            *d >= base && *d <= (base + secs(1)).min(secs(60)),
            "attempt {n}: {d:?}"
        );
    }
    assert_eq!(delays[8], secs(60));
    // Same seed, same delays.
    let mut h = Gw::new(config());
    for _ in 0..9 {
        let (id, _) = h.pending_http().unwrap();
        h.respond(id, 500, "");
        h.step();
    }
    assert_eq!(backoff_delays(&h), delays);
}

#[test]
fn first_reconnect_after_a_loss_is_quick_then_backs_off() {
    let (mut g, c1) = Gw::connected(config());
    g.text(c1, &ping("p1", "o"));
    g.input(Input::Closed {
        conn: c1,
        reason: "connection reset".into(),
    });
    // The first reconnect after a loss: a random delay up to 100 ms, not the 1 s backoff.
    let delays = backoff_delays(&g);
    assert_eq!(delays.len(), 1);
    assert!(delays[0] <= Duration::from_millis(100), "{:?}", delays[0]);
    // Lost again before any frame arrived: the backoff starts at its base (1 s + jitter), so a
    // server that drops every connection at once causes no storm.
    let c2 = {
        g.step();
        g.open_ok()
    };
    g.input(Input::Closed {
        conn: c2,
        reason: "connection reset".into(),
    });
    let delays = backoff_delays(&g);
    assert_eq!(delays.len(), 2);
    assert!(
        delays[1] >= secs(1) && delays[1] <= secs(2),
        "{:?}",
        delays[1]
    );
    // A failed open after that doubles it.
    g.step();
    let (id, _) = g.pending_http().expect("open request after the backoff");
    g.respond(id, 500, "");
    let delays = backoff_delays(&g);
    assert!(
        delays[2] >= secs(2) && delays[2] <= secs(3),
        "{:?}",
        delays[2]
    );
    // A frame on a new connection earns the quick reconnect again.
    g.step();
    let c3 = g.open_ok();
    g.text(c3, &ping("p2", "o"));
    g.input(Input::Closed {
        conn: c3,
        reason: "connection reset".into(),
    });
    let last = *backoff_delays(&g).last().unwrap();
    assert!(last <= Duration::from_millis(100), "{last:?}");
}

#[test]
fn backoff_is_reset_by_a_frame() {
    let mut g = Gw::new(config());
    for _ in 0..3 {
        let (id, _) = g.pending_http().unwrap();
        g.respond(id, 500, "");
        g.step();
    }
    let c = g.open_ok();
    g.text(c, &ping("p", "o"));
    g.input(Input::Closed {
        conn: c,
        reason: "eof".into(),
    });
    let last = *backoff_delays(&g).last().unwrap();
    assert!(last < secs(2), "back to the first step: {last:?}");
}

#[test]
fn never_two_open_requests_in_flight() {
    let mut g = Gw::new(config());
    let (first, _) = g.pending_http().unwrap();
    // Nothing answers; more time passes than the open timeout.
    g.advance(secs(9));
    assert!(g.pending_http().is_none());
    g.advance(secs(1));
    assert!(
        g.pending_http().is_none(),
        "timeout first schedules a backoff"
    );
    g.step();
    let (second, _) = g.pending_http().expect("retry after the timeout");
    // The late answer to the first request is ignored.
    g.respond(
        first,
        200,
        &format!(r#"{{"endpoint":"{ENDPOINT}","ticket":"late"}}"#),
    );
    assert!(g.pending_connect().is_none());
    g.respond(
        second,
        200,
        &format!(r#"{{"endpoint":"{ENDPOINT}","ticket":"ok"}}"#),
    );
    assert!(g.pending_connect().is_some());
}

// ---- backpressure --------------------------------------------------------------------------

#[test]
fn backpressure_bounds_handlers_and_pauses_reading() {
    let mut cfg = config();
    cfg.max_in_flight = 2;
    cfg.max_queued = 2;
    let (mut g, c) = Gw::connected(cfg);
    for i in 0..4 {
        g.text(c, &event(&format!("e{i}")));
    }
    let ds = g.deliveries();
    assert_eq!(ds.len(), 2);
    assert_eq!(g.s.queued(), 2);
    assert_eq!(g.count(|o| matches!(o, Output::PauseReading)), 1);
    g.take();
    // A ping read meanwhile is still answered at once.
    g.text(c, &ping("p", "o"));
    assert_eq!(g.sends().len(), 1);
    g.take();
    g.complete(ds[0].id, Outcome::done());
    let next = g.deliveries();
    assert_eq!(next.len(), 1);
    assert_eq!(
        next[0].frame.message_id(),
        "e2",
        "queued frames keep their order"
    );
    assert_eq!(g.count(|o| matches!(o, Output::ResumeReading)), 1);
    assert_eq!(g.s.in_flight(), 2);
}

#[test]
fn keepalive_is_suspended_while_reading_is_paused() {
    let mut cfg = config();
    cfg.max_in_flight = 1;
    cfg.max_queued = 0;
    let (mut g, c) = Gw::connected(cfg);
    g.text(c, &event("e"));
    let d = g.deliveries().pop().unwrap();
    g.take();
    g.advance(secs(120));
    assert_eq!(
        g.count(|o| matches!(o, Output::Ping { .. } | Output::Close { .. })),
        0
    );
    g.complete(d.id, Outcome::done());
    g.take();
    g.advance(secs(60));
    assert_eq!(g.count(|o| matches!(o, Output::Ping { .. })), 1);
}

#[test]
fn over_the_hard_limit_frames_are_left_unacked_for_redelivery() {
    let mut cfg = config();
    cfg.max_in_flight = 1;
    cfg.max_queued = 0;
    let (mut g, c) = Gw::connected(cfg);
    for i in 0..70 {
        g.text(c, &bot_message(&format!("m{i}")));
    }
    assert_eq!(g.s.stats().frames_shed, 5);
    assert_eq!(g.sends().len(), 65, "shed frames are not acked");
}

// ---- stop ----------------------------------------------------------------------------------

#[test]
fn graceful_stop_finishes_in_flight_work_acks_and_closes() {
    let (mut g, c) = Gw::connected(config());
    g.text(c, &card_callback("cb"));
    let d = g.deliveries().pop().unwrap();
    g.take();
    g.input(Input::Stop);
    let out = g.take();
    assert!(out.iter().any(|o| matches!(o, Output::PauseReading)));
    assert!(
        !out.iter()
            .any(|o| matches!(o, Output::Close { .. } | Output::Done))
    );
    // Frames read after stop are left for redelivery.
    g.text(c, &card_callback("late"));
    assert!(g.deliveries().is_empty() && g.sends().is_empty());
    g.complete(d.id, Outcome::Ok(json!(1)));
    let out = g.take();
    let pos_send = out
        .iter()
        .position(|o| matches!(o, Output::Send { .. }))
        .unwrap();
    let pos_close = out
        .iter()
        .position(|o| matches!(o, Output::Close { .. }))
        .unwrap();
    assert!(pos_send < pos_close, "ack written before the close");
    assert!(matches!(out.last(), Some(Output::Done)));
    assert!(g.s.is_done());
}

#[test]
fn stop_is_bounded_by_the_stop_timeout() {
    let (mut g, c) = Gw::connected(config());
    g.text(c, &event("stuck"));
    g.take();
    g.input(Input::Stop);
    g.advance(secs(9));
    assert!(!g.s.is_done());
    g.advance(secs(1));
    let out = g.take();
    let sends = sends_of(&out);
    assert_eq!(sends.len(), 1);
    assert_eq!(ack_data(&sends[0].1)["status"], "LATER");
    assert!(out.iter().any(|o| matches!(o, Output::Close { .. })));
    assert!(g.s.is_done());
}

#[test]
fn stop_while_opening_cancels_the_open() {
    let mut g = Gw::new(config());
    let (id, _) = g.pending_http().unwrap();
    g.input(Input::Stop);
    assert!(g.s.is_done());
    g.respond(
        id,
        200,
        &format!(r#"{{"endpoint":"{ENDPOINT}","ticket":"t"}}"#),
    );
    assert!(g.pending_connect().is_none());
}

// ---- secrets -------------------------------------------------------------------------------

#[test]
fn debug_output_never_shows_the_secret() {
    let g = Gw::new(config());
    let text = format!("{:?} {:?}", g.log, g.s);
    assert!(!text.contains("s3cret-value"), "{text}");
    let secret_bytes = format!("{:?}", b"s3cret-value".to_vec());
    let secret_bytes = secret_bytes.trim_matches(|c| c == '[' || c == ']');
    assert!(!text.contains(secret_bytes), "secret leaked as bytes");
}

// ---- routing -------------------------------------------------------------------------------

#[test]
fn each_delivery_carries_the_route_of_its_subscription() {
    // config(): [bot message, card callback, events]
    let (mut g, c) = Gw::connected(config());
    g.text(c, &card_callback("r-card"));
    g.text(c, &event("r-event"));
    g.text(c, &bot_message("r-bot"));
    let routes: Vec<(String, usize)> = g
        .log
        .iter()
        .filter_map(|o| match o {
            Output::Deliver(d) => Some((d.frame.message_id().to_owned(), d.route.0)),
            _ => None,
        })
        .collect();
    assert_eq!(
        routes,
        vec![
            ("r-card".to_owned(), 1),
            ("r-event".to_owned(), 2),
            ("r-bot".to_owned(), 0)
        ]
    );
    let cfg = g.s.config();
    for (id, route) in routes {
        let sub = &cfg.subscriptions[route];
        let d = g
            .log
            .iter()
            .find_map(|o| match o {
                Output::Deliver(d) if d.frame.message_id() == id => Some(d),
                _ => None,
            })
            .unwrap();
        assert_eq!(sub.kind, d.frame.kind);
    }
}

#[test]
fn replacing_a_subscription_keeps_its_route() {
    let mut cfg = config();
    let before = cfg.route(dingtalk_core::FrameType::Callback, topic::CARD_CALLBACK);
    let replaced = cfg.add_subscription(
        Subscription::callback(topic::CARD_CALLBACK).with_ack(AckPolicy::Immediate),
    );
    assert_eq!(Some(replaced), before);
    assert_eq!(cfg.subscriptions.len(), 3);
    assert_eq!(cfg.subscriptions[replaced.0].ack, AckPolicy::Immediate);
    // Every EVENT topic routes to the one EVENT subscription; unknown callbacks route nowhere.
    assert_eq!(
        cfg.route(dingtalk_core::FrameType::Event, "whatever")
            .map(|r| r.0),
        Some(2)
    );
    assert_eq!(cfg.route(dingtalk_core::FrameType::Callback, "/nope"), None);
}

#[test]
fn huge_reconnect_settings_saturate_instead_of_panicking() {
    // The quick first reconnect with an absurd maximum.
    let mut cfg = config();
    cfg.first_reconnect_max = Duration::MAX;
    cfg.backoff_max = Duration::MAX;
    let (mut g, c1) = Gw::connected(cfg);
    g.input(Input::Closed {
        conn: c1,
        reason: "reset".into(),
    });
    assert_eq!(backoff_delays(&g).len(), 1);
    // The backoff after a failed open with absurd base, jitter and cap.
    let mut cfg = config();
    cfg.backoff_base = Duration::MAX;
    cfg.backoff_max = Duration::MAX;
    cfg.backoff_jitter = Duration::MAX;
    let mut g = Gw::new(cfg);
    let (id, _) = g.pending_http().unwrap();
    g.respond(id, 500, "");
    g.advance(secs(3600));
    assert_eq!(backoff_delays(&g).len(), 1);
    assert!(
        g.pending_http().is_none(),
        "the saturated delay has not passed"
    );
}

#[test]
fn huge_timeouts_everywhere_saturate_instead_of_panicking() {
    let mut cfg = config();
    cfg.keepalive_idle = Duration::MAX;
    cfg.keepalive_timeout = Duration::MAX;
    cfg.open_timeout = Duration::MAX;
    cfg.connect_timeout = Duration::MAX;
    cfg.drain_timeout = Duration::MAX;
    cfg.dedup_ttl = Duration::MAX;
    cfg.stop_timeout = Duration::MAX;
    cfg.add_subscription(Subscription::callback(topic::CARD_CALLBACK).with_ack(
        AckPolicy::AfterHandler {
            timeout: Duration::MAX,
        },
    ));
    let (mut g, c1) = Gw::connected(cfg);
    g.text(
        c1,
        &frame(
            "CALLBACK",
            topic::BOT_MESSAGE,
            "m1",
            r#"{"text":{"content":"hi"}}"#,
        ),
    );
    g.text(c1, &frame("CALLBACK", topic::CARD_CALLBACK, "m2", "{}"));
    g.text(c1, &frame("CALLBACK", topic::CARD_CALLBACK, "m2", "{}"));
    g.text(c1, &disconnect("d1"));
    g.advance(secs(3600));
    g.input(Input::Stop);
    g.advance(secs(3600));
    // Still answering: the bot message was acked once.
    let acks = g.take();
    assert!(!acks.is_empty());
}

#[test]
fn a_handler_past_the_handler_timeout_is_cancelled_its_slot_freed_and_its_copy_handled_again() {
    let mut cfg = config().subscribe(
        Subscription::callback(topic::CARD_CALLBACK)
            .with_ack(AckPolicy::AfterHandler { timeout: secs(60) }),
    );
    cfg.max_in_flight = 1;
    cfg.handler_timeout = secs(10);
    let (mut g, c) = Gw::connected(cfg);
    g.text(c, &card_callback("stuck"));
    let stuck = g.deliveries().pop().unwrap();
    g.take();
    // The only slot is taken: the next frame waits.
    g.text(c, &bot_message("next"));
    assert!(g.deliveries().is_empty());
    g.take();
    g.advance(secs(10));
    let out = g.take();
    assert!(
        out.iter()
            .any(|o| matches!(o, Output::Cancel { id } if *id == stuck.id)),
        "{out:?}"
    );
    assert!(out.iter().any(|o| matches!(
        o,
        Output::Event(SessionEvent::HandlerCancelled { id }) if *id == stuck.id
    )));
    // The failure ack still owed went out; the waiting frame got the freed slot.
    let acks = sends_of(&out);
    assert_eq!(acks.len(), 1, "{acks:?}");
    assert_eq!(acks[0].1["code"], 500);
    assert!(
        out.iter()
            .any(|o| matches!(o, Output::Deliver(d) if d.frame.message_id() == "next"))
    );
    assert_eq!(g.s.stats().handlers_cancelled, 1);
    // A completion that comes after the cancel is ignored.
    g.complete(stuck.id, Outcome::done());
    assert!(g.sends().is_empty());
    // DingTalk redelivers: not remembered as done, so the handler gets it again.
    g.take();
    g.advance(secs(1));
    g.take();
    let next = g.log.iter().find_map(|o| match o {
        Output::Deliver(d) if d.frame.message_id() == "next" => Some(d.id),
        _ => None,
    });
    g.complete(next.unwrap(), Outcome::done());
    g.take();
    g.text(c, &card_callback("stuck"));
    assert_eq!(g.deliveries().len(), 1);
}

#[test]
fn a_cancelled_handler_whose_ack_already_timed_out_gets_no_second_ack() {
    let mut cfg = config().subscribe(
        Subscription::callback(topic::CARD_CALLBACK)
            .with_ack(AckPolicy::AfterHandler { timeout: secs(3) }),
    );
    cfg.handler_timeout = secs(10);
    let (mut g, c) = Gw::connected(cfg);
    g.text(c, &card_callback("slow"));
    g.take();
    g.advance(secs(3));
    assert_eq!(g.sends().len(), 1);
    g.take();
    g.advance(secs(7));
    assert!(g.sends().is_empty(), "one ack per frame");
    assert_eq!(g.count(|o| matches!(o, Output::Cancel { .. })), 1);
}

#[test]
fn deadlines_of_finished_handlers_do_not_pile_up() {
    let cfg = config().subscribe(
        Subscription::callback(topic::CARD_CALLBACK)
            .with_ack(AckPolicy::AfterHandler { timeout: secs(60) }),
    );
    let (mut g, c) = Gw::connected(cfg);
    for i in 0..5_000 {
        g.text(c, &card_callback(&format!("cb-{i}")));
        let d = g.deliveries().pop().unwrap();
        g.complete(d.id, Outcome::done());
        g.take();
        g.log.clear();
    }
    assert!(
        g.s.deadline_entries() <= 66,
        "{} deadline entries for nothing in flight",
        g.s.deadline_entries()
    );
}
