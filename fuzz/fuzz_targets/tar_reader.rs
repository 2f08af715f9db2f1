//! The one streaming tar reader, directly (packages, ADD) and through its
//! image-layer view, every entry's data read to the end, and archive names
//! through the rootfs path check.
#![no_main]
use libfuzzer_sys::fuzz_target;

// The body lives in the library (`rootstrap::fuzzing::tar_reader`), so the test
// suite replays the same code on seeds and mutations (tests/integration/fuzz_replay.rs).
fuzz_target!(|data: &[u8]| rootstrap::fuzzing::tar_reader::run(data));
