//! A plain sync program sends a signed custom-robot message and calls the OpenAPI without
//! running a bot, against the emulator.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests abort on failure

use std::time::{SystemTime, UNIX_EPOCH};

use dingtalk_blocking::ApiClient;
use dingtalk_core::api::robot::{GroupSend, RobotMessage};
use dingtalk_core::webhook::{CustomRobotSend, Message};
use dingtalk_core::{Credentials, Endpoints, ErrorKind};
use dingtalk_sim::{BackgroundSim, SimConfig};

fn now_ms() -> i64 {
    i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}

#[test]
fn signed_custom_robot_and_api_call_from_a_sync_program() {
    let sim = BackgroundSim::start(SimConfig {
        robot_secret: Some("SECsim".into()),
        ..SimConfig::default()
    })
    .unwrap();
    let (id, secret) = sim.credentials();
    let api = ApiClient::new(
        Credentials::new(id, secret),
        Endpoints::single(sim.base_url()),
    )
    .unwrap();

    let send = |secret: &str| CustomRobotSend {
        webhook: format!("{}/robot/send?access_token=robot-token", sim.base_url()),
        secret: Some(secret.into()),
        timestamp_ms: now_ms(),
        message: Message::text("deploy finished"),
    };
    api.call(&send("SECsim")).unwrap();
    let err = api.call(&send("SECwrong")).unwrap_err();
    let err = err.api_error().expect("DingTalk answered");
    assert_eq!(err.kind, ErrorKind::WebhookRejected);
    assert_eq!(err.code.as_deref(), Some("310000"));

    let out = api
        .call(&GroupSend {
            robot_code: api.robot_code().to_owned(),
            open_conversation_id: "cidSimGroup0001==".into(),
            cool_app_code: None,
            message: RobotMessage::Markdown {
                title: "t".into(),
                text: "**done**".into(),
            },
        })
        .unwrap();
    assert!(out.process_query_key.starts_with("sim-pqk-"));

    let snap = sim.snapshot();
    assert_eq!(snap.webhooks.len(), 2);
    assert_eq!(snap.webhooks[0].status, 200);
    assert_eq!(
        snap.webhooks[0].query["sign"],
        dingtalk_core::webhook::sign(
            "SECsim",
            snap.webhooks[0].query["timestamp"].parse().unwrap()
        )
    );
    assert_eq!(snap.api_calls.len(), 1);
    assert_eq!(snap.api_calls[0].path, "/v1.0/robot/groupMessages/send");
    assert!(
        snap.api_calls[0].token.is_some(),
        "token fetched and sent in the header"
    );
    assert_eq!(snap.tokens_issued, 1);
}
