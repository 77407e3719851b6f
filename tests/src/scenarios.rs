//! The scenarios. Each starts an emulator, starts a bot through the harness, drives traffic and
//! faults, and asserts on what the emulator saw on the wire.

use std::sync::Arc;
use std::time::{Duration, Instant};

use dingtalk_core::Credentials;
use dingtalk_sim::{Chat, Sim, SimConfig, Snapshot};
use serde_json::json;

use crate::harness::{BotSpec, Gate, Harness, Tweaks, card_response_json};

/// Upper bound of every wait; scenarios finish far sooner.
const T: Duration = Duration::from_secs(15);
const BOT_TOPIC: &str = "/v1.0/im/bot/messages/get";

async fn sim_with(config: SimConfig) -> Sim {
    Sim::start(config).await.expect("emulator starts")
}

async fn sim() -> Sim {
    sim_with(SimConfig {
        disconnect_grace: Duration::from_millis(400),
        ..SimConfig::default()
    })
    .await
}

fn creds(sim: &Sim) -> Credentials {
    let (id, secret) = sim.credentials();
    Credentials::new(id, secret)
}

fn no_violations(snap: &Snapshot) {
    assert!(
        snap.violations.is_empty(),
        "protocol violations: {:#?}",
        snap.violations
    );
}

fn fast_reconnect() -> Tweaks {
    Tweaks {
        backoff_base: Some(Duration::from_millis(200)),
        backoff_jitter: Some(Duration::from_millis(50)),
        ..Tweaks::default()
    }
}

/// A text message is acked with `{"response": null}` and answered through the session webhook.
pub async fn echo_round_trip(h: &dyn Harness) {
    let sim = sim().await;
    let spec = Arc::new(BotSpec::default());
    let bot = h.start(&sim.control(), creds(&sim), spec.clone());
    sim.wait_connections(1, T).await.unwrap();
    let id = sim.bot_text("hello there", Chat::Private);
    let ack = sim.wait_ack(&id, T).await.unwrap();
    assert_eq!(ack.code, 200);
    assert_eq!(ack.data, json!({"response": null}));
    let snap = sim
        .wait_for("reply", T, |s| !s.webhooks.is_empty())
        .await
        .unwrap();
    let reply = &snap.webhooks[0];
    assert_eq!(reply.path, "/robot/sendBySession");
    assert_eq!(reply.body["msgtype"], "text");
    assert_eq!(reply.body["text"]["content"], "hello there");
    assert_eq!(reply.status, 200);
    // The open request carried the subscriptions of the registered handlers.
    let subs = snap.opens[0].subscriptions.to_string();
    assert!(subs.contains(BOT_TOPIC) && subs.contains("EVENT"), "{subs}");
    bot.stop();
    bot.join().await.unwrap();
    no_violations(&sim.snapshot());
}

/// A SYSTEM ping is acked at once with its `opaque` echoed.
pub async fn ping_echoed(h: &dyn Harness) {
    let sim = sim().await;
    let bot = h.start(&sim.control(), creds(&sim), Arc::new(BotSpec::default()));
    sim.wait_connections(1, T).await.unwrap();
    let id = sim.ping();
    let ack = sim.wait_ack(&id, T).await.unwrap();
    assert_eq!(ack.code, 200);
    assert_eq!(ack.data, json!({"opaque": format!("opaque-{id}")}));
    bot.stop();
    bot.join().await.unwrap();
    no_violations(&sim.snapshot());
}

/// After `disconnect` the bot opens a replacement at once, keeps reading the old connection
/// until the server closes it, and every message (on either connection) is handled exactly once
/// and acked on the connection it came from.
pub async fn disconnect_loses_and_duplicates_nothing(h: &dyn Harness) {
    let sim = sim().await;
    let spec = Arc::new(BotSpec {
        echo: false,
        ..BotSpec::default()
    });
    let bot = h.start(&sim.control(), creds(&sim), spec.clone());
    sim.wait_connections(1, T).await.unwrap();
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(sim.bot_text(&format!("before {i}"), Chat::Private));
    }
    let old = sim.disconnect().expect("a live connection");
    // The server may still push on the draining connection before it closes it.
    for i in 0..3 {
        let data = sim.bot_message_data("text", &format!("draining {i}"), Chat::Group);
        ids.push(
            sim.push_frame_to(old, "CALLBACK", BOT_TOPIC, &data.to_string())
                .unwrap(),
        );
    }
    sim.wait_connections(1, T).await.unwrap();
    for i in 0..5 {
        ids.push(sim.bot_text(&format!("after {i}"), Chat::Private));
    }
    let snap = sim
        .wait_for("all acks and the old connection closed", T, |s| {
            ids.iter().all(|id| !s.acks_for(id).is_empty())
                && s.conns.iter().any(|c| c.id == old && !c.open)
        })
        .await
        .unwrap();
    spec.seen
        .wait("13 handler calls", T, |s| s.total() == 13)
        .await;
    assert_eq!(spec.seen.max_per_key(), 1, "no message handled twice");
    for id in &ids {
        let acks = snap.acks_for(id);
        assert_eq!(acks.len(), 1, "{id} acked once");
        let sent_on = snap.sent.iter().find(|f| &f.message_id == id).unwrap().conn;
        assert_eq!(acks[0].conn, sent_on, "{id} acked on its own connection");
    }
    let disc = snap.sent.iter().find(|f| f.topic == "disconnect").unwrap();
    assert_eq!(snap.acks_for(&disc.message_id).len(), 1, "disconnect acked");
    assert_eq!(snap.opens.len(), 2, "exactly one replacement connection");
    bot.stop();
    bot.join().await.unwrap();
    no_violations(&sim.snapshot());
}

/// An abrupt TCP close is followed by a reconnect at once (no backoff: the connection was
/// healthy); a connection lost again before any frame waits for the backoff (no storm).
pub async fn abrupt_close_reconnects_at_once_then_backs_off(h: &dyn Harness) {
    let sim = sim().await;
    let backoff = Duration::from_millis(1500);
    let spec = Arc::new(BotSpec {
        tweaks: Tweaks {
            backoff_base: Some(backoff),
            backoff_jitter: Some(Duration::from_millis(50)),
            ..Tweaks::default()
        },
        ..BotSpec::default()
    });
    let bot = h.start(&sim.control(), creds(&sim), spec.clone());
    sim.wait_connections(1, T).await.unwrap();
    let id = sim.bot_text("hello", Chat::Private);
    assert_eq!(sim.wait_ack(&id, T).await.unwrap().code, 200);
    let closed_at = Instant::now();
    sim.close_abruptly().unwrap();
    let snap = sim
        .wait_for("a second connection", T, |s| {
            s.conns.len() == 2 && s.open_conns() == 1
        })
        .await
        .unwrap();
    assert_eq!(snap.opens.len(), 2);
    let waited = snap.opens[1].at.duration_since(closed_at);
    assert!(
        waited < backoff,
        "reconnected after {waited:?}: the backoff, not at once"
    );
    // Lost again before any frame: now the backoff applies.
    let closed_at = Instant::now();
    sim.close_abruptly().unwrap();
    let snap = sim
        .wait_for("a third connection", T, |s| {
            s.conns.len() == 3 && s.open_conns() == 1
        })
        .await
        .unwrap_or_else(|e| panic!("{e}: {:?} {:?}", sim.snapshot().conns, sim.snapshot().opens));
    let waited = snap.opens[2].at.duration_since(closed_at);
    assert!(
        waited >= backoff,
        "reconnected after {waited:?}, before the backoff"
    );
    let id = sim.bot_text("still there?", Chat::Private);
    assert_eq!(sim.wait_ack(&id, T).await.unwrap().code, 200);
    assert_eq!(sim.snapshot().opens.len(), 3, "no reconnect storm");
    bot.stop();
    bot.join().await.unwrap();
    no_violations(&sim.snapshot());
}

/// The same `messageId` delivered twice reaches the handler once; both copies are acked alike.
pub async fn duplicate_message_id_handled_once(h: &dyn Harness) {
    let sim = sim().await;
    let spec = Arc::new(BotSpec::default());
    let bot = h.start(&sim.control(), creds(&sim), spec.clone());
    sim.wait_connections(1, T).await.unwrap();
    let data = sim.bot_message_data("text", "once", Chat::Private);
    let msg_id = data["msgId"].as_str().unwrap().to_owned();
    sim.push_frame_with_id("CALLBACK", BOT_TOPIC, "dup-1", &data.to_string());
    sim.push_frame_with_id("CALLBACK", BOT_TOPIC, "dup-1", &data.to_string());
    let ev = sim.event("user_add_org", json!({"userId": ["u1"]}));
    let snap = sim
        .wait_for("both acks", T, |s| {
            s.acks_for("dup-1").len() == 2 && !s.acks_for(&ev).is_empty()
        })
        .await
        .unwrap();
    let acks = snap.acks_for("dup-1");
    assert_eq!(acks[0].data, acks[1].data);
    assert_eq!(acks[0].code, 200);
    spec.seen
        .wait("the handler", T, |s| s.count(&msg_id) == 1)
        .await;
    sim.wait_for("one reply", T, |s| s.webhooks.len() == 1)
        .await
        .unwrap();
    assert_eq!(spec.seen.count(&msg_id), 1, "handled once");
    assert_eq!(sim.snapshot().webhooks.len(), 1, "replied once");
    bot.stop();
    bot.join().await.unwrap();
    no_violations(&sim.snapshot());
}

/// Wrong credentials end `run` with an error after one open request: no reconnect loop.
pub async fn wrong_credentials_are_terminal(h: &dyn Harness) {
    let sim = sim().await;
    let (id, _) = sim.credentials();
    let bot = h.start(
        &sim.control(),
        Credentials::new(id, "wrong-secret"),
        Arc::new(BotSpec::default()),
    );
    let result = tokio::time::timeout(T, bot.join())
        .await
        .expect("run returns");
    let err = result.unwrap_err();
    assert!(err.contains("AuthFailed"), "{err}");
    let snap = sim.snapshot();
    assert_eq!(snap.opens.len(), 1);
    assert_eq!(snap.opens[0].status, 401);
    assert!(snap.conns.is_empty());
}

/// Garbage, malformed frames and unknown topics are answered (400 / 404) or dropped, and the
/// connection keeps working.
pub async fn malformed_and_unknown_frames_survived(h: &dyn Harness) {
    let sim = sim().await;
    let spec = Arc::new(BotSpec::default());
    let bot = h.start(&sim.control(), creds(&sim), spec.clone());
    sim.wait_connections(1, T).await.unwrap();
    sim.push_raw("this is not json");
    sim.push_raw(
        r#"{"type":"MYSTERY","headers":{"topic":"x","messageId":"bad-type"},"data":"{}"}"#,
    );
    sim.push_raw(r#"{"type":"CALLBACK","headers":{"topic":"/v1.0/im/bot/messages/get","messageId":"bad-data"},"data":{"not":"a string"}}"#);
    let unknown = sim.push_frame("CALLBACK", "/v1.0/unknown/topic", "{}");
    let good = sim.bot_text("after the noise", Chat::Private);
    let snap = sim
        .wait_for("acks", T, |s| {
            ["bad-type", "bad-data", unknown.as_str(), good.as_str()]
                .iter()
                .all(|id| !s.acks_for(id).is_empty())
        })
        .await
        .unwrap();
    assert_eq!(snap.acks_for("bad-type")[0].code, 400);
    assert_eq!(snap.acks_for("bad-data")[0].code, 400);
    assert_eq!(snap.acks_for(&unknown)[0].code, 404);
    assert_eq!(snap.acks_for(&good)[0].code, 200);
    assert_eq!(snap.conns.len(), 1, "the connection survived");
    assert_eq!(snap.open_conns(), 1);
    bot.stop();
    bot.join().await.unwrap();
}

/// Hundreds of events queue behind slow handlers (limited concurrency); pings are still
/// answered meanwhile, and once the handlers proceed every event is acked SUCCESS exactly once.
pub async fn slow_handlers_do_not_block_pings(h: &dyn Harness) {
    let sim = sim().await;
    let spec = Arc::new(BotSpec {
        gate: Gate::closed(),
        tweaks: Tweaks {
            max_in_flight: Some(4),
            ..Tweaks::default()
        },
        ..BotSpec::default()
    });
    let bot = h.start(&sim.control(), creds(&sim), spec.clone());
    sim.wait_connections(1, T).await.unwrap();
    let events: Vec<String> = (0..300)
        .map(|i| sim.event("user_add_org", json!({"n": i})))
        .collect();
    let ping = sim.ping();
    let snap = sim
        .wait_for("ping ack", T, |s| !s.acks_for(&ping).is_empty())
        .await
        .unwrap();
    let event_acks = events
        .iter()
        .filter(|e| !snap.acks_for(e).is_empty())
        .count();
    assert_eq!(event_acks, 0, "handlers are still held");
    spec.gate.release();
    let snap = sim
        .wait_for("300 event acks", T, |s| {
            events.iter().all(|e| !s.acks_for(e).is_empty())
        })
        .await
        .unwrap();
    for e in &events {
        let acks = snap.acks_for(e);
        assert_eq!(acks.len(), 1);
        assert_eq!(acks[0].data["status"], "SUCCESS");
    }
    assert_eq!(spec.seen.total(), 300);
    assert_eq!(spec.seen.max_per_key(), 1);
    bot.stop();
    bot.join().await.unwrap();
    no_violations(&sim.snapshot());
}

/// Stop lets an in-flight handler finish, sends its ack, closes, and `run` returns `Ok`.
pub async fn graceful_stop_acks_in_flight_work(h: &dyn Harness) {
    let sim = sim().await;
    let spec = Arc::new(BotSpec {
        gate: Gate::closed(),
        ..BotSpec::default()
    });
    let bot = h.start(&sim.control(), creds(&sim), spec.clone());
    sim.wait_connections(1, T).await.unwrap();
    let ev = sim.event("user_add_org", json!({}));
    // The handler has the event (it waits on the gate); nothing is acked yet.
    spec.seen
        .wait("the handler to start", T, |s| s.entered_count() == 1)
        .await;
    assert!(sim.snapshot().acks_for(&ev).is_empty());
    bot.stop();
    spec.gate.release();
    tokio::time::timeout(T, bot.join())
        .await
        .expect("run returns")
        .unwrap();
    let snap = sim
        .wait_for("the ack and the close", T, |s| {
            !s.acks_for(&ev).is_empty() && s.open_conns() == 0
        })
        .await
        .unwrap();
    assert_eq!(snap.acks_for(&ev)[0].data["status"], "SUCCESS");
    assert_eq!(snap.opens.len(), 1, "no reconnect after stop");
    no_violations(&snap);
}

/// An access token that expires mid-run is refreshed and the call retried once.
pub async fn token_expiry_is_refreshed_and_retried(h: &dyn Harness) {
    let sim = sim().await;
    let spec = Arc::new(BotSpec {
        call_api: true,
        echo: false,
        ..BotSpec::default()
    });
    let bot = h.start(&sim.control(), creds(&sim), spec.clone());
    sim.wait_connections(1, T).await.unwrap();
    sim.bot_text("first", Chat::Group);
    spec.seen
        .wait("first API call", T, |s| s.api_results().len() == 1)
        .await;
    sim.expire_tokens();
    sim.bot_text("second", Chat::Group);
    spec.seen
        .wait("second API call", T, |s| s.api_results().len() == 2)
        .await;
    assert!(
        spec.seen.api_results().iter().all(Result::is_ok),
        "{:?}",
        spec.seen.api_results()
    );
    let snap = sim.snapshot();
    assert_eq!(snap.tokens_issued, 2, "one refresh");
    let statuses: Vec<u16> = snap.api_calls.iter().map(|c| c.status).collect();
    assert_eq!(statuses, vec![200, 400, 200], "rejected once, then retried");
    assert_eq!(
        snap.api_calls[2].body["msgParam"],
        "{\"content\":\"second\"}"
    );
    bot.stop();
    bot.join().await.unwrap();
}

/// A rate-limited call is retried after the documented pause and succeeds.
pub async fn rate_limited_call_is_retried(h: &dyn Harness) {
    let sim = sim().await;
    let spec = Arc::new(BotSpec {
        call_api: true,
        echo: false,
        tweaks: Tweaks {
            retry_max_delay: Some(Duration::from_millis(100)),
            ..Tweaks::default()
        },
        ..BotSpec::default()
    });
    let bot = h.start(&sim.control(), creds(&sim), spec.clone());
    sim.wait_connections(1, T).await.unwrap();
    sim.rate_limit_next_calls(1);
    sim.bot_text("limited", Chat::Group);
    spec.seen
        .wait("the API call", T, |s| s.api_results().len() == 1)
        .await;
    assert_eq!(spec.seen.api_results(), vec![Ok(())]);
    let statuses: Vec<u16> = sim.snapshot().api_calls.iter().map(|c| c.status).collect();
    assert_eq!(statuses, vec![403, 200]);
    bot.stop();
    bot.join().await.unwrap();
}

/// A card action is answered inside the ack: `{"response": <card update>}`.
pub async fn card_callback_answered_in_the_ack(h: &dyn Harness) {
    let sim = sim().await;
    let spec = Arc::new(BotSpec::default());
    let bot = h.start(&sim.control(), creds(&sim), spec.clone());
    sim.wait_connections(1, T).await.unwrap();
    let id = sim.card_callback("track-42", json!({"action": "like"}));
    let ack = sim.wait_ack(&id, T).await.unwrap();
    assert_eq!(ack.code, 200);
    assert_eq!(ack.data, json!({"response": card_response_json()}));
    assert_eq!(spec.seen.count("track-42"), 1);
    bot.stop();
    bot.join().await.unwrap();
    no_violations(&sim.snapshot());
}

/// A connection that stops answering (no pong) is detected by the keepalive and replaced.
pub async fn dead_connection_is_detected_and_replaced(h: &dyn Harness) {
    let sim = sim().await;
    let mut tweaks = fast_reconnect();
    tweaks.keepalive_idle = Some(Duration::from_millis(300));
    tweaks.keepalive_timeout = Some(Duration::from_millis(300));
    let spec = Arc::new(BotSpec {
        tweaks,
        ..BotSpec::default()
    });
    let bot = h.start(&sim.control(), creds(&sim), spec.clone());
    sim.wait_connections(1, T).await.unwrap();
    // A healthy idle connection is pinged and survives.
    sim.wait_for("a keepalive ping", T, |s| {
        s.conns.first().is_some_and(|c| c.pings >= 1)
    })
    .await
    .unwrap();
    sim.freeze().unwrap();
    let snap = sim
        .wait_for("a replacement connection", T, |s| {
            s.conns.len() == 2 && s.conns.iter().any(|c| c.id == 2 && c.open)
        })
        .await
        .unwrap();
    assert_eq!(snap.opens.len(), 2);
    let id = sim.bot_text("on the new connection", Chat::Private);
    assert_eq!(sim.wait_ack(&id, T).await.unwrap().conn, 2);
    bot.stop();
    bot.join().await.unwrap();
}

/// 5xx answers to the open request are retried with backoff until one succeeds.
pub async fn open_failures_are_retried(h: &dyn Harness) {
    let sim = sim().await;
    sim.fail_next_opens(&[503, 500]);
    let spec = Arc::new(BotSpec {
        tweaks: fast_reconnect(),
        ..BotSpec::default()
    });
    let bot = h.start(&sim.control(), creds(&sim), spec.clone());
    sim.wait_connections(1, T).await.unwrap();
    let snap = sim.snapshot();
    let statuses: Vec<u16> = snap.opens.iter().map(|o| o.status).collect();
    assert_eq!(statuses, vec![503, 500, 200]);
    let gap = snap.opens[2].at.duration_since(snap.opens[1].at);
    assert!(
        gap >= Duration::from_millis(400),
        "second retry waited {gap:?} (2 × base)"
    );
    bot.stop();
    bot.join().await.unwrap();
}

/// A panicking handler does not take the client down; later messages are still handled.
pub async fn handler_panic_is_contained(h: &dyn Harness) {
    let sim = sim().await;
    let spec = Arc::new(BotSpec {
        panic_on: Some("boom".into()),
        ..BotSpec::default()
    });
    let bot = h.start(&sim.control(), creds(&sim), spec.clone());
    sim.wait_connections(1, T).await.unwrap();
    sim.bot_text("boom", Chat::Private);
    let id = sim.bot_text("fine", Chat::Private);
    sim.wait_ack(&id, T).await.unwrap();
    let snap = sim
        .wait_for("the reply to `fine`", T, |s| s.webhooks.len() == 1)
        .await
        .unwrap();
    assert_eq!(snap.webhooks[0].body["text"]["content"], "fine");
    assert_eq!(snap.open_conns(), 1);
    bot.stop();
    bot.join().await.unwrap();
}

/// A handler that never returns is cancelled at the handler timeout: the frame is acked with
/// the failure status, the slot is freed for the next frame, and (async adapters) the call's
/// future is dropped.
pub async fn hanging_handler_is_cancelled_at_the_handler_timeout(h: &dyn Harness) {
    let sim = sim().await;
    let spec = Arc::new(BotSpec {
        gate: Gate::closed(),
        tweaks: Tweaks {
            max_in_flight: Some(1),
            handler_timeout: Some(Duration::from_millis(300)),
            ..Tweaks::default()
        },
        ..BotSpec::default()
    });
    let bot = h.start(&sim.control(), creds(&sim), spec.clone());
    sim.wait_connections(1, T).await.unwrap();
    let first = sim.event("user_add_org", json!({"n": 1}));
    let second = sim.event("user_add_org", json!({"n": 2}));
    let snap = sim
        .wait_for("both events acked", T, |s| {
            !s.acks_for(&first).is_empty() && !s.acks_for(&second).is_empty()
        })
        .await
        .unwrap();
    for e in [&first, &second] {
        let acks = snap.acks_for(e);
        assert_eq!(acks.len(), 1, "{}: one ack", h.name());
        assert_eq!(acks[0].data["status"], "LATER", "{}: failure ack", h.name());
    }
    // The second got the slot the first held: both handlers started, one at a time.
    assert_eq!(spec.seen.entered_count(), 2, "{}", h.name());
    assert_eq!(spec.seen.total(), 0, "{}: nothing finished", h.name());
    if h.cancels_handlers() {
        spec.seen
            .wait("both calls dropped", T, |s| s.left_count() == 2)
            .await;
    }
    spec.gate.release();
    bot.stop();
    bot.join().await.unwrap();
    no_violations(&sim.snapshot());
}

/// Several connections for one app: each is opened with its own ticket; frames spread over
/// them are acked on the connection they came on; a card callback whose ack is late is pushed
/// again by the gateway on the sibling connection, runs its handler once, and both copies get
/// the same ack, each on its own connection.
pub async fn several_connections_share_dedup_and_ack_on_their_own(h: &dyn Harness) {
    let sim = sim_with(SimConfig {
        disconnect_grace: Duration::from_millis(400),
        redeliver_after: Some(Duration::from_millis(300)),
        ..SimConfig::default()
    })
    .await;
    let spec = Arc::new(BotSpec {
        gate: Gate::closed(),
        tweaks: Tweaks {
            connections: Some(2),
            ..Tweaks::default()
        },
        ..BotSpec::default()
    });
    let bot = h.start(&sim.control(), creds(&sim), spec.clone());
    sim.wait_connections(2, T).await.unwrap();
    let snap = sim.snapshot();
    assert_eq!(
        snap.opens.len(),
        2,
        "{}: one open call per connection",
        h.name()
    );
    assert_ne!(snap.conns[0].ticket, snap.conns[1].ticket, "{}", h.name());

    let ids: Vec<String> = (0..4)
        .map(|i| sim.bot_text(&format!("spread {i}"), Chat::Private))
        .collect();
    for id in &ids {
        sim.wait_ack(id, T).await.unwrap();
    }
    let snap = sim.snapshot();
    let mut used = std::collections::BTreeSet::new();
    for id in &ids {
        let sent = snap.sent.iter().find(|f| &f.message_id == id).unwrap();
        let acks = snap.acks_for(id);
        assert_eq!(acks.len(), 1, "{}", h.name());
        assert_eq!(acks[0].conn, sent.conn, "{}: acked where it came", h.name());
        used.insert(sent.conn);
    }
    assert_eq!(
        used.len(),
        2,
        "{}: frames went over both connections",
        h.name()
    );

    let id = sim.card_callback("track-multi", json!({"action": "like"}));
    let snap = sim
        .wait_for("a redelivery on the sibling", T, |s| {
            s.redeliveries.iter().any(|r| r.message_id == id)
        })
        .await
        .unwrap();
    let redelivery = snap
        .redeliveries
        .iter()
        .find(|r| r.message_id == id)
        .unwrap()
        .clone();
    assert_ne!(redelivery.from, redelivery.to);
    spec.gate.release();
    let snap = sim
        .wait_for("both copies acked", T, |s| s.acks_for(&id).len() >= 2)
        .await
        .unwrap();
    let acks = snap.acks_for(&id);
    let conns: std::collections::BTreeSet<u64> = acks.iter().map(|a| a.conn).collect();
    assert!(
        conns.contains(&redelivery.from) && conns.contains(&redelivery.to),
        "{}: each copy acked on its own connection: {acks:?}",
        h.name()
    );
    for a in &acks {
        assert_eq!(
            (a.code, &a.data),
            (200, &json!({"response": card_response_json()}))
        );
    }
    assert_eq!(
        spec.seen.count("track-multi"),
        1,
        "{}: the handler ran once",
        h.name()
    );
    bot.stop();
    bot.join().await.unwrap();
    no_violations(&sim.snapshot());
}

/// The configured frame limit bounds what the WebSocket reads: a frame over the limit (but
/// under four times it) is nacked 400 by its salvaged id; a message over four times the limit
/// ends the connection before it is buffered whole, and the client reconnects.
pub async fn the_frame_limit_bounds_websocket_messages(h: &dyn Harness) {
    const LIMIT: usize = 16 * 1024;
    let sim = sim().await;
    let mut tweaks = fast_reconnect();
    tweaks.max_frame_bytes = Some(LIMIT);
    let spec = Arc::new(BotSpec {
        echo: false,
        tweaks,
        ..BotSpec::default()
    });
    let bot = h.start(&sim.control(), creds(&sim), spec.clone());
    sim.wait_connections(1, T).await.unwrap();
    let over = sim.bot_text(&"x".repeat(2 * LIMIT), Chat::Private);
    let ack = sim.wait_ack(&over, T).await.unwrap();
    assert_eq!(ack.code, 400, "{}: an oversized frame is nacked", h.name());
    assert_eq!(spec.seen.count(&over), 0);
    let huge = sim.bot_text(&"y".repeat(5 * LIMIT), Chat::Private);
    let snap = sim
        .wait_for("a new connection", T, |s| {
            s.opens.len() >= 2 && s.open_conns() >= 1 && s.conns.len() >= 2
        })
        .await
        .unwrap();
    assert!(
        snap.acks_for(&huge).is_empty(),
        "{}: the huge message is never read",
        h.name()
    );
    sim.wait_connections(1, T).await.unwrap();
    let fine = sim.bot_text("small again", Chat::Private);
    assert_eq!(sim.wait_ack(&fine, T).await.unwrap().code, 200);
    bot.stop();
    bot.join().await.unwrap();
}
