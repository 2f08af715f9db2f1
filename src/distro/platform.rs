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
];

pub const ALPINE: ArchTable = &[
    ("x86_64", "amd64", None),
    ("aarch64", "arm64", Some("v8")),
    ("armv7", "arm", Some("v7")),
    ("armhf", "arm", Some("v6")),
    ("x86", "386", None),
    ("ppc64le", "ppc64le", None),
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
}
