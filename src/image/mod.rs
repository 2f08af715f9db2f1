//! Image writing and reading: deterministic layer tars, parallel compression,
//! OCI config/manifest/index, OCI layout directories, docker-archive tars, and
//! opening those back for `inspect`, `run` and `FROM`.
//!
//! Nothing here knows about distributions: the input is a directory (or a
//! stream of tar entries) and image metadata.

pub mod archive;
pub mod compress;
pub mod diff;
pub mod inspect;
pub mod layer;
pub mod layout;
pub mod oci;
pub mod read;
pub mod reference;
pub mod registry;
pub mod squash;
pub mod tar;

use std::fmt;
use std::io::{self, Write};
use std::path::PathBuf;

use sha2::{Digest as _, Sha256};

pub use compress::{BlobInfo, Compressor, GzipOptions, LayerCompression, ParallelGzipWriter};
pub use inspect::{inspect, InspectReport};
pub use layer::{write_layer_from_dir, LayerOptions, LayerStats};
pub use layout::{attach_artifact, Artifact, ImageBuilder, LayerBlob, Output, WrittenImage};
pub use read::{
    fsck, unpack_layers, FsckReport, ImageSource, LayerRef, MemorySink, OpenedImage, UnpackSink,
};
pub use reference::ImageReference;
pub use squash::squash_layers;
pub use tar::{EntryKind, TarHeader, TarReader, TarWriter};

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

/// A SHA-256 content digest, displayed as `sha256:<hex>` (the OCI form).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Sha256Digest(pub [u8; 32]);

impl Sha256Digest {
    pub fn of(bytes: &[u8]) -> Self {
        Sha256Digest(Sha256::digest(bytes).into())
    }

    pub fn hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parse `sha256:<64 lowercase hex>`; any other algorithm is rejected.
    pub fn parse(s: &str) -> Result<Self, ImageError> {
        let bad = |reason: &str| ImageError::Blob {
            digest: s.to_string(),
            reason: reason.to_string(),
        };
        let hex_part = s
            .strip_prefix("sha256:")
            .ok_or_else(|| bad("only sha256 digests are supported"))?;
        if hex_part.len() != 64
            || !hex_part
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        {
            return Err(bad("not 64 lowercase hex digits"));
        }
        let mut out = [0u8; 32];
        hex::decode_to_slice(hex_part, &mut out).map_err(|_| bad("not hex"))?;
        Ok(Sha256Digest(out))
    }
}

impl fmt::Display for Sha256Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.hex())
    }
}

impl fmt::Debug for Sha256Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// A writer that hashes and counts everything passing through it, so a blob's
/// digest is known the moment it is written and is never re-read.
pub struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    written: u64,
}

impl<W: Write> HashingWriter<W> {
    pub fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            hasher: Sha256::new(),
            written: 0,
        }
    }

    pub fn written(&self) -> u64 {
        self.written
    }

    pub fn get_ref(&self) -> &W {
        &self.inner
    }

    /// Returns the inner writer, the digest and the byte count.
    pub fn finish(self) -> (W, Sha256Digest, u64) {
        (
            self.inner,
            Sha256Digest(self.hasher.finalize().into()),
            self.written,
        )
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}
