//! Debian control syntax: paragraphs, Packages and Release files (then the
//! Release checks and index selection), relations and versions.
use crate::distro::deb::{control, packages, relation, release, version::Version};

/// The fuzz target: `data` is any input libFuzzer makes.
pub fn run(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for p in control::paragraphs(text).flatten() {
        for (_, v) in p.fields() {
            let _ = relation::parse_relations(v);
            let _ = relation::parse_provides(v);
            let _ = Version::parse(v);
        }
    }
    let _ = control::single_paragraph(text);
    let _ = packages::parse_packages(text);
    if let Ok(r) = release::Release::parse(text) {
        let _ = r.identity();
        let _ = r.check(&release::ReleasePolicy::new(1_700_000_000, "stable"));
        let _ = r.packages_indexes("main", "amd64");
    }
}
