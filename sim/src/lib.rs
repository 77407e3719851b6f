//! A local DingTalk emulator; filled in by the emulator issue.
//!
//! Not implemented yet: this crate is an empty placeholder so the workspace layout is fixed.
