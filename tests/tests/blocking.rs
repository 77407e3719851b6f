//! The conformance suite against `dingtalk-blocking`.
dingtalk_tests::conformance_suite!(dingtalk_tests::blocking_harness::BlockingHarness);
