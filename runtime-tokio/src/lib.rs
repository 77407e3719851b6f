//! Drives dingtalk-core on tokio (filled in by the tokio-adapter issue).
//!
//! Not implemented yet: this crate is an empty placeholder so the workspace layout is fixed.
