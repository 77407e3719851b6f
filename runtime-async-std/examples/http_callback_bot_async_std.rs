//! An HTTP-callback bot on the async-io stack (async-std, smol or any `block_on`): DingTalk
//! POSTs each message (outgoing robot, `/robot`) and each subscribed event (`/events`,
//! encrypted) to your server; the same async handlers as Stream mode answer (verified,
//! deduplicated, bounded, answered in time). The server is one future: no executor needed.
//!
//! Against the embedded emulator it serves on a loopback port, has the emulator POST a signed
//! message and an encrypted event, and prints what came back; with `DINGTALK_CLIENT_ID` /
//! `DINGTALK_CLIENT_SECRET` set it serves on `DINGTALK_CALLBACK_ADDR` (default `0.0.0.0:8080`),
//! events too when `DINGTALK_EVENT_TOKEN` and `DINGTALK_EVENT_AES_KEY` are set.
//!
//! Run: `cargo run -p dingtalk-async-std --features http-callback --example http_callback_bot_async_std`

use std::time::Duration;

use dingtalk_async_std::{Client, ClientBuilder, EventAck, HandlerError, env_config};
use dingtalk_core::callback::EventCrypto;
use dingtalk_sim::{BackgroundSim, Chat, SimConfig};

fn bot(builder: ClientBuilder) -> Result<Client, dingtalk_async_std::Error> {
    builder
        .on_bot_message(|ctx| async move {
            let text = ctx.text().unwrap_or_default().to_owned();
            ctx.reply_text(format!("received over HTTP: {text}"))
                .await?;
            Ok::<(), HandlerError>(())
        })
        .on_event(|event, _api| async move {
            let corp = event.corp_id.as_deref().unwrap_or("?");
            println!("event {} from {corp}", event.event_type);
            Ok::<_, HandlerError>(EventAck::Success)
        })
        .build()
}

fn crypto_from_env(app_key: &str) -> Option<EventCrypto> {
    let token = std::env::var("DINGTALK_EVENT_TOKEN").ok()?;
    let key = std::env::var("DINGTALK_EVENT_AES_KEY").ok()?;
    EventCrypto::new(&token, &key, app_key).ok()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    if let Some((credentials, endpoints)) = env_config() {
        let crypto = crypto_from_env(credentials.client_id());
        let client = bot(Client::builder(credentials).endpoints(endpoints))?;
        let addr =
            std::env::var("DINGTALK_CALLBACK_ADDR").unwrap_or_else(|_| "0.0.0.0:8080".into());
        let listener = std::net::TcpListener::bind(&addr)?;
        println!("serving HTTP callbacks on {addr}; interrupt to stop");
        async_std::task::block_on(dingtalk_async_std::http_callback::serve(
            listener, &client, crypto,
        ))?;
        return Ok(());
    }
    let sim = BackgroundSim::start(SimConfig::default())?;
    let (id, secret) = sim.credentials();
    let client = bot(
        Client::builder(dingtalk_core::Credentials::new(&id, secret))
            .endpoints(dingtalk_core::Endpoints::single(sim.base_url())),
    )?;
    let crypto = EventCrypto::new("token", "4g5j64qlyl3zvetqxz5jiocdr586fn2zvjpa8zls3ij", &id)?;
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let base = format!("http://{}", listener.local_addr()?);
    let served = crypto.clone();
    std::thread::spawn(move || {
        async_std::task::block_on(dingtalk_async_std::http_callback::serve(
            listener,
            &client,
            Some(served),
        ))
    });
    let (status, body) =
        sim.block_on(sim.robot_callback(&format!("{base}/robot"), "hello", Chat::Group))?;
    println!("robot callback answered {status} {body}");
    let snap = sim.block_on(sim.wait_for("the reply", Duration::from_secs(10), |s| {
        !s.webhooks.is_empty()
    }))?;
    println!("bot replied: {}", snap.webhooks[0].body["text"]["content"]);
    let (status, text) = sim.block_on(sim.event_callback(
        &format!("{base}/events"),
        &crypto,
        "user_add_org",
        serde_json::json!({"UserId": ["u1"]}),
    ))?;
    println!("event callback answered {status} {text}");
    Ok(())
}
