//! The checks live in the library (`counterd::fuzzing::connection`), so that `cargo test` replays
//! the corpus and the regressions through them too.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| counterd::fuzzing::connection(data));
