//! Property tests: arbitrary input sequences never panic, never ack a frame that was not
//! received on that connection, and never have two open requests in flight.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests abort on failure

mod common;

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use common::*;
use dingtalk_core::{ConnId, DeliveryId, Input, Outcome, Output, RequestId, Session};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    AnswerOpen {
        status: u16,
        good: bool,
    },
    FailOpen,
    Connected,
    ConnectFailed,
    /// A frame on the connection with this index among known connections.
    Text {
        conn: usize,
        frame: FrameKind,
        id: u8,
    },
    Garbage {
        conn: usize,
        text: String,
    },
    Pong {
        conn: usize,
    },
    Close {
        conn: usize,
    },
    Complete {
        which: usize,
        outcome: u8,
    },
    CompleteUnknown {
        id: u64,
    },
    Advance {
        ms: u32,
    },
    Stop,
}

#[derive(Debug, Clone, Copy)]
enum FrameKind {
    Ping,
    Disconnect,
    Bot,
    Card,
    Event,
    UnknownTopic,
}

fn op() -> impl Strategy<Value = Op> {
    let kind = prop_oneof![
        Just(FrameKind::Ping),
        Just(FrameKind::Disconnect),
        Just(FrameKind::Bot),
        Just(FrameKind::Card),
        Just(FrameKind::Event),
        Just(FrameKind::UnknownTopic),
    ];
    prop_oneof![
        (
            prop_oneof![Just(200u16), Just(401), Just(500)],
            any::<bool>()
        )
            .prop_map(|(status, good)| Op::AnswerOpen { status, good }),
        Just(Op::FailOpen),
        Just(Op::Connected),
        Just(Op::ConnectFailed),
        (0..3usize, kind, 0..6u8).prop_map(|(conn, frame, id)| Op::Text { conn, frame, id }),
        (0..3usize, ".{0,40}").prop_map(|(conn, text)| Op::Garbage { conn, text }),
        (0..3usize).prop_map(|conn| Op::Pong { conn }),
        (0..3usize).prop_map(|conn| Op::Close { conn }),
        (0..8usize, 0..3u8).prop_map(|(which, outcome)| Op::Complete { which, outcome }),
        (0..50u64).prop_map(|id| Op::CompleteUnknown { id }),
        (0..70_000u32).prop_map(|ms| Op::Advance { ms }),
        Just(Op::Stop),
    ]
}

struct Model {
    s: Session,
    now: Instant,
    open_http: Option<(RequestId, Instant)>,
    connecting: Vec<ConnId>,
    conns: Vec<ConnId>,
    received: HashSet<(ConnId, String)>,
    deliveries: Vec<DeliveryId>,
    completed: HashSet<DeliveryId>,
    acks_per_delivery_conn: HashMap<(ConnId, String), usize>,
    frames_per_conn: HashMap<(ConnId, String), usize>,
}

impl Model {
    fn drain(&mut self) {
        loop {
            match self.s.poll_output() {
                Output::Timeout(_) | Output::Done => break,
                Output::Http { id, .. } => {
                    if let Some((_, sent)) = self.open_http {
                        // A new request while one is outstanding only after the open timeout.
                        assert!(
                            self.now.duration_since(sent) >= Duration::from_secs(10),
                            "two open requests in flight"
                        );
                    }
                    self.open_http = Some((id, self.now));
                }
                Output::Connect { conn, .. } => self.connecting.push(conn),
                Output::Send { conn, text } => {
                    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
                    let id = v["headers"]["messageId"].as_str().unwrap().to_owned();
                    assert!(
                        self.received.contains(&(conn, id.clone())),
                        "ack for {id} which {conn:?} never received"
                    );
                    let acks = self
                        .acks_per_delivery_conn
                        .entry((conn, id.clone()))
                        .or_default();
                    *acks += 1;
                }
                Output::Close { conn } => {
                    self.conns.retain(|c| *c != conn);
                    self.connecting.retain(|c| *c != conn);
                }
                Output::Deliver(d) => {
                    assert!(
                        self.received
                            .contains(&(d.conn, d.frame.message_id().to_owned()))
                    );
                    self.deliveries.push(d.id);
                }
                _ => {}
            }
        }
    }

    fn input(&mut self, input: Input<'_>) {
        self.s.handle_input(input, self.now);
        self.drain();
    }
}

fn text_for(kind: FrameKind, id: u8) -> String {
    let mid = format!("m{id}");
    match kind {
        FrameKind::Ping => ping(&format!("p{id}"), "o"),
        FrameKind::Disconnect => disconnect(&format!("d{id}")),
        FrameKind::Bot => bot_message(&mid),
        FrameKind::Card => card_callback(&mid),
        FrameKind::Event => event(&mid),
        FrameKind::UnknownTopic => frame("CALLBACK", "/nope", &mid, "{}"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_inputs_keep_the_invariants(ops in proptest::collection::vec(op(), 1..120)) {
        let mut cfg = config();
        cfg.max_in_flight = 2;
        cfg.max_queued = 2;
        let now = Instant::now();
        let mut m = Model {
            s: Session::new(cfg, now).unwrap(),
            now,
            open_http: None,
            connecting: Vec::new(),
            conns: Vec::new(),
            received: HashSet::new(),
            deliveries: Vec::new(),
            completed: HashSet::new(),
            acks_per_delivery_conn: HashMap::new(),
            frames_per_conn: HashMap::new(),
        };
        m.drain();
        for op in ops {
            match op {
                Op::AnswerOpen { status, good } => {
                    if let Some((id, _)) = m.open_http.take() {
                        let body = if good {
                            format!(r#"{{"endpoint":"{ENDPOINT}","ticket":"t"}}"#)
                        } else {
                            "{}".to_owned()
                        };
                        let response = http::Response::builder().status(status).body(body.into_bytes()).unwrap();
                        m.input(Input::HttpResponse { id, response });
                    }
                }
                Op::FailOpen => {
                    if let Some((id, _)) = m.open_http.take() {
                        m.input(Input::HttpFailed { id, reason: "x".into() });
                    }
                }
                Op::Connected => {
                    if let Some(conn) = m.connecting.pop() {
                        m.conns.push(conn);
                        m.input(Input::Connected { conn });
                    }
                }
                Op::ConnectFailed => {
                    if let Some(conn) = m.connecting.pop() {
                        m.input(Input::ConnectFailed { conn, reason: "x".into() });
                    }
                }
                Op::Text { conn, frame: kind, id } => {
                    if let Some(&c) = m.conns.get(conn) {
                        let text = text_for(kind, id);
                        let mid = dingtalk_core::Frame::parse(&text, &Default::default()).unwrap().headers.message_id.to_string();
                        m.received.insert((c, mid.clone()));
                        *m.frames_per_conn.entry((c, mid)).or_default() += 1;
                        m.input(Input::Text { conn: c, text: &text });
                    }
                }
                Op::Garbage { conn, text } => {
                    if let Some(&c) = m.conns.get(conn) {
                        m.input(Input::Text { conn: c, text: &text });
                    }
                }
                Op::Pong { conn } => {
                    if let Some(&c) = m.conns.get(conn) {
                        m.input(Input::Pong { conn: c });
                    }
                }
                Op::Close { conn } => {
                    if conn < m.conns.len() {
                        let c = m.conns.remove(conn);
                        m.input(Input::Closed { conn: c, reason: "x".into() });
                    }
                }
                Op::Complete { which, outcome } => {
                    let open: Vec<DeliveryId> = m.deliveries.iter().copied().filter(|d| !m.completed.contains(d)).collect();
                    if let Some(&id) = open.get(which) {
                        m.completed.insert(id);
                        let outcome = match outcome {
                            0 => Outcome::done(),
                            1 => Outcome::Later,
                            _ => Outcome::Failed("e".into()),
                        };
                        m.input(Input::Complete { id, outcome });
                    }
                }
                Op::CompleteUnknown { id } => {
                    m.input(Input::Complete { id: DeliveryId(id + 10_000), outcome: Outcome::done() });
                }
                Op::Advance { ms } => {
                    m.now += Duration::from_millis(u64::from(ms));
                    m.input(Input::Timeout);
                }
                Op::Stop => m.input(Input::Stop),
            }
            // Handler concurrency is bounded.
            prop_assert!(m.s.in_flight() <= 2);
            // Never more acks for a message on a connection than copies it received there.
            for (key, acks) in &m.acks_per_delivery_conn {
                let frames = m.frames_per_conn.get(key).copied().unwrap_or(0);
                prop_assert!(*acks <= frames, "{key:?}: {acks} acks for {frames} frames");
            }
        }
        // Finishing every delivery and stopping always ends the session.
        let open: Vec<DeliveryId> = m.deliveries.iter().copied().filter(|d| !m.completed.contains(d)).collect();
        for id in open {
            m.input(Input::Complete { id, outcome: Outcome::done() });
        }
        m.input(Input::Stop);
        m.now += Duration::from_secs(60);
        m.input(Input::Timeout);
        prop_assert!(m.s.is_done());
    }

    #[test]
    fn frame_parser_never_panics(text in ".{0,200}") {
        let _ = dingtalk_core::Frame::parse(&text, &Default::default());
        let _ = dingtalk_core::frame::salvage_message_id(&text, &Default::default());
    }

    #[test]
    fn frame_parser_never_panics_on_json_shaped_input(
        kind in prop_oneof![Just("SYSTEM"), Just("EVENT"), Just("CALLBACK"), Just("X")],
        topic in ".{0,20}",
        id in proptest::option::of(".{0,10}"),
        time in prop_oneof![Just(serde_json::json!("123")), Just(serde_json::json!(5)), Just(serde_json::json!(null)), Just(serde_json::json!([1])), Just(serde_json::json!("x"))],
        data in prop_oneof![Just(serde_json::json!("{}")), Just(serde_json::json!(1)), Just(serde_json::json!(null))],
    ) {
        let text = serde_json::json!({"type": kind, "headers": {"topic": topic, "messageId": id, "time": time}, "data": data}).to_string();
        let _ = dingtalk_core::Frame::parse(&text, &Default::default());
    }
}
