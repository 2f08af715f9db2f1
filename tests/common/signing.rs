//! An OpenPGP archive key made by the test, to sign fixture InRelease files.

use chrono::{SubsecRound, Utc};
use pgp::composed::{
    ArmorOptions, CleartextSignedMessage, KeyType, SecretKeyParamsBuilder, SignedSecretKey,
};
use pgp::crypto::hash::HashAlgorithm;
use pgp::packet::{SignatureConfig, SignatureType, Subpacket, SubpacketData};
use pgp::types::{KeyDetails, Password};

pub struct ArchiveKey {
    key: SignedSecretKey,
}

impl ArchiveKey {
    pub fn generate() -> ArchiveKey {
        let mut rng = rand::thread_rng();
        let key = SecretKeyParamsBuilder::default()
            .key_type(KeyType::Ed25519Legacy)
            .can_certify(true)
            .can_sign(true)
            .primary_user_id("rootstrap fixture archive <archive@invalid>".into())
            .created_at(Utc::now().trunc_subsecs(0) - chrono::Duration::hours(2))
            .build()
            .expect("key params")
            .generate(&mut rng)
            .expect("generate key")
            .sign(&mut rng, &Password::empty())
            .expect("self-sign key");
        ArchiveKey { key }
    }

    /// The public key, ASCII-armored (what a recipe's `keys` entry points at).
    pub fn public_armored(&self) -> String {
        self.key
            .signed_public_key()
            .to_armored_string(ArmorOptions::default())
            .expect("armor public key")
    }

    /// A clearsigned (InRelease-style) copy of `text`.
    pub fn clearsign(&self, text: &str) -> String {
        let primary = &self.key.primary_key;
        let mut config = SignatureConfig::v4(
            SignatureType::Text,
            primary.algorithm(),
            HashAlgorithm::Sha256,
        );
        config.hashed_subpackets = vec![
            Subpacket::regular(SubpacketData::SignatureCreationTime(
                Utc::now().trunc_subsecs(0) - chrono::Duration::minutes(5),
            ))
            .unwrap(),
            Subpacket::regular(SubpacketData::IssuerFingerprint(primary.fingerprint())).unwrap(),
        ];
        config.unhashed_subpackets =
            vec![Subpacket::regular(SubpacketData::Issuer(primary.key_id())).unwrap()];
        CleartextSignedMessage::new(text, config, primary, &Password::empty())
            .expect("clearsign")
            .to_armored_string(ArmorOptions::default())
            .expect("armor")
    }
}
