//! Stage 4: every planned package downloaded (or taken from the cache) and
//! fully verified, handed on in plan order as each is ready.

use super::*;

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
/// package. The first package in plan order that fails is the error; it
/// is evicted from the cache and the error names it.
pub fn fetch_packages(
    fetcher: &Fetcher,
    index: &LoadedIndexes,
    plan: &[&ApkPackage],
    keys: &TrustedKeys,
    src: &ApkSource,
) -> Result<Vec<VerifiedApk>, ApkBootstrapError> {
    with_packages_in_order(fetcher, index, plan, keys, src, |packages| {
        packages.collect()
    })
}

/// One verified package, or why it is not.
pub type FetchedApk = Result<VerifiedApk, ApkBootstrapError>;

/// Downloads (or takes from the cache) and verifies `plan`'s packages, one
/// per core at a time, started in plan order, and gives them to
/// `consume` in plan order, each as soon as it and those before it are
/// ready: installing the first packages overlaps fetching the rest, as the
/// Debian back end's extraction overlaps its downloads. A package is only
/// handed on once its signature, identity, size, data hash and per-file
/// checksums have passed, so nothing unverified reaches the consumer. A
/// package that fails is evicted from the cache and its error comes in its
/// place; once that is known, no further package is started. When
/// `consume` returns, packages not yet started are skipped and those under
/// way are finished.
pub fn with_packages_in_order<T>(
    fetcher: &Fetcher,
    index: &LoadedIndexes,
    plan: &[&ApkPackage],
    keys: &TrustedKeys,
    src: &ApkSource,
    consume: impl FnOnce(&mut dyn Iterator<Item = FetchedApk>) -> T,
) -> T {
    // As many at once as there are cores: verifying is CPU work, and more
    // threads would only slow the install that waits for the packages.
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    crate::fetch::in_order(
        plan,
        workers,
        |pkg| fetch_one(fetcher, index, pkg, keys, src),
        consume,
    )
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
