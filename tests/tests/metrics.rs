//! Metrics through the `metrics` facade, from every adapter: a recorder installed by the
//! application sees frames by topic, handler outcomes and durations, duplicates, reconnects,
//! the open-connection gauge and the OpenAPI usage counter, each labelled with the app.
//! (One recorder per process: each test uses its own app id and reads only its own series.)
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests abort on failure

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use dingtalk_sim::{Chat, Sim, SimConfig};
use dingtalk_tests::{BotSpec, Harness};
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};

const T: Duration = Duration::from_secs(15);
const BOT: &str = "/v1.0/im/bot/messages/get";

fn snapshotter() -> &'static Snapshotter {
    static S: OnceLock<Snapshotter> = OnceLock::new();
    S.get_or_init(|| {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        recorder
            .install()
            .expect("the only recorder of this test binary");
        snapshotter
    })
}

/// Series seen so far: the snapshotter hands out counter increments since its last snapshot
/// (and tests share it), so every snapshot is added up here.
type Series = std::collections::HashMap<(String, Vec<(String, String)>), f64>;

fn seen() -> &'static std::sync::Mutex<Series> {
    static SEEN: OnceLock<std::sync::Mutex<Series>> = OnceLock::new();
    SEEN.get_or_init(Default::default)
}

/// The value of the series `name` with exactly these labels (counters summed, gauges as last
/// set, histograms as their number of samples).
fn value(name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let mut seen = seen().lock().unwrap();
    for (key, _, _, v) in snapshotter().snapshot().into_vec() {
        let key = key.key();
        let mut l: Vec<(String, String)> = key
            .labels()
            .map(|l| (l.key().to_owned(), l.value().to_owned()))
            .collect();
        l.sort();
        let entry = seen.entry((key.name().to_owned(), l)).or_insert(0.0);
        match v {
            DebugValue::Counter(c) => *entry += c as f64,
            DebugValue::Gauge(g) => *entry = g.into_inner(),
            DebugValue::Histogram(h) => *entry += h.len() as f64,
        }
    }
    let mut want: Vec<(String, String)> = labels
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    want.sort();
    seen.get(&(name.to_owned(), want)).copied()
}

async fn metrics_of(h: &dyn Harness, app: &str) {
    snapshotter();
    let sim = Sim::start(SimConfig {
        client_id: app.into(),
        client_secret: format!("{app}-secret"),
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let (id, secret) = sim.credentials();
    let spec = Arc::new(BotSpec {
        call_api: true,
        ..BotSpec::default()
    });
    let bot = h.start(
        &sim.control(),
        dingtalk_core::Credentials::new(id, secret),
        spec.clone(),
    );
    sim.wait_connections(1, T).await.unwrap();
    for i in 0..3 {
        let id = sim.bot_text(&format!("hello {i}"), Chat::Private);
        sim.wait_ack(&id, T).await.unwrap();
    }
    // A duplicate delivery, then a TCP reset and a reconnect.
    let first = sim.snapshot().sent[0].message_id.clone();
    sim.push_frame_with_id("CALLBACK", BOT, &first, "{}");
    sim.wait_for("the duplicate's ack", T, |s| s.acks_for(&first).len() >= 2)
        .await
        .unwrap();
    sim.wait_for("three replies", T, |s| s.webhooks.len() >= 3)
        .await
        .unwrap();
    sim.close_abruptly().unwrap();
    sim.wait_for("a reconnect", T, |s| {
        s.conns.len() >= 2 && s.open_conns() == 1
    })
    .await
    .unwrap();
    bot.stop();
    bot.join().await.unwrap();

    let who = h.name();
    let app_label = [("app", app)];
    assert_eq!(
        value("dingtalk_frames_total", &[("app", app), ("topic", BOT)]),
        Some(3.0),
        "{who}"
    );
    assert_eq!(
        value(
            "dingtalk_handler_outcomes_total",
            &[("app", app), ("topic", BOT), ("outcome", "ok")]
        ),
        Some(3.0),
        "{who}"
    );
    assert_eq!(
        value("dingtalk_handler_seconds", &[("app", app), ("topic", BOT)]),
        Some(3.0),
        "{who}: one duration per call"
    );
    assert_eq!(
        value("dingtalk_duplicates_total", &app_label),
        Some(1.0),
        "{who}"
    );
    assert_eq!(
        value(
            "dingtalk_reconnects_total",
            &[("app", app), ("reason", "lost")]
        ),
        Some(1.0),
        "{who}"
    );
    assert!(value("dingtalk_connections", &app_label).is_some(), "{who}");
    assert_eq!(
        value(
            "dingtalk_api_calls_total",
            &[
                ("app", app),
                ("endpoint", "/v1.0/robot/groupMessages/send"),
                ("result", "ok")
            ]
        ),
        Some(3.0),
        "{who}: the usage counter"
    );
    assert_eq!(
        value(
            "dingtalk_api_calls_total",
            &[("app", app), ("endpoint", "webhook"), ("result", "ok")]
        ),
        Some(3.0),
        "{who}: replies count, without their URL"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokio_metrics() {
    metrics_of(
        &dingtalk_tests::tokio_harness::TokioHarness,
        "metrics-tokio",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_std_metrics() {
    metrics_of(
        &dingtalk_tests::async_std_harness::AsyncStdHarness(
            dingtalk_tests::async_std_harness::Executor::AsyncStd,
        ),
        "metrics-async-std",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocking_metrics() {
    metrics_of(
        &dingtalk_tests::blocking_harness::BlockingHarness,
        "metrics-blocking",
    )
    .await;
}
