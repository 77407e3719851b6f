//! HTTP keep-alive: every adapter's API client reuses its connections, so N calls use at most as
//! many TCP connections as calls are in flight at once, never one per call: 50 sequential calls
//! use one connection (two at most), and two rounds of 32 parallel calls reuse the second round's.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests abort on failure

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::routing::post;
use axum::serve::ListenerExt;
use dingtalk_core::webhook::{Message, SessionWebhookSend};
use dingtalk_core::{Credentials, Endpoints};

/// A webhook host that counts the TCP connections it accepted; its base URL.
async fn counting_server(conns: Arc<AtomicUsize>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let app = Router::new().route(
        "/robot/sendBySession",
        // Reads the body, as a real server does (hyper closes a connection whose request body
        // the handler left unread).
        post(|_body: axum::body::Bytes| async {
            axum::Json(serde_json::json!({"errcode": 0, "errmsg": "ok"}))
        }),
    );
    let listener = listener.tap_io(move |_| {
        conns.fetch_add(1, Ordering::SeqCst);
    });
    tokio::spawn(async move { axum::serve(listener, app).await });
    base
}

fn reply(base: &str, i: usize) -> SessionWebhookSend {
    SessionWebhookSend {
        url: format!("{base}/robot/sendBySession?session=s{i}"),
        expires_at_ms: None,
        now_ms: 0,
        message: Message::text("ok"),
    }
}

fn creds() -> Credentials {
    Credentials::new("keepalive-id", "keepalive-secret")
}

const SEQUENTIAL: usize = 50;
const PARALLEL: usize = 32;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokio_api_client_reuses_connections() {
    let conns = Arc::new(AtomicUsize::new(0));
    let base = counting_server(conns.clone()).await;
    let api = dingtalk_tokio::ApiClient::new(creds(), Endpoints::single(&base)).unwrap();
    for i in 0..SEQUENTIAL {
        api.call(&reply(&base, i)).await.unwrap();
    }
    // One connection, or two where the pool had not taken the first back yet (hyper returns a
    // connection to its pool asynchronously); never one per call.
    let sequential = conns.load(Ordering::SeqCst);
    assert!(
        sequential <= 2,
        "{sequential} connections for {SEQUENTIAL} calls"
    );
    for _round in 0..2 {
        let calls: Vec<_> = (0..PARALLEL)
            .map(|i| {
                let api = api.clone();
                let call = reply(&base, i);
                tokio::spawn(async move { api.call(&call).await })
            })
            .collect();
        for c in calls {
            c.await.unwrap().unwrap();
        }
    }
    let total = conns.load(Ordering::SeqCst);
    assert!(
        total <= PARALLEL + sequential,
        "{total} connections for two rounds of {PARALLEL} parallel calls"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_io_api_client_reuses_connections() {
    let conns = Arc::new(AtomicUsize::new(0));
    let base = counting_server(conns.clone()).await;
    let api = dingtalk_async_std::ApiClient::new(creds(), Endpoints::single(&base)).unwrap();
    let b = base.clone();
    let a = api.clone();
    std::thread::spawn(move || {
        futures_lite_block_on(async move {
            for i in 0..SEQUENTIAL {
                a.call(&reply(&b, i)).await.unwrap();
            }
        })
    })
    .join()
    .unwrap();
    // One connection, or two where the pool had not taken the first back yet (hyper returns a
    // connection to its pool asynchronously); never one per call.
    let sequential = conns.load(Ordering::SeqCst);
    assert!(
        sequential <= 2,
        "{sequential} connections for {SEQUENTIAL} calls"
    );
    let b = base.clone();
    std::thread::spawn(move || {
        futures_lite_block_on(async move {
            for _round in 0..2 {
                let calls = (0..PARALLEL).map(|i| {
                    let api = api.clone();
                    let call = reply(&b, i);
                    async move { api.call(&call).await }
                });
                for r in futures_util::future::join_all(calls).await {
                    r.unwrap();
                }
            }
        })
    })
    .join()
    .unwrap();
    let total = conns.load(Ordering::SeqCst);
    assert!(
        total <= PARALLEL + sequential,
        "{total} connections for two rounds of {PARALLEL} parallel calls"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocking_api_client_reuses_connections() {
    let conns = Arc::new(AtomicUsize::new(0));
    let base = counting_server(conns.clone()).await;
    let api = dingtalk_blocking::ApiClient::new(creds(), Endpoints::single(&base)).unwrap();
    let (a, b) = (api.clone(), base.clone());
    tokio::task::spawn_blocking(move || {
        for i in 0..SEQUENTIAL {
            a.call(&reply(&b, i)).unwrap();
        }
    })
    .await
    .unwrap();
    // One connection, or two where the pool had not taken the first back yet (hyper returns a
    // connection to its pool asynchronously); never one per call.
    let sequential = conns.load(Ordering::SeqCst);
    assert!(
        sequential <= 2,
        "{sequential} connections for {SEQUENTIAL} calls"
    );
    for _round in 0..2 {
        let threads: Vec<_> = (0..PARALLEL)
            .map(|i| {
                let (api, call) = (api.clone(), reply(&base, i));
                std::thread::spawn(move || api.call(&call))
            })
            .collect();
        let results = tokio::task::spawn_blocking(move || {
            threads
                .into_iter()
                .map(|t| t.join().unwrap())
                .collect::<Vec<_>>()
        })
        .await
        .unwrap();
        for r in results {
            r.unwrap();
        }
    }
    let total = conns.load(Ordering::SeqCst);
    assert!(
        total <= PARALLEL + sequential,
        "{total} connections for two rounds of {PARALLEL} parallel calls"
    );
}

fn futures_lite_block_on<F: std::future::Future>(f: F) -> F::Output {
    smol::block_on(f)
}
