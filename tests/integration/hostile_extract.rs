//! HOSTILE.md items 1–14 and 16 against the extraction paths (1–9 against
//! each of .deb data, .apk packages and image layers), plus a .deb round
//! trip compared with what the real dpkg writes (when it is present).
//!
//! Every hostile case plants a host file and directory next to the rootfs
//! and checks afterwards that they are byte-identical, that nothing new
//! appeared outside the rootfs, and that the error names the package and
//! the entry (or that the path was clamped inside the root).

use crate::common::skip::skip;
use std::collections::BTreeMap;
use std::io::{self, Read};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use rootstrap::archive::tar::EntryKind;
use rootstrap::distro::apk::bootstrap::unpack_package_data;
use rootstrap::distro::deb::dpkgdb::{unpack_deb, write_database, UnpackOptions};
use rootstrap::image::apply_layer;
use rootstrap::rootfs::extract::{extract_tar, Claimed, ExtractError, ExtractOptions, Extracted};
use rootstrap::rootfs::image_sink::RootSink;
use rootstrap::rootfs::safe::{RelPath, Root};

// ---------------------------------------------------------------- tar writer

struct E<'a> {
    name: &'a [u8],
    kind: u8,
    data: &'a [u8],
    link: &'a [u8],
    mode: u32,
    /// Overrides the size field (raw bytes).
    size_field: Option<&'a [u8]>,
}

fn e(name: &[u8]) -> E<'_> {
    E {
        name,
        kind: b'0',
        data: b"",
        link: b"",
        mode: 0o644,
        size_field: None,
    }
}

fn header(x: &E<'_>) -> [u8; 512] {
    let mut h = [0u8; 512];
    let n = x.name.len().min(100);
    h[..n].copy_from_slice(&x.name[..n]);
    h[100..108].copy_from_slice(format!("{:07o}\0", x.mode).as_bytes());
    h[108..116].copy_from_slice(b"0000000\0");
    h[116..124].copy_from_slice(b"0000000\0");
    match x.size_field {
        Some(f) => h[124..124 + f.len()].copy_from_slice(f),
        None => h[124..136].copy_from_slice(format!("{:011o}\0", x.data.len()).as_bytes()),
    }
    h[136..148].copy_from_slice(b"14000000000\0");
    h[156] = x.kind;
    let l = x.link.len().min(100);
    h[157..157 + l].copy_from_slice(&x.link[..l]);
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    checksum(&mut h);
    h
}

fn checksum(h: &mut [u8; 512]) {
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
}

fn pad(out: &mut Vec<u8>) {
    out.resize(out.len().div_ceil(512) * 512, 0);
}

fn tar(entries: &[E<'_>]) -> Vec<u8> {
    let mut out = Vec::new();
    for x in entries {
        out.extend_from_slice(&header(x));
        out.extend_from_slice(x.data);
        pad(&mut out);
    }
    out.extend_from_slice(&[0u8; 1024]);
    out
}

fn pax_record(key: &str, value: &str) -> Vec<u8> {
    let body = key.len() + value.len() + 3;
    let mut len = body + 1;
    while len != body + len.to_string().len() {
        len = body + len.to_string().len();
    }
    format!("{len} {key}={value}\n").into_bytes()
}

// ---------------------------------------------------------------- fixture

struct Fixture {
    _dir: tempfile::TempDir,
    rootdir: PathBuf,
    outside: PathBuf,
    root: Root,
    before: BTreeMap<PathBuf, (u32, Vec<u8>)>,
}

const HOST_FILE: &[u8] = b"host file: must never change\n";

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let rootdir = dir.path().join("rootfs");
        let outside = dir.path().join("outside");
        std::fs::create_dir(&rootdir).unwrap();
        std::fs::create_dir(&outside).unwrap();
        std::fs::write(outside.join("host.txt"), HOST_FILE).unwrap();
        std::fs::set_permissions(&outside, std::fs::Permissions::from_mode(0o750)).unwrap();
        let root = Root::open(&rootdir).unwrap();
        let mut f = Fixture {
            _dir: dir,
            rootdir,
            outside,
            root,
            before: BTreeMap::new(),
        };
        f.before = f.snapshot_outside();
        f
    }

    fn outside_str(&self) -> &str {
        self.outside.to_str().unwrap()
    }

    /// Everything in the temp dir that is not the rootfs: path → (mode, content).
    fn snapshot_outside(&self) -> BTreeMap<PathBuf, (u32, Vec<u8>)> {
        let mut out = BTreeMap::new();
        let top = self.rootdir.parent().unwrap();
        let mut stack = vec![top.to_path_buf()];
        while let Some(d) = stack.pop() {
            for ent in std::fs::read_dir(&d).unwrap() {
                let p = ent.unwrap().path();
                if p == self.rootdir {
                    continue;
                }
                let m = std::fs::symlink_metadata(&p).unwrap();
                let content = if m.is_file() {
                    std::fs::read(&p).unwrap()
                } else {
                    Vec::new()
                };
                out.insert(p.clone(), (m.mode(), content));
                if m.is_dir() {
                    stack.push(p);
                }
            }
        }
        let m = std::fs::metadata(&self.outside).unwrap();
        out.insert(self.outside.clone(), (m.mode(), Vec::new()));
        out
    }

    fn assert_host_untouched(&self) {
        assert_eq!(
            std::fs::read(self.outside.join("host.txt")).unwrap(),
            HOST_FILE
        );
        assert_eq!(
            self.snapshot_outside(),
            self.before,
            "something outside the rootfs changed"
        );
    }

    fn extract(&self, data: &[u8]) -> Result<Vec<Extracted>, ExtractError> {
        self.extract_with(data, &|_, _| Ok(()))
    }

    fn extract_with(
        &self,
        data: &[u8],
        claim: &dyn Fn(&RelPath, EntryKind) -> Result<(), String>,
    ) -> Result<Vec<Extracted>, ExtractError> {
        let mut opts = ExtractOptions::new("evilpkg");
        opts.md5 = true;
        extract_tar(&self.root, data, &opts, claim)
    }

    /// Extraction must fail naming the package and `entry`, with the host
    /// untouched.
    fn expect_rejected(&self, data: &[u8], entry: &str) -> String {
        let err = self
            .extract(data)
            .expect_err("hostile archive was accepted");
        let msg = err.to_string();
        assert!(
            msg.contains("evilpkg"),
            "error does not name the package: {msg}"
        );
        assert!(
            msg.contains(entry),
            "error does not name entry {entry:?}: {msg}"
        );
        self.assert_host_untouched();
        msg
    }
}

/// The paths an archive takes into a rootfs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Via {
    /// A .deb's data tar (dpkgdb's extraction).
    DebData,
    /// An .apk package's data tar, as the apk installer writes it.
    ApkPackage,
    /// An image layer, as base images and `rootstrap run` unpack it.
    ImageLayer,
}

const EVERY_PATH: [Via; 3] = [Via::DebData, Via::ApkPackage, Via::ImageLayer];

impl Via {
    /// A package path's errors name the package; a layer has no package
    /// name, its errors name the entry.
    fn assert_names_archive(self, msg: &str) {
        if self != Via::ImageLayer {
            assert!(
                msg.contains("evilpkg"),
                "{self:?}: error does not name the package: {msg}"
            );
        }
    }
}

impl Fixture {
    fn extract_via(&self, via: Via, data: &[u8]) -> Result<(), String> {
        match via {
            Via::DebData => self.extract(data).map(|_| ()).map_err(|e| e.to_string()),
            Via::ApkPackage => {
                unpack_package_data(&self.root, "evilpkg", data).map_err(|e| e.to_string())
            }
            Via::ImageLayer => apply_layer(data, &mut RootSink::new(&self.root))
                .map(|_| ())
                .map_err(|e| e.to_string()),
        }
    }

    /// Extraction through `via` must fail naming the archive and `entry`
    /// (a layer reader drops a leading `./`), with the host untouched.
    fn expect_rejected_via(&self, via: Via, data: &[u8], entry: &str) -> String {
        let msg = self
            .extract_via(via, data)
            .expect_err(&format!("{via:?}: hostile archive was accepted"));
        via.assert_names_archive(&msg);
        let shown = match via {
            Via::ImageLayer => entry.trim_start_matches("./"),
            _ => entry,
        };
        assert!(
            msg.contains(shown),
            "{via:?}: error does not name entry {entry:?}: {msg}"
        );
        self.assert_host_untouched();
        msg
    }
}

// ---------------------------------------------------------------- HOSTILE 1–9
//
// Every case runs against each path an archive takes into a rootfs: a
// .deb's data tar, an .apk package's data tar (apk's name and checksum
// rules first) and an image layer (whiteouts, layer replacement rules).
// They share one writer (rootfs::extract), but each path adds its own
// checks in front of it, and a layer may replace what a package may not.

#[test]
fn hostile_01_absolute_and_dotdot_names() {
    for via in EVERY_PATH {
        for name in [
            "/etc/x",
            "../x",
            "./../x",
            "a/../../x",
            "../outside/host.txt",
        ] {
            let f = Fixture::new();
            let t = tar(&[E {
                data: b"pwned",
                ..e(name.as_bytes())
            }]);
            f.expect_rejected_via(via, &t, name);
            assert!(!f.rootdir.parent().unwrap().join("x").exists());
        }
    }
}

#[test]
fn hostile_02_control_characters_and_newlines() {
    for via in EVERY_PATH {
        for name in ["a\nb", "evil\r", "x\x1b[31m", "tab\there"] {
            let f = Fixture::new();
            let t = tar(&[E {
                data: b"pwned",
                ..e(name.as_bytes())
            }]);
            let err = f.extract_via(via, &t).expect_err(name);
            via.assert_names_archive(&err);
            f.assert_host_untouched();
            assert!(
                std::fs::read_dir(&f.rootdir).unwrap().next().is_none(),
                "{via:?}: {name:?} was written"
            );
        }
    }
}

#[test]
fn hostile_03_file_through_absolute_symlink() {
    for via in EVERY_PATH {
        // Link to a host directory: its target does not exist inside the
        // root, so the write fails; nothing reaches the host.
        let f = Fixture::new();
        let t = tar(&[
            E {
                kind: b'2',
                link: f.outside_str().as_bytes(),
                ..e(b"x")
            },
            E {
                data: b"pwned",
                ..e(b"x/host.txt")
            },
        ]);
        f.expect_rejected_via(via, &t, "x/host.txt");

        // Link to /etc with an /etc in the rootfs: clamped to rootfs/etc.
        let f = Fixture::new();
        std::fs::create_dir(f.rootdir.join("etc")).unwrap();
        let t = tar(&[
            E {
                kind: b'2',
                link: b"/etc",
                ..e(b"x")
            },
            E {
                data: b"root:x:0:0\n",
                ..e(b"x/passwd")
            },
        ]);
        f.extract_via(via, &t).unwrap();
        assert_eq!(
            std::fs::read(f.rootdir.join("etc/passwd")).unwrap(),
            b"root:x:0:0\n"
        );
        f.assert_host_untouched();
    }
}

#[test]
fn hostile_04_file_through_relative_symlink() {
    for via in EVERY_PATH {
        let f = Fixture::new();
        let t = tar(&[
            E {
                kind: b'2',
                link: b"../../../../../../../..",
                ..e(b"x")
            },
            E {
                data: b"pwned",
                ..e(b"x/host.txt")
            },
            E {
                kind: b'2',
                link: b"../outside",
                ..e(b"y")
            },
            E {
                data: b"pwned",
                ..e(b"y/host.txt")
            },
        ]);
        // `x/..` clamps to the root: x/host.txt lands at rootfs/host.txt; `y`
        // names rootfs/outside, which does not exist.
        let err = f.extract_via(via, &t).unwrap_err();
        assert!(err.contains("y/host.txt"), "{via:?}: {err}");
        assert_eq!(std::fs::read(f.rootdir.join("host.txt")).unwrap(), b"pwned");
        f.assert_host_untouched();
    }
}

#[test]
fn hostile_05_directory_through_symlink() {
    for via in EVERY_PATH {
        let f = Fixture::new();
        let t = tar(&[
            E {
                kind: b'2',
                link: f.outside_str().as_bytes(),
                ..e(b"x")
            },
            E {
                kind: b'5',
                mode: 0o755,
                ..e(b"x/new/")
            },
        ]);
        f.expect_rejected_via(via, &t, "x/new");
        assert!(!f.outside.join("new").exists());
    }
}

#[test]
fn hostile_05_directory_through_relative_symlink() {
    for via in EVERY_PATH {
        // Both links climb exactly to the directory that holds the rootfs,
        // so a directory made through them outside the root would show in
        // the host snapshot. Inside the root `..` stops at `/`: the
        // directories land in the rootfs.
        let f = Fixture::new();
        let t = tar(&[
            E {
                kind: b'2',
                link: b"..",
                ..e(b"x")
            },
            E {
                kind: b'5',
                mode: 0o755,
                ..e(b"x/new/")
            },
            E {
                kind: b'5',
                mode: 0o755,
                ..e(b"a/")
            },
            E {
                kind: b'5',
                mode: 0o755,
                ..e(b"a/b/")
            },
            E {
                kind: b'2',
                link: b"../../..",
                ..e(b"a/b/up")
            },
            E {
                kind: b'5',
                mode: 0o755,
                ..e(b"a/b/up/deep/")
            },
        ]);
        f.extract_via(via, &t).unwrap();
        for d in ["new", "deep"] {
            assert!(
                !f.rootdir.parent().unwrap().join(d).exists(),
                "{via:?}: {d} escaped the rootfs"
            );
        }
        f.assert_host_untouched();
        for d in ["new", "deep"] {
            assert!(
                std::fs::symlink_metadata(f.rootdir.join(d))
                    .unwrap()
                    .is_dir(),
                "{via:?}: {d}"
            );
        }

        // A relative link to the rootfs's sibling: inside the root it names
        // /outside, which does not exist.
        let f = Fixture::new();
        let t = tar(&[
            E {
                kind: b'2',
                link: b"../outside",
                ..e(b"y")
            },
            E {
                kind: b'5',
                mode: 0o755,
                ..e(b"y/new/")
            },
        ]);
        f.expect_rejected_via(via, &t, "y/new");
        assert!(!f.outside.join("new").exists());
        assert!(!f.rootdir.join("outside").exists(), "{via:?}");
    }
}

#[test]
fn hostile_06_chmod_through_symlink() {
    for via in EVERY_PATH {
        let f = Fixture::new();
        let t = tar(&[
            E {
                kind: b'2',
                link: f.outside_str().as_bytes(),
                ..e(b"foo")
            },
            E {
                kind: b'5',
                mode: 0o777,
                ..e(b"foo")
            },
        ]);
        if via == Via::ImageLayer {
            // A layer's directory replaces the symlink (OCI), never its target.
            f.extract_via(via, &t).unwrap();
            assert!(std::fs::symlink_metadata(f.rootdir.join("foo"))
                .unwrap()
                .is_dir());
            f.assert_host_untouched();
        } else {
            f.expect_rejected_via(via, &t, "foo");
        }
        assert_eq!(std::fs::metadata(&f.outside).unwrap().mode() & 0o777, 0o750);

        // A symlink to a directory inside the root: a package keeps it, a
        // layer replaces it; either way its target's mode is left alone.
        let f = Fixture::new();
        std::fs::create_dir(f.rootdir.join("real")).unwrap();
        std::fs::set_permissions(
            f.rootdir.join("real"),
            std::fs::Permissions::from_mode(0o755),
        )
        .unwrap();
        let t = tar(&[
            E {
                kind: b'2',
                link: b"/real",
                ..e(b"foo")
            },
            E {
                kind: b'5',
                mode: 0o777,
                ..e(b"foo")
            },
        ]);
        f.extract_via(via, &t).unwrap();
        assert_eq!(
            std::fs::metadata(f.rootdir.join("real")).unwrap().mode() & 0o777,
            0o755
        );
        f.assert_host_untouched();
    }
}

#[test]
fn hostile_07_file_replaces_links_never_writes_through() {
    for via in EVERY_PATH {
        let f = Fixture::new();
        let host = f.outside.join("host.txt");
        let t = tar(&[
            E {
                kind: b'2',
                link: host.to_str().unwrap().as_bytes(),
                ..e(b"sym")
            },
            E {
                data: b"new content",
                ..e(b"sym")
            },
        ]);
        f.extract_via(via, &t).unwrap();
        assert!(std::fs::symlink_metadata(f.rootdir.join("sym"))
            .unwrap()
            .is_file());
        f.assert_host_untouched();

        // A hard link to a host file already in the rootfs (same filesystem).
        let f = Fixture::new();
        std::fs::hard_link(f.outside.join("host.txt"), f.rootdir.join("busybox")).unwrap();
        let t = tar(&[E {
            data: b"#!/bin/false\n",
            ..e(b"busybox")
        }]);
        f.extract_via(via, &t).unwrap();
        assert_eq!(
            std::fs::read(f.rootdir.join("busybox")).unwrap(),
            b"#!/bin/false\n"
        );
        f.assert_host_untouched();
    }
}

#[test]
fn hostile_07_file_replaces_hardlink_from_same_archive() {
    for via in EVERY_PATH {
        let f = Fixture::new();
        let t = tar(&[
            E {
                data: b"original",
                ..e(b"target")
            },
            E {
                kind: b'1',
                link: b"target",
                ..e(b"link")
            },
            E {
                data: b"replacement",
                ..e(b"link")
            },
        ]);
        f.extract_via(via, &t).unwrap();
        assert_eq!(
            std::fs::read(f.rootdir.join("target")).unwrap(),
            b"original",
            "{via:?}: the file was written through the hard link"
        );
        assert_eq!(
            std::fs::read(f.rootdir.join("link")).unwrap(),
            b"replacement",
            "{via:?}"
        );
        let nlink = |p: &str| std::fs::metadata(f.rootdir.join(p)).unwrap().nlink();
        assert_eq!((nlink("target"), nlink("link")), (1, 1), "{via:?}");
        f.assert_host_untouched();
    }
}

#[test]
fn hostile_08_hardlink_targets() {
    for via in EVERY_PATH {
        for target in [
            &b"/etc/shadow"[..],
            b"../outside/host.txt",
            b"a/../../outside/host.txt",
            b"never/extracted",
        ] {
            let f = Fixture::new();
            let t = tar(&[E {
                kind: b'1',
                link: target,
                ..e(b"h")
            }]);
            f.expect_rejected_via(via, &t, "h");
            assert!(!f.rootdir.join("h").exists());
        }
        // Through a symlink created by the same archive.
        let f = Fixture::new();
        let t = tar(&[
            E {
                kind: b'2',
                link: f.outside_str().as_bytes(),
                ..e(b"evil")
            },
            E {
                kind: b'1',
                link: b"evil/host.txt",
                ..e(b"h")
            },
        ]);
        f.expect_rejected_via(via, &t, "h");
        // Target replaced by a symlink after it was extracted: a package
        // refuses; a layer links the symlink itself, never what it names.
        let f = Fixture::new();
        let host = f.outside.join("host.txt");
        let t = tar(&[
            E {
                data: b"ok",
                ..e(b"f")
            },
            E {
                kind: b'2',
                link: host.to_str().unwrap().as_bytes(),
                ..e(b"f")
            },
            E {
                kind: b'1',
                link: b"f",
                ..e(b"h")
            },
        ]);
        if via == Via::ImageLayer {
            f.extract_via(via, &t).unwrap();
            assert!(std::fs::symlink_metadata(f.rootdir.join("h"))
                .unwrap()
                .file_type()
                .is_symlink());
            f.assert_host_untouched();
        } else {
            f.expect_rejected_via(via, &t, "h");
        }
    }
}

#[test]
fn hostile_08_hardlink_forward_reference() {
    let forward = || {
        tar(&[
            E {
                kind: b'1',
                link: b"later",
                ..e(b"h")
            },
            E {
                data: b"from this archive",
                ..e(b"later")
            },
        ])
    };
    for via in EVERY_PATH {
        let f = Fixture::new();
        f.expect_rejected_via(via, &forward(), "h");
        assert!(!f.rootdir.join("h").exists(), "{via:?}");
    }
    // With `later` already in the rootfs (another package's file), the
    // link would succeed if only the rootfs were checked; a package may
    // link only to its own files extracted before the link.
    for via in [Via::DebData, Via::ApkPackage] {
        let f = Fixture::new();
        std::fs::write(f.rootdir.join("later"), b"another package").unwrap();
        f.expect_rejected_via(via, &forward(), "h");
        assert!(!f.rootdir.join("h").exists(), "{via:?}");
        assert_eq!(
            std::fs::read(f.rootdir.join("later")).unwrap(),
            b"another package"
        );
    }
}

#[test]
fn hostile_09_root_replacement() {
    for via in EVERY_PATH {
        for name in [&b"."[..], b"./", b"/."] {
            let f = Fixture::new();
            let t = tar(&[E {
                kind: b'2',
                link: f.outside_str().as_bytes(),
                ..e(name)
            }]);
            let err = f.extract_via(via, &t).expect_err("root replaced");
            via.assert_names_archive(&err);
            assert!(std::fs::symlink_metadata(&f.rootdir).unwrap().is_dir());
            f.assert_host_untouched();
        }
    }
}

// ---------------------------------------------------------------- HOSTILE 10–12

#[test]
fn hostile_10_pax_size_disagrees_with_ustar_size() {
    // The file's data contains what looks like a header for `../smuggled`.
    // A reader using the ustar size (0) would extract it; GNU tar and Go use
    // the PAX size, and so do we.
    let mut smuggled = header(&E {
        data: b"",
        ..e(b"../smuggled")
    })
    .to_vec();
    smuggled.resize(1024, b'z');
    let pax = pax_record("size", &smuggled.len().to_string());
    let mut t = Vec::new();
    t.extend_from_slice(&header(&E {
        kind: b'x',
        data: &pax,
        ..e(b"PaxHeaders/f")
    }));
    t.extend_from_slice(&pax);
    pad(&mut t);
    t.extend_from_slice(&header(&E {
        size_field: Some(b"00000000000\0"),
        ..e(b"f")
    }));
    t.extend_from_slice(&smuggled);
    pad(&mut t);
    t.extend_from_slice(&[0u8; 1024]);
    let f = Fixture::new();
    let out = f.extract(&t).unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!(std::fs::read(f.rootdir.join("f")).unwrap(), smuggled);
    assert!(!f.rootdir.parent().unwrap().join("smuggled").exists());
    f.assert_host_untouched();
}

#[test]
fn hostile_10_differential_against_gnu_tar() {
    if Command::new("tar").arg("--version").output().is_err() {
        skip("GNU tar not found");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    let long_dir = "d".repeat(120);
    let long_name = format!("{long_dir}/{}", "f".repeat(150));
    std::fs::create_dir_all(src.join(&long_dir)).unwrap();
    std::fs::write(src.join(&long_name), b"long").unwrap();
    std::os::unix::fs::symlink("t".repeat(180), src.join("longlink")).unwrap();
    std::fs::write(src.join("ünï"), b"utf8").unwrap();
    // Fits ustar only through its prefix field.
    let split_dir = "p".repeat(90);
    std::fs::create_dir(src.join(&split_dir)).unwrap();
    std::fs::write(src.join(&split_dir).join("q".repeat(60)), b"split").unwrap();
    for format in ["gnu", "pax", "ustar"] {
        let archive = dir.path().join(format!("{format}.tar"));
        let mut cmd = Command::new("tar");
        cmd.arg("--format")
            .arg(format)
            .arg("-cf")
            .arg(&archive)
            .arg("-C")
            .arg(&src);
        if format == "ustar" {
            // ustar cannot hold the longer names.
            cmd.args(["ünï", &split_dir]);
        } else {
            cmd.arg(".");
        }
        assert!(cmd.status().unwrap().success());
        let listing = Command::new("tar")
            .arg("-tf")
            .arg(&archive)
            .output()
            .unwrap();
        let theirs: Vec<Vec<u8>> = listing
            .stdout
            .split(|&c| c == b'\n')
            .filter(|l| !l.is_empty())
            .map(<[u8]>::to_vec)
            .collect();
        let data = std::fs::read(&archive).unwrap();
        let mut ours = Vec::new();
        let mut r = rootstrap::archive::tar::TarReader::new(&data[..]);
        while let Some(mut entry) = r.next_entry().unwrap() {
            let mut body = Vec::new();
            entry.read_to_end(&mut body).unwrap();
            let mut p = entry.header.path.clone();
            if entry.header.kind == EntryKind::Dir && !p.ends_with(b"/") {
                p.push(b'/');
            }
            ours.push(p);
        }
        assert_eq!(ours, theirs, "{format}");
    }
}

fn gnu_header(x: &E<'_>) -> [u8; 512] {
    let mut h = header(x);
    h[257..265].copy_from_slice(b"ustar  \0");
    checksum(&mut h);
    h
}

fn our_listing(data: &[u8]) -> Vec<Vec<u8>> {
    let mut r = rootstrap::archive::tar::TarReader::new(data);
    let mut out = Vec::new();
    while let Some(entry) = r.next_entry().unwrap() {
        out.push(entry.header.path.clone());
    }
    out
}

/// GNU tar's stdout for `tar ARGS… DIR/t.tar`, with `data` as `t.tar`.
fn gnu_tar(dir: &Path, data: &[u8], args: &[&std::ffi::OsStr]) -> Vec<u8> {
    let p = dir.join("t.tar");
    std::fs::write(&p, data).unwrap();
    let out = Command::new("tar").args(args).arg(&p).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn gnu_listing(dir: &Path, data: &[u8]) -> Vec<Vec<u8>> {
    gnu_tar(dir, data, &["-tf".as_ref()])
        .split(|&c| c == b'\n')
        .filter(|l| !l.is_empty())
        .map(<[u8]>::to_vec)
        .collect()
}

#[test]
fn hostile_10_pax_and_gnu_names_mixed_like_gnu_tar() {
    if Command::new("tar").arg("--version").output().is_err() {
        skip("GNU tar not found");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let long = b"from-gnu\0".to_vec();
    let pax = pax_record("path", "from-pax");
    let gnu_part = |out: &mut Vec<u8>| {
        out.extend_from_slice(&gnu_header(&E {
            kind: b'L',
            data: &long,
            ..e(b"././@LongLink")
        }));
        out.extend_from_slice(&long);
        pad(out);
    };
    let pax_part = |out: &mut Vec<u8>| {
        out.extend_from_slice(&header(&E {
            kind: b'x',
            data: &pax,
            ..e(b"PaxHeader")
        }));
        out.extend_from_slice(&pax);
        pad(out);
    };
    for pax_first in [false, true] {
        let mut t = Vec::new();
        if pax_first {
            pax_part(&mut t);
            gnu_part(&mut t);
        } else {
            gnu_part(&mut t);
            pax_part(&mut t);
        }
        t.extend_from_slice(&header(&E {
            data: b"z",
            ..e(b"ustar-name")
        }));
        t.extend_from_slice(b"z");
        pad(&mut t);
        t.extend_from_slice(&[0u8; 1024]);
        assert_eq!(
            our_listing(&t),
            gnu_listing(dir.path(), &t),
            "pax_first={pax_first}"
        );
        assert_eq!(our_listing(&t), vec![b"from-pax".to_vec()]);
    }
    // PAX size larger than the ustar size, data hiding a header.
    let mut hidden = header(&E {
        data: b"",
        ..e(b"hidden-entry")
    })
    .to_vec();
    hidden.resize(1024, 0);
    let pax = pax_record("size", &hidden.len().to_string());
    let mut t = Vec::new();
    t.extend_from_slice(&header(&E {
        kind: b'x',
        data: &pax,
        ..e(b"PaxHeader")
    }));
    t.extend_from_slice(&pax);
    pad(&mut t);
    t.extend_from_slice(&header(&E {
        size_field: Some(b"00000000000\0"),
        ..e(b"outer")
    }));
    t.extend_from_slice(&hidden);
    t.extend_from_slice(&header(&E {
        data: b"",
        ..e(b"after")
    }));
    t.extend_from_slice(&[0u8; 1024]);
    assert_eq!(our_listing(&t), gnu_listing(dir.path(), &t));
    assert_eq!(our_listing(&t), vec![b"outer".to_vec(), b"after".to_vec()]);
}

/// Name and size of every entry as `tar -tvf` prints them.
fn gnu_verbose_listing(dir: &Path, data: &[u8]) -> Vec<(Vec<u8>, u64)> {
    String::from_utf8(gnu_tar(
        dir,
        data,
        &["--numeric-owner".as_ref(), "-tvf".as_ref()],
    ))
    .unwrap()
    .lines()
    .map(|l| {
        // mode owner/group size date time name (names here have no spaces)
        let fields: Vec<&str> = l.split_whitespace().collect();
        assert_eq!(fields.len(), 6, "{l}");
        (fields[5].as_bytes().to_vec(), fields[2].parse().unwrap())
    })
    .collect()
}

/// Regular files under `dir`: relative path → content.
fn files_under(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for ent in std::fs::read_dir(&d).unwrap() {
            let p = ent.unwrap().path();
            let m = std::fs::symlink_metadata(&p).unwrap();
            if m.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(dir).unwrap().to_string_lossy().into_owned();
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

#[test]
fn hostile_10_nonzero_ustar_size_disagrees_with_pax_like_gnu_tar() {
    if Command::new("tar").arg("--version").output().is_err() {
        skip("GNU tar not found");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // `outer` has a PAX size and a different, non-zero ustar size. A reader
    // that trusts the ustar size either skips a real entry or takes data for
    // a header; the PAX size wins (GNU tar, Go), so both readers must agree.
    let archive = |pax_size: usize, ustar_size: usize, body: &[u8]| {
        let pax = pax_record("size", &pax_size.to_string());
        let ustar = format!("{ustar_size:011o}\0");
        let mut t = Vec::new();
        t.extend_from_slice(&header(&E {
            kind: b'x',
            data: &pax,
            ..e(b"PaxHeaders/outer")
        }));
        t.extend_from_slice(&pax);
        pad(&mut t);
        t.extend_from_slice(&header(&E {
            size_field: Some(ustar.as_bytes()),
            ..e(b"outer")
        }));
        t.extend_from_slice(body);
        pad(&mut t);
        t.extend_from_slice(&header(&E {
            data: b"after",
            ..e(b"after")
        }));
        t.extend_from_slice(b"after");
        pad(&mut t);
        t.extend_from_slice(&[0u8; 1024]);
        t
    };
    // ustar bigger than PAX: the ustar size would swallow `hidden`.
    let mut bigger = b"outer".to_vec();
    pad(&mut bigger);
    bigger.extend_from_slice(&header(&E {
        data: b"hidden",
        ..e(b"hidden")
    }));
    bigger.extend_from_slice(b"hidden");
    pad(&mut bigger);
    let ustar_bigger = archive(5, bigger.len(), &bigger);
    // ustar smaller than PAX: the ustar size would read `smuggled` (and a
    // path escaping the root) out of outer's data.
    let mut smaller = vec![b'o'; 512];
    smaller.extend_from_slice(&header(&E {
        data: b"",
        ..e(b"../smuggled")
    }));
    let ustar_smaller = archive(smaller.len(), 5, &smaller);

    for (case, t, want) in [
        (
            "ustar bigger",
            &ustar_bigger,
            vec![("outer", 5), ("hidden", 6), ("after", 5)],
        ),
        (
            "ustar smaller",
            &ustar_smaller,
            vec![("outer", 1024), ("after", 5)],
        ),
    ] {
        let mut ours = Vec::new();
        let mut bodies = BTreeMap::new();
        let mut r = rootstrap::archive::tar::TarReader::new(&t[..]);
        while let Some(mut entry) = r.next_entry().unwrap() {
            let mut body = Vec::new();
            entry.read_to_end(&mut body).unwrap();
            assert_eq!(body.len() as u64, entry.header.size, "{case}");
            let path = entry.header.path.clone();
            ours.push((path.clone(), entry.header.size));
            bodies.insert(String::from_utf8(path).unwrap(), body);
        }
        let want: Vec<(Vec<u8>, u64)> = want
            .iter()
            .map(|(n, s)| (n.as_bytes().to_vec(), *s))
            .collect();
        assert_eq!(ours, want, "{case}");
        assert_eq!(ours, gnu_verbose_listing(dir.path(), t), "{case}");

        let gnu_out = dir.path().join("x");
        let _ = std::fs::remove_dir_all(&gnu_out);
        std::fs::create_dir(&gnu_out).unwrap();
        gnu_tar(
            dir.path(),
            t,
            &["-C".as_ref(), gnu_out.as_os_str(), "-xf".as_ref()],
        );
        let theirs = files_under(&gnu_out);
        assert_eq!(bodies, theirs, "{case}");
        // And what each extraction path writes into a rootfs.
        for via in EVERY_PATH {
            let f = Fixture::new();
            f.extract_via(via, t).unwrap();
            assert_eq!(files_under(&f.rootdir), theirs, "{case} {via:?}");
            f.assert_host_untouched();
        }
    }
}

/// A reader producing `len` bytes of `b'a'` without allocating them.
struct Endless(u64);
impl Read for Endless {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = buf.len().min(usize::try_from(self.0).unwrap_or(usize::MAX));
        buf[..n].fill(b'a');
        self.0 -= n as u64;
        Ok(n)
    }
}

#[test]
fn hostile_11_giant_long_name_and_pax_are_bounded() {
    for kind in [b'L', b'K', b'x', b'g'] {
        let size = format!("{:011o}\0", 64u64 << 20);
        let mut h = header(&E {
            kind,
            size_field: Some(size.as_bytes()),
            ..e(b"././@LongLink")
        });
        if kind == b'L' || kind == b'K' {
            h[257..265].copy_from_slice(b"ustar  \0");
            checksum(&mut h);
        }
        let stream = io::Cursor::new(h.to_vec()).chain(Endless(64 << 20));
        let f = Fixture::new();
        let err = extract_tar(&f.root, stream, &ExtractOptions::new("evilpkg"), &|_, _| {
            Ok(())
        })
        .unwrap_err();
        assert!(err.to_string().contains("exceeds"), "{err}");
        assert!(err.to_string().contains("evilpkg"), "{err}");
        f.assert_host_untouched();
    }
}

#[test]
fn hostile_12_malformed_headers() {
    let f = Fixture::new();
    let mut bad_uname = header(&e(b"uname"));
    bad_uname[265..297].fill(b'u');
    checksum(&mut bad_uname);
    let mut bad_sum = header(&e(b"sum"));
    bad_sum[0] = b'S';
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (bad_uname.to_vec(), "uname"),
        (bad_sum.to_vec(), "checksum"),
        (
            header(&E {
                size_field: Some(b"0000000008x\0"),
                ..e(b"size")
            })
            .to_vec(),
            "size",
        ),
        (
            header(&E {
                kind: b'S',
                ..e(b"sparse")
            })
            .to_vec(),
            "type flag",
        ),
    ];
    for (mut t, needle) in cases {
        t.extend_from_slice(&[0u8; 1024]);
        let err = f.extract(&t).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains(needle) && msg.contains("evilpkg"),
            "{msg} lacks {needle}"
        );
    }
    f.assert_host_untouched();
}

// ---------------------------------------------------------------- .deb helpers

fn ar(members: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = b"!<arch>\n".to_vec();
    for (name, data) in members {
        out.extend(
            format!(
                "{name:<16}{:<12}{:<6}{:<6}{:<8}{:<10}`\n",
                0,
                0,
                0,
                "100644",
                data.len()
            )
            .bytes(),
        );
        out.extend_from_slice(data);
        if data.len() % 2 == 1 {
            out.push(b'\n');
        }
    }
    out
}

fn xz(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut enc = liblzma::write::XzEncoder::new(Vec::new(), 6);
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

fn control_tar(control: &str) -> Vec<u8> {
    tar(&[
        E {
            kind: b'5',
            mode: 0o755,
            ..e(b"./")
        },
        E {
            data: control.as_bytes(),
            ..e(b"./control")
        },
    ])
}

/// Writes a .deb into its own temp dir (not next to the rootfs, whose
/// surroundings the hostile tests snapshot).
fn write_deb(name: &str, bytes: &[u8]) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join(name);
    std::fs::write(&p, bytes).unwrap();
    (dir, p)
}

const CONTROL: &str = "Package: evilpkg\nVersion: 1\nArchitecture: all\nMaintainer: x <x@x>\nInstalled-Size: 1\nDescription: d\n";

#[test]
fn hostile_13_malformed_ar_and_member_order() {
    let c = xz(&control_tar(CONTROL));
    let d = xz(&tar(&[E {
        data: b"x",
        ..e(b"./file")
    }]));
    let mut bad_header = ar(&[("debian-binary", b"2.0\n")]);
    bad_header[8 + 48] = b'z';
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (bad_header, "debian-binary"),
        (
            ar(&[("control.tar.xz", &c), ("data.tar.xz", &d)]),
            "not debian-binary",
        ),
        (
            ar(&[
                ("control.tar.xz", &c),
                ("debian-binary", b"2.0\n"),
                ("data.tar.xz", &d),
            ]),
            "not debian-binary",
        ),
        (
            ar(&[
                ("debian-binary", b"2.0\n"),
                ("data.tar.xz", &d),
                ("control.tar.xz", &c),
            ]),
            "unexpected member",
        ),
        (
            ar(&[
                ("debian-binary", b"2.0\n"),
                ("control.tar.xz", &c),
                ("evil", b"x"),
                ("data.tar.xz", &d),
            ]),
            "unexpected member",
        ),
        (
            ar(&[
                ("debian-binary", b"2.0\n"),
                ("control.tar.xz", &c),
                ("data.tar.bz2", &d),
            ]),
            "unexpected member",
        ),
        (b"!<arch>\ngarbage".to_vec(), "truncated"),
    ];
    for (i, (deb, needle)) in cases.into_iter().enumerate() {
        let f = Fixture::new();
        let (_keep, path) = write_deb(&format!("case{i}.deb"), &deb);
        let err = unpack_deb(&f.root, &path, &UnpackOptions::default(), &|_, _| {
            Ok(Claimed::Write)
        })
        .unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains(needle) && msg.contains(&format!("case{i}.deb")),
            "case {i}: {msg} lacks {needle}"
        );
        assert!(!f.rootdir.join("file").exists(), "case {i}: data extracted");
    }
}

#[test]
fn hostile_14_decompression_bomb_is_capped() {
    // 72 MiB of zeros: past the default cap of a package claiming 1 KiB
    // (64 MiB of headroom + 4 × Installed-Size), under that of one claiming
    // 4 MiB, and far past an explicit 8 MiB cap; about 11 KiB as xz.
    let zeros = vec![0u8; 72 << 20];
    let bomb_tar = {
        let mut t = header(&E {
            size_field: Some(format!("{:011o}\0", zeros.len()).as_bytes()),
            ..e(b"./bomb")
        })
        .to_vec();
        t.extend_from_slice(&zeros);
        t.extend_from_slice(&[0u8; 1024]);
        t
    };
    let bomb = xz(&bomb_tar);
    assert!(bomb.len() < 1 << 20);
    let deb_claiming = |installed_kib: u64| {
        let control = CONTROL.replace(
            "Installed-Size: 1\n",
            &format!("Installed-Size: {installed_kib}\n"),
        );
        ar(&[
            ("debian-binary", b"2.0\n"),
            ("control.tar.xz", &xz(&control_tar(&control))),
            ("data.tar.xz", &bomb),
        ])
    };
    let (_keep, small) = write_deb("bomb.deb", &deb_claiming(1));
    let refused = |path: &Path, opts: &UnpackOptions| {
        let f = Fixture::new();
        let err = unpack_deb(&f.root, path, opts, &|_, _| Ok(Claimed::Write)).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("exceeds") && msg.contains("evilpkg") && msg.contains("bomb"),
            "{msg}"
        );
        f.assert_host_untouched();
    };
    refused(
        &small,
        &UnpackOptions {
            data_limit: Some(8 << 20),
            ..UnpackOptions::default()
        },
    );
    // The default cap, the one builds use, follows the package's own claim.
    refused(&small, &UnpackOptions::default());
    let (_keep, honest) = write_deb("honest.deb", &deb_claiming(4096));
    let f = Fixture::new();
    unpack_deb(&f.root, &honest, &UnpackOptions::default(), &|_, _| {
        Ok(Claimed::Write)
    })
    .unwrap();
    assert_eq!(
        std::fs::metadata(f.rootdir.join("bomb")).unwrap().len(),
        72 << 20
    );
}

// ---------------------------------------------------------------- HOSTILE 16

#[test]
fn hostile_16_overwriting_another_packages_file() {
    let f = Fixture::new();
    std::fs::create_dir(f.rootdir.join("bin")).unwrap();
    std::fs::write(f.rootdir.join("bin/sh"), b"dash").unwrap();
    let owned = RelPath::from_archive(b"bin/sh").unwrap();
    let claim = |p: &RelPath, kind: EntryKind| {
        if kind != EntryKind::Dir && *p == owned {
            Err(format!(
                "trying to overwrite {p}, which is also in package dash"
            ))
        } else {
            Ok(())
        }
    };
    let t = tar(&[
        E {
            kind: b'5',
            mode: 0o755,
            ..e(b"./bin/")
        },
        E {
            data: b"evil",
            ..e(b"./bin/sh")
        },
    ]);
    let err = f.extract_with(&t, &claim).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("evilpkg") && msg.contains("./bin/sh") && msg.contains("dash"),
        "{msg}"
    );
    assert_eq!(std::fs::read(f.rootdir.join("bin/sh")).unwrap(), b"dash");
    f.assert_host_untouched();
}

// ---------------------------------------------------------------- real .deb vs dpkg

fn have(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// Builds a package with dpkg-deb: conffile, hard link, symlink, setuid
/// file, maintainer scripts, triggers, Multi-Arch: same.
fn build_test_deb(dir: &Path, name: &str, multi_arch: &str) -> PathBuf {
    let pkg = dir.join(format!("{name}-src"));
    for d in [
        "DEBIAN",
        &format!("etc/{name}"),
        "usr/bin",
        &format!("usr/share/doc/{name}"),
        "var/empty",
    ] {
        std::fs::create_dir_all(pkg.join(d)).unwrap();
    }
    std::fs::write(pkg.join(format!("etc/{name}/{name}.conf")), b"setting=1\n").unwrap();
    let bin = pkg.join(format!("usr/bin/{name}"));
    std::fs::write(&bin, b"#!/bin/sh\necho demo\n").unwrap();
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o4755)).unwrap();
    std::fs::hard_link(&bin, pkg.join(format!("usr/bin/{name}2"))).unwrap();
    std::os::unix::fs::symlink(name, pkg.join(format!("usr/bin/{name}-link"))).unwrap();
    std::fs::write(
        pkg.join(format!("usr/share/doc/{name}/README")),
        "x".repeat(5000),
    )
    .unwrap();
    std::fs::write(
        pkg.join("DEBIAN/control"),
        format!(
            "Package: {name}\nVersion: 1:2.0-3\nArchitecture: amd64\nMaintainer: T <t@example.org>\n\
             Installed-Size: 20\nPre-Depends: libc6 (>= 2.34)\nDepends: base-files,  dpkg(>=1.20)|apt\n\
             Section: misc\nPriority: optional\nMulti-Arch: {multi_arch}\nHomepage: https://example.org\n\
             Built-Using: foo (= 1)\nEssential: yes\nDescription: demo package\n Long text.\n .\n More.\n"
        ),
    )
    .unwrap();
    std::fs::write(
        pkg.join("DEBIAN/conffiles"),
        format!("/etc/{name}/{name}.conf\n"),
    )
    .unwrap();
    std::fs::write(
        pkg.join("DEBIAN/triggers"),
        format!("interest-noawait demo-trigger\ninterest /usr/share/{name}\n"),
    )
    .unwrap();
    for script in ["preinst", "postinst", "prerm", "postrm"] {
        std::fs::write(pkg.join("DEBIAN").join(script), b"#!/bin/sh\nexit 0\n").unwrap();
        std::fs::set_permissions(
            pkg.join("DEBIAN").join(script),
            std::fs::Permissions::from_mode(0o755),
        )
        .unwrap();
    }
    let deb = dir.join(format!("{name}.deb"));
    let st = Command::new("dpkg-deb")
        .args(["--root-owner-group", "-Zxz", "--build"])
        .arg(&pkg)
        .arg(&deb)
        .output()
        .unwrap();
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
    deb
}

/// Relative path → (type, mode, content or link target) for a whole tree.
fn tree(root: &Path, skip: &str) -> BTreeMap<String, (String, u32, Vec<u8>)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for ent in std::fs::read_dir(&d).unwrap() {
            let p = ent.unwrap().path();
            let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            if rel.starts_with(skip) {
                continue;
            }
            let m = std::fs::symlink_metadata(&p).unwrap();
            let (kind, content) = if m.is_symlink() {
                (
                    "link",
                    std::fs::read_link(&p)
                        .unwrap()
                        .into_os_string()
                        .into_encoded_bytes(),
                )
            } else if m.is_dir() {
                stack.push(p.clone());
                ("dir", Vec::new())
            } else {
                ("file", std::fs::read(&p).unwrap())
            };
            out.insert(rel, (kind.to_string(), m.mode() & 0o7777, content));
        }
    }
    out
}

#[test]
fn deb_roundtrip_matches_real_dpkg() {
    if !have("dpkg-deb") || !have("dpkg") {
        skip("dpkg/dpkg-deb not found");
        return;
    }
    if !rustix::process::geteuid().is_root() {
        skip("comparing with dpkg --root needs root");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let debs = [
        build_test_deb(dir.path(), "demo", "foreign"),
        build_test_deb(dir.path(), "libdemo", "same"),
    ];
    compare_with_dpkg(dir.path(), &debs);
    let ours = dir.path().join("ours");
    let ino = |p: &Path| std::fs::metadata(p).unwrap().ino();
    assert_eq!(
        ino(&ours.join("usr/bin/demo")),
        ino(&ours.join("usr/bin/demo2"))
    );
    assert_eq!(
        std::fs::read_to_string(ours.join("var/lib/dpkg/triggers/demo-trigger")).unwrap(),
        "demo/noawait\nlibdemo:amd64/noawait\n"
    );
}

/// Real packages: those named in `ROOTSTRAP_TEST_DEBS` (colon-separated),
/// else whatever is in /var/cache/apt/archives. Packages with a `preinst`
/// are left out: `dpkg --root --unpack` would run it inside an empty root.
#[test]
fn real_debs_match_dpkg() {
    if !have("dpkg") || !rustix::process::geteuid().is_root() {
        skip("dpkg not found or not root");
        return;
    }
    let candidates: Vec<PathBuf> = match std::env::var_os("ROOTSTRAP_TEST_DEBS") {
        Some(list) => std::env::split_paths(&list).collect(),
        None => std::fs::read_dir("/var/cache/apt/archives")
            .map(|rd| {
                rd.filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.extension().is_some_and(|x| x == "deb"))
                    .collect()
            })
            .unwrap_or_default(),
    };
    let debs: Vec<PathBuf> = candidates
        .into_iter()
        .filter(|p| {
            let Ok(f) = std::fs::File::open(p) else {
                return false;
            };
            rootstrap::distro::deb::debfile::DebFile::read(io::BufReader::new(f), "probe")
                .map(|d| d.control.get("preinst").is_none())
                .unwrap_or(false)
        })
        .take(40)
        .collect();
    if debs.is_empty() {
        skip("no real .deb without preinst found (set ROOTSTRAP_TEST_DEBS)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    compare_with_dpkg(dir.path(), &debs);
}

/// Unpacks `debs` with us (in parallel) and with `dpkg --root --unpack`,
/// and compares the database and the unpacked trees.
fn compare_with_dpkg(dir: &Path, debs: &[PathBuf]) {
    // Ours: unpack in parallel, then write the database.
    let ours = dir.join("ours");
    std::fs::create_dir(&ours).unwrap();
    let root = Root::open(&ours).unwrap();
    let unpacked: Vec<_> = {
        use rayon::prelude::*;
        debs.par_iter()
            .map(|d| {
                unpack_deb(&root, d, &UnpackOptions::default(), &|_, _| {
                    Ok(Claimed::Write)
                })
            })
            .collect::<Result<_, _>>()
            .unwrap()
    };
    write_database(&root, &unpacked, "amd64").unwrap();

    // Real dpkg.
    let theirs = dir.join("theirs");
    for d in [
        "var/lib/dpkg/info",
        "var/lib/dpkg/updates",
        "var/lib/dpkg/triggers",
    ] {
        std::fs::create_dir_all(theirs.join(d)).unwrap();
    }
    std::fs::write(theirs.join("var/lib/dpkg/status"), b"").unwrap();
    let out = Command::new("dpkg")
        .arg(format!("--root={}", theirs.display()))
        .args(["--force-all", "--force-not-root", "--unpack"])
        .args(debs)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "dpkg --unpack failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Status: dpkg may order packages differently; compare stanza by stanza.
    let stanzas = |p: &Path| -> BTreeMap<String, String> {
        std::fs::read_to_string(p.join("var/lib/dpkg/status"))
            .unwrap()
            .split("\n\n")
            .filter(|s| !s.trim().is_empty())
            .map(|s| {
                (
                    s.lines().next().unwrap().to_string(),
                    format!("{}\n", s.trim_end()),
                )
            })
            .collect()
    };
    assert_eq!(stanzas(&ours), stanzas(&theirs));

    // info/: every file dpkg wrote, byte for byte, same modes.
    let info_ours = tree(&ours.join("var/lib/dpkg/info"), "\0");
    let info_theirs = tree(&theirs.join("var/lib/dpkg/info"), "\0");
    assert_eq!(
        info_ours.keys().collect::<Vec<_>>(),
        info_theirs.keys().collect::<Vec<_>>()
    );
    for (k, v) in &info_theirs {
        assert_eq!(&info_ours[k], v, "info/{k}");
    }
    // triggers/: everything but dpkg's lock file.
    assert_eq!(
        tree(&ours.join("var/lib/dpkg/triggers"), "Lock"),
        tree(&theirs.join("var/lib/dpkg/triggers"), "Lock")
    );

    // The unpacked tree (outside dpkg's database) is identical, including
    // conffiles left as .dpkg-new, modes and hard links.
    assert_eq!(tree(&ours, "var/lib/dpkg"), tree(&theirs, "var/lib/dpkg"));
}

#[test]
fn parallel_extraction_into_one_root_shares_directories() {
    use rayon::prelude::*;
    let f = Fixture::new();
    let names: Vec<String> = (0..16).map(|i| format!("pkg{i}")).collect();
    let archives: Vec<Vec<u8>> = names
        .iter()
        .map(|n| {
            let file = format!("./usr/share/doc/common/deep/{n}");
            let own_dir = format!("./usr/lib/{n}/");
            tar(&[
                E {
                    kind: b'5',
                    mode: 0o755,
                    ..e(b"./usr/")
                },
                E {
                    kind: b'5',
                    mode: 0o755,
                    ..e(b"./usr/share/doc/common/deep/")
                },
                E {
                    data: n.as_bytes(),
                    ..e(file.as_bytes())
                },
                E {
                    kind: b'5',
                    mode: 0o755,
                    ..e(own_dir.as_bytes())
                },
            ])
        })
        .collect();
    names
        .par_iter()
        .zip(archives.par_iter())
        .for_each(|(n, t)| {
            let opts = ExtractOptions::new(n.clone());
            extract_tar(&f.root, &t[..], &opts, &|_, _| Ok(())).unwrap();
        });
    for n in &names {
        let p = f.rootdir.join("usr/share/doc/common/deep").join(n);
        assert_eq!(std::fs::read(p).unwrap(), n.as_bytes());
        assert!(f.rootdir.join("usr/lib").join(n).is_dir());
    }
    f.assert_host_untouched();
}

#[test]
fn symlink_loops_and_files_used_as_directories_fail_cleanly() {
    let f = Fixture::new();
    let t = tar(&[
        E {
            kind: b'2',
            link: b"loop",
            ..e(b"loop")
        },
        E {
            data: b"x",
            ..e(b"loop/x")
        },
    ]);
    f.expect_rejected(&t, "loop/x");
    let f = Fixture::new();
    let t = tar(&[
        E {
            data: b"x",
            ..e(b"file")
        },
        E {
            data: b"y",
            ..e(b"file/x")
        },
    ]);
    f.expect_rejected(&t, "file/x");
    assert_eq!(std::fs::read(f.rootdir.join("file")).unwrap(), b"x");
}
