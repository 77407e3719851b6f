//! A scripted gateway driving a `Session` with a fake clock: no sockets, no sleeps.
#![allow(
    dead_code,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)] // test helpers

use std::time::{Duration, Instant};

use dingtalk_core::{
    ConnId, Credentials, DeliveryId, Endpoints, Input, Outcome, Output, RequestId, Session,
    StreamConfig, Subscription, topic,
};

pub const ENDPOINT: &str = "wss://wss-open-connection.dingtalk.com:443/connect";

pub fn config() -> StreamConfig {
    StreamConfig::new(Credentials::new("ding-client", "s3cret-value"))
        .endpoints(Endpoints::single("https://api.example.test"))
        .subscribe(Subscription::callback(topic::BOT_MESSAGE))
        .subscribe(Subscription::callback(topic::CARD_CALLBACK))
        .subscribe(Subscription::events())
}

/// A session plus the fake clock and everything it emitted.
pub struct Gw {
    pub s: Session,
    pub now: Instant,
    pub t0: Instant,
    /// Every output so far, in order (Timeouts excluded).
    pub log: Vec<Output>,
    /// Outputs since the last `take()`.
    pub fresh: Vec<Output>,
    pub next_timeout: Option<Instant>,
    ticket_no: u32,
}

impl Gw {
    pub fn new(config: StreamConfig) -> Self {
        let t0 = Instant::now();
        let s = Session::new(config, t0).expect("valid config");
        let mut g = Self {
            s,
            now: t0,
            t0,
            log: Vec::new(),
            fresh: Vec::new(),
            next_timeout: None,
            ticket_no: 0,
        };
        g.drain();
        g
    }

    /// A session already connected on its first connection.
    pub fn connected(config: StreamConfig) -> (Self, ConnId) {
        let mut g = Self::new(config);
        let conn = g.open_ok();
        g.take();
        (g, conn)
    }

    fn drain(&mut self) {
        loop {
            match self.s.poll_output() {
                Output::Timeout(t) => {
                    self.next_timeout = Some(t);
                    break;
                }
                Output::Done => {
                    self.next_timeout = None;
                    self.fresh.push(Output::Done);
                    break;
                }
                o => {
                    self.fresh.push(clone_output(&o));
                    self.log.push(o);
                }
            }
        }
    }

    pub fn input(&mut self, input: Input<'_>) {
        self.s.handle_input(input, self.now);
        self.drain();
    }

    /// Moves the fake clock forward and tells the session.
    pub fn advance(&mut self, d: Duration) {
        self.now += d;
        self.input(Input::Timeout);
    }

    /// Jumps to the next timeout the session asked for.
    pub fn step(&mut self) {
        let t = self.next_timeout.expect("session asked for a timeout");
        if t > self.now {
            self.now = t;
        }
        self.input(Input::Timeout);
    }

    pub fn take(&mut self) -> Vec<Output> {
        std::mem::take(&mut self.fresh)
    }

    pub fn text(&mut self, conn: ConnId, text: &str) {
        self.input(Input::Text { conn, text });
    }

    pub fn complete(&mut self, id: DeliveryId, outcome: Outcome) {
        self.input(Input::Complete { id, outcome });
    }

    /// The pending open request among fresh outputs.
    pub fn pending_http(&mut self) -> Option<(RequestId, http::Request<Vec<u8>>)> {
        let pos = self
            .fresh
            .iter()
            .position(|o| matches!(o, Output::Http { .. }))?;
        match self.fresh.remove(pos) {
            Output::Http { id, request } => Some((id, request)),
            _ => None,
        }
    }

    pub fn pending_connect(&mut self) -> Option<(ConnId, http::Request<()>)> {
        let pos = self
            .fresh
            .iter()
            .position(|o| matches!(o, Output::Connect { .. }))?;
        match self.fresh.remove(pos) {
            Output::Connect { conn, request } => Some((conn, request)),
            _ => None,
        }
    }

    pub fn respond(&mut self, id: RequestId, status: u16, body: &str) {
        let response = http::Response::builder()
            .status(status)
            .body(body.as_bytes().to_vec())
            .unwrap();
        self.input(Input::HttpResponse { id, response });
    }

    /// Answers the pending open request with a fresh ticket and completes the handshake.
    pub fn open_ok(&mut self) -> ConnId {
        let (id, _) = self.pending_http().expect("an open request");
        self.ticket_no += 1;
        let body = format!(
            r#"{{"endpoint":"{ENDPOINT}","ticket":"ticket-{}"}}"#,
            self.ticket_no
        );
        self.respond(id, 200, &body);
        let (conn, _) = self.pending_connect().expect("a connect");
        self.input(Input::Connected { conn });
        conn
    }

    pub fn sends(&self) -> Vec<(ConnId, serde_json::Value)> {
        sends_of(&self.fresh)
    }

    pub fn deliveries(&self) -> Vec<dingtalk_core::Delivery> {
        self.fresh
            .iter()
            .filter_map(|o| match o {
                Output::Deliver(d) => Some(d.clone()),
                _ => None,
            })
            .collect()
    }

    pub fn count(&self, pred: impl Fn(&Output) -> bool) -> usize {
        self.fresh.iter().filter(|o| pred(o)).count()
    }
}

pub fn sends_of(outs: &[Output]) -> Vec<(ConnId, serde_json::Value)> {
    outs.iter()
        .filter_map(|o| match o {
            Output::Send { conn, text } => Some((*conn, serde_json::from_str(text).unwrap())),
            _ => None,
        })
        .collect()
}

/// The parsed `data` string of an ack.
pub fn ack_data(ack: &serde_json::Value) -> serde_json::Value {
    let data = ack["data"].as_str().expect("data is a string");
    if data.is_empty() {
        return serde_json::Value::Null;
    }
    serde_json::from_str(data).expect("data holds JSON")
}

pub fn clone_output(o: &Output) -> Output {
    match o {
        Output::Http { id, request } => {
            let mut r = http::Request::new(request.body().clone());
            *r.method_mut() = request.method().clone();
            *r.uri_mut() = request.uri().clone();
            *r.headers_mut() = request.headers().clone();
            Output::Http {
                id: *id,
                request: r,
            }
        }
        Output::Connect { conn, request } => {
            let mut r = http::Request::new(());
            *r.uri_mut() = request.uri().clone();
            Output::Connect {
                conn: *conn,
                request: r,
            }
        }
        Output::Send { conn, text } => Output::Send {
            conn: *conn,
            text: text.clone(),
        },
        Output::Ping { conn } => Output::Ping { conn: *conn },
        Output::Close { conn } => Output::Close { conn: *conn },
        Output::PauseReading => Output::PauseReading,
        Output::ResumeReading => Output::ResumeReading,
        Output::Deliver(d) => Output::Deliver(d.clone()),
        Output::Cancel { id } => Output::Cancel { id: *id },
        Output::Event(e) => Output::Event(e.clone()),
        Output::Error(e) => Output::Error(e.clone()),
        Output::Timeout(t) => Output::Timeout(*t),
        Output::Done => Output::Done,
    }
}

pub fn frame(kind: &str, topic: &str, message_id: &str, data: &str) -> String {
    serde_json::json!({
        "specVersion": "1.0",
        "type": kind,
        "headers": {"topic": topic, "messageId": message_id, "contentType": "application/json", "time": "1690362102194"},
        "data": data,
    })
    .to_string()
}

pub fn ping(message_id: &str, opaque: &str) -> String {
    frame(
        "SYSTEM",
        "ping",
        message_id,
        &format!(r#"{{"opaque":"{opaque}"}}"#),
    )
}

pub fn disconnect(message_id: &str) -> String {
    frame(
        "SYSTEM",
        "disconnect",
        message_id,
        r#"{"reason":"persistent connection is timeout"}"#,
    )
}

pub fn bot_message(message_id: &str) -> String {
    frame(
        "CALLBACK",
        topic::BOT_MESSAGE,
        message_id,
        r#"{"msgtype":"text","text":{"content":"hi"}}"#,
    )
}

pub fn card_callback(message_id: &str) -> String {
    frame(
        "CALLBACK",
        topic::CARD_CALLBACK,
        message_id,
        r#"{"outTrackId":"t1","type":"actionCallback"}"#,
    )
}

pub fn event(message_id: &str) -> String {
    frame("EVENT", "*", message_id, r#"{"userId":["u1"]}"#)
}
