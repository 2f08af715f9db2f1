//! The fixture .deb builder is itself checked against the real dpkg-deb, so
//! the integration tests that rely on it exercise real-format packages.

use crate::common;
use crate::common::skip::skip;

use common::debrepo::{host_runtime_packages, DebPackage};

#[test]
fn fixture_debs_are_accepted_by_dpkg_deb() {
    if std::process::Command::new("dpkg-deb")
        .arg("--version")
        .output()
        .is_err()
    {
        skip("dpkg-deb not installed");
        return;
    }
    let mut pkgs = vec![DebPackage::new("hello-fixture", "1:2.0-1")
        .depends("libc6 (>= 2.36)")
        .file("usr/bin/hello", 0o755, b"#!/bin/sh\necho hello\n")
        .symlink("usr/bin/hi", "hello")
        .script("postinst", "#!/bin/sh\nset -e\ntouch /hello-configured\n")];
    pkgs.extend(host_runtime_packages().unwrap_or_default());
    let dir = tempfile::tempdir().unwrap();
    for p in &pkgs {
        let path = dir.path().join(format!("{}.deb", p.name));
        std::fs::write(&path, p.build()).unwrap();
        let info = std::process::Command::new("dpkg-deb")
            .arg("--info")
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            info.status.success(),
            "{}: {}",
            p.name,
            String::from_utf8_lossy(&info.stderr)
        );
        let text = String::from_utf8_lossy(&info.stdout);
        assert!(text.contains(&format!("Package: {}", p.name)), "{text}");
        let contents = std::process::Command::new("dpkg-deb")
            .arg("--contents")
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            contents.status.success(),
            "{}: {}",
            p.name,
            String::from_utf8_lossy(&contents.stderr)
        );
    }
    let listing = std::process::Command::new("dpkg-deb")
        .arg("--contents")
        .arg(dir.path().join("hello-fixture.deb"))
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&listing.stdout);
    assert!(listing.contains("./usr/bin/hi -> hello"), "{listing}");
    assert!(
        listing.contains("./usr/bin/\n"),
        "parent dirs are listed: {listing}"
    );
}
