//! The conformance suite against `dingtalk-async-std` on the async-std executor.
#![allow(clippy::unwrap_used)] // tests abort on failure

use dingtalk_tests::async_std_harness::{AsyncStdHarness, Executor};
use dingtalk_tests::scenarios;

macro_rules! scenario {
    ($($name:ident),* $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            scenarios::$name(&AsyncStdHarness(Executor::AsyncStd)).await;
        }
    )*};
}

scenario!(
    echo_round_trip,
    ping_echoed,
    disconnect_loses_and_duplicates_nothing,
    abrupt_close_reconnects_with_backoff,
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
);
