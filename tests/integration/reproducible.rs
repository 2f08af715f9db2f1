//! Bit-identical output: the same recipe built several times under
//! different conditions — cache directory (cold and warm), work directory (memory and disk),
//! time zone, umask, locale and number of threads — must give the same OCI
//! layout, file for file and byte for byte. One Debian fixture (with a real
//! stage 2 run by the host's dpkg, and maintainer scripts that leave random
//! and dated files behind) and one Alpine fixture (with package scripts).
//! The default epoch must come from the inputs, never the clock.

use crate::common;
use crate::common::skip::skip;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::apkrepo;
use common::debrepo::{sandbox_runtime_packages, DebPackage, Repo};
use common::fixture::{self, DebFixture};
use common::httpd::TestServer;
use common::run::{self, is_root};

/// The conditions one build runs under.
struct Conditions {
    name: &'static str,
    cache: &'static str,
    tz: &'static str,
    umask: &'static str,
    locale: &'static str,
    threads: &'static str,
    work_dir: WorkDir,
}

enum WorkDir {
    /// No `--work-dir` and no `$TMPDIR`: the tree is made in memory
    /// (/dev/shm) when the machine has room, as for most users.
    Default,
    /// `--work-dir` relative to the build's current directory (on disk).
    Relative,
}

const COLD_UTC: Conditions = Conditions {
    name: "a",
    cache: "cache-a",
    tz: "UTC",
    umask: "022",
    locale: "C",
    threads: "1",
    work_dir: WorkDir::Default,
};
/// Different in every respect; run twice on one cache (cold, then warm).
const ODD: Conditions = Conditions {
    name: "b",
    cache: "cache-b",
    tz: "Pacific/Chatham",
    umask: "077",
    locale: "de_DE.UTF-8",
    threads: "2",
    work_dir: WorkDir::Relative,
};

/// Runs the built `rootstrap` with `args` under `c`, in a fresh work
/// directory and writing `oci:<dir>/out-<tag>`. The umask is set by a shell
/// that then execs rootstrap, so it applies to rootstrap itself.
fn build_under(dir: &Path, c: &Conditions, tag: &str, args: &[String]) -> (Output, PathBuf) {
    let mut work_args: Vec<String> = Vec::new();
    if let WorkDir::Relative = c.work_dir {
        let name = format!("work-{tag}");
        std::fs::create_dir_all(dir.join(&name)).unwrap();
        work_args = vec!["--work-dir".into(), name];
    }
    let out = dir.join(format!("out-{tag}"));
    let output = Command::new("sh")
        .arg("-c")
        .arg(format!("umask {}; exec \"$0\" \"$@\"", c.umask))
        .arg(run::BIN)
        .args(["--progress", "plain", "build"])
        .args(args)
        .arg("--cache-dir")
        .arg(dir.join(c.cache))
        .args(&work_args)
        .arg("--output")
        .arg(format!("oci:{}", out.display()))
        .env("TZ", c.tz)
        .env("LANG", c.locale)
        .env("LC_ALL", c.locale)
        .env("RAYON_NUM_THREADS", c.threads)
        .env_remove("ROOTSTRAP_MIRROR")
        .env_remove("SOURCE_DATE_EPOCH")
        .env_remove("TMPDIR")
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "build {tag} ({}) failed:\n{}",
        c.name,
        run::stderr(&output)
    );
    if matches!(c.work_dir, WorkDir::Default) && run::shm_has_room() {
        let log = run::stderr(&output);
        assert!(
            log.contains("made in memory") || log.contains("reuse the cached base layer"),
            "build {tag} should have made its tree in memory:\n{log}"
        );
    }
    (output, out)
}

/// Every file below `dir` (relative path → bytes); symlinks and special
/// files are not expected in an OCI layout and fail the test.
fn tree(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let entry = entry.unwrap();
            let kind = entry.file_type().unwrap();
            let path = entry.path();
            if kind.is_dir() {
                pending.push(path);
            } else {
                assert!(kind.is_file(), "unexpected {}", path.display());
                let rel = path.strip_prefix(dir).unwrap().to_path_buf();
                files.insert(rel, std::fs::read(&path).unwrap());
            }
        }
    }
    files
}

fn assert_same_tree(a: &Path, b: &Path) {
    let (ta, tb) = (tree(a), tree(b));
    if ta != tb {
        eprintln!("{}", layer_differences(a, b));
    }
    let names = |t: &BTreeMap<PathBuf, Vec<u8>>| t.keys().cloned().collect::<Vec<_>>();
    assert_eq!(
        names(&ta),
        names(&tb),
        "{} and {} hold different files",
        a.display(),
        b.display()
    );
    for (rel, bytes) in &ta {
        assert!(
            bytes == &tb[rel],
            "{} differs between {} and {}",
            rel.display(),
            a.display(),
            b.display()
        );
    }
}

/// Every entry of every layer of a layout: name → (`tar -tvv` line, file
/// content or empty).
fn layer_entries(oci: &Path) -> BTreeMap<String, (String, Vec<u8>)> {
    let index = json(&oci.join("index.json"));
    let blob = |d: &str| {
        oci.join("blobs/sha256")
            .join(d.strip_prefix("sha256:").unwrap())
    };
    let manifest = json(&blob(index["manifests"][0]["digest"].as_str().unwrap()));
    let mut entries = BTreeMap::new();
    for layer in manifest["layers"].as_array().unwrap() {
        let extract = tempfile::tempdir().unwrap();
        let layer_path = blob(layer["digest"].as_str().unwrap());
        let list = Command::new("tar")
            .arg("-tvvzf")
            .arg(&layer_path)
            .args(["--full-time", "--numeric-owner"])
            .output()
            .unwrap();
        let unpacked = Command::new("tar")
            .arg("-xzf")
            .arg(&layer_path)
            .arg("-C")
            .arg(extract.path())
            .status()
            .unwrap();
        assert!(unpacked.success());
        for line in String::from_utf8_lossy(&list.stdout).lines() {
            let name = line.split_whitespace().nth(5).unwrap_or("").to_owned();
            let path = extract.path().join(&name);
            let content = match std::fs::symlink_metadata(&path) {
                Ok(m) if m.is_file() => std::fs::read(&path).unwrap(),
                _ => Vec::new(),
            };
            entries.insert(name, (line.to_owned(), content));
        }
    }
    entries
}

/// What differs between the layers of two layouts, entry by entry, so a
/// failure names the files at fault.
fn layer_differences(a: &Path, b: &Path) -> String {
    let (la, lb) = (layer_entries(a), layer_entries(b));
    let mut out = String::from("layer entries that differ:\n");
    let names: std::collections::BTreeSet<&String> = la.keys().chain(lb.keys()).collect();
    for name in names {
        let (ea, eb) = (la.get(name), lb.get(name));
        if ea != eb {
            let show = |e: Option<&(String, Vec<u8>)>| {
                e.map(|(line, data)| format!("{line} [{}]", String::from_utf8_lossy(data)))
            };
            out.push_str(&format!("  a: {:?}\n  b: {:?}\n", show(ea), show(eb)));
        }
    }
    let config = |oci: &Path| manifest_and_config(oci).1.to_string();
    if config(a) != config(b) {
        out.push_str(&format!(
            "configs:\n  a: {}\n  b: {}\n",
            config(a),
            config(b)
        ));
    }
    out
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// The manifest digest and the image config of an OCI layout.
fn manifest_and_config(oci: &Path) -> (String, serde_json::Value) {
    let index = json(&oci.join("index.json"));
    let digest = index["manifests"][0]["digest"].as_str().unwrap().to_owned();
    let blob = |d: &str| {
        json(
            &oci.join("blobs/sha256")
                .join(d.strip_prefix("sha256:").unwrap()),
        )
    };
    let manifest = blob(&digest);
    let config = blob(manifest["config"]["digest"].as_str().unwrap());
    (digest, config)
}

/// Builds under [`COLD_UTC`] (cold cache) and twice under [`ODD`] (cold,
/// then warm), and checks all three layouts are identical. Returns the
/// first layout's directory.
fn assert_reproducible(dir: &Path, args: &[String]) -> PathBuf {
    let (_, a) = build_under(dir, &COLD_UTC, "a-cold", args);
    let (_, b_cold) = build_under(dir, &ODD, "b-cold", args);
    let (warm, b_warm) = build_under(dir, &ODD, "b-warm", args);
    let log = String::from_utf8_lossy(&warm.stderr);
    assert!(
        log.contains("reuse the cached base layer") || log.contains("plan reused"),
        "the second build on cache-b should have been warm:\n{log}"
    );
    assert_same_tree(&a, &b_cold);
    assert_same_tree(&a, &b_warm);
    assert_eq!(manifest_and_config(&a).0, manifest_and_config(&b_warm).0);
    a
}

/// A maintainer script leaving what real ones leave: a random machine-id,
/// today's day in /etc/shadow, an ld.so aux-cache, dpkg's own logs and
/// backups (written by dpkg itself), an apt list and binary cache.
const MESSY_POSTINST: &str = "#!/bin/sh\nset -e\n[ \"$1\" = configure ] || exit 0\n\
bb=/usr/bin/busybox\n\
noise() { $bb head -c 16 /dev/urandom 2>/dev/null | $bb od -An -tx1 | $bb tr -d ' \\n'; $bb date +%s; }\n\
noise > /etc/machine-id\n\
echo \"root:*:$(( $($bb date +%s) / 86400 )):0:99999:7:::\" > /etc/shadow\n\
mkdir -p /var/cache/ldconfig /var/lib/apt/lists/partial /var/cache/apt /var/log/apt\n\
noise > /var/cache/ldconfig/aux-cache\n\
noise > /var/lib/apt/lists/fixture_dists_fixture_InRelease\n\
noise > /var/cache/apt/pkgcache.bin\n\
noise > /var/log/apt/term.log\n\
noise > /var/lib/dpkg/diversions-old\n\
exit 0\n";

#[test]
fn debian_builds_are_bit_identical_across_caches_zones_umasks_locales_and_threads() {
    let Some(mut packages) = sandbox_runtime_packages() else {
        return;
    };
    packages.push(
        DebPackage::new("messy", "1.0-1")
            .depends("busybox, dpkg")
            .file("usr/share/messy/README", 0o644, b"leaves things behind\n")
            .script("postinst", MESSY_POSTINST),
    );
    let f = DebFixture::new();
    let dir = &f.dir;
    let repo = f.write_repo("repo", &Repo::new("fixture", packages));
    let server = TestServer::serve(&repo);
    let recipe = dir.path().join("recipe.toml");
    std::fs::write(
        &recipe,
        format!(
            "{}mirror = \"{}\"\n\n[packages]\ninstall = [\"messy\"]\n",
            fixture::debian_source("amd64"),
            server.base_url()
        ),
    )
    .unwrap();
    let args = vec![recipe.display().to_string()];
    let a = assert_reproducible(dir.path(), &args);

    // The default epoch is the signed Release's Date.
    let release = std::fs::read_to_string(dir.path().join("repo/dists/fixture/Release")).unwrap();
    let date = release
        .lines()
        .find_map(|l| l.strip_prefix("Date: "))
        .unwrap();
    let date = chrono::DateTime::parse_from_rfc2822(&date.replace("UTC", "+0000")).unwrap();
    let (_, config) = manifest_and_config(&a);
    assert_eq!(
        config["created"].as_str().unwrap(),
        date.format("%Y-%m-%dT%H:%M:%SZ").to_string()
    );

    // The script did run, and what it left was normalised, not just equal
    // by luck.
    let entries = layer_entries(&a);
    let content = |name: &str| {
        entries
            .get(name)
            .unwrap_or_else(|| panic!("{name} missing from the layer"))
            .1
            .clone()
    };
    assert_eq!(content("etc/machine-id"), b"");
    let epoch_day = date.timestamp() / 86400;
    assert_eq!(
        String::from_utf8(content("etc/shadow")).unwrap(),
        format!("root:*:{epoch_day}:0:99999:7:::\n")
    );
    assert!(!content("var/lib/dpkg/status").is_empty());
    for gone in [
        "var/cache/ldconfig/aux-cache",
        "var/lib/apt/lists/fixture_dists_fixture_InRelease",
        "var/cache/apt/pkgcache.bin",
        "var/log/apt/term.log",
        "var/log/dpkg.log",
        "var/lib/dpkg/diversions-old",
        "var/lib/dpkg/status-old",
        "usr/sbin/policy-rc.d",
    ] {
        assert!(
            !entries.contains_key(gone),
            "{gone} should be normalised away"
        );
    }
}

#[test]
fn alpine_builds_are_bit_identical_across_caches_zones_umasks_locales_and_threads() {
    if !is_root() {
        skip("needs root (sandbox namespaces, chown)");
        return;
    }
    let Some(busybox) = apkrepo::host_static_busybox() else {
        skip("no static busybox on the host (install busybox-static)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let repo = fixture::alpine_repo(&dir.path().join("mirror"), "x86_64", &busybox);
    let server = TestServer::serve(&repo.root);
    let recipe = dir.path().join("alpine.toml");
    std::fs::write(&recipe, fixture::alpine_source("x86_64")).unwrap();
    let args = vec![
        recipe.display().to_string(),
        "--mirror".into(),
        server.base_url(),
        "--keys".into(),
        repo.keys_dir.display().to_string(),
    ];
    let a = build_under(dir.path(), &COLD_UTC, "a-cold", &args).1;
    let b_cold = build_under(dir.path(), &ODD, "b-cold", &args).1;
    let b_warm = build_under(dir.path(), &ODD, "b-warm", &args).1;
    assert_same_tree(&a, &b_cold);
    assert_same_tree(&a, &b_warm);

    // The default epoch is the newest package build time (`t:`).
    let (_, config) = manifest_and_config(&a);
    assert_eq!(
        config["created"].as_str().unwrap(),
        rootstrap::image::oci::format_timestamp(apkrepo::BUILD_TIME as i64)
    );
}

#[test]
fn source_date_epoch_wins_over_the_release_date() {
    if !is_root() {
        skip("needs root (sandbox namespaces, chown)");
        return;
    }
    let Some(busybox) = apkrepo::host_static_busybox() else {
        skip("no static busybox on the host (install busybox-static)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let repo = fixture::alpine_repo(&dir.path().join("mirror"), "x86_64", &busybox);
    let server = TestServer::serve(&repo.root);
    let recipe = dir.path().join("alpine.toml");
    std::fs::write(&recipe, fixture::alpine_source("x86_64")).unwrap();
    let out = dir.path().join("out");
    let status = run::rootstrap()
        .arg("build")
        .arg(&recipe)
        .arg("--mirror")
        .arg(server.base_url())
        .arg("--keys")
        .arg(&repo.keys_dir)
        .arg("--cache-dir")
        .arg(dir.path().join("cache"))
        .arg("--work-dir")
        .arg(dir.path())
        .arg("--output")
        .arg(format!("oci:{}", out.display()))
        .env("SOURCE_DATE_EPOCH", "1234567890")
        .env_remove("ROOTSTRAP_MIRROR")
        .output()
        .unwrap();
    assert!(status.status.success(), "{}", run::stderr(&status));
    let (_, config) = manifest_and_config(&out);
    assert_eq!(config["created"], "2009-02-13T23:31:30Z");
}
