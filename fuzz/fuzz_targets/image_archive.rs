//! A whole docker-archive or oci-archive tar, written to a temporary file
//! and opened, checked (fsck) and unpacked into memory as `rootstrap` does
//! with an image file someone hands it.
#![no_main]
use libfuzzer_sys::fuzz_target;

// The body lives in the library (`rootstrap::fuzzing::image_archive`), so the test
// suite replays the same code on seeds and mutations (tests/integration/fuzz_replay.rs).
fuzz_target!(|data: &[u8]| rootstrap::fuzzing::image_archive::run(data));
