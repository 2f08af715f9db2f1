//! Image writing and reading: deterministic layer tars, parallel compression,
//! OCI config/manifest/index, OCI layout directories, docker-archive tars, and
//! opening those back for `inspect`, `run` and `FROM`; the local image store
//! (`store`) and where a built image goes besides its outputs (`publish`).
//!
//! Nothing here knows about distributions: the input is a directory (or a
//! stream of tar entries) and image metadata. The one exception is
//! `packages`, which reads the package database inside an image (dpkg's
//! status file or apk's installed db) for `inspect`, `diff` and SBOMs.

pub mod archive;
pub mod compress;
mod deflate;
pub mod diff;
pub mod inspect;
pub mod layer;
pub mod layer_cache;
pub mod layout;
pub mod multi;
pub mod oci;
pub mod output;
pub mod packages;
pub mod publish;
pub mod read;
pub mod reference;
pub mod registry;
pub mod squash;
pub mod store;
pub mod tar;

use std::io;
use std::path::PathBuf;

use crate::verify::digest::OciDigestError;
pub use crate::verify::{HashingWriter, Sha256Digest};
pub use compress::{
    BlobInfo, Compressor, GzipOptions, LayerCompression, ParallelGzipWriter, UnknownCompression,
    ZSTD_LEVEL,
};
pub use inspect::{inspect, InspectReport};
pub use layer::{write_layer_from_dir, LayerOptions, LayerStats};
pub use layout::{attach_artifact, Artifact, ImageBuilder, LayerBlob};
pub use output::{Output, WrittenImage};
pub use read::{
    apply_layer, fsck, unpack_layers, FsckReport, ImageSource, LayerRef, MemorySink, OpenedImage,
    UnpackSink,
};
pub use reference::ImageReference;
pub use squash::squash_layers;
pub use tar::{LayerEntryKind, LayerReader, TarHeader, TarWriter};

/// Errors from the image layer. Messages name the file, entry or blob at fault.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
    #[error("rootfs entry {path}: a file named `.wh.*` would be read as a whiteout by image consumers; refusing to pack it")]
    WhiteoutInRootfs { path: PathBuf },
    #[error("tar entry {path}: {reason}")]
    TarEntry { path: String, reason: String },
    #[error("malformed tar stream at byte {offset}: {reason}")]
    TarFormat { offset: u64, reason: String },
    #[error("compression failed: {0}")]
    Compress(String),
    #[error("invalid image reference `{reference}`: {reason}")]
    Reference { reference: String, reason: String },
    #[error("blob {digest}: {reason}")]
    Blob { digest: String, reason: String },
    #[error("blob {digest} is corrupt: content hashes to {actual}")]
    DigestMismatch { digest: String, actual: String },
    #[error("invalid image at {location}: {reason}")]
    Invalid { location: String, reason: String },
    #[error("JSON in {what}: {source}")]
    Json {
        what: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("unpacking {path}: {source}")]
    Sink {
        path: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl ImageError {
    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(io::Error) -> ImageError {
        let context = context.into();
        move |source| ImageError::Io { context, source }
    }
}

impl From<OciDigestError> for ImageError {
    fn from(e: OciDigestError) -> Self {
        ImageError::Blob {
            digest: e.digest,
            reason: e.reason.to_string(),
        }
    }
}
