//! Several apps in one process: a `Group` runs one client per app (each with its own
//! credentials, token and connection) through one shared handler that knows which app it
//! serves, and one stop handle stops them all.
//!
//! Without credentials it starts two emulators (two apps) in-process, sends each a message,
//! prints the answers and stops. With `DINGTALK_CLIENT_ID`/`DINGTALK_CLIENT_SECRET` and
//! `DINGTALK2_CLIENT_ID`/`DINGTALK2_CLIENT_SECRET` it serves both real apps until Ctrl-C.
//!
//! Run: `cargo run -p dingtalk-tokio --example multi_app`

use std::time::Duration;

use dingtalk_core::{Credentials, Endpoints};
use dingtalk_sim::{Chat, Sim, SimConfig};
use dingtalk_tokio::{BotContext, Client, Group, HandlerError};

/// One handler for every app: `robot_code()` is the app's client id.
async fn answer(ctx: BotContext) -> Result<(), HandlerError> {
    let app = ctx.api().robot_code().to_owned();
    let text = ctx.text().unwrap_or_default().to_owned();
    ctx.reply_text(format!("[{app}] you said: {text}")).await?;
    Ok(())
}

fn client(credentials: Credentials, endpoints: Endpoints) -> Result<Client, dingtalk_tokio::Error> {
    Client::builder(credentials)
        .endpoints(endpoints)
        .on_bot_message(answer)
        .build()
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    if let (Some(id1), Some(s1), Some(id2), Some(s2)) = (
        env("DINGTALK_CLIENT_ID"),
        env("DINGTALK_CLIENT_SECRET"),
        env("DINGTALK2_CLIENT_ID"),
        env("DINGTALK2_CLIENT_SECRET"),
    ) {
        let group = Group::new([
            client(Credentials::new(id1, s1), Endpoints::default())?,
            client(Credentials::new(id2, s2), Endpoints::default())?,
        ]);
        let stop = group.stop_handle();
        tokio::spawn(async move {
            let _ = tokio::signal::ctrl_c().await;
            stop.stop();
        });
        group.run().await?;
        return Ok(());
    }
    let mut sims = Vec::new();
    for app in ["sales-bot", "support-bot"] {
        sims.push(
            Sim::start(SimConfig {
                client_id: app.into(),
                client_secret: format!("{app}-secret"),
                ..SimConfig::default()
            })
            .await?,
        );
    }
    let mut clients = Vec::new();
    for sim in &sims {
        let (id, secret) = sim.credentials();
        println!("app {id}: emulator at {}", sim.base_url());
        clients.push(client(
            Credentials::new(id, secret),
            Endpoints::single(sim.base_url()),
        )?);
    }
    let group = Group::new(clients);
    let stop = group.stop_handle();
    let running = tokio::spawn(async move { group.run().await });
    for (sim, text) in sims.iter().zip(["how much is it?", "it is broken"]) {
        sim.wait_connections(1, Duration::from_secs(10)).await?;
        sim.bot_text(text, Chat::Private);
        let snap = sim
            .wait_for("the reply", Duration::from_secs(10), |s| {
                !s.webhooks.is_empty()
            })
            .await?;
        println!(
            "user: {text}\nbot:  {}",
            snap.webhooks[0].body["text"]["content"]
        );
    }
    stop.stop();
    running.await??;
    println!("both apps stopped");
    Ok(())
}
