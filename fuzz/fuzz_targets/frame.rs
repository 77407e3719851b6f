#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| dingtalk_core::fuzzing::frame(data));
