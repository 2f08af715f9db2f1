//! What other OCI tools expect of rootstrap's outputs and inputs (issue 18):
//! one named image per layout with SBOMs kept as referrers, oci-archive in
//! and out, stored names for every command, Dockerfile rootfs/tar outputs,
//! and refusals of broken layouts and archives. The real clients (skopeo,
//! umoci, podman, buildah, docker) are exercised by scripts/e2e-clients.sh.

use crate::common;
use crate::common::skip::skip;
use crate::support_images;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output as ProcOutput};

use rootstrap::image::{
    fsck, unpack_layers, ImageReference, ImageSource, MemorySink, OpenedImage, Output,
};
use rootstrap::sbom::{attach_to_oci_layout, ImageIdentity, Sbom, SbomFormat};
use serde_json::Value;
use support_images::{config, file, image, Entry};

fn layers() -> Vec<Vec<Entry>> {
    vec![
        vec![
            Entry::Dir("etc"),
            file("etc/os-release", "ID=test\n"),
            file("keep", "kept\n"),
            file("gone", "removed by the next layer\n"),
            file(
                "var/lib/dpkg/status",
                "Package: a\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1\n",
            ),
        ],
        vec![Entry::Whiteout("gone"), file("added", "second layer\n")],
    ]
}

fn write(work: &Path, out: Output, tag: Option<&str>) -> String {
    let b = image(work, config(&[]), &layers());
    let reference = tag.map(|t| ImageReference::parse(t).unwrap());
    b.write(&out, reference.as_ref())
        .unwrap()
        .manifest_digest
        .to_string()
}

fn index_of(dir: &Path) -> Value {
    serde_json::from_slice(&fs::read(dir.join("index.json")).unwrap()).unwrap()
}

fn rootstrap(cache: &Path, args: &[&str]) -> ProcOutput {
    common::run::logged(
        common::run::rootstrap()
            .env("ROOTSTRAP_CACHE_DIR", cache)
            .env("SOURCE_DATE_EPOCH", "1700000000")
            .args(args),
    )
}

fn stderr(o: &ProcOutput) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn tree(image: &OpenedImage) -> Vec<String> {
    let mut sink = MemorySink::default();
    unpack_layers(image, &mut sink).unwrap();
    sink.entries
        .keys()
        .map(|p| p.display().to_string())
        .collect()
}

#[test]
fn an_oci_output_is_one_named_image_with_its_sboms_as_referrers() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("oci");
    let digest = write(work.path(), Output::OciDir(dir.clone()), None);
    let index = index_of(&dir);
    assert_eq!(index["manifests"].as_array().unwrap().len(), 1);
    assert_eq!(
        index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"], "latest",
        "an image written without -t is `latest`, as buildah and skopeo assume"
    );
    let img = OpenedImage::open(&ImageSource::OciDir(dir.clone()), None).unwrap();
    let inventory = rootstrap::image::packages::package_inventory(&img).unwrap();
    let sbom = Sbom::from_inventory(
        &inventory,
        ImageIdentity::of_image(&img),
        &Default::default(),
    );
    attach_to_oci_layout(&dir, &sbom).unwrap();
    let index = index_of(&dir);
    assert_eq!(
        index["manifests"].as_array().unwrap().len(),
        1,
        "SBOMs must not look like more images"
    );
    let by_name = OpenedImage::open(&ImageSource::OciDir(dir.clone()), Some("latest")).unwrap();
    assert_eq!(by_name.manifest_digest.unwrap().to_string(), digest);
    assert_eq!(by_name.referrers.len(), 2);
    // `rootstrap sbom` answers with the attached document.
    let cache = work.path().join("cache");
    let spec = format!("oci:{}", dir.display());
    let out = rootstrap(&cache, &["sbom", &spec, "--format", "cyclonedx"]);
    assert!(out.status.success());
    assert_eq!(out.stdout, SbomFormat::CycloneDx.render(&sbom));
    // `umoci gc` keeps what index.json reaches: the SBOMs go, the image stays.
    let list = index["manifests"][0]["annotations"]["org.rootstrap.referrers"]
        .as_str()
        .unwrap()
        .to_owned();
    fs::remove_file(blob_path(&dir, &list)).unwrap();
    let img = OpenedImage::open(&ImageSource::OciDir(dir.clone()), None).unwrap();
    assert!(img.referrers.is_empty());
    fsck(&img).unwrap();

    // A tag names the image by its tag.
    let tagged = work.path().join("tagged");
    write(
        work.path(),
        Output::OciDir(tagged.clone()),
        Some("me/x:1.2"),
    );
    assert_eq!(
        index_of(&tagged)["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"],
        "1.2"
    );
}

#[test]
fn oci_archive_output_reads_back_as_the_same_image() {
    let work = tempfile::tempdir().unwrap();
    let archive = work.path().join("img.oci.tar");
    let dir = work.path().join("oci");
    let from_archive = write(
        work.path(),
        Output::OciArchive(archive.clone()),
        Some("a:1"),
    );
    let from_dir = write(work.path(), Output::OciDir(dir.clone()), Some("a:1"));
    assert_eq!(from_archive, from_dir);
    let listing = Command::new("tar")
        .arg("-tf")
        .arg(&archive)
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&listing.stdout);
    assert!(listing.lines().any(|l| l == "index.json"), "{listing}");
    assert!(listing.lines().any(|l| l == "oci-layout"), "{listing}");
    assert!(
        !listing.contains("manifest.json"),
        "an oci-archive is not a docker archive: {listing}"
    );
    let (source, name) =
        ImageSource::parse_named(&format!("oci-archive:{}", archive.display())).unwrap();
    assert_eq!(name, None);
    let img = OpenedImage::open(&source, None).unwrap();
    fsck(&img).unwrap();
    assert_eq!(img.manifest_digest.unwrap().to_string(), from_archive);
    assert_eq!(
        tree(&img),
        tree(&OpenedImage::open(&ImageSource::OciDir(dir), None).unwrap())
    );
    assert!(!tree(&img).contains(&"gone".to_string()));
}

#[test]
fn skopeo_style_names_select_the_image() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("oci");
    let digest = write(work.path(), Output::OciDir(dir.clone()), Some("me/x:v1"));
    let (source, name) = ImageSource::parse_named(&format!("oci:{}:v1", dir.display())).unwrap();
    assert_eq!(source, ImageSource::OciDir(dir.clone()));
    assert_eq!(name.as_deref(), Some("v1"));
    let img = OpenedImage::open(&source, name.as_deref()).unwrap();
    assert_eq!(img.manifest_digest.unwrap().to_string(), digest);
    assert!(OpenedImage::open(&source, Some("v2")).is_err());
    // A directory whose own name holds a colon opens as written.
    let odd = work.path().join("odd:name");
    write(work.path(), Output::OciDir(odd.clone()), None);
    let (source, name) = ImageSource::parse_named(&format!("oci:{}", odd.display())).unwrap();
    assert_eq!((source, name), (ImageSource::OciDir(odd), None));
}

/// Rewrites index.json of `dir` through `edit`.
fn edit_index(dir: &Path, edit: impl FnOnce(&mut Value)) {
    let mut index = index_of(dir);
    edit(&mut index);
    fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
}

fn open_err(spec: &str) -> String {
    let (source, name) = ImageSource::parse_named(spec).unwrap();
    match OpenedImage::open(&source, name.as_deref()) {
        Ok(_) => panic!("{spec} opened"),
        Err(e) => e.to_string(),
    }
}

fn blob_path(dir: &Path, digest: &str) -> PathBuf {
    dir.join("blobs/sha256")
        .join(digest.trim_start_matches("sha256:"))
}

#[test]
fn broken_layouts_and_archives_are_refused_naming_the_file() {
    let work = tempfile::tempdir().unwrap();

    // A dangling reference: index.json names a manifest that is not there.
    let dangling = work.path().join("dangling");
    let digest = write(work.path(), Output::OciDir(dangling.clone()), None);
    fs::remove_file(blob_path(&dangling, &digest)).unwrap();
    let err = open_err(&format!("oci:{}", dangling.display()));
    assert!(err.contains(&dangling.display().to_string()), "{err}");
    assert!(err.contains("is missing") && err.contains(&digest), "{err}");

    // Two images under one name.
    let twice = work.path().join("twice");
    write(work.path(), Output::OciDir(twice.clone()), Some("a:1"));
    edit_index(&twice, |index| {
        let mut other = index["manifests"][0].clone();
        other["platform"]["architecture"] = "arm64".into();
        index["manifests"].as_array_mut().unwrap().push(other);
    });
    let err = open_err(&format!("oci:{}:1", twice.display()));
    assert!(err.contains("names 2 images \"1\""), "{err}");
    assert!(err.contains(&twice.display().to_string()), "{err}");

    // A manifest whose config blob is missing.
    let no_config = work.path().join("no-config");
    let digest = write(work.path(), Output::OciDir(no_config.clone()), None);
    let manifest: Value =
        serde_json::from_slice(&fs::read(blob_path(&no_config, &digest)).unwrap()).unwrap();
    let config = manifest["config"]["digest"].as_str().unwrap().to_owned();
    fs::remove_file(blob_path(&no_config, &config)).unwrap();
    let err = open_err(&format!("oci:{}", no_config.display()));
    assert!(
        err.contains(&format!("manifest {digest} names {config}")),
        "{err}"
    );

    // A docker archive holding manifest.json twice: which one counts
    // depends on the reader, so neither does.
    let archive = work.path().join("img.tar");
    write(
        work.path(),
        Output::DockerArchive(archive.clone()),
        Some("a:1"),
    );
    let extra = work.path().join("extra");
    fs::create_dir(&extra).unwrap();
    fs::write(extra.join("manifest.json"), b"[]").unwrap();
    let status = Command::new("tar")
        .arg("-rf")
        .arg(&archive)
        .arg("-C")
        .arg(&extra)
        .arg("manifest.json")
        .status()
        .unwrap();
    assert!(status.success());
    let err = open_err(&format!("docker-archive:{}", archive.display()));
    assert!(err.contains("holds manifest.json twice"), "{err}");
    assert!(err.contains(&archive.display().to_string()), "{err}");

    // As a FROM base: the build fails and writes nothing.
    let ctx = work.path().join("ctx");
    fs::create_dir(&ctx).unwrap();
    fs::write(
        ctx.join("Dockerfile"),
        format!("FROM docker-archive:{}\n", archive.display()),
    )
    .unwrap();
    let out_dir = work.path().join("out");
    let out = rootstrap(
        &work.path().join("cache"),
        &[
            "build",
            "-f",
            ctx.join("Dockerfile").to_str().unwrap(),
            ctx.to_str().unwrap(),
            "--no-cache",
            "-o",
            &format!("oci:{}", out_dir.display()),
        ],
    );
    assert!(!out.status.success());
    assert!(stderr(&out).contains("holds manifest.json twice"));
    assert!(!out_dir.exists());
}

/// A build context FROM `base` adding one file.
fn context(work: &Path, base: &str) -> PathBuf {
    let ctx = work.join("ctx");
    fs::create_dir_all(&ctx).unwrap();
    fs::write(ctx.join("hello.txt"), "hello\n").unwrap();
    fs::write(
        ctx.join("Dockerfile"),
        format!("FROM {base}\nCOPY hello.txt /hello.txt\nCMD [\"/bin/sh\"]\n"),
    )
    .unwrap();
    ctx
}

fn build_args<'a>(ctx: &'a Path, extra: &[&'a str]) -> Vec<String> {
    let mut args = vec![
        "build".to_owned(),
        "-f".to_owned(),
        ctx.join("Dockerfile").display().to_string(),
        ctx.display().to_string(),
        "--no-cache".to_owned(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

fn run_build(cache: &Path, ctx: &Path, extra: &[&str]) -> ProcOutput {
    let args = build_args(ctx, extra);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    rootstrap(cache, &args)
}

#[test]
fn stored_names_work_for_every_command() {
    let work = tempfile::tempdir().unwrap();
    let cache = work.path().join("cache");
    let base = work.path().join("base.oci.tar");
    write(work.path(), Output::OciArchive(base.clone()), None);
    let ctx = context(work.path(), &format!("oci-archive:{}", base.display()));
    let oci = work.path().join("out");
    let oci_spec = format!("oci:{}", oci.display());
    let out = run_build(&cache, &ctx, &["-t", "itest/app:1", "-o", &oci_spec]);
    assert!(out.status.success(), "{}", stderr(&out));

    let out = rootstrap(&cache, &["inspect", "itest/app:1"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(printed.contains("Reference:    itest/app:1"), "{printed}");
    let out = rootstrap(&cache, &["sbom", "itest/app:1"]);
    assert!(out.status.success(), "{}", stderr(&out));
    // The stored image and the oci: output are one image.
    let out = rootstrap(&cache, &["diff", "itest/app:1", &oci_spec]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // A name the store does not hold is looked for in its registry (Docker
    // Hub here, which a test cannot reach); the error says both.
    let out = rootstrap(&cache, &["inspect", "itest/app:2"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("not in the local image store"), "{err}");
    assert!(err.contains("pulling it from its registry failed"), "{err}");
    // Neither a file, a stored name nor an image reference.
    let out = rootstrap(&cache, &["inspect", "Not/A/Name"]);
    assert!(stderr(&out).contains("not an image file or directory"));
    // FROM a stored name, as before.
    let ctx2 = work.path().join("ctx2");
    fs::create_dir_all(&ctx2).unwrap();
    fs::write(ctx2.join("Dockerfile"), "FROM itest/app:1\nENV X=1\n").unwrap();
    let out = run_build(&cache, &ctx2, &["-t", "itest/app:2"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = rootstrap(&cache, &["diff", "itest/app:1", "itest/app:2"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    if rustix::process::geteuid().is_root() {
        let out = rootstrap(
            &cache,
            &["run", "itest/app:1", "--", "/bin/cat", "/hello.txt"],
        );
        // The fixture has no /bin/cat: what matters is that the image was
        // found and unpacked, so any failure must come from the command.
        assert!(!stderr(&out).contains("local store"), "{}", stderr(&out));
    } else {
        skip("rootstrap run needs root");
    }
}

#[test]
fn dockerfile_rootfs_and_tar_outputs_hold_the_merged_tree() {
    let work = tempfile::tempdir().unwrap();
    let cache = work.path().join("cache");
    let base = work.path().join("base");
    write(work.path(), Output::OciDir(base.clone()), None);
    let ctx = context(work.path(), &format!("oci:{}", base.display()));
    let rootfs = work.path().join("rootfs");
    let tar = work.path().join("rootfs.tar");
    let out = run_build(
        &cache,
        &ctx,
        &[
            "-o",
            &format!("rootfs:{}", rootfs.display()),
            "-o",
            &format!("tar:{}", tar.display()),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    for present in ["keep", "added", "hello.txt", "etc/os-release"] {
        assert!(rootfs.join(present).exists(), "{present}");
    }
    assert!(
        !rootfs.join("gone").exists(),
        "the whiteout was not applied"
    );
    assert!(!rootfs.join(".wh.gone").exists());
    assert_eq!(
        fs::read_to_string(rootfs.join("hello.txt")).unwrap(),
        "hello\n"
    );
    let listing = Command::new("tar").arg("-tf").arg(&tar).output().unwrap();
    let listing = String::from_utf8_lossy(&listing.stdout);
    assert!(listing
        .lines()
        .any(|l| l.trim_start_matches("./") == "hello.txt"));
    assert!(!listing.contains("gone"), "{listing}");

    // An existing rootfs directory is refused before anything is built.
    let out = run_build(
        &cache,
        &ctx,
        &["-o", &format!("rootfs:{}", rootfs.display())],
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("refusing to replace"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_recipe_build_with_a_tag_is_stored_without_an_output() {
    let Some(busybox) = common::apkrepo::host_static_busybox() else {
        skip("no static busybox on the host (install busybox-static)");
        return;
    };
    if !common::run::is_root() {
        skip("an Alpine build runs package scripts, which needs root");
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let arch = std::env::consts::ARCH;
    let repo = common::fixture::alpine_repo(&work.path().join("mirror"), arch, &busybox);
    let server = common::httpd::TestServer::serve(&repo.root);
    let recipe = work.path().join("alpine-test.toml");
    fs::write(
        &recipe,
        format!(
            "{}\n[image]\nname = \"itest/from-recipe:0\"\n",
            common::fixture::alpine_source(arch)
        ),
    )
    .unwrap();
    let cache = work.path().join("cache");
    let oci = work.path().join("oci");
    let args = |extra: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = [
            "build",
            recipe.to_str().unwrap(),
            "--mirror",
            &server.base_url(),
            "--keys",
            repo.keys_dir.to_str().unwrap(),
            "--work-dir",
            work.path().to_str().unwrap(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    let run = |extra: &[&str]| {
        let a = args(extra);
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        rootstrap(&cache, &a)
    };
    // Without -t or an output there is nothing to write.
    let out = run(&[]);
    assert!(!out.status.success());
    // -t alone stores the image.
    let out = run(&["-t", "itest/alpine:1"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(printed.contains("itest/alpine:1  sha256:"), "{printed}");
    let images = rootstrap(&cache, &["images"]);
    assert!(String::from_utf8_lossy(&images.stdout).contains("itest/alpine"));
    // With an oci: output, the output is named by the recipe's image.name
    // unless -t names it, and the stored image is the same image.
    let out = run(&[
        "-t",
        "itest/alpine:2",
        "-o",
        &format!("oci:{}", oci.display()),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        index_of(&oci)["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"],
        "2"
    );
    let out = rootstrap(
        &cache,
        &["diff", "itest/alpine:2", &format!("oci:{}", oci.display())],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = rootstrap(&cache, &["sbom", "itest/alpine:1", "--format", "cyclonedx"]);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn a_recipes_dockerfile_steps_use_the_step_cache() {
    let Some(packages) = common::debrepo::sandbox_runtime_packages() else {
        return;
    };
    let fx = common::fixture::DebFixture::new();
    let repo = fx.write_repo("repo", &common::debrepo::Repo::new("fixture", packages));
    let server = common::httpd::TestServer::serve(&repo);
    fs::write(fx.path("f.txt"), "from the context\n").unwrap();
    fs::write(
        fx.path("Dockerfile"),
        "RUN echo ran > /etc/steps\nCOPY f.txt /f.txt\nENV STEPS=1\n",
    )
    .unwrap();
    fs::write(
        fx.path("recipe.toml"),
        format!(
            "{}mirror = \"{}\"\n\n[packages]\ninstall = []\n\n[build]\ndockerfile = \"Dockerfile\"\n",
            common::fixture::debian_source("amd64"),
            server.base_url()
        ),
    )
    .unwrap();
    let cache = fx.path("cache");
    let build = |out: &str, extra: &[&str]| {
        let out_spec = format!("oci:{}", fx.path(out).display());
        let recipe = fx.path("recipe.toml");
        let mut cmd = common::run::rootstrap_isolated();
        cmd.arg("build")
            .arg(&recipe)
            .arg("--cache-dir")
            .arg(&cache)
            .args(["-o", &out_spec])
            .args(extra);
        let o = cmd.output().unwrap();
        let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
        assert!(o.status.success(), "{stderr}");
        let digest = String::from_utf8_lossy(&o.stdout)
            .split_whitespace()
            .last()
            .unwrap()
            .to_owned();
        (digest, stderr.matches("CACHED").count())
    };
    let (first, cached) = build("one", &[]);
    assert_eq!(cached, 0);
    let (second, cached) = build("two", &[]);
    assert_eq!(cached, 2, "RUN and COPY come from the cache");
    assert_eq!(first, second, "a reused step gives the same layer");
    let (third, cached) = build("three", &["--no-cache"]);
    assert_eq!(cached, 0, "--no-cache runs every step");
    assert_eq!(first, third);
    let img = OpenedImage::open(&ImageSource::OciDir(fx.path("two")), None).unwrap();
    let files = tree(&img);
    assert!(files.contains(&"etc/steps".to_string()), "{files:?}");
    assert!(files.contains(&"f.txt".to_string()));
}
