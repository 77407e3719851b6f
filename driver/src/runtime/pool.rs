//! A pool of threads for blocking work (the blocking adapter's handlers, ureq requests) that
//! wakes as few threads as the work needs and keeps them: a burst of jobs wakes one thread,
//! which drains the queue and wakes one more only when it finds work left behind while it runs
//! one; idle threads stay for 10 s, so a steady load creates no threads. Fast jobs cost one
//! wake-up per burst instead of one thread hand-off each; slow jobs still get a thread each
//! (the callers bound how many are in flight: the client's concurrency).

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

type Job = Box<dyn FnOnce() + Send>;

/// An idle thread exits after this long without work.
const IDLE_EXIT: Duration = Duration::from_secs(10);

#[derive(Default)]
struct State {
    jobs: VecDeque<Job>,
    /// Threads waiting for work.
    idle: usize,
    /// Wake-ups sent and not yet taken by a thread.
    waking: usize,
    threads: usize,
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    work: Condvar,
}

/// A pool of threads for blocking work; cheap to clone (clones share the threads).
#[derive(Clone)]
pub struct ThreadPool {
    shared: Arc<Shared>,
    name: &'static str,
    max_threads: usize,
}

impl std::fmt::Debug for ThreadPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let st = self.lock();
        f.debug_struct("ThreadPool")
            .field("name", &self.name)
            .field("threads", &st.threads)
            .field("idle", &st.idle)
            .field("queued", &st.jobs.len())
            .finish()
    }
}

impl ThreadPool {
    /// A pool of at most `max_threads` threads (at least one) named `name`; no thread starts
    /// before the first job. Jobs beyond the threads wait in the queue.
    pub fn new(name: &'static str, max_threads: usize) -> Self {
        Self {
            shared: Arc::default(),
            name,
            max_threads: max_threads.max(1),
        }
    }

    /// Runs `f` on a pool thread; the future gives its result. A panic in `f` is resumed when
    /// the future is polled (where the driver catches it as a failed handler).
    pub fn run<T, F>(&self, f: F) -> super::BoxFuture<'static, T>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let (tx, rx) = futures_channel::oneshot::channel();
        self.submit(Box::new(move || {
            let _ = tx.send(std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)));
        }));
        Box::pin(async move {
            match rx.await {
                Ok(Ok(value)) => value,
                Ok(Err(panic)) => std::panic::resume_unwind(panic),
                Err(_) => std::panic::resume_unwind(Box::new("the pool thread went away")),
            }
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.shared.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `job` on a pool thread.
    fn submit(&self, job: Job) {
        let mut st = self.lock();
        st.jobs.push_back(job);
        let call = self.call_worker(&mut st);
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
        if st.idle > 0 {
            st.idle -= 1;
            st.waking += 1;
            return Call::Notify;
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
            Call::Notify => self.shared.work.notify_one(),
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
                }
            }
        }
    }

    fn work(&self) {
        let mut st = self.lock();
        // This thread was counted as a wake-up when it was spawned or notified.
        st.waking = st.waking.saturating_sub(1);
        loop {
            if let Some(job) = st.jobs.pop_front() {
                // Work left behind while this job runs: call one more thread for it (an idle
                // one, or a new one below the pool's size), so a slow job never holds up the
                // jobs queued after it.
                let call = if st.jobs.is_empty() {
                    Call::None
                } else {
                    self.call_worker(&mut st)
                };
                drop(st);
                self.perform(call);
                job();
                st = self.lock();
                continue;
            }
            st.idle += 1;
            let (guard, timeout) = self
                .shared
                .work
                .wait_timeout(st, IDLE_EXIT)
                .unwrap_or_else(|e| e.into_inner());
            st = guard;
            if st.waking > 0 {
                // Woken on purpose (whoever notified already took this thread off `idle`).
                st.waking -= 1;
            } else {
                // Spurious or timed out: still counted as idle.
                st.idle = st.idle.saturating_sub(1);
                if timeout.timed_out() && st.jobs.is_empty() {
                    st.threads = st.threads.saturating_sub(1);
                    return;
                }
            }
        }
    }
}

/// What `call_worker` decided.
enum Call {
    None,
    Notify,
    Spawn,
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
    fn a_panicking_job_is_resumed_in_its_future_and_the_pool_survives() {
        let pool = ThreadPool::new("test-pool", 1);
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            async_io::block_on(pool.run(|| -> i32 { std::panic::panic_any("on purpose") }))
        }));
        assert!(panicked.is_err());
        assert_eq!(async_io::block_on(pool.run(|| 7)), 7);
    }
}
