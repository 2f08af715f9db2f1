//! Both streaming tar readers (the package extractor's and the image
//! layer reader's), every entry's data read to the end, and archive names
//! through the rootfs path check.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rootstrap::rootfs::safe::RelPath;
use std::io::Read;

fuzz_target!(|data: &[u8]| {
    let mut reader = rootstrap::archive::tar::TarReader::new(data);
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
    let mut reader = rootstrap::image::TarReader::new(data);
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
});
