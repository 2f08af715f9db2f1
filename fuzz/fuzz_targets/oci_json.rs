//! OCI manifests, indexes and configs and Docker's `manifest.json` as a
//! registry or archive serves them; what parses is re-serialised the
//! canonical way, and digests and references parsed.
#![no_main]
use libfuzzer_sys::fuzz_target;

// The body lives in the library (`rootstrap::fuzzing::oci_json`), so the test
// suite replays the same code on seeds and mutations (tests/integration/fuzz_replay.rs).
fuzz_target!(|data: &[u8]| rootstrap::fuzzing::oci_json::run(data));
