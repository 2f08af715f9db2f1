//! Recipe TOML (a recipe may come from anyone's repository).
#![no_main]
use libfuzzer_sys::fuzz_target;

// The body lives in the library (`rootstrap::fuzzing::recipe`), so the test
// suite replays the same code on seeds and mutations (tests/integration/fuzz_replay.rs).
fuzz_target!(|data: &[u8]| rootstrap::fuzzing::recipe::run(data));
