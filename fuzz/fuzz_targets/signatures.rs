//! What `rootstrap verify` reads from a registry or layout that an attacker
//! controls: private/public key files, signature manifests, simple-signing
//! payloads with their signatures, and DSSE attestation envelopes.
#![no_main]
use libfuzzer_sys::fuzz_target;

// The body lives in the library (`rootstrap::fuzzing::signatures`), so the test
// suite replays the same code on seeds and mutations (tests/integration/fuzz_replay.rs).
fuzz_target!(|data: &[u8]| rootstrap::fuzzing::signatures::run(data));
