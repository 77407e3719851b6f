//! One `send(target, message)` from every adapter's API client: a group and a user through
//! the robot API, a work notification with an image, a signed custom robot with @-mentions
//! and a feed card; a message the target
//! cannot carry is a typed error and nothing is sent.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests abort on failure

use dingtalk_core::error::ClientError;
use dingtalk_core::send::{Outgoing, Target};
use dingtalk_core::webhook::{At, FeedLink};
use dingtalk_core::{Credentials, Endpoints, ErrorKind};
use dingtalk_sim::{Sim, SimConfig};

fn sends(sim: &Sim) -> Vec<(Target, Outgoing)> {
    let base = sim.base_url();
    let robot = Target::CustomRobot {
        webhook: format!("{base}/robot/send?access_token=ROBOT-TOKEN"),
        secret: Some("SECsim".into()),
    };
    vec![
        (
            Target::Group {
                open_conversation_id: "cidGroup1".into(),
            },
            Outgoing::text("to the group"),
        ),
        (
            Target::User {
                user_id: "staff-9".into(),
            },
            Outgoing::markdown("Hi", "**to you**"),
        ),
        (
            robot.clone(),
            Outgoing::text("@u1 look").at(At::users(["u1"])),
        ),
        (
            Target::WorkNotification {
                agent_id: 4242,
                user_ids: vec!["staff-1".into(), "staff-2".into()],
            },
            Outgoing::Image {
                media_id: "@sim-media-1".into(),
            },
        ),
        (
            robot,
            Outgoing::FeedCard {
                links: vec![FeedLink {
                    title: "news".into(),
                    message_url: "https://example.com/1".into(),
                    pic_url: "https://example.com/1.png".into(),
                }],
            },
        ),
    ]
}

fn refused() -> Vec<(Target, Outgoing)> {
    vec![
        (
            Target::Group {
                open_conversation_id: "cidGroup1".into(),
            },
            Outgoing::text("@u1").at(At::users(["u1"])),
        ),
        (
            Target::CustomRobot {
                webhook: "https://oapi.dingtalk.com/robot/send?access_token=SECRET".into(),
                secret: None,
            },
            Outgoing::Image {
                media_id: "@m".into(),
            },
        ),
    ]
}

fn check(sim: &Sim, results: Vec<Result<(), ClientError>>, errors: Vec<ClientError>) {
    for r in results {
        r.unwrap();
    }
    for e in errors {
        assert!(
            matches!(e, ClientError::Api(ref a) if a.kind == ErrorKind::Validation),
            "{e:?}"
        );
        assert!(!e.to_string().contains("SECRET"), "{e}");
    }
    let snap = sim.snapshot();
    let group = snap
        .api_calls
        .iter()
        .filter(|r| r.path == "/v1.0/robot/groupMessages/send")
        .collect::<Vec<_>>();
    assert_eq!(group.len(), 1, "the refused group message was not sent");
    assert_eq!(group[0].body["openConversationId"], "cidGroup1");
    assert_eq!(group[0].body["msgKey"], "sampleText");
    let oto = snap
        .api_calls
        .iter()
        .find(|r| r.path == "/v1.0/robot/oToMessages/batchSend")
        .unwrap();
    assert_eq!(oto.body["msgKey"], "sampleMarkdown");
    assert_eq!(oto.body["userIds"], serde_json::json!(["staff-9"]));
    let hooks: Vec<_> = snap
        .webhooks
        .iter()
        .filter(|w| w.path == "/robot/send")
        .collect();
    assert_eq!(hooks.len(), 2);
    assert_eq!(hooks[0].body["at"]["atUserIds"], serde_json::json!(["u1"]));
    assert!(hooks[0].query.contains_key("sign") && hooks[0].query.contains_key("timestamp"));
    assert_eq!(hooks[1].body["msgtype"], "feedCard");
    let notice = snap
        .api_calls
        .iter()
        .find(|r| r.path == "/topapi/message/corpconversation/asyncsend_v2")
        .unwrap();
    assert_eq!(notice.status, 200);
    assert_eq!(notice.body["agent_id"], 4242);
    assert_eq!(notice.body["userid_list"], "staff-1,staff-2");
    assert_eq!(notice.body["msg"]["msgtype"], "image");
    assert!(hooks.iter().all(|w| w.status == 200), "{hooks:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokio_send_everywhere() {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    let (id, secret) = sim.credentials();
    let api = dingtalk_tokio::ApiClient::new(
        Credentials::new(id, secret),
        Endpoints::single(sim.base_url()),
    )
    .unwrap();
    let mut results = Vec::new();
    for (t, m) in sends(&sim) {
        results.push(api.send(t, m).await);
    }
    let mut errors = Vec::new();
    for (t, m) in refused() {
        errors.push(api.send(t, m).await.unwrap_err());
    }
    check(&sim, results, errors);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_std_send_everywhere() {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    let (id, secret) = sim.credentials();
    let api = dingtalk_async_std::ApiClient::new(
        Credentials::new(id, secret),
        Endpoints::single(sim.base_url()),
    )
    .unwrap();
    let (results, errors) = {
        let (s, r) = (sends(&sim), refused());
        tokio::task::spawn_blocking(move || {
            async_std::task::block_on(async {
                let mut results = Vec::new();
                for (t, m) in s {
                    results.push(api.send(t, m).await);
                }
                let mut errors = Vec::new();
                for (t, m) in r {
                    errors.push(api.send(t, m).await.unwrap_err());
                }
                (results, errors)
            })
        })
        .await
        .unwrap()
    };
    check(&sim, results, errors);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocking_send_everywhere() {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    let (id, secret) = sim.credentials();
    let api = dingtalk_blocking::ApiClient::new(
        Credentials::new(id, secret),
        Endpoints::single(sim.base_url()),
    )
    .unwrap();
    let (s, r) = (sends(&sim), refused());
    let (results, errors) = tokio::task::spawn_blocking(move || {
        let results: Vec<_> = s.into_iter().map(|(t, m)| api.send(t, m)).collect();
        let errors: Vec<_> = r
            .into_iter()
            .map(|(t, m)| api.send(t, m).unwrap_err())
            .collect();
        (results, errors)
    })
    .await
    .unwrap();
    check(&sim, results, errors);
}
