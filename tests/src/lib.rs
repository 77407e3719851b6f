//! The conformance suite: every Stream scenario, written once against the [`Harness`] trait and
//! run for each adapter through the emulator. Every scenario asserts what the emulator saw on
//! the wire (acks, connections, open requests, webhook and API calls), not only what the bot
//! logged.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test suite aborts on failure

pub mod async_std_harness;
pub mod blocking_harness;
#[doc(hidden)]
pub mod e2e_client;
pub mod harness;
pub mod scenarios;
pub mod servers;
pub mod tokio_harness;

pub use harness::{BotSpec, Gate, Harness, RunningBot, Seen, Tweaks};

/// Generates one `#[tokio::test]` per scenario for the harness `$harness` (the emulator runs on
/// the test's tokio runtime; the bot under test runs however its adapter runs).
#[macro_export]
macro_rules! conformance_suite {
    ($harness:expr) => {
        $crate::conformance_suite!(@tests $harness;
            echo_round_trip,
            ping_echoed,
            disconnect_loses_and_duplicates_nothing,
            abrupt_close_reconnects_at_once_then_backs_off,
            duplicate_message_id_handled_once,
            wrong_credentials_are_terminal,
            malformed_and_unknown_frames_survived,
            slow_handlers_do_not_block_pings,
            graceful_stop_acks_in_flight_work,
            token_expiry_is_refreshed_and_retried,
            rate_limited_call_is_retried,
            card_callback_answered_in_the_ack,
            dead_connection_is_detected_and_replaced,
            open_failures_are_retried,
            handler_panic_is_contained,
            hanging_handler_is_cancelled_at_the_handler_timeout,
            several_connections_share_dedup_and_ack_on_their_own,
            the_frame_limit_bounds_websocket_messages,
        );
    };
    (@tests $harness:expr; $($name:ident),* $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            $crate::scenarios::$name(&$harness).await;
        }
    )*};
}

/// The guide's Rust snippets (`guide/en`, `guide/zh`), compiled as doc tests of this crate,
/// which depends on every adapter with every feature.
#[cfg(doctest)]
mod guide {
    macro_rules! chapters {
        ($($name:ident = $path:literal),* $(,)?) => {
            $(
                #[doc = include_str!(concat!("../../guide/", $path))]
                struct $name;
            )*
        };
    }
    chapters! {
        EnGettingStarted = "en/src/getting-started.md",
        EnBots = "en/src/bots.md",
        EnSending = "en/src/sending.md",
        EnAiCards = "en/src/ai-cards.md",
        EnHttpCallbacks = "en/src/http-callbacks.md",
        EnDeploying = "en/src/deploying.md",
        EnMigrationStream = "en/src/migration-dingtalk-stream.md",
        EnMigrationDingraia = "en/src/migration-dingraia.md",
        ZhGettingStarted = "zh/src/getting-started.md",
        ZhBots = "zh/src/bots.md",
        ZhSending = "zh/src/sending.md",
        ZhAiCards = "zh/src/ai-cards.md",
        ZhHttpCallbacks = "zh/src/http-callbacks.md",
        ZhDeploying = "zh/src/deploying.md",
        ZhMigrationStream = "zh/src/migration-dingtalk-stream.md",
        ZhMigrationDingraia = "zh/src/migration-dingraia.md",
    }
}
