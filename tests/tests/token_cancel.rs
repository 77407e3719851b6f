//! A caller dropped while it refreshes the access token (a timeout, a `select!`, a handler
//! cancelled on stop) hands the refresh to the next caller: later calls never wait forever.
//! Written once in the driver's API client; run here on tokio and on the async-io runtime.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests abort on failure

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::routing::post;
use dingtalk_core::{Credentials, Endpoints};

/// A token endpoint whose first answer never comes; later ones answer at once.
async fn stalling_token_server(calls: Arc<AtomicUsize>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let app = Router::new().route(
        "/v1.0/oauth2/accessToken",
        post(move |_body: axum::body::Bytes| {
            let calls = calls.clone();
            async move {
                if calls.fetch_add(1, Ordering::SeqCst) == 0 {
                    std::future::pending::<()>().await;
                }
                axum::Json(serde_json::json!({"accessToken": "fresh-token", "expireIn": 7200}))
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    base
}

fn creds() -> Credentials {
    Credentials::new("cancel-id", "cancel-secret")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokio_dropped_refresh_is_taken_over() {
    let calls = Arc::new(AtomicUsize::new(0));
    let base = stalling_token_server(calls.clone()).await;
    let api = dingtalk_tokio::ApiClient::new(creds(), Endpoints::single(&base)).unwrap();
    // The first refresh hangs; its caller gives up.
    let first = tokio::time::timeout(Duration::from_millis(200), api.token()).await;
    assert!(first.is_err(), "the first refresh should still be waiting");
    // The next caller takes the refresh over instead of waiting for the dropped one.
    let token = tokio::time::timeout(Duration::from_secs(5), api.token())
        .await
        .expect("a later caller must not wait forever")
        .unwrap();
    assert_eq!(token, "fresh-token");
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_io_dropped_refresh_is_taken_over() {
    let calls = Arc::new(AtomicUsize::new(0));
    let base = stalling_token_server(calls.clone()).await;
    let api = dingtalk_async_std::ApiClient::new(creds(), Endpoints::single(&base)).unwrap();
    let result = std::thread::spawn(move || {
        smol::block_on(async move {
            use futures_util::FutureExt;
            let first = futures_util::future::select(
                api.token().boxed(),
                async_io_timer(Duration::from_millis(200)).boxed(),
            )
            .await;
            assert!(
                matches!(first, futures_util::future::Either::Right(_)),
                "the first refresh should still be waiting"
            );
            // `select` hands the unfinished refresh back: drop it, as a timeout would.
            drop(first);
            match futures_util::future::select(
                api.token().boxed(),
                async_io_timer(Duration::from_secs(5)).boxed(),
            )
            .await
            {
                futures_util::future::Either::Left((token, _)) => Some(token),
                futures_util::future::Either::Right(_) => None,
            }
        })
    })
    .join()
    .unwrap();
    let token = result.expect("a later caller must not wait forever");
    assert_eq!(token.unwrap(), "fresh-token");
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

async fn async_io_timer(d: Duration) {
    smol::Timer::after(d).await;
}
