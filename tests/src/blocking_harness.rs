//! The blocking adapter under the conformance suite: each bot runs on its own thread.

use std::sync::Arc;

use dingtalk_blocking::{Client, EventAck, HandlerError, RetryPolicy};
use dingtalk_core::{Credentials, Endpoints};
use dingtalk_sim::Control;

use crate::harness::{BotSpec, Harness, RunningBot, ThreadBot, card_response};
use crate::tokio_harness::apply_tweaks;

/// Runs bots with `dingtalk-blocking`.
#[derive(Debug, Clone, Copy, Default)]
pub struct BlockingHarness;

impl Harness for BlockingHarness {
    fn name(&self) -> &'static str {
        "blocking"
    }

    fn cancels_handlers(&self) -> bool {
        false
    }

    fn start(
        &self,
        sim: &Control,
        credentials: Credentials,
        spec: Arc<BotSpec>,
    ) -> Box<dyn RunningBot> {
        let (s1, s2, s3) = (spec.clone(), spec.clone(), spec.clone());
        let tweaks = spec.tweaks.clone();
        let mut retry = RetryPolicy::default();
        if let Some(d) = tweaks.retry_max_delay {
            retry.max_delay = d;
        }
        let mut builder = Client::builder(credentials).endpoints(Endpoints::single(sim.base_url()));
        if let Some(n) = tweaks.max_in_flight {
            builder = builder.concurrency(n);
        }
        if let Some(p) = tweaks.proxies.clone() {
            builder = builder.proxies(p);
        }
        let client = builder
            .configure(|c| apply_tweaks(&tweaks, c))
            .retry_policy(retry)
            .on_bot_message(move |ctx| {
                let text = ctx.text().unwrap_or_default().to_owned();
                s1.seen.handled(&ctx.message().msg_id);
                if s1.panic_on.as_deref() == Some(text.as_str()) {
                    panic!("handler panics on purpose");
                }
                if s1.call_api {
                    let r = ctx
                        .api()
                        .call(&BotSpec::api_call(ctx.message(), ctx.api().robot_code()));
                    s1.seen.api_result(r.map(|_| ()).map_err(|e| e.to_string()));
                }
                if s1.echo && !text.is_empty() {
                    ctx.reply_text(text)?;
                }
                Ok::<(), HandlerError>(())
            })
            .on_event(move |ev, _api| {
                s2.seen.entered();
                let _leaving = s2.leaving();
                s2.gate.wait_blocking();
                s2.seen.handled(ev.event_id.as_deref().unwrap_or_default());
                Ok::<_, HandlerError>(EventAck::Success)
            })
            .on_card_callback(move |cb, _api| {
                s3.seen.entered();
                s3.gate.wait_blocking();
                s3.seen.handled(&cb.out_track_id);
                Ok::<_, HandlerError>(Some(card_response()))
            })
            .build()
            .expect("client builds");
        let stop = client.stop_handle();
        ThreadBot::spawn(move || stop.stop(), move || client.run())
    }
}
