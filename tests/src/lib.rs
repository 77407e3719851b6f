//! The conformance suite: every Stream scenario, written once against the [`Harness`] trait and
//! run for each adapter through the emulator. Every scenario asserts what the emulator saw on
//! the wire (acks, connections, open requests, webhook and API calls), not only what the bot
//! logged.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test suite aborts on failure

pub mod async_std_harness;
pub mod blocking_harness;
pub mod harness;
pub mod scenarios;
pub mod tokio_harness;

pub use harness::{BotSpec, Gate, Harness, RunningBot, Seen, Tweaks};
