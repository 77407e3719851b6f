//! Conformance suite run against every adapter through the emulator.
//!
//! Not implemented yet: the scenarios arrive with the emulator and adapter issues.
