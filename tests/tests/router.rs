//! Routed chatbot messages, on every adapter: a command with its arguments (after an
//! @-mention in a group), `/help` generated from the commands, a message kind, text, and an
//! invalid command name failing the build.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests abort on failure

use std::time::Duration;

use dingtalk_core::{Credentials, Endpoints};
use dingtalk_driver::runtime::Runtime;
use dingtalk_sim::{Chat, Sim, SimConfig};

const T: Duration = Duration::from_secs(15);

/// Sends the conversation and returns the bot's replies in order.
async fn conversation(sim: &Sim) -> Vec<String> {
    sim.wait_connections(1, T).await.unwrap();
    let mut replies = Vec::new();
    let steps: [&dyn Fn() -> String; 5] = [
        &|| sim.bot_text("@RouterBot /CALC 2 3", Chat::Group),
        &|| sim.bot_text("/help", Chat::Private),
        &|| sim.bot_text("/nope", Chat::Private),
        &|| sim.bot_picture(Chat::Private),
        &|| sim.bot_text("/ping", Chat::Private),
    ];
    for (i, step) in steps.iter().enumerate() {
        step();
        let snap = sim
            .wait_for("a reply", T, |s| s.webhooks.len() > i)
            .await
            .unwrap();
        replies.push(
            snap.webhooks[i].body["text"]["content"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        );
    }
    replies
}

fn expected() -> Vec<String> {
    vec![
        "sum: 5".into(),
        "Commands:\n/calc — add numbers, e.g. /calc 1 2\n/ping — are you there?".into(),
        "text: /nope".into(),
        "a picture".into(),
        "pong".into(),
    ]
}

fn sum(args: &str) -> i64 {
    args.split_whitespace()
        .filter_map(|a| a.parse::<i64>().ok())
        .sum()
}

fn async_router<R: Runtime>() -> dingtalk_driver::Router<R::Http> {
    dingtalk_driver::Router::new()
        .command(
            "calc",
            "add numbers, e.g. /calc 1 2",
            |ctx, args| async move {
                ctx.reply_text(format!("sum: {}", sum(&args))).await?;
                Ok(())
            },
        )
        .command("ping", "are you there?", |ctx, _| async move {
            ctx.reply_text("pong").await?;
            Ok(())
        })
        .on_kind("picture", |ctx| async move {
            ctx.reply_text("a picture").await?;
            Ok(())
        })
        .on_text(|ctx| async move {
            let text = ctx.text().unwrap_or_default().to_owned();
            ctx.reply_text(format!("text: {text}")).await?;
            Ok(())
        })
}

async fn async_routes<R: Runtime>(
    block_on: fn(dingtalk_driver::Client<R>) -> Result<(), dingtalk_driver::Error>,
) {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    let (id, secret) = sim.credentials();
    let client = dingtalk_driver::Client::<R>::builder(Credentials::new(id.clone(), secret))
        .endpoints(Endpoints::single(sim.base_url()))
        .router(async_router::<R>())
        .build()
        .unwrap();
    let running = std::thread::spawn({
        let client = client.clone();
        move || block_on(client)
    });
    assert_eq!(conversation(&sim).await, expected());
    client.stop_handle().stop();
    running.join().unwrap().unwrap();
    let bad = dingtalk_driver::Client::<R>::builder(Credentials::new(id, "s"))
        .router(dingtalk_driver::Router::new().command("two words", "", |_ctx, _| async { Ok(()) }))
        .build();
    assert!(
        matches!(bad, Err(dingtalk_driver::Error::Config(_))),
        "{bad:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokio_router() {
    async_routes::<dingtalk_driver::runtime::Tokio>(|c| {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(c.run())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_std_router() {
    async_routes::<dingtalk_driver::runtime::AsyncIo>(|c| async_std::task::block_on(c.run())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocking_router() {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    let (id, secret) = sim.credentials();
    let router = dingtalk_blocking::Router::new()
        .command("calc", "add numbers, e.g. /calc 1 2", |ctx, args| {
            ctx.reply_text(format!("sum: {}", sum(&args)))?;
            Ok(())
        })
        .command("ping", "are you there?", |ctx, _| {
            ctx.reply_text("pong")?;
            Ok(())
        })
        .on_kind("picture", |ctx| {
            ctx.reply_text("a picture")?;
            Ok(())
        })
        .on_text(|ctx| {
            let text = ctx.text().unwrap_or_default().to_owned();
            ctx.reply_text(format!("text: {text}"))?;
            Ok(())
        });
    let client = dingtalk_blocking::Client::builder(Credentials::new(id.clone(), secret))
        .endpoints(Endpoints::single(sim.base_url()))
        .router(router)
        .build()
        .unwrap();
    let running = std::thread::spawn({
        let client = client.clone();
        move || client.run()
    });
    assert_eq!(conversation(&sim).await, expected());
    client.stop_handle().stop();
    running.join().unwrap().unwrap();
    let bad = dingtalk_blocking::Client::builder(Credentials::new(id, "s"))
        .router(dingtalk_blocking::Router::new().command("", "", |_ctx, _| Ok(())))
        .build();
    assert!(
        matches!(bad, Err(dingtalk_blocking::Error::Config(_))),
        "{bad:?}"
    );
}

/// Events by type (`user_add_org`, typed as `UserJoined` with its user, answers `LATER`; any
/// other goes to the fallback, which answers `SUCCESS` for the typed `DeptCreated` it gets),
/// card actions by action id (the emulator's button is `sim_button`), and a click on another
/// button of a `poll-` card by the card's id prefix.
async fn events_and_cards(sim: &Sim) {
    sim.wait_connections(1, T).await.unwrap();
    let add = sim.event("user_add_org", serde_json::json!({"userId": ["u1"]}));
    let dept = sim.event("org_dept_create", serde_json::json!({"deptId": [7]}));
    let card = sim.card_callback("track-r", serde_json::json!({"answer": "yes"}));
    let poll = sim.card_action("poll-7", "other_button", serde_json::json!({}));
    let status = |id: String| async move {
        let ack = sim.wait_ack(&id, T).await.unwrap();
        ack.data.clone()
    };
    assert_eq!(status(add).await["status"], "LATER");
    assert_eq!(status(dept).await["status"], "SUCCESS");
    assert_eq!(
        status(card).await,
        serde_json::json!({"response": {"cardData": {"cardParamMap": {"clicked": "sim_button"}}}})
    );
    assert_eq!(
        status(poll).await,
        serde_json::json!({"response": {"cardData": {"cardParamMap": {"clicked": "poll card"}}}})
    );
}

fn poll_clicked() -> dingtalk_core::model::CardCallbackResponse {
    dingtalk_core::model::CardCallbackResponse {
        card_update_options: None,
        card_data: Some(dingtalk_core::model::CardParamMap::default().with("clicked", "poll card")),
        user_private_data: None,
    }
}

/// `LATER` for a typed `user_add_org` of user `u1`.
fn joined(ev: &dingtalk_core::model::Event) -> dingtalk_core::EventAck {
    use dingtalk_core::events::OrgEvent;
    match ev.typed() {
        Ok(OrgEvent::UserJoined(c)) if c.user_ids == ["u1"] => dingtalk_core::EventAck::Later,
        _ => dingtalk_core::EventAck::Success,
    }
}

/// `SUCCESS` for a typed `org_dept_create` of department 7.
fn other_event(ev: &dingtalk_core::model::Event) -> dingtalk_core::EventAck {
    use dingtalk_core::events::OrgEvent;
    match ev.typed() {
        Ok(OrgEvent::DeptCreated(d)) if d.dept_ids == ["7"] => dingtalk_core::EventAck::Success,
        _ => dingtalk_core::EventAck::Later,
    }
}

fn clicked() -> dingtalk_core::model::CardCallbackResponse {
    dingtalk_core::model::CardCallbackResponse {
        card_update_options: None,
        card_data: Some(
            dingtalk_core::model::CardParamMap::default().with("clicked", "sim_button"),
        ),
        user_private_data: None,
    }
}

async fn async_events_and_cards<R: Runtime>(
    block_on: fn(dingtalk_driver::Client<R>) -> Result<(), dingtalk_driver::Error>,
) {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    let (id, secret) = sim.credentials();
    let client = dingtalk_driver::Client::<R>::builder(Credentials::new(id, secret))
        .endpoints(Endpoints::single(sim.base_url()))
        .event_router(
            dingtalk_driver::EventRouter::new()
                .on("user_add_org", |ev, _api| async move { Ok(joined(&ev)) })
                .fallback(|ev, _api| async move { Ok(other_event(&ev)) }),
        )
        .card_router(
            dingtalk_driver::CardRouter::new()
                .on_action("sim_button", |_cb, _api| async { Ok(Some(clicked())) })
                .on_card("poll-", |_cb, _api| async { Ok(Some(poll_clicked())) })
                .on_card("p", |_cb, _api| async { Ok(None) }),
        )
        .build()
        .unwrap();
    let running = std::thread::spawn({
        let client = client.clone();
        move || block_on(client)
    });
    events_and_cards(&sim).await;
    client.stop_handle().stop();
    running.join().unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokio_event_and_card_routers() {
    async_events_and_cards::<dingtalk_driver::runtime::Tokio>(|c| {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(c.run())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_std_event_and_card_routers() {
    async_events_and_cards::<dingtalk_driver::runtime::AsyncIo>(|c| {
        async_std::task::block_on(c.run())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocking_event_and_card_routers() {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    let (id, secret) = sim.credentials();
    let client = dingtalk_blocking::Client::builder(Credentials::new(id, secret))
        .endpoints(Endpoints::single(sim.base_url()))
        .event_router(
            dingtalk_blocking::EventRouter::new()
                .on("user_add_org", |ev, _api| Ok(joined(&ev)))
                .fallback(|ev, _api| Ok(other_event(&ev))),
        )
        .card_router(
            dingtalk_blocking::CardRouter::new()
                .on_action("sim_button", |_cb, _api| Ok(Some(clicked())))
                .on_card("poll-", |_cb, _api| Ok(Some(poll_clicked())))
                .on_card("p", |_cb, _api| Ok(None)),
        )
        .build()
        .unwrap();
    let running = std::thread::spawn({
        let client = client.clone();
        move || client.run()
    });
    events_and_cards(&sim).await;
    client.stop_handle().stop();
    running.join().unwrap().unwrap();
}
