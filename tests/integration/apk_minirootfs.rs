//! The official Alpine minirootfs, rebuilt: its packages (Alpine's real
//! apk-tools, busybox, musl…) repacked as signed v2 packages and served on
//! 127.0.0.1, its world built by `rootstrap build`, and the tree compared
//! with the official tarball entry by entry, database included. The
//! tarballs are read from ../shared/alpine-minirootfs (SKIP when absent).

use crate::common;
use crate::common::skip::{not_applicable, skip};

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::process::Output;

use common::apkrepo::{FixtureRepo, PackageSpec, SigningKey};
use common::conformance;
use common::httpd::TestServer;
use common::minirootfs::{self, Minirootfs, TreeEntry};
use common::run::{is_root, rootstrap_isolated, stderr, text};
use rootstrap::distro::apk::tar::parse_entries;

/// Paths whose difference from the official tree is a choice, with why.
const ALLOWED: &[(&str, &str)] = &[
    (
        "",
        "the image layer has no entry for the root directory itself (a layer \
         describes what is inside it); the official tarball has `./`",
    ),
    (
        "etc/apk/repositories",
        "names the repository the image was built from (here the test's \
         loopback server), so that `apk add` in the image uses it",
    ),
    (
        "etc/apk/keys/",
        "the keys that verified the build are written for later `apk add`: \
         Alpine's (as the official build copies them, checked below) and here \
         the test key that signed the repacked packages",
    ),
    (
        "lib/apk/db/installed",
        "compared below, field by field: only C: and S: differ (the packages \
         were re-signed)",
    ),
    (
        "lib/apk/db/scripts.tar",
        "compared below: names carry each package's C: identity, which the \
         re-signing changes",
    ),
    (
        "lib/apk/db/triggers",
        "compared below: lines start with the package's C: identity",
    ),
];

/// The edge tarball's build kept none of what the packages' scripts do to
/// users and groups; Alpine's own apk 2.14 installing the same repository
/// does what rootstrap does (see `alpines_own_apk_installs_the_same_tree`).
const EDGE_SCRIPT_EFFECTS: &str = "busybox's .post-install adds the klogd user and group \
     (busybox adduser/addgroup keep the previous files as passwd-, group-, shadow-) and \
     alpine-baselayout's .post-install chowns /etc/shadow to group shadow (42); the \
     official edge tarball has neither, Alpine's own apk 2.14 does both";
const EDGE_ALLOWED: &[(&str, &str)] = &[
    ("etc/passwd", EDGE_SCRIPT_EFFECTS),
    ("etc/passwd-", EDGE_SCRIPT_EFFECTS),
    ("etc/group", EDGE_SCRIPT_EFFECTS),
    ("etc/group-", EDGE_SCRIPT_EFFECTS),
    ("etc/shadow", EDGE_SCRIPT_EFFECTS),
    ("etc/shadow-", EDGE_SCRIPT_EFFECTS),
];

fn allowed(list: &[(&str, &str)], path: &str) -> bool {
    ALLOWED.iter().chain(list).any(|(p, _)| {
        if let Some(dir) = p.strip_suffix('/') {
            path.starts_with(p) || path == dir
        } else {
            path == *p
        }
    })
}

struct Built {
    tmp: tempfile::TempDir,
    mini: Minirootfs,
    repo: FixtureRepo,
    server: TestServer,
    recipe: PathBuf,
}

impl Built {
    fn build(&self, outputs: &[String]) -> Output {
        let mut cmd = rootstrap_isolated();
        cmd.arg("build")
            .arg(&self.recipe)
            .arg("--mirror")
            .arg(self.server.base_url())
            .arg("--keys")
            .arg(&self.repo.keys_dir)
            .arg("--cache-dir")
            .arg(self.tmp.path().join("cache"))
            .arg("--work-dir")
            .arg(self.tmp.path());
        for o in outputs {
            cmd.arg("--output").arg(o);
        }
        cmd.output().unwrap()
    }
}

/// Repacks `tarball` into a served repository `<release>/main/<arch>` and
/// writes a recipe for its world; `None` (SKIP) without the tarball or root.
fn setup(test: &str, tarball: &str, release: &str) -> Option<Built> {
    setup_with(test, tarball, release, &[])
}

fn setup_with(test: &str, tarball: &str, release: &str, extra: &[PackageSpec]) -> Option<Built> {
    setup_edited(test, tarball, release, &|specs| {
        specs.extend(extra.iter().cloned())
    })
}

/// [`setup`] with the repository's package specs (the minirootfs's,
/// `alpine-release`) edited before they are built.
fn setup_edited(
    test: &str,
    tarball: &str,
    release: &str,
    edit: &dyn Fn(&mut Vec<PackageSpec>),
) -> Option<Built> {
    let path = conformance::minirootfs_tarball(tarball)?;
    if !is_root() {
        skip(format!("{test}: package scripts need the sandbox (root)"));
        return None;
    }
    let mini = Minirootfs::load(&path).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let mut specs = minirootfs::package_specs(&mini).unwrap();
    specs.push(minirootfs::release_package(&mini).unwrap());
    edit(&mut specs);
    let key = SigningKey::generate(&format!(
        "rootstrap-test-{:08x}.rsa.pub",
        rand::random::<u32>()
    ));
    let repo =
        minirootfs::write_specs(&tmp.path().join("mirror"), release, &mini.arch, &specs, key)
            .unwrap();
    // Alpine's keys, as the official build copies them into /etc/apk/keys,
    // next to the test key that signed the repacked repository.
    for (p, e) in mini.tree.iter().filter(|(p, e)| {
        p.starts_with("etc/apk/keys/") && e.kind == rootstrap::distro::apk::tar::EntryKind::File
    }) {
        let name = p.rsplit('/').next().unwrap();
        std::fs::write(repo.keys_dir.join(name), &e.content).unwrap();
    }
    let server = TestServer::serve(&repo.root);
    let recipe = tmp.path().join("alpine-minirootfs.toml");
    let world: Vec<String> = mini.world.iter().map(|w| format!("{w:?}")).collect();
    std::fs::write(
        &recipe,
        format!(
            "[source]\ndistro = \"alpine\"\nrelease = \"{release}\"\nrepositories = [\"main\"]\n\
             arch = \"{}\"\nkeys = [\"alpine\"]\n\n[packages]\nbase = [{}]\n\n\
             [image]\ncmd = [\"/bin/sh\"]\n",
            mini.arch,
            world.join(", ")
        ),
    )
    .unwrap();
    Some(Built {
        tmp,
        mini,
        repo,
        server,
        recipe,
    })
}

fn describe(e: Option<&TreeEntry>) -> String {
    match e {
        None => "absent".into(),
        Some(e) => format!(
            "{:?} {:o} {}:{} {}{} bytes",
            e.kind,
            e.mode,
            e.uid,
            e.gid,
            if e.link.is_empty() {
                String::new()
            } else {
                format!("-> {} ", e.link)
            },
            e.content.len()
        ),
    }
}

/// Every path, type, mode, owner, link target and content that differs,
/// outside [`ALLOWED`].
fn tree_differences(
    official: &BTreeMap<String, TreeEntry>,
    built: &BTreeMap<String, TreeEntry>,
    also_allowed: &[(&str, &str)],
) -> Vec<String> {
    let paths: BTreeSet<&String> = official.keys().chain(built.keys()).collect();
    paths
        .into_iter()
        .filter(|p| !allowed(also_allowed, p))
        .filter_map(|p| {
            let (a, b) = (official.get(p), built.get(p));
            (a != b).then(|| format!("/{p}: official {} | rootstrap {}", describe(a), describe(b)))
        })
        .collect()
}

/// The installed database without the fields the re-signing changes.
fn without_identity(installed: &str) -> String {
    installed
        .lines()
        .filter(|l| !l.starts_with("C:") && !l.starts_with("S:"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// scripts.tar entries as (name without the identity, mtime, mode, content).
fn scripts_view(tar: &[u8]) -> Vec<(String, u64, u32, Vec<u8>)> {
    parse_entries("scripts.tar", tar)
        .unwrap()
        .into_iter()
        .map(|e| {
            let name = match e.path.split_once(".Q1") {
                Some((nv, rest)) => {
                    let script = rest.split_once("=.").map(|(_, s)| s).unwrap_or(rest);
                    format!("{nv}.<id>.{script}")
                }
                None => e.path.clone(),
            };
            (name, e.mtime, e.mode, tar[e.data.clone()].to_vec())
        })
        .collect()
}

fn triggers_view(text: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(text)
        .lines()
        .map(|l| l.split_once(' ').map(|(_, g)| g).unwrap_or("").to_owned())
        .collect()
}

fn assert_equals_official(test: &str, tarball: &str, release: &str, also_allowed: &[(&str, &str)]) {
    let Some(b) = setup(test, tarball, release) else {
        return;
    };
    // The image's rootfs tarball: what the official tarball is to Alpine.
    let tar = b.tmp.path().join("rootfs.tar");
    let o = b.build(&[format!("tar:{}", tar.display())]);
    assert!(o.status.success(), "build failed:\n{}", stderr(&o));
    let built = Minirootfs::from_tar("rootstrap's tar", &std::fs::read(&tar).unwrap())
        .unwrap()
        .tree;
    let official = &b.mini.tree;

    let diffs = tree_differences(official, &built, also_allowed);
    assert!(
        diffs.is_empty(),
        "{} differences from the official tree:\n{}",
        diffs.len(),
        diffs.join("\n")
    );
    // The allowed differences are exactly what they say.
    let key = format!("etc/apk/keys/{}", b.repo.key.name);
    assert!(built.contains_key(&key), "{key} not written");
    assert_eq!(
        String::from_utf8_lossy(&built["etc/apk/repositories"].content),
        format!("{}/{release}/main\n", b.server.base_url())
    );
    for (p, e) in official
        .iter()
        .filter(|(p, _)| p.starts_with("etc/apk/keys/"))
    {
        assert_eq!(built.get(p), Some(e), "/{p}");
    }

    let db = |t: &BTreeMap<String, TreeEntry>, p: &str| t[p].content.clone();
    let installed = |t| String::from_utf8(db(t, "lib/apk/db/installed")).unwrap();
    assert_eq!(
        without_identity(&installed(&built)),
        without_identity(&installed(official)),
        "lib/apk/db/installed differs beyond C:/S:"
    );
    assert_eq!(
        scripts_view(&db(&built, "lib/apk/db/scripts.tar")),
        scripts_view(&db(official, "lib/apk/db/scripts.tar")),
        "scripts.tar differs beyond the identities in its names"
    );
    assert_eq!(
        triggers_view(&db(&built, "lib/apk/db/triggers")),
        triggers_view(&db(official, "lib/apk/db/triggers")),
    );
    // The identities are the served packages' own.
    for p in &b.repo.packages {
        if p.spec.name != "alpine-release" {
            let c = p.stanza.lines().next().unwrap();
            assert!(installed(&built).contains(&format!("{c}\nP:{}\n", p.spec.name)));
        }
    }
    // A warm build (the plan read back from the cache, the layer reused)
    // makes the same tarball, release files included.
    let again = b.tmp.path().join("rootfs-warm.tar");
    let o = b.build(&[format!("tar:{}", again.display())]);
    assert!(o.status.success(), "warm build failed:\n{}", stderr(&o));
    assert!(stderr(&o).contains("package plan reused"), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("reuse the cached base layer"),
        "{}",
        stderr(&o)
    );
    assert!(
        std::fs::read(&tar).unwrap() == std::fs::read(&again).unwrap(),
        "the warm build's tarball differs"
    );
    // Every allowed difference in this tree is real, or it would not be listed.
    for (p, _) in also_allowed {
        assert_ne!(official.get(*p), built.get(*p), "/{p} is listed but equal");
    }
    println!(
        "{test}: {} paths equal the official tree; allowed differences: {}",
        official.len(),
        ALLOWED.len() + also_allowed.len()
    );
}

#[test]
fn alpine_3_19_x86_64_equals_the_official_minirootfs() {
    assert_equals_official(
        "alpine_3_19_x86_64_equals_the_official_minirootfs",
        minirootfs::X86_64_3_19,
        "v3.19",
        &[],
    );
}

#[test]
fn alpine_edge_x86_64_equals_the_official_minirootfs() {
    assert_equals_official(
        "alpine_edge_x86_64_equals_the_official_minirootfs",
        minirootfs::X86_64_EDGE,
        "edge",
        EDGE_ALLOWED,
    );
}

/// What Alpine's own apk does in an image, one step per marker line.
const APK_SESSION: &str = r#"set -e
echo '== info'; apk info -v
echo '== audit'; apk audit --system
echo '== add'; apk add hello-rootstrap; hello-rootstrap
echo '== del'; apk del hello-rootstrap; test ! -e /usr/bin/hello-rootstrap
echo '== fix'; apk fix --reinstall busybox; /bin/busybox true
echo '== verify'; apk fetch -o /tmp hello-rootstrap; apk verify /tmp/hello-rootstrap-1.0-r0.apk
echo '== upgrade'; apk upgrade; apk info -v
echo '== audit-after'; apk audit --system
echo '== end'
"#;

/// The lines between `== name` and the next marker.
fn section<'a>(out: &'a str, name: &str) -> Vec<&'a str> {
    out.lines()
        .skip_while(|l| *l != format!("== {name}"))
        .skip(1)
        .take_while(|l| !l.starts_with("== "))
        .collect()
}

/// A recipe's `[build] dockerfile` runs on an Alpine base as on a Debian
/// one: its RUN steps run in the tree with Alpine's own busybox and apk,
/// its ENV lands in the config, and a rebuild takes the steps from the
/// step cache.
#[test]
fn an_alpine_recipes_dockerfile_steps_apply() {
    let test = "an_alpine_recipes_dockerfile_steps_apply";
    if std::env::consts::ARCH != "x86_64" {
        not_applicable(format!(
            "{test}: the x86_64 minirootfs runs natively only on x86_64"
        ));
        return;
    }
    let Some(b) = setup(test, minirootfs::X86_64_3_19, "v3.19") else {
        return;
    };
    let dir = b.recipe.parent().unwrap();
    std::fs::write(
        dir.join("Dockerfile"),
        "RUN apk info -e busybox > /etc/steps && echo ran >> /etc/steps\nENV STEPS=1\n",
    )
    .unwrap();
    let mut recipe = std::fs::read_to_string(&b.recipe).unwrap();
    recipe.push_str("\n[build]\ndockerfile = \"Dockerfile\"\n");
    std::fs::write(&b.recipe, recipe).unwrap();

    let build = |name: &str| {
        let oci = b.tmp.path().join(name);
        let o = b.build(&[format!("oci:{}", oci.display())]);
        assert!(o.status.success(), "build failed:\n{}", stderr(&o));
        (oci, stderr(&o))
    };
    let (oci, log) = build("oci-steps");
    assert!(log.contains("dockerfile steps"), "{log}");
    let run = rootstrap_isolated()
        .args(["run", &format!("oci:{}", oci.display()), "--"])
        .args(["/bin/sh", "-c", "cat /etc/steps; echo STEPS=$STEPS"])
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", stderr(&run));
    assert_eq!(
        String::from_utf8_lossy(&run.stdout),
        "busybox\nran\nSTEPS=1\n",
        "{}",
        stderr(&run)
    );
    let (_, log) = build("oci-steps-again");
    assert_eq!(
        log.matches("CACHED").count(),
        1,
        "the RUN step is reused:\n{log}"
    );
}

#[test]
fn alpines_own_apk_works_in_the_image() {
    let test = "alpines_own_apk_works_in_the_image";
    if std::env::consts::ARCH != "x86_64" {
        not_applicable("the x86_64 minirootfs runs natively only on x86_64");
        return;
    }
    let hello = minirootfs::hello_package("x86_64");
    let Some(mut b) = setup_with(test, minirootfs::X86_64_3_19, "v3.19", &[hello]) else {
        return;
    };
    let oci = b.tmp.path().join("oci");
    let o = b.build(&[format!("oci:{}", oci.display())]);
    assert!(o.status.success(), "build failed:\n{}", stderr(&o));

    // A newer build of an installed package, for `apk upgrade`.
    let current = &b
        .repo
        .packages
        .iter()
        .find(|p| p.spec.name == "ca-certificates-bundle");
    let newer = minirootfs::next_build(&current.unwrap().spec);
    assert_eq!(newer.version, "20240226-r1");
    b.repo.add_package(&newer).unwrap();

    let run = rootstrap_isolated()
        .args(["run", &format!("oci:{}", oci.display()), "--"])
        .args(["/bin/sh", "-c", APK_SESSION])
        .output()
        .unwrap();
    let out = text(&run.stdout);
    assert!(
        run.status.success(),
        "apk session failed:\n{out}\n{}",
        stderr(&run)
    );
    let info = section(&out, "info");
    let installed: Vec<String> = b
        .repo
        .packages
        .iter()
        .filter(|p| {
            !["alpine-release", "hello-rootstrap"].contains(&p.spec.name.as_str())
                && p.spec.version != "20240226-r1"
        })
        .map(|p| format!("{}-{}", p.spec.name, p.spec.version))
        .collect();
    let mut listed: Vec<String> = info.iter().map(|l| l.to_string()).collect();
    listed.sort();
    let mut want = installed.clone();
    want.sort();
    assert_eq!(listed, want, "apk info -v:\n{out}");
    assert_eq!(section(&out, "audit"), Vec::<&str>::new(), "{out}");
    assert!(
        section(&out, "add").contains(&"hello from a served package"),
        "{out}"
    );
    assert!(
        section(&out, "upgrade").contains(&"ca-certificates-bundle-20240226-r1"),
        "{out}"
    );
    assert_eq!(section(&out, "audit-after"), Vec::<&str>::new(), "{out}");
    println!("{out}");

    // The seed flow: a Dockerfile FROM the rootstrap base whose RUN uses
    // Alpine's apk against the served repository, built without a daemon.
    let ctx = b.tmp.path().join("ctx");
    std::fs::create_dir(&ctx).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        format!(
            "FROM oci:{}\nRUN apk add --no-cache hello-rootstrap\nCMD [\"hello-rootstrap\"]\n",
            oci.display()
        ),
    )
    .unwrap();
    let seeded = b.tmp.path().join("seeded");
    let o = rootstrap_isolated()
        .current_dir(&ctx)
        .args(["build", "-f", "Dockerfile", "."])
        .arg("--output")
        .arg(format!("oci:{}", seeded.display()))
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "Dockerfile build failed:\n{}",
        stderr(&o)
    );
    let run = rootstrap_isolated()
        .args(["run", &format!("oci:{}", seeded.display())])
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", stderr(&run));
    assert_eq!(text(&run.stdout), "hello from a served package\n");
    // --no-cache: no index left in the layer.
    let run = rootstrap_isolated()
        .args(["run", &format!("oci:{}", seeded.display()), "--"])
        .args([
            "/bin/sh",
            "-c",
            "ls /var/cache/apk | wc -l; apk info -e hello-rootstrap",
        ])
        .output()
        .unwrap();
    assert_eq!(
        text(&run.stdout),
        "0\nhello-rootstrap\n",
        "{}",
        stderr(&run)
    );
}

/// A directory tree, read as the tarball's entries are.
fn read_tree(root: &Path) -> BTreeMap<String, TreeEntry> {
    use rootstrap::distro::apk::tar::EntryKind;
    let mut out = BTreeMap::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let full = root.join(&rel);
        let meta = std::fs::symlink_metadata(&full).unwrap();
        let ft = meta.file_type();
        let (kind, link, content) = if ft.is_dir() {
            for e in std::fs::read_dir(&full).unwrap() {
                stack.push(rel.join(e.unwrap().file_name()));
            }
            (EntryKind::Dir, String::new(), Vec::new())
        } else if ft.is_symlink() {
            let t = std::fs::read_link(&full).unwrap();
            (
                EntryKind::Symlink,
                t.to_string_lossy().into_owned(),
                Vec::new(),
            )
        } else if ft.is_file() {
            (
                EntryKind::File,
                String::new(),
                std::fs::read(&full).unwrap(),
            )
        } else {
            (
                EntryKind::CharDev,
                format!("rdev {}", meta.rdev()),
                Vec::new(),
            )
        };
        out.insert(
            rel.to_string_lossy().into_owned(),
            TreeEntry {
                kind,
                mode: meta.mode() & 0o7777,
                uid: meta.uid(),
                gid: meta.gid(),
                link,
                content,
            },
        );
    }
    out
}

const RELEASE_FROM_ALPINE_RELEASE: &str = "rootstrap unpacks the release's alpine-release \
     package after installing, as the official minirootfs build does after apk";

/// Where Alpine's own `apk --initdb add` and rootstrap differ on purpose.
const PEER_ALLOWED: &[(&str, &str)] = &[
    (
        "dev/",
        "apk --initdb makes device nodes; rootstrap makes none (the runtime \
         provides /dev), as the official tarballs have none",
    ),
    ("etc/alpine-release", RELEASE_FROM_ALPINE_RELEASE),
    ("etc/issue", RELEASE_FROM_ALPINE_RELEASE),
    ("etc/os-release", RELEASE_FROM_ALPINE_RELEASE),
    ("etc/secfixes.d/", RELEASE_FROM_ALPINE_RELEASE),
    ("usr/lib/os-release", RELEASE_FROM_ALPINE_RELEASE),
    (
        "etc/shadow",
        "rootstrap locks root's empty password (root:*:), as the official build does",
    ),
    (
        "lib/apk/exec",
        "apk 2.14's --initdb makes it 0700; the official tarballs have 0755, as rootstrap",
    ),
];

/// The same world installed by Alpine's own apk 2.14 (the minirootfs's
/// /sbin/apk, in a chroot of the extracted tarball, `--root` a directory
/// inside it) and by rootstrap, from the same served repository.
fn assert_same_as_alpines_apk(test: &str, tarball: &str, release: &str) {
    if std::env::consts::ARCH != "x86_64" {
        not_applicable("the x86_64 minirootfs runs natively only on x86_64");
        return;
    }
    let Some(b) = setup(test, tarball, release) else {
        return;
    };
    let peer = b.tmp.path().join("peer");
    std::fs::create_dir(&peer).unwrap();
    let tar = Command::new("tar")
        .arg("-xzf")
        .arg(conformance::minirootfs_tarball(tarball).unwrap())
        .arg("-C")
        .arg(&peer)
        .status()
        .unwrap();
    assert!(tar.success());
    std::fs::copy(
        b.repo.keys_dir.join(&b.repo.key.name),
        peer.join("etc/apk/keys").join(&b.repo.key.name),
    )
    .unwrap();
    std::fs::create_dir(peer.join("target")).unwrap();
    let apk = Command::new("chroot")
        .arg(&peer)
        .args(["/sbin/apk", "--root", "/target", "--initdb", "--no-cache"])
        .args(["--keys-dir", "/etc/apk/keys", "-X"])
        .arg(format!("{}/{release}/main", b.server.base_url()))
        .arg("add")
        .args(&b.mini.world)
        .output()
        .unwrap();
    // apk unmounts the /proc it mounted; make sure before the tree is read.
    let _ = Command::new("umount")
        .arg("-l")
        .arg(peer.join("target/proc"))
        .output();
    assert!(
        apk.status.success(),
        "apk --initdb add failed:\n{}{}",
        text(&apk.stdout),
        stderr(&apk)
    );

    let rootfs = b.tmp.path().join("rootfs");
    let o = b.build(&[format!("rootfs:{}", rootfs.display())]);
    assert!(o.status.success(), "build failed:\n{}", stderr(&o));

    let by_apk = read_tree(&peer.join("target"));
    let by_rootstrap = read_tree(&rootfs);
    let mut allowed: Vec<(&str, &str)> = PEER_ALLOWED.to_vec();
    let key = format!("etc/apk/keys/{}", b.repo.key.name);
    allowed.push((
        &key,
        "apk reads --keys-dir in place; rootstrap writes the keys that verified the build",
    ));
    allowed.push((
        "etc/apk/repositories",
        "apk does not write the -X repository; rootstrap writes the one it built from",
    ));
    let diffs: Vec<String> = tree_differences(&by_apk, &by_rootstrap, &allowed)
        .into_iter()
        // ALLOWED (against the official tarball) is not what this compares.
        .chain(
            [
                "",
                "etc/apk/keys",
                "lib/apk/db/installed",
                "lib/apk/db/scripts.tar",
                "lib/apk/db/triggers",
            ]
            .iter()
            .filter(|p| by_apk.get(**p) != by_rootstrap.get(**p))
            .map(|p| format!("/{p}: differs (database files must be byte-identical)")),
        )
        .collect();
    assert!(
        diffs.is_empty(),
        "{} differences from Alpine's own apk:\n{}",
        diffs.len(),
        diffs.join("\n")
    );
    println!(
        "{test}: {} paths as Alpine's apk 2.14 installs them; installed, scripts.tar and \
         triggers byte-identical",
        by_apk.len()
    );
}

#[test]
fn alpines_own_apk_installs_the_same_tree_3_19() {
    assert_same_as_alpines_apk(
        "alpines_own_apk_installs_the_same_tree_3_19",
        minirootfs::X86_64_3_19,
        "v3.19",
    );
}

#[test]
fn alpines_own_apk_installs_the_same_tree_edge() {
    assert_same_as_alpines_apk(
        "alpines_own_apk_installs_the_same_tree_edge",
        minirootfs::X86_64_EDGE,
        "edge",
    );
}

/// The build fails naming every `needles`, and writes no output.
fn assert_refused(b: &Built, needles: &[&str]) {
    let tar = b.tmp.path().join("refused.tar");
    let oci = b.tmp.path().join("refused-oci");
    let o = b.build(&[
        format!("tar:{}", tar.display()),
        format!("oci:{}", oci.display()),
    ]);
    let err = stderr(&o);
    assert!(!o.status.success(), "built despite bad input:\n{err}");
    for n in needles {
        assert!(err.contains(n), "error does not name {n:?}:\n{err}");
    }
    assert!(
        !tar.exists() && !oci.exists(),
        "output written despite bad input"
    );
    println!("refused as expected: {}", err.lines().last().unwrap_or(""));
}

#[test]
fn a_package_whose_data_does_not_match_its_checksums_is_refused() {
    let Some(b) = setup_edited(
        "a_package_whose_data_does_not_match_its_checksums_is_refused",
        minirootfs::X86_64_3_19,
        "v3.19",
        &|specs| {
            let bb = specs.iter_mut().find(|s| s.name == "busybox").unwrap();
            bb.wrong_checksum = Some("bin/busybox".into());
        },
    ) else {
        return;
    };
    assert_refused(&b, &["busybox-1.36.1-r19", "bin/busybox"]);
}

#[test]
fn an_index_line_apk_would_reject_is_refused() {
    let Some(mut b) = setup(
        "an_index_line_apk_would_reject_is_refused",
        minirootfs::X86_64_3_19,
        "v3.19",
    ) else {
        return;
    };
    let zlib = b
        .repo
        .packages
        .iter_mut()
        .find(|p| p.spec.name == "zlib")
        .unwrap();
    let installed_size = zlib
        .stanza
        .lines()
        .find(|l| l.starts_with("I:"))
        .unwrap()
        .to_owned();
    zlib.stanza = zlib.stanza.replace(&installed_size, "I:many");
    b.repo.write_index(Some(&b.repo.key)).unwrap();
    assert_refused(&b, &["APKINDEX", "package zlib: I:", "\"many\""]);
}

#[test]
fn a_world_naming_a_package_the_repository_lacks_is_refused() {
    let Some(b) = setup(
        "a_world_naming_a_package_the_repository_lacks_is_refused",
        minirootfs::X86_64_3_19,
        "v3.19",
    ) else {
        return;
    };
    let recipe = std::fs::read_to_string(&b.recipe).unwrap();
    std::fs::write(
        &b.recipe,
        recipe.replace("base = [", "install = [\"no-such-package\"]\nbase = ["),
    )
    .unwrap();
    assert_refused(&b, &["no-such-package"]);
}

#[test]
fn a_locked_offline_build_from_a_partial_mirror_keeps_the_release_files() {
    let Some(b) = setup(
        "a_locked_offline_build_from_a_partial_mirror_keeps_the_release_files",
        minirootfs::X86_64_3_19,
        "v3.19",
    ) else {
        return;
    };
    let t = b.tmp.path();
    let lock = t.join("alpine.lock");
    let o = rootstrap_isolated()
        .arg("lock")
        .arg(&b.recipe)
        .arg("--mirror")
        .arg(b.server.base_url())
        .arg("--keys")
        .arg(&b.repo.keys_dir)
        .arg("--cache-dir")
        .arg(t.join("cache"))
        .arg("-o")
        .arg(&lock)
        .output()
        .unwrap();
    assert!(o.status.success(), "lock failed:\n{}", stderr(&o));
    let text = std::fs::read_to_string(&lock).unwrap();
    assert!(
        text.contains("alpine-release"),
        "the lock omits alpine-release:\n{text}"
    );
    let partial = t.join("partial");
    let o = rootstrap_isolated()
        .arg("mirror")
        .arg(&lock)
        .arg("-o")
        .arg(&partial)
        .arg("--cache-dir")
        .arg(t.join("cache"))
        .arg("--offline")
        .output()
        .unwrap();
    assert!(o.status.success(), "mirror failed:\n{}", stderr(&o));
    let tar = t.join("locked.tar");
    let o = rootstrap_isolated()
        .arg("build")
        .arg(&b.recipe)
        .arg("--lock")
        .arg(&lock)
        .arg("--locked")
        .arg("--offline")
        .arg("--mirror")
        .arg(format!("file://{}", partial.display()))
        .arg("--keys")
        .arg(&b.repo.keys_dir)
        .arg("--cache-dir")
        .arg(t.join("cache-2"))
        .arg("--work-dir")
        .arg(t)
        .arg("--output")
        .arg(format!("tar:{}", tar.display()))
        .output()
        .unwrap();
    assert!(o.status.success(), "locked build failed:\n{}", stderr(&o));
    let built = Minirootfs::from_tar("locked build", &std::fs::read(&tar).unwrap()).unwrap();
    for f in [
        "etc/os-release",
        "etc/alpine-release",
        "etc/issue",
        "etc/secfixes.d/alpine",
    ] {
        assert_eq!(built.tree.get(f), b.mini.tree.get(f), "/{f}");
    }
    assert!(
        !built.installed().contains("P:alpine-release\n"),
        "alpine-release registered"
    );
}
