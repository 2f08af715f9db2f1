//! `rootstrap pull` and `rootstrap push` against a hostile registry
//! (HOSTILE.md, issue 17 item 5):
//! a small HTTP server in the test, on loopback only, speaks enough of the
//! OCI distribution API to serve a real image and then lie about it. "Another
//! host" is another loopback address (127.0.0.2), which is another origin.
//! Every case must fail with a clear error and leave nothing at the output
//! path, or (redirected blobs) succeed without the credentials leaving the
//! registry's host.

use crate::common;

use std::collections::HashMap;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use rootstrap::image::oci::{self, Descriptor, History, ImageConfig, Index, Platform};
use rootstrap::image::registry::{self, PushOptions};
use rootstrap::image::{
    ImageBuilder, ImageReference, LayerCompression, LayerOptions, Output, Sha256Digest,
};

use common::run::{self, text};

const EPOCH: i64 = 1_700_000_000;
const USER: &str = "alice";
const PASSWORD: &str = "s3cret-registry-password";

/// What the server answers.
enum Reply {
    Full {
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    },
    /// Headers at once, then the body one byte per `pause` (slow loris).
    TrickleBody { body: Vec<u8>, pause: Duration },
    /// The status line and headers one byte per `pause`.
    TrickleHeaders { pause: Duration },
}

impl Reply {
    fn ok(media_type: &str, body: Vec<u8>) -> Reply {
        Reply::Full {
            status: 200,
            headers: vec![("Content-Type".into(), media_type.into())],
            body,
        }
    }
    fn status(status: u16, headers: &[(&str, &str)]) -> Reply {
        Reply::Full {
            status,
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            body: Vec::new(),
        }
    }
}

/// A request as the handler sees it: path and lower-cased headers.
#[derive(Debug, Clone)]
struct Request {
    path: String,
    headers: HashMap<String, String>,
}

type Handler = dyn Fn(&Request) -> Reply + Send + Sync;

/// One listening address; every request is logged. Threads end with the
/// test process (the listener is never dropped while the test runs).
struct Server {
    addr: SocketAddr,
    log: Arc<Mutex<Vec<Request>>>,
}

impl Server {
    fn start(ip: &str, handler: Arc<Handler>) -> Server {
        let listener = TcpListener::bind((ip, 0)).expect("bind loopback");
        let addr = listener.local_addr().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let thread_log = Arc::clone(&log);
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let handler = Arc::clone(&handler);
                let log = Arc::clone(&thread_log);
                std::thread::spawn(move || serve(conn, &*handler, &log));
            }
        });
        Server { addr, log }
    }

    fn host(&self) -> String {
        self.addr.to_string()
    }

    fn requests(&self) -> Vec<Request> {
        self.log.lock().unwrap().clone()
    }
}

fn serve(conn: TcpStream, handler: &Handler, log: &Mutex<Vec<Request>>) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(30)));
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return;
    }
    let path = line.split_whitespace().nth(1).unwrap_or("/").to_owned();
    let mut headers = HashMap::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
        }
    }
    let request = Request { path, headers };
    log.lock().unwrap().push(request.clone());
    let mut out = conn;
    match handler(&request) {
        Reply::Full {
            status,
            headers,
            body,
        } => {
            let mut head = format!("HTTP/1.1 {status} X\r\nConnection: close\r\n");
            for (k, v) in headers {
                head.push_str(&format!("{k}: {v}\r\n"));
            }
            head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
            let _ = out.write_all(head.as_bytes());
            let _ = out.write_all(&body);
        }
        Reply::TrickleBody { body, pause } => {
            let head = format!(
                "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Type: {}\r\nContent-Length: {}\r\n\r\n",
                oci::MEDIA_TYPE_MANIFEST,
                body.len()
            );
            let _ = out.write_all(head.as_bytes());
            for b in body {
                if out.write_all(&[b]).is_err() {
                    return;
                }
                std::thread::sleep(pause);
            }
        }
        Reply::TrickleHeaders { pause } => {
            for b in b"HTTP/1.1 200 OK\r\nX-Slow: "
                .iter()
                .chain(b"a".repeat(10_000).iter())
            {
                if out.write_all(&[*b]).is_err() {
                    return;
                }
                std::thread::sleep(pause);
            }
        }
    }
}

/// A real two-layer image as a map of blobs plus its manifest bytes.
struct Image {
    manifest: Vec<u8>,
    manifest_digest: Sha256Digest,
    blobs: HashMap<String, Vec<u8>>,
    layer_digests: Vec<String>,
    /// The image as an OCI layout (what a push reads).
    layout: PathBuf,
    _dir: tempfile::TempDir,
}

fn make_image() -> Image {
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("tree");
    fs::create_dir_all(tree.join("etc")).unwrap();
    fs::write(tree.join("etc/marker"), "hostile").unwrap();
    let mut config = ImageConfig::new("amd64", "linux");
    config.created = Some(oci::format_timestamp(EPOCH));
    let mut b = ImageBuilder::new_in(dir.path(), config, LayerCompression::Gzip).unwrap();
    let opts = LayerOptions {
        source_date_epoch: Some(EPOCH),
        exclude: Vec::new(),
    };
    let history = History {
        created: Some(oci::format_timestamp(EPOCH)),
        created_by: Some("base".into()),
        ..History::default()
    };
    b.add_layer_from_dir(&tree, &opts, history).unwrap();
    let out = Output::OciDir(dir.path().join("oci"));
    let written = b
        .write(&out, Some(&ImageReference::parse("test/image:1").unwrap()))
        .unwrap();
    let blob_dir = dir.path().join("oci/blobs/sha256");
    let mut blobs = HashMap::new();
    for e in fs::read_dir(&blob_dir).unwrap() {
        let e = e.unwrap();
        let name = format!("sha256:{}", e.file_name().to_string_lossy());
        blobs.insert(name, fs::read(e.path()).unwrap());
    }
    let manifest = blobs[&written.manifest_digest.to_string()].clone();
    let parsed: oci::Manifest = serde_json::from_slice(&manifest).unwrap();
    Image {
        manifest,
        manifest_digest: written.manifest_digest,
        blobs,
        layer_digests: parsed.layers.iter().map(|l| l.digest.clone()).collect(),
        layout: dir.path().join("oci"),
        _dir: dir,
    }
}

/// A registry that serves `image` as `repo:1`, with `override_` consulted
/// first for every request.
fn registry(
    image: Arc<Image>,
    override_: impl Fn(&Request) -> Option<Reply> + Send + Sync + 'static,
) -> Server {
    let handler = move |r: &Request| -> Reply {
        if let Some(reply) = override_(r) {
            return reply;
        }
        if r.path == "/v2/" {
            return Reply::status(200, &[]);
        }
        if let Some(reference) = r.path.strip_prefix("/v2/repo/manifests/") {
            if reference == "1" || reference == image.manifest_digest.to_string() {
                return Reply::ok(oci::MEDIA_TYPE_MANIFEST, image.manifest.clone());
            }
        }
        if let Some(digest) = r.path.strip_prefix("/v2/repo/blobs/") {
            if let Some(b) = image.blobs.get(digest) {
                return Reply::ok("application/octet-stream", b.clone());
            }
        }
        Reply::status(404, &[])
    };
    Server::start("127.0.0.1", Arc::new(handler))
}

/// A temporary directory for the pull's output, and where it goes.
struct Target {
    dir: tempfile::TempDir,
}

impl Target {
    fn new() -> Target {
        Target {
            dir: tempfile::tempdir().unwrap(),
        }
    }
    fn dest(&self) -> PathBuf {
        self.dir.path().join("pulled")
    }
    /// Nothing at the output path and no staging directory beside it.
    fn assert_empty(&self) {
        let left: Vec<_> = fs::read_dir(self.dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert!(left.is_empty(), "partial output left behind: {left:?}");
    }
}

/// `rootstrap pull HOST/repo:1 --output oci:DEST` with `docker_config` as
/// the credentials store (`None`: none at all).
fn pull(host: &str, target: &Target, docker_config: Option<&Path>) -> (bool, String) {
    let out = run::rootstrap()
        .args([
            "pull",
            &format!("{host}/repo:1"),
            "--output",
            &format!("oci:{}", target.dest().display()),
        ])
        .env(
            "DOCKER_CONFIG",
            docker_config.unwrap_or(Path::new("/nonexistent-rootstrap-test")),
        )
        .output()
        .unwrap();
    (out.status.success(), text(&out.stderr))
}

/// A `DOCKER_CONFIG` directory holding credentials for `host`.
fn docker_config_for(host: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"));
    fs::write(
        dir.path().join("config.json"),
        format!(r#"{{"auths":{{"{host}":{{"auth":"{auth}"}}}}}}"#),
    )
    .unwrap();
    dir
}

fn basic() -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"))
    )
}

fn carries_secret(r: &Request) -> bool {
    r.headers.contains_key("authorization")
        || r.path.contains(PASSWORD)
        || r.path.contains(&basic()[6..])
}

#[test]
fn a_blob_with_the_wrong_digest_is_refused() {
    let image = Arc::new(make_image());
    let layer = image.layer_digests[0].clone();
    let mut bad = image.blobs[&layer].clone();
    let last = bad.len() - 1;
    bad[last] ^= 0xff; // same size, other bytes
    let server = registry(Arc::clone(&image), move |r| {
        (r.path == format!("/v2/repo/blobs/{layer}"))
            .then(|| Reply::ok("application/octet-stream", bad.clone()))
    });
    let target = Target::new();
    let (ok, err) = pull(&server.host(), &target, None);
    assert!(!ok);
    assert!(
        err.contains(&format!(
            "blob {}: the registry served content whose digest is",
            image.layer_digests[0]
        )),
        "{err}"
    );
    target.assert_empty();
}

#[test]
fn an_oversize_manifest_is_refused() {
    let image = Arc::new(make_image());
    let server = registry(Arc::clone(&image), |r| {
        (r.path == "/v2/repo/manifests/1").then(|| {
            let mut huge = b"{\"schemaVersion\":2,\"pad\":\"".to_vec();
            huge.resize(5 << 20, b'a');
            huge.extend_from_slice(b"\"}");
            Reply::ok(oci::MEDIA_TYPE_MANIFEST, huge)
        })
    });
    let target = Target::new();
    let (ok, err) = pull(&server.host(), &target, None);
    assert!(!ok);
    assert!(err.contains("manifest larger than"), "{err}");
    target.assert_empty();
}

fn index_of(digest: &Sha256Digest, media_type: &str, size: usize) -> Vec<u8> {
    let mut d = Descriptor::new(media_type, *digest, size as u64);
    d.platform = Some(Platform {
        architecture: oci::oci_arch(std::env::consts::ARCH).0.into(),
        os: "linux".into(),
        variant: None,
    });
    serde_json::to_vec(&Index {
        schema_version: 2,
        media_type: Some(oci::MEDIA_TYPE_INDEX.into()),
        manifests: vec![d],
        annotations: Default::default(),
    })
    .unwrap()
}

#[test]
fn an_index_naming_an_index_is_not_followed() {
    let image = Arc::new(make_image());
    // tag → outer index → inner index → the image: a chain a registry could
    // make as long as it likes; one level of index is all a pull follows.
    let inner = index_of(
        &image.manifest_digest,
        oci::MEDIA_TYPE_MANIFEST,
        image.manifest.len(),
    );
    let inner_digest = Sha256Digest::of(&inner);
    let outer = index_of(&inner_digest, oci::MEDIA_TYPE_INDEX, inner.len());
    let server = registry(Arc::clone(&image), move |r| {
        if r.path == "/v2/repo/manifests/1" {
            return Some(Reply::ok(oci::MEDIA_TYPE_INDEX, outer.clone()));
        }
        (r.path == format!("/v2/repo/manifests/{inner_digest}"))
            .then(|| Reply::ok(oci::MEDIA_TYPE_INDEX, inner.clone()))
    });
    let target = Target::new();
    let (ok, err) = pull(&server.host(), &target, None);
    assert!(!ok);
    assert!(err.contains("nested indexes are not followed"), "{err}");
    target.assert_empty();
    // A registry that answers a digest with other bytes (how a loop would
    // have to be made) is caught by the digest check.
    let liar = registry(Arc::clone(&image), {
        let image = Arc::clone(&image);
        move |r| {
            let own = index_of(&image.manifest_digest, oci::MEDIA_TYPE_INDEX, 1);
            (r.path.starts_with("/v2/repo/manifests/"))
                .then(|| Reply::ok(oci::MEDIA_TYPE_INDEX, own))
        }
    });
    let (ok, err) = pull(&liar.host(), &target, None);
    assert!(!ok);
    assert!(
        err.contains("the registry served content whose digest is"),
        "{err}"
    );
    target.assert_empty();
}

/// The registry wants Basic credentials on every /v2/ request.
fn needs_basic(r: &Request) -> Option<Reply> {
    (r.headers.get("authorization") != Some(&basic()))
        .then(|| Reply::status(401, &[("WWW-Authenticate", "Basic realm=\"test\"")]))
}

#[test]
fn a_redirect_to_another_host_never_carries_the_credentials() {
    let image = Arc::new(make_image());
    // Blob storage on another host, as registries redirect to object stores.
    let storage = {
        let image = Arc::clone(&image);
        Server::start(
            "127.0.0.2",
            Arc::new(move |r: &Request| {
                let digest = r.path.trim_start_matches('/');
                match image.blobs.get(digest) {
                    Some(b) => Reply::ok("application/octet-stream", b.clone()),
                    None => Reply::status(404, &[]),
                }
            }),
        )
    };
    let storage_host = storage.host();
    let server = registry(Arc::clone(&image), move |r| {
        if let Some(reply) = needs_basic(r) {
            return Some(reply);
        }
        let digest = r.path.strip_prefix("/v2/repo/blobs/")?;
        let location = format!("http://{storage_host}/{digest}");
        Some(Reply::status(307, &[("Location", location.as_str())]))
    });
    let config = docker_config_for(&server.host());
    let target = Target::new();
    let (ok, err) = pull(&server.host(), &target, Some(config.path()));
    assert!(ok, "{err}");
    assert!(
        server.requests().iter().any(carries_secret),
        "the registry itself should have had the credentials"
    );
    let fetched = storage.requests();
    assert_eq!(fetched.len(), image.blobs.len() - 1, "{fetched:?}");
    let leaked: Vec<_> = fetched.iter().filter(|r| carries_secret(r)).collect();
    assert!(
        leaked.is_empty(),
        "credentials sent to another host: {leaked:?}"
    );
}

#[test]
fn a_token_realm_on_another_host_gets_no_credentials_over_http() {
    let image = Arc::new(make_image());
    let token_server = Server::start(
        "127.0.0.2",
        Arc::new(|_: &Request| Reply::ok("application/json", br#"{"token":"anon"}"#.to_vec())),
    );
    let realm = format!("http://{}/token", token_server.host());
    let server = registry(Arc::clone(&image), move |r| {
        (r.headers.get("authorization").map(String::as_str) != Some("Bearer anon")).then(|| {
            let challenge = format!("Bearer realm=\"{realm}\",service=\"test\"");
            Reply::status(401, &[("WWW-Authenticate", challenge.as_str())])
        })
    });
    // With credentials: refused before anything is sent to the realm.
    let config = docker_config_for(&server.host());
    let target = Target::new();
    let (ok, err) = pull(&server.host(), &target, Some(config.path()));
    assert!(!ok);
    assert!(
        err.contains("another host") && err.contains("refusing to send the credentials"),
        "{err}"
    );
    assert!(token_server.requests().is_empty());
    target.assert_empty();
    // Without: an anonymous token from the other host is harmless.
    let (ok, err) = pull(&server.host(), &target, None);
    assert!(ok, "{err}");
    assert!(token_server.requests().iter().all(|r| !carries_secret(r)));
}

/// Slow-loris responses, through the library with a short request time (the
/// binary's is 300 s plus 1 s per 16 KiB of blob).
#[test]
fn slow_loris_responses_time_out() {
    let image = Arc::new(make_image());
    for slow_headers in [false, true] {
        let manifest = image.manifest.clone();
        let server = registry(Arc::clone(&image), move |r| {
            (r.path == "/v2/repo/manifests/1").then(|| {
                let pause = Duration::from_millis(200);
                if slow_headers {
                    Reply::TrickleHeaders { pause }
                } else {
                    Reply::TrickleBody {
                        body: manifest.clone(),
                        pause,
                    }
                }
            })
        });
        let target = Target::new();
        let reference = ImageReference::parse(&format!("{}/repo:1", server.host())).unwrap();
        let opts = PushOptions {
            request_time: Some(Duration::from_secs(2)),
            ..PushOptions::default()
        };
        let started = Instant::now();
        let result = registry::pull(
            &reference,
            ("amd64", "linux"),
            &opts,
            &target.dest(),
            &rootstrap::report::Silent,
        );
        let err = result
            .expect_err("a trickled response must not be waited for")
            .to_string();
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "took {:?}",
            started.elapsed()
        );
        assert!(
            err.contains("timed out") || err.contains("timeout"),
            "{err}"
        );
        target.assert_empty();
    }
}

// ------------------------------------------------------------------ push

use common::push_registry::{self, Action, PushRegistry};

/// `rootstrap push oci:LAYOUT HOST/repo:1`, with the credentials on stdin
/// when `with_password`; (success, stdout, stderr).
fn push(image: &Image, host: &str, with_password: bool) -> (bool, String, String) {
    let mut cmd = run::rootstrap();
    cmd.args(["push", &format!("oci:{}", image.layout.display())])
        .arg(format!("{host}/repo:1"))
        .env("DOCKER_CONFIG", "/nonexistent-rootstrap-test")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    if with_password {
        cmd.args(["--username", USER, "--password-stdin"]);
    }
    let mut child = cmd.spawn().unwrap();
    {
        let mut stdin = child.stdin.take().unwrap();
        let _ = stdin.write_all(format!("{PASSWORD}\n").as_bytes());
    }
    let out = child.wait_with_output().unwrap();
    (out.status.success(), text(&out.stdout), text(&out.stderr))
}

/// A failed push: non-zero, no pushed name on stdout, `needle` in the
/// error, and no manifest under the tag.
fn assert_push_refused(result: (bool, String, String), registry: &PushRegistry, needle: &str) {
    let (ok, stdout, stderr) = result;
    assert!(!ok, "the push succeeded:\n{stdout}{stderr}");
    assert!(
        !stdout.contains("sha256:"),
        "a failed push reported a digest: {stdout}"
    );
    assert!(stderr.contains(needle), "{needle:?} not in:\n{stderr}");
    assert!(
        registry.manifest("1").is_none(),
        "the tag was pushed although a blob failed"
    );
}

fn is_blob_put(r: &push_registry::Request) -> bool {
    r.method == "PUT" && r.path().contains("/blobs/uploads/")
}

#[test]
fn a_push_the_registry_stores_under_another_digest_fails() {
    let image = make_image();
    let wrong = format!("sha256:{}", "0".repeat(64));
    for header in ["Docker-Content-Digest", "Location"] {
        let value = match header {
            "Location" => format!("/v2/repo/blobs/{wrong}"),
            _ => wrong.clone(),
        };
        let registry = PushRegistry::start("127.0.0.1", move |r| {
            if is_blob_put(r) {
                Action::NormalWithHeaders(vec![(header.to_owned(), value.clone())])
            } else {
                Action::Normal
            }
        });
        assert_push_refused(push(&image, &registry.host(), false), &registry, &wrong);
    }
    // The manifest stored under another digest (the check that was there).
    let registry = PushRegistry::start("127.0.0.1", move |r| {
        if r.method == "PUT" && r.path().contains("/manifests/") {
            Action::NormalWithHeaders(vec![("Docker-Content-Digest".into(), wrong.clone())])
        } else {
            Action::Normal
        }
    });
    let (ok, stdout, stderr) = push(&image, &registry.host(), false);
    assert!(!ok, "the push succeeded:\n{stdout}{stderr}");
    assert!(
        stderr.contains("registry stored the manifest as"),
        "{stderr}"
    );
}

/// An upload session on another host (a storage backend) is followed, but
/// the credentials stay with the registry; a 5xx part-way through an upload
/// fails the push.
#[test]
fn an_upload_sent_to_another_host_never_carries_the_credentials() {
    let image = make_image();
    let storage = Arc::new(PushRegistry::start("127.0.0.2", |_| Action::Normal));
    let storage_host = storage.host();
    let needs_auth = |r: &push_registry::Request| r.headers.get("authorization") != Some(&basic());
    let registry = PushRegistry::start("127.0.0.1", move |r| {
        if needs_auth(r) {
            return Action::Reply(
                401,
                vec![("WWW-Authenticate".into(), "Basic realm=\"test\"".into())],
                Vec::new(),
            );
        }
        if r.method == "POST" {
            let location = format!("http://{storage_host}/v2/repo/blobs/uploads/elsewhere");
            return Action::Reply(202, vec![("Location".into(), location)], Vec::new());
        }
        Action::Normal
    });
    let (ok, stdout, stderr) = push(&image, &registry.host(), true);
    assert!(ok, "{stdout}{stderr}");
    let uploads = storage.requests();
    assert!(
        uploads.iter().any(is_blob_put),
        "the blobs did not go to the storage host: {uploads:?}"
    );
    for r in &uploads {
        assert!(
            !r.headers.contains_key("authorization") && !r.target.contains(PASSWORD),
            "credentials sent to another host: {r:?}"
        );
    }
    assert!(registry.manifest("1").is_some());
}

#[test]
fn a_server_error_part_way_through_an_upload_fails_the_push() {
    let image = make_image();
    let registry = PushRegistry::start("127.0.0.1", |r| {
        if is_blob_put(r) {
            Action::FailAfter {
                bytes: 16,
                status: 500,
            }
        } else {
            Action::Normal
        }
    });
    assert_push_refused(push(&image, &registry.host(), false), &registry, "500");
}

/// A registry that takes the upload and never answers: the push gives up
/// at its deadline (short here, through the library; the binary's is 300 s
/// plus 1 s per 16 KiB) and reports no success.
#[test]
fn a_stalled_upload_times_out() {
    let image = make_image();
    for stalled in ["POST", "PUT"] {
        let registry = PushRegistry::start("127.0.0.1", move |r| {
            if r.method == stalled {
                Action::Stall(Duration::from_secs(60))
            } else {
                Action::Normal
            }
        });
        let reference = ImageReference::parse(&format!("{}/repo:1", registry.host())).unwrap();
        let opened = rootstrap::image::OpenedImage::open(
            &rootstrap::image::ImageSource::OciDir(image.layout.clone()),
            None,
        )
        .unwrap();
        let opts = PushOptions {
            request_time: Some(Duration::from_secs(2)),
            ..PushOptions::default()
        };
        let started = Instant::now();
        let err = registry::push(&opened, &reference, &opts, &rootstrap::report::Silent)
            .expect_err("a stalled upload must not be waited for")
            .to_string();
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{stalled}: took {:?}",
            started.elapsed()
        );
        assert!(
            err.contains("timed out") || err.contains("timeout"),
            "{stalled}: {err}"
        );
        assert!(registry.manifest("1").is_none());
    }
}
