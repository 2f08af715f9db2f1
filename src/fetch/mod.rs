//! Fetching: an HTTP(S)/file client with retries and strict size limits,
//! a content-addressed cache, and a `Fetcher` that combines them with
//! progress reporting and an offline mode.

pub mod cache;
pub mod http;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

pub use self::cache::{Cache, CacheError, CacheLock};
pub use self::http::{redact, resolve_redirect, Client, ClientConfig};
use crate::report::SharedReporter;
use crate::verify::Sha256Digest;

/// Most downloads in flight at once in [`Fetcher::fetch_all`].
pub const MAX_PARALLEL: usize = 8;

/// Every error names the URL (credentials redacted).
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("invalid URL {url}: {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error("HTTP {status} for {url}")]
    Http { url: String, status: u16 },
    #[error("{url}: {message}")]
    Transport { url: String, message: String },
    #[error("{url}: malformed header {header:?}")]
    BadHeader { url: String, header: String },
    #[error("{url}: redirect refused: {reason}")]
    Redirect { url: String, reason: String },
    #[error("{url}: body exceeds the expected {limit} bytes (got {got})")]
    TooLarge { url: String, limit: u64, got: u64 },
    #[error("{url}: truncated body: got {got} of {expected} bytes")]
    Truncated {
        url: String,
        expected: u64,
        got: u64,
    },
    #[error("{url}: size mismatch: expected {expected} bytes, got {actual}")]
    SizeMismatch {
        url: String,
        expected: u64,
        actual: u64,
    },
    #[error("{url}: SHA-256 mismatch: expected {expected}, got {actual}")]
    HashMismatch {
        url: String,
        expected: Sha256Digest,
        actual: Sha256Digest,
    },
    #[error("{url}: not in the cache and running offline")]
    Offline { url: String },
    #[error("{url}: {source}")]
    File { url: String, source: std::io::Error },
    #[error("{url}: cannot store download: {source}")]
    Sink { url: String, source: std::io::Error },
    #[error("{url}: cancelled after another download failed")]
    Cancelled { url: String },
    #[error(transparent)]
    Cache(#[from] CacheError),
}

/// One file to download, with what the signed index says about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchItem {
    pub url: String,
    pub size: u64,
    pub sha256: Sha256Digest,
    /// Short label for progress display (e.g. a package name).
    pub name: String,
}

pub struct Fetcher {
    client: Client,
    cache: Cache,
    reporter: SharedReporter,
    offline: bool,
}

impl Fetcher {
    /// Fails only on an unusable proxy setting in `config`.
    pub fn new(
        config: ClientConfig,
        cache: Cache,
        reporter: SharedReporter,
        offline: bool,
    ) -> Result<Fetcher, FetchError> {
        Ok(Fetcher {
            client: Client::new(config)?,
            cache,
            reporter,
            offline,
        })
    }

    pub fn cache(&self) -> &Cache {
        &self.cache
    }

    pub fn is_offline(&self) -> bool {
        self.offline
    }

    /// Takes the cache lock for the rest of the build (see [`Cache::lock`]).
    pub fn lock_cache(&self) -> Result<CacheLock, FetchError> {
        Ok(self.cache.lock(self.reporter.as_ref())?)
    }

    /// Downloads a small file whose hash is not known in advance (InRelease,
    /// Release.gpg), refusing more than `limit` bytes. Never cached.
    pub fn fetch_bytes(&self, url: &str, limit: u64) -> Result<Vec<u8>, FetchError> {
        if self.offline {
            return Err(FetchError::Offline { url: redact(url) });
        }
        let mut body = Vec::new();
        let id = self.reporter.download_start(&display_name(url), None);
        let result = self.client.get(
            url,
            limit,
            &mut body,
            &|n| self.reporter.download_progress(id, n),
            &AtomicBool::new(false),
        );
        self.reporter.download_done(id);
        result.map(|_| body)
    }

    /// Returns a cached, verified copy of `url`, downloading it if needed.
    pub fn fetch_verified(
        &self,
        url: &str,
        size: u64,
        sha256: &Sha256Digest,
    ) -> Result<PathBuf, FetchError> {
        let item = FetchItem {
            url: url.to_string(),
            size,
            sha256: *sha256,
            name: display_name(url),
        };
        self.fetch_one(&item, &AtomicBool::new(false))
    }

    /// Downloads a file known only by its exact `size` (no SHA-256 in the
    /// index, as with apk packages) into the cache under `key`, a digest the
    /// caller derives from the file's identity. A warm cache is trusted by
    /// its stamp; the caller must verify the content and [`Cache::evict`]
    /// `key` if that fails.
    pub fn fetch_sized(
        &self,
        url: &str,
        size: u64,
        key: &Sha256Digest,
    ) -> Result<PathBuf, FetchError> {
        if let Some(path) = self.cache.get_stamped(key, size) {
            return Ok(path);
        }
        if self.offline {
            return Err(FetchError::Offline { url: redact(url) });
        }
        let mut writer = self.cache.writer()?;
        let id = self.reporter.download_start(&display_name(url), Some(size));
        let result = self.client.get(
            url,
            size,
            &mut writer,
            &|n| self.reporter.download_progress(id, n),
            &AtomicBool::new(false),
        );
        self.reporter.download_done(id);
        let got = result?;
        if got != size {
            return Err(FetchError::SizeMismatch {
                url: redact(url),
                expected: size,
                actual: got,
            });
        }
        Ok(writer.commit(&self.cache, key)?)
    }

    fn fetch_one(&self, item: &FetchItem, cancel: &AtomicBool) -> Result<PathBuf, FetchError> {
        if let Some(path) = self.cache.get_sized(&item.sha256, item.size) {
            return Ok(path);
        }
        if self.offline {
            return Err(FetchError::Offline {
                url: redact(&item.url),
            });
        }
        let mut writer = self.cache.writer()?;
        let id = self.reporter.download_start(&item.name, Some(item.size));
        let result = self.client.get(
            &item.url,
            item.size,
            &mut writer,
            &|n| self.reporter.download_progress(id, n),
            cancel,
        );
        self.reporter.download_done(id);
        let got = result?;
        if got != item.size {
            return Err(FetchError::SizeMismatch {
                url: redact(&item.url),
                expected: item.size,
                actual: got,
            });
        }
        let actual = writer.digest();
        if actual != item.sha256 {
            return Err(FetchError::HashMismatch {
                url: redact(&item.url),
                expected: item.sha256,
                actual,
            });
        }
        Ok(writer.commit(&self.cache, &item.sha256)?)
    }

    /// Fetches all items, up to [`MAX_PARALLEL`] at a time. Paths come back
    /// in the order of `items`. The first failure stops the rest and is
    /// returned.
    pub fn fetch_all(&self, items: &[FetchItem]) -> Result<Vec<PathBuf>, FetchError> {
        let next = AtomicUsize::new(0);
        let cancel = AtomicBool::new(false);
        let first_error: Mutex<Option<FetchError>> = Mutex::new(None);
        let results: Vec<Mutex<Option<PathBuf>>> = items.iter().map(|_| Mutex::new(None)).collect();
        let workers = MAX_PARALLEL.min(items.len());
        std::thread::scope(|scope| {
            for _ in 0..workers {
                scope.spawn(|| loop {
                    if cancel.load(Ordering::Relaxed) {
                        return;
                    }
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    let Some(item) = items.get(index) else {
                        return;
                    };
                    match self.fetch_one(item, &cancel) {
                        Ok(path) => {
                            if let Ok(mut slot) = results[index].lock() {
                                *slot = Some(path);
                            }
                        }
                        Err(e) => {
                            let already_cancelled = cancel.swap(true, Ordering::SeqCst);
                            if !already_cancelled {
                                if let Ok(mut slot) = first_error.lock() {
                                    slot.get_or_insert(e);
                                }
                            }
                            return;
                        }
                    }
                });
            }
        });
        if let Some(e) = first_error.into_inner().ok().flatten() {
            return Err(e);
        }
        results
            .into_iter()
            .zip(items)
            .map(|(slot, item)| {
                slot.into_inner()
                    .ok()
                    .flatten()
                    .ok_or_else(|| FetchError::Cancelled {
                        url: redact(&item.url),
                    })
            })
            .collect()
    }
}

fn display_name(url: &str) -> String {
    let clean = redact(url);
    clean
        .rsplit('/')
        .find(|s| !s.is_empty())
        .unwrap_or(&clean)
        .to_string()
}
