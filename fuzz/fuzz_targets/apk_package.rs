//! A .apk against an index entry that claims no size or checksum, with
//! `--allow-untrusted`: the whole v2 reader (members, tar, .PKGINFO,
//! datahash) and then its data entries; plus `.PKGINFO` text on its own.
#![no_main]
use libfuzzer_sys::fuzz_target;

// The body lives in the library (`rootstrap::fuzzing::apk_package`), so the test
// suite replays the same code on seeds and mutations (tests/integration/fuzz_replay.rs).
fuzz_target!(|data: &[u8]| rootstrap::fuzzing::apk_package::run(data));
