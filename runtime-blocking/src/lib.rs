//! Drives dingtalk-core with std threads; filled in by its own issue.
//!
//! Not implemented yet: this crate is an empty placeholder so the workspace layout is fixed.
