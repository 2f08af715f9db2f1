//! The local image store: images built with `-t NAME:TAG`, kept in one OCI
//! image layout (`<data dir>/images`) so blobs are shared between images.
//!
//! `index.json` lists one manifest per name (an image index for a
//! multi-platform image, whose platforms' manifests are blobs beside it);
//! its `org.opencontainers.image.ref.name` annotation holds the full
//! familiar name (`myorg/app:1`), which is what `FROM myorg/app:1` looks
//! up, so the store is also a valid `oci:` source on its own. Changes happen under an
//! exclusive lock on `<store>/lock`; `index.json` is replaced by rename, so
//! a reader never sees half of it.

use std::collections::HashSet;
use std::fs::{self, File};
use std::path::{Path, PathBuf};

use crate::cleanup::TempPath;
use crate::image::oci::{self, Descriptor, Index, Manifest};
use crate::image::{
    ImageBuilder, ImageError, ImageReference, ImageSource, OpenedImage, Output, Sha256Digest,
};
use crate::report::Reporter;

mod save;
pub use save::SavedImage;

/// When the image was stored (RFC 3339), in its index entry.
pub const ANNOTATION_CREATED: &str = "org.opencontainers.image.created";
/// Sum of the manifest's config and layer blob sizes, in bytes.
pub const ANNOTATION_SIZE: &str = "org.rootstrap.size";
/// A multi-platform image's platforms (`linux/amd64,linux/arm64`).
pub const ANNOTATION_PLATFORMS: &str = "org.rootstrap.platforms";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error("{path}: {reason}")]
    Corrupt { path: String, reason: String },
    #[error("no image {0:?} in the local image store (see `rootstrap images`)")]
    NotFound(String),
    #[error("{image}: not an image file or directory (oci:DIR, oci-archive:FILE, docker-archive:FILE), an image in the local store {store} (see `rootstrap images`) or an image reference")]
    Unresolved { image: String, store: PathBuf },
    #[error("{image} is not in the local image store {store} (see `rootstrap images`), and pulling it from its registry failed: {error}")]
    Pull {
        image: String,
        store: PathBuf,
        error: crate::image::registry::RegistryError,
    },
    #[error("{0}: has no OCI manifest (a legacy docker-save archive) and cannot be stored")]
    NoManifest(String),
    #[error("--platform {platform}: {output} holds the whole image, every platform; --platform picks one for a docker-archive: output")]
    PlatformOfWhole { output: String, platform: String },
    #[error("{image} is a single-platform image for {has}, not {wanted}")]
    SinglePlatform {
        image: String,
        has: String,
        wanted: String,
    },
    #[error("{0}: save writes oci:DIR, oci-archive:FILE or docker-archive:FILE")]
    SaveOutput(String),
    #[error("opening {image}")]
    Open {
        image: String,
        #[source]
        source: ImageError,
    },
    #[error("verifying {image}")]
    Verify {
        image: String,
        #[source]
        source: ImageError,
    },
}

/// An image located for a command: where it is and the name to pick in
/// it. One pulled from a registry lives in a temporary layout, removed
/// when this is dropped.
pub struct ResolvedImage {
    pub source: ImageSource,
    pub name: Option<String>,
    _pulled: Option<TempPath>,
}

/// Where a command finds the image named `spec`, the one rule for every
/// command that takes an image (`run`, `inspect`, `sbom`, `diff`, `push`;
/// `FROM` and `COPY --from` try a stage name first): `oci:DIR[:REF]`,
/// `oci-archive:FILE[:REF]` or `docker-archive:FILE[:NAME]` name a directory
/// or file; anything else is a `NAME[:TAG]` in the local store, else an
/// image reference pulled from its registry (Docker Hub when no host is
/// named, as Docker does) into a temporary layout under `work_dir`.
pub fn resolve_image(
    spec: &str,
    store: &ImageStore,
    work_dir: &Path,
    reporter: &dyn Reporter,
) -> Result<ResolvedImage, StoreError> {
    resolve_image_for(spec, store, work_dir, None, reporter)
}

/// [`resolve_image`], pulling `platform`'s image (else this machine's)
/// when the image comes from a registry.
pub fn resolve_image_for(
    spec: &str,
    store: &ImageStore,
    work_dir: &Path,
    platform: Option<&oci::Platform>,
    reporter: &dyn Reporter,
) -> Result<ResolvedImage, StoreError> {
    let found = |(source, name): (ImageSource, Option<String>)| ResolvedImage {
        source,
        name,
        _pulled: None,
    };
    if crate::image::read::TRANSPORTS
        .iter()
        .any(|t| spec.starts_with(t))
    {
        return Ok(found(ImageSource::parse_named(spec)?));
    }
    if let Some(stored) = store.lookup(spec)? {
        return Ok(found(stored));
    }
    let Ok(mut reference) = ImageReference::parse(spec) else {
        return Err(StoreError::Unresolved {
            image: spec.to_owned(),
            store: store.dir().to_owned(),
        });
    };
    if reference.registry.is_none() {
        reference.registry = Some("docker.io".into());
        if !reference.repository.contains('/') {
            reference.repository = format!("library/{}", reference.repository);
        }
    }
    let tmp = TempPath::new(work_dir.join(format!(
        ".rootstrap-pull-{}-{}",
        std::process::id(),
        PULLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    )));
    fs::create_dir_all(tmp.path()).map_err(io_err(format!("creating {}", tmp.path().display())))?;
    let layout = tmp.path().join("oci");
    let (arch, os) = match platform {
        Some(p) => (p.architecture.as_str(), p.os.as_str()),
        None => (oci::oci_arch(std::env::consts::ARCH).0, "linux"),
    };
    crate::image::registry::pull(
        &reference,
        (arch, os),
        &crate::image::registry::PushOptions::default(),
        &layout,
        reporter,
    )
    .map_err(|error| StoreError::Pull {
        image: spec.to_owned(),
        store: store.dir().to_owned(),
        error,
    })?;
    Ok(ResolvedImage {
        source: ImageSource::OciDir(layout),
        name: None,
        _pulled: Some(tmp),
    })
}

/// The image `spec` (found as [`resolve_image`] does), every blob re-hashed
/// ([`fsck`](crate::image::fsck)): from a multi-platform image `platform`'s
/// image, else this machine's (an error naming the platforms it has when
/// it lacks that one); a docker archive holds one image, taken as it is.
/// The [`ResolvedImage`] keeps a pulled image's temporary layout until the
/// caller is done with the image.
pub fn open_verified(
    spec: &str,
    store: &ImageStore,
    work_dir: &Path,
    platform: Option<&oci::Platform>,
    reporter: &dyn Reporter,
) -> Result<(OpenedImage, ResolvedImage), StoreError> {
    let resolved = resolve_image_for(spec, store, work_dir, platform, reporter)?;
    let name = resolved.name.as_deref();
    let opened = match (platform, &resolved.source) {
        (Some(p), ImageSource::OciDir(_) | ImageSource::OciArchive(_)) => {
            OpenedImage::open_platform(&resolved.source, name, p)
        }
        _ => OpenedImage::open(&resolved.source, name),
    };
    let image = opened.map_err(|source| StoreError::Open {
        image: spec.to_owned(),
        source,
    })?;
    crate::image::fsck(&image).map_err(|source| StoreError::Verify {
        image: spec.to_owned(),
        source,
    })?;
    Ok((image, resolved))
}

/// Numbers the temporary layouts of one process's pulls.
static PULLS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

fn io_err(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> StoreError {
    let context = context.into();
    move |source| StoreError::Io { context, source }
}

/// One stored image, as `rootstrap images` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredImage {
    /// Repository, e.g. `myorg/app` (with the registry when one was named).
    pub name: String,
    pub tag: String,
    /// `sha256:<hex>` of the manifest.
    pub digest: String,
    /// The image config's `created`, else when it was stored.
    pub created: Option<String>,
    /// Bytes of the (compressed) blobs the image references.
    pub size: u64,
    /// A multi-platform image's platforms (`linux/arm64`); empty for one
    /// image.
    pub platforms: Vec<String>,
}

impl StoredImage {
    /// `name:tag`, the key in the store.
    pub fn reference(&self) -> String {
        format!("{}:{}", self.name, self.tag)
    }
}

#[derive(Debug, Clone)]
pub struct ImageStore {
    dir: PathBuf,
}

/// The familiar `name:tag` of a reference string (tag `latest` when none).
fn familiar(name: &str) -> Result<String, ImageError> {
    ImageReference::parse(name).map(|r| r.familiar())
}

impl ImageStore {
    /// The store inside rootstrap's data directory (the cache dir).
    pub fn new(data_dir: &Path) -> ImageStore {
        ImageStore {
            dir: data_dir.join("images"),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn index_path(&self) -> PathBuf {
        self.dir.join("index.json")
    }

    fn blob_path(&self, digest: &str) -> PathBuf {
        self.dir
            .join("blobs/sha256")
            .join(digest.strip_prefix("sha256:").unwrap_or(digest))
    }

    fn read_index(&self) -> Result<Index, StoreError> {
        let path = self.index_path();
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| StoreError::Corrupt {
                path: path.display().to_string(),
                reason: e.to_string(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(empty_index()),
            Err(e) => Err(io_err(format!("reading {}", path.display()))(e)),
        }
    }

    fn write_index(&self, index: &Index) -> Result<(), StoreError> {
        let path = self.index_path();
        let bytes = oci::canonical_json(index)?;
        crate::cleanup::write_atomically(&path, &bytes)
            .map_err(io_err(format!("writing {}", path.display())))
    }

    /// Holds the store's lock until dropped (the lock goes with the fd).
    fn lock(&self) -> Result<File, StoreError> {
        fs::create_dir_all(self.dir.join("blobs/sha256"))
            .map_err(io_err(format!("creating {}", self.dir.display())))?;
        let path = self.dir.join("lock");
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io_err(format!("opening {}", path.display())))?;
        rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive)
            .map_err(|e| io_err(format!("locking {}", path.display()))(e.into()))?;
        let layout = self.dir.join("oci-layout");
        if !layout.exists() {
            fs::write(&layout, br#"{"imageLayoutVersion":"1.0.0"}"#)
                .map_err(io_err(format!("writing {}", layout.display())))?;
        }
        Ok(file)
    }

    /// Stores `image` as `reference`, replacing an image of that name.
    pub fn put(
        &self,
        image: &ImageBuilder,
        reference: &ImageReference,
    ) -> Result<StoredImage, StoreError> {
        let _lock = self.lock()?;
        let name = reference.familiar();
        let staging = tempfile::Builder::new()
            .prefix(".put-")
            .tempdir_in(&self.dir)
            .map_err(io_err(format!(
                "creating a directory in {}",
                self.dir.display()
            )))?;
        let layout = staging.path().join("oci");
        let written = image.write(&Output::OciDir(layout.clone()), None)?;
        // Blobs move into the shared directory; ones already there stay.
        let staged_blobs = layout.join("blobs/sha256");
        let entries = fs::read_dir(&staged_blobs)
            .map_err(io_err(format!("reading {}", staged_blobs.display())))?;
        for entry in entries {
            let entry = entry.map_err(io_err(format!("reading {}", staged_blobs.display())))?;
            let dest = self.dir.join("blobs/sha256").join(entry.file_name());
            if !dest.exists() {
                fs::rename(entry.path(), &dest)
                    .map_err(io_err(format!("storing {}", dest.display())))?;
            }
        }
        let staged_index: Index = serde_json::from_slice(
            &fs::read(layout.join("index.json"))
                .map_err(io_err(format!("reading {}", layout.display())))?,
        )
        .map_err(|e| StoreError::Corrupt {
            path: layout.display().to_string(),
            reason: e.to_string(),
        })?;
        let desc =
            staged_index
                .manifests
                .into_iter()
                .next()
                .ok_or_else(|| StoreError::Corrupt {
                    path: layout.display().to_string(),
                    reason: "no manifest written".into(),
                })?;
        let config = image.final_config();
        let created = config
            .created
            .clone()
            .unwrap_or_else(|| chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string());
        let size = image
            .layers()
            .iter()
            .map(|l| l.descriptor.size)
            .sum::<u64>()
            + oci::canonical_json(&config)?.len() as u64;
        self.name_manifest(desc, &name, &created, size, &[])?;
        Ok(StoredImage {
            name: reference_name(&name),
            tag: reference.tag.clone(),
            digest: written.manifest_digest.to_string(),
            created: Some(created),
            size,
            platforms: Vec::new(),
        })
    }

    /// Stores the image `image` (opened from a layout or archive) as
    /// `reference`: its manifest, config and layer blobs are copied in,
    /// each checked against its digest on the way.
    pub fn put_opened(
        &self,
        image: &OpenedImage,
        reference: &ImageReference,
    ) -> Result<StoredImage, StoreError> {
        let manifest_digest = image
            .manifest_digest
            .ok_or_else(|| StoreError::NoManifest(image.source.location()))?;
        let _lock = self.lock()?;
        let name = reference.familiar();
        self.copy_image_blobs(image)?;
        let created = image
            .config
            .created
            .clone()
            .unwrap_or_else(|| chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string());
        let size = image.layers.iter().map(|l| l.size).sum::<u64>() + image.config_size;
        let manifest_bytes = fs::read(self.blob_path(&manifest_digest.to_string()))
            .map_err(io_err(format!("reading manifest {manifest_digest}")))?;
        let media_type = image
            .manifest
            .as_ref()
            .and_then(|m| m.media_type.clone())
            .unwrap_or_else(|| oci::MEDIA_TYPE_MANIFEST.to_owned());
        let desc = Descriptor::new(&media_type, manifest_digest, manifest_bytes.len() as u64);
        self.name_manifest(desc, &name, &created, size, &[])?;
        Ok(StoredImage {
            name: reference_name(&name),
            tag: reference.tag.clone(),
            digest: manifest_digest.to_string(),
            created: Some(created),
            size,
            platforms: Vec::new(),
        })
    }

    /// Stores the multi-platform image the OCI layout `layout` holds (its
    /// one image index, as a multi-platform build writes it) as
    /// `reference`: the index and every platform's manifest, config and
    /// layers, each checked against its digest on the way. `FROM` then
    /// takes the build's platform from it, `run` and `inspect` the host's,
    /// and `push` sends it whole.
    pub fn put_index_layout(
        &self,
        layout: &Path,
        reference: &ImageReference,
    ) -> Result<StoredImage, StoreError> {
        let source = ImageSource::OciDir(layout.to_owned());
        let open_err = |source| StoreError::Open {
            image: layout.display().to_string(),
            source,
        };
        let (index_bytes, index) = crate::image::registry::layout_index(layout, None)
            .map_err(|e| StoreError::Corrupt {
                path: layout.display().to_string(),
                reason: e.to_string(),
            })?
            .ok_or_else(|| StoreError::Corrupt {
                path: layout.display().to_string(),
                reason: "holds no image index".into(),
            })?;
        let _lock = self.lock()?;
        let name = reference.familiar();
        let mut platforms = Vec::new();
        let mut sizes: std::collections::BTreeMap<Sha256Digest, u64> = Default::default();
        let mut created = None;
        for entry in &index.manifests {
            let platform = entry.platform.as_ref().ok_or_else(|| StoreError::Corrupt {
                path: layout.display().to_string(),
                reason: format!("index entry {} names no platform", entry.digest),
            })?;
            let image = OpenedImage::open_platform(&source, None, platform).map_err(open_err)?;
            if image.manifest_digest.map(|d| d.to_string()).as_deref() != Some(&entry.digest) {
                return Err(StoreError::Corrupt {
                    path: layout.display().to_string(),
                    reason: format!(
                        "the image index names {} for {platform}, which the layout does not hold",
                        entry.digest
                    ),
                });
            }
            self.copy_image_blobs(&image)?;
            for layer in &image.layers {
                if let Some(d) = layer.digest {
                    sizes.insert(d, layer.size);
                }
            }
            sizes.insert(image.config_digest, image.config_size);
            created = created.or_else(|| image.config.created.clone());
            platforms.push(platform.to_string());
        }
        let digest = Sha256Digest::of(&index_bytes);
        self.write_blob(digest, &index_bytes)?;
        let created =
            created.unwrap_or_else(|| chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string());
        let size = sizes.values().sum();
        let desc = Descriptor::new(oci::MEDIA_TYPE_INDEX, digest, index_bytes.len() as u64);
        self.name_manifest(desc, &name, &created, size, &platforms)?;
        Ok(StoredImage {
            name: reference_name(&name),
            tag: reference.tag.clone(),
            digest: digest.to_string(),
            created: Some(created),
            size,
            platforms,
        })
    }

    /// Copies `image`'s manifest, config and layer blobs into the store
    /// (those not there yet), each checked against its digest. The caller
    /// holds the lock.
    fn copy_image_blobs(&self, image: &OpenedImage) -> Result<(), StoreError> {
        let manifest_digest = image
            .manifest_digest
            .ok_or_else(|| StoreError::NoManifest(image.source.location()))?;
        let mut blobs: Vec<(Sha256Digest, String)> = vec![
            (
                manifest_digest,
                format!("blobs/sha256/{}", manifest_digest.to_hex()),
            ),
            (
                image.config_digest,
                format!("blobs/sha256/{}", image.config_digest.to_hex()),
            ),
        ];
        for layer in &image.layers {
            let digest = layer
                .digest
                .ok_or_else(|| StoreError::NoManifest(image.source.location()))?;
            blobs.push((digest, layer.member.clone()));
        }
        for (digest, member) in &blobs {
            if self.blob_path(&digest.to_string()).exists() {
                continue;
            }
            self.store_blob(*digest, &mut image.open_member(member)?, member)?;
        }
        Ok(())
    }

    /// A small blob held in memory (an image index), unless already there.
    fn write_blob(&self, digest: Sha256Digest, bytes: &[u8]) -> Result<(), StoreError> {
        if self.blob_path(&digest.to_string()).exists() {
            return Ok(());
        }
        self.store_blob(digest, &mut &bytes[..], "the image index")
    }

    /// Writes the blob `digest` from `from`, hashing on the way; a stream
    /// with another digest is refused and leaves nothing.
    fn store_blob(
        &self,
        digest: Sha256Digest,
        from: &mut dyn std::io::Read,
        what: &str,
    ) -> Result<(), StoreError> {
        let dest = self.blob_path(&digest.to_string());
        let mut tmp = tempfile::Builder::new()
            .prefix(".blob-")
            .tempfile_in(self.dir.join("blobs/sha256"))
            .map_err(io_err(format!("creating a file in {}", self.dir.display())))?;
        copy_checked(
            from,
            tmp.as_file_mut(),
            &digest,
            &format!("{what} into the store"),
        )?;
        tmp.persist(&dest)
            .map_err(|e| io_err(format!("storing {}", dest.display()))(e.error))?;
        Ok(())
    }

    /// Lists `desc` in the index under `name` with its creation time and
    /// size, replacing an image of that name (whose blobs no other image
    /// uses are then dropped). The caller holds the store's lock.
    fn name_manifest(
        &self,
        mut desc: Descriptor,
        name: &str,
        created: &str,
        size: u64,
        platforms: &[String],
    ) -> Result<(), StoreError> {
        desc.annotations.clear();
        if !platforms.is_empty() {
            desc.annotations
                .insert(ANNOTATION_PLATFORMS.into(), platforms.join(","));
        }
        desc.annotations
            .insert(oci::ANNOTATION_REF_NAME.into(), name.to_owned());
        desc.annotations
            .insert(ANNOTATION_CREATED.into(), created.to_owned());
        desc.annotations
            .insert(ANNOTATION_SIZE.into(), size.to_string());
        let mut index = self.read_index()?;
        let replaced = remove_named(&mut index, name);
        index.manifests.push(desc);
        self.write_index(&index)?;
        if replaced {
            self.collect_garbage(&index)?;
        }
        Ok(())
    }

    /// Every stored image, sorted by name.
    pub fn list(&self) -> Result<Vec<StoredImage>, StoreError> {
        let index = self.read_index()?;
        let mut images: Vec<StoredImage> = index.manifests.iter().filter_map(stored).collect();
        images.sort_by_key(StoredImage::reference);
        Ok(images)
    }

    /// Where `FROM name` finds a stored image: the store as an OCI layout
    /// and the name to select in it. `None` when no such image is stored
    /// (or `name` is not an image reference at all).
    pub fn lookup(&self, name: &str) -> Result<Option<(ImageSource, Option<String>)>, StoreError> {
        let Ok(wanted) = familiar(name) else {
            return Ok(None);
        };
        let index = self.read_index()?;
        let found = index.manifests.iter().any(|d| ref_name(d) == Some(&wanted));
        Ok(found.then(|| (ImageSource::OciDir(self.dir.clone()), Some(wanted))))
    }

    /// Removes `name` (`NAME[:TAG]`) and the blobs no other image uses.
    pub fn remove(&self, name: &str) -> Result<StoredImage, StoreError> {
        let wanted = familiar(name)?;
        let _lock = self.lock()?;
        let mut index = self.read_index()?;
        let removed = index
            .manifests
            .iter()
            .find(|d| ref_name(d) == Some(&wanted))
            .and_then(stored)
            .ok_or_else(|| StoreError::NotFound(name.to_string()))?;
        remove_named(&mut index, &wanted);
        self.write_index(&index)?;
        self.collect_garbage(&index)?;
        Ok(removed)
    }

    /// Deletes every blob that no manifest of `index` references (the caller
    /// holds the lock). Returns the bytes freed.
    fn collect_garbage(&self, index: &Index) -> Result<u64, StoreError> {
        let mut keep: HashSet<String> = HashSet::new();
        for desc in &index.manifests {
            self.keep_image(desc, true, &mut keep)?;
        }
        let blobs = self.dir.join("blobs/sha256");
        let mut freed = 0;
        let entries =
            fs::read_dir(&blobs).map_err(io_err(format!("reading {}", blobs.display())))?;
        for entry in entries.filter_map(|e| e.ok()) {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !keep.contains(&name) {
                freed += entry.metadata().map(|m| m.len()).unwrap_or(0);
                fs::remove_file(entry.path())
                    .map_err(io_err(format!("removing {}", entry.path().display())))?;
            }
        }
        Ok(freed)
    }
}

impl ImageStore {
    /// Adds the blobs the image `desc` names to `keep`: a manifest's config
    /// and layers, or for an image index (`nested_ok`: one level, as the
    /// store writes them) each platform's.
    fn keep_image(
        &self,
        desc: &Descriptor,
        nested_ok: bool,
        keep: &mut HashSet<String>,
    ) -> Result<(), StoreError> {
        let corrupt = |reason: String| StoreError::Corrupt {
            path: self.index_path().display().to_string(),
            reason,
        };
        if Sha256Digest::parse(&desc.digest).is_err() {
            return Err(corrupt(format!(
                "invalid manifest digest {:?}",
                desc.digest
            )));
        }
        keep.insert(hex_of(&desc.digest));
        let path = self.blob_path(&desc.digest);
        let bytes = fs::read(&path).map_err(io_err(format!("reading {}", path.display())))?;
        let parse_err = |e: serde_json::Error| StoreError::Corrupt {
            path: path.display().to_string(),
            reason: e.to_string(),
        };
        if desc.media_type == oci::MEDIA_TYPE_INDEX {
            if !nested_ok {
                return Err(corrupt(format!(
                    "image index {} inside an index",
                    desc.digest
                )));
            }
            let nested: Index = serde_json::from_slice(&bytes).map_err(parse_err)?;
            for inner in &nested.manifests {
                self.keep_image(inner, false, keep)?;
            }
            return Ok(());
        }
        let manifest: Manifest = serde_json::from_slice(&bytes).map_err(parse_err)?;
        keep.insert(hex_of(&manifest.config.digest));
        keep.extend(manifest.layers.iter().map(|l| hex_of(&l.digest)));
        Ok(())
    }
}

fn empty_index() -> Index {
    Index {
        schema_version: 2,
        media_type: Some(oci::MEDIA_TYPE_INDEX.into()),
        manifests: Vec::new(),
        annotations: Default::default(),
    }
}

fn hex_of(digest: &str) -> String {
    digest.strip_prefix("sha256:").unwrap_or(digest).to_string()
}

fn ref_name(desc: &Descriptor) -> Option<&String> {
    desc.annotations.get(oci::ANNOTATION_REF_NAME)
}

/// Drops the entries named `name`; true if there was one.
fn remove_named(index: &mut Index, name: &str) -> bool {
    let before = index.manifests.len();
    index
        .manifests
        .retain(|d| ref_name(d).map(String::as_str) != Some(name));
    index.manifests.len() != before
}

/// `myorg/app:1` → `myorg/app` (a colon before the last `/` is a port).
fn reference_name(familiar: &str) -> String {
    let last_slash = familiar.rfind('/').map_or(0, |i| i + 1);
    match familiar[last_slash..].rfind(':') {
        Some(i) => familiar[..last_slash + i].to_string(),
        None => familiar.to_string(),
    }
}

fn stored(desc: &Descriptor) -> Option<StoredImage> {
    let full = ref_name(desc)?;
    let name = reference_name(full);
    let tag = full.get(name.len() + 1..).unwrap_or("latest").to_string();
    Some(StoredImage {
        name,
        tag,
        digest: desc.digest.clone(),
        created: desc.annotations.get(ANNOTATION_CREATED).cloned(),
        size: desc
            .annotations
            .get(ANNOTATION_SIZE)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0),
        platforms: desc
            .annotations
            .get(ANNOTATION_PLATFORMS)
            .map(|p| p.split(',').map(str::to_owned).collect())
            .unwrap_or_default(),
    })
}

/// Copies `from` into `to`; fails unless the bytes hash to `digest`.
/// `what` names the copy in errors (`copying WHAT`).
fn copy_checked(
    from: &mut dyn std::io::Read,
    to: &mut File,
    digest: &Sha256Digest,
    what: &str,
) -> Result<(), StoreError> {
    let mut hashing = crate::image::HashingWriter::new(to);
    std::io::copy(from, &mut hashing).map_err(io_err(format!("copying {what}")))?;
    let (_, actual, _) = hashing.finish();
    if actual != *digest {
        return Err(ImageError::DigestMismatch {
            digest: digest.to_string(),
            actual: actual.to_string(),
        }
        .into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_split_at_the_tag_not_the_port() {
        assert_eq!(reference_name("myorg/app:1"), "myorg/app");
        assert_eq!(reference_name("localhost:5000/app:1"), "localhost:5000/app");
        assert_eq!(familiar("app").unwrap(), "app:latest");
        assert!(familiar("UPPER").is_err());
    }
}
