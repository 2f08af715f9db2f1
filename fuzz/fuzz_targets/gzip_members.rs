//! The gzip member splitter apk signatures depend on (exact compressed-byte
//! boundaries, CRC, ISIZE, trailing bytes).
#![no_main]
use libfuzzer_sys::fuzz_target;
use rootstrap::distro::apk::gzsplit::{read_member, split_members};

fuzz_target!(|data: &[u8]| {
    if let Ok(members) = split_members("fuzz", data, 3, 1 << 20) {
        for m in &members {
            assert!(m.range.end <= data.len() && m.range.start < m.range.end);
        }
    }
    let _ = read_member("fuzz", data, 0, 1 << 16);
});
