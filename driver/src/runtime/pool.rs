//! A pool of threads for blocking work (the blocking adapter's handlers) that
//! costs as few thread switches as the work allows:
//!
//! * jobs submitted during one pass of the driver (a burst of frames) are queued together and
//!   wake one thread ([`batch`]);
//! * one running thread drains the queue; a second thread stands by, and takes the next job only
//!   when the queue has stood still for [`HELD_UP`] (the running job is slow), so fast jobs run
//!   back to back on one thread while a slow job still never holds up the jobs behind it for
//!   longer than that;
//! * a finished job's task is woken once the queue runs dry (or every [`WAKE_BATCH`] jobs, or
//!   by the standby thread while a slow job runs), so a burst of completions costs the waiting
//!   thread one wake-up, not one each;
//! * work goes to the thread that went idle last, so threads beyond what the load needs stay
//!   idle and exit after 10 s (a thread woken in turn with the others would never be idle that
//!   long: the pool would keep its busiest moment's threads, and each thread's malloc cache,
//!   for ever); a steady load creates no threads.
//!
//! The callers bound how many jobs are in flight (the client's concurrency); the pool bounds its
//! threads.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

/// A job (given its pool, to count itself abandoned) returns the waker of the task waiting for
/// its result (for the pool to wake in a batch), and whether its caller gave up on it while it
/// ran (see [`State::abandoned`]).
type Job = Box<dyn FnOnce(&Shared) -> (Option<Waker>, bool) + Send>;

/// An idle thread exits after this long without work.
const IDLE_EXIT: Duration = Duration::from_secs(10);

/// How long the queue may stand still behind running jobs before the standby thread takes the
/// next job itself (and calls another thread to stand by).
pub(crate) const HELD_UP: Duration = Duration::from_millis(1);

/// Most finished jobs whose tasks wait to be woken together.
pub(crate) const WAKE_BATCH: usize = 32;

/// A job that runs longer than this is slow: a thread hand-off costs less than waiting behind
/// it. When most recent jobs are slow (e.g. every handler makes a request), each gets a thread
/// of its own at once; otherwise jobs run back to back on one thread, and the rare slow one is
/// overtaken by the standby thread after [`HELD_UP`]. (Most, not on average: one slow job in a
/// hundred must not turn a pool of fast jobs into a thread per job.)
pub(crate) const SLOW_JOB: Duration = Duration::from_micros(20);

/// Fixed-point one of the slow-job share (a moving average over about 16 jobs).
const SHARE_ONE: u32 = 1 << 10;

/// Quiet checks (nothing queued, nothing running) after which the standby thread goes idle.
const STANDBY_LINGER: u32 = 8;

#[derive(Default, Clone, Copy, PartialEq, Eq, Debug)]
enum Standby {
    /// No thread watches the queue.
    #[default]
    None,
    /// A thread was called to watch it and has not started yet.
    Wanted,
    /// A thread watches it.
    Watching,
}

#[derive(Default)]
struct State {
    jobs: VecDeque<Job>,
    /// Threads waiting for work, the one that went idle last at the end (the next one woken).
    idle: Vec<Arc<Sleeper>>,
    /// Wake-ups sent and not yet taken by a thread.
    waking: usize,
    threads: usize,
    /// Threads running a job.
    busy: usize,
    /// Of those, threads whose caller dropped the job's future while it ran (a handler the
    /// driver cancelled at its timeout; a blocking call cannot be stopped). They do not count
    /// as busy workers: jobs behind them get a thread at once.
    abandoned: usize,
    /// Jobs taken off the queue so far: the standby's measure of progress.
    taken: u64,
    standby: Standby,
    /// Moving share of recent jobs that were slow, in 1/[`SHARE_ONE`].
    slow_share: u32,
    /// Tasks of finished jobs, not yet woken.
    finished: Vec<Waker>,
}

impl State {
    fn hold_waker(&mut self, waker: Waker) {
        if !self.finished.last().is_some_and(|w| w.will_wake(&waker)) {
            self.finished.push(waker);
        }
    }
}

/// An idle thread's wake-up call (waited on with the pool's lock).
#[derive(Default)]
struct Sleeper {
    wake: Condvar,
    /// Set, with the lock held, by whoever takes this thread off `idle` to give it work.
    woken: std::sync::atomic::AtomicBool,
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    /// The standby thread's timed waits.
    standby: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A pool of threads for blocking work; cheap to clone (clones share the threads).
#[derive(Clone)]
pub struct ThreadPool {
    shared: Arc<Shared>,
    name: &'static str,
    max_threads: usize,
    /// Jobs wait (and stand still) behind running ones for at most this long; zero: every
    /// queued job calls a thread at once.
    held_up: Duration,
    /// An idle thread exits after this long without work ([`IDLE_EXIT`]).
    idle_exit: Duration,
}

impl std::fmt::Debug for ThreadPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let st = self.lock();
        f.debug_struct("ThreadPool")
            .field("name", &self.name)
            .field("threads", &st.threads)
            .field("idle", &st.idle.len())
            .field("busy", &st.busy)
            .field("queued", &st.jobs.len())
            .finish()
    }
}

thread_local! {
    /// Jobs submitted inside [`batch`] on this thread, queued when it ends.
    static BATCH: RefCell<Option<Vec<(ThreadPool, Job)>>> = const { RefCell::new(None) };
}

/// Runs `f`; jobs that [`ThreadPool::run`] is given meanwhile on this thread are queued when `f`
/// returns, together (one lock, one wake-up per pool), instead of one by one. The driver wraps
/// each pass over its sockets in this, so a burst of frames wakes one pool thread. Nested calls
/// join the outer batch.
pub(crate) fn batch<R>(f: impl FnOnce() -> R) -> R {
    let nested = BATCH.with(|b| {
        let mut b = b.borrow_mut();
        if b.is_some() {
            true
        } else {
            *b = Some(Vec::new());
            false
        }
    });
    if nested {
        return f();
    }
    /// Submits the batch even when `f` unwinds.
    struct Submit;
    impl Drop for Submit {
        fn drop(&mut self) {
            let jobs = BATCH.with(|b| b.borrow_mut().take()).unwrap_or_default();
            if jobs.is_empty() {
                return;
            }
            let mut jobs = jobs.into_iter().peekable();
            while let Some((pool, first)) = jobs.next() {
                let mut group = vec![first];
                while let Some((_, job)) =
                    jobs.next_if(|(p, _)| Arc::ptr_eq(&p.shared, &pool.shared))
                {
                    group.push(job);
                }
                pool.submit(group);
            }
            // Let the pool threads have this CPU now, whether one was called for this burst or
            // one already runs jobs. On a machine whose CPUs are all busy (one core; a pinned
            // process) the reader would otherwise read on for its whole time slice (a thousand
            // frames) while the handler threads wait, and they only catch up once the
            // session's queue is full and reading stops: measured with the e2e bench (client
            // pinned to one CPU), the blocking client's peak RSS was 6.9-7.0 MB in every run
            // with the yield only when a thread was called; with it after every burst, 5.0-5.2
            // MB in about half the runs (the handlers kept up) and 6.4-6.7 MB in the others.
            // With an idle CPU this returns at once (one syscall per burst).
            std::thread::yield_now();
        }
    }
    let _submit = Submit;
    f()
}

impl ThreadPool {
    /// A pool of at most `max_threads` threads (at least one) named `name`; no thread starts
    /// before the first job. Jobs beyond the threads wait in the queue.
    pub fn new(name: &'static str, max_threads: usize) -> Self {
        Self {
            shared: Arc::default(),
            name,
            max_threads: max_threads.max(1),
            held_up: HELD_UP,
            idle_exit: IDLE_EXIT,
        }
    }

    /// A pool for jobs that mostly wait (blocking network calls): every queued job calls a
    /// thread at once, up to `max_threads`, instead of queueing behind a running one.
    pub fn for_io(name: &'static str, max_threads: usize) -> Self {
        Self {
            held_up: Duration::ZERO,
            ..Self::new(name, max_threads)
        }
    }

    /// Runs `f` on a pool thread; the future gives its result. A panic in `f` is resumed when
    /// the future is polled (where the driver catches it as a failed handler). Dropping the
    /// future does not stop a running `f` (its result is then dropped); a queued `f` whose
    /// future is dropped before it starts is skipped.
    pub fn run<T, F>(&self, f: F) -> super::BoxFuture<'static, T>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        self.queue(f, true)
    }

    /// Like [`run`](Self::run), but `f` runs even when its future is dropped before it
    /// started: for work that nothing else will do if it is skipped (a handler of a message
    /// acked on arrival, which DingTalk never redelivers). Its result is then dropped.
    pub fn run_to_end<T, F>(&self, f: F) -> super::BoxFuture<'static, T>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        self.queue(f, false)
    }

    fn queue<T, F>(&self, f: F, skip_if_dropped: bool) -> super::BoxFuture<'static, T>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let slot = Arc::new(Slot::<T>::default());
        let mut sender = Sender(Some(slot.clone()));
        let job: Job = Box::new(move |pool: &Shared| {
            if sender.start() {
                let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
                return sender.send(result);
            }
            // The caller is gone before the call started (a cancelled handler).
            if skip_if_dropped {
                return (None, false);
            }
            // Run it all the same, as a thread whose caller gave up: jobs behind it do not
            // wait for it.
            pool.lock().abandoned += 1;
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
            (None, true)
        });
        let job = BATCH.with(|b| match b.borrow_mut().as_mut() {
            Some(batch) => {
                batch.push((self.clone(), job));
                None
            }
            None => Some(job),
        });
        if let Some(job) = job {
            self.submit(vec![job]);
        }
        Box::pin(Receive {
            slot,
            pool: self.shared.clone(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.shared.lock()
    }

    /// Queues `jobs` and makes sure a thread comes for them: one to run them when none runs,
    /// else one to stand by behind the running ones.
    fn submit(&self, jobs: Vec<Job>) {
        let mut st = self.lock();
        st.jobs.extend(jobs);
        let worker = st.busy.saturating_sub(st.abandoned) == 0 || self.cascade(&st);
        let call = if worker {
            self.call_worker(&mut st)
        } else {
            self.call_standby(&mut st)
        };
        drop(st);
        self.perform(call);
    }

    /// With jobs queued: makes sure a thread is coming for them, unless one already is or the
    /// pool is at its size (then the jobs wait for a running one to finish). Called with the
    /// lock held; the returned action is performed after releasing it.
    fn call_worker(&self, st: &mut State) -> Call {
        if st.waking > 0 {
            // A thread is on its way; it drains the queue.
            return Call::None;
        }
        self.call_thread(st)
    }

    /// With jobs queued behind a running one: makes sure a thread watches the queue.
    fn call_standby(&self, st: &mut State) -> Call {
        if self.cascade(st) {
            return self.call_worker(st);
        }
        if st.standby != Standby::None {
            return Call::None;
        }
        let call = self.call_thread(st);
        if !matches!(call, Call::None) {
            st.standby = Standby::Wanted;
        }
        call
    }

    /// Whether each queued job calls a thread at once (an I/O pool, or most recent jobs slow)
    /// rather than waiting behind the running one with a thread standing by.
    fn cascade(&self, st: &State) -> bool {
        self.held_up.is_zero() || st.slow_share > SHARE_ONE / 2
    }

    /// Wakes the thread that went idle last, or starts one below the pool's size.
    fn call_thread(&self, st: &mut State) -> Call {
        if let Some(sleeper) = st.idle.pop() {
            sleeper.woken.store(true, Relaxed);
            st.waking += 1;
            return Call::Notify(sleeper);
        }
        if st.threads >= self.max_threads {
            return Call::None;
        }
        st.threads += 1;
        st.waking += 1;
        Call::Spawn
    }

    fn perform(&self, call: Call) {
        match call {
            Call::None => {}
            Call::Notify(sleeper) => sleeper.wake.notify_one(),
            Call::Spawn => {
                let pool = self.clone();
                let spawned = std::thread::Builder::new()
                    .name(self.name.into())
                    .spawn(move || pool.work());
                if let Err(e) = spawned {
                    tracing::error!(%e, "could not start a pool thread");
                    let mut st = self.lock();
                    st.threads = st.threads.saturating_sub(1);
                    st.waking = st.waking.saturating_sub(1);
                    if st.standby == Standby::Wanted {
                        st.standby = Standby::None;
                    }
                }
            }
        }
    }

    /// Wakes the tasks of finished jobs, with the lock released.
    fn wake_finished<'a>(&'a self, mut st: MutexGuard<'a, State>) -> MutexGuard<'a, State> {
        if st.finished.is_empty() {
            return st;
        }
        let wakers = std::mem::take(&mut st.finished);
        drop(st);
        wakers.into_iter().for_each(Waker::wake);
        self.lock()
    }

    fn work(&self) {
        let mut sleeper: Option<Arc<Sleeper>> = None;
        let mut st = self.lock();
        // This thread was counted as a wake-up when it was spawned or notified.
        st.waking = st.waking.saturating_sub(1);
        loop {
            if st.standby == Standby::Wanted {
                st.standby = Standby::Watching;
                st = self.stand_by(st);
                continue;
            }
            if let Some(job) = st.jobs.pop_front() {
                st.taken = st.taken.wrapping_add(1);
                st.busy += 1;
                // Jobs left behind while this one runs: a thread watches them, in case this
                // one is slow.
                let call = if st.jobs.is_empty() {
                    Call::None
                } else {
                    self.call_standby(&mut st)
                };
                drop(st);
                self.perform(call);
                let started = Instant::now();
                let (waker, abandoned) = job(&self.shared);
                let slow = started.elapsed() > SLOW_JOB;
                st = self.lock();
                st.busy = st.busy.saturating_sub(1);
                if abandoned {
                    st.abandoned = st.abandoned.saturating_sub(1);
                }
                st.slow_share =
                    st.slow_share - st.slow_share / 16 + if slow { SHARE_ONE / 16 } else { 0 };
                if let Some(waker) = waker {
                    st.hold_waker(waker);
                }
                if st.jobs.is_empty() || st.finished.len() >= WAKE_BATCH {
                    st = self.wake_finished(st);
                }
                continue;
            }
            let me = sleeper.get_or_insert_with(Arc::default).clone();
            st.idle.push(me.clone());
            let (guard, timeout) = me
                .wake
                .wait_timeout(st, self.idle_exit)
                .unwrap_or_else(|e| e.into_inner());
            st = guard;
            if me.woken.swap(false, Relaxed) {
                // Woken on purpose (whoever notified already took this thread off `idle`).
                st.waking = st.waking.saturating_sub(1);
            } else {
                // Spurious or timed out: still on `idle`.
                if let Some(i) = st.idle.iter().rposition(|s| Arc::ptr_eq(s, &me)) {
                    st.idle.remove(i);
                }
                if timeout.timed_out() && st.jobs.is_empty() {
                    st.threads = st.threads.saturating_sub(1);
                    return;
                }
            }
        }
    }

    /// The standby thread: checks the queue every `held_up`; when it stood still with jobs in
    /// it, returns to take the next job (as a worker). Wakes the tasks of jobs finished before a
    /// slow one. Goes idle after a few quiet checks.
    fn stand_by<'a>(&'a self, mut st: MutexGuard<'a, State>) -> MutexGuard<'a, State> {
        let mut quiet = 0;
        loop {
            let mark = st.taken;
            let (guard, _) = self
                .shared
                .standby
                .wait_timeout(st, self.held_up)
                .unwrap_or_else(|e| e.into_inner());
            st = self.wake_finished(guard);
            if !st.jobs.is_empty() && st.taken == mark && st.waking == 0 {
                // Held up: this thread takes the next job.
                st.standby = Standby::None;
                return st;
            }
            if st.jobs.is_empty() && st.busy == 0 {
                quiet += 1;
                if quiet >= STANDBY_LINGER {
                    st.standby = Standby::None;
                    return st;
                }
            } else {
                quiet = 0;
            }
        }
    }
}

/// What `call_worker` decided.
enum Call {
    None,
    Notify(Arc<Sleeper>),
    Spawn,
}

/// Where a job leaves its result for [`Receive`].
struct Slot<T> {
    state: Mutex<SlotState<T>>,
}

struct SlotState<T> {
    result: Option<std::thread::Result<T>>,
    waker: Option<Waker>,
    phase: Phase,
}

/// Where a job is, as its two ends see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Queued,
    Running,
    Finished,
    /// The caller dropped its future before the job finished.
    Abandoned,
}

impl<T> Default for Slot<T> {
    fn default() -> Self {
        Self {
            state: Mutex::new(SlotState {
                result: None,
                waker: None,
                phase: Phase::Queued,
            }),
        }
    }
}

impl<T> Slot<T> {
    fn lock(&self) -> MutexGuard<'_, SlotState<T>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The job's end of a [`Slot`]: a job dropped without running (its pool gone) still answers.
struct Sender<T>(Option<Arc<Slot<T>>>);

impl<T> Sender<T> {
    /// Marks the job running; `false` (and nothing more to do) when its caller is gone.
    fn start(&mut self) -> bool {
        let Some(slot) = &self.0 else { return false };
        let mut st = slot.lock();
        if st.phase == Phase::Abandoned {
            drop(st);
            self.0 = None;
            return false;
        }
        st.phase = Phase::Running;
        true
    }

    /// Stores the result; returns the waiting task's waker, and whether the caller gave up
    /// while the job ran (then it was counted in [`State::abandoned`]).
    fn send(mut self, result: std::thread::Result<T>) -> (Option<Waker>, bool) {
        let Some(slot) = self.0.take() else {
            return (None, false);
        };
        let mut st = slot.lock();
        if st.phase == Phase::Abandoned {
            return (None, true);
        }
        st.phase = Phase::Finished;
        st.result = Some(result);
        (st.waker.take(), false)
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        if let Some(slot) = self.0.take() {
            let gone: Box<dyn std::any::Any + Send> = Box::new("the pool thread went away");
            let mut st = slot.lock();
            st.phase = Phase::Finished;
            st.result = Some(Err(gone));
            if let Some(waker) = st.waker.take() {
                drop(st);
                waker.wake();
            }
        }
    }
}

/// The caller's end of a [`Slot`].
struct Receive<T> {
    slot: Arc<Slot<T>>,
    pool: Arc<Shared>,
}

impl<T> Future for Receive<T> {
    type Output = T;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        let mut st = self.slot.lock();
        match st.result.take() {
            Some(Ok(value)) => Poll::Ready(value),
            Some(Err(panic)) => {
                drop(st);
                std::panic::resume_unwind(panic)
            }
            None => {
                if !st.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                    st.waker = Some(cx.waker().clone());
                }
                Poll::Pending
            }
        }
    }
}

impl<T> Drop for Receive<T> {
    /// Gives up on the job: a queued one is skipped; a running one no longer counts as a busy
    /// worker (the slot lock is held while the pool's count changes, so the job's end cannot
    /// see the change half done).
    fn drop(&mut self) {
        let mut st = self.slot.lock();
        match st.phase {
            Phase::Queued => st.phase = Phase::Abandoned,
            Phase::Running => {
                st.phase = Phase::Abandoned;
                self.pool.lock().abandoned += 1;
            }
            Phase::Finished | Phase::Abandoned => {}
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)] // tests abort on failure; one panics on purpose
    use super::*;

    /// A gate jobs wait on until the test opens it; it counts the jobs waiting at once.
    #[derive(Default)]
    struct Gate {
        state: Mutex<(bool, usize, usize)>, // open, waiting now, most waiting at once
        cv: Condvar,
    }

    impl Gate {
        /// A job that reports its start on the returned receiver, then waits for the gate.
        fn held_job(
            self: &Arc<Self>,
        ) -> (
            impl FnOnce() + Send + 'static,
            std::sync::mpsc::Receiver<()>,
        ) {
            let (started_tx, started_rx) = std::sync::mpsc::channel();
            let gate = self.clone();
            let job = move || {
                let _ = started_tx.send(());
                let mut st = gate.state.lock().unwrap();
                while !st.0 {
                    st = gate.cv.wait(st).unwrap();
                }
            };
            (job, started_rx)
        }

        fn open(&self) {
            self.state.lock().unwrap().0 = true;
            self.cv.notify_all();
        }
    }

    /// Asserts that a job submitted now starts (within 10 s) and gives `value`: nothing holds it up.
    fn runs_at_once(pool: &ThreadPool, value: i32, held_by: &str) {
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        let next = pool.run(move || {
            let _ = done_tx.send(());
            value
        });
        assert!(
            done_rx.recv_timeout(Duration::from_secs(10)).is_ok(),
            "a job queued behind {held_by} waited for it"
        );
        assert_eq!(async_io::block_on(next), value);
    }

    #[test]
    fn slow_jobs_get_a_thread_each_up_to_the_cap() {
        let pool = ThreadPool::new("test-pool", 2);
        let gate = Arc::new(Gate::default());
        let runs: Vec<_> = (0..6)
            .map(|i| {
                let gate = gate.clone();
                pool.run(move || {
                    let mut st = gate.state.lock().unwrap();
                    st.1 += 1;
                    st.2 = st.2.max(st.1);
                    gate.cv.notify_all();
                    while !st.0 {
                        st = gate.cv.wait(st).unwrap();
                    }
                    st.1 -= 1;
                    i
                })
            })
            .collect();
        // A job held up must not hold up the next: two run at once (the cap).
        {
            let mut st = gate.state.lock().unwrap();
            while st.1 < 2 {
                let (next, timeout) = gate.cv.wait_timeout(st, IDLE_EXIT).unwrap();
                st = next;
                assert!(!timeout.timed_out(), "the second job never got a thread");
            }
            st.0 = true;
            gate.cv.notify_all();
        }
        let done: Vec<i32> = runs.into_iter().map(async_io::block_on).collect();
        assert_eq!(done, vec![0, 1, 2, 3, 4, 5]);
        assert_eq!(
            gate.state.lock().unwrap().2,
            2,
            "never more than the cap at once"
        );
        assert!(pool.lock().threads <= 2);
    }

    #[test]
    fn threads_beyond_a_steady_load_go_idle_and_exit() {
        let pool = ThreadPool {
            idle_exit: Duration::from_millis(200),
            ..ThreadPool::for_io("test-pool", 8)
        };
        // A burst: three jobs at once, three threads.
        let gate = Arc::new(Gate::default());
        let held: Vec<_> = (0..3)
            .map(|_| {
                let (job, started) = gate.held_job();
                (pool.run(job), started)
            })
            .collect();
        for (_, started) in &held {
            started.recv_timeout(Duration::from_secs(10)).unwrap();
        }
        gate.open();
        for (run, _) in held {
            async_io::block_on(run);
        }
        assert_eq!(pool.lock().threads, 3);
        // Then one job at a time: one thread is enough, and work goes to the thread that went
        // idle last, so the others stay idle and exit. (Woken in turn, as a shared condition
        // variable wakes them, every thread gets work again before its idle time is up, and
        // the pool keeps its busiest moment's threads for ever.)
        let deadline = Instant::now() + Duration::from_secs(10);
        while pool.lock().threads > 2 {
            assert!(
                Instant::now() < deadline,
                "a steady load of one job at a time kept all {} threads of an earlier burst",
                pool.lock().threads
            );
            assert_eq!(async_io::block_on(pool.run(|| 1)), 1);
        }
    }

    #[test]
    fn a_panicking_job_is_resumed_in_its_future_and_the_pool_survives() {
        let pool = ThreadPool::new("test-pool", 1);
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            async_io::block_on(pool.run(|| -> i32 { std::panic::panic_any("on purpose") }))
        }));
        assert!(panicked.is_err());
        assert_eq!(async_io::block_on(pool.run(|| 7)), 7);
    }

    /// A waker that counts its wakes.
    struct Count(std::sync::atomic::AtomicUsize);
    impl std::task::Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }

    #[test]
    fn a_batch_is_queued_when_it_ends_and_its_completions_are_woken_together() {
        let pool = ThreadPool::new("test-pool", 4);
        let count = Arc::new(Count(std::sync::atomic::AtomicUsize::new(0)));
        let waker = Waker::from(count.clone());
        let mut cx = Context::from_waker(&waker);
        let ran = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        // Jobs wait until every future has the counting waker.
        let gate = Arc::new(Gate::default());
        let mut runs: Vec<_> = batch(|| {
            let runs: Vec<_> = (0..100)
                .map(|i| {
                    let (ran, gate) = (ran.clone(), gate.clone());
                    pool.run(move || {
                        let mut st = gate.state.lock().unwrap();
                        while !st.0 {
                            st = gate.cv.wait(st).unwrap();
                        }
                        ran.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        i
                    })
                })
                .collect();
            assert!(pool.lock().jobs.is_empty(), "queued before the batch ended");
            runs
        });
        for run in &mut runs {
            assert!(run.as_mut().poll(&mut cx).is_pending());
        }
        gate.state.lock().unwrap().0 = true;
        gate.cv.notify_all();
        let done: Vec<i32> = runs.into_iter().map(async_io::block_on).collect();
        assert_eq!(done, (0..100).collect::<Vec<_>>());
        assert_eq!(ran.load(std::sync::atomic::Ordering::SeqCst), 100);
        let wakes = count.0.load(std::sync::atomic::Ordering::SeqCst);
        assert!(
            wakes < 50,
            "100 fast jobs woke their task {wakes} times: completions are not woken together"
        );
    }

    #[test]
    fn a_job_whose_caller_gave_up_holds_up_nothing_and_a_queued_one_is_skipped() {
        // A pool whose standby would wait an hour: only the abandoned count lets B through.
        let pool = ThreadPool {
            held_up: Duration::from_secs(3600),
            ..ThreadPool::new("test-pool", 4)
        };
        let gate = Arc::new(Gate::default());
        let (job, started) = gate.held_job();
        let stuck = pool.run(job);
        started.recv().unwrap();
        drop(stuck); // the driver cancelled it; the thread stays in it
        runs_at_once(&pool, 7, "an abandoned one");
        // A job given up before it started does not run at all.
        let ran = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let r = ran.clone();
        batch(|| {
            // Given up inside the batch: queued already abandoned.
            drop(pool.run(move || r.store(true, std::sync::atomic::Ordering::SeqCst)));
        });
        assert_eq!(async_io::block_on(pool.run(|| 8)), 8);
        assert!(!ran.load(std::sync::atomic::Ordering::SeqCst));
        gate.open();
    }

    #[test]
    fn a_run_to_end_job_dropped_before_it_started_still_runs_and_holds_up_nothing() {
        // A standby that would wait an hour: only the abandoned count lets the next job through.
        let pool = ThreadPool {
            held_up: Duration::from_secs(3600),
            ..ThreadPool::new("test-pool", 4)
        };
        let gate = Arc::new(Gate::default());
        let (job, started) = gate.held_job();
        batch(|| {
            // Given up inside the batch: queued already dropped (a handler timeout that fired
            // before a thread took the call), and it hangs once it runs.
            drop(pool.run_to_end(job));
        });
        assert!(
            started.recv_timeout(Duration::from_secs(10)).is_ok(),
            "a run-to-end job was skipped because its caller gave up"
        );
        runs_at_once(&pool, 9, "a dropped run-to-end job");
        gate.open();
    }
}
