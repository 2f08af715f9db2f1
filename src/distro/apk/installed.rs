//! Writers for the apk database files a real apk-tools reads back:
//! `lib/apk/db/installed`, `lib/apk/db/scripts.tar` and `lib/apk/db/triggers`.
//! Pure: metadata in, bytes out (field order and defaults as apk-tools 2.x).

use super::index::{parse_index_text, ApkPackage, Checksum};
use super::tar::{EntryKind, TarEntry};
use super::ApkError;
use std::fmt::Write as _;

const DEFAULT_DIR_MODE: u32 = 0o755;
const DEFAULT_FILE_MODE: u32 = 0o644;

/// Ownership and permission bits as recorded in `M:` / `a:` lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Acl {
    pub uid: u32,
    pub gid: u32,
    pub mode: u32,
}

impl Acl {
    fn is_default(&self, mode: u32) -> bool {
        self.uid == 0 && self.gid == 0 && self.mode == mode
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstalledFile {
    /// Base name inside its directory.
    pub name: String,
    pub acl: Acl,
    /// `Z:` identity of the content (symlinks: of the target string).
    pub checksum: Option<Checksum>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstalledDir {
    /// Path relative to the root, no leading or trailing `/`.
    pub path: String,
    pub acl: Acl,
    pub files: Vec<InstalledFile>,
}

/// One package record of the installed database. The package's repository
/// tag (`pkg.repo_tag`) is written as `s:`, as apk records a package that
/// came from a tagged repository.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct InstalledPackage {
    pub pkg: ApkPackage,
    pub dirs: Vec<InstalledDir>,
    /// `f:` flags, as apk keeps them.
    pub broken: BrokenFlags,
}

/// The `f:` line: what `apk fix` (with no arguments) will repair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BrokenFlags {
    /// `f`: some files are missing or modified.
    pub files: bool,
    /// `s`: a package script failed or never ran; `apk fix` reinstalls the
    /// package, which runs its scripts again.
    pub script: bool,
    /// `x`: extended attributes could not be applied.
    pub xattr: bool,
    /// `S`: file checksums are SHA-256 truncated to 160 bits.
    pub sha256_160: bool,
}

impl BrokenFlags {
    fn letters(&self) -> String {
        [
            (self.files, 'f'),
            (self.script, 's'),
            (self.xattr, 'x'),
            (self.sha256_160, 'S'),
        ]
        .iter()
        .filter(|(on, _)| *on)
        .map(|(_, c)| *c)
        .collect()
    }

    fn parse(v: &str) -> Option<Self> {
        let mut f = Self::default();
        for c in v.chars() {
            match c {
                'f' => f.files = true,
                's' => f.script = true,
                'x' => f.xattr = true,
                'S' => f.sha256_160 = true,
                _ => return None,
            }
        }
        Some(f)
    }
}

fn write_header(out: &mut String, p: &ApkPackage) {
    let mut line = |k: char, v: &str| {
        if !v.is_empty() {
            let _ = writeln!(out, "{k}:{v}");
        }
    };
    let deps = |d: &[super::Dependency]| {
        d.iter()
            .map(|x| x.to_string())
            .collect::<Vec<_>>()
            .join(" ")
    };
    line(
        'C',
        &p.checksum
            .as_ref()
            .map(|c| c.to_string())
            .unwrap_or_default(),
    );
    line('P', &p.name);
    line('V', &p.version);
    line('A', &p.arch);
    line('S', &p.size.to_string());
    line('I', &p.installed_size.to_string());
    line('T', &p.description);
    line('U', &p.url);
    line('L', &p.license);
    line('o', &p.origin);
    line('m', &p.maintainer);
    line(
        't',
        &p.build_time.map(|t| t.to_string()).unwrap_or_default(),
    );
    line('c', &p.commit);
    line(
        'k',
        &p.provider_priority
            .map(|k| k.to_string())
            .unwrap_or_default(),
    );
    line('D', &deps(&p.depends));
    line('p', &deps(&p.provides));
    line('i', &deps(&p.install_if));
    line('r', &deps(&p.replaces));
    line(
        'q',
        &p.replaces_priority
            .map(|q| q.to_string())
            .unwrap_or_default(),
    );
}

/// Serialises `lib/apk/db/installed`: per package the index header, then
/// `F:` directories with `M:` when not root:root 0755, each followed by its
/// `R:` files with `a:` when not root:root 0644 and `Z:` checksums.
pub fn write_installed<'a>(pkgs: impl IntoIterator<Item = &'a InstalledPackage>) -> Vec<u8> {
    let mut out = String::new();
    for ip in pkgs {
        write_header(&mut out, &ip.pkg);
        if let Some(tag) = &ip.pkg.repo_tag {
            let _ = writeln!(out, "s:{tag}");
        }
        let flags = ip.broken.letters();
        if !flags.is_empty() {
            let _ = writeln!(out, "f:{flags}");
        }
        for d in &ip.dirs {
            let _ = writeln!(out, "F:{}", d.path);
            if !d.acl.is_default(DEFAULT_DIR_MODE) {
                let _ = writeln!(out, "M:{}:{}:{:o}", d.acl.uid, d.acl.gid, d.acl.mode);
            }
            for f in &d.files {
                let _ = writeln!(out, "R:{}", f.name);
                if !f.acl.is_default(DEFAULT_FILE_MODE) {
                    let _ = writeln!(out, "a:{}:{}:{:o}", f.acl.uid, f.acl.gid, f.acl.mode);
                }
                if let Some(c) = &f.checksum {
                    let _ = writeln!(out, "Z:{c}");
                }
            }
        }
        out.push('\n');
    }
    out.into_bytes()
}

fn parse_acl(what: &str, line: usize, v: &str) -> Result<Acl, ApkError> {
    let bad = || ApkError::IndexSyntax {
        what: what.to_string(),
        line,
        reason: format!("bad uid:gid:mode {v:?}"),
    };
    let mut it = v.split(':');
    let (Some(u), Some(g), Some(m), None) = (it.next(), it.next(), it.next(), it.next()) else {
        return Err(bad());
    };
    Ok(Acl {
        uid: u.parse().map_err(|_| bad())?,
        gid: g.parse().map_err(|_| bad())?,
        mode: u32::from_str_radix(m, 8).map_err(|_| bad())?,
    })
}

/// Reads an installed database (for upgrades, and to test the writer).
pub fn parse_installed(what: &str, text: &str) -> Result<Vec<InstalledPackage>, ApkError> {
    let mut out = Vec::new();
    let mut header = String::new();
    let mut dirs: Vec<InstalledDir> = Vec::new();
    let mut tag: Option<String> = None;
    let mut broken = BrokenFlags::default();
    let syntax = |line: usize, reason: &str| ApkError::IndexSyntax {
        what: what.to_string(),
        line,
        reason: reason.to_string(),
    };
    let mut flush = |header: &mut String,
                     dirs: &mut Vec<InstalledDir>,
                     tag: &mut Option<String>,
                     broken: &mut BrokenFlags|
     -> Result<(), ApkError> {
        if header.is_empty() {
            return Ok(());
        }
        let mut pkgs = parse_index_text(what, header)?;
        let mut pkg = pkgs.pop().ok_or_else(|| syntax(0, "empty record"))?;
        pkg.repo_tag = tag.take();
        out.push(InstalledPackage {
            pkg,
            dirs: std::mem::take(dirs),
            broken: std::mem::take(broken),
        });
        header.clear();
        Ok(())
    };
    for (i, line) in text.lines().enumerate() {
        let no = i + 1;
        if line.is_empty() {
            flush(&mut header, &mut dirs, &mut tag, &mut broken)?;
            continue;
        }
        let (k, v) = line
            .split_once(':')
            .ok_or_else(|| syntax(no, "expected K:value"))?;
        match k {
            "s" => tag = Some(v.to_string()),
            "f" => broken = BrokenFlags::parse(v).ok_or_else(|| syntax(no, "unknown f: flag"))?,
            "F" => dirs.push(InstalledDir {
                path: v.to_string(),
                acl: Acl {
                    uid: 0,
                    gid: 0,
                    mode: DEFAULT_DIR_MODE,
                },
                files: Vec::new(),
            }),
            "M" => {
                dirs.last_mut()
                    .ok_or_else(|| syntax(no, "M: before F:"))?
                    .acl = parse_acl(what, no, v)?
            }
            "R" => dirs
                .last_mut()
                .ok_or_else(|| syntax(no, "R: before F:"))?
                .files
                .push(InstalledFile {
                    name: v.to_string(),
                    acl: Acl {
                        uid: 0,
                        gid: 0,
                        mode: DEFAULT_FILE_MODE,
                    },
                    checksum: None,
                }),
            "a" | "Z" => {
                let file = dirs
                    .last_mut()
                    .and_then(|d| d.files.last_mut())
                    .ok_or_else(|| syntax(no, "a:/Z: before R:"))?;
                if k == "a" {
                    file.acl = parse_acl(what, no, v)?;
                } else {
                    file.checksum =
                        Some(Checksum::parse(v).ok_or_else(|| syntax(no, "bad Z: checksum"))?);
                }
            }
            _ => {
                header.push_str(line);
                header.push('\n');
            }
        }
    }
    flush(&mut header, &mut dirs, &mut tag, &mut broken)?;
    Ok(out)
}

/// Builds the `F:`/`R:` file list of a package from its verified data tar
/// entries, in apk's order: directories as first seen, files under their parent.
pub fn dirs_from_entries(entries: &[TarEntry]) -> Vec<InstalledDir> {
    let mut dirs: Vec<InstalledDir> = Vec::new();
    let dir_index = |dirs: &mut Vec<InstalledDir>, path: &str| -> usize {
        if let Some(i) = dirs.iter().position(|d| d.path == path) {
            return i;
        }
        dirs.push(InstalledDir {
            path: path.to_string(),
            acl: Acl {
                uid: 0,
                gid: 0,
                mode: DEFAULT_DIR_MODE,
            },
            files: Vec::new(),
        });
        dirs.len() - 1
    };
    for e in entries {
        let path = e.path.trim_start_matches("./").trim_end_matches('/');
        let acl = Acl {
            uid: e.uid,
            gid: e.gid,
            mode: e.mode,
        };
        if e.kind == EntryKind::Dir {
            let i = dir_index(&mut dirs, path);
            dirs[i].acl = acl;
            continue;
        }
        let (parent, name) = path.rsplit_once('/').unwrap_or(("", path));
        let checksum = e
            .pax
            .get("APK-TOOLS.checksum.SHA1")
            .and_then(|h| hex::decode(h).ok())
            .and_then(|b| b.try_into().ok())
            .map(Checksum::Sha1);
        let i = dir_index(&mut dirs, parent);
        dirs[i].files.push(InstalledFile {
            name: name.to_string(),
            acl: Acl {
                mode: e.mode | symlink_mode(e),
                ..acl
            },
            checksum,
        });
    }
    dirs
}

fn symlink_mode(e: &TarEntry) -> u32 {
    // apk records symlinks with 0777 whatever the tar says.
    if e.kind == EntryKind::Symlink {
        0o777
    } else {
        0
    }
}

/// One script of one package for `scripts.tar`.
pub struct ScriptEntry<'a> {
    pub pkg: &'a ApkPackage,
    /// Control file name, e.g. `.post-install`.
    pub script: &'a str,
    pub content: &'a [u8],
}

/// apk-tools' PUT_OCTAL: zero-filled; with `nul` the last byte is a NUL,
/// without it (size, mtime) all bytes are digits.
fn put_octal(field: &mut [u8], value: u64, nul: bool) {
    let digits = field.len() - usize::from(nul);
    let s = format!("{value:0digits$o}");
    let s = &s.as_bytes()[s.len().saturating_sub(digits)..];
    field[..digits].copy_from_slice(s);
    if nul {
        field[digits] = 0;
    }
}

fn gnu_header(name: &str, size: u64, mode: u32, mtime: u64) -> [u8; 512] {
    let mut h = [0u8; 512];
    let n = name.len().min(100);
    h[..n].copy_from_slice(&name.as_bytes()[..n]);
    put_octal(&mut h[100..108], u64::from(mode & 0o7777), true);
    put_octal(&mut h[108..116], 0, true);
    put_octal(&mut h[116..124], 0, true);
    put_octal(&mut h[124..136], size, false);
    put_octal(&mut h[136..148], mtime, false);
    h[156] = b'0';
    h[257..265].copy_from_slice(b"ustar  \0");
    h[265..269].copy_from_slice(b"root");
    h[297..301].copy_from_slice(b"root");
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|&c| u32::from(c)).sum();
    let chk = format!("{sum:06o}\0 ");
    h[148..156].copy_from_slice(chk.as_bytes());
    h
}

/// Serialises `scripts.tar`: entries named `<name>-<ver>.<Q1 identity>.<script>`
/// (GNU tar headers, root:root 0755, the package's build time as mtime),
/// as apk-tools writes it.
pub fn write_scripts_tar(scripts: &[ScriptEntry]) -> Vec<u8> {
    let mut out = Vec::new();
    for s in scripts {
        let mtime = s.pkg.build_time.unwrap_or(0);
        let id = s
            .pkg
            .checksum
            .as_ref()
            .map(|c| c.to_string())
            .unwrap_or_default();
        let name = format!("{}-{}.{}{}", s.pkg.name, s.pkg.version, id, s.script);
        out.extend_from_slice(&gnu_header(&name, s.content.len() as u64, 0o755, mtime));
        out.extend_from_slice(s.content);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }
    out.extend_from_slice(&[0u8; 1024]);
    out
}

/// Serialises `triggers`: `<identity> <glob> <glob>…` per package with triggers.
pub fn write_triggers(entries: &[(&ApkPackage, &[String])]) -> Vec<u8> {
    let mut out = String::new();
    for (pkg, globs) in entries {
        if globs.is_empty() {
            continue;
        }
        let id = pkg
            .checksum
            .as_ref()
            .map(|c| c.to_string())
            .unwrap_or_default();
        let _ = writeln!(out, "{id} {}", globs.join(" "));
    }
    out.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::distro::apk::tar::parse_entries;

    #[test]
    fn writes_record_with_acls_and_checksums() {
        let text = "C:Q1Kj3RbNPwNvV6ReC0gZp9n/p08QE=\nP:busybox-binsh\nV:1\nA:x86_64\nS:1\nI:1\nk:100\nD:busybox=1\np:/bin/sh cmd:sh=1\nr:x\nF:bin\nR:sh\na:0:0:777\nZ:Q1pcfTfDNEbNKQc2s1tia7da05M8Q=\nF:tmp\nM:0:0:1777\n\n";
        let parsed = parse_installed("t", text).unwrap();
        assert_eq!(parsed[0].dirs[1].acl.mode, 0o1777);
        assert_eq!(String::from_utf8(write_installed(&parsed)).unwrap(), text);
    }

    #[test]
    fn tag_and_broken_flags_round_trip_in_apk_order() {
        let text = "C:Q1Kj3RbNPwNvV6ReC0gZp9n/p08QE=\nP:a\nV:1\nS:1\nI:1\nr:b\nq:3\ns:edge\nf:sS\nF:bin\n\n";
        let parsed = parse_installed("t", text).unwrap();
        assert_eq!(parsed[0].pkg.repo_tag.as_deref(), Some("edge"));
        assert!(parsed[0].broken.script && parsed[0].broken.sha256_160);
        assert!(!parsed[0].broken.files);
        assert_eq!(String::from_utf8(write_installed(&parsed)).unwrap(), text);
        assert!(parse_installed("t", "P:a\nV:1\nf:z\n").is_err());
    }

    #[test]
    fn scripts_tar_is_readable_and_named_like_apk() {
        let pkg = ApkPackage {
            name: "busybox".into(),
            version: "1.0-r0".into(),
            checksum: Checksum::parse("Q1Meo+LHGPSi3uY9gIouEVb9z8Fbo="),
            build_time: Some(1),
            ..Default::default()
        };
        let tar = write_scripts_tar(&[ScriptEntry {
            pkg: &pkg,
            script: ".post-install",
            content: b"#!/bin/sh\n",
        }]);
        let e = parse_entries("t", &tar).unwrap();
        assert_eq!(
            e[0].path,
            "busybox-1.0-r0.Q1Meo+LHGPSi3uY9gIouEVb9z8Fbo=.post-install"
        );
        assert_eq!(e[0].mode, 0o755);
        let trig = write_triggers(&[(&pkg, &["/bin".to_string(), "/usr/bin".to_string()][..])]);
        assert_eq!(trig, b"Q1Meo+LHGPSi3uY9gIouEVb9z8Fbo= /bin /usr/bin\n");
    }
}
