//! AI cards (how LLM bots answer in DingTalk), as a sans-IO state machine: what to call next,
//! when, and what each result means. The driver runs the calls; this module decides them.
//!
//! A card goes through DingTalk's `flowStatus` values (reference/stream-protocol.md §6.5,
//! reference/openapi.md §7.3): created and delivered at once in the processing state (`1`),
//! switched to inputing (`2`) before its first text, streamed with `PUT /v1.0/card/streaming`,
//! and closed as finished (`3`) or failed (`5`) through the card-instance update, which also
//! carries the other card variables (title, progress, an image's media id).
//!
//! What the machine guarantees:
//! * **Coalescing, latest wins.** The producer appends or replaces text as fast as it likes;
//!   at most one call is in flight, streaming calls are at least
//!   [`AiCardOptions::min_interval`] apart, and each one sends the text as it is when the call
//!   is made, so a slow call is never followed by an older snapshot, and the last text is always
//!   sent.
//! * **Size limits.** A streaming call carries at most [`AiCardOptions::max_update_bytes`]
//!   (DingTalk: 1 KB, `param.stream.content` "content is too large" otherwise). In
//!   [`StreamMode::Full`] (required for markdown variables) each call carries the card's whole
//!   text, so a text longer than the limit continues in a new card (`<outTrackId>-2`, …),
//!   split at a paragraph break (else a line break) where there is one; the earlier card is
//!   closed as finished. In
//!   [`StreamMode::Append`] long additions go in several calls, and a card holds at most
//!   [`AiCardOptions::max_card_bytes`] (DingTalk recommends 3 KB) before the text continues
//!   in a new card. The whole text is bounded by [`AiCardOptions::max_total_bytes`].
//! * **A fresh `guid` per call**, from the seeded generator the caller gives.
//! * **Retries.** A retryable failure (transport, rate limit, busy) is retried with backoff,
//!   with the latest text; [`AiCardOptions::max_attempts`] bounds the attempts per call.
//! * **Never left spinning.** [`AiCard::fail`] (the driver calls it when the handle is dropped,
//!   the producer errors, or the client stops) and the [`AiCardOptions::max_duration`] deadline
//!   close the card as failed with the text so far (plus [`AiCardOptions::failure_note`]). A
//!   card the machine cannot update any more is still sent its failed state once.
//! * **Fallback.** When the card cannot be created (template missing, no permission), the text
//!   is sent once at the end as one markdown message ([`AiCardCall::Fallback`]); the driver
//!   sends it through the message's session webhook or the robot API.
//! * **Markdown.** In full mode the text is converted with [`crate::markdown::to_dingtalk`]
//!   unless [`AiCardOptions::convert_markdown`] is off.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use dingtalk_core::aicard::{AiCard, AiCardCall, AiCardOptions, Step};
//! use dingtalk_core::api::card::CardSpace;
//!
//! let space = CardSpace::Robot { user_id: "user1".into(), robot_code: Some("bot".into()) };
//! let now = Instant::now();
//! let mut card = AiCard::new(space, "answer-1", AiCardOptions::default(), now, 7).unwrap();
//! // First: create and deliver the card in the processing state.
//! let Step::Call(AiCardCall::Create(create)) = card.poll(now) else { panic!() };
//! assert_eq!(create.card.card_data.card_param_map["flowStatus"], "1");
//! card.on_result(now, Ok(()));
//! card.append("Hello").unwrap();
//! // Then the inputing state, then the text.
//! let Step::Call(AiCardCall::Update(_)) = card.poll(now) else { panic!() };
//! card.on_result(now, Ok(()));
//! let Step::Call(AiCardCall::Stream(s)) = card.poll(now) else { panic!() };
//! assert_eq!((s.content.as_str(), s.is_full), ("Hello", true));
//! ```

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::api::card::{CardContent, CardSpace, CreateAndDeliver, StreamingUpdate, UpdateCard};
use crate::error::ApiError;
use crate::model::{CardParamMap, CardUpdateOptions};

/// DingTalk's built-in AI markdown card template (the Python SDK's
/// `AIMarkdownCardInstance`), streamed through [`CONTENT_KEY`].
pub const AI_MARKDOWN_TEMPLATE: &str = "382e4302-551d-4880-bf29-a30acfab2e71.schema";

/// The variable the built-in template streams.
pub const CONTENT_KEY: &str = "msgContent";

/// The card variable holding the state.
pub const FLOW_STATUS_KEY: &str = "flowStatus";

/// DingTalk's limit of one streaming call's `content`.
pub const MAX_UPDATE_BYTES: usize = 1024;

/// An AI card's state (`flowStatus`, sent as the strings `"1"` … `"5"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlowStatus {
    /// `1`: shown at once, before any text ("thinking").
    Processing,
    /// `2`: text is streaming.
    Inputing,
    /// `3`: done.
    Finished,
    /// `4`: executing (a tool call, in templates that show it).
    Executing,
    /// `5`: failed.
    Failed,
}

impl FlowStatus {
    /// The value DingTalk expects.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Processing => "1",
            Self::Inputing => "2",
            Self::Finished => "3",
            Self::Executing => "4",
            Self::Failed => "5",
        }
    }
}

/// How the streamed variable is updated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StreamMode {
    /// Each call replaces the variable with the whole text (`isFull: true`); required for
    /// markdown variables.
    #[default]
    Full,
    /// Each call appends what is new (`isFull: false`); for plain-text variables.
    Append,
}

/// How an AI card looks and streams. `Default` is the built-in markdown template.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AiCardOptions {
    /// `cardTemplateId` ([`AI_MARKDOWN_TEMPLATE`]).
    pub template_id: String,
    /// The streamed variable ([`CONTENT_KEY`]).
    pub content_key: String,
    /// Other variables the card starts with (a title, a logo's media id).
    pub card_data: CardParamMap,
    /// Full (default) or append updates.
    pub mode: StreamMode,
    /// Convert the text with [`crate::markdown::to_dingtalk`] (full mode only; default on).
    pub convert_markdown: bool,
    /// Least time between two streaming calls (300 ms).
    pub min_interval: Duration,
    /// Largest `content` of one streaming call ([`MAX_UPDATE_BYTES`]).
    pub max_update_bytes: usize,
    /// Largest text of one card in append mode (3 KB, DingTalk's recommendation); in full mode
    /// a card holds at most `max_update_bytes`.
    pub max_card_bytes: usize,
    /// Largest whole text (64 KiB); more is refused with [`AiCardError::TooLong`].
    pub max_total_bytes: usize,
    /// The card is failed when it is not finished this long after it started (10 min).
    pub max_duration: Duration,
    /// Attempts of one call before giving up on it (3).
    pub max_attempts: u32,
    /// Appended to the text when the card fails (none by default: the failed state shows).
    pub failure_note: Option<String>,
    /// Send the text as one markdown message when the card cannot be created (default on).
    pub fallback: bool,
    /// The title of that markdown message (its notification text).
    pub fallback_title: String,
}

impl Default for AiCardOptions {
    fn default() -> Self {
        Self {
            template_id: AI_MARKDOWN_TEMPLATE.to_owned(),
            content_key: CONTENT_KEY.to_owned(),
            card_data: CardParamMap::default(),
            mode: StreamMode::Full,
            convert_markdown: true,
            min_interval: Duration::from_millis(300),
            max_update_bytes: MAX_UPDATE_BYTES,
            max_card_bytes: 3 * 1024,
            max_total_bytes: 64 * 1024,
            max_duration: Duration::from_secs(600),
            max_attempts: 3,
            failure_note: None,
            fallback: true,
            fallback_title: "AI".to_owned(),
        }
    }
}

impl AiCardOptions {
    /// A custom template streaming `content_key`.
    pub fn template(template_id: impl Into<String>, content_key: impl Into<String>) -> Self {
        Self {
            template_id: template_id.into(),
            content_key: content_key.into(),
            ..Self::default()
        }
    }

    /// With this starting variable.
    #[must_use]
    pub fn with_data(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.card_data = self.card_data.with(key, value);
        self
    }

    /// With this update mode.
    #[must_use]
    pub fn mode(mut self, mode: StreamMode) -> Self {
        self.mode = mode;
        self
    }

    /// With this least time between streaming calls.
    #[must_use]
    pub fn min_interval(mut self, interval: Duration) -> Self {
        self.min_interval = interval;
        self
    }

    /// With this deadline.
    #[must_use]
    pub fn max_duration(mut self, d: Duration) -> Self {
        self.max_duration = d;
        self
    }

    /// With this note appended on failure.
    #[must_use]
    pub fn failure_note(mut self, note: impl Into<String>) -> Self {
        self.failure_note = Some(note.into());
        self
    }

    /// With or without the markdown fallback.
    #[must_use]
    pub fn fallback(mut self, on: bool) -> Self {
        self.fallback = on;
        self
    }

    fn validate(&self) -> Result<(), ApiError> {
        if self.template_id.trim().is_empty() || self.content_key.trim().is_empty() {
            return Err(ApiError::validation(
                "an AI card needs a template id and a content key",
            ));
        }
        if self.content_key == FLOW_STATUS_KEY {
            return Err(ApiError::validation(
                "`flowStatus` is the card's state, not a content key",
            ));
        }
        // Room for one multi-byte character per call.
        if self.max_update_bytes < 8 || self.max_card_bytes < self.max_update_bytes {
            return Err(ApiError::validation(
                "max_update_bytes must be at least 8 and at most max_card_bytes",
            ));
        }
        if self.max_attempts == 0 {
            return Err(ApiError::validation("max_attempts must be at least 1"));
        }
        Ok(())
    }

    fn card_limit(&self) -> usize {
        match self.mode {
            StreamMode::Full => self.max_update_bytes,
            StreamMode::Append => self.max_card_bytes,
        }
    }
}

/// A producer's input the card refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AiCardError {
    /// The card was finished or failed already.
    #[error("the AI card has ended")]
    Ended,
    /// The text would exceed [`AiCardOptions::max_total_bytes`]; nothing was added.
    #[error("the AI card's text would exceed {limit} bytes")]
    TooLong {
        /// The limit.
        limit: usize,
    },
    /// `flowStatus` and the content key are the machine's to set.
    #[error("`{0}` is set by the AI card itself")]
    ReservedKey(String),
}

/// Why a call failed, as far as the machine cares.
#[derive(Debug, Clone, PartialEq)]
pub struct CallFailure {
    /// Worth trying again (transport, rate limit, busy).
    pub retryable: bool,
    /// What went wrong (no secret: it is logged and reported).
    pub error: String,
}

impl CallFailure {
    /// A failure classified from an API error.
    pub fn from_api(e: &ApiError) -> Self {
        Self {
            retryable: e.is_retryable(),
            error: e.to_string(),
        }
    }

    /// A transport failure (retryable).
    pub fn transport(error: impl Into<String>) -> Self {
        Self {
            retryable: true,
            error: error.into(),
        }
    }
}

/// One call the driver makes next.
#[derive(Debug, Clone, PartialEq)]
pub enum AiCardCall {
    /// Create and deliver a card.
    Create(CreateAndDeliver),
    /// Update card variables (state, title, …), merged by key.
    Update(UpdateCard),
    /// Stream the text.
    Stream(StreamingUpdate),
    /// The card could not be created: send this text as one markdown message instead.
    Fallback {
        /// The message's title.
        title: String,
        /// The text (the part not shown in a card).
        markdown: String,
    },
}

/// What the driver does next.
#[derive(Debug, Clone, PartialEq)]
#[allow(clippy::large_enum_variant)] // one at a time, moved straight into the call
pub enum Step {
    /// Make this call, then report its result to [`AiCard::on_result`].
    Call(AiCardCall),
    /// Nothing to do before this instant (or before new input).
    Wait(Instant),
    /// A call is in flight; wait for its result.
    Busy,
    /// The card is done.
    Done(AiCardOutcome),
}

/// How an AI card ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AiCardOutcome {
    /// Finished, its whole text shown (in `cards` cards).
    Finished {
        /// Cards used (more than one when the text continued).
        cards: usize,
    },
    /// Closed as failed: [`AiCard::fail`], the deadline, or a call that could not be made.
    Failed {
        /// Why.
        reason: String,
    },
    /// The card could not be created and the text went out as markdown instead.
    FellBack {
        /// Why the card could not be created.
        reason: String,
        /// Whether the producer finished (`false`: it failed).
        finished: bool,
    },
    /// Even the final state (or the fallback message) could not be sent.
    Abandoned {
        /// The last error.
        reason: String,
    },
}

/// How long after the deadline the machine stops trying to send the failed state.
const GIVE_UP_AFTER: Duration = Duration::from_secs(60);
/// Longest pause before retrying a failed call.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, PartialEq, Eq)]
enum End {
    Finish,
    Fail(String),
}

#[derive(Debug, Default)]
struct Seg {
    track: String,
    created: bool,
    inputing: bool,
    /// The text the server shows, as far as we know.
    shown: String,
    stream_finalized: bool,
    status_final: bool,
    /// A call failed for good: only its final state is still tried, once.
    broken: bool,
}

#[derive(Debug)]
enum Pending {
    Create(usize),
    Inputing(usize),
    Vars(usize, u64),
    Stream {
        seg: usize,
        shown: String,
        finalize: bool,
    },
    Final(usize),
    Fallback,
}

/// One AI card's streaming state (see the [module docs](self)).
#[derive(Debug)]
pub struct AiCard {
    opts: AiCardOptions,
    space: CardSpace,
    base_track: String,
    rng: fastrand::Rng,
    raw: String,
    vars: BTreeMap<String, String>,
    vars_version: u64,
    vars_sent: u64,
    segs: Vec<Seg>,
    end: Option<End>,
    /// The card could not be created: the text from this byte (of the rendered text) goes out
    /// as markdown, with the reason.
    fallback: Option<(usize, String)>,
    /// A card could not be created (and there is no fallback): no more cards than this.
    cap: Option<usize>,
    in_flight: Option<Pending>,
    last_stream_at: Option<Instant>,
    retry_at: Option<Instant>,
    attempts: u32,
    deadline: Instant,
    give_up_at: Instant,
    outcome: Option<AiCardOutcome>,
    last_error: Option<String>,
}

impl AiCard {
    /// A card for `space` with id `out_track_id` (continuation cards get `-2`, `-3`, … after
    /// it), started at `now`; `seed` seeds the `guid` generator.
    pub fn new(
        space: CardSpace,
        out_track_id: impl Into<String>,
        opts: AiCardOptions,
        now: Instant,
        seed: u64,
    ) -> Result<Self, ApiError> {
        opts.validate()?;
        let base_track = out_track_id.into();
        crate::api::require("outTrackId", &base_track)?;
        let deadline = now
            .checked_add(opts.max_duration)
            .unwrap_or_else(|| now + Duration::from_secs(86_400 * 365));
        Ok(Self {
            segs: vec![Seg {
                track: base_track.clone(),
                ..Seg::default()
            }],
            opts,
            space,
            base_track,
            rng: fastrand::Rng::with_seed(seed),
            raw: String::new(),
            vars: BTreeMap::new(),
            vars_version: 0,
            vars_sent: 0,
            end: None,
            fallback: None,
            cap: None,
            in_flight: None,
            last_stream_at: None,
            retry_at: None,
            attempts: 0,
            give_up_at: deadline.checked_add(GIVE_UP_AFTER).unwrap_or(deadline),
            deadline,
            outcome: None,
            last_error: None,
        })
    }

    /// The text so far, as the producer wrote it.
    pub fn text(&self) -> &str {
        &self.raw
    }

    /// The `outTrackId`s of the cards used so far.
    pub fn track_ids(&self) -> Vec<String> {
        self.segs.iter().map(|s| s.track.clone()).collect()
    }

    /// How many cards exist (created and delivered) so far.
    pub fn created_cards(&self) -> usize {
        self.segs.iter().filter(|s| s.created).count()
    }

    /// Whether the card could not be created and the text goes out as markdown instead.
    pub fn is_fallback(&self) -> bool {
        self.fallback.is_some()
    }

    /// Whether [`AiCard::finish`] or [`AiCard::fail`] was called (or the deadline passed).
    pub fn has_ended(&self) -> bool {
        self.end.is_some()
    }

    /// How it ended, once it has.
    pub fn outcome(&self) -> Option<&AiCardOutcome> {
        self.outcome.as_ref()
    }

    /// Appends to the text.
    pub fn append(&mut self, text: &str) -> Result<(), AiCardError> {
        self.writable()?;
        if self.raw.len().saturating_add(text.len()) > self.opts.max_total_bytes {
            return Err(AiCardError::TooLong {
                limit: self.opts.max_total_bytes,
            });
        }
        self.raw.push_str(text);
        Ok(())
    }

    /// Replaces the whole text.
    pub fn replace(&mut self, text: &str) -> Result<(), AiCardError> {
        self.writable()?;
        if text.len() > self.opts.max_total_bytes {
            return Err(AiCardError::TooLong {
                limit: self.opts.max_total_bytes,
            });
        }
        text.clone_into(&mut self.raw);
        Ok(())
    }

    /// Sets another card variable (title, progress, an image's media id), sent through the
    /// card-instance update (merged by key) next to the streamed text.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), AiCardError> {
        self.writable()?;
        if key == FLOW_STATUS_KEY || key == self.opts.content_key {
            return Err(AiCardError::ReservedKey(key.to_owned()));
        }
        if self.vars.len() >= 64 && !self.vars.contains_key(key) {
            return Err(AiCardError::TooLong { limit: 64 });
        }
        self.vars.insert(key.to_owned(), value.to_owned());
        self.vars_version += 1;
        Ok(())
    }

    /// The producer is done: the last text is sent and the card closed as finished.
    pub fn finish(&mut self) {
        if self.end.is_none() {
            self.end = Some(End::Finish);
        }
    }

    /// The producer failed (or was dropped, or the client stops): the text so far is sent and
    /// the card closed as failed. No effect once ended.
    pub fn fail(&mut self, reason: &str) {
        if self.end.is_none() {
            self.end = Some(End::Fail(reason.to_owned()));
        }
    }

    fn writable(&self) -> Result<(), AiCardError> {
        if self.end.is_some() {
            Err(AiCardError::Ended)
        } else {
            Ok(())
        }
    }

    fn failing(&self) -> bool {
        matches!(self.end, Some(End::Fail(_)))
    }

    /// The text as the cards show it: converted, with the failure note.
    fn rendered(&self) -> String {
        let mut text = match self.opts.mode {
            StreamMode::Full if self.opts.convert_markdown => {
                crate::markdown::to_dingtalk(&self.raw)
            }
            _ => self.raw.clone(),
        };
        if let (true, Some(note)) = (self.failing(), &self.opts.failure_note) {
            text.push_str(note);
        }
        text
    }

    fn guid(&mut self) -> String {
        format!("{:016x}{:016x}", self.rng.u64(..), self.rng.u64(..))
    }

    fn track(&self, i: usize) -> String {
        if i == 0 {
            self.base_track.clone()
        } else {
            format!("{}-{}", self.base_track, i + 1)
        }
    }

    /// The next thing to do at `now`.
    pub fn poll(&mut self, now: Instant) -> Step {
        if let Some(o) = &self.outcome {
            return Step::Done(o.clone());
        }
        if self.in_flight.is_some() {
            return Step::Busy;
        }
        if self.end.is_none() && now >= self.deadline {
            self.end = Some(End::Fail("the AI card timed out".to_owned()));
        }
        if now >= self.give_up_at {
            return self.done(AiCardOutcome::Abandoned {
                reason: self
                    .last_error
                    .clone()
                    .unwrap_or_else(|| "the final state could not be sent in time".to_owned()),
            });
        }
        if let Some(at) = self.retry_at {
            if now < at {
                return Step::Wait(at);
            }
            self.retry_at = None;
        }
        let text = self.rendered();
        if let Some((from, reason)) = self.fallback.clone() {
            let Some(end) = &self.end else {
                return Step::Wait(self.deadline);
            };
            let finished = *end == End::Finish;
            let markdown = text.get(from..).unwrap_or_default().trim().to_owned();
            if markdown.is_empty() {
                return self.done(AiCardOutcome::FellBack { reason, finished });
            }
            self.in_flight = Some(Pending::Fallback);
            return Step::Call(AiCardCall::Fallback {
                title: self.opts.fallback_title.clone(),
                markdown,
            });
        }
        let ranges = split(&text, self.opts.card_limit());
        while self.segs.len() < ranges.len() && self.cap.is_none_or(|c| self.segs.len() < c) {
            let track = self.track(self.segs.len());
            self.segs.push(Seg {
                track,
                ..Seg::default()
            });
        }
        let Some(last) = self.segs.len().checked_sub(1) else {
            let reason = self.last_error.clone().unwrap_or_default();
            return self.done(AiCardOutcome::Failed { reason });
        };
        let mut wake = self.deadline;
        for i in 0..self.segs.len() {
            let desired = ranges
                .get(i)
                .and_then(|r| text.get(r.clone()))
                .unwrap_or_default();
            let closing = i < last || self.end.is_some();
            let seg = &self.segs[i];
            if !seg.created {
                self.in_flight = Some(Pending::Create(i));
                return Step::Call(AiCardCall::Create(self.create_call(i)));
            }
            if !seg.broken {
                if !desired.is_empty() && !seg.inputing {
                    self.in_flight = Some(Pending::Inputing(i));
                    return Step::Call(AiCardCall::Update(self.update_call(
                        i,
                        Some(FlowStatus::Inputing),
                        false,
                    )));
                }
                if i == last && self.vars_sent != self.vars_version {
                    let version = self.vars_version;
                    self.in_flight = Some(Pending::Vars(i, version));
                    return Step::Call(AiCardCall::Update(self.update_call(i, None, true)));
                }
                let must_finalize = closing && !seg.stream_finalized && !desired.is_empty();
                if seg.shown != desired && !desired.is_empty() || must_finalize {
                    if let Some(at) = self
                        .last_stream_at
                        .and_then(|t| t.checked_add(self.opts.min_interval))
                        .filter(|at| now < *at)
                    {
                        wake = wake.min(at);
                        // Calls are made in order: nothing later overtakes this one.
                        return Step::Wait(wake);
                    }
                    if let Some(call) = self.stream_call(i, desired, closing) {
                        return Step::Call(AiCardCall::Stream(call));
                    }
                }
            }
            let seg = &self.segs[i];
            if closing && !seg.status_final {
                self.in_flight = Some(Pending::Final(i));
                let status = if i == last && self.failing() {
                    FlowStatus::Failed
                } else {
                    FlowStatus::Finished
                };
                let with_vars = i == last;
                return Step::Call(AiCardCall::Update(self.update_call(
                    i,
                    Some(status),
                    with_vars,
                )));
            }
        }
        match &self.end {
            Some(End::Finish) if self.last_error.is_none() => self.done(AiCardOutcome::Finished {
                cards: self.segs.len(),
            }),
            Some(End::Fail(reason)) => {
                let reason = reason.clone();
                self.done(AiCardOutcome::Failed { reason })
            }
            Some(End::Finish) => {
                let reason = self.last_error.clone().unwrap_or_default();
                self.done(AiCardOutcome::Failed { reason })
            }
            None => Step::Wait(wake),
        }
    }

    fn done(&mut self, outcome: AiCardOutcome) -> Step {
        self.outcome = Some(outcome.clone());
        Step::Done(outcome)
    }

    fn create_call(&self, i: usize) -> CreateAndDeliver {
        let mut data = self.opts.card_data.clone();
        for (k, v) in &self.vars {
            data = data.with(k.clone(), v.clone());
        }
        data = data
            .with(FLOW_STATUS_KEY, FlowStatus::Processing.as_str())
            .with(self.opts.content_key.clone(), "");
        CreateAndDeliver {
            card: CardContent::new(
                self.opts.template_id.clone(),
                self.segs[i].track.clone(),
                data,
            ),
            space: self.space.clone(),
        }
    }

    fn update_call(&self, i: usize, status: Option<FlowStatus>, with_vars: bool) -> UpdateCard {
        let mut data = CardParamMap::default();
        if with_vars {
            for (k, v) in &self.vars {
                data = data.with(k.clone(), v.clone());
            }
        }
        if let Some(s) = status {
            data = data.with(FLOW_STATUS_KEY, s.as_str());
        }
        UpdateCard {
            out_track_id: self.segs[i].track.clone(),
            card_data: Some(data),
            private_data: BTreeMap::new(),
            options: Some(CardUpdateOptions {
                update_card_data_by_key: true,
                update_private_data_by_key: false,
            }),
        }
    }

    /// The streaming call that brings card `i` from what it shows towards `desired`; `None`
    /// when nothing can be sent (append mode, finalizing a card whose text is too long to
    /// resend whole: its final state says it is done).
    fn stream_call(&mut self, i: usize, desired: &str, closing: bool) -> Option<StreamingUpdate> {
        let max = self.opts.max_update_bytes;
        let shown = &self.segs[i].shown;
        let (content, is_full, next_shown) = match self.opts.mode {
            StreamMode::Full => (desired.to_owned(), true, desired.to_owned()),
            StreamMode::Append if desired.starts_with(shown.as_str()) && shown != desired => {
                let rest = &desired[shown.len()..];
                let chunk = &rest[..floor_char(rest, max)];
                (chunk.to_owned(), false, format!("{shown}{chunk}"))
            }
            StreamMode::Append if shown == desired => {
                if desired.len() > max {
                    self.segs[i].stream_finalized = true;
                    return None;
                }
                (desired.to_owned(), true, desired.to_owned())
            }
            StreamMode::Append => {
                let chunk = &desired[..floor_char(desired, max)];
                (chunk.to_owned(), true, chunk.to_owned())
            }
        };
        let finalize = closing && next_shown == desired;
        let failing = self.failing() && i + 1 == self.segs.len();
        let guid = self.guid();
        self.in_flight = Some(Pending::Stream {
            seg: i,
            shown: next_shown,
            finalize,
        });
        Some(StreamingUpdate {
            out_track_id: self.segs[i].track.clone(),
            guid,
            key: self.opts.content_key.clone(),
            content,
            is_full,
            is_finalize: finalize,
            is_error: finalize && failing,
        })
    }

    /// The result of the call [`AiCard::poll`] returned last.
    pub fn on_result(&mut self, now: Instant, result: Result<(), CallFailure>) {
        let Some(pending) = self.in_flight.take() else {
            return;
        };
        if matches!(pending, Pending::Stream { .. }) {
            self.last_stream_at = Some(now);
        }
        match result {
            Ok(()) => {
                self.attempts = 0;
                match pending {
                    Pending::Create(i) => self.segs[i].created = true,
                    Pending::Inputing(i) => self.segs[i].inputing = true,
                    Pending::Vars(_, version) => self.vars_sent = version,
                    Pending::Stream {
                        seg,
                        shown,
                        finalize,
                    } => {
                        self.segs[seg].shown = shown;
                        self.segs[seg].stream_finalized |= finalize;
                    }
                    Pending::Final(i) => {
                        self.segs[i].status_final = true;
                        if i + 1 == self.segs.len() {
                            self.vars_sent = self.vars_version;
                        }
                    }
                    Pending::Fallback => {
                        let (reason, _) = self.fallback_reason();
                        let finished = self.end == Some(End::Finish);
                        self.outcome = Some(AiCardOutcome::FellBack { reason, finished });
                    }
                }
            }
            Err(failure) => {
                self.last_error = Some(failure.error.clone());
                self.attempts += 1;
                if failure.retryable && self.attempts < self.opts.max_attempts {
                    let base = self.opts.min_interval.max(Duration::from_millis(100));
                    let backoff = base
                        .saturating_mul(1 << self.attempts.min(16))
                        .min(MAX_BACKOFF);
                    self.retry_at = now.checked_add(backoff);
                    return;
                }
                self.attempts = 0;
                self.gave_up(pending, failure.error);
            }
        }
    }

    fn fallback_reason(&self) -> (String, usize) {
        self.fallback
            .as_ref()
            .map(|(from, r)| (r.clone(), *from))
            .unwrap_or_default()
    }

    /// A call failed for good.
    fn gave_up(&mut self, pending: Pending, error: String) {
        match pending {
            Pending::Create(i) => {
                if self.opts.fallback {
                    // What earlier cards show stays; the rest goes out as markdown.
                    let from: usize = self.segs[..i].iter().map(|s| s.shown.len()).sum();
                    self.segs.truncate(i);
                    self.fallback = Some((from, error));
                } else {
                    self.segs.truncate(i);
                    self.cap = Some(i);
                    self.end.get_or_insert(End::Fail(error.clone()));
                    if i == 0 {
                        self.outcome = Some(AiCardOutcome::Failed { reason: error });
                    }
                }
            }
            Pending::Inputing(i) | Pending::Vars(i, _) | Pending::Stream { seg: i, .. } => {
                self.segs[i].broken = true;
                self.end
                    .get_or_insert(End::Fail(format!("the AI card update failed: {error}")));
            }
            Pending::Final(i) => {
                // Tried once more after a failure: give up on this card's state.
                self.segs[i].status_final = true;
                if i + 1 == self.segs.len() {
                    self.outcome = Some(AiCardOutcome::Abandoned { reason: error });
                }
            }
            Pending::Fallback => {
                self.outcome = Some(AiCardOutcome::Abandoned { reason: error });
            }
        }
    }
}

/// The largest `n <= max` that is a char boundary of `s` (and at most its length).
fn floor_char(s: &str, max: usize) -> usize {
    let mut n = max.min(s.len());
    while n > 0 && !s.is_char_boundary(n) {
        n -= 1;
    }
    n
}

/// Splits `text` into cards of at most `limit` bytes: after the last paragraph break in the
/// second half of a full card, else after the last line break there, else at a char boundary. Always at least one (maybe empty) range.
/// Stable as text is appended: a cut depends only on the text before it.
fn split(text: &str, limit: usize) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let mut start = 0;
    while text.len() - start > limit {
        let window = &text[start..];
        let max = floor_char(window, limit);
        // A paragraph break (not inside a list or a quote) if there is one in the second half,
        // else a line break, else the largest char boundary.
        let cut = match (window[..max].rfind("\n\n"), window[..max].rfind('\n')) {
            (Some(p), _) if p + 2 >= max / 2 => p + 2,
            (_, Some(nl)) if nl + 1 >= max / 2 => nl + 1,
            _ => max,
        };
        let cut = if cut == 0 {
            window.chars().next().map_or(1, char::len_utf8)
        } else {
            cut
        };
        out.push(start..start + cut);
        start += cut;
    }
    out.push(start..text.len());
    out
}

#[cfg(test)]
mod tests {
    use super::split;

    #[test]
    fn split_is_bounded_and_prefers_line_breaks() {
        assert_eq!(split("", 10), vec![0..0]);
        assert_eq!(split("abc", 10), vec![0..3]);
        assert_eq!(split("aaaa\nbbbbbbb", 10), vec![0..5, 5..12]);
        assert_eq!(split("a\nbbbbbbbbbbbb", 10), vec![0..10, 10..14]);
        // A paragraph break wins over a later line break (a list stays in one card).
        assert_eq!(split("aaaaaa\n\n- b\n- c\n- d", 14), vec![0..8, 8..19]);
        // Never inside a character: "é" is two bytes.
        let s = "ééééé";
        for r in split(s, 3) {
            assert!(s.get(r.clone()).is_some() && r.len() <= 3, "{r:?}");
        }
    }
}
