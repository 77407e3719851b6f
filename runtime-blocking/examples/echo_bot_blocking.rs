//! Echo bot on plain threads (no async runtime in the bot itself).
//!
//! * Without credentials: starts the DingTalk emulator (which runs its own small tokio runtime),
//!   plays a short conversation, prints each message and the bot's reply, then exits.
//! * With `DINGTALK_CLIENT_ID` / `DINGTALK_CLIENT_SECRET` (and optionally
//!   `DINGTALK_OPENAPI_ENDPOINT`): answers every text message with the same text until the
//!   process is interrupted.
//!
//! Run: `cargo run -p dingtalk-blocking --example echo_bot_blocking`

use std::time::Duration;

use dingtalk_blocking::{BotContext, Client, ClientBuilder, HandlerError, env_config};
use dingtalk_core::model::Content;
use dingtalk_sim::{BackgroundSim, SimConfig};

fn echo(ctx: BotContext) -> Result<(), HandlerError> {
    match ctx.message().content() {
        Content::Text { .. } => {
            let text = ctx.text().unwrap_or_default().to_owned();
            ctx.reply_text(text)?;
        }
        Content::Picture { download_code } => {
            let bytes = ctx.download(&download_code)?;
            ctx.reply_text(format!("got your picture ({} bytes)", bytes.len()))?;
        }
        other => ctx.reply_text(format!("I can't echo that yet: {other:?}"))?,
    }
    Ok(())
}

fn bot(builder: ClientBuilder) -> Result<Client, dingtalk_blocking::Error> {
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
        client.run()?;
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
    let running = std::thread::spawn(move || client.run());
    sim.block_on(sim.play_demo_conversation(Duration::from_secs(10), |line| println!("{line}")))?;
    stop.stop();
    running.join().map_err(|_| "bot thread panicked")??;
    Ok(())
}
