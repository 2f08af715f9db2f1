//! The capped decoders (gzip, xz, zstd, none) chosen by magic, as ADD and
//! layer reading use them: output must stop at the cap.
#![no_main]
use libfuzzer_sys::fuzz_target;

// The body lives in the library (`rootstrap::fuzzing::decompress`), so the test
// suite replays the same code on seeds and mutations (tests/integration/fuzz_replay.rs).
fuzz_target!(|data: &[u8]| rootstrap::fuzzing::decompress::run(data));
