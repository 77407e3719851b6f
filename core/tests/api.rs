//! Every OpenAPI call: exact method, URL, headers and body; a success and an error response.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests abort on failure

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use dingtalk_core::api::card::*;
use dingtalk_core::api::contact::*;
use dingtalk_core::api::group::*;
use dingtalk_core::api::media::*;
use dingtalk_core::api::robot::*;
use dingtalk_core::api::{ApiCall, build_request, parse_response};
use dingtalk_core::auth::{GetAccessToken, TokenCache, TokenStep};
use dingtalk_core::model::CardParamMap;
use dingtalk_core::{ApiError, Credentials, Endpoints, ErrorKind};
use serde_json::{Value, json};

const TOKEN: &str = "tok-123";

fn endpoints() -> Endpoints {
    Endpoints {
        api: "https://api.test".into(),
        oapi: "https://oapi.test".into(),
    }
}

/// Builds the request and checks method, URL, token placement and JSON body.
fn check<C: ApiCall>(call: &C, method: &str, url: &str, body: Value) -> http::Request<Vec<u8>> {
    let req = build_request(call, &endpoints(), Some(TOKEN)).unwrap();
    assert_eq!(req.method().as_str(), method);
    assert_eq!(req.uri().to_string(), url);
    if url.starts_with("https://api.test") {
        assert_eq!(req.headers()["x-acs-dingtalk-access-token"], TOKEN);
    } else {
        assert!(req.headers().get("x-acs-dingtalk-access-token").is_none());
    }
    if body.is_null() {
        assert!(req.body().is_empty());
    } else {
        assert_eq!(req.headers()["content-type"], "application/json");
        let sent: Value = serde_json::from_slice(req.body()).unwrap();
        assert_eq!(sent, body);
    }
    req
}

fn respond<C: ApiCall>(call: &C, status: u16, body: &str) -> Result<C::Output, ApiError> {
    let response = http::Response::builder()
        .status(status)
        .body(body.as_bytes().to_vec())
        .unwrap();
    parse_response(call, response)
}

fn api_error<C: ApiCall>(call: &C) -> ApiError
where
    C::Output: std::fmt::Debug,
{
    respond(
        call,
        400,
        r#"{"code":"param.invalid","message":"bad","requestid":"RID-1"}"#,
    )
    .unwrap_err()
}

fn oapi_error<C: ApiCall>(call: &C) -> ApiError
where
    C::Output: std::fmt::Debug,
{
    respond(
        call,
        200,
        r#"{"errcode":88,"sub_code":"60011","sub_msg":"没有调用该接口的权限","errmsg":"ding talk error","request_id":"5imjny7u9xwa"}"#,
    )
    .unwrap_err()
}

fn assert_api_error(e: ApiError) {
    assert_eq!(e.kind, ErrorKind::InvalidParameter);
    assert_eq!(e.status, Some(400));
    assert_eq!(e.code.as_deref(), Some("param.invalid"));
    assert_eq!(e.request_id.as_deref(), Some("RID-1"));
}

fn assert_oapi_error(e: ApiError) {
    assert_eq!(e.kind, ErrorKind::PermissionDenied);
    assert_eq!(e.code.as_deref(), Some("88"));
    assert_eq!(e.sub_code.as_deref(), Some("60011"));
    assert_eq!(e.message.as_deref(), Some("没有调用该接口的权限"));
    assert_eq!(e.request_id.as_deref(), Some("5imjny7u9xwa"));
}

// ---- token -------------------------------------------------------------------------------

#[test]
fn access_token_request_and_responses() {
    let call = GetAccessToken {
        credentials: Credentials::new("app-key", "app-secret"),
    };
    let req = build_request(&call, &endpoints(), None).unwrap();
    assert_eq!(req.method(), http::Method::POST);
    assert_eq!(req.uri(), "https://api.test/v1.0/oauth2/accessToken");
    assert!(req.headers().get("x-acs-dingtalk-access-token").is_none());
    let body: Value = serde_json::from_slice(req.body()).unwrap();
    assert_eq!(
        body,
        json!({"appKey": "app-key", "appSecret": "app-secret"})
    );
    let ok = respond(&call, 200, r#"{"accessToken":"fw8","expireIn":7200}"#).unwrap();
    assert_eq!((ok.access_token.as_str(), ok.expire_in), ("fw8", 7200));
    let e = respond(
        &call,
        400,
        r#"{"requestid":"r","code":"invalidClientIdOrSecret","message":"无效的clientId或者clientSecret"}"#,
    )
    .unwrap_err();
    assert_eq!(e.kind, ErrorKind::InvalidCredentials);
    assert!(!e.is_retryable());
    assert!(!format!("{call:?} {ok:?}").contains("app-secret"));
    assert!(!format!("{ok:?}").contains("fw8"));
}

#[test]
fn token_cache_refreshes_before_expiry_one_at_a_time() {
    let mut cache = TokenCache::new(Credentials::new("id", "secret"), endpoints());
    let t0 = Instant::now();
    assert!(matches!(cache.poll(t0), TokenStep::Refresh(_)));
    assert!(matches!(cache.poll(t0), TokenStep::Wait));
    cache
        .handle_response(
            http::Response::new(br#"{"accessToken":"A","expireIn":7200}"#.to_vec()),
            t0,
        )
        .unwrap();
    assert!(matches!(
        cache.poll(t0 + Duration::from_secs(6899)),
        TokenStep::Use("A")
    ));
    // 5 minutes before expiry: refresh.
    assert!(matches!(
        cache.poll(t0 + Duration::from_secs(6900)),
        TokenStep::Refresh(_)
    ));
}

#[test]
fn token_cache_is_invalidated_by_token_errors_only_for_that_token() {
    let mut cache = TokenCache::new(Credentials::new("id", "secret"), endpoints());
    let t0 = Instant::now();
    let _ = cache.poll(t0);
    cache
        .handle_response(
            http::Response::new(br#"{"accessToken":"A","expireIn":7200}"#.to_vec()),
            t0,
        )
        .unwrap();
    cache.invalidate("OLD");
    assert_eq!(cache.current(t0), Some("A"));
    cache.invalidate("A");
    assert_eq!(cache.current(t0), None);
    assert!(matches!(cache.poll(t0), TokenStep::Refresh(_)));
    // A failed refresh can be retried.
    cache.refresh_failed();
    assert!(matches!(cache.poll(t0), TokenStep::Refresh(_)));
    // A rejected refresh reports the typed error.
    let e = cache
        .handle_response(
            http::Response::builder()
                .status(400)
                .body(br#"{"code":"invalidClientIdOrSecret","message":"x"}"#.to_vec())
                .unwrap(),
            t0,
        )
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::InvalidCredentials);
}

#[test]
fn every_token_error_code_asks_for_a_refresh() {
    let call = UserDelete {
        user_id: "u".into(),
    };
    for code in ["40014", "42001", "40001", "33001"] {
        let e = respond(&call, 200, &format!(r#"{{"errcode":{code},"errmsg":"x"}}"#)).unwrap_err();
        assert!(TokenCache::should_refresh(&e), "{code}");
    }
    let e = respond(
        &call,
        200,
        r#"{"errcode":88,"sub_code":"40014","sub_msg":"不合法的access_token","errmsg":"x","request_id":"r"}"#,
    )
    .unwrap_err();
    assert!(e.is_token_error());
    let download = MessageFileDownload {
        robot_code: "r".into(),
        download_code: "d".into(),
    };
    let e = respond(
        &download,
        400,
        r#"{"code":"InvalidAuthentication","requestid":"01A0","message":"不合法的access_token"}"#,
    )
    .unwrap_err();
    assert!(e.is_token_error());
    let e = respond(
        &call,
        200,
        r#"{"errcode":40096,"errmsg":"不合法的appKey或appSecret"}"#,
    )
    .unwrap_err();
    assert_eq!(e.kind, ErrorKind::InvalidCredentials);
    assert!(!e.is_token_error());
}

#[test]
fn calls_without_a_token_are_refused() {
    let call = UserDelete {
        user_id: "u".into(),
    };
    let e = build_request(&call, &endpoints(), None).unwrap_err();
    assert_eq!(e.kind, ErrorKind::TokenInvalid);
}

// ---- robot messages ----------------------------------------------------------------------

#[test]
fn msg_key_catalogue() {
    let b = |t: &str| CardButton {
        title: t.into(),
        url: format!("https://x/{t}"),
    };
    let cases: Vec<(RobotMessage, &str, Value)> = vec![
        (
            RobotMessage::Text {
                content: "hi".into(),
            },
            "sampleText",
            json!({"content": "hi"}),
        ),
        (
            RobotMessage::Markdown {
                title: "t".into(),
                text: "**x**".into(),
            },
            "sampleMarkdown",
            json!({"title": "t", "text": "**x**"}),
        ),
        (
            RobotMessage::Image {
                photo_url: "@lAD".into(),
            },
            "sampleImageMsg",
            json!({"photoURL": "@lAD"}),
        ),
        (
            RobotMessage::Link {
                text: "t".into(),
                title: "ti".into(),
                pic_url: "p".into(),
                message_url: "m".into(),
            },
            "sampleLink",
            json!({"text": "t", "title": "ti", "picUrl": "p", "messageUrl": "m"}),
        ),
        (
            RobotMessage::ActionCard {
                title: "t".into(),
                text: "x".into(),
                single_title: "go".into(),
                single_url: "u".into(),
            },
            "sampleActionCard",
            json!({"title": "t", "text": "x", "singleTitle": "go", "singleURL": "u"}),
        ),
        (
            RobotMessage::ActionCardVertical {
                title: "t".into(),
                text: "x".into(),
                buttons: vec![b("a"), b("b"), b("c")],
            },
            "sampleActionCard3",
            json!({"title": "t", "text": "x", "actionTitle1": "a", "actionURL1": "https://x/a",
                   "actionTitle2": "b", "actionURL2": "https://x/b", "actionTitle3": "c", "actionURL3": "https://x/c"}),
        ),
        (
            RobotMessage::ActionCardHorizontal {
                title: "t".into(),
                text: "x".into(),
                buttons: [b("y"), b("n")],
            },
            "sampleActionCard6",
            json!({"title": "t", "text": "x", "buttonTitle1": "y", "buttonUrl1": "https://x/y",
                   "buttonTitle2": "n", "buttonUrl2": "https://x/n"}),
        ),
        (
            RobotMessage::Audio {
                media_id: "@a".into(),
                duration_ms: 3000,
            },
            "sampleAudio",
            json!({"mediaId": "@a", "duration": "3000"}),
        ),
        (
            RobotMessage::File {
                media_id: "@f".into(),
                file_name: "r.pdf".into(),
                file_type: "pdf".into(),
            },
            "sampleFile",
            json!({"mediaId": "@f", "fileName": "r.pdf", "fileType": "pdf"}),
        ),
        (
            RobotMessage::Video {
                duration_s: 5,
                video_media_id: "@v".into(),
                video_type: "mp4".into(),
                pic_media_id: "@p".into(),
            },
            "sampleVideo",
            json!({"duration": "5", "videoMediaId": "@v", "videoType": "mp4", "picMediaId": "@p"}),
        ),
    ];
    for (msg, key, param) in cases {
        let (k, p) = msg.encode().unwrap();
        assert_eq!(k, key);
        let decoded: Value = serde_json::from_str(&p).unwrap();
        assert_eq!(decoded, param, "{key}");
    }
    let one = RobotMessage::ActionCardVertical {
        title: "t".into(),
        text: "x".into(),
        buttons: vec![b("a")],
    };
    assert_eq!(one.encode().unwrap_err().kind, ErrorKind::Validation);
    let huge = RobotMessage::Text {
        content: "x".repeat(15_001),
    };
    assert_eq!(huge.encode().unwrap_err().kind, ErrorKind::TooLarge);
}

#[test]
fn group_send() {
    let call = GroupSend {
        robot_code: "dingrobot".into(),
        open_conversation_id: "cid1".into(),
        cool_app_code: None,
        message: RobotMessage::Text {
            content: "hi".into(),
        },
    };
    check(
        &call,
        "POST",
        "https://api.test/v1.0/robot/groupMessages/send",
        json!({"robotCode": "dingrobot", "openConversationId": "cid1", "msgKey": "sampleText",
               "msgParam": "{\"content\":\"hi\"}"}),
    );
    let ok = respond(&call, 200, r#"{"processQueryKey":"pqk"}"#).unwrap();
    assert_eq!(ok.process_query_key, "pqk");
    assert_api_error(api_error(&call));
}

#[test]
fn batch_send_oto_checks_recipients() {
    let mut call = BatchSendOto {
        robot_code: "r".into(),
        user_ids: vec!["u1".into(), "u2".into()],
        message: RobotMessage::Markdown {
            title: "t".into(),
            text: "x".into(),
        },
    };
    check(
        &call,
        "POST",
        "https://api.test/v1.0/robot/oToMessages/batchSend",
        json!({"robotCode": "r", "userIds": ["u1", "u2"], "msgKey": "sampleMarkdown",
               "msgParam": "{\"text\":\"x\",\"title\":\"t\"}"}),
    );
    let ok = respond(
        &call,
        200,
        r#"{"processQueryKey":"k","flowControlledStaffIdList":["u2"],"invalidStaffIdList":[]}"#,
    )
    .unwrap();
    assert_eq!(ok.flow_controlled_staff_id_list, vec!["u2"]);
    let e = respond(
        &call,
        400,
        r#"{"code":"send.too.fast","message":"slow down"}"#,
    )
    .unwrap_err();
    assert_eq!(e.kind, ErrorKind::RateLimited);
    assert!(e.is_retryable());
    call.user_ids = (0..21).map(|i| format!("u{i}")).collect();
    assert_eq!(
        build_request(&call, &endpoints(), Some(TOKEN))
            .unwrap_err()
            .kind,
        ErrorKind::Validation
    );
    call.user_ids.clear();
    assert!(build_request(&call, &endpoints(), Some(TOKEN)).is_err());
}

#[test]
fn group_recall_and_oto_recall() {
    let call = GroupRecall {
        robot_code: "r".into(),
        open_conversation_id: "cid".into(),
        process_query_keys: vec!["k1".into()],
    };
    check(
        &call,
        "POST",
        "https://api.test/v1.0/robot/groupMessages/recall",
        json!({"robotCode": "r", "openConversationId": "cid", "processQueryKeys": ["k1"]}),
    );
    let ok = respond(
        &call,
        200,
        r#"{"successResult":["k1"],"failedResult":{"k2":"SYSTEM_ERROR"}}"#,
    )
    .unwrap();
    assert_eq!(ok.success_result, vec!["k1"]);
    assert_eq!(ok.failed_result["k2"], "SYSTEM_ERROR");
    assert_api_error(api_error(&call));

    let call = BatchRecallOto {
        robot_code: "r".into(),
        process_query_keys: vec!["k1".into()],
    };
    check(
        &call,
        "POST",
        "https://api.test/v1.0/robot/otoMessages/batchRecall",
        json!({"robotCode": "r", "processQueryKeys": ["k1"]}),
    );
    assert!(respond(&call, 200, r#"{"successResult":[]}"#).is_ok());
    assert_api_error(api_error(&call));
}

#[test]
fn oto_read_status_uses_escaped_query() {
    let call = OtoReadStatus {
        robot_code: "r".into(),
        process_query_key: "a+b/c=".into(),
    };
    check(
        &call,
        "GET",
        "https://api.test/v1.0/robot/oToMessages/readStatus?processQueryKey=a%2Bb%2Fc%3D&robotCode=r",
        Value::Null,
    );
    let ok = respond(
        &call,
        200,
        r#"{"sendStatus":"SUCESS","messageReadInfoList":[{"name":"n","userId":"u","readStatus":"READ","readTimestamp":1700000000000}]}"#,
    )
    .unwrap();
    assert_eq!(
        ok.message_read_info_list[0].read_timestamp,
        Some(1700000000000)
    );
    assert_api_error(api_error(&call));
}

#[test]
fn message_file_download() {
    let call = MessageFileDownload {
        robot_code: "r".into(),
        download_code: "dc".into(),
    };
    check(
        &call,
        "POST",
        "https://api.test/v1.0/robot/messageFiles/download",
        json!({"downloadCode": "dc", "robotCode": "r"}),
    );
    assert_eq!(
        respond(&call, 200, r#"{"downloadUrl":"https://x/f"}"#).unwrap(),
        "https://x/f"
    );
    let e = respond(
        &call,
        403,
        r#"{"code":"Forbidden.AccessDenied.IpNotInWhiteList","message":"ip","requestid":"r"}"#,
    )
    .unwrap_err();
    assert_eq!(e.kind, ErrorKind::IpNotWhitelisted);
    // A success without the field is a typed error, not a panic.
    assert_eq!(
        respond(&call, 200, "{}").unwrap_err().kind,
        ErrorKind::InvalidResponse
    );
}

// ---- media -------------------------------------------------------------------------------

#[test]
fn media_upload_builds_multipart_with_the_injected_boundary() {
    let call = MediaUpload {
        kind: MediaType::Image,
        file_name: "a.png".into(),
        content_type: "image/png".into(),
        bytes: b"PNGDATA".to_vec(),
        boundary: "BOUNDARY42".into(),
    };
    let req = build_request(&call, &endpoints(), Some(TOKEN)).unwrap();
    assert_eq!(req.method(), http::Method::POST);
    assert_eq!(
        req.uri(),
        "https://oapi.test/media/upload?access_token=tok-123&type=image"
    );
    assert_eq!(
        req.headers()["content-type"],
        "multipart/form-data; boundary=BOUNDARY42"
    );
    assert_eq!(
        String::from_utf8(req.body().clone()).unwrap(),
        "--BOUNDARY42\r\nContent-Disposition: form-data; name=\"type\"\r\n\r\nimage\r\n\
         --BOUNDARY42\r\nContent-Disposition: form-data; name=\"media\"; filename=\"a.png\"\r\n\
         Content-Type: image/png\r\n\r\nPNGDATA\r\n--BOUNDARY42--\r\n"
    );
    let ok = respond(
        &call,
        200,
        r#"{"errcode":0,"errmsg":"ok","media_id":"@lAjPD","created_at":1700808802015,"type":"image"}"#,
    )
    .unwrap();
    assert_eq!(ok.media_id, "@lAjPD");
    let e = respond(
        &call,
        200,
        r#"{"errcode":60020,"errmsg":"访问ip不在白名单之中"}"#,
    )
    .unwrap_err();
    assert_eq!(e.kind, ErrorKind::IpNotWhitelisted);
    assert_eq!(e.code.as_deref(), Some("60020"));
}

#[test]
fn media_upload_limits_are_checked_before_sending() {
    let base = MediaUpload {
        kind: MediaType::Voice,
        file_name: "a.mp3".into(),
        content_type: "audio/mpeg".into(),
        bytes: vec![0; 2 * 1024 * 1024 + 1],
        boundary: "b".into(),
    };
    assert_eq!(base.spec().unwrap_err().kind, ErrorKind::TooLarge);
    let wrong_ext = MediaUpload {
        file_name: "a.exe".into(),
        bytes: vec![1],
        ..base.clone()
    };
    assert_eq!(wrong_ext.spec().unwrap_err().kind, ErrorKind::InvalidFile);
    let injected = MediaUpload {
        file_name: "a\".mp3".into(),
        bytes: vec![1],
        ..base.clone()
    };
    assert_eq!(injected.spec().unwrap_err().kind, ErrorKind::Validation);
    let clash = MediaUpload {
        bytes: b"xx--b yy".to_vec(),
        ..base
    };
    assert_eq!(clash.spec().unwrap_err().kind, ErrorKind::Validation);
}

// ---- cards -------------------------------------------------------------------------------

fn params() -> CardParamMap {
    let mut m = serde_json::Map::new();
    m.insert("title".into(), json!("hello"));
    m.insert("done".into(), json!(true));
    m.insert("items".into(), json!([1, 2]));
    CardParamMap::from_json(&m)
}

#[test]
fn card_param_map_values_are_strings() {
    assert_eq!(
        json!(params()),
        json!({"cardParamMap": {"title": "hello", "done": "true", "items": "[1,2]"}})
    );
}

fn group_space() -> CardSpace {
    CardSpace::Group {
        open_conversation_id: "cid1".into(),
        robot_code: "robot".into(),
        at_user_ids: None,
        at_all: true,
        recipients: vec![],
    }
}

#[test]
fn create_card() {
    let call = CreateCard {
        card: CardContent::new("tpl.schema", "track-1", params()),
        spaces: vec![group_space()],
    };
    check(
        &call,
        "POST",
        "https://api.test/v1.0/card/instances",
        json!({"cardTemplateId": "tpl.schema", "outTrackId": "track-1",
               "cardData": {"cardParamMap": {"title": "hello", "done": "true", "items": "[1,2]"}},
               "callbackType": "STREAM", "imGroupOpenSpaceModel": {"supportForward": true}}),
    );
    assert!(respond(&call, 200, r#"{"success":true,"result":"track-1"}"#).is_ok());
    assert_api_error(api_error(&call));
    let e = respond(&call, 500, r#"{"code":"system.busy","message":"busy"}"#).unwrap_err();
    assert_eq!(e.kind, ErrorKind::ServerBusy);
    assert!(e.retry_after().is_some());
}

#[test]
fn deliver_card_to_group_and_robot_spaces() {
    let call = DeliverCard {
        out_track_id: "track-1".into(),
        space: group_space(),
    };
    check(
        &call,
        "POST",
        "https://api.test/v1.0/card/instances/deliver",
        json!({"outTrackId": "track-1", "userIdType": 1, "openSpaceId": "dtv1.card//IM_GROUP.cid1",
               "imGroupOpenDeliverModel": {"robotCode": "robot", "atUserIds": {"@ALL": "@ALL"}}}),
    );
    let call = DeliverCard {
        out_track_id: "track-1".into(),
        space: CardSpace::Robot {
            user_id: "staff1".into(),
            robot_code: None,
        },
    };
    check(
        &call,
        "POST",
        "https://api.test/v1.0/card/instances/deliver",
        json!({"outTrackId": "track-1", "userIdType": 1, "openSpaceId": "dtv1.card//IM_ROBOT.staff1",
               "imRobotOpenDeliverModel": {"spaceType": "IM_ROBOT"}}),
    );
    let ok = respond(
        &call,
        200,
        r#"{"success":true,"result":[{"spaceType":"IM_ROBOT","spaceId":"staff1","success":true,"carrierId":"c"}]}"#,
    )
    .unwrap();
    assert_eq!(ok.result[0]["carrierId"], "c");
    assert_api_error(api_error(&call));
    let e = respond(&call, 200, r#"{"success":false,"result":null}"#).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Other);
}

#[test]
fn create_and_deliver_card() {
    let mut card = CardContent::new("tpl", "t2", CardParamMap::default().with("k", "v"));
    card.callback_route_key = Some("route".into());
    let call = CreateAndDeliver {
        card,
        space: CardSpace::Group {
            open_conversation_id: "cid".into(),
            robot_code: "r".into(),
            at_user_ids: Some(BTreeMap::from([("u1".to_string(), "Nick".to_string())])),
            at_all: false,
            recipients: vec!["u1".into()],
        },
    };
    check(
        &call,
        "POST",
        "https://api.test/v1.0/card/instances/createAndDeliver",
        json!({"cardTemplateId": "tpl", "outTrackId": "t2", "cardData": {"cardParamMap": {"k": "v"}},
               "callbackType": "HTTP", "callbackRouteKey": "route", "userIdType": 1,
               "imGroupOpenSpaceModel": {"supportForward": true},
               "openSpaceId": "dtv1.card//IM_GROUP.cid",
               "imGroupOpenDeliverModel": {"robotCode": "r", "atUserIds": {"u1": "Nick"}, "recipients": ["u1"]}}),
    );
    assert!(
        respond(
            &call,
            200,
            r#"{"success":true,"result":{"outTrackId":"t2"}}"#
        )
        .is_ok()
    );
    assert_api_error(api_error(&call));
}

#[test]
fn update_card_and_streaming() {
    let call = UpdateCard {
        out_track_id: "t".into(),
        card_data: Some(CardParamMap::default().with("flowStatus", "3")),
        private_data: BTreeMap::new(),
        options: Some(CardUpdateOptions {
            update_card_data_by_key: true,
            update_private_data_by_key: false,
        }),
    };
    check(
        &call,
        "PUT",
        "https://api.test/v1.0/card/instances",
        json!({"outTrackId": "t", "userIdType": 1, "cardData": {"cardParamMap": {"flowStatus": "3"}},
               "cardUpdateOptions": {"updateCardDataByKey": true, "updatePrivateDataByKey": false}}),
    );
    assert!(respond(&call, 200, r#"{"success":true,"result":true}"#).is_ok());
    assert_api_error(api_error(&call));

    let call = StreamingUpdate {
        out_track_id: "t".into(),
        guid: "g-1".into(),
        key: "msgContent".into(),
        content: "partial".into(),
        is_full: true,
        is_finalize: false,
        is_error: false,
    };
    check(
        &call,
        "PUT",
        "https://api.test/v1.0/card/streaming",
        json!({"outTrackId": "t", "guid": "g-1", "key": "msgContent", "content": "partial",
               "isFull": true, "isFinalize": false, "isError": false}),
    );
    assert!(respond(&call, 200, r#"{"success":true,"result":true}"#).is_ok());
    let e = respond(
        &call,
        400,
        r#"{"code":"param.stream.outTrackId","message":"card is not exist"}"#,
    )
    .unwrap_err();
    assert_eq!(e.kind, ErrorKind::InvalidParameter);
}

#[test]
fn standard_card_send_and_update() {
    let call = StandardCardSend {
        robot_code: "r".into(),
        card_biz_id: "biz".into(),
        card_data: json!({"contents": [{"type": "markdown", "text": "hi"}]}),
        target: StandardCardTarget::User("staff1".into()),
        at_all: false,
        at_users: vec![("Nick".into(), "staff1".into())],
    };
    check(
        &call,
        "POST",
        "https://api.test/v1.0/im/v1.0/robot/interactiveCards/send",
        json!({"cardTemplateId": "StandardCard", "robotCode": "r", "cardBizId": "biz",
               "cardData": "{\"contents\":[{\"text\":\"hi\",\"type\":\"markdown\"}]}",
               "sendOptions": {"atAll": false, "atUserListJson": "[{\"nickName\":\"Nick\",\"userId\":\"staff1\"}]"},
               "singleChatReceiver": "{\"userId\":\"staff1\"}"}),
    );
    assert_eq!(
        respond(&call, 200, r#"{"processQueryKey":"p"}"#).unwrap(),
        "p"
    );
    assert_api_error(api_error(&call));

    let call = StandardCardUpdate {
        card_biz_id: "biz".into(),
        card_data: json!({"a": 1}),
        options: None,
    };
    check(
        &call,
        "PUT",
        "https://api.test/v1.0/im/robots/interactiveCards",
        json!({"cardBizId": "biz", "cardData": "{\"a\":1}"}),
    );
    assert!(
        respond(&call, 200, "").is_ok(),
        "empty 200 body is a success"
    );
    assert_api_error(api_error(&call));
}

// ---- scene groups ------------------------------------------------------------------------

#[test]
fn scene_group_create_get_update() {
    let mut options = serde_json::Map::new();
    options.insert("searchable".into(), json!(1));
    let call = SceneGroupCreate {
        title: "Team".into(),
        template_id: "tpl".into(),
        owner_user_id: "owner".into(),
        user_ids: vec!["a".into(), "b".into()],
        subadmin_ids: vec![],
        options,
    };
    check(
        &call,
        "POST",
        "https://oapi.test/topapi/im/chat/scenegroup/create?access_token=tok-123",
        json!({"title": "Team", "template_id": "tpl", "owner_user_id": "owner", "user_ids": "a,b", "searchable": 1}),
    );
    let ok = respond(
        &call,
        200,
        r#"{"errcode":0,"errmsg":"ok","success":true,"result":{"open_conversation_id":"cid","chat_id":"chat"}}"#,
    )
    .unwrap();
    assert_eq!(ok.open_conversation_id, "cid");
    assert_oapi_error(oapi_error(&call));

    let call = SceneGroupGet {
        open_conversation_id: "cid".into(),
    };
    check(
        &call,
        "POST",
        "https://oapi.test/topapi/im/chat/scenegroup/get?access_token=tok-123",
        json!({"open_conversation_id": "cid"}),
    );
    let ok = respond(
        &call,
        200,
        r#"{"errcode":0,"result":{"open_conversation_id":"cid","title":"T","owner_staff_id":"o","member_amount":3,"group_url":"u"}}"#,
    )
    .unwrap();
    assert_eq!(ok.member_amount, Some(3));
    assert_eq!(ok.extra["group_url"], "u");
    let e = respond(
        &call,
        200,
        r#"{"errcode":4000003,"errmsg":"not a scene group"}"#,
    )
    .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Other);
    assert_eq!(e.code.as_deref(), Some("4000003"));

    let mut changes = serde_json::Map::new();
    changes.insert("title".into(), json!("New"));
    let call = SceneGroupUpdate {
        open_conversation_id: "cid".into(),
        changes,
    };
    check(
        &call,
        "POST",
        "https://oapi.test/topapi/im/chat/scenegroup/update?access_token=tok-123",
        json!({"open_conversation_id": "cid", "title": "New"}),
    );
    assert!(respond(&call, 200, r#"{"errcode":0,"errmsg":"ok"}"#).is_ok());
    assert_oapi_error(oapi_error(&call));
}

#[test]
fn scene_group_members() {
    for (add, path) in [(true, "add"), (false, "delete")] {
        let call = SceneGroupMembers {
            open_conversation_id: "cid".into(),
            user_ids: vec!["a".into(), "b".into()],
            add,
        };
        check(
            &call,
            "POST",
            &format!(
                "https://oapi.test/topapi/im/chat/scenegroup/member/{path}?access_token=tok-123"
            ),
            json!({"open_conversation_id": "cid", "user_ids": "a,b"}),
        );
        assert!(respond(&call, 200, r#"{"errcode":0}"#).is_ok());
        assert_oapi_error(oapi_error(&call));
    }
    let bad = SceneGroupMembers {
        open_conversation_id: "cid".into(),
        user_ids: vec!["a,b".into()],
        add: true,
    };
    assert_eq!(bad.spec().unwrap_err().kind, ErrorKind::Validation);
    let too_many = SceneGroupMembers {
        open_conversation_id: "cid".into(),
        user_ids: (0..1000).map(|i| i.to_string()).collect(),
        add: true,
    };
    assert_eq!(too_many.spec().unwrap_err().kind, ErrorKind::Validation);

    let call = SceneGroupMemberList {
        open_conversation_id: "cid".into(),
        cursor: 0,
        size: 1000,
    };
    check(
        &call,
        "POST",
        "https://oapi.test/topapi/im/chat/scenegroup/member/get?access_token=tok-123",
        json!({"open_conversation_id": "cid", "cursor": 0, "size": 1000}),
    );
    let ok = respond(
        &call,
        200,
        r#"{"errcode":0,"result":{"has_more":true,"next_cursor":1000,"member_user_ids":["a"]}}"#,
    )
    .unwrap();
    assert!(ok.has_more);
    assert_oapi_error(oapi_error(&call));
}

#[test]
fn scene_group_sub_admins_and_mute() {
    let call = SceneGroupSubAdmins {
        open_conversation_id: "cid".into(),
        user_ids: vec!["u".into()],
        admin: true,
    };
    check(
        &call,
        "PUT",
        "https://api.test/v1.0/im/sceneGroups/subAdmins",
        json!({"openConversationId": "cid", "userIds": ["u"], "role": 2}),
    );
    assert!(respond(&call, 200, r#"{"success":true}"#).is_ok());
    assert_api_error(api_error(&call));

    let call = SceneGroupMute {
        open_conversation_id: "cid".into(),
        user_ids: vec!["u".into()],
        mute: true,
        duration_ms: 300_000,
    };
    check(
        &call,
        "POST",
        "https://api.test/v1.0/im/sceneGroups/muteMembers/set",
        json!({"openConversationId": "cid", "userIdList": ["u"], "muteStatus": 1, "muteDuration": 300000}),
    );
    assert!(respond(&call, 200, r#"{"success":true}"#).is_ok());
    let e = respond(
        &call,
        403,
        r#"{"code":"Forbidden.AccessDenied.AccessTokenPermissionDenied","message":"need qyapi_chat_manage"}"#,
    )
    .unwrap_err();
    assert_eq!(e.kind, ErrorKind::PermissionDenied);
}

// ---- contacts ----------------------------------------------------------------------------

#[test]
fn user_calls() {
    let call = UserGet {
        user_id: "u1".into(),
        language: Some("zh_CN".into()),
    };
    check(
        &call,
        "POST",
        "https://oapi.test/topapi/v2/user/get?access_token=tok-123",
        json!({"userid": "u1", "language": "zh_CN"}),
    );
    let ok = respond(
        &call,
        200,
        r#"{"errcode":0,"result":{"userid":"u1","name":"张三","dept_id_list":[1,2],"boss":false}}"#,
    )
    .unwrap();
    assert_eq!(ok.name, "张三");
    assert_eq!(ok.dept_id_list, vec![1, 2]);
    let e = respond(&call, 200, r#"{"errcode":60121,"errmsg":"找不到该用户"}"#).unwrap_err();
    assert_eq!(e.kind, ErrorKind::NotFound);

    let call = UserCreate {
        name: "张三".into(),
        mobile: Some("138".into()),
        dept_ids: vec![1, 5],
        fields: serde_json::Map::new(),
    };
    check(
        &call,
        "POST",
        "https://oapi.test/topapi/v2/user/create?access_token=tok-123",
        json!({"name": "张三", "mobile": "138", "dept_id_list": "1,5"}),
    );
    let ok = respond(
        &call,
        200,
        r#"{"errcode":0,"result":{"userid":"new","unionId":"un"}}"#,
    )
    .unwrap();
    assert_eq!(ok.userid, "new");
    assert_oapi_error(oapi_error(&call));

    let mut changes = serde_json::Map::new();
    changes.insert("title".into(), json!("Boss"));
    let call = UserUpdate {
        user_id: "u1".into(),
        changes,
    };
    check(
        &call,
        "POST",
        "https://oapi.test/topapi/v2/user/update?access_token=tok-123",
        json!({"userid": "u1", "title": "Boss"}),
    );
    assert!(respond(&call, 200, r#"{"errcode":0,"errmsg":"ok"}"#).is_ok());
    assert_oapi_error(oapi_error(&call));

    let call = UserDelete {
        user_id: "u1".into(),
    };
    check(
        &call,
        "POST",
        "https://oapi.test/topapi/v2/user/delete?access_token=tok-123",
        json!({"userid": "u1"}),
    );
    assert!(respond(&call, 200, r#"{"errcode":0,"errmsg":"ok"}"#).is_ok());
    assert_oapi_error(oapi_error(&call));
}

#[test]
fn department_list_sub() {
    let call = DepartmentListSub {
        dept_id: 1,
        language: None,
    };
    check(
        &call,
        "POST",
        "https://oapi.test/topapi/v2/department/listsub?access_token=tok-123",
        json!({"dept_id": 1}),
    );
    let ok = respond(
        &call,
        200,
        r#"{"errcode":0,"result":[{"dept_id":2,"name":"研发","parent_id":1,"auto_add_user":true}]}"#,
    )
    .unwrap();
    assert_eq!(ok[0].name, "研发");
    let e = respond(&call, 200, r#"{"errcode":60003,"errmsg":"部门不存在"}"#).unwrap_err();
    assert_eq!(e.kind, ErrorKind::NotFound);
}

// ---- error envelopes ---------------------------------------------------------------------

#[test]
fn error_code_table_maps_to_kinds() {
    let call = UserDelete {
        user_id: "u".into(),
    };
    let table = [
        ("90002", ErrorKind::RateLimited),
        ("90018", ErrorKind::RateLimited),
        ("90020", ErrorKind::QuotaExceeded),
        ("60011", ErrorKind::PermissionDenied),
        ("60020", ErrorKind::IpNotWhitelisted),
        ("40035", ErrorKind::InvalidParameter),
        ("60121", ErrorKind::NotFound),
        ("33012", ErrorKind::NotFound),
        ("40005", ErrorKind::InvalidFile),
        ("-1", ErrorKind::ServerBusy),
        ("400002", ErrorKind::InvalidParameter),
        ("12345", ErrorKind::Other),
    ];
    for (code, kind) in table {
        let e = respond(&call, 200, &format!(r#"{{"errcode":{code},"errmsg":"m"}}"#)).unwrap_err();
        assert_eq!(e.kind, kind, "{code}");
        assert_eq!(e.code.as_deref(), Some(code));
        assert_eq!(e.message.as_deref(), Some("m"));
    }
    let api = MessageFileDownload {
        robot_code: "r".into(),
        download_code: "d".into(),
    };
    let table = [
        (
            "Forbidden.AccessDenied.QpsLimitForApi",
            403,
            ErrorKind::RateLimited,
        ),
        (
            "Forbidden.AccessDenied.QpsLimitForAppkeyAndApi",
            403,
            ErrorKind::RateLimited,
        ),
        (
            "Forbidden.AccessDenied.ApiCountLimitForOrg",
            403,
            ErrorKind::QuotaExceeded,
        ),
        (
            "Forbidden.AccessDenied.AccessTokenPermissionDenied",
            403,
            ErrorKind::PermissionDenied,
        ),
        ("resource.not.found", 400, ErrorKind::NotFound),
        ("param.invalid", 400, ErrorKind::InvalidParameter),
        ("system.busy", 500, ErrorKind::ServerBusy),
        ("somethingNew", 503, ErrorKind::ServerBusy),
        ("somethingNew", 400, ErrorKind::Other),
    ];
    for (code, status, kind) in table {
        let e = respond(
            &api,
            status,
            &format!(r#"{{"code":"{code}","message":"m","requestid":"r"}}"#),
        )
        .unwrap_err();
        assert_eq!(e.kind, kind, "{code}");
        assert_eq!(e.status, Some(status));
        assert_eq!(e.code.as_deref(), Some(code));
    }
}

#[test]
fn retry_guidance() {
    let qps = ApiError {
        code: Some("90018".into()),
        ..ApiError::new(ErrorKind::RateLimited, "x")
    };
    assert_eq!(qps.retry_after(), Some(Duration::from_secs(1)));
    let qpm = ApiError {
        code: Some("660026".into()),
        ..ApiError::new(ErrorKind::RateLimited, "x")
    };
    assert_eq!(qpm.retry_after(), Some(Duration::from_secs(60)));
    assert_eq!(
        ApiError::new(ErrorKind::QuotaExceeded, "x").retry_after(),
        None
    );
    assert!(!ApiError::new(ErrorKind::PermissionDenied, "x").is_retryable());
}

#[test]
fn unreadable_bodies_are_typed_errors() {
    let api = MessageFileDownload {
        robot_code: "r".into(),
        download_code: "d".into(),
    };
    let oapi = UserDelete {
        user_id: "u".into(),
    };
    for (status, body) in [
        (502, "<html><body>Bad Gateway</body></html>"),
        (200, "<html>?</html>"),
        (200, r#"{"downloadUrl": 5}"#),
        (400, ""),
        (200, "[1,2"),
    ] {
        let e = respond(&api, status, body).unwrap_err();
        assert!(
            matches!(e.kind, ErrorKind::InvalidResponse | ErrorKind::ServerBusy),
            "{status} {body}: {e:?}"
        );
        assert_eq!(e.status, Some(status));
        if body.starts_with('{') {
            continue; // JSON without `errcode` is a success in the oapi envelope
        }
        let e = respond(&oapi, status, body).unwrap_err();
        assert!(matches!(
            e.kind,
            ErrorKind::InvalidResponse | ErrorKind::ServerBusy | ErrorKind::Other
        ));
    }
    // errcode as a string is accepted.
    assert!(respond(&oapi, 200, r#"{"errcode":"0","errmsg":"ok"}"#).is_ok());
    let e = respond(&oapi, 200, r#"{"errcode":"60020","errmsg":"ip"}"#).unwrap_err();
    assert_eq!(e.kind, ErrorKind::IpNotWhitelisted);
}

#[test]
fn endpoints_are_configurable() {
    let call = UserDelete {
        user_id: "u".into(),
    };
    let req = build_request(&call, &Endpoints::overseas(), Some("t")).unwrap();
    assert_eq!(
        req.uri(),
        "https://oapi.dingtalk.io/topapi/v2/user/delete?access_token=t"
    );
    let req = build_request(
        &call,
        &Endpoints::single("http://127.0.0.1:8080/"),
        Some("t"),
    )
    .unwrap();
    assert_eq!(
        req.uri(),
        "http://127.0.0.1:8080/topapi/v2/user/delete?access_token=t"
    );
}

/// A call the SDK did not write, added by a user through the trait.
#[test]
fn users_can_add_their_own_calls() {
    struct Custom;
    impl ApiCall for Custom {
        type Output = String;
        fn spec(&self) -> Result<dingtalk_core::api::RequestSpec, ApiError> {
            Ok(dingtalk_core::api::RequestSpec::api_post(
                "/v1.0/custom/thing",
                json!({"x": 1}),
            ))
        }
        fn parse(&self, body: Value) -> Result<String, ApiError> {
            Ok(body["name"].as_str().unwrap_or_default().to_owned())
        }
    }
    check(
        &Custom,
        "POST",
        "https://api.test/v1.0/custom/thing",
        json!({"x": 1}),
    );
    assert_eq!(respond(&Custom, 200, r#"{"name":"n"}"#).unwrap(), "n");
}

#[test]
fn an_unbuildable_token_request_fails_at_once_instead_of_waiting_forever() {
    let mut cache = TokenCache::new(
        Credentials::new("id", "secret"),
        Endpoints::single("api.dingtalk.com"), // no scheme
    );
    let t0 = Instant::now();
    for _ in 0..3 {
        match cache.poll(t0) {
            TokenStep::Fail(e) => {
                assert_eq!(e.kind, ErrorKind::Validation);
                assert!(!e.to_string().contains("secret"));
            }
            other => panic!("expected a typed failure, got {other:?}"),
        }
    }
    assert!(Endpoints::single("api.dingtalk.com").validate().is_err());
    assert!(
        Endpoints::single("http://api.dingtalk.com")
            .validate()
            .is_err()
    );
    assert!(Endpoints::single("http://127.0.0.1:1").validate().is_ok());
    assert!(Endpoints::default().validate().is_ok());
}

#[test]
fn a_huge_expire_in_neither_panics_nor_keeps_the_token_past_a_day() {
    let mut cache = TokenCache::new(Credentials::new("id", "secret"), endpoints());
    let t0 = Instant::now();
    let _ = cache.poll(t0);
    let body = format!(r#"{{"accessToken":"A","expireIn":{}}}"#, u64::MAX);
    cache
        .handle_response(http::Response::new(body.into_bytes()), t0)
        .unwrap();
    assert_eq!(cache.current(t0 + Duration::from_secs(3600)), Some("A"));
    assert!(matches!(
        cache.poll(t0 + dingtalk_core::auth::MAX_TOKEN_LIFETIME),
        TokenStep::Refresh(_)
    ));
}

#[test]
fn webhooks_are_https_only_and_errors_never_quote_their_urls() {
    use dingtalk_core::webhook::{CustomRobotSend, Message, SessionWebhookSend};
    let reply = |url: &str| SessionWebhookSend {
        url: url.into(),
        expires_at_ms: None,
        now_ms: 0,
        message: Message::text("hi"),
    };
    for bad in [
        "http://evil.example/robot/sendBySession?session=SECRETSESSION",
        "ftp://x/?session=SECRETSESSION",
        "not a url session=SECRETSESSION",
    ] {
        let e = build_request(&reply(bad), &endpoints(), None).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Validation);
        assert!(!format!("{e} {e:?}").contains("SECRETSESSION"), "{e:?}");
    }
    assert!(
        build_request(
            &reply("https://oapi.dingtalk.com/robot/sendBySession?session=s"),
            &endpoints(),
            None
        )
        .is_ok()
    );
    assert!(
        build_request(
            &reply("http://127.0.0.1:9/robot/sendBySession?session=s"),
            &endpoints(),
            None
        )
        .is_ok()
    );

    let robot = |webhook: &str| CustomRobotSend {
        webhook: webhook.into(),
        secret: Some("SECSECRET".into()),
        timestamp_ms: 1,
        message: Message::text("hi"),
    };
    for bad in [
        "http://oapi.dingtalk.com/robot/send?access_token=SECRETTOKEN",
        "https://oapi.dingtalk.com/robot/send?access_token=SECRETTOKEN bad",
    ] {
        let e = build_request(&robot(bad), &endpoints(), None).unwrap_err();
        let text = format!("{e} {e:?}");
        assert!(
            !text.contains("SECRETTOKEN") && !text.contains("sign="),
            "{text}"
        );
    }
}
