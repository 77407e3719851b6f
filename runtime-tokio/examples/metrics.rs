//! Metrics and lifecycle: the bot's counters exported in the Prometheus text format (through
//! the `metrics` facade and `metrics-exporter-prometheus`; any other exporter works the same
//! way), a lifecycle hook, and `wait_connected` as a readiness check.
//!
//! Against the embedded emulator: plays the demo conversation, then prints the `dingtalk_*`
//! series as a Prometheus scrape would see them. In a service, serve `handle.render()` on your
//! `/metrics` route.
//!
//! Run: `cargo run -p dingtalk-tokio --example metrics`

use std::time::Duration;

use dingtalk_sim::{Sim, SimConfig};
use dingtalk_tokio::{BotContext, Client, HandlerError, Lifecycle};
use metrics_exporter_prometheus::PrometheusBuilder;

async fn echo(ctx: BotContext) -> Result<(), HandlerError> {
    let text = ctx.text().unwrap_or("(not text)").to_owned();
    ctx.reply_text(text).await?;
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let handle = PrometheusBuilder::new().install_recorder()?;
    let sim = Sim::start(SimConfig::default()).await?;
    let (id, secret) = sim.credentials();
    let client = Client::builder(dingtalk_core::Credentials::new(id, secret))
        .endpoints(dingtalk_core::Endpoints::single(sim.base_url()))
        .on_lifecycle(|change| match change {
            Lifecycle::Connected { open, .. } => println!("lifecycle: connected ({open} open)"),
            Lifecycle::Stopped => println!("lifecycle: stopped"),
            other => println!("lifecycle: {other:?}"),
        })
        .on_bot_message(echo)
        .build()?;
    let running = tokio::spawn({
        let client = client.clone();
        async move { client.run().await }
    });
    // Readiness: true once a connection is open.
    let ready = tokio::time::timeout(Duration::from_secs(10), client.wait_connected()).await?;
    println!("ready: {ready}");
    sim.play_demo_conversation(Duration::from_secs(10), |_| {})
        .await?;
    client.stop_handle().stop();
    running.await??;
    println!("\n# the scrape, dingtalk_* series:");
    for line in handle.render().lines() {
        if line.starts_with("dingtalk_") {
            println!("{line}");
        }
    }
    Ok(())
}
