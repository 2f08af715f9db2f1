//! End-to-end builds of the `rootstrap` binary against Debian-format fixture
//! repositories generated here, signed with a key made here, served on
//! 127.0.0.1 — no network. The happy path runs the real dpkg (the host's,
//! packaged into the fixture) inside the sandbox; the hostile cases check
//! that a bad repository gives a clear error and leaves nothing behind.

use crate::common;
use crate::common::skip::not_applicable;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::debrepo::{sandbox_runtime_packages, DebPackage, Entry, Repo};
use common::fixture::{self, DebFixture};
use common::httpd::TestServer;
use common::run;
use common::signing::ArchiveKey;

struct Fixture {
    fx: DebFixture,
    server: TestServer,
}

impl Fixture {
    /// Writes `packages` as a signed repository (codename `fixture`), lets
    /// `tamper` change it after signing, and serves it.
    fn new(packages: Vec<DebPackage>, tamper: impl FnOnce(&Path)) -> Fixture {
        let fx = DebFixture::new();
        let repo_dir = fx.write_repo("repo", &Repo::new("fixture", packages));
        tamper(&repo_dir);
        for sub in ["work", "cache", "out"] {
            std::fs::create_dir(fx.path(sub)).unwrap();
        }
        let server = TestServer::serve(&repo_dir);
        let fixture = Fixture { fx, server };
        fixture.write_recipe(&["hello-fixture"]);
        fixture
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.fx.path(rel)
    }

    fn write_recipe(&self, install: &[&str]) {
        let list: Vec<String> = install.iter().map(|p| format!("{p:?}")).collect();
        let recipe = format!(
            "{}mirror = \"{}\"\n\n[packages]\ninstall = [{}]\n\n\
             [image]\nname = \"rootstrap-test/fixture:1\"\ncmd = [\"/bin/sh\"]\nenv = {{ FIXTURE = \"yes\" }}\n",
            fixture::debian_source("amd64"),
            self.server.base_url(),
            list.join(", ")
        );
        std::fs::write(self.path("recipe.toml"), recipe).unwrap();
    }

    fn build(&self) -> Output {
        self.build_command()
            .arg("--work-dir")
            .arg(self.path("work"))
            .output()
            .unwrap()
    }

    /// `rootstrap build` of the fixture's recipe to `out/`, with the
    /// default work directory.
    fn build_command(&self) -> Command {
        let mut cmd = run::rootstrap_isolated();
        cmd.arg("build")
            .arg(self.path("recipe.toml"))
            .arg("--cache-dir")
            .arg(self.path("cache"))
            .arg("--output")
            .arg(format!("oci:{}", self.path("out/oci").display()))
            .arg("--output")
            .arg(format!(
                "docker-archive:{}",
                self.path("out/image.tar").display()
            ));
        cmd
    }

    /// Runs `script` with `/bin/sh -c` in the built `oci:` image, in the
    /// sandbox (`rootstrap run`).
    fn run(&self, script: &str) -> Output {
        let oci = format!("oci:{}", self.path("out/oci").display());
        run::rootstrap()
            .args(["run", &oci, "--", "/bin/sh", "-c", script])
            .output()
            .unwrap()
    }

    /// A failed build must exit non-zero, say `needles` on stderr, and leave
    /// no output and no temporary rootfs.
    fn assert_fails_cleanly(&self, needles: &[&str]) {
        let out = self.build();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success(),
            "build should fail; stderr:\n{stderr}"
        );
        for n in needles {
            assert!(stderr.contains(n), "stderr lacks {n:?}:\n{stderr}");
        }
        assert_empty(&self.path("out"));
        assert_empty(&self.path("work"));
    }
}

fn assert_empty(dir: &Path) {
    let left: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(
        left.is_empty(),
        "{} should be empty, has {left:?}",
        dir.display()
    );
}

/// Small packages that need nothing from the host.
fn minimal_packages() -> Vec<DebPackage> {
    vec![
        DebPackage::new("base-files", "1.0")
            .essential()
            .dir("etc")
            .file("etc/os-release", 0o644, b"ID=fixture\n"),
        DebPackage::new("hello-fixture", "2.0-1")
            .depends("base-files")
            .file("usr/share/hello/greeting", 0o644, b"hello\n"),
    ]
}

#[test]
fn builds_a_runnable_image_with_the_targets_own_dpkg() {
    let Some(mut packages) = sandbox_runtime_packages() else {
        return;
    };
    packages.push(
        DebPackage::new("hello-fixture", "2.0-1")
            .depends("busybox, dpkg")
            .file("usr/bin/hello-fixture", 0o755, b"#!/bin/sh\necho hello from the fixture\n")
            .file("etc/hello.conf", 0o644, b"greeting=hello\n")
            .script("conffiles", "/etc/hello.conf\n")
            // dpkg runs a preinst with the control members in tmp.ci (debconf
            // reads the package name there).
            .script("preinst", "#!/bin/sh\nset -e\n[ \"$1\" = install ] && { echo preinst-ran; sed -n 1p /var/lib/dpkg/tmp.ci/control; } > /var/lib/hello-preinst\nexit 0\n")
            .script("postinst", "#!/bin/sh\nset -e\n[ \"$1\" = configure ] && echo configured > /etc/hello-configured\nexit 0\n"),
    );
    let f = Fixture::new(packages, |_| {});
    let out = f.build();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "build failed:\n{stderr}");
    assert!(
        stderr.contains("Setting up hello-fixture"),
        "dpkg configured it:\n{stderr}"
    );
    assert_empty(&f.path("work"));

    let run = f.run(
        "cat /var/lib/hello-preinst /etc/hello-configured; \
         test -e /var/lib/dpkg/tmp.ci || test -e /var/lib/dpkg/rootstrap-ci || echo no-leftovers; \
         dpkg-query -W -f '${Status}\\n' hello-fixture busybox dpkg libc6; \
         hello-fixture; test -e /etc/hello.conf.dpkg-new || echo conffile-in-place; \
         /usr/bin/dpkg --audit && echo audit-clean; echo FIXTURE=$FIXTURE",
    );
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "run failed: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert_eq!(
        stdout,
        "preinst-ran\nPackage: hello-fixture\nconfigured\nno-leftovers\ninstall ok installed\ninstall ok installed\ninstall ok installed\n\
         install ok installed\nhello from the fixture\nconffile-in-place\naudit-clean\nFIXTURE=yes\n"
    );

    let inspect = run::rootstrap()
        .args(["inspect", "--json"])
        .arg(format!(
            "docker-archive:{}",
            f.path("out/image.tar").display()
        ))
        .output()
        .unwrap();
    assert!(
        inspect.status.success(),
        "{}",
        String::from_utf8_lossy(&inspect.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&inspect.stdout).unwrap();
    let names: Vec<&str> = report["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["base-files", "busybox", "dpkg", "hello-fixture", "libc6"]
    );

    // The SBOM next to the archive carries each .deb's SHA-256 as verified
    // against the signed index.
    let spdx: serde_json::Value = serde_json::from_slice(
        &std::fs::read(f.path("out/image.tar.spdx.json")).expect("SBOM next to the archive"),
    )
    .unwrap();
    let hello = spdx["packages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "hello-fixture")
        .expect("hello-fixture in the SPDX document");
    let deb = find_file(&f.path("repo"), "hello-fixture_")
        .expect("hello-fixture .deb in the fixture repo");
    let want = format!(
        "{:x}",
        <sha2::Sha256 as sha2::Digest>::digest(std::fs::read(deb).unwrap())
    );
    assert!(
        hello["checksums"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["algorithm"] == "SHA256" && c["checksumValue"] == want.as_str()),
        "{hello}"
    );
}

fn find_file(dir: &Path, prefix: &str) -> Option<std::path::PathBuf> {
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let path = entry.path();
        if path.is_dir() {
            if let Some(found) = find_file(&path, prefix) {
                return Some(found);
            }
        } else if entry.file_name().to_string_lossy().starts_with(prefix) {
            return Some(path);
        }
    }
    None
}

#[test]
fn rebuild_from_a_warm_cache_is_byte_identical_and_downloads_no_package() {
    let Some(packages) = sandbox_runtime_packages() else {
        return;
    };
    let f = Fixture::new(packages, |_| {});
    f.write_recipe(&[]);
    let digest = |out: &Output| {
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
            .lines()
            .next()
            .unwrap()
            .split_whitespace()
            .last()
            .unwrap()
            .to_owned()
    };
    let first = digest(&f.build());
    let debs: Vec<String> = f
        .server
        .request_log()
        .into_iter()
        .map(|(path, _)| path)
        .filter(|p| p.ends_with(".deb"))
        .collect();
    assert!(!debs.is_empty());
    std::fs::remove_dir_all(f.path("out")).unwrap();
    std::fs::create_dir(f.path("out")).unwrap();
    let second = digest(&f.build());
    assert_eq!(first, second, "same inputs, same image digest");
    for deb in &debs {
        assert_eq!(f.server.requests(deb), 1, "{deb} was downloaded again");
    }
}

#[test]
fn tampered_inrelease_is_refused() {
    let f = Fixture::new(minimal_packages(), |repo| {
        let path = repo.join("dists/fixture/InRelease");
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(
            &path,
            text.replacen("Label: rootstrap-fixture", "Label: rootstrap-fixturE", 1),
        )
        .unwrap();
    });
    f.assert_fails_cleanly(&["dists/fixture/InRelease", "signature"]);
}

/// HOSTILE 21 in a build: text outside the signed part of a validly signed
/// InRelease (appended after the signature; an undashed "-" line inside)
/// is refused, not read.
#[test]
fn inrelease_with_unsigned_text_is_refused() {
    /// How the served InRelease is changed.
    type Change = fn(&str) -> String;
    let appended: Change = |text| format!("{text}Suite: unstable\n");
    let undashed: Change = |text| text.replacen("\nSuite:", "\n-Suite: injected\nSuite:", 1);
    for (what, change, says) in [
        ("appended", appended, "unsigned text after the signature"),
        ("undashed", undashed, "is not dash-escaped"),
    ] {
        let f = Fixture::new(minimal_packages(), |repo| {
            let path = repo.join("dists/fixture/InRelease");
            let text = std::fs::read_to_string(&path).unwrap();
            let changed = change(&text);
            assert_ne!(changed, text, "{what}: the InRelease did not change");
            std::fs::write(&path, changed).unwrap();
        });
        f.assert_fails_cleanly(&["dists/fixture/InRelease", says]);
    }
}

#[test]
fn inrelease_signed_by_an_unknown_key_is_refused() {
    let f = Fixture::new(minimal_packages(), |_| {});
    std::fs::write(
        f.path("archive.asc"),
        ArchiveKey::generate().public_armored(),
    )
    .unwrap();
    f.assert_fails_cleanly(&["dists/fixture/InRelease"]);
}

#[test]
fn packages_index_not_matching_the_release_is_refused() {
    let f = Fixture::new(minimal_packages(), |repo| {
        let dir = repo.join("dists/fixture/main/binary-amd64");
        let mut text = std::fs::read_to_string(dir.join("Packages")).unwrap();
        text.push_str("Package: injected\nVersion: 1\nArchitecture: amd64\nFilename: pool/x.deb\nSize: 1\nSHA256: 00\n\n");
        // Whichever compression the build picks, it is the tampered text.
        std::fs::write(
            dir.join("Packages.xz"),
            common::debrepo::xz(text.as_bytes()),
        )
        .unwrap();
        std::fs::write(
            dir.join("Packages.gz"),
            common::debrepo::gzip(text.as_bytes()),
        )
        .unwrap();
    });
    f.assert_fails_cleanly(&["binary-amd64/Packages."]);
}

/// `rootstrap lock` against a fixture whose mirror lacks some of the
/// Packages files its Release lists: the lock's [[index]] entries.
fn lock_without(missing: &[&str]) -> Result<String, String> {
    let f = Fixture::new(minimal_packages(), |repo| {
        for name in missing {
            std::fs::remove_file(repo.join("dists/fixture/main/binary-amd64").join(name)).unwrap();
        }
    });
    let lock = f.path("out/fixture.lock");
    let out = run::rootstrap_isolated()
        .arg("lock")
        .arg(f.path("recipe.toml"))
        .arg("-o")
        .arg(&lock)
        .arg("--cache-dir")
        .arg(f.path("cache"))
        .output()
        .unwrap();
    if out.status.success() {
        Ok(std::fs::read_to_string(&lock).unwrap())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

#[test]
fn a_listed_packages_index_the_mirror_lacks_falls_back_to_another_compression() {
    // One of these two is the build's first choice, so the fallback runs.
    for (missing, read) in [
        ("Packages.xz", "Packages.gz"),
        ("Packages.gz", "Packages.xz"),
    ] {
        let lock = lock_without(&[missing]).unwrap_or_else(|e| panic!("without {missing}:\n{e}"));
        // The lock names the file that was read, so a mirror made from it works.
        assert!(
            lock.contains(&format!("dists/fixture/main/binary-amd64/{read}\"")),
            "{lock}"
        );
        assert!(!lock.contains(missing), "{lock}");
    }
}

#[test]
fn a_mirror_without_any_listed_packages_index_names_the_last_one_tried() {
    let err = lock_without(&["Packages.xz", "Packages.gz", "Packages"]).unwrap_err();
    assert!(
        err.contains("HTTP 404") && err.contains("binary-amd64/Packages"),
        "{err}"
    );
}

#[test]
fn deb_not_matching_the_index_is_refused() {
    let f = Fixture::new(minimal_packages(), |repo| {
        let deb = repo.join("pool/main/h/hello-fixture/hello-fixture_2.0-1_amd64.deb");
        let mut bytes = std::fs::read(&deb).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        std::fs::write(&deb, bytes).unwrap();
    });
    f.assert_fails_cleanly(&["hello-fixture_2.0-1_amd64.deb", "SHA-256 mismatch"]);
}

/// HOSTILE 26: a `.deb` longer or shorter than its Packages `Size` is
/// refused on the size, whatever its hash would say.
#[test]
fn deb_of_the_wrong_size_is_refused() {
    for (what, change, says) in [
        ("longer", 1i64, "body exceeds the expected"),
        ("shorter", -1, "size mismatch: expected"),
    ] {
        let f = Fixture::new(minimal_packages(), |repo| {
            let deb = repo.join("pool/main/h/hello-fixture/hello-fixture_2.0-1_amd64.deb");
            let mut bytes = std::fs::read(&deb).unwrap();
            if change > 0 {
                bytes.push(b'\n');
            } else {
                bytes.pop();
            }
            std::fs::write(&deb, bytes).unwrap();
        });
        eprintln!("a .deb one byte {what} than its Size");
        f.assert_fails_cleanly(&["hello-fixture_2.0-1_amd64.deb", says]);
    }
}

#[test]
fn deb_escaping_through_a_symlink_is_refused_and_the_host_is_untouched() {
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("keep"), b"host file").unwrap();
    let target = outside.path().to_str().unwrap().to_owned();
    let mut evil = DebPackage::new("hello-fixture", "2.0-1").depends("base-files");
    evil.entries.push(Entry::Symlink {
        path: "escape".into(),
        target: target.clone(),
    });
    evil.entries.push(Entry::File {
        path: "escape/keep".into(),
        mode: 0o644,
        data: b"overwritten".to_vec(),
    });
    evil.entries.push(Entry::File {
        path: "escape/new".into(),
        mode: 0o644,
        data: b"planted".to_vec(),
    });
    let mut packages = minimal_packages();
    packages[1] = evil;
    let f = Fixture::new(packages, |_| {});
    let out = f.build();
    // Either refused, or clamped inside the rootfs: the host never changes.
    assert_eq!(
        std::fs::read(outside.path().join("keep")).unwrap(),
        b"host file"
    );
    assert!(!outside.path().join("new").exists());
    if out.status.success() {
        return;
    }
    assert_empty(&f.path("out"));
    assert_empty(&f.path("work"));
}

#[test]
fn deb_with_a_parent_directory_entry_is_refused() {
    let mut evil = DebPackage::new("hello-fixture", "2.0-1").depends("base-files");
    evil.entries.push(Entry::File {
        path: "usr/../../../../tmp/rootstrap-escape-test".into(),
        mode: 0o644,
        data: b"x".to_vec(),
    });
    let mut packages = minimal_packages();
    packages[1] = evil;
    let f = Fixture::new(packages, |_| {});
    f.assert_fails_cleanly(&["hello-fixture", ".."]);
    assert!(!Path::new("/tmp/rootstrap-escape-test").exists());
}

#[test]
fn unsatisfiable_pin_names_the_package_and_versions() {
    let f = Fixture::new(minimal_packages(), |_| {});
    f.write_recipe(&["hello-fixture=9.9"]);
    f.assert_fails_cleanly(&["hello-fixture", "9.9", "2.0-1"]);
}

/// Two packages shipping one path: `old-tool` (large, so it is fetched and
/// unpacked first) and `new-tool`.
fn overlapping_packages(new_replaces_old: bool) -> Vec<DebPackage> {
    let new = DebPackage::new("new-tool", "1.0").depends("old-tool").file(
        "usr/share/tool/data",
        0o644,
        b"new\n",
    );
    vec![
        DebPackage::new("old-tool", "1.0")
            .file("usr/share/tool/data", 0o644, b"old\n")
            .file("usr/share/tool/padding", 0o644, &vec![7u8; 2 << 20]),
        if new_replaces_old {
            new.replaces("old-tool")
        } else {
            new
        },
    ]
}

#[test]
fn a_path_shipped_by_two_packages_without_replaces_is_refused() {
    let mut packages = minimal_packages();
    packages.extend(overlapping_packages(false));
    let f = Fixture::new(packages, |_| {});
    f.write_recipe(&["new-tool"]);
    f.assert_fails_cleanly(&[
        "trying to overwrite /usr/share/tool/data",
        "does not Replace it",
    ]);
}

#[test]
fn a_path_shipped_by_two_packages_goes_to_the_one_that_replaces_the_other() {
    assert_replacer_wins(false);
}

/// The replacer is not Essential, the replaced package is: the replacer
/// is then unpacked with the Essential set, before it is configured.
#[test]
fn a_package_replacing_an_essential_ones_file_wins_it() {
    assert_replacer_wins(true);
}

fn assert_replacer_wins(old_is_essential: bool) {
    let Some(mut packages) = sandbox_runtime_packages() else {
        return;
    };
    let mut overlapping = overlapping_packages(true);
    if old_is_essential {
        overlapping[0] = overlapping[0].clone().essential();
    }
    packages.extend(overlapping);
    let f = Fixture::new(packages, |_| {});
    f.write_recipe(&["new-tool"]);
    let out = f.build();
    assert!(
        out.status.success(),
        "build failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run = f.run(
        "cat /usr/share/tool/data; \
         grep -c /usr/share/tool/data /var/lib/dpkg/info/new-tool.list; \
         grep -c /usr/share/tool/data /var/lib/dpkg/info/old-tool.list || true",
    );
    assert_eq!(
        String::from_utf8_lossy(&run.stdout),
        "new\n1\n0\n",
        "stderr: {}",
        String::from_utf8_lossy(&run.stderr)
    );
}

/// An Essential package with a file trigger, and a package outside the
/// Essential set that ships a file under it: the Essential set is
/// configured first, so the trigger must fire for the later package, as
/// dpkg fires it when it unpacks such a file.
#[test]
fn a_file_trigger_of_the_essential_set_fires_for_packages_configured_after_it() {
    let Some(mut packages) = sandbox_runtime_packages() else {
        return;
    };
    packages.push(
        DebPackage::new("watcher", "1.0")
            .essential()
            .depends("busybox")
            .dir("usr/share/watched")
            .file("usr/share/watched/base", 0o644, b"base\n")
            .script("triggers", "interest /usr/share/watched\n")
            .script(
                "postinst",
                "#!/bin/sh\nset -e\ncase \"$1\" in configure|triggered) \
                 ls /usr/share/watched > /var/lib/watched-seen; echo \"$1\" >> /var/lib/watcher-calls;; esac\n",
            ),
    );
    packages.push(DebPackage::new("watched-extra", "1.0").file(
        "usr/share/watched/extra",
        0o644,
        b"extra\n",
    ));
    let f = Fixture::new(packages, |_| {});
    f.write_recipe(&["watched-extra"]);
    let out = f.build();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "build failed:\n{stderr}");
    assert_empty(&f.path("work"));
    let run = f.run(
        "cat /var/lib/watched-seen /var/lib/watcher-calls; /usr/bin/dpkg --audit && echo audit-clean",
    );
    assert_eq!(
        String::from_utf8_lossy(&run.stdout),
        "base\nextra\nconfigure\ntriggered\naudit-clean\n",
        "stderr: {}\nbuild: {stderr}",
        String::from_utf8_lossy(&run.stderr)
    );
}

/// A failing script of the Essential set fails the build while the other
/// packages are still being unpacked on the side: the error names the
/// script, and neither the rootfs nor the staging directory is left.
#[test]
fn a_failing_essential_script_fails_the_build_and_leaves_nothing() {
    let Some(mut packages) = sandbox_runtime_packages() else {
        return;
    };
    packages.push(broken_essential());
    packages.push(DebPackage::new("hello-fixture", "2.0-1").file(
        "usr/share/hello/padding",
        0o644,
        &vec![7u8; 4 << 20],
    ));
    let f = Fixture::new(packages, |_| {});
    f.assert_fails_cleanly(&[
        "maintainer scripts failed at dpkg --configure",
        "broken-essential says no",
        // dpkg's own words name the package and the script, not only the
        // script's message.
        "error processing package broken-essential (--configure)",
        "post-installation script subprocess returned error exit status",
    ]);
}

/// HOSTILE 43: a postinst that asks to start its service is told no by the
/// `policy-rc.d` in place while scripts run (exit 101, as invoke-rc.d reads
/// it), and the daemon it starts anyway does not outlive the build.
#[test]
fn a_script_starting_a_daemon_is_denied_and_the_daemon_does_not_survive() {
    let Some(mut packages) = sandbox_runtime_packages() else {
        return;
    };
    const DAEMON_SLEEP: &str = "3597";
    packages.push(
        DebPackage::new("daemonic", "1.0")
            .depends("busybox")
            .script(
                "postinst",
                &format!(
                    "#!/bin/sh\nset -e\nif [ \"$1\" = configure ]; then\n\
             rc=0; /usr/sbin/policy-rc.d daemonic start || rc=$?\n\
             echo \"policy-rc.d says $rc\" > /var/lib/daemonic-policy\n\
             setsid sh -c 'echo alive > /var/lib/daemonic-alive; exec sleep {DAEMON_SLEEP}' \
             < /dev/null > /dev/null 2>&1 &\n\
             i=0; while [ ! -s /var/lib/daemonic-alive ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done\nfi\n"
                ),
            ),
    );
    let f = Fixture::new(packages, |_| {});
    f.write_recipe(&["daemonic"]);
    let out = f.build();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let daemons = || -> Vec<String> {
        std::fs::read_dir("/proc")
            .unwrap()
            .filter_map(|e| std::fs::read(e.ok()?.path().join("cmdline")).ok())
            .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
            .filter(|c| c.starts_with("sleep ") && c.contains(DAEMON_SLEEP))
            .collect()
    };
    assert!(daemons().is_empty(), "left running: {:?}", daemons());
    let run = f.run(
        "cat /var/lib/daemonic-policy /var/lib/daemonic-alive; ls /usr/sbin/policy-rc.d 2>&1 || true",
    );
    let stdout = String::from_utf8_lossy(&run.stdout);
    // The daemon did start (so its absence above means something).
    assert!(
        stdout.starts_with("policy-rc.d says 101\nalive\n"),
        "{stdout}"
    );
    assert!(
        !stdout.contains("/usr/sbin/policy-rc.d\n"),
        "left in the image: {stdout}"
    );
}

/// An Essential package whose postinst fails, saying why on stderr.
fn broken_essential() -> DebPackage {
    DebPackage::new("broken-essential", "1.0")
        .essential()
        .depends("busybox")
        .script(
            "postinst",
            "#!/bin/sh\necho broken-essential says no >&2\nexit 3\n",
        )
}

/// Whether a default build of a fixture makes its tree in /dev/shm here;
/// says so when the test is skipped.
fn builds_go_to_memory() -> bool {
    let yes = common::run::shm_has_room();
    if !yes {
        not_applicable("/dev/shm is not a tmpfs with room for a fixture tree");
    }
    yes
}

/// The rootfs trees (and staging directories) in /dev/shm of build `pid`.
fn shm_trees_of(pid: u32) -> Vec<String> {
    let prefix = format!(".rootstrap-rootfs-{pid}-");
    std::fs::read_dir("/dev/shm")
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with(&prefix))
        .collect()
}

/// With no `--work-dir` and no `$TMPDIR`, a small tree is made in
/// /dev/shm; a build failing there leaves nothing behind either.
#[test]
fn a_build_failing_in_memory_leaves_nothing_in_dev_shm() {
    if !builds_go_to_memory() {
        return;
    }
    let Some(mut packages) = sandbox_runtime_packages() else {
        return;
    };
    packages.push(broken_essential());
    packages.push(DebPackage::new("hello-fixture", "2.0-1"));
    let f = Fixture::new(packages, |_| {});
    let child = f
        .build_command()
        .env_remove("TMPDIR")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "build should fail:\n{stderr}");
    assert!(
        stderr.contains("rootfs made in memory (/dev/shm)"),
        "the tree should have been made in memory:\n{stderr}"
    );
    assert!(stderr.contains("broken-essential says no"), "{stderr}");
    assert_empty(&f.path("out"));
    let left = shm_trees_of(pid);
    assert!(left.is_empty(), "left in /dev/shm: {left:?}");
}

/// Trees in /dev/shm hold memory until removed. A build stopped with
/// SIGTERM removes its own; one killed with SIGKILL cannot, and the next
/// build in memory removes it, once it is old enough not to be
/// mid-creation, and only because no process holds its lock.
#[test]
fn a_stopped_builds_tree_leaves_dev_shm_and_a_killed_ones_goes_with_the_next_build() {
    use std::io::{BufRead, BufReader};
    if !builds_go_to_memory() {
        return;
    }
    let Some(mut packages) = sandbox_runtime_packages() else {
        return;
    };
    packages.push(
        DebPackage::new("slow", "1.0")
            .depends("busybox")
            .script("postinst", "#!/bin/sh\n/usr/bin/busybox sleep 60\n"),
    );
    packages.push(DebPackage::new("hello-fixture", "2.0-1"));
    let f = Fixture::new(packages, |_| {});
    f.write_recipe(&["hello-fixture", "slow"]);
    // Starts the build and returns once its slow postinst runs.
    let start_build = || {
        let mut child = f
            .build_command()
            .env_remove("TMPDIR")
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut log = BufReader::new(child.stderr.take().unwrap());
        let mut line = String::new();
        while !line.contains("configure the other") {
            line.clear();
            assert!(log.read_line(&mut line).unwrap() > 0, "build ended early");
        }
        assert!(!shm_trees_of(child.id()).is_empty(), "no tree in /dev/shm");
        child
    };

    // By now the build's stderr has no reader (the closure dropped it), as
    // when a log pipe's reader has gone: the cleanup must not depend on it.
    let stopped = start_build();
    rustix::process::kill_process(
        rustix::process::Pid::from_child(&stopped),
        rustix::process::Signal::TERM,
    )
    .unwrap();
    let pid = stopped.id();
    let status = stopped.wait_with_output().unwrap().status;
    assert!(!status.success());
    assert_eq!(
        shm_trees_of(pid),
        Vec::<String>::new(),
        "SIGTERM left its tree"
    );

    let mut killed = start_build();
    killed.kill().unwrap();
    killed.wait().unwrap();
    let trees = || shm_trees_of(killed.id());
    assert!(
        !trees().is_empty(),
        "the killed build's tree should be left"
    );

    // Younger trees are spared (they may be a build between mkdir and lock).
    std::thread::sleep(std::time::Duration::from_secs(11));
    f.write_recipe(&["hello-fixture"]);
    let out = f.build_command().env_remove("TMPDIR").output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("left by a build that was killed"),
        "the next build should say it removed the tree:\n{stderr}"
    );
    assert!(trees().is_empty(), "left in /dev/shm: {:?}", trees());
}
