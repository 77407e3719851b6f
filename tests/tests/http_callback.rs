//! HTTP-callback mode in the async-std and blocking adapters (the tokio adapter's axum router
//! has its own tests in `runtime-tokio/tests/http_callback.rs`; all three run the one
//! `dingtalk_driver::callback::CallbackService`): a signed outgoing-robot callback is answered
//! at once and handled once (a resent copy is not handled again), its reply reaches the session
//! webhook; a forged signature, a stale timestamp and an oversized body are refused before any
//! handler; an encrypted event is decrypted, handled and answered with the encrypted `success`;
//! the client's stop ends the server (`serve_until`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests abort on failure

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use dingtalk_core::callback::EventCrypto;
use dingtalk_core::{Credentials, Endpoints};
use dingtalk_sim::{Chat, Sim, SimConfig};
use serde_json::{Value, json};

const KEY: &str = "4g5j64qlyl3zvetqxz5jiocdr586fn2zvjpa8zls3ij";
const T: Duration = Duration::from_secs(10);

fn http() -> reqwest::Client {
    let tls = dingtalk_tokio::default_tls_config().unwrap();
    reqwest::Client::builder()
        .use_preconfigured_tls((*tls).clone())
        .build()
        .unwrap()
}

/// Counts of the handlers' calls.
#[derive(Default)]
struct Counts {
    bot: AtomicUsize,
    events: AtomicUsize,
}

/// Starts `adapter`'s callback server (until the client's stop) for a client with a
/// bot-message handler (replying `http: <text>`) and an event handler; returns its base URL,
/// the client's stop handle and the server's thread.
fn start(
    adapter: &str,
    sim: &Sim,
    counts: Arc<Counts>,
) -> (
    String,
    dingtalk_driver::StopHandle,
    std::thread::JoinHandle<std::io::Result<()>>,
) {
    let (id, secret) = sim.credentials();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let crypto = EventCrypto::new("tok", KEY, &id).unwrap();
    let credentials = Credentials::new(id, secret);
    let endpoints = Endpoints::single(sim.base_url());
    match adapter {
        "async-std" => {
            let (c1, c2) = (counts.clone(), counts);
            let client = dingtalk_async_std::Client::builder(credentials)
                .endpoints(endpoints)
                .on_bot_message(move |ctx| {
                    let c = c1.clone();
                    async move {
                        c.bot.fetch_add(1, Ordering::SeqCst);
                        ctx.reply_text(format!("http: {}", ctx.text().unwrap_or_default()))
                            .await?;
                        Ok::<(), dingtalk_async_std::HandlerError>(())
                    }
                })
                .on_event(move |ev, _api| {
                    let c = c2.clone();
                    async move {
                        assert_eq!(ev.event_type, "user_add_org");
                        c.events.fetch_add(1, Ordering::SeqCst);
                        Ok::<_, dingtalk_async_std::HandlerError>(
                            dingtalk_async_std::EventAck::Success,
                        )
                    }
                })
                .build()
                .unwrap();
            let stop = client.stop_handle();
            let server = std::thread::spawn({
                let stop = stop.clone();
                move || {
                    async_std::task::block_on(dingtalk_async_std::http_callback::serve_until(
                        listener,
                        &client,
                        Some(crypto),
                        stop,
                    ))
                }
            });
            (base, stop, server)
        }
        _ => {
            let (c1, c2) = (counts.clone(), counts);
            let client = dingtalk_blocking::Client::builder(credentials)
                .endpoints(endpoints)
                .on_bot_message(move |ctx| {
                    c1.bot.fetch_add(1, Ordering::SeqCst);
                    ctx.reply_text(format!("http: {}", ctx.text().unwrap_or_default()))?;
                    Ok::<(), dingtalk_blocking::HandlerError>(())
                })
                .on_event(move |ev, _api| {
                    assert_eq!(ev.event_type, "user_add_org");
                    c2.events.fetch_add(1, Ordering::SeqCst);
                    Ok::<_, dingtalk_blocking::HandlerError>(dingtalk_blocking::EventAck::Success)
                })
                .build()
                .unwrap();
            let stop = client.stop_handle();
            let server = std::thread::spawn({
                let stop = stop.clone();
                move || {
                    dingtalk_blocking::http_callback::serve_until(
                        listener,
                        &client,
                        Some(crypto),
                        stop,
                    )
                }
            });
            (base, stop, server)
        }
    }
}

async fn callbacks(adapter: &'static str) {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    let (id, secret) = sim.credentials();
    let counts = Arc::new(Counts::default());
    let (base, stop, server) = start(adapter, &sim, counts.clone());
    let http = http();

    // The outgoing robot: signed, answered at once, handled, the reply sent.
    let body = sim
        .bot_message_data("text", "over http", Chat::Private)
        .to_string();
    let ts = dingtalk_driver::unix_ms();
    let signed = |body: Vec<u8>, ts: i64, sign: String| {
        http.post(format!("{base}/robot"))
            .header("timestamp", ts.to_string())
            .header("sign", sign)
            .body(body)
            .send()
    };
    let answer = signed(
        body.clone().into(),
        ts,
        dingtalk_core::webhook::sign(&secret, ts),
    )
    .await
    .unwrap();
    assert_eq!(answer.status(), 200, "{adapter}");
    let v: Value = serde_json::from_slice(&answer.bytes().await.unwrap()).unwrap();
    assert_eq!(v, json!({"msgtype": "empty"}));
    let snap = sim
        .wait_for("the reply", T, |s| s.webhooks.len() == 1)
        .await
        .unwrap();
    assert_eq!(snap.webhooks[0].body["text"]["content"], "http: over http");
    // DingTalk's resend: answered, not handled again.
    let answer = signed(
        body.clone().into(),
        ts,
        dingtalk_core::webhook::sign(&secret, ts),
    )
    .await
    .unwrap();
    assert_eq!(answer.status(), 200);
    // Refused before any handler: a body over the limit, a forged sign, a stale timestamp.
    let big = signed(
        vec![b' '; (1 << 20) + 1],
        ts,
        dingtalk_core::webhook::sign(&secret, ts),
    )
    .await
    .unwrap();
    assert_eq!(big.status(), 413, "{adapter}");
    let forged = signed(body.clone().into(), ts, "bm90IHRoZSBzaWdu".into())
        .await
        .unwrap();
    assert_eq!(forged.status(), 401);
    let old = ts - 3_700_000;
    let stale = signed(
        body.clone().into(),
        old,
        dingtalk_core::webhook::sign(&secret, old),
    )
    .await
    .unwrap();
    assert_eq!(stale.status(), 401);
    // Not a callback path, not a POST.
    assert_eq!(
        http.get(format!("{base}/robot"))
            .send()
            .await
            .unwrap()
            .status(),
        405
    );
    assert_eq!(
        http.post(format!("{base}/other"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );

    // Event subscription: decrypted, handled, answered with the encrypted `success`.
    let crypto = EventCrypto::new("tok", KEY, &id).unwrap();
    let ts = dingtalk_driver::unix_ms().to_string();
    let plain = json!({"EventType": "user_add_org", "EventId": "ev-1", "CorpId": "ding1", "UserId": ["u1"]});
    let sealed = crypto.encrypt(&plain.to_string(), &ts, "nonce1", *b"0123456789abcdef");
    let answer = http
        .post(format!(
            "{base}/events?msg_signature={}&timestamp={ts}&nonce=nonce1",
            sealed.msg_signature
        ))
        .body(json!({"encrypt": sealed.encrypt}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200, "{adapter}");
    let v: Value = serde_json::from_slice(&answer.bytes().await.unwrap()).unwrap();
    let success = crypto
        .decrypt(
            v["msg_signature"].as_str().unwrap(),
            v["timeStamp"].as_str().unwrap(),
            v["nonce"].as_str().unwrap(),
            v["encrypt"].as_str().unwrap(),
        )
        .unwrap();
    assert_eq!(success, "success");
    assert_eq!(
        counts.events.load(Ordering::SeqCst),
        1,
        "handled before the answer"
    );
    assert_eq!(
        counts.bot.load(Ordering::SeqCst),
        1,
        "{adapter}: the robot message once"
    );

    // The client's stop ends the server: it returns, and no connection is accepted any more.
    stop.stop();
    tokio::task::spawn_blocking(move || server.join().unwrap().unwrap())
        .await
        .unwrap();
    assert!(
        http.post(format!("{base}/robot")).send().await.is_err(),
        "{adapter}: still serving"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_std_http_callbacks() {
    callbacks("async-std").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocking_http_callbacks() {
    callbacks("blocking").await;
}
