//! Writes an Alpine repository for scripts/e2e-alpine.sh and for trying
//! rootstrap by hand, plus its public key:
//!
//!     cargo run --example make-apk-repo -- OUTDIR [MINIROOTFS.tar.gz]
//!     # OUTDIR/<release>/main/<arch>/*.apk + APKINDEX.tar.gz, OUTDIR/keys/*.rsa.pub
//!
//! With a minirootfs tarball (../shared/alpine-minirootfs/), the repository
//! holds that minirootfs's real packages (Alpine's apk, busybox, musl…)
//! rebuilt and signed with a test key, `alpine-release`, and
//! `hello-rootstrap` (not installed by the minirootfs's world, for `apk add`).
//! Environment:
//! - `APK_RELEASE`: the release directory (default `v3.19`);
//! - `APK_SIGNING_KEY=FILE`: sign with the throwaway test key kept in FILE
//!   (made there if missing), so that a rewritten repository keeps every
//!   package's bytes and identity;
//! - `APK_NEWER=NAME,…`: also serve the next build (`-rN+1`) of those packages,
//!   for `apk upgrade`.
//!
//! Without a tarball: the busybox-static fixture set (`v3.20`), whose
//! apk-tools package has no apk binary (for hostile and synthetic cases).
//!
//! Serve OUTDIR as the mirror and pass `--keys OUTDIR/keys`.

#[path = "../tests/common/apkrepo.rs"]
mod apkrepo;
#[path = "../tests/common/minirootfs.rs"]
mod minirootfs;

use std::path::Path;
use std::process::ExitCode;

fn minirootfs_repo(out: &Path, tarball: &Path) -> Result<apkrepo::FixtureRepo, String> {
    let release = std::env::var("APK_RELEASE").unwrap_or_else(|_| "v3.19".to_owned());
    let m = minirootfs::Minirootfs::load(tarball)?;
    let key = match std::env::var_os("APK_SIGNING_KEY") {
        Some(path) => {
            apkrepo::SigningKey::load_or_generate(Path::new(&path)).map_err(|e| e.to_string())?
        }
        None => apkrepo::SigningKey::generate(&format!(
            "rootstrap-test-{:08x}.rsa.pub",
            rand::random::<u32>()
        )),
    };
    let mut extra = vec![minirootfs::hello_package(&m.arch)];
    let newer = std::env::var("APK_NEWER").unwrap_or_default();
    let specs = minirootfs::package_specs(&m)?;
    for name in newer.split(',').filter(|n| !n.is_empty()) {
        let spec = specs
            .iter()
            .find(|s| s.name == name)
            .ok_or_else(|| format!("APK_NEWER: no package {name} in the minirootfs"))?;
        extra.push(minirootfs::next_build(spec));
    }
    minirootfs::write_repo_signed(out, &release, &m, &extra, key)
}

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let (Some(out), tarball, None) = (args.next(), args.next(), args.next()) else {
        eprintln!("usage: make-apk-repo OUTDIR [MINIROOTFS.tar.gz]");
        return ExitCode::from(2);
    };
    let out = Path::new(&out);
    let repo = match tarball {
        Some(t) => minirootfs_repo(out, Path::new(&t)),
        None => {
            let Some(busybox) = apkrepo::host_static_busybox() else {
                eprintln!("make-apk-repo: no static busybox on this host (install busybox-static)");
                return ExitCode::from(2);
            };
            let arch =
                std::env::var("APK_ARCH").unwrap_or_else(|_| std::env::consts::ARCH.to_owned());
            let release = std::env::var("APK_RELEASE").unwrap_or_else(|_| "v3.20".to_owned());
            apkrepo::write_minirootfs_repo(out, &release, "main", &arch, &busybox)
                .map_err(|e| e.to_string())
        }
    };
    match repo {
        Ok(repo) => {
            println!("repository: {}", repo.arch_dir.display());
            println!("keys: {}", repo.keys_dir.display());
            for p in &repo.packages {
                println!("  {}", p.spec.file_name());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("make-apk-repo: {}: {e}", out.display());
            ExitCode::FAILURE
        }
    }
}
