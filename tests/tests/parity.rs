//! One public surface: the same code, written once in a macro, uses every builder option,
//! handler registration, client method, stop-handle method, API-client method and reply-context
//! method of each adapter (with `.await` in the async adapters, plain calls in the blocking
//! one). An adapter that lacks any of them does not compile, and this test fails. Then each
//! adapter runs the same bot message and card callback through its handlers against the
//! emulator and must give the same answers.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests abort on failure

use std::sync::{Arc, Mutex};
use std::time::Duration;

use dingtalk_core::model::{CardCallbackResponse, CardParamMap};
use dingtalk_core::webhook::Message;
use dingtalk_core::{
    Credentials, Endpoints, Frame, FrameType, Headers, Outcome, Subscription, topic,
};
use dingtalk_sim::{Chat, Sim, SimConfig};

/// What the handlers saw, shared with the test.
type Log = Arc<Mutex<Vec<String>>>;

fn frame(kind: FrameType, topic: &str, id: &str, data: &str) -> Frame {
    Frame::new(
        kind,
        Headers {
            topic: topic.to_owned().into(),
            message_id: id.into(),
            content_type: Some("application/json".into()),
            ..Headers::default()
        },
        data,
    )
}

/// `await` in async adapters, nothing in the blocking one.
macro_rules! surface {
    ($name:ident, $krate:ident, $($aw:tt)*) => {
        /// Every public item of the adapter, exercised; the handlers' observations and the
        /// outcomes of a bot message and a card callback dispatched through the client.
        #[allow(unused_mut)]
        fn $name(
            base: String,
            credentials: Credentials,
            bot: Frame,
            card: Frame,
            log: Log,
        ) -> impl std::future::Future<Output = (Option<Outcome>, Option<Outcome>)> {
            use $krate::{
                AiCard, AiCardError, AiCardOptions, AiCardOutcome, StreamMode,
                ApiClient, BotContext, Client, ClientBuilder, ClientError, Error, EventAck,
                HandlerError, RetryPolicy, StopHandle, default_tls_config, env_config,
                env_proxies, unix_ms,
            };
            let _: Result<dingtalk_core::proxy::Proxies, Error> = env_proxies();
            let _: Option<(Credentials, Endpoints)> = env_config();
            let _: i64 = unix_ms();
            let tls = default_tls_config().unwrap();
            let (l1, l2) = (log.clone(), log.clone());
            let builder: ClientBuilder = Client::builder(credentials.clone())
                .endpoints(Endpoints::single(&base))
                .tls_config(tls)
                .configure(|c| c.keepalive_idle = Duration::from_secs(30))
                .connections(2)
                .concurrency(8)
                .http_timeout(Duration::from_secs(5))
                .handler_timeout(Duration::from_secs(60))
                .retry_policy(RetryPolicy::default())
                .on_lifecycle(|_change: &$krate::Lifecycle<'_>| {})
                .proxy("http://u:p@proxy.invalid:3128")
                .no_proxy()
                .proxies(
                    dingtalk_core::proxy::Proxies::all("http://proxy.invalid:3128")
                        .unwrap()
                        .with_no_proxy("*"),
                );
            let builder = surface!(@handlers $($aw)*; builder, l1, l2);
            let client: Client = builder.build().unwrap();
            assert_eq!(client.config().max_in_flight, 8);
            assert_eq!(client.config().connections, 2);
            assert!(matches!(
                Client::builder(credentials.clone()).connections(0).build(),
                Err(Error::Config(_))
            ));
            assert_eq!(client.config().handler_timeout, Duration::from_secs(60));
            assert!(client.proxies().https().is_some(), "the last proxy setting wins");
            let _: Option<$krate::ClientStats> = client.stats();
            assert!(!client.is_connected());
            let shown = format!("{:?}", Client::builder(credentials.clone()).proxy("http://u:SECRET@h:1"));
            assert!(shown.contains("proxy") && !shown.contains("SECRET"), "{shown}");
            let shown = format!(
                "{:?}",
                Client::builder(credentials.clone())
                    .proxy("http://u:SECRET@h:1")
                    .endpoints(Endpoints::single(&base))
                    .build()
                    .unwrap()
                    .proxies()
            );
            assert!(shown.contains("redacted") && !shown.contains("SECRET"), "{shown}");
            // A bad proxy URL fails the build, and the error does not quote it.
            let e = Client::builder(credentials.clone())
                .proxy("socks5://u:SECRET@h:1")
                .build()
                .unwrap_err();
            assert!(matches!(e, Error::Config(ref m) if !m.contains("SECRET")), "{e:?}");
            assert_eq!(client.config().subscriptions.len(), 7, "every registration subscribes");
            let _: Result<ClientBuilder, Error> = Client::from_env();
            // Replicas, several apps.
            let store: Arc<dyn $krate::StateStore> = Arc::new(
                $krate::RedisStore::open("redis://127.0.0.1:1", Duration::from_secs(1)).unwrap(),
            );
            let config = $krate::StoreConfig {
                on_error: $krate::OnStoreError::FailClosed,
                ..$krate::StoreConfig::default()
            };
            let replica: Client = Client::builder(credentials.clone())
                .endpoints(Endpoints::single(&base))
                .state_store(store, config)
                .build()
                .unwrap();
            let group = $krate::Group::new([replica]);
            let group_stop: StopHandle = group.stop_handle();
            assert!(!group_stop.is_stopped());
            let _: fn(&$krate::GroupError) -> &str = |e| &e.client_id;
            let stop: StopHandle = client.stop_handle();
            assert!(!stop.is_stopped());
            stop.stop();
            assert!(stop.is_stopped());
            let api: &ApiClient = client.api();
            let api: ApiClient = api.clone().with_retry_policy(RetryPolicy::default());
            assert_eq!(api.robot_code(), credentials.client_id());
            assert_eq!(api.endpoints().api, base);
            let _: RetryPolicy = api.retry_policy();
            let standalone: Result<ApiClient, Error> =
                ApiClient::new(credentials.clone(), Endpoints::single(&base));
            let _ = (standalone.unwrap(), std::marker::PhantomData::<(EventAck, HandlerError, ClientError, BotContext)>);
            async move {
                let token: Result<String, ClientError> = api.token() $($aw)*;
                assert!(token.is_ok(), "{token:?}");
                let space = dingtalk_core::api::card::CardSpace::Robot {
                    user_id: "u1".into(),
                    robot_code: None,
                };
                let ai: Result<AiCard, ClientError> =
                    api.ai_card(space, "parity-ai", AiCardOptions::default()) $($aw)*;
                let ai = ai.unwrap();
                assert_eq!(ai.append(&"x".repeat(70_000)), Err(AiCardError::TooLong { limit: 65_536 }));
                let failed: AiCardOutcome = ai.fail("parity") $($aw)*;
                assert!(matches!(failed, AiCardOutcome::Failed { .. }), "{failed:?}");
                // Media from a path: uploaded; too large is refused from the metadata.
                let dir = std::env::temp_dir().join(format!("parity-{}-{}", std::process::id(), unix_ms()));
                std::fs::create_dir_all(&dir).unwrap();
                let small = dir.join("cat.png");
                std::fs::write(&small, b"fake png").unwrap();
                let big = dir.join("big.png");
                std::fs::File::create(&big).unwrap().set_len(21 * 1024 * 1024).unwrap();
                use dingtalk_core::api::media::{MediaType, Uploaded};
                let up: Result<Uploaded, ClientError> = api.upload_path(MediaType::Image, &small) $($aw)*;
                assert!(up.unwrap().media_id.starts_with("@sim-media-"));
                let too_big: Result<Uploaded, ClientError> = api.upload_path(MediaType::Image, &big) $($aw)*;
                assert!(
                    matches!(&too_big, Err(ClientError::Api(e)) if e.kind == dingtalk_core::ErrorKind::TooLarge),
                    "{too_big:?}"
                );
                let _ = std::fs::remove_dir_all(&dir);
                let missing: Result<Vec<u8>, ClientError> =
                    api.get_bytes(&format!("{base}/no-such-file")) $($aw)*;
                assert!(missing.is_err());
                // A client asked to stop before it runs returns at once.
                let ran: Result<(), Error> = client.run() $($aw)*;
                assert!(ran.is_ok(), "{ran:?}");
                let bot = surface!(@dispatch $($aw)*; client, bot);
                let card = surface!(@dispatch $($aw)*; client, card);
                (bot, card)
            }
        }
    };
    // The handler bodies, the same in every adapter but for the async block.
    (@handlers .await; $b:ident, $l1:ident, $l2:ident) => {
        $b.handler(
            Subscription::callback("/v1.0/custom/raw"),
            Arc::new(|_frame, _api| Box::pin(async { Outcome::done() })),
        )
        .on_bot_message(move |ctx| {
            let log = $l1.clone();
            async move { surface!(@bot_body [.await] ctx, log) }
        })
        .on_delegate_message(|_ctx| async { Ok::<(), HandlerError>(()) })
        .on_card_callback(move |cb, _api| {
            let log = $l2.clone();
            async move { surface!(@card_body cb, log) }
        })
        .on_graph_invoke(|_req, _api| async { Ok::<_, HandlerError>(dingtalk_core::model::GraphResponse::json(&serde_json::Value::Null)) })
        .on_event(|_ev, _api| async { Ok::<_, HandlerError>(EventAck::Success) })
        .on_callback("/v1.0/custom/value", |_frame, _api| async {
            Ok::<_, HandlerError>(serde_json::Value::Null)
        })
    };
    (@handlers ; $b:ident, $l1:ident, $l2:ident) => {
        $b.handler(Subscription::callback("/v1.0/custom/raw"), |_frame, _api| Outcome::done())
            .on_bot_message(move |ctx| surface!(@bot_body [] ctx, $l1))
            .on_delegate_message(|_ctx| Ok::<(), HandlerError>(()))
            .on_card_callback(move |cb, _api| surface!(@card_body cb, $l2))
            .on_graph_invoke(|_req, _api| Ok::<_, HandlerError>(dingtalk_core::model::GraphResponse::json(&serde_json::Value::Null)))
            .on_event(|_ev, _api| Ok::<_, HandlerError>(EventAck::Success))
            .on_callback("/v1.0/custom/value", |_frame, _api| {
                Ok::<_, HandlerError>(serde_json::Value::Null)
            })
    };
    (@bot_body [$($aw:tt)*] $ctx:ident, $log:ident) => {{
        let ctx: BotContext = $ctx;
        let text = ctx.text().unwrap_or_default().to_owned();
        assert!(ctx.parse_error().is_none());
        assert_eq!(ctx.message().msgtype, "text");
        assert_eq!(ctx.frame().topic(), topic::BOT_MESSAGE);
        let _: &ApiClient = ctx.api();
        ctx.reply_text(format!("1 {text}")) $($aw)* ?;
        ctx.reply_markdown("t", "2 markdown") $($aw)* ?;
        ctx.reply_action_card("t", "3 card", "open", "https://example.com") $($aw)* ?;
        ctx.reply(Message::text("4 message")) $($aw)* ?;
        let card = ctx.reply_card("tpl", "track-1", CardParamMap::default()) $($aw)*;
        $log.lock().unwrap().push(format!("card {}", card.is_ok()));
        let options = AiCardOptions::default()
            .mode(StreamMode::Full)
            .min_interval(Duration::from_millis(10));
        let ai: AiCard = ctx.ai_card(options) $($aw)* ?;
        ai.set("title", "t").unwrap();
        ai.replace("x").unwrap();
        ai.append(" y").unwrap();
        assert!(!ai.is_fallback());
        assert_eq!(ai.text(), "x y");
        assert!(ai.out_track_id().starts_with("ai-"));
        let outcome: AiCardOutcome = ai.finish() $($aw)*;
        $log.lock().unwrap().push(format!("ai card {outcome:?}"));
        let download = ctx.download("no-such-code") $($aw)*;
        $log.lock().unwrap().push(format!("download {}", download.is_ok()));
        $log.lock().unwrap().push(format!("bot {text}"));
        Ok::<(), HandlerError>(())
    }};
    (@card_body $cb:ident, $log:ident) => {{
        $log.lock().unwrap().push(format!("card callback {}", $cb.out_track_id));
        Ok::<_, HandlerError>(Some(CardCallbackResponse::default()))
    }};
    (@dispatch .await; $client:ident, $frame:ident) => {
        match $client.dispatch($frame) {
            Some(call) => Some(call.await),
            None => None,
        }
    };
    (@dispatch ; $client:ident, $frame:ident) => {
        $client.dispatch($frame)
    };
}

surface!(tokio_surface, dingtalk_tokio, .await);
surface!(async_std_surface, dingtalk_async_std, .await);
surface!(blocking_surface, dingtalk_blocking,);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_adapter_has_the_same_surface_and_answers() {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    let (id, secret) = sim.credentials();
    let credentials = Credentials::new(id, secret);
    let base = sim.base_url();
    let mut results = Vec::new();
    for adapter in ["tokio", "async-std", "blocking"] {
        let data = sim.bot_message_data("text", &format!("hi {adapter}"), Chat::Private);
        let bot = frame(
            FrameType::Callback,
            topic::BOT_MESSAGE,
            &format!("bot-{adapter}"),
            &data.to_string(),
        );
        let card_data = serde_json::json!({
            "outTrackId": format!("track-{adapter}"), "userId": "u1", "corpId": "c1",
            "content": "{\"cardPrivateData\":{\"params\":{}}}",
        });
        let card = frame(
            FrameType::Callback,
            topic::CARD_CALLBACK,
            &format!("card-{adapter}"),
            &card_data.to_string(),
        );
        let log: Log = Arc::default();
        let (b, c, l) = (base.clone(), credentials.clone(), log.clone());
        let outcomes = match adapter {
            "tokio" => tokio_surface(b, c, bot, card, l).await,
            "async-std" => {
                std::thread::spawn(move || smol::block_on(async_std_surface(b, c, bot, card, l)))
                    .join()
                    .unwrap()
            }
            _ => tokio::task::spawn_blocking(move || {
                futures_util::FutureExt::now_or_never(blocking_surface(b, c, bot, card, l))
                    .expect("the blocking surface never waits")
            })
            .await
            .unwrap(),
        };
        let mut seen = log.lock().unwrap().clone();
        seen.sort();
        results.push((adapter, outcomes, seen));
    }
    for (adapter, (bot, card), seen) in &results {
        assert_eq!(bot, &Some(Outcome::done()), "{adapter}: bot outcome");
        assert!(
            matches!(card, Some(Outcome::Ok(v)) if v.is_object()),
            "{adapter}: card outcome {card:?}"
        );
        assert_eq!(
            seen,
            &vec![
                "ai card Finished { cards: 1 }".to_owned(),
                format!("bot hi {adapter}"),
                "card callback ".to_owned() + &format!("track-{adapter}"),
                "card true".to_owned(),
                "download true".to_owned(),
            ],
            "{adapter}"
        );
    }
    // Four replies per adapter reached the session webhook, in the same shapes.
    let snap = sim.snapshot();
    assert_eq!(snap.webhooks.len(), 12, "{:?}", snap.webhooks);
}
