//! Signing images the way cosign does, with a key: signatures and in-toto
//! attestations stored beside the image in its registry (cosign's `.sig` and
//! `.att` tags), readable by cosign and every verifier built on sigstore.

pub mod attest;
pub mod cosign;
pub mod gpg;
pub mod keys;
pub mod layout;
pub mod payload;
pub mod remote;

use std::fmt;

use crate::image::reference::ImageReference;
use crate::image::registry::RegistryError;
use crate::image::Sha256Digest;

#[derive(Debug, thiserror::Error)]
pub enum SignError {
    #[error("{path}: {reason}")]
    KeyFile { path: String, reason: String },
    #[error("{0}")]
    Key(String),
    #[error("{image}: not in the registry")]
    NoImage { image: String },
    #[error("{image}: no {what} found (no {tag} in the registry)")]
    NotSigned {
        image: String,
        what: &'static str,
        tag: String,
    },
    #[error("{image}: no valid {what} by this key{}", reasons_suffix(.reasons))]
    NotVerified {
        image: String,
        what: &'static str,
        reasons: Vec<String>,
    },
    #[error("the signature is for {signed}, not this image's digest {image}")]
    WrongDigest { signed: String, image: String },
    #[error("the signature names the image {signed:?}, not {image:?}")]
    WrongReference { signed: String, image: String },
    #[error("the {predicate_type} attestation is about {subjects}, not {image}")]
    WrongSubject {
        predicate_type: String,
        subjects: String,
        image: String,
    },
    #[error("signature {0}")]
    BadSignature(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}: a registry image to sign or verify is HOST/REPOSITORY[:TAG][@sha256:DIGEST]")]
    BadTarget(String),
    #[error(transparent)]
    Registry(#[from] RegistryError),
}

fn reasons_suffix(reasons: &[String]) -> String {
    if reasons.is_empty() {
        String::new()
    } else {
        format!(": {}", reasons.join("; "))
    }
}

impl SignError {
    /// True when the image simply is not (validly) signed — `verify`'s exit
    /// status 1 — rather than something going wrong (status 2).
    pub fn is_verification_failure(&self) -> bool {
        matches!(
            self,
            SignError::NotSigned { .. }
                | SignError::NotVerified { .. }
                | SignError::WrongDigest { .. }
                | SignError::WrongReference { .. }
                | SignError::WrongSubject { .. }
                | SignError::BadSignature(_)
        )
    }
}

/// A registry image to sign or verify: `HOST/REPO[:TAG][@sha256:…]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub reference: ImageReference,
    /// When given, the digest is signed/verified instead of the tag's.
    pub digest: Option<Sha256Digest>,
}

impl Target {
    pub fn parse(s: &str) -> Result<Target, SignError> {
        let bad = || SignError::BadTarget(s.to_owned());
        let spec = s.strip_prefix("registry:").unwrap_or(s);
        let (name, digest) = match spec.split_once('@') {
            Some((name, digest)) => (name, Some(Sha256Digest::parse(digest).map_err(|_| bad())?)),
            None => (spec, None),
        };
        let reference = ImageReference::parse(name).map_err(|_| bad())?;
        if reference.registry.is_none() {
            return Err(bad());
        }
        Ok(Target { reference, digest })
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.digest {
            Some(d) => write!(
                f,
                "{}/{}@{d}",
                self.reference.registry.as_deref().unwrap_or_default(),
                self.reference.repository
            ),
            None => f.write_str(&self.reference.familiar()),
        }
    }
}

/// The password for an encrypted key: `$COSIGN_PASSWORD`, else `stdin`'s
/// first line when `from_stdin`.
pub fn password(from_stdin: bool) -> Result<Option<Vec<u8>>, SignError> {
    if from_stdin {
        let mut line = String::new();
        std::io::stdin()
            .read_line(&mut line)
            .map_err(|e| SignError::Key(format!("reading the key password from stdin: {e}")))?;
        return Ok(Some(
            line.trim_end_matches(['\r', '\n']).as_bytes().to_vec(),
        ));
    }
    Ok(std::env::var_os(keys::PASSWORD_ENV).map(|v| v.into_encoded_bytes()))
}

/// Reads the private key file at `path`.
pub fn read_private_key(
    path: &std::path::Path,
    password: Option<&[u8]>,
) -> Result<p256::ecdsa::SigningKey, SignError> {
    let text = std::fs::read_to_string(path).map_err(|e| SignError::KeyFile {
        path: path.display().to_string(),
        reason: e.to_string(),
    })?;
    keys::load_private(&text, password, &path.display().to_string())
}

/// Reads the public key file at `path`.
pub fn read_public_key(path: &std::path::Path) -> Result<p256::ecdsa::VerifyingKey, SignError> {
    let text = std::fs::read_to_string(path).map_err(|e| SignError::KeyFile {
        path: path.display().to_string(),
        reason: e.to_string(),
    })?;
    keys::load_public(&text, &path.display().to_string())
}

/// Writes a new key pair as `PREFIX.key` (cosign's encrypted format, mode
/// 0600) and `PREFIX.pub`; refuses to replace either file.
pub fn generate_key_pair(
    prefix: &std::path::Path,
    password: &[u8],
) -> Result<(std::path::PathBuf, std::path::PathBuf), SignError> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let with_ext = |ext: &str| {
        let mut name = prefix.as_os_str().to_owned();
        name.push(ext);
        std::path::PathBuf::from(name)
    };
    let (private, public) = (with_ext(".key"), with_ext(".pub"));
    for path in [&private, &public] {
        if path.symlink_metadata().is_ok() {
            return Err(SignError::KeyFile {
                path: path.display().to_string(),
                reason: "already exists; not replaced".into(),
            });
        }
    }
    let key = keys::generate();
    let private_pem = keys::to_cosign_pem(&key, password)?;
    let public_pem = keys::public_pem(key.verifying_key())?;
    let write = |path: &std::path::Path, text: &str, mode: u32| {
        let io_err = |e: std::io::Error| SignError::KeyFile {
            path: path.display().to_string(),
            reason: e.to_string(),
        };
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(path)
            .map_err(io_err)?;
        file.write_all(text.as_bytes()).map_err(io_err)
    };
    write(&private, &private_pem, 0o600)?;
    if let Err(e) = write(&public, &public_pem, 0o644) {
        let _ = std::fs::remove_file(&private);
        return Err(e);
    }
    Ok((private, public))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_need_a_registry_and_take_a_digest() {
        let d = Sha256Digest::of(b"x");
        let t = Target::parse(&format!("127.0.0.1:5000/base@{d}")).unwrap();
        assert_eq!(t.digest, Some(d));
        assert_eq!(t.to_string(), format!("127.0.0.1:5000/base@{d}"));
        let t = Target::parse("registry:localhost:5000/a/b:1").unwrap();
        assert_eq!(t.reference.tag, "1");
        assert!(Target::parse("base:1").is_err());
        assert!(Target::parse("h:5000/base@sha256:zz").is_err());
    }

    #[test]
    fn a_generated_pair_loads_and_is_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let prefix = dir.path().join("cosign");
        let (private, public) = generate_key_pair(&prefix, b"pw").unwrap();
        let key = read_private_key(&private, Some(b"pw")).unwrap();
        assert_eq!(&read_public_key(&public).unwrap(), key.verifying_key());
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(
            std::fs::metadata(&private).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let err = generate_key_pair(&prefix, b"pw").unwrap_err();
        assert!(err.to_string().contains("already exists"), "{err}");
        assert_eq!(
            read_private_key(&private, Some(b"pw"))
                .unwrap()
                .verifying_key(),
            key.verifying_key()
        );
    }
}
