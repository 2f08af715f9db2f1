//! Isolation levels change how scripts are isolated, never what the image
//! holds: the same fixture built at the namespaces and chroot levels, and
//! rootless (userns) when the host has a user with subordinate IDs, gives
//! the same OCI layout byte for byte, with the owners the packages and
//! scripts set. A user with no usable level gets a clear error and nothing
//! at the output path.

use crate::common;
use crate::common::skip::skip;

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::apkrepo;
use common::debrepo::{sandbox_runtime_packages, DebPackage, Repo};
use common::fixture::{self, DebFixture};
use common::httpd::TestServer;
use common::run::{self, is_root};

/// A postinst that sets owners beyond the building user's own ID (uid
/// 1234, gid 4321, and `nobody`'s 65534) and a setgid directory, and
/// records what `ischroot` answers, as Debian's scripts ask it.
const OWNERS_POSTINST: &str = "#!/bin/sh\nset -e\n[ \"$1\" = configure ] || exit 0\n\
bb=/usr/bin/busybox\n\
$bb mkdir -p /srv/owned/shared\n\
echo data > /srv/owned/file\n\
$bb chown 1234:4321 /srv/owned/file\n\
$bb chown 65534:65534 /srv/owned/shared\n\
$bb chmod 2775 /srv/owned/shared\n\
if [ \"$($bb stat -L -c %i /)\" != \"$($bb stat -L -c %i /proc/1/root 2>/dev/null)\" ]; then\n\
  echo chroot > /srv/owned/view\n\
else\n\
  echo not-chroot > /srv/owned/view\n\
fi\n\
exit 0\n";

/// Who runs a build.
#[derive(Clone, Copy)]
enum As {
    Root(&'static str),
    User { uid: u32, gid: u32 },
}

fn build(dir: &Path, who: As, tag: &str, args: &[String]) -> (Output, PathBuf) {
    let out = dir.join(format!("out-{tag}"));
    let mut cmd = match who {
        As::Root(_) => run::rootstrap_isolated(),
        // The user may not reach the build directory (a checkout under
        // /root, say): it runs a copy of the binary in the fixture's
        // directory, which `open_to_everyone` opened.
        As::User { .. } => {
            let copy = dir.join("rootstrap-for-user");
            if !copy.exists() {
                std::fs::copy(run::BIN, &copy).unwrap();
            }
            let mut cmd = Command::new(copy);
            cmd.args(["--progress", "plain"])
                .env_remove("ROOTSTRAP_MIRROR")
                .env_remove("SOURCE_DATE_EPOCH");
            cmd
        }
    };
    cmd.arg("build")
        .args(args)
        .arg("--cache-dir")
        .arg(dir.join(format!("cache-{tag}")))
        .arg("--output")
        .arg(format!("oci:{}", out.display()))
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .env_remove("TMPDIR")
        .current_dir(dir);
    match who {
        As::Root(level) => {
            cmd.env("ROOTSTRAP_ISOLATION", level);
        }
        As::User { uid, gid } => {
            cmd.env("ROOTSTRAP_ISOLATION", "auto").uid(uid).gid(gid);
        }
    }
    (cmd.output().unwrap(), out)
}

fn built(dir: &Path, who: As, tag: &str, args: &[String], level: &str) -> PathBuf {
    let (output, out) = build(dir, who, tag, args);
    let log = run::stderr(&output);
    assert!(output.status.success(), "build {tag} failed:\n{log}");
    assert!(
        log.contains(&format!("isolation: {level}")),
        "build {tag} should name level {level}:\n{log}"
    );
    out
}

fn index_digest(oci: &Path) -> String {
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(oci.join("index.json")).unwrap()).unwrap();
    index["manifests"][0]["digest"].as_str().unwrap().to_owned()
}

/// The (uid, gid, permission bits, content) of an entry of the image's
/// only layer, as GNU tar reads it.
fn layer_entry(oci: &Path, name: &str) -> (u64, u64, u32, Vec<u8>) {
    let digest = index_digest(oci);
    let blob = |d: &str| {
        oci.join("blobs/sha256")
            .join(d.trim_start_matches("sha256:"))
    };
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(blob(&digest)).unwrap()).unwrap();
    let layer = blob(manifest["layers"][0]["digest"].as_str().unwrap());
    let list = Command::new("tar")
        .arg("-tvzf")
        .arg(&layer)
        .args(["--numeric-owner", "--full-time"])
        .output()
        .unwrap();
    let line = run::text(&list.stdout)
        .lines()
        .find(|l| l.split_whitespace().nth(5).map(|n| n.trim_end_matches('/')) == Some(name))
        .unwrap_or_else(|| panic!("{name} not in the layer of {}", oci.display()))
        .to_owned();
    let fields: Vec<&str> = line.split_whitespace().collect();
    let (uid, gid) = fields[1].split_once('/').unwrap();
    let mode = permission_bits(fields[0]);
    let content = if fields[0].starts_with('-') {
        Command::new("tar")
            .arg("-xzOf")
            .arg(&layer)
            .arg(name)
            .output()
            .unwrap()
            .stdout
    } else {
        Vec::new()
    };
    (uid.parse().unwrap(), gid.parse().unwrap(), mode, content)
}

/// `drwxrwsr-x` → 0o2775.
fn permission_bits(text: &str) -> u32 {
    let c: Vec<char> = text.chars().skip(1).collect();
    let mut mode = 0;
    for (i, ch) in c.iter().enumerate().take(9) {
        if !matches!(ch, '-' | 'S' | 'T') {
            mode |= 1 << (8 - i);
        }
    }
    if matches!(c[2], 's' | 'S') {
        mode |= 0o4000;
    }
    if matches!(c[5], 's' | 'S') {
        mode |= 0o2000;
    }
    if matches!(c[8], 't' | 'T') {
        mode |= 0o1000;
    }
    mode
}

/// A user with at least 65535 subordinate uids and gids, newuidmap and
/// newgidmap, for the rootless build; `None` (with a SKIP line) otherwise.
fn rootless_user() -> Option<(u32, u32)> {
    let skip = |why: &str| {
        skip(format!("rootless: {why}"));
        None
    };
    if !Path::new("/usr/bin/newuidmap").exists() {
        return skip("no newuidmap (install uidmap)");
    }
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let subuid = std::fs::read_to_string("/etc/subuid").unwrap_or_default();
    let subgid = std::fs::read_to_string("/etc/subgid").unwrap_or_default();
    let has_range = |text: &str, name: &str| {
        text.lines().any(|l| {
            let f: Vec<&str> = l.split(':').collect();
            f.len() == 3 && f[0] == name && f[2].parse::<u32>().is_ok_and(|c| c >= 65535)
        })
    };
    let wanted = std::env::var("ROOTSTRAP_TEST_ROOTLESS_USER").ok();
    for line in passwd.lines() {
        let f: Vec<&str> = line.split(':').collect();
        if f.len() < 4 || f[2] == "0" {
            continue;
        }
        if wanted.as_deref().is_some_and(|w| w != f[0]) {
            continue;
        }
        if has_range(&subuid, f[0]) && has_range(&subgid, f[0]) {
            return Some((f[2].parse().ok()?, f[3].parse().ok()?));
        }
    }
    skip("no user with 65535 subordinate IDs in /etc/subuid and /etc/subgid")
}

/// The Alpine fixture repository served on 127.0.0.1 and the build
/// arguments for it; `None` (with a SKIP line) without root or busybox.
struct AlpineFixture {
    tmp: tempfile::TempDir,
    _server: TestServer,
    args: Vec<String>,
}

impl AlpineFixture {
    fn new() -> Option<AlpineFixture> {
        if !is_root() {
            skip("needs root (sandbox namespaces, chown)");
            return None;
        }
        let Some(busybox) = apkrepo::host_static_busybox() else {
            skip("no static busybox on the host (install busybox-static)");
            return None;
        };
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let repo = fixture::alpine_repo(&dir.join("mirror"), "x86_64", &busybox);
        let server = TestServer::serve(&repo.root);
        let recipe = dir.join("alpine.toml");
        std::fs::write(&recipe, fixture::alpine_source("x86_64")).unwrap();
        let args = vec![
            recipe.display().to_string(),
            "--mirror".into(),
            server.base_url(),
            "--keys".into(),
            repo.keys_dir.display().to_string(),
        ];
        Some(AlpineFixture {
            tmp,
            _server: server,
            args,
        })
    }
}

/// `build -f CTX/Dockerfile CTX`.
fn dockerfile_args(ctx: &Path) -> Vec<String> {
    vec![
        "-f".to_string(),
        ctx.join("Dockerfile").display().to_string(),
        ctx.display().to_string(),
    ]
}

/// Lets another user read the fixture and write its outputs and caches.
fn open_to_everyone(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777)).unwrap();
}

#[test]
fn debian_fixture_is_identical_at_every_level() {
    let Some(mut packages) = sandbox_runtime_packages() else {
        return;
    };
    packages.push(
        DebPackage::new("owners", "1.0-1")
            .depends("busybox, dpkg")
            .file("usr/share/owners/README", 0o644, b"owners\n")
            .script("postinst", OWNERS_POSTINST),
    );
    let f = DebFixture::new();
    let dir = f.dir.path();
    let repo = f.write_repo("repo", &Repo::new("fixture", packages));
    let server = TestServer::serve(&repo);
    let recipe = dir.join("recipe.toml");
    std::fs::write(
        &recipe,
        format!(
            "{}mirror = \"{}\"\n\n[packages]\ninstall = [\"owners\"]\n",
            fixture::debian_source("amd64"),
            server.base_url()
        ),
    )
    .unwrap();
    let args = vec![recipe.display().to_string()];
    let ns = built(dir, As::Root("namespaces"), "ns", &args, "namespaces");
    let chroot = built(dir, As::Root("chroot"), "chroot", &args, "chroot");
    assert_eq!(index_digest(&ns), index_digest(&chroot));
    assert_eq!(
        layer_entry(&ns, "srv/owned/file"),
        (1234, 4321, 0o644, b"data\n".to_vec())
    );
    let (uid, gid, mode, _) = layer_entry(&ns, "srv/owned/shared");
    assert_eq!((uid, gid, mode & 0o7777), (65534, 65534, 0o2775));
    // Package scripts see a chroot where the level can show one.
    assert_eq!(layer_entry(&ns, "srv/owned/view").3, b"chroot\n");

    if let Some((uid, gid)) = rootless_user() {
        open_to_everyone(dir);
        let user = built(dir, As::User { uid, gid }, "user", &args, "userns");
        assert_eq!(index_digest(&ns), index_digest(&user));
        assert_eq!(layer_entry(&user, "srv/owned/file").0, 1234);
        // Everything the rootless build left is the user's to delete.
        assert!(std::fs::metadata(&user).is_ok());
        let leftovers: Vec<_> = std::fs::read_dir("/dev/shm")
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with(".rootstrap-rootfs")
            })
            .filter(|e| std::os::unix::fs::MetadataExt::uid(&e.metadata().unwrap()) == uid)
            .collect();
        assert!(leftovers.is_empty(), "rootless tree left: {leftovers:?}");
    }
}

#[test]
fn alpine_fixture_and_dockerfile_steps_are_identical_at_every_level() {
    let Some(alpine) = AlpineFixture::new() else {
        return;
    };
    let (dir, args) = (alpine.tmp.path(), &alpine.args);
    let ns = built(dir, As::Root("namespaces"), "ns", args, "namespaces");
    let chroot = built(dir, As::Root("chroot"), "chroot", args, "chroot");
    assert_eq!(index_digest(&ns), index_digest(&chroot));

    // Dockerfile steps on top: RUN, COPY --chown, chown, USER.
    let ctx = dir.join("ctx");
    std::fs::create_dir(&ctx).unwrap();
    std::fs::write(ctx.join("greeting.txt"), "hello\n").unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        format!(
            "FROM oci:{}\n\
             RUN mkdir -p /home/app && echo made > /home/app/made && chown -R 1234:1234 /home/app\n\
             COPY --chown=1234:4321 greeting.txt /home/app/greeting.txt\n\
             RUN chmod 0640 /home/app/greeting.txt && ls /dev/null > /home/app/dev\n\
             USER 1234\n\
             WORKDIR /home/app\n\
             CMD [\"cat\", \"greeting.txt\"]\n",
            ns.display()
        ),
    )
    .unwrap();
    let df_args = dockerfile_args(&ctx);
    let df_ns = built(dir, As::Root("namespaces"), "df-ns", &df_args, "namespaces");
    let df_chroot = built(dir, As::Root("chroot"), "df-chroot", &df_args, "chroot");
    assert_eq!(index_digest(&df_ns), index_digest(&df_chroot));

    if let Some((uid, gid)) = rootless_user() {
        open_to_everyone(dir);
        let user = built(dir, As::User { uid, gid }, "user", args, "userns");
        assert_eq!(index_digest(&ns), index_digest(&user));
        let df_user = built(dir, As::User { uid, gid }, "df-user", &df_args, "userns");
        assert_eq!(index_digest(&df_ns), index_digest(&df_user));
    }
}

#[test]
fn chroot_level_refuses_what_it_cannot_isolate() {
    let Some(alpine) = AlpineFixture::new() else {
        return;
    };
    let (dir, args) = (alpine.tmp.path(), &alpine.args);
    let base = built(dir, As::Root("chroot"), "base", args, "chroot");
    let ctx = dir.join("ctx");
    std::fs::create_dir(&ctx).unwrap();
    for (name, step) in [
        ("cache", "RUN --mount=type=cache,target=/c true"),
        ("network", "RUN --network=none true"),
    ] {
        std::fs::write(
            ctx.join("Dockerfile"),
            format!("FROM oci:{}\n{step}\n", base.display()),
        )
        .unwrap();
        let df_args = dockerfile_args(&ctx);
        let (output, out) = build(dir, As::Root("chroot"), name, &df_args);
        let log = run::stderr(&output);
        assert!(!output.status.success(), "{name}: accepted under chroot");
        assert!(
            log.contains("isolation chroot does not have"),
            "{name}: {log}"
        );
        assert!(!out.exists(), "{name}: output written");
    }
    // `rootstrap run` in chroot isolation: device nodes for the run, gone
    // after it; the command cannot make its own.
    let o = run::rootstrap()
        .args(["--isolation", "chroot", "run"])
        .arg(format!("oci:{}", base.display()))
        .args(["--", "/bin/sh", "-c", "echo x > /dev/null && busybox head -c 3 /dev/zero | busybox wc -c; mknod /tmp/n c 1 3 || echo no-mknod"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", run::stderr(&o));
    assert_eq!(
        run::text(&o.stdout).split_whitespace().collect::<Vec<_>>(),
        ["3", "no-mknod"]
    );
}

#[test]
fn no_usable_level_is_a_clear_error_with_nothing_written() {
    if !is_root() {
        skip("needs root (to run as a user without subordinate IDs)");
        return;
    }
    let subuid = std::fs::read_to_string("/etc/subuid").unwrap_or_default();
    if subuid
        .lines()
        .any(|l| l.starts_with("nobody:") || l.starts_with("65534:"))
    {
        skip("nobody has subordinate IDs here");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    open_to_everyone(tmp.path());
    let out = tmp.path().join("out");
    let output = run::rootstrap()
        .args(["build", "alpine-3.20", "--output"])
        .arg(format!("oci:{}", out.display()))
        .env_remove("ROOTSTRAP_ISOLATION")
        .current_dir(tmp.path())
        .uid(65534)
        .gid(65534)
        .output()
        .unwrap();
    let log = run::stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{log}");
    assert!(log.contains("no isolation level is usable"), "{log}");
    assert!(
        log.contains("/etc/subuid") && log.contains("uidmap"),
        "{log}"
    );
    assert!(!out.exists());
}
