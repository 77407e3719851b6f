//! Handing frames to handlers, completing them, and writing acks.

use super::*;

impl Session {
    /// Hands `frame` (delivery `id`) to its handler, unless it was dropped meanwhile (its ack
    /// timed out while queued) or already handed out.
    pub(super) fn deliver(&mut self, id: DeliveryId, frame: Frame) {
        let Some(mid) = self.by_delivery.get(&id) else {
            return;
        };
        let Some(f) = self.inflight.get_mut(mid) else {
            return;
        };
        if f.cancel_at.is_some() {
            return;
        }
        let cancel_at = super::later(self.now, self.config.handler_timeout);
        f.cancel_at = Some(cancel_at);
        self.running += 1;
        self.out.push_back(Output::Deliver(Delivery {
            id,
            conn: f.conn,
            frame,
            route: f.route,
            acked: f.policy == AckPolicy::Immediate,
        }));
        self.push_deadline(cancel_at, id, Deadline::Cancel);
    }

    pub(super) fn pump_queue(&mut self) {
        while self.running < self.config.max_in_flight {
            let Some((id, frame)) = self.queue.pop_front() else {
                break;
            };
            self.deliver(id, *frame);
        }
    }

    pub(super) fn handle_complete(&mut self, id: DeliveryId, outcome: Outcome) {
        let Some(mid) = self.by_delivery.get(&id).cloned() else {
            return;
        };
        match self.inflight.get(&mid) {
            // Completing a delivery that was never handed out is an adapter bug; ignore it.
            Some(f) if f.cancel_at.is_none() => return,
            None => return,
            Some(_) => {}
        }
        self.by_delivery.remove(&id);
        let Some(f) = self.inflight.remove(&mid) else {
            return;
        };
        self.running = self.running.saturating_sub(1);
        if let AckPolicy::AfterHandler { .. } = f.policy {
            let (ack, success) = outcome_ack(f.kind, &mid, &outcome);
            if success {
                // Only successes are remembered: a failed message must reach the handler again
                // when DingTalk redelivers it.
                self.dedup
                    .insert(&mid, CachedAck::Text(Arc::from(ack.as_str())), self.now);
            }
            self.send_all(&f.waiting, ack);
        }
        self.pump_queue();
    }

    /// Sends `text` to every connection in `conns`, copying it only for all but the last.
    pub(super) fn send_all(&mut self, conns: &[ConnId], text: String) {
        if let Some((last, rest)) = conns.split_last() {
            for conn in rest {
                self.send(*conn, text.clone());
            }
            self.send(*last, text);
        }
    }

    pub(super) fn send(&mut self, conn: ConnId, text: String) {
        let alive = self
            .conns
            .iter_mut()
            .find(|c| c.id == conn && !matches!(c.state, ConnState::Connecting { .. }));
        if let Some(c) = alive {
            c.acks += 1;
            self.stats.acks_sent += 1;
            self.out.push_back(Output::Send { conn, text });
        } else {
            self.stats.acks_dropped += 1;
            self.out
                .push_back(Output::Event(SessionEvent::AckDropped { conn }));
        }
    }
}

pub(super) const RESPONSE_NULL: &str = r#"{"response":null}"#;

/// The ack text for an outcome, and whether it is a success worth remembering.
pub(super) fn outcome_ack(kind: FrameType, message_id: &str, outcome: &Outcome) -> (String, bool) {
    match (kind, outcome) {
        (FrameType::Event, Outcome::Ok(_)) => (
            Ack::new(
                status::OK,
                message_id,
                "OK",
                r#"{"status":"SUCCESS","message":"success"}"#,
            )
            .to_text(),
            true,
        ),
        (FrameType::Event, Outcome::Later) => (
            Ack::new(
                status::OK,
                message_id,
                "OK",
                r#"{"status":"LATER","message":"later"}"#,
            )
            .to_text(),
            false,
        ),
        (FrameType::Event, Outcome::Failed(why)) => {
            let data = serde_json::json!({"status": "LATER", "message": truncate(why)}).to_string();
            (
                Ack::new(status::OK, message_id, "OK", &data).to_text(),
                false,
            )
        }
        (_, Outcome::Ok(value)) => {
            let data = serde_json::json!({ "response": value }).to_string();
            (
                Ack::new(status::OK, message_id, "OK", &data).to_text(),
                true,
            )
        }
        (_, Outcome::Later) => (
            Ack::new(status::INTERNAL_ERROR, message_id, "later", RESPONSE_NULL).to_text(),
            false,
        ),
        (_, Outcome::Failed(why)) => (
            Ack::new(
                status::INTERNAL_ERROR,
                message_id,
                truncate(why),
                RESPONSE_NULL,
            )
            .to_text(),
            false,
        ),
    }
}

pub(super) fn truncate(s: &str) -> &str {
    if s.len() <= MAX_ACK_MESSAGE {
        return s;
    }
    let mut end = MAX_ACK_MESSAGE;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}
