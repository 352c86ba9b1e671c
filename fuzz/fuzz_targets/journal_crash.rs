//! The checks live in the library (`counterd::fuzzing::journal_crash`), so that `cargo test`
//! replays the corpus through them too.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| counterd::fuzzing::journal_crash(data));
