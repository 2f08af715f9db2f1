//! Collecting layers and metadata, and writing the result: an OCI layout
//! directory or a squashed rootfs tar (`output.rs` picks the writer for an
//! [`Output`](super::Output); archives are `archive.rs`).
//!
//! Every output is assembled under a temporary name next to the target and
//! renamed into place only when complete, so a failure leaves nothing at the
//! output path and an existing target is replaced only on success.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use super::compress::{auto_decoder, BlobInfo, Compressor, GzipOptions, LayerCompression};
use super::layer::{pack_dir, LayerOptions};
use super::oci::{self, canonical_json, Descriptor, History, ImageConfig, Index, Manifest};
use super::read::{LayerRef, OpenedImage};
use super::reference::ImageReference;
use super::squash::squash_layers;
use super::{HashingWriter, ImageError, Sha256Digest};
use crate::verify::ThreadedHashingWriter;

/// One compressed layer blob held in the builder's blob directory.
#[derive(Debug, Clone)]
pub struct LayerBlob {
    pub descriptor: Descriptor,
    pub diff_id: Sha256Digest,
    /// Known for layers built here; `None` for layers copied from a base image.
    pub uncompressed_size: Option<u64>,
    /// Entry count when known (layers packed from a directory).
    pub entries: Option<u64>,
    path: PathBuf,
}

impl LayerBlob {
    /// The blob file (inside the builder's temporary directory).
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Serialized metadata blobs of an image.
pub(crate) struct MetadataBlobs {
    pub config: Vec<u8>,
    pub config_desc: Descriptor,
    pub manifest: Vec<u8>,
    pub manifest_desc: Descriptor,
    pub platform: oci::Platform,
}

/// Collects layers (as compressed blobs in a temporary directory) and the
/// image config, then writes them out.
pub struct ImageBuilder {
    blobs: tempfile::TempDir,
    /// Removes `blobs` on Ctrl-C/SIGTERM too (see `cleanup`).
    _blobs_tracked: crate::cleanup::Tracked,
    compression: LayerCompression,
    gzip: GzipOptions,
    config: ImageConfig,
    layers: Vec<LayerBlob>,
    next_tmp: u64,
}

impl ImageBuilder {
    /// Blobs are kept in a temporary directory under the system temp dir.
    pub fn new(config: ImageConfig, compression: LayerCompression) -> Result<Self, ImageError> {
        Self::new_in(&std::env::temp_dir(), config, compression)
    }

    /// Blobs are kept in a temporary directory under `dir` (choose one on
    /// the same filesystem as the output so blobs can be hard-linked).
    pub fn new_in(
        dir: &Path,
        config: ImageConfig,
        compression: LayerCompression,
    ) -> Result<Self, ImageError> {
        let (blobs, tracked) = crate::cleanup::creating(|| {
            let blobs = tempfile::Builder::new()
                .prefix(".rootstrap-blobs-")
                .tempdir_in(dir)?;
            let tracked = crate::cleanup::Tracked::new(blobs.path());
            Ok((blobs, tracked))
        })
        .map_err(ImageError::io(format!(
            "creating a blob directory in {}",
            dir.display()
        )))?;
        Ok(ImageBuilder {
            _blobs_tracked: tracked,
            blobs,
            compression,
            gzip: GzipOptions::default(),
            config,
            layers: Vec::new(),
            next_tmp: 0,
        })
    }

    /// The compression of the layers this builder packs.
    pub fn compression(&self) -> LayerCompression {
        self.compression
    }

    pub fn set_gzip_options(&mut self, gzip: GzipOptions) {
        self.gzip = gzip;
    }

    pub fn config(&self) -> &ImageConfig {
        &self.config
    }

    /// Runtime config, labels, history of empty layers... `rootfs.diff_ids`
    /// is rebuilt from the layers at write time.
    pub fn config_mut(&mut self) -> &mut ImageConfig {
        &mut self.config
    }

    pub fn layers(&self) -> &[LayerBlob] {
        &self.layers
    }

    /// Pack `dir` as the next layer.
    pub fn add_layer_from_dir(
        &mut self,
        dir: &Path,
        opts: &LayerOptions,
        history: History,
    ) -> Result<&LayerBlob, ImageError> {
        self.add_layer_inner(history, |out| pack_dir(dir, opts, out).map(Some))
    }

    /// Add a layer whose uncompressed tar is produced by `produce` (for
    /// example a [`TarWriter`](super::TarWriter) emitting a diff with whiteouts). The stream is
    /// compressed, hashed and counted as it is written.
    pub fn add_layer_with<F>(
        &mut self,
        history: History,
        produce: F,
    ) -> Result<&LayerBlob, ImageError>
    where
        F: FnOnce(&mut dyn Write) -> Result<(), ImageError>,
    {
        self.add_layer_inner(history, |out| produce(out).map(|()| None))
    }

    fn add_layer_inner<F>(
        &mut self,
        mut history: History,
        produce: F,
    ) -> Result<&LayerBlob, ImageError>
    where
        F: FnOnce(&mut dyn Write) -> Result<Option<u64>, ImageError>,
    {
        let tmp_path = self.blobs.path().join(format!("tmp-{}", self.next_tmp));
        self.next_tmp += 1;
        let file = File::create(&tmp_path)
            .map_err(ImageError::io(format!("creating {}", tmp_path.display())))?;
        let buf = BufWriter::with_capacity(256 * 1024, file);
        let written = if self.compression == LayerCompression::None {
            // The blob is the tar itself: one hash is both digest and diff_id,
            // computed on another core while the tree is read.
            let mut out = ThreadedHashingWriter::new(buf);
            produce(&mut out).and_then(|entries| {
                let (buf, digest, size) = out
                    .finish()
                    .map_err(ImageError::io(format!("writing {}", tmp_path.display())))?;
                Ok((buf, entries, digest, size, BlobInfo { digest, size }))
            })
        } else {
            Compressor::with_gzip_options(buf, self.compression, self.gzip).and_then(|compressor| {
                let mut uncompressed = HashingWriter::new(compressor);
                let entries = produce(&mut uncompressed)?;
                let (compressor, diff_id, size) = uncompressed.finish();
                let (buf, info) = compressor.finish()?;
                Ok((buf, entries, diff_id, size, info))
            })
        };
        let (buf, entries, diff_id, uncompressed_size, info) = match written {
            Ok(written) => written,
            Err(e) => {
                let _ = fs::remove_file(&tmp_path);
                return Err(e);
            }
        };
        // Not synced: this is a work file. Outputs sync what they write or
        // link (`link_or_copy`), and caches verify blobs when they reuse them.
        buf.into_inner().map_err(|e| {
            ImageError::io(format!("writing {}", tmp_path.display()))(e.into_error())
        })?;
        let blob_path = self.blobs.path().join(info.digest.to_hex());
        fs::rename(&tmp_path, &blob_path)
            .map_err(ImageError::io(format!("renaming {}", tmp_path.display())))?;
        history.empty_layer = false;
        self.config.history.push(history);
        self.layers.push(LayerBlob {
            descriptor: Descriptor::new(
                self.compression.layer_media_type(),
                info.digest,
                info.size,
            ),
            diff_id,
            uncompressed_size: Some(uncompressed_size),
            entries,
            path: blob_path,
        });
        Ok(self.layers.last().expect("layer was just pushed"))
    }

    /// Start from an existing image (Dockerfile `FROM`): its layers are
    /// copied as they are (re-hashed on the way, never recompressed), its
    /// config and history kept. New layers use `compression`.
    pub fn from_image(
        dir: &Path,
        base: &OpenedImage,
        compression: LayerCompression,
    ) -> Result<Self, ImageError> {
        let mut config = base.config.clone();
        config.rootfs.diff_ids.clear();
        let mut builder = Self::new_in(dir, config, compression)?;
        for layer in &base.layers {
            builder.copy_base_layer(base, layer)?;
        }
        Ok(builder)
    }

    fn copy_base_layer(&mut self, base: &OpenedImage, layer: &LayerRef) -> Result<(), ImageError> {
        let ctx = format!("copying base layer {}", layer.member);
        let (blob_path, digest, size) =
            self.copy_verified_blob(&mut base.open_member(&layer.member)?, layer.digest, &ctx)?;
        let media_type = match &layer.media_type {
            Some(m) => m.clone(),
            None => sniff_layer_media_type(&blob_path)?.to_string(),
        };
        self.layers.push(LayerBlob {
            descriptor: Descriptor::new(&media_type, digest, size),
            diff_id: layer.diff_id,
            uncompressed_size: None,
            entries: None,
            path: blob_path,
        });
        Ok(())
    }

    /// Adds a layer blob produced by an earlier build (a layer cache hit).
    /// The blob is copied and re-hashed; a digest other than `digest` is an
    /// error, so a corrupted cache entry is never used.
    pub fn add_cached_layer(
        &mut self,
        blob: &Path,
        digest: Sha256Digest,
        diff_id: Sha256Digest,
        uncompressed_size: u64,
        mut history: History,
    ) -> Result<&LayerBlob, ImageError> {
        let ctx = format!("copying cached layer {}", blob.display());
        let mut file = File::open(blob).map_err(ImageError::io(ctx.clone()))?;
        let (blob_path, digest, size) = self.copy_verified_blob(&mut file, Some(digest), &ctx)?;
        history.empty_layer = false;
        self.config.history.push(history);
        self.layers.push(LayerBlob {
            descriptor: Descriptor::new(self.compression.layer_media_type(), digest, size),
            diff_id,
            uncompressed_size: Some(uncompressed_size),
            entries: None,
            path: blob_path,
        });
        Ok(self.layers.last().expect("layer was just pushed"))
    }

    /// Copies a blob into the builder's directory, hashing as it goes, and
    /// checks it against `expected`.
    fn copy_verified_blob(
        &mut self,
        from: &mut dyn io::Read,
        expected: Option<Sha256Digest>,
        ctx: &str,
    ) -> Result<(PathBuf, Sha256Digest, u64), ImageError> {
        let tmp_path = self.blobs.path().join(format!("tmp-{}", self.next_tmp));
        self.next_tmp += 1;
        let ctx = || ctx.to_owned();
        let file = File::create(&tmp_path).map_err(ImageError::io(ctx()))?;
        let mut out = HashingWriter::new(BufWriter::with_capacity(256 * 1024, file));
        io::copy(from, &mut out).map_err(ImageError::io(ctx()))?;
        let (buf, digest, size) = out.finish();
        // A work file, not synced: see `add_layer_inner`.
        buf.into_inner()
            .map_err(|e| ImageError::io(ctx())(e.into_error()))?;
        if let Some(expected) = expected.filter(|d| *d != digest) {
            let _ = fs::remove_file(&tmp_path);
            return Err(ImageError::DigestMismatch {
                digest: expected.to_string(),
                actual: digest.to_string(),
            });
        }
        let blob_path = self.blobs.path().join(digest.to_hex());
        fs::rename(&tmp_path, &blob_path).map_err(ImageError::io(ctx()))?;
        Ok((blob_path, digest, size))
    }

    /// Replace all layers by one squashed layer (`--squash`). History is kept;
    /// only the last layer-producing entry still claims a layer.
    pub fn squash(&mut self) -> Result<(), ImageError> {
        if self.layers.len() < 2 {
            return Ok(());
        }
        let scratch = tempfile::Builder::new()
            .prefix("squash-")
            .tempdir_in(self.blobs.path())
            .map_err(ImageError::io("creating a squash directory"))?;
        let blobs: Vec<PathBuf> = self.layers.iter().map(|l| l.path.clone()).collect();
        let old = std::mem::take(&mut self.layers);
        let history = std::mem::take(&mut self.config.history);
        let produced = self
            .add_layer_inner(History::default(), |out| {
                squash_layers(&blobs, scratch.path(), out).map(|_| None)
            })
            .map(|_| ());
        self.config.history = history;
        if let Err(e) = produced {
            self.layers = old;
            return Err(e);
        }
        if let Some(last) = self.config.history.iter().rposition(|h| !h.empty_layer) {
            for (i, h) in self.config.history.iter_mut().enumerate() {
                h.empty_layer = i != last;
            }
        }
        Ok(())
    }

    /// Record a metadata-only step (ENV, CMD, ...) in the history.
    pub fn add_empty_history(&mut self, mut history: History) {
        history.empty_layer = true;
        self.config.history.push(history);
    }

    /// The config with `rootfs.diff_ids` taken from the layers.
    pub fn final_config(&self) -> ImageConfig {
        let mut config = self.config.clone();
        config.rootfs = oci::RootFs {
            kind: "layers".into(),
            diff_ids: self.layers.iter().map(|l| l.diff_id.to_string()).collect(),
        };
        config
    }

    pub(crate) fn metadata_blobs(&self) -> Result<MetadataBlobs, ImageError> {
        let final_config = self.final_config();
        let platform = oci::Platform {
            architecture: final_config.architecture.clone(),
            os: final_config.os.clone(),
            variant: final_config.variant.clone(),
        };
        let config = canonical_json(&final_config)?;
        let config_desc = Descriptor::new(
            oci::MEDIA_TYPE_CONFIG,
            Sha256Digest::of(&config),
            config.len() as u64,
        );
        let manifest = Manifest {
            schema_version: 2,
            media_type: Some(oci::MEDIA_TYPE_MANIFEST.into()),
            config: config_desc.clone(),
            layers: self.layers.iter().map(|l| l.descriptor.clone()).collect(),
            annotations: BTreeMap::new(),
        };
        let manifest = canonical_json(&manifest)?;
        let manifest_desc = Descriptor::new(
            oci::MEDIA_TYPE_MANIFEST,
            Sha256Digest::of(&manifest),
            manifest.len() as u64,
        );
        Ok(MetadataBlobs {
            config,
            config_desc,
            manifest,
            manifest_desc,
            platform,
        })
    }

    pub(super) fn write_oci_dir(
        &self,
        target: &Path,
        meta: &MetadataBlobs,
        reference: Option<&ImageReference>,
    ) -> Result<(), ImageError> {
        let draft = LayoutDraft::begin(target)?;
        let blob_dir = &draft.blob_dir;
        for layer in &self.layers {
            let dest = blob_dir.join(digest_hex(&layer.descriptor.digest));
            link_or_copy(&layer.path, &dest)?;
        }
        write_file(
            &blob_dir.join(digest_hex(&meta.config_desc.digest)),
            &meta.config,
        )?;
        write_file(
            &blob_dir.join(digest_hex(&meta.manifest_desc.digest)),
            &meta.manifest,
        )?;
        let index = index_json(meta, reference, false)?;
        draft.finish(&index, target)
    }

    pub(super) fn write_rootfs_tar(&self, target: &Path) -> Result<(), ImageError> {
        let name = target
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let wanted = LayerCompression::from_file_name(&name);
        let write_ctx = || format!("writing {}", target.display());
        let mut tmp = temp_file_beside(target)?;
        match self.layers.as_slice() {
            [layer] if blob_compression(&layer.descriptor.media_type) == Some(wanted) => {
                let mut src = File::open(&layer.path)
                    .map_err(ImageError::io(format!("opening {}", layer.path.display())))?;
                io::copy(&mut src, tmp.as_file_mut()).map_err(ImageError::io(write_ctx()))?;
            }
            [layer] => {
                let src = File::open(&layer.path)
                    .map_err(ImageError::io(format!("opening {}", layer.path.display())))?;
                let mut decoded = auto_decoder(BufReader::with_capacity(256 * 1024, src)).map_err(
                    ImageError::io(format!("decompressing {}", layer.path.display())),
                )?;
                let mut comp = Compressor::with_gzip_options(
                    BufWriter::new(tmp.as_file_mut()),
                    wanted,
                    self.gzip,
                )?;
                io::copy(&mut decoded, &mut comp).map_err(ImageError::io(write_ctx()))?;
                let (mut buf, _) = comp.finish()?;
                buf.flush().map_err(ImageError::io(write_ctx()))?;
            }
            layers => {
                let scratch = tempfile::Builder::new()
                    .prefix("squash-")
                    .tempdir_in(self.blobs.path())
                    .map_err(ImageError::io(write_ctx()))?;
                let blobs: Vec<PathBuf> = layers.iter().map(|l| l.path.clone()).collect();
                let mut comp = Compressor::with_gzip_options(
                    BufWriter::new(tmp.as_file_mut()),
                    wanted,
                    self.gzip,
                )?;
                squash_layers(&blobs, scratch.path(), &mut comp)?;
                let (mut buf, _) = comp.finish()?;
                buf.flush().map_err(ImageError::io(write_ctx()))?;
            }
        }
        persist(tmp, target)
    }
}

/// An artifact to attach to an image in an OCI layout: one blob, e.g. an SBOM.
#[derive(Debug, Clone)]
pub struct Artifact<'a> {
    /// Also the media type of the blob (`application/spdx+json`).
    pub artifact_type: &'a str,
    pub data: &'a [u8],
    /// `org.opencontainers.image.title` of the blob.
    pub title: &'a str,
    /// Annotations of the artifact manifest and of its index.json entry.
    pub annotations: BTreeMap<String, String>,
}

/// Adds an OCI 1.1 artifact manifest to the layout at `dir`: `artifactType`,
/// the empty config, the data as its single layer, and a `subject` pointing
/// at the image manifest `subject` (which index.json must list, itself or
/// inside the image index an entry names).
///
/// The artifact is not listed in index.json: skopeo, podman and umoci take
/// every entry there for an image and refuse a layout with more than one
/// when no name is given. Instead the image's entry carries
/// [`ANNOTATION_REFERRERS`](super::read::ANNOTATION_REFERRERS): the digest of
/// an image index blob listing its artifacts, as a registry's referrers API
/// would answer (`rootstrap push` pushes them with the image). Adding the
/// same artifact twice lists it once. Returns the artifact's descriptor.
pub fn attach_artifact(
    dir: &Path,
    subject: Sha256Digest,
    artifact: &Artifact<'_>,
) -> Result<Descriptor, ImageError> {
    let subject_desc = subject_descriptor(dir, subject)?;
    let empty = b"{}";
    let config = Descriptor::new(oci::MEDIA_TYPE_EMPTY, Sha256Digest::of(empty), 2);
    let mut layer = Descriptor::new(
        artifact.artifact_type,
        Sha256Digest::of(artifact.data),
        artifact.data.len() as u64,
    );
    layer.annotations.insert(
        "org.opencontainers.image.title".into(),
        artifact.title.into(),
    );
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": oci::MEDIA_TYPE_MANIFEST,
        "artifactType": artifact.artifact_type,
        "config": {
            "mediaType": config.media_type,
            "digest": config.digest,
            "size": config.size,
            "data": "e30=",
        },
        "layers": [layer],
        "subject": {
            "mediaType": subject_desc.media_type,
            "digest": subject_desc.digest,
            "size": subject_desc.size,
        },
        "annotations": artifact.annotations,
    });
    let manifest = canonical_json(&manifest)?;
    attach_manifest(
        dir,
        subject,
        &manifest,
        &[&empty[..], artifact.data],
        artifact.artifact_type,
        artifact.annotations.clone(),
    )
}

/// The descriptor index.json gives the image `subject`.
/// (The image may be a platform's, inside an index index.json lists.)
pub fn subject_descriptor(dir: &Path, subject: Sha256Digest) -> Result<Descriptor, ImageError> {
    let index = read_index_json(dir)?;
    find_subject(&index, &dir.join("blobs/sha256"), subject)?
        .map(|(_, desc)| desc)
        .ok_or_else(|| ImageError::Invalid {
            location: dir.display().to_string(),
            reason: format!("index.json does not list the image {subject}"),
        })
}

fn read_index_json(dir: &Path) -> Result<Index, ImageError> {
    let index_path = dir.join("index.json");
    let index_bytes = fs::read(&index_path)
        .map_err(ImageError::io(format!("reading {}", index_path.display())))?;
    serde_json::from_slice(&index_bytes).map_err(|source| ImageError::Json {
        what: index_path.display().to_string(),
        source,
    })
}

/// Adds a ready-made artifact manifest (whose `subject` is the image
/// `subject`) and its `blobs` to the layout at `dir` as a referrer of the
/// image — see [`attach_artifact`] for where referrers are kept. Returns the
/// artifact's descriptor.
pub fn attach_manifest(
    dir: &Path,
    subject: Sha256Digest,
    manifest: &[u8],
    blobs: &[&[u8]],
    artifact_type: &str,
    annotations: BTreeMap<String, String>,
) -> Result<Descriptor, ImageError> {
    let index_path = dir.join("index.json");
    let invalid = |reason: String| ImageError::Invalid {
        location: dir.display().to_string(),
        reason,
    };
    let mut index = read_index_json(dir)?;
    let blob_dir = dir.join("blobs/sha256");
    // The referrers list hangs off the index.json entry: the image's own,
    // or the image index holding it.
    let (subject_at, _) = find_subject(&index, &blob_dir, subject)?
        .ok_or_else(|| invalid(format!("index.json does not list the image {subject}")))?;
    let entry_desc = index.manifests[subject_at].clone();
    let mut entry = Descriptor::new(
        oci::MEDIA_TYPE_MANIFEST,
        Sha256Digest::of(manifest),
        manifest.len() as u64,
    );
    entry.artifact_type = Some(artifact_type.to_owned());
    entry.annotations = annotations;
    for blob in blobs {
        write_blob_once(&blob_dir, &Sha256Digest::of(blob).to_string(), blob)?;
    }
    write_blob_once(&blob_dir, &entry.digest, manifest)?;
    let previous = entry_desc
        .annotations
        .get(super::read::ANNOTATION_REFERRERS)
        .cloned();
    let mut referrers = match &previous {
        Some(digest) => {
            let path = blob_dir.join(digest_hex(digest));
            let bytes =
                fs::read(&path).map_err(ImageError::io(format!("reading {}", path.display())))?;
            if Sha256Digest::of(&bytes).to_string() != *digest {
                return Err(invalid(format!("referrers index {digest} is corrupt")));
            }
            serde_json::from_slice(&bytes).map_err(|source| ImageError::Json {
                what: path.display().to_string(),
                source,
            })?
        }
        None => Index {
            schema_version: 2,
            media_type: Some(oci::MEDIA_TYPE_INDEX.into()),
            manifests: Vec::new(),
            annotations: BTreeMap::new(),
        },
    };
    if referrers.manifests.contains(&entry) {
        return Ok(entry);
    }
    referrers.manifests.push(entry.clone());
    let referrers = canonical_json(&referrers)?;
    let referrers_digest = Sha256Digest::of(&referrers).to_string();
    write_blob_once(&blob_dir, &referrers_digest, &referrers)?;
    index.manifests[subject_at]
        .annotations
        .insert(super::read::ANNOTATION_REFERRERS.into(), referrers_digest);
    let tmp = temp_file_beside(&index_path)?;
    fs::write(tmp.path(), canonical_json(&index)?)
        .map_err(ImageError::io(format!("writing {}", index_path.display())))?;
    persist(tmp, &index_path)?;
    // The superseded list is garbage now, unless another image shares it.
    if let Some(old) = previous {
        let shared = index
            .manifests
            .iter()
            .any(|d| d.annotations.get(super::read::ANNOTATION_REFERRERS) == Some(&old));
        if !shared {
            let _ = fs::remove_file(blob_dir.join(digest_hex(&old)));
        }
    }
    Ok(entry)
}

/// Where index.json lists the image manifest `subject`: its entry's
/// position and the manifest's descriptor. A platform's manifest of a
/// multi-platform image is listed by the image index its entry names; the
/// artifacts of every platform then hang off that entry (a registry, too,
/// lists referrers per manifest, whatever index holds it).
fn find_subject(
    index: &Index,
    blob_dir: &Path,
    subject: Sha256Digest,
) -> Result<Option<(usize, Descriptor)>, ImageError> {
    let wanted = subject.to_string();
    if let Some(at) = index.manifests.iter().position(|d| d.digest == wanted) {
        return Ok(Some((at, index.manifests[at].clone())));
    }
    for (at, entry) in index.manifests.iter().enumerate() {
        if entry.media_type != oci::MEDIA_TYPE_INDEX {
            continue;
        }
        let path = blob_dir.join(digest_hex(&entry.digest));
        let bytes =
            fs::read(&path).map_err(ImageError::io(format!("reading {}", path.display())))?;
        if Sha256Digest::of(&bytes).to_string() != entry.digest {
            return Err(ImageError::Invalid {
                location: path.display().to_string(),
                reason: format!("image index {} is corrupt", entry.digest),
            });
        }
        let nested: Index = serde_json::from_slice(&bytes).map_err(|source| ImageError::Json {
            what: path.display().to_string(),
            source,
        })?;
        if let Some(desc) = nested.manifests.into_iter().find(|d| d.digest == wanted) {
            return Ok(Some((at, desc)));
        }
    }
    Ok(None)
}

/// Writes a content-addressed blob unless it is already there.
fn write_blob_once(blob_dir: &Path, digest: &str, bytes: &[u8]) -> Result<(), ImageError> {
    let path = blob_dir.join(digest_hex(digest));
    if !path.exists() {
        let tmp = temp_file_beside(&path)?;
        fs::write(tmp.path(), bytes)
            .map_err(ImageError::io(format!("writing {}", path.display())))?;
        persist(tmp, &path)?;
    }
    Ok(())
}

/// Compression of a layer blob, from its media type.
fn blob_compression(media_type: &str) -> Option<LayerCompression> {
    match media_type {
        oci::MEDIA_TYPE_LAYER_GZIP | oci::DOCKER_MEDIA_TYPE_LAYER_GZIP => {
            Some(LayerCompression::Gzip)
        }
        oci::MEDIA_TYPE_LAYER_ZSTD => Some(LayerCompression::Zstd),
        oci::MEDIA_TYPE_LAYER_TAR | oci::DOCKER_MEDIA_TYPE_LAYER_TAR => {
            Some(LayerCompression::None)
        }
        _ => None,
    }
}

/// Media type of a legacy (unlabelled) layer blob, from its magic bytes.
fn sniff_layer_media_type(path: &Path) -> Result<&'static str, ImageError> {
    let mut head = [0u8; 4];
    let mut f = File::open(path).map_err(ImageError::io(format!("opening {}", path.display())))?;
    let n = io::Read::read(&mut f, &mut head)
        .map_err(ImageError::io(format!("reading {}", path.display())))?;
    Ok(if head[..n].starts_with(&[0x1f, 0x8b]) {
        oci::MEDIA_TYPE_LAYER_GZIP
    } else if head[..n].starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        oci::MEDIA_TYPE_LAYER_ZSTD
    } else {
        oci::MEDIA_TYPE_LAYER_TAR
    })
}

pub(crate) fn oci_layout_bytes() -> Vec<u8> {
    format!("{{\"imageLayoutVersion\":\"{}\"}}", oci::OCI_LAYOUT_VERSION).into_bytes()
}

/// The reference name of an image written without one: `latest`, as
/// buildah and skopeo assume, so `umoci unpack --image DIR` finds it.
pub const DEFAULT_REF_NAME: &str = "latest";

/// index.json; `containerd_name` adds `io.containerd.image.name` (docker archives).
pub(crate) fn index_json(
    meta: &MetadataBlobs,
    reference: Option<&ImageReference>,
    containerd_name: bool,
) -> Result<Vec<u8>, ImageError> {
    image_index_json(
        &meta.manifest_desc,
        &meta.platform,
        reference,
        containerd_name,
    )
}

/// index.json naming the one image `manifest` (for `platform`).
pub(crate) fn image_index_json(
    manifest: &Descriptor,
    platform: &oci::Platform,
    reference: Option<&ImageReference>,
    containerd_name: bool,
) -> Result<Vec<u8>, ImageError> {
    let mut desc = manifest.clone();
    desc.platform = Some(platform.clone());
    let tag = reference.map_or(DEFAULT_REF_NAME, |r| r.tag.as_str());
    desc.annotations
        .insert(oci::ANNOTATION_REF_NAME.into(), tag.to_owned());
    if let Some(r) = reference.filter(|_| containerd_name) {
        desc.annotations
            .insert(oci::ANNOTATION_CONTAINERD_NAME.into(), r.fully_qualified());
    }
    canonical_json(&Index {
        schema_version: 2,
        media_type: Some(oci::MEDIA_TYPE_INDEX.into()),
        manifests: vec![desc],
        annotations: BTreeMap::new(),
    })
}

pub(crate) fn digest_hex(digest: &str) -> &str {
    digest.strip_prefix("sha256:").unwrap_or(digest)
}

pub(crate) fn parent_dir(target: &Path) -> &Path {
    match target.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

pub(crate) fn write_file(path: &Path, bytes: &[u8]) -> Result<(), ImageError> {
    let mut f =
        File::create(path).map_err(ImageError::io(format!("creating {}", path.display())))?;
    f.write_all(bytes)
        .map_err(ImageError::io(format!("writing {}", path.display())))?;
    f.sync_all()
        .map_err(ImageError::io(format!("syncing {}", path.display())))
}

/// Puts `src` at `dest` (a link when both are on one file system) and
/// syncs it: the builder's own blobs are work files that were never synced.
pub(crate) fn link_or_copy(src: &Path, dest: &Path) -> Result<(), ImageError> {
    if fs::hard_link(src, dest).is_err() {
        fs::copy(src, dest).map_err(ImageError::io(format!(
            "copying {} to {}",
            src.display(),
            dest.display()
        )))?;
    }
    File::open(dest)
        .and_then(|f| f.sync_all())
        .map_err(ImageError::io(format!("syncing {}", dest.display())))
}

pub(crate) fn sync_dir(dir: &Path) -> Result<(), ImageError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(ImageError::io(format!("syncing {}", dir.display())))
}

/// An output file being written beside its target, removed if dropped or
/// if the process is interrupted before [`persist`] renames it into place.
pub(crate) struct OutputTemp {
    file: tempfile::NamedTempFile,
    _tracked: crate::cleanup::Tracked,
}

impl std::ops::Deref for OutputTemp {
    type Target = tempfile::NamedTempFile;
    fn deref(&self) -> &Self::Target {
        &self.file
    }
}

impl std::ops::DerefMut for OutputTemp {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.file
    }
}

pub(crate) fn temp_file_beside(target: &Path) -> Result<OutputTemp, ImageError> {
    let parent = parent_dir(target);
    // tempfile's default 0600 would make the finished output private; the
    // umask still applies, as for any file a tool creates.
    crate::cleanup::creating(|| {
        let file = tempfile::Builder::new()
            .prefix(".rootstrap-out-")
            .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644))
            .tempfile_in(parent)?;
        Ok(OutputTemp {
            _tracked: crate::cleanup::Tracked::new(file.path()),
            file,
        })
    })
    .map_err(ImageError::io(format!(
        "creating a temporary file in {}",
        parent.display()
    )))
}

/// Sync and rename a finished temp file onto `target`.
pub(crate) fn persist(tmp: OutputTemp, target: &Path) -> Result<(), ImageError> {
    tmp.as_file().sync_all().map_err(ImageError::io(format!(
        "syncing output for {}",
        target.display()
    )))?;
    crate::cleanup::creating(|| tmp.file.persist(target))
        .map_err(|e| ImageError::io(format!("renaming output to {}", target.display()))(e.error))?;
    sync_dir(parent_dir(target))
}

/// An OCI layout directory being written beside its target and moved onto
/// it only when complete.
pub(crate) struct LayoutDraft {
    tmp: tempfile::TempDir,
    /// Removes `tmp` on Ctrl-C/SIGTERM too (see `cleanup`).
    _tracked: crate::cleanup::Tracked,
    /// Its blobs/sha256.
    pub(crate) blob_dir: PathBuf,
}

impl LayoutDraft {
    /// A temporary directory beside `target` with blobs/sha256 and oci-layout.
    pub(crate) fn begin(target: &Path) -> Result<Self, ImageError> {
        let parent = parent_dir(target);
        // tempfile's default 0700 would make the finished layout private.
        let (tmp, tracked) = crate::cleanup::creating(|| {
            let tmp = tempfile::Builder::new()
                .prefix(".rootstrap-oci-")
                .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o755))
                .tempdir_in(parent)?;
            let tracked = crate::cleanup::Tracked::new(tmp.path());
            Ok((tmp, tracked))
        })
        .map_err(ImageError::io(format!(
            "creating a temporary directory in {}",
            parent.display()
        )))?;
        let blob_dir = tmp.path().join("blobs/sha256");
        fs::create_dir_all(&blob_dir)
            .map_err(ImageError::io(format!("creating {}", blob_dir.display())))?;
        write_file(&tmp.path().join("oci-layout"), &oci_layout_bytes())?;
        Ok(LayoutDraft {
            tmp,
            _tracked: tracked,
            blob_dir,
        })
    }

    /// Writes `index` as index.json, syncs, and moves the layout onto `target`.
    pub(crate) fn finish(self, index: &[u8], target: &Path) -> Result<(), ImageError> {
        let root = self.tmp.path();
        // index.json last: a reader that finds it finds a complete layout.
        write_file(&root.join("index.json"), index)?;
        sync_dir(&self.blob_dir)?;
        sync_dir(root)?;
        replace_dir(self.tmp, target)
    }
}

/// Move a finished temp directory onto `target`, replacing an existing
/// directory only after the new one is complete.
pub(crate) fn replace_dir(tmp: tempfile::TempDir, target: &Path) -> Result<(), ImageError> {
    // One step for an interrupt: never a target moved aside and not back.
    crate::cleanup::creating(|| replace_dir_now(tmp, target))
}

fn replace_dir_now(tmp: tempfile::TempDir, target: &Path) -> Result<(), ImageError> {
    let ctx = || format!("moving the image into {}", target.display());
    match fs::symlink_metadata(target) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let tmp_path = tmp.keep();
            fs::rename(&tmp_path, target).map_err(|e| {
                let _ = fs::remove_dir_all(&tmp_path);
                ImageError::io(ctx())(e)
            })
        }
        Err(e) => Err(ImageError::io(ctx())(e)),
        Ok(m) if !m.is_dir() => Err(ImageError::Invalid {
            location: target.display().to_string(),
            reason: "exists and is not a directory".into(),
        }),
        Ok(_) => {
            // rename(2) cannot replace a non-empty directory: move the old one
            // aside first, and put it back if the swap fails.
            let parent = parent_dir(target);
            let aside = tempfile::Builder::new()
                .prefix(".rootstrap-old-")
                .tempdir_in(parent)
                .map_err(ImageError::io(ctx()))?;
            let old = aside.path().join("old");
            fs::rename(target, &old).map_err(ImageError::io(ctx()))?;
            let tmp_path = tmp.keep();
            if let Err(e) = fs::rename(&tmp_path, target) {
                let _ = fs::rename(&old, target);
                let _ = fs::remove_dir_all(&tmp_path);
                return Err(ImageError::io(ctx())(e));
            }
            drop(aside);
            Ok(())
        }
    }
}
