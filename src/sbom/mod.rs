//! Software bills of materials of images: a distribution-neutral model of
//! the installed packages ([`Sbom`]), built from the package inventory
//! `inspect` reads out of the layers, and pure conversions of it to SPDX 2.3
//! JSON ([`spdx`]) and CycloneDX 1.5 JSON ([`cyclonedx`]).
//!
//! Output is deterministic: packages are sorted, the creation time is the
//! image's `created`, and document identifiers derive from the image digest.

pub mod cyclonedx;
pub mod license;
pub mod output;
pub mod spdx;

use std::collections::BTreeMap;

use sha2::{Digest as _, Sha256};

use crate::image::packages::{PackageDbKind, PackageInventory, PackageRecord};
use crate::image::{OpenedImage, Sha256Digest};

pub use license::LicenseExpression;
pub use output::{
    attach_to_oci_layout, sidecar_path, write_build_sboms, write_index_sboms, PlatformFacts,
    SbomError,
};

/// Which SBOM format to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SbomFormat {
    Spdx,
    CycloneDx,
}

impl SbomFormat {
    pub const ALL: [SbomFormat; 2] = [SbomFormat::Spdx, SbomFormat::CycloneDx];

    /// The OCI artifact type / media type of a document in this format.
    pub fn media_type(self) -> &'static str {
        match self {
            SbomFormat::Spdx => "application/spdx+json",
            SbomFormat::CycloneDx => "application/vnd.cyclonedx+json",
        }
    }

    /// File name suffix for documents written next to an image.
    pub fn file_suffix(self) -> &'static str {
        match self {
            SbomFormat::Spdx => ".spdx.json",
            SbomFormat::CycloneDx => ".cdx.json",
        }
    }

    /// Format and version, as recorded in annotations.
    pub fn label(self) -> &'static str {
        match self {
            SbomFormat::Spdx => "spdx-2.3",
            SbomFormat::CycloneDx => "cyclonedx-1.5",
        }
    }

    /// The document, pretty-printed with a trailing newline.
    pub fn render(self, sbom: &Sbom) -> Vec<u8> {
        let value = match self {
            SbomFormat::Spdx => spdx::to_json(sbom),
            SbomFormat::CycloneDx => cyclonedx::to_json(sbom),
        };
        // Serializing a `Value` cannot fail: its keys are strings.
        let mut bytes = serde_json::to_vec_pretty(&value).unwrap_or_default();
        bytes.push(b'\n');
        bytes
    }
}

/// The image an SBOM describes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageIdentity {
    /// Reference (`rootstrap/debian:trixie`) or `image` when it has none.
    pub name: String,
    /// Manifest digest (the config digest for legacy archives without one).
    pub digest: Sha256Digest,
    /// The image's `created`, as `YYYY-MM-DDThh:mm:ssZ`.
    pub created: String,
}

impl ImageIdentity {
    pub fn new(name: Option<&str>, digest: Sha256Digest, created: Option<&str>) -> Self {
        ImageIdentity {
            name: name.filter(|n| !n.is_empty()).unwrap_or("image").to_owned(),
            digest,
            created: normalize_timestamp(created),
        }
    }

    pub fn of_image(image: &OpenedImage) -> Self {
        Self::new(
            image.reference.as_deref(),
            image.manifest_digest.unwrap_or(image.config_digest),
            image.config.created.as_deref(),
        )
    }

    /// A name-based UUID (version 5 layout) from the digest, so the same
    /// image always gets the same document identifier.
    pub fn uuid(&self, purpose: &str) -> String {
        let h = Sha256::digest(format!("rootstrap-sbom:{purpose}:{}", self.digest).as_bytes());
        let mut b = [0u8; 16];
        b.copy_from_slice(&h[..16]);
        b[6] = (b[6] & 0x0f) | 0x50;
        b[8] = (b[8] & 0x3f) | 0x80;
        let x = hex::encode(b);
        format!(
            "{}-{}-{}-{}-{}",
            &x[0..8],
            &x[8..12],
            &x[12..16],
            &x[16..20],
            &x[20..32]
        )
    }
}

/// SPDX and CycloneDX both want whole seconds in UTC; anything unreadable
/// becomes the epoch rather than the wall clock, to stay reproducible.
fn normalize_timestamp(created: Option<&str>) -> String {
    created
        .and_then(|c| chrono::DateTime::parse_from_rfc3339(c).ok())
        .map(|t| {
            t.with_timezone(&chrono::Utc)
                .format("%Y-%m-%dT%H:%M:%SZ")
                .to_string()
        })
        .unwrap_or_else(|| "1970-01-01T00:00:00Z".to_owned())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ChecksumAlgorithm {
    Sha1,
    Sha256,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checksum {
    pub algorithm: ChecksumAlgorithm,
    /// Lowercase hex.
    pub value: String,
}

/// Maintainer split into name and e-mail (`Name <mail>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Supplier {
    pub name: String,
    pub email: Option<String>,
}

impl Supplier {
    pub fn parse(maintainer: &str) -> Option<Self> {
        let (name, email) = match maintainer.split_once('<') {
            Some((n, rest)) => (n, rest.split_once('>').map(|(e, _)| e.trim())),
            None => (maintainer, None),
        };
        // Parentheses would be read as the e-mail part of an SPDX actor.
        let name: String = name
            .chars()
            .filter(|c| !matches!(c, '(' | ')' | '\n' | '\r'))
            .collect();
        let name = name.trim().to_owned();
        let email = email
            .filter(|e| !e.is_empty() && !e.contains(['(', ')', ' ']))
            .map(str::to_owned);
        (!name.is_empty() || email.is_some()).then_some(Supplier { name, email })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SbomPackage {
    pub name: String,
    pub version: String,
    pub arch: String,
    pub source_name: String,
    pub source_version: Option<String>,
    /// `None`: the image says nothing usable (NOASSERTION).
    pub license: Option<LicenseExpression>,
    pub purl: String,
    pub checksums: Vec<Checksum>,
    pub supplier: Option<Supplier>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sbom {
    pub image: ImageIdentity,
    pub tool_version: String,
    pub packages: Vec<SbomPackage>,
}

impl Sbom {
    /// Builds the model. `deb_sha256` maps Debian package names (or
    /// `name:arch`, preferred when both are present) to the
    /// SHA-256 of the `.deb` that was installed (known to a build from its
    /// plan; an image alone does not record it, and then none is given).
    pub fn from_inventory(
        inventory: &PackageInventory,
        image: ImageIdentity,
        deb_sha256: &BTreeMap<String, [u8; 32]>,
    ) -> Self {
        let distro = DistroPurl::of(inventory);
        let mut packages: Vec<SbomPackage> = inventory
            .packages
            .iter()
            .map(|p| package(p, &distro, deb_sha256))
            .collect();
        packages
            .sort_by(|a, b| (&a.name, &a.arch, &a.version).cmp(&(&b.name, &b.arch, &b.version)));
        // A hostile status file may list a package twice; documents need
        // unique identifiers, so identical entries collapse.
        packages.dedup_by(|a, b| a.purl == b.purl);
        Sbom {
            image,
            tool_version: env!("CARGO_PKG_VERSION").to_owned(),
            packages,
        }
    }
}

/// The purl type, namespace and distro qualifier of an inventory.
struct DistroPurl {
    kind: &'static str,
    namespace: String,
    distro: Option<String>,
    deb: bool,
}

impl DistroPurl {
    fn of(inv: &PackageInventory) -> Self {
        let os_id = inv
            .os_release
            .get("ID")
            .map(|s| s.to_ascii_lowercase())
            .filter(|s| !s.is_empty());
        match inv.kind {
            Some(PackageDbKind::Apk) => DistroPurl {
                kind: "apk",
                namespace: os_id.unwrap_or_else(|| "alpine".into()),
                distro: None,
                deb: false,
            },
            _ => DistroPurl {
                kind: "deb",
                namespace: os_id.unwrap_or_else(|| "debian".into()),
                distro: inv
                    .os_release
                    .get("VERSION_CODENAME")
                    .filter(|c| !c.is_empty())
                    .cloned(),
                deb: true,
            },
        }
    }
}

fn package(
    p: &PackageRecord,
    distro: &DistroPurl,
    deb_sha256: &BTreeMap<String, [u8; 32]>,
) -> SbomPackage {
    let mut qualifiers = vec![("arch", p.arch.as_str())];
    if let Some(d) = &distro.distro {
        qualifiers.push(("distro", d.as_str()));
    }
    let purl = purl(
        distro.kind,
        &distro.namespace,
        &p.name,
        &p.version,
        &qualifiers,
    );
    let mut checksums = Vec::new();
    if let Some(sha1) = &p.apk_checksum_sha1 {
        checksums.push(Checksum {
            algorithm: ChecksumAlgorithm::Sha1,
            value: hex::encode(sha1),
        });
    }
    if distro.deb {
        // `name:arch` first: with multiarch, libc6:amd64 and libc6:i386
        // are different files.
        let sha256 = deb_sha256
            .get(&format!("{}:{}", p.name, p.arch))
            .or_else(|| deb_sha256.get(&p.name));
        if let Some(sha256) = sha256 {
            checksums.push(Checksum {
                algorithm: ChecksumAlgorithm::Sha256,
                value: hex::encode(sha256),
            });
        }
    }
    SbomPackage {
        name: p.name.clone(),
        version: p.version.clone(),
        arch: p.arch.clone(),
        source_name: p.source_name.clone(),
        source_version: p.source_version.clone(),
        license: if distro.deb {
            LicenseExpression::from_debian(&p.licenses)
        } else {
            p.licenses
                .first()
                .and_then(|l| LicenseExpression::from_spdx_like(l))
        },
        purl,
        checksums,
        supplier: p.maintainer.as_deref().and_then(Supplier::parse),
    }
}

/// Percent-encodes everything but the unreserved characters (RFC 3986),
/// as the purl spec asks for names, versions and qualifier values: `+` and
/// `:` become `%2B` and `%3A`, `~` stays.
pub fn purl_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `pkg:TYPE/NAMESPACE/NAME@VERSION?k=v&…`; qualifiers with empty values are
/// left out and the rest sorted by key, as the purl spec requires.
pub fn purl(
    kind: &str,
    namespace: &str,
    name: &str,
    version: &str,
    qualifiers: &[(&str, &str)],
) -> String {
    let mut q: Vec<(&str, &str)> = qualifiers
        .iter()
        .copied()
        .filter(|(_, v)| !v.is_empty())
        .collect();
    q.sort();
    let mut out = format!(
        "pkg:{kind}/{}/{}@{}",
        purl_encode(&namespace.to_ascii_lowercase()),
        purl_encode(name),
        purl_encode(version)
    );
    for (i, (k, v)) in q.iter().enumerate() {
        out.push(if i == 0 { '?' } else { '&' });
        out.push_str(k);
        out.push('=');
        out.push_str(&purl_encode(v));
    }
    out
}

/// `pkg:oci/NAME@sha256%3A…` for the image itself.
pub fn purl_oci(name: &str, digest: &str) -> String {
    let name = if name.is_empty() { "image" } else { name };
    format!(
        "pkg:oci/{}@{}",
        purl_encode(&name.to_ascii_lowercase()),
        purl_encode(digest)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(name: &str, version: &str) -> PackageRecord {
        PackageRecord {
            name: name.into(),
            version: version.into(),
            arch: "amd64".into(),
            source_name: name.into(),
            source_version: None,
            licenses: vec!["GPL-2+".into()],
            maintainer: Some("GNU Libc Maintainers <debian-glibc@lists.debian.org>".into()),
            homepage: None,
            apk_checksum_sha1: None,
        }
    }

    #[test]
    fn purls_follow_the_encoding_rules() {
        assert_eq!(
            purl(
                "deb",
                "Debian",
                "libstdc++6",
                "1:14.2.0~rc1+b1",
                &[("distro", "trixie"), ("arch", "amd64")]
            ),
            "pkg:deb/debian/libstdc%2B%2B6@1%3A14.2.0~rc1%2Bb1?arch=amd64&distro=trixie"
        );
        assert_eq!(
            purl("apk", "alpine", "musl", "1.2.5-r0", &[("arch", "x86_64")]),
            "pkg:apk/alpine/musl@1.2.5-r0?arch=x86_64"
        );
        assert_eq!(
            purl("deb", "debian", "a", "1", &[("arch", ""), ("distro", "")]),
            "pkg:deb/debian/a@1"
        );
    }

    #[test]
    fn supplier_is_split_and_sanitized() {
        assert_eq!(
            Supplier::parse("Jane (JD) Doe <jd@example.org>"),
            Some(Supplier {
                name: "Jane JD Doe".into(),
                email: Some("jd@example.org".into())
            })
        );
        assert_eq!(
            Supplier::parse("Team"),
            Some(Supplier {
                name: "Team".into(),
                email: None
            })
        );
        assert_eq!(Supplier::parse("  "), None);
    }

    #[test]
    fn timestamps_are_normalized_never_the_clock() {
        assert_eq!(
            normalize_timestamp(Some("2025-01-02T03:04:05.123+01:00")),
            "2025-01-02T02:04:05Z"
        );
        assert_eq!(
            normalize_timestamp(Some("yesterday")),
            "1970-01-01T00:00:00Z"
        );
        assert_eq!(normalize_timestamp(None), "1970-01-01T00:00:00Z");
    }

    #[test]
    fn model_sorts_dedups_and_uses_os_release() {
        let mut inv = PackageInventory {
            kind: Some(PackageDbKind::Dpkg),
            os_release: [("ID", "debian"), ("VERSION_CODENAME", "trixie")]
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            packages: vec![record("zlib1g", "1:1.3"), record("bash", "5.2")],
        };
        inv.packages.push(record("bash", "5.2"));
        let digest = Sha256Digest::of(b"m");
        let sums: BTreeMap<String, [u8; 32]> = [
            ("bash".to_string(), [1u8; 32]),
            ("bash:amd64".to_string(), [7u8; 32]),
        ]
        .into();
        let sbom = Sbom::from_inventory(&inv, ImageIdentity::new(None, digest, None), &sums);
        let names: Vec<&str> = sbom.packages.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["bash", "zlib1g"]);
        assert_eq!(
            sbom.packages[1].purl,
            "pkg:deb/debian/zlib1g@1%3A1.3?arch=amd64&distro=trixie"
        );
        assert_eq!(sbom.packages[0].checksums[0].value, hex::encode([7u8; 32]));
        assert!(sbom.packages[1].checksums.is_empty());
        assert_eq!(
            sbom.packages[0]
                .license
                .as_ref()
                .map(|l| l.expression.as_str()),
            Some("GPL-2.0-or-later")
        );
        assert_eq!(sbom.image.name, "image");
    }

    #[test]
    fn uuid_is_stable_and_well_formed() {
        let id = ImageIdentity::new(Some("x"), Sha256Digest::of(b"a"), None);
        let u = id.uuid("cyclonedx");
        assert_eq!(u, id.uuid("cyclonedx"));
        assert_ne!(u, id.uuid("other"));
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "5");
        assert!("89ab".contains(&u[19..20]));
    }
}
