//! Alpine lockfiles: what a lock records of an apk source and its
//! packages, a plan taken from a lock, and locked packages fetched by
//! SHA-256 (the index has none: it is learnt from the verified download).

use std::path::{Path, PathBuf};

use rayon::prelude::*;

use super::bootstrap::{self as apk, ApkBootstrapError, ApkSource, LoadedIndexes};
use super::{open_package, ApkPackage, TrustedKeys, VerifiedApk};
use crate::distro::backend::{lock_path, BackendError};
use crate::fetch::Fetcher;
use crate::lock::{self, Layout, LockPath, LockSource, LockedFile, LockedPackage};
use crate::report::Reporter;
use crate::verify::Sha256Digest;

pub(crate) fn lock_source(src: &ApkSource) -> LockSource {
    LockSource {
        distro: "alpine".into(),
        suite: src.release.clone(),
        components: src.repositories.clone(),
        arch: src.arch.clone(),
        variant: "minirootfs".into(),
        layout: Layout::Alpine,
        mirror: lock::recordable_mirror(&src.mirror),
        slim: false,
    }
}

/// `apk::load_indexes_for_lock`, with each APKINDEX.tar.gz as a lock index
/// entry (`rootstrap mirror` copies it from the cache). A repository outside
/// the mirror is refused before anything is downloaded.
pub(crate) fn load_indexes_recorded(
    fetcher: &Fetcher,
    keys: &TrustedKeys,
    src: &ApkSource,
    reporter: &dyn Reporter,
) -> Result<(LoadedIndexes, Vec<LockedFile>), BackendError> {
    for line in src.repository_lines().map_err(BackendError::from)? {
        index_path(src, &line.url)?;
    }
    let loaded = apk::load_indexes_for_lock(fetcher, keys, src, reporter)?;
    let files = loaded
        .repos
        .iter()
        .map(|r| {
            Ok(LockedFile {
                path: index_path(src, &r.url)?,
                size: r.size,
                sha256: r.sha256,
            })
        })
        .collect::<Result<_, BackendError>>()?;
    Ok((loaded, files))
}

/// `<release>/<repository>/<arch>/APKINDEX.tar.gz`: a repository's index
/// relative to the mirror, as a lock records it.
fn index_path(src: &ApkSource, repo_url: &str) -> Result<LockPath, BackendError> {
    let url = format!("{repo_url}/{}/APKINDEX.tar.gz", src.arch);
    let rel = repo_rel(src, repo_url)
        .map(|r| format!("{r}/{}/APKINDEX.tar.gz", src.arch))
        .ok_or_else(|| BackendError::LockUnsafePath {
            what: url.clone(),
            reason: format!(
                "the repository is not under the mirror {}; a lock records paths relative to it",
                src.mirror
            ),
        })?;
    lock_path(&url, &rel)
}

/// A repository URL relative to the mirror (`v3.20/main`), if it is under it.
fn repo_rel(src: &ApkSource, repo_url: &str) -> Option<String> {
    let mirror = src.mirror.trim_end_matches('/');
    repo_url
        .strip_prefix(mirror)?
        .strip_prefix('/')
        .filter(|r| !r.is_empty())
        .map(str::to_owned)
}

/// `<release>/<repository>/<arch>/<name>-<version>.apk` of a package of `index`.
fn rel_path(index: &LoadedIndexes, src: &ApkSource, pkg: &ApkPackage) -> Option<String> {
    let i = index.packages.iter().position(|p| std::ptr::eq(p, pkg))?;
    let repo = index.repos.get(*index.origin.get(i)?)?;
    Some(format!(
        "{}/{}/{}-{}.apk",
        repo_rel(src, &repo.url)?,
        src.arch,
        pkg.name,
        pkg.version
    ))
}

/// The lock entries of fetched, verified packages: their SHA-256 comes from
/// the cached file (the index has none), which is also kept in the cache
/// under that digest for `rootstrap mirror` and `--locked` builds.
pub(crate) fn locked_packages(
    fetcher: &Fetcher,
    index: &LoadedIndexes,
    src: &ApkSource,
    plan: &[&ApkPackage],
) -> Result<Vec<LockedPackage>, BackendError> {
    plan.par_iter()
        .map(|pkg| {
            let read_err = |path: PathBuf, error| {
                BackendError::from(ApkBootstrapError::Read {
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
            let rel = rel_path(index, src, pkg).unwrap_or_default();
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
pub(crate) fn identities(
    index: &LoadedIndexes,
    src: &ApkSource,
    plan: &[&ApkPackage],
    locked: &[LockedPackage],
) -> Result<Vec<LockedPackage>, BackendError> {
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
                path: lock_path(&pkg.id(), &rel_path(index, src, pkg).unwrap_or_default())?,
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
pub(crate) fn plan_from_lock<'a>(
    index: &'a LoadedIndexes,
    src: &ApkSource,
    file: &Path,
    locked: &[LockedPackage],
) -> Result<Vec<&'a ApkPackage>, BackendError> {
    let mut plan = Vec::with_capacity(locked.len());
    let mut problems = Vec::new();
    for want in locked {
        let candidates: Vec<&ApkPackage> = index
            .packages
            .iter()
            .filter(|p| p.name == want.name && p.version == want.version && p.arch == want.arch)
            .filter(|p| rel_path(index, src, p).as_deref() == Some(want.path.as_str()))
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
        return Err(BackendError::LockMismatch {
            file: file.to_owned(),
            problems,
        });
    }
    Ok(plan)
}

/// Downloads the locked packages by path, size and SHA-256 (content-addressed
/// in the cache), then verifies each as apk does against its index entry.
pub(crate) fn fetch_locked(
    fetcher: &Fetcher,
    mirror: &str,
    locked: &[LockedPackage],
    plan: &[&ApkPackage],
    keys: &TrustedKeys,
    allow_untrusted: bool,
) -> Result<Vec<VerifiedApk>, BackendError> {
    let paths = fetcher.fetch_all(&lock::fetch_items(mirror, locked))?;
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
        .map_err(BackendError::from)
}
