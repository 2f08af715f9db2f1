//! Writes an Alpine repository for scripts/e2e-alpine.sh and for trying
//! rootstrap by hand, plus its public key:
//!
//!     cargo run --example make-apk-repo -- OUTDIR [MINIROOTFS.tar.gz]
//!     # OUTDIR/<release>/main/<arch>/*.apk + APKINDEX.tar.gz, OUTDIR/keys/*.rsa.pub
//!
//! With a minirootfs tarball (../shared/alpine-minirootfs/), the repository
//! holds that minirootfs's real packages (Alpine's apk, busybox, musl…)
//! rebuilt and signed with a fresh test key, plus `alpine-release`; the
//! release directory is `APK_RELEASE` (default `v3.19`). Without one, it
//! holds the busybox-static fixture set (`v3.20`), whose apk-tools package
//! has no apk binary.
//!
//! Serve OUTDIR as the mirror and pass `--keys OUTDIR/keys`.

#[path = "../tests/common/apkrepo.rs"]
mod apkrepo;
#[path = "../tests/common/minirootfs.rs"]
mod minirootfs;

use std::path::Path;
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let (Some(out), tarball, None) = (args.next(), args.next(), args.next()) else {
        eprintln!("usage: make-apk-repo OUTDIR [MINIROOTFS.tar.gz]");
        return ExitCode::from(2);
    };
    let out = Path::new(&out);
    let repo = match tarball {
        Some(t) => {
            let release = std::env::var("APK_RELEASE").unwrap_or_else(|_| "v3.19".to_owned());
            minirootfs::Minirootfs::load(Path::new(&t))
                .and_then(|m| minirootfs::write_repo(out, &release, &m, &[]))
        }
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
