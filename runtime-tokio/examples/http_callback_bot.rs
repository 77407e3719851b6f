//! An HTTP-callback bot: DingTalk POSTs each message to your server (outgoing robot, `/robot`)
//! and each subscribed organisation event (`/events`, encrypted) instead of pushing them over
//! Stream; the same handlers answer. Every request is verified (signature, one-hour window,
//! AES), resent copies are dropped, handlers are bounded, and the answer goes out within the
//! platform's deadline.
//!
//! Against the embedded emulator it serves on a loopback port, has the emulator POST a signed
//! message and an encrypted event to it, and prints what came back; with
//! `DINGTALK_CLIENT_ID` / `DINGTALK_CLIENT_SECRET` set it serves on `DINGTALK_CALLBACK_ADDR`
//! (default `0.0.0.0:8080`), events too when `DINGTALK_EVENT_TOKEN` and
//! `DINGTALK_EVENT_AES_KEY` are set, until Ctrl-C.
//!
//! Run: `cargo run -p dingtalk-tokio --features http-callback --example http_callback_bot`

use std::time::Duration;

use dingtalk_core::callback::EventCrypto;
use dingtalk_sim::{Chat, Sim, SimConfig};
use dingtalk_tokio::{Client, ClientBuilder, EventAck, HandlerError, env_config};

fn bot(builder: ClientBuilder) -> Result<Client, dingtalk_tokio::Error> {
    builder
        .on_bot_message(|ctx| async move {
            let text = ctx.text().unwrap_or_default().to_owned();
            ctx.reply_text(format!("received over HTTP: {text}"))
                .await?;
            Ok::<(), HandlerError>(())
        })
        .on_event(|event, _api| async move {
            println!(
                "event {} from {}",
                event.event_type,
                event.corp_id.as_deref().unwrap_or("?")
            );
            Ok::<_, HandlerError>(EventAck::Success)
        })
        .build()
}

fn crypto_from_env(app_key: &str) -> Option<EventCrypto> {
    let token = std::env::var("DINGTALK_EVENT_TOKEN").ok()?;
    let key = std::env::var("DINGTALK_EVENT_AES_KEY").ok()?;
    EventCrypto::new(&token, &key, app_key).ok()
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    if let Some((credentials, endpoints)) = env_config() {
        let crypto = crypto_from_env(credentials.client_id());
        let client = bot(Client::builder(credentials).endpoints(endpoints))?;
        let addr =
            std::env::var("DINGTALK_CALLBACK_ADDR").unwrap_or_else(|_| "0.0.0.0:8080".into());
        let listener = tokio::net::TcpListener::bind(&addr).await?;
        println!("serving HTTP callbacks on {addr}");
        let app = dingtalk_tokio::http_callback::router(&client, crypto);
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await?;
        return Ok(());
    }
    let sim = Sim::start(SimConfig::default()).await?;
    let (id, secret) = sim.credentials();
    let client = bot(
        Client::builder(dingtalk_core::Credentials::new(&id, secret))
            .endpoints(dingtalk_core::Endpoints::single(sim.base_url())),
    )?;
    let crypto = EventCrypto::new("token", "4g5j64qlyl3zvetqxz5jiocdr586fn2zvjpa8zls3ij", &id)?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let app = dingtalk_tokio::http_callback::router(&client, Some(crypto.clone()));
    tokio::spawn(async move { axum::serve(listener, app).await });
    let (status, body) = sim
        .robot_callback(&format!("{base}/robot"), "hello", Chat::Group)
        .await?;
    println!("robot callback answered {status} {body}");
    let snap = sim
        .wait_for("the reply", Duration::from_secs(10), |s| {
            !s.webhooks.is_empty()
        })
        .await?;
    println!("bot replied: {}", snap.webhooks[0].body["text"]["content"]);
    let (status, text) = sim
        .event_callback(
            &format!("{base}/events"),
            &crypto,
            "user_add_org",
            serde_json::json!({"UserId": ["u1"]}),
        )
        .await?;
    println!("event callback answered {status} {text}");
    Ok(())
}
