//! Two and three `rootstrap build` processes at once on one `--cache-dir`
//! (package cache, layer cache and the local image store under it; HOSTILE.md item 35, issue
//! 17 item 2): builds of the same recipe and of different recipes must all
//! succeed with the digests they have alone, and leave a cache and a store
//! the next commands read without complaint.

use crate::common;
use crate::signals::{mirror, Build, Scene};

use std::path::Path;
use std::process::Command;

/// `rootstrap build` of `scene`'s recipe with the shared `cache`, tagged
/// `tag` into the store there, and an `oci:` output of its own.
fn start(scene: &Scene, cache: &Path, tag: &str) -> Build {
    let mut cmd = common::run::rootstrap_isolated();
    cmd.arg("build")
        .arg(scene.path("recipe.toml"))
        .arg("--cache-dir")
        .arg(cache)
        .arg("--work-dir")
        .arg(scene.path("work"))
        .args(["-t", tag])
        .arg("--output")
        .arg(format!("oci:{}", scene.path("out/oci").display()))
        .env("TMPDIR", scene.path("tmp"))
        .env("SOURCE_DATE_EPOCH", "1700000000");
    Build::spawn(cmd)
}

/// Waits for the build; its manifest digest (the last `sha256:` it prints)
/// and its stderr.
fn finish(mut build: Build, what: &str) -> (String, String) {
    let status = build.wait_end(what);
    let stdout = build.stdout();
    assert!(status.success(), "{what} failed:\n{}", build.stderr());
    let digest = stdout
        .split_whitespace()
        .rfind(|w| w.starts_with("sha256:"))
        .unwrap_or_else(|| panic!("{what}: no digest in {stdout:?}"))
        .to_owned();
    (digest, build.stderr())
}

fn digest_of(build: Build, what: &str) -> String {
    finish(build, what).0
}

fn rootstrap(cache: &Path, args: &[&str]) -> (bool, String, String) {
    let out = common::run::rootstrap_isolated()
        .args(args)
        .env("ROOTSTRAP_CACHE_DIR", cache)
        .output()
        .unwrap();
    (
        out.status.success(),
        common::run::text(&out.stdout),
        common::run::text(&out.stderr),
    )
}

/// A scene whose recipe names `mirror` (the image's apt source holds the
/// mirror's URL, so builds that are to match must share one).
fn scene_on(m: &crate::signals::Mirror, install: &[&str], mirror: &str) -> Scene {
    let scene = Scene::new(m, install);
    let recipe = scene.path("recipe.toml");
    let text = std::fs::read_to_string(&recipe).unwrap();
    std::fs::write(&recipe, text.replace(&scene.server.base_url(), mirror)).unwrap();
    scene
}

#[test]
fn concurrent_builds_share_one_cache_and_store() {
    let Some(m) = mirror() else { return };
    // (bulk, being Essential, is in both.)
    let small: [&str; 0] = [];
    let large = ["greeter"];
    let server = Scene::new(m, &[]);
    let url = server.server.base_url();
    // Each recipe alone, on a cache of its own: the digests to expect.
    let alone = |install: &[&str]| {
        let scene = scene_on(m, install, &url);
        let build = start(&scene, &scene.path("cache"), "faults/alone:1");
        digest_of(build, "a build alone")
    };
    let small_digest = alone(&small);
    let large_digest = alone(&large);
    assert_ne!(small_digest, large_digest);

    let shared = tempfile::tempdir().unwrap();
    let cache = shared.path().join("cache");
    // The same recipe twice and another one, all at once.
    let scenes = [
        scene_on(m, &large, &url),
        scene_on(m, &large, &url),
        scene_on(m, &small, &url),
    ];
    let tags = ["faults/large:a", "faults/large:b", "faults/small:1"];
    let builds: Vec<Build> = scenes
        .iter()
        .zip(tags)
        .map(|(s, tag)| start(s, &cache, tag))
        .collect();
    let (digests, logs): (Vec<String>, Vec<String>) = builds
        .into_iter()
        .zip(tags)
        .map(|(b, tag)| finish(b, &format!("the concurrent build of {tag}")))
        .unzip();
    // They ran at once: the later ones found the cache in use and shared it
    // (none waited for another to finish).
    let sharing = logs
        .iter()
        .filter(|l| l.contains("with another rootstrap"))
        .count();
    assert!(
        sharing >= 2,
        "the builds did not share the cache at once:\n{}",
        logs.join("\n")
    );
    assert_eq!(
        digests,
        [
            large_digest.clone(),
            large_digest.clone(),
            small_digest.clone()
        ]
    );

    // The store lists all three, and every blob it holds re-hashes.
    let (ok, images, err) = rootstrap(&cache, &["images"]);
    assert!(ok, "{err}");
    for tag in tags {
        let (repo, t) = tag.split_once(':').unwrap();
        assert!(
            images.lines().any(|l| l.contains(repo) && l.contains(t)),
            "{tag} missing from the store:\n{images}"
        );
        let (ok, _, err) = rootstrap(&cache, &["inspect", tag]);
        assert!(ok, "inspect {tag}: {err}");
    }
    // And the shared cache serves one more build, same digest.
    let again = scene_on(m, &large, &url);
    let build = start(&again, &cache, "faults/large:c");
    assert_eq!(digest_of(build, "a build after them"), large_digest);
    // Nothing a build left behind in the shared cache.
    let debris = Command::new("find")
        .arg(&cache)
        .args(["-name", ".rootstrap*", "-o", "-name", ".tmp-*"])
        .output()
        .unwrap();
    assert!(
        debris.stdout.is_empty(),
        "left in the cache: {}",
        common::run::text(&debris.stdout)
    );
}
