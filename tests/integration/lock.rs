//! Lockfiles end to end, with the `rootstrap` binary against fixture
//! repositories served on 127.0.0.1: `rootstrap lock`, `build --lock
//! --locked` (same image as the resolving build; a lock the mirror no longer
//! satisfies fails naming every package, leaving nothing), drift reported by
//! a resolving build, and `rootstrap mirror` served as file:// offline.
//!
//! The Debian fixture is a foreign architecture (arm64 on amd64 hosts), so
//! no maintainer script runs and no root is needed; what is compared is the
//! package set, the fetch path and the image bytes.

use crate::common;
use crate::common::skip::skip;

use std::path::{Path, PathBuf};
use std::process::Output;

use common::apkrepo;
use common::debrepo::{DebPackage, Repo};
use common::fixture::{self, DebFixture};
use common::httpd::TestServer;
use common::run::{self, foreign_apk_arch, foreign_deb_arch, stderr};
use rootstrap::lock::{self, Lockfile};

/// The manifest digest a successful build printed for its first output.
fn digest(o: &Output) -> String {
    assert!(o.status.success(), "build failed:\n{}", stderr(o));
    let stdout = String::from_utf8_lossy(&o.stdout);
    let line = stdout.lines().next().expect("build printed its outputs");
    let d = line.split_whitespace().last().unwrap().to_owned();
    assert!(d.starts_with("sha256:"), "{line}");
    d
}

fn entries(dir: &Path) -> Vec<String> {
    match std::fs::read_dir(dir) {
        Ok(d) => d
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    }
}

fn read_lock(path: &Path) -> Lockfile {
    lock::parse(&std::fs::read_to_string(path).unwrap(), path).unwrap()
}

struct Deb {
    fx: DebFixture,
    server: TestServer,
}

fn pkg(name: &str, version: &str) -> DebPackage {
    let mut p = DebPackage::new(name, version);
    p.arch = foreign_deb_arch().into();
    p
}

fn base_packages() -> Vec<DebPackage> {
    vec![
        pkg("base-files", "1.0").essential().dir("etc").file(
            "etc/os-release",
            0o644,
            b"ID=fixture\n",
        ),
        pkg("hello-fixture", "2.0-1").depends("base-files").file(
            "usr/share/hello/greeting",
            0o644,
            b"hello\n",
        ),
        pkg("old-tool", "1.0")
            .essential()
            .file("usr/share/old-tool/x", 0o644, b"old\n"),
    ]
}

impl Deb {
    fn new(packages: Vec<DebPackage>) -> Deb {
        let fx = DebFixture::new();
        for sub in ["work", "out"] {
            std::fs::create_dir(fx.path(sub)).unwrap();
        }
        let server = TestServer::serve(&fx.path("repo"));
        let deb = Deb { fx, server };
        deb.publish(packages);
        let recipe = format!(
            "{}\n[packages]\ninstall = [\"hello-fixture\"]\n\n\
             [image]\nname = \"rootstrap-test/lock:1\"\ncmd = [\"/bin/sh\"]\n",
            fixture::debian_source(foreign_deb_arch())
        );
        std::fs::write(deb.path("recipe.toml"), recipe).unwrap();
        deb
    }

    /// (Re)writes the served repository with `packages`, freshly signed.
    fn publish(&self, packages: Vec<DebPackage>) {
        let _ = std::fs::remove_dir_all(self.path("repo"));
        let mut repo = Repo::new("fixture", packages);
        repo.arch = foreign_deb_arch().into();
        self.fx.write_repo("repo", &repo);
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.fx.path(rel)
    }

    fn mirror(&self) -> String {
        self.server.base_url()
    }

    fn run(&self, args: &[&str], cache: &str, mirror: &str) -> Output {
        run::rootstrap_isolated()
            .args(args)
            .arg("--cache-dir")
            .arg(self.path(cache))
            .arg("--mirror")
            .arg(mirror)
            .output()
            .unwrap()
    }

    fn lock(&self, cache: &str) -> PathBuf {
        let file = self.path("fixture.lock");
        let o = self.run(
            &[
                "lock",
                self.path("recipe.toml").to_str().unwrap(),
                "-o",
                file.to_str().unwrap(),
            ],
            cache,
            &self.mirror(),
        );
        assert!(o.status.success(), "lock failed:\n{}", stderr(&o));
        file
    }

    /// `build` into out/NAME with `extra` arguments.
    fn build(&self, name: &str, cache: &str, mirror: &str, extra: &[&str]) -> Output {
        let recipe = self.path("recipe.toml");
        let out = format!("oci:{}", self.path("out").join(name).display());
        let work = self.path("work");
        let mut args = vec![
            "build",
            // A foreign architecture: no package scripts, no root.
            "--skip-foreign-scripts",
            recipe.to_str().unwrap(),
            "--output",
            &out,
            "--work-dir",
            work.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        self.run(&args, cache, mirror)
    }
}

#[test]
fn lock_records_the_plan_and_round_trips() {
    let f = Deb::new(base_packages());
    let file = f.lock("cache");
    let text = std::fs::read_to_string(&file).unwrap();
    let lock = read_lock(&file);
    assert_eq!(
        lock::to_toml(&lock).unwrap(),
        text,
        "written in canonical form"
    );
    assert_eq!(lock.source.suite, "fixture");
    assert_eq!(lock.source.arch, foreign_deb_arch());
    assert_eq!(lock.source.mirror.as_deref(), Some(f.mirror().as_str()));
    // Install order: what a package depends on comes first.
    let names: Vec<&str> = lock.packages.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["base-files", "old-tool", "hello-fixture"]);
    let hello = &lock.packages[2];
    assert_eq!(hello.version, "2.0-1");
    let deb = std::fs::read(hello.path.under(&f.path("repo"))).unwrap();
    assert_eq!(hello.size, deb.len() as u64);
    assert_eq!(hello.sha256, rootstrap::verify::Sha256Digest::of(&deb));
    let index: Vec<&str> = lock.index.iter().map(|i| i.path.as_str()).collect();
    assert_eq!(index[0], "dists/fixture/InRelease");
    assert!(index[1].starts_with(&format!(
        "dists/fixture/main/binary-{}/Packages",
        foreign_deb_arch()
    )));
    for i in &lock.index {
        let bytes = std::fs::read(i.path.under(&f.path("repo"))).unwrap();
        assert_eq!(
            i.sha256,
            rootstrap::verify::Sha256Digest::of(&bytes),
            "{}",
            i.path
        );
    }
    let recipe = std::fs::read(f.path("recipe.toml")).unwrap();
    assert_eq!(
        lock.recipe_sha256,
        rootstrap::verify::Sha256Digest::of(&recipe)
    );
}

#[test]
fn locked_build_gives_the_resolving_builds_image() {
    let f = Deb::new(base_packages());
    let file = f.lock("cache-lock");
    let lock_arg = file.to_str().unwrap();
    let resolved = digest(&f.build("resolved", "cache-a", &f.mirror(), &[]));
    let debs_fetched = f.server.total_requests();
    let locked = f.build(
        "locked",
        "cache-b",
        &f.mirror(),
        &["--lock", lock_arg, "--locked"],
    );
    assert_eq!(digest(&locked), resolved, "same set, same image");
    assert!(
        f.server.total_requests() > debs_fetched,
        "a fresh cache downloads"
    );
    // Warm: the same again, and the drift check of a resolving build is quiet.
    let warm = f.build("warm", "cache-b", &f.mirror(), &["--lock", lock_arg]);
    assert_eq!(digest(&warm), resolved);
    assert!(
        stderr(&warm).contains("match the lock"),
        "{}",
        stderr(&warm)
    );
    assert_eq!(entries(&f.path("work")), Vec::<String>::new());
}

#[test]
fn locked_build_names_every_missing_or_changed_package_and_writes_nothing() {
    let f = Deb::new(base_packages());
    let file = f.lock("cache");
    // The mirror moves on: hello-fixture is gone, base-files was rebuilt
    // with the same version but other bytes.
    let mut packages = base_packages();
    packages.remove(1);
    packages[0] = pkg("base-files", "1.0").essential().dir("etc").file(
        "etc/os-release",
        0o644,
        b"ID=rebuilt\n",
    );
    f.publish(packages);
    let o = f.build(
        "out",
        "cache",
        &f.mirror(),
        &["--lock", file.to_str().unwrap(), "--locked"],
    );
    let err = stderr(&o);
    assert!(!o.status.success(), "must fail:\n{err}");
    assert!(err.contains("fixture.lock"), "{err}");
    assert!(
        err.contains("hello-fixture 2.0-1") && err.contains("not in the signed index"),
        "{err}"
    );
    assert!(
        err.contains("base-files 1.0") && err.contains("sha256"),
        "{err}"
    );
    assert!(!err.contains("old-tool"), "{err}");
    assert_eq!(entries(&f.path("out")), Vec::<String>::new());
    assert_eq!(entries(&f.path("work")), Vec::<String>::new());
}

#[test]
fn locked_build_fails_when_a_locked_file_is_gone_from_the_mirror() {
    let f = Deb::new(base_packages());
    let file = f.lock("cache");
    let lock = read_lock(&file);
    let hello = lock
        .packages
        .iter()
        .find(|p| p.name == "hello-fixture")
        .unwrap();
    std::fs::remove_file(hello.path.under(&f.path("repo"))).unwrap();
    let o = f.build(
        "out",
        "cache",
        &f.mirror(),
        &["--lock", file.to_str().unwrap(), "--locked"],
    );
    let err = stderr(&o);
    assert!(!o.status.success(), "must fail:\n{err}");
    assert!(err.contains("hello-fixture_2.0-1"), "{err}");
    assert_eq!(entries(&f.path("out")), Vec::<String>::new());
    assert_eq!(entries(&f.path("work")), Vec::<String>::new());
}

#[test]
fn resolving_build_reports_drift_against_the_lock() {
    let f = Deb::new(base_packages());
    let file = f.lock("cache");
    let before = std::fs::read(&file).unwrap();
    let packages = vec![
        base_packages().remove(0),
        pkg("hello-fixture", "2.0-2").depends("base-files").file(
            "usr/share/hello/greeting",
            0o644,
            b"hello again\n",
        ),
        pkg("new-tool", "0.1")
            .essential()
            .file("usr/share/new-tool/x", 0o644, b"new\n"),
    ];
    f.publish(packages);
    let o = f.build(
        "out",
        "cache",
        &f.mirror(),
        &["--lock", file.to_str().unwrap()],
    );
    let err = stderr(&o);
    assert!(o.status.success(), "drift only warns:\n{err}");
    assert!(err.contains("3 package(s) drifted"), "{err}");
    assert!(err.contains("added   new-tool 0.1"), "{err}");
    assert!(err.contains("removed old-tool 1.0"), "{err}");
    assert!(
        err.contains("changed hello-fixture 2.0-1 -> 2.0-2"),
        "{err}"
    );
    assert_eq!(
        std::fs::read(&file).unwrap(),
        before,
        "an existing lock is never rewritten"
    );

    // `resolve --lock` says the same without building, and fails like
    // `git diff --exit-code`.
    let o = f.run(
        &[
            "resolve",
            f.path("recipe.toml").to_str().unwrap(),
            "--lock",
            file.to_str().unwrap(),
        ],
        "cache",
        &f.mirror(),
    );
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{stdout}{}", stderr(&o));
    assert!(stdout.contains("3 package(s) drifted"), "{stdout}");
    assert!(stdout.contains("  added   new-tool 0.1"), "{stdout}");
    assert!(stdout.contains("  removed old-tool 1.0"), "{stdout}");
    assert!(
        stdout.contains("  changed hello-fixture 2.0-1 -> 2.0-2"),
        "{stdout}"
    );
}

#[test]
fn build_with_a_new_lock_path_writes_the_lock_and_locked_needs_one() {
    let f = Deb::new(base_packages());
    let file = f.path("new.lock");
    let arg = file.to_str().unwrap();
    let o = f.build(
        "missing",
        "cache",
        &f.mirror(),
        &["--lock", arg, "--locked"],
    );
    assert!(!o.status.success());
    assert!(stderr(&o).contains("does not exist"), "{}", stderr(&o));
    assert!(!file.exists());
    let first = digest(&f.build("first", "cache", &f.mirror(), &["--lock", arg]));
    let written = read_lock(&file);
    let made = read_lock(&f.lock("cache"));
    assert_eq!(written, made, "the same lock as `rootstrap lock`");
    let again = f.build("again", "cache", &f.mirror(), &["--lock", arg, "--locked"]);
    assert_eq!(digest(&again), first);
}

#[test]
fn mirror_output_serves_an_offline_locked_build_with_the_same_image() {
    let f = Deb::new(base_packages());
    let file = f.lock("cache-a");
    let lock_arg = file.to_str().unwrap();
    let resolved = digest(&f.build("resolved", "cache-a", &f.mirror(), &[]));

    // From a warm cache, offline: nothing is downloaded.
    let requests = f.server.total_requests();
    let mirror_dir = f.path("mirror");
    let o = run::rootstrap()
        .args(["mirror", lock_arg, "-o"])
        .arg(&mirror_dir)
        .arg("--cache-dir")
        .arg(f.path("cache-a"))
        .arg("--offline")
        .env_remove("ROOTSTRAP_MIRROR")
        .output()
        .unwrap();
    assert!(o.status.success(), "mirror failed:\n{}", stderr(&o));
    assert_eq!(f.server.total_requests(), requests, "all from the cache");
    let lock = read_lock(&file);
    for rel in lock
        .index
        .iter()
        .map(|i| &i.path)
        .chain(lock.packages.iter().map(|p| &p.path))
    {
        assert_eq!(
            std::fs::read(rel.under(&mirror_dir)).unwrap(),
            std::fs::read(rel.under(&f.path("repo"))).unwrap(),
            "{rel}"
        );
    }

    // Served as file://, offline, with a fresh cache: the same image.
    let url = format!("file://{}", mirror_dir.display());
    let o = f.build(
        "from-mirror",
        "cache-c",
        &url,
        &["--lock", lock_arg, "--locked", "--offline"],
    );
    assert_eq!(digest(&o), resolved);
    assert_eq!(
        f.server.total_requests(),
        requests,
        "no request to the http mirror"
    );

    // A second mirror from an empty cache fetches everything, and the
    // output directory must be new.
    let o = run::rootstrap()
        .args(["mirror", lock_arg, "-o"])
        .arg(f.path("mirror2"))
        .arg("--cache-dir")
        .arg(f.path("cache-d"))
        .arg("--mirror")
        .arg(f.mirror())
        .env_remove("ROOTSTRAP_MIRROR")
        .output()
        .unwrap();
    assert!(o.status.success(), "mirror failed:\n{}", stderr(&o));
    assert!(f.path("mirror2/dists/fixture/InRelease").is_file());
    let again = run::rootstrap()
        .args(["mirror", lock_arg, "-o"])
        .arg(&mirror_dir)
        .arg("--cache-dir")
        .arg(f.path("cache-a"))
        .output()
        .unwrap();
    assert!(!again.status.success(), "refuses a non-empty directory");

    // Offline with an empty cache and no mirror: every missing file named,
    // nothing written.
    let o = run::rootstrap()
        .args(["mirror", lock_arg, "-o"])
        .arg(f.path("mirror3"))
        .arg("--cache-dir")
        .arg(f.path("cache-e"))
        .arg("--offline")
        .arg("--mirror")
        .arg(f.mirror())
        .env_remove("ROOTSTRAP_MIRROR")
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(!f.path("mirror3").exists());
    assert!(entries(f.fx.dir.path())
        .iter()
        .all(|e| !e.contains("rootstrap-mirror")));
}

#[test]
fn lock_for_another_architecture_is_refused() {
    let f = Deb::new(base_packages());
    let file = f.lock("cache");
    let text = std::fs::read_to_string(&file).unwrap().replacen(
        &format!("arch = \"{}\"", foreign_deb_arch()),
        "arch = \"riscv64\"",
        1,
    );
    std::fs::write(&file, text).unwrap();
    let o = f.build(
        "out",
        "cache",
        &f.mirror(),
        &["--lock", file.to_str().unwrap(), "--locked"],
    );
    let err = stderr(&o);
    assert!(!o.status.success());
    assert!(err.contains("riscv64") && err.contains("arch"), "{err}");
    assert_eq!(entries(&f.path("out")), Vec::<String>::new());
}

// ---- Alpine ----

struct Apk {
    tmp: tempfile::TempDir,
    repo: apkrepo::FixtureRepo,
    server: TestServer,
}

impl Apk {
    fn new(install: &[&str]) -> Option<Apk> {
        let busybox = apkrepo::host_static_busybox()?;
        let tmp = tempfile::tempdir().unwrap();
        let repo = fixture::alpine_repo(&tmp.path().join("mirror"), foreign_apk_arch(), &busybox);
        let server = TestServer::serve(&repo.root);
        let apk = Apk { tmp, repo, server };
        apk.write_recipe(install);
        Some(apk)
    }

    fn write_recipe(&self, install: &[&str]) {
        let list: Vec<String> = install.iter().map(|p| format!("{p:?}")).collect();
        std::fs::write(
            self.path("recipe.toml"),
            format!(
                "{}\n[packages]\ninstall = [{}]\n\n[image]\ncmd = [\"/bin/sh\"]\n",
                fixture::alpine_source(foreign_apk_arch()),
                list.join(", ")
            ),
        )
        .unwrap();
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.tmp.path().join(rel)
    }

    fn run(&self, args: &[&str], cache: &str, mirror: &str) -> Output {
        run::rootstrap_isolated()
            .args(args)
            .arg("--keys")
            .arg(&self.repo.keys_dir)
            .arg("--cache-dir")
            .arg(self.path(cache))
            .arg("--mirror")
            .arg(mirror)
            .output()
            .unwrap()
    }

    fn mirror(&self) -> String {
        self.server.base_url()
    }

    fn build(&self, name: &str, cache: &str, mirror: &str, extra: &[&str]) -> Output {
        let recipe = self.path("recipe.toml");
        let out = format!("oci:{}", self.path(name).display());
        let work = self.tmp.path().to_str().unwrap().to_owned();
        let mut args = vec![
            "build",
            // A foreign architecture: no package scripts, no root.
            "--skip-foreign-scripts",
            recipe.to_str().unwrap(),
            "--output",
            &out,
            "--work-dir",
            &work,
        ];
        args.extend_from_slice(extra);
        self.run(&args, cache, mirror)
    }
}

#[test]
fn alpine_lock_locked_build_and_mirror_give_the_same_image() {
    let Some(f) = Apk::new(&[]) else {
        skip("alpine lock test: no static busybox on the host (install busybox-static)");
        return;
    };
    let file = f.path("alpine.lock");
    let lock_arg = file.to_str().unwrap();
    let o = f.run(
        &[
            "lock",
            f.path("recipe.toml").to_str().unwrap(),
            "-o",
            lock_arg,
        ],
        "cache-a",
        &f.mirror(),
    );
    assert!(o.status.success(), "lock failed:\n{}", stderr(&o));
    let lock = read_lock(&file);
    assert_eq!(lock.packages.len(), f.repo.packages.len());
    assert_eq!(
        lock.index[0].path.as_str(),
        format!("v3.20/main/{}/APKINDEX.tar.gz", foreign_apk_arch())
    );
    let index = std::fs::read(lock.index[0].path.under(&f.repo.root)).unwrap();
    assert_eq!(lock.index[0].size, index.len() as u64);
    assert_eq!(
        lock.index[0].sha256,
        rootstrap::verify::Sha256Digest::of(&index)
    );
    for p in &lock.packages {
        let bytes = std::fs::read(p.path.under(&f.repo.root)).unwrap();
        assert_eq!(
            p.sha256,
            rootstrap::verify::Sha256Digest::of(&bytes),
            "{}",
            p.name
        );
        assert!(
            p.checksum.as_deref().is_some_and(|c| c.starts_with("Q1")),
            "{}",
            p.name
        );
    }

    let resolved = digest(&f.build("resolved", "cache-a", &f.mirror(), &[]));
    let locked = f.build(
        "locked",
        "cache-b",
        &f.mirror(),
        &["--lock", lock_arg, "--locked"],
    );
    assert_eq!(digest(&locked), resolved);
    let o = f.run(
        &[
            "resolve",
            f.path("recipe.toml").to_str().unwrap(),
            "--lock",
            lock_arg,
        ],
        "cache-a",
        &f.mirror(),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("no drift"));

    let o = run::rootstrap()
        .args(["mirror", lock_arg, "-o"])
        .arg(f.path("copy"))
        .arg("--cache-dir")
        .arg(f.path("cache-a"))
        .arg("--offline")
        .output()
        .unwrap();
    assert!(o.status.success(), "mirror failed:\n{}", stderr(&o));
    let url = format!("file://{}", f.path("copy").display());
    let offline = f.build(
        "offline",
        "cache-c",
        &url,
        &["--lock", lock_arg, "--locked", "--offline"],
    );
    assert_eq!(digest(&offline), resolved);

    // A package whose bytes changed behind the same name and version: its
    // C: identity no longer matches the lock.
    let mut busybox = f
        .repo
        .packages
        .iter()
        .find(|p| p.spec.name == "busybox")
        .unwrap()
        .spec
        .clone();
    busybox.description.push_str(" (rebuilt)");
    let mut repo = fixture::alpine_repo(
        &f.path("mirror2"),
        foreign_apk_arch(),
        &apkrepo::host_static_busybox().unwrap(),
    );
    // Same key as the lock's mirror is not needed for the check: the index
    // verifies with the new repository's key.
    repo.packages.retain(|p| p.spec.name != "busybox");
    repo.add_package(&busybox).unwrap();
    let server2 = TestServer::serve(&repo.root);
    let o = run::rootstrap()
        .args(["build", "--skip-foreign-scripts"])
        .arg(f.path("recipe.toml"))
        .arg("--output")
        .arg(format!("oci:{}", f.path("bad").display()))
        .arg("--keys")
        .arg(&repo.keys_dir)
        .arg("--cache-dir")
        .arg(f.path("cache-b"))
        .arg("--mirror")
        .arg(server2.base_url())
        .args(["--lock", lock_arg, "--locked"])
        .output()
        .unwrap();
    let err = stderr(&o);
    assert!(!o.status.success(), "must fail:\n{err}");
    assert!(err.contains("busybox") && err.contains("C:"), "{err}");
    assert!(!f.path("bad").exists());
    // The same change, seen by `resolve --lock` from the index alone.
    let o = run::rootstrap()
        .args(["resolve"])
        .arg(f.path("recipe.toml"))
        .arg("--keys")
        .arg(&repo.keys_dir)
        .arg("--cache-dir")
        .arg(f.path("cache-b"))
        .arg("--mirror")
        .arg(server2.base_url())
        .args(["--lock", lock_arg])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{stdout}{}", stderr(&o));
    assert!(
        stdout.contains("changed busybox") && stdout.contains("different package (C:Q1"),
        "{stdout}"
    );
}

#[test]
fn alpine_pinned_versions_are_honoured() {
    let Some(f) = Apk::new(&["busybox=1.36.1-r29"]) else {
        skip("alpine pin test: no static busybox on the host (install busybox-static)");
        return;
    };
    let o = f.run(
        &["resolve", f.path("recipe.toml").to_str().unwrap()],
        "cache",
        &f.mirror(),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("1.36.1-r29"));
    f.write_recipe(&["busybox=9.9-r0"]);
    let o = f.run(
        &["resolve", f.path("recipe.toml").to_str().unwrap()],
        "cache",
        &f.mirror(),
    );
    let err = stderr(&o);
    assert!(!o.status.success(), "an unavailable pin must fail:\n{err}");
    assert!(err.contains("busybox") && err.contains("9.9-r0"), "{err}");
}

#[test]
fn hostile_lock_paths_are_refused_before_anything_is_written() {
    let f = Deb::new(base_packages());
    let file = f.lock("cache");
    let lock = read_lock(&file);
    let text = std::fs::read_to_string(&file).unwrap();
    let outside = f.path("escaped.deb");
    for (evil, needle) in [
        ("../../../escaped.deb", "\"..\""),
        (outside.to_str().unwrap(), "absolute"),
    ] {
        let hostile = text.replacen(lock.packages[0].path.as_str(), evil, 1);
        std::fs::write(&file, hostile).unwrap();
        let o = run::rootstrap()
            .args(["mirror", file.to_str().unwrap(), "-o"])
            .arg(f.path("mirror"))
            .arg("--cache-dir")
            .arg(f.path("cache"))
            .output()
            .unwrap();
        let err = stderr(&o);
        assert!(!o.status.success(), "{evil}: must fail");
        assert!(
            err.contains("fixture.lock") && err.contains("package[0]") && err.contains(needle),
            "{err}"
        );
        assert!(!f.path("mirror").exists() && !outside.exists());
        let o = f.build(
            "out",
            "cache",
            &f.mirror(),
            &["--lock", file.to_str().unwrap(), "--locked"],
        );
        assert!(!o.status.success());
        assert!(stderr(&o).contains("package[0]"), "{}", stderr(&o));
        assert_eq!(entries(&f.path("out")), Vec::<String>::new());
    }
}
