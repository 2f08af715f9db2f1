//! Blocking HTTP(S)/file client: timeouts, bounded retries honouring
//! `Retry-After`, redirects followed by hand under apt's rules, and size
//! limits enforced while the body streams in.

use std::fs::File;
use std::io::{self, Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use url::Url;

use super::FetchError;

/// Tunables; `Default` is what the CLI uses, tests shorten the backoff.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    pub connect_timeout: Duration,
    /// Longest silence while reading before the attempt fails.
    pub read_timeout: Duration,
    /// Retries after the first attempt.
    pub retries: u32,
    /// First backoff; doubles each retry.
    pub backoff: Duration,
    /// Cap on a server's `Retry-After`, so a hostile value cannot stall us.
    pub max_retry_after: Duration,
    pub max_redirects: u32,
    pub user_agent: String,
    /// Proxy for `http://` URLs (`http://[user:pass@]host:port`).
    pub http_proxy: Option<String>,
    /// Proxy for `https://` URLs (tunnelled with CONNECT).
    pub https_proxy: Option<String>,
    /// Hosts (or domain suffixes; `*` for all) reached without a proxy.
    /// Loopback is always direct.
    pub no_proxy: Vec<String>,
}

impl ClientConfig {
    /// Fills the proxy settings from `http_proxy`, `https_proxy` and
    /// `no_proxy` (lower case first, then upper case), as curl and apt do.
    pub fn with_env_proxies(mut self) -> Self {
        let var = |name: &str| {
            std::env::var(name)
                .or_else(|_| std::env::var(name.to_ascii_uppercase()))
                .ok()
                .filter(|v| !v.trim().is_empty())
        };
        self.http_proxy = var("http_proxy");
        self.https_proxy = var("https_proxy");
        self.no_proxy = var("no_proxy")
            .map(|v| {
                v.split(',')
                    .map(|h| h.trim().to_string())
                    .filter(|h| !h.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        self
    }

    fn bypasses_proxy(&self, url: &Url) -> bool {
        let Some(host) = url.host_str() else {
            return true;
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host == "localhost"
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
        {
            return true;
        }
        self.no_proxy.iter().any(|entry| {
            let entry = entry.trim_start_matches('.');
            entry == "*"
                || host.eq_ignore_ascii_case(entry)
                || host
                    .to_ascii_lowercase()
                    .ends_with(&format!(".{}", entry.to_ascii_lowercase()))
        })
    }
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            connect_timeout: Duration::from_secs(15),
            read_timeout: Duration::from_secs(60),
            retries: 3,
            backoff: Duration::from_secs(1),
            max_retry_after: Duration::from_secs(120),
            max_redirects: 10,
            user_agent: concat!("rootstrap/", env!("CARGO_PKG_VERSION")).to_string(),
            http_proxy: None,
            https_proxy: None,
            no_proxy: Vec::new(),
        }
    }
}

/// Where downloaded bytes go; must be able to start over for a retry.
pub trait Sink {
    fn reset(&mut self) -> io::Result<()>;
    fn write_chunk(&mut self, chunk: &[u8]) -> io::Result<()>;
}

impl Sink for Vec<u8> {
    fn reset(&mut self) -> io::Result<()> {
        self.clear();
        Ok(())
    }

    fn write_chunk(&mut self, chunk: &[u8]) -> io::Result<()> {
        self.extend_from_slice(chunk);
        Ok(())
    }
}

impl Sink for super::cache::BlobWriter {
    fn reset(&mut self) -> io::Result<()> {
        super::cache::BlobWriter::reset(self)
    }

    fn write_chunk(&mut self, chunk: &[u8]) -> io::Result<()> {
        self.write_all(chunk)
    }
}

/// Outcome of one attempt that did not succeed.
enum Failure {
    /// Worth trying again (after `after`, if the server said so).
    Retry {
        error: FetchError,
        after: Option<Duration>,
    },
    Fatal(FetchError),
}

/// Cheap to clone: the agents share their connection pools.
#[derive(Clone)]
pub struct Client {
    direct: ureq::Agent,
    http_proxied: Option<ureq::Agent>,
    https_proxied: Option<ureq::Agent>,
    config: ClientConfig,
}

impl Client {
    /// Fails only on an unusable proxy setting.
    pub fn new(config: ClientConfig) -> Result<Client, FetchError> {
        let builder = || {
            ureq::AgentBuilder::new()
                .timeout_connect(config.connect_timeout)
                .timeout_read(config.read_timeout)
                .redirects(0)
                .user_agent(&config.user_agent)
        };
        let proxied = |proxy: &Option<String>| -> Result<Option<ureq::Agent>, FetchError> {
            let Some(proxy) = proxy else {
                return Ok(None);
            };
            if proxy.contains("://") && !proxy.starts_with("http://") {
                return Err(FetchError::InvalidUrl {
                    url: redact(proxy),
                    reason: "only http:// proxies are supported".into(),
                });
            }
            let parsed = ureq::Proxy::new(proxy).map_err(|e| FetchError::InvalidUrl {
                url: redact(proxy),
                reason: format!("bad proxy: {}", redact(&e.to_string())),
            })?;
            Ok(Some(builder().proxy(parsed).build()))
        };
        Ok(Client {
            direct: builder().build(),
            http_proxied: proxied(&config.http_proxy)?,
            https_proxied: proxied(&config.https_proxy)?,
            config,
        })
    }

    fn agent_for(&self, url: &Url) -> &ureq::Agent {
        let proxied = match url.scheme() {
            "http" => self.http_proxied.as_ref(),
            "https" => self.https_proxied.as_ref(),
            _ => None,
        };
        match proxied {
            Some(agent) if !self.config.bypasses_proxy(url) => agent,
            _ => &self.direct,
        }
    }

    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// Downloads `url` into `sink`, refusing more than `limit` bytes.
    /// `progress` gets the size of each chunk; `cancel` aborts between
    /// chunks. Returns the number of bytes written.
    pub fn get(
        &self,
        url: &str,
        limit: u64,
        sink: &mut dyn Sink,
        progress: &dyn Fn(u64),
        cancel: &AtomicBool,
    ) -> Result<u64, FetchError> {
        let parsed = parse_url(url)?;
        if parsed.scheme() == "file" {
            return read_file_url(&parsed, url, limit, sink, progress, cancel);
        }
        let mut attempt = 0;
        loop {
            sink.reset().map_err(|e| FetchError::Sink {
                url: redact(url),
                source: e,
            })?;
            match self.attempt(parsed.clone(), limit, sink, progress, cancel) {
                Ok(n) => return Ok(n),
                Err(Failure::Fatal(e)) => return Err(e),
                Err(Failure::Retry { error, after }) => {
                    if attempt >= self.config.retries || cancel.load(Ordering::Relaxed) {
                        return Err(error);
                    }
                    let backoff = self.config.backoff * 2u32.saturating_pow(attempt);
                    let wait = after
                        .map(|a| a.min(self.config.max_retry_after))
                        .unwrap_or(backoff);
                    std::thread::sleep(wait);
                    attempt += 1;
                }
            }
        }
    }

    fn attempt(
        &self,
        start: Url,
        limit: u64,
        sink: &mut dyn Sink,
        progress: &dyn Fn(u64),
        cancel: &AtomicBool,
    ) -> Result<u64, Failure> {
        let mut current = start;
        let mut redirects = 0;
        loop {
            let shown = redact(current.as_str());
            let response = match self
                .agent_for(&current)
                .request_url("GET", &current)
                .set("Accept-Encoding", "identity")
                .call()
            {
                Ok(r) => r,
                Err(ureq::Error::Status(status, r)) => {
                    return Err(status_failure(&shown, status, &r))
                }
                Err(ureq::Error::Transport(t)) => return Err(transport_failure(&shown, &t)),
            };
            let status = response.status();
            if (300..400).contains(&status) {
                redirects += 1;
                if redirects > self.config.max_redirects {
                    return Err(Failure::Fatal(FetchError::Redirect {
                        url: shown,
                        reason: format!("more than {} redirects", self.config.max_redirects),
                    }));
                }
                let location = response.header("location").ok_or_else(|| {
                    Failure::Fatal(FetchError::Redirect {
                        url: shown.clone(),
                        reason: format!("HTTP {status} without a usable Location header"),
                    })
                })?;
                current = resolve_redirect(&current, location).map_err(Failure::Fatal)?;
                continue;
            }
            if status != 200 {
                // We never send Range, so 206 or other 2xx are not a full body.
                return Err(Failure::Fatal(FetchError::Http { url: shown, status }));
            }
            return read_body(response, &shown, limit, sink, progress, cancel);
        }
    }
}

fn parse_url(url: &str) -> Result<Url, FetchError> {
    let parsed = Url::parse(url).map_err(|e| FetchError::InvalidUrl {
        url: redact(url),
        reason: e.to_string(),
    })?;
    match parsed.scheme() {
        "http" | "https" | "file" => Ok(parsed),
        other => Err(FetchError::InvalidUrl {
            url: redact(url),
            reason: format!("unsupported scheme {other:?}"),
        }),
    }
}

fn read_body(
    response: ureq::Response,
    url: &str,
    limit: u64,
    sink: &mut dyn Sink,
    progress: &dyn Fn(u64),
    cancel: &AtomicBool,
) -> Result<u64, Failure> {
    let declared = match response.header("content-length") {
        None => None,
        Some(v) => Some(v.trim().parse::<u64>().map_err(|_| {
            Failure::Fatal(FetchError::BadHeader {
                url: url.to_string(),
                header: format!("Content-Length: {v}"),
            })
        })?),
    };
    if let Some(len) = declared {
        if len > limit {
            return Err(Failure::Fatal(FetchError::TooLarge {
                url: url.to_string(),
                limit,
                got: len,
            }));
        }
    }
    let mut reader = response.into_reader();
    let total = copy_limited(&mut reader, url, limit, sink, progress, cancel).map_err(|e| {
        match e {
            // Network trouble mid-body (reset, timeout, early close): retry.
            CopyError::Read(source) => Failure::Retry {
                error: FetchError::Transport {
                    url: url.to_string(),
                    message: format!("body read failed: {source}"),
                },
                after: None,
            },
            CopyError::Fatal(e) => Failure::Fatal(e),
        }
    })?;
    if let Some(len) = declared {
        if total < len {
            return Err(Failure::Retry {
                error: FetchError::Truncated {
                    url: url.to_string(),
                    expected: len,
                    got: total,
                },
                after: None,
            });
        }
    }
    Ok(total)
}

enum CopyError {
    Read(io::Error),
    Fatal(FetchError),
}

fn copy_limited(
    reader: &mut dyn Read,
    url: &str,
    limit: u64,
    sink: &mut dyn Sink,
    progress: &dyn Fn(u64),
    cancel: &AtomicBool,
) -> Result<u64, CopyError> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut total: u64 = 0;
    loop {
        if cancel.load(Ordering::Relaxed) {
            return Err(CopyError::Fatal(FetchError::Cancelled {
                url: url.to_string(),
            }));
        }
        let n = match reader.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(CopyError::Read(e)),
        };
        total += n as u64;
        if total > limit {
            return Err(CopyError::Fatal(FetchError::TooLarge {
                url: url.to_string(),
                limit,
                got: total,
            }));
        }
        sink.write_chunk(&buf[..n]).map_err(|source| {
            CopyError::Fatal(FetchError::Sink {
                url: url.to_string(),
                source,
            })
        })?;
        progress(n as u64);
    }
}

fn read_file_url(
    parsed: &Url,
    url: &str,
    limit: u64,
    sink: &mut dyn Sink,
    progress: &dyn Fn(u64),
    cancel: &AtomicBool,
) -> Result<u64, FetchError> {
    let path = parsed.to_file_path().map_err(|()| FetchError::InvalidUrl {
        url: redact(url),
        reason: "not a local file path".into(),
    })?;
    let not_found = |source: io::Error| FetchError::File {
        url: redact(url),
        source,
    };
    let file = File::open(&path).map_err(not_found)?;
    let meta = file.metadata().map_err(not_found)?;
    if !meta.is_file() {
        return Err(FetchError::InvalidUrl {
            url: redact(url),
            reason: "not a regular file".into(),
        });
    }
    if meta.len() > limit {
        return Err(FetchError::TooLarge {
            url: redact(url),
            limit,
            got: meta.len(),
        });
    }
    sink.reset().map_err(|source| FetchError::Sink {
        url: redact(url),
        source,
    })?;
    let mut reader = file;
    copy_limited(&mut reader, &redact(url), limit, sink, progress, cancel).map_err(|e| match e {
        CopyError::Read(source) => FetchError::File {
            url: redact(url),
            source,
        },
        CopyError::Fatal(e) => e,
    })
}

fn status_failure(url: &str, status: u16, response: &ureq::Response) -> Failure {
    let error = FetchError::Http {
        url: url.to_string(),
        status,
    };
    match status {
        429 | 503 => Failure::Retry {
            error,
            after: response.header("retry-after").and_then(parse_retry_after),
        },
        // Not implemented / version unsupported / captive portal (511) will
        // not get better by asking again.
        501 | 505 | 511 => Failure::Fatal(error),
        500..=599 => Failure::Retry { error, after: None },
        _ => Failure::Fatal(error),
    }
}

fn transport_failure(url: &str, t: &ureq::Transport) -> Failure {
    let error = FetchError::Transport {
        url: url.to_string(),
        message: redact(&t.to_string()),
    };
    match t.kind() {
        ureq::ErrorKind::InvalidUrl
        | ureq::ErrorKind::UnknownScheme
        | ureq::ErrorKind::InsecureRequestHttpsOnly
        | ureq::ErrorKind::InvalidProxyUrl => Failure::Fatal(error),
        _ => Failure::Retry { error, after: None },
    }
}

/// `Retry-After` as delta-seconds or an HTTP-date.
fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let delta = when.signed_duration_since(chrono::Utc::now());
    Some(delta.to_std().unwrap_or(Duration::ZERO))
}

/// Resolves a redirect target under apt's rules: no control characters
/// (raw or percent-encoded CR/LF, CVE-2019-3462), no https→http downgrade,
/// only http(s) targets.
pub fn resolve_redirect(current: &Url, location: &str) -> Result<Url, FetchError> {
    let reject = |reason: &str| FetchError::Redirect {
        url: redact(current.as_str()),
        reason: format!("{reason}: {:?}", redact(location)),
    };
    let lower = location.to_ascii_lowercase();
    if location.chars().any(|c| c.is_control()) || lower.contains("%0a") || lower.contains("%0d") {
        return Err(reject("Location contains control characters"));
    }
    let target = current
        .join(location)
        .map_err(|_| reject("invalid Location"))?;
    match (current.scheme(), target.scheme()) {
        ("https", "https") | ("http", "http") | ("http", "https") => {}
        ("https", "http") => return Err(reject("refusing https to http downgrade")),
        _ => return Err(reject("unsupported redirect scheme")),
    }
    let mut target = target;
    if target.host_str() != current.host_str() {
        // Credentials are for the host they were given for.
        let _ = target.set_username("");
        let _ = target.set_password(None);
    }
    Ok(target)
}

/// Hides `user:password@` in a URL (or any text containing one).
pub fn redact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find("://") {
        let (head, tail) = rest.split_at(pos + 3);
        out.push_str(head);
        let authority_end = tail.find(['/', '?', '#', ' ', '"']).unwrap_or(tail.len());
        let authority = &tail[..authority_end];
        match authority.rfind('@') {
            Some(at) => {
                out.push_str("***@");
                out.push_str(&authority[at + 1..]);
            }
            None => out.push_str(authority),
        }
        rest = &tail[authority_end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_credentials() {
        assert_eq!(
            redact("https://user:secret@host.example/path?q=1"),
            "https://***@host.example/path?q=1"
        );
        assert_eq!(redact("http://host/p"), "http://host/p");
        assert_eq!(
            redact("error for http://a:b@x/y and https://c@z"),
            "error for http://***@x/y and https://***@z"
        );
    }

    #[test]
    fn retry_after_forms() {
        assert_eq!(parse_retry_after("3"), Some(Duration::from_secs(3)));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon"), None);
        let in_a_minute = (chrono::Utc::now() + chrono::Duration::seconds(60))
            .format("%a, %d %b %Y %H:%M:%S GMT")
            .to_string();
        let wait = parse_retry_after(&in_a_minute).unwrap();
        assert!(
            wait > Duration::from_secs(55) && wait <= Duration::from_secs(60),
            "{in_a_minute}: {wait:?}"
        );
    }

    #[test]
    fn proxy_bypass_rules() {
        let config = ClientConfig {
            no_proxy: vec![".corp.example".into(), "mirror.local".into()],
            ..ClientConfig::default()
        };
        let bypass = |u: &str| config.bypasses_proxy(&Url::parse(u).unwrap());
        assert!(bypass("http://127.0.0.1:8080/x"));
        assert!(bypass("http://[::1]/x"));
        assert!(bypass("http://localhost/x"));
        assert!(bypass("http://pkgs.corp.example/x"));
        assert!(bypass("http://MIRROR.local/x"));
        assert!(!bypass("http://notcorp.example/x"));
        assert!(!bypass("https://elsewhere.example/x"));
    }

    #[test]
    fn redirect_rules() {
        let https = Url::parse("https://a.example/dists/x/InRelease").unwrap();
        let http = Url::parse("http://a.example/dists/x/InRelease").unwrap();
        assert!(resolve_redirect(&https, "http://b.example/x").is_err());
        assert!(resolve_redirect(&https, "/x%0aSet-Cookie: a").is_err());
        assert!(resolve_redirect(&https, "/x%0D").is_err());
        assert!(resolve_redirect(&https, "/x\r\nA: b").is_err());
        assert!(resolve_redirect(&https, "ftp://b.example/x").is_err());
        assert_eq!(
            resolve_redirect(&https, "../y/InRelease").unwrap().as_str(),
            "https://a.example/dists/y/InRelease"
        );
        assert!(resolve_redirect(&http, "https://b.example/x").is_ok());
        let creds = Url::parse("https://u:p@a.example/x").unwrap();
        let moved = resolve_redirect(&creds, "https://b.example/x").unwrap();
        assert_eq!(moved.as_str(), "https://b.example/x");
    }
}
