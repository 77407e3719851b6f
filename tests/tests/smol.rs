//! The conformance suite against `dingtalk-async-std`, driven by smol.
use dingtalk_tests::async_std_harness::{AsyncStdHarness, Executor};
dingtalk_tests::conformance_suite!(AsyncStdHarness(Executor::Smol));
