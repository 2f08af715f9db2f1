//! The word-level Dockerfile grammars: variable expansion (both escape
//! characters, joined and split), heredoc markers and `RUN --mount` specs.
#![no_main]
use libfuzzer_sys::fuzz_target;

// The body lives in the library (`rootstrap::fuzzing::dockerfile_words`), so the test
// suite replays the same code on seeds and mutations (tests/integration/fuzz_replay.rs).
fuzz_target!(|data: &[u8]| rootstrap::fuzzing::dockerfile_words::run(data));
