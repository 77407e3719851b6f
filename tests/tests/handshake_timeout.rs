//! The WebSocket handshake honours the session's `connect_timeout`: a Stream endpoint that
//! accepts TCP and never answers the upgrade is given up after the configured time (not a fixed
//! 10 s), and a new ticket is asked for.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests abort on failure

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::routing::post;
use dingtalk_core::{Credentials, Endpoints};

/// A gateway whose Stream endpoint never completes a handshake; counts open requests.
async fn silent_gateway(opens: Arc<AtomicUsize>, notify: Arc<tokio::sync::Notify>) -> String {
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let ws_port = silent.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((tcp, _)) = silent.accept().await {
            held.push(tcp); // accepted, never answered
        }
    });
    let http = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", http.local_addr().unwrap());
    let app = Router::new().route(
        "/v1.0/gateway/connections/open",
        post(move |_body: axum::body::Bytes| {
            let (opens, notify) = (opens.clone(), notify.clone());
            async move {
                let n = opens.fetch_add(1, Ordering::SeqCst);
                notify.notify_waiters();
                axum::Json(serde_json::json!({
                    "endpoint": format!("ws://127.0.0.1:{ws_port}/connect"),
                    "ticket": format!("t{n}"),
                }))
            }
        }),
    );
    tokio::spawn(async move { axum::serve(http, app).await });
    base
}

/// Waits until the gateway saw `n` open requests; `false` after `within`.
async fn opens_reach(
    opens: &AtomicUsize,
    notify: &tokio::sync::Notify,
    n: usize,
    within: Duration,
) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let notified = notify.notified();
        if opens.load(Ordering::SeqCst) >= n {
            return true;
        }
        if tokio::time::timeout_at(deadline, notified).await.is_err() {
            return opens.load(Ordering::SeqCst) >= n;
        }
    }
}

fn configure(c: &mut dingtalk_core::StreamConfig) {
    c.connect_timeout = Duration::from_millis(300);
    c.backoff_base = Duration::from_millis(50);
    c.backoff_jitter = Duration::from_millis(10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokio_handshake_gives_up_at_the_connect_timeout() {
    let (opens, notify) = (
        Arc::new(AtomicUsize::new(0)),
        Arc::new(tokio::sync::Notify::new()),
    );
    let base = silent_gateway(opens.clone(), notify.clone()).await;
    let client = dingtalk_tokio::Client::builder(Credentials::new("id", "secret"))
        .endpoints(Endpoints::single(&base))
        .configure(configure)
        .on_bot_message(|_ctx| async { Ok::<(), dingtalk_tokio::HandlerError>(()) })
        .build()
        .unwrap();
    let stop = client.stop_handle();
    let run = tokio::spawn(async move { client.run().await });
    // A handshake held for the old fixed 10 s would not allow a third ticket within 5 s.
    assert!(
        opens_reach(&opens, &notify, 3, Duration::from_secs(5)).await,
        "only {} open requests: the handshake was not given up at connect_timeout",
        opens.load(Ordering::SeqCst)
    );
    stop.stop();
    run.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_io_handshake_gives_up_at_the_connect_timeout() {
    let (opens, notify) = (
        Arc::new(AtomicUsize::new(0)),
        Arc::new(tokio::sync::Notify::new()),
    );
    let base = silent_gateway(opens.clone(), notify.clone()).await;
    let client = dingtalk_blocking::Client::builder(Credentials::new("id", "secret"))
        .endpoints(Endpoints::single(&base))
        .configure(configure)
        .on_bot_message(|_ctx| Ok::<(), dingtalk_blocking::HandlerError>(()))
        .build()
        .unwrap();
    let stop = client.stop_handle();
    let run = std::thread::spawn(move || client.run());
    assert!(
        opens_reach(&opens, &notify, 3, Duration::from_secs(5)).await,
        "only {} open requests: the handshake was not given up at connect_timeout",
        opens.load(Ordering::SeqCst)
    );
    stop.stop();
    tokio::task::spawn_blocking(move || run.join().unwrap())
        .await
        .unwrap()
        .unwrap();
}
