//! OpenPGP verification of Debian/Ubuntu `InRelease` (clearsigned) and
//! `Release` + `Release.gpg` (detached), with apt's acceptance policy:
//! at least one good signature from a keyring key that is valid (not expired,
//! not revoked, allowed to sign), made with a strong hash, and no bad
//! signature from any keyring key.

use std::fmt;
use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use ::pgp::armor::{BlockType, Dearmor};
use ::pgp::composed::{Deserializable, SignedPublicKey, SignedPublicSubKey};
use ::pgp::crypto::hash::HashAlgorithm;
use ::pgp::packet::{self, Packet, PacketParser, PacketTrait, RevocationCode, SignatureType};
use ::pgp::types::{KeyDetails as _, PublicKeyTrait, Tag};
use chrono::{DateTime, Utc};

use super::clearsign::{split_clearsigned, ClearSignError};

/// Upper bound on a keyring or signature input we are willing to parse.
const MAX_PGP_INPUT: usize = 16 * 1024 * 1024;

/// Trusted public keys (the `Signed-By` set of a repository).
#[derive(Clone, Default)]
pub struct Keyring {
    keys: Vec<SignedPublicKey>,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.fingerprints()).finish()
    }
}

/// A successfully verified clearsigned file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The signed message (dash-escaping removed, `\n` line ends).
    pub text: String,
    /// Upper-case hex fingerprint of the key (primary or subkey) that made
    /// the accepted signature.
    pub signer_fingerprint: String,
    /// Creation time of the accepted signature.
    pub created: SystemTime,
}

/// A successfully verified detached signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DetachedVerified {
    pub signer_fingerprint: String,
    pub created: SystemTime,
}

#[derive(Debug, thiserror::Error)]
pub enum KeyringError {
    #[error("cannot read keyring {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("keyring {origin}: {message}")]
    Parse { origin: String, message: String },
    #[error("keyring {origin} contains no public key")]
    Empty { origin: String },
}

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error(transparent)]
    ClearSign(#[from] ClearSignError),
    #[error("malformed signature: {0}")]
    MalformedSignature(String),
    #[error("signature contains a {0:?} packet; only signature packets are allowed")]
    ExtraPacket(Tag),
    #[error(
        "signature of class {0:?} is not acceptable here (clearsigned text needs a text signature)"
    )]
    WrongSignatureClass(SignatureType),
    #[error("BAD signature from key {fingerprint}: {reason}")]
    BadSignature { fingerprint: String, reason: String },
    #[error("no valid signature from a trusted key: {}", summary(.0))]
    NoValidSignature(Vec<String>),
}

fn summary(reasons: &[String]) -> String {
    if reasons.is_empty() {
        "the file carries no signature".to_string()
    } else {
        reasons.join("; ")
    }
}

impl Keyring {
    /// Loads and merges keyrings: binary (`.gpg`, `.pgp`: concatenated
    /// transferable public keys) or ASCII-armoured (`.asc`, one or more
    /// blocks). The format is detected from the content, not the name.
    pub fn from_paths(paths: &[PathBuf]) -> Result<Keyring, KeyringError> {
        let mut keyring = Keyring::default();
        for path in paths {
            let bytes = std::fs::read(path).map_err(|source| KeyringError::Read {
                path: path.clone(),
                source,
            })?;
            keyring
                .keys
                .extend(parse_keys(&bytes, &path.display().to_string())?);
        }
        Ok(keyring)
    }

    /// Parses one keyring from memory.
    pub fn from_bytes(bytes: &[u8]) -> Result<Keyring, KeyringError> {
        Ok(Keyring {
            keys: parse_keys(bytes, "<memory>")?,
        })
    }

    /// Convenience for a single file.
    pub fn from_path(path: &Path) -> Result<Keyring, KeyringError> {
        Self::from_paths(&[path.to_path_buf()])
    }

    /// Upper-case hex fingerprints of the primary keys.
    pub fn fingerprints(&self) -> Vec<String> {
        self.keys
            .iter()
            .map(|k| fingerprint_hex(&k.primary_key))
            .collect()
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

fn parse_keys(bytes: &[u8], origin: &str) -> Result<Vec<SignedPublicKey>, KeyringError> {
    let parse_err = |message: String| KeyringError::Parse {
        origin: origin.to_string(),
        message,
    };
    if bytes.len() > MAX_PGP_INPUT {
        return Err(parse_err(format!("larger than {MAX_PGP_INPUT} bytes")));
    }
    let first = bytes
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .ok_or_else(|| KeyringError::Empty {
            origin: origin.to_string(),
        })?;
    let binary_blobs = if first & 0x80 != 0 {
        vec![bytes.to_vec()]
    } else {
        let text = std::str::from_utf8(bytes)
            .map_err(|_| parse_err("armoured keyring is not UTF-8".into()))?;
        armor_blocks(text, "PUBLIC KEY BLOCK")
            .map_err(parse_err)?
            .into_iter()
            .map(|block| dearmor(&block, BlockType::PublicKey).map_err(parse_err))
            .collect::<Result<Vec<_>, _>>()?
    };
    let mut keys = Vec::new();
    for blob in binary_blobs {
        let parsed = SignedPublicKey::from_bytes_many(Cursor::new(blob))
            .map_err(|e| parse_err(e.to_string()))?;
        for key in parsed {
            keys.push(key.map_err(|e| parse_err(e.to_string()))?);
        }
    }
    if keys.is_empty() {
        return Err(KeyringError::Empty {
            origin: origin.to_string(),
        });
    }
    Ok(keys)
}

/// Splits text into ASCII-armour blocks of the given label. Text outside
/// the blocks other than whitespace is an error: it would be unverified
/// payload.
fn armor_blocks(text: &str, label: &str) -> Result<Vec<String>, String> {
    let begin = format!("-----BEGIN PGP {label}-----");
    let end = format!("-----END PGP {label}-----");
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for (index, raw) in text.split('\n').enumerate() {
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        match current.as_mut() {
            None if line == begin => current = Some(format!("{line}\n")),
            None if line.trim().is_empty() => {}
            None => return Err(format!("line {}: text outside an armour block", index + 1)),
            Some(block) => {
                block.push_str(line);
                block.push('\n');
                if line == end {
                    blocks.extend(current.take());
                }
            }
        }
    }
    if current.is_some() {
        return Err(format!("armour block without {end:?}"));
    }
    if blocks.is_empty() {
        return Err(format!("no {begin:?} block"));
    }
    Ok(blocks)
}

fn dearmor(block: &str, expected: BlockType) -> Result<Vec<u8>, String> {
    let mut reader = Dearmor::with_limit(block.as_bytes(), MAX_PGP_INPUT);
    let mut out = Vec::new();
    std::io::Read::read_to_end(&mut reader, &mut out).map_err(|e| format!("bad armour: {e}"))?;
    match reader.typ {
        Some(typ) if typ == expected => Ok(out),
        other => Err(format!(
            "armour block type {other:?}, expected {expected:?}"
        )),
    }
}

/// Parses binary signature data: every packet must be a signature
/// (CVE-2019-3462 hardening: no payload smuggled next to signatures).
fn parse_signature_packets(data: &[u8]) -> Result<Vec<packet::Signature>, VerifyError> {
    let mut sigs = Vec::new();
    for packet in PacketParser::new(Cursor::new(data)) {
        match packet.map_err(|e| VerifyError::MalformedSignature(e.to_string()))? {
            Packet::Signature(sig) => sigs.push(sig),
            other => return Err(VerifyError::ExtraPacket(other.tag())),
        }
    }
    if sigs.is_empty() {
        return Err(VerifyError::MalformedSignature(
            "no signature packet".into(),
        ));
    }
    Ok(sigs)
}

fn signatures_from_armor(text: &str) -> Result<Vec<packet::Signature>, VerifyError> {
    let mut sigs = Vec::new();
    for block in armor_blocks(text, "SIGNATURE").map_err(VerifyError::MalformedSignature)? {
        let binary =
            dearmor(&block, BlockType::Signature).map_err(VerifyError::MalformedSignature)?;
        sigs.extend(parse_signature_packets(&binary)?);
    }
    Ok(sigs)
}

/// Verifies a clearsigned `InRelease` file against `keyring` at time `now`.
pub fn verify_inrelease(
    data: &[u8],
    keyring: &Keyring,
    now: SystemTime,
) -> Result<Verified, VerifyError> {
    let split = split_clearsigned(data)?;
    let mut sigs = Vec::new();
    for block in &split.signature_blocks {
        sigs.extend(signatures_from_armor(block)?);
    }
    // A binary-class signature over the cleartext is how CVE-2013-1051-style
    // confusion starts; refuse the whole file rather than skip it.
    if let Some(sig) = sigs.iter().find(|s| s.typ() != Some(SignatureType::Text)) {
        return Err(VerifyError::WrongSignatureClass(
            sig.typ().unwrap_or(SignatureType::Binary),
        ));
    }
    let (signer_fingerprint, created) = accept(&sigs, &split.signed_data, keyring, now)?;
    Ok(Verified {
        text: split.text,
        signer_fingerprint,
        created,
    })
}

/// Verifies `data` (e.g. a `Release` file) against a detached signature
/// (`Release.gpg`), armoured or binary.
pub fn verify_detached(
    data: &[u8],
    signature: &[u8],
    keyring: &Keyring,
    now: SystemTime,
) -> Result<DetachedVerified, VerifyError> {
    if signature.len() > MAX_PGP_INPUT {
        return Err(VerifyError::MalformedSignature(
            "signature too large".into(),
        ));
    }
    let sigs = match signature.first() {
        Some(b) if b & 0x80 != 0 => parse_signature_packets(signature)?,
        Some(_) => {
            let text = std::str::from_utf8(signature)
                .map_err(|_| VerifyError::MalformedSignature("armour is not UTF-8".into()))?;
            signatures_from_armor(text)?
        }
        None => return Err(VerifyError::MalformedSignature("empty signature".into())),
    };
    if let Some(sig) = sigs.iter().find(|s| {
        !matches!(
            s.typ(),
            Some(SignatureType::Binary) | Some(SignatureType::Text)
        )
    }) {
        return Err(VerifyError::WrongSignatureClass(
            sig.typ().unwrap_or(SignatureType::Standalone),
        ));
    }
    let (signer_fingerprint, created) = accept(&sigs, data, keyring, now)?;
    Ok(DetachedVerified {
        signer_fingerprint,
        created,
    })
}

/// apt's rule: ≥1 good signature from a valid trusted key, no bad one.
fn accept(
    sigs: &[packet::Signature],
    data: &[u8],
    keyring: &Keyring,
    now: SystemTime,
) -> Result<(String, SystemTime), VerifyError> {
    let now: DateTime<Utc> = now.into();
    let mut accepted = None;
    let mut reasons = Vec::new();
    for sig in sigs {
        match judge(sig, data, keyring, now) {
            Judgement::Good {
                fingerprint,
                created,
            } => {
                accepted.get_or_insert((fingerprint, created.into()));
            }
            Judgement::Bad {
                fingerprint,
                reason,
            } => {
                return Err(VerifyError::BadSignature {
                    fingerprint,
                    reason,
                })
            }
            Judgement::NotCounted(reason) => reasons.push(reason),
        }
    }
    accepted.ok_or(VerifyError::NoValidSignature(reasons))
}

enum Judgement {
    Good {
        fingerprint: String,
        created: DateTime<Utc>,
    },
    Bad {
        fingerprint: String,
        reason: String,
    },
    NotCounted(String),
}

fn judge(sig: &packet::Signature, data: &[u8], keyring: &Keyring, now: DateTime<Utc>) -> Judgement {
    let issuer = issuer_label(sig);
    let Some(hash) = sig.hash_alg() else {
        return Judgement::NotCounted(format!("signature by {issuer} has an unknown format"));
    };
    if !is_strong_hash(hash) {
        return Judgement::NotCounted(format!(
            "signature by {issuer} uses the weak digest {hash:?}"
        ));
    }
    let Some(created) = sig.created().copied() else {
        return Judgement::NotCounted(format!("signature by {issuer} has no creation time"));
    };
    if let Some(validity) = sig.signature_expiration_time() {
        if validity.num_seconds() > 0 && created + *validity <= now {
            return Judgement::NotCounted(format!("signature by {issuer} has expired"));
        }
    }
    let candidates = signing_candidates(sig, keyring);
    if candidates.is_empty() {
        return Judgement::NotCounted(format!("signature by unknown key {issuer}"));
    }
    let has_issuer = !sig.issuer().is_empty() || !sig.issuer_fingerprint().is_empty();
    let mut last_failure = None;
    for candidate in candidates {
        let fingerprint = candidate.fingerprint();
        if let Err(e) = candidate.verify(sig, data) {
            last_failure = Some((fingerprint, e.to_string()));
            continue;
        }
        return match candidate.validity_at(created, now) {
            Ok(()) => Judgement::Good {
                fingerprint,
                created,
            },
            Err(why) => Judgement::NotCounted(format!("signature by {fingerprint}: {why}")),
        };
    }
    match last_failure {
        // A signature naming a trusted key that does not verify is a BADSIG:
        // fail closed.
        Some((fingerprint, reason)) if has_issuer => Judgement::Bad {
            fingerprint,
            reason,
        },
        _ => Judgement::NotCounted(format!("signature by {issuer} matches no trusted key")),
    }
}

fn is_strong_hash(hash: HashAlgorithm) -> bool {
    matches!(
        hash,
        HashAlgorithm::Sha224
            | HashAlgorithm::Sha256
            | HashAlgorithm::Sha384
            | HashAlgorithm::Sha512
            | HashAlgorithm::Sha3_256
            | HashAlgorithm::Sha3_512
    )
}

fn issuer_label(sig: &packet::Signature) -> String {
    if let Some(fp) = sig.issuer_fingerprint().first() {
        return hex::encode_upper(fp.as_bytes());
    }
    if let Some(id) = sig.issuer().first() {
        return hex::encode_upper(id.as_ref());
    }
    "<no issuer>".to_string()
}

fn fingerprint_hex(key: &impl PublicKeyTrait) -> String {
    hex::encode_upper(key.fingerprint().as_bytes())
}

/// A key (primary or subkey) that might have made a signature, with the
/// certificate it belongs to.
struct Candidate<'a> {
    cert: &'a SignedPublicKey,
    subkey: Option<&'a SignedPublicSubKey>,
}

impl Candidate<'_> {
    fn fingerprint(&self) -> String {
        match self.subkey {
            Some(sub) => fingerprint_hex(&sub.key),
            None => fingerprint_hex(&self.cert.primary_key),
        }
    }

    fn verify(&self, sig: &packet::Signature, data: &[u8]) -> Result<(), ::pgp::errors::Error> {
        match self.subkey {
            Some(sub) => sig.verify(&sub.key, data),
            None => sig.verify(&self.cert.primary_key, data),
        }
    }

    /// Is this key allowed to have made a signature at `created`, judged at
    /// `now`? Like gpgv, a key expired by now does not count (EXPKEYSIG).
    fn validity_at(&self, created: DateTime<Utc>, now: DateTime<Utc>) -> Result<(), String> {
        let primary = &self.cert.primary_key;
        let self_sigs = valid_self_signatures(self.cert);
        if self_sigs.is_empty() {
            return Err("primary key has no valid self-signature".into());
        }
        check_revocations(
            self.cert
                .details
                .revocation_signatures
                .iter()
                .filter(|r| r.verify_key(primary).is_ok()),
            created,
            "key",
        )?;
        let primary_expiry = self_sigs
            .iter()
            .filter_map(|s| s.key_expiration_time())
            .filter(|d| d.num_seconds() > 0)
            .max()
            .map(|d| *primary.created_at() + *d);
        check_lifetime(*primary.created_at(), primary_expiry, created, now, "key")?;

        match self.subkey {
            None => {
                let flags_known = self_sigs.iter().any(|s| has_any_flag(s));
                if flags_known && !self_sigs.iter().any(|s| s.key_flags().sign()) {
                    return Err("primary key is not allowed to sign".into());
                }
                Ok(())
            }
            Some(sub) => {
                let binding = latest_valid_binding(self.cert, sub)
                    .ok_or("subkey has no valid binding signature")?;
                if !binding.key_flags().sign() {
                    return Err("subkey is not allowed to sign".into());
                }
                check_revocations(
                    sub.signatures.iter().filter(|s| {
                        s.typ() == Some(SignatureType::SubkeyRevocation)
                            && s.verify_subkey_binding(primary, &sub.key).is_ok()
                    }),
                    created,
                    "subkey",
                )?;
                let expiry = binding
                    .key_expiration_time()
                    .filter(|d| d.num_seconds() > 0)
                    .map(|d| *sub.key.created_at() + *d);
                check_lifetime(*sub.key.created_at(), expiry, created, now, "subkey")
            }
        }
    }
}

fn has_any_flag(sig: &packet::Signature) -> bool {
    let f = sig.key_flags();
    f.sign() || f.certify() || f.encrypt_comms() || f.encrypt_storage() || f.authentication()
}

fn check_lifetime(
    key_created: DateTime<Utc>,
    expiry: Option<DateTime<Utc>>,
    sig_created: DateTime<Utc>,
    now: DateTime<Utc>,
    what: &str,
) -> Result<(), String> {
    if sig_created < key_created {
        return Err(format!("signature predates its {what}"));
    }
    if let Some(expiry) = expiry {
        if sig_created >= expiry {
            return Err(format!("{what} had expired ({expiry}) when it signed"));
        }
        if now >= expiry {
            return Err(format!("{what} expired on {expiry}"));
        }
    }
    Ok(())
}

/// A revocation for "superseded"/"retired" only invalidates signatures made
/// after it; any other reason (compromise, none given) invalidates all.
fn check_revocations<'a>(
    revocations: impl Iterator<Item = &'a packet::Signature>,
    sig_created: DateTime<Utc>,
    what: &str,
) -> Result<(), String> {
    for rev in revocations {
        let soft = matches!(
            rev.revocation_reason_code(),
            Some(RevocationCode::KeySuperseded) | Some(RevocationCode::KeyRetired)
        );
        let effective_before = match (soft, rev.created()) {
            (true, Some(at)) => sig_created < *at,
            _ => false,
        };
        if !effective_before {
            return Err(format!("{what} is revoked"));
        }
    }
    Ok(())
}

fn valid_self_signatures(cert: &SignedPublicKey) -> Vec<&packet::Signature> {
    let primary = &cert.primary_key;
    let primary_id = primary.key_id();
    let primary_fp = primary.fingerprint();
    let by_primary = |s: &packet::Signature| {
        s.issuer().iter().any(|id| **id == primary_id)
            || s.issuer_fingerprint().iter().any(|fp| **fp == primary_fp)
    };
    let mut out = Vec::new();
    for user in &cert.details.users {
        for sig in user.signatures.iter().filter(|s| by_primary(s)) {
            if sig
                .verify_certification(primary, Tag::UserId, &user.id)
                .is_ok()
            {
                out.push(sig);
            }
        }
    }
    for sig in cert
        .details
        .direct_signatures
        .iter()
        .filter(|s| by_primary(s))
    {
        if sig.verify_key(primary).is_ok() {
            out.push(sig);
        }
    }
    out
}

fn latest_valid_binding<'a>(
    cert: &SignedPublicKey,
    sub: &'a SignedPublicSubKey,
) -> Option<&'a packet::Signature> {
    let primary = &cert.primary_key;
    sub.signatures
        .iter()
        .filter(|s| s.typ() == Some(SignatureType::SubkeyBinding))
        .filter(|s| s.verify_subkey_binding(primary, &sub.key).is_ok())
        .filter(|s| {
            // A signing subkey must prove it consents (back-signature).
            !s.key_flags().sign()
                || s.embedded_signature()
                    .is_some_and(|b| b.verify_primary_key_binding(&sub.key, primary).is_ok())
        })
        .max_by_key(|s| s.created().copied())
}

fn signing_candidates<'a>(sig: &packet::Signature, keyring: &'a Keyring) -> Vec<Candidate<'a>> {
    let ids = sig.issuer();
    let fps = sig.issuer_fingerprint();
    let anonymous = ids.is_empty() && fps.is_empty();
    let matches = |key: &dyn PublicKeyTrait| {
        anonymous
            || ids.iter().any(|id| **id == key.key_id())
            || fps.iter().any(|fp| **fp == key.fingerprint())
    };
    let mut out = Vec::new();
    for cert in &keyring.keys {
        if matches(&cert.primary_key) {
            out.push(Candidate { cert, subkey: None });
        }
        for sub in &cert.public_subkeys {
            if matches(&sub.key) {
                out.push(Candidate {
                    cert,
                    subkey: Some(sub),
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn armor_blocks_reject_text_outside() {
        let block = "-----BEGIN PGP SIGNATURE-----\n\nAAAA\n-----END PGP SIGNATURE-----\n";
        assert_eq!(armor_blocks(block, "SIGNATURE").unwrap().len(), 1);
        let two = format!("{block}\n{block}");
        assert_eq!(armor_blocks(&two, "SIGNATURE").unwrap().len(), 2);
        assert!(armor_blocks(&format!("junk\n{block}"), "SIGNATURE").is_err());
        assert!(armor_blocks(&format!("{block}junk\n"), "SIGNATURE").is_err());
        assert!(armor_blocks("", "SIGNATURE").is_err());
    }

    #[test]
    fn weak_hashes_are_not_strong() {
        for weak in [
            HashAlgorithm::Md5,
            HashAlgorithm::Sha1,
            HashAlgorithm::Ripemd160,
        ] {
            assert!(!is_strong_hash(weak));
        }
        assert!(is_strong_hash(HashAlgorithm::Sha256));
        assert!(is_strong_hash(HashAlgorithm::Sha512));
    }

    #[test]
    fn empty_and_garbage_keyrings_are_errors() {
        assert!(matches!(
            Keyring::from_bytes(b"  \n"),
            Err(KeyringError::Empty { .. })
        ));
        assert!(Keyring::from_bytes(b"hello").is_err());
        assert!(Keyring::from_bytes(&[0x99, 0x01]).is_err());
    }

    #[test]
    fn detached_rejects_non_signature_packets() {
        // A literal data packet (tag 11, old format, length 3): "b" mode,
        // empty name... truncated body makes it malformed or extra: either
        // way not accepted.
        let literal = [0xac, 0x06, b'b', 0, 0, 0, 0, 0];
        let kr = Keyring::default();
        let err = verify_detached(b"x", &literal, &kr, SystemTime::now()).unwrap_err();
        assert!(
            matches!(
                err,
                VerifyError::ExtraPacket(_) | VerifyError::MalformedSignature(_)
            ),
            "{err}"
        );
    }
}
