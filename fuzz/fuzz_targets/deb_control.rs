//! Debian control syntax: paragraphs, Packages and Release files (then the
//! Release checks and index selection), relations and versions.
#![no_main]
use libfuzzer_sys::fuzz_target;

// The body lives in the library (`rootstrap::fuzzing::deb_control`), so the test
// suite replays the same code on seeds and mutations (tests/integration/fuzz_replay.rs).
fuzz_target!(|data: &[u8]| rootstrap::fuzzing::deb_control::run(data));
