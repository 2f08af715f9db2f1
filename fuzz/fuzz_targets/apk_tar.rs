//! The in-memory tar parser of the apk path (PAX checksums, long names).
#![no_main]
use libfuzzer_sys::fuzz_target;
use rootstrap::distro::apk::tar::parse_entries;

fuzz_target!(|data: &[u8]| {
    let _ = parse_entries("fuzz", data);
});
