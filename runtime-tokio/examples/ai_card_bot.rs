//! An AI-card bot, as LLM bots answer in DingTalk: each question gets an AI card, shown at once
//! in its processing state, then streamed as the answer is produced, then finished. A fake
//! token producer stands in for the LLM (swap `fake_llm` for your model's stream). Markdown from
//! the model is converted to what DingTalk renders (the table and the code block below). If the
//! producer fails, the card is closed as failed with the text so far; if the card cannot be
//! created, the answer goes out as markdown instead.
//!
//! Against the embedded emulator it asks one question, prints what the card shows after each
//! update, and exits; with `DINGTALK_CLIENT_ID` / `DINGTALK_CLIENT_SECRET` set it serves until
//! Ctrl-C (the app needs the `Card.Streaming.Write` and `Card.Instance.Write` permissions).
//!
//! Run: `cargo run -p dingtalk-tokio --example ai_card_bot`

use std::time::Duration;

use dingtalk_core::aicard::AiCardOptions;
use dingtalk_sim::{CardChange, Chat, Sim, SimConfig};
use dingtalk_tokio::{AiCardOutcome, Client, ClientBuilder, HandlerError, env_config};
use futures_util::StreamExt;

/// Stands in for an LLM: the answer to `question`, a few characters at a time.
fn fake_llm(question: &str) -> impl futures_util::Stream<Item = Result<String, String>> + use<> {
    let answer = format!(
        "## You asked\n\n> {question}\n\nHere is a summary:\n\n| item | status |\n|---|---|\n\
         | build | **passed** |\n| deploy | pending |\n\nRun it with:\n\n```\ncargo run\n```\n"
    );
    let pieces: Vec<String> = answer
        .chars()
        .collect::<Vec<_>>()
        .chunks(4)
        .map(|c| c.iter().collect())
        .collect();
    futures_util::stream::iter(pieces).then(|piece| async move {
        tokio::time::sleep(Duration::from_millis(15)).await; // a model's pace
        Ok(piece)
    })
}

fn bot(builder: ClientBuilder) -> Result<Client, dingtalk_tokio::Error> {
    builder
        .on_bot_message(|ctx| async move {
            let question = ctx.text().unwrap_or_default().to_owned();
            let options = AiCardOptions::default()
                .with_data("title", "Assistant")
                .failure_note("\n\n*(the answer was interrupted)*");
            let card = ctx.ai_card(options).await?;
            let mut tokens = std::pin::pin!(fake_llm(&question));
            while let Some(token) = tokens.next().await {
                match token {
                    Ok(t) => card.append(&t)?,
                    Err(e) => {
                        card.fail(&e).await;
                        return Ok(());
                    }
                }
            }
            match card.finish().await {
                AiCardOutcome::Finished { cards } => println!("answer finished in {cards} card(s)"),
                other => println!("answer ended: {other:?}"),
            }
            Ok::<(), HandlerError>(())
        })
        .build()
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
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
    let (id, secret) = sim.credentials();
    let client = bot(Client::builder(dingtalk_core::Credentials::new(id, secret))
        .endpoints(dingtalk_core::Endpoints::single(sim.base_url())))?;
    let running = tokio::spawn({
        let client = client.clone();
        async move { client.run().await }
    });
    let wait = Duration::from_secs(10);
    sim.wait_connections(1, wait).await?;
    sim.bot_text("how is the release going?", Chat::Group);
    let snap = sim
        .wait_for("a finished card", wait, |s| {
            s.cards.values().any(|c| c.flow_status() == Some("3"))
        })
        .await?;
    let card = snap.cards.values().next().ok_or("no card")?;
    println!("card template {}", card.template_id);
    for change in &card.history {
        match change {
            CardChange::Created(d) => println!("created: flowStatus {}", d["flowStatus"]),
            CardChange::Updated(d) => println!("updated: {d:?}"),
            CardChange::Streamed { content, .. } => {
                println!("streamed {} bytes", content.len())
            }
        }
    }
    println!("final card text:\n{}", card.data["msgContent"]);
    println!("flowStatus {}", card.flow_status().unwrap_or_default());
    client.stop_handle().stop();
    running.await??;
    Ok(())
}
