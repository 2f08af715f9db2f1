//! `tar:` outputs of a Debian build: a plain `.tar` is written from an
//! uncompressed base layer, and must be byte for byte the tar inside the
//! gzip layer that image outputs (and `.tar.gz`) get, cold or warm.

use crate::common;

use common::debrepo::{sandbox_runtime_packages, Repo};
use common::fixture::{self, DebFixture};
use common::httpd::TestServer;
use common::run;
use std::io::Read;
use std::path::{Path, PathBuf};

fn build(dir: &Path, mirror: &str, cache: &str, output: &str) {
    let out = run::rootstrap_isolated()
        .arg("build")
        .arg(dir.join("recipe.toml"))
        .arg("--cache-dir")
        .arg(dir.join(cache))
        .arg("--work-dir")
        .arg(dir.join("work"))
        .arg("--output")
        .arg(format!("tar:{}", dir.join(output).display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "build {output} via {mirror}: {}",
        run::stderr(&out)
    );
}

fn gunzip(path: &PathBuf) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(std::fs::File::open(path).unwrap())
        .read_to_end(&mut out)
        .unwrap();
    out
}

#[test]
fn plain_tar_output_equals_the_gzip_layer_cold_and_warm() {
    let Some(packages) = sandbox_runtime_packages() else {
        return;
    };
    let f = DebFixture::new();
    let dir = &f.dir;
    let repo = f.write_repo("repo", &Repo::new("fixture", packages));
    std::fs::create_dir(dir.path().join("work")).unwrap();
    let server = TestServer::serve(&repo);
    let mirror = server.base_url();
    std::fs::write(
        dir.path().join("recipe.toml"),
        format!("{}mirror = \"{mirror}\"\n", fixture::debian_source("amd64")),
    )
    .unwrap();

    build(dir.path(), &mirror, "cache-plain", "cold.tar");
    build(dir.path(), &mirror, "cache-plain", "warm.tar");
    build(dir.path(), &mirror, "cache-gzip", "layer.tar.gz");
    let cold = std::fs::read(dir.path().join("cold.tar")).unwrap();
    assert!(
        cold.len() > 10_240 && cold.len() % 512 == 0,
        "{}",
        cold.len()
    );
    assert!(
        cold == std::fs::read(dir.path().join("warm.tar")).unwrap(),
        "warm rebuild differs"
    );
    assert!(
        cold == gunzip(&dir.path().join("layer.tar.gz")),
        "plain tar differs from the gzip layer's tar"
    );
}

/// An output or a lockfile in a directory that does not exist is refused
/// before anything is fetched (the mirror here answers nothing), not after
/// the build, and no other output is written.
#[test]
fn an_output_in_a_missing_directory_is_refused_before_the_build() {
    let dir = tempfile::tempdir().unwrap();
    let recipe = dir.path().join("recipe.toml");
    std::fs::write(
        &recipe,
        format!(
            "{}mirror = \"http://127.0.0.1:9/\"\n",
            fixture::debian_source("amd64")
        ),
    )
    .unwrap();
    let missing = dir.path().join("no/such");
    let written = dir.path().join("written");
    let in_missing = |name: &str| format!("{}/{name}", missing.display());
    let cases: [&[String]; 3] = [
        &[
            "build".into(),
            "--output".into(),
            format!("docker-archive:{}", in_missing("image.tar")),
        ],
        &[
            "build".into(),
            "--lock".into(),
            in_missing("x.lock"),
            "--output".into(),
            format!("oci:{}", written.display()),
        ],
        &["lock".into(), "-o".into(), in_missing("x.lock")],
    ];
    for args in cases {
        let out = run::rootstrap_isolated()
            .args(&args[..1])
            .arg(&recipe)
            .arg("--cache-dir")
            .arg(dir.path().join("cache"))
            .args(&args[1..])
            .output()
            .unwrap();
        let log = run::stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {log}");
        assert!(
            log.contains(&format!(
                "{} is not an existing directory",
                missing.display()
            )),
            "{args:?}: {log}"
        );
        assert!(!log.contains("127.0.0.1:9"), "it fetched first: {log}");
        assert!(!dir.path().join("no").exists());
        assert!(!written.exists(), "{args:?} wrote another output");
    }
}
