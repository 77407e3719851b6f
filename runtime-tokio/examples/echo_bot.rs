//! Echo bot.
//!
//! * Without credentials: starts the DingTalk emulator in-process, plays a short conversation
//!   (a one-to-one text, a group message that @-mentions the bot, a picture), prints each
//!   message and the bot's reply, then exits.
//! * With `DINGTALK_CLIENT_ID` / `DINGTALK_CLIENT_SECRET` (and optionally
//!   `DINGTALK_OPENAPI_ENDPOINT`): connects there, answers every text message with the same text
//!   through its session webhook, and runs until Ctrl-C.
//!
//! Run: `cargo run -p dingtalk-tokio --example echo_bot`

use std::time::Duration;

use dingtalk_core::model::Content;
use dingtalk_sim::{Sim, SimConfig};
use dingtalk_tokio::{BotContext, Client, ClientBuilder, HandlerError, env_config};

async fn echo(ctx: BotContext) -> Result<(), HandlerError> {
    match ctx.message().content() {
        Content::Text { .. } => {
            let text = ctx.text().unwrap_or_default().to_owned();
            ctx.reply_text(text).await?;
        }
        Content::Picture { download_code } => {
            let bytes = ctx.download(&download_code).await?;
            ctx.reply_text(format!("got your picture ({} bytes)", bytes.len()))
                .await?;
        }
        other => {
            ctx.reply_text(format!("I can't echo that yet: {other:?}"))
                .await?;
        }
    }
    Ok(())
}

fn bot(builder: ClientBuilder) -> Result<Client, dingtalk_tokio::Error> {
    builder.on_bot_message(echo).build()
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
    match env_config() {
        Some((credentials, endpoints)) => {
            let client = bot(Client::builder(credentials).endpoints(endpoints))?;
            let stop = client.stop_handle();
            tokio::spawn(async move {
                let _ = tokio::signal::ctrl_c().await;
                stop.stop();
            });
            println!("echo bot connected; Ctrl-C stops");
            client.run().await?;
            Ok(())
        }
        None => demo().await,
    }
}

/// The embedded-emulator conversation.
async fn demo() -> Result<(), Box<dyn std::error::Error>> {
    let sim = Sim::start(SimConfig::default()).await?;
    println!(
        "No DINGTALK_CLIENT_ID/SECRET set: running against the embedded emulator at {}\n",
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
    Ok(())
}
