//! The guide (`guide/en`, `guide/zh`, built with mdBook in CI) keeps one structure in both
//! languages, and its links resolve: every chapter its table of contents names exists, the two
//! tables list the same chapters in the same order, every relative link of a chapter (and of
//! the READMEs) points at a file that exists. Its Rust snippets are compiled as doc tests of
//! this crate (`src/lib.rs`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests abort on failure

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The targets of `](target)` links in markdown, without their `#anchor`.
fn links(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find("](") {
        let after = &rest[i + 2..];
        let Some(end) = after.find(')') else { break };
        let target = after[..end].split('#').next().unwrap_or_default().trim();
        if !target.is_empty() {
            out.push(target.to_owned());
        }
        rest = &after[end..];
    }
    out
}

fn is_local(target: &str) -> bool {
    !(target.starts_with("http://")
        || target.starts_with("https://")
        || target.starts_with("mailto:"))
}

fn chapters(lang: &str) -> Vec<String> {
    let summary =
        std::fs::read_to_string(root().join("guide").join(lang).join("src/SUMMARY.md")).unwrap();
    links(&summary)
}

#[test]
fn both_languages_have_the_same_chapters_and_every_link_resolves() {
    let en = chapters("en");
    let zh = chapters("zh");
    assert!(en.len() >= 12, "{en:?}");
    assert_eq!(en, zh, "the English and Chinese tables of contents differ");
    for lang in ["en", "zh"] {
        let src = root().join("guide").join(lang).join("src");
        for chapter in &en {
            let path = src.join(chapter);
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("{lang}: {chapter} is listed but missing: {e}"));
            assert!(text.starts_with("# "), "{lang}/{chapter} has no title");
            for target in links(&text).iter().filter(|t| is_local(t)) {
                // Links to the other language's built book (../zh/index.html) are output paths.
                if target.ends_with(".html") {
                    continue;
                }
                assert!(
                    path.parent().unwrap().join(target).exists(),
                    "{lang}/{chapter}: broken link to {target}"
                );
            }
        }
    }
}

#[test]
fn the_readmes_links_resolve() {
    let mut readmes = vec![root().join("README.md")];
    for krate in [
        "core",
        "driver",
        "runtime-tokio",
        "runtime-async-std",
        "runtime-blocking",
        "sim",
    ] {
        readmes.push(root().join(krate).join("README.md"));
    }
    for readme in readmes {
        let text = std::fs::read_to_string(&readme).unwrap();
        for target in links(&text).iter().filter(|t| is_local(t)) {
            assert!(
                readme.parent().unwrap().join(target).exists(),
                "{}: broken link to {target}",
                readme.display()
            );
        }
    }
}
