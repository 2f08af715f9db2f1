//! cosign-interop: checks and makes cosign key-based signatures with the
//! sigstore crate, against a registry on plain HTTP (127.0.0.1).
//!
//!   cosign-interop verify IMAGE PUBKEY             exit 0 when a signature verifies
//!   cosign-interop sign IMAGE KEY                  cosign-format key, $COSIGN_PASSWORD
//!   cosign-interop verify-attestations IMAGE PUBKEY  prints each valid predicateType
//!
//! Exit status: 0 verified, 1 not verified, 2 error.

use base64::Engine as _;
use sigstore::cosign::verification_constraint::{PublicKeyVerifier, VerificationConstraintVec};
use sigstore::cosign::{CosignCapabilities, SignatureLayer};
use sigstore::crypto::{CosignVerificationKey, Signature, SigningScheme};
use sigstore::registry::{Auth, ClientConfig, ClientProtocol, OciReference};

fn client() -> anyhow::Result<sigstore::cosign::Client> {
    let config = ClientConfig {
        protocol: ClientProtocol::Http,
        ..Default::default()
    };
    Ok(sigstore::cosign::ClientBuilder::default()
        .with_oci_client_config(config)
        .build()?)
}

async fn verify(image: &str, pubkey: &str) -> anyhow::Result<bool> {
    let image: OciReference = image.parse()?;
    let key = std::fs::read(pubkey)?;
    let mut client = client()?;
    let layers = client.trusted_signature_layers(&Auth::Anonymous, &image).await?;
    println!("{} signature layer(s) found", layers.len());
    let verifier = PublicKeyVerifier::try_from(&key)?;
    let constraints: VerificationConstraintVec = vec![Box::new(verifier)];
    match sigstore::cosign::verify_constraints(&layers, constraints.iter()) {
        Ok(()) => {
            for l in &layers {
                println!(
                    "verified: {} signed as {}",
                    l.simple_signing.critical.image.docker_manifest_digest,
                    l.simple_signing.critical.identity.docker_reference
                );
            }
            Ok(true)
        }
        Err(e) => {
            println!("not verified: {e:?}");
            Ok(false)
        }
    }
}

async fn sign(image: &str, key_file: &str) -> anyhow::Result<()> {
    let image: OciReference = image.parse()?;
    let mut client = client()?;
    let (signature_image, digest) = client.triangulate(&image, &Auth::Anonymous).await?;
    let mut layer = SignatureLayer::new_unsigned(&image, &digest)?;
    let password = std::env::var("COSIGN_PASSWORD").unwrap_or_default();
    let pem = std::fs::read(key_file)?;
    let pair = sigstore::crypto::signing_key::SigStoreKeyPair::from_encrypted_pem(&pem, password.as_bytes())?;
    let signer = pair.to_sigstore_signer(&SigningScheme::ECDSA_P256_SHA256_ASN1)?;
    let signer = sigstore::cosign::constraint::PrivateKeySigner::new_with_signer(signer);
    use sigstore::cosign::Constraint as _;
    signer.add_constraint(&mut layer)?;
    client
        .push_signature(None, &Auth::Anonymous, &signature_image, vec![layer])
        .await?;
    println!("signed {digest} as {signature_image}");
    Ok(())
}

/// DSSE's pre-authentication encoding (the DSSE specification's one line).
fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = format!("DSSEv1 {} {} {} ", payload_type.len(), payload_type, payload.len()).into_bytes();
    out.extend_from_slice(payload);
    out
}

async fn verify_attestations(image: &str, pubkey: &str) -> anyhow::Result<bool> {
    let reference: OciReference = image.parse()?;
    let mut client = client()?;
    let (signature_image, digest) = client.triangulate(&reference, &Auth::Anonymous).await?;
    let att = signature_image.to_string().replace(".sig", ".att");
    let att: oci_client::Reference = att.parse()?;
    let oci = oci_client::Client::new(oci_client::client::ClientConfig {
        protocol: oci_client::client::ClientProtocol::Http,
        ..Default::default()
    });
    let data = oci
        .pull(
            &att,
            &oci_client::secrets::RegistryAuth::Anonymous,
            vec!["application/vnd.dsse.envelope.v1+json"],
        )
        .await?;
    let key = CosignVerificationKey::try_from_pem(&std::fs::read(pubkey)?)?;
    let want = digest.trim_start_matches("sha256:").to_owned();
    let mut valid = 0;
    let mut invalid = 0;
    for layer in &data.layers {
        let envelope: serde_json::Value = serde_json::from_slice(&layer.data)?;
        let payload_type = envelope["payloadType"].as_str().unwrap_or_default();
        let payload = base64::engine::general_purpose::STANDARD
            .decode(envelope["payload"].as_str().unwrap_or_default())?;
        let signed = pae(payload_type, &payload);
        let ok_sig = envelope["signatures"].as_array().into_iter().flatten().any(|s| {
            let sig = s["sig"].as_str().unwrap_or_default();
            key.verify_signature(Signature::Base64Encoded(sig.as_bytes()), &signed).is_ok()
        });
        let statement: serde_json::Value = serde_json::from_slice(&payload)?;
        let about_image = statement["subject"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|s| s["digest"]["sha256"].as_str() == Some(want.as_str()));
        let kind = statement["predicateType"].as_str().unwrap_or("?");
        if ok_sig && about_image {
            println!("attestation: {kind}");
            valid += 1;
        } else {
            println!("invalid attestation {kind}: signature ok={ok_sig}, subject is this image={about_image}");
            invalid += 1;
        }
    }
    Ok(valid > 0 && invalid == 0)
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["verify", image, key] => verify(image, key).await,
        ["sign", image, key] => sign(image, key).await.map(|()| true),
        ["verify-attestations", image, key] => verify_attestations(image, key).await,
        _ => {
            eprintln!("usage: cosign-interop verify|sign|verify-attestations IMAGE KEY");
            return std::process::ExitCode::from(2);
        }
    };
    match result {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => std::process::ExitCode::from(1),
        Err(e) => {
            eprintln!("cosign-interop: {e:?}");
            std::process::ExitCode::from(2)
        }
    }
}
