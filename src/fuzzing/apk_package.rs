//! A .apk against an index entry that claims no size or checksum, with
//! `--allow-untrusted`: the whole v2 reader (members, tar, .PKGINFO,
//! datahash) and then its data entries; plus `.PKGINFO` text on its own.
use crate::distro::apk::{open_package, ApkPackage, PkgInfo, TrustedKeys};

/// The fuzz target: `data` is any input libFuzzer makes.
pub fn run(data: &[u8]) {
    let expected = ApkPackage {
        name: "fuzz".into(),
        version: "1-r0".into(),
        ..ApkPackage::default()
    };
    let keys = TrustedKeys::new();
    if let Ok(apk) = open_package(data, &expected, &keys, true) {
        if let Ok(entries) = apk.data_entries() {
            for entry in &entries {
                let _ = apk.content(entry);
            }
        }
        let _ = apk.index_entry(data.len() as u64);
    }
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(info) = PkgInfo::parse("fuzz", text) {
            let _ = info.to_package(None, 0);
        }
    }
}
