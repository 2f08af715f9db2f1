//! The OCI objects cosign stores signatures and attestations in, and where.
//!
//! A signed image `REPO@sha256:H` has its signatures in an image manifest
//! tagged `sha256-H.sig` and its attestations in one tagged `sha256-H.att`
//! (cosign's tag scheme, which every cosign-compatible verifier reads). Each
//! signature is one layer: the simple-signing payload, media type
//! [`SIGNATURE_LAYER`], its signature in the [`SIGNATURE_ANNOTATION`]
//! annotation. Each attestation is one layer: a DSSE envelope, media type
//! [`DSSE_LAYER`], annotated with its predicate type. New signatures are
//! appended to the layers already there, as cosign does.
//!
//! The manifests also carry `subject` (the signed image) and an
//! `artifactType`, so a registry with the OCI 1.1 referrers API indexes them
//! and an OCI layout can hold them as referrers of the image.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::SignError;
use crate::image::oci;
use crate::image::Sha256Digest;

pub const SIGNATURE_LAYER: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
pub const DSSE_LAYER: &str = "application/vnd.dsse.envelope.v1+json";
pub const PREDICATE_TYPE_ANNOTATION: &str = "predicateType";
/// `artifactType` of cosign's signature manifests in OCI 1.1 referrers mode.
pub const SIGNATURE_ARTIFACT: &str = "application/vnd.dev.cosign.artifact.sig.v1+json";
/// `artifactType` given to attestation manifests.
pub const ATTESTATION_ARTIFACT: &str = "application/vnd.dev.cosign.artifact.att.v1+json";

/// Which of the two cosign objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Signatures,
    Attestations,
}

impl Kind {
    /// The tag cosign looks under for the image `digest`.
    pub fn tag(self, digest: Sha256Digest) -> String {
        let suffix = match self {
            Kind::Signatures => "sig",
            Kind::Attestations => "att",
        };
        format!("sha256-{}.{suffix}", digest.to_hex())
    }

    pub fn layer_media_type(self) -> &'static str {
        match self {
            Kind::Signatures => SIGNATURE_LAYER,
            Kind::Attestations => DSSE_LAYER,
        }
    }

    pub fn artifact_type(self) -> &'static str {
        match self {
            Kind::Signatures => SIGNATURE_ARTIFACT,
            Kind::Attestations => ATTESTATION_ARTIFACT,
        }
    }
}

/// A layer of a signature or attestation manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Layer {
    #[serde(rename = "mediaType")]
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl Layer {
    pub fn new(kind: Kind, data: &[u8], annotations: BTreeMap<String, String>) -> Layer {
        Layer {
            media_type: kind.layer_media_type().to_owned(),
            digest: Sha256Digest::of(data).to_string(),
            size: data.len() as u64,
            annotations,
        }
    }
}

#[derive(Debug, Deserialize)]
struct ManifestLayers {
    #[serde(default)]
    layers: Vec<Layer>,
}

/// The layers of a stored signature/attestation manifest.
pub fn layers_of(manifest: &[u8], what: &str) -> Result<Vec<Layer>, SignError> {
    serde_json::from_slice::<ManifestLayers>(manifest)
        .map(|m| m.layers)
        .map_err(|e| SignError::Invalid(format!("{what}: not an image manifest: {e}")))
}

/// The image a signature is about: its manifest's (or index's) descriptor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subject<'a> {
    pub media_type: &'a str,
    pub digest: Sha256Digest,
    pub size: u64,
}

/// A signature or attestation manifest and its config blob, for `layers`
/// about `subject`.
pub fn manifest(kind: Kind, layers: &[Layer], subject: Subject<'_>) -> (Vec<u8>, Vec<u8>) {
    // The config go-containerregistry gives cosign's images: an empty image
    // whose diff_ids are the layers (uncompressed, so their own digests).
    let config = serde_json::json!({
        "architecture": "",
        "config": {},
        "created": "0001-01-01T00:00:00Z",
        "history": layers.iter().map(|_| serde_json::json!({"created": "0001-01-01T00:00:00Z"})).collect::<Vec<_>>(),
        "os": "",
        "rootfs": {"type": "layers", "diff_ids": layers.iter().map(|l| l.digest.clone()).collect::<Vec<_>>()},
    });
    let config = serde_json::to_vec(&config).expect("config serialises");
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": oci::MEDIA_TYPE_MANIFEST,
        "artifactType": kind.artifact_type(),
        "config": {
            "mediaType": oci::MEDIA_TYPE_CONFIG,
            "digest": Sha256Digest::of(&config).to_string(),
            "size": config.len(),
        },
        "layers": layers,
        "subject": {
            "mediaType": subject.media_type,
            "digest": subject.digest.to_string(),
            "size": subject.size,
        },
    });
    (
        serde_json::to_vec(&manifest).expect("manifest serialises"),
        config,
    )
}

/// `layers` plus `new`, unless an identical layer is already there.
pub fn append(mut layers: Vec<Layer>, new: Layer) -> Vec<Layer> {
    if !layers.contains(&new) {
        layers.push(new);
    }
    layers
}

/// The signature layer (and its blob) for `digest` published as `identity`.
pub fn signature_layer(
    key: &p256::ecdsa::SigningKey,
    identity: &str,
    digest: Sha256Digest,
) -> (Layer, Vec<u8>) {
    let payload = super::payload::SimpleSigning::new(identity, digest).to_bytes();
    let signature = super::payload::sign_bytes(key, &payload);
    let layer = Layer::new(
        Kind::Signatures,
        &payload,
        [(SIGNATURE_ANNOTATION.to_owned(), signature)].into(),
    );
    (layer, payload)
}

/// One attestation layer (and its envelope) per predicate.
pub fn attestation_layers(
    key: &p256::ecdsa::SigningKey,
    identity: &str,
    digest: Sha256Digest,
    predicates: &[super::remote::Predicate],
) -> Vec<(Layer, Vec<u8>)> {
    use super::payload::{Envelope, Statement};
    predicates
        .iter()
        .map(|p| {
            let statement =
                Statement::new(identity, digest, &p.predicate_type, p.predicate.clone());
            let statement = serde_json::to_vec(&statement).expect("statement serialises");
            let envelope =
                serde_json::to_vec(&Envelope::sign(key, &statement)).expect("envelope serialises");
            let annotations = [
                (
                    PREDICATE_TYPE_ANNOTATION.to_owned(),
                    p.predicate_type.clone(),
                ),
                // cosign marks attestation layers with an empty signature
                // annotation: the signature is inside the envelope.
                (SIGNATURE_ANNOTATION.to_owned(), String::new()),
            ]
            .into();
            (
                Layer::new(Kind::Attestations, &envelope, annotations),
                envelope,
            )
        })
        .collect()
}

/// Checks signature layers: the signed names of those valid for `key` and
/// `digest` (and `identity`, when given), or why none was.
pub fn check_signatures(
    layers: &[(Layer, Vec<u8>)],
    key: &p256::ecdsa::VerifyingKey,
    identity: Option<&str>,
    digest: Sha256Digest,
    image: &str,
) -> Result<Vec<String>, SignError> {
    use super::payload::{verify_bytes, SimpleSigning};
    let mut names = Vec::new();
    let mut reasons = Vec::new();
    for (layer, data) in layers {
        let checked = layer
            .annotations
            .get(SIGNATURE_ANNOTATION)
            .ok_or_else(|| SignError::BadSignature("annotation missing".into()))
            .and_then(|sig| verify_bytes(key, data, sig))
            .and_then(|()| {
                let signed: SimpleSigning = serde_json::from_slice(data)
                    .map_err(|e| SignError::Invalid(format!("signature payload: {e}")))?;
                let name = signed.critical.identity.docker_reference;
                SimpleSigning::check(data, identity.unwrap_or(&name), digest)?;
                Ok(name)
            });
        match checked {
            Ok(name) => names.push(name),
            Err(e) => reasons.push(format!("{}: {e}", layer.digest)),
        }
    }
    if names.is_empty() {
        return Err(SignError::NotVerified {
            image: image.to_owned(),
            what: "signature",
            reasons,
        });
    }
    Ok(names)
}

/// Checks attestation layers: the predicate types of those signed by `key`
/// about `digest`, or why none was.
pub fn check_attestations(
    layers: &[(Layer, Vec<u8>)],
    key: &p256::ecdsa::VerifyingKey,
    digest: Sha256Digest,
    image: &str,
) -> Result<Vec<String>, SignError> {
    let mut kinds = Vec::new();
    let mut reasons = Vec::new();
    for (layer, data) in layers {
        match super::payload::Envelope::open(data, key)
            .and_then(|s| s.check_subject(digest).map(|()| s))
        {
            Ok(statement) => kinds.push(statement.predicate_type),
            Err(e) => reasons.push(format!("{}: {e}", layer.digest)),
        }
    }
    if kinds.is_empty() {
        return Err(SignError::NotVerified {
            image: image.to_owned(),
            what: "attestation",
            reasons,
        });
    }
    Ok(kinds)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_follow_cosigns_scheme() {
        let d = Sha256Digest::of(b"x");
        assert_eq!(
            Kind::Signatures.tag(d),
            format!("sha256-{}.sig", d.to_hex())
        );
        assert_eq!(
            Kind::Attestations.tag(d),
            format!("sha256-{}.att", d.to_hex())
        );
    }

    #[test]
    fn manifest_lists_layers_with_annotations_and_the_subject() {
        let payload = b"{}";
        let layer = Layer::new(
            Kind::Signatures,
            payload,
            [(SIGNATURE_ANNOTATION.to_owned(), "c2ln".to_owned())].into(),
        );
        let subject = Sha256Digest::of(b"image");
        let (bytes, config) = manifest(
            Kind::Signatures,
            std::slice::from_ref(&layer),
            Subject {
                media_type: oci::MEDIA_TYPE_MANIFEST,
                digest: subject,
                size: 5,
            },
        );
        let m: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(m["layers"][0]["mediaType"], SIGNATURE_LAYER);
        assert_eq!(m["layers"][0]["annotations"][SIGNATURE_ANNOTATION], "c2ln");
        assert_eq!(m["subject"]["digest"], subject.to_string());
        assert_eq!(m["config"]["digest"], Sha256Digest::of(&config).to_string());
        assert_eq!(layers_of(&bytes, "m").unwrap(), vec![layer.clone()]);
        assert_eq!(append(vec![layer.clone()], layer.clone()).len(), 1);
    }
}
