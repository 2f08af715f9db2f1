//! `rootstrap diff` and rootstrap::image::diff on images made with
//! ImageBuilder: config paths, packages, files and their attributes, whiteouts,
//! and the diff(1)-like exit codes.

use crate::common::run;
use crate::support_images;

use std::collections::BTreeMap;
use std::path::Path;

use rootstrap::image::diff::{diff_images, AttributeChange, FileChange, FileTree};
use rootstrap::image::{ImageSource, OpenedImage, Output};
use serde_json::Value;
use support_images::{config, file, image, Entry, EPOCH};

fn status(pkgs: &[(&str, &str)]) -> String {
    pkgs.iter()
        .map(|(n, v)| {
            format!(
                "Package: {n}\nStatus: install ok installed\nArchitecture: amd64\nVersion: {v}\n"
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

fn layers_a() -> Vec<Vec<Entry>> {
    vec![vec![
        Entry::Dir("etc"),
        file("etc/a", "one"),
        file("etc/b", "bee"),
        file("etc/mtime", "same"),
        Entry::Symlink("etc/link", "a"),
        file("etc/attr", "x"),
        file(
            "var/lib/dpkg/status",
            leak(status(&[("p1", "1.0"), ("p2", "1.0"), ("same", "3")])),
        ),
    ]]
}

fn layers_b() -> Vec<Vec<Entry>> {
    let xattrs: BTreeMap<String, Vec<u8>> = [("user.k".to_string(), b"v".to_vec())].into();
    vec![
        vec![
            Entry::Dir("etc"),
            Entry::FileWith("etc/a", b"two!".to_vec(), 0o755, EPOCH, BTreeMap::new()),
            file("etc/b", "bee"),
            Entry::FileWith(
                "etc/mtime",
                b"same".to_vec(),
                0o644,
                EPOCH + 1,
                BTreeMap::new(),
            ),
            Entry::Symlink("etc/link", "b"),
            Entry::FileWith("etc/attr", b"x".to_vec(), 0o644, EPOCH, xattrs),
            file(
                "var/lib/dpkg/status",
                leak(status(&[("p1", "1.1"), ("p2", "1.0"), ("same", "3")])),
            ),
        ],
        // The second layer removes etc/b and p2, adds etc/c and p3.
        vec![
            Entry::Whiteout("etc/b"),
            file("etc/c", "new"),
            file(
                "var/lib/dpkg/status",
                leak(status(&[("p1", "1.1"), ("p3", "0.1"), ("same", "3")])),
            ),
        ],
    ]
}

fn write(work: &Path, name: &str, env: &[&str], layers: &[Vec<Entry>]) -> String {
    let b = image(work, config(env), layers);
    let dir = work.join(name);
    b.write(&Output::OciDir(dir.clone()), None).unwrap();
    format!("oci:{}", dir.display())
}

fn open(spec: &str) -> OpenedImage {
    OpenedImage::open(&ImageSource::parse(spec).unwrap(), None).unwrap()
}

fn attrs(changes: &[FileChange], path: &str) -> Vec<AttributeChange> {
    changes
        .iter()
        .find_map(|c| match c {
            FileChange::Changed {
                path: p,
                attributes,
            } if p == path => Some(attributes.clone()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("{path} not changed in {changes:#?}"))
}

#[test]
fn reports_config_packages_files_and_attributes() {
    let work = tempfile::tempdir().unwrap();
    let a = write(work.path(), "a", &["X=1"], &layers_a());
    let b = write(work.path(), "b", &["X=2"], &layers_b());
    let d = diff_images(&open(&a), &open(&b)).unwrap();
    assert!(!d.is_identical());

    let config_paths: Vec<&str> = d.config.iter().map(|c| c.path.as_str()).collect();
    assert!(config_paths.contains(&"config.Env[0]"), "{config_paths:?}");
    assert!(config_paths.contains(&"history[1]"), "{config_paths:?}");
    assert!(
        config_paths.contains(&"rootfs.diff_ids[0]"),
        "{config_paths:?}"
    );
    let env = d.config.iter().find(|c| c.path == "config.Env[0]").unwrap();
    assert_eq!((env.a.as_str(), env.b.as_str()), (Some("X=1"), Some("X=2")));

    let removed: Vec<&str> = d.packages.removed.iter().map(|p| p.name.as_str()).collect();
    let added: Vec<&str> = d.packages.added.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(removed, ["p2"]);
    assert_eq!(added, ["p3"]);
    assert_eq!(d.packages.changed.len(), 1);
    assert_eq!(d.packages.changed[0].name, "p1");
    assert_eq!(
        (
            d.packages.changed[0].a.as_str(),
            d.packages.changed[0].b.as_str()
        ),
        ("1.0", "1.1")
    );

    assert!(d.files.contains(&FileChange::Removed {
        path: "/etc/b".into()
    }));
    assert!(d.files.contains(&FileChange::Added {
        path: "/etc/c".into()
    }));
    let names = |v: Vec<AttributeChange>| v.into_iter().map(|a| a.attribute).collect::<Vec<_>>();
    assert_eq!(names(attrs(&d.files, "/etc/a")), ["sha256", "size", "mode"]);
    assert_eq!(names(attrs(&d.files, "/etc/mtime")), ["mtime"]);
    assert_eq!(names(attrs(&d.files, "/etc/link")), ["link_target"]);
    assert_eq!(names(attrs(&d.files, "/etc/attr")), ["xattr user.k"]);
    let mode = &attrs(&d.files, "/etc/a")[2];
    assert_eq!(
        (mode.a.as_str(), mode.b.as_str()),
        (Some("0644"), Some("0755"))
    );
    // Unchanged files are not listed.
    let all: Vec<String> = d.files.iter().map(|c| format!("{c:?}")).collect();
    assert!(!all.iter().any(|c| c.contains("\"/etc\"")), "{all:?}");

    let text = d.to_string();
    assert!(text.contains("~ p1 1.0 -> 1.1 (amd64)"), "{text}");
    assert!(text.contains("- /etc/b"), "{text}");
    let counts = d.attribute_counts();
    assert_eq!(counts.get("mtime"), Some(&1));
    // etc/a and the dpkg status file.
    assert_eq!(counts.get("sha256"), Some(&2));
    assert!(text.contains("changed attributes: "), "{text}");
    assert!(text.contains("xattr user.k 1"), "{text}");
}

#[test]
fn same_image_in_two_formats_is_identical() {
    let work = tempfile::tempdir().unwrap();
    let b = image(work.path(), config(&["X=1"]), &layers_b());
    let dir = work.path().join("oci");
    let tar = work.path().join("img.tar");
    b.write(&Output::OciDir(dir.clone()), None).unwrap();
    b.write(&Output::DockerArchive(tar.clone()), None).unwrap();
    let d = diff_images(
        &open(&format!("oci:{}", dir.display())),
        &open(&format!("docker-archive:{}", tar.display())),
    )
    .unwrap();
    assert!(d.is_identical(), "{d}");
    assert_eq!(d.a, d.b);
}

#[test]
fn merged_tree_applies_whiteouts() {
    let work = tempfile::tempdir().unwrap();
    let b = write(work.path(), "b", &[], &layers_b());
    let tree = FileTree::of_image(&open(&b)).unwrap();
    assert!(!tree.entries.contains_key(Path::new("etc/b")));
    assert!(tree.entries.contains_key(Path::new("etc/c")));
    let names: Vec<String> = tree.packages().into_iter().map(|p| p.name).collect();
    assert_eq!(names, ["p1", "p3", "same"]);
}

fn rootstrap(args: &[&str]) -> std::process::Output {
    run::rootstrap().args(args).output().unwrap()
}

#[test]
fn exit_codes_like_diff() {
    let work = tempfile::tempdir().unwrap();
    let a = write(work.path(), "a", &["X=1"], &layers_a());
    let b = write(work.path(), "b", &["X=2"], &layers_b());
    let same = rootstrap(&["diff", &a, &a]);
    assert_eq!(
        same.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&same.stderr)
    );
    assert!(String::from_utf8_lossy(&same.stdout).contains("identical"));

    let different = rootstrap(&["diff", &a, &b, "--json"]);
    assert_eq!(different.status.code(), Some(1));
    let v: Value = serde_json::from_slice(&different.stdout).unwrap();
    assert_eq!(v["packages"]["removed"][0]["name"], "p2");
    assert!(v["files"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["change"] == "added" && f["path"] == "/etc/c"));

    let missing = format!("oci:{}", work.path().join("nope").display());
    let error = rootstrap(&["diff", &a, &missing]);
    assert_eq!(error.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&error.stderr).contains("nope"));
}

#[test]
fn corrupt_layer_is_an_error_not_a_difference() {
    let work = tempfile::tempdir().unwrap();
    let a = write(work.path(), "a", &[], &layers_a());
    let img = open(&a);
    let layer = img.layers[0].member.clone();
    drop(img);
    let path = work.path().join("a").join(layer);
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 10;
    bytes[last] ^= 0xff;
    std::fs::write(&path, bytes).unwrap();
    let out = rootstrap(&["diff", &a, &a]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}
