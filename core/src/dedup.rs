//! A bounded, time-limited memory of completed message ids and the acks they got.

use std::collections::{HashMap, VecDeque};

use foldhash::fast::FixedState;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The ack remembered for a message id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CachedAck {
    /// `200 {"response": null}` (an immediately acked bot message): rebuilt on replay, so the
    /// common case stores no text.
    ResponseNull,
    /// The exact ack text that was sent.
    Text(Arc<str>),
}

/// Completed `messageId`s with the ack text that was sent for them, so a redelivered copy gets
/// the same ack without calling the handler again. Bounded by count and by age; the oldest
/// entries go first.
#[derive(Debug)]
pub struct DedupCache {
    capacity: usize,
    ttl: Duration,
    acks: HashMap<Arc<str>, (CachedAck, Instant), FixedState>,
    order: VecDeque<(Instant, Arc<str>)>,
}

impl DedupCache {
    /// A cache of at most `capacity` ids, each kept for `ttl`.
    pub fn new(capacity: usize, ttl: Duration) -> Self {
        Self::with_seed(capacity, ttl, 0)
    }

    /// The same, hashing with `seed` (the session's seed: ids are hashed with foldhash, fast and
    /// not predictable across processes, without a global RNG).
    pub fn with_seed(capacity: usize, ttl: Duration, seed: u64) -> Self {
        Self {
            capacity,
            ttl,
            acks: HashMap::with_hasher(FixedState::with_seed(seed)),
            order: VecDeque::new(),
        }
    }

    /// Number of remembered ids.
    pub fn len(&self) -> usize {
        self.acks.len()
    }

    /// Whether no id is remembered.
    pub fn is_empty(&self) -> bool {
        self.acks.is_empty()
    }

    /// The ack remembered for `message_id`, unless it expired.
    pub fn get(&mut self, message_id: &str, now: Instant) -> Option<CachedAck> {
        self.expire(now);
        self.acks.get(message_id).map(|(ack, _)| ack.clone())
    }

    /// Remembers the ack sent for `message_id`.
    pub fn insert(&mut self, message_id: Arc<str>, ack: CachedAck, now: Instant) {
        if self.capacity == 0 {
            return;
        }
        self.expire(now);
        let expires = now + self.ttl;
        if self
            .acks
            .insert(message_id.clone(), (ack, expires))
            .is_none()
        {
            self.order.push_back((expires, message_id));
        }
        while self.acks.len() > self.capacity {
            match self.order.pop_front() {
                Some((_, id)) => {
                    self.acks.remove(&id);
                }
                None => break,
            }
        }
    }

    fn expire(&mut self, now: Instant) {
        while let Some((expires, _)) = self.order.front() {
            if *expires > now {
                break;
            }
            if let Some((_, id)) = self.order.pop_front() {
                self.acks.remove(&id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests may abort on failure
    use super::*;

    #[test]
    fn bounded_by_capacity_and_age() {
        let t0 = Instant::now();
        let mut c = DedupCache::new(2, Duration::from_secs(10));
        c.insert("a".into(), CachedAck::Text("A".into()), t0);
        c.insert("b".into(), CachedAck::ResponseNull, t0);
        c.insert("c".into(), CachedAck::Text("C".into()), t0);
        assert_eq!(c.len(), 2);
        assert!(c.get("a", t0).is_none());
        assert_eq!(c.get("c", t0), Some(CachedAck::Text("C".into())));
        assert_eq!(c.get("b", t0), Some(CachedAck::ResponseNull));
        assert!(c.get("b", t0 + Duration::from_secs(10)).is_none());
        assert!(c.is_empty());
    }
}
