//! Builds Debian-format fixture repositories at test time: real .deb files
//! (ar + control.tar.gz + data.tar.xz), a Packages index, a Release file, and
//! an InRelease signed by a key the test made. Served on 127.0.0.1 by
//! `httpd`, they exercise the whole pipeline with no network.
//!
//! `host_runtime_packages` turns the host's own static busybox and dpkg (with
//! the shared libraries it needs) into packages, so a fixture rootfs can run
//! stage 2 — the target's real dpkg configuring packages in the sandbox.
#![allow(dead_code)]

use super::skip::skip;
use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::Digest;

#[derive(Debug, Clone)]
pub enum Entry {
    Dir {
        path: String,
        mode: u32,
    },
    File {
        path: String,
        mode: u32,
        data: Vec<u8>,
    },
    Symlink {
        path: String,
        target: String,
    },
    Hardlink {
        path: String,
        target: String,
    },
}

#[derive(Debug, Clone, Default)]
pub struct DebPackage {
    pub name: String,
    pub version: String,
    pub arch: String,
    pub priority: String,
    pub essential: bool,
    pub depends: String,
    pub pre_depends: String,
    pub provides: String,
    pub replaces: String,
    pub multi_arch: String,
    pub entries: Vec<Entry>,
    /// Maintainer scripts and other control members: (name, content).
    pub control_files: Vec<(String, Vec<u8>)>,
}

impl DebPackage {
    pub fn new(name: &str, version: &str) -> DebPackage {
        DebPackage {
            name: name.into(),
            version: version.into(),
            arch: "amd64".into(),
            priority: "optional".into(),
            ..Default::default()
        }
    }

    pub fn required(mut self) -> Self {
        self.priority = "required".into();
        self
    }

    pub fn essential(mut self) -> Self {
        self.essential = true;
        self.priority = "required".into();
        self
    }

    pub fn depends(mut self, d: &str) -> Self {
        self.depends = d.into();
        self
    }

    pub fn replaces(mut self, r: &str) -> Self {
        self.replaces = r.into();
        self
    }

    pub fn pre_depends(mut self, d: &str) -> Self {
        self.pre_depends = d.into();
        self
    }

    pub fn file(mut self, path: &str, mode: u32, data: &[u8]) -> Self {
        self.entries.push(Entry::File {
            path: path.into(),
            mode,
            data: data.to_vec(),
        });
        self
    }

    pub fn dir(mut self, path: &str) -> Self {
        self.entries.push(Entry::Dir {
            path: path.into(),
            mode: 0o755,
        });
        self
    }

    pub fn symlink(mut self, path: &str, target: &str) -> Self {
        self.entries.push(Entry::Symlink {
            path: path.into(),
            target: target.into(),
        });
        self
    }

    pub fn script(mut self, name: &str, body: &str) -> Self {
        self.control_files
            .push((name.into(), body.as_bytes().to_vec()));
        self
    }

    pub fn control_text(&self) -> String {
        let mut c = format!(
            "Package: {}\nVersion: {}\nArchitecture: {}\nMaintainer: rootstrap tests <tests@invalid>\n",
            self.name, self.version, self.arch
        );
        if self.essential {
            c.push_str("Essential: yes\n");
        }
        for (k, v) in [
            ("Multi-Arch", &self.multi_arch),
            ("Pre-Depends", &self.pre_depends),
            ("Depends", &self.depends),
            ("Provides", &self.provides),
            ("Replaces", &self.replaces),
        ] {
            if !v.is_empty() {
                c.push_str(&format!("{k}: {v}\n"));
            }
        }
        c.push_str(&format!(
            "Priority: {}\nSection: misc\nInstalled-Size: {}\nDescription: fixture package {}\n test data made by rootstrap's tests\n",
            self.priority,
            self.installed_kib(),
            self.name
        ));
        c
    }

    fn installed_kib(&self) -> usize {
        let bytes: usize = self
            .entries
            .iter()
            .map(|e| match e {
                Entry::File { data, .. } => data.len(),
                _ => 0,
            })
            .sum();
        bytes.div_ceil(1024)
    }

    /// The complete .deb.
    pub fn build(&self) -> Vec<u8> {
        let mut control = TarBuilder::default();
        control.dir("./", 0o755);
        control.file("./control", 0o644, self.control_text().as_bytes());
        let mut md5sums = String::new();
        for e in &self.entries {
            if let Entry::File { path, data, .. } = e {
                let digest = md5::Md5::digest(data);
                md5sums.push_str(&format!(
                    "{}  {}\n",
                    hex::encode(digest),
                    path.trim_start_matches("./").trim_start_matches('/')
                ));
            }
        }
        control.file("./md5sums", 0o644, md5sums.as_bytes());
        for (name, body) in &self.control_files {
            let mode = if matches!(
                name.as_str(),
                "preinst" | "postinst" | "prerm" | "postrm" | "config"
            ) {
                0o755
            } else {
                0o644
            };
            control.file(&format!("./{name}"), mode, body);
        }
        let mut data = TarBuilder::default();
        data.dir("./", 0o755);
        let mut emitted = std::collections::BTreeSet::new();
        for e in &self.entries {
            // Real .debs list every parent directory before its contents.
            let path = match e {
                Entry::Dir { path, .. }
                | Entry::File { path, .. }
                | Entry::Symlink { path, .. }
                | Entry::Hardlink { path, .. } => path,
            };
            let trimmed = path.trim_start_matches("./").trim_matches('/');
            let mut parent = String::new();
            for comp in trimmed
                .split('/')
                .collect::<Vec<_>>()
                .iter()
                .rev()
                .skip(1)
                .rev()
            {
                parent = if parent.is_empty() {
                    comp.to_string()
                } else {
                    format!("{parent}/{comp}")
                };
                if emitted.insert(parent.clone()) {
                    data.dir(&dot(&parent, true), 0o755);
                }
            }
            if matches!(e, Entry::Dir { .. }) && !emitted.insert(trimmed.to_owned()) {
                continue;
            }
            match e {
                Entry::Dir { path, mode } => data.dir(&dot(path, true), *mode),
                Entry::File {
                    path,
                    mode,
                    data: d,
                } => data.file(&dot(path, false), *mode, d),
                Entry::Symlink { path, target } => data.link(&dot(path, false), target, b'2'),
                Entry::Hardlink { path, target } => {
                    data.link(&dot(path, false), &dot(target, false), b'1')
                }
            }
        }
        let control_gz = gzip(&control.finish());
        let data_xz = xz(&data.finish());
        let mut ar = b"!<arch>\n".to_vec();
        ar_member(&mut ar, "debian-binary", b"2.0\n");
        ar_member(&mut ar, "control.tar.gz", &control_gz);
        ar_member(&mut ar, "data.tar.xz", &data_xz);
        ar
    }
}

fn dot(path: &str, dir: bool) -> String {
    let p = format!(
        "./{}",
        path.trim_start_matches("./").trim_start_matches('/')
    );
    if dir && !p.ends_with('/') {
        p + "/"
    } else {
        p
    }
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

pub fn xz(data: &[u8]) -> Vec<u8> {
    let mut e = liblzma::write::XzEncoder::new(Vec::new(), 0);
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn ar_member(out: &mut Vec<u8>, name: &str, data: &[u8]) {
    let header = format!(
        "{:<16}{:<12}{:<6}{:<6}{:<8}{:<10}`\n",
        name,
        0,
        0,
        0,
        "100644",
        data.len()
    );
    assert_eq!(header.len(), 60);
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(data);
    if data.len() % 2 == 1 {
        out.push(b'\n');
    }
}

/// A minimal ustar writer for fixtures (names < 100 bytes).
#[derive(Default)]
pub struct TarBuilder {
    out: Vec<u8>,
}

impl TarBuilder {
    pub fn dir(&mut self, path: &str, mode: u32) {
        self.header(path, mode, 0, b'5', "");
    }

    pub fn file(&mut self, path: &str, mode: u32, data: &[u8]) {
        self.header(path, mode, data.len() as u64, b'0', "");
        self.out.extend_from_slice(data);
        self.pad();
    }

    pub fn link(&mut self, path: &str, target: &str, kind: u8) {
        self.header(path, 0o777, 0, kind, target);
    }

    /// Raw header for hostile tests: any name, kind and link target.
    pub fn header(&mut self, path: &str, mode: u32, size: u64, kind: u8, link: &str) {
        let mut h = [0u8; 512];
        assert!(
            path.len() < 100 && link.len() < 100,
            "fixture names must be short: {path}"
        );
        h[..path.len()].copy_from_slice(path.as_bytes());
        write_octal(&mut h[100..108], mode as u64);
        write_octal(&mut h[108..116], 0);
        write_octal(&mut h[116..124], 0);
        write_octal(&mut h[124..136], size);
        write_octal(&mut h[136..148], 1_700_000_000);
        h[156] = kind;
        h[157..157 + link.len()].copy_from_slice(link.as_bytes());
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        h[148..156].copy_from_slice(b"        ");
        let sum: u32 = h.iter().map(|&b| b as u32).sum();
        write_octal(&mut h[148..155], sum as u64);
        h[155] = b' ';
        self.out.extend_from_slice(&h);
    }

    fn pad(&mut self) {
        let rem = self.out.len() % 512;
        if rem != 0 {
            self.out.resize(self.out.len() + 512 - rem, 0);
        }
    }

    pub fn finish(mut self) -> Vec<u8> {
        self.out.resize(self.out.len() + 1024, 0);
        self.out
    }
}

fn write_octal(field: &mut [u8], value: u64) {
    let s = format!("{:0width$o}\0", value, width = field.len() - 1);
    field.copy_from_slice(s.as_bytes());
}

/// A Debian-format repository on disk.
pub struct Repo {
    pub suite: String,
    pub codename: String,
    pub arch: String,
    pub packages: Vec<DebPackage>,
    /// Seconds added to "now" for the Release Date (negative = past).
    pub date_offset: i64,
    pub valid_until_offset: Option<i64>,
}

impl Repo {
    pub fn new(codename: &str, packages: Vec<DebPackage>) -> Repo {
        Repo {
            suite: "stable".into(),
            codename: codename.into(),
            arch: "amd64".into(),
            packages,
            date_offset: -3600,
            valid_until_offset: Some(7 * 86400),
        }
    }

    /// Writes pool/, the Packages index and Release under `dir`; signs the
    /// Release with `clearsign` (text in, armored InRelease out).
    pub fn write(&self, dir: &Path, clearsign: &dyn Fn(&str) -> String) -> Vec<PathBuf> {
        let mut debs = Vec::new();
        let mut packages = String::new();
        for p in &self.packages {
            let deb = p.build();
            let first = p.name.chars().next().unwrap();
            let rel = format!(
                "pool/main/{first}/{}/{}_{}_{}.deb",
                p.name,
                p.name,
                p.version.replace(':', "%3a"),
                p.arch
            );
            let path = dir.join(&rel);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &deb).unwrap();
            debs.push(path);
            let mut stanza = p.control_text();
            stanza.push_str(&format!(
                "Filename: {rel}\nSize: {}\nSHA256: {}\n\n",
                deb.len(),
                hex::encode(sha2::Sha256::digest(&deb))
            ));
            packages.push_str(&stanza);
        }
        let dists = dir.join("dists").join(&self.codename);
        let bin = dists.join(format!("main/binary-{}", self.arch));
        std::fs::create_dir_all(&bin).unwrap();
        let indexes = [
            ("Packages", packages.as_bytes().to_vec()),
            ("Packages.xz", xz(packages.as_bytes())),
            ("Packages.gz", gzip(packages.as_bytes())),
        ];
        let mut sha = String::new();
        for (name, bytes) in &indexes {
            std::fs::write(bin.join(name), bytes).unwrap();
            sha.push_str(&format!(
                " {} {:>8} main/binary-{}/{}\n",
                hex::encode(sha2::Sha256::digest(bytes)),
                bytes.len(),
                self.arch,
                name
            ));
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        let fmt = |t: i64| {
            chrono::DateTime::from_timestamp(t, 0)
                .unwrap()
                .format("%a, %d %b %Y %H:%M:%S UTC")
                .to_string()
        };
        let mut release = format!(
            "Origin: rootstrap-fixture\nLabel: rootstrap-fixture\nSuite: {}\nCodename: {}\nDate: {}\n",
            self.suite,
            self.codename,
            fmt(now + self.date_offset)
        );
        if let Some(v) = self.valid_until_offset {
            release.push_str(&format!("Valid-Until: {}\n", fmt(now + v)));
        }
        release.push_str(&format!(
            "Architectures: {}\nComponents: main\nDescription: fixture\nSHA256:\n{sha}",
            self.arch
        ));
        std::fs::write(dists.join("Release"), &release).unwrap();
        std::fs::write(dists.join("InRelease"), clearsign(&release)).unwrap();
        debs
    }
}

/// [`host_runtime_packages`] for a test that builds with scripts run in
/// the sandbox; None, after saying why on stderr, when the test must skip
/// (not root, or no busybox-static and dpkg on the host).
pub fn sandbox_runtime_packages() -> Option<Vec<DebPackage>> {
    if !rustix::process::geteuid().is_root() {
        skip("needs root (sandbox namespaces, chown)");
        return None;
    }
    let packages = host_runtime_packages();
    if packages.is_none() {
        skip("needs the host's busybox-static and dpkg");
    }
    packages
}

/// Packages made from the host's static busybox and its real dpkg (with the
/// shared libraries dpkg links against), enough for stage 2 to run the
/// target's own dpkg. None when the host lacks them (the test then skips).
pub fn host_runtime_packages() -> Option<Vec<DebPackage>> {
    let busybox = ["/bin/busybox", "/usr/bin/busybox"]
        .into_iter()
        .find(|p| Path::new(p).exists())?;
    let busybox_bytes = std::fs::read(busybox).ok()?;
    if !Path::new("/usr/bin/dpkg").exists() {
        return None;
    }
    let base = DebPackage::new("base-files", "1.0")
        .essential()
        .dir("etc")
        .dir("root")
        .dir("tmp")
        .dir("usr")
        .dir("usr/bin")
        .dir("usr/sbin")
        .dir("usr/lib")
        .dir("usr/lib64")
        .dir("var")
        .dir("var/lib")
        .symlink("bin", "usr/bin")
        .symlink("sbin", "usr/sbin")
        .symlink("lib", "usr/lib")
        .symlink("lib64", "usr/lib64")
        .file("etc/os-release", 0o644, b"ID=rootstrap-fixture\nVERSION_CODENAME=fixture\n")
        .file("etc/passwd", 0o644, b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n")
        .file("etc/group", 0o644, b"root:x:0:\nnogroup:x:65534:\n");

    let mut bb = DebPackage::new("busybox", "1.36.1-1").essential().file(
        "usr/bin/busybox",
        0o755,
        &busybox_bytes,
    );
    for applet in [
        "sh", "cat", "echo", "ls", "test", "[", "mkdir", "rm", "rmdir", "mv", "cp", "ln", "id",
        "touch", "chmod", "chown", "sed", "grep", "tar", "diff", "find", "sort", "head", "tail",
        "wc", "env", "true", "false", "sleep", "readlink", "hostname", "uname", "cut", "tr",
        "printf", "expr", "basename", "dirname", "stat", "xargs", "awk",
    ] {
        bb = bb.symlink(&format!("usr/bin/{applet}"), "busybox");
    }
    // dpkg insists on these being on PATH; busybox has no ldconfig or
    // start-stop-daemon applet, and for a fixture a no-op is faithful enough.
    bb = bb
        .file("usr/sbin/ldconfig", 0o755, b"#!/bin/sh\nexit 0\n")
        .file("usr/sbin/start-stop-daemon", 0o755, b"#!/bin/sh\nexit 0\n");

    let mut libc = DebPackage::new("libc6", "2.36-9").required();
    libc.multi_arch = "same".into();
    let mut dpkg = DebPackage::new("dpkg", "1.21.22")
        .essential()
        .pre_depends("libc6")
        .dir("etc/dpkg")
        .dir("etc/dpkg/dpkg.cfg.d")
        .dir("etc/alternatives")
        .dir("var/lib/dpkg")
        .dir("usr/share/dpkg");
    let mut libs = std::collections::BTreeSet::new();
    for bin in [
        "dpkg",
        "dpkg-query",
        "dpkg-divert",
        "dpkg-trigger",
        "update-alternatives",
        "dpkg-deb",
        "dpkg-statoverride",
    ] {
        let path = format!("/usr/bin/{bin}");
        let bytes = std::fs::read(&path).ok()?;
        dpkg = dpkg.file(&format!("usr/bin/{bin}"), 0o755, &bytes);
        let ldd = std::process::Command::new("ldd").arg(&path).output().ok()?;
        for word in String::from_utf8_lossy(&ldd.stdout).split_whitespace() {
            if word.starts_with('/') {
                libs.insert(word.to_owned());
            }
        }
    }
    if let Ok(helper) = std::fs::read("/usr/bin/dpkg-maintscript-helper") {
        dpkg = dpkg.file("usr/bin/dpkg-maintscript-helper", 0o755, &helper);
    }
    for lib in libs {
        let real = std::fs::canonicalize(&lib).ok()?;
        let bytes = std::fs::read(&real).ok()?;
        let name = Path::new(&lib).file_name()?.to_str()?.to_owned();
        let dir = if name.starts_with("ld-linux") {
            "usr/lib64"
        } else {
            "usr/lib/x86_64-linux-gnu"
        };
        libc = libc.file(&format!("{dir}/{name}"), 0o755, &bytes);
    }
    Some(vec![base, bb, libc, dpkg])
}
