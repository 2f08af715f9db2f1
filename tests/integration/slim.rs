//! Slim images and layer compression, against fixture Debian repositories
//! served on 127.0.0.1.
//!
//! * The path filter: a foreign-architecture build (no scripts) shows what
//!   the extractor writes and records; a native one (root, the host's dpkg
//!   in the fixture) has the image's own dpkg install a twin package with the
//!   same layout, so rootstrap's filter is compared with dpkg's on the same
//!   paths: files on disk, `info/*.list`, `dpkg --verify`, `dpkg --audit`.
//! * Compression: the same inputs give the same digest per compression; the
//!   uncompressed layers (diff_ids) are equal across compressions.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Output;

use common::debrepo::{sandbox_runtime_packages, DebPackage, Repo};
use common::fixture::{self, DebFixture};
use common::httpd::TestServer;
use common::run::{self, foreign_deb_arch, stderr};

struct Fx {
    fx: DebFixture,
    _server: TestServer,
}

impl Fx {
    fn new(packages: Vec<DebPackage>, arch: &str, extra_source: &str, install: &str) -> Fx {
        let fx = DebFixture::new();
        let mut repo = Repo::new("fixture", packages);
        repo.arch = arch.into();
        fx.write_repo("repo", &repo);
        let server = TestServer::serve(&fx.path("repo"));
        let mirror = server.base_url();
        let recipe = format!(
            "{}{extra_source}mirror = \"{mirror}\"\n\n[packages]\ninstall = [{install:?}]\n\n\
             [image]\nname = \"rootstrap-test/slim:1\"\ncmd = [\"/bin/sh\"]\n",
            fixture::debian_source(arch),
        );
        std::fs::write(fx.path("recipe.toml"), recipe).unwrap();
        Fx {
            fx,
            _server: server,
        }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.fx.path(rel)
    }

    /// `rootstrap build recipe.toml --cache-dir CACHE ARGS…`.
    fn build(&self, cache: &str, args: &[&str]) -> Output {
        // Foreign-architecture fixtures: no package scripts, no root.
        run::rootstrap_isolated()
            .args(["build", "--skip-foreign-scripts"])
            .arg(self.path("recipe.toml"))
            .arg("--cache-dir")
            .arg(self.path(cache))
            .args(args)
            .output()
            .unwrap()
    }
}

fn out_arg(kind: &str, path: &Path) -> String {
    format!("{kind}:{}", path.display())
}

/// The paths a documentation-heavy package ships, all named after it so two
/// packages can share the layout without sharing a path.
fn docs_package(name: &str, arch: &str) -> DebPackage {
    let mut p = DebPackage::new(name, "1.0")
        .file(&format!("usr/bin/{name}"), 0o755, b"#!/bin/sh\necho hi\n")
        .file(&format!("usr/share/doc/{name}/copyright"), 0o644, b"GPL\n")
        .file(&format!("usr/share/doc/{name}/README"), 0o644, b"read me\n")
        .file(
            &format!("usr/share/doc/{name}/examples/ex.sh"),
            0o644,
            b"ex\n",
        )
        .file(
            &format!("usr/share/doc/{name}/nested/copyright"),
            0o644,
            b"n\n",
        )
        .symlink(&format!("usr/share/doc/{name}-data"), name)
        .file(&format!("usr/share/man/man1/{name}.1.gz"), 0o644, b"man\n")
        .file(
            &format!("usr/share/man/de/man1/{name}.1.gz"),
            0o644,
            b"de\n",
        )
        .file(
            &format!("usr/share/locale/de/LC_MESSAGES/{name}.mo"),
            0o644,
            b"mo\n",
        )
        .file(
            &format!("usr/share/locale/currency/{name}"),
            0o644,
            b"cur\n",
        )
        .file(&format!("usr/share/info/{name}.info.gz"), 0o644, b"info\n")
        .file(
            &format!("usr/share/lintian/overrides/{name}"),
            0o644,
            b"o\n",
        )
        .file(&format!("usr/share/{name}/data"), 0o644, b"data\n");
    p.arch = arch.into();
    p
}

/// The lines of `text`, sorted.
fn lines(text: &str) -> Vec<String> {
    let mut v: Vec<String> = text.lines().map(str::to_owned).collect();
    v.sort();
    v
}

fn walk(root: &Path, rel: &Path, out: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(root.join(rel)) else {
        return;
    };
    for e in entries {
        let e = e.unwrap();
        let rel = rel.join(e.file_name());
        out.push(format!("/{}", rel.display()));
        if e.file_type().unwrap().is_dir() {
            walk(root, &rel, out);
        }
    }
}

#[test]
fn the_extractor_leaves_out_what_dpkg_would_and_records_it_as_dpkg_does() {
    let arch = foreign_deb_arch();
    let mut base = DebPackage::new("base-files", "1.0")
        .essential()
        .dir("etc")
        .file("etc/os-release", 0o644, b"ID=fixture\n");
    base.arch = arch.into();
    let docs = docs_package("docs-a", arch);
    let f = Fx::new(vec![base, docs], arch, "slim = true\n", "docs-a");
    let tree = f.path("tree");
    let o = f.build("cache", &["--output", &out_arg("rootfs", &tree)]);
    assert!(o.status.success(), "build failed:\n{}", stderr(&o));

    let exists = |p: &str| {
        tree.join(p.trim_start_matches('/'))
            .symlink_metadata()
            .is_ok()
    };
    for kept in [
        "/usr/bin/docs-a",
        "/usr/share/doc/docs-a/copyright",
        "/usr/share/doc/docs-a/nested/copyright",
        "/usr/share/doc/docs-a-data",
        "/usr/share/locale/currency/docs-a",
        "/usr/share/docs-a/data",
        // Made again, empty, as debuerreotype does.
        "/usr/share/man/man1",
        "/etc/dpkg/dpkg.cfg.d/docker",
    ] {
        assert!(exists(kept), "{kept} should be in the tree");
    }
    // Directories under /usr/share/doc stay (empty): the fixed part of the
    // include `/usr/share/doc/*/copyright` covers them, as in dpkg.
    assert!(tree.join("usr/share/doc/docs-a/examples").is_dir());
    for gone in [
        "/usr/share/doc/docs-a/README",
        "/usr/share/doc/docs-a/examples/ex.sh",
        "/usr/share/man/man1/docs-a.1.gz",
        "/usr/share/man/de",
        "/usr/share/locale/de",
        "/usr/share/info/docs-a.info.gz",
        "/usr/share/lintian/overrides/docs-a",
    ] {
        assert!(!exists(gone), "{gone} should have been left out");
    }
    let cfg = std::fs::read_to_string(tree.join("etc/dpkg/dpkg.cfg.d/docker")).unwrap();
    assert!(cfg.contains("path-exclude /usr/share/doc/*\n"), "{cfg}");
    assert!(
        cfg.contains("path-include /usr/share/doc/*/copyright\n"),
        "{cfg}"
    );

    // dpkg lists every entry of the archive, filtered or not.
    let list = std::fs::read_to_string(tree.join("var/lib/dpkg/info/docs-a.list")).unwrap();
    for listed in [
        "/.",
        "/usr/share/doc/docs-a/README",
        "/usr/share/doc/docs-a/examples",
        "/usr/share/man/man1/docs-a.1.gz",
        "/usr/share/doc/docs-a/copyright",
    ] {
        assert!(list.lines().any(|l| l == listed), "{listed} not in\n{list}");
    }
    // The package's own md5sums is installed as it is.
    let md5 = std::fs::read_to_string(tree.join("var/lib/dpkg/info/docs-a.md5sums")).unwrap();
    assert!(md5.contains("usr/share/doc/docs-a/README"), "{md5}");
}

#[test]
fn a_slim_image_matches_what_dpkg_does_with_the_same_layout_and_config() {
    let Some(mut packages) = sandbox_runtime_packages() else {
        return;
    };
    let arch = "amd64";
    packages.push(docs_package("docs-a", arch).depends("busybox, dpkg"));
    let f = Fx::new(packages, arch, "slim = true\n", "docs-a");
    let ours = f.path("ours");
    let o = f.build("cache", &["--output", &out_arg("rootfs", &ours)]);
    assert!(o.status.success(), "build failed:\n{}", stderr(&o));

    // The host's dpkg (the version the fixture image runs) installs the
    // twin into an empty root with the rules of the image's own dpkg.cfg.d
    // file, as command-line options (dpkg reads its configuration from the
    // host's /etc even with --root).
    let cfg = std::fs::read_to_string(ours.join("etc/dpkg/dpkg.cfg.d/docker")).unwrap();
    let rules: Vec<String> = cfg
        .lines()
        .filter(|l| l.starts_with("path-"))
        .map(|l| format!("--{}", l.replacen(' ', "=", 1)))
        .collect();
    assert_eq!(rules.len(), 18, "{cfg}");
    let theirs = f.path("theirs");
    let db = theirs.join("var/lib/dpkg");
    for d in ["info", "updates", "triggers"] {
        std::fs::create_dir_all(db.join(d)).unwrap();
    }
    for file in ["status", "available"] {
        std::fs::write(db.join(file), "").unwrap();
    }
    let twin = f.path("docs-b.deb");
    std::fs::write(&twin, docs_package("docs-b", arch).build()).unwrap();
    let dpkg = |root: &Path, args: &[&str]| -> String {
        let o = std::process::Command::new("dpkg")
            .arg(format!("--root={}", root.display()))
            .args(args)
            .output()
            .unwrap();
        // --verify exits 1 when it reports something.
        assert!(
            o.status.code().is_some_and(|c| c <= 1),
            "dpkg {args:?}: {}",
            stderr(&o)
        );
        run::text(&o.stdout)
    };
    let mut install: Vec<&str> = rules.iter().map(String::as_str).collect();
    install.extend(["-i", twin.to_str().unwrap()]);
    dpkg(&theirs, &install);

    let as_a = |text: &str| -> Vec<String> {
        let mut v: Vec<String> = text
            .lines()
            .map(|l| l.replace("docs-b", "docs-a"))
            .collect();
        v.sort();
        v
    };
    let read = |root: &Path, rel: &str| std::fs::read_to_string(root.join(rel)).unwrap();
    assert_eq!(
        lines(&read(&ours, "var/lib/dpkg/info/docs-a.list")),
        as_a(&read(&theirs, "var/lib/dpkg/info/docs-b.list")),
        "info/*.list: rootstrap (left), dpkg (right)"
    );
    let tree = |root: &Path, name: &str| -> String {
        let mut all = Vec::new();
        walk(root, Path::new(""), &mut all);
        all.retain(|p| p.contains(name) && !p.starts_with("/var/lib/dpkg"));
        all.join("\n")
    };
    let our_tree = lines(&tree(&ours, "docs-a"));
    assert_eq!(our_tree, as_a(&tree(&theirs, "docs-b")), "files on disk");
    assert!(our_tree.contains(&"/usr/share/doc/docs-a/copyright".to_owned()));
    assert!(!our_tree.contains(&"/usr/share/doc/docs-a/README".to_owned()));
    let verify = lines(&dpkg(&ours, &["--verify", "docs-a"]));
    let mut their_verify = as_a(&dpkg(&theirs, &["--verify", "docs-b"]));
    // The one deliberate difference: rootstrap makes the man section
    // directories again, as debuerreotype does for the official images.
    their_verify.retain(|l| l != "missing     /usr/share/man/man1");
    assert_eq!(verify, their_verify, "dpkg --verify");
    assert!(
        verify
            .iter()
            .any(|l| l.starts_with("missing") && l.ends_with("/usr/share/doc/docs-a/README")),
        "dpkg --verify reports a filtered file as missing: {verify:?}"
    );
    assert_eq!(dpkg(&ours, &["--audit"]), "", "dpkg --audit");
}

/// Manifest digest of the first output a build printed.
fn digest(o: &Output) -> String {
    assert!(o.status.success(), "build failed:\n{}", stderr(o));
    let stdout = run::text(&o.stdout);
    let line = stdout.lines().next().expect("build printed its outputs");
    line.split_whitespace().last().unwrap().to_owned()
}

fn manifest(oci: &Path) -> serde_json::Value {
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(oci.join("index.json")).unwrap()).unwrap();
    let d = index["manifests"][0]["digest"].as_str().unwrap();
    let blob = oci
        .join("blobs/sha256")
        .join(d.trim_start_matches("sha256:"));
    serde_json::from_slice(&std::fs::read(blob).unwrap()).unwrap()
}

fn config(oci: &Path) -> serde_json::Value {
    let m = manifest(oci);
    let d = m["config"]["digest"].as_str().unwrap();
    let blob = oci
        .join("blobs/sha256")
        .join(d.trim_start_matches("sha256:"));
    serde_json::from_slice(&std::fs::read(blob).unwrap()).unwrap()
}

#[test]
fn each_compression_is_deterministic_and_packs_the_same_tar() {
    let arch = foreign_deb_arch();
    let mut base = DebPackage::new("base-files", "1.0")
        .essential()
        .dir("etc")
        .file("etc/os-release", 0o644, b"ID=fixture\n");
    base.arch = arch.into();
    // More than one zstd job (8 MiB each at level 3).
    let mut big = Vec::with_capacity(10 << 20);
    let mut x: u64 = 1;
    while big.len() < 10 << 20 {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        big.extend_from_slice(format!("line {} {:x}\n", big.len() % 977, x >> 40).as_bytes());
    }
    let mut data = DebPackage::new("data-fixture", "1.0").file("usr/share/data/big", 0o644, &big);
    data.arch = arch.into();
    let f = Fx::new(vec![base, data], arch, "", "data-fixture");

    let mut diff_ids = Vec::new();
    let mut digests = Vec::new();
    for (compression, media_type) in [
        ("gzip", "application/vnd.oci.image.layer.v1.tar+gzip"),
        ("zstd", "application/vnd.oci.image.layer.v1.tar+zstd"),
        ("none", "application/vnd.oci.image.layer.v1.tar"),
    ] {
        let mut seen = Vec::new();
        // Fresh caches: no reuse of an earlier layer.
        for i in 0..2 {
            let oci = f.path(&format!("oci-{compression}-{i}"));
            let o = run::rootstrap_isolated()
                .args(["build", "--skip-foreign-scripts"])
                .arg(f.path("recipe.toml"))
                .arg("--cache-dir")
                .arg(f.path(&format!("cache-{compression}-{i}")))
                .args([
                    "--compression",
                    compression,
                    "--output",
                    &out_arg("oci", &oci),
                ])
                .output()
                .unwrap();
            seen.push(digest(&o));
            let m = manifest(&oci);
            assert_eq!(m["layers"][0]["mediaType"], media_type, "{compression}");
            diff_ids.push(config(&oci)["rootfs"]["diff_ids"][0].clone());
        }
        assert_eq!(
            seen[0], seen[1],
            "{compression}: same inputs, different image"
        );
        digests.push(seen[0].clone());
    }
    assert!(diff_ids.windows(2).all(|w| w[0] == w[1]), "{diff_ids:?}");
    digests.dedup();
    assert_eq!(digests.len(), 3, "each compression is its own image");

    // The layer cache keeps one entry per compression: a warm zstd build
    // next to a gzip one in the same cache still gives the zstd image.
    let o = f.build(
        "cache-gzip-0",
        &[
            "--compression",
            "zstd",
            "--output",
            &out_arg("oci", &f.path("warm")),
        ],
    );
    assert_eq!(digest(&o), digests[1]);

    // Readers take every compression: diff sees the same files, and a
    // Dockerfile FROM a zstd image keeps its layer and adds a gzip one.
    for other in ["oci-zstd-0", "oci-none-0"] {
        let o = run::rootstrap()
            .args([
                "diff",
                &out_arg("oci", &f.path("oci-gzip-0")),
                &out_arg("oci", &f.path(other)),
            ])
            .output()
            .unwrap();
        let text = run::text(&o.stdout);
        // The same config and files: only the layer blobs differ.
        assert_eq!(o.status.code(), Some(0), "{other}: {text}{}", stderr(&o));
        assert!(text.contains("identical"), "{other}: {text}");
    }
    let ctx = f.path("ctx");
    std::fs::create_dir(&ctx).unwrap();
    std::fs::write(ctx.join("f"), b"on top\n").unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        format!("FROM oci:{}\nCOPY f /f\n", f.path("oci-zstd-0").display()),
    )
    .unwrap();
    let derived = f.path("derived");
    let o = run::rootstrap_isolated()
        .args(["build", "-f"])
        .arg(ctx.join("Dockerfile"))
        .arg(&ctx)
        .arg("--cache-dir")
        .arg(f.path("cache-df"))
        .args(["--output", &out_arg("oci", &derived)])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let layers = manifest(&derived)["layers"].clone();
    assert_eq!(
        layers[0]["mediaType"],
        "application/vnd.oci.image.layer.v1.tar+zstd"
    );
    assert_eq!(
        layers[1]["mediaType"],
        "application/vnd.oci.image.layer.v1.tar+gzip"
    );
    // The step cache keeps one entry per compression: the same step with
    // --compression zstd on the same cache is a zstd layer, not the gzip one.
    let o = run::rootstrap_isolated()
        .args(["build", "-f"])
        .arg(ctx.join("Dockerfile"))
        .arg(&ctx)
        .arg("--cache-dir")
        .arg(f.path("cache-df"))
        .args([
            "--compression",
            "zstd",
            "--output",
            &out_arg("oci", &f.path("derived-zstd")),
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let layers = manifest(&f.path("derived-zstd"))["layers"].clone();
    assert_eq!(
        layers[1]["mediaType"],
        "application/vnd.oci.image.layer.v1.tar+zstd"
    );

    // inspect shows each layer's compressed and unpacked size.
    let o = run::rootstrap()
        .args(["inspect", &out_arg("oci", &f.path("oci-zstd-0"))])
        .output()
        .unwrap();
    let text = run::text(&o.stdout);
    assert!(o.status.success(), "{}", stderr(&o));
    let layer_line = text
        .lines()
        .find(|l| l.contains(" zstd "))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(layer_line.contains("unpacked"), "{layer_line}");
    assert!(layer_line.contains("MiB"), "{layer_line}");
}

#[test]
fn recipe_compression_applies_and_the_flag_wins() {
    let arch = foreign_deb_arch();
    let mut base = DebPackage::new("base-files", "1.0")
        .essential()
        .dir("etc")
        .file("etc/os-release", 0o644, b"ID=fixture\n");
    base.arch = arch.into();
    let f = Fx::new(vec![base], arch, "", "base-files");
    let recipe = std::fs::read_to_string(f.path("recipe.toml")).unwrap();
    std::fs::write(
        f.path("recipe.toml"),
        recipe.replace("[image]\n", "[image]\ncompression = \"zstd\"\n"),
    )
    .unwrap();
    let o = f.build("cache", &["--output", &out_arg("oci", &f.path("a"))]);
    digest(&o);
    assert_eq!(
        manifest(&f.path("a"))["layers"][0]["mediaType"],
        "application/vnd.oci.image.layer.v1.tar+zstd"
    );
    let o = f.build(
        "cache",
        &[
            "--compression",
            "gzip",
            "--output",
            &out_arg("oci", &f.path("b")),
        ],
    );
    digest(&o);
    assert_eq!(
        manifest(&f.path("b"))["layers"][0]["mediaType"],
        "application/vnd.oci.image.layer.v1.tar+gzip"
    );

    // A docker-archive with zstd layers is written, with a word on which
    // Docker engines load it.
    let tar = f.path("image.tar");
    let o = f.build("cache", &["--output", &out_arg("docker-archive", &tar)]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("Docker Engine 23.0"), "{}", stderr(&o));
    assert!(tar.exists());

    // A typo is named.
    std::fs::write(
        f.path("recipe.toml"),
        recipe.replace("[image]\n", "[image]\ncompression = \"zst\"\n"),
    )
    .unwrap();
    let o = f.build("cache", &["--output", &out_arg("oci", &f.path("c"))]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("zst"), "{}", stderr(&o));
    let o = f.build(
        "cache",
        &[
            "--compression",
            "lz4",
            "--output",
            &out_arg("oci", &f.path("c")),
        ],
    );
    assert!(!o.status.success());
    assert!(stderr(&o).contains("lz4"), "{}", stderr(&o));
}

#[test]
fn the_lock_records_slim_and_a_build_must_match_it() {
    let arch = foreign_deb_arch();
    let mut base = DebPackage::new("base-files", "1.0")
        .essential()
        .dir("etc")
        .file("etc/os-release", 0o644, b"ID=fixture\n");
    base.arch = arch.into();
    let f = Fx::new(vec![base], arch, "", "base-files");
    let plain_lock = f.path("plain.lock");
    let o = f.build(
        "cache",
        &[
            "--lock",
            plain_lock.to_str().unwrap(),
            "--output",
            &out_arg("oci", &f.path("a")),
        ],
    );
    let plain_digest = digest(&o);
    let text = std::fs::read_to_string(&plain_lock).unwrap();
    assert!(
        text.starts_with("#") && text.contains("version = 1"),
        "{text}"
    );
    assert!(
        !text.contains("slim"),
        "a full image's lock is unchanged:\n{text}"
    );

    let slim_lock = f.path("slim.lock");
    let o = f.build(
        "cache",
        &[
            "--slim",
            "--lock",
            slim_lock.to_str().unwrap(),
            "--output",
            &out_arg("oci", &f.path("b")),
        ],
    );
    let slim_digest = digest(&o);
    // The layer cache keeps slim and full layers apart.
    assert_ne!(slim_digest, plain_digest);
    let text = std::fs::read_to_string(&slim_lock).unwrap();
    assert!(text.contains("slim = true"), "{text}");

    // --locked with the slim lock reproduces the slim image; without
    // --slim it is refused, naming the setting.
    let o = f.build(
        "cache",
        &[
            "--slim",
            "--lock",
            slim_lock.to_str().unwrap(),
            "--locked",
            "--output",
            &out_arg("oci", &f.path("c")),
        ],
    );
    assert_eq!(digest(&o), slim_digest);
    let o = f.build(
        "cache",
        &[
            "--lock",
            slim_lock.to_str().unwrap(),
            "--locked",
            "--output",
            &out_arg("oci", &f.path("d")),
        ],
    );
    assert!(!o.status.success());
    assert!(stderr(&o).contains("slim"), "{}", stderr(&o));
}
