//! Two replicas of one bot sharing state through Redis: a card callback DingTalk redelivers to
//! the second replica (its first ack was late, say) runs the handler once, and both replicas
//! answer the same ack; the access token is refreshed by one replica for both.
//!
//! Redis: `REDIS_URL` (e.g. `redis://127.0.0.1:6379`), or, when it is not set, a
//! `redis-server` this example starts on a free loopback port (Debian: `apt-get install
//! redis-server`). The app is the embedded emulator. Each replica is a `Client` of its own here
//! (own token cache, own deduplication, as separate processes would have).
//!
//! Run: `cargo run -p dingtalk-tokio --features redis --example replicas`

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use dingtalk_core::model::{CardCallbackResponse, CardParamMap};
use dingtalk_core::{Credentials, Endpoints};
use dingtalk_sim::{Sim, SimConfig};
use dingtalk_tokio::{Client, HandlerError, RedisStore, StateStore, StoreConfig};

/// A `redis-server` started by the example, killed when dropped.
struct LocalRedis(std::process::Child);

impl Drop for LocalRedis {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn local_redis() -> Result<(String, LocalRedis), Box<dyn std::error::Error>> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let child = std::process::Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
        ])
        .stdout(std::process::Stdio::null())
        .spawn()
        .map_err(|e| format!("REDIS_URL is not set and redis-server cannot start: {e}"))?;
    for _ in 0..200 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok((format!("redis://127.0.0.1:{port}"), LocalRedis(child)));
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    Err("redis-server did not start".into())
}

fn replica(
    name: &'static str,
    sim: &Sim,
    store: Arc<dyn StateStore>,
    calls: Arc<AtomicUsize>,
) -> Result<Client, dingtalk_tokio::Error> {
    let (id, secret) = sim.credentials();
    Client::builder(Credentials::new(id, secret))
        .endpoints(Endpoints::single(sim.base_url()))
        .state_store(store, StoreConfig::default())
        .on_card_callback(move |cb, _api| {
            let calls = calls.clone();
            async move {
                calls.fetch_add(1, Ordering::SeqCst);
                println!("{name}: handling the card action on {}", cb.out_track_id);
                Ok::<_, HandlerError>(Some(CardCallbackResponse {
                    card_update_options: None,
                    card_data: Some(CardParamMap::default().with("handledBy", name)),
                    user_private_data: None,
                }))
            }
        })
        .build()
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
    let (url, _local) = match std::env::var("REDIS_URL") {
        Ok(url) if !url.is_empty() => (url, None),
        _ => {
            let (url, local) = local_redis()?;
            (url, Some(local))
        }
    };
    let store: Arc<dyn StateStore> = Arc::new(RedisStore::open(&url, Duration::from_secs(1))?);
    let sim = Sim::start(SimConfig::default()).await?;
    let calls = Arc::new(AtomicUsize::new(0));
    let a = replica("replica-a", &sim, store.clone(), calls.clone())?;
    let b = replica("replica-b", &sim, store, calls.clone())?;
    let (stop_a, stop_b) = (a.stop_handle(), b.stop_handle());
    let ra = tokio::spawn(async move { a.run().await });
    let rb = tokio::spawn(async move { b.run().await });
    sim.wait_connections(2, Duration::from_secs(10)).await?;
    let conns: Vec<u64> = sim.snapshot().conns.iter().map(|c| c.id).collect();

    let data = serde_json::json!({
        "outTrackId": "order-42", "corpId": "dingSimCorp", "userId": "sim-user",
        "content": serde_json::json!({"cardPrivateData": {"params": {"action": "approve"}}}).to_string(),
    })
    .to_string();
    let id = sim
        .push_frame_to(conns[0], "CALLBACK", "/v1.0/card/instances/callback", &data)
        .ok_or("no connection")?;
    let first = sim.wait_ack(&id, Duration::from_secs(10)).await?;
    println!("ack on connection {}: {}", first.conn, first.data);
    sim.redeliver_to(&id, conns[1])
        .ok_or("no second connection")?;
    let snap = sim
        .wait_for("the second ack", Duration::from_secs(10), |s| {
            s.acks_for(&id).len() >= 2
        })
        .await?;
    let second = snap.acks_for(&id)[1].clone();
    println!(
        "redelivered to connection {}, ack: {}",
        second.conn, second.data
    );
    println!(
        "handler calls in total: {} (same ack: {})",
        calls.load(Ordering::SeqCst),
        first.data == second.data
    );
    stop_a.stop();
    stop_b.stop();
    ra.await??;
    rb.await??;
    if calls.load(Ordering::SeqCst) != 1 || first.data != second.data {
        return Err("the replicas did not share the message".into());
    }
    Ok(())
}
