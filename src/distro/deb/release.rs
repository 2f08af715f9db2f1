//! The Release file (the signed payload of InRelease or Release.gpg):
//! repository identity, validity dates and the digests of every index.
//!
//! Parsing happens only after the signature has been verified; `check`
//! then applies apt's acceptance policy (HOSTILE 24, 26, 29): no Date in
//! the future, no expired Valid-Until, no replay of an older Release, the
//! suite we asked for, no identity drift, and SHA256 for every index used.

use std::collections::BTreeMap;

use super::control::{self, ControlError};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReleaseError {
    #[error("Release file: {0}")]
    Syntax(#[from] ControlError),
    #[error("Release file: field {field}: cannot parse date {value:?}")]
    BadDate { field: &'static str, value: String },
    #[error("Release file: field {field}: malformed line {line:?}")]
    BadHashLine { field: &'static str, line: String },
    #[error("Release file: {path:?} is listed with different sizes in different hash lists")]
    SizeDisagrees { path: String },
    #[error(
        "Release file lists no SHA256 or SHA512 digests (only MD5Sum/SHA1): refusing weak hashes"
    )]
    NoStrongHashes,
    #[error("Release file: {path} has only MD5Sum/SHA1 digests; refusing weak hashes")]
    WeakHashOnly { path: String },
    #[error("Release file: {path} has no SHA256 digest")]
    NoSha256 { path: String },
    #[error("Release file has no Date field")]
    MissingDate,
    #[error("Release file Date {date} is {ahead} s in the future (allowed: {allowed} s); check the clock or the mirror")]
    DateInFuture {
        date: String,
        ahead: i64,
        allowed: i64,
    },
    #[error("Release file expired: Valid-Until {valid_until} is in the past")]
    Expired { valid_until: String },
    #[error("Release file Date {date} is older than the previously accepted {previous} (replayed or stale mirror)")]
    Replay { date: String, previous: String },
    #[error("Release file is for suite {suite:?} / codename {codename:?}, but {expected:?} was requested")]
    SuiteMismatch {
        expected: String,
        suite: String,
        codename: String,
    },
    #[error("Release file {field} changed from {previous:?} to {current:?} since the last run")]
    Drift {
        field: &'static str,
        previous: String,
        current: String,
    },
    #[error("Release file does not list architecture {arch:?} (it has: {available})")]
    UnknownArchitecture { arch: String, available: String },
    #[error(
        "Release file lists no Packages index for component {component:?}, architecture {arch:?}"
    )]
    NoPackagesIndex { component: String, arch: String },
}

/// One index file listed in the Release: its size and digests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexFile {
    pub size: u64,
    pub sha256: [u8; 32],
    pub sha512: Option<[u8; 64]>,
}

/// How an index file is compressed, from its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IndexCompression {
    Xz,
    Gz,
    None,
}

impl IndexCompression {
    /// Suffix of the file name, including the dot (empty for none).
    pub fn extension(self) -> &'static str {
        match self {
            IndexCompression::Xz => ".xz",
            IndexCompression::Gz => ".gz",
            IndexCompression::None => "",
        }
    }
}

/// The fields apt compares between runs to detect a repository changing
/// identity under the same URL (HOSTILE 29).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReleaseIdentity {
    pub origin: Option<String>,
    pub label: Option<String>,
    pub suite: Option<String>,
    pub codename: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Release {
    pub origin: Option<String>,
    pub label: Option<String>,
    pub suite: Option<String>,
    pub codename: Option<String>,
    pub version: Option<String>,
    /// Unix seconds.
    pub date: Option<i64>,
    /// Unix seconds.
    pub valid_until: Option<i64>,
    pub architectures: Vec<String>,
    pub components: Vec<String>,
    pub acquire_by_hash: bool,
    /// `No-Support-for-Architecture-all: Packages`: `all` packages appear
    /// only in the per-architecture Packages files.
    pub no_support_for_architecture_all: bool,
    /// Every file with a SHA256 digest, by path relative to the Release.
    pub files: BTreeMap<String, IndexFile>,
    /// Files listed only with MD5Sum/SHA1 (or only SHA512): present in the
    /// repository but refused for use.
    pub unusable_files: BTreeMap<String, ReleaseError>,
}

/// Acceptance policy for a freshly verified Release.
#[derive(Debug, Clone)]
pub struct ReleasePolicy<'a> {
    /// Current time, unix seconds.
    pub now: i64,
    /// Must equal the Release's Suite or Codename.
    pub expected_suite: &'a str,
    /// For snapshot mirrors, whose Valid-Until is long past.
    pub ignore_valid_until: bool,
    /// How far Date may lie in the future (apt's Max-FutureTime).
    pub max_future_secs: i64,
    /// Date of the last accepted Release for this source (replay check).
    pub previous_date: Option<i64>,
    /// Identity of the last accepted Release for this source (drift check).
    pub previous_identity: Option<ReleaseIdentity>,
}

impl<'a> ReleasePolicy<'a> {
    pub fn new(now: i64, expected_suite: &'a str) -> Self {
        ReleasePolicy {
            now,
            expected_suite,
            ignore_valid_until: false,
            max_future_secs: 10,
            previous_date: None,
            previous_identity: None,
        }
    }

    /// The policy for one source: a snapshot's Release is a frozen copy
    /// whose Valid-Until is long past, so only for a snapshot source is that
    /// check off; signature, Date, suite and replay checks stay on.
    pub fn for_source(now: i64, expected_suite: &'a str, snapshot: bool) -> Self {
        ReleasePolicy {
            ignore_valid_until: snapshot,
            ..ReleasePolicy::new(now, expected_suite)
        }
    }
}

/// Parses an RFC 2822 date as found in Release files. Archives write the
/// zone as `UTC`, which RFC 2822 does not define, so it is mapped to
/// `+0000` first.
pub fn parse_release_date(field: &'static str, value: &str) -> Result<i64, ReleaseError> {
    let trimmed = value.trim();
    let normalised = match trimmed.strip_suffix("UTC") {
        Some(head) => format!("{}+0000", head),
        None => trimmed.to_string(),
    };
    chrono::DateTime::parse_from_rfc2822(&normalised)
        .map(|d| d.timestamp())
        .map_err(|_| ReleaseError::BadDate {
            field,
            value: trimmed.to_string(),
        })
}

/// Formats unix seconds for messages.
fn show_time(secs: i64) -> String {
    chrono::DateTime::from_timestamp(secs, 0)
        .map(|d| d.format("%a, %d %b %Y %H:%M:%S UTC").to_string())
        .unwrap_or_else(|| format!("@{secs}"))
}

/// Digest lists by field name, strongest last so it wins on conflicts.
const HASH_FIELDS: [&str; 4] = ["MD5Sum", "SHA1", "SHA512", "SHA256"];

impl Release {
    /// Parses the verified Release text.
    pub fn parse(text: &str) -> Result<Release, ReleaseError> {
        let para = control::single_paragraph(text)?;
        let owned = |name: &str| para.get(name).map(|v| v.trim().to_string());
        let words = |name: &str| -> Vec<String> {
            para.get(name)
                .unwrap_or("")
                .split_ascii_whitespace()
                .map(str::to_string)
                .collect()
        };
        let date = para
            .get("Date")
            .map(|v| parse_release_date("Date", v))
            .transpose()?;
        let valid_until = para
            .get("Valid-Until")
            .map(|v| parse_release_date("Valid-Until", v))
            .transpose()?;
        let (files, unusable_files) = parse_file_lists(&para)?;
        Ok(Release {
            origin: owned("Origin"),
            label: owned("Label"),
            suite: owned("Suite"),
            codename: owned("Codename"),
            version: owned("Version"),
            date,
            valid_until,
            architectures: words("Architectures"),
            components: words("Components"),
            acquire_by_hash: para
                .get("Acquire-By-Hash")
                .is_some_and(|v| v.trim().eq_ignore_ascii_case("yes")),
            no_support_for_architecture_all: para
                .get("No-Support-for-Architecture-all")
                .is_some_and(|v| v.trim() == "Packages"),
            files,
            unusable_files,
        })
    }

    pub fn identity(&self) -> ReleaseIdentity {
        ReleaseIdentity {
            origin: self.origin.clone(),
            label: self.label.clone(),
            suite: self.suite.clone(),
            codename: self.codename.clone(),
        }
    }

    /// Applies the acceptance policy; the first violation is returned.
    pub fn check(&self, policy: &ReleasePolicy) -> Result<(), ReleaseError> {
        let date = self.date.ok_or(ReleaseError::MissingDate)?;
        let ahead = date - policy.now;
        if ahead > policy.max_future_secs {
            return Err(ReleaseError::DateInFuture {
                date: show_time(date),
                ahead,
                allowed: policy.max_future_secs,
            });
        }
        if let Some(valid_until) = self.valid_until {
            if !policy.ignore_valid_until && valid_until < policy.now {
                return Err(ReleaseError::Expired {
                    valid_until: show_time(valid_until),
                });
            }
        }
        if let Some(previous) = policy.previous_date {
            if date < previous {
                return Err(ReleaseError::Replay {
                    date: show_time(date),
                    previous: show_time(previous),
                });
            }
        }
        let expected = policy.expected_suite;
        if self.suite.as_deref() != Some(expected) && self.codename.as_deref() != Some(expected) {
            return Err(ReleaseError::SuiteMismatch {
                expected: expected.to_string(),
                suite: self.suite.clone().unwrap_or_default(),
                codename: self.codename.clone().unwrap_or_default(),
            });
        }
        if let Some(previous) = &policy.previous_identity {
            self.check_no_drift(previous)?;
        }
        Ok(())
    }

    fn check_no_drift(&self, previous: &ReleaseIdentity) -> Result<(), ReleaseError> {
        let current = self.identity();
        let pairs = [
            ("Origin", &previous.origin, &current.origin),
            ("Label", &previous.label, &current.label),
            ("Suite", &previous.suite, &current.suite),
            ("Codename", &previous.codename, &current.codename),
        ];
        for (field, before, now) in pairs {
            if before != now {
                return Err(ReleaseError::Drift {
                    field,
                    previous: before.clone().unwrap_or_default(),
                    current: now.clone().unwrap_or_default(),
                });
            }
        }
        Ok(())
    }

    /// Every Packages index the Release lists for `component`/`arch` with
    /// a SHA256 digest, `.xz` first, then `.gz`, then uncompressed (which
    /// Debian lists but does not serve); never empty.
    pub fn packages_indexes(
        &self,
        component: &str,
        arch: &str,
    ) -> Result<Vec<(&str, &IndexFile, IndexCompression)>, ReleaseError> {
        if !self.architectures.is_empty() && !self.architectures.iter().any(|a| a == arch) {
            return Err(ReleaseError::UnknownArchitecture {
                arch: arch.to_string(),
                available: self.architectures.join(" "),
            });
        }
        // debian-security names its components `updates/main` but lists
        // the files under `main/`; accept either spelling.
        let mut prefixes = vec![component];
        if let Some((_, last)) = component.rsplit_once('/') {
            prefixes.push(last);
        }
        let mut refused = None;
        for prefix in prefixes {
            let mut found = Vec::new();
            for compression in [
                IndexCompression::Xz,
                IndexCompression::Gz,
                IndexCompression::None,
            ] {
                let path = format!("{prefix}/binary-{arch}/Packages{}", compression.extension());
                if let Some((key, file)) = self.files.get_key_value(&path) {
                    found.push((key.as_str(), file, compression));
                } else if refused.is_none() {
                    refused = self.unusable_files.get(&path).cloned();
                }
            }
            if !found.is_empty() {
                return Ok(found);
            }
        }
        Err(refused.unwrap_or_else(|| ReleaseError::NoPackagesIndex {
            component: component.to_string(),
            arch: arch.to_string(),
        }))
    }

    /// Where `path` can be fetched by its digest when the Release sets
    /// `Acquire-By-Hash: yes` (`dir/by-hash/SHA256/<hex>`).
    pub fn by_hash_path(path: &str, file: &IndexFile) -> String {
        let dir = path.rsplit_once('/').map_or("", |(d, _)| d);
        let hex = hex::encode(file.sha256);
        if dir.is_empty() {
            format!("by-hash/SHA256/{hex}")
        } else {
            format!("{dir}/by-hash/SHA256/{hex}")
        }
    }
}

/// Size, SHA512 and SHA256 seen so far for one path.
type Digests = (u64, Option<[u8; 64]>, Option<[u8; 32]>);

type FileLists = (BTreeMap<String, IndexFile>, BTreeMap<String, ReleaseError>);

/// Collects the digest lists into files usable with SHA256 and files that
/// are listed only with weaker (or only other) digests.
fn parse_file_lists(para: &control::Paragraph<'_>) -> Result<FileLists, ReleaseError> {
    // path -> (size, SHA512, SHA256); MD5Sum/SHA1 only register the path.
    let mut seen: BTreeMap<String, Digests> = BTreeMap::new();
    for field in HASH_FIELDS {
        for line in para.lines_of(field) {
            let (digest, size, path) = split_hash_line(field, line)?;
            let entry = seen.entry(path.to_string()).or_insert((size, None, None));
            if entry.0 != size {
                return Err(ReleaseError::SizeDisagrees {
                    path: path.to_string(),
                });
            }
            let bad_line = || ReleaseError::BadHashLine {
                field,
                line: line.to_string(),
            };
            match field {
                "SHA512" => {
                    let mut d = [0u8; 64];
                    hex::decode_to_slice(digest, &mut d).map_err(|_| bad_line())?;
                    entry.1 = Some(d);
                }
                "SHA256" => {
                    let mut d = [0u8; 32];
                    hex::decode_to_slice(digest, &mut d).map_err(|_| bad_line())?;
                    entry.2 = Some(d);
                }
                _ => {}
            }
        }
    }
    if !seen.is_empty()
        && seen
            .values()
            .all(|(_, s512, s256)| s512.is_none() && s256.is_none())
    {
        return Err(ReleaseError::NoStrongHashes);
    }
    let mut files = BTreeMap::new();
    let mut unusable = BTreeMap::new();
    for (path, (size, sha512, sha256)) in seen {
        match (sha256, sha512) {
            (Some(sha256), _) => {
                files.insert(
                    path,
                    IndexFile {
                        size,
                        sha256,
                        sha512,
                    },
                );
            }
            (None, Some(_)) => {
                unusable.insert(path.clone(), ReleaseError::NoSha256 { path });
            }
            (None, None) => {
                unusable.insert(path.clone(), ReleaseError::WeakHashOnly { path });
            }
        }
    }
    Ok((files, unusable))
}

/// ` <hex> <size> <path>`, with a path that stays inside the repository.
fn split_hash_line<'a>(
    field: &'static str,
    line: &'a str,
) -> Result<(&'a str, u64, &'a str), ReleaseError> {
    let bad = || ReleaseError::BadHashLine {
        field,
        line: line.to_string(),
    };
    let mut parts = line.split_ascii_whitespace();
    let (Some(digest), Some(size), Some(path), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad());
    };
    let size: u64 = size.parse().map_err(|_| bad())?;
    let unsafe_path = path.starts_with('/')
        || path.split('/').any(|c| c == ".." || c.is_empty())
        || path.contains(|c: char| c.is_control());
    if unsafe_path {
        return Err(bad());
    }
    Ok((digest, size, path))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The first choice of [`Release::packages_indexes`].
    fn packages_index<'r>(
        r: &'r Release,
        component: &str,
        arch: &str,
    ) -> Result<(&'r str, &'r IndexFile, IndexCompression), ReleaseError> {
        r.packages_indexes(component, arch)
            .map(|mut all| all.swap_remove(0))
    }

    const SHA_A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const SHA_B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
    // 2024-11-09 10:46:01 UTC
    const DATE: i64 = 1_731_149_161;

    fn sample() -> String {
        format!(
            "Origin: Debian\nLabel: Debian\nSuite: stable\nVersion: 13.2\nCodename: trixie\n\
             Date: Sat, 09 Nov 2024 10:46:01 UTC\nValid-Until: Sat, 16 Nov 2024 10:46:01 UTC\n\
             Acquire-By-Hash: yes\nNo-Support-for-Architecture-all: Packages\n\
             Architectures: all amd64 arm64\nComponents: main contrib\nDescription: x\n\
             MD5Sum:\n 0123 10 main/binary-amd64/Packages\n 0123 5 main/binary-arm64/Packages.gz\n\
             SHA256:\n {SHA_A} 10 main/binary-amd64/Packages\n {SHA_B} 4 main/binary-amd64/Packages.xz\n"
        )
    }

    #[test]
    fn parses_fields_and_file_list() {
        let r = Release::parse(&sample()).unwrap();
        assert_eq!(r.suite.as_deref(), Some("stable"));
        assert_eq!(r.codename.as_deref(), Some("trixie"));
        assert_eq!(r.version.as_deref(), Some("13.2"));
        assert_eq!(r.date, Some(DATE));
        assert_eq!(r.valid_until, Some(DATE + 7 * 86400));
        assert_eq!(r.architectures, ["all", "amd64", "arm64"]);
        assert_eq!(r.components, ["main", "contrib"]);
        assert!(r.acquire_by_hash && r.no_support_for_architecture_all);
        assert_eq!(r.files.len(), 2);
        assert_eq!(r.files["main/binary-amd64/Packages"].size, 10);
        assert_eq!(r.files["main/binary-amd64/Packages.xz"].sha256, [0xbb; 32]);
    }

    #[test]
    fn parses_numeric_and_utc_dates() {
        assert_eq!(
            parse_release_date("Date", "Sat, 09 Nov 2024 10:46:01 UTC").unwrap(),
            DATE
        );
        assert_eq!(
            parse_release_date("Date", "Sat, 09 Nov 2024 10:46:01 +0000").unwrap(),
            DATE
        );
        assert_eq!(
            parse_release_date("Date", "Sat, 9 Nov 2024 11:46:01 +0100").unwrap(),
            DATE
        );
        assert!(parse_release_date("Date", "yesterday").is_err());
    }

    #[test]
    fn chooses_xz_then_gz_then_plain() {
        let r = Release::parse(&sample()).unwrap();
        let (path, file, c) = packages_index(&r, "main", "amd64").unwrap();
        assert_eq!(
            (path, file.size, c),
            ("main/binary-amd64/Packages.xz", 4, IndexCompression::Xz)
        );
        let err = packages_index(&r, "contrib", "amd64")
            .unwrap_err()
            .to_string();
        assert!(err.contains("contrib") && err.contains("amd64"), "{err}");
        let err = packages_index(&r, "main", "riscv64")
            .unwrap_err()
            .to_string();
        assert!(err.contains("riscv64"), "{err}");
        assert_eq!(
            Release::by_hash_path(path, file),
            format!("main/binary-amd64/by-hash/SHA256/{SHA_B}")
        );
    }

    #[test]
    fn lists_every_compression_of_an_index_best_first() {
        let r = Release::parse(&sample()).unwrap();
        let all: Vec<(&str, IndexCompression)> = r
            .packages_indexes("main", "amd64")
            .unwrap()
            .into_iter()
            .map(|(path, _, c)| (path, c))
            .collect();
        assert_eq!(
            all,
            [
                ("main/binary-amd64/Packages.xz", IndexCompression::Xz),
                ("main/binary-amd64/Packages", IndexCompression::None),
            ]
        );
    }

    #[test]
    fn accepts_updates_prefix_of_security_components() {
        let r = Release::parse(&sample()).unwrap();
        let (path, _, _) = packages_index(&r, "updates/main", "amd64").unwrap();
        assert_eq!(path, "main/binary-amd64/Packages.xz");
    }

    #[test]
    fn hostile_26_weak_hashes_only_are_refused() {
        let r = Release::parse(&sample()).unwrap();
        let err = packages_index(&r, "main", "arm64").unwrap_err();
        assert!(matches!(err, ReleaseError::WeakHashOnly { .. }), "{err}");
        assert!(err.to_string().contains("main/binary-arm64/Packages.gz"));
        let weak = "Suite: x\nDate: Sat, 09 Nov 2024 10:46:01 UTC\nMD5Sum:\n 0123 10 main/binary-amd64/Packages\nSHA1:\n 0123 10 main/binary-amd64/Packages\n";
        assert_eq!(
            Release::parse(weak).unwrap_err(),
            ReleaseError::NoStrongHashes
        );
    }

    #[test]
    fn hostile_26_malformed_or_inconsistent_lists_are_refused() {
        let conflicting =
            format!("SHA256:\n {SHA_A} 10 a/Packages\nSHA512:\n {SHA_A}{SHA_A} 11 a/Packages\n");
        assert!(matches!(
            Release::parse(&conflicting),
            Err(ReleaseError::SizeDisagrees { .. })
        ));
        for line in [
            format!(" {SHA_A} ten a/Packages"),
            format!(" {SHA_A} 10"),
            format!(" {SHA_A} 10 ../Packages"),
            format!(" {SHA_A} 10 /etc/passwd"),
            " zz 10 a/Packages".to_string(),
        ] {
            let text = format!("SHA256:\n{line}\n");
            assert!(
                matches!(Release::parse(&text), Err(ReleaseError::BadHashLine { .. })),
                "{line}"
            );
        }
    }

    #[test]
    fn hostile_24_valid_until_expired() {
        let r = Release::parse(&sample()).unwrap();
        let mut policy = ReleasePolicy::new(DATE + 8 * 86400, "trixie");
        assert!(matches!(
            r.check(&policy),
            Err(ReleaseError::Expired { .. })
        ));
        policy.ignore_valid_until = true;
        r.check(&policy).unwrap();
    }

    #[test]
    fn valid_until_is_skipped_only_for_snapshot_sources() {
        let r = Release::parse(&sample()).unwrap();
        let later = DATE + 365 * 86400;
        assert!(matches!(
            r.check(&ReleasePolicy::for_source(later, "trixie", false)),
            Err(ReleaseError::Expired { .. })
        ));
        r.check(&ReleasePolicy::for_source(later, "trixie", true))
            .unwrap();
        // Everything else is still checked for a snapshot.
        assert!(matches!(
            r.check(&ReleasePolicy::for_source(DATE - 3600, "trixie", true)),
            Err(ReleaseError::DateInFuture { .. })
        ));
        assert!(r
            .check(&ReleasePolicy::for_source(later, "bookworm", true))
            .is_err());
    }

    #[test]
    fn hostile_24_date_in_the_future() {
        let r = Release::parse(&sample()).unwrap();
        r.check(&ReleasePolicy::new(DATE - 10, "trixie")).unwrap();
        let err = r
            .check(&ReleasePolicy::new(DATE - 11, "trixie"))
            .unwrap_err();
        assert!(
            matches!(err, ReleaseError::DateInFuture { ahead: 11, .. }),
            "{err}"
        );
    }

    #[test]
    fn hostile_24_replayed_older_release() {
        let r = Release::parse(&sample()).unwrap();
        let mut policy = ReleasePolicy::new(DATE + 60, "stable");
        policy.previous_date = Some(DATE);
        r.check(&policy).unwrap();
        policy.previous_date = Some(DATE + 1);
        assert!(matches!(r.check(&policy), Err(ReleaseError::Replay { .. })));
    }

    #[test]
    fn missing_date_is_refused() {
        let text = format!("Suite: trixie\nSHA256:\n {SHA_A} 10 a/Packages\n");
        let r = Release::parse(&text).unwrap();
        assert_eq!(
            r.check(&ReleasePolicy::new(DATE, "trixie")),
            Err(ReleaseError::MissingDate)
        );
    }

    #[test]
    fn hostile_29_suite_mismatch_and_identity_drift() {
        let r = Release::parse(&sample()).unwrap();
        let err = r.check(&ReleasePolicy::new(DATE, "bookworm")).unwrap_err();
        assert!(err.to_string().contains("bookworm"), "{err}");
        let mut policy = ReleasePolicy::new(DATE, "trixie");
        policy.previous_identity = Some(r.identity());
        r.check(&policy).unwrap();
        let mut before = r.identity();
        before.suite = Some("testing".into());
        policy.previous_identity = Some(before);
        let err = r.check(&policy).unwrap_err();
        assert!(
            matches!(err, ReleaseError::Drift { field: "Suite", .. }),
            "{err}"
        );
        let mut before = r.identity();
        before.origin = Some("Evil".into());
        policy.previous_identity = Some(before);
        assert!(matches!(
            r.check(&policy),
            Err(ReleaseError::Drift {
                field: "Origin",
                ..
            })
        ));
        // A mirror swapped for another archive (Label) or moved to another
        // release under the same suite name (Codename) drifts just as well.
        let mut before = r.identity();
        before.label = Some("Evil".into());
        policy.previous_identity = Some(before);
        let err = r.check(&policy).unwrap_err();
        assert!(
            matches!(&err, ReleaseError::Drift { field: "Label", previous, current }
                if previous == "Evil" && current == "Debian"),
            "{err}"
        );
        let mut before = r.identity();
        before.codename = Some("bookworm".into());
        policy.previous_identity = Some(before);
        let err = r.check(&policy).unwrap_err();
        assert!(
            matches!(&err, ReleaseError::Drift { field: "Codename", previous, current }
                if previous == "bookworm" && current == "trixie"),
            "{err}"
        );
        // A field that was absent before and appears now is drift too.
        let mut before = r.identity();
        before.label = None;
        policy.previous_identity = Some(before);
        assert!(matches!(
            r.check(&policy),
            Err(ReleaseError::Drift { field: "Label", .. })
        ));
    }

    /// The payload of a real archive InRelease, when a copy is at hand
    /// (the signature is not checked here; only the parser is exercised).
    #[test]
    fn parses_a_real_bookworm_release_if_present() {
        let Ok(text) = std::fs::read_to_string("/tmp/bookworm-InRelease") else {
            eprintln!("SKIP: /tmp/bookworm-InRelease not found");
            return;
        };
        let start = text.find("\n\n").map_or(0, |i| i + 2);
        let end = text.find("-----BEGIN PGP SIGNATURE").unwrap_or(text.len());
        let r = Release::parse(&text[start..end]).unwrap();
        assert_eq!(r.codename.as_deref(), Some("bookworm"));
        let (path, file, c) = packages_index(&r, "main", "amd64").unwrap();
        assert_eq!(
            (path, c),
            ("main/binary-amd64/Packages.xz", IndexCompression::Xz)
        );
        assert!(file.size > 1_000_000);
        r.check(&ReleasePolicy::new(r.date.unwrap(), "oldstable"))
            .unwrap();
    }
}
