//! Signing keys: cosign's encrypted private-key format, plain PKCS#8 PEM,
//! and PKIX public keys — ECDSA P-256, the key type cosign generates.
//!
//! cosign's format (from sigstore's `encrypted` package, which cosign and
//! sigstore-rs share): a PEM block labelled `ENCRYPTED SIGSTORE PRIVATE KEY`
//! (older cosign: `ENCRYPTED COSIGN PRIVATE KEY`) whose body is JSON —
//! scrypt parameters and salt, a NaCl secretbox nonce, and the ciphertext of
//! the PKCS#8 DER key. Written here from those crates' primitives (scrypt,
//! crypto_secretbox) because no maintained crate reads the format without
//! also pulling in an async registry client.

use crypto_secretbox::aead::{Aead, KeyInit};
use p256::ecdsa::{SigningKey, VerifyingKey};
use p256::pkcs8::{
    DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey, LineEnding,
};
use rand_core::{OsRng, RngCore};
use serde::{Deserialize, Serialize};

use super::SignError;

/// PEM label cosign ≥ 2 writes.
pub const SIGSTORE_PEM_LABEL: &str = "ENCRYPTED SIGSTORE PRIVATE KEY";
/// PEM label cosign 1.x wrote; still read.
pub const COSIGN_PEM_LABEL: &str = "ENCRYPTED COSIGN PRIVATE KEY";
/// Environment variable cosign reads the key password from.
pub const PASSWORD_ENV: &str = "COSIGN_PASSWORD";

/// scrypt cost cosign uses (N = 2^15, r = 8, p = 1); 2^16 is also accepted
/// when reading, as sigstore's library does.
const SCRYPT_LOG_N: u8 = 15;
const SCRYPT_R: u32 = 8;
const SCRYPT_P: u32 = 1;
const SALT_LEN: usize = 32;
const NONCE_LEN: usize = 24;

#[derive(Serialize, Deserialize)]
struct Encrypted {
    kdf: Kdf,
    cipher: Cipher,
    #[serde(with = "b64")]
    ciphertext: Vec<u8>,
}

#[derive(Serialize, Deserialize)]
struct Kdf {
    name: String,
    params: KdfParams,
    #[serde(with = "b64")]
    salt: Vec<u8>,
}

#[derive(Serialize, Deserialize)]
struct KdfParams {
    #[serde(rename = "N")]
    n: u64,
    r: u32,
    p: u32,
}

#[derive(Serialize, Deserialize)]
struct Cipher {
    name: String,
    #[serde(with = "b64")]
    nonce: Vec<u8>,
}

mod b64 {
    use base64::Engine as _;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(v))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        base64::engine::general_purpose::STANDARD
            .decode(s)
            .map_err(serde::de::Error::custom)
    }
}

/// A new random P-256 key.
pub fn generate() -> SigningKey {
    SigningKey::random(&mut OsRng)
}

/// The private key in cosign's encrypted PEM format.
pub fn to_cosign_pem(key: &SigningKey, password: &[u8]) -> Result<String, SignError> {
    let der = key
        .to_pkcs8_der()
        .map_err(|e| SignError::Key(format!("encoding the private key: {e}")))?;
    let mut salt = [0u8; SALT_LEN];
    let mut nonce = [0u8; NONCE_LEN];
    OsRng.fill_bytes(&mut salt);
    OsRng.fill_bytes(&mut nonce);
    let box_key = derive(password, &salt, SCRYPT_LOG_N)?;
    let cipher = crypto_secretbox::XSalsa20Poly1305::new((&box_key).into());
    let ciphertext = cipher
        .encrypt((&nonce).into(), der.as_bytes())
        .map_err(|_| SignError::Key("encrypting the private key failed".into()))?;
    let body = serde_json::to_vec(&Encrypted {
        kdf: Kdf {
            name: "scrypt".into(),
            params: KdfParams {
                n: 1 << SCRYPT_LOG_N,
                r: SCRYPT_R,
                p: SCRYPT_P,
            },
            salt: salt.to_vec(),
        },
        cipher: Cipher {
            name: "nacl/secretbox".into(),
            nonce: nonce.to_vec(),
        },
        ciphertext,
    })
    .map_err(|e| SignError::Key(e.to_string()))?;
    pem_rfc7468::encode_string(SIGSTORE_PEM_LABEL, pem_rfc7468::LineEnding::LF, &body)
        .map_err(|e| SignError::Key(format!("encoding the private key: {e}")))
}

/// The public key as a PKIX `PUBLIC KEY` PEM block, as `cosign.pub` holds it.
pub fn public_pem(key: &VerifyingKey) -> Result<String, SignError> {
    key.to_public_key_pem(LineEnding::LF)
        .map_err(|e| SignError::Key(format!("encoding the public key: {e}")))
}

/// Reads a private key: cosign's encrypted format (with `password`) or an
/// unencrypted PKCS#8 / SEC1 PEM. `source` names the file in errors.
pub fn load_private(
    pem: &str,
    password: Option<&[u8]>,
    source: &str,
) -> Result<SigningKey, SignError> {
    let bad = |reason: String| SignError::KeyFile {
        path: source.to_owned(),
        reason,
    };
    let (label, body) = pem_rfc7468::decode_vec(pem.trim().as_bytes())
        .map_err(|e| bad(format!("not a PEM block: {e}")))?;
    match label {
        SIGSTORE_PEM_LABEL | COSIGN_PEM_LABEL => {
            let password = password.ok_or_else(|| {
                bad(format!(
                    "the key is encrypted: set {PASSWORD_ENV} or pass --password-stdin"
                ))
            })?;
            let der = decrypt(&body, password).map_err(bad)?;
            SigningKey::from_pkcs8_der(&der)
                .map_err(|e| bad(format!("not an ECDSA P-256 key: {e}")))
        }
        "PRIVATE KEY" => SigningKey::from_pkcs8_der(&body)
            .map_err(|e| bad(format!("not an ECDSA P-256 PKCS#8 key: {e}"))),
        "EC PRIVATE KEY" => p256::SecretKey::from_sec1_der(&body)
            .map(SigningKey::from)
            .map_err(|e| bad(format!("not a P-256 SEC1 key: {e}"))),
        other => Err(bad(format!(
            "a PEM block labelled {other:?}; expected {SIGSTORE_PEM_LABEL:?} (cosign) or \"PRIVATE KEY\" (PKCS#8)"
        ))),
    }
}

/// Reads a PKIX `PUBLIC KEY` PEM (cosign.pub).
pub fn load_public(pem: &str, source: &str) -> Result<VerifyingKey, SignError> {
    VerifyingKey::from_public_key_pem(pem.trim()).map_err(|e| SignError::KeyFile {
        path: source.to_owned(),
        reason: format!("not an ECDSA P-256 public key in PEM: {e}"),
    })
}

fn decrypt(body: &[u8], password: &[u8]) -> Result<Vec<u8>, String> {
    let data: Encrypted =
        serde_json::from_slice(body).map_err(|e| format!("encrypted key body: {e}"))?;
    if data.kdf.name != "scrypt" || data.cipher.name != "nacl/secretbox" {
        return Err(format!(
            "unsupported key encryption {}/{} (cosign writes scrypt/nacl/secretbox)",
            data.kdf.name, data.cipher.name
        ));
    }
    let log_n = match data.kdf.params.n {
        32768 => 15,
        65536 => 16,
        n => {
            return Err(format!(
                "unexpected scrypt N {n} (cosign uses 32768 or 65536)"
            ))
        }
    };
    if data.kdf.params.r != SCRYPT_R || data.kdf.params.p != SCRYPT_P {
        return Err("unexpected scrypt r/p parameters".into());
    }
    if data.cipher.nonce.len() != NONCE_LEN {
        return Err(format!(
            "nonce of {} bytes, expected {NONCE_LEN}",
            data.cipher.nonce.len()
        ));
    }
    let box_key = derive(password, &data.kdf.salt, log_n).map_err(|e| e.to_string())?;
    let cipher = crypto_secretbox::XSalsa20Poly1305::new((&box_key).into());
    let nonce: [u8; NONCE_LEN] = data
        .cipher
        .nonce
        .as_slice()
        .try_into()
        .expect("length checked");
    cipher
        .decrypt((&nonce).into(), data.ciphertext.as_slice())
        .map_err(|_| "wrong password, or the key file is corrupt".to_owned())
}

fn derive(password: &[u8], salt: &[u8], log_n: u8) -> Result<[u8; 32], SignError> {
    let params = scrypt::Params::new(log_n, SCRYPT_R, SCRYPT_P, 32)
        .map_err(|e| SignError::Key(format!("scrypt parameters: {e}")))?;
    let mut key = [0u8; 32];
    scrypt::scrypt(password, salt, &params, &mut key)
        .map_err(|e| SignError::Key(format!("scrypt: {e}")))?;
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cosign_format_round_trips_and_refuses_a_wrong_password() {
        let key = generate();
        let pem = to_cosign_pem(&key, b"secret").unwrap();
        assert!(pem.starts_with("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n"));
        let back = load_private(&pem, Some(b"secret"), "k").unwrap();
        assert_eq!(back.verifying_key(), key.verifying_key());
        let err = load_private(&pem, Some(b"wrong"), "cosign.key").unwrap_err();
        assert!(err.to_string().contains("cosign.key"), "{err}");
        assert!(err.to_string().contains("wrong password"), "{err}");
        let err = load_private(&pem, None, "cosign.key").unwrap_err();
        assert!(err.to_string().contains(PASSWORD_ENV), "{err}");
    }

    #[test]
    fn pkcs8_and_public_pem_load() {
        let key = generate();
        let pem = key.to_pkcs8_pem(LineEnding::LF).unwrap();
        let back = load_private(&pem, None, "k").unwrap();
        assert_eq!(back.verifying_key(), key.verifying_key());
        let public = public_pem(key.verifying_key()).unwrap();
        assert_eq!(&load_public(&public, "p").unwrap(), key.verifying_key());
    }

    #[test]
    fn garbage_keys_are_named_errors() {
        for text in [
            "",
            "-----BEGIN PRIVATE KEY-----\n!!!\n-----END PRIVATE KEY-----\n",
            "-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n",
            "-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\ne30=\n-----END ENCRYPTED SIGSTORE PRIVATE KEY-----\n",
            "-----BEGIN PRIVATE KEY-----\nAAAA\n",
        ] {
            let err = load_private(text, Some(b""), "bad.key").unwrap_err();
            assert!(err.to_string().starts_with("bad.key"), "{err}");
        }
        assert!(load_public("nope", "bad.pub")
            .unwrap_err()
            .to_string()
            .contains("bad.pub"));
    }
}
