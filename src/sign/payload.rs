//! What gets signed: cosign's "simple signing" payload for an image
//! signature, and in-toto statements in DSSE envelopes for attestations.

use base64::Engine as _;
use p256::ecdsa::signature::{Signer as _, Verifier as _};
use p256::ecdsa::{DerSignature, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

use super::SignError;
use crate::image::Sha256Digest;

/// `critical.type` of a cosign image signature.
pub const SIMPLE_SIGNING_TYPE: &str = "cosign container image signature";
/// DSSE payload type of an in-toto statement.
pub const IN_TOTO_PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";
/// The in-toto statement version cosign's `attest` writes.
pub const IN_TOTO_STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v0.1";

/// The simple-signing payload: which manifest digest, under which name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimpleSigning {
    pub critical: Critical,
    /// cosign writes `null` unless annotations were given.
    pub optional: Option<serde_json::Map<String, serde_json::Value>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Critical {
    pub identity: Identity,
    pub image: ImageClaim,
    #[serde(rename = "type")]
    pub kind: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    #[serde(rename = "docker-reference")]
    pub docker_reference: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageClaim {
    #[serde(rename = "docker-manifest-digest")]
    pub docker_manifest_digest: String,
}

impl SimpleSigning {
    /// The payload for `digest` published as `repository` (`HOST/REPO`,
    /// no tag: cosign signs the repository, the digest pins the content).
    pub fn new(repository: &str, digest: Sha256Digest) -> SimpleSigning {
        SimpleSigning {
            critical: Critical {
                identity: Identity {
                    docker_reference: repository.to_owned(),
                },
                image: ImageClaim {
                    docker_manifest_digest: digest.to_string(),
                },
                kind: SIMPLE_SIGNING_TYPE.to_owned(),
            },
            optional: None,
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a payload always serialises")
    }

    /// Parses a payload and checks it claims `digest` under `repository`.
    pub fn check(bytes: &[u8], repository: &str, digest: Sha256Digest) -> Result<(), SignError> {
        let payload: SimpleSigning = serde_json::from_slice(bytes).map_err(|e| {
            SignError::Invalid(format!("signature payload is not simple signing JSON: {e}"))
        })?;
        if payload.critical.kind != SIMPLE_SIGNING_TYPE {
            return Err(SignError::Invalid(format!(
                "signature payload type {:?}, expected {SIMPLE_SIGNING_TYPE:?}",
                payload.critical.kind
            )));
        }
        if payload.critical.image.docker_manifest_digest != digest.to_string() {
            return Err(SignError::WrongDigest {
                signed: payload.critical.image.docker_manifest_digest,
                image: digest.to_string(),
            });
        }
        if repository_of(&payload.critical.identity.docker_reference) != repository {
            return Err(SignError::WrongReference {
                signed: payload.critical.identity.docker_reference,
                image: repository.to_owned(),
            });
        }
        Ok(())
    }
}

/// The repository a signed `docker-reference` names: cosign writes
/// `HOST/REPO`, sigstore-rs and skopeo may add `:TAG` or `@DIGEST`; the
/// digest claim, not the tag, pins the content.
fn repository_of(reference: &str) -> &str {
    let name = reference
        .split_once('@')
        .map_or(reference, |(name, _)| name);
    let last_slash = name.rfind('/').map_or(0, |i| i + 1);
    match name[last_slash..].rfind(':') {
        Some(i) => &name[..last_slash + i],
        None => name,
    }
}

/// ECDSA P-256 over SHA-256, ASN.1 DER, base64 — cosign's signature encoding.
pub fn sign_bytes(key: &SigningKey, bytes: &[u8]) -> String {
    let signature: DerSignature = key.sign(bytes);
    base64::engine::general_purpose::STANDARD.encode(signature.as_bytes())
}

/// Checks a base64 DER signature over `bytes`.
pub fn verify_bytes(
    key: &VerifyingKey,
    bytes: &[u8],
    signature_b64: &str,
) -> Result<(), SignError> {
    let der = base64::engine::general_purpose::STANDARD
        .decode(signature_b64.trim())
        .map_err(|e| SignError::BadSignature(format!("not base64: {e}")))?;
    let signature = DerSignature::try_from(der.as_slice())
        .map_err(|e| SignError::BadSignature(format!("not an ASN.1 DER ECDSA signature: {e}")))?;
    key.verify(bytes, &signature)
        .map_err(|_| SignError::BadSignature("does not verify with the given public key".into()))
}

/// DSSE's pre-authentication encoding: what a DSSE signature covers.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "DSSEv1 {} {} {} ",
        payload_type.len(),
        payload_type,
        payload.len()
    )
    .into_bytes();
    out.extend_from_slice(payload);
    out
}

/// A DSSE envelope, as cosign stores an attestation.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Envelope {
    #[serde(rename = "payloadType")]
    pub payload_type: String,
    /// Base64 of the statement.
    pub payload: String,
    pub signatures: Vec<EnvelopeSignature>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EnvelopeSignature {
    #[serde(default)]
    pub keyid: String,
    pub sig: String,
}

impl Envelope {
    /// Signs `statement` (in-toto JSON) into an envelope.
    pub fn sign(key: &SigningKey, statement: &[u8]) -> Envelope {
        Envelope {
            payload_type: IN_TOTO_PAYLOAD_TYPE.into(),
            payload: base64::engine::general_purpose::STANDARD.encode(statement),
            signatures: vec![EnvelopeSignature {
                keyid: String::new(),
                sig: sign_bytes(key, &pae(IN_TOTO_PAYLOAD_TYPE, statement)),
            }],
        }
    }

    /// Checks one signature verifies with `key` and returns the statement.
    pub fn open(bytes: &[u8], key: &VerifyingKey) -> Result<Statement, SignError> {
        let envelope: Envelope = serde_json::from_slice(bytes)
            .map_err(|e| SignError::Invalid(format!("attestation is not a DSSE envelope: {e}")))?;
        if envelope.payload_type != IN_TOTO_PAYLOAD_TYPE {
            return Err(SignError::Invalid(format!(
                "attestation payload type {:?}, expected {IN_TOTO_PAYLOAD_TYPE:?}",
                envelope.payload_type
            )));
        }
        let statement = base64::engine::general_purpose::STANDARD
            .decode(&envelope.payload)
            .map_err(|e| SignError::Invalid(format!("attestation payload is not base64: {e}")))?;
        let signed = pae(&envelope.payload_type, &statement);
        let mut last = SignError::BadSignature("the envelope carries no signature".into());
        for signature in &envelope.signatures {
            match verify_bytes(key, &signed, &signature.sig) {
                Ok(()) => {
                    return serde_json::from_slice(&statement).map_err(|e| {
                        SignError::Invalid(format!(
                            "attestation statement is not in-toto JSON: {e}"
                        ))
                    })
                }
                Err(e) => last = e,
            }
        }
        Err(last)
    }
}

/// An in-toto statement about one image.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Statement {
    #[serde(rename = "_type")]
    pub kind: String,
    #[serde(rename = "predicateType")]
    pub predicate_type: String,
    pub subject: Vec<Subject>,
    pub predicate: serde_json::Value,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Subject {
    pub name: String,
    pub digest: std::collections::BTreeMap<String, String>,
}

impl Statement {
    pub fn new(
        repository: &str,
        digest: Sha256Digest,
        predicate_type: &str,
        predicate: serde_json::Value,
    ) -> Statement {
        Statement {
            kind: IN_TOTO_STATEMENT_TYPE.into(),
            predicate_type: predicate_type.into(),
            subject: vec![Subject {
                name: repository.into(),
                digest: [("sha256".to_owned(), digest.to_hex())].into(),
            }],
            predicate,
        }
    }

    /// Checks the statement is about `digest`.
    pub fn check_subject(&self, digest: Sha256Digest) -> Result<(), SignError> {
        let hex = digest.to_hex();
        if self
            .subject
            .iter()
            .any(|s| s.digest.get("sha256") == Some(&hex))
        {
            return Ok(());
        }
        Err(SignError::WrongSubject {
            predicate_type: self.predicate_type.clone(),
            subjects: self
                .subject
                .iter()
                .map(|s| {
                    format!(
                        "{}@sha256:{}",
                        s.name,
                        s.digest.get("sha256").map(String::as_str).unwrap_or("?")
                    )
                })
                .collect::<Vec<_>>()
                .join(", "),
            image: digest.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(byte: u8) -> Sha256Digest {
        Sha256Digest::of(&[byte])
    }

    #[test]
    fn simple_signing_is_cosigns_shape() {
        let p = SimpleSigning::new("127.0.0.1:5000/base", digest(1));
        let json: serde_json::Value = serde_json::from_slice(&p.to_bytes()).unwrap();
        assert_eq!(json["critical"]["type"], SIMPLE_SIGNING_TYPE);
        assert_eq!(
            json["critical"]["identity"]["docker-reference"],
            "127.0.0.1:5000/base"
        );
        assert_eq!(
            json["critical"]["image"]["docker-manifest-digest"],
            digest(1).to_string()
        );
        assert!(json["optional"].is_null());
    }

    #[test]
    fn payload_checks_digest_and_reference() {
        let bytes = SimpleSigning::new("h/r", digest(1)).to_bytes();
        SimpleSigning::check(&bytes, "h/r", digest(1)).unwrap();
        assert!(matches!(
            SimpleSigning::check(&bytes, "h/r", digest(2)),
            Err(SignError::WrongDigest { .. })
        ));
        assert!(matches!(
            SimpleSigning::check(&bytes, "h/other", digest(1)),
            Err(SignError::WrongReference { .. })
        ));
        assert!(SimpleSigning::check(b"{}", "h/r", digest(1)).is_err());
        // A tag or digest in the signed name (sigstore-rs writes the tag).
        for name in ["h:5000/r:1", "h:5000/r", "h:5000/r@sha256:00"] {
            let bytes = SimpleSigning::new(name, digest(1)).to_bytes();
            SimpleSigning::check(&bytes, "h:5000/r", digest(1)).unwrap();
        }
        let bytes = SimpleSigning::new("h:5000/r2:1", digest(1)).to_bytes();
        assert!(SimpleSigning::check(&bytes, "h:5000/r", digest(1)).is_err());
    }

    #[test]
    fn signatures_verify_and_tampering_is_caught() {
        let key = super::super::keys::generate();
        let sig = sign_bytes(&key, b"payload");
        verify_bytes(key.verifying_key(), b"payload", &sig).unwrap();
        assert!(verify_bytes(key.verifying_key(), b"payloaD", &sig).is_err());
        let other = super::super::keys::generate();
        assert!(verify_bytes(other.verifying_key(), b"payload", &sig).is_err());
        assert!(verify_bytes(key.verifying_key(), b"payload", &sig[..sig.len() - 8]).is_err());
        assert!(verify_bytes(key.verifying_key(), b"payload", "***").is_err());
    }

    #[test]
    fn pae_matches_the_dsse_spec_example() {
        // From the DSSE protocol document.
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world".to_vec()
        );
    }

    #[test]
    fn envelopes_open_only_with_the_key_and_check_subject() {
        let key = super::super::keys::generate();
        let statement = Statement::new(
            "h/r",
            digest(1),
            "https://spdx.dev/Document",
            serde_json::json!({}),
        );
        let env = Envelope::sign(&key, &serde_json::to_vec(&statement).unwrap());
        let bytes = serde_json::to_vec(&env).unwrap();
        let opened = Envelope::open(&bytes, key.verifying_key()).unwrap();
        opened.check_subject(digest(1)).unwrap();
        assert!(matches!(
            opened.check_subject(digest(2)),
            Err(SignError::WrongSubject { .. })
        ));
        let other = super::super::keys::generate();
        assert!(Envelope::open(&bytes, other.verifying_key()).is_err());
    }
}
