//! Replays every fuzz corpus file through its target, so CI proves the fuzz entry points still
//! build and the corpus (seeds and every past crash) never regresses.
//! Run: `cargo test -p dingtalk-core --features fuzzing --test corpus_replay`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests abort on failure

use std::path::Path;

use dingtalk_core::fuzzing;

fn replay(target: &str, f: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target);
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        if path.is_file() {
            f(&std::fs::read(&path).unwrap());
            n += 1;
        }
    }
    assert!(n > 0, "empty corpus for {target}");
}

#[test]
fn frame_corpus() {
    replay("frame", fuzzing::frame);
}

#[test]
fn models_corpus() {
    replay("models", fuzzing::models);
}

#[test]
fn api_response_corpus() {
    replay("api_response", fuzzing::api_response);
}

#[test]
fn callback_corpus() {
    replay("callback", fuzzing::callback);
}

#[test]
fn session_corpus() {
    replay("session", fuzzing::session);
}
