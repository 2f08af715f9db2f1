//! Real Alpine data: signed indexes and packages from ../shared/conformance/apkindex.

use rootstrap::distro::apk::{parse_index, ApkError, TrustedKeys};
use std::path::{Path, PathBuf};
use std::time::Instant;

fn data_dir() -> Option<PathBuf> {
    let dir = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/conformance/apkindex"
    ));
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!("SKIP: {} not found", dir.display());
        None
    }
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
