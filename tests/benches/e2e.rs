//! End-to-end throughput and ack latency of each adapter against the emulator, next to a
//! "floor": the smallest possible client on the same stack (a raw tokio-tungstenite loop that
//! only reads `messageId` and acks). Each client runs in its own process so its memory is its
//! own.
//!
//! Run: `cargo bench -p dingtalk-tests --bench e2e` (options: `-- --frames 20000 --window 64
//! --runs 3`).
#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout
)] // a report binary

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use dingtalk_core::Credentials;
use dingtalk_core::Endpoints;
use dingtalk_sim::{Chat, Sim, SimConfig};

const TARGETS: [&str; 5] = ["floor", "tokio", "tokio-1thread", "blocking", "async-std"];

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--child") {
        return child(&args[2], &args[3]);
    }
    let mut frames = 20_000usize;
    let mut window = 64usize;
    let mut runs = 3usize;
    let mut i = 1;
    while i < args.len() {
        match args[i].as_str() {
            "--frames" => frames = args[i + 1].parse().unwrap(),
            "--window" => window = args[i + 1].parse().unwrap(),
            "--runs" => runs = args[i + 1].parse().unwrap(),
            _ => {
                i += 1;
                continue;
            }
        }
        i += 2;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    println!(
        "end-to-end: {frames} bot messages (~1 KB) per run, at most {window} un-acked, {runs} runs per client, median reported\n"
    );
    let mut rows = Vec::new();
    for target in TARGETS {
        let mut results: Vec<Run> = (0..runs)
            .map(|_| rt.block_on(one_run(target, frames, window)))
            .collect();
        results.sort_by(|a, b| a.fps.total_cmp(&b.fps));
        rows.push((target, results[results.len() / 2].clone()));
    }
    let floor = rows[0].1.fps;
    println!(
        "{:<10} {:>10} {:>8} {:>9} {:>9} {:>11} {:>11} {:>13}",
        "client",
        "frames/s",
        "× floor",
        "p50 ack",
        "p99 ack",
        "peak RSS",
        "idle RSS",
        "disconnect→ready"
    );
    for (target, r) in &rows {
        let reconnect = r.reconnect.map_or("n/a".to_owned(), |d| {
            format!("{:.1} ms", d.as_secs_f64() * 1e3)
        });
        println!(
            "{:<10} {:>10.0} {:>7.2}× {:>7.0}µs {:>7.0}µs {:>8} kB {:>8} kB {:>13}",
            target,
            r.fps,
            r.fps / floor,
            r.p50.as_secs_f64() * 1e6,
            r.p99.as_secs_f64() * 1e6,
            r.peak_kb,
            r.idle_kb,
            reconnect
        );
    }
}

/// The client process dies with its run, even when the run panics.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[derive(Clone, Debug)]
struct Run {
    fps: f64,
    p50: Duration,
    p99: Duration,
    peak_kb: u64,
    idle_kb: u64,
    reconnect: Option<Duration>,
}

fn status_kb(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1).map(str::to_owned))
        })
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

async fn one_run(target: &str, n: usize, window: usize) -> Run {
    let sim = Sim::start(SimConfig {
        bench_mode: true,
        disconnect_grace: Duration::from_millis(200),
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let child: Child = Command::new(std::env::current_exe().unwrap())
        .args(["--child", target, &sim.base_url()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    let _child = KillOnDrop(child);
    sim.wait_connections(1, Duration::from_secs(20))
        .await
        .unwrap();
    // Frames are built before the clock starts.
    let frames: Vec<(String, String)> = (0..n)
        .map(|i| {
            let id = format!("load_{i}_{target}");
            let data = sim.bot_message_data("text", "benchmark message", Chat::Private).to_string();
            let text = serde_json::json!({
                "specVersion": "1.0", "type": "CALLBACK",
                "headers": {"appId": "sim-app", "connectionId": "sim", "contentType": "application/json",
                            "messageId": id, "time": "1700000000000", "topic": "/v1.0/im/bot/messages/get"},
                "data": data,
            })
            .to_string();
            (id, text)
        })
        .collect();
    // Idle memory of the connected client, after a moment with no traffic.
    let _ = sim
        .wait_for("a quiet moment", Duration::from_millis(300), |_| false)
        .await;
    let idle_kb = status_kb(pid, "VmRSS:");
    let report = sim
        .run_load(frames, window, Duration::from_secs(300))
        .await
        .unwrap();
    let peak_kb = status_kb(pid, "VmHWM:");
    let reconnect = if target == "floor" {
        None
    } else {
        let t = Instant::now();
        let old = sim.disconnect().unwrap();
        sim.wait_for("the replacement connection", Duration::from_secs(20), |s| {
            s.conns.iter().any(|c| c.id > old && c.open)
        })
        .await
        .unwrap();
        Some(t.elapsed())
    };
    assert!(
        sim.snapshot().violations.is_empty(),
        "{:?}",
        sim.snapshot().violations
    );
    Run {
        fps: report.frames_per_sec(),
        p50: report.latency(0.5),
        p99: report.latency(0.99),
        peak_kb,
        idle_kb,
        reconnect,
    }
}

// ---- the clients -------------------------------------------------------------------------

fn child(target: &str, base: &str) {
    let (id, secret) = (
        SimConfig::default().client_id,
        SimConfig::default().client_secret,
    );
    let creds = Credentials::new(id, secret);
    let endpoints = Endpoints::single(base);
    match target {
        "floor" => floor(base),
        "tokio" | "tokio-1thread" => {
            let rt = if target == "tokio" {
                tokio::runtime::Runtime::new().unwrap()
            } else {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap()
            };
            let client = dingtalk_tokio::Client::builder(creds)
                .endpoints(endpoints)
                .on_bot_message(|_ctx| async { Ok::<(), dingtalk_tokio::HandlerError>(()) })
                .build()
                .unwrap();
            rt.block_on(client.run()).unwrap();
        }
        "blocking" => {
            let client = dingtalk_blocking::Client::builder(creds)
                .endpoints(endpoints)
                .on_bot_message(|_ctx| Ok::<(), dingtalk_blocking::HandlerError>(()))
                .build()
                .unwrap();
            client.run().unwrap();
        }
        "async-std" => {
            let client = dingtalk_async_std::Client::builder(creds)
                .endpoints(endpoints)
                .on_bot_message(|_ctx| async { Ok::<(), dingtalk_async_std::HandlerError>(()) })
                .build()
                .unwrap();
            async_std::task::block_on(client.run()).unwrap();
        }
        other => panic!("unknown client {other}"),
    }
}

/// The floor: open a connection, then read frames and ack each with its `messageId`. Nothing
/// else: no dedup, no keepalive, no handler, no reconnect.
fn floor(base: &str) {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let cfg = SimConfig::default();
    let body = serde_json::json!({
        "clientId": cfg.client_id, "clientSecret": cfg.client_secret,
        "subscriptions": [{"type": "CALLBACK", "topic": "/v1.0/im/bot/messages/get"}], "ua": "floor",
    });
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let request = http::Request::post(format!("{base}/v1.0/gateway/connections/open"))
        .header("content-type", "application/json")
        .header("accept", "application/json")
        .body(body.to_string().into_bytes())
        .unwrap();
    let mut response = agent.run(request).unwrap();
    let open: serde_json::Value =
        serde_json::from_slice(&response.body_mut().read_to_vec().unwrap()).unwrap();
    let url = format!(
        "{}?ticket={}",
        open["endpoint"].as_str().unwrap(),
        open["ticket"].as_str().unwrap()
    );
    #[derive(serde::Deserialize)]
    struct Headers<'a> {
        #[serde(rename = "messageId", borrow)]
        message_id: &'a str,
    }
    #[derive(serde::Deserialize)]
    struct Frame<'a> {
        #[serde(borrow)]
        headers: Headers<'a>,
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async move {
        // TCP_NODELAY like the adapters: a fair floor is not held back by Nagle.
        let (mut ws, _) = tokio_tungstenite::connect_async_with_config(url.as_str(), None, true)
            .await
            .unwrap();
        while let Some(Ok(msg)) = ws.next().await {
            if let Message::Text(t) = msg {
                if let Ok(f) = serde_json::from_str::<Frame<'_>>(t.as_str()) {
                    let ack = format!(
                        r#"{{"code":200,"headers":{{"contentType":"application/json","messageId":"{}"}},"message":"OK","data":"{{\"response\":null}}"}}"#,
                        f.headers.message_id
                    );
                    if ws.send(Message::text(ack)).await.is_err() {
                        return;
                    }
                }
            }
        }
    });
}
