//! `--offline`, `file://` mirrors and Debian snapshot sources, end to end
//! through the `rootstrap` binary against fixture repositories made here.
//! Debian fixtures are for a foreign architecture (arm64), so no package
//! script runs and the builds need no sandbox; Alpine likewise (aarch64).

use crate::common;
use crate::common::skip::skip;

use std::path::{Path, PathBuf};
use std::process::Output;

use common::debrepo::{self, DebPackage, Repo};
use common::fixture::{self, DebFixture};
use common::httpd::TestServer;
use common::run::{self, is_root, stderr};
use sha2::Digest;

const SNAPSHOT: &str = "20250101T000000Z";

fn arm64(p: DebPackage) -> DebPackage {
    DebPackage {
        arch: "arm64".into(),
        ..p
    }
}

fn packages() -> Vec<DebPackage> {
    vec![
        arm64(
            DebPackage::new("base-files", "1.0")
                .essential()
                .dir("etc")
                .file("etc/os-release", 0o644, b"ID=fixture\n"),
        ),
        arm64(
            DebPackage::new("hello-fixture", "2.0-1")
                .depends("base-files")
                .file("usr/share/hello/greeting", 0o644, b"hello\n"),
        ),
    ]
}

/// The signed arm64 repository (codename `fixture`) of [`packages`],
/// changed by `tweak`, written under `rel`.
fn fixture_repo(f: &DebFixture, rel: &str, tweak: impl FnOnce(&mut Repo)) -> PathBuf {
    let mut repo = Repo::new("fixture", packages());
    repo.arch = "arm64".into();
    tweak(&mut repo);
    f.write_repo(rel, &repo)
}

/// A recipe; `extra` is added to [source] (e.g. a mirror or snapshot).
fn write_recipe(f: &DebFixture, extra: &str) -> PathBuf {
    let path = f.path("recipe.toml");
    std::fs::write(
        &path,
        format!(
            "{}{extra}\n\n[packages]\ninstall = [\"hello-fixture\"]\n",
            fixture::debian_source("arm64")
        ),
    )
    .unwrap();
    path
}

fn rootstrap(args: &[&str], extra: &[&Path]) -> Output {
    run::rootstrap_isolated()
        .args(args)
        .args(extra)
        .output()
        .unwrap()
}

fn assert_ok(o: &Output) {
    assert!(o.status.success(), "rootstrap failed:\n{}", stderr(o));
}

fn assert_fails_with(o: &Output, needles: &[&str]) {
    let text = stderr(o);
    assert!(!o.status.success(), "should have failed:\n{text}");
    for n in needles {
        assert!(text.contains(n), "stderr lacks {n:?}:\n{text}");
    }
}

fn file_url(dir: &Path) -> String {
    url::Url::from_directory_path(dir)
        .unwrap()
        .to_string()
        .trim_end_matches('/')
        .to_owned()
}

/// `rootstrap build RECIPE --cache-dir CACHE --work-dir WORK -o oci:OUT
/// [-o rootfs:OUT.rootfs] ARGS…`; returns the output and the manifest digest.
fn build(recipe: &Path, cache: &Path, out: &Path, rootfs: bool, args: &[&str]) -> (Output, String) {
    let work = out.with_extension("work");
    std::fs::create_dir_all(&work).unwrap();
    let oci = format!("oci:{}", out.display());
    let tree = format!("rootfs:{}", out.with_extension("rootfs").display());
    // Foreign-architecture fixtures: no package scripts, no root.
    let mut all = vec!["build", "--skip-foreign-scripts", "-o", &oci];
    if rootfs {
        all.extend(["-o", &tree]);
    }
    all.extend(args);
    let o = rootstrap(
        &all,
        &[
            recipe,
            Path::new("--cache-dir"),
            cache,
            Path::new("--work-dir"),
            &work,
        ],
    );
    let digest = std::fs::read(out.join("index.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|v| v["manifests"][0]["digest"].as_str().map(str::to_owned))
        .unwrap_or_default();
    (o, digest)
}

fn resolve(recipe: &Path, cache: &Path, args: &[&str]) -> Output {
    let mut all = vec!["resolve"];
    all.extend(args);
    rootstrap(&all, &[recipe, Path::new("--cache-dir"), cache])
}

#[test]
fn offline_build_after_one_online_build_gives_the_same_image() {
    if !is_root() {
        skip("needs root (chown while unpacking)");
        return;
    }
    let f = DebFixture::new();
    let repo = fixture_repo(&f, "repo", |_| {});
    let server = TestServer::serve(&repo);
    let recipe = write_recipe(&f, &format!("mirror = \"{}\"", server.base_url()));
    let cache = f.path("cache");
    let (online, first) = build(&recipe, &cache, &f.path("online"), false, &[]);
    assert_ok(&online);
    drop(server);

    // The rootfs output forces a real unpack from the cached packages.
    let (offline, second) = build(&recipe, &cache, &f.path("offline"), true, &["--offline"]);
    assert_ok(&offline);
    assert_eq!(first, second, "offline rebuild, same image");
    assert_ok(&resolve(&recipe, &cache, &["--offline"]));
    let sources = std::fs::read_to_string(f.path("offline.rootfs/etc/apt/sources.list")).unwrap();
    assert!(sources.starts_with("deb http://127.0.0.1:"), "{sources}");
}

#[test]
fn offline_with_nothing_cached_names_the_url_and_says_to_go_online() {
    let f = DebFixture::new();
    let repo = fixture_repo(&f, "repo", |_| {});
    let server = TestServer::serve(&repo);
    let mirror = server.base_url();
    let recipe = write_recipe(&f, &format!("mirror = \"{mirror}\""));
    let out = resolve(&recipe, &f.path("cache"), &["--offline"]);
    assert_fails_with(
        &out,
        &[&format!("{mirror}/dists/fixture/InRelease"), "online"],
    );
    assert_eq!(server.total_requests(), 0, "offline made a request");
}

/// The kept copy of an InRelease is never trusted because it is cached.
#[test]
fn a_kept_index_is_verified_again_offline() {
    let f = DebFixture::new();
    let repo = fixture_repo(&f, "repo", |_| {});
    let server = TestServer::serve(&repo);
    let recipe = write_recipe(&f, &format!("mirror = \"{}\"", server.base_url()));
    let cache = f.path("cache");
    assert_ok(&resolve(&recipe, &cache, &[]));
    let kept: Vec<PathBuf> = std::fs::read_dir(cache.join("indexes/sha256"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(kept.len(), 1, "one InRelease kept: {kept:?}");
    let text = std::fs::read_to_string(&kept[0]).unwrap();
    std::fs::write(&kept[0], text.replacen("Suite: stable", "Suite: stablE", 1)).unwrap();
    assert_fails_with(
        &resolve(&recipe, &cache, &["--offline"]),
        &["dists/fixture/InRelease", "signature"],
    );
}

/// Offline does not stretch a Release's validity: Valid-Until is checked
/// against the clock on every run.
#[test]
fn a_kept_index_still_expires_offline() {
    let f = DebFixture::new();
    let repo = fixture_repo(&f, "repo", |r| r.valid_until_offset = Some(3));
    let server = TestServer::serve(&repo);
    let recipe = write_recipe(&f, &format!("mirror = \"{}\"", server.base_url()));
    let cache = f.path("cache");
    assert_ok(&resolve(&recipe, &cache, &[]));
    std::thread::sleep(std::time::Duration::from_secs(5));
    assert_fails_with(
        &resolve(&recipe, &cache, &["--offline"]),
        &["InRelease", "Valid-Until"],
    );
}

#[test]
fn a_file_mirror_builds_online_and_offline_without_an_apt_source() {
    if !is_root() {
        skip("needs root (chown while unpacking)");
        return;
    }
    let f = DebFixture::new();
    let repo = fixture_repo(&f, "mirror dir", |_| {});
    let recipe = write_recipe(&f, "");
    let mirror = file_url(&repo);
    let (online, first) = build(
        &recipe,
        &f.path("cache-1"),
        &f.path("online"),
        true,
        &["--mirror", &mirror],
    );
    assert_ok(&online);
    // A local directory is not the network: --offline reads it, cold cache.
    let (offline, second) = build(
        &recipe,
        &f.path("cache-2"),
        &f.path("offline"),
        true,
        &["--mirror", &mirror, "--offline"],
    );
    assert_ok(&offline);
    assert_eq!(first, second);
    // The image cannot reach the build host's directory: no apt source.
    assert!(!f.path("offline.rootfs/etc/apt/sources.list").exists());
    assert!(f.path("offline.rootfs/usr/share/hello/greeting").is_file());
}

/// Rewrites the Packages indexes with `edit` and signs a Release naming
/// their new digests.
fn resign(f: &DebFixture, repo: &Path, edit: impl Fn(&str) -> String) {
    let dists = repo.join("dists/fixture");
    let bin = dists.join("main/binary-arm64");
    let packages = edit(&std::fs::read_to_string(bin.join("Packages")).unwrap());
    let files = [
        ("Packages", packages.as_bytes().to_vec()),
        ("Packages.xz", debrepo::xz(packages.as_bytes())),
        ("Packages.gz", debrepo::gzip(packages.as_bytes())),
    ];
    let release = std::fs::read_to_string(dists.join("Release")).unwrap();
    let head = release.split("SHA256:\n").next().unwrap();
    let mut text = format!("{head}SHA256:\n");
    for (name, bytes) in &files {
        std::fs::write(bin.join(name), bytes).unwrap();
        text.push_str(&format!(
            " {} {:>8} main/binary-arm64/{name}\n",
            hex::encode(sha2::Sha256::digest(bytes)),
            bytes.len()
        ));
    }
    std::fs::write(dists.join("Release"), &text).unwrap();
    std::fs::write(dists.join("InRelease"), f.key.clearsign(&text)).unwrap();
}

/// HOSTILE 1 for URLs: a signed index whose Filename climbs out of a
/// `file://` mirror (percent-encoded, so it survives the Packages parser's
/// own `..` check) must not read the file it points at, even one with the
/// right size and hash.
#[test]
fn a_filename_escaping_the_file_mirror_is_refused() {
    let f = DebFixture::new();
    let repo = fixture_repo(&f, "top/mirror", |_| {});
    let real = "pool/main/h/hello-fixture/hello-fixture_2.0-1_arm64.deb";
    std::fs::copy(repo.join(real), f.path("top/secret.deb")).unwrap();
    resign(&f, &repo, |text| {
        text.replace(
            &format!("Filename: {real}"),
            "Filename: pool/%2e%2e/secret.deb",
        )
    });
    let (out, _) = build(
        &write_recipe(&f, ""),
        &f.path("cache"),
        &f.path("out"),
        false,
        &["--mirror", &file_url(&repo)],
    );
    assert_fails_with(&out, &["pool/%2e%2e/secret.deb", "leave the mirror"]);
    assert!(!f.path("out").exists());
}

/// A snapshot service: `<root>/archive/debian/<timestamp>/` holding a
/// Release whose Valid-Until passed long ago.
fn snapshot_service(f: &DebFixture) -> PathBuf {
    let root = f.path("snapshot-service");
    fixture_repo(
        f,
        &format!("snapshot-service/archive/debian/{SNAPSHOT}"),
        |r| {
            r.date_offset = -30 * 86400;
            r.valid_until_offset = Some(-23 * 86400);
        },
    );
    root
}

#[test]
fn a_snapshot_source_builds_although_its_release_has_expired() {
    if !is_root() {
        skip("needs root (chown while unpacking)");
        return;
    }
    let f = DebFixture::new();
    let server = TestServer::serve(&snapshot_service(&f));
    let service = server.base_url();
    let recipe = write_recipe(
        &f,
        &format!("mirror = \"{service}\"\nsnapshot = \"{SNAPSHOT}\""),
    );
    let (out, _) = build(&recipe, &f.path("cache"), &f.path("out"), true, &[]);
    assert_ok(&out);
    assert!(
        stderr(&out).contains(&format!("{service}/archive/debian/{SNAPSHOT}")),
        "{}",
        stderr(&out)
    );
    // apt in the image must accept the same expired Release.
    assert_eq!(
        std::fs::read_to_string(f.path("out.rootfs/etc/apt/sources.list")).unwrap(),
        format!("deb [check-valid-until=no] {service}/archive/debian/{SNAPSHOT} fixture main\n")
    );
}

#[test]
fn the_same_expired_release_is_refused_without_snapshot() {
    let f = DebFixture::new();
    let server = TestServer::serve(&snapshot_service(&f));
    let direct = format!("{}/archive/debian/{SNAPSHOT}", server.base_url());
    let recipe = write_recipe(&f, &format!("mirror = \"{direct}\""));
    let (out, _) = build(&recipe, &f.path("cache"), &f.path("out"), false, &[]);
    assert_fails_with(&out, &["InRelease", "Valid-Until"]);
    assert!(!f.path("out").exists());
}

#[test]
fn a_snapshot_needs_a_service_root_and_ignores_host_sources() {
    let f = DebFixture::new();
    let recipe = write_recipe(&f, &format!("snapshot = \"{SNAPSHOT}\""));
    assert_fails_with(
        &resolve(&recipe, &f.path("cache"), &[]),
        &[SNAPSHOT, "--mirror", "snapshot service"],
    );
}

/// Alpine: a `file://` mirror with `--offline` and a cold cache, then an
/// HTTP mirror online and the same build offline once it is gone.
#[test]
fn alpine_builds_from_a_file_mirror_and_offline() {
    if !is_root() {
        skip("needs root (chown while unpacking)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // A foreign architecture: package scripts do not run, so the busybox
    // payload is only file content.
    let repo = fixture::alpine_repo(&dir.path().join("mirror"), "aarch64", b"not a real busybox");
    let recipe = dir.path().join("alpine.toml");
    std::fs::write(&recipe, fixture::alpine_source("aarch64")).unwrap();
    let keys = repo.keys_dir.display().to_string();
    let path = |p: &str| dir.path().join(p);

    let file_mirror = file_url(&repo.root);
    let (local, from_file) = build(
        &recipe,
        &path("cache-file"),
        &path("from-file"),
        false,
        &["--mirror", &file_mirror, "--keys", &keys, "--offline"],
    );
    assert_ok(&local);

    let server = TestServer::serve(&repo.root);
    let http = server.base_url();
    let (online, first) = build(
        &recipe,
        &path("cache"),
        &path("online"),
        false,
        &["--mirror", &http, "--keys", &keys],
    );
    assert_ok(&online);
    drop(server);
    let (offline, second) = build(
        &recipe,
        &path("cache"),
        &path("offline"),
        false,
        &["--mirror", &http, "--keys", &keys, "--offline"],
    );
    assert_ok(&offline);
    assert_eq!(first, second);
    // The file:// build differs only in /etc/apk/repositories, which names
    // the mirror it was built from.
    assert!(!from_file.is_empty() && from_file != first);
}

/// Only verified copies are kept: a tampered download online neither
/// passes nor replaces the last good copy an offline run uses.
#[test]
fn a_tampered_download_does_not_replace_the_kept_index() {
    let f = DebFixture::new();
    let repo = fixture_repo(&f, "repo", |_| {});
    let server = TestServer::serve(&repo);
    let recipe = write_recipe(&f, &format!("mirror = \"{}\"", server.base_url()));
    let cache = f.path("cache");
    assert_ok(&resolve(&recipe, &cache, &[]));
    let inrelease = repo.join("dists/fixture/InRelease");
    let text = std::fs::read_to_string(&inrelease).unwrap();
    std::fs::write(
        &inrelease,
        text.replacen("Suite: stable", "Suite: stablE", 1),
    )
    .unwrap();
    assert_fails_with(&resolve(&recipe, &cache, &[]), &["InRelease", "signature"]);
    assert_ok(&resolve(&recipe, &cache, &["--offline"]));
}
