//! The HTTP-callback endpoint's decisions: verified, fresh, once, bounded, in time.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests abort on failure

use std::time::{Duration, Instant};

use dingtalk_core::callback::EventCrypto;
use dingtalk_core::callback_server::{CallbackLimits, CallbackServer, Ticket, Verdict};
use dingtalk_core::webhook::sign;
use serde_json::{Value, json};

const SECRET: &str = "app-secret";
const KEY: &str = "4g5j64qlyl3zvetqxz5jiocdr586fn2zvjpa8zls3ij";
const NOW_MS: i64 = 1_700_000_000_000;

fn body(id: &str) -> Vec<u8> {
    json!({"msgId": id, "msgtype": "text", "text": {"content": "hi"}})
        .to_string()
        .into_bytes()
}

fn robot(s: &mut CallbackServer, id: &str, ts: i64, now: Instant) -> Verdict {
    s.robot(&ts.to_string(), &sign(SECRET, ts), &body(id), NOW_MS, now)
}

fn handled(v: Verdict) -> Ticket {
    match v {
        Verdict::Handle { ticket, .. } => ticket,
        Verdict::Answer(a) => panic!("expected the handler to run, got {a:?}"),
    }
}

fn answered(v: Verdict) -> (u16, String) {
    match v {
        Verdict::Answer(a) => (a.status, a.body),
        Verdict::Handle { frame, .. } => panic!("expected an answer, got a handler for {frame:?}"),
    }
}

#[test]
fn robot_requests_are_verified_fresh_and_handled_once() {
    let t0 = Instant::now();
    let mut s = CallbackServer::new(SECRET, None, CallbackLimits::default());
    let ticket = handled(robot(&mut s, "m1", NOW_MS, t0));
    // A retry while the handler runs, and a replay after it finished: no second call.
    assert_eq!(answered(robot(&mut s, "m1", NOW_MS, t0)).0, 200);
    s.finished(ticket, true, t0);
    assert_eq!(answered(robot(&mut s, "m1", NOW_MS - 1000, t0)).0, 200);
    // Even a failed robot handler is not run again: the robot was answered at once.
    let t = handled(robot(&mut s, "m2", NOW_MS, t0));
    s.finished(t, false, t0);
    assert_eq!(answered(robot(&mut s, "m2", NOW_MS, t0)).0, 200);
    // Forged, stale, from the future, oversized, unreadable.
    let forged = s.robot(
        &NOW_MS.to_string(),
        "bm90IHRoZSBzaWdu",
        &body("m3"),
        NOW_MS,
        t0,
    );
    assert_eq!(answered(forged).0, 401);
    let stale = NOW_MS - 3_600_001;
    assert_eq!(answered(robot(&mut s, "m3", stale, t0)).0, 401);
    assert_eq!(answered(robot(&mut s, "m3", NOW_MS + 3_600_001, t0)).0, 401);
    let big = vec![b' '; (1 << 20) + 1];
    assert_eq!(
        answered(s.robot(&NOW_MS.to_string(), &sign(SECRET, NOW_MS), &big, NOW_MS, t0)).0,
        413
    );
    let (status, text) =
        answered(s.robot(&NOW_MS.to_string(), &sign(SECRET, NOW_MS), b"{", NOW_MS, t0));
    assert_eq!(status, 400);
    assert!(!text.contains(SECRET));
    assert_eq!(s.in_flight(), 0);
}

#[test]
fn a_shorter_window_is_enforced_too() {
    let t0 = Instant::now();
    let limits = CallbackLimits {
        window: Duration::from_secs(60),
        ..CallbackLimits::default()
    };
    let mut s = CallbackServer::new(SECRET, None, limits);
    assert_eq!(answered(robot(&mut s, "m1", NOW_MS - 61_000, t0)).0, 401);
    let _ = handled(robot(&mut s, "m1", NOW_MS - 59_000, t0));
}

#[test]
fn handler_slots_are_bounded_and_freed() {
    let t0 = Instant::now();
    let limits = CallbackLimits {
        max_in_flight: 2,
        ..CallbackLimits::default()
    };
    let mut s = CallbackServer::new(SECRET, None, limits);
    let a = handled(robot(&mut s, "a", NOW_MS, t0));
    let _b = handled(robot(&mut s, "b", NOW_MS, t0));
    match robot(&mut s, "c", NOW_MS, t0) {
        Verdict::Answer(a) => {
            assert_eq!(a.status, 503);
            assert_eq!(a.retry_after, Some(1));
        }
        other => panic!("{other:?}"),
    }
    // The busy answer did not mark "c" as seen: its retry runs once a slot is free.
    s.finished(a, true, t0);
    let _c = handled(robot(&mut s, "c", NOW_MS, t0));
}

fn sealed(crypto: &EventCrypto, plain: &Value, ts: &str) -> (String, Vec<u8>) {
    let e = crypto.encrypt(&plain.to_string(), ts, "nonce1", *b"0123456789abcdef");
    (
        e.msg_signature,
        json!({"encrypt": e.encrypt}).to_string().into_bytes(),
    )
}

fn decrypt_answer(crypto: &EventCrypto, body: &str) -> String {
    let v: Value = serde_json::from_str(body).unwrap();
    crypto
        .decrypt(
            v["msg_signature"].as_str().unwrap(),
            v["timeStamp"].as_str().unwrap(),
            v["nonce"].as_str().unwrap(),
            v["encrypt"].as_str().unwrap(),
        )
        .unwrap()
}

#[test]
fn events_are_verified_fresh_deduplicated_and_answered_by_outcome() {
    let t0 = Instant::now();
    let crypto = EventCrypto::new("tok", KEY, "appkey").unwrap();
    let mut s = CallbackServer::new(SECRET, Some(crypto.clone()), CallbackLimits::default());
    let ts = NOW_MS.to_string();
    let event = |s: &mut CallbackServer, plain: Value, ts: &str| {
        let (sig, body) = sealed(&crypto, &plain, ts);
        s.event(&sig, ts, "nonce1", &body, NOW_MS, t0, [7; 24])
    };
    // The console's URL check: answered encrypted `success`, no handler.
    let (status, body) = answered(event(&mut s, json!({"EventType": "check_url"}), &ts));
    assert_eq!(status, 200);
    assert_eq!(decrypt_answer(&crypto, &body), "success");
    // A real event: the handler runs; the answer waits for its outcome.
    let e1 = json!({"EventType": "user_add_org", "EventId": "e1", "CorpId": "c"});
    let ticket = match event(&mut s, e1.clone(), &ts) {
        Verdict::Handle {
            frame,
            ticket,
            answer: None,
        } => {
            assert_eq!(frame.message_id(), "e1");
            assert_eq!(frame.headers.event_type.as_deref(), Some("user_add_org"));
            ticket
        }
        other => panic!("{other:?}"),
    };
    // A copy while it runs: accepted, not handled twice.
    assert_eq!(answered(event(&mut s, e1.clone(), &ts)).0, 200);
    let a = s.event_answer(Some(true), NOW_MS, [1; 24]);
    assert_eq!(decrypt_answer(&crypto, &a.body), "success");
    s.finished(ticket, true, t0);
    assert_eq!(answered(event(&mut s, e1, &ts)).0, 200);
    // A failed handler answers 503 and is not remembered: DingTalk's retry runs it again.
    let e2 = json!({"EventType": "user_add_org", "EventId": "e2"});
    let t2 = handled(event(&mut s, e2.clone(), &ts));
    assert_eq!(s.event_answer(Some(false), NOW_MS, [1; 24]).status, 503);
    s.finished(t2, false, t0);
    let _ = handled(event(&mut s, e2, &ts));
    // Past the answer deadline: accepted.
    assert_eq!(s.event_answer(None, NOW_MS, [1; 24]).status, 200);
    // Seconds timestamps (the FAQ vector's unit) are understood; stale ones are refused.
    let _ = handled(event(
        &mut s,
        json!({"EventType": "x", "EventId": "e3"}),
        &(NOW_MS / 1000).to_string(),
    ));
    let stale = (NOW_MS - 3_700_000).to_string();
    assert_eq!(
        answered(event(
            &mut s,
            json!({"EventType": "x", "EventId": "e4"}),
            &stale
        ))
        .0,
        401
    );
    // A forged signature.
    let (_, body) = sealed(&crypto, &json!({"EventId": "e5"}), &ts);
    let forged = s.event(&"0".repeat(40), &ts, "nonce1", &body, NOW_MS, t0, [0; 24]);
    assert_eq!(answered(forged).0, 401);
    // Without crypto configured: 404.
    let mut plain = CallbackServer::new(SECRET, None, CallbackLimits::default());
    assert_eq!(
        answered(plain.event("s", &ts, "n", b"{}", NOW_MS, t0, [0; 24])).0,
        404
    );
    assert!(!format!("{plain:?}").contains(SECRET));
}
