//! AI-card streaming on every adapter, against the emulator's card state (which enforces
//! DingTalk's limits and errors): processing → inputing → streamed → finished; a burst of
//! tokens coalesced into few calls; a long answer continued in new cards, every call under
//! 1 KB; a dropped card closed as failed with its text; a card left open closed as failed when
//! the client stops; a card that cannot be created sent as markdown through the session
//! webhook.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests abort on failure

use std::sync::{Arc, Mutex};
use std::time::Duration;

use dingtalk_core::aicard::AiCardOptions;
use dingtalk_core::{Credentials, Endpoints};
use dingtalk_driver::runtime::{HttpClient, Runtime};
use dingtalk_sim::{CardChange, Chat, Sim, SimCard, SimConfig};

const T: Duration = Duration::from_secs(20);

/// Cards a handler started and left open (the client's stop must close them).
type Kept<C> = Arc<Mutex<Vec<C>>>;

fn options() -> AiCardOptions {
    AiCardOptions::default()
        .min_interval(Duration::from_millis(50))
        .failure_note("\n\n(stopped)")
}

fn tokens() -> Vec<String> {
    (0..200).map(|i| format!("w{i} ")).collect()
}

/// A long markdown answer: 100 paragraphs, ~2.8 KB (three cards of at most 1 KB).
fn long_answer() -> String {
    (0..100)
        .map(|i| format!("**{i:02}** line of the answer.\n\n"))
        .collect()
}

async fn behave<H: HttpClient>(
    ctx: dingtalk_driver::BotContext<H>,
    kept: Kept<dingtalk_driver::AiCard>,
) -> Result<(), dingtalk_driver::HandlerError> {
    let card = ctx.ai_card(options()).await?;
    match ctx.text().unwrap_or_default() {
        "stream" => {
            card.set("title", "Burst").unwrap();
            for t in tokens() {
                card.append(&t).unwrap();
            }
            card.finish().await;
        }
        "long" => {
            card.append(&long_answer()).unwrap();
            card.finish().await;
        }
        "drop" => {
            card.append("partial").unwrap();
            drop(card);
        }
        "keep" => {
            card.append("kept open").unwrap();
            kept.lock().unwrap().push(card);
        }
        _ => {
            assert!(card.is_fallback(), "the emulator refused the template");
            card.append("# fallback\n\n```\ncode\n```").unwrap();
            card.finish().await;
        }
    }
    Ok(())
}

fn card_for(s: &dingtalk_sim::Snapshot, first_text: &str) -> Option<(String, SimCard)> {
    s.cards
        .iter()
        .find(|(_, c)| {
            c.data
                .get("msgContent")
                .is_some_and(|m| m.starts_with(first_text))
        })
        .map(|(k, c)| (k.clone(), c.clone()))
}

fn check_lifecycle(card: &SimCard) {
    let CardChange::Created(first) = &card.history[0] else {
        panic!("created first")
    };
    assert_eq!(first["flowStatus"], "1", "shown processing at once");
    let inputing = card
        .history
        .iter()
        .position(|c| matches!(c, CardChange::Updated(d) if d.get("flowStatus").map(String::as_str) == Some("2")))
        .expect("inputing");
    let first_stream = card
        .history
        .iter()
        .position(|c| matches!(c, CardChange::Streamed { .. }))
        .expect("streamed");
    assert!(inputing < first_stream, "inputing before the text");
    for c in &card.history {
        if let CardChange::Streamed { content, .. } = c {
            assert!(content.len() <= 1024);
        }
    }
}

/// Drives the bot through every case and checks what the emulator shows.
async fn check(sim: &Sim) {
    sim.wait_connections(1, T).await.unwrap();

    // A burst of 200 tokens: coalesced, finished, the whole text shown.
    sim.bot_text("stream", Chat::Group);
    let snap = sim
        .wait_for("a finished card", T, |s| {
            card_for(s, "w0 ").is_some_and(|(_, c)| c.flow_status() == Some("3"))
        })
        .await
        .unwrap();
    let (_, card) = card_for(&snap, "w0 ").unwrap();
    check_lifecycle(&card);
    assert_eq!(card.data["msgContent"], tokens().concat().trim_end());
    assert_eq!(card.data["title"], "Burst");
    assert!(card.finalized && !card.error);
    let streams = card
        .history
        .iter()
        .filter(|c| matches!(c, CardChange::Streamed { .. }))
        .count();
    assert!(streams <= 4, "200 tokens coalesced into {streams} calls");

    // A long answer: continued in new cards, each finished, together the whole text.
    sim.bot_text("long", Chat::Private);
    let snap = sim
        .wait_for("three finished cards", T, |s| {
            card_for(s, "**00**").is_some_and(|(id, _)| {
                let third = s.cards.get(&format!("{id}-3"));
                third.is_some_and(|c| c.flow_status() == Some("3"))
            })
        })
        .await
        .unwrap();
    let (id, first) = card_for(&snap, "**00**").unwrap();
    let parts = [
        first.clone(),
        snap.cards[&format!("{id}-2")].clone(),
        snap.cards[&format!("{id}-3")].clone(),
    ];
    let joined: String = parts.iter().map(|c| c.data["msgContent"].clone()).collect();
    assert_eq!(joined, long_answer().trim_end());
    for c in &parts {
        check_lifecycle(c);
        assert_eq!(c.flow_status(), Some("3"));
    }
    assert!(!snap.cards.contains_key(&format!("{id}-4")));

    // Dropped mid-way: failed, with its text and the note.
    sim.bot_text("drop", Chat::Group);
    let snap = sim
        .wait_for("a failed card", T, |s| {
            card_for(s, "partial").is_some_and(|(_, c)| c.flow_status() == Some("5"))
        })
        .await
        .unwrap();
    let (_, card) = card_for(&snap, "partial").unwrap();
    assert_eq!(card.data["msgContent"], "partial\n\n(stopped)");
    assert!(card.error);

    // The template is refused: the answer goes out as markdown through the session webhook.
    sim.fail_next_card_creates(1);
    sim.bot_text("fallback", Chat::Group);
    let snap = sim
        .wait_for("the markdown fallback", T, |s| {
            s.webhooks.iter().any(|w| w.body["msgtype"] == "markdown")
        })
        .await
        .unwrap();
    let w = snap
        .webhooks
        .iter()
        .find(|w| w.body["msgtype"] == "markdown")
        .unwrap();
    assert_eq!(w.body["markdown"]["text"], "# fallback\n\n> code");
    assert_eq!(w.status, 200);

    // Left open: the stop closes it (checked by the caller after the client stopped).
    sim.bot_text("keep", Chat::Private);
    sim.wait_for("a kept card", T, |s| card_for(s, "kept open").is_some())
        .await
        .unwrap();
    let bad: Vec<_> = sim
        .snapshot()
        .api_calls
        .iter()
        .filter(|r| r.path.starts_with("/v1.0/card") && r.status != 200)
        .map(|r| (r.path.clone(), r.status))
        .collect();
    assert_eq!(bad.len(), 1, "only the refused template: {bad:?}");
}

fn check_stopped(sim: &Sim) {
    let snap = sim.snapshot();
    let (_, card) = card_for(&snap, "kept open").unwrap();
    assert_eq!(
        card.flow_status(),
        Some("5"),
        "closed as failed by the stop"
    );
    assert_eq!(card.data["msgContent"], "kept open\n\n(stopped)");
    assert!(snap.violations.is_empty(), "{:?}", snap.violations);
}

async fn async_cards<R: Runtime>(
    block_on: fn(dingtalk_driver::Client<R>) -> Result<(), dingtalk_driver::Error>,
) {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    let (id, secret) = sim.credentials();
    let kept: Kept<dingtalk_driver::AiCard> = Kept::default();
    let k = kept.clone();
    let client = dingtalk_driver::Client::<R>::builder(Credentials::new(id, secret))
        .endpoints(Endpoints::single(sim.base_url()))
        .on_bot_message(move |ctx| behave(ctx, k.clone()))
        .build()
        .unwrap();
    let running = std::thread::spawn({
        let client = client.clone();
        move || block_on(client)
    });
    check(&sim).await;
    client.stop_handle().stop();
    tokio::task::spawn_blocking(move || running.join().unwrap().unwrap())
        .await
        .unwrap();
    check_stopped(&sim);
    drop(kept);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokio_ai_cards() {
    async_cards::<dingtalk_driver::runtime::Tokio>(|c| {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(c.run())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_std_ai_cards() {
    async_cards::<dingtalk_driver::runtime::AsyncIo>(|c| async_std::task::block_on(c.run())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocking_ai_cards() {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    let (id, secret) = sim.credentials();
    let kept: Kept<dingtalk_blocking::AiCard> = Kept::default();
    let k = kept.clone();
    let client = dingtalk_blocking::Client::builder(Credentials::new(id, secret))
        .endpoints(Endpoints::single(sim.base_url()))
        .on_bot_message(move |ctx| {
            let card = ctx.ai_card(options())?;
            match ctx.text().unwrap_or_default() {
                "stream" => {
                    card.set("title", "Burst").unwrap();
                    for t in tokens() {
                        card.append(&t).unwrap();
                    }
                    card.finish();
                }
                "long" => {
                    card.append(&long_answer()).unwrap();
                    card.finish();
                }
                "drop" => {
                    card.append("partial").unwrap();
                    drop(card);
                }
                "keep" => {
                    card.append("kept open").unwrap();
                    k.lock().unwrap().push(card);
                }
                _ => {
                    assert!(card.is_fallback());
                    card.append("# fallback\n\n```\ncode\n```").unwrap();
                    card.finish();
                }
            }
            Ok::<(), dingtalk_blocking::HandlerError>(())
        })
        .build()
        .unwrap();
    let running = std::thread::spawn({
        let client = client.clone();
        move || client.run()
    });
    check(&sim).await;
    client.stop_handle().stop();
    tokio::task::spawn_blocking(move || running.join().unwrap().unwrap())
        .await
        .unwrap();
    check_stopped(&sim);
    drop(kept);
}

/// A caller cancelled while the card is being created (a `select!`, a timeout) does not leave
/// it processing: the card is closed as failed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_cancelled_mid_way_closes_the_card() {
    use dingtalk_core::api::card::CardSpace;
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    let (id, secret) = sim.credentials();
    let api = dingtalk_tokio::ApiClient::new(
        Credentials::new(&id, secret),
        Endpoints::single(sim.base_url()),
    )
    .unwrap();
    // The token takes long: the create call is still waiting when the caller gives up.
    sim.delay_next_tokens(1, Duration::from_millis(500));
    let space = CardSpace::Robot {
        user_id: "sim-staff-1".into(),
        robot_code: None,
    };
    let start = api.ai_card(space, "cancelled-1", options());
    let gave_up = tokio::time::timeout(Duration::from_millis(50), start).await;
    assert!(gave_up.is_err(), "cancelled while creating");
    sim.wait_for("the card closed as failed", T, |s| {
        s.cards.get("cancelled-1").and_then(SimCard::flow_status) == Some("5")
    })
    .await
    .unwrap();
}
