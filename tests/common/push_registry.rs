//! A registry on 127.0.0.1 that takes pushes, for the push-side fault
//! tests: enough of the OCI distribution API (`HEAD`/`GET` blobs and
//! manifests, `POST` + `PUT ?digest=` uploads, `PUT` manifests) to accept a
//! real push, with a hook consulted first for every request so a test can
//! make it lie, redirect, fail mid-upload or stall.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sha2::{Digest, Sha256};

/// A request as the hook sees it (the body not yet read).
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    /// Path and query, as sent.
    pub target: String,
    /// Lower-cased header names.
    pub headers: HashMap<String, String>,
}

impl Request {
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("/")
    }

    pub fn query(&self, key: &str) -> Option<String> {
        let query = self.target.split_once('?')?.1;
        query.split('&').find_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            (k == key).then(|| v.replace("%3A", ":").replace("%3a", ":"))
        })
    }
}

/// What the hook makes of a request.
pub enum Action {
    /// Let the registry answer as a registry does.
    Normal,
    /// Read the body, then answer this (status, headers, body).
    Reply(u16, Vec<(String, String)>, Vec<u8>),
    /// Read `bytes` of the body (a part of an upload), then answer `status`
    /// and close.
    FailAfter { bytes: u64, status: u16 },
    /// Read nothing more and answer nothing for this long, then close.
    Stall(Duration),
    /// Do the normal thing, but answer with these headers replaced.
    NormalWithHeaders(Vec<(String, String)>),
}

type Hook = dyn Fn(&Request) -> Action + Send + Sync;

#[derive(Default)]
struct Store {
    blobs: HashMap<String, Vec<u8>>,
    manifests: HashMap<String, (String, Vec<u8>)>,
    log: Vec<Request>,
}

/// The registry; serves until the test process ends.
pub struct PushRegistry {
    addr: SocketAddr,
    store: Arc<Mutex<Store>>,
}

impl PushRegistry {
    /// A registry on `ip` (a loopback address) consulting `hook` first.
    pub fn start(ip: &str, hook: impl Fn(&Request) -> Action + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind((ip, 0)).expect("bind loopback");
        let addr = listener.local_addr().unwrap();
        let store = Arc::new(Mutex::new(Store::default()));
        let hook: Arc<Hook> = Arc::new(hook);
        let thread_store = Arc::clone(&store);
        std::thread::spawn(move || {
            let uploads = Arc::new(AtomicU64::new(0));
            for conn in listener.incoming().flatten() {
                let (hook, store, uploads) = (
                    Arc::clone(&hook),
                    Arc::clone(&thread_store),
                    Arc::clone(&uploads),
                );
                std::thread::spawn(move || {
                    let _ = serve(conn, &*hook, &store, &uploads);
                });
            }
        });
        PushRegistry { addr, store }
    }

    /// `127.0.0.1:PORT`.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// Every request so far, in order.
    pub fn requests(&self) -> Vec<Request> {
        self.store.lock().unwrap().log.clone()
    }

    /// The manifest stored under `reference` (a tag or a digest).
    pub fn manifest(&self, reference: &str) -> Option<Vec<u8>> {
        let store = self.store.lock().unwrap();
        store.manifests.get(reference).map(|(_, b)| b.clone())
    }

    pub fn blob_count(&self) -> usize {
        self.store.lock().unwrap().blobs.len()
    }
}

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

fn serve(
    conn: TcpStream,
    hook: &Hook,
    store: &Mutex<Store>,
    uploads: &AtomicU64,
) -> std::io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(60)))?;
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut words = line.split_whitespace();
    let method = words.next().unwrap_or("").to_owned();
    let target = words.next().unwrap_or("/").to_owned();
    let mut headers = HashMap::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 || h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
        }
    }
    let request = Request {
        method,
        target,
        headers,
    };
    store.lock().unwrap().log.push(request.clone());
    let length: u64 = request
        .headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut out = conn;
    let (status, headers, body) = match hook(&request) {
        Action::Stall(d) => {
            std::thread::sleep(d);
            return Ok(());
        }
        Action::FailAfter { bytes, status } => {
            let mut part = Vec::new();
            (&mut reader)
                .take(bytes.min(length))
                .read_to_end(&mut part)?;
            (status, Vec::new(), b"upload failed".to_vec())
        }
        Action::Reply(status, headers, body) => {
            let mut sink = Vec::new();
            (&mut reader).take(length).read_to_end(&mut sink)?;
            (status, headers, body)
        }
        Action::Normal => {
            let mut body = Vec::new();
            (&mut reader).take(length).read_to_end(&mut body)?;
            normal(&request, body, store, uploads)
        }
        Action::NormalWithHeaders(replaced) => {
            let mut body = Vec::new();
            (&mut reader).take(length).read_to_end(&mut body)?;
            let (status, mut headers, body) = normal(&request, body, store, uploads);
            for (k, v) in replaced {
                headers.retain(|(h, _)| !h.eq_ignore_ascii_case(&k));
                headers.push((k, v));
            }
            (status, headers, body)
        }
    };
    let mut head = format!("HTTP/1.1 {status} X\r\nConnection: close\r\n");
    for (k, v) in &headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    out.write_all(head.as_bytes())?;
    if request.method != "HEAD" {
        out.write_all(&body)?;
    }
    out.flush()?;
    let _ = out.shutdown(std::net::Shutdown::Both);
    Ok(())
}

type Answer = (u16, Vec<(String, String)>, Vec<u8>);

/// A registry's answer: uploads start with a Location, finish with
/// `?digest=` (checked), manifests are stored under their tag and digest.
fn normal(request: &Request, body: Vec<u8>, store: &Mutex<Store>, uploads: &AtomicU64) -> Answer {
    let path = request.path().to_owned();
    let header = |k: &str, v: String| (k.to_owned(), v);
    let mut store = store.lock().unwrap();
    let Some(rest) = path.strip_prefix("/v2/") else {
        return (404, Vec::new(), Vec::new());
    };
    if rest.is_empty() {
        return (200, Vec::new(), Vec::new());
    }
    let (repo, kind, reference) = match (rest.find("/blobs/"), rest.find("/manifests/")) {
        (Some(i), _) => (&rest[..i], "blobs", &rest[i + 7..]),
        (_, Some(i)) => (&rest[..i], "manifests", &rest[i + 11..]),
        _ => return (404, Vec::new(), Vec::new()),
    };
    match (request.method.as_str(), kind) {
        ("POST", "blobs") if reference.starts_with("uploads") => {
            let n = uploads.fetch_add(1, Ordering::SeqCst);
            (
                202,
                vec![header("Location", format!("/v2/{repo}/blobs/uploads/u{n}"))],
                Vec::new(),
            )
        }
        ("PUT", "blobs") => {
            let Some(digest) = request.query("digest") else {
                return (400, Vec::new(), b"no digest".to_vec());
            };
            if sha256(&body) != digest {
                return (400, Vec::new(), b"DIGEST_INVALID".to_vec());
            }
            store.blobs.insert(digest.clone(), body);
            (
                201,
                vec![
                    header("Location", format!("/v2/{repo}/blobs/{digest}")),
                    header("Docker-Content-Digest", digest),
                ],
                Vec::new(),
            )
        }
        ("HEAD" | "GET", "blobs") => match store.blobs.get(reference) {
            Some(b) => (200, Vec::new(), b.clone()),
            None => (404, Vec::new(), Vec::new()),
        },
        ("PUT", "manifests") => {
            let digest = sha256(&body);
            let media_type = request
                .headers
                .get("content-type")
                .cloned()
                .unwrap_or_default();
            store
                .manifests
                .insert(reference.to_owned(), (media_type.clone(), body.clone()));
            store.manifests.insert(digest.clone(), (media_type, body));
            (
                201,
                vec![
                    header("Location", format!("/v2/{repo}/manifests/{digest}")),
                    header("Docker-Content-Digest", digest),
                ],
                Vec::new(),
            )
        }
        ("HEAD" | "GET", "manifests") => match store.manifests.get(reference) {
            Some((media_type, b)) => (
                200,
                vec![
                    header("Content-Type", media_type.clone()),
                    header("Docker-Content-Digest", sha256(b)),
                ],
                b.clone(),
            ),
            None => (404, Vec::new(), Vec::new()),
        },
        _ => (405, Vec::new(), Vec::new()),
    }
}
