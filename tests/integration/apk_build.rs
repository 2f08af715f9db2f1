//! `rootstrap build` of Alpine recipes against a repository generated at
//! test time (real signed v2 packages around the host's static busybox),
//! served over HTTP on 127.0.0.1; plus resolving the minirootfs world
//! against the real Alpine 3.16 index from ../shared/conformance.

use crate::common;
use crate::common::skip::{not_applicable, skip};
use crate::signals;

use std::path::{Path, PathBuf};
use std::process::Output;

use common::apkrepo::{self, FixtureRepo, PackageSpec, SigningKey};
use common::conformance;
use common::fixture;
use common::httpd::TestServer;
use common::run::{self, foreign_apk_arch as foreign_arch, is_root, stderr};
use rootstrap::distro::apk::bootstrap::{self, ApkSource, LoadedIndexes};
use rootstrap::distro::apk::{installed, parse_index, TrustedKeys};

const RELEASE: &str = fixture::ALPINE_RELEASE;

fn busybox_or_skip(test: &str) -> Option<Vec<u8>> {
    let bb = apkrepo::host_static_busybox();
    if bb.is_none() {
        skip(format!(
            "{test}: no static busybox on the host (install busybox-static)"
        ));
    }
    bb
}

struct Setup {
    tmp: tempfile::TempDir,
    repo: FixtureRepo,
    server: TestServer,
    recipe: PathBuf,
}

fn setup(arch: &str, busybox: &[u8]) -> Setup {
    setup_with(arch, busybox, &[])
}

/// A fixture repository plus `extra` packages, which the recipe installs.
fn setup_with(arch: &str, busybox: &[u8], extra: &[PackageSpec]) -> Setup {
    let tmp = tempfile::tempdir().unwrap();
    let mut repo = fixture::alpine_repo(&tmp.path().join("mirror"), arch, busybox);
    for spec in extra {
        repo.add_package(spec).unwrap();
    }
    let install: Vec<String> = extra.iter().map(|p| format!("{:?}", p.name)).collect();
    let server = TestServer::serve(&repo.root);
    let recipe = tmp.path().join("alpine-test.toml");
    std::fs::write(
        &recipe,
        format!(
            "{}\n[packages]\ninstall = [{}]\n\n[image]\ncmd = [\"/bin/sh\"]\n",
            fixture::alpine_source(arch),
            install.join(", ")
        ),
    )
    .unwrap();
    Setup {
        tmp,
        repo,
        server,
        recipe,
    }
}

impl Setup {
    fn mirror(&self) -> String {
        self.server.base_url()
    }

    fn out(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    fn build(&self, extra: &[&str], outputs: &[String]) -> Output {
        self.build_command(extra, outputs).output().unwrap()
    }

    /// `rootstrap VERB RECIPE` against the fixture mirror, its key and the
    /// test's cache.
    fn command(&self, verb: &str) -> std::process::Command {
        let mut cmd = run::rootstrap();
        cmd.arg(verb)
            .arg(&self.recipe)
            .arg("--mirror")
            .arg(self.mirror())
            .arg("--keys")
            .arg(&self.repo.keys_dir)
            .arg("--cache-dir")
            .arg(self.out("cache"))
            .env_remove("ROOTSTRAP_MIRROR");
        cmd
    }

    fn build_command(&self, extra: &[&str], outputs: &[String]) -> std::process::Command {
        let mut cmd = self.command("build");
        cmd.arg("--work-dir").arg(self.tmp.path()).args(extra);
        for o in outputs {
            cmd.arg("--output").arg(o);
        }
        cmd.env_remove("SOURCE_DATE_EPOCH");
        cmd
    }

    /// `rootstrap resolve --json` of the recipe.
    fn resolve(&self, extra: &[&str]) -> Output {
        self.command("resolve")
            .arg("--json")
            .args(extra)
            .output()
            .unwrap()
    }

    /// Requests the mirror has had for `spec`'s file in the main repository.
    fn requests_of(&self, spec: &PackageSpec) -> usize {
        self.server.requests(&format!(
            "/{RELEASE}/main/{}/{}",
            spec.arch,
            spec.file_name()
        ))
    }

    /// [`Setup::requests_of`] the (first) package named `name`.
    fn requests_for(&self, name: &str) -> usize {
        let p = self
            .repo
            .packages
            .iter()
            .find(|p| p.spec.name == name)
            .unwrap();
        self.requests_of(&p.spec)
    }

    fn apk_requests(&self) -> usize {
        self.repo
            .packages
            .iter()
            .map(|p| self.requests_of(&p.spec))
            .sum()
    }
}

impl Setup {
    /// Temporary trees a build left in its work directory.
    fn trees_left(&self) -> Vec<String> {
        signals::list(self.tmp.path())
            .into_iter()
            .filter(|n| n.contains("rootfs"))
            .collect()
    }
}

fn read(root: &Path, p: &str) -> String {
    std::fs::read_to_string(root.join(p)).unwrap_or_else(|e| panic!("{p}: {e}"))
}

/// Labels of the image in an OCI layout directory.
fn oci_labels(dir: &Path) -> serde_json::Map<String, serde_json::Value> {
    let blob = |digest: &str| {
        let hex = digest.strip_prefix("sha256:").unwrap();
        let bytes = std::fs::read(dir.join("blobs/sha256").join(hex)).unwrap();
        serde_json::from_slice::<serde_json::Value>(&bytes).unwrap()
    };
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap();
    let manifest = blob(index["manifests"][0]["digest"].as_str().unwrap());
    let config = blob(manifest["config"]["digest"].as_str().unwrap());
    config["config"]["Labels"]
        .as_object()
        .cloned()
        .unwrap_or_default()
}

#[test]
fn builds_a_runnable_alpine_image_from_a_signed_repository() {
    let Some(bb) = busybox_or_skip("builds_a_runnable_alpine_image") else {
        return;
    };
    if !is_root() {
        skip("package scripts need the sandbox (root)");
        return;
    }
    let s = setup(std::env::consts::ARCH, &bb);
    let oci = s.out("oci");
    let archive = s.out("alpine.tar");
    let rootfs = s.out("rootfs");
    let o = s.build(
        &[],
        &[
            format!("oci:{}", oci.display()),
            format!("docker-archive:{}", archive.display()),
            format!("rootfs:{}", rootfs.display()),
        ],
    );
    assert!(o.status.success(), "build failed:\n{}", stderr(&o));
    assert!(archive.is_file() && oci.join("index.json").is_file());

    let installed = read(&rootfs, "lib/apk/db/installed");
    for name in [
        "alpine-baselayout",
        "alpine-baselayout-data",
        "alpine-keys",
        "apk-tools",
        "busybox",
        "busybox-binsh",
        "libc-utils",
        "musl",
        "musl-utils",
    ] {
        assert!(
            installed.contains(&format!("\nP:{name}\n")),
            "{name} not in installed db:\n{installed}"
        );
    }
    // The database parses back (the format apk-tools reads) with each
    // package's files, checksummed.
    let records = installed::parse_installed("installed", &installed).unwrap();
    assert_eq!(records.len(), s.repo.packages.len());
    let bb_rec = records.iter().find(|r| r.pkg.name == "busybox").unwrap();
    let bin = bb_rec.dirs.iter().find(|d| d.path == "bin").unwrap();
    assert!(bin
        .files
        .iter()
        .any(|f| f.name == "busybox" && f.checksum.is_some()));
    // Ownership and mode as the package says, recorded as apk records it.
    assert!(installed.contains("R:shadow\na:0:42:640\n"), "{installed}");
    let shadow = std::fs::metadata(rootfs.join("etc/shadow")).unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_eq!((shadow.gid(), shadow.mode() & 0o7777), (42, 0o640));
    let host = std::fs::metadata(rootfs.join("etc/hostname")).unwrap();
    let link = std::fs::metadata(rootfs.join("etc/hostname.hardlink")).unwrap();
    assert_eq!(host.ino(), link.ino(), "hard link extracted as a link");

    assert_eq!(
        read(&rootfs, "etc/apk/world"),
        "alpine-baselayout\nalpine-keys\napk-tools\nbusybox\nlibc-utils\n"
    );
    assert_eq!(
        read(&rootfs, "etc/apk/repositories"),
        format!("{}/{RELEASE}/main\n", s.mirror())
    );
    assert_eq!(
        read(&rootfs, "etc/apk/arch"),
        format!("{}\n", std::env::consts::ARCH)
    );
    assert_eq!(
        read(&rootfs, &format!("etc/apk/keys/{}", s.repo.key.name)),
        s.repo.key.public_pem()
    );
    assert!(rootfs.join("lib/apk/db/scripts.tar").is_file());
    assert!(read(&rootfs, "lib/apk/db/triggers")
        .contains(" /bin /usr/bin /sbin /usr/sbin /lib/modules/*\n"));
    assert!(rootfs.join("lib/apk/db/lock").is_file());
    // apk keeps lib/apk/exec, empty once the staged scripts are gone.
    assert_eq!(
        std::fs::read_dir(rootfs.join("lib/apk/exec"))
            .expect("lib/apk/exec")
            .count(),
        0,
        "staged scripts removed"
    );

    // Scripts ran in apk's order: pre-install with the version and before
    // the package's files, busybox's post-install made the applet links,
    // the trigger saw the directories.
    assert_eq!(
        read(&rootfs, "etc/.fixture-pre-install"),
        "pre-install 3.20.0-r0 files-absent\n"
    );
    assert!(
        !installed.contains("\nf:"),
        "no broken scripts:\n{installed}"
    );
    let ls = std::fs::read_link(rootfs.join("bin/ls")).expect("busybox applet link bin/ls");
    assert!(ls.to_string_lossy().ends_with("busybox"), "{ls:?}");
    let triggered = read(&rootfs, "etc/.fixture-busybox-trigger");
    assert!(
        triggered.split_whitespace().any(|d| d == "/bin"),
        "{triggered}"
    );

    let run = run::rootstrap()
        .args([
            "run",
            &format!("oci:{}", oci.display()),
            "--",
            "/bin/sh",
            "-c",
            "echo ok",
        ])
        .output()
        .unwrap();
    assert!(run.status.success(), "run failed:\n{}", stderr(&run));
    assert_eq!(String::from_utf8_lossy(&run.stdout), "ok\n");

    // A warm rebuild takes every package from the cache.
    let before = s.apk_requests();
    assert_eq!(before, s.repo.packages.len());
    let again = s.out("oci2");
    let o = s.build(&[], &[format!("oci:{}", again.display())]);
    assert!(o.status.success(), "warm build failed:\n{}", stderr(&o));
    assert_eq!(
        s.apk_requests(),
        before,
        "warm build downloaded packages again"
    );
    // Same signed index bytes, keys and request: the plan is reused rather
    // than verifying and parsing the whole index again.
    assert!(stderr(&o).contains("package plan reused"), "{}", stderr(&o));
    assert_eq!(
        std::fs::read(oci.join("index.json")).unwrap(),
        std::fs::read(again.join("index.json")).unwrap(),
        "rebuild is reproducible"
    );

    // A changed index is verified and parsed again.
    let mut s = s;
    let mut extra = PackageSpec::new("unrelated", "1-r0", std::env::consts::ARCH);
    extra.entries = vec![apkrepo::dir("etc", 0o755)];
    s.repo.add_package(&extra).unwrap();
    let third = s.out("oci3");
    let o = s.build(&[], &[format!("oci:{}", third.display())]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        !stderr(&o).contains("package plan reused"),
        "{}",
        stderr(&o)
    );
    assert!(
        stderr(&o).contains("10 packages, signed by"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn tampered_package_is_refused_and_nothing_is_written() {
    let Some(bb) = busybox_or_skip("tampered_package_is_refused") else {
        return;
    };
    let s = setup(std::env::consts::ARCH, &bb);
    let pkg = s
        .repo
        .packages
        .iter()
        .find(|p| p.spec.name == "musl-utils")
        .unwrap();
    let path = s.repo.package_path("musl-utils").unwrap();
    let mut bytes = std::fs::read(&path).unwrap();
    let at = pkg.data_range.start + pkg.data_range.len() / 2;
    bytes[at] ^= 0x01;
    std::fs::write(&path, &bytes).unwrap();

    // musl-utils comes late in the plan: the packages before it are already
    // installed (and their scripts run) in the build's tree when it fails,
    // since installing overlaps fetching; the tree must still go.
    let oci = s.out("oci");
    let archive = s.out("alpine.tar");
    let tree = s.out("tree");
    let o = s.build(
        &[],
        &[
            format!("oci:{}", oci.display()),
            format!("docker-archive:{}", archive.display()),
            format!("rootfs:{}", tree.display()),
        ],
    );
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(err.contains("musl-utils-1.2.5-r0"), "{err}");
    assert!(
        !oci.exists() && !archive.exists() && !tree.exists(),
        "output written despite a bad package"
    );
    let trees = s.trees_left();
    assert!(
        trees.is_empty(),
        "a tree was left beside the outputs: {trees:?}"
    );

    // The bad copy was evicted: once the mirror serves the right file, the
    // build fetches it again rather than trusting the cache.
    let good = &s
        .repo
        .packages
        .iter()
        .find(|p| p.spec.name == "musl-utils")
        .unwrap()
        .bytes;
    std::fs::write(&path, good).unwrap();
    let fetched = s.requests_for("musl-utils");
    if is_root() {
        let o = s.build(&[], &[format!("oci:{}", oci.display())]);
        assert!(o.status.success(), "{}", stderr(&o));
        assert_eq!(s.requests_for("musl-utils"), fetched + 1);
    }
}

/// HOSTILE 19 in a build: the control member (and so the signature, the
/// index `C:` and the package size) untouched, the data member swapped for
/// another well-formed gzip member of the same length. Only the datahash
/// can tell, and it does, before anything of the package is written.
#[test]
fn a_swapped_data_member_is_refused_by_its_datahash() {
    let Some(bb) = busybox_or_skip("a_swapped_data_member") else {
        return;
    };
    // A foreign architecture runs no scripts, so no root is needed.
    let arch = foreign_arch();
    let mut victim = PackageSpec::new("victim", "1-r0", arch);
    victim.entries = vec![
        apkrepo::dir("etc", 0o755),
        apkrepo::file("etc/victim", 0o644, b"genuine\n"),
    ];
    let s = setup_with(arch, &bb, &[victim]);
    let pkg = s
        .repo
        .packages
        .iter()
        .find(|p| p.spec.name == "victim")
        .unwrap();
    let path = s.repo.package_path("victim").unwrap();
    let original = std::fs::read(&path).unwrap();

    // An empty tar in a gzip member as long as the original one.
    let member = padded_gzip_member(&[0u8; 1024], pkg.data_range.len());
    let forged = [
        &original[..pkg.data_range.start],
        &member[..],
        &original[pkg.data_range.end..],
    ]
    .concat();
    assert_eq!(forged.len(), original.len());
    std::fs::write(&path, forged).unwrap();

    let oci = s.out("oci");
    let o = s.build(
        &["--skip-foreign-scripts"],
        &[format!("oci:{}", oci.display())],
    );
    assert!(!o.status.success(), "a swapped data member was accepted");
    let err = stderr(&o);
    assert!(
        err.contains("victim-1-r0") && err.contains("does not match .PKGINFO datahash"),
        "{err}"
    );
    assert!(!oci.exists());
}

/// `content` gzipped into one member of exactly `len` bytes, padded with a
/// FEXTRA field: a well-formed member that fits where another was.
fn padded_gzip_member(content: &[u8], len: usize) -> Vec<u8> {
    use std::io::Write;
    let mut deflate = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
    deflate.write_all(content).unwrap();
    let deflated = deflate.finish().unwrap();
    let xlen = len - 20 - deflated.len();
    let mut member = vec![0x1f, 0x8b, 8, 0x04, 0, 0, 0, 0, 0, 255];
    member.extend_from_slice(&u16::try_from(xlen).unwrap().to_le_bytes());
    member.extend(std::iter::repeat_n(b'x', xlen));
    member.extend_from_slice(&deflated);
    let mut crc = flate2::Crc::new();
    crc.update(content);
    member.extend_from_slice(&crc.sum().to_le_bytes());
    member.extend_from_slice(&(content.len() as u32).to_le_bytes());
    member
}

/// HOSTILE 18 in a build: the mirror serves another package signed by the
/// trusted key under this one's name, made exactly as long (so `S:` holds).
/// Its control member is not the one the index names (`C:`): refused before
/// anything is extracted, the copy evicted, and the genuine package fetched
/// once the mirror serves it again.
#[test]
fn a_validly_signed_package_that_is_not_the_indexed_one_is_refused() {
    use std::io::Read;
    let Some(bb) = busybox_or_skip("a_validly_signed_package_that_is_not") else {
        return;
    };
    let arch = foreign_arch();
    let mut victim = PackageSpec::new("victim", "1-r0", arch);
    victim.entries = vec![
        apkrepo::dir("etc", 0o755),
        apkrepo::file("etc/victim", 0o644, "genuine\n".repeat(300).as_bytes()),
    ];
    let s = setup_with(arch, &bb, &[victim.clone()]);
    let path = s.repo.package_path("victim").unwrap();
    let genuine = std::fs::read(&path).unwrap();

    let mut other = victim;
    other.entries = vec![
        apkrepo::dir("etc", 0o755),
        apkrepo::file("etc/victim", 0o644, b"forged\n"),
    ];
    let built = apkrepo::build_package(&other, Some(&s.repo.key));
    let data = &built.bytes[built.data_range.clone()];
    let mut tar = Vec::new();
    flate2::read::GzDecoder::new(data)
        .read_to_end(&mut tar)
        .unwrap();
    let room = genuine.len() - (built.bytes.len() - data.len());
    let forged = [
        &built.bytes[..built.data_range.start],
        &padded_gzip_member(&tar, room)[..],
        &built.bytes[built.data_range.end..],
    ]
    .concat();
    assert_eq!(forged.len(), genuine.len());
    std::fs::write(&path, forged).unwrap();

    let oci = s.out("oci");
    let flags = ["--skip-foreign-scripts"];
    let o = s.build(&flags, &[format!("oci:{}", oci.display())]);
    assert!(!o.status.success(), "another signed package was accepted");
    let err = stderr(&o);
    assert!(
        err.contains("victim-1-r0") && err.contains("does not match the index C:"),
        "{err}"
    );
    assert!(!oci.exists());

    // Evicted: with the genuine file served again, the next build fetches it.
    std::fs::write(&path, &genuine).unwrap();
    let fetched = s.requests_for("victim");
    let o = s.build(&flags, &[format!("oci:{}", oci.display())]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(s.requests_for("victim"), fetched + 1);
}

/// HOSTILE 17 in a build: an index signed by a key not trusted, one whose
/// signature entry (named for the trusted key) is over 64 KiB, and one
/// signed with an algorithm apk does not know.
#[test]
fn index_signed_by_an_unknown_key_is_refused() {
    let Some(bb) = busybox_or_skip("index_signed_by_an_unknown_key") else {
        return;
    };
    let s = setup(std::env::consts::ARCH, &bb);
    let stranger = SigningKey::generate("stranger.rsa.pub");
    let trusted = s.repo.key.name.clone();
    let stanzas: Vec<String> = s.repo.packages.iter().map(|p| p.stanza.clone()).collect();
    let stanzas: Vec<&str> = stanzas.iter().map(String::as_str).collect();
    let cases = [
        (
            apkrepo::build_index(&stanzas, Some(&stranger)),
            "stranger.rsa.pub".to_string(),
        ),
        (
            apkrepo::build_index_signed_with(&stanzas, |index| {
                let mut sig = s.repo.key.sign(index);
                sig.resize(64 * 1024 + 1, 0);
                Some((format!(".SIGN.RSA.{trusted}"), sig))
            }),
            "over the 64 KiB limit".to_string(),
        ),
        (
            apkrepo::build_index_signed_with(&stanzas, |index| {
                Some((format!(".SIGN.DSA.{trusted}"), s.repo.key.sign(index)))
            }),
            "unknown algorithm".to_string(),
        ),
    ];
    let index = s.repo.arch_dir.join("APKINDEX.tar.gz");
    for (bytes, needle) in cases {
        std::fs::write(&index, bytes).unwrap();
        let oci = s.out("oci");
        let o = s.build(&[], &[format!("oci:{}", oci.display())]);
        assert!(!o.status.success(), "{needle}: accepted");
        let err = stderr(&o);
        assert!(err.contains("APKINDEX") && err.contains(&needle), "{err}");
        assert!(!oci.exists());
    }
}

#[test]
fn allow_untrusted_accepts_an_unsigned_index_and_labels_the_image() {
    let Some(bb) = busybox_or_skip("allow_untrusted") else {
        return;
    };
    // A foreign architecture, so no scripts run and no root is needed.
    let foreign = if std::env::consts::ARCH == "aarch64" {
        "x86_64"
    } else {
        "aarch64"
    };
    let s = setup(foreign, &bb);
    s.repo.write_index(None).unwrap();
    let oci = s.out("oci");

    let o = s.build(&[], &[format!("oci:{}", oci.display())]);
    assert!(
        !o.status.success(),
        "unsigned index accepted without the flag"
    );
    assert!(stderr(&o).contains("not signed"), "{}", stderr(&o));
    assert!(!oci.exists());

    let o = s.build(
        &["--allow-untrusted", "--skip-foreign-scripts"],
        &[format!("oci:{}", oci.display())],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("scripts were not run"), "{err}");
    let labels = oci_labels(&oci);
    assert_eq!(labels["org.rootstrap.untrusted"], "true");
    assert_eq!(labels["org.rootstrap.scripts"], "not-run");
}

#[test]
fn foreign_arch_build_runs_no_scripts_and_marks_them_pending() {
    let Some(bb) = busybox_or_skip("foreign_arch_build_runs_no_scripts") else {
        return;
    };
    let foreign = if std::env::consts::ARCH == "aarch64" {
        "x86_64"
    } else {
        "aarch64"
    };
    let s = setup(foreign, &bb);
    let oci = s.out("oci");
    let rootfs = s.out("rootfs");
    let o = s.build(
        &["--skip-foreign-scripts"],
        &[
            format!("oci:{}", oci.display()),
            format!("rootfs:{}", rootfs.display()),
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let labels = oci_labels(&oci);
    assert!(
        !labels.contains_key("org.rootstrap.untrusted"),
        "{labels:?}"
    );
    assert_eq!(read(&rootfs, "etc/apk/arch"), format!("{foreign}\n"));
    // Scripts skipped: no applet links, but everything is installed.
    assert!(!rootfs.join("bin/ls").exists());
    assert!(rootfs.join("bin/busybox").is_file());
    assert!(!rootfs.join("etc/.fixture-pre-install").exists());
    assert!(!rootfs.join("etc/.fixture-busybox-trigger").exists());
    // The log says so, the image says so, and the database marks exactly the
    // packages with scripts as broken-script (f:s), which `apk fix` repairs
    // by reinstalling them on a machine of that architecture.
    let err = stderr(&o);
    assert!(err.contains("package scripts were not run"), "{err}");
    assert!(
        err.contains("marked for `apk fix` (f:s): busybox-1.36.1-r29, alpine-baselayout-3.20.0-r0"),
        "{err}"
    );
    assert_eq!(labels["org.rootstrap.scripts"], "not-run");
    let db = read(&rootfs, "lib/apk/db/installed");
    let records = installed::parse_installed("installed", &db).unwrap();
    let marked: Vec<&str> = records
        .iter()
        .filter(|r| r.broken.script)
        .map(|r| r.pkg.name.as_str())
        .collect();
    // The database is sorted by name, as apk 2.14 writes it.
    assert_eq!(marked, ["alpine-baselayout", "busybox"], "{db}");
    // Directories and database files with the modes apk's --initdb and
    // commit give them (apk_db_create, apk_db_write_config).
    use std::os::unix::fs::PermissionsExt;
    for (path, mode) in [
        ("tmp", 0o1777),
        ("etc/apk", 0o755),
        ("etc/apk/keys", 0o755),
        ("lib/apk/db", 0o755),
        ("var/cache/apk", 0o755),
        ("var/cache/misc", 0o755),
        ("lib/apk/db/installed", 0o644),
        ("lib/apk/db/scripts.tar", 0o644),
        ("lib/apk/db/triggers", 0o644),
        ("lib/apk/db/lock", 0o600),
        ("etc/apk/world", 0o644),
        ("etc/apk/repositories", 0o644),
        ("etc/apk/arch", 0o644),
    ] {
        let meta =
            std::fs::symlink_metadata(rootfs.join(path)).unwrap_or_else(|e| panic!("{path}: {e}"));
        assert_eq!(meta.permissions().mode() & 0o7777, mode, "{path}");
    }
    // The scripts are kept for that later run.
    let scripts = std::fs::read(rootfs.join("lib/apk/db/scripts.tar")).unwrap();
    assert!(contains(&scripts, b".pre-install") && contains(&scripts, b".post-install"));
}

#[test]
fn script_without_its_interpreter_yet_is_marked_broken_like_apk() {
    let Some(bb) = busybox_or_skip("script_without_its_interpreter_yet") else {
        return;
    };
    if !is_root() {
        skip("scripts need the sandbox (root)");
        return;
    }
    // Sorted first in the world and depending on nothing, so it is installed
    // before busybox: no /bin/sh exists when its scripts are due.
    let mut early = PackageSpec::new("aaa-early", "1-r0", std::env::consts::ARCH);
    early.entries = vec![
        apkrepo::dir("etc", 0o755),
        apkrepo::file("etc/early", 0o644, b"x\n"),
    ];
    early.scripts = vec![
        (
            ".pre-install".into(),
            b"#!/bin/sh\ntouch /etc/early-pre\n".to_vec(),
        ),
        (
            ".post-install".into(),
            b"#!/bin/sh\ntouch /etc/early-post\n".to_vec(),
        ),
    ];
    let s = setup_with(std::env::consts::ARCH, &bb, &[early]);
    let rootfs = s.out("rootfs");
    let o = s.build(&[], &[format!("rootfs:{}", rootfs.display())]);
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("aaa-early-1-r0 .pre-install: not run, /bin/sh is not installed yet"),
        "{err}"
    );
    assert!(
        err.contains("aaa-early-1-r0 .post-install: not run"),
        "{err}"
    );
    assert!(rootfs.join("etc/early").is_file());
    assert!(!rootfs.join("etc/early-pre").exists() && !rootfs.join("etc/early-post").exists());
    let db = read(&rootfs, "lib/apk/db/installed");
    let records = installed::parse_installed("installed", &db).unwrap();
    let marked: Vec<&str> = records
        .iter()
        .filter(|r| r.broken.script)
        .map(|r| r.pkg.name.as_str())
        .collect();
    assert_eq!(marked, ["aaa-early"], "{db}");
    // Later packages' scripts ran normally, pre-install before its files.
    assert_eq!(
        read(&rootfs, "etc/.fixture-pre-install"),
        "pre-install 3.20.0-r0 files-absent\n"
    );
}

#[test]
fn failing_script_fails_the_build_and_names_it() {
    let Some(bb) = busybox_or_skip("failing_script") else {
        return;
    };
    if !is_root() {
        skip("scripts need the sandbox (root)");
        return;
    }
    // HOSTILE 43: a failing maintainer script is an error naming the script.
    let mut bad = PackageSpec::new("zzz-failing", "1-r0", std::env::consts::ARCH);
    bad.depends = vec!["/bin/sh".into()];
    bad.entries = vec![apkrepo::dir("etc", 0o755)];
    bad.scripts = vec![(
        ".post-install".into(),
        b"#!/bin/sh\necho about to fail\nexit 3\n".to_vec(),
    )];
    let s = setup_with(std::env::consts::ARCH, &bb, &[bad]);
    let oci = s.out("oci");
    let o = s.build(&[], &[format!("oci:{}", oci.display())]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(err.contains("zzz-failing-1-r0 .post-install"), "{err}");
    assert!(err.contains("about to fail"), "{err}");
    assert!(err.contains("exit code 3"), "{err}");
    assert!(!oci.exists(), "no output after a failed script");
}

/// HOSTILE 33/34 on the scripts' shell: a build stopped (SIGTERM, as
/// `kill PID` or a Kubernetes stop sends it) while a script sleeps in the
/// sandbox session ends non-zero and leaves no process, no tree and no
/// output behind.
#[test]
fn signal_while_a_script_runs_in_the_shared_shell_leaves_nothing() {
    use crate::signals::{Build, SLEEP_MARKER};
    let Some(bb) = busybox_or_skip("signal_while_a_script_runs_in_the_shared_shell") else {
        return;
    };
    if !is_root() {
        skip("scripts need the sandbox (root)");
        return;
    }
    let mut slow = PackageSpec::new("zzz-slow", "1-r0", std::env::consts::ARCH);
    slow.depends = vec!["/bin/sh".into()];
    slow.entries = vec![apkrepo::dir("etc", 0o755)];
    slow.scripts = vec![(
        ".post-install".into(),
        format!("#!/bin/sh\necho zzz-slow is sleeping\nexec sleep {SLEEP_MARKER}\n").into_bytes(),
    )];
    let s = setup_with(std::env::consts::ARCH, &bb, &[slow]);
    for (signal, to) in signals::DELIVERIES {
        let what = format!("{signal:?} to the build's {to:?} during a script");
        let oci = s.out("oci");
        let mut build = Build::spawn(s.build_command(&[], &[format!("oci:{}", oci.display())]));
        build.wait_for_line("zzz-slow is sleeping");
        build.signal(signal, to);
        let status = build.wait_end(&what);
        assert_eq!(
            status.code(),
            Some(signals::expected_code(signal)),
            "{what}: {}",
            build.stderr()
        );
        assert!(
            build.stderr().contains("interrupted"),
            "{what}: {}",
            build.stderr()
        );
        let mut left = Vec::new();
        let gone = signals::wait_until(std::time::Duration::from_secs(10), || {
            left = signals::processes_of(s.tmp.path(), &build.marker);
            left.is_empty()
        });
        assert!(gone, "{what}: left running: {left:?}");
        assert!(!oci.exists(), "{what}: output written by a stopped build");
        let trees = s.trees_left();
        assert!(trees.is_empty(), "{what}: trees left: {trees:?}");
        let mounts = signals::mounts_under(s.tmp.path());
        assert!(mounts.is_empty(), "{what}: mounts left: {mounts:#?}");
    }
}

#[test]
fn tagged_repository_is_used_only_for_pinned_requests() {
    let Some(bb) = busybox_or_skip("tagged_repository") else {
        return;
    };
    let arch = foreign_arch();
    // main carries `both` 1; edge carries `both` 2 and `edgy` (which needs
    // musl, only in main: a pinned package's dependencies come from main).
    let mut both1 = PackageSpec::new("both", "1-r0", arch);
    both1.entries = vec![
        apkrepo::dir("etc", 0o755),
        apkrepo::file("etc/both", 0o644, b"1\n"),
    ];
    let s = setup_with(arch, &bb, &[both1]);
    let mut both2 = PackageSpec::new("both", "2-r0", arch);
    both2.entries = vec![
        apkrepo::dir("etc", 0o755),
        apkrepo::file("etc/both", 0o644, b"2\n"),
    ];
    let mut edgy = PackageSpec::new("edgy", "9-r0", arch);
    edgy.depends = vec![format!("so:libc.musl-{arch}.so.1")];
    edgy.entries = vec![
        apkrepo::dir("etc", 0o755),
        apkrepo::file("etc/edgy", 0o644, b"e\n"),
    ];
    s.repo
        .add_repository("edge/main", arch, &[both2, edgy])
        .unwrap();

    let recipe = std::fs::read_to_string(&s.recipe).unwrap().replace(
        "repositories = [\"main\"]",
        "repositories = [\"main\", \"@edge edge/main\"]",
    );
    std::fs::write(
        &s.recipe,
        recipe.replace(
            "install = [\"both\"]",
            "install = [\"both\", \"edgy@edge\"]",
        ),
    )
    .unwrap();
    let rootfs = s.out("rootfs");
    let o = s.build(&[], &[format!("rootfs:{}", rootfs.display())]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(read(&rootfs, "etc/both"), "1\n", "unpinned: main's version");
    assert_eq!(read(&rootfs, "etc/edgy"), "e\n");
    assert_eq!(
        read(&rootfs, "etc/apk/repositories"),
        format!("{m}/{RELEASE}/main\n@edge {m}/edge/main\n", m = s.mirror())
    );
    let world = read(&rootfs, "etc/apk/world");
    assert!(
        world.contains("\nboth\n") && world.contains("\nedgy@edge\n"),
        "{world}"
    );
    // apk records the tag a package was installed under as `s:`.
    let db = read(&rootfs, "lib/apk/db/installed");
    let records = installed::parse_installed("installed", &db).unwrap();
    let tag_of = |n: &str| {
        records
            .iter()
            .find(|r| r.pkg.name == n)
            .map(|r| r.pkg.repo_tag.clone())
            .unwrap_or_else(|| panic!("{n} not installed"))
    };
    assert_eq!(tag_of("edgy"), Some("edge".to_string()));
    assert_eq!(tag_of("both"), None);
    assert_eq!(tag_of("musl"), None);

    // Without the pin, the tagged repository's package is not available.
    let recipe = std::fs::read_to_string(&s.recipe).unwrap();
    std::fs::write(&s.recipe, recipe.replace("edgy@edge", "edgy")).unwrap();
    let o = s.build(&[], &[format!("rootfs:{}", s.out("rootfs2").display())]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("edgy"), "{}", stderr(&o));
    // A tag no repository has is a recipe error.
    std::fs::write(&s.recipe, recipe.replace("edgy@edge", "edgy@nope")).unwrap();
    let o = s.build(&[], &[format!("rootfs:{}", s.out("rootfs3").display())]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("no repository is tagged @nope"),
        "{}",
        stderr(&o)
    );
}

/// HOSTILE 33 for Alpine: the package cache, then the outputs, on a disk
/// too small: the error says so and names the directory, nothing is left at
/// the outputs or in the cache, and with room again the build succeeds.
#[test]
fn a_full_disk_under_an_alpine_build() {
    use crate::enospc::SmallDisk;
    let Some(bb) = busybox_or_skip("a_full_disk_under_an_alpine_build") else {
        return;
    };
    if !is_root() {
        skip("mounting a small tmpfs needs root");
        return;
    }
    // 6 MiB that gzip cannot shrink, so the package and its layer are big.
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let noise: Vec<u8> = (0..6 << 20)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let mut bulk = PackageSpec::new("bulk", "1-r0", std::env::consts::ARCH);
    bulk.entries = vec![
        apkrepo::dir("usr", 0o755),
        apkrepo::file("usr/bulk", 0o644, &noise),
    ];
    let s = setup_with(std::env::consts::ARCH, &bb, &[bulk]);
    std::fs::create_dir(s.out("out")).unwrap();
    let oci = s.out("out").join("oci");
    let archive = s.out("out").join("image.tar");
    let outputs = [
        format!("oci:{}", oci.display()),
        format!("docker-archive:{}", archive.display()),
    ];
    for (full, size) in [(s.out("cache"), "3m"), (s.out("out"), "8m")] {
        let disk = SmallDisk::mount(full.clone(), size);
        let o = s.build(&[], &outputs);
        let err = stderr(&o);
        assert!(!o.status.success(), "built on a full {}", full.display());
        let line = err
            .lines()
            .find(|l| l.starts_with("rootstrap: error"))
            .unwrap_or_else(|| panic!("no error line:\n{err}"));
        assert!(
            line.contains("No space left on device") && line.contains(&*full.to_string_lossy()),
            "{err}"
        );
        assert!(
            !oci.exists() && !archive.exists(),
            "{}: output left",
            full.display()
        );
        let debris: Vec<PathBuf> = signals::walk(&s.out("cache"))
            .into_iter()
            .filter(|p| {
                p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with(".tmp-")
            })
            .collect();
        assert!(debris.is_empty(), "left in the cache: {debris:?}");
        let trees = s.trees_left();
        assert!(trees.is_empty(), "trees left: {trees:?}");
        disk.grow("256m");
        let o = s.build(&[], &outputs);
        assert!(o.status.success(), "with room again: {}", stderr(&o));
        std::fs::remove_dir_all(&oci).unwrap();
        std::fs::remove_file(&archive).unwrap();
        drop(disk);
    }
}

/// HOSTILE 36 for Alpine: cached packages that were truncated, zeroed in
/// place or replaced by a dangling symlink are fetched again, and the build
/// gives the same image.
#[test]
fn corrupted_cached_packages_are_fetched_again() {
    let Some(bb) = busybox_or_skip("corrupted_cached_packages") else {
        return;
    };
    // A foreign architecture runs no scripts, so no root is needed.
    let s = setup(foreign_arch(), &bb);
    let flags = ["--skip-foreign-scripts"];
    let first = s.out("first");
    let o = s.build(&flags, &[format!("oci:{}", first.display())]);
    assert!(o.status.success(), "{}", stderr(&o));

    let cached: Vec<PathBuf> = signals::walk(&s.out("cache"));
    let copy_of = |name: &str| {
        let bytes = &s
            .repo
            .packages
            .iter()
            .find(|p| p.spec.name == name)
            .unwrap()
            .bytes;
        cached
            .iter()
            .find(|p| std::fs::read(p).is_ok_and(|b| &b == bytes))
            .unwrap_or_else(|| panic!("no cached copy of {name}"))
            .clone()
    };
    let damaged = ["musl", "busybox", "musl-utils"];
    let truncated = copy_of(damaged[0]);
    let len = std::fs::metadata(&truncated).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&truncated)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    let zeroed = copy_of(damaged[1]);
    let len = std::fs::metadata(&zeroed).unwrap().len() as usize;
    std::fs::write(&zeroed, vec![0u8; len]).unwrap();
    let dangling = copy_of(damaged[2]);
    std::fs::remove_file(&dangling).unwrap();
    std::os::unix::fs::symlink("/nonexistent/rootstrap-cache-target", &dangling).unwrap();
    let before: Vec<usize> = damaged.iter().map(|n| s.requests_for(n)).collect();

    let second = s.out("second");
    let o = s.build(&flags, &[format!("oci:{}", second.display())]);
    assert!(o.status.success(), "{}", stderr(&o));
    for (name, was) in damaged.iter().zip(before) {
        assert_eq!(
            s.requests_for(name),
            was + 1,
            "{name} was not fetched again"
        );
    }
    assert_eq!(
        std::fs::read(first.join("index.json")).unwrap(),
        std::fs::read(second.join("index.json")).unwrap(),
        "another image from the repaired cache"
    );
}

/// HOSTILE 32 for Alpine: when an update fails at one repository's index,
/// the copies kept for `--offline` stay as they were for every repository,
/// never new ones for the repositories before it.
#[test]
fn a_failed_index_update_keeps_none_of_the_new_indexes() {
    let Some(bb) = busybox_or_skip("a_failed_index_update") else {
        return;
    };
    let arch = std::env::consts::ARCH;
    let mut both1 = PackageSpec::new("both", "1-r0", arch);
    both1.entries = vec![apkrepo::file("both", 0o644, b"1\n")];
    let mut s = setup_with(arch, &bb, &[both1]);
    s.repo
        .add_repository(
            &format!("{RELEASE}/community"),
            arch,
            &[PackageSpec::new("edgy", "1-r0", arch)],
        )
        .unwrap();
    let recipe = std::fs::read_to_string(&s.recipe).unwrap();
    std::fs::write(
        &s.recipe,
        recipe.replace(
            "repositories = [\"main\"]",
            "repositories = [\"main\", \"community\"]",
        ),
    )
    .unwrap();
    let version_of_both = |o: &Output| {
        assert!(o.status.success(), "{}", stderr(o));
        let plan: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        plan["packages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "both")
            .map(|p| p["version"].as_str().unwrap().to_string())
            .unwrap()
    };
    assert_eq!(version_of_both(&s.resolve(&[])), "1-r0");

    // main moves on to both 2; community's new index is signed by a stranger.
    let mut both2 = PackageSpec::new("both", "2-r0", arch);
    both2.entries = vec![apkrepo::file("both", 0o644, b"2\n")];
    s.repo.add_package(&both2).unwrap();
    let stranger = SigningKey::generate("stranger.rsa.pub");
    let edge_index = s
        .repo
        .root
        .join(RELEASE)
        .join("community")
        .join(arch)
        .join("APKINDEX.tar.gz");
    let stanzas = apkrepo::build_package(&PackageSpec::new("edgy", "2-r0", arch), None).stanza;
    std::fs::write(
        &edge_index,
        apkrepo::build_index(&[&stanzas], Some(&stranger)),
    )
    .unwrap();
    let o = s.resolve(&[]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("stranger.rsa.pub"), "{}", stderr(&o));

    // Offline, main's kept index is still the one with both 1.
    assert_eq!(version_of_both(&s.resolve(&["--offline"])), "1-r0");
}

/// Runs a build that must fail at extraction (before any script), with
/// `needle` in the error, and leave no output.
fn assert_extraction_refused(test: &str, evil: PackageSpec, needle: &str) {
    let Some(bb) = busybox_or_skip(test) else {
        return;
    };
    let s = setup_with(std::env::consts::ARCH, &bb, &[evil]);
    let oci = s.out("oci");
    let o = s.build(&[], &[format!("oci:{}", oci.display())]);
    assert!(!o.status.success(), "{test}: build succeeded");
    let err = stderr(&o);
    assert!(
        err.contains(needle) && err.contains("evil-1-r0"),
        "{test}: {err}"
    );
    assert!(!oci.exists());
}

#[test]
fn package_overwriting_another_packages_file_is_refused() {
    // HOSTILE 16: evil ships /etc/passwd, owned by alpine-baselayout-data.
    let mut evil = PackageSpec::new("evil", "1-r0", std::env::consts::ARCH);
    evil.entries = vec![
        apkrepo::dir("etc", 0o755),
        apkrepo::file("etc/passwd", 0o644, b"root::0:0::/:/bin/sh\n"),
    ];
    assert_extraction_refused(
        "overwrite",
        evil,
        "trying to overwrite /etc/passwd, owned by alpine-baselayout-data",
    );
}

#[test]
fn hardlink_to_a_file_of_another_package_is_refused() {
    // HOSTILE 8: the link target exists in the rootfs, but not in this package.
    let mut evil = PackageSpec::new("evil", "1-r0", std::env::consts::ARCH);
    evil.entries = vec![
        apkrepo::dir("etc", 0o755),
        apkrepo::hardlink("etc/shadow-copy", "etc/shadow"),
    ];
    assert_extraction_refused("hardlink", evil, "no hard link target in archive");
}

#[test]
fn package_whose_data_is_a_decompression_bomb_is_refused() {
    // HOSTILE 14: 40 MiB of zeros (a few KiB of gzip) in a package that
    // says it installs 4 KiB: the data may expand to twice that plus
    // 16 MiB, no more.
    let mut evil = PackageSpec::new("evil", "1-r0", std::env::consts::ARCH);
    evil.entries = vec![
        apkrepo::dir("etc", 0o755),
        apkrepo::file("etc/zeros", 0o644, &vec![0u8; 40 << 20]),
    ];
    evil.meta = Some(apkrepo::PackageMeta {
        url: "https://example.invalid/".into(),
        license: "MIT".into(),
        origin: "evil".into(),
        maintainer: "fixture".into(),
        build_time: apkrepo::BUILD_TIME,
        installed_size: 4096,
        ..apkrepo::PackageMeta::default()
    });
    assert_extraction_refused("data bomb", evil, "decompresses to more than");
}

#[test]
fn symlink_escape_stays_inside_the_rootfs() {
    // HOSTILE 3/4: a link pointing far above the root, then a file through it.
    let Some(bb) = busybox_or_skip("symlink_escape") else {
        return;
    };
    let marker = format!("rootstrap-escape-{:08x}", rand::random::<u32>());
    let mut evil = PackageSpec::new("evil", "1-r0", "aarch64");
    evil.entries = vec![
        apkrepo::symlink("up", "../../../../../../../../.."),
        // HOSTILE 6: a directory entry over the link must not chmod its target.
        apkrepo::dir("up", 0o777),
        apkrepo::file(&format!("up/{marker}"), 0o644, b"x"),
    ];
    let s = setup_with("aarch64", &bb, &[evil]);
    let rootfs = s.out("rootfs");
    let o = s.build(&[], &[format!("rootfs:{}", rootfs.display())]);
    let outside = Path::new("/").join(&marker);
    assert!(!outside.exists(), "file written outside the rootfs");
    let _ = std::fs::remove_file(&outside);
    if o.status.success() {
        assert!(
            rootfs.join(&marker).is_file(),
            "file should land inside the rootfs"
        );
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&rootfs).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o755, "the link's target was chmodded");
    } else {
        assert!(stderr(&o).contains("evil-1-r0"), "{}", stderr(&o));
    }
}

#[test]
fn resolves_the_minirootfs_world_against_the_real_alpine_3_16_index() {
    let Some(path) = conformance::path("apkindex/alpine-v3.16.3-main-x86_64/APKINDEX.tar.gz")
    else {
        return;
    };
    let bytes = std::fs::read(&path).unwrap();
    let mut keys = TrustedKeys::new();
    for (name, pem) in rootstrap::verify::keys::SHIPPED {
        if let Some(file) = name.strip_prefix("alpine/") {
            keys.add_pem(file, &String::from_utf8_lossy(pem)).unwrap();
        }
    }
    let index = parse_index(&bytes, &keys, false).unwrap();
    let mut loaded = LoadedIndexes::default();
    loaded.add("http://mirror.invalid/v3.16/main".into(), index);
    let src = ApkSource {
        mirror: "http://mirror.invalid".into(),
        release: "v3.16".into(),
        repositories: vec!["main".into()],
        arch: "x86_64".into(),
        base: None,
        extra: Vec::new(),
        allow_untrusted: false,
    };
    let plan = bootstrap::plan(&loaded, &src).unwrap();
    let names: Vec<&str> = plan.iter().map(|p| p.name.as_str()).collect();
    println!(
        "alpine v3.16 minirootfs world resolves to {} packages: {names:?}",
        plan.len()
    );
    for want in [
        "alpine-baselayout",
        "alpine-keys",
        "apk-tools",
        "busybox",
        "libc-utils",
        "musl",
        "musl-utils",
        "ca-certificates-bundle",
    ] {
        assert!(names.contains(&want), "{want} missing from {names:?}");
    }
    // Install order: a package's dependencies come before it.
    let pos = |n: &str| names.iter().position(|x| *x == n).unwrap();
    assert!(pos("musl") < pos("busybox"));
    assert!(pos("musl") < pos("apk-tools"));
    assert!(LoadedIndexes::newest_build_time(&plan).is_some());
}

#[test]
fn warm_resolve_of_the_real_index_reuses_the_plan() {
    let Some(path) = conformance::path("apkindex/alpine-v3.16.3-main-x86_64/APKINDEX.tar.gz")
    else {
        return;
    };
    let bytes = std::fs::read(&path).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let mirror = tmp.path().join("mirror");
    std::fs::create_dir_all(mirror.join("v3.16/main/x86_64")).unwrap();
    std::fs::write(mirror.join("v3.16/main/x86_64/APKINDEX.tar.gz"), bytes).unwrap();
    let server = TestServer::serve(&mirror);
    let recipe = tmp.path().join("alpine-3.16.toml");
    std::fs::write(
        &recipe,
        "[source]\ndistro = \"alpine\"\nrelease = \"v3.16\"\nrepositories = [\"main\"]\narch = \"x86_64\"\nkeys = [\"alpine\"]\n",
    )
    .unwrap();
    let resolve = || {
        let start = std::time::Instant::now();
        let o = run::rootstrap()
            .arg("resolve")
            .arg(&recipe)
            .arg("--mirror")
            .arg(server.base_url())
            .arg("--cache-dir")
            .arg(tmp.path().join("cache"))
            .arg("--json")
            .env_remove("ROOTSTRAP_MIRROR")
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        (o, start.elapsed())
    };
    let (cold, cold_t) = resolve();
    let (warm, warm_t) = resolve();
    println!("resolve alpine-base on the real 3.16 index: cold {cold_t:?}, warm {warm_t:?}");
    assert!(!stderr(&cold).contains("package plan reused"));
    assert!(
        stderr(&warm).contains("package plan reused"),
        "{}",
        stderr(&warm)
    );
    assert!(
        stderr(&warm).contains("4929 packages, signed by alpine-devel@"),
        "{}",
        stderr(&warm)
    );
    // The plan read back from the cached stanzas is the same plan.
    assert_eq!(cold.stdout, warm.stdout);
    assert_eq!(server.requests("/v3.16/main/x86_64/APKINDEX.tar.gz"), 2);
}

#[test]
fn real_alpine_package_installs_with_a_matching_database() {
    let Some(dir) = conformance::path("apkindex") else {
        return;
    };
    let dir = dir.display();
    let (Ok(index_bytes), Ok(apk_bytes), Ok(test_key)) = (
        std::fs::read(format!("{dir}/apko-rsa256-signed/APKINDEX.tar.gz")),
        std::fs::read(format!(
            "{dir}/alpine-real-apk/alpine-baselayout-3.2.0-r23.aarch64.apk"
        )),
        std::fs::read_to_string(format!("{dir}/apko-rsa256-signed/test-rsa256.rsa.pub")),
    ) else {
        skip(format!("{dir} not found"));
        return;
    };
    let mut keys = TrustedKeys::new();
    for (name, pem) in rootstrap::verify::keys::SHIPPED {
        if let Some(file) = name.strip_prefix("alpine/") {
            keys.add_pem(file, &String::from_utf8_lossy(pem)).unwrap();
        }
    }
    keys.add_pem("test-rsa256.rsa.pub", &test_key).unwrap();
    let index = parse_index(&index_bytes, &keys, false).unwrap();
    let pkg = &index.packages[0];
    let apk = rootstrap::distro::apk::open_package(&apk_bytes, pkg, &keys, false).unwrap();
    let src = ApkSource {
        mirror: "http://mirror.invalid".into(),
        release: "v3.16".into(),
        repositories: vec!["main".into()],
        arch: "aarch64".into(),
        base: None,
        extra: Vec::new(),
        allow_untrusted: false,
    };
    let tmp = tempfile::tempdir().unwrap();
    let sandbox = rootstrap::rootfs::sandbox::Sandbox::new();
    let report = bootstrap::install(
        tmp.path(),
        &[pkg],
        [Ok(apk)],
        &src,
        &bootstrap::InstallOptions {
            run_scripts: false,
            sandbox: &sandbox,
            keys: &[],
            release: None,
        },
        rootstrap::report::silent().as_ref(),
    )
    .unwrap();
    assert!(report.scripts_skipped);
    assert_eq!(report.scripts_not_run, ["alpine-baselayout-3.2.0-r23"]);

    let root = tmp.path();
    let db = read(root, "lib/apk/db/installed");
    assert!(
        db.contains("\nf:s\nF:"),
        "pending scripts recorded as apk does:\n{db}"
    );
    assert!(
        db.starts_with("C:Q1LLq2qDNrS/qRnhxQ3hsY/sHbQnc=\nP:alpine-baselayout\nV:3.2.0-r23\n"),
        "{db}"
    );
    let records = installed::parse_installed("installed", &db).unwrap();
    let mut files = 0;
    for d in &records[0].dirs {
        assert!(root.join(&d.path).is_dir(), "F:{} missing", d.path);
        for f in &d.files {
            let p = root.join(&d.path).join(&f.name);
            let meta = std::fs::symlink_metadata(&p).unwrap_or_else(|e| panic!("{p:?}: {e}"));
            if meta.file_type().is_file() {
                use sha1::Digest;
                let want = f.checksum.as_ref().expect("Z: for a file");
                let got = sha1::Sha1::digest(std::fs::read(&p).unwrap());
                assert_eq!(want.bytes(), got.as_slice(), "{p:?} content");
                files += 1;
            }
        }
    }
    assert!(files > 5, "only {files} files checked");
    let scripts = std::fs::read(root.join("lib/apk/db/scripts.tar")).unwrap();
    assert!(contains(
        &scripts,
        b"alpine-baselayout-3.2.0-r23.Q1LLq2qDNrS/qRnhxQ3hsY/sHbQnc=.post-install"
    ));
    assert_eq!(read(root, "etc/apk/arch"), "aarch64\n");
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn resolve_prints_the_plan_and_a_missing_mirror_is_a_clear_error() {
    let Some(bb) = busybox_or_skip("resolve_prints_the_plan") else {
        return;
    };
    let s = setup(std::env::consts::ARCH, &bb);
    let o = s.resolve(&[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let plan: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let names: Vec<&str> = plan["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), s.repo.packages.len(), "{names:?}");
    assert!(
        names.contains(&"busybox-binsh"),
        "/bin/sh provider chosen: {names:?}"
    );
    assert_eq!(s.apk_requests(), 0, "resolve downloaded packages");

    let o = run::rootstrap()
        .arg("resolve")
        .arg(&s.recipe)
        .arg("--cache-dir")
        .arg(s.out("cache"))
        .env_remove("ROOTSTRAP_MIRROR")
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(stderr(&o).contains("--mirror"), "{}", stderr(&o));
}

#[test]
fn shipped_alpine_recipes_default_to_alpines_cdn_and_the_mirror_flags_override_it() {
    // --offline with an empty cache: the mirror is chosen and named, and
    // nothing is fetched (tests never reach Alpine's servers).
    let tmp = tempfile::tempdir().unwrap();
    let resolve = |recipe: &str, mirror: Option<&str>, env: Option<&str>| {
        let mut cmd = run::rootstrap();
        cmd.args(["resolve", recipe, "--offline"])
            .arg("--cache-dir")
            .arg(tmp.path());
        if let Some(m) = mirror {
            cmd.args(["--mirror", m]);
        }
        cmd.env_remove("ROOTSTRAP_MIRROR");
        if let Some(e) = env {
            cmd.env("ROOTSTRAP_MIRROR", e);
        }
        let o = cmd.output().unwrap();
        assert!(!o.status.success(), "nothing cached, yet {recipe} resolved");
        stderr(&o)
    };
    let shipped: Vec<&str> = rootstrap::recipe::SHIPPED
        .iter()
        .map(|(name, _)| *name)
        .filter(|n| n.starts_with("alpine-"))
        .collect();
    assert_eq!(shipped.len(), 5, "{shipped:?}");
    for name in shipped {
        let recipe = rootstrap::recipe::find(name).unwrap();
        let cdn = recipe.source.mirror.as_deref().expect("a default mirror");
        assert!(
            cdn.starts_with("https://") && cdn.ends_with("/alpine"),
            "{cdn}"
        );
        let err = resolve(name, None, None);
        assert!(
            err.contains(&format!("mirror {cdn} (from recipe)")),
            "{err}"
        );
        assert!(
            err.contains("not in the cache and running --offline"),
            "{err}"
        );
        let err = resolve(name, None, Some("http://127.0.0.1:9/env"));
        assert!(
            err.contains("mirror http://127.0.0.1:9/env (from ROOTSTRAP_MIRROR)"),
            "{err}"
        );
        let err = resolve(
            name,
            Some("http://127.0.0.1:9/cli"),
            Some("http://127.0.0.1:9/env"),
        );
        assert!(
            err.contains("mirror http://127.0.0.1:9/cli (from --mirror)"),
            "{err}"
        );
    }
}

/// An x86_64 fixture repository with the same packages for aarch64 beside
/// it under one mirror (both signing keys in one keys directory); `None`
/// (counted skip) without busybox, root or an x86_64 host.
fn two_arch_setup(test: &str) -> Option<Setup> {
    let bb = busybox_or_skip(test)?;
    if std::env::consts::ARCH != "x86_64" {
        not_applicable("needs an x86_64 host");
        return None;
    }
    if !is_root() {
        skip("needs root");
        return None;
    }
    let s = setup("x86_64", &bb);
    let arm = fixture::alpine_repo(&s.tmp.path().join("mirror"), "aarch64", &bb);
    assert_eq!(arm.keys_dir, s.repo.keys_dir);
    Some(s)
}

/// `--platform A,B` makes one OCI image index with one manifest per
/// platform, each the image a one-platform build makes; outputs that hold
/// one image are refused before anything is built.
#[test]
fn two_platforms_make_one_image_index() {
    let Some(s) = two_arch_setup("two_platforms_make_one_image_index") else {
        return;
    };
    let both = [
        "--platform",
        "linux/amd64,linux/arm64",
        "--skip-foreign-scripts",
    ];

    let refused = s.out("one.tar");
    let o = s.build(&both, &[format!("docker-archive:{}", refused.display())]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains("one.tar") && err.contains("linux/amd64,linux/arm64"),
        "{err}"
    );
    assert!(
        !err.contains("fetch and verify"),
        "refused before building: {err}"
    );
    assert!(!refused.exists());

    let multi = s.out("multi");
    let o = s.build(&both, &[format!("oci:{}", multi.display())]);
    assert!(o.status.success(), "{}", stderr(&o));
    let blob = |digest: &str| -> serde_json::Value {
        let hex = digest.strip_prefix("sha256:").unwrap();
        serde_json::from_slice(&std::fs::read(multi.join("blobs/sha256").join(hex)).unwrap())
            .unwrap()
    };
    let top: serde_json::Value =
        serde_json::from_slice(&std::fs::read(multi.join("index.json")).unwrap()).unwrap();
    let entries = top["manifests"].as_array().unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(
        entries[0]["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    let index = blob(entries[0]["digest"].as_str().unwrap());
    let manifests = index["manifests"].as_array().unwrap();
    let platforms: Vec<String> = manifests
        .iter()
        .map(|m| {
            let p = &m["platform"];
            format!("{}/{}/{}", p["os"], p["architecture"], p["variant"])
        })
        .collect();
    assert_eq!(
        platforms,
        ["\"linux\"/\"amd64\"/null", "\"linux\"/\"arm64\"/\"v8\""]
    );
    for m in manifests {
        let manifest = blob(m["digest"].as_str().unwrap());
        let config = blob(manifest["config"]["digest"].as_str().unwrap());
        assert_eq!(config["architecture"], m["platform"]["architecture"]);
    }
    // The foreign platform's scripts did not run, and its image says so.
    let arm_config = blob(
        blob(manifests[1]["digest"].as_str().unwrap())["config"]["digest"]
            .as_str()
            .unwrap(),
    );
    assert_eq!(
        arm_config["config"]["Labels"]["org.rootstrap.scripts"],
        "not-run"
    );
    let amd_config = blob(
        blob(manifests[0]["digest"].as_str().unwrap())["config"]["digest"]
            .as_str()
            .unwrap(),
    );
    assert!(amd_config["config"]["Labels"]
        .get("org.rootstrap.scripts")
        .is_none());

    // Each manifest is the one a one-platform build makes.
    for (platform, m) in ["linux/amd64", "linux/arm64"].iter().zip(manifests) {
        let single = s.out(&format!("single-{}", platform.replace('/', "-")));
        let o = s.build(
            &["--platform", platform, "--skip-foreign-scripts"],
            &[format!("oci:{}", single.display())],
        );
        assert!(o.status.success(), "{}", stderr(&o));
        let top: serde_json::Value =
            serde_json::from_slice(&std::fs::read(single.join("index.json")).unwrap()).unwrap();
        assert_eq!(top["manifests"][0]["digest"], m["digest"], "{platform}");
    }
}

/// A multi-platform lock: `rootstrap lock --platform A,B` records each
/// platform's package set in one (version 2) lockfile; `--locked` builds
/// the same image index from it; `rootstrap mirror` copies both sets; a
/// platform the lock lacks is refused under `--locked`.
#[test]
fn a_multi_platform_lock_builds_the_same_index() {
    let Some(s) = two_arch_setup("a_multi_platform_lock_builds_the_same_index") else {
        return;
    };
    let both = ["--platform", "linux/amd64,linux/arm64"];
    let lock = s.out("alpine.lock");
    let o = run::rootstrap()
        .arg("lock")
        .arg(&s.recipe)
        .args(both)
        .args(["--mirror", &s.mirror()])
        .arg("--keys")
        .arg(&s.repo.keys_dir)
        .arg("--cache-dir")
        .arg(s.out("cache"))
        .arg("-o")
        .arg(&lock)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("lock 2 platforms at once") && stderr(&o).contains("[linux/arm64]"),
        "the platforms are locked at once, each line named:\n{}",
        stderr(&o)
    );
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.contains("linux/amd64: ") && stdout.contains("linux/arm64: "),
        "{stdout}"
    );
    let text = std::fs::read_to_string(&lock).unwrap();
    assert!(text.contains("version = 2"), "{text}");
    assert!(
        text.contains("arch = \"x86_64\"") && text.contains("arch = \"aarch64\""),
        "{text}"
    );

    let digest = |o: &Output| {
        String::from_utf8_lossy(&o.stdout)
            .split_whitespace()
            .last()
            .unwrap()
            .to_owned()
    };
    let flags = [
        "--platform",
        "linux/amd64,linux/arm64",
        "--skip-foreign-scripts",
    ];
    let resolved = s.build(&flags, &[format!("oci:{}", s.out("resolved").display())]);
    assert!(resolved.status.success(), "{}", stderr(&resolved));
    let lock_arg = lock.to_str().unwrap();
    let mut locked_flags = flags.to_vec();
    locked_flags.extend(["--lock", lock_arg, "--locked"]);
    let locked = s.build(
        &locked_flags,
        &[format!("oci:{}", s.out("locked").display())],
    );
    assert!(locked.status.success(), "{}", stderr(&locked));
    assert_eq!(
        digest(&locked),
        digest(&resolved),
        "one index from the lock"
    );

    // A platform the lock does not hold.
    let o = s.build(
        &[
            "--platform",
            "linux/arm/v7",
            "--skip-foreign-scripts",
            "--lock",
            lock_arg,
            "--locked",
        ],
        &[format!("oci:{}", s.out("arm7").display())],
    );
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("linux/arm/v7") && stderr(&o).contains("linux/amd64, linux/arm64"),
        "{}",
        stderr(&o)
    );
    assert!(!s.out("arm7").exists());

    // `rootstrap mirror` copies both platforms' indexes and packages.
    let mirror = s.out("partial");
    let o = run::rootstrap()
        .arg("mirror")
        .arg(&lock)
        .arg("-o")
        .arg(&mirror)
        .arg("--cache-dir")
        .arg(s.out("cache"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    for arch in ["x86_64", "aarch64"] {
        assert!(
            mirror
                .join("v3.20/main")
                .join(arch)
                .join("APKINDEX.tar.gz")
                .is_file(),
            "{arch}"
        );
    }
}

/// `-t` with several platforms keeps the image index in the local store:
/// `images` and `inspect` show it as one, `FROM` takes the build's target
/// platform from it (and names the platforms it has when the target is not
/// one), `run` takes this machine's, a multi-platform Dockerfile build
/// stores its own index, and `rmi` leaves no blob behind. The `oci:` index
/// layout carries each platform's SBOMs, their subject its manifest.
#[test]
fn the_local_store_keeps_a_multi_platform_image() {
    let Some(s) = two_arch_setup("the_local_store_keeps_a_multi_platform_image") else {
        return;
    };
    let cache = s.out("cache");
    let cache_arg = cache.to_str().unwrap().to_owned();
    let layout = s.out("multi");
    let o = s.build(
        &[
            "--platform",
            "linux/amd64,linux/arm64",
            "--skip-foreign-scripts",
            "-t",
            "itest/multi:1",
        ],
        &[format!("oci:{}", layout.display())],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let stdout = String::from_utf8_lossy(&o.stdout).into_owned();
    let index_digest = stdout
        .lines()
        .find(|l| l.starts_with(layout.to_str().unwrap()))
        .and_then(|l| l.split_whitespace().last())
        .unwrap_or_else(|| panic!("{stdout}"))
        .to_owned();
    assert!(
        stdout.contains(&format!("itest/multi:1  {index_digest}")),
        "the store holds the index: {stdout}"
    );

    // Each platform's SBOMs hang off its own manifest in the layout.
    let source = rootstrap::image::ImageSource::OciDir(layout.clone());
    let mut manifests = Vec::new();
    for (arch, variant) in [("amd64", None), ("arm64", Some("v8"))] {
        let platform = rootstrap::image::oci::Platform {
            architecture: arch.into(),
            os: "linux".into(),
            variant: variant.map(str::to_owned),
        };
        let image = rootstrap::image::OpenedImage::open_platform(&source, None, &platform).unwrap();
        let digest = image.manifest_digest.unwrap().to_string();
        assert_eq!(image.referrers.len(), 2, "{arch}");
        for artifact in &image.referrers {
            let d = rootstrap::image::Sha256Digest::parse(&artifact.digest).unwrap();
            let m: serde_json::Value =
                serde_json::from_slice(&image.read_blob(&d).unwrap()).unwrap();
            assert_eq!(m["subject"]["digest"], digest.as_str(), "{arch}");
        }
        let spdx = rootstrap::sbom::output::attached(&image, rootstrap::sbom::SbomFormat::Spdx)
            .unwrap()
            .unwrap();
        assert!(
            String::from_utf8_lossy(&spdx).contains("\"busybox\""),
            "{arch}: the SBOM lists the packages"
        );
        manifests.push((image.layers[0].digest.unwrap().to_string(), digest));
    }

    let cli = |args: &[&str]| {
        run::rootstrap()
            .args(args)
            .args(["--cache-dir", &cache_arg])
            .output()
            .unwrap()
    };
    let images = cli(&["images"]);
    let listing = String::from_utf8_lossy(&images.stdout).into_owned();
    let row = listing
        .lines()
        .find(|l| l.starts_with("itest/multi "))
        .unwrap_or_else(|| panic!("{listing}"));
    assert!(
        row.contains(&index_digest["sha256:".len()..][..12])
            && row.ends_with("index: linux/amd64,linux/arm64/v8"),
        "{row}"
    );
    let inspected = cli(&["inspect", "itest/multi:1"]);
    assert!(inspected.status.success(), "{}", stderr(&inspected));
    let report = String::from_utf8_lossy(&inspected.stdout).into_owned();
    assert!(
        report.contains(&format!(
            "Index:        {index_digest} (linux/amd64, linux/arm64/v8)"
        )) && report.contains("Platform:     linux/amd64")
            && report.contains(&format!("Digest:       {}", manifests[0].1)),
        "{report}"
    );

    let inspected = cli(&["inspect", "--platform", "linux/arm64", "itest/multi:1"]);
    let report = String::from_utf8_lossy(&inspected.stdout).into_owned();
    assert!(
        report.contains("Platform:     linux/arm64/v8")
            && report.contains(&format!("Digest:       {}", manifests[1].1)),
        "{report}"
    );
    // `sbom --platform` gives that platform's attached document.
    let sbom = cli(&[
        "sbom",
        "--platform",
        "linux/arm64",
        &format!("oci:{}", layout.display()),
    ]);
    assert!(sbom.status.success(), "{}", stderr(&sbom));
    let document = String::from_utf8_lossy(&sbom.stdout).into_owned();
    assert!(
        document.contains(manifests[1].1.trim_start_matches("sha256:"))
            && !document.contains(manifests[0].1.trim_start_matches("sha256:")),
        "the arm64 manifest's SBOM"
    );

    // `save` writes the whole index to a new layout, the build's digest.
    let saved = s.out("saved");
    let o = cli(&[
        "save",
        "itest/multi:1",
        "-o",
        &format!("oci:{}", saved.display()),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        format!("oci:{}  {index_digest}\n", saved.display())
    );
    let top: serde_json::Value =
        serde_json::from_slice(&std::fs::read(saved.join("index.json")).unwrap()).unwrap();
    assert_eq!(top["manifests"][0]["digest"], index_digest.as_str());
    assert_eq!(
        top["manifests"][0]["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    for (arch, (layer, manifest)) in ["amd64", "arm64"].iter().zip(&manifests) {
        let platform = rootstrap::image::oci::Platform {
            architecture: arch.to_string(),
            os: "linux".into(),
            variant: None,
        };
        let image = rootstrap::image::OpenedImage::open_platform(
            &rootstrap::image::ImageSource::OciDir(saved.clone()),
            None,
            &platform,
        )
        .unwrap();
        rootstrap::image::fsck(&image).unwrap();
        assert_eq!(&image.manifest_digest.unwrap().to_string(), manifest);
        assert_eq!(&image.layers[0].digest.unwrap().to_string(), layer);
    }
    let missing = cli(&[
        "save",
        "itest/none:1",
        "-o",
        &format!("oci:{}", s.out("none").display()),
    ]);
    assert!(!missing.status.success());
    assert!(!s.out("none").exists());

    // `run` takes this machine's platform.
    let ran = run::rootstrap()
        .args([
            "run",
            "itest/multi:1",
            "--cache-dir",
            &cache_arg,
            "--",
            "cat",
            "/etc/apk/arch",
        ])
        .output()
        .unwrap();
    assert!(ran.status.success(), "{}", stderr(&ran));
    assert_eq!(String::from_utf8_lossy(&ran.stdout), "x86_64\n");
    // `run --platform` takes that one (the fixture's aarch64 packages hold
    // the host's busybox, so nothing here needs an emulator to run).
    if rootstrap::rootfs::emulation::check("arm64").is_ok() {
        let ran = run::rootstrap()
            .args([
                "run",
                "--platform",
                "linux/arm64",
                "itest/multi:1",
                "--cache-dir",
                &cache_arg,
                "--",
                // Its scripts did not run: no busybox links yet.
                "/bin/busybox",
                "cat",
                "/etc/apk/arch",
            ])
            .output()
            .unwrap();
        assert!(ran.status.success(), "{}", stderr(&ran));
        assert_eq!(String::from_utf8_lossy(&ran.stdout), "aarch64\n");
    } else {
        skip("run --platform linux/arm64: no binfmt_misc interpreter for arm64");
    }
    let ran = run::rootstrap()
        .args([
            "run",
            "--platform",
            "linux/s390x",
            "itest/multi:1",
            "--cache-dir",
            &cache_arg,
            "--",
            "true",
        ])
        .output()
        .unwrap();
    assert!(!ran.status.success());
    assert!(
        stderr(&ran).contains("linux/s390x")
            && stderr(&ran).contains("linux/amd64, linux/arm64/v8"),
        "{}",
        stderr(&ran)
    );

    // `FROM` takes the target platform's image.
    let context = s.out("context");
    std::fs::create_dir_all(&context).unwrap();
    std::fs::write(
        context.join("Dockerfile"),
        "FROM itest/multi:1\nLABEL stage=child\n",
    )
    .unwrap();
    let dockerfile = |platform: &str, outputs: &[&str]| {
        let mut cmd = run::rootstrap();
        cmd.arg("build")
            .arg("-f")
            .arg(context.join("Dockerfile"))
            .arg(&context)
            .args(["--platform", platform, "--cache-dir", &cache_arg])
            .arg("--work-dir")
            .arg(s.tmp.path());
        for o in outputs {
            cmd.arg(o);
        }
        cmd.output().unwrap()
    };
    let arm = s.out("child-arm64");
    let o = dockerfile(
        "linux/arm64",
        &["--output", &format!("oci:{}", arm.display())],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let child = rootstrap::image::OpenedImage::open(
        &rootstrap::image::ImageSource::OciDir(arm.clone()),
        None,
    )
    .unwrap();
    assert_eq!(child.config.architecture, "arm64");
    assert_eq!(
        child.layers[0].digest.unwrap().to_string(),
        manifests[1].0,
        "the arm64 base layer"
    );
    assert_ne!(manifests[0].0, manifests[1].0);

    let o = dockerfile(
        "linux/riscv64",
        &[
            "--output",
            &format!("oci:{}", s.out("child-riscv").display()),
        ],
    );
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains("linux/riscv64") && err.contains("linux/amd64, linux/arm64/v8"),
        "{err}"
    );
    assert!(!s.out("child-riscv").exists());

    // A multi-platform Dockerfile build stores its own index.
    let o = dockerfile("linux/amd64,linux/arm64", &["-t", "itest/child:1"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(out.starts_with("itest/child:1  sha256:"), "{out}");
    let listing = String::from_utf8_lossy(&cli(&["images"]).stdout).into_owned();
    assert!(
        listing
            .lines()
            .any(|l| l.starts_with("itest/child ") && l.contains("index: linux/amd64,linux/arm64")),
        "{listing}"
    );

    // Removing both leaves no blob behind; removing one keeps the other whole.
    assert!(cli(&["rmi", "itest/multi:1"]).status.success());
    let still = cli(&["inspect", "itest/child:1"]);
    assert!(still.status.success(), "{}", stderr(&still));
    assert!(cli(&["rmi", "itest/child:1"]).status.success());
    let left = std::fs::read_dir(cache.join("images/blobs/sha256"))
        .unwrap()
        .count();
    assert_eq!(left, 0, "every blob collected");
}
