//! Dockerfile text → parser → instructions → variable expansion, as a build
//! reads an untrusted Dockerfile.
#![no_main]
use libfuzzer_sys::fuzz_target;

// The body lives in the library (`rootstrap::fuzzing::dockerfile`), so the test
// suite replays the same code on seeds and mutations (tests/integration/fuzz_replay.rs).
fuzz_target!(|data: &[u8]| rootstrap::fuzzing::dockerfile::run(data));
