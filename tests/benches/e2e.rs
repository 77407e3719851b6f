//! End-to-end throughput, cost and ack latency of each adapter against a lean load generator,
//! next to a "floor": the smallest sensible client on the same stack (a bare tokio-tungstenite
//! loop that reads `messageId`, acks, and flushes once per burst).
//!
//! Three processes per run, so none measures another:
//! * the generator (this binary, `--generator`), pinned to CPU 0, a current-thread tokio
//!   runtime: the gateway open call, a WebSocket that pushes pre-serialised ~1.35 KB bot-message
//!   frames (batched writes, at most `--window` un-acked, a SYSTEM ping every 1000 frames, every
//!   ack checked for its `messageId` and code), and the session-webhook endpoint (replies mode);
//! * the client under test (`e2e_floor`, `e2e_tokio`, `e2e_async_std` or `e2e_blocking`, and
//!   `e2e_tokio_redis` in the scale section: a small binary each, see
//!   `dingtalk_tests::e2e_client`), pinned to CPU 1;
//! * this orchestrator, which reads the client's CPU time and peak RSS from `/proc` (and, of the
//!   RSS, the anonymous part: heap and stacks, without the pages of the binary and libraries).
//!
//! The floor must reach 180 000 frames/s, or the report says it measured the generator.
//!
//! Run: `cargo bench -p dingtalk-tests --bench e2e` (options: `-- --frames 200000
//! --reply-frames 20000 --window 64 --runs 3 --only floor,tokio`; `--frames 0`, `--reply-frames 0`
//! or `--scale-frames 0` leaves out the ack-only, replies or scale section).
#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout,
    clippy::print_stderr
)] // a report binary

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const CLIENTS: [&str; 5] = ["floor", "tokio", "tokio-1thread", "async-std", "blocking"];
const PING_EVERY: usize = 1000;
const FLOOR_TARGET: f64 = 180_000.0;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// Ack only.
    Plain,
    /// One session-webhook reply per frame.
    Replies,
}

impl Mode {
    fn arg(self) -> &'static str {
        match self {
            Self::Plain => "plain",
            Self::Replies => "replies",
        }
    }
    fn parse(s: &str) -> Self {
        if s == "replies" {
            Self::Replies
        } else {
            Self::Plain
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--generator") {
        return generator(
            args[2].parse().unwrap(),
            args[3].parse().unwrap(),
            Mode::parse(&args[4]),
            args[5].parse().unwrap(),
        );
    }
    let mut frames = 200_000usize;
    let mut reply_frames = 20_000usize;
    let mut window = 64usize;
    let mut runs = 3usize;
    let mut only: Option<Vec<String>> = None;
    let mut scale_frames = 100_000usize;
    let mut i = 1;
    while i < args.len() {
        let value = args.get(i + 1).cloned().unwrap_or_default();
        match args[i].as_str() {
            "--frames" => frames = value.parse().unwrap(),
            "--reply-frames" => reply_frames = value.parse().unwrap(),
            "--window" => window = value.parse().unwrap(),
            "--runs" => runs = value.parse().unwrap(),
            "--only" => only = Some(value.split(',').map(str::to_owned).collect()),
            "--scale-frames" => scale_frames = value.parse().unwrap(),
            _ => {
                i += 1;
                continue;
            }
        }
        i += 2;
    }
    let pinned = Command::new("taskset")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    let cpus = std::thread::available_parallelism().map_or(1, usize::from);
    println!(
        "end-to-end: {frames} bot messages (~1.35 KB) per run (replies mode: {reply_frames}), at most {window} un-acked, a SYSTEM ping every {PING_EVERY}, {runs} runs per client, medians; generator on CPU 0, client on CPU 1 ({})\n",
        if pinned && cpus >= 2 {
            "pinned with taskset"
        } else {
            "NOT pinned: taskset or a second CPU is missing"
        }
    );
    let pin = pinned && cpus >= 2;
    let clients: Vec<&str> = CLIENTS
        .iter()
        .copied()
        .filter(|c| only.as_ref().is_none_or(|o| o.iter().any(|x| x == c)))
        .collect();
    for mode in [Mode::Plain, Mode::Replies] {
        let n = if mode == Mode::Plain {
            frames
        } else {
            reply_frames
        };
        if n == 0 {
            continue;
        }
        let mut rows = Vec::new();
        for client in &clients {
            let results: Vec<Run> = (0..runs)
                .map(|_| one_run(client, n, window, mode, pin, 1, None))
                .collect();
            let (median, results) = medians(results);
            rows.push((*client, median, results));
        }
        report(mode, &rows);
    }
    if scale_frames > 0 && only.as_ref().is_none_or(|o| o.iter().any(|x| x == "scale")) {
        scale(scale_frames, window, runs, pin);
    }
}

/// The median run, each column its own median, and the runs sorted by rate.
fn medians(mut results: Vec<Run>) -> (Run, Vec<Run>) {
    results.sort_by(|a, b| a.rate.total_cmp(&b.rate));
    let mut median = results[results.len() / 2].clone();
    median.cpu_us = med(results.iter().map(|r| r.cpu_us));
    median.switches = med(results.iter().map(|r| r.switches));
    median.p50_us = med(results.iter().map(|r| r.p50_us));
    median.p99_us = med(results.iter().map(|r| r.p99_us));
    median.peak_kb = med(results.iter().map(|r| r.peak_kb as f64)) as u64;
    median.anon_kb = med(results.iter().map(|r| r.anon_kb as f64)) as u64;
    median.reconnect_ms = med(results.iter().map(|r| r.reconnect_ms));
    median.tcp_conns = med(results.iter().map(|r| r.tcp_conns as f64)) as usize;
    (median, results)
}

/// dingtalk-tokio (multi-thread) with 1, 2 and 4 connections for the app (each with its own
/// window of un-acked frames), and each with the Redis state store on (a real redis-server on
/// a loopback port, started here; its own CPU is not counted in the client's), against the
/// 1-connection, no-store run as the baseline of the same run.
fn scale(n: usize, window: usize, runs: usize, pin: bool) {
    let redis = match dingtalk_tests::servers::RedisServer::start() {
        Ok(r) => Some(r),
        Err(e) => {
            println!(
                "
scale: Redis rows left out: {e}"
            );
            None
        }
    };
    println!(
        "
scale: dingtalk-tokio (multi-thread), {n} bot messages, at most {window} un-acked per connection"
    );
    println!(
        "{:<18} {:>10} {:>10} {:>12} {:>8} {:>9} {:>9} {:>9}",
        "connections",
        "frames/s",
        "× 1 conn",
        "CPU µs/frame",
        "csw/fr",
        "peak RSS",
        "p50 ack",
        "p99 ack"
    );
    let mut base: Option<(f64, f64)> = None;
    for store in [
        None,
        redis
            .as_ref()
            .map(dingtalk_tests::servers::RedisServer::url),
    ] {
        for conns in [1usize, 2, 4] {
            let results: Vec<Run> = (0..runs)
                .map(|_| {
                    one_run(
                        "tokio",
                        n,
                        window,
                        Mode::Plain,
                        pin,
                        conns,
                        store.as_deref(),
                    )
                })
                .collect();
            let (r, all) = medians(results);
            let (rate0, cpu0) = *base.get_or_insert((r.rate, r.cpu_us));
            let label = format!(
                "{conns} conn{}{}",
                if conns > 1 { "s" } else { "" },
                if store.is_some() { " + Redis" } else { "" }
            );
            println!(
                "{:<18} {:>10.0} {:>9.2}× {:>12.2} {:>8.2} {:>6.1} MB {:>7.0}µs {:>7.0}µs",
                label,
                r.rate,
                r.rate / rate0,
                r.cpu_us,
                r.switches,
                r.peak_kb as f64 / 1024.0,
                r.p50_us,
                r.p99_us
            );
            let rates: Vec<String> = all.iter().map(|r| format!("{:.0}", r.rate)).collect();
            println!("{:<18} runs: {}", "", rates.join(", "));
            if store.is_some() && conns == 1 {
                println!(
                    "{:<18} shared dedup costs {:+.2} µs of client CPU per frame",
                    "",
                    r.cpu_us - cpu0
                );
            }
        }
    }
}

fn med(values: impl Iterator<Item = f64>) -> f64 {
    let mut v: Vec<f64> = values.collect();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn report(mode: Mode, rows: &[(&str, Run, Vec<Run>)]) {
    let floor = rows
        .iter()
        .find(|(c, _, _)| *c == "floor")
        .map(|(_, r, _)| r.rate);
    match mode {
        Mode::Plain => {
            println!("ack only");
            println!(
                "{:<14} {:>10} {:>8} {:>12} {:>8} {:>9} {:>9} {:>9} {:>9} {:>11} {:>10}",
                "client",
                "frames/s",
                "× floor",
                "CPU µs/frame",
                "csw/fr",
                "peak RSS",
                "of it anon",
                "p50 ack",
                "p99 ack",
                "reconnect",
                "gen CPU"
            );
        }
        Mode::Replies => {
            println!("\none session-webhook reply per frame");
            println!(
                "{:<14} {:>10} {:>8} {:>12} {:>8} {:>9} {:>9} {:>9} {:>9} {:>10} {:>10}",
                "client",
                "replies/s",
                "× floor",
                "CPU µs/reply",
                "csw/rep",
                "peak RSS",
                "of it anon",
                "p50 ack",
                "p99 ack",
                "TCP conns",
                "gen CPU"
            );
        }
    }
    for (client, r, all) in rows {
        let ratio = floor.map_or("n/a".to_owned(), |f| format!("{:.2}×", r.rate / f));
        let last = match mode {
            // The floor does not reconnect.
            Mode::Plain if *client == "floor" => format!("{:>12}", "n/a"),
            Mode::Plain => format!("{:>9.0} ms", r.reconnect_ms),
            Mode::Replies => format!("{:>10}", r.tcp_conns),
        };
        println!(
            "{:<14} {:>10.0} {:>8} {:>12.2} {:>8.2} {:>6.1} MB {:>6.1} MB {:>7.0}µs {:>7.0}µs {:>11} {:>9.0}%",
            client,
            r.rate,
            ratio,
            r.cpu_us,
            r.switches,
            r.peak_kb as f64 / 1024.0,
            r.anon_kb as f64 / 1024.0,
            r.p50_us,
            r.p99_us,
            last,
            r.gen_busy * 100.0
        );
        let rates: Vec<String> = all.iter().map(|r| format!("{:.0}", r.rate)).collect();
        println!("{:<14} runs: {}", "", rates.join(", "));
    }
    if mode == Mode::Plain {
        if let Some(f) = floor {
            if f < FLOOR_TARGET {
                println!(
                    "\nthe floor reached {f:.0} frames/s < {FLOOR_TARGET:.0}: this run measured the generator or the machine, not the clients"
                );
            } else {
                println!(
                    "\nthe floor reached {f:.0} frames/s ≥ {FLOOR_TARGET:.0}: the generator is not the bottleneck"
                );
            }
        }
    }
}

#[derive(Clone, Debug)]
struct Run {
    /// Frames (or replies) per second.
    rate: f64,
    /// Client CPU (user + sys) per frame or reply.
    cpu_us: f64,
    /// Client thread context switches per frame or reply.
    switches: f64,
    p50_us: f64,
    p99_us: f64,
    peak_kb: u64,
    /// Anonymous RSS at the end of the load (heap and stacks: the peak RSS less the pages of
    /// the binary and libraries).
    anon_kb: u64,
    /// Abrupt TCP drop to the first open request.
    reconnect_ms: f64,
    /// TCP connections the client opened to the webhook host.
    tcp_conns: usize,
    /// The generator's CPU use during the load (1.0 = a whole core).
    gen_busy: f64,
}

/// A child process that dies with its run, even when the run panics.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs `exe` (this binary when `None`) with `args`, pinned to `pin_cpu`.
fn spawn(pin_cpu: Option<usize>, exe: Option<&str>, args: &[&str], piped: bool) -> Child {
    let exe = exe.map_or_else(
        || std::env::current_exe().unwrap(),
        std::path::PathBuf::from,
    );
    let mut cmd = match pin_cpu {
        Some(cpu) => {
            let mut c = Command::new("taskset");
            c.arg("-c").arg(cpu.to_string()).arg(exe);
            c
        }
        None => Command::new(exe),
    };
    cmd.args(args).stderr(Stdio::inherit());
    if piped {
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped());
    } else {
        cmd.stdin(Stdio::null()).stdout(Stdio::null());
    }
    cmd.spawn().unwrap()
}

/// utime + stime of a process (all its threads), in seconds.
fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0 // CLK_TCK is 100 on Linux
}

/// Context switches (voluntary + involuntary) of every live thread of a process.
fn switches(pid: u32) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("status")).ok())
        .flat_map(|s| {
            s.lines()
                .filter(|l| l.contains("ctxt_switches:"))
                .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
                .collect::<Vec<_>>()
        })
        .sum()
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

struct Gen {
    _child: KillOnDrop,
    pid: u32,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Gen {
    fn line(&mut self, prefix: &str) -> String {
        let mut line = String::new();
        loop {
            line.clear();
            if self.stdout.read_line(&mut line).unwrap() == 0 {
                panic!("the generator ended before `{prefix}`");
            }
            if let Some(rest) = line.trim_end().strip_prefix(prefix) {
                return rest.trim().to_owned();
            }
        }
    }
    fn say(&mut self, what: &str) {
        writeln!(self.stdin, "{what}").unwrap();
        self.stdin.flush().unwrap();
    }
}

fn one_run(
    client: &str,
    n: usize,
    window: usize,
    mode: Mode,
    pin: bool,
    conns: usize,
    redis: Option<&str>,
) -> Run {
    let (n_s, w_s, c_s) = (n.to_string(), window.to_string(), conns.to_string());
    let mut gen_child = spawn(
        pin.then_some(0),
        None,
        &["--generator", &n_s, &w_s, mode.arg(), &c_s],
        true,
    );
    let pid = gen_child.id();
    let mut generator = Gen {
        stdin: gen_child.stdin.take().unwrap(),
        stdout: BufReader::new(gen_child.stdout.take().unwrap()),
        _child: KillOnDrop(gen_child),
        pid,
    };
    let base = generator.line("READY");
    // E2E_WRAP="heaptrack -o /tmp/client" runs the client under a tool (for profiling; the
    // figures then include the tool).
    let wrap = std::env::var("E2E_WRAP").unwrap_or_default();
    let mut words: Vec<&str> = wrap.split_whitespace().collect();
    // Each client is a small binary of its own (only its adapter linked in), so its RSS and
    // CPU are what a bot on that adapter alone shows, not this bench's generator code.
    let exe = match client {
        "floor" => env!("CARGO_BIN_EXE_e2e_floor"),
        "tokio" | "tokio-1thread" if redis.is_some() => env!("CARGO_BIN_EXE_e2e_tokio_redis"),
        "tokio" | "tokio-1thread" => env!("CARGO_BIN_EXE_e2e_tokio"),
        "async-std" => env!("CARGO_BIN_EXE_e2e_async_std"),
        "blocking" => env!("CARGO_BIN_EXE_e2e_blocking"),
        other => panic!("unknown client {other}"),
    };
    let (program, mut args) = match words.split_first() {
        Some((first, rest)) => (*first, rest.to_vec()),
        None => (exe, Vec::new()),
    };
    if !words.is_empty() {
        args.push(exe);
    }
    args.extend([client, &base, mode.arg(), &c_s, redis.unwrap_or("-")]);
    words.clear();
    let client_child = spawn(pin.then_some(1), Some(program), &args, false);
    let client_pid = client_child.id();
    let _client = KillOnDrop(client_child);
    generator.line("CONNECTED");
    let cpu0 = cpu_secs(client_pid);
    let sw0 = switches(client_pid);
    let gen_cpu0 = cpu_secs(generator.pid);
    generator.say("GO");
    let done: serde_json::Value = serde_json::from_str(&generator.line("DONE")).unwrap();
    let cpu = cpu_secs(client_pid) - cpu0;
    let sw = switches(client_pid).saturating_sub(sw0);
    let gen_cpu = cpu_secs(generator.pid) - gen_cpu0;
    let peak_kb = status_kb(client_pid, "VmHWM:");
    // Of the RSS now: the client's own memory (heap, stacks), without the pages of its binary
    // and libraries mapped from files.
    let anon_kb = status_kb(client_pid, "RssAnon:");
    // The floor does not reconnect: nothing to measure.
    generator.say(if client == "floor" { "END" } else { "DROP" });
    let reconnect_ms: f64 = generator.line("RECONNECT").parse().unwrap();
    let errors = done["errors"].as_u64().unwrap();
    assert_eq!(errors, 0, "{client}: the generator saw wrong acks: {done}");
    let secs = done["secs"].as_f64().unwrap();
    Run {
        rate: n as f64 / secs,
        cpu_us: cpu * 1e6 / n as f64,
        switches: sw as f64 / n as f64,
        p50_us: done["p50_us"].as_f64().unwrap(),
        p99_us: done["p99_us"].as_f64().unwrap(),
        peak_kb,
        anon_kb,
        reconnect_ms,
        tcp_conns: done["tcp_conns"].as_u64().unwrap() as usize,
        gen_busy: gen_cpu / secs,
    }
}

// ---- the generator -----------------------------------------------------------------------

struct GenState {
    ws_port: u16,
    http_port: u16,
    opens: AtomicUsize,
    opened: tokio::sync::Notify,
    replies: AtomicUsize,
    replied: tokio::sync::Notify,
    tcp_conns: AtomicUsize,
}

fn generator(n: usize, window: usize, mode: Mode, conns: usize) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(generate(n, window, mode, conns.max(1)));
}

async fn generate(n: usize, window: usize, mode: Mode, conns: usize) {
    use axum::Router;
    use axum::routing::post;
    use axum::serve::ListenerExt;
    use tokio::io::AsyncBufReadExt;

    let ws_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let http_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let state = Arc::new(GenState {
        ws_port: ws_listener.local_addr().unwrap().port(),
        http_port: http_listener.local_addr().unwrap().port(),
        opens: AtomicUsize::new(0),
        opened: tokio::sync::Notify::new(),
        replies: AtomicUsize::new(0),
        replied: tokio::sync::Notify::new(),
        tcp_conns: AtomicUsize::new(0),
    });
    let s1 = state.clone();
    let s2 = state.clone();
    let app = Router::new()
        .route(
            "/v1.0/gateway/connections/open",
            post(move || {
                let s = s1.clone();
                async move {
                    let k = s.opens.fetch_add(1, Ordering::SeqCst);
                    s.opened.notify_waiters();
                    axum::Json(serde_json::json!({
                        "endpoint": format!("ws://127.0.0.1:{}/connect", s.ws_port),
                        "ticket": format!("ticket-{k}"),
                    }))
                }
            }),
        )
        .route(
            "/robot/sendBySession",
            post(move |_body: axum::body::Bytes| {
                let s = s2.clone();
                async move {
                    s.replies.fetch_add(1, Ordering::SeqCst);
                    s.replied.notify_waiters();
                    axum::Json(serde_json::json!({"errcode": 0, "errmsg": "ok"}))
                }
            }),
        );
    let counter = state.clone();
    let listener = http_listener.tap_io(move |tcp| {
        let _ = tcp.set_nodelay(true);
        counter.tcp_conns.fetch_add(1, Ordering::SeqCst);
    });
    tokio::spawn(async move { axum::serve(listener, app).await });
    // Every frame is serialised before the clock starts; the load only clones handles to them.
    let frames = build_frames(n, state.http_port);
    let pings: Vec<tokio_tungstenite::tungstenite::Message> = (0..n / PING_EVERY + 1)
        .map(|k| {
            tokio_tungstenite::tungstenite::Message::text(format!(
                r#"{{"specVersion":"1.0","type":"SYSTEM","headers":{{"appId":"gen","connectionId":"gen","contentType":"application/json","messageId":"p{k}","time":"1700000000000","topic":"ping"}},"data":"{{\"opaque\":\"o{k}\"}}"}}"#
            ))
        })
        .collect();
    println!("READY http://127.0.0.1:{}", state.http_port);
    let mut wss = Vec::new();
    for _ in 0..conns {
        wss.push(accept(&ws_listener).await);
    }
    // Let the client settle (its start-up is not measured), then report.
    tokio::time::sleep(Duration::from_millis(300)).await;
    println!("CONNECTED");
    let mut stdin = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    while let Ok(Some(line)) = stdin.next_line().await {
        if line == "GO" {
            break;
        }
    }
    // Frames go to the connections in turn, as DingTalk spreads them; each connection has its
    // own window.
    let parts: Vec<Vec<(usize, tokio_tungstenite::tungstenite::Message)>> = (0..conns)
        .map(|k| {
            frames
                .iter()
                .enumerate()
                .skip(k)
                .step_by(conns)
                .map(|(i, m)| (i, m.clone()))
                .collect()
        })
        .collect();
    let started = Instant::now();
    let all = futures_util::future::join_all(
        wss.iter_mut()
            .zip(&parts)
            .map(|(ws, part)| load(ws, part, &pings, window, n)),
    )
    .await;
    let stats = LoadStats {
        errors: all.iter().map(|s| s.errors).sum(),
        p50_us: med(all.iter().map(|s| s.p50_us)),
        p99_us: all.iter().map(|s| s.p99_us).fold(0.0, f64::max),
    };
    let ws = wss.swap_remove(0);
    if mode == Mode::Replies {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let notified = state.replied.notified();
            if state.replies.load(Ordering::SeqCst) >= n || Instant::now() > deadline {
                break;
            }
            let _ = tokio::time::timeout(Duration::from_millis(50), notified).await;
        }
    }
    let secs = started.elapsed().as_secs_f64();
    let replies = state.replies.load(Ordering::SeqCst);
    let missing = if mode == Mode::Replies {
        n - replies.min(n)
    } else {
        0
    };
    let errors = stats.errors + missing as u64;
    println!(
        "DONE {}",
        serde_json::json!({
            "secs": secs,
            "p50_us": stats.p50_us,
            "p99_us": stats.p99_us,
            "errors": errors,
            "replies": replies,
            "tcp_conns": state.tcp_conns.load(Ordering::SeqCst),
        })
    );
    loop {
        match stdin.next_line().await {
            Ok(Some(line)) if line == "DROP" => break,
            Ok(Some(line)) if line != "END" => continue,
            _ => {
                println!("RECONNECT 0");
                return;
            }
        }
    }
    // An abrupt TCP drop: RST, no close frame.
    let opens = state.opens.load(Ordering::SeqCst);
    let _ = ws.get_ref().set_zero_linger();
    let dropped = Instant::now();
    drop(ws);
    while state.opens.load(Ordering::SeqCst) == opens {
        let notified = state.opened.notified();
        if state.opens.load(Ordering::SeqCst) != opens {
            break;
        }
        if tokio::time::timeout(Duration::from_secs(30), notified)
            .await
            .is_err()
        {
            break;
        }
    }
    println!("RECONNECT {}", dropped.elapsed().as_secs_f64() * 1e3);
}

type ServerWs = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

async fn accept(listener: &tokio::net::TcpListener) -> ServerWs {
    let (tcp, _) = listener.accept().await.unwrap();
    tcp.set_nodelay(true).unwrap();
    tokio_tungstenite::accept_async(tcp).await.unwrap()
}

fn build_frames(n: usize, http_port: u16) -> Vec<tokio_tungstenite::tungstenite::Message> {
    let expires = 4_102_444_800_000i64; // 2100-01-01
    let data = serde_json::json!({
        "conversationId": "cidBenchPrivate0001==",
        "conversationType": "1",
        "chatbotCorpId": "dingBenchCorp",
        "chatbotUserId": "$:LWCP_v1:$benchbot",
        "msgId": "MSGID",
        "senderNick": "Bench User",
        "isAdmin": false,
        "senderStaffId": "bench-staff-1",
        "sessionWebhookExpiredTime": expires,
        "createAt": 1_700_000_000_000i64,
        "senderCorpId": "dingBenchCorp",
        "senderId": "$:LWCP_v1:$benchuser",
        "sessionWebhook": format!("http://127.0.0.1:{http_port}/robot/sendBySession?session=SESSION"),
        "robotCode": "bench-client-id",
        "msgtype": "text",
        "text": {"content": "benchmark message: a realistic text of a chatbot message that a user typed into a group or a one-to-one chat, padded to the size of real frames"},
        "atUsers": [{"dingtalkId": "$:LWCP_v1:$benchbot"}],
        "isInAtList": true,
    })
    .to_string();
    let template = serde_json::json!({
        "specVersion": "1.0",
        "type": "CALLBACK",
        "headers": {
            "appId": "bench-app-id-0000", "connectionId": "bench-connection-0000-0000-0000",
            "contentType": "application/json", "messageId": "MESSAGEID",
            "time": "1700000000000", "topic": "/v1.0/im/bot/messages/get",
        },
        "data": data,
    })
    .to_string();
    (0..n)
        .map(|i| {
            let text = template
                .replace("MESSAGEID", &format!("m{i}"))
                .replace("MSGID", &format!("msgBench{i}=="))
                .replace("SESSION", &format!("s{i}"));
            tokio_tungstenite::tungstenite::Message::text(text)
        })
        .collect()
}

struct LoadStats {
    errors: u64,
    p50_us: f64,
    p99_us: f64,
}

/// What the generator saw of the acks.
struct Tally {
    sent_at: Vec<Option<Instant>>,
    latencies: Vec<u32>,
    outstanding: usize,
    acked: usize,
    errors: u64,
    pings_acked: usize,
}

impl Tally {
    /// Checks one ack: code 200 and a `messageId` that was sent and not yet acked.
    fn check(&mut self, text: &str, now: Instant) {
        let ok = text.contains("\"code\":200");
        let id = text
            .split_once("\"messageId\":\"")
            .and_then(|(_, rest)| rest.split_once('"'))
            .map(|(id, _)| id);
        match id {
            Some(id) if id.starts_with('m') => {
                let slot = id[1..]
                    .parse::<usize>()
                    .ok()
                    .and_then(|i| self.sent_at.get_mut(i));
                match slot.and_then(Option::take) {
                    Some(at) if ok => {
                        let us = now.duration_since(at).as_micros();
                        self.latencies.push(u32::try_from(us).unwrap_or(u32::MAX));
                        self.outstanding -= 1;
                        self.acked += 1;
                    }
                    _ => self.errors += 1,
                }
            }
            Some(id) if id.starts_with('p') && ok && text.contains("opaque") => {
                self.pings_acked += 1;
            }
            _ => self.errors += 1,
        }
    }
}

/// Pushes every frame with at most `window` un-acked, writing each refill as one batch, and
/// checks every ack.
async fn load(
    ws: &mut ServerWs,
    frames: &[(usize, tokio_tungstenite::tungstenite::Message)],
    pings: &[tokio_tungstenite::tungstenite::Message],
    window: usize,
    total: usize,
) -> LoadStats {
    use futures_util::{FutureExt, SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let n = frames.len();
    let mut t = Tally {
        sent_at: vec![None; total],
        latencies: Vec::with_capacity(n),
        outstanding: 0,
        acked: 0,
        errors: 0,
        pings_acked: 0,
    };
    let (mut next, mut pings_sent) = (0usize, 0usize);
    while t.acked < n {
        let now = Instant::now();
        let mut wrote = false;
        while t.outstanding < window && next < n {
            if next > 0 && next % PING_EVERY == 0 && next / PING_EVERY > pings_sent {
                ws.feed(pings[pings_sent].clone()).await.unwrap();
                pings_sent += 1;
            }
            let (global, frame) = &frames[next];
            ws.feed(frame.clone()).await.unwrap();
            t.sent_at[*global] = Some(now);
            next += 1;
            t.outstanding += 1;
            wrote = true;
        }
        if wrote {
            ws.flush().await.unwrap();
        }
        let msg = match tokio::time::timeout(Duration::from_secs(30), ws.next()).await {
            Ok(Some(Ok(m))) => m,
            other => panic!("the client went away or stalled: {other:?}"),
        };
        let now = Instant::now();
        if let Message::Text(text) = msg {
            t.check(text.as_str(), now);
        }
        while let Some(Some(Ok(msg))) = ws.next().now_or_never() {
            if let Message::Text(text) = msg {
                t.check(text.as_str(), now);
            }
        }
    }
    // Ping acks may trail the last frame's ack.
    while t.pings_acked < pings_sent {
        match tokio::time::timeout(Duration::from_secs(5), ws.next()).await {
            Ok(Some(Ok(Message::Text(text)))) => t.check(text.as_str(), Instant::now()),
            Ok(Some(Ok(_))) => {}
            _ => break,
        }
    }
    t.errors += (pings_sent - t.pings_acked.min(pings_sent)) as u64;
    let mut latencies = t.latencies;
    latencies.sort_unstable();
    let pct = |p: f64| {
        let i = ((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1));
        latencies.get(i).copied().unwrap_or(0) as f64
    };
    LoadStats {
        errors: t.errors,
        p50_us: pct(0.5),
        p99_us: pct(0.99),
    }
}
