//! Architecture names: each distribution's own, and the OCI platform's
//! (`architecture` and `variant` in an image config). Debian's `armhf` is
//! ARMv7 but Alpine's is ARMv6, so each distribution has its own table.

/// `(distribution arch, OCI architecture, OCI variant)`.
pub type ArchTable = &'static [(&'static str, &'static str, Option<&'static str>)];

pub const DEBIAN: ArchTable = &[
    ("amd64", "amd64", None),
    ("arm64", "arm64", Some("v8")),
    ("armhf", "arm", Some("v7")),
    ("armel", "arm", Some("v5")),
    ("i386", "386", None),
    ("ppc64el", "ppc64le", None),
    ("s390x", "s390x", None),
    ("riscv64", "riscv64", None),
];

pub const ALPINE: ArchTable = &[
    ("x86_64", "amd64", None),
    ("aarch64", "arm64", Some("v8")),
    ("armv7", "arm", Some("v7")),
    ("armhf", "arm", Some("v6")),
    ("x86", "386", None),
    ("ppc64le", "ppc64le", None),
    ("s390x", "s390x", None),
    ("riscv64", "riscv64", None),
];

/// The OCI architecture and variant of a distribution's `arch`; a name the
/// table lacks (`s390x`, `riscv64`) is the same in both.
pub fn oci_platform(table: ArchTable, arch: &str) -> (String, Option<String>) {
    table
        .iter()
        .find(|(name, _, _)| *name == arch)
        .map(|(_, oci, variant)| ((*oci).to_owned(), variant.map(str::to_owned)))
        .unwrap_or_else(|| (arch.to_owned(), None))
}

/// A platform as OCI and `docker --platform` spell it: `linux/arm64`,
/// `linux/arm/v7`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum PlatformError {
    #[error(
        "invalid platform {0:?}: expected OS/ARCH[/VARIANT], e.g. linux/arm64 or linux/arm/v7"
    )]
    Syntax(String),
    #[error("platform {platform}: only linux images can be built")]
    NotLinux { platform: String },
    #[error("platform {platform}: {distro} has no such architecture (it has: {known})")]
    Unknown {
        platform: String,
        distro: &'static str,
        known: String,
    },
}

impl Platform {
    pub fn parse(text: &str) -> Result<Platform, PlatformError> {
        let parts: Vec<&str> = text.trim().split('/').collect();
        let bad = || PlatformError::Syntax(text.to_owned());
        if parts.len() < 2 || parts.len() > 3 || parts.iter().any(|p| p.is_empty()) {
            return Err(bad());
        }
        let lower = |s: &str| s.to_ascii_lowercase();
        let platform = Platform {
            os: lower(parts[0]),
            architecture: lower(parts[1]),
            variant: parts.get(2).map(|v| lower(v)),
        };
        if platform.os != "linux" {
            return Err(PlatformError::NotLinux {
                platform: text.to_owned(),
            });
        }
        Ok(platform)
    }

    /// A comma-separated list (`linux/amd64,linux/arm64`), in order, each
    /// once.
    pub fn parse_list(text: &str) -> Result<Vec<Platform>, PlatformError> {
        let mut out: Vec<Platform> = Vec::new();
        for item in text.split(',').filter(|s| !s.trim().is_empty()) {
            let p = Platform::parse(item)?;
            if !out.contains(&p) {
                out.push(p);
            }
        }
        if out.is_empty() {
            return Err(PlatformError::Syntax(text.to_owned()));
        }
        Ok(out)
    }

    /// The distribution's name for this platform's architecture. A variant
    /// may be left out where the table has one architecture only
    /// (`linux/arm64` is `linux/arm64/v8`); `linux/arm` without a variant
    /// is ARMv7, as Docker takes it.
    pub fn distro_arch(
        &self,
        table: ArchTable,
        distro: &'static str,
    ) -> Result<&'static str, PlatformError> {
        let wanted_variant = match (self.architecture.as_str(), self.variant.as_deref()) {
            ("arm", None) => Some("v7"),
            (_, v) => v,
        };
        table
            .iter()
            .find(|(_, arch, variant)| {
                *arch == self.architecture
                    && (wanted_variant.is_none() || *variant == wanted_variant)
            })
            .map(|(name, _, _)| *name)
            .ok_or_else(|| PlatformError::Unknown {
                platform: self.to_string(),
                distro,
                known: table
                    .iter()
                    .map(|(_, a, v)| match v {
                        Some(v) => format!("linux/{a}/{v}"),
                        None => format!("linux/{a}"),
                    })
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_distribution_names_arm_its_own_way() {
        assert_eq!(oci_platform(DEBIAN, "amd64"), ("amd64".into(), None));
        assert_eq!(
            oci_platform(DEBIAN, "armhf"),
            ("arm".into(), Some("v7".into()))
        );
        assert_eq!(oci_platform(ALPINE, "x86_64"), ("amd64".into(), None));
        assert_eq!(
            oci_platform(ALPINE, "aarch64"),
            ("arm64".into(), Some("v8".into()))
        );
        assert_eq!(
            oci_platform(ALPINE, "armhf"),
            ("arm".into(), Some("v6".into()))
        );
        assert_eq!(oci_platform(DEBIAN, "s390x"), ("s390x".into(), None));
    }

    #[test]
    fn platforms_map_to_each_distributions_arch() {
        let p = |s: &str| Platform::parse(s).unwrap();
        for (platform, table, distro, arch) in [
            ("linux/arm64", DEBIAN, "debian", "arm64"),
            ("linux/arm64/v8", ALPINE, "alpine", "aarch64"),
            ("linux/arm/v7", DEBIAN, "debian", "armhf"),
            ("linux/arm", ALPINE, "alpine", "armv7"),
            ("linux/arm/v6", ALPINE, "alpine", "armhf"),
            ("linux/386", ALPINE, "alpine", "x86"),
            ("Linux/AMD64", DEBIAN, "debian", "amd64"),
        ] {
            assert_eq!(
                p(platform).distro_arch(table, distro).unwrap(),
                arch,
                "{platform}"
            );
        }
        let err = p("linux/arm/v6")
            .distro_arch(DEBIAN, "debian")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("linux/arm/v6") && err.contains("linux/arm/v7"),
            "{err}"
        );
        for bad in ["arm64", "linux/", "linux/arm/v7/x", ""] {
            assert!(Platform::parse(bad).is_err(), "{bad}");
        }
        assert!(matches!(
            Platform::parse("windows/amd64"),
            Err(PlatformError::NotLinux { .. })
        ));
        assert_eq!(
            Platform::parse_list("linux/amd64, linux/arm64,linux/amd64").unwrap(),
            vec![p("linux/amd64"), p("linux/arm64")]
        );
        assert_eq!(p("linux/arm/v7").to_string(), "linux/arm/v7");
    }
}
