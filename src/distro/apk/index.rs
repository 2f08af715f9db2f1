//! APKINDEX: the signed index (`APKINDEX.tar.gz`) and its text format.

use super::gzsplit::split_members;
use super::sign::{decide, is_signature_segment, verify_segment, Trust, TrustedKeys};
use super::tar::parse_entries;
use super::version::{self, VersionOp};
use super::ApkError;
use std::fmt;

/// Decompressed index size limit (the real 5,000-package indexes are ~2.5 MB).
const MAX_INDEX_SIZE: u64 = 256 << 20;
/// apk reads DESCRIPTION only when it is this small.
const MAX_DESCRIPTION: usize = 160;

/// A package identity: `Q1` + base64 SHA-1 (or `Q2` SHA-256) of the control member.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Checksum {
    Sha1([u8; 20]),
    Sha256([u8; 32]),
}

impl Checksum {
    /// Parses `Q1…`/`Q2…` (base64) or `X1…` (hex SHA-1).
    pub fn parse(s: &str) -> Option<Checksum> {
        let (tag, rest) = (s.get(..2)?, s.get(2..)?);
        let bytes = match tag {
            "Q1" | "Q2" => base64_decode(rest)?,
            "X1" | "X2" => hex::decode(rest).ok()?,
            _ => return None,
        };
        match (tag, bytes.len()) {
            ("Q1" | "X1", 20) => bytes.try_into().ok().map(Checksum::Sha1),
            ("Q2" | "X2", 32) => bytes.try_into().ok().map(Checksum::Sha256),
            _ => None,
        }
    }

    pub fn bytes(&self) -> &[u8] {
        match self {
            Checksum::Sha1(b) => b,
            Checksum::Sha256(b) => b,
        }
    }
}

impl fmt::Display for Checksum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tag = match self {
            Checksum::Sha1(_) => "Q1",
            Checksum::Sha256(_) => "Q2",
        };
        write!(f, "{tag}{}", base64_encode(self.bytes()))
    }
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

pub(crate) fn base64_encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(B64[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

const INVALID: u32 = 0xff;
/// Reverse of `B64`: byte → 6-bit value, 0xff for bytes outside the alphabet.
const B64_VALUE: [u8; 256] = {
    let mut t = [0xffu8; 256];
    let mut i = 0;
    while i < 64 {
        t[B64[i] as usize] = i as u8;
        i += 1;
    }
    t
};

/// Standard base64 with padding; lenient about non-zero padding bits (as apk).
pub(crate) fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let s = s.trim_end_matches('=');
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.bytes() {
        let v = u32::from(*B64_VALUE.get(usize::from(c))?);
        if v == INVALID {
            return None;
        }
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// One dependency atom: `name`, `name>=1.2`, `!name`, `so:libc.musl-x86_64.so.1`,
/// `name@tag`, `name~1.2`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Dependency {
    pub name: String,
    /// `VersionOp::ANY` when no version is given.
    pub op: VersionOp,
    pub version: Option<String>,
    /// `!name`: the package must not be installed (or not in this version range).
    pub conflict: bool,
    /// `name@tag`: only packages from repositories tagged `tag` may satisfy it.
    pub tag: Option<String>,
}

impl Dependency {
    pub fn any(name: &str) -> Self {
        Dependency {
            name: name.to_string(),
            op: VersionOp::ANY,
            version: None,
            conflict: false,
            tag: None,
        }
    }

    /// Parses one dependency word; `None` if it is malformed.
    pub fn parse(word: &str) -> Option<Dependency> {
        let (conflict, rest) = match word.strip_prefix('!') {
            Some(r) => (true, r),
            None => (false, word),
        };
        let op_at = rest.find(['<', '>', '=', '~']);
        let (name_part, constraint) = match op_at {
            Some(i) => (&rest[..i], Some(&rest[i..])),
            None => (rest, None),
        };
        let (name, tag) = match name_part.split_once('@') {
            Some((n, t)) if !t.is_empty() => (n, Some(t.to_string())),
            Some(_) => return None,
            None => (name_part, None),
        };
        if name.is_empty() || name.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return None;
        }
        let (op, version) = match constraint {
            None => (VersionOp::ANY, None),
            Some(c) => {
                let split = c.find(|ch| !matches!(ch, '<' | '>' | '=' | '~'))?;
                let op = VersionOp::parse(&c[..split])?;
                (op, Some(c[split..].to_string()))
            }
        };
        Some(Dependency {
            name: name.to_string(),
            op,
            version,
            conflict,
            tag,
        })
    }

    /// Does a package (or provide) of version `v` satisfy the version part?
    /// `None` means an unversioned provide, which only satisfies unversioned deps.
    pub fn version_matches(&self, v: Option<&str>) -> bool {
        match (&self.version, v) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(want), Some(have)) => version::matches(have, self.op, want),
        }
    }
}

impl fmt::Display for Dependency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.conflict {
            f.write_str("!")?;
        }
        f.write_str(&self.name)?;
        if let Some(t) = &self.tag {
            write!(f, "@{t}")?;
        }
        if let Some(v) = &self.version {
            write!(f, "{}{v}", self.op)?;
        }
        Ok(())
    }
}

/// One package stanza of an APKINDEX (or of lib/apk/db/installed).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApkPackage {
    pub name: String,
    pub version: String,
    pub arch: String,
    pub checksum: Option<Checksum>,
    pub size: u64,
    pub installed_size: u64,
    pub description: String,
    pub url: String,
    pub license: String,
    pub origin: String,
    pub maintainer: String,
    pub build_time: Option<u64>,
    pub commit: String,
    pub depends: Vec<Dependency>,
    pub provides: Vec<Dependency>,
    pub install_if: Vec<Dependency>,
    pub replaces: Vec<Dependency>,
    pub provider_priority: Option<u32>,
    pub replaces_priority: Option<u32>,
    /// Repository tag this package came from (`@REPO @tag`); None = untagged.
    /// Set by the caller; not part of the index text.
    pub repo_tag: Option<String>,
}

impl ApkPackage {
    /// `name-version`, as apk prints packages.
    pub fn id(&self) -> String {
        format!("{}-{}", self.name, self.version)
    }
}

/// A parsed, verified APKINDEX.
#[derive(Debug, Clone)]
pub struct ApkIndex {
    pub packages: Vec<ApkPackage>,
    pub description: Option<String>,
    /// The trusted key that signed the index, None if accepted untrusted.
    pub signer: Option<String>,
    pub trust: Trust,
}

fn deps(what: &str, line: usize, value: &str) -> Result<Vec<Dependency>, ApkError> {
    value
        .split_whitespace()
        .map(|w| {
            Dependency::parse(w).ok_or_else(|| ApkError::IndexSyntax {
                what: what.to_string(),
                line,
                reason: format!("malformed dependency {w:?}"),
            })
        })
        .collect()
}

fn number<T: std::str::FromStr>(
    what: &str,
    line: usize,
    key: char,
    v: &str,
) -> Result<T, ApkError> {
    v.trim().parse().map_err(|_| ApkError::IndexSyntax {
        what: what.to_string(),
        line,
        reason: format!("{key}: is not a number: {v:?}"),
    })
}

/// Applies one `K:value` field to `pkg`. Repeated dependency lines accumulate
/// (real indexes split long `p:` lists). Unknown keys are ignored (as apk does);
/// keys only found in installed databases (F:, R:, Z:, …) too.
fn apply_field(
    what: &str,
    line: usize,
    pkg: &mut ApkPackage,
    key: char,
    v: &str,
) -> Result<(), ApkError> {
    match key {
        'P' => pkg.name = v.to_string(),
        'V' => pkg.version = v.to_string(),
        'A' => pkg.arch = v.to_string(),
        'C' => {
            pkg.checksum = Some(Checksum::parse(v).ok_or_else(|| ApkError::IndexSyntax {
                what: what.to_string(),
                line,
                reason: format!("bad C: checksum {v:?}"),
            })?)
        }
        'S' => pkg.size = number(what, line, key, v)?,
        'I' => pkg.installed_size = number(what, line, key, v)?,
        'T' => pkg.description = v.to_string(),
        'U' => pkg.url = v.to_string(),
        'L' => pkg.license = v.to_string(),
        'o' => pkg.origin = v.to_string(),
        'm' => pkg.maintainer = v.to_string(),
        't' => pkg.build_time = Some(number(what, line, key, v)?),
        'c' => pkg.commit = v.to_string(),
        'D' => pkg.depends.extend(deps(what, line, v)?),
        'p' => pkg.provides.extend(deps(what, line, v)?),
        'i' => pkg.install_if.extend(deps(what, line, v)?),
        'r' => pkg.replaces.extend(deps(what, line, v)?),
        'k' => pkg.provider_priority = Some(number(what, line, key, v)?),
        'q' => pkg.replaces_priority = Some(number(what, line, key, v)?),
        _ => {}
    }
    Ok(())
}

fn finish(what: &str, line: usize, pkg: ApkPackage) -> Result<ApkPackage, ApkError> {
    if pkg.name.is_empty() || pkg.version.is_empty() {
        return Err(ApkError::IndexSyntax {
            what: what.to_string(),
            line,
            reason: format!("record without P: or V: (package {:?})", pkg.name),
        });
    }
    Ok(pkg)
}

/// `package NAME: ` for the record starting at line index `start` (its
/// `P:` may come after the bad line, as `C:` leads a record), or nothing.
fn record_label(lines: &[&str], start: usize) -> String {
    lines
        .iter()
        .skip(start)
        .take_while(|l| !l.is_empty())
        .find_map(|l| l.strip_prefix("P:"))
        .map(|name| format!("package {name}: "))
        .unwrap_or_default()
}

/// Parses the APKINDEX text format: `K:value` lines, records separated by
/// blank lines. `what` names the source in errors.
pub fn parse_index_text(what: &str, text: &str) -> Result<Vec<ApkPackage>, ApkError> {
    let mut out = Vec::new();
    let mut cur: Option<(usize, ApkPackage)> = None;
    let lines: Vec<&str> = text.lines().collect();
    for (i, raw) in lines.iter().enumerate() {
        let line = i + 1;
        if raw.is_empty() {
            if let Some((start, pkg)) = cur.take() {
                out.push(finish(what, start, pkg)?);
            }
            continue;
        }
        let mut chars = raw.chars();
        let (Some(key), Some(':')) = (chars.next(), chars.next()) else {
            return Err(ApkError::IndexSyntax {
                what: what.to_string(),
                line,
                reason: format!(
                    "{}expected K:value, got {raw:?}",
                    record_label(&lines, cur.as_ref().map_or(i, |c| c.0 - 1))
                ),
            });
        };
        let value = chars.as_str();
        let (start, pkg) = cur.get_or_insert_with(|| (line, ApkPackage::default()));
        let start = *start;
        apply_field(what, line, pkg, key, value).map_err(|e| match e {
            ApkError::IndexSyntax { what, line, reason } => ApkError::IndexSyntax {
                what,
                line,
                reason: format!("{}{reason}", record_label(&lines, start - 1)),
            },
            other => other,
        })?;
    }
    if let Some((start, pkg)) = cur.take() {
        out.push(finish(what, start, pkg)?);
    }
    Ok(out)
}

/// Verifies and parses `APKINDEX.tar.gz`: [signature member] + member holding
/// `APKINDEX` and optional `DESCRIPTION`. Without a trusted valid signature it
/// fails unless `allow_untrusted`, which is then recorded in `trust`.
pub fn parse_index(
    bytes: &[u8],
    keys: &TrustedKeys,
    allow_untrusted: bool,
) -> Result<ApkIndex, ApkError> {
    const WHAT: &str = "APKINDEX.tar.gz";
    let members = split_members(WHAT, bytes, 2, MAX_INDEX_SIZE)?;
    let first = parse_entries(WHAT, &members[0].data)?;
    let (outcome, index_member) = if is_signature_segment(&first) {
        let Some(signed) = members.get(1) else {
            return Err(ApkError::format(
                WHAT,
                "signature member without an index member",
            ));
        };
        let outcome = verify_segment(
            WHAT,
            &first,
            &members[0].data,
            &bytes[signed.range.clone()],
            keys,
        );
        (outcome, signed)
    } else {
        if members.len() > 1 {
            return Err(ApkError::format(
                WHAT,
                "extra gzip member after an unsigned index",
            ));
        }
        (
            Err(ApkError::Unsigned {
                what: WHAT.to_string(),
            }),
            &members[0],
        )
    };
    let trust = decide(outcome, allow_untrusted)?;
    let entries = parse_entries(WHAT, &index_member.data)?;
    let mut text = None;
    let mut description = None;
    for e in &entries {
        let data = &index_member.data[e.data.clone()];
        match e.path.as_str() {
            "APKINDEX" => text = Some(data),
            "DESCRIPTION" if data.len() <= MAX_DESCRIPTION => {
                description = Some(String::from_utf8_lossy(data).trim_end().to_string())
            }
            "DESCRIPTION" => {}
            other if other.starts_with(".SIGN.") || other == ".PKGINFO" => {
                return Err(ApkError::format(
                    WHAT,
                    format!("package entry {other:?} mixed into the index"),
                ))
            }
            _ => {}
        }
    }
    let text = text.ok_or_else(|| ApkError::format(WHAT, "no APKINDEX entry"))?;
    let text =
        std::str::from_utf8(text).map_err(|_| ApkError::format(WHAT, "APKINDEX is not UTF-8"))?;
    let packages = parse_index_text("APKINDEX", text)?;
    Ok(ApkIndex {
        packages,
        description,
        signer: trust.signer().map(str::to_string),
        trust,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_dependency_forms() {
        let d = Dependency::parse("!foo@edge>=1.2-r0").unwrap();
        assert!(d.conflict);
        assert_eq!(d.name, "foo");
        assert_eq!(d.tag.as_deref(), Some("edge"));
        assert_eq!(d.version.as_deref(), Some("1.2-r0"));
        assert_eq!(d.to_string(), "!foo@edge>=1.2-r0");
        let so = Dependency::parse("so:libc.musl-x86_64.so.1").unwrap();
        assert_eq!(so.name, "so:libc.musl-x86_64.so.1");
        assert!(so.op.is_any());
        assert!(Dependency::parse("foo>=").is_none());
        assert!(Dependency::parse("").is_none());
    }

    #[test]
    fn checksum_round_trips() {
        let c = Checksum::parse("Q1LLq2qDNrS/qRnhxQ3hsY/sHbQnc=").unwrap();
        assert_eq!(c.to_string(), "Q1LLq2qDNrS/qRnhxQ3hsY/sHbQnc=");
        assert!(Checksum::parse("Q1short").is_none());
    }

    #[test]
    fn parses_records_and_reports_line() {
        let text = "C:Q1LLq2qDNrS/qRnhxQ3hsY/sHbQnc=\nP:a\nV:1.0-r0\nD:b>=2 !c\nk:10\n\nP:b\nV:2\n";
        let p = parse_index_text("t", text).unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].depends.len(), 2);
        assert_eq!(p[0].provider_priority, Some(10));
        let err = parse_index_text("t", "P:a\nV:1\nS:x\n").unwrap_err();
        assert!(err.to_string().contains("line 3"), "{err}");
        assert!(parse_index_text("t", "P:a\n").is_err());
    }
}

#[cfg(test)]
mod archive_tests {
    use super::*;
    use crate::distro::apk::tar::tests::entry;
    use flate2::{write::GzEncoder, Compression};
    use std::io::Write;

    fn gz(data: &[u8]) -> Vec<u8> {
        let mut e = GzEncoder::new(Vec::new(), Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn unsigned_index_needs_allow_untrusted() {
        let body = gz(&entry("APKINDEX", b'0', b"P:a\nV:1\n\n"));
        let keys = TrustedKeys::new();
        assert!(matches!(
            parse_index(&body, &keys, false),
            Err(ApkError::Unsigned { .. })
        ));
        let idx = parse_index(&body, &keys, true).unwrap();
        assert_eq!(idx.packages.len(), 1);
        assert!(idx.signer.is_none());
    }

    #[test]
    fn rejects_package_entries_in_index_and_extra_members() {
        let mut t = entry("APKINDEX", b'0', b"P:a\nV:1\n");
        t.extend(entry(".PKGINFO", b'0', b"pkgname = a\n"));
        assert!(parse_index(&gz(&t), &TrustedKeys::new(), true).is_err());
        let two = [gz(&entry("APKINDEX", b'0', b"P:a\nV:1\n")), gz(b"x")].concat();
        assert!(parse_index(&two, &TrustedKeys::new(), true).is_err());
    }

    #[test]
    fn unknown_algorithm_only_index_is_rejected() {
        let sig = gz(&entry(".SIGN.ED25519.k.rsa.pub", b'0', b"sig"));
        let body = gz(&entry("APKINDEX", b'0', b"P:a\nV:1\n"));
        let err = parse_index(&[sig, body].concat(), &TrustedKeys::new(), false).unwrap_err();
        assert!(
            matches!(err, ApkError::UnknownSignatureAlgorithm { .. }),
            "{err}"
        );
    }

    #[test]
    fn a_bad_line_names_its_package_even_before_p() {
        let text =
            "C:Q1Meo+LHGPSi3uY9gIouEVb9z8Fbo=\nP:zlib\nV:1-r0\nI:many\n\nC:Q1x\nP:musl\nV:1-r0\n";
        let err = parse_index_text("APKINDEX", text).unwrap_err().to_string();
        assert!(
            err.contains("line 4") && err.contains("package zlib: I:"),
            "{err}"
        );
        let err = parse_index_text("APKINDEX", "P:a\nV:1-r0\n\nC:bad\nP:musl\nV:1\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("package musl: bad C:"), "{err}");
        let err = parse_index_text("APKINDEX", "P:busybox\nV:1-r0\ngarbage\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("package busybox: expected K:value"), "{err}");
    }
}
