//! Pushing an image to a registry over the OCI distribution API.
//!
//! The image is pushed exactly as it is stored: blobs and the manifest keep
//! their bytes, so the registry's digest is the digest the build printed.
//! Blobs the registry already has are skipped (HEAD first), uploads are
//! monolithic (POST then one PUT), and authentication follows the registry's
//! challenge: anonymous first, then Basic, or a Bearer token from the realm
//! it names (Docker Hub, GHCR, Harbor, distribution's token auth).
//!
//! Written here rather than taken from a crate: the Rust registry clients
//! (oci-client, oci-distribution) are async and pull in tokio + reqwest, while
//! the rest of rootstrap is synchronous on ureq; the protocol subset a push
//! needs is five requests.

use std::io::Read;

use base64::Engine as _;

use super::read::OpenedImage;
use super::reference::ImageReference;
use super::Sha256Digest;
use crate::report::Reporter;

/// Manifests larger than this are refused (also the cap on error bodies read).
const MAX_MANIFEST: u64 = 4 << 20;

/// How long one registry request may take, besides its body's allowance.
const DEFAULT_REQUEST_TIME: std::time::Duration = std::time::Duration::from_secs(300);

/// A blob transfer may take one more second per this many bytes, so a server
/// that trickles bytes (slow loris) cannot hold a pull or push forever while
/// a big layer on a slow link still has its time.
const MIN_BYTES_PER_SECOND: u64 = 16 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("{reference}: name a registry host to push to, e.g. localhost:5000/{reference}")]
    NoRegistry { reference: String },
    #[error("{image}: a layer of its manifest has no digest")]
    NoManifest { image: String },
    #[error("{method} {url}: HTTP {status}: {message}")]
    Status {
        method: &'static str,
        url: String,
        status: u16,
        message: String,
    },
    #[error("{method} {url}: {message}")]
    Transport {
        method: &'static str,
        url: String,
        message: String,
    },
    #[error("{url}: authentication required and {reason}")]
    Auth { url: String, reason: String },
    #[error("{url}: upload location {location:?} is not a usable URL")]
    BadLocation { url: String, location: String },
    #[error("registry stored the manifest as {actual}, expected {expected}")]
    DigestMismatch { expected: String, actual: String },
    #[error("registry stored blob {expected} as {actual}")]
    BlobDigestMismatch { expected: String, actual: String },
    #[error("{what} {expected}: the registry served content whose digest is {actual}")]
    ServedWrongContent {
        what: &'static str,
        expected: String,
        actual: String,
    },
    #[error("reading {what} from the image: {source}")]
    Image {
        what: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// User name and password (or token) for a registry.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credentials({}, <redacted>)", self.username)
    }
}

#[derive(Debug, Clone, Default)]
pub struct PushOptions {
    /// Use plain HTTP. Always on for localhost and 127.0.0.0/8, as Docker does.
    pub insecure: bool,
    /// Explicit credentials; else `~/.docker/config.json`'s `auths` entry.
    pub credentials: Option<Credentials>,
    /// The time a request may take before its body's size allowance
    /// ([`MIN_BYTES_PER_SECOND`]); `None` is 300 s.
    pub request_time: Option<std::time::Duration>,
}

/// What a push did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushReport {
    /// `HOST/REPO:TAG@sha256:…`
    pub pushed: String,
    pub manifest_digest: Sha256Digest,
    pub blobs_uploaded: usize,
    pub blobs_present: usize,
    /// Artifacts (SBOMs) pushed as referrers of the image.
    pub referrers: usize,
}

/// Pushes `image` as `reference`. The manifest is pushed last, so a failed
/// push never leaves a tag pointing at missing blobs.
pub fn push(
    image: &OpenedImage,
    reference: &ImageReference,
    opts: &PushOptions,
    reporter: &dyn Reporter,
) -> Result<PushReport, RegistryError> {
    let host = registry_host(reference)?;
    let (manifest_bytes, media_type, blobs) = match image.manifest_digest {
        Some(digest) => stored_manifest(image, digest)?,
        None => legacy_manifest(image)?,
    };
    let manifest_digest = Sha256Digest::of(&manifest_bytes);

    let mut session = Session::new(&host, &reference.repository, opts);
    let (uploaded, present) = push_blobs(&mut session, image, &blobs, reporter)?;

    put_tagged_manifest(
        &mut session,
        reference,
        &media_type,
        &manifest_bytes,
        manifest_digest,
    )?;
    let referrers = push_referrers(&mut session, image, manifest_digest, reporter)?;
    Ok(PushReport {
        pushed: pushed_name(&host, reference, manifest_digest),
        manifest_digest,
        blobs_uploaded: uploaded + referrers.blobs_uploaded,
        blobs_present: present + referrers.blobs_present,
        referrers: image.referrers.len(),
    })
}

/// The registry host `reference` names; a familiar name (no host) has none.
fn registry_host(reference: &ImageReference) -> Result<String, RegistryError> {
    reference
        .registry
        .clone()
        .ok_or_else(|| RegistryError::NoRegistry {
            reference: reference.familiar(),
        })
}

/// Puts a manifest (or index) under `reference`'s tag, last in a push, and
/// checks the digest the registry stored it under is the one sent.
fn put_tagged_manifest(
    session: &mut Session,
    reference: &ImageReference,
    media_type: &str,
    bytes: &[u8],
    digest: Sha256Digest,
) -> Result<(), RegistryError> {
    let (stored, _) = session.put_manifest(&reference.tag, media_type, bytes)?;
    match stored {
        Some(actual) if actual != digest.to_string() => Err(RegistryError::DigestMismatch {
            expected: digest.to_string(),
            actual,
        }),
        _ => Ok(()),
    }
}

/// `HOST/REPO:TAG@sha256:…`, as a push reports it.
fn pushed_name(host: &str, reference: &ImageReference, digest: Sha256Digest) -> String {
    format!("{host}/{}:{}@{digest}", reference.repository, reference.tag)
}

/// Uploads the blobs the registry lacks; returns (uploaded, present).
fn push_blobs(
    session: &mut Session,
    image: &OpenedImage,
    blobs: &BlobList,
    reporter: &dyn Reporter,
) -> Result<(usize, usize), RegistryError> {
    let (mut uploaded, mut present) = (0, 0);
    for (digest, size, member) in blobs {
        if session.has_blob(digest)? {
            reporter.info(&format!("{digest}: already in the registry"));
            present += 1;
            continue;
        }
        let id = reporter.download_start(&format!("push {}", &digest.to_hex()[..12]), Some(*size));
        let result = session.upload_blob(image, digest, *size, member);
        reporter.download_done(id);
        result?;
        uploaded += 1;
    }
    Ok((uploaded, present))
}

/// The image index an OCI layout names `tag` (or holds alone), if the
/// entry is one: its bytes, as stored, and parsed.
pub fn layout_index(
    dir: &std::path::Path,
    tag: Option<&str>,
) -> Result<Option<(Vec<u8>, super::oci::Index)>, RegistryError> {
    let image_err = |what: String| {
        move |e: std::io::Error| RegistryError::Image {
            what,
            source: Box::new(e),
        }
    };
    let top_path = dir.join("index.json");
    let top_bytes = std::fs::read(&top_path).map_err(image_err(top_path.display().to_string()))?;
    let top: super::oci::Index = parse_json(&top_bytes, "index.json")?;
    let images: Vec<&super::oci::Descriptor> = top
        .manifests
        .iter()
        .filter(|d| d.artifact_type.is_none())
        .collect();
    let entry = match (tag, images.as_slice()) {
        (_, [one]) => Some(*one),
        (Some(t), many) => many.iter().copied().find(|d| {
            d.annotations
                .get(super::oci::ANNOTATION_REF_NAME)
                .map(String::as_str)
                == Some(t)
        }),
        (None, _) => None,
    };
    let Some(entry) = entry.filter(|d| d.media_type == super::oci::MEDIA_TYPE_INDEX) else {
        return Ok(None);
    };
    let digest = parse_digest(&entry.digest)?;
    let path = dir.join("blobs/sha256").join(digest.to_hex());
    let bytes = std::fs::read(&path).map_err(image_err(path.display().to_string()))?;
    if Sha256Digest::of(&bytes) != digest {
        return Err(RegistryError::Image {
            what: path.display().to_string(),
            source: format!("blob does not hash to {digest}").into(),
        });
    }
    let index = parse_json(&bytes, "the image index")?;
    Ok(Some((bytes, index)))
}

/// Pushes the multi-platform image an OCI layout holds (the one named
/// `name` when it holds several) as `reference`: each platform's blobs and
/// manifest (by digest), then the image index under the tag, so the tag
/// never names a manifest the registry lacks; then each platform's
/// artifacts (SBOMs) as referrers of its manifest.
pub fn push_index(
    dir: &std::path::Path,
    name: Option<&str>,
    reference: &ImageReference,
    index_bytes: &[u8],
    index: &super::oci::Index,
    opts: &PushOptions,
    reporter: &dyn Reporter,
) -> Result<PushReport, RegistryError> {
    let host = registry_host(reference)?;
    let mut session = Session::new(&host, &reference.repository, opts);
    let source = super::ImageSource::OciDir(dir.to_owned());
    let (mut uploaded, mut present) = (0, 0);
    let mut platforms = Vec::new();
    for entry in &index.manifests {
        let platform = entry
            .platform
            .as_ref()
            .ok_or_else(|| RegistryError::Image {
                what: dir.display().to_string(),
                source: format!("index entry {} names no platform", entry.digest).into(),
            })?;
        let image = OpenedImage::open_platform(&source, name, platform).map_err(|e| {
            RegistryError::Image {
                what: dir.display().to_string(),
                source: Box::new(e),
            }
        })?;
        let digest = parse_digest(&entry.digest)?;
        if image.manifest_digest != Some(digest) {
            return Err(RegistryError::Image {
                what: dir.display().to_string(),
                source: format!(
                    "the image index names {digest} for {}/{}, which the layout does not hold",
                    platform.os, platform.architecture
                )
                .into(),
            });
        }
        let (manifest_bytes, media_type, blobs) = stored_manifest(&image, digest)?;
        let (u, p) = push_blobs(&mut session, &image, &blobs, reporter)?;
        uploaded += u;
        present += p;
        session.put_manifest(&digest.to_string(), &media_type, &manifest_bytes)?;
        platforms.push((image, digest));
    }
    let index_digest = Sha256Digest::of(index_bytes);
    put_tagged_manifest(
        &mut session,
        reference,
        super::oci::MEDIA_TYPE_INDEX,
        index_bytes,
        index_digest,
    )?;
    let mut referrers = 0;
    for (image, digest) in &platforms {
        let counts = push_referrers(&mut session, image, *digest, reporter)?;
        uploaded += counts.blobs_uploaded;
        present += counts.blobs_present;
        referrers += image.referrers.len();
    }
    Ok(PushReport {
        pushed: pushed_name(&host, reference, index_digest),
        manifest_digest: index_digest,
        blobs_uploaded: uploaded,
        blobs_present: present,
        referrers,
    })
}

/// The blobs to push: (digest, size, member in the image).
type BlobList = Vec<(Sha256Digest, u64, String)>;

/// The manifest an OCI layout or a Docker ≥ 25 archive holds, as stored.
fn stored_manifest(
    image: &OpenedImage,
    manifest_digest: Sha256Digest,
) -> Result<(Vec<u8>, String, BlobList), RegistryError> {
    let manifest_bytes = read_member(
        image,
        &blob_member(&manifest_digest),
        MAX_MANIFEST,
        "the manifest",
    )?;
    if Sha256Digest::of(&manifest_bytes) != manifest_digest {
        return Err(RegistryError::Image {
            what: "the manifest".into(),
            source: format!("blob does not hash to {manifest_digest}").into(),
        });
    }
    let media_type = image
        .manifest
        .as_ref()
        .and_then(|m| m.media_type.clone())
        .unwrap_or_else(|| super::oci::MEDIA_TYPE_MANIFEST.into());
    let mut blobs: BlobList = vec![(
        image.config_digest,
        image.config_size,
        image.config_member.clone(),
    )];
    for layer in &image.layers {
        let digest = layer.digest.ok_or_else(|| RegistryError::NoManifest {
            image: image.source.location(),
        })?;
        blobs.push((digest, layer.size, layer.member.clone()));
    }
    Ok((manifest_bytes, media_type, blobs))
}

/// An OCI manifest for a legacy `docker save` archive (Docker < 25,
/// buildah, skopeo), which holds none: the config and layer files as they
/// are, each hashed here, with the layer media type their first bytes show
/// (such archives hold uncompressed tars, which OCI allows as
/// `…layer.v1.tar`). The digest is therefore new, as `docker push` of a
/// loaded image also makes one.
fn legacy_manifest(image: &OpenedImage) -> Result<(Vec<u8>, String, BlobList), RegistryError> {
    use super::oci::{Descriptor, Manifest};
    let image_err = |what: String| {
        move |e: super::ImageError| RegistryError::Image {
            what,
            source: Box::new(e),
        }
    };
    let config = Descriptor::new(
        super::oci::MEDIA_TYPE_CONFIG,
        image.config_digest,
        image.config_size,
    );
    let mut blobs: BlobList = vec![(
        image.config_digest,
        image.config_size,
        image.config_member.clone(),
    )];
    let mut layers = Vec::new();
    for layer in &image.layers {
        let member = &layer.member;
        let read_err = |e: std::io::Error| RegistryError::Image {
            what: format!("layer {member}"),
            source: Box::new(e),
        };
        let mut reader = image
            .open_member(member)
            .map_err(image_err(format!("layer {member}")))?;
        let mut head = [0u8; 4];
        let mut filled = 0;
        while filled < head.len() {
            let n = reader.read(&mut head[filled..]).map_err(read_err)?;
            if n == 0 {
                break;
            }
            filled += n;
        }
        let mut hasher = super::HashingWriter::new(std::io::sink());
        std::io::Write::write_all(&mut hasher, &head[..filled])
            .and_then(|()| std::io::copy(&mut reader, &mut hasher).map(drop))
            .map_err(read_err)?;
        let (_, digest, size) = hasher.finish();
        let media_type = if head[..filled].starts_with(&[0x1f, 0x8b]) {
            super::oci::MEDIA_TYPE_LAYER_GZIP
        } else if head[..filled].starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            super::oci::MEDIA_TYPE_LAYER_ZSTD
        } else {
            super::oci::MEDIA_TYPE_LAYER_TAR
        };
        layers.push(Descriptor::new(media_type, digest, size));
        blobs.push((digest, size, member.clone()));
    }
    let manifest = Manifest {
        schema_version: 2,
        media_type: Some(super::oci::MEDIA_TYPE_MANIFEST.into()),
        config,
        layers,
        annotations: Default::default(),
    };
    let bytes =
        super::oci::canonical_json(&manifest).map_err(image_err("the manifest".to_owned()))?;
    Ok((bytes, super::oci::MEDIA_TYPE_MANIFEST.into(), blobs))
}

/// Blob counts of [`push_referrers`].
#[derive(Default)]
struct ReferrerCounts {
    blobs_uploaded: usize,
    blobs_present: usize,
}

/// Pushes the image's artifacts (by digest, after the image, whose
/// manifest their `subject` names). A registry that indexes `subject`
/// itself says so with an `OCI-Subject` header; for one that does not
/// (distribution 2.x), the distribution spec's fallback is kept up to date:
/// an image index tagged `sha256-<hex of the image digest>` listing them,
/// merged with what the tag already lists.
fn push_referrers(
    session: &mut Session,
    image: &OpenedImage,
    subject: Sha256Digest,
    reporter: &dyn Reporter,
) -> Result<ReferrerCounts, RegistryError> {
    let mut counts = ReferrerCounts::default();
    let mut unindexed = Vec::new();
    for artifact in &image.referrers {
        let digest = parse_digest(&artifact.digest)?;
        let bytes = image.read_blob(&digest).map_err(|e| RegistryError::Image {
            what: format!("artifact manifest {digest}"),
            source: Box::new(e),
        })?;
        let manifest: super::oci::Manifest =
            parse_json(&bytes, &format!("artifact manifest {digest}"))?;
        for blob in std::iter::once(&manifest.config).chain(&manifest.layers) {
            let blob_digest = parse_digest(&blob.digest)?;
            if session.has_blob(&blob_digest)? {
                counts.blobs_present += 1;
                continue;
            }
            session.upload_blob(image, &blob_digest, blob.size, &blob_member(&blob_digest))?;
            counts.blobs_uploaded += 1;
        }
        let (_, indexed) =
            session.put_manifest(&digest.to_string(), &artifact.media_type, &bytes)?;
        reporter.info(&format!("{digest}: pushed as a referrer of {subject}"));
        if !indexed {
            unindexed.push(artifact.clone());
        }
    }
    if unindexed.is_empty() {
        return Ok(counts);
    }
    let tag = format!("sha256-{}", subject.to_hex());
    let mut list: super::oci::Index = match session.get_manifest(&tag) {
        Ok((_, bytes)) => parse_json(&bytes, &format!("referrers tag {tag}"))?,
        Err(RegistryError::Status { status: 404, .. }) => super::oci::Index {
            schema_version: 2,
            media_type: Some(super::oci::MEDIA_TYPE_INDEX.into()),
            manifests: Vec::new(),
            annotations: Default::default(),
        },
        Err(e) => return Err(e),
    };
    let before = list.manifests.len();
    for artifact in unindexed {
        if !list.manifests.iter().any(|d| d.digest == artifact.digest) {
            list.manifests.push(artifact);
        }
    }
    if list.manifests.len() != before {
        let bytes = super::oci::canonical_json(&list).map_err(|e| RegistryError::Image {
            what: "the referrers index".into(),
            source: Box::new(e),
        })?;
        session.put_manifest(&tag, super::oci::MEDIA_TYPE_INDEX, &bytes)?;
    }
    Ok(counts)
}

/// Manifest kinds a pull accepts, best first.
const ACCEPT_MANIFESTS: &str = "application/vnd.oci.image.index.v1+json, \
application/vnd.oci.image.manifest.v1+json, \
application/vnd.docker.distribution.manifest.list.v2+json, \
application/vnd.docker.distribution.manifest.v2+json";

/// What a pull did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullReport {
    /// Digest of the image manifest written (for a multi-platform tag, the
    /// one matching the requested platform).
    pub manifest_digest: Sha256Digest,
    pub layers: usize,
    pub bytes: u64,
}

/// Pulls `reference` for `platform` (`(architecture, os)` as OCI spells
/// them) into a new OCI layout at `dest`, verifying every blob's digest and
/// size. Written to a temporary sibling and renamed, so `dest` is either
/// complete or absent.
pub fn pull(
    reference: &ImageReference,
    platform: (&str, &str),
    opts: &PushOptions,
    dest: &std::path::Path,
    reporter: &dyn Reporter,
) -> Result<PullReport, RegistryError> {
    let host = registry_host(reference)?;
    if dest.exists() {
        return Err(RegistryError::Image {
            what: dest.display().to_string(),
            source: "already exists; pull into a new directory".into(),
        });
    }
    let mut session = Session::new(&host, &reference.repository, opts);
    let (mut media_type, mut bytes) = session.get_manifest(&reference.tag)?;
    let mut digest = Sha256Digest::of(&bytes);
    if is_index(&media_type, &bytes) {
        let index: super::oci::Index = parse_json(&bytes, "the image index")?;
        let chosen = index
            .manifests
            .iter()
            .find(|d| {
                d.platform
                    .as_ref()
                    .is_some_and(|p| p.architecture == platform.0 && p.os == platform.1)
            })
            .ok_or_else(|| RegistryError::Image {
                what: reference.familiar(),
                source: format!(
                    "no image for {}/{} in the index (it has: {})",
                    platform.1,
                    platform.0,
                    index
                        .manifests
                        .iter()
                        .filter_map(|d| d.platform.as_ref())
                        .map(|p| format!("{}/{}", p.os, p.architecture))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
                .into(),
            })?;
        let expected = parse_digest(&chosen.digest)?;
        (media_type, bytes) = session.get_manifest(&expected.to_string())?;
        digest = Sha256Digest::of(&bytes);
        if digest != expected {
            return Err(RegistryError::ServedWrongContent {
                what: "manifest",
                expected: expected.to_string(),
                actual: digest.to_string(),
            });
        }
        // One level only: an index naming an index is how a registry makes
        // a client walk a chain (or a loop through tags) without end.
        if is_index(&media_type, &bytes) {
            return Err(RegistryError::Image {
                what: reference.familiar(),
                source: format!(
                    "the index entry for {}/{} ({expected}) is itself an index; nested indexes are not followed",
                    platform.1, platform.0
                )
                .into(),
            });
        }
    }
    let manifest: super::oci::Manifest = parse_json(&bytes, "the manifest")?;

    let parent = dest.parent().unwrap_or(std::path::Path::new("."));
    let staging = crate::cleanup::TempPath::new(parent.join(format!(
        ".{}.pull-{}",
        dest.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        std::process::id()
    )));
    let blobs_dir = staging.path().join("blobs/sha256");
    let io_err = |what: String| {
        move |e: std::io::Error| RegistryError::Image {
            what,
            source: Box::new(e),
        }
    };
    std::fs::create_dir_all(&blobs_dir).map_err(io_err(blobs_dir.display().to_string()))?;
    let mut total = 0;
    for desc in std::iter::once(&manifest.config).chain(&manifest.layers) {
        let want = parse_digest(&desc.digest)?;
        let id =
            reporter.download_start(&format!("pull {}", &want.to_hex()[..12]), Some(desc.size));
        let result = session.download_blob(&want, desc.size, &blobs_dir.join(want.to_hex()));
        reporter.download_done(id);
        result?;
        total = desc.size.saturating_add(total);
    }
    std::fs::write(blobs_dir.join(digest.to_hex()), &bytes)
        .map_err(io_err("the manifest blob".into()))?;
    let mut descriptor = super::oci::Descriptor::new(&media_type, digest, bytes.len() as u64);
    descriptor.annotations.insert(
        super::oci::ANNOTATION_REF_NAME.into(),
        reference.tag.clone(),
    );
    let index = super::oci::Index {
        schema_version: 2,
        media_type: Some(super::oci::MEDIA_TYPE_INDEX.into()),
        manifests: vec![descriptor],
        annotations: Default::default(),
    };
    let index_json = serde_json::to_vec(&index).map_err(|e| RegistryError::Image {
        what: "index.json".into(),
        source: Box::new(e),
    })?;
    std::fs::write(staging.path().join("index.json"), index_json)
        .map_err(io_err("index.json".into()))?;
    std::fs::write(
        staging.path().join("oci-layout"),
        format!(
            "{{\"imageLayoutVersion\":\"{}\"}}",
            super::oci::OCI_LAYOUT_VERSION
        ),
    )
    .map_err(io_err("oci-layout".into()))?;
    std::fs::rename(staging.path(), dest).map_err(io_err(dest.display().to_string()))?;
    staging.persist();
    Ok(PullReport {
        manifest_digest: digest,
        layers: manifest.layers.len(),
        bytes: total,
    })
}

fn is_index(media_type: &str, bytes: &[u8]) -> bool {
    if media_type.contains("index") || media_type.contains("manifest.list") {
        return true;
    }
    // Some registries answer with a generic type; the body decides.
    serde_json::from_slice::<serde_json::Value>(bytes)
        .ok()
        .and_then(|v| v.get("manifests").map(|m| m.is_array()))
        .unwrap_or(false)
}

fn parse_json<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
    what: &str,
) -> Result<T, RegistryError> {
    serde_json::from_slice(bytes).map_err(|e| RegistryError::Image {
        what: what.into(),
        source: Box::new(e),
    })
}

fn parse_digest(s: &str) -> Result<Sha256Digest, RegistryError> {
    Sha256Digest::parse(s).map_err(|e| RegistryError::Image {
        what: format!("digest {s:?}"),
        source: Box::new(e),
    })
}

fn blob_member(digest: &Sha256Digest) -> String {
    format!("blobs/sha256/{}", digest.to_hex())
}

fn read_member(
    image: &OpenedImage,
    member: &str,
    limit: u64,
    what: &str,
) -> Result<Vec<u8>, RegistryError> {
    let image_err = |e: Box<dyn std::error::Error + Send + Sync>| RegistryError::Image {
        what: what.into(),
        source: e,
    };
    let mut bytes = Vec::new();
    image
        .open_member(member)
        .map_err(|e| image_err(Box::new(e)))?
        .take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| image_err(Box::new(e)))?;
    if bytes.len() as u64 > limit {
        return Err(image_err(format!("larger than {limit} bytes").into()));
    }
    Ok(bytes)
}

/// Docker treats these registries as insecure (plain HTTP) by default.
fn is_loopback_host(host: &str) -> bool {
    let name = match host.rsplit_once(':') {
        Some((h, port)) if port.chars().all(|c| c.is_ascii_digit()) => h,
        _ => host,
    };
    name == "localhost" || name.starts_with("127.") || name == "[::1]"
}

/// Docker Hub's API lives on another host than its image names.
fn api_host(host: &str) -> &str {
    if host == "docker.io" || host == "index.docker.io" {
        "registry-1.docker.io"
    } else {
        host
    }
}

enum Authorization {
    None,
    Header(String),
}

struct Session {
    agent: ureq::Agent,
    base: String,
    host: String,
    repository: String,
    credentials: Option<Credentials>,
    auth: Authorization,
    request_time: std::time::Duration,
}

/// A parsed `WWW-Authenticate` challenge.
#[derive(Debug, PartialEq, Eq)]
enum Challenge {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
        scope: Option<String>,
    },
}

impl Session {
    fn new(host: &str, repository: &str, opts: &PushOptions) -> Session {
        let scheme = if opts.insecure || is_loopback_host(host) {
            "http"
        } else {
            "https"
        };
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(std::time::Duration::from_secs(30))
            .timeout_read(std::time::Duration::from_secs(300))
            .redirects(5)
            .user_agent(concat!("rootstrap/", env!("CARGO_PKG_VERSION")))
            .build();
        Session {
            agent,
            base: format!("{scheme}://{}", api_host(host)),
            host: host.to_owned(),
            repository: repository.to_owned(),
            credentials: opts
                .credentials
                .clone()
                .or_else(|| docker_config_credentials(host)),
            auth: Authorization::None,
            request_time: opts.request_time.unwrap_or(DEFAULT_REQUEST_TIME),
        }
    }

    /// The whole-request deadline for a transfer of `size` bytes.
    fn time_for(&self, size: u64) -> std::time::Duration {
        self.request_time
            .saturating_add(std::time::Duration::from_secs(size / MIN_BYTES_PER_SECOND))
    }

    fn blob_url(&self, digest: &Sha256Digest) -> String {
        format!("{}/v2/{}/blobs/{digest}", self.base, self.repository)
    }

    fn has_blob(&mut self, digest: &Sha256Digest) -> Result<bool, RegistryError> {
        let url = self.blob_url(digest);
        match self.send("HEAD", &url, &[], Body::Empty) {
            Ok(_) => Ok(true),
            Err(RegistryError::Status { status: 404, .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    fn upload_blob(
        &mut self,
        image: &OpenedImage,
        digest: &Sha256Digest,
        size: u64,
        member: &str,
    ) -> Result<(), RegistryError> {
        let open = || {
            image.open_member(member).map_err(|e| RegistryError::Image {
                what: format!("blob {digest}"),
                source: Box::new(e),
            })
        };
        self.upload(digest, Body::Blob { open: &open, size })
    }

    /// A monolithic upload: POST for a location, then one PUT of `body`,
    /// checking the registry stored it under `digest`.
    fn upload(&mut self, digest: &Sha256Digest, body: Body<'_>) -> Result<(), RegistryError> {
        let start = format!("{}/v2/{}/blobs/uploads/", self.base, self.repository);
        let response = self.send("POST", &start, &[], Body::Empty)?;
        let location = response
            .header("Location")
            .ok_or_else(|| RegistryError::BadLocation {
                url: start.clone(),
                location: String::new(),
            })?
            .to_owned();
        let upload = upload_url(&start, &location, digest)?;
        let response = self.send(
            "PUT",
            &upload,
            &[("Content-Type", "application/octet-stream")],
            body,
        )?;
        check_stored_blob(&response, digest)
    }

    /// `reference` is a tag or a digest. Returns the media type and bytes.
    fn get_manifest(&mut self, reference: &str) -> Result<(String, Vec<u8>), RegistryError> {
        let url = format!("{}/v2/{}/manifests/{reference}", self.base, self.repository);
        let response = self.send("GET", &url, &[("Accept", ACCEPT_MANIFESTS)], Body::Empty)?;
        let media_type = response
            .header("Content-Type")
            .unwrap_or(super::oci::MEDIA_TYPE_MANIFEST)
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_owned();
        let mut bytes = Vec::new();
        response
            .into_reader()
            .take(MAX_MANIFEST + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| RegistryError::Transport {
                method: "GET",
                url: url.clone(),
                message: e.to_string(),
            })?;
        if bytes.len() as u64 > MAX_MANIFEST {
            return Err(RegistryError::Transport {
                method: "GET",
                url,
                message: format!("manifest larger than {MAX_MANIFEST} bytes"),
            });
        }
        if reference.starts_with("sha256:") && Sha256Digest::of(&bytes).to_string() != reference {
            return Err(RegistryError::ServedWrongContent {
                what: "manifest",
                expected: reference.to_owned(),
                actual: Sha256Digest::of(&bytes).to_string(),
            });
        }
        Ok((media_type, bytes))
    }

    /// Streams a blob to `path`, refusing more than `size` bytes and
    /// checking the digest before the file is kept.
    fn download_blob(
        &mut self,
        digest: &Sha256Digest,
        size: u64,
        path: &std::path::Path,
    ) -> Result<(), RegistryError> {
        let url = self.blob_url(digest);
        let response = self.send_sized("GET", &url, &[], Body::Empty, size)?;
        let transport = |message: String| RegistryError::Transport {
            method: "GET",
            url: url.clone(),
            message,
        };
        let file = std::fs::File::create(path)
            .map_err(|e| transport(format!("creating {}: {e}", path.display())))?;
        let mut writer = super::HashingWriter::new(std::io::BufWriter::new(file));
        std::io::copy(
            &mut response.into_reader().take(size.saturating_add(1)),
            &mut writer,
        )
        .map_err(|e| transport(e.to_string()))?;
        let (mut inner, actual, written) = writer.finish();
        std::io::Write::flush(&mut inner).map_err(|e| transport(e.to_string()))?;
        if written != size {
            return Err(transport(format!(
                "blob {digest}: expected {size} bytes, got {written}"
            )));
        }
        if actual != *digest {
            return Err(RegistryError::ServedWrongContent {
                what: "blob",
                expected: digest.to_string(),
                actual: actual.to_string(),
            });
        }
        Ok(())
    }

    /// Returns the digest the registry says it stored, when it says, and
    /// whether it indexed the manifest's `subject` (`OCI-Subject`).
    fn put_manifest(
        &mut self,
        tag: &str,
        media_type: &str,
        bytes: &[u8],
    ) -> Result<(Option<String>, bool), RegistryError> {
        let url = format!("{}/v2/{}/manifests/{tag}", self.base, self.repository);
        let response = self.send(
            "PUT",
            &url,
            &[("Content-Type", media_type)],
            Body::Bytes(bytes),
        )?;
        Ok((
            response.header("Docker-Content-Digest").map(str::to_owned),
            response.header("OCI-Subject").is_some(),
        ))
    }

    /// Sends a request, answering one authentication challenge if the
    /// registry asks for it.
    fn send(
        &mut self,
        method: &'static str,
        url: &str,
        headers: &[(&str, &str)],
        body: Body<'_>,
    ) -> Result<ureq::Response, RegistryError> {
        let size = match body {
            Body::Blob { size, .. } => size,
            _ => 0,
        };
        self.send_sized(method, url, headers, body, size)
    }

    /// [`Session::send`] for a transfer of `size` bytes (its deadline).
    fn send_sized(
        &mut self,
        method: &'static str,
        url: &str,
        headers: &[(&str, &str)],
        body: Body<'_>,
        size: u64,
    ) -> Result<ureq::Response, RegistryError> {
        let deadline = self.time_for(size);
        match self.send_once(method, url, headers, &body, deadline) {
            Err(Attempt::Unauthorized(challenge)) => {
                self.authenticate(url, &challenge)?;
                self.send_once(method, url, headers, &body, deadline)
                    .map_err(|a| a.into_error(method, url))
            }
            other => other.map_err(|a| a.into_error(method, url)),
        }
    }

    fn send_once(
        &self,
        method: &'static str,
        url: &str,
        headers: &[(&str, &str)],
        body: &Body<'_>,
        deadline: std::time::Duration,
    ) -> Result<ureq::Response, Attempt> {
        let mut request = self.agent.request(method, url).timeout(deadline);
        for (k, v) in headers {
            request = request.set(k, v);
        }
        // Credentials go only to the registry itself, never to a storage
        // backend an upload Location may point at.
        if let Authorization::Header(value) = &self.auth {
            if same_origin(url, &self.base) {
                request = request.set("Authorization", value);
            }
        }
        let result = match body {
            Body::Empty => request.call(),
            Body::Bytes(b) => request.send_bytes(b),
            Body::Blob { open, size } => {
                let reader = open().map_err(Attempt::Failed)?;
                request
                    .set("Content-Length", &size.to_string())
                    .send(reader.take(*size))
            }
        };
        match result {
            Ok(r) => Ok(r),
            Err(ureq::Error::Status(401, r)) => {
                let header = r.header("WWW-Authenticate").unwrap_or("").to_owned();
                Err(Attempt::Unauthorized(header))
            }
            Err(ureq::Error::Status(status, r)) => Err(Attempt::Status(status, error_message(r))),
            Err(ureq::Error::Transport(t)) => Err(Attempt::Transport(t.to_string())),
        }
    }

    fn authenticate(&mut self, url: &str, header: &str) -> Result<(), RegistryError> {
        let auth_err = |reason: String| RegistryError::Auth {
            url: url.to_owned(),
            reason,
        };
        let challenge = parse_challenge(header).ok_or_else(|| {
            auth_err(format!(
                "the registry's challenge {header:?} is not understood"
            ))
        })?;
        match challenge {
            Challenge::Basic => {
                let creds = self.credentials.as_ref().ok_or_else(|| {
                    auth_err(format!(
                        "no credentials for {} (pass --username/--password-stdin or `docker login`)",
                        self.host
                    ))
                })?;
                self.auth = Authorization::Header(basic_header(creds));
            }
            Challenge::Bearer {
                realm,
                service,
                scope,
            } => {
                let scope =
                    scope.unwrap_or_else(|| format!("repository:{}:pull,push", self.repository));
                let mut token_url = url::Url::parse(&realm)
                    .map_err(|e| auth_err(format!("token realm {realm:?} is invalid: {e}")))?;
                self.check_realm(&token_url)?;
                {
                    let mut q = token_url.query_pairs_mut();
                    if let Some(s) = &service {
                        q.append_pair("service", s);
                    }
                    q.append_pair("scope", &scope);
                }
                let mut request = self
                    .agent
                    .get(token_url.as_str())
                    .timeout(self.request_time);
                if let Some(creds) = &self.credentials {
                    request = request.set("Authorization", &basic_header(creds));
                }
                let response = request.call().map_err(|e| match e {
                    ureq::Error::Status(status, r) => auth_err(format!(
                        "the token service answered HTTP {status}: {}",
                        error_message(r)
                    )),
                    ureq::Error::Transport(t) => auth_err(format!("the token service: {t}")),
                })?;
                let mut body = String::new();
                response
                    .into_reader()
                    .take(MAX_MANIFEST)
                    .read_to_string(&mut body)
                    .map_err(|e| auth_err(format!("reading the token: {e}")))?;
                let json: serde_json::Value = serde_json::from_str(&body)
                    .map_err(|e| auth_err(format!("the token response is not JSON: {e}")))?;
                let token = json
                    .get("token")
                    .or_else(|| json.get("access_token"))
                    .and_then(|t| t.as_str())
                    .ok_or_else(|| auth_err("the token response has no token".into()))?;
                self.auth = Authorization::Header(format!("Bearer {token}"));
            }
        }
        Ok(())
    }
}

impl Session {
    /// A token realm gets the user's credentials, so it must be reached at
    /// least as safely as the registry: never over plain HTTP from an HTTPS
    /// registry, and never over plain HTTP on another host while there are
    /// credentials to send (a registry naming any realm it likes would
    /// otherwise collect them in clear text).
    fn check_realm(&self, realm: &url::Url) -> Result<(), RegistryError> {
        let refuse = |reason: String| RegistryError::Auth {
            url: realm.to_string(),
            reason,
        };
        let registry = url::Url::parse(&self.base).map_err(|e| refuse(e.to_string()))?;
        match realm.scheme() {
            "https" => Ok(()),
            "http" if registry.scheme() == "https" => Err(refuse(format!(
                "the token realm is plain HTTP while the registry {} is HTTPS; refusing to downgrade",
                self.host
            ))),
            "http" if realm.origin() != registry.origin() && self.credentials.is_some() => {
                Err(refuse(format!(
                    "the token realm is on another host ({}) over plain HTTP; refusing to send the credentials for {} there",
                    realm.host_str().unwrap_or("?"),
                    self.host
                )))
            }
            "http" => Ok(()),
            other => Err(refuse(format!(
                "the token realm uses {other:?}, not http(s)"
            ))),
        }
    }
}

enum Body<'a> {
    Empty,
    Bytes(&'a [u8]),
    Blob {
        #[allow(clippy::type_complexity)]
        open: &'a dyn Fn() -> Result<Box<dyn Read + 'a>, RegistryError>,
        size: u64,
    },
}

enum Attempt {
    Unauthorized(String),
    Status(u16, String),
    Transport(String),
    Failed(RegistryError),
}

impl Attempt {
    fn into_error(self, method: &'static str, url: &str) -> RegistryError {
        match self {
            Attempt::Unauthorized(_) => RegistryError::Status {
                method,
                url: url.to_owned(),
                status: 401,
                message: "credentials refused".into(),
            },
            Attempt::Status(status, message) => RegistryError::Status {
                method,
                url: url.to_owned(),
                status,
                message,
            },
            Attempt::Transport(message) => RegistryError::Transport {
                method,
                url: url.to_owned(),
                message,
            },
            Attempt::Failed(e) => e,
        }
    }
}

/// The registry's JSON error (`{"errors":[{"code","message"}]}`), or its text.
fn error_message(response: ureq::Response) -> String {
    let mut body = String::new();
    let _ = response
        .into_reader()
        .take(64 * 1024)
        .read_to_string(&mut body);
    if let Ok(json) = serde_json::from_str::<serde_json::Value>(&body) {
        if let Some(errors) = json.get("errors").and_then(|e| e.as_array()) {
            let parts: Vec<String> = errors
                .iter()
                .map(|e| {
                    format!(
                        "{}: {}",
                        e.get("code").and_then(|c| c.as_str()).unwrap_or("ERROR"),
                        e.get("message").and_then(|m| m.as_str()).unwrap_or("")
                    )
                })
                .collect();
            if !parts.is_empty() {
                return parts.join("; ");
            }
        }
    }
    let trimmed = body.trim();
    if trimmed.is_empty() {
        "no details".into()
    } else {
        trimmed.chars().take(300).collect()
    }
}

/// A registry that says it stored an upload under another digest (in
/// `Docker-Content-Digest`, or in the blob's `Location`) did not store what
/// was sent: the manifest would name a blob it does not have.
fn check_stored_blob(
    response: &ureq::Response,
    digest: &Sha256Digest,
) -> Result<(), RegistryError> {
    let expected = digest.to_string();
    let from_location = response
        .header("Location")
        .and_then(|l| l.split('?').next())
        .and_then(|l| l.rsplit('/').next())
        .filter(|last| last.starts_with("sha256:"));
    for actual in [response.header("Docker-Content-Digest"), from_location]
        .into_iter()
        .flatten()
    {
        if actual != expected {
            return Err(RegistryError::BlobDigestMismatch {
                expected,
                actual: actual.to_owned(),
            });
        }
    }
    Ok(())
}

/// The Location of an upload may be relative and may carry a query
/// (state tokens); the digest is appended to it.
fn upload_url(start: &str, location: &str, digest: &Sha256Digest) -> Result<String, RegistryError> {
    let bad = || RegistryError::BadLocation {
        url: start.to_owned(),
        location: location.to_owned(),
    };
    let base = url::Url::parse(start).map_err(|_| bad())?;
    let mut url = base.join(location).map_err(|_| bad())?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad());
    }
    url.query_pairs_mut()
        .append_pair("digest", &digest.to_string());
    Ok(url.into())
}

fn same_origin(url: &str, base: &str) -> bool {
    match (url::Url::parse(url), url::Url::parse(base)) {
        (Ok(a), Ok(b)) => a.origin() == b.origin(),
        _ => false,
    }
}

fn basic_header(creds: &Credentials) -> String {
    let raw = format!("{}:{}", creds.username, creds.password);
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(raw)
    )
}

/// Parses `Basic realm="…"` or `Bearer realm="…",service="…",scope="…"`.
fn parse_challenge(header: &str) -> Option<Challenge> {
    let header = header.trim();
    let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
    if scheme.eq_ignore_ascii_case("basic") {
        return Some(Challenge::Basic);
    }
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let params = parse_auth_params(rest)?;
    let get = |k: &str| {
        params
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(k))
            .map(|(_, v)| v.clone())
    };
    Some(Challenge::Bearer {
        realm: get("realm")?,
        service: get("service"),
        scope: get("scope"),
    })
}

/// `k="v", k2=v2` with quoted strings that may contain commas.
fn parse_auth_params(s: &str) -> Option<Vec<(String, String)>> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while matches!(chars.peek(), Some(c) if *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            return Some(out);
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' {
                break;
            }
            key.push(c);
            chars.next();
        }
        chars.next()?; // '='
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next()? {
                    '"' => break,
                    '\\' => value.push(chars.next()?),
                    c => value.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ',' {
                    break;
                }
                value.push(c);
                chars.next();
            }
        }
        out.push((key.trim().to_owned(), value.trim().to_owned()));
    }
}

/// `~/.docker/config.json` → `auths[host].auth` (base64 `user:password`).
/// Credential helpers are not run: they execute arbitrary programs.
fn docker_config_credentials(host: &str) -> Option<Credentials> {
    let path = std::env::var_os("DOCKER_CONFIG")
        .map(std::path::PathBuf::from)
        .or_else(|| dirs::home_dir().map(|h| h.join(".docker")))?
        .join("config.json");
    let text = std::fs::read_to_string(path).ok()?;
    credentials_from_docker_config(&text, host)
}

fn credentials_from_docker_config(text: &str, host: &str) -> Option<Credentials> {
    let json: serde_json::Value = serde_json::from_str(text).ok()?;
    let auths = json.get("auths")?.as_object()?;
    let keys = [
        host.to_owned(),
        format!("https://{host}"),
        format!("http://{host}"),
        if host == "docker.io" {
            "https://index.docker.io/v1/".to_owned()
        } else {
            String::new()
        },
    ];
    let entry = keys.iter().find_map(|k| auths.get(k))?;
    let encoded = entry.get("auth")?.as_str()?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (username, password) = text.split_once(':')?;
    Some(Credentials {
        username: username.to_owned(),
        password: password.to_owned(),
    })
}

/// One repository of a registry, for callers that read and write small
/// artifacts by hand (signatures and attestations): manifests by tag or
/// digest, and blobs held in memory. Same transport, authentication and
/// limits as a push.
pub struct Repository {
    session: Session,
}

impl Repository {
    pub fn open(
        reference: &ImageReference,
        opts: &PushOptions,
    ) -> Result<Repository, RegistryError> {
        let host = registry_host(reference)?;
        Ok(Repository {
            session: Session::new(&host, &reference.repository, opts),
        })
    }

    /// `HOST/REPOSITORY`, as a signature names the image.
    pub fn name(&self) -> String {
        format!("{}/{}", self.session.host, self.session.repository)
    }

    /// The manifest a tag or digest names, with its media type, or `None`
    /// when the registry has none (404). A digest reference is checked.
    pub fn manifest(
        &mut self,
        reference: &str,
    ) -> Result<Option<(String, Vec<u8>)>, RegistryError> {
        match self.session.get_manifest(reference) {
            Ok(found) => Ok(Some(found)),
            Err(RegistryError::Status { status: 404, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// A blob of at most `limit` bytes, checked against its digest.
    pub fn blob(&mut self, digest: &Sha256Digest, limit: u64) -> Result<Vec<u8>, RegistryError> {
        let url = self.session.blob_url(digest);
        let response = self
            .session
            .send_sized("GET", &url, &[], Body::Empty, limit)?;
        let mut bytes = Vec::new();
        response
            .into_reader()
            .take(limit + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| RegistryError::Transport {
                method: "GET",
                url: url.clone(),
                message: e.to_string(),
            })?;
        if bytes.len() as u64 > limit {
            return Err(RegistryError::Transport {
                method: "GET",
                url,
                message: format!("blob {digest} larger than {limit} bytes"),
            });
        }
        let actual = Sha256Digest::of(&bytes);
        if actual != *digest {
            return Err(RegistryError::ServedWrongContent {
                what: "blob",
                expected: digest.to_string(),
                actual: actual.to_string(),
            });
        }
        Ok(bytes)
    }

    /// Uploads `bytes` unless the registry has them; returns their digest.
    pub fn put_blob(&mut self, bytes: &[u8]) -> Result<Sha256Digest, RegistryError> {
        let digest = Sha256Digest::of(bytes);
        if self.session.has_blob(&digest)? {
            return Ok(digest);
        }
        self.session.upload(&digest, Body::Bytes(bytes))?;
        Ok(digest)
    }

    /// Puts a manifest under `tag` (or its digest) and checks the digest the
    /// registry says it stored.
    pub fn put_manifest(
        &mut self,
        tag: &str,
        media_type: &str,
        bytes: &[u8],
    ) -> Result<Sha256Digest, RegistryError> {
        let digest = Sha256Digest::of(bytes);
        let (stored, _) = self.session.put_manifest(tag, media_type, bytes)?;
        match stored {
            Some(actual) if actual != digest.to_string() => Err(RegistryError::DigestMismatch {
                expected: digest.to_string(),
                actual,
            }),
            _ => Ok(digest),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_challenge_with_quoted_commas() {
        let c = parse_challenge(
            r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push""#,
        );
        assert_eq!(
            c,
            Some(Challenge::Bearer {
                realm: "https://auth.example/token".into(),
                service: Some("registry.example".into()),
                scope: Some("repository:a/b:pull,push".into()),
            })
        );
    }

    #[test]
    fn basic_and_unknown_challenges() {
        assert_eq!(
            parse_challenge(r#"Basic realm="Registry Realm""#),
            Some(Challenge::Basic)
        );
        assert_eq!(parse_challenge("Negotiate"), None);
        assert_eq!(parse_challenge(r#"Bearer service="x""#), None, "no realm");
        assert_eq!(parse_challenge(r#"Bearer realm="unterminated"#), None);
    }

    #[test]
    fn upload_location_relative_absolute_and_with_query() {
        let d = Sha256Digest::of(b"x");
        let start = "http://127.0.0.1:5000/v2/a/blobs/uploads/";
        let u = upload_url(start, "/v2/a/blobs/uploads/uuid?_state=abc", &d).unwrap();
        assert_eq!(
            u,
            format!(
                "http://127.0.0.1:5000/v2/a/blobs/uploads/uuid?_state=abc&digest=sha256%3A{}",
                d.to_hex()
            )
        );
        let u = upload_url(start, "https://storage.example/up/1", &d).unwrap();
        assert!(u.starts_with("https://storage.example/up/1?digest="));
        assert!(upload_url(start, "file:///etc/passwd", &d).is_err());
    }

    #[test]
    fn credentials_only_to_the_registry_origin() {
        assert!(same_origin(
            "http://127.0.0.1:5000/v2/x/blobs/uploads/1",
            "http://127.0.0.1:5000"
        ));
        assert!(!same_origin(
            "https://storage.example/up",
            "http://127.0.0.1:5000"
        ));
    }

    #[test]
    fn loopback_registries_use_http() {
        assert!(is_loopback_host("localhost:5000"));
        assert!(is_loopback_host("127.0.0.1:5000"));
        assert!(is_loopback_host("localhost"));
        assert!(!is_loopback_host("registry.example:5000"));
        assert!(!is_loopback_host("localhost.example"));
    }

    #[test]
    fn docker_config_auths() {
        let auth = base64::engine::general_purpose::STANDARD.encode("me:s3cr:et");
        let cfg = format!(r#"{{"auths":{{"reg.example:5000":{{"auth":"{auth}"}}}}}}"#);
        let c = credentials_from_docker_config(&cfg, "reg.example:5000").unwrap();
        assert_eq!(c.username, "me");
        assert_eq!(c.password, "s3cr:et");
        assert!(credentials_from_docker_config(&cfg, "other").is_none());
        assert!(credentials_from_docker_config("not json", "x").is_none());
        assert!(format!("{c:?}").contains("redacted"));
        assert!(!format!("{c:?}").contains("s3cr"));
    }
}
