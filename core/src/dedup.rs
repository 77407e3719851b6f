//! A bounded, time-limited memory of completed message ids and the acks they got.
//!
//! Ids are kept as 96-bit keyed hashes (from two foldhash values under the session's seed), not
//! as strings: an entry has a fixed size whatever the network sends as a `messageId`, and ids
//! cannot be chosen to collide without the seed. The cache is bounded by count, by bytes (ack
//! texts included) and by age.

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::{BuildHasher, BuildHasherDefault, Hash, Hasher};

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

impl CachedAck {
    fn text_len(&self) -> usize {
        match self {
            CachedAck::ResponseNull => 0,
            CachedAck::Text(t) => t.len(),
        }
    }
}

/// What one entry costs besides its ack text, counted against the byte bound: two 13-byte id
/// slots (the table is sized at twice the entries, so removals never make it grow), a 20-byte
/// order slot, a text slot when the ack has a text, and slack.
pub const ENTRY_BYTES: usize = 128;

/// A message id's 96-bit keyed hash, in 4-byte words so that a table slot takes 12 bytes. (Two
/// ids share a key with odds of one in 2^96 per pair: with a million ids remembered, a new id is
/// mistaken for a seen one about once in 10^23 frames.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Key([u32; 3]);

impl Hash for Key {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(u64::from(self.0[0]) | (u64::from(self.0[1]) << 32));
    }
}

/// An entry of the age order: when it expires, in milliseconds after the cache's first use
/// (in two 4-byte words, so that the entry takes 20 bytes, not 32 with an `Instant`), and its
/// key.
#[derive(Debug, Clone, Copy)]
struct Aged {
    expires: [u32; 2],
    key: Key,
}

impl Aged {
    fn expires(&self) -> u64 {
        u64::from(self.expires[0]) | (u64::from(self.expires[1]) << 32)
    }
}

/// The key is already a keyed hash: the map uses it as it is.
#[derive(Default)]
struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// Completed `messageId`s with the ack text that was sent for them, so a redelivered copy gets
/// the same ack without calling the handler again. Bounded by count, by bytes and by age; the
/// oldest entries go first.
#[derive(Debug)]
pub struct DedupCache {
    capacity: usize,
    max_bytes: usize,
    bytes: usize,
    ttl: Duration,
    hash: (FixedState, FixedState),
    /// Every remembered id: 16 bytes a slot. Most acks are `{"response": null}` and need
    /// nothing more (a map to the ack would double the slot for all of them).
    ids: HashSet<Key, BuildHasherDefault<PassThrough>>,
    /// The ack texts of the ids acked with one.
    texts: HashMap<Key, Arc<str>, BuildHasherDefault<PassThrough>>,
    /// The most texts `texts` holds without growing, as last sized ([`Self::room_for_text`]).
    texts_room: usize,
    order: VecDeque<Aged>,
    /// The first `now` the cache was given: times are kept as milliseconds after it.
    base: Option<Instant>,
}

/// Most entries the table is sized for up front.
const PRESIZE_MAX: usize = 1 << 20;

/// Default byte bound of the cache.
pub const DEFAULT_MAX_BYTES: usize = 4 << 20;

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
            max_bytes: DEFAULT_MAX_BYTES,
            bytes: 0,
            ttl,
            hash: (
                FixedState::with_seed(seed),
                FixedState::with_seed(seed ^ 0x9e37_79b9_7f4a_7c15),
            ),
            ids: HashSet::default(),
            texts: HashMap::default(),
            texts_room: 0,
            order: VecDeque::new(),
            base: None,
        }
    }

    /// A copy bounded to `max_bytes` (entries at [`ENTRY_BYTES`] each plus their ack texts).
    #[must_use]
    pub fn with_max_bytes(mut self, max_bytes: usize) -> Self {
        self.max_bytes = max_bytes;
        self
    }

    /// Number of remembered ids.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether no id is remembered.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Bytes counted against the bound.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    fn key(&self, message_id: &str) -> Key {
        let (a, b) = (
            self.hash.0.hash_one(message_id),
            self.hash.1.hash_one(message_id),
        );
        // Truncations on purpose: the key is the first 96 of the 128 hash bits.
        #[allow(clippy::cast_possible_truncation)]
        Key([a as u32, (a >> 32) as u32, b as u32])
    }

    /// Milliseconds from the cache's first use to `at` plus `ttl`, rounded down (`up`: rounded
    /// up); saturating, so that no time or TTL can overflow.
    fn millis(&mut self, at: Instant, ttl: Duration, up: bool) -> u64 {
        let base = *self.base.get_or_insert(at);
        let d = at.saturating_duration_since(base).saturating_add(ttl);
        let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        if up && d.subsec_nanos() % 1_000_000 != 0 {
            ms.saturating_add(1)
        } else {
            ms
        }
    }

    /// The ack remembered for `message_id`, unless it expired.
    pub fn get(&mut self, message_id: &str, now: Instant) -> Option<CachedAck> {
        self.expire(now);
        let key = self.key(message_id);
        if !self.ids.contains(&key) {
            return None;
        }
        Some(match self.texts.get(&key) {
            Some(text) => CachedAck::Text(text.clone()),
            None => CachedAck::ResponseNull,
        })
    }

    /// Remembers the ack sent for `message_id`.
    pub fn insert(&mut self, message_id: &str, ack: CachedAck, now: Instant) {
        if self.capacity == 0 {
            return;
        }
        self.expire(now);
        if self.ids.capacity() == 0 {
            self.allocate();
        }
        let key = self.key(message_id);
        // Saturating: a `Duration::MAX`-like TTL from the configuration must not panic. Rounded
        // up, so that an entry never expires early (it may live a millisecond longer).
        let expires = self.millis(now, self.ttl, true);
        let added = ack.text_len();
        let old = match ack {
            CachedAck::ResponseNull => self.texts.remove(&key),
            CachedAck::Text(text) => {
                self.room_for_text();
                self.texts.insert(key, text)
            }
        };
        if self.ids.insert(key) {
            self.bytes = self.bytes.saturating_add(ENTRY_BYTES + added);
            #[allow(clippy::cast_possible_truncation)] // the two halves
            self.order.push_back(Aged {
                expires: [expires as u32, (expires >> 32) as u32],
                key,
            });
        } else {
            self.bytes = self
                .bytes
                .saturating_sub(old.map_or(0, |t| t.len()))
                .saturating_add(added);
        }
        while self.ids.len() > self.capacity || self.bytes > self.max_bytes {
            if !self.evict_oldest() {
                break;
            }
        }
    }

    /// Sizes the table once, at twice the most entries the bounds allow: a full cache that
    /// keeps replacing its oldest entries leaves deleted slots behind, and a table less than
    /// half full clears them in place instead of doubling mid-run (a one-time jump in memory).
    fn allocate(&mut self) {
        // Beyond a million ids (a configuration without a real bound) the table grows as it
        // fills instead of reserving up front.
        let most = self
            .capacity
            .min(self.max_bytes / ENTRY_BYTES)
            .min(PRESIZE_MAX);
        // One more: an entry is added before the oldest goes.
        self.ids.reserve(most.saturating_add(1).saturating_mul(2));
        self.order.reserve(most.saturating_add(1));
    }

    /// Keeps the ack-text table at most half full, growing it (doubling) while the number of
    /// texts reaches new highs, so that it never grows once that number has settled.
    ///
    /// How many acks carry a text is not known up front (most acks have none; sizing the table
    /// for every id as a text would double the cache), so it cannot be sized once as `ids` is.
    /// A table that grows only when full would fill up with deleted slots once the cache keeps
    /// replacing its oldest entries, and a table then more than half full doubles instead of
    /// cleaning them in place: a one-time jump long after the cache filled (measured in the
    /// soak: 0.5 MB at 10 000 texts, after the 10 % mark). Kept at most half full, it cleans
    /// them in place.
    fn room_for_text(&mut self) {
        let wanted = self.texts.len().saturating_add(1).saturating_mul(2);
        if wanted <= self.texts_room {
            return;
        }
        let mut bigger = HashMap::with_capacity_and_hasher(wanted, BuildHasherDefault::default());
        bigger.extend(self.texts.drain());
        self.texts = bigger;
        self.texts_room = self.texts.capacity();
    }

    fn evict_oldest(&mut self) -> bool {
        match self.order.pop_front() {
            Some(Aged { key, .. }) => {
                if self.ids.remove(&key) {
                    let text = self.texts.remove(&key).map_or(0, |t| t.len());
                    self.bytes = self.bytes.saturating_sub(ENTRY_BYTES + text);
                }
                true
            }
            None => false,
        }
    }

    fn expire(&mut self, now: Instant) {
        let now = self.millis(now, Duration::ZERO, false);
        while let Some(aged) = self.order.front() {
            if aged.expires() > now {
                break;
            }
            self.evict_oldest();
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests may abort on failure
    use super::*;

    #[test]
    fn bounded_by_bytes_whatever_the_ids_and_acks_weigh() {
        let t0 = Instant::now();
        let mut c = DedupCache::new(1000, Duration::from_secs(10)).with_max_bytes(10 * 1024);
        let long_id = "x".repeat(1 << 20);
        for i in 0..100 {
            // A megabyte-long id costs an entry's fixed size; a 1 KiB ack costs its bytes.
            c.insert(
                &format!("{long_id}{i}"),
                CachedAck::Text("a".repeat(1024).into()),
                t0,
            );
            assert!(c.bytes() <= 10 * 1024, "{}", c.bytes());
        }
        assert!(c.len() < 10);
        assert!(c.get(&format!("{long_id}99"), t0).is_some());
        assert!(c.get(&format!("{long_id}0"), t0).is_none());
        // Replacing an ack keeps the count right.
        c.insert("y", CachedAck::ResponseNull, t0);
        c.insert("y", CachedAck::Text("z".into()), t0);
        assert_eq!(c.get("y", t0), Some(CachedAck::Text("z".into())));
        c.insert("y", CachedAck::ResponseNull, t0 + Duration::from_secs(20));
        assert_eq!(c.len(), 1);
        assert_eq!(c.bytes(), ENTRY_BYTES);
    }

    #[test]
    fn the_table_is_sized_once_and_never_grows_under_churn() {
        let t0 = Instant::now();
        let mut c = DedupCache::new(1000, Duration::from_secs(10));
        c.insert("first", CachedAck::ResponseNull, t0);
        let (table, order) = (c.ids.capacity(), c.order.capacity());
        assert!(table >= 2000);
        for i in 0..20_000 {
            c.insert(&format!("id-{i}"), CachedAck::ResponseNull, t0);
        }
        assert_eq!(c.len(), 1000);
        // (Deleted slots count against `capacity()` until the table is cleaned in place; a
        // doubled table would report about twice as much.)
        assert!(c.ids.capacity() <= table, "the table grew mid-run");
        assert_eq!(c.order.capacity(), order);
        // `{"response": null}` acks (most of them) take a 12-byte id slot and nothing more.
        assert!(c.texts.is_empty());
        assert_eq!(std::mem::size_of::<Key>(), 12);
        assert_eq!(std::mem::size_of::<Aged>(), 20);
        c.insert("text", CachedAck::Text("ack".into()), t0);
        assert_eq!(c.texts.len(), 1);
        // Evicted with its id.
        for i in 0..1000 {
            c.insert(&format!("more-{i}"), CachedAck::ResponseNull, t0);
        }
        assert!(c.texts.is_empty() && c.get("text", t0).is_none());
    }

    #[test]
    fn the_ack_text_table_stops_growing_once_the_number_of_texts_settles() {
        let t0 = Instant::now();
        let mut c = DedupCache::new(1000, Duration::from_secs(10));
        let text: Arc<str> = "{\"status\":\"SUCCESS\"}".into();
        // Fill: the texts reach their most (every entry has one), and the cache starts
        // replacing its oldest entries.
        let mut most = 0;
        for i in 0..2000 {
            c.insert(&format!("id-{i}"), CachedAck::Text(text.clone()), t0);
            most = most.max(c.texts.capacity());
        }
        assert_eq!(c.texts.len(), 1000);
        // Churn: deleted slots pile up; a table that must grow for them doubles here.
        for i in 2000..50_000 {
            c.insert(&format!("id-{i}"), CachedAck::Text(text.clone()), t0);
            assert!(
                c.texts.capacity() <= most,
                "the ack-text table grew from {most} to {} slots after the cache filled",
                c.texts.capacity()
            );
        }
        assert_eq!(c.texts.len(), 1000);
    }

    #[test]
    fn an_entry_lives_its_ttl_and_at_most_a_millisecond_more() {
        let t0 = Instant::now();
        let us = Duration::from_micros;
        let mut c = DedupCache::new(10, Duration::from_millis(10));
        c.insert("first", CachedAck::ResponseNull, t0);
        // Inserted 0.4 ms after the cache's first use: kept until 10.4 ms, gone by 11.4 ms.
        c.insert("a", CachedAck::ResponseNull, t0 + us(400));
        assert!(c.get("a", t0 + us(10_399)).is_some());
        assert!(c.get("first", t0 + us(10_399)).is_none());
        assert!(c.get("a", t0 + us(11_400)).is_none());
        // Times before the first use and TTLs without a bound saturate instead of panicking.
        let mut c = DedupCache::new(10, Duration::MAX);
        c.insert("b", CachedAck::ResponseNull, t0 + Duration::from_secs(5));
        c.insert("c", CachedAck::ResponseNull, t0);
        assert!(c.get("b", t0 + Duration::from_secs(1 << 40)).is_some());
        assert!(c.get("c", t0 + Duration::from_secs(1 << 40)).is_some());
    }

    #[test]
    fn bounded_by_capacity_and_age() {
        let t0 = Instant::now();
        let mut c = DedupCache::new(2, Duration::from_secs(10));
        c.insert("a", CachedAck::Text("A".into()), t0);
        c.insert("b", CachedAck::ResponseNull, t0);
        c.insert("c", CachedAck::Text("C".into()), t0);
        assert_eq!(c.len(), 2);
        assert!(c.get("a", t0).is_none());
        assert_eq!(c.get("c", t0), Some(CachedAck::Text("C".into())));
        assert_eq!(c.get("b", t0), Some(CachedAck::ResponseNull));
        assert!(c.get("b", t0 + Duration::from_secs(10)).is_none());
        assert!(c.is_empty());
    }
}

#[cfg(test)]
mod accounting {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// Whatever the mix of new ids, repeats, text and null acks, expiries and evictions, the
    /// byte count is what the remembered entries weigh.
    #[test]
    fn the_byte_count_matches_the_entries() {
        let t0 = Instant::now();
        let mut c = DedupCache::new(500, Duration::from_secs(30)).with_max_bytes(40_000);
        let mut rng = fastrand::Rng::with_seed(7);
        for step in 0..20_000u64 {
            let id = format!("m{}", rng.u32(0..2_000));
            let ack = if rng.bool() {
                CachedAck::ResponseNull
            } else {
                CachedAck::Text("x".repeat(rng.usize(0..300)).into())
            };
            c.insert(&id, ack, t0 + Duration::from_millis(step));
            let expected: usize = c
                .ids
                .iter()
                .map(|k| ENTRY_BYTES + c.texts.get(k).map_or(0, |t| t.len()))
                .sum();
            assert_eq!(c.bytes(), expected, "step {step}");
            assert!(c.texts.keys().all(|k| c.ids.contains(k)));
            assert_eq!(c.order.len(), c.ids.len());
        }
    }
}
