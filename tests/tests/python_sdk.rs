//! The official Python SDK's bot (`dingtalk-stream` from PyPI, installed into `target/pyenv` by
//! `scripts/test`) runs against the emulator, as this SDK's bots do: it opens a connection
//! through the gateway, takes a message over the WebSocket, acks it, replies with text and
//! markdown through the session webhook and with a StandardCard through the robot API (checked
//! through the HTTP control API, as a script would), and streams an AI card (create, inputing, streaming, finished) through the
//! OpenAPI endpoints, with no protocol violation. It checks that the emulator is DingTalk as
//! another client sees it, not only as this SDK does.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests abort on failure

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use dingtalk_sim::{Chat, Sim, SimConfig};

const T: Duration = Duration::from_secs(30);

/// The bot process, killed on drop.
struct Bot(Child);

impl Drop for Bot {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_python_sdk_bot_works_against_the_emulator() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let python = root.join("target/pyenv/bin/python");
    assert!(
        python.exists(),
        "the official Python SDK is not installed: run `scripts/test --install-only` \
         (it creates target/pyenv with dingtalk-stream from PyPI)"
    );
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    let (id, secret) = sim.credentials();
    let _bot = Bot(Command::new(&python)
        .arg(root.join("tests/python/official_sdk_bot.py"))
        .args([&id, &secret])
        .env("DINGTALK_OPENAPI_ENDPOINT", sim.base_url())
        .env_remove("ALL_PROXY")
        .env_remove("all_proxy")
        .env_remove("HTTP_PROXY")
        .env_remove("http_proxy")
        .env_remove("HTTPS_PROXY")
        .env_remove("https_proxy")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap());
    sim.wait_connections(1, T)
        .await
        .expect("the Python bot connected through the gateway");

    let hello = sim.bot_text("hello", Chat::Group);
    let ack = sim.wait_ack(&hello, T).await.unwrap();
    assert_eq!(ack.code, 200);
    let snap = sim
        .wait_for("the Python bot's reply", T, |s| !s.webhooks.is_empty())
        .await
        .unwrap();
    assert_eq!(
        snap.webhooks[0].body["text"]["content"],
        "python echo: hello"
    );
    assert_eq!(snap.webhooks[0].status, 200);

    // Markdown and a StandardCard, checked through the HTTP control API as a script would.
    sim.bot_text("md", Chat::Group);
    sim.bot_text("card", Chat::Group);
    sim.wait_for("the markdown and the card", T, |s| {
        s.webhooks.len() >= 2
            && s.api_calls
                .iter()
                .any(|r| r.path == "/v1.0/im/v1.0/robot/interactiveCards/send")
    })
    .await
    .unwrap();
    let tls = dingtalk_tokio::default_tls_config().unwrap();
    let http = reqwest::Client::builder()
        .use_preconfigured_tls((*tls).clone())
        .build()
        .unwrap();
    let replies: serde_json::Value = http
        .get(format!("{}/_sim/replies", sim.base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        replies[1]["body"]["markdown"]["text"],
        "**python** markdown"
    );
    let state: serde_json::Value = http
        .get(format!("{}/_sim/state", sim.base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let card = state["chat"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["kind"] == "standardCard")
        .expect("the StandardCard in the group chat");
    assert_eq!(
        (
            card["conv"].as_str(),
            card["title"].as_str(),
            card["text"].as_str()
        ),
        (
            Some("group"),
            Some("python card"),
            Some("from the official SDK")
        )
    );

    sim.bot_text("ai", Chat::Private);
    let snap = sim
        .wait_for("the Python bot's AI card finished", T, |s| {
            s.cards.values().any(|c| c.flow_status() == Some("3"))
        })
        .await
        .unwrap();
    let card = snap.cards.values().next().unwrap();
    assert_eq!(
        card.template_id,
        dingtalk_core::aicard::AI_MARKDOWN_TEMPLATE,
        "the same built-in template as this SDK's AiCardOptions::default()"
    );
    assert_eq!(card.data["msgContent"], "python ai card: done");
    let streamed: Vec<String> = card
        .history
        .iter()
        .filter_map(|c| match c {
            dingtalk_sim::CardChange::Streamed { content, .. } => Some(content.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(
        streamed,
        ["thinking about it", "thinking about it ... done"]
    );
    let bad: Vec<_> = snap
        .api_calls
        .iter()
        .filter(|r| r.status != 200)
        .map(|r| (r.path.clone(), r.status))
        .collect();
    assert!(bad.is_empty(), "{bad:?}");
    assert!(snap.violations.is_empty(), "{:?}", snap.violations);
}
