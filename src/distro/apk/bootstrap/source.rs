//! Stage 1: what to install and from where: the recipe's repositories as
//! `/etc/apk/repositories` lines, and the world.

use super::*;

/// Where and what to install.
#[derive(Debug, Clone)]
pub struct ApkSource {
    /// Mirror root, e.g. `https://mirror.example/alpine` (no trailing `/`).
    pub mirror: String,
    /// `v3.20`, `edge`.
    pub release: String,
    /// `main`, `community`.
    pub repositories: Vec<String>,
    /// apk architecture (`x86_64`, `aarch64`).
    pub arch: String,
    /// The base world; `None` is [`DEFAULT_WORLD`].
    pub base: Option<Vec<String>>,
    /// World entries (`name`, `name=version`, `name>=v`) beyond the base.
    pub extra: Vec<String>,
    /// Accept unsigned or untrusted indexes and packages (apk's `--allow-untrusted`).
    pub allow_untrusted: bool,
}

/// One recipe `repositories` entry: `main` (under `<mirror>/<release>/`),
/// or a tagged repository `@edge edge/main` (under `<mirror>/`) or
/// `@edge https://host/alpine/edge/main`. Packages of a tagged repository
/// are installed only when asked for as `name@tag` (or needed by one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoSpec {
    pub tag: Option<String>,
    pub location: RepoLocation,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RepoLocation {
    /// A repository of the recipe's release: `main`.
    Name(String),
    /// A path under the mirror: `edge/main`.
    MirrorPath(String),
    /// A full `http://` or `https://` URL (not changed by `--mirror`).
    Url(String),
}

/// One `/etc/apk/repositories` line: `[@tag ]url`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoLine {
    pub tag: Option<String>,
    pub url: String,
}

impl std::fmt::Display for RepoLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.tag {
            Some(t) => write!(f, "@{t} {}", self.url),
            None => f.write_str(&self.url),
        }
    }
}

fn is_plain_word(s: &str) -> bool {
    !s.is_empty()
        && s != "."
        && s != ".."
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '+'))
}

/// Parses a recipe `repositories` entry; `None` if it is malformed.
pub fn parse_repository(entry: &str) -> Option<RepoSpec> {
    let Some(tagged) = entry.strip_prefix('@') else {
        return is_plain_word(entry).then(|| RepoSpec {
            tag: None,
            location: RepoLocation::Name(entry.to_owned()),
        });
    };
    let (tag, location) = tagged.split_once(' ')?;
    let location = location.trim();
    if !is_plain_word(tag) {
        return None;
    }
    let location = if let Some(rest) = location
        .strip_prefix("https://")
        .or_else(|| location.strip_prefix("http://"))
    {
        let host_ok = !rest.is_empty() && !rest.starts_with('/');
        let clean = !location
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '?' | '#'));
        if !host_ok || !clean {
            return None;
        }
        RepoLocation::Url(location.trim_end_matches('/').to_owned())
    } else {
        let path = location.trim_end_matches('/');
        if !path.split('/').all(is_plain_word) {
            return None;
        }
        RepoLocation::MirrorPath(path.to_owned())
    };
    Some(RepoSpec {
        tag: Some(tag.to_owned()),
        location,
    })
}

impl ApkSource {
    /// Each repository's `[@tag ]url` line, as /etc/apk/repositories lists
    /// them; packages live under `<url>/<arch>/`.
    pub fn repository_lines(&self) -> Result<Vec<RepoLine>, ApkBootstrapError> {
        self.repositories
            .iter()
            .map(|entry| {
                let spec = parse_repository(entry)
                    .ok_or_else(|| ApkBootstrapError::Repository(entry.clone()))?;
                let url = match spec.location {
                    RepoLocation::Name(n) => format!("{}/{}/{n}", self.mirror, self.release),
                    RepoLocation::MirrorPath(p) => format!("{}/{p}", self.mirror),
                    RepoLocation::Url(u) => u,
                };
                Ok(RepoLine { tag: spec.tag, url })
            })
            .collect()
    }

    /// The repositories' URLs (tagged or not).
    pub fn repository_urls(&self) -> Vec<String> {
        self.repository_lines()
            .map(|l| l.into_iter().map(|l| l.url).collect())
            .unwrap_or_default()
    }

    /// The world: the minirootfs set plus the recipe's packages, one entry
    /// per name (a later `name=1.2` or `name@tag` replaces `name`, as
    /// `apk add` does), sorted by name as apk writes /etc/apk/world.
    pub fn world(&self) -> Vec<String> {
        let mut w: BTreeMap<String, String> = BTreeMap::new();
        let base: Vec<&str> = match &self.base {
            Some(b) => b.iter().map(String::as_str).collect(),
            None => DEFAULT_WORLD.to_vec(),
        };
        for entry in base
            .into_iter()
            .chain(self.extra.iter().map(String::as_str))
        {
            let name = entry
                .split(['@', '<', '>', '=', '~'])
                .next()
                .unwrap_or(entry);
            w.insert(name.to_owned(), entry.to_owned());
        }
        w.into_values().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn world_is_sorted_and_deduplicated() {
        let src = ApkSource {
            mirror: "http://m".into(),
            release: "v3.20".into(),
            repositories: vec!["main".into(), "community".into()],
            arch: "x86_64".into(),
            base: None,
            extra: vec![
                "curl".into(),
                "busybox=1.36.1-r0".into(),
                "curl-dev@edge".into(),
            ],
            allow_untrusted: false,
        };
        assert_eq!(
            src.world(),
            [
                "alpine-baselayout",
                "alpine-keys",
                "apk-tools",
                "busybox=1.36.1-r0",
                "curl",
                "curl-dev@edge",
                "libc-utils"
            ]
        );
        assert_eq!(
            src.repository_urls(),
            ["http://m/v3.20/main", "http://m/v3.20/community"]
        );
    }

    #[test]
    fn tagged_repositories_resolve_and_print_like_apk() {
        let src = ApkSource {
            mirror: "http://m".into(),
            release: "v3.20".into(),
            repositories: vec![
                "main".into(),
                "@edge edge/main".into(),
                "@t https://other.example/alpine/edge/testing/".into(),
            ],
            arch: "x86_64".into(),
            base: None,
            extra: vec![],
            allow_untrusted: false,
        };
        let lines: Vec<String> = src
            .repository_lines()
            .unwrap()
            .iter()
            .map(|l| l.to_string())
            .collect();
        assert_eq!(
            lines,
            [
                "http://m/v3.20/main",
                "@edge http://m/edge/main",
                "@t https://other.example/alpine/edge/testing"
            ]
        );
        for bad in [
            "@edge",
            "@ edge/main",
            "@e ../main",
            "@e /abs",
            "@e ftp://x/y",
            "@e https:///x",
            "@e https://h/x y",
            "a/b",
            "@e\tedge/main",
        ] {
            assert_eq!(parse_repository(bad), None, "{bad:?}");
        }
    }
}
