//! A tiny threaded HTTP/1.1 server on 127.0.0.1 for integration tests: it
//! serves a directory (plus in-memory overrides) and can inject the faults
//! a mirror or proxy produces. One connection per request (`Connection:
//! close`). Stops when dropped.
//!
//! ```ignore
//! mod common;
//! let srv = common::httpd::TestServer::serve(dir.path());
//! srv.fail_times("/x", 503, 1, Some("1"));
//! let url = srv.url("/x");
//! ```
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// Fault switches for one path.
#[derive(Debug, Clone, Default)]
pub struct Fault {
    /// Answer with this status (and an empty body) ...
    pub status: Option<u16>,
    /// ... only for this many requests, then serve normally (None = always).
    pub status_times: Option<usize>,
    /// `Retry-After` value sent with the status override.
    pub retry_after: Option<String>,
    /// Send only this many body bytes, keeping the real Content-Length.
    pub truncate_after: Option<usize>,
    /// Announce this Content-Length instead of the real one; `"none"`
    /// omits the header (body delimited by connection close).
    pub content_length: Option<String>,
    /// Answer a `Range` request with the full body and 200.
    pub ignore_range: bool,
    /// Redirect (status, raw Location bytes).
    pub redirect: Option<(u16, Vec<u8>)>,
    /// Sleep before answering.
    pub delay: Option<Duration>,
    /// Send the body with `Transfer-Encoding: chunked` (1 KiB chunks);
    /// with `truncate_after`, the stream stops mid-chunk with no final chunk.
    pub chunked: bool,
    /// Send exactly these bytes as the whole response (status line,
    /// headers, body), for hand-crafted hostile responses.
    pub raw_response: Option<Vec<u8>>,
}

#[derive(Default)]
struct State {
    faults: HashMap<String, Fault>,
    bodies: HashMap<String, Vec<u8>>,
    counts: HashMap<String, usize>,
    log: Vec<(String, HashMap<String, String>)>,
}

pub struct TestServer {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    accept_thread: Option<JoinHandle<()>>,
}

impl TestServer {
    /// Serves files under `root` at `http://127.0.0.1:<port>/`.
    pub fn serve(root: &Path) -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let addr = listener.local_addr().expect("local addr");
        let state = Arc::new(Mutex::new(State::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let root = root.to_path_buf();
        let accept_thread = {
            let state = Arc::clone(&state);
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                for conn in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(conn) = conn else { continue };
                    let state = Arc::clone(&state);
                    let root = root.clone();
                    std::thread::spawn(move || {
                        let _ = handle(conn, &root, &state);
                    });
                }
            })
        };
        TestServer {
            addr,
            state,
            stop,
            accept_thread: Some(accept_thread),
        }
    }

    /// Base URL without a trailing slash.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Full URL of `path` (which starts with '/').
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base_url(), path)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn with_fault(&self, path: &str, f: impl FnOnce(&mut Fault)) {
        let mut state = self.state.lock().unwrap();
        f(state.faults.entry(path.to_string()).or_default());
    }

    /// Replaces all fault switches for `path`.
    pub fn set_fault(&self, path: &str, fault: Fault) {
        self.state
            .lock()
            .unwrap()
            .faults
            .insert(path.to_string(), fault);
    }

    pub fn clear_faults(&self, path: &str) {
        self.state.lock().unwrap().faults.remove(path);
    }

    /// Always answer `path` with `status`.
    pub fn set_status(&self, path: &str, status: u16) {
        self.with_fault(path, |f| {
            f.status = Some(status);
            f.status_times = None;
        });
    }

    /// Answer the next `times` requests for `path` with `status` (and
    /// `Retry-After`), then serve normally.
    pub fn fail_times(&self, path: &str, status: u16, times: usize, retry_after: Option<&str>) {
        self.with_fault(path, |f| {
            f.status = Some(status);
            f.status_times = Some(times);
            f.retry_after = retry_after.map(str::to_string);
        });
    }

    pub fn truncate_after(&self, path: &str, bytes: usize) {
        self.with_fault(path, |f| f.truncate_after = Some(bytes));
    }

    pub fn wrong_content_length(&self, path: &str, value: &str) {
        self.with_fault(path, |f| f.content_length = Some(value.to_string()));
    }

    pub fn ignore_range(&self, path: &str) {
        self.with_fault(path, |f| f.ignore_range = true);
    }

    /// Redirect `path` to `location` (sent byte-for-byte, so tests can put
    /// control characters in it) with status 302.
    pub fn redirect(&self, path: &str, location: &[u8]) {
        self.with_fault(path, |f| f.redirect = Some((302, location.to_vec())));
    }

    pub fn chunked(&self, path: &str) {
        self.with_fault(path, |f| f.chunked = true);
    }

    pub fn raw_response(&self, path: &str, response: &[u8]) {
        self.with_fault(path, |f| f.raw_response = Some(response.to_vec()));
    }

    pub fn delay(&self, path: &str, delay: Duration) {
        self.with_fault(path, |f| f.delay = Some(delay));
    }

    /// Serve `body` at `path` instead of a file.
    pub fn put(&self, path: &str, body: &[u8]) {
        self.state
            .lock()
            .unwrap()
            .bodies
            .insert(path.to_string(), body.to_vec());
    }

    /// How many requests reached `path`.
    pub fn requests(&self, path: &str) -> usize {
        self.state
            .lock()
            .unwrap()
            .counts
            .get(path)
            .copied()
            .unwrap_or(0)
    }

    pub fn total_requests(&self) -> usize {
        self.state.lock().unwrap().counts.values().sum()
    }

    /// Request headers (lower-cased names) of every request so far, in order.
    pub fn request_log(&self) -> Vec<(String, HashMap<String, String>)> {
        self.state.lock().unwrap().log.clone()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept().
        let _ = TcpStream::connect(self.addr);
        if let Some(t) = self.accept_thread.take() {
            let _ = t.join();
        }
    }
}

fn handle(stream: TcpStream, root: &Path, state: &Mutex<State>) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let mut headers = HashMap::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            break;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    let mut parts = request_line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let target = parts.next().unwrap_or("/").to_string();
    // A request through a proxy names the absolute URL; serve its path.
    let origin_form = match target.split_once("://") {
        Some((_, rest)) => rest.find('/').map_or("/", |i| &rest[i..]).to_string(),
        None => target.clone(),
    };
    let path = origin_form.split('?').next().unwrap_or("/").to_string();

    let (fault, body) = {
        let mut st = state.lock().unwrap();
        *st.counts.entry(path.clone()).or_default() += 1;
        st.log.push((path.clone(), headers.clone()));
        let fault = st.faults.get(&path).cloned().unwrap_or_default();
        // Consume one use of a limited status override.
        if let (Some(_), Some(left)) = (fault.status, fault.status_times) {
            if let Some(f) = st.faults.get_mut(&path) {
                if left <= 1 {
                    f.status = None;
                    f.status_times = None;
                } else {
                    f.status_times = Some(left - 1);
                }
            }
        }
        (fault, st.bodies.get(&path).cloned())
    };
    let mut out = stream;
    if let Some(d) = fault.delay {
        std::thread::sleep(d);
    }
    if let Some(raw) = &fault.raw_response {
        out.write_all(raw)?;
        out.flush()?;
        let _ = out.shutdown(std::net::Shutdown::Write);
        return Ok(());
    }
    if method != "GET" && method != "HEAD" {
        return respond(&mut out, 405, &[], b"");
    }
    if let Some(status) = fault.status {
        let mut extra = Vec::new();
        if let Some(ra) = &fault.retry_after {
            extra.push(format!("Retry-After: {ra}").into_bytes());
        }
        return respond(&mut out, status, &extra, b"");
    }
    if let Some((status, location)) = &fault.redirect {
        let mut header = b"Location: ".to_vec();
        header.extend_from_slice(location);
        return respond(&mut out, *status, &[header], b"");
    }
    let body = match body.or_else(|| read_file(root, &path)) {
        Some(b) => b,
        None => return respond(&mut out, 404, &[], b"not found"),
    };
    let range_start = headers
        .get("range")
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.strip_suffix('-'))
        .and_then(|n| n.parse::<usize>().ok())
        .filter(|&n| n <= body.len() && !fault.ignore_range);
    let (status, payload) = match range_start {
        Some(start) => (206, &body[start..]),
        None => (200, &body[..]),
    };
    let length = fault
        .content_length
        .clone()
        .unwrap_or_else(|| payload.len().to_string());
    let sent = match fault.truncate_after {
        Some(n) => &payload[..n.min(payload.len())],
        None => payload,
    };
    let reason = reason(status);
    if fault.chunked {
        let head = format!(
            "HTTP/1.1 {status} {reason}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        );
        out.write_all(head.as_bytes())?;
        for chunk in sent.chunks(1024) {
            out.write_all(format!("{:x}\r\n", chunk.len()).as_bytes())?;
            out.write_all(chunk)?;
            out.write_all(b"\r\n")?;
        }
        if fault.truncate_after.is_none() {
            out.write_all(b"0\r\n\r\n")?;
        }
        out.flush()?;
        let _ = out.shutdown(std::net::Shutdown::Write);
        return Ok(());
    }
    let length_header = if length == "none" {
        String::new()
    } else {
        format!("Content-Length: {length}\r\n")
    };
    let head = format!(
        "HTTP/1.1 {status} {reason}\r\n{length_header}Content-Type: application/octet-stream\r\nConnection: close\r\n\r\n"
    );
    out.write_all(head.as_bytes())?;
    if method == "GET" {
        out.write_all(sent)?;
    }
    out.flush()?;
    // Close without waiting for the client to read everything.
    let _ = out.shutdown(std::net::Shutdown::Write);
    Ok(())
}

fn read_file(root: &Path, url_path: &str) -> Option<Vec<u8>> {
    let rel = PathBuf::from(url_path.trim_start_matches('/'));
    if rel.components().any(|c| !matches!(c, Component::Normal(_))) {
        return None;
    }
    let full = root.join(rel);
    if !full.is_file() {
        return None;
    }
    let mut data = Vec::new();
    std::fs::File::open(full)
        .ok()?
        .read_to_end(&mut data)
        .ok()?;
    Some(data)
}

fn respond(
    out: &mut TcpStream,
    status: u16,
    extra_headers: &[Vec<u8>],
    body: &[u8],
) -> std::io::Result<()> {
    let mut head = format!("HTTP/1.1 {status} {}\r\n", reason(status)).into_bytes();
    for h in extra_headers {
        head.extend_from_slice(h);
        head.extend_from_slice(b"\r\n");
    }
    head.extend_from_slice(
        format!(
            "Content-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    );
    out.write_all(&head)?;
    out.write_all(body)?;
    out.flush()?;
    let _ = out.shutdown(std::net::Shutdown::Write);
    Ok(())
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        206 => "Partial Content",
        301 => "Moved Permanently",
        302 => "Found",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        511 => "Network Authentication Required",
        _ => "Status",
    }
}
