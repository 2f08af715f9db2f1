//! The ar reader on its own, then as a .deb (member order, debian-binary,
//! control.tar) down to the capped data.tar decoder.
#![no_main]
use libfuzzer_sys::fuzz_target;

// The body lives in the library (`rootstrap::fuzzing::ar_deb`), so the test
// suite replays the same code on seeds and mutations (tests/integration/fuzz_replay.rs).
fuzz_target!(|data: &[u8]| rootstrap::fuzzing::ar_deb::run(data));
