//! State shared by the replicas of one app through a key-value store (Redis): which replica
//! handles a message, the ack it recorded, and the access token. The decisions live here (keys,
//! values, TTLs, what a value means, what to do when the store fails); the driver runs the
//! store commands and waits.
//!
//! # Messages
//!
//! Before a handler runs, the replica claims the message with one `SET key value NX PX ttl GET`
//! (one round trip: it sets the key unless it exists, and returns what was there). A frame
//! acked on arrival (a bot message: its only ack, `{"response": null}`, is already sent) is
//! claimed as done at once, `d:null` for `record_ttl`: one command per message. A frame acked
//! after its handler is claimed as in progress, `p:<owner>` for `claim_ttl`. Then, by what the
//! claim found ([`Claim`]):
//!
//! * nothing: the claim is its own; it runs the handler, then (for an in-progress claim)
//!   records the outcome (`SET key "d:<outcome>" PX record_ttl`), or, for a failed outcome,
//!   releases the claim so a redelivery runs the handler again;
//! * a recorded outcome: the handler already ran (or runs) on some replica; the same outcome
//!   (and so the same ack) is returned without running it;
//! * a claim of another replica in progress: the replica waits up to
//!   [`StoreConfig::wait_for_other`] for the recorded outcome, and failing that answers
//!   [`Outcome::Later`] (DingTalk delivers again later and finds the record).
//!
//! When the store fails (unreachable, slow past [`StoreConfig::op_timeout`], a value it cannot
//! read), nothing is lost or blocked: with [`OnStoreError::FailOpen`] (the default) the
//! replica handles the frame with its own, per-process deduplication; with
//! [`OnStoreError::FailClosed`] a frame acked after its handler is answered `Later` so DingTalk
//! redelivers it, and a frame already acked on arrival is still handled (refusing it would
//! lose it).
//!
//! # The access token
//!
//! A replica that needs a fresh token reads the shared one first; if there is none it takes a
//! lock (`SET lock <owner> NX PX token_lock_ttl`), refreshes, publishes the token with its
//! refresh time (wall clock, comparable across machines), and releases the lock. A replica that
//! finds the lock taken polls the shared token until the lock's TTL, then refreshes itself.

use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::Outcome;
use crate::topic::AckPolicy;

/// What a replica does with a frame when the store fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnStoreError {
    /// Handle it with per-process state only (a duplicate on another replica may run twice).
    #[default]
    FailOpen,
    /// Answer `Later` to frames acked after their handler so DingTalk redelivers them; frames
    /// already acked on arrival are still handled.
    FailClosed,
}

/// How the shared state is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreConfig {
    /// First part of every key (default `dingtalk`).
    pub prefix: String,
    /// How long a claim holds while its handler runs (default 11 min: past the default
    /// handler timeout, so a crashed replica's claim expires and a redelivery runs again).
    pub claim_ttl: Duration,
    /// How long a recorded outcome is kept to answer redeliveries (default 24 h).
    pub record_ttl: Duration,
    /// How long a duplicate waits for the replica that claimed it (default 5 s).
    pub wait_for_other: Duration,
    /// Pause between two looks at another replica's claim or token lock (default 50 ms).
    pub poll_every: Duration,
    /// Longest one store command may take before it counts as a failure (default 1 s).
    pub op_timeout: Duration,
    /// How long the token-refresh lock holds (default 10 s).
    pub token_lock_ttl: Duration,
    /// After a failed command, how long the store is not asked again (every frame goes
    /// straight to [`StoreConfig::on_error`]'s way; default 5 s), so a down store costs each
    /// frame nothing rather than a timeout.
    pub retry_after_failure: Duration,
    /// What to do when the store fails.
    pub on_error: OnStoreError,
    /// A budget of OpenAPI calls per second shared by all replicas of the app (DingTalk
    /// throttles per app); `None` (the default): no shared budget. A call over the budget
    /// waits for the next second; when the store fails, calls go ahead.
    pub api_calls_per_second: Option<u32>,
    /// How long an open AI card's entry stays valid without renewal (default 60 s; renewed
    /// every third of it): a card whose replica died is closed as failed by another replica's
    /// (or the restarted one's) sweep once this has passed.
    pub ai_card_lease: Duration,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            prefix: "dingtalk".into(),
            claim_ttl: Duration::from_secs(660),
            record_ttl: Duration::from_secs(24 * 3600),
            wait_for_other: Duration::from_secs(5),
            poll_every: Duration::from_millis(50),
            op_timeout: Duration::from_secs(1),
            token_lock_ttl: Duration::from_secs(10),
            retry_after_failure: Duration::from_secs(5),
            on_error: OnStoreError::FailOpen,
            api_calls_per_second: None,
            ai_card_lease: Duration::from_secs(60),
        }
    }
}

/// The keys of one app (`<prefix>:<client id>:…`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keys {
    base: String,
}

impl Keys {
    /// The keys of the app `client_id`.
    pub fn new(config: &StoreConfig, client_id: &str) -> Self {
        Self {
            base: format!("{}:{}", config.prefix, hex(&digest(client_id)[..8])),
        }
    }

    /// The claim / record of one message. The id comes from the network: it is hashed, so a
    /// key has a fixed size and no odd characters.
    pub fn message(&self, message_id: &str) -> String {
        format!("{}:msg:{}", self.base, hex(&digest(message_id)[..16]))
    }

    /// The shared access token.
    pub fn token(&self) -> String {
        format!("{}:token", self.base)
    }

    /// The lock of a token refresh.
    pub fn token_lock(&self) -> String {
        format!("{}:token-lock", self.base)
    }

    /// The open AI cards of the app (a map: `outTrackId` → [`ai_card_entry`]).
    pub fn ai_cards(&self) -> String {
        format!("{}:ai-cards", self.base)
    }

    /// The counter of OpenAPI calls in the second that starts at `unix_ms` (rounded down).
    pub fn budget(&self, unix_ms: i64) -> String {
        format!("{}:budget:{}", self.base, unix_ms.div_euclid(1000))
    }
}

/// How long the map of open cards lives after its last change (entries are removed when their
/// card ends; this only bounds what a store keeps if every replica dies).
pub const AI_CARDS_TTL: Duration = Duration::from_secs(86_400);

/// Least time between two sweeps of one replica (besides the one at start).
pub const AI_CARD_SWEEP_EVERY: Duration = Duration::from_secs(30);

/// How often a live card renews its entry: a third of the lease (two renewals may fail).
pub fn ai_card_renew_every(config: &StoreConfig) -> Duration {
    (config.ai_card_lease / 3).max(Duration::from_millis(100))
}

/// When a starting replica sweeps again: once the leases of a process that died just before
/// it started have surely run out.
pub fn ai_card_second_sweep(config: &StoreConfig) -> Duration {
    config
        .ai_card_lease
        .saturating_add(config.ai_card_lease / 4)
        .max(Duration::from_secs(1))
}

/// The entry of an open AI card whose lease runs until `lease_until_unix_ms`.
pub fn ai_card_entry(lease_until_unix_ms: i64) -> String {
    format!("lease:{lease_until_unix_ms}")
}

/// Whether an entry's card was left open by a replica that is gone: its lease has run out (an
/// entry that cannot be read counts as run out).
pub fn ai_card_abandoned(entry: &str, now_unix_ms: i64) -> bool {
    entry
        .strip_prefix("lease:")
        .and_then(|n| n.parse::<i64>().ok())
        .is_none_or(|until| until <= now_unix_ms)
}

/// How long a budget counter lives (its second, and a margin for clocks a little apart).
pub const BUDGET_TTL: Duration = Duration::from_secs(5);

/// What a call does once it has counted itself in the shared budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Budget {
    /// Within the budget: send it.
    Go,
    /// Over it: wait this long (until the next second, plus a little jitter given by the
    /// caller), then count again.
    Wait(Duration),
}

/// The decision for a call that was the `count`-th of its second (the counter after `INCR`) at
/// `unix_ms`, under a budget of `limit` per second; `jitter_ms` (0..100) spreads the replicas
/// that wake at the next second.
pub fn budget(count: u64, limit: u32, unix_ms: i64, jitter_ms: u64) -> Budget {
    if count <= u64::from(limit) {
        return Budget::Go;
    }
    let into_second = u64::try_from(unix_ms.rem_euclid(1000)).unwrap_or(0);
    Budget::Wait(Duration::from_millis(
        (1000 - into_second).saturating_add(jitter_ms.min(100)),
    ))
}

fn digest(s: &str) -> [u8; 32] {
    Sha256::digest(s.as_bytes()).into()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// How a replica claims a message of `policy`: the value and TTL of the claim, and whether
/// the handler's outcome is recorded afterwards.
///
/// A frame acked after its handler is claimed as in progress (`p:<owner>`, `claim_ttl`) and its
/// outcome recorded when the handler ends. A frame acked on arrival (bot messages) already got
/// its only possible ack, `{"response": null}`: it is claimed as done at once
/// (`d:null`, `record_ttl`), one command per message instead of two.
pub fn claim_for(policy: AckPolicy, owner: &str, config: &StoreConfig) -> (String, Duration, bool) {
    match policy {
        AckPolicy::Immediate => (
            format!("d:{}", serde_json::Value::Null),
            config.record_ttl,
            false,
        ),
        AckPolicy::AfterHandler { .. } => (in_progress(owner), config.claim_ttl, true),
    }
}

/// The value of a claim in progress.
pub fn in_progress(owner: &str) -> String {
    format!("p:{owner}")
}

/// The value recording `outcome`, or `None` when it must not be recorded (a failure or a
/// `Later`: a redelivery should run the handler again).
pub fn recorded(outcome: &Outcome) -> Option<String> {
    match outcome {
        Outcome::Ok(v) => Some(format!("d:{v}")),
        Outcome::Later | Outcome::Failed(_) => None,
    }
}

/// What a replica found when it claimed a message.
#[derive(Debug, Clone, PartialEq)]
pub enum Claim {
    /// Nothing was there: the claim is this replica's.
    Mine,
    /// Another replica (named) is handling it.
    Elsewhere(String),
    /// It was handled: this is the outcome to answer with.
    Done(Outcome),
    /// A value this version cannot read.
    Unreadable,
}

/// Reads the previous value returned by the claim (`None`: there was none).
pub fn read_claim(previous: Option<&str>) -> Claim {
    match previous {
        None => Claim::Mine,
        Some(v) => {
            if let Some(owner) = v.strip_prefix("p:") {
                Claim::Elsewhere(owner.to_owned())
            } else if let Some(json) = v.strip_prefix("d:") {
                serde_json::from_str(json)
                    .map_or(Claim::Unreadable, |v| Claim::Done(Outcome::Ok(v)))
            } else {
                Claim::Unreadable
            }
        }
    }
}

/// What to do with a frame whose claim is held by another replica.
#[derive(Debug, Clone, PartialEq)]
pub enum Elsewhere {
    /// Do not run the handler; answer this now.
    Answer(Outcome),
    /// Look again at the claim (until [`StoreConfig::wait_for_other`] has passed).
    Wait,
}

/// The decision for a frame of `policy` claimed elsewhere, `waited` after the first look.
pub fn claimed_elsewhere(policy: AckPolicy, waited: Duration, config: &StoreConfig) -> Elsewhere {
    match policy {
        // Already acked `{"response": null}`: the other replica runs the handler.
        AckPolicy::Immediate => Elsewhere::Answer(Outcome::done()),
        AckPolicy::AfterHandler { .. } if waited < config.wait_for_other => Elsewhere::Wait,
        AckPolicy::AfterHandler { .. } => Elsewhere::Answer(Outcome::Later),
    }
}

/// What to do with a frame when the store failed (or answered a value it cannot read).
#[derive(Debug, Clone, PartialEq)]
pub enum OnError {
    /// Run the handler with per-process state only.
    HandleLocally,
    /// Do not run it; answer this (DingTalk redelivers it).
    Answer(Outcome),
}

/// The decision for a frame of `policy` when the store failed.
pub fn on_store_error(policy: AckPolicy, config: &StoreConfig) -> OnError {
    match (config.on_error, policy) {
        (OnStoreError::FailClosed, AckPolicy::AfterHandler { .. }) => {
            OnError::Answer(Outcome::Later)
        }
        // Fail open, or a frame acked on arrival: refusing it would lose it.
        _ => OnError::HandleLocally,
    }
}

/// The shared token value: the token and when to refresh it (Unix milliseconds).
pub fn shared_token(token: &str, refresh_at_unix_ms: i64) -> String {
    serde_json::json!({"t": token, "r": refresh_at_unix_ms}).to_string()
}

/// Reads a shared token value: the token and how long it stays fresh, if it is still fresh at
/// `now_unix_ms` and is not `rejected` (a token DingTalk refused, which another replica may not
/// have replaced yet).
pub fn read_shared_token(
    value: &str,
    now_unix_ms: i64,
    rejected: Option<&str>,
) -> Option<(String, Duration)> {
    #[derive(serde::Deserialize)]
    struct Shared {
        t: String,
        r: i64,
    }
    let s: Shared = serde_json::from_str(value).ok()?;
    if s.t.is_empty() || Some(s.t.as_str()) == rejected || s.r <= now_unix_ms {
        return None;
    }
    let fresh_for = Duration::from_millis(u64::try_from(s.r.saturating_sub(now_unix_ms)).ok()?);
    // A value claiming more than a token can live is not believed.
    (fresh_for <= crate::auth::MAX_TOKEN_LIFETIME).then_some((s.t, fresh_for))
}

#[cfg(test)]
mod ai_card_tests {
    use super::{ai_card_abandoned, ai_card_entry};

    #[test]
    fn an_entry_is_abandoned_once_its_lease_ran_out_or_it_is_unreadable() {
        let e = ai_card_entry(1_000);
        assert!(!ai_card_abandoned(&e, 999), "a live replica's card stays");
        assert!(ai_card_abandoned(&e, 1_000));
        assert!(ai_card_abandoned("garbage", 0));
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests abort on failure
    use super::*;
    use serde_json::json;

    #[test]
    fn keys_are_per_app_and_bounded_whatever_the_message_id() {
        let c = StoreConfig::default();
        let a = Keys::new(&c, "app-a");
        let b = Keys::new(&c, "app-b");
        assert_ne!(a.message("m1"), b.message("m1"));
        assert_ne!(a.message("m1"), a.message("m2"));
        assert_eq!(
            a.message("m1"),
            Keys::new(&c, "app-a").message("m1"),
            "stable"
        );
        let long = "x".repeat(10_000);
        assert_eq!(a.message(&long).len(), a.message("m").len());
        assert!(a.message("a b\r\n*").bytes().all(|b| b.is_ascii_graphic()));
        assert!(a.token().starts_with("dingtalk:") && a.token_lock() != a.token());
    }

    #[test]
    fn a_claim_is_read_back_as_what_it_records() {
        assert_eq!(read_claim(None), Claim::Mine);
        assert_eq!(
            read_claim(Some(&in_progress("host-1"))),
            Claim::Elsewhere("host-1".into())
        );
        let done = Outcome::Ok(json!({"cardData": {"x": "1"}}));
        assert_eq!(read_claim(recorded(&done).as_deref()), Claim::Done(done));
        assert_eq!(
            read_claim(recorded(&Outcome::done()).as_deref()),
            Claim::Done(Outcome::done())
        );
        assert_eq!(recorded(&Outcome::Later), None);
        assert_eq!(recorded(&Outcome::Failed("x".into())), None);
        assert_eq!(read_claim(Some("garbage")), Claim::Unreadable);
        assert_eq!(read_claim(Some("d:{not json")), Claim::Unreadable);
    }

    #[test]
    fn a_message_acked_on_arrival_is_claimed_as_done_in_one_command() {
        let c = StoreConfig::default();
        let (value, ttl, record) = claim_for(AckPolicy::Immediate, "me", &c);
        assert_eq!(read_claim(Some(&value)), Claim::Done(Outcome::done()));
        assert_eq!((ttl, record), (c.record_ttl, false));
        let after = AckPolicy::AfterHandler {
            timeout: Duration::from_secs(60),
        };
        let (value, ttl, record) = claim_for(after, "me", &c);
        assert_eq!(read_claim(Some(&value)), Claim::Elsewhere("me".into()));
        assert_eq!((ttl, record), (c.claim_ttl, true));
    }

    #[test]
    fn a_claim_held_elsewhere_is_waited_for_only_when_the_ack_waits_too() {
        let c = StoreConfig::default();
        let after = AckPolicy::AfterHandler {
            timeout: Duration::from_secs(60),
        };
        assert_eq!(
            claimed_elsewhere(AckPolicy::Immediate, Duration::ZERO, &c),
            Elsewhere::Answer(Outcome::done())
        );
        assert_eq!(
            claimed_elsewhere(after, Duration::ZERO, &c),
            Elsewhere::Wait
        );
        assert_eq!(
            claimed_elsewhere(after, c.wait_for_other, &c),
            Elsewhere::Answer(Outcome::Later)
        );
    }

    #[test]
    fn a_failed_store_never_loses_a_frame() {
        let after = AckPolicy::AfterHandler {
            timeout: Duration::from_secs(60),
        };
        let open = StoreConfig::default();
        let closed = StoreConfig {
            on_error: OnStoreError::FailClosed,
            ..StoreConfig::default()
        };
        assert_eq!(on_store_error(after, &open), OnError::HandleLocally);
        assert_eq!(
            on_store_error(AckPolicy::Immediate, &open),
            OnError::HandleLocally
        );
        assert_eq!(
            on_store_error(after, &closed),
            OnError::Answer(Outcome::Later)
        );
        assert_eq!(
            on_store_error(AckPolicy::Immediate, &closed),
            OnError::HandleLocally,
            "acked on arrival: refusing it would lose it"
        );
    }

    #[test]
    fn the_budget_admits_its_limit_per_second_then_waits_for_the_next() {
        let c = StoreConfig::default();
        let k = Keys::new(&c, "app");
        assert_eq!(k.budget(1_700_000_000_999), k.budget(1_700_000_000_000));
        assert_ne!(k.budget(1_700_000_001_000), k.budget(1_700_000_000_999));
        assert_eq!(budget(20, 20, 1_000_250, 0), Budget::Go);
        assert_eq!(
            budget(21, 20, 1_000_250, 0),
            Budget::Wait(Duration::from_millis(750))
        );
        assert_eq!(
            budget(21, 20, 1_000_999, 30),
            Budget::Wait(Duration::from_millis(31))
        );
        assert_eq!(
            budget(u64::MAX, 0, -1, 500),
            Budget::Wait(Duration::from_millis(101))
        );
    }

    #[test]
    fn a_shared_token_is_used_only_while_fresh_and_not_rejected() {
        let v = shared_token("tok-1", 10_000);
        assert_eq!(
            read_shared_token(&v, 4_000, None),
            Some(("tok-1".into(), Duration::from_millis(6_000)))
        );
        assert_eq!(read_shared_token(&v, 10_000, None), None, "stale");
        assert_eq!(
            read_shared_token(&v, 4_000, Some("tok-1")),
            None,
            "rejected"
        );
        assert_eq!(read_shared_token("{}", 0, None), None);
        assert_eq!(read_shared_token("nonsense", 0, None), None);
        let forever = shared_token("t", i64::MAX);
        assert_eq!(
            read_shared_token(&forever, 0, None),
            None,
            "beyond a token's life"
        );
    }
}
