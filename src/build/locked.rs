//! Lockfiles in the pipeline: `rootstrap lock` (plan → lockfile),
//! `build --lock FILE [--locked]` (lockfile → plan, or drift against it) and
//! `rootstrap mirror` (lockfile + cache → a partial mirror on disk).
//!
//! The lock format itself is `crate::lock`; this module only connects it to
//! the Debian and Alpine back ends and to the download cache.

use std::path::{Path, PathBuf};

use rayon::prelude::*;

use super::{BuildError, SourceOptions};
use crate::cleanup::TempPath;
use crate::distro::apk::bootstrap::{self as apk, ApkBootstrapError, ApkSource, LoadedIndexes};
use crate::distro::apk::{open_package, ApkPackage, TrustedKeys, VerifiedApk};
use crate::distro::deb::bootstrap::{DebSource, LoadedIndex};
use crate::distro::deb::resolve::Plan;
use crate::fetch::{FetchItem, Fetcher};
use crate::lock::{self, Drift, Layout, LockPath, LockSource, LockedFile, LockedPackage, Lockfile};
use crate::recipe::Recipe;
use crate::report::{Reporter, SharedReporter};
use crate::verify::Sha256Digest;

/// `build --lock FILE [--locked]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockRequest {
    pub file: PathBuf,
    /// Install exactly the lock (no resolution); without it the build
    /// resolves and reports drift against the lock, or writes the lock when
    /// the file does not exist yet.
    pub locked: bool,
}

/// What `rootstrap lock` wrote.
#[derive(Debug, Clone)]
pub struct LockReport {
    pub file: PathBuf,
    pub lock: Lockfile,
}

/// What `rootstrap mirror` wrote.
#[derive(Debug, Clone)]
pub struct MirrorReport {
    pub dir: PathBuf,
    pub files: usize,
    pub bytes: u64,
    /// Files taken from the cache (the rest were downloaded).
    pub from_cache: usize,
}

/// A build's view of its `--lock`: the lock when the file exists.
pub(super) struct LockContext {
    pub request: LockRequest,
    pub existing: Option<Lockfile>,
    pub recipe_sha256: Sha256Digest,
}

impl LockContext {
    pub fn open(
        request: Option<&LockRequest>,
        recipe: &Recipe,
    ) -> Result<Option<Self>, BuildError> {
        let Some(request) = request else {
            return Ok(None);
        };
        let existing = if request.file.exists() {
            Some(read_lock(&request.file)?)
        } else if request.locked {
            return Err(BuildError::LockMissing(request.file.clone()));
        } else {
            None
        };
        Ok(Some(LockContext {
            request: request.clone(),
            existing,
            recipe_sha256: recipe_digest(recipe)?,
        }))
    }

    /// The lock to install as-is (`--locked`).
    pub fn locked(&self) -> Option<&Lockfile> {
        self.existing.as_ref().filter(|_| self.request.locked)
    }

    /// Refuses a lock made for another source; warns when the recipe changed.
    pub fn check_source(
        &self,
        build: &LockSource,
        reporter: &dyn Reporter,
    ) -> Result<(), BuildError> {
        let Some(lock) = &self.existing else {
            return Ok(());
        };
        check_source(lock, &self.request.file, build)?;
        if lock.recipe_sha256 != self.recipe_sha256 {
            reporter.warn(&format!(
                "{}: the recipe changed since this lock was written{}",
                self.request.file.display(),
                if self.request.locked {
                    " (the lock still decides the package set)"
                } else {
                    ""
                }
            ));
        }
        Ok(())
    }

    /// After a resolving build: the drift against an existing lock, as
    /// warnings (one line per package); returns it.
    pub fn report_drift(&self, resolved: &[LockedPackage], reporter: &dyn Reporter) -> Vec<Drift> {
        let Some(lock) = &self.existing else {
            return Vec::new();
        };
        let changes = lock::drift(&lock.packages, resolved);
        if changes.is_empty() {
            reporter.info(&format!(
                "{}: the resolved packages match the lock",
                self.request.file.display()
            ));
        } else {
            reporter.warn(&format!(
                "{}: {} package(s) drifted from the lock (run `rootstrap lock` to update it, or build with --locked):",
                self.request.file.display(),
                changes.len()
            ));
            for c in &changes {
                reporter.warn(&format!("  {c}"));
            }
        }
        changes
    }

    /// After a successful resolving build: writes the lock if there was none.
    pub fn write_if_new(
        &self,
        make: impl FnOnce() -> Result<Lockfile, BuildError>,
        reporter: &dyn Reporter,
    ) -> Result<(), BuildError> {
        if self.existing.is_some() || self.request.locked {
            return Ok(());
        }
        write_lock(&self.request.file, &make()?)?;
        reporter.info(&format!("wrote the lock {}", self.request.file.display()));
        Ok(())
    }
}

pub fn read_lock(path: &Path) -> Result<Lockfile, BuildError> {
    let text = std::fs::read_to_string(path).map_err(|source| BuildError::LockIo {
        path: path.to_owned(),
        source,
    })?;
    Ok(lock::parse(&text, path)?)
}

/// Writes next to `path` and renames into place, so a reader never sees a
/// half-written lock and a failure leaves the old one.
pub(super) fn write_lock(path: &Path, lock: &Lockfile) -> Result<(), BuildError> {
    let text = lock::to_toml(lock)?;
    let err = |source| BuildError::LockIo {
        path: path.to_owned(),
        source,
    };
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(".rootstrap-lock-")
        .tempfile_in(dir)
        .map_err(err)?;
    std::io::Write::write_all(&mut tmp, text.as_bytes()).map_err(err)?;
    tmp.as_file().sync_all().map_err(err)?;
    tmp.persist(path).map_err(|e| err(e.error))?;
    Ok(())
}

/// SHA-256 of the recipe's bytes (a shipped recipe: its embedded text).
pub(super) fn recipe_digest(recipe: &Recipe) -> Result<Sha256Digest, BuildError> {
    match std::fs::read(&recipe.path) {
        Ok(bytes) => Ok(Sha256Digest::of(&bytes)),
        Err(source) => {
            let stem = recipe.path.file_stem().and_then(|s| s.to_str());
            crate::recipe::SHIPPED
                .iter()
                .find(|(name, _)| Some(*name) == stem)
                .map(|(_, text)| Sha256Digest::of(text.as_bytes()))
                .ok_or(BuildError::LockIo {
                    path: recipe.path.clone(),
                    source,
                })
        }
    }
}

/// The mirror recorded in a lock: http(s) only, and never one carrying
/// credentials (the lock is meant to be committed).
fn recordable_mirror(mirror: &str) -> Option<String> {
    let rest = mirror
        .strip_prefix("http://")
        .or_else(|| mirror.strip_prefix("https://"))?;
    let authority = rest.split('/').next().unwrap_or("");
    (!authority.contains('@')).then(|| mirror.trim_end_matches('/').to_owned())
}

/// The mirror an image's apt sources / apk repositories name: the lock's,
/// when a locked build has one, so the image does not depend on where the
/// files were fetched from (a `rootstrap mirror` copy, a proxy).
pub(super) fn image_mirror(locked: Option<&Lockfile>, fetched_from: &str) -> String {
    locked
        .and_then(|l| l.source.mirror.clone())
        .unwrap_or_else(|| fetched_from.to_owned())
}

fn check_source(lock: &Lockfile, file: &Path, build: &LockSource) -> Result<(), BuildError> {
    let l = &lock.source;
    let fields: [(&str, String, String); 7] = [
        ("distro", l.distro.clone(), build.distro.clone()),
        ("layout", l.layout.name().into(), build.layout.name().into()),
        ("suite", l.suite.clone(), build.suite.clone()),
        (
            "components",
            l.components.join(","),
            build.components.join(","),
        ),
        ("arch", l.arch.clone(), build.arch.clone()),
        ("variant", l.variant.clone(), build.variant.clone()),
        ("slim", l.slim.to_string(), build.slim.to_string()),
    ];
    for (field, in_lock, in_build) in fields {
        if in_lock != in_build {
            return Err(BuildError::LockSource {
                file: file.to_owned(),
                field,
                lock: in_lock,
                build: in_build,
            });
        }
    }
    Ok(())
}

fn lock_path(field: &str, s: &str) -> Result<LockPath, BuildError> {
    LockPath::parse(s).map_err(|reason| BuildError::LockUnsafePath {
        what: field.to_owned(),
        reason: reason.to_string(),
    })
}

// ---- Debian ----

/// `slim`: the recipe's setting, or `--slim`.
pub(super) fn deb_lock_source(recipe: &Recipe, src: &DebSource, slim: bool) -> LockSource {
    LockSource {
        distro: recipe.source.distro.name().into(),
        suite: src.suite.clone(),
        components: src.components.clone(),
        arch: src.arch.clone(),
        variant: src.variant.to_string(),
        layout: Layout::Debian,
        mirror: recordable_mirror(&src.mirror),
        slim,
    }
}

pub(super) fn deb_locked_packages(plan: &Plan<'_>) -> Result<Vec<LockedPackage>, BuildError> {
    plan.packages
        .iter()
        .map(|p| {
            Ok(LockedPackage {
                name: p.name.clone(),
                version: p.version.to_string(),
                arch: p.arch.clone(),
                path: lock_path(&p.name, &p.filename)?,
                size: p.size,
                sha256: Sha256Digest(p.sha256),
                checksum: None,
            })
        })
        .collect()
}

/// InRelease and the Packages file of each component, relative to the mirror.
fn deb_index_files(index: &LoadedIndex, src: &DebSource) -> Result<Vec<LockedFile>, BuildError> {
    let dists = format!("dists/{}", src.suite);
    let mut files = vec![LockedFile {
        path: lock_path("InRelease", &format!("{dists}/InRelease"))?,
        sha256: index.inrelease.0,
        size: index.inrelease.1,
    }];
    for used in &index.index_files {
        files.push(LockedFile {
            path: lock_path(&used.path, &format!("{dists}/{}", used.path))?,
            size: used.size,
            sha256: used.sha256,
        });
    }
    Ok(files)
}

pub(super) fn deb_lockfile(
    recipe: &Recipe,
    recipe_sha256: Sha256Digest,
    src: &DebSource,
    index: &LoadedIndex,
    plan: &Plan<'_>,
    slim: bool,
) -> Result<Lockfile, BuildError> {
    Ok(Lockfile {
        recipe_sha256,
        source_date_epoch: index.release.date.unwrap_or(0).max(0),
        source: deb_lock_source(recipe, src, slim),
        index: deb_index_files(index, src)?,
        packages: deb_locked_packages(plan)?,
    })
}

// ---- Alpine ----

pub(super) fn apk_lock_source(recipe: &Recipe, src: &ApkSource) -> LockSource {
    LockSource {
        distro: recipe.source.distro.name().into(),
        suite: src.release.clone(),
        components: src.repositories.clone(),
        arch: src.arch.clone(),
        variant: "minirootfs".into(),
        layout: Layout::Alpine,
        mirror: recordable_mirror(&src.mirror),
        slim: false,
    }
}

/// `apk::load_indexes_for_lock`, with each APKINDEX.tar.gz as a lock index
/// entry (`rootstrap mirror` copies it from the cache). A repository outside
/// the mirror is refused before anything is downloaded.
pub(super) fn apk_load_indexes_recorded(
    fetcher: &Fetcher,
    keys: &TrustedKeys,
    src: &ApkSource,
    reporter: &dyn Reporter,
) -> Result<(LoadedIndexes, Vec<LockedFile>), BuildError> {
    for line in src.repository_lines().map_err(BuildError::from)? {
        apk_index_path(src, &line.url)?;
    }
    let loaded = apk::load_indexes_for_lock(fetcher, keys, src, reporter)?;
    let files = loaded
        .repos
        .iter()
        .map(|r| {
            Ok(LockedFile {
                path: apk_index_path(src, &r.url)?,
                size: r.size,
                sha256: r.sha256,
            })
        })
        .collect::<Result<_, BuildError>>()?;
    Ok((loaded, files))
}

/// `<release>/<repository>/<arch>/APKINDEX.tar.gz`: a repository's index
/// relative to the mirror, as a lock records it.
fn apk_index_path(src: &ApkSource, repo_url: &str) -> Result<LockPath, BuildError> {
    let url = format!("{repo_url}/{}/APKINDEX.tar.gz", src.arch);
    let rel = apk_repo_rel(src, repo_url)
        .map(|r| format!("{r}/{}/APKINDEX.tar.gz", src.arch))
        .ok_or_else(|| BuildError::LockUnsafePath {
            what: url.clone(),
            reason: format!(
                "the repository is not under the mirror {}; a lock records paths relative to it",
                src.mirror
            ),
        })?;
    lock_path(&url, &rel)
}

/// A repository URL relative to the mirror (`v3.20/main`), if it is under it.
fn apk_repo_rel(src: &ApkSource, repo_url: &str) -> Option<String> {
    let mirror = src.mirror.trim_end_matches('/');
    repo_url
        .strip_prefix(mirror)?
        .strip_prefix('/')
        .filter(|r| !r.is_empty())
        .map(str::to_owned)
}

/// `<release>/<repository>/<arch>/<name>-<version>.apk` of a package of `index`.
fn apk_rel_path(index: &LoadedIndexes, src: &ApkSource, pkg: &ApkPackage) -> Option<String> {
    let i = index.packages.iter().position(|p| std::ptr::eq(p, pkg))?;
    let repo = index.repos.get(*index.origin.get(i)?)?;
    Some(format!(
        "{}/{}/{}-{}.apk",
        apk_repo_rel(src, &repo.url)?,
        src.arch,
        pkg.name,
        pkg.version
    ))
}

/// The lock entries of fetched, verified packages: their SHA-256 comes from
/// the cached file (the index has none), which is also kept in the cache
/// under that digest for `rootstrap mirror` and `--locked` builds.
pub(super) fn apk_locked_packages(
    fetcher: &Fetcher,
    index: &LoadedIndexes,
    src: &ApkSource,
    plan: &[&ApkPackage],
) -> Result<Vec<LockedPackage>, BuildError> {
    plan.par_iter()
        .map(|pkg| {
            let read_err = |path: PathBuf, error| {
                BuildError::from(ApkBootstrapError::Read {
                    package: pkg.id(),
                    path,
                    error,
                })
            };
            let key = apk::cache_key(pkg);
            let cached = fetcher.cache().get_stamped(&key, pkg.size).ok_or_else(|| {
                read_err(
                    fetcher.cache().blob_path(&key),
                    std::io::ErrorKind::NotFound.into(),
                )
            })?;
            let bytes = std::fs::read(&cached).map_err(|e| read_err(cached.clone(), e))?;
            let sha256 = Sha256Digest::of(&bytes);
            if fetcher.cache().get_sized(&sha256, pkg.size).is_none() {
                fetcher.cache().insert_bytes(&bytes)?;
            }
            let rel = apk_rel_path(index, src, pkg).unwrap_or_default();
            Ok(LockedPackage {
                name: pkg.name.clone(),
                version: pkg.version.clone(),
                arch: pkg.arch.clone(),
                path: lock_path(&pkg.id(), &rel)?,
                size: pkg.size,
                sha256,
                checksum: pkg.checksum.as_ref().map(|c| c.to_string()),
            })
        })
        .collect()
}

/// Lock entries for planned packages without downloading them: the SHA-256
/// is the lock's when the version, size and `C:` identity are the lock's,
/// else unknown (zero), which the identity or version then explains.
pub(super) fn apk_identities(
    index: &LoadedIndexes,
    src: &ApkSource,
    plan: &[&ApkPackage],
    locked: &[LockedPackage],
) -> Result<Vec<LockedPackage>, BuildError> {
    plan.iter()
        .map(|pkg| {
            let checksum = pkg.checksum.as_ref().map(|c| c.to_string());
            let sha256 = locked
                .iter()
                .find(|l| {
                    l.name == pkg.name
                        && l.arch == pkg.arch
                        && l.version == pkg.version
                        && l.size == pkg.size
                        && l.checksum == checksum
                })
                .map_or(Sha256Digest([0; 32]), |l| l.sha256);
            Ok(LockedPackage {
                name: pkg.name.clone(),
                version: pkg.version.clone(),
                arch: pkg.arch.clone(),
                path: lock_path(
                    &pkg.id(),
                    &apk_rel_path(index, src, pkg).unwrap_or_default(),
                )?,
                size: pkg.size,
                sha256,
                checksum,
            })
        })
        .collect()
}

/// The locked packages looked up in the verified indexes (same name,
/// version, architecture, repository path, size and `C:` identity), in lock
/// order; every one missing or different is named in one error.
pub(super) fn apk_plan_from_lock<'a>(
    index: &'a LoadedIndexes,
    src: &ApkSource,
    file: &Path,
    locked: &[LockedPackage],
) -> Result<Vec<&'a ApkPackage>, BuildError> {
    let mut plan = Vec::with_capacity(locked.len());
    let mut problems = Vec::new();
    for want in locked {
        let candidates: Vec<&ApkPackage> = index
            .packages
            .iter()
            .filter(|p| p.name == want.name && p.version == want.version && p.arch == want.arch)
            .filter(|p| apk_rel_path(index, src, p).as_deref() == Some(want.path.as_str()))
            .collect();
        let what = format!("{} {} ({})", want.name, want.version, want.arch);
        match candidates.first() {
            None => problems.push(format!("{what}: not in the signed index at {}", want.path)),
            Some(p) => {
                let identity = p.checksum.as_ref().map(|c| c.to_string());
                if identity != want.checksum || p.size != want.size {
                    problems.push(format!(
                        "{what}: the index has C:{} ({} bytes), the lock C:{} ({} bytes)",
                        identity.as_deref().unwrap_or("-"),
                        p.size,
                        want.checksum.as_deref().unwrap_or("-"),
                        want.size
                    ));
                } else {
                    plan.push(*p);
                }
            }
        }
    }
    if !problems.is_empty() {
        return Err(BuildError::LockMismatch {
            file: file.to_owned(),
            problems,
        });
    }
    Ok(plan)
}

/// Downloads the locked packages by path, size and SHA-256 (content-addressed
/// in the cache), then verifies each as apk does against its index entry.
pub(super) fn apk_fetch_locked(
    fetcher: &Fetcher,
    mirror: &str,
    locked: &[LockedPackage],
    plan: &[&ApkPackage],
    keys: &TrustedKeys,
    allow_untrusted: bool,
) -> Result<Vec<VerifiedApk>, BuildError> {
    let items: Vec<FetchItem> = locked
        .iter()
        .map(|p| FetchItem {
            url: p.path.url(mirror),
            size: p.size,
            sha256: p.sha256,
            name: p.name.clone(),
        })
        .collect();
    let paths = fetcher.fetch_all(&items)?;
    paths
        .par_iter()
        .zip(plan.par_iter())
        .map(|(path, pkg)| {
            let bytes = std::fs::read(path).map_err(|error| ApkBootstrapError::Read {
                package: pkg.id(),
                path: path.clone(),
                error,
            })?;
            let apk = open_package(&bytes, pkg, keys, allow_untrusted)
                .map_err(ApkBootstrapError::Package)?;
            apk.data_entries().map_err(ApkBootstrapError::Package)?;
            Ok(apk)
        })
        .collect::<Result<Vec<_>, ApkBootstrapError>>()
        .map_err(BuildError::from)
}

// ---- rootstrap mirror ----

/// `rootstrap mirror LOCK -o DIR`: the lock's index files and packages at
/// their paths under DIR, taken from the cache or downloaded from the
/// mirror (`--mirror`, `$ROOTSTRAP_MIRROR`, else the lock's), each checked
/// against its locked size and SHA-256. Written beside DIR and renamed into
/// place, so a failure leaves nothing.
pub fn write_mirror(
    lock_file: &Path,
    out: &Path,
    opts: &SourceOptions,
    reporter: SharedReporter,
) -> Result<MirrorReport, BuildError> {
    let lock = read_lock(lock_file)?;
    if out.exists() && std::fs::read_dir(out).map_or(true, |mut d| d.next().is_some()) {
        return Err(BuildError::MirrorOutput {
            path: out.to_owned(),
            source: std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                "refusing to write into an existing non-empty directory",
            ),
        });
    }
    let (_cache_dir, _cache_lock, fetcher) = super::open_fetcher(opts, &reporter)?;
    let env_mirror = std::env::var(crate::mirror::MIRROR_ENV).ok();
    let mirror = opts
        .mirror
        .clone()
        .or(env_mirror)
        .or_else(|| lock.source.mirror.clone())
        .map(|m| m.trim_end_matches('/').to_owned());

    let wanted: Vec<(&LockPath, u64, Sha256Digest, &str)> = lock
        .index
        .iter()
        .map(|f| (&f.path, f.size, f.sha256, f.path.as_str()))
        .chain(
            lock.packages
                .iter()
                .map(|p| (&p.path, p.size, p.sha256, p.name.as_str())),
        )
        .collect();
    let from_cache = wanted
        .iter()
        .filter(|(_, size, sha, _)| fetcher.cache().get_sized(sha, *size).is_some())
        .count();
    let sources = match &mirror {
        Some(m) => {
            reporter.stage("fetch what the cache lacks");
            let items: Vec<FetchItem> = wanted
                .iter()
                .map(|(path, size, sha, name)| FetchItem {
                    url: path.url(m),
                    size: *size,
                    sha256: *sha,
                    name: (*name).to_owned(),
                })
                .collect();
            fetcher.fetch_all(&items)?
        }
        None => {
            let mut found = Vec::new();
            let mut missing = Vec::new();
            for (path, size, sha, _) in &wanted {
                match fetcher.cache().get_sized(sha, *size) {
                    Some(p) => found.push(p),
                    None => missing.push(path.to_string()),
                }
            }
            if !missing.is_empty() {
                return Err(BuildError::MirrorMissing {
                    file: lock_file.to_owned(),
                    missing,
                });
            }
            found
        }
    };

    reporter.stage("write the mirror");
    let parent = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let tmp = TempPath::new(super::unique_dir(parent, "rootstrap-mirror"));
    let io_err = |path: &Path| {
        let path = path.to_owned();
        move |source| BuildError::MirrorOutput { path, source }
    };
    let mut bytes = 0;
    for ((path, size, _, _), from) in wanted.iter().zip(&sources) {
        let dest = path.under(tmp.path());
        if let Some(dir) = dest.parent() {
            std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        }
        // A copy, not a hard link: linking would change the cache blob's
        // ctime (forcing a re-hash) and tie the two files together.
        std::fs::copy(from, &dest).map_err(io_err(&dest))?;
        bytes += size;
    }
    super::set_mode(tmp.path(), 0o755);
    if out.exists() {
        std::fs::remove_dir(out).map_err(io_err(out))?;
    }
    std::fs::rename(tmp.path(), out).map_err(io_err(out))?;
    tmp.persist();
    Ok(MirrorReport {
        dir: out.to_owned(),
        files: wanted.len(),
        bytes,
        from_cache,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_http_mirrors_are_recorded() {
        assert_eq!(
            recordable_mirror("http://deb.example/debian/").as_deref(),
            Some("http://deb.example/debian")
        );
        assert!(recordable_mirror("https://u:p@deb.example/debian").is_none());
        assert!(recordable_mirror("file:///srv/mirror").is_none());
        assert_eq!(
            recordable_mirror("https://deb.example/a@b").as_deref(),
            Some("https://deb.example/a@b")
        );
    }

    #[test]
    fn image_mirror_prefers_the_lock() {
        let mut lock = Lockfile {
            recipe_sha256: Sha256Digest([0; 32]),
            source_date_epoch: 0,
            source: LockSource {
                distro: "debian".into(),
                suite: "s".into(),
                components: vec!["main".into()],
                arch: "amd64".into(),
                variant: "minbase".into(),
                layout: Layout::Debian,
                mirror: Some("http://m/debian".into()),
                slim: false,
            },
            index: vec![],
            packages: vec![],
        };
        assert_eq!(image_mirror(Some(&lock), "file:///x"), "http://m/debian");
        assert_eq!(image_mirror(None, "file:///x"), "file:///x");
        lock.source.mirror = None;
        assert_eq!(image_mirror(Some(&lock), "file:///x"), "file:///x");
    }

    #[test]
    fn a_lock_for_another_source_is_refused_naming_the_field() {
        let lock_source = LockSource {
            distro: "debian".into(),
            suite: "trixie".into(),
            components: vec!["main".into()],
            arch: "amd64".into(),
            variant: "minbase".into(),
            layout: Layout::Debian,
            mirror: None,
            slim: false,
        };
        let lock = Lockfile {
            recipe_sha256: Sha256Digest([0; 32]),
            source_date_epoch: 0,
            source: lock_source.clone(),
            index: vec![],
            packages: vec![],
        };
        let mut other = lock_source.clone();
        other.arch = "arm64".into();
        let err = check_source(&lock, Path::new("x.lock"), &other).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("x.lock") && msg.contains("arch") && msg.contains("arm64"),
            "{msg}"
        );
        let mut mirror_only = lock_source;
        mirror_only.mirror = Some("http://elsewhere".into());
        assert!(check_source(&lock, Path::new("x.lock"), &mirror_only).is_ok());
    }
}
