//! An AI-card bot on the async-io stack (async-std, smol, any `block_on`): each question gets
//! an AI card, shown at once in its processing state, then streamed as a (fake) model produces
//! the answer, then finished. Writing to the card never waits; `finish().await` returns once
//! the card is closed.
//!
//! Against the embedded emulator it asks one question and prints the card's final text; with
//! `DINGTALK_CLIENT_ID` / `DINGTALK_CLIENT_SECRET` set it serves until interrupted.
//!
//! Run: `cargo run -p dingtalk-async-std --example ai_card_bot_async_std`

use std::time::Duration;

use dingtalk_async_std::{
    AiCardOptions, AiCardOutcome, Client, ClientBuilder, HandlerError, env_config,
};
use dingtalk_sim::{BackgroundSim, Chat, SimConfig};

/// Stands in for an LLM: the answer, a few words at a time.
fn fake_llm(question: &str) -> Vec<String> {
    format!("You asked **{question}**.\n\n- first point\n- second point\n\nDone.")
        .split_inclusive(' ')
        .map(str::to_owned)
        .collect()
}

fn bot(builder: ClientBuilder) -> Result<Client, dingtalk_async_std::Error> {
    builder
        .on_bot_message(|ctx| async move {
            let question = ctx.text().unwrap_or_default().to_owned();
            let card = ctx
                .ai_card(AiCardOptions::default().with_data("title", "Assistant"))
                .await?;
            for token in fake_llm(&question) {
                card.append(&token)?;
                async_std::task::sleep(Duration::from_millis(10)).await; // a model's pace
            }
            match card.finish().await {
                AiCardOutcome::Finished { cards } => println!("answer finished in {cards} card(s)"),
                other => println!("answer ended: {other:?}"),
            }
            Ok::<(), HandlerError>(())
        })
        .build()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    if let Some((credentials, endpoints)) = env_config() {
        async_std::task::block_on(bot(Client::builder(credentials).endpoints(endpoints))?.run())?;
        return Ok(());
    }
    let sim = BackgroundSim::start(SimConfig::default())?;
    let (id, secret) = sim.credentials();
    let client = bot(Client::builder(dingtalk_core::Credentials::new(id, secret))
        .endpoints(dingtalk_core::Endpoints::single(sim.base_url())))?;
    let stop = client.stop_handle();
    let running = std::thread::spawn(move || async_std::task::block_on(client.run()));
    sim.block_on(sim.wait_connections(1, Duration::from_secs(10)))?;
    sim.bot_text("how is the release going?", Chat::Private);
    let snap = sim.block_on(
        sim.wait_for("a finished card", Duration::from_secs(10), |s| {
            s.cards.values().any(|c| c.flow_status() == Some("3"))
        }),
    )?;
    let card = snap.cards.values().next().ok_or("no card")?;
    println!("final card text:\n{}", card.data["msgContent"]);
    println!("flowStatus {}", card.flow_status().unwrap_or_default());
    stop.stop();
    running.join().map_err(|_| "bot thread panicked")??;
    Ok(())
}
