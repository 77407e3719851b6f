//! One replica of a bot whose replicas share state through Redis, for the replica tests (each
//! replica is its own process).
//!
//! `replica_bot <tokio|async-std|blocking> <emulator base URL> <client id> <client secret>
//! <redis URL> <handled-log path> serve` runs the bot until killed: each card callback appends
//! `card <outTrackId>` to the log, each bot message `bot <text>` (one `write` per line, so
//! several processes can share the log).
//!
//! A bot message `ai-card` starts an AI card, writes `left open` to it and never returns (a
//! test kills the process: the card is left open, as by a crash).
//!
//! `replica_bot … tokens <n>` asks for the access token `n` times at once through an
//! `ApiClient` sharing the token via Redis, prints `ok`, and exits.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test helper aborts

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use dingtalk_core::model::{CardCallbackResponse, CardParamMap};
use dingtalk_core::{Credentials, Endpoints};
use dingtalk_driver::{RedisStore, StateStore, StoreConfig};

fn log_line(path: &str, line: &str) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    f.write_all(format!("{line}\n").as_bytes()).unwrap();
}

fn answer() -> CardCallbackResponse {
    CardCallbackResponse {
        card_update_options: None,
        card_data: Some(CardParamMap::default().with("handled", "once")),
        user_private_data: None,
    }
}

fn store_config() -> StoreConfig {
    StoreConfig {
        // A test kills Redis: come back to it soon.
        retry_after_failure: Duration::from_millis(500),
        op_timeout: Duration::from_millis(500),
        // A test kills a replica with an open AI card: the others close it soon.
        ai_card_lease: Duration::from_secs(1),
        ..StoreConfig::default()
    }
}

fn main() {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter("warn")
        .with_ansi(false)
        .init();
    let args: Vec<String> = std::env::args().collect();
    let [_, adapter, base, id, secret, redis, log, mode, rest @ ..] = &args[..] else {
        panic!("usage: replica_bot <adapter> <base> <id> <secret> <redis> <log> <mode> [n]");
    };
    let credentials = Credentials::new(id, secret);
    let endpoints = Endpoints::single(base);
    let store: Arc<dyn StateStore> =
        Arc::new(RedisStore::open(redis, Duration::from_millis(500)).unwrap());
    if mode == "tokens" {
        let n: usize = rest.first().map_or(50, |n| n.parse().unwrap());
        tokens(adapter, credentials, endpoints, store, n);
        println!("ok");
        return;
    }
    let log = log.clone();
    match adapter.as_str() {
        "tokio" => {
            let (l1, l2) = (log.clone(), log);
            let client = dingtalk_tokio::Client::builder(credentials)
                .endpoints(endpoints)
                .state_store(store, store_config())
                .on_bot_message(move |ctx| {
                    let log = l1.clone();
                    async move {
                        log_line(&log, &format!("bot {}", ctx.text().unwrap_or_default()));
                        if ctx.text() == Some("ai-card") {
                            let card = ctx.ai_card(Default::default()).await?;
                            card.append("left open").unwrap();
                            std::future::pending::<()>().await;
                        }
                        Ok::<(), dingtalk_tokio::HandlerError>(())
                    }
                })
                .on_card_callback(move |cb, _api| {
                    let log = l2.clone();
                    async move {
                        log_line(&log, &format!("card {}", cb.out_track_id));
                        Ok::<_, dingtalk_tokio::HandlerError>(Some(answer()))
                    }
                })
                .build()
                .unwrap();
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(client.run()).unwrap();
        }
        "async-std" => {
            let (l1, l2) = (log.clone(), log);
            let client = dingtalk_async_std::Client::builder(credentials)
                .endpoints(endpoints)
                .state_store(store, store_config())
                .on_bot_message(move |ctx| {
                    let log = l1.clone();
                    async move {
                        log_line(&log, &format!("bot {}", ctx.text().unwrap_or_default()));
                        if ctx.text() == Some("ai-card") {
                            let card = ctx.ai_card(Default::default()).await?;
                            card.append("left open").unwrap();
                            std::future::pending::<()>().await;
                        }
                        Ok::<(), dingtalk_async_std::HandlerError>(())
                    }
                })
                .on_card_callback(move |cb, _api| {
                    let log = l2.clone();
                    async move {
                        log_line(&log, &format!("card {}", cb.out_track_id));
                        Ok::<_, dingtalk_async_std::HandlerError>(Some(answer()))
                    }
                })
                .build()
                .unwrap();
            async_std::task::block_on(client.run()).unwrap();
        }
        "blocking" => {
            let (l1, l2) = (log.clone(), log);
            let client = dingtalk_blocking::Client::builder(credentials)
                .endpoints(endpoints)
                .state_store(store, store_config())
                .on_bot_message(move |ctx| {
                    log_line(&l1, &format!("bot {}", ctx.text().unwrap_or_default()));
                    if ctx.text() == Some("ai-card") {
                        let card = ctx.ai_card(Default::default())?;
                        card.append("left open").unwrap();
                        loop {
                            std::thread::park();
                        }
                    }
                    Ok::<(), dingtalk_blocking::HandlerError>(())
                })
                .on_card_callback(move |cb, _api| {
                    log_line(&l2, &format!("card {}", cb.out_track_id));
                    Ok::<_, dingtalk_blocking::HandlerError>(Some(answer()))
                })
                .build()
                .unwrap();
            client.run().unwrap();
        }
        other => panic!("unknown adapter {other}"),
    }
}

/// `n` concurrent token requests through one API client sharing the token via `store`.
fn tokens(
    adapter: &str,
    credentials: Credentials,
    endpoints: Endpoints,
    store: Arc<dyn StateStore>,
    n: usize,
) {
    match adapter {
        "tokio" => {
            let api = dingtalk_tokio::ApiClient::new(credentials, endpoints)
                .unwrap()
                .with_state_store(store, store_config());
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let calls = (0..n).map(|_| api.token());
                for r in futures_util::future::join_all(calls).await {
                    r.unwrap();
                }
            });
        }
        "blocking" => {
            let api = dingtalk_blocking::ApiClient::new(credentials, endpoints)
                .unwrap()
                .with_state_store(store, store_config());
            std::thread::scope(|s| {
                let calls: Vec<_> = (0..n).map(|_| s.spawn(|| api.token())).collect();
                for c in calls {
                    c.join().unwrap().unwrap();
                }
            });
        }
        _ => {
            // The async-io API client.
            let api = dingtalk_async_std::ApiClient::new(credentials, endpoints)
                .unwrap()
                .with_state_store(store, store_config());
            async_std::task::block_on(async {
                let calls = (0..n).map(|_| api.token());
                for r in futures_util::future::join_all(calls).await {
                    r.unwrap();
                }
            });
        }
    }
}
