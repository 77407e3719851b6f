//! What a client tells the application about its connections, on every adapter: the
//! lifecycle hook sees connected, draining, disconnected, reconnecting and stopped in order;
//! `is_connected` and `wait_connected` follow the connections.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests abort on failure

use std::sync::{Arc, Mutex};
use std::time::Duration;

use dingtalk_core::{Credentials, Endpoints, StreamConfig};
use dingtalk_driver::Lifecycle;
use dingtalk_driver::runtime::Runtime;
use dingtalk_sim::{Sim, SimConfig};

const T: Duration = Duration::from_secs(15);

type Events = Arc<Mutex<Vec<&'static str>>>;

fn hook(events: &Events) -> impl Fn(&Lifecycle<'_>) + Send + Sync + 'static {
    let events = events.clone();
    move |change| {
        let name = match change {
            Lifecycle::Connected { .. } => "connected",
            Lifecycle::Draining { .. } => "draining",
            Lifecycle::Disconnected { .. } => "disconnected",
            Lifecycle::OpenFailed { .. } => "open failed",
            Lifecycle::Reconnecting { .. } => "reconnecting",
            Lifecycle::Stopped => "stopped",
            _ => "other",
        };
        events.lock().unwrap().push(name);
    }
}

fn fast(c: &mut StreamConfig) {
    c.backoff_base = Duration::from_millis(100);
    c.backoff_jitter = Duration::from_millis(10);
}

async fn sim() -> Sim {
    Sim::start(SimConfig {
        disconnect_grace: Duration::from_millis(300),
        ..SimConfig::default()
    })
    .await
    .unwrap()
}

/// The faults: a `disconnect`, then a TCP reset.
async fn drive(sim: &Sim, events: &Events, is_connected: impl Fn() -> bool) {
    assert!(is_connected());
    assert_eq!(*events.lock().unwrap(), vec!["connected"]);
    sim.wait_connections(1, T).await.unwrap();
    // DingTalk asks for a new connection: the old one drains, the new one connects.
    sim.disconnect().unwrap();
    sim.wait_for("the replacement", T, |s| {
        s.conns.len() >= 2 && s.open_conns() >= 1
    })
    .await
    .unwrap();
    sim.wait_for("the drained connection gone", T, |s| s.open_conns() == 1)
        .await
        .unwrap();
    // A TCP reset: lost, then a reconnect.
    sim.close_abruptly().unwrap();
    sim.wait_for("a third connection", T, |s| {
        s.conns.len() >= 3 && s.open_conns() == 1
    })
    .await
    .unwrap();
}

fn check(events: &Events) {
    let seen = events.lock().unwrap().clone();
    let pos = |name: &str, from: usize| {
        seen.iter()
            .skip(from)
            .position(|e| *e == name)
            .map(|p| p + from)
            .unwrap_or_else(|| panic!("no `{name}` after {from} in {seen:?}"))
    };
    let draining = pos("draining", 1);
    let second = pos("connected", draining);
    let lost = pos("disconnected", second);
    let reconnecting = pos("reconnecting", lost);
    let third = pos("connected", reconnecting);
    assert_eq!(seen.last(), Some(&"stopped"), "{seen:?}");
    assert!(third < seen.len() - 1);
}

async fn async_lifecycle<R: Runtime>(
    block_on: fn(dingtalk_driver::Client<R>) -> Result<(), dingtalk_driver::Error>,
) {
    let sim = sim().await;
    let (id, secret) = sim.credentials();
    let events = Events::default();
    let client = dingtalk_driver::Client::<R>::builder(Credentials::new(id, secret))
        .endpoints(Endpoints::single(sim.base_url()))
        .configure(fast)
        .on_lifecycle(hook(&events))
        .on_bot_message(|_ctx| async { Ok::<(), dingtalk_driver::HandlerError>(()) })
        .build()
        .unwrap();
    assert!(!client.is_connected());
    let running = std::thread::spawn({
        let client = client.clone();
        move || block_on(client)
    });
    assert!(
        tokio::time::timeout(T, client.wait_connected())
            .await
            .unwrap(),
        "wait_connected resolves once connected"
    );
    drive(&sim, &events, || client.is_connected()).await;
    assert!(
        tokio::time::timeout(T, client.wait_connected())
            .await
            .unwrap()
    );
    client.stop_handle().stop();
    running.join().unwrap().unwrap();
    check(&events);
    assert!(!client.is_connected());
    assert!(
        !client.wait_connected().await,
        "the run ended: false at once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokio_lifecycle() {
    async_lifecycle::<dingtalk_driver::runtime::Tokio>(|c| {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(c.run())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_std_lifecycle() {
    async_lifecycle::<dingtalk_driver::runtime::AsyncIo>(|c| async_std::task::block_on(c.run()))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocking_lifecycle() {
    let sim = sim().await;
    let (id, secret) = sim.credentials();
    let events = Events::default();
    let client = dingtalk_blocking::Client::builder(Credentials::new(id, secret))
        .endpoints(Endpoints::single(sim.base_url()))
        .configure(fast)
        .on_lifecycle(hook(&events))
        .on_bot_message(|_ctx| Ok::<(), dingtalk_blocking::HandlerError>(()))
        .build()
        .unwrap();
    assert!(!client.is_connected());
    let running = std::thread::spawn({
        let client = client.clone();
        move || client.run()
    });
    let c = client.clone();
    assert!(
        tokio::task::spawn_blocking(move || c.wait_connected(T))
            .await
            .unwrap()
    );
    drive(&sim, &events, || client.is_connected()).await;
    let c = client.clone();
    assert!(
        tokio::task::spawn_blocking(move || c.wait_connected(T))
            .await
            .unwrap()
    );
    client.stop_handle().stop();
    running.join().unwrap().unwrap();
    check(&events);
    assert!(!client.is_connected());
    assert!(!client.wait_connected(Duration::from_millis(1)));
}

/// A hook that panics does not take the client down: frames are still acked, and `run` ends
/// with `Ok` when stopped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_hook_is_contained() {
    let sim = sim().await;
    let (id, secret) = sim.credentials();
    let client = dingtalk_tokio::Client::builder(Credentials::new(id, secret))
        .endpoints(Endpoints::single(sim.base_url()))
        .on_lifecycle(|_change| panic!("the hook panics on purpose"))
        .on_bot_message(|_ctx| async { Ok::<(), dingtalk_tokio::HandlerError>(()) })
        .build()
        .unwrap();
    let running = tokio::spawn({
        let client = client.clone();
        async move { client.run().await }
    });
    sim.wait_connections(1, T).await.unwrap();
    let msg = sim.bot_text("still here", dingtalk_sim::Chat::Private);
    assert_eq!(sim.wait_ack(&msg, T).await.unwrap().code, 200);
    client.stop_handle().stop();
    running.await.unwrap().unwrap();
}
