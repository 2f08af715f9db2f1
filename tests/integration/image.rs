//! Image layer: deterministic layers, OCI layout, docker-archive, reading back.

use crate::common::skip::{not_applicable, skip};
use std::fs::{self, File};
use std::io::{Read, Write};
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

use rootstrap::image::oci::{self, History, ImageConfig, Index, Manifest};
use rootstrap::image::read::{LayerRef, MemorySink};
use rootstrap::image::{
    fsck, inspect, unpack_layers, write_layer_from_dir, ImageBuilder, ImageError, ImageReference,
    ImageSource, LayerCompression, LayerEntryKind as EntryKind, LayerOptions,
    LayerReader as TarReader, OpenedImage, Output, Sha256Digest, TarHeader,
};

const EPOCH: i64 = 1_700_000_000;

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

fn set_mode(p: &Path, mode: u32) {
    fs::set_permissions(p, fs::Permissions::from_mode(mode)).unwrap();
}

fn write(p: &Path, data: &[u8], mode: u32) {
    if let Some(parent) = p.parent() {
        fs::create_dir_all(parent).unwrap();
    }
    fs::write(p, data).unwrap();
    set_mode(p, mode);
}

/// A small rootfs-like tree with explicit modes (so umask cannot matter).
fn make_tree(root: &Path) {
    for d in ["etc", "usr/bin", "usr/lib", "proc", "tmp", "var/empty"] {
        fs::create_dir_all(root.join(d)).unwrap();
    }
    write(
        &root.join("etc/passwd"),
        b"root:x:0:0:root:/root:/bin/sh\n",
        0o644,
    );
    write(
        &root.join("etc/shadow"),
        b"root:*:19000:0:99999:7:::\n",
        0o640,
    );
    write(&root.join("usr/bin/su"), b"#!/bin/sh\necho su\n", 0o4755);
    write(&root.join("usr/bin/busybox"), &vec![0x7f; 70_000], 0o755);
    fs::hard_link(root.join("usr/bin/busybox"), root.join("usr/bin/sh")).unwrap();
    write(&root.join("proc/cpuinfo"), b"not packed", 0o444);
    symlink("/etc/passwd", root.join("usr/lib/abs-link")).unwrap();
    symlink("../..", root.join("usr/lib/up")).unwrap();
    let long_dir = root
        .join("usr/lib")
        .join("x".repeat(60))
        .join("y".repeat(60));
    write(&long_dir.join("z".repeat(90)), b"long", 0o600);
    for d in [
        "",
        "etc",
        "usr",
        "usr/bin",
        "usr/lib",
        "proc",
        "var",
        "var/empty",
        &format!("usr/lib/{}", "x".repeat(60)),
        &format!("usr/lib/{}/{}", "x".repeat(60), "y".repeat(60)),
    ] {
        set_mode(&root.join(d), 0o755);
    }
    set_mode(&root.join("tmp"), 0o1777);
}

fn layer_opts() -> LayerOptions {
    LayerOptions {
        source_date_epoch: Some(EPOCH),
        exclude: vec![PathBuf::from("/proc")],
    }
}

fn layer_bytes(root: &Path, opts: &LayerOptions) -> Vec<u8> {
    let mut out = Vec::new();
    let stats = write_layer_from_dir(root, opts, &mut out).unwrap();
    assert_eq!(stats.uncompressed_size, out.len() as u64);
    assert_eq!(stats.diff_id, Sha256Digest::of(&out));
    out
}

fn entries(tar: &[u8]) -> Vec<(TarHeader, Vec<u8>)> {
    let mut r = TarReader::new(tar);
    let mut v = Vec::new();
    while let Some(h) = r.next_entry().unwrap() {
        let mut d = Vec::new();
        r.data().read_to_end(&mut d).unwrap();
        v.push((h, d));
    }
    v
}

fn find<'a>(es: &'a [(TarHeader, Vec<u8>)], path: &str) -> Option<&'a (TarHeader, Vec<u8>)> {
    es.iter().find(|(h, _)| h.path == Path::new(path))
}

fn config() -> ImageConfig {
    let mut c = ImageConfig::new("amd64", "linux");
    c.created = Some(oci::format_timestamp(EPOCH));
    c.config.cmd = Some(vec!["/bin/sh".into()]);
    c.config.env = vec!["PATH=/usr/sbin:/usr/bin:/sbin:/bin".into()];
    c
}

fn history(s: &str) -> History {
    History {
        created: Some(oci::format_timestamp(EPOCH)),
        created_by: Some(s.into()),
        ..History::default()
    }
}

fn build_image(tree: &Path, work: &Path) -> ImageBuilder {
    let mut b = ImageBuilder::new_in(work, config(), LayerCompression::Gzip).unwrap();
    b.add_layer_from_dir(tree, &layer_opts(), history("rootstrap base"))
        .unwrap();
    b
}

fn read_dir_files(root: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push((
                    p.strip_prefix(root).unwrap().to_path_buf(),
                    fs::read(&p).unwrap(),
                ));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn same_tree_twice_gives_identical_bytes_and_digests() {
    // It sets the process's umask, which the other tests would see.
    if !crate::common::run::in_own_process() {
        return;
    }
    let reference = ImageReference::parse("myorg/base:1").unwrap();
    let mut results = Vec::new();
    for umask in [0o022, 0o077] {
        // SAFETY: umask only changes the process's file-creation mask.
        let old = unsafe { libc::umask(umask) };
        let work = tempfile::tempdir().unwrap();
        let tree = work.path().join("rootfs");
        make_tree(&tree);
        let tar = layer_bytes(&tree, &layer_opts());
        let builder = build_image(&tree, work.path());
        let oci_dir = work.path().join("oci");
        let archive = work.path().join("image.tar");
        let w1 = builder
            .write(&Output::OciDir(oci_dir.clone()), Some(&reference))
            .unwrap();
        let w2 = builder
            .write(&Output::DockerArchive(archive.clone()), Some(&reference))
            .unwrap();
        unsafe { libc::umask(old) };
        assert_eq!(w1.manifest_digest, w2.manifest_digest);
        results.push((
            tar,
            read_dir_files(&oci_dir),
            fs::read(&archive).unwrap(),
            w1.manifest_digest,
        ));
        // Different creation times, too.
        std::thread::sleep(Duration::from_millis(1100));
    }
    assert!(results[0].0 == results[1].0, "layer tars differ");
    assert_eq!(results[0].1, results[1].1, "OCI layouts differ");
    assert!(results[0].2 == results[1].2, "docker archives differ");
    assert_eq!(results[0].3, results[1].3);
}

#[test]
fn layer_entries_order_modes_links_and_excludes() {
    let work = tempfile::tempdir().unwrap();
    let tree = work.path().join("rootfs");
    make_tree(&tree);
    let tar = layer_bytes(&tree, &layer_opts());
    let es = entries(&tar);
    let paths: Vec<String> = es
        .iter()
        .map(|(h, _)| h.path.display().to_string())
        .collect();
    // Depth-first, names sorted at each level, parents first; no `./`.
    assert_eq!(paths[0], "etc");
    assert!(paths
        .iter()
        .all(|p| !p.starts_with("./") && !p.starts_with('/')));
    for (i, p) in paths.iter().enumerate() {
        if let Some(parent) = Path::new(p).parent().filter(|q| !q.as_os_str().is_empty()) {
            let pi = paths
                .iter()
                .position(|q| Path::new(q) == parent)
                .expect("parent present");
            assert!(pi < i, "{p} before its parent");
        }
    }
    // Raw header names: directories end with '/'.
    assert_eq!(&tar[..4], b"etc/");
    // Excluded directory kept, its contents dropped.
    assert_eq!(find(&es, "proc").unwrap().0.kind, EntryKind::Dir);
    assert!(find(&es, "proc/cpuinfo").is_none());
    // Modes incl. setuid and sticky.
    assert_eq!(find(&es, "usr/bin/su").unwrap().0.mode, 0o4755);
    assert_eq!(find(&es, "tmp").unwrap().0.mode, 0o1777);
    assert_eq!(find(&es, "etc/shadow").unwrap().0.mode, 0o640);
    // Hard link: first in order holds the data, the later one links to it.
    let (bb, data) = find(&es, "usr/bin/busybox").unwrap();
    assert_eq!(bb.kind, EntryKind::File);
    assert_eq!(data.len(), 70_000);
    assert_eq!(
        find(&es, "usr/bin/sh").unwrap().0.kind,
        EntryKind::HardLink("usr/bin/busybox".into())
    );
    // Symlinks stored, never followed.
    assert_eq!(
        find(&es, "usr/lib/abs-link").unwrap().0.kind,
        EntryKind::Symlink("/etc/passwd".into())
    );
    assert_eq!(
        find(&es, "usr/lib/up").unwrap().0.kind,
        EntryKind::Symlink("../..".into())
    );
    assert!(!paths.iter().any(|p| p.starts_with("usr/lib/up/")));
    // Long names round-trip through PAX.
    let long = format!(
        "usr/lib/{}/{}/{}",
        "x".repeat(60),
        "y".repeat(60),
        "z".repeat(90)
    );
    assert_eq!(find(&es, &long).unwrap().1, b"long");
    // Numeric ids only: uname/gname fields (265..329) are empty everywhere.
    let mut off = 0;
    while off + 512 <= tar.len() && tar[off..off + 512].iter().any(|&b| b != 0) {
        assert!(
            tar[off + 265..off + 329].iter().all(|&b| b == 0),
            "uname/gname at {off}"
        );
        let size = u64::from_str_radix(
            std::str::from_utf8(&tar[off + 124..off + 135])
                .unwrap()
                .trim_matches(char::from(0)),
            8,
        )
        .unwrap();
        off += 512 + size.div_ceil(512) as usize * 512;
    }
    assert_eq!(tar.len() % 512, 0);
    assert!(
        tar[tar.len() - 1024..].iter().all(|&b| b == 0),
        "two zero blocks at the end"
    );
}

#[test]
fn system_tar_reads_the_layer() {
    if Command::new("tar").arg("--version").output().is_err() {
        skip("system tar not found");
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let tree = work.path().join("rootfs");
    make_tree(&tree);
    let tar_path = work.path().join("layer.tar");
    fs::write(&tar_path, layer_bytes(&tree, &layer_opts())).unwrap();
    let out = Command::new("tar")
        .arg("-tvf")
        .arg(&tar_path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listing = String::from_utf8(out.stdout).unwrap();
    assert!(
        listing.contains(&"z".repeat(90)),
        "long name missing:\n{listing}"
    );
    assert!(
        listing.contains("usr/bin/sh link to usr/bin/busybox"),
        "{listing}"
    );
    assert!(listing.contains("-rwsr-xr-x"), "{listing}");
    let dest = work.path().join("extract");
    fs::create_dir(&dest).unwrap();
    let st = Command::new("tar")
        .arg("-xf")
        .arg(&tar_path)
        .arg("-C")
        .arg(&dest)
        .status()
        .unwrap();
    assert!(st.success());
    assert_eq!(
        fs::read(dest.join("etc/passwd")).unwrap(),
        fs::read(tree.join("etc/passwd")).unwrap()
    );
}

#[test]
fn mtimes_are_clamped_to_the_epoch() {
    let work = tempfile::tempdir().unwrap();
    let tree = work.path().join("rootfs");
    fs::create_dir(&tree).unwrap();
    write(&tree.join("new"), b"n", 0o644);
    write(&tree.join("old"), b"o", 0o644);
    let old_time = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
    File::options()
        .write(true)
        .open(tree.join("old"))
        .unwrap()
        .set_modified(old_time)
        .unwrap();
    let es = entries(&layer_bytes(&tree, &layer_opts()));
    assert_eq!(find(&es, "new").unwrap().0.mtime, EPOCH);
    assert_eq!(find(&es, "old").unwrap().0.mtime, 1_000_000_000);
    let unclamped = entries(&layer_bytes(&tree, &LayerOptions::default()));
    assert!(find(&unclamped, "new").unwrap().0.mtime > EPOCH);
}

#[test]
fn whiteout_named_file_in_rootfs_is_refused() {
    // HOSTILE 15: a `.wh.foo` in the rootfs would delete `foo` for consumers.
    let work = tempfile::tempdir().unwrap();
    let tree = work.path().join("rootfs");
    write(&tree.join("etc/.wh.passwd"), b"", 0o644);
    let err = write_layer_from_dir(&tree, &LayerOptions::default(), Vec::new()).unwrap_err();
    match err {
        ImageError::WhiteoutInRootfs { path } => assert_eq!(path, Path::new("etc/.wh.passwd")),
        other => panic!("unexpected error {other}"),
    }
}

#[test]
fn special_files_devices_fifos_and_sockets() {
    let work = tempfile::tempdir().unwrap();
    let tree = work.path().join("rootfs");
    fs::create_dir_all(tree.join("dev")).unwrap();
    let fifo =
        std::ffi::CString::new(tree.join("dev/fifo").as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: plain mkfifo on a NUL-terminated path we own.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
    let _sock = std::os::unix::net::UnixListener::bind(tree.join("dev/sock")).unwrap();
    let have_dev = is_root()
        && rustix::fs::mknodat(
            rustix::fs::CWD,
            tree.join("dev/null"),
            rustix::fs::FileType::CharacterDevice,
            rustix::fs::Mode::from_raw_mode(0o666),
            rustix::fs::makedev(1, 3),
        )
        .is_ok();
    let es = entries(&layer_bytes(&tree, &LayerOptions::default()));
    assert_eq!(find(&es, "dev/fifo").unwrap().0.kind, EntryKind::Fifo);
    assert!(find(&es, "dev/sock").is_none(), "sockets are skipped");
    if have_dev {
        assert_eq!(
            find(&es, "dev/null").unwrap().0.kind,
            EntryKind::CharDevice { major: 1, minor: 3 }
        );
    } else {
        skip("device node part needs root");
    }
}

#[test]
fn xattrs_capability_and_user_kept_as_pax() {
    let work = tempfile::tempdir().unwrap();
    let tree = work.path().join("rootfs");
    write(&tree.join("ping"), b"elf", 0o755);
    let p = tree.join("ping");
    // VFS_CAP_REVISION_2, cap_net_raw (13) permitted+effective.
    let cap: [u8; 20] = [
        1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ];
    let user_ok =
        rustix::fs::lsetxattr(&p, "user.note", b"hi", rustix::fs::XattrFlags::empty()).is_ok();
    let cap_ok = is_root()
        && rustix::fs::lsetxattr(
            &p,
            "security.capability",
            &cap,
            rustix::fs::XattrFlags::empty(),
        )
        .is_ok();
    if !user_ok && !cap_ok {
        not_applicable("this filesystem/user cannot set xattrs");
        return;
    }
    let tar = layer_bytes(&tree, &LayerOptions::default());
    let es = entries(&tar);
    let h = &find(&es, "ping").unwrap().0;
    if user_ok {
        assert_eq!(
            h.xattrs.get("user.note").map(Vec::as_slice),
            Some(&b"hi"[..])
        );
    }
    if cap_ok {
        assert_eq!(
            h.xattrs.get("security.capability").map(Vec::as_slice),
            Some(&cap[..])
        );
        let needle = b"SCHILY.xattr.security.capability=";
        assert!(tar.windows(needle.len()).any(|w| w == needle));
    } else {
        skip("security.capability part needs root");
    }
}

fn open(source: ImageSource) -> OpenedImage {
    OpenedImage::open(&source, None).unwrap()
}

#[test]
fn oci_layout_is_valid_and_reads_back() {
    let work = tempfile::tempdir().unwrap();
    let tree = work.path().join("rootfs");
    make_tree(&tree);
    let builder = build_image(&tree, work.path());
    let dir = work.path().join("oci");
    let reference = ImageReference::parse("myorg/base:1").unwrap();
    let written = builder
        .write(&Output::OciDir(dir.clone()), Some(&reference))
        .unwrap();
    assert_eq!(
        fs::read_to_string(dir.join("oci-layout")).unwrap(),
        r#"{"imageLayoutVersion":"1.0.0"}"#
    );
    let index: Index = serde_json::from_slice(&fs::read(dir.join("index.json")).unwrap()).unwrap();
    assert_eq!(index.media_type.as_deref(), Some(oci::MEDIA_TYPE_INDEX));
    let mdesc = &index.manifests[0];
    assert_eq!(mdesc.annotations[oci::ANNOTATION_REF_NAME], "1");
    assert_eq!(mdesc.digest, written.manifest_digest.to_string());
    let blob = |d: &str| {
        fs::read(
            dir.join("blobs/sha256")
                .join(d.strip_prefix("sha256:").unwrap()),
        )
        .unwrap()
    };
    let check = |desc: &oci::Descriptor| {
        let b = blob(&desc.digest);
        assert_eq!(Sha256Digest::of(&b).to_string(), desc.digest);
        assert_eq!(b.len() as u64, desc.size);
        b
    };
    let manifest: Manifest = serde_json::from_slice(&check(mdesc)).unwrap();
    assert_eq!(
        manifest.media_type.as_deref(),
        Some(oci::MEDIA_TYPE_MANIFEST)
    );
    assert_eq!(manifest.config.media_type, oci::MEDIA_TYPE_CONFIG);
    let config: ImageConfig = serde_json::from_slice(&check(&manifest.config)).unwrap();
    assert_eq!(manifest.layers.len(), 1);
    let layer = check(&manifest.layers[0]);
    assert_eq!(manifest.layers[0].media_type, oci::MEDIA_TYPE_LAYER_GZIP);
    let mut tar = Vec::new();
    flate2::read::GzDecoder::new(layer.as_slice())
        .read_to_end(&mut tar)
        .unwrap();
    assert_eq!(
        config.rootfs.diff_ids,
        vec![Sha256Digest::of(&tar).to_string()]
    );
    assert_eq!(
        config.history[0].created_by.as_deref(),
        Some("rootstrap base")
    );
    // Nothing but the layout is left beside it.
    let leftovers: Vec<_> = fs::read_dir(work.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".rootstrap-oci") || n.starts_with(".rootstrap-old"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    let image = open(ImageSource::parse(&format!("oci:{}", dir.display())).unwrap());
    assert_eq!(image.manifest_digest, Some(written.manifest_digest));
    assert_eq!(image.config, config);
    let report = fsck(&image).unwrap();
    assert_eq!(report.layers_checked, 1);
    assert_eq!(report.blobs_checked, 3);
    let ins = inspect(&image);
    assert_eq!(ins.reference.as_deref(), Some("1"));
    assert_eq!(ins.layers.len(), 1);
    assert_eq!(
        ins.total_size,
        manifest.layers[0].size + manifest.config.size
    );
    let text = ins.to_string();
    assert!(
        text.contains(&written.manifest_digest.to_string()) && text.contains("/bin/sh"),
        "{text}"
    );
    serde_json::to_string(&ins).unwrap();
}

#[test]
fn docker_archive_structure() {
    let work = tempfile::tempdir().unwrap();
    let tree = work.path().join("rootfs");
    make_tree(&tree);
    let builder = build_image(&tree, work.path());
    let path = work.path().join("img.tar");
    let reference = ImageReference::parse("myorg/base:1").unwrap();
    let written = builder
        .write(&Output::DockerArchive(path.clone()), Some(&reference))
        .unwrap();
    let bytes = fs::read(&path).unwrap();
    let es = entries(&bytes);
    let names: Vec<String> = es
        .iter()
        .map(|(h, _)| h.path.display().to_string())
        .collect();
    assert_eq!(
        names.last().map(String::as_str),
        Some("index.json"),
        "{names:?}"
    );
    for required in ["blobs", "blobs/sha256", "manifest.json", "oci-layout"] {
        assert!(
            names.iter().any(|n| n == required),
            "{required} missing: {names:?}"
        );
    }
    let member = |n: &str| {
        es.iter()
            .find(|(h, _)| h.path == Path::new(n))
            .map(|(_, d)| d.clone())
            .unwrap()
    };
    let dm: serde_json::Value = serde_json::from_slice(&member("manifest.json")).unwrap();
    let entry = &dm[0];
    assert_eq!(entry["RepoTags"], serde_json::json!(["myorg/base:1"]));
    let config_member = entry["Config"].as_str().unwrap();
    assert_eq!(
        config_member,
        format!("blobs/sha256/{}", written.config_digest.to_hex())
    );
    assert_eq!(
        Sha256Digest::of(&member(config_member)),
        written.config_digest
    );
    for l in entry["Layers"].as_array().unwrap() {
        let l = l.as_str().unwrap();
        assert_eq!(
            format!("sha256:{}", l.strip_prefix("blobs/sha256/").unwrap()),
            Sha256Digest::of(&member(l)).to_string()
        );
    }
    let index: Index = serde_json::from_slice(&member("index.json")).unwrap();
    assert_eq!(
        index.manifests[0].annotations[oci::ANNOTATION_CONTAINERD_NAME],
        "docker.io/myorg/base:1"
    );
    assert_eq!(
        index.manifests[0].annotations[oci::ANNOTATION_REF_NAME],
        "1"
    );

    let image = open(ImageSource::DockerArchive(path.clone()));
    assert_eq!(image.manifest_digest, Some(written.manifest_digest));
    assert_eq!(image.reference.as_deref(), Some("myorg/base:1"));
    fsck(&image).unwrap();
}

#[test]
fn fsck_detects_one_corrupt_byte() {
    let work = tempfile::tempdir().unwrap();
    let tree = work.path().join("rootfs");
    make_tree(&tree);
    let builder = build_image(&tree, work.path());
    let dir = work.path().join("oci");
    builder.write(&Output::OciDir(dir.clone()), None).unwrap();
    let layer_path = dir.join("blobs/sha256").join(
        builder.layers()[0]
            .descriptor
            .digest
            .strip_prefix("sha256:")
            .unwrap(),
    );
    // Blobs may be hard links to the builder's copy: replace, don't edit in place.
    let mut data = fs::read(&layer_path).unwrap();
    let mid = data.len() / 2;
    data[mid] ^= 1;
    fs::remove_file(&layer_path).unwrap();
    fs::write(&layer_path, &data).unwrap();
    let image = open(ImageSource::OciDir(dir));
    let err = fsck(&image).unwrap_err();
    assert!(matches!(err, ImageError::DigestMismatch { .. }), "{err}");
    assert!(unpack_layers(&image, &mut MemorySink::default()).is_err());

    let archive = work.path().join("img.tar");
    builder
        .write(&Output::DockerArchive(archive.clone()), None)
        .unwrap();
    let image = open(ImageSource::DockerArchive(archive.clone()));
    let layer = &image.layers[0];
    let mut bytes = fs::read(&archive).unwrap();
    let raw_len = bytes.len();
    // Find the layer member's data and flip a byte in it.
    let blob = fs::read(builder.layers()[0].path()).unwrap();
    let pos = bytes.windows(64).position(|w| w == &blob[..64]).unwrap() + blob.len() / 2;
    bytes[pos] ^= 0x40;
    assert_eq!(bytes.len(), raw_len);
    fs::write(&archive, &bytes).unwrap();
    let image2 = open(ImageSource::DockerArchive(archive));
    assert_eq!(image2.layers[0].member, layer.member);
    assert!(fsck(&image2).is_err());
}

#[test]
fn failed_write_leaves_nothing_and_keeps_existing_target() {
    let work = tempfile::tempdir().unwrap();
    let tree = work.path().join("rootfs");
    make_tree(&tree);
    let builder = build_image(&tree, work.path());
    let out_dir = work.path().join("out");
    fs::create_dir(&out_dir).unwrap();
    let existing = out_dir.join("oci");
    fs::create_dir(&existing).unwrap();
    fs::write(existing.join("marker"), b"old").unwrap();
    // Make the write fail midway: the layer blob vanishes.
    fs::remove_file(builder.layers()[0].path()).unwrap();
    assert!(builder
        .write(&Output::OciDir(existing.clone()), None)
        .is_err());
    assert!(builder
        .write(&Output::DockerArchive(out_dir.join("a.tar")), None)
        .is_err());
    assert_eq!(fs::read(existing.join("marker")).unwrap(), b"old");
    let names: Vec<_> = fs::read_dir(&out_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        names,
        vec![std::ffi::OsString::from("oci")],
        "leftovers in the output directory"
    );

    // A good build replaces the existing directory.
    let good = build_image(&tree, work.path());
    good.write(&Output::OciDir(existing.clone()), None).unwrap();
    assert!(!existing.join("marker").exists());
    assert!(existing.join("index.json").exists());
    let names: Vec<_> = fs::read_dir(&out_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 1, "{names:?}");
}

fn diff_layer(w: &mut dyn Write) -> Result<(), ImageError> {
    let mut tar = rootstrap::image::TarWriter::new(w);
    tar.append_whiteout(Path::new("etc/shadow"))?;
    let mut h = TarHeader::new("etc/motd", EntryKind::File);
    h.size = 5;
    tar.append(&h, &mut &b"hello"[..])?;
    tar.append(
        &TarHeader::new("usr/lib", EntryKind::Dir),
        &mut std::io::empty(),
    )?;
    let mut new = TarHeader::new("usr/lib/-new", EntryKind::File);
    new.size = 1;
    tar.append(&new, &mut &b"n"[..])?;
    tar.append_opaque_whiteout(Path::new("usr/lib"))?;
    tar.finish()?;
    Ok(())
}

#[test]
fn unpack_applies_whiteouts_and_opaque_dirs() {
    let work = tempfile::tempdir().unwrap();
    let tree = work.path().join("rootfs");
    make_tree(&tree);
    let mut builder = build_image(&tree, work.path());
    builder
        .add_layer_with(history("RUN rm /etc/shadow"), diff_layer)
        .unwrap();
    builder.add_empty_history(history("CMD [\"sh\"]"));
    let dir = work.path().join("oci");
    builder.write(&Output::OciDir(dir.clone()), None).unwrap();
    let image = open(ImageSource::OciDir(dir));
    assert_eq!(image.layers.len(), 2);
    assert_eq!(image.config.history.len(), 3);
    assert!(image.config.history[2].empty_layer);
    fsck(&image).unwrap();
    let mut sink = MemorySink::default();
    unpack_layers(&image, &mut sink).unwrap();
    let has = |p: &str| sink.entries.contains_key(Path::new(p));
    assert!(!has("etc/shadow"), "whiteout applied");
    assert!(has("etc/passwd"));
    assert_eq!(sink.entries[Path::new("etc/motd")].1, b"hello");
    assert!(has("usr/lib"), "opaque dir itself stays");
    assert!(
        has("usr/lib/-new"),
        "same-layer entry survives the opaque marker sorted after it"
    );
    assert!(
        !has("usr/lib/abs-link") && !has("usr/lib/up"),
        "lower contents hidden"
    );
    assert!(has("usr/bin/busybox"));
    assert!(!sink
        .entries
        .keys()
        .any(|p| rootstrap::image::tar::is_whiteout_name(p)));
}

#[test]
fn rootfs_tar_outputs() {
    let work = tempfile::tempdir().unwrap();
    let tree = work.path().join("rootfs");
    make_tree(&tree);
    let builder = build_image(&tree, work.path());
    let plain = layer_bytes(&tree, &layer_opts());
    let gz = work.path().join("rootfs.tar.gz");
    builder.write(&Output::RootfsTar(gz.clone()), None).unwrap();
    assert_eq!(
        fs::read(&gz).unwrap(),
        fs::read(builder.layers()[0].path()).unwrap()
    );
    let tar = work.path().join("rootfs.tar");
    builder
        .write(&Output::RootfsTar(tar.clone()), None)
        .unwrap();
    assert!(fs::read(&tar).unwrap() == plain);
    let zst = work.path().join("rootfs.tar.zst");
    builder
        .write(&Output::RootfsTar(zst.clone()), None)
        .unwrap();
    assert!(zstd::decode_all(File::open(&zst).unwrap()).unwrap() == plain);
    if Command::new("gzip").arg("--version").output().is_ok() {
        assert!(Command::new("gzip")
            .arg("-t")
            .arg(&gz)
            .status()
            .unwrap()
            .success());
    }
}

/// `docker save` before Docker 25: `<id>/layer.tar` and `<id>.json` names.
#[test]
fn reads_legacy_docker_save_layout() {
    let work = tempfile::tempdir().unwrap();
    let tree = work.path().join("rootfs");
    make_tree(&tree);
    let layer = layer_bytes(&tree, &layer_opts());
    let mut cfg = config();
    cfg.rootfs.diff_ids = vec![Sha256Digest::of(&layer).to_string()];
    let cfg_bytes = serde_json::to_vec(&cfg).unwrap();
    let cfg_name = format!("{}.json", Sha256Digest::of(&cfg_bytes).to_hex());
    let manifest = serde_json::json!([{"Config": cfg_name, "RepoTags": ["old:1"], "Layers": ["abc123/layer.tar"]}]);
    let path = work.path().join("legacy.tar");
    let mut tar = rootstrap::image::TarWriter::new(File::create(&path).unwrap());
    let mut add = |name: &str, data: &[u8]| {
        let mut h = TarHeader::new(name, EntryKind::File);
        h.size = data.len() as u64;
        tar.append(&h, &mut &data[..]).unwrap();
    };
    add("abc123/layer.tar", &layer);
    add(&cfg_name, &cfg_bytes);
    add("manifest.json", manifest.to_string().as_bytes());
    add("repositories", br#"{"old":{"1":"abc123"}}"#);
    tar.finish().unwrap();
    let image = open(ImageSource::DockerArchive(path));
    assert_eq!(image.reference.as_deref(), Some("old:1"));
    assert_eq!(image.manifest_digest, None);
    assert_eq!(
        image.layers,
        vec![LayerRef {
            member: "abc123/layer.tar".into(),
            digest: None,
            size: layer.len() as u64,
            media_type: None,
            diff_id: Sha256Digest::of(&layer),
        }]
    );
    fsck(&image).unwrap();
    let mut sink = MemorySink::default();
    unpack_layers(&image, &mut sink).unwrap();
    assert_eq!(
        sink.entries[Path::new("etc/passwd")].1,
        fs::read(tree.join("etc/passwd")).unwrap()
    );
}

#[test]
fn hostile_manifest_paths_are_refused() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("oci");
    fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
    fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    fs::write(
        dir.join("index.json"),
        r#"{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:../../../etc/passwd","size":1}]}"#,
    )
    .unwrap();
    assert!(OpenedImage::open(&ImageSource::OciDir(dir.clone()), None).is_err());

    // A blob that is a symlink to a host file is not followed.
    let target = work.path().join("host-secret");
    fs::write(&target, b"{}").unwrap();
    let hex = Sha256Digest::of(b"{}").to_hex();
    symlink(&target, dir.join("blobs/sha256").join(&hex)).unwrap();
    fs::write(
        dir.join("index.json"),
        format!(r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:{hex}","size":2}}]}}"#),
    )
    .unwrap();
    let err = OpenedImage::open(&ImageSource::OciDir(dir), None)
        .err()
        .expect("symlinked blob refused");
    assert!(matches!(err, ImageError::Io { .. }), "{err}");
}

/// An empty regular-file header with an arbitrary (hostile) name.
fn raw_file_header(name: &str) -> [u8; 512] {
    let mut h = [0u8; 512];
    h[..name.len()].copy_from_slice(name.as_bytes());
    h[100..107].copy_from_slice(b"0000644");
    h[108..115].copy_from_slice(b"0000000");
    h[116..123].copy_from_slice(b"0000000");
    h[124..135].copy_from_slice(b"00000000000");
    h[136..147].copy_from_slice(b"00000000000");
    h[156] = b'0';
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    h
}

#[test]
fn hostile_whiteouts_are_refused() {
    let work = tempfile::tempdir().unwrap();
    let tree = work.path().join("rootfs");
    make_tree(&tree);
    for name in [
        "etc/.wh.",
        "etc/.wh..",
        "etc/.wh...",
        "../.wh.x",
        "etc/./.wh.passwd",
    ] {
        let mut b = build_image(&tree, work.path());
        b.add_layer_with(history(name), |w| {
            w.write_all(&raw_file_header(name)).unwrap();
            w.write_all(&[0u8; 1024]).unwrap();
            Ok(())
        })
        .unwrap();
        let dir = work.path().join("hostile");
        b.write(&Output::OciDir(dir.clone()), None).unwrap();
        let image = open(ImageSource::OciDir(dir));
        let mut sink = MemorySink::default();
        let err = unpack_layers(&image, &mut sink).err();
        assert!(
            matches!(err, Some(ImageError::TarEntry { .. })),
            "{name}: {err:?}"
        );
        // Nothing of the base layer was deleted by the hostile entry.
        assert!(sink.entries.contains_key(Path::new("etc/passwd")), "{name}");
    }
}

/// Counts what a layer unpacks to without keeping it.
#[derive(Default)]
struct CountingSink {
    bytes: u64,
}

impl rootstrap::image::read::UnpackSink for CountingSink {
    type Error = std::io::Error;

    fn entry(&mut self, _: &TarHeader, data: &mut dyn Read) -> Result<(), Self::Error> {
        self.bytes += std::io::copy(data, &mut std::io::sink())?;
        Ok(())
    }

    fn remove(&mut self, _: &Path) -> Result<(), Self::Error> {
        Ok(())
    }

    fn clear_dir(&mut self, _: &Path, _: &dyn Fn(&Path) -> bool) -> Result<(), Self::Error> {
        Ok(())
    }
}

/// HOSTILE 14 for image layers: a well-formed layer (right digest, right
/// diff_id) whose few kilobytes of zstd expand past the cap stops with an
/// error naming the layer, instead of writing a gigabyte.
#[test]
fn a_decompression_bomb_layer_is_capped() {
    let work = tempfile::tempdir().unwrap();
    let size = rootstrap::image::read::LAYER_MIN_CAP + (1 << 20);
    let mut b = ImageBuilder::new_in(work.path(), config(), LayerCompression::Zstd).unwrap();
    b.add_layer_with(history("bomb"), |w| {
        let mut h = raw_file_header("zeros");
        h[124..135].copy_from_slice(format!("{size:011o}").as_bytes());
        h[148..156].copy_from_slice(b"        ");
        let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
        h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        w.write_all(&h).unwrap();
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..size >> 20 {
            w.write_all(&zeros).unwrap();
        }
        w.write_all(&[0u8; 1024]).unwrap();
        Ok(())
    })
    .unwrap();
    let dir = work.path().join("bomb");
    b.write(&Output::OciDir(dir.clone()), None).unwrap();
    let image = open(ImageSource::OciDir(dir));
    let stored = image.layers[0].size;
    assert!(stored < 1 << 20, "the bomb is small: {stored} bytes");

    let mut sink = CountingSink::default();
    let err = unpack_layers(&image, &mut sink).unwrap_err().to_string();
    assert!(
        err.contains("exceeds the limit") && err.contains(&image.layers[0].member),
        "{err}"
    );
    assert!(sink.bytes <= rootstrap::image::read::LAYER_MIN_CAP);
    // Reading the layer for its inventory or an fsck stops at the same cap.
    let err = fsck(&image).unwrap_err().to_string();
    assert!(err.contains("exceeds the limit"), "{err}");
}

#[test]
fn docker_load_accepts_the_archive() {
    let docker_ok = Command::new("docker")
        .arg("info")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !docker_ok {
        skip("no running docker daemon (docker info failed); the CI script covers docker load");
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let tree = work.path().join("rootfs");
    make_tree(&tree);
    let builder = build_image(&tree, work.path());
    let path = work.path().join("img.tar");
    let name = format!("rootstrap-test/image:{}", std::process::id());
    builder
        .write(
            &Output::DockerArchive(path.clone()),
            Some(&ImageReference::parse(&name).unwrap()),
        )
        .unwrap();
    let load = Command::new("docker")
        .arg("load")
        .arg("-i")
        .arg(&path)
        .output()
        .unwrap();
    let inspect = Command::new("docker")
        .args(["image", "inspect", "--format", "{{.Id}}", &name])
        .output()
        .unwrap();
    let _ = Command::new("docker").args(["rmi", "-f", &name]).output();
    assert!(
        load.status.success(),
        "{}",
        String::from_utf8_lossy(&load.stderr)
    );
    assert!(
        inspect.status.success(),
        "{}",
        String::from_utf8_lossy(&inspect.stderr)
    );
}

fn file_entry(
    tar: &mut rootstrap::image::TarWriter<&mut dyn Write>,
    path: &str,
    data: &[u8],
) -> Result<(), ImageError> {
    let mut h = TarHeader::new(path, EntryKind::File);
    h.size = data.len() as u64;
    tar.append(&h, &mut &data[..])
}

/// Contents as unpacking would see them, with hard links resolved to data.
fn resolved(sink: &MemorySink) -> Vec<(PathBuf, Option<Vec<u8>>)> {
    sink.entries
        .iter()
        .map(|(p, (h, d))| {
            let data = match &h.kind {
                EntryKind::File | EntryKind::HardLink(_) => Some(d.clone()),
                _ => None,
            };
            (p.clone(), data)
        })
        .collect()
}

#[test]
fn squash_matches_layer_by_layer_unpack() {
    let work = tempfile::tempdir().unwrap();
    let tree = work.path().join("rootfs");
    make_tree(&tree);
    let mut builder = build_image(&tree, work.path());
    builder
        .add_layer_with(history("RUN diff"), diff_layer)
        .unwrap();
    builder
        .add_layer_with(history("RUN replace hard-linked file"), |w| {
            let mut tar = rootstrap::image::TarWriter::new(w);
            // The base's usr/bin/sh is a hard link to busybox; replace busybox.
            file_entry(&mut tar, "usr/bin/busybox", b"new busybox")?;
            tar.finish()?;
            Ok(())
        })
        .unwrap();
    let layered = work.path().join("layered");
    builder
        .write(&Output::OciDir(layered.clone()), None)
        .unwrap();
    let mut expected = MemorySink::default();
    unpack_layers(&open(ImageSource::OciDir(layered)), &mut expected).unwrap();
    // Unpacking layer by layer, sh keeps the old busybox content.
    assert_eq!(
        resolved(&expected)
            .iter()
            .find(|(p, _)| p == Path::new("usr/bin/sh"))
            .unwrap()
            .1
            .as_ref()
            .unwrap()
            .len(),
        70_000
    );

    // Rootfs tar output of a multi-layer image is the squashed tree.
    let out = work.path().join("squashed.tar");
    builder
        .write(&Output::RootfsTar(out.clone()), None)
        .unwrap();
    let es = entries(&fs::read(&out).unwrap());
    let mut from_tar = MemorySink::default();
    for (h, d) in &es {
        rootstrap::image::UnpackSink::entry(&mut from_tar, h, &mut d.as_slice()).unwrap();
    }
    // The hard link whose target was replaced became a copy of the old data.
    assert_eq!(find(&es, "usr/bin/sh").unwrap().0.kind, EntryKind::File);
    assert_eq!(resolved(&from_tar), resolved(&expected));
    let paths: Vec<&Path> = es.iter().map(|(h, _)| h.path.as_path()).collect();
    for (i, p) in paths.iter().enumerate() {
        if let Some(parent) = p.parent().filter(|q| !q.as_os_str().is_empty()) {
            assert!(
                paths[..i].contains(&parent),
                "{} before its parent",
                p.display()
            );
        }
    }

    // --squash: one layer, history kept, same tree.
    builder.squash().unwrap();
    assert_eq!(builder.layers().len(), 1);
    let squashed = work.path().join("squashed-oci");
    builder
        .write(&Output::OciDir(squashed.clone()), None)
        .unwrap();
    let image = open(ImageSource::OciDir(squashed));
    fsck(&image).unwrap();
    assert_eq!(image.config.history.len(), 3);
    assert_eq!(
        image
            .config
            .history
            .iter()
            .filter(|h| !h.empty_layer)
            .count(),
        1
    );
    let mut got = MemorySink::default();
    unpack_layers(&image, &mut got).unwrap();
    assert_eq!(resolved(&got), resolved(&expected));
}

#[test]
fn from_image_builds_on_a_base() {
    let work = tempfile::tempdir().unwrap();
    let tree = work.path().join("rootfs");
    make_tree(&tree);
    let base = build_image(&tree, work.path());
    let archive = work.path().join("base.tar");
    base.write(
        &Output::DockerArchive(archive.clone()),
        Some(&ImageReference::parse("base:1").unwrap()),
    )
    .unwrap();
    let opened = open(ImageSource::DockerArchive(archive));
    let mut child = ImageBuilder::from_image(work.path(), &opened, LayerCompression::Zstd).unwrap();
    assert_eq!(child.layers()[0].descriptor, base.layers()[0].descriptor);
    child
        .add_layer_with(history("COPY motd /etc/motd"), |w| {
            let mut tar = rootstrap::image::TarWriter::new(w);
            file_entry(&mut tar, "etc/motd", b"hi")?;
            tar.finish()?;
            Ok(())
        })
        .unwrap();
    assert_eq!(
        child.layers()[1].descriptor.media_type,
        oci::MEDIA_TYPE_LAYER_ZSTD
    );
    let dir = work.path().join("child");
    child.write(&Output::OciDir(dir.clone()), None).unwrap();
    let image = open(ImageSource::OciDir(dir));
    fsck(&image).unwrap();
    assert_eq!(image.config.history.len(), 2);
    assert_eq!(image.config.config.cmd, Some(vec!["/bin/sh".to_string()]));
    let mut sink = MemorySink::default();
    unpack_layers(&image, &mut sink).unwrap();
    assert_eq!(sink.entries[Path::new("etc/motd")].1, b"hi");
    assert!(sink.entries.contains_key(Path::new("etc/passwd")));
}

/// Oracle: entry order and names match GNU `tar --sort=name` on the same tree.
#[test]
fn order_matches_gnu_tar_sort_name() {
    let supports_sort = Command::new("tar")
        .arg("--help")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("--sort"))
        .unwrap_or(false);
    if !supports_sort {
        skip("GNU tar with --sort not found");
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let tree = work.path().join("rootfs");
    make_tree(&tree);
    for name in ["a-b", "a.b", "a", "A", "a/b", "a/-", "a0", "\u{e9}t\u{e9}"] {
        fs::create_dir_all(tree.join(name)).unwrap();
    }
    let ours = work.path().join("ours.tar");
    fs::write(&ours, layer_bytes(&tree, &LayerOptions::default())).unwrap();
    let gnu = work.path().join("gnu.tar");
    let st = Command::new("tar")
        .args(["--sort=name", "--format=posix", "-C"])
        .arg(&tree)
        .arg("-cf")
        .arg(&gnu)
        .arg(".")
        .status()
        .unwrap();
    assert!(st.success());
    let list = |p: &Path| -> Vec<String> {
        let out = Command::new("tar").arg("-tf").arg(p).output().unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| l.trim_start_matches("./").to_string())
            .filter(|l| !l.is_empty())
            .collect()
    };
    assert_eq!(list(&ours), list(&gnu));
}

/// Oracle: Docker applies our layers (base copied through `from_image`, plus a
/// diff with whiteouts) to the tree we expect, with setuid bits and hard links
/// intact. gzip, not zstd: Docker engines before 23 cannot load zstd layers
/// (Debian's docker.io 20.10 fails with "unexpected EOF").
#[test]
fn docker_run_sees_the_expected_tree() {
    let docker_ok = Command::new("docker")
        .arg("info")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    let busybox = Path::new("/usr/bin/busybox");
    if !docker_ok || !busybox.exists() {
        skip("needs a running docker daemon and a static /usr/bin/busybox");
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let tree = work.path().join("rootfs");
    make_tree(&tree);
    fs::create_dir(tree.join("bin")).unwrap();
    set_mode(&tree.join("bin"), 0o755);
    fs::copy(busybox, tree.join("bin/busybox")).unwrap();
    set_mode(&tree.join("bin/busybox"), 0o755);
    let base = build_image(&tree, work.path());
    let base_dir = work.path().join("base");
    base.write(&Output::OciDir(base_dir.clone()), None).unwrap();
    let mut child = ImageBuilder::from_image(
        work.path(),
        &open(ImageSource::OciDir(base_dir)),
        LayerCompression::Gzip,
    )
    .unwrap();
    child
        .add_layer_with(history("RUN diff"), diff_layer)
        .unwrap();
    let name = format!("rootstrap-test/run:{}", std::process::id());
    let archive = work.path().join("run.tar");
    child
        .write(
            &Output::DockerArchive(archive.clone()),
            Some(&ImageReference::parse(&name).unwrap()),
        )
        .unwrap();
    let load = Command::new("docker")
        .arg("load")
        .arg("-i")
        .arg(&archive)
        .output()
        .unwrap();
    let script =
        "cd / && busybox ls /etc && busybox cat /etc/motd && echo && busybox ls -A /usr/lib \
                  && busybox stat -c '%a %h' /usr/bin/su /usr/bin/sh";
    let run = Command::new("docker")
        .args([
            "run",
            "--rm",
            "--network",
            "none",
            &name,
            "/bin/busybox",
            "sh",
            "-c",
            script,
        ])
        .output()
        .unwrap();
    let _ = Command::new("docker").args(["rmi", "-f", &name]).output();
    assert!(
        load.status.success(),
        "{}",
        String::from_utf8_lossy(&load.stderr)
    );
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let out = String::from_utf8_lossy(&run.stdout);
    // Docker bind-mounts these into every container's /etc.
    let injected = ["hostname", "hosts", "mtab", "resolv.conf"];
    let lines: Vec<&str> = out.lines().filter(|l| !injected.contains(l)).collect();
    assert_eq!(
        lines,
        ["motd", "passwd", "hello", "-new", "4755 1", "755 2"],
        "{out}"
    );
}

struct Unmount(PathBuf);
impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = rustix::mount::unmount(&self.0, rustix::mount::UnmountFlags::DETACH);
    }
}

/// HOSTILE 33: ENOSPC while writing the output is an error and leaves
/// nothing behind on the full filesystem.
#[test]
fn enospc_on_output_fails_cleanly() {
    let work = tempfile::tempdir().unwrap();
    let small = work.path().join("small");
    fs::create_dir(&small).unwrap();
    let mounted = is_root()
        && rustix::mount::mount(
            "tmpfs",
            &small,
            "tmpfs",
            rustix::mount::MountFlags::empty(),
            Some(c"size=256k"),
        )
        .is_ok();
    if !mounted {
        skip("needs root and tmpfs mounts for the ENOSPC test");
        return;
    }
    let _guard = Unmount(small.clone());
    let tree = work.path().join("rootfs");
    fs::create_dir(&tree).unwrap();
    // Incompressible content well over the 256 KiB filesystem.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let noise: Vec<u8> = (0..1_000_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    write(&tree.join("noise"), &noise, 0o644);
    let builder = build_image(&tree, work.path());
    for output in [
        Output::OciDir(small.join("oci")),
        Output::DockerArchive(small.join("img.tar")),
        Output::RootfsTar(small.join("rootfs.tar")),
    ] {
        let err = builder
            .write(&output, None)
            .expect_err("writing to a full filesystem must fail");
        assert!(err.to_string().contains("No space left"), "{err}");
        let left: Vec<_> = fs::read_dir(&small)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert!(left.is_empty(), "{output:?} left {left:?}");
    }
}
