//! AI cards over any runtime: the handle a producer (an LLM's token stream) writes to, and the
//! background task that runs [`dingtalk_core::aicard`]'s calls. Every decision (what to send,
//! when, how big, what a failure means) is the core's; this does the IO.
//!
//! ```text
//!   producer ── append/replace/set ──► machine (Mutex) ◄── poll / on_result ── pump task
//!                                          │                                    │
//!                 finish().await ◄── outcome + event                  ApiClient::call
//! ```
//!
//! The pump is spawned with [`HttpClient::spawn`] (a tokio task; a thread of its own on the
//! async-io stack), so writing never waits for DingTalk. Dropping the handle without
//! finishing fails the card (the pump sends the failed state); stopping the client fails every
//! open card and waits (bounded) for their final state.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use dingtalk_core::aicard::{
    AiCard as Machine, AiCardCall, AiCardError, AiCardOptions, AiCardOutcome, CallFailure, Step,
};
use dingtalk_core::api::card::CardSpace;
use dingtalk_core::error::ClientError;
use dingtalk_core::send::{Outgoing, Target};
use futures_util::future::select;

use crate::api::ApiClient;
use crate::runtime::HttpClient;

/// Where the text goes when the card cannot be created.
#[derive(Clone)]
pub(crate) enum FallbackTo {
    /// The message's session webhook (a credential: never logged).
    Webhook { url: String, expires_at_ms: i64 },
    /// The robot API, to the card's conversation.
    Robot,
}

struct CardShared {
    machine: Mutex<Machine>,
    /// The producer wrote, or the card ended.
    changed: event_listener::Event,
    /// The card is done ([`Machine::outcome`] is set).
    done: event_listener::Event,
    track: String,
}

impl CardShared {
    fn lock(&self) -> MutexGuard<'_, Machine> {
        self.machine.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The open AI cards of one API client (and its clones), to fail them when the client stops.
#[derive(Default)]
pub(crate) struct OpenCards {
    next: AtomicU64,
    cards: Mutex<HashMap<u64, Weak<CardShared>>>,
}

/// Most AI cards open at once on one client: each has a background task (a thread on the
/// async-io stack). Starting one more is a typed error.
pub const MAX_OPEN_CARDS: usize = 1024;

impl OpenCards {
    /// Registers `card`; `None` when [`MAX_OPEN_CARDS`] are open.
    fn add(&self, card: &Arc<CardShared>) -> Option<u64> {
        let mut cards = self.lock();
        cards.retain(|_, c| c.strong_count() > 0);
        if cards.len() >= MAX_OPEN_CARDS {
            return None;
        }
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        cards.insert(id, Arc::downgrade(card));
        Some(id)
    }

    fn remove(&self, id: u64) {
        self.lock().remove(&id);
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<u64, Weak<CardShared>>> {
        self.cards.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Fails every open card and waits until each is done or `within` has passed.
    pub(crate) async fn fail_all<H: HttpClient>(&self, reason: &str, http: &H, within: Duration) {
        let open: Vec<Arc<CardShared>> = self.lock().values().filter_map(Weak::upgrade).collect();
        if open.is_empty() {
            return;
        }
        tracing::info!(cards = open.len(), "closing the open AI cards as failed");
        let deadline = Instant::now() + within;
        for card in &open {
            card.lock().fail(reason);
            card.changed.notify(usize::MAX);
        }
        for card in open {
            loop {
                let listener = card.done.listen();
                if card.lock().outcome().is_some() {
                    break;
                }
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    tracing::warn!("an AI card was not closed before the stop timeout");
                    break;
                }
                let _ = select(listener, http.sleep(left)).await;
            }
        }
    }
}

/// An AI card being written: create it with [`ApiClient::ai_card`] or
/// [`BotContext::ai_card`](crate::BotContext::ai_card), write with [`append`](Self::append) or
/// [`replace`](Self::replace) (never waits), end with [`finish`](Self::finish) or
/// [`fail`](Self::fail). Dropped without either, the card is closed as failed.
pub struct AiCard {
    shared: Arc<CardShared>,
    ended: bool,
}

impl std::fmt::Debug for AiCard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AiCard")
            .field("out_track_id", &self.shared.track)
            .finish_non_exhaustive()
    }
}

impl AiCard {
    /// Creates the card (in the processing state) in `space` and returns once it is shown, or
    /// once it is known that it cannot be (then the text goes out as markdown at the end:
    /// [`AiCard::is_fallback`]). Only invalid options are an error.
    pub(crate) async fn start<H: HttpClient>(
        api: &ApiClient<H>,
        space: CardSpace,
        out_track_id: String,
        options: AiCardOptions,
        fallback: FallbackTo,
    ) -> Result<Self, ClientError> {
        let machine = Machine::new(
            space.clone(),
            out_track_id.clone(),
            options,
            Instant::now(),
            crate::client::seed(),
        )?;
        let shared = Arc::new(CardShared {
            machine: Mutex::new(machine),
            changed: event_listener::Event::new(),
            done: event_listener::Event::new(),
            track: out_track_id,
        });
        let Some(id) = api.open_cards().add(&shared) else {
            return Err(ClientError::Api(dingtalk_core::ApiError::validation(
                format!("{MAX_OPEN_CARDS} AI cards are open on this client: finish some first"),
            )));
        };
        let created = Arc::new(event_listener::Event::new());
        let started = api.http().spawn(Box::pin(pump(
            shared.clone(),
            api.clone(),
            space,
            fallback,
            id,
            created.clone(),
        )));
        if !started {
            api.open_cards().remove(id);
            return Err(ClientError::Transport(
                "could not start the AI card's background task".into(),
            ));
        }
        // The handle exists from here: dropped while waiting (a cancelled caller), it fails
        // the card, which the pump then closes, instead of leaving it processing.
        let card = Self {
            shared,
            ended: false,
        };
        let shared = &card.shared;
        // Until the first card exists (or will not).
        loop {
            let listener = created.listen();
            {
                let m = shared.lock();
                if m.track_ids().is_empty()
                    || m.is_fallback()
                    || m.outcome().is_some()
                    || m.created_cards() > 0
                {
                    break;
                }
            }
            listener.await;
        }
        Ok(card)
    }

    /// The first card's `outTrackId`.
    pub fn out_track_id(&self) -> &str {
        &self.shared.track
    }

    /// Whether the card could not be created and the text goes out as one markdown message
    /// when it ends.
    pub fn is_fallback(&self) -> bool {
        self.shared.lock().is_fallback()
    }

    /// The text so far.
    pub fn text(&self) -> String {
        self.shared.lock().text().to_owned()
    }

    /// Appends to the text; sent within the card's update interval. Never waits.
    pub fn append(&self, text: &str) -> Result<(), AiCardError> {
        self.write(|m| m.append(text))
    }

    /// Replaces the whole text. Never waits.
    pub fn replace(&self, text: &str) -> Result<(), AiCardError> {
        self.write(|m| m.replace(text))
    }

    /// Sets another card variable (title, progress, an image's media id). Never waits.
    pub fn set(&self, key: &str, value: &str) -> Result<(), AiCardError> {
        self.write(|m| m.set(key, value))
    }

    fn write(
        &self,
        f: impl FnOnce(&mut Machine) -> Result<(), AiCardError>,
    ) -> Result<(), AiCardError> {
        f(&mut self.shared.lock())?;
        self.shared.changed.notify(1);
        Ok(())
    }

    /// Sends the last text, closes the card as finished, and returns how it ended.
    pub async fn finish(mut self) -> AiCardOutcome {
        self.end(|m| m.finish()).await
    }

    /// Sends the text so far, closes the card as failed (with `reason` in the logs, and the
    /// options' failure note on the card), and returns how it ended.
    pub async fn fail(mut self, reason: &str) -> AiCardOutcome {
        self.end(|m| m.fail(reason)).await
    }

    async fn end(&mut self, f: impl FnOnce(&mut Machine)) -> AiCardOutcome {
        self.ended = true;
        f(&mut self.shared.lock());
        self.shared.changed.notify(1);
        loop {
            let listener = self.shared.done.listen();
            if let Some(o) = self.shared.lock().outcome() {
                return o.clone();
            }
            listener.await;
        }
    }
}

impl Drop for AiCard {
    fn drop(&mut self) {
        if !self.ended {
            // The pump owns the rest: it sends the failed state.
            self.shared
                .lock()
                .fail("the AI card was dropped before it was finished");
            self.shared.changed.notify(1);
        }
    }
}

/// Runs the machine's calls until the card is done.
async fn pump<H: HttpClient>(
    shared: Arc<CardShared>,
    api: ApiClient<H>,
    space: CardSpace,
    fallback: FallbackTo,
    id: u64,
    created: Arc<event_listener::Event>,
) {
    let track = shared.track.clone();
    let store = api.shared_state().cloned();
    // The card shown now, and when its entry in the shared store is renewed next.
    let mut live: Option<String> = None;
    let mut renew_at = Instant::now();
    loop {
        let listener = shared.changed.listen();
        let step = shared.lock().poll(Instant::now());
        match step {
            Step::Call(call) => {
                let creating = match &call {
                    AiCardCall::Create(c) => Some(c.card.out_track_id.clone()),
                    _ => None,
                };
                let result = execute(&api, call, &space, &fallback).await;
                if let Err(e) = &result {
                    tracing::warn!(out_track_id = %track, error = %e.error, retryable = e.retryable, "an AI card call failed");
                }
                let ok = result.is_ok();
                shared.lock().on_result(Instant::now(), result);
                created.notify(usize::MAX);
                if let (true, Some(new), Some(store)) = (ok, creating, &store) {
                    // Recorded, so a replica can close it if this process dies.
                    store.card_open(api.http(), &new).await;
                    if let Some(old) = live.replace(new) {
                        store.card_closed(api.http(), &old).await;
                    }
                    renew_at =
                        Instant::now() + dingtalk_core::store::ai_card_renew_every(&store.config);
                    sweep(&api, false).await;
                }
            }
            Step::Wait(at) => {
                let now = Instant::now();
                if let (Some(store), Some(t)) = (&store, &live) {
                    if now >= renew_at {
                        store.card_open(api.http(), t).await;
                        renew_at = Instant::now()
                            + dingtalk_core::store::ai_card_renew_every(&store.config);
                        continue;
                    }
                }
                let until = if live.is_some() { at.min(renew_at) } else { at };
                let wait = until.saturating_duration_since(now);
                if !wait.is_zero() {
                    let _ = select(listener, api.http().sleep(wait)).await;
                }
            }
            Step::Busy => {
                // Only this task makes calls; a result is always reported before the next poll.
                tracing::error!("AI card pump polled while busy");
                return;
            }
            Step::Done(outcome) => {
                match &outcome {
                    AiCardOutcome::Finished { .. } => {
                        tracing::debug!(out_track_id = %track, "AI card finished")
                    }
                    AiCardOutcome::Failed { reason } => {
                        tracing::info!(out_track_id = %track, %reason, "AI card closed as failed")
                    }
                    AiCardOutcome::FellBack { reason, .. } => {
                        tracing::warn!(out_track_id = %track, %reason, "AI card could not be created; sent as markdown")
                    }
                    AiCardOutcome::Abandoned { reason } => {
                        tracing::error!(out_track_id = %track, %reason, "AI card's final state could not be sent")
                    }
                }
                metrics::counter!(
                    "dingtalk_ai_cards_total",
                    "app" => api.robot_code().to_owned(),
                    "outcome" => match outcome {
                        AiCardOutcome::Finished { .. } => "finished",
                        AiCardOutcome::Failed { .. } => "failed",
                        AiCardOutcome::FellBack { .. } => "fell_back",
                        AiCardOutcome::Abandoned { .. } => "abandoned",
                    },
                )
                .increment(1);
                if let (Some(store), Some(t)) = (&store, &live) {
                    store.card_closed(api.http(), t).await;
                }
                api.open_cards().remove(id);
                created.notify(usize::MAX);
                shared.done.notify(usize::MAX);
                return;
            }
        }
    }
}

/// Closes, as failed, the AI cards that replicas which are gone left open (their entries in the
/// shared store expired): each is taken by one replica only. Without a shared store, nothing.
/// At most once per [`AI_CARD_SWEEP_EVERY`](dingtalk_core::store::AI_CARD_SWEEP_EVERY) unless
/// `force`.
pub(crate) async fn sweep<H: HttpClient>(api: &ApiClient<H>, force: bool) {
    let Some(store) = api.shared_state() else {
        return;
    };
    for track in store.abandoned_cards(api.http(), force).await {
        let call = dingtalk_core::api::card::UpdateCard {
            out_track_id: track.clone(),
            card_data: Some(dingtalk_core::model::CardParamMap::default().with(
                dingtalk_core::aicard::FLOW_STATUS_KEY,
                dingtalk_core::aicard::FlowStatus::Failed.as_str(),
            )),
            private_data: Default::default(),
            options: Some(dingtalk_core::model::CardUpdateOptions {
                update_card_data_by_key: true,
                update_private_data_by_key: false,
            }),
        };
        match api.call(&call).await {
            Ok(_) => {
                tracing::info!(out_track_id = %track, "closed an AI card a stopped replica left open")
            }
            Err(e) => {
                tracing::warn!(out_track_id = %track, error = %e, "could not close an AI card a stopped replica left open")
            }
        }
    }
}

/// The sweeps at a client's start: one at once, one when the leases of a process that died just
/// before have surely run out.
pub(crate) fn sweep_at_start<H: HttpClient>(api: &ApiClient<H>) {
    let Some(store) = api.shared_state() else {
        return;
    };
    let again = dingtalk_core::store::ai_card_second_sweep(&store.config);
    let api = api.clone();
    let http = api.http().clone();
    // Not started (no thread): the next card start sweeps instead.
    let _ = http.spawn(Box::pin(async move {
        sweep(&api, true).await;
        api.http().sleep(again).await;
        sweep(&api, true).await;
    }));
}

fn failure(e: &ClientError) -> CallFailure {
    match e {
        ClientError::Api(e) => CallFailure::from_api(e),
        ClientError::Transport(t) => CallFailure::transport(t.clone()),
        other => CallFailure {
            retryable: false,
            error: other.to_string(),
        },
    }
}

async fn execute<H: HttpClient>(
    api: &ApiClient<H>,
    call: AiCardCall,
    space: &CardSpace,
    fallback: &FallbackTo,
) -> Result<(), CallFailure> {
    let result = match call {
        AiCardCall::Create(c) => api.call(&c).await.map(|_| ()),
        AiCardCall::Update(c) => api.call(&c).await.map(|_| ()),
        AiCardCall::Stream(c) => api.call(&c).await.map(|_| ()),
        AiCardCall::Fallback { title, markdown } => {
            let target = match (fallback, space) {
                (FallbackTo::Webhook { url, expires_at_ms }, _)
                    if *expires_at_ms > crate::unix_ms() =>
                {
                    Target::SessionWebhook {
                        url: url.clone(),
                        expires_at_ms: Some(*expires_at_ms),
                    }
                }
                (
                    _,
                    CardSpace::Group {
                        open_conversation_id,
                        ..
                    },
                ) => Target::Group {
                    open_conversation_id: open_conversation_id.clone(),
                },
                (_, CardSpace::Robot { user_id, .. }) => Target::User {
                    user_id: user_id.clone(),
                },
            };
            api.send(target, Outgoing::markdown(title, markdown)).await
        }
    };
    result.map_err(|e| failure(&e))
}
