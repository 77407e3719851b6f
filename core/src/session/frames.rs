//! Reading a frame: SYSTEM frames, routing, duplicates, in-flight copies.

use super::*;

impl Session {
    pub(super) fn handle_text(&mut self, conn: ConnId, text: &str) {
        let now = self.now;
        let Some(c) = self.conn_mut(conn) else {
            // A frame from a connection we already closed: nobody can receive its ack.
            return;
        };
        c.last_rx = now;
        c.ping_deadline = None;
        c.frames += 1;
        let slot = c.slot;
        if matches!(c.state, ConnState::Connecting { .. }) {
            // A frame proves the handshake completed even if `Connected` was not reported.
            c.state = ConnState::Open;
        }
        self.stats.frames_received += 1;
        match Frame::parse_shared(text, &self.config.limits, &mut self.interner) {
            Ok(frame) => {
                if let Some(s) = self.slots.get_mut(slot) {
                    s.attempt = 0;
                    s.quick_reconnect_used = false;
                }
                match frame.kind {
                    FrameType::System => self.handle_system(conn, frame),
                    FrameType::Event | FrameType::Callback => self.handle_data(conn, frame),
                }
            }
            Err(error) => {
                self.stats.frames_rejected += 1;
                let id = salvage_message_id(text, &self.config.limits);
                let acked = id.is_some();
                if let Some(id) = id {
                    let ack = Ack::new(status::BAD_REQUEST, &id, "bad request", "").to_text();
                    self.send(conn, ack);
                }
                self.out
                    .push_back(Output::Event(SessionEvent::FrameRejected {
                        conn,
                        error,
                        acked,
                    }));
            }
        }
    }

    pub(super) fn handle_system(&mut self, conn: ConnId, frame: Frame) {
        match frame.topic() {
            topic::PING => {
                let ack = Ack::echo(status::OK, &frame, "OK").to_text();
                self.send(conn, ack);
            }
            topic::DISCONNECT => {
                let ack = Ack::echo(status::OK, &frame, "OK").to_text();
                self.send(conn, ack);
                let deadline = super::later(self.now, self.config.drain_timeout);
                let Some(c) = self.conn_mut(conn) else { return };
                if matches!(c.state, ConnState::Draining { .. }) {
                    return;
                }
                c.state = ConnState::Draining { deadline };
                c.ping_deadline = None;
                let slot = c.slot;
                #[derive(Deserialize)]
                struct Reason {
                    reason: Option<String>,
                }
                let reason = frame.data_json::<Reason>().ok().and_then(|r| r.reason);
                self.out
                    .push_back(Output::Event(SessionEvent::Draining { conn, reason }));
                // Make-before-break: open the replacement now, without backoff.
                let running = self.phase == Phase::Running;
                let now = self.now;
                if let Some(s) = self.slots.get_mut(slot) {
                    if running && s.opening.is_none() {
                        s.next_open_at = Some(now);
                    }
                }
            }
            other => {
                let topic = other.to_owned();
                let ack =
                    Ack::new(status::NOT_FOUND, frame.message_id(), "unknown topic", "").to_text();
                self.send(conn, ack);
                self.out
                    .push_back(Output::Event(SessionEvent::UnknownTopic {
                        conn,
                        kind: FrameType::System,
                        topic,
                    }));
            }
        }
    }

    /// The frame's route and ack policy: the one place a frame is routed.
    pub(super) fn route_for(&self, frame: &Frame) -> Option<(Route, AckPolicy)> {
        let route = self.config.route(frame.kind, frame.topic())?;
        let policy = self.config.subscriptions.get(route.0)?.ack;
        Some((route, policy))
    }

    pub(super) fn handle_data(&mut self, conn: ConnId, frame: Frame) {
        if self.phase != Phase::Running {
            // Not acked: DingTalk redelivers it to a live client.
            self.stats.frames_ignored += 1;
            return;
        }
        let now = self.now;
        if let Some(ack) = self.dedup.get(frame.message_id(), now) {
            self.stats.duplicates += 1;
            let text = match ack {
                CachedAck::ResponseNull => Ack::response_null_text(frame.message_id()),
                CachedAck::Text(t) => t.to_string(),
            };
            self.send(conn, text);
            self.out.push_back(Output::Event(SessionEvent::Duplicate {
                conn,
                message_id: frame.headers.message_id.to_string(),
            }));
            return;
        }
        if let Some(f) = self.inflight.get_mut(frame.message_id()) {
            self.stats.duplicates += 1;
            if f.waiting.len() < MAX_WAITERS {
                f.waiting.push(conn);
                if f.deadline.is_none() {
                    if let AckPolicy::AfterHandler { timeout } = f.policy {
                        let d = super::later(now, timeout);
                        f.deadline = Some(d);
                        let delivery = f.delivery;
                        self.push_deadline(d, delivery, Deadline::Ack);
                    }
                }
            }
            self.out.push_back(Output::Event(SessionEvent::Duplicate {
                conn,
                message_id: frame.headers.message_id.to_string(),
            }));
            return;
        }
        let Some((route, policy)) = self.route_for(&frame) else {
            let ack =
                Ack::new(status::NOT_FOUND, frame.message_id(), "topic not found", "").to_text();
            self.send(conn, ack);
            self.out
                .push_back(Output::Event(SessionEvent::UnknownTopic {
                    conn,
                    kind: frame.kind,
                    topic: frame.headers.topic.to_string(),
                }));
            return;
        };
        if self.running >= self.config.max_in_flight
            && self.queue.len() >= self.config.max_queued.saturating_add(QUEUE_SLACK)
        {
            self.stats.frames_shed += 1;
            self.out.push_back(Output::Event(SessionEvent::Shed {
                message_id: frame.headers.message_id.to_string(),
            }));
            return;
        }
        let delivery = DeliveryId(self.alloc_id());
        let message_id: Arc<str> = frame.headers.message_id.clone();
        let mut waiting = Vec::new();
        let mut deadline = None;
        let mut pending_deadline = None;
        match policy {
            AckPolicy::Immediate => {
                let ack = Ack::response_null_text(&message_id);
                self.send(conn, ack);
                self.dedup.insert(&message_id, CachedAck::ResponseNull, now);
            }
            AckPolicy::AfterHandler { timeout } => {
                waiting.push(conn);
                let d = super::later(now, timeout);
                deadline = Some(d);
                pending_deadline = Some(d);
            }
        }
        let kind = frame.kind;
        self.inflight.insert(
            message_id.clone(),
            InFlight {
                delivery,
                conn,
                kind,
                route,
                policy,
                waiting,
                deadline,
                cancel_at: None,
            },
        );
        self.by_delivery.insert(delivery, message_id);
        if let Some(d) = pending_deadline {
            self.push_deadline(d, delivery, Deadline::Ack);
        }
        if self.running < self.config.max_in_flight && self.queue.is_empty() {
            self.deliver(delivery, frame);
        } else {
            self.queue.push_back((delivery, Box::new(frame)));
        }
    }
}
