//! The in-memory tar parser of the apk path (PAX checksums, long names).
use crate::distro::apk::tar::parse_entries;

/// The fuzz target: `data` is any input libFuzzer makes.
pub fn run(data: &[u8]) {
    let _ = parse_entries("fuzz", data);
}
