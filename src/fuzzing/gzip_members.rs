//! The gzip member splitter apk signatures depend on (exact compressed-byte
//! boundaries, CRC, ISIZE, trailing bytes).
use crate::distro::apk::gzsplit::{read_member, split_members};

/// The fuzz target: `data` is any input libFuzzer makes.
pub fn run(data: &[u8]) {
    if let Ok(members) = split_members("fuzz", data, 3, 1 << 20) {
        for m in &members {
            assert!(m.range.end <= data.len() && m.range.start < m.range.end);
        }
    }
    let _ = read_member("fuzz", data, 0, 1 << 16);
}
