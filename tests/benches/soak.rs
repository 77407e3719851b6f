//! Soak: at least 1 000 000 frames through each adapter while the emulator injects faults at
//! random (fixed seed): SYSTEM disconnects, TCP resets, duplicate deliveries, malformed frames,
//! slow and hanging handlers, token expiry and token-endpoint failures. Frames whose connection
//! died before their ack are delivered again, as DingTalk does.
//!
//! * this orchestrator runs the emulator (bench mode: constant memory) and keeps the books from
//!   its ack stream;
//! * the client under test runs in its own process (`--child`), and appends one line per handler
//!   call to a file, so handler calls are counted without growing the client and without a pipe
//!   that could hold its handlers up.
//!
//! It reports, per adapter: frames lost (must be 0), handler calls per messageId beyond one
//! (must be 0), acks with a wrong status or on the wrong connection (0), emulator protocol
//! violations (0), reconnects, redeliveries, and the client's RSS at 10 % and 100 % of the run
//! (growth under 10 %). It exits non-zero when an invariant fails.
//!
//! It pushes 4 000 000 frames per adapter by default: long enough to show whether RSS settles.
//! A hanging blocking handler keeps its thread for [`BLOCKING_HANG`] (30 s). Latest run at seed
//! 42: tokio +0.5 %, async-std +2.6 %, blocking +4.2 % (17.8 MB at 10 %, 18.6 MB at the end).
//! The blocking client used to rise by about 3 MB (+12 to +18 %): its handler threads parsed the
//! messages, and glibc's per-thread cache of each kept the freed blocks (up to 7 of each of 64
//! size classes, ~230 KB); the reader now parses them under light load. See README.
//!
//! Run: `cargo bench -p dingtalk-tests --bench soak` (options: `-- --frames 4000000 --seed 42
//! --only tokio,async-std,blocking`). `SOAK_DEBUG=1` logs each handler call with its time (and,
//! for the blocking client, its stats), prints those lines for ids handled more than once, and
//! traces pushes and acks of ids 543000-543999 (around the seeded TCP reset at frame 543575);
//! `SOAK_TRACE=1` prints the injected faults.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a bench aborts on failure

use std::collections::{HashMap, HashSet, VecDeque};
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use dingtalk_core::{Credentials, Endpoints};
use dingtalk_sim::{AckEvent, Chat, Sim, SimConfig};
use serde_json::json;

const ADAPTERS: &[&str] = &["tokio", "async-std", "blocking"];
const BOT_TOPIC: &str = "/v1.0/im/bot/messages/get";
/// Un-acked frames at most (DingTalk pushes with a window too).
const WINDOW: usize = 256;
/// A frame un-acked this long is delivered again (its connection may have died).
const REDELIVER_AFTER: Duration = Duration::from_secs(3);
/// The client's handler timeout: hanging handlers are cancelled after it.
const HANDLER_TIMEOUT: Duration = Duration::from_secs(1);
/// How long a hanging blocking handler blocks its thread: 30 times the handler timeout (the
/// async adapters' hanging handlers never finish; they are cancelled). A plain function
/// cannot be stopped from outside, so one that never returns keeps its thread for ever, which
/// no SDK can reclaim; `SOAK_HANG_FOREVER=1` makes it never return, to measure that cost.
const BLOCKING_HANG: Duration = Duration::from_secs(30);
/// Message ids the client remembers. The dedup window (ids ÷ frame rate) must outlast the
/// redelivery delay, or a copy redelivered after its ack was lost runs the handler again: the
/// default 10 000 covers 2 s at 5 000 frames/s, less than [`REDELIVER_AFTER`].
const DEDUP_IDS: usize = 100_000;
/// Newer frames after which a redelivered copy may have left the client's dedup window: its
/// byte bound (`DEDUP_IDS` entries of `ENTRY_BYTES`, and event acks carry a text) keeps about
/// 92 000 of these frames. A client that catches up after a stall can take that many in less
/// than [`REDELIVER_AFTER`]; its second handler call is then DingTalk's at-least-once, not a
/// dedup failure, and is counted apart.
const DEDUP_WINDOW: usize = 80_000;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--child") {
        return child(&args[2], &args[3], &args[4], &args[5], &args[6]);
    }
    let mut frames = 4_000_000usize;
    let mut seed = 42u64;
    let mut only: Option<Vec<String>> = None;
    let mut hang_every = 50_000u32;
    let mut i = 1;
    while i < args.len() {
        let value = args.get(i + 1).cloned().unwrap_or_default();
        match args[i].as_str() {
            "--frames" => frames = value.parse().unwrap(),
            "--seed" => seed = value.parse().unwrap(),
            "--hang-every" => hang_every = value.parse().unwrap(),
            "--only" => only = Some(value.split(',').map(str::to_owned).collect()),
            _ => {
                i += 1;
                continue;
            }
        }
        i += 2;
    }
    println!(
        "soak: {frames} frames per adapter (90 % bot messages, 10 % events), seed {seed}, window {WINDOW}, handler timeout {HANDLER_TIMEOUT:?}"
    );
    println!(
        "faults per frame: disconnect 1/25000, TCP reset 1/25000, duplicate 1/300, malformed 1/2000, token expiry 1/20000, token endpoint failing twice 1/20000; handlers: slow (20 ms) 1/200, API call 1/1000, hanging 1/{hang_every} (0: none; async: never returns, blocking: {})\n",
        if std::env::var_os("SOAK_HANG_FOREVER").is_some() {
            "never returns".to_owned()
        } else {
            format!("blocks {BLOCKING_HANG:?}")
        }
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let mut failed = false;
    for adapter in ADAPTERS
        .iter()
        .filter(|a| only.as_ref().is_none_or(|o| o.iter().any(|x| x == *a)))
    {
        let report = rt.block_on(soak(adapter, frames, seed, hang_every));
        report.print();
        failed |= !report.clean();
    }
    if failed {
        eprintln!("soak: an invariant failed");
        std::process::exit(1);
    }
}

#[derive(Debug, Default)]
struct Report {
    adapter: String,
    frames: usize,
    secs: f64,
    lost: usize,
    extra_handler_calls: usize,
    /// Extra calls for copies redelivered more than [`DEDUP_WINDOW`] frames later (expected).
    extra_after_window: usize,
    never_handled: usize,
    wrong_status: usize,
    wrong_conn: usize,
    violations: usize,
    reconnects: usize,
    redeliveries: usize,
    duplicates_pushed: usize,
    malformed_pushed: usize,
    rss_10_kb: u64,
    rss_100_kb: u64,
    /// RSS at every tenth of the run, in MB.
    rss_series: Vec<f64>,
}

impl Report {
    fn growth(&self) -> f64 {
        if self.rss_10_kb == 0 {
            return 0.0;
        }
        (self.rss_100_kb as f64 - self.rss_10_kb as f64) / self.rss_10_kb as f64 * 100.0
    }

    fn clean(&self) -> bool {
        self.lost == 0
            && self.extra_handler_calls == 0
            && self.never_handled == 0
            && self.wrong_status == 0
            && self.wrong_conn == 0
            && self.violations == 0
            && self.growth() < 10.0
    }

    fn print(&self) {
        println!(
            "{:<10} {} frames in {:.1} s ({:.0}/s): lost {}, handler calls beyond one {} (and {} for copies redelivered past the dedup window), never handled {}, wrong status {}, wrong connection {}, protocol violations {}; reconnects {}, redeliveries {}, duplicates pushed {}, malformed pushed {}; RSS {:.1} MB at 10 %, {:.1} MB at 100 % ({:+.1} %) {}",
            self.adapter,
            self.frames,
            self.secs,
            self.frames as f64 / self.secs,
            self.lost,
            self.extra_handler_calls,
            self.extra_after_window,
            self.never_handled,
            self.wrong_status,
            self.wrong_conn,
            self.violations,
            self.reconnects,
            self.redeliveries,
            self.duplicates_pushed,
            self.malformed_pushed,
            self.rss_10_kb as f64 / 1024.0,
            self.rss_100_kb as f64 / 1024.0,
            self.growth(),
            if self.clean() { "OK" } else { "FAILED" }
        );
        let series: Vec<String> = self.rss_series.iter().map(|m| format!("{m:.1}")).collect();
        println!("{:<10} RSS MB at each tenth: {}", "", series.join(" "));
    }
}

/// A child process that dies with its run.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

struct Pending {
    text: String,
    pushed: Instant,
}

async fn soak(adapter: &str, frames: usize, seed: u64, hang_every: u32) -> Report {
    let sim = Sim::start(SimConfig {
        bench_mode: true,
        disconnect_grace: Duration::from_millis(300),
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let ctl = sim.control();
    let mut acks = ctl.ack_sink();
    let (id, secret) = sim.credentials();
    let exe = std::env::current_exe().unwrap();
    // SOAK_WRAP="heaptrack -o /tmp/client" runs the client under a tool (for profiling).
    let wrap = std::env::var("SOAK_WRAP").unwrap_or_default();
    let mut words = wrap.split_whitespace();
    let mut command = match words.next() {
        Some(tool) => {
            let mut c = Command::new(tool);
            c.args(words).arg(&exe);
            c
        }
        None => Command::new(&exe),
    };
    let log = std::env::temp_dir().join(format!(
        "dingtalk-soak-{}-{adapter}.log",
        std::process::id()
    ));
    let _ = std::fs::remove_file(&log);
    let log_arg = log.to_string_lossy().into_owned();
    let child = command
        .args(["--child", adapter, &sim.base_url(), &id, &secret, &log_arg])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let pid = child.id();
    let _child = KillOnDrop(child);
    sim.wait_connections(1, Duration::from_secs(30))
        .await
        .expect("the client connects");

    let mut rng = fastrand::Rng::with_seed(seed);
    let mut report = Report {
        adapter: adapter.to_owned(),
        frames,
        ..Report::default()
    };
    let mut pending: HashMap<String, Pending> = HashMap::with_capacity(WINDOW * 2);
    // Ids redelivered more than DEDUP_WINDOW frames after they were first pushed.
    let mut late: HashSet<String> = HashSet::new();
    let mut recent: VecDeque<String> = VecDeque::with_capacity(64);
    let mut acked_ok = 0usize;
    let start = Instant::now();
    let mut last_redelivery_check = Instant::now();
    let trace = std::env::var_os("SOAK_TRACE").is_some();

    let account = |ack: AckEvent,
                   pending: &mut HashMap<String, Pending>,
                   recent: &mut VecDeque<String>,
                   report: &mut Report,
                   acked_ok: &mut usize| {
        if debug_window(&ack.message_id) {
            eprintln!(
                "A {} conn={} code={} status={:?} own={} at={}",
                ack.message_id,
                ack.conn,
                ack.code,
                ack.status,
                ack.on_its_connection,
                start.elapsed().as_millis()
            );
        }
        if ack.message_id.starts_with("bad-") {
            return; // a malformed frame's 400
        }
        if !ack.on_its_connection {
            report.wrong_conn += 1;
        }
        let ok = ack.code == 200 && ack.status.as_deref() != Some("LATER");
        if !ok {
            report.wrong_status += 1;
            return;
        }
        if let Some(p) = pending.remove(&ack.message_id) {
            *acked_ok += 1;
            if recent.len() == 64 {
                recent.pop_front();
            }
            recent.push_back(p.text);
        }
    };

    for i in 0..frames {
        // Keep the window: take acks until there is room, delivering stale frames again.
        while pending.len() >= WINDOW {
            match tokio::time::timeout(Duration::from_millis(200), acks.recv()).await {
                Ok(Some(ack)) => {
                    account(ack, &mut pending, &mut recent, &mut report, &mut acked_ok)
                }
                Ok(None) => panic!("the emulator went away"),
                Err(_) => redeliver(&ctl, &mut pending, &mut report, (i, &mut late)),
            }
        }
        while let Ok(ack) = acks.try_recv() {
            account(ack, &mut pending, &mut recent, &mut report, &mut acked_ok);
        }
        if last_redelivery_check.elapsed() > Duration::from_millis(500) {
            redeliver(&ctl, &mut pending, &mut report, (i, &mut late));
            last_redelivery_check = Instant::now();
        }
        let message_id = format!("soak-{i}");
        if debug_window(&message_id) {
            eprintln!("P {message_id} at={}", start.elapsed().as_millis());
        }
        let text = if rng.u32(0..10) == 0 {
            event_frame(&message_id, rng.u32(0..200) == 0)
        } else {
            let content = match rng.u32(0..50_000) {
                n if hang_every > 0 && n % hang_every.min(50_000) == 0 => "hang",
                n if n % 200 == 1 => "slow",
                n if n % 1000 == 2 => "api",
                _ => "hi",
            };
            bot_frame(&sim, &message_id, content)
        };
        ctl.push_raw(text.clone());
        pending.insert(
            message_id,
            Pending {
                text,
                pushed: Instant::now(),
            },
        );
        // Faults.
        if rng.u32(0..25_000) == 0 {
            if trace {
                eprintln!("trace {i}: disconnect");
            }
            ctl.disconnect();
        }
        if rng.u32(0..25_000) == 0 {
            if trace {
                eprintln!("trace {i}: reset");
            }
            ctl.close_abruptly();
        }
        if rng.u32(0..300) == 0 {
            if let Some(text) = recent.get(rng.usize(0..recent.len().max(1))) {
                ctl.push_raw(text.clone());
                report.duplicates_pushed += 1;
            }
        }
        if rng.u32(0..2000) == 0 {
            let garbage = match rng.u32(0..3) {
                0 => "{not json".to_owned(),
                1 => json!({"type": "WHAT", "headers": {"messageId": format!("bad-{i}"), "topic": "x"}})
                    .to_string(),
                _ => json!({"type": "CALLBACK", "headers": {"messageId": format!("bad-{i}")}, "data": 7})
                    .to_string(),
            };
            ctl.push_raw(garbage);
            report.malformed_pushed += 1;
        }
        if rng.u32(0..20_000) == 0 {
            if trace {
                eprintln!("trace {i}: expire");
            }
            ctl.expire_tokens();
        }
        if rng.u32(0..20_000) == 0 {
            if trace {
                eprintln!("trace {i}: tokenfail");
            }
            ctl.fail_next_tokens(2);
        }
        if trace && (i + 1) % (frames / 100).max(1) == 0 {
            eprintln!(
                "trace {i}: rss {} kB, pending {}",
                rss_kb(pid),
                pending.len()
            );
        }
        if (i + 1) % (frames / 10).max(1) == 0 {
            let kb = rss_kb(pid);
            if report.rss_series.is_empty() {
                report.rss_10_kb = kb;
            }
            report.rss_series.push(kb as f64 / 1024.0);
        }
    }
    // Drain: every frame must end with a good ack.
    let deadline = Instant::now() + Duration::from_secs(120);
    while !pending.is_empty() && Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_millis(200), acks.recv()).await {
            Ok(Some(ack)) => account(ack, &mut pending, &mut recent, &mut report, &mut acked_ok),
            Ok(None) => break,
            Err(_) => redeliver(&ctl, &mut pending, &mut report, (frames, &mut late)),
        }
    }
    report.secs = start.elapsed().as_secs_f64();
    report.lost = pending.len();
    report.rss_100_kb = rss_kb(pid);
    // Every acked frame's handler call reaches the books (the child appends a line per call).
    let deadline = Instant::now() + Duration::from_secs(30);
    let calls = loop {
        let calls = read_calls(&log);
        if calls.len() >= acked_ok || Instant::now() > deadline {
            break calls;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let detail = std::fs::read_to_string(&log).unwrap_or_default();
    let _ = std::fs::remove_file(&log);
    {
        for (id, n) in &calls {
            let extra = (*n as usize).saturating_sub(1);
            if late.contains(id) {
                report.extra_after_window += extra;
            } else {
                report.extra_handler_calls += extra;
            }
        }
        for (id, n) in calls
            .iter()
            .filter(|(id, n)| **n > 1 && !late.contains(*id))
            .take(5)
        {
            eprintln!("{adapter}: {id} handled {n} times");
            let prefix = format!("D {id} ");
            for line in detail.lines().filter(|l| l.starts_with(&prefix)) {
                eprintln!("    {line}");
            }
        }
        report.never_handled = acked_ok.saturating_sub(calls.len());
    }
    let snap = sim.snapshot();
    report.violations = snap.violations.len();
    for v in snap.violations.iter().take(5) {
        eprintln!("{adapter}: violation: {v}");
    }
    report.reconnects = snap.conns.len().saturating_sub(1);
    report
}

/// Handler calls per message id, from the child's log.
fn read_calls(path: &std::path::Path) -> HashMap<String, u32> {
    let mut calls = HashMap::new();
    let Ok(file) = std::fs::File::open(path) else {
        return calls;
    };
    for line in BufReader::new(file).lines() {
        let Ok(line) = line else { break };
        if let Some(id) = line.strip_prefix("H ") {
            *calls.entry(id.to_owned()).or_default() += 1;
        }
    }
    calls
}

/// Delivers again every frame un-acked for [`REDELIVER_AFTER`] (its connection may be gone).
fn redeliver(
    ctl: &dingtalk_sim::Control,
    pending: &mut HashMap<String, Pending>,
    report: &mut Report,
    (newest, late): (usize, &mut HashSet<String>),
) {
    let now = Instant::now();
    for (id, p) in pending.iter_mut() {
        if now.duration_since(p.pushed) >= REDELIVER_AFTER && ctl.push_raw(p.text.clone()).is_some()
        {
            let index = id
                .strip_prefix("soak-")
                .and_then(|n| n.parse::<usize>().ok());
            if index.is_some_and(|n| newest.saturating_sub(n) > DEDUP_WINDOW) {
                late.insert(id.clone());
            }
            p.pushed = now;
            report.redeliveries += 1;
        }
    }
}

fn bot_frame(sim: &Sim, message_id: &str, content: &str) -> String {
    let data = sim.bot_message_data("text", content, Chat::Group);
    json!({
        "specVersion": "1.0",
        "type": "CALLBACK",
        "headers": {"contentType": "application/json", "messageId": message_id, "time": "1", "topic": BOT_TOPIC},
        "data": data.to_string(),
    })
    .to_string()
}

fn event_frame(message_id: &str, slow: bool) -> String {
    json!({
        "specVersion": "1.0",
        "type": "EVENT",
        "headers": {
            "contentType": "application/json", "messageId": message_id, "topic": "*",
            "eventId": message_id, "eventType": if slow { "slow_event" } else { "user_add_org" },
            "eventCorpId": "dingSoak", "eventBornTime": "1",
        },
        "data": json!({"n": message_id}).to_string(),
    })
    .to_string()
}

// ---- the client ---------------------------------------------------------------------------

/// The child's log of handler calls.
static LOG: std::sync::OnceLock<std::fs::File> = std::sync::OnceLock::new();

/// One line per handler call, appended at once with one write (the orchestrator counts them).
fn called(id: &str) {
    if let Some(mut file) = LOG.get() {
        let _ = file.write_all(format!("H {id}\n").as_bytes());
    }
}

/// With `SOAK_DEBUG` set, a second line per call: the connection it came on (bot messages) and
/// the time, printed for ids handled more than once.
fn called_on(frame: &dingtalk_core::Frame) {
    called(frame.message_id());
    debug_line(
        frame.message_id(),
        frame.headers.connection_id.as_deref().unwrap_or("-"),
    );
}

fn called_event(id: &str) {
    called(id);
    debug_line(id, "event");
}

/// With `SOAK_DEBUG`: ids 543000-543999 (around the seeded reset at 543575) are traced.
fn debug_window(id: &str) -> bool {
    std::env::var_os("SOAK_DEBUG").is_some() && id.starts_with("soak-543") && id.len() == 11
}

/// The blocking client, for its stats in debug lines.
static BLOCKING: std::sync::OnceLock<dingtalk_blocking::Client> = std::sync::OnceLock::new();

fn debug_line(id: &str, conn: &str) {
    if std::env::var_os("SOAK_DEBUG").is_some() {
        if let Some(mut file) = LOG.get() {
            let at = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis());
            let stats = BLOCKING
                .get()
                .and_then(|c| c.stats())
                .map(|s| {
                    format!(
                        "{:?} in_flight={} queued={}",
                        s.session, s.in_flight, s.queued
                    )
                })
                .unwrap_or_default();
            let _ = file.write_all(format!("D {id} conn={conn} at={at} {stats}\n").as_bytes());
        }
    }
}

fn child(adapter: &str, base: &str, id: &str, secret: &str, log: &str) {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    let _ = LOG.set(file);
    let creds = Credentials::new(id, secret);
    let endpoints = Endpoints::single(base);
    let api_call = |message: &dingtalk_core::model::ChatbotMessage, robot: &str| {
        dingtalk_tests::harness::BotSpec::api_call(message, robot)
    };
    match adapter {
        "tokio" | "async-std" => {
            macro_rules! async_client {
                ($krate:ident, $sleep:expr) => {{
                    $krate::Client::builder(creds)
                        .endpoints(endpoints)
                        .handler_timeout(HANDLER_TIMEOUT)
                        .configure(|c| {
                            c.dedup_capacity = DEDUP_IDS;
                            c.dedup_max_bytes = DEDUP_IDS * dingtalk_core::dedup::ENTRY_BYTES;
                        })
                        .on_bot_message(move |ctx| async move {
                            called_on(ctx.frame());
                            match ctx.text().unwrap_or_default() {
                                "hang" => std::future::pending::<()>().await,
                                "slow" => $sleep(Duration::from_millis(20)).await,
                                "api" => {
                                    let call = api_call(ctx.message(), ctx.api().robot_code());
                                    let _ = ctx.api().call(&call).await;
                                }
                                _ => {}
                            }
                            Ok::<(), $krate::HandlerError>(())
                        })
                        .on_event(move |ev, _api| async move {
                            called_event(ev.event_id.as_deref().unwrap_or_default());
                            if ev.event_type == "slow_event" {
                                $sleep(Duration::from_millis(20)).await;
                            }
                            Ok::<_, $krate::HandlerError>($krate::EventAck::Success)
                        })
                        .build()
                        .unwrap()
                }};
            }
            if adapter == "tokio" {
                let rt = tokio::runtime::Runtime::new().unwrap();
                let client = async_client!(dingtalk_tokio, tokio::time::sleep);
                rt.block_on(client.run()).unwrap();
            } else {
                let client = async_client!(dingtalk_async_std, async_std::task::sleep);
                async_std::task::block_on(client.run()).unwrap();
            }
        }
        "blocking" => {
            let client = dingtalk_blocking::Client::builder(creds)
                .endpoints(endpoints)
                .handler_timeout(HANDLER_TIMEOUT)
                .configure(|c| {
                    c.dedup_capacity = DEDUP_IDS;
                    c.dedup_max_bytes = DEDUP_IDS * dingtalk_core::dedup::ENTRY_BYTES;
                })
                .on_bot_message(move |ctx| {
                    called_on(ctx.frame());
                    match ctx.text().unwrap_or_default() {
                        "hang" if std::env::var_os("SOAK_HANG_FOREVER").is_some() => loop {
                            std::thread::park();
                        },
                        "hang" => std::thread::sleep(BLOCKING_HANG),
                        "slow" => std::thread::sleep(Duration::from_millis(20)),
                        "api" => {
                            let call = api_call(ctx.message(), ctx.api().robot_code());
                            let _ = ctx.api().call(&call);
                        }
                        _ => {}
                    }
                    Ok::<(), dingtalk_blocking::HandlerError>(())
                })
                .on_event(move |ev, _api| {
                    called_event(ev.event_id.as_deref().unwrap_or_default());
                    if ev.event_type == "slow_event" {
                        std::thread::sleep(Duration::from_millis(20));
                    }
                    Ok::<_, dingtalk_blocking::HandlerError>(dingtalk_blocking::EventAck::Success)
                })
                .build()
                .unwrap();
            let _ = BLOCKING.set(client.clone());
            client.run().unwrap();
        }
        other => panic!("unknown adapter {other}"),
    }
}
