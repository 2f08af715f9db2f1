//! Real Alpine data: signed indexes and packages from ../shared/conformance/apkindex.

use rootstrap::distro::apk::{parse_index, ApkError, TrustedKeys};
use std::path::{Path, PathBuf};
use std::time::Instant;

fn data_dir() -> Option<PathBuf> {
    crate::common::conformance::path("apkindex")
}

fn alpine_keys() -> TrustedKeys {
    TrustedKeys::load_dir(Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/keys/alpine"
    )))
    .expect("load keys/alpine")
}

fn read(dir: &Path, rel: &str) -> Vec<u8> {
    std::fs::read(dir.join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

#[test]
fn real_indexes_verify_and_parse() {
    let Some(dir) = data_dir() else { return };
    let keys = alpine_keys();
    for (rel, arch, count, key) in [
        (
            "alpine-v3.16.3-main-x86_64/APKINDEX.tar.gz",
            "x86_64",
            4929,
            "alpine-devel@lists.alpinelinux.org-6165ee59.rsa.pub",
        ),
        (
            "alpine-v3.17.3-main-aarch64/APKINDEX.tar.gz",
            "aarch64",
            5004,
            "alpine-devel@lists.alpinelinux.org-616ae350.rsa.pub",
        ),
    ] {
        let bytes = read(&dir, rel);
        let start = Instant::now();
        let index = parse_index(&bytes, &keys, false).expect(rel);
        let elapsed = start.elapsed();
        println!(
            "{rel}: {} packages, signer {:?}, description {:?}, parse+verify {:.1} ms",
            index.packages.len(),
            index.signer,
            index.description,
            elapsed.as_secs_f64() * 1000.0
        );
        assert_eq!(index.packages.len(), count, "{rel}");
        assert_eq!(index.signer.as_deref(), Some(key));
        assert!(index
            .packages
            .iter()
            .all(|p| p.arch == arch && p.checksum.is_some()));
        let musl = index
            .packages
            .iter()
            .find(|p| p.name == "musl")
            .expect("musl");
        let soname = format!("so:libc.musl-{arch}.so.1");
        assert!(
            musl.provides.iter().any(|p| p.name == soname),
            "{:?}",
            musl.provides
        );
    }
}

#[test]
fn tampered_index_fails() {
    let Some(dir) = data_dir() else { return };
    let keys = alpine_keys();
    let bytes = read(&dir, "alpine-v3.16.3-main-x86_64/APKINDEX.tar.gz");
    // Flip one byte inside the signed (second) member's deflate data.
    let mut tampered = bytes.clone();
    let at = bytes.len() / 2;
    tampered[at] ^= 0x01;
    let err = parse_index(&tampered, &keys, false).unwrap_err();
    assert!(
        matches!(err, ApkError::BadSignature { .. } | ApkError::Gzip { .. }),
        "{err}"
    );
    // A flip that still inflates must be caught by the signature: re-sign nothing,
    // but change the stored CRC-valid member by swapping in the other index's member.
    let other = read(&dir, "alpine-v3.17.3-main-aarch64/APKINDEX.tar.gz");
    let sig_len = first_member_len(&bytes);
    let other_sig_len = first_member_len(&other);
    let spliced = [&bytes[..sig_len], &other[other_sig_len..]].concat();
    let err = parse_index(&spliced, &keys, false).unwrap_err();
    assert!(matches!(err, ApkError::BadSignature { .. }), "{err}");
}

fn first_member_len(bytes: &[u8]) -> usize {
    rootstrap::distro::apk::gzsplit::read_member("t", bytes, 0, 1 << 20)
        .expect("first member")
        .range
        .end
}

#[test]
fn untrusted_keys_are_refused_unless_allowed() {
    let Some(dir) = data_dir() else { return };
    let bytes = read(&dir, "alpine-v3.16.3-main-x86_64/APKINDEX.tar.gz");
    let none = TrustedKeys::new();
    let err = parse_index(&bytes, &none, false).unwrap_err();
    assert!(matches!(err, ApkError::UntrustedKey { .. }), "{err}");
    let index = parse_index(&bytes, &none, true).expect("allowed untrusted");
    assert!(index.signer.is_none());
    assert_eq!(index.packages.len(), 4929);
}

#[test]
fn rsa256_and_multisig_indexes_verify() {
    let Some(dir) = data_dir() else { return };
    for sub in ["apko-rsa256-signed", "apko-multisig-index"] {
        let root = dir.join(sub);
        let mut keys = TrustedKeys::new();
        for f in walk(&root) {
            let name = f.file_name().unwrap().to_string_lossy().into_owned();
            if name.ends_with(".rsa.pub") {
                keys.add_pem(&name, &std::fs::read_to_string(&f).unwrap())
                    .unwrap();
            }
        }
        let bytes = std::fs::read(root.join("APKINDEX.tar.gz")).unwrap();
        let index = parse_index(&bytes, &keys, false).expect(sub);
        println!(
            "{sub}: {} packages, signer {:?}",
            index.packages.len(),
            index.signer
        );
        assert!(!index.packages.is_empty());
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// The index stanza for the real alpine-baselayout package, from the
/// melange-generated rsa256 index (signed with its own test key).
fn baselayout_entry(dir: &Path) -> rootstrap::distro::apk::ApkPackage {
    let root = dir.join("apko-rsa256-signed");
    let mut keys = TrustedKeys::new();
    keys.add_pem(
        "test-rsa256.rsa.pub",
        &std::fs::read_to_string(root.join("test-rsa256.rsa.pub")).unwrap(),
    )
    .unwrap();
    let index = parse_index(&read(&root, "APKINDEX.tar.gz"), &keys, false).unwrap();
    index.packages.into_iter().next().expect("one stanza")
}

const BASELAYOUT: &str = "alpine-real-apk/alpine-baselayout-3.2.0-r23.aarch64.apk";

#[test]
fn real_package_verifies_and_all_files_pass_checksums() {
    use rootstrap::distro::apk::open_package;
    let Some(dir) = data_dir() else { return };
    let expected = baselayout_entry(&dir);
    let bytes = read(&dir, BASELAYOUT);
    let pkg = open_package(&bytes, &expected, &alpine_keys(), false).expect("verify");
    assert_eq!(
        pkg.trust.signer(),
        Some("alpine-devel@lists.alpinelinux.org-616ae350.rsa.pub")
    );
    assert_eq!(pkg.identity.to_string(), "Q1LLq2qDNrS/qRnhxQ3hsY/sHbQnc=");
    let scripts: Vec<&str> = pkg.scripts.keys().map(String::as_str).collect();
    assert_eq!(
        scripts,
        [
            ".post-install",
            ".post-upgrade",
            ".pre-install",
            ".pre-upgrade"
        ]
    );
    let entries = pkg.data_entries().expect("file checksums");
    let checked = entries
        .iter()
        .filter(|e| e.pax.contains_key("APK-TOOLS.checksum.SHA1"))
        .count();
    println!(
        "{BASELAYOUT}: {} data entries, {checked} with checksums, all OK",
        entries.len()
    );
    assert!(entries.iter().any(|e| e.path == "etc/crontabs/root"));
    assert!(checked > 5);
    // The installed-db file list: directories in tar order, files with acls and Z:.
    let dirs = rootstrap::distro::apk::installed::dirs_from_entries(&entries);
    let crontabs = dirs
        .iter()
        .find(|d| d.path == "etc/crontabs")
        .expect("etc/crontabs");
    let root = &crontabs.files[0];
    assert_eq!((root.name.as_str(), root.acl.mode), ("root", 0o600));
    assert_eq!(
        root.checksum.as_ref().map(|c| c.to_string()).as_deref(),
        Some("Q1vfk1apUWI4yLJGhhNRd0kJixfvY=")
    );
    // .PKGINFO reproduces the index stanza (what `apk index` derives from it).
    let derived = pkg.index_entry(bytes.len() as u64);
    assert_eq!(derived.depends, expected.depends);
    assert_eq!(derived.provides, expected.provides);
    assert_eq!(derived.installed_size, expected.installed_size);
}

#[test]
fn tampered_packages_are_refused() {
    use rootstrap::distro::apk::{gzsplit, open_package};
    let Some(dir) = data_dir() else { return };
    let expected = baselayout_entry(&dir);
    let keys = alpine_keys();
    let bytes = read(&dir, BASELAYOUT);
    let members = gzsplit::split_members("t", &bytes, 3, 1 << 24).unwrap();

    // HOSTILE 18: wrong identity in the index.
    let mut wrong_id = expected.clone();
    wrong_id.checksum = rootstrap::distro::apk::Checksum::parse("Q1AAAAAAAAAAAAAAAAAAAAAAAAAAA=");
    let err = open_package(&bytes, &wrong_id, &keys, true).unwrap_err();
    assert!(matches!(err, ApkError::IdentityMismatch { .. }), "{err}");
    // Size disagreeing with S:.
    let mut wrong_size = expected.clone();
    wrong_size.size += 1;
    let err = open_package(&bytes, &wrong_size, &keys, false).unwrap_err();
    assert!(matches!(err, ApkError::SizeMismatch { .. }), "{err}");

    // HOSTILE 19: valid control, data member replaced by another valid gzip member.
    let fake_data = gzip(b"not the data");
    let spliced = [&bytes[..members[2].range.start], &fake_data[..]].concat();
    let mut e = expected.clone();
    e.size = spliced.len() as u64;
    let err = open_package(&spliced, &e, &keys, false).unwrap_err();
    assert!(matches!(err, ApkError::DataHashMismatch { .. }), "{err}");

    // HOSTILE 20: a 4th member, and trailing bytes.
    for tail in [gzip(b"extra"), b"trailing".to_vec()] {
        let longer = [&bytes[..], &tail[..]].concat();
        let mut e = expected.clone();
        e.size = longer.len() as u64;
        let err = open_package(&longer, &e, &keys, false).unwrap_err();
        assert!(
            matches!(err, ApkError::Format { .. } | ApkError::Gzip { .. }),
            "{err}"
        );
    }

    // HOSTILE 17 for packages: no trusted key.
    let err = open_package(&bytes, &expected, &TrustedKeys::new(), false).unwrap_err();
    assert!(matches!(err, ApkError::UntrustedKey { .. }), "{err}");
}

fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// Index entry for a package file, computed the way `apk index` does, so the
/// identity and size checks pass and only trust is under test.
fn self_entry(bytes: &[u8]) -> rootstrap::distro::apk::ApkPackage {
    use rootstrap::distro::apk::{gzsplit, tar, Checksum, PkgInfo};
    use sha1::Digest;
    let members = gzsplit::split_members("t", bytes, 3, 1 << 26).unwrap();
    let control = &members[members.len() - 2];
    let entries = tar::parse_entries("t", &control.data).unwrap();
    let info = entries.iter().find(|e| e.path == ".PKGINFO").unwrap();
    let text = std::str::from_utf8(&control.data[info.data.clone()]).unwrap();
    let pkginfo = PkgInfo::parse("t", text).unwrap();
    let id = Checksum::Sha1(sha1::Sha1::digest(&bytes[control.range.clone()]).into());
    pkginfo.to_package(Some(id), bytes.len() as u64)
}

#[test]
fn unsigned_and_wrong_key_packages_are_refused() {
    use rootstrap::distro::apk::open_package;
    let Some(dir) = data_dir() else { return };
    let keys = alpine_keys();
    for rel in [
        "apko-unsigned-apk/hello-0.1.0-r0.apk",
        "apko-unsigned-apk/replaces-0.0.1-r0.apk",
    ] {
        let bytes = read(&dir, rel);
        let entry = self_entry(&bytes);
        let err = open_package(&bytes, &entry, &keys, false).unwrap_err();
        assert!(matches!(err, ApkError::Unsigned { .. }), "{rel}: {err}");
        let ok = open_package(&bytes, &entry, &keys, true).expect(rel);
        assert!(ok.trust.signer().is_none());
        ok.data_entries().expect(rel);
    }
    for rel in [
        "apko-melange-signed-apk/hello-wolfi-2.12.1-r0.apk",
        "apko-melange-signed-apk/hello-2.12-r0.apk",
    ] {
        let bytes = read(&dir, rel);
        let entry = self_entry(&bytes);
        let err = open_package(&bytes, &entry, &keys, false).unwrap_err();
        assert!(matches!(err, ApkError::UntrustedKey { .. }), "{rel}: {err}");
    }
}

#[test]
fn mini_repo_packages_match_their_index() {
    use rootstrap::distro::apk::open_package;
    let Some(dir) = data_dir() else { return };
    let root = dir.join("apko-mini-repo");
    let mut keys = TrustedKeys::new();
    keys.add_pem(
        "melange.rsa.pub",
        &std::fs::read_to_string(root.join("melange.rsa.pub")).unwrap(),
    )
    .unwrap();
    for arch in ["x86_64", "aarch64"] {
        let index = parse_index(
            &read(&root, &format!("{arch}/APKINDEX.tar.gz")),
            &keys,
            false,
        )
        .unwrap();
        for p in &index.packages {
            let bytes = read(&root, &format!("{arch}/{}-{}.apk", p.name, p.version));
            let pkg = open_package(&bytes, p, &keys, false).unwrap_or_else(|e| panic!("{e}"));
            pkg.data_entries().unwrap_or_else(|e| panic!("{e}"));
        }
        println!(
            "apko-mini-repo/{arch}: {} packages verified",
            index.packages.len()
        );
    }
}

#[test]
fn resolves_alpine_base_from_real_index() {
    use rootstrap::distro::apk::{solve_with, Dependency, SolveOptions};
    let Some(dir) = data_dir() else { return };
    let bytes = read(&dir, "alpine-v3.16.3-main-x86_64/APKINDEX.tar.gz");
    let index = parse_index(&bytes, &alpine_keys(), false).unwrap();
    let opts = SolveOptions {
        arch: Some("x86_64".into()),
        ..Default::default()
    };
    let start = Instant::now();
    let solution = solve_with(
        &index.packages,
        &[],
        &[Dependency::any("alpine-base")],
        &opts,
    )
    .expect("alpine-base resolves");
    let elapsed = start.elapsed();
    let names: Vec<&str> = solution.install.iter().map(|p| p.name.as_str()).collect();
    println!(
        "alpine-base: {} packages in {:.1} ms: {}",
        names.len(),
        elapsed.as_secs_f64() * 1000.0,
        names.join(" ")
    );
    for must in [
        "musl",
        "busybox",
        "alpine-baselayout",
        "apk-tools",
        "alpine-base",
    ] {
        assert!(names.contains(&must), "{must} missing");
    }
    // Dependencies come before their dependents.
    let pos = |n: &str| names.iter().position(|x| *x == n).unwrap();
    assert!(pos("musl") < pos("busybox"));
    let base = solution
        .install
        .iter()
        .find(|p| p.name == "alpine-base")
        .unwrap();
    for d in &base.depends {
        let provider = solution
            .install
            .iter()
            .position(|p| p.name == d.name || p.provides.iter().any(|q| q.name == d.name))
            .unwrap_or_else(|| panic!("{d} not installed"));
        assert!(provider < pos("alpine-base"), "{d} after alpine-base");
    }
}
