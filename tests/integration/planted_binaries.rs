//! A rootfs that plants host-side tools and NSS modules (HOSTILE 42, issue
//! 17 item 4): `gzip`, `xz`, `zstd`, `sh`, `tar`, `ldconfig`, `cp`, `getent`
//! in every PATH directory and `libnss_*.so.2` (plus an `ld.so.preload` and
//! an `nsswitch.conf` naming them) in every library directory. Each one, if
//! ever run or loaded by a host process, leaves a marker in a directory
//! outside the tree. A Dockerfile build on that rootfs (USER by name, COPY
//! --chown by name, ADD of compressed tars, RUN of the planted tools inside
//! the sandbox) must leave no marker on the host. Also ADD's decompression
//! cap against a zstd bomb. Needs root and busybox-static, like the other
//! Dockerfile builds; the NSS modules need a C compiler (else they are
//! planted as non-ELF files and the test says so).

use crate::common;
use crate::common::run;
use crate::common::skip::skip;

use std::fs;
use std::io::Write;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output as ProcOutput};

use rootstrap::image::oci::{History, ImageConfig};
use rootstrap::image::{
    unpack_layers, ImageBuilder, ImageSource, LayerCompression, LayerOptions, MemorySink,
    OpenedImage, Output,
};

const BUSYBOX: &str = "/bin/busybox";
const TOOLS: [&str; 9] = [
    "gzip", "xz", "zstd", "sh", "tar", "ldconfig", "cp", "getent", "unpigz",
];
const PATH_DIRS: [&str; 7] = [
    "usr/local/sbin",
    "usr/local/bin",
    "usr/sbin",
    "usr/bin",
    "sbin",
    "bin",
    "usr/lib/rootstrap",
];
const LIB_DIRS: [&str; 8] = [
    "lib",
    "lib64",
    "usr/lib",
    "usr/lib64",
    "usr/local/lib",
    "lib/x86_64-linux-gnu",
    "usr/lib/x86_64-linux-gnu",
    "lib/aarch64-linux-gnu",
];
const NSS_MODULES: [&str; 5] = [
    "libnss_files.so.2",
    "libnss_compat.so.2",
    "libnss_dns.so.2",
    "libnss_systemd.so.2",
    "libnss_planted.so.2",
];

fn can_run() -> bool {
    if !rustix::process::geteuid().is_root() {
        skip("Dockerfile builds with RUN need root");
        return false;
    }
    if !Path::new(BUSYBOX).exists() {
        skip(format!("{BUSYBOX} not found (install busybox-static)"));
        return false;
    }
    true
}

/// Where planted files leave their marks: outside every tree the build
/// makes, unique to this test run.
struct Markers {
    dir: PathBuf,
}

impl Markers {
    fn new(name: &str) -> Markers {
        // /var/tmp: a recipe build leaves /tmp out of the image, and the
        // in-sandbox marks are looked for in the image.
        let dir = Path::new("/var/tmp").join(format!(
            "rootstrap-planted-{name}-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        Markers { dir }
    }

    fn left(&self) -> Vec<String> {
        match fs::read_dir(&self.dir) {
            Ok(rd) => rd
                .map(|e| {
                    let p = e.unwrap().path();
                    format!(
                        "{}: {}",
                        p.display(),
                        fs::read_to_string(&p).unwrap_or_default()
                    )
                })
                .collect(),
            Err(_) => Vec::new(),
        }
    }
}

impl Drop for Markers {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// A tool that records it ran (and as what) and then succeeds.
fn planted_tool(markers: &Markers) -> String {
    format!(
        "#!/bin/busybox sh\n/bin/busybox mkdir -p {d}\necho \"$0 $*\" >> {d}/exec-$$\nexit 0\n",
        d = markers.dir.display()
    )
}

/// An ELF shared object whose constructor records it was loaded, or (no C
/// compiler) a text file of the same name.
fn planted_library(work: &Path, markers: &Markers) -> (Vec<u8>, bool) {
    let src = work.join("planted.c");
    fs::write(
        &src,
        format!(
            "#include <fcntl.h>\n#include <sys/stat.h>\n#include <unistd.h>\n\
             __attribute__((constructor)) static void planted(void) {{\n\
               mkdir(\"{d}\", 0755);\n\
               int fd = open(\"{d}/loaded\", O_WRONLY | O_CREAT | O_APPEND, 0644);\n\
               if (fd >= 0) {{ write(fd, \"so\\n\", 3); close(fd); }}\n\
             }}\n",
            d = markers.dir.display()
        ),
    )
    .unwrap();
    let so = work.join("planted.so");
    let built = Command::new("cc")
        .args(["-shared", "-fPIC", "-o"])
        .arg(&so)
        .arg(&src)
        .status()
        .is_ok_and(|s| s.success());
    if built {
        (fs::read(&so).unwrap(), true)
    } else {
        eprintln!("NOTE: no C compiler: NSS modules planted as non-ELF files");
        (b"not an ELF file\n".to_vec(), false)
    }
}

/// Plants everything into `rootfs` (which has busybox at /bin/busybox and
/// /bin/sh -> busybox; that one `sh` stays real so RUN can start).
fn plant(rootfs: &Path, work: &Path, markers: &Markers) -> bool {
    let tool = planted_tool(markers);
    for d in PATH_DIRS {
        fs::create_dir_all(rootfs.join(d)).unwrap();
        for t in TOOLS {
            let p = rootfs.join(d).join(t);
            if d == "bin" && t == "sh" {
                continue;
            }
            fs::write(&p, &tool).unwrap();
            fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
        }
    }
    let (lib, is_elf) = planted_library(work, markers);
    for d in LIB_DIRS {
        fs::create_dir_all(rootfs.join(d)).unwrap();
        for m in NSS_MODULES {
            fs::write(rootfs.join(d).join(m), &lib).unwrap();
        }
    }
    fs::write(
        rootfs.join("etc/nsswitch.conf"),
        "passwd: planted files\ngroup: planted files\nhosts: planted dns\n",
    )
    .unwrap();
    fs::write(
        rootfs.join("etc/ld.so.preload"),
        "/lib/libnss_planted.so.2\n/usr/lib/libnss_planted.so.2\n",
    )
    .unwrap();
    is_elf
}

/// The planted base image as `oci:<dir>`.
fn make_base(work: &Path, markers: &Markers) -> (String, PathBuf, bool) {
    let rootfs = work.join("base-rootfs");
    for d in ["bin", "etc", "tmp", "home/app"] {
        fs::create_dir_all(rootfs.join(d)).unwrap();
    }
    fs::set_permissions(rootfs.join("tmp"), fs::Permissions::from_mode(0o1777)).unwrap();
    fs::copy(BUSYBOX, rootfs.join("bin/busybox")).unwrap();
    symlink("busybox", rootfs.join("bin/sh")).unwrap();
    for applet in ["cat", "echo", "id", "mkdir", "ls", "true"] {
        symlink("busybox", rootfs.join("bin").join(applet)).unwrap();
    }
    fs::write(
        rootfs.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1001::/home/app:/bin/sh\n",
    )
    .unwrap();
    fs::write(rootfs.join("etc/group"), "root:x:0:\napp:x:1001:\n").unwrap();
    let is_elf = plant(&rootfs, work, markers);
    let mut builder = ImageBuilder::new_in(
        work,
        ImageConfig::new("amd64", "linux"),
        LayerCompression::Gzip,
    )
    .unwrap();
    builder
        .add_layer_from_dir(&rootfs, &LayerOptions::default(), History::default())
        .unwrap();
    let out = work.join("base");
    builder.write(&Output::OciDir(out.clone()), None).unwrap();
    (format!("oci:{}", out.display()), rootfs, is_elf)
}

fn rootstrap(args: &[&str]) -> ProcOutput {
    run::logged(
        run::rootstrap()
            .env("SOURCE_DATE_EPOCH", "1700000000")
            .args(args),
    )
}

fn build(ctx: &Path, out: &Path) -> ProcOutput {
    build_isolated(ctx, out, "auto")
}

fn build_isolated(ctx: &Path, out: &Path, isolation: &str) -> ProcOutput {
    let dockerfile = ctx.join("Dockerfile");
    rootstrap(&[
        "build",
        "-f",
        dockerfile.to_str().unwrap(),
        ctx.to_str().unwrap(),
        "--no-cache",
        "--isolation",
        isolation,
        "--output",
        &format!("oci:{}", out.display()),
    ])
}

/// A one-file tar, gzip-compressed.
fn small_tar_gz(name: &str, data: &[u8]) -> Vec<u8> {
    let mut tar = tar_header(name, data.len() as u64).to_vec();
    tar.extend_from_slice(data);
    tar.resize(tar.len().div_ceil(512) * 512 + 1024, 0);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&tar).unwrap();
    gz.finish().unwrap()
}

fn tar_header(name: &str, size: u64) -> [u8; 512] {
    let mut h = [0u8; 512];
    h[..name.len()].copy_from_slice(name.as_bytes());
    h[100..108].copy_from_slice(b"0000644\0");
    h[108..116].copy_from_slice(b"0000000\0");
    h[116..124].copy_from_slice(b"0000000\0");
    h[124..136].copy_from_slice(format!("{size:011o}\0").as_bytes());
    h[136..148].copy_from_slice(b"00000000000\0");
    h[156] = b'0';
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    h
}

/// Unpacks the image at `out` and checks that `who` ran the planted files
/// inside the sandbox: their marks are in the image, not on the host.
fn ran_inside(out: &Path, markers: &Markers, who: &str) -> MemorySink {
    let image = OpenedImage::open(&ImageSource::OciDir(out.to_path_buf()), None).unwrap();
    let mut sink = MemorySink::default();
    unpack_layers(&image, &mut sink).unwrap();
    let inside = markers.dir.strip_prefix("/").unwrap();
    assert!(
        sink.entries.keys().any(|p| p.starts_with(inside)),
        "{who} should have run the planted tools inside the sandbox"
    );
    sink
}

#[test]
fn planted_tools_and_nss_modules_never_run_on_the_host() {
    if !can_run() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let markers = Markers::new("dockerfile");
    let (base, rootfs, is_elf) = make_base(work.path(), &markers);

    // Control: the plants do leave a marker when the host runs one.
    let control = Command::new(rootfs.join("usr/bin/gzip")).status().unwrap();
    assert!(control.success());
    assert_eq!(markers.left().len(), 1, "the planted tool should mark");
    fs::remove_dir_all(&markers.dir).unwrap();

    let ctx = work.path().join("ctx");
    fs::create_dir_all(&ctx).unwrap();
    fs::write(ctx.join("f"), "copied\n").unwrap();
    fs::write(ctx.join("data.tar.gz"), small_tar_gz("hello", b"added\n")).unwrap();
    fs::write(
        ctx.join("Dockerfile"),
        format!(
            "FROM {base}\n\
             USER app:app\n\
             RUN id -u > /tmp/uid\n\
             USER root\n\
             COPY --chown=app:app f /home/app/f\n\
             ADD data.tar.gz /data/\n\
             RUN gzip -d x; xz -d x; zstd -d x; tar -xf x; ldconfig; cp a b; getent passwd app; \
                 sh -c true; /usr/sbin/ldconfig; /sbin/ldconfig\n\
             HEALTHCHECK CMD [\"gzip\"]\n"
        ),
    )
    .unwrap();
    // The chroot level is what pods get: the host process does more of the
    // work around each step there (device nodes, resolv.conf), so it is
    // checked as well as the default.
    for isolation in ["namespaces", "chroot"] {
        let out = work.path().join(format!("out-{isolation}"));
        let result = build_isolated(&ctx, &out, isolation);
        assert!(
            result.status.success(),
            "{isolation}: the build itself should succeed"
        );
        let left = markers.left();
        assert!(
            left.is_empty(),
            "{isolation}: planted files ran on the host: {left:?}"
        );

        // Inside the sandbox they did run (so they were live all along), and
        // the names resolved from the rootfs's own /etc/passwd.
        let sink = ran_inside(&out, &markers, &format!("{isolation}: the RUN step"));
        let (header, data) = &sink.entries[Path::new("tmp/uid")];
        assert_eq!(String::from_utf8_lossy(data).trim(), "1000", "{header:?}");
        let (header, _) = &sink.entries[Path::new("home/app/f")];
        assert_eq!((header.uid, header.gid), (1000, 1001));
        assert_eq!(sink.entries[Path::new("data/hello")].1, b"added\n");
    }
    if !is_elf {
        eprintln!("NOTE: the NSS half of this test was weaker (no C compiler)");
    }
}

#[test]
fn add_of_a_decompression_bomb_is_capped() {
    if !can_run() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let markers = Markers::new("bomb");
    let (base, _, _) = make_base(work.path(), &markers);
    let ctx = work.path().join("ctx");
    fs::create_dir_all(&ctx).unwrap();
    // 320 MiB of zeros in a tar, zstd-compressed to a few KiB: far past
    // both the expansion ratio and the floor of the cap.
    let size: u64 = 320 << 20;
    let mut enc = zstd::stream::Encoder::new(Vec::new(), 3).unwrap();
    enc.write_all(&tar_header("bomb", size)).unwrap();
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..(size >> 20) + 1 {
        enc.write_all(&zeros).unwrap();
    }
    let bomb = enc.finish().unwrap();
    assert!(bomb.len() < 1 << 20, "{}", bomb.len());
    fs::write(ctx.join("bomb.tar.zst"), &bomb).unwrap();
    fs::write(
        ctx.join("Dockerfile"),
        format!("FROM {base}\nADD bomb.tar.zst /bomb/\n"),
    )
    .unwrap();
    let out = work.path().join("out");
    let result = build(&ctx, &out);
    assert!(!result.status.success());
    let err = String::from_utf8_lossy(&result.stderr);
    assert!(
        err.contains("exceeds the limit") && err.contains("bomb.tar.zst"),
        "{err}"
    );
    assert!(!out.exists(), "nothing at the output path");
    assert!(markers.left().is_empty());
}

/// The same plants arriving in a package of a recipe build (Alpine fixture
/// repository on 127.0.0.1), with a post-install script that runs them in
/// the sandbox: the build, its scripts and the packing that follows leave
/// no marker on the host. (/usr/local and the library directories: the
/// other PATH directories belong to busybox's applet links.)
#[test]
fn a_recipe_build_never_runs_planted_files_on_the_host() {
    use common::apkrepo::{self, PackageSpec};
    if !can_run() {
        return;
    }
    let Some(busybox) = apkrepo::host_static_busybox() else {
        skip("no static busybox on the host");
        return;
    };
    let arch = std::env::consts::ARCH;
    let work = tempfile::tempdir().unwrap();
    let markers = Markers::new("recipe");
    let (lib, _) = planted_library(work.path(), &markers);
    let tool = planted_tool(&markers);
    let mut spec = PackageSpec::new("planted", "1.0-r0", arch);
    spec.depends = vec!["busybox".into()];
    for d in ["usr/local/sbin", "usr/local/bin"] {
        for t in TOOLS {
            spec.entries
                .push(apkrepo::file(&format!("{d}/{t}"), 0o755, tool.as_bytes()));
        }
    }
    for d in ["lib", "usr/lib", "usr/local/lib"] {
        for m in NSS_MODULES {
            spec.entries
                .push(apkrepo::file(&format!("{d}/{m}"), 0o755, &lib));
        }
    }
    spec.scripts.push((
        ".post-install".into(),
        b"#!/bin/sh\nexport PATH=/usr/local/sbin:/usr/local/bin:$PATH\ngzip; xz; tar; ldconfig; getent passwd root; sh -c true\nexit 0\n".to_vec(),
    ));
    let mut repo = common::fixture::alpine_repo(&work.path().join("mirror"), arch, &busybox);
    repo.add_package(&spec).unwrap();
    let server = common::httpd::TestServer::serve(&repo.root);
    let recipe = work.path().join("planted.toml");
    fs::write(
        &recipe,
        format!(
            "{}\n[packages]\ninstall = [\"planted\"]\n",
            common::fixture::alpine_source(arch)
        ),
    )
    .unwrap();
    let out = work.path().join("out");
    let result = Command::new(common::run::BIN)
        .arg("build")
        .arg(&recipe)
        .arg("--mirror")
        .arg(server.base_url())
        .arg("--keys")
        .arg(&repo.keys_dir)
        .arg("--cache-dir")
        .arg(work.path().join("cache"))
        .arg("--work-dir")
        .arg(work.path())
        .arg("--output")
        .arg(format!("oci:{}", out.display()))
        .env_remove("ROOTSTRAP_MIRROR")
        .output()
        .unwrap();
    assert!(
        result.status.success(),
        "{}",
        String::from_utf8_lossy(&result.stderr)
    );
    let left = markers.left();
    assert!(left.is_empty(), "planted files ran on the host: {left:?}");
    // The script did run them, inside the sandbox.
    ran_inside(&out, &markers, "the post-install script");
}
