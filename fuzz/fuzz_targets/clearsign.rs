//! OpenPGP clearsigned files and armoured/binary detached signatures: the
//! strict splitter, then armour and packet parsing (an empty keyring, so
//! nothing can verify; everything before that step is reached).
#![no_main]
use libfuzzer_sys::fuzz_target;

// The body lives in the library (`rootstrap::fuzzing::clearsign`), so the test
// suite replays the same code on seeds and mutations (tests/integration/fuzz_replay.rs).
fuzz_target!(|data: &[u8]| rootstrap::fuzzing::clearsign::run(data));
