//! The tokio adapter under the conformance suite.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use dingtalk_core::{Credentials, Endpoints, StreamConfig};
use dingtalk_driver::runtime::Runtime;
use dingtalk_sim::Control;
use dingtalk_tokio::{Client, EventAck, HandlerError, RetryPolicy, StopHandle};

use crate::harness::{BotSpec, Harness, RunningBot, Tweaks, card_response};

/// Runs bots with `dingtalk-tokio`.
#[derive(Debug, Clone, Copy, Default)]
pub struct TokioHarness;

/// Applies a scenario's [`Tweaks`] to a session configuration (shared by every harness).
pub fn apply_tweaks(t: &Tweaks, c: &mut StreamConfig) {
    if let Some(v) = t.keepalive_idle {
        c.keepalive_idle = v;
    }
    if let Some(v) = t.keepalive_timeout {
        c.keepalive_timeout = v;
    }
    if let Some(v) = t.backoff_base {
        c.backoff_base = v;
    }
    if let Some(v) = t.backoff_jitter {
        c.backoff_jitter = v;
    }
    if let Some(v) = t.max_in_flight {
        c.max_in_flight = v;
    }
    if let Some(v) = t.stop_timeout {
        c.stop_timeout = v;
    }
    if let Some(v) = t.handler_timeout {
        c.handler_timeout = v;
    }
    if let Some(v) = t.connections {
        c.connections = v;
    }
    if let Some(v) = t.max_frame_bytes {
        c.limits.max_frame_bytes = v;
    }
}

struct Running {
    stop: StopHandle,
    task: tokio::task::JoinHandle<Result<(), dingtalk_tokio::Error>>,
}

impl RunningBot for Running {
    fn stop(&self) {
        self.stop.stop();
    }

    fn join(self: Box<Self>) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>> {
        Box::pin(async move {
            match self.task.await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(format!("{e:?}")),
                Err(e) => Err(format!("run task failed: {e}")),
            }
        })
    }
}

/// The bot of a [`BotSpec`] on any async adapter (the tokio and async-io adapters share the
/// driver's generic builder, so this is written once).
pub fn async_bot<R: Runtime>(
    sim: &Control,
    credentials: Credentials,
    spec: Arc<BotSpec>,
) -> dingtalk_driver::Client<R> {
    let (s1, s2, s3) = (spec.clone(), spec.clone(), spec.clone());
    let tweaks = spec.tweaks.clone();
    let mut retry = RetryPolicy::default();
    if let Some(d) = tweaks.retry_max_delay {
        retry.max_delay = d;
    }
    let mut builder = dingtalk_driver::Client::<R>::builder(credentials)
        .endpoints(Endpoints::single(sim.base_url()));
    if let Some(p) = tweaks.proxies.clone() {
        builder = builder.proxies(p);
    }
    builder
        .configure(|c| apply_tweaks(&tweaks, c))
        .retry_policy(retry)
        .on_bot_message(move |ctx| {
            let spec = s1.clone();
            async move {
                let text = ctx.text().unwrap_or_default().to_owned();
                spec.seen.handled(&ctx.message().msg_id);
                if spec.panic_on.as_deref() == Some(text.as_str()) {
                    panic!("handler panics on purpose");
                }
                if spec.call_api {
                    let call = BotSpec::api_call(ctx.message(), ctx.api().robot_code());
                    let r = ctx.api().call(&call).await;
                    spec.seen
                        .api_result(r.map(|_| ()).map_err(|e| e.to_string()));
                }
                if spec.echo && !text.is_empty() {
                    ctx.reply_text(text).await?;
                }
                Ok::<(), HandlerError>(())
            }
        })
        .on_event(move |ev, _api| {
            let spec = s2.clone();
            async move {
                spec.seen.entered();
                let _leaving = spec.leaving();
                spec.gate.wait().await;
                spec.seen
                    .handled(ev.event_id.as_deref().unwrap_or_default());
                Ok::<_, HandlerError>(EventAck::Success)
            }
        })
        .on_card_callback(move |cb, _api| {
            let spec = s3.clone();
            async move {
                spec.seen.entered();
                spec.gate.wait().await;
                spec.seen.handled(&cb.out_track_id);
                Ok::<_, HandlerError>(Some(card_response()))
            }
        })
        .build()
        .expect("client builds")
}

impl Harness for TokioHarness {
    fn name(&self) -> &'static str {
        "tokio"
    }

    fn start(
        &self,
        sim: &Control,
        credentials: Credentials,
        spec: Arc<BotSpec>,
    ) -> Box<dyn RunningBot> {
        let client: Client = async_bot(sim, credentials, spec);
        let stop = client.stop_handle();
        let task = tokio::spawn(async move { client.run().await });
        Box::new(Running { stop, task })
    }
}
