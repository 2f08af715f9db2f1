//! Choosing the mirror a build fetches from.
//!
//! Order (first that is set wins): `--mirror`, `$ROOTSTRAP_MIRROR`, the
//! recipe's `mirror`, then — for Debian-format recipes only — the host's own
//! apt sources, probing each candidate for the requested suite. Organisations
//! run internal mirrors and proxies; this order lets them point every build
//! at one without editing shipped recipes, and a Debian host "just works"
//! with the mirror it already uses.
//!
//! A recipe with `snapshot = "YYYYMMDDTHHMMSSZ"` reads the same setting as
//! the root of a snapshot service instead (the host's apt sources are never
//! one), and builds from `<root>/archive/<debian|debian-security>/<timestamp>`,
//! the layout of Debian's snapshot archive.

use std::path::Path;

use crate::distro::deb::control;

/// The environment variable consulted after `--mirror`.
pub const MIRROR_ENV: &str = "ROOTSTRAP_MIRROR";

#[derive(Debug, thiserror::Error)]
pub enum MirrorError {
    #[error("invalid mirror URL {0:?}: expected http://, https:// or file:// followed by a host or path")]
    InvalidUrl(String),
    #[error(
        "invalid snapshot {0:?}: expected a UTC timestamp YYYYMMDDTHHMMSSZ, e.g. 20250101T000000Z"
    )]
    InvalidSnapshot(String),
    #[error("snapshot {timestamp}: no snapshot service: pass --mirror URL (the service root, above archive/), set ${MIRROR_ENV} or the recipe's mirror")]
    NoSnapshotService { timestamp: String },
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

/// Checks a snapshot timestamp strictly: exactly `YYYYMMDDTHHMMSSZ`, a real
/// UTC date and time (it becomes a URL path component, so nothing else may
/// pass).
pub fn check_snapshot(timestamp: &str) -> Result<(), MirrorError> {
    let invalid = || MirrorError::InvalidSnapshot(timestamp.to_owned());
    let b = timestamp.as_bytes();
    let shape_ok = b.len() == 16
        && b[8] == b'T'
        && b[15] == b'Z'
        && b[..8].iter().chain(&b[9..15]).all(u8::is_ascii_digit);
    if !shape_ok {
        return Err(invalid());
    }
    chrono::NaiveDateTime::parse_from_str(&timestamp[..15], "%Y%m%dT%H%M%S")
        .map(|_| ())
        .map_err(|_| invalid())
}

/// The snapshot archive serving `suite`: security updates live in their own.
pub fn snapshot_archive(suite: &str) -> &'static str {
    if suite.ends_with("-security") {
        "debian-security"
    } else {
        "debian"
    }
}

/// `<root>/archive/<archive>/<timestamp>`: the mirror URL of a Debian
/// snapshot, given the service root.
pub fn snapshot_url(root: &str, suite: &str, timestamp: &str) -> Result<String, MirrorError> {
    check_snapshot(timestamp)?;
    Ok(format!(
        "{}/archive/{}/{timestamp}",
        normalise(root)?,
        snapshot_archive(suite)
    ))
}

/// Picks the snapshot service root (`--mirror`, `$ROOTSTRAP_MIRROR`, the
/// recipe's `mirror`; never the host's apt sources) and returns the
/// snapshot's mirror URL.
pub fn choose_snapshot(
    q: &MirrorQuery<'_>,
    timestamp: &str,
) -> Result<(String, MirrorOrigin), MirrorError> {
    check_snapshot(timestamp)?;
    let explicit = MirrorQuery {
        use_host_sources: false,
        ..*q
    };
    let (root, origin) = choose(&explicit, &[], &|_| false).map_err(|e| match e {
        MirrorError::NoneFound { .. } => MirrorError::NoSnapshotService {
            timestamp: timestamp.to_owned(),
        },
        other => other,
    })?;
    Ok((snapshot_url(&root, q.suite, timestamp)?, origin))
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
    fn an_explicit_mirror_is_taken_without_probing_anything() {
        let host = vec!["http://host.example/debian".to_owned()];
        let probed = std::cell::Cell::new(0);
        let probe = |_: &str| {
            probed.set(probed.get() + 1);
            true
        };
        for q in [
            query(Some("file:///srv/mirror"), None, None),
            query(None, Some("http://env.example"), None),
            query(None, None, Some("http://recipe.example")),
        ] {
            choose(&q, &host, &probe).unwrap();
        }
        assert_eq!(probed.get(), 0);
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
    fn snapshot_urls_follow_the_archive_layout() {
        assert_eq!(
            snapshot_url("http://snap.example/", "trixie", "20250101T000000Z").unwrap(),
            "http://snap.example/archive/debian/20250101T000000Z"
        );
        assert_eq!(
            snapshot_url("file:///srv/snap", "trixie-security", "20250101T000000Z").unwrap(),
            "file:///srv/snap/archive/debian-security/20250101T000000Z"
        );
        let mut q = query(None, Some("http://env.example"), None);
        let (url, origin) = choose_snapshot(&q, "20241231T235959Z").unwrap();
        assert_eq!(url, "http://env.example/archive/debian/20241231T235959Z");
        assert_eq!(origin, MirrorOrigin::Environment);
        q.env = None;
        // Host apt sources are never taken for a snapshot service.
        let err = choose_snapshot(&q, "20241231T235959Z").unwrap_err();
        assert!(
            matches!(err, MirrorError::NoSnapshotService { .. }),
            "{err}"
        );
    }

    #[test]
    fn snapshot_timestamps_are_strict() {
        check_snapshot("20250101T000000Z").unwrap();
        check_snapshot("20240229T235959Z").unwrap();
        for bad in [
            "",
            "20250101",
            "20250101T000000",
            "20250101t000000z",
            "2025-01-01T00:00:00Z",
            "20250101T000000Z/",
            "../../../etc/x",
            "20251301T000000Z",
            "20250230T000000Z",
            "20250101T246000Z",
            "+0250101T000000Z",
            "２0250101T000000Z",
        ] {
            assert!(check_snapshot(bad).is_err(), "{bad:?}");
        }
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
