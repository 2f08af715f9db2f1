//! Debian package versions (`[epoch:]upstream[-revision]`) with dpkg's
//! parsing rules and ordering.
//!
//! Ordering follows dpkg's `verrevcmp` exactly: `~` sorts before everything
//! (even the end of the string), letters before non-letters, and digit runs
//! compare as numbers. Digit runs are compared as strings (leading zeros
//! skipped, then length, then lexically) so arbitrarily long numbers never
//! overflow.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

/// Largest epoch dpkg accepts (it stores the epoch in a C `int`).
const MAX_EPOCH: u32 = i32::MAX as u32;

/// Why a version string was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid version {text:?}: {reason}")]
pub struct VersionError {
    pub text: String,
    pub reason: &'static str,
    /// True for the problems dpkg only warns about (bad characters, an
    /// upstream part not starting with a digit); `Version::parse_lax`
    /// accepts those.
    pub lax_ok: bool,
}

/// A parsed Debian version. Equality and ordering are dpkg's: `1.0`,
/// `0:1.0` and `1.0-0` are all equal, so `Version` deliberately has no
/// `Hash` impl (a structural hash would disagree with `Eq`).
///
/// The text is kept once, as written (trimmed), with the upstream part's
/// bounds: one allocation per version, and `Display` gives back exactly
/// what was parsed.
#[derive(Debug, Clone)]
pub struct Version {
    epoch: u32,
    upstream_start: u32,
    upstream_end: u32,
    text: Box<str>,
}

impl Version {
    /// Parses with every dpkg check, including the ones dpkg only warns
    /// about. This is what archive indexes must satisfy.
    pub fn parse(text: &str) -> Result<Version, VersionError> {
        let (version, warning) = parse_inner(text)?;
        match warning {
            Some(reason) => Err(VersionError {
                text: text.to_string(),
                reason,
                lax_ok: true,
            }),
            None => Ok(version),
        }
    }

    /// Parses like dpkg does when reading its own database: syntax errors
    /// fail, but odd characters or a non-digit start are tolerated.
    pub fn parse_lax(text: &str) -> Result<Version, VersionError> {
        parse_inner(text).map(|(v, _)| v)
    }

    pub fn epoch(&self) -> u32 {
        self.epoch
    }

    pub fn upstream(&self) -> &str {
        &self.text[self.upstream_start as usize..self.upstream_end as usize]
    }

    /// The Debian revision; empty when the version has none.
    pub fn revision(&self) -> &str {
        self.text
            .get(self.upstream_end as usize + 1..)
            .unwrap_or("")
    }

    /// Whether `self OP other` holds, e.g. `installed.satisfies(Op::Ge, &wanted)`.
    pub fn satisfies(&self, op: Op, other: &Version) -> bool {
        let ord = self.cmp(other);
        match op {
            Op::Lt => ord == Ordering::Less,
            Op::Le => ord != Ordering::Greater,
            Op::Eq => ord == Ordering::Equal,
            Op::Ge => ord != Ordering::Less,
            Op::Gt => ord == Ordering::Greater,
        }
    }
}

/// Splits and checks `text`; returns the version and the first
/// warning-level problem, if any.
fn parse_inner(text: &str) -> Result<(Version, Option<&'static str>), VersionError> {
    let fail = |reason| VersionError {
        text: text.to_string(),
        reason,
        lax_ok: false,
    };
    let trimmed = text.trim_matches(|c: char| c.is_ascii_whitespace());
    if trimmed.is_empty() {
        return Err(fail("version string is empty"));
    }
    if trimmed.contains(|c: char| c.is_ascii_whitespace()) {
        return Err(fail("version string has embedded spaces"));
    }
    if u32::try_from(trimmed.len()).is_err() {
        return Err(fail("version string is too long"));
    }
    let (epoch, rest) = match trimmed.split_once(':') {
        Some((epoch_text, rest)) => {
            if epoch_text.is_empty() {
                return Err(fail("epoch in version is empty"));
            }
            if !epoch_text.bytes().all(|b| b.is_ascii_digit()) {
                return Err(fail("epoch in version is not a number"));
            }
            let epoch = epoch_text
                .parse::<u32>()
                .ok()
                .filter(|e| *e <= MAX_EPOCH)
                .ok_or_else(|| fail("epoch in version is too big"))?;
            if rest.is_empty() {
                return Err(fail("nothing after colon in version number"));
            }
            (epoch, rest)
        }
        None => (0, trimmed),
    };
    let (upstream, revision) = match rest.rsplit_once('-') {
        Some((_, "")) => return Err(fail("revision number is empty")),
        Some((upstream, revision)) => (upstream, revision),
        None => (rest, ""),
    };
    if upstream.is_empty() {
        return Err(fail("version number is empty"));
    }
    let warning = if !upstream.as_bytes()[0].is_ascii_digit() {
        Some("version number does not start with a digit")
    } else if !upstream.bytes().all(is_upstream_char) {
        Some("invalid character in version number")
    } else if !revision.bytes().all(is_revision_char) {
        Some("invalid character in revision number")
    } else {
        None
    };
    // Both parts are suffixes/prefixes of `trimmed`, whose length fits u32.
    let upstream_start = (trimmed.len() - rest.len()) as u32;
    let version = Version {
        epoch,
        upstream_start,
        upstream_end: upstream_start + upstream.len() as u32,
        text: trimmed.into(),
    };
    Ok((version, warning))
}

fn is_upstream_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'+' | b'~' | b':')
}

fn is_revision_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'+' | b'~')
}

impl FromStr for Version {
    type Err = VersionError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Version::parse(s)
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        self.epoch
            .cmp(&other.epoch)
            .then_with(|| compare_part(self.upstream(), other.upstream()))
            .then_with(|| compare_part(self.revision(), other.revision()))
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Version {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Version {}

/// dpkg's weight of one non-digit character; `None` is the end of the
/// string, which sorts after `~` and before everything else.
fn order(c: Option<u8>) -> i32 {
    match c {
        None => 0,
        Some(c) if c.is_ascii_digit() => 0,
        Some(c) if c.is_ascii_alphabetic() => i32::from(c),
        Some(b'~') => -1,
        Some(c) => i32::from(c) + 256,
    }
}

/// Compares one upstream or revision part the way dpkg's `verrevcmp` does:
/// alternating non-digit runs (by `order`) and digit runs (numerically).
pub fn compare_part(a: &str, b: &str) -> Ordering {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let (mut i, mut j) = (0, 0);
    let digit_at = |s: &[u8], k: usize| s.get(k).is_some_and(u8::is_ascii_digit);
    while i < a.len() || j < b.len() {
        while (i < a.len() && !digit_at(a, i)) || (j < b.len() && !digit_at(b, j)) {
            let (ac, bc) = (order(a.get(i).copied()), order(b.get(j).copied()));
            if ac != bc {
                return ac.cmp(&bc);
            }
            // Equal weights here mean both are the same class of non-digit,
            // so neither index is at the end.
            i += 1;
            j += 1;
        }
        while a.get(i) == Some(&b'0') {
            i += 1;
        }
        while b.get(j) == Some(&b'0') {
            j += 1;
        }
        let mut first_diff = Ordering::Equal;
        while digit_at(a, i) && digit_at(b, j) {
            if first_diff == Ordering::Equal {
                first_diff = a[i].cmp(&b[j]);
            }
            i += 1;
            j += 1;
        }
        if digit_at(a, i) {
            return Ordering::Greater;
        }
        if digit_at(b, j) {
            return Ordering::Less;
        }
        if first_diff != Ordering::Equal {
            return first_diff;
        }
    }
    Ordering::Equal
}

/// A version relation operator as written in relationship fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    /// `<<`
    Lt,
    /// `<=` (also the obsolete `<`)
    Le,
    /// `=`
    Eq,
    /// `>=` (also the obsolete `>`)
    Ge,
    /// `>>`
    Gt,
}

impl Op {
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Lt => "<<",
            Op::Le => "<=",
            Op::Eq => "=",
            Op::Ge => ">=",
            Op::Gt => ">>",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid version relation operator {0:?}")]
pub struct OpError(pub String);

impl FromStr for Op {
    type Err = OpError;

    /// Accepts the obsolete `<` and `>`, which dpkg reads as `<=` and `>=`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "<<" => Ok(Op::Lt),
            "<=" | "<" => Ok(Op::Le),
            "=" => Ok(Op::Eq),
            ">=" | ">" => Ok(Op::Ge),
            ">>" => Ok(Op::Gt),
            _ => Err(OpError(s.to_string())),
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The `debian-binary` format version of a .deb (`MAJOR.MINOR`, e.g.
/// `2.0`), parsed with dpkg's rules: digits only, no surrounding spaces,
/// one optional trailing newline, each number fitting a C `int`.
pub fn parse_deb_format_version(text: &str) -> Result<(u32, u32), VersionError> {
    let fail = |reason| VersionError {
        text: text.to_string(),
        reason,
        lax_ok: false,
    };
    let body = text.strip_suffix('\n').unwrap_or(text);
    let (major, minor) = body
        .split_once('.')
        .ok_or_else(|| fail("format version has no '.'"))?;
    let number = |part: &str| -> Result<u32, VersionError> {
        if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
            return Err(fail("format version part is not a number"));
        }
        part.parse::<u32>()
            .ok()
            .filter(|n| *n <= MAX_EPOCH)
            .ok_or_else(|| fail("format version part is too big"))
    };
    Ok((number(major)?, number(minor)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        s.parse().unwrap()
    }

    #[test]
    fn splits_epoch_upstream_revision() {
        let x = v("2:1.0-a:b-3");
        assert_eq!((x.epoch(), x.upstream(), x.revision()), (2, "1.0-a:b", "3"));
        let x = v("1.0");
        assert_eq!((x.epoch(), x.upstream(), x.revision()), (0, "1.0", ""));
    }

    #[test]
    fn display_round_trips_exactly() {
        for s in ["0:1.0", "1.0", "1:2.3-4", "1.0-0", "2.41-12+deb13u1"] {
            assert_eq!(v(s).to_string(), s);
        }
    }

    #[test]
    fn ordering_matches_dpkg() {
        assert!(v("1.0~rc1") < v("1.0"));
        assert!(v("1.0") < v("1.0a"));
        assert!(v("1.0a") < v("1.0+"));
        assert_eq!(v("1.0"), v("0:1.0-0"));
        assert!(v("1:0") > v("99999"));
        let huge = "1".repeat(60);
        assert!(v(&format!("{huge}0")) > v(&huge));
        assert!(v(&format!("000{huge}")) == v(&huge));
    }

    #[test]
    fn satisfies_each_operator() {
        let (a, b) = (v("1.0"), v("2.0"));
        assert!(a.satisfies(Op::Lt, &b) && a.satisfies(Op::Le, &b));
        assert!(!a.satisfies(Op::Eq, &b) && !a.satisfies(Op::Ge, &b) && !a.satisfies(Op::Gt, &b));
        assert!(a.satisfies(Op::Le, &a) && a.satisfies(Op::Ge, &a) && a.satisfies(Op::Eq, &a));
        assert_eq!("<".parse::<Op>().unwrap(), Op::Le);
        assert_eq!(">".parse::<Op>().unwrap(), Op::Ge);
        assert!("=>".parse::<Op>().is_err());
    }

    #[test]
    fn strict_and_lax_parsing() {
        let err = Version::parse("foo5.2").unwrap_err();
        assert!(err.lax_ok);
        assert!(err.to_string().contains("foo5.2"));
        assert_eq!(Version::parse_lax("foo5.2").unwrap().upstream(), "foo5.2");
        assert!(!Version::parse_lax("1:").unwrap_err().lax_ok);
        assert!(Version::parse_lax("2147483648:1").is_err());
        assert_eq!(v("2147483647:1").epoch(), 2147483647);
    }
}
