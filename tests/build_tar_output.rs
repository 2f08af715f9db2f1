//! `tar:` outputs of a Debian build: a plain `.tar` is written from an
//! uncompressed base layer, and must be byte for byte the tar inside the
//! gzip layer that image outputs (and `.tar.gz`) get, cold or warm.

mod common;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::debrepo::{host_runtime_packages, Repo};
use common::httpd::TestServer;
use common::signing::ArchiveKey;

fn build(dir: &Path, mirror: &str, cache: &str, output: &str) {
    let out = Command::new(env!("CARGO_BIN_EXE_rootstrap"))
        .args(["--progress", "plain", "build"])
        .arg(dir.join("recipe.toml"))
        .arg("--cache-dir")
        .arg(dir.join(cache))
        .arg("--work-dir")
        .arg(dir.join("work"))
        .arg("--output")
        .arg(format!("tar:{}", dir.join(output).display()))
        .env_remove("ROOTSTRAP_MIRROR")
        .env_remove("SOURCE_DATE_EPOCH")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "build {output} via {mirror}: {}",
        String::from_utf8_lossy(&out.stderr)
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
    if !rustix::process::geteuid().is_root() {
        eprintln!("SKIP: needs root (sandbox namespaces, chown)");
        return;
    }
    let Some(packages) = host_runtime_packages() else {
        eprintln!("SKIP: needs the host's busybox-static and dpkg");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let key = ArchiveKey::generate();
    Repo::new("fixture", packages).write(&dir.path().join("repo"), &|t| key.clearsign(t));
    std::fs::write(dir.path().join("archive.asc"), key.public_armored()).unwrap();
    std::fs::create_dir(dir.path().join("work")).unwrap();
    let server = TestServer::serve(&dir.path().join("repo"));
    let mirror = server.base_url().trim_end_matches('/').to_owned();
    std::fs::write(
        dir.path().join("recipe.toml"),
        format!(
            "[source]\ndistro = \"debian\"\nsuite = \"fixture\"\ncomponents = [\"main\"]\n\
             variant = \"essential\"\narch = \"amd64\"\nmirror = \"{mirror}\"\nkeys = [\"archive.asc\"]\n"
        ),
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
