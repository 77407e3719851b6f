//! Plays the recorded Stream frames through a `Session` with a scripted gateway and prints what
//! the session would send back. No network: the gateway and the handler are simulated here.
//!
//! Run: `cargo run -p dingtalk-core --example replay_fixtures`

use std::time::{Duration, Instant};

use dingtalk_core::{
    Credentials, Endpoints, Input, Outcome, Output, Session, StreamConfig, Subscription, topic,
};

const FRAMES: &[(&str, &str)] = &[
    (
        "system_ping",
        include_str!("../tests/fixtures/system_ping.json"),
    ),
    (
        "callback_bot_text_private",
        include_str!("../tests/fixtures/callback_bot_text_private.json"),
    ),
    (
        "callback_bot_text_group",
        include_str!("../tests/fixtures/callback_bot_text_group.json"),
    ),
    (
        "callback_bot_picture",
        include_str!("../tests/fixtures/callback_bot_picture.json"),
    ),
    (
        "callback_card_action",
        include_str!("../tests/fixtures/callback_card_action.json"),
    ),
    (
        "callback_graph_invoke",
        include_str!("../tests/fixtures/callback_graph_invoke.json"),
    ),
    (
        "event_user_add_org",
        include_str!("../tests/fixtures/event_user_add_org.json"),
    ),
    (
        "callback_bot_text_private (redelivered)",
        include_str!("../tests/fixtures/callback_bot_text_private.json"),
    ),
    (
        "system_disconnect",
        include_str!("../tests/fixtures/system_disconnect.json"),
    ),
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let config = StreamConfig::new(Credentials::new("demo-client-id", "demo-client-secret"))
        .endpoints(Endpoints::single("https://gateway.invalid"))
        .subscribe(Subscription::callback(topic::BOT_MESSAGE))
        .subscribe(Subscription::callback(topic::CARD_CALLBACK))
        .subscribe(Subscription::callback(topic::GRAPH_INVOKE))
        .subscribe(Subscription::events());
    let mut now = Instant::now();
    let mut session = Session::new(config, now)?;
    let mut conn = None;
    let mut frames = FRAMES.iter();
    loop {
        let mut completions = Vec::new();
        loop {
            match session.poll_output() {
                Output::Http { id, request } => {
                    println!("→ gateway  {} {}", request.method(), request.uri());
                    // The scripted gateway hands out an endpoint and a one-use ticket.
                    let body = br#"{"endpoint":"wss://wss-open-connection.dingtalk.com:443/connect","ticket":"demo-ticket"}"#;
                    let response = http::Response::new(body.to_vec());
                    session.handle_input(Input::HttpResponse { id, response }, now);
                }
                Output::Connect { conn: c, request } => {
                    println!("→ connect  {}", request.uri());
                    conn = Some(c);
                    session.handle_input(Input::Connected { conn: c }, now);
                }
                Output::Send { conn, text } => println!("← ack on {conn:?}: {text}"),
                Output::Deliver(d) => {
                    println!("  handler  {} {}", d.frame.kind, d.frame.topic());
                    // A card or graph handler may answer inside the ack.
                    let outcome = if d.frame.topic() == topic::CARD_CALLBACK {
                        Outcome::Ok(
                            serde_json::json!({"cardUpdateOptions": {"updateCardDataByKey": true}}),
                        )
                    } else {
                        Outcome::done()
                    };
                    completions.push((d.id, outcome));
                }
                Output::Event(e) => println!("  event    {e:?}"),
                Output::Error(e) => println!("  error    {e}"),
                Output::Ping { conn } => println!("→ ping     {conn:?}"),
                Output::Close { conn } => println!("→ close    {conn:?}"),
                Output::PauseReading | Output::ResumeReading | Output::Cancel { .. } => {}
                Output::Timeout(_) => break,
                Output::Done => {
                    println!("session done");
                    return Ok(());
                }
            }
        }
        if !completions.is_empty() {
            for (id, outcome) in completions {
                session.handle_input(Input::Complete { id, outcome }, now);
            }
            continue;
        }
        let Some(c) = conn else { continue };
        now += Duration::from_millis(10);
        match frames.next() {
            Some((name, text)) => {
                println!("\n== frame: {name}");
                session.handle_input(
                    Input::Text {
                        conn: c,
                        text: text.trim(),
                    },
                    now,
                );
            }
            None => {
                println!("\n== stop");
                session.handle_input(Input::Stop, now);
            }
        }
    }
}
