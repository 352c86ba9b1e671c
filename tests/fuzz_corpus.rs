//! Replays every input under fuzz/corpus/<target>/, fuzz/regressions/<target>/ and (when a
//! local fuzz run left any) fuzz/artifacts/<target>/ through the same checks the fuzz
//! targets run (`counterd::fuzzing`), on stable, as part of `cargo test`.

use std::fs;
use std::panic;
use std::path::{Path, PathBuf};

fn inputs(target: &str) -> Vec<PathBuf> {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut files = Vec::new();
    for dir in ["corpus", "regressions", "artifacts"] {
        let Ok(entries) = fs::read_dir(fuzz.join(dir).join(target)) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_file() {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

fn replay(target: &str, check: fn(&[u8])) {
    let files = inputs(target);
    assert!(
        !files.is_empty(),
        "no inputs for {target} under fuzz/corpus, fuzz/regressions or fuzz/artifacts"
    );
    let mut failed = Vec::new();
    for path in &files {
        let data = fs::read(path).unwrap();
        if panic::catch_unwind(|| check(&data)).is_err() {
            failed.push(path.display().to_string());
        }
    }
    assert!(
        failed.is_empty(),
        "{target}: {} of {} inputs fail (reproduce with `cargo fuzz run {target} FILE`):\n  {}",
        failed.len(),
        files.len(),
        failed.join("\n  ")
    );
    eprintln!("{target}: {} inputs replayed", files.len());
}

#[test]
fn parse_request_corpus() {
    replay("parse_request", counterd::fuzzing::parse_request);
}

#[test]
fn query_corpus() {
    replay("query", counterd::fuzzing::query);
}

#[test]
fn connection_corpus() {
    replay("connection", counterd::fuzzing::connection);
}

#[test]
fn journal_corpus() {
    replay("journal", counterd::fuzzing::journal);
}

#[test]
fn journal_crash_corpus() {
    replay("journal_crash", counterd::fuzzing::journal_crash);
}
