//! The clients of the e2e bench (`tests/benches/e2e.rs`), each run as a small binary of its own
//! (`e2e_floor`, `e2e_tokio`, `e2e_tokio_redis`, `e2e_async_std`, `e2e_blocking`: only what it
//! uses linked in), so that its peak RSS and CPU are what a bot built on that adapter alone
//! would show. Arguments:
//! `<floor|tokio|tokio-1thread|async-std|blocking> <gateway base URL> <plain|replies>
//! <connections> <redis URL or ->`.
#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout,
    clippy::print_stderr
)] // a bench helper

use std::sync::Arc;
use std::time::Duration;

use dingtalk_core::{Credentials, Endpoints};

/// A client's command line.
#[derive(Debug, Clone)]
pub struct Args {
    /// Which client (`tokio` or `tokio-1thread` for the tokio binary).
    pub client: String,
    base: String,
    reply: bool,
    conns: usize,
    redis: Option<String>,
}

impl Args {
    /// From the process's arguments.
    pub fn parse() -> Self {
        let args: Vec<String> = std::env::args().collect();
        Self {
            client: args[1].clone(),
            base: args[2].clone(),
            reply: args[3] == "replies",
            conns: args[4].parse().unwrap(),
            redis: Some(args[5].clone()).filter(|u| u != "-"),
        }
    }

    fn creds(&self) -> Credentials {
        Credentials::new("bench-client-id", "bench-client-secret")
    }
}

/// dingtalk-tokio, multi-thread (`tokio`) or current-thread (`tokio-1thread`).
pub fn tokio(args: &Args) {
    tokio_with(args, None);
}

/// dingtalk-tokio with the Redis state store (`e2e_tokio_redis`: a binary of its own, so that
/// the plain tokio client's RSS is not that of a bot linking a Redis client).
pub fn tokio_redis(args: &Args) {
    let url = args.redis.as_deref().expect("a Redis URL");
    let store = dingtalk_tokio::RedisStore::open(url, Duration::from_secs(1)).unwrap();
    tokio_with(args, Some(Arc::new(store)));
}

fn tokio_with(args: &Args, store: Option<Arc<dyn dingtalk_tokio::StateStore>>) {
    let rt = if args.client == "tokio" {
        tokio::runtime::Runtime::new().unwrap()
    } else {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    };
    let reply = args.reply;
    let mut builder = dingtalk_tokio::Client::builder(args.creds())
        .endpoints(Endpoints::single(&args.base))
        .connections(args.conns);
    if let Some(store) = store {
        builder = builder.state_store(store, dingtalk_tokio::StoreConfig::default());
    }
    let client = builder
        .on_bot_message(move |ctx| async move {
            if reply {
                ctx.reply_text("ok").await?;
            }
            Ok::<(), dingtalk_tokio::HandlerError>(())
        })
        .build()
        .unwrap();
    rt.block_on(client.run()).unwrap();
}

/// dingtalk-blocking.
pub fn blocking(args: &Args) {
    let reply = args.reply;
    let client = dingtalk_blocking::Client::builder(args.creds())
        .endpoints(Endpoints::single(&args.base))
        .connections(args.conns)
        .on_bot_message(move |ctx| {
            if reply {
                ctx.reply_text("ok")?;
            }
            Ok::<(), dingtalk_blocking::HandlerError>(())
        })
        .build()
        .unwrap();
    client.run().unwrap();
}

/// dingtalk-async-std.
pub fn async_std(args: &Args) {
    let reply = args.reply;
    let client = dingtalk_async_std::Client::builder(args.creds())
        .endpoints(Endpoints::single(&args.base))
        .connections(args.conns)
        .on_bot_message(move |ctx| async move {
            if reply {
                ctx.reply_text("ok").await?;
            }
            Ok::<(), dingtalk_async_std::HandlerError>(())
        })
        .build()
        .unwrap();
    async_std::task::block_on(client.run()).unwrap();
}

/// The floor: open a connection, then read frames and ack each with its `messageId`, flushing
/// once per burst. Nothing else: no dedup, no keepalive, no handler, no reconnect. In replies
/// mode it posts each frame's reply over reqwest's keep-alive pool, at most 64 at once.
pub fn floor(args: &Args) {
    let (base, reply) = (args.base.as_str(), args.reply);
    use futures_util::{FutureExt, SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
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
    #[derive(serde::Deserialize)]
    struct FrameWithData<'a> {
        #[serde(borrow)]
        data: Option<std::borrow::Cow<'a, str>>,
    }
    #[derive(serde::Deserialize)]
    struct Data {
        #[serde(rename = "sessionWebhook")]
        session_webhook: Option<String>,
    }
    let base = base.to_owned();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async move {
        let tls = dingtalk_tokio::default_tls_config().unwrap();
        let http = reqwest::Client::builder()
            .use_preconfigured_tls((*tls).clone())
            .tcp_nodelay(true)
            .build()
            .unwrap();
        let open: serde_json::Value = http
            .post(format!("{base}/v1.0/gateway/connections/open"))
            .json(&serde_json::json!({
                "clientId": "bench-client-id", "clientSecret": "bench-client-secret",
                "subscriptions": [{"type": "CALLBACK", "topic": "/v1.0/im/bot/messages/get"}],
                "ua": "floor",
            }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let url = format!(
            "{}?ticket={}",
            open["endpoint"].as_str().unwrap(),
            open["ticket"].as_str().unwrap()
        );
        let (mut ws, _) = tokio_tungstenite::connect_async_with_config(url.as_str(), None, true)
            .await
            .unwrap();
        let permits = Arc::new(tokio::sync::Semaphore::new(64));
        let handle = |msg: Message| {
            let Message::Text(t) = msg else { return None };
            let f = serde_json::from_str::<Frame<'_>>(t.as_str()).ok()?;
            if f.headers.message_id.starts_with('p') {
                // A SYSTEM ping: echo its data, as the protocol requires.
                let data = serde_json::from_str::<FrameWithData<'_>>(t.as_str()).ok()?.data?;
                let ack = serde_json::json!({
                    "code": 200, "message": "OK", "data": data,
                    "headers": {"contentType": "application/json", "messageId": f.headers.message_id},
                });
                return Some(Message::text(ack.to_string()));
            }
            let ack = format!(
                r#"{{"code":200,"headers":{{"contentType":"application/json","messageId":"{}"}},"message":"OK","data":"{{\"response\":null}}"}}"#,
                f.headers.message_id
            );
            if reply && f.headers.message_id.starts_with('m') {
                let webhook = serde_json::from_str::<FrameWithData<'_>>(t.as_str())
                    .ok()
                    .and_then(|f| f.data)
                    .and_then(|d| serde_json::from_str::<Data>(&d).ok())
                    .and_then(|d| d.session_webhook);
                if let Some(url) = webhook {
                    let http = http.clone();
                    let permits = permits.clone();
                    tokio::spawn(async move {
                        let _permit = permits.acquire_owned().await;
                        let _ = http
                            .post(url)
                            .json(&serde_json::json!({"msgtype": "text", "text": {"content": "ok"}}))
                            .send()
                            .await;
                    });
                }
            }
            Some(Message::text(ack))
        };
        while let Some(Ok(msg)) = ws.next().await {
            let mut acks = Vec::new();
            acks.extend(handle(msg));
            while let Some(Some(Ok(msg))) = ws.next().now_or_never() {
                acks.extend(handle(msg));
            }
            for ack in acks {
                if ws.feed(ack).await.is_err() {
                    return;
                }
            }
            if ws.flush().await.is_err() {
                return;
            }
        }
    });
}
