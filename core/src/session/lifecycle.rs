//! Backpressure (pause and resume reading) and the graceful stop.

use super::acks::outcome_ack;
use super::*;

impl Session {
    pub(super) fn update_reading(&mut self) {
        if self.phase == Phase::Done {
            return;
        }
        let stopping = matches!(self.phase, Phase::Stopping { .. });
        let busy = self.running >= self.config.max_in_flight;
        let want_pause = stopping
            || if self.reading_paused {
                busy && self.queue.len() > self.config.max_queued / 2
            } else {
                busy && self.queue.len() >= self.config.max_queued
            };
        if want_pause && !self.reading_paused {
            self.reading_paused = true;
            self.out.push_back(Output::PauseReading);
        } else if !want_pause && self.reading_paused {
            self.reading_paused = false;
            let now = self.now;
            for c in &mut self.conns {
                // Idle time is measured from when reading resumed.
                c.last_rx = now;
                c.ping_deadline = None;
            }
            self.out.push_back(Output::ResumeReading);
        }
    }

    pub(super) fn begin_stop(&mut self) {
        if self.phase != Phase::Running {
            return;
        }
        self.phase = Phase::Stopping {
            deadline: super::later(self.now, self.config.stop_timeout),
        };
        for slot in &mut self.slots {
            slot.next_open_at = None;
            slot.opening = None;
        }
        let connecting: Vec<ConnId> = self
            .conns
            .iter()
            .filter(|c| matches!(c.state, ConnState::Connecting { .. }))
            .map(|c| c.id)
            .collect();
        for conn in connecting {
            self.conns.retain(|c| c.id != conn);
            self.out.push_back(Output::Close { conn });
        }
        // Queued frames that were not acked yet are dropped unacked: DingTalk redelivers them.
        // Immediately-acked ones stay queued: they must still reach their handler.
        let queue = std::mem::take(&mut self.queue);
        for (id, frame) in queue {
            let keep = self
                .by_delivery
                .get(&id)
                .and_then(|m| self.inflight.get(m))
                .is_some_and(|f| f.policy == AckPolicy::Immediate);
            if keep {
                self.queue.push_back((id, frame));
            } else if let Some(mid) = self.by_delivery.remove(&id) {
                self.inflight.remove(&mid);
                self.stats.frames_ignored += 1;
            }
        }
    }

    pub(super) fn maybe_finish_stop(&mut self) {
        if matches!(self.phase, Phase::Stopping { .. })
            && self.running == 0
            && self.queue.is_empty()
        {
            self.finish_stop();
        }
    }

    pub(super) fn finish_stop(&mut self) {
        // Whatever is still running gets the failure ack it would get on timeout.
        let pending: Vec<DeliveryId> = self.inflight.values().map(|f| f.delivery).collect();
        for id in pending {
            if let Some(mid) = self.by_delivery.get(&id).cloned() {
                if let Some(f) = self.inflight.get_mut(&mid) {
                    let waiting = std::mem::take(&mut f.waiting);
                    let (ack, _) =
                        outcome_ack(f.kind, &mid, &Outcome::Failed("client stopping".into()));
                    for conn in waiting {
                        self.send(conn, ack.clone());
                    }
                }
            }
        }
        for c in std::mem::take(&mut self.conns) {
            self.out.push_back(Output::Close { conn: c.id });
        }
        self.inflight.clear();
        self.by_delivery.clear();
        self.deadlines.clear();
        self.queue.clear();
        self.phase = Phase::Done;
    }
}
