//! v2 `.apk` reader and verifier: [signature] + control (.PKGINFO, scripts) +
//! data, three gzip members. Every check apk-tools' `extract_v2.c` makes is
//! done here, in memory, before anything can be written to a rootfs.

use super::gzsplit::{split_members, GzMember};
use super::index::{ApkPackage, Checksum, Dependency};
use super::sign::{decide, is_signature_segment, verify_segment, Trust, TrustedKeys};
use super::tar::{parse_entries, EntryKind, TarEntry};
use super::ApkError;
use sha1::Sha1;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::ops::Range;

/// Control-member files apk runs as package scripts, in apk-tools' own
/// order of script types (the order `scripts.tar` keeps a package's scripts).
pub const SCRIPT_NAMES: [&str; 7] = [
    ".pre-install",
    ".post-install",
    ".pre-deinstall",
    ".post-deinstall",
    ".pre-upgrade",
    ".post-upgrade",
    ".trigger",
];

const PAX_SHA1: &str = "APK-TOOLS.checksum.SHA1";
/// Decompressed-size ceiling when the index gives no installed size.
const DEFAULT_MAX_UNPACKED: u64 = 4 << 30;
const MAX_CONTROL: u64 = 16 << 20;

/// The parsed `.PKGINFO` (`key = value` lines; repeated keys accumulate).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PkgInfo {
    pub fields: Vec<(String, String)>,
}

impl PkgInfo {
    pub fn parse(what: &str, text: &str) -> Result<PkgInfo, ApkError> {
        let mut fields = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim_end();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (k, v) = line.split_once('=').ok_or_else(|| ApkError::IndexSyntax {
                what: format!("{what} .PKGINFO"),
                line: i + 1,
                reason: format!("expected `key = value`, got {line:?}"),
            })?;
            let v = v.strip_prefix(' ').unwrap_or(v);
            fields.push((k.trim().to_string(), v.to_string()));
        }
        Ok(PkgInfo { fields })
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub fn get_all<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.fields
            .iter()
            .filter(move |(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    fn deps(&self, key: &str) -> Vec<Dependency> {
        self.get_all(key)
            .flat_map(str::split_whitespace)
            .filter_map(Dependency::parse)
            .collect()
    }

    /// The index stanza this package would get (what `apk index` writes),
    /// given its identity and file size.
    pub fn to_package(&self, checksum: Option<Checksum>, size: u64) -> ApkPackage {
        let s = |k: &str| self.get(k).unwrap_or_default().to_string();
        let n = |k: &str| self.get(k).and_then(|v| v.parse().ok());
        ApkPackage {
            name: s("pkgname"),
            version: s("pkgver"),
            arch: s("arch"),
            checksum,
            size,
            installed_size: n("size").unwrap_or(0),
            description: s("pkgdesc"),
            url: s("url"),
            license: s("license"),
            origin: s("origin"),
            maintainer: s("maintainer"),
            build_time: n("builddate"),
            commit: s("commit"),
            depends: self.deps("depend"),
            provides: self.deps("provides"),
            install_if: self.deps("install_if"),
            replaces: self.deps("replaces"),
            provider_priority: n("provider_priority").map(|v: u64| v as u32),
            replaces_priority: n("replaces_priority").map(|v: u64| v as u32),
            repo_tag: None,
        }
    }
}

/// A package whose signature, identity, size and data hash all verified.
#[derive(Debug, Clone)]
pub struct VerifiedApk {
    /// `name-version` of the expected index entry, used in error messages.
    pub what: String,
    pub pkginfo: PkgInfo,
    /// Script file name (`.post-install`, …) → content.
    pub scripts: BTreeMap<String, Vec<u8>>,
    /// SHA-1 identity of the raw control member (`C:Q1…`).
    pub identity: Checksum,
    pub trust: Trust,
    /// Raw compressed byte ranges in the input.
    pub control_range: Range<usize>,
    pub data_range: Range<usize>,
    /// The decompressed data tar (its compressed form matched `datahash`).
    /// Private, so the entries checked once stay the entries of these bytes.
    data_tar: Vec<u8>,
    /// `data_entries`' result once it succeeded: the download step checks
    /// every file's SHA-1 before anything is written, and the install step
    /// needs the same entries again without hashing the files a second time.
    checked_entries: std::sync::OnceLock<Vec<TarEntry>>,
}

fn check_identity(
    what: &str,
    expected: &ApkPackage,
    control_raw: &[u8],
) -> Result<Checksum, ApkError> {
    let sha1 = Checksum::Sha1(Sha1::digest(control_raw).into());
    let actual = match &expected.checksum {
        Some(Checksum::Sha256(_)) => Checksum::Sha256(Sha256::digest(control_raw).into()),
        _ => sha1.clone(),
    };
    match &expected.checksum {
        Some(want) if *want != actual => Err(ApkError::IdentityMismatch {
            what: what.to_string(),
            expected: want.to_string(),
            actual: actual.to_string(),
        }),
        Some(_) => Ok(sha1),
        None => Err(ApkError::format(
            what,
            "index entry has no C: identity to check against",
        )),
    }
}

fn read_control(
    what: &str,
    member: &GzMember,
) -> Result<(PkgInfo, BTreeMap<String, Vec<u8>>), ApkError> {
    let entries = parse_entries(what, &member.data)?;
    let mut pkginfo = None;
    let mut scripts = BTreeMap::new();
    for e in &entries {
        let content = &member.data[e.data.clone()];
        let name = e.path.as_str();
        if e.kind != EntryKind::File {
            return Err(ApkError::format(
                what,
                format!("control entry {name:?} is not a regular file"),
            ));
        }
        match name {
            ".PKGINFO" => {
                let text = std::str::from_utf8(content)
                    .map_err(|_| ApkError::format(what, ".PKGINFO is not UTF-8"))?;
                pkginfo = Some(PkgInfo::parse(what, text)?);
            }
            ".INSTALL" => {
                return Err(ApkError::format(
                    what,
                    "legacy .INSTALL script is not supported",
                ))
            }
            n if SCRIPT_NAMES.contains(&n) => {
                scripts.insert(n.to_string(), content.to_vec());
            }
            n if n.starts_with(".SIGN.") || n == "APKINDEX" || n == "DESCRIPTION" => {
                return Err(ApkError::format(
                    what,
                    format!("{n:?} misplaced in the control member"),
                ))
            }
            n if !n.starts_with('.') => {
                return Err(ApkError::format(
                    what,
                    format!("data entry {n:?} inside the control member"),
                ))
            }
            // Unknown metadata files are ignored, as apk does.
            _ => {}
        }
    }
    let pkginfo =
        pkginfo.ok_or_else(|| ApkError::format(what, "control member has no .PKGINFO"))?;
    Ok((pkginfo, scripts))
}

/// Opens and fully verifies a v2 package against its index entry `expected`.
/// Nothing is trusted until this returns Ok: the caller must not extract or
/// cache on error (and should evict a cached copy).
pub fn open_package(
    bytes: &[u8],
    expected: &ApkPackage,
    keys: &TrustedKeys,
    allow_untrusted: bool,
) -> Result<VerifiedApk, ApkError> {
    let what = expected.id();
    if expected.size != 0 && bytes.len() as u64 != expected.size {
        return Err(ApkError::SizeMismatch {
            what,
            expected: expected.size,
            actual: bytes.len() as u64,
        });
    }
    let limit = match expected.installed_size {
        0 => DEFAULT_MAX_UNPACKED,
        n => n.saturating_mul(2).saturating_add(16 << 20),
    };
    let mut members = split_members(&what, bytes, 3, limit.saturating_add(MAX_CONTROL))?;
    let first = parse_entries(&what, &members[0].data)?;
    let signed = is_signature_segment(&first);
    let (control, data) = match (signed, members.as_slice()) {
        (true, [_, c, d]) | (false, [c, d]) => (c, d),
        (true, _) => {
            return Err(ApkError::format(
                &what,
                format!(
                    "signed package has {} gzip members, expected 3",
                    members.len()
                ),
            ))
        }
        (false, _) => {
            return Err(ApkError::format(
                &what,
                format!(
                    "unsigned package has {} gzip members, expected 2",
                    members.len()
                ),
            ))
        }
    };
    let identity = check_identity(&what, expected, &bytes[control.range.clone()])?;
    let (pkginfo, scripts) = read_control(&what, control)?;
    let datahash = pkginfo.get("datahash").map(str::to_string);
    // Legacy packages without datahash are signed over control + data.
    let signed_range = match datahash {
        Some(_) => control.range.clone(),
        None => control.range.start..data.range.end,
    };
    let outcome = if signed {
        verify_segment(&what, &first, &members[0].data, &bytes[signed_range], keys)
    } else {
        Err(ApkError::Unsigned { what: what.clone() })
    };
    let trust = decide(outcome, allow_untrusted)?;
    if let Some(want) = datahash {
        let actual = hex::encode(Sha256::digest(&bytes[data.range.clone()]));
        if !actual.eq_ignore_ascii_case(want.trim()) {
            return Err(ApkError::DataHashMismatch {
                what,
                expected: want,
                actual,
            });
        }
    }
    for (key, want) in [("pkgname", &expected.name), ("pkgver", &expected.version)] {
        if pkginfo.get(key) != Some(want.as_str()) {
            return Err(ApkError::format(
                &what,
                format!(
                    ".PKGINFO {key} is {:?}, index says {want:?}",
                    pkginfo.get(key)
                ),
            ));
        }
    }
    let (control_range, data_range) = (control.range.clone(), data.range.clone());
    // The data member is last; move its (possibly large) tar out instead of copying.
    let data_tar = members.pop().map(|m| m.data).unwrap_or_default();
    Ok(VerifiedApk {
        what,
        pkginfo,
        scripts,
        identity,
        trust,
        control_range,
        data_range,
        data_tar,
        checked_entries: std::sync::OnceLock::new(),
    })
}

fn unsafe_path_reason(path: &str) -> Option<&'static str> {
    if path.starts_with('/') {
        return Some("absolute path");
    }
    if path.bytes().any(|c| c < 0x20 || c == 0x7f) {
        return Some("control character in name");
    }
    if path.split('/').any(|c| c == "..") {
        return Some("'..' component");
    }
    None
}

/// apk's name rules, checked before anything is extracted: no absolute or
/// `..` paths, no control characters (HOSTILE 1, 2), no symlink replacing the
/// root (9), hard links only to regular files earlier in this package (8).
/// The rootfs layer still resolves every path inside the root (3–7).
fn check_entry_names(what: &str, entries: &[TarEntry]) -> Result<(), ApkError> {
    let bad = |entry: &str, reason: &str| ApkError::Tar {
        what: what.to_string(),
        entry: entry.to_string(),
        reason: format!("malicious file name: {reason}"),
    };
    let mut files_so_far = std::collections::BTreeSet::new();
    for e in entries {
        if let Some(reason) = unsafe_path_reason(&e.path) {
            return Err(bad(&e.path, reason));
        }
        let normal = e.path.trim_start_matches("./").trim_end_matches('/');
        match e.kind {
            EntryKind::Symlink if normal.is_empty() || normal == "." => {
                return Err(bad(&e.path, "symlink replaces the root"));
            }
            EntryKind::Hardlink => {
                if let Some(reason) = unsafe_path_reason(&e.link_name) {
                    return Err(bad(&e.path, reason));
                }
                let target = e.link_name.trim_start_matches("./");
                if !files_so_far.contains(target) {
                    return Err(bad(&e.path, "no hard link target in archive"));
                }
            }
            EntryKind::File => {
                files_so_far.insert(normal.to_string());
            }
            _ => {}
        }
    }
    Ok(())
}

/// Parses a package's data tar (`what` names the package in errors) and
/// checks it before anything is extracted: apk's name rules, no control
/// entries, and every regular file and symlink against its
/// `APK-TOOLS.checksum.SHA1` PAX record (FILE_INTEGRITY). Paths are
/// returned as stored; the rootfs layer validates them again (HOSTILE 1–9).
pub fn verify_data_entries(what: &str, data_tar: &[u8]) -> Result<Vec<TarEntry>, ApkError> {
    let entries = parse_entries(what, data_tar)?;
    check_entry_names(what, &entries)?;
    for e in &entries {
        if e.path.starts_with(".SIGN.") || e.path == ".PKGINFO" {
            return Err(ApkError::format(
                what,
                format!("control entry {:?} inside the data member", e.path),
            ));
        }
        let Some(want) = e.pax.get(PAX_SHA1) else {
            continue;
        };
        let actual = match e.kind {
            EntryKind::File => Sha1::digest(data_tar.get(e.data.clone()).unwrap_or_default()),
            EntryKind::Symlink => Sha1::digest(e.link_name.as_bytes()),
            _ => continue,
        };
        if !hex::encode(actual).as_bytes().eq_ignore_ascii_case(want) {
            return Err(ApkError::FileChecksumMismatch {
                what: what.to_string(),
                entry: e.path.clone(),
            });
        }
    }
    Ok(entries)
}

impl VerifiedApk {
    /// Parses the data tar and checks it by apk's rules (see
    /// [`verify_data_entries`]).
    pub fn data_entries(&self) -> Result<Vec<TarEntry>, ApkError> {
        if let Some(entries) = self.checked_entries.get() {
            return Ok(entries.clone());
        }
        let entries = verify_data_entries(&self.what, &self.data_tar)?;
        Ok(self.checked_entries.get_or_init(|| entries).clone())
    }

    /// The decompressed data tar.
    pub fn data_tar(&self) -> &[u8] {
        &self.data_tar
    }

    /// Content of a regular-file entry returned by `data_entries`.
    pub fn content(&self, entry: &TarEntry) -> &[u8] {
        self.data_tar.get(entry.data.clone()).unwrap_or_default()
    }

    /// The index stanza matching this package (as `apk index` would write it).
    pub fn index_entry(&self, size: u64) -> ApkPackage {
        self.pkginfo.to_package(Some(self.identity.clone()), size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::distro::apk::tar::tests::{entry, pax_entry};
    use flate2::{write::GzEncoder, Compression};
    use std::io::Write;

    fn gz(data: &[u8]) -> Vec<u8> {
        let mut e = GzEncoder::new(Vec::new(), Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    /// An unsigned two-member package and the index entry matching it.
    fn build(control_extra: &[Vec<u8>], data_tar: &[u8]) -> (Vec<u8>, ApkPackage) {
        let data = gz(data_tar);
        let info = format!(
            "pkgname = t\npkgver = 1-r0\nsize = 10\ndatahash = {}\n",
            hex::encode(Sha256::digest(&data))
        );
        let mut ctl = entry(".PKGINFO", b'0', info.as_bytes());
        for extra in control_extra {
            ctl.extend_from_slice(extra);
        }
        let control = gz(&ctl);
        let bytes = [control.clone(), data].concat();
        let pkg = ApkPackage {
            name: "t".into(),
            version: "1-r0".into(),
            checksum: Some(Checksum::Sha1(Sha1::digest(&control).into())),
            size: bytes.len() as u64,
            ..Default::default()
        };
        (bytes, pkg)
    }

    fn file_with_sha1(name: &str, content: &[u8], sha1_hex: &str) -> Vec<u8> {
        let mut t = pax_entry(&[(PAX_SHA1, sha1_hex.as_bytes())]);
        t.extend(entry(name, b'0', content));
        t
    }

    #[test]
    fn accepts_consistent_unsigned_package_only_when_allowed() {
        let good = hex::encode(Sha1::digest(b"hi"));
        let (bytes, pkg) = build(&[], &file_with_sha1("etc/x", b"hi", &good));
        let keys = TrustedKeys::new();
        assert!(matches!(
            open_package(&bytes, &pkg, &keys, false),
            Err(ApkError::Unsigned { .. })
        ));
        let v = open_package(&bytes, &pkg, &keys, true).unwrap();
        let entries = v.data_entries().unwrap();
        assert_eq!(v.content(&entries[0]), b"hi");
    }

    #[test]
    fn rejects_file_checksum_mismatch() {
        let wrong = hex::encode(Sha1::digest(b"other"));
        let (bytes, pkg) = build(&[], &file_with_sha1("etc/x", b"hi", &wrong));
        let v = open_package(&bytes, &pkg, &TrustedKeys::new(), true).unwrap();
        let err = v.data_entries().unwrap_err();
        assert!(
            matches!(err, ApkError::FileChecksumMismatch { ref entry, .. } if entry == "etc/x")
        );
    }

    #[test]
    fn rejects_install_script_and_mixed_entries() {
        let keys = TrustedKeys::new();
        for extra in [
            entry(".INSTALL", b'0', b"#!/bin/sh"),
            entry("APKINDEX", b'0', b"P:x"),
            entry("usr/bin/x", b'0', b""),
        ] {
            let (bytes, pkg) = build(&[extra], b"");
            let err = open_package(&bytes, &pkg, &keys, true).unwrap_err();
            assert!(matches!(err, ApkError::Format { .. }), "{err}");
        }
    }

    #[test]
    fn rejects_control_entries_inside_the_data_member() {
        let keys = TrustedKeys::new();
        let good = hex::encode(Sha1::digest(b"hi"));
        for control in [
            entry(".PKGINFO", b'0', b"pkgname = evil\n"),
            entry(
                ".SIGN.RSA.alpine-devel@lists.alpinelinux.org.rsa.pub",
                b'0',
                b"x",
            ),
        ] {
            // Behind a legitimate file, so the check cannot stop at the first entry.
            let tar = [file_with_sha1("etc/x", b"hi", &good), control].concat();
            let (bytes, pkg) = build(&[], &tar);
            let v = open_package(&bytes, &pkg, &keys, true).unwrap();
            let err = v.data_entries().unwrap_err();
            assert!(
                matches!(err, ApkError::Format { .. }) && err.to_string().contains("control entry"),
                "{err}"
            );
        }
        // Only the control member's own names are refused, not a file that
        // happens to share one deeper in the tree.
        let (bytes, pkg) = build(&[], &entry("usr/share/.PKGINFO", b'0', b""));
        let v = open_package(&bytes, &pkg, &keys, true).unwrap();
        assert_eq!(v.data_entries().unwrap().len(), 1);
    }

    #[test]
    fn rejects_malicious_names_and_dangling_hardlinks() {
        let keys = TrustedKeys::new();
        let mut link_first = entry("bin/ln", b'1', b"");
        link_first[157..163].copy_from_slice(b"bin/sh");
        // entry() computed the checksum before the link name was set: redo it.
        link_first[148..156].copy_from_slice(b"        ");
        let sum: u32 = link_first[..512].iter().map(|&c| u32::from(c)).sum();
        link_first[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
        for tar in [
            entry("/etc/x", b'0', b""),
            entry("a/../../x", b'0', b""),
            entry("bad\nname", b'0', b""),
            entry(".", b'2', b""),
            link_first,
        ] {
            let (bytes, pkg) = build(&[], &tar);
            let v = open_package(&bytes, &pkg, &keys, true).unwrap();
            let err = v.data_entries().unwrap_err();
            assert!(err.to_string().contains("malicious"), "{err}");
        }
    }

    #[test]
    fn keeps_scripts() {
        let (bytes, pkg) = build(&[entry(".post-install", b'0', b"#!/bin/sh\n")], b"");
        let v = open_package(&bytes, &pkg, &TrustedKeys::new(), true).unwrap();
        assert_eq!(v.scripts[".post-install"], b"#!/bin/sh\n");
    }
}
