//! The Alpine back end, end to end, as `apk add --initdb` does it: signed
//! APKINDEX per repository → solved world → verified .apk files → files in
//! the rootfs (through the safe rootfs API only) → the apk database that the
//! target's own apk-tools reads → package scripts and triggers in the sandbox.
//!
//! Nothing from a package reaches the rootfs until every planned package has
//! passed `open_package` (signature, `C:` identity, size, datahash) and its
//! per-file checksums, so a tampered package leaves nothing behind.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use sha2::{Digest, Sha256};

use super::index::{parse_index, ApkPackage, Dependency};
use super::installed::{self, InstalledPackage, ScriptEntry};
use super::package::{open_package, VerifiedApk, SCRIPT_NAMES};
use super::plan_cache::PlanCache;
use super::sign::{Trust, TrustedKeys};
use super::solver::{solve_with, SolveError, SolveOptions};
use super::tar::{EntryKind, TarEntry};
use super::ApkError;
use crate::fetch::Fetcher;
use crate::report::Reporter;
use crate::rootfs::extract::{extract_tar_with, Claimed, ExtractOptions};
use crate::rootfs::safe::{FileKind, RelPath, Root};
use crate::rootfs::sandbox::{self, Network, RunSpec, Sandbox};
use crate::verify::Sha256Digest;

/// Real indexes are 1–3 MB; anything near this is not an APKINDEX.
const INDEX_LIMIT: u64 = 64 << 20;

/// What the official minirootfs installs (`alpine-make-rootfs` default).
pub const DEFAULT_WORLD: &[&str] = &[
    "alpine-baselayout",
    "alpine-keys",
    "apk-tools",
    "busybox",
    "libc-utils",
];

/// Where package scripts are staged inside the rootfs while they run (apk
/// 2.14 uses the same directory), removed afterwards.
const EXEC_DIR: &str = "lib/apk/exec";
/// Prefix of the progress lines the generated script prints.
const STEP_MARKER: &str = "rootstrap-step:";

#[derive(Debug, thiserror::Error)]
pub enum ApkBootstrapError {
    #[error(transparent)]
    Fetch(#[from] crate::fetch::FetchError),
    // Fields are named `error`, not `source`: the message already includes
    // it, and a chained source would print it twice.
    #[error("{url}: {error}")]
    Index { url: String, error: ApkError },
    /// Every ApkError names the package (or file) at fault.
    #[error(transparent)]
    Package(ApkError),
    #[error("{package}: cannot read the downloaded file {path}: {error}")]
    Read {
        package: String,
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("invalid package request {0:?}")]
    Request(String),
    #[error("invalid repository {0:?} (want `main`, `@tag release/repo` or `@tag https://…`)")]
    Repository(String),
    #[error("package request {request:?}: no repository is tagged @{tag}")]
    UnknownTag { request: String, tag: String },
    #[error(transparent)]
    Solve(#[from] SolveError),
    #[error(transparent)]
    Extract(#[from] crate::rootfs::extract::ExtractError),
    #[error("{package}: trying to overwrite /{path}, owned by {owner}")]
    Overwrite {
        package: String,
        path: String,
        owner: String,
    },
    #[error("rootfs {path}: {error}")]
    Rootfs {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("rootfs: {0}")]
    Fs(#[from] crate::rootfs::safe::FsError),
    #[error(transparent)]
    Path(#[from] crate::rootfs::safe::PathError),
    #[error(transparent)]
    Sandbox(#[from] sandbox::SandboxError),
    #[error("package scripts failed at {step} ({status}); last output:\n{tail}")]
    Scripts {
        step: String,
        status: String,
        tail: String,
    },
}

/// Where and what to install.
#[derive(Debug, Clone)]
pub struct ApkSource {
    /// Mirror root, e.g. `https://mirror.example/alpine` (no trailing `/`).
    pub mirror: String,
    /// `v3.20`, `edge`.
    pub release: String,
    /// `main`, `community`.
    pub repositories: Vec<String>,
    /// apk architecture (`x86_64`, `aarch64`).
    pub arch: String,
    /// The base world; `None` is [`DEFAULT_WORLD`].
    pub base: Option<Vec<String>>,
    /// World entries (`name`, `name=version`, `name>=v`) beyond the base.
    pub extra: Vec<String>,
    /// Accept unsigned or untrusted indexes and packages (apk's `--allow-untrusted`).
    pub allow_untrusted: bool,
}

/// One recipe `repositories` entry: `main` (under `<mirror>/<release>/`),
/// or a tagged repository `@edge edge/main` (under `<mirror>/`) or
/// `@edge https://host/alpine/edge/main`. Packages of a tagged repository
/// are installed only when asked for as `name@tag` (or needed by one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoSpec {
    pub tag: Option<String>,
    pub location: RepoLocation,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RepoLocation {
    /// A repository of the recipe's release: `main`.
    Name(String),
    /// A path under the mirror: `edge/main`.
    MirrorPath(String),
    /// A full `http://` or `https://` URL (not changed by `--mirror`).
    Url(String),
}

/// One `/etc/apk/repositories` line: `[@tag ]url`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoLine {
    pub tag: Option<String>,
    pub url: String,
}

impl std::fmt::Display for RepoLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.tag {
            Some(t) => write!(f, "@{t} {}", self.url),
            None => f.write_str(&self.url),
        }
    }
}

fn is_plain_word(s: &str) -> bool {
    !s.is_empty()
        && s != "."
        && s != ".."
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '+'))
}

/// Parses a recipe `repositories` entry; `None` if it is malformed.
pub fn parse_repository(entry: &str) -> Option<RepoSpec> {
    let Some(tagged) = entry.strip_prefix('@') else {
        return is_plain_word(entry).then(|| RepoSpec {
            tag: None,
            location: RepoLocation::Name(entry.to_owned()),
        });
    };
    let (tag, location) = tagged.split_once(' ')?;
    let location = location.trim();
    if !is_plain_word(tag) {
        return None;
    }
    let location = if let Some(rest) = location
        .strip_prefix("https://")
        .or_else(|| location.strip_prefix("http://"))
    {
        let host_ok = !rest.is_empty() && !rest.starts_with('/');
        let clean = !location
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '?' | '#'));
        if !host_ok || !clean {
            return None;
        }
        RepoLocation::Url(location.trim_end_matches('/').to_owned())
    } else {
        let path = location.trim_end_matches('/');
        if !path.split('/').all(is_plain_word) {
            return None;
        }
        RepoLocation::MirrorPath(path.to_owned())
    };
    Some(RepoSpec {
        tag: Some(tag.to_owned()),
        location,
    })
}

impl ApkSource {
    /// Each repository's `[@tag ]url` line, as /etc/apk/repositories lists
    /// them; packages live under `<url>/<arch>/`.
    pub fn repository_lines(&self) -> Result<Vec<RepoLine>, ApkBootstrapError> {
        self.repositories
            .iter()
            .map(|entry| {
                let spec = parse_repository(entry)
                    .ok_or_else(|| ApkBootstrapError::Repository(entry.clone()))?;
                let url = match spec.location {
                    RepoLocation::Name(n) => format!("{}/{}/{n}", self.mirror, self.release),
                    RepoLocation::MirrorPath(p) => format!("{}/{p}", self.mirror),
                    RepoLocation::Url(u) => u,
                };
                Ok(RepoLine { tag: spec.tag, url })
            })
            .collect()
    }

    /// The repositories' URLs (tagged or not).
    pub fn repository_urls(&self) -> Vec<String> {
        self.repository_lines()
            .map(|l| l.into_iter().map(|l| l.url).collect())
            .unwrap_or_default()
    }

    /// The world: the minirootfs set plus the recipe's packages, one entry
    /// per name (a later `name=1.2` or `name@tag` replaces `name`, as
    /// `apk add` does), sorted by name as apk writes /etc/apk/world.
    pub fn world(&self) -> Vec<String> {
        let mut w: BTreeMap<String, String> = BTreeMap::new();
        let base: Vec<&str> = match &self.base {
            Some(b) => b.iter().map(String::as_str).collect(),
            None => DEFAULT_WORLD.to_vec(),
        };
        for entry in base
            .into_iter()
            .chain(self.extra.iter().map(String::as_str))
        {
            let name = entry
                .split(['@', '<', '>', '=', '~'])
                .next()
                .unwrap_or(entry);
            w.insert(name.to_owned(), entry.to_owned());
        }
        w.into_values().collect()
    }
}

/// One verified repository index.
#[derive(Debug, Clone)]
pub struct RepoIndex {
    /// `<mirror>/<release>/<repo>`; packages live under `<url>/<arch>/`.
    pub url: String,
    /// SHA-256 of the APKINDEX.tar.gz bytes (zero for indexes added by tests).
    pub sha256: Sha256Digest,
    /// Size of the APKINDEX.tar.gz (zero for indexes added by tests); with
    /// `sha256` and `url`, what a lock records of the index.
    pub size: u64,
    /// The repository's `@tag`, if it has one.
    pub tag: Option<String>,
    pub description: Option<String>,
    pub trust: Trust,
    pub packages: usize,
}

/// All repositories' packages, each remembering the repository it came from.
#[derive(Debug, Clone, Default)]
pub struct LoadedIndexes {
    pub repos: Vec<RepoIndex>,
    pub packages: Vec<ApkPackage>,
    /// `packages[i]` came from `repos[origin[i]]`.
    pub origin: Vec<usize>,
}

impl LoadedIndexes {
    /// Adds one parsed index (also used by tests that read an index from disk).
    pub fn add(&mut self, url: String, index: super::ApkIndex) {
        self.add_tagged(url, None, index)
    }

    /// Adds the index of a repository tagged `tag`: its packages carry it.
    pub fn add_tagged(&mut self, url: String, tag: Option<String>, mut index: super::ApkIndex) {
        for p in &mut index.packages {
            p.repo_tag = tag.clone();
        }
        let repo = self.repos.len();
        self.repos.push(RepoIndex {
            url,
            sha256: Sha256Digest([0; 32]),
            size: 0,
            tag,
            description: index.description,
            trust: index.trust,
            packages: index.packages.len(),
        });
        self.origin
            .extend(std::iter::repeat_n(repo, index.packages.len()));
        self.packages.extend(index.packages);
    }

    /// Whether any index was accepted without a trusted signature.
    pub fn untrusted(&self) -> bool {
        self.repos
            .iter()
            .any(|r| matches!(r.trust, Trust::AllowedUntrusted { .. }))
    }

    /// Repository URL of a package of this set.
    fn repo_of(&self, pkg: &ApkPackage) -> Option<&str> {
        let i = self.packages.iter().position(|p| std::ptr::eq(p, pkg))?;
        Some(self.repos[self.origin[i]].url.as_str())
    }

    /// Newest build time among `pkgs` (the default SOURCE_DATE_EPOCH).
    pub fn newest_build_time(pkgs: &[&ApkPackage]) -> Option<i64> {
        pkgs.iter()
            .filter_map(|p| p.build_time)
            .max()
            .map(|t| t as i64)
    }
}

/// Fetches and verifies `<mirror>/<release>/<repo>/<arch>/APKINDEX.tar.gz`
/// for every repository. With `plan_cache` (a directory), a build whose
/// indexes are byte-identical to an earlier one's (same trusted keys, same
/// request) reuses that build's plan: the few planned stanzas are read
/// instead of decompressing, verifying and parsing every index again.
pub fn load_indexes(
    fetcher: &Fetcher,
    keys: &TrustedKeys,
    src: &ApkSource,
    reporter: &dyn Reporter,
    plan_cache: Option<&Path>,
) -> Result<LoadedIndexes, ApkBootstrapError> {
    load(
        fetcher,
        keys,
        src,
        reporter,
        IndexUse::Resolve { plan_cache },
    )
}

/// [`load_indexes`] for a lock: every index is verified and parsed (no plan
/// reuse), and each is also kept in the download cache under its SHA-256,
/// where `rootstrap mirror` and locked builds find the files a lock names.
pub fn load_indexes_for_lock(
    fetcher: &Fetcher,
    keys: &TrustedKeys,
    src: &ApkSource,
    reporter: &dyn Reporter,
) -> Result<LoadedIndexes, ApkBootstrapError> {
    load(fetcher, keys, src, reporter, IndexUse::Lock)
}

enum IndexUse<'a> {
    Resolve { plan_cache: Option<&'a Path> },
    Lock,
}

fn load(
    fetcher: &Fetcher,
    keys: &TrustedKeys,
    src: &ApkSource,
    reporter: &dyn Reporter,
    purpose: IndexUse<'_>,
) -> Result<LoadedIndexes, ApkBootstrapError> {
    let mut fetched = Vec::new();
    for line in src.repository_lines()? {
        let url = format!("{}/{}/APKINDEX.tar.gz", line.url, src.arch);
        let bytes = fetcher.fetch_index(&url, INDEX_LIMIT)?;
        let digest = Sha256Digest(Sha256::digest(&bytes).into());
        fetched.push((line, url, bytes, digest));
    }
    let plans = match purpose {
        IndexUse::Resolve {
            plan_cache: Some(dir),
        } => {
            let digests: Vec<(String, Sha256Digest)> = fetched
                .iter()
                .map(|(l, _, _, d)| (l.to_string(), *d))
                .collect();
            Some(PlanCache::new(dir, src, keys, &digests))
        }
        IndexUse::Resolve { plan_cache: None } | IndexUse::Lock => None,
    };
    if let Some(hit) = plans.as_ref().and_then(|c| c.load(src)) {
        for r in &hit.repos {
            reporter.info(&format!(
                "{}/{}/APKINDEX.tar.gz: unchanged ({} packages, {}); package plan reused",
                r.url,
                src.arch,
                r.packages,
                match &r.trust {
                    Trust::Verified { key } => format!("signed by {key}"),
                    Trust::AllowedUntrusted { reason } => format!("UNTRUSTED: {reason}"),
                }
            ));
        }
        return Ok(hit);
    }
    let keep_blobs = matches!(purpose, IndexUse::Lock);
    let mut loaded = LoadedIndexes::default();
    for (line, url, bytes, digest) in fetched {
        let index = parse_index(&bytes, keys, src.allow_untrusted).map_err(|error| {
            ApkBootstrapError::Index {
                url: url.clone(),
                error,
            }
        })?;
        fetcher.keep_index(&url, &bytes);
        match &index.trust {
            Trust::Verified { key } => reporter.info(&format!(
                "{url}: {} packages, signed by {key}",
                index.packages.len()
            )),
            Trust::AllowedUntrusted { reason } => reporter.warn(&format!(
                "{url}: UNTRUSTED ({reason}), allowed by --allow-untrusted"
            )),
        }
        let size = bytes.len() as u64;
        if keep_blobs && fetcher.cache().get_sized(&digest, size).is_none() {
            if let Err(e) = fetcher.cache().insert_bytes(&bytes) {
                reporter.warn(&format!("could not keep {url} in the cache: {e}"));
            }
        }
        loaded.add_tagged(line.url, line.tag, index);
        if let Some(r) = loaded.repos.last_mut() {
            r.sha256 = digest;
            r.size = size;
        }
    }
    if let Some(cache) = &plans {
        if let Ok(planned) = plan(&loaded, src) {
            cache.store(&loaded, src, &planned);
        }
    }
    Ok(loaded)
}

/// Resolves the world against the loaded indexes, in install order.
pub fn plan<'a>(
    index: &'a LoadedIndexes,
    src: &ApkSource,
) -> Result<Vec<&'a ApkPackage>, ApkBootstrapError> {
    let world = parse_world(&src.world())?;
    for d in &world {
        if let Some(tag) = &d.tag {
            if !index.repos.iter().any(|r| r.tag.as_ref() == Some(tag)) {
                return Err(ApkBootstrapError::UnknownTag {
                    request: d.to_string(),
                    tag: tag.clone(),
                });
            }
        }
    }
    let opts = SolveOptions {
        arch: Some(src.arch.clone()),
        ..SolveOptions::default()
    };
    Ok(solve_with(&index.packages, &[], &world, &opts)?.install)
}

/// The package whose files identify the release (`/etc/os-release`,
/// `/etc/alpine-release`, `/etc/issue`, `/etc/secfixes.d/alpine`).
pub const RELEASE_PACKAGE: &str = "alpine-release";

/// The release's `alpine-release` package (newest in the untagged
/// repositories) when the plan does not install it: the official
/// minirootfs build unpacks it without registering it, and rootstrap does
/// the same, so scanners that read /etc/os-release identify every image.
pub fn release_package<'a>(
    index: &'a LoadedIndexes,
    src: &ApkSource,
    plan: &[&ApkPackage],
) -> Option<&'a ApkPackage> {
    if plan.iter().any(|p| p.name == RELEASE_PACKAGE) {
        return None;
    }
    index
        .packages
        .iter()
        .filter(|p| {
            p.name == RELEASE_PACKAGE
                && p.repo_tag.is_none()
                && (p.arch == src.arch || p.arch == "noarch")
        })
        .max_by(|a, b| super::version::compare(&a.version, &b.version))
}

/// The plan plus [`release_package`]: what a build downloads and a lock
/// records.
pub fn plan_with_release<'a>(
    index: &'a LoadedIndexes,
    src: &ApkSource,
) -> Result<Vec<&'a ApkPackage>, ApkBootstrapError> {
    let mut all = plan(index, src)?;
    all.extend(release_package(index, src, &all));
    Ok(all)
}

/// Splits [`plan_with_release`]'s list (or a lock's) into the packages to
/// install and the release package to unpack unregistered: `alpine-release`
/// when neither the world nor another listed package depends on it.
pub fn split_release<'a>(
    all: &[&'a ApkPackage],
    src: &ApkSource,
) -> (Vec<&'a ApkPackage>, Option<usize>) {
    let world = src.world();
    let named =
        |entry: &String| entry.split(['@', '<', '>', '=', '~']).next() == Some(RELEASE_PACKAGE);
    let required = world.iter().any(named)
        || all.iter().any(|p| {
            p.depends
                .iter()
                .any(|d| !d.conflict && d.name == RELEASE_PACKAGE)
        });
    let at = all
        .iter()
        .position(|p| p.name == RELEASE_PACKAGE)
        .filter(|_| !required);
    let plan = all
        .iter()
        .enumerate()
        .filter(|(i, _)| Some(*i) != at)
        .map(|(_, p)| *p)
        .collect();
    (plan, at)
}

fn parse_world(entries: &[String]) -> Result<Vec<Dependency>, ApkBootstrapError> {
    entries
        .iter()
        .map(|w| Dependency::parse(w).ok_or_else(|| ApkBootstrapError::Request(w.clone())))
        .collect()
}

/// Cache key of a package: its control identity and size (the index gives
/// no SHA-256 of the whole file).
pub fn cache_key(pkg: &ApkPackage) -> Sha256Digest {
    let ident = pkg
        .checksum
        .as_ref()
        .map(|c| c.to_string())
        .unwrap_or_else(|| pkg.id());
    let mut h = Sha256::new();
    h.update(b"rootstrap apk package v1\0");
    h.update(ident.as_bytes());
    h.update(b"\0");
    h.update(pkg.size.to_le_bytes());
    Sha256Digest(h.finalize().into())
}

/// Downloads (or takes from the cache) and fully verifies every planned
/// package, in plan order. A package that fails verification is evicted
/// from the cache and the error names it.
pub fn fetch_packages(
    fetcher: &Fetcher,
    index: &LoadedIndexes,
    plan: &[&ApkPackage],
    keys: &TrustedKeys,
    src: &ApkSource,
) -> Result<Vec<VerifiedApk>, ApkBootstrapError> {
    plan.par_iter()
        .map(|pkg| fetch_one(fetcher, index, pkg, keys, src))
        .collect()
}

fn fetch_one(
    fetcher: &Fetcher,
    index: &LoadedIndexes,
    pkg: &ApkPackage,
    keys: &TrustedKeys,
    src: &ApkSource,
) -> Result<VerifiedApk, ApkBootstrapError> {
    let repo = index.repo_of(pkg).unwrap_or(&src.mirror);
    let url = crate::fetch::join_mirror(
        repo,
        &format!("{}/{}-{}.apk", src.arch, pkg.name, pkg.version),
    )?;
    let key = cache_key(pkg);
    let path = fetcher.fetch_sized(&url, pkg.size, &key)?;
    let verified = std::fs::read(&path)
        .map_err(|error| ApkBootstrapError::Read {
            package: pkg.id(),
            path: path.clone(),
            error,
        })
        .and_then(|bytes| {
            let apk = open_package(&bytes, pkg, keys, src.allow_untrusted)?;
            // Per-file checksums are part of "verified": check them now so
            // extraction never starts on a package that would fail half-way.
            apk.data_entries()?;
            Ok(apk)
        });
    if verified.is_err() {
        fetcher.cache().evict(&key);
    }
    verified
}

impl From<ApkError> for ApkBootstrapError {
    fn from(e: ApkError) -> Self {
        ApkBootstrapError::Package(e)
    }
}

/// A trust anchor to copy into /etc/apk/keys.
#[derive(Debug, Clone)]
pub struct KeyFile {
    pub name: String,
    pub bytes: Vec<u8>,
}

/// How [`install`] finishes the rootfs.
pub struct InstallOptions<'a> {
    /// Run package scripts and triggers (false for a foreign architecture).
    pub run_scripts: bool,
    pub sandbox: &'a Sandbox,
    /// Keys written to /etc/apk/keys.
    pub keys: &'a [KeyFile],
    /// [`release_package`], fetched: its files are unpacked at the end,
    /// not registered in the database.
    pub release: Option<(&'a ApkPackage, &'a VerifiedApk)>,
}

/// What [`install`] did, for the image's labels and history.
#[derive(Debug, Clone, Default)]
pub struct InstallReport {
    pub scripts_run: usize,
    pub triggers_run: usize,
    /// Scripts run disabled (foreign architecture).
    pub scripts_skipped: bool,
    /// Packages whose scripts did not run (their records carry `f:s`).
    pub scripts_not_run: Vec<String>,
}

/// Installs the verified packages (in plan order) into `root_dir` as apk
/// does: per package `.pre-install`, then its files, then `.post-install`;
/// triggers once everything is in; the database and configuration last.
pub fn install(
    root_dir: &Path,
    plan: &[&ApkPackage],
    apks: &[VerifiedApk],
    src: &ApkSource,
    opts: &InstallOptions<'_>,
    reporter: &dyn Reporter,
) -> Result<InstallReport, ApkBootstrapError> {
    let root = Root::open(root_dir).map_err(|error| ApkBootstrapError::Rootfs {
        path: root_dir.to_owned(),
        error,
    })?;
    let mut unclaimed = create_skeleton(&root)?;
    if opts.run_scripts {
        reporter.info("package scripts run in the sandbox, in apk's order");
    } else {
        reporter.warn(&format!(
            "foreign architecture {}: package scripts were not run (nor triggers); the \
             packages that have scripts are marked in lib/apk/db/installed (f:s), so that \
             `apk fix` on a {} machine runs them",
            src.arch, src.arch
        ));
    }
    let mut scripts = ScriptRunner {
        root: &root,
        root_dir,
        sandbox: opts.sandbox,
        reporter,
        enabled: opts.run_scripts,
        pending: Vec::new(),
        broken: BTreeSet::new(),
        report: InstallReport {
            scripts_skipped: !opts.run_scripts,
            ..InstallReport::default()
        },
    };
    let mut records = extract_all(&root, plan, apks, &mut scripts, &mut unclaimed)?;
    scripts.queue_triggers(plan, apks, &records);
    scripts.flush()?;
    for &i in &scripts.broken {
        if let Some(r) = records.get_mut(i) {
            r.broken.script = true;
        }
    }
    match opts.release {
        Some((pkg, apk)) => unpack_unregistered(&root, pkg, apk)?,
        None if !plan.iter().any(|p| p.name == RELEASE_PACKAGE) => reporter.warn(&format!(
            "no {RELEASE_PACKAGE} package (not in the repositories, or not in the lock): \
             /etc/os-release and /etc/alpine-release are not written"
        )),
        None => {}
    }
    lock_root_password(&root)?;
    write_database(&root, &records, plan, apks, src, opts.keys)?;
    Ok(scripts.report)
}

/// alpine-baselayout-data ships `/etc/shadow` with root's password empty
/// (`root::`); the official minirootfs build locks it (`root:*:`) after
/// installing, since images that shipped it empty let anyone become root
/// (CVE-2019-5021). rootstrap does the same; mode and owner stay.
fn lock_root_password(root: &Root) -> Result<(), ApkBootstrapError> {
    let shadow = rel("etc/shadow")?;
    let Some(meta) = root.lstat(&shadow)? else {
        return Ok(());
    };
    if meta.kind != FileKind::File {
        return Ok(());
    }
    let text = root.read_file(&shadow)?;
    let Some(rest) = text.strip_prefix(b"root::") else {
        return Ok(());
    };
    let mut locked = b"root:*:".to_vec();
    locked.extend_from_slice(rest);
    root.write_file(&shadow, &locked, meta.mode)?;
    if is_root_user() {
        root.set_owner(&shadow, meta.uid, meta.gid)?;
    }
    root.set_mode(&shadow, meta.mode)?;
    Ok(())
}

/// Unpacks a package's files without registering it, as `tar -x` of the
/// package would (the official minirootfs build does this with
/// `alpine-release`), except that it never replaces what an installed
/// package put there: existing directories keep their mode, existing paths
/// stay.
fn unpack_unregistered(
    root: &Root,
    pkg: &ApkPackage,
    apk: &VerifiedApk,
) -> Result<(), ApkBootstrapError> {
    // Names and checksums are verified before anything is written.
    apk.data_entries()?;
    let claim = |rel: &RelPath, _: EntryKind| match root.lstat(rel) {
        Ok(Some(_)) => Ok(Claimed::Skip),
        Ok(None) => Ok(Claimed::Write),
        Err(e) => Err(e.to_string()),
    };
    extract_tar_with(root, &apk.data_tar[..], &extract_options(pkg), &claim)?;
    Ok(())
}

/// How apk writes a package's files: owners only as root, no xattrs, and
/// symlinks and device nodes keep the time they were made.
fn extract_options(pkg: &ApkPackage) -> ExtractOptions {
    ExtractOptions {
        xattrs: false,
        link_and_node_mtimes: false,
        ..ExtractOptions::new(pkg.id())
    }
}

/// The directories apk's `--initdb` creates before installing anything
/// (`proc` 0555 is where apk mounts /proc for scripts; `lib/apk/exec` is
/// where it stages them). Returns them: apk leaves a directory that existed
/// before any package claimed it with its mode when the package's differs.
fn create_skeleton(root: &Root) -> Result<HashSet<RelPath>, ApkBootstrapError> {
    let mut made = HashSet::new();
    for (dir, mode) in [
        ("proc", 0o555),
        ("tmp", 0o1777),
        ("dev", 0o755),
        ("etc", 0o755),
        ("etc/apk", 0o755),
        ("lib", 0o755),
        ("lib/apk", 0o755),
        ("lib/apk/db", 0o755),
        ("var", 0o755),
        ("var/cache", 0o755),
        ("var/cache/apk", 0o755),
        ("var/cache/misc", 0o755),
        ("lib/apk/exec", 0o755),
    ] {
        let p = RelPath::from_archive(dir.as_bytes())?;
        if root.mkdir(&p, mode)? {
            root.set_mode(&p, mode)?;
        }
        made.insert(p);
    }
    Ok(made)
}

fn is_root_user() -> bool {
    rustix::process::geteuid().is_root()
}

/// Extracts all packages in order. Non-directory paths belong to one
/// package; when a later package ships the same path, apk's rule decides
/// (see [`overwrite_decision`]) and the loser's record no longer lists it.
fn extract_all(
    root: &Root,
    plan: &[&ApkPackage],
    apks: &[VerifiedApk],
    scripts: &mut ScriptRunner<'_>,
    unclaimed: &mut HashSet<RelPath>,
) -> Result<Vec<InstalledPackage>, ApkBootstrapError> {
    let mut owners: HashMap<RelPath, usize> = HashMap::new();
    let mut records = Vec::with_capacity(apks.len());
    for (i, (pkg, apk)) in plan.iter().zip(apks).enumerate() {
        scripts.before_files(i, pkg, apk)?;
        // Names and checksums are verified before anything is written.
        let entries = apk.data_entries()?;
        let mut dirs: HashMap<RelPath, &TarEntry> = HashMap::new();
        for e in entries.iter().filter(|e| e.kind == EntryKind::Dir) {
            dirs.insert(rel(&e.path)?, e);
        }
        let claims = RefCell::new(PackageClaims {
            index: i,
            plan,
            owners: &mut owners,
            unclaimed: &mut *unclaimed,
            dirs,
            taken: Vec::new(),
            kept: Vec::new(),
            conflict: None,
        });
        let claim = |rel: &RelPath, kind: EntryKind| claims.borrow_mut().claim(root, rel, kind);
        let extracted = extract_tar_with(root, &apk.data_tar[..], &extract_options(pkg), &claim);
        let claims = claims.into_inner();
        if let Some(conflict) = claims.conflict {
            return Err(conflict);
        }
        extracted?;
        for (other, rel) in claims.taken {
            drop_file(&mut records, other, &rel);
        }
        // The record keeps the package's repository tag: apk writes it as `s:`.
        records.push(InstalledPackage {
            pkg: (*pkg).clone(),
            dirs: installed::dirs_from_entries(&entries),
            ..InstalledPackage::default()
        });
        for rel in claims.kept {
            drop_file(&mut records, i, &rel);
        }
        scripts.after_files(i, pkg, apk);
    }
    Ok(records)
}

/// Who may write each path of one package, decided entry by entry while
/// it is extracted.
struct PackageClaims<'a> {
    /// The package's place in the plan.
    index: usize,
    plan: &'a [&'a ApkPackage],
    /// Owner (plan index) of every non-directory path written so far.
    owners: &'a mut HashMap<RelPath, usize>,
    /// Skeleton directories no package has claimed yet.
    unclaimed: &'a mut HashSet<RelPath>,
    /// The package's directory entries, for their mode and owner.
    dirs: HashMap<RelPath, &'a TarEntry>,
    /// Paths taken over from an earlier package (its plan index).
    taken: Vec<(usize, RelPath)>,
    /// Paths whose owner keeps its copy.
    kept: Vec<RelPath>,
    /// A refused overwrite, reported as such rather than as an entry error.
    conflict: Option<ApkBootstrapError>,
}

impl PackageClaims<'_> {
    fn claim(&mut self, root: &Root, rel: &RelPath, kind: EntryKind) -> Result<Claimed, String> {
        let pkg = self.plan[self.index];
        if kind == EntryKind::Dir {
            if !self.unclaimed.remove(rel) {
                return Ok(Claimed::Write);
            }
            // apk leaves a directory that existed before any package
            // claimed it alone when the package's mode or owner differ.
            let Some(e) = self.dirs.get(rel) else {
                return Ok(Claimed::Write);
            };
            let differs = root
                .lstat(rel)
                .map_err(|e| e.to_string())?
                .is_some_and(|m| {
                    m.kind == FileKind::Dir
                        && (m.mode != e.mode & 0o7777 || m.uid != e.uid || m.gid != e.gid)
                });
            return Ok(if differs {
                Claimed::Skip
            } else {
                Claimed::Write
            });
        }
        if let Some(&other) = self.owners.get(rel).filter(|&&o| o != self.index) {
            match overwrite_decision(pkg, self.plan[other]) {
                Overwrite::Yes => self.taken.push((other, rel.clone())),
                Overwrite::KeepOriginal => {
                    self.kept.push(rel.clone());
                    return Ok(Claimed::Skip);
                }
                Overwrite::Conflict => {
                    let err = ApkBootstrapError::Overwrite {
                        package: pkg.id(),
                        path: String::from_utf8_lossy(rel.as_bytes()).into_owned(),
                        owner: self.plan[other].id(),
                    };
                    let reason = err.to_string();
                    self.conflict = Some(err);
                    return Err(reason);
                }
            }
        }
        self.owners.insert(rel.clone(), self.index);
        Ok(Claimed::Write)
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Overwrite {
    Yes,
    /// The owner replaces the new package with a higher priority: the
    /// owner's copy stays and the new package does not own the path.
    KeepOriginal,
    Conflict,
}

/// apk-tools' rule for a path already owned by another package: same
/// origin overwrites; otherwise `replaces` on either side, weighed by
/// `replaces_priority`; otherwise "trying to overwrite" (HOSTILE 16).
fn overwrite_decision(new: &ApkPackage, owner: &ApkPackage) -> Overwrite {
    if !new.origin.is_empty() && new.origin == owner.origin {
        return Overwrite::Yes;
    }
    let prio = |by: &ApkPackage, of: &ApkPackage| -> i64 {
        if by.replaces.iter().any(|r| !r.conflict && r.name == of.name) {
            i64::from(by.replaces_priority.unwrap_or(0))
        } else {
            -1
        }
    };
    let (owner_prio, new_prio) = (prio(owner, new), prio(new, owner));
    if owner_prio > new_prio {
        Overwrite::KeepOriginal
    } else if new_prio >= 0 {
        Overwrite::Yes
    } else {
        Overwrite::Conflict
    }
}

/// Removes a taken-over file from an earlier package's record.
fn drop_file(records: &mut [InstalledPackage], owner: usize, rel: &RelPath) {
    let Some(rec) = records.get_mut(owner) else {
        return;
    };
    let path = String::from_utf8_lossy(rel.as_bytes());
    let (parent, name) = path.rsplit_once('/').unwrap_or(("", &path));
    for d in rec.dirs.iter_mut().filter(|d| d.path == parent) {
        d.files.retain(|f| f.name != name);
    }
}

fn rel(path: &str) -> Result<RelPath, ApkBootstrapError> {
    Ok(RelPath::from_archive(path.as_bytes())?)
}

/// `triggers = /bin /usr/bin …` from a package's .PKGINFO.
fn trigger_globs(apk: &VerifiedApk) -> Vec<String> {
    apk.pkginfo
        .get_all("triggers")
        .flat_map(|v| v.split_whitespace())
        .map(str::to_owned)
        .collect()
}

/// Writes lib/apk/db/{installed,scripts.tar,triggers,lock} and
/// etc/apk/{world,repositories,arch,keys/} as apk-tools leaves them.
fn write_database(
    root: &Root,
    records: &[InstalledPackage],
    plan: &[&ApkPackage],
    apks: &[VerifiedApk],
    src: &ApkSource,
    keys: &[KeyFile],
) -> Result<(), ApkBootstrapError> {
    // apk 2.14 writes the installed database sorted by package name.
    let mut sorted: Vec<&InstalledPackage> = records.iter().collect();
    sorted.sort_by(|a, b| a.pkg.name.cmp(&b.pkg.name));
    root.write_file(
        &rel("lib/apk/db/installed")?,
        &installed::write_installed(sorted),
        0o644,
    )?;
    // scripts.tar keeps install order and, per package, apk's order of
    // script types, each stamped with the package's build time.
    let mut scripts = Vec::new();
    for (rec, apk) in records.iter().zip(apks) {
        for name in SCRIPT_NAMES {
            if let Some(content) = apk.scripts.get(name) {
                scripts.push(ScriptEntry {
                    pkg: &rec.pkg,
                    script: name,
                    content,
                });
            }
        }
    }
    root.write_file(
        &rel("lib/apk/db/scripts.tar")?,
        &installed::write_scripts_tar(&scripts),
        0o644,
    )?;
    let globs: Vec<Vec<String>> = apks.iter().map(trigger_globs).collect();
    let triggers: Vec<(&ApkPackage, &[String])> = plan
        .iter()
        .zip(&globs)
        .map(|(p, g)| (*p, g.as_slice()))
        .collect();
    root.write_file(
        &rel("lib/apk/db/triggers")?,
        &installed::write_triggers(&triggers),
        0o644,
    )?;
    root.write_file(&rel("lib/apk/db/lock")?, b"", 0o600)?;

    let mut world = src.world().join("\n");
    world.push('\n');
    root.write_file(&rel("etc/apk/world")?, world.as_bytes(), 0o644)?;
    let mut repos = String::new();
    for line in src.repository_lines()? {
        repos.push_str(&format!("{line}\n"));
    }
    root.write_file(&rel("etc/apk/repositories")?, repos.as_bytes(), 0o644)?;
    root.write_file(
        &rel("etc/apk/arch")?,
        format!("{}\n", src.arch).as_bytes(),
        0o644,
    )?;
    let keys_dir = rel("etc/apk/keys")?;
    root.mkdir_all(&keys_dir, 0o755)?;
    for k in keys {
        let name = Path::new(&k.name)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if name.is_empty() {
            continue;
        }
        let path = keys_dir.join(name.as_bytes())?;
        // alpine-keys ships most of them (possibly as symlinks): what a
        // package installed is what its database record describes.
        if root.lstat(&path)?.is_some() {
            continue;
        }
        root.write_file(&path, &k.bytes, 0o644)?;
    }
    Ok(())
}

/// Single-quotes a word for /bin/sh.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Does an apk trigger glob (`*` and `?` wildcards) match a directory?
fn glob_matches(glob: &[u8], path: &[u8]) -> bool {
    match (glob.first(), path.first()) {
        (None, None) => true,
        (Some(b'*'), _) => {
            glob_matches(&glob[1..], path) || (!path.is_empty() && glob_matches(glob, &path[1..]))
        }
        (Some(b'?'), Some(_)) => glob_matches(&glob[1..], &path[1..]),
        (Some(g), Some(p)) if g == p => glob_matches(&glob[1..], &path[1..]),
        _ => false,
    }
}

/// One script run: staged file name, argument list, label for messages.
struct Step {
    file: String,
    args: Vec<String>,
    label: String,
    content: Vec<u8>,
}

/// The shell script that runs every step in order, marking each on stdout.
fn script_for(steps: &[Step]) -> String {
    let mut s = String::from("set -e\ncd /\n");
    for st in steps {
        s.push_str(&format!(
            "echo {}\n",
            quote(&format!("{STEP_MARKER} {}", st.label))
        ));
        s.push_str(&quote(&format!("/{EXEC_DIR}/{}", st.file)));
        for a in &st.args {
            s.push(' ');
            s.push_str(&quote(a));
        }
        s.push('\n');
    }
    s.push_str(&format!("echo '{STEP_MARKER} done'\n"));
    s
}

/// Runs package scripts in apk's order while packages are installed:
/// `before_files` (`.pre-install`) and `after_files` (`.post-install`) per
/// package, `.trigger`s at the end. Scripts that run between the same two
/// extractions (one package's `.post-install`, the next one's
/// `.pre-install`) share one sandbox start.
///
/// A script whose interpreter (`#!` line, and the `/bin/sh` that runs the
/// batch) is not in the rootfs yet cannot run; apk tries it anyway, fails,
/// marks the package `f:s` (broken script) and goes on. We do the same
/// without the failed exec: warn, mark `f:s`, go on, so `apk fix` in the
/// image runs it later. With real Alpine this does not happen, since every
/// package with a script depends on /bin/sh.
struct ScriptRunner<'a> {
    root: &'a Root,
    root_dir: &'a Path,
    sandbox: &'a Sandbox,
    reporter: &'a dyn Reporter,
    enabled: bool,
    /// Steps to run at the next flush, with the plan index of their package.
    pending: Vec<(usize, Step)>,
    /// Plan indexes of packages whose scripts did not run.
    broken: BTreeSet<usize>,
    report: InstallReport,
}

impl ScriptRunner<'_> {
    fn step(pkg: &ApkPackage, script: &str, content: &[u8], args: Vec<String>) -> Step {
        Step {
            file: format!("{}-{}{}", pkg.name, pkg.version, script),
            args,
            label: format!("{} {script}", pkg.id()),
            content: content.to_vec(),
        }
    }

    fn not_run(&mut self, i: usize, pkg: &ApkPackage) {
        if self.broken.insert(i) {
            self.report.scripts_not_run.push(pkg.id());
        }
    }

    /// `.pre-install` runs before any file of the package is in place.
    fn before_files(
        &mut self,
        i: usize,
        pkg: &ApkPackage,
        apk: &VerifiedApk,
    ) -> Result<(), ApkBootstrapError> {
        let has_scripts = [".pre-install", ".post-install"]
            .iter()
            .any(|s| apk.scripts.contains_key(*s));
        if !self.enabled {
            if has_scripts {
                self.not_run(i, pkg);
            }
            return Ok(());
        }
        if let Some(content) = apk.scripts.get(".pre-install") {
            let step = Self::step(pkg, ".pre-install", content, vec![pkg.version.clone()]);
            self.pending.push((i, step));
        }
        // The previous package's .post-install and this .pre-install both
        // belong between the two packages' files: one sandbox start.
        self.flush()
    }

    fn after_files(&mut self, i: usize, pkg: &ApkPackage, apk: &VerifiedApk) {
        if !self.enabled {
            return;
        }
        if let Some(content) = apk.scripts.get(".post-install") {
            let step = Self::step(pkg, ".post-install", content, vec![pkg.version.clone()]);
            self.pending.push((i, step));
        }
    }

    /// Each `.trigger` whose globs match a directory the transaction
    /// touched, with those directories as arguments.
    fn queue_triggers(
        &mut self,
        plan: &[&ApkPackage],
        apks: &[VerifiedApk],
        records: &[InstalledPackage],
    ) {
        if !self.enabled {
            return;
        }
        let touched: BTreeSet<String> = records
            .iter()
            .flat_map(|r| r.dirs.iter().map(|d| format!("/{}", d.path)))
            .collect();
        for (i, (pkg, apk)) in plan.iter().zip(apks).enumerate() {
            let Some(content) = apk.scripts.get(".trigger") else {
                continue;
            };
            let globs = trigger_globs(apk);
            let matched: Vec<String> = touched
                .iter()
                .filter(|d| {
                    globs
                        .iter()
                        .any(|g| glob_matches(g.as_bytes(), d.as_bytes()))
                })
                .cloned()
                .collect();
            if !matched.is_empty() {
                self.pending
                    .push((i, Self::step(pkg, ".trigger", content, matched)));
            }
        }
    }

    /// The interpreter a script needs (its `#!` line; /bin/sh without one)
    /// that the rootfs does not have yet.
    fn missing_interpreter(&self, step: &Step) -> Result<Option<String>, ApkBootstrapError> {
        let interp = step
            .content
            .strip_prefix(b"#!")
            .and_then(|rest| rest.split(|&b| b == b'\n').next())
            .map(|line| String::from_utf8_lossy(line).into_owned())
            .and_then(|line| line.split_whitespace().next().map(str::to_owned))
            .unwrap_or_else(|| "/bin/sh".to_owned());
        Ok((!self.has_file(&interp)?).then_some(interp))
    }

    /// Runs the pending steps (one sandbox start when /bin/sh exists).
    fn flush(&mut self) -> Result<(), ApkBootstrapError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let pending = std::mem::take(&mut self.pending);
        let mut steps = Vec::new();
        for (i, step) in pending {
            if let Some(missing) = self.missing_interpreter(&step)? {
                self.reporter.warn(&format!(
                    "{}: not run, {missing} is not installed yet; the package is marked \
                     as having a broken script (f:s), as apk does, so `apk fix` runs it",
                    step.label
                ));
                let id = step.label.split(' ').next().unwrap_or_default().to_owned();
                if self.broken.insert(i) {
                    self.report.scripts_not_run.push(id);
                }
                continue;
            }
            if step.file.ends_with(".trigger") {
                self.report.triggers_run += 1;
            } else {
                self.report.scripts_run += 1;
            }
            steps.push(step);
        }
        if steps.is_empty() {
            return Ok(());
        }
        let exec = rel(EXEC_DIR)?;
        self.root.mkdir_all(&exec, 0o755)?;
        for st in &steps {
            self.root
                .write_file(&exec.join(st.file.as_bytes())?, &st.content, 0o755)?;
        }
        let result = self.run_steps(&steps);
        // apk leaves lib/apk/exec in place, empty.
        for st in &steps {
            self.root.remove_all(&exec.join(st.file.as_bytes())?)?;
        }
        result
    }

    /// With a /bin/sh in the rootfs, one shell runs every step; before it
    /// exists (busybox's own .post-install runs `#!/bin/busybox sh`), each
    /// script is executed directly, as apk execs it.
    fn run_steps(&self, steps: &[Step]) -> Result<(), ApkBootstrapError> {
        if self.has_file("/bin/sh")? {
            let argv = vec!["/bin/sh".into(), "-c".into(), script_for(steps)];
            return run_in_sandbox(self.root_dir, argv, None, self.sandbox, self.reporter);
        }
        for st in steps {
            let mut argv = vec![format!("/{EXEC_DIR}/{}", st.file)];
            argv.extend(st.args.iter().cloned());
            run_in_sandbox(
                self.root_dir,
                argv,
                Some(&st.label),
                self.sandbox,
                self.reporter,
            )?;
        }
        Ok(())
    }

    /// Does `path` resolve, inside the rootfs, to a regular file?
    fn has_file(&self, path: &str) -> Result<bool, ApkBootstrapError> {
        Ok(match RelPath::from_container_path(path.as_bytes()) {
            Ok(p) => self
                .root
                .stat(&p)?
                .is_some_and(|m| m.kind == FileKind::File),
            Err(_) => false,
        })
    }
}

/// Runs `argv` in the rootfs; a failure names `step` (or, for a batch
/// script, the last step marker it printed).
fn run_in_sandbox(
    root_dir: &Path,
    argv: Vec<String>,
    step: Option<&str>,
    sandbox: &Sandbox,
    reporter: &dyn Reporter,
) -> Result<(), ApkBootstrapError> {
    let mut spec = RunSpec::new(root_dir, argv);
    spec.suppress_sync = true;
    spec.env = vec![
        (
            "PATH".into(),
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
        ),
        ("HOME".into(), "/root".into()),
        ("LANG".into(), "C".into()),
    ];
    spec.network = Network::NoneIfIsolated;
    spec.chroot_view = true;
    let mut lines = Vec::new();
    let status = sandbox.run(&spec, &mut |line| {
        if !line.text.starts_with(STEP_MARKER) {
            reporter.command_output(&line.text);
        }
        lines.push(line.text);
    })?;
    if !status.success() {
        let step = step.map(str::to_owned).unwrap_or_else(|| {
            lines
                .iter()
                .rev()
                .find_map(|l| l.strip_prefix(STEP_MARKER))
                .map(|s| s.trim().to_owned())
                .unwrap_or_else(|| "start-up".into())
        });
        return Err(ApkBootstrapError::Scripts {
            step,
            status: status.to_string(),
            tail: lines[lines.len().saturating_sub(30)..].join("\n"),
        });
    }
    Ok(())
}

/// apk's architecture name for this machine (what can run scripts natively).
pub fn host_apk_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86" => "x86",
        "arm" => "armv7",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_like_fnmatch() {
        assert!(glob_matches(b"/bin", b"/bin"));
        assert!(!glob_matches(b"/bin", b"/sbin"));
        assert!(glob_matches(
            b"/usr/share/fonts/*",
            b"/usr/share/fonts/misc"
        ));
        assert!(!glob_matches(b"/usr/share/fonts/*", b"/usr/share"));
        assert!(glob_matches(b"/lib/modules/?", b"/lib/modules/6"));
    }

    #[test]
    fn script_quotes_and_orders_steps() {
        let steps = vec![
            Step {
                file: "a-1.pre-install".into(),
                args: vec!["1".into()],
                label: "a-1 .pre-install".into(),
                content: Vec::new(),
            },
            Step {
                file: "b-2.trigger".into(),
                args: vec!["/bin".into(), "/x y".into()],
                label: "b-2 .trigger".into(),
                content: Vec::new(),
            },
        ];
        let s = script_for(&steps);
        let a = s.find("'/lib/apk/exec/a-1.pre-install' '1'").unwrap();
        let b = s.find("'/lib/apk/exec/b-2.trigger' '/bin' '/x y'").unwrap();
        assert!(a < b);
        assert!(s.starts_with("set -e\n"));
    }

    #[test]
    fn world_is_sorted_and_deduplicated() {
        let src = ApkSource {
            mirror: "http://m".into(),
            release: "v3.20".into(),
            repositories: vec!["main".into(), "community".into()],
            arch: "x86_64".into(),
            base: None,
            extra: vec![
                "curl".into(),
                "busybox=1.36.1-r0".into(),
                "curl-dev@edge".into(),
            ],
            allow_untrusted: false,
        };
        assert_eq!(
            src.world(),
            [
                "alpine-baselayout",
                "alpine-keys",
                "apk-tools",
                "busybox=1.36.1-r0",
                "curl",
                "curl-dev@edge",
                "libc-utils"
            ]
        );
        assert_eq!(
            src.repository_urls(),
            ["http://m/v3.20/main", "http://m/v3.20/community"]
        );
    }

    #[test]
    fn tagged_repositories_resolve_and_print_like_apk() {
        let src = ApkSource {
            mirror: "http://m".into(),
            release: "v3.20".into(),
            repositories: vec![
                "main".into(),
                "@edge edge/main".into(),
                "@t https://other.example/alpine/edge/testing/".into(),
            ],
            arch: "x86_64".into(),
            base: None,
            extra: vec![],
            allow_untrusted: false,
        };
        let lines: Vec<String> = src
            .repository_lines()
            .unwrap()
            .iter()
            .map(|l| l.to_string())
            .collect();
        assert_eq!(
            lines,
            [
                "http://m/v3.20/main",
                "@edge http://m/edge/main",
                "@t https://other.example/alpine/edge/testing"
            ]
        );
        for bad in [
            "@edge",
            "@ edge/main",
            "@e ../main",
            "@e /abs",
            "@e ftp://x/y",
            "@e https:///x",
            "@e https://h/x y",
            "a/b",
            "@e\tedge/main",
        ] {
            assert_eq!(parse_repository(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn overwrite_rule_follows_apk() {
        let pkg = |name: &str, origin: &str| ApkPackage {
            name: name.into(),
            origin: origin.into(),
            ..Default::default()
        };
        let (mut a, mut b) = (pkg("a", "a"), pkg("b", "b"));
        assert_eq!(overwrite_decision(&a, &b), Overwrite::Conflict);
        assert_eq!(overwrite_decision(&pkg("c", "b"), &b), Overwrite::Yes);
        a.replaces.push(Dependency::any("b"));
        assert_eq!(overwrite_decision(&a, &b), Overwrite::Yes);
        // Both replace each other: the higher replaces_priority keeps its copy.
        b.replaces.push(Dependency::any("a"));
        b.replaces_priority = Some(10);
        assert_eq!(overwrite_decision(&a, &b), Overwrite::KeepOriginal);
        a.replaces_priority = Some(10);
        assert_eq!(overwrite_decision(&a, &b), Overwrite::Yes);
    }
}
