//! docker-archive output: one uncompressed tar that is both an OCI image
//! layout (`oci-layout`, `index.json`, `blobs/sha256/…`) and a Docker
//! `manifest.json` archive, as `docker save` has written since Docker 25.
//! `docker load` reads `manifest.json`; OCI tools read `index.json`.
//! oci-archive output: the same tar without `manifest.json`.
//! [`write_layout_tar`] writes either from blobs in files or memory: a
//! build's image, or an image the local store holds (`rootstrap save`).

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
use super::{ImageError, Sha256Digest};
use crate::verify::HashingReader;

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
    let mut blobs: Vec<TarBlob<'_>> = builder
        .layers()
        .iter()
        .map(|layer| TarBlob {
            digest: &layer.descriptor.digest,
            bytes: BlobBytes::File(layer.path()),
            verify: false,
        })
        .collect();
    blobs.push(TarBlob {
        digest: &meta.config_desc.digest,
        bytes: BlobBytes::Memory(&meta.config),
        verify: false,
    });
    blobs.push(TarBlob {
        digest: &meta.manifest_desc.digest,
        bytes: BlobBytes::Memory(&meta.manifest),
        verify: false,
    });
    let docker = kind == ArchiveKind::Docker;
    let docker_manifest = if docker {
        let layers: Vec<&str> = builder
            .layers()
            .iter()
            .map(|l| l.descriptor.digest.as_str())
            .collect();
        Some(docker_manifest_json(
            &meta.config_desc.digest,
            &layers,
            reference,
        )?)
    } else {
        None
    };
    write_layout_tar(
        target,
        &LayoutTar {
            blobs,
            docker_manifest,
            index_json: index_json(meta, reference, docker)?,
        },
    )
}

/// Where a blob's bytes are, for [`write_layout_tar`].
pub(crate) enum BlobBytes<'a> {
    File(&'a Path),
    Memory(&'a [u8]),
}

/// One blob of a layout being written as a tar.
pub(crate) struct TarBlob<'a> {
    /// `sha256:<hex>`: its member name, and with `verify` what its bytes
    /// must hash to.
    pub digest: &'a str,
    pub bytes: BlobBytes<'a>,
    /// Hash the bytes on the way: for blobs read from a store another
    /// process may have damaged, not the build's own work files.
    pub verify: bool,
}

/// The contents of an image archive: an OCI layout's blobs (in the order
/// given; a digest listed again, as the same layer twice in one image, is
/// stored once), Docker's `manifest.json` for a docker-archive, and
/// index.json.
pub(crate) struct LayoutTar<'a> {
    pub blobs: Vec<TarBlob<'a>>,
    pub docker_manifest: Option<Vec<u8>>,
    pub index_json: Vec<u8>,
}

/// Docker's `manifest.json` for one image: its config and layers as blob
/// members, tagged with `reference` as `docker load` expects (`NAME:TAG`).
pub(crate) fn docker_manifest_json(
    config_digest: &str,
    layer_digests: &[&str],
    reference: Option<&ImageReference>,
) -> Result<Vec<u8>, ImageError> {
    canonical_json(&vec![DockerManifestEntry {
        config: blob_member(config_digest),
        repo_tags: reference.map(|r| vec![r.familiar()]).unwrap_or_default(),
        layers: layer_digests.iter().map(|d| blob_member(d)).collect(),
    }])
}

/// Writes `layout` as one uncompressed tar at `target`, beside it first and
/// renamed into place when complete (a failure leaves nothing there).
pub(crate) fn write_layout_tar(target: &Path, layout: &LayoutTar<'_>) -> Result<(), ImageError> {
    let mut tmp = temp_file_beside(target)?;
    {
        let mut tar = TarWriter::new(BufWriter::with_capacity(256 * 1024, tmp.as_file_mut()));
        append_dir(&mut tar, "blobs")?;
        append_dir(&mut tar, "blobs/sha256")?;
        let mut written = std::collections::HashSet::new();
        for blob in layout.blobs.iter().filter(|b| written.insert(b.digest)) {
            let member = blob_member(blob.digest);
            let verify = blob.verify.then_some(blob.digest);
            match &blob.bytes {
                BlobBytes::File(path) => append_file_from(&mut tar, &member, path, verify)?,
                BlobBytes::Memory(bytes) => {
                    if let Some(digest) = verify {
                        check_digest(digest, Sha256Digest::of(bytes))?;
                    }
                    append_bytes(&mut tar, &member, bytes)?
                }
            }
        }
        if let Some(manifest) = &layout.docker_manifest {
            append_bytes(&mut tar, "manifest.json", manifest)?;
        }
        append_bytes(&mut tar, "oci-layout", &oci_layout_bytes())?;
        append_bytes(&mut tar, "index.json", &layout.index_json)?;
        let mut buf = tar.finish()?;
        buf.flush()
            .map_err(ImageError::io(format!("writing {}", target.display())))?;
    }
    persist(tmp, target)
}

fn check_digest(digest: &str, actual: Sha256Digest) -> Result<(), ImageError> {
    if actual != Sha256Digest::parse(digest)? {
        return Err(ImageError::DigestMismatch {
            digest: digest.to_owned(),
            actual: actual.to_string(),
        });
    }
    Ok(())
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

/// Appends the file `src` as `path`; with `verify`, hashing the bytes on
/// the way, and a file whose bytes are not that digest's fails the archive.
fn append_file_from<W: Write>(
    tar: &mut TarWriter<W>,
    path: &str,
    src: &Path,
    verify: Option<&str>,
) -> Result<(), ImageError> {
    let file =
        File::open(src).map_err(ImageError::io(format!("opening blob {}", src.display())))?;
    let mut h = TarHeader::new(PathBuf::from(path), LayerEntryKind::File);
    h.size = file
        .metadata()
        .map_err(ImageError::io(format!("stat blob {}", src.display())))?
        .len();
    let mut reader = io::BufReader::with_capacity(256 * 1024, file);
    let Some(digest) = verify else {
        return tar.append(&h, &mut reader);
    };
    let mut hashing = HashingReader::new(reader);
    tar.append(&h, &mut hashing)?;
    check_digest(digest, hashing.finish().0)
}
