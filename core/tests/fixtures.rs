//! Every frame in the fixtures parses, and each gets the ack the protocol documents.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests abort on failure

mod common;

use common::*;
use dingtalk_core::{Frame, FrameType, Limits, Outcome};

fn fixtures() -> Vec<(String, String)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("tests/fixtures").unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "json") {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            out.push((name, std::fs::read_to_string(&path).unwrap()));
        }
    }
    out.sort();
    assert_eq!(out.len(), 13, "all shared fixtures are copied");
    out
}

#[test]
fn every_fixture_parses_with_its_headers() {
    for (name, text) in fixtures() {
        let frame =
            Frame::parse(text.trim(), &Limits::default()).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(!frame.message_id().is_empty(), "{name}");
        assert!(
            frame.headers.time.is_some(),
            "{name}: time parsed from a string"
        );
        let data: serde_json::Value = frame.data_json().unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(data.is_object(), "{name}");
        let expected = match name.split('_').next().unwrap() {
            "system" => FrameType::System,
            "event" => FrameType::Event,
            _ => FrameType::Callback,
        };
        assert_eq!(frame.kind, expected, "{name}");
    }
}

#[test]
fn every_fixture_is_acked_once_on_its_connection() {
    let cfg = config().subscribe(dingtalk_core::Subscription::callback(
        dingtalk_core::topic::GRAPH_INVOKE,
    ));
    for (name, text) in fixtures() {
        let (mut g, c) = Gw::connected(cfg.clone());
        g.text(c, text.trim());
        for d in g.deliveries() {
            g.complete(d.id, Outcome::done());
        }
        let sends = g.sends();
        assert_eq!(sends.len(), 1, "{name}: {:?}", g.fresh);
        let (conn, ack) = &sends[0];
        assert_eq!(*conn, c);
        assert_eq!(ack["code"], 200, "{name}");
        let frame = Frame::parse(text.trim(), &Limits::default()).unwrap();
        assert_eq!(ack["headers"]["messageId"], frame.message_id(), "{name}");
        let data = ack_data(ack);
        match frame.kind {
            FrameType::System => {
                assert_eq!(ack["data"], frame.data_text().unwrap(), "{name}: echo")
            }
            FrameType::Event => assert_eq!(data["status"], "SUCCESS", "{name}"),
            FrameType::Callback => assert!(data.get("response").is_some(), "{name}"),
        }
    }
}

#[test]
fn debug_output_never_shows_the_session_webhook() {
    let (mut gw, conn) = Gw::connected(config());
    for (name, text) in fixtures() {
        if !text.contains("sessionWebhook\"") {
            continue;
        }
        let frame = Frame::parse(text.trim(), &Limits::default()).unwrap();
        let message: dingtalk_core::model::ChatbotMessage = frame.data_json().unwrap();
        assert!(message.session_webhook.is_some(), "{name}");
        gw.text(conn, text.trim());
        let deliveries: Vec<String> = gw.take().iter().map(|o| format!("{o:?}")).collect();
        assert!(!deliveries.is_empty(), "{name}: nothing delivered");
        for text in [format!("{frame:?}"), format!("{message:?}")]
            .into_iter()
            .chain(deliveries)
        {
            assert!(!text.contains("session="), "{name}: {text}");
            assert!(!text.contains("sendBySession"), "{name}: {text}");
        }
    }
}
