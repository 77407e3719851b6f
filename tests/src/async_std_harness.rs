//! The async-io adapter under the conformance suite, on the async-std executor or on smol.

use std::sync::Arc;

use dingtalk_async_std::Client;
use dingtalk_core::Credentials;
use dingtalk_sim::Control;

use crate::harness::{BotSpec, Harness, RunningBot, ThreadBot};
use crate::tokio_harness::async_bot;

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
        let client: Client = async_bot(sim, credentials, spec);
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
