//! A card bot: `/vote` answers with an interactive card (created from a template and delivered
//! to the conversation); a click on its button comes back over Stream to the `CardRouter`, whose
//! answer updates the card in the ack. Against the embedded emulator (its card button is
//! `sim_button`); with credentials set it serves until Ctrl-C (use your own template id).
//!
//! Run: `cargo run -p dingtalk-tokio --example card_bot`

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use dingtalk_core::model::{CardCallbackResponse, CardParamMap, CardUpdateOptions};
use dingtalk_sim::{Chat, Sim, SimConfig};
use dingtalk_tokio::{CardRouter, Client, ClientBuilder, HandlerError, Router, env_config};

const TEMPLATE: &str = "your-card-template-id.schema";

fn bot(builder: ClientBuilder) -> Result<Client, dingtalk_tokio::Error> {
    let votes = Arc::new(AtomicU64::new(0));
    builder
        .router(
            Router::new().command("vote", "start a vote", |ctx, _| async move {
                let track = format!("vote-{}", ctx.message().msg_id);
                ctx.reply_card(TEMPLATE, track, CardParamMap::default().with("votes", "0"))
                    .await?;
                Ok::<(), HandlerError>(())
            }),
        )
        .card_router(CardRouter::new().on_action("sim_button", move |cb, _api| {
            let votes = votes.clone();
            async move {
                let n = votes.fetch_add(1, Ordering::SeqCst) + 1;
                println!("vote from {} on {}", cb.user_id, cb.out_track_id);
                Ok::<_, HandlerError>(Some(CardCallbackResponse {
                    card_update_options: Some(CardUpdateOptions {
                        update_card_data_by_key: true,
                        update_private_data_by_key: false,
                    }),
                    card_data: Some(CardParamMap::default().with("votes", n.to_string())),
                    user_private_data: None,
                }))
            }
        }))
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
    sim.bot_text("/vote", Chat::Group);
    let snap = sim
        .wait_for("the card", wait, |s| {
            s.api_calls
                .iter()
                .any(|r| r.path.starts_with("/v1.0/card/instances"))
        })
        .await?;
    let card = snap
        .api_calls
        .iter()
        .find(|r| r.path.starts_with("/v1.0/card/instances"))
        .ok_or("no card")?;
    let track = card.body["outTrackId"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    println!("card {track} delivered ({})", card.path);
    for _ in 0..2 {
        let click = sim.card_callback(&track, serde_json::json!({"choice": "yes"}));
        let ack = sim.wait_ack(&click, wait).await?;
        println!(
            "the card now shows: {}",
            ack.data["response"]["cardData"]["cardParamMap"]
        );
    }
    client.stop_handle().stop();
    running.await??;
    Ok(())
}
