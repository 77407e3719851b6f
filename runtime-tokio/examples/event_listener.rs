//! An organisation-event listener: events routed by type (`EventRouter`), the rest to a
//! fallback; `LATER` asks DingTalk to deliver again. Against the embedded emulator, which sends
//! three events; with credentials set it listens until Ctrl-C.
//!
//! Run: `cargo run -p dingtalk-tokio --example event_listener`

use std::time::Duration;

use dingtalk_core::EventAck;
use dingtalk_sim::{Sim, SimConfig};
use dingtalk_tokio::{Client, ClientBuilder, EventRouter, HandlerError, env_config};

fn listener(builder: ClientBuilder) -> Result<Client, dingtalk_tokio::Error> {
    builder
        .event_router(
            EventRouter::new()
                .on("user_add_org", |ev, _api| async move {
                    println!(
                        "welcome: {} joined ({})",
                        ev.data,
                        ev.event_id.unwrap_or_default()
                    );
                    Ok::<_, HandlerError>(EventAck::Success)
                })
                .on("user_leave_org", |ev, _api| async move {
                    println!("goodbye: {}", ev.data);
                    Ok::<_, HandlerError>(EventAck::Success)
                })
                .fallback(|ev, _api| async move {
                    println!("(not handled here: {})", ev.event_type);
                    Ok::<_, HandlerError>(EventAck::Success)
                }),
        )
        .build()
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    if let Some((credentials, endpoints)) = env_config() {
        let client = listener(Client::builder(credentials).endpoints(endpoints))?;
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
    let client = listener(
        Client::builder(dingtalk_core::Credentials::new(id, secret))
            .endpoints(dingtalk_core::Endpoints::single(sim.base_url())),
    )?;
    let running = tokio::spawn({
        let client = client.clone();
        async move { client.run().await }
    });
    sim.wait_connections(1, Duration::from_secs(10)).await?;
    for (kind, data) in [
        ("user_add_org", serde_json::json!({"userId": ["staff-42"]})),
        ("org_dept_create", serde_json::json!({"deptId": [7]})),
        (
            "user_leave_org",
            serde_json::json!({"userId": ["staff-13"]}),
        ),
    ] {
        let id = sim.event(kind, data);
        let ack = sim.wait_ack(&id, Duration::from_secs(10)).await?;
        println!("  acked {kind}: {}", ack.data["status"]);
    }
    client.stop_handle().stop();
    running.await??;
    Ok(())
}
