//! Debian control syntax: paragraphs, Packages and Release files (then the
//! Release checks and index selection), relations and versions.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rootstrap::distro::deb::{control, packages, relation, release, version::Version};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for p in control::paragraphs(text) {
        if let Ok(p) = p {
            for (_, v) in p.fields() {
                let _ = relation::parse_relations(v);
                let _ = relation::parse_provides(v);
                let _ = Version::parse(v);
            }
        }
    }
    let _ = control::single_paragraph(text);
    let _ = packages::parse_packages(text);
    if let Ok(r) = release::Release::parse(text) {
        let _ = r.identity();
        let _ = r.check(&release::ReleasePolicy::new(1_700_000_000, "stable"));
        let _ = r.packages_indexes("main", "amd64");
    }
});
