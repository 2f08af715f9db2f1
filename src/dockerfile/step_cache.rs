//! The Dockerfile step cache: a step whose inputs are unchanged reuses the
//! layer (or the "no change" outcome) an earlier build recorded for it.
//!
//! A step's key hashes the image config before the step (which holds the
//! parent layer chain as diff_ids, the environment, user, workdir and
//! platform), the expanded instruction, the build args in scope and a digest
//! of the files it copies; see [`step_key`]. Same storage approach as
//! `layer_cache`: a JSON description per key written after its blob, both
//! through a temporary name and a rename, so a reader never sees half an
//! entry. Blobs are content-addressed and shared by entries; a blob is
//! re-hashed when it is used (`ImageBuilder::add_cached_layer`), so a
//! corrupted entry is a miss, never a wrong image.

use crate::cleanup::{replace_atomically, write_atomically};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::dockerfile::DockerIgnore;
use crate::rootfs::safe::{FileKind, RelPath, Root};

/// Entries kept; the least recently used are removed beyond this.
const KEEP: usize = 512;

/// The recorded outcome of a step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepEntry {
    /// `None`: the step changed no file (an empty history entry).
    pub layer: Option<CachedLayer>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CachedLayer {
    /// `sha256:<hex>` of the compressed blob.
    pub digest: String,
    /// `sha256:<hex>` of the uncompressed tar.
    pub diff_id: String,
    pub uncompressed_size: u64,
}

/// The step cache directory (`<cache dir>/dockerfile-steps`).
#[derive(Debug, Clone)]
pub struct StepCache {
    dir: PathBuf,
}

/// Length-prefixed hash of `parts`, so no two part lists collide by
/// concatenation.
pub fn step_key(parts: &[&[u8]]) -> String {
    let mut h = Sha256::new();
    h.update(b"rootstrap-dockerfile-step-v1\0");
    h.update(env!("CARGO_PKG_VERSION").as_bytes());
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p);
    }
    hex::encode(h.finalize())
}

impl StepCache {
    pub fn new(cache_root: &Path) -> StepCache {
        StepCache {
            dir: cache_root.join("dockerfile-steps"),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn meta(&self, key: &str) -> PathBuf {
        self.dir.join(format!("{key}.json"))
    }

    /// Path of a blob by its `sha256:<hex>` digest.
    pub fn blob(&self, digest: &str) -> PathBuf {
        let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
        self.dir.join("blobs").join(hex)
    }

    /// The entry for `key`, if present, readable and (for a layer) with its
    /// blob. A hit refreshes the entry's age.
    pub fn get(&self, key: &str) -> Option<StepEntry> {
        let meta = self.meta(key);
        let entry: StepEntry = serde_json::from_slice(&std::fs::read(&meta).ok()?).ok()?;
        if let Some(layer) = &entry.layer {
            if !valid_digest(&layer.digest) || !self.blob(&layer.digest).is_file() {
                return None;
            }
        }
        if let Ok(f) = std::fs::File::options().append(true).open(&meta) {
            let _ = f.set_modified(SystemTime::now());
        }
        Some(entry)
    }

    /// Records `entry` for `key`; a layer's blob is copied from `blob`
    /// first.
    pub fn put(&self, key: &str, entry: &StepEntry, blob: Option<&Path>) -> io::Result<()> {
        std::fs::create_dir_all(self.dir.join("blobs"))?;
        if let (Some(layer), Some(src)) = (&entry.layer, blob) {
            if !valid_digest(&layer.digest) {
                return Err(io::Error::other(format!(
                    "invalid digest {:?}",
                    layer.digest
                )));
            }
            // Always replaced, never trusted because it exists: a blob
            // found corrupt by another entry's use may still sit there.
            replace_atomically(&self.blob(&layer.digest), |tmp| {
                std::fs::hard_link(src, tmp).or_else(|_| std::fs::copy(src, tmp).map(|_| ()))
            })?;
        }
        let bytes = serde_json::to_vec(entry).map_err(io::Error::other)?;
        write_atomically(&self.meta(key), &bytes)?;
        self.prune();
        Ok(())
    }

    /// Drops the least recently used entries beyond [`KEEP`], then blobs no
    /// entry names.
    fn prune(&self) {
        let Ok(dir) = std::fs::read_dir(&self.dir) else {
            return;
        };
        let mut metas: Vec<(SystemTime, PathBuf)> = dir
            .filter_map(|e| e.ok())
            .filter(|e| {
                let name = e.file_name();
                let name = name.to_string_lossy();
                name.ends_with(".json") && !name.starts_with(".tmp-")
            })
            .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
            .collect();
        if metas.len() <= KEEP {
            return;
        }
        metas.sort();
        let excess = metas.len() - KEEP;
        for (_, path) in metas.drain(..excess) {
            let _ = std::fs::remove_file(path);
        }
        let used: std::collections::HashSet<String> = metas
            .iter()
            .filter_map(|(_, p)| std::fs::read(p).ok())
            .filter_map(|b| serde_json::from_slice::<StepEntry>(&b).ok())
            .filter_map(|e| e.layer)
            .map(|l| l.digest.trim_start_matches("sha256:").to_string())
            .collect();
        let Ok(blobs) = std::fs::read_dir(self.dir.join("blobs")) else {
            return;
        };
        for blob in blobs.filter_map(|e| e.ok()) {
            let name = blob.file_name().to_string_lossy().into_owned();
            if !name.starts_with(".tmp-") && !used.contains(&name) {
                let _ = std::fs::remove_file(blob.path());
            }
        }
    }
}

fn valid_digest(digest: &str) -> bool {
    digest
        .strip_prefix("sha256:")
        .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// A digest of what COPY/ADD would read from `root` at `paths`: names,
/// types, permission bits, link targets and file contents, recursively,
/// skipping what `.dockerignore` excludes. Owners and mtimes are left out,
/// as BuildKit's content checksums do (COPY sets the owner itself).
pub fn digest_sources(
    root: &Root,
    paths: &[RelPath],
    ignore: Option<&DockerIgnore>,
) -> io::Result<String> {
    let mut h = Sha256::new();
    let mut pending: Vec<RelPath> = paths.iter().rev().cloned().collect();
    while let Some(path) = pending.pop() {
        let fail = |e: crate::rootfs::safe::FsError| io::Error::new(e.kind(), e.to_string());
        let Some(meta) = root.lstat(&path).map_err(fail)? else {
            continue;
        };
        let name = path.as_bytes();
        h.update((name.len() as u64).to_le_bytes());
        h.update(name);
        h.update([meta.kind as u8]);
        h.update(meta.mode.to_le_bytes());
        match meta.kind {
            FileKind::File => {
                h.update(meta.size.to_le_bytes());
                let mut file = root.open_read(&path).map_err(fail)?;
                let mut buf = vec![0u8; 64 * 1024];
                loop {
                    let n = file.read(&mut buf)?;
                    if n == 0 {
                        break;
                    }
                    h.update(&buf[..n]);
                }
            }
            FileKind::Symlink => {
                let target = root.read_link(&path).map_err(fail)?;
                h.update((target.len() as u64).to_le_bytes());
                h.update(&target);
            }
            FileKind::Dir => {
                let mut names = root.read_dir(&path).map_err(fail)?;
                names.sort();
                for child in names.into_iter().rev() {
                    let child = path
                        .join(&child)
                        .map_err(|e| io::Error::other(e.to_string()))?;
                    let shown = String::from_utf8_lossy(child.as_bytes()).into_owned();
                    if ignore.is_some_and(|i| i.is_excluded(&shown)) {
                        continue;
                    }
                    pending.push(child);
                }
            }
            FileKind::CharDev | FileKind::BlockDev => h.update(meta.rdev.to_le_bytes()),
            FileKind::Fifo | FileKind::Socket => {}
        }
    }
    Ok(hex::encode(h.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(digest_byte: char) -> CachedLayer {
        CachedLayer {
            digest: format!("sha256:{}", digest_byte.to_string().repeat(64)),
            diff_id: format!("sha256:{}", "1".repeat(64)),
            uncompressed_size: 5,
        }
    }

    #[test]
    fn keys_depend_on_every_part_and_its_boundaries() {
        assert_eq!(step_key(&[b"a", b"b"]), step_key(&[b"a", b"b"]));
        assert_ne!(step_key(&[b"a", b"b"]), step_key(&[b"ab", b""]));
        assert_ne!(step_key(&[b"a", b"b"]), step_key(&[b"b", b"a"]));
    }

    #[test]
    fn put_get_and_missing_blob() {
        let dir = tempfile::tempdir().unwrap();
        let cache = StepCache::new(dir.path());
        assert!(cache.get("k").is_none());
        let empty = StepEntry { layer: None };
        cache.put("k", &empty, None).unwrap();
        assert_eq!(cache.get("k"), Some(empty));

        let blob = dir.path().join("blob");
        std::fs::write(&blob, b"layer").unwrap();
        let entry = StepEntry {
            layer: Some(layer('a')),
        };
        cache.put("l", &entry, Some(&blob)).unwrap();
        assert_eq!(cache.get("l"), Some(entry.clone()));
        assert_eq!(
            std::fs::read(cache.blob(&layer('a').digest)).unwrap(),
            b"layer"
        );
        std::fs::remove_file(cache.blob(&layer('a').digest)).unwrap();
        assert!(
            cache.get("l").is_none(),
            "an entry without its blob is a miss"
        );

        let bad = StepEntry {
            layer: Some(CachedLayer {
                digest: "sha256:../../x".into(),
                ..layer('a')
            }),
        };
        assert!(cache.put("m", &bad, Some(&blob)).is_err());
        std::fs::write(cache.meta("m"), serde_json::to_vec(&bad).unwrap()).unwrap();
        assert!(cache.get("m").is_none());
        std::fs::write(cache.meta("n"), b"{not json").unwrap();
        assert!(cache.get("n").is_none());
    }

    #[test]
    fn prune_keeps_recent_entries_and_their_blobs() {
        let dir = tempfile::tempdir().unwrap();
        let cache = StepCache::new(dir.path());
        let blob = dir.path().join("blob");
        std::fs::write(&blob, b"old").unwrap();
        cache
            .put(
                "old",
                &StepEntry {
                    layer: Some(layer('b')),
                },
                Some(&blob),
            )
            .unwrap();
        let past = SystemTime::now() - std::time::Duration::from_secs(3600);
        std::fs::File::options()
            .append(true)
            .open(cache.meta("old"))
            .unwrap()
            .set_modified(past)
            .unwrap();
        for i in 0..KEEP {
            cache
                .put(&format!("k{i}"), &StepEntry { layer: None }, None)
                .unwrap();
        }
        assert!(cache.get("old").is_none());
        assert!(!cache.blob(&layer('b').digest).exists());
        assert!(cache.get("k0").is_some());
    }

    #[test]
    fn source_digest_follows_content_not_mtime() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("d/sub")).unwrap();
        std::fs::write(dir.path().join("d/sub/f"), b"one").unwrap();
        std::fs::write(dir.path().join("d/skip.log"), b"x").unwrap();
        let root = Root::open(dir.path()).unwrap();
        let d = RelPath::from_archive(b"d").unwrap();
        let ignore = crate::dockerfile::parse_dockerignore("**/*.log").unwrap();
        let first = digest_sources(&root, std::slice::from_ref(&d), Some(&ignore)).unwrap();
        let touched = std::fs::File::options()
            .append(true)
            .open(dir.path().join("d/sub/f"))
            .unwrap();
        touched.set_modified(SystemTime::UNIX_EPOCH).unwrap();
        assert_eq!(
            digest_sources(&root, std::slice::from_ref(&d), Some(&ignore)).unwrap(),
            first
        );
        std::fs::write(dir.path().join("d/skip.log"), b"changed").unwrap();
        assert_eq!(
            digest_sources(&root, std::slice::from_ref(&d), Some(&ignore)).unwrap(),
            first,
            "ignored files do not count"
        );
        std::fs::write(dir.path().join("d/sub/f"), b"two").unwrap();
        assert_ne!(
            digest_sources(&root, std::slice::from_ref(&d), Some(&ignore)).unwrap(),
            first
        );
    }
}
