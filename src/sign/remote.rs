//! Signing and verifying images in a registry, where cosign keeps them.

use p256::ecdsa::{SigningKey, VerifyingKey};

use super::cosign::{self, Kind, Layer, Subject};
use super::{SignError, Target};
use crate::image::registry::{PushOptions, Repository};
use crate::image::Sha256Digest;

/// Signature payloads and envelopes larger than this are refused.
const MAX_LAYER: u64 = 16 << 20;

/// An attestation to attach: an in-toto predicate and its type.
#[derive(Debug, Clone)]
pub struct Predicate {
    pub predicate_type: String,
    pub predicate: serde_json::Value,
}

/// What [`sign`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed {
    /// `HOST/REPO@sha256:…` of the signed image.
    pub image: String,
    pub digest: Sha256Digest,
    /// `HOST/REPO:sha256-….sig`
    pub signatures: String,
    /// `HOST/REPO:sha256-….att`, when attestations were attached.
    pub attestations: Option<String>,
}

/// Signs the image `target` names (its tag's current digest, or the digest
/// given) and attaches `predicates` as attestations.
pub fn sign(
    target: &Target,
    key: &SigningKey,
    predicates: &[Predicate],
    opts: &PushOptions,
) -> Result<Signed, SignError> {
    let mut repo = Repository::open(&target.reference, opts)?;
    let name = repo.name();
    let (media_type, digest, size) = resolve(&mut repo, target)?;
    let subject = Subject {
        media_type: &media_type,
        digest,
        size,
    };

    let signatures = append_layers(
        &mut repo,
        Kind::Signatures,
        subject,
        vec![cosign::signature_layer(key, &name, digest)],
    )?;
    let attestations = if predicates.is_empty() {
        None
    } else {
        let new = cosign::attestation_layers(key, &name, digest, predicates);
        Some(append_layers(&mut repo, Kind::Attestations, subject, new)?)
    };
    Ok(Signed {
        image: format!("{name}@{digest}"),
        digest,
        signatures,
        attestations,
    })
}

/// Adds layers to the image's `.sig`/`.att` manifest, keeping those there;
/// returns `HOST/REPO:TAG` of it.
pub(crate) fn append_layers(
    repo: &mut Repository,
    kind: Kind,
    subject: Subject<'_>,
    new: Vec<(Layer, Vec<u8>)>,
) -> Result<String, SignError> {
    let tag = kind.tag(subject.digest);
    let mut layers = match repo.manifest(&tag)? {
        Some((_, bytes)) => cosign::layers_of(&bytes, &format!("{}:{tag}", repo.name()))?,
        None => Vec::new(),
    };
    for (layer, data) in new {
        repo.put_blob(&data)?;
        layers = cosign::append(layers, layer);
    }
    let (manifest, config) = cosign::manifest(kind, &layers, subject);
    repo.put_blob(&config)?;
    repo.put_manifest(&tag, crate::image::oci::MEDIA_TYPE_MANIFEST, &manifest)?;
    Ok(format!("{}:{tag}", repo.name()))
}

/// The media type, digest and size of the manifest `target` names.
fn resolve(
    repo: &mut Repository,
    target: &Target,
) -> Result<(String, Sha256Digest, u64), SignError> {
    let reference = match target.digest {
        Some(d) => d.to_string(),
        None => target.reference.tag.clone(),
    };
    let (media_type, bytes) = repo
        .manifest(&reference)?
        .ok_or_else(|| SignError::NoImage {
            image: target.to_string(),
        })?;
    Ok((media_type, Sha256Digest::of(&bytes), bytes.len() as u64))
}

/// What [`verify`] found valid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub image: String,
    pub digest: Sha256Digest,
    pub signatures: usize,
    /// Predicate types of the valid attestations (when asked for).
    pub attestations: Vec<String>,
}

/// Checks the image `target` names has a signature by `key` over its
/// current digest and name, and, with `attestations`, at least one
/// attestation by `key` whose subject is that digest.
pub fn verify(
    target: &Target,
    key: &VerifyingKey,
    attestations: bool,
    opts: &PushOptions,
) -> Result<Verified, SignError> {
    let mut repo = Repository::open(&target.reference, opts)?;
    let name = repo.name();
    let (_, digest, _) = resolve(&mut repo, target)?;
    let image = format!("{name}@{digest}");

    let layers = read_layers(&mut repo, Kind::Signatures, digest, &image)?;
    // The name checked is the repository's own.
    let signatures = cosign::check_signatures(&layers, key, Some(&name), digest, &image)?.len();
    let predicate_types = if attestations {
        let layers = read_layers(&mut repo, Kind::Attestations, digest, &image)?;
        cosign::check_attestations(&layers, key, digest, &image)?
    } else {
        Vec::new()
    };
    Ok(Verified {
        image,
        digest,
        signatures,
        attestations: predicate_types,
    })
}

/// The layers of the image's `.sig`/`.att` manifest of the right media
/// type, each with its blob.
pub(crate) fn read_layers(
    repo: &mut Repository,
    kind: Kind,
    digest: Sha256Digest,
    image: &str,
) -> Result<Vec<(Layer, Vec<u8>)>, SignError> {
    let tag = kind.tag(digest);
    let Some((_, manifest)) = repo.manifest(&tag)? else {
        return Err(SignError::NotSigned {
            image: image.to_owned(),
            what: match kind {
                Kind::Signatures => "signature",
                Kind::Attestations => "attestation",
            },
            tag,
        });
    };
    let mut out = Vec::new();
    for layer in cosign::layers_of(&manifest, &tag)? {
        if layer.media_type != kind.layer_media_type() {
            continue;
        }
        let blob_digest = Sha256Digest::parse(&layer.digest).map_err(|e| {
            SignError::Invalid(format!("{tag}: layer digest {:?}: {e}", layer.digest))
        })?;
        if layer.size > MAX_LAYER {
            return Err(SignError::Invalid(format!(
                "{tag}: layer {} of {} bytes (limit {MAX_LAYER})",
                layer.digest, layer.size
            )));
        }
        let data = repo.blob(&blob_digest, MAX_LAYER)?;
        out.push((layer, data));
    }
    Ok(out)
}
