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
    /// A pool whose threads carry `name`; no thread starts before the first job.
    pub fn new(name: &'static str) -> Self {
        Self {
            shared: Arc::default(),
            name,
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
        if st.waking > 0 {
            // A thread is on its way; it drains the queue.
            return;
        }
        if st.idle > 0 {
            st.idle -= 1;
            st.waking += 1;
            drop(st);
            self.shared.work.notify_one();
            return;
        }
        st.threads += 1;
        st.waking += 1;
        drop(st);
        let pool = self.clone();
        let spawned = std::thread::Builder::new()
            .name(self.name.into())
            .spawn(move || pool.work());
        if let Err(e) = spawned {
            tracing::error!(%e, "could not start a pool thread");
            let mut st = self.lock();
            st.threads -= 1;
            st.waking -= 1;
        }
    }

    fn work(&self) {
        let mut st = self.lock();
        // This thread was counted as a wake-up when it was spawned or notified.
        st.waking = st.waking.saturating_sub(1);
        loop {
            if let Some(job) = st.jobs.pop_front() {
                // Work left behind while this job runs: wake one more thread for it.
                let wake = !st.jobs.is_empty() && st.waking == 0 && st.idle > 0;
                if wake {
                    st.idle -= 1;
                    st.waking += 1;
                }
                drop(st);
                if wake {
                    self.shared.work.notify_one();
                }
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
                    st.threads -= 1;
                    return;
                }
            }
        }
    }
}
