//! APKINDEX: the signed `APKINDEX.tar.gz` reader (gzip members, tar, text)
//! with no trusted key and `--allow-untrusted`, and the bare text format.
use crate::distro::apk::{parse_index, parse_index_text, TrustedKeys};

/// The fuzz target: `data` is any input libFuzzer makes.
pub fn run(data: &[u8]) {
    let keys = TrustedKeys::new();
    let _ = parse_index(data, &keys, false);
    let _ = parse_index(data, &keys, true);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = parse_index_text("fuzz", text);
    }
}
