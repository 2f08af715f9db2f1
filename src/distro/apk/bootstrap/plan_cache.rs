//! The Alpine plan cache: a build whose APKINDEX files are byte-identical
//! to an earlier build's (same trusted keys, same request, same
//! architecture) reads that build's few planned stanzas instead of
//! decompressing, verifying and parsing every index again.

use std::path::{Path, PathBuf};

use super::{plan, release_package, ApkSource, LoadedIndexes, RepoIndex};
use crate::distro::apk::index::ApkPackage;
use crate::distro::apk::installed::{self, InstalledPackage};
use crate::distro::apk::sign::{Trust, TrustedKeys};
use crate::verify::Sha256Digest;

/// A resolved plan keyed by the index digests, the trusted key set, the
/// request and the architecture (the Alpine counterpart of the Debian plan
/// cache). It is used only if the plan resolves again, from the cached
/// stanzas alone, to every cached package.
pub(in crate::distro::apk) struct PlanCache {
    path: PathBuf,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct CachedRepo {
    url: String,
    tag: Option<String>,
    description: Option<String>,
    signed_by: Option<String>,
    untrusted: Option<String>,
    packages: usize,
    sha256: String,
    /// Absent from plans cached before it was recorded.
    #[serde(default)]
    size: u64,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct CachedPlan {
    repos: Vec<CachedRepo>,
    /// (index into `repos`, stanza) per planned package.
    packages: Vec<(usize, String)>,
}

impl PlanCache {
    pub(super) fn new(
        dir: &Path,
        src: &ApkSource,
        keys: &TrustedKeys,
        indexes: &[(String, Sha256Digest)],
    ) -> PlanCache {
        let mut parts = vec![
            "apk-plan-v1".to_owned(),
            src.arch.clone(),
            src.allow_untrusted.to_string(),
            keys.digest(),
        ];
        parts.extend(src.world());
        parts.push(String::new());
        parts.extend(
            indexes
                .iter()
                .map(|(line, d)| format!("{line} {}", d.to_hex())),
        );
        let key = crate::image::layer_cache::key(&parts);
        PlanCache {
            path: dir.join("plans").join(format!("{key}.apk.json")),
        }
    }

    pub(super) fn load(&self, src: &ApkSource) -> Option<LoadedIndexes> {
        let bytes = std::fs::read(&self.path).ok()?;
        let cached: CachedPlan = serde_json::from_slice(&bytes).ok()?;
        let mut loaded = LoadedIndexes::default();
        for r in &cached.repos {
            let trust = match (&r.signed_by, &r.untrusted) {
                (Some(key), None) => Trust::Verified { key: key.clone() },
                (None, Some(reason)) => Trust::AllowedUntrusted {
                    reason: reason.clone(),
                },
                _ => return None,
            };
            loaded.repos.push(RepoIndex {
                url: r.url.clone(),
                sha256: Sha256Digest(hex::decode(&r.sha256).ok()?.try_into().ok()?),
                size: r.size,
                tag: r.tag.clone(),
                description: r.description.clone(),
                trust,
                packages: r.packages,
            });
        }
        for (repo, stanza) in &cached.packages {
            let rec = installed::parse_installed("plan cache", stanza).ok()?;
            let [rec] = <[InstalledPackage; 1]>::try_from(rec).ok()?;
            if *repo >= loaded.repos.len() || rec.pkg.repo_tag != loaded.repos[*repo].tag {
                return None;
            }
            loaded.packages.push(rec.pkg);
            loaded.origin.push(*repo);
        }
        // The stanzas are the plan plus, when the plan lacks it, the
        // release package (unpacked unregistered).
        let closed = plan(&loaded, src).is_ok_and(|p| {
            let release = usize::from(release_package(&loaded, src, &p).is_some());
            p.len() + release == loaded.packages.len()
        });
        closed.then_some(loaded)
    }

    pub(super) fn store(&self, loaded: &LoadedIndexes, src: &ApkSource, planned: &[&ApkPackage]) {
        let mut planned = planned.to_vec();
        planned.extend(release_package(loaded, src, &planned));
        let repos = loaded
            .repos
            .iter()
            .map(|r| CachedRepo {
                url: r.url.clone(),
                tag: r.tag.clone(),
                description: r.description.clone(),
                signed_by: r.trust.signer().map(str::to_owned),
                untrusted: match &r.trust {
                    Trust::AllowedUntrusted { reason } => Some(reason.clone()),
                    Trust::Verified { .. } => None,
                },
                packages: r.packages,
                sha256: hex::encode(r.sha256.0),
                size: r.size,
            })
            .collect();
        let mut packages = Vec::new();
        for p in &planned {
            let (Some(i), Ok(text)) = (
                loaded.packages.iter().position(|q| std::ptr::eq(q, *p)),
                String::from_utf8(installed::write_installed(&[InstalledPackage {
                    pkg: (*p).clone(),
                    ..InstalledPackage::default()
                }])),
            ) else {
                return;
            };
            packages.push((loaded.origin[i], text));
        }
        let Ok(json) = serde_json::to_vec(&CachedPlan { repos, packages }) else {
            return;
        };
        let Some(dir) = self.path.parent() else {
            return;
        };
        // A plan cache is an optimisation: failing to store one is not an error.
        let _ = std::fs::create_dir_all(dir)
            .and_then(|()| crate::cleanup::write_atomically(&self.path, &json));
    }
}
