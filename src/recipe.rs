//! Recipe files: one TOML document naming a distribution source, the packages
//! to install and the image configuration. Unknown fields are rejected so a
//! typo never silently changes what gets built.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

#[derive(Debug, thiserror::Error)]
pub enum RecipeError {
    #[error("cannot read recipe {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Syntax { path: PathBuf, message: String },
    #[error("{path}: {field}: {message}")]
    Invalid {
        path: PathBuf,
        field: &'static str,
        message: String,
    },
}

/// Which back end builds the rootfs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Distro {
    Debian,
    Ubuntu,
    Alpine,
}

impl Distro {
    pub fn name(self) -> &'static str {
        match self {
            Distro::Debian => "debian",
            Distro::Ubuntu => "ubuntu",
            Distro::Alpine => "alpine",
        }
    }

    pub fn is_deb(self) -> bool {
        matches!(self, Distro::Debian | Distro::Ubuntu)
    }
}

/// debootstrap/mmdebstrap package-set variants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Variant {
    Essential,
    #[default]
    Minbase,
    Buildd,
    Important,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Source {
    pub distro: Distro,
    /// Debian/Ubuntu suite or codename (`trixie`, `noble`).
    pub suite: Option<String>,
    /// Alpine release (`v3.20`, `edge`).
    pub release: Option<String>,
    /// Debian/Ubuntu archive components.
    #[serde(default)]
    pub components: Vec<String>,
    /// Alpine repositories (`main`, `community`).
    #[serde(default)]
    pub repositories: Vec<String>,
    #[serde(default)]
    pub variant: Variant,
    /// Distribution architecture name (`amd64`, `arm64` / `x86_64`, `aarch64`).
    pub arch: String,
    /// Platforms to build into one image index (`linux/amd64`,
    /// `linux/arm64`), in place of `arch`; `--platform` overrides it.
    #[serde(default)]
    pub platforms: Vec<String>,
    /// Optional mirror; `--mirror` and the environment take precedence.
    pub mirror: Option<String>,
    /// Debian only: build from the snapshot archive at this UTC time
    /// (`20250101T000000Z`). The mirror setting then names the snapshot
    /// service root, and Valid-Until is not checked for this source.
    pub snapshot: Option<String>,
    /// Trust anchors: paths relative to the recipe's directory, or names of
    /// keys shipped with rootstrap (`debian/debian-archive-trixie-stable.pgp`).
    pub keys: Vec<String>,
    /// Debian/Ubuntu: leave out documentation, man and info pages and
    /// translations, as the official `-slim` images do (a dpkg
    /// `path-exclude` configuration that stays in the image).
    #[serde(default)]
    pub slim: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Packages {
    /// Extra packages, optionally pinned as `name=version`.
    #[serde(default)]
    pub install: Vec<String>,
    /// Alpine only: the base world in place of the minirootfs set
    /// (`alpine-baselayout alpine-keys apk-tools busybox libc-utils`), for
    /// releases whose official minirootfs carries another one.
    pub base: Option<Vec<String>>,
}

/// Image configuration, mirroring the OCI config fields users set in a
/// Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ImageSpec {
    /// Default reference for `-t` (`myorg/debian:13`).
    pub name: Option<String>,
    pub cmd: Option<Vec<String>>,
    pub entrypoint: Option<Vec<String>>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    pub workdir: Option<String>,
    pub user: Option<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub exposed_ports: Vec<String>,
    #[serde(default)]
    pub volumes: Vec<String>,
    pub stop_signal: Option<String>,
    /// Layer compression (`gzip`, `zstd`, `none`); `--compression` wins.
    pub compression: Option<crate::image::LayerCompression>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recipe {
    pub source: Source,
    #[serde(default)]
    pub packages: Packages,
    #[serde(default)]
    pub image: ImageSpec,
    /// Follow-on Dockerfile steps applied on top of the base image.
    #[serde(default)]
    pub build: Option<BuildSection>,
    /// The file the recipe was read from; key paths resolve against its directory.
    #[serde(skip)]
    pub path: PathBuf,
}

/// `[build]`: a FROM-less Dockerfile run on top of the recipe's image.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct BuildSection {
    /// Path relative to the recipe's directory.
    pub dockerfile: Option<String>,
    /// Build context, relative to the recipe's directory (default: the
    /// Dockerfile's directory).
    pub context: Option<String>,
}

/// A package request from `[packages] install`: a name and an optional pin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackageRequest {
    pub name: String,
    pub version: Option<String>,
}

impl Recipe {
    pub fn load(path: &Path) -> Result<Recipe, RecipeError> {
        let text = std::fs::read_to_string(path).map_err(|source| RecipeError::Read {
            path: path.to_owned(),
            source,
        })?;
        Recipe::parse(&text, path)
    }

    /// Parses and validates recipe text; `path` is used for messages and to
    /// resolve relative key paths.
    pub fn parse(text: &str, path: &Path) -> Result<Recipe, RecipeError> {
        let mut recipe: Recipe = toml::from_str(text).map_err(|e| RecipeError::Syntax {
            path: path.to_owned(),
            message: e.to_string().trim_end().to_owned(),
        })?;
        recipe.path = path.to_owned();
        recipe.validate()?;
        Ok(recipe)
    }

    fn invalid(&self, field: &'static str, message: impl Into<String>) -> RecipeError {
        RecipeError::Invalid {
            path: self.path.clone(),
            field,
            message: message.into(),
        }
    }

    fn validate(&self) -> Result<(), RecipeError> {
        let src = &self.source;
        if src.slim && !src.distro.is_deb() {
            return Err(self.invalid(
                "source.slim",
                "only for Debian and Ubuntu (dpkg's path-exclude)",
            ));
        }
        if src.distro.is_deb() {
            match &src.suite {
                Some(s) if is_plain_name(s) => {}
                Some(s) => return Err(self.invalid("source.suite", format!("invalid suite {s:?}"))),
                None => return Err(self.invalid("source.suite", "required for Debian and Ubuntu")),
            }
            if src.release.is_some() {
                return Err(self.invalid("source.release", "only for Alpine; use `suite`"));
            }
            if !src.repositories.is_empty() {
                return Err(
                    self.invalid("source.repositories", "only for Alpine; use `components`")
                );
            }
            if src.components.is_empty() {
                return Err(self.invalid("source.components", "at least one component is required"));
            }
        } else {
            match &src.release {
                Some(r) if is_plain_name(r) => {}
                Some(r) => {
                    return Err(self.invalid("source.release", format!("invalid release {r:?}")))
                }
                None => {
                    return Err(
                        self.invalid("source.release", "required for Alpine (e.g. \"v3.20\")")
                    )
                }
            }
            if src.suite.is_some() || !src.components.is_empty() {
                return Err(self.invalid(
                    "source.suite",
                    "Alpine recipes use `release` and `repositories`",
                ));
            }
            if src.repositories.is_empty() {
                return Err(
                    self.invalid("source.repositories", "at least one repository is required")
                );
            }
        }
        for c in &src.components {
            if !is_plain_name(c) {
                return Err(self.invalid("source.components", format!("invalid name {c:?}")));
            }
        }
        if self.packages.base.is_some() && src.distro.is_deb() {
            return Err(self.invalid("packages.base", "only for Alpine"));
        }
        if let Some(ts) = &src.snapshot {
            if src.distro != Distro::Debian {
                return Err(self.invalid(
                    "source.snapshot",
                    "only Debian's snapshot archive layout is supported",
                ));
            }
            crate::distro::mirror::check_snapshot(ts)
                .map_err(|e| self.invalid("source.snapshot", e.to_string()))?;
        }
        let mut repo_tags = Vec::new();
        for r in &src.repositories {
            match crate::distro::apk::bootstrap::parse_repository(r) {
                Some(spec) => repo_tags.extend(spec.tag),
                None => {
                    return Err(self.invalid(
                        "source.repositories",
                        format!(
                            "invalid repository {r:?} (want a name like \"main\", \
                             \"@tag release/repo\" or \"@tag https://…\")"
                        ),
                    ))
                }
            }
        }
        if !is_plain_name(&src.arch) {
            return Err(self.invalid(
                "source.arch",
                format!("invalid architecture {:?}", src.arch),
            ));
        }
        for p in &src.platforms {
            crate::distro::platform::Platform::parse(p)
                .map_err(|e| self.invalid("source.platforms", e.to_string()))?;
        }
        if src.keys.is_empty() {
            return Err(self.invalid("source.keys", "at least one trusted key is required"));
        }
        for req in &self.packages.install {
            let parsed = parse_package_request(req);
            // Alpine: `name@tag` asks for a package of the repository tagged `tag`.
            let (name, tag) = match parsed.name.split_once('@') {
                Some((n, t)) if !src.distro.is_deb() => (n, Some(t)),
                _ => (parsed.name.as_str(), None),
            };
            if let Some(t) = tag {
                if !repo_tags.iter().any(|r| r == t) {
                    return Err(self.invalid(
                        "packages.install",
                        format!("{req:?}: no repository is tagged @{t}"),
                    ));
                }
            }
            if name.is_empty() || !is_package_name(name) {
                return Err(self.invalid(
                    "packages.install",
                    format!("invalid package name in {req:?}"),
                ));
            }
            if parsed.version.as_deref() == Some("") {
                return Err(
                    self.invalid("packages.install", format!("empty version pin in {req:?}"))
                );
            }
        }
        for k in self.image.env.keys() {
            if k.is_empty() || k.contains(['=', '\0']) {
                return Err(self.invalid("image.env", format!("invalid variable name {k:?}")));
            }
        }
        for p in &self.image.exposed_ports {
            if !is_port_spec(p) {
                return Err(self.invalid(
                    "image.exposed_ports",
                    format!("invalid port {p:?} (want PORT[/tcp|/udp|/sctp])"),
                ));
            }
        }
        Ok(())
    }

    pub fn package_requests(&self) -> Vec<PackageRequest> {
        self.packages
            .install
            .iter()
            .map(|s| parse_package_request(s))
            .collect()
    }

    /// The suite (Debian/Ubuntu) or release (Alpine).
    pub fn release_name(&self) -> &str {
        self.source
            .suite
            .as_deref()
            .or(self.source.release.as_deref())
            .unwrap_or_default()
    }

    /// Directory the recipe was read from.
    pub fn dir(&self) -> &Path {
        self.path.parent().unwrap_or_else(|| Path::new("."))
    }
}

/// Recipes shipped with rootstrap, embedded so `rootstrap build debian-trixie`
/// works from any directory.
pub static SHIPPED: &[(&str, &str)] = &[
    ("alpine-3.20", include_str!("../recipes/alpine-3.20.toml")),
    ("alpine-3.21", include_str!("../recipes/alpine-3.21.toml")),
    ("alpine-3.22", include_str!("../recipes/alpine-3.22.toml")),
    (
        "alpine-3.22-aarch64",
        include_str!("../recipes/alpine-3.22-aarch64.toml"),
    ),
    ("alpine-edge", include_str!("../recipes/alpine-edge.toml")),
    (
        "debian-bookworm",
        include_str!("../recipes/debian-bookworm.toml"),
    ),
    (
        "debian-trixie",
        include_str!("../recipes/debian-trixie.toml"),
    ),
    ("ubuntu-noble", include_str!("../recipes/ubuntu-noble.toml")),
];

/// Loads a recipe given as a file path or as the name of a shipped recipe.
/// An existing file always wins over a shipped name.
pub fn find(spec: &str) -> Result<Recipe, RecipeError> {
    let path = Path::new(spec);
    if path.exists() || spec.contains('/') || spec.ends_with(".toml") {
        return Recipe::load(path);
    }
    match SHIPPED.iter().find(|(name, _)| *name == spec) {
        Some((name, text)) => {
            Recipe::parse(text, &Path::new("recipes").join(format!("{name}.toml")))
        }
        None => Err(RecipeError::Read {
            path: path.to_owned(),
            source: std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!(
                    "no such file, and not a shipped recipe (shipped: {})",
                    SHIPPED
                        .iter()
                        .map(|(n, _)| *n)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ),
        }),
    }
}

fn parse_package_request(s: &str) -> PackageRequest {
    match s.split_once('=') {
        Some((n, v)) => PackageRequest {
            name: n.trim().to_owned(),
            version: Some(v.trim().to_owned()),
        },
        None => PackageRequest {
            name: s.trim().to_owned(),
            version: None,
        },
    }
}

/// Names that end up in URLs and paths: no separators, no traversal.
fn is_plain_name(s: &str) -> bool {
    !s.is_empty()
        && s != "."
        && s != ".."
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '+'))
}

fn is_package_name(s: &str) -> bool {
    s.chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '+' | ':'))
}

fn is_port_spec(s: &str) -> bool {
    let (port, proto) = s.split_once('/').unwrap_or((s, "tcp"));
    matches!(proto, "tcp" | "udp" | "sctp") && port.parse::<u16>().is_ok_and(|p| p > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEBIAN: &str = r#"
[source]
distro = "debian"
suite = "trixie"
components = ["main"]
variant = "minbase"
arch = "amd64"
keys = ["debian/debian-archive-trixie-stable.pgp"]

[packages]
install = ["ca-certificates", "hello=2.10-3"]

[image]
cmd = ["/bin/bash"]
env = { LANG = "C.UTF-8" }
exposed_ports = ["8080/tcp", "53/udp"]
"#;

    fn parse(text: &str) -> Result<Recipe, RecipeError> {
        Recipe::parse(text, Path::new("recipes/x.toml"))
    }

    #[test]
    fn parses_a_debian_recipe() {
        let r = parse(DEBIAN).unwrap();
        assert_eq!(r.source.distro, Distro::Debian);
        assert_eq!(r.release_name(), "trixie");
        assert_eq!(r.source.variant, Variant::Minbase);
        assert_eq!(
            r.package_requests()[1],
            PackageRequest {
                name: "hello".into(),
                version: Some("2.10-3".into())
            }
        );
        assert_eq!(r.dir(), Path::new("recipes"));
    }

    #[test]
    fn snapshot_is_validated_strictly_and_debian_only() {
        let with = |ts: &str| {
            DEBIAN.replace(
                "arch = \"amd64\"",
                &format!("arch = \"amd64\"\nsnapshot = \"{ts}\""),
            )
        };
        let r = parse(&with("20250101T000000Z")).unwrap();
        assert_eq!(r.source.snapshot.as_deref(), Some("20250101T000000Z"));
        assert_eq!(parse(DEBIAN).unwrap().source.snapshot, None);
        for bad in [
            "2025-01-01",
            "20250101T000000Z/../x",
            "20251340T000000Z",
            "",
        ] {
            let err = parse(&with(bad)).unwrap_err().to_string();
            assert!(err.contains("source.snapshot"), "{bad:?}: {err}");
        }
        let ubuntu = with("20250101T000000Z").replace("distro = \"debian\"", "distro = \"ubuntu\"");
        let err = parse(&ubuntu).unwrap_err().to_string();
        assert!(
            err.contains("source.snapshot") && err.contains("Debian"),
            "{err}"
        );
    }

    #[test]
    fn parses_the_build_section() {
        assert_eq!(parse(DEBIAN).unwrap().build, None);
        let text = format!("{DEBIAN}\n[build]\ndockerfile = \"Dockerfile\"\n");
        let build = parse(&text).unwrap().build.unwrap();
        assert_eq!(build.dockerfile.as_deref(), Some("Dockerfile"));
        assert_eq!(build.context, None);
        let bad = format!("{DEBIAN}\n[build]\ndockerfil = \"x\"\n");
        assert!(parse(&bad).unwrap_err().to_string().contains("dockerfil"));
    }

    #[test]
    fn rejects_unknown_fields_naming_them() {
        let text = DEBIAN.replace("variant = \"minbase\"", "varient = \"minbase\"");
        let err = parse(&text).unwrap_err().to_string();
        assert!(err.contains("varient"), "{err}");
        assert!(err.contains("recipes/x.toml"), "{err}");
    }

    #[test]
    fn rejects_bad_values() {
        for (from, to, needle) in [
            ("suite = \"trixie\"", "suite = \"../x\"", "source.suite"),
            ("arch = \"amd64\"", "arch = \"amd64/../x\"", "source.arch"),
            ("\"hello=2.10-3\"", "\"hello=\"", "packages.install"),
            ("\"53/udp\"", "\"53/icmp\"", "image.exposed_ports"),
            (
                "keys = [\"debian/debian-archive-trixie-stable.pgp\"]",
                "keys = []",
                "source.keys",
            ),
            (
                "components = [\"main\"]",
                "components = []",
                "source.components",
            ),
            ("variant = \"minbase\"", "variant = \"tiny\"", "variant"),
        ] {
            let err = parse(&DEBIAN.replace(from, to)).unwrap_err().to_string();
            assert!(err.contains(needle), "{to}: {err}");
        }
    }

    #[test]
    fn alpine_needs_release_and_repositories() {
        let ok = r#"
[source]
distro = "alpine"
release = "v3.20"
repositories = ["main", "community"]
arch = "x86_64"
keys = ["alpine"]
"#;
        assert_eq!(parse(ok).unwrap().release_name(), "v3.20");
        let err = parse(&ok.replace("release = \"v3.20\"", "suite = \"v3.20\"")).unwrap_err();
        assert!(err.to_string().contains("release"), "{err}");
    }

    #[test]
    fn alpine_tagged_repositories_and_pinned_requests() {
        let base = r#"
[source]
distro = "alpine"
release = "v3.20"
repositories = ["main", "@edge edge/main", "@testing https://mirror.invalid/alpine/edge/testing"]
arch = "x86_64"
keys = ["alpine"]

[packages]
install = ["curl@edge", "foo@testing=1.0-r0", "bar"]
"#;
        let r = parse(base).unwrap();
        let reqs = r.package_requests();
        assert_eq!(reqs[0].name, "curl@edge");
        assert_eq!(
            (reqs[1].name.as_str(), reqs[1].version.as_deref()),
            ("foo@testing", Some("1.0-r0"))
        );
        let err = parse(&base.replace("curl@edge", "curl@nope")).unwrap_err();
        assert!(
            err.to_string().contains("no repository is tagged @nope"),
            "{err}"
        );
        let err = parse(&base.replace("@edge edge/main", "@edge ../main")).unwrap_err();
        assert!(err.to_string().contains("invalid repository"), "{err}");
    }

    #[test]
    fn shipped_recipes_parse() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("recipes");
        let mut n = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "toml") {
                Recipe::load(&path).unwrap_or_else(|e| panic!("{e}"));
                n += 1;
            }
        }
        assert_eq!(n, SHIPPED.len(), "recipes/ and recipe::SHIPPED disagree");
        for (name, _) in SHIPPED {
            assert_eq!(
                find(name).unwrap().path,
                Path::new("recipes").join(format!("{name}.toml"))
            );
        }
        let err = find("no-such-recipe").unwrap_err().to_string();
        assert!(err.contains("debian-trixie"), "{err}");
    }
}
