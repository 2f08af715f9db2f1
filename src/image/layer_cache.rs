//! Reuse of base layers across builds.
//!
//! A base layer is a pure function of its inputs: the exact package files
//! (by SHA-256), the recipe settings that shape the rootfs, the timestamp it
//! is clamped to and the rootstrap version. When all of them are unchanged a
//! rebuild reuses the compressed layer instead of unpacking, configuring and
//! compressing again — what makes a warm rebuild take a second. The blob is
//! re-hashed when it is used (`ImageBuilder::add_cached_layer`), so a
//! corrupted entry is detected and rebuilt, never shipped.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Entries kept; older ones are removed when a new one is stored.
const KEEP: usize = 8;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerEntry {
    /// `sha256:<hex>` of the compressed blob.
    pub digest: String,
    /// `sha256:<hex>` of the uncompressed tar.
    pub diff_id: String,
    pub uncompressed_size: u64,
}

pub struct LayerCache {
    dir: PathBuf,
}

/// A cache key from the inputs, in order. Parts are length-prefixed so no
/// two different input lists can collide by concatenation.
pub fn key(parts: &[String]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p.as_bytes());
    }
    hex::encode(h.finalize())
}

impl LayerCache {
    /// The layer cache inside a download cache directory (which the caller
    /// holds locked for the build).
    pub fn new(cache_root: &Path) -> LayerCache {
        LayerCache {
            dir: cache_root.join("layers"),
        }
    }

    fn blob(&self, key: &str) -> PathBuf {
        self.dir.join(format!("{key}.blob"))
    }

    fn meta(&self, key: &str) -> PathBuf {
        self.dir.join(format!("{key}.json"))
    }

    /// The blob and its description, when both are present and readable.
    pub fn get(&self, key: &str) -> Option<(PathBuf, LayerEntry)> {
        let text = std::fs::read(self.meta(key)).ok()?;
        let entry: LayerEntry = serde_json::from_slice(&text).ok()?;
        let blob = self.blob(key);
        blob.is_file().then_some((blob, entry))
    }

    pub fn evict(&self, key: &str) {
        let _ = std::fs::remove_file(self.meta(key));
        let _ = std::fs::remove_file(self.blob(key));
    }

    /// Stores a copy of `blob` (temp file + rename, description last, so a
    /// reader never sees a half-written entry), then prunes old entries.
    pub fn put(&self, key: &str, blob: &Path, entry: &LayerEntry) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        // Blobs are never written after they are made, so sharing the
        // inode is safe and saves copying a whole layer.
        crate::cleanup::replace_atomically(&self.blob(key), |tmp| {
            std::fs::hard_link(blob, tmp).or_else(|_| std::fs::copy(blob, tmp).map(|_| ()))
        })?;
        let meta = serde_json::to_vec(entry).map_err(std::io::Error::other)?;
        crate::cleanup::write_atomically(&self.meta(key), &meta)?;
        self.prune();
        Ok(())
    }

    fn prune(&self) {
        let Ok(dir) = std::fs::read_dir(&self.dir) else {
            return;
        };
        let mut metas: Vec<(std::time::SystemTime, String)> = dir
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                let key = name.strip_suffix(".json")?.to_owned();
                let mtime = e.metadata().ok()?.modified().ok()?;
                Some((mtime, key))
            })
            .collect();
        metas.sort();
        let excess = metas.len().saturating_sub(KEEP);
        for (_, key) in metas.into_iter().take(excess) {
            self.evict(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_depend_on_every_part_and_its_boundaries() {
        let k = |parts: &[&str]| key(&parts.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(k(&["a", "b"]), k(&["a", "b"]));
        assert_ne!(k(&["a", "b"]), k(&["ab", ""]));
        assert_ne!(k(&["a", "b"]), k(&["b", "a"]));
    }

    #[test]
    fn put_get_evict_and_prune() {
        let dir = tempfile::tempdir().unwrap();
        let cache = LayerCache::new(dir.path());
        let blob = dir.path().join("blob");
        std::fs::write(&blob, b"layer").unwrap();
        let entry = LayerEntry {
            digest: "sha256:00".into(),
            diff_id: "sha256:11".into(),
            uncompressed_size: 5,
        };
        assert!(cache.get("k").is_none());
        cache.put("k", &blob, &entry).unwrap();
        let (path, got) = cache.get("k").unwrap();
        assert_eq!(got, entry);
        assert_eq!(std::fs::read(path).unwrap(), b"layer");
        cache.evict("k");
        assert!(cache.get("k").is_none());
        for i in 0..KEEP + 3 {
            cache.put(&format!("k{i}"), &blob, &entry).unwrap();
        }
        let kept = std::fs::read_dir(dir.path().join("layers"))
            .unwrap()
            .count();
        assert_eq!(kept, 2 * KEEP);
    }
}
