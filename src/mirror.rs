//! Choosing the mirror a build fetches from.
//!
//! Order (first that is set wins): `--mirror`, `$ROOTSTRAP_MIRROR`, the
//! recipe's `mirror`, then — for Debian-format recipes only — the host's own
//! apt sources, probing each candidate for the requested suite. Organisations
//! run internal mirrors and proxies; this order lets them point every build
//! at one without editing shipped recipes, and a Debian host "just works"
//! with the mirror it already uses.

use std::path::Path;

use crate::distro::deb::control;

/// The environment variable consulted after `--mirror`.
pub const MIRROR_ENV: &str = "ROOTSTRAP_MIRROR";

#[derive(Debug, thiserror::Error)]
pub enum MirrorError {
    #[error("invalid mirror URL {0:?}: expected http://, https:// or file:// followed by a host or path")]
    InvalidUrl(String),
    #[error("no mirror for {distro} {suite}: pass --mirror URL or set ${MIRROR_ENV}{tried}")]
    NoneFound {
        distro: String,
        suite: String,
        tried: String,
    },
}

/// Where the chosen mirror came from, for the build log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MirrorOrigin {
    CommandLine,
    Environment,
    Recipe,
    HostAptSources,
}

impl std::fmt::Display for MirrorOrigin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            MirrorOrigin::CommandLine => "--mirror",
            MirrorOrigin::Environment => MIRROR_ENV,
            MirrorOrigin::Recipe => "recipe",
            MirrorOrigin::HostAptSources => "host apt sources",
        })
    }
}

/// Inputs to mirror selection, gathered by the caller so this stays testable.
pub struct MirrorQuery<'a> {
    pub cli: Option<&'a str>,
    pub env: Option<&'a str>,
    pub recipe: Option<&'a str>,
    pub distro: &'a str,
    pub suite: &'a str,
    /// Whether host apt sources may be consulted (Debian-format recipes).
    pub use_host_sources: bool,
}

/// Picks the mirror. `host_candidates` lists the host's apt source URIs in
/// file order; `serves_suite` probes one for `dists/<suite>/InRelease`.
pub fn choose(
    q: &MirrorQuery<'_>,
    host_candidates: &[String],
    serves_suite: &dyn Fn(&str) -> bool,
) -> Result<(String, MirrorOrigin), MirrorError> {
    let explicit = [
        (q.cli, MirrorOrigin::CommandLine),
        (q.env, MirrorOrigin::Environment),
        (q.recipe, MirrorOrigin::Recipe),
    ];
    for (value, origin) in explicit {
        if let Some(url) = value.map(str::trim).filter(|v| !v.is_empty()) {
            return Ok((normalise(url)?, origin));
        }
    }
    let mut tried = Vec::new();
    if q.use_host_sources {
        for uri in host_candidates {
            let Ok(uri) = normalise(uri) else { continue };
            if serves_suite(&uri) {
                return Ok((uri, MirrorOrigin::HostAptSources));
            }
            tried.push(uri);
        }
    }
    Err(MirrorError::NoneFound {
        distro: q.distro.to_owned(),
        suite: q.suite.to_owned(),
        tried: if tried.is_empty() {
            String::new()
        } else {
            format!(
                " (host apt sources tried, none serves it: {})",
                tried.join(", ")
            )
        },
    })
}

/// Validates a mirror URL and drops trailing slashes so paths join cleanly.
pub fn normalise(url: &str) -> Result<String, MirrorError> {
    let trimmed = url.trim().trim_end_matches('/');
    let rest = ["http://", "https://", "file://"]
        .iter()
        .find_map(|scheme| trimmed.strip_prefix(scheme));
    match rest {
        Some(rest)
            if !rest.is_empty()
                && !trimmed.contains(|c: char| c.is_whitespace() || c.is_control()) =>
        {
            Ok(trimmed.to_owned())
        }
        _ => Err(MirrorError::InvalidUrl(url.to_owned())),
    }
}

/// URIs of the host's enabled binary apt sources whose suites include a plain
/// release name (not only `-security`/`-updates` pockets), in the order apt
/// reads them.
pub fn host_apt_sources(etc_apt: &Path) -> Vec<String> {
    let mut files = vec![etc_apt.join("sources.list")];
    if let Ok(dir) = std::fs::read_dir(etc_apt.join("sources.list.d")) {
        let mut extra: Vec<_> = dir
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "list" || e == "sources"))
            .collect();
        extra.sort();
        files.extend(extra);
    }
    let mut uris = Vec::new();
    for file in files {
        let Ok(text) = std::fs::read_to_string(&file) else {
            continue;
        };
        let found = if file.extension().is_some_and(|e| e == "sources") {
            parse_deb822_sources(&text)
        } else {
            parse_one_line_sources(&text)
        };
        for uri in found {
            if !uris.contains(&uri) {
                uris.push(uri);
            }
        }
    }
    uris
}

fn has_release_suite<'a>(mut suites: impl Iterator<Item = &'a str>) -> bool {
    suites.any(|s| !s.contains('-') && !s.contains('/'))
}

/// `deb [options] uri suite component...` lines.
fn parse_one_line_sources(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        let mut words = line.split_whitespace();
        if words.next() != Some("deb") {
            continue;
        }
        let mut rest: Vec<&str> = words.collect();
        if rest.first().is_some_and(|w| w.starts_with('[')) {
            let close = rest.iter().position(|w| w.ends_with(']')).unwrap_or(0);
            rest.drain(..=close);
        }
        if let [uri, suite, ..] = rest.as_slice() {
            if has_release_suite(std::iter::once(*suite)) {
                out.push((*uri).to_owned());
            }
        }
    }
    out
}

/// deb822 `.sources` stanzas (`Types`, `URIs`, `Suites`, `Enabled`).
fn parse_deb822_sources(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for para in control::paragraphs(text).flatten() {
        let types = para.get("Types").unwrap_or("");
        if !types.split_whitespace().any(|t| t == "deb") {
            continue;
        }
        if para
            .get("Enabled")
            .is_some_and(|e| e.trim().eq_ignore_ascii_case("no"))
        {
            continue;
        }
        let suites = para.get("Suites").unwrap_or("");
        if !has_release_suite(suites.split_whitespace()) {
            continue;
        }
        out.extend(
            para.get("URIs")
                .unwrap_or("")
                .split_whitespace()
                .map(str::to_owned),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query<'a>(
        cli: Option<&'a str>,
        env: Option<&'a str>,
        recipe: Option<&'a str>,
    ) -> MirrorQuery<'a> {
        MirrorQuery {
            cli,
            env,
            recipe,
            distro: "debian",
            suite: "trixie",
            use_host_sources: true,
        }
    }

    #[test]
    fn precedence_is_cli_env_recipe_host() {
        let host = vec!["http://host.example/debian".to_owned()];
        let yes = |_: &str| true;
        let pick = |q| choose(&q, &host, &yes).unwrap();
        assert_eq!(
            pick(query(Some("http://a/"), Some("http://b"), Some("http://c"))),
            ("http://a".into(), MirrorOrigin::CommandLine)
        );
        assert_eq!(
            pick(query(None, Some("http://b"), Some("http://c"))).1,
            MirrorOrigin::Environment
        );
        assert_eq!(
            pick(query(None, None, Some("http://c"))).1,
            MirrorOrigin::Recipe
        );
        assert_eq!(
            pick(query(None, None, None)),
            (
                "http://host.example/debian".into(),
                MirrorOrigin::HostAptSources
            )
        );
    }

    #[test]
    fn host_sources_are_probed_and_failures_listed() {
        let host = vec![
            "http://a.example/x".to_owned(),
            "http://b.example/y/".to_owned(),
        ];
        let only_b = |u: &str| u.starts_with("http://b");
        assert_eq!(
            choose(&query(None, None, None), &host, &only_b).unwrap().0,
            "http://b.example/y"
        );
        let err = choose(&query(None, None, None), &host, &|_| false)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("--mirror") && err.contains("http://a.example/x"),
            "{err}"
        );
        let mut q = query(None, None, None);
        q.use_host_sources = false;
        assert!(choose(&q, &host, &|_| true).is_err());
    }

    #[test]
    fn rejects_bad_urls() {
        for bad in ["ftp://x", "http://", "x", "http://a b", "http://a\nb"] {
            assert!(normalise(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            normalise("file:///srv/mirror/").unwrap(),
            "file:///srv/mirror"
        );
    }

    #[test]
    fn reads_both_apt_source_formats() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("sources.list"),
            "# comment\ndeb [arch=amd64 signed-by=/k.gpg] http://one.example/debian bookworm main\ndeb http://sec.example/debian-security bookworm-security main\ndeb-src http://src.example/debian bookworm main\n",
        )
        .unwrap();
        std::fs::create_dir(dir.path().join("sources.list.d")).unwrap();
        std::fs::write(
            dir.path().join("sources.list.d/debian.sources"),
            "Types: deb\nURIs: http://two.example/debian\nSuites: bookworm bookworm-updates\nComponents: main\n\nTypes: deb\nURIs: http://three.example/debian-security\nSuites: bookworm-security\n\nTypes: deb\nURIs: http://off.example/debian\nSuites: trixie\nEnabled: no\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("sources.list.d/x.list.disabled"),
            "deb http://no.example/ x main\n",
        )
        .unwrap();
        assert_eq!(
            host_apt_sources(dir.path()),
            ["http://one.example/debian", "http://two.example/debian"]
        );
    }
}
