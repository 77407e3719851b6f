//! HTTP-callback mode: the router verifies, dispatches to the Stream handlers, and answers in the
//! documented shape. Run with `--features http-callback`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests abort on failure

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use dingtalk_core::callback::EventCrypto;
use dingtalk_core::{Credentials, Endpoints};
use dingtalk_sim::{Chat, Sim, SimConfig};
use dingtalk_tokio::{Client, EventAck, HandlerError};
use serde_json::{Value, json};

const KEY: &str = "4g5j64qlyl3zvetqxz5jiocdr586fn2zvjpa8zls3ij";

fn now_ms() -> i64 {
    i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}

/// A plain HTTP client for the test (rustls with ring, as the SDK; no process-wide provider).
fn http() -> reqwest::Client {
    let tls = dingtalk_tokio::default_tls_config().unwrap();
    reqwest::Client::builder()
        .use_preconfigured_tls((*tls).clone())
        .build()
        .unwrap()
}

async fn serve(client: &Client, crypto: Option<EventCrypto>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = dingtalk_tokio::http_callback::router(client, crypto);
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

#[tokio::test]
async fn outgoing_robot_callback_is_verified_and_handled() {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    let (id, secret) = sim.credentials();
    let handled = Arc::new(AtomicUsize::new(0));
    let (h, ran) = (handled.clone(), Arc::new(tokio::sync::Notify::new()));
    let r = ran.clone();
    let client = Client::builder(Credentials::new(id, secret.clone()))
        .endpoints(Endpoints::single(sim.base_url()))
        .on_bot_message(move |ctx| {
            let (h, r) = (h.clone(), r.clone());
            async move {
                h.fetch_add(1, Ordering::SeqCst);
                r.notify_one();
                ctx.reply_text(format!("http: {}", ctx.text().unwrap_or_default()))
                    .await?;
                Ok::<(), HandlerError>(())
            }
        })
        .build()
        .unwrap();
    let base = serve(&client, None).await;
    let body = sim
        .bot_message_data("text", "over http", Chat::Private)
        .to_string();
    let http = http();
    let ts = now_ms();
    let sign = dingtalk_core::webhook::sign(&secret, ts); // same HMAC as the callback check
    let answer = http
        .post(format!("{base}/robot"))
        .header("timestamp", ts.to_string())
        .header("sign", sign)
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let json: Value = serde_json::from_slice(&answer.bytes().await.unwrap()).unwrap();
    assert_eq!(json, json!({"msgtype": "empty"}));
    // Answered at once; the handler runs meanwhile.
    tokio::time::timeout(Duration::from_secs(5), ran.notified())
        .await
        .expect("the handler ran");
    assert_eq!(handled.load(Ordering::SeqCst), 1);
    let snap = sim
        .wait_for("the reply", Duration::from_secs(5), |s| {
            s.webhooks.len() == 1
        })
        .await
        .unwrap();
    assert_eq!(snap.webhooks[0].body["text"]["content"], "http: over http");

    // The same signed request again (DingTalk's resend, or a replay inside the window):
    // answered, not handled twice.
    let answer = http
        .post(format!("{base}/robot"))
        .header("timestamp", ts.to_string())
        .header("sign", dingtalk_core::webhook::sign(&secret, ts))
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    // A body over the limit is refused unread.
    let answer = http
        .post(format!("{base}/robot"))
        .header("timestamp", ts.to_string())
        .header("sign", dingtalk_core::webhook::sign(&secret, ts))
        .body(vec![b' '; (1 << 20) + 1])
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 413);

    // A wrong signature or a stale timestamp is refused before any handler runs.
    for (ts, sign) in [
        (now_ms(), "bm90IHRoZSBzaWdu".to_owned()),
        (
            now_ms() - 3_700_000,
            dingtalk_core::webhook::sign(&secret, now_ms() - 3_700_000),
        ),
    ] {
        let answer = http
            .post(format!("{base}/robot"))
            .header("timestamp", ts.to_string())
            .header("sign", sign)
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 401);
    }
    assert_eq!(handled.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn event_subscription_is_decrypted_handled_and_answered_encrypted() {
    let events = Arc::new(AtomicUsize::new(0));
    let e = events.clone();
    let client = Client::builder(Credentials::new("appkey-1", "secret"))
        .on_event(move |ev, _api| {
            let e = e.clone();
            async move {
                assert_eq!(ev.event_type, "user_add_org");
                e.fetch_add(1, Ordering::SeqCst);
                Ok::<_, HandlerError>(EventAck::Success)
            }
        })
        .build()
        .unwrap();
    let crypto = EventCrypto::new("tok", KEY, "appkey-1").unwrap();
    let base = serve(&client, Some(crypto.clone())).await;
    let http = http();
    let ts = now_ms().to_string();
    let post = |plain: String, good_signature: bool| {
        let sealed = crypto.encrypt(&plain, &ts, "nonce1", *b"0123456789abcdef");
        let signature = if good_signature {
            sealed.msg_signature.clone()
        } else {
            "0".repeat(40)
        };
        let url = format!("{base}/events?msg_signature={signature}&timestamp={ts}&nonce=nonce1");
        let body = json!({"encrypt": sealed.encrypt}).to_string();
        let http = http.clone();
        async move { http.post(url).body(body).send().await.unwrap() }
    };
    let success = |v: &Value| {
        crypto
            .decrypt(
                v["msg_signature"].as_str().unwrap(),
                v["timeStamp"].as_str().unwrap(),
                v["nonce"].as_str().unwrap(),
                v["encrypt"].as_str().unwrap(),
            )
            .unwrap()
    };
    // The console's URL check is answered without calling a handler.
    let answer = post(json!({"EventType": "check_url"}).to_string(), true).await;
    assert_eq!(answer.status(), 200);
    let v: Value = serde_json::from_slice(&answer.bytes().await.unwrap()).unwrap();
    assert_eq!(success(&v), "success");
    assert_eq!(events.load(Ordering::SeqCst), 0);
    // A real event reaches the event handler.
    let answer = post(
        json!({"EventType": "user_add_org", "EventId": "ev-1", "CorpId": "ding1", "UserId": ["u1"]})
            .to_string(),
        true,
    )
    .await;
    assert_eq!(answer.status(), 200);
    let v: Value = serde_json::from_slice(&answer.bytes().await.unwrap()).unwrap();
    assert_eq!(success(&v), "success");
    assert_eq!(events.load(Ordering::SeqCst), 1);
    // A forged signature is refused.
    let answer = post(json!({"EventType": "user_add_org"}).to_string(), false).await;
    assert_eq!(answer.status(), 401);
    assert_eq!(events.load(Ordering::SeqCst), 1);
}

/// A slow event handler: the answer goes out within the deadline (DingTalk resends slow
/// answers); a resent copy is not handled twice; with every slot taken the answer is 503 with
/// Retry-After.
#[tokio::test]
async fn slow_events_are_answered_in_time_once_and_bounded() {
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let entered = Arc::new(AtomicUsize::new(0));
    let (g, e) = (gate.clone(), entered.clone());
    let client = Client::builder(Credentials::new("appkey-1", "secret"))
        .on_event(move |_ev, _api| {
            let (g, e) = (g.clone(), e.clone());
            async move {
                e.fetch_add(1, Ordering::SeqCst);
                let _permit = g.acquire().await;
                Ok::<_, HandlerError>(EventAck::Success)
            }
        })
        .build()
        .unwrap();
    let crypto = EventCrypto::new("tok", KEY, "appkey-1").unwrap();
    let limits = dingtalk_tokio::http_callback::CallbackLimits {
        max_in_flight: 1,
        answer_within: Duration::from_millis(200),
        ..Default::default()
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let app = dingtalk_tokio::http_callback::router_with(&client, Some(crypto.clone()), limits);
    tokio::spawn(async move { axum::serve(listener, app).await });
    let http = http();
    let ts = now_ms().to_string();
    let post = |id: &str| {
        let plain = json!({"EventType": "user_add_org", "EventId": id}).to_string();
        let sealed = crypto.encrypt(&plain, &ts, "n", *b"0123456789abcdef");
        let url = format!(
            "{base}/events?msg_signature={}&timestamp={ts}&nonce=n",
            sealed.msg_signature
        );
        let body = json!({"encrypt": sealed.encrypt}).to_string();
        let http = http.clone();
        async move { http.post(url).body(body).send().await.unwrap() }
    };
    // The handler waits on the gate: the answer still comes, `success`, within the deadline.
    let answer = post("slow-1").await;
    assert_eq!(answer.status(), 200);
    assert_eq!(entered.load(Ordering::SeqCst), 1);
    // DingTalk's resend while it still runs: answered, not handled again.
    assert_eq!(post("slow-1").await.status(), 200);
    // The one slot is taken: another event is told to come back.
    let busy = post("slow-2").await;
    assert_eq!(busy.status(), 503);
    assert_eq!(busy.headers()["retry-after"], "1");
    assert_eq!(entered.load(Ordering::SeqCst), 1);
    // Once the first finishes, the slot is free again.
    gate.add_permits(10);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let answer = post("slow-2").await;
        if answer.status() == 200 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the slot was never freed"
        );
        tokio::task::yield_now().await;
    }
    assert_eq!(entered.load(Ordering::SeqCst), 2);
}
