//! docker-archive output: one uncompressed tar that is both an OCI image
//! layout (`oci-layout`, `index.json`, `blobs/sha256/…`) and a Docker
//! `manifest.json` archive, as `docker save` has written since Docker 25.
//! `docker load` reads `manifest.json`; OCI tools read `index.json`.
//! oci-archive output: the same tar without `manifest.json`.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use super::layout::{
    digest_hex, index_json, oci_layout_bytes, persist, temp_file_beside, ImageBuilder,
    MetadataBlobs,
};
use super::oci::{canonical_json, DockerManifestEntry};
use super::reference::ImageReference;
use super::tar::{LayerEntryKind, TarHeader, TarWriter};
use super::ImageError;

fn blob_member(digest: &str) -> String {
    format!("blobs/sha256/{}", digest_hex(digest))
}

/// What to tell whoever writes a docker-archive with zstd layers: which
/// engines load it. Upstream Docker reads zstd layers from Engine 23.0
/// (moby#41759); Debian's docker.io 20.10.24+dfsg1 loads and runs them too
/// (scripts/e2e-slim.sh checks the installed engine).
pub const ZSTD_DOCKER_NOTE: &str = "zstd layers in a docker-archive: `docker load` reads them from Docker Engine 23.0 \
(and Debian's docker.io 20.10.24); older engines fail with \"invalid tar header\" — build with --compression gzip for those";

/// Whether any layer of `builder` is zstd-compressed.
pub fn has_zstd_layers(builder: &ImageBuilder) -> bool {
    builder
        .layers()
        .iter()
        .any(|l| l.descriptor.media_type == super::oci::MEDIA_TYPE_LAYER_ZSTD)
}

/// Which archive [`write_archive`] writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchiveKind {
    /// An OCI layout in a tar.
    Oci,
    /// An OCI layout in a tar that is also a `docker load` archive.
    Docker,
}

pub(crate) fn write_archive(
    builder: &ImageBuilder,
    target: &Path,
    meta: &MetadataBlobs,
    reference: Option<&ImageReference>,
    kind: ArchiveKind,
) -> Result<(), ImageError> {
    let mut tmp = temp_file_beside(target)?;
    {
        let mut tar = TarWriter::new(BufWriter::with_capacity(256 * 1024, tmp.as_file_mut()));
        append_dir(&mut tar, "blobs")?;
        append_dir(&mut tar, "blobs/sha256")?;
        let mut written = std::collections::BTreeSet::new();
        for layer in builder.layers() {
            // The same layer twice in one image is stored once.
            if written.insert(layer.descriptor.digest.clone()) {
                append_file_from(
                    &mut tar,
                    &blob_member(&layer.descriptor.digest),
                    layer.path(),
                )?;
            }
        }
        append_bytes(
            &mut tar,
            &blob_member(&meta.config_desc.digest),
            &meta.config,
        )?;
        append_bytes(
            &mut tar,
            &blob_member(&meta.manifest_desc.digest),
            &meta.manifest,
        )?;
        let docker = kind == ArchiveKind::Docker;
        if docker {
            let docker_manifest = vec![DockerManifestEntry {
                config: blob_member(&meta.config_desc.digest),
                repo_tags: reference.map(|r| vec![r.familiar()]).unwrap_or_default(),
                layers: builder
                    .layers()
                    .iter()
                    .map(|l| blob_member(&l.descriptor.digest))
                    .collect(),
            }];
            append_bytes(
                &mut tar,
                "manifest.json",
                &canonical_json(&docker_manifest)?,
            )?;
        }
        append_bytes(&mut tar, "oci-layout", &oci_layout_bytes())?;
        append_bytes(
            &mut tar,
            "index.json",
            &index_json(meta, reference, docker)?,
        )?;
        let mut buf = tar.finish()?;
        buf.flush()
            .map_err(ImageError::io(format!("writing {}", target.display())))?;
    }
    persist(tmp, target)
}

fn append_dir<W: Write>(tar: &mut TarWriter<W>, path: &str) -> Result<(), ImageError> {
    tar.append(&TarHeader::new(path, LayerEntryKind::Dir), &mut io::empty())
}

fn append_bytes<W: Write>(
    tar: &mut TarWriter<W>,
    path: &str,
    bytes: &[u8],
) -> Result<(), ImageError> {
    let mut h = TarHeader::new(path, LayerEntryKind::File);
    h.size = bytes.len() as u64;
    tar.append(&h, &mut &bytes[..])
}

fn append_file_from<W: Write>(
    tar: &mut TarWriter<W>,
    path: &str,
    src: &Path,
) -> Result<(), ImageError> {
    let file =
        File::open(src).map_err(ImageError::io(format!("opening blob {}", src.display())))?;
    let len = file
        .metadata()
        .map_err(ImageError::io(format!("stat blob {}", src.display())))?
        .len();
    let mut h = TarHeader::new(PathBuf::from(path), LayerEntryKind::File);
    h.size = len;
    tar.append(&h, &mut io::BufReader::with_capacity(256 * 1024, file))
}
