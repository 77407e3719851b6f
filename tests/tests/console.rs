//! The emulator's web console in a real browser: Debian's headless Chromium, driven over
//! WebDriver (chromedriver) with fantoccini. A bot from this SDK runs against the emulator; the
//! test types a message as a user and sees the bot's reply appear, writes as a second user in
//! their one-to-one chat, clicks a card's button and
//! sees the bot's callback answer update the card, triggers a SYSTEM disconnect from the
//! console and sees the bot reconnect, and checks the page at 390 px. It saves a screenshot to
//! `target/console.png` (and to `docs/console.png` with `DINGTALK_UPDATE_SCREENSHOT=1`).
//!
//! `scripts/test` installs `chromium` and `chromium-driver` when missing; without them this
//! test fails saying so.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests abort on failure

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use dingtalk_core::model::{CardCallbackResponse, CardParamMap, CardUpdateOptions};
use dingtalk_core::{Credentials, Endpoints};
use dingtalk_sim::{Sim, SimConfig};
use dingtalk_tests::servers::free_port;
use dingtalk_tokio::{CardRouter, Client, HandlerError, Router};
use fantoccini::Locator;

const T: Duration = Duration::from_secs(20);

/// chromedriver, killed on drop.
struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn chromedriver() -> (Driver, String) {
    let bin = ["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .unwrap_or_else(|| {
            panic!(
                "chromedriver is not installed: run `scripts/test --install-only` (it installs \
                 Debian's chromium and chromium-driver)"
            )
        });
    let port = free_port();
    let child = Command::new(bin)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {bin}: {e}"));
    (Driver(child), format!("http://127.0.0.1:{port}"))
}

async fn browser(webdriver: &str) -> fantoccini::Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({"args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                                    "--disable-dev-shm-usage", "--window-size=1280,900"]}),
    );
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    // chromedriver takes a moment to listen.
    let deadline = std::time::Instant::now() + T;
    loop {
        match fantoccini::ClientBuilder::new(connector.clone())
            .capabilities(caps.clone())
            .connect(webdriver)
            .await
        {
            Ok(c) => return c,
            Err(e) if std::time::Instant::now() < deadline => {
                let _ = e;
                tokio::task::yield_now().await;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("cannot start headless Chromium through chromedriver: {e}"),
        }
    }
}

/// The bot: echoes text, answers `/card` with an interactive card whose button counts votes.
fn bot(sim: &Sim) -> Client {
    let (id, secret) = sim.credentials();
    let votes = Arc::new(AtomicU64::new(0));
    Client::builder(Credentials::new(id, secret))
        .endpoints(Endpoints::single(sim.base_url()))
        .router(
            Router::new()
                .command("card", "a card with a button", |ctx, _| async move {
                    let data = CardParamMap::default()
                        .with("title", "Lunch vote")
                        .with("votes", "0");
                    ctx.reply_card("vote-template", "console-card", data)
                        .await?;
                    Ok::<(), HandlerError>(())
                })
                .on_text(|ctx| async move {
                    let text = ctx.text().unwrap_or_default().to_owned();
                    ctx.reply_markdown("echo", format!("**echo:** {text}"))
                        .await?;
                    Ok(())
                }),
        )
        .card_router(CardRouter::new().on_action("sim_button", move |_cb, _api| {
            let votes = votes.clone();
            async move {
                let n = votes.fetch_add(1, Ordering::SeqCst) + 1;
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
        .unwrap()
}

async fn wait_text(b: &fantoccini::Client, xpath: &str) -> fantoccini::elements::Element {
    b.wait()
        .at_most(T)
        .for_element(Locator::XPath(xpath))
        .await
        .unwrap_or_else(|e| panic!("the console never showed {xpath}: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_chats_with_a_bot_in_a_real_browser() {
    let (_driver, webdriver) = chromedriver();
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    let client = bot(&sim);
    let running = tokio::spawn({
        let client = client.clone();
        async move { client.run().await }
    });
    sim.wait_connections(1, T).await.unwrap();
    let b = browser(&webdriver).await;
    b.goto(&sim.base_url()).await.unwrap();

    // A user writes in the group; the bot's markdown reply appears, rendered.
    let input = b
        .wait()
        .at_most(T)
        .for_element(Locator::Id("text"))
        .await
        .unwrap();
    input.send_keys("hello from the browser").await.unwrap();
    b.find(Locator::Id("send"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let reply = wait_text(
        &b,
        "//div[contains(@class,'line') and contains(@class,'bot')][.//strong[text()='echo:']]",
    )
    .await;
    assert!(
        reply
            .text()
            .await
            .unwrap()
            .contains("hello from the browser")
    );

    // A card with a button: the click reaches the bot, its answer updates the card.
    let input = b.find(Locator::Id("text")).await.unwrap();
    input.send_keys("/card").await.unwrap();
    b.find(Locator::Id("send"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let button = wait_text(
        &b,
        "//div[@data-track='console-card']//button[@data-action='sim_button']",
    )
    .await;
    wait_text(
        &b,
        "//div[@data-track='console-card']//dd[@data-key='votes' and text()='0']",
    )
    .await;
    button.click().await.unwrap();
    wait_text(
        &b,
        "//div[@data-track='console-card']//dd[@data-key='votes' and text()='1']",
    )
    .await;

    // Another user writes in their one-to-one chat: a tab of its own, the reply in it.
    b.find(Locator::Id("conv-private-sim-staff-2"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let input = b.find(Locator::Id("text")).await.unwrap();
    input.send_keys("hi from Sim Colleague").await.unwrap();
    b.find(Locator::Id("send"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_text(
        &b,
        "//div[contains(@class,'line') and contains(@class,'bot')][contains(., 'hi from Sim Colleague')]",
    )
    .await;
    let snap = sim.snapshot();
    assert!(
        snap.webhooks
            .iter()
            .any(|w| w.body["markdown"]["text"] == "**echo:** hi from Sim Colleague"),
        "the bot answered the second user"
    );
    b.find(Locator::Id("conv-group"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_text(&b, "//div[@data-track='console-card']").await;

    // Screenshot of a conversation in progress.
    let png = b.screenshot().await.unwrap();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    std::fs::write(root.join("target/console.png"), &png).unwrap();
    if std::env::var_os("DINGTALK_UPDATE_SCREENSHOT").is_some() {
        std::fs::create_dir_all(root.join("docs")).unwrap();
        std::fs::write(root.join("docs/console.png"), &png).unwrap();
    }

    // A SYSTEM disconnect from the console: the bot opens a new connection.
    let first = sim.snapshot().conns.iter().map(|c| c.id).max().unwrap();
    b.find(Locator::Id("fault-disconnect"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    sim.wait_for("the bot reconnected", T, |s| {
        s.conns
            .iter()
            .any(|c| c.id > first && c.open && !c.draining)
    })
    .await
    .unwrap();
    // The console lists the new connection.
    wait_text(
        &b,
        &format!(
            "//tr[@data-conn='{}' or @data-conn > {first}][@data-open='true']",
            first + 1
        ),
    )
    .await;

    // At phone width the conversation and its input still fit.
    b.set_window_size(390, 844).await.unwrap();
    let width = b
        .execute("return document.documentElement.scrollWidth;", vec![])
        .await
        .unwrap();
    assert!(
        width.as_u64().unwrap() <= 390,
        "horizontal overflow: {width}"
    );
    let input = b.find(Locator::Id("text")).await.unwrap();
    assert!(input.is_displayed().await.unwrap());

    b.close().await.unwrap();
    assert!(
        sim.snapshot().violations.is_empty(),
        "{:?}",
        sim.snapshot().violations
    );
    client.stop_handle().stop();
    running.await.unwrap().unwrap();
}
