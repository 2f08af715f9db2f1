//! Stage 4: every planned package downloaded (or taken from the cache) and
//! fully verified before anything is written.

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
