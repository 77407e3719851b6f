//! Keepalive pings, dead connections, ack and drain deadlines.

use super::acks::outcome_ack;
use super::*;

impl Session {
    pub(super) fn fire_timers(&mut self) {
        let now = self.now;
        for i in 0..self.slots.len() {
            if let Some((_, deadline)) = self.slots[i].opening {
                if deadline <= now {
                    self.slots[i].opening = None;
                    self.open_failed(i, OpenError::Timeout);
                }
            }
        }
        let mut dead: Vec<(ConnId, &'static str)> = Vec::new();
        let mut pings = Vec::new();
        for c in &mut self.conns {
            match c.state {
                ConnState::Connecting { deadline } if deadline <= now => {
                    dead.push((c.id, "WebSocket handshake timed out"))
                }
                ConnState::Draining { deadline } if deadline <= now => {
                    dead.push((c.id, "drain deadline passed"))
                }
                ConnState::Open if !self.reading_paused => match c.ping_deadline {
                    Some(d) if d <= now => {
                        dead.push((c.id, "no pong or frame after keepalive ping"))
                    }
                    None if super::later(c.last_rx, self.config.keepalive_idle) <= now => {
                        c.ping_deadline = Some(super::later(now, self.config.keepalive_timeout));
                        pings.push(c.id);
                    }
                    _ => {}
                },
                _ => {}
            }
        }
        for conn in pings {
            self.out.push_back(Output::Ping { conn });
        }
        for (conn, reason) in dead {
            self.drop_conn(conn, reason);
        }
        while let Some(Reverse((d, id, kind))) = self.deadlines.peek().copied() {
            if d > now {
                break;
            }
            self.deadlines.pop();
            match kind {
                Deadline::Ack => self.ack_timeout(id, d),
                Deadline::Cancel => self.cancel_handler(id, d),
            }
        }
        if let Phase::Stopping { deadline } = self.phase {
            if deadline <= now {
                self.finish_stop();
            }
        }
    }

    /// The handler ran past the handler timeout: cancel it, free its slot, send the failure ack
    /// still owed. Not remembered as done, so a redelivered copy reaches the handler again.
    pub(super) fn cancel_handler(&mut self, id: DeliveryId, at: Instant) {
        let Some(mid) = self.by_delivery.get(&id).cloned() else {
            return;
        };
        match self.inflight.get(&mid) {
            Some(f) if f.cancel_at == Some(at) => {}
            _ => return,
        }
        self.by_delivery.remove(&id);
        let Some(f) = self.inflight.remove(&mid) else {
            return;
        };
        self.running = self.running.saturating_sub(1);
        self.stats.handlers_cancelled += 1;
        if !f.waiting.is_empty() {
            let (ack, _) = outcome_ack(f.kind, &mid, &Outcome::Failed("handler timed out".into()));
            self.send_all(&f.waiting, ack);
        }
        self.out.push_back(Output::Cancel { id });
        self.out
            .push_back(Output::Event(SessionEvent::HandlerCancelled { id }));
        self.pump_queue();
    }

    pub(super) fn ack_timeout(&mut self, id: DeliveryId, at: Instant) {
        let Some(mid) = self.by_delivery.get(&id).cloned() else {
            return;
        };
        let Some(f) = self.inflight.get_mut(&mid) else {
            return;
        };
        if f.deadline != Some(at) {
            return;
        }
        f.deadline = None;
        let waiting = std::mem::take(&mut f.waiting);
        let kind = f.kind;
        self.stats.handler_timeouts += 1;
        let (ack, _) = outcome_ack(kind, &mid, &Outcome::Failed("handler timed out".into()));
        self.send_all(&waiting, ack);
        self.out
            .push_back(Output::Event(SessionEvent::HandlerTimedOut { id }));
    }
}
