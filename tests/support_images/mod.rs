// Shared by the sbom, image_diff and interop tests (tests/integration): small images made
// directly with ImageBuilder, no network or fixture repository.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use rootstrap::image::oci::{self, History, ImageConfig};
use rootstrap::image::{
    ImageBuilder, ImageError, LayerCompression, LayerEntryKind as EntryKind, TarHeader, TarWriter,
};

pub const EPOCH: i64 = 1_735_689_600; // 2025-01-01T00:00:00Z

#[derive(Clone, Debug)]
pub enum Entry {
    Dir(&'static str),
    File(&'static str, Vec<u8>),
    /// path, data, mode, mtime, xattrs
    FileWith(&'static str, Vec<u8>, u32, i64, BTreeMap<String, Vec<u8>>),
    Symlink(&'static str, &'static str),
    Whiteout(&'static str),
}

pub fn file(path: &'static str, data: &str) -> Entry {
    Entry::File(path, data.as_bytes().to_vec())
}

fn write_layer(entries: &[Entry], w: &mut dyn Write) -> Result<(), ImageError> {
    let mut tar = TarWriter::new(w);
    for e in entries {
        match e {
            Entry::Dir(p) => {
                let mut h = TarHeader::new(*p, EntryKind::Dir);
                h.mtime = EPOCH;
                tar.append(&h, &mut std::io::empty())?;
            }
            Entry::File(p, data) => {
                let mut h = TarHeader::new(*p, EntryKind::File);
                h.size = data.len() as u64;
                h.mtime = EPOCH;
                tar.append(&h, &mut &data[..])?;
            }
            Entry::FileWith(p, data, mode, mtime, xattrs) => {
                let mut h = TarHeader::new(*p, EntryKind::File);
                h.size = data.len() as u64;
                h.mode = *mode;
                h.mtime = *mtime;
                h.xattrs = xattrs.clone();
                tar.append(&h, &mut &data[..])?;
            }
            Entry::Symlink(p, target) => {
                let mut h = TarHeader::new(*p, EntryKind::Symlink((*target).into()));
                h.mtime = EPOCH;
                h.mode = 0o777;
                tar.append(&h, &mut std::io::empty())?;
            }
            Entry::Whiteout(p) => tar.append_whiteout(Path::new(p))?,
        }
    }
    tar.finish()?;
    Ok(())
}

pub fn config(env: &[&str]) -> ImageConfig {
    let mut c = ImageConfig::new("amd64", "linux");
    c.created = Some(oci::format_timestamp(EPOCH));
    c.config.env = env.iter().map(|s| s.to_string()).collect();
    c
}

/// An image with one layer per element of `layers`.
pub fn image(work: &Path, config: ImageConfig, layers: &[Vec<Entry>]) -> ImageBuilder {
    let mut b = ImageBuilder::new_in(work, config, LayerCompression::Gzip).unwrap();
    for (i, entries) in layers.iter().enumerate() {
        let history = History {
            created: Some(oci::format_timestamp(EPOCH)),
            created_by: Some(format!("layer {i}")),
            ..History::default()
        };
        b.add_layer_with(history, |w| write_layer(entries, w))
            .unwrap();
    }
    b
}
