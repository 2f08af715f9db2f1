//! A whole docker-archive or oci-archive tar, written to a temporary file
//! and opened, checked (fsck) and unpacked into memory as `rootstrap` does
//! with an image file someone hands it.
use crate::image::read::{fsck, unpack_layers, ImageSource, MemorySink, OpenedImage};
use std::io::Write;

/// The fuzz target: `data` is any input libFuzzer makes.
pub fn run(data: &[u8]) {
    let mut file = tempfile::NamedTempFile::new().expect("temp file");
    file.write_all(data).expect("write");
    for source in [
        ImageSource::DockerArchive(file.path().to_owned()),
        ImageSource::OciArchive(file.path().to_owned()),
    ] {
        let Ok(image) = OpenedImage::open(&source, None) else {
            continue;
        };
        let _ = fsck(&image);
        let _ = unpack_layers(&image, &mut MemorySink::default());
    }
}
