//! Signatures and attestations that travel with an OCI layout: stored as
//! OCI 1.1 referrers of the image (artifact manifests whose `subject` is
//! it, cosign's `artifactType`s), so an air-gapped copy of the layout
//! carries them, `rootstrap push` publishes them under cosign's tags, and
//! `rootstrap verify oci:DIR` checks them offline.

use std::path::Path;

use p256::ecdsa::{SigningKey, VerifyingKey};

use super::cosign::{self, Kind, Layer, Subject};
use super::remote::Predicate;
use super::SignError;
use crate::image::registry::Repository;
use crate::image::{layout, ImageSource, OpenedImage, Sha256Digest};

/// The image a layout holds (the entry `name`, or its only one).
fn open(dir: &Path, name: Option<&str>) -> Result<(OpenedImage, Sha256Digest), SignError> {
    let image = OpenedImage::open(&ImageSource::OciDir(dir.to_owned()), name)
        .map_err(|e| SignError::Invalid(format!("{}: {e}", dir.display())))?;
    let digest = image.manifest_digest.ok_or_else(|| {
        SignError::Invalid(format!(
            "{}: the image has no manifest digest",
            dir.display()
        ))
    })?;
    Ok((image, digest))
}

/// Signs the image in the layout at `dir` as `identity` (`HOST/REPO`, the
/// name it will be published under) and attaches `predicates`.
pub fn sign(
    dir: &Path,
    name: Option<&str>,
    identity: &str,
    key: &SigningKey,
    predicates: &[Predicate],
) -> Result<Sha256Digest, SignError> {
    let (_, digest) = open(dir, name)?;
    let subject_desc = layout::subject_descriptor(dir, digest)
        .map_err(|e| SignError::Invalid(format!("{}: {e}", dir.display())))?;
    let subject = Subject {
        media_type: &subject_desc.media_type,
        digest,
        size: subject_desc.size,
    };
    attach(
        dir,
        Kind::Signatures,
        subject,
        vec![cosign::signature_layer(key, identity, digest)],
    )?;
    if !predicates.is_empty() {
        let new = cosign::attestation_layers(key, identity, digest, predicates);
        attach(dir, Kind::Attestations, subject, new)?;
    }
    Ok(digest)
}

fn attach(
    dir: &Path,
    kind: Kind,
    subject: Subject<'_>,
    new: Vec<(Layer, Vec<u8>)>,
) -> Result<(), SignError> {
    let layers: Vec<Layer> = new.iter().map(|(l, _)| l.clone()).collect();
    let (manifest, config) = cosign::manifest(kind, &layers, subject);
    let mut blobs: Vec<&[u8]> = new.iter().map(|(_, d)| d.as_slice()).collect();
    blobs.push(&config);
    layout::attach_manifest(
        dir,
        subject.digest,
        &manifest,
        &blobs,
        kind.artifact_type(),
        Default::default(),
    )
    .map_err(|e| SignError::Invalid(format!("{}: {e}", dir.display())))?;
    Ok(())
}

/// The layers of every `kind` referrer of `image`, each with its blob.
fn stored_layers(image: &OpenedImage, kind: Kind) -> Result<Vec<(Layer, Vec<u8>)>, SignError> {
    let read = |digest: &str| -> Result<Vec<u8>, SignError> {
        let digest = Sha256Digest::parse(digest)
            .map_err(|e| SignError::Invalid(format!("digest {digest:?}: {e}")))?;
        image
            .read_blob(&digest)
            .map_err(|e| SignError::Invalid(format!("blob {digest}: {e}")))
    };
    let mut out = Vec::new();
    for artifact in image
        .referrers
        .iter()
        .filter(|d| d.artifact_type.as_deref() == Some(kind.artifact_type()))
    {
        let manifest = read(&artifact.digest)?;
        for layer in cosign::layers_of(&manifest, &artifact.digest)? {
            if layer.media_type == kind.layer_media_type() {
                let data = read(&layer.digest)?;
                out.push((layer, data));
            }
        }
    }
    Ok(out)
}

/// What [`verify`] found in a layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedLayout {
    pub digest: Sha256Digest,
    /// The names the valid signatures were made for.
    pub identities: Vec<String>,
    pub attestations: Vec<String>,
}

/// Checks the layout's image carries a signature by `key` for its digest
/// (and, when `identity` is given, for that name), and with `attestations`
/// a valid attestation about it.
pub fn verify(
    dir: &Path,
    name: Option<&str>,
    key: &VerifyingKey,
    identity: Option<&str>,
    attestations: bool,
) -> Result<VerifiedLayout, SignError> {
    let (image, digest) = open(dir, name)?;
    let what = format!("{}@{digest}", dir.display());
    let signatures = stored_layers(&image, Kind::Signatures)?;
    if signatures.is_empty() {
        return Err(SignError::NotSigned {
            image: what,
            what: "signature",
            tag: "signature referrer in the layout".into(),
        });
    }
    let identities = cosign::check_signatures(&signatures, key, identity, digest, &what)?;
    let kinds = if attestations {
        let layers = stored_layers(&image, Kind::Attestations)?;
        cosign::check_attestations(&layers, key, digest, &what)?
    } else {
        Vec::new()
    };
    Ok(VerifiedLayout {
        digest,
        identities,
        attestations: kinds,
    })
}

/// After `rootstrap push` of a layout: puts the image's signatures and
/// attestations under cosign's tags in `repo` too (merged with what is
/// there), where cosign-compatible verifiers look. Returns how many layers
/// were published.
pub fn publish_tags(
    dir: &Path,
    name: Option<&str>,
    repo: &mut Repository,
    pushed: Sha256Digest,
) -> Result<usize, SignError> {
    let (image, digest) = open(dir, name)?;
    if digest != pushed {
        // The push wrote another manifest (e.g. converted a legacy archive):
        // the layout's signatures are not about it.
        return Ok(0);
    }
    let subject_desc = layout::subject_descriptor(dir, digest)
        .map_err(|e| SignError::Invalid(format!("{}: {e}", dir.display())))?;
    let subject = Subject {
        media_type: &subject_desc.media_type,
        digest,
        size: subject_desc.size,
    };
    let mut count = 0;
    for kind in [Kind::Signatures, Kind::Attestations] {
        let new = stored_layers(&image, kind)?;
        if new.is_empty() {
            continue;
        }
        count += new.len();
        super::remote::append_layers(repo, kind, subject, new)?;
    }
    Ok(count)
}

/// After a pull into the layout `dir`: copies the registry's signatures and
/// attestations of the pulled image `digest` into the layout as its
/// referrers, so they travel with it. Returns how many layers came.
pub fn import(dir: &Path, repo: &mut Repository, digest: Sha256Digest) -> Result<usize, SignError> {
    let subject_desc = layout::subject_descriptor(dir, digest)
        .map_err(|e| SignError::Invalid(format!("{}: {e}", dir.display())))?;
    let subject = Subject {
        media_type: &subject_desc.media_type,
        digest,
        size: subject_desc.size,
    };
    let mut count = 0;
    for kind in [Kind::Signatures, Kind::Attestations] {
        let layers = match super::remote::read_layers(repo, kind, digest, &digest.to_string()) {
            Ok(layers) => layers,
            Err(SignError::NotSigned { .. }) => continue,
            Err(e) => return Err(e),
        };
        if layers.is_empty() {
            continue;
        }
        count += layers.len();
        attach(dir, kind, subject, layers)?;
    }
    Ok(count)
}
