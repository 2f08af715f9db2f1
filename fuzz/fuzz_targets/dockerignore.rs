//! `.dockerignore` patterns, then matching them against paths taken from the
//! same input (first line = patterns end marker is a NUL byte).
#![no_main]
use libfuzzer_sys::fuzz_target;

// The body lives in the library (`rootstrap::fuzzing::dockerignore`), so the test
// suite replays the same code on seeds and mutations (tests/integration/fuzz_replay.rs).
fuzz_target!(|data: &[u8]| rootstrap::fuzzing::dockerignore::run(data));
