//! Replicas of one app sharing state through a real Redis (Debian's `redis-server`, started on
//! a loopback port), each replica its own process (`replica_bot`), on every adapter:
//! a frame redelivered to the second replica after the first handled it runs the handler once
//! in total and both get the same ack; 100 concurrent token requests from two replicas cause
//! one refresh; killing Redis mid-run loses no frame.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests abort on failure

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use dingtalk_sim::{Chat, Sim, SimCard, SimConfig};
use dingtalk_tests::servers::{RedisServer, TempDir};
use serde_json::json;

const T: Duration = Duration::from_secs(15);
const CARD_TOPIC: &str = "/v1.0/card/instances/callback";

fn redis() -> RedisServer {
    RedisServer::start().unwrap_or_else(|e| panic!("{e}"))
}

/// A replica process, killed on drop.
struct Replica(Child);

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn replica(adapter: &str, sim: &Sim, redis: &RedisServer, log: &str, mode: &[&str]) -> Replica {
    let (id, secret) = sim.credentials();
    let child = Command::new(env!("CARGO_BIN_EXE_replica_bot"))
        .args([adapter, &sim.base_url(), &id, &secret, &redis.url(), log])
        .args(mode)
        .env_remove("ALL_PROXY")
        .env_remove("all_proxy")
        .env_remove("HTTP_PROXY")
        .env_remove("http_proxy")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    Replica(child)
}

fn handled(log: &str) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn card_data(track: &str) -> String {
    json!({
        "outTrackId": track, "corpId": "dingSimCorp", "userId": "sim-user",
        "content": json!({"cardPrivateData": {"params": {"action": "like"}}}).to_string(),
    })
    .to_string()
}

async fn redelivered_to_another_replica_runs_once(adapter: &'static str) {
    let redis = redis();
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    let dir = TempDir::new("replicas");
    let log = dir.0.join("handled").display().to_string();
    let _a = replica(adapter, &sim, &redis, &log, &["serve"]);
    let _b = replica(adapter, &sim, &redis, &log, &["serve"]);
    sim.wait_connections(2, T).await.unwrap();
    let conns: Vec<u64> = sim.snapshot().conns.iter().map(|c| c.id).collect();
    let id = sim
        .push_frame_to(conns[0], "CALLBACK", CARD_TOPIC, &card_data("track-r"))
        .unwrap();
    let first = sim.wait_ack(&id, T).await.unwrap();
    assert_eq!((first.conn, first.code), (conns[0], 200), "{adapter}");
    // DingTalk redelivers it to the other replica (its ack was late, say).
    sim.redeliver_to(&id, conns[1]).unwrap();
    let snap = sim
        .wait_for("the second ack", T, |s| s.acks_for(&id).len() >= 2)
        .await
        .unwrap();
    let acks = snap.acks_for(&id);
    assert_eq!(
        acks[1].conn, conns[1],
        "{adapter}: acked by the second replica"
    );
    assert_eq!(acks[1].code, 200);
    assert_eq!(acks[0].data, acks[1].data, "{adapter}: the same ack");
    assert_eq!(
        acks[0].data,
        json!({"response": {"cardData": {"cardParamMap": {"handled": "once"}}}})
    );
    assert_eq!(
        handled(&log),
        vec!["card track-r".to_owned()],
        "{adapter}: the handler ran once in total"
    );
    assert!(snap.violations.is_empty(), "{:?}", snap.violations);
}

async fn two_replicas_refresh_the_token_once(adapter: &'static str) {
    let redis = redis();
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    let dir = TempDir::new("replicas");
    let log = dir.0.join("handled").display().to_string();
    let mut a = replica(adapter, &sim, &redis, &log, &["tokens", "50"]);
    let mut b = replica(adapter, &sim, &redis, &log, &["tokens", "50"]);
    let deadline = Instant::now() + T;
    for r in [&mut a, &mut b] {
        let status = loop {
            if let Some(status) = r.0.try_wait().unwrap() {
                break status;
            }
            assert!(Instant::now() < deadline, "{adapter}: a replica hung");
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert!(status.success(), "{adapter}: {status}");
    }
    assert_eq!(
        sim.snapshot().tokens_issued,
        1,
        "{adapter}: 100 token requests from two replicas, one refresh"
    );
}

async fn killing_redis_loses_no_frame(adapter: &'static str) {
    let mut redis = redis();
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    let dir = TempDir::new("replicas");
    let log = dir.0.join("handled").display().to_string();
    let _a = replica(adapter, &sim, &redis, &log, &["serve"]);
    let _b = replica(adapter, &sim, &redis, &log, &["serve"]);
    sim.wait_connections(2, T).await.unwrap();
    let mut ids = Vec::new();
    let mut expected = Vec::new();
    for i in 0..10 {
        ids.push(sim.bot_text(&format!("before {i}"), Chat::Private));
        expected.push(format!("bot before {i}"));
    }
    for id in &ids {
        sim.wait_ack(id, T).await.unwrap();
    }
    redis.kill();
    for i in 0..10 {
        ids.push(sim.bot_text(&format!("after {i}"), Chat::Private));
        expected.push(format!("bot after {i}"));
    }
    for i in 0..5 {
        ids.push(sim.card_callback(&format!("track-{i}"), json!({"action": "like"})));
        expected.push(format!("card track-{i}"));
    }
    for id in &ids {
        let ack = sim.wait_ack(id, T).await.unwrap();
        assert_eq!(ack.code, 200, "{adapter}: {ack:?}");
    }
    // Every handler ran, once (nothing was redelivered), before or after Redis died.
    let deadline = Instant::now() + T;
    loop {
        let mut seen = handled(&log);
        seen.sort();
        let mut want = expected.clone();
        want.sort();
        if seen == want {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{adapter}: handled {seen:?}, expected {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(sim.snapshot().violations.is_empty());
}

/// A replica dies (SIGKILL) with an AI card open: the card stays inputing, and the next
/// replica to start closes it as failed once the dead one's lease (1 s here) has run out; a
/// card is closed by one replica only.
async fn a_dead_replicas_ai_card_is_closed_by_the_next(adapter: &'static str) {
    let redis = redis();
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    let dir = TempDir::new("aicard-crash");
    let log = dir.0.join("handled").display().to_string();
    let mut a = replica(adapter, &sim, &redis, &log, &["serve"]);
    sim.wait_connections(1, T).await.unwrap();
    sim.bot_text("ai-card", Chat::Private);
    let open = |s: &dingtalk_sim::Snapshot| {
        s.cards
            .iter()
            .find(|(_, c)| c.data.get("msgContent").map(String::as_str) == Some("left open"))
            .map(|(id, c)| (id.clone(), c.flow_status().map(str::to_owned)))
    };
    let snap = sim
        .wait_for("an open AI card", T, |s| open(s).is_some())
        .await
        .unwrap();
    let (track, status) = open(&snap).unwrap();
    assert_eq!(status.as_deref(), Some("2"), "inputing");
    // The process dies: nothing of it closes the card.
    let _ = a.0.kill();
    let _ = a.0.wait();
    sim.wait_for("A gone", T, |s| s.open_conns() == 0)
        .await
        .unwrap();
    assert_eq!(sim.card(&track).unwrap().flow_status(), Some("2"));
    // Two replicas start: the card is closed as failed, once.
    let _b = replica(adapter, &sim, &redis, &log, &["serve"]);
    let _c = replica(adapter, &sim, &redis, &log, &["serve"]);
    sim.wait_for("the card closed", T, |s| {
        s.cards.get(&track).and_then(SimCard::flow_status) == Some("5")
    })
    .await
    .unwrap();
    let closes = sim
        .card(&track)
        .unwrap()
        .history
        .iter()
        .filter(|c| matches!(c, dingtalk_sim::CardChange::Updated(d) if d.get("flowStatus").map(String::as_str) == Some("5")))
        .count();
    assert_eq!(closes, 1, "{adapter}: closed by one replica");
}

macro_rules! per_adapter {
    ($($name:ident: $scenario:ident($adapter:expr);)*) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            $scenario($adapter).await;
        }
    )*};
}

per_adapter! {
    tokio_redelivered_to_another_replica_runs_once: redelivered_to_another_replica_runs_once("tokio");
    async_std_redelivered_to_another_replica_runs_once: redelivered_to_another_replica_runs_once("async-std");
    blocking_redelivered_to_another_replica_runs_once: redelivered_to_another_replica_runs_once("blocking");
    tokio_two_replicas_refresh_the_token_once: two_replicas_refresh_the_token_once("tokio");
    async_std_two_replicas_refresh_the_token_once: two_replicas_refresh_the_token_once("async-std");
    blocking_two_replicas_refresh_the_token_once: two_replicas_refresh_the_token_once("blocking");
    tokio_killing_redis_loses_no_frame: killing_redis_loses_no_frame("tokio");
    async_std_killing_redis_loses_no_frame: killing_redis_loses_no_frame("async-std");
    blocking_killing_redis_loses_no_frame: killing_redis_loses_no_frame("blocking");
    tokio_a_dead_replicas_ai_card_is_closed_by_the_next: a_dead_replicas_ai_card_is_closed_by_the_next("tokio");
    async_std_a_dead_replicas_ai_card_is_closed_by_the_next: a_dead_replicas_ai_card_is_closed_by_the_next("async-std");
    blocking_a_dead_replicas_ai_card_is_closed_by_the_next: a_dead_replicas_ai_card_is_closed_by_the_next("blocking");
}

/// A shared budget of OpenAPI calls: two replicas (a tokio client and a blocking one, each
/// with its own token cache and Redis connection) sending 24 calls at once stay within 6 calls
/// per second together, and every call is sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_share_the_api_budget() {
    use std::sync::Arc;

    use dingtalk_core::api::robot::{GroupSend, RobotMessage};
    use dingtalk_core::{Credentials, Endpoints};
    use dingtalk_driver::{RedisStore, StateStore, StoreConfig};

    const LIMIT: u32 = 6;
    let redis = redis();
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    let (id, secret) = sim.credentials();
    let config = StoreConfig {
        api_calls_per_second: Some(LIMIT),
        ..StoreConfig::default()
    };
    let store = |url: &str| -> Arc<dyn StateStore> {
        Arc::new(RedisStore::open(url, Duration::from_secs(1)).unwrap())
    };
    let call = |i: usize| GroupSend {
        robot_code: id.clone(),
        open_conversation_id: "cidSimGroup".into(),
        cool_app_code: None,
        message: RobotMessage::Text {
            content: format!("call {i}"),
        },
    };
    let a = dingtalk_tokio::ApiClient::new(
        Credentials::new(id.clone(), secret.clone()),
        Endpoints::single(sim.base_url()),
    )
    .unwrap()
    .with_state_store(store(&redis.url()), config.clone());
    let b = dingtalk_blocking::ApiClient::new(
        Credentials::new(id.clone(), secret.clone()),
        Endpoints::single(sim.base_url()),
    )
    .unwrap()
    .with_state_store(store(&redis.url()), config);
    let b_calls: Vec<GroupSend> = (12..24).map(call).collect();
    let blocking = std::thread::spawn(move || {
        std::thread::scope(|s| {
            let handles: Vec<_> = b_calls
                .iter()
                .map(|c| s.spawn(|| b.call(c).map(|_| ())))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap())
                .collect::<Vec<_>>()
        })
    });
    let a_calls: Vec<GroupSend> = (0..12).map(call).collect();
    let results = futures_util::future::join_all(a_calls.iter().map(|c| a.call(c))).await;
    for r in results {
        r.unwrap();
    }
    for r in tokio::task::spawn_blocking(move || blocking.join().unwrap())
        .await
        .unwrap()
    {
        r.unwrap();
    }
    let snap = sim.snapshot();
    let sends: Vec<i64> = snap
        .api_calls
        .iter()
        .filter(|r| r.path.contains("groupMessages"))
        .map(|r| r.at_unix_ms.div_euclid(1000))
        .collect();
    assert_eq!(sends.len(), 24, "every call was sent");
    let mut per_second = std::collections::BTreeMap::<i64, u32>::new();
    for s in sends {
        *per_second.entry(s).or_default() += 1;
    }
    assert!(
        per_second.values().all(|n| *n <= LIMIT),
        "at most {LIMIT} calls a second across both replicas: {per_second:?}"
    );
}

/// HTTP-callback mode behind a load balancer: DingTalk's resend of a robot callback reaches the
/// other replica, which answers it without running the handler again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_callbacks_are_handled_once_across_replicas() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use dingtalk_core::{Credentials, Endpoints};
    use dingtalk_driver::{RedisStore, StoreConfig};

    let redis = redis();
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    let (id, secret) = sim.credentials();
    let handled = Arc::new(AtomicUsize::new(0));
    let ran = Arc::new(tokio::sync::Notify::new());
    let replica = || {
        let (h, r) = (handled.clone(), ran.clone());
        let store = Arc::new(RedisStore::open(&redis.url(), Duration::from_secs(1)).unwrap());
        dingtalk_tokio::Client::builder(Credentials::new(id.clone(), secret.clone()))
            .endpoints(Endpoints::single(sim.base_url()))
            .state_store(store, StoreConfig::default())
            .on_bot_message(move |_ctx| {
                let (h, r) = (h.clone(), r.clone());
                async move {
                    h.fetch_add(1, Ordering::SeqCst);
                    r.notify_one();
                    Ok::<(), dingtalk_tokio::HandlerError>(())
                }
            })
            .build()
            .unwrap()
    };
    let mut bases = Vec::new();
    for client in [replica(), replica()] {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        bases.push(format!("http://{}", listener.local_addr().unwrap()));
        let app = dingtalk_tokio::http_callback::router(&client, None);
        tokio::spawn(async move { axum::serve(listener, app).await });
    }
    let body = sim
        .bot_message_data("text", "once", Chat::Private)
        .to_string();
    let http = reqwest::Client::builder()
        .use_preconfigured_tls((*dingtalk_tokio::default_tls_config().unwrap()).clone())
        .build()
        .unwrap();
    let post = |base: String| {
        let (http, body, secret) = (http.clone(), body.clone(), secret.clone());
        async move {
            let ts = i64::try_from(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_millis(),
            )
            .unwrap();
            http.post(format!("{base}/robot"))
                .header("timestamp", ts.to_string())
                .header("sign", dingtalk_core::webhook::sign(&secret, ts))
                .body(body)
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(post(bases[0].clone()).await, 200);
    tokio::time::timeout(T, ran.notified())
        .await
        .expect("the first replica handled it");
    // The resend, to the other replica: answered, and a moment for a wrong second run to show.
    assert_eq!(post(bases[1].clone()).await, 200);
    let second = tokio::time::timeout(Duration::from_millis(500), ran.notified()).await;
    assert!(second.is_err(), "the second replica ran the handler again");
    assert_eq!(handled.load(Ordering::SeqCst), 1);
}

/// A handler cancelled at its timeout releases its shared claim at once: DingTalk's
/// redelivery to another replica runs there (with its answer), instead of waiting for the
/// claim's TTL (11 min) and answering `LATER`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_handler_releases_its_claim() {
    use std::sync::Arc;

    use dingtalk_core::model::{CardCallbackResponse, CardParamMap};
    use dingtalk_core::{Credentials, Endpoints};
    use dingtalk_driver::{RedisStore, StoreConfig};

    let redis = redis();
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    let (id, secret) = sim.credentials();
    let replica = |hangs: bool| {
        let store = Arc::new(RedisStore::open(&redis.url(), Duration::from_secs(1)).unwrap());
        dingtalk_tokio::Client::builder(Credentials::new(id.clone(), secret.clone()))
            .endpoints(Endpoints::single(sim.base_url()))
            .handler_timeout(Duration::from_millis(300))
            .state_store(store, StoreConfig::default())
            .on_card_callback(move |_cb, _api| async move {
                if hangs {
                    std::future::pending::<()>().await;
                }
                Ok::<_, dingtalk_tokio::HandlerError>(Some(CardCallbackResponse {
                    card_update_options: None,
                    card_data: Some(CardParamMap::default().with("by", "b")),
                    user_private_data: None,
                }))
            })
            .build()
            .unwrap()
    };
    let a = replica(true);
    let ra = tokio::spawn({
        let a = a.clone();
        async move { a.run().await }
    });
    sim.wait_connections(1, T).await.unwrap();
    let conn_a = sim.snapshot().conns[0].id;
    let b = replica(false);
    let rb = tokio::spawn({
        let b = b.clone();
        async move { b.run().await }
    });
    sim.wait_connections(2, T).await.unwrap();
    let conn_b = sim
        .snapshot()
        .conns
        .iter()
        .map(|c| c.id)
        .find(|c| *c != conn_a)
        .unwrap();
    let id = sim
        .push_frame_to(conn_a, "CALLBACK", CARD_TOPIC, &card_data("track-cancel"))
        .unwrap();
    let first = sim.wait_ack(&id, T).await.unwrap();
    assert_eq!(
        (first.conn, first.code),
        (conn_a, 500),
        "A gave up at its timeout"
    );
    let asked = std::time::Instant::now();
    sim.redeliver_to(&id, conn_b).unwrap();
    let snap = sim
        .wait_for("B's ack", T, |s| s.acks_for(&id).len() >= 2)
        .await
        .unwrap();
    let second = snap.acks_for(&id)[1].clone();
    assert_eq!(second.conn, conn_b);
    assert_eq!(
        (second.code, second.data.clone()),
        (
            200,
            json!({"response": {"cardData": {"cardParamMap": {"by": "b"}}}})
        ),
        "B ran the handler: the claim was released"
    );
    assert!(
        asked.elapsed() < StoreConfig::default().wait_for_other,
        "B did not wait for A's claim"
    );
    a.stop_handle().stop();
    b.stop_handle().stop();
    ra.await.unwrap().unwrap();
    rb.await.unwrap().unwrap();
}
