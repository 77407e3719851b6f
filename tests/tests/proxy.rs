//! Every adapter through a real HTTP proxy (Debian's `tinyproxy`, started on a loopback port,
//! demanding Basic credentials, its outgoing connections bound to 127.0.0.2): the gateway open
//! call, the token, the WebSocket, the OpenAPI call and the session-webhook reply all arrive at
//! the emulator from the proxy's address; a `NO_PROXY` match sends nothing through it; the
//! standard environment variables are read the same way by every adapter; a refused proxy is
//! a logged, retried error that never shows the credentials.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests abort on failure

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use dingtalk_core::Credentials;
use dingtalk_core::proxy::Proxies;
use dingtalk_sim::{Chat, Sim, SimConfig, Snapshot};
use dingtalk_tests::async_std_harness::{AsyncStdHarness, Executor};
use dingtalk_tests::blocking_harness::BlockingHarness;
use dingtalk_tests::servers::{PROXY_EGRESS, TinyProxy};
use dingtalk_tests::tokio_harness::TokioHarness;
use dingtalk_tests::{BotSpec, Harness, Tweaks};

const T: Duration = Duration::from_secs(15);
const LOOPBACK: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

fn proxy() -> TinyProxy {
    TinyProxy::start(Some(("dt-user", "pr0xy-S3CRET"))).unwrap_or_else(|e| panic!("{e}"))
}

/// Starts `h`'s bot with `proxies`, has it answer one message (an OpenAPI call and a reply), and
/// returns what the emulator saw.
async fn one_message(h: &dyn Harness, proxies: Proxies) -> (Sim, Snapshot) {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    let (id, secret) = sim.credentials();
    let spec = Arc::new(BotSpec {
        call_api: true,
        tweaks: Tweaks {
            proxies: Some(proxies),
            ..Tweaks::default()
        },
        ..BotSpec::default()
    });
    let bot = h.start(&sim.control(), Credentials::new(id, secret), spec.clone());
    sim.wait_connections(1, T).await.unwrap();
    let msg = sim.bot_text("through the proxy", Chat::Group);
    let ack = sim.wait_ack(&msg, T).await.unwrap();
    assert_eq!(ack.code, 200);
    let snap = sim
        .wait_for("reply", T, |s| !s.webhooks.is_empty())
        .await
        .unwrap();
    assert_eq!(spec.seen.api_results(), vec![Ok(())], "{}", h.name());
    bot.stop();
    bot.join().await.unwrap();
    (sim, snap)
}

/// Every open call, connection, webhook and API call came from `peer`.
fn all_from(snap: &Snapshot, peer: IpAddr, adapter: &str) {
    assert!(!snap.opens.is_empty() && !snap.conns.is_empty() && !snap.api_calls.is_empty());
    for o in &snap.opens {
        assert_eq!(o.peer, peer, "{adapter}: gateway open call");
    }
    for c in &snap.conns {
        assert_eq!(c.peer, peer, "{adapter}: WebSocket");
    }
    for r in snap.webhooks.iter().chain(&snap.api_calls) {
        assert_eq!(r.peer, peer, "{adapter}: {} {}", r.method, r.path);
    }
}

async fn through_the_proxy(h: &dyn Harness) {
    let proxy = proxy();
    let (sim, snap) = one_message(h, Proxies::all(&proxy.url()).unwrap()).await;
    all_from(&snap, PROXY_EGRESS, h.name());
    let port = sim.addr().port();
    let requests = proxy.requests();
    assert!(
        requests
            .iter()
            .any(|r| r.starts_with(&format!("CONNECT 127.0.0.1:{port} "))),
        "{}: the WebSocket is tunnelled with CONNECT: {requests:?}",
        h.name()
    );
}

async fn no_proxy_goes_direct(h: &dyn Harness) {
    let proxy = proxy();
    let proxies = Proxies::all(&proxy.url())
        .unwrap()
        .with_no_proxy("example.com, 127.0.0.0/8");
    let (_sim, snap) = one_message(h, proxies).await;
    all_from(&snap, LOOPBACK, h.name());
    assert_eq!(proxy.requests(), Vec::<String>::new(), "{}", h.name());
}

macro_rules! per_adapter {
    ($($name:ident: $scenario:ident($harness:expr);)*) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            $scenario(&$harness).await;
        }
    )*};
}

per_adapter! {
    tokio_goes_through_the_proxy: through_the_proxy(TokioHarness);
    async_std_goes_through_the_proxy: through_the_proxy(AsyncStdHarness(Executor::AsyncStd));
    blocking_goes_through_the_proxy: through_the_proxy(BlockingHarness);
    tokio_no_proxy_match_goes_direct: no_proxy_goes_direct(TokioHarness);
    async_std_no_proxy_match_goes_direct: no_proxy_goes_direct(AsyncStdHarness(Executor::AsyncStd));
    blocking_no_proxy_match_goes_direct: no_proxy_goes_direct(BlockingHarness);
}

/// Every variable a proxy can come from, removed from a child's environment before a test sets
/// its own.
const PROXY_VARS: [&str; 8] = [
    "http_proxy",
    "HTTP_PROXY",
    "https_proxy",
    "HTTPS_PROXY",
    "all_proxy",
    "ALL_PROXY",
    "no_proxy",
    "NO_PROXY",
];

/// Runs the `env_bot` child for `adapter` against `sim` with `env`; returns its stderr once it
/// has exited or, when `until` holds first, once it has been killed.
fn env_bot(
    adapter: &str,
    sim: &Sim,
    env: &[(&str, String)],
    until: impl Fn() -> bool,
) -> (Option<std::process::ExitStatus>, String) {
    use std::io::Read;
    let (id, secret) = sim.credentials();
    let stderr_path = std::env::temp_dir().join(format!(
        "env-bot-{adapter}-{}-{}.log",
        std::process::id(),
        fastrand::u64(..)
    ));
    let stderr = std::fs::File::create(&stderr_path).unwrap();
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_env_bot"));
    cmd.args([adapter, &sim.base_url(), &id, &secret])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(stderr);
    for v in PROXY_VARS {
        cmd.env_remove(v);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let deadline = std::time::Instant::now() + T;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if until() || std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut log = String::new();
    std::fs::File::open(&stderr_path)
        .unwrap()
        .read_to_string(&mut log)
        .unwrap();
    let _ = std::fs::remove_file(&stderr_path);
    (status, log)
}

/// The proxy comes from `http_proxy` (the emulator is plain http on loopback), whatever
/// `HTTPS_PROXY` says, and `NO_PROXY` entries that do not match change nothing. The bot logs at
/// debug level, and its log never holds the proxy password.
async fn environment_is_read(adapter: &'static str) {
    let proxy = proxy();
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    let url = proxy.url();
    let control = sim.control();
    let sender = tokio::spawn(async move {
        control.wait_connections(1, T).await.unwrap();
        let id = control.bot_text("from the environment", Chat::Private);
        control.wait_ack(&id, T).await.unwrap();
    });
    let (status, log) = tokio::task::block_in_place(|| {
        env_bot(
            adapter,
            &sim,
            &[
                ("http_proxy", url.clone()),
                ("HTTPS_PROXY", "http://unused.invalid:1".into()),
                ("NO_PROXY", "example.com,10.0.0.0/8".into()),
            ],
            || false,
        )
    });
    sender.await.unwrap();
    assert!(
        status.is_some_and(|s| s.success()),
        "{adapter}: {status:?}\n{log}"
    );
    let snap = sim.snapshot();
    assert_eq!(snap.webhooks.len(), 1, "{adapter}: the reply");
    all_from_no_api(&snap, PROXY_EGRESS, adapter);
    assert!(
        log.contains("DEBUG") || log.contains("INFO"),
        "{adapter}: the bot logged"
    );
    assert!(
        !log.contains("pr0xy-S3CRET"),
        "{adapter}: the log holds the password"
    );
}

/// [`all_from`] for a bot that made no OpenAPI call.
fn all_from_no_api(snap: &Snapshot, peer: IpAddr, adapter: &str) {
    assert!(!snap.opens.is_empty() && !snap.conns.is_empty());
    for o in &snap.opens {
        assert_eq!(o.peer, peer, "{adapter}: gateway open call");
    }
    for c in &snap.conns {
        assert_eq!(c.peer, peer, "{adapter}: WebSocket");
    }
    for r in &snap.webhooks {
        assert_eq!(r.peer, peer, "{adapter}: {} {}", r.method, r.path);
    }
}

/// A proxy that refuses the credentials: the bot logs why, retries, and never prints the
/// password, in its log or its error.
async fn refused_credentials_are_never_printed(adapter: &'static str) {
    let proxy = proxy();
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    let wrong = format!("http://dt-user:WR0NG-pass@127.0.0.1:{}", proxy.port());
    let (_, log) = tokio::task::block_in_place(|| {
        env_bot(adapter, &sim, &[("ALL_PROXY", wrong)], || {
            proxy.requests().len() >= 2
        })
    });
    assert!(
        proxy.requests().len() >= 2,
        "{adapter}: the bot retried through the proxy: {:?}\n{log}",
        proxy.requests()
    );
    assert!(
        sim.snapshot().conns.is_empty(),
        "{adapter}: nothing got past the proxy"
    );
    // "dt-user:WR0NG-pass" in base64, as it would appear in a Proxy-Authorization header.
    for secret in ["WR0NG-pass", "ZHQtdXNlcjpXUjBORy1wYXNz"] {
        assert!(
            !log.contains(secret),
            "{adapter}: the log holds the credentials:\n{log}"
        );
    }
    assert!(
        log.lines()
            .any(|l| l.contains("WARN") && l.contains("dingtalk")),
        "{adapter}: the failure is logged:\n{log}"
    );
}

per_adapter! {
    tokio_reads_the_environment: environment_is_read("tokio");
    async_std_reads_the_environment: environment_is_read("async-std");
    blocking_reads_the_environment: environment_is_read("blocking");
    tokio_never_prints_refused_credentials: refused_credentials_are_never_printed("tokio");
    async_std_never_prints_refused_credentials: refused_credentials_are_never_printed("async-std");
    blocking_never_prints_refused_credentials: refused_credentials_are_never_printed("blocking");
}
