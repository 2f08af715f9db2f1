//! Fetching: an HTTP(S)/file client with retries and strict size limits,
//! a content-addressed cache, and a `Fetcher` that combines them with
//! progress reporting and an offline mode.

pub mod cache;
pub mod http;
mod in_order;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::sync::Mutex;

pub use self::cache::{Cache, CacheError, CacheLock};
pub use self::http::{redact, resolve_redirect, Client, ClientConfig};
pub use self::in_order::in_order;
use crate::report::SharedReporter;
use crate::verify::Sha256Digest;
use std::time::Instant;

/// Most downloads in flight at once in [`Fetcher::fetch_all`].
pub const MAX_PARALLEL: usize = 8;

/// Every error names the URL (credentials redacted).
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("invalid URL {url}: {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error("HTTP {status} for {url}{}", status_hint(*status))]
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
    #[error("{url}: SHA-256 mismatch: expected {}, got {}", expected.to_hex(), actual.to_hex())]
    HashMismatch {
        url: String,
        expected: Sha256Digest,
        actual: Sha256Digest,
    },
    #[error("{url}: not in the cache and running --offline; run once online with this cache directory first")]
    Offline { url: String },
    #[error("{url}: path {path:?} would leave the mirror: {reason}")]
    UnsafePath {
        url: String,
        path: String,
        reason: String,
    },
    #[error("{url}: {source}")]
    File { url: String, source: std::io::Error },
    #[error("{url}: cannot store download: {source}")]
    Sink { url: String, source: std::io::Error },
    #[error("{url}: cancelled after another download failed")]
    Cancelled { url: String },
    #[error(transparent)]
    Cache(#[from] CacheError),
}

/// What a status that no mirror sends itself usually means: the request
/// never reached the mirror (HOSTILE 28, a captive portal or proxy).
fn status_hint(status: u16) -> &'static str {
    match status {
        407 => " (a proxy wants credentials, which rootstrap does not send)",
        511 => " (the network wants a login first: a captive portal?)",
        _ => "",
    }
}

impl FetchError {
    /// The mirror (or, offline, the cache) does not have the file: a
    /// caller with an alternative (another compression of the same index)
    /// may try that instead.
    pub fn is_missing(&self) -> bool {
        match self {
            FetchError::Http { status, .. } => matches!(status, 404 | 410),
            FetchError::File { source, .. } => source.kind() == std::io::ErrorKind::NotFound,
            FetchError::Offline { .. } => true,
            _ => false,
        }
    }
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
    /// After [`Fetcher::pin_indexes`]: index files already fetched by this
    /// fetcher, by URL, with the speed they arrived at.
    pinned: Option<Arc<std::sync::Mutex<std::collections::HashMap<String, PinnedIndex>>>>,
}

type PinnedIndex = (Vec<u8>, Option<f64>);

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
            pinned: None,
        })
    }

    /// From now on an index file (InRelease, APKINDEX) is fetched once: a
    /// second [`Fetcher::fetch_index`] of its URL returns the same bytes.
    /// A multi-platform build pins them, so every platform is built from
    /// the same signed Release even if the mirror updates meanwhile, and the
    /// shared files are not downloaded again.
    pub fn pin_indexes(&mut self) {
        self.pinned.get_or_insert_with(Default::default);
    }

    /// The same fetcher (client, cache, pinned indexes) reporting to
    /// `reporter`: for one platform of a multi-platform build.
    pub fn with_reporter(&self, reporter: SharedReporter) -> Fetcher {
        Fetcher {
            client: self.client.clone(),
            cache: self.cache.clone(),
            reporter,
            offline: self.offline,
            pinned: self.pinned.clone(),
        }
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

    /// Whether `url` needs the network now: `--offline` blocks only those,
    /// since a `file://` mirror is a local directory.
    fn blocked(&self, url: &str) -> bool {
        self.offline && !is_local(url)
    }

    /// Downloads a small file whose hash is not known in advance, refusing
    /// more than `limit` bytes. Never cached (see [`Fetcher::fetch_index`]
    /// for signed index files).
    pub fn fetch_bytes(&self, url: &str, limit: u64) -> Result<Vec<u8>, FetchError> {
        self.fetch_bytes_timed(url, limit).map(|(body, _)| body)
    }

    /// [`Fetcher::fetch_bytes`], also returning how fast the body arrived in
    /// bytes per second: counted from its first bytes, so connection set-up
    /// and the server's latency do not count, or over the whole request
    /// when the body came in one piece.
    fn fetch_bytes_timed(&self, url: &str, limit: u64) -> Result<(Vec<u8>, f64), FetchError> {
        if self.blocked(url) {
            return Err(FetchError::Offline { url: redact(url) });
        }
        let mut body = Vec::new();
        let id = self.reporter.download_start(&display_name(url), None);
        let started = Instant::now();
        // (when the first bytes came, how many)
        let first = std::cell::Cell::new(None::<(Instant, u64)>);
        let result = self.client.get(
            url,
            limit,
            &mut body,
            &|n| {
                if first.get().is_none() {
                    first.set(Some((Instant::now(), n)));
                }
                self.reporter.download_progress(id, n)
            },
            &AtomicBool::new(false),
        );
        self.reporter.download_done(id);
        result?;
        let total = body.len() as u64;
        let speed = match first.get() {
            Some((at, n)) if total > n && at.elapsed().as_secs_f64() > 0.0 => {
                (total - n) as f64 / at.elapsed().as_secs_f64()
            }
            _ => total as f64 / started.elapsed().as_secs_f64().max(1e-4),
        };
        Ok((body, speed))
    }

    /// Downloads a signed index file whose digest is not known in advance
    /// (InRelease, APKINDEX.tar.gz), refusing more than `limit` bytes.
    /// `--offline` returns the copy last kept by [`Fetcher::keep_index`]
    /// instead. The bytes are never trusted because of where they came
    /// from: the caller verifies the signature (and dates) of a kept copy
    /// exactly as of a fresh one. `file://` URLs are read in place, online
    /// or offline.
    pub fn fetch_index(&self, url: &str, limit: u64) -> Result<Vec<u8>, FetchError> {
        self.fetch_index_timed(url, limit).map(|(body, _)| body)
    }

    /// [`Fetcher::fetch_index`], also returning the speed the body arrived
    /// at (see `fetch_bytes_timed`); `None` when nothing was downloaded
    /// (`--offline`, `file://`).
    pub fn fetch_index_timed(
        &self,
        url: &str,
        limit: u64,
    ) -> Result<(Vec<u8>, Option<f64>), FetchError> {
        let Some(pinned) = &self.pinned else {
            return self.fetch_index_unpinned(url, limit);
        };
        // A poisoned lock only means another fetch panicked; the map holds
        // complete entries.
        let known = pinned
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(url)
            .cloned();
        if let Some(known) = known {
            return Ok(known);
        }
        let fetched = self.fetch_index_unpinned(url, limit)?;
        pinned
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(url.to_owned(), fetched.clone());
        Ok(fetched)
    }

    fn fetch_index_unpinned(
        &self,
        url: &str,
        limit: u64,
    ) -> Result<(Vec<u8>, Option<f64>), FetchError> {
        if self.offline && !is_local(url) {
            return self
                .cache
                .get_index(&index_key(url), limit)
                .map(|body| (body, None))
                .ok_or_else(|| FetchError::Offline { url: redact(url) });
        }
        if is_local(url) {
            return self.fetch_bytes(url, limit).map(|body| (body, None));
        }
        self.fetch_bytes_timed(url, limit)
            .map(|(body, speed)| (body, Some(speed)))
    }

    /// Keeps `body`, fetched from `url` and verified by the caller, as the
    /// copy an offline run of [`Fetcher::fetch_index`] uses. Called only
    /// after verification, so a tampered or expired download never replaces
    /// the last good copy. Failing to keep it only costs offline use later,
    /// so it is reported, not returned.
    pub fn keep_index(&self, url: &str, body: &[u8]) {
        if self.offline || is_local(url) {
            return;
        }
        if let Err(e) = self.cache.put_index(&index_key(url), body) {
            self.reporter
                .warn(&format!("cannot keep {} for offline use: {e}", redact(url)));
        }
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
        if self.blocked(url) {
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
        if self.blocked(&item.url) {
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
        let results: Vec<Mutex<Option<PathBuf>>> = items.iter().map(|_| Mutex::new(None)).collect();
        self.fetch_each(items, &|index, path| {
            if let Ok(mut slot) = results[index].lock() {
                *slot = Some(path);
            }
            true
        })?;
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

    /// Fetches items in the order given, up to [`MAX_PARALLEL`] at a time,
    /// and hands each verified file to `ready` (index into `items`, cached
    /// path) as soon as it is in the cache, from the downloading thread, so
    /// the caller can start using it while the rest still download. `ready`
    /// returning false stops the downloads not yet started. The first
    /// failure stops the rest and is returned; `ready` has then been called
    /// only for files that were complete and verified.
    pub fn fetch_each(
        &self,
        items: &[FetchItem],
        ready: &(dyn Fn(usize, PathBuf) -> bool + Sync),
    ) -> Result<(), FetchError> {
        let next = AtomicUsize::new(0);
        let cancel = AtomicBool::new(false);
        let first_error: Mutex<Option<FetchError>> = Mutex::new(None);
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
                            if !ready(index, path) {
                                cancel.store(true, Ordering::SeqCst);
                                return;
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
        match first_error.into_inner().ok().flatten() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

fn is_local(url: &str) -> bool {
    url.get(..5)
        .is_some_and(|s| s.eq_ignore_ascii_case("file:"))
}

/// Cache key of the last copy of an index file: its URL, without
/// credentials (they may change; the file does not).
fn index_key(url: &str) -> Sha256Digest {
    let without_credentials = match url::Url::parse(url) {
        Ok(mut parsed) => {
            let _ = parsed.set_username("");
            let _ = parsed.set_password(None);
            parsed.to_string()
        }
        Err(_) => redact(url),
    };
    Sha256Digest::of(format!("rootstrap-index-v1\0{without_credentials}").as_bytes())
}

/// `base/rel` for a path named by a repository index (a Packages
/// `Filename`, an apk `name-version.apk`), refused unless the URL really
/// names a file below `base`: no absolute path, no `.`/`..`/empty component
/// (also percent-encoded, which URL parsing would resolve), no `?`/`#`, no
/// backslash or control character. With a `file://` mirror anything else
/// would read outside the mirror directory.
pub fn join_mirror(base: &str, rel: &str) -> Result<String, FetchError> {
    let base = base.trim_end_matches('/');
    let joined = format!("{base}/{rel}");
    let refuse = |reason: &str| FetchError::UnsafePath {
        url: redact(&joined),
        path: rel.to_owned(),
        reason: reason.to_owned(),
    };
    if rel.starts_with('/') {
        return Err(refuse("absolute path"));
    }
    if rel
        .chars()
        .any(|c| c.is_control() || matches!(c, '\\' | '?' | '#'))
    {
        return Err(refuse("backslash, '?', '#' or control character"));
    }
    for component in rel.split('/') {
        let decoded = percent_decode(component);
        if decoded.is_empty() || decoded == b"." || decoded == b".." || decoded.contains(&b'/') {
            return Err(refuse("empty, '.' or '..' component"));
        }
    }
    // Whatever URL parsing makes of it must still be exactly base + rel.
    let parsed_base = url::Url::parse(base).map_err(|e| FetchError::InvalidUrl {
        url: redact(base),
        reason: e.to_string(),
    })?;
    let parsed = url::Url::parse(&joined).map_err(|e| FetchError::InvalidUrl {
        url: redact(&joined),
        reason: e.to_string(),
    })?;
    let expected = format!("{}/{rel}", parsed_base.path().trim_end_matches('/'));
    if parsed.path() != expected || parsed.host_str() != parsed_base.host_str() {
        return Err(refuse("the URL does not resolve below the mirror"));
    }
    Ok(joined)
}

fn percent_decode(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}

fn display_name(url: &str) -> String {
    let clean = redact(url);
    clean
        .rsplit('/')
        .find(|s| !s.is_empty())
        .unwrap_or(&clean)
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mirror_paths_stay_below_the_mirror() {
        let base = "file:///srv/mirror/debian";
        assert_eq!(
            join_mirror(base, "pool/main/a/apt/apt_3.0_amd64.deb").unwrap(),
            "file:///srv/mirror/debian/pool/main/a/apt/apt_3.0_amd64.deb"
        );
        assert_eq!(
            join_mirror("http://m.example/d/", "pool/x_1%3a2_all.deb").unwrap(),
            "http://m.example/d/pool/x_1%3a2_all.deb"
        );
        for bad in [
            "../../etc/passwd",
            "pool/../../../etc/passwd",
            "/etc/passwd",
            "pool/%2e%2e/%2E%2e/etc/passwd",
            "pool/.%2e/x",
            "pool/%2e/x",
            "pool//x.deb",
            "pool/a%2f..%2f..%2fx",
            "pool/x.deb?/../../y",
            "pool/x.deb#frag",
            "pool\\..\\x",
            "pool/x\n.deb",
            "",
        ] {
            let err = join_mirror(base, bad).unwrap_err();
            assert!(
                matches!(err, FetchError::UnsafePath { .. }),
                "{bad:?}: {err}"
            );
        }
        // The apk layout: a hostile package name cannot climb out either.
        assert!(join_mirror("file:///m/v3.20/main", "x86_64/../../../../etc/x-1.apk").is_err());
    }

    #[test]
    fn index_keys_ignore_credentials_only() {
        assert_eq!(
            index_key("https://u:p@m.example/d/InRelease"),
            index_key("https://m.example/d/InRelease")
        );
        assert_ne!(
            index_key("https://m.example/d/InRelease"),
            index_key("https://m.example/e/InRelease")
        );
        assert!(is_local("file:///x") && is_local("FILE:///x") && !is_local("http://x"));
    }
}
