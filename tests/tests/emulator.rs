//! The emulator's OpenAPI keeps state and answers as DingTalk documents, through this SDK's
//! own API calls: scene groups are created, read, updated and their members paged; users are
//! created and read, an unknown user is the documented `60121` (a typed `NotFound`); a message
//! sent to a group appears in that conversation and disappears when recalled, and recalling it
//! again is reported as failed; an unknown old-style API is not answered with a fake success.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests abort on failure

use dingtalk_core::api::contact::{UserCreate, UserGet};
use dingtalk_core::api::group::{
    SceneGroupCreate, SceneGroupGet, SceneGroupMemberList, SceneGroupMembers, SceneGroupUpdate,
};
use dingtalk_core::api::robot::{GroupRecall, GroupSend, RobotMessage};
use dingtalk_core::error::ClientError;
use dingtalk_core::{Credentials, Endpoints, ErrorKind};
use dingtalk_sim::{Sim, SimConfig};
use serde_json::json;

fn kind(e: &ClientError) -> Option<ErrorKind> {
    e.api_error().map(|a| a.kind)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_keeps_state_and_answers_as_documented() {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    let (id, secret) = sim.credentials();
    let api = dingtalk_tokio::ApiClient::new(
        Credentials::new(&id, secret),
        Endpoints::single(sim.base_url()),
    )
    .unwrap();

    // Users.
    let me = api
        .call(&UserGet {
            user_id: "sim-staff-1".into(),
            language: None,
        })
        .await
        .unwrap();
    assert_eq!(me.name, "Sim User");
    let e = api
        .call(&UserGet {
            user_id: "nobody".into(),
            language: None,
        })
        .await
        .unwrap_err();
    assert_eq!(kind(&e), Some(ErrorKind::NotFound), "{e}");
    let created = api
        .call(&UserCreate {
            name: "New Hire".into(),
            mobile: None,
            dept_ids: vec![2],
            fields: Default::default(),
        })
        .await
        .unwrap();
    assert_eq!(sim.user(&created.userid).unwrap().name, "New Hire");

    // Scene groups.
    let group = api
        .call(&SceneGroupCreate {
            title: "Release room".into(),
            template_id: "tpl-1".into(),
            owner_user_id: "sim-staff-1".into(),
            user_ids: vec!["sim-staff-2".into()],
            subadmin_ids: Vec::new(),
            options: Default::default(),
        })
        .await
        .unwrap();
    let cid = group.open_conversation_id.clone();
    api.call(&SceneGroupMembers {
        open_conversation_id: cid.clone(),
        user_ids: vec![created.userid.clone()],
        add: true,
    })
    .await
    .unwrap();
    let mut changes = serde_json::Map::new();
    changes.insert("title".into(), json!("Release room (v2)"));
    api.call(&SceneGroupUpdate {
        open_conversation_id: cid.clone(),
        changes,
    })
    .await
    .unwrap();
    let info = api
        .call(&SceneGroupGet {
            open_conversation_id: cid.clone(),
        })
        .await
        .unwrap();
    assert_eq!(
        (info.title.as_str(), info.member_amount),
        ("Release room (v2)", Some(3))
    );
    let page = api
        .call(&SceneGroupMemberList {
            open_conversation_id: cid.clone(),
            cursor: 0,
            size: 2,
        })
        .await
        .unwrap();
    assert!(page.has_more && page.member_user_ids.len() == 2, "{page:?}");
    let rest = api
        .call(&SceneGroupMemberList {
            open_conversation_id: cid.clone(),
            cursor: page.next_cursor.unwrap(),
            size: 2,
        })
        .await
        .unwrap();
    assert!(
        !rest.has_more && rest.member_user_ids.len() == 1,
        "{rest:?}"
    );
    // An unknown group, and adding an unknown user: DingTalk's codes, typed.
    let e = api
        .call(&SceneGroupGet {
            open_conversation_id: "cidNope==".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(
        e.api_error().and_then(|a| a.code.clone()).as_deref(),
        Some("4000003")
    );
    let e = api
        .call(&SceneGroupMembers {
            open_conversation_id: cid.clone(),
            user_ids: vec!["ghost".into()],
            add: true,
        })
        .await
        .unwrap_err();
    assert_eq!(kind(&e), Some(ErrorKind::NotFound), "{e}");
    assert_eq!(sim.scene_group(&cid).unwrap().members.len(), 3);

    // A message to a group appears in it, and a recall removes it.
    let sent = api
        .call(&GroupSend {
            robot_code: id.clone(),
            open_conversation_id: cid.clone(),
            cool_app_code: None,
            message: RobotMessage::Text {
                content: "to be recalled".into(),
            },
        })
        .await
        .unwrap();
    let shows = |text: &str| {
        let state: serde_json::Value = serde_json::from_str(&reqwest_state(&sim)).unwrap();
        state["chat"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["text"] == text)
    };
    assert!(shows("to be recalled"));
    let recall = GroupRecall {
        robot_code: id.clone(),
        open_conversation_id: cid.clone(),
        process_query_keys: vec![sent.process_query_key.clone()],
    };
    let result = api.call(&recall).await.unwrap();
    assert_eq!(result.success_result, vec![sent.process_query_key.clone()]);
    assert!(!shows("to be recalled"));
    let again = api.call(&recall).await.unwrap();
    assert!(again.success_result.is_empty());
    assert!(again.failed_result.contains_key(&sent.process_query_key));
}

/// The console's state, through the HTTP control API.
fn reqwest_state(sim: &Sim) -> String {
    let url = format!("{}/_sim/state", sim.base_url());
    std::thread::spawn(move || {
        let agent = ureq::Agent::new_with_defaults();
        agent
            .get(&url)
            .call()
            .unwrap()
            .body_mut()
            .read_to_string()
            .unwrap()
    })
    .join()
    .unwrap()
}

/// Cards as DingTalk keeps them: a streaming call over 1 KB is `param.stream.content`, one for
/// an unknown card `param.stream.outTrackId`, the same `guid` twice changes the card once, and
/// a second create of the same `outTrackId` is `param.cardAlreadyExist`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cards_answer_as_documented() {
    use dingtalk_core::api::card::{CardContent, CreateCard, StreamingUpdate};
    use dingtalk_core::model::CardParamMap;
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    let (id, secret) = sim.credentials();
    let api = dingtalk_tokio::ApiClient::new(
        Credentials::new(&id, secret),
        Endpoints::single(sim.base_url()),
    )
    .unwrap();
    let create = CreateCard {
        card: CardContent::new("tpl", "c1", CardParamMap::default().with("msgContent", "")),
        spaces: Vec::new(),
    };
    api.call(&create).await.unwrap();
    let e = api.call(&create).await.unwrap_err();
    assert_eq!(code(&e).as_deref(), Some("param.cardAlreadyExist"));
    let stream = |track: &str, guid: &str, content: String| StreamingUpdate {
        out_track_id: track.into(),
        guid: guid.into(),
        key: "msgContent".into(),
        content,
        is_full: false,
        is_finalize: false,
        is_error: false,
    };
    let e = api
        .call(&stream("c1", "g0", "x".repeat(1025)))
        .await
        .unwrap_err();
    assert_eq!(code(&e).as_deref(), Some("param.stream.content"));
    let e = api
        .call(&stream("nope", "g1", "x".into()))
        .await
        .unwrap_err();
    assert_eq!(code(&e).as_deref(), Some("param.stream.outTrackId"));
    api.call(&stream("c1", "g2", "ab".into())).await.unwrap();
    api.call(&stream("c1", "g2", "ab".into())).await.unwrap();
    assert_eq!(
        sim.card("c1").unwrap().data["msgContent"],
        "ab",
        "same guid, applied once"
    );
}

fn code(e: &ClientError) -> Option<String> {
    e.api_error().and_then(|a| a.code.clone())
}

/// The token-delay fault: the next token request is answered only after the delay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_endpoint_can_be_delayed() {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    let (id, secret) = sim.credentials();
    let api = dingtalk_tokio::ApiClient::new(
        Credentials::new(&id, secret),
        Endpoints::single(sim.base_url()),
    )
    .unwrap();
    sim.delay_next_tokens(1, std::time::Duration::from_millis(300));
    let asked = std::time::Instant::now();
    api.token().await.unwrap();
    assert!(asked.elapsed() >= std::time::Duration::from_millis(300));
}
