//! The public surface of the published crates is guarded: every `pub` item line of their
//! sources is listed in `api/public-api.txt`, and `CHANGELOG.md` names the list's SHA-256. A
//! change to the public API therefore fails this test until the list is regenerated
//! (`DINGTALK_BLESS_API=1 cargo test -p dingtalk-tests --test public_api`) and the CHANGELOG
//! gets an entry with the new hash, so no public change lands without the CHANGELOG saying so.
//! (A `cargo-semver-checks` step replaces this once a version is tagged.)
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests abort on failure

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

const CRATES: [&str; 6] = [
    "core",
    "driver",
    "runtime-tokio",
    "runtime-async-std",
    "runtime-blocking",
    "sim",
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

/// `path: line` for every line that declares a `pub` item (not `pub(crate)` and the like).
fn surface(root: &Path) -> String {
    let mut lines = Vec::new();
    for krate in CRATES {
        let mut files = Vec::new();
        rust_files(&root.join(krate).join("src"), &mut files);
        for file in files {
            let rel = file.strip_prefix(root).unwrap().display().to_string();
            let text = std::fs::read_to_string(&file).unwrap();
            let mut in_tests = false;
            for line in text.lines() {
                let t = line.trim_start();
                if t.starts_with("mod tests") || t.starts_with("mod ai_card_tests") {
                    in_tests = true;
                }
                if in_tests {
                    continue;
                }
                if t.starts_with("pub ") {
                    let item = t.trim_end().trim_end_matches('{').trim_end();
                    lines.push(format!("{rel}: {item}"));
                }
            }
        }
    }
    lines.join("\n") + "\n"
}

#[test]
fn the_public_api_changes_only_with_a_changelog_entry() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let now = surface(&root);
    let listed = root.join("api/public-api.txt");
    if std::env::var_os("DINGTALK_BLESS_API").is_some() {
        std::fs::create_dir_all(root.join("api")).unwrap();
        std::fs::write(&listed, &now).unwrap();
    }
    let before = std::fs::read_to_string(&listed).unwrap_or_default();
    if before != now {
        let old: std::collections::BTreeSet<&str> = before.lines().collect();
        let new: std::collections::BTreeSet<&str> = now.lines().collect();
        let removed: Vec<_> = old.difference(&new).take(20).collect();
        let added: Vec<_> = new.difference(&old).take(20).collect();
        panic!(
            "the public API changed.\nremoved: {removed:#?}\nadded: {added:#?}\n\
             Regenerate api/public-api.txt with DINGTALK_BLESS_API=1, then say what changed in \
             CHANGELOG.md (Unreleased) and update its `public-api` hash line."
        );
    }
    let hash = hex(&Sha256::digest(now.as_bytes()));
    let changelog = std::fs::read_to_string(root.join("CHANGELOG.md")).unwrap();
    assert!(
        changelog.contains(&format!("<!-- public-api: {hash} -->")),
        "CHANGELOG.md does not name the current public API: add an entry saying what changed \
         and set its hash line to `<!-- public-api: {hash} -->`"
    );
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
