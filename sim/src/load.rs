//! Driving a bot with load: the demo conversation the examples play, and the load generator
//! the benches use (frames pushed as fast as acks allow, with a bounded window).

use super::*;

impl Control {
    /// Plays the quickstart conversation (a one-to-one text, a group message that @-mentions the
    /// bot, a picture), waiting for the bot's reply to each, and calls `print` with every line
    /// of the transcript. Fails if a reply does not come within `timeout` or the bot broke the
    /// protocol.
    pub async fn play_demo_conversation(
        &self,
        timeout: Duration,
        mut print: impl FnMut(&str),
    ) -> Result<(), WaitTimeout> {
        let conversation = [
            ("one-to-one", Some("hello bot"), Chat::Private),
            ("group, @bot", Some("@EchoBot what did I say?"), Chat::Group),
            ("one-to-one", None, Chat::Private),
        ];
        self.wait_connections(1, timeout).await?;
        let before = self.snapshot().webhooks.len();
        for (n, (place, text, chat)) in conversation.into_iter().enumerate() {
            match text {
                Some(t) => {
                    print(&format!("[{place}] user: {t}"));
                    self.bot_text(t, chat);
                }
                None => {
                    print(&format!("[{place}] user: <a picture>"));
                    self.bot_picture(chat);
                }
            }
            let snap = self
                .wait_for("the bot's reply", timeout, |s| {
                    s.webhooks.len() > before + n
                })
                .await?;
            let reply = &snap.webhooks[before + n].body;
            let text = reply["text"]["content"]
                .as_str()
                .or_else(|| reply["markdown"]["text"].as_str())
                .unwrap_or_default();
            print(&format!("[{place}] bot:  {text}\n"));
        }
        let snap = self.snapshot();
        print(&format!(
            "{} frames acked, {} replies, protocol violations: {}",
            snap.acks.len(),
            snap.webhooks.len(),
            snap.violations.len()
        ));
        if snap.violations.is_empty() {
            Ok(())
        } else {
            Err(WaitTimeout(format!(
                "a clean protocol run; violations: {:?}",
                snap.violations
            )))
        }
    }

    /// Pushes `frames` (prebuilt texts with their message ids) on the newest live connection
    /// with at most `window` un-acked at a time, and measures push-to-ack latency. Fails if the
    /// acks do not all come within `timeout`.
    pub async fn run_load(
        &self,
        frames: Vec<(String, String)>,
        window: usize,
        timeout: Duration,
    ) -> Result<LoadReport, WaitTimeout> {
        let permits = Arc::new(tokio::sync::Semaphore::new(window.max(1)));
        let done = Arc::new(tokio::sync::Notify::new());
        let n = frames.len();
        let tx = {
            let mut st = self.shared.lock();
            let conn =
                Self::active_conn(&st).ok_or_else(|| WaitTimeout("a live connection".into()))?;
            st.load = Some(Load {
                pending: HashMap::with_capacity(n),
                latencies: Vec::with_capacity(n),
                permits: permits.clone(),
                done: done.clone(),
                remaining: n,
            });
            st.slots
                .get(&conn)
                .map(|s| s.tx.clone())
                .ok_or_else(|| WaitTimeout("a live connection".into()))?
        };
        let start = Instant::now();
        let deadline = tokio::time::Instant::now() + timeout;
        let finished = done.notified();
        tokio::pin!(finished);
        for (id, text) in frames {
            match tokio::time::timeout_at(deadline, permits.acquire()).await {
                Ok(Ok(p)) => p.forget(),
                _ => return Err(WaitTimeout("a free slot in the ack window".into())),
            }
            if let Some(load) = self.shared.lock().load.as_mut() {
                load.pending.insert(id, Instant::now());
            }
            if tx.send(Cmd::Text(text)).is_err() {
                return Err(WaitTimeout("the connection to stay open".into()));
            }
        }
        if n > 0
            && tokio::time::timeout_at(deadline, &mut finished)
                .await
                .is_err()
        {
            return Err(WaitTimeout("every ack of the load run".into()));
        }
        let elapsed = start.elapsed();
        let mut latencies = self
            .shared
            .lock()
            .load
            .take()
            .map(|l| l.latencies)
            .unwrap_or_default();
        latencies.sort_unstable();
        Ok(LoadReport {
            frames: n,
            elapsed,
            latencies,
        })
    }
}
