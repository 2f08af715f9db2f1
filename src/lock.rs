//! Lockfiles: the exact package set of a build, written by `rootstrap lock`
//! and installed as-is by `rootstrap build --locked`.
//!
//! A lockfile is TOML (README.md, "Lockfiles"): `version = 1`, the SHA-256
//! of the recipe it was made from, the epoch the image is stamped with, the
//! source (distro, suite/release, components/repositories, arch, variant,
//! mirror layout), the signed index files it was resolved from and every
//! package in install order with its path relative to the mirror, size and
//! SHA-256 (and, for apk, the `C:` identity).
//!
//! Parsing and serialising are pure. Every path in a lock is later joined
//! to a mirror URL and to an output directory (`rootstrap mirror`), so a
//! path can only be built through [`LockPath::parse`], which refuses
//! anything but a clean relative path.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::verify::Sha256Digest;

/// The only lockfile version this rootstrap reads and writes.
pub const LOCK_VERSION: i64 = 1;
/// A lock of several platforms' package sets (a multi-platform build).
pub const LOCK_VERSION_PLATFORMS: i64 = 2;

const HEADER: &str =
    "# rootstrap lockfile: the exact package set of an image (README.md, \"Lockfiles\").\n\
# Written by `rootstrap lock`; installed as-is by `rootstrap build --lock FILE --locked`.\n\n";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LockError {
    #[error("{file}: not a valid lockfile: {message}")]
    Syntax { file: PathBuf, message: String },
    #[error("{file}: unsupported lockfile version {found} (this rootstrap reads versions {LOCK_VERSION} and {LOCK_VERSION_PLATFORMS})")]
    Version { file: PathBuf, found: String },
    #[error("{file}: {field}: {reason}")]
    Field {
        file: PathBuf,
        field: String,
        reason: String,
    },
    #[error("{file}: package {name} ({arch}) is listed more than once")]
    DuplicatePackage {
        file: PathBuf,
        name: String,
        arch: String,
    },
    #[error("{file}: index file {path} is listed more than once")]
    DuplicateIndex { file: PathBuf, path: String },
    #[error("cannot write the lockfile: {0}")]
    Serialize(String),
    #[error("{file}: platform {platform} is listed more than once")]
    DuplicatePlatform { file: PathBuf, platform: String },
    #[error("{file}: holds the package sets of {platforms}; name one with --platform")]
    SeveralPlatforms { file: PathBuf, platforms: String },
}

/// How a mirror lays out its files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// `dists/<suite>/…` and `pool/…` (Debian, Ubuntu).
    Debian,
    /// `<release>/<repository>/<arch>/…` (Alpine).
    Alpine,
}

impl Layout {
    pub fn name(self) -> &'static str {
        match self {
            Layout::Debian => "debian",
            Layout::Alpine => "alpine",
        }
    }

    fn parse(s: &str) -> Option<Layout> {
        match s {
            "debian" => Some(Layout::Debian),
            "alpine" => Some(Layout::Alpine),
            _ => None,
        }
    }

    /// The layout a distribution's mirrors use.
    pub fn for_distro(distro: &str) -> Option<Layout> {
        match distro {
            "debian" | "ubuntu" => Some(Layout::Debian),
            "alpine" => Some(Layout::Alpine),
            _ => None,
        }
    }
}

/// Why a string is not a [`LockPath`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.describe())]
pub struct LockPathError {
    pub path: String,
    pub problem: LockPathProblem,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockPathProblem {
    Empty,
    Absolute,
    Character(char),
    EmptyComponent,
    /// A `.` or `..` component.
    LeavesMirror(String),
}

impl LockPathError {
    fn describe(&self) -> String {
        let s = &self.path;
        match &self.problem {
            LockPathProblem::Empty => "empty path".to_owned(),
            LockPathProblem::Absolute => {
                format!("{s:?} is absolute; lock paths are relative to the mirror")
            }
            LockPathProblem::Character(c) => format!("{s:?} contains the character {c:?}"),
            LockPathProblem::EmptyComponent => format!("{s:?} has an empty path component"),
            LockPathProblem::LeavesMirror(component) => format!(
                "{s:?} contains a {component:?} component; lock paths must not leave the mirror"
            ),
        }
    }
}

/// A clean path relative to a mirror root: non-empty `/`-separated
/// components, none empty, `.` or `..`, no leading `/`, and no character
/// that changes meaning in a URL or a shell (`\`, `?`, `#`, `%`, control
/// characters, whitespace).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LockPath(String);

impl LockPath {
    pub fn parse(s: &str) -> Result<LockPath, LockPathError> {
        let bad = |problem| LockPathError {
            path: s.to_owned(),
            problem,
        };
        if s.is_empty() {
            return Err(bad(LockPathProblem::Empty));
        }
        if s.starts_with('/') {
            return Err(bad(LockPathProblem::Absolute));
        }
        if let Some(c) = s
            .chars()
            .find(|c| c.is_control() || c.is_whitespace() || matches!(c, '\\' | '?' | '#' | '%'))
        {
            return Err(bad(LockPathProblem::Character(c)));
        }
        for component in s.split('/') {
            match component {
                "" => return Err(bad(LockPathProblem::EmptyComponent)),
                "." | ".." => return Err(bad(LockPathProblem::LeavesMirror(component.to_owned()))),
                _ => {}
            }
        }
        Ok(LockPath(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The path under `dir` (safe by construction: no `..`, not absolute).
    pub fn under(&self, dir: &Path) -> PathBuf {
        dir.join(&self.0)
    }

    /// The URL of this file on `mirror` (no trailing `/`).
    pub fn url(&self, mirror: &str) -> String {
        format!("{}/{}", mirror.trim_end_matches('/'), self.0)
    }
}

impl fmt::Display for LockPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What the lock was resolved from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockSource {
    /// `debian`, `ubuntu`, `alpine`.
    pub distro: String,
    /// Debian suite or Alpine release.
    pub suite: String,
    /// Debian components or Alpine repositories.
    pub components: Vec<String>,
    pub arch: String,
    /// Debian variant (`minbase`, …); `minirootfs` for Alpine.
    pub variant: String,
    pub layout: Layout,
    /// The mirror the lock was made from (http/https only, no credentials).
    /// Locked builds write it into the image's apt sources / apk
    /// repositories, so the image does not depend on where it was fetched.
    pub mirror: Option<String>,
    /// Debian/Ubuntu `slim`: written only when true (`slim = true`), so a
    /// lock of a full image has the same bytes as before the setting
    /// existed, and a rootstrap that does not know it refuses a slim lock
    /// (an unknown field) instead of building a full image from it.
    pub slim: bool,
}

/// A signed index file (InRelease, Packages.xz, APKINDEX.tar.gz).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockedFile {
    pub path: LockPath,
    pub size: u64,
    pub sha256: Sha256Digest,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockedPackage {
    pub name: String,
    pub version: String,
    pub arch: String,
    pub path: LockPath,
    pub size: u64,
    pub sha256: Sha256Digest,
    /// apk only: the index `C:` identity (`Q1…`, SHA-1 of the control member).
    pub checksum: Option<String>,
}

impl LockedPackage {
    fn key(&self) -> (&str, &str) {
        (&self.name, &self.arch)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lockfile {
    /// SHA-256 of the recipe file's bytes.
    pub recipe_sha256: Sha256Digest,
    /// The image timestamp when SOURCE_DATE_EPOCH is not set (Release Date
    /// or newest apk build time at lock time).
    pub source_date_epoch: i64,
    pub source: LockSource,
    pub index: Vec<LockedFile>,
    /// Install order.
    pub packages: Vec<LockedPackage>,
}

/// What a lockfile holds: one package set, or one per platform (a
/// multi-platform build's, version 2), each named as OCI names platforms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockSet {
    One(Box<Lockfile>),
    Platforms(Vec<(String, Lockfile)>),
}

impl LockSet {
    /// The lock for `platform` (`linux/arm64`); a one-platform lock stands
    /// for whichever platform its source names (checked against the build).
    pub fn for_platform(&self, platform: Option<&str>) -> Option<&Lockfile> {
        match (self, platform) {
            (LockSet::One(lock), _) => Some(lock),
            (LockSet::Platforms(all), Some(p)) => {
                all.iter().find(|(name, _)| name == p).map(|(_, l)| l)
            }
            (LockSet::Platforms(_), None) => None,
        }
    }

    /// Every package set, with its platform when the file names one.
    pub fn all(&self) -> Vec<(Option<&str>, &Lockfile)> {
        match self {
            LockSet::One(lock) => vec![(None, lock)],
            LockSet::Platforms(all) => all.iter().map(|(p, l)| (Some(p.as_str()), l)).collect(),
        }
    }

    pub fn recipe_sha256(&self) -> Sha256Digest {
        self.all()
            .first()
            .map(|(_, l)| l.recipe_sha256)
            .unwrap_or(Sha256Digest([0; 32]))
    }

    pub fn platform_names(&self) -> Vec<&str> {
        self.all().iter().filter_map(|(p, _)| *p).collect()
    }
}

// The on-disk form. Field order here is the file's field order.

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawPlatformsLock {
    version: i64,
    recipe_sha256: String,
    platform: Vec<RawPlatformLock>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawPlatformLock {
    name: String,
    source_date_epoch: i64,
    source: RawSource,
    #[serde(default)]
    index: Vec<RawFile>,
    #[serde(default)]
    package: Vec<RawPackage>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawLock {
    version: i64,
    recipe_sha256: String,
    source_date_epoch: i64,
    source: RawSource,
    #[serde(default)]
    index: Vec<RawFile>,
    #[serde(default)]
    package: Vec<RawPackage>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSource {
    distro: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    suite: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    release: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    components: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    repositories: Option<Vec<String>>,
    arch: String,
    variant: String,
    layout: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    mirror: Option<String>,
    #[serde(default, skip_serializing_if = "is_false")]
    slim: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    path: String,
    size: u64,
    sha256: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPackage {
    name: String,
    version: String,
    arch: String,
    path: String,
    size: u64,
    sha256: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    checksum: Option<String>,
}

/// Parses a lockfile of one package set; a multi-platform one is refused
/// naming its platforms.
pub fn parse(text: &str, file: &Path) -> Result<Lockfile, LockError> {
    match parse_set(text, file)? {
        LockSet::One(lock) => Ok(*lock),
        set => Err(LockError::SeveralPlatforms {
            file: file.to_owned(),
            platforms: set.platform_names().join(", "),
        }),
    }
}

/// Parses a lockfile of either version; `file` only names it in errors.
pub fn parse_set(text: &str, file: &Path) -> Result<LockSet, LockError> {
    let syntax = |message: String| LockError::Syntax {
        file: file.to_owned(),
        message,
    };
    // The version first, so a newer format is reported as such rather than
    // as an unknown field.
    let table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| syntax(e.to_string()))?;
    match table.get("version") {
        Some(toml::Value::Integer(LOCK_VERSION)) => {}
        Some(toml::Value::Integer(LOCK_VERSION_PLATFORMS)) => {
            let raw: RawPlatformsLock = table
                .try_into()
                .map_err(|e: toml::de::Error| syntax(e.to_string()))?;
            return Checker { file }.platforms(raw);
        }
        Some(other) => {
            return Err(LockError::Version {
                file: file.to_owned(),
                found: other.to_string(),
            })
        }
        None => return Err(syntax("missing `version`".into())),
    }
    let raw: RawLock = table
        .try_into()
        .map_err(|e: toml::de::Error| syntax(e.to_string()))?;
    Checker { file }
        .lockfile(raw)
        .map(|l| LockSet::One(Box::new(l)))
}

/// Serialises a lock set: version 1 for one package set, 2 for several.
pub fn set_to_toml(set: &LockSet) -> Result<String, LockError> {
    let all = match set {
        LockSet::One(lock) => return to_toml(lock),
        LockSet::Platforms(all) => all,
    };
    let raw = RawPlatformsLock {
        version: LOCK_VERSION_PLATFORMS,
        recipe_sha256: set.recipe_sha256().to_hex(),
        platform: all
            .iter()
            .map(|(name, lock)| {
                let one = raw_lock(lock);
                RawPlatformLock {
                    name: name.clone(),
                    source_date_epoch: one.source_date_epoch,
                    source: one.source,
                    index: one.index,
                    package: one.package,
                }
            })
            .collect(),
    };
    let body = toml::to_string(&raw).map_err(|e| LockError::Serialize(e.to_string()))?;
    Ok(format!("{HEADER}{body}"))
}

/// Serialises `lock` (always the same bytes for the same value).
pub fn to_toml(lock: &Lockfile) -> Result<String, LockError> {
    let body = toml::to_string(&raw_lock(lock)).map_err(|e| LockError::Serialize(e.to_string()))?;
    Ok(format!("{HEADER}{body}"))
}

fn raw_lock(lock: &Lockfile) -> RawLock {
    let s = &lock.source;
    let alpine = s.layout == Layout::Alpine;
    RawLock {
        version: LOCK_VERSION,
        recipe_sha256: lock.recipe_sha256.to_hex(),
        source_date_epoch: lock.source_date_epoch,
        source: RawSource {
            distro: s.distro.clone(),
            suite: (!alpine).then(|| s.suite.clone()),
            release: alpine.then(|| s.suite.clone()),
            components: (!alpine).then(|| s.components.clone()),
            repositories: alpine.then(|| s.components.clone()),
            arch: s.arch.clone(),
            variant: s.variant.clone(),
            layout: s.layout.name().into(),
            mirror: s.mirror.clone(),
            slim: s.slim,
        },
        index: lock
            .index
            .iter()
            .map(|f| RawFile {
                path: f.path.to_string(),
                size: f.size,
                sha256: f.sha256.to_hex(),
            })
            .collect(),
        package: lock
            .packages
            .iter()
            .map(|p| RawPackage {
                name: p.name.clone(),
                version: p.version.clone(),
                arch: p.arch.clone(),
                path: p.path.to_string(),
                size: p.size,
                sha256: p.sha256.to_hex(),
                checksum: p.checksum.clone(),
            })
            .collect(),
    }
}

struct Checker<'a> {
    file: &'a Path,
}

impl Checker<'_> {
    fn err(&self, field: impl Into<String>, reason: impl Into<String>) -> LockError {
        LockError::Field {
            file: self.file.to_owned(),
            field: field.into(),
            reason: reason.into(),
        }
    }

    fn platforms(&self, raw: RawPlatformsLock) -> Result<LockSet, LockError> {
        let mut out: Vec<(String, Lockfile)> = Vec::new();
        for p in raw.platform {
            let platform = crate::distro::platform::Platform::parse(&p.name)
                .map_err(|e| self.err("platform.name", e.to_string()))?
                .to_string();
            if out.iter().any(|(name, _)| *name == platform) {
                return Err(LockError::DuplicatePlatform {
                    file: self.file.to_owned(),
                    platform,
                });
            }
            let lock = self.lockfile(RawLock {
                version: LOCK_VERSION,
                recipe_sha256: raw.recipe_sha256.clone(),
                source_date_epoch: p.source_date_epoch,
                source: p.source,
                index: p.index,
                package: p.package,
            })?;
            out.push((platform, lock));
        }
        if out.is_empty() {
            return Err(self.err("platform", "a version 2 lock lists at least one platform"));
        }
        Ok(LockSet::Platforms(out))
    }

    fn lockfile(&self, raw: RawLock) -> Result<Lockfile, LockError> {
        let source = self.source(raw.source)?;
        let mut index = Vec::with_capacity(raw.index.len());
        let mut seen_paths = HashSet::new();
        for (i, f) in raw.index.into_iter().enumerate() {
            let field = format!("index[{i}]");
            let file = LockedFile {
                path: self.path(&field, &f.path)?,
                size: f.size,
                sha256: self.digest(&field, &f.sha256)?,
            };
            if !seen_paths.insert(file.path.clone()) {
                return Err(LockError::DuplicateIndex {
                    file: self.file.to_owned(),
                    path: file.path.to_string(),
                });
            }
            index.push(file);
        }
        let mut packages = Vec::with_capacity(raw.package.len());
        let mut seen = HashSet::new();
        for (i, p) in raw.package.into_iter().enumerate() {
            let pkg = self.package(i, p, source.layout)?;
            if !seen.insert((pkg.name.clone(), pkg.arch.clone())) {
                return Err(LockError::DuplicatePackage {
                    file: self.file.to_owned(),
                    name: pkg.name,
                    arch: pkg.arch,
                });
            }
            packages.push(pkg);
        }
        if raw.source_date_epoch < 0 {
            return Err(self.err("source-date-epoch", "must not be negative"));
        }
        Ok(Lockfile {
            recipe_sha256: self.digest("recipe-sha256", &raw.recipe_sha256)?,
            source_date_epoch: raw.source_date_epoch,
            source,
            index,
            packages,
        })
    }

    fn source(&self, raw: RawSource) -> Result<LockSource, LockError> {
        let layout = Layout::parse(&raw.layout).ok_or_else(|| {
            self.err(
                "source.layout",
                format!(
                    "unknown layout {:?} (expected debian or alpine)",
                    raw.layout
                ),
            )
        })?;
        let expected = Layout::for_distro(&raw.distro)
            .ok_or_else(|| self.err("source.distro", format!("unknown distro {:?}", raw.distro)))?;
        if expected != layout {
            return Err(self.err(
                "source.layout",
                format!("{} mirrors use the {} layout", raw.distro, expected.name()),
            ));
        }
        let (suite_field, lists_field, suite, lists, other_suite, other_lists) = match layout {
            Layout::Debian => (
                "suite",
                "components",
                raw.suite,
                raw.components,
                raw.release.is_some(),
                raw.repositories.is_some(),
            ),
            Layout::Alpine => (
                "release",
                "repositories",
                raw.release,
                raw.repositories,
                raw.suite.is_some(),
                raw.components.is_some(),
            ),
        };
        if other_suite || other_lists {
            return Err(self.err(
                "source",
                format!(
                    "a {} source uses `{suite_field}` and `{lists_field}`",
                    raw.distro
                ),
            ));
        }
        let suite = suite.ok_or_else(|| self.err(format!("source.{suite_field}"), "missing"))?;
        self.word(&format!("source.{suite_field}"), &suite)?;
        let lists = lists.ok_or_else(|| self.err(format!("source.{lists_field}"), "missing"))?;
        if lists.is_empty() {
            return Err(self.err(format!("source.{lists_field}"), "empty"));
        }
        for l in &lists {
            self.word(&format!("source.{lists_field}"), l)?;
        }
        self.word("source.arch", &raw.arch)?;
        self.word("source.variant", &raw.variant)?;
        if let Some(m) = &raw.mirror {
            if m.chars().any(|c| c.is_control() || c.is_whitespace()) {
                return Err(self.err("source.mirror", format!("{m:?} is not a URL")));
            }
        }
        if raw.slim && layout != Layout::Debian {
            return Err(self.err("source.slim", "only Debian-layout sources can be slim"));
        }
        Ok(LockSource {
            distro: raw.distro,
            suite,
            components: lists,
            arch: raw.arch,
            variant: raw.variant,
            layout,
            mirror: raw.mirror,
            slim: raw.slim,
        })
    }

    fn package(&self, i: usize, p: RawPackage, layout: Layout) -> Result<LockedPackage, LockError> {
        let field = |f: &str| format!("package[{i}] ({}).{f}", p.name);
        self.word(&format!("package[{i}].name"), &p.name)?;
        self.word(&field("version"), &p.version)?;
        self.word(&field("arch"), &p.arch)?;
        let checksum = match (layout, p.checksum) {
            (Layout::Alpine, Some(c)) if c.starts_with("Q1") && c.len() > 2 => Some(c),
            (Layout::Alpine, Some(c)) => {
                return Err(self.err(field("checksum"), format!("{c:?} is not a Q1… identity")))
            }
            (Layout::Alpine, None) => {
                return Err(self.err(
                    field("checksum"),
                    "missing (apk packages need their C: identity)",
                ))
            }
            (Layout::Debian, Some(_)) => {
                return Err(self.err(field("checksum"), "only apk packages have one"))
            }
            (Layout::Debian, None) => None,
        };
        Ok(LockedPackage {
            path: self.path(&field("path"), &p.path)?,
            sha256: self.digest(&field("sha256"), &p.sha256)?,
            name: p.name,
            version: p.version,
            arch: p.arch,
            size: p.size,
            checksum,
        })
    }

    /// Names, versions and architectures: printable, no spaces or slashes.
    fn word(&self, field: &str, s: &str) -> Result<(), LockError> {
        if s.is_empty() {
            return Err(self.err(field, "empty"));
        }
        if let Some(c) = s
            .chars()
            .find(|c| c.is_control() || c.is_whitespace() || matches!(c, '/' | '\\'))
        {
            return Err(self.err(field, format!("{s:?} contains the character {c:?}")));
        }
        Ok(())
    }

    fn path(&self, field: &str, s: &str) -> Result<LockPath, LockError> {
        LockPath::parse(s).map_err(|reason| self.err(field, reason.to_string()))
    }

    fn digest(&self, field: &str, s: &str) -> Result<Sha256Digest, LockError> {
        // Lowercase only, so a parsed lock serialises to the same bytes.
        if s.len() != 64
            || !s
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(self.err(field, format!("{s:?} is not 64 lowercase hex digits")));
        }
        Sha256Digest::from_hex(s).map_err(|e| self.err(field, e.to_string()))
    }
}

/// How a resolved package set differs from a lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Drift {
    Added(LockedPackage),
    Removed(LockedPackage),
    Changed {
        old: LockedPackage,
        new: LockedPackage,
    },
}

impl Drift {
    fn name(&self) -> &str {
        match self {
            Drift::Added(p) | Drift::Removed(p) | Drift::Changed { new: p, .. } => &p.name,
        }
    }
}

impl fmt::Display for Drift {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Drift::Added(p) => write!(f, "added   {} {} ({})", p.name, p.version, p.arch),
            Drift::Removed(p) => write!(f, "removed {} {} ({})", p.name, p.version, p.arch),
            Drift::Changed { old, new } if old.version != new.version => write!(
                f,
                "changed {} {} -> {} ({})",
                new.name, old.version, new.version, new.arch
            ),
            Drift::Changed { old, new } if old.checksum != new.checksum => write!(
                f,
                "changed {} {} ({}): same version, different package (C:{} -> C:{})",
                new.name,
                new.version,
                new.arch,
                old.checksum.as_deref().unwrap_or("-"),
                new.checksum.as_deref().unwrap_or("-")
            ),
            Drift::Changed { old, new } => write!(
                f,
                "changed {} {} ({}): same version, different file (sha256 {} -> {})",
                new.name,
                new.version,
                new.arch,
                old.sha256.to_hex(),
                new.sha256.to_hex()
            ),
        }
    }
}

/// Packages added, removed or changed (version, file or identity) in
/// `resolved` relative to `locked`, sorted by name. Install order alone is
/// not drift.
pub fn drift(locked: &[LockedPackage], resolved: &[LockedPackage]) -> Vec<Drift> {
    let old: BTreeMap<(&str, &str), &LockedPackage> = locked.iter().map(|p| (p.key(), p)).collect();
    let new: BTreeMap<(&str, &str), &LockedPackage> =
        resolved.iter().map(|p| (p.key(), p)).collect();
    let mut out = Vec::new();
    for (key, o) in &old {
        match new.get(key) {
            None => out.push(Drift::Removed((*o).clone())),
            Some(n) if !same_file(o, n) => out.push(Drift::Changed {
                old: (*o).clone(),
                new: (*n).clone(),
            }),
            Some(_) => {}
        }
    }
    for (key, n) in &new {
        if !old.contains_key(key) {
            out.push(Drift::Added((*n).clone()));
        }
    }
    out.sort_by(|a, b| a.name().cmp(b.name()));
    out
}

fn same_file(a: &LockedPackage, b: &LockedPackage) -> bool {
    a.version == b.version && a.sha256 == b.sha256 && a.size == b.size && a.checksum == b.checksum
}

/// What to download for the locked packages: their locked path under
/// `mirror`, size and SHA-256, in lock order.
pub fn fetch_items(mirror: &str, locked: &[LockedPackage]) -> Vec<crate::fetch::FetchItem> {
    locked
        .iter()
        .map(|p| crate::fetch::FetchItem {
            url: p.path.url(mirror),
            size: p.size,
            sha256: p.sha256,
            name: p.name.clone(),
        })
        .collect()
}

/// The mirror recorded in a lock: http(s) only, and never one carrying
/// credentials (the lock is meant to be committed).
pub fn recordable_mirror(mirror: &str) -> Option<String> {
    let rest = mirror
        .strip_prefix("http://")
        .or_else(|| mirror.strip_prefix("https://"))?;
    let authority = rest.split('/').next().unwrap_or("");
    (!authority.contains('@')).then(|| mirror.trim_end_matches('/').to_owned())
}

/// The mirror an image's apt sources / apk repositories name: the lock's,
/// when a locked build has one, so the image does not depend on where the
/// files were fetched from (a `rootstrap mirror` copy, a proxy).
pub fn image_mirror(locked: Option<&Lockfile>, fetched_from: &str) -> String {
    locked
        .and_then(|l| l.source.mirror.clone())
        .unwrap_or_else(|| fetched_from.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(byte: u8) -> Sha256Digest {
        Sha256Digest([byte; 32])
    }

    fn deb(name: &str, version: &str, byte: u8) -> LockedPackage {
        LockedPackage {
            name: name.into(),
            version: version.into(),
            arch: "amd64".into(),
            path: LockPath::parse(&format!("pool/main/x/{name}/{name}_{version}_amd64.deb"))
                .unwrap(),
            size: 1000 + byte as u64,
            sha256: digest(byte),
            checksum: None,
        }
    }

    fn debian_lock() -> Lockfile {
        Lockfile {
            recipe_sha256: digest(0xaa),
            source_date_epoch: 1_700_000_000,
            source: LockSource {
                distro: "debian".into(),
                suite: "trixie".into(),
                components: vec!["main".into()],
                arch: "amd64".into(),
                variant: "minbase".into(),
                layout: Layout::Debian,
                mirror: Some("http://mirror.invalid/debian".into()),
                slim: false,
            },
            index: vec![
                LockedFile {
                    path: LockPath::parse("dists/trixie/InRelease").unwrap(),
                    size: 150_000,
                    sha256: digest(1),
                },
                LockedFile {
                    path: LockPath::parse("dists/trixie/main/binary-amd64/Packages.xz").unwrap(),
                    size: 9_000_000,
                    sha256: digest(2),
                },
            ],
            packages: vec![deb("libc6", "2.41-12", 3), deb("base-files", "13.8", 4)],
        }
    }

    fn alpine_lock() -> Lockfile {
        Lockfile {
            recipe_sha256: digest(0xbb),
            source_date_epoch: 1_716_000_000,
            source: LockSource {
                distro: "alpine".into(),
                suite: "v3.20".into(),
                components: vec!["main".into(), "community".into()],
                arch: "x86_64".into(),
                variant: "minirootfs".into(),
                layout: Layout::Alpine,
                mirror: None,
                slim: false,
            },
            index: vec![LockedFile {
                path: LockPath::parse("v3.20/main/x86_64/APKINDEX.tar.gz").unwrap(),
                size: 500_000,
                sha256: digest(5),
            }],
            packages: vec![LockedPackage {
                name: "busybox".into(),
                version: "1.36.1-r29".into(),
                arch: "x86_64".into(),
                path: LockPath::parse("v3.20/main/x86_64/busybox-1.36.1-r29.apk").unwrap(),
                size: 500_000,
                sha256: digest(6),
                checksum: Some("Q1abcdefghijklmnopqrstuvwxyz0=".into()),
            }],
        }
    }

    fn parse_str(text: &str) -> Result<Lockfile, LockError> {
        parse(text, Path::new("test.lock"))
    }

    #[test]
    fn round_trips_debian_and_alpine() {
        for lock in [debian_lock(), alpine_lock()] {
            let text = to_toml(&lock).unwrap();
            let back = parse_str(&text).unwrap();
            assert_eq!(back, lock);
            assert_eq!(to_toml(&back).unwrap(), text, "stable bytes");
        }
    }

    #[test]
    fn slim_is_written_only_when_set_and_only_for_debian_layouts() {
        let mut lock = debian_lock();
        let full = to_toml(&lock).unwrap();
        assert!(!full.contains("slim"), "{full}");
        assert!(!parse_str(&full).unwrap().source.slim);
        lock.source.slim = true;
        let slim = to_toml(&lock).unwrap();
        assert!(slim.contains("\nslim = true\n"), "{slim}");
        assert_eq!(parse_str(&slim).unwrap(), lock);
        let alpine = to_toml(&alpine_lock()).unwrap().replace(
            "layout = \"alpine\"\n",
            "layout = \"alpine\"\nslim = true\n",
        );
        let err = parse_str(&alpine).unwrap_err().to_string();
        assert!(err.contains("source.slim"), "{err}");
    }

    #[test]
    fn field_order_is_stable_and_documented() {
        let text = to_toml(&debian_lock()).unwrap();
        let order = [
            "version = 1",
            "recipe-sha256 = ",
            "source-date-epoch = 1700000000",
            "[source]",
            "distro = \"debian\"",
            "suite = \"trixie\"",
            "components = [\"main\"]",
            "arch = \"amd64\"",
            "variant = \"minbase\"",
            "layout = \"debian\"",
            "mirror = ",
            "[[index]]",
            "path = \"dists/trixie/InRelease\"",
            "[[package]]",
            "name = \"libc6\"",
            "version = \"2.41-12\"",
            "path = \"pool/main/x/libc6/libc6_2.41-12_amd64.deb\"",
            "size = 1003",
            "sha256 = \"0303",
            "name = \"base-files\"",
        ];
        let mut at = 0;
        for needle in order {
            let found = text[at..]
                .find(needle)
                .unwrap_or_else(|| panic!("{needle:?} not after byte {at} in:\n{text}"));
            at += found + needle.len();
        }
        let alpine = to_toml(&alpine_lock()).unwrap();
        assert!(alpine.contains("release = \"v3.20\""), "{alpine}");
        assert!(
            alpine.contains("repositories = [\"main\", \"community\"]"),
            "{alpine}"
        );
        assert!(alpine.contains("checksum = \"Q1"), "{alpine}");
        assert!(!alpine.contains("suite"), "{alpine}");
    }

    #[test]
    fn unknown_version_is_refused_before_anything_else() {
        let text = to_toml(&debian_lock())
            .unwrap()
            .replace("version = 1\n", "version = 3\nnew-field = true\n");
        let err = parse_str(&text).unwrap_err();
        assert!(
            matches!(err, LockError::Version { ref found, .. } if found == "3"),
            "{err}"
        );
        assert!(err.to_string().contains("test.lock"), "{err}");
        let missing = to_toml(&debian_lock())
            .unwrap()
            .replace("version = 1\n", "");
        assert!(parse_str(&missing)
            .unwrap_err()
            .to_string()
            .contains("version"));
        let string = to_toml(&debian_lock())
            .unwrap()
            .replace("version = 1\n", "version = \"1\"\n");
        assert!(matches!(parse_str(&string), Err(LockError::Version { .. })));
    }

    #[test]
    fn duplicate_package_is_refused() {
        let mut lock = debian_lock();
        let mut again = lock.packages[0].clone();
        again.version = "9".into();
        lock.packages.push(again);
        let err = parse_str(&to_toml(&lock).unwrap()).unwrap_err();
        assert_eq!(
            err,
            LockError::DuplicatePackage {
                file: "test.lock".into(),
                name: "libc6".into(),
                arch: "amd64".into()
            }
        );
        let mut lock = debian_lock();
        lock.index.push(lock.index[0].clone());
        assert!(matches!(
            parse_str(&to_toml(&lock).unwrap()),
            Err(LockError::DuplicateIndex { .. })
        ));
    }

    #[test]
    fn unclean_paths_are_refused() {
        let bad = [
            "",
            "/etc/passwd",
            "../x.deb",
            "pool/../../x.deb",
            "pool/./x.deb",
            "pool//x.deb",
            "pool/x.deb/",
            "pool/x\n.deb",
            "pool/x\0.deb",
            "pool\\x.deb",
            "pool/x.deb?y",
            "pool/x.deb#y",
            "pool/%2e%2e/x.deb",
            "pool/x y.deb",
            "..",
            ".",
        ];
        for p in bad {
            assert!(LockPath::parse(p).is_err(), "{p:?} accepted");
        }
        for good in [
            "pool/main/g/gcc-14/libgcc-s1_14.2.0-19_amd64.deb",
            "v3.20/main/x86_64/libc++-1.0-r0.apk",
            "dists/trixie/InRelease",
            "..hidden/x",
        ] {
            assert_eq!(LockPath::parse(good).unwrap().as_str(), good);
        }
        let text = to_toml(&debian_lock())
            .unwrap()
            .replace("pool/main/x/libc6/", "pool/../../../etc/");
        let err = parse_str(&text).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("test.lock") && msg.contains("package[0] (libc6).path"),
            "{msg}"
        );
        let text = to_toml(&debian_lock())
            .unwrap()
            .replace("\"dists/trixie/InRelease\"", "\"/dists/trixie/InRelease\"");
        assert!(parse_str(&text)
            .unwrap_err()
            .to_string()
            .contains("index[0]"));
    }

    #[test]
    fn malformed_fields_name_the_field() {
        let cases: &[(&str, &str, &str)] = &[
            (
                "sha256 = \"0303",
                "sha256 = \"zz03",
                "package[0] (libc6).sha256",
            ),
            (
                "layout = \"debian\"",
                "layout = \"alpine\"",
                "source.layout",
            ),
            (
                "distro = \"debian\"",
                "distro = \"fedora\"",
                "source.distro",
            ),
            ("name = \"libc6\"", "name = \"lib c6\"", "package[0].name"),
            ("suite = \"trixie\"", "release = \"trixie\"", "source"),
            (
                "arch = \"amd64\"\nvariant",
                "arch = \"\"\nvariant",
                "source.arch",
            ),
        ];
        for (from, to, field) in cases {
            let text = to_toml(&debian_lock()).unwrap().replacen(from, to, 1);
            let err = parse_str(&text).unwrap_err().to_string();
            assert!(err.contains(field), "{to}: {err}");
        }
        let upper = to_toml(&debian_lock()).unwrap().replacen(
            &digest(0xaa).to_hex(),
            &digest(0xaa).to_hex().to_uppercase(),
            1,
        );
        assert!(
            parse_str(&upper).is_err(),
            "uppercase digests do not round-trip"
        );
        let unknown = to_toml(&debian_lock()).unwrap().replacen(
            "[[package]]\n",
            "[[package]]\nepoch = 1\n",
            1,
        );
        assert!(parse_str(&unknown)
            .unwrap_err()
            .to_string()
            .contains("epoch"));
        let mut no_checksum = alpine_lock();
        no_checksum.packages[0].checksum = None;
        let err = parse_str(&to_toml(&no_checksum).unwrap()).unwrap_err();
        assert!(err.to_string().contains("checksum"), "{err}");
        let mut deb_checksum = debian_lock();
        deb_checksum.packages[0].checksum = Some("Q1x".into());
        assert!(parse_str(&to_toml(&deb_checksum).unwrap()).is_err());
        assert!(matches!(
            parse_str("not toml ["),
            Err(LockError::Syntax { .. })
        ));
    }

    #[test]
    fn drift_lists_added_removed_and_changed() {
        let locked = vec![
            deb("a", "1", 1),
            deb("b", "1", 2),
            deb("c", "1", 3),
            deb("d", "1", 4),
        ];
        let mut rebuilt_d = deb("d", "1", 4);
        rebuilt_d.sha256 = digest(9);
        let resolved = vec![
            deb("e", "2", 5),
            deb("a", "1", 1),
            deb("c", "2", 6),
            rebuilt_d,
        ];
        let lines: Vec<String> = drift(&locked, &resolved)
            .iter()
            .map(|d| d.to_string())
            .collect();
        assert_eq!(lines.len(), 4, "{lines:?}");
        assert_eq!(lines[0], "removed b 1 (amd64)");
        assert_eq!(lines[1], "changed c 1 -> 2 (amd64)");
        assert!(lines[2].starts_with("changed d 1 (amd64): same version, different file"));
        assert_eq!(lines[3], "added   e 2 (amd64)");
        let mut reordered = locked.clone();
        reordered.reverse();
        assert!(
            drift(&locked, &reordered).is_empty(),
            "order alone is not drift"
        );
        let mut apk_old = deb("musl", "1.2.5-r0", 7);
        apk_old.checksum = Some("Q1old=".into());
        let mut apk_new = apk_old.clone();
        apk_new.checksum = Some("Q1new=".into());
        let lines: Vec<String> = drift(&[apk_old], &[apk_new])
            .iter()
            .map(|d| d.to_string())
            .collect();
        assert_eq!(
            lines,
            ["changed musl 1.2.5-r0 (amd64): same version, different package (C:Q1old= -> C:Q1new=)"]
        );
    }

    #[test]
    fn urls_and_dirs_join_cleanly() {
        let p = LockPath::parse("pool/main/a/a_1_amd64.deb").unwrap();
        assert_eq!(
            p.url("http://m/debian/"),
            "http://m/debian/pool/main/a/a_1_amd64.deb"
        );
        assert_eq!(
            p.under(Path::new("/srv")),
            Path::new("/srv/pool/main/a/a_1_amd64.deb")
        );
    }

    #[test]
    fn several_platforms_round_trip_as_version_2() {
        let mut arm = debian_lock();
        arm.source.arch = "arm64".into();
        arm.source_date_epoch += 1;
        let set = LockSet::Platforms(vec![
            ("linux/amd64".into(), debian_lock()),
            ("linux/arm64".into(), arm.clone()),
        ]);
        let text = set_to_toml(&set).unwrap();
        assert!(text.contains("version = 2\n"), "{text}");
        assert!(
            text.contains("[[platform]]\nname = \"linux/arm64\""),
            "{text}"
        );
        let back = parse_set(&text, Path::new("x.lock")).unwrap();
        assert_eq!(back, set);
        assert_eq!(back.for_platform(Some("linux/arm64")), Some(&arm));
        assert_eq!(back.for_platform(Some("linux/s390x")), None);
        // One package set is still version 1, byte for byte.
        let one = LockSet::One(Box::new(debian_lock()));
        assert_eq!(set_to_toml(&one).unwrap(), to_toml(&debian_lock()).unwrap());
        assert_eq!(one.for_platform(Some("linux/arm64")), Some(&debian_lock()));
        // A reader of one package set is told which platforms there are.
        let err = parse_str(&text).unwrap_err().to_string();
        assert!(
            err.contains("linux/amd64, linux/arm64") && err.contains("--platform"),
            "{err}"
        );
        let twice = text.replace("name = \"linux/arm64\"", "name = \"linux/amd64\"");
        assert!(matches!(
            parse_set(&twice, Path::new("x.lock")),
            Err(LockError::DuplicatePlatform { .. })
        ));
        let bad = text.replace("name = \"linux/arm64\"", "name = \"arm64\"");
        assert!(parse_set(&bad, Path::new("x.lock"))
            .unwrap_err()
            .to_string()
            .contains("platform.name"));
    }
}
