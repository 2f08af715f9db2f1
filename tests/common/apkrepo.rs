//! Generates a real Alpine repository at test time: v2 `.apk` files (three
//! gzip members: `.SIGN.RSA.<key>` over the control member, control tar with
//! `.PKGINFO` incl. `datahash` and scripts, data tar whose entries carry
//! `APK-TOOLS.checksum.SHA1` PAX records), a signed `APKINDEX.tar.gz`, and
//! the public key — laid out as a mirror: `<out>/<release>/<repo>/<arch>/`.
//!
//! [`write_minirootfs_repo`] builds a runnable minirootfs-shaped system
//! around a static busybox taken from the host. It is a fixture, named
//! honestly: its `apk-tools` package has no apk binary, and its `musl`
//! package provides the soname but ships no libc (busybox is static).
//!
//! Shared with `examples/make-apk-repo.rs` through `#[path]`.
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};

use flate2::{write::GzEncoder, Compression};
use rootstrap::distro::apk::Checksum;
use rsa::pkcs8::{EncodePublicKey, LineEnding};
use rsa::{Pkcs1v15Sign, RsaPrivateKey};
use sha1::{Digest as _, Sha1};
use sha2::Sha256;

/// Build time recorded in every fixture package (and so the image epoch).
pub const BUILD_TIME: u64 = 1_700_000_000;

/// An RSA signing key, named as apk names keys (the public key's file name).
pub struct SigningKey {
    pub name: String,
    pub private: RsaPrivateKey,
}

impl SigningKey {
    pub fn generate(name: &str) -> SigningKey {
        let private =
            RsaPrivateKey::new(&mut rand::thread_rng(), 2048).expect("RSA key generation");
        SigningKey {
            name: name.to_owned(),
            private,
        }
    }

    /// The key kept in `path` (PKCS#8 PEM), or a new one written there; named
    /// after its public key, so the same file gives the same name.
    pub fn load_or_generate(path: &Path) -> std::io::Result<SigningKey> {
        use rsa::pkcs8::{DecodePrivateKey, EncodePrivateKey};
        let private = match std::fs::read_to_string(path) {
            Ok(pem) => RsaPrivateKey::from_pkcs8_pem(&pem)
                .map_err(|e| std::io::Error::other(format!("{}: {e}", path.display())))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key =
                    RsaPrivateKey::new(&mut rand::thread_rng(), 2048).expect("RSA key generation");
                let pem = key.to_pkcs8_pem(LineEnding::LF).expect("PEM encoding");
                std::fs::write(path, pem.as_bytes())?;
                key
            }
            Err(e) => return Err(e),
        };
        let der = private
            .to_public_key()
            .to_public_key_der()
            .expect("DER encoding");
        let id = hex::encode(&Sha256::digest(der.as_bytes())[..4]);
        Ok(SigningKey {
            name: format!("rootstrap-test-{id}.rsa.pub"),
            private,
        })
    }

    pub fn public_pem(&self) -> String {
        self.private
            .to_public_key()
            .to_public_key_pem(LineEnding::LF)
            .expect("PEM encoding")
    }

    /// `.SIGN.RSA.<name>`: PKCS#1 v1.5 over SHA-1 of `data`.
    pub fn sign(&self, data: &[u8]) -> Vec<u8> {
        self.private
            .sign(Pkcs1v15Sign::new::<Sha1>(), &Sha1::digest(data))
            .expect("RSA signing")
    }

    /// Writes the public key as `<dir>/<name>` (a `--keys` directory).
    pub fn write_public(&self, dir: &Path) -> std::io::Result<PathBuf> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join(&self.name);
        std::fs::write(&path, self.public_pem())?;
        Ok(path)
    }
}

/// One data-tar entry.
#[derive(Debug, Clone)]
pub enum Node {
    Dir,
    File(Vec<u8>),
    Symlink(String),
    /// Hard link to an earlier file of the same package.
    Hardlink(String),
}

#[derive(Debug, Clone)]
pub struct Entry {
    pub path: String,
    pub node: Node,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

pub fn dir(path: &str, mode: u32) -> Entry {
    Entry {
        path: path.into(),
        node: Node::Dir,
        mode,
        uid: 0,
        gid: 0,
    }
}

pub fn file(path: &str, mode: u32, content: &[u8]) -> Entry {
    Entry {
        path: path.into(),
        node: Node::File(content.to_vec()),
        mode,
        uid: 0,
        gid: 0,
    }
}

pub fn symlink(path: &str, target: &str) -> Entry {
    Entry {
        path: path.into(),
        node: Node::Symlink(target.into()),
        mode: 0o777,
        uid: 0,
        gid: 0,
    }
}

pub fn hardlink(path: &str, target: &str) -> Entry {
    Entry {
        path: path.into(),
        node: Node::Hardlink(target.into()),
        mode: 0o644,
        uid: 0,
        gid: 0,
    }
}

/// What goes into one package.
#[derive(Debug, Clone, Default)]
pub struct PackageSpec {
    pub name: String,
    pub version: String,
    pub arch: String,
    pub description: String,
    pub depends: Vec<String>,
    pub provides: Vec<String>,
    pub triggers: Vec<String>,
    pub provider_priority: Option<u32>,
    /// `(".post-install", content)` …
    pub scripts: Vec<(String, Vec<u8>)>,
    pub entries: Vec<Entry>,
    /// The index fields a real package carries; `None` gives the fixture's
    /// defaults (MIT, origin = name, [`BUILD_TIME`]).
    pub meta: Option<PackageMeta>,
    /// A file whose `APK-TOOLS.checksum.SHA1` does not match its content
    /// (bad input: the package is otherwise well signed and consistent).
    pub wrong_checksum: Option<String>,
}

/// The `.PKGINFO` / index fields beyond name, version, arch and relations,
/// for packages rebuilt from a real database record.
#[derive(Debug, Clone, Default)]
pub struct PackageMeta {
    pub url: String,
    pub license: String,
    pub origin: String,
    pub maintainer: String,
    pub build_time: u64,
    pub commit: Option<String>,
    /// The record's `I:`, kept as the original build computed it.
    pub installed_size: u64,
    pub replaces: Vec<String>,
    pub install_if: Vec<String>,
    pub replaces_priority: Option<u32>,
}

impl PackageSpec {
    pub fn new(name: &str, version: &str, arch: &str) -> PackageSpec {
        PackageSpec {
            name: name.into(),
            version: version.into(),
            arch: arch.into(),
            description: format!("rootstrap test fixture: {name}"),
            ..PackageSpec::default()
        }
    }

    pub fn file_name(&self) -> String {
        format!("{}-{}.apk", self.name, self.version)
    }
}

/// A built package: its bytes and its APKINDEX stanza.
pub struct BuiltPackage {
    pub spec: PackageSpec,
    pub bytes: Vec<u8>,
    pub stanza: String,
    /// Byte range of the data member inside `bytes`.
    pub data_range: std::ops::Range<usize>,
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::default());
    e.write_all(data).expect("gzip to memory");
    e.finish().expect("gzip to memory")
}

fn octal(field: &mut [u8], value: u64) {
    let digits = field.len() - 1;
    let s = format!("{value:0digits$o}");
    field[..digits].copy_from_slice(&s.as_bytes()[s.len() - digits..]);
    field[digits] = 0;
}

struct Header<'a> {
    name: &'a str,
    mode: u32,
    uid: u32,
    gid: u32,
    size: u64,
    flag: u8,
    link: &'a str,
    mtime: u64,
}

fn tar_header(h: &Header<'_>) -> [u8; 512] {
    assert!(
        h.name.len() <= 100 && h.link.len() <= 100,
        "fixture name too long"
    );
    let mut b = [0u8; 512];
    b[..h.name.len()].copy_from_slice(h.name.as_bytes());
    octal(&mut b[100..108], u64::from(h.mode));
    octal(&mut b[108..116], u64::from(h.uid));
    octal(&mut b[116..124], u64::from(h.gid));
    octal(&mut b[124..136], h.size);
    octal(&mut b[136..148], h.mtime);
    b[156] = h.flag;
    b[157..157 + h.link.len()].copy_from_slice(h.link.as_bytes());
    b[257..263].copy_from_slice(b"ustar\0");
    b[263..265].copy_from_slice(b"00");
    b[265..269].copy_from_slice(b"root");
    b[297..301].copy_from_slice(b"root");
    b[148..156].copy_from_slice(b"        ");
    let sum: u32 = b.iter().map(|&c| u32::from(c)).sum();
    b[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    b
}

fn push_padded(out: &mut Vec<u8>, data: &[u8]) {
    out.extend_from_slice(data);
    out.resize(out.len().div_ceil(512) * 512, 0);
}

fn push_file(out: &mut Vec<u8>, name: &str, mode: u32, content: &[u8]) {
    push_file_at(out, name, mode, content, BUILD_TIME);
}

fn push_file_at(out: &mut Vec<u8>, name: &str, mode: u32, content: &[u8], mtime: u64) {
    out.extend_from_slice(&tar_header(&Header {
        name,
        mode,
        uid: 0,
        gid: 0,
        size: content.len() as u64,
        flag: b'0',
        link: "",
        mtime,
    }));
    push_padded(out, content);
}

fn pax_record(key: &str, value: &str) -> Vec<u8> {
    let body = format!(" {key}={value}\n");
    let mut len = body.len() + 1;
    while format!("{len}{body}").len() != len {
        len += 1;
    }
    format!("{len}{body}").into_bytes()
}

/// The data tar: each file and symlink preceded by a PAX header with its
/// `APK-TOOLS.checksum.SHA1`, as abuild writes it.
fn data_tar(entries: &[Entry], mtime: u64, wrong_checksum: Option<&str>) -> Vec<u8> {
    let mut out = Vec::new();
    for e in entries {
        let wrong = wrong_checksum == Some(e.path.as_str());
        let (flag, link, content): (u8, &str, &[u8]) = match &e.node {
            Node::Dir => (b'5', "", b""),
            Node::File(c) => (b'0', "", c),
            Node::Symlink(t) => (b'2', t, b""),
            Node::Hardlink(t) => (b'1', t, b""),
        };
        let checksum = match &e.node {
            Node::File(c) if wrong => {
                Some(hex::encode(Sha1::digest([c.as_slice(), b"!"].concat())))
            }
            Node::File(c) => Some(hex::encode(Sha1::digest(c))),
            Node::Symlink(t) => Some(hex::encode(Sha1::digest(t.as_bytes()))),
            _ => None,
        };
        if let Some(sum) = checksum {
            let pax = pax_record("APK-TOOLS.checksum.SHA1", &sum);
            out.extend_from_slice(&tar_header(&Header {
                name: "PaxHeader",
                mode: 0o644,
                uid: 0,
                gid: 0,
                size: pax.len() as u64,
                flag: b'x',
                link: "",
                mtime,
            }));
            push_padded(&mut out, &pax);
        }
        let name = if matches!(e.node, Node::Dir) {
            format!("{}/", e.path.trim_end_matches('/'))
        } else {
            e.path.clone()
        };
        out.extend_from_slice(&tar_header(&Header {
            name: &name,
            mode: e.mode,
            uid: e.uid,
            gid: e.gid,
            size: content.len() as u64,
            flag,
            link,
            mtime,
        }));
        push_padded(&mut out, content);
    }
    out.extend_from_slice(&[0u8; 1024]);
    out
}

fn q1(data: &[u8]) -> String {
    Checksum::Sha1(Sha1::digest(data).into()).to_string()
}

/// Builds a signed (or, with `key` None, unsigned) v2 package.
pub fn build_package(spec: &PackageSpec, key: Option<&SigningKey>) -> BuiltPackage {
    let meta = spec.meta.clone().unwrap_or_else(|| PackageMeta {
        url: "https://example.invalid/".into(),
        license: "MIT".into(),
        origin: spec.name.clone(),
        maintainer: "fixture".into(),
        build_time: BUILD_TIME,
        installed_size: spec
            .entries
            .iter()
            .map(|e| match &e.node {
                Node::File(c) => (c.len() as u64).div_ceil(4096) * 4096,
                _ => 0,
            })
            .sum::<u64>()
            .max(4096),
        ..PackageMeta::default()
    });
    let data = gzip(&data_tar(
        &spec.entries,
        meta.build_time,
        spec.wrong_checksum.as_deref(),
    ));
    let installed_size = meta.installed_size;
    let build_time = meta.build_time;
    let mut info = format!(
        "# Generated by rootstrap's test fixture\npkgname = {}\npkgver = {}\npkgdesc = {}\nurl = {}\nbuilddate = {build_time}\npackager = {}\nsize = {installed_size}\narch = {}\norigin = {}\n",
        spec.name, spec.version, spec.description, meta.url, meta.maintainer, spec.arch, meta.origin
    );
    if let Some(c) = &meta.commit {
        info.push_str(&format!("commit = {c}\n"));
    }
    if spec.meta.is_some() {
        info.push_str(&format!("maintainer = {}\n", meta.maintainer));
    }
    info.push_str(&format!("license = {}\n", meta.license));
    for r in &meta.replaces {
        info.push_str(&format!("replaces = {r}\n"));
    }
    if let Some(q) = meta.replaces_priority {
        info.push_str(&format!("replaces_priority = {q}\n"));
    }
    for d in &spec.depends {
        info.push_str(&format!("depend = {d}\n"));
    }
    for p in &spec.provides {
        info.push_str(&format!("provides = {p}\n"));
    }
    if !meta.install_if.is_empty() {
        info.push_str(&format!("install_if = {}\n", meta.install_if.join(" ")));
    }
    if let Some(k) = spec.provider_priority {
        info.push_str(&format!("provider_priority = {k}\n"));
    }
    if !spec.triggers.is_empty() {
        info.push_str(&format!("triggers = {}\n", spec.triggers.join(" ")));
    }
    info.push_str(&format!(
        "datahash = {}\n",
        hex::encode(Sha256::digest(&data))
    ));
    // Control and signature members end without the tar trailer, as
    // abuild cuts it so the three members read as one archive.
    let mut control_tar = Vec::new();
    push_file_at(
        &mut control_tar,
        ".PKGINFO",
        0o644,
        info.as_bytes(),
        build_time,
    );
    for (name, content) in &spec.scripts {
        push_file_at(&mut control_tar, name, 0o755, content, build_time);
    }
    let control = gzip(&control_tar);
    let mut bytes = Vec::new();
    if let Some(k) = key {
        let mut sig_tar = Vec::new();
        push_file(
            &mut sig_tar,
            &format!(".SIGN.RSA.{}", k.name),
            0o644,
            &k.sign(&control),
        );
        bytes.extend(gzip(&sig_tar));
    }
    bytes.extend_from_slice(&control);
    let data_start = bytes.len();
    bytes.extend_from_slice(&data);
    let data_range = data_start..bytes.len();

    // Field order as apk-tools writes index entries.
    let mut stanza = format!(
        "C:{}\nP:{}\nV:{}\nA:{}\nS:{}\nI:{installed_size}\nT:{}\nU:{}\nL:{}\no:{}\nm:{}\nt:{build_time}\n",
        q1(&control),
        spec.name,
        spec.version,
        spec.arch,
        bytes.len(),
        spec.description,
        meta.url,
        meta.license,
        meta.origin,
        meta.maintainer,
    );
    if let Some(c) = &meta.commit {
        stanza.push_str(&format!("c:{c}\n"));
    }
    if let Some(k) = spec.provider_priority {
        stanza.push_str(&format!("k:{k}\n"));
    }
    if !spec.depends.is_empty() {
        stanza.push_str(&format!("D:{}\n", spec.depends.join(" ")));
    }
    if !spec.provides.is_empty() {
        stanza.push_str(&format!("p:{}\n", spec.provides.join(" ")));
    }
    if !meta.install_if.is_empty() {
        stanza.push_str(&format!("i:{}\n", meta.install_if.join(" ")));
    }
    if !meta.replaces.is_empty() {
        stanza.push_str(&format!("r:{}\n", meta.replaces.join(" ")));
    }
    if let Some(q) = meta.replaces_priority {
        stanza.push_str(&format!("q:{q}\n"));
    }
    BuiltPackage {
        spec: spec.clone(),
        bytes,
        stanza,
        data_range,
    }
}

/// `APKINDEX.tar.gz` over the given stanzas; signed when `key` is given.
pub fn build_index(stanzas: &[&str], key: Option<&SigningKey>) -> Vec<u8> {
    build_index_signed_with(stanzas, |index| {
        key.map(|k| (format!(".SIGN.RSA.{}", k.name), k.sign(index)))
    })
}

/// [`build_index`] whose signature entry (name, bytes) `sign` makes from
/// the compressed index: bad input such as an oversized signature.
pub fn build_index_signed_with(
    stanzas: &[&str],
    sign: impl FnOnce(&[u8]) -> Option<(String, Vec<u8>)>,
) -> Vec<u8> {
    let mut text = String::new();
    for s in stanzas {
        text.push_str(s);
        text.push('\n');
    }
    let mut tar = Vec::new();
    push_file(&mut tar, "DESCRIPTION", 0o644, b"rootstrap fixture");
    push_file(&mut tar, "APKINDEX", 0o644, text.as_bytes());
    tar.extend_from_slice(&[0u8; 1024]);
    let index = gzip(&tar);
    let mut out = Vec::new();
    if let Some((name, signature)) = sign(&index) {
        let mut sig_tar = Vec::new();
        push_file(&mut sig_tar, &name, 0o644, &signature);
        out.extend(gzip(&sig_tar));
    }
    out.extend(index);
    out
}

/// Where [`write_minirootfs_repo`] put things.
pub struct FixtureRepo {
    /// Mirror root to pass as `--mirror` (as a directory).
    pub root: PathBuf,
    /// `<root>/<release>/<repo>/<arch>`.
    pub arch_dir: PathBuf,
    /// Directory holding the public key, for `--keys`.
    pub keys_dir: PathBuf,
    pub key: SigningKey,
    pub packages: Vec<BuiltPackage>,
}

impl FixtureRepo {
    /// Rewrites the index from the current packages (signed with `key`, or
    /// unsigned when `None`).
    pub fn write_index(&self, key: Option<&SigningKey>) -> std::io::Result<()> {
        let stanzas: Vec<&str> = self.packages.iter().map(|p| p.stanza.as_str()).collect();
        std::fs::write(
            self.arch_dir.join("APKINDEX.tar.gz"),
            build_index(&stanzas, key),
        )
    }

    /// Builds `spec` signed with the repository key, writes it and re-signs
    /// the index.
    pub fn add_package(&mut self, spec: &PackageSpec) -> std::io::Result<()> {
        let built = build_package(spec, Some(&self.key));
        std::fs::write(self.arch_dir.join(spec.file_name()), &built.bytes)?;
        self.packages.push(built);
        self.write_index(Some(&self.key))
    }

    /// Writes another repository `<root>/<path>/<arch>/` (e.g. `edge/main`)
    /// holding `specs`, signed with the same key; returns its packages.
    pub fn add_repository(
        &self,
        path: &str,
        arch: &str,
        specs: &[PackageSpec],
    ) -> std::io::Result<Vec<BuiltPackage>> {
        let dir = self.root.join(path).join(arch);
        std::fs::create_dir_all(&dir)?;
        let built: Vec<BuiltPackage> = specs
            .iter()
            .map(|s| build_package(s, Some(&self.key)))
            .collect();
        for b in &built {
            std::fs::write(dir.join(b.spec.file_name()), &b.bytes)?;
        }
        let stanzas: Vec<&str> = built.iter().map(|p| p.stanza.as_str()).collect();
        std::fs::write(
            dir.join("APKINDEX.tar.gz"),
            build_index(&stanzas, Some(&self.key)),
        )?;
        Ok(built)
    }

    pub fn package_path(&self, name: &str) -> Option<PathBuf> {
        self.packages
            .iter()
            .find(|p| p.spec.name == name)
            .map(|p| self.arch_dir.join(p.spec.file_name()))
    }
}

/// The package set: a minirootfs shape whose only program is `busybox`.
pub fn minirootfs_packages(
    arch: &str,
    busybox: &[u8],
    key_name: &str,
    key_pem: &str,
) -> Vec<PackageSpec> {
    let v = "3.20.0-r0";
    let mut baselayout = PackageSpec::new("alpine-baselayout", v, arch);
    baselayout.depends = vec![format!("alpine-baselayout-data={v}"), "/bin/sh".into()];
    baselayout.entries = vec![
        dir("bin", 0o755),
        dir("sbin", 0o755),
        dir("usr", 0o755),
        dir("usr/bin", 0o755),
        dir("usr/sbin", 0o755),
        dir("usr/share", 0o755),
        dir("lib", 0o755),
        dir("root", 0o700),
        dir("tmp", 0o1777),
        dir("proc", 0o555),
        dir("sys", 0o555),
        dir("dev", 0o755),
        dir("run", 0o755),
        dir("var", 0o755),
        dir("var/empty", 0o555),
        dir("etc", 0o755),
    ];
    baselayout.scripts = vec![(
        ".pre-install".into(),
        b"#!/bin/sh\n# fixture: records that pre-install ran, with its argument, and whether\n# the package's own files (/var/empty) were already extracted.\nif [ -e /var/empty ]; then files=present; else files=absent; fi\necho \"pre-install $1 files-$files\" > /etc/.fixture-pre-install\n".to_vec(),
    )];

    let mut data = PackageSpec::new("alpine-baselayout-data", v, arch);
    let mut shadow = file("etc/shadow", 0o640, b"root:*::0:::::\nnobody:!::0:::::\n");
    shadow.gid = 42;
    data.entries = vec![
        dir("etc", 0o755),
        file("etc/hostname", 0o644, b"localhost\n"),
        hardlink("etc/hostname.hardlink", "etc/hostname"),
        file(
            "etc/passwd",
            0o644,
            b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/sbin/nologin\n",
        ),
        file(
            "etc/group",
            0o644,
            b"root:x:0:root\nshadow:x:42:\nnogroup:x:65534:\n",
        ),
        shadow,
        file(
            "etc/os-release",
            0o644,
            b"NAME=\"rootstrap fixture\"\nID=alpine\n",
        ),
    ];

    let mut bb = PackageSpec::new("busybox", "1.36.1-r29", arch);
    bb.triggers = vec![
        "/bin".into(),
        "/usr/bin".into(),
        "/sbin".into(),
        "/usr/sbin".into(),
        "/lib/modules/*".into(),
    ];
    bb.entries = vec![dir("bin", 0o755), file("bin/busybox", 0o755, busybox)];
    bb.scripts = vec![
        (
            ".post-install".into(),
            b"#!/bin/busybox sh\n# As Alpine's busybox.post-install: the applet links, early.\n/bin/busybox --install -s || exit 1\n".to_vec(),
        ),
        (
            ".trigger".into(),
            b"#!/bin/busybox sh\n# fixture: records the directories it was triggered for\necho \"$@\" > /etc/.fixture-busybox-trigger\n".to_vec(),
        ),
    ];
    bb.provides = vec!["cmd:busybox=1.36.1-r29".into()];

    let mut binsh = PackageSpec::new("busybox-binsh", "1.36.1-r29", arch);
    binsh.depends = vec!["busybox=1.36.1-r29".into()];
    binsh.provides = vec!["/bin/sh".into(), "cmd:sh=1.36.1-r29".into()];
    binsh.provider_priority = Some(100);
    binsh.entries = vec![dir("bin", 0o755), symlink("bin/sh", "/bin/busybox")];

    let mut keys = PackageSpec::new("alpine-keys", "2.4-r1", arch);
    keys.entries = vec![
        dir("usr", 0o755),
        dir("usr/share", 0o755),
        dir("usr/share/apk", 0o755),
        dir("usr/share/apk/keys", 0o755),
        file(
            &format!("usr/share/apk/keys/{key_name}"),
            0o644,
            key_pem.as_bytes(),
        ),
    ];

    let musl_so = format!("so:libc.musl-{arch}.so.1=1");
    let mut musl = PackageSpec::new("musl", "1.2.5-r0", arch);
    musl.description = "rootstrap test fixture: provides the musl soname, ships no libc".into();
    musl.provides = vec![musl_so];
    musl.entries = vec![dir("lib", 0o755)];

    let needs_libc = format!("so:libc.musl-{arch}.so.1");
    let mut apk = PackageSpec::new("apk-tools", "2.14.4-r0", arch);
    apk.description = "rootstrap test fixture: NOT apk-tools, has no apk binary".into();
    apk.depends = vec![needs_libc.clone()];
    apk.entries = vec![
        dir("etc", 0o755),
        dir("etc/apk", 0o755),
        dir("etc/apk/protected_paths.d", 0o755),
    ];

    let mut musl_utils = PackageSpec::new("musl-utils", "1.2.5-r0", arch);
    musl_utils.depends = vec![needs_libc];
    musl_utils.entries = vec![
        dir("usr", 0o755),
        dir("usr/share", 0o755),
        dir("usr/share/musl-utils", 0o755),
        file(
            "usr/share/musl-utils/README",
            0o644,
            b"fixture: no programs\n",
        ),
    ];

    let mut libc_utils = PackageSpec::new("libc-utils", "0.7.2-r5", arch);
    libc_utils.depends = vec!["musl-utils".into()];

    vec![
        baselayout, data, bb, binsh, keys, musl, apk, musl_utils, libc_utils,
    ]
}

/// Writes the minirootfs fixture repository under `out` and its public key
/// under `out/keys`. Packages are signed with a fresh key named
/// `rootstrap-test-<random>.rsa.pub`.
pub fn write_minirootfs_repo(
    out: &Path,
    release: &str,
    repo: &str,
    arch: &str,
    busybox: &[u8],
) -> std::io::Result<FixtureRepo> {
    let key = SigningKey::generate(&format!(
        "rootstrap-test-{:08x}.rsa.pub",
        rand::random::<u32>()
    ));
    let arch_dir = out.join(release).join(repo).join(arch);
    std::fs::create_dir_all(&arch_dir)?;
    let keys_dir = out.join("keys");
    key.write_public(&keys_dir)?;
    let specs = minirootfs_packages(arch, busybox, &key.name, &key.public_pem());
    let mut packages = Vec::new();
    for spec in &specs {
        let built = build_package(spec, Some(&key));
        std::fs::write(arch_dir.join(spec.file_name()), &built.bytes)?;
        packages.push(built);
    }
    let repo = FixtureRepo {
        root: out.to_owned(),
        arch_dir,
        keys_dir,
        key,
        packages,
    };
    repo.write_index(Some(&repo.key))?;
    Ok(repo)
}

/// The host's static busybox (Debian's busybox-static), if installed.
pub fn host_static_busybox() -> Option<Vec<u8>> {
    for p in ["/bin/busybox", "/usr/bin/busybox"] {
        if let Ok(bytes) = std::fs::read(p) {
            // Static ELF only: no PT_INTERP program header ("/lib64/ld-linux" …).
            if bytes.starts_with(b"\x7fELF")
                && !contains(&bytes[..bytes.len().min(4096)], b"ld-linux")
            {
                return Some(bytes);
            }
        }
    }
    None
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}
