//! Drives dingtalk-core on the async-io stack (async-std, smol); filled in by its own issue.
//!
//! Not implemented yet: this crate is an empty placeholder so the workspace layout is fixed.
