//! The gzip member splitter apk signatures depend on (exact compressed-byte
//! boundaries, CRC, ISIZE, trailing bytes).
#![no_main]
use libfuzzer_sys::fuzz_target;

// The body lives in the library (`rootstrap::fuzzing::gzip_members`), so the test
// suite replays the same code on seeds and mutations (tests/integration/fuzz_replay.rs).
fuzz_target!(|data: &[u8]| rootstrap::fuzzing::gzip_members::run(data));
