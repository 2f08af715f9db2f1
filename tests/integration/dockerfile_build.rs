//! Dockerfile builds through the CLI binary on a base image made at test time
//! from the host's static busybox. RUN needs root (namespaces, chroot), so
//! every test here skips with a notice without it or without busybox.

use crate::common::httpd::TestServer;
use crate::common::run;
use crate::common::skip::{not_applicable, skip};
use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output as ProcOutput};

use rootstrap::image::oci::{History, ImageConfig};
use rootstrap::image::{
    unpack_layers, ImageBuilder, ImageSource, LayerCompression, LayerEntryKind as EntryKind,
    LayerOptions, LayerReader as TarReader, MemorySink, OpenedImage, Output, TarHeader,
};

const BUSYBOX: &str = "/bin/busybox";

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

/// A busybox rootfs with an `app` user, `/t -> /etc` and a /tmp, packed as
/// an OCI layout at `dir/base`. Returns `oci:<path>`.
fn make_base(dir: &Path) -> String {
    let rootfs = dir.join("base-rootfs");
    for d in ["bin", "etc", "tmp", "home/app"] {
        fs::create_dir_all(rootfs.join(d)).unwrap();
    }
    fs::set_permissions(rootfs.join("tmp"), fs::Permissions::from_mode(0o1777)).unwrap();
    fs::copy(BUSYBOX, rootfs.join("bin/busybox")).unwrap();
    for applet in [
        "sh", "cat", "echo", "id", "mkdir", "rm", "touch", "ls", "true", "ip",
    ] {
        symlink("busybox", rootfs.join("bin").join(applet)).unwrap();
    }
    fs::write(
        rootfs.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1001::/home/app:/bin/sh\n",
    )
    .unwrap();
    fs::write(rootfs.join("etc/group"), "root:x:0:\napp:x:1001:\n").unwrap();
    symlink("/etc", rootfs.join("t")).unwrap();
    let mut builder = ImageBuilder::new_in(
        dir,
        ImageConfig::new("amd64", "linux"),
        LayerCompression::Gzip,
    )
    .unwrap();
    builder
        .add_layer_from_dir(&rootfs, &LayerOptions::default(), History::default())
        .unwrap();
    let out = dir.join("base");
    builder.write(&Output::OciDir(out.clone()), None).unwrap();
    format!("oci:{}", out.display())
}

fn rootstrap(args: &[&str]) -> ProcOutput {
    run::logged(
        run::rootstrap()
            .env("SOURCE_DATE_EPOCH", "1700000000")
            .args(args),
    )
}

fn build(ctx: &Path, extra: &[&str]) -> ProcOutput {
    let dockerfile = ctx.join("Dockerfile");
    let mut args = vec![
        "build",
        "-f",
        dockerfile.to_str().unwrap(),
        ctx.to_str().unwrap(),
    ];
    // Isolated from the user's step cache and image store unless a test
    // names its own: a store beside the context, in the test's temp dir.
    let own_cache = ctx.with_extension("cache");
    if !extra.contains(&"--cache-dir") {
        args.extend(["--no-cache", "--cache-dir", own_cache.to_str().unwrap()]);
    }
    args.extend_from_slice(extra);
    rootstrap(&args)
}

fn open(dir: &Path) -> OpenedImage {
    OpenedImage::open(&ImageSource::OciDir(dir.to_path_buf()), None).unwrap()
}

fn files(image: &OpenedImage) -> MemorySink {
    let mut sink = MemorySink::default();
    unpack_layers(image, &mut sink).unwrap();
    sink
}

fn entry<'a>(sink: &'a MemorySink, path: &str) -> &'a (TarHeader, Vec<u8>) {
    sink.entries
        .get(Path::new(path))
        .unwrap_or_else(|| panic!("{path} missing from the image"))
}

fn layer_paths(image: &OpenedImage) -> Vec<Vec<String>> {
    (0..image.layers.len())
        .map(|i| {
            let mut reader = TarReader::new(image.open_layer(i).unwrap());
            let mut names = Vec::new();
            while let Some(h) = reader.next_entry().unwrap() {
                names.push(h.path.display().to_string());
            }
            names
        })
        .collect()
}

/// A ustar archive written by hand, so it can hold hostile names.
fn raw_tar(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, data) in entries {
        let mut h = [0u8; 512];
        h[..name.len()].copy_from_slice(name.as_bytes());
        h[100..107].copy_from_slice(b"0000644");
        h[108..115].copy_from_slice(b"0000000");
        h[116..123].copy_from_slice(b"0000000");
        h[124..135].copy_from_slice(format!("{:011o}", data.len()).as_bytes());
        h[136..147].copy_from_slice(b"00000000000");
        h[156] = b'0';
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        h[148..156].copy_from_slice(b"        ");
        let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
        h[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
        out.extend_from_slice(&h);
        out.extend_from_slice(data);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }
    out.resize(out.len() + 1024, 0);
    out
}

const DOCKERFILE: &str = r#"ARG BASE
from ${BASE} as builder
RUN echo built > /artifact

FROM ${BASE}
ARG GREETING=hello
ARG OVERRIDE=from-arg
ENV OVERRIDE=from-env
RUN echo "$GREETING $OVERRIDE" > /greeting
WORKDIR /srv
WORKDIR app
COPY --from=builder /artifact /copied
COPY --chown=app:app --chmod=0640 f.txt /owned.txt
COPY link /link
COPY f.txt /t/x
COPY . /ctx/
ADD good.tar /unpacked/
RUN touch /del-me
RUN rm /del-me
USER app
RUN id -u > /tmp/uid
EXPOSE 80 53/udp
VOLUME /data
LABEL org.example.k=v
MAINTAINER someone
STOPSIGNAL SIGTERM
HEALTHCHECK CMD true
ONBUILD RUN touch /tmp/onbuild-fired
CMD ["/bin/sh"]
"#;

#[test]
fn multi_stage_build_with_metadata_and_hostile_paths() {
    if !can_run() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let base = make_base(tmp.path());
    let ctx = tmp.path().join("ctx");
    fs::create_dir(&ctx).unwrap();
    fs::write(ctx.join("Dockerfile"), DOCKERFILE).unwrap();
    fs::write(ctx.join("f.txt"), "file\n").unwrap();
    fs::write(ctx.join("ignored.txt"), "nope\n").unwrap();
    fs::write(ctx.join(".dockerignore"), "ignored.txt\n").unwrap();
    symlink("/etc/shadow", ctx.join("link")).unwrap();
    // A relative link out of the context, to a file that exists there.
    fs::write(tmp.path().join("secret"), "host secret\n").unwrap();
    symlink("../secret", ctx.join("rel-link")).unwrap();
    fs::write(ctx.join("good.tar"), raw_tar(&[("inner.txt", b"inner\n")])).unwrap();
    let out = tmp.path().join("out");
    let base_arg = format!("BASE={base}");
    let out_arg = format!("oci:{}", out.display());
    let result = build(
        &ctx,
        &[
            "-t",
            "rootstrap-test/dockerfile:1",
            "--output",
            &out_arg,
            "--build-arg",
            &base_arg,
            "--build-arg",
            "GREETING=hi",
        ],
    );
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(result.status.success(), "{stderr}");
    assert!(stderr.contains("#2 RUN echo built"), "{stderr}");

    let image = open(&out);
    let fs_ = files(&image);
    assert_eq!(entry(&fs_, "greeting").1, b"hi from-env\n");
    assert_eq!(entry(&fs_, "copied").1, b"built\n");
    let (owned, data) = entry(&fs_, "owned.txt");
    assert_eq!((owned.uid, owned.gid, owned.mode), (1000, 1001, 0o640));
    assert_eq!(data, b"file\n");
    // HOSTILE 38: the context link is copied as a link, never read.
    assert_eq!(
        entry(&fs_, "link").0.kind,
        EntryKind::Symlink(PathBuf::from("/etc/shadow"))
    );
    // HOSTILE 37: /t -> /etc inside the image; the file lands in its /etc.
    assert_eq!(entry(&fs_, "etc/x").1, b"file\n");
    assert_eq!(
        entry(&fs_, "t").0.kind,
        EntryKind::Symlink(PathBuf::from("/etc"))
    );
    assert_eq!(entry(&fs_, "ctx/f.txt").1, b"file\n");
    assert!(!fs_.entries.contains_key(Path::new("ctx/ignored.txt")));
    // `COPY .` keeps both links out of the context as links.
    assert_eq!(
        entry(&fs_, "ctx/link").0.kind,
        EntryKind::Symlink(PathBuf::from("/etc/shadow"))
    );
    assert_eq!(
        entry(&fs_, "ctx/rel-link").0.kind,
        EntryKind::Symlink(PathBuf::from("../secret"))
    );
    assert_eq!(entry(&fs_, "unpacked/inner.txt").1, b"inner\n");
    assert_eq!(entry(&fs_, "srv/app").0.kind, EntryKind::Dir);
    assert_eq!(entry(&fs_, "tmp/uid").1, b"1000\n");
    assert!(!fs_.entries.contains_key(Path::new("del-me")));

    let layers = layer_paths(&image);
    assert!(
        layers.iter().any(|l| l.iter().any(|p| p == ".wh.del-me")),
        "no whiteout for /del-me in {layers:?}"
    );

    let config = &image.config.config;
    assert_eq!(config.working_dir.as_deref(), Some("/srv/app"));
    assert_eq!(config.user.as_deref(), Some("app"));
    assert!(config.exposed_ports.contains_key("80/tcp"));
    assert!(config.exposed_ports.contains_key("53/udp"));
    assert!(config.volumes.contains_key("/data"));
    assert_eq!(
        config.labels.get("org.example.k").map(String::as_str),
        Some("v")
    );
    assert_eq!(config.stop_signal.as_deref(), Some("SIGTERM"));
    let hc = config.healthcheck.as_ref().unwrap();
    assert_eq!(hc.test, ["CMD-SHELL", "true"]);
    assert_eq!(hc.interval, Some(30_000_000_000));
    assert_eq!(hc.timeout, Some(30_000_000_000));
    assert_eq!(hc.retries, Some(3));
    assert_eq!(config.on_build, ["RUN touch /tmp/onbuild-fired"]);
    assert_eq!(config.cmd.as_deref(), Some(&["/bin/sh".to_string()][..]));
    assert!(config.env.iter().any(|e| e == "OVERRIDE=from-env"));
    assert!(!config.env.iter().any(|e| e.starts_with("GREETING=")));
    assert_eq!(image.config.author.as_deref(), Some("someone"));
    let history = &image.config.history;
    assert!(history.iter().any(|h| h.created_by.as_deref()
        == Some("RUN /bin/sh -c echo \"$GREETING $OVERRIDE\" > /greeting")
        && !h.empty_layer));
    assert!(history
        .iter()
        .any(|h| h.created_by.as_deref() == Some("ENV OVERRIDE=from-env") && h.empty_layer));
    let layer_entries = history.iter().filter(|h| !h.empty_layer).count();
    assert_eq!(layer_entries, image.layers.len());

    // ONBUILD fires in a child build.
    let child_ctx = tmp.path().join("child");
    fs::create_dir(&child_ctx).unwrap();
    fs::write(
        child_ctx.join("Dockerfile"),
        format!("FROM oci:{}\nRUN true\n", out.display()),
    )
    .unwrap();
    let child = tmp.path().join("child-out");
    let child_arg = format!("oci:{}", child.display());
    assert!(build(&child_ctx, &["--output", &child_arg])
        .status
        .success());
    let child_image = open(&child);
    assert!(files(&child_image)
        .entries
        .contains_key(Path::new("tmp/onbuild-fired")));
    assert!(child_image.config.config.on_build.is_empty());

    docker_run(tmp.path(), &ctx, &base_arg);
}

/// Loads the image into Docker and runs it, when a daemon is reachable.
fn docker_run(tmp: &Path, ctx: &Path, base_arg: &str) {
    let reachable = Command::new("docker")
        .arg("info")
        .output()
        .is_ok_and(|o| o.status.success());
    if !reachable {
        skip("no Docker daemon reachable; not loading the image");
        return;
    }
    let archive = tmp.join("image.tar");
    let archive_arg = format!("docker-archive:{}", archive.display());
    let tag = "rootstrap-test/dockerfile:1";
    assert!(build(
        ctx,
        &["-t", tag, "--output", &archive_arg, "--build-arg", base_arg]
    )
    .status
    .success());
    let load = Command::new("docker")
        .args(["load", "-i"])
        .arg(&archive)
        .output()
        .unwrap();
    assert!(load.status.success(), "{load:?}");
    let run = Command::new("docker")
        .args(["run", "--rm", tag, "cat", "/greeting", "/etc/x"])
        .output()
        .unwrap();
    let _ = Command::new("docker").args(["rmi", "-f", tag]).output();
    assert!(run.status.success(), "{run:?}");
    assert_eq!(
        String::from_utf8_lossy(&run.stdout),
        "hello from-env\nfile\n"
    );
}

#[test]
fn failing_run_names_the_step_and_writes_nothing() {
    if !can_run() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let base = make_base(tmp.path());
    let ctx = tmp.path().join("ctx");
    fs::create_dir(&ctx).unwrap();
    fs::write(
        ctx.join("Dockerfile"),
        format!("FROM {base}\nRUN echo ok\nRUN exit 3\nRUN echo never\n"),
    )
    .unwrap();
    let out = tmp.path().join("out.tar");
    let out_arg = format!("docker-archive:{}", out.display());
    let result = build(&ctx, &["--output", &out_arg]);
    assert!(!result.status.success());
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(stderr.contains("step #3 (line 3)"), "{stderr}");
    assert!(stderr.contains("exit code 3"), "{stderr}");
    assert!(!stderr.contains("#4 RUN echo never"), "{stderr}");
    assert!(!out.exists());
}

#[test]
fn add_of_a_tar_escaping_with_dotdot_is_refused() {
    if !can_run() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let base = make_base(tmp.path());
    let ctx = tmp.path().join("ctx");
    fs::create_dir(&ctx).unwrap();
    fs::write(
        ctx.join("evil.tar"),
        raw_tar(&[("../../../../../../tmp/rootstrap-evil", b"x")]),
    )
    .unwrap();
    // Into a subdirectory (via a scratch dir) and straight into the root.
    for dst in ["/x/", "/"] {
        fs::write(
            ctx.join("Dockerfile"),
            format!("FROM {base}\nADD evil.tar {dst}\n"),
        )
        .unwrap();
        let out = tmp.path().join("out");
        let out_arg = format!("oci:{}", out.display());
        let result = build(&ctx, &["--output", &out_arg]);
        assert!(!result.status.success());
        let stderr = String::from_utf8_lossy(&result.stderr);
        assert!(stderr.contains("evil.tar"), "{stderr}");
        assert!(!Path::new("/tmp/rootstrap-evil").exists());
        assert!(!out.exists());
    }
}

/// HOSTILE 37 for ADD (BuildKit's testDockerfileAddArchiveThroughAbsoluteSymlink):
/// a tar added at `/` whose entries go through symlinks the image already
/// has lands inside the image, never on the host.
#[test]
fn add_of_a_tar_through_rootfs_symlinks_stays_inside() {
    if !can_run() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let base = make_base(tmp.path());
    let ctx = tmp.path().join("ctx");
    fs::create_dir(&ctx).unwrap();
    // A host directory the image does not have, named by an absolute link.
    let host_dir = tmp.path().join("host-dir");
    fs::create_dir(&host_dir).unwrap();
    fs::write(
        ctx.join("through.tar"),
        raw_tar(&[
            ("t/added-through-link", b"in the image\n"),
            ("h/planted", b"x"),
        ]),
    )
    .unwrap();
    fs::write(
        ctx.join("Dockerfile"),
        format!(
            "FROM {base}\nRUN ln -s /etc /t && ln -s {} /h\nADD through.tar /\n",
            host_dir.display()
        ),
    )
    .unwrap();
    let out = tmp.path().join("out");
    let out_arg = format!("oci:{}", out.display());
    let result = build(&ctx, &["--output", &out_arg]);
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(
        !Path::new("/etc/added-through-link").exists(),
        "written through /t to the host's /etc"
    );
    assert!(
        fs::read_dir(&host_dir).unwrap().next().is_none(),
        "written through /h to the host"
    );
    // `h` names a directory the image lacks: the entry is refused, naming it.
    assert!(!result.status.success());
    assert!(
        stderr.contains("through.tar") && stderr.contains("h/planted"),
        "{stderr}"
    );
    assert!(!out.exists());

    // Without the dangling link, the build succeeds and the file is in the
    // image's /etc.
    fs::write(
        ctx.join("through.tar"),
        raw_tar(&[("t/added-through-link", b"in the image\n")]),
    )
    .unwrap();
    let result = build(&ctx, &["--output", &out_arg]);
    assert!(
        result.status.success(),
        "{}",
        String::from_utf8_lossy(&result.stderr)
    );
    assert!(!Path::new("/etc/added-through-link").exists());
    let fs_ = files(&open(&out));
    assert_eq!(entry(&fs_, "etc/added-through-link").1, b"in the image\n");
    assert_eq!(
        entry(&fs_, "t").0.kind,
        EntryKind::Symlink(PathBuf::from("/etc"))
    );
}

/// HOSTILE 41: no step gets more than the sandbox gives, whatever it asks.
#[test]
fn run_security_insecure_is_refused() {
    if !can_run() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let base = make_base(tmp.path());
    let ctx = tmp.path().join("ctx");
    fs::create_dir(&ctx).unwrap();
    fs::write(
        ctx.join("Dockerfile"),
        format!("FROM {base}\nRUN --security=insecure touch /ran\n"),
    )
    .unwrap();
    let out = tmp.path().join("out");
    let out_arg = format!("oci:{}", out.display());
    let result = build(&ctx, &["--output", &out_arg]);
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(!result.status.success(), "{stderr}");
    assert!(
        stderr.contains("step #2 (line 2)")
            && stderr.contains("--security=insecure is not supported"),
        "{stderr}"
    );
    assert!(!out.exists());
}

#[test]
fn squash_gives_one_layer_and_target_stops_early() {
    if !can_run() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let base = make_base(tmp.path());
    let ctx = tmp.path().join("ctx");
    fs::create_dir(&ctx).unwrap();
    fs::write(
        ctx.join("Dockerfile"),
        format!(
            "FROM {base} AS first\nRUN echo 1 > /one\nRUN rm /bin/ls\n\
             RUN <<EOF\necho heredoc > /h\necho \"$0\" >> /h\nEOF\n\
             RUN [\"/bin/sh\", \"-c\", \"echo exec > /e\"]\n\
             RUN --network=none ip -o link > /net\n\
             FROM first\nRUN false\n\
             FROM {base} AS unrelated\nRUN false\n\
             FROM {base} AS final\nCOPY --from=first /one /one\n"
        ),
    )
    .unwrap();
    let out = tmp.path().join("out");
    let out_arg = format!("oci:{}", out.display());
    let result = build(
        &ctx,
        &["--output", &out_arg, "--target", "first", "--squash"],
    );
    assert!(result.status.success());
    // Stages the target does not depend on are skipped (`RUN false`).
    let final_out = tmp.path().join("final");
    let final_arg = format!("oci:{}", final_out.display());
    let result = build(&ctx, &["--output", &final_arg]);
    assert!(result.status.success());
    assert_eq!(entry(&files(&open(&final_out)), "one").1, b"1\n");
    let result = build(
        &ctx,
        &["--output", &out_arg, "--target", "first", "--squash"],
    );
    assert!(result.status.success());
    let image = open(&out);
    assert_eq!(image.layers.len(), 1);
    let fs_ = files(&image);
    assert_eq!(entry(&fs_, "one").1, b"1\n");
    assert!(!fs_.entries.contains_key(Path::new("bin/ls")));
    assert!(fs_.entries.contains_key(Path::new("bin/cat")));
    assert_eq!(entry(&fs_, "h").1, b"heredoc\n/bin/sh\n");
    assert_eq!(entry(&fs_, "e").1, b"exec\n");
    // --network=none: a fresh namespace holding only the loopback interface.
    let net = String::from_utf8_lossy(&entry(&fs_, "net").1).into_owned();
    assert_eq!(net.lines().count(), 1, "{net}");
    assert!(net.contains(": lo:"), "{net}");
}

/// HOSTILE 40: a WORKDIR through /proc/self/fd never gives RUN a working
/// directory outside the root.
#[test]
fn workdir_through_proc_self_fd_is_refused() {
    if !can_run() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let base = make_base(tmp.path());
    let ctx = tmp.path().join("ctx");
    fs::create_dir(&ctx).unwrap();
    fs::write(
        ctx.join("Dockerfile"),
        format!("FROM {base}\nWORKDIR /proc/self/fd/3\nRUN ls ../../../../ > /escaped\n"),
    )
    .unwrap();
    let out = tmp.path().join("out");
    let out_arg = format!("oci:{}", out.display());
    let result = build(&ctx, &["--output", &out_arg]);
    assert!(!result.status.success());
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(stderr.contains("step #3 (line 3)"), "{stderr}");
    assert!(!out.exists());
}

#[test]
fn add_url_checks_the_checksum_and_hides_credentials() {
    if !can_run() {
        return;
    }
    use sha2::{Digest, Sha256};
    const BODY: &[u8] = b"downloaded\n";
    let tmp = tempfile::tempdir().unwrap();
    let server = TestServer::serve(tmp.path());
    server.put("/dir/payload.txt", BODY);
    let port = server.addr().port();
    let base = make_base(tmp.path());
    let url = format!("http://user:s3cr3t@127.0.0.1:{port}/dir/payload.txt");
    let good = format!("sha256:{}", hex::encode(Sha256::digest(BODY)));
    let bad = format!("sha256:{}", "0".repeat(64));
    for (checksum, ok) in [(&good, true), (&bad, false)] {
        let ctx = tmp.path().join(format!("ctx-{ok}"));
        fs::create_dir(&ctx).unwrap();
        fs::write(
            ctx.join("Dockerfile"),
            format!("FROM {base}\nADD --checksum={checksum} {url} /dl/\n"),
        )
        .unwrap();
        let out = tmp.path().join(format!("out-{ok}"));
        let out_arg = format!("oci:{}", out.display());
        let result = build(&ctx, &["--output", &out_arg]);
        let stderr = String::from_utf8_lossy(&result.stderr);
        assert!(!stderr.contains("s3cr3t"), "{stderr}");
        assert_eq!(result.status.success(), ok, "{stderr}");
        if !ok {
            assert!(stderr.contains("checksum mismatch"), "{stderr}");
            assert!(!out.exists());
            continue;
        }
        let image = open(&out);
        assert_eq!(entry(&files(&image), "dl/payload.txt").1, BODY);
        let config = serde_json::to_string(&image.config).unwrap();
        assert!(!config.contains("s3cr3t"), "{config}");
        assert!(config.contains("ADD --checksum"), "{config}");
    }
}

#[test]
fn same_epoch_gives_the_same_image() {
    if !can_run() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let base = make_base(tmp.path());
    let ctx = tmp.path().join("ctx");
    fs::create_dir(&ctx).unwrap();
    fs::write(ctx.join("f"), "x").unwrap();
    fs::write(
        ctx.join("Dockerfile"),
        format!("FROM {base}\nRUN mkdir -p /a/b && echo 1 > /a/b/c\nCOPY f /a/\nENV X=1\n"),
    )
    .unwrap();
    let digests: Vec<String> = (0..2)
        .map(|i| {
            let out_arg = format!("oci:{}", tmp.path().join(format!("out{i}")).display());
            let result = build(&ctx, &["--output", &out_arg]);
            assert!(result.status.success());
            let stdout = String::from_utf8_lossy(&result.stdout).into_owned();
            stdout.split_whitespace().nth(1).unwrap().to_string()
        })
        .collect();
    assert!(digests[0].starts_with("sha256:"));
    assert_eq!(digests[0], digests[1]);
}

/// The manifest digest a build prints for its (single) output.
fn printed_digest(result: &ProcOutput) -> String {
    assert!(result.status.success(), "build failed");
    let stdout = String::from_utf8_lossy(&result.stdout).into_owned();
    stdout.split_whitespace().nth(1).unwrap().to_string()
}

fn cached_steps(result: &ProcOutput) -> usize {
    String::from_utf8_lossy(&result.stderr)
        .lines()
        .filter(|l| l.ends_with(" CACHED"))
        .count()
}

#[test]
fn step_cache_reuses_unchanged_steps_byte_for_byte() {
    if !can_run() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let base = make_base(tmp.path());
    let ctx = tmp.path().join("ctx");
    let cache = tmp.path().join("cache");
    fs::create_dir(&ctx).unwrap();
    fs::write(ctx.join("a.txt"), "a").unwrap();
    fs::write(ctx.join("b.txt"), "b").unwrap();
    // Random RUN output: a fresh run can never give the same layer, so an
    // equal digest proves the layer was reused.
    let random = "busybox head -c 16 /dev/urandom | busybox od -An -tx1";
    fs::write(
        ctx.join("Dockerfile"),
        format!(
            "FROM {base} AS gen\nRUN {random} > /gen\n\
             FROM {base}\nCOPY a.txt /a.txt\nRUN {random} > /r1\nCOPY b.txt /b.txt\n\
             COPY --from=gen /gen /gen\nARG V=1\nRUN {random} > /r2-$V\nENV X=1\n"
        ),
    )
    .unwrap();
    let cache_arg = cache.to_str().unwrap();
    let out = |i: usize| tmp.path().join(format!("out{i}"));
    let run = |i: usize, extra: &[&str]| {
        let out_arg = format!("oci:{}", out(i).display());
        let mut args = vec!["--cache-dir", cache_arg, "--output", &out_arg];
        args.extend_from_slice(extra);
        build(&ctx, &args)
    };
    let first = run(0, &[]);
    assert_eq!(cached_steps(&first), 0);
    let d0 = printed_digest(&first);

    let second = run(1, &[]);
    assert_eq!(cached_steps(&second), 6, "every file step is reused");
    assert_eq!(printed_digest(&second), d0);
    assert_eq!(
        fs::read(out(0).join("index.json")).unwrap(),
        fs::read(out(1).join("index.json")).unwrap()
    );

    let fresh = run(2, &["--no-cache"]);
    assert_eq!(cached_steps(&fresh), 0);
    assert_ne!(printed_digest(&fresh), d0, "--no-cache runs the steps");

    // A changed COPY source re-runs that step and every later one; the
    // COPY --from then needs the cached `gen` stage's files on disk.
    fs::write(ctx.join("b.txt"), "b2").unwrap();
    let changed = run(3, &[]);
    assert_eq!(cached_steps(&changed), 3, "gen RUN, COPY a.txt, RUN r1");
    let d3 = printed_digest(&changed);
    assert_ne!(d3, d0);
    let (before, after) = (files(&open(&out(0))), files(&open(&out(3))));
    assert_eq!(entry(&before, "r1").1, entry(&after, "r1").1);
    assert_eq!(entry(&before, "gen").1, entry(&after, "gen").1);
    assert_eq!(entry(&after, "b.txt").1, b"b2");
    assert_ne!(entry(&before, "r2-1").1, entry(&after, "r2-1").1);

    // A build argument in scope is part of a RUN step's key.
    let with_arg = run(4, &["--build-arg", "V=2"]);
    assert_eq!(cached_steps(&with_arg), 5);
    assert!(files(&open(&out(4)))
        .entries
        .contains_key(Path::new("r2-2")));

    // Corrupt cached blobs are detected (re-hashed on use): the steps run
    // again, and the next build is served from fresh entries.
    for blob in fs::read_dir(cache.join("dockerfile-steps/blobs")).unwrap() {
        fs::write(blob.unwrap().path(), b"corrupt").unwrap();
    }
    let repaired = run(5, &["--build-arg", "V=2"]);
    assert_eq!(cached_steps(&repaired), 0);
    let d5 = printed_digest(&repaired);
    let again = run(6, &["--build-arg", "V=2"]);
    assert_eq!(cached_steps(&again), 6);
    assert_eq!(printed_digest(&again), d5);
}

#[test]
fn tagged_images_are_stored_listed_used_and_removed() {
    if !can_run() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let base = make_base(tmp.path());
    let ctx = tmp.path().join("ctx");
    let cache = tmp.path().join("cache");
    let cache_arg = cache.to_str().unwrap();
    fs::create_dir(&ctx).unwrap();
    fs::write(
        ctx.join("Dockerfile"),
        format!("FROM {base}\nRUN echo one > /one\n"),
    )
    .unwrap();
    let first = build(&ctx, &["--cache-dir", cache_arg, "-t", "me/base:1"]);
    assert!(first.status.success());
    let stdout = String::from_utf8_lossy(&first.stdout).into_owned();
    assert!(stdout.starts_with("me/base:1  sha256:"), "{stdout}");

    fs::write(
        ctx.join("Dockerfile"),
        "FROM me/base:1\nRUN echo two > /two\n",
    )
    .unwrap();
    let out = tmp.path().join("child");
    let out_arg = format!("oci:{}", out.display());
    let child = build(
        &ctx,
        &[
            "--cache-dir",
            cache_arg,
            "-t",
            "me/child",
            "--output",
            &out_arg,
        ],
    );
    assert!(child.status.success());
    let sink = files(&open(&out));
    assert_eq!(entry(&sink, "one").1, b"one\n");
    assert_eq!(entry(&sink, "two").1, b"two\n");

    let list = rootstrap(&["images", "--cache-dir", cache_arg]);
    let text = String::from_utf8_lossy(&list.stdout).into_owned();
    let rows: Vec<Vec<&str>> = text
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows.len(), 2, "{text}");
    assert_eq!(rows[0][..2], ["me/base", "1"]);
    assert_eq!(rows[1][..2], ["me/child", "latest"]);

    let blobs = || {
        fs::read_dir(cache.join("images/blobs/sha256"))
            .unwrap()
            .count()
    };
    let before = blobs();
    assert!(rootstrap(&["rmi", "--cache-dir", cache_arg, "me/child"])
        .status
        .success());
    assert!(blobs() < before, "the child's own blobs are collected");
    let missing = rootstrap(&["rmi", "--cache-dir", cache_arg, "me/child"]);
    assert!(!missing.status.success());
    // The base's blobs are still there and usable.
    let again = build(&ctx, &["--cache-dir", cache_arg, "--output", &out_arg]);
    assert!(again.status.success());

    fs::write(ctx.join("Dockerfile"), "FROM nosuch/image:3\n").unwrap();
    let unknown = build(&ctx, &["--cache-dir", cache_arg, "--output", &out_arg]);
    assert!(!unknown.status.success());
    let err = String::from_utf8_lossy(&unknown.stderr);
    assert!(err.contains("not in the local image store"), "{err}");
    assert!(err.contains("registry"), "{err}");
}

#[test]
fn run_mounts_never_land_in_the_layer() {
    if !can_run() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let base = make_base(tmp.path());
    let ctx = tmp.path().join("ctx");
    let cache = tmp.path().join("cache");
    let cache_arg = cache.to_str().unwrap();
    fs::create_dir_all(ctx.join("src")).unwrap();
    fs::write(ctx.join("src/input"), "from context").unwrap();
    fs::write(ctx.join("src/ignored.log"), "hidden").unwrap();
    fs::write(ctx.join(".dockerignore"), "**/*.log\n").unwrap();
    symlink("/etc/hostname", ctx.join("hostlink")).unwrap();
    let secret = tmp.path().join("token");
    fs::write(&secret, "s3cr3t-value").unwrap();
    fs::write(
        ctx.join("Dockerfile"),
        format!(
            "FROM {base} AS other\nRUN echo staged > /staged\n\
             FROM {base}\nARG CID=c1\n\
             RUN --mount=type=cache,target=/var/cache/x,id=$CID \
               cat /var/cache/x/count 2>/dev/null > /seen; echo run >> /var/cache/x/count\n\
             RUN --mount=type=tmpfs,target=/scratch,size=1m echo t > /scratch/f && cat /scratch/f > /tmpfs-ok\n\
             RUN --mount=type=bind,source=src,target=/src cat /src/input > /bound && \
               (ls /src/ignored.log 2>/dev/null || echo absent > /ignored) && \
               (touch /src/new 2>/dev/null && echo rw > /bind-rw || echo ro > /bind-ro)\n\
             RUN --mount=type=bind,from=other,source=/staged,target=/s,rw cat /s > /from-stage && echo x >> /s\n\
             RUN --mount=type=secret,id=tok cat /run/secrets/tok | busybox wc -c > /secret-len\n\
             RUN --mount=type=secret,id=tok,env=TOK echo ${{#TOK}} > /secret-env-len\n"
        ),
    )
    .unwrap();
    let out = tmp.path().join("out");
    let out_arg = format!("oci:{}", out.display());
    let secret_arg = format!("id=tok,src={}", secret.display());
    let args = [
        "--cache-dir",
        cache_arg,
        "--no-cache",
        "--secret",
        &secret_arg,
        "--output",
        &out_arg,
    ];
    assert!(build(&ctx, &args).status.success());
    let image = open(&out);
    let sink = files(&image);
    assert_eq!(entry(&sink, "seen").1, b"");
    assert_eq!(entry(&sink, "tmpfs-ok").1, b"t\n");
    assert_eq!(entry(&sink, "bound").1, b"from context");
    assert_eq!(entry(&sink, "ignored").1, b"absent\n");
    assert_eq!(entry(&sink, "bind-ro").1, b"ro\n");
    assert_eq!(entry(&sink, "from-stage").1, b"staged\n");
    assert_eq!(entry(&sink, "secret-len").1, b"12\n");
    assert_eq!(entry(&sink, "secret-env-len").1, b"12\n");
    for layer in layer_paths(&image) {
        for path in layer {
            for mounted in ["var/cache/x", "scratch", "src", "s", "run/secrets"] {
                assert!(
                    path != mounted && !path.starts_with(&format!("{mounted}/")),
                    "mount point {path} landed in a layer"
                );
            }
        }
    }
    let everything = fs::read_dir(out.join("blobs/sha256"))
        .unwrap()
        .map(|e| fs::read(e.unwrap().path()).unwrap())
        .collect::<Vec<_>>();
    let config = serde_json::to_string(&image.config).unwrap();
    assert!(!config.contains("s3cr3t"), "{config}");
    assert!(everything
        .iter()
        .all(|b| !b.windows(6).any(|w| w == b"s3cr3t")));

    // The cache mount persists across builds.
    assert!(build(&ctx, &args).status.success());
    assert_eq!(entry(&files(&open(&out)), "seen").1, b"run\n");

    // HOSTILE 41 (CVE-2024-23651): a cache `source=` through a symlink an
    // earlier RUN planted in the cache stays inside the cache.
    fs::write(
        ctx.join("Dockerfile"),
        format!(
            "FROM {base}\n\
             RUN --mount=type=cache,target=/c,id=evil ln -sfn /etc /c/etc-link && ln -sfn / /c/root-link\n\
             RUN --mount=type=cache,target=/x,id=evil,source=etc-link ls /x > /via-etc-link\n\
             RUN --mount=type=cache,target=/y,id=evil,source=root-link ls /y > /via-root-link\n"
        ),
    )
    .unwrap();
    assert!(build(&ctx, &args).status.success());
    let sink = files(&open(&out));
    assert_eq!(
        entry(&sink, "via-etc-link").1,
        b"",
        "host /etc must not show"
    );
    let listing = String::from_utf8_lossy(&entry(&sink, "via-root-link").1).into_owned();
    let names: Vec<&str> = listing.lines().collect();
    assert_eq!(
        names,
        ["etc", "etc-link", "root-link"],
        "the cache's own root"
    );

    // `id=$CID` was expanded: a literal id=c1 names the same cache.
    fs::write(
        ctx.join("Dockerfile"),
        format!("FROM {base}\nRUN --mount=type=cache,target=/c,id=c1 cat /c/count > /count\n"),
    )
    .unwrap();
    assert!(build(&ctx, &args).status.success());
    assert_eq!(entry(&files(&open(&out)), "count").1, b"run\nrun\n");

    // A required secret that is missing stops the build.
    fs::write(
        ctx.join("Dockerfile"),
        format!("FROM {base}\nRUN --mount=type=secret,id=nope,required true\n"),
    )
    .unwrap();
    let missing = build(&ctx, &["--cache-dir", cache_arg, "--output", &out_arg]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("secret \"nope\" is required"));

    // A bind source that is a symlink out of the context resolves inside
    // it (there is no etc/hostname there): the host file is never mounted.
    fs::write(
        ctx.join("Dockerfile"),
        format!("FROM {base}\nRUN --mount=type=bind,source=hostlink,target=/h cat /h\n"),
    )
    .unwrap();
    let escape = build(&ctx, &["--cache-dir", cache_arg, "--output", &out_arg]);
    assert!(!escape.status.success());
    assert!(String::from_utf8_lossy(&escape.stderr).contains("\"hostlink\": not found"));
}

#[test]
fn without_a_context_argument_the_current_directory_is_the_context() {
    let tmp = tempfile::tempdir().unwrap();
    let ctx = tmp.path().join("ctx");
    let elsewhere = tmp.path().join("dockerfiles");
    fs::create_dir_all(&ctx).unwrap();
    fs::create_dir_all(&elsewhere).unwrap();
    fs::write(ctx.join("hello"), "from cwd").unwrap();
    fs::write(elsewhere.join("hello"), "from the Dockerfile's directory").unwrap();
    let dockerfile = elsewhere.join("Dockerfile");
    fs::write(&dockerfile, "FROM scratch\nCOPY hello /hello\n").unwrap();
    let out = tmp.path().join("out");
    let result = run::rootstrap()
        .current_dir(&ctx)
        .args(["build", "--no-cache", "-f"])
        .arg(&dockerfile)
        .arg("--output")
        .arg(format!("oci:{}", out.display()))
        .output()
        .unwrap();
    assert!(
        result.status.success(),
        "{}",
        String::from_utf8_lossy(&result.stderr)
    );
    assert_eq!(entry(&files(&open(&out)), "hello").1, b"from cwd");
}

/// The image of `platform` (`linux/arm64`) in the image index at `dir`.
fn open_platform(dir: &Path, platform: &str) -> OpenedImage {
    let p = rootstrap::distro::platform::Platform::parse(platform).unwrap();
    let wanted = rootstrap::image::oci::Platform {
        architecture: p.architecture,
        os: p.os,
        variant: p.variant,
    };
    OpenedImage::open_platform(&ImageSource::OciDir(dir.to_path_buf()), None, &wanted).unwrap()
}

fn env_of(image: &OpenedImage) -> Vec<String> {
    image.config.config.env.clone()
}

#[test]
fn platform_args_follow_buildkit_and_several_platforms_make_an_index() {
    // No RUN: the platform ARGs show in file names and ENV.
    let tmp = tempfile::tempdir().unwrap();
    let ctx = tmp.path().join("ctx");
    fs::create_dir_all(&ctx).unwrap();
    fs::write(ctx.join("f"), b"x").unwrap();
    fs::write(
        ctx.join("Dockerfile"),
        "FROM --platform=$BUILDPLATFORM scratch AS build\n\
         ARG TARGETARCH BUILDARCH\n\
         COPY f /target-$TARGETARCH\n\
         COPY f /build-$BUILDARCH\n\
         FROM scratch\n\
         ARG TARGETPLATFORM TARGETOS TARGETARCH TARGETVARIANT BUILDPLATFORM\n\
         COPY --from=build / /\n\
         ENV TP=$TARGETPLATFORM TO=$TARGETOS TA=$TARGETARCH TV=$TARGETVARIANT BP=$BUILDPLATFORM\n",
    )
    .unwrap();
    let host = rootstrap::dockerfile::builder::host_platform();
    let host_arch = host.architecture.clone();
    let host_text = format!("linux/{host_arch}");

    let one = tmp.path().join("one");
    let r = build(
        &ctx,
        &[
            "--platform",
            "linux/arm/v7",
            "-o",
            &format!("oci:{}", one.display()),
        ],
    );
    assert!(r.status.success());
    let image = open(&one);
    assert_eq!(image.config.architecture, "arm");
    assert_eq!(image.config.variant.as_deref(), Some("v7"));
    let env = env_of(&image);
    for expected in [
        "TP=linux/arm/v7",
        "TO=linux",
        "TA=arm",
        "TV=v7",
        &format!("BP={host_text}"),
    ] {
        assert!(
            env.iter().any(|e| e == expected),
            "{expected} not in {env:?}"
        );
    }
    let sink = files(&image);
    entry(&sink, "target-arm");
    entry(&sink, &format!("build-{host_arch}"));

    // Two platforms: one index, each image with its own TARGETARCH and the
    // cross stage built for this machine both times.
    let index = tmp.path().join("index");
    let r = build(
        &ctx,
        &[
            "--platform",
            "linux/amd64,linux/arm64",
            "-o",
            &format!("oci:{}", index.display()),
        ],
    );
    assert!(r.status.success());
    for (platform, arch) in [("linux/amd64", "amd64"), ("linux/arm64", "arm64")] {
        let image = open_platform(&index, platform);
        assert_eq!(image.config.architecture, arch);
        assert!(env_of(&image).contains(&format!("TA={arch}")));
        assert!(env_of(&image).contains(&"TV=".to_string()));
        let sink = files(&image);
        entry(&sink, &format!("target-{arch}"));
        entry(&sink, &format!("build-{host_arch}"));
        assert!(!sink.entries.contains_key(Path::new(&format!(
            "target-{}",
            if arch == "amd64" { "arm64" } else { "amd64" }
        ))));
    }
    let top: serde_json::Value =
        serde_json::from_slice(&fs::read(index.join("index.json")).unwrap()).unwrap();
    assert_eq!(
        top["manifests"][0]["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );

    // That index as a base: FROM takes the target's image from it, FROM
    // --platform the one it names, and the final image is its stage's.
    fs::write(
        ctx.join("Dockerfile"),
        format!(
            "FROM --platform=linux/amd64 oci:{0} AS amd
             FROM oci:{0}
             COPY --from=amd /target-amd64 /from-amd
",
            index.display()
        ),
    )
    .unwrap();
    let derived = tmp.path().join("derived");
    let r = build(
        &ctx,
        &[
            "--platform",
            "linux/arm64",
            "-o",
            &format!("oci:{}", derived.display()),
        ],
    );
    assert!(r.status.success());
    let image = open(&derived);
    assert_eq!(image.config.architecture, "arm64");
    let sink = files(&image);
    entry(&sink, "target-arm64");
    entry(&sink, "from-amd");
    assert!(!sink.entries.contains_key(Path::new("target-amd64")));

    // One-image outputs are refused before anything is written.
    let tar = tmp.path().join("x.tar");
    let r = build(
        &ctx,
        &[
            "--platform",
            "linux/amd64,linux/arm64",
            "-o",
            &format!("docker-archive:{}", tar.display()),
        ],
    );
    assert!(!r.status.success());
    assert!(String::from_utf8_lossy(&r.stderr).contains("one platform's image"));
    assert!(!tar.exists());
    // -t keeps the image index in the local store: the same index as the
    // oci: output's (issue 15 replaced the refusal that stood here).
    let idx2 = tmp.path().join("idx2");
    let cache = tmp.path().join("cache");
    let r = build(
        &ctx,
        &[
            "--platform",
            "linux/amd64,linux/arm64",
            "-o",
            &format!("oci:{}", idx2.display()),
            "-t",
            "dfplat/stored:1",
            "--cache-dir",
            cache.to_str().unwrap(),
        ],
    );
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let stdout = String::from_utf8_lossy(&r.stdout).into_owned();
    let digests: Vec<&str> = stdout
        .lines()
        .filter_map(|l| l.split_whitespace().last())
        .collect();
    assert_eq!(digests.len(), 2, "{stdout}");
    assert_eq!(digests[0], digests[1], "{stdout}");
    assert!(stdout.contains("dfplat/stored:1  sha256:"), "{stdout}");

    // RUN in a stage of a platform nothing here can run stops before
    // running, naming the architecture.
    fs::write(ctx.join("Dockerfile"), "FROM scratch\nRUN true\n").unwrap();
    let out = tmp.path().join("mips");
    let r = build(
        &ctx,
        &[
            "--platform",
            "linux/mips64le",
            "-o",
            &format!("oci:{}", out.display()),
        ],
    );
    assert!(!r.status.success());
    let stderr = String::from_utf8_lossy(&r.stderr);
    assert!(stderr.contains("RUN in a mips64le stage"), "{stderr}");
    assert!(!out.exists());
}

const ALPINE_AARCH64: &str = "../shared/alpine-minirootfs/alpine-minirootfs-3.19.4-aarch64.tar.gz";

/// A context holding a busybox per architecture (`amd64/`: the host's
/// static one; `arm64/`: Alpine's, with its musl loader) and a Dockerfile
/// with a cross stage on the build platform and RUN in the target's.
fn cross_context(dir: &Path) -> PathBuf {
    let ctx = dir.join("ctx");
    fs::create_dir_all(ctx.join("arm64")).unwrap();
    fs::create_dir_all(ctx.join("amd64/bin")).unwrap();
    let status = Command::new("tar")
        .args(["xzf", ALPINE_AARCH64, "-C"])
        .arg(ctx.join("arm64"))
        .args([
            "./bin/busybox",
            "./lib/ld-musl-aarch64.so.1",
            "./lib/libc.musl-aarch64.so.1",
        ])
        .status()
        .unwrap();
    assert!(status.success());
    fs::copy(BUSYBOX, ctx.join("amd64/bin/busybox")).unwrap();
    fs::write(
        ctx.join("Dockerfile"),
        "FROM --platform=$BUILDPLATFORM scratch AS build\n\
         ARG BUILDARCH\n\
         COPY $BUILDARCH/ /\n\
         SHELL [\"/bin/busybox\", \"sh\", \"-c\"]\n\
         ARG TARGETARCH\n\
         RUN echo $TARGETARCH > /arch && /bin/busybox uname -m > /build-uname\n\
         FROM scratch\n\
         ARG TARGETARCH\n\
         COPY $TARGETARCH/ /\n\
         SHELL [\"/bin/busybox\", \"sh\", \"-c\"]\n\
         COPY --from=build /arch /build-uname /\n\
         RUN /bin/busybox uname -m > /uname\n",
    )
    .unwrap();
    ctx
}

#[test]
fn foreign_run_goes_through_binfmt_and_cross_stages_run_natively() {
    if !can_run() {
        return;
    }
    if std::env::consts::ARCH != "x86_64" {
        not_applicable("the cross context pairs an amd64 host with arm64");
        return;
    }
    if crate::common::conformance::minirootfs_tarball("alpine-minirootfs-3.19.4-aarch64.tar.gz")
        .is_none()
    {
        return;
    }
    if let Err(e) = rootstrap::rootfs::emulation::check("arm64") {
        skip(e);
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let ctx = cross_context(tmp.path());
    let cache = tmp.path().join("cache");
    let index = tmp.path().join("index");
    let r = build(
        &ctx,
        &[
            "--platform",
            "linux/amd64,linux/arm64",
            "--cache-dir",
            cache.to_str().unwrap(),
            "-o",
            &format!("oci:{}", index.display()),
        ],
    );
    assert!(r.status.success());
    for (platform, arch, uname) in [
        ("linux/amd64", "amd64", "x86_64"),
        ("linux/arm64", "arm64", "aarch64"),
    ] {
        let image = open_platform(&index, platform);
        assert_eq!(image.config.architecture, arch);
        let sink = files(&image);
        let text = |p: &str| {
            String::from_utf8_lossy(&entry(&sink, p).1)
                .trim()
                .to_string()
        };
        assert_eq!(text("arch"), arch, "{platform}");
        assert_eq!(text("build-uname"), "x86_64", "{platform}");
        assert_eq!(text("uname"), uname, "{platform}");
    }
    // One platform again: all 5 file-changing steps come from the cache (the stage
    // platform and TARGETARCH are in the keys), and the image is the
    // index's arm64 one.
    let one = tmp.path().join("one");
    let r = build(
        &ctx,
        &[
            "--platform",
            "linux/arm64",
            "--cache-dir",
            cache.to_str().unwrap(),
            "-o",
            &format!("oci:{}", one.display()),
        ],
    );
    assert!(r.status.success());
    assert_eq!(cached_steps(&r), 5);
    assert_eq!(
        open(&one).manifest_digest,
        open_platform(&index, "linux/arm64").manifest_digest
    );
}
