//! Webhooks, custom-robot signing, HTTP-callback verification and crypto (every published
//! vector), and the payload models.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests abort on failure

use dingtalk_core::api::{build_request, parse_response};
use dingtalk_core::callback::{
    CallbackError, EventCrypto, event_signature, parse_outgoing, verify_outgoing,
};
use dingtalk_core::model::{
    CardCallback, ChatbotMessage, Content, Event, GraphRequest, GraphResponse, RichTextItem,
};
use dingtalk_core::webhook::{
    At, Button, CustomRobotSend, FeedLink, Message, Orientation, SessionWebhookSend, sign,
};
use dingtalk_core::{Endpoints, ErrorKind, Frame, Limits};
use serde_json::{Value, json};

fn respond<C: dingtalk_core::ApiCall>(
    call: &C,
    status: u16,
    body: &str,
) -> Result<C::Output, dingtalk_core::ApiError> {
    parse_response(
        call,
        http::Response::builder()
            .status(status)
            .body(body.as_bytes().to_vec())
            .unwrap(),
    )
}

// ---- webhook bodies ------------------------------------------------------------------------

#[test]
fn webhook_bodies_use_the_documented_field_names() {
    assert_eq!(
        Message::text("hi @138").at(At::mobiles(["138"])).to_json(),
        json!({"msgtype": "text", "text": {"content": "hi @138"}, "at": {"atMobiles": ["138"], "isAtAll": false}})
    );
    assert_eq!(
        Message::markdown("t", "# x").at(At::all()).to_json(),
        json!({"msgtype": "markdown", "markdown": {"title": "t", "text": "# x"}, "at": {"isAtAll": true}})
    );
    let link = Message::Link {
        title: "t".into(),
        text: "x".into(),
        message_url: "https://m".into(),
        pic_url: "https://p".into(),
    };
    assert_eq!(
        link.at(At::all()).to_json(),
        json!({"msgtype": "link", "link": {"title": "t", "text": "x", "messageUrl": "https://m", "picUrl": "https://p"}}),
        "link uses messageUrl/picUrl and cannot @"
    );
    assert_eq!(
        Message::ActionCard {
            title: "t".into(),
            text: "x".into(),
            single_title: "Read".into(),
            single_url: "https://r".into(),
        }
        .to_json(),
        json!({"msgtype": "actionCard", "actionCard": {"title": "t", "text": "x", "singleTitle": "Read", "singleURL": "https://r"}})
    );
    assert_eq!(
        Message::ActionCardButtons {
            title: "t".into(),
            text: "x".into(),
            buttons: vec![Button {
                title: "A".into(),
                action_url: "https://a".into()
            }],
            orientation: Orientation::Horizontal,
        }
        .to_json(),
        json!({"msgtype": "actionCard", "actionCard": {"title": "t", "text": "x", "btnOrientation": "1",
               "btns": [{"title": "A", "actionURL": "https://a"}]}})
    );
    assert_eq!(
        Message::FeedCard {
            links: vec![FeedLink {
                title: "t".into(),
                message_url: "https://m".into(),
                pic_url: "https://p".into()
            }],
        }
        .to_json(),
        json!({"msgtype": "feedCard", "feedCard": {"links": [{"title": "t", "messageURL": "https://m", "picURL": "https://p"}]}}),
        "feedCard uses messageURL/picURL"
    );
}

#[test]
fn session_webhook_reply() {
    let call = SessionWebhookSend {
        url: "https://oapi.dingtalk.com/robot/sendBySession?session=abc".into(),
        expires_at_ms: Some(2_000),
        now_ms: 1_000,
        message: Message::text("pong").at(At::users(["u1"])),
    };
    let req = build_request(&call, &Endpoints::default(), None).unwrap();
    assert_eq!(req.method(), http::Method::POST);
    assert_eq!(
        req.uri(),
        "https://oapi.dingtalk.com/robot/sendBySession?session=abc"
    );
    assert_eq!(req.headers()["content-type"], "application/json");
    assert!(req.headers().get("x-acs-dingtalk-access-token").is_none());
    let body: Value = serde_json::from_slice(req.body()).unwrap();
    assert_eq!(body["at"]["atUserIds"], json!(["u1"]));
    assert!(respond(&call, 200, r#"{"errcode":0,"errmsg":"ok"}"#).is_ok());
    let e = respond(
        &call,
        200,
        r#"{"errcode":300001,"errmsg":"session 不存在"}"#,
    )
    .unwrap_err();
    assert_eq!(e.kind, ErrorKind::SessionWebhookExpired);
    let e = respond(
        &call,
        200,
        r#"{"errcode":460101,"errmsg":"message too long"}"#,
    )
    .unwrap_err();
    assert_eq!(e.kind, ErrorKind::TooLarge);
}

#[test]
fn expired_session_webhook_is_refused_before_sending() {
    let call = SessionWebhookSend {
        url: "https://oapi.dingtalk.com/robot/sendBySession?session=abc".into(),
        expires_at_ms: Some(1_000),
        now_ms: 1_000,
        message: Message::text("late"),
    };
    let e = build_request(&call, &Endpoints::default(), None).unwrap_err();
    assert_eq!(e.kind, ErrorKind::SessionWebhookExpired);
}

#[test]
fn oversized_webhook_body_is_refused() {
    let call = SessionWebhookSend {
        url: "https://x/robot".into(),
        expires_at_ms: None,
        now_ms: 0,
        message: Message::text("x".repeat(20_001)),
    };
    assert_eq!(
        build_request(&call, &Endpoints::default(), None)
            .unwrap_err()
            .kind,
        ErrorKind::TooLarge
    );
}

// ---- custom robot ------------------------------------------------------------------------

#[test]
fn custom_robot_signing_vector() {
    assert_eq!(
        sign("this is secret", 1577262236757),
        "hmPWwU+7lVdm3ZZz0r9tSfx0L4Q26jWOZr9+Gs6EZQM="
    );
    let call = CustomRobotSend {
        webhook: "https://oapi.dingtalk.com/robot/send?access_token=XXXX".into(),
        secret: Some("this is secret".into()),
        timestamp_ms: 1577262236757,
        message: Message::text("alert"),
    };
    let req = build_request(&call, &Endpoints::default(), None).unwrap();
    assert_eq!(
        req.uri().to_string(),
        "https://oapi.dingtalk.com/robot/send?access_token=XXXX&timestamp=1577262236757&sign=hmPWwU%2B7lVdm3ZZz0r9tSfx0L4Q26jWOZr9%2BGs6EZQM%3D"
    );
    let body: Value = serde_json::from_slice(req.body()).unwrap();
    assert_eq!(
        body,
        json!({"msgtype": "text", "text": {"content": "alert"}})
    );
    assert!(!format!("{call:?}").contains("this is secret"));
}

#[test]
fn custom_robot_from_bare_token_and_errors() {
    let call = CustomRobotSend {
        webhook: "TOKEN".into(),
        secret: None,
        timestamp_ms: 0,
        message: Message::markdown("t", "x"),
    };
    let req = build_request(&call, &Endpoints::default(), None).unwrap();
    assert_eq!(
        req.uri(),
        "https://oapi.dingtalk.com/robot/send?access_token=TOKEN"
    );
    for (code, kind) in [
        ("310000", ErrorKind::WebhookRejected),
        ("300001", ErrorKind::WebhookRejected),
        ("130101", ErrorKind::RateLimited),
        ("660026", ErrorKind::RateLimited),
        ("410100", ErrorKind::RateLimited),
        ("460101", ErrorKind::TooLarge),
        ("430104", ErrorKind::ContentUnsafe),
        ("400102", ErrorKind::WebhookRejected),
    ] {
        let e = respond(&call, 200, &format!(r#"{{"errcode":{code},"errmsg":"m"}}"#)).unwrap_err();
        assert_eq!(e.kind, kind, "{code}");
    }
    let e = respond(&call, 200, r#"{"errcode":130101,"errmsg":"send too fast"}"#).unwrap_err();
    assert_eq!(e.retry_after(), Some(std::time::Duration::from_secs(60)));
}

// ---- outgoing robot callback -------------------------------------------------------------

#[test]
fn outgoing_callback_signature_vector_and_window() {
    let sign = "DJrE6qdyVGCQz9z5r2MDuNcNAhwYnuAkyj13cx169CA=";
    let ts = 1577262236757_i64;
    assert_eq!(
        verify_outgoing("1577262236757", sign, "this is a secret", ts),
        Ok(())
    );
    assert_eq!(
        verify_outgoing("1577262236757", sign, "this is a secret", ts + 3_600_000),
        Ok(())
    );
    assert_eq!(
        verify_outgoing("1577262236757", sign, "this is a secret", ts + 3_600_001),
        Err(CallbackError::Expired)
    );
    assert_eq!(
        verify_outgoing("1577262236757", sign, "this is a secret", ts - 3_600_001),
        Err(CallbackError::Expired)
    );
    assert_eq!(
        verify_outgoing("1577262236757", sign, "another secret", ts),
        Err(CallbackError::SignatureMismatch)
    );
    assert_eq!(
        verify_outgoing("soon", sign, "this is a secret", ts),
        Err(CallbackError::InvalidTimestamp)
    );
    // URL-encoded signatures are not accepted: the header carries plain Base64.
    assert_eq!(
        verify_outgoing(
            "1577262236757",
            "DJrE6qdyVGCQz9z5r2MDuNcNAhwYnuAkyj13cx169CA%3D",
            "this is a secret",
            ts
        ),
        Err(CallbackError::SignatureMismatch)
    );
}

#[test]
fn outgoing_callback_body_parses_into_the_stream_model() {
    let body = std::fs::read_to_string("tests/fixtures/callback_bot_text_group.json").unwrap();
    let frame = Frame::parse(body.trim(), &Limits::default()).unwrap();
    let msg = parse_outgoing(
        "1577262236757",
        "DJrE6qdyVGCQz9z5r2MDuNcNAhwYnuAkyj13cx169CA=",
        "this is a secret",
        1577262236757,
        frame.data_text().unwrap().as_bytes(),
    )
    .unwrap();
    assert_eq!(msg.sender_staff_id.as_deref(), Some("manager1234"));
    assert_eq!(
        parse_outgoing(
            "1577262236757",
            "DJrE6qdyVGCQz9z5r2MDuNcNAhwYnuAkyj13cx169CA=",
            "this is a secret",
            1577262236757,
            b"<html>"
        ),
        Err(CallbackError::InvalidBody(
            "expected value at line 1 column 1".into()
        ))
    );
}

// ---- event crypto ------------------------------------------------------------------------

#[test]
fn v1_official_decrypt_vector() {
    let c = EventCrypto::new(
        "123456",
        "1234567890123456789012345678901234567890123",
        "dingsnotzck6pm5veliw",
    )
    .unwrap();
    let enc =
        "YvkvaGe4hQxd3VxRmEty0dVlnCOAqwf56xwTRHDHoOURqhalbmBJQk5FNcRk42Gl5T0YQXZNwpwWSm1xAFJ5ZA==";
    assert_eq!(
        c.decrypt(
            "9a95a004dd16f5c307e849b994173f76aa26e5eb",
            "1614767836",
            "A7Co0cJLMzIDtMMI",
            enc
        )
        .unwrap(),
        "success"
    );
    // The same ciphertext re-encrypted with its own random prefix gives the same bytes.
    let again = c.encrypt(
        "success",
        "1614767836",
        "A7Co0cJLMzIDtMMI",
        *b"dICkEDLj0eb6yAbc",
    );
    assert_eq!(again.encrypt, enc);
    assert_eq!(
        again.msg_signature,
        "9a95a004dd16f5c307e849b994173f76aa26e5eb"
    );
}

const V2_KEY: &str = "4g5j64qlyl3zvetqxz5jiocdr586fn2zvjpa8zls3ij";
const V2_MSG: &str = r#"{"EventType":"check_create_suite_url","Random":"LPIdSnlF","TestSuiteKey":"suite4xxxxxxxxxxxxxxx"}"#;

#[test]
fn v2_decrypt_vector() {
    let c = EventCrypto::new("123456", V2_KEY, "suite4xxxxxxxxxxxxxxx").unwrap();
    let enc = "1a3NBxmCFwkCJvfoQ7WhJHB+iX3qHPsc9JbaDznE1i03peOk1LaOQoRz3+nlyGNhwmwJ3vDMG+OzrHMeiZI7gTRWVdUBmfxjZ8Ej23JVYa9VrYeJ5as7XM/ZpulX8NEQis44w53h1qAgnC3PRzM7Zc/D6Ibr0rgUathB6zRHP8PYrfgnNOS9PhSBdHlegK+AGGanfwjXuQ9+0pZcy0w9lQ==";
    assert_eq!(
        c.decrypt(
            "5a65ceeef9aab2d149439f82dc191dd6c5cbe2c0",
            "1445827045067",
            "nEXhMP4r",
            enc
        )
        .unwrap(),
        V2_MSG
    );
    let body = json!({"encrypt": enc}).to_string();
    assert_eq!(
        c.decrypt_body(
            "5a65ceeef9aab2d149439f82dc191dd6c5cbe2c0",
            "1445827045067",
            "nEXhMP4r",
            body.as_bytes()
        )
        .unwrap(),
        V2_MSG
    );
    // Wrong owner key, wrong signature.
    let other = EventCrypto::new("123456", V2_KEY, "someone-else").unwrap();
    assert_eq!(
        other.decrypt(
            "5a65ceeef9aab2d149439f82dc191dd6c5cbe2c0",
            "1445827045067",
            "nEXhMP4r",
            enc
        ),
        Err(CallbackError::OwnerKeyMismatch)
    );
    assert_eq!(
        c.decrypt(
            "0000ceeef9aab2d149439f82dc191dd6c5cbe2c0",
            "1445827045067",
            "nEXhMP4r",
            enc
        ),
        Err(CallbackError::SignatureMismatch)
    );
}

#[test]
fn v3_deterministic_encrypt_vector() {
    let c = EventCrypto::new("123456", V2_KEY, "suite4xxxxxxxxxxxxxxx").unwrap();
    let reply = c.encrypt(V2_MSG, "1445827045067", "nEXhMP4r", *b"1234567890123456");
    assert_eq!(
        reply.encrypt,
        "5DJFWzjRNOQk+5GSZxW+VrFMDWCIidPjEjg3//gm5x556BedVi62rDj1F9uXU97a4jw1R4FACUv9RCpoDobNqxhxRB2YtW901k4KHbP1/wpFJ3xdLG0n0A8U1VhENg80zKJd+YROR0YMGum4WYuoXJ6J98vt0ihYeIFoapNddLML5MyNAGM9saSpkouDMSvD+iU14i7V8ix1ia1Tb9ogog=="
    );
    assert_eq!(
        reply.msg_signature,
        "bcf6dcefa4ce2dbaf7b0666c7264d46fd9aad4bd"
    );
    assert_eq!(
        serde_json::to_value(&reply).unwrap(),
        json!({"msg_signature": "bcf6dcefa4ce2dbaf7b0666c7264d46fd9aad4bd", "timeStamp": "1445827045067",
               "nonce": "nEXhMP4r", "encrypt": reply.encrypt})
    );
    // And it round-trips.
    assert_eq!(
        c.decrypt(
            &reply.msg_signature,
            "1445827045067",
            "nEXhMP4r",
            &reply.encrypt
        )
        .unwrap(),
        V2_MSG
    );
}

#[test]
fn v6_signer_vector() {
    assert_eq!(event_signature("789", "456", "123", ""), {
        // The published vector sorts three strings; the fourth (empty) sorts first and adds nothing.
        "f7c3bc1d808e04732adf679965ccc34ca7ae3441".to_string()
    });
}

#[test]
fn crypto_rejects_bad_input_with_typed_errors() {
    assert_eq!(
        EventCrypto::new("t", "short", "o").unwrap_err(),
        CallbackError::InvalidAesKey
    );
    assert_eq!(
        EventCrypto::new("t", &"!".repeat(43), "o").unwrap_err(),
        CallbackError::InvalidAesKey
    );
    let c = EventCrypto::new("123456", V2_KEY, "o").unwrap();
    for enc in ["not base64!!", "", "AAAA", "QUJDREVGR0hJSktMTU5PUA=="] {
        let sig = event_signature("123456", "1", "n", enc);
        let e = c.decrypt(&sig, "1", "n", enc).unwrap_err();
        assert!(
            matches!(
                e,
                CallbackError::DecryptFailed
                    | CallbackError::LengthMismatch
                    | CallbackError::OwnerKeyMismatch
            ),
            "{enc}: {e:?}"
        );
    }
    // A length field larger than the message.
    let reply = c.encrypt("hello", "1", "n", [b'a'; 16]);
    let other_owner = EventCrypto::new("123456", V2_KEY, "").unwrap();
    assert!(
        other_owner
            .decrypt(&reply.msg_signature, "1", "n", &reply.encrypt)
            .is_err()
    );
    assert_eq!(
        c.decrypt_body("x", "1", "n", b"{}"),
        Err(CallbackError::InvalidBody(
            "missing field `encrypt` at line 1 column 2".into()
        ))
    );
    assert_eq!(CallbackError::SignatureMismatch.code(), Some(900_005));
    assert!(!format!("{c:?}").contains(V2_KEY));
}

#[test]
fn crypto_round_trips_every_padding_length() {
    let c = EventCrypto::new("tok", V2_KEY, "dingowner").unwrap();
    for len in 0..70 {
        let msg = "m".repeat(len);
        let r = c.encrypt(&msg, "1700000000", "nonce", [b'r'; 16]);
        assert_eq!(
            c.decrypt(&r.msg_signature, "1700000000", "nonce", &r.encrypt)
                .unwrap(),
            msg
        );
    }
}

// ---- models ------------------------------------------------------------------------------

fn bot(name: &str) -> ChatbotMessage {
    let text = std::fs::read_to_string(format!("tests/fixtures/{name}.json")).unwrap();
    let frame = Frame::parse(text.trim(), &Limits::default()).unwrap();
    frame.data_json::<ChatbotMessage>().unwrap()
}

#[test]
fn chatbot_message_every_msgtype() {
    let m = bot("callback_bot_text_private");
    assert!(!m.is_group());
    assert!(matches!(m.content(), Content::Text { .. }));
    assert!(
        m.session_webhook
            .as_deref()
            .unwrap()
            .starts_with("https://")
    );
    let g = bot("callback_bot_text_group");
    assert!(g.is_group());
    assert_eq!(g.text(), Some("你好 @机器人"));
    assert_eq!(g.at_users.len(), 2);
    assert_eq!(g.at_users[1].staff_id.as_deref(), Some("manager1234"));
    assert_eq!(g.session_webhook_expired_time, Some(1695289035996));
    assert!(matches!(
        bot("callback_bot_picture").content(),
        Content::Picture { .. }
    ));
    match bot("callback_bot_richtext").content() {
        Content::RichText(items) => {
            assert!(items.iter().any(|i| matches!(i, RichTextItem::Text(_))));
            assert!(
                items
                    .iter()
                    .any(|i| matches!(i, RichTextItem::Picture { .. }))
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        bot("callback_bot_audio").content(),
        Content::Audio {
            recognition: Some(_),
            ..
        }
    ));
    assert!(matches!(
        bot("callback_bot_video").content(),
        Content::Video { .. }
    ));
    assert!(matches!(
        bot("callback_bot_file").content(),
        Content::File {
            file_name: Some(_),
            ..
        }
    ));
    assert!(matches!(
        bot("callback_bot_unknown_type").content(),
        Content::Unknown { .. }
    ));
}

#[test]
fn a_chatbot_message_parses_by_the_rules_of_a_derived_impl() {
    // Missing fields take their defaults; `null` is accepted where the field is optional.
    let m: ChatbotMessage =
        serde_json::from_str(r#"{"msgtype":"text","senderStaffId":null,"createAt":null}"#).unwrap();
    assert_eq!(m.msgtype, "text");
    assert_eq!(m.sender_staff_id, None);
    assert_eq!(m.msg_id, "");
    assert!(m.extra.is_empty());
    // `null` where a string is required, a repeated known field, a wrong type: typed errors.
    for bad in [
        r#"{"msgId":null}"#,
        r#"{"msgId":"a","msgId":"b"}"#,
        r#"{"isAdmin":"yes"}"#,
        r#"["a","b"]"#,
        r#""text""#,
    ] {
        assert!(
            serde_json::from_str::<ChatbotMessage>(bad).is_err(),
            "{bad} must be refused"
        );
    }
    // A key written with escapes is the same key; a repeated unknown one keeps its last value.
    let m: ChatbotMessage =
        serde_json::from_str(r#"{"msg\u0049d":"m1","x\"y":1,"x\"y":2,"text":{"content":" hi"}}"#)
            .unwrap();
    assert_eq!(m.msg_id, "m1");
    assert_eq!(m.extra["x\"y"], json!(2));
    assert_eq!(m.text(), Some("hi"));
    // From bytes and from a `Value` alike; serialising gives the same fields back.
    let text =
        r#"{"msgId":"m","conversationType":"2","atUsers":[{"dingtalkId":"d"}],"extra1":true}"#;
    let from_bytes: ChatbotMessage = serde_json::from_slice(text.as_bytes()).unwrap();
    let value: Value = serde_json::from_str(text).unwrap();
    let from_value: ChatbotMessage = serde_json::from_value(value).unwrap();
    assert_eq!(from_bytes, from_value);
    assert!(from_bytes.is_group());
    assert_eq!(from_bytes.at_users[0].dingtalk_id, "d");
    let back: ChatbotMessage =
        serde_json::from_value(serde_json::to_value(&from_bytes).unwrap()).unwrap();
    assert_eq!(back, from_bytes);
}

#[test]
fn unknown_fields_never_fail_parsing() {
    let m: ChatbotMessage = serde_json::from_str(
        r#"{"msgtype":"interactiveCard","content":{"biz_custom_action_url":"x"},"brandNew":{"a":1},"originalMsgId":"o"}"#,
    )
    .unwrap();
    assert_eq!(m.extra["brandNew"], json!({"a": 1}));
    assert!(
        matches!(m.content(), Content::Unknown { msgtype, .. } if msgtype == "interactiveCard")
    );
    // A known msgtype without its download code is kept raw, not a panic.
    let m: ChatbotMessage = serde_json::from_str(r#"{"msgtype":"picture","content":{}}"#).unwrap();
    assert!(matches!(m.content(), Content::Unknown { .. }));
}

#[test]
fn card_callback_graph_and_event_models() {
    let text = std::fs::read_to_string("tests/fixtures/callback_card_action.json").unwrap();
    let frame = Frame::parse(text.trim(), &Limits::default()).unwrap();
    let cb: CardCallback = frame.data_json().unwrap();
    assert_eq!(cb.out_track_id, "track-001");
    let action = cb.action().unwrap();
    assert_eq!(action.action_ids, vec!["single_button_node_ocltl6e6foq"]);
    assert_eq!(action.params["action"], "like");

    let text = std::fs::read_to_string("tests/fixtures/callback_graph_invoke.json").unwrap();
    let frame = Frame::parse(text.trim(), &Limits::default()).unwrap();
    let g: GraphRequest = frame.data_json().unwrap();
    assert_eq!(g.path(), "/v1/actions/weather");
    assert_eq!(g.query(), Some("city=hangzhou"));
    assert_eq!(g.headers["x-plugin-id"], "p1");
    let resp = GraphResponse::json(&json!({"temp": 20}));
    assert_eq!(
        serde_json::to_value(resp).unwrap(),
        json!({"statusLine": {"code": 200, "reasonPhrase": "OK"}, "headers": {"Content-Type": "application/json"}, "body": "{\"temp\":20}"})
    );

    let text = std::fs::read_to_string("tests/fixtures/event_user_add_org.json").unwrap();
    let frame = Frame::parse(text.trim(), &Limits::default()).unwrap();
    let e = Event::from_frame(&frame).unwrap();
    assert_eq!(e.event_type, "user_add_org");
    assert_eq!(e.data["userId"][0], "015xxxx227");
}
