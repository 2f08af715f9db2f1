//! InRelease / Release.gpg verification: keys made in the test with rPGP,
//! plus Debian's real signed InRelease files against the shipped archive keys.

use crate::common::skip::skip;
use std::path::PathBuf;
use std::time::{Duration as StdDuration, SystemTime};

use chrono::{DateTime, Duration, SubsecRound, Utc};
use pgp::composed::{
    ArmorOptions, CleartextSignedMessage, KeyType, SecretKeyParamsBuilder, SignedPublicKey,
    SignedSecretKey, SubkeyParamsBuilder,
};
use pgp::crypto::hash::HashAlgorithm;
use pgp::packet::{
    KeyFlags, PacketTrait, SignatureConfig, SignatureType, Subpacket, SubpacketData,
};
use pgp::ser::Serialize;
use pgp::types::{KeyDetails, Password, PublicKeyTrait, Tag};
use rootstrap::verify::{verify_detached, verify_inrelease, Keyring, VerifyError};

const RELEASE: &str = "Origin: Test\nLabel: Test\nSuite: stable\nCodename: testy\n\
Date: Sat, 21 Nov 2026 09:15:44 UTC\nSHA256:\n 3e498904a30e240573dac8ddac594e6f3e498904a30e240573dac8ddac594e6f 123 main/binary-amd64/Packages\n";

fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(0)
}

fn generate(created: DateTime<Utc>) -> SignedSecretKey {
    generate_typed(created, KeyType::Ed25519Legacy)
}

fn generate_typed(created: DateTime<Utc>, key_type: KeyType) -> SignedSecretKey {
    let mut rng = rand::thread_rng();
    SecretKeyParamsBuilder::default()
        .key_type(key_type)
        .can_certify(true)
        .can_sign(true)
        .primary_user_id("Test Archive <archive@example.org>".into())
        .created_at(created)
        .build()
        .expect("key params")
        .generate(&mut rng)
        .expect("generate key")
        .sign(&mut rng, &Password::empty())
        .expect("self-sign key")
}

fn public(key: &SignedSecretKey) -> SignedPublicKey {
    key.signed_public_key()
}

fn keyring_of(keys: &[&SignedPublicKey]) -> Keyring {
    let mut bytes = Vec::new();
    for key in keys {
        bytes.extend(key.to_bytes().expect("serialize key"));
    }
    Keyring::from_bytes(&bytes).expect("keyring")
}

/// Re-issues the user-id self-signature with a key expiration time, which
/// rPGP's key builder does not emit.
fn with_expiry(key: &SignedSecretKey, lifetime: Duration) -> SignedPublicKey {
    let mut public = public(key);
    let primary = &key.primary_key;
    let mut config = SignatureConfig::v4(
        SignatureType::CertPositive,
        primary.algorithm(),
        HashAlgorithm::Sha256,
    );
    let mut flags = KeyFlags::default();
    flags.set_sign(true);
    flags.set_certify(true);
    config.hashed_subpackets = vec![
        Subpacket::regular(SubpacketData::SignatureCreationTime(
            *primary.public_key().created_at(),
        ))
        .unwrap(),
        Subpacket::regular(SubpacketData::KeyExpirationTime(lifetime)).unwrap(),
        Subpacket::regular(SubpacketData::KeyFlags(flags)).unwrap(),
        Subpacket::regular(SubpacketData::IssuerFingerprint(primary.fingerprint())).unwrap(),
    ];
    let user = &mut public.details.users[0];
    let sig = config
        .sign_certification(
            primary,
            primary.public_key(),
            &Password::empty(),
            Tag::UserId,
            &user.id,
        )
        .expect("certify");
    user.signatures = vec![sig];
    public
}

fn sig_config(
    key: &SignedSecretKey,
    hash: HashAlgorithm,
    typ: SignatureType,
    created: DateTime<Utc>,
) -> SignatureConfig {
    let primary = &key.primary_key;
    let mut config = SignatureConfig::v4(typ, primary.algorithm(), hash);
    config.hashed_subpackets = vec![
        Subpacket::regular(SubpacketData::SignatureCreationTime(created)).unwrap(),
        Subpacket::regular(SubpacketData::IssuerFingerprint(primary.fingerprint())).unwrap(),
    ];
    config.unhashed_subpackets =
        vec![Subpacket::regular(SubpacketData::Issuer(primary.key_id())).unwrap()];
    config
}

fn clearsign_with(
    text: &str,
    key: &SignedSecretKey,
    hash: HashAlgorithm,
    typ: SignatureType,
    created: DateTime<Utc>,
) -> String {
    let config = sig_config(key, hash, typ, created);
    CleartextSignedMessage::new(text, config, &key.primary_key, &Password::empty())
        .expect("clearsign")
        .to_armored_string(ArmorOptions::default())
        .expect("armor")
}

fn clearsign(text: &str, key: &SignedSecretKey) -> String {
    clearsign_with(text, key, HashAlgorithm::Sha256, SignatureType::Text, now())
}

fn detached(data: &[u8], key: &SignedSecretKey, hash: HashAlgorithm) -> pgp::packet::Signature {
    sig_config(key, hash, SignatureType::Binary, now())
        .sign(&key.primary_key, &Password::empty(), data)
        .expect("sign")
}

#[test]
fn good_signature_verifies_and_returns_text() {
    let key = generate(now() - Duration::days(1));
    let keyring = keyring_of(&[&public(&key)]);
    let signed = clearsign(RELEASE, &key);
    let v = verify_inrelease(signed.as_bytes(), &keyring, SystemTime::now()).unwrap();
    assert_eq!(v.text, RELEASE);
    assert_eq!(
        v.signer_fingerprint,
        hex::encode_upper(key.primary_key.fingerprint().as_bytes())
    );
    let age = SystemTime::now().duration_since(v.created).unwrap();
    assert!(age < StdDuration::from_secs(120));
}

#[test]
fn armored_keyring_works_too() {
    let key = generate(now() - Duration::days(1));
    let armored = public(&key)
        .to_armored_string(ArmorOptions::default())
        .unwrap();
    let keyring = Keyring::from_bytes(armored.as_bytes()).unwrap();
    assert_eq!(keyring.len(), 1);
    let signed = clearsign(RELEASE, &key);
    assert!(verify_inrelease(signed.as_bytes(), &keyring, SystemTime::now()).is_ok());
}

#[test]
fn every_single_byte_tamper_of_the_message_fails() {
    let key = generate(now() - Duration::days(1));
    let keyring = keyring_of(&[&public(&key)]);
    let signed = clearsign(RELEASE, &key);
    let start = signed.find("Origin").unwrap();
    let end = signed.find("-----BEGIN PGP SIGNATURE").unwrap();
    for pos in start..end {
        let mut bytes = signed.clone().into_bytes();
        // Skip changes that only touch line-ending/trailing-space
        // normalisation, which the signature deliberately does not cover.
        if matches!(bytes[pos], b'\n' | b' ') {
            continue;
        }
        bytes[pos] ^= 0x01;
        let res = verify_inrelease(&bytes, &keyring, SystemTime::now());
        assert!(res.is_err(), "tamper at byte {pos} was accepted");
    }
}

#[test]
fn tampered_byte_is_a_bad_signature() {
    let key = generate(now() - Duration::days(1));
    let keyring = keyring_of(&[&public(&key)]);
    let signed = clearsign(RELEASE, &key).replace("Suite: stable", "Suite: stabl3");
    let err = verify_inrelease(signed.as_bytes(), &keyring, SystemTime::now()).unwrap_err();
    assert!(matches!(err, VerifyError::BadSignature { .. }), "{err}");
}

#[test]
fn appended_unsigned_text_is_rejected() {
    let key = generate(now() - Duration::days(1));
    let keyring = keyring_of(&[&public(&key)]);
    let signed = format!("{}Origin: Evil\n", clearsign(RELEASE, &key));
    let err = verify_inrelease(signed.as_bytes(), &keyring, SystemTime::now()).unwrap_err();
    assert!(matches!(err, VerifyError::ClearSign(_)), "{err}");
}

#[test]
fn unescaped_dash_line_is_rejected() {
    let key = generate(now() - Duration::days(1));
    let keyring = keyring_of(&[&public(&key)]);
    // Insert an unescaped "-" line into otherwise valid signed text.
    let signed = clearsign(RELEASE, &key).replacen("Origin: Test\n", "Origin: Test\n-x\n", 1);
    let err = verify_inrelease(signed.as_bytes(), &keyring, SystemTime::now()).unwrap_err();
    assert!(err.to_string().contains("dash"), "{err}");
}

#[test]
fn dash_escaped_content_round_trips() {
    let key = generate(now() - Duration::days(1));
    let keyring = keyring_of(&[&public(&key)]);
    let text = "A: b\n-----BEGIN PGP SIGNATURE-----\n- leading\n";
    let signed = clearsign(text, &key);
    assert!(signed.contains("\n- -----BEGIN PGP SIGNATURE-----\n"));
    let v = verify_inrelease(signed.as_bytes(), &keyring, SystemTime::now()).unwrap();
    assert_eq!(v.text, text);
}

#[test]
fn key_not_in_keyring_is_rejected() {
    let trusted = generate(now() - Duration::days(1));
    let stranger = generate(now() - Duration::days(1));
    let keyring = keyring_of(&[&public(&trusted)]);
    let signed = clearsign(RELEASE, &stranger);
    let err = verify_inrelease(signed.as_bytes(), &keyring, SystemTime::now()).unwrap_err();
    assert!(matches!(err, VerifyError::NoValidSignature(_)), "{err}");
    assert!(err.to_string().contains("unknown key"), "{err}");
}

#[test]
fn sha1_signature_does_not_count() {
    // rPGP refuses to make SHA-1 EdDSA signatures, so use RSA here.
    let key = generate_typed(now() - Duration::days(1), KeyType::Rsa(2048));
    let keyring = keyring_of(&[&public(&key)]);
    let signed = clearsign_with(
        RELEASE,
        &key,
        HashAlgorithm::Sha1,
        SignatureType::Text,
        now(),
    );
    let err = verify_inrelease(signed.as_bytes(), &keyring, SystemTime::now()).unwrap_err();
    assert!(err.to_string().contains("weak digest"), "{err}");
}

#[test]
fn binary_class_signature_on_cleartext_is_rejected() {
    let key = generate(now() - Duration::days(1));
    let keyring = keyring_of(&[&public(&key)]);
    let signed = clearsign_with(
        RELEASE,
        &key,
        HashAlgorithm::Sha256,
        SignatureType::Binary,
        now(),
    );
    let err = verify_inrelease(signed.as_bytes(), &keyring, SystemTime::now()).unwrap_err();
    assert!(matches!(err, VerifyError::WrongSignatureClass(_)), "{err}");
}

#[test]
fn expired_key_is_rejected_even_for_signatures_made_before_expiry() {
    let created = now() - Duration::days(10);
    let key = generate(created);
    let expiring = with_expiry(&key, Duration::days(2));
    let keyring = keyring_of(&[&expiring]);
    // Made while the key was valid, verified after it expired (gpgv's EXPKEYSIG).
    let old = clearsign_with(
        RELEASE,
        &key,
        HashAlgorithm::Sha256,
        SignatureType::Text,
        created + Duration::days(1),
    );
    let err = verify_inrelease(old.as_bytes(), &keyring, SystemTime::now()).unwrap_err();
    assert!(err.to_string().contains("expired"), "{err}");
    // Made after expiry.
    let late = clearsign(RELEASE, &key);
    let err = verify_inrelease(late.as_bytes(), &keyring, SystemTime::now()).unwrap_err();
    assert!(err.to_string().contains("expired"), "{err}");
    // The same old signature verifies when judged at a time inside the lifetime.
    let then: SystemTime = (created + Duration::days(1) + Duration::hours(1)).into();
    assert!(verify_inrelease(old.as_bytes(), &keyring, then).is_ok());
}

#[test]
fn good_plus_bad_signature_from_trusted_keys_is_rejected() {
    let a = generate(now() - Duration::days(1));
    let b = generate(now() - Duration::days(1));
    let keyring = keyring_of(&[&public(&a), &public(&b)]);
    let good = clearsign(RELEASE, &a);
    let other = clearsign("something else\n", &b);
    let other_block = &other[other.find("-----BEGIN PGP SIGNATURE").unwrap()..];
    let combined = format!("{good}{other_block}");
    let err = verify_inrelease(combined.as_bytes(), &keyring, SystemTime::now()).unwrap_err();
    assert!(matches!(err, VerifyError::BadSignature { .. }), "{err}");
}

#[test]
fn detached_signature_binary_and_armored() {
    let key = generate(now() - Duration::days(1));
    let keyring = keyring_of(&[&public(&key)]);
    let sig = detached(RELEASE.as_bytes(), &key, HashAlgorithm::Sha256);
    let binary = sig.to_bytes_with_header_for_test();
    let v = verify_detached(RELEASE.as_bytes(), &binary, &keyring, SystemTime::now()).unwrap();
    assert_eq!(
        v.signer_fingerprint,
        hex::encode_upper(key.primary_key.fingerprint().as_bytes())
    );
    let armored = pgp::composed::StandaloneSignature::new(sig)
        .to_armored_string(ArmorOptions::default())
        .unwrap();
    assert!(verify_detached(
        RELEASE.as_bytes(),
        armored.as_bytes(),
        &keyring,
        SystemTime::now()
    )
    .is_ok());
    assert!(verify_detached(b"tampered", armored.as_bytes(), &keyring, SystemTime::now()).is_err());
}

#[test]
fn detached_signature_with_extra_payload_is_rejected() {
    let key = generate(now() - Duration::days(1));
    let keyring = keyring_of(&[&public(&key)]);
    let sig = detached(RELEASE.as_bytes(), &key, HashAlgorithm::Sha256);
    let sig_bytes = sig.to_bytes_with_header_for_test();
    // A public key packet (any non-signature packet) smuggled before,
    // between and after the signatures.
    let payload = {
        let mut buf = Vec::new();
        key.primary_key
            .public_key()
            .to_writer_with_header(&mut buf)
            .unwrap();
        buf
    };
    for layout in [
        [&payload[..], &sig_bytes[..], &[][..]].concat(),
        [&sig_bytes[..], &payload[..], &sig_bytes[..]].concat(),
        [&sig_bytes[..], &payload[..]].concat(),
    ] {
        let err =
            verify_detached(RELEASE.as_bytes(), &layout, &keyring, SystemTime::now()).unwrap_err();
        assert!(matches!(err, VerifyError::ExtraPacket(_)), "{err}");
    }
    // Garbage text outside the armour block.
    let armored = pgp::composed::StandaloneSignature::new(sig)
        .to_armored_string(ArmorOptions::default())
        .unwrap();
    let with_text = format!("{armored}\nextra payload\n");
    assert!(verify_detached(
        RELEASE.as_bytes(),
        with_text.as_bytes(),
        &keyring,
        SystemTime::now()
    )
    .is_err());
}

trait SigBytes {
    fn to_bytes_with_header_for_test(&self) -> Vec<u8>;
}

impl SigBytes for pgp::packet::Signature {
    fn to_bytes_with_header_for_test(&self) -> Vec<u8> {
        let mut buf = Vec::new();
        self.to_writer_with_header(&mut buf).unwrap();
        buf
    }
}

fn generate_with_signing_subkey(created: DateTime<Utc>) -> SignedSecretKey {
    let mut rng = rand::thread_rng();
    SecretKeyParamsBuilder::default()
        .key_type(KeyType::Ed25519Legacy)
        .can_certify(true)
        .can_sign(false)
        .primary_user_id("Test Archive <archive@example.org>".into())
        .created_at(created)
        .subkey(
            SubkeyParamsBuilder::default()
                .key_type(KeyType::Ed25519Legacy)
                .can_sign(true)
                .created_at(created)
                .build()
                .unwrap(),
        )
        .build()
        .expect("key params")
        .generate(&mut rng)
        .expect("generate key")
        .sign(&mut rng, &Password::empty())
        .expect("self-sign key")
}

fn clearsign_by_subkey(text: &str, key: &SignedSecretKey) -> String {
    let sub = &key.secret_subkeys[0].key;
    let mut config =
        SignatureConfig::v4(SignatureType::Text, sub.algorithm(), HashAlgorithm::Sha512);
    config.hashed_subpackets = vec![
        Subpacket::regular(SubpacketData::SignatureCreationTime(now())).unwrap(),
        Subpacket::regular(SubpacketData::IssuerFingerprint(sub.fingerprint())).unwrap(),
    ];
    CleartextSignedMessage::new(text, config, sub, &Password::empty())
        .unwrap()
        .to_armored_string(ArmorOptions::default())
        .unwrap()
}

#[test]
fn signing_subkey_is_accepted_and_reported() {
    let key = generate_with_signing_subkey(now() - Duration::days(1));
    let keyring = keyring_of(&[&public(&key)]);
    let signed = clearsign_by_subkey(RELEASE, &key);
    let v = verify_inrelease(signed.as_bytes(), &keyring, SystemTime::now()).unwrap();
    assert_eq!(
        v.signer_fingerprint,
        hex::encode_upper(key.secret_subkeys[0].key.fingerprint().as_bytes())
    );
}

#[test]
fn primary_without_sign_flag_does_not_count() {
    let key = generate_with_signing_subkey(now() - Duration::days(1));
    let keyring = keyring_of(&[&public(&key)]);
    let signed = clearsign(RELEASE, &key);
    let err = verify_inrelease(signed.as_bytes(), &keyring, SystemTime::now()).unwrap_err();
    assert!(err.to_string().contains("not allowed to sign"), "{err}");
}

#[test]
fn subkey_without_binding_signature_does_not_count() {
    let key = generate_with_signing_subkey(now() - Duration::days(1));
    let mut unbound = public(&key);
    // Swap the real binding for one made over a different subkey.
    let other = generate_with_signing_subkey(now() - Duration::days(1));
    unbound.public_subkeys[0].signatures = public(&other).public_subkeys[0].signatures.clone();
    let keyring = keyring_of(&[&unbound]);
    let signed = clearsign_by_subkey(RELEASE, &key);
    let err = verify_inrelease(signed.as_bytes(), &keyring, SystemTime::now()).unwrap_err();
    assert!(err.to_string().contains("binding"), "{err}");
}

#[test]
fn revoked_key_does_not_count() {
    let key = generate(now() - Duration::days(3));
    let mut revoked = public(&key);
    let primary = &key.primary_key;
    let mut config = SignatureConfig::v4(
        SignatureType::KeyRevocation,
        primary.algorithm(),
        HashAlgorithm::Sha256,
    );
    config.hashed_subpackets = vec![
        Subpacket::regular(SubpacketData::SignatureCreationTime(
            now() - Duration::days(2),
        ))
        .unwrap(),
        Subpacket::regular(SubpacketData::IssuerFingerprint(primary.fingerprint())).unwrap(),
    ];
    let revocation = config
        .sign_key(primary, &Password::empty(), primary.public_key())
        .unwrap();
    revoked.details.revocation_signatures.push(revocation);
    let keyring = keyring_of(&[&revoked]);
    // Even a signature dated before the revocation: no reason given means
    // the key may be compromised.
    let signed = clearsign_with(
        RELEASE,
        &key,
        HashAlgorithm::Sha256,
        SignatureType::Text,
        now() - Duration::days(2) - Duration::hours(1),
    );
    let err = verify_inrelease(signed.as_bytes(), &keyring, SystemTime::now()).unwrap_err();
    assert!(err.to_string().contains("revoked"), "{err}");
}

// ---- real Debian data ---------------------------------------------------

fn repo_path(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(rel)
}

fn debian_keyring(release: &str) -> Keyring {
    let paths: Vec<PathBuf> = ["automatic", "security-automatic", "stable"]
        .iter()
        .map(|k| repo_path(&format!("keys/debian/debian-archive-{release}-{k}.pgp")))
        .collect();
    Keyring::from_paths(&paths).expect("Debian keyring")
}

/// Real InRelease files are not shipped in the repository (their signed text
/// names Debian hosts); .ci/run downloads them from the host's mirror and
/// points ROOTSTRAP_REAL_INRELEASE_DIR at them.
fn real_inrelease(release: &str) -> Option<Vec<u8>> {
    let dir = std::env::var_os("ROOTSTRAP_REAL_INRELEASE_DIR");
    let data =
        dir.and_then(|d| std::fs::read(PathBuf::from(d).join(format!("{release}-InRelease"))).ok());
    if data.is_none() {
        skip(format!(
            "real {release} InRelease: set ROOTSTRAP_REAL_INRELEASE_DIR (.ci/run does)"
        ));
    }
    data
}

fn check_real(release: &str, suite_line: &str) {
    let Some(data) = real_inrelease(release) else {
        return;
    };
    let keyring = debian_keyring(release);
    // Judge at the time the file was published, so the test does not rot
    // when the archive keys eventually expire.
    let at = verify_inrelease(&data, &keyring, SystemTime::now())
        .map(|v| v.created)
        .unwrap_or_else(|e| panic!("{release} InRelease: {e}"));
    let v = verify_inrelease(&data, &keyring, at).unwrap();
    assert!(
        v.text.contains(suite_line),
        "{release}: {suite_line} missing"
    );
    assert!(keyring.fingerprints().iter().any(|fp| fp.len() == 40));

    let mut tampered = data.clone();
    let pos = find(&tampered, suite_line.as_bytes()).unwrap() + suite_line.len() - 1;
    tampered[pos] ^= 0x20;
    let err = verify_inrelease(&tampered, &keyring, at).unwrap_err();
    assert!(matches!(err, VerifyError::BadSignature { .. }), "{err}");

    // The other release's keys alone do not vouch for this file.
    let other = if release == "trixie" {
        "bookworm"
    } else {
        "trixie"
    };
    let other_stable = Keyring::from_path(&repo_path(&format!(
        "keys/debian/debian-archive-{other}-security-automatic.pgp"
    )))
    .unwrap();
    assert!(verify_inrelease(&data, &other_stable, at).is_err());
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[test]
fn real_trixie_inrelease_verifies() {
    check_real("trixie", "Codename: trixie");
}

#[test]
fn real_bookworm_inrelease_verifies() {
    check_real("bookworm", "Codename: bookworm");
}

#[test]
fn shipped_keyrings_all_load() {
    let mut paths = Vec::new();
    for dir in ["keys/debian", "keys/ubuntu"] {
        for entry in std::fs::read_dir(repo_path(dir)).unwrap() {
            paths.push(entry.unwrap().path());
        }
    }
    paths.sort();
    for path in &paths {
        let keyring = Keyring::from_path(path).unwrap_or_else(|e| panic!("{e}"));
        assert!(!keyring.is_empty(), "{}", path.display());
    }
    let all = Keyring::from_paths(&paths).unwrap();
    assert!(all.len() >= paths.len());
}
