//! SBOMs of small Debian- and Alpine-shaped images made with ImageBuilder:
//! the fields and purls, determinism, the OCI artifacts (subject = image
//! manifest) and the files written after a build.

use crate::common::run;
use crate::support_images;

use std::collections::BTreeMap;
use std::path::Path;

use rootstrap::build::BuildOutput;
use rootstrap::image::packages::package_inventory;
use rootstrap::image::{fsck, ImageSource, OpenedImage, Output};
use rootstrap::sbom::{
    attach_to_oci_layout, cyclonedx, sidecar_path, spdx, write_build_sboms, ImageIdentity, Sbom,
    SbomFormat,
};
use serde_json::Value;
use support_images::{config, file, image, Entry};

const STATUS_1: &str = "\
Package: libc6
Status: install ok installed
Maintainer: GNU Libc Maintainers <debian-glibc@lists.debian.org>
Architecture: amd64
Multi-Arch: same
Source: glibc
Version: 2.41-7

Package: libstdc++6
Status: install ok installed
Maintainer: Debian GCC Maintainers <debian-gcc@lists.debian.org>
Architecture: amd64
Source: gcc-14 (14.2.0-19)
Version: 14.2.0-19

Package: bash
Status: install ok installed
Maintainer: Matthias Klose <doko@debian.org>
Architecture: amd64
Version: 5.2.37-1.1+b1

Package: removed-pkg
Status: deinstall ok config-files
Architecture: amd64
Version: 1.0
";

const DEP5_HEADER: &str =
    "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\nUpstream-Name: x\n\n";

fn debian_layers() -> Vec<Vec<Entry>> {
    let libc_copyright = format!(
        "{DEP5_HEADER}Files: *\nCopyright: 1991 FSF\nLicense: LGPL-2.1+\n\nFiles: debian/*\nCopyright: x\nLicense: GPL-2+\n\nLicense: LGPL-2.1+\n The text.\n"
    );
    let gcc_copyright =
        format!("{DEP5_HEADER}Files: *\nCopyright: FSF\nLicense: GPL-3+ with GCC-exception-3.1\n");
    let status_2 = format!(
        "{STATUS_1}\nPackage: zlib1g\nStatus: install ok installed\nArchitecture: amd64\nSource: zlib\nVersion: 1:1.3.dfsg+really1.3.1-1\n"
    );
    vec![
        vec![
            Entry::Dir("etc"),
            Entry::Symlink("etc/os-release", "../usr/lib/os-release"),
            file(
                "usr/lib/os-release",
                "PRETTY_NAME=\"Debian GNU/Linux 13 (trixie)\"\nID=debian\nVERSION_CODENAME=trixie\n",
            ),
            file("var/lib/dpkg/status", STATUS_1),
            file("usr/share/doc/libc6/copyright", &libc_copyright),
            file("usr/share/doc/gcc-14-base/copyright", &gcc_copyright),
            Entry::Symlink("usr/share/doc/libstdc++6", "gcc-14-base"),
            file("usr/share/doc/bash/copyright", "This is free-form text.\nGPL-3+\n"),
            file(
                "usr/share/doc/zlib1g/copyright",
                &format!("{DEP5_HEADER}Files: *\nCopyright: x\nLicense: Zlib\n"),
            ),
        ],
        // A later layer: a new status file, and libc6's docs removed.
        vec![
            file("var/lib/dpkg/status", &status_2),
            Entry::Whiteout("usr/share/doc/libc6"),
        ],
    ]
}

fn open(spec: &str) -> OpenedImage {
    OpenedImage::open(&ImageSource::parse(spec).unwrap(), None).unwrap()
}

fn sbom_of(image: &OpenedImage) -> Sbom {
    let inventory = package_inventory(image).unwrap();
    Sbom::from_inventory(&inventory, ImageIdentity::of_image(image), &BTreeMap::new())
}

fn by_name<'a>(packages: &'a [Value], name: &str) -> &'a Value {
    packages
        .iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("no package {name}"))
}

fn write_oci(work: &Path, layers: &[Vec<Entry>]) -> (std::path::PathBuf, String) {
    let b = image(work, config(&[]), layers);
    let dir = work.join("oci");
    let reference = rootstrap::image::ImageReference::parse("test/debian:1").unwrap();
    let w = b
        .write(&Output::OciDir(dir.clone()), Some(&reference))
        .unwrap();
    (dir, w.manifest_digest.to_string())
}

#[test]
fn debian_spdx_fields_purls_and_licenses() {
    let work = tempfile::tempdir().unwrap();
    let (dir, digest) = write_oci(work.path(), &debian_layers());
    let img = open(&format!("oci:{}", dir.display()));
    let doc = spdx::to_json(&sbom_of(&img));
    assert_eq!(doc["creationInfo"]["created"], "2025-01-01T00:00:00Z");
    let hex = digest.trim_start_matches("sha256:");
    assert!(doc["documentNamespace"].as_str().unwrap().ends_with(hex));
    let pkgs = doc["packages"].as_array().unwrap();
    // The image itself, then 4 installed packages (not the deinstalled one).
    assert_eq!(pkgs.len(), 5, "{pkgs:#?}");
    assert_eq!(pkgs[0]["versionInfo"], digest);
    let purl = |p: &Value| p["externalRefs"][0]["referenceLocator"].clone();
    let libstdc = by_name(pkgs, "libstdc++6");
    assert_eq!(
        purl(libstdc),
        "pkg:deb/debian/libstdc%2B%2B6@14.2.0-19?arch=amd64&distro=trixie"
    );
    // Through the usr/share/doc/libstdc++6 -> gcc-14-base symlink.
    assert_eq!(
        libstdc["licenseDeclared"],
        "GPL-3.0-or-later WITH GCC-exception-3.1"
    );
    assert_eq!(
        libstdc["sourceInfo"],
        "built package from: gcc-14 14.2.0-19"
    );
    assert_eq!(
        libstdc["supplier"],
        "Person: Debian GCC Maintainers (debian-gcc@lists.debian.org)"
    );
    let zlib = by_name(pkgs, "zlib1g");
    assert_eq!(
        purl(zlib),
        "pkg:deb/debian/zlib1g@1%3A1.3.dfsg%2Breally1.3.1-1?arch=amd64&distro=trixie"
    );
    assert_eq!(zlib["licenseDeclared"], "Zlib");
    assert_eq!(zlib["supplier"], "NOASSERTION");
    // Whited out in the second layer, and a free-form copyright file.
    assert_eq!(by_name(pkgs, "libc6")["licenseDeclared"], "NOASSERTION");
    assert_eq!(by_name(pkgs, "bash")["licenseDeclared"], "NOASSERTION");
    assert_eq!(
        by_name(pkgs, "libc6")["sourceInfo"],
        "built package from: glibc 2.41-7"
    );
    assert!(pkgs[1..].iter().all(|p| p.get("checksums").is_none()));
    let contains = doc["relationships"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["relationshipType"] == "CONTAINS")
        .count();
    assert_eq!(contains, 4);
}

#[test]
fn build_checksums_reach_debian_packages() {
    let work = tempfile::tempdir().unwrap();
    let (dir, _) = write_oci(work.path(), &debian_layers());
    let img = open(&format!("oci:{}", dir.display()));
    let inventory = package_inventory(&img).unwrap();
    let sums: BTreeMap<String, [u8; 32]> = [("bash".to_string(), [0xab; 32])].into();
    let bom = cyclonedx::to_json(&Sbom::from_inventory(
        &inventory,
        ImageIdentity::of_image(&img),
        &sums,
    ));
    let components = bom["components"].as_array().unwrap();
    let bash = by_name(components, "bash");
    assert_eq!(bash["hashes"][0]["alg"], "SHA-256");
    assert_eq!(bash["hashes"][0]["content"], "ab".repeat(32));
    assert!(by_name(components, "libc6").get("hashes").is_none());
}

#[test]
fn alpine_cyclonedx_and_spdx() {
    let sha1 = [0x11u8; 20];
    // base64 of twenty 0x11 bytes.
    let c = "Q1ERERERERERERERERERERERERERE=";
    let installed = format!(
        "C:{c}\nP:musl\nV:1.2.5-r9\nA:x86_64\nS:1\nI:2\nT:the C library\nU:https://musl.libc.org/\nL:MIT\no:musl\nm:Natanael Copa <ncopa@alpinelinux.org>\nF:lib\nR:ld-musl-x86_64.so.1\nZ:Q1abc=\n\n\
         P:busybox-binsh\nV:1.37.0-r12\nA:x86_64\nL:GPL-2.0-only\no:busybox\n\n\
         P:weird\nV:1\nA:x86_64\nL:custom:foo (\n\n"
    );
    let work = tempfile::tempdir().unwrap();
    let layers = vec![vec![
        file("etc/os-release", "ID=alpine\nVERSION_ID=3.22.0\n"),
        file("lib/apk/db/installed", &installed),
    ]];
    let (dir, _) = write_oci(work.path(), &layers);
    let img = open(&format!("oci:{}", dir.display()));
    let sbom = sbom_of(&img);
    let bom = cyclonedx::to_json(&sbom);
    let components = bom["components"].as_array().unwrap();
    assert_eq!(components.len(), 3);
    let musl = by_name(components, "musl");
    assert_eq!(musl["purl"], "pkg:apk/alpine/musl@1.2.5-r9?arch=x86_64");
    assert_eq!(musl["hashes"][0]["alg"], "SHA-1");
    assert_eq!(musl["hashes"][0]["content"], hex::encode(sha1));
    assert_eq!(musl["licenses"][0]["expression"], "MIT");
    assert_eq!(musl["supplier"]["name"], "Natanael Copa");
    let binsh = by_name(components, "busybox-binsh");
    assert!(binsh["properties"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["name"] == "rootstrap:package:source-name" && p["value"] == "busybox"));
    // An apk L: field that is no expression becomes one LicenseRef, defined
    // in the SPDX document.
    let doc = spdx::to_json(&sbom);
    let weird = by_name(doc["packages"].as_array().unwrap(), "weird");
    let lic = weird["licenseDeclared"].as_str().unwrap();
    assert!(lic.starts_with("LicenseRef-"), "{lic}");
    assert_eq!(doc["hasExtractedLicensingInfos"][0]["licenseId"], lic);
}

#[test]
fn documents_are_deterministic() {
    let work = tempfile::tempdir().unwrap();
    let (dir, _) = write_oci(work.path(), &debian_layers());
    let spec = format!("oci:{}", dir.display());
    let run = |format: &str| {
        let out = run::rootstrap()
            .args(["sbom", &spec, "--format", format])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    };
    for format in ["spdx", "cyclonedx"] {
        let first = run(format);
        assert_eq!(first, run(format), "{format} output differs between runs");
        let v: Value = serde_json::from_slice(&first).unwrap();
        assert!(v.is_object());
    }
    // -o writes the same bytes.
    let path = work.path().join("x.cdx.json");
    let out = run::rootstrap()
        .args(["sbom", &spec, "--format", "cyclonedx", "-o"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(std::fs::read(&path).unwrap(), run("cyclonedx"));
}

#[test]
fn oci_artifacts_refer_to_the_image() {
    let work = tempfile::tempdir().unwrap();
    let (dir, digest) = write_oci(work.path(), &debian_layers());
    let img = open(&format!("oci:{}", dir.display()));
    let sbom = sbom_of(&img);
    drop(img);
    attach_to_oci_layout(&dir, &sbom).unwrap();
    // Attaching again does not duplicate the entries.
    attach_to_oci_layout(&dir, &sbom).unwrap();
    let index: Value =
        serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap();
    // index.json lists the image alone (skopeo, podman and umoci take every
    // entry for an image); its entry points at the list of its referrers.
    let manifests = index["manifests"].as_array().unwrap();
    assert_eq!(manifests.len(), 1, "{manifests:#?}");
    let blob = |d: &Value| {
        std::fs::read(
            dir.join("blobs/sha256")
                .join(d.as_str().unwrap().trim_start_matches("sha256:")),
        )
        .unwrap()
    };
    let pointer = &manifests[0]["annotations"]["org.rootstrap.referrers"];
    let referrers: Value = serde_json::from_slice(&blob(pointer)).unwrap();
    assert_eq!(
        referrers["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    let listed = referrers["manifests"].as_array().unwrap();
    assert_eq!(listed.len(), 2, "{listed:#?}");
    // The list that one SBOM made was replaced, not left behind.
    let blobs = std::fs::read_dir(dir.join("blobs/sha256")).unwrap().count();
    // 2 layers + config, the manifest, 2 × (document + manifest), the empty
    // config and one list.
    assert_eq!(blobs, 3 + 1 + 2 * 2 + 1 + 1);
    for (entry, format) in listed.iter().zip(SbomFormat::ALL) {
        assert_eq!(entry["artifactType"], format.media_type());
        assert_eq!(entry["annotations"]["org.rootstrap.sbom"], format.label());
        let manifest: Value = serde_json::from_slice(&blob(&entry["digest"])).unwrap();
        assert_eq!(manifest["artifactType"], format.media_type());
        assert_eq!(manifest["subject"]["digest"], digest.as_str());
        assert_eq!(manifest["subject"]["mediaType"], manifests[0]["mediaType"]);
        assert_eq!(
            manifest["config"]["mediaType"],
            "application/vnd.oci.empty.v1+json"
        );
        assert_eq!(blob(&manifest["config"]["digest"]), b"{}");
        let layers = manifest["layers"].as_array().unwrap();
        assert_eq!(layers.len(), 1);
        assert_eq!(blob(&layers[0]["digest"]), format.render(&sbom));
    }
    // Readers still find the one image, by default and by name, and fsck
    // accepts the extra blobs.
    let img = open(&format!("oci:{}", dir.display()));
    assert_eq!(img.manifest_digest.unwrap().to_string(), digest);
    assert_eq!(img.referrers.len(), 2);
    fsck(&img).unwrap();
    // `rootstrap sbom` gives the attached documents.
    for format in SbomFormat::ALL {
        let attached = rootstrap::sbom::output::attached(&img, format)
            .unwrap()
            .unwrap();
        assert_eq!(attached, format.render(&sbom));
    }
    let named = OpenedImage::open(&ImageSource::OciDir(dir.clone()), Some("1")).unwrap();
    assert_eq!(named.manifest_digest.unwrap().to_string(), digest);
    let out = run::rootstrap()
        .args(["inspect", &format!("oci:{}", dir.display())])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Each field on its own line: the size line once ran into the package count.
    let printed = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = printed.lines().collect();
    let size_at = lines
        .iter()
        .position(|l| l.starts_with("Total size:"))
        .unwrap_or_else(|| panic!("no Total size line in:\n{printed}"));
    assert!(
        lines[size_at].ends_with("B") && !lines[size_at].contains("packages"),
        "{printed}"
    );
    assert!(
        lines
            .get(size_at + 1)
            .is_some_and(|l| l.starts_with("packages: ")),
        "{printed}"
    );
}

#[test]
fn build_outputs_get_sboms() {
    let work = tempfile::tempdir().unwrap();
    let b = image(work.path(), config(&[]), &debian_layers());
    let reference = rootstrap::image::ImageReference::parse("test/debian:1").unwrap();
    let oci_dir = work.path().join("oci");
    let archive = work.path().join("img.tar");
    let rootfs_tar = work.path().join("rootfs.tar.gz");
    let mut outputs = Vec::new();
    for out in [
        Output::OciDir(oci_dir.clone()),
        Output::DockerArchive(archive.clone()),
        Output::RootfsTar(rootfs_tar.clone()),
    ] {
        let w = b.write(&out, Some(&reference)).unwrap();
        outputs.push((BuildOutput::Image(out), Some(w.manifest_digest.to_string())));
    }
    outputs.push((BuildOutput::RootfsDir(work.path().join("tree")), None));
    let written = write_build_sboms(
        &b,
        &outputs,
        Some(&reference.familiar()),
        &BTreeMap::new(),
        None,
    )
    .unwrap();
    assert_eq!(written.len(), 5, "{written:?}");
    // The archive's documents equal what `rootstrap sbom` derives from it.
    let img = open(&format!("docker-archive:{}", archive.display()));
    let from_archive = sbom_of(&img);
    for format in SbomFormat::ALL {
        let sidecar = std::fs::read(sidecar_path(&archive, format)).unwrap();
        assert_eq!(sidecar, format.render(&from_archive));
        assert!(sidecar_path(&rootfs_tar, format).exists());
    }
    assert!(archive.with_file_name("img.tar.spdx.json").exists());
    // docker-archive: nothing was added inside the archive.
    let img = open(&format!("docker-archive:{}", archive.display()));
    fsck(&img).unwrap();
    let index: Value =
        serde_json::from_slice(&std::fs::read(oci_dir.join("index.json")).unwrap()).unwrap();
    assert_eq!(index["manifests"].as_array().unwrap().len(), 1);
    assert_eq!(
        open(&format!("oci:{}", oci_dir.display())).referrers.len(),
        2
    );
}

#[test]
fn attaching_needs_the_subject_in_the_index() {
    let work = tempfile::tempdir().unwrap();
    let (dir, _) = write_oci(work.path(), &debian_layers());
    let img = open(&format!("oci:{}", dir.display()));
    let mut sbom = sbom_of(&img);
    sbom.image.digest = rootstrap::image::Sha256Digest::of(b"another image");
    let err = attach_to_oci_layout(&dir, &sbom).unwrap_err().to_string();
    assert!(err.contains("does not list the image"), "{err}");
    let index: Value =
        serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap();
    assert_eq!(index["manifests"].as_array().unwrap().len(), 1);
}

#[test]
fn image_without_a_package_database() {
    let work = tempfile::tempdir().unwrap();
    let layers = vec![vec![
        file("etc/hostname", "x\n"),
        // A doc symlink loop and one climbing out of the root lead nowhere.
        Entry::Symlink("usr/share/doc/a", "b"),
        Entry::Symlink("usr/share/doc/b", "a"),
        Entry::Symlink("etc/os-release", "../../../../etc/os-release"),
    ]];
    let (dir, _) = write_oci(work.path(), &layers);
    let img = open(&format!("oci:{}", dir.display()));
    let inventory = package_inventory(&img).unwrap();
    assert!(inventory.kind.is_none());
    assert!(inventory.os_release.is_empty());
    let doc = spdx::to_json(&sbom_of(&img));
    assert_eq!(doc["packages"].as_array().unwrap().len(), 1);
    let bom = cyclonedx::to_json(&sbom_of(&img));
    assert_eq!(bom["components"].as_array().unwrap().len(), 0);
}

#[test]
fn dockerfile_builds_get_sboms_too() {
    let work = tempfile::tempdir().unwrap();
    let (dir, _) = write_oci(work.path(), &debian_layers());
    let ctx = work.path().join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        format!("FROM oci:{}\nLABEL child=yes\n", dir.display()),
    )
    .unwrap();
    let archive = work.path().join("child.tar");
    let out = run::rootstrap()
        .args(["build", "-f"])
        .arg(ctx.join("Dockerfile"))
        .arg(&ctx)
        .arg("--output")
        .arg(format!("docker-archive:{}", archive.display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let spdx: Value =
        serde_json::from_slice(&std::fs::read(work.path().join("child.tar.spdx.json")).unwrap())
            .unwrap();
    let pkgs = spdx["packages"].as_array().unwrap();
    assert_eq!(by_name(pkgs, "zlib1g")["licenseDeclared"], "Zlib");
    assert!(work.path().join("child.tar.cdx.json").exists());
}

#[test]
fn tree_and_layer_inventories_agree() {
    use std::os::unix::fs::symlink;
    let work = tempfile::tempdir().unwrap();
    let tree = work.path().join("tree");
    let w = |rel: &str, data: &str| {
        let p = tree.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, data).unwrap();
    };
    w("var/lib/dpkg/status", STATUS_1);
    w(
        "usr/share/doc/libc6/copyright",
        &format!("{DEP5_HEADER}Files: *\nCopyright: FSF\nLicense: LGPL-2.1+\n"),
    );
    w(
        "usr/share/doc/gcc-14-base/copyright",
        &format!("{DEP5_HEADER}Files: *\nCopyright: FSF\nLicense: GPL-3+ with GCC-exception-3.1\n"),
    );
    w("usr/share/doc/bash/copyright", "free-form text\n");
    w("etc/os-release", "ID=debian\nVERSION_CODENAME=trixie\n");
    symlink("gcc-14-base", tree.join("usr/share/doc/libstdc++6")).unwrap();
    // A link out of the tree is resolved inside it, never on the host.
    symlink("/etc", tree.join("usr/share/doc/escape")).unwrap();

    let mut b = rootstrap::image::ImageBuilder::new_in(
        work.path(),
        rootstrap::image::oci::ImageConfig::new("amd64", "linux"),
        rootstrap::image::LayerCompression::Gzip,
    )
    .unwrap();
    b.add_layer_from_dir(
        &tree,
        &rootstrap::image::LayerOptions {
            source_date_epoch: Some(1_700_000_000),
            exclude: Vec::new(),
        },
        rootstrap::image::oci::History::default(),
    )
    .unwrap();
    let dir = work.path().join("oci");
    b.write(&Output::OciDir(dir.clone()), None).unwrap();
    let from_layers = package_inventory(&open(&format!("oci:{}", dir.display()))).unwrap();
    let from_tree = rootstrap::image::packages::collect_inventory_from_tree(&tree).unwrap();
    assert_eq!(
        serde_json::to_value(&from_tree).unwrap(),
        serde_json::to_value(&from_layers).unwrap()
    );
    let libstdc = from_tree
        .packages
        .iter()
        .find(|p| p.name == "libstdc++6")
        .unwrap();
    assert!(!libstdc.licenses.is_empty(), "{libstdc:?}");
}
