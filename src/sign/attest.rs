//! Signing what a build published: the image (or image index and each
//! platform's image), with the SBOMs the build made and a provenance
//! statement attached as attestations.

use std::path::Path;

use p256::ecdsa::SigningKey;

use super::remote::{self, Predicate, Signed};
use super::{SignError, Target};
use crate::image::reference::ImageReference;
use crate::image::registry::{self, PushOptions};
use crate::image::{ImageSource, OpenedImage, Sha256Digest};
use crate::sbom::SbomFormat;

/// in-toto predicate types, as cosign's `attest --type` names them.
pub const SPDX_PREDICATE: &str = "https://spdx.dev/Document";
pub const CYCLONEDX_PREDICATE: &str = "https://cyclonedx.org/bom";
pub const SLSA_PROVENANCE_V1: &str = "https://slsa.dev/provenance/v1";

/// The inputs a provenance statement records.
#[derive(Debug, Clone, Default)]
pub struct Provenance {
    /// What was built: a recipe or a Dockerfile, with the SHA-256 of its bytes.
    pub definition: Option<(String, Sha256Digest)>,
    /// The lockfile the build followed or wrote.
    pub lockfile: Option<(String, Sha256Digest)>,
    /// `os/arch[/variant]` of each platform built.
    pub platforms: Vec<String>,
}

impl Provenance {
    /// The SHA-256 of a file, for [`Provenance`]'s fields.
    pub fn file(path: &Path) -> Result<(String, Sha256Digest), SignError> {
        let bytes = std::fs::read(path).map_err(|e| SignError::KeyFile {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        Ok((path.display().to_string(), Sha256Digest::of(&bytes)))
    }

    /// A SLSA v1 provenance predicate. `images` are the digests signed with
    /// it (the index and its platforms' images). No times or host names:
    /// the same build signs the same statement.
    fn predicate(&self, images: &[Sha256Digest]) -> Predicate {
        let resource = |(name, digest): &(String, Sha256Digest)| serde_json::json!({"name": name, "digest": {"sha256": digest.to_hex()}});
        Predicate {
            predicate_type: SLSA_PROVENANCE_V1.into(),
            predicate: serde_json::json!({
                "buildDefinition": {
                    "buildType": "urn:rootstrap:build:v1",
                    "externalParameters": {
                        "definition": self.definition.as_ref().map(resource),
                        "lockfile": self.lockfile.as_ref().map(resource),
                        "platforms": self.platforms,
                    },
                    "resolvedDependencies": self.lockfile.as_ref().map(|l| vec![resource(l)]).unwrap_or_default(),
                },
                "runDetails": {
                    "builder": {
                        "id": "urn:rootstrap",
                        "version": {"rootstrap": env!("CARGO_PKG_VERSION")},
                    },
                    "byproducts": images
                        .iter()
                        .map(|d| serde_json::json!({"digest": {"sha256": d.to_hex()}}))
                        .collect::<Vec<_>>(),
                },
            }),
        }
    }
}

/// The SBOM predicates attached to `image` in its layout.
fn sbom_predicates(image: &OpenedImage) -> Result<Vec<Predicate>, SignError> {
    let mut out = Vec::new();
    for (format, predicate_type) in [
        (SbomFormat::Spdx, SPDX_PREDICATE),
        (SbomFormat::CycloneDx, CYCLONEDX_PREDICATE),
    ] {
        let document = crate::sbom::output::attached(image, format)
            .map_err(|e| SignError::Invalid(format!("reading the image's SBOM: {e}")))?;
        if let Some(bytes) = document {
            let predicate = serde_json::from_slice(&bytes)
                .map_err(|e| SignError::Invalid(format!("the image's {format:?} SBOM: {e}")))?;
            out.push(Predicate {
                predicate_type: predicate_type.into(),
                predicate,
            });
        }
    }
    Ok(out)
}

/// Signs the image the layout `layout` holds, just pushed as `reference`
/// with `digest`: an image index and each platform's image, or the one
/// image, each with its SBOMs and the provenance attached.
pub fn sign_published(
    layout: &Path,
    reference: &ImageReference,
    digest: Sha256Digest,
    key: &SigningKey,
    provenance: &Provenance,
    opts: &PushOptions,
) -> Result<Vec<Signed>, SignError> {
    let target = |digest| Target {
        reference: reference.clone(),
        digest: Some(digest),
    };
    let source = ImageSource::OciDir(layout.to_owned());
    let open_err =
        |e: crate::image::ImageError| SignError::Invalid(format!("{}: {e}", layout.display()));
    let mut signed = Vec::new();
    match registry::layout_index(layout, None)? {
        Some((_, index)) => {
            let mut platforms = Vec::new();
            for entry in &index.manifests {
                let platform = entry.platform.as_ref().ok_or_else(|| {
                    SignError::Invalid(format!("index entry {} names no platform", entry.digest))
                })?;
                let image =
                    OpenedImage::open_platform(&source, None, platform).map_err(open_err)?;
                let digest = Sha256Digest::parse(&entry.digest).map_err(|e| {
                    SignError::Invalid(format!("index entry {}: {e}", entry.digest))
                })?;
                platforms.push((digest, sbom_predicates(&image)?));
            }
            let mut all: Vec<Sha256Digest> = vec![digest];
            all.extend(platforms.iter().map(|(d, _)| *d));
            let provenance = provenance.predicate(&all);
            signed.push(remote::sign(
                &target(digest),
                key,
                std::slice::from_ref(&provenance),
                opts,
            )?);
            for (platform_digest, mut predicates) in platforms {
                predicates.push(provenance.clone());
                signed.push(remote::sign(
                    &target(platform_digest),
                    key,
                    &predicates,
                    opts,
                )?);
            }
        }
        None => {
            let image = OpenedImage::open(&source, None).map_err(open_err)?;
            let mut predicates = sbom_predicates(&image)?;
            predicates.push(provenance.predicate(&[digest]));
            signed.push(remote::sign(&target(digest), key, &predicates, opts)?);
        }
    }
    Ok(signed)
}

/// The predicate type `--type` names: cosign's short names or a URI.
pub fn predicate_type(name: &str) -> Result<String, SignError> {
    Ok(match name {
        "spdx" | "spdxjson" => SPDX_PREDICATE.into(),
        "cyclonedx" => CYCLONEDX_PREDICATE.into(),
        "slsaprovenance" | "slsaprovenance02" => "https://slsa.dev/provenance/v0.2".into(),
        "slsaprovenance1" => SLSA_PROVENANCE_V1.into(),
        uri if uri.contains("://") || uri.starts_with("urn:") => uri.into(),
        other => {
            return Err(SignError::Invalid(format!(
                "--type {other:?}: use spdx, cyclonedx, slsaprovenance, slsaprovenance1 or a URI"
            )))
        }
    })
}

/// Signs the image a build wrote to the OCI layout `dir` for `identity`
/// (`HOST/REPO`), attaching its SBOMs and the provenance, all inside the
/// layout (see [`super::layout`]).
pub fn sign_layout_output(
    dir: &Path,
    identity: &str,
    key: &SigningKey,
    provenance: &Provenance,
) -> Result<Sha256Digest, SignError> {
    let image = OpenedImage::open(&ImageSource::OciDir(dir.to_owned()), None)
        .map_err(|e| SignError::Invalid(format!("{}: {e}", dir.display())))?;
    let digest = image
        .manifest_digest
        .ok_or_else(|| SignError::Invalid(format!("{}: no manifest digest", dir.display())))?;
    let mut predicates = sbom_predicates(&image)?;
    predicates.push(provenance.predicate(&[digest]));
    super::layout::sign(dir, None, identity, key, &predicates)
}
