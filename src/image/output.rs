//! Where an image is written ([`Output`]) and the one entry that writes it
//! there: an OCI layout directory or a squashed rootfs tar (`layout.rs`),
//! an oci-archive or docker-archive tar (`archive.rs`).

use std::path::{Path, PathBuf};

use super::archive::{write_archive, ArchiveKind};
use super::layout::ImageBuilder;
use super::reference::ImageReference;
use super::{ImageError, Sha256Digest};

/// Where to write the image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// OCI image layout directory.
    OciDir(PathBuf),
    /// An OCI image layout as one tar (skopeo's and podman's `oci-archive:`).
    OciArchive(PathBuf),
    /// One tar that is both an OCI layout and a `docker load` archive.
    DockerArchive(PathBuf),
    /// The squashed root filesystem as a tar: gzip for `.gz`/`.tgz`, zstd for
    /// `.zst`, plain otherwise.
    RootfsTar(PathBuf),
}

impl Output {
    pub fn path(&self) -> &Path {
        match self {
            Output::OciDir(p)
            | Output::OciArchive(p)
            | Output::DockerArchive(p)
            | Output::RootfsTar(p) => p,
        }
    }
}

/// What was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrittenImage {
    pub manifest_digest: Sha256Digest,
    pub config_digest: Sha256Digest,
    pub path: PathBuf,
}

/// Where a build writes: an image output, or the finished tree itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuildOutput {
    Image(Output),
    RootfsDir(PathBuf),
}

impl BuildOutput {
    pub fn path(&self) -> &Path {
        match self {
            BuildOutput::Image(o) => o.path(),
            BuildOutput::RootfsDir(p) => p,
        }
    }
}

impl ImageBuilder {
    /// Write the image. `reference` names it in index.json / manifest.json.
    pub fn write(
        &self,
        output: &Output,
        reference: Option<&ImageReference>,
    ) -> Result<WrittenImage, ImageError> {
        let meta = self.metadata_blobs()?;
        let written = WrittenImage {
            manifest_digest: Sha256Digest::parse(&meta.manifest_desc.digest)?,
            config_digest: Sha256Digest::parse(&meta.config_desc.digest)?,
            path: output.path().to_path_buf(),
        };
        match output {
            Output::OciDir(path) => self.write_oci_dir(path, &meta, reference)?,
            Output::OciArchive(path) => {
                write_archive(self, path, &meta, reference, ArchiveKind::Oci)?
            }
            Output::DockerArchive(path) => {
                write_archive(self, path, &meta, reference, ArchiveKind::Docker)?
            }
            Output::RootfsTar(path) => self.write_rootfs_tar(path)?,
        }
        Ok(written)
    }
}
