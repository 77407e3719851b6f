//! The conformance suite against `dingtalk-tokio`.
dingtalk_tests::conformance_suite!(dingtalk_tests::tokio_harness::TokioHarness);
