//! GPG "simple signing" signatures, the scheme skopeo, podman and CRI-O
//! check with a `signedBy` policy (containers/image's
//! `atomic container signature`): an OpenPGP signed message whose literal
//! data is the JSON claim, written to a lookaside directory laid out as
//! containers' `lookaside:` setting reads it
//! (`DIR/REPO@sha256=HEX/signature-N`).

use std::path::{Path, PathBuf};

use pgp::composed::{Deserializable, MessageBuilder, SignedSecretKey};
use pgp::crypto::hash::HashAlgorithm;
use pgp::types::Password;

use super::SignError;
use crate::image::Sha256Digest;

/// `critical.type` of a containers/image signature.
pub const ATOMIC_SIGNATURE_TYPE: &str = "atomic container signature";

/// Reads an ASCII-armoured OpenPGP secret key (`gpg --export-secret-keys
/// --armor`); `password` unlocks a protected one.
pub fn read_secret_key(path: &Path) -> Result<SignedSecretKey, SignError> {
    let bad = |reason: String| SignError::KeyFile {
        path: path.display().to_string(),
        reason,
    };
    let file = std::fs::File::open(path).map_err(|e| bad(e.to_string()))?;
    let (key, _) = SignedSecretKey::from_armor_single(std::io::BufReader::new(file))
        .map_err(|e| bad(format!("not an ASCII-armoured OpenPGP secret key: {e}")))?;
    Ok(key)
}

/// The claim: `docker-reference` is the full name with its tag, which a
/// policy's default `matchRepoDigestOrExact` compares exactly.
fn claim(docker_reference: &str, digest: Sha256Digest) -> Vec<u8> {
    let claim = serde_json::json!({
        "critical": {
            "identity": {"docker-reference": docker_reference},
            "image": {"docker-manifest-digest": digest.to_string()},
            "type": ATOMIC_SIGNATURE_TYPE,
        },
        "optional": {"creator": concat!("rootstrap ", env!("CARGO_PKG_VERSION"))},
    });
    serde_json::to_vec(&claim).expect("claim serialises")
}

/// Signs `digest` as `docker_reference` (`HOST/REPO:TAG`) and writes the
/// signature as the next `signature-N` of the image in `lookaside`.
/// Returns the file written.
pub fn sign_to_lookaside(
    key: &SignedSecretKey,
    password: &[u8],
    docker_reference: &str,
    repository_path: &str,
    digest: Sha256Digest,
    lookaside: &Path,
) -> Result<PathBuf, SignError> {
    let mut builder = MessageBuilder::from_bytes("", claim(docker_reference, digest));
    builder.sign(
        &key.primary_key,
        Password::from(password),
        HashAlgorithm::Sha256,
    );
    let signed = builder
        .to_vec(rand::thread_rng())
        .map_err(|e| SignError::Key(format!("OpenPGP signing failed: {e}")))?;
    let dir = lookaside.join(format!("{repository_path}@sha256={}", digest.to_hex()));
    std::fs::create_dir_all(&dir).map_err(|e| SignError::KeyFile {
        path: dir.display().to_string(),
        reason: e.to_string(),
    })?;
    let mut n = 1;
    loop {
        let path = dir.join(format!("signature-{n}"));
        if !path.exists() {
            crate::cleanup::write_atomically(&path, &signed).map_err(|e| SignError::KeyFile {
                path: path.display().to_string(),
                reason: e.to_string(),
            })?;
            return Ok(path);
        }
        if std::fs::read(&path).ok().as_deref() == Some(&signed[..]) {
            return Ok(path);
        }
        n += 1;
    }
}
