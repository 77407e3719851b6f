//! The async-io adapter under the conformance suite, on the async-std executor or on smol.

use std::sync::Arc;

use dingtalk_async_std::{Client, EventAck, HandlerError};
use dingtalk_core::{Credentials, Endpoints};
use dingtalk_sim::Control;

use crate::harness::{BotSpec, Harness, RunningBot, ThreadBot, card_response};
use crate::tokio_harness::apply_tweaks;

/// Which executor drives `Client::run`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Executor {
    /// `async_std::task::block_on`.
    AsyncStd,
    /// `smol::block_on`.
    Smol,
}

/// Runs bots with `dingtalk-async-std` on a dedicated thread.
#[derive(Debug, Clone, Copy)]
pub struct AsyncStdHarness(pub Executor);

impl Harness for AsyncStdHarness {
    fn name(&self) -> &'static str {
        match self.0 {
            Executor::AsyncStd => "async-std",
            Executor::Smol => "smol",
        }
    }

    fn start(
        &self,
        sim: &Control,
        credentials: Credentials,
        spec: Arc<BotSpec>,
    ) -> Box<dyn RunningBot> {
        let (s1, s2, s3) = (spec.clone(), spec.clone(), spec.clone());
        let tweaks = spec.tweaks.clone();
        let client = Client::builder(credentials)
            .endpoints(Endpoints::single(sim.base_url()))
            .configure(|c| apply_tweaks(&tweaks, c))
            .on_bot_message(move |ctx| {
                let spec = s1.clone();
                async move {
                    let text = ctx.text().unwrap_or_default().to_owned();
                    spec.seen.handled(&ctx.message.msg_id);
                    if spec.panic_on.as_deref() == Some(text.as_str()) {
                        panic!("handler panics on purpose");
                    }
                    if spec.call_api {
                        let call = BotSpec::api_call(&ctx.message, ctx.api().robot_code());
                        let r = ctx.api().call(call).await;
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
            .expect("client builds");
        let stop = client.stop_handle();
        let executor = self.0;
        ThreadBot::spawn(
            move || stop.stop(),
            move || match executor {
                Executor::AsyncStd => async_std::task::block_on(client.run()),
                Executor::Smol => smol::block_on(client.run()),
            },
        )
    }
}
