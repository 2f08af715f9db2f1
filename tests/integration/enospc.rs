//! A full disk under the real `rootstrap build` (HOSTILE.md item 33, issue
//! 17 item 2): the tree being extracted, the package cache and the outputs
//! each on a small tmpfs the test mounts (root only). The build must fail
//! naming what it could not write, leave nothing at the output paths and
//! no tree, and leave a cache that the next build — with room again — uses.

use crate::common;
use crate::signals::{list, mirror, Scene};

use std::path::{Path, PathBuf};
use std::process::Command;

/// A tmpfs of `size` mounted on a new directory; unmounted when dropped.
pub(crate) struct SmallDisk {
    dir: PathBuf,
}

impl SmallDisk {
    pub(crate) fn mount(dir: PathBuf, size: &str) -> SmallDisk {
        std::fs::create_dir_all(&dir).unwrap();
        let status = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0755"),
                "tmpfs",
            ])
            .arg(&dir)
            .status()
            .expect("run mount");
        assert!(
            status.success(),
            "mount -t tmpfs on {}: {status}",
            dir.display()
        );
        SmallDisk { dir }
    }

    /// Room again: the same file system, grown.
    pub(crate) fn grow(&self, size: &str) {
        let status = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.dir)
            .status()
            .expect("run mount");
        assert!(status.success(), "remount {}: {status}", self.dir.display());
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}

/// Root (to mount), and the fixture mirror.
fn ready() -> Option<&'static crate::signals::Mirror> {
    if !common::run::is_root() {
        common::skip::skip("mounting a small tmpfs needs root");
        return None;
    }
    mirror()
}

/// Runs the build to its end; (success, stderr).
fn build(scene: &Scene) -> (bool, String) {
    let mut b = scene.start();
    let status = b.wait_end("starting the build");
    (status.success(), b.stderr())
}

fn assert_full_disk_failure(scene: &Scene, ok: bool, stderr: &str, names: &Path) {
    assert!(!ok, "the build succeeded on a full disk:\n{stderr}");
    let error = stderr
        .lines()
        .find(|l| l.starts_with("rootstrap: error"))
        .unwrap_or_else(|| panic!("no error line:\n{stderr}"));
    eprintln!("{error}");
    assert!(
        error.contains("No space left on device"),
        "the error does not say the disk is full:\n{stderr}"
    );
    assert!(
        error.contains(&*names.to_string_lossy()),
        "the error does not name {}:\n{stderr}",
        names.display()
    );
    let out = list(&scene.path("out"));
    assert!(out.is_empty(), "output left behind: {out:?}");
    for sub in ["work", "tmp"] {
        let left = list(&scene.path(sub));
        assert!(left.is_empty(), "left in {sub}/: {left:?}");
    }
}

#[test]
fn a_full_disk_while_extracting() {
    let Some(m) = ready() else { return };
    let scene = Scene::new(m, &["bulk"]);
    // The bulk package alone unpacks to 24 MiB.
    let disk = SmallDisk::mount(scene.path("work"), "8m");
    let (ok, stderr) = build(&scene);
    assert_full_disk_failure(&scene, ok, &stderr, &scene.path("work"));
    let fetched = scene.server.requests(&m.bulk_deb);
    disk.grow("256m");
    let (ok, stderr) = build(&scene);
    assert!(ok, "the build with room again failed:\n{stderr}");
    // The packages came from the cache the failed build filled.
    assert_eq!(
        scene.server.requests(&m.bulk_deb),
        fetched,
        "the build with room again downloaded the bulk package again:\n{stderr}"
    );
    drop(disk);
}

#[test]
fn a_full_disk_while_caching_packages() {
    let Some(m) = ready() else { return };
    let scene = Scene::new(m, &["bulk"]);
    // Room for the index and the small packages, not for bulk's 24 MiB.
    let disk = SmallDisk::mount(scene.path("cache"), "12m");
    let (ok, stderr) = build(&scene);
    assert_full_disk_failure(&scene, ok, &stderr, &scene.path("cache"));
    // The failed build removed its own half-written file: the next build
    // would sweep it, but only when it is alone on the cache.
    let temps = || -> Vec<String> {
        walk_names(&scene.path("cache"))
            .into_iter()
            .filter(|n| n.starts_with(".tmp-"))
            .collect()
    };
    assert!(temps().is_empty(), "the failed build left: {:?}", temps());
    disk.grow("256m");
    let (ok, stderr) = build(&scene);
    assert!(ok, "the build with room again failed:\n{stderr}");
    assert!(
        temps().is_empty(),
        "temporary files left in the cache: {:?}",
        temps()
    );
    drop(disk);
}

#[test]
fn a_full_disk_while_writing_the_outputs() {
    let Some(m) = ready() else { return };
    let scene = Scene::new(m, &["bulk"]);
    // Room for one copy of the 24 MiB layer (the oci: output), not for the
    // archives after it.
    let disk = SmallDisk::mount(scene.path("out"), "40m");
    let (ok, stderr) = build(&scene);
    assert_full_disk_failure(&scene, ok, &stderr, &scene.path("out"));
    disk.grow("256m");
    let (ok, stderr) = build(&scene);
    assert!(ok, "the build with room again failed:\n{stderr}");
    assert!(
        stderr.contains("reuse the cached base layer"),
        "the layer the failed build packed was not reused:\n{stderr}"
    );
    for name in ["oci", "image.tar", "image-oci.tar"] {
        assert!(scene.path("out").join(name).exists(), "no {name}");
    }
    drop(disk);
}

/// `build -f`: the first output fits, a later one does not; the finished
/// one goes too, and the build with room again writes all three.
#[test]
fn a_full_disk_at_a_later_output_of_a_dockerfile_build() {
    let Some(m) = ready() else { return };
    let scene = Scene::new(m, &[]);
    let outputs = [
        format!("oci:{}", scene.path("out/oci").display()),
        format!("docker-archive:{}", scene.path("out/image.tar").display()),
        format!("oci-archive:{}", scene.path("out/image-oci.tar").display()),
    ];
    // Room for one copy of the 24 MiB layer.
    let disk = SmallDisk::mount(scene.path("out"), "40m");
    let mut b = scene.start_dockerfile(24, &[], &outputs);
    let status = b.wait_end("a Dockerfile build on a small disk");
    assert_full_disk_failure(&scene, status.success(), &b.stderr(), &scene.path("out"));
    assert!(
        !b.stdout().contains("sha256:"),
        "a failed build reported an output:\n{}",
        b.stdout()
    );
    disk.grow("256m");
    let mut b = scene.start_dockerfile(24, &[], &outputs);
    let status = b.wait_end("the Dockerfile build with room again");
    assert!(
        status.success(),
        "the build with room again failed:\n{}",
        b.stderr()
    );
    for name in ["oci", "image.tar", "image-oci.tar"] {
        assert!(scene.path("out").join(name).exists(), "no {name}");
    }
    drop(disk);
}

/// `build -f --platform A,B`: the image index fits in the first `oci:`
/// output, not in the second.
#[test]
fn a_full_disk_at_a_later_output_of_a_multi_platform_build() {
    let Some(m) = ready() else { return };
    let scene = Scene::new(m, &[]);
    let outputs = [
        format!("oci:{}", scene.path("out/one").display()),
        format!("oci:{}", scene.path("out/two").display()),
    ];
    // Both platforms share the 24 MiB layer: one layout fits.
    let disk = SmallDisk::mount(scene.path("out"), "40m");
    let platforms = ["--platform", "linux/amd64,linux/arm64"];
    let mut b = scene.start_dockerfile(24, &platforms, &outputs);
    let status = b.wait_end("a multi-platform build on a small disk");
    assert_full_disk_failure(&scene, status.success(), &b.stderr(), &scene.path("out"));
    disk.grow("256m");
    let mut b = scene.start_dockerfile(24, &platforms, &outputs);
    let status = b.wait_end("the multi-platform build with room again");
    assert!(
        status.success(),
        "the build with room again failed:\n{}",
        b.stderr()
    );
    for name in ["one", "two"] {
        assert!(
            scene.path("out").join(name).join("index.json").exists(),
            "no {name}"
        );
    }
    drop(disk);
}

fn walk_names(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            found.extend(walk_names(&entry.path()));
        }
        found.push(entry.file_name().to_string_lossy().into_owned());
    }
    found
}
