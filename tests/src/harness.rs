//! What a scenario asks of an adapter: start a bot with a data-only [`BotSpec`], stop it, wait
//! for it. The spec's shared state ([`Seen`], [`Gate`]) is runtime-agnostic (tokio's sync
//! primitives work under any executor), so every adapter can implement the same behaviour.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Condvar, Mutex};
use std::time::Duration;

use dingtalk_core::Credentials;
use dingtalk_sim::Control;
use serde_json::Value;
use tokio::sync::watch;

/// A gate handlers wait on while it is closed (to hold work in flight); async handlers
/// `wait().await`, blocking ones `wait_blocking()`.
#[derive(Debug)]
pub struct Gate {
    tx: watch::Sender<bool>,
    open: Mutex<bool>,
    cv: Condvar,
}

impl Gate {
    fn new(open: bool) -> Self {
        Self {
            tx: watch::channel(open).0,
            open: Mutex::new(open),
            cv: Condvar::new(),
        }
    }

    /// An open gate.
    pub fn open() -> Self {
        Self::new(true)
    }

    /// A closed gate.
    pub fn closed() -> Self {
        Self::new(false)
    }

    /// Opens it: every waiting handler proceeds.
    pub fn release(&self) {
        *self.open.lock().unwrap() = true;
        self.cv.notify_all();
        self.tx.send_replace(true);
    }

    /// Waits until the gate is open.
    pub async fn wait(&self) {
        let mut rx = self.tx.subscribe();
        let _ = rx.wait_for(|open| *open).await;
    }

    /// Blocks the thread until the gate is open.
    pub fn wait_blocking(&self) {
        let mut open = self.open.lock().unwrap();
        while !*open {
            open = self.cv.wait(open).unwrap();
        }
    }
}

/// What the bot's handlers did, keyed by message (bot `msgId`, event `eventId`, card
/// `outTrackId`), observable while the bot runs.
#[derive(Debug)]
pub struct Seen {
    counts: Mutex<HashMap<String, usize>>,
    entered: Mutex<usize>,
    left: Mutex<usize>,
    api: Mutex<Vec<Result<(), String>>>,
    version: watch::Sender<u64>,
}

impl Default for Seen {
    fn default() -> Self {
        Self {
            counts: Mutex::new(HashMap::new()),
            entered: Mutex::new(0),
            left: Mutex::new(0),
            api: Mutex::new(Vec::new()),
            version: watch::channel(0).0,
        }
    }
}

impl Seen {
    /// Records that a handler was called for `key`.
    pub fn handled(&self, key: &str) {
        *self
            .counts
            .lock()
            .unwrap()
            .entry(key.to_owned())
            .or_default() += 1;
        self.version.send_modify(|v| *v += 1);
    }

    /// Records that a gated handler started (before it waits on the gate).
    pub fn entered(&self) {
        *self.entered.lock().unwrap() += 1;
        self.version.send_modify(|v| *v += 1);
    }

    /// Records that a gated handler's call ended: finished, or cancelled (its future dropped).
    pub fn left(&self) {
        *self.left.lock().unwrap() += 1;
        self.version.send_modify(|v| *v += 1);
    }

    /// How many gated handler calls ended.
    pub fn left_count(&self) -> usize {
        *self.left.lock().unwrap()
    }

    /// How many gated handlers started.
    pub fn entered_count(&self) -> usize {
        *self.entered.lock().unwrap()
    }

    /// Records an API call's result.
    pub fn api_result(&self, r: Result<(), String>) {
        self.api.lock().unwrap().push(r);
        self.version.send_modify(|v| *v += 1);
    }

    /// How often the handler ran for `key`.
    pub fn count(&self, key: &str) -> usize {
        self.counts.lock().unwrap().get(key).copied().unwrap_or(0)
    }

    /// Handler calls in all.
    pub fn total(&self) -> usize {
        self.counts.lock().unwrap().values().sum()
    }

    /// Largest number of calls for one key (1 when nothing ran twice).
    pub fn max_per_key(&self) -> usize {
        self.counts
            .lock()
            .unwrap()
            .values()
            .copied()
            .max()
            .unwrap_or(0)
    }

    /// API results so far.
    pub fn api_results(&self) -> Vec<Result<(), String>> {
        self.api.lock().unwrap().clone()
    }

    /// Waits until `cond` holds, at most `timeout`.
    pub async fn wait(&self, what: &str, timeout: Duration, cond: impl Fn(&Self) -> bool) {
        let mut rx = self.version.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        while !cond(self) {
            if tokio::time::timeout_at(deadline, rx.changed())
                .await
                .is_err()
            {
                panic!("timed out waiting for {what}");
            }
        }
    }
}

/// Records [`Seen::left`] on drop.
#[derive(Debug)]
pub struct LeaveGuard(std::sync::Arc<BotSpec>);

impl Drop for LeaveGuard {
    fn drop(&mut self) {
        self.0.seen.left();
    }
}

/// Session settings a scenario may shorten (so it does not wait for real-world timeouts).
#[derive(Debug, Clone, Default)]
pub struct Tweaks {
    /// `keepalive_idle`.
    pub keepalive_idle: Option<Duration>,
    /// `keepalive_timeout`.
    pub keepalive_timeout: Option<Duration>,
    /// `backoff_base`.
    pub backoff_base: Option<Duration>,
    /// `backoff_jitter`.
    pub backoff_jitter: Option<Duration>,
    /// `max_in_flight`.
    pub max_in_flight: Option<usize>,
    /// `stop_timeout`.
    pub stop_timeout: Option<Duration>,
    /// Longest pause before retrying a rate-limited call.
    pub retry_max_delay: Option<Duration>,
    /// `handler_timeout`.
    pub handler_timeout: Option<Duration>,
    /// `limits.max_frame_bytes`.
    pub max_frame_bytes: Option<usize>,
    /// The builder's `connections`.
    pub connections: Option<usize>,
    /// The builder's `proxies` (`None`: the builder's default, the environment's).
    pub proxies: Option<dingtalk_core::proxy::Proxies>,
}

/// The behaviour of the bot under test: data only, so each adapter implements it the same way.
#[derive(Debug)]
pub struct BotSpec {
    /// Reply to text messages with the same text through the session webhook.
    pub echo: bool,
    /// On each text message, call the OpenAPI (a group send) and record the result.
    pub call_api: bool,
    /// Event and card handlers wait on this gate.
    pub gate: Gate,
    /// A bot message with exactly this text makes the handler panic.
    pub panic_on: Option<String>,
    /// Session settings.
    pub tweaks: Tweaks,
    /// What the handlers did.
    pub seen: Seen,
}

impl Default for BotSpec {
    fn default() -> Self {
        Self {
            echo: true,
            call_api: false,
            gate: Gate::open(),
            panic_on: None,
            tweaks: Tweaks::default(),
            seen: Seen::default(),
        }
    }
}

/// What every adapter's card handler answers, as it must appear in the ack's `response`.
pub fn card_response_json() -> Value {
    serde_json::json!({
        "cardUpdateOptions": {"updateCardDataByKey": true, "updatePrivateDataByKey": false},
        "cardData": {"cardParamMap": {"liked": "true"}},
    })
}

/// The same answer, typed.
pub fn card_response() -> dingtalk_core::model::CardCallbackResponse {
    use dingtalk_core::model::{CardCallbackResponse, CardParamMap, CardUpdateOptions};
    CardCallbackResponse {
        card_update_options: Some(CardUpdateOptions {
            update_card_data_by_key: true,
            update_private_data_by_key: false,
        }),
        card_data: Some(CardParamMap::default().with("liked", "true")),
        user_private_data: None,
    }
}

impl BotSpec {
    /// A guard that records [`Seen::left`] when a handler call ends, however it ends.
    pub fn leaving(self: &std::sync::Arc<Self>) -> LeaveGuard {
        LeaveGuard(self.clone())
    }

    /// The API call a text message triggers when [`BotSpec::call_api`] is set.
    pub fn api_call(
        message: &dingtalk_core::model::ChatbotMessage,
        robot_code: &str,
    ) -> dingtalk_core::api::robot::GroupSend {
        dingtalk_core::api::robot::GroupSend {
            robot_code: robot_code.to_owned(),
            open_conversation_id: message.conversation_id.clone(),
            cool_app_code: None,
            message: dingtalk_core::api::robot::RobotMessage::Text {
                content: message.text().unwrap_or_default().to_owned(),
            },
        }
    }
}

/// A running bot.
pub trait RunningBot: Send {
    /// Asks the bot to stop gracefully.
    fn stop(&self);
    /// Waits until `run` returns; `Err` carries the adapter's error text.
    fn join(self: Box<Self>) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;
}

/// An adapter under test.
pub trait Harness: Sync {
    /// Its name, for messages.
    fn name(&self) -> &'static str;
    /// Whether a handler call past the handler timeout is really stopped (its future dropped);
    /// a blocking adapter can only let the thread go.
    fn cancels_handlers(&self) -> bool {
        true
    }
    /// Starts a bot with `spec` against the emulator behind `sim`.
    fn start(
        &self,
        sim: &Control,
        credentials: Credentials,
        spec: std::sync::Arc<BotSpec>,
    ) -> Box<dyn RunningBot>;
}

/// A bot whose `run` occupies its own thread (the blocking and async-std adapters).
pub struct ThreadBot<E> {
    stop: Box<dyn Fn() + Send>,
    thread: std::thread::JoinHandle<Result<(), E>>,
}

impl<E: std::fmt::Debug + Send + 'static> ThreadBot<E> {
    /// Runs `run` on a new thread; `stop` asks it to stop.
    pub fn spawn(
        stop: impl Fn() + Send + 'static,
        run: impl FnOnce() -> Result<(), E> + Send + 'static,
    ) -> Box<dyn RunningBot> {
        Box::new(Self {
            stop: Box::new(stop),
            thread: std::thread::spawn(run),
        })
    }
}

impl<E: std::fmt::Debug + Send + 'static> RunningBot for ThreadBot<E> {
    fn stop(&self) {
        (self.stop)();
    }

    fn join(self: Box<Self>) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>> {
        Box::pin(async move {
            let joined = tokio::task::spawn_blocking(move || self.thread.join())
                .await
                .map_err(|e| e.to_string())?;
            match joined {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(format!("{e:?}")),
                Err(_) => Err("the bot thread panicked".into()),
            }
        })
    }
}
