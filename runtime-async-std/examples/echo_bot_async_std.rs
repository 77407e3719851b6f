//! Echo bot on the async-io stack, run with `async_std::task::block_on` (it runs the same under
//! `smol::block_on` or `futures_lite::future::block_on`).
//!
//! * Without credentials: starts the DingTalk emulator (a test tool that brings its own small
//!   tokio runtime; the SDK crate itself has no tokio), plays a short conversation, prints each
//!   message and the bot's reply, then exits.
//! * With `DINGTALK_CLIENT_ID` / `DINGTALK_CLIENT_SECRET` (and optionally
//!   `DINGTALK_OPENAPI_ENDPOINT`): answers every text message with the same text until
//!   interrupted.
//!
//! Run: `cargo run -p dingtalk-async-std --example echo_bot_async_std`

use std::time::Duration;

use dingtalk_async_std::{BotContext, Client, ClientBuilder, HandlerError, env_config};
use dingtalk_core::model::Content;
use dingtalk_sim::{BackgroundSim, SimConfig};

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
                .await?
        }
    }
    Ok(())
}

fn bot(builder: ClientBuilder) -> Result<Client, dingtalk_async_std::Error> {
    builder.on_bot_message(echo).build()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
    if let Some((credentials, endpoints)) = env_config() {
        let client = bot(Client::builder(credentials).endpoints(endpoints))?;
        println!("echo bot connected; interrupt to stop");
        async_std::task::block_on(client.run())?;
        return Ok(());
    }
    // The emulator is a tokio program; it runs on its own runtime thread.
    let sim = BackgroundSim::start(SimConfig::default())?;
    println!(
        "No DINGTALK_CLIENT_ID/SECRET set: running against the embedded emulator at {}\n",
        sim.base_url()
    );
    let (id, secret) = sim.credentials();
    let client = bot(Client::builder(dingtalk_core::Credentials::new(id, secret))
        .endpoints(dingtalk_core::Endpoints::single(sim.base_url())))?;
    let stop = client.stop_handle();
    let running = std::thread::spawn(move || async_std::task::block_on(client.run()));
    let played = sim
        .block_on(sim.play_demo_conversation(Duration::from_secs(10), |line| println!("{line}")));
    stop.stop();
    running.join().map_err(|_| "bot thread panicked")??;
    played?;
    Ok(())
}
