//! The driver: one future that owns the [`Session`], every WebSocket and every pending
//! request, and carries out the core's outputs. It is written once for every runtime.
//!
//! # Why one hand-written future (and not a task per connection)
//!
//! A frame's ack is written by the same poll that read the frame, into the same socket, in the
//! same burst: the driver reads up to [`READ_BATCH`] frames from each connection, feeds them to
//! the core, queues the acks and pongs the core emits, then flushes each socket once. There is
//! no writer task, no channel per connection and no cross-thread hand-off on the hot path.
//! A handler call is polled once inline (with a no-op waker); only a call that is still pending
//! costs a task ([`Runtime::spawn`] on a multi-threaded runtime) or a slot in the driver's own
//! set of pending calls (single-threaded runtimes). Slow handlers therefore never delay
//! reading, pings or the acks of other frames.
//!
//! Threads cannot run futures, so the blocking adapter runs this same future under
//! `async_io::block_on`: the calling thread sleeps in the reactor until a socket is ready, a
//! handler finishes or the core's next deadline, with no polling interval (option (b) of the
//! style guide; it keeps one driver and makes the blocking hot path the async one).
//!
//! # Loop (one `poll`)
//!
//! ```text
//!  stop requested? ─▶ Input::Stop
//!  finished handler calls ─▶ Input::Complete
//!  handshakes and HTTP answers ─▶ Input::Connected / ConnectFailed / HttpResponse / HttpFailed
//!  each open connection (unless paused): up to READ_BATCH messages ─▶ Input::Text / Pong / Closed
//!  timer elapsed ─▶ Input::Timeout
//!  after every input: drain poll_output() (writes are queued, handlers polled once)
//!  flush every socket with queued writes; close the ones the core closed
//!  nothing happened ─▶ re-arm the timer to the core's deadline, return Pending
//! ```

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use dingtalk_core::{
    ConnId, Delivery, DeliveryId, Input, Outcome, Output, RequestId, Session, SessionEvent,
};
use futures_channel::mpsc;
use futures_util::future::AbortHandle;
use futures_util::stream::FuturesUnordered;
use futures_util::{FutureExt, Sink, StreamExt};
use tungstenite::Message;

use crate::client::Shared;
use crate::runtime::{BoxFuture, HttpClient, Runtime, Timer};

/// Most messages read from one connection before the driver flushes the acks they produced:
/// an ack waits for at most this many frames' work (about 80 µs at 2.5 µs a frame), and the
/// gateway gets acks while the driver reads on. A batch as large as the gateway's window of
/// un-acked frames turns the exchange into lock-step (measured with the e2e bench, window 64,
/// current-thread tokio: 0.74× of the floor with 64, 1.2× with 16 or 32; 8 costs more flushes).
pub(crate) const READ_BATCH: usize = 32;
/// Most inputs handled in one poll before the driver yields to its executor.
const POLL_BUDGET: usize = 2048;
/// Most messages waiting for one socket; a peer that reads nothing is declared dead.
const MAX_OUTBOX: usize = 4096;
/// How long a closing connection may take to send its last acks and the close frame.
const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// The window over which the driver measures its load (see [`Load`]).
const LOAD_WINDOW: Duration = Duration::from_millis(100);
/// Below this many frames a second the driver has time (see [`Load`]): at about 2 µs a
/// chatbot message, parsing them all costs the reader at most 10 % of a core, and a reader
/// that handles a frame in about 3.5 µs stays under a third of a core with it (the blocking
/// client's e2e run reads some 300 000 a second, where it is off).
const LIGHT_LOAD: u64 = 50_000;

/// Frames the driver may read at once, beyond [`LIGHT_LOAD`], and still have time (see
/// [`Load`]).
const LIGHT_BURST: u64 = 500;

/// How loaded the driver is: the frames it read over the last window of [`LOAD_WINDOW`], and
/// so far in this one. What [`crate::runtime::driver_has_time`] answers for each frame: whether
/// the last window's rate was under [`LIGHT_LOAD`] and this window's is still under it, give or
/// take a burst of [`LIGHT_BURST`] (so a sustained burst after a quiet stretch turns it off
/// within about 2 ms at 300 000 frames a second, and the next window stays off). A count of
/// frames, not of time spent: time in `poll` also counts the time the thread waited for a CPU,
/// which says nothing about this driver's load.
#[derive(Debug)]
struct Load {
    window: Instant,
    /// Frames read in the current window.
    frames: u64,
    /// The last window's rate was under [`LIGHT_LOAD`].
    light: bool,
}

impl Load {
    fn new(now: Instant) -> Self {
        Self {
            window: now,
            frames: 0,
            light: false,
        }
    }

    /// Whether the driver has time for deferred work now (`now` is read only when the frames
    /// of this window pass [`LIGHT_BURST`]).
    fn has_time(&self, now: impl FnOnce() -> Instant) -> bool {
        if !self.light {
            return false;
        }
        if self.frames < LIGHT_BURST {
            return true;
        }
        let elapsed = now().saturating_duration_since(self.window);
        u128::from(self.frames - LIGHT_BURST) * 1_000_000_000
            < u128::from(LIGHT_LOAD) * elapsed.as_nanos()
    }

    /// One more frame read.
    fn frame(&mut self) {
        self.frames = self.frames.saturating_add(1);
    }

    /// A poll ended at `now`: a window that has run its length is judged, and a new one starts.
    fn polled(&mut self, now: Instant) {
        let span = now.saturating_duration_since(self.window);
        if span >= LOAD_WINDOW {
            // frames / span < LIGHT_LOAD / 1 s, without a division.
            self.light =
                u128::from(self.frames) * 1_000_000_000 < u128::from(LIGHT_LOAD) * span.as_nanos();
            self.window = now;
            self.frames = 0;
        }
    }
}

/// A WebSocket error as text, without the URL (the Stream URL carries the one-use ticket).
pub(crate) fn ws_error_text(e: &tungstenite::Error) -> String {
    match e {
        tungstenite::Error::Url(_) => "invalid Stream endpoint".to_owned(),
        tungstenite::Error::Http(response) => {
            format!("handshake answered HTTP {}", response.status().as_u16())
        }
        tungstenite::Error::Io(io) => format!("io: {}", io.kind()),
        other => other.to_string(),
    }
}

type Completion = (DeliveryId, Outcome);
type Connecting<W> = BoxFuture<'static, Result<W, String>>;
type Answer = BoxFuture<'static, Result<http::Response<Vec<u8>>, String>>;

struct Conn<W> {
    id: ConnId,
    ws: W,
    outbox: VecDeque<Message>,
    /// Written since the last flush.
    dirty: bool,
    /// Closing since (the core closed it; no more reads, the queued writes and a close go out).
    closing: Option<Instant>,
}

/// Runs one Stream session to its end. Built by [`Client::run`](crate::Client::run).
pub(crate) struct Driver<R: Runtime> {
    rt: R,
    shared: Arc<Shared<R>>,
    session: Session,
    conns: Vec<Conn<R::WebSocket>>,
    connecting: Vec<(ConnId, Connecting<R::WebSocket>)>,
    requests: Vec<(RequestId, Answer)>,
    /// Handler calls that did not finish at once, polled here (single-threaded runtimes).
    local: FuturesUnordered<BoxFuture<'static, ()>>,
    done_tx: mpsc::UnboundedSender<Completion>,
    done_rx: mpsc::UnboundedReceiver<Completion>,
    /// Handler calls that finished when first polled, fed back after the drain.
    ready: Vec<Completion>,
    /// How to cancel each handler call still running (the core cancels one at its handler
    /// timeout; the rest are cancelled when the driver ends).
    aborts: HashMap<DeliveryId, AbortHandle>,
    timer: R::Timer,
    /// The core's next deadline.
    deadline: Instant,
    /// When the timer fires: never later than `deadline`, often earlier (the keepalive
    /// deadline moves forward with every frame; re-arming a timer per frame costs more than an
    /// early wake-up, after which the timer is armed for the deadline of that moment).
    armed: Instant,
    paused: bool,
    stop_sent: bool,
    /// The session returned `Done`; the driver only closes sockets now.
    finished: Option<Instant>,
    fatal: Option<dingtalk_core::Error>,
    /// When the session's counters were last copied to [`Shared::stats`].
    published: Option<Instant>,
    metrics: Arc<crate::observe::Metrics>,
    load: Load,
}

/// How often the session's counters are copied where [`Client::stats`](crate::Client::stats)
/// reads them.
const STATS_EVERY: Duration = Duration::from_millis(50);

impl<R: Runtime> Driver<R> {
    /// Copies the session's counters for [`Client::stats`](crate::Client::stats), at most every
    /// [`STATS_EVERY`] unless `now` is asked.
    fn publish_stats(&mut self, force: bool) {
        let now = Instant::now();
        if let Some(at) = self
            .published
            .filter(|at| !force && now.duration_since(*at) < STATS_EVERY)
        {
            // Copied recently: come back when the copy may be refreshed, so the last counters
            // of a burst are published even if nothing else happens.
            let due = at + STATS_EVERY;
            if due < self.armed {
                self.armed = due;
                self.timer.reset(due);
            }
            return;
        }
        self.published = Some(now);
        let stats = crate::client::ClientStats {
            session: self.session.stats().clone(),
            connections: self.session.connection_stats(),
            in_flight: self.session.in_flight(),
            queued: self.session.queued(),
            at: now,
        };
        *self.shared.stats.lock().unwrap_or_else(|e| e.into_inner()) = Some(stats);
    }

    pub(crate) fn new(rt: R, shared: Arc<Shared<R>>, session: Session) -> Self {
        let now = Instant::now();
        let (done_tx, done_rx) = mpsc::unbounded();
        let timer = rt.timer(now);
        let metrics = Arc::new(crate::observe::Metrics::new(
            shared.config.credentials.client_id(),
            shared
                .config
                .subscriptions
                .iter()
                .map(|s| s.topic.to_string()),
        ));
        let mut driver = Self {
            rt,
            shared,
            session,
            conns: Vec::new(),
            connecting: Vec::new(),
            requests: Vec::new(),
            local: FuturesUnordered::new(),
            done_tx,
            done_rx,
            ready: Vec::new(),
            aborts: HashMap::new(),
            timer,
            deadline: now,
            armed: now,
            paused: false,
            stop_sent: false,
            finished: None,
            fatal: None,
            published: None,
            metrics,
            load: Load::new(now),
        };
        driver.drain();
        driver
    }

    fn input(&mut self, input: Input<'_>) {
        self.session.handle_input(input, Instant::now());
        self.drain();
    }

    /// Carries out every output of the core until it asks to wait.
    fn drain(&mut self) {
        loop {
            match self.session.poll_output() {
                Output::Send { conn, text } => self.write(conn, Message::text(text)),
                Output::Ping { conn } => self.write(conn, Message::Ping(Default::default())),
                Output::Deliver(delivery) => self.deliver(delivery),
                Output::Cancel { id } => {
                    if let Some(handle) = self.aborts.remove(&id) {
                        handle.abort();
                    }
                }
                Output::Http { id, request } => {
                    let send = self.shared.api.http().send(request);
                    let request = send.map(|r| r.map_err(|e| e.to_string()));
                    self.requests.push((id, Box::pin(request)));
                }
                Output::Connect { conn, request } => {
                    let options = crate::runtime::ConnectOptions::new(
                        self.shared.tls.clone(),
                        self.shared.config.limits.max_frame_bytes,
                    )
                    .proxy(self.shared.proxies.for_uri(request.uri()).cloned());
                    let connecting = self.rt.connect(request.uri(), &options);
                    self.connecting.push((conn, connecting));
                }
                Output::Close { conn } => self.close(conn),
                Output::PauseReading => self.paused = true,
                Output::ResumeReading => self.paused = false,
                Output::Event(event) => {
                    log_event(&event);
                    self.observe(&event);
                }
                Output::Error(error) => {
                    tracing::error!(%error, "DingTalk Stream stopped");
                    self.fatal = Some(error);
                }
                Output::Timeout(at) => {
                    self.deadline = at;
                    if at < self.armed {
                        self.armed = at;
                        self.timer.reset(at);
                    }
                    break;
                }
                Output::Done => {
                    if self.finished.is_none() {
                        self.finished = Some(Instant::now());
                    }
                    break;
                }
            }
        }
        // Handlers that finished when first polled: their results go straight back in.
        while !self.ready.is_empty() {
            let ready = std::mem::take(&mut self.ready);
            for (id, outcome) in ready {
                self.session
                    .handle_input(Input::Complete { id, outcome }, Instant::now());
            }
            self.drain();
        }
    }

    fn write(&mut self, conn: ConnId, message: Message) {
        match self.conns.iter_mut().find(|c| c.id == conn) {
            Some(c) if c.closing.is_none() => c.outbox.push_back(message),
            _ => tracing::trace!(?conn, "write for a connection that is gone"),
        }
    }

    fn close(&mut self, conn: ConnId) {
        if let Some(pos) = self.connecting.iter().position(|(id, _)| *id == conn) {
            // The core gave up on this handshake: dropping the future cancels it.
            drop(self.connecting.swap_remove(pos));
        }
        if let Some(c) = self.conns.iter_mut().find(|c| c.id == conn) {
            if c.closing.is_none() {
                c.closing = Some(Instant::now());
            }
        }
    }

    /// Tells the presence, the metrics and the lifecycle hook about a session event.
    fn observe(&mut self, event: &SessionEvent) {
        let changes = matches!(
            event,
            SessionEvent::Connected { .. }
                | SessionEvent::Draining { .. }
                | SessionEvent::ConnectionLost { .. }
        );
        let open = if changes {
            self.session
                .connection_stats()
                .iter()
                .filter(|c| c.state == dingtalk_core::session::ConnPhase::Open)
                .count()
        } else {
            self.shared.presence.open()
        };
        self.metrics.event(event, open);
        if let (Some(hook), Some(change)) =
            (&self.shared.hook, crate::observe::lifecycle(event, open))
        {
            crate::observe::call_hook(hook, &change);
        }
        // After the hook: whoever `wait_connected` wakes finds the hook has seen the change.
        if changes {
            self.shared.presence.set_open(open);
        }
    }

    /// Polls the handler once inline; a call that is still pending goes to the runtime or to
    /// the driver's own set.
    fn deliver(&mut self, delivery: Delivery) {
        let id = delivery.id;
        let route = delivery.route.0;
        self.metrics.delivered(route);
        let started = Instant::now();
        let span = tracing::debug_span!(
            "dingtalk.delivery",
            topic = %delivery.frame.topic(),
            message_id = %delivery.frame.message_id(),
        );
        let Some(handler) = self.shared.handlers.get(delivery.route).cloned() else {
            // Subscriptions come from registered handlers; only a subscription added through
            // `configure` without a handler gets here.
            self.ready.push((id, Outcome::Failed("no handler".into())));
            return;
        };
        let mut call = match &self.shared.state {
            None => handler(delivery.frame, self.shared.api.clone()),
            Some(state) => {
                let policy = self
                    .shared
                    .config
                    .subscriptions
                    .get(delivery.route.0)
                    .map_or(dingtalk_core::AckPolicy::Immediate, |s| s.ack);
                crate::store::guarded(
                    state.clone(),
                    policy,
                    delivery.frame,
                    handler,
                    self.shared.api.clone(),
                )
            }
        };
        if !span.is_disabled() {
            // Only an enabled span costs the extra box.
            call = Box::pin(tracing::Instrument::instrument(call, span));
        }
        let mut cx = Context::from_waker(std::task::Waker::noop());
        match std::panic::catch_unwind(AssertUnwindSafe(|| call.as_mut().poll(&mut cx))) {
            Ok(Poll::Ready(outcome)) => {
                self.metrics
                    .finished(route, Some(&outcome), started.elapsed());
                self.ready.push((id, outcome));
            }
            Ok(Poll::Pending) => {
                let tx = self.done_tx.clone();
                let (call, abort) = futures_util::future::abortable(call);
                self.aborts.insert(id, abort);
                let metrics = self.metrics.clone();
                let state = self.shared.state.clone();
                let http = self.shared.api.http().clone();
                let task: BoxFuture<'static, ()> = Box::pin(async move {
                    // Cancelled (`Err`): the core already freed the slot; nothing to report.
                    let outcome = match AssertUnwindSafe(call).catch_unwind().await {
                        Ok(Ok(outcome)) => outcome,
                        Ok(Err(futures_util::future::Aborted)) => {
                            metrics.finished(route, None, started.elapsed());
                            // Release the shared claim the cancelled call held, now, so
                            // another replica can take a redelivery at once.
                            if let Some(state) = state {
                                state.flush_releases(&http).await;
                            }
                            return;
                        }
                        Err(_) => panicked(),
                    };
                    metrics.finished(route, Some(&outcome), started.elapsed());
                    let _ = tx.unbounded_send((id, outcome));
                });
                if let Some(task) = self.rt.spawn(task) {
                    self.local.push(task);
                }
            }
            Err(_) => {
                let outcome = panicked();
                self.metrics
                    .finished(route, Some(&outcome), started.elapsed());
                self.ready.push((id, outcome));
            }
        }
    }

    /// Reads up to [`READ_BATCH`] messages from connection `i`; whether any arrived.
    fn read(&mut self, i: usize, cx: &mut Context<'_>, budget: &mut usize) -> bool {
        let mut progressed = false;
        for _ in 0..READ_BATCH {
            if self.paused || *budget == 0 {
                break;
            }
            let Some(c) = self.conns.get_mut(i) else {
                break;
            };
            if c.closing.is_some() {
                break;
            }
            let conn = c.id;
            let polled = c.ws.poll_next_unpin(cx);
            if polled.is_ready() {
                self.load.frame();
                crate::runtime::set_driver_has_time(self.load.has_time(Instant::now));
            }
            let closed = match polled {
                Poll::Pending => break,
                Poll::Ready(Some(Ok(Message::Text(text)))) => {
                    self.input(Input::Text {
                        conn,
                        text: text.as_str(),
                    });
                    None
                }
                Poll::Ready(Some(Ok(Message::Binary(bytes)))) => {
                    match std::str::from_utf8(&bytes) {
                        Ok(text) => self.input(Input::Text { conn, text }),
                        Err(_) => self.input(Input::Pong { conn }),
                    }
                    None
                }
                Poll::Ready(Some(Ok(Message::Close(frame)))) => Some(frame.map_or_else(
                    || "closed by the server".to_owned(),
                    |f| format!("closed by the server: {} {}", f.code, f.reason),
                )),
                Poll::Ready(Some(Ok(_))) => {
                    self.input(Input::Pong { conn });
                    None
                }
                Poll::Ready(Some(Err(e))) => Some(ws_error_text(&e)),
                Poll::Ready(None) => Some("end of stream".to_owned()),
            };
            *budget -= 1;
            progressed = true;
            if let Some(reason) = closed {
                self.lost(conn, reason);
                break;
            }
        }
        progressed
    }

    /// A connection ended on its own: forget it and tell the core.
    fn lost(&mut self, conn: ConnId, reason: String) {
        if let Some(pos) = self.conns.iter().position(|c| c.id == conn) {
            self.conns.swap_remove(pos);
        }
        self.input(Input::Closed { conn, reason });
    }

    /// Writes every queued message and flushes each socket once; finishes closing connections.
    fn flush(&mut self, cx: &mut Context<'_>) {
        let mut failed: Vec<(ConnId, String)> = Vec::new();
        let now = Instant::now();
        self.conns.retain_mut(|c| {
            match push(c, cx) {
                Ok(()) => {}
                Err(reason) if c.closing.is_none() => {
                    failed.push((c.id, reason));
                    return false;
                }
                Err(_) => return false,
            }
            match c.closing {
                None => true,
                Some(since) if c.outbox.is_empty() => {
                    let closed = Pin::new(&mut c.ws).poll_close(cx);
                    closed.is_pending() && now.saturating_duration_since(since) < CLOSE_GRACE
                }
                Some(since) => now.saturating_duration_since(since) < CLOSE_GRACE,
            }
        });
        for (conn, reason) in failed {
            self.input(Input::Closed { conn, reason });
        }
        // A connection still closing is dropped at its grace deadline even if nothing else
        // wakes the driver before then.
        let grace_end = self
            .conns
            .iter()
            .filter_map(|c| c.closing)
            .min()
            .map(|since| since + CLOSE_GRACE);
        if let Some(at) = grace_end {
            if at < self.armed {
                self.armed = at;
                self.timer.reset(at);
            }
        }
    }

    fn poll_sources(&mut self, cx: &mut Context<'_>, budget: &mut usize) -> bool {
        let mut progressed = false;
        if !self.stop_sent && self.shared.stop.requested(cx) {
            self.stop_sent = true;
            self.input(Input::Stop);
            progressed = true;
        }
        while let Poll::Ready(Some((id, outcome))) = self.done_rx.poll_next_unpin(cx) {
            self.aborts.remove(&id);
            self.input(Input::Complete { id, outcome });
            progressed = true;
        }
        while let Poll::Ready(Some(())) = self.local.poll_next_unpin(cx) {
            progressed = true;
        }
        let mut i = 0;
        while i < self.connecting.len() {
            match self.connecting[i].1.as_mut().poll(cx) {
                Poll::Pending => i += 1,
                Poll::Ready(result) => {
                    let (conn, _) = self.connecting.swap_remove(i);
                    progressed = true;
                    match result {
                        Ok(ws) => {
                            self.conns.push(Conn {
                                id: conn,
                                ws,
                                outbox: VecDeque::new(),
                                dirty: false,
                                closing: None,
                            });
                            self.input(Input::Connected { conn });
                        }
                        Err(reason) => self.input(Input::ConnectFailed { conn, reason }),
                    }
                }
            }
        }
        let mut i = 0;
        while i < self.requests.len() {
            match self.requests[i].1.as_mut().poll(cx) {
                Poll::Pending => i += 1,
                Poll::Ready(result) => {
                    let (id, _) = self.requests.swap_remove(i);
                    progressed = true;
                    match result {
                        Ok(response) => self.input(Input::HttpResponse { id, response }),
                        Err(reason) => self.input(Input::HttpFailed { id, reason }),
                    }
                }
            }
        }
        let mut i = 0;
        while i < self.conns.len() {
            let id = self.conns[i].id;
            progressed |= self.read(i, cx, budget);
            // `read` may have removed this connection (or another); continue after it.
            match self.conns.get(i) {
                Some(c) if c.id == id => i += 1,
                _ => {}
            }
        }
        if self.timer.poll_elapsed(cx).is_ready() {
            self.input(Input::Timeout);
            progressed = true;
            // Arm the timer again for the core's next deadline (never in the past, so a core
            // that asks for the same instant again cannot make the driver spin).
            let now = Instant::now();
            self.armed = self.deadline.max(now + Duration::from_millis(1));
            self.timer.reset(self.armed);
        }
        progressed
    }
}

/// Moves a connection's queued messages into its socket and flushes once.
fn push<W: crate::runtime::WebSocket>(c: &mut Conn<W>, cx: &mut Context<'_>) -> Result<(), String> {
    while !c.outbox.is_empty() {
        match Pin::new(&mut c.ws).poll_ready(cx) {
            Poll::Ready(Ok(())) => {}
            Poll::Ready(Err(e)) => return Err(ws_error_text(&e)),
            Poll::Pending => break,
        }
        if let Some(message) = c.outbox.pop_front() {
            Pin::new(&mut c.ws)
                .start_send(message)
                .map_err(|e| ws_error_text(&e))?;
            c.dirty = true;
        }
    }
    if c.outbox.len() > MAX_OUTBOX {
        return Err("the server reads nothing (outgoing queue full)".to_owned());
    }
    if c.dirty {
        match Pin::new(&mut c.ws).poll_flush(cx) {
            Poll::Ready(Ok(())) => c.dirty = false,
            Poll::Ready(Err(e)) => return Err(ws_error_text(&e)),
            Poll::Pending => {}
        }
    }
    Ok(())
}

fn panicked() -> Outcome {
    tracing::error!("handler panicked");
    Outcome::Failed("handler panicked".into())
}

fn log_event(event: &SessionEvent) {
    if event.is_warning() {
        tracing::warn!(%event, "DingTalk Stream");
    } else {
        tracing::debug!(%event, "DingTalk Stream");
    }
}

impl<R: Runtime> Drop for Driver<R> {
    /// Handler calls still running when the session ends (past the stop timeout) are
    /// cancelled: nothing outlives `run`.
    fn drop(&mut self) {
        for (_, handle) in self.aborts.drain() {
            handle.abort();
        }
        self.metrics.stopped();
    }
}

impl<R: Runtime> Future for Driver<R> {
    type Output = Result<(), dingtalk_core::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        /// Clears the flag when the poll ends, even by a panic (a handler's, say), so that the
        /// thread never tells code outside a driver's poll that it has time.
        struct Clear;
        impl Drop for Clear {
            fn drop(&mut self) {
                crate::runtime::set_driver_has_time(false);
            }
        }
        crate::runtime::set_driver_has_time(this.load.has_time(Instant::now));
        let clear = Clear;
        let poll = this.poll_inner(cx);
        drop(clear);
        this.load.polled(Instant::now());
        poll
    }
}

impl<R: Runtime> Driver<R> {
    fn poll_inner(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), dingtalk_core::Error>> {
        let this = self;
        let mut budget = POLL_BUDGET;
        loop {
            if let Some(since) = this.finished {
                // Every connection got its Close: let the last acks and close frames go out
                // (bounded), so a program that exits right after `run` returns loses nothing.
                this.flush(cx);
                while let Poll::Ready(Some(())) = this.local.poll_next_unpin(cx) {}
                if this.conns.is_empty() || since.elapsed() >= CLOSE_GRACE {
                    this.publish_stats(true);
                    return Poll::Ready(match this.fatal.take() {
                        Some(e) => Err(e),
                        None => Ok(()),
                    });
                }
                this.timer.reset(since + CLOSE_GRACE);
                if this.timer.poll_elapsed(cx).is_ready() {
                    continue;
                }
                return Poll::Pending;
            }
            // Handlers and requests that go to a thread pool during this pass are queued
            // together: a burst of frames wakes one pool thread.
            #[cfg(feature = "async-io")]
            let progressed = crate::runtime::batch(|| this.poll_sources(cx, &mut budget));
            #[cfg(not(feature = "async-io"))]
            let progressed = this.poll_sources(cx, &mut budget);
            this.flush(cx);
            if this.finished.is_some() {
                continue;
            }
            if !progressed {
                this.publish_stats(false);
                return Poll::Pending;
            }
            if budget == 0 {
                // Fairness: let the executor run other tasks; come back at once.
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn frames(load: &mut Load, n: u64) {
        for _ in 0..n {
            load.frame();
        }
    }

    #[test]
    fn the_driver_has_time_after_a_window_of_fewer_than_50_000_frames_a_second() {
        let t0 = Instant::now();
        let mut load = Load::new(t0);
        let at = |ms: u32| move || t0 + ms * MS;
        assert!(
            !load.has_time(at(0)),
            "not before a window has been measured"
        );
        // 6 000 frames in 100 ms (60 000/s), in bursts: under load.
        for i in 1..=10u32 {
            frames(&mut load, 600);
            load.polled(t0 + 10 * i * MS);
        }
        assert!(!load.has_time(at(100)), "60 000 frames a second");
        // 4 000 in the next 100 ms (40 000/s): light.
        for i in 11..=20u32 {
            frames(&mut load, 400);
            load.polled(t0 + 10 * i * MS);
        }
        assert!(load.has_time(at(200)), "40 000 frames a second");
        // In the next window, a burst: time for LIGHT_BURST frames at once, then only while the
        // window's rate stays under LIGHT_LOAD (50 frames a millisecond).
        frames(&mut load, LIGHT_BURST - 1);
        assert!(load.has_time(at(200)), "within the burst allowance");
        load.frame();
        assert!(!load.has_time(at(200)), "the burst allowance is spent");
        assert!(load.has_time(at(201)), "50 more frames a millisecond later");
        frames(&mut load, 100);
        assert!(!load.has_time(at(202)), "a burst faster than 50 000/s");
        // That window read 600 frames in 100 ms: light again for the next one.
        load.polled(t0 + 300 * MS);
        assert!(load.has_time(at(300)));
        // 5 000 or more in a window is not light.
        frames(&mut load, 5_000);
        load.polled(t0 + 400 * MS);
        assert!(
            !load.has_time(at(400)),
            "5 000 frames in 100 ms is not light"
        );
        // A long idle stretch ends the window with a low rate: time again.
        load.frame();
        load.polled(t0 + 5_000 * MS);
        assert!(load.has_time(at(5_000)));
    }

    #[test]
    fn instants_out_of_order_and_huge_counts_do_not_panic() {
        let t0 = Instant::now() + Duration::from_secs(1);
        let mut load = Load::new(t0);
        load.frames = u64::MAX;
        load.frame();
        load.polled(t0 - MS);
        load.polled(t0 + 200 * MS);
        assert!(!load.has_time(|| t0 - MS));
        load.light = true;
        load.frames = u64::MAX;
        assert!(!load.has_time(|| t0 - MS));
        assert!(!load.has_time(|| t0 + Duration::from_secs(1 << 40)));
    }
}
