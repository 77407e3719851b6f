//! `dingtalk-sim serve`: run the emulator by hand and drive a bot against it.

use std::time::Duration;

use dingtalk_sim::{Sim, SimConfig};

const USAGE: &str =
    "usage: dingtalk-sim serve [--port PORT] [--client-id ID] [--client-secret SECRET]";

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    if args.next().as_deref() != Some("serve") {
        eprintln!("{USAGE}");
        std::process::exit(2);
    }
    let mut config = SimConfig::default();
    let mut port = 0u16;
    while let Some(flag) = args.next() {
        let value = args.next().ok_or(USAGE)?;
        match flag.as_str() {
            "--port" => port = value.parse()?,
            "--client-id" => config.client_id = value,
            "--client-secret" => config.client_secret = value,
            _ => return Err(USAGE.into()),
        }
    }
    let sim = Sim::start_on(config, port).await?;
    let (id, secret) = sim.credentials();
    let base = sim.base_url();
    println!("dingtalk-sim listening on {base}");
    println!();
    println!("  DINGTALK_CLIENT_ID={id}");
    println!("  DINGTALK_CLIENT_SECRET={secret}");
    println!("  DINGTALK_OPENAPI_ENDPOINT={base}");
    println!();
    println!(
        "inject a user message:  curl -s -XPOST {base}/_sim/messages -H 'content-type: application/json' -d '{{\"text\":\"hi\"}}'"
    );
    println!("list the bot's replies: curl -s {base}/_sim/replies");
    println!("list the acks:          curl -s {base}/_sim/acks");
    println!();
    println!("Ctrl-C stops.");
    tokio::signal::ctrl_c().await?;
    drop(sim);
    tokio::time::sleep(Duration::from_millis(50)).await;
    Ok(())
}
