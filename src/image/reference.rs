//! Image names as Docker spells them: `[registry[:port]/]path[:tag]`.
//!
//! Grammar from distribution/reference: path components are lowercase
//! alphanumerics joined by `.`, `_`, `__` or runs of `-`; the first component
//! is a registry host when it contains `.` or `:` or is `localhost`; a tag is
//! `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.

use std::fmt;

use super::ImageError;

const DEFAULT_REGISTRY: &str = "docker.io";
const MAX_NAME_LEN: usize = 255;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageReference {
    /// Registry host (with port), if one was written.
    pub registry: Option<String>,
    /// Repository path, e.g. `myorg/debian`.
    pub repository: String,
    pub tag: String,
}

impl ImageReference {
    /// Parse `NAME[:TAG]`; the tag defaults to `latest`.
    pub fn parse(s: &str) -> Result<Self, ImageError> {
        let err = |reason: &str| ImageError::Reference {
            reference: s.to_string(),
            reason: reason.to_string(),
        };
        if s.contains('@') {
            return Err(err("digest references cannot name an image being written"));
        }
        // A colon after the last slash separates the tag; one before it is a port.
        let last_slash = s.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match s[last_slash..].rfind(':') {
            Some(i) => (&s[..last_slash + i], &s[last_slash + i + 1..]),
            None => (s, "latest"),
        };
        if !valid_tag(tag) {
            return Err(err("tag must match [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"));
        }
        if name.is_empty() {
            return Err(err("empty name"));
        }
        if name.len() > MAX_NAME_LEN {
            return Err(err("name longer than 255 characters"));
        }
        let mut parts: Vec<&str> = name.split('/').collect();
        let registry = if parts.len() > 1 && is_registry(parts[0]) {
            let host = parts.remove(0);
            if !valid_registry(host) {
                return Err(err("invalid registry host"));
            }
            Some(host.to_string())
        } else {
            None
        };
        for p in &parts {
            if !valid_path_component(p) {
                return Err(err(
                    "path components must be lowercase letters and digits separated by `.`, `_`, `__` or `-`",
                ));
            }
        }
        Ok(ImageReference {
            registry,
            repository: parts.join("/"),
            tag: tag.to_string(),
        })
    }

    /// What Docker shows and `docker save` writes in RepoTags: `myorg/x:1`,
    /// `registry:5000/x:1`, no `docker.io/library/` prefix.
    pub fn familiar(&self) -> String {
        match &self.registry {
            Some(r) => format!("{r}/{}:{}", self.repository, self.tag),
            None => format!("{}:{}", self.repository, self.tag),
        }
    }

    /// Fully qualified, as containerd stores it: `docker.io/library/alpine:3`.
    pub fn fully_qualified(&self) -> String {
        match &self.registry {
            Some(r) => format!("{r}/{}:{}", self.repository, self.tag),
            None if !self.repository.contains('/') => {
                format!(
                    "{DEFAULT_REGISTRY}/library/{}:{}",
                    self.repository, self.tag
                )
            }
            None => format!("{DEFAULT_REGISTRY}/{}:{}", self.repository, self.tag),
        }
    }
}

impl fmt::Display for ImageReference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.familiar())
    }
}

fn is_registry(first: &str) -> bool {
    first.contains('.')
        || first.contains(':')
        || first == "localhost"
        || first.chars().any(|c| c.is_ascii_uppercase())
}

fn valid_registry(host: &str) -> bool {
    let (h, port) = match host.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (host, None),
    };
    let host_ok = !h.is_empty()
        && h.split('.').all(|label| {
            !label.is_empty()
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        });
    let port_ok =
        port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.chars().all(|c| c.is_ascii_digit()));
    host_ok && port_ok
}

fn valid_tag(tag: &str) -> bool {
    let mut chars = tag.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphanumeric() || c == '_')
        && tag.len() <= 128
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

fn valid_path_component(p: &str) -> bool {
    let b = p.as_bytes();
    let alnum = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        // A separator: `.`, `_`, `__`, or one or more `-`, between alphanumerics.
        let sep_start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &p[sep_start..i];
        if !(sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|c| c == b'-')) {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_references() {
        let r = ImageReference::parse("alpine").unwrap();
        assert_eq!(
            (r.repository.as_str(), r.tag.as_str()),
            ("alpine", "latest")
        );
        assert_eq!(r.fully_qualified(), "docker.io/library/alpine:latest");
        assert_eq!(r.familiar(), "alpine:latest");
        let r = ImageReference::parse("myorg/debian:12").unwrap();
        assert_eq!(r.fully_qualified(), "docker.io/myorg/debian:12");
        let r = ImageReference::parse("localhost:5000/a/b-c__d.e:v1.2_3").unwrap();
        assert_eq!(r.registry.as_deref(), Some("localhost:5000"));
        assert_eq!(r.repository, "a/b-c__d.e");
        assert_eq!(r.familiar(), "localhost:5000/a/b-c__d.e:v1.2_3");
        let r = ImageReference::parse("registry.example.org/x").unwrap();
        assert_eq!(r.registry.as_deref(), Some("registry.example.org"));
    }

    #[test]
    fn invalid_references() {
        for bad in [
            "",
            "UPPER",
            "a//b",
            "a/",
            "-a",
            "a-",
            "a___b",
            "a:",
            "a:-x",
            "a:x/y",
            "a@sha256:00",
            "a b",
            "a..b",
            "host:port/x",
        ] {
            assert!(
                ImageReference::parse(bad).is_err(),
                "{bad:?} should be rejected"
            );
        }
        let long_tag = format!("a:{}", "t".repeat(129));
        assert!(ImageReference::parse(&long_tag).is_err());
    }
}
