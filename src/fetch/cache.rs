//! Content-addressed download cache: `dir/blobs/sha256/<hex>`.
//!
//! Integrity on read: a blob is trusted without re-hashing only when a
//! "verified" stamp written right after hashing it still matches the file's
//! (device, inode, size, mtime, ctime). Any truncation, rewrite, zeroing,
//! replacement or rename-over changes at least the size, inode or ctime
//! (ctime cannot be set from user space), so the stamp no longer matches and
//! the blob is re-hashed, then evicted if wrong. This keeps a warm build from
//! re-reading ~100 MB of packages while still catching every corruption
//! HOSTILE 36 lists. A blob that is not a regular file (e.g. a symlink,
//! possibly broken) is evicted outright.
//!
//! Writes go to a temp file in the blob directory and are renamed into
//! place, so readers never see a torn blob. The fsync that makes a blob
//! durable runs on a thread of its own, off the build's critical path (a
//! cold Alpine build spent ~20 % of its time waiting on 16 of them), and
//! the blob's stamp is written only after it: until then, or if the process
//! dies first, the blob has no stamp and is re-hashed (or, for a blob under
//! a key that is not its hash, downloaded again) before it is trusted, so a
//! crash can never leave a stamped but unsynced blob. The last handle on a
//! [`Cache`] waits for these threads, before the build's [`CacheLock`] is
//! released. `CacheLock` is shared: builds on one cache run at once, and only
//! a build alone sweeps temp files.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use sha2::{Digest, Sha256};

use crate::report::Reporter;
use crate::verify::{HashingReader, Sha256Digest};

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("cache {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("cannot lock cache {path}: {source}")]
    Lock { path: PathBuf, source: io::Error },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> CacheError + '_ {
    move |source| CacheError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A content-addressed blob store.
#[derive(Debug, Clone)]
pub struct Cache {
    root: PathBuf,
    blobs: PathBuf,
    stamps: PathBuf,
    indexes: PathBuf,
    syncs: Arc<PendingSyncs>,
}

/// The fsync-then-stamp threads of committed blobs; dropping the last
/// handle waits for them.
#[derive(Default)]
struct PendingSyncs(Mutex<Vec<JoinHandle<()>>>);

impl PendingSyncs {
    fn push(&self, handle: JoinHandle<()>) {
        match self.0.lock() {
            Ok(mut handles) => handles.push(handle),
            // A poisoned list (a panic elsewhere): wait now instead.
            Err(_) => drop(handle.join()),
        }
    }

    fn any(&self) -> bool {
        self.0.lock().is_ok_and(|handles| !handles.is_empty())
    }

    fn wait(&self) {
        let handles = match self.0.lock() {
            Ok(mut handles) => std::mem::take(&mut *handles),
            Err(_) => return,
        };
        for handle in handles {
            // A failed sync only leaves the blob unstamped.
            let _ = handle.join();
        }
    }
}

impl Drop for PendingSyncs {
    fn drop(&mut self) {
        self.wait();
    }
}

impl std::fmt::Debug for PendingSyncs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PendingSyncs")
    }
}

/// A build's hold on a cache directory (shared with other builds);
/// released when dropped.
#[derive(Debug)]
pub struct CacheLock {
    _file: File,
}

impl Cache {
    /// Opens (creating if needed) a cache rooted at `dir`.
    pub fn open(dir: impl AsRef<Path>) -> Result<Cache, CacheError> {
        let root = dir.as_ref().to_path_buf();
        let blobs = root.join("blobs").join("sha256");
        let stamps = root.join("stamps").join("sha256");
        fs::create_dir_all(&blobs).map_err(io_err(&blobs))?;
        fs::create_dir_all(&stamps).map_err(io_err(&stamps))?;
        let indexes = root.join("indexes").join("sha256");
        fs::create_dir_all(&indexes).map_err(io_err(&indexes))?;
        Ok(Cache {
            root,
            blobs,
            stamps,
            indexes,
            syncs: Arc::default(),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Takes the cache lock (`dir/lock`) for a build. Builds share it:
    /// every entry (package, index, stamp, plan, layer, step, remembered
    /// Release) is written beside its name and renamed into place, content-
    /// addressed or keyed by what made it, so two builds writing one entry
    /// write the same bytes and a reader never sees half of one. A build
    /// alone (it can take the lock exclusively) first removes the temporary
    /// files builds that died mid-write left, then shares it; one that
    /// finds others at work leaves them, since they may be theirs.
    pub fn lock(&self, reporter: &dyn Reporter) -> Result<CacheLock, CacheError> {
        let path = self.root.join("lock");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io_err(&path))?;
        let lock_err = |e: rustix::io::Errno| CacheError::Lock {
            path: path.clone(),
            source: e.into(),
        };
        use rustix::fs::FlockOperation;
        match rustix::fs::flock(&file, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => {
                // Nobody else is writing: any temp file is debris.
                self.remove_stale_temps();
            }
            Err(rustix::io::Errno::WOULDBLOCK) => {
                reporter.info(&format!(
                    "sharing the cache {} with another rootstrap",
                    self.root.display()
                ));
            }
            Err(e) => return Err(lock_err(e)),
        }
        // From exclusive (or nothing) to shared; waits only while a build
        // that started alone sweeps its debris.
        rustix::fs::flock(&file, FlockOperation::LockShared).map_err(lock_err)?;
        Ok(CacheLock { _file: file })
    }

    fn remove_stale_temps(&self) {
        for dir in [&self.blobs, &self.stamps, &self.indexes] {
            let Ok(entries) = fs::read_dir(dir) else {
                continue;
            };
            for entry in entries.flatten() {
                if entry.file_name().to_string_lossy().starts_with(".tmp-") {
                    let _ = fs::remove_file(entry.path());
                }
            }
        }
    }

    /// Waits until every committed blob is synced and stamped.
    pub fn wait_for_syncs(&self) {
        self.syncs.wait();
    }

    /// A handle for a sync thread: sharing `syncs` would make the thread's
    /// own handle the one whose drop waits for it.
    fn clone_without_syncs(&self) -> Cache {
        Cache {
            syncs: Arc::default(),
            ..self.clone()
        }
    }

    /// Where the blob for `digest` lives (whether or not it exists).
    pub fn blob_path(&self, digest: &Sha256Digest) -> PathBuf {
        self.blobs.join(digest.to_hex())
    }

    fn stamp_path(&self, digest: &Sha256Digest) -> PathBuf {
        self.stamps.join(digest.to_hex())
    }

    /// A verified blob with this digest, if cached. Bad entries are evicted.
    pub fn get(&self, digest: &Sha256Digest) -> Option<PathBuf> {
        self.get_checked(digest, None)
    }

    /// Like [`Cache::get`], and the blob must also be `size` bytes long.
    pub fn get_sized(&self, digest: &Sha256Digest, size: u64) -> Option<PathBuf> {
        self.get_checked(digest, Some(size))
    }

    fn get_checked(&self, digest: &Sha256Digest, size: Option<u64>) -> Option<PathBuf> {
        let path = self.blob_path(digest);
        let meta = match fs::symlink_metadata(&path) {
            Ok(m) => m,
            Err(_) => return None,
        };
        if !meta.file_type().is_file() || size.is_some_and(|s| s != meta.len()) {
            self.evict(digest);
            return None;
        }
        if self.stamp_matches(digest, &meta) {
            return Some(path);
        }
        match hash_file(&path) {
            // Synced before stamped, as in `commit`.
            Ok((actual, _))
                if actual == *digest && File::open(&path).and_then(|f| f.sync_all()).is_ok() =>
            {
                self.write_stamp(digest, &meta);
                Some(path)
            }
            _ => {
                self.evict(digest);
                None
            }
        }
    }

    /// A blob stored under a key that is *not* its content hash (e.g. an
    /// apk package, known only by its control-member SHA-1 and size): it is
    /// returned only while its verified stamp still matches, as it cannot be
    /// re-hashed against the key. The caller verifies the content itself and
    /// evicts it on failure (HOSTILE 18/36).
    ///
    /// A regular file of the right size without a matching stamp is left in
    /// place: it may be another build's download between its rename and its
    /// stamp, which that build is about to read (evicting it failed that
    /// build). The download that follows a miss replaces it by a rename. A
    /// blob of the wrong size or kind cannot be such a download, so it goes.
    pub fn get_stamped(&self, key: &Sha256Digest, size: u64) -> Option<PathBuf> {
        let path = self.blob_path(key);
        let meta = fs::symlink_metadata(&path).ok()?;
        if !meta.file_type().is_file() || meta.len() != size {
            self.evict(key);
            return None;
        }
        self.stamp_matches(key, &meta).then_some(path)
    }

    /// Removes a blob and its stamp (best effort: a missing file is fine).
    pub fn evict(&self, digest: &Sha256Digest) {
        let _ = fs::remove_file(self.stamp_path(digest));
        let _ = fs::remove_file(self.blob_path(digest));
    }

    /// Whether the blob's stamp matches `meta`; a blob committed by this
    /// build may still be waiting for its sync, so a miss waits for those
    /// first and looks again.
    fn stamp_matches(&self, digest: &Sha256Digest, meta: &fs::Metadata) -> bool {
        let matches =
            || fs::read_to_string(self.stamp_path(digest)).is_ok_and(|s| s == stamp_of(meta));
        if matches() {
            return true;
        }
        if !self.syncs.any() {
            return false;
        }
        self.wait_for_syncs();
        matches()
    }

    fn write_stamp(&self, digest: &Sha256Digest, meta: &fs::Metadata) {
        // A failed stamp only costs a re-hash next time.
        let _ = write_atomically(
            &self.stamps,
            &self.stamp_path(digest),
            stamp_of(meta).as_bytes(),
        );
    }

    /// Records the last copy of a signed index file fetched from a URL
    /// (InRelease, APKINDEX.tar.gz) under `key`, a digest of that URL, so an
    /// offline run can use it. Replaced atomically: a reader sees the old or
    /// the new copy, never a mix.
    pub fn put_index(&self, key: &Sha256Digest, data: &[u8]) -> Result<(), CacheError> {
        let dest = self.indexes.join(key.to_hex());
        write_atomically(&self.indexes, &dest, data).map_err(io_err(&dest))
    }

    /// The copy stored by [`Cache::put_index`], if any and if it is a regular
    /// file of at most `limit` bytes. Not trusted: the caller verifies its
    /// signature every time, exactly as for a fresh download.
    pub fn get_index(&self, key: &Sha256Digest, limit: u64) -> Option<Vec<u8>> {
        let path = self.indexes.join(key.to_hex());
        let meta = fs::symlink_metadata(&path).ok()?;
        if !meta.file_type().is_file() || meta.len() > limit {
            let _ = fs::remove_file(&path);
            return None;
        }
        fs::read(&path).ok().filter(|d| d.len() as u64 <= limit)
    }

    /// Starts writing a new blob; finish with [`BlobWriter::commit`].
    pub fn writer(&self) -> Result<BlobWriter, CacheError> {
        let temp = tempfile::Builder::new()
            .prefix(".tmp-")
            .tempfile_in(&self.blobs)
            .map_err(io_err(&self.blobs))?;
        Ok(BlobWriter {
            temp,
            hasher: Sha256::new(),
            count: 0,
        })
    }

    /// Stores `data` and returns the blob path.
    pub fn insert_bytes(&self, data: &[u8]) -> Result<PathBuf, CacheError> {
        let mut w = self.writer()?;
        w.write_all(data).map_err(io_err(&self.blobs))?;
        let digest = w.digest();
        w.commit(self, &digest)
    }
}

fn stamp_of(meta: &fs::Metadata) -> String {
    format!(
        "v1 dev={} ino={} size={} mtime={}.{} ctime={}.{}\n",
        meta.dev(),
        meta.ino(),
        meta.len(),
        meta.mtime(),
        meta.mtime_nsec(),
        meta.ctime(),
        meta.ctime_nsec()
    )
}

fn write_atomically(dir: &Path, dest: &Path, data: &[u8]) -> io::Result<()> {
    let mut temp = tempfile::Builder::new().prefix(".tmp-").tempfile_in(dir)?;
    temp.write_all(data)?;
    temp.persist(dest).map_err(|e| e.error)?;
    Ok(())
}

/// SHA-256 and length of a file, streaming.
pub fn hash_file(path: &Path) -> io::Result<(Sha256Digest, u64)> {
    let mut reader = HashingReader::new(File::open(path)?);
    io::copy(&mut reader, &mut io::sink())?;
    Ok(reader.finish())
}

/// A blob being written: hashed as it goes, invisible until committed.
pub struct BlobWriter {
    temp: tempfile::NamedTempFile,
    hasher: Sha256,
    count: u64,
}

impl BlobWriter {
    pub fn bytes_written(&self) -> u64 {
        self.count
    }

    /// Digest of what has been written so far.
    pub fn digest(&self) -> Sha256Digest {
        Sha256Digest(self.hasher.clone().finalize().into())
    }

    /// Discards everything written so far (for a restarted download).
    pub fn reset(&mut self) -> io::Result<()> {
        let file = self.temp.as_file_mut();
        file.set_len(0)?;
        file.seek(SeekFrom::Start(0))?;
        self.hasher = Sha256::new();
        self.count = 0;
        Ok(())
    }

    /// Renames the blob into place under `digest`, which the caller must
    /// have checked against [`BlobWriter::digest`], and starts its fsync;
    /// the stamp follows the fsync (module docs).
    pub fn commit(self, cache: &Cache, digest: &Sha256Digest) -> Result<PathBuf, CacheError> {
        let dest = cache.blob_path(digest);
        let file = self.temp.persist(&dest).map_err(|e| CacheError::Io {
            path: dest.clone(),
            source: e.error,
        })?;
        let Ok(meta) = file.metadata() else {
            return Ok(dest);
        };
        let (stamper, digest, path) = (cache.clone_without_syncs(), *digest, dest.clone());
        let handle = std::thread::Builder::new()
            .name("cache-sync".into())
            .spawn(move || {
                // Stamped only if still the file that was synced: an evicted
                // or replaced blob keeps no stamp of this one.
                let synced = file.sync_all().is_ok();
                let still_ours =
                    fs::symlink_metadata(&path).is_ok_and(|now| stamp_of(&now) == stamp_of(&meta));
                if synced && still_ours {
                    stamper.write_stamp(&digest, &meta);
                }
            });
        // No thread to be had: the blob stays unstamped (checked again on
        // its next use) rather than fail the download.
        if let Ok(handle) = handle {
            cache.syncs.push(handle);
        }
        Ok(dest)
    }
}

impl Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.temp.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.temp.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_share_the_lock_and_only_a_lone_one_sweeps_temps() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path()).unwrap();
        let debris = cache.blobs.join(".tmp-dead-build");
        std::fs::write(&debris, b"half").unwrap();
        let first = cache.lock(&crate::report::Silent).unwrap();
        assert!(
            !debris.exists(),
            "a build alone left a dead build's temp file"
        );
        // Another build's file in the making, while the first holds the lock.
        let writing = cache.blobs.join(".tmp-live-build");
        std::fs::write(&writing, b"half").unwrap();
        // A second build does not wait for the first (this would hang).
        let second = Cache::open(dir.path())
            .unwrap()
            .lock(&crate::report::Silent)
            .unwrap();
        assert!(writing.exists(), "a build removed another's temp file");
        drop((first, second));
        let alone = cache.lock(&crate::report::Silent).unwrap();
        assert!(!writing.exists(), "the next build alone kept the debris");
        drop(alone);
    }

    #[test]
    fn index_copies_are_replaced_and_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path()).unwrap();
        let key = Sha256Digest([3; 32]);
        assert_eq!(cache.get_index(&key, 100), None);
        cache.put_index(&key, b"first").unwrap();
        cache.put_index(&key, b"second").unwrap();
        assert_eq!(cache.get_index(&key, 100).as_deref(), Some(&b"second"[..]));
        // Larger than the caller accepts: dropped, not read into memory.
        assert_eq!(cache.get_index(&key, 3), None);
        assert_eq!(cache.get_index(&key, 100), None);
        // A symlink planted in its place is never followed.
        let target = dir.path().join("elsewhere");
        std::fs::write(&target, b"planted").unwrap();
        std::os::unix::fs::symlink(
            &target,
            dir.path().join("indexes/sha256").join(key.to_hex()),
        )
        .unwrap();
        assert_eq!(cache.get_index(&key, 100), None);
        assert_eq!(std::fs::read(&target).unwrap(), b"planted");
    }

    #[test]
    fn a_committed_blob_is_stamped_once_its_cache_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let key = Sha256Digest([9; 32]);
        let path = {
            let cache = Cache::open(dir.path()).unwrap();
            let mut w = cache.writer().unwrap();
            w.write_all(b"package bytes").unwrap();
            w.commit(&cache, &key).unwrap()
        };
        let stamp = dir.path().join("stamps/sha256").join(key.to_hex());
        let meta = std::fs::symlink_metadata(&path).unwrap();
        assert_eq!(std::fs::read_to_string(stamp).unwrap(), stamp_of(&meta));
        // A later build trusts it without a pending sync of its own.
        let later = Cache::open(dir.path()).unwrap();
        assert_eq!(later.get_stamped(&key, 13), Some(path));
    }

    #[test]
    fn stamped_blobs_are_trusted_only_while_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path()).unwrap();
        let key = Sha256Digest([7; 32]);
        let mut w = cache.writer().unwrap();
        w.write_all(b"package bytes").unwrap();
        let path = w.commit(&cache, &key).unwrap();
        // Found at once, though its stamp may still be on the way.
        assert_eq!(cache.get_stamped(&key, 13), Some(path.clone()));
        // Wrong size: evicted.
        assert_eq!(cache.get_stamped(&key, 14), None);
        assert!(!path.exists());

        let mut w = cache.writer().unwrap();
        w.write_all(b"package bytes").unwrap();
        let path = w.commit(&cache, &key).unwrap();
        // Same size, rewritten in place: the stamp no longer matches, and
        // the next download replaces it.
        std::fs::write(&path, b"PACKAGE BYTES").unwrap();
        assert_eq!(cache.get_stamped(&key, 13), None);
        let mut w = cache.writer().unwrap();
        w.write_all(b"package bytes").unwrap();
        let path = w.commit(&cache, &key).unwrap();
        assert_eq!(cache.get_stamped(&key, 13), Some(path.clone()));
        assert_eq!(std::fs::read(&path).unwrap(), b"package bytes");
    }

    /// Two builds on one cache (two handles, as two processes have): one
    /// renamed its download into place and is about to read it, its stamp
    /// not written yet; the other looks the same key up meanwhile.
    #[test]
    fn another_builds_unstamped_download_is_not_evicted_under_it() {
        let dir = tempfile::tempdir().unwrap();
        let (first, second) = (
            Cache::open(dir.path()).unwrap(),
            Cache::open(dir.path()).unwrap(),
        );
        let key = Sha256Digest([5; 32]);
        let path = first.blob_path(&key);
        write_atomically(&first.blobs, &path, b"package bytes").unwrap();
        assert_eq!(second.get_stamped(&key, 13), None);
        assert_eq!(
            std::fs::read(&path).ok().as_deref(),
            Some(&b"package bytes"[..]),
            "a lookup removed another build's fresh download"
        );
        // A blob of the wrong size is nobody's download in progress.
        assert_eq!(second.get_stamped(&key, 14), None);
        assert!(!path.exists());
    }

    /// Builds on one cache writing and reading the same entries at once:
    /// every read sees a whole old or a whole new copy, never a mix or a
    /// short one, and a blob a build committed is there when it reads it.
    #[test]
    fn concurrent_writers_and_readers_never_see_a_torn_entry() {
        let dir = tempfile::tempdir().unwrap();
        let index_key = Sha256Digest([1; 32]);
        let blob_key = Sha256Digest([2; 32]);
        let copies: [Vec<u8>; 2] = [vec![b'a'; 1 << 20], vec![b'b'; 1 << 20]];
        let blob = vec![b'p'; 256 << 10];
        std::thread::scope(|s| {
            for build in 0..4 {
                let (dir, copies, blob) = (dir.path(), &copies, &blob);
                s.spawn(move || {
                    let cache = Cache::open(dir).unwrap();
                    for round in 0..40 {
                        if build % 2 == 0 {
                            cache
                                .put_index(&index_key, &copies[(build + round) % 4 / 2])
                                .unwrap();
                        }
                        if let Some(read) = cache.get_index(&index_key, 2 << 20) {
                            assert!(
                                copies.contains(&read),
                                "a torn index copy of {} bytes",
                                read.len()
                            );
                        }
                        let path = match cache.get_stamped(&blob_key, blob.len() as u64) {
                            Some(path) => path,
                            None => {
                                let mut w = cache.writer().unwrap();
                                w.write_all(blob).unwrap();
                                w.commit(&cache, &blob_key).unwrap()
                            }
                        };
                        let read = std::fs::read(&path).unwrap_or_else(|e| {
                            panic!("build {build} lost its blob in round {round}: {e}")
                        });
                        assert!(read == *blob, "a torn blob of {} bytes", read.len());
                    }
                });
            }
        });
    }
}
