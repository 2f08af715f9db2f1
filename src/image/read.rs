//! Opening images back: `oci:DIR` layouts, `oci-archive:FILE` (a tar of a
//! layout) and `docker-archive:FILE` tars (ours, and those written by real
//! `docker save`, old and new layouts).
//!
//! Every blob read is checked against its digest; [`fsck`] re-hashes all of
//! them, and [`unpack_layers`] applies layers through a caller-supplied
//! [`UnpackSink`] so this module never writes into a root filesystem itself.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashSet};
use std::fs::{self, File};
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path, PathBuf};
use std::rc::Rc;

use super::compress::auto_decoder;
use super::oci::{self, Descriptor, DockerManifestEntry, ImageConfig, Index, Manifest};
use super::tar::{LayerEntryKind, LayerReader, TarHeader, OPAQUE_WHITEOUT, WHITEOUT_PREFIX};
use super::{HashingWriter, ImageError, Sha256Digest};
use crate::archive::decompress::Capped;

/// JSON blobs larger than this are refused (configs with long histories are
/// tens of KiB; this only stops a hostile archive from exhausting memory).
const MAX_JSON_BLOB: u64 = 16 << 20;

/// A layer may decompress to at most this many times the size of its stored
/// blob, and always to at least [`LAYER_MIN_CAP`]: a gzip or zstd bomb in a
/// pulled or loaded image stops with an error naming the layer instead of
/// filling the disk (HOSTILE 14). Real layers expand a few times (the trixie
/// base layer about 3.5×); only long runs of one byte reach 100×.
pub const LAYER_MAX_EXPANSION: u64 = 100;
/// The smallest cap, so that a small layer holding a large sparse or zeroed
/// file still unpacks.
pub const LAYER_MIN_CAP: u64 = 1 << 30;

/// The most bytes a layer blob of `stored` bytes may decompress to.
pub fn layer_cap(stored: u64) -> u64 {
    stored
        .saturating_mul(LAYER_MAX_EXPANSION)
        .max(LAYER_MIN_CAP)
}

/// Where an image is read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageSource {
    OciDir(PathBuf),
    /// A tar holding an OCI layout, as `skopeo copy … oci-archive:` writes.
    OciArchive(PathBuf),
    DockerArchive(PathBuf),
}

/// The transports an image file or directory is named with.
pub const TRANSPORTS: [&str; 3] = ["oci:", "oci-archive:", "docker-archive:"];

impl ImageSource {
    /// Parse `oci:DIR`, `oci-archive:FILE` or `docker-archive:FILE`.
    pub fn parse(s: &str) -> Result<Self, ImageError> {
        if let Some(p) = s.strip_prefix("oci:") {
            Ok(ImageSource::OciDir(PathBuf::from(p)))
        } else if let Some(p) = s.strip_prefix("oci-archive:") {
            Ok(ImageSource::OciArchive(PathBuf::from(p)))
        } else if let Some(p) = s.strip_prefix("docker-archive:") {
            Ok(ImageSource::DockerArchive(PathBuf::from(p)))
        } else {
            Err(ImageError::Invalid {
                location: s.to_string(),
                reason: "expected oci:DIR, oci-archive:FILE or docker-archive:FILE".into(),
            })
        }
    }

    /// Like [`parse`](Self::parse), also taking skopeo's `oci:DIR:REF`,
    /// `oci-archive:FILE:REF` and `docker-archive:FILE:NAME[:TAG]`: the
    /// part after the path selects the image. A path that exists as written
    /// wins, so a directory whose name holds a colon still opens.
    pub fn parse_named(s: &str) -> Result<(Self, Option<String>), ImageError> {
        let whole = Self::parse(s)?;
        if whole.path().exists() {
            return Ok((whole, None));
        }
        let prefix_len = TRANSPORTS
            .iter()
            .find(|t| s.starts_with(*t))
            .map_or(0, |t| t.len());
        let rest = &s[prefix_len..];
        // A docker-archive name is NAME:TAG, so its path ends at the first
        // colon that leaves an existing file; OCI references hold no colon.
        let split = if s.starts_with("docker-archive:") {
            rest.match_indices(':')
                .map(|(i, _)| i)
                .find(|&i| Path::new(&rest[..i]).is_file())
        } else {
            rest.rfind(':')
        };
        match split {
            Some(i) if i > 0 && i + 1 < rest.len() && Path::new(&rest[..i]).exists() => {
                let source = Self::parse(&s[..prefix_len + i])?;
                Ok((source, Some(rest[i + 1..].to_owned())))
            }
            _ => Ok((whole, None)),
        }
    }

    /// The directory or file the image is read from.
    pub fn path(&self) -> &Path {
        match self {
            ImageSource::OciDir(p) | ImageSource::OciArchive(p) | ImageSource::DockerArchive(p) => {
                p
            }
        }
    }

    /// How the user names it: `oci:DIR`, `oci-archive:FILE`, `docker-archive:FILE`.
    pub fn location(&self) -> String {
        match self {
            ImageSource::OciDir(p) => format!("oci:{}", p.display()),
            ImageSource::OciArchive(p) => format!("oci-archive:{}", p.display()),
            ImageSource::DockerArchive(p) => format!("docker-archive:{}", p.display()),
        }
    }
}

/// A layer as referenced by an opened image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerRef {
    /// Path of the blob inside the layout or archive.
    pub member: String,
    /// Digest the blob must have, when the image states one (always for OCI;
    /// for legacy docker archives the blob is only checked via its diff_id).
    pub digest: Option<Sha256Digest>,
    pub size: u64,
    pub media_type: Option<String>,
    /// Expected digest of the uncompressed tar, from the config.
    pub diff_id: Sha256Digest,
}

enum Store {
    Dir(PathBuf),
    Archive {
        path: PathBuf,
        /// member name → (data offset, size)
        members: BTreeMap<String, (u64, u64)>,
    },
}

/// An image opened for inspection, fsck or unpacking.
pub struct OpenedImage {
    pub source: ImageSource,
    /// Reference name from index.json / manifest.json, if any.
    pub reference: Option<String>,
    pub manifest_digest: Option<Sha256Digest>,
    pub manifest: Option<Manifest>,
    pub config: ImageConfig,
    pub config_digest: Sha256Digest,
    pub config_size: u64,
    /// Path of the config blob inside the layout or archive.
    pub config_member: String,
    pub layers: Vec<LayerRef>,
    /// Artifact manifests (SBOMs, signatures) whose `subject` is this
    /// image, as the layout records them; empty for docker archives.
    pub referrers: Vec<Descriptor>,
    /// The image index this image was chosen from, when the name named a
    /// multi-platform image.
    pub index: Option<IndexSummary>,
    store: Store,
}

/// A multi-platform image: its index's digest and the platforms it holds.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct IndexSummary {
    pub digest: String,
    /// `os/arch[/variant]` of each manifest, in the index's order.
    pub platforms: Vec<String>,
}

impl OpenedImage {
    /// Open an image; with several images in one index/archive, `name`
    /// selects by `org.opencontainers.image.ref.name`, containerd name or RepoTag.
    pub fn open(source: &ImageSource, name: Option<&str>) -> Result<Self, ImageError> {
        match source {
            ImageSource::OciDir(dir) => {
                open_oci_layout(source, Store::Dir(dir.clone()), name, None)
            }
            ImageSource::OciArchive(file) => {
                let store = Store::Archive {
                    path: file.clone(),
                    members: scan_archive(source, file)?,
                };
                open_oci_layout(source, store, name, None)
            }
            ImageSource::DockerArchive(file) => open_docker_archive(source, file, name),
        }
    }

    /// [`OpenedImage::open`] of an OCI layout or archive holding an image
    /// index, taking `platform`'s image from it instead of the host's.
    pub fn open_platform(
        source: &ImageSource,
        name: Option<&str>,
        platform: &oci::Platform,
    ) -> Result<Self, ImageError> {
        match source {
            ImageSource::OciDir(dir) => {
                open_oci_layout(source, Store::Dir(dir.clone()), name, Some(platform))
            }
            ImageSource::OciArchive(file) => {
                let store = Store::Archive {
                    path: file.clone(),
                    members: scan_archive(source, file)?,
                };
                open_oci_layout(source, store, name, Some(platform))
            }
            ImageSource::DockerArchive(_) => Err(ImageError::Invalid {
                location: source.location(),
                reason: "a docker archive holds one platform's image".into(),
            }),
        }
    }

    /// A small blob (a manifest, an SBOM document) by digest, checked
    /// against it.
    pub fn read_blob(&self, digest: &Sha256Digest) -> Result<Vec<u8>, ImageError> {
        read_limited(
            &self.store,
            &self.source,
            &blob_member(&digest.to_string()),
            Some((*digest, None)),
        )
    }

    fn invalid(&self, reason: impl Into<String>) -> ImageError {
        ImageError::Invalid {
            location: self.source.location(),
            reason: reason.into(),
        }
    }

    /// Raw (possibly compressed) bytes of a member.
    pub fn open_member(&self, member: &str) -> Result<Box<dyn Read + '_>, ImageError> {
        self.store.open(member, &self.source)
    }

    /// Decompressed tar stream of layer `i`.
    pub fn open_layer(&self, i: usize) -> Result<Box<dyn Read + '_>, ImageError> {
        let layer = self
            .layers
            .get(i)
            .ok_or_else(|| self.invalid(format!("no layer {i}")))?;
        let raw = self.open_member(&layer.member)?;
        self.decode_layer(layer, raw)
    }

    /// The decompressed tar of `layer` read from `raw`, capped at
    /// [`layer_cap`] of the blob's stored size (not the descriptor's, which
    /// the image itself states).
    fn decode_layer<'a>(
        &self,
        layer: &LayerRef,
        raw: impl Read + 'a,
    ) -> Result<Box<dyn Read + 'a>, ImageError> {
        let stored = self.store.size(&layer.member).unwrap_or(layer.size);
        let decoded = auto_decoder(BufReader::with_capacity(256 * 1024, raw))
            .map_err(ImageError::io(format!("reading layer {}", layer.member)))?;
        let what = format!(
            "layer {} (a layer may unpack to {LAYER_MAX_EXPANSION} times its {stored} stored bytes, or to 1 GiB)",
            layer.member
        );
        Ok(Box::new(Capped::named(decoded, layer_cap(stored), what)))
    }
}

impl Store {
    fn open(&self, member: &str, source: &ImageSource) -> Result<Box<dyn Read + '_>, ImageError> {
        let bad = |reason: &str| ImageError::Invalid {
            location: source.location(),
            reason: format!("member {member}: {reason}"),
        };
        match self {
            Store::Dir(root) => {
                let rel = safe_relative(member).ok_or_else(|| bad("path escapes the layout"))?;
                let p = root.join(rel);
                // A blob that is a symlink could point anywhere on the host.
                let f = File::options()
                    .read(true)
                    .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
                    .open(&p)
                    .map_err(ImageError::io(format!("opening {}", p.display())))?;
                Ok(Box::new(f))
            }
            Store::Archive { path, members } => {
                let key = normalize_member(member);
                let &(offset, size) = members.get(&key).ok_or_else(|| bad("not in the archive"))?;
                let mut f = File::open(path)
                    .map_err(ImageError::io(format!("opening {}", path.display())))?;
                f.seek(SeekFrom::Start(offset))
                    .map_err(ImageError::io(format!("seeking in {}", path.display())))?;
                Ok(Box::new(f.take(size)))
            }
        }
    }

    fn size(&self, member: &str) -> Option<u64> {
        match self {
            Store::Dir(root) => {
                let rel = safe_relative(member)?;
                fs::metadata(root.join(rel)).ok().map(|m| m.len())
            }
            Store::Archive { members, .. } => {
                members.get(&normalize_member(member)).map(|&(_, s)| s)
            }
        }
    }
}

/// Relative path with no `..`, root or empty components.
fn safe_relative(member: &str) -> Option<PathBuf> {
    let p = Path::new(member);
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir => {}
            _ => return None,
        }
    }
    (!out.as_os_str().is_empty()).then_some(out)
}

fn normalize_member(member: &str) -> String {
    let trimmed = member.trim_start_matches("./");
    trimmed.trim_end_matches('/').to_string()
}

fn blob_member(digest: &str) -> String {
    format!(
        "blobs/sha256/{}",
        digest.strip_prefix("sha256:").unwrap_or(digest)
    )
}

/// `blobs/sha256/<hex>` → the digest its name promises.
fn digest_from_member(member: &str) -> Option<Sha256Digest> {
    let m = normalize_member(member);
    let hex = m.strip_prefix("blobs/sha256/")?;
    Sha256Digest::parse(&format!("sha256:{hex}")).ok()
}

fn read_limited(
    store: &Store,
    source: &ImageSource,
    member: &str,
    expected: Option<(Sha256Digest, Option<u64>)>,
) -> Result<Vec<u8>, ImageError> {
    let mut buf = Vec::new();
    store
        .open(member, source)?
        .take(MAX_JSON_BLOB + 1)
        .read_to_end(&mut buf)
        .map_err(ImageError::io(format!("reading {member}")))?;
    if buf.len() as u64 > MAX_JSON_BLOB {
        return Err(ImageError::Invalid {
            location: source.location(),
            reason: format!("{member} is larger than {MAX_JSON_BLOB} bytes"),
        });
    }
    if let Some((digest, size)) = expected {
        let actual = Sha256Digest::of(&buf);
        if actual != digest {
            return Err(ImageError::DigestMismatch {
                digest: digest.to_string(),
                actual: actual.to_string(),
            });
        }
        if let Some(size) = size.filter(|&s| s != buf.len() as u64) {
            return Err(ImageError::Blob {
                digest: digest.to_string(),
                reason: format!("descriptor says {size} bytes, blob has {}", buf.len()),
            });
        }
    }
    Ok(buf)
}

fn parse_json<T: serde::de::DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T, ImageError> {
    serde_json::from_slice(bytes).map_err(|source| ImageError::Json {
        what: what.to_string(),
        source,
    })
}

/// The blob `desc` names; `what` says who names it, for the error when the
/// blob is not there (a dangling reference).
fn read_descriptor_blob(
    store: &Store,
    source: &ImageSource,
    desc: &Descriptor,
    what: &str,
) -> Result<Vec<u8>, ImageError> {
    let digest = Sha256Digest::parse(&desc.digest)?;
    let member = blob_member(&desc.digest);
    if store.size(&member).is_none() {
        return Err(ImageError::Invalid {
            location: source.location(),
            reason: format!("{what} names {digest}, but {member} is missing"),
        });
    }
    read_limited(store, source, &member, Some((digest, Some(desc.size))))
}

fn ref_names(desc: &Descriptor) -> Vec<&str> {
    [oci::ANNOTATION_REF_NAME, oci::ANNOTATION_CONTAINERD_NAME]
        .iter()
        .filter_map(|k| desc.annotations.get(*k).map(String::as_str))
        .collect()
}

fn host_platform() -> (&'static str, &'static str) {
    (oci::oci_arch(std::env::consts::ARCH).0, "linux")
}

/// Whether an index entry is for `wanted` (a variant only counts when both
/// name one), or, without `wanted`, for the host.
fn is_for(desc: &Descriptor, wanted: Option<&oci::Platform>) -> bool {
    let Some(p) = &desc.platform else {
        return false;
    };
    match wanted {
        Some(w) => {
            p.architecture == w.architecture
                && p.os == w.os
                && (p.variant.is_none() || w.variant.is_none() || p.variant == w.variant)
        }
        None => {
            let (arch, os) = host_platform();
            p.architecture == arch && p.os == os
        }
    }
}

/// An image found in a layout: its index.json entry (which names an image
/// index for a multi-platform image), its manifest's descriptor and the
/// manifest, and the image index it was chosen from.
struct Selected {
    entry: Descriptor,
    desc: Descriptor,
    manifest: Manifest,
    index: Option<IndexSummary>,
}

/// Follow index → (nested index by platform) → manifest.
fn select_manifest(
    store: &Store,
    source: &ImageSource,
    index: &Index,
    name: Option<&str>,
    index_name: &str,
    platform: Option<&oci::Platform>,
) -> Result<Selected, ImageError> {
    let invalid = |reason: String| ImageError::Invalid {
        location: source.location(),
        reason,
    };
    // Artifacts (SBOMs, signatures) refer to images; they are not images.
    let images = index.manifests.iter().filter(|d| d.artifact_type.is_none());
    let candidates: Vec<&Descriptor> = match name {
        Some(n) => images
            .filter(|d| {
                ref_names(d)
                    .iter()
                    .any(|r| *r == n || r.ends_with(&format!(":{n}")))
            })
            .collect(),
        None => images.collect(),
    };
    if let (Some(n), [_, _, ..]) = (name, candidates.as_slice()) {
        // The same name on two entries: no reader can tell which is meant
        // (umoci calls it an ambiguous tag), so neither is taken.
        return Err(invalid(format!(
            "index.json names {} images {n:?}; a name must be unique",
            candidates.len()
        )));
    }
    let desc = match candidates.as_slice() {
        [one] => *one,
        [] => {
            return Err(invalid(format!(
                "no image named {:?} in index.json",
                name.unwrap_or("")
            )))
        }
        many => {
            let by_platform: Vec<_> = many.iter().filter(|d| is_for(d, platform)).collect();
            match by_platform.as_slice() {
                [one] => **one,
                _ => {
                    let names: Vec<String> = many
                        .iter()
                        .flat_map(|d| ref_names(d))
                        .map(String::from)
                        .collect();
                    return Err(invalid(format!(
                        "index.json holds {} images; choose one of: {}",
                        many.len(),
                        names.join(", ")
                    )));
                }
            }
        }
    };
    let bytes = read_descriptor_blob(store, source, desc, index_name)?;
    if desc.media_type == oci::MEDIA_TYPE_INDEX
        || desc.media_type == "application/vnd.docker.distribution.manifest.list.v2+json"
    {
        let nested: Index = parse_json(&bytes, &format!("index {}", desc.digest))?;
        let nested_name = format!("index {}", desc.digest);
        let platforms: Vec<String> = nested
            .manifests
            .iter()
            .filter_map(|d| d.platform.as_ref().map(ToString::to_string))
            .collect();
        // A platform asked for must be there: another platform's image
        // would hold the wrong binaries. Without one, an index of a single
        // image is taken as it is (as a single image would be).
        let missing = !platforms.is_empty()
            && (platform.is_some() || nested.manifests.len() > 1)
            && !nested.manifests.iter().any(|d| is_for(d, platform));
        if missing {
            let wanted = match platform {
                Some(p) => p.to_string(),
                None => {
                    let (arch, os) = host_platform();
                    format!("{os}/{arch} (this machine)")
                }
            };
            return Err(invalid(format!(
                "the image index {} has no image for {wanted}; it has: {}",
                desc.digest,
                platforms.join(", ")
            )));
        }
        let inner = select_manifest(store, source, &nested, None, &nested_name, platform)?;
        return Ok(Selected {
            entry: desc.clone(),
            desc: inner.desc,
            manifest: inner.manifest,
            index: Some(IndexSummary {
                digest: desc.digest.clone(),
                platforms,
            }),
        });
    }
    let manifest: Manifest = parse_json(&bytes, &format!("manifest {}", desc.digest))?;
    Ok(Selected {
        entry: desc.clone(),
        desc: desc.clone(),
        manifest,
        index: None,
    })
}

fn layers_from_manifest(
    manifest: &Manifest,
    config: &ImageConfig,
    source: &ImageSource,
) -> Result<Vec<LayerRef>, ImageError> {
    let diff_ids = parse_diff_ids(config, source, manifest.layers.len())?;
    manifest
        .layers
        .iter()
        .zip(diff_ids)
        .map(|(d, diff_id)| {
            Ok(LayerRef {
                member: blob_member(&d.digest),
                digest: Some(Sha256Digest::parse(&d.digest)?),
                size: d.size,
                media_type: Some(d.media_type.clone()),
                diff_id,
            })
        })
        .collect()
}

fn parse_diff_ids(
    config: &ImageConfig,
    source: &ImageSource,
    layers: usize,
) -> Result<Vec<Sha256Digest>, ImageError> {
    if config.rootfs.diff_ids.len() != layers {
        return Err(ImageError::Invalid {
            location: source.location(),
            reason: format!(
                "config lists {} diff_ids but the image has {layers} layers",
                config.rootfs.diff_ids.len()
            ),
        });
    }
    config
        .rootfs
        .diff_ids
        .iter()
        .map(|d| Ok(Sha256Digest::parse(d)?))
        .collect()
}

fn open_oci_layout(
    source: &ImageSource,
    store: Store,
    name: Option<&str>,
    platform: Option<&oci::Platform>,
) -> Result<OpenedImage, ImageError> {
    let layout: serde_json::Value = parse_json(
        &read_limited(&store, source, "oci-layout", None)?,
        "oci-layout",
    )?;
    if layout
        .get("imageLayoutVersion")
        .and_then(|v| v.as_str())
        .is_none()
    {
        return Err(ImageError::Invalid {
            location: source.location(),
            reason: "oci-layout has no imageLayoutVersion".into(),
        });
    }
    let index: Index = parse_json(
        &read_limited(&store, source, "index.json", None)?,
        "index.json",
    )?;
    let Selected {
        entry,
        desc,
        manifest,
        index: from_index,
    } = select_manifest(&store, source, &index, name, "index.json", platform)?;
    let config_bytes = read_descriptor_blob(
        &store,
        source,
        &manifest.config,
        &format!("manifest {}", desc.digest),
    )?;
    let config: ImageConfig =
        parse_json(&config_bytes, &format!("config {}", manifest.config.digest))?;
    let layers = layers_from_manifest(&manifest, &config, source)?;
    let referrers = find_referrers(&store, source, &index, &entry, &desc)?;
    Ok(OpenedImage {
        source: source.clone(),
        referrers,
        index: from_index,
        reference: ref_names(&entry).first().map(|s| s.to_string()),
        manifest_digest: Some(Sha256Digest::parse(&desc.digest)?),
        config_digest: Sha256Digest::parse(&manifest.config.digest)?,
        config_size: manifest.config.size,
        config_member: blob_member(&manifest.config.digest),
        manifest: Some(manifest),
        config,
        layers,
        store,
    })
}

/// Where each file of the tar `path` is. A member stored twice is refused:
/// which copy a reader takes differs between tools (tar keeps the last,
/// some readers the first), so the archive means two different images.
fn scan_archive(
    source: &ImageSource,
    path: &Path,
) -> Result<BTreeMap<String, (u64, u64)>, ImageError> {
    let file = File::open(path).map_err(ImageError::io(format!("opening {}", path.display())))?;
    let mut reader = LayerReader::new(BufReader::with_capacity(64 * 1024, file));
    let mut members = BTreeMap::new();
    while let Some(h) = reader.next_entry()? {
        if h.kind == LayerEntryKind::File {
            let name = normalize_member(&h.path.to_string_lossy());
            if members
                .insert(name.clone(), (reader.offset(), h.size))
                .is_some()
            {
                return Err(ImageError::Invalid {
                    location: source.location(),
                    reason: format!("the archive holds {name} twice"),
                });
            }
        }
    }
    Ok(members)
}

/// Annotation on an image's index.json entry: the digest of an image index
/// (held as a blob) listing the artifacts that refer to the image, in the
/// shape a registry's referrers API answers. rootstrap keeps artifacts out
/// of index.json itself because skopeo, podman and umoci take every entry
/// there as an image (skopeo: "more than one image").
pub const ANNOTATION_REFERRERS: &str = "org.rootstrap.referrers";

/// The artifacts whose subject is the image `image`: those of the
/// referrers index of its index.json entry `entry`, and (layouts written by
/// oras or older rootstrap) index.json entries that carry an `artifactType`
/// and whose manifest names the image. A multi-platform image's entry names
/// the image index, whose referrers index lists the artifacts of every
/// platform's manifest: only those whose `subject` is `image` are its own.
/// Artifacts whose blobs are gone are left out rather than failing the
/// image: a tool that collects garbage from index.json (`umoci gc`) removes
/// them and leaves the annotation.
fn find_referrers(
    store: &Store,
    source: &ImageSource,
    index: &Index,
    entry: &Descriptor,
    image: &Descriptor,
) -> Result<Vec<Descriptor>, ImageError> {
    let present = |digest: &str| store.size(&blob_member(digest)).is_some();
    let subject_of = |artifact: &Descriptor, named_by: &str| -> Result<String, ImageError> {
        let bytes = read_descriptor_blob(store, source, artifact, named_by)?;
        let manifest: serde_json::Value =
            parse_json(&bytes, &format!("manifest {}", artifact.digest))?;
        Ok(manifest["subject"]["digest"]
            .as_str()
            .unwrap_or_default()
            .to_owned())
    };
    let mut found: Vec<Descriptor> = Vec::new();
    if let Some(digest) = entry.annotations.get(ANNOTATION_REFERRERS) {
        let digest = Sha256Digest::parse(digest)?;
        if present(&digest.to_string()) {
            let bytes = read_limited(
                store,
                source,
                &blob_member(&digest.to_string()),
                Some((digest, None)),
            )?;
            let referrers: Index = parse_json(&bytes, &format!("referrers index {digest}"))?;
            let named_by = format!("referrers index {digest}");
            for artifact in referrers.manifests {
                if !present(&artifact.digest) {
                    continue;
                }
                if entry.digest == image.digest || subject_of(&artifact, &named_by)? == image.digest
                {
                    found.push(artifact);
                }
            }
        }
    }
    for artifact in index.manifests.iter().filter(|d| d.artifact_type.is_some()) {
        if found.iter().any(|f| f.digest == artifact.digest) || !present(&artifact.digest) {
            continue;
        }
        if subject_of(artifact, "index.json")? == image.digest {
            found.push(artifact.clone());
        }
    }
    Ok(found)
}

fn open_docker_archive(
    source: &ImageSource,
    file: &Path,
    name: Option<&str>,
) -> Result<OpenedImage, ImageError> {
    let members = scan_archive(source, file)?;
    let store = Store::Archive {
        path: file.to_path_buf(),
        members,
    };
    let invalid = |reason: String| ImageError::Invalid {
        location: source.location(),
        reason,
    };
    let entries: Vec<DockerManifestEntry> = parse_json(
        &read_limited(&store, source, "manifest.json", None)?,
        "manifest.json",
    )?;
    let entry = match name {
        Some(n) => entries
            .iter()
            .find(|e| {
                e.repo_tags
                    .iter()
                    .any(|t| t == n || t.ends_with(&format!("/{n}")))
            })
            .ok_or_else(|| invalid(format!("no image tagged {n:?} in manifest.json")))?,
        None => match entries.as_slice() {
            [one] => one,
            [] => return Err(invalid("manifest.json lists no images".into())),
            many => {
                let tags: Vec<&str> = many
                    .iter()
                    .flat_map(|e| e.repo_tags.iter().map(String::as_str))
                    .collect();
                return Err(invalid(format!(
                    "manifest.json lists {} images; choose one of: {}",
                    many.len(),
                    tags.join(", ")
                )));
            }
        },
    };
    let config_expected = digest_from_member(&entry.config).map(|d| (d, None));
    let config_bytes = read_limited(&store, source, &entry.config, config_expected)?;
    let config_digest = Sha256Digest::of(&config_bytes);
    let config: ImageConfig = parse_json(&config_bytes, &entry.config)?;
    let diff_ids = parse_diff_ids(&config, source, entry.layers.len())?;
    // index.json (Docker ≥ 25 and our own archives) gives the manifest digest
    // and media types; older archives have neither.
    let oci_manifest = if store.size("index.json").is_some() {
        let index: Index = parse_json(
            &read_limited(&store, source, "index.json", None)?,
            "index.json",
        )?;
        select_manifest(&store, source, &index, None, "index.json", None)
            .ok()
            .map(|s| (s.desc, s.manifest))
            .filter(|(_, m)| m.config.digest == config_digest.to_string())
    } else {
        None
    };
    let mut layers = Vec::with_capacity(entry.layers.len());
    for (i, (member, diff_id)) in entry.layers.iter().zip(diff_ids).enumerate() {
        let size = store
            .size(member)
            .ok_or_else(|| invalid(format!("layer {member} is not in the archive")))?;
        let media_type = oci_manifest
            .as_ref()
            .and_then(|(_, m)| m.layers.get(i))
            .map(|d| d.media_type.clone());
        layers.push(LayerRef {
            member: normalize_member(member),
            digest: digest_from_member(member),
            size,
            media_type,
            diff_id,
        });
    }
    Ok(OpenedImage {
        source: source.clone(),
        reference: entry.repo_tags.first().cloned(),
        manifest_digest: oci_manifest
            .as_ref()
            .map(|(d, _)| Sha256Digest::parse(&d.digest))
            .transpose()?,
        manifest: oci_manifest.map(|(_, m)| m),
        referrers: Vec::new(),
        index: None,
        config,
        config_digest,
        config_size: config_bytes.len() as u64,
        config_member: normalize_member(&entry.config),
        layers,
        store,
    })
}

/// Totals from a successful [`fsck`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FsckReport {
    pub blobs_checked: usize,
    pub layers_checked: usize,
    /// Each layer's uncompressed tar size, measured while checking its diff_id.
    pub unpacked_sizes: Vec<u64>,
}

/// Re-hash every blob (content-addressed files must match their names) and
/// every layer's uncompressed stream against its diff_id.
pub fn fsck(image: &OpenedImage) -> Result<FsckReport, ImageError> {
    let mut blobs_checked = 0;
    let mut unpacked_sizes = Vec::with_capacity(image.layers.len());
    for member in all_blob_members(image)? {
        if let Some(expected) = digest_from_member(&member) {
            let (actual, _) = hash_stream(image.open_member(&member)?, &member)?;
            if actual != expected {
                return Err(ImageError::DigestMismatch {
                    digest: expected.to_string(),
                    actual: actual.to_string(),
                });
            }
            blobs_checked += 1;
        }
    }
    for (i, layer) in image.layers.iter().enumerate() {
        let (raw_digest, raw_size) = hash_stream(image.open_member(&layer.member)?, &layer.member)?;
        if let Some(expected) = layer.digest {
            if raw_digest != expected {
                return Err(ImageError::DigestMismatch {
                    digest: expected.to_string(),
                    actual: raw_digest.to_string(),
                });
            }
        }
        if raw_size != layer.size {
            return Err(ImageError::Blob {
                digest: raw_digest.to_string(),
                reason: format!("descriptor says {} bytes, blob has {raw_size}", layer.size),
            });
        }
        let (diff, unpacked) = hash_stream(image.open_layer(i)?, &layer.member)?;
        unpacked_sizes.push(unpacked);
        if diff != layer.diff_id {
            return Err(ImageError::DigestMismatch {
                digest: layer.diff_id.to_string(),
                actual: diff.to_string(),
            });
        }
    }
    Ok(FsckReport {
        blobs_checked,
        layers_checked: image.layers.len(),
        unpacked_sizes,
    })
}

fn all_blob_members(image: &OpenedImage) -> Result<Vec<String>, ImageError> {
    match &image.store {
        Store::Dir(root) => {
            let dir = root.join("blobs/sha256");
            let mut out = Vec::new();
            for e in
                fs::read_dir(&dir).map_err(ImageError::io(format!("listing {}", dir.display())))?
            {
                let e = e.map_err(ImageError::io(format!("listing {}", dir.display())))?;
                out.push(format!("blobs/sha256/{}", e.file_name().to_string_lossy()));
            }
            out.sort();
            Ok(out)
        }
        Store::Archive { members, .. } => Ok(members
            .keys()
            .filter(|m| m.starts_with("blobs/sha256/"))
            .cloned()
            .collect()),
    }
}

fn hash_stream(mut r: impl Read, what: &str) -> Result<(Sha256Digest, u64), ImageError> {
    let mut h = HashingWriter::new(io::sink());
    io::copy(&mut r, &mut h).map_err(ImageError::io(format!("reading {what}")))?;
    let (_, d, n) = h.finish();
    Ok((d, n))
}

/// Receives a layer stack being applied. Paths are relative to the root and
/// already checked to contain no `..` or absolute components; the sink must
/// still write through a safe rootfs API (symlinks inside the tree).
pub trait UnpackSink {
    type Error: std::error::Error + Send + Sync + 'static;
    /// Create or replace the entry at `header.path` (regular file data in `data`).
    fn entry(&mut self, header: &TarHeader, data: &mut dyn Read) -> Result<(), Self::Error>;
    /// Whiteout: delete `path` and everything under it, if present.
    fn remove(&mut self, path: &Path) -> Result<(), Self::Error>;
    /// Opaque whiteout: delete the contents of `dir` except paths for which
    /// `keep` is true (entries the same layer has already written).
    fn clear_dir(&mut self, dir: &Path, keep: &dyn Fn(&Path) -> bool) -> Result<(), Self::Error>;
}

pub(crate) fn check_entry_path(path: &Path, what: &str) -> Result<(), ImageError> {
    // Checked on the raw bytes: `Path::components` silently drops `.`.
    let raw = path.as_os_str().as_encoded_bytes();
    let ok = !raw.is_empty()
        && !raw.starts_with(b"/")
        && raw
            .split(|&b| b == b'/')
            .all(|c| !c.is_empty() && c != b"." && c != b"..");
    if ok {
        Ok(())
    } else {
        Err(ImageError::TarEntry {
            path: path.display().to_string(),
            reason: format!("{what} must be a relative path without `.` or `..`"),
        })
    }
}

/// Apply every layer in order, honouring `.wh.NAME` and `.wh..wh..opq`, and
/// verify each layer's blob digest and diff_id as it streams by. A corrupt
/// layer is only detected at its end, after its entries reached the sink:
/// unpack into a fresh directory and discard it on error.
pub fn unpack_layers<S: UnpackSink>(image: &OpenedImage, sink: &mut S) -> Result<(), ImageError> {
    for layer in &image.layers {
        let raw_hash = Rc::new(RefCell::new(HashingWriter::new(io::sink())));
        let raw = HashingReader {
            inner: image.open_member(&layer.member)?,
            hasher: Rc::clone(&raw_hash),
        };
        let decoded = image.decode_layer(layer, raw)?;
        let diff_hash = Rc::new(RefCell::new(HashingWriter::new(io::sink())));
        let mut rest = apply_layer(
            HashingReader {
                inner: decoded,
                hasher: Rc::clone(&diff_hash),
            },
            sink,
        )?;
        // Drain padding and compression trailers so both digests cover everything.
        io::copy(&mut rest, &mut io::sink())
            .map_err(ImageError::io(format!("reading layer {}", layer.member)))?;
        let check = |expected: Sha256Digest, hash: &Rc<RefCell<HashingWriter<io::Sink>>>| {
            let actual = hash.replace(HashingWriter::new(io::sink())).finish().1;
            if actual == expected {
                Ok(())
            } else {
                Err(ImageError::DigestMismatch {
                    digest: expected.to_string(),
                    actual: actual.to_string(),
                })
            }
        };
        if let Some(digest) = layer.digest {
            check(digest, &raw_hash)?;
        }
        check(layer.diff_id, &diff_hash)?;
    }
    Ok(())
}

/// Applies one layer's uncompressed tar stream to `sink`, whiteouts
/// included, and returns the stream positioned after the end-of-archive
/// marker. [`unpack_layers`] adds the digest checks around it.
pub fn apply_layer<R: Read, S: UnpackSink>(tar: R, sink: &mut S) -> Result<R, ImageError> {
    let mut tar = LayerReader::new(tar);
    let mut written: HashSet<PathBuf> = HashSet::new();
    while let Some(header) = tar.next_entry()? {
        apply_entry(&mut tar, &header, sink, &mut written)?;
    }
    Ok(tar.into_inner())
}

fn apply_entry<R: Read, S: UnpackSink>(
    tar: &mut LayerReader<R>,
    header: &TarHeader,
    sink: &mut S,
    written: &mut HashSet<PathBuf>,
) -> Result<(), ImageError> {
    if header.path == Path::new(".") {
        // `tar -C rootfs .` layers carry the root itself; only a directory
        // is acceptable there (a symlink would replace the root, HOSTILE 9).
        if header.kind == LayerEntryKind::Dir {
            return Ok(());
        }
        return Err(ImageError::TarEntry {
            path: ".".into(),
            reason: "the root of a layer must be a directory".into(),
        });
    }
    check_entry_path(&header.path, "entry path")?;
    if let LayerEntryKind::HardLink(target) = &header.kind {
        check_entry_path(target, "hard link target")?;
    }
    let sink_err = |path: &Path| {
        let path = path.display().to_string();
        move |e: S::Error| ImageError::Sink {
            path,
            source: Box::new(e),
        }
    };
    let parent = header.path.parent().unwrap_or(Path::new("")).to_path_buf();
    let file_name = header
        .path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if file_name == OPAQUE_WHITEOUT {
        let keep = |p: &Path| written.contains(p);
        return sink
            .clear_dir(&parent, &keep)
            .map_err(sink_err(&header.path));
    }
    if let Some(hidden) = file_name.strip_prefix(WHITEOUT_PREFIX) {
        if hidden.is_empty() {
            // `.wh.` alone would name the parent directory itself.
            return Err(ImageError::TarEntry {
                path: header.path.display().to_string(),
                reason: "whiteout without a target name".into(),
            });
        }
        let target = parent.join(hidden);
        check_entry_path(&target, "whiteout target")?;
        return sink.remove(&target).map_err(sink_err(&header.path));
    }
    sink.entry(header, &mut tar.data())
        .map_err(sink_err(&header.path))?;
    written.insert(header.path.clone());
    Ok(())
}

/// Hashes what is read through it into a shared hasher, so the digest can
/// be taken after the reader has been moved into a decoder.
struct HashingReader<R> {
    inner: R,
    hasher: Rc<RefCell<HashingWriter<io::Sink>>>,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        io::Write::write_all(&mut *self.hasher.borrow_mut(), &buf[..n])?;
        Ok(n)
    }
}

/// A map-backed sink for tests and for tools that only look at contents.
/// Hard-link entries keep their header and carry a copy of the target's data.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct MemorySink {
    pub entries: BTreeMap<PathBuf, (TarHeader, Vec<u8>)>,
}

impl UnpackSink for MemorySink {
    type Error = io::Error;

    fn entry(&mut self, header: &TarHeader, data: &mut dyn Read) -> Result<(), io::Error> {
        let mut buf = Vec::new();
        data.read_to_end(&mut buf)?;
        if let LayerEntryKind::HardLink(target) = &header.kind {
            // A hard link shares the target's inode as it is now; replacing
            // the target later must not change it, so snapshot the data.
            let (_, target_data) = self.entries.get(target).ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("hard link target {} missing", target.display()),
                )
            })?;
            buf = target_data.clone();
        }
        if header.kind != LayerEntryKind::Dir {
            // A non-directory replaces whatever subtree was there.
            self.remove(&header.path)?;
        }
        self.entries
            .insert(header.path.clone(), (header.clone(), buf));
        Ok(())
    }

    fn remove(&mut self, path: &Path) -> Result<(), io::Error> {
        self.entries.retain(|p, _| !p.starts_with(path));
        Ok(())
    }

    fn clear_dir(&mut self, dir: &Path, keep: &dyn Fn(&Path) -> bool) -> Result<(), io::Error> {
        self.entries
            .retain(|p, _| p == dir || !p.starts_with(dir) || keep(p));
        Ok(())
    }
}
