//! A bot behind an HTTP proxy.
//!
//! The proxy comes from the standard environment variables (`HTTPS_PROXY`, `HTTP_PROXY`,
//! `ALL_PROXY`, `NO_PROXY`, lower-case too, read as curl reads them), or from
//! `DINGTALK_PROXY` (`http://user:password@host:port`), which this example passes to
//! `ClientBuilder::proxy`. The WebSocket is tunnelled with `CONNECT`; every HTTP call goes
//! through the same proxy. The proxy's password is never logged.
//!
//! * Without credentials: starts the emulator in-process and plays the demo conversation
//!   through the proxy (the emulator is plain http on loopback, so `http_proxy` or `ALL_PROXY`
//!   is the variable that applies).
//! * With `DINGTALK_CLIENT_ID` / `DINGTALK_CLIENT_SECRET`: connects to DingTalk through the
//!   proxy and echoes until Ctrl-C.
//!
//! Run (Debian's tinyproxy listens on 8888 by default):
//! `ALL_PROXY=http://127.0.0.1:8888 cargo run -p dingtalk-tokio --example proxy`

use std::time::Duration;

use dingtalk_sim::{Sim, SimConfig};
use dingtalk_tokio::{BotContext, Client, ClientBuilder, HandlerError, env_config};

async fn echo(ctx: BotContext) -> Result<(), HandlerError> {
    let text = ctx.text().unwrap_or("(not text)").to_owned();
    ctx.reply_text(text).await?;
    Ok(())
}

fn bot(builder: ClientBuilder) -> Result<Client, dingtalk_tokio::Error> {
    let builder = match std::env::var("DINGTALK_PROXY") {
        Ok(url) if !url.is_empty() => builder.proxy(url),
        _ => builder, // the environment's proxies, if any
    };
    let client = builder.on_bot_message(echo).build()?;
    let p = client.proxies();
    match (p.https(), p.http()) {
        (None, None) => println!("no proxy set: connecting directly"),
        // Display shows http://host:port only, never the credentials.
        (https, http) => println!(
            "proxies: https/wss targets via {}, http/ws targets via {}",
            https.map_or("(direct)".into(), ToString::to_string),
            http.map_or("(direct)".into(), ToString::to_string),
        ),
    }
    Ok(client)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
    if let Some((credentials, endpoints)) = env_config() {
        let client = bot(Client::builder(credentials).endpoints(endpoints))?;
        let stop = client.stop_handle();
        tokio::spawn(async move {
            let _ = tokio::signal::ctrl_c().await;
            stop.stop();
        });
        client.run().await?;
        return Ok(());
    }
    let sim = Sim::start(SimConfig::default()).await?;
    println!(
        "running against the embedded emulator at {}",
        sim.base_url()
    );
    let (id, secret) = sim.credentials();
    let client = bot(Client::builder(dingtalk_core::Credentials::new(id, secret))
        .endpoints(dingtalk_core::Endpoints::single(sim.base_url())))?;
    let stop = client.stop_handle();
    let running = tokio::spawn({
        let client = client.clone();
        async move { client.run().await }
    });
    sim.play_demo_conversation(Duration::from_secs(10), |line| println!("{line}"))
        .await?;
    stop.stop();
    running.await??;
    let snap = sim.snapshot();
    let peers: std::collections::BTreeSet<_> = snap
        .conns
        .iter()
        .map(|c| c.peer)
        .chain(snap.opens.iter().map(|o| o.peer))
        .collect();
    println!("the emulator saw the bot connect from {peers:?}");
    Ok(())
}
