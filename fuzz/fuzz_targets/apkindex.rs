//! APKINDEX: the signed `APKINDEX.tar.gz` reader (gzip members, tar, text)
//! with no trusted key and `--allow-untrusted`, and the bare text format.
#![no_main]
use libfuzzer_sys::fuzz_target;

// The body lives in the library (`rootstrap::fuzzing::apkindex`), so the test
// suite replays the same code on seeds and mutations (tests/integration/fuzz_replay.rs).
fuzz_target!(|data: &[u8]| rootstrap::fuzzing::apkindex::run(data));
