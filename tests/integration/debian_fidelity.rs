//! A minbase build of a fixture repository (real dpkg in the sandbox) gets
//! what mmdebstrap's tree has beyond the packages' files: apt's
//! `extended_states` naming the packages apt would have installed only as
//! dependencies, apt's private download directories, the placeholder
//! /etc/fstab, /run/lock, and base-passwd's preinst run before any other
//! script.

use crate::common;

use std::os::unix::fs::MetadataExt;

use common::debrepo::{sandbox_runtime_packages, DebPackage, Entry, Repo};
use common::fixture::{self, DebFixture};
use common::httpd::TestServer;
use common::run;

const APT_UID: u32 = 42;

/// The host-made runtime (busybox, dpkg, libc6) with /etc/passwd left to
/// base-passwd's preinst, plus a Debian-shaped minbase: an Essential
/// package whose preinst looks for /etc/passwd and sorts before
/// base-passwd, a fake apt, a required non-Essential package, and their
/// libraries.
fn minbase_packages() -> Option<Vec<DebPackage>> {
    let mut packages = sandbox_runtime_packages()?;
    for p in &mut packages {
        p.entries
            .retain(|e| !matches!(e, Entry::File { path, .. } if path == "etc/passwd"));
    }
    let passwd = format!(
        "root:x:0:0:root:/root:/bin/sh\n_apt:x:{APT_UID}:65534::/nonexistent:/usr/sbin/nologin\n"
    );
    packages.extend([
        DebPackage::new("aaa-early", "1").essential().script(
            "preinst",
            "#!/bin/sh\nset -e\nif [ -e /etc/passwd ]; then echo present; else echo missing; fi \
             > /var/lib/early-preinst\n",
        ),
        DebPackage::new("base-passwd", "3.6.1")
            .essential()
            .depends("libearly")
            .script(
                "preinst",
                &format!(
                    "#!/bin/sh\nset -e\n[ \"$1\" = install ] && [ ! -e /etc/passwd ] && \
                     printf '%s' '{passwd}' > /etc/passwd\nexit 0\n"
                ),
            ),
        DebPackage::new("libearly", "1"),
        DebPackage::new("apt", "2.6.1")
            .required()
            .depends("libapt-fixture")
            .dir("var/lib/apt")
            .dir("var/lib/apt/lists")
            .dir("var/cache/apt")
            .dir("var/cache/apt/archives"),
        DebPackage::new("libapt-fixture", "1"),
        DebPackage::new("mount-fixture", "1")
            .required()
            .depends("libmount-fixture"),
        DebPackage::new("libmount-fixture", "1"),
        DebPackage::new("hello-fixture", "1")
            .depends("libhello")
            .script(
                "postinst",
                "#!/bin/sh\nset -e\nmkdir -p /run/lock /run/hello\nchmod 1777 /run/lock\n\
                 touch /run/hello/pid\n",
            ),
        DebPackage::new("libhello", "1"),
    ]);
    Some(packages)
}

#[test]
fn minbase_tree_has_what_apt_and_debootstrap_leave() {
    let Some(packages) = minbase_packages() else {
        return;
    };
    let fx = DebFixture::new();
    let repo = fx.write_repo("repo", &Repo::new("fixture", packages));
    let server = TestServer::serve(&repo);
    let recipe = format!(
        "{}mirror = \"{}\"\n\n[packages]\ninstall = [\"hello-fixture\"]\n\n\
         [image]\nname = \"rootstrap-test/fidelity:1\"\n",
        fixture::debian_source("amd64").replace("variant = \"essential\"", "variant = \"minbase\""),
        server.base_url()
    );
    std::fs::write(fx.path("recipe.toml"), recipe).unwrap();
    let rootfs = fx.path("rootfs");
    let out = run::rootstrap_isolated()
        .arg("build")
        .arg(fx.path("recipe.toml"))
        .arg("--cache-dir")
        .arg(fx.path("cache"))
        .arg("--output")
        .arg(format!("rootfs:{}", rootfs.display()))
        .arg("--output")
        .arg(format!("tar:{}", fx.path("rootfs.tar").display()))
        .output()
        .unwrap();
    let stderr = run::stderr(&out);
    assert!(out.status.success(), "build failed:\n{stderr}");

    // base-passwd's preinst ran before aaa-early's, which plan order
    // puts first.
    assert_eq!(
        std::fs::read_to_string(rootfs.join("var/lib/early-preinst")).unwrap(),
        "present\n"
    );

    // apt's own format and cache order (libhello, libmount-fixture,
    // libapt-fixture by apt's name hash), the packages only apt pulled in:
    // not libearly (the Essential set's), nor apt, mount-fixture and
    // hello-fixture (asked for).
    let states = rootfs.join("var/lib/apt/extended_states");
    assert_eq!(
        std::fs::read_to_string(&states).unwrap(),
        "Package: libhello\nArchitecture: amd64\nAuto-Installed: 1\n\n\
         Package: libmount-fixture\nArchitecture: amd64\nAuto-Installed: 1\n\n\
         Package: libapt-fixture\nArchitecture: amd64\nAuto-Installed: 1\n\n"
    );
    assert_eq!(std::fs::metadata(&states).unwrap().mode() & 0o7777, 0o644);

    for dir in ["var/cache/apt/archives", "var/lib/apt/lists"] {
        let partial = std::fs::symlink_metadata(rootfs.join(dir).join("partial")).unwrap();
        assert!(partial.is_dir(), "{dir}/partial");
        assert_eq!(
            (partial.uid(), partial.gid(), partial.mode() & 0o7777),
            (APT_UID, 0, 0o700),
            "{dir}/partial: _apt's, from the tree's own /etc/passwd"
        );
        let lock = std::fs::symlink_metadata(rootfs.join(dir).join("lock")).unwrap();
        assert_eq!(
            (lock.is_file(), lock.len(), lock.uid(), lock.mode() & 0o7777),
            (true, 0, 0, 0o640),
            "{dir}/lock"
        );
    }

    // /run keeps lock (/var/lock links there), nothing else, in the tree
    // and in the layer.
    let run: Vec<String> = std::fs::read_dir(rootfs.join("run"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(run, ["lock"]);
    let lock = std::fs::symlink_metadata(rootfs.join("run/lock")).unwrap();
    assert_eq!(lock.mode() & 0o7777, 0o1777);
    let listing = std::process::Command::new("tar")
        .arg("-tf")
        .arg(fx.path("rootfs.tar"))
        .output()
        .unwrap();
    let listing = run::text(&listing.stdout);
    let in_run: Vec<&str> = listing
        .lines()
        .map(|l| l.trim_start_matches("./").trim_end_matches('/'))
        .filter(|l| l.starts_with("run/"))
        .collect();
    assert_eq!(in_run, ["run/lock"], "{listing}");

    let fstab = rootfs.join("etc/fstab");
    assert_eq!(
        std::fs::read(&fstab).unwrap(),
        b"# UNCONFIGURED FSTAB FOR BASE SYSTEM\n"
    );
    assert_eq!(std::fs::metadata(&fstab).unwrap().mode() & 0o7777, 0o644);
}
