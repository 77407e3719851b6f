//! The IO of the state shared by replicas: a [`StateStore`] (Redis with the `redis` feature,
//! or your own), the guard the driver puts around each handler call, and the shared token.
//! Every decision (keys, values, TTLs, what to do on failure) is
//! [`dingtalk_core::store`]'s; this runs the commands, bounds each by
//! [`StoreConfig::op_timeout`], and logs failures.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use dingtalk_core::store::{self as decide, Claim, Elsewhere, Keys, OnError, StoreConfig};
use dingtalk_core::topic::AckPolicy;
use dingtalk_core::{Frame, Outcome};

use crate::api::ApiClient;
use crate::handler::Handler;
use crate::runtime::{BoxFuture, HttpClient};

/// A store command failed (the text holds no key, value or credential).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("state store: {0}")]
pub struct StoreError(pub String);

/// A key-value store the replicas of an app share. Each method is one command; the driver
/// bounds each with a timeout, so an implementation need not.
pub trait StateStore: Send + Sync + 'static {
    /// Sets `key` to `value` with a `ttl` unless it exists; returns what was there (`None`:
    /// it was set). Redis: `SET key value NX PX ttl GET`.
    fn claim(
        &self,
        key: String,
        value: String,
        ttl: Duration,
    ) -> BoxFuture<'static, Result<Option<String>, StoreError>>;
    /// The value of `key`.
    fn get(&self, key: String) -> BoxFuture<'static, Result<Option<String>, StoreError>>;
    /// Sets `key` to `value` with a `ttl`.
    fn put(
        &self,
        key: String,
        value: String,
        ttl: Duration,
    ) -> BoxFuture<'static, Result<(), StoreError>>;
    /// Deletes `key` if its value is still `value` (a claim or lock of this replica's).
    fn release(&self, key: String, value: String) -> BoxFuture<'static, Result<(), StoreError>>;
    /// Adds one to the counter `key` (created at 0, living `ttl`) and returns the new value.
    /// Redis: `INCR key` and `PEXPIRE key ttl` in one transaction.
    fn count(&self, key: String, ttl: Duration) -> BoxFuture<'static, Result<u64, StoreError>>;
    /// Sets `field` of the map `key` to `value`, and the map to live `ttl`. Redis: `HSET` and
    /// `PEXPIRE` in one transaction.
    fn map_put(
        &self,
        key: String,
        field: String,
        value: String,
        ttl: Duration,
    ) -> BoxFuture<'static, Result<(), StoreError>>;
    /// Removes `field` of the map `key`; whether it was there (of several replicas removing the
    /// same field, one gets `true`). Redis: `HDEL`.
    fn map_remove(
        &self,
        key: String,
        field: String,
    ) -> BoxFuture<'static, Result<bool, StoreError>>;
    /// Every field of the map `key` with its value. Redis: `HGETALL`.
    fn map_entries(
        &self,
        key: String,
    ) -> BoxFuture<'static, Result<Vec<(String, String)>, StoreError>>;
}

/// A store with its configuration, the app's keys and this replica's name.
pub(crate) struct SharedState {
    store: Arc<dyn StateStore>,
    pub(crate) config: StoreConfig,
    keys: Keys,
    owner: String,
    last_warning: AtomicU64,
    /// When this state was made; `down_until` counts milliseconds from it.
    epoch: Instant,
    /// When this replica last swept the open AI cards (ms since `epoch`, plus one; 0: never).
    last_sweep: AtomicU64,
    /// The store is not asked before this (ms since `epoch`) after a failure.
    down_until: AtomicU64,
    /// Claims and locks whose holder was dropped half-way (a handler cancelled at its
    /// timeout, a token call given up): released by the next store use, so another replica
    /// need not wait for their TTL. At most [`MAX_RELEASES`]; beyond that they just expire.
    releases: std::sync::Mutex<Vec<(String, String)>>,
}

/// Most claims waiting to be released after their holder was dropped.
const MAX_RELEASES: usize = 1024;

/// Holds a claim (or lock) of this replica; dropped before [`Held::done`], it queues the
/// release.
pub(crate) struct Held<'a> {
    state: &'a SharedState,
    key: String,
    value: String,
    done: bool,
}

impl Held<'_> {
    pub(crate) fn done(mut self) {
        self.done = true;
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        if !self.done {
            let mut q = self
                .state
                .releases
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if q.len() < MAX_RELEASES {
                q.push((
                    std::mem::take(&mut self.key),
                    std::mem::take(&mut self.value),
                ));
            }
        }
    }
}

impl std::fmt::Debug for SharedState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedState")
            .field("config", &self.config)
            .field("owner", &self.owner)
            .finish_non_exhaustive()
    }
}

/// Seconds between two warnings about a failing store (a down Redis at 1 000 frames/s must not
/// write 1 000 lines a second).
const WARN_EVERY_SECS: u64 = 10;

impl SharedState {
    pub(crate) fn new(store: Arc<dyn StateStore>, config: StoreConfig, client_id: &str) -> Self {
        let keys = Keys::new(&config, client_id);
        let owner = format!("{}-{:016x}", std::process::id(), crate::client::seed());
        Self {
            store,
            config,
            keys,
            owner,
            last_warning: AtomicU64::new(0),
            epoch: Instant::now(),
            down_until: AtomicU64::new(0),
            last_sweep: AtomicU64::new(0),
            releases: std::sync::Mutex::new(Vec::new()),
        }
    }

    fn warn(&self, what: &str, e: &StoreError) {
        let now = crate::unix_ms().max(0) as u64 / 1000;
        let last = self.last_warning.load(Ordering::Relaxed);
        if now >= last.saturating_add(WARN_EVERY_SECS)
            && self
                .last_warning
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!(error = %e, "{what}; falling back to per-process state");
        }
    }

    /// Releases the claims and locks whose holders were dropped half-way.
    pub(crate) async fn flush_releases<H: HttpClient>(&self, http: &H) {
        let pending = std::mem::take(&mut *self.releases.lock().unwrap_or_else(|e| e.into_inner()));
        for (key, value) in pending {
            let release = self.store.release(key, value);
            if let Err(e) = self.run(http, release).await {
                self.warn("releasing a dropped claim failed", &e);
            }
        }
    }

    /// Records (or renews) the open AI card `track`.
    pub(crate) async fn card_open<H: HttpClient>(&self, http: &H, track: &str) {
        let until = crate::unix_ms().saturating_add(
            // Never so short that a live replica's cards look abandoned between renewals.
            i64::try_from(
                self.config
                    .ai_card_lease
                    .max(Duration::from_secs(1))
                    .as_millis(),
            )
            .unwrap_or(i64::MAX),
        );
        let op = self.store.map_put(
            self.keys.ai_cards(),
            track.to_owned(),
            decide::ai_card_entry(until),
            decide::AI_CARDS_TTL,
        );
        if let Err(e) = self.run(http, op).await {
            self.warn("recording an open AI card failed", &e);
        }
    }

    /// Forgets the AI card `track` (it ended, or was taken over).
    pub(crate) async fn card_closed<H: HttpClient>(&self, http: &H, track: &str) {
        let op = self
            .store
            .map_remove(self.keys.ai_cards(), track.to_owned());
        if let Err(e) = self.run(http, op).await {
            self.warn("forgetting a closed AI card failed", &e);
        }
    }

    /// The AI cards left open by replicas that are gone, each taken (removed from the store)
    /// by this replica only. At most once per [`decide::AI_CARD_SWEEP_EVERY`] unless `force`.
    pub(crate) async fn abandoned_cards<H: HttpClient>(
        &self,
        http: &H,
        force: bool,
    ) -> Vec<String> {
        let now = self.elapsed_ms().saturating_add(1);
        let last = self.last_sweep.load(Ordering::Relaxed);
        let every = u64::try_from(decide::AI_CARD_SWEEP_EVERY.as_millis()).unwrap_or(u64::MAX);
        if !force && last != 0 && now < last.saturating_add(every) {
            return Vec::new();
        }
        self.last_sweep.store(now, Ordering::Relaxed);
        let entries = match self
            .run(http, self.store.map_entries(self.keys.ai_cards()))
            .await
        {
            Ok(e) => e,
            Err(e) => {
                self.warn("reading the open AI cards failed", &e);
                return Vec::new();
            }
        };
        let unix = crate::unix_ms();
        let mut taken = Vec::new();
        for (track, entry) in entries {
            if !decide::ai_card_abandoned(&entry, unix) {
                continue;
            }
            let op = self.store.map_remove(self.keys.ai_cards(), track.clone());
            match self.run(http, op).await {
                Ok(true) => taken.push(track),
                Ok(false) => {}
                Err(e) => self.warn("taking an abandoned AI card failed", &e),
            }
        }
        taken
    }

    fn elapsed_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Runs one store command, bounded by the op timeout; fails at once while the store is
    /// resting after a failure.
    async fn run<T, H: HttpClient>(
        &self,
        http: &H,
        op: BoxFuture<'static, Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        if self.elapsed_ms() < self.down_until.load(Ordering::Relaxed) {
            return Err(StoreError("unavailable (resting after a failure)".into()));
        }
        let timeout = http.sleep(self.config.op_timeout);
        let result = match futures_util::future::select(op, timeout).await {
            futures_util::future::Either::Left((r, _)) => r,
            futures_util::future::Either::Right(_) => Err(StoreError("timed out".into())),
        };
        if result.is_err() {
            let rest =
                u64::try_from(self.config.retry_after_failure.as_millis()).unwrap_or(u64::MAX);
            self.down_until
                .store(self.elapsed_ms().saturating_add(rest), Ordering::Relaxed);
        }
        result
    }
}

/// The handler call of `frame`, guarded by the shared claim (see [`dingtalk_core::store`]).
pub(crate) fn guarded<H: HttpClient>(
    state: Arc<SharedState>,
    policy: AckPolicy,
    frame: Frame,
    handler: Handler<H>,
    api: ApiClient<H>,
) -> BoxFuture<'static, Outcome> {
    Box::pin(async move {
        let http = api.http().clone();
        let key = state.keys.message(frame.message_id());
        state.flush_releases(&http).await;
        let (mine, ttl, record) = decide::claim_for(policy, &state.owner, &state.config);
        let started = Instant::now();
        loop {
            let claim = state.store.claim(key.clone(), mine.clone(), ttl);
            let found = match state.run(&http, claim).await {
                Ok(previous) => decide::read_claim(previous.as_deref()),
                Err(e) => {
                    state.warn("claiming a message in the state store failed", &e);
                    match decide::on_store_error(policy, &state.config) {
                        OnError::HandleLocally => return handler(frame, api).await,
                        OnError::Answer(outcome) => return outcome,
                    }
                }
            };
            match found {
                Claim::Mine if !record => return handler(frame, api).await,
                Claim::Mine => {
                    // Dropped before the outcome is recorded (cancelled at the handler
                    // timeout): the claim is released rather than held for its TTL.
                    let held = Held {
                        state: &state,
                        key: key.clone(),
                        value: mine.clone(),
                        done: false,
                    };
                    let outcome = handler(frame, api).await;
                    held.done();
                    let op = match decide::recorded(&outcome) {
                        Some(value) => state.store.put(key, value, state.config.record_ttl),
                        None => state.store.release(key, mine),
                    };
                    if let Err(e) = state.run(&http, op).await {
                        state.warn(
                            "recording a handler's outcome in the state store failed",
                            &e,
                        );
                    }
                    return outcome;
                }
                // Claimed as done on arrival by another replica (or recorded by it).
                Claim::Done(outcome) => {
                    tracing::debug!(
                        message_id = frame.message_id(),
                        "handled by another replica; answering its recorded outcome"
                    );
                    return outcome;
                }
                Claim::Elsewhere(_) => {
                    match decide::claimed_elsewhere(policy, started.elapsed(), &state.config) {
                        Elsewhere::Answer(outcome) => return outcome,
                        // The claim may be released (the other replica failed) or recorded.
                        Elsewhere::Wait => http.sleep(state.config.poll_every).await,
                    }
                }
                Claim::Unreadable => {
                    let e = StoreError("a claim this version cannot read".into());
                    state.warn("the state store holds an unreadable claim", &e);
                    match decide::on_store_error(policy, &state.config) {
                        OnError::HandleLocally => return handler(frame, api).await,
                        OnError::Answer(outcome) => return outcome,
                    }
                }
            }
        }
    })
}

impl SharedState {
    /// Waits until this OpenAPI call fits the app's shared budget
    /// ([`StoreConfig::api_calls_per_second`]); at once without a budget or when the store
    /// fails.
    pub(crate) async fn within_budget<H: HttpClient>(&self, http: &H) {
        let Some(limit) = self.config.api_calls_per_second else {
            return;
        };
        // At most a minute of waiting: a budget that never frees (a clock far off) must not
        // hold a call for ever.
        for _ in 0..60 {
            let now = crate::unix_ms();
            let count = self.store.count(self.keys.budget(now), decide::BUDGET_TTL);
            match self.run(http, count).await {
                Ok(count) => {
                    let jitter = crate::client::seed() % 100;
                    match decide::budget(count, limit, now, jitter) {
                        decide::Budget::Go => return,
                        decide::Budget::Wait(d) => {
                            tracing::debug!(?d, "the app's shared API budget is spent; waiting");
                            http.sleep(d).await;
                        }
                    }
                }
                Err(e) => {
                    self.warn("counting a call in the shared API budget failed", &e);
                    return;
                }
            }
        }
    }
}

/// What the token refresh found in the shared store.
pub(crate) enum SharedToken {
    /// A fresh token another replica published: the token and how long it stays fresh.
    Found(String, Duration),
    /// This replica holds the lock and must refresh (or the store failed: refresh anyway).
    Refresh { locked: bool },
}

impl SharedState {
    /// Before refreshing: a fresh shared token, or the lock to refresh it (waiting up to the
    /// lock's TTL for a replica that holds it).
    pub(crate) async fn before_refresh<H: HttpClient>(
        &self,
        http: &H,
        rejected: Option<String>,
    ) -> SharedToken {
        self.flush_releases(http).await;
        let started = Instant::now();
        loop {
            let get = self.store.get(self.keys.token());
            match self.run(http, get).await {
                Ok(Some(v)) => {
                    if let Some((t, fresh)) =
                        decide::read_shared_token(&v, crate::unix_ms(), rejected.as_deref())
                    {
                        return SharedToken::Found(t, fresh);
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    self.warn("reading the shared token failed", &e);
                    return SharedToken::Refresh { locked: false };
                }
            }
            let lock = self.store.claim(
                self.keys.token_lock(),
                self.owner.clone(),
                self.config.token_lock_ttl,
            );
            match self.run(http, lock).await {
                Ok(None) => return SharedToken::Refresh { locked: true },
                Ok(Some(_)) if started.elapsed() < self.config.token_lock_ttl => {
                    http.sleep(self.config.poll_every).await;
                }
                // The holder took longer than its lock: refresh here.
                Ok(Some(_)) => return SharedToken::Refresh { locked: false },
                Err(e) => {
                    self.warn("taking the token lock failed", &e);
                    return SharedToken::Refresh { locked: false };
                }
            }
        }
    }

    /// The token lock, held by this replica until [`Held::done`] (dropped before: released by
    /// the next store use).
    pub(crate) fn token_lock_held(&self) -> Held<'_> {
        Held {
            state: self,
            key: self.keys.token_lock(),
            value: self.owner.clone(),
            done: false,
        }
    }

    /// After a refresh: publishes `value` ([`TokenCache::shareable`]) and releases the lock.
    ///
    /// [`TokenCache::shareable`]: dingtalk_core::auth::TokenCache::shareable
    pub(crate) async fn after_refresh<H: HttpClient>(
        &self,
        http: &H,
        value: Option<(String, Duration)>,
        locked: bool,
    ) {
        if let Some((value, ttl)) = value {
            let put = self.store.put(self.keys.token(), value, ttl);
            if let Err(e) = self.run(http, put).await {
                self.warn("publishing the shared token failed", &e);
            }
        }
        if locked {
            let release = self
                .store
                .release(self.keys.token_lock(), self.owner.clone());
            if let Err(e) = self.run(http, release).await {
                self.warn("releasing the token lock failed", &e);
            }
        }
    }
}
