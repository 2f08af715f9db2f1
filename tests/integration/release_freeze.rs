//! Freeze and drift protection end to end (HOSTILE 24, 28, 29, 32): the
//! last Release accepted from a source is remembered in the cache; an older
//! one (a replayed or frozen mirror) or one whose Suite changed is refused,
//! naming both, unless `--accept-release-change` accepts it once. A captive
//! portal's page is "not signed". A Release whose Packages cannot be
//! fetched changes neither the memory nor the copy kept for offline use.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::debrepo::{DebPackage, Repo};
use common::fixture::{self, DebFixture};
use common::httpd::TestServer;
use common::run;

fn repo(date_offset: i64, suite: &str) -> Repo {
    let mut repo = Repo::new(
        "fixture",
        vec![DebPackage::new("base-files", "1.0").essential()],
    );
    repo.date_offset = date_offset;
    repo.suite = suite.into();
    repo
}

fn resolve(dir: &Path, recipe: &Path, extra: &[&str]) -> Output {
    run::rootstrap_isolated()
        .arg("resolve")
        .arg(recipe)
        .arg("--cache-dir")
        .arg(dir.join("cache"))
        .args(extra)
        .output()
        .unwrap()
}

/// A fixture repository dated `date_offset` from now, served on
/// 127.0.0.1, and a recipe for it.
fn served_fixture(date_offset: i64) -> (DebFixture, PathBuf, TestServer, PathBuf) {
    let f = DebFixture::new();
    let served = f.write_repo("repo", &repo(date_offset, "stable"));
    let server = TestServer::serve(&served);
    let recipe = f.dir.path().join("recipe.toml");
    let source = fixture::debian_source("amd64");
    std::fs::write(
        &recipe,
        format!("{source}mirror = \"{}\"\n", server.base_url()),
    )
    .unwrap();
    (f, served, server, recipe)
}

#[test]
fn an_older_or_re_identified_release_is_refused_unless_accepted_once() {
    let (f, _served, _server, recipe) = served_fixture(-3600);
    let dir = f.dir.path();
    let ok = |o: &Output, what: &str| assert!(o.status.success(), "{what}:\n{}", run::stderr(o));
    ok(&resolve(dir, &recipe, &[]), "first resolve");

    // The mirror now serves an older, validly signed Release.
    f.write_repo("repo", &repo(-7200, "stable"));
    let refused = resolve(dir, &recipe, &[]);
    let log = run::stderr(&refused);
    assert_eq!(refused.status.code(), Some(1), "{log}");
    assert!(log.contains("older than the previously accepted"), "{log}");
    assert_eq!(log.matches(" UTC").count(), 2, "both dates named: {log}");
    // Accepted once, it becomes the remembered Release.
    let accepted = resolve(dir, &recipe, &["--accept-release-change"]);
    ok(&accepted, "accepted resolve");
    assert!(run::stderr(&accepted).contains("accepted once"));
    ok(&resolve(dir, &recipe, &[]), "resolve after acceptance");

    // Suite changed (as stable → oldstable at a Debian release).
    f.write_repo("repo", &repo(-60, "oldstable"));
    let drift = resolve(dir, &recipe, &[]);
    let log = run::stderr(&drift);
    assert_eq!(drift.status.code(), Some(1), "{log}");
    assert!(
        log.contains("Suite changed from \"stable\" to \"oldstable\""),
        "{log}"
    );
    ok(
        &resolve(dir, &recipe, &["--accept-release-change"]),
        "drift accepted",
    );
}

#[test]
fn a_portal_page_is_not_signed_and_a_failed_update_changes_nothing() {
    let (f, served, _server, recipe) = served_fixture(-7200);
    let dir = f.dir.path();
    assert!(resolve(dir, &recipe, &[]).status.success());
    let inrelease = served.join("dists/fixture/InRelease");
    let good = std::fs::read(&inrelease).unwrap();

    // A captive portal answers with a page.
    std::fs::write(&inrelease, "<html><body>Please log in</body></html>\n").unwrap();
    let portal = resolve(dir, &recipe, &[]);
    let log = run::stderr(&portal);
    assert_eq!(portal.status.code(), Some(1), "{log}");
    assert!(log.contains("not signed"), "{log}");

    // A newer Release (new packages) whose Packages the mirror cannot serve.
    let mut newer = repo(-60, "stable");
    newer.packages.push(DebPackage::new("newer", "2.0"));
    f.write_repo("repo", &newer);
    for name in ["Packages", "Packages.gz", "Packages.xz"] {
        std::fs::remove_file(served.join("dists/fixture/main/binary-amd64").join(name)).unwrap();
    }
    let failed = resolve(dir, &recipe, &[]);
    assert_eq!(failed.status.code(), Some(1), "{}", run::stderr(&failed));
    // Neither the memory nor the kept copy moved: offline, the old Release
    // is what is read, and served again it is still accepted.
    std::fs::write(&inrelease, &good).unwrap();
    let offline = resolve(dir, &recipe, &["--offline"]);
    assert!(offline.status.success(), "{}", run::stderr(&offline));
    f.write_repo("repo", &repo(-7200, "stable"));
    std::fs::write(&inrelease, &good).unwrap();
    let again = resolve(dir, &recipe, &[]);
    assert!(again.status.success(), "{}", run::stderr(&again));
}

/// HOSTILE 24 end to end: a Release dated in the future, and one older than
/// the last accepted, are refused, and both leave the accepted one as what
/// `--offline` reads ("keep the old lists").
#[test]
fn a_release_from_the_future_or_the_past_leaves_the_accepted_one() {
    let (f, _served, _server, recipe) = served_fixture(-3600);
    let dir = f.dir.path();
    let first = resolve(dir, &recipe, &[]);
    assert!(first.status.success(), "{}", run::stderr(&first));
    assert!(String::from_utf8_lossy(&first.stdout).contains("base-files"));

    let with_marker = |offset: i64| {
        let mut r = repo(offset, "stable");
        r.packages
            .push(DebPackage::new("only-in-the-refused-release", "1.0").essential());
        r
    };
    f.write_repo("repo", &with_marker(3600));
    let future = resolve(dir, &recipe, &[]);
    let log = run::stderr(&future);
    assert_eq!(future.status.code(), Some(1), "{log}");
    assert!(log.contains("in the future"), "{log}");

    f.write_repo("repo", &with_marker(-7200));
    let older = resolve(dir, &recipe, &[]);
    let log = run::stderr(&older);
    assert_eq!(older.status.code(), Some(1), "{log}");
    assert!(log.contains("older than the previously accepted"), "{log}");

    let offline = resolve(dir, &recipe, &["--offline"]);
    assert!(offline.status.success(), "{}", run::stderr(&offline));
    assert_eq!(offline.stdout, first.stdout, "offline read another Release");
    assert!(!String::from_utf8_lossy(&offline.stdout).contains("only-in-the-refused-release"));
    // The marker does show once the older Release is accepted.
    let accepted = resolve(dir, &recipe, &["--accept-release-change"]);
    assert!(accepted.status.success(), "{}", run::stderr(&accepted));
    assert!(String::from_utf8_lossy(&accepted.stdout).contains("only-in-the-refused-release"));
}

/// HOSTILE 25 ("mirrorfail", CVE-2018-0501): with no mirror given, a build
/// takes the first of the host's apt sources that serves the suite. One
/// serving a bad InRelease is chosen and refused as "not signed" — never
/// passed over for the next, nor read unverified; one not serving the suite
/// at all is passed over, and the next is verified as any mirror is. The
/// host's `/etc/apt` is replaced in a private mount namespace, so the host
/// keeps its own.
#[test]
fn a_host_mirror_serving_a_bad_inrelease_is_refused_not_skipped() {
    if !run::is_root() {
        return common::skip::skip("needs root to mount over /etc/apt in a mount namespace");
    }
    let f = DebFixture::new();
    let dir = f.dir.path();
    let good = TestServer::serve(&f.write_repo("repo", &repo(-3600, "stable")));
    let portal_root = dir.join("portal");
    std::fs::create_dir_all(portal_root.join("dists/fixture")).unwrap();
    let portal_inrelease = portal_root.join("dists/fixture/InRelease");
    std::fs::write(
        &portal_inrelease,
        "<html><body>Please log in</body></html>\n",
    )
    .unwrap();
    let portal = TestServer::serve(&portal_root);
    let etc_apt = dir.join("etc-apt");
    std::fs::create_dir(&etc_apt).unwrap();
    std::fs::write(
        etc_apt.join("sources.list"),
        format!(
            "deb {} fixture main\ndeb {} fixture main\n",
            portal.base_url(),
            good.base_url()
        ),
    )
    .unwrap();
    let recipe = dir.join("recipe.toml");
    std::fs::write(&recipe, fixture::debian_source("amd64")).unwrap();
    let resolve_with_host_sources = || {
        let mut cmd = Command::new("unshare");
        cmd.args(["--mount", "--", "sh", "-c"])
            .arg(r#"mount --bind "$1" /etc/apt && shift && exec "$@""#)
            .arg("sh")
            .arg(&etc_apt)
            .arg(run::BIN)
            .args(["--progress", "plain", "resolve"])
            .arg(&recipe)
            .arg("--cache-dir")
            .arg(dir.join("cache"))
            .env_remove("ROOTSTRAP_MIRROR");
        cmd.output().unwrap()
    };

    let refused = resolve_with_host_sources();
    let log = run::stderr(&refused);
    assert_eq!(refused.status.code(), Some(1), "{log}");
    assert!(
        log.contains(&format!(
            "mirror {} (from host apt sources)",
            portal.base_url()
        )),
        "{log}"
    );
    assert!(log.contains("not signed"), "{log}");
    assert!(
        !log.contains(&good.base_url()),
        "passed over to the next: {log}"
    );

    std::fs::remove_file(&portal_inrelease).unwrap();
    let passed_over = resolve_with_host_sources();
    let log = run::stderr(&passed_over);
    assert!(passed_over.status.success(), "{log}");
    assert!(
        log.contains(&format!(
            "mirror {} (from host apt sources)",
            good.base_url()
        )),
        "{log}"
    );
    assert!(String::from_utf8_lossy(&passed_over.stdout).contains("base-files"));
}
