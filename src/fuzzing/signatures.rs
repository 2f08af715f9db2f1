//! What `rootstrap verify` reads from a registry or layout that an attacker
//! controls: private/public key files, signature manifests, simple-signing
//! payloads with their signatures, and DSSE attestation envelopes.
use crate::image::Sha256Digest;
use crate::sign::{cosign, keys, payload};

/// The fuzz target: `data` is any input libFuzzer makes.
pub fn run(data: &[u8]) {
    let key = p256::ecdsa::SigningKey::from_slice(&[7u8; 32]).expect("a fixed valid scalar");
    let public = key.verifying_key();
    let digest = Sha256Digest::of(b"image");
    let _ = cosign::layers_of(data, "fuzz");
    let _ = payload::SimpleSigning::check(data, "h/r", digest);
    let _ = payload::verify_bytes(public, b"payload", &String::from_utf8_lossy(data));
    let _ = payload::verify_bytes(public, data, "MEUCIQ==");
    if let Ok(statement) = payload::Envelope::open(data, public) {
        let _ = statement.check_subject(digest);
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = keys::load_private(text, Some(b"pw"), "fuzz");
        let _ = keys::load_private(text, None, "fuzz");
        let _ = keys::load_public(text, "fuzz");
    }
}
