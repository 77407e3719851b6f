//! Behaviour the driver promises on every runtime: no redirect is followed, transport errors
//! carry no URL (tokens and session webhooks live in URLs), an unreadable bot message reaches the
//! handler as a typed error instead of a crash, a client runs once at a time, unusable
//! configuration fails at once, a handler that finishes when first polled costs no spawn, and a
//! lightly loaded driver tells its handlers it has time for deferred work (and only them, even
//! when its poll unwinds).
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests abort on failure

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::routing::post;
use dingtalk_core::error::ClientError;
use dingtalk_core::webhook::{Message, SessionWebhookSend};
use dingtalk_core::{Credentials, Endpoints, ErrorKind, Frame, FrameType, Headers, Outcome, topic};

/// A webhook host whose webhook answers `307` (method kept) to `/elsewhere`, which counts its hits.
async fn redirecting_server(elsewhere: Arc<AtomicUsize>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let app = Router::new()
        .route(
            "/robot/sendBySession",
            post(|_body: axum::body::Bytes| async {
                (
                    axum::http::StatusCode::TEMPORARY_REDIRECT,
                    [(axum::http::header::LOCATION, "/elsewhere")],
                )
            }),
        )
        .route(
            "/file",
            axum::routing::get(|| async {
                (
                    axum::http::StatusCode::TEMPORARY_REDIRECT,
                    [(axum::http::header::LOCATION, "/elsewhere")],
                )
            }),
        )
        .route(
            "/elsewhere",
            axum::routing::any(move || {
                let elsewhere = elsewhere.clone();
                async move {
                    elsewhere.fetch_add(1, Ordering::SeqCst);
                    axum::Json(serde_json::json!({"errcode": 0, "errmsg": "ok"}))
                }
            }),
        );
    tokio::spawn(async move { axum::serve(listener, app).await });
    base
}

fn reply(url: String) -> SessionWebhookSend {
    SessionWebhookSend {
        url,
        expires_at_ms: None,
        now_ms: 0,
        message: Message::text("ok"),
    }
}

fn creds() -> Credentials {
    Credentials::new("behaviour-id", "behaviour-secret")
}

/// A URL nobody listens on, full of secrets.
fn secret_url() -> String {
    // Port 9 (discard) on loopback: refused.
    "http://127.0.0.1:9/robot/sendBySession?session=SECRET-SESSION&access_token=SECRET-TOKEN"
        .to_owned()
}

fn assert_no_secret(e: &ClientError) {
    let text = format!("{e} {e:?}");
    for secret in ["SECRET-SESSION", "SECRET-TOKEN", "/robot/sendBySession"] {
        assert!(!text.contains(secret), "`{secret}` in {text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirects_are_not_followed_on_any_runtime() {
    let elsewhere = Arc::new(AtomicUsize::new(0));
    let base = redirecting_server(elsewhere.clone()).await;
    let url = format!("{base}/robot/sendBySession?session=s");
    let file = format!("{base}/file");
    let tokio_api = dingtalk_tokio::ApiClient::new(creds(), Endpoints::single(&base)).unwrap();
    assert!(tokio_api.call(&reply(url.clone())).await.is_err());
    assert!(tokio_api.get_bytes(&file).await.is_err());
    let blocking_api =
        dingtalk_blocking::ApiClient::new(creds(), Endpoints::single(&base)).unwrap();
    let (u, f) = (url.clone(), file.clone());
    let blocking = tokio::task::spawn_blocking(move || {
        (blocking_api.call(&reply(u)), blocking_api.get_bytes(&f))
    })
    .await
    .unwrap();
    assert!(blocking.0.is_err() && blocking.1.is_err());
    let async_api = dingtalk_async_std::ApiClient::new(creds(), Endpoints::single(&base)).unwrap();
    let async_io = std::thread::spawn(move || {
        smol::block_on(async move {
            (
                async_api.call(&reply(url)).await,
                async_api.get_bytes(&file).await,
            )
        })
    })
    .join()
    .unwrap();
    assert!(async_io.0.is_err() && async_io.1.is_err());
    assert_eq!(
        elsewhere.load(Ordering::SeqCst),
        0,
        "a redirect was followed"
    );
}

/// A download, like every request, goes out over TLS only: plain http to a remote host is a
/// typed error before anything is sent, on every adapter.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_downloads_are_refused_before_sending() {
    let url = "http://files.example/download?token=SECRET-TOKEN";
    let validation = |e: &ClientError| {
        assert!(
            matches!(e, ClientError::Api(a) if a.kind == ErrorKind::Validation),
            "{e:?}"
        );
        assert_no_secret(e);
    };
    let tokio_api = dingtalk_tokio::ApiClient::new(creds(), Endpoints::default()).unwrap();
    validation(&tokio_api.get_bytes(url).await.unwrap_err());
    let blocking_api = dingtalk_blocking::ApiClient::new(creds(), Endpoints::default()).unwrap();
    let e = tokio::task::spawn_blocking(move || blocking_api.get_bytes(url))
        .await
        .unwrap()
        .unwrap_err();
    validation(&e);
    let async_api = dingtalk_async_std::ApiClient::new(creds(), Endpoints::default()).unwrap();
    validation(&smol::block_on(async_api.get_bytes(url)).unwrap_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transport_errors_carry_no_url() {
    let tokio_api = dingtalk_tokio::ApiClient::new(creds(), Endpoints::default()).unwrap();
    let e = tokio_api.call(&reply(secret_url())).await.unwrap_err();
    assert!(matches!(e, ClientError::Transport(_)), "{e:?}");
    assert_no_secret(&e);
    let blocking_api = dingtalk_blocking::ApiClient::new(creds(), Endpoints::default()).unwrap();
    let e = tokio::task::spawn_blocking(move || blocking_api.call(&reply(secret_url())))
        .await
        .unwrap()
        .unwrap_err();
    assert!(matches!(e, ClientError::Transport(_)), "{e:?}");
    assert_no_secret(&e);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_bot_message_is_a_typed_failure_not_a_crash() {
    let seen = Arc::new(AtomicUsize::new(0));
    let s = seen.clone();
    let client = dingtalk_tokio::Client::builder(creds())
        .on_bot_message(move |ctx| {
            let s = s.clone();
            async move {
                s.fetch_add(1, Ordering::SeqCst);
                assert!(
                    !format!("{ctx:?}").contains("not JSON"),
                    "Debug shows the data"
                );
                assert!(ctx.parse_error().is_some());
                assert_eq!(ctx.text(), None);
                let e = ctx.reply_text("hi").await.unwrap_err();
                assert_eq!(e.api_error().map(|a| a.kind), Some(ErrorKind::Validation));
                Ok::<(), dingtalk_tokio::HandlerError>(())
            }
        })
        .build()
        .unwrap();
    let frame = Frame::new(
        FrameType::Callback,
        Headers {
            topic: topic::BOT_MESSAGE.into(),
            message_id: "bad-1".into(),
            ..Headers::default()
        },
        "this is not JSON",
    );
    let outcome = client.dispatch(frame).unwrap().await;
    assert_eq!(seen.load(Ordering::SeqCst), 1);
    assert!(
        matches!(&outcome, Outcome::Failed(why) if why.starts_with("invalid bot message")),
        "{outcome:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_runs_once_at_a_time() {
    // A gateway that never answers keeps the first run busy.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((tcp, _)) = listener.accept().await {
            held.push(tcp);
        }
    });
    let client = dingtalk_tokio::Client::builder(creds())
        .endpoints(Endpoints::single(&base))
        .on_bot_message(|_ctx| async { Ok::<(), dingtalk_tokio::HandlerError>(()) })
        .build()
        .unwrap();
    let run = |client: dingtalk_tokio::Client| tokio::spawn(async move { client.run().await });
    let mut one = run(client.clone());
    let mut two = run(client.clone());
    // Neither run can end on its own (the gateway never answers, nobody stopped them), so the
    // first to end is the refused one.
    let (refused, other) = tokio::select! {
        r = &mut one => (r.unwrap(), two),
        r = &mut two => (r.unwrap(), one),
    };
    assert!(
        matches!(refused, Err(dingtalk_tokio::Error::Config(_))),
        "{refused:?}"
    );
    client.stop_handle().stop();
    other.await.unwrap().unwrap();
}

/// Endpoints that cannot be sent to (no scheme; plain http to a remote host) and credentials
/// with stray whitespace are refused when the client is built, on every adapter; a client built
/// around the check fails each call at once instead of waiting for a token forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unusable_configuration_is_a_typed_error_at_once() {
    use dingtalk_driver::Error;
    for endpoints in [
        Endpoints::single("api.dingtalk.com"),
        Endpoints::single("http://api.dingtalk.com"),
    ] {
        let e = dingtalk_tokio::ApiClient::new(creds(), endpoints.clone()).unwrap_err();
        assert!(matches!(e, Error::Config(_)), "{e:?}");
        let e = dingtalk_async_std::ApiClient::new(creds(), endpoints.clone()).unwrap_err();
        assert!(matches!(e, Error::Config(_)), "{e:?}");
        let e = dingtalk_blocking::ApiClient::new(creds(), endpoints.clone()).unwrap_err();
        assert!(matches!(e, Error::Config(_)), "{e:?}");
        let built = dingtalk_tokio::Client::builder(creds())
            .endpoints(endpoints.clone())
            .build();
        assert!(matches!(built, Err(Error::Config(_))));
        let built = dingtalk_async_std::Client::builder(creds())
            .endpoints(endpoints.clone())
            .build();
        assert!(matches!(built, Err(Error::Config(_))));
        let built = dingtalk_blocking::Client::builder(creds())
            .endpoints(endpoints)
            .build();
        assert!(matches!(built, Err(Error::Config(_))));
    }
    let padded = Credentials::new("behaviour-id", "behaviour-secret ");
    let e = dingtalk_blocking::ApiClient::new(padded, Endpoints::default()).unwrap_err();
    assert!(matches!(e, Error::Config(_)), "{e:?}");

    // Around the check: the token call fails with a typed error, now, every time.
    let http = <dingtalk_driver::runtime::Reqwest as dingtalk_driver::runtime::HttpClient>::new(
        &dingtalk_driver::runtime::HttpSettings::new(
            dingtalk_driver::default_tls_config().unwrap(),
            std::time::Duration::from_secs(5),
        ),
    )
    .unwrap();
    let api = dingtalk_driver::ApiClient::with_http(
        http,
        creds(),
        Endpoints::single("api.dingtalk.com"),
        dingtalk_driver::RetryPolicy::default(),
    );
    for _ in 0..2 {
        let e = tokio::time::timeout(std::time::Duration::from_secs(30), api.token())
            .await
            .expect("the token call hung")
            .unwrap_err();
        assert!(
            matches!(e, ClientError::Api(ref a) if a.kind == ErrorKind::Validation),
            "{e:?}"
        );
    }
}

/// Counts the handler calls the driver hands to the runtime (tokio underneath).
static SPAWNS: AtomicUsize = AtomicUsize::new(0);

#[derive(Debug, Clone, Copy, Default)]
struct CountingTokio;

impl dingtalk_driver::runtime::Runtime for CountingTokio {
    type WebSocket =
        <dingtalk_driver::runtime::Tokio as dingtalk_driver::runtime::Runtime>::WebSocket;
    type Timer = <dingtalk_driver::runtime::Tokio as dingtalk_driver::runtime::Runtime>::Timer;
    type Http = dingtalk_driver::runtime::Reqwest;

    fn connect(
        &self,
        uri: &http::Uri,
        options: &dingtalk_driver::runtime::ConnectOptions,
    ) -> dingtalk_driver::runtime::BoxFuture<'static, Result<Self::WebSocket, String>> {
        dingtalk_driver::runtime::Tokio.connect(uri, options)
    }

    fn timer(&self, at: std::time::Instant) -> Self::Timer {
        dingtalk_driver::runtime::Tokio.timer(at)
    }

    fn spawn(
        &self,
        task: dingtalk_driver::runtime::BoxFuture<'static, ()>,
    ) -> Option<dingtalk_driver::runtime::BoxFuture<'static, ()>> {
        SPAWNS.fetch_add(1, Ordering::SeqCst);
        dingtalk_driver::runtime::Tokio.spawn(task)
    }
}

/// A handler that finishes when first polled costs no spawn; one that waits is handed to the
/// runtime, once per call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_that_finishes_at_once_is_never_spawned() {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let (sim, stop, run) = run_on_sim::<CountingTokio>(|builder| {
        builder.on_bot_message(move |ctx| {
            let tx = tx.clone();
            async move {
                if ctx.text() == Some("wait") {
                    tokio::task::yield_now().await; // pending once: not finished at once
                }
                let _ = tx.send(());
                Ok::<(), dingtalk_driver::HandlerError>(())
            }
        })
    })
    .await;
    for _ in 0..50 {
        sim.bot_text("now", dingtalk_sim::Chat::Private);
    }
    handler_calls(50, &mut rx).await;
    assert_eq!(
        SPAWNS.load(Ordering::SeqCst),
        0,
        "a finished handler was spawned"
    );
    for _ in 0..10 {
        sim.bot_text("wait", dingtalk_sim::Chat::Private);
    }
    handler_calls(10, &mut rx).await;
    assert_eq!(SPAWNS.load(Ordering::SeqCst), 10);
    stop.stop();
    run.await.unwrap().unwrap();
}

/// A handler called by a lightly loaded driver is told it may do deferred work on the driver's
/// thread (the blocking adapter parses the message there); outside a driver's poll it is not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lightly_loaded_driver_tells_its_handlers_it_has_time() {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<bool>();
    let (sim, stop, run) = run_on_sim::<dingtalk_driver::runtime::Tokio>(|builder| {
        builder.on_bot_message(move |_ctx| {
            // Read where the blocking adapter reads it: in the call, on the driver's thread.
            let _ = tx.send(dingtalk_driver::runtime::driver_has_time());
            async { Ok::<(), dingtalk_driver::HandlerError>(()) }
        })
    })
    .await;
    // One message at a time, each after the last was handled: a few a second. Once the driver
    // has judged a window of its load (100 ms), it has time.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        sim.bot_text("hi", dingtalk_sim::Chat::Private);
        let told = tokio::time::timeout(std::time::Duration::from_secs(15), rx.recv())
            .await
            .expect("the handler was not called within 15 s")
            .unwrap();
        if told {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "a driver reading a few messages a second never had time"
        );
    }
    assert!(
        !dingtalk_driver::runtime::driver_has_time(),
        "outside a driver's poll"
    );
    stop.stop();
    run.await.unwrap().unwrap();
}

/// Starts the emulator, builds a client for it (`setup` adds the handlers), runs it on a tokio
/// task and waits (at most 15 s) for its connection.
async fn run_on_sim<R: dingtalk_driver::runtime::Runtime>(
    setup: impl FnOnce(dingtalk_driver::ClientBuilder<R>) -> dingtalk_driver::ClientBuilder<R>,
) -> (
    dingtalk_sim::Sim,
    dingtalk_driver::StopHandle,
    tokio::task::JoinHandle<Result<(), dingtalk_driver::Error>>,
) {
    let sim = dingtalk_sim::Sim::start(dingtalk_sim::SimConfig::default())
        .await
        .unwrap();
    let (id, secret) = sim.credentials();
    let builder = dingtalk_driver::Client::<R>::builder(Credentials::new(id, secret))
        .endpoints(Endpoints::single(sim.base_url()));
    let client = setup(builder).build().unwrap();
    let stop = client.stop_handle();
    let run = tokio::spawn(async move { client.run().await });
    sim.wait_connections(1, std::time::Duration::from_secs(15))
        .await
        .unwrap();
    (sim, stop, run)
}

/// Set to make every [`PanickyTimer`] panic when polled.
static PANIC_TIMER: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// tokio's timer, which panics when polled once [`PANIC_TIMER`] is set: a stand-in for any
/// panic that unwinds out of the driver's poll.
struct PanickyTimer(<dingtalk_driver::runtime::Tokio as dingtalk_driver::runtime::Runtime>::Timer);

impl dingtalk_driver::runtime::Timer for PanickyTimer {
    fn reset(&mut self, at: std::time::Instant) {
        self.0.reset(at);
    }

    fn poll_elapsed(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        assert!(
            !PANIC_TIMER.load(Ordering::SeqCst),
            "the timer panics, as asked"
        );
        self.0.poll_elapsed(cx)
    }
}

/// tokio, with a timer that panics on demand.
#[derive(Debug, Clone, Copy, Default)]
struct PanickyTokio;

impl dingtalk_driver::runtime::Runtime for PanickyTokio {
    type WebSocket =
        <dingtalk_driver::runtime::Tokio as dingtalk_driver::runtime::Runtime>::WebSocket;
    type Timer = PanickyTimer;
    type Http = dingtalk_driver::runtime::Reqwest;

    fn connect(
        &self,
        uri: &http::Uri,
        options: &dingtalk_driver::runtime::ConnectOptions,
    ) -> dingtalk_driver::runtime::BoxFuture<'static, Result<Self::WebSocket, String>> {
        dingtalk_driver::runtime::Tokio.connect(uri, options)
    }

    fn timer(&self, at: std::time::Instant) -> Self::Timer {
        PanickyTimer(dingtalk_driver::runtime::Tokio.timer(at))
    }

    fn spawn(
        &self,
        task: dingtalk_driver::runtime::BoxFuture<'static, ()>,
    ) -> Option<dingtalk_driver::runtime::BoxFuture<'static, ()>> {
        dingtalk_driver::runtime::Tokio.spawn(task)
    }
}

/// A panic that unwinds out of a driver's poll while it has time does not leave the thread
/// saying so: code that runs on that thread later is not told it is inside a lightly loaded
/// driver.
#[test]
fn a_panic_out_of_the_drivers_poll_leaves_the_thread_without_time() {
    // The emulator runs on its own runtime's thread; the client runs on this one.
    let sim_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let sim = sim_rt
        .block_on(dingtalk_sim::Sim::start(dingtalk_sim::SimConfig::default()))
        .unwrap();
    let (id, secret) = sim.credentials();
    let client = dingtalk_driver::Client::<PanickyTokio>::builder(Credentials::new(id, secret))
        .endpoints(Endpoints::single(sim.base_url()))
        .on_bot_message(|_ctx| {
            if dingtalk_driver::runtime::driver_has_time() {
                PANIC_TIMER.store(true, Ordering::SeqCst);
            }
            async { Ok::<(), dingtalk_driver::HandlerError>(()) }
        })
        .build()
        .unwrap();
    let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let talk = async {
                sim.wait_connections(1, std::time::Duration::from_secs(15))
                    .await
                    .unwrap();
                // One message at a time until the driver has time (its handler then arms the
                // timer's panic); at most 15 s.
                let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
                while std::time::Instant::now() < deadline {
                    let id = sim.bot_text("hi", dingtalk_sim::Chat::Private);
                    let _ = sim.wait_ack(&id, std::time::Duration::from_secs(5)).await;
                }
            };
            tokio::select! {
                ran = client.run() => panic!("the client stopped: {ran:?}"),
                () = talk => panic!("the driver never had time (or never polled its timer)"),
            }
        })
    }));
    let message = panicked.expect_err("the driver's poll unwinds");
    assert_eq!(
        message
            .downcast_ref::<&str>()
            .copied()
            .or_else(|| message.downcast_ref::<String>().map(String::as_str)),
        Some("the timer panics, as asked")
    );
    assert!(
        !dingtalk_driver::runtime::driver_has_time(),
        "the thread still says a driver has time after the driver's poll unwound"
    );
}

/// Waits for `n` handler calls (at most 15 s).
async fn handler_calls(n: usize, rx: &mut tokio::sync::mpsc::UnboundedReceiver<()>) {
    let all = async {
        for _ in 0..n {
            rx.recv().await.unwrap();
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(15), all)
        .await
        .expect("the handler calls did not all come within 15 s");
}

/// `Client::stats` shows the session's counters and each connection: with two connections,
/// frames spread over both are counted on the one that read them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_count_frames_and_acks_per_connection() {
    let sim = dingtalk_sim::Sim::start(dingtalk_sim::SimConfig::default())
        .await
        .unwrap();
    let (id, secret) = sim.credentials();
    let client = dingtalk_tokio::Client::builder(Credentials::new(id, secret))
        .endpoints(Endpoints::single(sim.base_url()))
        .connections(2)
        .on_bot_message(|_ctx| async { Ok::<(), dingtalk_tokio::HandlerError>(()) })
        .build()
        .unwrap();
    assert!(client.stats().is_none(), "no run yet");
    let running = tokio::spawn({
        let client = client.clone();
        async move { client.run().await }
    });
    sim.wait_connections(2, std::time::Duration::from_secs(10))
        .await
        .unwrap();
    let ids: Vec<String> = (0..6)
        .map(|i| sim.bot_text(&format!("m{i}"), dingtalk_sim::Chat::Private))
        .collect();
    for id in &ids {
        sim.wait_ack(id, std::time::Duration::from_secs(10))
            .await
            .unwrap();
    }
    // The copy is at most 50 ms old; wait for it to show the six frames.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let stats = loop {
        let s = client.stats();
        if s.as_ref().is_some_and(|s| s.session.frames_received >= 6) {
            break s.unwrap();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "stats never caught up: {s:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    };
    assert_eq!(stats.connections.len(), 2);
    let mut slots: Vec<usize> = stats.connections.iter().map(|c| c.slot).collect();
    slots.sort_unstable();
    assert_eq!(slots, vec![0, 1]);
    for c in &stats.connections {
        assert_eq!(c.frames_received, 3, "{stats:?}");
        assert_eq!(c.acks_sent, 3, "{stats:?}");
    }
    assert_eq!(stats.session.acks_sent, 6);
    client.stop_handle().stop();
    running.await.unwrap().unwrap();
}
