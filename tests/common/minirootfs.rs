//! Rebuilds an official Alpine minirootfs tarball (../shared/alpine-minirootfs)
//! as a signed repository of real v2 packages: each record of the tarball's
//! `lib/apk/db/installed` becomes a `.apk` whose `.PKGINFO` carries the
//! record's fields, whose data is the record's directories and files taken
//! from the tarball's tree (checked against the record's `Z:` checksums),
//! and whose scripts come from `lib/apk/db/scripts.tar`. An `alpine-release`
//! package holds the release files no package owns (`/etc/os-release`,
//! `/etc/alpine-release`, `/etc/issue`, `/etc/secfixes.d/alpine`), as
//! Alpine's own `alpine-release` package does.
//!
//! The packages keep Alpine's binaries and scripts; only the signatures (a
//! fresh test key) and so `C:`/`S:` differ from Alpine's.
//!
//! Shared with `examples/make-apk-repo.rs` through `#[path]`.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::Path;

use base64::Engine as _;
use rootstrap::distro::apk::tar::{parse_entries, EntryKind};
use sha1::{Digest as _, Sha1};

use super::apkrepo::{
    build_package, BuiltPackage, Entry, FixtureRepo, Node, PackageMeta, PackageSpec, SigningKey,
};

/// The tarballs the shared directory holds: (file name, apk release dir).
pub const X86_64_3_19: &str = "alpine-minirootfs-3.19.4-x86_64.tar.gz";
pub const AARCH64_3_19: &str = "alpine-minirootfs-3.19.4-aarch64.tar.gz";
pub const X86_64_EDGE: &str = "alpine-minirootfs-20240923-x86_64.tar.gz";

/// Files no package owns that the official build takes from the release's
/// `alpine-release` package (unpacked without registering it).
pub const RELEASE_FILES: &[&str] = &[
    "etc/alpine-release",
    "etc/issue",
    "etc/os-release",
    "etc/secfixes.d/alpine",
    "usr/lib/os-release",
];

/// One path of the tarball's tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeEntry {
    pub kind: EntryKind,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub link: String,
    pub content: Vec<u8>,
}

/// A minirootfs tarball, read.
pub struct Minirootfs {
    /// Paths without `./` or a trailing `/`; the root is `""`.
    pub tree: BTreeMap<String, TreeEntry>,
    pub arch: String,
    /// `/etc/alpine-release` (`3.19.4`, `3.21.0_alpha20240923`).
    pub release_version: String,
    /// `/etc/apk/world`, one entry a line.
    pub world: Vec<String>,
}

impl Minirootfs {
    pub fn load(tarball: &Path) -> Result<Minirootfs, String> {
        let mut gz = Vec::new();
        flate2::read::GzDecoder::new(
            std::fs::File::open(tarball).map_err(|e| format!("{}: {e}", tarball.display()))?,
        )
        .read_to_end(&mut gz)
        .map_err(|e| format!("{}: {e}", tarball.display()))?;
        Self::from_tar(&tarball.display().to_string(), &gz)
    }

    pub fn from_tar(what: &str, tar: &[u8]) -> Result<Minirootfs, String> {
        let entries = parse_entries(what, tar).map_err(|e| e.to_string())?;
        let mut tree = BTreeMap::new();
        for e in entries {
            let path = e
                .path
                .trim_start_matches("./")
                .trim_end_matches('/')
                .to_owned();
            let path = if path == "." { String::new() } else { path };
            tree.insert(
                path,
                TreeEntry {
                    kind: e.kind,
                    mode: e.mode & 0o7777,
                    uid: e.uid,
                    gid: e.gid,
                    link: e.link_name.clone(),
                    content: tar[e.data.clone()].to_vec(),
                },
            );
        }
        let text = |p: &str| -> Result<String, String> {
            tree.get(p)
                .map(|e: &TreeEntry| String::from_utf8_lossy(&e.content).into_owned())
                .ok_or_else(|| format!("{what}: no {p}"))
        };
        let arch = text("etc/apk/arch")?.trim().to_owned();
        let release_version = text("etc/alpine-release")?.trim().to_owned();
        let world = text("etc/apk/world")?
            .split_whitespace()
            .map(str::to_owned)
            .collect();
        Ok(Minirootfs {
            tree,
            arch,
            release_version,
            world,
        })
    }

    pub fn file(&self, path: &str) -> Option<&[u8]> {
        self.tree.get(path).map(|e| e.content.as_slice())
    }

    /// `lib/apk/db/installed` as text.
    pub fn installed(&self) -> String {
        String::from_utf8_lossy(self.file("lib/apk/db/installed").unwrap_or_default()).into_owned()
    }

    /// `lib/apk/db/scripts.tar`: (entry name, mtime, content), in order.
    pub fn scripts(&self) -> Result<Vec<(String, u64, Vec<u8>)>, String> {
        let tar = self.file("lib/apk/db/scripts.tar").unwrap_or_default();
        Ok(parse_entries("scripts.tar", tar)
            .map_err(|e| e.to_string())?
            .into_iter()
            .map(|e| (e.path.clone(), e.mtime, tar[e.data.clone()].to_vec()))
            .collect())
    }

    /// `lib/apk/db/triggers`: package identity → globs.
    pub fn triggers(&self) -> BTreeMap<String, Vec<String>> {
        let text = String::from_utf8_lossy(self.file("lib/apk/db/triggers").unwrap_or_default())
            .into_owned();
        text.lines()
            .filter_map(|l| {
                let mut words = l.split_whitespace();
                let id = words.next()?.to_owned();
                Some((id, words.map(str::to_owned).collect()))
            })
            .collect()
    }

    /// Every path some record of the installed database owns (directories
    /// and files).
    pub fn owned_paths(&self) -> Result<BTreeSet<String>, String> {
        let mut owned = BTreeSet::new();
        for rec in parse_records(&self.installed())? {
            for d in &rec.dirs {
                owned.insert(d.path.clone());
                for f in &d.files {
                    owned.insert(join(&d.path, &f.name));
                }
            }
        }
        Ok(owned)
    }
}

fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_owned()
    } else {
        format!("{dir}/{name}")
    }
}

/// `uid:gid:mode` of an `M:` or `a:` line.
#[derive(Debug, Clone, Copy)]
struct Acl {
    uid: u32,
    gid: u32,
    mode: u32,
}

fn parse_acl(v: &str) -> Result<Acl, String> {
    let mut it = v.split(':');
    let mut next = || it.next().ok_or_else(|| format!("bad ACL {v:?}"));
    let uid = next()?.parse().map_err(|_| format!("bad ACL {v:?}"))?;
    let gid = next()?.parse().map_err(|_| format!("bad ACL {v:?}"))?;
    let mode = u32::from_str_radix(next()?, 8).map_err(|_| format!("bad ACL {v:?}"))?;
    Ok(Acl { uid, gid, mode })
}

#[derive(Debug, Default)]
struct RecordFile {
    name: String,
    acl: Option<Acl>,
    checksum: String,
}

#[derive(Debug, Default)]
struct RecordDir {
    path: String,
    acl: Option<Acl>,
    files: Vec<RecordFile>,
}

/// One record of `lib/apk/db/installed`: its package fields in order, and
/// its directories and files.
#[derive(Debug, Default)]
struct Record {
    fields: Vec<(char, String)>,
    dirs: Vec<RecordDir>,
}

impl Record {
    fn get(&self, key: char) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.as_str())
    }

    fn words(&self, key: char) -> Vec<String> {
        self.get(key)
            .map(|v| v.split_whitespace().map(str::to_owned).collect())
            .unwrap_or_default()
    }
}

fn parse_records(text: &str) -> Result<Vec<Record>, String> {
    let mut records = Vec::new();
    for (n, block) in text.split("\n\n").enumerate() {
        if block.trim().is_empty() {
            continue;
        }
        let mut rec = Record::default();
        for line in block.lines() {
            let (key, value) = line
                .split_once(':')
                .filter(|(k, _)| k.len() == 1)
                .ok_or_else(|| format!("installed record {}: bad line {line:?}", n + 1))?;
            let key = key.chars().next().unwrap_or(' ');
            let in_dir = || format!("installed record {}: {key}: before any F:", n + 1);
            match key {
                'F' => rec.dirs.push(RecordDir {
                    path: value.to_owned(),
                    ..RecordDir::default()
                }),
                'M' => rec.dirs.last_mut().ok_or_else(in_dir)?.acl = Some(parse_acl(value)?),
                'R' => rec
                    .dirs
                    .last_mut()
                    .ok_or_else(in_dir)?
                    .files
                    .push(RecordFile {
                        name: value.to_owned(),
                        ..RecordFile::default()
                    }),
                'a' | 'Z' => {
                    let file = rec
                        .dirs
                        .last_mut()
                        .and_then(|d| d.files.last_mut())
                        .ok_or_else(in_dir)?;
                    if key == 'a' {
                        file.acl = Some(parse_acl(value)?);
                    } else {
                        file.checksum = value.to_owned();
                    }
                }
                _ => rec.fields.push((key, value.to_owned())),
            }
        }
        records.push(rec);
    }
    Ok(records)
}

fn q1_sha1(data: &[u8]) -> String {
    format!(
        "Q1{}",
        base64::engine::general_purpose::STANDARD.encode(Sha1::digest(data))
    )
}

/// apk's script names, in the order apk keeps them (its script types).
pub const SCRIPT_ORDER: &[&str] = &[
    ".pre-install",
    ".post-install",
    ".pre-deinstall",
    ".post-deinstall",
    ".pre-upgrade",
    ".post-upgrade",
    ".trigger",
];

/// The packages of the minirootfs's installed database, rebuilt as specs.
/// A file whose content in the tree does not match its record's `Z:` is an
/// error naming the package and the file.
pub fn package_specs(m: &Minirootfs) -> Result<Vec<PackageSpec>, String> {
    let scripts = m.scripts()?;
    let triggers = m.triggers();
    let mut specs = Vec::new();
    for rec in parse_records(&m.installed())? {
        let field = |k: char| -> Result<String, String> {
            rec.get(k)
                .map(str::to_owned)
                .ok_or_else(|| format!("installed record without {k}: {:?}", rec.get('P')))
        };
        let name = field('P')?;
        let version = field('V')?;
        let mut spec = PackageSpec::new(&name, &version, &field('A')?);
        spec.description = field('T')?;
        spec.depends = rec.words('D');
        spec.provides = rec.words('p');
        spec.provider_priority = rec.get('k').and_then(|k| k.parse().ok());
        spec.meta = Some(PackageMeta {
            url: field('U')?,
            license: field('L')?,
            origin: field('o')?,
            maintainer: field('m')?,
            build_time: field('t')?.parse().map_err(|_| format!("{name}: bad t:"))?,
            commit: rec.get('c').map(str::to_owned),
            installed_size: field('I')?.parse().map_err(|_| format!("{name}: bad I:"))?,
            replaces: rec.words('r'),
            install_if: rec.words('i'),
            replaces_priority: rec.get('q').and_then(|q| q.parse().ok()),
        });
        let id = field('C')?;
        spec.triggers = triggers.get(&id).cloned().unwrap_or_default();
        let prefix = format!("{name}-{version}.{id}.");
        let mut own: Vec<(String, Vec<u8>)> = scripts
            .iter()
            .filter_map(|(n, _, c)| {
                n.strip_prefix(&prefix)
                    .map(|s| (format!(".{s}"), c.clone()))
            })
            .collect();
        own.sort_by_key(|(n, _)| SCRIPT_ORDER.iter().position(|s| s == n));
        spec.scripts = own;
        spec.entries = record_entries(m, &name, &rec)?;
        specs.push(spec);
    }
    Ok(specs)
}

/// The data entries of one record, in the record's order (directory, then
/// its files), so that apk records them back in the same order.
fn record_entries(m: &Minirootfs, package: &str, rec: &Record) -> Result<Vec<Entry>, String> {
    let mut entries = Vec::new();
    for d in &rec.dirs {
        let acl = d.acl.unwrap_or(Acl {
            uid: 0,
            gid: 0,
            mode: 0o755,
        });
        entries.push(Entry {
            path: d.path.clone(),
            node: Node::Dir,
            mode: acl.mode,
            uid: acl.uid,
            gid: acl.gid,
        });
        for f in &d.files {
            let path = join(&d.path, &f.name);
            let t = m.tree.get(&path).ok_or_else(|| {
                format!("{package}: /{path} is in its record but not in the tree")
            })?;
            let (node, sum_of) = match t.kind {
                EntryKind::File => (Node::File(t.content.clone()), t.content.as_slice()),
                EntryKind::Symlink => (Node::Symlink(t.link.clone()), t.link.as_bytes()),
                other => return Err(format!("{package}: /{path}: unexpected {other:?}")),
            };
            let packaged = packaged_content(&path, sum_of, &f.checksum);
            let (node, sum_of) = match (node, &packaged) {
                (Node::File(_), Some(c)) => (Node::File(c.clone()), c.as_slice()),
                (node, _) => (node, sum_of),
            };
            if q1_sha1(sum_of) != f.checksum {
                return Err(format!(
                    "{package}: /{path}: the tree's content does not match the record's Z:{}",
                    f.checksum
                ));
            }
            let acl = f.acl.unwrap_or(Acl {
                uid: 0,
                gid: 0,
                mode: 0o644,
            });
            entries.push(Entry {
                path,
                node,
                mode: acl.mode,
                uid: acl.uid,
                gid: acl.gid,
            });
        }
    }
    Ok(entries)
}

/// The official build changes one packaged file after installing:
/// `/etc/shadow`, where it locks root's empty password (`root::` becomes
/// `root:*:`). Returns the packaged content when the record's checksum
/// proves it.
fn packaged_content(path: &str, tree: &[u8], checksum: &str) -> Option<Vec<u8>> {
    if path != "etc/shadow" || q1_sha1(tree) == checksum {
        return None;
    }
    let text = String::from_utf8_lossy(tree);
    let rest = text.strip_prefix("root:*:")?;
    let original = format!("root::{rest}").into_bytes();
    (q1_sha1(&original) == checksum).then_some(original)
}

/// `alpine-release`: the release files of the tree that no package owns,
/// with their parent directories.
pub fn release_package(m: &Minirootfs) -> Result<PackageSpec, String> {
    let owned = m.owned_paths()?;
    let mut spec = PackageSpec::new(
        "alpine-release",
        &format!("{}-r0", m.release_version),
        &m.arch,
    );
    spec.description = "Alpine release data".into();
    let mut dirs = BTreeSet::new();
    let mut files = Vec::new();
    for &p in RELEASE_FILES {
        let Some(t) = m.tree.get(p) else { continue };
        if owned.contains(p) {
            continue;
        }
        let mut parent = Path::new(p).parent();
        while let Some(d) = parent.filter(|d| !d.as_os_str().is_empty()) {
            dirs.insert(d.to_string_lossy().into_owned());
            parent = d.parent();
        }
        let node = match t.kind {
            EntryKind::Symlink => Node::Symlink(t.link.clone()),
            _ => Node::File(t.content.clone()),
        };
        files.push(Entry {
            path: p.to_owned(),
            node,
            mode: t.mode,
            uid: t.uid,
            gid: t.gid,
        });
    }
    spec.entries = dirs
        .into_iter()
        .map(|d| {
            let t = &m.tree[&d];
            Entry {
                path: d.clone(),
                node: Node::Dir,
                mode: t.mode,
                uid: t.uid,
                gid: t.gid,
            }
        })
        .chain(files)
        .collect();
    spec.meta = Some(PackageMeta {
        url: "https://alpinelinux.org".into(),
        license: "MIT".into(),
        origin: "alpine-base".into(),
        maintainer: "rootstrap test".into(),
        build_time: super::apkrepo::BUILD_TIME,
        installed_size: 4096,
        ..PackageMeta::default()
    });
    Ok(spec)
}

/// Writes the minirootfs's packages (plus `alpine-release` and `extra`) as a
/// signed repository `<out>/<release>/main/<arch>/` with its public key
/// under `<out>/keys`.
pub fn write_repo(
    out: &Path,
    release: &str,
    m: &Minirootfs,
    extra: &[PackageSpec],
) -> Result<FixtureRepo, String> {
    let key = SigningKey::generate(&format!(
        "rootstrap-test-{:08x}.rsa.pub",
        rand::random::<u32>()
    ));
    write_repo_signed(out, release, m, extra, key)
}

/// A served package the minirootfs does not install (`apk add` material).
pub fn hello_package(arch: &str) -> PackageSpec {
    let mut hello = PackageSpec::new("hello-rootstrap", "1.0-r0", arch);
    hello.depends = vec!["/bin/sh".into()];
    hello.entries = vec![
        super::apkrepo::dir("usr", 0o755),
        super::apkrepo::dir("usr/bin", 0o755),
        super::apkrepo::file(
            "usr/bin/hello-rootstrap",
            0o755,
            b"#!/bin/sh\necho hello from a served package\n",
        ),
    ];
    hello
}

/// The next build of a package: the same contents, `-rN` one higher.
pub fn next_build(spec: &PackageSpec) -> PackageSpec {
    let mut newer = spec.clone();
    newer.version = match spec.version.rsplit_once("-r") {
        Some((v, r)) => format!("{v}-r{}", r.parse::<u64>().unwrap_or(0) + 1),
        None => format!("{}-r1", spec.version),
    };
    newer
}

/// [`write_repo`] signed with a given key (a repository rewritten with the
/// same key keeps every package's bytes and `C:` identity).
pub fn write_repo_signed(
    out: &Path,
    release: &str,
    m: &Minirootfs,
    extra: &[PackageSpec],
    key: SigningKey,
) -> Result<FixtureRepo, String> {
    let mut specs = package_specs(m)?;
    specs.push(release_package(m)?);
    specs.extend(extra.iter().cloned());
    write_specs(out, release, &m.arch, &specs, key)
}

/// Builds `specs` into a signed repository `<out>/<release>/main/<arch>/`
/// with its public key under `<out>/keys`.
pub fn write_specs(
    out: &Path,
    release: &str,
    arch: &str,
    specs: &[PackageSpec],
    key: SigningKey,
) -> Result<FixtureRepo, String> {
    let arch_dir = out.join(release).join("main").join(arch);
    std::fs::create_dir_all(&arch_dir).map_err(|e| format!("{}: {e}", arch_dir.display()))?;
    let keys_dir = out.join("keys");
    key.write_public(&keys_dir)
        .map_err(|e| format!("{}: {e}", keys_dir.display()))?;
    let mut packages: Vec<BuiltPackage> = Vec::new();
    for spec in specs {
        let built = build_package(spec, Some(&key));
        std::fs::write(arch_dir.join(spec.file_name()), &built.bytes)
            .map_err(|e| format!("{}: {e}", spec.file_name()))?;
        packages.push(built);
    }
    let repo = FixtureRepo {
        root: out.to_owned(),
        arch_dir,
        keys_dir,
        key,
        packages,
    };
    repo.write_index(Some(&repo.key))
        .map_err(|e| format!("APKINDEX.tar.gz: {e}"))?;
    Ok(repo)
}
