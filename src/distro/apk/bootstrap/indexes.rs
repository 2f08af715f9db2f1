//! Stage 2: each repository's signed APKINDEX, fetched, verified and
//! parsed (or a cached plan reused).

use super::*;

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
    pub fn add(&mut self, url: String, index: crate::distro::apk::ApkIndex) {
        self.add_tagged(url, None, index)
    }

    /// Adds the index of a repository tagged `tag`: its packages carry it.
    pub fn add_tagged(
        &mut self,
        url: String,
        tag: Option<String>,
        mut index: crate::distro::apk::ApkIndex,
    ) {
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
    pub(super) fn repo_of(&self, pkg: &ApkPackage) -> Option<&str> {
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
    // The copies kept for --offline are replaced only once every index has
    // verified: an update that fails at one repository leaves all of them
    // as they were, never a mix of old and new (HOSTILE 32).
    let mut to_keep = Vec::with_capacity(fetched.len());
    for (line, url, bytes, digest) in fetched {
        let index = parse_index(&bytes, keys, src.allow_untrusted).map_err(|error| {
            ApkBootstrapError::Index {
                url: url.clone(),
                error,
            }
        })?;
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
        to_keep.push((url, bytes));
    }
    for (url, bytes) in &to_keep {
        fetcher.keep_index(url, bytes);
    }
    if let Some(cache) = &plans {
        if let Ok(planned) = plan(&loaded, src) {
            cache.store(&loaded, src, &planned);
        }
    }
    Ok(loaded)
}
