//! `rootstrap save` to oci:, oci-archive: and docker-archive:, and
//! `rootstrap diff --platform`, on a multi-platform image (an image index
//! over linux/amd64 and linux/arm64/v8) and a single image kept in a
//! temporary local store. The images are made with ImageBuilder: no root,
//! network or emulator needed.

use crate::common::run::{self, stderr};
use crate::common::skip::{not_applicable, skip};
use crate::support_images::{config, file, image, Entry};

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use rootstrap::image::oci::{ImageConfig, Platform};
use rootstrap::image::store::ImageStore;
use rootstrap::image::{fsck, ImageReference, ImageSource, OpenedImage};

const MULTI: &str = "itest/save-multi:1";
const SINGLE: &str = "itest/save-single:1";
/// An index lacking arm64, for diff's error.
const AMD64_ONLY: &str = "itest/save-amd64-only:1";

struct Setup {
    tmp: tempfile::TempDir,
    cache: PathBuf,
    /// The multi-platform image's index digest, as the store lists it.
    index_digest: String,
    /// Each platform's manifest digest: amd64, arm64.
    manifests: [String; 2],
}

impl Setup {
    fn out(&self, name: &str) -> PathBuf {
        self.tmp.path().join("out").join(name)
    }

    fn cli(&self, args: &[&str]) -> Output {
        run::rootstrap()
            .args(args)
            .arg("--cache-dir")
            .arg(&self.cache)
            .output()
            .unwrap()
    }
}

fn platform_config(arch: &str, variant: Option<&str>) -> ImageConfig {
    let mut c = config(&["PLATFORM=x"]);
    c.architecture = arch.into();
    c.variant = variant.map(str::to_owned);
    c
}

/// One platform's image: the same files, but `/arch` names the platform.
fn layers(arch: &'static str) -> Vec<Vec<Entry>> {
    vec![
        vec![Entry::Dir("etc"), file("etc/os-release", "ID=itest\n")],
        vec![file("arch", arch)],
    ]
}

/// The host must be x86_64: the default platform of every command here is
/// this machine's, and the images are amd64 and arm64.
fn setup(test: &str) -> Option<Setup> {
    if std::env::consts::ARCH != "x86_64" {
        not_applicable(format!("{test}: the host platform must be linux/amd64"));
        return None;
    }
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    std::fs::create_dir_all(tmp.path().join("out")).unwrap();
    let cache = tmp.path().join("cache");
    let store = ImageStore::new(&cache);

    let amd64 = image(&work, platform_config("amd64", None), &layers("amd64"));
    let arm64 = image(
        &work,
        platform_config("arm64", Some("v8")),
        &layers("arm64"),
    );
    let layout = work.join("multi");
    let written =
        rootstrap::image::multi::write_index_layout(&[&amd64, &arm64], &layout, None).unwrap();
    let stored = store
        .put_index_layout(&layout, &ImageReference::parse(MULTI).unwrap())
        .unwrap();
    assert_eq!(stored.digest, written.index_digest.to_string());

    let only = work.join("amd64-only");
    rootstrap::image::multi::write_index_layout(&[&amd64], &only, None).unwrap();
    store
        .put_index_layout(&only, &ImageReference::parse(AMD64_ONLY).unwrap())
        .unwrap();
    store
        .put(&amd64, &ImageReference::parse(SINGLE).unwrap())
        .unwrap();
    // What a build's docker-archive output of it holds.
    amd64
        .write(
            &rootstrap::image::Output::DockerArchive(work.join("single-build.tar")),
            Some(&ImageReference::parse(SINGLE).unwrap()),
        )
        .unwrap();
    Some(Setup {
        tmp,
        cache,
        index_digest: stored.digest,
        manifests: [
            written.manifests[0].digest.clone(),
            written.manifests[1].digest.clone(),
        ],
    })
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn arch(source: &ImageSource, platform: Option<(&str, Option<&str>)>) -> OpenedImage {
    let image = match platform {
        Some((arch, variant)) => OpenedImage::open_platform(
            source,
            None,
            &Platform {
                architecture: arch.into(),
                os: "linux".into(),
                variant: variant.map(str::to_owned),
            },
        ),
        None => OpenedImage::open(source, None),
    }
    .unwrap();
    fsck(&image).unwrap();
    image
}

/// What a directory holds besides `keep`: a failed save leaves nothing,
/// not even its temporary file.
fn leftovers(dir: &Path, keep: &[PathBuf]) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| !keep.contains(p))
        .map(|p| p.display().to_string())
        .collect()
}

/// `save -o oci-archive:` writes the whole index, the store's digest, and
/// holds the same layout as `save -o oci:`.
#[test]
fn oci_archive_holds_the_whole_index() {
    let Some(s) = setup("oci_archive_holds_the_whole_index") else {
        return;
    };
    let tar = s.out("multi.tar");
    let spec = format!("oci-archive:{}", tar.display());
    let o = s.cli(&["save", MULTI, "-o", &spec]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), format!("{spec}  {}\n", s.index_digest));

    let source = ImageSource::OciArchive(tar.clone());
    for (i, platform) in [("amd64", None), ("arm64", Some("v8"))].iter().enumerate() {
        let image = arch(&source, Some(*platform));
        let index = image.index.as_ref().unwrap();
        assert_eq!(index.digest, s.index_digest);
        assert_eq!(index.platforms, ["linux/amd64", "linux/arm64/v8"]);
        assert_eq!(image.manifest_digest.unwrap().to_string(), s.manifests[i]);
        assert_eq!(image.reference.as_deref(), Some("1"));
    }

    // The same files as the oci: layout save writes.
    let dir = s.out("multi-oci");
    let o = s.cli(&["save", MULTI, "-o", &format!("oci:{}", dir.display())]);
    assert!(o.status.success(), "{}", stderr(&o));
    let listing = Command::new("tar").arg("-tf").arg(&tar).output().unwrap();
    let mut members: Vec<String> = stdout(&listing)
        .lines()
        .filter(|l| !l.ends_with('/') && *l != "blobs" && *l != "blobs/sha256")
        .map(str::to_owned)
        .collect();
    members.sort();
    let mut files: Vec<String> = walkdir(&dir)
        .into_iter()
        .map(|p| p.strip_prefix(&dir).unwrap().display().to_string())
        .collect();
    files.sort();
    assert_eq!(members, files);
    for member in &files {
        let o = Command::new("tar")
            .arg("-xOf")
            .arg(&tar)
            .arg(member)
            .output()
            .unwrap();
        assert_eq!(
            o.stdout,
            std::fs::read(dir.join(member)).unwrap(),
            "{member}"
        );
    }

    // Another tool reads the archive's index: skopeo, when installed.
    match Command::new("skopeo")
        .args(["inspect", "--raw"])
        .arg(&spec)
        .output()
    {
        Ok(o) if o.status.success() => {
            let digest = rootstrap::image::Sha256Digest::of(&o.stdout).to_string();
            assert_eq!(digest, s.index_digest);
        }
        Ok(o) => panic!("skopeo inspect {spec}: {}", stderr(&o)),
        Err(_) => skip("skopeo is not installed"),
    }
}

fn walkdir(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walkdir(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// `save -o docker-archive:` takes one platform from the index: this
/// machine's, or `--platform`'s; rootstrap (and Docker, when a daemon is
/// reachable) reads it back as that platform's image under `NAME:TAG`.
#[test]
fn docker_archive_takes_one_platform() {
    let Some(s) = setup("docker_archive_takes_one_platform") else {
        return;
    };
    let docker = Command::new("docker")
        .arg("info")
        .output()
        .is_ok_and(|o| o.status.success());
    if !docker {
        skip("no running docker daemon (docker info failed): the archives are not loaded");
    }
    // The name docker load tags the image with: this test's own, in a
    // daemon others use too.
    let name = format!("rootstrap-save-test/multi:{}", std::process::id());
    ImageStore::new(&s.cache)
        .put_index_layout(
            &s.tmp.path().join("work/multi"),
            &ImageReference::parse(&name).unwrap(),
        )
        .unwrap();
    for (i, (platform, arch_name, variant)) in [
        (None, "amd64", None),
        (Some("linux/arm64"), "arm64", Some("v8")),
    ]
    .into_iter()
    .enumerate()
    {
        let tar = s.out(&format!("{arch_name}.tar"));
        let spec = format!("docker-archive:{}", tar.display());
        let mut args = vec!["save", &name, "-o", &spec];
        if let Some(p) = platform {
            args.extend(["--platform", p]);
        }
        let o = s.cli(&args);
        assert!(o.status.success(), "{}", stderr(&o));
        assert_eq!(stdout(&o), format!("{spec}  {}\n", s.manifests[i]));
        assert!(
            stderr(&o).contains(&s.index_digest),
            "says which index it took the image from: {}",
            stderr(&o)
        );

        let image = arch(&ImageSource::DockerArchive(tar.clone()), None);
        assert_eq!(image.config.architecture, arch_name);
        assert_eq!(image.config.variant.as_deref(), variant);
        assert_eq!(image.manifest_digest.unwrap().to_string(), s.manifests[i]);
        assert_eq!(image.layers.len(), 2);
        // docker load reads manifest.json: tagged NAME:TAG.
        let manifest = Command::new("tar")
            .arg("-xOf")
            .arg(&tar)
            .arg("manifest.json")
            .output()
            .unwrap();
        let manifest: serde_json::Value = serde_json::from_slice(&manifest.stdout).unwrap();
        assert_eq!(manifest[0]["RepoTags"], serde_json::json!([name]));

        // The command line reads it back too.
        let inspected = s.cli(&["inspect", &spec]);
        assert!(inspected.status.success(), "{}", stderr(&inspected));
        assert!(
            stdout(&inspected).contains(&s.manifests[i]),
            "{}",
            stdout(&inspected)
        );
        if docker {
            docker_load(&tar, &name, arch_name);
        }
    }

    // A single image needs no --platform, and gets the same bytes a build's
    // docker-archive output has.
    let tar = s.out("single.tar");
    let o = s.cli(&[
        "save",
        SINGLE,
        "-o",
        &format!("docker-archive:{}", tar.display()),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let image = arch(&ImageSource::DockerArchive(tar.clone()), None);
    assert_eq!(image.manifest_digest.unwrap().to_string(), s.manifests[0]);
    assert!(stderr(&o).is_empty(), "{}", stderr(&o));
    assert!(
        std::fs::read(&tar).unwrap()
            == std::fs::read(s.tmp.path().join("work/single-build.tar")).unwrap(),
        "save writes the archive the build wrote"
    );
}

/// `docker load` the archive and check its architecture.
fn docker_load(tar: &Path, name: &str, arch_name: &str) {
    let load = Command::new("docker")
        .arg("load")
        .arg("-i")
        .arg(tar)
        .output()
        .unwrap();
    let inspect = Command::new("docker")
        .args(["image", "inspect", "--format", "{{.Architecture}}", name])
        .output()
        .unwrap();
    let _ = Command::new("docker").args(["rmi", "-f", name]).output();
    assert!(load.status.success(), "{}", stderr(&load));
    assert!(inspect.status.success(), "{}", stderr(&inspect));
    assert_eq!(stdout(&inspect).trim(), arch_name);
}

/// A platform the image does not have, `--platform` on a whole-image
/// output, or a damaged blob in the store: a clear error, and nothing at
/// the output path.
#[test]
fn a_failed_save_leaves_nothing() {
    let Some(s) = setup("a_failed_save_leaves_nothing") else {
        return;
    };
    let out_dir = s.tmp.path().join("out");
    let tar = s.out("s390x.tar");
    let o = s.cli(&[
        "save",
        MULTI,
        "-o",
        &format!("docker-archive:{}", tar.display()),
        "--platform",
        "linux/s390x",
    ]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.contains("no image for linux/s390x")
            && err.contains("linux/amd64, linux/arm64/v8")
            && err.contains(MULTI),
        "{err}"
    );
    assert!(
        leftovers(&out_dir, &[]).is_empty(),
        "{:?}",
        leftovers(&out_dir, &[])
    );

    // A single image for another platform.
    let o = s.cli(&[
        "save",
        SINGLE,
        "-o",
        &format!("docker-archive:{}", tar.display()),
        "--platform",
        "linux/arm64",
    ]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.contains("single-platform image for linux/amd64, not linux/arm64"),
        "{err}"
    );
    assert!(!tar.exists());

    // The whole index has every platform: --platform picks none of them.
    for kind in ["oci-archive", "oci"] {
        let o = s.cli(&[
            "save",
            MULTI,
            "-o",
            &format!("{kind}:{}", tar.display()),
            "--platform",
            "linux/arm64",
        ]);
        assert_eq!(o.status.code(), Some(1), "{kind}");
        assert!(
            stderr(&o).contains("holds the whole image"),
            "{}",
            stderr(&o)
        );
        assert!(!tar.exists(), "{kind}");
    }
    let o = s.cli(&["save", MULTI, "-o", &format!("tar:{}", tar.display())]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("save writes oci:DIR, oci-archive:FILE or docker-archive:FILE"),
        "{}",
        stderr(&o)
    );

    // An existing archive stays as it was when a save onto it fails.
    let kept = s.out("kept.tar");
    std::fs::write(&kept, "old").unwrap();
    // A layer blob of the arm64 image, damaged in the store.
    let arm64 = OpenedImage::open_platform(
        &ImageSource::OciDir(s.cache.join("images")),
        Some(MULTI),
        &Platform {
            architecture: "arm64".into(),
            os: "linux".into(),
            variant: None,
        },
    )
    .unwrap();
    let blob = s.cache.join("images").join(&arm64.layers[1].member);
    drop(arm64);
    let mut bytes = std::fs::read(&blob).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&blob, bytes).unwrap();
    for (kind, platform) in [
        ("oci-archive", &[][..]),
        ("docker-archive", &["--platform", "linux/arm64"][..]),
    ] {
        let spec = format!("{kind}:{}", kept.display());
        let mut args = vec!["save", MULTI, "-o", &spec];
        args.extend(platform);
        let o = s.cli(&args);
        assert_eq!(o.status.code(), Some(1), "{spec}");
        assert!(stderr(&o).contains("is corrupt"), "{spec}: {}", stderr(&o));
        assert_eq!(std::fs::read(&kept).unwrap(), b"old", "{spec}");
    }
    let left = leftovers(&out_dir, std::slice::from_ref(&kept));
    assert!(left.is_empty(), "{left:?}");
}

/// `diff --platform` compares that platform's image of a multi-platform
/// image (this machine's without it); a docker archive is one image,
/// compared as it is; a side lacking the platform is an error naming the
/// platforms it has.
#[test]
fn diff_picks_a_platform() {
    let Some(s) = setup("diff_picks_a_platform") else {
        return;
    };
    let arm64_tar = s.out("arm64.tar");
    let arm64_spec = format!("docker-archive:{}", arm64_tar.display());
    let o = s.cli(&[
        "save",
        MULTI,
        "-o",
        &arm64_spec,
        "--platform",
        "linux/arm64",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));

    let same = s.cli(&["diff", MULTI, &arm64_spec, "--platform", "linux/arm64"]);
    assert_eq!(same.status.code(), Some(0), "{}", stderr(&same));
    let text = stdout(&same);
    assert!(
        text.starts_with(&format!(
            "--- {} (linux/arm64/v8)\n+++ {}\n",
            s.manifests[1], s.manifests[1]
        )),
        "{text}"
    );
    assert!(text.ends_with("identical\n"), "{text}");

    // Without --platform the index gives this machine's image: amd64.
    let o = s.cli(&["diff", MULTI, &arm64_spec, "--json"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let d: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(d["a"], s.manifests[0].as_str());
    assert_eq!(d["a_platform"], "linux/amd64");
    assert!(d.get("b_platform").is_none(), "{d}");
    let config: Vec<&str> = d["config"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["path"].as_str().unwrap())
        .collect();
    assert!(config.contains(&"architecture"), "{config:?}");
    assert!(
        d["files"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["path"] == "/arch" && f["change"] == "changed"),
        "{d}"
    );

    // Both sides from the store, each its arm64 image; one lacks it.
    let o = s.cli(&["diff", MULTI, AMD64_ONLY, "--platform", "linux/arm64"]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(
        err.contains(AMD64_ONLY)
            && err.contains("no image for linux/arm64")
            && err.contains("it has: linux/amd64"),
        "{err}"
    );
    let o = s.cli(&["diff", MULTI, AMD64_ONLY]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}
