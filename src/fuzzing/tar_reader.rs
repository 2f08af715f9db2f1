//! The one streaming tar reader, directly (packages, ADD) and through its
//! image-layer view, every entry's data read to the end, and archive names
//! through the rootfs path check.
use crate::rootfs::safe::RelPath;
use std::io::Read;

/// The fuzz target: `data` is any input libFuzzer makes.
pub fn run(data: &[u8]) {
    let mut reader = crate::archive::tar::TarReader::new(data);
    for _ in 0..10_000 {
        match reader.next_entry() {
            Ok(Some(mut entry)) => {
                let _ = RelPath::from_archive(&entry.header.path);
                let _ = entry.header.display_path();
                if std::io::copy(&mut entry, &mut std::io::sink()).is_err() {
                    break;
                }
            }
            _ => break,
        }
    }
    let mut reader = crate::image::LayerReader::new(data);
    for _ in 0..10_000 {
        match reader.next_entry() {
            Ok(Some(_)) => {
                let mut buf = Vec::new();
                if reader.data().read_to_end(&mut buf).is_err() {
                    break;
                }
            }
            _ => break,
        }
    }
}
