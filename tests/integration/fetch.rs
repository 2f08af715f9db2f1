//! Fetcher and cache against a loopback server with injected faults
//! (HOSTILE 23, 26–31, 35, 36).

use crate::common;

use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::httpd::TestServer;
use rootstrap::fetch::{Cache, ClientConfig, FetchError, FetchItem, Fetcher, MAX_PARALLEL};
use rootstrap::report::{self, Reporter};
use rootstrap::verify::Sha256Digest;

fn quick_config() -> ClientConfig {
    ClientConfig {
        connect_timeout: Duration::from_secs(5),
        read_timeout: Duration::from_secs(5),
        backoff: Duration::from_millis(10),
        ..ClientConfig::default()
    }
}

struct Env {
    _dir: tempfile::TempDir,
    srv: TestServer,
    cache_dir: std::path::PathBuf,
    fetcher: Fetcher,
}

fn env() -> Env {
    env_with(report::silent(), false)
}

fn env_with(reporter: report::SharedReporter, offline: bool) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let www = dir.path().join("www");
    std::fs::create_dir_all(&www).unwrap();
    let cache_dir = dir.path().join("cache");
    let srv = TestServer::serve(&www);
    let fetcher = Fetcher::new(
        quick_config(),
        Cache::open(&cache_dir).unwrap(),
        reporter,
        offline,
    )
    .unwrap();
    Env {
        _dir: dir,
        srv,
        cache_dir,
        fetcher,
    }
}

fn payload(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

fn digest(data: &[u8]) -> Sha256Digest {
    Sha256Digest::of(data)
}

/// `count` files of `size` bytes served at `/{prefix}{i}`, each delayed by
/// `delay`, as fetch items named after their paths.
fn served_items(e: &Env, prefix: &str, count: u8, size: usize, delay: Duration) -> Vec<FetchItem> {
    (0..count)
        .map(|i| {
            let data = payload(size, i);
            let path = format!("/{prefix}{i}");
            e.srv.put(&path, &data);
            if !delay.is_zero() {
                e.srv.delay(&path, delay);
            }
            FetchItem {
                url: e.srv.url(&path),
                size: size as u64,
                sha256: digest(&data),
                name: path,
            }
        })
        .collect()
}

#[test]
fn verified_download_lands_in_cache_and_is_reused() {
    let e = env();
    let data = payload(300_000, 1);
    e.srv.put("/pool/a.deb", &data);
    let url = e.srv.url("/pool/a.deb");
    let path = e
        .fetcher
        .fetch_verified(&url, data.len() as u64, &digest(&data))
        .unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), data);
    assert_eq!(
        path,
        e.cache_dir
            .join("blobs/sha256")
            .join(digest(&data).to_hex())
    );
    // Second fetch is a cache hit: no new request.
    let again = e
        .fetcher
        .fetch_verified(&url, data.len() as u64, &digest(&data))
        .unwrap();
    assert_eq!(again, path);
    assert_eq!(e.srv.requests("/pool/a.deb"), 1);
}

#[test]
fn truncated_body_is_retried_then_fails() {
    let e = env();
    let data = payload(100_000, 2);
    e.srv.put("/t", &data);
    e.srv.truncate_after("/t", 5_000);
    let err = e
        .fetcher
        .fetch_verified(&e.srv.url("/t"), data.len() as u64, &digest(&data))
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(
            err,
            FetchError::Truncated { .. } | FetchError::Transport { .. }
        ),
        "{msg}"
    );
    assert!(msg.contains("/t"), "{msg}");
    assert_eq!(e.srv.requests("/t"), 4, "first attempt + 3 retries");
    assert!(e.fetcher.cache().get(&digest(&data)).is_none());
}

#[test]
fn truncation_recovers_when_server_heals() {
    let e = env();
    let data = payload(50_000, 3);
    e.srv.put("/heal", &data);
    e.srv.truncate_after("/heal", 100);
    let url = e.srv.url("/heal");
    let srv = &e.srv;
    std::thread::scope(|s| {
        s.spawn(|| {
            while srv.requests("/heal") < 1 {
                std::thread::sleep(Duration::from_millis(1));
            }
            srv.clear_faults("/heal");
        });
        let path = e
            .fetcher
            .fetch_verified(&url, data.len() as u64, &digest(&data))
            .unwrap();
        assert_eq!(std::fs::read(path).unwrap(), data);
    });
}

#[test]
fn oversize_body_aborts_without_retry() {
    let e = env();
    let data = payload(10_000, 4);
    e.srv.put("/big", &data);
    // No Content-Length: the limit must trip while the body streams.
    e.srv.wrong_content_length("/big", "none");
    let err = e
        .fetcher
        .fetch_verified(&e.srv.url("/big"), 1_000, &digest(&data[..1000]))
        .unwrap_err();
    assert!(matches!(err, FetchError::TooLarge { .. }), "{err}");
    assert_eq!(e.srv.requests("/big"), 1);
}

#[test]
fn content_length_over_limit_is_rejected_before_the_body() {
    let e = env();
    let data = payload(200_000, 5);
    e.srv.put("/long", &data);
    let err = e
        .fetcher
        .fetch_bytes(&e.srv.url("/long"), 1024)
        .unwrap_err();
    assert!(
        matches!(err, FetchError::TooLarge { limit: 1024, .. }),
        "{err}"
    );
}

#[test]
fn huge_content_length_is_rejected_up_front() {
    let e = env();
    e.srv.put("/huge", b"small");
    e.srv.wrong_content_length("/huge", "99999999999999");
    let err = e
        .fetcher
        .fetch_bytes(&e.srv.url("/huge"), 1 << 20)
        .unwrap_err();
    assert!(
        matches!(
            err,
            FetchError::TooLarge {
                got: 99999999999999,
                ..
            }
        ),
        "{err}"
    );
    e.srv.wrong_content_length("/huge", "184467440737095516160");
    let err = e
        .fetcher
        .fetch_bytes(&e.srv.url("/huge"), 1 << 20)
        .unwrap_err();
    assert!(
        matches!(
            err,
            FetchError::BadHeader { .. } | FetchError::Transport { .. }
        ),
        "{err}"
    );
}

#[test]
fn wrong_content_length_shorter_than_body_is_a_size_mismatch() {
    let e = env();
    let data = payload(4_000, 6);
    e.srv.put("/short-cl", &data);
    e.srv.wrong_content_length("/short-cl", "3000");
    let err = e
        .fetcher
        .fetch_verified(&e.srv.url("/short-cl"), 4_000, &digest(&data))
        .unwrap_err();
    assert!(
        matches!(
            err,
            FetchError::SizeMismatch {
                expected: 4000,
                actual: 3000,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn not_found_and_forbidden_fail_immediately() {
    let e = env();
    for (path, status) in [("/missing", 404u16), ("/portal", 403), ("/auth", 511)] {
        if status != 404 {
            e.srv.set_status(path, status);
        }
        let err = e.fetcher.fetch_bytes(&e.srv.url(path), 1000).unwrap_err();
        assert!(
            matches!(err, FetchError::Http { status: s, .. } if s == status),
            "{err}"
        );
        let msg = err.to_string();
        assert!(
            msg.contains(path) && msg.contains(&status.to_string()),
            "{msg}"
        );
        assert_eq!(e.srv.requests(path), 1, "{path} must not be retried");
        if status == 511 {
            assert!(msg.contains("captive portal"), "{msg}");
        }
    }
}

#[test]
fn service_unavailable_then_success_honours_retry_after() {
    let e = env();
    e.srv.put("/r", b"hello");
    e.srv.fail_times("/r", 503, 1, Some("1"));
    let start = Instant::now();
    let body = e.fetcher.fetch_bytes(&e.srv.url("/r"), 100).unwrap();
    assert_eq!(body, b"hello");
    assert!(
        start.elapsed() >= Duration::from_millis(950),
        "Retry-After ignored: {:?}",
        start.elapsed()
    );
    assert_eq!(e.srv.requests("/r"), 2);
}

#[test]
fn too_many_requests_is_retried_and_bounded() {
    let e = env();
    e.srv.put("/rate", b"ok");
    e.srv.fail_times("/rate", 429, 2, Some("0"));
    assert_eq!(
        e.fetcher.fetch_bytes(&e.srv.url("/rate"), 10).unwrap(),
        b"ok"
    );
    assert_eq!(e.srv.requests("/rate"), 3);

    e.srv.set_status("/always", 429);
    let err = e
        .fetcher
        .fetch_bytes(&e.srv.url("/always"), 10)
        .unwrap_err();
    assert!(matches!(err, FetchError::Http { status: 429, .. }), "{err}");
    assert_eq!(e.srv.requests("/always"), 4);
}

#[test]
fn other_server_errors_are_retried() {
    let e = env();
    e.srv.put("/flaky", b"fine");
    e.srv.fail_times("/flaky", 500, 2, None);
    assert_eq!(
        e.fetcher.fetch_bytes(&e.srv.url("/flaky"), 10).unwrap(),
        b"fine"
    );
    assert_eq!(e.srv.requests("/flaky"), 3);
}

#[test]
fn connection_refused_is_retried_then_reported() {
    let e = env();
    // A port that was just free: bind, read the port, close.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}/x");
    let err = e.fetcher.fetch_bytes(&url, 10).unwrap_err();
    assert!(matches!(err, FetchError::Transport { .. }), "{err}");
    assert!(err.to_string().contains(&port.to_string()));
}

#[test]
fn redirects_are_followed() {
    let e = env();
    e.srv.put("/real", b"content");
    e.srv.redirect("/old", b"/mid");
    e.srv.redirect("/mid", e.srv.url("/real").as_bytes());
    assert_eq!(
        e.fetcher.fetch_bytes(&e.srv.url("/old"), 100).unwrap(),
        b"content"
    );
}

#[test]
fn redirect_loop_is_refused() {
    let e = env();
    e.srv.redirect("/a", b"/b");
    e.srv.redirect("/b", b"/a");
    let err = e.fetcher.fetch_bytes(&e.srv.url("/a"), 100).unwrap_err();
    assert!(matches!(err, FetchError::Redirect { .. }), "{err}");
    assert!(err.to_string().contains("redirects"), "{err}");
    // Not retried: 10 hops + the one that overflowed, one attempt.
    assert_eq!(e.srv.requests("/a") + e.srv.requests("/b"), 11);
}

#[test]
fn control_characters_in_location_are_refused() {
    let e = env();
    e.srv.put("/evil", b"should not be fetched");
    e.srv.redirect("/enc", b"/evil%0aX-Injected: 1");
    e.srv.redirect("/encr", b"/evil%0D%0A");
    e.srv.redirect("/raw", b"/evil\x01x");
    for path in ["/enc", "/encr", "/raw"] {
        let err = e.fetcher.fetch_bytes(&e.srv.url(path), 100).unwrap_err();
        assert!(matches!(err, FetchError::Redirect { .. }), "{path}: {err}");
    }
    assert_eq!(e.srv.requests("/evil"), 0);
}

#[test]
fn https_to_http_redirect_is_refused() {
    // No TLS server here: check the redirect rule the client applies to
    // every hop.
    let from = url::Url::parse("https://mirror.invalid/dists/x/InRelease").unwrap();
    let err = rootstrap::fetch::resolve_redirect(&from, "http://127.0.0.1/x").unwrap_err();
    assert!(err.to_string().contains("https to http"), "{err}");
    assert!(rootstrap::fetch::resolve_redirect(&from, "https://127.0.0.1/x").is_ok());
}

#[test]
fn hash_mismatch_names_url_expected_and_actual() {
    let e = env();
    let data = payload(1_000, 7);
    let mut wrong = data.clone();
    wrong[10] ^= 1;
    e.srv.put("/p.deb", &wrong);
    let err = e
        .fetcher
        .fetch_verified(&e.srv.url("/p.deb"), 1_000, &digest(&data))
        .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, FetchError::HashMismatch { .. }), "{msg}");
    assert!(msg.contains("/p.deb"), "{msg}");
    assert!(msg.contains(&digest(&data).to_hex()), "{msg}");
    assert!(msg.contains(&digest(&wrong).to_hex()), "{msg}");
    assert!(e.fetcher.cache().get(&digest(&data)).is_none());
    // Nothing half-written is left in the blob directory.
    let leftovers: Vec<_> = std::fs::read_dir(e.cache_dir.join("blobs/sha256"))
        .unwrap()
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

fn corrupt_and_refetch(corrupt: impl Fn(&Path)) {
    let e = env();
    let data = payload(70_000, 8);
    e.srv.put("/c", &data);
    let url = e.srv.url("/c");
    let d = digest(&data);
    let path = e.fetcher.fetch_verified(&url, 70_000, &d).unwrap();
    corrupt(&path);
    let again = e.fetcher.fetch_verified(&url, 70_000, &d).unwrap();
    assert_eq!(std::fs::read(&again).unwrap(), data);
    assert_eq!(e.srv.requests("/c"), 2, "corrupted entry must be refetched");
}

#[test]
fn truncated_cache_file_is_refetched() {
    corrupt_and_refetch(|p| {
        let f = std::fs::OpenOptions::new().write(true).open(p).unwrap();
        f.set_len(100).unwrap();
    });
}

#[test]
fn zeroed_cache_file_is_refetched() {
    corrupt_and_refetch(|p| {
        let len = std::fs::metadata(p).unwrap().len() as usize;
        std::fs::write(p, vec![0u8; len]).unwrap();
    });
}

#[test]
fn same_size_rewrite_in_place_is_detected() {
    corrupt_and_refetch(|p| {
        use std::io::{Seek, SeekFrom, Write};
        let mut f = std::fs::OpenOptions::new().write(true).open(p).unwrap();
        f.seek(SeekFrom::Start(500)).unwrap();
        f.write_all(b"X").unwrap();
    });
}

#[test]
fn broken_symlink_in_cache_is_evicted() {
    corrupt_and_refetch(|p| {
        std::fs::remove_file(p).unwrap();
        std::os::unix::fs::symlink("/nonexistent/blob", p).unwrap();
    });
}

#[test]
fn cache_get_evicts_bad_entries() {
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(dir.path()).unwrap();
    let data = b"some blob".to_vec();
    let path = cache.insert_bytes(&data).unwrap();
    assert_eq!(cache.get(&digest(&data)), Some(path.clone()));
    std::fs::write(&path, b"other blob").unwrap();
    assert_eq!(cache.get(&digest(&data)), None);
    assert!(!path.exists(), "bad entry must be evicted");
}

#[test]
fn offline_miss_names_url_and_hit_works() {
    let e = env();
    let data = payload(2_000, 9);
    e.srv.put("/o", &data);
    let url = e.srv.url("/o");
    e.fetcher
        .fetch_verified(&url, 2_000, &digest(&data))
        .unwrap();
    let offline = Fetcher::new(
        quick_config(),
        Cache::open(&e.cache_dir).unwrap(),
        report::silent(),
        true,
    )
    .unwrap();
    assert!(offline.fetch_verified(&url, 2_000, &digest(&data)).is_ok());
    let other = payload(10, 1);
    let miss_url = e.srv.url("/not-cached");
    let err = offline
        .fetch_verified(&miss_url, 10, &digest(&other))
        .unwrap_err();
    assert!(matches!(err, FetchError::Offline { .. }), "{err}");
    assert!(err.to_string().contains("/not-cached"));
    assert!(offline.fetch_bytes(&miss_url, 10).is_err());
    assert_eq!(e.srv.requests("/not-cached"), 0);
}

#[test]
fn file_urls_are_read_with_the_same_checks() {
    let e = env();
    let dir = tempfile::tempdir().unwrap();
    let data = payload(5_000, 10);
    let file = dir.path().join("local file.deb");
    std::fs::write(&file, &data).unwrap();
    let url = url::Url::from_file_path(&file).unwrap().to_string();
    let path = e
        .fetcher
        .fetch_verified(&url, 5_000, &digest(&data))
        .unwrap();
    assert_eq!(std::fs::read(path).unwrap(), data);
    assert_eq!(e.fetcher.fetch_bytes(&url, 5_000).unwrap(), data);
    assert!(matches!(
        e.fetcher.fetch_bytes(&url, 4_999).unwrap_err(),
        FetchError::TooLarge { .. }
    ));
    let mut other = data.clone();
    other[0] ^= 1;
    assert!(matches!(
        e.fetcher
            .fetch_verified(&url, 5_000, &digest(&other))
            .unwrap_err(),
        FetchError::HashMismatch { .. }
    ));
    let missing = url::Url::from_file_path(dir.path().join("nope")).unwrap();
    assert!(matches!(
        e.fetcher.fetch_bytes(missing.as_str(), 10).unwrap_err(),
        FetchError::File { .. }
    ));
}

#[derive(Default)]
struct Recorder {
    next: AtomicU64,
    started: Mutex<Vec<(String, Option<u64>)>>,
    bytes: AtomicU64,
    done: AtomicU64,
}

impl Reporter for Recorder {
    fn download_start(&self, name: &str, total: Option<u64>) -> u64 {
        self.started.lock().unwrap().push((name.to_string(), total));
        self.next.fetch_add(1, Ordering::SeqCst)
    }
    fn download_progress(&self, _id: u64, bytes: u64) {
        self.bytes.fetch_add(bytes, Ordering::SeqCst);
    }
    fn download_done(&self, _id: u64) {
        self.done.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn parallel_fetch_keeps_order_and_reports_progress() {
    let recorder = Arc::new(Recorder::default());
    let e = env_with(recorder.clone(), false);
    let mut items = Vec::new();
    let mut expected = Vec::new();
    for i in 0..20u8 {
        let data = payload(1_000 + i as usize * 997, i);
        let path = format!("/pool/p{i}.deb");
        e.srv.put(&path, &data);
        // Early items are slow so they finish last.
        if i < 4 {
            e.srv
                .delay(&path, Duration::from_millis(200 - i as u64 * 40));
        }
        items.push(FetchItem {
            url: e.srv.url(&path),
            size: data.len() as u64,
            sha256: digest(&data),
            name: format!("p{i}"),
        });
        expected.push(data);
    }
    let paths = e.fetcher.fetch_all(&items).unwrap();
    assert_eq!(paths.len(), 20);
    for (path, data) in paths.iter().zip(&expected) {
        assert_eq!(&std::fs::read(path).unwrap(), data);
    }
    let total: u64 = expected.iter().map(|d| d.len() as u64).sum();
    assert_eq!(recorder.bytes.load(Ordering::SeqCst), total);
    assert_eq!(recorder.done.load(Ordering::SeqCst), 20);
    let started = recorder.started.lock().unwrap();
    assert!(started.contains(&("p3".to_string(), Some(1_000 + 3 * 997))));
}

#[test]
fn parallel_fetch_stops_at_first_error() {
    let e = env();
    let items = served_items(&e, "q", 30, 500, Duration::from_millis(30));
    e.srv.set_status("/q0", 404);
    let err = e.fetcher.fetch_all(&items).unwrap_err();
    assert!(matches!(err, FetchError::Http { status: 404, .. }), "{err}");
    assert!(err.to_string().contains("/q0"));
    assert!(
        e.srv.total_requests() < 30,
        "remaining downloads should be cancelled, saw {}",
        e.srv.total_requests()
    );
}

#[test]
fn each_file_is_handed_over_as_soon_as_it_is_verified() {
    let e = env();
    let items = served_items(&e, "each", 12, 700, Duration::ZERO);
    // The last item is slow: the others must be handed over before it is.
    e.srv.delay("/each11", Duration::from_millis(400));
    let seen = Mutex::new(Vec::new());
    e.fetcher
        .fetch_each(&items, &|index, path| {
            assert_eq!(std::fs::read(&path).unwrap(), payload(700, index as u8));
            seen.lock().unwrap().push(index);
            true
        })
        .unwrap();
    let seen = seen.into_inner().unwrap();
    assert_eq!(seen.len(), 12);
    assert_eq!(seen.last(), Some(&11), "order handed over: {seen:?}");
    let mut sorted = seen.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, (0..12).collect::<Vec<_>>());
}

#[test]
fn declining_a_file_stops_the_downloads_not_yet_started() {
    let e = env();
    let items = served_items(&e, "stop", 40, 300, Duration::from_millis(20));
    let calls = AtomicUsize::new(0);
    e.fetcher
        .fetch_each(&items, &|_, _| {
            calls.fetch_add(1, Ordering::SeqCst);
            false
        })
        .unwrap();
    // Only the downloads already in flight when the first file was
    // declined finish; nothing new starts.
    assert!(
        calls.load(Ordering::SeqCst) <= MAX_PARALLEL,
        "{} handed over",
        calls.load(Ordering::SeqCst)
    );
    assert!(
        e.srv.total_requests() <= MAX_PARALLEL,
        "downloads should stop, saw {}",
        e.srv.total_requests()
    );
}

#[test]
fn credentials_never_appear_in_errors() {
    let e = env();
    let url = e
        .srv
        .url("/secret")
        .replace("http://", "http://alice:hunter2@");
    let err = e.fetcher.fetch_bytes(&url, 10).unwrap_err();
    let msg = format!("{err} {err:?}");
    assert!(!msg.contains("hunter2"), "{msg}");
    assert!(msg.contains("/secret"), "{msg}");
    // The credentials did go to the server, as Basic auth.
    let log = e.srv.request_log();
    assert!(log[0]
        .1
        .get("authorization")
        .is_some_and(|a| a.starts_with("Basic ")));
}

#[test]
fn requests_ask_for_identity_encoding_and_no_range() {
    let e = env();
    e.srv.put("/plain.gz", b"\x1f\x8b not really gzip");
    e.srv.ignore_range("/plain.gz");
    let body = e.fetcher.fetch_bytes(&e.srv.url("/plain.gz"), 100).unwrap();
    assert_eq!(body, b"\x1f\x8b not really gzip");
    let (_, headers) = &e.srv.request_log()[0];
    assert_eq!(
        headers.get("accept-encoding").map(String::as_str),
        Some("identity")
    );
    assert!(headers.get("range").is_none());
}

#[test]
fn stale_temp_files_are_removed_when_locking() {
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(dir.path()).unwrap();
    let debris = dir.path().join("blobs/sha256/.tmp-dead");
    std::fs::write(&debris, b"half a download").unwrap();
    let _lock = cache.lock(&report::Silent).unwrap();
    assert!(!debris.exists());
}

/// Builds share the cache: a second one takes the lock at once, while the
/// first holds it, and says it shares the cache.
#[test]
fn cache_lock_is_shared_by_two_builds() {
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(dir.path()).unwrap();
    let first = cache.lock(&report::Silent).unwrap();

    #[derive(Default)]
    struct Told(Mutex<Vec<String>>);
    impl Reporter for Told {
        fn info(&self, msg: &str) {
            self.0.lock().unwrap().push(msg.to_string());
        }
    }
    let told = Arc::new(Told::default());
    let acquired = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let t = {
        let cache = Cache::open(dir.path()).unwrap();
        let told = told.clone();
        let acquired = acquired.clone();
        std::thread::spawn(move || {
            let _second = cache.lock(told.as_ref()).unwrap();
            acquired.store(true, Ordering::SeqCst);
        })
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !acquired.load(Ordering::SeqCst) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(
        acquired.load(Ordering::SeqCst),
        "the second build waited for the first to end"
    );
    t.join().unwrap();
    assert!(told.0.lock().unwrap()[0].contains("sharing the cache"));
    drop(first);
}

#[test]
fn chunked_bodies_work_and_truncated_chunked_bodies_fail() {
    let e = env();
    let data = payload(10_000, 11);
    e.srv.put("/chunked", &data);
    e.srv.chunked("/chunked");
    let path = e
        .fetcher
        .fetch_verified(&e.srv.url("/chunked"), 10_000, &digest(&data))
        .unwrap();
    assert_eq!(std::fs::read(path).unwrap(), data);

    let data = payload(10_000, 13);
    e.srv.put("/chunked-cut", &data);
    e.srv.chunked("/chunked-cut");
    e.srv.truncate_after("/chunked-cut", 3_000);
    let err = e
        .fetcher
        .fetch_verified(&e.srv.url("/chunked-cut"), 10_000, &digest(&data))
        .unwrap_err();
    assert!(
        matches!(
            err,
            FetchError::Transport { .. } | FetchError::SizeMismatch { .. }
        ),
        "{err}"
    );
    assert!(e.fetcher.cache().get(&digest(&data)).is_none());
}

#[test]
fn overflowing_chunk_size_is_an_error() {
    let e = env();
    e.srv.raw_response(
        "/overflow",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n\
          fffffffffffffffffffffff\r\nabc\r\n0\r\n\r\n",
    );
    let err = e
        .fetcher
        .fetch_bytes(&e.srv.url("/overflow"), 1 << 20)
        .unwrap_err();
    assert!(
        matches!(
            err,
            FetchError::Transport { .. } | FetchError::TooLarge { .. }
        ),
        "{err}"
    );
}

/// HOSTILE 31: a server asking for a long wait gets at most the configured
/// longest wait (120 s by default), not a stalled build. Asked for 6 s with
/// a 1 s cap, an uncapped client would fail the bound below, not hang.
#[test]
fn retry_after_is_capped() {
    let e = env();
    e.srv.put("/busy", b"hello");
    e.srv.fail_times("/busy", 503, 1, Some("6"));
    let fetcher = Fetcher::new(
        ClientConfig {
            max_retry_after: Duration::from_secs(1),
            ..quick_config()
        },
        Cache::open(&e.cache_dir).unwrap(),
        report::silent(),
        false,
    )
    .unwrap();
    let start = Instant::now();
    assert_eq!(
        fetcher.fetch_bytes(&e.srv.url("/busy"), 100).unwrap(),
        b"hello"
    );
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_millis(950) && waited < Duration::from_secs(5),
        "waited {waited:?}"
    );
    assert_eq!(e.srv.requests("/busy"), 2);
}

/// HOSTILE 30: rootstrap never asks for a range, so a 206 (a cache or proxy
/// answering some other client's range) is refused rather than taken as the
/// whole file, and nothing of it is cached.
#[test]
fn an_unasked_partial_response_is_refused() {
    let e = env();
    let data = payload(64, 3);
    e.srv.raw_response(
        "/partial",
        &[
            b"HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 32-63/64\r\n\
              Content-Length: 32\r\nConnection: close\r\n\r\n"
                .as_slice(),
            &data[32..],
        ]
        .concat(),
    );
    let err = e
        .fetcher
        .fetch_verified(&e.srv.url("/partial"), 64, &digest(&data))
        .unwrap_err();
    assert!(matches!(err, FetchError::Http { status: 206, .. }), "{err}");
    assert!(e.fetcher.cache().get(&digest(&data)).is_none());
}

#[test]
fn captive_portal_html_fails_the_hash_check() {
    let e = env();
    let html = b"<html><body>Please log in</body></html>";
    e.srv.put("/dists/x/main/binary-amd64/Packages.xz", html);
    let expected = payload(html.len(), 12);
    let err = e
        .fetcher
        .fetch_verified(
            &e.srv.url("/dists/x/main/binary-amd64/Packages.xz"),
            html.len() as u64,
            &digest(&expected),
        )
        .unwrap_err();
    assert!(matches!(err, FetchError::HashMismatch { .. }), "{err}");
}

#[test]
fn http_proxy_is_used_for_remote_hosts() {
    let e = env();
    e.srv.put("/via-proxy", b"proxied body");
    let config = ClientConfig {
        http_proxy: Some(e.srv.base_url()),
        ..quick_config()
    };
    let dir = tempfile::tempdir().unwrap();
    let fetcher = Fetcher::new(
        config,
        Cache::open(dir.path()).unwrap(),
        report::silent(),
        false,
    )
    .unwrap();
    // The name does not resolve: only the proxy can answer.
    let body = fetcher
        .fetch_bytes("http://archive.invalid/via-proxy", 100)
        .unwrap();
    assert_eq!(body, b"proxied body");
    assert_eq!(e.srv.requests("/via-proxy"), 1);
    for proxy in ["socks5://proxy:1080", "gopher://proxy"] {
        let bad = ClientConfig {
            https_proxy: Some(proxy.into()),
            ..quick_config()
        };
        let cache = Cache::open(dir.path()).unwrap();
        assert!(
            Fetcher::new(bad, cache, report::silent(), false).is_err(),
            "{proxy}"
        );
    }
}

fn offline_fetcher(cache_dir: &Path) -> Fetcher {
    Fetcher::new(
        quick_config(),
        Cache::open(cache_dir).unwrap(),
        report::silent(),
        true,
    )
    .unwrap()
}

#[test]
fn an_index_download_reports_its_speed_and_an_offline_read_none() {
    let e = env();
    let body = payload(1 << 20, 5);
    e.srv.put("/dists/x/InRelease", &body);
    let url = e.srv.url("/dists/x/InRelease");
    let (got, speed) = e.fetcher.fetch_index_timed(&url, 2 << 20).unwrap();
    assert!(got == body);
    let speed = speed.expect("downloaded");
    // Loopback: far above the ~13 MB/s at which the .gz index pays off.
    assert!(speed.is_finite() && speed > 1e6, "{speed}");
    e.fetcher.keep_index(&url, &got);
    let offline = offline_fetcher(&e.cache_dir);
    let (kept, speed) = offline.fetch_index_timed(&url, 2 << 20).unwrap();
    assert!(kept == body && speed.is_none());
}

#[test]
fn signed_indexes_are_kept_for_offline_use_and_refreshed_online() {
    let e = env();
    e.srv.put("/dists/x/InRelease", b"first signed copy");
    let url = e.srv.url("/dists/x/InRelease");
    let first = e.fetcher.fetch_index(&url, 100).unwrap();
    assert_eq!(first, b"first signed copy");
    e.fetcher.keep_index(&url, &first);
    // Online, every run asks the mirror again; the caller keeps what it
    // verified.
    e.srv.put("/dists/x/InRelease", b"second signed copy");
    let second = e.fetcher.fetch_index(&url, 100).unwrap();
    assert_eq!(second, b"second signed copy");
    e.fetcher.keep_index(&url, &second);
    assert_eq!(e.srv.requests("/dists/x/InRelease"), 2);
    // A download that failed verification is never kept, so the last good
    // copy survives it.
    e.srv.put("/dists/x/InRelease", b"tampered copy");
    e.fetcher.fetch_index(&url, 100).unwrap();

    let offline = offline_fetcher(&e.cache_dir);
    assert_eq!(
        offline.fetch_index(&url, 100).unwrap(),
        b"second signed copy"
    );
    assert_eq!(
        e.srv.requests("/dists/x/InRelease"),
        3,
        "offline: no request"
    );
    // The limit still applies to the kept copy.
    assert!(offline.fetch_index(&url, 5).is_err());

    // Nothing kept for this URL: the error names it and says what to do.
    let miss = e.srv.url("/dists/y/InRelease");
    let err = offline.fetch_index(&miss, 100).unwrap_err();
    assert!(matches!(err, FetchError::Offline { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("/dists/y/InRelease") && text.contains("online"),
        "{text}"
    );
    assert_eq!(e.srv.requests("/dists/y/InRelease"), 0);
}

/// A multi-platform build pins its index files: every platform reads the
/// Release the first one fetched, with one request, even if the mirror
/// changes meanwhile; other URLs are still fetched.
#[test]
fn pinned_indexes_are_fetched_once() {
    let mut e = env();
    e.fetcher.pin_indexes();
    e.srv.put("/dists/x/InRelease", b"first signed copy");
    let url = e.srv.url("/dists/x/InRelease");
    let (first, speed) = e.fetcher.fetch_index_timed(&url, 100).unwrap();
    assert_eq!(first, b"first signed copy");
    e.srv.put("/dists/x/InRelease", b"second signed copy");
    let (again, speed_again) = e.fetcher.fetch_index_timed(&url, 100).unwrap();
    assert_eq!(again, b"first signed copy");
    assert_eq!(
        speed_again, speed,
        "the first download's speed, for the choices it drives"
    );
    assert_eq!(e.srv.requests("/dists/x/InRelease"), 1);
    e.srv.put("/dists/y/InRelease", b"other");
    let other = e.fetcher.fetch_index(&e.srv.url("/dists/y/InRelease"), 100);
    assert_eq!(other.unwrap(), b"other");
}

#[test]
fn unverified_downloads_are_not_kept_as_indexes() {
    let e = env();
    e.srv.put("/add-url", b"payload");
    let url = e.srv.url("/add-url");
    assert_eq!(e.fetcher.fetch_bytes(&url, 100).unwrap(), b"payload");
    assert_eq!(e.fetcher.fetch_index(&url, 100).unwrap(), b"payload");
    let offline = offline_fetcher(&e.cache_dir);
    assert!(matches!(
        offline.fetch_index(&url, 100).unwrap_err(),
        FetchError::Offline { .. }
    ));
}

#[test]
fn offline_still_reads_file_urls() {
    let e = env();
    let dir = tempfile::tempdir().unwrap();
    let data = payload(3_000, 4);
    std::fs::write(dir.path().join("pkg.deb"), &data).unwrap();
    std::fs::write(dir.path().join("InRelease"), b"local index").unwrap();
    let url = |name: &str| {
        url::Url::from_file_path(dir.path().join(name))
            .unwrap()
            .to_string()
    };
    let offline = offline_fetcher(&e.cache_dir);
    assert_eq!(
        offline.fetch_index(&url("InRelease"), 100).unwrap(),
        b"local index"
    );
    assert_eq!(
        offline.fetch_bytes(&url("InRelease"), 100).unwrap(),
        b"local index"
    );
    let path = offline
        .fetch_verified(&url("pkg.deb"), 3_000, &digest(&data))
        .unwrap();
    assert_eq!(std::fs::read(path).unwrap(), data);
    let key = Sha256Digest([5; 32]);
    assert!(offline.fetch_sized(&url("pkg.deb"), 3_000, &key).is_ok());
    // Still offline for the network.
    assert!(matches!(
        offline.fetch_bytes(&e.srv.url("/x"), 10).unwrap_err(),
        FetchError::Offline { .. }
    ));
}

#[test]
fn a_file_mirror_path_cannot_escape_the_mirror_directory() {
    let top = tempfile::tempdir().unwrap();
    let mirror = top.path().join("mirror");
    std::fs::create_dir_all(mirror.join("pool")).unwrap();
    std::fs::write(top.path().join("secret.deb"), b"outside the mirror").unwrap();
    let base = url::Url::from_directory_path(&mirror).unwrap().to_string();
    for hostile in [
        "../secret.deb",
        "pool/../../secret.deb",
        "pool/%2e%2e/%2e%2e/secret.deb",
        "pool/..%2f..%2fsecret.deb",
    ] {
        let err = rootstrap::fetch::join_mirror(&base, hostile).unwrap_err();
        assert!(
            matches!(err, FetchError::UnsafePath { .. }) && err.to_string().contains(hostile),
            "{hostile}: {err}"
        );
    }
    assert!(rootstrap::fetch::join_mirror(&base, "pool/ok.deb").is_ok());
}
