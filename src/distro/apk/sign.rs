//! apk RSA signatures: `.SIGN.RSA.<key>` (SHA-1), `.SIGN.RSA256.<key>`,
//! `.SIGN.RSA512.<key>`, PKCS#1 v1.5 over the raw compressed bytes of the
//! following gzip member. Keys are trusted by file name, as apk does.

use super::tar::{EntryKind, TarEntry};
use super::ApkError;
use rsa::pkcs8::DecodePublicKey;
use rsa::{Pkcs1v15Sign, RsaPublicKey};
use sha1::Sha1;
use sha2::{Digest, Sha256, Sha512};
use std::collections::BTreeMap;
use std::path::Path;

/// apk refuses signature entries larger than this.
pub const MAX_SIGNATURE_SIZE: u64 = 64 * 1024;

/// Public keys trusted for repository and package signatures, by key name
/// (the file name, e.g. `alpine-devel@lists.alpinelinux.org-6165ee59.rsa.pub`).
#[derive(Debug, Clone, Default)]
pub struct TrustedKeys {
    keys: BTreeMap<String, RsaPublicKey>,
}

impl TrustedKeys {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a PEM SubjectPublicKeyInfo key under `name`.
    pub fn add_pem(&mut self, name: &str, pem: &str) -> Result<(), ApkError> {
        let key = RsaPublicKey::from_public_key_pem(pem.trim()).map_err(|e| ApkError::Key {
            file: name.to_string(),
            reason: e.to_string(),
        })?;
        self.keys.insert(name.to_string(), key);
        Ok(())
    }

    /// Loads every `*.rsa.pub` file of `dir` (e.g. `/etc/apk/keys`, `keys/alpine`).
    pub fn load_dir(dir: &Path) -> Result<Self, ApkError> {
        let io_err = |file: &Path, e: std::io::Error| ApkError::Key {
            file: file.display().to_string(),
            reason: e.to_string(),
        };
        let mut keys = TrustedKeys::new();
        let listing = std::fs::read_dir(dir).map_err(|e| io_err(dir, e))?;
        for item in listing {
            let item = item.map_err(|e| io_err(dir, e))?;
            let name = item.file_name().to_string_lossy().into_owned();
            if !name.ends_with(".rsa.pub") {
                continue;
            }
            let pem = std::fs::read_to_string(item.path()).map_err(|e| io_err(&item.path(), e))?;
            keys.add_pem(&name, &pem)?;
        }
        Ok(keys)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.keys.keys().map(String::as_str)
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// SHA-256 over every key's name, modulus and exponent: changes when the
    /// trusted set does (so cached verification results are not reused).
    pub fn digest(&self) -> String {
        use rsa::traits::PublicKeyParts;
        let mut h = Sha256::new();
        for (name, key) in &self.keys {
            for part in [
                name.as_bytes(),
                &key.n().to_bytes_be(),
                &key.e().to_bytes_be(),
            ] {
                h.update((part.len() as u64).to_le_bytes());
                h.update(part);
            }
        }
        hex::encode(h.finalize())
    }

    fn get(&self, name: &str) -> Option<&RsaPublicKey> {
        self.keys.get(name)
    }
}

/// How a signed object came to be accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trust {
    /// A signature by this trusted key verified.
    Verified { key: String },
    /// Verification failed (reason kept) but the caller allowed untrusted input.
    AllowedUntrusted { reason: String },
}

impl Trust {
    pub fn signer(&self) -> Option<&str> {
        match self {
            Trust::Verified { key } => Some(key),
            Trust::AllowedUntrusted { .. } => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Algorithm {
    Sha1,
    Sha256,
    Sha512,
}

impl Algorithm {
    fn scheme(self) -> Pkcs1v15Sign {
        match self {
            Algorithm::Sha1 => Pkcs1v15Sign::new::<Sha1>(),
            Algorithm::Sha256 => Pkcs1v15Sign::new::<Sha256>(),
            Algorithm::Sha512 => Pkcs1v15Sign::new::<Sha512>(),
        }
    }

    fn digest(self, data: &[u8]) -> Vec<u8> {
        match self {
            Algorithm::Sha1 => Sha1::digest(data).to_vec(),
            Algorithm::Sha256 => Sha256::digest(data).to_vec(),
            Algorithm::Sha512 => Sha512::digest(data).to_vec(),
        }
    }
}

/// `true` if this tar entry list is a signature segment (only `.SIGN.*` files).
pub(crate) fn is_signature_segment(entries: &[TarEntry]) -> bool {
    !entries.is_empty() && entries.iter().all(|e| e.path.starts_with(".SIGN."))
}

/// Verifies the signature segment (`entries` with contents in `buf`) over
/// `signed` (the raw compressed bytes of the next member). Returns the key
/// name whose signature verified. Like apk, signatures by unknown keys or with
/// unknown algorithms are skipped; with no verifying trusted signature it fails.
pub(crate) fn verify_segment(
    what: &str,
    entries: &[TarEntry],
    buf: &[u8],
    signed: &[u8],
    keys: &TrustedKeys,
) -> Result<String, ApkError> {
    let mut untrusted = Vec::new();
    let mut unknown_alg = None;
    let mut bad_key = None;
    for e in entries {
        let size = (e.data.end - e.data.start) as u64;
        if size > MAX_SIGNATURE_SIZE {
            return Err(ApkError::SignatureTooLarge {
                what: what.to_string(),
                entry: e.path.clone(),
                size,
            });
        }
        if e.kind != EntryKind::File {
            return Err(ApkError::format(
                what,
                format!("{} is not a regular file", e.path),
            ));
        }
        let rest = &e.path[".SIGN.".len()..];
        let (alg, key_name) = match rest.split_once('.') {
            Some(("RSA", k)) => (Algorithm::Sha1, k),
            Some(("RSA256", k)) => (Algorithm::Sha256, k),
            Some(("RSA512", k)) => (Algorithm::Sha512, k),
            _ => {
                unknown_alg.get_or_insert_with(|| e.path.clone());
                continue;
            }
        };
        let Some(key) = keys.get(key_name) else {
            untrusted.push(key_name.to_string());
            continue;
        };
        let hashed = alg.digest(signed);
        if key
            .verify(alg.scheme(), &hashed, &buf[e.data.clone()])
            .is_ok()
        {
            return Ok(key_name.to_string());
        }
        bad_key.get_or_insert_with(|| key_name.to_string());
    }
    let what = what.to_string();
    Err(if let Some(key) = bad_key {
        ApkError::BadSignature { what, key }
    } else if let Some(entry) = unknown_alg {
        ApkError::UnknownSignatureAlgorithm { what, entry }
    } else if !untrusted.is_empty() {
        ApkError::UntrustedKey {
            what,
            keys: untrusted,
        }
    } else {
        ApkError::Unsigned { what }
    })
}

/// Applies the allow-untrusted policy to a verification outcome.
pub(crate) fn decide(
    outcome: Result<String, ApkError>,
    allow_untrusted: bool,
) -> Result<Trust, ApkError> {
    match outcome {
        Ok(key) => Ok(Trust::Verified { key }),
        Err(e) if allow_untrusted => Ok(Trust::AllowedUntrusted {
            reason: e.to_string(),
        }),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::distro::apk::tar::{parse_entries, tests::entry};

    fn verify(sig_tar: &[u8]) -> Result<String, ApkError> {
        let entries = parse_entries("t", sig_tar).unwrap();
        verify_segment("t", &entries, sig_tar, b"signed", &TrustedKeys::new())
    }

    #[test]
    fn classifies_signature_failures() {
        let err = verify(&entry(".SIGN.RSA.some.rsa.pub", b'0', b"sig")).unwrap_err();
        assert!(matches!(err, ApkError::UntrustedKey { .. }));
        let err = verify(&entry(".SIGN.DSA.some.rsa.pub", b'0', b"sig")).unwrap_err();
        assert!(matches!(err, ApkError::UnknownSignatureAlgorithm { .. }));
        let big = vec![0u8; MAX_SIGNATURE_SIZE as usize + 1];
        let err = verify(&entry(".SIGN.RSA256.k.rsa.pub", b'0', &big)).unwrap_err();
        assert!(matches!(err, ApkError::SignatureTooLarge { .. }));
        assert!(matches!(
            verify(b"").unwrap_err(),
            ApkError::Unsigned { .. }
        ));
        assert!(matches!(
            decide(Err(ApkError::Unsigned { what: "t".into() }), true),
            Ok(Trust::AllowedUntrusted { .. })
        ));
    }

    #[test]
    fn rejects_malformed_key() {
        let mut keys = TrustedKeys::new();
        assert!(keys.add_pem("x.rsa.pub", "not a pem").is_err());
    }
}
