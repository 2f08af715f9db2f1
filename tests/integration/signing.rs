//! `rootstrap key generate`, `sign`, `verify` and `build --sign-key` against
//! a real registry server (Debian's docker-registry on 127.0.0.1), and the
//! hostile signatures `verify` must refuse. Signatures made by others' code
//! (the sigstore crate) are checked in scripts/e2e-signing.sh.

use crate::common;
use crate::common::skip::skip;
use crate::registry::{make_image, rootstrap, Registry};

use std::fs;
use std::path::Path;
use std::process::Output;

use rootstrap::image::reference::ImageReference;
use rootstrap::image::registry::{PushOptions, Repository};
use rootstrap::image::{oci, Sha256Digest};
use rootstrap::sign::cosign::{self, Kind, Layer, Subject};
use rootstrap::sign::payload::{self, Envelope, SimpleSigning, Statement};

use common::run::text;

const PASSWORD: &str = "correct horse";

fn with_password(args: &[&str]) -> Output {
    let mut cmd = common::run::rootstrap();
    cmd.args(args)
        .env("COSIGN_PASSWORD", PASSWORD)
        .env("DOCKER_CONFIG", "/nonexistent-rootstrap-test");
    cmd.output().unwrap()
}

fn generate_keys(dir: &Path, name: &str) -> (String, String) {
    let prefix = dir.join(name);
    let out = with_password(&[
        "key",
        "generate",
        "--output-prefix",
        prefix.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    (
        format!("{}.key", prefix.display()),
        format!("{}.pub", prefix.display()),
    )
}

/// A registry holding one pushed test image: (registry, work dir, HOST/REPO:TAG, digest).
fn pushed_image(repo: &str) -> Option<(Registry, tempfile::TempDir, String, Sha256Digest)> {
    let registry = Registry::start(None)?;
    let work = tempfile::tempdir().unwrap();
    let (oci_dir, digest) = make_image(work.path(), repo);
    let dest = format!("{}/{repo}:1", registry.host());
    let out = rootstrap(
        &["push", &format!("oci:{}", oci_dir.display()), &dest],
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    Some((registry, work, dest, digest))
}

fn verify(image: &str, public: &str, extra: &[&str]) -> Output {
    let mut args = vec!["verify", image, "--key", public];
    args.extend_from_slice(extra);
    rootstrap(&args, None)
}

#[test]
fn signed_images_verify_with_their_key_only() {
    let Some((registry, work, image, digest)) = pushed_image("signed") else {
        return;
    };
    let (private, public) = generate_keys(work.path(), "cosign");
    let (_, other_public) = generate_keys(work.path(), "other");
    let key_text = fs::read_to_string(&private).unwrap();
    assert!(key_text.starts_with("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----"));

    // Unsigned: exit 1, saying so.
    let out = verify(&image, &public, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("no signature found"),
        "{}",
        text(&out.stderr)
    );

    let out = with_password(&["sign", &image, "--key", &private]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let sig_tag = format!("sha256-{}.sig", digest.to_hex());
    assert!(
        text(&out.stdout).contains(&sig_tag),
        "{}",
        text(&out.stdout)
    );

    let out = verify(&image, &public, &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains(&format!("@{digest}  verified: 1 signature(s)")));
    // By digest too.
    let by_digest = format!("{}@{digest}", image.trim_end_matches(":1"));
    assert!(verify(&by_digest, &public, &[]).status.success());

    // Another key: exit 1, naming why.
    let out = verify(&image, &other_public, &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("does not verify with the given public key"),
        "{}",
        text(&out.stderr)
    );

    // A wrong password and a missing key file are errors before anything is pushed.
    let mut cmd = common::run::rootstrap();
    let out = cmd
        .args(["sign", &image, "--key", &private])
        .env("COSIGN_PASSWORD", "wrong")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("wrong password"),
        "{}",
        text(&out.stderr)
    );
    let out = verify(&image, "/nonexistent/cosign.pub", &[]);
    assert_eq!(out.status.code(), Some(2));

    // Signing twice appends, as cosign does; the manifest is cosign's shape.
    let out = with_password(&["sign", &image, "--key", &private]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let (status, body, _) = registry.get(&format!("/v2/signed/manifests/{sig_tag}"), None);
    assert_eq!(status, 200);
    let manifest: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let layers = manifest["layers"].as_array().unwrap();
    // ECDSA signing here is deterministic (RFC 6979): the same payload
    // signed again is the same layer, listed once.
    assert_eq!(layers.len(), 1, "{manifest}");
    assert_eq!(layers[0]["mediaType"], cosign::SIGNATURE_LAYER);
    assert!(
        layers[0]["annotations"][cosign::SIGNATURE_ANNOTATION]
            .as_str()
            .unwrap()
            .len()
            > 60
    );
    assert_eq!(manifest["subject"]["digest"], digest.to_string());

    // Re-pointing the tag at another image: the signature no longer covers it.
    let (oci_b, _) = make_image(&work.path().join("b"), "other content");
    let out = rootstrap(&["push", &format!("oci:{}", oci_b.display()), &image], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = verify(&image, &public, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
}

/// Writes `layers` as the image's `.sig` / `.att` manifest, with their blobs.
fn plant(repo: &mut Repository, kind: Kind, digest: Sha256Digest, layers: Vec<(Layer, Vec<u8>)>) {
    for (_, data) in &layers {
        repo.put_blob(data).unwrap();
    }
    let only: Vec<Layer> = layers.into_iter().map(|(l, _)| l).collect();
    let (manifest, config) = cosign::manifest(
        kind,
        &only,
        Subject {
            media_type: oci::MEDIA_TYPE_MANIFEST,
            digest,
            size: 1,
        },
    );
    repo.put_blob(&config).unwrap();
    repo.put_manifest(&kind.tag(digest), oci::MEDIA_TYPE_MANIFEST, &manifest)
        .unwrap();
}

fn signature_layer(data: &[u8], signature: String) -> (Layer, Vec<u8>) {
    (
        Layer::new(
            Kind::Signatures,
            data,
            [(cosign::SIGNATURE_ANNOTATION.to_owned(), signature)].into(),
        ),
        data.to_vec(),
    )
}

#[test]
fn hostile_signatures_are_refused_with_a_reason() {
    let Some((_registry, work, image, digest)) = pushed_image("hostile") else {
        return;
    };
    let (private, public) = generate_keys(work.path(), "cosign");
    let key =
        rootstrap::sign::read_private_key(Path::new(&private), Some(PASSWORD.as_bytes())).unwrap();
    let reference = ImageReference::parse(&image).unwrap();
    let mut repo = Repository::open(&reference, &PushOptions::default()).unwrap();
    let name = repo.name();
    let refused = |why: &str| {
        let out = verify(&image, &public, &[]);
        assert_eq!(out.status.code(), Some(1), "{why}: {}", text(&out.stdout));
        text(&out.stderr)
    };

    // A valid signature of another digest, planted under this image's tag.
    let other = Sha256Digest::of(b"another image");
    let payload = SimpleSigning::new(&name, other).to_bytes();
    plant(
        &mut repo,
        Kind::Signatures,
        digest,
        vec![signature_layer(
            &payload,
            payload::sign_bytes(&key, &payload),
        )],
    );
    let err = refused("another digest");
    assert!(
        err.contains(&format!("the signature is for {other}")),
        "{err}"
    );

    // Signed for another repository.
    let payload = SimpleSigning::new(
        &format!("{}/elsewhere", reference.registry.as_deref().unwrap()),
        digest,
    )
    .to_bytes();
    plant(
        &mut repo,
        Kind::Signatures,
        digest,
        vec![signature_layer(
            &payload,
            payload::sign_bytes(&key, &payload),
        )],
    );
    let err = refused("another reference");
    assert!(err.contains("the signature names the image"), "{err}");

    // Truncated signature.
    let payload = SimpleSigning::new(&name, digest).to_bytes();
    let good = payload::sign_bytes(&key, &payload);
    plant(
        &mut repo,
        Kind::Signatures,
        digest,
        vec![signature_layer(&payload, good[..good.len() / 2].to_owned())],
    );
    let err = refused("truncated");
    assert!(err.contains("signature"), "{err}");

    // Re-encoded payload (same claims, other bytes): the signature covers bytes.
    let mut reencoded: serde_json::Value = serde_json::from_slice(&payload).unwrap();
    reencoded["optional"] = serde_json::json!({});
    let reencoded = serde_json::to_vec_pretty(&reencoded).unwrap();
    plant(
        &mut repo,
        Kind::Signatures,
        digest,
        vec![signature_layer(&reencoded, good.clone())],
    );
    let err = refused("re-encoded");
    assert!(err.contains("does not verify"), "{err}");

    // Not base64.
    plant(
        &mut repo,
        Kind::Signatures,
        digest,
        vec![signature_layer(&payload, "%%%".into())],
    );
    assert!(refused("garbage").contains("not base64"));

    // The real signature verifies; an attestation about another image does not.
    plant(
        &mut repo,
        Kind::Signatures,
        digest,
        vec![signature_layer(&payload, good)],
    );
    assert!(verify(&image, &public, &[]).status.success());
    let statement = Statement::new(
        &name,
        other,
        "https://spdx.dev/Document",
        serde_json::json!({}),
    );
    let envelope = serde_json::to_vec(&Envelope::sign(
        &key,
        &serde_json::to_vec(&statement).unwrap(),
    ))
    .unwrap();
    plant(
        &mut repo,
        Kind::Attestations,
        digest,
        vec![(
            Layer::new(Kind::Attestations, &envelope, Default::default()),
            envelope,
        )],
    );
    let out = verify(&image, &public, &["--attestation"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("attestation is about"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn a_signed_build_pushes_signature_sboms_and_provenance() {
    let Some(busybox) = common::apkrepo::host_static_busybox() else {
        skip("no static busybox on the host (install busybox-static)");
        return;
    };
    if !common::run::is_root() {
        skip("an Alpine build runs package scripts, which needs root");
        return;
    }
    let Some(registry) = Registry::start(None) else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let (private, public) = generate_keys(work.path(), "cosign");
    let arch = std::env::consts::ARCH;
    let repo = common::fixture::alpine_repo(&work.path().join("mirror"), arch, &busybox);
    let server = common::httpd::TestServer::serve(&repo.root);
    let recipe = work.path().join("alpine-signed.toml");
    fs::write(&recipe, common::fixture::alpine_source(arch)).unwrap();
    let dest = format!("{}/signed/base:1", registry.host());
    let lock = work.path().join("alpine.lock");
    let build = |key: &str| {
        let mut cmd = common::run::rootstrap();
        cmd.args([
            "build",
            recipe.to_str().unwrap(),
            "--mirror",
            &server.base_url(),
            "--keys",
            repo.keys_dir.to_str().unwrap(),
            "--work-dir",
            work.path().to_str().unwrap(),
            "--cache-dir",
            work.path().join("cache").to_str().unwrap(),
            "--lock",
            lock.to_str().unwrap(),
            "--output",
            &format!("registry:{dest}"),
            "--sign-key",
            key,
        ])
        .env("COSIGN_PASSWORD", PASSWORD)
        .env("DOCKER_CONFIG", "/nonexistent-rootstrap-test");
        cmd.output().unwrap()
    };
    // A key that does not load stops the build before anything is fetched.
    let out = build("/nonexistent/cosign.key");
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("/nonexistent/cosign.key"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(registry.get("/v2/signed/base/manifests/1", None).0, 404);

    let out = build(&private);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("signed "), "{stdout}");
    assert!(stdout.contains("attested "), "{stdout}");

    let out = verify(&dest, &public, &["--attestation"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let printed = text(&out.stdout);
    for kind in [
        "https://spdx.dev/Document",
        "https://cyclonedx.org/bom",
        "https://slsa.dev/provenance/v1",
    ] {
        assert!(
            printed.contains(&format!("attestation: {kind}")),
            "{printed}"
        );
    }

    // The provenance names the recipe and the lockfile by digest.
    let reference = ImageReference::parse(&dest).unwrap();
    let mut repo = Repository::open(&reference, &PushOptions::default()).unwrap();
    let (_, manifest) = repo.manifest("1").unwrap().unwrap();
    let digest = Sha256Digest::of(&manifest);
    let (_, att) = repo
        .manifest(&Kind::Attestations.tag(digest))
        .unwrap()
        .unwrap();
    let key = rootstrap::sign::read_public_key(Path::new(&public)).unwrap();
    let mut found = false;
    for layer in cosign::layers_of(&att, "att").unwrap() {
        let blob = repo
            .blob(&Sha256Digest::parse(&layer.digest).unwrap(), 1 << 24)
            .unwrap();
        let statement = Envelope::open(&blob, &key).unwrap();
        if statement.predicate_type == "https://slsa.dev/provenance/v1" {
            let params = &statement.predicate["buildDefinition"]["externalParameters"];
            let recipe_digest = Sha256Digest::of(&fs::read(&recipe).unwrap()).to_hex();
            assert_eq!(params["definition"]["digest"]["sha256"], recipe_digest);
            let lock_digest = Sha256Digest::of(&fs::read(&lock).unwrap()).to_hex();
            assert_eq!(params["lockfile"]["digest"]["sha256"], lock_digest);
            found = true;
        }
    }
    assert!(found);
}

#[test]
fn signatures_travel_with_a_layout_and_gate_pulls() {
    let Some(registry) = Registry::start(None) else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let (oci_dir, digest) = make_image(work.path(), "offline");
    let (private, public) = generate_keys(work.path(), "cosign");
    let (_, other_public) = generate_keys(work.path(), "other");
    let layout = format!("oci:{}", oci_dir.display());
    let identity = format!("{}/signed/offline", registry.host());

    let out = with_password(&["sign", &layout, "--key", &private]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("--identity"),
        "{}",
        text(&out.stderr)
    );
    let out = with_password(&["sign", &layout, "--key", &private, "--identity", &identity]);
    assert!(out.status.success(), "{}", text(&out.stderr));

    // Offline: checked in the layout, for its digest and name.
    let out = verify(&layout, &public, &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains(&format!(
        "@{digest}  verified: 1 signature(s) for {identity}"
    )));
    assert_eq!(verify(&layout, &other_public, &[]).status.code(), Some(1));
    let elsewhere = format!("{}/signed/elsewhere", registry.host());
    assert_eq!(
        verify(&layout, &public, &["--identity", &elsewhere])
            .status
            .code(),
        Some(1)
    );
    // The layout still reads as one image for other tools' sake.
    let index: serde_json::Value =
        serde_json::from_slice(&fs::read(oci_dir.join("index.json")).unwrap()).unwrap();
    assert_eq!(index["manifests"].as_array().unwrap().len(), 1);

    // Pushed: the signature lands where cosign looks.
    let dest = format!("{identity}:1");
    let out = rootstrap(&["push", &layout, &dest], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("published under cosign's tags"),
        "{}",
        text(&out.stderr)
    );
    let out = verify(&dest, &public, &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));

    // Pulled with --require-signed-by: verified, and the signature comes along.
    let pulled = work.path().join("pulled");
    let out = rootstrap(
        &[
            "pull",
            &dest,
            "-o",
            &format!("oci:{}", pulled.display()),
            "--require-signed-by",
            &public,
        ],
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = verify(
        &format!("oci:{}", pulled.display()),
        &public,
        &["--identity", &identity],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    // Another key refuses the pull; nothing is written.
    let refused = work.path().join("refused");
    let out = rootstrap(
        &[
            "pull",
            &dest,
            "-o",
            &format!("oci:{}", refused.display()),
            "--require-signed-by",
            &other_public,
        ],
        None,
    );
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("--require-signed-by"),
        "{}",
        text(&out.stderr)
    );
    assert!(!refused.exists());

    // FROM in a Dockerfile: the same gate.
    let context = work.path().join("ctx");
    fs::create_dir_all(&context).unwrap();
    fs::write(
        context.join("Dockerfile"),
        format!("FROM {dest}\nLABEL checked=yes\n"),
    )
    .unwrap();
    let dockerfile_build = |key: &str, out_dir: &str| {
        rootstrap(
            &[
                "build",
                "-f",
                context.join("Dockerfile").to_str().unwrap(),
                context.to_str().unwrap(),
                "--work-dir",
                work.path().to_str().unwrap(),
                "--cache-dir",
                work.path().join("cache").to_str().unwrap(),
                "--require-signed-by",
                key,
                "--output",
                &format!("oci:{}", work.path().join(out_dir).display()),
            ],
            None,
        )
    };
    let out = dockerfile_build(&other_public, "from-refused");
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("refused by --require-signed-by"),
        "{}",
        text(&out.stderr)
    );
    assert!(!work.path().join("from-refused").exists());
    let out = dockerfile_build(&public, "from-signed");
    assert!(out.status.success(), "{}", text(&out.stderr));
}

#[test]
fn gpg_simple_signing_is_a_signed_message_gpg_verifies() {
    if !Path::new("/usr/bin/gpg").exists() {
        skip("gpg not installed (apt-get install gnupg)");
        return;
    }
    let Some((_registry, work, image, digest)) = pushed_image("gpg") else {
        return;
    };
    let home = work.path().join("gnupg");
    fs::create_dir(&home).unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    fs::set_permissions(&home, fs::Permissions::from_mode(0o700)).unwrap();
    let gpg = |args: &[&str]| {
        std::process::Command::new("gpg")
            .env("GNUPGHOME", &home)
            .args(["--batch", "--quiet"])
            .args(args)
            .output()
            .unwrap()
    };
    let made = gpg(&[
        "--passphrase",
        "",
        "--quick-gen-key",
        "test <t@rootstrap.invalid>",
        "default",
        "default",
        "never",
    ]);
    assert!(made.status.success(), "{}", text(&made.stderr));
    let secret = gpg(&["--armor", "--export-secret-keys", "t@rootstrap.invalid"]);
    let secret_file = work.path().join("secret.asc");
    fs::write(&secret_file, &secret.stdout).unwrap();
    let lookaside = work.path().join("lookaside");
    let args = [
        "sign",
        &image,
        "--gpg-key",
        secret_file.to_str().unwrap(),
        "--lookaside",
        lookaside.to_str().unwrap(),
    ];
    let out = rootstrap(&args, None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let file = lookaside.join(format!("gpg@sha256={}/signature-1", digest.to_hex()));
    assert!(file.exists(), "{}", text(&out.stdout));
    // gpg itself checks the signature and gives back the claim.
    let verified = gpg(&["--status-fd", "2", "--decrypt", file.to_str().unwrap()]);
    assert!(verified.status.success(), "{}", text(&verified.stderr));
    assert!(
        text(&verified.stderr).contains("GOODSIG"),
        "{}",
        text(&verified.stderr)
    );
    let claim: serde_json::Value = serde_json::from_slice(&verified.stdout).unwrap();
    assert_eq!(claim["critical"]["type"], "atomic container signature");
    assert_eq!(
        claim["critical"]["identity"]["docker-reference"],
        image.as_str()
    );
    assert_eq!(
        claim["critical"]["image"]["docker-manifest-digest"],
        digest.to_string()
    );
    // A second signature (a second later: OpenPGP times are in seconds, and
    // an identical signature is kept once) goes beside the first.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let out = rootstrap(&args, None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(file.with_file_name("signature-2").exists());
    // Not a secret key: a clear error naming the file.
    let out = rootstrap(
        &[
            "sign",
            &image,
            "--gpg-key",
            "/etc/hostname",
            "--lookaside",
            lookaside.to_str().unwrap(),
        ],
        None,
    );
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("/etc/hostname"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn a_multi_platform_layout_is_signed_for_this_machines_image() {
    use rootstrap::image::oci::ImageConfig;
    use rootstrap::image::{ImageBuilder, LayerCompression, LayerOptions};
    let work = tempfile::tempdir().unwrap();
    let tree = work.path().join("tree");
    fs::create_dir_all(&tree).unwrap();
    fs::write(tree.join("marker"), "x").unwrap();
    let host = rootstrap::image::oci::oci_arch(std::env::consts::ARCH).0;
    let other = if host == "amd64" { "arm64" } else { "amd64" };
    let builders: Vec<ImageBuilder> = [host, other]
        .iter()
        .map(|arch| {
            let mut b = ImageBuilder::new_in(
                work.path(),
                ImageConfig::new(arch, "linux"),
                LayerCompression::Gzip,
            )
            .unwrap();
            let opts = LayerOptions {
                source_date_epoch: Some(1_700_000_000),
                exclude: Vec::new(),
            };
            b.add_layer_from_dir(&tree, &opts, Default::default())
                .unwrap();
            b
        })
        .collect();
    let refs: Vec<&ImageBuilder> = builders.iter().collect();
    let dir = work.path().join("index");
    rootstrap::image::multi::write_index_layout(&refs, &dir, None).unwrap();
    let (private, public) = generate_keys(work.path(), "cosign");
    let layout = format!("oci:{}", dir.display());
    let out = with_password(&[
        "sign",
        &layout,
        "--key",
        &private,
        "--identity",
        "127.0.0.1:5000/multi",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = verify(&layout, &public, &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    // The signed digest is the host platform's manifest.
    let image = rootstrap::image::OpenedImage::open(
        &rootstrap::image::ImageSource::OciDir(dir.clone()),
        None,
    )
    .unwrap();
    assert_eq!(image.config.architecture, host);
    let digest = image.manifest_digest.unwrap();
    assert!(
        text(&out.stdout).contains(&format!("@{digest}  verified")),
        "{}",
        text(&out.stdout)
    );
}
