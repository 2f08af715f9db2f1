//! `rootstrap push` against a real registry server: Debian's docker-registry
//! (CNCF distribution), started on 127.0.0.1 for each test. Skipped with a
//! notice when the binary is not installed (.ci/run installs it).

use crate::common;
use crate::common::skip::skip;

use std::fs;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rootstrap::image::oci::{self, History, ImageConfig};
use rootstrap::image::{
    ImageBuilder, ImageReference, LayerCompression, LayerOptions, Output, Sha256Digest,
};

use common::run::{self, text};

const REGISTRY_BIN: &str = "/usr/bin/docker-registry";
const EPOCH: i64 = 1_700_000_000;

pub(crate) struct Registry {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Registry {
    /// `htpasswd`: a bcrypt line enabling Basic auth, or none for anonymous.
    pub(crate) fn start(htpasswd: Option<&str>) -> Option<Registry> {
        if !Path::new(REGISTRY_BIN).exists() {
            skip(format!(
                "{REGISTRY_BIN} not installed (apt-get install docker-registry)"
            ));
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut config = format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n",
            dir.path().join("data").display()
        );
        if let Some(line) = htpasswd {
            let file = dir.path().join("htpasswd");
            fs::write(&file, format!("{line}\n")).unwrap();
            config.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: test\n    path: {}\n",
                file.display()
            ));
        }
        let config_path = dir.path().join("config.yml");
        fs::write(&config_path, config).unwrap();
        let child = Command::new(REGISTRY_BIN)
            .arg("serve")
            .arg(&config_path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let registry = Registry {
            child,
            port,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "registry did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(registry)
    }

    pub(crate) fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub(crate) fn get(&self, path: &str, auth: Option<&str>) -> (u16, Vec<u8>, Option<String>) {
        let mut req = ureq::get(&format!("http://{}{path}", self.host())).set(
            "Accept",
            "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.index.v1+json",
        );
        if let Some(a) = auth {
            req = req.set("Authorization", a);
        }
        match req.call() {
            Ok(r) => {
                let status = r.status();
                let digest = r.header("Docker-Content-Digest").map(str::to_owned);
                let mut body = Vec::new();
                r.into_reader().read_to_end(&mut body).unwrap();
                (status, body, digest)
            }
            Err(ureq::Error::Status(s, _)) => (s, Vec::new(), None),
            Err(e) => panic!("GET {path}: {e}"),
        }
    }
}

/// A two-layer image written as oci:DIR; returns the layout and its manifest digest.
pub(crate) fn make_image(work: &Path, marker: &str) -> (PathBuf, Sha256Digest) {
    make_image_as(work, marker, Output::OciDir(work.join("oci")))
}

fn make_image_as(work: &Path, marker: &str, out: Output) -> (PathBuf, Sha256Digest) {
    let tree = work.join("tree");
    fs::create_dir_all(tree.join("etc")).unwrap();
    fs::write(tree.join("etc/marker"), marker).unwrap();
    let mut config = ImageConfig::new("amd64", "linux");
    config.created = Some(oci::format_timestamp(EPOCH));
    config.config.cmd = Some(vec!["/bin/sh".into()]);
    let mut b = ImageBuilder::new_in(work, config, LayerCompression::Gzip).unwrap();
    let opts = LayerOptions {
        source_date_epoch: Some(EPOCH),
        exclude: Vec::new(),
    };
    let history = |s: &str| History {
        created: Some(oci::format_timestamp(EPOCH)),
        created_by: Some(s.into()),
        ..History::default()
    };
    b.add_layer_from_dir(&tree, &opts, history("base")).unwrap();
    fs::write(tree.join("etc/second"), "2").unwrap();
    b.add_layer_from_dir(&tree, &opts, history("second"))
        .unwrap();
    let reference = ImageReference::parse("test/image:1").unwrap();
    let written = b.write(&out, Some(&reference)).unwrap();
    (out.path().to_path_buf(), written.manifest_digest)
}

pub(crate) fn rootstrap(args: &[&str], stdin: Option<&str>) -> std::process::Output {
    let mut child = run::rootstrap()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env("DOCKER_CONFIG", "/nonexistent-rootstrap-test")
        .spawn()
        .unwrap();
    {
        let mut input = child.stdin.take().unwrap();
        if let Some(s) = stdin {
            input.write_all(s.as_bytes()).unwrap();
        }
    }
    child.wait_with_output().unwrap()
}

#[test]
fn push_keeps_the_digest_and_skips_blobs_already_there() {
    let Some(registry) = Registry::start(None) else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let (oci_dir, digest) = make_image(work.path(), "one");
    let image = format!("oci:{}", oci_dir.display());
    let dest = format!("{}/rootstrap/test:v1", registry.host());

    let out = rootstrap(&["push", &image, &dest], None);
    assert!(out.status.success(), "push failed: {}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), format!("{dest}@{digest}"));
    assert!(text(&out.stderr).contains("3 blobs uploaded, 0 already present"));

    // The registry serves the manifest byte for byte, under our digest.
    let (status, body, served) = registry.get("/v2/rootstrap/test/manifests/v1", None);
    assert_eq!(status, 200);
    assert_eq!(Sha256Digest::of(&body), digest);
    assert_eq!(served.as_deref(), Some(digest.to_string().as_str()));
    let manifest: oci::Manifest = serde_json::from_slice(&body).unwrap();
    for blob in std::iter::once(&manifest.config).chain(&manifest.layers) {
        let (status, bytes, _) =
            registry.get(&format!("/v2/rootstrap/test/blobs/{}", blob.digest), None);
        assert_eq!(status, 200, "{}", blob.digest);
        assert_eq!(Sha256Digest::of(&bytes).to_string(), blob.digest);
        assert_eq!(bytes.len() as u64, blob.size);
    }

    // A second push (another tag) uploads nothing.
    let dest2 = format!("{}/rootstrap/test:v2", registry.host());
    let out = rootstrap(&["push", &image, &dest2], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("0 blobs uploaded, 3 already present"));
    let (_, body, _) = registry.get("/v2/rootstrap/test/manifests/v2", None);
    assert_eq!(Sha256Digest::of(&body), digest);
}

#[test]
fn push_a_docker_archive() {
    let Some(registry) = Registry::start(None) else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let (archive, digest) = make_image_as(
        work.path(),
        "archive",
        Output::DockerArchive(work.path().join("image.tar")),
    );
    let dest = format!("{}/archive/img:latest", registry.host());
    let out = rootstrap(
        &[
            "push",
            &format!("docker-archive:{}", archive.display()),
            &dest,
        ],
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let (status, body, _) = registry.get("/v2/archive/img/manifests/latest", None);
    assert_eq!(status, 200);
    assert_eq!(Sha256Digest::of(&body), digest);
}

#[test]
fn basic_auth_registry_needs_credentials() {
    // bcrypt of "s3cret" (cost 5), made with libxcrypt's crypt(3).
    let line = "alice:$2b$05$rWbOV2/9DPEeSf9ML91fGuIXo/c92yukF7g5DlJR5t9W4QddrEYXm";
    let Some(registry) = Registry::start(Some(line)) else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let (oci_dir, digest) = make_image(work.path(), "auth");
    let image = format!("oci:{}", oci_dir.display());
    let dest = format!("{}/private/img:1", registry.host());

    let out = rootstrap(&["push", &image, &dest], None);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("authentication required") && err.contains("no credentials"),
        "{err}"
    );

    let out = rootstrap(
        &[
            "push",
            &image,
            &dest,
            "--username",
            "alice",
            "--password-stdin",
        ],
        Some("wrong\n"),
    );
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("401"), "{}", text(&out.stderr));

    let out = rootstrap(
        &[
            "push",
            &image,
            &dest,
            "--username",
            "alice",
            "--password-stdin",
        ],
        Some("s3cret\n"),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let auth = format!("Basic {}", base64_encode("alice:s3cret"));
    let (status, body, _) = registry.get("/v2/private/img/manifests/1", Some(&auth));
    assert_eq!(status, 200);
    assert_eq!(Sha256Digest::of(&body), digest);
}

#[test]
fn push_refuses_a_name_without_registry_and_an_unreachable_one() {
    let work = tempfile::tempdir().unwrap();
    let (oci_dir, _) = make_image(work.path(), "x");
    let image = format!("oci:{}", oci_dir.display());
    let out = rootstrap(&["push", &image, "myimage:1"], None);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("name a registry host"));

    // A port nobody listens on: a clear transport error naming the URL.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = rootstrap(&["push", &image, &format!("127.0.0.1:{port}/x:1")], None);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains(&format!("127.0.0.1:{port}/v2/x/blobs/")),
        "{}",
        text(&out.stderr)
    );
}

fn base64_encode(s: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(s)
}

#[test]
fn dockerfile_build_with_registry_output() {
    let Some(registry) = Registry::start(None) else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let (oci_dir, _) = make_image(work.path(), "base");
    let ctx = work.path().join("ctx");
    fs::create_dir_all(&ctx).unwrap();
    fs::write(
        ctx.join("Dockerfile"),
        format!("FROM oci:{}\nENV GREETING=hello\n", oci_dir.display()),
    )
    .unwrap();
    let staging = work.path().join("staging");
    fs::create_dir_all(&staging).unwrap();
    let dest = format!("{}/df/img:1", registry.host());
    let ctx_s = ctx.display().to_string();
    let dockerfile = ctx.join("Dockerfile").display().to_string();
    let out = rootstrap(
        &[
            "build",
            "-f",
            &dockerfile,
            &ctx_s,
            "--work-dir",
            &staging.display().to_string(),
            "--output",
            &format!("registry:{dest}"),
        ],
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let line = text(&out.stdout);
    let digest = line
        .lines()
        .find_map(|l| l.strip_prefix(&format!("registry:{dest}  ")))
        .unwrap_or_else(|| panic!("no registry line in {line}"))
        .to_owned();
    let (status, body, _) = registry.get("/v2/df/img/manifests/1", None);
    assert_eq!(status, 200);
    assert_eq!(Sha256Digest::of(&body).to_string(), digest);
    let manifest: oci::Manifest = serde_json::from_slice(&body).unwrap();
    let (_, config, _) = registry.get(
        &format!("/v2/df/img/blobs/{}", manifest.config.digest),
        None,
    );
    let config: ImageConfig = serde_json::from_slice(&config).unwrap();
    assert!(config.config.env.iter().any(|e| e == "GREETING=hello"));
    // The staging layout is gone.
    assert_eq!(fs::read_dir(&staging).unwrap().count(), 0);

    // A registry: output without a host is refused before anything is built.
    let out = rootstrap(
        &[
            "build",
            "-f",
            &dockerfile,
            &ctx_s,
            "--output",
            "registry:img:1",
        ],
        None,
    );
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("name the registry host"));
}

#[test]
fn pull_round_trips_a_pushed_image() {
    let Some(registry) = Registry::start(None) else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let (oci_dir, digest) = make_image(work.path(), "pull");
    let dest = format!("{}/round/trip:1", registry.host());
    let out = rootstrap(
        &["push", &format!("oci:{}", oci_dir.display()), &dest],
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));

    let pulled = work.path().join("pulled");
    let out_spec = format!("oci:{}", pulled.display());
    let out = rootstrap(&["pull", &dest, "--output", &out_spec], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), format!("{out_spec}  {digest}"));
    // The pulled layout is a complete image: inspect re-hashes every blob.
    let out = rootstrap(&["inspect", &out_spec], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let marker = fs::read(pulled.join("blobs/sha256").join(digest.to_hex())).unwrap();
    assert_eq!(Sha256Digest::of(&marker), digest);

    // Pulling onto an existing path is refused; a missing tag names the URL.
    let out = rootstrap(&["pull", &dest, "--output", &out_spec], None);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("already exists"));
    let missing = work.path().join("missing");
    let out = rootstrap(
        &[
            "pull",
            &format!("{}/round/trip:nope", registry.host()),
            "--output",
            &format!("oci:{}", missing.display()),
        ],
        None,
    );
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("404") && err.contains("/v2/round/trip/manifests/nope"),
        "{err}"
    );
    assert!(!missing.exists());
    // No staging directory left behind.
    let leftovers: Vec<_> = fs::read_dir(work.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains(".pull-"))
        .collect();
    assert!(leftovers.is_empty());
}

#[test]
fn dockerfile_from_a_registry_image() {
    let Some(registry) = Registry::start(None) else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let (oci_dir, base_digest) = make_image(work.path(), "from-registry");
    let base = format!("{}/bases/tiny:1", registry.host());
    let out = rootstrap(
        &["push", &format!("oci:{}", oci_dir.display()), &base],
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));

    let ctx = work.path().join("ctx");
    fs::create_dir_all(&ctx).unwrap();
    // The same base twice (FROM and COPY --from) is pulled once.
    fs::write(
        ctx.join("Dockerfile"),
        format!("FROM {base}\nCOPY --from={base} /etc/marker /copied\nLABEL stage=child\n"),
    )
    .unwrap();
    let result = work.path().join("child");
    let out = rootstrap(
        &[
            "build",
            "-f",
            &ctx.join("Dockerfile").display().to_string(),
            &ctx.display().to_string(),
            "--no-cache",
            "--output",
            &format!("oci:{}", result.display()),
        ],
        None,
    );
    let err = text(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert_eq!(err.matches(&format!("pull {base}")).count(), 1, "{err}");
    let built = rootstrap::image::OpenedImage::open(
        &rootstrap::image::ImageSource::OciDir(result.clone()),
        None,
    )
    .unwrap();
    let base_image = rootstrap::image::OpenedImage::open(
        &rootstrap::image::ImageSource::OciDir(oci_dir.clone()),
        None,
    )
    .unwrap();
    assert_ne!(built.manifest_digest, Some(base_digest));
    // The base's layers come first, unchanged.
    assert_eq!(built.layers[..2], base_image.layers[..2]);
    assert_eq!(
        built.config.config.labels.get("stage").map(String::as_str),
        Some("child")
    );

    // A tag the registry does not have: the error names the image and the URL.
    fs::write(
        ctx.join("Dockerfile"),
        format!("FROM {}/bases/tiny:missing\n", registry.host()),
    )
    .unwrap();
    let out = rootstrap(
        &[
            "build",
            "-f",
            &ctx.join("Dockerfile").display().to_string(),
            &ctx.display().to_string(),
            "--output",
            &format!("oci:{}", work.path().join("never").display()),
        ],
        None,
    );
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("bases/tiny:missing") && err.contains("/v2/bases/tiny/manifests/missing"),
        "{err}"
    );
    assert!(!work.path().join("never").exists());
}

#[test]
fn push_carries_the_sboms_as_referrers() {
    let Some(registry) = Registry::start(None) else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let (oci_dir, digest) = make_image(work.path(), "sbom");
    let image = rootstrap::image::OpenedImage::open(
        &rootstrap::image::ImageSource::OciDir(oci_dir.clone()),
        None,
    )
    .unwrap();
    let inventory = rootstrap::image::packages::package_inventory(&image).unwrap();
    let sbom = rootstrap::sbom::Sbom::from_inventory(
        &inventory,
        rootstrap::sbom::ImageIdentity::of_image(&image),
        &Default::default(),
    );
    rootstrap::sbom::attach_to_oci_layout(&oci_dir, &sbom).unwrap();
    let dest = format!("{}/rootstrap/sbom:v1", registry.host());
    let out = rootstrap(
        &["push", &format!("oci:{}", oci_dir.display()), &dest],
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("2 referrers"),
        "{}",
        text(&out.stderr)
    );

    // What an OCI 1.1 client does: the referrers API, and where the
    // registry has none (distribution 2.x answers 404), the fallback tag.
    // Err(status) for an HTTP error status.
    let get = |path: &str| {
        ureq::get(&format!("http://{}{path}", registry.host()))
            .set("Accept", oci::MEDIA_TYPE_INDEX)
            .call()
            .map_err(|e| match e {
                ureq::Error::Status(status, _) => status,
                other => panic!("GET {path}: {other}"),
            })
    };
    let listed: oci::Index = match get(&format!("/v2/rootstrap/sbom/referrers/{digest}")) {
        Ok(r) => serde_json::from_reader(r.into_reader()).unwrap(),
        Err(404) => {
            let r = get(&format!(
                "/v2/rootstrap/sbom/manifests/sha256-{}",
                digest.to_hex()
            ))
            .expect("the referrers tag");
            serde_json::from_reader(r.into_reader()).unwrap()
        }
        Err(status) => panic!("referrers query: HTTP {status}"),
    };
    let mut types: Vec<_> = listed
        .manifests
        .iter()
        .map(|d| d.artifact_type.clone().unwrap_or_default())
        .collect();
    types.sort();
    assert_eq!(
        types,
        ["application/spdx+json", "application/vnd.cyclonedx+json"]
    );
    for artifact in &listed.manifests {
        let (status, body, _) = registry.get(
            &format!("/v2/rootstrap/sbom/manifests/{}", artifact.digest),
            None,
        );
        assert_eq!(status, 200);
        let manifest: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(manifest["subject"]["digest"], digest.to_string());
        let layer = manifest["layers"][0]["digest"].as_str().unwrap();
        let (status, _, _) = registry.get(&format!("/v2/rootstrap/sbom/blobs/{layer}"), None);
        assert_eq!(status, 200);
    }

    // Pushing again lists each SBOM once.
    let out = rootstrap(
        &["push", &format!("oci:{}", oci_dir.display()), &dest],
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    if let Ok(r) = get(&format!(
        "/v2/rootstrap/sbom/manifests/sha256-{}",
        digest.to_hex()
    )) {
        let again: oci::Index = serde_json::from_reader(r.into_reader()).unwrap();
        assert_eq!(again.manifests.len(), 2);
    }
}

#[test]
fn push_a_legacy_docker_save_archive() {
    let Some(registry) = Registry::start(None) else {
        return;
    };
    // What `docker save` wrote before Docker 25 (and buildah still writes):
    // manifest.json, a config file, layer tars; no OCI manifest at all.
    let work = tempfile::tempdir().unwrap();
    let tree = work.path().join("tree");
    fs::create_dir_all(tree.join("etc")).unwrap();
    fs::write(tree.join("etc/marker"), "legacy").unwrap();
    let parts = work.path().join("parts");
    fs::create_dir_all(parts.join("abc")).unwrap();
    let layer = parts.join("abc/layer.tar");
    let status = Command::new("tar")
        .arg("-cf")
        .arg(&layer)
        .arg("-C")
        .arg(&tree)
        .arg("etc")
        .status()
        .unwrap();
    assert!(status.success());
    let diff_id = Sha256Digest::of(&fs::read(&layer).unwrap());
    let config = format!(
        r#"{{"architecture":"amd64","os":"linux","config":{{}},"rootfs":{{"type":"layers","diff_ids":["{diff_id}"]}}}}"#
    );
    fs::write(parts.join("cfg.json"), &config).unwrap();
    fs::write(
        parts.join("manifest.json"),
        r#"[{"Config":"cfg.json","RepoTags":["legacy:1"],"Layers":["abc/layer.tar"]}]"#,
    )
    .unwrap();
    let archive = work.path().join("legacy.tar");
    let status = Command::new("tar")
        .arg("-cf")
        .arg(&archive)
        .arg("-C")
        .arg(&parts)
        .args(["manifest.json", "cfg.json", "abc/layer.tar"])
        .status()
        .unwrap();
    assert!(status.success());

    let dest = format!("{}/rootstrap/legacy:1", registry.host());
    let out = rootstrap(
        &[
            "push",
            &format!("docker-archive:{}", archive.display()),
            &dest,
        ],
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let (status, body, _) = registry.get("/v2/rootstrap/legacy/manifests/1", None);
    assert_eq!(status, 200);
    let manifest: oci::Manifest = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        text(&out.stdout).trim(),
        format!("{dest}@{}", Sha256Digest::of(&body))
    );
    assert_eq!(
        manifest.config.digest,
        Sha256Digest::of(config.as_bytes()).to_string()
    );
    // The uncompressed layer goes as it is: its digest is its diff_id.
    assert_eq!(manifest.layers.len(), 1);
    assert_eq!(manifest.layers[0].media_type, oci::MEDIA_TYPE_LAYER_TAR);
    assert_eq!(manifest.layers[0].digest, diff_id.to_string());
    let (status, bytes, _) = registry.get(
        &format!("/v2/rootstrap/legacy/blobs/{}", manifest.layers[0].digest),
        None,
    );
    assert_eq!(status, 200);
    assert_eq!(bytes, fs::read(&layer).unwrap());
}

#[test]
fn commands_take_a_registry_image() {
    let Some(registry) = Registry::start(None) else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let (oci_dir, digest) = make_image(work.path(), "remote");
    let local = format!("oci:{}", oci_dir.display());
    let dest = format!("{}/rootstrap/remote:1", registry.host());
    let out = rootstrap(&["push", &local, &dest], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    // Not in the store, so pulled (into a temporary layout) and read.
    let cache = work.path().join("cache");
    let cache = cache.to_str().unwrap();
    let out = rootstrap(&["inspect", &dest, "--cache-dir", cache], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains(&digest.to_string()));
    let out = rootstrap(&["diff", &dest, &local, "--cache-dir", cache], None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
}

/// An image index (a multi-platform build's OCI layout) is pushed whole:
/// every platform's manifest by digest, then the index under the tag, which
/// the registry serves byte for byte; `pull --platform` takes each one back.
#[test]
fn push_an_image_index_and_pull_each_platform() {
    let Some(registry) = Registry::start(None) else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let builders: Vec<ImageBuilder> = ["amd64", "arm64"]
        .iter()
        .map(|arch| {
            let tree = work.path().join(format!("tree-{arch}"));
            fs::create_dir_all(tree.join("etc")).unwrap();
            fs::write(tree.join("etc/arch"), arch).unwrap();
            let mut config = ImageConfig::new(arch, "linux");
            config.created = Some(oci::format_timestamp(EPOCH));
            let mut b = ImageBuilder::new_in(work.path(), config, LayerCompression::Gzip).unwrap();
            let opts = LayerOptions {
                source_date_epoch: Some(EPOCH),
                exclude: Vec::new(),
            };
            b.add_layer_from_dir(&tree, &opts, History::default())
                .unwrap();
            b
        })
        .collect();
    let layout = work.path().join("index");
    let reference = ImageReference::parse("test/multi:1").unwrap();
    let images: Vec<&ImageBuilder> = builders.iter().collect();
    let written =
        rootstrap::image::multi::write_index_layout(&images, &layout, Some(&reference)).unwrap();
    let dest = format!("{}/multi/image:1", registry.host());
    let out = rootstrap(&["push", &format!("oci:{}", layout.display()), &dest], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout).trim(),
        format!("{dest}@{}", written.index_digest)
    );
    let (status, body, _) = registry.get("/v2/multi/image/manifests/1", None);
    assert_eq!(status, 200);
    assert_eq!(Sha256Digest::of(&body), written.index_digest);
    for (arch, m) in ["amd64", "arm64"].iter().zip(&written.manifests) {
        let (status, body, _) =
            registry.get(&format!("/v2/multi/image/manifests/{}", m.digest), None);
        assert_eq!(status, 200, "{arch}");
        assert_eq!(Sha256Digest::of(&body).to_string(), m.digest);
        let pulled = work.path().join(format!("pulled-{arch}"));
        let out = rootstrap(
            &[
                "pull",
                &dest,
                "--platform",
                &format!("linux/{arch}"),
                "--output",
                &format!("oci:{}", pulled.display()),
            ],
            None,
        );
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert!(
            text(&out.stdout).contains(&m.digest),
            "{}",
            text(&out.stdout)
        );
    }
}

/// Two one-layer images, amd64 and arm64, written as one image index
/// layout named `test/multi:1`, each platform's SBOMs attached to its own
/// manifest as a multi-platform build attaches them.
fn index_layout_with_sboms(work: &Path) -> (PathBuf, rootstrap::image::multi::WrittenIndex) {
    let builders: Vec<ImageBuilder> = ["amd64", "arm64"]
        .iter()
        .map(|arch| {
            let tree = work.join(format!("tree-{arch}"));
            fs::create_dir_all(tree.join("etc")).unwrap();
            fs::write(tree.join("etc/arch"), arch).unwrap();
            let mut config = ImageConfig::new(arch, "linux");
            config.created = Some(oci::format_timestamp(EPOCH));
            let mut b = ImageBuilder::new_in(work, config, LayerCompression::Gzip).unwrap();
            let opts = LayerOptions {
                source_date_epoch: Some(EPOCH),
                exclude: Vec::new(),
            };
            b.add_layer_from_dir(&tree, &opts, History::default())
                .unwrap();
            b
        })
        .collect();
    let layout = work.join("index");
    let reference = ImageReference::parse("test/multi:1").unwrap();
    let images: Vec<&ImageBuilder> = builders.iter().collect();
    let written =
        rootstrap::image::multi::write_index_layout(&images, &layout, Some(&reference)).unwrap();
    rootstrap::sbom::write_index_sboms(&images, &written, Some("test/multi:1"), &[]).unwrap();
    (layout, written)
}

/// The referrers the registry lists for `digest` in `repo` (the referrers
/// API, else the distribution spec's fallback tag).
fn registry_referrers(registry: &Registry, repo: &str, digest: &str) -> oci::Index {
    let get = |path: &str| {
        ureq::get(&format!("http://{}{path}", registry.host()))
            .set("Accept", oci::MEDIA_TYPE_INDEX)
            .call()
            .map_err(|e| match e {
                ureq::Error::Status(status, _) => status,
                other => panic!("GET {path}: {other}"),
            })
    };
    let hex = digest.strip_prefix("sha256:").unwrap();
    match get(&format!("/v2/{repo}/referrers/{digest}")) {
        Ok(r) => serde_json::from_reader(r.into_reader()).unwrap(),
        Err(404) => {
            let r = get(&format!("/v2/{repo}/manifests/sha256-{hex}")).expect("the referrers tag");
            serde_json::from_reader(r.into_reader()).unwrap()
        }
        Err(status) => panic!("referrers query: HTTP {status}"),
    }
}

/// An image index layout carries one SBOM pair per platform manifest (its
/// `subject` that manifest, the index's digest unchanged), and a push sends
/// each platform's as referrers of its manifest; the index stored in the
/// local store is pushed whole by name.
#[test]
fn an_index_is_pushed_with_each_platforms_sboms_and_from_the_store() {
    let Some(registry) = Registry::start(None) else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let (layout, written) = index_layout_with_sboms(work.path());
    // The SBOMs are outside the index: its digest is the plain build's.
    let top: oci::Index =
        serde_json::from_slice(&fs::read(layout.join("index.json")).unwrap()).unwrap();
    assert_eq!(top.manifests.len(), 1, "artifacts stay out of index.json");
    assert_eq!(top.manifests[0].digest, written.index_digest.to_string());
    let source = rootstrap::image::ImageSource::OciDir(layout.clone());
    for m in &written.manifests {
        let platform = m.platform.as_ref().unwrap();
        let image = rootstrap::image::OpenedImage::open_platform(&source, None, platform).unwrap();
        assert_eq!(image.referrers.len(), 2, "{platform}");
        for artifact in &image.referrers {
            let digest = Sha256Digest::parse(&artifact.digest).unwrap();
            let manifest: serde_json::Value =
                serde_json::from_slice(&image.read_blob(&digest).unwrap()).unwrap();
            assert_eq!(manifest["subject"]["digest"], m.digest, "{platform}");
        }
        let spdx = rootstrap::sbom::output::attached(&image, rootstrap::sbom::SbomFormat::Spdx)
            .unwrap()
            .expect("an SPDX document per platform");
        assert!(
            String::from_utf8_lossy(&spdx).contains(m.digest.trim_start_matches("sha256:")),
            "the SBOM names its platform's manifest"
        );
    }

    let dest = format!("{}/multi/sbom:1", registry.host());
    let out = rootstrap(&["push", &format!("oci:{}", layout.display()), &dest], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("4 referrers"),
        "{}",
        text(&out.stderr)
    );
    for m in &written.manifests {
        let listed = registry_referrers(&registry, "multi/sbom", &m.digest);
        assert_eq!(listed.manifests.len(), 2, "{}", m.digest);
        for artifact in &listed.manifests {
            let (status, body, _) = registry.get(
                &format!("/v2/multi/sbom/manifests/{}", artifact.digest),
                None,
            );
            assert_eq!(status, 200);
            let manifest: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(manifest["subject"]["digest"], m.digest);
        }
    }

    // The same index kept in the local store, pushed by its name.
    let cache = work.path().join("cache");
    let store = rootstrap::image::store::ImageStore::new(&cache);
    let stored = store
        .put_index_layout(&layout, &ImageReference::parse("test/multi:1").unwrap())
        .unwrap();
    assert_eq!(stored.digest, written.index_digest.to_string());
    assert_eq!(stored.platforms, ["linux/amd64", "linux/arm64"]);
    let stored_dest = format!("{}/multi/stored:2", registry.host());
    let out = rootstrap(
        &[
            "push",
            "--cache-dir",
            cache.to_str().unwrap(),
            "test/multi:1",
            &stored_dest,
        ],
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout).trim(),
        format!("{stored_dest}@{}", written.index_digest)
    );
    let (status, body, _) = registry.get("/v2/multi/stored/manifests/2", None);
    assert_eq!(status, 200);
    assert_eq!(Sha256Digest::of(&body), written.index_digest);
    for m in &written.manifests {
        let (status, _, _) =
            registry.get(&format!("/v2/multi/stored/manifests/{}", m.digest), None);
        assert_eq!(status, 200, "{}", m.digest);
    }
}
